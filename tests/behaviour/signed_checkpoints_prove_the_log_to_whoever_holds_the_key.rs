//! The gateway signs a checkpoint into its audit log at least every second while it
//! writes, and when it stops. Whoever holds the public key (`mcp-warden audit key`)
//! catches what the hash chain alone cannot: a record edited or removed before a
//! checkpoint with the whole chain recomputed after it, checkpoints stripped, a
//! checkpoint re-signed with another key. `verify` alone still catches arguments that no
//! longer match their digest. A witness that received the checkpoints catches what the
//! key cannot: a log cut after its last checkpoint, checkpoints and all.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Harness, rechain, text};
use serde_json::{Map, Value, json};

/// A gateway whose log holds calls and a checkpoint over them (written at its clean
/// shutdown), its public key, and a copy of its log to tamper with (the gateway may go on
/// writing its own).
async fn signed_log() -> (Harness, String, PathBuf) {
    let h = Harness::start().await;
    for n in 0..3 {
        let said = format!("note {n}");
        let echoed = h.call("demo_echo", json!({"text": said})).await.unwrap();
        assert_eq!(text(&echoed), said);
    }
    h.state.audit.close().await.unwrap();
    let copy = h.dir.path().join("copy.jsonl");
    std::fs::copy(h.audit_path(), &copy).unwrap();
    let config = h.dir.path().join("warden.toml");
    let (ok, key) =
        common::run_exe_async(&["audit", "key", "--config", config.to_str().unwrap()]).await;
    assert!(ok, "{key}");
    let key = key.lines().next().unwrap().trim().to_string();
    assert!(key.starts_with("ed25519:"), "{key}");
    (h, key, copy)
}

fn records(path: &Path) -> Vec<Map<String, Value>> {
    common::read_lines(path)
        .into_iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect()
}

async fn verify(path: &Path, key: Option<&str>) -> (bool, String) {
    let mut args = vec!["audit", "verify", path.to_str().unwrap()];
    if let Some(k) = key {
        args.extend(["--key", k]);
    }
    common::run_exe_async(&args).await
}

fn index_of(records: &[Map<String, Value>], kind: &str) -> usize {
    records.iter().position(|r| r["kind"] == kind).unwrap()
}

