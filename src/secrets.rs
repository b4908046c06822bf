//! Credentials nobody declared: text that looks like a well-known secret (cloud and
//! service API keys, bearer tokens, JWTs, private-key blocks, mcp-warden's own tokens)
//! found and replaced by a marker that names its kind and a digest of it, so an audit
//! record or a log line never holds one, whether or not a manifest redacts the argument
//! it came in. It finds and masks; it knows nothing of where the text goes.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::bytes::{Captures, Regex};
use sha2::{Digest, Sha256};

/// The formats recognised: a name (shown in the marker) and a pattern. A pattern's
/// `secret` group, when it has one, is the part replaced (a bearer token's scheme
/// stays). None matches a quote or a backslash other than in `\n`, so masking text
/// inside a JSON string keeps it a JSON string.
pub const FORMATS: &[(&str, &str)] = &[
    ("aws-access-key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    (
        "github-token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
    ),
    ("gitlab-token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("stripe-key", r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}"),
    (
        "openai-or-anthropic-key",
        r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}",
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
    ),
    (
        "bearer-token",
        r"(?i:\bbearer\s+)(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)",
    ),
    (
        "private-key",
        r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----[A-Za-z0-9+/=\s\\]*?-----END [A-Z ]{0,20}PRIVATE KEY-----",
    ),
    ("mcp-warden-token", r"\bmw[ak]_[0-9a-f]{64}\b"),
];

/// Every format as one pattern, each alternative a named group (`s0`, `s1`, …).
static ALL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let alternatives: Vec<String> = FORMATS
        .iter()
        .enumerate()
        .map(|(i, (_, pattern))| format!("(?P<s{i}>{pattern})"))
        .collect();
    // ASCII word boundaries and classes: every format is ASCII, and a Unicode `\b` would
    // send text with any non-ASCII character down the regex engine's slow path.
    Regex::new(&format!("(?-u){}", alternatives.join("|"))).ok()
});

/// `text` with every secret replaced by `[secret <kind> sha256:<16 hex>]`; borrowed
/// when there was none. If the patterns could not be built (they are fixed, so only a
/// bug does that), everything that could hold a secret is masked.
pub fn scrub(text: &[u8]) -> Cow<'_, [u8]> {
    let Some(all) = ALL.as_ref() else {
        return Cow::Owned(b"[secret scanning unavailable: text withheld]".to_vec());
    };
    all.replace_all(text, |c: &Captures<'_>| marker(c))
}

/// Like [`scrub`], for text.
pub fn scrub_str(text: &str) -> Cow<'_, str> {
    match scrub(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// A writer that masks secrets in what it is given (each log event comes in one write).
pub struct Masked<W>(pub W);

impl<W: std::io::Write> std::io::Write for Masked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&scrub(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn marker(c: &Captures<'_>) -> Vec<u8> {
    let Some((i, whole)) = (0..FORMATS.len()).find_map(|i| Some((i, c.name(&format!("s{i}"))?)))
    else {
        return c.get(0).map(|m| m.as_bytes().to_vec()).unwrap_or_default();
    };
    let kind = FORMATS.get(i).map_or("secret", |(kind, _)| kind);
    // A format with a `secret` group keeps what precedes it (`Bearer `).
    let (kept, secret) = match c.name("secret") {
        Some(s) => (
            whole
                .as_bytes()
                .get(..s.start().saturating_sub(whole.start()))
                .unwrap_or_default(),
            s.as_bytes(),
        ),
        None => (&b""[..], whole.as_bytes()),
    };
    let digest = hex::encode(Sha256::digest(secret));
    let mut out = kept.to_vec();
    out.extend_from_slice(
        format!(
            "[secret {kind} sha256:{}]",
            digest.get(..16).unwrap_or_default()
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn masked(text: &str) -> String {
        scrub_str(text).into_owned()
    }

    #[test]
    fn every_listed_format_is_masked_with_its_kind() {
        let cases = [
            ("key AKIAIOSFODNN7EXAMPLE here", "aws-access-key"),
            (&format!("ghp_{}", "a".repeat(36)), "github-token"),
            (&format!("github_pat_{}", "B".repeat(40)), "github-token"),
            ("glpat-abcdefghij0123456789", "gitlab-token"),
            ("xoxb-123456789012-abcdefghij", "slack-token"),
            (&format!("AIza{}", "x".repeat(35)), "google-api-key"),
            ("sk_live_0123456789abcdefABCD", "stripe-key"),
            (
                &format!("sk-ant-{}", "k".repeat(40)),
                "openai-or-anthropic-key",
            ),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
                "jwt",
            ),
            ("Authorization: Bearer abcdefghijklmnop0123", "bearer-token"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\\nMIIEow==\\n-----END RSA PRIVATE KEY-----",
                "private-key",
            ),
            (&format!("mwk_{}", "0f".repeat(32)), "mcp-warden-token"),
            (&format!("mwa_{}", "1e".repeat(32)), "mcp-warden-token"),
        ];
        for (text, kind) in cases {
            let out = masked(text);
            assert!(
                out.contains(&format!("[secret {kind} sha256:")),
                "{text} -> {out}"
            );
        }
        assert_eq!(
            masked("Authorization: Bearer abcdefghijklmnop0123"),
            format!(
                "Authorization: Bearer [secret bearer-token sha256:{}]",
                &hex::encode(Sha256::digest(b"abcdefghijklmnop0123"))[..16]
            ),
            "the scheme stays, the token goes, its digest says which it was"
        );
    }

    #[test]
    fn ordinary_text_and_the_logs_own_digests_are_left_alone() {
        for text in [
            "refund order 1001 for alice",
            "sha256:4b58a179560a2d2882632e4d758e0f5b70ed6b87b4b8f2103af9132134ac03c9",
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "the bearer of bad news",
            "AKIA is a prefix",
        ] {
            assert!(matches!(scrub(text.as_bytes()), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn text_around_a_secret_may_be_any_language() {
        let out = masked("clé d’accès : AKIAIOSFODNN7EXAMPLE — merci");
        assert!(
            out.starts_with("clé d’accès : [secret aws-access-key sha256:"),
            "{out}"
        );
        assert!(out.ends_with("] — merci"), "{out}");
    }

    #[test]
    fn a_masked_writer_writes_no_secret() {
        use std::io::Write;
        let mut out = Masked(Vec::new());
        out.write_all(b"upstream said: token=AKIAIOSFODNN7EXAMPLE\n")
            .unwrap();
        let written = String::from_utf8(out.0).unwrap();
        assert!(
            written.starts_with("upstream said: token=[secret aws-access-key sha256:"),
            "{written}"
        );
        assert!(written.ends_with("]\n"), "{written}");
    }

    #[test]
    fn a_json_line_stays_json_and_keeps_its_other_fields() {
        let line = json!({"args": {"note": "use AKIAIOSFODNN7EXAMPLE", "key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"},
                          "intent": "with token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "n": 1})
        .to_string();
        let out = scrub(line.as_bytes());
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert!(
            value["args"]["note"]
                .as_str()
                .unwrap()
                .starts_with("use [secret aws-access-key")
        );
        assert!(
            value["args"]["key"]
                .as_str()
                .unwrap()
                .starts_with("[secret private-key")
        );
        assert!(
            value["intent"]
                .as_str()
                .unwrap()
                .starts_with("with token [secret jwt")
        );
        assert_eq!(value["n"], 1);
    }
}
