//! The Redis online store, in Feast's layout, newer-wins, atomically.
//!
//! Feast reads every stored `_ts:<view>` and then writes, in two round trips
//! that another writer can interleave. fvhost sends one Lua script call per
//! chunk of keys: the server compares and writes each key in one step, and
//! a whole batch goes out as one pipeline, one round trip.
//!
//! On a cluster a script call may only name keys of one hash slot, so a
//! batch's keys are grouped by slot ([`slots`]) and each group is its own
//! call, all sent at once; the cluster client routes each to its slot's
//! master and follows `MOVED`/`ASK`. A call repeated after a redirect, a
//! timeout or a failover is harmless: a newer-wins write of the same event
//! finds its own `_ts` already stored and leaves the key as it is.

pub mod connection;
pub mod slots;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fields::ViewFields;
use super::rows::OnlineRow;
use super::store::{GuardedUpdate, HashRead, OnlineStore, StoreError, WriteStats};
use super::timestamp;
use crate::repo::OnlineStoreConfig;
pub use connection::{RESPONSE_TIMEOUT, RedisConnection};
use slots::group_by_slot;

const WRITE_SCRIPT: &str = include_str!("script.lua");
const SWAP_SCRIPT: &str = include_str!("swap.lua");

/// Keys per script call: large enough to amortize the call, small enough to
/// keep one call short on the server.
const KEYS_PER_CALL: usize = 256;

/// A Redis online store (one server, a cluster, or a Sentinel-managed
/// master), and the write script for each feature count in use.
#[derive(Clone)]
pub struct RedisStore {
    connection: RedisConnection,
    ttl_seconds: u64,
    check_newer: bool,
    replicas: ReplicaWait,
    scripts: Arc<Mutex<HashMap<usize, redis::Script>>>,
}

/// Whether a write waits for replicas to hold it before it counts as done
/// (Redis `WAIT`). Redis replicates asynchronously: without waiting, a
/// failover can lose writes the old master acknowledged, after their
/// offsets were committed. Waiting closes that window at the cost of one
/// replication round trip per batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaWait {
    /// Replicas that must acknowledge each write; 0 does not wait.
    pub replicas: u32,
    /// How long to wait for them before the write fails (and is retried).
    pub timeout: Duration,
}

