//! `/v1/models/*`: the providers and models the deployment knows.

use samokoder_core::api::models::{ModelsResponse, ProviderModels};

use crate::operations as ops;
use crate::{Client, Error};

/// Model catalogue operations; from [`Client::models`]. No session needed.
#[derive(Debug, Clone, Copy)]
pub struct Models<'a> {
    pub(crate) client: &'a Client,
}

impl Models<'_> {
    /// `GET /v1/models`: provider → its models, limits and prices.
    pub async fn list(&self) -> Result<ModelsResponse, Error> {
        self.client.call(&ops::LIST_MODELS, &[]).send_json().await
    }

    /// `GET /v1/models/{provider}`.
    pub async fn provider(&self, provider: &str) -> Result<ProviderModels, Error> {
        self.client
            .call(&ops::PROVIDER_MODELS, &[provider])
            .send_json()
            .await
    }
}
