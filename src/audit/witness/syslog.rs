//! A syslog server as the witness: each line is one RFC 5424 message (APP-NAME
//! `mcp-warden`, MSGID `checkpoint` or `record`, the line as MSG), framed by octet counting
//! (RFC 6587 §3.4.1) on one TCP connection kept open, in TLS when configured (RFC 5425).
//! Plain syslog has no acknowledgement: a message counts as delivered once written. A
//! connection the server has closed is noticed before writing (a syslog server never
//! sends, so anything readable means it is gone) and opened again.

use std::io::{ErrorKind, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::config::{SyslogConfig, SyslogTls};

/// How long connecting, the TLS handshake and each write may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Severity of every message: informational (RFC 5424 §6.2.1).
const SEVERITY: u8 = 6;

pub struct Syslog {
    config: SyslogConfig,
    tls: Option<Arc<ClientConfig>>,
    conn: Option<Conn>,
    hostname: String,
    pid: u32,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    fn socket(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(bytes).and_then(|()| s.flush()),
            Conn::Tls(s) => s.write_all(bytes).and_then(|()| s.flush()),
        }
    }

    /// Whether the server has closed the connection (or sent anything, which a syslog
    /// server never does but to close it: a TLS alert).
    fn closed(&self) -> bool {
        let socket = self.socket();
        if socket.set_nonblocking(true).is_err() {
            return true;
        }
        let closed =
            !matches!(socket.peek(&mut [0u8; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock);
        closed || socket.set_nonblocking(false).is_err()
    }
}

impl Syslog {
    /// A sender for `config`; its TLS trust and client certificate are read now, so a
    /// missing or bad file stops the start, not the first checkpoint.
    pub fn new(config: &SyslogConfig) -> Result<Self, String> {
        let tls = config.tls.as_ref().map(client_config).transpose()?;
        Ok(Self {
            config: config.clone(),
            tls,
            conn: None,
            hostname: hostname(),
            pid: std::process::id(),
        })
    }

    /// Send `lines` (each ending with a newline) as one message each, in one write.
    pub fn deliver(&mut self, lines: &[&[u8]]) -> Result<(), String> {
        // Every message of one delivery has the same header but for its MSGID.
        let [checkpoint, record] = ["checkpoint", "record"].map(|msgid| self.header(msgid));
        let size: usize = lines.iter().map(|l| l.len() + record.len() + 8).sum();
        let mut frames = Vec::with_capacity(size);
        for line in lines {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let header = match body.starts_with(b"{\"kind\":\"checkpoint\"") {
                true => &checkpoint,
                false => &record,
            };
            let len = header.len() + body.len();
            frames.extend_from_slice(len.to_string().as_bytes());
            frames.push(b' ');
            frames.extend_from_slice(header);
            frames.extend_from_slice(body);
        }
        if self.conn.as_ref().is_some_and(Conn::closed) {
            self.conn = None;
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.connect()?),
        };
        conn.send(&frames).map_err(|e| {
            self.conn = None;
            format!("cannot write to the syslog server: {e}")
        })
    }

    /// An RFC 5424 message's header, up to its MSG:
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD `.
    fn header(&self, msgid: &str) -> Vec<u8> {
        let pri = u16::from(self.config.facility) * 8 + u16::from(SEVERITY);
        let ts = humantime::format_rfc3339_micros(SystemTime::now());
        format!(
            "<{pri}>1 {ts} {} mcp-warden {} {msgid} - ",
            self.hostname, self.pid
        )
        .into_bytes()
    }

    /// Connect (and shake hands) without sending anything.
    pub fn probe(&self) -> Result<(), String> {
        self.connect().map(drop)
    }

    fn connect(&self) -> Result<Conn, String> {
        let (host, port) = (self.config.host.as_str(), self.config.port);
        let fail = |e: &dyn std::fmt::Display| {
            format!("cannot reach the syslog server {host}:{port}: {e}")
        };
        let addrs = (host, port).to_socket_addrs().map_err(|e| fail(&e))?;
        let mut last = None;
        let socket = addrs
            .into_iter()
            .find_map(|addr| {
                TcpStream::connect_timeout(&addr, TIMEOUT)
                    .map_err(|e| last = Some(e))
                    .ok()
            })
            .ok_or_else(|| match last {
                Some(e) => fail(&e),
                None => fail(&"the name has no address"),
            })?;
        socket.set_nodelay(true).map_err(|e| fail(&e))?;
        socket
            .set_write_timeout(Some(TIMEOUT))
            .map_err(|e| fail(&e))?;
        socket
            .set_read_timeout(Some(TIMEOUT))
            .map_err(|e| fail(&e))?;
        let Some(tls) = &self.tls else {
            return Ok(Conn::Plain(socket));
        };
        let name = ServerName::try_from(host.to_string()).map_err(|e| fail(&e))?;
        let session = ClientConnection::new(tls.clone(), name).map_err(|e| fail(&e))?;
        let mut stream = StreamOwned::new(session, socket);
        // The handshake now, so that a certificate the server is refused for says so here.
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| fail(&format!("TLS: {e}")))?;
        }
        Ok(Conn::Tls(Box::new(stream)))
    }
}

/// The TLS client: the given CA certificates (or the system's), and a client certificate
/// when one is configured.
fn client_config(tls: &SyslogTls) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let certs = read_certs(ca)?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("`{}` holds no usable CA certificate", ca.display()));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(
                    "the system has no CA certificates: give the syslog witness `ca = \"…\"`"
                        .into(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match &tls.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read the private key `{}`: {e}", key.display()))?;
            builder
                .with_client_auth_cert(read_certs(cert)?, key)
                .map_err(|e| format!("`{}`: {e}", cert.display()))?
        }
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bad = |e: &dyn std::fmt::Display| {
        format!("cannot read the certificates `{}`: {e}", path.display())
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    match certs.is_empty() {
        true => Err(bad(&"no certificate in it")),
        false => Ok(certs),
    }
}

/// This machine's name as RFC 5424 allows it (printable ASCII, at most 255), or `-`.
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    match name.is_empty() {
        true => "-".into(),
        false => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    fn plain(port: u16, facility: u8) -> Syslog {
        Syslog::new(&SyslogConfig {
            host: "127.0.0.1".into(),
            port,
            tls: None,
            facility,
        })
        .unwrap()
    }

    /// Read one octet-counted frame.
    fn frame(reader: &mut impl BufRead) -> String {
        let mut len = Vec::new();
        reader.read_until(b' ', &mut len).unwrap();
        let len: usize = std::str::from_utf8(&len).unwrap().trim().parse().unwrap();
        let mut message = vec![0; len];
        reader.read_exact(&mut message).unwrap();
        String::from_utf8(message).unwrap()
    }

    #[test]
    fn each_line_is_one_octet_counted_rfc_5424_message() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut syslog = plain(listener.local_addr().unwrap().port(), 10);
        let checkpoint = b"{\"kind\":\"checkpoint\",\"count\":2,\"n\":\"\xc3\xa9\"}\n";
        let record = b"{\"kind\":\"attempt\",\"tool\":\"x\"}\n";
        syslog.deliver(&[checkpoint, record]).unwrap();
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let first = frame(&mut reader);
        let second = frame(&mut reader);
        // authpriv (10) × 8 + informational (6)
        assert!(first.starts_with("<86>1 "), "{first}");
        let fields: Vec<&str> = first.splitn(8, ' ').collect();
        assert!(humantime::parse_rfc3339(fields[1]).is_ok(), "{first}");
        assert_eq!(fields[2], hostname());
        assert_eq!(
            fields[3..7],
            [
                "mcp-warden",
                &std::process::id().to_string(),
                "checkpoint",
                "-"
            ]
        );
        assert_eq!(fields[7].as_bytes(), &checkpoint[..checkpoint.len() - 1]);
        assert!(
            second.contains(" record - {\"kind\":\"attempt\""),
            "{second}"
        );
    }

    /// A server that closed the connection (restarted) is connected to again, and the
    /// message written after that reaches the new connection, not the dead one.
    #[test]
    fn a_closed_connection_is_opened_again_before_writing() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut syslog = plain(listener.local_addr().unwrap().port(), 4);
        syslog.deliver(&[b"{\"n\":1}\n"]).unwrap();
        let (first, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(first);
        assert!(frame(&mut reader).ends_with("{\"n\":1}"));
        drop(reader);
        std::thread::sleep(Duration::from_millis(100));
        syslog.deliver(&[b"{\"n\":2}\n"]).unwrap();
        let (second, _) = listener.accept().unwrap();
        assert!(frame(&mut BufReader::new(second)).ends_with("{\"n\":2}"));
    }

    #[test]
    fn an_unreachable_server_or_a_missing_ca_file_is_an_error_that_names_it() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = plain(port, 4).deliver(&[b"{}\n"]).unwrap_err();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        let tls = SyslogTls {
            ca: Some("/nonexistent/ca.pem".into()),
            client: None,
        };
        let config = SyslogConfig {
            host: "localhost".into(),
            port,
            tls: Some(tls),
            facility: 4,
        };
        let err = Syslog::new(&config).err().unwrap();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
