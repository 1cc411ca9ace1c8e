//! One connection for each Redis deployment Feast's store config names:
//! a single server (`redis_type: redis`), a cluster (`redis_cluster`), or
//! the master a Sentinel set names (`redis_sentinel`).
//!
//! Every user of the online store's Redis (the writer, the readers, dead
//! letters, readiness) goes through [`RedisConnection`], so none of them
//! knows which deployment it talks to. What differs is handled here:
//! - a single server: a managed connection that reconnects to the same address;
//! - a cluster: fvhost's cluster client ([`super::cluster`]), which keeps
//!   the slot map, routes each command by its key's slot and follows
//!   `MOVED`/`ASK` (resharding, failover). A command may only touch keys of
//!   one slot: callers group keys with [`super::slots`];
//! - Sentinel: a connection to the current master, asked of the sentinels
//!   again whenever the master is lost (dropped connection, `READONLY` from
//!   a demoted master), so writes follow a failover.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use super::cluster::ClusterConnection;
use crate::repo::{ConnectionString, OnlineStoreConfig, RedisType};

/// How long one Redis request may take before it fails.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the online store's Redis, whatever its deployment.
/// Cheap to clone: clones share the underlying connections.
#[derive(Clone)]
pub enum RedisConnection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConnection),
}

impl RedisConnection {
    /// Connects to the deployment `config` names. `url_override` (the
    /// command line's `--redis`) replaces the connection string's nodes: a
    /// `redis://` URL of the server, of one cluster node (a seed), or of a
    /// sentinel, as `redis_type` says.
    pub async fn open(config: &OnlineStoreConfig, url_override: Option<&str>) -> RedisResult<Self> {
        let redis_type = RedisType::parse(&config.redis_type).map_err(invalid_config)?;
        let options = ConnectionString::parse(&config.connection_string).map_err(invalid_config)?;
        let (nodes, named) = match url_override {
            Some(url) => {
                let node = redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| {
                    invalid_config(format!("--redis `{url}` is not a redis:// URL ({e})"))
                })?;
                (vec![node], format!("--redis {}", node_name(url)))
            }
            None => {
                let settings = options.redis_settings();
                let nodes = options
                    .addresses()
                    .map_err(invalid_config)?
                    .into_iter()
                    .map(|(host, port)| {
                        redis::IntoConnectionInfo::into_connection_info((host.as_str(), port))
                            .map(|info| info.set_redis_settings(settings.clone()))
                    })
                    .collect::<RedisResult<Vec<_>>>()?;
                (nodes, options.nodes.join(","))
            }
        };
        let opened = match redis_type {
            RedisType::Single => Self::open_node(nodes[0].clone()).await,
            RedisType::Cluster => Self::open_cluster(&nodes).await,
            RedisType::Sentinel => {
                let master = config.sentinel_master.as_deref().unwrap_or("mymaster");
                if master.is_empty() {
                    return Err(invalid_config("sentinel_master is empty".into()));
                }
                SentinelConnection::open(nodes, master, &options)
                    .await
                    .map(Self::Sentinel)
            }
        };
        opened.map_err(|e| explain_open_error(&config.redis_type, &named, e))
    }

    async fn open_node(node: redis::ConnectionInfo) -> RedisResult<Self> {
        let client = redis::Client::open(node)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(3);
        let connect = client.get_connection_manager_with_config(config);
        match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), connect).await {
            Ok(result) => result.map(Self::Node),
            Err(_) => Err(RedisError::from((
                ErrorKind::Io,
                "no answer",
                format!("within {} s", CONNECT_TIMEOUT.as_secs() + 1),
            ))),
        }
    }

    async fn open_cluster(seeds: &[redis::ConnectionInfo]) -> RedisResult<Self> {
        let addresses = seeds
            .iter()
            .map(|seed| match seed.addr() {
                redis::ConnectionAddr::Tcp(host, port) => Ok(format!("{host}:{port}")),
                other => Err(invalid_config(format!(
                    "{other}: a Redis Cluster is reached over plain TCP"
                ))),
            })
            .collect::<RedisResult<Vec<_>>>()?;
        ClusterConnection::open(addresses, seeds[0].redis_settings().clone(), node_config())
            .await
            .map(Self::Cluster)
    }

    /// Whether keys must be grouped by hash slot (one slot per command).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

/// Timeouts of each connection to a cluster node or a Sentinel-named master.
fn node_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
}

/// A URL without its credentials, to name it in messages.
fn node_name(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => url.to_string(),
    }
}

/// An error opening the store, naming the deployment and its nodes, with a
/// hint where the deployment named is not the one that answered.
fn explain_open_error(redis_type: &str, nodes: &str, error: RedisError) -> RedisError {
    let text = error.to_string();
    let hint = if text.contains("cluster support disabled") {
        " (these servers are not in cluster mode: use redis_type: redis)"
    } else if error.kind() == ErrorKind::Server(redis::ServerErrorKind::Moved) {
        " (this server is a Redis Cluster node: use redis_type: redis_cluster)"
    } else {
        ""
    };
    RedisError::from((
        error.kind(),
        "cannot open the online store",
        format!("redis_type {redis_type} at {nodes}: {text}{hint}"),
    ))
}

