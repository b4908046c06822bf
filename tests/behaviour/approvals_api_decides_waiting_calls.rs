//! The admin JSON API: only authenticated approvers get in (bearer token; never in the
//! query string; foreign `Host` and cross-site `Origin` refused); they see the waiting
//! request with everything needed to decide, and their approval or denial reaches the
//! waiting call. The requester's own chain and approvers without permission are refused,
//! and every refused decision is audited. The page signs in with a strict cookie and can
//! decide only with JSON. The CLI does the same through the API.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{EXE, Harness, Setup, text};
use mcp_warden::admin::auth::token_hash;
use mcp_warden::approval::Status;
use serde_json::{Value, json};

common::on_both_stores!(
    the_api_lets_in_only_authenticated_approvers_from_this_site,
    an_approval_through_the_api_lets_the_waiting_call_finish,
    the_requesters_chain_and_approvers_without_permission_are_refused,
    the_cli_lists_and_approves_through_the_api,
    the_page_signs_in_with_a_strict_cookie_and_decides_only_with_json,
);

const CAROL: &str = "carol-secret-token";
const ALICE: &str = "alice-secret-token";
const DAVE: &str = "dave-secret-token";

fn approvers() -> String {
    [
        ("user:carol", CAROL),
        ("user:alice", ALICE),
        ("user:dave", DAVE),
    ]
    .iter()
    .map(|(who, t)| {
        format!(
            "[[approver]]\nidentity = \"{who}\"\nsha256 = \"{}\"\n",
            token_hash(t)
        )
    })
    .collect()
}

async fn harness() -> (Arc<Harness>, String) {
    let shipped = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap();
    let h = Harness::with(Setup {
        approval_timeout: "30s".into(),
        // Alice may approve in general, but never a call made on her behalf.
        policy: Some(format!("{shipped}\ng, user:alice, role:approver\n")),
        config_extra: approvers(),
        ..Setup::default()
    })
    .await;
    let url = h.serve_admin().await;
    (Arc::new(h), url)
}

