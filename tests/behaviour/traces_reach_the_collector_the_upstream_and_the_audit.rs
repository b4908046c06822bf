//! `mcp-warden serve` with `[telemetry] otlp_endpoint` exports one trace per call to an
//! OTLP/HTTP collector (here, in the test, decoding what it receives with the
//! protocol's own definitions from `opentelemetry-proto`): a `tools/call` span that
//! continues the caller's `traceparent` (from `_meta`, or from the HTTP header), with an
//! event per stage (identity, policy, audit attempt, upstream, audit outcome), each
//! saying how long it took. The same trace reaches the upstream (in `_meta` and, over
//! HTTP, as a header, its parent the request span) and the audit records (`trace.trace_id`).
//! A call with no trace context starts a trace of its own. Every other MCP request is a
//! span too (named by its method, and its prompt or resource when it has one). Spans still queued when
//! `serve` stops are sent before it exits; a receiver that fails costs no call, is
//! logged once and counted in `/metrics`.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as Extract;
use common::Setup;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const HEADER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const HEADER_PARENT: &str = "b7ad6b7169203331";

type Spans = Arc<Mutex<Vec<(String, Span)>>>;
/// Header names and values a collector saw.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// An OTLP/HTTP collector on a free port: its base URL and what it received (each span
/// with its resource's `service.name`).
async fn collector() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(|Extract(spans): Extract<Spans>, body: Bytes| async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                            Any::StringValue(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        let mut kept = spans.lock().unwrap();
                        kept.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                    }
                }
                ([("content-type", "application/x-protobuf")], Bytes::new())
            }),
        )
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

/// The spans of one trace, once its request span (the last to end) has arrived.
async fn trace_of(spans: &Spans, trace: &str) -> Vec<Span> {
    for _ in 0..200 {
        let found: Vec<Span> = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| hex(&s.trace_id) == trace)
            .map(|(_, s)| s.clone())
            .collect();
        // The request span ends last.
        if found.iter().any(|s| s.name.starts_with("tools/call")) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no complete trace {trace} reached the collector");
}

