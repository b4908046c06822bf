//! The outside witness: every signed checkpoint, once durable in the log, is also
//! appended to files the log's host should not be able to rewrite (a WORM mount, another
//! machine's share), so `verify --witness` can prove a log that was cut or rewritten even
//! when it agrees with itself. Delivery never holds up the writer: a bounded queue, a
//! thread of its own that retries with backoff, and a logged count of what a full queue
//! dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// Checkpoints waiting for the witness before newer ones are dropped (and counted).
const QUEUE: usize = 4096;
/// The longest wait between two tries of a witness that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

enum Message {
    Checkpoint(Vec<u8>),
    /// Answer once everything queued before it is delivered (or given up on for now).
    Drained(SyncSender<()>),
}

/// The writer's end of the witness queue.
pub struct Witness {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl Witness {
    /// Start delivering to `files`; `None` when there are none.
    pub fn start(files: &[PathBuf]) -> std::io::Result<Option<Self>> {
        if files.is_empty() {
            return Ok(None);
        }
        for dir in files.iter().filter_map(|f| f.parent()) {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let (tx, rx) = sync_channel(QUEUE);
        let files = files.to_vec();
        std::thread::Builder::new()
            .name("audit-witness".into())
            .spawn(move || deliver(&files, &rx))?;
        Ok(Some(Self {
            tx,
            dropped: Arc::default(),
        }))
    }

    /// Queue a checkpoint's line; never waits.
    pub fn send(&self, line: &[u8]) {
        match self.tx.try_send(Message::Checkpoint(line.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(
                    dropped = n,
                    "the audit witness is not keeping up: a checkpoint was not sent to it"
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("the audit witness has stopped: a checkpoint was not sent to it");
            }
        }
    }

    /// A receiver that answers once what is queued now is delivered.
    pub fn drained(&self) -> Option<Receiver<()>> {
        let (ack, done) = sync_channel(1);
        self.tx.send(Message::Drained(ack)).ok()?;
        Some(done)
    }
}

fn deliver(files: &[PathBuf], rx: &Receiver<Message>) {
    while let Ok(message) = rx.recv() {
        match message {
            Message::Checkpoint(line) => {
                for file in files {
                    append_until_done(file, &line);
                }
            }
            Message::Drained(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// Append `line` to `file`, trying again with backoff until it is written.
fn append_until_done(file: &Path, line: &[u8]) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match append(file, line) {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(witness = %file.display(), error = %e, retry_in = ?backoff, "cannot write a checkpoint to the audit witness");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn append(file: &Path, line: &[u8]) -> std::io::Result<()> {
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    out.write_all(line)?;
    out.sync_data()
}
