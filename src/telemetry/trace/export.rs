//! Where finished spans go: the settings read at start (the config's endpoint or the
//! standard `OTEL_*` variables), the sampler, and the exporter: a bounded queue the
//! calls push to (a full queue drops the span, never delays a call) and one task on the
//! gateway's runtime that sends it in batches over OTLP/HTTP (protobuf).

use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::w3c::SpanContext;
use crate::telemetry::ResultLabels;

/// Spans by what became of them: `exported`, `dropped` (the queue was full) or `failed`
/// (the receiver refused them or could not be reached). Shared by every gateway in the
/// process, like the exporter.
pub static SPANS: LazyLock<Family<ResultLabels, Counter>> = LazyLock::new(|| {
    let family = Family::default();
    for result in ["exported", "dropped", "failed"] {
        let _ = family.get_or_create(&ResultLabels { result });
    }
    family
});

fn count(result: &'static str, n: usize) {
    SPANS
        .get_or_create(&ResultLabels { result })
        .inc_by(n as u64);
}

/// A span once its call has ended, as it is exported.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    pub context: SpanContext,
    /// The caller's span, when the call came with a valid `traceparent`.
    pub parent: Option<[u8; 8]>,
    pub trace_state: Option<String>,
    pub method: &'static str,
    /// What the request is for: the tool, prompt or resource it names (as the caller
    /// wrote it, escaped), or nothing.
    pub target: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub events: Vec<Event>,
}

/// A stage of a call: when it ended, how long it took, and what it went to.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: &'static str,
    pub time_ns: u64,
    pub duration_us: Option<i64>,
    pub attribute: Option<(&'static str, String)>,
}

/// Which calls get a span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// Follow a caller's `sampled` flag when it sent a trace context.
    pub parent_based: bool,
    /// The share of the other calls (of all calls when not parent-based), 0 to 1.
    pub ratio: f64,
}

impl Sampler {
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
    fn from_env(name: Option<&str>, arg: Option<&str>) -> Result<Self, String> {
        let ratio = || match arg {
            None => Ok(1.0),
            Some(a) => a
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!(
                        "OTEL_TRACES_SAMPLER_ARG `{a}` is not a ratio: give a number from 0 to 1"
                    )
                }),
        };
        let (parent_based, ratio) = match name.unwrap_or("parentbased_always_on") {
            "always_on" => (false, 1.0),
            "always_off" => (false, 0.0),
            "traceidratio" => (false, ratio()?),
            "parentbased_always_on" => (true, 1.0),
            "parentbased_always_off" => (true, 0.0),
            "parentbased_traceidratio" => (true, ratio()?),
            other => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER `{other}` is not supported: use always_on, always_off, traceidratio or their parentbased_ forms"
                ));
            }
        };
        Ok(Self {
            parent_based,
            ratio,
        })
    }

    /// Whether a call of trace `trace_id` is sampled, given its caller's context (the
    /// ratio reads the trace id's last 8 bytes, as the OpenTelemetry SDKs do, so every
    /// service of a trace decides alike).
    pub fn sampled(&self, parent: Option<&SpanContext>, trace_id: &[u8; 16]) -> bool {
        if let (true, Some(p)) = (self.parent_based, parent) {
            return p.sampled();
        }
        let bound = (self.ratio.clamp(0.0, 1.0) * (1u64 << 63) as f64) as u64;
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        (u64::from_be_bytes(low) >> 1) < bound
    }
}

