//! The `[[witness]]` list of `warden.toml`: where the audit log's signed checkpoints (and,
//! on request, every record) are also sent, so that a log rewritten on its own host can
//! be proven wrong: a file, a Splunk HEC collector, a syslog server (RFC 5424 over TCP,
//! optionally TLS), or the replicas' PostgreSQL state database (`store = true`). It does
//! not deliver anything: `audit::witness` does.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::problem::Problem;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWitness {
    /// A file the log's host cannot rewrite (a WORM mount, another machine's share).
    file: Option<String>,
    /// An HTTP collector taking Splunk HEC events.
    hec: Option<String>,
    /// The environment variable holding the collector's token.
    token_env: Option<String>,
    /// A syslog server: `tcp://host[:port]` or `tls://host[:port]`.
    syslog: Option<String>,
    /// The CA certificates (PEM) a `tls://` syslog server's certificate must chain to;
    /// default: the system's.
    ca: Option<String>,
    /// A client certificate chain and its key (PEM), for servers that ask for one.
    cert: Option<String>,
    key: Option<String>,
    /// The syslog facility (default `auth`).
    facility: Option<String>,
    /// `checkpoints` (the default) or `all`: every record, checkpoints included.
    records: Option<String>,
    /// The state database of `[store] url` (PostgreSQL), in a table of its own.
    store: Option<bool>,
}

/// Where signed checkpoints (or every record) are also sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessConfig {
    pub sink: WitnessSink,
    /// Every record, not only the checkpoints (`records = "all"`).
    pub every_record: bool,
}

#[derive(Clone, PartialEq, Eq)]
pub enum WitnessSink {
    File(PathBuf),
    /// A Splunk HEC event endpoint (`…/services/collector/event`) and its token.
    Hec {
        url: String,
        token: String,
    },
    Syslog(SyslogConfig),
    /// The PostgreSQL database of `[store] url` (never shown: it may hold a password),
    /// and the replica whose lines these are (empty for a gateway that is not one).
    Store {
        url: String,
        replica: String,
    },
}

/// A syslog server taking RFC 5424 messages over TCP (RFC 6587 octet counting), in TLS
/// when `tls` is set (RFC 5425).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogConfig {
    pub host: String,
    pub port: u16,
    pub tls: Option<SyslogTls>,
    /// The facility code (RFC 5424 §6.2.1): `auth` is 4.
    pub facility: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogTls {
    /// CA certificates to trust instead of the system's.
    pub ca: Option<PathBuf>,
    /// A client certificate chain and its private key.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for WitnessSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// How a sink is named in logs and health: never with its token.
impl std::fmt::Display for WitnessSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WitnessSink::File(p) => write!(f, "file {}", p.display()),
            WitnessSink::Hec { url, .. } => write!(f, "hec {url}"),
            WitnessSink::Syslog(s) => {
                let scheme = if s.tls.is_some() { "tls" } else { "tcp" };
                write!(f, "syslog {scheme}://{}:{}", s.host, s.port)
            }
            WitnessSink::Store { .. } => write!(f, "store (the state database)"),
        }
    }
}

/// Facility names (RFC 5424 §6.2.1, as syslog daemons spell them).
const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Each `[[witness]]`: a file, an HEC collector with its token from the environment, a
/// syslog server, or the state database (`store`: the URL of `[store]`, and the replica
/// the lines are from).
pub(super) fn witnesses(
    raw: Vec<RawWitness>,
    base: &Path,
    file: &Path,
    store: (Option<&str>, Option<&str>),
    out: &mut Vec<Problem>,
) -> Vec<WitnessConfig> {
    let mut found = Vec::new();
    for w in raw {
        match witness(w, base, store) {
            Ok(config) => found.push(config),
            Err(message) => out.push(Problem::error(file, None, message)),
        }
    }
    found
}

