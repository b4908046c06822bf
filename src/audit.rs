//! The audit log: one JSON object per line, each hash-chained to the one before, appended
//! durably (group commit: many records, one synchronous write to the `journal` beside the
//! log) before a call is forwarded, and after it returns with the next group commit.
//! [`AuditLog::attempt`] is the only maker of [`Attested`], which forwarding requires, so
//! no call reaches an upstream without its record on disk. It does not decide anything;
//! `verify` checks a log without trusting it (and with the public key, every signed
//! `checkpoint` in it).

pub mod checkpoint;
mod journal;
pub mod query;
mod record;
mod show;
mod verify;
pub mod witness;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::approval;
use crate::policy::{Access, Permitted, PermittedAccess, RefusedAccess};
pub use record::{AuditRecord, Outcome, Refusal, Stage, redacted};
pub use show::describe;
pub use verify::{
    Verified, VerifyError, Witnessed, verify, verify_with, verify_witness, verify_witnessed,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log `{path}`: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("the audit log could not be written ({0}); the call was not made")]
    Write(String),
}

/// A permitted call whose "attempt" record is durably written. Only
/// [`AuditLog::attempt`] makes one; forwarding requires one.
#[derive(Debug)]
pub struct Attested {
    permitted: Permitted,
    started: Instant,
    _busy: Busy,
}

impl Attested {
    pub fn permitted(&self) -> &Permitted {
        &self.permitted
    }
}

/// A permitted access (a prompt) whose record is durably written. Only
/// [`AuditLog::access`] makes one; the upstream requires one.
#[derive(Debug)]
pub struct AttestedAccess {
    permitted: PermittedAccess,
}

impl AttestedAccess {
    pub fn access(&self) -> &Access {
        self.permitted.access()
    }
}

/// A record to chain and write, or `None` for a marker that is acknowledged once every
/// record queued before it is durable; and where its acknowledgement goes.
type Job = (Option<AuditRecord>, oneshot::Sender<Result<(), AuditError>>);

/// Marks a record being written, or a call between its attempt and its outcome, for as
/// long as it lives.
#[derive(Debug)]
struct Busy(Arc<AtomicUsize>);

impl Busy {
    /// Enter, and say whether nothing else was in flight.
    fn enter(count: &Arc<AtomicUsize>) -> (Self, bool) {
        let before = count.fetch_add(1, Ordering::AcqRel);
        (Self(count.clone()), before == 0)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The audit log's state, as `/healthz` shows it: `degraded` while records cannot be
/// written (every call is refused) or a witness fails or has dropped lines.
#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub log: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<writer::Failing>,
    pub witnesses: Vec<witness::SinkStatus>,
}

/// A handle to the audit log's writer; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    /// The end of the log, for a caller that writes its record itself.
    tail: writer::Shared,
    /// Outcome records, taken by the next batch.
    deferred: writer::Deferred,
    /// Records being written and calls between attempt and outcome.
    busy: Arc<AtomicUsize>,
    path: PathBuf,
    /// The witness's sinks, for `/healthz`.
    witnesses: Option<witness::Monitor>,
    metrics: crate::telemetry::AuditMetrics,
}

