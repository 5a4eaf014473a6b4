//! `/v1/models/*`: the providers and models this deployment knows, with their limits and prices.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a model costs, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelPricing {
    /// Input (prompt) tokens.
    pub input_per_million_usd: f64,
    /// Output (completion) tokens.
    pub output_per_million_usd: f64,
    /// Input tokens served from the provider's prompt cache, when priced differently.
    pub cached_input_per_million_usd: Option<f64>,
}

/// One model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelInfo {
    /// The id to use in settings and requests.
    pub id: String,
    /// A display name.
    pub name: String,
    /// The context window in tokens (the original's field name).
    pub context: u64,
    /// The most output tokens in one answer.
    pub max_output_tokens: u64,
    /// The price, or `null` when this deployment has none for the model.
    pub pricing: Option<ModelPricing>,
}

/// One provider's models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderModels {
    /// The models.
    pub models: Vec<ModelInfo>,
    /// The id of the model used when none is chosen.
    pub default: String,
}

/// `GET /v1/models`: provider name → its models.
pub type ModelsResponse = BTreeMap<String, ProviderModels>;
