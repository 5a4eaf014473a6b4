//! `/v1/usage/token/*`: the caller's LLM usage, from the per-request records the engine writes,
//! summed by provider, model and period.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{Duration, Utc};
use samokoder_core::api::ErrorBody;
use samokoder_core::api::usage::{
    ModelUsageResponse, ProviderSummary, ProviderUsageResponse, ProviderUsageTotals,
    TokenUsageResponse, UsageFigures, UsagePeriod, UsagePeriodBucket, UsagePeriodsQuery,
    UsagePeriodsResponse, UsageRangeQuery, UsageSummaryResponse, UsageSummaryTotals,
};
use samokoder_store::{Period, TimeRange, TokenCounts, UsageGrouping};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{CurrentUser, Json, Path, Query};
use crate::routes::keys::usage_by_model;
use crate::state::AppState;
use crate::validation;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token_usage))
        .routes(routes!(provider_usage))
        .routes(routes!(model_usage))
        .routes(routes!(summary))
        .routes(routes!(periods))
}

/// The wire figures of a store aggregate.
pub(crate) fn figures(requests: i64, counts: &TokenCounts) -> UsageFigures {
    UsageFigures {
        total_tokens: counts.total_tokens(),
        prompt_tokens: counts.prompt_tokens,
        completion_tokens: counts.completion_tokens,
        cached_tokens: counts.cached_tokens,
        requests,
        cost_micros: counts.cost_micros,
    }
}

/// The range of a query: `[from, to)`, all of time by default.
fn range(query: &UsageRangeQuery) -> Result<TimeRange, ApiError> {
    let all = TimeRange::all();
    let range = TimeRange::new(query.from.unwrap_or(all.from), query.to.unwrap_or(all.to));
    if range.from > range.to {
        return Err(ApiError::validation(vec![validation::field_error(
            "query.from",
            "invalid_range",
            "`from` must not be after `to`.",
        )]));
    }
    Ok(range)
}

/// Usage by provider and model.
///
/// From the recorded LLM requests (tokens, requests, cost), optionally within `[from, to)`.
#[utoipa::path(
    get,
    path = "/usage/token",
    tag = "usage",
    operation_id = "token_usage",
    security(("bearer" = []), ("cookie" = [])),
    params(UsageRangeQuery),
    responses(
        (status = 200, description = "Provider → model → usage", body = TokenUsageResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`validation_error`: a malformed instant, or `from` after `to`", body = ErrorBody),
    )
)]
async fn token_usage(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(query): Query<UsageRangeQuery>,
) -> Result<Json<TokenUsageResponse>, ApiError> {
    let usage = usage_by_model(&state, current.id(), range(&query)?).await?;
    Ok(Json(TokenUsageResponse { usage }))
}