fn refund(amount: u64) -> Value {
    json!({"order_id": "1001", "amount_cents": amount, "intent": "refund the damaged order"})
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn post(url: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// Wait until the API lists one pending request for carol; return it.
async fn listed(url: &str) -> Value {
    for _ in 0..100 {
        let (status, body) = get(&format!("{url}/approvals"), Some(CAROL)).await;
        assert_eq!(status, 200, "{body}");
        if let Some(r) = body["requests"].as_array().and_then(|a| a.first()) {
            return r.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the waiting call never showed up in the API");
}

async fn the_api_lets_in_only_authenticated_approvers_from_this_site() {
    let (_h, url) = harness().await;
    let (status, body) = get(&format!("{url}/approvals"), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("approver token"));
    assert_eq!(
        get(&format!("{url}/approvals"), Some("agent-guess"))
            .await
            .0,
        401
    );
    let query = get(&format!("{url}/approvals?access_token={CAROL}"), None).await;
    assert_eq!(
        query.0, 400,
        "tokens in the query string are refused: {}",
        query.1
    );

    let client = reqwest::Client::new();
    let rebinding = client
        .get(format!("{url}/approvals"))
        .bearer_auth(CAROL)
        .header("Host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebinding.status().as_u16(), 403);
    let cross_site = client
        .post(format!("{url}/approvals/x/approve"))
        .bearer_auth(CAROL)
        .header("Origin", "http://attacker.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status().as_u16(), 403);
    let page = client.get(format!("{url}/")).send().await.unwrap();
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

async fn an_approval_through_the_api_lets_the_waiting_call_finish() {
    let (h, url) = harness().await;
    let waiting = common::spawn_call(&h, "demo_issue_refund", refund(1200));
    let r = listed(&url).await;
    assert_eq!(
        (
            &r["agent"],
            &r["on_behalf_of"],
            &r["intent"],
            &r["tier"],
            &r["tool"]
        ),
        (
            &json!("agent:desktop"),
            &json!("user:alice"),
            &json!("refund the damaged order"),
            &json!("act"),
            &json!("issue_refund")
        )
    );
    assert_eq!(
        r["arguments"],
        json!({"order_id": "1001", "amount_cents": 1200})
    );
    assert!(r["time_left_ms"].as_u64().unwrap() > 20_000);
    let id = r["id"].as_str().unwrap();
    assert_eq!(
        get(&format!("{url}/approvals/{id}"), Some(CAROL)).await.1["id"],
        *id
    );

    let (status, body) = post(
        &format!("{url}/approvals/{id}/approve"),
        CAROL,
        json!({"comment": "order checked"}),
    )
    .await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("approved")),
        "{body}"
    );
    let result = waiting.await.unwrap();
    assert_eq!(text(&result), "refunded 12.00 for order 1001");
    assert_eq!(h.upstream_calls().len(), 1);
    let decided = h
        .audit()
        .await
        .into_iter()
        .find(|a| a["kind"] == "approval" && a["event"] == "approved")
        .expect("the approval is audited");
    assert_eq!(decided["actor"], "user:carol");

    let again = post(&format!("{url}/approvals/{id}/approve"), CAROL, json!({})).await;
    assert_eq!(
        again.0, 409,
        "a used approval cannot be decided again: {}",
        again.1
    );
}

async fn the_requesters_chain_and_approvers_without_permission_are_refused() {
    let (h, url) = harness().await;
    let waiting = common::spawn_call(&h, "demo_issue_refund", refund(900));
    let id = listed(&url).await["id"].as_str().unwrap().to_string();

    let (status, body) = post(&format!("{url}/approvals/{id}/approve"), ALICE, json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("never be the requesting agent")
    );

    let (list_status, list) = get(&format!("{url}/approvals"), Some(DAVE)).await;
    assert_eq!(
        (list_status, &list["requests"]),
        (200, &json!([])),
        "dave sees nothing to decide"
    );
    let (status, body) = post(&format!("{url}/approvals/{id}/approve"), DAVE, json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`approve` permission")
    );

    assert_eq!(
        h.state.approvals.get(&id).await.unwrap().status,
        Status::Pending
    );
    assert!(h.upstream_calls().is_empty());
    let refused: Vec<Value> = h
        .audit()
        .await
        .into_iter()
        .filter(|a| a["event"] == "refused-decision")
        .collect();
    assert_eq!(refused.len(), 2, "both refused decisions are audited");
    assert_eq!(
        (&refused[0]["actor"], &refused[1]["actor"]),
        (&json!("user:alice"), &json!("user:dave"))
    );

    let (status, _) = post(
        &format!("{url}/approvals/{id}/deny"),
        CAROL,
        json!({"comment": "not without a ticket"}),
    )
    .await;
    assert_eq!(status, 200);
    let result = waiting.await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("denied by `user:carol`: not without a ticket"),
        "{}",
        text(&result)
    );
    assert!(h.upstream_calls().is_empty());
}

fn cli(url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(EXE)
        .args(["approvals", "--url", url])
        .args(args)
        .env("MCP_WARDEN_APPROVER_TOKEN", CAROL)
        .output()
        .unwrap()
}

async fn the_cli_lists_and_approves_through_the_api() {
    let (h, url) = harness().await;
    let waiting = common::spawn_call(
        &h,
        "demo_issue_refund",
        json!({"order_id": "77\u{202e}1", "amount_cents": 500, "intent": "refund\u{1b}[2J order"}),
    );
    let id = listed(&url).await["id"].as_str().unwrap().to_string();
    let u = url.clone();
    let list = tokio::task::spawn_blocking(move || cli(&u, &["list"]))
        .await
        .unwrap();
    let out = String::from_utf8(list.stdout).unwrap();
    assert!(list.status.success(), "{out}");
    assert!(
        out.contains(&id) && out.contains("demo/issue_refund [act]"),
        "{out}"
    );
    assert!(
        out.contains("refund\\u{001B}[2J order"),
        "escape sequences are shown, not run: {out}"
    );
    assert!(!out.contains('\u{1b}'), "{out}");

    let u = url.clone();
    let show = tokio::task::spawn_blocking(move || cli(&u, &["show", &id]))
        .await
        .unwrap();
    let shown = String::from_utf8(show.stdout).unwrap();
    assert!(
        shown.contains("77\\u{202E}1"),
        "bidi override shown escaped: {shown}"
    );

    let id = listed(&url).await["id"].as_str().unwrap().to_string();
    let u = url.clone();
    let approve =
        tokio::task::spawn_blocking(move || cli(&u, &["approve", &id, "--comment", "ok"]))
            .await
            .unwrap();
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );
    assert_eq!(
        text(&waiting.await.unwrap()),
        "refunded 5.00 for order 77\u{202e}1"
    );
    assert_eq!(h.upstream_calls().len(), 1);

    let u = url.clone();
    let denied = tokio::task::spawn_blocking(move || cli(&u, &["deny", "no-such-id"]))
        .await
        .unwrap();
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("no approval request"));
}

async fn the_page_signs_in_with_a_strict_cookie_and_decides_only_with_json() {
    let (h, url) = harness().await;
    let client = reqwest::Client::new();
    let wrong = client
        .post(format!("{url}/login"))
        .json(&json!({"token": "guess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let login = client
        .post(format!("{url}/login"))
        .json(&json!({"token": CAROL}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let me: Value = client
        .get(format!("{url}/me"))
        .header("Cookie", &pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["identity"], "user:carol");

    let waiting = common::spawn_call(&h, "demo_issue_refund", refund(300));
    let id = listed(&url).await["id"].as_str().unwrap().to_string();
    let form = client
        .post(format!("{url}/approvals/{id}/approve"))
        .header("Cookie", &pair)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("comment=x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        form.status().as_u16(),
        415,
        "a cross-site form cannot decide"
    );
    assert_eq!(
        h.state.approvals.get(&id).await.unwrap().status,
        Status::Pending
    );
    let json_post = client
        .post(format!("{url}/approvals/{id}/deny"))
        .header("Cookie", &pair)
        .json(&json!({"comment": "not today"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_post.status().as_u16(), 200);
    assert!(text(&waiting.await.unwrap()).contains("not today"));
}
