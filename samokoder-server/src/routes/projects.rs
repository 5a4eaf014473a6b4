//! `/v1/projects/*`: the caller's projects. Someone else's project is answered exactly like a
//! missing one (404 `project_not_found`), so ids cannot be probed.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use samokoder_core::api::ErrorBody;
use samokoder_core::api::projects::{
    DEFAULT_PROJECT_PAGE, MAX_PROJECT_DESCRIPTION_CHARS, MAX_PROJECT_NAME_CHARS, MAX_PROJECT_PAGE,
    ProjectCreateRequest, ProjectDetailResponse, ProjectListQuery, ProjectListResponse,
    ProjectResponse, ProjectUpdateRequest,
};
use samokoder_store::{
    NewAnalyticsEvent, NewProject, Project, ProjectQuery, ProjectUpdate, StoreError,
};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{CurrentUser, Json, Path, Query};
use crate::quota;
use crate::state::AppState;
use crate::validation;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_project, list_projects))
        .routes(routes!(
            get_project,
            put_project,
            patch_project,
            delete_project
        ))
        .routes(routes!(archive_project))
        .routes(routes!(unarchive_project))
}

/// 404 for a project that does not exist or is not the caller's.
pub(crate) fn project_not_found() -> ApiError {
    ApiError::not_found("Project not found").with_code("project_not_found")
}

/// The caller's project `id`, or 404.
pub(crate) async fn owned_project(
    state: &AppState,
    current: &CurrentUser,
    id: Uuid,
) -> Result<Project, ApiError> {
    match state.store().projects.get_owned(current.id(), id).await {
        Ok(project) => Ok(project),
        Err(StoreError::NotFound { .. }) => Err(project_not_found()),
        Err(error) => Err(error.into()),
    }
}

fn response(project: Project) -> ProjectResponse {
    ProjectResponse {
        id: project.id,
        name: project.name,
        description: project.description,
        user_id: project.owner_id,
        archived: project.archived,
        created_at: project.created_at,
        updated_at: project.updated_at,
    }
}

fn detail(project: Project) -> Json<ProjectDetailResponse> {
    Json(ProjectDetailResponse {
        project: response(project),
    })
}

fn check_name(name: &str) -> Result<String, samokoder_core::api::FieldError> {
    validation::single_line("name", name, MAX_PROJECT_NAME_CHARS)
}

fn check_description(description: &str) -> Result<String, samokoder_core::api::FieldError> {
    validation::text("description", description, MAX_PROJECT_DESCRIPTION_CHARS)
}

/// Create a project.
///
/// The plan's project limits apply first (per calendar month and in total): 402
/// `quota_exceeded` names the limit that was reached. Names are 1 to 100 characters without
/// control characters (any words allowed).
#[utoipa::path(
    post,
    path = "/projects",
    tag = "projects",
    operation_id = "create_project",
    security(("bearer" = []), ("cookie" = [])),
    request_body = ProjectCreateRequest,
    responses(
        (status = 201, description = "Created", body = ProjectDetailResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 402, description = "`quota_exceeded`: the plan's monthly or total project limit is reached", body = ErrorBody),
        (status = 422, description = "`validation_error`: `name` or `description` is invalid", body = ErrorBody),
    )
)]
async fn create_project(
    State(state): State<AppState>,
    current: CurrentUser,
    Json(request): Json<ProjectCreateRequest>,
) -> Result<Response, ApiError> {
    quota::check_project_creation(state.store(), &current.user).await?;
    let mut errors = Vec::new();
    let name = check_name(&request.name).map_err(|e| errors.push(e)).ok();
    let description = match request.description.as_deref() {
        Some(text) => check_description(text).map_err(|e| errors.push(e)).ok(),
        None => None,
    };
    let Some(name) = name.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let project = state
        .store()
        .projects
        .create(&NewProject {
            owner_id: current.id(),
            name,
            description,
        })
        .await?;
    record_created(&state, &project).await;
    Ok((StatusCode::CREATED, detail(project)).into_response())
}

