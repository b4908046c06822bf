//! Progress from the upstream reaches the caller under the caller's own token, and a
//! caller's cancellation reaches the upstream and is audited.

use crate::common;

use std::time::Duration;

use common::Harness;
use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, ClientRequest, NumberOrString, ProgressToken, Request, RequestMetaObject,
};
use rmcp::service::PeerRequestOptions;
use serde_json::json;

fn slow_count(steps: u64, delay_ms: u64) -> ClientRequest {
    let args = json!({"steps": steps, "delay_ms": delay_ms})
        .as_object()
        .unwrap()
        .clone();
    ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("demo_slow_count").with_arguments(args),
    ))
}

#[tokio::test]
async fn upstream_progress_reaches_the_caller_with_its_own_token() {
    let h = Harness::start().await;
    let handle = h
        .client
        .peer()
        .send_request_with_option(slow_count(3, 20), PeerRequestOptions::no_options())
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    handle.await_response().await.unwrap();
    let progress = h.events.progress.lock().unwrap().clone();
    assert_eq!(progress.len(), 3, "{progress:?}");
    assert!(progress.iter().all(|p| p.progress_token == token));
    assert_eq!(progress.last().unwrap().progress, 3.0);
}

/// An upstream that sends its progress back to back and answers straight after: every
/// notification still reaches the caller, in order, before the result. rmcp hands a
/// response to the waiting call at once but each notification to a task of its own, so a
/// relay that rode on those tasks, on a gateway with several worker threads, reordered
/// them or lost the last ones once the call had answered. The gateway here is the real
/// binary (several worker threads) over stdio; this client runs on one thread, so its
/// own notification tasks run in the order the messages arrived.
#[tokio::test]
async fn progress_sent_just_before_the_result_is_never_lost() {
    const STEPS: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_setup(dir.path(), &common::Setup::default());
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-warden"));
    cmd.args(["serve", "--transport", "stdio", "--config"])
        .arg(&config)
        .env("MCP_WARDEN_LOG", "warn");
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let events = common::TestClient::default();
    let client = events.clone().serve(transport).await.unwrap();
    for round in 0..20 {
        events.progress.lock().unwrap().clear();
        let handle = client
            .peer()
            .send_request_with_option(slow_count(STEPS, 0), PeerRequestOptions::no_options())
            .await
            .unwrap();
        handle.await_response().await.unwrap();
        // Let the client's notification tasks, made before the result arrived, run.
        tokio::task::yield_now().await;
        let steps: Vec<f64> = events
            .progress
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.progress)
            .collect();
        let expected: Vec<f64> = (1..=STEPS).map(|s| s as f64).collect();
        assert_eq!(steps, expected, "round {round}");
    }
}

#[tokio::test]
async fn cancelling_a_call_cancels_it_upstream_and_is_audited() {
    let h = Harness::start().await;
    let options = PeerRequestOptions::no_options().with_meta(
        RequestMetaObject::with_progress_token(ProgressToken(NumberOrString::Number(7))),
    );
    let handle = h
        .client
        .peer()
        .send_request_with_option(slow_count(50, 100), options)
        .await
        .unwrap();
    // Wait until the upstream has the call, then cancel it.
    for _ in 0..100 {
        if !h.upstream_calls().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.cancel(Some("changed my mind".into())).await.unwrap();
    let mut cancelled = false;
    for _ in 0..200 {
        cancelled = h
            .upstream_calls()
            .iter()
            .any(|c| c["cancelled"] == "slow_count");
        let audited = h.audit().await.iter().any(|r| r["kind"] == "outcome");
        if cancelled && audited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        cancelled,
        "the upstream saw the cancellation: {:?}",
        h.upstream_calls()
    );
    let outcome = h
        .audit()
        .await
        .into_iter()
        .find(|r| r["kind"] == "outcome")
        .expect("outcome audited");
    assert_eq!(outcome["outcome"], "unknown");
    assert!(
        outcome["error"].as_str().unwrap().contains("cancelled"),
        "{outcome}"
    );
}
