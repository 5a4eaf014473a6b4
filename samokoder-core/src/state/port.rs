//! The [`RunStore`] port: everything the engine persists, as one object-safe trait.
//!
//! The engine owns this trait; `samokoder-store` implements it over its repositories and
//! [`super::MemoryRunStore`] implements it in memory. [`super::conformance`] is the contract
//! both pass.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::llm::{BudgetLimits, ChatResponse, LlmRecord};

/// The branch the engine works on.
pub const MAIN_BRANCH: &str = "main";

/// Errors of a [`RunStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunStoreError {
    /// The thing asked for does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was missing, e.g. `run 0190…`.
        what: String,
    },
    /// A concurrent writer won (the checkpoint's parent is no longer the head, the question
    /// was answered already, the run's status moved).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input was refused (a bad path, say).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The backing store failed.
    #[error("store error while {context}: {message}")]
    Backend {
        /// What the store was doing.
        context: String,
        /// The store's error.
        message: String,
    },
}

impl RunStoreError {
    /// A [`RunStoreError::Backend`] from any error.
    pub fn backend(context: impl Into<String>, error: impl std::fmt::Display) -> Self {
        Self::Backend {
            context: context.into(),
            message: error.to_string(),
        }
    }

    /// A [`RunStoreError::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }
}

/// Result of a [`RunStore`] call.
pub type RunStoreResult<T> = Result<T, RunStoreError>;

/// How much a run may do without a person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Autonomy {
    /// Questions wait for a person (the run stops in `WaitingForHuman`).
    #[default]
    Interactive,
    /// Every question is answered with its default; the run goes unattended.
    Auto,
}

impl Autonomy {
    /// The stored name (`interactive`, `auto`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Auto => "auto",
        }
    }

    /// Reads a stored name. `ask` (the original's word) means interactive; unknown names are
    /// interactive too, since asking is the safe reading.
    pub fn parse(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "auto" | "autonomous" | "unattended" => Self::Auto,
            _ => Self::Interactive,
        }
    }
}

/// Where a run is, as the store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// Being driven.
    Running,
    /// Stopped on a question.
    WaitingForHuman,
    /// Finished successfully.
    Completed,
    /// Finished without success.
    Failed,
    /// Stopped by its owner.
    Cancelled,
    /// Stopped by its budget (can continue with a raised one).
    BudgetExhausted,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::WaitingForHuman => "waiting_for_human",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::BudgetExhausted => "budget_exhausted",
        }
    }
}

/// A run as the engine needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run.
    pub id: Uuid,
    /// Its project (the branch it writes checkpoints to belongs to it).
    pub project_id: Uuid,
    /// What to build, in the user's words.
    pub description: String,
    /// Interactive or auto.
    pub autonomy: Autonomy,
    /// Budget limits the run was created with.
    pub budget: BudgetLimits,
    /// Status.
    pub status: RunStatus,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Choices made when it was started (template, models).
    #[serde(default)]
    pub options: RunOptions,
}

/// Choices made when a run was started, beyond its description, autonomy and budget.
///
/// ```
/// use samokoder_core::state::RunOptions;
///
/// // Stored as JSON; an empty object is "no choices".
/// let options: RunOptions = serde_json::from_str("{}").unwrap();
/// assert_eq!(options, RunOptions::default());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// The starter template the architect must use; `None` lets it choose among all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Models by role name (`default` or an agent role such as `architect`). The engine does
    /// not read them: the [`crate::engine::RouteSource`] that resolves the run's routes does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelSelection>,
}

/// The model one role of a run uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSelection {
    /// The provider; `None` keeps the provider the deployment routes the role to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model.
    pub model: String,
}

/// A stored checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Its id.
    pub id: Uuid,
    /// The project.
    pub project_id: Uuid,
    /// The checkpoint before it (`None` for the project's first).
    pub parent_id: Option<Uuid>,
    /// The run that wrote it.
    pub run_id: Option<Uuid>,
    /// Position in the project's chain, from 1.
    pub sequence: i64,
    /// What the step did.
    pub label: String,
    /// The engine's run state (a [`super::RunState`] as JSON).
    pub state: Value,
}

/// One change to the file tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileChange {
    /// Create or overwrite a file with this content.
    Write {
        /// Workspace-relative path.
        path: String,
        /// The whole new content.
        content: Vec<u8>,
    },
    /// Remove a file.
    Delete {
        /// Workspace-relative path.
        path: String,
    },
}

impl FileChange {
    /// The path it touches.
    pub fn path(&self) -> &str {
        match self {
            Self::Write { path, .. } | Self::Delete { path } => path,
        }
    }
}

/// A checkpoint to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCheckpoint {
    /// The project.
    pub project_id: Uuid,
    /// The run writing it.
    pub run_id: Uuid,
    /// The head the engine built on; the commit fails with [`RunStoreError::Conflict`] if it
    /// is no longer the head.
    pub parent_id: Option<Uuid>,
    /// What the step did.
    pub label: String,
    /// The run state as JSON.
    pub state: Value,
    /// The step's file changes, each path at most once.
    pub changes: Vec<FileChange>,
}

/// A question to ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionSpec {
    /// The question.
    pub text: String,
    /// Suggested answers, shown as buttons.
    pub buttons: Vec<String>,
    /// The answer auto mode uses.
    pub default_answer: Option<String>,
}

/// A stored question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionRecord {
    /// Its id.
    pub id: Uuid,
    /// The run waiting on it.
    pub run_id: Uuid,
    /// What was asked.
    pub spec: QuestionSpec,
    /// The answer, once given.
    pub answer: Option<String>,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Per-run sequence number (1, 2, ...).
    pub seq: i64,
    /// The event's kind.
    pub kind: String,
    /// The event as JSON.
    pub payload: Value,
    /// When it was stored.
    pub at: DateTime<Utc>,
}

