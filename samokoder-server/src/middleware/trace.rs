//! The span every request's log lines belong to.
//!
//! It records the method, the route *template* (`/v1/projects/{id}`, never the raw path, so
//! ids, tokens in query strings and the like stay out of the log) and the request id. No
//! header is recorded: `Authorization` and `Cookie` never reach the log.

use axum::extract::{MatchedPath, Request};
use tracing::Span;

use super::request_id::RequestId;

/// The route label of requests that matched no route.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// The route template of a request, or [`UNMATCHED_ROUTE`].
pub(crate) fn route_of(req: &Request) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
}

/// `TraceLayer::make_span_with` callback.
pub(crate) fn make_span(req: &Request) -> Span {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(RequestId::as_str)
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %req.method(),
        route = route_of(req),
        request_id,
    )
}