/// Where spans go and how, read once when `serve` starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Otlp {
    /// The full URL spans are posted to.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub resource: Vec<(String, String)>,
    pub sampler: Sampler,
    pub delay: Duration,
    pub queue: usize,
    pub batch: usize,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Otlp {
    /// Exporting is on when the config names an endpoint (its base URL; `/v1/traces` is
    /// added) or the environment does, unless `OTEL_TRACES_EXPORTER=none` or
    /// `OTEL_SDK_DISABLED=true`. `Err` says which setting is wrong.
    pub fn from(configured: Option<&str>) -> Result<Option<Self>, String> {
        Self::from_vars(configured, &var)
    }

    fn from_vars(
        configured: Option<&str>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let off = var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none")
            || var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let base = |e: &str| format!("{}/v1/traces", e.trim().trim_end_matches('/'));
        let url = match configured {
            Some(e) => Some(base(e)),
            None => var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .map(|e| e.trim().to_string())
                .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT").map(|e| base(&e))),
        };
        let (Some(url), false) = (url, off) else {
            return Ok(None);
        };
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "http/protobuf".into());
        if protocol.trim() != "http/protobuf" {
            return Err(format!(
                "OTLP protocol `{protocol}` is not supported: spans are sent as http/protobuf (unset OTEL_EXPORTER_OTLP_PROTOCOL or point it at a collector's HTTP port)"
            ));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "OTLP endpoint `{url}` is not an http:// or https:// URL"
            ));
        }
        let mut headers = pairs(
            var("OTEL_EXPORTER_OTLP_HEADERS").as_deref(),
            "OTEL_EXPORTER_OTLP_HEADERS",
        )?;
        for (k, v) in pairs(
            var("OTEL_EXPORTER_OTLP_TRACES_HEADERS").as_deref(),
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        )? {
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(&k));
            headers.push((k, v));
        }
        let millis = |name: &str, default: u64| -> Result<u64, String> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name} `{v}` is not a whole number of milliseconds")),
            }
        };
        let timeout = match var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") {
            Some(_) => millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", 10_000)?,
            None => millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
        };
        let sampler = Sampler::from_env(
            var("OTEL_TRACES_SAMPLER").as_deref().map(str::trim),
            var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
        )?;
        let queue = millis("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?.max(1) as usize;
        let batch = millis("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?.clamp(1, queue as u64) as usize;
        Ok(Some(Self {
            url,
            headers,
            timeout: Duration::from_millis(timeout),
            resource: resource(var),
            sampler,
            delay: Duration::from_millis(millis("OTEL_BSP_SCHEDULE_DELAY", 5000)?.max(1)),
            queue,
            batch,
        }))
    }

    /// Start sending spans from a task on the current runtime.
    pub fn start(&self) -> Result<Exporter, String> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &self.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("OTLP header name `{k}` is not a valid HTTP header name"))?;
            let value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|_| format!("OTLP header `{k}` has a value HTTP cannot carry"))?;
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| format!("cannot make the OTLP client: {e}"))?;
        let queue = Arc::new(Queue::new(
            self.queue,
            self.batch,
            super::wire::room(&self.resource),
        ));
        let stop = CancellationToken::new();
        let task = tokio::spawn(send(self.clone(), client, queue.clone(), stop.clone()));
        Ok(Exporter {
            queue,
            stop,
            task: Mutex::new(Some(task)),
            sampler: self.sampler,
        })
    }
}

/// `key=value,key=value`, values percent-decoded (the OTLP exporter variables' format).
fn pairs(value: Option<&str>, name: &str) -> Result<Vec<(String, String)>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("{name}: `{}` is not key=value", p.trim()))?;
            Ok((percent_decoded(k.trim()), percent_decoded(v.trim())))
        })
        .collect()
}

fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = b
            .get(i + 1..i + 3)
            .filter(|_| b.get(i) == Some(&b'%'))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.extend(b.get(i).copied());
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `service.name` (`OTEL_SERVICE_NAME`, else `OTEL_RESOURCE_ATTRIBUTES`' own, else
/// `mcp-warden`), `service.version`, and the other `OTEL_RESOURCE_ATTRIBUTES`.
fn resource(var: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let given = pairs(
        var("OTEL_RESOURCE_ATTRIBUTES").as_deref(),
        "OTEL_RESOURCE_ATTRIBUTES",
    )
    .unwrap_or_default();
    let named = given
        .iter()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone());
    let service = var("OTEL_SERVICE_NAME")
        .or(named)
        .unwrap_or_else(|| "mcp-warden".into());
    let mut out = vec![
        ("service.name".to_string(), service),
        (
            "service.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("telemetry.sdk.name".to_string(), "mcp-warden".to_string()),
        ("telemetry.sdk.language".to_string(), "rust".to_string()),
    ];
    out.extend(
        given
            .into_iter()
            .filter(|(k, _)| k != "service.name" && k != "service.version"),
    );
    out
}

/// The spans waiting to be sent.
struct Queue {
    pending: Mutex<Pending>,
    /// Woken when a batch is full.
    full: Notify,
    limit: usize,
    batch: usize,
    /// The room an export's body keeps in front of its spans (see `wire::begin`).
    room: usize,
}

/// Spans queued for export, already encoded, in the body of the next export (so nothing
/// a call allocated for its span is freed by the exporter, on another thread).
#[derive(Default)]
struct Pending {
    /// An export's body begun (`wire::begin`), the spans added.
    body: Vec<u8>,
    /// Where each span ends in `body`.
    ends: Vec<usize>,
}

impl Pending {
    fn begun(room: usize) -> Self {
        let mut body = Vec::new();
        super::wire::begin(&mut body, room);
        Self {
            body,
            ends: Vec::new(),
        }
    }

    fn spans(&self) -> usize {
        self.ends.len()
    }
}

impl Queue {
    fn new(limit: usize, batch: usize, room: usize) -> Self {
        Self {
            pending: Mutex::new(Pending::begun(room)),
            full: Notify::new(),
            limit,
            batch,
            room,
        }
    }

    /// The next batch, into `out` (begun, empty): the queue's own body swapped with it
    /// when it holds no more than a batch (the usual case: nothing allocated or copied),
    /// else the spans after the first batch moved into `out`'s, and the two swapped.
    fn take_into(&self, out: &mut Pending) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.spans() > self.batch
            && let Some(&cut) = pending.ends.get(self.batch - 1)
        {
            let rest = pending.body.get(cut..).unwrap_or_default();
            let at = out.body.len();
            out.body.extend_from_slice(rest);
            out.ends
                .extend(pending.ends.iter().skip(self.batch).map(|e| e - cut + at));
            pending.body.truncate(cut);
            pending.ends.truncate(self.batch);
        }
        std::mem::swap(&mut *pending, out);
    }

    #[cfg(test)]
    fn take(&self) -> Pending {
        let mut out = Pending::begun(self.room);
        self.take_into(&mut out);
        out
    }
}

/// The running exporter: calls push finished spans; [`Exporter::shutdown`] sends what is
/// left.
pub struct Exporter {
    queue: Arc<Queue>,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub sampler: Sampler,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("sampler", &self.sampler)
            .finish()
    }
}

impl Exporter {
    /// Queue a finished span, encoded now (its parts are freed here, where the call made
    /// them): never waits for the export; a full queue drops it (counted).
    pub fn push(&self, span: Finished) {
        let q = &self.queue;
        let mut pending = q.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.spans() >= q.limit {
            drop(pending);
            count("dropped", 1);
            return;
        }
        super::wire::add(&mut pending.body, &span);
        let end = pending.body.len();
        pending.ends.push(end);
        let full = pending.spans() == q.batch;
        drop(pending);
        if full {
            q.full.notify_one();
        }
    }

