//! `/v1/analytics/*`: product analytics, persisted. Everyone records and reads their own;
//! `system` and `export` are for administrators (403 `admin_required` for anyone else).

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{Duration, Utc};
use samokoder_core::api::analytics::{
    ActionLog, AnalyticsExportQuery, AnalyticsExportResponse, DEFAULT_ACTIONS_LIMIT,
    MAX_ACTIONS_LIMIT, RecordActionRequest, SystemAnalyticsResponse, SystemMetrics,
    UserActionsQuery, UserActionsResponse, UserAnalyticsResponse, UserMetrics,
};
use samokoder_core::api::{ErrorBody, SuccessResponse};
use samokoder_store::{AnalyticsEvent, AuditAction, NewAnalyticsEvent, TimeRange};
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::AuditEvent;
use crate::error::ApiError;
use crate::extract::{AdminUser, ClientIp, CurrentUser, Json, Query};
use crate::routes::projects::owned_project;
use crate::state::AppState;
use crate::validation;

/// The event the server records for every new project.
const PROJECT_CREATED: &str = "project_created";
/// The largest `details` object, serialized.
const MAX_DETAILS_BYTES: usize = 8 * 1024;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record))
        .routes(routes!(user_metrics))
        .routes(routes!(user_actions))
        .routes(routes!(system))
        .routes(routes!(export))
}

/// An event as an action log entry: `properties` holds `details` and `project_id`.
fn action_log(event: AnalyticsEvent) -> ActionLog {
    let project_id = event
        .properties
        .get("project_id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok());
    let details = event
        .properties
        .get("details")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    ActionLog {
        id: event.id,
        user_id: event.user_id,
        action: event.name,
        details,
        project_id,
        timestamp: event.at,
    }
}

fn check_action(action: &str) -> Result<String, samokoder_core::api::FieldError> {
    let action = action.trim();
    let valid = (1..=64).contains(&action.len())
        && action.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        });
    if valid {
        Ok(action.to_owned())
    } else {
        Err(validation::field_error(
            "action",
            "invalid_action",
            "Must be 1 to 64 characters of a-z, 0-9, '_', '.', ':' and '-'.",
        ))
    }
}

