//! Each replica keeps its own hash-chained audit log, named after it (`[gateway]
//! replica`), every record saying which replica wrote it. `audit verify DIR` checks each
//! log of a directory and names the one that fails; `audit show DIR` tells one story,
//! the replicas' records merged by time.

use crate::common;

use common::{Harness, Setup, run_exe};
use serde_json::json;

/// A gateway named `replica` whose log goes into `logs` (as `audit-<replica>.jsonl`).
async fn replica(logs: &std::path::Path, name: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = common::replica_config(dir.path(), logs, name, &Setup::default());
    Harness::at(dir, &path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_writes_its_own_chain_and_the_cli_reads_them_as_one() {
    let logs = tempfile::tempdir().unwrap();
    let (r1, r2) = (
        replica(logs.path(), "gw-1").await,
        replica(logs.path(), "gw-2").await,
    );
    for (h, said) in [(&r1, "first"), (&r2, "second"), (&r1, "third")] {
        let r = h.call("demo_echo", json!({"text": said})).await.unwrap();
        assert_eq!(common::text(&r), said);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (h, name) in [(&r1, "gw-1"), (&r2, "gw-2")] {
        let path = logs.path().join(format!("audit-{name}.jsonl"));
        assert_eq!(h.audit_path(), path);
        let records = h.audit().await;
        assert!(!records.is_empty());
        assert!(
            records.iter().all(|r| r["replica"] == name),
            "every record names its replica: {records:?}"
        );
    }
    r1.state.audit.close().await.unwrap();
    r2.state.audit.close().await.unwrap();
    let dir = logs.path().to_str().unwrap();

    let (ok, said) = run_exe(&["audit", "verify", dir]);
    assert!(ok, "{said}");
    assert!(
        said.contains("audit-gw-1.jsonl") && said.contains("audit-gw-2.jsonl"),
        "{said}"
    );
    assert!(said.contains("all 2 logs intact"), "{said}");

    let (ok, shown) = run_exe(&["audit", "show", dir, "--tool", "echo"]);
    assert!(ok, "{shown}");
    // Each call's attempt and outcome, from the replica that served it.
    let mut order: Vec<&str> = shown
        .lines()
        .filter_map(|l| {
            l.split_once(']')
                .map(|(from, _)| from.trim_start_matches('['))
        })
        .collect();
    assert_eq!(order.len(), 6, "{shown}");
    order.dedup();
    assert_eq!(
        order,
        ["audit-gw-1.jsonl", "audit-gw-2.jsonl", "audit-gw-1.jsonl"],
        "merged by time: {shown}"
    );

    // One changed byte in one replica's log: that log is named, the other still intact.
    let second = logs.path().join("audit-gw-2.jsonl");
    let text = std::fs::read_to_string(&second).unwrap();
    std::fs::write(&second, text.replacen("second", "sekond", 1)).unwrap();
    let (ok, said) = run_exe(&["audit", "verify", dir]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("1 of 2 logs failed: audit-gw-2.jsonl"),
        "{said}"
    );
    assert!(said.contains("audit-gw-1.jsonl: "), "{said}");
    let (ok, said) = run_exe(&["audit", "verify", dir, "--witness", dir]);
    assert!(!ok && said.contains("name the log"), "{said}");
}