impl ReplicaWait {
    /// Waits for `replicas` replicas, up to 5 s per write.
    pub fn for_replicas(replicas: u32) -> Self {
        Self {
            replicas,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Connects to the store `config` names, or to `url_override` (the
/// command line's `--redis`).
pub async fn connect(
    config: &OnlineStoreConfig,
    url_override: Option<&str>,
) -> Result<RedisConnection, redis::RedisError> {
    RedisConnection::open(config, url_override).await
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
    pub fn new(connection: RedisConnection, config: &OnlineStoreConfig) -> Self {
        Self {
            connection,
            ttl_seconds: config.key_ttl_seconds.unwrap_or(0),
            check_newer: !config.skip_dedup,
            replicas: ReplicaWait::default(),
            scripts: Arc::default(),
        }
    }

    /// Makes every write wait for replicas (see [`ReplicaWait`]).
    pub fn waiting_for(mut self, replicas: ReplicaWait) -> Self {
        self.replicas = replicas;
        self
    }

    /// Connects to the store `config` names (or `url_override`).
    pub async fn connect(
        config: &OnlineStoreConfig,
        url_override: Option<&str>,
    ) -> Result<Self, redis::RedisError> {
        Ok(Self::new(connect(config, url_override).await?, config))
    }

    /// The store's connection, for other keys in the same Redis (dead letters).
    pub fn connection(&self) -> RedisConnection {
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

    /// The positions of `keys` in groups one request may carry: one group
    /// on a single server, one per hash slot on a cluster.
    fn groups<'a>(&self, keys: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<Vec<usize>> {
        group_by_slot(keys, self.connection.is_cluster())
    }

    /// Runs each pipeline (one per slot group), all at once, and returns
    /// their replies in order.
    async fn run_all<T: redis::FromRedisValue>(
        &self,
        pipelines: Vec<redis::Pipeline>,
        script: &redis::Script,
    ) -> Result<Vec<T>, StoreError> {
        let calls = pipelines
            .iter()
            .map(|pipeline| self.run_scripted::<T>(pipeline, script));
        futures::future::try_join_all(calls).await
    }

    /// Runs a pipeline of `script`'s calls, loading the script first when
    /// the server does not know it (a restarted or flushed server, a new
    /// master after failover), and once more when the connection had
    /// dropped (see [`again_after`]).
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

    /// Waits until the configured number of replicas hold every write
    /// sent so far (on a cluster: of every master).
    async fn wait_for_replicas(&self) -> Result<(), StoreError> {
        let wanted = self.replicas.replicas;
        if wanted == 0 {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        let acknowledged: i64 = redis::cmd("WAIT")
            .arg(wanted)
            .arg(self.replicas.timeout.as_millis() as u64)
            .query_async(&mut connection)
            .await
            .map_err(StoreError::RedisWrite)?;
        if acknowledged < i64::from(wanted) {
            return Err(StoreError::ReplicasBehind {
                wanted,
                acknowledged,
            });
        }
        Ok(())
    }

    fn write_pipeline(
        &self,
        script: &redis::Script,
        fields: &ViewFields,
        rows: &[&OnlineRow],
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

    fn swap_pipeline(&self, script: &redis::Script, updates: &[&GuardedUpdate]) -> redis::Pipeline {
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
        pipeline
    }
}

/// The items at `positions`, borrowed.
fn pick<'a, T>(items: &'a [T], positions: &[usize]) -> Vec<&'a T> {
    positions.iter().map(|&i| &items[i]).collect()
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
        let groups = self.groups(rows.iter().map(|row| row.key.as_slice()));
        let pipelines = groups
            .iter()
            .map(|group| self.write_pipeline(&script, fields, &pick(rows, group)))
            .collect();
        let counts: Vec<Vec<u64>> = self.run_all(pipelines, &script).await?;
        self.wait_for_replicas().await?;
        let written: u64 = counts.iter().flatten().sum();
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
        let groups = self.groups(updates.iter().map(|update| update.key.as_slice()));
        let pipelines = groups
            .iter()
            .map(|group| self.swap_pipeline(script, &pick(updates, group)))
            .collect();
        let replies: Vec<Vec<Vec<i64>>> = self.run_all(pipelines, script).await?;
        let mut applied = vec![false; updates.len()];
        for (group, reply) in groups.iter().zip(replies) {
            let flags: Vec<i64> = reply.into_iter().flatten().collect();
            if flags.len() != group.len() {
                return Err(StoreError::RedisReply {
                    expected: group.len(),
                    found: flags.len(),
                });
            }
            for (&position, flag) in group.iter().zip(flags) {
                applied[position] = flag == 1;
            }
        }
        self.wait_for_replicas().await?;
        Ok(applied)
    }

    async fn read(&self, reads: &[HashRead]) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.groups(reads.iter().map(|read| read.key.as_slice()));
        let pipelines: Vec<redis::Pipeline> = groups
            .iter()
            .map(|group| read_pipeline(&pick(reads, group)))
            .collect();
        let calls = pipelines.iter().map(|pipeline| self.run_read(pipeline));
        let replies = futures::future::try_join_all(calls).await?;
        let mut values = vec![Vec::new(); reads.len()];
        for (group, reply) in groups.iter().zip(replies) {
            if reply.len() != group.len() {
                return Err(StoreError::RedisReply {
                    expected: group.len(),
                    found: reply.len(),
                });
            }
            for (&position, fields) in group.iter().zip(reply) {
                values[position] = fields;
            }
        }
        Ok(values)
    }
}

/// One pipeline of `HMGET`s (one slot group's keys).
fn read_pipeline(reads: &[&HashRead]) -> redis::Pipeline {
    let mut pipeline = redis::pipe();
    for read in reads {
        let mut call = redis::cmd("HMGET");
        call.arg(&read.key);
        for field in &read.fields {
            call.arg(field);
        }
        pipeline.add_command(call);
    }
    pipeline
}

impl RedisStore {
    /// Runs a read pipeline, once more if the connection had dropped.
    async fn run_read(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
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
