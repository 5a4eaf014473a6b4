//! `/v1/usage/token/*`: LLM usage as recorded per request, summed.

use samokoder_core::api::usage::{
    ModelUsageResponse, ProviderUsageResponse, TokenUsageResponse, UsagePeriodsQuery,
    UsagePeriodsResponse, UsageRangeQuery, UsageSummaryResponse,
};

use crate::operations as ops;
use crate::{Client, Error};

/// Usage figures; from [`Client::usage`].
#[derive(Debug, Clone, Copy)]
pub struct Usage<'a> {
    pub(crate) client: &'a Client,
}

impl Usage<'_> {
    /// `GET /v1/usage/token`: provider → model → usage in the range.
    pub async fn tokens(&self, range: &UsageRangeQuery) -> Result<TokenUsageResponse, Error> {
        self.client
            .call(&ops::TOKEN_USAGE, &[])
            .query(range)
            .send_json()
            .await
    }

    /// `GET /v1/usage/token/periods`: usage per day or month.
    pub async fn periods(&self, query: &UsagePeriodsQuery) -> Result<UsagePeriodsResponse, Error> {
        self.client
            .call(&ops::TOKEN_USAGE_PERIODS, &[])
            .query(query)
            .send_json()
            .await
    }

    /// `GET /v1/usage/token/provider/{provider}`.
    pub async fn provider(
        &self,
        provider: &str,
        range: &UsageRangeQuery,
    ) -> Result<ProviderUsageResponse, Error> {
        self.client
            .call(&ops::PROVIDER_TOKEN_USAGE, &[provider])
            .query(range)
            .send_json()
            .await
    }

    /// `GET /v1/usage/token/provider/{provider}/model/{model}`.
    pub async fn model(
        &self,
        provider: &str,
        model: &str,
        range: &UsageRangeQuery,
    ) -> Result<ModelUsageResponse, Error> {
        self.client
            .call(&ops::MODEL_TOKEN_USAGE, &[provider, model])
            .query(range)
            .send_json()
            .await
    }

    /// `GET /v1/usage/token/summary`: totals, and per provider.
    pub async fn summary(&self, range: &UsageRangeQuery) -> Result<UsageSummaryResponse, Error> {
        self.client
            .call(&ops::TOKEN_USAGE_SUMMARY, &[])
            .query(range)
            .send_json()
            .await
    }
}
