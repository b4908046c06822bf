//! Traces: a span per `tools/call` with an event per stage (identity, policy, approval
//! wait, audit attempt, upstream, audit outcome), each saying how long it took, exported
//! over OTLP/HTTP when an endpoint is configured (`[telemetry]
//! otlp_endpoint` in `warden.toml`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and W3C trace context: continued from the caller
//! (`traceparent` in `_meta`, or the HTTP header), passed on to upstreams, and kept in
//! audit records as `trace_id`.
//!
//! Spans are made by the stages' own calls ([`CallSpan`], [`StageTimer`]), not through
//! `tracing`, and encoded and sent by this module ([`export`], [`wire`]) rather than an
//! SDK: a span is one small record that a call fills in and, at its end, pushes to a
//! queue; one task on the gateway's runtime encodes the queue in batches. Stages are
//! events, not child spans: most take microseconds, and a span costs the gateway and the
//! collector several times an event. With no exporter, or a call its sampler leaves out,
//! a [`CallSpan`] is empty and costs nothing.

pub mod export;
mod w3c;
mod wire;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use export::{Event, Finished};
pub use export::{Exporter, Otlp};
use w3c::SpanContext;

/// The exporter spans go to, once one is started.
static EXPORTER: OnceLock<Arc<Exporter>> = OnceLock::new();
/// The W3C trace-context keys, in `_meta` and in HTTP headers.
pub const KEYS: [&str; 2] = ["traceparent", "tracestate"];
/// What the audit keeps of the caller's context: the trace context and its `baggage`
/// (passed on to no one).
const KEPT: [&str; 3] = ["traceparent", "tracestate", "baggage"];

/// Send spans to `otlp` from now on, from a task on the current runtime (once a
/// process). The exporter is also returned, to be shut down when `serve` ends so the last
/// spans are sent.
pub fn start(otlp: &Otlp) -> Result<Arc<Exporter>, String> {
    if let Some(running) = EXPORTER.get() {
        return Ok(running.clone());
    }
    let exporter = Arc::new(otlp.start()?);
    Ok(EXPORTER.get_or_init(|| exporter).clone())
}

struct HeaderKeys<'a>(&'a axum::http::HeaderMap);

impl HeaderKeys<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
}

/// The caller's trace context and baggage, for the audit: `_meta` first, then the HTTP
/// request's headers.
pub fn incoming(
    meta: &Map<String, Value>,
    headers: Option<&axum::http::HeaderMap>,
) -> Map<String, Value> {
    let from_meta: Map<String, Value> = KEPT
        .iter()
        .filter_map(|k| meta.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    if from_meta.contains_key("traceparent") {
        return from_meta;
    }
    let Some(headers) = headers else {
        return from_meta;
    };
    let headers = HeaderKeys(headers);
    KEPT.iter()
        .filter_map(|k| {
            let v = headers.get(k)?;
            Some((k.to_string(), Value::String(v.to_string())))
        })
        .collect()
}

/// The caller's context, when it sent a valid one.
fn parent_of(carried: &Map<String, Value>) -> Option<SpanContext> {
    carried
        .get("traceparent")
        .and_then(Value::as_str)
        .and_then(SpanContext::parse)
}

/// The caller's `tracestate`, when it is valid, to pass on with our context.
fn state_of(carried: &Map<String, Value>) -> Option<String> {
    carried
        .get("tracestate")
        .and_then(Value::as_str)
        .filter(|s| w3c::valid_tracestate(s))
        .map(str::to_string)
}

/// `traceparent` (`cx`) and the caller's valid `tracestate`, as `_meta` keys.
fn context_keys(cx: &SpanContext, state: Option<&str>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("traceparent".into(), Value::String(cx.header()));
    if let Some(state) = state {
        out.insert("tracestate".into(), Value::String(state.to_string()));
    }
    out
}

/// The caller's context, when it is valid, to pass on as it came.
fn passed_on(carried: &Map<String, Value>) -> Map<String, Value> {
    match parent_of(carried) {
        Some(cx) => context_keys(&cx, state_of(carried).as_deref()),
        None => Map::new(),
    }
}

/// One call's request span, ended when the last copy of it is dropped (a call forwarded
/// in its own task ends there). Empty when spans are not exported or the sampler left the
/// call out.
#[derive(Clone, Default)]
pub struct CallSpan(Option<Arc<Recording>>);

/// A span being recorded: what it will be exported as, and its clock.
struct Recording {
    span: Mutex<Finished>,
    started: Instant,
    exporter: Arc<Exporter>,
}

impl Recording {
    /// Now, on the span's clock (its start's wall time plus the monotonic time since).
    fn now_ns(&self, start_ns: u64) -> u64 {
        start_ns.saturating_add(self.started.elapsed().as_nanos() as u64)
    }

    fn add(
        &self,
        name: &'static str,
        took: Option<Duration>,
        attribute: Option<(&'static str, String)>,
    ) {
        let mut span = self.span.lock().unwrap_or_else(PoisonError::into_inner);
        let time_ns = self.now_ns(span.start_ns);
        span.events.push(Event {
            name,
            time_ns,
            duration_us: took.map(|t| t.as_micros() as i64),
            attribute,
        });
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let span = self.span.get_mut().unwrap_or_else(PoisonError::into_inner);
        span.end_ns = span
            .start_ns
            .saturating_add(self.started.elapsed().as_nanos() as u64);
        let finished = std::mem::take(span);
        self.exporter.push(finished);
    }
}

impl std::fmt::Debug for CallSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.0.as_ref().map(|r| {
            let span = r.span.lock().unwrap_or_else(PoisonError::into_inner);
            w3c::hex(&span.context.span_id)
        });
        f.debug_tuple("CallSpan").field(&id).finish()
    }
}

