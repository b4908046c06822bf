//! Traces: a span per MCP request with a child span per stage, exported over OTLP/HTTP
//! when an endpoint is configured (`[telemetry] otlp_endpoint` in `warden.toml`, or the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and
//! W3C trace context: continued from the caller (`traceparent` in `_meta`, or the HTTP
//! header), passed on to upstreams, and kept in audit records as `trace_id`.
//!
//! The spans are `tracing` spans under the target [`TARGET`]; with no exporter nothing
//! listens to that target and a span costs one check of its call site.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every span that becomes an OpenTelemetry span.
pub const TARGET: &str = "mcp_warden::span";
/// The W3C trace-context keys, in `_meta` and in HTTP headers.
pub const KEYS: [&str; 2] = ["traceparent", "tracestate"];

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

/// The layer that turns [`TARGET`]'s spans into OpenTelemetry spans for `provider`.
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> impl tracing_subscriber::Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    use tracing_subscriber::Layer;
    let tracer = provider.tracer("mcp-warden");
    let only_ours = tracing_subscriber::filter::Targets::new()
        .with_target(TARGET, tracing::Level::TRACE)
        .with_default(tracing::level_filters::LevelFilter::OFF);
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_filter(only_ours)
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

/// The caller's trace context: `_meta` first, then the HTTP request's headers.
pub fn incoming(
    meta: &Map<String, Value>,
    headers: Option<&axum::http::HeaderMap>,
) -> Map<String, Value> {
    let from_meta: Map<String, Value> = KEYS
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
    KEYS.iter()
        .filter_map(|k| {
            let v = headers.get(k)?;
            Some((k.to_string(), Value::String(v.to_string())))
        })
        .collect()
}

/// Make `span` continue the caller's trace (when it sent a valid `traceparent`).
pub fn continue_from(span: &tracing::Span, carried: &Map<String, Value>) {
    if span.is_disabled() || !carried.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&MetaKeys(carried));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// What to pass on to an upstream: the context of the current span when spans are
/// exported, else what the caller sent (`carried`) when it is valid.
pub fn outgoing(carried: &Map<String, Value>) -> Map<String, Value> {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            let mut out = std::collections::HashMap::new();
            TraceContextPropagator::new().inject_context(&cx, &mut out);
            return out
                .into_iter()
                .filter(|(k, _)| KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
        }
    }
    // Not exporting: the caller's context goes on as it came, when it is valid.
    let valid = TraceContextPropagator::new()
        .extract(&MetaKeys(carried))
        .span()
        .span_context()
        .is_valid();
    match valid {
        true => KEYS
            .iter()
            .filter_map(|k| carried.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect(),
        false => Map::new(),
    }
}

/// The trace a call belongs to, as 32 hex digits: its span's when spans are exported,
/// else the caller's `traceparent`'s.
pub fn trace_id(span: &tracing::Span, carried: &Map<String, Value>) -> Option<String> {
    if !span.is_disabled() {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            return Some(sc.trace_id().to_string());
        }
    }
    let parent = TraceContextPropagator::new().extract(&MetaKeys(carried));
    let sc = parent.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
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
        let none = tracing::Span::none();
        assert_eq!(
            trace_id(&none, &carried).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let carried = incoming(&Map::new(), Some(&headers));
        assert_eq!(
            trace_id(&none, &carried).as_deref(),
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
        assert_eq!(trace_id(&tracing::Span::none(), &carried), None);
        assert!(outgoing(&carried).is_empty());
        let good = json!({"traceparent": PARENT, "tracestate": "a=b"});
        let carried = incoming(good.as_object().unwrap(), None);
        assert_eq!(outgoing(&carried), carried);
    }
}