/// The server's own analytics event for a new project (the original recorded none).
async fn record_created(state: &AppState, project: &Project) {
    let event = NewAnalyticsEvent {
        user_id: Some(project.owner_id),
        name: "project_created".to_owned(),
        properties: json!({"project_id": project.id}),
        at: samokoder_store::now(),
    };
    if let Err(error) = state.store().analytics.record(&event).await {
        tracing::warn!(%error, "could not record the project_created event");
    }
}

/// List projects.
///
/// Newest first, `limit` per page (default 20, at most 100), continued with the previous
/// page's `next_cursor`. `q` filters by name (substring, any case); `archived=true` includes
/// archived projects.
#[utoipa::path(
    get,
    path = "/projects",
    tag = "projects",
    operation_id = "list_projects",
    security(("bearer" = []), ("cookie" = [])),
    params(ProjectListQuery),
    responses(
        (status = 200, description = "One page of projects", body = ProjectListResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`validation_error`: `limit` out of range, `q` too long, or a malformed `cursor`", body = ErrorBody),
    )
)]
async fn list_projects(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(query): Query<ProjectListQuery>,
) -> Result<Json<ProjectListResponse>, ApiError> {
    let mut errors = Vec::new();
    let limit = query.limit.unwrap_or(DEFAULT_PROJECT_PAGE);
    if limit == 0 || limit > MAX_PROJECT_PAGE {
        errors.push(validation::field_error(
            "query.limit",
            "out_of_range",
            format!("Must be between 1 and {MAX_PROJECT_PAGE}."),
        ));
    }
    let name_contains = match query.q.as_deref().map(str::trim) {
        Some("") | None => None,
        Some(q) => validation::single_line("query.q", q, MAX_PROJECT_NAME_CHARS)
            .map_err(|e| errors.push(e))
            .ok(),
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let page = state
        .store()
        .projects
        .list(&ProjectQuery {
            owner_id: current.id(),
            name_contains,
            include_archived: query.archived.unwrap_or(false),
            limit,
            cursor: query.cursor.clone(),
        })
        .await
        .map_err(|error| match error {
            StoreError::InvalidInput(_) => ApiError::validation(vec![validation::field_error(
                "query.cursor",
                "invalid_cursor",
                "Not a cursor this server issued.",
            )]),
            other => other.into(),
        })?;
    let counts = state
        .store()
        .projects
        .counts(current.id(), chrono::Utc::now())
        .await?;
    Ok(Json(ProjectListResponse {
        projects: page.items.into_iter().map(response).collect(),
        total: counts.total,
        next_cursor: page.next_cursor,
    }))
}

/// Get a project.
///
/// One of the caller's projects; someone else's project is 404 `project_not_found`, exactly
/// like a missing one.
#[utoipa::path(
    get,
    path = "/projects/{project_id}",
    tag = "projects",
    operation_id = "get_project",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The project", body = ProjectDetailResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`: no such project, or not the caller's", body = ErrorBody),
    )
)]
async fn get_project(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
) -> Result<Json<ProjectDetailResponse>, ApiError> {
    Ok(detail(owned_project(&state, &current, project_id).await?))
}

