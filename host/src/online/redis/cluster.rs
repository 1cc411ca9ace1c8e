//! fvhost's Redis Cluster client: a slot map, one multiplexed connection
//! per master, and redirects followed command by command.
//!
//! A batch's commands (one per slot group, see [`super::slots`]) go out as
//! one pipeline per master, all masters at once: one round trip per node
//! per batch. Each command's reply is looked at on its own:
//! - `MOVED slot addr` (the slot has a new owner: resharding, failover):
//!   the slot map is corrected and refreshed, the command re-sent there;
//! - `ASK slot addr` (the slot is migrating and this key has left):
//!   re-sent to `addr` preceded by `ASKING`;
//! - `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`, or the node
//!   unreachable: re-sent after a short backoff and a slot map refresh.
//!
//! A command re-sent after its node went away may have run already. Every
//! command fvhost sends to the online store is safe to repeat: a
//! newer-wins write of the same event finds its own `_ts` stored and
//! leaves the key as it is; a compare-and-set that ran fails its guard the
//! second time and is read and folded again by its caller; `XADD` of a dead
//! letter may be stored twice (at-least-once, as the Kafka destination).
//!
//! (The redis crate's cluster client was tried first: after a reshard
//! under concurrent writes it stopped answering, every request timing out,
//! and it routes a pipeline to one slot only.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::FutureExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

/// Hash slots in a Redis Cluster.
const SLOTS: usize = 16384;
/// Rounds of re-sending a batch's redirected or failed commands before the
/// batch fails (the stream loop then retries it whole, with backoff).
const MAX_ROUNDS: u32 = 12;
/// The longest one [`ClusterConnection::run`] may take, all rounds, slot
/// map refreshes and reconnections included: a cluster that stops
/// answering fails the call (a 503 from `serve`, a retried batch) instead
/// of holding it.
const RUN_DEADLINE: Duration = Duration::from_secs(15);
/// The longest one node may take to answer `CLUSTER SLOTS`.
const SLOTS_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis Cluster client. Cheap to clone: clones share the slot map and
/// the node connections.
#[derive(Clone)]
pub struct ClusterConnection {
    inner: Arc<Inner>,
}

struct Inner {
    /// `host:port` of the nodes given in the connection string.
    seeds: Vec<String>,
    /// Credentials and timeouts for every node connection.
    node_info: redis::RedisConnectionInfo,
    config: redis::AsyncConnectionConfig,
    /// TLS to every node (`ssl=true`).
    tls: Option<Arc<super::connection::NodeTls>>,
    /// The master (`host:port`) of each slot, as last learned.
    slots: RwLock<Vec<Option<Arc<str>>>>,
    nodes: Mutex<HashMap<Arc<str>, MultiplexedConnection>>,
    /// Held while the slot map is refreshed, so concurrent batches refresh once.
    refreshing: tokio::sync::Mutex<()>,
}

/// Where a command goes next.
#[derive(Debug, Clone)]
enum Target {
    /// The master the slot map names.
    Owner,
    /// A node a `MOVED` named.
    Moved(Arc<str>),
    /// A node an `ASK` named: the command must follow `ASKING`.
    Asked(Arc<str>),
}

/// A node's share of a round: each command's position, and whether it
/// must follow `ASKING`.
type NodeBatch = (Arc<str>, Vec<(usize, bool)>);

/// What a reply says to do with its command.
enum Outcome {
    Done(Value),
    Redirect(Target),
    Retry,
}

