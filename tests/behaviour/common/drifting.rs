//! A tool server whose tools the test rewrites while the gateway runs (a new version, or
//! a "rug pull"), announcing the change with `notifications/tools/list_changed` or not.
//! It counts `tools/list` requests and records every call it receives. Streamable HTTP,
//! in-process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use serde_json::Value;

#[derive(Clone)]
pub struct Drifting {
    tools: Arc<Mutex<Vec<Value>>>,
    lists: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<String>>>,
    peers: Arc<Mutex<Vec<Peer<RoleServer>>>>,
}

impl Drifting {
    pub fn new(tools: Vec<Value>) -> Self {
        Self {
            tools: Arc::new(Mutex::new(tools)),
            lists: Arc::default(),
            calls: Arc::default(),
            peers: Arc::default(),
        }
    }

    /// Serve at `/mcp` on a free loopback port; returns the URL.
    pub async fn serve(&self) -> String {
        let listener = mcp_warden::listener::HttpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let this = self.clone();
        let service = StreamableHttpService::new(
            move || Ok(this.clone()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        tokio::spawn(async move {
            axum::serve(listener, axum::Router::new().nest_service("/mcp", service)).await
        });
        url
    }

    /// Rewrite the tool list (no announcement).
    pub fn change(&self, rewrite: impl FnOnce(&mut Vec<Value>)) {
        rewrite(&mut self.tools.lock().unwrap());
    }

    /// Send `notifications/tools/list_changed` to every client still connected.
    pub async fn announce(&self) {
        let peers = self.peers.lock().unwrap().clone();
        let mut told = 0;
        for peer in peers {
            // Clients that came and went (`manifest pin`) can no longer be told.
            if peer.notify_tool_list_changed().await.is_ok() {
                told += 1;
            }
        }
        assert!(told > 0, "nobody connected to announce to");
    }

    /// How many `tools/list` requests it answered.
    pub fn lists(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }

    /// The names of the tools called, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl ServerHandler for Drifting {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities).with_server_info(Implementation::new("drifting", "1.0.0"))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.peers.lock().unwrap().push(context.peer);
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        let tools = Value::Array(self.tools.lock().unwrap().clone());
        Ok(ListToolsResult::with_all_items(
            serde_json::from_value(tools).unwrap(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.calls.lock().unwrap().push(request.name.to_string());
        let text = format!("ran {}", request.name);
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}
