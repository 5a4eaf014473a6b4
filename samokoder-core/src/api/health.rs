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
    /// The sandbox's isolation features, as its self-test found them when the server started
    /// (the details are in the start-up log). They do not change `status`: a server in `auto`
    /// sandbox mode runs with what works and says so here; `require` mode does not start
    /// without the required ones.
    #[serde(default)]
    pub sandbox: Vec<SandboxFeatureStatus>,
}

/// One isolation feature of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SandboxFeatureStatus {
    /// `jail`, `network`, `tmp_size`, `process_limit`, `memory_limit` or `bridge`.
    pub name: String,
    /// `ok` when it works on this host.
    pub status: HealthStatus,
    /// Whether `runner.sandbox = require` needs it.
    pub required: bool,
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
