//! Prometheus metrics through the `metrics` facade, rendered by `GET /metrics`.
//!
//! Every metric the server or a later step records is named and described here, and series
//! without labels (or with a known, closed set of labels) are registered at zero, so dashboards
//! and alerts see them before the first event.
//!
//! Hooks for the store and the worker:
//! - gauges read at scrape time (pool size and use, queue depth) come from [`ScrapeProbe`]s
//!   registered with [`crate::AppStateBuilder::scrape_probe`]; a probe calls
//!   [`set_db_pool`] / [`set_queue_depth`];
//! - events are recorded where they happen: [`record_db_query`], [`record_auth_attempt`],
//!   [`record_auth_lockout`], [`record_refresh_token_reuse`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use samokoder_core::runner::EGRESS_METRIC;

use super::process;
use crate::error::BoxError;
use crate::rate_limit::RouteClass;

/// Requests answered, by `method`, `route` (template) and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// Time to answer, by `method`, `route` and `status`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
/// Requests being handled now.
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
/// Login attempts by `outcome`.
pub const AUTH_ATTEMPTS_TOTAL: &str = "auth_attempts_total";
/// Accounts locked after repeated failures.
pub const AUTH_LOCKOUTS_TOTAL: &str = "auth_lockouts_total";
/// Requests refused by a rate limit, by `route_class`.
pub const RATE_LIMITED_TOTAL: &str = "rate_limited_total";
/// Refresh tokens presented again after rotation (a sign of theft).
pub const REFRESH_TOKEN_REUSE_TOTAL: &str = "refresh_token_reuse_total";
/// Failed calls to the rate limiter's Redis.
pub const RATE_LIMIT_BACKEND_ERRORS_TOTAL: &str = "rate_limit_backend_errors_total";
/// Rate-limit decisions made in memory because Redis was unavailable.
pub const RATE_LIMIT_FALLBACK_TOTAL: &str = "rate_limit_fallback_total";
/// Database connections in the pool, by `pool`.
pub const DB_POOL_SIZE: &str = "db_pool_connections";
/// Database connections in use, by `pool`.
pub const DB_POOL_IN_USE: &str = "db_pool_connections_in_use";
/// Database query time, by `operation`.
pub const DB_QUERY_DURATION_SECONDS: &str = "db_query_duration_seconds";
/// Jobs waiting in a queue, by `queue`.
pub const JOB_QUEUE_DEPTH: &str = "job_queue_depth";
/// Scrape probes that failed or timed out, by `probe`.
pub const SCRAPE_PROBE_ERRORS_TOTAL: &str = "scrape_probe_errors_total";
/// Generation runs started (created through the API).
pub const RUNS_STARTED_TOTAL: &str = "runs_started_total";
/// Worker turns on runs that ended, by `outcome` (`completed`, `failed`, `cancelled`,
/// `budget_exhausted`, `waiting_for_human`, `step_cap_reached`, `error`).
pub const RUNS_FINISHED_TOTAL: &str = "runs_finished_total";
/// Runs this process's workers are driving now.
pub const RUNS_ACTIVE: &str = "runs_active";
/// LLM tokens used by runs, by `provider` and `kind` (`prompt`, `completion`).
pub const LLM_TOKENS_TOTAL: &str = "llm_tokens_total";
/// LLM cost of runs in micro-dollars, by `provider`.
pub const LLM_COST_MICROS_TOTAL: &str = "llm_cost_micros_total";
/// Clients following run events now, by `transport` (`sse`, `websocket`).
pub const EVENT_SUBSCRIBERS: &str = "event_subscribers";

/// How a worker's turn on a run ended, as [`RUNS_FINISHED_TOTAL`] labels it.
pub const RUN_OUTCOMES: [&str; 7] = [
    "completed",
    "failed",
    "cancelled",
    "budget_exhausted",
    "waiting_for_human",
    "step_cap_reached",
    "error",
];

/// The transports of run events, as [`EVENT_SUBSCRIBERS`] labels them.
pub const EVENT_TRANSPORTS: [&str; 2] = ["sse", "websocket"];

