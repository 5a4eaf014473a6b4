//! [`AppState`]: what every handler and middleware can reach.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use samokoder_auth::AuthError;
use samokoder_auth::extract::AuthState;
use samokoder_core::llm::{LlmError, LlmRegistry};
use samokoder_core::net::HostAllowlist;
use samokoder_core::runner::RunnerError;
use samokoder_store::{Store, StoreError};

use crate::catalog::Catalog;
use crate::config::{Config, Secrets};
use crate::database::{self, DatabaseCheck, PoolProbe, QueueCheck, QueueProbe};
use crate::generation::{Generation, sandbox};
use crate::observability::metrics::{self, Metrics, ScrapeProbe};
use crate::rate_limit::{RateLimitKeyResolver, RateLimiter, RedisError};
use crate::readiness::{Readiness, ReadinessCheck, RedisCheck, sandbox_status};
use crate::security::{AuthServices, TokenKeyResolver};

/// The shared state of the server: configuration, keys, the store, the authentication services,
/// the LLM layer, metrics, rate limiter and readiness checks. Cheap to clone (one `Arc`).
///
/// Embedders reach the parts through the accessors (their own routes can read the store, for
/// instance) and replace them through [`AppStateBuilder`].
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    secrets: Secrets,
    store: Store,
    auth: AuthServices,
    llm: LlmServices,
    metrics: Metrics,
    rate_limiter: RateLimiter,
    readiness: Readiness,
    generation: Generation,
    started_at: Instant,
}

/// The deployment's LLM providers and the catalogue `/v1/models` shows.
#[derive(Clone)]
pub struct LlmServices {
    /// The providers and per-run route resolution.
    pub registry: Arc<LlmRegistry>,
    /// Providers, models, limits and prices.
    pub catalog: Arc<Catalog>,
    /// Hosts users' own base URLs may point at.
    pub allowed_base_url_hosts: Arc<HostAllowlist>,
}

impl fmt::Debug for LlmServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmServices")
            .field("registry", &self.registry)
            .field("allowed_base_url_hosts", &self.allowed_base_url_hosts)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .field("store", &self.inner.store)
            .field("auth", &self.inner.auth)
            .field("llm", &self.inner.llm)
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
            store: None,
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

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The authentication services.
    pub fn auth(&self) -> &AuthServices {
        &self.inner.auth
    }

    /// The LLM layer.
    pub fn llm(&self) -> &LlmServices {
        &self.inner.llm
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

    /// The engine, its workers' cancellation tokens, previews and WebSocket tokens.
    pub fn generation(&self) -> &Generation {
        &self.inner.generation
    }

    /// How long this state (so, the server) has existed.
    pub fn uptime(&self) -> Duration {
        self.inner.started_at.elapsed()
    }
}

impl FromRef<AppState> for AuthState {
    fn from_ref(state: &AppState) -> Self {
        state.inner.auth.state.clone()
    }
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The Redis URL could not be used.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The authentication settings or keys are unusable.
    #[error("authentication: {0}")]
    Auth(#[from] AuthError),
    /// The `llm` settings are unusable.
    #[error("llm: {0}")]
    Llm(#[from] LlmError),
    /// The sandboxed runner cannot be used (the sandbox is required and an isolation feature
    /// does not work here), or its configuration is invalid.
    #[error("runner: {0}")]
    Runner(#[from] RunnerError),
}

/// Assembles an [`AppState`]; the place where embedders plug in their parts.
#[must_use]
pub struct AppStateBuilder {
    config: Config,
    secrets: Secrets,
    store: Option<Store>,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    probes: Vec<Arc<dyn ScrapeProbe>>,
    resolver: Option<Arc<dyn RateLimitKeyResolver>>,
    prometheus: Option<PrometheusHandle>,
}

impl AppStateBuilder {
    /// Uses `store` (already migrated, or migrated by the caller) instead of opening the one
    /// the configuration names. Embedders can pass a store whose repositories they replaced.
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Adds a dependency check to `/health/ready` (besides the database and queue checks the
    /// server registers itself).
    pub fn readiness_check(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Adds a probe that records gauges when `/metrics` is scraped.
    pub fn scrape_probe(mut self, probe: impl ScrapeProbe) -> Self {
        self.probes.push(Arc::new(probe));
        self
    }

    /// Replaces how authenticated requests are keyed for rate limiting (by default, the user of
    /// a verified access token).
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

    /// Builds the state. Needs a Tokio runtime.
    ///
    /// Without [`AppStateBuilder::store`], opens the database the configuration names and, when
    /// `database.migrate_on_start` is on (the default), applies pending migrations: a database
    /// that cannot be opened is a start-up error. Redis is connected lazily, so a Redis that is
    /// down does not stop start-up (readiness reports it instead).
    pub async fn build(self) -> Result<AppState, StateError> {
        let config = self.config;
        let store = match self.store {
            Some(store) => store,
            None => {
                let store = database::open_store(&config).await?;
                if config.database.migrate_on_start {
                    database::migrate(&store).await?;
                }
                store
            }
        };
        let auth = AuthServices::new(&config, &self.secrets, &store).await?;
        let llm_config = config.llm.0.clone();
        let allowed_base_url_hosts = Arc::new(
            HostAllowlist::parse(&llm_config.allowed_base_url_hosts)
                .map_err(|e| LlmError::Config(format!("allowed_base_url_hosts: {e}")))?,
        );
        let registry = LlmRegistry::new(llm_config.clone())?;
        let catalog = Arc::new(Catalog::new(&llm_config, &registry.prices()));
        let registry = Arc::new(registry);
        let runner = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || sandbox::build_runner(&config))
                .await
                .map_err(|e| {
                    StateError::Runner(RunnerError::Io {
                        action: "run the sandbox self-test",
                        source: std::io::Error::other(e),
                    })
                })??
        };
        let sandbox_report = sandbox_status(runner.isolation());
        let generation = Generation::new(
            &config,
            &store,
            registry.clone(),
            auth.secret_box.clone(),
            Arc::new(runner),
        );
        let llm = LlmServices {
            registry,
            catalog,
            allowed_base_url_hosts,
        };

        let prometheus = self.prometheus.or_else(metrics::install_prometheus);
        if let Some(handle) = &prometheus {
            metrics::spawn_upkeep(handle);
        }
        let resolver = self
            .resolver
            .unwrap_or_else(|| Arc::new(TokenKeyResolver::new(auth.issuer.clone())));
        let rate_limiter = RateLimiter::new(
            &config.rate_limit,
            config.redis_url.as_ref(),
            Some(resolver),
        )?;
        let mut checks: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(DatabaseCheck(store.clone())),
            Arc::new(QueueCheck(store.clone())),
        ];
        if let Some(redis) = rate_limiter.redis() {
            checks.push(Arc::new(RedisCheck {
                connection: redis.connection(),
            }));
        }
        checks.extend(self.checks);
        let readiness = Readiness::new(
            checks,
            Duration::from_millis(config.health.check_timeout_ms),
            sandbox_report,
        );
        let mut probes: Vec<Arc<dyn ScrapeProbe>> = vec![
            Arc::new(PoolProbe(store.clone())),
            Arc::new(QueueProbe(store.clone())),
        ];
        probes.extend(self.probes);
        Ok(AppState {
            inner: Arc::new(Inner {
                metrics: Metrics::new(prometheus, probes),
                rate_limiter,
                readiness,
                secrets: self.secrets,
                store,
                auth,
                llm,
                generation,
                config,
                started_at: Instant::now(),
            }),
        })
    }
}
