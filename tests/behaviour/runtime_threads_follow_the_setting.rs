//! The gateway runs on half the cores unless `MCP_WARDEN_THREADS` says otherwise; a value
//! that is not a positive whole number is reported and ignored, never fatal.

use crate::common;

use common::EXE;

/// Run `audit verify` on an empty log with this setting; its stderr.
fn stderr_with(threads: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    std::fs::write(&log, "").unwrap();
    let mut cmd = std::process::Command::new(EXE);
    cmd.args(["audit", "verify"])
        .arg(&log)
        .env("MCP_WARDEN_LOG", "mcp_warden=debug")
        .env_remove("MCP_WARDEN_THREADS");
    if let Some(t) = threads {
        cmd.env("MCP_WARDEN_THREADS", t);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stderr).unwrap()
}

fn half_the_cores() -> usize {
    (std::thread::available_parallelism().unwrap().get() / 2).max(1)
}

#[test]
fn the_runtime_takes_half_the_cores_by_default() {
    let stderr = stderr_with(None);
    assert!(
        stderr.contains(&format!("{} runtime threads", half_the_cores())),
        "{stderr}"
    );
}

#[test]
fn mcp_warden_threads_sets_the_number() {
    // Not the default, whatever the machine.
    let n = half_the_cores() + 2;
    let stderr = stderr_with(Some(&n.to_string()));
    assert!(stderr.contains(&format!("{n} runtime threads")), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[test]
fn a_bad_value_is_reported_and_ignored() {
    for bad in ["0", "-2", "many", ""] {
        let stderr = stderr_with(Some(bad));
        assert!(
            stderr.contains(&format!(
                "MCP_WARDEN_THREADS={bad:?} is not a positive whole number; using half the cores"
            )),
            "{bad}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("{} runtime threads", half_the_cores())),
            "{bad}: {stderr}"
        );
    }
}
