//! `mcp-warden call`: a minimal MCP client over Streamable HTTP for trying a running
//! gateway by hand: list the tools this caller may use, or call one and wait (showing
//! progress, e.g. while a human approver decides), then print the result.

use rmcp::model::{
    CallToolRequestParams, ClientRequest, ProgressNotificationParam, Request, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value};

use crate::escape::visible;

/// Prints the gateway's progress notes on stderr.
#[derive(Clone, Default)]
struct Watcher;

impl ClientHandler for Watcher {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        if let Some(m) = params.message {
            eprintln!("… {}", visible(&m));
        }
    }
}

/// List tools (no `tool`) or call `tool` with `args` (a JSON object).
pub async fn run(url: &str, tool: Option<String>, args: Option<String>) -> Result<(), String> {
    let args: Map<String, Value> = match args.as_deref() {
        None => Map::new(),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            format!("the arguments must be a JSON object, e.g. '{{\"text\": \"hi\"}}': {e}")
        })?,
    };
    let mut transport =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url);
    if let Ok(token) = std::env::var("MCP_WARDEN_TOKEN") {
        transport = transport.auth_header(token);
    }
    let client = Watcher
        .serve(StreamableHttpClientTransport::from_config(transport))
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let outcome = match tool {
        None => list(&client).await,
        Some(tool) => call(&client, tool, args).await,
    };
    let _ = client.cancel().await;
    outcome
}

async fn list(client: &rmcp::service::RunningService<RoleClient, Watcher>) -> Result<(), String> {
    let tools = client
        .peer()
        .list_all_tools()
        .await
        .map_err(|e| e.to_string())?;
    for t in tools {
        let about = t.description.as_deref().unwrap_or("");
        println!(
            "{:<28} {}",
            t.name,
            visible(about.lines().next().unwrap_or(""))
        );
    }
    Ok(())
}

async fn call(
    client: &rmcp::service::RunningService<RoleClient, Watcher>,
    tool: String,
    args: Map<String, Value>,
) -> Result<(), String> {
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new(tool).with_arguments(args),
    ));
    let handle = client
        .peer()
        .send_request_with_option(request, PeerRequestOptions::no_options())
        .await
        .map_err(|e| e.to_string())?;
    let response = handle.await_response().await.map_err(|e| e.to_string())?;
    let ServerResult::CallToolResult(result) = response else {
        return Err("the gateway answered something other than a tool result".into());
    };
    let text: Vec<String> = result
        .content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.lines().map(visible).collect::<Vec<_>>().join("\n"))
        .collect();
    if result.is_error == Some(true) {
        return Err(format!("refused: {}", text.join("\n")));
    }
    println!("{}", text.join("\n"));
    Ok(())
}
