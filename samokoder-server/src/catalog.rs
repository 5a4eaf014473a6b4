//! The provider and model catalogue of `/v1/models`: the hosted providers every deployment
//! offers (users can bring their own keys for them), plus whatever the deployment configured
//! under `llm`, each model with its context window, output limit and price.
//!
//! Limits come from the LLM layer's built-in table (`ModelLimits::lookup`) with the
//! configuration's per-provider and per-model overrides; prices from its price table (built-in
//! list prices plus `llm.pricing` and per-provider/model `pricing`), so what this lists is what
//! budgets are charged with.

use std::collections::{BTreeMap, BTreeSet};

use samokoder_core::api::models::{ModelInfo, ModelPricing, ModelsResponse, ProviderModels};
use samokoder_core::llm::{LlmConfig, ModelLimits, PriceTable, ProviderConfig, UsdPerMTok};

/// One built-in provider: its models (id, display name), the first being the default.
struct BuiltIn {
    provider: &'static str,
    models: &'static [(&'static str, &'static str)],
}

/// The hosted providers and the models offered for them unless the deployment says otherwise.
const BUILT_IN: &[BuiltIn] = &[
    BuiltIn {
        provider: "openai",
        models: &[
            ("gpt-4o-mini", "GPT-4o mini"),
            ("gpt-4o", "GPT-4o"),
            ("gpt-4.1", "GPT-4.1"),
            ("gpt-4.1-mini", "GPT-4.1 mini"),
            ("gpt-4.1-nano", "GPT-4.1 nano"),
            ("gpt-5", "GPT-5"),
            ("gpt-5-mini", "GPT-5 mini"),
            ("o4-mini", "o4-mini"),
        ],
    },
    BuiltIn {
        provider: "anthropic",
        models: &[
            ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
            ("claude-opus-4-5", "Claude Opus 4.5"),
            ("claude-haiku-4-5", "Claude Haiku 4.5"),
            ("claude-3-7-sonnet-latest", "Claude 3.7 Sonnet"),
        ],
    },
    BuiltIn {
        provider: "groq",
        models: &[
            ("llama-3.3-70b-versatile", "Llama 3.3 70B Versatile"),
            ("llama-3.1-8b-instant", "Llama 3.1 8B Instant"),
        ],
    },
    BuiltIn {
        provider: "openrouter",
        models: &[
            (
                "anthropic/claude-sonnet-4.5",
                "Claude Sonnet 4.5 (OpenRouter)",
            ),
            ("openai/gpt-4o", "GPT-4o (OpenRouter)"),
            ("openai/gpt-4o-mini", "GPT-4o mini (OpenRouter)"),
            (
                "meta-llama/llama-3.3-70b-instruct",
                "Llama 3.3 70B Instruct (OpenRouter)",
            ),
        ],
    },
];

/// Hosted provider kinds users may bring a key for without the deployment configuring them.
/// (Local kinds such as `ollama` are left out: their default address is the server's own
/// localhost, which a user's key must not make the server call.)
pub const BYOK_KINDS: &[&str] = &["openai", "anthropic", "groq", "openrouter", "azure"];

/// The catalogue, computed once from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    providers: ModelsResponse,
    byok: BTreeSet<String>,
}

impl Catalog {
    /// The catalogue of `config` with `prices`.
    pub fn new(config: &LlmConfig, prices: &PriceTable) -> Self {
        let mut providers = BTreeMap::new();
        let empty = ProviderConfig::default();
        for built_in in BUILT_IN {
            let provider_config = config.providers.get(built_in.provider).unwrap_or(&empty);
            if let Some(entry) =
                provider_entry(built_in.provider, built_in.models, provider_config, prices)
            {
                providers.insert(built_in.provider.to_owned(), entry);
            }
        }
        for (name, provider_config) in &config.providers {
            if providers.contains_key(name) {
                continue;
            }
            if let Some(entry) = provider_entry(name, &[], provider_config, prices) {
                providers.insert(name.clone(), entry);
            }
        }
        let byok = BYOK_KINDS
            .iter()
            .map(|kind| (*kind).to_owned())
            .chain(config.providers.keys().cloned())
            .collect();
        Self { providers, byok }
    }

    /// Every provider with its models.
    pub fn all(&self) -> &ModelsResponse {
        &self.providers
    }

    /// One provider's models.
    pub fn provider(&self, name: &str) -> Option<&ProviderModels> {
        self.providers.get(name)
    }

    /// Whether users may store their own key for `provider`.
    pub fn accepts_user_key(&self, provider: &str) -> bool {
        self.byok.contains(provider)
    }

    /// The providers users may store keys for, sorted.
    pub fn user_key_providers(&self) -> impl Iterator<Item = &str> {
        self.byok.iter().map(String::as_str)
    }
}

