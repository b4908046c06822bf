//! `mcp-warden check` prints every problem with file and line, and `serve` refuses to
//! start on an invalid policy or manifest.

use crate::common;

use std::process::Command;

use common::{EXE, Setup, write_setup};

use common::run_exe as run;

#[test]
fn the_shipped_setup_checks_clean_against_the_live_demo_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &Setup::default());
    let (ok, out) = run(&["check", "--config", config.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("0 error(s)"), "{out}");
    // The demo annotates both outside-facing tools `openWorldHint`: the one its manifest
    // does not mark `egress` is pointed at, the one it marks is not.
    let hint = |tool: &str| format!("tool `{tool}`: its server annotates it `openWorldHint: true`");
    assert!(out.contains(&hint("issue_refund")), "{out}");
    assert!(!out.contains(&hint("send_message")), "{out}");
}

#[test]
fn every_broken_line_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let policy = "p, role:a, demo/*, read, allow\npp, role:a, demo/*, read, allow\np, role:a, demo/*, read\n".to_string();
    let manifest = "server = \"demo\"\n[tools.echo]\ntier = \"reed\"\n".to_string();
    let setup = Setup {
        policy: Some(policy),
        manifest: Some(manifest),
        ..Setup::default()
    };
    let config = write_setup(dir.path(), &setup);
    let (ok, out) = run(&["check", "--offline", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("policy.csv:2: unknown rule type `pp`"),
        "{out}"
    );
    assert!(
        out.contains("policy.csv:3: `p` rows need 4 fields"),
        "{out}"
    );
    assert!(
        out.contains("demo.toml:3: tool `echo`: unknown tier `reed`"),
        "{out}"
    );
    assert!(out.contains("3 error(s)"), "{out}");
}

#[test]
fn a_stale_pin_is_an_error_that_prints_the_new_pin() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "server = \"demo\"\n[tools.echo]\ntier = \"read\"\npin = \"sha256:{}\"\n",
        "0".repeat(64)
    );
    let config = write_setup(
        dir.path(),
        &Setup {
            manifest: Some(manifest),
            ..Setup::default()
        },
    );
    let (ok, out) = run(&["check", "--config", config.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("demo.toml:2: tool `echo` changed since it was pinned"),
        "{out}"
    );
    assert!(out.contains("pin = \"sha256:"), "{out}");
}

#[test]
fn a_read_tool_the_server_calls_destructive_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = "server = \"demo\"\n[tools.send_message]\ntier = \"read\"\n".to_string();
    let config = write_setup(
        dir.path(),
        &Setup {
            manifest: Some(manifest),
            ..Setup::default()
        },
    );
    let (_, out) = run(&["check", "--config", config.to_str().unwrap()]);
    assert!(
        out.contains("warning:") && out.contains("annotates it `destructiveHint: true`"),
        "{out}"
    );
}

#[test]
fn serve_refuses_to_start_on_an_invalid_policy() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        policy: Some("p, role:a, demo/*, read, maybe\n".into()),
        ..Setup::default()
    };
    let config = write_setup(dir.path(), &setup);
    let out = Command::new(EXE)
        .args([
            "serve",
            "--transport",
            "stdio",
            "--config",
            config.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("policy.csv:1: unknown effect `maybe`"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing but protocol on stdout");
}

#[test]
fn approvers_who_can_approve_nothing_or_cannot_sign_in_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        config_extra:
            "[[approver]]\nidentity = \"user:carol\"\n\n[[approver]]\nidentity = \"user:zed\"\n"
                .into(),
        ..Setup::default()
    };
    let config = write_setup(dir.path(), &setup);
    let (ok, out) = run(&["check", "--offline", "--config", config.to_str().unwrap()]);
    assert!(ok, "warnings do not fail the check: {out}");
    assert!(out.contains("`[listen] admin` is not"), "{out}");
    assert!(
        out.contains("approver `user:zed` may approve no listed tool"),
        "{out}"
    );
    assert!(
        !out.contains("approver `user:carol` may approve no"),
        "{out}"
    );
}

#[test]
fn a_shared_store_without_a_session_key_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        config_extra: "[store]\nurl = \"postgres://warden@127.0.0.1:1/warden\"\n".into(),
        ..Setup::default()
    };
    let config = write_setup(dir.path(), &setup);
    let (ok, out) = run(&["check", "--offline", "--config", config.to_str().unwrap()]);
    assert!(ok, "a warning does not fail the check: {out}");
    assert!(
        out.contains("warning: ") && out.contains("`[store] session_key` is not"),
        "{out}"
    );
    // With a key, nothing to say about the store.
    let key = "ab".repeat(32);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "/warden\"\n",
            &format!("/warden\"\nsession_key = \"{key}\"\n"),
        ),
    )
    .unwrap();
    let (ok, out) = run(&["check", "--offline", "--config", config.to_str().unwrap()]);
    assert!(ok && !out.contains("session_key"), "{out}");
}

#[test]
fn issuer_keys_that_cannot_be_read_are_reported_and_stop_serve() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-jwks.json");
    let config = write_setup(
        dir.path(),
        &Setup {
            config_extra: format!(
                "[auth]\nresource = \"https://w.test/mcp\"\n\n[[auth.jwt]]\nissuer = \"https://idp.test\"\njwks_file = {missing:?}\n"
            ),
            ..Setup::default()
        },
    );
    let (ok, out) = run(&["check", "--config", config.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("cannot verify HTTP callers") && out.contains("no-such-jwks.json"),
        "{out}"
    );
    let (ok, out) = run(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--transport",
        "stdio",
    ]);
    assert!(!ok && out.contains("no-such-jwks.json"), "{out}");
}

#[test]
fn policy_rows_that_can_never_match_a_listed_tool_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap();
    let lines = shipped.lines().count();
    let policy = format!(
        "{shipped}\np, role:assistant, demo/sned_message, act, allow\np, role:assistant, demo/logs, read, deny\np, role:assistant, demo/prompts/*, read, allow\n"
    );
    let config = write_setup(
        dir.path(),
        &Setup {
            policy: Some(policy),
            ..Setup::default()
        },
    );
    let (ok, out) = run(&["check", "--offline", "--config", config.to_str().unwrap()]);
    assert!(ok, "a dead row is a warning, not an error: {out}");
    let typo = format!("policy.csv:{}", lines + 2);
    assert!(
        out.lines().any(|l| l.contains(&typo)
            && l.contains("can never match")
            && l.contains("demo/sned_message")),
        "{out}"
    );
    assert!(
        !out.contains("demo/logs") && !out.contains("demo/prompts"),
        "rows for logs and prompts are fine: {out}"
    );
    assert!(
        !out.lines()
            .any(|l| l.contains("can never match") && l.contains("demo/*")),
        "{out}"
    );
}
