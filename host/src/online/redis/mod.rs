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

pub mod cluster;
pub mod connection;
pub mod slots;
pub mod tracking;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fields::ViewFields;
use super::rows::OnlineRow;
use super::store::{GuardedUpdate, HashRead, OnlineStore, StoreError, WriteStats};
use super::timestamp;
use crate::repo::OnlineStoreConfig;
pub use connection::{RESPONSE_TIMEOUT, RedisConnection, target_name};
use slots::{SlotGroup, group_by_slot};

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
    /// The deployment, as errors name it.
    target: Arc<str>,
}

/// Makes the store error of a failed read or write, naming the deployment.
struct Failure {
    at: Arc<str>,
    write: bool,
}

impl Failure {
    fn of(&self, source: redis::RedisError) -> StoreError {
        let at = Arc::clone(&self.at);
        if self.write {
            StoreError::RedisWrite { at, source }
        } else {
            StoreError::RedisRead { at, source }
        }
    }
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
            target: Arc::from("redis"),
        }
    }

    /// Names the deployment in errors (see [`target_name`]).
    pub fn named(mut self, target: impl Into<Arc<str>>) -> Self {
        self.target = target.into();
        self
    }

    fn read_failed(&self) -> Failure {
        Failure {
            at: Arc::clone(&self.target),
            write: false,
        }
    }

    fn write_failed(&self) -> Failure {
        Failure {
            at: Arc::clone(&self.target),
            write: true,
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
    fn groups<'a>(&self, keys: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<SlotGroup> {
        group_by_slot(keys, self.connection.is_cluster())
    }

    /// Runs `commands`, each with the hash slot of its keys, and returns
    /// their replies in order: one pipeline on a single server or behind
    /// Sentinel; on a cluster one pipeline per master, all at once. Where a
    /// server does not know `script` (restarted, flushed, a new master
    /// after failover) it is loaded and the calls sent again.
    async fn run_commands(
        &self,
        commands: Vec<(u16, redis::Cmd)>,
        script: Option<&redis::Script>,
        failed: &Failure,
    ) -> Result<Vec<redis::Value>, StoreError> {
        match &self.connection {
            RedisConnection::Cluster(cluster) => {
                let mut replies = cluster.run(&commands).await.map_err(|e| failed.of(e))?;
                let unknown: Vec<usize> = (0..replies.len())
                    .filter(|i| lacks_script(&replies[*i]))
                    .collect();
                if let (Some(script), false) = (script, unknown.is_empty()) {
                    let mut connection = self.connection.clone();
                    script
                        .prepare_invoke()
                        .load_async(&mut connection)
                        .await
                        .map_err(|e| failed.of(e))?;
                    let again: Vec<(u16, redis::Cmd)> =
                        unknown.iter().map(|i| commands[*i].clone()).collect();
                    let second = cluster.run(&again).await.map_err(|e| failed.of(e))?;
                    for (i, reply) in unknown.into_iter().zip(second) {
                        replies[i] = reply;
                    }
                }
                match replies.iter().find_map(server_error) {
                    Some(error) => Err(failed.of(error)),
                    None => Ok(replies),
                }
            }
            _ => {
                let mut pipeline = redis::pipe();
                for (_, command) in commands {
                    pipeline.add_command(command);
                }
                self.run_pipeline(&pipeline, script, failed).await
            }
        }
    }

    /// Runs a pipeline on a single server or Sentinel's master, loading
    /// `script` first when the server does not know it, and once more when
    /// the connection had dropped (see [`again_after`]).
    async fn run_pipeline(
        &self,
        pipeline: &redis::Pipeline,
        script: Option<&redis::Script>,
        failed: &Failure,
    ) -> Result<Vec<redis::Value>, StoreError> {
        let mut connection = self.connection.clone();
        let mut reconnected = false;
        let mut loaded = false;
        loop {
            match pipeline.query_async(&mut connection).await {
                Err(e)
                    if !loaded
                        && e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    let Some(script) = script else {
                        return Err(failed.of(e));
                    };
                    script
                        .prepare_invoke()
                        .load_async(&mut connection)
                        .await
                        .map_err(|e| failed.of(e))?;
                    loaded = true;
                }
                Err(e) if !reconnected && again_after(&e) => reconnected = true,
                result => return result.map_err(|e| failed.of(explain(e))),
            }
        }
    }

    /// How many replicas hold everything written so far (on a cluster: the
    /// fewest of any master): `WAIT 0 0` answers at once.
    pub async fn replicas_now(&self) -> Result<i64, StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("WAIT")
            .arg(0)
            .arg(0)
            .query_async(&mut connection)
            .await
            .map_err(|e| self.read_failed().of(e))
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
            .map_err(|e| self.write_failed().of(e))?;
        if acknowledged < i64::from(wanted) {
            return Err(StoreError::ReplicasBehind {
                wanted,
                acknowledged,
            });
        }
        Ok(())
    }

    /// The script calls writing `rows` (all of one slot group).
    fn write_calls(
        &self,
        script: &redis::Script,
        fields: &ViewFields,
        rows: &[&OnlineRow],
    ) -> Vec<redis::Cmd> {
        rows.chunks(KEYS_PER_CALL)
            .map(|chunk| {
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
                call
            })
            .collect()
    }

    /// The script calls applying `updates` (all of one slot group).
    fn swap_calls(&self, script: &redis::Script, updates: &[&GuardedUpdate]) -> Vec<redis::Cmd> {
        updates
            .chunks(KEYS_PER_CALL)
            .map(|chunk| {
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
                call
            })
            .collect()
    }

    /// Each group's calls, with the group's slot.
    fn calls_by_slot<T>(
        groups: &[SlotGroup],
        items: &[T],
        calls: impl Fn(&[&T]) -> Vec<redis::Cmd>,
    ) -> Vec<(u16, redis::Cmd)> {
        let mut all = Vec::new();
        for group in groups {
            let members = pick(items, &group.positions);
            all.extend(calls(&members).into_iter().map(|call| (group.slot, call)));
        }
        all
    }
}