#[tokio::test]
async fn an_untouched_log_verifies_with_its_key_and_a_checkpoint_comes_within_a_second() {
    let (h, key, copy) = signed_log().await;
    assert_eq!(records(&copy).last().unwrap()["kind"], "checkpoint");
    let (ok, report) = verify(&copy, Some(&key)).await;
    assert!(ok, "{report}");
    assert!(report.contains("checkpoints signed by the key"), "{report}");
    assert!(report.contains("the 0 records after it"), "{report}");

    // While records are written, a checkpoint follows within a second, unasked.
    h.call("demo_echo", json!({"text": "later"})).await.unwrap();
    let wrote_one = async {
        loop {
            let log = records(&h.audit_path());
            if log
                .last()
                .is_some_and(|r| r["kind"] == "checkpoint" && r["count"] != json!(0))
                && log
                    .iter()
                    .rev()
                    .nth(1)
                    .is_some_and(|r| r["kind"] == "outcome")
            {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let log = tokio::time::timeout(std::time::Duration::from_secs(10), wrote_one)
        .await
        .expect("a checkpoint after the last records");
    let last = log.last().unwrap();
    assert_eq!(last["count"], json!(log.len() - 1));
    assert_eq!(last["head"], log[log.len() - 2]["hash"]);
    assert_eq!(last["key"], json!(key));
    std::fs::copy(h.audit_path(), &copy).unwrap();
    let (ok, report) = verify(&copy, Some(&key)).await;
    assert!(ok, "{report}");
}

#[tokio::test]
async fn a_record_edited_before_a_checkpoint_with_the_chain_recomputed_fails_with_the_key() {
    let (_h, key, path) = signed_log().await;
    let mut log = records(&path);
    let attempt = index_of(&log, "attempt");
    log[attempt]["intent"] = json!("nothing to see here");
    rechain(&path, &log);
    let (ok, report) = verify(&path, None).await;
    assert!(ok, "the chain alone cannot tell: {report}");
    let (ok, report) = verify(&path, Some(&key)).await;
    assert!(!ok, "{report}");
    let line = index_of(&log, "checkpoint") + 1;
    assert!(
        report.contains(&format!(
            "line {line}: checkpoint: the record before it is not the one it vouches for"
        )),
        "{report}"
    );
}

#[tokio::test]
async fn a_record_removed_before_a_checkpoint_fails_with_the_key() {
    let (_h, key, path) = signed_log().await;
    let mut log = records(&path);
    log.remove(index_of(&log, "outcome"));
    rechain(&path, &log);
    let (ok, report) = verify(&path, Some(&key)).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains("records were removed or inserted before it"),
        "{report}"
    );
}

#[tokio::test]
async fn stripped_or_re_signed_checkpoints_fail_with_the_key() {
    let (_h, key, path) = signed_log().await;
    let log = records(&path);

    let stripped: Vec<_> = log
        .iter()
        .filter(|r| r["kind"] != "checkpoint")
        .cloned()
        .collect();
    rechain(&path, &stripped);
    let (ok, report) = verify(&path, None).await;
    assert!(ok, "{report}");
    let (ok, report) = verify(&path, Some(&key)).await;
    assert!(
        !ok && report.contains("no checkpoint signed by the key given"),
        "{report}"
    );

    // Another gateway's key: its checkpoints are not this key's.
    let other = Harness::start().await;
    let config = other.dir.path().join("warden.toml");
    let (_, other_key) =
        common::run_exe_async(&["audit", "key", "--config", config.to_str().unwrap()]).await;
    let other_key = other_key.lines().next().unwrap().trim().to_string();
    assert_ne!(other_key, key);
    rechain(&path, &log);
    let (ok, report) = verify(&path, Some(&other_key)).await;
    assert!(!ok && report.contains("not by the key given"), "{report}");

    // A checkpoint moved to vouch for fewer records, claiming the right key.
    let mut forged = log.clone();
    let at = index_of(&forged, "checkpoint");
    forged[at]["count"] = json!(1);
    rechain(&path, &forged);
    let (ok, report) = verify(&path, Some(&key)).await;
    assert!(!ok && report.contains("altered or forged"), "{report}");
}

#[tokio::test]
async fn arguments_that_no_longer_match_their_digest_fail_without_a_key() {
    let (_h, _, path) = signed_log().await;
    let mut log = records(&path);
    let attempt = index_of(&log, "attempt");
    log[attempt]["args"]["text"] = json!("a different note");
    rechain(&path, &log);
    let (ok, report) = verify(&path, None).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!(
            "line {}: `args` do not match `args_digest`",
            attempt + 1
        )),
        "{report}"
    );
}

#[tokio::test]
async fn a_witness_catches_a_cut_or_rewritten_log_that_agrees_with_itself() {
    let dir = tempfile::tempdir().unwrap();
    let witness = dir.path().join("elsewhere/checkpoints.jsonl");
    let setup = common::Setup {
        config_extra: format!("[[witness]]\nfile = {:?}\n", witness.display().to_string()),
        ..common::Setup::default()
    };
    let h = Harness::with(setup).await;
    for n in 0..3 {
        h.call("demo_echo", json!({"text": format!("note {n}")}))
            .await
            .unwrap();
    }
    h.state.audit.close().await.unwrap();
    let copy = h.dir.path().join("copy.jsonl");
    std::fs::copy(h.audit_path(), &copy).unwrap();
    let sent = common::read_lines(&witness);
    assert!(
        !sent.is_empty() && sent.iter().all(|r| r["kind"] == "checkpoint"),
        "{sent:?}"
    );
    let witnessed = |path: &Path| {
        let (path, witness) = (path.to_path_buf(), witness.clone());
        async move {
            common::run_exe_async(&[
                "audit",
                "verify",
                path.to_str().unwrap(),
                "--witness",
                witness.to_str().unwrap(),
            ])
            .await
        }
    };
    let (ok, report) = witnessed(&copy).await;
    assert!(ok && report.contains("the log holds all"), "{report}");

    // Cut from the last checkpoint on: the rest still verifies on its own.
    let log = records(&copy);
    let last = log.iter().rposition(|r| r["kind"] == "checkpoint").unwrap();
    rechain(&copy, &log[..last]);
    let (ok, report) = verify(&copy, None).await;
    assert!(ok, "{report}");
    let (ok, report) = witnessed(&copy).await;
    assert!(!ok && report.contains("the log was cut"), "{report}");

    // An early record rewritten and the chain recomputed: its checkpoints are not the
    // ones the witness received.
    let mut rewritten = log.clone();
    let attempt = index_of(&rewritten, "attempt");
    rewritten[attempt]["intent"] = json!("nothing to see here");
    rechain(&copy, &rewritten);
    let (ok, report) = verify(&copy, None).await;
    assert!(ok, "{report}");
    let (ok, report) = witnessed(&copy).await;
    assert!(!ok && report.contains("the log was rewritten"), "{report}");
    drop(dir);
}

