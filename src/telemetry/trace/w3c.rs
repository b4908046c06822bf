//! W3C trace context: reading a caller's `traceparent` and `tracestate`, writing ours,
//! and making new trace and span ids. Nothing here knows about spans or their export.

use std::cell::Cell;

/// The part of a `traceparent` a span is made from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

/// The `sampled` bit of the trace flags.
pub const SAMPLED: u8 = 1;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lowercase hex, appended to `out` (every traced call writes ids: this makes
/// no string of its own per byte).
fn hex_into(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            if let Some(&c) = HEX.get(usize::from(nibble)) {
                out.push(char::from(c));
            }
        }
    }
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    hex_into(&mut out, bytes);
    out
}

impl SpanContext {
    /// A `traceparent` value, or `None` when it is not a valid one (W3C trace context,
    /// level 1: lowercase hex, ids not all zero, version `ff` invalid, a later version
    /// may add fields after the flags).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.splitn(5, '-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let rest = parts.next();
        if !lower_hex(version, 2) || version == "ff" || (version == "00" && rest.is_some()) {
            return None;
        }
        if !(lower_hex(trace, 32) && lower_hex(span, 16) && lower_hex(flags, 2)) {
            return None;
        }
        let mut this = Self {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        };
        let mut flag = [0u8; 1];
        hex::decode_to_slice(trace, &mut this.trace_id).ok()?;
        hex::decode_to_slice(span, &mut this.span_id).ok()?;
        hex::decode_to_slice(flags, &mut flag).ok()?;
        this.flags = flag[0];
        let zero = this.trace_id == [0; 16] || this.span_id == [0; 8];
        (!zero).then_some(this)
    }

    /// This context as a `traceparent` value (version 00).
    pub fn header(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        hex_into(&mut out, &self.trace_id);
        out.push('-');
        hex_into(&mut out, &self.span_id);
        out.push('-');
        hex_into(&mut out, &[self.flags]);
        out
    }

    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `value` is a `tracestate` worth passing on: at most 32 `key=value` members of
/// the characters W3C allows (a member may be empty). Anything else is dropped, as W3C
/// asks, while the `traceparent` is kept.
pub fn valid_tracestate(value: &str) -> bool {
    let members: Vec<&str> = value
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .collect();
    members.len() <= 32
        && value.len() <= 512
        && members.iter().all(|m| {
            m.is_empty()
                || m.split_once('=').is_some_and(|(k, v)| {
                    valid_key(k)
                        && !v.is_empty()
                        && v.len() <= 256
                        && v.bytes()
                            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
                        && !v.ends_with(' ')
                })
        })
}

fn valid_key(key: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/@".contains(&b);
    let first_ok = key
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok && key.len() <= 256 && key.bytes().all(allowed) && key.matches('@').count() <= 1
}

thread_local! {
    /// Each thread's generator, seeded from the operating system the first time.
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        now ^ (std::process::id() as u64).rotate_left(32)
    })
}

/// The next number of this thread's SplitMix64 sequence: ids must be unique and evenly
/// spread (ratio sampling reads them), not secret.
fn next() -> u64 {
    STATE.with(|s| {
        let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A new trace id (never all zero).
pub fn trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    while id == [0; 16] {
        id[..8].copy_from_slice(&next().to_be_bytes());
        id[8..].copy_from_slice(&next().to_be_bytes());
    }
    id
}

/// A new span id (never all zero).
pub fn span_id() -> [u8; 8] {
    let mut id = [0u8; 8];
    while id == [0; 8] {
        id = next().to_be_bytes();
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_reads_back_as_it_was_written() {
        let cx = SpanContext::parse(PARENT).unwrap();
        assert_eq!(hex(&cx.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&cx.trace_id), hex::encode(cx.trace_id));
        assert_eq!(
            cx.header(),
            format!(
                "00-{}-{}-{:02x}",
                hex::encode(cx.trace_id),
                hex::encode(cx.span_id),
                cx.flags
            )
        );
        assert_eq!(hex::encode(cx.span_id), "00f067aa0ba902b7");
        assert!(cx.sampled());
        assert_eq!(cx.header(), PARENT);
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next";
        let cx = SpanContext::parse(later).unwrap();
        assert!(
            !cx.sampled(),
            "a later version is read for its first four fields"
        );
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(SpanContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tracestate_is_checked_member_by_member() {
        assert!(valid_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
        assert!(valid_tracestate("vendor@tenant=x, other=y"));
        assert!(!valid_tracestate("Upper=x"));
        assert!(!valid_tracestate("novalue"));
        assert!(!valid_tracestate("a=b=c"));
        assert!(!valid_tracestate("a=line\nbreak"));
        let many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(!valid_tracestate(&many));
    }

    #[test]
    fn new_ids_differ_and_are_never_zero() {
        let ids: std::collections::HashSet<[u8; 16]> = (0..10_000).map(|_| trace_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(!ids.contains(&[0; 16]));
        assert_ne!(span_id(), span_id());
    }
}
