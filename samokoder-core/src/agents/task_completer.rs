//! The task completer: records what a verified task built.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AgentCtx, AgentError};
use crate::llm::AgentRole;
use crate::state::{StepAction, StepStatus};

/// The task completer's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCompletion {
    /// What was built and where, in one or two sentences.
    pub summary: String,
}

/// Summarises task `task`, given the passing verification's output.
pub(crate) async fn complete(
    ctx: &AgentCtx<'_>,
    task: usize,
    verification: &str,
) -> Result<String, AgentError> {
    let t = &ctx.state.tasks[task];
    let steps: Vec<String> = t
        .steps
        .iter()
        .map(|s| {
            let what = match &s.action {
                StepAction::WriteFile { path, .. } => format!("wrote {path}"),
                StepAction::RunCommand { argv, .. } => format!("ran `{}`", argv.join(" ")),
                StepAction::AskHuman { question, .. } => format!("asked: {question}"),
            };
            match (s.status, &s.note) {
                (StepStatus::Skipped, Some(note)) => format!("{what} (skipped: {note})"),
                (_, Some(note)) => format!("{what} ({note})"),
                _ => what,
            }
        })
        .collect();
    let call = ctx.call(
        AgentRole::TaskCompleter,
        "task_completer",
        "complete",
        &json!({
            "sandbox": ctx.sandbox_view(),
            "task": t,
            "task_number": task + 1,
            "steps": steps,
            "verification": verification,
        }),
    )?;
    let summary = ctx
        .llm
        .structured::<TaskCompletion>(call)
        .await?
        .value
        .summary;
    Ok(summary.trim().to_owned())
}
