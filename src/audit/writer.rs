//! Writing the audit log: seal records into the hash chain in the order they are written,
//! write a whole batch, make it durable once (in the journal, see `journal`), then
//! acknowledge every record in it. The writer thread does this for records handed to it;
//! a caller with nothing else in flight may do it itself on the [`Tail`] (see
//! `AuditLog::write`). A failed write leaves none of its batch in the log; everything is
//! then refused until a write a second later succeeds, led by a `recovered` record.
//! Records nobody waits for (outcomes) are left in [`Deferred`] without
//! waking anyone: each batch takes them first, and a ticker wakes the writer for them
//! when no other record comes.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::checkpoint::{self, Signer};
use super::journal::{self, Journal};
use super::witness::{Batch, Witness};
use super::{AuditError, AuditRecord, Job};
use crate::telemetry::AuditMetrics;
use crate::{digest, secrets};

/// `prev` of the first record in a log.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
/// How each line ends: `,"hash":"sha256:<64 hex>"}`.
pub const HASH_MARK: &str = ",\"hash\":\"";
const BATCH: usize = 1024;
/// The longest a deferred record waits for a batch when no other record comes.
const TICK: Duration = Duration::from_millis(20);
/// How long after a failed write the writer tries again (with the next records).
const RETRY: Duration = Duration::from_secs(1);
/// The longest records wait for a signed checkpoint while the log is written.
const CHECKPOINT: Duration = Duration::from_secs(1);

/// Records queued without waiting for their sync.
pub type Deferred = Arc<Mutex<Vec<AuditRecord>>>;

/// The deferred queue. A `Vec` is whole whatever panicked while it was held, so a
/// poisoned lock still gives it: no queued record is lost.
pub fn queued(deferred: &Deferred) -> MutexGuard<'_, Vec<AuditRecord>> {
    deferred.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The end of the log: the open file, its length, the hash of its last record, its
/// journal, and why it can no longer be written (after a failed write the chain's tail is
/// unknown). Whoever holds it writes the next records: the writer thread, or a caller
/// with nothing else in flight.
pub struct Tail {
    /// Held while the log is open here: a second gateway on the same log would
    /// interleave its records with ours and break the chain.
    _lock: Option<File>,
    file: File,
    len: u64,
    prev: String,
    journal: Option<Journal>,
    broken: Option<Broken>,
    /// Signs checkpoints, when the log has a key.
    signer: Option<Signer>,
    /// Records in the log (counted at open when there is a key).
    count: u64,
    /// The hash of the log's last checkpoint.
    last_checkpoint: Option<String>,
    /// Records written since that checkpoint, and when the first of them was.
    unchecked: u64,
    unchecked_since: Instant,
    /// Write a checkpoint with the next batch, however soon (a clean shutdown).
    pub force_checkpoint: bool,
    /// Where durable checkpoints are also sent.
    pub witness: Option<Witness>,
    /// Records, batches, syncs and failed writes, for `/metrics`.
    metrics: AuditMetrics,
    /// The replica that writes this log, named in every record.
    replica: Option<String>,
}

impl Tail {
    pub fn public_key(&self) -> Option<&str> {
        self.signer.as_ref().map(Signer::public)
    }

    /// Why records cannot be written now, if they cannot.
    pub fn failing(&self) -> Option<Failing> {
        self.broken.as_ref().map(|b| Failing {
            since: b.since.clone(),
            error: b.reason.clone(),
            refused: b.refused,
        })
    }

    /// Records written since the last checkpoint.
    pub fn unchecked(&self) -> u64 {
        self.unchecked
    }

    /// Whether writes failed and the next one is due now.
    fn retry_due(&self) -> bool {
        self.broken
            .as_ref()
            .is_some_and(|b| Instant::now() >= b.retry_at)
    }

    /// Whether a batch of `n` records should end with a checkpoint: records are not yet
    /// covered by one, and the first of them has waited a second (or one is asked for).
    fn checkpoint_due(&self, n: u64) -> bool {
        let waited = self.unchecked > 0 && self.unchecked_since.elapsed() >= CHECKPOINT;
        self.signer.is_some() && self.unchecked + n > 0 && (self.force_checkpoint || waited)
    }
}