/// Applies a partial update after validating it.
async fn update(
    state: &AppState,
    current: &CurrentUser,
    project_id: Uuid,
    request: ProjectUpdateRequest,
) -> Result<Json<ProjectDetailResponse>, ApiError> {
    let project = owned_project(state, current, project_id).await?;
    if request.name.is_none() && request.description.is_none() {
        return Err(ApiError::bad_request(
            "no_update",
            "No update data provided",
        ));
    }
    let mut errors = Vec::new();
    let name = request
        .name
        .as_deref()
        .and_then(|name| check_name(name).map_err(|e| errors.push(e)).ok());
    let description = match request.description {
        Some(Some(text)) => check_description(&text)
            .map_err(|e| errors.push(e))
            .ok()
            .map(Some),
        Some(None) => Some(None),
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let updated = state
        .store()
        .projects
        .update(
            project.id,
            &ProjectUpdate {
                name,
                description,
                archived: None,
            },
        )
        .await
        .map_err(|error| match error {
            StoreError::NotFound { .. } => project_not_found(),
            other => other.into(),
        })?;
    Ok(detail(updated))
}

/// Update a project (partial).
///
/// `PUT` keeps the original API's semantics, which were those of a partial update: absent
/// fields stay as they are, `"description": null` removes the description, and a body with
/// neither field is 400 `No update data provided`. `PATCH` is the same operation.
#[utoipa::path(
    put,
    path = "/projects/{project_id}",
    tag = "projects",
    operation_id = "update_project",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    request_body = ProjectUpdateRequest,
    responses(
        (status = 200, description = "The updated project", body = ProjectDetailResponse),
        (status = 400, description = "`no_update`: neither `name` nor `description` given", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 422, description = "`validation_error`: `name` or `description` is invalid", body = ErrorBody),
    )
)]
async fn put_project(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
    Json(request): Json<ProjectUpdateRequest>,
) -> Result<Json<ProjectDetailResponse>, ApiError> {
    update(&state, &current, project_id, request).await
}

/// Update a project (partial).
///
/// Absent fields stay as they are; `"description": null` removes the description.
#[utoipa::path(
    patch,
    path = "/projects/{project_id}",
    tag = "projects",
    operation_id = "patch_project",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    request_body = ProjectUpdateRequest,
    responses(
        (status = 200, description = "The updated project", body = ProjectDetailResponse),
        (status = 400, description = "`no_update`: neither `name` nor `description` given", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 422, description = "`validation_error`: `name` or `description` is invalid", body = ErrorBody),
    )
)]
async fn patch_project(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
    Json(request): Json<ProjectUpdateRequest>,
) -> Result<Json<ProjectDetailResponse>, ApiError> {
    update(&state, &current, project_id, request).await
}

/// Delete a project with everything generated for it.
///
/// Runs, states, files and events of the project go with it. Someone else's project is 404
/// `project_not_found`.
#[utoipa::path(
    delete,
    path = "/projects/{project_id}",
    tag = "projects",
    operation_id = "delete_project",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
async fn delete_project(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    state
        .store()
        .projects
        .delete(project.id)
        .await
        .map_err(|error| match error {
            StoreError::NotFound { .. } => project_not_found(),
            other => other.into(),
        })?;
    // Its preview would otherwise run on (and count against the owner's limit) until it idles.
    state.generation().previews().stop(project.id).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_archived(
    state: &AppState,
    current: &CurrentUser,
    project_id: Uuid,
    archived: bool,
) -> Result<Json<ProjectDetailResponse>, ApiError> {
    let project = owned_project(state, current, project_id).await?;
    let updated = state
        .store()
        .projects
        .update(
            project.id,
            &ProjectUpdate {
                archived: Some(archived),
                ..ProjectUpdate::default()
            },
        )
        .await
        .map_err(|error| match error {
            StoreError::NotFound { .. } => project_not_found(),
            other => other.into(),
        })?;
    Ok(detail(updated))
}

/// Archive a project: hidden from the default listing, kept with everything in it.
///
/// `GET /v1/projects?archived=true` still lists it; unarchive brings it back.
#[utoipa::path(
    post,
    path = "/projects/{project_id}/archive",
    tag = "projects",
    operation_id = "archive_project",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "Archived (archiving twice is not an error)", body = ProjectDetailResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
async fn archive_project(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
) -> Result<Json<ProjectDetailResponse>, ApiError> {
    set_archived(&state, &current, project_id, true).await
}

/// Bring an archived project back.
///
/// The project shows in the default listing again. Unarchiving an active project is not an
/// error.
#[utoipa::path(
    post,
    path = "/projects/{project_id}/unarchive",
    tag = "projects",
    operation_id = "unarchive_project",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "Active again", body = ProjectDetailResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
async fn unarchive_project(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
) -> Result<Json<ProjectDetailResponse>, ApiError> {
    set_archived(&state, &current, project_id, false).await
}
