//! The generation engine's persistence port ([`RunStore`]) over this crate's repositories, so a
//! server's workers drive runs whose checkpoints, events, questions and logs land in SQLite or
//! PostgreSQL.
//!
//! - A checkpoint is a state on the project's `main` branch ([`StateRepo::append`] writes the
//!   state, its file changes and the run state JSON in one transaction, and refuses a stale
//!   parent), so a killed worker leaves the last complete step and nothing of the next.
//! - The LLM log is keyed for replay by [`replay_key`] (run, step and request hash together),
//!   so [`LlmLogRepo::find_by_hash`] can only hit the same run and step.
//! - Every successful or failed request with usage is also a per-user [`UsageRepo`] record.
//!
//! ```
//! # #[cfg(feature = "sqlx-sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use samokoder_core::state::{RunStatus, RunStore};
//! use samokoder_store::engine::StoreRunStore;
//! use samokoder_store::{NewProject, NewRun, NewUser, connect};
//!
//! let store = connect("sqlite::memory:").await?;
//! store.migrate().await?;
//! let user = store.users.create(&NewUser::new("ada@example.com", "$argon2id$...")).await?;
//! let project = store
//!     .projects
//!     .create(&NewProject { owner_id: user.id, name: "Todo".into(), description: None })
//!     .await?;
//! let run = store
//!     .runs
//!     .create(&NewRun {
//!         project_id: project.id,
//!         user_id: user.id,
//!         description: "A todo API".into(),
//!         autonomy: "auto".into(),
//!         budget: serde_json::json!({"cost_micros": 2_000_000}),
//!         options: serde_json::json!({"template": "node-api"}),
//!     })
//!     .await?;
//!
//! let runs = StoreRunStore::new(&store);
//! let info = runs.run(run.id).await?;
//! assert_eq!(info.status, RunStatus::Queued);
//! assert_eq!(info.budget.cost_micros, Some(2_000_000));
//! assert_eq!(info.options.template.as_deref(), Some("node-api"));
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlx-sqlite"))]
//! # fn main() {}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use samokoder_core::llm::{BudgetLimits, ChatResponse, LlmRecord, RecordOutcome};
use samokoder_core::state::{
    Autonomy, Checkpoint, CommandRecord, FileChange as EngineChange, MAIN_BRANCH, NewCheckpoint,
    QuestionRecord, QuestionSpec, RunInfo, RunOptions, RunStatus as EngineStatus, RunStore,
    RunStoreError, RunStoreResult, StoredEvent, replay_key,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::{
    FileChange, NewCommandLog, NewLlmRequest, NewQuestion, NewState, NewUsageRecord, Question,
    RequestOutcome, Run, RunStatus, StateRecord, TokenCounts,
};
use crate::repo::{
    CommandLogRepo, EventRepo, FileRepo, LlmLogRepo, QuestionRepo, RunRepo, StateRepo, UsageRepo,
};
use crate::store::Store;

/// [`RunStore`] over a [`Store`]'s repositories.
pub struct StoreRunStore {
    runs: Arc<dyn RunRepo>,
    states: Arc<dyn StateRepo>,
    files: Arc<dyn FileRepo>,
    events: Arc<dyn EventRepo>,
    questions: Arc<dyn QuestionRepo>,
    llm_log: Arc<dyn LlmLogRepo>,
    commands: Arc<dyn CommandLogRepo>,
    usage: Arc<dyn UsageRepo>,
    /// Run → (user, project), for usage records (a run's owner never changes).
    owners: Mutex<HashMap<Uuid, (Uuid, Uuid)>>,
}

impl std::fmt::Debug for StoreRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRunStore").finish_non_exhaustive()
    }
}

impl StoreRunStore {
    /// The port over `store`'s repositories.
    pub fn new(store: &Store) -> Self {
        Self {
            runs: store.runs.clone(),
            states: store.states.clone(),
            files: store.files.clone(),
            events: store.events.clone(),
            questions: store.questions.clone(),
            llm_log: store.llm_log.clone(),
            commands: store.commands.clone(),
            usage: store.usage.clone(),
            owners: Mutex::new(HashMap::new()),
        }
    }

