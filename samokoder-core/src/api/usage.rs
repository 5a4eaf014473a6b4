//! `/v1/usage/token/*` and the usage figures shared with `/v1/keys/*/usage`: LLM usage as
//! recorded per request, summed.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Summed usage of a set of LLM requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageFigures {
    /// Prompt plus completion tokens.
    pub total_tokens: i64,
    /// Prompt (input) tokens.
    pub prompt_tokens: i64,
    /// Completion (output) tokens.
    pub completion_tokens: i64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: i64,
    /// Requests.
    pub requests: i64,
    /// Cost in micro-dollars (millionths of a US dollar).
    pub cost_micros: i64,
}

/// Optional time range of a usage query (RFC 3339 instants, `from` inclusive, `to` exclusive).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct UsageRangeQuery {
    /// Only requests at or after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Only requests before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
}

/// `GET /v1/usage/token`: provider → model → usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenUsageResponse {
    /// Provider → model → usage.
    pub usage: BTreeMap<String, BTreeMap<String, UsageFigures>>,
}

/// The totals of one provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderUsageTotals {
    /// Tokens over all models.
    pub total_tokens: i64,
    /// Requests over all models.
    pub total_requests: i64,
    /// Cost over all models, micro-dollars.
    pub cost_micros: i64,
    /// How many models were used.
    pub models_count: u64,
}

/// `GET /v1/usage/token/provider/{provider}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderUsageResponse {
    /// The provider.
    pub provider: String,
    /// Model → usage.
    pub usage: BTreeMap<String, UsageFigures>,
    /// Sums over the models.
    pub totals: ProviderUsageTotals,
}

/// `GET /v1/usage/token/provider/{provider}/model/{model}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelUsageResponse {
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The usage (all zero when the model was never used).
    pub usage: UsageFigures,
}

/// The totals over every provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageSummaryTotals {
    /// How many providers were used.
    pub providers: u64,
    /// Tokens.
    pub tokens: i64,
    /// Requests.
    pub requests: i64,
    /// Cost, micro-dollars.
    pub cost_micros: i64,
}

/// One provider in the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderSummary {
    /// Tokens.
    pub tokens: i64,
    /// Requests.
    pub requests: i64,
    /// How many models were used.
    pub models: u64,
    /// Cost, micro-dollars.
    pub cost_micros: i64,
}

/// `GET /v1/usage/token/summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageSummaryResponse {
    /// Sums over everything.
    pub totals: UsageSummaryTotals,
    /// Per provider.
    pub providers: BTreeMap<String, ProviderSummary>,
}

/// The length of a usage period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UsagePeriod {
    /// UTC calendar days.
    #[default]
    Day,
    /// UTC calendar months.
    Month,
}

/// Query of `GET /v1/usage/token/periods`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct UsagePeriodsQuery {
    /// `day` (default) or `month`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<UsagePeriod>,
    /// Only requests at or after this instant (default: 30 days ago for days, a year ago for
    /// months).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Only requests before this instant (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Split each period by provider and model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_model: Option<bool>,
}

/// One period's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsagePeriodBucket {
    /// The first day of the period.
    pub period_start: NaiveDate,
    /// The provider, when split by model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model, when split by model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The figures.
    #[serde(flatten)]
    pub usage: UsageFigures,
}

/// `GET /v1/usage/token/periods`: usage per day or month, oldest first; periods without usage
/// are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsagePeriodsResponse {
    /// The period length.
    pub period: UsagePeriod,
    /// The range covered, `from` inclusive.
    pub from: DateTime<Utc>,
    /// The range covered, `to` exclusive.
    pub to: DateTime<Utc>,
    /// The periods.
    pub buckets: Vec<UsagePeriodBucket>,
}