    /// Send every queued span, then stop (bounded by the export timeout).
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The exporting task: a batch when one is full or every `delay`, and what is left
/// when stopped.
async fn send(otlp: Otlp, client: reqwest::Client, queue: Arc<Queue>, stop: CancellationToken) {
    let mut failing = false;
    // Two bodies take turns: one fills in the queue while the other is sent, and comes
    // back to be begun again (nothing the size of a batch is allocated per export).
    let mut batch = Pending::begun(queue.room);
    loop {
        let last = tokio::select! {
            _ = tokio::time::sleep(otlp.delay) => false,
            _ = queue.full.notified() => false,
            _ = stop.cancelled() => true,
        };
        loop {
            queue.take_into(&mut batch);
            if batch.spans() == 0 {
                break;
            }
            let whole = batch.spans() == queue.batch;
            let spans = batch.spans();
            let body = std::mem::take(&mut batch.body);
            let body = post(&otlp, &client, body, queue.room, spans, &mut failing).await;
            batch.body = body;
            batch.ends.clear();
            super::wire::begin(&mut batch.body, queue.room);
            if !whole && !last {
                break;
            }
        }
        if last {
            return;
        }
    }
}

/// Send a body of `spans` spans (begun with `room`): the buffer back, to begin the next
/// in (a new one if the client still holds it).
async fn post(
    otlp: &Otlp,
    client: &reqwest::Client,
    mut body: Vec<u8>,
    room: usize,
    spans: usize,
    failing: &mut bool,
) -> Vec<u8> {
    let start = super::wire::finish(&mut body, room, &otlp.resource);
    let whole = axum::body::Bytes::from(body);
    let sent = client
        .post(&otlp.url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
        .body(whole.slice(start..))
        .send()
        .await;
    let refused = match sent {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("the receiver answered {}", r.status())),
        Err(e) => Some(format!("cannot reach it: {e}")),
    };
    match refused {
        None => {
            count("exported", spans);
            if std::mem::take(failing) {
                tracing::info!(url = %otlp.url, "spans reach the OTLP receiver again");
            }
        }
        Some(why) => {
            count("failed", spans);
            if !std::mem::replace(failing, true) {
                tracing::warn!(url = %otlp.url, "spans are not exported ({why}); calls go on, spans are dropped until it answers");
            }
        }
    }
    whole.try_into_mut().map(Vec::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn the_config_endpoint_wins_and_the_environment_fills_in_the_rest() {
        let none = Otlp::from_vars(None, &vars(&[])).unwrap();
        assert_eq!(none, None, "no endpoint: no export");
        let env = vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20abc,x-team=a",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-Team=b"),
            ("OTEL_SERVICE_NAME", "gw-1"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=ignored",
            ),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1000"),
        ]);
        let o = Otlp::from_vars(None, &env).unwrap().unwrap();
        assert_eq!(o.url, "http://collector:4318/v1/traces");
        assert_eq!(
            o.headers,
            [
                ("authorization".to_string(), "Bearer abc".to_string()),
                ("X-Team".to_string(), "b".to_string())
            ]
        );
        assert_eq!(o.resource[0], ("service.name".into(), "gw-1".into()));
        assert!(
            o.resource
                .contains(&("deployment.environment".into(), "prod".into()))
        );
        assert_eq!(
            (o.queue, o.batch),
            (100, 100),
            "a batch is never larger than the queue"
        );
        let o = Otlp::from_vars(Some("http://127.0.0.1:9/"), &env)
            .unwrap()
            .unwrap();
        assert_eq!(o.url, "http://127.0.0.1:9/v1/traces");
        let full = vars(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://c/custom/path",
        )]);
        let o = Otlp::from_vars(None, &full).unwrap().unwrap();
        assert_eq!(
            o.url, "https://c/custom/path",
            "the traces endpoint is taken as it is"
        );
        assert_eq!(
            o.sampler,
            Sampler {
                parent_based: true,
                ratio: 1.0
            }
        );
        let off = vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]);
        assert_eq!(Otlp::from_vars(None, &off).unwrap(), None);
    }

    #[test]
    fn settings_it_cannot_honour_are_errors_that_say_what_to_change() {
        for (pairs, says) in [
            (
                vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                "http/protobuf",
            ),
            (
                vec![("OTEL_TRACES_SAMPLER", "jaeger_remote")],
                "parentbased_",
            ),
            (
                vec![
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "2"),
                ],
                "from 0 to 1",
            ),
            (vec![("OTEL_BSP_SCHEDULE_DELAY", "5s")], "milliseconds"),
            (vec![("OTEL_EXPORTER_OTLP_HEADERS", "novalue")], "key=value"),
        ] {
            let mut all = pairs.clone();
            all.push(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"));
            let e = Otlp::from_vars(None, &vars(&all)).unwrap_err();
            assert!(e.contains(says), "{pairs:?}: {e}");
        }
        let e = Otlp::from_vars(Some("collector:4318"), &vars(&[])).unwrap_err();
        assert!(e.contains("http://"), "{e}");
    }

    #[test]
    fn the_ratio_sampler_takes_its_share_and_follows_a_callers_decision() {
        let tenth = Sampler {
            parent_based: true,
            ratio: 0.1,
        };
        let taken = (0..20_000)
            .filter(|_| tenth.sampled(None, &super::super::w3c::trace_id()))
            .count();
        assert!((1_600..2_400).contains(&taken), "{taken} of 20,000");
        let parent = |flags| SpanContext {
            trace_id: [1; 16],
            span_id: [1; 8],
            flags,
        };
        assert!(tenth.sampled(Some(&parent(1)), &[0xff; 16]));
        assert!(!tenth.sampled(Some(&parent(0)), &[0; 16]));
        let plain = Sampler {
            parent_based: false,
            ratio: 0.0,
        };
        assert!(
            !plain.sampled(Some(&parent(1)), &[0; 16]),
            "not parent-based: the ratio decides"
        );
        let all = Sampler {
            parent_based: false,
            ratio: 1.0,
        };
        assert!(all.sampled(None, &[0xff; 16]));
    }

    #[test]
    fn a_full_queue_drops_spans_and_counts_them_without_waiting() {
        let dropped = || {
            SPANS
                .get_or_create(&ResultLabels { result: "dropped" })
                .get()
        };
        let before = dropped();
        let exporter = Exporter {
            queue: Arc::new(Queue::new(2, 2, 40)),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
            sampler: Sampler {
                parent_based: true,
                ratio: 1.0,
            },
        };
        for _ in 0..5 {
            exporter.push(Finished::default());
        }
        assert_eq!(exporter.queue.pending.lock().unwrap().spans(), 2);
        assert_eq!(dropped() - before, 3);
        assert_eq!(exporter.queue.take().spans(), 2);
    }

    /// Spans are encoded as they are queued; each export takes at most a batch of them, in
    /// order, and its body is a request the protocol's own definitions read back.
    #[test]
    fn each_export_takes_a_batch_at_most_in_order_and_reads_back() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;
        let resource = vec![("service.name".to_string(), "gw".to_string())];
        let room = super::super::wire::room(&resource);
        let exporter = Exporter {
            queue: Arc::new(Queue::new(10, 3, room)),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
            sampler: Sampler {
                parent_based: true,
                ratio: 1.0,
            },
        };
        for n in 0..7u8 {
            let mut span = Finished::default();
            span.context.span_id = [n + 1; 8];
            span.method = "tools/call";
            span.target = format!("tool-{n}");
            exporter.push(span);
        }
        let mut seen = Vec::new();
        for expected in [3, 3, 1] {
            let mut batch = exporter.queue.take();
            assert_eq!(batch.spans(), expected);
            let start = super::super::wire::finish(&mut batch.body, room, &resource);
            let body = batch.body.get(start..).unwrap();
            let decoded = ExportTraceServiceRequest::decode(body).unwrap();
            let spans = &decoded.resource_spans[0].scope_spans[0].spans;
            assert_eq!(spans.len(), expected);
            seen.extend(spans.iter().map(|s| (s.span_id[0], s.name.clone())));
        }
        let expected: Vec<(u8, String)> = (0..7u8)
            .map(|n| (n + 1, format!("tools/call tool-{n}")))
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(exporter.queue.take().spans(), 0);
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decoded("a%20b%2Cc"), "a b,c");
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(percent_decoded("%zz"), "%zz");
    }
}
