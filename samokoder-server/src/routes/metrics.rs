//! `GET /metrics`: the Prometheus scrape endpoint, behind `metrics.token` when one is set and
//! closed in production when none is.

use axum::extract::State;
use axum::response::IntoResponse;
use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use samokoder_auth::extract::bearer_token;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use samokoder_core::api::ErrorBody;

use crate::error::ApiError;
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
/// gauges, and process figures, in the text exposition format. With `metrics.token` set, a
/// scraper sends `Authorization: Bearer <token>`; without one the endpoint is open outside
/// production and refused in production.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"),
        (status = 401, description = "`metrics_token_invalid`: the scrape token is missing or wrong", body = ErrorBody),
        (status = 403, description = "`metrics_token_required`: production without `metrics.token`", body = ErrorBody),
    )
)]
async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize_scrape(state.config(), &headers)?;
    Ok(([(CONTENT_TYPE, EXPOSITION)], state.metrics().render().await))
}

/// Lets a scrape through, or says why not.
fn authorize_scrape(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    match &config.metrics.token {
        Some(token) => match bearer_token(headers) {
            Some(Ok(presented)) if token.matches(presented) => Ok(()),
            _ => Err(
                ApiError::unauthorized("send the scrape token as a bearer token")
                    .with_code("metrics_token_invalid")
                    .with_header(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"Bearer realm="metrics""#),
                    ),
            ),
        },
        None if config.env.is_production() => Err(ApiError::forbidden(
            "metrics are closed in production until `metrics.token` is configured",
        )
        .with_code("metrics_token_required")),
        None => Ok(()),
    }
}