pub type Shared = Arc<Mutex<Tail>>;

/// Why records cannot be written, since when, and how many were refused so far.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failing {
    pub since: String,
    pub error: String,
    pub refused: u64,
}

/// Why the log cannot be written, since when, how many records were refused meanwhile,
/// and when to try again.
#[derive(Debug)]
struct Broken {
    reason: String,
    since: String,
    refused: u64,
    retry_at: Instant,
}

pub fn spawn(
    path: &Path,
    deferred: Deferred,
    signer: Option<Signer>,
    witness: Option<Witness>,
    metrics: AuditMetrics,
    replica: Option<String>,
) -> Result<(mpsc::Sender<Job>, Shared), AuditError> {
    let open_err = |reason: String| AuditError::Open {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
    }
    let lock = lock(path).map_err(open_err)?;
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| open_err(e.to_string()))?;
    let opened = journal::open(path, &mut file).map_err(open_err)?;
    let opened_torn = opened.torn.clone();
    // Only a regular file can be read back (a device such as /dev/full never ends).
    let regular = std::fs::metadata(path).is_ok_and(|m| m.is_file());
    let (count, last_checkpoint) = match &signer {
        Some(_) if regular => File::open(path)
            .and_then(checkpoint::scan)
            .map_err(|e| open_err(e.to_string()))?,
        _ => (0, None),
    };
    let tail = Arc::new(Mutex::new(Tail {
        _lock: lock,
        file,
        len: opened.len,
        prev: opened.head,
        journal: opened.journal,
        broken: None,
        signer,
        count,
        last_checkpoint,
        unchecked: 0,
        unchecked_since: Instant::now(),
        force_checkpoint: false,
        witness,
        metrics,
        replica,
    }));
    if let Some((moved, digest)) = &opened_torn {
        let mut fields = serde_json::Map::new();
        fields.insert("error".into(), serde_json::json!("the log ended in a torn line (no newline: a crash in the middle of a write), never acknowledged; it was moved aside"));
        fields.insert(
            "moved".into(),
            serde_json::json!(moved.display().to_string()),
        );
        fields.insert("torn_digest".into(), serde_json::json!(digest));
        let note = super::record::event("recovered", fields);
        let mut held = tail
            .lock()
            .map_err(|_| open_err("the log's tail is unusable".into()))?;
        commit(&mut held, &deferred, std::iter::once(note)).map_err(open_err)?;
    }
    let (tx, rx) = mpsc::channel(BATCH * 4);
    let (writer_tail, taken) = (tail.clone(), deferred.clone());
    std::thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || run(&writer_tail, rx, &taken))
        .map_err(|e| open_err(e.to_string()))?;
    let (wake, ticked) = (tx.downgrade(), tail.clone());
    std::thread::Builder::new()
        .name("audit-ticker".into())
        .spawn(move || tick(&wake, &deferred, &ticked))
        .map_err(|e| open_err(e.to_string()))?;
    Ok((tx, tail))
}

/// Wake the writer for deferred records, for a checkpoint that is due, or to try writing
/// again after a failed write (so the log recovers, and `/readyz` with it, with no call
/// coming), every [`TICK`], until the log is closed.
fn tick(wake: &mpsc::WeakSender<Job>, deferred: &Deferred, tail: &Shared) {
    loop {
        std::thread::sleep(TICK);
        let Some(tx) = wake.upgrade() else { return };
        let due = tail
            .try_lock()
            .is_ok_and(|t| t.checkpoint_due(0) || t.retry_due());
        if due || !queued(deferred).is_empty() {
            let (ack, _) = tokio::sync::oneshot::channel();
            let _ = tx.try_send((None, ack));
        }
    }
}

