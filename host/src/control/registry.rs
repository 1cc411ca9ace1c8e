//! The hot-swap registry: for each running view, the version serving it and
//! the versions before it.
//!
//! A version is a whole [`ViewPipeline`] (definition, transform module and
//! config). Activating one publishes it on a watch channel; the view's stream
//! loop picks it up at its next batch boundary, so every batch is transformed
//! by exactly one version and nothing is lost or committed early. Rolling back
//! re-activates the previous version.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use tokio::sync::watch;

use crate::pipeline::metrics::{MetricsSnapshot, ViewMetrics};
pub use crate::pipeline::version::ViewVersion;

/// The versions of one running view.
pub struct ViewSlot {
    active: watch::Sender<Arc<ViewVersion>>,
    /// Turned true to stop the view's loop (it finishes its batch and commits).
    stop: watch::Sender<bool>,
    previous: Mutex<Vec<Arc<ViewVersion>>>,
    pub metrics: Arc<ViewMetrics>,
}

/// Why a registry action was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RegistryError {
    #[error("no running view `{0}`")]
    UnknownView(String),
    #[error("view `{0}` has no previous version to roll back to")]
    NothingToRollBack(String),
}

impl ViewSlot {
    /// A slot serving `first`; the receivers (versions, stop) go to the view's loop.
    pub fn new(
        first: ViewVersion,
        metrics: Arc<ViewMetrics>,
    ) -> (
        Self,
        watch::Receiver<Arc<ViewVersion>>,
        watch::Receiver<bool>,
    ) {
        let (active, receiver) = watch::channel(Arc::new(first));
        let (stop, stopped) = watch::channel(false);
        (
            Self {
                active,
                stop,
                previous: Mutex::new(Vec::new()),
                metrics,
            },
            receiver,
            stopped,
        )
    }

    /// Asks the view's loop to finish the batch in hand, commit and end.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn active(&self) -> Arc<ViewVersion> {
        self.active.borrow().clone()
    }

    /// Makes `version` the one the next batch uses; the current one is kept for rollback.
    pub fn activate(&self, version: ViewVersion) {
        let previous = self.active.send_replace(Arc::new(version));
        self.previous
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(previous);
    }

    /// Re-activates the version before the active one.
    pub fn rollback(&self, view: &str) -> Result<Arc<ViewVersion>, RegistryError> {
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        let version = previous
            .pop()
            .ok_or_else(|| RegistryError::NothingToRollBack(view.to_string()))?;
        self.active.send_replace(version.clone());
        Ok(version)
    }

    /// Ids of the versions a rollback would go back through, newest first.
    pub fn history(&self) -> Vec<String> {
        let previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        previous.iter().rev().map(|v| v.id().to_string()).collect()
    }
}

/// Every running view's slot.
#[derive(Default)]
pub struct Registry {
    views: RwLock<BTreeMap<String, Arc<ViewSlot>>>,
}

/// A running view as exporters see it: the live counters, not a copy.
pub struct LiveView {
    pub tenant: String,
    pub view: String,
    pub active: Arc<ViewVersion>,
    pub metrics: Arc<ViewMetrics>,
}

/// One view in `GET /status`.
#[derive(Debug, Serialize)]
pub struct ViewStatus {
    pub tenant: String,
    pub view: String,
    pub version: String,
    pub module: Option<String>,
    /// `baseline` while the module's optimized code is compiling, then `optimized`.
    pub tier: Option<&'static str>,
    pub deployed_at: String,
    pub deployed_by: String,
    pub previous_versions: Vec<String>,
    pub features: Vec<String>,
    #[serde(flatten)]
    pub metrics: MetricsSnapshot,
    /// The active version's own counters.
    pub version_metrics: VersionSnapshot,
}

/// The counters of one version.
#[derive(Debug, Serialize)]
pub struct VersionSnapshot {
    pub messages: u64,
    pub batches: u64,
    pub rows_out: u64,
    pub batch_failures: u64,
    pub dead_letters: u64,
}

impl VersionSnapshot {
    fn of(metrics: &ViewMetrics) -> Self {
        let all = metrics.snapshot();
        Self {
            messages: all.messages,
            batches: all.batches,
            rows_out: all.rows_out,
            batch_failures: all.batch_failures,
            dead_letters: all.dead_letters,
        }
    }
}

impl Registry {
    pub fn insert(&self, view: &str, slot: Arc<ViewSlot>) {
        self.views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(view.to_string(), slot);
    }

    /// Takes `view` out of the registry (its loop is stopped separately).
    pub fn remove(&self, view: &str) -> Option<Arc<ViewSlot>> {
        self.views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(view)
    }

    /// Stops every view's loop.
    pub fn stop_all(&self) {
        for slot in self
            .views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            slot.stop();
        }
    }

    /// Names of the running views.
    pub fn names(&self) -> Vec<String> {
        self.views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    pub fn slot(&self, view: &str) -> Result<Arc<ViewSlot>, RegistryError> {
        self.views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(view)
            .cloned()
            .ok_or_else(|| RegistryError::UnknownView(view.to_string()))
    }

    /// Every running view's live metrics and active version, as views of `tenant`.
    pub fn live(&self, tenant: &str) -> Vec<LiveView> {
        let views = self.views.read().unwrap_or_else(|p| p.into_inner());
        views
            .iter()
            .map(|(name, slot)| LiveView {
                tenant: tenant.to_string(),
                view: name.clone(),
                active: slot.active(),
                metrics: Arc::clone(&slot.metrics),
            })
            .collect()
    }

    /// Every running view's status, as views of `tenant`.
    pub fn status(&self, tenant: &str) -> Vec<ViewStatus> {
        let views = self.views.read().unwrap_or_else(|p| p.into_inner());
        views
            .iter()
            .map(|(name, slot)| {
                let active = slot.active();
                ViewStatus {
                    tenant: tenant.to_string(),
                    view: name.clone(),
                    version: active.id().to_string(),
                    module: active
                        .pipeline
                        .transformer
                        .as_ref()
                        .map(|t| t.module().hash.clone()),
                    tier: active.pipeline.module().map(|m| m.tier().as_str()),
                    deployed_at: active.deployed_at.clone(),
                    deployed_by: active.deployed_by.clone(),
                    previous_versions: slot.history(),
                    features: active
                        .pipeline
                        .view
                        .features
                        .iter()
                        .map(|f| format!("{}:{}", f.name, f.dtype))
                        .collect(),
                    metrics: slot.metrics.snapshot(),
                    version_metrics: VersionSnapshot::of(&active.metrics),
                }
            })
            .collect()
    }
}
