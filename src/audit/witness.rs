//! The outside witness: every signed checkpoint (and, for a sink that asks for it, every
//! record), once durable in the log, is also sent where the log's host should not be able
//! to rewrite it: appended to a file (a WORM mount, another machine's share), posted to a
//! collector as Splunk HEC events (Splunk, and OpenSearch or Elastic through their
//! HEC-compatible endpoints), sent to a syslog server (see `syslog`), or appended to a
//! table of the replicas' PostgreSQL database, so `verify --witness` can prove a log that
//! was cut or rewritten even when it agrees with itself.
//! Delivery never holds up the writer: each sink has a bounded queue and a thread of its
//! own that retries with backoff, so a dead sink delays no other; what a full queue cannot
//! take is logged and counted, and every sink's state is in `/healthz`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::config::{WitnessConfig, WitnessSink};

mod syslog;

/// Batches of lines waiting for a sink before newer ones are dropped (and counted).
const QUEUE: usize = 4096;
/// The most lines a file or syslog sink writes at once.
const GATHER: usize = 1024;
/// The pause after each delivery, while the next lines gather: at most twenty
/// deliveries a second per sink, and a writer that hands lines over never has to wake
/// the sink's thread (the cost of exporting every record stays off the calls).
const PACE: Duration = Duration::from_millis(50);
/// The wait before trying a witness that failed again, doubled after every failure up
/// to the longest.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

enum Message {
    /// Whole lines, in log order.
    Lines(Lines),
    /// Answer once everything queued before it is delivered (or given up on for now).
    Drained(SyncSender<()>),
}

/// A batch the writer has just made durable, handed over whole (its buffer is shared,
/// never copied): `lines` whole lines, each ending with a newline; the last of them is a
/// checkpoint when `checkpoint_at` says where it starts.
pub struct Batch {
    pub buf: Arc<Vec<u8>>,
    pub lines: u64,
    pub checkpoint_at: Option<usize>,
}

/// Whole lines of a batch a sink takes: all of it, or its checkpoint.
struct Lines {
    buf: Arc<Vec<u8>>,
    from: usize,
    count: u64,
}

impl Lines {
    fn bytes(&self) -> &[u8] {
        self.buf.get(self.from..).unwrap_or_default()
    }
}

/// The writer's end of the witness: one queue per sink.
pub struct Witness {
    sinks: Vec<Sink>,
}

struct Sink {
    every_record: bool,
    tx: SyncSender<Message>,
    state: Arc<SinkState>,
}

/// What one sink has done, for `/healthz` and the logs.
#[derive(Debug, Default)]
pub struct SinkState {
    name: String,
    every_record: bool,
    delivered: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicU64,
    /// Since when it has been failing, and why (RFC 3339, error).
    failing: Mutex<Option<(String, String)>>,
}

/// A sink's state as `/healthz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SinkStatus {
    pub sink: String,
    /// `checkpoints` or `all`.
    pub records: &'static str,
    /// Lines delivered since the start.
    pub delivered: u64,
    /// Lines waiting in the queue.
    pub queued: u64,
    /// Lines a full queue could not take, since the start.
    pub dropped: u64,
    /// Since when delivery has been failing, and the last error; absent when it works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SinkState {
    pub fn status(&self) -> SinkStatus {
        let failing = self
            .failing
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let (failing_since, error) = failing.unzip();
        SinkStatus {
            sink: self.name.clone(),
            records: if self.every_record {
                "all"
            } else {
                "checkpoints"
            },
            delivered: self.delivered.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failing_since,
            error,
        }
    }

    fn set_failing(&self, error: Option<String>) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        *failing = match (failing.take(), error) {
            (_, None) => None,
            (Some((since, _)), Some(e)) => Some((since, e)),
            (None, Some(e)) => Some((
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                e,
            )),
        };
    }
}

/// The sinks' states, shared with whoever reports them.
pub type Monitor = Arc<[Arc<SinkState>]>;

impl Witness {
    /// Start delivering to `sinks`; `None` when there are none.
    pub fn start(sinks: &[WitnessConfig]) -> Result<Option<Self>, String> {
        Self::start_with(sinks, QUEUE)
    }

    fn start_with(configs: &[WitnessConfig], queue: usize) -> Result<Option<Self>, String> {
        if configs.is_empty() {
            return Ok(None);
        }
        let mut sinks = Vec::new();
        for config in configs {
            let out = Out::open(&config.sink)?;
            let state = Arc::new(SinkState {
                name: config.sink.to_string(),
                every_record: config.every_record,
                ..SinkState::default()
            });
            let (tx, rx) = sync_channel(queue);
            let delivering = state.clone();
            std::thread::Builder::new()
                .name("audit-witness".into())
                .spawn(move || deliver(out, &rx, &delivering))
                .map_err(|e| e.to_string())?;
            sinks.push(Sink {
                every_record: config.every_record,
                tx,
                state,
            });
        }
        Ok(Some(Self { sinks }))
    }

