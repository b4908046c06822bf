//! "Everything `agent:helpdesk` did on behalf of `user:alice` today, with who approved it"
//! is one `mcp-warden audit show` command, in words or as the log's own JSON lines, and
//! records of other callers stay out of the answer.

use crate::common;

use std::sync::Arc;

use common::{Harness, Setup, text};
use mcp_warden::admin::auth::token_hash;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

const CAROL: &str = "carol-auditor-test-token";

fn args(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[tokio::test]
async fn one_command_answers_who_did_what_for_whom_and_who_approved_it() {
    let (api_key, hash) = mcp_warden::identity::new_api_key();
    let h = Arc::new(
        Harness::with(Setup {
            approval_timeout: "30s".into(),
            config_extra: format!(
                "[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{}\"\n\n[[identity.api_keys]]\nagent = \"agent:helpdesk\"\non_behalf_of = \"user:alice\"\nsha256 = \"{hash}\"\n",
                token_hash(CAROL)
            ),
            ..Setup::default()
        })
        .await,
    );
    // agent:desktop (stdio, for alice) reads; agent:helpdesk (HTTP, for alice) reads and
    // refunds, which carol approves.
    h.call("demo_echo", json!({"text": "desktop"}))
        .await
        .unwrap();
    let url = common::serve_http(h.state.clone()).await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(api_key),
    );
    let helpdesk = Arc::new(().serve(transport).await.unwrap());
    let echo =
        CallToolRequestParams::new("demo_echo").with_arguments(args(json!({"text": "helpdesk"})));
    assert_eq!(
        text(&helpdesk.peer().call_tool(echo).await.unwrap()),
        "helpdesk"
    );
    let refund = CallToolRequestParams::new("demo_issue_refund").with_arguments(args(
        json!({"order_id": "1001", "amount_cents": 1200, "intent": "refund the broken kettle"}),
    ));
    let caller = helpdesk.clone();
    let waiting = tokio::spawn(async move { caller.peer().call_tool(refund).await.unwrap() });
    let id = common::first_pending(&h).await.id;
    h.state
        .decide_approval(&id, "user:carol", true, Some("photo checked".into()))
        .await
        .unwrap();
    assert!(text(&waiting.await.unwrap()).contains("refunded"));
    h.state.audit.flush().await.unwrap();
    let log = h.audit_path();
    let log = log.to_str().unwrap();

    let (ok, told) = common::run_exe_async(&[
        "audit",
        "show",
        log,
        "--agent",
        "agent:helpdesk",
        "--principal",
        "user:alice",
        "--since",
        "24h",
    ])
    .await;
    assert!(ok, "{told}");
    assert!(!told.contains("agent:desktop"), "{told}");
    assert!(
        told.contains("ALLOWED  demo/echo by agent:helpdesk for user:alice"),
        "{told}"
    );
    assert!(
        told.contains(
            "ALLOWED  demo/issue_refund by agent:helpdesk for user:alice, approved by user:carol"
        ),
        "{told}"
    );
    assert!(told.contains("APPROVED request"), "{told}");

    let (ok, lines) =
        common::run_exe_async(&["audit", "show", log, "--json", "--approver", "user:carol"]).await;
    assert!(ok, "{lines}");
    let selected: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, &str)> = selected
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["event"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("approval", "approved"), ("attempt", "")],
        "{lines}"
    );

    let (ok, nothing) = common::run_exe_async(&[
        "audit",
        "show",
        log,
        "--until",
        "1h",
        "--agent",
        "agent:helpdesk",
    ])
    .await;
    assert!(ok && nothing.trim().is_empty(), "{nothing}");
    let (ok, refused) =
        common::run_exe_async(&["audit", "show", log, "--since", "yesterday"]).await;
    assert!(!ok && refused.contains("nor an age (`24h`)"), "{refused}");
}
