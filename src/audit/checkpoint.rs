//! Signed checkpoints: a `checkpoint` record, written into the chain at least every
//! second while records are written (and at a clean shutdown), that says how many
//! records came before it and the hash of the last one, links to the checkpoint before
//! it, and is signed with an Ed25519 key the gateway keeps outside the log. Whoever holds
//! the public key can then tell a log the gateway wrote from one rewritten after: editing,
//! removing or inserting a record before a checkpoint changes what the checkpoint vouches
//! for, and re-signing needs the private key. It keeps the key and makes and checks the
//! signature; when to write a checkpoint is the writer's.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::Serialize;
use serde_json::{Value, json};

use super::writer::unseal;

/// How a key or signature is written: `ed25519:<hex>`.
const SCHEME: &str = "ed25519:";

/// The private key that signs checkpoints.
pub struct Signer {
    key: SigningKey,
    public: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.public)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the audit signing key `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "cannot create the audit signing key `{path}`: {reason}; create its directory or set `[gateway] audit_key`"
    )]
    Create { path: String, reason: String },
    #[error(
        "`{path}` is not an audit signing key (64 hex digits, an Ed25519 seed); move it aside to have a new one made"
    )]
    Invalid { path: String },
    #[error("no random source for a new audit signing key: {0}")]
    Random(String),
    #[error(
        "`{0}` is not an audit public key: pass what `mcp-warden audit key` prints (`ed25519:` and 64 hex digits)"
    )]
    Public(String),
}

impl Signer {
    /// The key at `path`, made (with permissions 0600) when there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let seed: [u8; 32] = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or(KeyError::Invalid { path: shown })?;
                Ok(Self::from_seed(&seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
                write_private(path, &hex::encode(seed)).map_err(|e| KeyError::Create {
                    path: shown,
                    reason: e.to_string(),
                })?;
                Ok(Self::from_seed(&seed))
            }
            Err(e) => Err(KeyError::Read {
                path: shown,
                reason: e.to_string(),
            }),
        }
    }

    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let public = format!("{SCHEME}{}", hex::encode(key.verifying_key().as_bytes()));
        Self { key, public }
    }

    /// The public key, as `verify --key` takes it.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// A checkpoint after `count` records whose last has hash `head`.
    pub fn checkpoint(&self, count: u64, head: &str, previous: Option<&str>) -> CheckpointRecord {
        let ts = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        let payload = signed_part(count, head, previous, &self.public, &ts);
        let signature = self.key.sign(&payload);
        CheckpointRecord {
            ts,
            id: uuid::Uuid::new_v4().to_string(),
            count,
            head: head.to_string(),
            previous: previous.map(String::from),
            key: self.public.clone(),
            signature: format!("{SCHEME}{}", hex::encode(signature.to_bytes())),
        }
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// A signed checkpoint, as written into the chain.
#[derive(Debug, Serialize)]
pub struct CheckpointRecord {
    pub ts: String,
    pub id: String,
    /// How many records the log holds before this one.
    pub count: u64,
    /// The hash of the record just before this one.
    pub head: String,
    /// The hash of the checkpoint before this one (null for a log's first).
    pub previous: Option<String>,
    /// The public key whose private half signed it.
    pub key: String,
    /// Over the RFC 8785 JSON of `count`, `head`, `key`, `previous` and `ts`.
    pub signature: String,
}

/// The bytes a checkpoint's signature covers.
fn signed_part(count: u64, head: &str, previous: Option<&str>, key: &str, ts: &str) -> Vec<u8> {
    let part = json!({"count": count, "head": head, "key": key, "previous": previous, "ts": ts});
    serde_json_canonicalizer::to_vec(&part).unwrap_or_default()
}

/// A public key as `verify --key` takes it.
pub fn public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bad = || KeyError::Public(text.to_string());
    let bytes: [u8; 32] = text
        .trim()
        .strip_prefix(SCHEME)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

/// Check a checkpoint record's signature against `key`; why not, if it fails.
pub fn check(record: &Value, key: &VerifyingKey) -> Result<(), String> {
    let s = |k: &str| record.get(k).and_then(Value::as_str);
    let stated = format!("{SCHEME}{}", hex::encode(key.as_bytes()));
    if s("key") != Some(stated.as_str()) {
        return Err(format!(
            "signed by `{}`, not by the key given",
            s("key").unwrap_or("no key")
        ));
    }
    let (Some(count), Some(head), Some(ts)) = (
        record.get("count").and_then(Value::as_u64),
        s("head"),
        s("ts"),
    ) else {
        return Err("a checkpoint without `count`, `head` or `ts`".into());
    };
    let signature: [u8; 64] = s("signature")
        .and_then(|v| v.strip_prefix(SCHEME))
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or("a checkpoint without a readable `signature`")?;
    let payload = signed_part(count, head, s("previous"), &stated, ts);
    key.verify(&payload, &Signature::from_bytes(&signature))
        .map_err(|_| "its signature does not match what it says: it was altered or forged".into())
}

/// What the writer needs to go on from an existing log: how many records it holds and
/// the hash of its last checkpoint.
pub fn scan(log: impl Read) -> std::io::Result<(u64, Option<String>)> {
    let mut reader = BufReader::with_capacity(1 << 16, log);
    let (mut count, mut last) = (0, None);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok((count, last));
        }
        count += 1;
        if line.starts_with(b"{\"kind\":\"checkpoint\"")
            && let Some((_, hash)) = unseal(line.strip_suffix(b"\n").unwrap_or(&line))
        {
            last = Some(hash.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_and_fails_when_altered_or_checked_with_another() {
        let signer = Signer::from_seed(&[7; 32]);
        let record =
            serde_json::to_value(signer.checkpoint(12, "sha256:abc", Some("sha256:def"))).unwrap();
        let key = public_key(signer.public()).unwrap();
        assert_eq!(check(&record, &key), Ok(()));
        let mut moved = record.clone();
        moved["count"] = json!(11);
        assert!(
            check(&moved, &key)
                .unwrap_err()
                .contains("altered or forged")
        );
        let other = Signer::from_seed(&[8; 32]);
        let err = check(&record, &public_key(other.public()).unwrap()).unwrap_err();
        assert!(err.contains("not by the key given"), "{err}");
        let mut rekeyed = record.clone();
        rekeyed["key"] = json!(other.public());
        let err = check(&rekeyed, &public_key(other.public()).unwrap()).unwrap_err();
        assert!(err.contains("altered or forged"), "{err}");
    }

    #[test]
    fn a_key_is_made_once_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.key");
        let made = Signer::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            Signer::load_or_create(&path).unwrap().public(),
            made.public()
        );
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            Signer::load_or_create(&path),
            Err(KeyError::Invalid { .. })
        ));
        assert!(public_key("ed25519:zz").is_err());
    }
}
