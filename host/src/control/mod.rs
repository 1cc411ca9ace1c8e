//! The control path: which views run, with which version, and how that
//! changes while the host runs.
//!
//! - [`registry`]: per running view, the active version and the ones before it;
//! - [`deploy`]: deploys, rollbacks and applies, validated before anything changes;
//! - [`starter`]: a view's consumer, dead-letter destination and loop, started;
//! - [`repo_watch`]: `run --watch`, a changed repo applied;
//! - this module: the [`Host`], tenants and their views' tasks.
//!
//! It drives [`crate::pipeline`] (the data path), never the other way round.

pub mod deploy;
pub mod registry;
pub mod repo_watch;
pub mod starter;

use crate::offline::files::WriteTarget;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::offline::log::{OfflineLog, Rotation};
use crate::online::OnlineConnection;
use crate::repo::FeatureRepo;
use crate::transform::cache::{ModuleCache, default_dir};
use crate::transform::{Limits, TransformEngine};
pub use deploy::Deployer;
use registry::Registry;
use starter::{ViewStarter, ViewTask};

use crate::pipeline::fairness::TransformSlots;
use crate::pipeline::{MetricsSnapshot, StreamSettings, ViewMetrics, ViewPipeline};

/// Settings of `fvhost run` beyond the repo itself.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Replaces every Kafka source's `kafka_bootstrap_servers`.
    pub kafka_bootstrap: Option<String>,
    /// Replaces the online store's connection string (a `redis://` URL).
    pub redis_url: Option<String>,
    pub limits: Limits,
    pub stream: StreamSettings,
    /// When offline log files are finished (and offsets committed).
    pub offline_rotation: Rotation,
    /// Where compiled modules are cached; `None` uses the default folder.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Replicas each online write waits for before its batch is committed.
    pub replica_wait: crate::online::ReplicaWait,
}

/// The consumer group of a view: views never share offsets.
pub fn group_id(project: &str, view: &str) -> String {
    format!("fvhost.{project}.{view}")
}

/// The offline log of a stream view: files in its batch source's folder,
/// or rows appended to its single file.
pub(crate) fn offline_log(
    repo: &FeatureRepo,
    view: &crate::repo::FeatureView,
    pipeline: &ViewPipeline,
    options: &HostOptions,
) -> anyhow::Result<OfflineLog> {
    let target = offline_log_target(repo, view, &pipeline.schema)
        .with_context(|| format!("view `{}`: offline log", view.name))?;
    Ok(OfflineLog::new(
        &target,
        &pipeline.schema,
        options.offline_rotation,
    ))
}

/// Where the offline log of `view` (rows of `schema`) goes, checked as
/// `run` needs it, so `apply` refuses what `run` would. A single-file batch
/// source takes the served rows only when they are the source's own kind of
/// row: the view has no transform (a transform's rows would be transformed
/// again by `materialize`) and its columns fit the file.
pub(crate) fn offline_log_target(
    repo: &FeatureRepo,
    view: &crate::repo::FeatureView,
    schema: &crate::transform::ViewSchema,
) -> anyhow::Result<WriteTarget> {
    let source = crate::pipeline::materialize::batch_source(repo, view)?;
    let crate::repo::SourceKind::File { path } = &source.kind else {
        anyhow::bail!("batch source `{}` is not a file source", source.name);
    };
    let target = crate::offline::files::write_target(&repo.root, path);
    let WriteTarget::SingleFile(file) = &target else {
        return Ok(target);
    };
    if view.transform.is_some() {
        anyhow::bail!(
            "batch source `{}` is the single file {}, and the view's transform serves rows of its own columns, which cannot join the source's rows in one file (materialize would transform them again); point the source's path at a folder or a glob, where the log's files are marked as served rows",
            source.name,
            file.display()
        );
    }
    if crate::offline::append::check_target(file)? {
        let file_schema = crate::offline::append::file_schema(file)?;
        let rows = crate::offline::log::log_schema(schema);
        crate::offline::append::check_fits(&rows, &file_schema).map_err(|e| {
            anyhow::anyhow!(
                "the served rows cannot be appended to batch source `{}` ({}): {e}",
                source.name,
                file.display()
            )
        })?;
    }
    Ok(target)
}

/// A running host: one task per stream view, views grouped by tenant; views
/// can be added while it runs.
pub struct Host {
    tenants: Vec<TenantHost>,
    new_tasks: mpsc::UnboundedReceiver<ViewTask>,
}

/// One tenant's part of a running host: its own views, registry, transform
/// slots and Redis connection.
struct TenantHost {
    name: String,
    starter: Arc<ViewStarter>,
    deployer: Arc<Deployer>,
}

/// What a tenant brings to [`Host::start_tenants`].
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub name: String,
    pub repo: FeatureRepo,
    pub limits: Limits,
}

/// The tenant of a host started from a single repo (`fvhost run -r REPO`).
pub const SINGLE_TENANT: &str = "default";

/// How one view ended, with its final counters.
#[derive(Debug, Serialize)]
pub struct ViewReport {
    pub tenant: String,
    pub view: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub metrics: MetricsSnapshot,
}

