//! [`AppState`]: what every handler and middleware can reach.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::{Config, Secrets};
use crate::observability::metrics::{self, Metrics, ScrapeProbe};
use crate::rate_limit::{RateLimitKeyResolver, RateLimiter, RedisError};
use crate::readiness::{Readiness, ReadinessCheck, RedisCheck};

/// The shared state of the server: configuration, keys, metrics, rate limiter and readiness
/// checks. Cheap to clone (one `Arc`).
///
/// The auth, store and engine services join it in later steps, each as an `Arc<dyn Trait>`
/// field with a builder method, so embedders can swap implementations.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    secrets: Secrets,
    metrics: Metrics,
    rate_limiter: RateLimiter,
    readiness: Readiness,
    started_at: Instant,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .field("metrics", &self.inner.metrics)
            .field("rate_limiter", &self.inner.rate_limiter)
            .field("readiness", &self.inner.readiness)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Starts building a state from a validated configuration and its resolved keys (see
    /// [`Config::validate`] and [`Config::resolve_secrets`]).
    pub fn builder(config: Config, secrets: Secrets) -> AppStateBuilder {
        AppStateBuilder {
            config,
            secrets,
            checks: Vec::new(),
            probes: Vec::new(),
            resolver: None,
            prometheus: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The signing and encryption keys.
    pub fn secrets(&self) -> &Secrets {
        &self.inner.secrets
    }

    /// Metrics rendering.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The rate limiter.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.rate_limiter
    }

    /// The readiness checks.
    pub fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    /// How long this state (so, the server) has existed.
    pub fn uptime(&self) -> Duration {
        self.inner.started_at.elapsed()
    }
}

/// Assembles an [`AppState`]; the place where later steps and embedders plug in their parts.
#[must_use]
pub struct AppStateBuilder {
    config: Config,
    secrets: Secrets,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    probes: Vec<Arc<dyn ScrapeProbe>>,
    resolver: Option<Arc<dyn RateLimitKeyResolver>>,
    prometheus: Option<PrometheusHandle>,
}

impl AppStateBuilder {
    /// Adds a dependency check to `/health/ready` (database, queue, ...).
    pub fn readiness_check(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Adds a probe that records gauges when `/metrics` is scraped (pool usage, queue depth).
    pub fn scrape_probe(mut self, probe: impl ScrapeProbe) -> Self {
        self.probes.push(Arc::new(probe));
        self
    }

    /// Sets how authenticated requests are keyed for rate limiting (the auth step's verified
    /// token → user id).
    pub fn rate_limit_key_resolver(mut self, resolver: impl RateLimitKeyResolver) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Renders `/metrics` from this handle instead of installing the server's own global
    /// recorder (for embedders that already installed one).
    pub fn prometheus_handle(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// Builds the state. Needs a Tokio runtime (the lazy Redis connection and the metrics upkeep
    /// run on it); connects to nothing yet, so a dependency that is down does not stop start-up
    /// (readiness reports it instead).
    pub async fn build(self) -> Result<AppState, RedisError> {
        let config = self.config;
        let prometheus = self.prometheus.or_else(metrics::install_prometheus);
        if let Some(handle) = &prometheus {
            metrics::spawn_upkeep(handle);
        }
        let rate_limiter =
            RateLimiter::new(&config.rate_limit, config.redis_url.as_ref(), self.resolver)?;
        let mut checks = self.checks;
        if let Some(redis) = rate_limiter.redis() {
            checks.insert(
                0,
                Arc::new(RedisCheck {
                    connection: redis.connection(),
                }),
            );
        }
        let readiness = Readiness::new(
            checks,
            Duration::from_millis(config.health.check_timeout_ms),
        );
        Ok(AppState {
            inner: Arc::new(Inner {
                metrics: Metrics::new(prometheus, self.probes),
                rate_limiter,
                readiness,
                secrets: self.secrets,
                config,
                started_at: Instant::now(),
            }),
        })
    }
}