fn run(tail: &Shared, mut rx: mpsc::Receiver<Job>, deferred: &Deferred) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let records = batch.iter_mut().filter_map(|(fields, _)| fields.take());
        let result = match tail.lock() {
            Ok(mut tail) => commit(&mut tail, deferred, records),
            Err(_) => Err("the audit writer failed while writing".to_string()),
        };
        for (_, ack) in batch {
            let _ = ack.send(result.clone().map_err(AuditError::Write));
        }
    }
}

/// Chain and write the deferred records (their calls' attempts are already written),
/// then `records`, and make them durable once. A failed write leaves nothing of its batch
/// in the log (it is cut back to its last whole record) and keeps the deferred records
/// for the next batch; then every record is refused until, a second later, a write
/// succeeds again, led by a `recovered` record that says since when and how many were
/// refused.
pub fn commit(
    tail: &mut Tail,
    deferred: &Deferred,
    records: impl Iterator<Item = AuditRecord>,
) -> Result<(), String> {
    let records: Vec<AuditRecord> = records.collect();
    let mut first = Vec::new();
    if let Some(broken) = &mut tail.broken {
        if Instant::now() < broken.retry_at {
            broken.refused += records.len() as u64;
            return Err(broken.reason.clone());
        }
        first.push(recovered(broken));
    }
    let later = std::mem::take(&mut *queued(deferred));
    let result = write_batch(tail, first.iter().chain(&later).chain(&records));
    match &result {
        Ok(()) => {
            if let Some(b) = tail.broken.take() {
                tracing::warn!(since = %b.since, refused = b.refused, "the audit log is written again");
            }
        }
        Err(reason) => {
            tail.metrics.write_failures.inc();
            // Nothing of the batch was acknowledged: none of it stays in the log.
            let _ = tail.file.set_len(tail.len);
            queued(deferred).splice(0..0, later);
            let refused = records.len() as u64;
            let retry_at = Instant::now() + RETRY;
            match &mut tail.broken {
                Some(b) => {
                    b.refused += refused;
                    b.retry_at = retry_at;
                }
                None => {
                    tracing::error!(%reason, "audit log write failed; refusing every call until a write succeeds again (tried every second)");
                    tail.broken = Some(Broken {
                        reason: reason.clone(),
                        since: humantime::format_rfc3339_micros(std::time::SystemTime::now())
                            .to_string(),
                        refused,
                        retry_at,
                    });
                }
            }
        }
    }
    result
}

/// The record that leads the first batch written after writes failed.
fn recovered(broken: &Broken) -> AuditRecord {
    let mut fields = serde_json::Map::new();
    fields.insert("since".into(), serde_json::json!(broken.since));
    fields.insert("refused".into(), serde_json::json!(broken.refused));
    fields.insert("error".into(), serde_json::json!(broken.reason));
    super::record::event("recovered", fields)
}

/// Take `<log>.lock` for this process, or say which log is in use. A log that is not
/// a regular file (a device, a pipe) is not locked.
fn lock(path: &Path) -> Result<Option<File>, String> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Ok(None);
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = std::path::PathBuf::from(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open its lock `{}`: {e}", lock_path.display()))?;
    // A writer closing in this process (a restart, a test) lets go within moments.
    let mut waited = Duration::ZERO;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) if waited < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(10));
                waited += Duration::from_millis(10);
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "another running gateway writes this log (it holds `{}`); two writers would break its chain: give each gateway its own `audit_log` (or `state_dir`)",
                    lock_path.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock `{}`: {e}", lock_path.display()));
            }
        }
    }
}

/// How long opening a log waits for another writer to let go of it.
const LOCK_WAIT: Duration = Duration::from_secs(2);