impl Host {
    /// Runs one repo's stream views, as the single tenant [`SINGLE_TENANT`].
    pub async fn start(
        repo: &FeatureRepo,
        options: &HostOptions,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let tenant = TenantSpec {
            name: SINGLE_TENANT.to_string(),
            repo: repo.clone(),
            limits: options.limits.clone(),
        };
        Self::start_tenants(vec![tenant], options, shutdown).await
    }

    /// Loads every tenant's stream views, connects each to its Redis and
    /// Kafka and starts the loops. `options.limits` is replaced by each
    /// tenant's own.
    pub async fn start_tenants(
        tenants: Vec<TenantSpec>,
        options: &HostOptions,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let metered = tenants.iter().any(|t| t.limits.fuel_per_batch.is_some());
        let engine = if metered {
            TransformEngine::with_fuel_metering()
        } else {
            TransformEngine::new()
        }
        .context("starting the WebAssembly engine")?;
        let cache = ModuleCache::new(options.cache_dir.clone().or_else(default_dir));
        let host_slots = TransformSlots::host_slots();
        let (sender, new_tasks) = mpsc::unbounded_channel();
        let mut started = Vec::new();
        for tenant in tenants {
            let in_tenant = |e: anyhow::Error| e.context(format!("tenant `{}`", tenant.name));
            let repo = &tenant.repo;
            let online = OnlineConnection::open_waiting(
                &repo.config.online_store,
                options.redis_url.as_deref(),
                options.replica_wait,
            )
            .await
            .context("connecting to the Redis online store")
            .map_err(in_tenant)?;
            let starter = Arc::new(ViewStarter::new(
                &tenant.name,
                engine.clone(),
                cache.clone(),
                HostOptions {
                    limits: tenant.limits.clone(),
                    ..options.clone()
                },
                online,
                TransformSlots::new(tenant.limits.instances_in_flight, host_slots.clone()),
                sender.clone(),
            ));
            for (view, _, kafka) in repo.kafka_views() {
                let pipeline = starter.pipeline(repo, view).map_err(in_tenant)?;
                starter
                    .start(repo, pipeline, kafka, "repo")
                    .map_err(in_tenant)?;
            }
            stop_views_on(shutdown.clone(), starter.registry.clone());
            let deployer = Arc::new(Deployer::new(starter.clone(), repo.clone()));
            started.push(TenantHost {
                name: tenant.name,
                starter,
                deployer,
            });
        }
        if started.iter().all(|t| t.starter.started().is_empty()) {
            anyhow::bail!("no repo has a stream feature view with a kafka source: nothing to run");
        }
        Ok(Self {
            tenants: started,
            new_tasks,
        })
    }

    /// Each tenant's deployer (the admin API's backend), by tenant name.
    pub fn deployers(&self) -> std::collections::BTreeMap<String, Arc<Deployer>> {
        self.tenants
            .iter()
            .map(|t| (t.name.clone(), t.deployer.clone()))
            .collect()
    }

    /// The first tenant's deployer: the only one of a single-repo host.
    pub fn deployer(&self) -> Arc<Deployer> {
        self.tenants[0].deployer.clone()
    }

    /// Counters of every view started so far, live, in tenant order.
    pub fn metrics(&self) -> Vec<(String, Arc<ViewMetrics>)> {
        self.tenants
            .iter()
            .flat_map(|t| t.starter.started())
            .collect()
    }

    /// Waits for every view to stop, taking in views added meanwhile; a view
    /// that fails is reported and the others keep running.
    pub async fn wait(mut self) -> Vec<ViewReport> {
        use futures::StreamExt;
        let mut errors = std::collections::HashMap::new();
        let mut running = futures::stream::FuturesUnordered::new();
        loop {
            while let Ok(task) = self.new_tasks.try_recv() {
                running.push(task);
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some(task) = self.new_tasks.recv() => running.push(task),
                Some(joined) = running.next() => match joined {
                    Ok((task, Ok(()))) => tracing::debug!(tenant = %task.0, view = %task.1, "view finished"),
                    Ok((task, Err(e))) => {
                        tracing::error!(tenant = %task.0, view = %task.1, "view stopped: {e}; its offsets stay at the last written batch, other views keep running");
                        errors.insert(task, e.to_string());
                    }
                    Err(e) => tracing::error!("a view task panicked: {e}"),
                },
            }
        }
        self.tenants
            .iter()
            .flat_map(|t| {
                t.starter
                    .started()
                    .into_iter()
                    .map(|(view, metrics)| (t.name.clone(), view, metrics))
            })
            .map(|(tenant, view, metrics)| {
                let error = errors.remove(&(tenant.clone(), view.clone()));
                let status = if error.is_some() { "failed" } else { "stopped" };
                let mut metrics = metrics.snapshot();
                // The view's live state ("running", "paused") ended with it.
                metrics.state = status.to_string();
                ViewReport {
                    status,
                    error,
                    metrics,
                    tenant,
                    view,
                }
            })
            .collect()
    }
}

/// Stops every view (present and future) once `shutdown` turns true.
fn stop_views_on(mut shutdown: watch::Receiver<bool>, registry: Arc<Registry>) {
    tokio::spawn(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
        registry.stop_all();
    });
}
