//! Which provider, model and temperature serve each agent role.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{DEFAULT_MAX_CONCURRENCY, ModelLimits, Provider, ProviderHandle};

/// The agent roles that talk to models. Each can be routed to its own provider and model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentRole {
    /// Turns the description into a specification.
    SpecWriter,
    /// Picks the architecture and technologies.
    Architect,
    /// Plans epics and tasks.
    TechLead,
    /// Breaks a task into steps.
    Developer,
    /// Writes one file's new content.
    CodeWriter,
    /// Reviews a code writer's change.
    CodeReviewer,
    /// Decides about and interprets command runs.
    Executor,
    /// Reproduces and triages problems.
    Troubleshooter,
    /// Hunts a bug through logs.
    BugHunter,
    /// Proposes alternative solutions when stuck.
    ProblemSolver,
    /// Writes documentation.
    TechnicalWriter,
    /// Closes a task (summary, commit message).
    TaskCompleter,
    /// Asks the user about the app at the start.
    Frontend,
    /// Describes existing files for context selection.
    DescribeFiles,
    /// Imports an existing project.
    Importer,
}

impl AgentRole {
    /// Every role.
    pub const ALL: [AgentRole; 15] = [
        Self::SpecWriter,
        Self::Architect,
        Self::TechLead,
        Self::Developer,
        Self::CodeWriter,
        Self::CodeReviewer,
        Self::Executor,
        Self::Troubleshooter,
        Self::BugHunter,
        Self::ProblemSolver,
        Self::TechnicalWriter,
        Self::TaskCompleter,
        Self::Frontend,
        Self::DescribeFiles,
        Self::Importer,
    ];

    /// The snake_case name used in configuration and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SpecWriter => "spec_writer",
            Self::Architect => "architect",
            Self::TechLead => "tech_lead",
            Self::Developer => "developer",
            Self::CodeWriter => "code_writer",
            Self::CodeReviewer => "code_reviewer",
            Self::Executor => "executor",
            Self::Troubleshooter => "troubleshooter",
            Self::BugHunter => "bug_hunter",
            Self::ProblemSolver => "problem_solver",
            Self::TechnicalWriter => "technical_writer",
            Self::TaskCompleter => "task_completer",
            Self::Frontend => "frontend",
            Self::DescribeFiles => "describe_files",
            Self::Importer => "importer",
        }
    }

    /// The temperature a role uses unless configured: 0 where the answer must be exact (code,
    /// reviews, classification), higher where variety helps.
    pub fn default_temperature(self) -> f32 {
        match self {
            Self::CodeWriter | Self::CodeReviewer | Self::DescribeFiles | Self::Executor => 0.0,
            Self::ProblemSolver => 1.0,
            _ => 0.5,
        }
    }
}

impl fmt::Display for AgentRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown agent role `{s}`"))
    }
}

/// Where one role's requests go.
#[derive(Clone, Debug)]
pub struct Route {
    /// The provider.
    pub provider: ProviderHandle,
    /// The model.
    pub model: String,
    /// The temperature; `None` uses the role's default.
    pub temperature: Option<f32>,
    /// The default output limit of a request (`max_tokens`) when the call sets none.
    pub max_output_tokens: u32,
    /// The model's limits, for the context-window check.
    pub limits: ModelLimits,
}

/// The output limit requested when neither the call nor the route set one: long enough for a
/// whole source file, short of most models' maximum.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 8_192;

impl Route {
    /// A route to `model` on `provider`, with the model's catalogue limits.
    pub fn new(provider: ProviderHandle, model: impl Into<String>) -> Self {
        let model = model.into();
        let limits = ModelLimits::lookup(&model);
        let max_output_tokens = u32::try_from(limits.max_output_tokens)
            .unwrap_or(u32::MAX)
            .min(DEFAULT_MAX_OUTPUT_TOKENS);
        Self {
            provider,
            model,
            temperature: None,
            max_output_tokens,
            limits,
        }
    }

    /// A route to `model` on a bare provider with the default concurrency bound.
    pub fn to(provider: Arc<dyn Provider>, model: impl Into<String>) -> Self {
        Self::new(
            ProviderHandle::new(provider, DEFAULT_MAX_CONCURRENCY),
            model,
        )
    }

    /// Sets the temperature.
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the default output limit.
    pub fn max_output_tokens(mut self, tokens: u32) -> Self {
        self.max_output_tokens = tokens;
        self
    }

    /// Overrides the model's limits.
    pub fn limits(mut self, limits: ModelLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// The routes of one run: a default and per-role overrides.
///
/// ```
/// use std::sync::Arc;
/// use samokoder_core::llm::{AgentRole, OpenAiProvider, Route, RouteTable};
///
/// let openai = Arc::new(OpenAiProvider::new("openai", "https://api.openai.com/v1", None).unwrap());
/// let routes = RouteTable::new(Route::to(openai.clone(), "gpt-4o-mini"))
///     .with(AgentRole::Architect, Route::to(openai, "gpt-4.1").temperature(0.2));
/// assert_eq!(routes.route(AgentRole::Architect).model, "gpt-4.1");
/// assert_eq!(routes.route(AgentRole::CodeWriter).model, "gpt-4o-mini");
/// ```
#[derive(Clone, Debug)]
pub struct RouteTable {
    default: Route,
    roles: HashMap<AgentRole, Route>,
}

impl RouteTable {
    /// Every role goes to `default`.
    pub fn new(default: Route) -> Self {
        Self {
            default,
            roles: HashMap::new(),
        }
    }

    /// Routes `role` to `route`.
    pub fn with(mut self, role: AgentRole, route: Route) -> Self {
        self.roles.insert(role, route);
        self
    }

    /// The route of `role`.
    pub fn route(&self, role: AgentRole) -> &Route {
        self.roles.get(&role).unwrap_or(&self.default)
    }

    /// The default route.
    pub fn default_route(&self) -> &Route {
        &self.default
    }
}
