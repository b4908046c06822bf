//! Just-in-time grants: an approver gives an agent a time-boxed permission that policy
//! honours at once and drops by itself when it expires (on a paused-and-advanced clock),
//! or on the next call after it is revoked. Grants stay within what the grantor may
//! approve, never override a deny, apply only to the principal they name, and every
//! step (created, used, expired, revoked, refused) is audited. The CLI goes through the
//! same API.

use crate::common;

use std::time::Duration;

use common::{EXE, Harness, Setup, text};
use mcp_warden::admin::auth::token_hash;
use serde_json::{Value, json};

common::on_both_stores!(
    a_grant_allows_within_its_time_and_denies_after_it,
    revoking_a_grant_takes_effect_on_the_next_call_and_the_cli_does_it_too,
    grants_stay_within_what_the_grantor_may_approve_and_never_beat_a_deny,
    an_expired_grant_is_ignored_by_decisions_before_any_sweep_records_it,
    a_task_bound_grant_covers_only_its_task_and_ends_with_it(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);

const CAROL: &str = "carol-grant-token";
/// alice may transform demo tools; her assistant agent only reads, except what is granted.
const POLICY: &str = "p, role:assistant, demo/*, read, allow
p, role:assistant, demo/toggle_extra, transform, deny
g, agent:desktop, role:assistant
p, user:alice, demo/*, transform, allow
p, user:alice, demo/*, read, allow
p, role:approver, demo/*, approve, allow
g, user:carol, role:approver
";

async fn harness() -> (Harness, String) {
    let h = Harness::with(Setup {
        policy: Some(POLICY.into()),
        config_extra: format!(
            "[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{}\"\n",
            token_hash(CAROL)
        ),
        ..Setup::default()
    })
    .await;
    let admin = h.serve_admin().await;
    (h, admin)
}

async fn post(url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn grant(tools: &str, tier: &str, ttl: &str) -> Value {
    json!({"to": "agent:desktop", "on_behalf_of": "user:alice", "tools": tools, "tier": tier,
           "ttl": ttl, "reason": "migrate the notes this afternoon"})
}

async fn write(h: &Harness) -> rmcp::model::CallToolResult {
    h.call(
        "demo_write_note",
        json!({"title": "t", "body": "b", "intent": "migrate a note"}),
    )
    .await
    .unwrap()
}

async fn grant_events(h: &Harness) -> Vec<String> {
    h.audit()
        .await
        .iter()
        .filter(|r| r["kind"] == "grant")
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect()
}

fn writes(h: &Harness) -> usize {
    h.upstream_calls()
        .iter()
        .filter(|c| c["tool"] == "write_note")
        .count()
}

async fn a_grant_allows_within_its_time_and_denies_after_it() {
    let (h, admin) = harness().await;
    let before = write(&h).await;
    assert_eq!(
        before.is_error,
        Some(true),
        "no rule lets the agent write yet"
    );
    assert!(
        text(&before).contains("`agent:desktop`"),
        "{}",
        text(&before)
    );

    let (status, created) = post(
        &format!("{admin}/grants"),
        Some(CAROL),
        grant("demo/*", "transform", "30m"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let allowed = write(&h).await;
    assert_eq!(text(&allowed), "saved `t`");
    let attempt = h
        .audit()
        .await
        .into_iter()
        .find(|r| r["kind"] == "attempt")
        .unwrap();
    assert_eq!(attempt["grants"], json!([id]));
    assert!(
        attempt["rule"]
            .as_str()
            .unwrap()
            .starts_with(&format!("grant {id}"))
    );

    // Thirty-one minutes later (tokio's clock, which the gateway's expiry clock follows).
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31 * 60)).await;
    tokio::time::resume();
    let after = write(&h).await;
    assert_eq!(after.is_error, Some(true), "the grant expired by itself");
    assert_eq!(writes(&h), 1);

    // Listing sweeps, and the sweep records the expiry.
    let listed: Value = reqwest::Client::new()
        .get(format!("{admin}/grants"))
        .bearer_auth(CAROL)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["grants"][0]["status"], "expired");
    assert_eq!(grant_events(&h).await, ["created", "expired"]);
}

async fn revoking_a_grant_takes_effect_on_the_next_call_and_the_cli_does_it_too() {
    let (h, admin) = harness().await;
    let token_file = h.dir.path().join("carol.token");
    std::fs::write(&token_file, CAROL).unwrap();
    let cli = async |args: &[&str]| {
        let out = tokio::process::Command::new(EXE)
            .arg("grant")
            .args(["--url", &admin, "--token-file"])
            .arg(&token_file)
            .args(args)
            .output()
            .await
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        said
    };
    let added = cli(&[
        "add",
        "--to",
        "agent:desktop",
        "--on-behalf-of",
        "user:alice",
        "--tools",
        "demo/write_note",
        "--tier",
        "transform",
        "--ttl",
        "30m",
        "--reason",
        "fix one note",
    ])
    .await;
    let id = added.split_whitespace().next().unwrap().to_string();
    assert!(
        added.contains("active") && added.contains("demo/write_note"),
        "{added}"
    );
    assert_eq!(text(&write(&h).await), "saved `t`");
    assert!(cli(&["list"]).await.contains(&id));

    let revoked = cli(&["revoke", &id]).await;
    assert!(revoked.contains("revoked"), "{revoked}");
    assert_eq!(write(&h).await.is_error, Some(true));
    assert_eq!(writes(&h), 1);
    assert_eq!(grant_events(&h).await, ["created", "revoked"]);
    let record = h
        .audit()
        .await
        .into_iter()
        .rfind(|r| r["kind"] == "grant")
        .unwrap();
    assert_eq!(record["actor"], "user:carol");
    assert_eq!(record["grant"]["reason"], "fix one note");
}

async fn grants_stay_within_what_the_grantor_may_approve_and_never_beat_a_deny() {
    let (h, admin) = harness().await;
    let url = format!("{admin}/grants");
    let (status, body) = post(&url, None, grant("demo/*", "transform", "30m")).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post(&url, Some(CAROL), grant("fs/*", "transform", "30m")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`approve` permission"),
        "{body}"
    );
    let mut to_self = grant("demo/*", "transform", "30m");
    to_self["to"] = json!("user:carol");
    assert_eq!(post(&url, Some(CAROL), to_self).await.0, 403);
    assert_eq!(
        post(&url, Some(CAROL), grant("demo/*", "approve", "30m"))
            .await
            .0,
        400
    );
    assert_eq!(
        post(&url, Some(CAROL), grant("demo/*", "transform", "48h"))
            .await
            .0,
        400
    );
    assert_eq!(grant_events(&h).await, ["refused"; 4]);

    // A grant for alice's agent does nothing for bob's, and never beats a deny.
    let (status, _) = post(&url, Some(CAROL), grant("demo/*", "transform", "30m")).await;
    assert_eq!(status, 201);
    let denied = h
        .call(
            "demo_toggle_extra",
            json!({"intent": "show the extra tool"}),
        )
        .await
        .unwrap();
    assert_eq!(denied.is_error, Some(true));
    assert!(
        text(&denied).contains("denied by policy rule"),
        "{}",
        text(&denied)
    );
    let bob = Harness::with(Setup {
        policy: Some(format!("{POLICY}p, user:bob, demo/*, transform, allow\n")),
        ..Setup::as_agent("agent:desktop", Some("user:bob"))
    })
    .await;
    // Each harness has its own store; the same grant in bob's gateway names alice.
    let new = mcp_warden::grant::NewGrant {
        to: "agent:desktop".into(),
        on_behalf_of: Some("user:alice".into()),
        tools: "demo/*".into(),
        tier: mcp_warden::manifest::Tier::Transform,
        reason: "alice only".into(),
        by: "user:carol".into(),
        ttl_ms: 60_000,
        task: None,
    };
    bob.state
        .grants
        .insert(&new.into_grant(mcp_warden::clock::now_ms()))
        .await
        .unwrap();
    assert_eq!(
        write(&bob).await.is_error,
        Some(true),
        "the grant names alice, not bob"
    );
}

async fn an_expired_grant_is_ignored_by_decisions_before_any_sweep_records_it() {
    let model = common::repo().join("policies/model.conf");
    let book = std::sync::Arc::new(mcp_warden::grant::GrantBook::default());
    let policy = mcp_warden::policy::Policy::load(
        (&model, &std::fs::read_to_string(&model).unwrap()),
        (std::path::Path::new("p.csv"), POLICY),
    )
    .await
    .unwrap()
    .with_grants(book.clone());
    tokio::time::pause();
    let new = mcp_warden::grant::NewGrant {
        to: "agent:desktop".into(),
        on_behalf_of: Some("user:alice".into()),
        tools: "demo/*".into(),
        tier: mcp_warden::manifest::Tier::Transform,
        reason: "r".into(),
        by: "user:carol".into(),
        ttl_ms: 60_000,
        task: None,
    };
    book.replace(vec![new.into_grant(mcp_warden::clock::now_ms())]);
    let caller = mcp_warden::identity::Caller::from_config(
        &mcp_warden::config::IdentityConfig {
            agent: "agent:desktop".into(),
            on_behalf_of: Some("user:alice".into()),
        },
        "s",
    );
    let tier = mcp_warden::manifest::Tier::Transform;
    let effect = || policy.decide(&caller, "demo/write_note", tier).effect;
    assert_eq!(effect(), mcp_warden::policy::Effect::Allow);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(effect(), mcp_warden::policy::Effect::Deny);
}

/// A grant bound to a task covers only calls of that task (or a sub-task), and ends when
/// the task is ended (API or CLI), which is audited.
async fn a_task_bound_grant_covers_only_its_task_and_ends_with_it() {
    let (h, admin) = harness().await;
    let mut bound = grant("demo/write_note", "transform", "30m");
    bound["task"] = json!("T-5");
    let (status, created) = post(&format!("{admin}/grants"), Some(CAROL), bound).await;
    assert_eq!(status, 201, "{created}");
    let write_in = |task: Option<&'static str>| {
        let mut params = rmcp::model::CallToolRequestParams::new("demo_write_note").with_arguments(
            json!({"title": "t", "body": "b", "intent": "tidy"})
                .as_object()
                .cloned()
                .unwrap(),
        );
        if let Some(id) = task {
            params.meta =
                Some(serde_json::from_value(json!({"io.mcp-warden/task": {"id": id}})).unwrap());
        }
        h.client.peer().call_tool(params)
    };
    assert_ne!(write_in(Some("T-5")).await.unwrap().is_error, Some(true));
    assert_ne!(write_in(Some("T-5/a")).await.unwrap().is_error, Some(true));
    assert_eq!(write_in(Some("T-6")).await.unwrap().is_error, Some(true));
    assert_eq!(write_in(None).await.unwrap().is_error, Some(true));
    // Ended with the CLI, as carol: the grant ends, and the task's next write is refused.
    let config = h.dir.path().join("warden.toml");
    let out = tokio::process::Command::new(EXE)
        .args(["task", "end", "T-5", "--config"])
        .arg(&config)
        .args(["--url", &admin])
        .env("MCP_WARDEN_APPROVER_TOKEN", CAROL)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("task `T-5` ended") && said.contains(created["id"].as_str().unwrap()),
        "{said}"
    );
    assert_eq!(write_in(Some("T-5")).await.unwrap().is_error, Some(true));
    let audit = h.audit().await;
    let ended = audit.iter().find(|r| r["kind"] == "task").unwrap();
    assert_eq!(
        (&ended["event"], &ended["task"], &ended["by"]),
        (&json!("ended"), &json!("T-5"), &json!("user:carol"))
    );
    assert_eq!(ended["grants"], json!([created["id"]]));
    assert!(
        audit
            .iter()
            .any(|r| r["kind"] == "grant" && r["event"] == "revoked")
    );
}
