//! The browser WebSocket `GET /v1/ws/{project_id}` and the token that opens it,
//! `POST /v1/workspace/token`.

use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::response::Response;
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use samokoder_core::api::ErrorBody;
use samokoder_core::api::workspace::{WorkspaceTokenRequest, WorkspaceTokenResponse};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::projects::{owned_project, project_not_found};
use crate::error::ApiError;
use crate::extract::{CurrentUser, Json, Path, Query};
use crate::generation::socket;
use crate::generation::ticket::{self, TicketKind};
use crate::state::AppState;

/// The largest frame a browser may send: an answer of `MAX_ANSWER_CHARS` characters, each
/// JSON-escaped to at most 12 bytes (a surrogate pair), plus the frame's other fields.
const MAX_CLIENT_FRAME_BYTES: usize = samokoder_core::api::runs::MAX_ANSWER_CHARS * 12 + 1024;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(workspace_token))
        .routes(routes!(project_socket))
}

/// Get a WebSocket token.
///
/// A token for `?token=` on `GET /v1/ws/{project_id}`, for pages that cannot send the
/// `access_token` cookie with the WebSocket handshake. It opens one connection to that
/// project's socket, within 60 seconds.
#[utoipa::path(
    post,
    path = "/workspace/token",
    tag = "runs",
    operation_id = "workspace_token",
    security(("bearer" = []), ("cookie" = [])),
    request_body = WorkspaceTokenRequest,
    responses(
        (status = 200, description = "The token", body = WorkspaceTokenResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
async fn workspace_token(
    State(state): State<AppState>,
    current: CurrentUser,
    Json(request): Json<WorkspaceTokenRequest>,
) -> Result<Json<WorkspaceTokenResponse>, ApiError> {
    let project = owned_project(&state, &current, request.project_id).await?;
    let token = ticket::issue(
        &state.auth().secret_box,
        TicketKind::WebSocket,
        current.id(),
        project.id,
    )?;
    Ok(Json(WorkspaceTokenResponse {
        token,
        expires_in: TicketKind::WebSocket.ttl().as_secs(),
        project_id: project.id,
    }))
}

/// Query of the WebSocket handshake.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SocketQuery {
    /// A token from `POST /v1/workspace/token` (else the `access_token` cookie or a bearer
    /// token authenticates the handshake).
    token: Option<String>,
}

/// Whether a browser page at `origin` may open the socket: an origin the CORS settings allow,
/// or the API's own (a page served by the same host). Clients that send no `Origin` are not
/// browsers and are not subject to it.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if state
        .config()
        .cors_origins()
        .iter()
        .any(|allowed| allowed == origin)
    {
        return true;
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok());
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((authority, host), (Some(authority), Some(host)) if authority == host)
}

/// Follow a project over a WebSocket.
///
/// Upgrades to a WebSocket carrying JSON text frames (`WsServerFrame` from the server,
/// `WsClientFrame` from the client). The server first sends `subscribed`, then the newest
/// run's events so far (`event` frames, per run in sequence order, never repeated) and its
/// pending questions (`question` frames), then follows every run of the project live. The
/// client answers questions with `answer` frames (the server replies `answer_result`) and may
/// send `ping` (the server replies `pong`).
///
/// Authentication: `?token=` from `POST /v1/workspace/token` (single use, 60 s, bound to the
/// project), else the `access_token` cookie (or a bearer token). Browsers must come from an
/// origin the CORS settings allow (403 `origin_not_allowed` otherwise). Only the project's
/// owner may subscribe (404 otherwise, as for every project route).
#[utoipa::path(
    get,
    path = "/ws/{project_id}",
    tag = "runs",
    operation_id = "project_socket",
    security((), ("bearer" = []), ("cookie" = [])),
    params(("project_id" = Uuid, Path, description = "The project's id"), SocketQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, description = "Not authenticated, or `invalid_ws_token` (unknown, expired, used, or for another project)", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 426, description = "`upgrade_required`: not a WebSocket handshake", body = ErrorBody),
    )
)]
async fn project_socket(
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Query(query): Query<SocketQuery>,
    mut parts: Parts,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "This route speaks WebSocket only",
        )
        .with_source(rejection.body_text())
    })?;
    if !origin_allowed(&state, &parts.headers) {
        return Err(
            ApiError::forbidden("This origin may not open the WebSocket")
                .with_code("origin_not_allowed"),
        );
    }
    let user_id = match &query.token {
        Some(token) => ticket::redeem(&state, TicketKind::WebSocket, token, project_id).await?,
        None => CurrentUser::from_request_parts(&mut parts, &state)
            .await?
            .id(),
    };
    let project = match state.store().projects.get_owned(user_id, project_id).await {
        Ok(project) => project,
        Err(samokoder_store::StoreError::NotFound { .. }) => return Err(project_not_found()),
        Err(error) => return Err(error.into()),
    };
    tracing::info!(project = %project.id, "websocket opened");
    // Client frames are answers and pings: the protocol's 64 MiB default would let one socket
    // make the server buffer and parse huge frames.
    let upgrade = upgrade
        .max_message_size(MAX_CLIENT_FRAME_BYTES)
        .max_frame_size(MAX_CLIENT_FRAME_BYTES);
    Ok(upgrade.on_upgrade(move |socket| socket::serve(socket, state, project)))
}