/// A provider's entry: the configured default model first, then the configured models, then
/// the built-in ones; `None` when it has no model at all.
fn provider_entry(
    name: &str,
    built_in: &[(&str, &str)],
    config: &ProviderConfig,
    prices: &PriceTable,
) -> Option<ProviderModels> {
    let mut ids: Vec<String> = Vec::new();
    let mut push = |id: &str| {
        if !id.is_empty() && !ids.iter().any(|known| known == id) {
            ids.push(id.to_owned());
        }
    };
    if let Some(model) = &config.model {
        push(model);
    }
    for model in config.models.keys() {
        push(model);
    }
    for (model, _) in built_in {
        push(model);
    }
    let default = ids.first()?.clone();
    let models = ids
        .iter()
        .map(|id| {
            let display = built_in
                .iter()
                .find(|(known, _)| known == id)
                .map_or_else(|| id.clone(), |(_, display)| (*display).to_owned());
            let limits = limits(config, id);
            ModelInfo {
                id: id.clone(),
                name: display,
                context: limits.context_window,
                max_output_tokens: limits.max_output_tokens,
                pricing: price(prices, name, id),
            }
        })
        .collect();
    Some(ProviderModels { models, default })
}

/// The built-in limits of `model`, overridden by the provider's configuration (as the LLM
/// layer's routes apply them).
fn limits(config: &ProviderConfig, model: &str) -> ModelLimits {
    let mut limits = ModelLimits::lookup(model);
    let model_config = config.models.get(model);
    if let Some(window) = model_config
        .and_then(|m| m.context_window)
        .or(config.context_window)
    {
        limits.context_window = window;
    }
    if let Some(max) = model_config
        .and_then(|m| m.max_output_tokens)
        .or(config.max_output_tokens)
    {
        limits.max_output_tokens = max;
    }
    limits
}

/// The price of `model` on `provider`, as runs are billed.
fn price(prices: &PriceTable, provider: &str, model: &str) -> Option<ModelPricing> {
    let price = prices.lookup(provider, model)?;
    Some(ModelPricing {
        input_per_million_usd: usd(price.input),
        output_per_million_usd: usd(price.output),
        cached_input_per_million_usd: price.cached_input.map(usd),
    })
}

/// Micro-dollars per million tokens as dollars (exact for every price with at most six decimals).
#[allow(clippy::cast_precision_loss)] // prices are far below 2^53 micro-dollars
fn usd(price: UsdPerMTok) -> f64 {
    price.0 as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(config: serde_json::Value) -> Catalog {
        let config: LlmConfig = serde_json::from_value(config).unwrap();
        // The registry's table: built-in prices plus the configured ones.
        let prices = samokoder_core::llm::LlmRegistry::new(config.clone())
            .unwrap()
            .prices();
        Catalog::new(&config, &prices)
    }

    #[test]
    fn lists_hosted_providers_with_limits_and_prices() {
        let catalog = catalog(serde_json::json!({}));
        let openai = catalog.provider("openai").unwrap();
        assert_eq!(openai.default, "gpt-4o-mini");
        let mini = &openai.models[0];
        assert_eq!(mini.context, 128_000);
        let pricing = mini.pricing.unwrap();
        assert!((pricing.input_per_million_usd - 0.15).abs() < 1e-9);
        assert!((pricing.output_per_million_usd - 0.60).abs() < 1e-9);
        // OpenRouter's vendor-prefixed names find the vendor's limits and price.
        let routed = &catalog.provider("openrouter").unwrap().models[1];
        assert_eq!(routed.id, "openai/gpt-4o");
        assert_eq!(routed.context, 128_000);
        assert!(routed.pricing.is_some());
        assert!(catalog.provider("ollama").is_none());
        assert!(catalog.accepts_user_key("anthropic"));
        assert!(!catalog.accepts_user_key("ollama"));
    }

    #[test]
    fn configuration_adds_providers_models_and_overrides() {
        let catalog = catalog(serde_json::json!({
            "openai": {"model": "gpt-4.1-mini"},
            "ollama": {
                "model": "qwen2.5-coder:14b",
                "context_window": 65536,
                "pricing": {"input": "0", "output": "0"},
            },
        }));
        assert_eq!(catalog.provider("openai").unwrap().default, "gpt-4.1-mini");
        let ollama = catalog.provider("ollama").unwrap();
        assert_eq!(ollama.default, "qwen2.5-coder:14b");
        assert_eq!(ollama.models[0].context, 65_536);
        assert_eq!(ollama.models[0].pricing.unwrap().input_per_million_usd, 0.0);
        assert!(
            catalog.accepts_user_key("ollama"),
            "configured by the deployment"
        );
    }
}
