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
        let deployment = Deployment::resolve(config, url_override)?;
        let nodes = deployment.nodes;
        let tls = deployment.tls;
        let opened = match deployment.redis_type {
            RedisType::Single => Self::open_node(nodes[0].clone(), tls.as_deref()).await,
            RedisType::Cluster => Self::open_cluster(&nodes, tls).await,
            RedisType::Sentinel => {
                let master = config.sentinel_master.as_deref().unwrap_or("mymaster");
                if master.is_empty() {
                    return Err(invalid_config("sentinel_master is empty".into()));
                }
                SentinelConnection::open(nodes, master, &deployment.options, tls.as_deref())
                    .await
                    .map(Self::Sentinel)
            }
        };
        opened.map_err(|e| explain_open_error(&config.redis_type, &deployment.named, e))
    }

    /// A connection to a single server whose reads Redis tracks: RESP3,
    /// with every push (invalidations, and a note when the connection
    /// drops) handed to `pushes` as it is read. Reconnects as
    /// [`RedisConnection::Node`] does. A cluster or Sentinel is refused
    /// (their failovers and reshards would need tracking per node).
    pub async fn open_tracked(
        config: &OnlineStoreConfig,
        url_override: Option<&str>,
        pushes: impl redis::aio::AsyncPushSender,
    ) -> RedisResult<ConnectionManager> {
        let deployment = Deployment::resolve(config, url_override)?;
        if deployment.redis_type != RedisType::Single {
            return Err(invalid_config(format!(
                "the read cache needs a single Redis server (redis_type: redis), not redis_type {}",
                config.redis_type
            )));
        }
        let node = deployment.nodes[0].clone();
        let settings = node
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client = client_for(node.set_redis_settings(settings), deployment.tls.as_deref())?;
        let manager = manager_config().set_push_sender(pushes);
        let connect = client.get_connection_manager_with_config(manager);
        let opened =
            match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), connect).await {
                Ok(result) => result,
                Err(_) => Err(no_answer()),
            };
        opened.map_err(|e| explain_open_error(&config.redis_type, &deployment.named, e))
    }

    async fn open_node(node: redis::ConnectionInfo, tls: Option<&NodeTls>) -> RedisResult<Self> {
        let client = client_for(node, tls)?;
        let connect = client.get_connection_manager_with_config(manager_config());
        match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), connect).await {
            Ok(result) => result.map(Self::Node),
            Err(_) => Err(no_answer()),
        }
    }

    async fn open_cluster(
        seeds: &[redis::ConnectionInfo],
        tls: Option<Arc<NodeTls>>,
    ) -> RedisResult<Self> {
        let addresses = seeds
            .iter()
            .map(|seed| match seed.addr() {
                redis::ConnectionAddr::Tcp(host, port)
                | redis::ConnectionAddr::TcpTls { host, port, .. } => Ok(format!("{host}:{port}")),
                other => Err(invalid_config(format!(
                    "{other}: a Redis Cluster is reached over TCP"
                ))),
            })
            .collect::<RedisResult<Vec<_>>>()?;
        let settings = seeds[0].redis_settings().clone();
        ClusterConnection::open(addresses, settings, node_config(), tls)
            .await
            .map(Self::Cluster)
    }

    /// Whether keys must be grouped by hash slot (one slot per command).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

/// The deployment a store config names, resolved: its kind, its data
/// nodes (or sentinels), TLS, and how messages name it.
struct Deployment {
    redis_type: RedisType,
    options: ConnectionString,
    tls: Option<Arc<NodeTls>>,
    nodes: Vec<redis::ConnectionInfo>,
    named: String,
}

