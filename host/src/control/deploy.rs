//! Deploying a new transform module to a running view, rolling back, and
//! applying a changed repo to a running host.
//!
//! Everything that can fail happens before the swap and off the ingestion
//! path: the module compiles (or comes from the on-disk cache), implements
//! the contract, and turns a probe batch of the view's input schema into the
//! declared output. Only then is the version activated; a rejected module or
//! repo leaves the running versions untouched.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::registry::{Registry, RegistryError, ViewStatus, ViewVersion};
use super::starter::ViewStarter;
use crate::repo::FeatureRepo;
use crate::transform::{LimitExceeded, LimitName, TransformError, TransformModule};

/// Deploys, rollbacks and repo changes for the views of one host.
pub struct Deployer {
    starter: Arc<ViewStarter>,
    /// The repo as last applied: `apply` re-reads it from `repo.root`.
    repo: std::sync::Mutex<FeatureRepo>,
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

/// What applying a changed repo did.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    /// Views whose new definition or module is active from their next batch.
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Views started by this apply.
    pub added: Vec<String>,
    /// Views stopped by this apply (each finishes its batch in hand and commits).
    pub removed: Vec<String>,
}

impl Deployer {
    pub fn new(starter: Arc<ViewStarter>, repo: FeatureRepo) -> Self {
        Self {
            starter,
            repo: std::sync::Mutex::new(repo),
        }
    }

    /// The repo as last applied (its folder is where `apply` reads from).
    pub fn repo(&self) -> FeatureRepo {
        self.repo.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The tenant whose views this deployer manages.
    pub fn tenant(&self) -> &str {
        &self.starter.tenant
    }

    /// The largest module a deploy may upload (the tenant's module limit).
    pub fn max_module_bytes(&self) -> usize {
        self.starter.options.limits.module_bytes
    }

    fn registry(&self) -> &Registry {
        &self.starter.registry
    }

    /// Validates `module` for `view` and activates it. Blocking (compiles, runs the probe).
    pub fn deploy(&self, view: &str, module: &[u8], by: &str) -> Result<Deployed, DeployError> {
        let started = Instant::now();
        let slot = self.registry().slot(view)?;
        let active = slot.active();
        let limits = &self.starter.options.limits;
        if module.len() > limits.module_bytes {
            let limit = LimitExceeded::new(
                LimitName::ModuleBytes,
                limits.module_bytes as u64,
                Some(module.len() as u64),
            );
            return Err(TransformError::Limit(limit).into());
        }
        let module = TransformModule::from_bytes(
            &self.starter.engine,
            &self.starter.cache,
            module,
            &format!("upload for `{view}`"),
        )?;
        let cached = module.from_cache;
        let pipeline = active.pipeline.with_module(Arc::new(module), limits);
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
        let slot = self.registry().slot(view)?;
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

    /// Re-reads the repo and brings the running views in line with it: changed
    /// views (definition, module or config) swap at their next batch, new views
    /// start, views no longer there stop, and a view moved to another source
    /// stops and starts again. Every new or changed view is validated (module,
    /// contract, probe) before anything changes: all of it applies or none does.
    /// Blocking.
    pub fn apply(&self, by: &str) -> Result<Applied, DeployError> {
        let root = self
            .repo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .root
            .clone();
        let repo = crate::repo::load(&root).map_err(|e| DeployError::Repo(e.to_string()))?;
        let running = self.registry().names();
        let mut applied = Applied::default();
        let mut swaps = Vec::new();
        let mut starts = Vec::new();
        for (view, source, kafka) in repo.kafka_views() {
            let in_view = |e: String| DeployError::Repo(format!("view `{}`: {e}", view.name));
            let pipeline = self
                .starter
                .pipeline(&repo, view)
                .map_err(|e| in_view(format!("{e:#}")))?;
            let current = match self.registry().slot(&view.name) {
                Ok(slot) => Some((slot.active(), slot)),
                Err(_) => None,
            };
            match current {
                Some((active, _))
                    if active.pipeline.view == pipeline.view
                        && active.pipeline.source == *source
                        && active.id() == pipeline.version() =>
                {
                    applied.unchanged.push(view.name.clone());
                    continue;
                }
                Some((active, slot)) if active.pipeline.source == *source => {
                    swaps.push((slot, pipeline.clone()))
                }
                Some(_) => {
                    applied.removed.push(view.name.clone());
                    starts.push((pipeline.clone(), kafka.clone()));
                }
                None => starts.push((pipeline.clone(), kafka.clone())),
            }
            pipeline.probe().map_err(|e| in_view(e.to_string()))?;
        }
        applied.removed.extend(
            running
                .iter()
                .filter(|name| repo.view(name).is_none())
                .cloned(),
        );
        for name in &applied.removed {
            if let Some(slot) = self.registry().remove(name) {
                tracing::info!(view = %name, by, "repo applied; view stopping");
                slot.stop();
            }
        }
        for (slot, pipeline) in swaps {
            let name = pipeline.view.name.clone();
            tracing::info!(view = %name, version = pipeline.version(), by, "repo applied; the new definition is active from the next batch");
            slot.activate(ViewVersion::new(pipeline, by));
            applied.changed.push(name);
        }
        for (pipeline, kafka) in starts {
            let name = pipeline.view.name.clone();
            self.starter
                .start(&repo, pipeline, &kafka, by)
                .map_err(|e| DeployError::Repo(format!("view `{name}`: {e:#}")))?;
            tracing::info!(view = %name, by, "repo applied; view started");
            applied.added.push(name);
        }
        *self.repo.lock().unwrap_or_else(|p| p.into_inner()) = repo;
        Ok(applied)
    }

    /// Whether the tenant's online store answers a PING within 2 s.
    pub async fn store_answers(&self) -> Result<(), String> {
        self.starter.online.answers().await
    }

    /// The tenant's running views with their live metrics (`GET /metrics`).
    pub fn live(&self) -> Vec<super::registry::LiveView> {
        self.registry().live(&self.starter.tenant)
    }

    /// Every view's active version and counters.
    pub fn status(&self) -> Vec<ViewStatus> {
        self.registry().status(&self.starter.tenant)
    }
}
