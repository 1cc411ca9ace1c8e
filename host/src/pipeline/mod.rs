//! Running a repo's stream feature views: one loop per view, each with its
//! own consumer group, so a view that fails stops alone.
//!
//! - [`stream`]: the per-view loop (consume, decode, watermark, transform, write, commit);
//! - [`view`]: a view's processing independent of its source;
//! - [`watermark`], [`dead_letter`], [`metrics`]: what the loop keeps track of.

pub mod dead_letter;
pub mod deploy;
pub mod fairness;
pub mod materialize;
pub mod materialize_state;
pub mod metrics;
pub mod push;
pub mod registry;
pub mod starter;
pub mod stream;
pub mod view;
pub mod watermark;

use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::offline::log::{OfflineLog, Rotation};
use crate::online::{OnlineWriter, connect};
use crate::repo::FeatureRepo;
use crate::transform::cache::{ModuleCache, default_dir};
use crate::transform::{Limits, TransformEngine};
pub use deploy::Deployer;
use fairness::TransformSlots;
pub use metrics::{MetricsSnapshot, ViewMetrics};
use registry::Registry;
use starter::{ViewStarter, ViewTask};
pub use stream::{StreamLoop, StreamSettings, ViewStopped};
pub use view::ViewPipeline;

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
}

/// The consumer group of a view: views never share offsets.
pub fn group_id(project: &str, view: &str) -> String {
    format!("fvhost.{project}.{view}")
}

/// The offline log of a stream view: its batch source's folder.
pub(crate) fn offline_log(
    repo: &FeatureRepo,
    view: &crate::repo::FeatureView,
    pipeline: &ViewPipeline,
    options: &HostOptions,
) -> anyhow::Result<OfflineLog> {
    let source = materialize::batch_source(repo, view)?;
    let crate::repo::SourceKind::File { path } = &source.kind else {
        anyhow::bail!(
            "view `{}`: batch source `{}` is not a file source",
            view.name,
            source.name
        );
    };
    let dir = crate::offline::files::write_dir(&repo.root, path)
        .with_context(|| format!("view `{}`: offline log", view.name))?;
    Ok(OfflineLog::new(
        dir,
        &pipeline.schema,
        options.offline_rotation,
    ))
}

/// A running host: one task per stream view; views can be added while it runs.
pub struct Host {
    starter: Arc<ViewStarter>,
    deployer: Arc<Deployer>,
    new_tasks: mpsc::UnboundedReceiver<ViewTask>,
}

/// How one view ended, with its final counters.
#[derive(Debug, Serialize)]
pub struct ViewReport {
    pub view: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub metrics: MetricsSnapshot,
}

impl Host {
    /// Loads every stream view's module, connects to Redis and Kafka and starts the loops.
    pub async fn start(
        repo: &FeatureRepo,
        options: &HostOptions,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let engine = TransformEngine::new().context("starting the WebAssembly engine")?;
        let cache = ModuleCache::new(options.cache_dir.clone().or_else(default_dir));
        let connection = connect(&repo.config.online_store, options.redis_url.as_deref())
            .await
            .context("connecting to the Redis online store")?;
        let writer = OnlineWriter::new(connection, &repo.config.online_store);
        let (sender, new_tasks) = mpsc::unbounded_channel();
        let starter = Arc::new(ViewStarter::new(
            engine,
            cache,
            options.clone(),
            writer,
            TransformSlots::new(
                options.limits.instances_in_flight,
                TransformSlots::host_slots(),
            ),
            sender,
        ));
        for (view, _, kafka) in repo.kafka_views() {
            let pipeline = starter.pipeline(repo, view)?;
            starter.start(repo, pipeline, kafka, "repo")?;
        }
        if starter.started().is_empty() {
            anyhow::bail!(
                "the repo has no stream feature view with a kafka source: nothing to run"
            );
        }
        stop_views_on(shutdown, starter.registry.clone());
        let deployer = Arc::new(Deployer::new(starter.clone(), repo.clone()));
        Ok(Self {
            starter,
            deployer,
            new_tasks,
        })
    }

    /// Deploys, rollbacks and repo changes on the running views (the admin API's backend).
    pub fn deployer(&self) -> Arc<Deployer> {
        self.deployer.clone()
    }

    /// Counters of every view started so far, live.
    pub fn metrics(&self) -> Vec<(String, Arc<ViewMetrics>)> {
        self.starter.started()
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
                    Ok((view, Ok(()))) => tracing::debug!(view, "view finished"),
                    Ok((view, Err(e))) => {
                        tracing::error!(view, "view stopped: {e}; its offsets stay at the last written batch, other views keep running");
                        errors.insert(view, e.to_string());
                    }
                    Err(e) => tracing::error!("a view task panicked: {e}"),
                },
            }
        }
        self.starter
            .started()
            .into_iter()
            .map(|(view, metrics)| {
                let error = errors.remove(&view);
                ViewReport {
                    status: if error.is_some() { "failed" } else { "stopped" },
                    error,
                    metrics: metrics.snapshot(),
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