/// A command the runner executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// The argument vector.
    pub argv: Vec<String>,
    /// Exit code; `None` when killed.
    pub exit_code: Option<i32>,
    /// Standard output (the store may keep only the tail).
    pub stdout: String,
    /// Standard error (likewise).
    pub stderr: String,
    /// Wall time.
    pub duration_ms: u64,
    /// Killed for running too long.
    pub timed_out: bool,
    /// When it finished.
    pub at: DateTime<Utc>,
}

/// Everything the engine persists.
///
/// Contract (checked by [`super::conformance`]):
///
/// - [`RunStore::commit`] is atomic: the checkpoint, its state and all its file changes are
///   stored together or not at all, and only if `parent_id` is still the head of the project's
///   [`MAIN_BRANCH`] (else [`RunStoreError::Conflict`]).
/// - [`RunStore::append_event`] assigns the run's next sequence number (1, 2, ... without gaps).
/// - [`RunStore::ask`] is idempotent for a pending question: asking a run the same question
///   (text, buttons, default) while an identical one is unanswered returns that one, so a step
///   redone after a crash does not ask twice.
/// - [`RunStore::answer`] answers once; a second answer is a [`RunStoreError::Conflict`].
/// - [`RunStore::find_llm`] returns a successful answer recorded for the same run, step and
///   request hash, never one of another run or step.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Loads a run.
    async fn run(&self, run_id: Uuid) -> RunStoreResult<RunInfo>;

    /// Moves a run to `to` if its status is one of `from`; [`RunStoreError::Conflict`] otherwise.
    async fn transition(
        &self,
        run_id: Uuid,
        from: &[RunStatus],
        to: RunStatus,
        error: Option<&str>,
    ) -> RunStoreResult<RunInfo>;

    /// Records which agent is working (for listings).
    async fn set_current_agent(&self, run_id: Uuid, agent: Option<&str>) -> RunStoreResult<()>;

    /// Adds usage to the run's totals.
    async fn add_totals(
        &self,
        run_id: Uuid,
        tokens: i64,
        cost_micros: i64,
        llm_calls: i64,
    ) -> RunStoreResult<()>;

    /// The head checkpoint of the project's main branch, if any.
    async fn head(&self, project_id: Uuid) -> RunStoreResult<Option<Checkpoint>>;

    /// Loads a checkpoint.
    async fn checkpoint(&self, id: Uuid) -> RunStoreResult<Checkpoint>;

    /// Stores a checkpoint atomically (see the trait docs) and returns it.
    async fn commit(&self, checkpoint: NewCheckpoint) -> RunStoreResult<Checkpoint>;

    /// The file tree at a checkpoint: path → blob hash (lower-case hex SHA-256).
    async fn files(&self, checkpoint_id: Uuid) -> RunStoreResult<BTreeMap<String, String>>;

    /// A blob's content.
    async fn blob(&self, hash: &str) -> RunStoreResult<Vec<u8>>;

    /// Appends an event and returns its sequence number.
    async fn append_event(&self, run_id: Uuid, kind: &str, payload: &Value) -> RunStoreResult<i64>;

    /// The run's last event sequence number (0 when none).
    async fn last_event_seq(&self, run_id: Uuid) -> RunStoreResult<i64>;

    /// Events with `seq > after`, ascending, at most `limit`.
    async fn events_after(
        &self,
        run_id: Uuid,
        after: i64,
        limit: u32,
    ) -> RunStoreResult<Vec<StoredEvent>>;

    /// Asks a question (idempotent while an identical one is pending).
    async fn ask(&self, run_id: Uuid, question: &QuestionSpec) -> RunStoreResult<QuestionRecord>;

    /// Loads a question.
    async fn question(&self, id: Uuid) -> RunStoreResult<QuestionRecord>;

    /// Answers a question once.
    async fn answer(&self, id: Uuid, answer: &str) -> RunStoreResult<QuestionRecord>;

    /// Logs one LLM request of `step_key` (the replay cache is built on these).
    async fn record_llm(
        &self,
        run_id: Uuid,
        step_key: &str,
        record: &LlmRecord,
    ) -> RunStoreResult<()>;

    /// The answer recorded for this run, step and [`crate::llm::request_hash`], if a request
    /// with them succeeded.
    async fn find_llm(
        &self,
        run_id: Uuid,
        step_key: &str,
        request_hash: &str,
    ) -> RunStoreResult<Option<ChatResponse>>;

    /// Logs a command the runner executed.
    async fn record_command(&self, run_id: Uuid, command: &CommandRecord) -> RunStoreResult<()>;
}

/// The key under which a store that has one global hash index keeps an LLM request: the hash of
/// run, step and request hash together, so a lookup can only ever hit the same run and step.
///
/// ```
/// use samokoder_core::state::replay_key;
/// use uuid::Uuid;
///
/// let run = Uuid::nil();
/// assert_ne!(replay_key(run, "s1", "abc"), replay_key(run, "s2", "abc"));
/// assert_eq!(replay_key(run, "s1", "abc").len(), 64);
/// ```
pub fn replay_key(run_id: Uuid, step_key: &str, request_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    // Length-prefixed parts: no two different triples hash the same text.
    for part in [run_id.to_string().as_str(), step_key, request_hash] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The blob hash of `content`: lower-case hex SHA-256, as every store keys blobs.
pub fn blob_hash(content: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(content))
}
