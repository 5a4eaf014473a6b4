//! `GET /health` (liveness) and `GET /health/ready` (readiness).

use axum::extract::State;
use http::StatusCode;
use samokoder_core::api::{Health, HealthStatus, Readiness};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Json;
use crate::state::AppState;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

/// Liveness: whether the process is up.
///
/// Answers as long as the server can answer at all; checks no dependency.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    operation_id = "health",
    responses((status = 200, description = "The server is running", body = Health))
)]
async fn health() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
        version: crate::VERSION.to_owned(),
    })
}

/// Readiness: whether the server can do useful work.
///
/// Runs every registered dependency check (database, Redis, queue) concurrently, each with a
/// time limit, and names the ones that failed. Why a check failed is logged, never returned.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    operation_id = "ready",
    responses(
        (status = 200, description = "Every dependency works", body = Readiness),
        (status = 503, description = "A dependency failed its check; `checks` says which", body = Readiness),
    )
)]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let readiness = state.readiness().run().await;
    let status = match readiness.status {
        HealthStatus::Ok => StatusCode::OK,
        HealthStatus::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(readiness))
}
