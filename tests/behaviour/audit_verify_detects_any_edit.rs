//! `mcp-warden audit verify` accepts an intact log and names the first bad line after a
//! one-byte edit, a removed line or a truncated tail; the gateway takes up a log whose
//! unsynced end was torn from its journal, and refuses one it cannot repair.

use crate::common;

use std::process::Command;

use common::{EXE, Harness, Setup};
use serde_json::json;

/// The running gateway's log and journal, copied elsewhere (the running gateway holds
/// its own log: a second writer is refused); the copy's path.
fn stopped_copy(h: &Harness) -> std::path::PathBuf {
    let dir = h.dir.path().join("stopped");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("audit.jsonl");
    std::fs::copy(h.audit_path(), &copy).unwrap();
    std::fs::copy(
        h.audit_path().with_file_name("audit.jsonl.journal"),
        copy.with_file_name("audit.jsonl.journal"),
    )
    .unwrap();
    copy
}

async fn log_with_records() -> (Harness, Vec<u8>) {
    let h = Harness::with(Setup::as_agent("agent:ops-bot", Some("user:alice"))).await;
    h.call("demo_list_notes", json!({})).await.unwrap();
    h.call(
        "demo_write_note",
        json!({"title": "a", "body": "b", "intent": "save"}),
    )
    .await
    .unwrap();
    h.call("demo_write_note", json!({"title": "a", "body": "b"}))
        .await
        .unwrap(); // refused
    let bytes = std::fs::read(h.audit_path()).unwrap();
    (h, bytes)
}

fn verify(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(EXE)
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn an_intact_log_verifies() {
    let (h, _) = log_with_records().await;
    let (ok, text) = verify(&h.audit_path());
    assert!(ok, "{text}");
    assert!(text.contains("5 records, hash chain intact"), "{text}");
}

#[tokio::test]
async fn every_one_byte_edit_is_detected_with_its_line() {
    let (h, original) = log_with_records().await;
    let path = h.audit_path();
    let newlines: Vec<usize> = original
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .collect();
    // Every position of the second line, plus samples across the whole file.
    let second = (newlines[0] + 1)..newlines[1];
    let positions: Vec<usize> = second
        .clone()
        .chain((0..original.len()).step_by(37))
        .collect();
    for pos in positions {
        let mut edited = original.clone();
        edited[pos] ^= 0x01;
        std::fs::write(&path, &edited).unwrap();
        let line = 1 + newlines.iter().filter(|&&n| n < pos).count();
        let (ok, text) = verify(&path);
        assert!(!ok, "edit at byte {pos} went unnoticed");
        let named = (1..=line).any(|l| text.contains(&format!("line {l}:")));
        assert!(
            named,
            "edit at byte {pos} (line {line}) not located: {text}"
        );
        if second.contains(&pos) {
            assert!(
                text.contains("line 2:"),
                "edit inside line 2 at byte {pos}: {text}"
            );
        }
    }
}

#[tokio::test]
async fn a_removed_line_is_detected() {
    let (h, original) = log_with_records().await;
    let text = String::from_utf8(original).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(h.audit_path(), kept.join("\n") + "\n").unwrap();
    let (ok, out) = verify(&h.audit_path());
    assert!(!ok);
    assert!(out.contains("line 2: `prev` does not match"), "{out}");
}

/// A record cut short at the end of the log, after its last sync (a machine that lost
/// power, a full disk mid-write), is what the journal beside the log is for: the log is
/// taken up again whole, and the damaged end is kept aside, not thrown away.
#[tokio::test]
async fn a_torn_end_after_the_last_sync_is_restored_from_the_journal() {
    // A log and its journal as a gateway that stopped left them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = mcp_warden::audit::AuditLog::open(&path).unwrap();
    for n in 0..5 {
        let fields = json!({"n": n}).as_object().cloned().unwrap();
        log.event("test", fields).await.unwrap();
    }
    log.flush().await.unwrap();
    drop(log);
    let original = std::fs::read(&path).unwrap();
    std::fs::write(&path, &original[..original.len() - 5]).unwrap();
    drop(mcp_warden::audit::AuditLog::open(&path).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), original);
    let (ok, out) = verify(&path);
    assert!(ok, "{out}");
    let aside: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("audit.jsonl.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let last_line_start = original[..original.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        &original[last_line_start..original.len() - 5]
    );
}

/// A torn end with no journal beside the log (a crash in the middle of a write) is moved
/// aside, noted in a `recovered` record, and the log goes on; a whole last line that does
/// not verify is refused, and so is a log cut below the point its journal says it was
/// synced to.
#[tokio::test]
async fn the_gateway_refuses_to_start_on_a_damaged_log() {
    let (h, _) = log_with_records().await;
    h.audit().await;
    let path = stopped_copy(&h);
    let original = std::fs::read(&path).unwrap();
    let journal = path.with_file_name("audit.jsonl.journal");
    std::fs::rename(&journal, path.with_file_name("elsewhere")).unwrap();

    let mut edited = original.clone();
    let at = edited.len() - 20;
    edited[at] ^= 1; // inside the last line's hash, newline kept
    std::fs::write(&path, &edited).unwrap();
    let err = mcp_warden::audit::AuditLog::open(&path)
        .err()
        .expect("a whole last line that does not verify is refused");
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert!(!journal.exists(), "no journal is made for a log refused");

    let torn = &original[..original.len() - 5];
    std::fs::write(&path, torn).unwrap();
    let reopened = mcp_warden::audit::AuditLog::open(&path).expect("a torn end is moved aside");
    reopened.flush().await.unwrap();
    drop(reopened);
    mcp_warden::audit::verify(&path).unwrap();
    let records = common::read_lines(&path);
    let note = records.last().unwrap();
    assert_eq!(note["kind"], "recovered", "{note}");
    let fragment_start = torn.iter().rposition(|b| *b == b'\n').unwrap() + 1;
    let fragment = &torn[fragment_start..];
    assert_eq!(note["torn_digest"], mcp_warden::digest::sha256(fragment));
    let moved = std::fs::read(note["moved"].as_str().unwrap()).unwrap();
    assert_eq!(
        moved, fragment,
        "the torn line is kept aside, byte for byte"
    );
    crate::documented_audit_fields_are_the_ones_written::assert_fields_documented(
        note,
        "recovered",
    );

    let whole = std::fs::read(&path).unwrap();
    std::fs::remove_file(&journal).unwrap();
    std::fs::write(&path, &whole).unwrap();
    drop(mcp_warden::audit::AuditLog::open(&path).unwrap()); // synced whole, and says so
    std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
    let err = mcp_warden::audit::AuditLog::open(&path)
        .err()
        .expect("a log cut below its last sync is refused");
    assert!(err.to_string().contains("cut from its end"), "{err}");
}
