//! The events of a run and the outcome it ends with.
//!
//! Events are facts: each is persisted with a store-assigned sequence number before anyone sees
//! it. Facts about a step's results (files written, questions asked, the checkpoint) travel in
//! the checkpoint's [`Outbox`] and are published only once the checkpoint is stored, so an
//! interrupted step never announces a file that no checkpoint holds. Live progress (an agent
//! started, model text, command output) is published as it happens.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::llm::{AgentRole, BudgetExhausted, BudgetState, LlmEvent};

/// One event of a run.
///
/// Serialised with a `type` tag (`agent_started`, `file_written`, ...); the tag is also the
/// `kind` the store keeps beside the payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineEvent {
    /// A `drive` call started working on the run.
    RunStarted {
        /// Steps completed before this call.
        step: u64,
        /// Whether earlier calls had worked on it.
        resumed: bool,
    },
    /// An agent started a step.
    AgentStarted {
        /// The agent.
        agent: AgentRole,
        /// The step number.
        step: u64,
        /// What it works on.
        label: String,
    },
    /// An agent finished its part of a step.
    AgentFinished {
        /// The agent.
        agent: AgentRole,
        /// The step number.
        step: u64,
        /// What it did, in a line.
        summary: String,
    },
    /// Model output as it streams, coalesced into pieces (not one event per token).
    LlmText {
        /// The agent whose request streams.
        agent: AgentRole,
        /// The text.
        text: String,
    },
    /// The stream broke and is being retried: text sent so far for this request is void.
    LlmStreamRestarted {
        /// The agent.
        agent: AgentRole,
    },
    /// The provider asked the run to wait.
    WaitingForRateLimit {
        /// The agent.
        agent: AgentRole,
        /// Provider name.
        provider: String,
        /// How long, in milliseconds.
        wait_ms: u64,
    },
    /// Other LLM-layer progress: retries, re-asks, trimmed context.
    LlmNotice {
        /// What happened.
        notice: LlmEvent,
    },
    /// A file changed in a checkpoint.
    FileWritten {
        /// Workspace-relative path.
        path: String,
        /// What happened to it.
        change: FileChangeKind,
        /// Its size in bytes (0 when deleted).
        bytes: u64,
    },
    /// A command started in the sandbox.
    CommandStarted {
        /// The argument vector.
        argv: Vec<String>,
        /// Why it runs.
        purpose: String,
    },
    /// Command output, coalesced.
    CommandOutput {
        /// Which stream.
        stream: OutputStream,
        /// The text.
        text: String,
    },
    /// A command finished.
    CommandFinished {
        /// The argument vector.
        argv: Vec<String>,
        /// Exit code; `None` when killed.
        exit_code: Option<i32>,
        /// Killed for running too long.
        timed_out: bool,
        /// Wall time.
        duration_ms: u64,
        /// The executor's verdict.
        success: bool,
        /// The executor's reading, when the model was asked.
        analysis: Option<String>,
    },
    /// A planned command was not run.
    CommandSkipped {
        /// The argument vector.
        argv: Vec<String>,
        /// Why.
        reason: String,
    },
    /// A question waits for an answer.
    QuestionAsked {
        /// The persisted question.
        question_id: Uuid,
        /// The question.
        text: String,
        /// Suggested answers.
        buttons: Vec<String>,
        /// The default answer.
        default_answer: Option<String>,
    },
    /// A question was answered.
    QuestionAnswered {
        /// The question.
        question_id: Uuid,
        /// The answer.
        answer: String,
        /// Answered with the default because the run is in auto mode.
        by_default: bool,
    },
    /// Usage and limits after a step.
    Usage {
        /// Limits and usage.
        budget: BudgetState,
    },
    /// Commands run without the sandbox's confinement.
    SandboxUnconfined {
        /// Why the runner could not confine them.
        reason: String,
    },
    /// The sandbox stopped something a command tried: a connection outside the egress
    /// allowlist, or a limit (processes, memory, the workspace's disk quota).
    SandboxBlocked {
        /// `egress_refused`, `process_limit`, `memory_limit` or `disk_quota`.
        kind: String,
        /// What happened.
        detail: String,
    },
    /// A guard stopped or paused the run.
    GuardTripped {
        /// What it saw.
        reason: String,
    },
    /// A checkpoint was stored.
    Checkpoint {
        /// The checkpoint.
        checkpoint_id: Uuid,
        /// The step number it completes.
        step: u64,
        /// What the step did.
        label: String,
    },
    /// A `drive` call stopped; the outcome says why.
    RunFinished {
        /// The outcome.
        outcome: RunOutcome,
    },
}

