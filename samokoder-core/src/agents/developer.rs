//! The developer: plans a task as concrete steps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AgentCtx, AgentError, with};
use crate::llm::AgentRole;
use crate::state::{Step, StepAction, TaskStatus};
use crate::workspace::WorkspacePath;

/// The most steps one task may be planned with.
pub const MAX_STEPS_PER_TASK: usize = 30;
/// The time limit of a planned command when the developer gives none, in seconds.
pub const DEFAULT_COMMAND_TIMEOUT_SECS: u64 = 120;

/// The developer's plan for one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskPlan {
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlannedStep {
    /// Create or change one file.
    WriteFile {
        /// Path relative to the project root.
        path: String,
        /// Complete instructions for the code writer.
        instructions: String,
    },
    /// Run one command (no shell).
    RunCommand {
        /// The argument vector.
        argv: Vec<String>,
        /// Why it runs.
        purpose: String,
        /// Time limit in seconds.
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
    /// Ask a person to act or decide.
    AskHuman {
        /// The question.
        question: String,
        /// The answer assumed when nobody replies.
        default_answer: String,
    },
}

fn check(plan: &TaskPlan) -> Result<(), String> {
    if plan.steps.len() > MAX_STEPS_PER_TASK {
        return Err(format!(
            "{} steps is too many; plan at most {MAX_STEPS_PER_TASK}",
            plan.steps.len()
        ));
    }
    for (n, step) in plan.steps.iter().enumerate() {
        match step {
            PlannedStep::WriteFile { path, .. } => {
                WorkspacePath::new(path)
                    .map_err(|e| format!("step {}: path {path:?}: {e}", n + 1))?;
            }
            PlannedStep::RunCommand { argv, .. } => {
                if argv.is_empty() || argv[0].trim().is_empty() {
                    return Err(format!("step {}: `argv` must name a program", n + 1));
                }
            }
            PlannedStep::AskHuman { question, .. } => {
                if question.trim().is_empty() {
                    return Err(format!("step {}: the question is empty", n + 1));
                }
            }
        }
    }
    Ok(())
}

/// Plans task `index` of the run.
pub(crate) async fn plan_task(ctx: &AgentCtx<'_>, index: usize) -> Result<Vec<Step>, AgentError> {
    let task = &ctx.state.tasks[index];
    let done: Vec<_> = ctx
        .state
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Done)
        .map(|t| json!({"title": t.title, "summary": t.summary.clone().unwrap_or_default()}))
        .collect();
    let call = ctx.call(
        AgentRole::Developer,
        "developer",
        "plan_task",
        &with(
            ctx.project(),
            json!({
                "task": task,
                "task_number": index + 1,
                "task_count": ctx.state.tasks.len(),
                "done_tasks": done,
                "files": ctx.file_views(None),
            }),
        ),
    )?;
    let plan = ctx
        .llm
        .structured_validated::<TaskPlan, _>(call, check)
        .await?
        .value;
    Ok(plan
        .steps
        .into_iter()
        .map(|step| {
            Step::pending(match step {
                PlannedStep::WriteFile { path, instructions } => {
                    StepAction::WriteFile { path, instructions }
                }
                PlannedStep::RunCommand {
                    argv,
                    purpose,
                    timeout_secs,
                } => StepAction::RunCommand {
                    argv,
                    purpose,
                    timeout_secs: timeout_secs
                        .unwrap_or(DEFAULT_COMMAND_TIMEOUT_SECS)
                        .clamp(1, 3_600),
                },
                PlannedStep::AskHuman {
                    question,
                    default_answer,
                } => StepAction::AskHuman {
                    question,
                    default_answer,
                },
            })
        })
        .collect())
}