#[tokio::test]
async fn a_hec_collector_is_a_witness_too() {
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncBufReadExt;
    // The collector: takes HEC events with the right token, keeps them as its export.
    let export = Arc::new(Mutex::new(String::new()));
    let kept = export.clone();
    let collector = axum::Router::new().route(
        "/services/collector/event",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    != Some("Splunk hec-test-token")
                {
                    return axum::http::StatusCode::UNAUTHORIZED;
                }
                let mut all = kept.lock().unwrap();
                all.push_str(&body);
                all.push('\n');
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hec = format!(
        "http://{}/services/collector/event",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let dir = tempfile::tempdir().unwrap();
    let setup = common::Setup {
        config_extra: format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n\n[[witness]]\nhec = \"{hec}\"\ntoken_env = \"HEC_TEST_TOKEN\"\n"
        ),
        ..common::Setup::default()
    };
    let config = common::write_setup(dir.path(), &setup);
    let mut gateway = tokio::process::Command::new(common::EXE)
        .args(["serve", "--transport", "http", "--config"])
        .arg(&config)
        .env("HEC_TEST_TOKEN", "hec-test-token")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut banner = tokio::io::BufReader::new(gateway.stderr.take().unwrap()).lines();
    let mut endpoint = String::new();
    while let Some(line) = banner.next_line().await.unwrap() {
        if let Some(u) = line.split("MCP endpoint (Streamable HTTP): ").nth(1) {
            endpoint = u.trim().to_string();
        }
        if line.starts_with("Point an MCP client") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = banner.next_line().await {} });
    {
        use rmcp::ServiceExt;
        let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(endpoint);
        let client = ().serve(transport).await.unwrap();
        let args = json!({"text": "witnessed"}).as_object().unwrap().clone();
        let params = rmcp::model::CallToolRequestParams::new("demo_echo").with_arguments(args);
        assert_eq!(
            text(&client.peer().call_tool(params).await.unwrap()),
            "witnessed"
        );
    }
    // An orderly stop writes the last checkpoint and waits for the witness to take it.
    common::sigterm(gateway.id().unwrap());
    assert!(gateway.wait().await.unwrap().success());

    let export_file = dir.path().join("hec-export.jsonl");
    std::fs::write(&export_file, export.lock().unwrap().as_str()).unwrap();
    let events = common::read_lines(&export_file);
    assert!(!events.is_empty(), "the collector got the checkpoints");
    assert!(
        events
            .iter()
            .all(|e| e["event"]["kind"] == "checkpoint"
                && e["sourcetype"] == "mcp-warden:checkpoint")
    );
    let log = dir.path().join("audit.jsonl");
    let check = |log: PathBuf| {
        let export_file = export_file.clone();
        async move {
            common::run_exe_async(&[
                "audit",
                "verify",
                log.to_str().unwrap(),
                "--witness",
                export_file.to_str().unwrap(),
            ])
            .await
        }
    };
    let (ok, report) = check(log.clone()).await;
    assert!(ok && report.contains("the log holds all"), "{report}");
    let all = records(&log);
    let last = all.iter().rposition(|r| r["kind"] == "checkpoint").unwrap();
    rechain(&log, &all[..last]);
    let (ok, report) = check(log.clone()).await;
    assert!(!ok && report.contains("the log was cut"), "{report}");
}
