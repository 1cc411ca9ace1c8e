//! Opening the online store a repo's `feature_store.yaml` names.

use std::sync::Arc;

use redis::aio::ConnectionManager;

use super::redis::{RedisStore, connect};
use super::store::OnlineStore;
use crate::repo::OnlineStoreConfig;

/// A connected online store, and the Redis connection the views' dead-letter
/// streams use (they live in the same server, in the project's key space).
#[derive(Clone)]
pub struct OnlineConnection {
    pub store: Arc<dyn OnlineStore>,
    pub redis: ConnectionManager,
}

impl OnlineConnection {
    /// Connects to the store `config` names, or to `url_override` (the
    /// command line's `--redis-url`).
    pub async fn open(
        config: &OnlineStoreConfig,
        url_override: Option<&str>,
    ) -> Result<Self, redis::RedisError> {
        let redis = connect(config, url_override).await?;
        Ok(Self {
            store: Arc::new(RedisStore::new(redis.clone(), config)),
            redis,
        })
    }
}
