//! The architect: picks the stack and one of the runner's starter templates.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AgentCtx, AgentError, with};
use crate::engine::TemplateInfo;
use crate::llm::AgentRole;
use crate::state::{Architecture, Dependency};

/// The architect's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArchitectureChoice {
    /// How the app is built, in a paragraph.
    pub summary: String,
    /// The starter template's name, exactly as listed.
    pub template: String,
    /// The technologies.
    pub stack: Vec<String>,
    /// Packages needed beyond the template.
    pub dependencies: Vec<Dependency>,
}

/// Chooses the architecture among `templates`.
pub(crate) async fn choose(
    ctx: &AgentCtx<'_>,
    templates: &[TemplateInfo],
) -> Result<(Architecture, TemplateInfo), AgentError> {
    if templates.is_empty() {
        return Err(AgentError::Unusable {
            agent: AgentRole::Architect,
            message: "there is no starter template to choose from".into(),
        });
    }
    let call = ctx.call(
        AgentRole::Architect,
        "architect",
        "choose",
        &with(ctx.project(), json!({"templates": templates})),
    )?;
    let names: Vec<String> = templates.iter().map(|t| t.name.clone()).collect();
    let answer = ctx
        .llm
        .structured_validated::<ArchitectureChoice, _>(call, |a| {
            if names.iter().any(|n| n == a.template.trim()) {
                Ok(())
            } else {
                Err(format!(
                    "`template` must be one of {}; got {:?}",
                    names.join(", "),
                    a.template
                ))
            }
        })
        .await?
        .value;
    let template = templates
        .iter()
        .find(|t| t.name == answer.template.trim())
        .cloned()
        .ok_or_else(|| AgentError::Unusable {
            agent: AgentRole::Architect,
            message: format!("unknown template {:?}", answer.template),
        })?;
    Ok((
        Architecture {
            summary: answer.summary,
            template: template.name.clone(),
            stack: answer.stack,
            dependencies: answer.dependencies,
            test_command: template.test_command.clone(),
        },
        template,
    ))
}
