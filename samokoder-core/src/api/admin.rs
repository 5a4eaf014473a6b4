//! `/v1/admin/*`: account administration (administrators only).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Tier;

/// `PUT /v1/admin/users/{user_id}/tier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetTierRequest {
    /// The new tier.
    pub tier: Tier,
}

/// An account as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUserResponse {
    /// The user's id.
    pub id: Uuid,
    /// The e-mail address.
    pub email: String,
    /// The tier.
    pub tier: Tier,
    /// Whether the user is an administrator.
    pub is_admin: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}
