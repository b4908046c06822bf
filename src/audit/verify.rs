//! `mcp-warden audit verify`: re-derive every line's hash and check each `prev` links to
//! the line before, check each unredacted `args` against its `args_digest`, and, given
//! the public key, every signed checkpoint against the records before it; name the
//! first line that fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::checkpoint;
use super::writer::{GENESIS, unseal};
use crate::digest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("line {line}: {reason}")]
    Broken { line: usize, reason: String },
    #[error(
        "no checkpoint signed by the key given: nothing in this log is proven by it (a log from before checkpoints, one made with another key, or one whose checkpoints were all removed)"
    )]
    Unsigned,
}

/// What a log that verifies holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    pub records: usize,
    /// Records whose `args` were checked against `args_digest` (the others were
    /// redacted or had a credential masked).
    pub args_checked: usize,
    /// Checkpoints whose signature was checked (with a key).
    pub checkpoints: usize,
    /// The last checked checkpoint: its line and time.
    pub last_checkpoint: Option<(usize, String)>,
}

/// Check a whole log. Returns the number of records when every line verifies.
pub fn verify(path: &Path) -> Result<usize, VerifyError> {
    verify_with(path, None).map(|v| v.records)
}

/// Check a whole log, and with `key` every checkpoint in it.
pub fn verify_with(path: &Path, key: Option<&VerifyingKey>) -> Result<Verified, VerifyError> {
    let read_err = |e: std::io::Error| VerifyError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut reader = BufReader::new(file);
    let mut prev = GENESIS.to_string();
    let mut line = Vec::new();
    let mut seen = Verified::default();
    let mut last_checkpoint: Option<String> = None;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(read_err)? == 0 {
            break;
        }
        let n = seen.records + 1;
        let broken = |reason: &str| VerifyError::Broken {
            line: n,
            reason: reason.to_string(),
        };
        let Some(content) = line.strip_suffix(b"\n") else {
            return Err(broken("incomplete last line (no newline)"));
        };
        let (body, hash) =
            unseal(content).ok_or_else(|| broken("not an audit record (no trailing `hash`)"))?;
        if digest::sha256(&body) != hash {
            return Err(broken(
                "content does not match its hash: the line was altered",
            ));
        }
        let record: Value = serde_json::from_slice(&body).map_err(|_| broken("not valid JSON"))?;
        if record.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
            return Err(broken(
                "`prev` does not match the line before: a line was removed, reordered or inserted",
            ));
        }
        if args_match(&record).map_err(|reason| broken(&reason))? {
            seen.args_checked += 1;
        }
        let is_checkpoint = record.get("kind").and_then(Value::as_str) == Some("checkpoint");
        if let Some(key) = key.filter(|_| is_checkpoint) {
            let vouched = checkpoint::check(&record, key)
                .and_then(|()| vouches(&record, n - 1, &prev, last_checkpoint.as_deref()))
                .map_err(|reason| broken(&format!("checkpoint: {reason}")))?;
            seen.checkpoints += 1;
            seen.last_checkpoint = Some((n, vouched));
            last_checkpoint = Some(hash.to_string());
        }
        seen.records = n;
        prev = hash.to_string();
    }
    if key.is_some() && seen.checkpoints == 0 && seen.records > 0 {
        return Err(VerifyError::Unsigned);
    }
    Ok(seen)
}

/// Whether a (signature-checked) checkpoint says what the log holds before it: `count`
/// records, the last with hash `head`, after the checkpoint `previous`. Its time if so.
fn vouches(
    record: &Value,
    count: usize,
    head: &str,
    previous: Option<&str>,
) -> Result<String, String> {
    let said = record
        .get("count")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    if said != count as u64 {
        return Err(format!(
            "it vouches for {said} records before it, and {count} are there: records were removed or inserted before it"
        ));
    }
    if record.get("head").and_then(Value::as_str) != Some(head) {
        return Err(
            "the record before it is not the one it vouches for: records before it were rewritten"
                .into(),
        );
    }
    if record.get("previous").and_then(Value::as_str) != previous {
        return Err("it does not follow the checkpoint before it: a checkpoint was removed".into());
    }
    Ok(record
        .get("ts")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string())
}

/// Whether a record's `args` were checked against its `args_digest` (not when either is
/// missing, or the args hold a redaction or a masked credential); why not, if they differ.
fn args_match(record: &Value) -> Result<bool, String> {
    let (Some(args), Some(stated)) = (
        record.get("args"),
        record.get("args_digest").and_then(Value::as_str),
    ) else {
        return Ok(false);
    };
    if hidden(args) {
        return Ok(false);
    }
    match digest::canonical(args) == stated {
        true => Ok(true),
        false => Err("`args` do not match `args_digest`: the arguments were altered".into()),
    }
}

/// Whether a value holds a redacted or masked string.
fn hidden(value: &Value) -> bool {
    match value {
        Value::String(s) => s == "[redacted]" || s.contains("[secret "),
        Value::Array(items) => items.iter().any(hidden),
        Value::Object(map) => map.values().any(hidden),
        _ => false,
    }
}

/// What a witness proved of a log.
#[derive(Debug, PartialEq, Eq)]
pub struct Witnessed {
    /// Checkpoints the witness received, each found in the log at its place.
    pub checkpoints: usize,
    /// Other records the witness received (a sink with `records = "all"`), each found in
    /// the log, in the same order.
    pub records: usize,
    /// How many of the log's records, from the first, the witness vouches for.
    pub covered: u64,
}

