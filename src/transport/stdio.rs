//! The stdio transport, with the same strict edge as HTTP: each line from the client is
//! checked (`jsonrpc::check`) before the MCP service sees it, and a malformed one is
//! answered on stdout with the JSON-RPC error it deserves (`-32700`, `-32600`, `-32602`,
//! with the request's id when it can be read), logged and audited, never forwarded. A
//! line longer than [`MAX_LINE`] is refused the same way instead of being dropped (the
//! caller would wait for ever). Lines out are written whole, one writer at a time.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::jsonrpc::{self, Refusal};
use super::refusals::{Refusals, Refused, Via};
use crate::config::IdentityConfig;

/// The longest message taken from a client over stdio.
pub const MAX_LINE: usize = super::MAX_BODY_BYTES;

#[expect(
    clippy::disallowed_types,
    reason = "writing one whole line to stdout is a sequence with awaits that must run alone"
)]
type Out<W> = Arc<tokio::sync::Mutex<W>>;

pub struct StdioEdge<R, W> {
    reader: BufReader<R>,
    out: Out<W>,
    refusals: Arc<Refusals>,
    session: String,
    identity: IdentityConfig,
}

/// A line read, or one too long (skipped to its end).
enum Line {
    Text(Vec<u8>),
    TooLong,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> StdioEdge<R, W> {
    #[expect(
        clippy::disallowed_types,
        reason = "writing one whole line to stdout is a sequence with awaits that must run alone"
    )]
    pub fn new(
        (read, write): (R, W),
        refusals: Arc<Refusals>,
        session: String,
        identity: IdentityConfig,
    ) -> Self {
        Self {
            reader: BufReader::new(read),
            out: Arc::new(tokio::sync::Mutex::new(write)),
            refusals,
            session,
            identity,
        }
    }

    /// Answer a malformed line: the error on stdout, a log line and an audit record.
    fn refuse(&self, refusal: Refusal) -> impl Future<Output = ()> + Send + 'static
    where
        W: Send + 'static,
    {
        let (out, refusals) = (self.out.clone(), self.refusals.clone());
        let (session, identity) = (self.session.clone(), self.identity.clone());
        async move {
            tracing::info!(code = refusal.code, error = %crate::escape::visible(&refusal.message), "a JSON-RPC message refused on stdio");
            let answer = serde_json::json!({
                "jsonrpc": "2.0",
                "id": refusal.id,
                "error": {"code": refusal.code, "message": refusal.message},
            });
            let _ = write_line(&out, &answer).await;
            refusals
                .record(Refused {
                    via: Via::Stdio {
                        session: &session,
                        agent: &identity.agent,
                        on_behalf_of: identity.on_behalf_of.as_deref(),
                    },
                    error: &refusal.message,
                    caller: None,
                })
                .await;
        }
    }
}

/// Read one line of at most [`MAX_LINE`] bytes; `None` at the end of input.
async fn next_line(reader: &mut (impl AsyncBufRead + Unpin)) -> std::io::Result<Option<Line>> {
    let (mut line, mut too_long) = (Vec::new(), false);
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match (line.is_empty(), too_long) {
                (_, true) => Some(Line::TooLong),
                (true, false) => None,
                (false, false) => Some(Line::Text(line)),
            });
        }
        let (chunk, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(at) => (buf.get(..at).unwrap_or_default(), Some(at + 1)),
            None => (buf, None),
        };
        if !too_long && line.len() + chunk.len() <= MAX_LINE {
            line.extend_from_slice(chunk);
        } else {
            too_long = true;
            line = Vec::new();
        }
        let used = end.unwrap_or(buf.len());
        reader.consume(used);
        if end.is_some() {
            return Ok(Some(match too_long {
                true => Line::TooLong,
                false => Line::Text(line),
            }));
        }
    }
}

async fn write_line<W: AsyncWrite + Unpin>(
    out: &Out<W>,
    message: &impl serde::Serialize,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let mut out = out.lock().await;
    out.write_all(&bytes).await?;
    out.flush().await
}

impl<R, W> Transport<RoleServer> for StdioEdge<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let out = self.out.clone();
        async move { write_line(&out, &item).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let line = match next_line(&mut self.reader).await {
                Ok(Some(Line::Text(line))) => line,
                Ok(Some(Line::TooLong)) => {
                    let message = format!("invalid request: the message is over {MAX_LINE} bytes");
                    self.refuse(Refusal::invalid(&message)).await;
                    continue;
                }
                Ok(None) | Err(_) => return None,
            };
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match jsonrpc::check(line) {
                Err(refusal) => self.refuse(refusal).await,
                Ok(id) => match serde_json::from_slice(line) {
                    Ok(message) => return Some(message),
                    Err(e) => {
                        let id = id.map_or(Value::Null, |i| i.to_value());
                        let refusal = Refusal::with_id(-32600, format!("invalid request: {e}"), id);
                        self.refuse(refusal).await;
                    }
                },
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.out.lock().await.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8]) -> Vec<&'static str> {
        let mut reader = BufReader::with_capacity(16, input);
        let mut out = Vec::new();
        while let Some(line) = next_line(&mut reader).await.unwrap() {
            out.push(match line {
                Line::Text(t) => Box::leak(String::from_utf8(t).unwrap().into_boxed_str()) as &str,
                Line::TooLong => "<too long>",
            });
        }
        out
    }

    /// Lines are split however the reads fall; one over the limit is reported once and
    /// skipped to its end, and the next line is read whole.
    #[tokio::test]
    async fn lines_are_read_whole_and_a_line_too_long_is_skipped_and_reported() {
        assert_eq!(
            lines(b"{\"a\":1}\n\n{\"b\":2}").await,
            ["{\"a\":1}", "", "{\"b\":2}"]
        );
        let mut big = vec![b'x'; MAX_LINE + 10];
        big.extend_from_slice(b"\n{\"after\":true}\n");
        assert_eq!(lines(&big).await, ["<too long>", "{\"after\":true}"]);
    }
}