fn invalid_config(message: String) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "online_store", message))
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
            Self::Sentinel(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
            Self::Sentinel(connection) => connection.get_db(),
        }
    }
}

/// A connection to the master a Sentinel set names, found again after a
/// failover: when a request fails because the master is gone (the
/// connection dropped) or demoted (`READONLY`), the connection is dropped
/// and the next request asks the sentinels for the master anew. The failed
/// request itself fails; its caller retries (newer-wins writes are safe to
/// repeat).
#[derive(Clone)]
pub struct SentinelConnection {
    sentinels: Arc<tokio::sync::Mutex<SentinelClient>>,
    master: Arc<Mutex<Option<Master>>>,
    db: i64,
}

/// The master in use: its address, its connection, and when the sentinels
/// last confirmed it.
#[derive(Clone)]
struct Master {
    address: String,
    connection: MultiplexedConnection,
    confirmed: std::time::Instant,
}

/// How often the sentinels are asked whether the master changed. A
/// switch (a failover, `SENTINEL FAILOVER`) can leave the old master
/// answering as a master for seconds; asking the sentinels bounds how long
/// fvhost keeps using it.
const RECHECK_MASTER: Duration = Duration::from_secs(1);

impl SentinelConnection {
    async fn open(
        sentinels: Vec<redis::ConnectionInfo>,
        master: &str,
        options: &ConnectionString,
    ) -> RedisResult<Self> {
        let mut info = redis::RedisConnectionInfo::default().set_db(options.db);
        if let Some(username) = &options.username {
            info = info.set_username(username);
        }
        if let Some(password) = &options.password {
            info = info.set_password(password);
        }
        // The sentinels themselves take no database or password (as Feast's
        // client): those are the master's.
        let sentinels: Vec<redis::ConnectionInfo> = sentinels
            .into_iter()
            .map(|info| info.set_redis_settings(redis::RedisConnectionInfo::default()))
            .collect();
        let client = SentinelClient::build(
            sentinels,
            master.to_string(),
            Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(info)),
            SentinelServerType::Master,
        )?;
        let connection = Self {
            sentinels: Arc::new(tokio::sync::Mutex::new(client)),
            master: Arc::default(),
            db: options.db,
        };
        connection.current_master().await?;
        Ok(connection)
    }

    /// The connection to the master: asks the sentinels for it when there
    /// is none, and again when they last confirmed it more than
    /// [`RECHECK_MASTER`] ago (reconnecting if they name another).
    async fn current_master(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(master) = self.lock_master().as_ref()
            && master.confirmed.elapsed() < RECHECK_MASTER
        {
            return Ok(master.connection.clone());
        }
        let mut sentinels = self.sentinels.lock().await;
        if let Some(master) = self.lock_master().as_ref()
            && master.confirmed.elapsed() < RECHECK_MASTER
        {
            return Ok(master.connection.clone());
        }
        let client = sentinels.async_get_client().await?;
        let address = client.get_connection_info().addr().to_string();
        let known = self.lock_master().clone();
        let connection = match known {
            Some(master) if master.address == address => master.connection,
            previous => {
                if let Some(previous) = previous {
                    tracing::warn!(
                        from = %previous.address,
                        to = %address,
                        "the sentinels name a new Redis master; writing there from now on"
                    );
                }
                client
                    .get_multiplexed_async_connection_with_config(&node_config())
                    .await?
            }
        };
        *self.lock_master() = Some(Master {
            address,
            connection: connection.clone(),
            confirmed: std::time::Instant::now(),
        });
        Ok(connection)
    }

    fn lock_master(&self) -> std::sync::MutexGuard<'_, Option<Master>> {
        self.master.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the master connection after `result` showed the master lost.
    fn note<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(error) = &result
            && master_lost(error)
        {
            *self.lock_master() = None;
        }
        result
    }
}

/// Whether `error` means the connection no longer reaches a writable master.
fn master_lost(error: &RedisError) -> bool {
    error.is_connection_dropped()
        || error.is_io_error()
        || error.is_unrecoverable_error()
        || error.is_timeout()
        || matches!(
            error.kind(),
            ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
                | ErrorKind::Server(redis::ServerErrorKind::MasterDown)
        )
}

/// Whether a pipeline reply says the server is no longer a writable master.
fn demoted(reply: &Value) -> bool {
    matches!(
        reply,
        Value::ServerError(error) if matches!(
            error.kind(),
            Some(redis::ServerErrorKind::ReadOnly | redis::ServerErrorKind::MasterDown)
        )
    )
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            let mut master = self.current_master().await?;
            let result = master.req_packed_command(cmd).await;
            self.note(result)
        }
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            let mut master = self.current_master().await?;
            let result = master.req_packed_commands(pipeline, offset, count).await;
            if let Ok(replies) = &result
                && replies.iter().any(demoted)
            {
                *self.lock_master() = None;
            }
            self.note(result)
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}
