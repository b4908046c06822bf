//! The `mcp-warden` binary: logging to stderr, then the command line in [`mcp_warden::cli`].

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use mcp_warden::cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// mimalloc: the gateway allocates and frees small buffers on every call, often on another
/// thread than the one that allocated them (the audit writer frees what a runtime thread
/// built); glibc's allocator then serialises on its arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in its `mimalloc.h`, v3), and
/// its default there, in milliseconds.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_PURGE_DELAY_DEFAULT: std::ffi::c_long = 1000;

/// Give memory freed by the allocator back to the system at once instead of a second
/// later. The delay only pays off for a program that frees and reallocates whole pages
/// in bursts; the gateway's calls reuse small blocks, and with the delay the memory used
/// while starting (configuration, policy, schemas) stayed resident for good, because an
/// idle gateway makes no allocator call that would purge it (2 MB of 25 at idle, and no
/// difference in calls/s measured with wrk over HTTP, 1 and 8 connections). Only an
/// option that still
/// holds the documented default is changed, so a renumbered option is left alone.
#[allow(unsafe_code)]
fn purge_freed_memory_at_once() {
    // SAFETY: both functions only read or store one integer in mimalloc's option table;
    // they are called before any other thread exists.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

/// Runtime threads: `MCP_WARDEN_THREADS`, or half the cores (at least one). The other half
/// is left to the tool servers the gateway starts as child processes, to the audit
/// writer and to the clients on the same machine: on a small machine a second runtime
/// thread mostly wakes up to find the first one already did the work.
fn runtime_threads() -> usize {
    if let Ok(value) = std::env::var("MCP_WARDEN_THREADS") {
        match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => return n,
            _ => tracing::warn!(
                "MCP_WARDEN_THREADS={value:?} is not a positive whole number; using half the cores"
            ),
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores / 2).max(1)
}

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    let cli = Cli::parse();
    // Diagnostics go to stderr (with credentials masked: an upstream's stderr is logged
    // too): on the stdio transport stdout carries the protocol. rmcp
    // stays at `warn` because it logs whole requests, arguments included, at debug.
    // `check` prints its own report, so it shows only warnings (upstream chatter is info).
    let default = match cli.command {
        Command::Check { .. } => "warn",
        _ => "info,rmcp=warn",
    };
    let filter =
        || EnvFilter::try_from_env("MCP_WARDEN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let json = matches!(
        &cli.command,
        Command::Serve {
            log_format: LogFormat::Json,
            ..
        }
    );
    // Spans go out over OTLP when `serve` has an endpoint (config or environment), from
    // a task on the runtime that sends what is left when `serve` ends.
    let (export, export_error) = match mcp_warden::cli::span_export(&cli) {
        Ok(export) => (export, None),
        Err(e) => (None, Some(e)),
    };
    let writer = || mcp_warden::secrets::Masked(std::io::stderr());
    let text = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .with_filter(filter())
    });
    let lines = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .with_filter(filter())
    });
    tracing_subscriber::registry().with(text).with(lines).init();
    if let Some(e) = export_error {
        tracing::error!("spans are not exported: {e}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(runtime_threads())
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => {
            tracing::debug!("{} runtime threads", runtime.metrics().num_workers());
            let code = runtime.block_on(run_exporting(cli, export));
            drop(runtime);
            code
        }
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run the command, sending spans to `export` (when set) from a task on the runtime,
/// and what is left of them when the command ends.
async fn run_exporting(cli: Cli, export: Option<mcp_warden::telemetry::trace::Otlp>) -> ExitCode {
    let exporter = match export.map(|o| mcp_warden::telemetry::trace::start(&o)) {
        Some(Ok(e)) => Some(e),
        Some(Err(e)) => {
            tracing::error!("spans are not exported: {e}");
            None
        }
        None => None,
    };
    let code = mcp_warden::cli::run(cli).await;
    if let Some(exporter) = exporter {
        exporter.shutdown().await;
    }
    code
}
