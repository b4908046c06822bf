//! The README's audit record tables are a promise to auditors: a scenario that makes every
//! kind of record, and every field that is only sometimes there (a trace, a credential,
//! a grant used, a refused decision, an upstream that never answered), is held against
//! them in both directions. A field the gateway writes that the README does not name
//! fails, and so does a field the README names that no record has. `audit show` must
//! read every one of those records.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::{Harness, Setup, text};
use mcp_warden::admin::auth::token_hash;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Map, Value, json};

const CAROL: &str = "carol-fields-token";
/// The agent reads; alice may do more, except toggle the extra tool. Refunds need an
/// approval, and one prompt is refused to the agent.
const POLICY: &str = "p, role:assistant, demo/*, read, allow
p, role:assistant, demo/prompts/summarize_note, read, deny
p, role:assistant, demo/issue_refund, act, approve
g, agent:desktop, role:assistant
g, agent:helpdesk, role:assistant
p, user:alice, demo/*, read, allow
p, user:alice, demo/*, transform, allow
p, user:alice, demo/toggle_extra, transform, deny
p, user:alice, demo/*, act, allow
p, role:approver, demo/*, approve, allow
g, user:carol, role:approver
";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Backquoted names outside parentheses, each up to a `:` (`decision: "deny"` names
/// `decision`): a cell's field names, not the values it describes.
fn names(cell: &str) -> BTreeSet<String> {
    let (mut depth, mut quoted, mut current, mut found) =
        (0i32, false, String::new(), BTreeSet::new());
    for c in cell.chars() {
        match c {
            '`' if quoted => {
                quoted = false;
                if depth == 0 {
                    found.insert(current.split(':').next().unwrap().trim().to_string());
                }
                current.clear();
            }
            '`' => quoted = true,
            _ if quoted => current.push(c),
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
    }
    found
}

/// The table rows under the line `header` in `text`, as cells.
fn rows(text: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines().skip_while(|l| l.trim() != header);
    assert!(lines.next().is_some(), "the README has no table `{header}`");
    lines
        .skip(1) // the |---| line
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// Every field of `record` is one the README's tables name for records of `kind`.
pub(crate) fn assert_fields_documented(record: &serde_json::Value, kind: &str) {
    let fields: BTreeSet<String> = record.as_object().unwrap().keys().cloned().collect();
    let documented = &documented()[kind];
    assert!(
        fields.is_subset(documented),
        "the README names the fields of a `{kind}` record: {fields:?} not all in {documented:?}"
    );
}

/// Every field the README documents, by kind of record.
pub(crate) fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let mut fields = BTreeMap::new();
    for row in rows(&readme, "| kind | when | fields |") {
        let kind = names(&row[0])
            .pop_first()
            .expect("a kind in the first column");
        fields.insert(kind, names(&row[2]));
    }
    let kinds: Vec<String> = fields.keys().cloned().collect();
    for row in rows(&readme, "| fields | in the records of |") {
        let shared_by = if row[1] == "every kind" {
            kinds.iter().cloned().collect()
        } else {
            names(&row[1])
        };
        for kind in shared_by {
            let known = fields.get_mut(&kind);
            known
                .unwrap_or_else(|| panic!("shared fields name an unknown kind `{kind}`"))
                .extend(names(&row[0]));
        }
    }
    fields
}

/// The fields of every record in `log`, by kind.
fn written(log: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for record in log {
        let kind = record["kind"].as_str().unwrap().to_string();
        fields
            .entry(kind)
            .or_default()
            .extend(record.as_object().unwrap().keys().cloned());
    }
    fields
}

/// A gateway in front of the demo server whose `list_notes` pin matches nothing (a drift
/// record at start) and whose refunds' intents are redacted, with calls that time out after 2 s, an approver, an API key for
/// HTTP callers, the admin API and Streamable HTTP served.
async fn gateway() -> (Arc<Harness>, String, String, String) {
    let (api_key, api_key_hash) = mcp_warden::identity::new_api_key();
    let shipped = std::fs::read_to_string(common::repo().join("tool-manifests/demo.toml")).unwrap();
    let listed = shipped.find("[tools.list_notes]").unwrap();
    let pin = listed + shipped[listed..].find("pin = \"sha256:").unwrap() + "pin = \"sha256:".len();
    let manifest = format!(
        "{}{}{}",
        &shipped[..pin],
        "0".repeat(64),
        &shipped[pin + 64..]
    )
    .replace(
        "[tools.issue_refund]\ntier = \"act\"\n",
        "[tools.issue_refund]\ntier = \"act\"\nredact = [\"/intent\"]\n",
    );
    let setup = Setup {
        policy: Some(POLICY.into()),
        manifest: Some(manifest),
        approval_timeout: "30s".into(),
        config_extra: format!(
            "[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{}\"\n\n[[identity.api_keys]]\nagent = \"agent:helpdesk\"\non_behalf_of = \"user:alice\"\nsha256 = \"{api_key_hash}\"\n",
            token_hash(CAROL)
        ),
        ..Setup::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_setup(dir.path(), &setup);
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        // One replica of several: its name in every record.
        config.replacen(
            "[gateway]\n",
            "[gateway]\ncall_timeout = \"2s\"\nreplica = \"fields-1\"\n",
            1,
        ),
    )
    .unwrap();
    // After the session reads a note: echo is refused, a refund needs approval anyway.
    std::fs::write(
        dir.path().join("policies/flows.toml"),
        "[[flow]]\nname = \"no-echo\"\nfrom = [\"internal\"]\ntools = \"demo/echo\"\neffect = \"deny\"\n\n[[flow]]\nname = \"notes-to-refunds\"\nfrom = [\"internal\"]\ntools = \"demo/issue_refund\"\neffect = \"approve\"\n",
    )
    .unwrap();
    let h = Harness::at(dir, &path).await;
    let admin = h.serve_admin().await;
    let mcp = common::serve_http(h.state.clone()).await;
    (Arc::new(h), admin, mcp, api_key)
}

fn args(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

async fn call_traced(h: &Harness, name: &str, arguments: Value) -> rmcp::model::CallToolResult {
    let mut params = CallToolRequestParams::new(name.to_string()).with_arguments(args(arguments));
    params.meta = Some(
        serde_json::from_value(json!({"traceparent": TRACEPARENT,
            "io.mcp-warden/task": {"id": "T-1", "objective": "check the audit fields"}}))
        .unwrap(),
    );
    h.client.peer().call_tool(params).await.unwrap()
}

async fn prompt(peer: &rmcp::Peer<rmcp::RoleClient>, name: &str) -> Result<String, String> {
    let params = GetPromptRequestParams::new(name.to_string())
        .with_arguments(args(json!({"title": "plan"})));
    match peer.get_prompt(params).await {
        Ok(result) => Ok(serde_json::to_string(&result).unwrap()),
        Err(e) => Err(e.to_string()),
    }
}

async fn grant(admin: &str, tools: &str) -> u16 {
    let body = json!({"to": "agent:desktop", "on_behalf_of": "user:alice", "tools": tools,
                      "tier": "transform", "ttl": "30m", "reason": "tidy the notes"});
    let response = reqwest::Client::new()
        .post(format!("{admin}/grants"))
        .bearer_auth(CAROL)
        .json(&body)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// Every kind of record, and every field that is only sometimes written.
async fn scenario(h: &Arc<Harness>, admin: &str, mcp: &str, api_key: &str) {
    let intent = "check the fields of the audit log";
    // attempt + outcome `ok`, with a trace.
    let echoed = call_traced(h, "demo_echo", json!({"text": "hi", "intent": intent})).await;
    assert_eq!(text(&echoed), "hi");
    // decision at the intent stage, then at the policy (the agent may not write).
    let note = json!({"title": "t", "body": "b"});
    assert!(
        call_traced(h, "demo_write_note", note.clone())
            .await
            .is_error
            == Some(true)
    );
    let mut with_intent = note.clone();
    with_intent["intent"] = json!(intent);
    assert!(
        h.call("demo_write_note", with_intent.clone())
            .await
            .unwrap()
            .is_error
            == Some(true)
    );
    // outcome `unknown`, with why: the upstream takes longer than `call_timeout`.
    let slow = h
        .call(
            "demo_slow_count",
            json!({"steps": 1, "delay_ms": 10000, "intent": intent}),
        )
        .await;
    assert!(slow.unwrap().is_error == Some(true));
    // access refused, then a grant refused and one created.
    assert!(
        prompt(h.client.peer(), "demo_summarize_note")
            .await
            .is_err()
    );
    assert_eq!(grant(admin, "fs/*").await, 403);
    assert_eq!(grant(admin, "demo/*").await, 201);
    // A task ended (no grant bound to it: both lists empty, still written).
    let ended = reqwest::Client::new()
        .post(format!("{admin}/tasks/T-0/end"))
        .bearer_auth(CAROL)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    // With the grant: a write (its attempt names the grant), a prompt (its access too),
    // and a toggle alice may not make (its refusal names the grant the agent's verdict used).
    let written = h.call("demo_write_note", with_intent).await.unwrap();
    assert_eq!(text(&written), "saved `t`");
    prompt(h.client.peer(), "demo_customer_reply")
        .await
        .unwrap();
    let toggled = h
        .call("demo_toggle_extra", json!({"intent": intent}))
        .await
        .unwrap();
    assert!(toggled.is_error == Some(true), "{}", text(&toggled));
    // A refund's intent is redacted (`intent_digest`): refused at the arguments stage,
    let too_much = json!({"order_id": "1001", "amount_cents": 60000, "intent": intent});
    assert!(
        h.call("demo_issue_refund", too_much)
            .await
            .unwrap()
            .is_error
            == Some(true)
    );
    // then approval: requested, a refused decision (the requester's own user), approved,
    // executed.
    let refund = json!({"order_id": "1001", "amount_cents": 1200, "intent": intent});
    let waiting = common::spawn_call(h, "demo_issue_refund", refund);
    let id = common::first_pending(h).await.id;
    assert!(
        h.state
            .decide_approval(&id, "user:alice", true, None)
            .await
            .is_err()
    );
    h.state
        .decide_approval(&id, "user:carol", true, None)
        .await
        .unwrap();
    assert!(text(&waiting.await.unwrap()).contains("refunded"));
    // Flow rules: once the session has read a note (its label), an echo is refused and
    // a refund's attempt names the flow that asked for its approval.
    h.call("demo_read_note", json!({"title": "plan"}))
        .await
        .unwrap();
    let echoed = h.call("demo_echo", json!({"text": "hi"})).await.unwrap();
    assert!(
        text(&echoed).contains("flow `no-echo`"),
        "{}",
        text(&echoed)
    );
    let refund = json!({"order_id": "1002", "amount_cents": 900, "intent": intent});
    let tasked = h.clone();
    let waiting =
        tokio::spawn(async move { call_traced(&tasked, "demo_issue_refund", refund).await });
    let id = common::first_pending(h).await.id;
    h.state
        .decide_approval(&id, "user:carol", true, None)
        .await
        .unwrap();
    assert!(text(&waiting.await.unwrap()).contains("refunded"));
    // An authenticated HTTP caller: attempt, outcome, decision and access with its credential.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(mcp).auth_header(api_key.to_string()),
    );
    let http = ().serve(transport).await.unwrap();
    let echo = CallToolRequestParams::new("demo_echo")
        .with_arguments(args(json!({"text": "hi", "intent": intent})));
    assert_eq!(text(&http.peer().call_tool(echo).await.unwrap()), "hi");
    let refused = CallToolRequestParams::new("demo_write_note").with_arguments(args(note));
    assert!(http.peer().call_tool(refused).await.unwrap().is_error == Some(true));
    assert!(prompt(http.peer(), "demo_summarize_note").await.is_err());
    // Refused at the HTTP edge: a bad credential, past the burst (only counted, then
    // named in the next record written), and a malformed message from a known caller.
    let raw = reqwest::Client::new();
    let post = |bearer: String, body: &'static str| {
        raw.post(mcp)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(bearer)
            .body(body)
            .send()
    };
    let ping = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    // 400 at once: past the burst of 100 at 10 a second, hundreds are only counted
    // (unless sending them took half a minute).
    for _ in 0..8 {
        let answers =
            futures::future::join_all((0..50).map(|_| post("mwk_wrong".into(), ping))).await;
        assert!(answers.into_iter().all(|a| a.unwrap().status() == 401));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(post("mwk_wrong".into(), ping).await.unwrap().status(), 401);
    let malformed = post(api_key.to_string(), "{\"jsonrpc\":\"2.0\",\"id\":")
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    // reload: one that takes effect, one refused.
    h.state.reload("test").await.unwrap();
    std::fs::write(h.dir.path().join("tool-manifests/demo.toml"), "server = ").unwrap();
    assert!(h.state.reload("test").await.is_err());
}

#[tokio::test]
async fn every_documented_audit_field_is_written_and_every_written_one_documented() {
    let documented = documented();
    let (h, admin, mcp, api_key) = gateway().await;
    scenario(&h, &admin, &mcp, &api_key).await;
    h.state.audit.flush().await.unwrap();
    let log = common::read_lines(&h.audit_path());
    let written = written(&log);
    // A `recovered` record needs a full disk: `a_full_disk_refuses_calls_and_recovers_by_itself`
    // holds it to its README row.
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        documented
            .keys()
            .filter(|k| *k != "recovered")
            .collect::<Vec<_>>(),
        "the kinds of record written and documented"
    );
    for (kind, fields) in &written {
        let promised = &documented[kind];
        let undocumented: Vec<_> = fields.difference(promised).collect();
        let never_written: Vec<_> = promised.difference(fields).collect();
        assert!(
            undocumented.is_empty() && never_written.is_empty(),
            "`{kind}` records: written but not in the README {undocumented:?}; in the README but never written {never_written:?}"
        );
    }
    // `audit show` reads every one of them as a sentence about it.
    for record in &log {
        let told = mcp_warden::audit::describe(record);
        let kind = record["kind"].as_str().unwrap();
        assert!(
            !told.contains("cannot read") && !told.ends_with(&format!("{kind} record")),
            "{told}"
        );
    }
}

#[test]
fn the_readme_tables_are_read_as_field_names() {
    assert_eq!(
        names("`decision: \"deny\"` (`allow`, or `approve`), `trace` (W3C: `x`), `stage`"),
        BTreeSet::from(["decision".to_string(), "trace".into(), "stage".into()])
    );
    let documented = documented();
    assert!(documented["attempt"].contains("args_digest"));
    assert!(documented["grant"].contains("hash"), "shared by every kind");
    assert!(
        !documented["grant"].contains("call_id"),
        "not a call's record"
    );
    assert!(
        !documented["attempt"].contains("allow"),
        "a value, not a field"
    );
}
