//! `/v1/projects/*`: the caller's projects.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::common::double_option;

/// The longest project name, in characters.
pub const MAX_PROJECT_NAME_CHARS: usize = 100;
/// The longest project description, in characters.
pub const MAX_PROJECT_DESCRIPTION_CHARS: usize = 1000;
/// The default page size of `GET /v1/projects`.
pub const DEFAULT_PROJECT_PAGE: u32 = 20;
/// The largest page size of `GET /v1/projects`.
pub const MAX_PROJECT_PAGE: u32 = 100;

/// `POST /v1/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectCreateRequest {
    /// The name: 1 to 100 characters after trimming, no control characters.
    pub name: String,
    /// An optional description of up to 1000 characters (line breaks and tabs allowed, no other
    /// control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PUT` or `PATCH /v1/projects/{project_id}`: a partial update. Absent fields stay as they
/// are; `"description": null` clears the description. At least one field is required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectUpdateRequest {
    /// A new name (same rules as at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A new description, or `null` to remove it.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, required = false))]
    pub description: Option<Option<String>>,
}

/// One project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectResponse {
    /// The project's id.
    pub id: Uuid,
    /// The name.
    pub name: String,
    /// The description, if any.
    pub description: Option<String>,
    /// The owner's id.
    pub user_id: Uuid,
    /// Archived projects are hidden from the default listing.
    pub archived: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A single project, wrapped as the original API answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectDetailResponse {
    /// The project.
    pub project: ProjectResponse,
}

/// `GET /v1/projects`: one page, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectListResponse {
    /// The projects of this page.
    pub projects: Vec<ProjectResponse>,
    /// How many projects the caller has in all, archived ones included, regardless of paging
    /// and filters.
    pub total: u64,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Query of `GET /v1/projects`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ProjectListQuery {
    /// Page size, 1 to 100 (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only projects whose name contains this text, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// `true` lists archived projects too (each says whether it is archived); the default
    /// `false` lists active projects only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_tells_null_from_absent() {
        let absent: ProjectUpdateRequest = serde_json::from_str(r#"{"name": "x"}"#).unwrap();
        assert_eq!(absent.description, None);
        let null: ProjectUpdateRequest = serde_json::from_str(r#"{"description": null}"#).unwrap();
        assert_eq!(null.description, Some(None));
        let set: ProjectUpdateRequest = serde_json::from_str(r#"{"description": "d"}"#).unwrap();
        assert_eq!(set.description, Some(Some("d".into())));
        assert_eq!(
            serde_json::to_value(&null).unwrap(),
            serde_json::json!({"description": null})
        );
    }
}
