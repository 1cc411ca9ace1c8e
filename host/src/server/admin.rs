//! The admin API of a running host (`fvhost run`): hot-swap and status.
//!
//! - `GET /status`: per view, the active version, its history and counters;
//! - `POST /views/{view}/deploy?by=NAME`: the body is the `.wasm` module;
//!   validated off the ingestion path, then active from the next batch;
//! - `POST /views/{view}/rollback`: the previous version, from the next batch;
//! - `POST /apply?by=NAME`: re-read the repo; changed views swap (all or none).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;

use super::ApiError;
use crate::pipeline::Deployer;
use crate::pipeline::deploy::{DeployError, Deployed};
use crate::pipeline::registry::ViewStatus;

/// The routes over a host's deployer; `max_module_bytes` bounds uploads.
pub fn router(deployer: Arc<Deployer>, max_module_bytes: usize) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/views/{view}/deploy", post(deploy))
        .route("/views/{view}/rollback", post(rollback))
        .route("/apply", post(apply))
        .layer(DefaultBodyLimit::max(max_module_bytes.saturating_add(1)))
        .with_state(deployer)
}

/// Binds `address` and serves the admin API until `shutdown` resolves.
pub async fn serve(
    deployer: Arc<Deployer>,
    max_module_bytes: usize,
    address: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the admin API on {address}"))?;
    tracing::info!(address = %listener.local_addr()?, "admin API listening");
    axum::serve(listener, router(deployer, max_module_bytes))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn status(State(deployer): State<Arc<Deployer>>) -> Json<Vec<ViewStatus>> {
    Json(deployer.status())
}

#[derive(Debug, Deserialize)]
struct DeployQuery {
    #[serde(default = "anonymous")]
    by: String,
}

fn anonymous() -> String {
    "admin-api".into()
}

async fn deploy(
    State(deployer): State<Arc<Deployer>>,
    Path(view): Path<String>,
    Query(query): Query<DeployQuery>,
    body: Bytes,
) -> Result<Json<Deployed>, ApiError> {
    let outcome = tokio::task::spawn_blocking(move || deployer.deploy(&view, &body, &query.by))
        .await
        .map_err(ApiError::internal)?;
    outcome.map(Json).map_err(deploy_error)
}

async fn apply(
    State(deployer): State<Arc<Deployer>>,
    Query(query): Query<DeployQuery>,
) -> Result<Json<crate::pipeline::deploy::Applied>, ApiError> {
    let outcome = tokio::task::spawn_blocking(move || deployer.apply(&query.by))
        .await
        .map_err(ApiError::internal)?;
    outcome.map(Json).map_err(deploy_error)
}

async fn rollback(
    State(deployer): State<Arc<Deployer>>,
    Path(view): Path<String>,
) -> Result<Json<Deployed>, ApiError> {
    deployer.rollback(&view).map(Json).map_err(deploy_error)
}

fn deploy_error(error: DeployError) -> ApiError {
    let status = match &error {
        DeployError::Registry(crate::pipeline::registry::RegistryError::UnknownView(_)) => {
            StatusCode::NOT_FOUND
        }
        DeployError::Registry(_) => StatusCode::CONFLICT,
        DeployError::Rejected(_) | DeployError::Repo(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError(status, error.to_string())
}
