//! fvhost's HTTP server, on Feast's feature-server routes so Feast clients
//! can talk to it: `POST /push`, `POST /get-online-features`, `GET /health`.

pub mod admin;
pub mod auth;
pub mod body;
mod features;
pub mod listen;
mod push;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::online::OnlineConnection;
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

/// What the handlers share.
pub struct ServerState {
    pub repo: FeatureRepo,
    pub push_targets: HashMap<String, PushTarget>,
    pub online: OnlineConnection,
    /// Largest `/push` body read.
    pub max_push_bytes: usize,
}

/// Largest `/push` body read unless `serve --max-push-bytes` says otherwise: 32 MiB.
pub const DEFAULT_MAX_PUSH_BYTES: usize = 32 << 20;

impl ServerState {
    /// Loads the push sources' views and connects to the online store.
    pub async fn new(repo: FeatureRepo, redis_url: Option<&str>) -> anyhow::Result<Self> {
        let engine = TransformEngine::new()?;
        let cache = ModuleCache::new(default_dir());
        let mut push_targets = HashMap::new();
        for source in repo
            .sources
            .iter()
            .filter(|s| matches!(s.kind, SourceKind::Push { .. }))
        {
            let target = PushTarget::new(&repo, &source.name, &engine, &cache, &Limits::default())?;
            push_targets.insert(source.name.clone(), target);
        }
        let online = OnlineConnection::open(&repo.config.online_store, redis_url)
            .await
            .context("connecting to the Redis online store")?;
        Ok(Self {
            repo,
            push_targets,
            online,
            max_push_bytes: DEFAULT_MAX_PUSH_BYTES,
        })
    }
}

/// The routes.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/push", post(push::push))
        .route("/get-online-features", post(features::get_online_features))
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    state: ServerState,
    address: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    tracing::info!(address = %listener.local_addr()?, "serving /push, /get-online-features and /health");
    listen::serve(
        listener,
        router(Arc::new(state)),
        listen::Bounds::default(),
        shutdown,
    )
    .await;
    Ok(())
}

/// An error answered as `{"error": "..."}` with a status code.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self(StatusCode::BAD_REQUEST, message.to_string())
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}
