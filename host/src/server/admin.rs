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
//!
//! Bounds, whoever calls: the caller is identified before a body is read;
//! at most [`DEPLOYS_PER_TENANT`] deploys or applies per tenant and
//! [`DEPLOYS_PER_HOST`] in all run at once (429 beyond); a module upload is
//! bounded by the tenant's module limit and [`super::body::BODY_READ_TIMEOUT`];
//! connections and header reads are bounded by [`super::listen`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;
use super::auth::{AdminAuth, Caller};
use super::body::{BodyLimit, declared_length};
use crate::control::Deployer;
use crate::control::deploy::{Applied, DeployError, Deployed};
use crate::control::registry::ViewStatus;

/// Deploys and applies (uploads, compiles, probes) running at once, per
/// tenant: each holds a module, its compiled code and a probe instance.
pub const DEPLOYS_PER_TENANT: usize = 2;

/// Deploys and applies running at once on the whole host.
pub const DEPLOYS_PER_HOST: usize = 4;

/// The tenants' deployers and the credentials that open them.
#[derive(Clone)]
pub struct Admin {
    tenants: Arc<BTreeMap<String, Arc<Deployer>>>,
    auth: Arc<AdminAuth>,
    deploys: Arc<DeploySlots>,
}

/// Who may deploy now: a request over either bound is answered 429 at once
/// (before its body is read) rather than queued with its upload in memory.
struct DeploySlots {
    host: Arc<Semaphore>,
    tenants: BTreeMap<String, Arc<Semaphore>>,
}

/// A deploy's place among those running; freed when dropped.
struct DeploySlot {
    _tenant: OwnedSemaphorePermit,
    _host: OwnedSemaphorePermit,
}

impl DeploySlots {
    fn take(&self, tenant: &str) -> Result<DeploySlot, ApiError> {
        let busy = |message: String| ApiError(StatusCode::TOO_MANY_REQUESTS, message);
        let tenant_slots = self.tenants.get(tenant).ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no tenant `{tenant}` on this host"),
            )
        })?;
        let tenant_permit = Arc::clone(tenant_slots).try_acquire_owned().map_err(|_| {
            busy(format!(
                "tenant `{tenant}` already has {DEPLOYS_PER_TENANT} deploys or applies running; retry when one finishes"
            ))
        })?;
        let host_permit = Arc::clone(&self.host).try_acquire_owned().map_err(|_| {
            busy(format!(
                "this host already runs {DEPLOYS_PER_HOST} deploys or applies; retry when one finishes"
            ))
        })?;
        Ok(DeploySlot {
            _tenant: tenant_permit,
            _host: host_permit,
        })
    }
}

impl Admin {
    pub fn new(tenants: BTreeMap<String, Arc<Deployer>>, auth: AdminAuth) -> Self {
        let deploys = DeploySlots {
            host: Arc::new(Semaphore::new(DEPLOYS_PER_HOST)),
            tenants: tenants
                .keys()
                .map(|name| (name.clone(), Arc::new(Semaphore::new(DEPLOYS_PER_TENANT))))
                .collect(),
        };
        Self {
            tenants: Arc::new(tenants),
            auth: Arc::new(auth),
            deploys: Arc::new(deploys),
        }
    }

    /// The tenants `caller` may see: the operator every one, a tenant its own.
    fn visible_to<'a>(
        &'a self,
        caller: &'a Caller,
    ) -> impl Iterator<Item = &'a Arc<Deployer>> + 'a {
        self.tenants
            .iter()
            .filter(move |(tenant, _)| {
                *caller == Caller::Operator || caller.tenant() == Some(tenant.as_str())
            })
            .map(|(_, deployer)| deployer)
    }

    /// The caller, allowed on `tenant` (or, unnamed, on its own or the only
    /// tenant): that tenant's name and deployer.
    fn deployer(
        &self,
        headers: &HeaderMap,
        tenant: Option<&str>,
    ) -> Result<(String, Arc<Deployer>), ApiError> {
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
        let deployer = self.tenants.get(&tenant).cloned().ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no tenant `{tenant}` on this host"),
            )
        })?;
        Ok((tenant, deployer))
    }
}

/// The admin routes. Every handler identifies the caller from the headers
/// before it reads a body: an unauthenticated upload is refused unread.
pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
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
        .with_state(admin)
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
    super::listen::serve(
        listener,
        router(admin),
        super::listen::Bounds::default(),
        shutdown,
    )
    .await;
    Ok(())
}

/// Prometheus's scrape: the caller's views (the operator's: all), with the
/// same credentials as `/status`.
async fn metrics(
    State(admin): State<Admin>,
    headers: HeaderMap,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let caller = admin.auth.caller(&headers)?;
    let views = admin
        .visible_to(&caller)
        .flat_map(|deployer| deployer.live())
        .collect();
    let now = chrono::Utc::now().timestamp_micros();
    let text = super::metrics::render(views, now).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics: {e}"),
        )
    })?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            super::metrics::CONTENT_TYPE,
        )],
        text,
    ))
}

/// Liveness: the process answers. No credentials (probes carry none) and
/// nothing revealed.
async fn health() -> &'static str {
    "ok"
}

