//! Reading a request body within a size and a time limit.
//!
//! Handlers take the body as a stream and read it only once the request is
//! allowed (authenticated, a slot free): nothing is buffered for a request
//! that will be refused. A body over the limit is answered 413; when it is
//! not far over, the rest is read and discarded first, so a client that
//! sends its whole body before reading the answer gets the 413 rather than
//! a reset connection.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use futures::StreamExt;

use super::ApiError;

/// How long a body may take to arrive.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How much past its limit a body is read and discarded so its sender sees
/// the 413; beyond that the connection is closed.
pub const MAX_DISCARDED_BYTES: u64 = 64 << 20;

/// What the body is, for messages: "the /push body", "the module".
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub what: &'static str,
    pub max_bytes: usize,
    /// Whether to read an over-limit body to its end (bounded) before answering.
    pub discard_excess: bool,
}

/// Reads `body` whole, or answers why not: 413 over the limit, 408 when it
/// does not arrive within [`BODY_READ_TIMEOUT`], 400 when the connection fails.
pub async fn read(body: Body, declared: Option<u64>, limit: BodyLimit) -> Result<Bytes, ApiError> {
    let too_large = |length: String| {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} is over the {}-byte limit ({length})",
                limit.what, limit.max_bytes
            ),
        )
    };
    let max = limit.max_bytes as u64;
    if let Some(length) = declared {
        let discardable = limit.discard_excess && length <= max.saturating_add(MAX_DISCARDED_BYTES);
        if length > max && !discardable {
            return Err(too_large(format!("{length} bytes declared")));
        }
    }
    let reading = read_up_to(body, max, limit.discard_excess);
    match tokio::time::timeout(BODY_READ_TIMEOUT, reading).await {
        Err(_) => Err(ApiError(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "{} did not arrive within {} s",
                limit.what,
                BODY_READ_TIMEOUT.as_secs()
            ),
        )),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "reading {}: {e}",
            limit.what
        ))),
        Ok(Ok(Read::Whole(bytes))) => Ok(bytes),
        Ok(Ok(Read::TooLarge(seen))) => Err(too_large(format!("{seen} bytes or more sent"))),
    }
}

enum Read {
    Whole(Bytes),
    TooLarge(u64),
}

async fn read_up_to(body: Body, max: u64, discard_excess: bool) -> Result<Read, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        seen = seen.saturating_add(chunk.len() as u64);
        if seen <= max {
            kept.extend_from_slice(&chunk);
            continue;
        }
        kept = Vec::new();
        if !discard_excess || seen > max.saturating_add(MAX_DISCARDED_BYTES) {
            return Ok(Read::TooLarge(seen));
        }
    }
    if seen > max {
        return Ok(Read::TooLarge(seen));
    }
    Ok(Read::Whole(Bytes::from(kept)))
}

/// Reads `body` (as [`read`] does) and parses it as JSON: 422 naming `kind`
/// ("a push request") when it does not parse.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    body: Body,
    headers: &axum::http::HeaderMap,
    limit: BodyLimit,
    kind: &str,
) -> Result<T, ApiError> {
    let bytes = read(body, declared_length(headers), limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} is not {kind}: {e}", limit.what),
        )
    })
}

/// The `Content-Length` a request declares, if any.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