fn witness(
    w: RawWitness,
    base: &Path,
    (url, replica): (Option<&str>, Option<&str>),
) -> Result<WitnessConfig, String> {
    let every_record = match w.records.as_deref() {
        None | Some("checkpoints") => false,
        Some("all") => true,
        Some(other) => {
            return Err(format!(
                "`[[witness]] records = \"{other}\"`: say `checkpoints` (the default) or `all`"
            ));
        }
    };
    let syslog_only = w.ca.is_some() || w.cert.is_some() || w.key.is_some() || w.facility.is_some();
    let store = w.store == Some(true);
    if w.store == Some(false) {
        return Err("`[[witness]] store = false` names no witness: leave the table out, or say `store = true`".into());
    }
    let alone = w.file.is_none() && w.hec.is_none() && w.syslog.is_none();
    if store {
        return match (alone && w.token_env.is_none() && !syslog_only, url) {
            (false, _) => Err("`[[witness]] store = true` is a witness of its own: give it no `file`, `hec`, `syslog` or their settings".into()),
            (true, None) => Err("`[[witness]] store = true` needs `[store] url = \"postgres://…\"`: the replicas' database, on another machine, is the witness (a SQLite file beside the log would not be)".into()),
            (true, Some(url)) => Ok(WitnessConfig {
                sink: WitnessSink::Store {
                    url: url.to_string(),
                    replica: replica.unwrap_or_default().to_string(),
                },
                every_record,
            }),
        };
    }
    let sink = match (w.file, w.hec, w.syslog) {
        (Some(path), None, None) if w.token_env.is_none() && !syslog_only => {
            WitnessSink::File(base.join(path))
        }
        (None, Some(url), None) if !syslog_only => hec(url, w.token_env)?,
        (None, None, Some(url)) if w.token_env.is_none() => {
            let tls = (w.ca, w.cert, w.key);
            WitnessSink::Syslog(syslog(&url, tls, w.facility.as_deref(), base)?)
        }
        _ => {
            return Err("each `[[witness]]` is either `file = \"…\"`, `hec = \"https://…\"` with `token_env`, `syslog = \"tcp://…\"` / `\"tls://…\"` (with `ca`, `cert`, `key`, `facility`), or `store = true`".into());
        }
    };
    Ok(WitnessConfig { sink, every_record })
}

fn hec(url: String, token_env: Option<String>) -> Result<WitnessSink, String> {
    let Some(var) = token_env else {
        return Err("`[[witness]] hec` needs `token_env`, the variable holding its token (never the token itself)".into());
    };
    match std::env::var(&var) {
        Ok(token) if !token.is_empty() => Ok(WitnessSink::Hec { url, token }),
        _ => Err(format!(
            "`[[witness]] token_env`: `{var}` is not set; export the collector's token in it"
        )),
    }
}

type TlsFiles = (Option<String>, Option<String>, Option<String>);

