//! The typed run state and its persistence port.
//!
//! - [`RunState`] and [`Phase`]: what a run has produced and what happens next (an enum the
//!   orchestrator matches on, not a bag of flags).
//! - [`EngineEvent`] and [`RunOutcome`]: the facts a run publishes and how a `drive` call ends.
//! - [`RunStore`]: the port everything is persisted through, with [`MemoryRunStore`] here and an
//!   implementation over `samokoder-store` in that crate; [`conformance`] is their shared
//!   contract.
//!
//! ```
//! use samokoder_core::llm::BudgetState;
//! use samokoder_core::state::{Phase, RunState};
//! use uuid::Uuid;
//!
//! let state = RunState::new(Uuid::nil(), "A todo list with due dates", BudgetState::default());
//! assert_eq!(state.phase, Phase::NeedsSpec);
//! let json = serde_json::to_value(&state).unwrap();
//! assert_eq!(json["phase"]["phase"], "needs_spec");
//! let back: RunState = serde_json::from_value(json).unwrap();
//! assert_eq!(back, state);
//! ```

pub mod conformance;
mod event;
mod memory;
mod port;
mod run;

pub use event::{EngineEvent, FileChangeKind, Outbox, OutputStream, RunOutcome};
pub use memory::MemoryRunStore;
pub use port::{
    Autonomy, Checkpoint, CommandRecord, FileChange, MAIN_BRANCH, ModelSelection, NewCheckpoint,
    QuestionRecord, QuestionSpec, RunInfo, RunOptions, RunStatus, RunStore, RunStoreError,
    RunStoreResult, StoredEvent, blob_hash, replay_key,
};
pub use run::{
    Architecture, Clarification, CommandFailure, Complexity, Dependency, Epic, FailureCount,
    GuardState, Phase, QuestionPurpose, RUN_STATE_VERSION, Retry, RunState, Spec, Step, StepAction,
    StepStatus, Task, TaskStage, TaskStatus, Tool,
};
