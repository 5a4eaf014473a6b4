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

/// Body of `GET /health/ready`: whether the server can do useful work right now.
///
/// Only the name and the outcome of each check are reported; why a check failed goes to the
/// server's log, never into this public answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// `ok` when every check passed, `unavailable` otherwise.
    pub status: HealthStatus,
    /// One entry per registered dependency check, in registration order.
    pub checks: Vec<ReadinessCheckResult>,
}

/// The outcome of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadinessCheckResult {
    /// The dependency checked, e.g. `database`, `redis`, `queue`.
    pub name: String,
    /// `ok`, or `unavailable` when the check failed or did not answer in time.
    pub status: HealthStatus,
}