impl CallSpan {
    /// The span of a request of `method` for `target` (the tool, prompt or resource as
    /// the caller named it, or ""), the child of the caller's span when it sent one.
    pub fn start(method: &'static str, target: &str, carried: &Map<String, Value>) -> Self {
        let Some(exporter) = EXPORTER.get() else {
            return Self(None);
        };
        let parent = parent_of(carried);
        let trace_id = parent.map_or_else(w3c::trace_id, |p| p.trace_id);
        if !exporter.sampler.sampled(parent.as_ref(), &trace_id) {
            return Self(None);
        }
        let start_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let span = Finished {
            context: SpanContext {
                trace_id,
                span_id: w3c::span_id(),
                flags: w3c::SAMPLED,
            },
            parent: parent.map(|p| p.span_id),
            trace_state: parent.and_then(|_| state_of(carried)),
            method,
            target: crate::escape::visible(target).to_string(),
            start_ns,
            end_ns: start_ns,
            events: Vec::with_capacity(6),
        };
        Self(Some(Arc::new(Recording {
            span: Mutex::new(span),
            started: Instant::now(),
            exporter: exporter.clone(),
        })))
    }

    /// A quick stage, as an event of the request span (with how long it took).
    pub fn event(&self, name: &'static str, took: Option<Duration>) {
        if let Some(r) = &self.0 {
            r.add(name, took, None);
        }
    }

    /// A stage that takes time, from now until it is dropped: an event of the request
    /// span when it ends, with how long it took.
    pub fn stage(&self, name: &'static str) -> StageTimer {
        StageTimer {
            request: self.0.clone(),
            name,
            started: Instant::now(),
            attribute: None,
        }
    }

    /// This span's context (`traceparent`) and the caller's `tracestate`.
    fn context(&self) -> Option<(SpanContext, Option<String>)> {
        let r = self.0.as_ref()?;
        let span = r.span.lock().unwrap_or_else(PoisonError::into_inner);
        Some((span.context, span.trace_state.clone()))
    }

    /// The trace the call belongs to, as 32 hex digits: its span's when it is exported,
    /// else the caller's `traceparent`'s.
    pub fn trace_id(&self, carried: &Map<String, Value>) -> Option<String> {
        let cx = self
            .context()
            .map(|(cx, _)| cx)
            .or_else(|| parent_of(carried));
        cx.map(|cx| w3c::hex(&cx.trace_id))
    }

    /// The context to pass on outside a stage span: this span's, else the caller's.
    pub fn outgoing(&self, carried: &Map<String, Value>) -> Map<String, Value> {
        match self.context() {
            Some((cx, state)) => context_keys(&cx, state.as_deref()),
            None => passed_on(carried),
        }
    }
}

/// A stage of a call, recorded when dropped as an event of the request span (its end
/// time, how long it took, and what it went to).
pub struct StageTimer {
    request: Option<Arc<Recording>>,
    name: &'static str,
    started: Instant,
    attribute: Option<(&'static str, String)>,
}

impl Drop for StageTimer {
    fn drop(&mut self) {
        if let Some(r) = &self.request {
            r.add(
                self.name,
                Some(self.started.elapsed()),
                self.attribute.take(),
            );
        }
    }
}

impl StageTimer {
    /// Name what the stage went to (e.g. the upstream's id).
    pub fn attribute(&mut self, key: &'static str, value: &str) {
        if self.request.is_some() {
            self.attribute = Some((key, value.to_string()));
        }
    }

    /// What to pass on from inside the stage: the request span's context when it is
    /// exported, else what the caller sent (`carried`) when that is valid.
    pub fn outgoing(&self, carried: &Map<String, Value>) -> Map<String, Value> {
        CallSpan(self.request.clone()).outgoing(carried)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_callers_trace_id_is_read_from_meta_before_the_header() {
        let meta = json!({"traceparent": PARENT}).as_object().cloned().unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-01"
                .parse()
                .unwrap(),
        );
        let carried = incoming(&meta, Some(&headers));
        let none = CallSpan::default();
        assert_eq!(
            none.trace_id(&carried).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let carried = incoming(&Map::new(), Some(&headers));
        assert_eq!(
            none.trace_id(&carried).as_deref(),
            Some("11111111111111111111111111111111")
        );
    }

    #[test]
    fn a_malformed_traceparent_gives_no_trace_id_and_is_not_passed_on() {
        let meta = json!({"traceparent": "00-zz-yy-01"})
            .as_object()
            .cloned()
            .unwrap();
        let carried = incoming(&meta, None);
        let none = CallSpan::default();
        assert_eq!(none.trace_id(&carried), None);
        assert!(none.outgoing(&carried).is_empty());
        assert!(none.stage("upstream").outgoing(&carried).is_empty());
        let good = json!({"traceparent": PARENT, "tracestate": "a=b", "baggage": "user=alice"});
        let carried = incoming(good.as_object().unwrap(), None);
        assert_eq!(
            carried.get("baggage"),
            Some(&json!("user=alice")),
            "kept for the audit"
        );
        let passed = none.stage("upstream").outgoing(&carried);
        assert_eq!(
            passed,
            json!({"traceparent": PARENT, "tracestate": "a=b"})
                .as_object()
                .cloned()
                .unwrap(),
            "baggage is not passed on"
        );
    }
}
