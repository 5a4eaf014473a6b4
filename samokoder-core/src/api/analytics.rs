//! `/v1/analytics/*`: product analytics, persisted. Per-user views for everyone, system views
//! for administrators.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The default number of actions `GET /v1/analytics/user/actions` returns.
pub const DEFAULT_ACTIONS_LIMIT: u32 = 100;
/// The most actions one call of `GET /v1/analytics/user/actions` or `/export` returns.
pub const MAX_ACTIONS_LIMIT: u32 = 500;

/// `POST /v1/analytics/record`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordActionRequest {
    /// What happened: 1 to 64 characters of `a-z`, `0-9`, `_`, `.`, `:` and `-`.
    pub action: String,
    /// Details (a JSON object of at most 8 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub details: Option<serde_json::Value>,
    /// The project it concerns; must be one of the caller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
}

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionLog {
    /// The event's id (time-ordered; the export's paging key).
    pub id: Uuid,
    /// Who did it, if known.
    pub user_id: Option<Uuid>,
    /// What happened.
    pub action: String,
    /// Details.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
    /// The project, if any.
    pub project_id: Option<Uuid>,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
}

/// A user's activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserMetrics {
    /// Actions recorded.
    pub total_actions: i64,
    /// Actions by name.
    pub actions_by_type: BTreeMap<String, i64>,
    /// Projects the user created (`project_created` actions).
    pub projects_created: i64,
    /// Projects the user has now.
    pub projects_used_count: u64,
    /// The time of the latest action.
    pub last_active: Option<DateTime<Utc>>,
}

/// `GET /v1/analytics/user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserAnalyticsResponse {
    /// The user.
    pub user_id: Uuid,
    /// The figures.
    pub metrics: UserMetrics,
}

/// Query of `GET /v1/analytics/user/actions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct UserActionsQuery {
    /// How many, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
}

/// `GET /v1/analytics/user/actions`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserActionsResponse {
    /// The user.
    pub user_id: Uuid,
    /// The actions.
    pub logs: Vec<ActionLog>,
}

/// System-wide activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemMetrics {
    /// Registered users.
    pub total_users: u64,
    /// Actions recorded.
    pub total_actions: i64,
    /// `project_created` actions.
    pub total_projects_created: i64,
    /// The ten most frequent actions as `[name, count]` pairs, most frequent first.
    pub most_common_actions: Vec<(String, i64)>,
    /// Users with an action in the last 24 hours.
    pub active_users_24h: i64,
    /// Users with an action in the last 7 days.
    pub active_users_7d: i64,
}

/// `GET /v1/analytics/system`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemAnalyticsResponse {
    /// The figures.
    pub metrics: SystemMetrics,
}

/// Query of `GET /v1/analytics/export`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AnalyticsExportQuery {
    /// Only actions at or after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Only actions before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// The previous page's `next_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Uuid>,
    /// Page size, 1 to 500 (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
}

/// `GET /v1/analytics/export`: every user's actions, oldest first, one page at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnalyticsExportResponse {
    /// This page.
    pub action_logs: Vec<ActionLog>,
    /// When the export was made.
    pub exported_at: DateTime<Utc>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<Uuid>,
}