impl ClusterConnection {
    /// Connects to the cluster `seeds` (`host:port`) belong to and learns
    /// its slot map.
    pub async fn open(
        seeds: Vec<String>,
        node_info: redis::RedisConnectionInfo,
        config: redis::AsyncConnectionConfig,
        tls: Option<Arc<super::connection::NodeTls>>,
    ) -> RedisResult<Self> {
        let connection = Self {
            inner: Arc::new(Inner {
                seeds,
                node_info,
                config,
                tls,
                slots: RwLock::new(vec![None; SLOTS]),
                nodes: Mutex::default(),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        };
        connection.refresh_slots().await?;
        Ok(connection)
    }

    /// Runs `commands`, each with the slot of its keys, and returns each
    /// one's reply in order. A reply may be a server error other than a
    /// redirect (`NOSCRIPT`, say): the caller decides about those.
    pub async fn run(&self, commands: &[(u16, Cmd)]) -> RedisResult<Vec<Value>> {
        match tokio::time::timeout(RUN_DEADLINE, self.run_rounds(commands)).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::from((
                ErrorKind::Io,
                "the Redis Cluster did not answer",
                format!(
                    "within {} s (masters: {})",
                    RUN_DEADLINE.as_secs(),
                    self.masters().join(", ")
                ),
            ))),
        }
    }

    async fn run_rounds(&self, commands: &[(u16, Cmd)]) -> RedisResult<Vec<Value>> {
        let mut replies: Vec<Option<Value>> = vec![None; commands.len()];
        let mut pending: Vec<(usize, Target)> =
            (0..commands.len()).map(|i| (i, Target::Owner)).collect();
        let mut last_problem = None;
        for round in 0..MAX_ROUNDS {
            let by_node = self.route(&pending, commands);
            let sends = by_node
                .iter()
                .map(|(node, batch)| self.send(node.clone(), batch, commands));
            let results = futures::future::join_all(sends).await;
            let mut next = Vec::new();
            let mut refresh = false;
            for ((_, batch), result) in by_node.iter().zip(results) {
                match result {
                    Err(error) => {
                        refresh = true;
                        last_problem = Some(error);
                        next.extend(batch.iter().map(|(i, _)| (*i, Target::Owner)));
                    }
                    Ok(values) => {
                        for ((i, _), value) in batch.iter().zip(values) {
                            match outcome(value) {
                                Outcome::Done(value) => replies[*i] = Some(value),
                                Outcome::Redirect(target) => {
                                    if let Target::Moved(node) = &target {
                                        self.set_owner(commands[*i].0, node.clone());
                                        refresh = true;
                                    }
                                    next.push((*i, target));
                                }
                                Outcome::Retry => {
                                    refresh = true;
                                    next.push((*i, Target::Owner));
                                }
                            }
                        }
                    }
                }
            }
            if next.is_empty() {
                return Ok(replies
                    .into_iter()
                    .map(|r| r.unwrap_or(Value::Nil))
                    .collect());
            }
            pending = next;
            if refresh {
                tokio::time::sleep(backoff(round)).await;
                if let Err(error) = self.refresh_slots().await {
                    last_problem = Some(error);
                }
            }
        }
        Err(last_problem.unwrap_or_else(|| {
            RedisError::from((
                ErrorKind::Server(ServerErrorKind::TryAgain),
                "the cluster kept redirecting commands",
                format!(
                    "{} commands unsettled after {MAX_ROUNDS} rounds",
                    pending.len()
                ),
            ))
        }))
    }

    /// The pending commands grouped by the node each goes to next.
    fn route(&self, pending: &[(usize, Target)], commands: &[(u16, Cmd)]) -> Vec<NodeBatch> {
        let slots = self.inner.slots.read().unwrap_or_else(|p| p.into_inner());
        let mut by_node: HashMap<Arc<str>, Vec<(usize, bool)>> = HashMap::new();
        for (i, target) in pending {
            let (node, asking) = match target {
                Target::Owner => match &slots[usize::from(commands[*i].0) % SLOTS] {
                    Some(node) => (node.clone(), false),
                    None => (Arc::from(self.inner.seeds[0].as_str()), false),
                },
                Target::Moved(node) => (node.clone(), false),
                Target::Asked(node) => (node.clone(), true),
            };
            by_node.entry(node).or_default().push((*i, asking));
        }
        by_node.into_iter().collect()
    }

