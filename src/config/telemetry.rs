//! The `[telemetry]` table of `warden.toml`: where spans are exported (OTLP/HTTP) and
//! the bearer token a metrics scraper presents. Where `/metrics` is served is
//! `[listen] metrics` (and the admin listener).

use serde::Deserialize;
use toml::Spanned;

use crate::problem::{Problem, line_of};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    otlp_endpoint: Option<Spanned<String>>,
    metrics_token_sha256: Option<Spanned<String>>,
}

/// The checked `[telemetry]` settings (a restart applies them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver (`/v1/traces` is added); absent: the standard
    /// `OTEL_EXPORTER_OTLP_*` variables, or no export.
    pub otlp_endpoint: Option<String>,
    /// SHA-256 (hex) of the bearer token `/metrics` asks for; absent: none asked.
    pub metrics_token_sha256: Option<String>,
}

pub(super) fn check(
    raw: RawTelemetry,
    text: &str,
    file: &std::path::Path,
    out: &mut Vec<Problem>,
) -> TelemetryConfig {
    let error = |s: &Spanned<String>, m: String| {
        Problem::error(file, Some(line_of(text, s.span().start)), m)
    };
    let otlp_endpoint = raw.otlp_endpoint.and_then(|e| {
        let url = e.get_ref().trim();
        match url.starts_with("http://") || url.starts_with("https://") {
            true => Some(url.to_string()),
            false => {
                out.push(error(&e, format!(
                    "`otlp_endpoint` `{url}` is not an http(s) URL: write the OTLP/HTTP receiver's base, e.g. \"http://127.0.0.1:4318\""
                )));
                None
            }
        }
    });
    let metrics_token_sha256 = raw.metrics_token_sha256.and_then(|h| {
        let hash = h.get_ref().trim().to_ascii_lowercase();
        match hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            true => Some(hash),
            false => {
                out.push(error(&h, "`metrics_token_sha256` must be 64 hex digits: the SHA-256 of the token (`printf %s TOKEN | sha256sum`)".into()));
                None
            }
        }
    });
    TelemetryConfig {
        otlp_endpoint,
        metrics_token_sha256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(text: &str) -> (TelemetryConfig, Vec<Problem>) {
        let raw: RawTelemetry = toml::from_str(text).unwrap();
        let mut out = Vec::new();
        let c = check(raw, text, std::path::Path::new("warden.toml"), &mut out);
        (c, out)
    }

    #[test]
    fn a_bad_endpoint_or_token_hash_is_refused_with_what_to_write() {
        let (c, out) =
            checked("otlp_endpoint = \"localhost:4318\"\nmetrics_token_sha256 = \"abc\"\n");
        assert_eq!(c, TelemetryConfig::default());
        let text: Vec<String> = out.iter().map(|p| p.located()).collect();
        assert!(
            text[0].contains("e.g. \"http://127.0.0.1:4318\""),
            "{text:?}"
        );
        assert!(text[1].contains("64 hex digits"), "{text:?}");
        let (c, out) = checked(&format!(
            "otlp_endpoint = \"http://127.0.0.1:4318/\"\nmetrics_token_sha256 = \"{}\"\n",
            "A".repeat(64)
        ));
        assert!(out.is_empty());
        assert_eq!(c.metrics_token_sha256, Some("a".repeat(64)));
    }
}