/// Check a log against what its witness received: a witness file, an export of the HEC
/// events a collector took (one JSON object a line), or a syslog server's file (the
/// record is the message, from its `{"kind":`; lines of other programs are passed over).
/// Every checkpoint the witness holds must be in the log at its place (after `count`
/// records), with the same hash; every other record it holds must be in the log (retried
/// deliveries may repeat lines). A log cut or rewritten before the witness's last line
/// fails, whatever its own chain says. The chain itself is [`verify`]'s to check, first.
pub fn verify_witness(log: &Path, witness: &Path) -> Result<Witnessed, VerifyError> {
    let witnessed = std::fs::read(witness).map_err(|e| VerifyError::Read {
        path: witness.display().to_string(),
        reason: e.to_string(),
    })?;
    verify_witnessed(log, &witnessed)
}

/// [`verify_witness`] against what the witness received, one line each (a witness kept
/// in a database, read out).
pub fn verify_witnessed(log: &Path, witnessed: &[u8]) -> Result<Witnessed, VerifyError> {
    let log_text = std::fs::read(log).map_err(|e| VerifyError::Read {
        path: log.display().to_string(),
        reason: e.to_string(),
    })?;
    let hashes: Vec<Option<String>> = log_text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| unseal(l).map(|(_, hash)| hash.to_string()))
        .collect();
    let places: HashMap<&str, usize> = hashes
        .iter()
        .enumerate()
        .filter_map(|(i, h)| Some((h.as_deref()?, i)))
        .collect();
    let mut proved = Witnessed {
        checkpoints: 0,
        records: 0,
        covered: 0,
    };
    for (n, sent) in witnessed.split(|b| *b == b'\n').enumerate() {
        let broken = |reason: String| VerifyError::Broken {
            line: n + 1,
            reason: format!("witness: {reason}"),
        };
        let Some(value) = received(sent).map_err(broken)? else {
            continue;
        };
        let record = value.get("event").unwrap_or(&value);
        let checkpoint = record.get("kind").and_then(Value::as_str) == Some("checkpoint");
        let Some(hash) = record.get("hash").and_then(Value::as_str) else {
            return Err(broken("not an audit record (no `hash`)".into()));
        };
        // Each hash seals its record's `prev`, so a record found in a log whose chain is
        // intact stands on the same records as when the witness received it.
        let at = match (checkpoint, record.get("count").and_then(Value::as_u64)) {
            (true, Some(count)) => checkpoint_place(&hashes, count, hash).map_err(broken)?,
            (true, None) => return Err(broken("a checkpoint without `count`".into())),
            (false, _) => match places.get(hash) {
                Some(at) => *at as u64,
                None => {
                    return Err(broken(format!(
                        "the log lacks a record the witness received (`{hash}`): the log was cut or rewritten"
                    )));
                }
            },
        };
        proved.covered = proved.covered.max(at + 1);
        match checkpoint {
            true => proved.checkpoints += 1,
            false => proved.records += 1,
        }
    }
    Ok(proved)
}

/// A line of the witness as JSON: the whole line, or, in a syslog file, the message from
/// the record's start; `None` for an empty line or another program's.
fn received(line: &[u8]) -> Result<Option<Value>, String> {
    const START: &[u8] = b"{\"kind\":\"";
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Ok(value) = serde_json::from_slice(line) {
        return Ok(Some(value));
    }
    match line.windows(START.len()).position(|w| w == START) {
        Some(at) => serde_json::from_slice(line.get(at..).unwrap_or_default())
            .map(Some)
            .map_err(|e| format!("a record cut short or altered in transit ({e})")),
        None if line.first() == Some(&b'{') => Err("not a JSON line".into()),
        None => Ok(None),
    }
}

/// Where a checkpoint that follows `count` records sits in the log (its index), if it is
/// there with `hash`.
fn checkpoint_place(hashes: &[Option<String>], count: u64, hash: &str) -> Result<u64, String> {
    let at = usize::try_from(count).unwrap_or(usize::MAX);
    match hashes.get(at) {
        None => Err(format!(
            "it holds a checkpoint after record {count}, and the log ends after record {}: the log was cut",
            hashes.len()
        )),
        Some(found) if found.as_deref() != Some(hash) => Err(format!(
            "the log's record {} is not the checkpoint it received: the log was rewritten",
            at + 1
        )),
        Some(_) => Ok(count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as rsyslog files them, in its traditional format and its RFC 5424 one, a
    /// plain record, and another program's line, which is passed over.
    #[test]
    fn a_witness_line_is_a_record_alone_or_the_end_of_a_syslog_line() {
        let record = r#"{"kind":"checkpoint","count":3,"hash":"sha256:ab"}"#;
        for line in [
            record.to_string(),
            format!("Nov 30 05:00:00 gw mcp-warden[42]: {record}"),
            format!("<38>1 2026-11-30T05:00:00Z gw mcp-warden 42 checkpoint - {record}\r"),
        ] {
            let value = received(line.as_bytes()).unwrap().unwrap();
            assert_eq!(value["count"], 3, "{line}");
        }
        for other in [
            "Nov 30 05:00:01 gw sshd[7]: Accepted key for root {x}",
            "",
            "  ",
        ] {
            assert_eq!(received(other.as_bytes()).unwrap(), None, "{other}");
        }
        let cut_short = format!("Nov 30 05:00:00 gw mcp-warden[42]: {}", &record[..30]);
        let err = received(cut_short.as_bytes()).unwrap_err();
        assert!(err.contains("cut short or altered in transit"), "{err}");
        assert_eq!(received(b"{not json").unwrap_err(), "not a JSON line");
    }
}
