//! `mcp-warden policy explain` on the shipped configuration: each identity's verdict with
//! its rule, the combined decision, and for a refusal the row that would allow it.

use crate::common;

use common::{EXE, Setup, write_setup};

fn explain(config: &str, agent: &str, tool: &str) -> String {
    let out = std::process::Command::new(EXE)
        .args(["policy", "explain", "--config", config, "--agent", agent])
        .args(["--on-behalf-of", "user:alice", "--tool", tool])
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
