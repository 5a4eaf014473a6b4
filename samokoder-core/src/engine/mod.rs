//! The generation engine: an orchestrator over the typed run state that drives the agents one
//! step at a time, each step stored as a checkpoint.
//!
//! # Driving a run
//!
//! A worker calls [`Engine::drive`] with a run id and a cancellation token. The engine loads the
//! run's last checkpoint, carries on step by step, and returns a [`RunOutcome`] at the next
//! stopping point: the run completed or failed, a question waits for a person, the budget or the
//! step cap was reached, or the token fired. The run's status in the store follows the outcome.
//!
//! - **Resume**: drive again. Whatever happened to the last process (killed mid-request,
//!   mid-command), the run continues from its last checkpoint; the unfinished step's completed
//!   LLM requests are answered from the request log.
//! - **Answer**: store the answer ([`Engine::answer`], or the store's own question API), then
//!   drive again. In [`Autonomy::Auto`] questions are answered with their defaults as they come.
//! - **Cancel**: fire the token; the run stops between steps (or within an LLM stream, dropping
//!   the unfinished step) and is marked cancelled. To stop a worker for a restart instead,
//!   drop the `drive` future: the run stays `running` and resumes on the next drive.
//! - **Budget**: when a limit is reached the run ends `budget_exhausted` between steps; drive it
//!   with [`DriveOptions::budget`] raised to continue.
//! - **Events**: [`Engine::subscribe`] gives the live feed; every event is stored first with
//!   its sequence number, so a subscriber can read the store from any point and then follow.
//!
//! ```no_run
//! # async fn demo(deps: samokoder_core::engine::EngineDeps, run_id: uuid::Uuid) -> Result<(), samokoder_core::engine::EngineError> {
//! use samokoder_core::engine::{Engine, EngineConfig};
//! use samokoder_core::state::RunOutcome;
//! use tokio_util::sync::CancellationToken;
//!
//! let engine = Engine::new(deps, EngineConfig::default());
//! let mut events = engine.subscribe();
//! tokio::spawn(async move {
//!     while let Ok(e) = events.recv().await {
//!         println!("#{} {}", e.seq, e.event.kind());
//!     }
//! });
//! match engine.drive(run_id, CancellationToken::new()).await? {
//!     RunOutcome::WaitingForHuman { question_id } => {
//!         engine.answer(question_id, "PostgreSQL").await?;
//!         engine.drive(run_id, CancellationToken::new()).await?;
//!     }
//!     outcome => println!("run ended: {}", outcome.as_str()),
//! }
//! # Ok(()) }
//! ```

mod adapters;
pub(crate) mod events;
pub(crate) mod files;
mod guards;
mod installs;
mod ports;
mod replay;
mod steps;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::agents::AgentError;
use crate::llm::{
    AgentRole, Budget, BudgetLimits, BudgetState, BudgetUsage, LlmError, LlmRegistry, LlmSession,
    PriceTable, RetryPolicy, RouteTable,
};
use crate::prompts::Prompts;
use crate::state::{
    Autonomy, Checkpoint, EngineEvent, FileChange, FileChangeKind, NewCheckpoint, Outbox, Phase,
    QuestionPurpose, QuestionSpec, RunInfo, RunOutcome, RunState, RunStatus, RunStore,
    RunStoreError,
};
use crate::workspace::{MaterializeOptions, WorkspaceError, materialize};

pub use adapters::BuiltinTemplates;
pub use events::{PublishedEvent, TEXT_FLUSH_BYTES, TEXT_FLUSH_INTERVAL};
pub use guards::failure_signature;
pub use installs::{Failed, InstallObserver, PrepareError, Quietly, prepare_dependencies};
pub use ports::{
    CommandDecision, CommandResult, CommandRunner, RunnerError, SandboxBlock, SandboxInfo,
    TemplateCatalog, TemplateInfo,
};
pub use replay::ReplayMode;
/// The token [`Engine::drive`] takes, re-exported so callers need not depend on `tokio-util`
/// themselves (and cannot pick a mismatched version).
pub use tokio_util::sync::CancellationToken;

use events::{EventBus, EventWriter};
use files::ProjectFiles;
use replay::{StepLog, replay_only_routes};