impl Deployment {
    /// Reads `config`; `url_override` (the command line's `--redis`)
    /// replaces the connection string's nodes.
    fn resolve(config: &OnlineStoreConfig, url_override: Option<&str>) -> RedisResult<Self> {
        let redis_type = RedisType::parse(&config.redis_type).map_err(invalid_config)?;
        let options = ConnectionString::parse(&config.connection_string).map_err(invalid_config)?;
        if !options.ignored.is_empty() {
            tracing::warn!(
                ignored = %options.ignored.join(", "),
                "online_store.connection_string: options fvhost does not use are ignored (it reads db, username, password, ssl, ssl_ca_certs, ssl_cert_reqs)"
            );
        }
        let tls = NodeTls::from_options(&options)?;
        let named = target_name(config, url_override);
        let nodes = match url_override {
            Some(url) => {
                let node = redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| {
                    invalid_config(format!(
                        "--redis `{}` is not a redis:// URL ({e})",
                        node_name(url)
                    ))
                })?;
                vec![node]
            }
            None => {
                let settings = options.redis_settings();
                // Sentinels are reached in the clear; the master over TLS.
                let node_tls = match redis_type {
                    RedisType::Sentinel => None,
                    _ => tls.as_deref(),
                };
                options
                    .addresses()
                    .map_err(invalid_config)?
                    .into_iter()
                    .map(|(host, port)| node_info(&host, port, &settings, node_tls))
                    .collect::<RedisResult<Vec<_>>>()?
            }
        };
        Ok(Self {
            redis_type,
            options,
            tls,
            nodes,
            named,
        })
    }
}

/// Timeouts and reconnection of a single server's connection.
fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(3)
}

fn no_answer() -> RedisError {
    RedisError::from((
        ErrorKind::Io,
        "no answer",
        format!("within {} s", CONNECT_TIMEOUT.as_secs() + 1),
    ))
}

/// How data nodes are reached over TLS (`ssl=true` in the connection
/// string): with the system's roots, or the authorities `ssl_ca_certs`
/// names; `ssl_cert_reqs=none` accepts any certificate.
pub struct NodeTls {
    insecure: bool,
    root_cert: Option<Vec<u8>>,
}

/// The most bytes an `ssl_ca_certs` file may hold.
const MAX_CA_FILE: u64 = 1 << 20;

impl NodeTls {
    fn from_options(options: &ConnectionString) -> RedisResult<Option<Arc<Self>>> {
        if !options.ssl {
            return Ok(None);
        }
        let root_cert = match &options.ssl_ca_certs {
            None => None,
            Some(path) => {
                let pem = crate::bounded_file::read(
                    std::path::Path::new(path),
                    MAX_CA_FILE,
                    "ssl_ca_certs",
                )
                .map_err(|e| invalid_config(format!("ssl_ca_certs: {e}")))?;
                let marker: &[u8] = b"-----BEGIN CERTIFICATE-----";
                if !pem.windows(marker.len()).any(|w| w == marker) {
                    return Err(invalid_config(format!(
                        "ssl_ca_certs: {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                    )));
                }
                Some(pem)
            }
        };
        // rustls is built with ring alone; make it the process's provider
        // (an error means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Some(Arc::new(Self {
            insecure: options.ssl_insecure,
            root_cert,
        })))
    }
}

/// A data node's connection info: its address (over TLS if `tls`) and
/// the database and credentials.
pub(super) fn node_info(
    host: &str,
    port: u16,
    settings: &redis::RedisConnectionInfo,
    tls: Option<&NodeTls>,
) -> RedisResult<redis::ConnectionInfo> {
    let address = match tls {
        None => redis::ConnectionAddr::Tcp(host.to_string(), port),
        Some(tls) => redis::ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: tls.insecure,
            tls_params: None,
        },
    };
    Ok(redis::IntoConnectionInfo::into_connection_info(address)?
        .set_redis_settings(settings.clone()))
}

/// A client for `info`, trusting `tls`'s authorities when it names some.
pub(super) fn client_for(
    info: redis::ConnectionInfo,
    tls: Option<&NodeTls>,
) -> RedisResult<redis::Client> {
    match tls.and_then(|tls| tls.root_cert.clone()) {
        Some(root_cert) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            },
        ),
        None => redis::Client::open(info),
    }
}

/// Timeouts of each connection to a cluster node or a Sentinel-named master.
fn node_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
}

/// A URL without its credentials, to name it in messages.
/// The deployment `config` (or `url_override`) names, for messages: its
/// nodes, or sentinels and master name; never a password.
pub fn target_name(config: &OnlineStoreConfig, url_override: Option<&str>) -> String {
    if let Some(url) = url_override {
        return format!("--redis {}", node_name(url));
    }
    let nodes = ConnectionString::parse(&config.connection_string)
        .map(|options| options.nodes.join(","))
        .unwrap_or_else(|_| "the connection string's nodes".into());
    match RedisType::parse(&config.redis_type) {
        Ok(RedisType::Sentinel) => format!(
            "sentinels {nodes} (master `{}`)",
            config.sentinel_master.as_deref().unwrap_or("mymaster")
        ),
        _ => nodes,
    }
}

