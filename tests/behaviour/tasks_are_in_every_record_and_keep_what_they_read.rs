//! A task declared in `_meta["io.mcp-warden/task"]`: it is in every record of the call,
//! shown to approvers beside the intent, selected by `audit show --task` (sub-tasks
//! included), and what a task has read follows it across the sessions of its chain (a
//! session without the task is not held back).

use crate::common;

use std::sync::Arc;

use common::{EXE, Harness, Setup, first_pending, repo, text};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

fn with_task(name: &str, args: Value, task: Option<&str>) -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new(name.to_string())
        .with_arguments(args.as_object().cloned().unwrap());
    if let Some(id) = task {
        let meta = json!({"io.mcp-warden/task": {"id": id, "objective": "tidy the plan"}});
        params.meta = Some(serde_json::from_value(meta).unwrap());
    }
    params
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_in_every_record_shown_to_approvers_and_selected_by_audit_show() {
    let h = Arc::new(
        Harness::with(Setup {
            approval_timeout: "30s".into(),
            config_extra: format!(
                "[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{}\"\n",
                mcp_warden::admin::auth::token_hash("carol-token")
            ),
            ..Setup::default()
        })
        .await,
    );
    let read = h
        .client
        .peer()
        .call_tool(with_task(
            "demo_read_note",
            json!({"title": "plan"}),
            Some("T-7/read"),
        ))
        .await
        .unwrap();
    assert_ne!(read.is_error, Some(true), "{}", text(&read));
    // An approval request carries the task beside the intent.
    let refund = json!({"order_id": "1001", "amount_cents": 100, "intent": "refund it"});
    let peer = h.client.peer().clone();
    let waiting = tokio::spawn(async move {
        peer.call_tool(with_task("demo_issue_refund", refund, Some("T-7")))
            .await
            .unwrap()
    });
    let request = first_pending(&h).await;
    assert_eq!(request.call.task.as_ref().unwrap().id, "T-7");
    let url = h.serve_admin().await;
    let shown: Value = reqwest::Client::new()
        .get(format!("{url}/approvals/{}", request.id))
        .bearer_auth("carol-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["task"],
        json!({"id": "T-7", "objective": "tidy the plan"}),
        "{shown}"
    );
    assert_eq!(shown["intent"], "refund it");
    h.state
        .decide_approval(&request.id, "user:carol", false, None)
        .await
        .unwrap();
    waiting.await.unwrap();
    h.call("demo_echo", json!({"text": "no task"}))
        .await
        .unwrap();
    let audit = h.audit().await;
    for r in audit
        .iter()
        .filter(|r| r["tool"] == "read_note" || r["tool"] == "issue_refund")
    {
        assert!(r["task"]["id"].as_str().unwrap().starts_with("T-7"), "{r}");
        assert_eq!(r["task"]["objective"], "tidy the plan", "{r}");
    }
    // `audit show --task T-7` selects the task's records, its sub-task's included.
    let out = std::process::Command::new(EXE)
        .args(["audit", "show", "--json", "--task", "T-7"])
        .arg(h.audit_path())
        .output()
        .unwrap();
    let shown: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(shown.iter().any(|r| r["task"]["id"] == "T-7/read"));
    assert!(shown.iter().any(|r| r["task"]["id"] == "T-7"));
    assert!(shown.iter().all(|r| r["tool"] != "echo"), "{shown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_task_has_read_follows_it_into_another_session() {
    let h = Arc::new(
        Harness::with(Setup {
            approval_timeout: "2s".into(),
            ..Setup::as_agent("agent:ops-bot", Some("user:alice"))
        })
        .await,
    );
    std::fs::copy(
        repo().join("policies/flows.toml"),
        h.dir.path().join("policies/flows.toml"),
    )
    .unwrap();
    h.state.reload("test").await.unwrap();
    let message = || json!({"to": "bob@example.com", "body": "b", "intent": "tell bob"});
    h.client
        .peer()
        .call_tool(with_task(
            "demo_read_note",
            json!({"title": "plan"}),
            Some("T-9"),
        ))
        .await
        .unwrap();
    // Another session of the same chain, in the same task: held back, and told why.
    let (other, _) = common::connect(&h.state).await;
    let held = other
        .peer()
        .call_tool(with_task("demo_send_message", message(), Some("T-9/send")))
        .await
        .unwrap();
    assert_eq!(held.is_error, Some(true));
    assert!(
        text(&held).contains("flow `internal-out`"),
        "{}",
        text(&held)
    );
    // The same session without the task read nothing.
    let free = other
        .peer()
        .call_tool(with_task("demo_send_message", message(), None))
        .await
        .unwrap();
    assert_ne!(
        free.is_error,
        Some(true),
        "{} / held: {}",
        text(&free),
        text(&held)
    );
}
