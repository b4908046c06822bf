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
/// The wait before trying a witness that failed again, doubled after every failure up
/// to the longest.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
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
    /// Start delivering to `sinks`; `None` when there are none.
    pub fn start(sinks: &[WitnessConfig]) -> std::io::Result<Option<Self>> {
        Self::start_with(sinks, QUEUE)
    }

    fn start_with(sinks: &[WitnessConfig], queue: usize) -> std::io::Result<Option<Self>> {
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
        let (tx, rx) = sync_channel(queue);
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

    /// How many checkpoints a full queue could not take, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
    let mut backoff = FIRST_BACKOFF;
    loop {
        match deliver() {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(witness = ?sink, error = %e, retry_in = ?backoff, "cannot send a checkpoint to the audit witness");
                std::thread::sleep(backoff);
                backoff = next_backoff(backoff);
            }
        }
    }
}

fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_witness_is_tried_again_after_1_2_4_8_16_then_every_30_seconds() {
        let schedule: Vec<u64> =
            std::iter::successors(Some(FIRST_BACKOFF), |b| Some(next_backoff(*b)))
                .take(8)
                .map(|b| b.as_secs())
                .collect();
        assert_eq!(schedule, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    /// A collector on one connection: it says when the first post has arrived, holds it
    /// until `go`, answers it 503 (the witness must try it again) and every later post
    /// 200, and hands over the `n` of each event it took.
    fn collector(accepted: SyncSender<()>, go: Receiver<()>, took: SyncSender<u64>) -> String {
        use std::io::{BufRead, BufReader, Read};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/services/collector/event",
            listener.local_addr().unwrap()
        );
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            accepted.send(()).unwrap();
            go.recv().unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            for answered in 0.. {
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let status = if answered == 0 {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                write!(out, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").unwrap();
                if answered > 0 {
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    took.send(event["event"]["n"].as_u64().unwrap()).unwrap();
                }
            }
        });
        url
    }

    /// While the witness is stuck on a checkpoint, sending never waits and a full queue
    /// counts what it cannot take; the stuck one is tried again after a refusal, and every
    /// checkpoint the queue took arrives, in order: none vanishes uncounted.
    #[test]
    fn a_stuck_witness_never_holds_up_the_writer_and_every_checkpoint_is_delivered_or_counted() {
        let (accepted, on_accept) = sync_channel(1);
        let (go, held) = sync_channel(1);
        let (took, taken) = sync_channel(16);
        let url = collector(accepted, held, took);
        let sink = WitnessConfig::Hec {
            url,
            token: "t".into(),
        };
        let witness = Witness::start_with(&[sink], 4).unwrap().unwrap();
        let line = |n: u64| format!("{{\"n\":{n}}}\n").into_bytes();
        witness.send(&line(0));
        on_accept.recv_timeout(Duration::from_secs(10)).unwrap();
        // The thread is inside the post of 0: the queue takes 1 to 4, and 5 to 9 are counted.
        for n in 1..10 {
            witness.send(&line(n));
        }
        assert_eq!(witness.dropped(), 5);
        go.send(()).unwrap();
        witness
            .drained()
            .unwrap()
            .recv_timeout(Duration::from_secs(20))
            .unwrap();
        let delivered: Vec<u64> = taken.try_iter().collect();
        assert_eq!(delivered, [0, 1, 2, 3, 4]);
    }
}
