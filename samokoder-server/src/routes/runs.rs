//! `/v1/projects/{project_id}/runs/*`: start, list, inspect, cancel and resume generation
//! runs, and answer their questions. Someone else's project, run or question is 404.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::LOCATION;
use samokoder_core::api::ErrorBody;
use samokoder_core::api::runs::{
    AnswerRequest, DEFAULT_RUN_PAGE, MAX_RUN_PAGE, QuestionListResponse, QuestionResponse,
    RunCreateRequest, RunListQuery, RunListResponse, RunResponse, RunResumeRequest,
};
use samokoder_core::state::MAIN_BRANCH;
use samokoder_store::StoreError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::projects::owned_project;
use crate::error::ApiError;
use crate::extract::{CurrentUser, Json, OptionalJson, Path, Query};
use crate::generation::{control, views};
use crate::state::AppState;
use crate::validation;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_run, list_runs))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
        .routes(routes!(resume_run))
        .routes(routes!(list_questions))
        .routes(routes!(answer_question))
}

/// Start a run.
///
/// Queues a run that turns `description` into code on the project (202): a worker picks it
/// up, and its progress streams from `GET .../runs/{run_id}/events`. Unset budget limits take
/// the deployment's defaults; every limit is capped at the plan's maximum (422
/// `budget_over_plan` above it). The run uses your own provider keys (`/v1/keys`) over the
/// deployment's: when a provider it needs has neither, the answer is 422
/// `provider_key_missing` naming it; a model on the deployment's key that the deployment has
/// no price for is 422 `model_unpriced` (its cost could not be capped). A project runs one run
/// at a time (409 `run_active`).
#[utoipa::path(
    post,
    path = "/projects/{project_id}/runs",
    tag = "runs",
    operation_id = "start_run",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    request_body = RunCreateRequest,
    responses(
        (status = 202, description = "Queued; `Location` is the run", body = RunResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 409, description = "`run_active`: the project already has an active run", body = ErrorBody),
        (status = 422, description = "`validation_error`, `budget_over_plan`, `provider_key_missing` (which provider has no key), `model_unpriced` (a model on the deployment's key without a price) or `invalid_model_choice`", body = ErrorBody),
    )
)]
async fn start_run(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
    Json(request): Json<RunCreateRequest>,
) -> Result<Response, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    let run = control::start(&state, &current.user, &project, &request).await?;
    let location = format!("/v1/projects/{}/runs/{}", project.id, run.id);
    let body = views::run(&run, None);
    Ok((StatusCode::ACCEPTED, [(LOCATION, location)], Json(body)).into_response())
}

