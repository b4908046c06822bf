//! Clients and upstreams on different protocol revisions meet in the gateway: a client on
//! 2025-06-18 and one on 2025-11-25 both use an upstream that speaks only 2025-06-18, and
//! a 2025-06-18 client uses an upstream on 2025-11-25, with calls, server-to-client
//! requests and progress passing both ways. (Clients on 2026-07-28 are the Python SDK's
//! tests: they negotiate down to 2025-11-25.)
#![allow(deprecated)] // sampling is deprecated by SEP-2577 but still relayed

use crate::common;
use crate::fixture;

use std::sync::{Arc, Mutex};

use common::{connect_as, text};
use rmcp::model::{
    CallToolRequestParams, ClientConfig, ClientRequest, CreateMessageRequestParams,
    CreateMessageResult, Implementation, ProgressNotificationParam, ProtocolVersion, Request,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext};
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::json;

/// A client on one protocol revision that offers sampling and counts progress.
#[derive(Clone)]
struct OnRevision {
    version: ProtocolVersion,
    progress: Arc<Mutex<Vec<f64>>>,
}

impl ClientHandler for OnRevision {
    async fn create_message(
        &self,
        _p: CreateMessageRequestParams,
        _c: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        Ok(serde_json::from_value(json!({
            "role": "assistant", "model": "m", "content": {"type": "text", "text": "answered"}
        }))
        .unwrap())
    }

    async fn on_progress(&self, p: ProgressNotificationParam, _c: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(p.progress);
    }

    fn get_info(&self) -> ClientConfig {
        let capabilities = serde_json::from_value(json!({"sampling": {}})).unwrap();
        ClientConfig::new(capabilities, Implementation::new("on-revision", "1.0.0"))
            .with_protocol_version(self.version.clone())
    }
}

/// A fixture speaking only `upstream` (or every revision), and a gateway in front of it
/// whose `[[upstream]]` table adds `config`.
async fn start(
    upstream: Option<ProtocolVersion>,
    config: &str,
) -> (
    tempfile::TempDir,
    Arc<mcp_warden::gateway::State>,
    fixture::Fixture,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let fixture = fixture::Fixture {
        only: upstream,
        ..fixture::Fixture::default()
    };
    tokio::spawn(fixture::serve_as(listener, fixture.clone()));
    let dir = tempfile::tempdir().unwrap();
    let state = common::fixture_gateway_with(dir.path(), &url, "", config).await;
    (dir, state, fixture)
}

/// Connect on `version`, check the revision agreed, and use the upstream every way.
async fn works_on(state: &Arc<mcp_warden::gateway::State>, version: ProtocolVersion) {
    let handler = OnRevision {
        version: version.clone(),
        progress: Arc::default(),
    };
    let client = connect_as(state, handler.clone()).await;
    assert_eq!(client.peer_info().unwrap().protocol_version, version);
    let simple = client
        .peer()
        .call_tool(CallToolRequestParams::new("test_simple_text"))
        .await
        .unwrap();
    assert_eq!(text(&simple), "This is a simple text response for testing.");
    let args = json!({"prompt": "p"}).as_object().cloned().unwrap();
    let sampled = client
        .peer()
        .call_tool(CallToolRequestParams::new("test_sampling").with_arguments(args))
        .await
        .unwrap();
    assert_eq!(text(&sampled), "LLM response: answered");
    let request = ClientRequest::CallToolRequest(Request::new(CallToolRequestParams::new(
        "test_tool_with_progress",
    )));
    let handle = client
        .peer()
        .send_request_with_option(request, PeerRequestOptions::no_options())
        .await
        .unwrap();
    handle.await_response().await.unwrap();
    assert_eq!(*handler.progress.lock().unwrap(), [0.0, 50.0, 100.0]);
}

#[tokio::test]
async fn clients_on_either_revision_use_an_upstream_on_2025_06_18() {
    // Asked `server/discover` first (the default), the fixture answers that it speaks
    // only 2025-06-18; the gateway then opens the connection with `initialize`.
    let (_dir, state, fixture) = start(Some(ProtocolVersion::V_2025_06_18), "").await;
    works_on(&state, ProtocolVersion::V_2025_06_18).await;
    works_on(&state, ProtocolVersion::V_2025_11_25).await;
    let seen = fixture.seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|v| v == "2025-06-18"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_client_on_2025_06_18_uses_an_upstream_on_2025_11_25() {
    let (_dir, state, fixture) = start(None, "protocol = \"2025-11-25\"").await;
    works_on(&state, ProtocolVersion::V_2025_06_18).await;
    let seen = fixture.seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|v| v == "2025-11-25"),
        "{seen:?}"
    );
}
