//! The `fvhost` commands: `apply`, `run`, `materialize`, `materialize-incremental`,
//! `push`, `serve`, `get-online-features`, `deploy`, `rollback`, `status`,
//! `dead-letters`, `quickstart`, `build`, `new`, `test-transform`. Each parses its arguments and drives the
//! library; none holds logic of its own beyond printing.

mod admin;
mod apply;
mod build;
mod dead_letters;
mod get;
mod materialize;
mod new;
mod push;
mod quickstart;
mod run;
mod serve;
mod test_transform;
mod top;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Stream ingestion for Feast feature stores: Kafka in, WebAssembly
/// transforms, Redis out in Feast's layout.
#[derive(Debug, Parser)]
#[command(name = "fvhost", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How log lines are written to stderr: `text`, or `json` (one object
    /// per line, the event's fields at the top level, for log shippers).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "FVHOST_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a feature repo: definitions, modules, and each module's output on a probe batch.
    Apply(apply::ApplyArgs),
    /// Consume the repo's stream feature views and write the online store until stopped.
    Run(run::RunArgs),
    /// Read online features, printed as Feast's feature server would return them.
    GetOnlineFeatures(get::GetArgs),
    /// Materialize the batch history of views over [START, END] into the online store.
    Materialize(materialize::MaterializeArgs),
    /// Materialize each view from where its last run ended up to END.
    MaterializeIncremental(materialize::IncrementalArgs),
    /// Push rows from a file to the views over a push source (online, offline or both).
    Push(push::PushArgs),
    /// Serve Feast's feature-server routes: POST /push, POST /get-online-features, GET /health.
    Serve(serve::ServeArgs),
    /// Deploy a transform module to a view of a running host (validated, then active from the next batch).
    Deploy(admin::DeployArgs),
    /// Roll a view of a running host back to its previous version.
    Rollback(admin::RollbackArgs),
    /// Show each view's active version and counters on a running host.
    Status(admin::StatusArgs),
    /// Watch a running host: views, rates, lag, freshness, dead letters, state, version; refreshed every second.
    Top(top::TopArgs),
    /// List a view's dead letters kept in Redis, or replay them to their topics.
    DeadLetters(dead_letters::DeadLettersArgs),
    /// Run the whole pipeline on this machine with a local broker and redis-server.
    Quickstart(quickstart::QuickstartArgs),
    /// Build a transform from its folder: Rust (cargo, wasm32-wasip2) or Python (componentize-py).
    Build(build::BuildArgs),
    /// Create a transform folder to start from (Python or Rust): the transform, its unit test, a repo entry.
    New(new::NewArgs),
    /// Run a transform module on sample events as the host would for a view (no Kafka, no Redis).
    TestTransform(test_transform::TestTransformArgs),
}

/// Options every command that touches a repo shares.
#[derive(Debug, clap::Args)]
pub struct RepoArgs {
    /// The feature repo folder (holding feature_store.yaml).
    #[arg(short = 'r', long = "repo", default_value = ".")]
    pub repo: PathBuf,
}

impl RepoArgs {
    /// Loads and validates the repo; an invalid one is an error listing every mistake.
    pub fn load(&self) -> anyhow::Result<crate::repo::FeatureRepo> {
        crate::repo::load(&self.repo).map_err(|e| {
            anyhow::anyhow!(
                "the feature repo in {} is invalid:\n{e}",
                self.repo.display()
            )
        })
    }
}

impl Cli {
    /// Worker threads of the async runtime, where the command sets them;
    /// `None`: one per core. `serve` answers requests on threads of its
    /// own (`serve --threads`): its runtime only accepts connections and
    /// watches the repo.
    pub fn worker_threads(&self) -> Option<usize> {
        match &self.command {
            Command::Serve(_) => Some(1),
            _ => None,
        }
    }
}

/// Runs the parsed command and returns the process exit code.
pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Apply(args) => apply::apply(args).await,
        Command::DeadLetters(args) => dead_letters::dead_letters(args).await,
        Command::Run(args) => run::run(args).await,
        Command::GetOnlineFeatures(args) => get::get(args).await,
        Command::Materialize(args) => materialize::materialize(args).await,
        Command::MaterializeIncremental(args) => materialize::materialize_incremental(args).await,
        Command::Push(args) => push::push(args).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Deploy(args) => admin::deploy(args).await,
        Command::Rollback(args) => admin::rollback(args).await,
        Command::Status(args) => admin::status(args).await,
        Command::Top(args) => top::top(args).await,
        Command::Quickstart(args) => quickstart::quickstart(args).await,
        Command::Build(args) => build::run(args),
        Command::New(args) => new::run(args),
        Command::TestTransform(args) => test_transform::run(args).await,
    }
}

/// Logs to stderr; `FVHOST_LOG` (or `RUST_LOG`) overrides the level with
/// `tracing`'s filter syntax (`info,fvhost::dead_letter=warn`).
pub fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("FVHOST_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| format!("{default},cranelift=warn,wasmtime=warn"));
    let filter = tracing_subscriber::EnvFilter::new(filter);
    let _ = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init(),
    };
}
