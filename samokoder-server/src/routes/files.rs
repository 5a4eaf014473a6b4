//! `/v1/projects/{project_id}/files`, `/states` and `/export` (`/archive`): what runs
//! generated, at the latest or any earlier state; rollback; a zip of the tree.
//!
//! Paths in requests are checked with [`WorkspacePath`] and looked up in the store; no
//! filesystem path is ever built from a request.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, ETAG};
use samokoder_core::api::ErrorBody;
use samokoder_core::api::files::{
    DEFAULT_STATE_PAGE, FileEntry, FileTreeResponse, MAX_STATE_PAGE, RollbackResponse,
    StateListQuery, StateListResponse, StateQuery,
};
use samokoder_core::state::MAIN_BRANCH;
use samokoder_core::workspace::{
    ExportOptions, MemoryBlobs, Snapshot, WorkspacePath, export_zip_bytes,
};
use samokoder_store::{Project, QuotaKind, StateRecord, StoreError};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::projects::owned_project;
use crate::error::ApiError;
use crate::extract::{CurrentUser, Json, Path, Query};
use crate::generation::views;
use crate::quota;
use crate::state::AppState;
use crate::validation;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_files))
        .routes(routes!(get_file))
        .routes(routes!(list_states))
        .routes(routes!(rollback_state))
        .routes(routes!(export_project))
        .routes(routes!(archive_project))
}

/// Raw bytes in a response (a file's content, a zip archive), for the OpenAPI document.
pub(crate) struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

fn state_not_found() -> ApiError {
    ApiError::not_found("State not found").with_code("state_not_found")
}

