//! `POST /push`: Feast's push request, `{"push_source_name", "df", "to"}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::body::{BodyLimit, read_json};
use super::{ApiError, Worker};
use crate::pipeline::push::{PushSummary, PushTarget, PushTo};

#[derive(Debug, Deserialize)]
pub struct PushRequest {
    pub push_source_name: String,
    /// Column name -> values, as pandas' `to_dict(orient="list")` gives.
    pub df: serde_json::Map<String, serde_json::Value>,
    #[serde(default = "online")]
    pub to: PushTo,
}

fn online() -> PushTo {
    PushTo::Online
}

pub async fn push(
    State(state): State<Arc<Worker>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<PushSummary>, ApiError> {
    let limit = BodyLimit {
        what: "the /push body",
        max_bytes: state.max_push_bytes,
        discard_excess: true,
    };
    let request: PushRequest = read_json(body, &headers, limit, "a push request").await?;
    let served = state.served();
    let target = served
        .push_targets
        .get(&request.push_source_name)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "no push source `{}` in the repo",
                request.push_source_name
            ))
        })?;
    push_df(&state, &served.repo, target, &request.df, request.to).await
}

/// A request's column-oriented rows through `target`: integers checked
/// exact, cast to the declared types, pushed; the summary or the error.
async fn push_df(
    state: &Worker,
    repo: &crate::repo::FeatureRepo,
    target: &PushTarget,
    df: &serde_json::Map<String, serde_json::Value>,
    to: PushTo,
) -> Result<Json<PushSummary>, ApiError> {
    refuse_inexact_integers(df, &target.declared_types()).map_err(ApiError::bad_request)?;
    let batch = columns_to_batch(df).map_err(ApiError::bad_request)?;
    let summary = target
        .push(repo, batch, to, Some(&state.online))
        .await
        .map_err(|e| ApiError::of(&e))?;
    Ok(Json(summary))
}

/// Feast's `write_to_online_store` request: a view's own rows. Its
/// `allow_registry_cache` is accepted and ignored (`serve` answers from the
/// repo as last loaded; it reloads it when its files change).
#[derive(Debug, Deserialize)]
pub struct WriteRequest {
    pub feature_view_name: String,
    pub df: serde_json::Map<String, serde_json::Value>,
}

/// `POST /write-to-online-store`: the rows written to the view as they are
/// (no transform), cast to its declared types and checked like a push.
pub async fn write_to_online_store(
    State(state): State<Arc<Worker>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<PushSummary>, ApiError> {
    let limit = BodyLimit {
        what: "the /write-to-online-store body",
        max_bytes: state.max_push_bytes,
        discard_excess: true,
    };
    let request: WriteRequest = read_json(body, &headers, limit, "a write request").await?;
    let served = state.served();
    let target = match served.direct_targets.get(&request.feature_view_name) {
        None => {
            return Err(ApiError::bad_request(format!(
                "no feature view `{}` in the repo",
                request.feature_view_name
            )));
        }
        Some(Err(why)) => return Err(ApiError::bad_request(why)),
        Some(Ok(target)) => target,
    };
    push_df(&state, &served.repo, target, &request.df, PushTo::Online).await
}

/// JSON numbers beyond ±2^53 that are not exact integers lost their digits
/// when parsed (`-9223372036854775809` reads as -2^63): for a column
/// declared as an integer they are refused, naming the row, never clamped.
fn refuse_inexact_integers(
    df: &serde_json::Map<String, serde_json::Value>,
    declared: &std::collections::HashMap<&str, arrow_schema::DataType>,
) -> Result<(), String> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    for (column, values) in df {
        let Some(declared) = declared.get(column.as_str()).filter(|t| t.is_integer()) else {
            continue;
        };
        for (row, value) in values.as_array().into_iter().flatten().enumerate() {
            let Some(number) = value.as_number() else {
                continue;
            };
            let exact = number.is_i64()
                || number.is_u64()
                || number
                    .as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < EXACT);
            if !exact {
                return Err(format!(
                    "df column `{column}` row {row}: {number} is not an integer that fits {declared}"
                ));
            }
        }
    }
    Ok(())
}

/// Most rows one `/push` request may carry.
pub const MAX_PUSH_ROWS: usize = 1_000_000;

/// A column-oriented JSON table as one Arrow batch, types inferred from the
/// values. Built a column at a time, so memory follows the values, not
/// rows x column names.
fn columns_to_batch(
    df: &serde_json::Map<String, serde_json::Value>,
) -> Result<arrow_array::RecordBatch, String> {
    let mut rows = None;
    let mut fields = Vec::with_capacity(df.len());
    let mut columns = Vec::with_capacity(df.len());
    for (column, values) in df {
        let values = values
            .as_array()
            .ok_or_else(|| format!("df column `{column}` is not a list"))?;
        match rows {
            None => rows = Some(values.len()),
            Some(rows) if rows != values.len() => {
                return Err(format!(
                    "df column `{column}` has {} values, others have {rows}",
                    values.len()
                ));
            }
            Some(_) => {}
        }
        if values.len() > MAX_PUSH_ROWS {
            return Err(format!(
                "df has {} rows; a push takes at most {MAX_PUSH_ROWS}",
                values.len()
            ));
        }
        let array = column_to_array(values).map_err(|e| format!("df column `{column}`: {e}"))?;
        fields.push(arrow_schema::Field::new(
            column,
            array.data_type().clone(),
            true,
        ));
        columns.push(array);
    }
    if rows.unwrap_or(0) == 0 {
        return Err("df has no rows".into());
    }
    arrow_array::RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
        .map_err(|e| e.to_string())
}

/// One column's JSON values as an Arrow array of the type they infer to.
/// Values of different kinds (a number and a string) are refused naming
/// the first row that differs.
fn column_to_array(values: &[serde_json::Value]) -> Result<arrow_array::ArrayRef, String> {
    let kind = |value: &serde_json::Value| match value {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(_) => Some("a boolean"),
        serde_json::Value::Number(_) => Some("a number"),
        serde_json::Value::String(_) => Some("a string"),
        serde_json::Value::Array(_) => Some("a list"),
        serde_json::Value::Object(_) => Some("an object"),
    };
    let mut first: Option<(usize, &str)> = None;
    for (row, value) in values.iter().enumerate() {
        match (first, kind(value)) {
            (None, Some(found)) => first = Some((row, found)),
            (Some((first_row, expected)), Some(found)) if found != expected => {
                return Err(format!(
                    "row {row} is {found} but row {first_row} is {expected}; a column's values are of one kind"
                ));
            }
            _ => {}
        }
    }
    let mut lines = Vec::with_capacity(values.len() * 8);
    for value in values {
        lines.extend_from_slice(b"{\"v\":");
        serde_json::to_writer(&mut lines, value).map_err(|e| e.to_string())?;
        lines.extend_from_slice(b"}\n");
    }
    let (schema, _) = arrow_json::reader::infer_json_schema(std::io::Cursor::new(&lines), None)
        .map_err(|e| e.to_string())?;
    let mut reader = arrow_json::ReaderBuilder::new(Arc::new(schema))
        .with_batch_size(values.len().max(1))
        .build(std::io::Cursor::new(&lines))
        .map_err(|e| e.to_string())?;
    let batch = reader
        .next()
        .transpose()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no values".to_string())?;
    Ok(batch.column(0).clone())
}
