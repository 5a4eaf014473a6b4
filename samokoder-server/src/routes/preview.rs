//! `/v1/projects/{project_id}/preview/*`: run the generated app to try it.

use axum::extract::State;
use samokoder_core::api::ErrorBody;
use samokoder_core::api::preview::{
    PreviewInfo, PreviewOpenResponse, PreviewStatusResponse, PreviewStopResponse,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::projects::owned_project;
use crate::error::ApiError;
use crate::extract::{CurrentUser, Json, Path};
use crate::generation::preview;
use crate::state::AppState;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_preview))
        .routes(routes!(stop_preview))
        .routes(routes!(preview_status))
        .routes(routes!(open_preview))
}

/// Start a preview.
///
/// Runs the app of the project's latest state with its own start command (its starter
/// template's, e.g. `npm start`) in the server's sandbox, in a network namespace of its own
/// (it listens on no port of the host and reaches nothing of the host's), and waits a few
/// seconds for it to listen. Its owner opens it on the preview origin (`url`, one host per
/// project, never the API's) with a link from `POST .../preview/open`. A preview stops after
/// an idle time without requests, and after a maximum lifetime. Starting again restarts it on the latest files. Counts against the plan's monthly
/// deployments (402 `quota_exceeded`; the free plan has none); a user runs a limited number of
/// previews at once (429 `too_many_previews`).
#[utoipa::path(
    post,
    path = "/projects/{project_id}/preview/start",
    tag = "preview",
    operation_id = "start_preview",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "Started: `status` is `running`, or `starting`/`exited` when it did not listen in time", body = PreviewInfo),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 402, description = "`quota_exceeded`: no deployments left in the plan this month", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 409, description = "`nothing_to_preview`, `no_start_command`, `preview_starting` (a start of this preview is in progress) or `preview_refused` (the sandbox's policy refuses the command)", body = ErrorBody),
        (status = 429, description = "`too_many_previews`: stop another preview first", body = ErrorBody),
    )
)]
async fn start_preview(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
) -> Result<Json<PreviewInfo>, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    Ok(Json(
        preview::start(&state, &current.user, project.id).await?,
    ))
}

/// Stop the preview.
///
/// Stops the app and removes its files. Stopping a preview that does not run is not an error.
#[utoipa::path(
    post,
    path = "/projects/{project_id}/preview/stop",
    tag = "preview",
    operation_id = "stop_preview",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "Stopped", body = PreviewStopResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
async fn stop_preview(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
) -> Result<Json<PreviewStopResponse>, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    let stopped_at = state.generation().previews().stop(project.id).await;
    Ok(Json(PreviewStopResponse {
        success: true,
        message: match stopped_at {
            Some(_) => "Preview stopped successfully",
            None => "Preview was not running",
        }
        .to_owned(),
        stopped_at,
    }))
}

/// Preview status.
///
/// Whether the preview runs, its origin (`url`), uptime and the last lines it printed. Asking
/// counts as activity for the idle timeout.
#[utoipa::path(
    get,
    path = "/projects/{project_id}/preview/status",
    tag = "preview",
    operation_id = "preview_status",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The preview", body = PreviewStatusResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
async fn preview_status(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
) -> Result<Json<PreviewStatusResponse>, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    Ok(Json(PreviewStatusResponse {
        status: state.generation().previews().info(project.id).await,
    }))
}

/// Open the preview.
///
/// A link for the owner's browser to the running preview, on the preview origin: good for
/// one use within a minute, it sets a cookie for that origin only and leads to the app's `/`.
/// The app never sees the cookie, and the API's cookies never reach the preview origin.
#[utoipa::path(
    post,
    path = "/projects/{project_id}/preview/open",
    tag = "preview",
    operation_id = "open_preview",
    security(("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The link", body = PreviewOpenResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 409, description = "`preview_not_running`: start it first", body = ErrorBody),
        (status = 503, description = "`previews_not_served`: this server has no preview listener", body = ErrorBody),
    )
)]
async fn open_preview(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(project_id): Path<Uuid>,
) -> Result<Json<PreviewOpenResponse>, ApiError> {
    let project = owned_project(&state, &current, project_id).await?;
    Ok(Json(preview::open(&state, current.id(), project.id)?))
}
