//! Traces: a span per `tools/call` with an event per stage (identity, policy, approval
//! wait, audit attempt, upstream, audit outcome), each saying how long it took, exported
//! over OTLP/HTTP when an endpoint is configured (`[telemetry]
//! otlp_endpoint` in `warden.toml`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and W3C trace context: continued from the caller
//! (`traceparent` in `_meta`, or the HTTP header), passed on to upstreams, and kept in
//! audit records as `trace_id`.
//!
//! The spans are made with the OpenTelemetry SDK directly, by the stages' own calls
//! ([`CallSpan`], [`StageTimer`]), not through `tracing`: a `tracing` layer costs every
//! span, sampled or not, a trip through the subscriber at each poll of its future. Stages
//! are events, not child spans: most take microseconds, and a span costs the gateway and
//! the collector several times an event. With no exporter, or a call its sampler leaves
//! out, a [`CallSpan`] is empty and costs nothing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use serde_json::{Map, Value};

/// The tracer spans are made with, once an exporter is started.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();
/// The W3C trace-context keys, in `_meta` and in HTTP headers.
pub const KEYS: [&str; 2] = ["traceparent", "tracestate"];
/// What the audit keeps of the caller's context: the trace context and its `baggage`
/// (passed on to no one).
const KEPT: [&str; 3] = ["traceparent", "tracestate", "baggage"];

/// Where spans go, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otlp {
    /// Base URL of an OTLP/HTTP receiver (`/v1/traces` is added), or `None` to take the
    /// standard `OTEL_EXPORTER_OTLP_*` variables.
    pub endpoint: Option<String>,
    pub service_name: String,
}

impl Otlp {
    /// Exporting is on when the config names an endpoint or the environment does (and
    /// `OTEL_TRACES_EXPORTER` is not `none`).
    pub fn from(configured: Option<&str>) -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if var("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none") {
            return None;
        }
        let from_env = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .is_some();
        if configured.is_none() && !from_env {
            return None;
        }
        Some(Self {
            endpoint: configured.map(|e| format!("{}/v1/traces", e.trim_end_matches('/'))),
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| "mcp-warden".into()),
        })
    }

    /// The exporter and its provider (spans are batched and sent from the SDK's own
    /// thread). Call before the async runtime starts; shut the provider down after it
    /// ends, so the last spans are sent.
    pub fn start(&self) -> Result<SdkTracerProvider, String> {
        use opentelemetry_otlp::WithExportConfig;
        let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let exporter = builder
            .build()
            .map_err(|e| format!("cannot start the OTLP exporter: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(self.service_name.clone())
            .build();
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build())
    }
}

/// Make spans with `provider` from now on (once, at start).
pub fn install(provider: &SdkTracerProvider) {
    let _ = TRACER.set(provider.tracer("mcp-warden"));
}

struct MetaKeys<'a>(&'a Map<String, Value>);

impl Extractor for MetaKeys<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct HeaderKeys<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderKeys<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
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

/// The caller's context as a parent (an empty context when it sent none, or an invalid
/// one).
fn parent_of(carried: &Map<String, Value>) -> Context {
    match carried.contains_key("traceparent") {
        true => TraceContextPropagator::new().extract(&MetaKeys(carried)),
        false => Context::new(),
    }
}

/// The caller's context, when it is valid, to pass on as it came.
fn passed_on(carried: &Map<String, Value>) -> Map<String, Value> {
    let valid = parent_of(carried).span().span_context().is_valid();
    match valid {
        true => KEYS
            .iter()
            .filter_map(|k| carried.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect(),
        false => Map::new(),
    }
}

/// One call's request span, ended when the last copy of it is dropped (a call forwarded
/// in its own task ends there). Empty when spans are not exported or the sampler left the
/// call out.
#[derive(Clone, Default)]
pub struct CallSpan(Option<Arc<Recording>>);

struct Recording(Context);

impl Drop for Recording {
    fn drop(&mut self) {
        self.0.span().end();
    }
}

impl std::fmt::Debug for CallSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.0.as_ref().map(|r| r.0.span().span_context().span_id());
        f.debug_tuple("CallSpan").field(&id).finish()
    }
}

