//! The `mcp-warden` binary: logging to stderr, then the command line in [`mcp_warden::cli`].

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use mcp_warden::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Diagnostics go to stderr: on the stdio transport stdout carries the protocol. rmcp
    // stays at `warn` because it logs whole requests, arguments included, at debug.
    // `check` prints its own report, so it shows only warnings (upstream chatter is info).
    let default = match cli.command {
        Command::Check { .. } => "warn",
        _ => "info,rmcp=warn",
    };
    let filter =
        EnvFilter::try_from_env("MCP_WARDEN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    mcp_warden::cli::run(cli).await
}
