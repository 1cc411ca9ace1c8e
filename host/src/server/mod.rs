//! fvhost's HTTP server, on Feast's feature-server routes so Feast clients
//! can talk to it: `POST /push`, `POST /write-to-online-store`,
//! `POST /get-online-features`, `GET /health`, and `GET /ready`.

pub mod admin;
pub mod auth;
pub mod body;
mod features;
pub mod listen;
pub mod metrics;
mod push;
pub mod reload;
mod workers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::online::OnlineConnection;
use crate::online::cache::{CachingStore, ReadCache};
use crate::online::redis::tracking::TrackedReads;
use crate::pipeline::push::PushTarget;
use crate::repo::{FeatureRepo, SourceKind};
use crate::transform::cache::{ModuleCache, default_dir};
use crate::transform::{Limits, TransformEngine};
use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// What the handlers share, whichever thread answers.
pub struct ServerState {
    /// The repo as served now; see [`ServerState::reload`].
    served: std::sync::RwLock<Arc<ServedRepo>>,
    /// The online store each serve thread connects to (the repo's at start).
    online_store: OnlineTarget,
    /// Largest `/push` body read.
    pub max_push_bytes: usize,
    /// Where fvhost deliberately differs from Feast's server, answer as Feast does.
    pub feast_compatible: FeastCompatibility,
    /// Requests served, by route and status, for `GET /metrics`.
    pub requests: metrics::RequestMetrics,
    /// Bytes each serve thread may keep of cached reads (0: reads always
    /// ask Redis); see [`crate::online::cache`].
    pub read_cache_bytes: usize,
    /// What push targets are built with, again on a reload.
    engine: TransformEngine,
    cache: ModuleCache,
}

/// The online store `serve` connects to: the repo's at start, or `--redis`.
struct OnlineTarget {
    config: crate::repo::OnlineStoreConfig,
    url_override: Option<String>,
    replicas: crate::online::ReplicaWait,
}

/// What one serve thread's handlers see: the shared state, and the thread's
/// own connection to the online store (see [`workers`]).
pub struct Worker {
    pub shared: Arc<ServerState>,
    pub online: OnlineConnection,
}

impl std::ops::Deref for Worker {
    type Target = ServerState;

    fn deref(&self) -> &ServerState {
        &self.shared
    }
}

/// The repo as `serve` answers from it: its definitions and the push
/// targets built from them, replaced whole when the repo changes on disk.
pub struct ServedRepo {
    pub repo: FeatureRepo,
    pub push_targets: HashMap<String, PushTarget>,
    /// Per view, the target of `/write-to-online-store` (or why it has none).
    pub direct_targets: HashMap<String, Result<PushTarget, String>>,
}

impl ServedRepo {
    /// Builds the push targets of `repo` (compiling the modules of push
    /// sources' views, or loading them from the cache).
    pub fn build(
        repo: FeatureRepo,
        engine: &TransformEngine,
        cache: &ModuleCache,
    ) -> anyhow::Result<Self> {
        let mut push_targets = HashMap::new();
        for source in repo
            .sources
            .iter()
            .filter(|s| matches!(s.kind, SourceKind::Push { .. }))
        {
            let target = PushTarget::new(&repo, &source.name, engine, cache, &Limits::default())?;
            push_targets.insert(source.name.clone(), target);
        }
        let direct_targets = repo
            .views
            .iter()
            .map(|view| {
                let target = PushTarget::direct(&repo, &view.name, engine, cache)
                    .map_err(|e| format!("{e:#}"));
                (view.name.clone(), target)
            })
            .collect();
        Ok(Self {
            repo,
            push_targets,
            direct_targets,
        })
    }
}

/// Switches to Feast 0.67's behaviour where fvhost deliberately differs
/// (the README's "where fvhost differs from Feast" table).
#[derive(Debug, Clone, Copy, Default)]
pub struct FeastCompatibility {
    /// Every value `PRESENT` (see [`crate::online::ResponseStyle`]).
    pub statuses: bool,
    /// A non-integral number or a boolean for an integer join key is
    /// truncated to an integer (`1003.5` is 1003, `true` is 1) instead of refused.
    pub key_coercion: bool,
}

/// Largest `/push` body read unless `serve --max-push-bytes` says otherwise: 32 MiB.
pub const DEFAULT_MAX_PUSH_BYTES: usize = 32 << 20;

impl ServerState {
    /// Loads the push sources' views; each serve thread connects to the
    /// repo's online store, or to `redis_url`.
    pub fn new(repo: FeatureRepo, redis_url: Option<&str>) -> anyhow::Result<Self> {
        Self::waiting_for(repo, redis_url, crate::online::ReplicaWait::default())
    }