fn syslog(
    url: &str,
    (ca, cert, key): TlsFiles,
    facility: Option<&str>,
    base: &Path,
) -> Result<SyslogConfig, String> {
    let bad = |why: &str| format!("`[[witness]] syslog = \"{url}\"`: {why}");
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        bad(&format!(
            "{e}; write `tcp://host:port` or `tls://host:port`"
        ))
    })?;
    let (tls, default_port) = match parsed.scheme() {
        "tcp" => (false, 514),
        "tls" => (true, 6514),
        _ => return Err(bad("the scheme is `tcp://` (plain) or `tls://` (RFC 5425)")),
    };
    let host = match parsed.host_str() {
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
        _ => return Err(bad("it names no host")),
    };
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
        return Err(bad("a syslog address is only a host and a port"));
    }
    let facility = match facility {
        None => 4,
        Some(name) => FACILITIES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, code)| *code)
            .ok_or_else(|| {
                let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
                format!(
                    "`[[witness]] facility = \"{name}\"`: one of {}",
                    names.join(", ")
                )
            })?,
    };
    let tls = match (tls, ca, cert, key) {
        (false, None, None, None) => None,
        (false, ..) => return Err(bad("`ca`, `cert` and `key` are for `tls://` servers")),
        (true, ca, None, None) => Some(SyslogTls {
            ca: ca.map(|p| base.join(p)),
            client: None,
        }),
        (true, ca, Some(cert), Some(key)) => Some(SyslogTls {
            ca: ca.map(|p| base.join(p)),
            client: Some((base.join(cert), base.join(key))),
        }),
        (true, ..) => return Err(bad("`cert` and `key` come together")),
    };
    Ok(SyslogConfig {
        host: host.to_string(),
        port: parsed.port().unwrap_or(default_port),
        tls,
        facility,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(w: &str) -> Result<Vec<WitnessConfig>, String> {
        parse_with(w, (None, None))
    }

    fn parse_with(
        w: &str,
        store: (Option<&str>, Option<&str>),
    ) -> Result<Vec<WitnessConfig>, String> {
        let raw: super::super::RawConfig =
            toml::from_str(&format!("[[witness]]\n{w}\n")).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        let found = witnesses(
            raw.witness,
            Path::new("/base"),
            Path::new("w.toml"),
            store,
            &mut problems,
        );
        match problems.first() {
            Some(p) => Err(p.to_string()),
            None => Ok(found),
        }
    }

    #[test]
    fn the_state_database_is_a_witness_only_with_a_postgresql_store_and_alone() {
        let url = "postgres://warden:secret@db:5432/warden";
        let found =
            parse_with("store = true\nrecords = \"all\"", (Some(url), Some("gw-1"))).unwrap();
        assert_eq!(
            found,
            [WitnessConfig {
                sink: WitnessSink::Store {
                    url: url.into(),
                    replica: "gw-1".into()
                },
                every_record: true
            }]
        );
        assert!(
            !found[0].sink.to_string().contains("secret"),
            "never shown with its password"
        );
        let err = parse("store = true").unwrap_err();
        assert!(err.contains("needs `[store] url"), "{err}");
        let err = parse_with("store = true\nfile = \"w.jsonl\"", (Some(url), None)).unwrap_err();
        assert!(err.contains("a witness of its own"), "{err}");
        let err = parse_with("store = false", (Some(url), None)).unwrap_err();
        assert!(err.contains("names no witness"), "{err}");
    }

    #[test]
    fn a_witness_is_a_file_or_a_collector_whose_token_comes_from_the_environment() {
        let file = parse("file = \"/mnt/worm/checkpoints.jsonl\"").unwrap();
        assert_eq!(
            file,
            [WitnessConfig {
                sink: WitnessSink::File("/mnt/worm/checkpoints.jsonl".into()),
                every_record: false
            }]
        );
        let err = parse("hec = \"https://siem:8088/services/collector/event\"").unwrap_err();
        assert!(err.contains("needs `token_env`"), "{err}");
        let err =
            parse("hec = \"https://siem/\"\ntoken_env = \"MCP_WARDEN_NO_SUCH_VAR\"").unwrap_err();
        assert!(err.contains("`MCP_WARDEN_NO_SUCH_VAR` is not set"), "{err}");
        let err = parse("file = \"a\"\nhec = \"https://siem/\"").unwrap_err();
        assert!(err.contains("either `file"), "{err}");
        let hidden = format!(
            "{:?}",
            WitnessSink::Hec {
                url: "https://siem/".into(),
                token: "s3cret-token".into()
            }
        );
        assert!(!hidden.contains("s3cret"), "{hidden}");
    }

    #[test]
    fn a_syslog_witness_is_tcp_or_tls_with_the_standard_ports_and_a_facility() {
        let plain = parse("syslog = \"tcp://logs.example\"").unwrap();
        assert_eq!(
            plain[0].sink,
            WitnessSink::Syslog(SyslogConfig {
                host: "logs.example".into(),
                port: 514,
                tls: None,
                facility: 4
            })
        );
        let tls = parse(
            "syslog = \"tls://[::1]:7000\"\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"k.pem\"\nfacility = \"local3\"\nrecords = \"all\"",
        )
        .unwrap();
        assert!(tls[0].every_record);
        assert_eq!(
            tls[0].sink,
            WitnessSink::Syslog(SyslogConfig {
                host: "::1".into(),
                port: 7000,
                tls: Some(SyslogTls {
                    ca: Some("/base/ca.pem".into()),
                    client: Some(("/base/c.pem".into(), "/base/k.pem".into())),
                }),
                facility: 19
            })
        );
        let default_tls = parse("syslog = \"tls://logs.example\"").unwrap();
        assert!(matches!(&default_tls[0].sink, WitnessSink::Syslog(s) if s.port == 6514));
        for (bad, says) in [
            (
                "syslog = \"udp://logs:514\"",
                "`tcp://` (plain) or `tls://`",
            ),
            ("syslog = \"logs:514\"", "`tcp://` (plain) or `tls://`"),
            ("syslog = \"tcp://logs:514/x\"", "only a host and a port"),
            (
                "syslog = \"tcp://logs\"\nca = \"ca.pem\"",
                "for `tls://` servers",
            ),
            ("syslog = \"tls://logs\"\ncert = \"c.pem\"", "come together"),
            (
                "syslog = \"tcp://logs\"\nfacility = \"audit\"",
                "one of kern",
            ),
            (
                "syslog = \"tcp://logs\"\nrecords = \"some\"",
                "`checkpoints` (the default) or `all`",
            ),
            ("file = \"f\"\nfacility = \"auth\"", "either `file"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