/// Errors that stop a `drive` call without an outcome: the run is left as it was at its last
/// checkpoint (status `running`), and driving it again later resumes it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed.
    #[error("run store: {0}")]
    Store(#[from] RunStoreError),
    /// The LLM layer failed in a way that may pass (provider down past every retry, deadline),
    /// or the run's routes could not be resolved.
    #[error("LLM: {0}")]
    Llm(#[from] LlmError),
    /// The working directory could not be prepared or read.
    #[error("workspace: {0}")]
    Workspace(#[from] WorkspaceError),
    /// The runner could not run a command at all.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// A checkpoint's state could not be read (written by an incompatible version).
    #[error("checkpoint {checkpoint}: {message}")]
    State {
        /// The checkpoint.
        checkpoint: Uuid,
        /// What is wrong.
        message: String,
    },
    /// The run cannot be driven in its status.
    #[error("run {run} is {status}: {message}")]
    NotDrivable {
        /// The run.
        run: Uuid,
        /// Its status.
        status: &'static str,
        /// Why not.
        message: String,
    },
    /// A blocking task panicked.
    #[error("internal: {0}")]
    Internal(String),
}

/// Resolves the LLM routes of a run: a fixed table, the deployment's registry, or the server's
/// own resolver with the user's keys (BYOK).
#[async_trait]
pub trait RouteSource: Send + Sync {
    /// The routes for `run`.
    async fn routes(&self, run: &RunInfo) -> Result<RouteTable, LlmError>;
}

#[async_trait]
impl RouteSource for RouteTable {
    async fn routes(&self, _run: &RunInfo) -> Result<RouteTable, LlmError> {
        Ok(self.clone())
    }
}

#[async_trait]
impl RouteSource for LlmRegistry {
    async fn routes(&self, _run: &RunInfo) -> Result<RouteTable, LlmError> {
        LlmRegistry::routes(self, None)
    }
}

/// What the engine is built from.
#[derive(Clone)]
pub struct EngineDeps {
    /// Where runs, checkpoints, events, questions and logs are kept.
    pub store: Arc<dyn RunStore>,
    /// The LLM routes of each run.
    pub routes: Arc<dyn RouteSource>,
    /// Prices for cost accounting and cost budgets.
    pub prices: Arc<PriceTable>,
    /// The sandboxed command runner.
    pub runner: Arc<dyn CommandRunner>,
    /// The starter templates.
    pub templates: Arc<dyn TemplateCatalog>,
    /// The directory under which each run gets its working directory (`<workdir>/<run id>`),
    /// where checkpoints are materialised for commands.
    pub workdir: PathBuf,
}

/// Limits and knobs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Steps a run may take before a person must allow more (interactive) or it ends (auto).
    pub max_steps: u64,
    /// How often the same normalised failure may happen before the loop detector trips.
    pub loop_threshold: u32,
    /// Fixes per task before the loop detector trips.
    pub max_fix_attempts: u32,
    /// Clarifying questions the spec writer may ask.
    pub max_clarifying_questions: usize,
    /// Tasks a plan may have.
    pub max_tasks: usize,
    /// Code writers working at once in one step.
    pub max_parallel_writers: usize,
    /// Answers a code writer may give for one file before the step fails.
    pub max_edit_attempts: u32,
    /// Bytes of file content a prompt may show.
    pub prompt_file_bytes: usize,
    /// Retries and timeouts of LLM requests.
    pub retry_policy: RetryPolicy,
    /// Live, or offline replay of a recorded run.
    pub replay: ReplayMode,
    /// npm packages whose lifecycle scripts the install phase runs (`npm rebuild` after an
    /// install with scripts off); none by default.
    pub npm_scripts_allowed: Vec<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_steps: 200,
            loop_threshold: 3,
            max_fix_attempts: 5,
            max_clarifying_questions: 3,
            max_tasks: 20,
            max_parallel_writers: 4,
            max_edit_attempts: 3,
            prompt_file_bytes: 48 * 1024,
            retry_policy: RetryPolicy::default(),
            replay: ReplayMode::Live,
            npm_scripts_allowed: Vec::new(),
        }
    }
}

