//! Liveness and readiness answers.

use serde::{Deserialize, Serialize};

/// Overall status reported by the health endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything checked works.
    Ok,
    /// At least one dependency failed its check.
    Unavailable,
}

/// Body of `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Overall status.
    pub status: HealthStatus,
    /// The server's version.
    pub version: String,
}
