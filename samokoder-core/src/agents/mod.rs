//! The agents: one module per role. Each reads the run state (and the project's files) and
//! returns what it decided; none writes anything itself. The orchestrator in
//! [`crate::engine`] turns their answers into one checkpoint per step.
//!
//! Every structured answer is a `schemars::JsonSchema` type declared next to its agent (public,
//! so embedders scripting a fake model can see the shapes); prompts come from
//! [`crate::prompts`], one folder per role.
//!
//! | role | module | answer |
//! |---|---|---|
//! | spec writer | [`spec_writer`] | [`spec_writer::ClarifyingQuestions`], [`crate::state::Spec`] |
//! | architect | [`architect`] | [`architect::ArchitectureChoice`] |
//! | tech lead | [`tech_lead`] | [`tech_lead::PlanAnswer`] |
//! | developer | [`developer`] | [`developer::TaskPlan`] |
//! | code writer | [`code_writer`] | a fenced file, or SEARCH/REPLACE blocks ([`crate::workspace::edit`]) |
//! | executor | [`executor`] | [`executor::CommandVerdict`] (only when the exit code is ambiguous) |
//! | troubleshooter | [`troubleshooter`] | [`troubleshooter::FixPlan`] |
//! | technical writer | [`technical_writer`] | README in a fenced block |
//! | task completer | [`task_completer`] | [`task_completer::TaskCompletion`] |

pub mod architect;
pub mod code_writer;
pub mod developer;
pub mod executor;
pub mod spec_writer;
pub mod task_completer;
pub mod tech_lead;
pub mod technical_writer;
pub mod troubleshooter;

use serde::Serialize;
use serde_json::{Value, json};

use crate::engine::events::EventBus;
use crate::engine::files::ProjectFiles;
use crate::engine::{EngineConfig, SandboxInfo};
use crate::llm::{AgentRole, LlmCall, LlmError, LlmSession};
use crate::prompts::{PromptError, Prompts};
use crate::state::RunState;

/// Why an agent could not do its part.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The model could not be asked or kept answering unusably.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// A prompt did not render (a defect in our templates).
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The answer was well-formed but unusable, past every retry.
    #[error("{agent}: {message}")]
    Unusable {
        /// The agent.
        agent: AgentRole,
        /// Why.
        message: String,
    },
}

/// What every agent gets for one step.
pub(crate) struct AgentCtx<'a> {
    pub(crate) llm: LlmSession,
    pub(crate) prompts: &'a Prompts,
    pub(crate) state: &'a RunState,
    pub(crate) files: &'a ProjectFiles,
    pub(crate) sandbox: &'a SandboxInfo,
    pub(crate) events: &'a EventBus,
    pub(crate) config: &'a EngineConfig,
    pub(crate) step_key: &'a str,
}

impl AgentCtx<'_> {
    /// A call for `role` with its system prompt and one user message, labelled with the step.
    pub(crate) fn call(
        &self,
        role: AgentRole,
        folder: &str,
        template: &str,
        context: &impl Serialize,
    ) -> Result<LlmCall, AgentError> {
        let system = self
            .prompts
            .render(&format!("{folder}/system"), &json!({}))?;
        let user = self
            .prompts
            .render(&format!("{folder}/{template}"), context)?;
        Ok(LlmCall::new(role)
            .system(system)
            .user(user)
            .label(self.step_key))
    }

    /// The project part of every prompt's context: description, spec, architecture, sandbox.
    pub(crate) fn project(&self) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        map.insert("description".into(), json!(self.state.description));
        map.insert("spec".into(), json!(self.state.spec));
        map.insert("architecture".into(), json!(self.state.architecture));
        map.insert("sandbox".into(), self.sandbox_view());
        map
    }

    /// The sandbox as prompts describe it: the runner's facts and the tools probed there.
    pub(crate) fn sandbox_view(&self) -> Value {
        let mut sandbox = json!(self.sandbox);
        sandbox["tools"] = json!(self.state.tools);
        sandbox
    }

    /// The project's files for a prompt, within the configured budget.
    pub(crate) fn file_views(&self, exclude: Option<&str>) -> Value {
        json!(self.files.views(self.config.prompt_file_bytes, exclude))
    }
}

/// Merges extra entries into a context map.
pub(crate) fn with(mut base: serde_json::Map<String, Value>, extra: Value) -> Value {
    if let Value::Object(extra) = extra {
        base.extend(extra);
    }
    Value::Object(base)
}
