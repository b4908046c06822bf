//! A gateway restart loses no approval request: a call parked by one gateway process is
//! still listed by the next, an approver decides it there, and the client's identical
//! retry is executed once; the audit chain runs unbroken across both processes.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{EXE, Setup, TestClient, read_lines, text, write_setup};
use mcp_warden::admin::auth::token_hash;
use rmcp::RoleClient;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RunningService, ServiceError};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

common::on_both_stores!(
    a_pending_request_outlives_the_gateway_and_its_approval_is_honoured_after(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);

const CAROL: &str = "carol-restart-token";

async fn launch(dir: &Path, config: &Path) -> (RunningService<RoleClient, TestClient>, u32) {
    let mut cmd = tokio::process::Command::new(EXE);
    cmd.args(["serve", "--transport", "stdio", "--config"])
        .arg(config)
        .current_dir(dir)
        .stderr(std::process::Stdio::null());
    let child = TokioChildProcess::new(cmd).unwrap();
    let pid = child.id().unwrap();
    (TestClient::default().serve(child).await.unwrap(), pid)
}

async fn refund(
    client: &RunningService<RoleClient, TestClient>,
) -> Result<CallToolResult, ServiceError> {
    let args =
        json!({"order_id": "1001", "amount_cents": 3100, "intent": "refund after the outage"});
    client
        .peer()
        .call_tool(
            CallToolRequestParams::new("demo_issue_refund")
                .with_arguments(args.as_object().unwrap().clone()),
        )
        .await
}

async fn pending(admin: &str) -> Vec<Value> {
    for _ in 0..200 {
        if let Ok(r) = reqwest::Client::new()
            .get(format!("{admin}/approvals"))
            .bearer_auth(CAROL)
            .send()
            .await
        {
            let body: Value = r.json().await.unwrap();
            let list = body["requests"].as_array().unwrap().clone();
            if !list.is_empty() {
                return list;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no pending request was listed at {admin}");
}

async fn a_pending_request_outlives_the_gateway_and_its_approval_is_honoured_after() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("http://127.0.0.1:{port}");
    let config = write_setup(
        dir.path(),
        &Setup {
            approval_timeout: "10m".into(),
            config_extra: format!(
                "[listen]\nadmin = \"127.0.0.1:{port}\"\n\n[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{}\"\n",
                token_hash(CAROL)
            ),
            ..Setup::default()
        },
    );

    let (first, pid) = launch(dir.path(), &config).await;
    let parked = tokio::spawn(async move {
        let r = refund(&first).await;
        (r, first)
    });
    let before = pending(&admin).await;
    assert_eq!(before.len(), 1);
    let id = before[0]["id"].as_str().unwrap().to_string();
    // The operator stops the gateway (SIGTERM): the waiting caller is told what to do.
    common::sigterm(pid);
    let (told, first) = parked.await.unwrap();
    let told = told.unwrap();
    assert_eq!(told.is_error, Some(true));
    assert!(
        text(&told).contains(&format!("the gateway is stopping; approval request `{id}` stays pending and survives the restart: once an approver approves it, retry this identical call")),
        "{}",
        text(&told)
    );
    drop(first);
    // Wait for the first process to let go of the admin port.
    for _ in 0..100 {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (second, _) = launch(dir.path(), &config).await;
    let after = pending(&admin).await;
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0]["id"],
        id.as_str(),
        "the same request, not a new one"
    );
    assert_eq!(after[0]["intent"], "refund after the outage");
    let approved = reqwest::Client::new()
        .post(format!("{admin}/approvals/{id}/approve"))
        .bearer_auth(CAROL)
        .json(&json!({"comment": "approved after the restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status().as_u16(), 200);

    let result = refund(&second).await.unwrap();
    assert_eq!(text(&result), "refunded 31.00 for order 1001");
    let second = std::sync::Arc::new(second);
    let client = second.clone();
    let replay = tokio::spawn(async move { refund(&client).await });
    let asked = pending(&admin).await;
    assert_ne!(
        asked[0]["id"],
        id.as_str(),
        "a used approval is not reused: the replay asks anew"
    );
    replay.abort();

    let calls = read_lines(&dir.path().join("calls.jsonl"));
    assert_eq!(calls.len(), 1, "executed exactly once: {calls:?}");
    let events: Vec<String> = common::audit_records(&dir.path().join("audit.jsonl"))
        .iter()
        .filter(|r| r["kind"] == "approval" && r["approval"]["id"] == id.as_str())
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["requested", "approved", "executed"]);
    let verify = std::process::Command::new(EXE)
        .args(["audit", "verify"])
        .arg(dir.path().join("audit.jsonl"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
