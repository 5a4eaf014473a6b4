//! What the API does to runs — start, cancel, resume, answer — shared by the HTTP routes and
//! the WebSocket.
//!
//! Ownership comes first everywhere: a run (or question) of someone else's project is answered
//! exactly like a missing one.

use http::StatusCode;
use samokoder_core::api::runs::{
    AnswerRequest, MAX_ANSWER_CHARS, MAX_RUN_DESCRIPTION_CHARS, QuestionResponse, RunCreateRequest,
    RunResponse, RunResumeRequest,
};
use samokoder_core::llm::{AgentRole, Budget, BudgetState, BudgetUsage, LlmError};
use samokoder_core::state::{MAIN_BRANCH, ModelSelection, RunOptions, RunOutcome, RunState};
use samokoder_store::{NewRun, Project, Run, RunStatus, StoreError, User};
use uuid::Uuid;

use super::{budget, byok, run_job, views};
use crate::error::ApiError;
use crate::observability::metrics;
use crate::quota;
use crate::state::AppState;
use crate::validation;

/// The longest model or provider name accepted in a run's model choices.
const MAX_MODEL_NAME_CHARS: usize = 200;

/// 404 for a run that does not exist or is not in the caller's project.
pub fn run_not_found() -> ApiError {
    ApiError::not_found("Run not found").with_code("run_not_found")
}

/// 404 for a question that does not exist or is not of the run.
pub fn question_not_found() -> ApiError {
    ApiError::not_found("Question not found").with_code("question_not_found")
}

/// Run `run_id` of `project`, or 404.
pub async fn project_run(
    state: &AppState,
    project: &Project,
    run_id: Uuid,
) -> Result<Run, ApiError> {
    match state.store().runs.get(run_id).await {
        Ok(run) if run.project_id == project.id => Ok(run),
        Ok(_) | Err(StoreError::NotFound { .. }) => Err(run_not_found()),
        Err(error) => Err(error.into()),
    }
}