impl CallSpan {
    /// The span of a request of `method` for `tool` (as the caller named it), the child
    /// of the caller's span when it sent one.
    pub fn start(method: &'static str, tool: &str, carried: &Map<String, Value>) -> Self {
        let Some(tracer) = TRACER.get() else {
            return Self(None);
        };
        let parent = parent_of(carried);
        let tool = crate::escape::visible(tool).to_string();
        let span = tracer
            .span_builder(format!("{method} {tool}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("mcp.method.name", method),
                KeyValue::new("gen_ai.tool.name", tool),
                KeyValue::new("gen_ai.operation.name", "execute_tool"),
            ])
            .start_with_context(tracer, &parent);
        if !span.span_context().is_sampled() {
            return Self(None);
        }
        Self(Some(Arc::new(Recording(parent.with_span(span)))))
    }

    /// A quick stage, as an event of the request span (with how long it took).
    pub fn event(&self, name: &'static str, took: Option<Duration>) {
        if let Some(r) = &self.0 {
            let attributes = took
                .map(|t| vec![KeyValue::new("duration_us", t.as_micros() as i64)])
                .unwrap_or_default();
            r.0.span().add_event(name, attributes);
        }
    }

    /// A stage that takes time, from now until it is dropped: an event of the request
    /// span when it ends, with how long it took.
    pub fn stage(&self, name: &'static str) -> StageTimer {
        StageTimer {
            request: self.0.clone(),
            name,
            started: std::time::Instant::now(),
            attributes: Vec::new(),
        }
    }

    /// The trace the call belongs to, as 32 hex digits: its span's when it is exported,
    /// else the caller's `traceparent`'s.
    pub fn trace_id(&self, carried: &Map<String, Value>) -> Option<String> {
        let cx = match &self.0 {
            Some(r) => r.0.clone(),
            None => parent_of(carried),
        };
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    /// The context to pass on outside a stage span: this span's, else the caller's.
    pub fn outgoing(&self, carried: &Map<String, Value>) -> Map<String, Value> {
        match &self.0 {
            Some(r) => injected(&r.0),
            None => passed_on(carried),
        }
    }
}

/// A stage of a call, recorded when dropped as an event of the request span (its end
/// time, how long it took, and what it went to).
pub struct StageTimer {
    request: Option<Arc<Recording>>,
    name: &'static str,
    started: std::time::Instant,
    attributes: Vec<KeyValue>,
}

impl Drop for StageTimer {
    fn drop(&mut self) {
        if let Some(r) = &self.request {
            let mut attributes = std::mem::take(&mut self.attributes);
            let took = self.started.elapsed().as_micros() as i64;
            attributes.push(KeyValue::new("duration_us", took));
            r.0.span().add_event(self.name, attributes);
        }
    }
}

impl StageTimer {
    /// Name what the stage went to (e.g. the upstream's id).
    pub fn attribute(&mut self, key: &'static str, value: &str) {
        if self.request.is_some() {
            self.attributes.push(KeyValue::new(key, value.to_string()));
        }
    }

    /// What to pass on from inside the stage: the request span's context when it is
    /// exported, else what the caller sent (`carried`) when that is valid.
    pub fn outgoing(&self, carried: &Map<String, Value>) -> Map<String, Value> {
        match &self.request {
            Some(r) => injected(&r.0),
            None => passed_on(carried),
        }
    }
}

/// `traceparent` (and `tracestate`) of `cx`.
fn injected(cx: &Context) -> Map<String, Value> {
    let mut out = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut out);
    out.into_iter()
        .filter(|(k, _)| KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
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