/// List runs.
///
/// The project's runs, newest first, at most `limit` (default 20, at most 100).
#[utoipa::path(
    get,
    path = "/projects/{project_id}/runs",
    tag = "runs",
    operation_id = "list_runs",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id"), RunListQuery),
    responses(
        (status = 200, description = "The runs", body = RunListResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
async fn list_runs(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
    Query(query): Query<RunListQuery>,
) -> Result<Json<RunListResponse>, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    let limit = query.limit.unwrap_or(DEFAULT_RUN_PAGE);
    if limit == 0 || limit > MAX_RUN_PAGE {
        return Err(ApiError::validation(vec![validation::field_error(
            "query.limit",
            "out_of_range",
            format!("Must be between 1 and {MAX_RUN_PAGE}."),
        )]));
    }
    let runs = state
        .store()
        .runs
        .list_for_project(project.id, limit)
        .await?;
    let head = match state.store().states.head(project.id, MAIN_BRANCH).await {
        Ok(head) => head,
        Err(StoreError::NotFound { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    Ok(Json(RunListResponse {
        runs: runs
            .iter()
            .map(|run| views::run(run, head.as_ref()))
            .collect(),
    }))
}

/// Get a run.
///
/// Status, the agent at work, progress (task i of n, from the last checkpoint), usage,
/// timestamps and, when it stopped without success, why.
#[utoipa::path(
    get,
    path = "/projects/{project_id}/runs/{run_id}",
    tag = "runs",
    operation_id = "get_run",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("project_id" = Uuid, Path, description = "The project's id"),
        ("run_id" = Uuid, Path, description = "The run's id"),
    ),
    responses(
        (status = 200, description = "The run", body = RunResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found` or `run_not_found`", body = ErrorBody),
    )
)]
async fn get_run(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((project_id, run_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<RunResponse>, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    let run = control::project_run(&state, &project, run_id).await?;
    Ok(Json(control::response(&state, &run).await?))
}

/// Cancel a run.
///
/// The run stops between steps (or within a model's answer) and ends `cancelled`; its event
/// stream ends with a `run_finished` event. Cancelling a cancelled run is not an error; a run
/// that completed or failed is 409 `run_finished`.
#[utoipa::path(
    post,
    path = "/projects/{project_id}/runs/{run_id}/cancel",
    tag = "runs",
    operation_id = "cancel_run",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("project_id" = Uuid, Path, description = "The project's id"),
        ("run_id" = Uuid, Path, description = "The run's id"),
    ),
    responses(
        (status = 200, description = "Cancelled", body = RunResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found` or `run_not_found`", body = ErrorBody),
        (status = 409, description = "`run_finished`: the run already completed or failed", body = ErrorBody),
    )
)]
async fn cancel_run(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((project_id, run_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<RunResponse>, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    let run = control::project_run(&state, &project, run_id).await?;
    let cancelled = control::cancel(&state, &run).await?;
    Ok(Json(control::response(&state, &cancelled).await?))
}

/// Resume a run stopped by its budget.
///
/// Queues a `budget_exhausted` run again (202) with the limits given (absent ones keep their
/// values; every limit is capped at the plan's maximum). The limit that stopped the run must be
/// raised above what it used (422 `budget_not_raised`). The run continues from its last
/// checkpoint; its events continue the same numbering.
#[utoipa::path(
    post,
    path = "/projects/{project_id}/runs/{run_id}/resume",
    tag = "runs",
    operation_id = "resume_run",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("project_id" = Uuid, Path, description = "The project's id"),
        ("run_id" = Uuid, Path, description = "The run's id"),
    ),
    request_body(content = Option<RunResumeRequest>, description = "New limits (optional)"),
    responses(
        (status = 202, description = "Queued again", body = RunResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found` or `run_not_found`", body = ErrorBody),
        (status = 409, description = "`run_not_resumable` (not stopped by its budget) or `run_active` (another run of the project is active)", body = ErrorBody),
        (status = 422, description = "`budget_not_raised`, `budget_over_plan` or `validation_error`", body = ErrorBody),
    )
)]
async fn resume_run(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((project_id, run_id)): Path<(Uuid, Uuid)>,
    OptionalJson(request): OptionalJson<RunResumeRequest>,
) -> Result<Response, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    let run = control::project_run(&state, &project, run_id).await?;
    let request = request.unwrap_or_default();
    let resumed = control::resume(&state, &current.user, &run, &request).await?;
    let body = control::response(&state, &resumed).await?;
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// List a run's pending questions.
///
/// The questions the run waits on, oldest first (empty when it waits on none, and once it
/// ended). Answer one with
/// `POST .../questions/{question_id}/answer` or over the WebSocket.
#[utoipa::path(
    get,
    path = "/projects/{project_id}/runs/{run_id}/questions",
    tag = "runs",
    operation_id = "list_questions",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("project_id" = Uuid, Path, description = "The project's id"),
        ("run_id" = Uuid, Path, description = "The run's id"),
    ),
    responses(
        (status = 200, description = "The pending questions", body = QuestionListResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found` or `run_not_found`", body = ErrorBody),
    )
)]
async fn list_questions(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((project_id, run_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<QuestionListResponse>, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    let run = control::project_run(&state, &project, run_id).await?;
    // A run that ended waits on nothing, whatever it asked before it ended.
    if views::status(run.status).is_final() {
        return Ok(Json(QuestionListResponse {
            questions: Vec::new(),
        }));
    }
    let pending = state.store().questions.pending(run.id).await?;
    Ok(Json(QuestionListResponse {
        questions: pending.iter().map(views::question).collect(),
    }))
}

/// Answer a question.
///
/// Stores the answer and queues the run to continue. Answering again with the same text is a
/// success with the same result; a different answer to an answered question is 409
/// `question_already_answered`.
#[utoipa::path(
    post,
    path = "/projects/{project_id}/runs/{run_id}/questions/{question_id}/answer",
    tag = "runs",
    operation_id = "answer_question",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("project_id" = Uuid, Path, description = "The project's id"),
        ("run_id" = Uuid, Path, description = "The run's id"),
        ("question_id" = Uuid, Path, description = "The question's id"),
    ),
    request_body = AnswerRequest,
    responses(
        (status = 200, description = "Answered", body = QuestionResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`, `run_not_found` or `question_not_found`", body = ErrorBody),
        (status = 409, description = "`question_already_answered` with another answer, or `run_finished`: the run ended without it", body = ErrorBody),
        (status = 422, description = "`validation_error`: a blank or over-long answer", body = ErrorBody),
    )
)]
async fn answer_question(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((project_id, run_id, question_id)): Path<(Uuid, Uuid, Uuid)>,
    Json(request): Json<AnswerRequest>,
) -> Result<Json<QuestionResponse>, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    let run = control::project_run(&state, &project, run_id).await?;
    Ok(Json(
        control::answer(&state, &run, question_id, &request).await?,
    ))
}
