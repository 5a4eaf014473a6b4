//! `/v1/projects/{project_id}/preview/*`: run the generated app to try it.
//!
//! The app's own start command runs in the server's sandbox, in a network namespace of its
//! own: it listens on no port of the host and reaches nothing of the host's. The server
//! reaches it through the sandbox's bridge; it stops after an idle timeout.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a preview is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PreviewState {
    /// The app was started and does not accept connections yet.
    Starting,
    /// The app accepts connections.
    Running,
    /// The app exited by itself (see `exit_code` and `output`).
    Exited,
    /// No preview runs (never started, stopped, or stopped after being idle).
    Stopped,
}

/// A project's preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewInfo {
    /// Where it is.
    pub status: PreviewState,
    /// Where its owner opens it, while starting or running; `null` otherwise, and while the
    /// server has no preview origin for users.
    pub url: Option<String>,
    /// The preview's handle: the project's id (the original API's `process_id`).
    pub process_id: String,
    /// The command that runs the app (argv), e.g. `["npm", "start"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The state whose files it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_id: Option<Uuid>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Seconds since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// Seconds without a status request before it is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// The exit code once it exited by itself (`null` when killed by a signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The last lines it printed (standard output and error, interleaved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
}

/// `GET /v1/projects/{project_id}/preview/status`, wrapped as the original API answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewStatusResponse {
    /// The preview.
    pub status: PreviewInfo,
}

/// `POST /v1/projects/{project_id}/preview/stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewStopResponse {
    /// Always `true` (stopping a preview that does not run is not an error).
    pub success: bool,
    /// `Preview stopped successfully` or `Preview was not running`.
    pub message: String,
    /// When it was stopped, if it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
}

/// `POST /v1/projects/{project_id}/preview/open`: a link that lets the owner's browser into
/// the running preview once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewOpenResponse {
    /// Open it in a browser: it sets the preview's cookie on the preview's own origin and
    /// goes to `/`. Good for one use.
    pub url: String,
    /// Seconds the link stays good if unused.
    pub expires_in: u64,
    /// The preview's origin (what `url` leads to).
    pub origin: String,
}
