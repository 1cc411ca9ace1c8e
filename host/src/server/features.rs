//! `POST /get-online-features`: Feast's request and response shapes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::body::{BodyLimit, read_json};
use super::{ApiError, Worker};
use crate::online::request::OnlineRequest;
use crate::online::{EchoedColumn, FeatureRef, ResponseStyle};

#[derive(Debug, Deserialize)]
pub struct FeaturesRequest {
    /// Join key -> one value per entity.
    pub entities: serde_json::Map<String, serde_json::Value>,
    /// `view:feature` references; or a `feature_service` instead.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    #[serde(default)]
    pub feature_service: Option<String>,
    #[serde(default)]
    pub full_feature_names: bool,
}

impl FeaturesRequest {
    /// The `view:feature` references asked for: the list, or the service's features.
    fn feature_names(&self, repo: &crate::repo::FeatureRepo) -> Result<Vec<String>, String> {
        match (&self.features, &self.feature_service) {
            (Some(features), None) => Ok(features.clone()),
            (None, Some(service)) => repo
                .service_features(service)
                .ok_or_else(|| format!("no feature service `{service}` in the repo")),
            (Some(_), Some(_)) => Err("give `features` or `feature_service`, not both".into()),
            (None, None) => {
                Err("give `features` (view:feature names) or a `feature_service`".into())
            }
        }
    }
}

/// Largest `/get-online-features` body read.
pub const MAX_REQUEST_BYTES: usize = 2 << 20;

/// Most values (entities x features) one request may ask for: the answer
/// is built in memory, about a hundred bytes a value.
pub const MAX_VALUES: usize = 1_000_000;

pub async fn get_online_features(
    State(state): State<Arc<Worker>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<impl IntoResponse, ApiError> {
    let limit = BodyLimit {
        what: "the /get-online-features body",
        max_bytes: MAX_REQUEST_BYTES,
        discard_excess: true,
    };
    let request: FeaturesRequest =
        read_json(body, &headers, limit, "a get-online-features request").await?;
    let served = state.served();
    let repo = &served.repo;
    let features = request.feature_names(repo).map_err(ApiError::bad_request)?;
    let mut seen = std::collections::HashSet::new();
    if let Some(duplicate) = features.iter().find(|f| !seen.insert(f.as_str())) {
        return Err(ApiError::bad_request(format!(
            "feature `{duplicate}` is asked for more than once"
        )));
    }
    let refs = features
        .iter()
        .map(|f| FeatureRef::parse(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::bad_request)?;
    let resolved = OnlineRequest::new(repo, &refs).map_err(ApiError::bad_request)?;
    let coercion = state.feast_compatible.key_coercion;
    let rows =
        entity_rows(&request.entities, &resolved, coercion).map_err(ApiError::bad_request)?;
    let values = rows.len().saturating_mul(refs.len().max(1));
    if values > MAX_VALUES {
        return Err(ApiError(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request asks for {values} values ({} entities x {} features); at most {MAX_VALUES} are answered at once",
                rows.len(),
                refs.len()
            ),
        ));
    }
    let style = ResponseStyle {
        full_feature_names: request.full_feature_names,
        feast_statuses: state.feast_compatible.statuses,
    };
    let echoed = other_entity_columns(&request.entities, &resolved, repo, rows.len());
    let store = state.online.store.as_ref();
    let json = resolved
        .read_json(repo, store, &rows, &echoed, style)
        .await
        .map_err(|e| ApiError::of(&e))?;
    Ok(([(CONTENT_TYPE, "application/json")], json))
}

/// Entity lists for join keys of the repo's other entities come back as
/// columns after the requested views' join keys, as Feast echoes them
/// (Feast drops lists that name no join key at all, and so does fvhost).
fn other_entity_columns(
    entities: &serde_json::Map<String, serde_json::Value>,
    request: &OnlineRequest<'_>,
    repo: &crate::repo::FeatureRepo,
    rows: usize,
) -> Vec<EchoedColumn> {
    let is_join_key = |name: &str| {
        repo.entities
            .iter()
            .any(|e| e.join_keys.iter().any(|k| k == name))
    };
    entities
        .iter()
        .filter(|(name, _)| {
            !request.join_keys.iter().any(|key| &key.name == *name) && is_join_key(name)
        })
        .filter_map(|(name, values)| {
            let values = values.as_array().filter(|v| v.len() == rows)?;
            Some(EchoedColumn {
                name: name.clone(),
                values: values.clone(),
            })
        })
        .collect()
}

/// `{"driver_id": [1, 2]}` as rows of text values in join-key order.
fn entity_rows(
    entities: &serde_json::Map<String, serde_json::Value>,
    request: &OnlineRequest<'_>,
    feast_key_coercion: bool,
) -> Result<Vec<Vec<String>>, String> {
    let lengths: Vec<(&String, usize)> = entities
        .iter()
        .filter_map(|(name, values)| values.as_array().map(|v| (name, v.len())))
        .collect();
    if let (Some((first, count)), Some((other, other_count))) = (
        lengths.first(),
        lengths
            .iter()
            .find(|(_, n)| Some(n) != lengths.first().map(|(_, n)| n)),
    ) {
        return Err(format!(
            "every entity list needs the same number of values: `{first}` has {count}, `{other}` has {other_count}"
        ));
    }
    if request.join_keys.is_empty() {
        // Views without entities: one row per value of whatever entity list
        // came (Feast's entity-less case), else one row.
        let count = lengths.first().map_or(1, |(_, n)| *n);
        return Ok(vec![Vec::new(); count]);
    }
    let mut columns = Vec::with_capacity(request.join_keys.len());
    for key in &request.join_keys {
        let values = entities
            .get(&key.name)
            .and_then(|v| v.as_array())
            .ok_or_else(|| format!("entities must give a list for join key `{}`", key.name))?;
        let text = |v| key_text(v, feast_key_coercion && key.value_type.is_integer());
        columns.push(values.iter().map(text).collect::<Vec<_>>());
    }
    let count = columns.first().map_or(0, Vec::len);
    Ok((0..count)
        .map(|i| columns.iter().map(|c| c[i].clone()).collect())
        .collect())
}

/// A join-key value as the text the key's type is parsed from: strings as
/// they are, an integral number as an integer (`1003.0` is 1003, as Feast
/// reads it; `1003.5` stays and is refused by an integer key, unless
/// `truncate` coerces it as Feast does: `1003.5` is 1003, `true` is 1).
fn key_text(value: &serde_json::Value, truncate: bool) -> String {
    if let Some(text) = value.as_str() {
        return text.to_string();
    }
    if truncate {
        match value {
            serde_json::Value::Bool(b) => return i64::from(*b).to_string(),
            serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
                if let Some(f) = n.as_f64().filter(|f| f.is_finite() && f.abs() < 9.2e18) {
                    return format!("{}", f.trunc() as i64);
                }
            }
            _ => {}
        }
    }
    match value.as_f64() {
        Some(f) if !value.is_i64() && !value.is_u64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            format!("{}", f as i64)
        }
        _ => value.to_string(),
    }
}
