//! Deploying a new transform module to a running view, and rolling back.
//!
//! Everything that can fail happens before the swap and off the ingestion
//! path: the module compiles (or comes from the on-disk cache), implements
//! the contract, and turns a probe batch of the view's input schema into the
//! declared output. Only then is the version activated; a rejected module
//! leaves the running version untouched.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::registry::{Registry, RegistryError, ViewStatus, ViewVersion};
use super::view::ViewPipeline;
use crate::repo::FeatureRepo;
use crate::transform::cache::ModuleCache;
use crate::transform::{Limits, TransformEngine, TransformError, TransformModule};

/// Deploys and rollbacks for the views of one host.
pub struct Deployer {
    engine: TransformEngine,
    cache: ModuleCache,
    limits: Limits,
    registry: Arc<Registry>,
    /// The repo as last applied: `apply` re-reads it from `repo.root`.
    repo: std::sync::Mutex<FeatureRepo>,
}

/// What applying a changed repo did.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    /// Views whose new definition or module is active from their next batch.
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Views added, removed, or moved to another source: they take effect at
    /// the next restart of the host in this version.
    pub need_restart: Vec<String>,
}

/// Why a deploy was refused; the running version is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("rejected: {0}")]
    Rejected(#[from] TransformError),
    #[error("rejected: the repo is invalid: {0}")]
    Repo(String),
}

/// What a deploy or rollback did.
#[derive(Debug, Serialize)]
pub struct Deployed {
    pub view: String,
    pub version: String,
    pub previous: String,
    /// Whether the compiled module came from the on-disk cache.
    pub cached: bool,
    /// From the request to the version being active (validation included).
    pub milliseconds: f64,
}

impl Deployer {
    pub fn new(
        engine: TransformEngine,
        cache: ModuleCache,
        limits: Limits,
        registry: Arc<Registry>,
        repo: FeatureRepo,
    ) -> Self {
        Self {
            engine,
            cache,
            limits,
            registry,
            repo: std::sync::Mutex::new(repo),
        }
    }

    /// Re-reads the repo and activates every running view whose definition,
    /// module or config changed. All changed views are validated (module,
    /// contract, probe) before any is activated: either all swap or none.
    /// Blocking.
    pub fn apply(&self, by: &str) -> Result<Applied, DeployError> {
        let root = self
            .repo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .root
            .clone();
        let repo = crate::repo::load(&root).map_err(|e| DeployError::Repo(e.to_string()))?;
        let running = self.registry.names();
        let mut applied = Applied::default();
        let mut ready = Vec::new();
        for (view, source, _) in repo.kafka_views() {
            if !running.contains(&view.name) {
                applied.need_restart.push(format!("{} (added)", view.name));
                continue;
            }
            let slot = self.registry.slot(&view.name)?;
            let active = slot.active();
            if active.pipeline.source != *source {
                applied
                    .need_restart
                    .push(format!("{} (source changed)", view.name));
                continue;
            }
            let in_view =
                |e: TransformError| DeployError::Repo(format!("view `{}`: {e}", view.name));
            let pipeline = ViewPipeline::new(&repo, view, &self.engine, &self.cache, &self.limits)
                .map_err(in_view)?;
            if pipeline.view == active.pipeline.view && pipeline.version() == active.id() {
                applied.unchanged.push(view.name.clone());
                continue;
            }
            pipeline.probe().map_err(in_view)?;
            ready.push((slot, pipeline));
        }
        for name in running.iter().filter(|name| repo.view(name).is_none()) {
            applied.need_restart.push(format!("{name} (removed)"));
        }
        for (slot, pipeline) in ready {
            let name = pipeline.view.name.clone();
            tracing::info!(view = %name, version = pipeline.version(), by, "repo applied; the new definition is active from the next batch");
            slot.activate(ViewVersion::new(pipeline, by));
            applied.changed.push(name);
        }
        *self.repo.lock().unwrap_or_else(|p| p.into_inner()) = repo;
        Ok(applied)
    }

    /// Validates `module` for `view` and activates it. Blocking (compiles, runs the probe).
    pub fn deploy(&self, view: &str, module: &[u8], by: &str) -> Result<Deployed, DeployError> {
        let started = Instant::now();
        let slot = self.registry.slot(view)?;
        let active = slot.active();
        if module.len() > self.limits.module_bytes {
            return Err(TransformError::Limit(format!(
                "module size limit of {} bytes exceeded: the upload is {} bytes",
                self.limits.module_bytes,
                module.len()
            ))
            .into());
        }
        let module = TransformModule::from_bytes(
            &self.engine,
            &self.cache,
            module,
            &format!("upload for `{view}`"),
        )?;
        let cached = module.from_cache;
        let pipeline = active
            .pipeline
            .with_module(&self.engine, Arc::new(module), &self.limits);
        pipeline.probe()?;
        let version = ViewVersion::new(pipeline, by);
        let id = version.id().to_string();
        slot.activate(version);
        tracing::info!(view, version = %id, previous = active.id(), by, "deployed; active from the next batch");
        Ok(Deployed {
            view: view.to_string(),
            version: id,
            previous: active.id().to_string(),
            cached,
            milliseconds: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Re-activates the version before the active one.
    pub fn rollback(&self, view: &str) -> Result<Deployed, DeployError> {
        let started = Instant::now();
        let slot = self.registry.slot(view)?;
        let previous = slot.active();
        let version = slot.rollback(view)?;
        tracing::info!(
            view,
            version = version.id(),
            previous = previous.id(),
            "rolled back; active from the next batch"
        );
        Ok(Deployed {
            view: view.to_string(),
            version: version.id().to_string(),
            previous: previous.id().to_string(),
            cached: true,
            milliseconds: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Every view's active version and counters.
    pub fn status(&self) -> Vec<ViewStatus> {
        self.registry.status()
    }
}