/// Per-call options of [`Engine::drive_with`].
#[derive(Clone, Debug, Default)]
pub struct DriveOptions {
    /// New budget limits (usually raised, to continue a `budget_exhausted` run). They are kept
    /// in the checkpoints from then on.
    pub budget: Option<BudgetLimits>,
}

/// The generation engine. Cheap to share (`Arc`); one engine drives any number of runs.
pub struct Engine {
    deps: EngineDeps,
    config: EngineConfig,
    prompts: Prompts,
    live: broadcast::Sender<PublishedEvent>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("workdir", &self.deps.workdir)
            .finish_non_exhaustive()
    }
}

/// Everything one `drive` call works with.
pub(crate) struct Drive {
    pub(crate) run: RunInfo,
    pub(crate) state: RunState,
    pub(crate) head: Option<Checkpoint>,
    pub(crate) files: ProjectFiles,
    pub(crate) bus: EventBus,
    pub(crate) budget: Budget,
    pub(crate) routes: RouteTable,
    pub(crate) cancel: CancellationToken,
    pub(crate) sandbox: SandboxInfo,
    /// Usage already added to the run's totals.
    reported: BudgetUsage,
}

impl Drive {
    pub(crate) fn workdir(&self, root: &Path) -> PathBuf {
        root.join(self.run.id.to_string())
    }
}

/// A question a step wants asked, and how to continue after it.
pub(crate) struct Ask {
    pub(crate) spec: QuestionSpec,
    pub(crate) purpose: QuestionPurpose,
    pub(crate) resume: Phase,
}

/// What one step produced, applied as one checkpoint.
pub(crate) struct StepOutcome {
    pub(crate) label: String,
    pub(crate) state: RunState,
    pub(crate) writes: BTreeMap<String, Option<Vec<u8>>>,
    pub(crate) events: Vec<EngineEvent>,
    pub(crate) ask: Option<Ask>,
}

impl StepOutcome {
    pub(crate) fn new(label: impl Into<String>, state: RunState) -> Self {
        Self {
            label: label.into(),
            state,
            writes: BTreeMap::new(),
            events: Vec::new(),
            ask: None,
        }
    }
}

/// Why a step did not produce an outcome.
pub(crate) enum StepStop {
    /// The drive ends with this outcome; the step is dropped.
    Outcome(RunOutcome),
    /// The drive fails; the step is dropped.
    Error(EngineError),
}

impl From<EngineError> for StepStop {
    fn from(e: EngineError) -> Self {
        Self::Error(e)
    }
}

impl From<RunStoreError> for StepStop {
    fn from(e: RunStoreError) -> Self {
        Self::Error(e.into())
    }
}

impl From<AgentError> for StepStop {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Llm(LlmError::BudgetExhausted(exhausted)) => {
                Self::Outcome(RunOutcome::BudgetExhausted { exhausted })
            }
            AgentError::Llm(LlmError::Cancelled) => Self::Outcome(RunOutcome::Cancelled),
            // May pass: leave the run at its checkpoint for a later drive (the job queue's
            // retry), rather than failing it for a provider's bad hour.
            AgentError::Llm(
                e @ (LlmError::RateLimited { .. }
                | LlmError::Transient { .. }
                | LlmError::DeadlineExceeded { .. }),
            ) => Self::Error(EngineError::Llm(e)),
            other => Self::Outcome(RunOutcome::Failed {
                reason: other.to_string(),
            }),
        }
    }
}

/// Answers that mean "yes, go on" to the engine's own questions.
pub(crate) fn affirmative(answer: &str) -> bool {
    matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "run" | "yes" | "y" | "approve" | "approved" | "ok" | "continue" | "keep trying"
    )
}

impl Engine {
    /// An engine over `deps`.
    pub fn new(deps: EngineDeps, config: EngineConfig) -> Self {
        let (live, _) = broadcast::channel(1024);
        Self {
            deps,
            config,
            prompts: Prompts::new(),
            live,
        }
    }

