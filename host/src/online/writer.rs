//! Writing online rows to Redis in Feast's layout, newer-wins, atomically.
//!
//! Feast reads every stored `_ts:<view>` and then writes, in two round trips
//! that another writer can interleave. fvhost sends one Lua script call per
//! chunk of keys: the server compares and writes each key in one step, and
//! a whole batch goes out as one pipeline, one round trip.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::murmur3::{feature_field, timestamp_field};
use super::rows::OnlineRow;
use super::timestamp;
use crate::repo::{ConnectionString, FeatureView, OnlineStoreConfig};

const WRITE_SCRIPT: &str = include_str!("script.lua");

/// Keys per script call: large enough to amortize the call, small enough to
/// keep one call short on the server.
const KEYS_PER_CALL: usize = 256;

/// How long one Redis request may take before it fails.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The hash fields one view writes: `_ts:<view>` and one murmur3 field per
/// feature, and the write script spelled out for that many features.
#[derive(Debug, Clone)]
pub struct ViewFields {
    pub timestamp: Vec<u8>,
    pub features: Vec<[u8; 4]>,
    script: redis::Script,
}

impl ViewFields {
    pub fn of(view: &FeatureView) -> Self {
        let features: Vec<[u8; 4]> = view
            .features
            .iter()
            .map(|f| feature_field(&view.name, &f.name))
            .collect();
        Self {
            timestamp: timestamp_field(&view.name),
            script: write_script(features.len()),
            features,
        }
    }
}

/// The write script with its HSET arguments spelled out for `n_fields`
/// features: no argument table is built per key, which measured faster
/// (docs/architecture.md).
fn write_script(n_fields: usize) -> redis::Script {
    let pairs: String = (1..=n_fields)
        .map(|f| format!(", ARGV[{}], ARGV[at + {}]", 4 + f, 3 + f))
        .collect();
    redis::Script::new(&WRITE_SCRIPT.replace("--[[FIELDS]]", &pairs))
}

/// Outcome of one write.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// Keys whose view fields were written.
    pub written: u64,
    /// Keys left alone because Redis already held an equal or newer event.
    pub skipped_older: u64,
}

/// Why a write failed; nothing may be committed after it.
#[derive(Debug, thiserror::Error)]
#[error("redis write failed: {0}")]
pub struct WriteError(#[from] pub redis::RedisError);

/// A Redis connection for the online store; loads each view's write script on first use.
#[derive(Clone)]
pub struct OnlineWriter {
    connection: ConnectionManager,
    ttl_seconds: u64,
    check_newer: bool,
}

/// Opens a managed (reconnecting) connection to the store's first node.
pub async fn connect(
    config: &OnlineStoreConfig,
    url_override: Option<&str>,
) -> Result<ConnectionManager, redis::RedisError> {
    let url = match url_override {
        Some(url) => url.to_string(),
        None => ConnectionString::parse(&config.connection_string)
            .map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "connection_string",
                    e,
                ))
            })?
            .first_node_url(),
    };
    let client = redis::Client::open(url)?;
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(3);
    client
        .get_connection_manager_with_config(manager_config)
        .await
}

impl OnlineWriter {
    /// The writer's connection, for other writes to the same store (dead letters).
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    pub fn new(connection: ConnectionManager, config: &OnlineStoreConfig) -> Self {
        Self {
            connection,
            ttl_seconds: config.key_ttl_seconds.unwrap_or(0),
            check_newer: !config.skip_dedup,
        }
    }

    /// Writes `rows` (one per entity) for the view whose fields are `fields`.
    pub async fn write(
        &mut self,
        fields: &ViewFields,
        rows: &[OnlineRow],
    ) -> Result<WriteStats, WriteError> {
        if rows.is_empty() {
            return Ok(WriteStats::default());
        }
        let pipeline = self.pipeline(fields, rows);
        let counts: Vec<u64> = match pipeline.query_async(&mut self.connection).await {
            Ok(counts) => counts,
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                fields
                    .script
                    .prepare_invoke()
                    .load_async(&mut self.connection)
                    .await?;
                pipeline.query_async(&mut self.connection).await?
            }
            Err(e) => return Err(e.into()),
        };
        let written: u64 = counts.iter().sum();
        Ok(WriteStats {
            written,
            skipped_older: rows.len() as u64 - written,
        })
    }

    fn pipeline(&self, fields: &ViewFields, rows: &[OnlineRow]) -> redis::Pipeline {
        let mut pipeline = redis::pipe();
        for chunk in rows.chunks(KEYS_PER_CALL) {
            let mut call = redis::cmd("EVALSHA");
            call.arg(fields.script.get_hash()).arg(chunk.len());
            for row in chunk {
                call.arg(&row.key);
            }
            call.arg(&fields.timestamp)
                .arg(self.ttl_seconds)
                .arg(if self.check_newer { "1" } else { "0" })
                .arg(fields.features.len());
            for field in &fields.features {
                call.arg(&field[..]);
            }
            for row in chunk {
                call.arg(row.event_time.seconds())
                    .arg(row.event_time.nanos())
                    .arg(timestamp::encode(row.event_time));
                for value in &row.values {
                    call.arg(value);
                }
            }
            pipeline.add_command(call);
        }
        pipeline
    }
}