/// The run as the API shows it, with its progress when the project's head is its checkpoint.
pub async fn response(state: &AppState, run: &Run) -> Result<RunResponse, ApiError> {
    let head = match state.store().states.head(run.project_id, MAIN_BRANCH).await {
        Ok(head) => head,
        Err(StoreError::NotFound { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    Ok(views::run(run, head.as_ref()))
}

/// The options of a new run, or the field errors of its template and model choices.
fn run_options(
    request: &RunCreateRequest,
    errors: &mut Vec<samokoder_core::api::FieldError>,
) -> RunOptions {
    let mut options = RunOptions::default();
    if let Some(template) = &request.template {
        let template = template.trim();
        if samokoder_core::templates::get(template).is_some() {
            options.template = Some(template.to_owned());
        } else {
            let known: Vec<&str> = samokoder_core::templates::list()
                .iter()
                .map(|t| t.id)
                .collect();
            errors.push(validation::field_error(
                "template",
                "unknown_template",
                format!("Must be one of: {}.", known.join(", ")),
            ));
        }
    }
    for (role, choice) in &request.models {
        let field = format!("models.{role}");
        if role != "default" && role.parse::<AgentRole>().is_err() {
            errors.push(validation::field_error(
                &field,
                "unknown_role",
                "Must be `default` or an agent role such as `architect` or `code_writer`.",
            ));
            continue;
        }
        let model = validation::single_line(
            &format!("{field}.model"),
            &choice.model,
            MAX_MODEL_NAME_CHARS,
        );
        let provider = choice
            .provider
            .as_deref()
            .map(|p| validation::single_line(&format!("{field}.provider"), p, MAX_MODEL_NAME_CHARS))
            .transpose();
        match (model, provider) {
            (Ok(model), Ok(provider)) => {
                options
                    .models
                    .insert(role.clone(), ModelSelection { provider, model });
            }
            (model, provider) => {
                errors.extend(model.err());
                errors.extend(provider.err());
            }
        }
    }
    options
}

/// An unusable route configuration as a refusal that says what is missing.
fn route_error(error: LlmError) -> ApiError {
    match error {
        LlmError::MissingKey { provider } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider_key_missing",
            format!(
                "No API key for the provider `{provider}`: add yours with POST /v1/keys (the deployment has none)"
            ),
        ),
        LlmError::Unpriced { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "model_unpriced",
            error.to_string(),
        ),
        LlmError::Transient { .. } => ApiError::service_unavailable(
            "storage_unavailable",
            "The service is temporarily unavailable; try again shortly",
        )
        .with_source(error),
        // Our own sentences about the configuration (an unknown provider in the model choices,
        // a base URL no longer allowed): safe to show.
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_model_choice",
            other.to_string(),
        ),
    }
}

/// 409 while the project has a run going.
fn project_busy() -> ApiError {
    ApiError::conflict(
        "run_active",
        "The project already has an active run; wait for it, answer it or cancel it",
    )
}

/// Starts a run: validation, the plan's budget maximum, keys for every provider it needs, and
/// then the run row and its job in one transaction (409 while another run is active).
pub async fn start(
    state: &AppState,
    user: &User,
    project: &Project,
    request: &RunCreateRequest,
) -> Result<Run, ApiError> {
    let mut errors = Vec::new();
    let description = match validation::text(
        "description",
        request.description.trim(),
        MAX_RUN_DESCRIPTION_CHARS,
    ) {
        Ok(text) if text.is_empty() => {
            errors.push(validation::field_error(
                "description",
                "blank",
                "Must not be blank.",
            ));
            None
        }
        Ok(text) => Some(text),
        Err(error) => {
            errors.push(error);
            None
        }
    };
    let options = run_options(request, &mut errors);
    let caps = quota::plan(quota::api_tier(user.tier)).max_run_budget;
    let limits = match budget::resolve(
        request.budget.as_ref(),
        &state.config().runs.default_budget,
        &caps,
    ) {
        Ok(limits) => Some(limits),
        Err(budget_errors) => {
            let over_plan = budget_errors.iter().any(|e| e.code == "above_plan_maximum");
            if errors.is_empty() && over_plan {
                return Err(ApiError::validation(budget_errors).with_code(budget::BUDGET_OVER_PLAN));
            }
            errors.extend(budget_errors);
            None
        }
    };
    let (Some(description), Some(limits)) = (description.filter(|_| errors.is_empty()), limits)
    else {
        return Err(ApiError::validation(errors));
    };
    byok::check_routes(state.store(), &state.llm().registry, user.id, &options)
        .await
        .map_err(route_error)?;

    let id = Uuid::now_v7();
    let new = NewRun {
        project_id: project.id,
        user_id: user.id,
        description,
        autonomy: request.autonomy.as_str().to_owned(),
        budget: serde_json::to_value(limits).map_err(ApiError::internal)?,
        options: serde_json::to_value(&options).map_err(ApiError::internal)?,
    };
    let job = run_job(id, state.config().workers.max_attempts);
    let (run, _) = state
        .store()
        .runs
        .start(id, &new, &job)
        .await
        .map_err(|error| match error {
            StoreError::Conflict { .. } => project_busy(),
            other => other.into(),
        })?;
    metrics::record_run_started();
    state.generation().announce_work();
    Ok(run)
}

/// Cancels a run that has not finished. A run being driven stops at once in this process and
/// at its worker's next heartbeat elsewhere (that worker publishes the final event); a run no
/// one drives gets its final event here (at once when queued or waiting, after a lease when
/// it was `running` without a live worker). Cancelling a cancelled run is not an error.
pub async fn cancel(state: &AppState, run: &Run) -> Result<Run, ApiError> {
    let mut current = run.clone();
    // The status may move between the read and the swap (a worker picking the run up): read
    // again and retry with the new one.
    for _ in 0..3 {
        match current.status {
            RunStatus::Cancelled => return Ok(current),
            RunStatus::Completed | RunStatus::Failed => {
                return Err(ApiError::conflict(
                    "run_finished",
                    format!("The run has already {}", current.status),
                ));
            }
            _ => {}
        }
        match state
            .store()
            .runs
            .transition(current.id, &[current.status], RunStatus::Cancelled, None)
            .await
        {
            Ok(cancelled) => {
                if current.status == RunStatus::Running {
                    // The drive publishes the final event when its token fires: here at once,
                    // in another process at its worker's next heartbeat. Should no worker
                    // drive the run (its last one died), the event is published once a lease
                    // has passed.
                    if !state.generation().cancels().cancel(current.id) {
                        let state = state.clone();
                        let run_id = current.id;
                        tokio::spawn(async move {
                            tokio::time::sleep(state.config().workers.lease()).await;
                            super::worker::ensure_final_event(&state, run_id).await;
                        });
                    }
                } else {
                    super::worker::append_final_event(state, current.id, RunOutcome::Cancelled)
                        .await;
                }
                tracing::info!(run = %current.id, "run cancelled");
                return Ok(cancelled);
            }
            Err(StoreError::Conflict { .. }) => {
                current = state.store().runs.get(current.id).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::conflict(
        "run_busy",
        "The run's status keeps changing; try again",
    ))
}

/// Continues a `budget_exhausted` run with (usually raised) limits: 409 `run_not_resumable`
/// for another status, 422 `budget_not_raised` when the limit that stopped it is still
/// reached, 409 `run_active` while another run of the project is active.
pub async fn resume(
    state: &AppState,
    user: &User,
    run: &Run,
    request: &RunResumeRequest,
) -> Result<Run, ApiError> {
    if run.status != RunStatus::BudgetExhausted {
        return Err(ApiError::conflict(
            "run_not_resumable",
            format!(
                "Only a run stopped by its budget can be resumed; this one is {}",
                run.status
            ),
        ));
    }
    let caps = quota::plan(quota::api_tier(user.tier)).max_run_budget;
    let limits = budget::raise(request.budget.as_ref(), &views::limits(run), &caps)
        .map_err(|errors| ApiError::validation(errors).with_code(budget::BUDGET_OVER_PLAN))?;
    if let Some(exhausted) = still_exhausted(state, run, limits).await? {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "budget_not_raised",
            format!("The new limits are still reached: {exhausted}; raise that limit"),
        ));
    }
    let budget = serde_json::to_value(limits).map_err(ApiError::internal)?;
    let job = run_job(run.id, state.config().workers.max_attempts);
    let (resumed, _) = state
        .store()
        .runs
        .requeue(run.id, &[RunStatus::BudgetExhausted], Some(&budget), &job)
        .await
        .map_err(|error| match error {
            StoreError::Conflict { .. } => project_busy(),
            other => other.into(),
        })?;
    state.generation().announce_work();
    Ok(resumed)
}

/// Which limit the run would hit at once with `limits`, from its last checkpoint's usage (or
/// its totals when it has none).
async fn still_exhausted(
    state: &AppState,
    run: &Run,
    limits: samokoder_core::llm::BudgetLimits,
) -> Result<Option<samokoder_core::llm::BudgetExhausted>, ApiError> {
    let head = match state.store().states.head(run.project_id, MAIN_BRANCH).await {
        Ok(head) => head,
        Err(StoreError::NotFound { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    let used = head
        .filter(|head| head.run_id == Some(run.id))
        .and_then(|head| serde_json::from_value::<RunState>(head.state).ok())
        .map(|run_state| run_state.budget.used)
        .unwrap_or_else(|| BudgetUsage {
            tokens: u64::try_from(run.total_tokens).unwrap_or(0),
            cost_micros: run.total_cost_micros,
            calls: u64::try_from(run.llm_calls).unwrap_or(0),
            wall_time_ms: 0,
        });
    let budget = Budget::restore(BudgetState { limits, used });
    Ok(budget.exhausted())
}

/// Answers a pending question of `run` and queues the run again.
///
/// Idempotent: the same answer again is a success with the same result; a different answer
/// to an answered question is 409 `question_already_answered`.
pub async fn answer(
    state: &AppState,
    run: &Run,
    question_id: Uuid,
    request: &AnswerRequest,
) -> Result<QuestionResponse, ApiError> {
    let question = match state.store().questions.get(question_id).await {
        Ok(question) if question.run_id == run.id => question,
        Ok(_) | Err(StoreError::NotFound { .. }) => return Err(question_not_found()),
        Err(error) => return Err(error.into()),
    };
    if question.answer.is_none() && views::status(run.status).is_final() {
        return Err(ApiError::conflict(
            "run_finished",
            format!("The run has {}; its questions no longer wait", run.status),
        ));
    }
    let text = validation::text("answer", &request.answer, MAX_ANSWER_CHARS)
        .map_err(|error| ApiError::validation(vec![error]))?;
    if text.trim().is_empty() {
        return Err(ApiError::validation(vec![validation::field_error(
            "answer",
            "blank",
            "Must not be blank.",
        )]));
    }
    let answered = match &question.answer {
        Some(existing) if *existing == text => question,
        Some(_) => return Err(already_answered()),
        None => match state.store().questions.answer(question_id, &text).await {
            Ok(answered) => answered,
            Err(StoreError::Conflict { .. }) => {
                // Someone answered between the read and the write: the same answer stands.
                let current = state.store().questions.get(question_id).await?;
                if current.answer.as_deref() != Some(text.as_str()) {
                    return Err(already_answered());
                }
                current
            }
            Err(error) => return Err(error.into()),
        },
    };
    // Queue the run to continue. While a worker still holds it (it is finishing the turn that
    // asked), the swap does not apply; that worker sees the answer and queues the run itself.
    // A run already `queued` is queued again too: its unfinished job absorbs the duplicate,
    // and one left without a job (its worker failed to queue it) gets one, so sending the
    // answer again always gets an answered run moving.
    let job = run_job(run.id, state.config().workers.max_attempts);
    match state
        .store()
        .runs
        .requeue(
            run.id,
            &[RunStatus::WaitingForHuman, RunStatus::Queued],
            None,
            &job,
        )
        .await
    {
        Ok(_) => state.generation().announce_work(),
        Err(StoreError::Conflict { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(views::question(&answered))
}

fn already_answered() -> ApiError {
    ApiError::conflict(
        "question_already_answered",
        "The question was already answered differently",
    )
}
