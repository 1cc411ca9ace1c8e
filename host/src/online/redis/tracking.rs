//! Reads whose keys Redis tracks (server-assisted client-side caching): on
//! a RESP3 connection with `CLIENT TRACKING ON`, Redis remembers each key
//! the connection read and pushes an invalidation on the same connection
//! when the key is written, expires, is evicted or deleted, or the database
//! is flushed. [`TrackedReads`] hands those pushes to the read cache as the
//! connection reads them.
//!
//! Tracking lives and dies with the connection: if it drops, Redis forgets
//! what it tracked and any change meanwhile goes unreported, so the cache
//! is flushed ([`redis::PushKind::Disconnection`]). The connection manager
//! reconnects without tracking; every read's pipeline therefore begins with
//! `CLIENT TRACKING ON` (a no-op when it is on), on the connection that
//! carries the read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::{PushInfo, PushKind, Value};

use super::{Failure, again_after};
use crate::online::cache::ReadCache;
use crate::online::store::{HashRead, StoreError};
use crate::repo::OnlineStoreConfig;

/// A connection to a single Redis server whose reads are tracked.
#[derive(Clone)]
pub struct TrackedReads {
    connection: ConnectionManager,
    failed: Arc<Failure>,
}

/// One key's read: its fields' values and, if it expires, when (any
/// client may give a key a TTL, so every read asks for it: Redis reports
/// an expiry only when it deletes the key, which may come much later).
pub struct TrackedReply {
    pub values: Vec<Option<Vec<u8>>>,
    pub expires: Option<Instant>,
}

impl TrackedReads {
    /// Connects to the single server `config` (or `url_override`) names,
    /// with invalidations going to `cache`; checks that the server tracks
    /// keys (Redis 6 or later).
    pub async fn open(
        config: &OnlineStoreConfig,
        url_override: Option<&str>,
        cache: Arc<ReadCache>,
    ) -> redis::RedisResult<Self> {
        let connection = super::RedisConnection::open_tracked(
            config,
            url_override,
            Invalidations(Arc::clone(&cache)),
        )
        .await?;
        let reads = Self {
            connection,
            failed: Arc::new(Failure {
                at: super::target_name(config, url_override).into(),
                write: false,
            }),
        };
        let mut connection = reads.connection.clone();
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .exec_async(&mut connection)
            .await
            .map_err(|e| {
                redis::RedisError::from((
                    e.kind(),
                    "the read cache needs a server that tracks keys for its clients (Redis 6 or later, and a user allowed CLIENT TRACKING)",
                    e.to_string(),
                ))
            })?;
        Ok(reads)
    }

    /// Reads each key's fields and its TTL, tracked.
    /// Sent once more if the connection had dropped.
    pub async fn read(&self, reads: &[&HashRead]) -> Result<Vec<TrackedReply>, StoreError> {
        let mut pipeline = redis::pipe();
        pipeline.cmd("CLIENT").arg("TRACKING").arg("ON");
        for read in reads {
            let mut hmget = redis::cmd("HMGET");
            hmget.arg(&read.key);
            for field in read.fields.iter() {
                hmget.arg(field);
            }
            pipeline.add_command(hmget);
            pipeline.cmd("PTTL").arg(&read.key);
        }
        let sent = Instant::now();
        let mut connection = self.connection.clone();
        let mut replies: Vec<Value> = match pipeline.query_async(&mut connection).await {
            Err(e) if again_after(&e) => pipeline.query_async(&mut connection).await,
            result => result,
        }
        .map_err(|e| self.failed.of(e))?;
        if replies.len() != 1 + 2 * reads.len() {
            return Err(StoreError::RedisReply {
                expected: reads.len(),
                found: replies.len().saturating_sub(1) / 2,
            });
        }
        let mut replies = replies.drain(..);
        if let Some(Value::ServerError(error)) = replies.next() {
            return Err(self.failed.of(error.into()));
        }
        let mut tracked = Vec::with_capacity(reads.len());
        while let Some(values) = replies.next() {
            let values = super::reply_as(values, &self.failed)?;
            let expires = replies.next().and_then(|ttl| expiry(sent, &ttl));
            tracked.push(TrackedReply { values, expires });
        }
        Ok(tracked)
    }
}

/// When a key whose `PTTL` (read at `sent`) is `ttl` expires; `None` if it
/// does not (no TTL, or no key).
fn expiry(sent: Instant, ttl: &Value) -> Option<Instant> {
    match ttl {
        Value::Int(ms) if *ms >= 0 => Some(sent + Duration::from_millis(*ms as u64)),
        _ => None,
    }
}

/// Hands the tracked connection's pushes to the cache, as they are read.
struct Invalidations(Arc<ReadCache>);

impl redis::aio::AsyncPushSender for Invalidations {
    fn send(&self, push: PushInfo) -> Result<(), redis::aio::SendError> {
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        match key {
                            Value::BulkString(key) => self.0.invalidate(key),
                            Value::SimpleString(key) => self.0.invalidate(key.as_bytes()),
                            _ => self.0.flush(),
                        }
                    }
                }
                // FLUSHDB / FLUSHALL: a null instead of keys
                _ => self.0.flush(),
            },
            PushKind::Disconnection => self.0.flush(),
            _ => {}
        }
        Ok(())
    }
}
