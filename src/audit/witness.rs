//! The outside witness: every signed checkpoint, once durable in the log, is also sent
//! where the log's host should not be able to rewrite it: appended to a file (a WORM
//! mount, another machine's share) or posted to a collector as a Splunk HEC event
//! (Splunk, and OpenSearch or Elastic through their HEC-compatible endpoints), so
//! `verify --witness` can prove a log that was cut or rewritten even when it agrees with
//! itself. Delivery never holds up the writer: a bounded queue, a
//! thread of its own that retries with backoff, and a logged count of what a full queue
//! dropped.

use std::io::Write;
use std::path::Path;

use crate::config::WitnessConfig;
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
    pub fn start(sinks: &[WitnessConfig]) -> std::io::Result<Option<Self>> {
        if sinks.is_empty() {
            return Ok(None);
        }
        for sink in sinks {
            if let WitnessConfig::File(f) = sink
                && let Some(dir) = f.parent().filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)?;
            }
        }
        let (tx, rx) = sync_channel(QUEUE);
        let files = sinks.to_vec();
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

fn deliver(sinks: &[WitnessConfig], rx: &Receiver<Message>) {
    let http = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok();
    let client = reqwest::Client::new();
    while let Ok(message) = rx.recv() {
        match message {
            Message::Checkpoint(line) => {
                for sink in sinks {
                    until_done(sink, || match sink {
                        WitnessConfig::File(file) => append(file, &line).map_err(|e| e.to_string()),
                        WitnessConfig::Hec { url, token } => match &http {
                            Some(rt) => rt.block_on(post(&client, url, token, &line)),
                            None => Err("no runtime for HTTP".into()),
                        },
                    });
                }
            }
            Message::Drained(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// Deliver to `sink`, trying again with backoff until it is done.
fn until_done(sink: &WitnessConfig, mut deliver: impl FnMut() -> Result<(), String>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match deliver() {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(witness = ?sink, error = %e, retry_in = ?backoff, "cannot send a checkpoint to the audit witness");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Post a checkpoint line as a Splunk HEC event: the checkpoint record is the event.
async fn post(client: &reqwest::Client, url: &str, token: &str, line: &[u8]) -> Result<(), String> {
    let record: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let event = serde_json::json!({"event": record, "sourcetype": "mcp-warden:checkpoint"});
    let response = client
        .post(url)
        .header("Authorization", format!("Splunk {token}"))
        .json(&event)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match response.status().is_success() {
        true => Ok(()),
        false => Err(format!("the collector answered {}", response.status())),
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
