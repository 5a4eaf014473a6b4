//! The routes, one file per resource, and the assembly of the router.
//!
//! # Adding a resource
//!
//! 1. Write `routes/<resource>.rs` with `#[utoipa::path]`-annotated handlers (paths relative to
//!    `/v1`, e.g. `path = "/projects/{id}"`) using the extractors of [`crate::extract`] and
//!    returning `Result<_, ApiError>`, plus
//!    `pub(crate) fn router() -> OpenApiRouter<AppState>` registering them with `routes!`.
//! 2. Register it in [`Api::standard`] under its [`RouteClass`].
//!
//! Registration and documentation are the same call, so a route cannot be served undocumented
//! (or documented unserved). The class gives it its rate limit, body limit and time limit.

mod admin;
mod analytics;
mod auth;
mod docs;
mod events;
mod files;
mod health;
mod keys;
mod metrics;
mod models;
mod notifications;
mod preview;
mod projects;
mod runs;
mod usage;
mod user;
mod ws;

pub(crate) use keys::key_purpose;

use axum::Router;
use utoipa::openapi::OpenApi as Document;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::middleware;
use crate::openapi;
use crate::rate_limit::RouteClass;
use crate::state::AppState;

/// The `/v1` API: groups of documented routes, each with its [`RouteClass`].
///
/// Embedders can extend the reference API with their own resources, which then get the same
/// middleware, limits and documentation:
///
/// ```
/// use samokoder_server::{Api, RouteClass};
/// use utoipa_axum::router::OpenApiRouter;
///
/// let api = Api::standard().routes(RouteClass::General, OpenApiRouter::new());
/// # let _ = api;
/// ```
#[must_use]
pub struct Api {
    groups: Vec<(RouteClass, OpenApiRouter<AppState>)>,
}

impl Api {
    /// An API without routes.
    pub fn empty() -> Self {
        Self { groups: Vec::new() }
    }

    /// The reference server's resources.
    pub fn standard() -> Self {
        Self::empty()
            .routes(RouteClass::Auth, auth::strict_router())
            .routes(RouteClass::General, auth::router())
            .routes(RouteClass::General, projects::router())
            .routes(RouteClass::General, keys::router())
            .routes(RouteClass::General, models::router())
            .routes(RouteClass::General, usage::router())
            .routes(RouteClass::General, user::router())
            .routes(RouteClass::General, notifications::router())
            .routes(RouteClass::General, analytics::router())
            .routes(RouteClass::General, admin::router())
            .routes(RouteClass::General, runs::router())
            .routes(RouteClass::General, events::router())
            .routes(RouteClass::General, ws::router())
            .routes(RouteClass::General, files::router())
            .routes(RouteClass::General, preview::router())
    }

    /// Adds routes (relative to `/v1`) under `class`.
    pub fn routes(mut self, class: RouteClass, routes: OpenApiRouter<AppState>) -> Self {
        self.groups.push((class, routes));
        self
    }
}

/// Composes the documented routes: `/v1` groups and the operational routes, each group passed
/// through `with_limits`. Returns the router (without the docs routes and fallbacks) and the
/// finished document. The same composition serves requests and prints the document, so the
/// two cannot differ.
fn compose(
    api: Api,
    with_limits: impl Fn(OpenApiRouter<AppState>, RouteClass) -> OpenApiRouter<AppState>,
) -> (Router<AppState>, Document) {
    let mut root = OpenApiRouter::with_openapi(openapi::base());
    if !api.groups.is_empty() {
        let mut v1 = OpenApiRouter::new();
        for (class, routes) in api.groups {
            v1 = v1.merge(with_limits(routes, class));
        }
        root = root.nest("/v1", v1);
    }
    let operational = health::router().merge(metrics::router());
    root = root.merge(with_limits(operational, RouteClass::Operational));
    let (router, mut document) = root.split_for_parts();
    openapi::finish(&mut document);
    (router, document)
}

/// The OpenAPI document of `api`, without building any state.
pub fn document(api: Api) -> Document {
    compose(api, |routes, _| routes).1
}

/// The complete router for `api`: routes, docs, fallbacks and the whole middleware stack.
pub fn build(state: AppState, api: Api) -> Router {
    let (routes, document) = compose(api, |routes, class| {
        middleware::route_class(routes, class, &state)
    });
    let (docs, _) = middleware::route_class(
        OpenApiRouter::from(docs::router(openapi::to_json(&document))),
        RouteClass::Operational,
        &state,
    )
    .split_for_parts();
    let routes = routes
        .merge(docs)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let routes = middleware::router_wide(routes, &state);
    middleware::outer(routes, state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("Not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
