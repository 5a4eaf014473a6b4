//! Stored runs, questions, states and events as the API shows them.

use std::collections::BTreeMap;

use samokoder_core::api::events::RunEvent as WireEvent;
use samokoder_core::api::files::StateResponse;
use samokoder_core::api::runs::{
    ModelChoice, QuestionResponse, RunAutonomy, RunProgress, RunResponse, RunStatus as WireStatus,
    RunUsage,
};
use samokoder_core::llm::BudgetLimits;
use samokoder_core::state::{Autonomy, Phase, RunOptions, RunState, TaskStatus};
use samokoder_store::{Question, Run, RunEvent, RunStatus, StateRecord};
use serde_json::Value;

use super::budget;

/// The wire status of a stored one.
pub fn status(status: RunStatus) -> WireStatus {
    match status {
        RunStatus::Queued => WireStatus::Queued,
        RunStatus::Running => WireStatus::Running,
        RunStatus::WaitingForHuman => WireStatus::WaitingForHuman,
        RunStatus::Completed => WireStatus::Completed,
        RunStatus::Failed => WireStatus::Failed,
        RunStatus::Cancelled => WireStatus::Cancelled,
        RunStatus::BudgetExhausted => WireStatus::BudgetExhausted,
    }
}

/// A run's stored budget limits (the engine's JSON; unreadable or absent means none).
pub fn limits(run: &Run) -> BudgetLimits {
    serde_json::from_value(run.budget.clone()).unwrap_or_default()
}

/// A run's stored options (the engine's JSON; unreadable or absent means none).
pub fn options(run: &Run) -> RunOptions {
    serde_json::from_value(run.options.clone()).unwrap_or_default()
}

fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The index of the task `phase` works on, looking through a question to where it resumes.
fn current_task(phase: &Phase) -> Option<usize> {
    match phase {
        Phase::Task { index, .. } => Some(*index),
        Phase::WaitingForHuman { resume, .. } => current_task(resume),
        _ => None,
    }
}

/// Progress from the run state of a checkpoint.
pub fn progress(state: &RunState) -> RunProgress {
    let phase = serde_json::to_value(&state.phase)
        .ok()
        .and_then(|value| {
            value
                .get("phase")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| state.phase.label());
    let current = current_task(&state.phase).filter(|index| *index < state.tasks.len());
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    RunProgress {
        step: state.step,
        phase,
        tasks_total: count(state.tasks.len()),
        tasks_done: count(
            state
                .tasks
                .iter()
                .filter(|task| task.status == TaskStatus::Done)
                .count(),
        ),
        current_task: current.map(|index| count(index + 1)),
        current_task_title: current.map(|index| state.tasks[index].title.clone()),
    }
}

/// The progress of `run` when `head` (the project's head state) is one of its checkpoints.
pub fn progress_at(run: &Run, head: Option<&StateRecord>) -> Option<RunProgress> {
    let head = head.filter(|head| head.run_id == Some(run.id))?;
    let state: RunState = serde_json::from_value(head.state.clone()).ok()?;
    // A rollback to another run's state starts this run over: that state is not its progress.
    (state.run_id == run.id).then(|| progress(&state))
}

/// A stored run as the API shows it.
pub fn run(run: &Run, head: Option<&StateRecord>) -> RunResponse {
    let options = options(run);
    RunResponse {
        id: run.id,
        project_id: run.project_id,
        status: status(run.status),
        description: run.description.clone(),
        template: options.template.clone(),
        autonomy: match Autonomy::parse(&run.autonomy) {
            Autonomy::Auto => RunAutonomy::Auto,
            Autonomy::Interactive => RunAutonomy::Interactive,
        },
        budget: budget::to_wire(&limits(run)),
        models: options
            .models
            .iter()
            .map(|(role, choice)| {
                (
                    role.clone(),
                    ModelChoice {
                        provider: choice.provider.clone(),
                        model: choice.model.clone(),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        current_agent: run.current_agent.clone(),
        progress: progress_at(run, head),
        usage: RunUsage {
            tokens: non_negative(run.total_tokens),
            cost_micros: non_negative(run.total_cost_micros),
            llm_calls: non_negative(run.llm_calls),
        },
        error: run.error.clone(),
        created_at: run.created_at,
        updated_at: run.updated_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
    }
}

/// The buttons of a stored question (the engine stores a list of strings).
fn buttons(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(text) => Some(text.clone()),
                other => other
                    .get("label")
                    .or_else(|| other.get("key"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A stored question as the API shows it.
pub fn question(question: &Question) -> QuestionResponse {
    QuestionResponse {
        id: question.id,
        run_id: question.run_id,
        text: question.text.clone(),
        buttons: buttons(&question.buttons),
        default_answer: question.default_answer.clone(),
        answer: question.answer.clone(),
        asked_at: question.asked_at,
        answered_at: question.answered_at,
    }
}

/// A stored state as the API shows it.
pub fn state(state: &StateRecord) -> StateResponse {
    StateResponse {
        id: state.id,
        sequence: state.sequence,
        parent_id: state.parent_id,
        run_id: state.run_id,
        label: state.step_label.clone(),
        created_at: state.created_at,
    }
}

/// A stored event as the API shows it.
pub fn event(event: RunEvent) -> WireEvent {
    WireEvent {
        run_id: event.run_id,
        seq: event.seq,
        kind: event.kind,
        at: event.at,
        data: event.payload,
    }
}

#[cfg(test)]
mod tests {
    use samokoder_core::llm::BudgetState;
    use samokoder_core::state::{Task, TaskStage};
    use uuid::Uuid;

    use super::*;

    fn task(title: &str, status: TaskStatus) -> Task {
        Task {
            epic: 0,
            title: title.into(),
            description: String::new(),
            definition_of_done: String::new(),
            test_command: Vec::new(),
            status,
            steps: Vec::new(),
            summary: None,
            fix_attempts: 0,
            verify_approved: false,
            verification: None,
        }
    }

    #[test]
    fn progress_says_which_task_of_how_many() {
        let mut state = RunState::new(Uuid::nil(), "app", BudgetState::default());
        assert_eq!(progress(&state).phase, "needs_spec");
        state.tasks = vec![
            task("one", TaskStatus::Done),
            task("two", TaskStatus::InProgress),
            task("three", TaskStatus::Todo),
        ];
        state.step = 7;
        state.phase = Phase::WaitingForHuman {
            question_id: Uuid::nil(),
            purpose: samokoder_core::state::QuestionPurpose::StepCap,
            resume: Box::new(Phase::Task {
                index: 1,
                stage: TaskStage::Planning,
            }),
        };
        let progress = progress(&state);
        assert_eq!(progress.phase, "waiting_for_human");
        assert_eq!(progress.tasks_total, 3);
        assert_eq!(progress.tasks_done, 1);
        assert_eq!(progress.current_task, Some(2));
        assert_eq!(progress.current_task_title.as_deref(), Some("two"));
        assert_eq!(progress.step, 7);
    }
}
