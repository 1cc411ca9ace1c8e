//! The Redis online store, in Feast's layout, newer-wins, atomically.
//!
//! Feast reads every stored `_ts:<view>` and then writes, in two round trips
//! that another writer can interleave. fvhost sends one Lua script call per
//! chunk of keys: the server compares and writes each key in one step, and
//! a whole batch goes out as one pipeline, one round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::fields::ViewFields;
use super::rows::OnlineRow;
use super::store::{GuardedUpdate, HashRead, OnlineStore, StoreError, WriteStats};
use super::timestamp;
use crate::repo::{ConnectionString, OnlineStoreConfig};

const WRITE_SCRIPT: &str = include_str!("script.lua");
const SWAP_SCRIPT: &str = include_str!("swap.lua");

/// Keys per script call: large enough to amortize the call, small enough to
/// keep one call short on the server.
const KEYS_PER_CALL: usize = 256;

/// How long one Redis request may take before it fails.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis online store: one managed (reconnecting) connection to the
/// store's first node, and the write script for each feature count in use.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    ttl_seconds: u64,
    check_newer: bool,
    scripts: Arc<Mutex<HashMap<usize, redis::Script>>>,
}

/// Opens a managed (reconnecting) connection to the store's first node, or
/// to `url_override` (the command line's `--redis-url`).
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

/// The write script with its HSET arguments spelled out for `n_fields`
/// features: no argument table is built per key, which measured faster
/// (docs/architecture.md).
fn write_script(n_fields: usize) -> redis::Script {
    let pairs: String = (1..=n_fields)
        .map(|f| format!(", ARGV[{}], ARGV[at + {}]", 4 + f, 3 + f))
        .collect();
    redis::Script::new(&WRITE_SCRIPT.replace("--[[FIELDS]]", &pairs))
}

impl RedisStore {
    pub fn new(connection: ConnectionManager, config: &OnlineStoreConfig) -> Self {
        Self {
            connection,
            ttl_seconds: config.key_ttl_seconds.unwrap_or(0),
            check_newer: !config.skip_dedup,
            scripts: Arc::default(),
        }
    }

    /// Connects to the store `config` names (or `url_override`).
    pub async fn connect(
        config: &OnlineStoreConfig,
        url_override: Option<&str>,
    ) -> Result<Self, redis::RedisError> {
        Ok(Self::new(connect(config, url_override).await?, config))
    }

    /// The store's connection, for other keys in the same Redis (dead letters).
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// The write script for views with `n_fields` features.
    pub fn script(&self, n_fields: usize) -> redis::Script {
        let mut scripts = self.scripts.lock().unwrap_or_else(|p| p.into_inner());
        scripts
            .entry(n_fields)
            .or_insert_with(|| write_script(n_fields))
            .clone()
    }

    /// Runs a pipeline of `script`'s calls, loading the script first when
    /// the server does not know it (a restarted or flushed server), and once
    /// more when the connection had dropped (see [`again_after`]).
    async fn run_scripted<T: redis::FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
        script: &redis::Script,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection.clone();
        let mut reconnected = false;
        loop {
            match pipeline.query_async(&mut connection).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    script
                        .prepare_invoke()
                        .load_async(&mut connection)
                        .await
                        .map_err(StoreError::RedisWrite)?;
                }
                Err(e) if !reconnected && again_after(&e) => reconnected = true,
                result => return result.map_err(StoreError::RedisWrite),
            }
        }
    }

    fn pipeline(
        &self,
        script: &redis::Script,
        fields: &ViewFields,
        rows: &[OnlineRow],
    ) -> redis::Pipeline {
        let mut pipeline = redis::pipe();
        for chunk in rows.chunks(KEYS_PER_CALL) {
            let mut call = redis::cmd("EVALSHA");
            call.arg(script.get_hash()).arg(chunk.len());
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

#[async_trait::async_trait]
impl OnlineStore for RedisStore {
    async fn write(
        &self,
        fields: &ViewFields,
        rows: &[OnlineRow],
    ) -> Result<WriteStats, StoreError> {
        if rows.is_empty() {
            return Ok(WriteStats::default());
        }
        let script = self.script(fields.features.len());
        let pipeline = self.pipeline(&script, fields, rows);
        let counts: Vec<u64> = self.run_scripted(&pipeline, &script).await?;
        let written: u64 = counts.iter().sum();
        Ok(WriteStats {
            written,
            skipped_older: rows.len() as u64 - written,
        })
    }

    async fn compare_and_set(&self, updates: &[GuardedUpdate]) -> Result<Vec<bool>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        static SWAP: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(SWAP_SCRIPT));
        let script = &*SWAP;
        let mut pipeline = redis::pipe();
        for chunk in updates.chunks(KEYS_PER_CALL) {
            let mut call = redis::cmd("EVALSHA");
            call.arg(script.get_hash()).arg(chunk.len());
            for update in chunk {
                call.arg(&update.key);
            }
            call.arg(self.ttl_seconds);
            for update in chunk {
                call.arg(&update.guard)
                    .arg(if update.expected_prefix.is_some() {
                        "1"
                    } else {
                        "0"
                    })
                    .arg(update.expected_prefix.as_deref().unwrap_or_default())
                    .arg(update.set.len());
                for (field, value) in &update.set {
                    call.arg(field).arg(value);
                }
            }
            pipeline.add_command(call);
        }
        let replies: Vec<Vec<i64>> = self.run_scripted(&pipeline, script).await?;
        let applied: Vec<bool> = replies.into_iter().flatten().map(|r| r == 1).collect();
        if applied.len() != updates.len() {
            return Err(StoreError::RedisReply {
                expected: updates.len(),
                found: applied.len(),
            });
        }
        Ok(applied)
    }

    async fn read(&self, reads: &[HashRead]) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for read in reads {
            let mut call = redis::cmd("HMGET");
            call.arg(&read.key);
            for field in &read.fields {
                call.arg(field);
            }
            pipeline.add_command(call);
        }
        let mut connection = self.connection.clone();
        match pipeline.query_async(&mut connection).await {
            Err(e) if again_after(&e) => pipeline.query_async(&mut connection).await,
            result => result,
        }
        .map_err(StoreError::RedisRead)
    }
}

/// Whether a request failed because the connection had dropped (a
/// restarted redis-server): the connection manager has reconnected by the
/// next request, so it is sent once more. Safe for every request here:
/// reads change nothing, a newer-wins write applied twice leaves the same
/// state, and a compare-and-set applied before the drop fails its guard
/// the second time and is read and folded again.
fn again_after(error: &redis::RedisError) -> bool {
    error.is_connection_dropped() || error.is_io_error() || error.is_unrecoverable_error()
}
