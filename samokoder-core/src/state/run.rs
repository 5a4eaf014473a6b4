//! The typed run state: what a run has produced so far and what happens next.
//!
//! "What happens next" is [`Phase`], an enum the orchestrator matches on; everything an agent
//! produced (spec, architecture, plan, task steps) is typed data beside it. The whole
//! [`RunState`] is what a checkpoint stores (as JSON), so it holds nothing that cannot be
//! serialised and nothing that depends on the process (no handles, no clocks).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::llm::BudgetState;

use super::event::Outbox;

/// The version of the [`RunState`] JSON layout, stored with every checkpoint so a future layout
/// change can recognise (and migrate or refuse) old checkpoints.
pub const RUN_STATE_VERSION: u32 = 1;

/// Everything the engine knows about a run at a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Layout version ([`RUN_STATE_VERSION`]).
    pub version: u32,
    /// The run this state belongs to.
    pub run_id: Uuid,
    /// How many steps (checkpoints) the run has completed.
    pub step: u64,
    /// What happens next.
    pub phase: Phase,
    /// The user's description of the app, as given.
    pub description: String,
    /// Whether the spec writer has asked its clarifying questions (possibly none).
    #[serde(default)]
    pub clarified: bool,
    /// Clarifying questions the spec writer asked, with their answers.
    pub clarifications: Vec<Clarification>,
    /// The written specification, once there is one.
    pub spec: Option<Spec>,
    /// The architecture, once chosen.
    pub architecture: Option<Architecture>,
    /// The tools the sandbox has, as probed when the architecture was chosen (every role's
    /// prompt states them).
    #[serde(default)]
    pub tools: Vec<Tool>,
    /// The epics of the plan, in order.
    pub epics: Vec<Epic>,
    /// The tasks of all epics, in execution order.
    pub tasks: Vec<Task>,
    /// The run's budget (limits and usage) as of this checkpoint.
    pub budget: BudgetState,
    /// The guards' memory: repeated failures, the step allowance.
    pub guard: GuardState,
    /// The last command failure, for the troubleshooter.
    pub last_failure: Option<CommandFailure>,
    /// Events to publish once this checkpoint is stored (see [`Outbox`]).
    pub outbox: Outbox,
}

impl RunState {
    /// The state of a run that has done nothing yet.
    pub fn new(run_id: Uuid, description: impl Into<String>, budget: BudgetState) -> Self {
        Self {
            version: RUN_STATE_VERSION,
            run_id,
            step: 0,
            phase: Phase::NeedsSpec,
            description: description.into(),
            clarified: false,
            clarifications: Vec::new(),
            spec: None,
            architecture: None,
            tools: Vec::new(),
            epics: Vec::new(),
            tasks: Vec::new(),
            budget,
            guard: GuardState::default(),
            last_failure: None,
            outbox: Outbox::default(),
        }
    }

    /// The task at `index`.
    pub fn task(&self, index: usize) -> Option<&Task> {
        self.tasks.get(index)
    }
}

/// What the orchestrator does next: one `match` on this picks the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The spec writer asks clarifying questions (once) and then writes the spec.
    NeedsSpec,
    /// The architect picks the stack and the starter template, which is applied.
    NeedsArchitecture,
    /// The tech lead splits the spec into epics and tasks.
    NeedsPlan,
    /// Working on task `index`.
    Task {
        /// The task's index in [`RunState::tasks`].
        index: usize,
        /// Where in the task.
        stage: TaskStage,
    },
    /// The technical writer writes the README.
    NeedsReadme,
    /// Stopped on a question; the answer decides how to continue.
    WaitingForHuman {
        /// The persisted question.
        question_id: Uuid,
        /// What the answer is for.
        purpose: QuestionPurpose,
        /// Where to continue once the answer is applied.
        resume: Box<Phase>,
    },
    /// The run finished successfully.
    Done,
    /// The run ended without success, for a reason a person can read.
    Failed {
        /// Why.
        reason: String,
    },
}

impl Phase {
    /// A short label for logs, events and checkpoint names.
    pub fn label(&self) -> String {
        match self {
            Self::NeedsSpec => "spec".into(),
            Self::NeedsArchitecture => "architecture".into(),
            Self::NeedsPlan => "plan".into(),
            Self::Task { index, stage } => format!("task {}: {}", index + 1, stage.label()),
            Self::NeedsReadme => "readme".into(),
            Self::WaitingForHuman { .. } => "waiting for human".into(),
            Self::Done => "done".into(),
            Self::Failed { .. } => "failed".into(),
        }
    }
}

/// Where a task is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum TaskStage {
    /// The developer plans the task as steps.
    Planning,
    /// Carrying out planned step `step` (consecutive file steps run together).
    Step {
        /// Index into [`Task::steps`].
        step: usize,
    },
    /// The executor runs the task's definition-of-done command.
    Verifying,
    /// The troubleshooter reads the failure and fixes files; then `retry` runs again.
    Debugging {
        /// 1 for the first fix of this task.
        attempt: u32,
        /// What to run again after the fix.
        retry: Retry,
    },
    /// The task completer closes the task.
    Completing,
}

impl TaskStage {
    /// A short label.
    pub fn label(&self) -> String {
        match self {
            Self::Planning => "planning".into(),
            Self::Step { step } => format!("step {}", step + 1),
            Self::Verifying => "verifying".into(),
            Self::Debugging { attempt, .. } => format!("debugging (attempt {attempt})"),
            Self::Completing => "completing".into(),
        }
    }
}

/// What a debugging round re-runs once its fix is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "retry", rename_all = "snake_case")]
pub enum Retry {
    /// The failed command step.
    Step {
        /// Index into [`Task::steps`].
        step: usize,
    },
    /// The task's verification command.
    Verify,
}

