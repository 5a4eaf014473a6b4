//! The engine behind the API: runs, their workers, events, previews.
//!
//! # How a run flows
//!
//! 1. `POST /v1/projects/{id}/runs` checks the request, the plan's budget maximum and that the
//!    run's providers have keys, then [`RunRepo::start`](samokoder_store::RunRepo::start)
//!    writes the run row and its queue job in one transaction (refused while the project has
//!    an active run).
//! 2. A [`worker::Worker`] (in the server process, or a `samokoder-server worker` process on
//!    the same database) claims the job with a lease, renews it while it drives the run with
//!    [`Engine::drive_with`], and settles the job by the outcome: a question or the end of the
//!    run completes it, a passing provider or database failure retries it later, a dying
//!    worker lets the lease lapse so another one resumes the run from its last checkpoint.
//! 3. The engine stores every event with its sequence number before broadcasting it;
//!    [`feed`] follows a run from any sequence number without gaps or repeats, for SSE and the
//!    WebSocket.
//! 4. Answering a question or resuming a stopped run queues it again
//!    ([`RunRepo::requeue`](samokoder_store::RunRepo::requeue)); cancelling marks it and fires
//!    the token of the worker that drives it ([`cancel::CancelRegistry`] in this process, the
//!    status it reads at each heartbeat elsewhere).
//!
//! The provider keys users brought (BYOK) are opened only by the route source
//! ([`byok::ByokRoutes`]) when a worker starts driving a run.

pub mod budget;
pub mod byok;
pub mod cancel;
pub mod control;
pub mod feed;
mod metered;
pub mod preview;
pub mod preview_origin;
pub mod sandbox;
pub mod socket;
pub mod ticket;
pub mod views;
pub mod worker;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use samokoder_auth::secret_box::SecretBox;
use samokoder_core::engine::{
    BuiltinTemplates, CancellationToken, Engine, EngineConfig, EngineDeps,
};
use samokoder_core::llm::{LlmRegistry, RetryPolicy};
use samokoder_core::runner::Runner;
use samokoder_core::state::RunStore;
use samokoder_store::engine::StoreRunStore;
use samokoder_store::{NewJob, Store};
use serde_json::json;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use uuid::Uuid;

use crate::config::Config;

/// The queue job kind that drives a run; its payload is `{"run_id": ...}`.
pub const RUN_JOB_KIND: &str = "generation_run";

/// The job that drives run `run_id`. Its dedupe key makes queueing a run twice harmless: while
/// one job of the run is unfinished, enqueueing another returns that one.
///
/// The job gets one claim more than the `max_attempts` drives: a worker making that last,
/// settling claim fails the run instead of driving it. Without it, a run whose workers all died
/// would stay `running` forever, because the queue retires such a job without telling anyone.
pub fn run_job(run_id: Uuid, max_attempts: u32) -> NewJob {
    NewJob {
        dedupe_key: Some(format!("run:{run_id}")),
        max_attempts: i32::try_from(max_attempts).unwrap_or(i32::MAX - 1).max(1) + 1,
        ..NewJob::new(RUN_JOB_KIND, json!({ "run_id": run_id }))
    }
}

/// The engine and what runs around it in one server process: the runner, the cancellation
/// tokens of the runs this process drives, the previews, and the shutdown signal streams
/// watch. Cheap to clone.
#[derive(Clone)]
pub struct Generation {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine>,
    runner: Arc<Runner>,
    run_store: Arc<dyn RunStore>,
    cancels: cancel::CancelRegistry,
    previews: preview::PreviewManager,
    shutdown: CancellationToken,
    /// Wakes idle in-process workers when a run is queued.
    work: Notify,
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generation")
            .field("engine", &self.inner.engine)
            .finish_non_exhaustive()
    }
}

impl Generation {
    /// Builds the engine over `store` with the deployment's `registry` (users' keys are opened
    /// with `secret_box` per run), and the sandboxed runner the configuration asks for.
    pub fn new(
        config: &Config,
        store: &Store,
        registry: Arc<LlmRegistry>,
        secret_box: Arc<SecretBox>,
        runner: Arc<Runner>,
    ) -> Self {
        let run_store: Arc<dyn RunStore> =
            Arc::new(metered::MeteredRunStore::new(StoreRunStore::new(store)));
        let prices = registry.prices();
        let routes = byok::ByokRoutes::new(store.clone(), registry, secret_box);
        let engine = Engine::new(
            EngineDeps {
                store: run_store.clone(),
                routes: Arc::new(routes),
                prices,
                runner: runner.clone(),
                templates: Arc::new(BuiltinTemplates),
                workdir: config.run_workdir(),
            },
            EngineConfig {
                max_steps: config.runs.max_steps,
                retry_policy: RetryPolicy {
                    max_transport_retries: config.runs.llm_retries,
                    base_delay: Duration::from_millis(config.runs.llm_retry_delay_ms),
                    ..RetryPolicy::default()
                },
                npm_scripts_allowed: config.runner.npm_scripts_allowed.clone(),
                ..EngineConfig::default()
            },
        );
        let previews = preview::PreviewManager::new(config.data_dir.join("previews"));
        Self {
            inner: Arc::new(Inner {
                engine: Arc::new(engine),
                runner,
                run_store,
                cancels: cancel::CancelRegistry::default(),
                previews,
                shutdown: CancellationToken::new(),
                work: Notify::new(),
            }),
        }
    }

    /// The engine (drive, rollback, materialise, the live event feed).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// The sandboxed runner (previews).
    pub fn runner(&self) -> &Arc<Runner> {
        &self.inner.runner
    }

    /// The engine's persistence port.
    pub fn run_store(&self) -> &Arc<dyn RunStore> {
        &self.inner.run_store
    }

    /// The cancellation tokens of the runs this process drives.
    pub fn cancels(&self) -> &cancel::CancelRegistry {
        &self.inner.cancels
    }

    /// The previews this process runs.
    pub fn previews(&self) -> &preview::PreviewManager {
        &self.inner.previews
    }

    /// Fires when the server shuts down: event streams end, workers stop claiming.
    pub fn shutdown_signal(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Tells this process's idle workers that a run was queued, so they claim it now rather
    /// than at their next poll (workers elsewhere find it at theirs).
    pub fn announce_work(&self) {
        self.inner.work.notify_waiters();
    }

    /// Completes at the next [`Self::announce_work`].
    pub fn work_announced(&self) -> Notified<'_> {
        self.inner.work.notified()
    }
}
