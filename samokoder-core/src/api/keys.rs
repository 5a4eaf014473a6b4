//! `/v1/keys/*`: the caller's own LLM provider keys (BYOK). A key is never returned, only its
//! last four characters.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::usage::UsageFigures;

/// `POST /v1/keys`: add or replace the key for a provider.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyCreateRequest {
    /// The provider, e.g. `openai`, `anthropic`, `groq`, `openrouter`, `azure`, or a provider
    /// the deployment configured.
    pub provider: String,
    /// The key, as the provider issued it.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub api_key: String,
    /// A label to tell keys apart (at most 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The model to prefer with this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A different API base URL; accepted only for hosts the deployment allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Provider-specific settings (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub settings: Option<serde_json::Value>,
}

impl std::fmt::Debug for ApiKeyCreateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyCreateRequest")
            .field("provider", &self.provider)
            .field("label", &self.label)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// `PUT /v1/keys/{provider}/settings`: replaces the key's settings as a whole (an absent field
/// is cleared), keeping the key itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeySettingsRequest {
    /// The model to prefer; absent or `null` clears the preference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A different API base URL (allowed hosts only); absent or `null` restores the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Provider-specific settings; absent or `null` means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub settings: Option<serde_json::Value>,
}

/// A stored key, masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyResponse {
    /// The provider.
    pub provider: String,
    /// `...-` and the last four characters of the key, as the original showed it.
    pub display_key: String,
    /// The last four characters of the key.
    pub last_four: String,
    /// The label, if any.
    pub label: Option<String>,
    /// The preferred model, if any.
    pub model: Option<String>,
    /// The base URL override, if any.
    pub base_url: Option<String>,
    /// Provider-specific settings.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: serde_json::Value,
    /// When the key was first stored.
    pub created_at: DateTime<Utc>,
    /// When the key or its settings last changed.
    pub updated_at: DateTime<Utc>,
}

/// One provider and model's usage, as `GET /v1/keys/{provider}/usage` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyUsageEntry {
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The figures.
    #[serde(flatten)]
    pub usage: UsageFigures,
}

/// `GET /v1/keys/usage`: provider → model → usage.
pub type KeysUsageResponse = BTreeMap<String, BTreeMap<String, KeyUsageEntry>>;
