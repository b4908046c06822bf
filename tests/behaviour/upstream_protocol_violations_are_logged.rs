//! An upstream that breaks the protocol is named in the gateway's log: an answer to a
//! request the gateway never sent (rmcp drops it silently) is logged at `warn` with the
//! upstream's id and the request id, and the call it came with still gets its own answer.
//! A server that never answers `server/discover` is still served, and named in the log.

use crate::common;

use std::process::Stdio;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;

/// A stdio MCP server in a few lines of Python that answers each `tools/call` twice:
/// first for an id nobody sent, then for the call.
const ODD_SERVER: &str = r#"
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    method = m.get("method")
    if method == "initialize":
        r = {"protocolVersion": m["params"]["protocolVersion"], "capabilities": {"tools": {}},
             "serverInfo": {"name": "odd", "version": "1"}}
    elif method == "tools/list":
        r = {"tools": [{"name": "ping", "description": "answers twice", "inputSchema": {"type": "object"}}]}
    elif method == "tools/call":
        print(json.dumps({"jsonrpc": "2.0", "id": 987654, "result": {"content": []}}), flush=True)
        r = {"content": [{"type": "text", "text": "pong"}]}
    else:
        r = {}
    print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}), flush=True)
"#;

/// The gateway over stdio in `base`, in front of the Python server `script` as upstream
/// `odd` (its `[[upstream]]` table with `protocol` added), logging to `gateway.log`.
async fn serve_odd(
    base: &std::path::Path,
    script: &str,
    protocol: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    std::fs::write(base.join("odd.py"), script).unwrap();
    std::fs::create_dir_all(base.join("tool-manifests")).unwrap();
    std::fs::write(
        base.join("tool-manifests/odd.toml"),
        "server = \"odd\"\n[tools.ping]\ntier = \"read\"\n",
    )
    .unwrap();
    std::fs::write(
        base.join("policy.csv"),
        "p, agent:desktop, odd/*, read, allow\np, user:alice, odd/*, read, allow\n",
    )
    .unwrap();
    let repo = common::repo();
    let config = format!(
        "[gateway]\nmanifests = \"tool-manifests\"\npolicy_model = \"{}/policies/model.conf\"\npolicy = \"policy.csv\"\naudit_log = \"audit.jsonl\"\n\n[identity.stdio]\nagent = \"agent:desktop\"\non_behalf_of = \"user:alice\"\n\n[[upstream]]\nid = \"odd\"\n{protocol}command = \"python3\"\nargs = [\"{}\"]\n",
        repo.display(),
        base.join("odd.py").display()
    );
    std::fs::write(base.join("warden.toml"), config).unwrap();
    let log = std::fs::File::create(base.join("gateway.log")).unwrap();
    let mut cmd = tokio::process::Command::new(common::EXE);
    cmd.args(["serve", "--transport", "stdio", "--config"])
        .arg(base.join("warden.toml"))
        .env("MCP_WARDEN_LOG", "warn");
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    ().serve(transport).await.unwrap()
}

/// The first line of the gateway's log containing `what`, once it is there.
async fn logged_line(base: &std::path::Path, what: &str) -> String {
    let mut logged = String::new();
    for _ in 0..100 {
        logged = std::fs::read_to_string(base.join("gateway.log")).unwrap();
        if let Some(line) = logged.lines().find(|l| l.contains(what)) {
            return line.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no line with {what:?} in:\n{logged}")
}

#[tokio::test]
async fn an_answer_to_a_request_never_sent_is_logged_with_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    // It answers every method, `server/discover` too (with `{}`): only `initialize` works.
    let client = serve_odd(base, ODD_SERVER, "protocol = \"2025-11-25\"\n").await;
    let pong = client
        .peer()
        .call_tool(CallToolRequestParams::new("odd_ping"))
        .await
        .unwrap();
    assert_eq!(
        common::text(&pong),
        "pong",
        "the call still gets its own answer"
    );
    client.cancel().await.unwrap();
    let line = logged_line(base, "unknown id").await;
    assert!(
        line.contains("WARN") && line.contains("upstream=odd") && line.contains("987654"),
        "{line}"
    );
}

/// A server of the `initialize` era that leaves a method it does not know unanswered
/// (where JSON-RPC says "method not found").
const SILENT_SERVER: &str = r#"
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    method = m.get("method")
    if "id" not in m or method not in ("initialize", "tools/list", "tools/call"):
        continue
    if method == "initialize":
        r = {"protocolVersion": m["params"]["protocolVersion"], "capabilities": {"tools": {}},
             "serverInfo": {"name": "silent", "version": "1"}}
    elif method == "tools/list":
        r = {"tools": [{"name": "ping", "description": "answers", "inputSchema": {"type": "object"}}]}
    else:
        r = {"content": [{"type": "text", "text": "pong"}]}
    print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}), flush=True)
"#;

/// Asked `server/discover` first (the default), a server that never answers it is spoken
/// to with `initialize` after rmcp's wait, and the log names the upstream and the setting
/// that skips the wait.
#[tokio::test]
async fn a_server_that_never_answers_the_discovery_is_served_and_named_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let client = serve_odd(base, SILENT_SERVER, "").await;
    let pong = client
        .peer()
        .call_tool(CallToolRequestParams::new("odd_ping"))
        .await
        .unwrap();
    assert_eq!(common::text(&pong), "pong");
    client.cancel().await.unwrap();
    let line = logged_line(base, "server/discover").await;
    assert!(
        line.contains("WARN") && line.contains("upstream=odd"),
        "{line}"
    );
    assert!(line.contains("protocol = \"2025-11-25\""), "{line}");
}