    /// The sinks' states.
    pub fn monitor(&self) -> Monitor {
        self.sinks.iter().map(|s| s.state.clone()).collect()
    }

    /// Queue a batch just made durable: every line of it to the sinks that take every
    /// record, its checkpoint to the others. Never waits.
    pub fn send(&self, batch: &Batch) {
        for sink in &self.sinks {
            let (from, count) = match (sink.every_record, batch.checkpoint_at) {
                (true, _) => (0, batch.lines),
                (false, Some(at)) => (at, 1),
                (false, None) => continue,
            };
            sink.queue(Lines {
                buf: batch.buf.clone(),
                from,
                count,
            });
        }
    }

    /// A receiver that answers once what is queued now is delivered to every sink.
    pub fn drained(&self) -> Option<Receiver<()>> {
        let (ack, done) = sync_channel(self.sinks.len());
        for sink in &self.sinks {
            sink.tx.send(Message::Drained(ack.clone())).ok()?;
        }
        let (all, each) = sync_channel(1);
        let n = self.sinks.len();
        std::thread::spawn(move || {
            if done.iter().take(n).count() == n {
                let _ = all.send(());
            }
        });
        Some(each)
    }

    /// How many lines full queues could not take, since the start, over every sink.
    pub fn dropped(&self) -> u64 {
        self.sinks
            .iter()
            .map(|s| s.state.dropped.load(Ordering::Relaxed))
            .sum()
    }
}

impl Sink {
    fn queue(&self, lines: Lines) {
        let n = lines.count;
        self.state.queued.fetch_add(n, Ordering::Relaxed);
        match self.tx.try_send(Message::Lines(lines)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.state.queued.fetch_sub(n, Ordering::Relaxed);
                let dropped = self.state.dropped.fetch_add(n, Ordering::Relaxed) + n;
                tracing::error!(
                    witness = %self.state.name,
                    dropped,
                    "the audit witness is not keeping up: lines were not sent to it"
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                self.state.queued.fetch_sub(n, Ordering::Relaxed);
                self.state.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(witness = %self.state.name, "the audit witness has stopped: lines were not sent to it");
            }
        }
    }
}

/// Try to reach `sink` without sending anything (`mcp-warden check`).
pub fn probe(sink: &WitnessSink) -> Result<(), String> {
    match sink {
        WitnessSink::File(file) => match file.exists() {
            true => std::fs::OpenOptions::new()
                .append(true)
                .open(file)
                .map(drop)
                .map_err(|e| format!("cannot append to it: {e}")),
            false => Ok(()),
        },
        WitnessSink::Hec { url, .. } => {
            let url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
            let addrs = url.socket_addrs(|| None).map_err(|e| e.to_string())?;
            let first = addrs.first().ok_or("the name has no address")?;
            std::net::TcpStream::connect_timeout(first, Duration::from_secs(10))
                .map(drop)
                .map_err(|e| e.to_string())
        }
        WitnessSink::Syslog(config) => syslog::Syslog::new(config)?.probe(),
        WitnessSink::Store { url, .. } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(crate::store::WitnessTable::connect(url))
                .map(drop)
                .map_err(|e| e.to_string())
        }
    }
}

/// Where one sink's lines go.
enum Out {
    File(std::path::PathBuf),
    Hec {
        url: String,
        token: String,
        runtime: Option<tokio::runtime::Runtime>,
        client: reqwest::Client,
    },
    Syslog(Box<syslog::Syslog>),
    Store {
        url: String,
        replica: String,
        runtime: Option<tokio::runtime::Runtime>,
        table: Option<crate::store::WitnessTable>,
    },
}

impl Out {
    fn open(sink: &WitnessSink) -> Result<Self, String> {
        Ok(match sink {
            WitnessSink::File(file) => {
                if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
                }
                Out::File(file.clone())
            }
            WitnessSink::Hec { url, token } => Out::Hec {
                url: url.clone(),
                token: token.clone(),
                runtime: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok(),
                client: reqwest::Client::new(),
            },
            WitnessSink::Syslog(config) => Out::Syslog(Box::new(syslog::Syslog::new(config)?)),
            WitnessSink::Store { url, replica } => Out::Store {
                url: url.clone(),
                replica: replica.clone(),
                runtime: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok(),
                table: None,
            },
        })
    }

    /// Whether several batches may go out as one write (a collector's events are posted
    /// a batch at a time).
    fn gathers(&self) -> bool {
        !matches!(self, Out::Hec { .. })
    }

    fn deliver(&mut self, lines: &[&[u8]]) -> Result<(), String> {
        match self {
            Out::File(file) => append(file, lines).map_err(|e| e.to_string()),
            Out::Hec {
                url,
                token,
                runtime,
                client,
            } => match runtime {
                Some(rt) => rt.block_on(post(client, url, token, lines)),
                None => Err("no runtime for HTTP".into()),
            },
            Out::Syslog(syslog) => syslog.deliver(lines),
            Out::Store {
                url,
                replica,
                runtime,
                table,
            } => {
                let Some(rt) = runtime else {
                    return Err("no runtime for the state database".into());
                };
                rt.block_on(async {
                    if table.as_ref().is_none_or(|t| t.is_closed()) {
                        *table = Some(crate::store::WitnessTable::connect(url).await?);
                    }
                    match table {
                        Some(t) => t.append(replica, lines).await,
                        None => Ok(()),
                    }
                })
                .map_err(|e| e.to_string())
            }
        }
    }
}

