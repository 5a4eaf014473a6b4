//! # samokoder-server
//!
//! The reference server assembled from the Samokoder crates: configuration, the `/v1` HTTP
//! API with its middleware, OpenAPI, metrics, and the `samokoder-server` binary
//! (`serve`, `migrate`, `admin`, `openapi`, `config`).
//!
//! ## Parts
//!
//! [`AppState`] holds the configuration and keys, the [`samokoder_store::Store`] (opened from
//! `database_url` and migrated at start-up unless the embedder passes its own), the
//! authentication services ([`security::AuthServices`]: token issuer, password hasher, refresh
//! sessions, lockout, secret box, cookies), the LLM layer ([`LlmServices`]: provider registry
//! and the model [`catalog`]), the generation engine with its previews ([`generation`]), metrics,
//! the rate limiter and the readiness checks. Routes live in `routes/<resource>.rs`; the plans
//! and their quotas in [`quota`]; the audit log in [`audit`]; account administration in
//! [`admin`]; the workers that drive runs in [`generation::worker`].
//!
//! ## Embedding
//!
//! [`router`] returns a complete `axum::Router` — routes, docs, fallbacks and the whole
//! middleware stack (request ids, security headers, CORS, path normalisation, tracing,
//! metrics, client address, panic handling, and per-class rate, body and time limits; see
//! [`middleware`] for the order). Because path normalisation must see requests before routing,
//! the router is one fallback service: mount it with `nest_service` (or `nest`) under any
//! prefix, and serve it with `into_make_service_with_connect_info::<SocketAddr>()` so it knows
//! client addresses.
//!
//! ```no_run
//! # async fn embed() -> Result<(), Box<dyn std::error::Error>> {
//! use samokoder_server::{AppState, Config, Secrets};
//!
//! // Opens (and migrates) the SQLite database in ./.samokoder; see `AppStateBuilder::store`
//! // to pass a store of your own.
//! let state = AppState::builder(Config::default(), Secrets::generate()).build().await?;
//! let app = axum::Router::new().nest_service("/samokoder", samokoder_server::router(state));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! What the embedder does not get from the router, and [`Application`] (the binary) adds:
//! binding the configured address, connection info, the in-process workers that drive runs
//! (`workers.concurrency`; an embedder starts them with [`generation::worker::WorkerPool`]),
//! graceful shutdown on SIGINT/SIGTERM with a grace period, configuration validation and
//! development-secret generation, and the global log subscriber
//! ([`observability::logging::init`]).

pub mod admin;
pub mod app;
pub mod audit;
pub mod catalog;
pub mod config;
pub mod database;
pub mod error;
pub mod extract;
pub mod generation;
pub mod middleware;
pub mod observability;
pub mod openapi;
pub mod preview_site;
pub mod quota;
pub mod rate_limit;
pub mod readiness;
pub mod routes;
pub mod security;
pub mod state;
pub mod validation;

pub use app::{Application, RunningServer, StartupError, work_until_stopped};
pub use config::{Config, ConfigError, Environment, Secrets};
pub use error::ApiError;
pub use rate_limit::{RateLimitKey, RateLimitKeyResolver, RouteClass};
pub use readiness::ReadinessCheck;
pub use routes::Api;
pub use state::{AppState, AppStateBuilder, LlmServices, StateError};

/// The server's version, as reported by `/health` and the OpenAPI document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The reference server's complete router (see the crate documentation for what it includes).
pub fn router(state: AppState) -> axum::Router {
    routes::build(state, Api::standard())
}

/// The router with the reference API extended (or replaced) by `api`.
pub fn router_with(state: AppState, api: Api) -> axum::Router {
    routes::build(state, api)
}

/// The reference API's OpenAPI document, built without any state or configuration.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::document(Api::standard())
}