/// Upper bounds of the request-duration buckets, in seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the query-duration buckets, in seconds.
const DB_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// How long one scrape probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The outcome of one login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The credentials were right.
    Success,
    /// Unknown account or wrong password.
    InvalidCredentials,
    /// Refused because the account is locked.
    LockedOut,
}

impl AuthOutcome {
    const ALL: [AuthOutcome; 3] = [Self::Success, Self::InvalidCredentials, Self::LockedOut];

    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::InvalidCredentials => "invalid_credentials",
            Self::LockedOut => "locked_out",
        }
    }
}

/// Counts a login attempt.
pub fn record_auth_attempt(outcome: AuthOutcome) {
    metrics::counter!(AUTH_ATTEMPTS_TOTAL, "outcome" => outcome.as_str()).increment(1);
}

/// Counts an account lockout.
pub fn record_auth_lockout() {
    metrics::counter!(AUTH_LOCKOUTS_TOTAL).increment(1);
}

/// Counts a reused refresh token.
pub fn record_refresh_token_reuse() {
    metrics::counter!(REFRESH_TOKEN_REUSE_TOTAL).increment(1);
}

/// Records one query's duration. `operation` must come from a small fixed set (a repository
/// method name such as `users.find_by_email`), never from data.
pub fn record_db_query(operation: &'static str, elapsed: Duration) {
    metrics::histogram!(DB_QUERY_DURATION_SECONDS, "operation" => operation)
        .record(elapsed.as_secs_f64());
}

/// Sets the pool gauges of `pool` (from a [`ScrapeProbe`]).
pub fn set_db_pool(pool: &'static str, size: u32, in_use: u32) {
    metrics::gauge!(DB_POOL_SIZE, "pool" => pool).set(f64::from(size));
    metrics::gauge!(DB_POOL_IN_USE, "pool" => pool).set(f64::from(in_use));
}

/// Sets the depth gauge of `queue` (from a [`ScrapeProbe`]).
pub fn set_queue_depth(queue: &'static str, depth: u64) {
    // Precision loss starts at 2^53 jobs.
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(JOB_QUEUE_DEPTH, "queue" => queue).set(depth as f64);
}

pub(crate) fn record_rate_limited(class: RouteClass) {
    metrics::counter!(RATE_LIMITED_TOTAL, "route_class" => class.as_str()).increment(1);
}

pub(crate) fn record_rate_limit_backend_error() {
    metrics::counter!(RATE_LIMIT_BACKEND_ERRORS_TOTAL, "backend" => "redis").increment(1);
}

pub(crate) fn record_rate_limit_fallback() {
    metrics::counter!(RATE_LIMIT_FALLBACK_TOTAL).increment(1);
}

/// Counts a run started through the API.
pub fn record_run_started() {
    metrics::counter!(RUNS_STARTED_TOTAL).increment(1);
}

/// Counts a worker's turn on a run that ended with `outcome` (one of [`RUN_OUTCOMES`]).
pub fn record_run_finished(outcome: &'static str) {
    metrics::counter!(RUNS_FINISHED_TOTAL, "outcome" => outcome).increment(1);
}

/// Moves the gauge of runs being driven by `delta` (1 when a drive starts, -1 when it ends).
pub fn add_active_runs(delta: f64) {
    metrics::gauge!(RUNS_ACTIVE).increment(delta);
}

/// Counts one LLM request's usage. `provider` is a provider name of the deployment or of the
/// closed list users may bring keys for, so the label set stays small.
pub fn record_llm_usage(provider: &str, prompt_tokens: u64, completion_tokens: u64, cost: u64) {
    let provider = provider.to_owned();
    metrics::counter!(LLM_TOKENS_TOTAL, "provider" => provider.clone(), "kind" => "prompt")
        .increment(prompt_tokens);
    metrics::counter!(LLM_TOKENS_TOTAL, "provider" => provider.clone(), "kind" => "completion")
        .increment(completion_tokens);
    metrics::counter!(LLM_COST_MICROS_TOTAL, "provider" => provider).increment(cost);
}

