//! The audit log's disk fills up: calls are refused (never forwarded unaudited), no
//! partial record stays in the log, `/readyz` says not ready, and once there is room
//! again the gateway writes again by itself (ready again before any call comes), leading with a `recovered` record that says since when and how many
//! records were refused; the chain verifies. The disk is a small tmpfs this test mounts,
//! so it runs as root (as CI does) and says why it did nothing otherwise.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Harness, Setup, text};
use serde_json::json;

/// A tmpfs of `size` mounted at `at` for as long as this lives.
struct Mounted(PathBuf);

impl Mounted {
    fn new(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fill the filesystem of `dir` with one file; its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    path
}

#[tokio::test]
async fn a_full_disk_refuses_calls_and_the_gateway_recovers_without_a_restart() {
    if !nix_root() {
        eprintln!("skipped: mounting the small tmpfs this test fills needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let Some(_mounted) = Mounted::new(&disk, "4m") else {
        eprintln!("skipped: `mount -t tmpfs` failed here");
        return;
    };
    let log = disk.join("audit.jsonl");
    let path = common::write_setup(dir.path(), &Setup::default());
    let config = std::fs::read_to_string(&path).unwrap().replace(
        "audit_log = \"audit.jsonl\"",
        &format!("audit_log = {:?}", log),
    );
    std::fs::write(&path, config).unwrap();
    let h = Harness::at(dir, &path).await;
    let admin = h.serve_admin().await;
    let health = || async {
        let answer = reqwest::get(format!("{admin}/healthz")).await.unwrap();
        answer.json::<serde_json::Value>().await.unwrap()
    };
    let echo = |said: &str| json!({"text": said});
    assert_eq!(
        text(&h.call("demo_echo", echo("before")).await.unwrap()),
        "before"
    );

    let filler = fill(&disk);
    // What is left of the log's last page still takes a record or two.
    let mut refused = None;
    for n in 0..50 {
        let said = format!("filling {n}");
        let answer = h.call("demo_echo", echo(&said)).await.unwrap();
        if answer.is_error == Some(true) {
            refused = Some((said, answer));
            break;
        }
    }
    let (said, refused) = refused.expect("a call is refused once the disk is full");
    assert!(text(&refused).contains("audit"), "{}", text(&refused));
    assert!(
        h.upstream_calls()
            .iter()
            .all(|c| c["args"]["text"] != said.as_str()),
        "a call whose attempt could not be written is never forwarded"
    );
    mcp_warden::audit::verify(&log).expect("no partial record stays in the log");
    // The operator sees it: `/healthz` says why calls are refused, and how many so far.
    let down = health().await;
    assert_eq!(down["status"], "degraded", "{down}");
    let failing = &down["audit"]["failing"];
    assert!(
        failing["refused"].as_u64() >= Some(1)
            && failing["since"].is_string()
            && failing["error"].is_string(),
        "{down}"
    );

    // Not ready while the log cannot be written; the failed write is counted.
    let ready = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let reasons = ready.text().await.unwrap();
    assert!(
        reasons.contains("the audit log cannot be written"),
        "{reasons}"
    );
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("mcp_warden_audit_writable 0"), "{metrics}");
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mcp_warden_audit_write_failures_total "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(failures >= Some(1.0), "{metrics}");

    std::fs::remove_file(filler).unwrap();
    // Ready again once there is room, with no call made: the writer tries by itself.
    let back = async {
        loop {
            let r = reqwest::get(format!("{admin}/readyz")).await.unwrap();
            if r.status() == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), back)
        .await
        .expect("`/readyz` is 200 again once the log can be written, without a call");
    let recovered = async {
        loop {
            let answer = h.call("demo_echo", echo("after")).await.unwrap();
            if answer.is_error != Some(true) {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let answer = tokio::time::timeout(Duration::from_secs(15), recovered)
        .await
        .expect("the gateway writes again once there is room, without a restart");
    assert_eq!(text(&answer), "after");
    let up = health().await;
    assert!(
        up["status"] == "ok" && up["audit"].get("failing").is_none(),
        "{up}"
    );
    h.state.audit.flush().await.unwrap();
    mcp_warden::audit::verify(&log).unwrap();
    let records = common::audit_records(&log);
    let note = records
        .iter()
        .find(|r| r["kind"] == "recovered")
        .expect("a `recovered` record");
    assert!(note["refused"].as_u64().unwrap() >= 1, "{note}");
    assert!(
        note["since"].as_str().is_some() && note["error"].as_str().is_some(),
        "{note}"
    );
    crate::documented_audit_fields_are_the_ones_written::assert_fields_documented(
        note,
        "recovered",
    );
}

fn nix_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
