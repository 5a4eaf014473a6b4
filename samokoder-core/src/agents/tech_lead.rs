//! The tech lead: epics and tasks, each with a testable definition of done.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AgentCtx, AgentError, with};
use crate::llm::AgentRole;
use crate::state::{Epic, Task, TaskStatus};

/// The tech lead's plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanAnswer {
    /// The epics, in order.
    pub epics: Vec<PlannedEpic>,
}

/// One epic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedEpic {
    /// Title.
    pub title: String,
    /// What it delivers.
    pub description: String,
    /// Its tasks, in order.
    pub tasks: Vec<PlannedTask>,
}

/// One task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedTask {
    /// Title.
    pub title: String,
    /// What to build.
    pub description: String,
    /// The condition automated tests check.
    pub definition_of_done: String,
    /// The command proving it, when not the project's test command (argv).
    #[serde(default)]
    pub test_command: Option<Vec<String>>,
}

/// Plans the work.
pub(crate) async fn plan(ctx: &AgentCtx<'_>) -> Result<(Vec<Epic>, Vec<Task>), AgentError> {
    let default_test = ctx
        .state
        .architecture
        .as_ref()
        .map(|a| a.test_command.clone())
        .unwrap_or_default();
    let call = ctx.call(
        AgentRole::TechLead,
        "tech_lead",
        "plan",
        &with(
            ctx.project(),
            json!({"files": ctx.file_views(None), "test_command": default_test}),
        ),
    )?;
    let max = ctx.config.max_tasks;
    let mut sink = ctx.events.text_sink(AgentRole::TechLead);
    let answer = ctx
        .llm
        .structured_stream::<PlanAnswer>(call, &mut sink)
        .await?
        .value;
    let count: usize = answer.epics.iter().map(|e| e.tasks.len()).sum();
    if count == 0 || count > max {
        return Err(AgentError::Unusable {
            agent: AgentRole::TechLead,
            message: format!("the plan has {count} tasks; it needs 1 to {max}"),
        });
    }
    let mut epics = Vec::new();
    let mut tasks = Vec::new();
    for (index, epic) in answer.epics.into_iter().enumerate() {
        epics.push(Epic {
            title: epic.title,
            description: epic.description,
        });
        for task in epic.tasks {
            let test_command = match task.test_command {
                Some(argv) if !argv.is_empty() && argv.iter().all(|a| !a.is_empty()) => argv,
                _ => default_test.clone(),
            };
            tasks.push(Task {
                epic: index,
                title: task.title,
                description: task.description,
                definition_of_done: task.definition_of_done,
                test_command,
                status: TaskStatus::Todo,
                steps: Vec::new(),
                summary: None,
                fix_attempts: 0,
                verify_approved: false,
                verification: None,
            });
        }
    }
    Ok((epics, tasks))
}
