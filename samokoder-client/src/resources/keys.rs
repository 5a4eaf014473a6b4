//! `/v1/keys/*`: the caller's own LLM provider keys (BYOK).

use samokoder_core::api::keys::{
    ApiKeyCreateRequest, ApiKeyResponse, ApiKeySettingsRequest, KeyUsageEntry, KeysUsageResponse,
};

use crate::operations as ops;
use crate::{Client, Error};

/// Provider-key operations; from [`Client::keys`]. Keys are never returned, only their last
/// four characters.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    pub(crate) client: &'a Client,
}

impl Keys<'_> {
    /// `GET /v1/keys`: the stored keys, masked.
    pub async fn list(&self) -> Result<Vec<ApiKeyResponse>, Error> {
        self.client.call(&ops::LIST_KEYS, &[]).send_json().await
    }

    /// `POST /v1/keys`: adds the key for a provider, or replaces the one it has.
    pub async fn put(&self, request: &ApiKeyCreateRequest) -> Result<ApiKeyResponse, Error> {
        self.client
            .call(&ops::PUT_KEY, &[])
            .json(request)
            .send_json()
            .await
    }

    /// `DELETE /v1/keys/{provider}`.
    pub async fn delete(&self, provider: &str) -> Result<(), Error> {
        self.client
            .call(&ops::DELETE_KEY, &[provider])
            .send_empty()
            .await
    }

    /// `PUT /v1/keys/{provider}/settings`: replaces the key's settings, keeping the key.
    pub async fn update_settings(
        &self,
        provider: &str,
        request: &ApiKeySettingsRequest,
    ) -> Result<ApiKeyResponse, Error> {
        self.client
            .call(&ops::UPDATE_KEY_SETTINGS, &[provider])
            .json(request)
            .send_json()
            .await
    }

    /// `GET /v1/keys/usage`: provider → model → usage, over all of the caller's keys.
    pub async fn usage(&self) -> Result<KeysUsageResponse, Error> {
        self.client.call(&ops::KEYS_USAGE, &[]).send_json().await
    }

    /// `GET /v1/keys/{provider}/usage`: one provider's usage per model.
    pub async fn provider_usage(&self, provider: &str) -> Result<Vec<KeyUsageEntry>, Error> {
        self.client
            .call(&ops::KEY_USAGE, &[provider])
            .send_json()
            .await
    }
}