fn write_batch<'r>(
    tail: &mut Tail,
    records: impl Iterator<Item = &'r AuditRecord>,
) -> Result<(), String> {
    let mut buf = Vec::new();
    let mut last = tail.prev.clone();
    let mut n = 0u64;
    for record in records {
        let (line, hash) = seal_by(record, &last, tail.replica.as_deref())?;
        buf.extend_from_slice(&line);
        last = hash;
        n += 1;
    }
    let mut checkpoint = None;
    if let Some(signer) = tail.signer.as_ref().filter(|_| tail.checkpoint_due(n)) {
        let signed = signer.checkpoint(tail.count + n, &last, tail.last_checkpoint.as_deref());
        let checkpoint_record = AuditRecord::Checkpoint(Box::new(signed));
        let (line, hash) = seal_by(&checkpoint_record, &last, tail.replica.as_deref())?;
        checkpoint = Some((hash.clone(), buf.len()));
        buf.extend_from_slice(&line);
        last = hash;
    }
    if buf.is_empty() {
        return Ok(()); // only markers: what came before them is already synced
    }
    let started = Instant::now();
    tail.file.write_all(&buf).map_err(|e| e.to_string())?;
    let len = tail.len + buf.len() as u64;
    match &mut tail.journal {
        Some(journal) => journal.record(&tail.file, &buf, len, &last),
        None => tail.file.sync_data(),
    }
    .map_err(|e| e.to_string())?;
    let lines = n + u64::from(checkpoint.is_some());
    tail.metrics
        .sync_seconds
        .observe(started.elapsed().as_secs_f64());
    tail.metrics.batch_records.observe(lines as f64);
    tail.metrics.records.inc_by(lines);
    tail.len = len;
    tail.prev = last;
    if let Some(witness) = &tail.witness {
        witness.send(&Batch {
            buf: Arc::new(buf),
            lines,
            checkpoint_at: checkpoint.as_ref().map(|(_, at)| *at),
        });
    }
    match checkpoint {
        Some((hash, _)) => {
            tail.count += n + 1;
            tail.unchecked = 0;
            tail.last_checkpoint = Some(hash);
            tail.force_checkpoint = false;
        }
        None => {
            if tail.unchecked == 0 {
                tail.unchecked_since = Instant::now();
            }
            tail.count += n;
            tail.unchecked += n;
        }
    }
    Ok(())
}

/// Chain a record to `prev` and render its line: the record's compact JSON (with every
/// credential it holds masked, see [`secrets`]) with `prev` as its last member, then `hash` = SHA-256 of exactly those bytes, appended as the
/// last member. `verify` hashes the bytes as written, so no canonical form is needed.
#[cfg(test)]
pub fn seal(record: &AuditRecord, prev: &str) -> Result<(Vec<u8>, String), String> {
    seal_by(record, prev, None)
}

/// [`seal`], the record written by `replica` (a `replica` member before `prev`).
pub fn seal_by(
    record: &AuditRecord,
    prev: &str,
    replica: Option<&str>,
) -> Result<(Vec<u8>, String), String> {
    let mut line = Vec::with_capacity(1024);
    serde_json::to_writer(&mut line, record)
        .map_err(|e| format!("cannot write an audit record: {e}"))?;
    // No credential reaches the log, whatever field it came in.
    if let Cow::Owned(masked) = secrets::scrub(&line) {
        line = masked;
    }
    if line.pop() != Some(b'}') || line.len() < 2 {
        return Err("an audit record is not a JSON object with members".into());
    }
    if let Some(replica) = replica {
        line.extend_from_slice(b",\"replica\":");
        serde_json::to_writer(&mut line, replica).map_err(|e| e.to_string())?;
    }
    line.extend_from_slice(b",\"prev\":");
    serde_json::to_writer(&mut line, prev).map_err(|e| e.to_string())?;
    line.push(b'}');
    let hash = digest::sha256(&line);
    line.pop(); // the closing brace
    line.extend_from_slice(HASH_MARK.as_bytes());
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}\n");
    Ok((line, hash))
}

