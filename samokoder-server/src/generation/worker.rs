//! Workers: claim a run's job, drive the run, settle the job by how the drive ended.
//!
//! A worker holds its job under a lease and renews it every third of the lease while the
//! drive goes on; at each renewal it also reads the run's status, so a cancel made through
//! another server process reaches it. Everything a worker does to its job happens inside the
//! worker's own future: dropping (or aborting) that future stops the heartbeats with the drive,
//! the lease lapses, and another worker claims the job and resumes the run from its last
//! checkpoint.
//!
//! | the drive ended | the job | the run |
//! |---|---|---|
//! | with an outcome (done, failed, cancelled, budget, a question) | completed | as the engine left it |
//! | on a question already answered meanwhile | completed | queued again |
//! | provider outage, database down | retried after a backoff | stays `running` |
//! | retries used up, or its workers kept dying | completed by the settling claim | `failed` |
//! | unusable routes (a key went missing) | completed | `failed` |
//! | the run was cancelled or deleted first | completed | unchanged |
//! | its history moved under it (a rollback) | completed | `failed` |
//! | the server shuts down | released for another worker (no attempt spent) | stays `running` |

use std::time::{Duration, Instant};

use samokoder_core::engine::{CancellationToken, DriveOptions, EngineError};
use samokoder_core::state::{EngineEvent, RunOutcome, RunStoreError};
use samokoder_store::{Backoff, FailOutcome, Job, RunStatus, StoreError};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{RUN_JOB_KIND, run_job, views};
use crate::observability::metrics;
use crate::state::AppState;

/// The run statuses a failing worker may move to `failed`.
const NOT_FINISHED: [RunStatus; 4] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::WaitingForHuman,
    RunStatus::BudgetExhausted,
];

/// One worker: a claim loop over the store's queue.
pub struct Worker {
    state: AppState,
    id: String,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("id", &self.id).finish()
    }
}

/// Counts a drive in the `runs_active` gauge while it exists.
struct ActiveRun;

impl ActiveRun {
    fn new() -> Self {
        metrics::add_active_runs(1.0);
        Self
    }
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        metrics::add_active_runs(-1.0);
    }
}

/// How a drive ended, for [`Worker::settle`].
enum Ending {
    /// The drive returned.
    Drove(Result<RunOutcome, EngineError>),
    /// The worker is stopping: the drive was dropped.
    Stopped,
    /// Another worker holds the job now: the drive was dropped.
    LeaseLost,
}

