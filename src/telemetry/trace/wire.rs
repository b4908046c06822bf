//! OTLP's protobuf encoding of finished spans: an `ExportTraceServiceRequest` of one
//! resource, one instrumentation scope and the batch's spans (the field numbers of
//! `opentelemetry/proto/trace/v1/trace.proto`, stable since OTLP 1.0). Written by hand
//! because a span here has a fixed, small shape; the tests decode the output with the
//! protocol's own generated definitions.

use super::export::{Event, Finished};

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// `Span.SpanKind.SPAN_KIND_SERVER`.
const SERVER: u64 = 2;
/// `SpanFlags`: the parent's remoteness is known, and it is remote.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(buf, field, LEN);
    varint(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
    key(buf, field, FIXED64);
    buf.extend_from_slice(&value.to_le_bytes());
}

/// A nested message, written by `write` in place; its length (known only then) is put
/// in front of it, moving its bytes once instead of building it in a buffer of its own.
fn message(buf: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    let start = buf.len();
    write(buf);
    let mut len = [0u8; 10];
    let mut at = 0;
    let mut v = (buf.len() - start) as u64;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if let Some(b) = len.get_mut(at) {
            *b = if v > 0 { byte | 0x80 } else { byte };
        }
        at += 1;
        if v == 0 {
            break;
        }
    }
    buf.splice(start..start, len.iter().take(at).copied());
}

/// A `KeyValue` with a string or an integer value, as field `field`.
fn attribute(buf: &mut Vec<u8>, field: u32, name: &str, value: Value<'_>) {
    message(buf, field, |kv| {
        bytes(kv, 1, name.as_bytes());
        message(kv, 2, |any| match value {
            Value::Str(s) => bytes(any, 1, s.as_bytes()),
            Value::Int(i) => {
                key(any, 3, VARINT);
                varint(any, i as u64);
            }
        });
    });
}

#[derive(Clone, Copy)]
enum Value<'a> {
    Str(&'a str),
    Int(i64),
}

fn event(buf: &mut Vec<u8>, e: &Event) {
    message(buf, 11, |ev| {
        fixed64(ev, 1, e.time_ns);
        bytes(ev, 2, e.name.as_bytes());
        if let Some((name, value)) = &e.attribute {
            attribute(ev, 3, name, Value::Str(value));
        }
        if let Some(us) = e.duration_us {
            attribute(ev, 3, "duration_us", Value::Int(us));
        }
    });
}

fn span(buf: &mut Vec<u8>, s: &Finished) {
    message(buf, 2, |sp| {
        bytes(sp, 1, &s.context.trace_id);
        bytes(sp, 2, &s.context.span_id);
        if let Some(state) = &s.trace_state {
            bytes(sp, 3, state.as_bytes());
        }
        let mut flags = u32::from(s.context.flags) | HAS_IS_REMOTE;
        if let Some(parent) = &s.parent {
            bytes(sp, 4, parent);
            flags |= IS_REMOTE;
        }
        // The name, `method target`, written without a string of its own.
        key(sp, 5, LEN);
        match s.target.is_empty() {
            true => {
                varint(sp, s.method.len() as u64);
                sp.extend_from_slice(s.method.as_bytes());
            }
            false => {
                varint(sp, (s.method.len() + 1 + s.target.len()) as u64);
                sp.extend_from_slice(s.method.as_bytes());
                sp.push(b' ');
                sp.extend_from_slice(s.target.as_bytes());
            }
        }
        key(sp, 6, VARINT);
        varint(sp, SERVER);
        fixed64(sp, 7, s.start_ns);
        fixed64(sp, 8, s.end_ns);
        attribute(sp, 9, "mcp.method.name", Value::Str(s.method));
        // The target under the MCP semantic conventions' name for it.
        let target = match s.method {
            "tools/call" => Some("gen_ai.tool.name"),
            "prompts/get" => Some("gen_ai.prompt.name"),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                Some("mcp.resource.uri")
            }
            _ => None,
        };
        if let (Some(key), false) = (target, s.target.is_empty()) {
            attribute(sp, 9, key, Value::Str(&s.target));
        }
        if s.method == "tools/call" {
            attribute(sp, 9, "gen_ai.operation.name", Value::Str("execute_tool"));
        }
        for e in &s.events {
            event(sp, e);
        }
        key(sp, 16, FIXED32);
        sp.extend_from_slice(&flags.to_le_bytes());
    });
}

/// The body of one export: `resource` (its attributes), the scope `mcp-warden` at this
/// build's version, and `spans`.
#[cfg(test)]
pub fn request(resource: &[(String, String)], spans: &[Finished]) -> Vec<u8> {
    let mut buf = Vec::new();
    let start = request_into(&mut buf, resource, spans);
    buf.split_off(start)
}

/// The same, written into `buf` (its bytes replaced), starting at the offset returned.
#[cfg(test)]
pub fn request_into(buf: &mut Vec<u8>, resource: &[(String, String)], spans: &[Finished]) -> usize {
    let room = room(resource);
    begin(buf, room);
    for s in spans {
        span(buf, s);
    }
    finish(buf, room, resource)
}

/// The resource's attributes, as the `Resource` message's fields.
fn attributes(resource: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in resource {
        attribute(&mut out, 1, name, Value::Str(value));
    }
    out
}

/// The room an export's spans need in front of them for the messages around them (known
/// only once every span is written): the resource, and three keys and three lengths.
pub fn room(resource: &[(String, String)]) -> usize {
    attributes(resource).len() + 33
}

