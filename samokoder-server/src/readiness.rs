//! Readiness: named dependency checks run by `GET /health/ready`.
//!
//! The store step registers `database` and `queue` checks with
//! [`crate::AppStateBuilder::readiness_check`]; the server registers `redis` itself when Redis is
//! configured. Each check runs with a time limit and all run concurrently. The answer names the
//! failed checks but never says why: the reason goes to the log.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use samokoder_core::api::{HealthStatus, Readiness as ReadinessBody, ReadinessCheckResult};

use crate::error::BoxError;

/// One dependency the server needs in order to be useful.
#[async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    /// The name reported in the answer, e.g. `database`.
    fn name(&self) -> &str;

    /// `Ok` when the dependency works. Errors are logged, never shown to callers.
    async fn check(&self) -> Result<(), BoxError>;
}

/// The registered checks and their time limit.
#[derive(Clone)]
pub struct Readiness {
    checks: Arc<Vec<Arc<dyn ReadinessCheck>>>,
    timeout: Duration,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field(
                "checks",
                &self
                    .checks
                    .iter()
                    .map(|c| c.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Readiness {
    pub(crate) fn new(checks: Vec<Arc<dyn ReadinessCheck>>, timeout: Duration) -> Self {
        Self {
            checks: Arc::new(checks),
            timeout,
        }
    }

    /// Runs every check; the answer is `ok` only when all passed.
    pub async fn run(&self) -> ReadinessBody {
        let results = futures::future::join_all(self.checks.iter().map(|check| async move {
            let outcome = tokio::time::timeout(self.timeout, check.check()).await;
            let status = match outcome {
                Ok(Ok(())) => HealthStatus::Ok,
                Ok(Err(error)) => {
                    tracing::warn!(check = check.name(), %error, "readiness check failed");
                    HealthStatus::Unavailable
                }
                Err(_) => {
                    tracing::warn!(
                        check = check.name(),
                        timeout_ms = self.timeout.as_millis() as u64,
                        "readiness check timed out"
                    );
                    HealthStatus::Unavailable
                }
            };
            ReadinessCheckResult {
                name: check.name().to_owned(),
                status,
            }
        }))
        .await;
        let status = if results.iter().all(|r| r.status == HealthStatus::Ok) {
            HealthStatus::Ok
        } else {
            HealthStatus::Unavailable
        };
        ReadinessBody {
            status,
            checks: results,
        }
    }
}

/// Redis answers `PING`.
pub(crate) struct RedisCheck {
    pub(crate) connection: redis::aio::ConnectionManager,
}

#[async_trait]
impl ReadinessCheck for RedisCheck {
    fn name(&self) -> &str {
        "redis"
    }

    async fn check(&self) -> Result<(), BoxError> {
        let mut connection = self.connection.clone();
        let pong: String = redis::cmd("PING").query_async(&mut connection).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err("unexpected answer to PING".into())
        }
    }
}
