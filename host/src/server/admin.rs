//! The admin API of a running host (`fvhost run`): hot-swap and status,
//! per tenant, behind the credentials of [`super::auth`].
//!
//! - `GET /status`: the caller's views (all of them for the operator), with
//!   active version, history, counters and state;
//! - `GET /tenants/{tenant}/status`, `GET /tenants/{tenant}/views/{view}`;
//! - `POST /tenants/{tenant}/views/{view}/deploy?by=NAME`: the body is the
//!   `.wasm` module; validated off the ingestion path, then active from the
//!   next batch;
//! - `POST /tenants/{tenant}/views/{view}/rollback`: the previous version;
//! - `POST /tenants/{tenant}/apply?by=NAME`: re-read the tenant's repo;
//!   changed views swap (all or none).
//!
//! `/views/{view}/deploy`, `/views/{view}/rollback` and `/apply` without the
//! tenant act on the caller's own tenant (or the host's only one).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::Deserialize;

use super::ApiError;
use super::auth::{AdminAuth, Caller};
use crate::pipeline::Deployer;
use crate::pipeline::deploy::{Applied, DeployError, Deployed};
use crate::pipeline::registry::ViewStatus;

/// The tenants' deployers and the credentials that open them.
#[derive(Clone)]
pub struct Admin {
    tenants: Arc<BTreeMap<String, Arc<Deployer>>>,
    auth: Arc<AdminAuth>,
}

impl Admin {
    pub fn new(tenants: BTreeMap<String, Arc<Deployer>>, auth: AdminAuth) -> Self {
        Self {
            tenants: Arc::new(tenants),
            auth: Arc::new(auth),
        }
    }

    /// The caller, allowed on `tenant` (or, unnamed, on its own or the only tenant).
    fn deployer(
        &self,
        headers: &HeaderMap,
        tenant: Option<&str>,
    ) -> Result<Arc<Deployer>, ApiError> {
        let caller = self.auth.caller(headers)?;
        let tenant = match (tenant, caller.tenant()) {
            (Some(tenant), _) => tenant.to_string(),
            (None, Some(own)) => own.to_string(),
            (None, None) if self.tenants.len() == 1 => {
                self.tenants.keys().next().cloned().unwrap_or_default()
            }
            (None, None) => {
                return Err(ApiError::bad_request(format!(
                    "this host runs {} tenants: name one, as in /tenants/{{tenant}}/...",
                    self.tenants.len()
                )));
            }
        };
        caller.may_manage(&tenant)?;
        self.tenants.get(&tenant).cloned().ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no tenant `{tenant}` on this host"),
            )
        })
    }

    fn max_module_bytes(&self) -> usize {
        self.tenants
            .values()
            .map(|d| d.max_module_bytes())
            .max()
            .unwrap_or(0)
    }
}

/// The admin routes.
pub fn router(admin: Admin) -> Router {
    let body_limit = admin.max_module_bytes().saturating_add(1);
    Router::new()
        .route("/status", get(status))
        .route("/tenants/{tenant}/status", get(tenant_status))
        .route("/tenants/{tenant}/views/{view}", get(view_status))
        .route("/tenants/{tenant}/views/{view}/deploy", post(tenant_deploy))
        .route(
            "/tenants/{tenant}/views/{view}/rollback",
            post(tenant_rollback),
        )
        .route("/tenants/{tenant}/apply", post(tenant_apply))
        .route("/views/{view}/deploy", post(deploy))
        .route("/views/{view}/rollback", post(rollback))
        .route("/apply", post(apply))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            body_limit - 1,
            refuse_oversized_upload,
        ))
        .with_state(admin)
}

/// Answers an upload whose declared length is over every tenant's module
/// limit before its body is read, in fvhost's words. (An upload without a
/// length is cut off at the same size by the body limit.)
async fn refuse_oversized_upload(
    State(limit): State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("module size limit of {limit} bytes exceeded: the upload is {length} bytes"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Binds `address` and serves the admin API until `shutdown` resolves.
pub async fn serve(
    admin: Admin,
    address: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the admin API on {address}"))?;
    tracing::info!(address = %listener.local_addr()?, "admin API listening");
    axum::serve(listener, router(admin))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn status(
    State(admin): State<Admin>,
    headers: HeaderMap,
) -> Result<Json<Vec<ViewStatus>>, ApiError> {
    let caller = admin.auth.caller(&headers)?;
    let visible = admin
        .tenants
        .iter()
        .filter(|(tenant, _)| {
            caller == Caller::Operator || caller.tenant() == Some(tenant.as_str())
        })
        .flat_map(|(_, deployer)| deployer.status())
        .collect();
    Ok(Json(visible))
}

async fn tenant_status(
    State(admin): State<Admin>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<ViewStatus>>, ApiError> {
    Ok(Json(admin.deployer(&headers, Some(&tenant))?.status()))
}

async fn view_status(
    State(admin): State<Admin>,
    Path((tenant, view)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<ViewStatus>, ApiError> {
    let deployer = admin.deployer(&headers, Some(&tenant))?;
    deployer
        .status()
        .into_iter()
        .find(|v| v.view == view)
        .map(Json)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no running view `{view}` in tenant `{tenant}`"),
            )
        })
}

#[derive(Debug, Deserialize)]
struct DeployQuery {
    #[serde(default = "anonymous")]
    by: String,
}

fn anonymous() -> String {
    "admin-api".into()
}

async fn tenant_deploy(
    State(admin): State<Admin>,
    Path((tenant, view)): Path<(String, String)>,
    Query(query): Query<DeployQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Deployed>, ApiError> {
    let deployer = admin.deployer(&headers, Some(&tenant))?;
    run_deploy(deployer, view, query.by, body).await
}

async fn deploy(
    State(admin): State<Admin>,
    Path(view): Path<String>,
    Query(query): Query<DeployQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Deployed>, ApiError> {
    let deployer = admin.deployer(&headers, None)?;
    run_deploy(deployer, view, query.by, body).await
}

async fn run_deploy(
    deployer: Arc<Deployer>,
    view: String,
    by: String,
    body: Bytes,
) -> Result<Json<Deployed>, ApiError> {
    let outcome = tokio::task::spawn_blocking(move || deployer.deploy(&view, &body, &by))
        .await
        .map_err(ApiError::internal)?;
    outcome.map(Json).map_err(deploy_error)
}

async fn tenant_apply(
    State(admin): State<Admin>,
    Path(tenant): Path<String>,
    Query(query): Query<DeployQuery>,
    headers: HeaderMap,
) -> Result<Json<Applied>, ApiError> {
    run_apply(admin.deployer(&headers, Some(&tenant))?, query.by).await
}

async fn apply(
    State(admin): State<Admin>,
    Query(query): Query<DeployQuery>,
    headers: HeaderMap,
) -> Result<Json<Applied>, ApiError> {
    run_apply(admin.deployer(&headers, None)?, query.by).await
}

async fn run_apply(deployer: Arc<Deployer>, by: String) -> Result<Json<Applied>, ApiError> {
    let outcome = tokio::task::spawn_blocking(move || deployer.apply(&by))
        .await
        .map_err(ApiError::internal)?;
    outcome.map(Json).map_err(deploy_error)
}

async fn tenant_rollback(
    State(admin): State<Admin>,
    Path((tenant, view)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Deployed>, ApiError> {
    let deployer = admin.deployer(&headers, Some(&tenant))?;
    deployer.rollback(&view).map(Json).map_err(deploy_error)
}

async fn rollback(
    State(admin): State<Admin>,
    Path(view): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Deployed>, ApiError> {
    let deployer = admin.deployer(&headers, None)?;
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