impl Worker {
    /// A worker named `name` (unique per process; the id adds the host, the process and a
    /// random part, so ids are unique across machines).
    pub fn new(state: AppState, name: &str) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
        let random = Uuid::new_v4().simple().to_string();
        let id = format!("{host}-{}-{name}-{}", std::process::id(), &random[..8]);
        Self { state, id }
    }

    /// The id it claims jobs under.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims and drives runs until `stop` fires. A drive in progress when it fires is dropped
    /// and its job released at once, so another worker resumes the run from its last
    /// checkpoint.
    pub async fn run(self, stop: CancellationToken) {
        let poll = self.state.config().workers.poll_interval();
        let lease = self.state.config().workers.lease();
        tracing::info!(worker = %self.id, "worker started");
        while !stop.is_cancelled() {
            let claimed = self
                .state
                .store()
                .jobs
                .claim(&self.id, &[RUN_JOB_KIND], lease)
                .await;
            let wait = match claimed {
                Ok(Some(job)) => {
                    self.handle(job, &stop).await;
                    continue;
                }
                Ok(None) => poll,
                Err(error) => {
                    tracing::warn!(worker = %self.id, %error, "could not claim a job");
                    poll * 4
                }
            };
            let work = self.state.generation().work_announced();
            tokio::select! {
                () = stop.cancelled() => {}
                () = work => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!(worker = %self.id, "worker stopped");
    }

    async fn handle(&self, job: Job, stop: &CancellationToken) {
        let Some(run_id) = job
            .payload
            .get("run_id")
            .and_then(|id| id.as_str())
            .and_then(|id| id.parse::<Uuid>().ok())
        else {
            tracing::error!(job = %job.id, "a run job without a run id; dropping it");
            self.complete(&job).await;
            return;
        };
        if job.attempts >= job.max_attempts {
            // The settling claim (see `run_job`): every attempt before it ended without the
            // run finishing, often because the worker died, which nothing else would notice.
            let reason = format!(
                "gave up after {} attempts: {}",
                job.attempts - 1,
                job.last_error
                    .as_deref()
                    .unwrap_or("its workers stopped before finishing (crashed or killed)")
            );
            metrics::record_run_finished("failed");
            self.fail_run(run_id, &reason).await;
            ensure_final_event(&self.state, run_id).await;
            self.complete(&job).await;
            return;
        }
        let store = self.state.store();
        let run = match store.runs.get(run_id).await {
            Ok(run) => run,
            Err(StoreError::NotFound { .. }) => {
                // The project (and its runs) was deleted after the job was queued.
                self.complete(&job).await;
                return;
            }
            Err(error) => {
                self.retry(&job, run_id, &error.to_string()).await;
                return;
            }
        };
        if views::status(run.status).is_final() {
            ensure_final_event(&self.state, run_id).await;
            self.complete(&job).await;
            return;
        }
        let Ok(budget) = serde_json::from_value(run.budget.clone()) else {
            // Never driven without its limits.
            self.fail_run(run_id, "the run's budget limits cannot be read")
                .await;
            self.complete(&job).await;
            return;
        };
        tracing::info!(worker = %self.id, run = %run_id, attempt = job.attempts, "driving run");
        let ending = self.drive(&job, run_id, budget, stop).await;
        self.settle(&job, run_id, ending).await;
    }

    /// Drives the run while renewing the lease and watching for a cancel.
    async fn drive(
        &self,
        job: &Job,
        run_id: Uuid,
        budget: samokoder_core::llm::BudgetLimits,
        stop: &CancellationToken,
    ) -> Ending {
        let generation = self.state.generation();
        let registration = generation.cancels().register(run_id);
        let token = registration.token().clone();
        let _active = ActiveRun::new();
        let engine = generation.engine().clone();
        let options = DriveOptions {
            // The run row holds the limits; a resume may have raised them since the last
            // checkpoint was written.
            budget: Some(budget),
        };
        let drive = engine.drive_with(run_id, token.clone(), options);
        tokio::pin!(drive);
        let lease = self.state.config().workers.lease();
        let beat = self.state.config().workers.heartbeat();
        let mut heartbeat = tokio::time::interval(beat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                result = &mut drive => return Ending::Drove(result),
                () = stop.cancelled() => return Ending::Stopped,
                _ = heartbeat.tick() => {
                    match self.state.store().jobs.heartbeat(job.id, &self.id, lease).await {
                        Ok(_) => renewed = Instant::now(),
                        Err(StoreError::LeaseLost { .. }) => return Ending::LeaseLost,
                        // The database may be back by the next beat while the lease has time
                        // left; once the next beat would come too late, another worker may
                        // claim the run, and two must never drive it at once.
                        Err(error) if renewed.elapsed() + beat < lease => {
                            tracing::warn!(worker = %self.id, run = %run_id, %error, "could not renew the lease");
                        }
                        Err(error) => {
                            tracing::warn!(worker = %self.id, run = %run_id, %error, "could not renew the lease in time; stopping the drive");
                            return Ending::LeaseLost;
                        }
                    }
                    if let Ok(run) = self.state.store().runs.get(run_id).await
                        && run.status == RunStatus::Cancelled
                    {
                        token.cancel();
                    }
                }
            }
        }
    }

    async fn settle(&self, job: &Job, run_id: Uuid, ending: Ending) {
        match ending {
            Ending::Drove(Ok(outcome)) => {
                metrics::record_run_finished(outcome.as_str());
                tracing::info!(worker = %self.id, run = %run_id, outcome = outcome.as_str(), "run stopped");
                self.complete(job).await;
                if let RunOutcome::WaitingForHuman { question_id } = outcome {
                    self.requeue_if_answered(run_id, question_id).await;
                }
            }
            Ending::Drove(Err(error)) => self.settle_error(job, run_id, error).await,
            Ending::Stopped => {
                tracing::info!(worker = %self.id, run = %run_id, "stopping; the run resumes elsewhere");
                // Released without spending an attempt: stopping (a deploy) is not the run's
                // failure, and rolling deploys must not use up its retries.
                match self.state.store().jobs.release(job.id, &self.id).await {
                    Ok(()) | Err(StoreError::LeaseLost { .. }) => {}
                    Err(error) => {
                        tracing::warn!(run = %run_id, %error, "could not release the job; its lease will lapse");
                    }
                }
            }
            Ending::LeaseLost => {
                tracing::warn!(worker = %self.id, run = %run_id, "lost the lease; another worker drives the run now");
            }
        }
    }

    async fn settle_error(&self, job: &Job, run_id: Uuid, error: EngineError) {
        match &error {
            // The run ended (or was cancelled) before this drive could start, or was deleted.
            EngineError::NotDrivable { .. }
            | EngineError::Store(RunStoreError::NotFound { .. }) => {
                ensure_final_event(&self.state, run_id).await;
                self.complete(job).await;
            }
            // A status or checkpoint swap lost: cancelled as the drive started (then `fail_run`
            // finds it finished and leaves it), or the project's history moved under the run
            // (a rollback), which it cannot build on: it ends rather than stay `running` with
            // no job behind it.
            EngineError::Store(RunStoreError::Conflict(detail)) => {
                let reason =
                    format!("the project's history changed while the run worked: {detail}");
                self.fail_run(run_id, &reason).await;
                ensure_final_event(&self.state, run_id).await;
                self.complete(job).await;
            }
            EngineError::Llm(llm)
                if !llm.is_retryable()
                    && !matches!(llm, samokoder_core::llm::LlmError::DeadlineExceeded { .. }) =>
            {
                // The routes cannot be resolved (a key was removed, a model choice is no longer
                // configured): retrying cannot help.
                metrics::record_run_finished("failed");
                self.fail_run(run_id, &error.to_string()).await;
                self.complete(job).await;
            }
            EngineError::State { .. } => {
                metrics::record_run_finished("failed");
                self.fail_run(run_id, &error.to_string()).await;
                self.complete(job).await;
            }
            _ => {
                metrics::record_run_finished("error");
                self.retry(job, run_id, &error.to_string()).await;
            }
        }
    }

    /// Gives the job back for a later attempt; fails the run when none is left.
    async fn retry(&self, job: &Job, run_id: Uuid, error: &str) {
        tracing::warn!(worker = %self.id, run = %run_id, attempt = job.attempts, error, "run attempt failed; retrying later");
        let delay = Duration::from_secs(self.state.config().workers.retry_delay_secs.max(1));
        let backoff = Backoff {
            base: delay,
            max: delay * 32,
        };
        match self
            .state
            .store()
            .jobs
            .fail(job.id, &self.id, error, backoff)
            .await
        {
            Ok(FailOutcome::Retrying { .. }) | Err(StoreError::LeaseLost { .. }) => {}
            Ok(FailOutcome::Dead) => {
                let reason = format!("gave up after {} attempts: {error}", job.attempts);
                self.fail_run(run_id, &reason).await;
            }
            Err(store_error) => {
                tracing::warn!(run = %run_id, error = %store_error, "could not record the failed attempt; the lease will lapse");
            }
        }
    }

    async fn complete(&self, job: &Job) {
        match self.state.store().jobs.complete(job.id, &self.id).await {
            Ok(()) => {}
            // Another worker holds it now; it settles the job.
            Err(StoreError::LeaseLost { .. }) => {}
            Err(error) => {
                tracing::warn!(job = %job.id, %error, "could not complete the job; its lease will lapse");
            }
        }
    }

    /// An answer stored while this worker still held the job could not queue the run again
    /// (the job it would have queued was this one): queue it now. Nothing else would, so a
    /// database hiccup is retried rather than leaving the answered run without a job.
    async fn requeue_if_answered(&self, run_id: Uuid, question_id: Uuid) {
        const TRIES: u32 = 5;
        let pause = Duration::from_millis(500);
        for attempt in 1..=TRIES {
            match self.try_requeue_if_answered(run_id, question_id).await {
                Ok(()) => return,
                Err(error) if attempt < TRIES => {
                    tracing::warn!(run = %run_id, %error, attempt, "could not queue the answered run again; retrying");
                    tokio::time::sleep(pause * attempt).await;
                }
                Err(error) => {
                    tracing::error!(run = %run_id, %error, "could not queue the answered run again; sending the answer again queues it");
                }
            }
        }
    }

    async fn try_requeue_if_answered(
        &self,
        run_id: Uuid,
        question_id: Uuid,
    ) -> Result<(), StoreError> {
        let store = self.state.store();
        if store.questions.get(question_id).await?.answer.is_none() {
            return Ok(());
        }
        let job = run_job(run_id, self.state.config().workers.max_attempts);
        match store
            .runs
            .requeue(
                run_id,
                &[RunStatus::WaitingForHuman, RunStatus::Queued],
                None,
                &job,
            )
            .await
        {
            Ok(_) => {
                self.state.generation().announce_work();
                Ok(())
            }
            // Cancelled meanwhile, or already driven further: nothing to do.
            Err(StoreError::Conflict { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Marks the run failed (if it has not finished) and publishes its final event.
    async fn fail_run(&self, run_id: Uuid, reason: &str) {
        let store = self.state.store();
        match store
            .runs
            .transition(run_id, &NOT_FINISHED, RunStatus::Failed, Some(reason))
            .await
        {
            Ok(_) => {
                let outcome = RunOutcome::Failed {
                    reason: reason.to_owned(),
                };
                append_final_event(&self.state, run_id, outcome).await;
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
            Err(error) => tracing::warn!(run = %run_id, %error, "could not mark the run failed"),
        }
    }
}

/// A run that finished without a worker driving it (cancelled while queued or stopped, or
/// by a worker that died) gets the final event its followers wait for.
pub(crate) async fn ensure_final_event(state: &AppState, run_id: Uuid) {
    let store = state.store();
    let Ok(run) = store.runs.get(run_id).await else {
        return;
    };
    let outcome = match run.status {
        RunStatus::Cancelled => RunOutcome::Cancelled,
        RunStatus::Failed => RunOutcome::Failed {
            reason: run.error.clone().unwrap_or_else(|| "failed".to_owned()),
        },
        RunStatus::Completed => RunOutcome::Completed {
            checkpoint_id: Uuid::nil(),
        },
        _ => return,
    };
    let last = match store.events.last_seq(run_id).await {
        Ok(last) => last,
        Err(error) => {
            tracing::warn!(run = %run_id, %error, "could not read the run's last event");
            return;
        }
    };
    let has_final = match store.events.after(run_id, last - 1, 1).await {
        Ok(events) => events
            .first()
            .is_some_and(|event| event.kind == samokoder_core::api::events::RUN_FINISHED),
        Err(_) => return,
    };
    if !has_final {
        append_final_event(state, run_id, outcome).await;
    }
}

/// Stores a `run_finished` event for a run no drive is publishing to.
pub(crate) async fn append_final_event(state: &AppState, run_id: Uuid, outcome: RunOutcome) {
    let event = EngineEvent::RunFinished { outcome };
    let payload = match serde_json::to_value(&event) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::error!(run = %run_id, %error, "could not serialise a final event");
            return;
        }
    };
    if let Err(error) = state
        .store()
        .events
        .append(run_id, event.kind(), &payload)
        .await
    {
        tracing::warn!(run = %run_id, %error, "could not store the run's final event");
    }
}

/// In-process workers, started with the server.
pub struct WorkerPool {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("workers", &self.tasks.len())
            .finish()
    }
}

impl WorkerPool {
    /// Starts `concurrency` workers on `state` (none for 0).
    pub fn start(state: &AppState, concurrency: usize) -> Self {
        let stop = CancellationToken::new();
        let tasks = (1..=concurrency)
            .map(|n| {
                let worker = Worker::new(state.clone(), &format!("w{n}"));
                tokio::spawn(worker.run(stop.clone()))
            })
            .collect();
        Self { stop, tasks }
    }

    /// How many workers run.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the pool has no workers.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Stops claiming, releases the runs being driven (another worker resumes them from
    /// their last checkpoint) and waits for the workers to finish, at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.cancel();
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("workers did not stop within the grace period");
        }
    }
}