/// Moves the gauge of event subscribers of `transport` (one of [`EVENT_TRANSPORTS`]).
pub fn add_event_subscribers(transport: &'static str, delta: f64) {
    metrics::gauge!(EVENT_SUBSCRIBERS, "transport" => transport).increment(delta);
}

/// Something that reports gauges when `/metrics` is scraped, e.g. the database pool
/// ([`set_db_pool`]) or the job queue ([`set_queue_depth`]). Runs with a 2 s time limit; a
/// failure is logged and counted, and the scrape goes on.
#[async_trait]
pub trait ScrapeProbe: Send + Sync + 'static {
    /// A short name for logs and the error counter, e.g. `db_pool`.
    fn name(&self) -> &'static str;

    /// Reads the current values and records them.
    async fn probe(&self) -> Result<(), BoxError>;
}

/// The process-wide Prometheus recorder: installed by the first caller, shared afterwards.
static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder (once per process),
/// describes every metric and registers the zero-valued series. Returns `None` when another
/// recorder was installed first (by an embedder); pass its handle to
/// [`crate::AppStateBuilder::prometheus_handle`] instead.
pub fn install_prometheus() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.to_owned()), HTTP_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(DB_QUERY_DURATION_SECONDS.to_owned()), DB_BUCKETS)
                });
            let handle = match builder.map(PrometheusBuilder::install_recorder) {
                Ok(Ok(handle)) => handle,
                Ok(Err(error)) | Err(error) => {
                    tracing::warn!(%error, "Prometheus recorder not installed; /metrics shows process metrics only");
                    return None;
                }
            };
            describe();
            Some(handle)
        })
        .clone()
}

/// HELP texts, units, and zero values for the closed label sets.
fn describe() {
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer HTTP requests, by method, route template and status."
    );
    describe_gauge!(HTTP_REQUESTS_IN_FLIGHT, "HTTP requests being handled.");
    describe_counter!(AUTH_ATTEMPTS_TOTAL, "Login attempts, by outcome.");
    describe_counter!(
        AUTH_LOCKOUTS_TOTAL,
        "Accounts locked after repeated failed logins."
    );
    describe_counter!(
        RATE_LIMITED_TOTAL,
        "Requests refused by a rate limit, by route class."
    );
    describe_counter!(
        REFRESH_TOKEN_REUSE_TOTAL,
        "Rotated refresh tokens presented again (possible theft)."
    );
    describe_counter!(
        RATE_LIMIT_BACKEND_ERRORS_TOTAL,
        "Failed calls to the rate limiter's shared backend."
    );
    describe_counter!(
        RATE_LIMIT_FALLBACK_TOTAL,
        "Rate-limit decisions made in memory because the shared backend was unavailable."
    );
    describe_gauge!(DB_POOL_SIZE, "Database connections in the pool.");
    describe_gauge!(DB_POOL_IN_USE, "Database connections in use.");
    describe_histogram!(
        DB_QUERY_DURATION_SECONDS,
        Unit::Seconds,
        "Database query time, by operation."
    );
    describe_gauge!(JOB_QUEUE_DEPTH, "Jobs waiting in a queue.");
    describe_counter!(
        SCRAPE_PROBE_ERRORS_TOTAL,
        "Metric probes that failed or timed out during a scrape, by probe."
    );

    describe_counter!(RUNS_STARTED_TOTAL, "Generation runs started.");
    describe_counter!(
        RUNS_FINISHED_TOTAL,
        "Worker turns on generation runs that ended, by outcome."
    );
    describe_gauge!(RUNS_ACTIVE, "Generation runs this process is driving.");
    describe_counter!(
        LLM_TOKENS_TOTAL,
        "LLM tokens used by runs, by provider and kind."
    );
    describe_counter!(
        LLM_COST_MICROS_TOTAL,
        "LLM cost of runs in micro-dollars, by provider."
    );
    describe_gauge!(
        EVENT_SUBSCRIBERS,
        "Clients following run events, by transport."
    );
    describe_counter!(
        EGRESS_METRIC,
        "Connections jailed installs asked the sandbox's egress proxy for, by outcome (allowed, refused) and the refusal's reason."
    );

    metrics::gauge!(HTTP_REQUESTS_IN_FLIGHT).increment(0.0);
    metrics::counter!(RUNS_STARTED_TOTAL).increment(0);
    for outcome in RUN_OUTCOMES {
        metrics::counter!(RUNS_FINISHED_TOTAL, "outcome" => outcome).increment(0);
    }
    metrics::gauge!(RUNS_ACTIVE).increment(0.0);
    for transport in EVENT_TRANSPORTS {
        metrics::gauge!(EVENT_SUBSCRIBERS, "transport" => transport).increment(0.0);
    }
    for outcome in AuthOutcome::ALL {
        metrics::counter!(AUTH_ATTEMPTS_TOTAL, "outcome" => outcome.as_str()).increment(0);
    }
    metrics::counter!(AUTH_LOCKOUTS_TOTAL).increment(0);
    for class in RouteClass::LIMITED {
        metrics::counter!(RATE_LIMITED_TOTAL, "route_class" => class.as_str()).increment(0);
    }
    metrics::counter!(REFRESH_TOKEN_REUSE_TOTAL).increment(0);
    metrics::counter!(RATE_LIMIT_BACKEND_ERRORS_TOTAL, "backend" => "redis").increment(0);
    metrics::counter!(RATE_LIMIT_FALLBACK_TOTAL).increment(0);
    metrics::counter!(EGRESS_METRIC, "outcome" => "allowed", "reason" => "").increment(0);
}

