//! `mcp-warden audit verify`: re-derive every line's hash and check each `prev` links to
//! the line before; name the first line that does not.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use super::writer::{GENESIS, unseal};
use crate::digest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("line {line}: {reason}")]
    Broken { line: usize, reason: String },
}

/// Check a whole log. Returns the number of records when every line verifies.
pub fn verify(path: &Path) -> Result<usize, VerifyError> {
    let read_err = |e: std::io::Error| VerifyError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut reader = BufReader::new(file);
    let mut prev = GENESIS.to_string();
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(read_err)? == 0 {
            return Ok(n);
        }
        n += 1;
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
        prev = hash.to_string();
    }
}