/// A URL as messages show it: no user, password or query (a query may
/// carry a password too).
fn node_name(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(before, _)| before);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => url
            .rsplit_once('@')
            .map_or(url, |(_, host)| host)
            .to_string(),
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
    /// The sentinel set and master name, the key of [`latest_named`].
    set: Arc<str>,
}

/// The master the sentinels of a set last named to any connection of this
/// process, and a client for it. `serve` gives each thread its own
/// connection: a thread that did not ask the sentinels between a failover
/// and the sentinels going away would otherwise keep reading the demoted
/// master (a replica, answering old values) while another thread writes to
/// the new one.
#[derive(Clone)]
struct Named {
    address: String,
    client: redis::Client,
}

fn latest_named() -> &'static Mutex<std::collections::HashMap<Arc<str>, Named>> {
    static LATEST: std::sync::OnceLock<Mutex<std::collections::HashMap<Arc<str>, Named>>> =
        std::sync::OnceLock::new();
    LATEST.get_or_init(Mutex::default)
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
/// How long the sentinels have to name the master.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(2);

impl SentinelConnection {
    async fn open(
        sentinels: Vec<redis::ConnectionInfo>,
        master: &str,
        options: &ConnectionString,
        tls: Option<&NodeTls>,
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
        let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(info);
        if let Some(tls) = tls {
            node = node.set_tls_mode(if tls.insecure {
                redis::TlsMode::Insecure
            } else {
                redis::TlsMode::Secure
            });
        }
        let set: Vec<String> = sentinels
            .iter()
            .map(|info| info.addr().to_string())
            .collect();
        let set: Arc<str> = format!("{}/{master}", set.join(",")).into();
        let client =
            SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master)?;
        let connection = Self {
            sentinels: Arc::new(tokio::sync::Mutex::new(client)),
            master: Arc::default(),
            db: options.db,
            set,
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
        let client =
            match tokio::time::timeout(SENTINEL_TIMEOUT, sentinels.async_get_client()).await {
                Ok(Ok(client)) => client,
                Ok(Err(error)) => return self.keep_known_master(error.to_string()).await,
                Err(_) => {
                    let secs = SENTINEL_TIMEOUT.as_secs();
                    return self
                        .keep_known_master(format!("no answer within {secs} s"))
                        .await;
                }
            };
        let address = client.get_connection_info().addr().to_string();
        latest_named()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                Arc::clone(&self.set),
                Named {
                    address: address.clone(),
                    client: client.clone(),
                },
            );
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

    /// The sentinels did not answer (`why`): keeps writing to the master
    /// they last named to this process (another thread may have heard of a
    /// failover since this one asked), asked again in a second; with none
    /// known, fails.
    async fn keep_known_master(&self, why: String) -> RedisResult<MultiplexedConnection> {
        let named = latest_named()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.set)
            .cloned();
        let known = self.lock_master().as_ref().map(|m| m.address.clone());
        if let Some(named) = named
            && known.as_ref() != Some(&named.address)
        {
            let connection = named
                .client
                .get_multiplexed_async_connection_with_config(&node_config())
                .await?;
            tracing::warn!(
                master = %named.address,
                "the sentinels did not answer ({why}); using the master they last named to another thread"
            );
            *self.lock_master() = Some(Master {
                address: named.address,
                connection: connection.clone(),
                confirmed: std::time::Instant::now(),
            });
            return Ok(connection);
        }
        let mut known = self.lock_master();
        let Some(master) = known.as_mut() else {
            return Err(RedisError::from((
                ErrorKind::Io,
                "no sentinel named the master",
                why,
            )));
        };
        master.confirmed = std::time::Instant::now();
        tracing::warn!(
            master = %master.address,
            "the sentinels did not answer ({why}); using the master they last named"
        );
        Ok(master.connection.clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_show_no_credentials() {
        for (url, shown) in [
            (
                "redis://u:TOPSECRET@127.0.0.1:99999",
                "redis://127.0.0.1:99999",
            ),
            (
                "redis://127.0.0.1:6379/0?password=Q2SECRET",
                "redis://127.0.0.1:6379/0",
            ),
            ("http://u:TOPSECRET@h:1", "http://h:1"),
            ("u:TOPSECRET@h:1", "h:1"),
        ] {
            assert_eq!(node_name(url), shown);
        }
    }
}
