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
use crate::transform::cache::ModuleCache;
use crate::transform::{Limits, TransformEngine, TransformError, TransformModule};

/// Deploys and rollbacks for the views of one host.
pub struct Deployer {
    engine: TransformEngine,
    cache: ModuleCache,
    limits: Limits,
    registry: Arc<Registry>,
}

/// Why a deploy was refused; the running version is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("rejected: {0}")]
    Rejected(#[from] TransformError),
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
    ) -> Self {
        Self {
            engine,
            cache,
            limits,
            registry,
        }
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
