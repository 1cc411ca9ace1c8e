//! Opening the online store a repo's `feature_store.yaml` names.

use std::sync::Arc;

use super::redis::{RedisConnection, RedisStore, ReplicaWait};
use super::store::OnlineStore;
use crate::repo::OnlineStoreConfig;

/// A connected online store, and the Redis connection the views' dead-letter
/// streams use (they live in the same server or cluster, in the project's
/// key space).
#[derive(Clone)]
pub struct OnlineConnection {
    pub store: Arc<dyn OnlineStore>,
    pub redis: RedisConnection,
}

impl OnlineConnection {
    /// Connects to the store `config` names, or to `url_override` (the
    /// command line's `--redis`).
    pub async fn open(
        config: &OnlineStoreConfig,
        url_override: Option<&str>,
    ) -> Result<Self, redis::RedisError> {
        Self::open_waiting(config, url_override, ReplicaWait::default()).await
    }

    /// [`Self::open`], with writes that wait for replicas (see [`ReplicaWait`]).
    pub async fn open_waiting(
        config: &OnlineStoreConfig,
        url_override: Option<&str>,
        replicas: ReplicaWait,
    ) -> Result<Self, redis::RedisError> {
        let redis = RedisConnection::open(config, url_override).await?;
        let store = RedisStore::new(redis.clone(), config)
            .waiting_for(replicas)
            .named(super::redis::target_name(config, url_override));
        if replicas.replicas > 0 {
            match store.replicas_now().await {
                Ok(now) if now < i64::from(replicas.replicas) => tracing::warn!(
                    wanted = replicas.replicas,
                    replicas = now,
                    "writes wait for {} replicas, but the online store has {now} in sync now: writes stall until enough replicas acknowledge",
                    replicas.replicas
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("cannot count the online store's replicas: {e}"),
            }
        }
        Ok(Self {
            store: Arc::new(store),
            redis,
        })
    }

    /// Whether the store answers a `PING` within 2 s (readiness probes; on
    /// a cluster every node must answer).
    pub async fn answers(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut connection = self.redis.clone();
        let mut reconnected = false;
        loop {
            let command = redis::cmd("PING");
            let ping = command.query_async::<redis::Value>(&mut connection);
            match tokio::time::timeout_at(deadline, ping).await {
                Ok(Ok(_)) => return Ok(()),
                // A connection dropped since its last use (a restarted
                // redis-server) is asked once more, as reads and writes are.
                Ok(Err(e)) if !reconnected && super::redis::again_after(&e) => reconnected = true,
                Ok(Err(e)) => return Err(format!("the online store does not answer: {e}")),
                Err(_) => return Err("the online store did not answer within 2 s".into()),
            }
        }
    }
}