/// Readiness: every view has partitions assigned (it joined its consumer
/// group) and every tenant's online store answers; else 503. Probes carry
/// no credentials, so the answer names no tenant or view: the details go
/// to the log.
async fn ready(State(admin): State<Admin>) -> Result<&'static str, ApiError> {
    let unready = |message: &str| ApiError(StatusCode::SERVICE_UNAVAILABLE, message.into());
    let mut unassigned = 0;
    for (tenant, deployer) in admin.tenants.iter() {
        for view in deployer.live() {
            let assigned = !view
                .metrics
                .partition_lag
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty();
            if !assigned {
                tracing::debug!(tenant = %tenant, view = %view.view, "not ready: no partitions assigned yet");
                unassigned += 1;
            }
        }
        if let Err(e) = deployer.store_answers().await {
            tracing::warn!(tenant = %tenant, "not ready: {e}");
            return Err(unready("an online store does not answer"));
        }
    }
    match unassigned {
        0 => Ok("ready"),
        n => Err(unready(&format!(
            "{n} view(s) have no partitions assigned yet"
        ))),
    }
}

async fn status(
    State(admin): State<Admin>,
    headers: HeaderMap,
) -> Result<Json<Vec<ViewStatus>>, ApiError> {
    let caller = admin.auth.caller(&headers)?;
    let visible = admin
        .visible_to(&caller)
        .flat_map(|deployer| deployer.status())
        .collect();
    Ok(Json(visible))
}

async fn tenant_status(
    State(admin): State<Admin>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<ViewStatus>>, ApiError> {
    Ok(Json(admin.deployer(&headers, Some(&tenant))?.1.status()))
}

async fn view_status(
    State(admin): State<Admin>,
    Path((tenant, view)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<ViewStatus>, ApiError> {
    let (_, deployer) = admin.deployer(&headers, Some(&tenant))?;
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

impl DeployQuery {
    /// Who deploys, as shown in status and the log: cut to 100 bytes and
    /// escaped like a guest's text, since any caller chooses it.
    fn who(&self) -> String {
        crate::transform::guest_text::sanitize(&self.by, 100)
    }
}

fn anonymous() -> String {
    "admin-api".into()
}

async fn tenant_deploy(
    State(admin): State<Admin>,
    Path((tenant, view)): Path<(String, String)>,
    Query(query): Query<DeployQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Deployed>, ApiError> {
    let tenant = admin.deployer(&headers, Some(&tenant))?;
    run_deploy(&admin, tenant, view, query.who(), &headers, body).await
}

async fn deploy(
    State(admin): State<Admin>,
    Path(view): Path<String>,
    Query(query): Query<DeployQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Deployed>, ApiError> {
    let tenant = admin.deployer(&headers, None)?;
    run_deploy(&admin, tenant, view, query.who(), &headers, body).await
}

/// Reads the module (the caller is authorized and a deploy slot is held)
/// and deploys it off the async runtime.
async fn run_deploy(
    admin: &Admin,
    (tenant, deployer): (String, Arc<Deployer>),
    view: String,
    by: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<Deployed>, ApiError> {
    let max_bytes = deployer.max_module_bytes();
    let declared = declared_length(headers);
    if let Some(length) = declared.filter(|&length| length > max_bytes as u64) {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "module size limit of {max_bytes} bytes exceeded: the upload is {length} bytes"
            ),
        ));
    }
    let slot = admin.deploys.take(&tenant)?;
    let limit = BodyLimit {
        what: "the module",
        max_bytes,
        discard_excess: false,
    };
    let module = super::body::read(body, declared, limit).await?;
    let outcome = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        deployer.deploy(&view, &module, &by)
    })
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
    let tenant = admin.deployer(&headers, Some(&tenant))?;
    run_apply(&admin, tenant, query.who()).await
}

async fn apply(
    State(admin): State<Admin>,
    Query(query): Query<DeployQuery>,
    headers: HeaderMap,
) -> Result<Json<Applied>, ApiError> {
    let tenant = admin.deployer(&headers, None)?;
    run_apply(&admin, tenant, query.who()).await
}

async fn run_apply(
    admin: &Admin,
    (tenant, deployer): (String, Arc<Deployer>),
    by: String,
) -> Result<Json<Applied>, ApiError> {
    let slot = admin.deploys.take(&tenant)?;
    let outcome = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        deployer.apply(&by)
    })
    .await
    .map_err(ApiError::internal)?;
    outcome.map(Json).map_err(deploy_error)
}

async fn tenant_rollback(
    State(admin): State<Admin>,
    Path((tenant, view)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Deployed>, ApiError> {
    let (_, deployer) = admin.deployer(&headers, Some(&tenant))?;
    deployer.rollback(&view).map(Json).map_err(deploy_error)
}

async fn rollback(
    State(admin): State<Admin>,
    Path(view): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Deployed>, ApiError> {
    let (_, deployer) = admin.deployer(&headers, None)?;
    deployer.rollback(&view).map(Json).map_err(deploy_error)
}

fn deploy_error(error: DeployError) -> ApiError {
    let status = match &error {
        DeployError::Registry(crate::control::registry::RegistryError::UnknownView(_)) => {
            StatusCode::NOT_FOUND
        }
        DeployError::Registry(_) => StatusCode::CONFLICT,
        DeployError::Rejected(_) | DeployError::Repo(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError(status, error.to_string())
}
