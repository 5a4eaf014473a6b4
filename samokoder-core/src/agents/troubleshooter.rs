//! The troubleshooter: reads a failure and the code, and says which files to change and how.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AgentCtx, AgentError, with};
use crate::llm::AgentRole;
use crate::state::CommandFailure;
use crate::workspace::WorkspacePath;

/// The most files one fix may change.
pub const MAX_FIX_FILES: usize = 10;

/// The troubleshooter's fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FixPlan {
    /// The cause, in a few sentences.
    pub diagnosis: String,
    /// The files to change.
    pub changes: Vec<FileFix>,
}

/// One file to change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileFix {
    /// Path relative to the project root.
    pub path: String,
    /// Complete instructions for the code writer.
    pub instructions: String,
}

fn check(plan: &FixPlan) -> Result<(), String> {
    if plan.changes.is_empty() {
        return Err("a fix must change at least one file".into());
    }
    if plan.changes.len() > MAX_FIX_FILES {
        return Err(format!("change at most {MAX_FIX_FILES} files"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for change in &plan.changes {
        WorkspacePath::new(&change.path).map_err(|e| format!("path {:?}: {e}", change.path))?;
        if !seen.insert(change.path.as_str()) {
            return Err(format!(
                "{} is listed twice; merge its instructions",
                change.path
            ));
        }
    }
    Ok(())
}

/// Diagnoses `failure` of task `task` (fix number `attempt`).
pub(crate) async fn diagnose(
    ctx: &AgentCtx<'_>,
    task: usize,
    failure: &CommandFailure,
    attempt: u32,
) -> Result<FixPlan, AgentError> {
    let call = ctx.call(
        AgentRole::Troubleshooter,
        "troubleshooter",
        "diagnose",
        &with(
            ctx.project(),
            json!({
                "task": ctx.state.tasks[task],
                "failure": failure,
                "attempt": attempt,
                "files": ctx.file_views(None),
            }),
        ),
    )?;
    Ok(ctx
        .llm
        .structured_validated::<FixPlan, _>(call, check)
        .await?
        .value)
}