    /// The live event feed of every run this engine drives (filter by `run_id`). Slow
    /// subscribers lag and should catch up from the store ([`RunStore::events_after`]).
    pub fn subscribe(&self) -> broadcast::Receiver<PublishedEvent> {
        self.live.subscribe()
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Stores an answer to a pending question. Drive the run again to continue it.
    pub async fn answer(&self, question_id: Uuid, answer: &str) -> Result<(), EngineError> {
        self.deps.store.answer(question_id, answer).await?;
        Ok(())
    }

    /// Drives the run until its next stopping point (see the module docs).
    pub async fn drive(
        &self,
        run_id: Uuid,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, EngineError> {
        self.drive_with(run_id, cancel, DriveOptions::default())
            .await
    }

    /// [`Self::drive`] with options.
    pub async fn drive_with(
        &self,
        run_id: Uuid,
        cancel: CancellationToken,
        options: DriveOptions,
    ) -> Result<RunOutcome, EngineError> {
        let store = &self.deps.store;
        let run = store.run(run_id).await?;
        match run.status {
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled => {
                return Err(EngineError::NotDrivable {
                    run: run_id,
                    status: run.status.as_str(),
                    message: "the run has ended".into(),
                });
            }
            _ => {}
        }
        store
            .transition(
                run_id,
                &[
                    RunStatus::Queued,
                    RunStatus::Running,
                    RunStatus::WaitingForHuman,
                    RunStatus::BudgetExhausted,
                ],
                RunStatus::Running,
                None,
            )
            .await?;
        let (mut drive, writer) = self.open(run, cancel, options).await?;
        let result = self.run_loop(&mut drive).await;
        self.close(drive, writer, &result).await;
        result
    }

    async fn open(
        &self,
        run: RunInfo,
        cancel: CancellationToken,
        options: DriveOptions,
    ) -> Result<(Drive, EventWriter), EngineError> {
        let store = &self.deps.store;
        let head = store.head(run.project_id).await?;
        let resumed = head.as_ref().and_then(|h| {
            (h.run_id == Some(run.id)).then(|| {
                serde_json::from_value::<RunState>(h.state.clone()).map_err(|e| {
                    EngineError::State {
                        checkpoint: h.id,
                        message: e.to_string(),
                    }
                })
            })
        });
        let mut state = match resumed {
            Some(state) => state?,
            None => RunState::new(
                run.id,
                run.description.clone(),
                BudgetState {
                    limits: run.budget,
                    used: BudgetUsage::default(),
                },
            ),
        };
        if let Some(limits) = options.budget {
            state.budget.limits = limits;
        }
        let files = ProjectFiles::load(store.as_ref(), head.as_ref().map(|h| h.id)).await?;
        let last_seq = store.last_event_seq(run.id).await?;
        let (bus, writer) = EventBus::start(store.clone(), run.id, self.live.clone(), last_seq);
        // A crash may have stopped the last checkpoint's events half-published.
        for event in state.outbox.unpublished(last_seq) {
            bus.emit(event.clone());
        }
        let routes = self.deps.routes.routes(&run).await?;
        let routes = match self.config.replay {
            ReplayMode::Live => routes,
            ReplayMode::Replay { .. } => replay_only_routes(&routes),
        };
        let sandbox = self.deps.runner.sandbox();
        bus.emit(EngineEvent::RunStarted {
            step: state.step,
            resumed: state.step > 0,
        });
        if !sandbox.confined {
            bus.emit(EngineEvent::SandboxUnconfined {
                reason: sandbox
                    .unconfined_reason
                    .clone()
                    .unwrap_or_else(|| "the runner reported no confinement".into()),
            });
        }
        let budget = Budget::restore(state.budget);
        let reported = state.budget.used;
        Ok((
            Drive {
                run,
                state,
                head,
                files,
                bus,
                budget,
                routes,
                cancel,
                sandbox,
                reported,
            },
            writer,
        ))
    }

    async fn close(
        &self,
        drive: Drive,
        writer: EventWriter,
        result: &Result<RunOutcome, EngineError>,
    ) {
        let store = &self.deps.store;
        let run_id = drive.run.id;
        if let Ok(outcome) = result {
            let (status, error) = match outcome {
                RunOutcome::Completed { .. } => (RunStatus::Completed, None),
                RunOutcome::Failed { reason } => (RunStatus::Failed, Some(reason.clone())),
                RunOutcome::Cancelled => (RunStatus::Cancelled, None),
                RunOutcome::BudgetExhausted { exhausted } => {
                    (RunStatus::BudgetExhausted, Some(exhausted.to_string()))
                }
                RunOutcome::WaitingForHuman { .. } => (RunStatus::WaitingForHuman, None),
                RunOutcome::StepCapReached { steps } => (
                    RunStatus::Failed,
                    Some(format!("step cap reached after {steps} steps")),
                ),
            };
            match store
                .transition(run_id, &[RunStatus::Running], status, error.as_deref())
                .await
            {
                Ok(_) => {}
                // Its owner cancelled it while it ran (that is how the token fired): the status
                // already says so.
                Err(RunStoreError::Conflict(_))
                    if *outcome == RunOutcome::Cancelled
                        && matches!(
                            store.run(run_id).await.map(|run| run.status),
                            Ok(RunStatus::Cancelled)
                        ) => {}
                Err(e) => {
                    tracing::warn!(%run_id, error = %e, "could not record the run's final status");
                }
            }
            drive.bus.emit(EngineEvent::RunFinished {
                outcome: outcome.clone(),
            });
        }
        if let Ok(
            RunOutcome::Completed { .. } | RunOutcome::Failed { .. } | RunOutcome::Cancelled,
        ) = result
        {
            // A finished run needs no working directory (dependency trees can be large); any
            // checkpoint can be materialised again with `Engine::materialize`.
            let dir = drive.workdir(&self.deps.workdir);
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(%run_id, error = %e, "could not remove the run's working directory");
            }
        }
        if let Err(e) = store.set_current_agent(run_id, None).await {
            tracing::warn!(%run_id, error = %e, "could not clear the current agent");
        }
        if let Err(e) = drive.bus.flush().await {
            tracing::warn!(%run_id, error = %e, "some run events were not stored");
        }
        // The writer ends once every sender is gone; the drive holds the last one.
        drop(drive);
        writer.finish().await;
    }

    async fn run_loop(&self, d: &mut Drive) -> Result<RunOutcome, EngineError> {
        loop {
            if d.cancel.is_cancelled() {
                return Ok(RunOutcome::Cancelled);
            }
            if let Some(exhausted) = d.budget.exhausted() {
                return Ok(RunOutcome::BudgetExhausted { exhausted });
            }
            steps::advance(&mut d.state);
            let outcome = match &d.state.phase {
                Phase::Done => {
                    let checkpoint_id = d.head.as_ref().map(|h| h.id).unwrap_or_default();
                    return Ok(RunOutcome::Completed { checkpoint_id });
                }
                Phase::Failed { reason } => {
                    return Ok(RunOutcome::Failed {
                        reason: reason.clone(),
                    });
                }
                Phase::WaitingForHuman {
                    question_id,
                    purpose,
                    resume,
                } => {
                    let question = self.deps.store.question(*question_id).await?;
                    let Some(answer) = question.answer else {
                        return Ok(RunOutcome::WaitingForHuman {
                            question_id: *question_id,
                        });
                    };
                    let mut state = d.state.clone();
                    state.phase = (**resume).clone();
                    steps::apply_answer(&mut state, purpose, &answer);
                    let mut outcome = StepOutcome::new("answer", state);
                    outcome.events.push(EngineEvent::QuestionAnswered {
                        question_id: *question_id,
                        answer,
                        by_default: false,
                    });
                    outcome
                }
                _ if d.state.step >= self.config.max_steps + d.state.guard.extra_steps => {
                    let steps = d.state.step;
                    let reason = format!("the run reached its cap of {steps} steps");
                    if d.run.autonomy == Autonomy::Auto {
                        d.bus.emit(EngineEvent::GuardTripped { reason });
                        return Ok(RunOutcome::StepCapReached { steps });
                    }
                    let mut outcome = StepOutcome::new("step cap", d.state.clone());
                    outcome.events.push(EngineEvent::GuardTripped {
                        reason: reason.clone(),
                    });
                    outcome.ask = Some(Ask {
                        spec: QuestionSpec {
                            text: format!(
                                "{reason}. Allow it {} more steps?",
                                self.config.max_steps
                            ),
                            buttons: vec!["continue".into(), "stop".into()],
                            default_answer: Some("stop".into()),
                        },
                        purpose: QuestionPurpose::StepCap,
                        resume: d.state.phase.clone(),
                    });
                    outcome
                }
                _ => match self.step(d).await {
                    Ok(outcome) => outcome,
                    Err(StepStop::Outcome(outcome)) => return Ok(outcome),
                    Err(StepStop::Error(error)) => return Err(error),
                },
            };
            self.commit(d, outcome).await?;
        }
    }

    /// An LLM session for one step: its requests are recorded and looked up under the step key.
    pub(crate) fn session(&self, d: &Drive, step_key: &str) -> LlmSession {
        let source_run = match self.config.replay {
            ReplayMode::Replay { from: Some(from) } => from,
            _ => d.run.id,
        };
        let log = Arc::new(StepLog {
            store: self.deps.store.clone(),
            run_id: d.run.id,
            source_run,
            step_key: step_key.to_owned(),
        });
        LlmSession::builder(d.routes.clone())
            .prices(self.deps.prices.clone())
            .policy(self.config.retry_policy)
            .budget(d.budget.clone())
            .recorder(log.clone())
            .replay(log)
            .events(Arc::new(events::LlmProgress(d.bus.clone())))
            .run_id(d.run.id)
            .cancel(d.cancel.clone())
            .build()
    }

    pub(crate) async fn agent_started(&self, d: &Drive, agent: AgentRole, label: &str) {
        if let Err(e) = self
            .deps
            .store
            .set_current_agent(d.run.id, Some(agent.as_str()))
            .await
        {
            tracing::warn!(run_id = %d.run.id, error = %e, "could not record the current agent");
        }
        d.bus.emit(EngineEvent::AgentStarted {
            agent,
            step: d.state.step + 1,
            label: label.to_owned(),
        });
    }

    /// Applies one step's outcome as the next checkpoint, then publishes its events.
    async fn commit(&self, d: &mut Drive, outcome: StepOutcome) -> Result<(), EngineError> {
        let store = &self.deps.store;
        let StepOutcome {
            label,
            mut state,
            writes,
            mut events,
            ask,
        } = outcome;
        if let Some(ask) = ask {
            let question = store.ask(d.run.id, &ask.spec).await?;
            events.push(EngineEvent::QuestionAsked {
                question_id: question.id,
                text: ask.spec.text.clone(),
                buttons: ask.spec.buttons.clone(),
                default_answer: ask.spec.default_answer.clone(),
            });
            match d.run.autonomy {
                Autonomy::Auto => {
                    let default = ask.spec.default_answer.clone().unwrap_or_default();
                    let answer = match store.answer(question.id, &default).await {
                        Ok(answered) => answered.answer.unwrap_or(default),
                        // Someone answered first: theirs stands.
                        Err(RunStoreError::Conflict(_)) => {
                            store.question(question.id).await?.answer.unwrap_or(default)
                        }
                        Err(e) => return Err(e.into()),
                    };
                    state.phase = ask.resume;
                    steps::apply_answer(&mut state, &ask.purpose, &answer);
                    events.push(EngineEvent::QuestionAnswered {
                        question_id: question.id,
                        answer,
                        by_default: true,
                    });
                }
                Autonomy::Interactive => {
                    state.phase = Phase::WaitingForHuman {
                        question_id: question.id,
                        purpose: ask.purpose,
                        resume: Box::new(ask.resume),
                    };
                }
            }
        }
        let mut changes = Vec::new();
        for (path, content) in &writes {
            let before = d.files.hash(path);
            match content {
                Some(content) => {
                    let hash = crate::state::blob_hash(content);
                    if before.as_ref().map(|h| h.as_str()) == Some(hash.as_str()) {
                        continue;
                    }
                    events.push(EngineEvent::FileWritten {
                        path: path.clone(),
                        change: if before.is_some() {
                            FileChangeKind::Modified
                        } else {
                            FileChangeKind::Created
                        },
                        bytes: content.len() as u64,
                    });
                    changes.push(FileChange::Write {
                        path: path.clone(),
                        content: content.clone(),
                    });
                }
                None if before.is_some() => {
                    events.push(EngineEvent::FileWritten {
                        path: path.clone(),
                        change: FileChangeKind::Deleted,
                        bytes: 0,
                    });
                    changes.push(FileChange::Delete { path: path.clone() });
                }
                None => {}
            }
        }
        state.step += 1;
        state.budget = d.budget.snapshot();
        let base_seq = d.bus.flush().await?;
        state.outbox = Outbox { base_seq, events };
        let json = serde_json::to_value(&state).map_err(|e| EngineError::State {
            checkpoint: Uuid::nil(),
            message: format!("serialising the run state: {e}"),
        })?;
        let checkpoint = store
            .commit(NewCheckpoint {
                project_id: d.run.project_id,
                run_id: d.run.id,
                parent_id: d.head.as_ref().map(|h| h.id),
                label: label.clone(),
                state: json,
                changes,
            })
            .await?;
        d.files = d.files.with_writes(&writes);
        for event in &state.outbox.events {
            d.bus.emit(event.clone());
        }
        d.bus.emit(EngineEvent::Checkpoint {
            checkpoint_id: checkpoint.id,
            step: state.step,
            label,
        });
        d.bus.emit(EngineEvent::Usage {
            budget: state.budget,
        });
        let used = state.budget.used;
        let delta =
            |now: u64, before: u64| i64::try_from(now.saturating_sub(before)).unwrap_or(i64::MAX);
        store
            .add_totals(
                d.run.id,
                delta(used.tokens, d.reported.tokens),
                used.cost_micros.saturating_sub(d.reported.cost_micros),
                delta(used.calls, d.reported.calls),
            )
            .await?;
        d.reported = used;
        d.head = Some(checkpoint);
        d.state = state;
        d.bus.flush().await?;
        Ok(())
    }

    /// Makes a new checkpoint on the run's project whose files equal those of checkpoint `to`
    /// (and whose run state is `to`'s when `to` belongs to this run): a rollback that keeps
    /// history. Drive the run again to continue from there, if it has not ended; for a finished
    /// run, a new run on the project starts from these files.
    pub async fn rollback(&self, run_id: Uuid, to: Uuid) -> Result<Checkpoint, EngineError> {
        let store = &self.deps.store;
        let run = store.run(run_id).await?;
        let target = store.checkpoint(to).await?;
        if target.project_id != run.project_id {
            return Err(RunStoreError::Invalid(format!(
                "checkpoint {to} belongs to another project"
            ))
            .into());
        }
        let head = store.head(run.project_id).await?;
        let current = match &head {
            Some(h) => store.files(h.id).await?,
            None => BTreeMap::new(),
        };
        let wanted = store.files(to).await?;
        let mut changes = Vec::new();
        for (path, hash) in &wanted {
            if current.get(path) != Some(hash) {
                changes.push(FileChange::Write {
                    path: path.clone(),
                    content: store.blob(hash).await?,
                });
            }
        }
        for path in current.keys() {
            if !wanted.contains_key(path) {
                changes.push(FileChange::Delete { path: path.clone() });
            }
        }
        let mut state = target.state.clone();
        if target.run_id != Some(run_id) {
            // Another run's state cannot continue this run: start this run over on those files.
            state = serde_json::to_value(RunState::new(
                run_id,
                run.description.clone(),
                BudgetState {
                    limits: run.budget,
                    used: BudgetUsage::default(),
                },
            ))
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        } else if let Some(outbox) = state.get_mut("outbox") {
            // The target's events were published when it was made.
            *outbox = serde_json::to_value(Outbox::default())
                .map_err(|e| EngineError::Internal(e.to_string()))?;
        }
        Ok(store
            .commit(NewCheckpoint {
                project_id: run.project_id,
                run_id,
                parent_id: head.map(|h| h.id),
                label: format!("rollback to {}", target.sequence),
                state,
                changes,
            })
            .await?)
    }

    /// Writes the files of checkpoint `checkpoint` into `dir` (created if missing; other
    /// non-ignored files there are removed).
    pub async fn materialize(&self, checkpoint: Uuid, dir: &Path) -> Result<(), EngineError> {
        let files = ProjectFiles::load(self.deps.store.as_ref(), Some(checkpoint)).await?;
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || {
            materialize(
                &files.snapshot,
                &files.blobs,
                &dir,
                &MaterializeOptions::default(),
            )
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        Ok(())
    }

    pub(crate) fn deps(&self) -> &EngineDeps {
        &self.deps
    }

    pub(crate) fn prompts(&self) -> &Prompts {
        &self.prompts
    }
}
