//! `fvhost serve`: Feast's feature-server routes (`/push`, `/get-online-features`),
//! answered from the repo as it is on disk (see [`crate::server::reload`]).

use std::net::SocketAddr;
use std::process::ExitCode;

use super::RepoArgs;
use crate::server::{ServerState, reload, serve as serve_http};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Address to listen on (loopback unless you mean otherwise).
    #[arg(long, default_value = "127.0.0.1:6566")]
    pub listen: SocketAddr,
    /// Redis URL of the online store, instead of the repo's connection_string.
    #[arg(long, env = "FVHOST_REDIS_URL")]
    pub redis: Option<String>,
    /// Replicas that must hold a `/push` or `/write-to-online-store` write
    /// (Redis `WAIT`) before it is answered 200: a failover then loses no
    /// acknowledged write. 0 (the default) does not wait.
    #[arg(long, default_value_t = 0, env = "FVHOST_WAIT_FOR_REPLICAS")]
    pub wait_for_replicas: u32,
    /// Largest `/push` body accepted, in bytes (larger ones are answered 413).
    #[arg(long, default_value_t = crate::server::DEFAULT_MAX_PUSH_BYTES)]
    pub max_push_bytes: usize,
    /// Mark every value PRESENT, as Feast 0.67's server does, instead of
    /// NULL_VALUE (a stored null) and NOT_FOUND (a key never written).
    #[arg(long)]
    pub feast_statuses: bool,
    /// Truncate a non-integral number or a boolean given for an integer
    /// join key, as Feast does (1003.5 is 1003, true is 1), instead of refusing it.
    #[arg(long)]
    pub feast_key_coercion: bool,
    /// Answer from the repo as loaded at start, even when its files change
    /// (by default the repo is loaded again once changed files hold still
    /// for a second, as Feast's server refreshes its registry).
    #[arg(long)]
    pub no_watch: bool,
    /// Threads answering requests (default: one per core). Each connection
    /// is answered on one thread from start to end, and each thread holds
    /// its own connection to the online store (about 2 MiB and 5 file
    /// descriptors a thread); more threads than cores add no speed.
    #[arg(long, env = "FVHOST_SERVE_THREADS", value_parser = clap::value_parser!(u16).range(1..=MAX_SERVE_THREADS))]
    pub threads: Option<u16>,
    /// Memory for cached reads, in MiB, split evenly among the serve
    /// threads (0, the default: every read asks Redis). Cached keys are
    /// kept exact by Redis itself (client tracking: a write, expiry or
    /// eviction of a key drops it; a dropped connection empties the cache).
    /// Needs a single Redis server, version 6 or later.
    #[arg(long, default_value_t = 0, env = "FVHOST_READ_CACHE_MB", value_parser = clap::value_parser!(u32).range(0..=MAX_READ_CACHE_MB))]
    pub read_cache_mb: u32,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let repo = args.repo.load()?;
    if args.read_cache_mb > 0 {
        check_read_cache_store(&repo.config.online_store)?;
    }
    let replicas = crate::online::ReplicaWait::for_replicas(args.wait_for_replicas);
    let mut state = ServerState::waiting_for(repo, args.redis.as_deref(), replicas)?;
    state.max_push_bytes = args.max_push_bytes;
    state.feast_compatible = crate::server::FeastCompatibility {
        statuses: args.feast_statuses,
        key_coercion: args.feast_key_coercion,
    };
    let threads = args.threads.map_or_else(one_per_core, usize::from);
    state.read_cache_bytes = ((args.read_cache_mb as usize) << 20) / threads;
    let state = std::sync::Arc::new(state);
    let watch = (!args.no_watch).then(|| reload::spawn_repo_watch(std::sync::Arc::clone(&state)));
    let served = serve_http(state, args.listen, threads, async {
        let _ = super::run::stop_signal().await;
    })
    .await;
    if let Some(watch) = watch {
        watch.abort();
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Most `serve --threads`: no more threads than the connections one
/// listener keeps open at once.
const MAX_SERVE_THREADS: i64 = crate::server::listen::MAX_CONNECTIONS as i64;

/// The read cache keeps its keys exact through one tracked connection to
/// one server; a cluster or a Sentinel set is refused before serving.
fn check_read_cache_store(store: &crate::repo::OnlineStoreConfig) -> anyhow::Result<()> {
    use crate::repo::RedisType;
    match RedisType::parse(&store.redis_type) {
        Ok(RedisType::Single) => Ok(()),
        _ => anyhow::bail!(
            "--read-cache-mb needs a single Redis server (redis_type: redis); the repo's online store is redis_type {} (serve without --read-cache-mb, or read from the single server)",
            store.redis_type
        ),
    }
}

/// Most `serve --read-cache-mb`: 1 TiB, beyond any machine it runs on
/// (the cache grows only as keys are read; the budget bounds it).
const MAX_READ_CACHE_MB: i64 = 1 << 20;

/// One serve thread per core the process may use.
fn one_per_core() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
