//! The `outflow` binary: parses the command line, sets up logging and the
//! runtime, and turns errors into one `error:` line, a `hint:` and an exit
//! code (0 ok, 1 runtime failure, 2 usage or config error).

use std::io::IsTerminal;

use clap::Parser;
use outflow::cli::{dispatch, Cli};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: rows are allocated by the source's
/// tasks and freed on the sinks' threads, and glibc's per-thread arenas
/// turn that into lock contention (a `perf` profile of a 1M-row snapshot
/// had 17% of its time in malloc and free, partly waiting on arena locks).
/// Built without transparent huge pages (`no_thp`): with them, freed and
/// reused memory was zeroed again 2 MB at a time (13-17% of a snapshot's
/// time in the kernel's `clear_page`, and twice the peak RSS).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    // Both of rustls's crypto backends are in the build (the AWS SDK brings
    // aws-lc-rs): the libraries that take the process default (mysql_async)
    // get ring, as outflow's own TLS code does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // stderr gets what OUTFLOW_LOG lets through; the console keeps the
    // recent warnings and errors whatever it says.
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(EnvFilter::try_from_env("OUTFLOW_LOG").unwrap_or_else(|_| "info".into()));
    tracing_subscriber::registry().with(stderr).with(outflow::console::log_layer()).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Sink threads and the SQL connection task end with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    if let Err(e) = result {
        eprintln!("error: {}", e.message);
        if let Some(hint) = &e.hint {
            eprintln!("hint: {hint}");
        }
        std::process::exit(e.exit_code());
    }
}
