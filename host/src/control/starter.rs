//! Starting a view's stream loop, at host start or later when a changed repo
//! adds a view: consumer, version slot, loop task.

use std::sync::{Arc, Mutex};
use tracing::Instrument;

use anyhow::Context;
use tokio::sync::mpsc;

use super::registry::{Registry, ViewSlot, ViewVersion};
use super::{HostOptions, group_id, offline_log};
use crate::online::OnlineConnection;
use crate::pipeline::dead_letter::DeadLetterSink;
use crate::pipeline::fairness::TransformSlots;
use crate::pipeline::metrics::ViewMetrics;
use crate::pipeline::stream::{StreamLoop, ViewEnds, ViewStopped};
use crate::pipeline::view::ViewPipeline;
use crate::repo::{FeatureRepo, FeatureView, KafkaSource};
use crate::source::kafka::{TopicConsumer, TopicConsumerConfig};
use crate::transform::TransformEngine;
use crate::transform::cache::ModuleCache;

/// A view's running loop: it resolves to its tenant and view names and how it ended.
pub type ViewTask = tokio::task::JoinHandle<((String, String), Result<(), ViewStopped>)>;

/// What starting a view needs, shared by the host and the deployer.
pub struct ViewStarter {
    /// The tenant whose views this starts.
    pub tenant: String,
    pub engine: TransformEngine,
    pub cache: ModuleCache,
    pub options: HostOptions,
    pub online: OnlineConnection,
    pub registry: Arc<Registry>,
    /// Transform slots shared by this starter's views (one tenant's).
    pub slots: TransformSlots,
    tasks: mpsc::UnboundedSender<ViewTask>,
    /// Every view ever started, with its counters, for the final reports.
    started: Mutex<Vec<(String, Arc<ViewMetrics>)>>,
}

impl ViewStarter {
    pub fn new(
        tenant: &str,
        engine: TransformEngine,
        cache: ModuleCache,
        options: HostOptions,
        online: OnlineConnection,
        slots: TransformSlots,
        tasks: mpsc::UnboundedSender<ViewTask>,
    ) -> Self {
        Self {
            tenant: tenant.to_string(),
            engine,
            cache,
            options,
            online,
            registry: Arc::new(Registry::default()),
            slots,
            tasks,
            started: Mutex::new(Vec::new()),
        }
    }

    /// Builds the view's pipeline (module loaded, not probed).
    pub fn pipeline(&self, repo: &FeatureRepo, view: &FeatureView) -> anyhow::Result<ViewPipeline> {
        ViewPipeline::new(repo, view, &self.engine, &self.cache, &self.options.limits)
            .with_context(|| format!("stream feature view `{}`", view.name))
    }

    /// Subscribes the view's consumer and hands its loop to the host.
    pub fn start(
        &self,
        repo: &FeatureRepo,
        pipeline: ViewPipeline,
        kafka: &KafkaSource,
        by: &str,
    ) -> anyhow::Result<()> {
        let view = pipeline.view.clone();
        let bootstrap_servers = self
            .options
            .kafka_bootstrap
            .clone()
            .unwrap_or_else(|| kafka.bootstrap_servers.clone());
        let dead_letters = DeadLetterSink::for_view(
            repo.project(),
            &view,
            &self.online.redis,
            Some(&bootstrap_servers),
        )
        .with_context(|| format!("view `{}`: dead-letter destination", view.name))?;
        let consumer = TopicConsumer::subscribe(&TopicConsumerConfig {
            bootstrap_servers,
            topic: kafka.topic.clone(),
            group_id: group_id(repo.project(), &view.name),
        })
        .with_context(|| {
            format!(
                "subscribing view `{}` to topic `{}`",
                view.name, kafka.topic
            )
        })?;
        let metrics = Arc::new(ViewMetrics::default());
        let (slot, versions, stop) = ViewSlot::new(ViewVersion::new(pipeline, by), metrics.clone());
        let ends = ViewEnds {
            kafka: kafka.clone(),
            consumer,
            store: self.online.store.clone(),
            dead_letters,
        };
        let mut stream = StreamLoop::new(
            versions,
            ends,
            metrics.clone(),
            self.options.stream,
            self.slots.clone(),
        );
        if view.offline {
            let log = offline_log(repo, &view, stream.pipeline(), &self.options)?;
            stream = stream.with_offline_log(log);
        }
        self.registry.insert(&view.name, Arc::new(slot));
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((view.name.clone(), metrics));
        let names = (self.tenant.clone(), view.name.clone());
        // Every line the view's loop logs carries its tenant and view (the
        // JSON log's `span` object; the text log's prefix).
        let span = tracing::info_span!("view", tenant = %self.tenant, view = %view.name);
        let task = tokio::spawn(async move { (names, stream.run(stop).await) }.instrument(span));
        self.tasks.send(task).map_err(|_| {
            anyhow::anyhow!(
                "the host is shutting down; view `{}` not watched",
                view.name
            )
        })
    }

    /// Every view started so far, with its counters.
    pub fn started(&self) -> Vec<(String, Arc<ViewMetrics>)> {
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
