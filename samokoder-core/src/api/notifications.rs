//! `/v1/notifications/*`: the caller's persisted notifications.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The default page size of `GET /v1/notifications`.
pub const DEFAULT_NOTIFICATION_PAGE: u32 = 50;
/// The largest page size of `GET /v1/notifications`.
pub const MAX_NOTIFICATION_PAGE: u32 = 200;

/// One notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationResponse {
    /// Its id.
    pub id: Uuid,
    /// Machine kind, e.g. `run_completed` or `test`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short title.
    pub title: String,
    /// The message.
    pub message: String,
    /// Structured data (links, ids).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
    /// Whether it was read.
    pub read: bool,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/notifications`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationListResponse {
    /// This page.
    pub notifications: Vec<NotificationResponse>,
    /// How many of the caller's notifications are unread.
    pub unread_count: u64,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_before: Option<Uuid>,
}

/// Query of `GET /v1/notifications`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct NotificationListQuery {
    /// Only unread notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread_only: Option<bool>,
    /// Only notifications older than this one (the previous page's `next_before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
}

/// `POST /v1/notifications/test`: sends the caller a notification, to check that a client
/// shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestNotificationRequest {
    /// Short title (1 to 200 characters).
    pub title: String,
    /// The message (at most 2000 characters).
    pub message: String,
    /// Structured data (a JSON object of at most 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<serde_json::Value>,
}

/// `POST /v1/notifications/read-all`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MarkAllReadResponse {
    /// Always `true`.
    pub success: bool,
    /// What was done.
    pub message: String,
    /// How many notifications changed from unread to read.
    pub updated: u64,
}
