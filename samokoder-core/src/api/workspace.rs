//! `POST /v1/workspace/token`: a short-lived, single-use token for opening the WebSocket
//! `/v1/ws/{project_id}` from a page that cannot send the `access_token` cookie (another
//! origin, a native client): pass it as `?token=`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /v1/workspace/token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkspaceTokenRequest {
    /// The project whose WebSocket the token opens (one of the caller's).
    pub project_id: Uuid,
}

/// A WebSocket token: good for one connection to one project's socket, for `expires_in`
/// seconds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceTokenResponse {
    /// The token, for `?token=`.
    pub token: String,
    /// Seconds until it expires (60).
    pub expires_in: u64,
    /// The project it is bound to.
    pub project_id: Uuid,
}

impl std::fmt::Debug for WorkspaceTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceTokenResponse")
            .field("expires_in", &self.expires_in)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}
