//! The three ways an operator reloads a running gateway, with the real binary: SIGHUP,
//! `mcp-warden reload` (the admin API, as an approver; it prints every error of a reload
//! that changed nothing), and, with `[gateway] watch = true`, saving a file. Each reload
//! is audited with who asked and whether it took effect.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Setup, write_setup};
use serde_json::Value;

const READS_ONLY: &str = "p, role:assistant, demo/*, read, allow\n\
                          g, agent:desktop, role:assistant\n\
                          g, user:alice, role:assistant\n\
                          p, role:approver, demo/*, approve, allow\n\
                          g, user:carol, role:approver\n";
const AND_WRITES: &str = "p, role:assistant, demo/*, transform, allow\n";

struct Running {
    dir: tempfile::TempDir,
    config: PathBuf,
    child: tokio::process::Child,
    endpoint: String,
    page: String,
}

/// `serve` over HTTP with an admin listener and one approver, reads-only policy.
async fn serve(watch: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(
        dir.path(),
        &Setup {
            policy: Some(READS_ONLY.into()),
            config_extra: "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[[approver]]\nidentity = \"user:carol\"\n".into(),
            ..Setup::default()
        },
    );
    if watch {
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replacen("[gateway]\n", "[gateway]\nwatch = true\n", 1),
        )
        .unwrap();
    }
    let (child, endpoint, page) = common::serve_exe(&config).await;
    Running {
        dir,
        config,
        child,
        endpoint,
        page,
    }
}

impl Running {
    fn policy(&self) -> PathBuf {
        self.dir.path().join("policies/policy.csv")
    }

    fn reloads(&self) -> Vec<Value> {
        common::audit_records(&self.dir.path().join("audit.jsonl"))
            .into_iter()
            .filter(|r| r["kind"] == "reload")
            .collect()
    }

    /// Wait until there are `n` reload records; return them.
    async fn reloads_until(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let found = self.reloads();
            if found.len() >= n {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} reload records, found {:?}", self.reloads());
    }

    async fn cli(&self, args: &[&str]) -> (bool, String) {
        common::run_exe_async(args).await
    }

    async fn write_note(&self) -> (bool, String) {
        let args = r#"{"title": "plan", "body": "x", "intent": "save the plan"}"#;
        self.cli(&["call", "--url", &self.endpoint, "demo_write_note", args])
            .await
    }

    async fn reload(&self) -> (bool, String) {
        let config = self.config.to_str().unwrap();
        self.cli(&["reload", "--config", config, "--url", &self.page])
            .await
    }
}

fn config_path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_the_reload_command_apply_a_valid_policy_and_refuse_a_broken_one() {
    let g = serve(false).await;
    let (ok, out) = g.write_note().await;
    assert!(!ok && out.contains("refused:"), "refused by policy: {out}");

    std::fs::write(g.policy(), format!("{READS_ONLY}{AND_WRITES}")).unwrap();
    let pid = g.child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let records = g.reloads_until(1).await;
    assert_eq!(records[0]["by"], "signal");
    assert_eq!(records[0]["outcome"], "ok");
    let (ok, out) = g.write_note().await;
    assert!(ok, "allowed after the reload: {out}");

    std::fs::write(
        g.policy(),
        format!("{READS_ONLY}{AND_WRITES}pp, role:assistant, demo/*, read, deny\n"),
    )
    .unwrap();
    let (ok, out) = g.reload().await;
    assert!(!ok, "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    assert!(
        out.contains("policy.csv:7: unknown rule type `pp`"),
        "{out}"
    );
    let (ok, out) = g.write_note().await;
    assert!(ok, "the last good policy is still in force: {out}");

    std::fs::write(g.policy(), READS_ONLY).unwrap();
    let (ok, out) = g.reload().await;
    assert!(ok, "{out}");
    assert!(out.contains("reloaded: generation 3"), "{out}");
    let records = g.reloads_until(3).await;
    let summary: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["by"].as_str().unwrap().into(),
                r["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("signal".into(), "ok".into()),
            ("admin:user:carol".into(), "refused".into()),
            ("admin:user:carol".into(), "ok".into()),
        ]
    );
    let (ok, out) = g.write_note().await;
    assert!(!ok && out.contains("refused:"), "denied again: {out}");
    let verify = g
        .cli(&["audit", "verify", "--config", config_path(&g.config)])
        .await;
    assert!(verify.0, "{}", verify.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_watch_on_saving_a_file_reloads_and_a_broken_save_changes_nothing() {
    let g = serve(true).await;
    std::fs::write(g.policy(), format!("{READS_ONLY}{AND_WRITES}")).unwrap();
    let records = g.reloads_until(1).await;
    assert_eq!(records[0]["by"], "file-change");
    assert_eq!(records[0]["outcome"], "ok");
    let (ok, out) = g.write_note().await;
    assert!(ok, "{out}");

    std::fs::write(
        g.policy(),
        format!("{READS_ONLY}p, role:assistant, demo/*\n"),
    )
    .unwrap();
    let records = g.reloads_until(2).await;
    assert_eq!(records[1]["outcome"], "refused");
    assert!(
        records[1]["errors"][0]
            .as_str()
            .unwrap()
            .contains("policy.csv:6"),
        "{records:?}"
    );
    let (ok, out) = g.write_note().await;
    assert!(ok, "the last good policy is still in force: {out}");
}
