//! `mcp-warden policy explain` on the shipped configuration: each identity's verdict with
//! its rule, the combined decision, and for a refusal the row that would allow it.

use crate::common;

use common::{EXE, Setup, write_setup};

fn explain(config: &str, agent: &str, tool: &str) -> String {
    explain_for(config, agent, "user:alice", tool)
}

fn explain_for(config: &str, agent: &str, user: &str, tool: &str) -> String {
    let out = std::process::Command::new(EXE)
        .args(["policy", "explain", "--config", config, "--agent", agent])
        .args(["--on-behalf-of", user, "--tool", tool])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn explain_gives_each_verdict_its_rule_and_a_fix_for_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &Setup::default());
    let config = config.to_str().unwrap();

    let read = explain(config, "agent:desktop", "demo/read_note");
    assert!(read.contains("tiered `read`"), "{read}");
    assert!(
        read.contains("agent:desktop") && read.contains("p, role:assistant, demo/*, read, allow"),
        "{read}"
    );
    assert!(read.lines().any(|l| l == "ALLOWED"), "{read}");

    let refund = explain(config, "agent:desktop", "demo/issue_refund");
    assert!(refund.contains("NEEDS APPROVAL"), "{refund}");

    let stranger = explain(config, "agent:stranger", "demo/write_note");
    assert!(
        stranger.contains("agent:stranger           no rule (denied)"),
        "{stranger}"
    );
    assert!(stranger.contains("DENIED"), "{stranger}");
    assert!(
        stranger.contains(
            "to allow `agent:stranger`: p, agent:stranger, demo/write_note, transform, allow"
        ),
        "{stranger}"
    );
    let hidden = explain(config, "agent:desktop", "demo/no_such_tool");
    assert!(hidden.contains("not in any manifest"), "{hidden}");
}

/// Personal mode: explain says the user confirms, and what each channel proves.
#[test]
fn explain_says_who_confirms_and_what_each_channel_proves() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &Setup::default());
    let config = config.to_str().unwrap();
    let message = explain_for(config, "agent:laptop", "user:dana", "demo/send_message");
    assert!(
        message.contains("NEEDS THE USER'S CONFIRMATION"),
        "{message}"
    );
    assert!(
        message.contains("in their own MCP client")
            && message.contains("proves only that the client said its user answered"),
        "{message}"
    );
    let refund = explain_for(config, "agent:laptop", "user:dana", "demo/issue_refund");
    assert!(refund.contains("NEEDS THE USER'S CONFIRMATION"), "{refund}");
    assert!(
        refund.contains("signed in with their own approver credential")
            && !refund.contains("MCP client"),
        "{refund}"
    );
}

/// With the labels a session holds, explain names the flow rule that applies.
#[test]
fn explain_names_the_flow_a_sessions_labels_meet() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &Setup::default());
    std::fs::copy(
        common::repo().join("policies/flows.toml"),
        dir.path().join("policies/flows.toml"),
    )
    .unwrap();
    let run = |labels: &str| {
        let out = std::process::Command::new(EXE)
            .args(["policy", "explain", "--config", config.to_str().unwrap()])
            .args(["--agent", "agent:ops-bot", "--on-behalf-of", "user:alice"])
            .args(["--tool", "demo/send_message", "--session-labels", labels])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let held = run("internal");
    assert!(
        held.contains("FLOW `internal-out`") && held.contains("approval needed"),
        "{held}"
    );
    let other = run("public");
    assert!(other.contains("no flow rule applies"), "{other}");
}