    async fn owner(&self, run_id: Uuid) -> RunStoreResult<(Uuid, Uuid)> {
        if let Some(owner) = self
            .owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&run_id)
        {
            return Ok(*owner);
        }
        let run = self
            .runs
            .get(run_id)
            .await
            .map_err(|e| map_err("loading a run", e))?;
        let owner = (run.user_id, run.project_id);
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id, owner);
        Ok(owner)
    }
}

fn map_err(context: &str, error: StoreError) -> RunStoreError {
    match error {
        StoreError::NotFound { entity, key } => RunStoreError::not_found(format!("{entity} {key}")),
        StoreError::MissingReference { entity, detail } => {
            RunStoreError::not_found(format!("{entity}: {detail}"))
        }
        StoreError::Conflict { detail, .. } => RunStoreError::Conflict(detail),
        StoreError::InvalidInput(message) => RunStoreError::Invalid(message),
        other => RunStoreError::backend(context, other),
    }
}

fn to_store_status(status: EngineStatus) -> RunStatus {
    match status {
        EngineStatus::Queued => RunStatus::Queued,
        EngineStatus::Running => RunStatus::Running,
        EngineStatus::WaitingForHuman => RunStatus::WaitingForHuman,
        EngineStatus::Completed => RunStatus::Completed,
        EngineStatus::Failed => RunStatus::Failed,
        EngineStatus::Cancelled => RunStatus::Cancelled,
        EngineStatus::BudgetExhausted => RunStatus::BudgetExhausted,
    }
}

fn to_engine_status(status: RunStatus) -> EngineStatus {
    match status {
        RunStatus::Queued => EngineStatus::Queued,
        RunStatus::Running => EngineStatus::Running,
        RunStatus::WaitingForHuman => EngineStatus::WaitingForHuman,
        RunStatus::Completed => EngineStatus::Completed,
        RunStatus::Failed => EngineStatus::Failed,
        RunStatus::Cancelled => EngineStatus::Cancelled,
        RunStatus::BudgetExhausted => EngineStatus::BudgetExhausted,
    }
}

fn run_info(run: Run) -> RunStoreResult<RunInfo> {
    // The server stores the limits as the engine's `BudgetLimits` JSON; null or `{}` is
    // unlimited.
    let budget = match &run.budget {
        Value::Null => BudgetLimits::unlimited(),
        value => serde_json::from_value(value.clone()).map_err(|e| {
            RunStoreError::Invalid(format!("run {} has unreadable budget limits: {e}", run.id))
        })?,
    };
    // Options are the engine's `RunOptions` JSON; null or `{}` is "no choices".
    let options = match &run.options {
        Value::Null => RunOptions::default(),
        value => serde_json::from_value(value.clone()).map_err(|e| {
            RunStoreError::Invalid(format!("run {} has unreadable options: {e}", run.id))
        })?,
    };
    Ok(RunInfo {
        options,
        id: run.id,
        project_id: run.project_id,
        description: run.description,
        autonomy: Autonomy::parse(&run.autonomy),
        budget,
        status: to_engine_status(run.status),
        error: run.error,
    })
}

fn checkpoint(state: StateRecord) -> Checkpoint {
    Checkpoint {
        id: state.id,
        project_id: state.project_id,
        parent_id: state.parent_id,
        run_id: state.run_id,
        sequence: state.sequence,
        label: state.step_label,
        state: state.state,
    }
}

