//! `GET /metrics`: the Prometheus scrape endpoint.

use axum::extract::State;
use axum::response::IntoResponse;
use http::header::CONTENT_TYPE;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The content type of the Prometheus text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics.
///
/// HTTP traffic by route template, authentication and rate-limit counters, database and queue
/// gauges, and process figures, in the text exposition format. Meant for the monitoring
/// network; the `/api` proxy does not expose it.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"))
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, EXPOSITION)], state.metrics().render().await)
}
