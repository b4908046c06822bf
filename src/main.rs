//! The `mcp-warden` binary: logging to stderr, then the command line in [`mcp_warden::cli`].

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    // Diagnostics go to stderr: on the stdio transport stdout carries the protocol. rmcp
    // stays at `warn` because it logs whole requests, arguments included, at debug.
    let filter = EnvFilter::try_from_env("MCP_WARDEN_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    mcp_warden::cli::run(mcp_warden::cli::Cli::parse()).await
}