fn question(q: Question) -> QuestionRecord {
    let buttons = match &q.buttons {
        Value::Array(items) => items
            .iter()
            .filter_map(|b| match b {
                Value::String(s) => Some(s.clone()),
                other => other
                    .get("label")
                    .or_else(|| other.get("key"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
            .collect(),
        _ => Vec::new(),
    };
    QuestionRecord {
        id: q.id,
        run_id: q.run_id,
        spec: QuestionSpec {
            text: q.text,
            buttons,
            default_answer: q.default_answer,
        },
        answer: q.answer,
    }
}

fn outcome(outcome: &RecordOutcome) -> (RequestOutcome, Option<String>) {
    match outcome {
        RecordOutcome::Ok => (RequestOutcome::Success, None),
        RecordOutcome::Replayed => (RequestOutcome::Replayed, None),
        RecordOutcome::Error { code, message } => {
            let kind = match code.as_str() {
                "cancelled" => RequestOutcome::Cancelled,
                "llm_deadline_exceeded" => RequestOutcome::Timeout,
                _ => RequestOutcome::Error,
            };
            (kind, Some(format!("{code}: {message}")))
        }
    }
}

fn sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl RunStore for StoreRunStore {
    async fn run(&self, run_id: Uuid) -> RunStoreResult<RunInfo> {
        let run = self
            .runs
            .get(run_id)
            .await
            .map_err(|e| map_err("loading a run", e))?;
        run_info(run)
    }

    async fn transition(
        &self,
        run_id: Uuid,
        from: &[EngineStatus],
        to: EngineStatus,
        error: Option<&str>,
    ) -> RunStoreResult<RunInfo> {
        let from: Vec<RunStatus> = from.iter().copied().map(to_store_status).collect();
        let run = self
            .runs
            .transition(run_id, &from, to_store_status(to), error)
            .await
            .map_err(|e| map_err("changing a run's status", e))?;
        run_info(run)
    }

    async fn set_current_agent(&self, run_id: Uuid, agent: Option<&str>) -> RunStoreResult<()> {
        self.runs
            .set_current_agent(run_id, agent)
            .await
            .map_err(|e| map_err("recording the current agent", e))
    }

    async fn add_totals(
        &self,
        run_id: Uuid,
        tokens: i64,
        cost_micros: i64,
        llm_calls: i64,
    ) -> RunStoreResult<()> {
        self.runs
            .add_totals(run_id, tokens, cost_micros, llm_calls)
            .await
            .map(|_| ())
            .map_err(|e| map_err("adding run totals", e))
    }

    async fn head(&self, project_id: Uuid) -> RunStoreResult<Option<Checkpoint>> {
        match self.states.head(project_id, MAIN_BRANCH).await {
            Ok(head) => Ok(head.map(checkpoint)),
            // No branch yet: the project has no checkpoint.
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(map_err("loading the head checkpoint", e)),
        }
    }

    async fn checkpoint(&self, id: Uuid) -> RunStoreResult<Checkpoint> {
        self.states
            .get(id)
            .await
            .map(checkpoint)
            .map_err(|e| map_err("loading a checkpoint", e))
    }

    async fn commit(&self, new: NewCheckpoint) -> RunStoreResult<Checkpoint> {
        let files = new
            .changes
            .into_iter()
            .map(|change| match change {
                EngineChange::Write { path, content } => FileChange::Write { path, content },
                EngineChange::Delete { path } => FileChange::Delete { path },
            })
            .collect();
        self.states
            .append(&NewState {
                project_id: new.project_id,
                branch: MAIN_BRANCH.to_owned(),
                parent_id: new.parent_id,
                run_id: Some(new.run_id),
                step_label: new.label,
                state: new.state,
                files,
            })
            .await
            .map(checkpoint)
            .map_err(|e| map_err("storing a checkpoint", e))
    }

    async fn files(&self, checkpoint_id: Uuid) -> RunStoreResult<BTreeMap<String, String>> {
        self.states
            .files(checkpoint_id)
            .await
            .map_err(|e| map_err("loading a checkpoint's files", e))
    }

    async fn blob(&self, hash: &str) -> RunStoreResult<Vec<u8>> {
        self.files
            .blob(hash)
            .await
            .map_err(|e| map_err("loading a blob", e))
    }

    async fn append_event(&self, run_id: Uuid, kind: &str, payload: &Value) -> RunStoreResult<i64> {
        self.events
            .append(run_id, kind, payload)
            .await
            .map(|e| e.seq)
            .map_err(|e| map_err("storing an event", e))
    }

    async fn last_event_seq(&self, run_id: Uuid) -> RunStoreResult<i64> {
        self.events
            .last_seq(run_id)
            .await
            .map_err(|e| map_err("reading the last event", e))
    }

    async fn events_after(
        &self,
        run_id: Uuid,
        after: i64,
        limit: u32,
    ) -> RunStoreResult<Vec<StoredEvent>> {
        let events = self
            .events
            .after(run_id, after, limit)
            .await
            .map_err(|e| map_err("reading events", e))?;
        Ok(events
            .into_iter()
            .map(|e| StoredEvent {
                seq: e.seq,
                kind: e.kind,
                payload: e.payload,
                at: e.at,
            })
            .collect())
    }

    async fn ask(&self, run_id: Uuid, spec: &QuestionSpec) -> RunStoreResult<QuestionRecord> {
        let pending = self
            .questions
            .pending(run_id)
            .await
            .map_err(|e| map_err("reading pending questions", e))?;
        if let Some(same) = pending.into_iter().map(question).find(|q| q.spec == *spec) {
            return Ok(same);
        }
        self.questions
            .ask(&NewQuestion {
                run_id,
                text: spec.text.clone(),
                buttons: json!(spec.buttons),
                default_answer: spec.default_answer.clone(),
            })
            .await
            .map(question)
            .map_err(|e| map_err("asking a question", e))
    }

    async fn question(&self, id: Uuid) -> RunStoreResult<QuestionRecord> {
        self.questions
            .get(id)
            .await
            .map(question)
            .map_err(|e| map_err("loading a question", e))
    }

    async fn answer(&self, id: Uuid, answer: &str) -> RunStoreResult<QuestionRecord> {
        self.questions
            .answer(id, answer)
            .await
            .map(question)
            .map_err(|e| map_err("answering a question", e))
    }

    async fn record_llm(
        &self,
        run_id: Uuid,
        step_key: &str,
        record: &LlmRecord,
    ) -> RunStoreResult<()> {
        let (kind, error) = outcome(&record.outcome);
        let counts = TokenCounts {
            prompt_tokens: sat(record.usage.prompt_tokens),
            completion_tokens: sat(record.usage.completion_tokens),
            cached_tokens: sat(record.usage.cached_prompt_tokens),
            cost_micros: record.cost_micros,
        };
        let at = record.started_at + chrono::Duration::milliseconds(sat(record.latency_ms));
        let request = serde_json::to_value(&record.request)
            .map_err(|e| RunStoreError::backend("serialising an LLM request", e))?;
        let response = record
            .response
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| RunStoreError::backend("serialising an LLM response", e))?;
        self.llm_log
            .record(&NewLlmRequest {
                run_id,
                step_key: step_key.to_owned(),
                request_hash: replay_key(run_id, step_key, &record.request_hash),
                provider: record.provider.clone(),
                model: record.model.clone(),
                agent_role: Some(record.role.as_str().to_owned()),
                request,
                response,
                counts,
                latency_ms: sat(record.latency_ms),
                outcome: kind,
                error,
                at,
            })
            .await
            .map_err(|e| map_err("logging an LLM request", e))?;
        // Replays cost nothing; requests that used nothing are not usage.
        if kind != RequestOutcome::Replayed && (counts.total_tokens() > 0 || counts.cost_micros > 0)
        {
            let (user_id, project_id) = self.owner(run_id).await?;
            self.usage
                .record(&NewUsageRecord {
                    user_id,
                    project_id: Some(project_id),
                    run_id: Some(run_id),
                    provider: record.provider.clone(),
                    model: record.model.clone(),
                    agent_role: Some(record.role.as_str().to_owned()),
                    counts,
                    latency_ms: sat(record.latency_ms),
                    outcome: kind,
                    at,
                })
                .await
                .map_err(|e| map_err("recording usage", e))?;
        }
        Ok(())
    }

    async fn find_llm(
        &self,
        run_id: Uuid,
        step_key: &str,
        request_hash: &str,
    ) -> RunStoreResult<Option<ChatResponse>> {
        let found = self
            .llm_log
            .find_by_hash(&replay_key(run_id, step_key, request_hash))
            .await
            .map_err(|e| map_err("looking up the LLM log", e))?;
        let Some(found) = found else {
            return Ok(None);
        };
        if found.run_id != run_id
            || found.step_key != step_key
            || found.outcome != RequestOutcome::Success
        {
            return Ok(None);
        }
        match found.response {
            Some(response) => serde_json::from_value(response)
                .map(Some)
                .map_err(|e| RunStoreError::Invalid(format!("a logged LLM response: {e}"))),
            None => Ok(None),
        }
    }

    async fn record_command(&self, run_id: Uuid, command: &CommandRecord) -> RunStoreResult<()> {
        self.commands
            .record(&NewCommandLog {
                run_id,
                argv: command.argv.clone(),
                exit_code: command.exit_code,
                stdout: command.stdout.clone(),
                stderr: command.stderr.clone(),
                duration_ms: sat(command.duration_ms),
                timed_out: command.timed_out,
                at: command.at,
            })
            .await
            .map(|_| ())
            .map_err(|e| map_err("logging a command", e))
    }
}
