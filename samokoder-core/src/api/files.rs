//! `/v1/projects/{project_id}/files`, `/states` and `/export`: what runs generated, at any
//! state of the project's history.
//!
//! Every completed step of a run is a *state* (a checkpoint): a numbered, immutable file tree.
//! The latest state is the project's head. Rolling back makes a new head whose files equal an
//! older state's, so history is never rewritten. A file's content is served raw
//! (`GET .../files/{path}`), the whole tree as a zip (`GET .../export` or `.../archive`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The default number of states `GET /v1/projects/{project_id}/states` returns.
pub const DEFAULT_STATE_PAGE: u32 = 100;
/// The most states one page may hold.
pub const MAX_STATE_PAGE: u32 = 1000;

/// Query naming a state: `?state=<id>`; absent means the project's head.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct StateQuery {
    /// The state (from `GET .../states`); absent means the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Uuid>,
}

/// One file of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileEntry {
    /// The workspace-relative path (`/`-separated), e.g. `src/app.js`.
    pub path: String,
    /// The content's SHA-256 (lower-case hex); equal hashes mean equal content.
    pub sha256: String,
}

/// `GET /v1/projects/{project_id}/files`: the file tree of one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileTreeResponse {
    /// The state listed; `null` when the project has no state yet (then `files` is empty).
    pub state_id: Option<Uuid>,
    /// Its number in the project's history.
    pub sequence: Option<i64>,
    /// The files, by path.
    pub files: Vec<FileEntry>,
}

/// One state of a project's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateResponse {
    /// The state's id.
    pub id: Uuid,
    /// Its number, from 1.
    pub sequence: i64,
    /// The state before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<Uuid>,
    /// The run whose step made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
    /// What the step did, e.g. `task 1: write src/app.js`.
    pub label: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/projects/{project_id}/states`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateListResponse {
    /// The head's id, `null` when the project has no state.
    pub head: Option<Uuid>,
    /// The states of this page.
    pub states: Vec<StateResponse>,
    /// Pass as `before` to get the older page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// Query of `GET /v1/projects/{project_id}/states`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct StateListQuery {
    /// Page size, 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<u32>,
    /// Only states numbered below this (the previous page's `next_before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
}

/// `POST /v1/projects/{project_id}/states/{state_id}/rollback`: the new head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RollbackResponse {
    /// The state rolled back to.
    pub rolled_back_to: Uuid,
    /// The new head, whose files equal that state's.
    pub state: StateResponse,
}
