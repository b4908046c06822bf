//! The TCP listener every HTTP server in the binary serves from: the MCP endpoint, the
//! admin listener and `demo-tools --http`. Each connection it accepts has Nagle's
//! algorithm off. An MCP answer over Streamable HTTP is several small writes (headers,
//! then each SSE event); with Nagle on, the second waits for the client's delayed ACK,
//! about 40 ms on Linux, so a client that keeps its connection open (every SDK client
//! does) waited that long for each call. The servers take only this type, so none can
//! be started on a listener without it. Outgoing HTTP (upstreams, JWKS, webhooks) goes
//! through reqwest, whose connections have Nagle off by default.

use std::net::SocketAddr;

use axum::serve::{Listener, ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

type Tapped = TapIo<TcpListener, fn(&mut TcpStream)>;

/// A bound TCP listener whose accepted connections are tuned for request/response
/// traffic on kept-alive connections.
pub struct HttpListener {
    inner: Tapped,
}

impl HttpListener {
    /// Bind `addr`.
    pub async fn bind(addr: impl ToSocketAddrs) -> std::io::Result<Self> {
        Ok(Self::from(TcpListener::bind(addr).await?))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Listener::local_addr(&self.inner)
    }
}

impl From<TcpListener> for HttpListener {
    fn from(listener: TcpListener) -> Self {
        Self {
            inner: listener.tap_io(tune as fn(&mut TcpStream)),
        }
    }
}

/// Nagle off: each write goes out at once.
fn tune(stream: &mut TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot turn Nagle's algorithm off on a connection");
    }
}

impl Listener for HttpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (TcpStream, SocketAddr)> + Send {
        self.inner.accept()
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Listener::local_addr(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let mut listener = HttpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        // The operating system's default is Nagle on, so this test means something.
        assert!(!client.nodelay().unwrap());
        let (accepted, _) = Listener::accept(&mut listener).await;
        assert!(accepted.nodelay().unwrap());
    }
}
