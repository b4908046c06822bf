//! Serves the conformance fixture (the tools, resources and prompts the MCP conformance
//! suite's server scenarios call) over Streamable HTTP, so the suite can be run against it
//! directly or through the gateway by hand:
//!
//! ```sh
//! cargo run --example conformance_fixture -- 127.0.0.1:9300
//! ```

#[path = "../tests/conformance/fixture.rs"]
mod fixture;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9300".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "conformance fixture at http://{}/mcp",
        listener.local_addr()?
    );
    fixture::serve(listener).await
}
