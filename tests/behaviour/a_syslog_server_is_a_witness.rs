//! Debian's rsyslog, started by the test, as the audit log's witness: it takes the
//! gateway's RFC 5424 messages over TCP (and over TLS with client certificates), files
//! them, and `audit verify --witness` proves the log against its file: a log cut after
//! its last checkpoint fails, and with `records = "all"` even a last record cut alone. A
//! syslog server that goes away shows in `/healthz` and `check`, and gets every
//! checkpoint once it is back.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::text;
use serde_json::{Value, json};

/// An rsyslogd of its own, listening on loopback, writing what it takes to `out` as
/// `FACILITY APP-NAME MSGID MSG` lines.
struct Rsyslog {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rsyslogd() -> PathBuf {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("rsyslogd: install Debian's `rsyslog` and `rsyslog-gnutls` (`.ci/run` does)")
}

impl Rsyslog {
    /// Start on `port` (0: any) in `dir`; with `tls`, on TLS asking for a client
    /// certificate signed by `dir/ca.pem`.
    fn start(dir: &Path, port: u16, tls: bool) -> Self {
        let d = dir.display();
        let _ = std::fs::remove_file(dir.join("port"));
        let driver = match tls {
            true => format!(
                " DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{d}/ca.pem\" DefaultNetstreamDriverCertFile=\"{d}/server.pem\" DefaultNetstreamDriverKeyFile=\"{d}/server.key\""
            ),
            false => String::new(),
        };
        let module = match tls {
            true => {
                "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"x509/certvalid\")"
            }
            false => "module(load=\"imtcp\")",
        };
        let conf = format!(
            "global(workDirectory=\"{d}\" maxMessageSize=\"64k\"{driver})\n{module}\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" listenPortFileName=\"{d}/port\")\n\
             template(name=\"w\" type=\"string\" string=\"%syslogfacility-text% %app-name% %msgid% %msg%\\n\")\n\
             action(type=\"omfile\" file=\"{d}/out.log\" template=\"w\")\n"
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let mut child = Command::new(rsyslogd())
            .args(["-n", "-f"])
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The port file is written for a port chosen by rsyslog; a given one is polled.
        for _ in 0..100 {
            let bound = match port {
                0 => std::fs::read_to_string(dir.join("port"))
                    .ok()
                    .and_then(|p| p.trim().parse().ok()),
                _ => std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|_| port),
            };
            if let Some(port) = bound {
                return Self {
                    child,
                    port,
                    out: dir.join("out.log"),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("rsyslogd did not start: see {d}/rsyslog.conf");
    }

    fn stop(mut self) {
        common::sigterm(self.child.id());
        self.child.wait().unwrap();
    }

    /// The lines it filed, once `enough` says so (rsyslog files asynchronously).
    async fn filed(&self, enough: impl Fn(&[String]) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        for _ in 0..200 {
            lines = std::fs::read_to_string(&self.out)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect();
            if enough(&lines) {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rsyslog filed only {lines:?}");
    }
}

/// A CA, a server certificate for `localhost` and a client certificate signed by it, and
/// another CA that signed neither, made with openssl.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    for ca in ["ca", "other-ca"] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
        ]);
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for who in ["server", "client"] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{who}.key"),
            "-out",
            &format!("{who}.csr"),
            "-subj",
            &format!("/CN={who}"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{who}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{who}.ext"),
        ]);
    }
}

/// `n` echo calls through the gateway at `endpoint`.
async fn calls(endpoint: &str, n: usize) {
    use rmcp::ServiceExt;
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(endpoint.to_string());
    let client = ().serve(transport).await.unwrap();
    for i in 0..n {
        let said = format!("witnessed {i}");
        let args = json!({"text": said}).as_object().unwrap().clone();
        let params = rmcp::model::CallToolRequestParams::new("demo_echo").with_arguments(args);
        assert_eq!(text(&client.peer().call_tool(params).await.unwrap()), said);
    }
    client.cancel().await.unwrap();
}

async fn verify_against(log: &Path, witness: &Path) -> (bool, String) {
    common::run_exe_async(&[
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--witness",
        witness.to_str().unwrap(),
    ])
    .await
}

/// Keep the log's first `n` lines: a tail cut off whole.
fn cut_to(log: &Path, n: usize) {
    let text = std::fs::read_to_string(log).unwrap();
    let kept: String = text.split_inclusive('\n').take(n).collect();
    std::fs::write(log, kept).unwrap();
}

async fn health(admin: &str) -> Value {
    let body = reqwest::get(format!("{admin}/healthz")).await.unwrap();
    body.json().await.unwrap()
}

/// Poll `/healthz` until `wanted` holds of its one witness.
async fn witness_health(admin: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = health(admin).await;
        if wanted(&last["audit"]["witnesses"][0]) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/healthz never showed it: {last}");
}

fn checkpoints(log: &Path) -> Vec<String> {
    common::read_lines(log)
        .into_iter()
        .filter(|r| r["kind"] == "checkpoint")
        .map(|r| r["hash"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn rsyslog_takes_every_checkpoint_even_across_its_own_restart_and_catches_a_cut_log() {
    let dir = tempfile::tempdir().unwrap();
    let syslog_dir = dir.path().join("rsyslog");
    std::fs::create_dir(&syslog_dir).unwrap();
    let rsyslog = Rsyslog::start(&syslog_dir, 0, false);
    let port = rsyslog.port;
    let setup = common::Setup {
        config_extra: format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[[witness]]\nsyslog = \"tcp://127.0.0.1:{port}\"\n"
        ),
        ..common::Setup::default()
    };
    let config = common::write_setup(dir.path(), &setup);
    let (mut gateway, endpoint, admin) = common::serve_exe(&config).await;
    calls(&endpoint, 3).await;
    let filed = rsyslog.filed(|l| !l.is_empty()).await;
    // rsyslog parsed each as RFC 5424: facility, APP-NAME and MSGID, the checkpoint as MSG.
    for line in &filed {
        let record = line
            .strip_prefix("auth mcp-warden checkpoint {")
            .unwrap_or_else(|| panic!("{line}"));
        assert!(record.starts_with("\"kind\":\"checkpoint\""), "{line}");
    }
    let up = witness_health(&admin, |w| w["delivered"].as_u64() > Some(0)).await;
    assert_eq!(up["status"], "ok", "{up}");
    assert_eq!(
        up["audit"]["witnesses"][0]["sink"],
        format!("syslog tcp://127.0.0.1:{port}")
    );

    // The server goes away: the next checkpoint cannot be sent, and health says so.
    rsyslog.stop();
    calls(&endpoint, 2).await;
    let down = witness_health(&admin, |w| w.get("failing_since").is_some()).await;
    assert_eq!(down["status"], "degraded", "{down}");
    let error = down["audit"]["witnesses"][0]["error"].as_str().unwrap();
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    let (ok, report) =
        common::run_exe_async(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(
        report.contains(&format!(
            "witness `syslog tcp://127.0.0.1:{port}` cannot be reached"
        )),
        "{ok} {report}"
    );

    // Back on the same port: what waited is delivered and health is clear again.
    let rsyslog = Rsyslog::start(&syslog_dir, port, false);
    let back = witness_health(&admin, |w| {
        w.get("failing_since").is_none() && w["queued"] == 0
    })
    .await;
    assert_eq!(back["status"], "ok", "{back}");
    common::sigterm(gateway.id().unwrap());
    assert!(gateway.wait().await.unwrap().success());

    let log = dir.path().join("audit.jsonl");
    let written = checkpoints(&log);
    let filed = rsyslog.filed(|l| l.len() == written.len()).await;
    let received: Vec<String> = filed
        .iter()
        .map(|l| {
            let record: Value = serde_json::from_str(&l[l.find('{').unwrap()..]).unwrap();
            record["hash"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(received, written, "every checkpoint, once, in order");

    let (ok, report) = verify_against(&log, &rsyslog.out).await;
    assert!(
        ok && report.contains(&format!("all {} checkpoints", written.len())),
        "{report}"
    );
    // Cut from the last checkpoint on: the chain is whole, the witness knows better.
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    cut_to(&log, lines - 1);
    let (ok, report) = common::run_exe_async(&["audit", "verify", log.to_str().unwrap()]).await;
    assert!(ok, "the cut log agrees with itself: {report}");
    let (ok, report) = verify_against(&log, &rsyslog.out).await;
    assert!(!ok && report.contains("the log was cut"), "{report}");
}

#[tokio::test]
async fn every_record_reaches_rsyslog_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let syslog_dir = dir.path().join("rsyslog");
    std::fs::create_dir(&syslog_dir).unwrap();
    certificates(&syslog_dir);
    let rsyslog = Rsyslog::start(&syslog_dir, 0, true);
    let d = syslog_dir.display();
    let witness = |ca: &str| {
        format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n\n[[witness]]\nsyslog = \"tls://localhost:{}\"\nca = \"{d}/{ca}\"\ncert = \"{d}/client.pem\"\nkey = \"{d}/client.key\"\nfacility = \"local4\"\nrecords = \"all\"\n",
            rsyslog.port
        )
    };
    // A server whose certificate the configured CA did not sign is refused.
    let other = tempfile::tempdir().unwrap();
    let setup = common::Setup {
        config_extra: witness("other-ca.pem"),
        ..common::Setup::default()
    };
    let config = common::write_setup(other.path(), &setup);
    let (_, report) = common::run_exe_async(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(
        report.contains("cannot be reached") && report.contains("TLS"),
        "{report}"
    );

    let setup = common::Setup {
        config_extra: witness("ca.pem"),
        ..common::Setup::default()
    };
    let config = common::write_setup(dir.path(), &setup);
    let (mut gateway, endpoint, _) = common::serve_exe(&config).await;
    calls(&endpoint, 4).await;
    common::sigterm(gateway.id().unwrap());
    assert!(gateway.wait().await.unwrap().success());

    let log = dir.path().join("audit.jsonl");
    let written = std::fs::read_to_string(&log).unwrap();
    let n = written.lines().count();
    let filed = rsyslog.filed(|l| l.len() == n).await;
    for (line, record) in filed.iter().zip(written.lines()) {
        let msgid = match record.starts_with("{\"kind\":\"checkpoint\"") {
            true => "checkpoint",
            false => "record",
        };
        assert_eq!(*line, format!("local4 mcp-warden {msgid} {record}"));
    }
    let (ok, report) = verify_against(&log, &rsyslog.out).await;
    assert!(
        ok && report.contains(&format!("vouches for the first {n} records")),
        "{report}"
    );
    // With every record witnessed, cutting the last one alone (its checkpoint) is caught.
    cut_to(&log, n - 1);
    let (ok, report) = verify_against(&log, &rsyslog.out).await;
    assert!(!ok && report.contains("the log was cut"), "{report}");
    // And so is a record the log no longer holds anywhere: an outcome before the end.
    std::fs::write(&log, &written).unwrap();
    let records: Vec<&str> = written.lines().collect();
    let outcome = records
        .iter()
        .position(|r| r.contains("\"kind\":\"outcome\""))
        .unwrap();
    cut_to(&log, outcome);
    let (ok, report) = verify_against(&log, &rsyslog.out).await;
    assert!(
        !ok && report.contains("the log lacks a record the witness received"),
        "{report}"
    );
}
