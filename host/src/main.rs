//! The `fvhost` command line.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = fvhost::cli::Cli::parse();
    fvhost::cli::init_logging(cli.verbose, cli.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.worker_threads() {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fvhost: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fvhost::cli::execute(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fvhost: {e:#}");
            ExitCode::FAILURE
        }
    }
}