/// Usage of one provider, by model, with totals.
///
/// A provider that was never used gives empty usage and zero totals.
#[utoipa::path(
    get,
    path = "/usage/token/provider/{provider}",
    tag = "usage",
    operation_id = "provider_token_usage",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("provider" = String, Path, description = "The provider, e.g. `openai`"),
        UsageRangeQuery,
    ),
    responses(
        (status = 200, description = "The provider's usage (empty when never used)", body = ProviderUsageResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn provider_usage(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(provider): Path<String>,
    Query(query): Query<UsageRangeQuery>,
) -> Result<Json<ProviderUsageResponse>, ApiError> {
    let usage = usage_by_model(&state, current.id(), range(&query)?)
        .await?
        .remove(&provider)
        .unwrap_or_default();
    let totals = ProviderUsageTotals {
        total_tokens: usage.values().map(|u| u.total_tokens).sum(),
        total_requests: usage.values().map(|u| u.requests).sum(),
        cost_micros: usage.values().map(|u| u.cost_micros).sum(),
        models_count: usage.len() as u64,
    };
    Ok(Json(ProviderUsageResponse {
        provider,
        usage,
        totals,
    }))
}

/// Usage of one model of one provider.
///
/// Model names with `/` (OpenRouter's `vendor/model`) are written with `%2F`.
#[utoipa::path(
    get,
    path = "/usage/token/provider/{provider}/model/{model}",
    tag = "usage",
    operation_id = "model_token_usage",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("provider" = String, Path, description = "The provider, e.g. `openai`"),
        ("model" = String, Path, description = "The model, e.g. `gpt-4o-mini`"),
        UsageRangeQuery,
    ),
    responses(
        (status = 200, description = "The model's usage (zeros when never used)", body = ModelUsageResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn model_usage(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((provider, model)): Path<(String, String)>,
    Query(query): Query<UsageRangeQuery>,
) -> Result<Json<ModelUsageResponse>, ApiError> {
    let usage = usage_by_model(&state, current.id(), range(&query)?)
        .await?
        .remove(&provider)
        .and_then(|mut models| models.remove(&model))
        .unwrap_or_default();
    Ok(Json(ModelUsageResponse {
        provider,
        model,
        usage,
    }))
}

/// Totals per provider and overall.
///
/// Tokens, requests and cost per provider and over all of them, optionally within `[from, to)`.
#[utoipa::path(
    get,
    path = "/usage/token/summary",
    tag = "usage",
    operation_id = "token_usage_summary",
    security(("bearer" = []), ("cookie" = [])),
    params(UsageRangeQuery),
    responses(
        (status = 200, description = "Totals", body = UsageSummaryResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn summary(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(query): Query<UsageRangeQuery>,
) -> Result<Json<UsageSummaryResponse>, ApiError> {
    let usage = usage_by_model(&state, current.id(), range(&query)?).await?;
    let providers: BTreeMap<String, ProviderSummary> = usage
        .into_iter()
        .map(|(provider, models)| {
            let summary = ProviderSummary {
                tokens: models.values().map(|u| u.total_tokens).sum(),
                requests: models.values().map(|u| u.requests).sum(),
                models: models.len() as u64,
                cost_micros: models.values().map(|u| u.cost_micros).sum(),
            };
            (provider, summary)
        })
        .collect();
    let totals = UsageSummaryTotals {
        providers: providers.len() as u64,
        tokens: providers.values().map(|p| p.tokens).sum(),
        requests: providers.values().map(|p| p.requests).sum(),
        cost_micros: providers.values().map(|p| p.cost_micros).sum(),
    };
    Ok(Json(UsageSummaryResponse { totals, providers }))
}

/// Usage per day or month.
///
/// Periods are UTC calendar days or months, oldest first; periods without usage are left
/// out. `by_model=true` splits each period by provider and model.
#[utoipa::path(
    get,
    path = "/usage/token/periods",
    tag = "usage",
    operation_id = "token_usage_periods",
    security(("bearer" = []), ("cookie" = [])),
    params(UsagePeriodsQuery),
    responses(
        (status = 200, description = "Usage per period", body = UsagePeriodsResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`validation_error`: a malformed instant or period, or `from` after `to`", body = ErrorBody),
    )
)]
async fn periods(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(query): Query<UsagePeriodsQuery>,
) -> Result<Json<UsagePeriodsResponse>, ApiError> {
    let period = query.period.unwrap_or_default();
    let to = query.to.unwrap_or_else(Utc::now);
    let from = query.from.unwrap_or_else(|| match period {
        UsagePeriod::Day => to - Duration::days(30),
        UsagePeriod::Month => to - Duration::days(365),
    });
    let range = range(&UsageRangeQuery {
        from: Some(from),
        to: Some(to),
    })?;
    let by_model = query.by_model.unwrap_or(false);
    let buckets = state
        .store()
        .usage
        .aggregate(
            current.id(),
            range,
            UsageGrouping {
                by_provider: by_model,
                by_model,
                period: Some(match period {
                    UsagePeriod::Day => Period::Day,
                    UsagePeriod::Month => Period::Month,
                }),
            },
        )
        .await?;
    let buckets = buckets
        .into_iter()
        .filter_map(|bucket| {
            Some(UsagePeriodBucket {
                period_start: bucket.period_start?,
                provider: bucket.provider,
                model: bucket.model,
                usage: figures(bucket.requests, &bucket.counts),
            })
        })
        .collect();
    Ok(Json(UsagePeriodsResponse {
        period,
        from: range.from,
        to: range.to,
        buckets,
    }))
}
