//! `fvhost run`: ingest until SIGTERM or Ctrl-C, then drain, commit and exit.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::RepoArgs;
use crate::pipeline::{Host, HostOptions, StreamSettings};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Kafka bootstrap servers for every Kafka source, instead of the repo's.
    #[arg(long, env = "FVHOST_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,
    /// Redis URL of the online store, instead of the repo's connection_string.
    #[arg(long, env = "FVHOST_REDIS_URL")]
    pub redis: Option<String>,
    /// Most messages per batch.
    #[arg(long, default_value_t = 8192)]
    pub max_batch: usize,
    /// Milliseconds a batch waits for more messages after its first.
    #[arg(long, default_value_t = 100)]
    pub linger_ms: u64,
    /// Address of the admin API (deploy, rollback, status); loopback by default.
    #[arg(long, default_value = "127.0.0.1:6570", env = "FVHOST_ADMIN")]
    pub admin: std::net::SocketAddr,
    /// Run without the admin API.
    #[arg(long)]
    pub no_admin: bool,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let repo = args.repo.load()?;
    let options = HostOptions {
        kafka_bootstrap: args.kafka_bootstrap,
        redis_url: args.redis,
        stream: StreamSettings {
            max_batch: args.max_batch.max(1),
            linger: Duration::from_millis(args.linger_ms),
            ..StreamSettings::default()
        },
        ..HostOptions::default()
    };
    let (stop, shutdown) = watch::channel(false);
    let host = Host::start(&repo, &options, shutdown.clone()).await?;
    if !args.no_admin {
        let mut admin_shutdown = shutdown.clone();
        let stopped = async move {
            let _ = admin_shutdown.wait_for(|stop| *stop).await;
        };
        let listener = crate::server::admin::serve(
            host.deployer(),
            options.limits.module_bytes,
            args.admin,
            stopped,
        );
        tokio::spawn(async move {
            if let Err(e) = listener.await {
                tracing::error!("admin API stopped: {e:#}");
            }
        });
    }
    tokio::spawn(async move {
        if let Err(e) = stop_signal().await {
            tracing::error!("cannot listen for stop signals: {e}");
            return;
        }
        tracing::info!("stop requested: finishing the batch in hand, then committing");
        let _ = stop.send(true);
    });
    let reports = host.wait().await;
    let mut failed = false;
    for report in &reports {
        failed |= report.error.is_some();
        println!(
            "{}",
            serde_json::to_string(report).context("encoding the view report")?
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Resolves on SIGTERM or SIGINT.
pub(super) async fn stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
