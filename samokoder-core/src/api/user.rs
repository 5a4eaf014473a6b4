//! `/v1/user/*`: the profile, the tier with its limits, and version-control tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Tier;

/// `GET /v1/user/profile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserProfileResponse {
    /// The user's id.
    pub id: Uuid,
    /// The e-mail address.
    pub email: String,
    /// The subscription tier.
    pub tier: Tier,
    /// Whether the user may use the admin endpoints.
    pub is_admin: bool,
    /// Projects created this calendar month (UTC) that still exist.
    pub projects_monthly_count: u64,
    /// Projects the user has, archived ones included.
    pub projects_total: u64,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// A tier's limits; `null` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierLimits {
    /// Projects created per calendar month.
    pub projects_monthly: Option<u32>,
    /// Projects in all.
    pub projects_total: Option<u32>,
    /// Preview deployments started per calendar month.
    pub deployments_monthly: Option<u32>,
    /// Exports per calendar month.
    pub exports_monthly: Option<u32>,
    /// Pushes to a version-control host per calendar month.
    pub git_pushes_monthly: Option<u32>,
}

/// What a tier includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierFeatures {
    /// Creating projects.
    pub create_project: bool,
    /// Preview deployments.
    pub deploy: bool,
    /// Exporting projects.
    pub export: bool,
    /// Pushing to a version-control host.
    pub git_push: bool,
    /// Custom templates.
    pub custom_templates: bool,
    /// Team collaboration.
    pub team_collaboration: bool,
    /// Priority support.
    pub priority_support: bool,
    /// Custom branding.
    pub custom_branding: bool,
}

/// The request rates a tier advertises (informational; the server's rate limits apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierRateLimits {
    /// Per minute.
    pub requests_per_minute: u32,
    /// Per hour.
    pub requests_per_hour: u32,
    /// Per day.
    pub requests_per_day: u32,
}

/// How much of the limits the user has used this month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierUsage {
    /// Projects created this calendar month that still exist.
    pub projects_monthly: u64,
    /// Projects in all.
    pub projects_total: u64,
    /// Preview deployments started this month.
    pub deployments_monthly: u64,
    /// Exports this month.
    pub exports_monthly: u64,
    /// Pushes this month.
    pub git_pushes_monthly: u64,
}

/// `GET /v1/user/tier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierResponse {
    /// The tier.
    pub tier: Tier,
    /// Its display name.
    pub name: String,
    /// Its price in roubles per month.
    pub price: u32,
    /// Its limits.
    pub limits: TierLimits,
    /// Its features.
    pub features: TierFeatures,
    /// Its advertised request rates.
    pub rate_limits: TierRateLimits,
    /// The user's use of the limits this month.
    pub usage: TierUsage,
}

/// `POST /v1/user/github-token` and `POST /v1/user/gitverse-token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VcsTokenRequest {
    /// The personal access token. Stored encrypted; never returned.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub token: String,
}

impl std::fmt::Debug for VcsTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcsTokenRequest").finish_non_exhaustive()
    }
}