/// The span called `name` of trace `trace`, once it has arrived.
async fn wait_for(spans: &Spans, trace: &str, name: &str) -> Span {
    for _ in 0..200 {
        let found = spans
            .lock()
            .unwrap()
            .iter()
            .find(|(_, s)| hex(&s.trace_id) == trace && s.name == name)
            .map(|(_, s)| s.clone());
        if let Some(span) = found {
            return span;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no `{name}` span of trace {trace} reached the collector");
}

/// The one span called `name`.
fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` span: {spans:#?}");
    found[0]
}

/// The request span is the caller's child; each stage is one of its events. The
/// request span's id.
fn assert_shape(spans: &[Span], parent: &str) -> String {
    let root = named(spans, "tools/call demo_echo");
    assert_eq!(hex(&root.parent_span_id), parent, "{root:#?}");
    assert_eq!(
        attribute(root, "mcp.method.name").as_deref(),
        Some("tools/call")
    );
    assert_eq!(
        attribute(root, "gen_ai.tool.name").as_deref(),
        Some("demo_echo")
    );
    // One span a request; each stage an event of it, in order, with how long it took
    // (the upstream's naming the server).
    assert_eq!(spans.len(), 1, "one span a request: {spans:#?}");
    let events: Vec<&str> = root.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        events,
        [
            "identity",
            "policy",
            "audit.attempt",
            "upstream",
            "audit.outcome"
        ],
        "{root:#?}"
    );
    for event in &root.events {
        assert!(event.time_unix_nano >= root.start_time_unix_nano);
        assert!(event.time_unix_nano <= root.end_time_unix_nano);
    }
    let times: Vec<u64> = root.events.iter().map(|e| e.time_unix_nano).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    for timed in ["identity", "policy", "audit.attempt", "upstream"] {
        let event = root.events.iter().find(|e| e.name == timed).unwrap();
        assert!(
            event.attributes.iter().any(|a| a.key == "duration_us"),
            "`{timed}` says how long it took: {event:?}"
        );
    }
    let upstream = root.events.iter().find(|e| e.name == "upstream").unwrap();
    let server = upstream.attributes.iter().find(|a| a.key == "server");
    assert!(
        server.is_some_and(|a| matches!(a.value.as_ref().and_then(|v| v.value.as_ref()), Some(Any::StringValue(s)) if s == "demo")),
        "{upstream:?}"
    );
    hex(&root.span_id)
}

#[tokio::test]
async fn each_call_is_one_trace_that_reaches_the_collector_the_upstream_and_the_audit() {
    let (otlp, spans) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    let (_demo, demo_url) = common::demo_over_http(&calls);
    let path = common::write_setup(
        dir.path(),
        &Setup {
            config_extra: format!(
                "[listen]\nhttp = \"127.0.0.1:0\"\n\n[telemetry]\notlp_endpoint = \"{otlp}\"\n"
            ),
            ..Setup::default()
        },
    );
    common::point_demo_at(&path, &demo_url);
    let (_gateway, endpoint, _, _) = common::serve_exe_with(
        &path,
        &[],
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_SERVICE_NAME", "warden-under-test"),
        ],
    )
    .await;
    let client = ()
        .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
            endpoint.clone(),
        ))
        .await
        .unwrap();

    // 1. The caller's trace, in `_meta`.
    let mut params = CallToolRequestParams::new("demo_echo")
        .with_arguments(json!({"text": "traced"}).as_object().cloned().unwrap());
    params.meta = Some(
        serde_json::from_value(json!({"traceparent": format!("00-{TRACE}-{PARENT}-01"),
                                      "baggage": "tenant=acme"}))
        .unwrap(),
    );
    let r = client.peer().call_tool(params).await.unwrap();
    assert_eq!(common::text(&r), "traced");
    let traced = trace_of(&spans, TRACE).await;
    let request_span = assert_shape(&traced, PARENT);
    assert!(
        spans
            .lock()
            .unwrap()
            .iter()
            .all(|(service, _)| service == "warden-under-test"),
        "OTEL_SERVICE_NAME names the service"
    );

    // 2. No trace context: a trace of its own, with no parent.
    let r = client
        .peer()
        .call_tool(
            CallToolRequestParams::new("demo_echo")
                .with_arguments(json!({"text": "untraced"}).as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(common::text(&r), "untraced");

    // 3. The trace in the HTTP header only (a 2026-07-28 request).
    let body = common::modern::call(
        9,
        "demo_echo",
        json!({"arguments": {"text": "header"}}),
        json!({}),
    );
    let header = format!("00-{HEADER_TRACE}-{HEADER_PARENT}-01");
    let answer = common::modern::post(&endpoint, &body, None, &[("traceparent", &header)]).await;
    assert_eq!(answer.status, 200, "{}", answer.message);
    let from_header = trace_of(&spans, HEADER_TRACE).await;
    assert_shape(&from_header, HEADER_PARENT);

    // Other requests are spans too: a `tools/list`, its caller's child, named by method.
    const LIST_TRACE: &str = "11112222333344445555666677778888";
    let list = json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list",
                      "params": {"_meta": common::modern::meta(json!({}))}});
    let header = format!("00-{LIST_TRACE}-{HEADER_PARENT}-01");
    let answer = common::modern::post(&endpoint, &list, None, &[("traceparent", &header)]).await;
    assert_eq!(answer.status, 200, "{}", answer.message);
    let listed = wait_for(&spans, LIST_TRACE, "tools/list").await;
    assert_eq!(hex(&listed.parent_span_id), HEADER_PARENT);
    assert_eq!(
        attribute(&listed, "mcp.method.name").as_deref(),
        Some("tools/list")
    );
    assert_eq!(
        attribute(&listed, "gen_ai.tool.name"),
        None,
        "it names no tool"
    );
    let events: Vec<&str> = listed.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, ["identity"]);

    // The upstream got each call's trace context, in `_meta` and as a header, with the
    // gateway's `upstream` span as its parent.
    let log = common::read_lines(&calls);
    let by_text = |said: &str| {
        log.iter()
            .find(|c| c["args"]["text"] == said)
            .cloned()
            .unwrap_or_else(|| panic!("`{said}` reached the upstream: {log:?}"))
    };
    let first = by_text("traced");
    let sent = format!("00-{TRACE}-{request_span}-01");
    assert_eq!(first["trace"]["traceparent"], json!(sent), "{first}");
    assert_eq!(first["headers"]["traceparent"], json!(sent), "{first}");
    assert!(
        first["trace"].get("baggage").is_none() && first["headers"].get("baggage").is_none(),
        "baggage stays in the gateway's audit: {first}"
    );
    let own = by_text("untraced");
    let own_parent = own["trace"]["traceparent"].as_str().unwrap().to_string();
    let own_trace = own_parent.split('-').nth(1).unwrap().to_string();
    assert_ne!(own_trace, TRACE);
    assert_eq!(own["headers"]["traceparent"], json!(own_parent));
    let untraced = trace_of(&spans, &own_trace).await;
    assert!(
        named(&untraced, "tools/call demo_echo")
            .parent_span_id
            .is_empty(),
        "a call with no trace context starts a trace"
    );
    let third = by_text("header");
    assert!(
        third["trace"]["traceparent"]
            .as_str()
            .is_some_and(|t| t.contains(HEADER_TRACE)),
        "{third}"
    );

    // 4. A refused call (no intent for a transform tool): its trace ends at the stage
    // that refused it, and its decision record names the trace.
    const REFUSED: &str = "5e1ab1f0c0ffee00d15ea5edba5eba11";
    let mut params = CallToolRequestParams::new("demo_write_note").with_arguments(
        json!({"title": "t", "body": "b"})
            .as_object()
            .cloned()
            .unwrap(),
    );
    params.meta = Some(
        serde_json::from_value(json!({"traceparent": format!("00-{REFUSED}-{PARENT}-01")}))
            .unwrap(),
    );
    let refused = client.peer().call_tool(params).await.unwrap();
    assert_eq!(refused.is_error, Some(true));
    let refused_trace = trace_of(&spans, REFUSED).await;
    let root = named(&refused_trace, "tools/call demo_write_note");
    let events: Vec<&str> = root.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        events,
        ["identity"],
        "refused at the intent stage: {root:#?}"
    );

    // The audit records say which trace each call was.
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit = common::audit_records(&dir.path().join("audit.jsonl"));
    for (said, trace) in [
        ("traced", TRACE),
        ("untraced", own_trace.as_str()),
        ("header", HEADER_TRACE),
    ] {
        let attempt = audit
            .iter()
            .find(|r| r["kind"] == "attempt" && r["args"]["text"] == said)
            .unwrap_or_else(|| panic!("an attempt for `{said}`"));
        assert_eq!(attempt["trace"]["trace_id"], json!(trace), "{attempt}");
        if said == "traced" {
            assert_eq!(attempt["trace"]["baggage"], "tenant=acme", "{attempt}");
        }
        let outcome = audit
            .iter()
            .find(|r| r["kind"] == "outcome" && r["call_id"] == attempt["call_id"])
            .unwrap_or_else(|| panic!("an outcome for `{said}`"));
        assert_eq!(outcome["trace"]["trace_id"], json!(trace), "{outcome}");
    }
    let decision = audit
        .iter()
        .find(|r| r["kind"] == "decision" && r["requested"] == "demo_write_note")
        .expect("the refusal's record");
    assert_eq!(decision["trace"]["trace_id"], json!(REFUSED), "{decision}");
}

#[tokio::test]
async fn a_call_that_waits_for_an_approver_shows_the_wait_as_its_approval_event() {
    const CAROL: &str = "carol-approves-in-the-trace-test";
    let (otlp, spans) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let carol = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(CAROL.as_bytes()));
    let path = common::write_setup(
        dir.path(),
        &Setup {
            approval_timeout: "30s".into(),
            config_extra: format!(
                "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[telemetry]\notlp_endpoint = \"{otlp}\"\n\n[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{carol}\"\n"
            ),
            ..Setup::default()
        },
    );
    let (_gateway, endpoint, admin, _) =
        common::serve_exe_with(&path, &[], &[("OTEL_BSP_SCHEDULE_DELAY", "50")]).await;
    let client = ()
        .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
            endpoint,
        ))
        .await
        .unwrap();
    let mut params = CallToolRequestParams::new("demo_issue_refund").with_arguments(
        json!({"order_id": "9", "amount_cents": 500, "intent": "refund a broken order"})
            .as_object()
            .cloned()
            .unwrap(),
    );
    params.meta = Some(
        serde_json::from_value(json!({"traceparent": format!("00-{HEADER_TRACE}-{PARENT}-01")}))
            .unwrap(),
    );
    let waiting = tokio::spawn(async move { client.peer().call_tool(params).await });
    let http = reqwest::Client::new();
    let id = common::first_listed(&admin, CAROL)
        .await
        .expect("the call waits for an approval");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let approved = http
        .post(format!("{admin}/approvals/{id}/approve"))
        .bearer_auth(CAROL)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let result = waiting.await.unwrap().unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");

    let trace = trace_of(&spans, HEADER_TRACE).await;
    let root = named(&trace, "tools/call demo_issue_refund");
    let events: Vec<&str> = root.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        events,
        [
            "identity",
            "policy",
            "approval",
            "audit.attempt",
            "upstream",
            "audit.outcome"
        ],
        "{root:#?}"
    );
    let waited = root.events.iter().find(|e| e.name == "approval").unwrap();
    let took = waited
        .attributes
        .iter()
        .find(|a| a.key == "duration_us")
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Any::IntValue(v) => Some(*v),
            _ => None,
        })
        .unwrap();
    assert!(
        took >= 100_000,
        "the wait lasted until the approval: {took} µs"
    );
}

#[tokio::test]
async fn with_no_exporter_a_valid_caller_context_is_passed_on_and_audited_and_a_bad_one_is_not_passed_on()
 {
    let h = common::Harness::start().await;
    let sent = format!("00-{TRACE}-{PARENT}-01");
    for traceparent in [sent.as_str(), "00-not-a-trace-01"] {
        let mut params = CallToolRequestParams::new("demo_echo")
            .with_arguments(json!({"text": traceparent}).as_object().cloned().unwrap());
        params.meta = Some(serde_json::from_value(json!({"traceparent": traceparent})).unwrap());
        let r = h.client.peer().call_tool(params).await.unwrap();
        assert_eq!(common::text(&r), traceparent);
    }
    let calls = h.upstream_calls();
    assert_eq!(calls[0]["trace"], json!({"traceparent": sent}), "{calls:?}");
    assert!(
        calls[1].get("trace").is_none(),
        "a malformed one stays here: {calls:?}"
    );
    let attempts: Vec<_> = h
        .audit()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "attempt")
        .collect();
    assert_eq!(attempts[0]["trace"]["trace_id"], TRACE, "{attempts:?}");
    // What the caller sent is evidence, kept as it came; it names no trace.
    assert_eq!(
        attempts[1]["trace"],
        json!({"traceparent": "00-not-a-trace-01"})
    );
}

/// A gateway exporting to `otlp` with `envs`, an admin listener for `/metrics`: the
/// child, its MCP endpoint, its admin base URL and its stderr.
async fn exporting(
    dir: &std::path::Path,
    otlp: &str,
    envs: &[(&str, &str)],
) -> (
    tokio::process::Child,
    String,
    String,
    Arc<Mutex<Vec<String>>>,
) {
    let path = common::write_setup(
        dir,
        &Setup {
            config_extra: format!(
                "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[telemetry]\notlp_endpoint = \"{otlp}\"\n"
            ),
            ..Setup::default()
        },
    );
    common::serve_exe_with(&path, &[], envs).await
}

/// `n` echo calls, each with its own trace context; their trace ids.
async fn echo_calls(endpoint: &str, n: usize) -> Vec<String> {
    let client = ()
        .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
            endpoint.to_string(),
        ))
        .await
        .unwrap();
    let mut traces = Vec::new();
    for i in 0..n {
        let trace = format!("{:032x}", 0xabc0_0000_u128 + i as u128);
        let mut params = CallToolRequestParams::new("demo_echo").with_arguments(
            json!({"text": format!("call {i}")})
                .as_object()
                .cloned()
                .unwrap(),
        );
        params.meta = Some(
            serde_json::from_value(json!({"traceparent": format!("00-{trace}-{PARENT}-01")}))
                .unwrap(),
        );
        let r = client.peer().call_tool(params).await.unwrap();
        assert_eq!(common::text(&r), format!("call {i}"));
        traces.push(trace);
    }
    traces
}

async fn metrics_of(admin: &str) -> String {
    reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn spans_still_queued_when_serve_stops_are_sent_before_it_exits() {
    let (otlp, spans) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    // A batch waits up to ten minutes: only the stop can send these.
    let (mut gateway, endpoint, admin, _) =
        exporting(dir.path(), &otlp, &[("OTEL_BSP_SCHEDULE_DELAY", "600000")]).await;
    let traces = echo_calls(&endpoint, 3).await;
    let page = metrics_of(&admin).await;
    let exported = "mcp_warden_trace_spans_total{result=\"exported\"}";
    assert_eq!(common::metric(&page, exported), Some(0.0), "{page}");
    assert!(
        spans.lock().unwrap().is_empty(),
        "nothing sent before the stop"
    );

    common::sigterm(gateway.id().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(20), gateway.wait())
        .await
        .expect("serve exits after a SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let received: Vec<String> = spans
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| hex(&s.trace_id))
        .collect();
    assert_eq!(
        received, traces,
        "every queued span, in the order the calls ended"
    );
}

#[tokio::test]
async fn a_receiver_that_fails_costs_no_call_and_its_spans_are_counted_as_failed() {
    let refused: Arc<Mutex<usize>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(|Extract(refused): Extract<Arc<Mutex<usize>>>| async move {
                // Overloaded until the test says otherwise (`usize::MAX`).
                let mut seen = refused.lock().unwrap();
                if *seen == usize::MAX {
                    return (axum::http::StatusCode::OK, "");
                }
                *seen += 1;
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "collector overloaded",
                )
            }),
        )
        .with_state(refused.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let (_gateway, endpoint, admin, stderr) =
        exporting(dir.path(), &otlp, &[("OTEL_BSP_SCHEDULE_DELAY", "20")]).await;

    echo_calls(&endpoint, 4).await;
    let failed = "mcp_warden_trace_spans_total{result=\"failed\"}";
    let mut page = String::new();
    for _ in 0..200 {
        page = metrics_of(&admin).await;
        if common::metric(&page, failed) == Some(4.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(common::metric(&page, failed), Some(4.0), "{page}");
    let exported = "mcp_warden_trace_spans_total{result=\"exported\"}";
    assert_eq!(common::metric(&page, exported), Some(0.0), "{page}");
    assert!(*refused.lock().unwrap() >= 1);
    // The operator hears of it once, not once a batch.
    let warned = stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("spans are not exported") && l.contains("503"))
        .count();
    assert_eq!(warned, 1, "{:?}", stderr.lock().unwrap());

    // The receiver recovers: spans are exported again, and the operator is told so.
    *refused.lock().unwrap() = usize::MAX;
    echo_calls(&endpoint, 2).await;
    for _ in 0..200 {
        page = metrics_of(&admin).await;
        if common::metric(&page, exported) == Some(2.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(common::metric(&page, exported), Some(2.0), "{page}");
    let back = stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("spans reach the OTLP receiver again"))
        .count();
    assert_eq!(back, 1, "{:?}", stderr.lock().unwrap());
}

#[tokio::test]
async fn the_otlp_headers_reach_the_collector_and_a_setting_it_cannot_honour_is_named() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |Extract(seen): Extract<Seen>, headers: axum::http::HeaderMap| async move {
                    let mut seen = seen.lock().unwrap();
                    for name in ["authorization", "x-team"] {
                        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                            seen.push((name.to_string(), v.to_string()));
                        }
                    }
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let (mut gateway, endpoint, _, _) = exporting(
        dir.path(),
        &otlp,
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20otlp-secret,x-team=ops",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-team=traces"),
        ],
    )
    .await;
    echo_calls(&endpoint, 1).await;
    common::sigterm(gateway.id().unwrap());
    gateway.wait().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&("authorization".into(), "Bearer otlp-secret".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("x-team".into(), "traces".into())),
        "the traces' own wins: {seen:?}"
    );

    // A sampler it does not have: said at start, by name; calls go on, nothing exported.
    let dir = tempfile::tempdir().unwrap();
    let (_gateway, endpoint, _, stderr) = exporting(
        dir.path(),
        &otlp,
        &[("OTEL_TRACES_SAMPLER", "jaeger_remote")],
    )
    .await;
    echo_calls(&endpoint, 1).await;
    let said = stderr.lock().unwrap().join("\n");
    assert!(
        said.contains("spans are not exported")
            && said.contains("OTEL_TRACES_SAMPLER `jaeger_remote`"),
        "{said}"
    );
}
