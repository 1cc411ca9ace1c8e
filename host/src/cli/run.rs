//! `fvhost run`: ingest until SIGTERM or Ctrl-C, then drain, commit and exit.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::RepoArgs;
use crate::control::{Host, HostOptions, SINGLE_TENANT, TenantSpec};
use crate::pipeline::StreamSettings;
use crate::server::admin::Admin;
use crate::server::auth::AdminAuth;
use crate::tenancy::HostConfig;
use crate::transform::Limits;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// A host configuration listing tenants (their repos, limits and admin
    /// credentials), instead of one repo.
    #[arg(long, short = 'c', conflicts_with = "repo")]
    pub config: Option<std::path::PathBuf>,
    /// Kafka bootstrap servers for every Kafka source, instead of the repo's.
    #[arg(long, env = "FVHOST_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,
    /// Redis URL of the online store, instead of the repo's connection_string.
    #[arg(long, env = "FVHOST_REDIS_URL")]
    pub redis: Option<String>,
    /// Replicas that must hold each batch's online writes (Redis `WAIT`)
    /// before its offsets are committed: a failover then loses no committed
    /// write. 0 (the default) does not wait.
    #[arg(long, default_value_t = 0, env = "FVHOST_WAIT_FOR_REPLICAS")]
    pub wait_for_replicas: u32,
    /// Most messages per batch.
    #[arg(long, default_value_t = 8192)]
    pub max_batch: usize,
    /// Milliseconds a batch waits for more messages after its first.
    #[arg(long, default_value_t = 100)]
    pub linger_ms: u64,
    /// Address of the admin API (deploy, rollback, status); 127.0.0.1:6570
    /// unless host.yaml's `admin.listen` says otherwise.
    #[arg(long, env = "FVHOST_ADMIN")]
    pub admin: Option<std::net::SocketAddr>,
    /// Run without the admin API.
    #[arg(long)]
    pub no_admin: bool,
    /// Apply each repo again when its files change (definitions or the
    /// modules its views name), as `fvhost apply --live` does.
    #[arg(long)]
    pub watch: bool,
}

/// The tenants to run and who may manage them.
struct Tenancy {
    tenants: Vec<TenantSpec>,
    auth: AdminAuth,
    admin: std::net::SocketAddr,
}

fn tenancy(args: &RunArgs) -> anyhow::Result<Tenancy> {
    let default_admin = || {
        crate::tenancy::config::DEFAULT_ADMIN
            .parse()
            .expect("the default admin address parses")
    };
    let Some(path) = &args.config else {
        let admin = args.admin.unwrap_or_else(default_admin);
        if !admin.ip().is_loopback() && !args.no_admin {
            anyhow::bail!(
                "the admin API of a host run with -r has no credentials, so it listens on loopback only ({admin} is not); run with --config host.yaml to give it tokens"
            );
        }
        let repo = args.repo.load()?;
        return Ok(Tenancy {
            tenants: vec![TenantSpec {
                name: SINGLE_TENANT.to_string(),
                repo,
                limits: Limits::default(),
            }],
            auth: AdminAuth::open(),
            admin,
        });
    };
    let config = HostConfig::load(path)?;
    for warning in &config.warnings {
        tracing::warn!("{}: {warning}", path.display());
    }
    let auth = AdminAuth::from_config(&config);
    Ok(Tenancy {
        admin: args.admin.unwrap_or(config.admin.listen),
        auth,
        tenants: config
            .tenants
            .into_iter()
            .map(|t| TenantSpec {
                name: t.name,
                repo: t.repo,
                limits: t.limits,
            })
            .collect(),
    })
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let Tenancy {
        tenants,
        auth,
        admin,
    } = tenancy(&args)?;
    let options = HostOptions {
        kafka_bootstrap: args.kafka_bootstrap,
        redis_url: args.redis,
        replica_wait: crate::online::ReplicaWait::for_replicas(args.wait_for_replicas),
        stream: StreamSettings {
            max_batch: args.max_batch.max(1),
            linger: Duration::from_millis(args.linger_ms),
            ..StreamSettings::default()
        },
        ..HostOptions::default()
    };
    let (stop, shutdown) = watch::channel(false);
    let host = Host::start_tenants(tenants, &options, shutdown.clone()).await?;
    if args.watch {
        for deployer in host.deployers().into_values() {
            crate::control::repo_watch::spawn(deployer, shutdown.clone());
        }
    }
    if !args.no_admin {
        let mut admin_shutdown = shutdown.clone();
        let stopped = async move {
            let _ = admin_shutdown.wait_for(|stop| *stop).await;
        };
        let listener =
            crate::server::admin::serve(Admin::new(host.deployers(), auth), admin, stopped);
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