/// Record an action.
///
/// Stores an analytics event for the caller: a name, optional details (a JSON object) and
/// optionally one of the caller's projects. (The original took `action` and `project_id` as
/// query parameters; its web app sent this JSON body.)
#[utoipa::path(
    post,
    path = "/analytics/record",
    tag = "analytics",
    operation_id = "record_action",
    security(("bearer" = []), ("cookie" = [])),
    request_body = RecordActionRequest,
    responses(
        (status = 200, description = "Recorded", body = SuccessResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found`: `project_id` is not one of the caller's projects", body = ErrorBody),
        (status = 422, description = "`validation_error`: `action` or `details` is invalid", body = ErrorBody),
    )
)]
async fn record(
    State(state): State<AppState>,
    current: CurrentUser,
    Json(request): Json<RecordActionRequest>,
) -> Result<Json<SuccessResponse>, ApiError> {
    let mut errors = Vec::new();
    let action = check_action(&request.action)
        .map_err(|e| errors.push(e))
        .ok();
    let details = request
        .details
        .filter(|d| !d.is_null())
        .unwrap_or_else(|| Value::Object(Map::new()));
    if let Err(error) = validation::json_object("details", &details, MAX_DETAILS_BYTES) {
        errors.push(error);
    }
    let Some(action) = action.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    if let Some(project_id) = request.project_id {
        owned_project(&state, &current, project_id).await?;
    }
    state
        .store()
        .analytics
        .record(&NewAnalyticsEvent {
            user_id: Some(current.id()),
            name: action.clone(),
            properties: json!({"details": details, "project_id": request.project_id}),
            at: samokoder_store::now(),
        })
        .await?;
    Ok(Json(SuccessResponse::new(format!(
        "Action {action} recorded"
    ))))
}

/// The caller's activity.
///
/// Counts of the caller's recorded actions by name, the projects they created and have, and
/// when they were last active.
#[utoipa::path(
    get,
    path = "/analytics/user",
    tag = "analytics",
    operation_id = "user_analytics",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller's figures", body = UserAnalyticsResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn user_metrics(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<UserAnalyticsResponse>, ApiError> {
    let store = state.store();
    let counts = store
        .analytics
        .counts_for_user(current.id(), TimeRange::all())
        .await?;
    let latest = store
        .analytics
        .list_for_user(current.id(), TimeRange::all(), 1)
        .await?;
    let projects = store.projects.counts(current.id(), Utc::now()).await?;
    let actions_by_type: BTreeMap<String, i64> =
        counts.into_iter().map(|c| (c.name, c.count)).collect();
    Ok(Json(UserAnalyticsResponse {
        user_id: current.id(),
        metrics: UserMetrics {
            total_actions: actions_by_type.values().sum(),
            projects_created: actions_by_type.get(PROJECT_CREATED).copied().unwrap_or(0),
            actions_by_type,
            projects_used_count: projects.total,
            last_active: latest.first().map(|event| event.at),
        },
    }))
}

/// The caller's latest actions, newest first.
///
/// Up to `limit` (1 to 500, default 100) of the caller's recorded actions, with their details.
#[utoipa::path(
    get,
    path = "/analytics/user/actions",
    tag = "analytics",
    operation_id = "user_actions",
    security(("bearer" = []), ("cookie" = [])),
    params(UserActionsQuery),
    responses(
        (status = 200, description = "The actions", body = UserActionsResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`validation_error`: `limit` out of range (1 to 500)", body = ErrorBody),
    )
)]
async fn user_actions(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(query): Query<UserActionsQuery>,
) -> Result<Json<UserActionsResponse>, ApiError> {
    let limit = check_limit(query.limit.unwrap_or(DEFAULT_ACTIONS_LIMIT))?;
    let events = state
        .store()
        .analytics
        .list_for_user(current.id(), TimeRange::all(), limit)
        .await?;
    Ok(Json(UserActionsResponse {
        user_id: current.id(),
        logs: events.into_iter().map(action_log).collect(),
    }))
}

fn check_limit(limit: u32) -> Result<u32, ApiError> {
    if limit == 0 || limit > MAX_ACTIONS_LIMIT {
        return Err(ApiError::validation(vec![validation::field_error(
            "query.limit",
            "out_of_range",
            format!("Must be between 1 and {MAX_ACTIONS_LIMIT}."),
        )]));
    }
    Ok(limit)
}

/// System-wide activity (administrators).
///
/// Users, actions, projects created, the ten most common actions, and the users active in the
/// last day and week. Administrators only: anyone else gets 403 `admin_required`.
#[utoipa::path(
    get,
    path = "/analytics/system",
    tag = "analytics",
    operation_id = "system_analytics",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "System figures", body = SystemAnalyticsResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`admin_required`: the caller is not an administrator", body = ErrorBody),
    )
)]
async fn system(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
) -> Result<Json<SystemAnalyticsResponse>, ApiError> {
    let store = state.store();
    let now = Utc::now();
    let all = store.analytics.summary(TimeRange::all()).await?;
    let day = store
        .analytics
        .summary(TimeRange::new(now - Duration::hours(24), now))
        .await?;
    let week = store
        .analytics
        .summary(TimeRange::new(now - Duration::days(7), now))
        .await?;
    let total_projects_created = all
        .by_name
        .iter()
        .find(|c| c.name == PROJECT_CREATED)
        .map_or(0, |c| c.count);
    Ok(Json(SystemAnalyticsResponse {
        metrics: SystemMetrics {
            total_users: store.users.count().await?,
            total_actions: all.total_events,
            total_projects_created,
            most_common_actions: all
                .by_name
                .into_iter()
                .take(10)
                .map(|c| (c.name, c.count))
                .collect(),
            active_users_24h: day.distinct_users,
            active_users_7d: week.distinct_users,
        },
    }))
}

/// Export every user's actions (administrators).
///
/// Oldest first, one page at a time: pass `next_after` as `after` until it is `null`. Each
/// export is audit-logged.
#[utoipa::path(
    get,
    path = "/analytics/export",
    tag = "analytics",
    operation_id = "export_analytics",
    security(("bearer" = []), ("cookie" = [])),
    params(AnalyticsExportQuery),
    responses(
        (status = 200, description = "One page of actions", body = AnalyticsExportResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`admin_required`: the caller is not an administrator", body = ErrorBody),
        (status = 422, description = "`validation_error`: `limit` out of range, or `from` after `to`", body = ErrorBody),
    )
)]
async fn export(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    AdminUser(admin): AdminUser,
    Query(query): Query<AnalyticsExportQuery>,
) -> Result<Json<AnalyticsExportResponse>, ApiError> {
    let limit = check_limit(query.limit.unwrap_or(MAX_ACTIONS_LIMIT))?;
    let all = TimeRange::all();
    let range = TimeRange::new(query.from.unwrap_or(all.from), query.to.unwrap_or(all.to));
    if range.from > range.to {
        return Err(ApiError::validation(vec![validation::field_error(
            "query.from",
            "invalid_range",
            "`from` must not be after `to`.",
        )]));
    }
    let events = state
        .store()
        .analytics
        .export(range, query.after, limit)
        .await?;
    let next_after = if events.len() == limit as usize {
        events.last().map(|e| e.id)
    } else {
        None
    };
    AuditEvent::new(AuditAction::AdminAction)
        .actor(Some(admin.id()))
        .client(client)
        .detail(json!({"operation": "analytics_export", "rows": events.len()}))
        .record(state.store())
        .await;
    Ok(Json(AnalyticsExportResponse {
        action_logs: events.into_iter().map(action_log).collect(),
        exported_at: Utc::now(),
        next_after,
    }))
}
