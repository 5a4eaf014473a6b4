//! The middleware stack and its order.
//!
//! Outermost first. The order is deliberate; each position says why.
//!
//! **Around routing** ([`outer`]; every request, including 404s and CORS preflights):
//! 1. `request_id` — first, so every log line and error body below can carry the id.
//! 2. `security_headers` — outside everything that can produce a response (CORS preflights,
//!    404, 405, 413, 429, timeouts, panics), so none of them goes out without the headers.
//! 3. CORS — before routing, because preflights are `OPTIONS` requests no route declares;
//!    right inside it the origin check ([`origin`]), which refuses state-changing requests a
//!    browser sends for a foreign origin before any handler runs (and inside CORS so an allowed
//!    origin's refusal is still readable by its page).
//! 4. catch panic — a safety net for the outer layers themselves.
//! 5. path normalisation — rewrites `/api/v1/...` and trailing slashes before the router
//!    matches (see [`paths`]).
//!
//! **Inside routing, for every route and the 404 fallback** ([`router_wide`]; `MatchedPath` is
//! known here):
//! 6. trace span — method, route template, request id.
//! 7. HTTP metrics — by route template.
//! 8. client address — resolves [`crate::extract::ClientIp`] for the layers and handlers below.
//! 9. catch panic — inside trace and metrics, so a panic is logged and counted as the 500 it
//!    becomes.
//!
//! **Per route class** ([`route_class`]):
//! 10. rate limit — before the body is read, so a refused request costs nothing.
//! 11. body limit — `Content-Length` checked up front; streamed bodies are cut at the limit.
//! 12. timeout — the handler's time, including reading the body.

pub(crate) mod client_ip;
mod cors;
mod http_metrics;
mod limits;
mod origin;
mod panic;
pub(crate) mod paths;
pub mod request_id;
pub(crate) mod security_headers;
pub(crate) mod trace;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa_axum::router::OpenApiRouter;

use crate::rate_limit::{self, RouteClass};
use crate::state::AppState;

/// Wraps a finished router in the layers that must run before routing (1-5).
///
/// The result is a `Router` whose only route is a fallback service, so an embedder can
/// `nest_service` (or `nest`) it under a prefix and path normalisation still sees every path.
pub(crate) fn outer(router: Router<AppState>, state: AppState) -> Router {
    let config = state.config();
    let headers = security_headers::SecurityHeaders {
        hsts: config.env.is_production(),
    };
    let cors = cors::layer(
        &config.cors_origins(),
        Duration::from_secs(config.cors.max_age_secs),
    );
    let stack = ServiceBuilder::new()
        .layer(from_fn(request_id::request_id))
        .layer(from_fn_with_state(
            headers,
            security_headers::security_headers,
        ))
        .layer(cors)
        .layer(from_fn_with_state(
            origin::TrustedOrigins::new(&config.cors_origins()),
            origin::refuse_cross_origin,
        ))
        .layer(CatchPanicLayer::custom(panic::PanicResponse))
        .layer(MapRequestLayer::new(paths::normalize_request))
        .service(router.with_state(state));
    Router::new().fallback_service(stack)
}

/// Adds the layers every route and the fallback share (6-9). Call after the fallbacks are set.
pub(crate) fn router_wide(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    router.layer(
        ServiceBuilder::new()
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(trace::make_span)
                    .on_response(
                        DefaultOnResponse::new()
                            .level(Level::INFO)
                            .latency_unit(LatencyUnit::Millis),
                    )
                    .on_failure(DefaultOnFailure::new().level(Level::ERROR)),
            )
            .layer(from_fn(http_metrics::track))
            .layer(from_fn_with_state(
                client_ip::TrustedProxies::new(state.config().trusted_proxies.clone()),
                client_ip::client_ip,
            ))
            .layer(CatchPanicLayer::custom(panic::PanicResponse)),
    )
}

/// Adds the limits of `class` to a group of routes (10-12).
pub(crate) fn route_class(
    routes: OpenApiRouter<AppState>,
    class: RouteClass,
    state: &AppState,
) -> OpenApiRouter<AppState> {
    let config = state.config();
    let body_limit = match class {
        RouteClass::Auth => config.limits.auth_body_bytes,
        RouteClass::General | RouteClass::Operational => config.limits.body_bytes,
    };
    routes.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(
                (state.rate_limiter().clone(), class),
                rate_limit::enforce,
            ))
            .layer(from_fn_with_state(body_limit, limits::body_limit))
            .layer(DefaultBodyLimit::max(body_limit))
            .layer(from_fn_with_state(
                config.request_timeout(),
                limits::timeout,
            )),
    )
}