/// Whether an upkeep task is running (see [`spawn_upkeep`]).
static UPKEEP_RUNNING: AtomicBool = AtomicBool::new(false);

/// Clears [`UPKEEP_RUNNING`] when the upkeep task ends, including when its runtime shuts down
/// and drops it, so the next state built (in another runtime) starts a new one.
struct UpkeepGuard;

impl Drop for UpkeepGuard {
    fn drop(&mut self) {
        UPKEEP_RUNNING.store(false, Ordering::SeqCst);
    }
}

/// Drains histogram samples into their buckets every few seconds, which bounds the recorder's
/// memory between scrapes (the exporter leaves this to its user). One task per process.
pub(crate) fn spawn_upkeep(handle: &PrometheusHandle) {
    if UPKEEP_RUNNING.swap(true, Ordering::SeqCst) {
        return;
    }
    let handle = handle.clone();
    tokio::spawn(async move {
        let _guard = UpkeepGuard;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

/// The recorder handle and the scrape probes: what `/metrics` renders.
#[derive(Clone)]
pub struct Metrics {
    handle: Option<PrometheusHandle>,
    probes: Arc<Vec<Arc<dyn ScrapeProbe>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("recorder", &self.handle.is_some())
            .field(
                "probes",
                &self.probes.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Metrics {
    pub(crate) fn new(handle: Option<PrometheusHandle>, probes: Vec<Arc<dyn ScrapeProbe>>) -> Self {
        Self {
            handle,
            probes: Arc::new(probes),
        }
    }

    /// The Prometheus text exposition (format 0.0.4): probes run first, then the recorder's
    /// metrics, then the process metrics read from `/proc/self`.
    pub async fn render(&self) -> String {
        futures::future::join_all(self.probes.iter().map(|probe| run_probe(probe.as_ref()))).await;
        let mut text = match &self.handle {
            Some(handle) => {
                handle.run_upkeep();
                handle.render()
            }
            None => String::new(),
        };
        // Reading /proc is file I/O: keep it off the async workers.
        match tokio::task::spawn_blocking(process::render).await {
            Ok(process) => text.push_str(&process),
            Err(error) => tracing::warn!(%error, "reading process metrics failed"),
        }
        text
    }
}

async fn run_probe(probe: &dyn ScrapeProbe) {
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, probe.probe()).await;
    let failure = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    metrics::counter!(SCRAPE_PROBE_ERRORS_TOTAL, "probe" => probe.name()).increment(1);
    tracing::warn!(probe = probe.name(), error = %failure, "metrics probe failed");
}