/// Split a line into the hashed body and its stated hash.
pub fn unseal(line: &[u8]) -> Option<(Vec<u8>, &str)> {
    let text = std::str::from_utf8(line).ok()?;
    let at = text.rfind(HASH_MARK)?;
    let hash = text.get(at + HASH_MARK.len()..)?.strip_suffix("\"}")?;
    let mut body = text.get(..at)?.as_bytes().to_vec();
    body.push(b'}');
    Some((body, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn record(n: u64) -> AuditRecord {
        let fields = json!({"kind": "outcome", "n": n});
        AuditRecord::Event(fields.as_object().cloned().unwrap_or_default())
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// A sealed line is the record's compact JSON (no spaces, the same escapes as
    /// `to_string`) with `prev` as its last member, `hash` appended after it, and its hash
    /// is of exactly the bytes before `hash`.
    #[test]
    fn a_sealed_line_is_the_compact_json_of_its_record() {
        let fields =
            json!({"kind": "attempt", "args": {"q": "\"quoted\"\n\u{1}", "z": [1, 2.5, null]},
            "intent": "naïve ✓ 🙂", "tool": "echo"})
            .as_object()
            .cloned()
            .unwrap();
        let compact = Value::Object(fields.clone()).to_string();
        let expected = format!("{},\"prev\":\"{GENESIS}\"}}", &compact[..compact.len() - 1]);
        let (line, hash) = seal(&AuditRecord::Event(fields), GENESIS).unwrap();
        let line = String::from_utf8(line).unwrap();
        let (body, stated) = unseal(line.trim_end().as_bytes()).unwrap();
        assert_eq!(String::from_utf8(body.clone()).unwrap(), expected);
        assert_eq!(
            (stated, hash.as_str()),
            (digest::sha256(&body).as_str(), stated)
        );
        assert!(line.ends_with("\"}\n") && !line.trim_end().contains('\n'));
    }

    /// A typed record is written with `kind` first and the fields its struct names; a
    /// call record's header is flattened into it.
    #[test]
    fn a_typed_record_is_written_with_its_kind_and_fields() {
        let grant = crate::grant::Grant {
            id: "g1".into(),
            to: "agent:a".into(),
            on_behalf_of: None,
            tools: "crm/*".into(),
            tier: crate::manifest::Tier::Read,
            reason: "r".into(),
            by: "user:admin".into(),
            created: 1,
            expires: 2,
            status: crate::grant::GrantStatus::Active,
            revoked_by: None,
            task: None,
        };
        let record = crate::audit::record::grant(&grant, "created", "user:admin", None);
        let (line, _) = seal(&record, GENESIS).unwrap();
        let text = String::from_utf8(line).unwrap();
        assert!(text.starts_with("{\"kind\":\"grant\","), "{text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        for key in ["ts", "id", "event", "actor", "grant", "prev", "hash"] {
            assert!(value.get(key).is_some(), "`{key}` in {text}");
        }
        assert!(value.get("error").is_none(), "no error, no `error`: {text}");
    }

    #[tokio::test]
    async fn deferred_records_are_written_by_the_ticker_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let deferred = Deferred::default();
        let _writer = spawn(
            &path,
            deferred.clone(),
            None,
            None,
            Default::default(),
            None,
        )
        .unwrap();
        deferred.lock().unwrap().extend([record(1), record(2)]);
        // Nothing is sent to the writer: only the ticker can wake it.
        let mut written = Vec::new();
        for _ in 0..100 {
            written = lines(&path);
            if written.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let order: Vec<&Value> = written.iter().map(|r| &r["n"]).collect();
        assert_eq!(order, [&json!(1), &json!(2)]);
        assert!(crate::audit::verify(&path).is_ok());
    }

    #[tokio::test]
    async fn a_batch_writes_the_deferred_records_before_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let deferred = Deferred::default();
        let (tx, _) = spawn(
            &path,
            deferred.clone(),
            None,
            None,
            Default::default(),
            None,
        )
        .unwrap();
        deferred.lock().unwrap().push(record(1));
        let (ack, done) = tokio::sync::oneshot::channel();
        tx.send((Some(record(2)), ack)).await.unwrap();
        done.await.unwrap().unwrap();
        // Acknowledged means on disk: both, the deferred one first.
        let order: Vec<Value> = lines(&path).iter().map(|r| r["n"].clone()).collect();
        assert_eq!(order, [json!(1), json!(2)]);
        assert!(deferred.lock().unwrap().is_empty());
    }
}