/// What a question to the human is for: decides how its answer changes the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "purpose", rename_all = "snake_case")]
pub enum QuestionPurpose {
    /// A clarifying question of the spec writer ([`RunState::clarifications`] index).
    Clarification {
        /// Index into [`RunState::clarifications`].
        index: usize,
    },
    /// A step the developer planned for the human (set up a key, confirm something).
    HumanStep {
        /// The task.
        task: usize,
        /// The step.
        step: usize,
    },
    /// A command the runner's policy wants a person to approve.
    ApproveCommand {
        /// The task.
        task: usize,
        /// The step, or `None` for the task's verification command.
        step: Option<usize>,
    },
    /// The loop detector saw the same failure too often.
    LoopDetected {
        /// The normalised failure that repeated.
        signature: String,
    },
    /// The run reached its step allowance.
    StepCap,
}

/// A clarifying question and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clarification {
    /// The question.
    pub question: String,
    /// Suggested answers (shown as buttons).
    pub options: Vec<String>,
    /// The answer used when nobody answers (auto mode).
    pub default_answer: String,
    /// The answer, once given.
    pub answer: Option<String>,
}

/// How hard the app is: decides how finely the tech lead plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    /// One or two tasks.
    Simple,
    /// A handful of tasks.
    Moderate,
    /// Several epics.
    Hard,
}

/// The written specification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Spec {
    /// What the app is and who it is for, in a paragraph.
    pub summary: String,
    /// The features, one sentence each.
    pub features: Vec<String>,
    /// Constraints and non-goals.
    pub constraints: Vec<String>,
    /// How hard it is.
    pub complexity: Complexity,
}

/// The chosen architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    /// How the app is built, in a paragraph.
    pub summary: String,
    /// The starter template it starts from.
    pub template: String,
    /// The technologies.
    pub stack: Vec<String>,
    /// Packages it needs beyond the template.
    pub dependencies: Vec<Dependency>,
    /// The command that runs the app's tests (from the template).
    pub test_command: Vec<String>,
}

/// A package the app needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Dependency {
    /// Package name.
    pub name: String,
    /// Why it is needed.
    pub purpose: String,
}

/// A tool found in the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// Its command, e.g. `node`.
    pub name: String,
    /// What `--version` printed, e.g. `v20.19.2`.
    pub version: String,
}

/// A group of tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epic {
    /// Title.
    pub title: String,
    /// What it delivers.
    pub description: String,
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started.
    Todo,
    /// Being worked on.
    InProgress,
    /// Verified and closed.
    Done,
}

/// One task of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Index of its epic in [`RunState::epics`].
    pub epic: usize,
    /// Title.
    pub title: String,
    /// What to build.
    pub description: String,
    /// The testable condition that makes it done.
    pub definition_of_done: String,
    /// The command whose success proves the definition of done (argv).
    pub test_command: Vec<String>,
    /// Status.
    pub status: TaskStatus,
    /// The developer's steps, once planned.
    pub steps: Vec<Step>,
    /// The task completer's summary, once done.
    pub summary: Option<String>,
    /// Fixes the troubleshooter has made for this task so far.
    #[serde(default)]
    pub fix_attempts: u32,
    /// A person approved running the verification command (policy `AskHuman`).
    #[serde(default)]
    pub verify_approved: bool,
    /// The end of the passing verification's output, once verified.
    #[serde(default)]
    pub verification: Option<String>,
}

/// One planned step of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// What to do.
    pub action: StepAction,
    /// Where it is.
    pub status: StepStatus,
    /// What happened (command verdict, human answer, skip reason).
    pub note: Option<String>,
    /// A person approved running this command (policy `AskHuman`).
    #[serde(default)]
    pub approved: bool,
}

impl Step {
    /// A pending step.
    pub fn pending(action: StepAction) -> Self {
        Self {
            action,
            status: StepStatus::Pending,
            note: None,
            approved: false,
        }
    }
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepAction {
    /// Create or change one file.
    WriteFile {
        /// Workspace-relative path.
        path: String,
        /// What the file must contain or how it must change.
        instructions: String,
    },
    /// Run one command in the sandbox.
    RunCommand {
        /// The argument vector (no shell).
        argv: Vec<String>,
        /// Why.
        purpose: String,
        /// Time limit in seconds.
        timeout_secs: u64,
    },
    /// Ask the human to do or decide something.
    AskHuman {
        /// What to ask.
        question: String,
        /// The answer used in auto mode.
        default_answer: String,
    },
}

/// Where a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not done yet.
    Pending,
    /// Done.
    Done,
    /// Not done on purpose (denied command, human said skip).
    Skipped,
}

/// A command that failed, as the troubleshooter sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandFailure {
    /// The command.
    pub argv: Vec<String>,
    /// Its exit code (`None` when killed).
    pub exit_code: Option<i32>,
    /// Whether it ran out of time.
    pub timed_out: bool,
    /// The tail of its output (stdout then stderr).
    pub output: String,
    /// The executor's reading of it.
    pub analysis: String,
}

/// The guards' memory, kept in the checkpoint so a resumed run remembers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardState {
    /// Normalised failure signatures and how often each was seen, in first-seen order.
    pub failures: Vec<FailureCount>,
    /// Where the step cap counts from: a person who lets a capped run continue moves it to the
    /// current step, so the run gets the configured number of steps again.
    pub extra_steps: u64,
}

/// How often one normalised failure was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    /// The normalised failure.
    pub signature: String,
    /// How many times.
    pub count: u32,
}