impl EngineEvent {
    /// The event's kind: its `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RunStarted { .. } => "run_started",
            Self::AgentStarted { .. } => "agent_started",
            Self::AgentFinished { .. } => "agent_finished",
            Self::LlmText { .. } => "llm_text",
            Self::LlmStreamRestarted { .. } => "llm_stream_restarted",
            Self::WaitingForRateLimit { .. } => "waiting_for_rate_limit",
            Self::LlmNotice { .. } => "llm_notice",
            Self::FileWritten { .. } => "file_written",
            Self::CommandStarted { .. } => "command_started",
            Self::CommandOutput { .. } => "command_output",
            Self::CommandFinished { .. } => "command_finished",
            Self::CommandSkipped { .. } => "command_skipped",
            Self::QuestionAsked { .. } => "question_asked",
            Self::QuestionAnswered { .. } => "question_answered",
            Self::Usage { .. } => "usage",
            Self::SandboxUnconfined { .. } => "sandbox_unconfined",
            Self::SandboxBlocked { .. } => "sandbox_blocked",
            Self::GuardTripped { .. } => "guard_tripped",
            Self::Checkpoint { .. } => "checkpoint",
            Self::RunFinished { .. } => "run_finished",
        }
    }
}

/// What happened to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeKind {
    /// It did not exist before.
    Created,
    /// Its content changed.
    Modified,
    /// It was removed.
    Deleted,
}

/// A command output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Why a `drive` call returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    /// The app is built and its tests pass.
    Completed {
        /// The final checkpoint.
        checkpoint_id: Uuid,
    },
    /// The run ended without success.
    Failed {
        /// Why, for a person.
        reason: String,
    },
    /// The cancellation token fired; the run stopped between steps (or mid-request, with the
    /// step left to redo) and is marked cancelled.
    Cancelled,
    /// A budget limit was reached; nothing of the unfinished step was kept. Raise the limit
    /// and drive again to continue.
    BudgetExhausted {
        /// Which limit.
        exhausted: BudgetExhausted,
    },
    /// The run waits for an answer; drive again once it is given.
    WaitingForHuman {
        /// The question.
        question_id: Uuid,
    },
    /// The run used its step allowance (auto mode).
    StepCapReached {
        /// Steps completed.
        steps: u64,
    },
}

impl RunOutcome {
    /// A stable snake_case name, as in the serialised tag.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Completed { .. } => "completed",
            Self::Failed { .. } => "failed",
            Self::Cancelled => "cancelled",
            Self::BudgetExhausted { .. } => "budget_exhausted",
            Self::WaitingForHuman { .. } => "waiting_for_human",
            Self::StepCapReached { .. } => "step_cap_reached",
        }
    }
}

/// Events a checkpoint publishes once it is stored.
///
/// `base_seq` is the run's last event sequence number when the checkpoint was built. After a
/// crash, the events already published are exactly the first `last_seq - base_seq` of
/// `events` (the engine is the run's only writer), so a resumed run publishes the rest and
/// nothing twice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    /// The run's last event sequence number before these events.
    pub base_seq: i64,
    /// The events, in order.
    pub events: Vec<EngineEvent>,
}

impl Outbox {
    /// The events not yet published, given the run's last stored sequence number.
    pub fn unpublished(&self, last_seq: i64) -> &[EngineEvent] {
        let published = usize::try_from(last_seq.saturating_sub(self.base_seq))
            .unwrap_or(0)
            .min(self.events.len());
        &self.events[published..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_the_serialised_tag() {
        let events = [
            EngineEvent::RunStarted {
                step: 0,
                resumed: false,
            },
            EngineEvent::FileWritten {
                path: "a".into(),
                change: FileChangeKind::Created,
                bytes: 1,
            },
            EngineEvent::RunFinished {
                outcome: RunOutcome::Cancelled,
            },
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.kind());
        }
    }

    #[test]
    fn outbox_skips_what_was_published() {
        let event = |n: u64| EngineEvent::RunStarted {
            step: n,
            resumed: false,
        };
        let outbox = Outbox {
            base_seq: 10,
            events: vec![event(1), event(2), event(3)],
        };
        assert_eq!(outbox.unpublished(10).len(), 3);
        assert_eq!(outbox.unpublished(11), &[event(2), event(3)]);
        assert!(outbox.unpublished(13).is_empty());
        assert!(outbox.unpublished(50).is_empty());
        // A store that lost events (restored from backup) republishes all of them.
        assert_eq!(outbox.unpublished(3).len(), 3);
    }
}
