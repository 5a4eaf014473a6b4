//! `/v1/notifications/*`: the caller's notifications, persisted, read and unread.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use samokoder_core::api::notifications::{
    DEFAULT_NOTIFICATION_PAGE, MAX_NOTIFICATION_PAGE, MarkAllReadResponse, NotificationListQuery,
    NotificationListResponse, NotificationResponse, TestNotificationRequest,
};
use samokoder_core::api::{ErrorBody, SuccessResponse};
use samokoder_store::{NewNotification, Notification, NotificationQuery, StoreError};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{CurrentUser, Json, Path, Query};
use crate::state::AppState;
use crate::validation;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
        .routes(routes!(delete))
        .routes(routes!(test))
}

fn notification_not_found() -> ApiError {
    ApiError::not_found("Notification not found").with_code("notification_not_found")
}

fn response(notification: Notification) -> NotificationResponse {
    NotificationResponse {
        id: notification.id,
        kind: notification.kind,
        title: notification.title,
        message: notification.body,
        data: notification.data,
        read: notification.read_at.is_some(),
        read_at: notification.read_at,
        created_at: notification.created_at,
    }
}

/// List notifications, newest first.
///
/// One page (`limit`, default 50) of the caller's notifications, optionally only unread ones,
/// with the total unread count. Continue with `before` = the previous page's `next_before`.
#[utoipa::path(
    get,
    path = "/notifications",
    tag = "notifications",
    operation_id = "list_notifications",
    security(("bearer" = []), ("cookie" = [])),
    params(NotificationListQuery),
    responses(
        (status = 200, description = "One page, with the unread count", body = NotificationListResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`validation_error`: `limit` out of range", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(query): Query<NotificationListQuery>,
) -> Result<Json<NotificationListResponse>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_NOTIFICATION_PAGE);
    if limit == 0 || limit > MAX_NOTIFICATION_PAGE {
        return Err(ApiError::validation(vec![validation::field_error(
            "query.limit",
            "out_of_range",
            format!("Must be between 1 and {MAX_NOTIFICATION_PAGE}."),
        )]));
    }
    let store = state.store();
    let page = store
        .notifications
        .list(&NotificationQuery {
            user_id: current.id(),
            unread_only: query.unread_only.unwrap_or(false),
            before: query.before,
            limit,
        })
        .await?;
    let next_before = if page.len() == limit as usize {
        page.last().map(|n| n.id)
    } else {
        None
    };
    let unread_count = store.notifications.unread_count(current.id()).await?;
    Ok(Json(NotificationListResponse {
        notifications: page.into_iter().map(response).collect(),
        unread_count,
        next_before,
    }))
}

/// Mark one notification read (idempotent).
///
/// Marking a read notification again is not an error. Someone else's notification is 404, like
/// a missing one.
#[utoipa::path(
    post,
    path = "/notifications/{notification_id}/read",
    tag = "notifications",
    operation_id = "mark_notification_read",
    security(("bearer" = []), ("cookie" = [])),
    params(("notification_id" = Uuid, Path, description = "The notification's id")),
    responses(
        (status = 200, description = "Marked read", body = SuccessResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`notification_not_found`: no such notification, or not the caller's", body = ErrorBody),
    )
)]
async fn mark_read(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(notification_id): Path<Uuid>,
) -> Result<Json<SuccessResponse>, ApiError> {
    match state
        .store()
        .notifications
        .mark_read(current.id(), notification_id)
        .await
    {
        Ok(()) => Ok(Json(SuccessResponse::new("Notification marked as read"))),
        Err(StoreError::NotFound { .. }) => Err(notification_not_found()),
        Err(error) => Err(error.into()),
    }
}

/// Mark every notification read.
///
/// Marks all of the caller's unread notifications read and says how many changed.
#[utoipa::path(
    post,
    path = "/notifications/read-all",
    tag = "notifications",
    operation_id = "mark_all_notifications_read",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Marked read; how many changed", body = MarkAllReadResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn mark_all_read(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<MarkAllReadResponse>, ApiError> {
    let updated = state
        .store()
        .notifications
        .mark_all_read(current.id())
        .await?;
    Ok(Json(MarkAllReadResponse {
        success: true,
        message: "All notifications marked as read".to_owned(),
        updated,
    }))
}

/// Delete a notification.
///
/// Removes one of the caller's notifications; someone else's is 404, like a missing one.
#[utoipa::path(
    delete,
    path = "/notifications/{notification_id}",
    tag = "notifications",
    operation_id = "delete_notification",
    security(("bearer" = []), ("cookie" = [])),
    params(("notification_id" = Uuid, Path, description = "The notification's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`notification_not_found`", body = ErrorBody),
    )
)]
async fn delete(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(notification_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    match state
        .store()
        .notifications
        .delete(current.id(), notification_id)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound { .. }) => Err(notification_not_found()),
        Err(error) => Err(error.into()),
    }
}

/// Send yourself a test notification.
///
/// Stores a notification of type `test` for the caller, so a client can check how it shows
/// them. (The original took query parameters; its web app sent this JSON body.)
#[utoipa::path(
    post,
    path = "/notifications/test",
    tag = "notifications",
    operation_id = "test_notification",
    security(("bearer" = []), ("cookie" = [])),
    request_body = TestNotificationRequest,
    responses(
        (status = 201, description = "Stored", body = NotificationResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`validation_error`: `title`, `message` or `data` is invalid", body = ErrorBody),
    )
)]
async fn test(
    State(state): State<AppState>,
    current: CurrentUser,
    Json(request): Json<TestNotificationRequest>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let title = validation::single_line("title", &request.title, 200)
        .map_err(|e| errors.push(e))
        .ok();
    let message = validation::text("message", &request.message, 2000)
        .map_err(|e| errors.push(e))
        .ok();
    let data = request
        .data
        .unwrap_or(Value::Object(serde_json::Map::new()));
    if let Err(error) = validation::json_object("data", &data, 4096) {
        errors.push(error);
    }
    let (Some(title), Some(message)) = (title, message) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let notification = state
        .store()
        .notifications
        .create(&NewNotification {
            user_id: current.id(),
            kind: "test".to_owned(),
            title,
            body: message,
            data,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(response(notification))).into_response())
}