    /// Sends one node its commands as one pipeline; returns one reply per
    /// command (`ASKING` replies left out).
    async fn send(
        &self,
        node: Arc<str>,
        batch: &[(usize, bool)],
        commands: &[(u16, Cmd)],
    ) -> RedisResult<Vec<Value>> {
        let mut pipeline = redis::pipe();
        pipeline.ignore_errors();
        for (i, asking) in batch {
            if *asking {
                pipeline.add_command(redis::cmd("ASKING")).ignore();
            }
            pipeline.add_command(commands[*i].1.clone());
        }
        let result = match self.node(&node).await {
            Ok(mut connection) => pipeline.query_async(&mut connection).await,
            Err(error) => Err(error),
        };
        result.map_err(|error| {
            if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
                self.lock_nodes().remove(&node);
            }
            RedisError::from((error.kind(), "cluster node", format!("{node}: {error}")))
        })
    }

    /// The connection to `node`, opened on first use.
    async fn node(&self, node: &Arc<str>) -> RedisResult<MultiplexedConnection> {
        if let Some(connection) = self.lock_nodes().get(node) {
            return Ok(connection.clone());
        }
        let (host, port) = split_address(node)?;
        let tls = self.inner.tls.as_deref();
        let info = super::connection::node_info(&host, port, &self.inner.node_info, tls)?;
        let client = super::connection::client_for(info, tls)?;
        let connection = client
            .get_multiplexed_async_connection_with_config(&self.inner.config)
            .await?;
        self.lock_nodes().insert(node.clone(), connection.clone());
        Ok(connection)
    }

    fn lock_nodes(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, MultiplexedConnection>> {
        self.inner.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_owner(&self, slot: u16, node: Arc<str>) {
        let mut slots = self.inner.slots.write().unwrap_or_else(|p| p.into_inner());
        slots[usize::from(slot) % SLOTS] = Some(node);
    }

    /// The masters the slot map names now.
    pub fn masters(&self) -> Vec<Arc<str>> {
        let slots = self.inner.slots.read().unwrap_or_else(|p| p.into_inner());
        let mut masters: Vec<Arc<str>> = slots.iter().flatten().cloned().collect();
        masters.sort();
        masters.dedup();
        masters
    }

    /// Asks the known masters, then the seeds, for `CLUSTER SLOTS` and
    /// takes the first answer.
    async fn refresh_slots(&self) -> RedisResult<()> {
        let _refreshing = self.inner.refreshing.lock().await;
        let mut candidates = self.masters();
        candidates.extend(self.inner.seeds.iter().map(|s| Arc::from(s.as_str())));
        let mut last_error = None;
        for node in candidates {
            let answer = async {
                let mut connection = self.node(&node).await?;
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Value>(&mut connection)
                    .await
            };
            let answer = match tokio::time::timeout(SLOTS_TIMEOUT, answer).await {
                Ok(answer) => answer,
                Err(_) => Err(RedisError::from((
                    ErrorKind::Io,
                    "no answer to CLUSTER SLOTS",
                    format!("{node} within {} s", SLOTS_TIMEOUT.as_secs()),
                ))),
            };
            match answer.and_then(|reply| slot_map(&reply)) {
                Ok(map) => {
                    *self.inner.slots.write().unwrap_or_else(|p| p.into_inner()) = map;
                    return Ok(());
                }
                Err(error) => {
                    self.lock_nodes().remove(&node);
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| {
            RedisError::from((ErrorKind::InvalidClientConfig, "no cluster node to ask"))
        }))
    }

    /// Runs one command on every master; returns their replies.
    async fn on_every_master(&self, cmd: &Cmd) -> RedisResult<Vec<Value>> {
        let masters = self.masters();
        let sends = masters.iter().map(|node| async move {
            let mut connection = self.node(node).await?;
            cmd.query_async::<Value>(&mut connection).await
        });
        futures::future::try_join_all(sends).await
    }

    /// Runs one command where its key lives (or on every master, for the
    /// commands that concern all of them).
    async fn run_one(&self, cmd: &Cmd) -> RedisResult<Value> {
        match routing(cmd) {
            Routing::Slot(slot) => {
                let mut replies = self.run(&[(slot, cmd.clone())]).await?;
                match replies.pop() {
                    Some(Value::ServerError(error)) => Err(error.into()),
                    Some(value) => Ok(value),
                    None => Ok(Value::Nil),
                }
            }
            Routing::EveryMaster { smallest } => {
                let replies = self.on_every_master(cmd).await?;
                if smallest {
                    let least = replies.iter().filter_map(as_int).min().unwrap_or(0);
                    Ok(Value::Int(least))
                } else {
                    Ok(replies.into_iter().next().unwrap_or(Value::Nil))
                }
            }
        }
    }

    /// Runs a pipeline whose commands share one slot (a view's dead letters).
    async fn run_pipeline(&self, pipeline: &Pipeline) -> RedisResult<Vec<Value>> {
        let slot = pipeline
            .cmd_iter()
            .find_map(|cmd| match routing(cmd) {
                Routing::Slot(slot) => Some(slot),
                Routing::EveryMaster { .. } => None,
            })
            .unwrap_or(0);
        let commands: Vec<(u16, Cmd)> = pipeline.cmd_iter().map(|c| (slot, c.clone())).collect();
        self.run(&commands).await
    }
}

/// Where a command runs.
enum Routing {
    Slot(u16),
    /// Every master; `smallest`: the answer is the least integer (`WAIT`).
    EveryMaster {
        smallest: bool,
    },
}

/// The slot of a command's first key, or every master for the keyless
/// commands fvhost sends (`PING`, `WAIT`, `SCRIPT LOAD`).
fn routing(cmd: &Cmd) -> Routing {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args
        .first()
        .map(|n| n.to_ascii_uppercase())
        .unwrap_or_default();
    let key = match name.as_slice() {
        b"EVALSHA" | b"EVAL" => {
            let keys = args.get(2).and_then(|n| std::str::from_utf8(n).ok());
            match keys.and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n > 0 => args.get(3),
                _ => None,
            }
        }
        b"PING" | b"WAIT" | b"SCRIPT" | b"INFO" => None,
        _ => args.get(1),
    };
    match key {
        Some(key) => Routing::Slot(slot_of(key)),
        None => Routing::EveryMaster {
            smallest: name == b"WAIT",
        },
    }
}

/// The hash slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag
/// (the part between the first `{` and the next `}`, when not empty),
/// modulo 16384 — as every Redis Cluster node computes it.
pub fn slot_of(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key).unwrap_or(key)) % SLOTS as u16
}

fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|b| *b == b'{')?;
    let close = key[open + 1..].iter().position(|b| *b == b'}')?;
    (close > 0).then(|| &key[open + 1..open + 1 + close])
}

fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// What `value`, one command's reply, says to do.
fn outcome(value: Value) -> Outcome {
    let Value::ServerError(error) = &value else {
        return Outcome::Done(value);
    };
    match error.kind() {
        Some(ServerErrorKind::Moved | ServerErrorKind::Ask) => {
            let ask = error.kind() == Some(ServerErrorKind::Ask);
            let node = error
                .details()
                .and_then(|d| d.split_ascii_whitespace().nth(1))
                .map(Arc::<str>::from);
            match node {
                Some(node) if ask => Outcome::Redirect(Target::Asked(node)),
                Some(node) => Outcome::Redirect(Target::Moved(node)),
                None => Outcome::Retry,
            }
        }
        Some(
            ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::MasterDown,
        ) => Outcome::Retry,
        _ => Outcome::Done(value),
    }
}

/// How long to wait before re-sending: 10 ms doubling, at most 1 s.
fn backoff(round: u32) -> Duration {
    Duration::from_millis((10u64 << round.min(7)).min(1000))
}

/// The slot map in a `CLUSTER SLOTS` reply: `[start, end, [host, port, ..], replicas..]`.
fn slot_map(reply: &Value) -> RedisResult<Vec<Option<Arc<str>>>> {
    let malformed = |what: &str| {
        RedisError::from((
            ErrorKind::Parse,
            "malformed CLUSTER SLOTS reply",
            what.to_string(),
        ))
    };
    let Value::Array(ranges) = reply else {
        return Err(malformed("not an array"));
    };
    let mut map = vec![None; SLOTS];
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err(malformed("a range is not an array"));
        };
        let (Some(start), Some(end), Some(Value::Array(master))) = (
            parts.first().and_then(as_int),
            parts.get(1).and_then(as_int),
            parts.get(2),
        ) else {
            return Err(malformed("a range lacks start, end or master"));
        };
        let host = match master.first() {
            Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(Value::SimpleString(text)) => text.clone(),
            _ => return Err(malformed("a master has no host")),
        };
        let port = master
            .get(1)
            .and_then(as_int)
            .ok_or_else(|| malformed("no port"))?;
        let node: Arc<str> = Arc::from(format!("{host}:{port}"));
        let (start, end) = (
            start.clamp(0, SLOTS as i64 - 1),
            end.clamp(0, SLOTS as i64 - 1),
        );
        for slot in start..=end {
            map[slot as usize] = Some(node.clone());
        }
    }
    if map.iter().all(Option::is_none) {
        return Err(malformed("no slot is served"));
    }
    Ok(map)
}