impl AuditLog {
    /// Open (or create) a log, continuing its hash chain. Refuses a log whose last line is
    /// incomplete or does not verify: run `mcp-warden audit verify` to see why.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        Self::open_signed(path, None)
    }

    /// Open a log whose records `signer` vouches for with signed checkpoints (see
    /// `checkpoint`), at least every second while records are written.
    pub fn open_signed(
        path: &Path,
        signer: Option<checkpoint::Signer>,
    ) -> Result<Self, AuditError> {
        Self::open_witnessed(path, signer, None, None)
    }

    /// Open a signed log whose checkpoints also go to `witness` once durable.
    pub fn open_witnessed(
        path: &Path,
        signer: Option<checkpoint::Signer>,
        witness: Option<witness::Witness>,
        replica: Option<String>,
    ) -> Result<Self, AuditError> {
        let deferred = writer::Deferred::default();
        let witnesses = witness.as_ref().map(witness::Witness::monitor);
        let metrics = crate::telemetry::AuditMetrics::default();
        let (tx, tail) = writer::spawn(
            path,
            deferred.clone(),
            signer,
            witness,
            metrics.clone(),
            replica,
        )?;
        Ok(Self {
            tx,
            tail,
            deferred,
            busy: Arc::default(),
            path: path.to_path_buf(),
            witnesses,
            metrics,
        })
    }

    /// What the writer reports (records, batches, syncs, failed writes).
    pub fn metrics(&self) -> crate::telemetry::AuditMetrics {
        self.metrics.clone()
    }

    /// Records written since the last signed checkpoint (none vouches for them yet).
    pub fn unchecked(&self) -> u64 {
        self.tail.lock().map_or(0, |t| t.unchecked())
    }

    /// Records and calls in flight in the writer (queued records, and calls between
    /// their attempt and outcome).
    pub fn in_flight(&self) -> usize {
        self.busy.load(Ordering::Acquire) + (self.tx.max_capacity() - self.tx.capacity())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public key of the key that signs this log's checkpoints, if it is signed.
    pub fn public_key(&self) -> Option<String> {
        let tail = self.tail.lock().ok()?;
        tail.public_key().map(String::from)
    }

    /// Whether records are being written, and how each witness is doing.
    pub fn health(&self) -> Health {
        let failing = match self.tail.lock() {
            Ok(tail) => tail.failing(),
            Err(_) => Some(writer::Failing {
                since: String::new(),
                error: "the audit writer failed while writing".into(),
                refused: 0,
            }),
        };
        let witnesses: Vec<witness::SinkStatus> = self
            .witnesses
            .iter()
            .flat_map(|m| m.iter().map(|s| s.status()))
            .collect();
        let degraded = failing.is_some()
            || witnesses
                .iter()
                .any(|w| w.dropped > 0 || w.failing_since.is_some());
        Health {
            status: if degraded { "degraded" } else { "ok" },
            log: self.path.display().to_string(),
            failing,
            witnesses,
        }
    }

    /// Write the "attempt" record of a permitted call and wait until it is on disk.
    pub async fn attempt(&self, permitted: Permitted) -> Result<Attested, (Permitted, AuditError)> {
        let fields = record::attempt(&permitted);
        let (busy, alone) = Busy::enter(&self.busy);
        match self.write(fields, alone).await {
            Ok(()) => Ok(Attested {
                permitted,
                started: Instant::now(),
                _busy: busy,
            }),
            Err(e) => Err((permitted, e)),
        }
    }

    /// Queue the "outcome" record of a forwarded call. The writer chains it and makes it
    /// durable with its next group commit (at most 20 ms later when no other record
    /// comes), without the caller's answer waiting for that write: a crash in between
    /// leaves the attempt without an outcome, which is what "outcome unknown" means. Err
    /// only when the writer has stopped.
    pub async fn outcome(&self, attested: &Attested, outcome: &Outcome) -> Result<(), AuditError> {
        let latency = attested.started.elapsed();
        let fields = record::outcome(&attested.permitted, outcome, latency);
        if self.tx.is_closed() {
            return Err(AuditError::Write("the audit writer has stopped".into()));
        }
        writer::queued(&self.deferred).push(fields);
        Ok(())
    }

    /// Wait until every record queued so far is on disk (or its write has failed).
    pub async fn flush(&self) -> Result<(), AuditError> {
        self.send(None).await
    }

    /// At a clean shutdown: write every queued record, then a checkpoint over them (when
    /// the log is signed and records came since the last one), and wait for both.
    pub async fn close(&self) -> Result<(), AuditError> {
        if let Ok(mut tail) = self.tail.lock() {
            tail.force_checkpoint = true;
        }
        self.send(None).await?;
        // Then give the witness a few seconds to take the last checkpoint.
        let drained = self
            .tail
            .lock()
            .ok()
            .and_then(|t| t.witness.as_ref().and_then(witness::Witness::drained));
        if let Some(done) = drained {
            let waited = tokio::task::spawn_blocking(move || {
                done.recv_timeout(std::time::Duration::from_secs(5))
            })
            .await;
            if !matches!(waited, Ok(Ok(()))) {
                tracing::warn!(
                    "the audit witness did not take the last checkpoint before the gateway stopped"
                );
            }
        }
        Ok(())
    }

    /// Write the record of a permitted access (one record: accesses are lighter than tool
    /// calls and have no outcome record).
    pub async fn access(
        &self,
        permitted: PermittedAccess,
    ) -> Result<AttestedAccess, (PermittedAccess, AuditError)> {
        let fields = record::access(permitted.access(), permitted.decision(), None);
        match self.append(fields).await {
            Ok(()) => Ok(AttestedAccess { permitted }),
            Err(e) => Err((permitted, e)),
        }
    }

    /// Write the record of a refused access.
    pub async fn access_refused(&self, refused: &RefusedAccess) -> Result<(), AuditError> {
        let fields = record::access(&refused.access, &refused.decision, Some(&refused.message));
        self.append(fields).await
    }

    /// Write a step in an approval's life (`requested`, `approved`, `denied`, `expired`,
    /// `executed`, or a refused decision), with the approver who caused it.
    pub async fn approval(
        &self,
        request: &approval::Request,
        event: &str,
        actor: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), AuditError> {
        self.append(record::approval(request, event, actor, error))
            .await
    }

    /// Write a step in a grant's life (`created`, `revoked`, `expired`, `refused`).
    pub async fn grant(
        &self,
        grant: &crate::grant::Grant,
        event: &str,
        actor: &str,
        error: Option<&str>,
    ) -> Result<(), AuditError> {
        self.append(record::grant(grant, event, actor, error)).await
    }

    /// Write a record about the gateway itself: `drift` (a tool quarantined because its
    /// definition changed) or `reload` (policy, manifests and config read again).
    pub async fn event(&self, kind: &str, fields: Map<String, Value>) -> Result<(), AuditError> {
        self.append(record::event(kind, fields)).await
    }

    /// Write the record of a refused call.
    pub async fn refusal(&self, refusal: &Refusal<'_>) -> Result<(), AuditError> {
        self.append(record::refusal(refusal)).await
    }

    async fn append(&self, fields: AuditRecord) -> Result<(), AuditError> {
        let (_busy, alone) = Busy::enter(&self.busy);
        self.write(fields, alone).await
    }

    /// Write a record and wait until it is on disk. When nothing else is in flight (no
    /// other record being written, no call between its attempt and its outcome, nothing
    /// queued for the writer thread, which is idle), the caller writes and syncs it itself:
    /// handing it to the thread and being woken again would cost more than the write.
    /// That blocks this runtime thread for one synchronous write, when nothing waits for it.
    /// Otherwise the writer thread takes it into its next group commit.
    async fn write(&self, fields: AuditRecord, alone: bool) -> Result<(), AuditError> {
        if alone
            && self.tx.capacity() == self.tx.max_capacity()
            && let Ok(mut tail) = self.tail.try_lock()
        {
            return writer::commit(&mut tail, &self.deferred, std::iter::once(fields))
                .map_err(AuditError::Write);
        }
        self.send(Some(fields)).await
    }

    /// Queue a job and wait for the batch it went out in to be synced.
    async fn send(&self, fields: Option<AuditRecord>) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send((fields, ack))
            .await
            .map_err(|_| AuditError::Write("the audit writer has stopped".into()))?;
        done.await
            .map_err(|_| AuditError::Write("the audit writer has stopped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two writers would interleave their records and break the chain: while one log is
    /// open, a second open of it is refused and says why; once the first is closed, the
    /// log opens again and its chain goes on.
    #[tokio::test]
    async fn a_log_another_writer_holds_is_refused_and_opens_once_it_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let first = AuditLog::open(&path).unwrap();
        first.event("first", Map::new()).await.unwrap();
        let refused = AuditLog::open(&path).err().unwrap().to_string();
        assert!(
            refused.contains("another running gateway writes this log"),
            "{refused}"
        );
        first.flush().await.unwrap();
        drop(first);
        let again = AuditLog::open(&path).unwrap();
        again.event("again", Map::new()).await.unwrap();
        again.flush().await.unwrap();
        assert_eq!(verify::verify(&path).unwrap(), 2);
    }

    /// The `n` of every record in a log, in order.
    pub(super) fn numbers(path: &Path) -> Vec<u64> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    fn numbered(n: usize) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("n".into(), Value::from(n));
        fields
    }

    /// Records written by callers alone (written in place) and by many at once (handed to
    /// the writer thread) make one chain, each record once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn alone_or_together_every_record_lands_once_in_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        for n in 0..20 {
            log.event("test", numbered(n)).await.unwrap();
        }
        let together: Vec<_> = (20..220)
            .map(|n| {
                let log = log.clone();
                tokio::spawn(async move { log.event("test", numbered(n)).await })
            })
            .collect();
        for task in together {
            task.await.unwrap().unwrap();
        }
        for n in 220..240 {
            log.event("test", numbered(n)).await.unwrap();
        }
        log.flush().await.unwrap();
        assert_eq!(
            log.busy.load(Ordering::Acquire),
            0,
            "nothing left in flight"
        );
        verify(&path).unwrap();
        let mut seen = numbers(&path);
        // Alone, the order is the callers' order.
        assert_eq!(seen[..20], (0..20).collect::<Vec<_>>()[..]);
        assert_eq!(seen[220..], (220..240).collect::<Vec<_>>()[..]);
        seen.sort_unstable();
        assert_eq!(seen, (0..240).collect::<Vec<_>>());
    }
}