    /// [`Self::new`], with `/push` writes that wait for replicas before
    /// they are acknowledged (see [`crate::online::ReplicaWait`]).
    pub fn waiting_for(
        repo: FeatureRepo,
        redis_url: Option<&str>,
        replicas: crate::online::ReplicaWait,
    ) -> anyhow::Result<Self> {
        let engine = TransformEngine::new()?;
        let cache = ModuleCache::new(default_dir());
        let served = ServedRepo::build(repo, &engine, &cache)?;
        let online_store = OnlineTarget {
            config: served.repo.config.online_store.clone(),
            url_override: redis_url.map(str::to_owned),
            replicas,
        };
        Ok(Self {
            served: std::sync::RwLock::new(Arc::new(served)),
            online_store,
            max_push_bytes: DEFAULT_MAX_PUSH_BYTES,
            feast_compatible: FeastCompatibility::default(),
            requests: metrics::RequestMetrics::default(),
            read_cache_bytes: 0,
            engine,
            cache,
        })
    }

    /// A new connection to the online store `serve` started with; its
    /// reads go through a cache of their own when `read_cache_bytes` is set.
    pub async fn connect(&self) -> anyhow::Result<OnlineConnection> {
        let target = &self.online_store;
        let online = OnlineConnection::open_waiting(
            &target.config,
            target.url_override.as_deref(),
            target.replicas,
        )
        .await
        .context("connecting to the Redis online store")?;
        if self.read_cache_bytes == 0 {
            return Ok(online);
        }
        let counters = Arc::clone(&self.requests.read_cache);
        let cache = Arc::new(ReadCache::new(self.read_cache_bytes, Arc::clone(&counters)));
        let tracked = TrackedReads::open(
            &target.config,
            target.url_override.as_deref(),
            Arc::clone(&cache),
        )
        .await
        .context("opening the read cache's connection to the online store")?;
        let store = CachingStore::new(online.store, cache, tracked, counters);
        Ok(OnlineConnection {
            store: Arc::new(store),
            redis: online.redis,
        })
    }

    /// The repo as served now. A request keeps the one it began with.
    pub fn served(&self) -> Arc<ServedRepo> {
        let served = self.served.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&served)
    }

    /// Serves `repo` from the next request on, once its push targets are
    /// built; on an error the repo served so far stays. The online store
    /// stays the one `serve` connected to at start.
    pub fn reload(&self, repo: FeatureRepo) -> anyhow::Result<()> {
        if repo.config.online_store != self.served().repo.config.online_store {
            tracing::warn!(
                "the repo's online_store changed; serve keeps the store it connected to at start (restart it to connect to the new one)"
            );
        }
        let served = ServedRepo::build(repo, &self.engine, &self.cache)?;
        *self.served.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(served);
        Ok(())
    }
}

/// The routes, answered by one serve thread.
pub fn router(state: Arc<Worker>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/push", post(push::push))
        .route("/write-to-online-store", post(push::write_to_online_store))
        .route("/get-online-features", post(features::get_online_features))
        .route("/metrics", get(serve_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            count_request,
        ))
        .with_state(state)
}

/// Counts and times every request for `GET /metrics`.
async fn count_request(
    axum::extract::State(state): axum::extract::State<Arc<Worker>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = metrics::route_label(request.uri().path());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .requests
        .observe(route, response.status().as_u16(), started.elapsed());
    response
}

/// `GET /metrics` of `serve`: requests by route and status, their latency,
/// and the build. Open like the rest of `serve` (Feast's server has no
/// credentials either): listen on loopback or a private network.
async fn serve_metrics(
    axum::extract::State(state): axum::extract::State<Arc<Worker>>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let text = state.requests.render().map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics: {e}"),
        )
    })?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        text,
    ))
}

/// Serves on `threads` serve threads (see [`workers`]) until `shutdown`
/// resolves.
pub async fn serve(
    state: Arc<ServerState>,
    address: SocketAddr,
    threads: usize,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    workers::serve(
        state,
        listener,
        threads,
        listen::Bounds::default(),
        shutdown,
    )
    .await
}

/// An error answered as `{"error": "..."}` with a status code.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self(StatusCode::BAD_REQUEST, message.to_string())
    }

    /// A failed push or read: 503 when the online store did not answer (the
    /// server's trouble, worth a retry), 400 otherwise (the request's).
    pub fn of(error: &anyhow::Error) -> Self {
        let message = chain_text(error);
        if error
            .chain()
            .any(|cause| cause.downcast_ref::<crate::online::StoreError>().is_some())
        {
            tracing::warn!("online store unavailable: {message}");
            return Self(StatusCode::SERVICE_UNAVAILABLE, message);
        }
        Self::bad_request(message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

/// An error and its causes as one line, each cause once (a cause whose
/// text ends the previous one's adds nothing).
pub fn chain_text(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if parts
            .last()
            .is_some_and(|previous| previous.ends_with(&text))
        {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// `GET /ready`: whether the online store answers (`/health` says only
/// that the process is up, as a liveness probe should).
async fn ready(
    axum::extract::State(state): axum::extract::State<Arc<Worker>>,
) -> Result<&'static str, ApiError> {
    match state.online.answers().await {
        Ok(()) => Ok("ready"),
        Err(why) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, why)),
    }
}

/// Unknown paths and methods answer JSON like every other error.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!(
            "no route {method} {}; the routes are POST /push, POST /write-to-online-store, POST /get-online-features, GET /health, GET /ready",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}