/// `error`, with a hint when a single server's answer shows it is a
/// cluster node (`redis_type` should say `redis_cluster`).
fn explain(error: redis::RedisError) -> redis::RedisError {
    let moved = error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved);
    let cross_slot = error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot);
    if !(moved || cross_slot) {
        return error;
    }
    redis::RedisError::from((
        error.kind(),
        "the server is a Redis Cluster node",
        format!("{error} (set online_store.redis_type: redis_cluster)"),
    ))
}

/// Whether a reply says the server does not know the script.
fn lacks_script(reply: &redis::Value) -> bool {
    matches!(reply, redis::Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::NoScript))
}

/// The error a reply carries, if it is one.
fn server_error(reply: &redis::Value) -> Option<redis::RedisError> {
    match reply {
        redis::Value::ServerError(error) => Some(error.clone().into()),
        _ => None,
    }
}

/// A reply read as `T`, or the store error saying it was not one.
fn reply_as<T: redis::FromRedisValue>(
    reply: redis::Value,
    failed: &Failure,
) -> Result<T, StoreError> {
    redis::from_redis_value(reply).map_err(|e| failed.of(e.into()))
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
        let failed = self.write_failed();
        if rows.is_empty() {
            return Ok(WriteStats::default());
        }
        let script = self.script(fields.features.len());
        let groups = self.groups(rows.iter().map(|row| row.key.as_slice()));
        let calls = Self::calls_by_slot(&groups, rows, |members| {
            self.write_calls(&script, fields, members)
        });
        let replies = self.run_commands(calls, Some(&script), &failed).await?;
        let mut written = 0u64;
        for reply in replies {
            written += reply_as::<u64>(reply, &failed)?;
        }
        self.wait_for_replicas().await?;
        Ok(WriteStats {
            written,
            skipped_older: rows.len() as u64 - written.min(rows.len() as u64),
        })
    }

    async fn compare_and_set(&self, updates: &[GuardedUpdate]) -> Result<Vec<bool>, StoreError> {
        let failed = self.write_failed();
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        static SWAP: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(SWAP_SCRIPT));
        let script = &*SWAP;
        let groups = self.groups(updates.iter().map(|update| update.key.as_slice()));
        let calls =
            Self::calls_by_slot(&groups, updates, |members| self.swap_calls(script, members));
        let replies = self.run_commands(calls, Some(script), &failed).await?;
        let mut flags = Vec::with_capacity(updates.len());
        for reply in replies {
            flags.extend(reply_as::<Vec<i64>>(reply, &failed)?);
        }
        // Calls were made group by group: put each flag back at its update.
        let order = groups.iter().flat_map(|group| &group.positions);
        if flags.len() != updates.len() {
            return Err(StoreError::RedisReply {
                expected: updates.len(),
                found: flags.len(),
            });
        }
        let mut applied = vec![false; updates.len()];
        for (&position, flag) in order.zip(flags) {
            applied[position] = flag == 1;
        }
        self.wait_for_replicas().await?;
        Ok(applied)
    }

    async fn read(&self, reads: &[HashRead]) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
        let failed = self.read_failed();
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.groups(reads.iter().map(|read| read.key.as_slice()));
        let calls = Self::calls_by_slot(&groups, reads, |members| {
            members.iter().map(|read| hmget(read)).collect()
        });
        let replies = self.run_commands(calls, None, &failed).await?;
        if replies.len() != reads.len() {
            return Err(StoreError::RedisReply {
                expected: reads.len(),
                found: replies.len(),
            });
        }
        let mut values = vec![Vec::new(); reads.len()];
        for (&position, reply) in groups
            .iter()
            .flat_map(|group| &group.positions)
            .zip(replies)
        {
            values[position] = reply_as(reply, &failed)?;
        }
        Ok(values)
    }
}

/// The `HMGET` reading one key's fields.
fn hmget(read: &HashRead) -> redis::Cmd {
    let mut call = redis::cmd("HMGET");
    call.arg(&read.key);
    for field in read.fields.iter() {
        call.arg(field);
    }
    call
}

/// Whether a request failed because the connection had dropped (a
/// restarted redis-server): the connection manager has reconnected by the
/// next request, so it is sent once more. Safe for every request here:
/// reads change nothing, a newer-wins write applied twice leaves the same
/// state, and a compare-and-set applied before the drop fails its guard
/// the second time and is read and folded again.
pub(crate) fn again_after(error: &redis::RedisError) -> bool {
    error.is_connection_dropped() || error.is_io_error() || error.is_unrecoverable_error()
}