fn deliver(mut out: Out, rx: &Receiver<Message>, state: &SinkState) {
    let mut next = None;
    loop {
        let message = match next.take() {
            Some(m) => m,
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        let first = match message {
            Message::Drained(ack) => {
                let _ = ack.send(());
                continue;
            }
            Message::Lines(lines) => lines,
        };
        let mut n = first.count;
        let mut batches = vec![first];
        while out.gathers() && n < GATHER as u64 {
            match rx.try_recv() {
                Ok(Message::Lines(lines)) => {
                    n += lines.count;
                    batches.push(lines);
                }
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let lines: Vec<&[u8]> = batches
            .iter()
            .flat_map(|b| b.bytes().split_inclusive(|c| *c == b'\n'))
            .collect();
        until_done(state, || out.deliver(&lines));
        state.queued.fetch_sub(n, Ordering::Relaxed);
        state.delivered.fetch_add(n, Ordering::Relaxed);
        std::thread::sleep(PACE);
    }
}

/// Deliver to the sink, trying again with backoff until it is done.
fn until_done(state: &SinkState, mut deliver: impl FnMut() -> Result<(), String>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match deliver() {
            Ok(()) => {
                if backoff > FIRST_BACKOFF {
                    tracing::warn!(witness = %state.name, "the audit witness takes lines again");
                }
                state.set_failing(None);
                return;
            }
            Err(e) => {
                tracing::error!(witness = %state.name, error = %e, retry_in = ?backoff, "cannot send to the audit witness");
                state.set_failing(Some(e));
                std::thread::sleep(backoff);
                backoff = next_backoff(backoff);
            }
        }
    }
}

fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

/// Post lines as Splunk HEC events, one JSON object each in one body: the record is
/// the event.
async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    lines: &[&[u8]],
) -> Result<(), String> {
    let mut body = Vec::new();
    for line in lines {
        let record: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let sourcetype = match record.get("kind").and_then(serde_json::Value::as_str) {
            Some("checkpoint") => "mcp-warden:checkpoint",
            _ => "mcp-warden:record",
        };
        let event = serde_json::json!({"event": record, "sourcetype": sourcetype});
        serde_json::to_writer(&mut body, &event).map_err(|e| e.to_string())?;
    }
    let response = client
        .post(url)
        .header("Authorization", format!("Splunk {token}"))
        .header("Content-Type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match response.status().is_success() {
        true => Ok(()),
        false => Err(format!("the collector answered {}", response.status())),
    }
}

fn append(file: &Path, lines: &[&[u8]]) -> std::io::Result<()> {
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    out.write_all(&lines.concat())?;
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
        let sink = WitnessConfig {
            sink: WitnessSink::Hec {
                url,
                token: "t".into(),
            },
            every_record: false,
        };
        let witness = Witness::start_with(&[sink], 4).unwrap().unwrap();
        let line = |n: u64| Batch {
            buf: Arc::new(format!("{{\"n\":{n}}}\n").into_bytes()),
            lines: 1,
            checkpoint_at: Some(0),
        };
        witness.send(&line(0));
        on_accept.recv_timeout(Duration::from_secs(10)).unwrap();
        // The thread is inside the post of 0: the queue takes 1 to 4, and 5 to 9 are counted.
        for n in 1..10 {
            witness.send(&line(n));
        }
        assert_eq!(witness.dropped(), 5);
        let state = witness.monitor()[0].clone();
        assert_eq!((state.status().queued, state.status().dropped), (5, 5));
        go.send(()).unwrap();
        witness
            .drained()
            .unwrap()
            .recv_timeout(Duration::from_secs(20))
            .unwrap();
        let delivered: Vec<u64> = taken.try_iter().collect();
        assert_eq!(delivered, [0, 1, 2, 3, 4]);
        // What `/healthz` shows: all delivered, the refusal over, the drops still counted.
        let status = state.status();
        assert_eq!((status.delivered, status.queued, status.dropped), (5, 0, 5));
        assert_eq!((status.failing_since, status.error), (None, None));
    }
}