/// The project's head state, if it has any.
async fn head(state: &AppState, project: &Project) -> Result<Option<StateRecord>, ApiError> {
    match state.store().states.head(project.id, MAIN_BRANCH).await {
        Ok(head) => Ok(head),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The state `?state=` names (404 unless it is the project's), or the head.
async fn chosen_state(
    state: &AppState,
    project: &Project,
    wanted: Option<Uuid>,
) -> Result<Option<StateRecord>, ApiError> {
    match wanted {
        None => head(state, project).await,
        Some(id) => match state.store().states.get(id).await {
            Ok(record) if record.project_id == project.id => Ok(Some(record)),
            Ok(_) | Err(StoreError::NotFound { .. }) => Err(state_not_found()),
            Err(error) => Err(error.into()),
        },
    }
}

/// List the files.
///
/// The file tree of the latest state, or of `?state=`: each file's path and content hash.
/// A project without a state yet has an empty tree.
#[utoipa::path(
    get,
    path = "/projects/{project_id}/files",
    tag = "files",
    operation_id = "list_files",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id"), StateQuery),
    responses(
        (status = 200, description = "The tree", body = FileTreeResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found` or `state_not_found`", body = ErrorBody),
    )
)]
async fn list_files(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
    Query(query): Query<StateQuery>,
) -> Result<Json<FileTreeResponse>, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    let Some(record) = chosen_state(&state, &project, query.state).await? else {
        return Ok(Json(FileTreeResponse {
            state_id: None,
            sequence: None,
            files: Vec::new(),
        }));
    };
    let files = state.store().states.files(record.id).await?;
    Ok(Json(FileTreeResponse {
        state_id: Some(record.id),
        sequence: Some(record.sequence),
        files: files
            .into_iter()
            .map(|(path, sha256)| FileEntry { path, sha256 })
            .collect(),
    }))
}

/// A content type for a file, by its extension. Markup that a browser would render (HTML,
/// SVG, XML) is served as plain text: generated code must not run on the API's origin.
fn content_type(path: &WorkspacePath, content: &[u8]) -> &'static str {
    let extension = path
        .as_str()
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    let text = std::str::from_utf8(content).is_ok();
    match extension.as_str() {
        "js" | "mjs" | "cjs" if text => "text/javascript; charset=utf-8",
        "json" if text => "application/json",
        "css" if text => "text/css; charset=utf-8",
        "md" | "markdown" if text => "text/markdown; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "wasm" => "application/wasm",
        _ if text => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Get a file.
///
/// The raw content of `path` at the latest state (or `?state=`), with a content type by its
/// extension (markup is served as plain text, never rendered) and its hash as `ETag`. `path`
/// is workspace-relative and may contain `/`.
#[utoipa::path(
    get,
    path = "/projects/{project_id}/files/{*path}",
    tag = "files",
    operation_id = "get_file",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("project_id" = Uuid, Path, description = "The project's id"),
        ("path" = String, Path, description = "The file's workspace-relative path, e.g. `src/app.js`"),
        StateQuery,
    ),
    responses(
        (status = 200, description = "The content", body = Binary, content_type = "application/octet-stream"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`, `state_not_found` or `file_not_found`", body = ErrorBody),
        (status = 422, description = "`validation_error`: not a valid workspace path", body = ErrorBody),
    )
)]
async fn get_file(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((project_id, path)): Path<(Uuid, String)>,
    Query(query): Query<StateQuery>,
) -> Result<Response, ApiError> {
    let path = WorkspacePath::new(&path).map_err(|error| {
        ApiError::validation(vec![validation::field_error(
            "path",
            "invalid_path",
            format!("Not a workspace path: {error}."),
        )])
    })?;
    let project = owned_project(&state, &current, project_id).await?;
    let file_not_found = || ApiError::not_found("File not found").with_code("file_not_found");
    let record = chosen_state(&state, &project, query.state)
        .await?
        .ok_or_else(file_not_found)?;
    let content = state
        .store()
        .files
        .read_file(record.id, path.as_str())
        .await?
        .ok_or_else(file_not_found)?;
    let etag = format!("\"{}\"", samokoder_store::blob_hash(&content));
    Ok((
        [
            (CONTENT_TYPE, content_type(&path, &content).to_owned()),
            (ETAG, etag),
            (CACHE_CONTROL, "private, no-cache".to_owned()),
        ],
        content,
    )
        .into_response())
}

/// List the states.
///
/// The project's history, newest first: every completed step of its runs, and every rollback.
/// Page with `limit` (default 100, at most 1000) and the previous page's `next_before`.
#[utoipa::path(
    get,
    path = "/projects/{project_id}/states",
    tag = "files",
    operation_id = "list_states",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id"), StateListQuery),
    responses(
        (status = 200, description = "One page of states", body = StateListResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
async fn list_states(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
    Query(query): Query<StateListQuery>,
) -> Result<Json<StateListResponse>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_STATE_PAGE);
    let mut errors = Vec::new();
    if limit == 0 || limit > MAX_STATE_PAGE {
        errors.push(validation::field_error(
            "query.limit",
            "out_of_range",
            format!("Must be between 1 and {MAX_STATE_PAGE}."),
        ));
    }
    if query.before.is_some_and(|before| before < 1) {
        errors.push(validation::field_error(
            "query.before",
            "out_of_range",
            "Must be at least 1.",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let project = owned_project(&state, &current, project_id).await?;
    let Some(head) = head(&state, &project).await? else {
        return Ok(Json(StateListResponse {
            head: None,
            states: Vec::new(),
            next_before: None,
        }));
    };
    let before = query
        .before
        .unwrap_or(head.sequence + 1)
        .min(head.sequence + 1);
    let from = (before - i64::from(limit)).max(1);
    let mut states: Vec<_> = state
        .store()
        .states
        .history(head.id, from)
        .await?
        .into_iter()
        .filter(|record| record.sequence < before)
        .collect();
    states.reverse();
    let next_before = states
        .last()
        .filter(|oldest| oldest.sequence > 1)
        .map(|oldest| oldest.sequence);
    Ok(Json(StateListResponse {
        head: Some(head.id),
        states: states.iter().map(views::state).collect(),
        next_before,
    }))
}

/// Roll back to a state.
///
/// Makes a new head whose files equal those of `state_id` (history is kept: the states after
/// it remain listed and can be rolled back to in turn). Not while a run is active (409
/// `run_active`). A run stopped by its budget whose state this is continues from it when
/// resumed; a new run starts from these files.
#[utoipa::path(
    post,
    path = "/projects/{project_id}/states/{state_id}/rollback",
    tag = "files",
    operation_id = "rollback_state",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("project_id" = Uuid, Path, description = "The project's id"),
        ("state_id" = Uuid, Path, description = "The state to go back to"),
    ),
    responses(
        (status = 201, description = "The new head", body = RollbackResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found` or `state_not_found`", body = ErrorBody),
        (status = 409, description = "`run_active`: a run is working on the project (or just moved its head)", body = ErrorBody),
    )
)]
async fn rollback_state(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((project_id, state_id)): Path<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    let Some(target) = chosen_state(&state, &project, Some(state_id)).await? else {
        return Err(state_not_found());
    };
    let busy = || {
        ApiError::conflict(
            "run_active",
            "A run is working on the project; wait for it or cancel it first",
        )
    };
    let runs = state.store().runs.list_for_project(project.id, 1).await?;
    let Some(latest) = runs.first() else {
        // States exist only through runs, so this is a project whose runs were removed.
        return Err(state_not_found());
    };
    if views::status(latest.status).is_active() {
        return Err(busy());
    }
    // The rollback is a checkpoint of the project's latest run: when the target is that run's
    // own state, the run continues from it if resumed.
    let checkpoint = state
        .generation()
        .engine()
        .rollback(latest.id, target.id)
        .await
        .map_err(|error| match error {
            samokoder_core::engine::EngineError::Store(
                samokoder_core::state::RunStoreError::Conflict(_),
            ) => busy(),
            other => ApiError::internal(other),
        })?;
    let new_head = state.store().states.get(checkpoint.id).await?;
    let body = RollbackResponse {
        rolled_back_to: target.id,
        state: views::state(&new_head),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The zip of a state's files, counted against the plan's monthly exports.
async fn export(
    state: &AppState,
    current: &CurrentUser,
    project_id: Uuid,
    wanted: Option<Uuid>,
) -> Result<Response, ApiError> {
    let project = owned_project(state, current, project_id).await?;
    let record = chosen_state(state, &project, wanted)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                "nothing_to_export",
                "The project has no generated files yet; start a run first",
            )
        })?;
    // Counted only once there is something to export, and before the work.
    quota::consume(state.store(), &current.user, QuotaKind::Export).await?;
    let files = state.store().states.files(record.id).await?;
    let mut blobs = MemoryBlobs::new();
    for hash in files.values() {
        let content = state.store().files.blob(hash).await?;
        blobs.put(content);
    }
    let snapshot = Snapshot::from_store_map(files).map_err(ApiError::internal)?;
    let slug = samokoder_core::templates::slug(&project.name);
    let folder = WorkspacePath::new(&slug).ok();
    let zip = tokio::task::spawn_blocking(move || {
        let options = ExportOptions {
            folder,
            ..ExportOptions::default()
        };
        export_zip_bytes(&snapshot, &blobs, &options).map(|(bytes, _)| bytes)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok((
        [
            (CONTENT_TYPE, "application/zip".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{slug}.zip\""),
            ),
        ],
        zip,
    )
        .into_response())
}

/// Export the project as a zip.
///
/// The files of the latest state (or `?state=`) under one folder named after the project,
/// leaving out what its ignore rules exclude (dependency folders, build output, the
/// project's `.gitignore` patterns). Counts against the plan's monthly exports (402
/// `quota_exceeded` when used up).
#[utoipa::path(
    get,
    path = "/projects/{project_id}/export",
    tag = "files",
    operation_id = "export_project",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id"), StateQuery),
    responses(
        (status = 200, description = "The zip archive", body = Binary, content_type = "application/zip"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 402, description = "`quota_exceeded`: the plan's monthly exports are used up", body = ErrorBody),
        (status = 404, description = "`project_not_found` or `state_not_found`", body = ErrorBody),
        (status = 409, description = "`nothing_to_export`: no state yet", body = ErrorBody),
    )
)]
async fn export_project(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
    Query(query): Query<StateQuery>,
) -> Result<Response, ApiError> {
    export(&state, &current, project_id, query.state).await
}

/// Download the project as a zip (the web app's name for export).
///
/// The same as `GET /v1/projects/{project_id}/export`.
#[utoipa::path(
    get,
    path = "/projects/{project_id}/archive",
    tag = "files",
    operation_id = "archive_project_zip",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id"), StateQuery),
    responses(
        (status = 200, description = "The zip archive", body = Binary, content_type = "application/zip"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 402, description = "`quota_exceeded`: the plan's monthly exports are used up", body = ErrorBody),
        (status = 404, description = "`project_not_found` or `state_not_found`", body = ErrorBody),
        (status = 409, description = "`nothing_to_export`: no state yet", body = ErrorBody),
    )
)]
async fn archive_project(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
    Query(query): Query<StateQuery>,
) -> Result<Response, ApiError> {
    export(&state, &current, project_id, query.state).await
}
