//! The gateway killed with SIGKILL while eight clients call through it: the audit log it
//! leaves verifies, every call the upstream received has its `attempt` record (the record
//! is written before the call is forwarded, crash or not), and a gateway started on the
//! same log takes it up and extends the chain (and, stopped with SIGTERM, writes the
//! outcome it still had queued and a signed checkpoint over the whole log, which
//! `verify --key` accepts).

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Setup, read_lines};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;

/// Call `demo_echo` with a text of its own until the gateway stops answering.
async fn keep_calling(endpoint: String, client_no: usize) {
    let transport = StreamableHttpClientTransport::from_uri(endpoint);
    let Ok(client) = ().serve(transport).await else {
        return;
    };
    for n in 0.. {
        let args = json!({"text": format!("client {client_no} call {n}")});
        let params = CallToolRequestParams::new("demo_echo")
            .with_arguments(args.as_object().unwrap().clone());
        let call = client.peer().call_tool(params);
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(result)) if result.is_error != Some(true) => {}
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_load_leaves_a_log_that_verifies_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        config_extra: "[listen]\nhttp = \"127.0.0.1:0\"\n".into(),
        ..Setup::default()
    };
    let config = common::write_setup(dir.path(), &setup);
    let (audit, calls) = (
        dir.path().join("audit.jsonl"),
        dir.path().join("calls.jsonl"),
    );
    let (mut gateway, endpoint, _) = common::serve_exe(&config).await;
    let clients: Vec<_> = (0..8)
        .map(|i| tokio::spawn(keep_calling(endpoint.clone(), i)))
        .collect();
    for _ in 0..300 {
        if read_lines(&calls).len() >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(read_lines(&calls).len() >= 300, "the clients got going");
    gateway.start_kill().unwrap(); // SIGKILL: no shutdown, no flush
    gateway.wait().await.unwrap();
    for c in clients {
        c.await.unwrap();
    }

    let report = mcp_warden::audit::verify(&audit);
    assert!(report.is_ok(), "{report:?}");
    let records = read_lines(&audit);
    let attempted: HashSet<String> = records
        .iter()
        .filter(|r| r["kind"] == "attempt")
        .map(|r| r["args"]["text"].as_str().unwrap().to_string())
        .collect();
    // The upstream outlives the gateway by a moment: read what it received now (its log
    // also says which calls in flight it saw cancelled when the gateway's pipe closed).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received: Vec<_> = read_lines(&calls)
        .into_iter()
        .filter(|line| line.get("tool").is_some())
        .collect();
    assert!(received.len() >= 300);
    for call in &received {
        let text = call["args"]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("a call log line without its text: {call}"));
        assert!(
            attempted.contains(text),
            "the upstream received `{text}`, which has no attempt record"
        );
    }

    let before = records.len();
    let (mut restarted, endpoint, _) = common::serve_exe(&config).await;
    let client = ().serve(StreamableHttpClientTransport::from_uri(endpoint)).await.unwrap();
    let args = json!({"text": "after the restart"});
    let result = client
        .peer()
        .call_tool(
            CallToolRequestParams::new("demo_echo")
                .with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    drop(client);
    // Stopped the orderly way (SIGTERM), it writes every queued outcome before it exits.
    common::sigterm(restarted.id().unwrap());
    assert!(restarted.wait().await.unwrap().success());
    mcp_warden::audit::verify(&audit).unwrap();
    let after = read_lines(&audit);
    let attempt = after[before..]
        .iter()
        .find(|r| r["kind"] == "attempt" && r["args"]["text"] == "after the restart")
        .expect("the restarted gateway chains its records onto the old log");
    assert!(
        after[before..]
            .iter()
            .any(|r| r["kind"] == "outcome" && r["call_id"] == attempt["call_id"]),
        "the outcome is written before the gateway exits"
    );
    // The orderly stop signs what it wrote, counting every record since the log began,
    // those of the killed gateway included: the key proves the whole log.
    let last = after.last().unwrap();
    assert_eq!(last["kind"], "checkpoint", "{last}");
    assert_eq!(last["count"], json!(after.len() - 1));
    let (ok, key) =
        common::run_exe_async(&["audit", "key", "--config", config.to_str().unwrap()]).await;
    assert!(ok, "{key}");
    let key = key.lines().next().unwrap().trim().to_string();
    let (ok, report) =
        common::run_exe_async(&["audit", "verify", audit.to_str().unwrap(), "--key", &key]).await;
    assert!(ok, "{report}");
    assert!(report.contains("the 0 records after it"), "{report}");
}