fn split_address(node: &str) -> RedisResult<(String, u16)> {
    let invalid = || {
        RedisError::from((
            ErrorKind::InvalidClientConfig,
            "not a host:port",
            node.to_string(),
        ))
    };
    let (host, port) = node.rsplit_once(':').ok_or_else(invalid)?;
    Ok((host.to_string(), port.parse().map_err(|_| invalid())?))
}

impl ConnectionLike for ClusterConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move { self.run_one(cmd).await }.boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            let replies = self.run_pipeline(pipeline).await?;
            Ok(replies.into_iter().skip(offset).take(count).collect())
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_go_where_their_first_key_lives() {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg("abc").arg(2).arg("foo").arg("foo");
        assert!(matches!(routing(&evalsha), Routing::Slot(12182)));
        let mut xadd = redis::cmd("XADD");
        xadd.arg("bar").arg("*");
        assert!(matches!(routing(&xadd), Routing::Slot(5061)));
        let mut wait = redis::cmd("WAIT");
        wait.arg(1).arg(100);
        assert!(matches!(
            routing(&wait),
            Routing::EveryMaster { smallest: true }
        ));
        assert!(matches!(
            routing(&redis::cmd("PING")),
            Routing::EveryMaster { smallest: false }
        ));
    }

    #[test]
    fn slots_are_computed_as_redis_computes_them() {
        // CLUSTER KEYSLOT answers: foo 12182, bar 5061, {user1}.x = user1 8106.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"bar"), 5061);
        assert_eq!(slot_of(b"{user1}.following"), slot_of(b"user1"));
        assert_eq!(slot_of(b"user1"), 8106);
        assert_eq!(slot_of(b"{}foo"), slot_of(b"{}foo"));
        assert_ne!(
            slot_of(b"{}foo"),
            slot_of(b"foo"),
            "an empty tag hashes the whole key"
        );
    }

    #[test]
    fn a_cluster_slots_reply_becomes_an_owner_per_slot() {
        let node = |port| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(0), Value::Int(8191), node(7000)]),
            Value::Array(vec![
                Value::Int(8192),
                Value::Int(16383),
                node(7001),
                node(7002),
            ]),
        ]);
        let map = slot_map(&reply).unwrap();
        assert_eq!(map[0].as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(map[8191].as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(map[16383].as_deref(), Some("127.0.0.1:7001"));
        assert!(slot_map(&Value::Array(vec![])).is_err());
    }

    #[test]
    fn redirects_and_transient_errors_are_told_apart() {
        let error = |text: &str| {
            let parsed = redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).unwrap();
            outcome(parsed)
        };
        assert!(matches!(
            error("MOVED 3999 127.0.0.1:6381"),
            Outcome::Redirect(Target::Moved(node)) if &*node == "127.0.0.1:6381"
        ));
        assert!(matches!(
            error("ASK 3999 127.0.0.1:6382"),
            Outcome::Redirect(Target::Asked(node)) if &*node == "127.0.0.1:6382"
        ));
        assert!(matches!(
            error("TRYAGAIN Multiple keys request during rehashing"),
            Outcome::Retry
        ));
        assert!(matches!(
            error("NOSCRIPT No matching script"),
            Outcome::Done(_)
        ));
    }
}
