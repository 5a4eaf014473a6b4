//! # samokoder-server
//!
//! The reference server assembled from the Samokoder crates. [`router`] returns an axum router an
//! embedder can mount in their own application; the `samokoder-server` binary serves it.
//!
//! For now the router answers `GET /health` only; the `/v1` API lands with the server issue.
//!
//! ```
//! let app: axum::Router = samokoder_server::router();
//! # let _ = app;
//! ```

use axum::{Json, Router, routing::get};
use samokoder_core::api::{Health, HealthStatus};

/// The server's version, as reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds the HTTP router.
pub fn router() -> Router {
    Router::new().route("/health", get(health))
}

async fn health() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
        version: VERSION.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn health_answers_ok() {
        let response = router()
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
