//! `/v1/projects/{project_id}/runs/*`: generation runs, their budgets, progress and questions.
//!
//! A run turns a description into code on its project: it is queued, driven by a worker step
//! by step, may stop on a question (interactive runs), and ends `completed`, `failed`,
//! `cancelled` or `budget_exhausted` (which can be resumed with a raised budget). Its events
//! stream as server-sent events ([`super::events`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The longest run description, in characters.
pub const MAX_RUN_DESCRIPTION_CHARS: usize = 10_000;
/// The default page size of `GET /v1/projects/{project_id}/runs`.
pub const DEFAULT_RUN_PAGE: u32 = 20;
/// The largest page size of `GET /v1/projects/{project_id}/runs`.
pub const MAX_RUN_PAGE: u32 = 100;
/// The longest answer to a question, in characters.
pub const MAX_ANSWER_CHARS: usize = 10_000;

/// How much a run may do without a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunAutonomy {
    /// Questions stop the run until someone answers them (over HTTP or the WebSocket).
    #[default]
    Interactive,
    /// Every question is answered with its default answer; the run goes unattended.
    Auto,
}

impl RunAutonomy {
    /// The wire spelling (`interactive`, `auto`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Auto => "auto",
        }
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is driving it.
    Running,
    /// Stopped on a question; answering it queues the run again.
    WaitingForHuman,
    /// Finished: the app is built and its tests pass.
    Completed,
    /// Finished without success (`error` says why).
    Failed,
    /// Stopped by its owner.
    Cancelled,
    /// Stopped by its budget; `POST .../resume` with a raised budget continues it.
    BudgetExhausted,
}

impl RunStatus {
    /// The wire spelling.
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

    /// Whether the run is over for good (`completed`, `failed`, `cancelled`). A
    /// `budget_exhausted` run is stopped but can be resumed.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Whether the run occupies its project (`queued`, `running`, `waiting_for_human`): a
    /// project has at most one active run.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running | Self::WaitingForHuman)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run's budget limits. An absent (or `null`) limit in a request takes the deployment's
/// default; every limit is capped at the caller's plan maximum (exceeding it is 422
/// `budget_over_plan`). In responses every limit the run has is present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunBudget {
    /// Prompt plus completion tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Cost in micro-dollars (1 000 000 = one US dollar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micros: Option<u64>,
    /// Number of LLM requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_calls: Option<u64>,
    /// Wall time in seconds (time spent waiting for answers does not count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_secs: Option<u64>,
}

/// The model one agent role uses in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelChoice {
    /// The provider (`openai`, `anthropic`, ... as `GET /v1/models` lists them); absent means
    /// the provider the deployment routes the role to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model name, e.g. `gpt-4o-mini`.
    pub model: String,
}

/// `POST /v1/projects/{project_id}/runs`: start a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunCreateRequest {
    /// What to build or change, in plain language (1 to 10 000 characters).
    pub description: String,
    /// A starter template by name (e.g. `node-api`); absent lets the architect choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// `interactive` (default) or `auto`.
    #[serde(default)]
    pub autonomy: RunAutonomy,
    /// Limits; absent ones take the deployment's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RunBudget>,
    /// Models by agent role (`default`, `spec_writer`, `architect`, `tech_lead`, `developer`,
    /// `code_writer`, `executor`, `troubleshooter`, `task_completer`, `technical_writer`, ...);
    /// roles not named use the deployment's routing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelChoice>,
}

/// `POST /v1/projects/{project_id}/runs/{run_id}/resume`: continue a `budget_exhausted` run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunResumeRequest {
    /// New limits (usually raised); absent ones keep the run's current limits. The limit
    /// that stopped the run must be raised above what the run has used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RunBudget>,
}

/// What a run has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunUsage {
    /// Prompt plus completion tokens.
    pub tokens: u64,
    /// Cost in micro-dollars.
    pub cost_micros: u64,
    /// LLM requests.
    pub llm_calls: u64,
}

/// How far a run has come, from its last checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunProgress {
    /// Steps completed (each is a checkpoint).
    pub step: u64,
    /// The stage, e.g. `needs_spec`, `needs_plan`, `task`, `debugging`, `waiting_for_human`,
    /// `done`.
    pub phase: String,
    /// Tasks in the plan (0 before the tech lead planned).
    pub tasks_total: u32,
    /// Tasks done.
    pub tasks_done: u32,
    /// The task being worked on, from 1 ("task 2 of 5"), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task: Option<u32>,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task_title: Option<String>,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunResponse {
    /// The run's id.
    pub id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// Status.
    pub status: RunStatus,
    /// What it builds.
    pub description: String,
    /// The template asked for, if any (the architect's choice otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Interactive or auto.
    pub autonomy: RunAutonomy,
    /// The limits in effect.
    pub budget: RunBudget,
    /// Models asked for by role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelChoice>,
    /// The agent working now (`architect`, `code_writer`, ...), while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_agent: Option<String>,
    /// Progress at the last checkpoint; absent before the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
    /// Usage so far.
    pub usage: RunUsage,
    /// Why it failed or stopped, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When a worker first started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it stopped (`completed`, `failed`, `cancelled`, `budget_exhausted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// `GET /v1/projects/{project_id}/runs`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunListResponse {
    /// The runs.
    pub runs: Vec<RunResponse>,
}

/// Query of `GET /v1/projects/{project_id}/runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RunListQuery {
    /// How many runs, 1 to 100 (default 20), newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
}

/// A question a run asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuestionResponse {
    /// The question's id.
    pub id: Uuid,
    /// The run waiting on it.
    pub run_id: Uuid,
    /// The question.
    pub text: String,
    /// Suggested answers (any text is accepted).
    pub buttons: Vec<String>,
    /// What auto mode would answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_answer: Option<String>,
    /// The answer, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// When it was asked.
    pub asked_at: DateTime<Utc>,
    /// When it was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime<Utc>>,
}

/// `GET /v1/projects/{project_id}/runs/{run_id}/questions`: the pending questions, oldest
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuestionListResponse {
    /// The unanswered questions.
    pub questions: Vec<QuestionResponse>,
}

/// `POST /v1/projects/{project_id}/runs/{run_id}/questions/{question_id}/answer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The answer: one of the buttons or any text (at most 10 000 characters).
    pub answer: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_defaults() {
        let request: RunCreateRequest =
            serde_json::from_str(r#"{"description": "A todo app"}"#).unwrap();
        assert_eq!(request.autonomy, RunAutonomy::Interactive);
        assert_eq!(request.budget, None);
        assert!(request.models.is_empty());
        let unknown =
            serde_json::from_str::<RunCreateRequest>(r#"{"description": "x", "max_tokens": 5}"#);
        assert!(unknown.is_err(), "unknown fields are refused");
    }

    #[test]
    fn statuses_classify() {
        assert!(RunStatus::WaitingForHuman.is_active());
        assert!(!RunStatus::BudgetExhausted.is_active());
        assert!(!RunStatus::BudgetExhausted.is_final());
        assert!(RunStatus::Cancelled.is_final());
        assert_eq!(
            serde_json::to_value(RunStatus::BudgetExhausted).unwrap(),
            "budget_exhausted"
        );
    }

    #[test]
    fn budget_leaves_out_absent_limits() {
        let budget = RunBudget {
            tokens: Some(1000),
            ..RunBudget::default()
        };
        assert_eq!(
            serde_json::to_value(budget).unwrap(),
            serde_json::json!({"tokens": 1000})
        );
    }
}
