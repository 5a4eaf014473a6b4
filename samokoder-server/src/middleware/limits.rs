//! Per-route-class limits on request bodies and handling time.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_LENGTH;

use crate::error::ApiError;

/// Middleware: refuses a body announced larger than `limit` before reading any of it.
///
/// Bodies without a `Content-Length` (chunked) are bounded by the `DefaultBodyLimit` set next to
/// this layer: axum's body extractors stop reading at the limit, and the server's extractors
/// turn that into the same 413.
pub(crate) async fn body_limit(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit as u64) {
        return ApiError::payload_too_large(Some(limit)).into_response();
    }
    next.run(req).await
}

/// Middleware: answers 503 `request_timeout` when the rest of the stack takes longer than the
/// limit. The handler's future is dropped, which cancels its pending work.
pub(crate) async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_elapsed) => {
            tracing::warn!(limit_secs = limit.as_secs_f64(), "request timed out");
            ApiError::timeout().into_response()
        }
    }
}