/// Start an export's body in `buf` (its bytes replaced): `room`, then the scope
/// `mcp-warden` at this build's version; spans follow, each added with [`add`], written
/// once, in place.
pub fn begin(buf: &mut Vec<u8>, room: usize) {
    buf.clear();
    buf.resize(room, 0);
    message(buf, 1, |scope| {
        bytes(scope, 1, b"mcp-warden");
        bytes(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
    });
}

/// Add a span to a body [`begin`] started.
pub fn add(buf: &mut Vec<u8>, s: &Finished) {
    span(buf, s);
}

/// End a body [`begin`] started with `room`: the messages around the spans (the request's
/// `ResourceSpans`, its `Resource` and the length of its `ScopeSpans`) written into the
/// room; where the body starts.
pub fn finish(buf: &mut [u8], room: usize, resource: &[(String, String)]) -> usize {
    let attributes = attributes(resource);
    let scope_spans = buf.len().saturating_sub(room);
    let mut inner = Vec::with_capacity(attributes.len() + 24);
    key(&mut inner, 1, LEN);
    varint(&mut inner, attributes.len() as u64);
    inner.extend_from_slice(&attributes);
    key(&mut inner, 2, LEN);
    varint(&mut inner, scope_spans as u64);
    let mut head = Vec::with_capacity(inner.len() + 11);
    key(&mut head, 1, LEN);
    varint(&mut head, (inner.len() + scope_spans) as u64);
    head.extend_from_slice(&inner);
    let start = room.saturating_sub(head.len());
    if let Some(front) = buf.get_mut(start..room) {
        front.copy_from_slice(&head);
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::trace::w3c::SpanContext;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;

    fn finished(parent: Option<[u8; 8]>, tool: &str) -> Finished {
        Finished {
            context: SpanContext {
                trace_id: [7; 16],
                span_id: [9; 8],
                flags: 1,
            },
            parent,
            trace_state: parent.map(|_| "rojo=1".to_string()),
            method: "tools/call",
            target: tool.to_string(),
            start_ns: 1_700_000_000_000_000_000,
            end_ns: 1_700_000_000_000_250_000,
            events: vec![
                Event {
                    name: "identity",
                    time_ns: 1_700_000_000_000_010_000,
                    duration_us: Some(3),
                    attribute: None,
                },
                Event {
                    name: "upstream",
                    time_ns: 1_700_000_000_000_200_000,
                    duration_us: Some(150),
                    attribute: Some(("server", "demo".to_string())),
                },
            ],
        }
    }

    #[test]
    fn the_protocols_own_definitions_read_what_is_written() {
        let resource = vec![("service.name".to_string(), "gw-β".to_string())];
        let spans = vec![
            finished(Some([3; 8]), "demo.echo"),
            finished(None, "x".repeat(300).as_str()),
        ];
        let body = request(&resource, &spans);
        let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(decoded.resource_spans.len(), 1);
        let rs = &decoded.resource_spans[0];
        let attrs = &rs.resource.as_ref().unwrap().attributes;
        assert_eq!(attrs[0].key, "service.name");
        assert_eq!(
            attrs[0].value.as_ref().unwrap().value,
            Some(Any::StringValue("gw-β".into()))
        );
        let scope = &rs.scope_spans[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, "mcp-warden");
        assert_eq!(scope.spans.len(), 2);
        let s = &scope.spans[0];
        assert_eq!(s.trace_id, vec![7; 16]);
        assert_eq!(s.span_id, vec![9; 8]);
        assert_eq!(s.parent_span_id, vec![3; 8]);
        assert_eq!(s.trace_state, "rojo=1");
        assert_eq!(s.name, "tools/call demo.echo");
        assert_eq!(s.kind, 2);
        assert_eq!(s.flags, 0x301);
        assert_eq!(s.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(s.end_time_unix_nano, 1_700_000_000_000_250_000);
        let names: Vec<&str> = s.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            names,
            [
                "mcp.method.name",
                "gen_ai.tool.name",
                "gen_ai.operation.name"
            ]
        );
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.events[1].name, "upstream");
        assert_eq!(s.events[1].time_unix_nano, 1_700_000_000_000_200_000);
        let ev: Vec<(String, Option<Any>)> = s.events[1]
            .attributes
            .iter()
            .map(|a| (a.key.clone(), a.value.clone().and_then(|v| v.value)))
            .collect();
        assert_eq!(
            ev,
            [
                ("server".to_string(), Some(Any::StringValue("demo".into()))),
                ("duration_us".to_string(), Some(Any::IntValue(150)))
            ]
        );
        let listed = request(
            &resource,
            &[Finished {
                method: "resources/read",
                target: "file:///notes/a.md".into(),
                ..finished(None, "")
            }],
        );
        let listed = ExportTraceServiceRequest::decode(listed.as_slice()).unwrap();
        let span = &listed.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.name, "resources/read file:///notes/a.md");
        let keys: Vec<&str> = span.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["mcp.method.name", "mcp.resource.uri"]);
        let bare = request(
            &resource,
            &[Finished {
                method: "tools/list",
                target: String::new(),
                ..finished(None, "")
            }],
        );
        let bare = ExportTraceServiceRequest::decode(bare.as_slice()).unwrap();
        assert_eq!(
            bare.resource_spans[0].scope_spans[0].spans[0].name,
            "tools/list"
        );
        let root = &scope.spans[1];
        assert!(root.parent_span_id.is_empty());
        assert_eq!(root.flags, 0x101);
        assert_eq!(root.name.len(), "tools/call ".len() + 300);
    }
}
