//! With `[store] url`, each replica's signed checkpoints go to a table of the replicas'
//! PostgreSQL database as its log makes them durable (unasked, or as `[[witness]] store =
//! true` says). `audit verify DIR
//! --witness store` proves each replica's log against the lines that replica gave the
//! database: intact logs pass, a log cut after its last checkpoint (its chain recomputed,
//! so it agrees with itself) fails, named, while the other replica's log still passes.

use crate::common;

use common::{Harness, Setup, rechain, run_exe};
use serde_json::{Map, Value, json};

/// A replica named `name` on database `url`, its log in `logs`, witnessed by the database
/// (named as a witness in its configuration when `named`).
async fn replica(logs: &std::path::Path, url: &str, name: &str, named: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let witness = match named {
        true => "\n[[witness]]\nstore = true\n",
        false => "",
    };
    let setup = Setup {
        config_extra: format!("[store]\nurl = \"{url}\"\n{witness}"),
        ..Setup::default()
    };
    let path = common::replica_config(dir.path(), logs, name, &setup);
    Harness::at(dir, &path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replicas_log_is_proven_against_what_it_gave_the_database() {
    let url = common::postgres::database();
    let logs = tempfile::tempdir().unwrap();
    for (name, named) in [("gw-1", true), ("gw-2", false)] {
        let h = replica(logs.path(), &url, name, named).await;
        for n in 0..3 {
            let said = format!("{name} note {n}");
            let echoed = h.call("demo_echo", json!({"text": said})).await.unwrap();
            assert_eq!(common::text(&echoed), said);
        }
        // A clean stop writes the last checkpoint and waits for the witness to take it.
        h.state.audit.close().await.unwrap();
        let config = h.dir.path().join("warden.toml");
        let (ok, probed) = run_exe(&["check", "--config", config.to_str().unwrap()]);
        assert!(ok, "check reaches the database witness: {probed}");
    }
    let dir = logs.path().to_str().unwrap();
    let (ok, report) = run_exe(&["audit", "verify", dir, "--witness", &url]);
    assert!(ok, "{report}");
    assert!(report.contains("all 2 logs intact"), "{report}");
    for name in ["gw-1", "gw-2"] {
        assert!(
            report.contains(&format!("the state database (for replica {name}) received")),
            "{report}"
        );
    }
    assert!(!report.contains("holds all 0 checkpoints"), "{report}");

    // gw-2's log cut from its last checkpoint on, its chain made whole again.
    let cut = logs.path().join("audit-gw-2.jsonl");
    let records: Vec<Map<String, Value>> = common::read_lines(&cut)
        .into_iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect();
    let last = records
        .iter()
        .rposition(|r| r["kind"] == "checkpoint")
        .unwrap();
    rechain(&cut, &records[..last]);
    let (ok, alone) = run_exe(&["audit", "verify", cut.to_str().unwrap()]);
    assert!(ok, "the cut log agrees with itself: {alone}");
    let (ok, report) = run_exe(&["audit", "verify", dir, "--witness", &url]);
    assert!(!ok, "{report}");
    assert!(report.contains("the log was cut"), "{report}");
    assert!(
        report.contains("1 of 2 logs failed: audit-gw-2.jsonl"),
        "{report}"
    );
}

#[test]
fn a_database_witness_needs_the_store_of_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        config_extra: "[[witness]]\nstore = true\n".into(),
        ..Setup::default()
    };
    let path = common::write_setup(dir.path(), &setup);
    let (ok, said) = run_exe(&["check", "--config", path.to_str().unwrap()]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("`[[witness]] store = true` needs `[store] url"),
        "{said}"
    );
}
