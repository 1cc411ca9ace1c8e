//! The feature repo: `feature_store.yaml` plus the definitions, either YAML
//! files that keep Feast's object model (entities, sources, feature views,
//! stream feature views, feature services) or Feast's own registry.

pub mod aggregation;
mod definitions;
pub mod duration;
pub mod feast_registry;
mod load;
mod model;
pub mod store_config;

use std::path::Path;

pub use crate::format::mapped_schema;
pub use load::{RepoError, STORE_CONFIG_FILE};
pub use model::*;
pub use store_config::{
    ConnectionString, OnlineStoreConfig, RedisType, RegistrySetting, StoreConfig,
};

/// Loads the repo in `root` and validates every definition in it.
pub fn load(root: &Path) -> Result<FeatureRepo, RepoError> {
    let mut repo = load::load_repo(root)?;
    load::resolve_join_keys(&mut repo)?;
    Ok(repo)
}
