//! Readiness: named dependency checks run by `GET /health/ready`.
//!
//! The store step registers `database` and `queue` checks with
//! [`crate::AppStateBuilder::readiness_check`]; the server registers `redis` itself when Redis is
//! configured. Each check runs with a time limit and all run concurrently. The answer names the
//! failed checks but never says why: the reason goes to the log.
//!
//! The endpoint is public and unauthenticated, so answers are reused for [`REUSE_FOR`]:
//! however often it is called, the dependencies are checked at most once per interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use samokoder_core::api::{
    HealthStatus, Readiness as ReadinessBody, ReadinessCheckResult, SandboxFeatureStatus,
};
use samokoder_core::runner::{IsolationReport, IsolationState};

use tokio::sync::Mutex;

use crate::error::BoxError;

/// How long one answer is reused.
pub const REUSE_FOR: Duration = Duration::from_secs(1);

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
    /// The sandbox self-test's findings, fixed at start.
    sandbox: Arc<Vec<SandboxFeatureStatus>>,
    /// The last answer and when it was made. A lock held across the checks, so concurrent
    /// callers wait for one run instead of starting their own.
    last: Arc<Mutex<Option<(Instant, ReadinessBody)>>>,
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
    pub(crate) fn new(
        checks: Vec<Arc<dyn ReadinessCheck>>,
        timeout: Duration,
        sandbox: Vec<SandboxFeatureStatus>,
    ) -> Self {
        Self {
            checks: Arc::new(checks),
            timeout,
            sandbox: Arc::new(sandbox),
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// The readiness answer: `ok` only when every check passed. Reuses an answer younger than
    /// [`REUSE_FOR`].
    pub async fn run(&self) -> ReadinessBody {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < REUSE_FOR
        {
            return answer.clone();
        }
        let answer = self.check_all().await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }

    /// Runs every check concurrently, each within the time limit.
    async fn check_all(&self) -> ReadinessBody {
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
            sandbox: self.sandbox.to_vec(),
        }
    }
}

/// What `/health/ready` says of the sandbox: names and outcomes, not the details (those are
/// in the start-up log).
pub(crate) fn sandbox_status(report: &IsolationReport) -> Vec<SandboxFeatureStatus> {
    report
        .features
        .iter()
        .map(|f| SandboxFeatureStatus {
            name: f.name.clone(),
            status: match f.state {
                IsolationState::Available => HealthStatus::Ok,
                IsolationState::Unavailable => HealthStatus::Unavailable,
            },
            required: f.required,
        })
        .collect()
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
