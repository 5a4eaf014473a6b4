//! LLM configuration: providers, per-role routes, prices, and the per-run resolution that
//! overlays a user's own keys (BYOK) on the deployment's.
//!
//! The shape follows the environment the server reads with figment (`SAMOKODER_` prefix, `__`
//! nesting), where `llm` is a map from provider name to its settings plus a few reserved keys:
//!
//! ```text
//! SAMOKODER_LLM__OPENAI__API_KEY=sk-...
//! SAMOKODER_LLM__OPENAI__MODEL=gpt-4o-mini
//! SAMOKODER_LLM__ANTHROPIC__API_KEY=sk-ant-...
//! SAMOKODER_LLM__ANTHROPIC__MODEL=claude-sonnet-4-5
//! SAMOKODER_LLM__OLLAMA__MODEL=qwen2.5-coder:14b
//! SAMOKODER_LLM__AGENTS__DEFAULT__PROVIDER=openai
//! SAMOKODER_LLM__AGENTS__ARCHITECT__PROVIDER=anthropic
//! SAMOKODER_LLM__ALLOWED_BASE_URL_HOSTS=[openrouter.ai, "*.openai.azure.com"]
//! ```
//!
//! Header names cannot be written in environment variable names (`-` is not allowed there and
//! figment lowercases keys), so extra `headers` belong in the configuration file.
//!
//! A provider named after a known kind (`openai`, `anthropic`, `azure`, `groq`, `openrouter`,
//! `ollama`, `vllm`, `lmstudio`) needs no `kind` and gets that kind's base URL; any other name
//! needs `kind` (`openai_compatible` for an arbitrary OpenAI-style server) and `base_url`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use url::Url;

use super::openai::default_http_client;
use super::{
    AgentRole, AnthropicProvider, ApiKey, DEFAULT_MAX_CONCURRENCY, LlmError, MaxTokensField,
    ModelLimits, ModelPrice, OpenAiOptions, OpenAiProvider, PriceTable, Provider, ProviderHandle,
    Route, RouteTable, StructuredOutputMode,
};
use crate::net::HostAllowlist;

/// The kinds of provider the layer speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// api.openai.com.
    #[serde(alias = "open_ai")]
    Openai,
    /// Azure OpenAI (deployment in the path, `api-version` query, `api-key` header).
    #[serde(alias = "azure_openai")]
    Azure,
    /// The Anthropic Messages API.
    Anthropic,
    /// Groq's OpenAI-compatible API.
    Groq,
    /// OpenRouter.
    Openrouter,
    /// A local Ollama (`/v1` OpenAI compatibility).
    Ollama,
    /// A vLLM server.
    Vllm,
    /// LM Studio's local server.
    #[serde(alias = "lm_studio")]
    Lmstudio,
    /// Any other OpenAI-compatible server (needs `base_url`).
    OpenaiCompatible,
}

impl ProviderKind {
    /// The kind a provider name implies, for names that are kinds.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().replace('-', "_").as_str() {
            "openai" | "open_ai" => Self::Openai,
            "azure" | "azure_openai" => Self::Azure,
            "anthropic" => Self::Anthropic,
            "groq" => Self::Groq,
            "openrouter" => Self::Openrouter,
            "ollama" => Self::Ollama,
            "vllm" => Self::Vllm,
            "lmstudio" | "lm_studio" => Self::Lmstudio,
            "openai_compatible" => Self::OpenaiCompatible,
            _ => return None,
        })
    }

    /// The public base URL of the kind, if it has one.
    pub fn default_base_url(self) -> Option<&'static str> {
        Some(match self {
            Self::Openai => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com",
            Self::Groq => "https://api.groq.com/openai/v1",
            Self::Openrouter => "https://openrouter.ai/api/v1",
            Self::Ollama => "http://localhost:11434/v1",
            Self::Vllm => "http://localhost:8000/v1",
            Self::Lmstudio => "http://localhost:1234/v1",
            Self::Azure | Self::OpenaiCompatible => return None,
        })
    }

    /// Whether requests without a key are pointless (hosted services).
    pub fn requires_key(self) -> bool {
        matches!(
            self,
            Self::Openai | Self::Azure | Self::Anthropic | Self::Groq | Self::Openrouter
        )
    }

    fn openai_options(self) -> OpenAiOptions {
        match self {
            Self::Openai | Self::Azure => OpenAiOptions::openai(),
            _ => OpenAiOptions::compatible(),
        }
    }
}

/// Overrides for one model of a provider.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelConfig {
    /// Its context window.
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Its output limit.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Its price on this provider.
    #[serde(default)]
    pub pricing: Option<ModelPrice>,
}

/// One provider of the deployment.
#[derive(Clone, Default, Deserialize)]
pub struct ProviderConfig {
    /// The protocol and presets; inferred from the provider's name when that is a kind.
    #[serde(default)]
    pub kind: Option<ProviderKind>,
    /// Base URL; defaults to the kind's public URL.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The deployment's key (users may bring their own).
    #[serde(default)]
    pub api_key: Option<ApiKey>,
    /// The model used by routes that name this provider without a model.
    #[serde(default)]
    pub model: Option<String>,
    /// Extra headers on every request (OpenRouter's `HTTP-Referer`, `X-Title`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Azure: the `api-version`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Azure: a fixed deployment name (defaults to the model name).
    #[serde(default)]
    pub deployment: Option<String>,
    /// Context window for every model of this provider (overrides the catalogue).
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Output limit for every model of this provider.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Price for every model of this provider (a local model: zero).
    #[serde(default)]
    pub pricing: Option<ModelPrice>,
    /// Per-model overrides.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
    /// Native structured output support (defaults by kind).
    #[serde(default)]
    pub structured_output: Option<StructuredOutputMode>,
    /// Ask for usage in streams (default true).
    #[serde(default)]
    pub stream_usage: Option<bool>,
    /// The output-limit field name (defaults by kind).
    #[serde(default)]
    pub max_tokens_field: Option<MaxTokensField>,
    /// Requests in flight at most (default 4).
    #[serde(default)]
    pub max_concurrency: Option<usize>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers can carry credentials of gateways; print their names only.
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("model", &self.model)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("api_version", &self.api_version)
            .field("deployment", &self.deployment)
            .field("context_window", &self.context_window)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("pricing", &self.pricing)
            .field("models", &self.models.keys().collect::<Vec<_>>())
            .field("structured_output", &self.structured_output)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

/// Where one role (or `default`) goes.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RouteConfig {
    /// Provider name; the default route's provider when absent.
    #[serde(default)]
    pub provider: Option<String>,
    /// Model; the provider's model when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Temperature; the role's default when absent.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Default output limit of this role's requests.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
}

/// The deployment's LLM configuration (`llm` in the server configuration).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LlmConfig {
    /// Routes by role name (`architect`, `code_writer`, ...) plus `default`.
    #[serde(default)]
    pub agents: BTreeMap<String, RouteConfig>,
    /// Hosts (and ports) a user-supplied base URL may point at: `openrouter.ai`,
    /// `*.openai.azure.com`, `gateway.internal:8080` ([`HostAllowlist`]: ports 443 and 80
    /// unless one is given, `:*` for any). Empty: users cannot change base URLs at all.
    #[serde(default)]
    pub allowed_base_url_hosts: Vec<String>,
    /// Provider-independent prices by model name (its dated snapshots match too), on top of the
    /// built-in table.
    #[serde(default)]
    pub pricing: BTreeMap<String, ModelPrice>,
    /// The providers, by name.
    #[serde(flatten)]
    pub providers: BTreeMap<String, ProviderConfig>,
}

/// A user's own settings for one provider.
#[derive(Clone, Debug, Deserialize)]
pub struct UserProviderSettings {
    /// The user's key: replaces the deployment's key for this provider.
    pub api_key: ApiKey,
    /// A different base URL; accepted only for hosts the deployment allows.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The user's preferred model: replaces the provider's default model (roles the deployment
    /// routed to a specific model keep it).
    #[serde(default)]
    pub model: Option<String>,
}

/// A user's own LLM settings (BYOK), overlaid on the deployment's per run.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct UserLlmSettings {
    /// By provider name.
    #[serde(default)]
    pub providers: BTreeMap<String, UserProviderSettings>,
    /// The provider for roles without their own route.
    #[serde(default)]
    pub default_provider: Option<String>,
}

#[derive(Clone)]
struct Spec {
    name: String,
    kind: ProviderKind,
    config: ProviderConfig,
}

impl Spec {
    fn base_url(&self) -> Result<&str, LlmError> {
        self.config
            .base_url
            .as_deref()
            .or(self.kind.default_base_url())
            .ok_or_else(|| LlmError::Config(format!("provider `{}` needs base_url", self.name)))
    }

    fn build(
        &self,
        key: Option<ApiKey>,
        base_url: &str,
        client: &reqwest::Client,
    ) -> Result<ProviderHandle, LlmError> {
        let name = self.name.clone();
        let key = key.filter(|k| !k.is_empty());
        if self.kind.requires_key() && key.is_none() {
            return Err(missing_key(&name));
        }
        let provider: Arc<dyn Provider> = match self.kind {
            ProviderKind::Anthropic => {
                let mut p =
                    AnthropicProvider::new(name, base_url, key.unwrap_or_else(|| ApiKey::new("")))?
                        .with_client(client.clone());
                for (h, v) in &self.config.headers {
                    p = p.with_header(h, v)?;
                }
                Arc::new(p)
            }
            kind => {
                let mut p = if kind == ProviderKind::Azure {
                    let version = self.config.api_version.as_deref().unwrap_or("2024-10-21");
                    let p = OpenAiProvider::azure(
                        name,
                        base_url,
                        version,
                        key.unwrap_or_else(|| ApiKey::new("")),
                    )?;
                    match &self.config.deployment {
                        Some(d) => p.with_deployment(d.clone()),
                        None => p,
                    }
                } else {
                    OpenAiProvider::new(name, base_url, key)?
                };
                let mut options = kind.openai_options();
                if let Some(mode) = self.config.structured_output {
                    options.structured_output = mode;
                }
                if let Some(stream_usage) = self.config.stream_usage {
                    options.stream_usage = stream_usage;
                }
                if let Some(field) = self.config.max_tokens_field {
                    options.max_tokens_field = field;
                }
                p = p.with_options(options).with_client(client.clone());
                for (h, v) in &self.config.headers {
                    p = p.with_header(h, v)?;
                }
                Arc::new(p)
            }
        };
        Ok(ProviderHandle::new(
            provider,
            self.config
                .max_concurrency
                .unwrap_or(DEFAULT_MAX_CONCURRENCY),
        ))
    }

    fn limits(&self, model: &str) -> ModelLimits {
        let mut limits = ModelLimits::lookup(model);
        let model_config = self.config.models.get(model);
        if let Some(window) = model_config
            .and_then(|m| m.context_window)
            .or(self.config.context_window)
        {
            limits.context_window = window;
        }
        if let Some(max) = model_config
            .and_then(|m| m.max_output_tokens)
            .or(self.config.max_output_tokens)
        {
            limits.max_output_tokens = max;
        }
        limits
    }
}

/// Puts a run's choice for a role over the deployment's route: a different provider drops the
/// deployment's model (it belongs to the other provider), a model replaces the model.
fn overlay_route(route: &mut RouteConfig, choice: &RouteConfig) {
    if choice.provider.is_some() && choice.provider != route.provider {
        route.provider = choice.provider.clone();
        route.model = None;
    }
    if choice.model.is_some() {
        route.model = choice.model.clone();
    }
    if choice.temperature.is_some() {
        route.temperature = choice.temperature;
    }
    if choice.max_output_tokens.is_some() {
        route.max_output_tokens = choice.max_output_tokens;
    }
}

fn missing_key(provider: &str) -> LlmError {
    LlmError::MissingKey {
        provider: provider.to_owned(),
    }
}

/// The deployment's providers, built once at start-up and shared by every run (so their
/// concurrency bounds hold across runs), and the per-run resolution of routes.
///
/// ```
/// use samokoder_core::llm::{AgentRole, LlmConfig, LlmRegistry, UserLlmSettings};
///
/// let config: LlmConfig = serde_json::from_value(serde_json::json!({
///     "openai": { "api_key": "sk-deployment", "model": "gpt-4o-mini" },
///     "anthropic": { "model": "claude-sonnet-4-5" },
///     "agents": { "default": { "provider": "openai" }, "architect": { "provider": "anthropic" } },
/// }))
/// .unwrap();
/// let registry = LlmRegistry::new(config).unwrap();
///
/// // Without a key for Anthropic the architect cannot be routed...
/// let err = registry.routes(None).unwrap_err();
/// assert!(err.to_string().contains("`anthropic` has no API key"), "{err}");
///
/// // ...until the user brings one.
/// let user: UserLlmSettings = serde_json::from_value(serde_json::json!({
///     "providers": { "anthropic": { "api_key": "sk-ant-user" } },
/// }))
/// .unwrap();
/// let routes = registry.routes(Some(&user)).unwrap();
/// assert_eq!(routes.route(AgentRole::Architect).model, "claude-sonnet-4-5");
/// assert_eq!(routes.route(AgentRole::CodeWriter).model, "gpt-4o-mini");
/// ```
pub struct LlmRegistry {
    specs: BTreeMap<String, Spec>,
    handles: BTreeMap<String, Result<ProviderHandle, LlmError>>,
    agents: BTreeMap<String, RouteConfig>,
    allowed_hosts: HostAllowlist,
    prices: Arc<PriceTable>,
    client: reqwest::Client,
}

impl fmt::Debug for LlmRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmRegistry")
            .field("providers", &self.specs.keys().collect::<Vec<_>>())
            .field("agents", &self.agents)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

impl LlmRegistry {
    /// Validates `config` and builds the deployment's providers.
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        Self::with_client(config, default_http_client())
    }

    /// Like [`Self::new`], with the HTTP client every provider shares.
    pub fn with_client(config: LlmConfig, client: reqwest::Client) -> Result<Self, LlmError> {
        let mut specs = BTreeMap::new();
        let mut prices = PriceTable::with_defaults();
        for (model, price) in &config.pricing {
            prices.insert(None, model, *price);
        }
        for (name, provider) in config.providers {
            let kind = provider.kind.or_else(|| ProviderKind::from_name(&name)).ok_or_else(|| {
                LlmError::Config(format!(
                    "provider `{name}`: unknown name; set `kind` (e.g. openai_compatible) and `base_url`"
                ))
            })?;
            if let Some(price) = provider.pricing {
                prices.insert_provider_default(&name, price);
            }
            for (model, m) in &provider.models {
                if let Some(price) = m.pricing {
                    prices.insert(Some(&name), model, price);
                }
            }
            specs.insert(
                name.clone(),
                Spec {
                    name,
                    kind,
                    config: provider,
                },
            );
        }
        for role in config.agents.keys() {
            if role != "default" {
                role.parse::<AgentRole>()
                    .map_err(|e| LlmError::Config(format!("agents: {e}")))?;
            }
        }
        for (role, route) in &config.agents {
            if let Some(p) = &route.provider
                && !specs.contains_key(p)
                && ProviderKind::from_name(p).is_none()
            {
                return Err(LlmError::Config(format!(
                    "agents.{role}: unknown provider `{p}`"
                )));
            }
        }
        let mut handles = BTreeMap::new();
        for (name, spec) in &specs {
            let has_key = spec.config.api_key.as_ref().is_some_and(|k| !k.is_empty());
            let built = if spec.kind.requires_key() && !has_key {
                // Legal: users may bring their own key. Reported when a run routes here.
                Err(missing_key(name))
            } else {
                Ok(spec.build(spec.config.api_key.clone(), spec.base_url()?, &client)?)
            };
            handles.insert(name.clone(), built);
        }
        Ok(Self {
            specs,
            handles,
            agents: config.agents,
            allowed_hosts: HostAllowlist::parse(&config.allowed_base_url_hosts)
                .map_err(|e| LlmError::Config(format!("allowed_base_url_hosts: {e}")))?,
            prices: Arc::new(prices),
            client,
        })
    }

    /// The price table (built-in defaults plus configuration).
    pub fn prices(&self) -> Arc<PriceTable> {
        self.prices.clone()
    }

    fn user_base_url(&self, name: &str, url: &str) -> Result<String, LlmError> {
        let parsed = Url::parse(url).map_err(|_| {
            LlmError::Config(format!("provider `{name}`: your base URL is not a URL"))
        })?;
        let host = parsed.host_str().unwrap_or_default();
        let port = parsed.port_or_known_default().unwrap_or(0);
        if !matches!(parsed.scheme(), "http" | "https")
            || !parsed.username().is_empty()
            || parsed.password().is_some()
            || !self.allowed_hosts.allows(host, port)
        {
            return Err(LlmError::Config(format!(
                "provider `{name}`: base URL `{host}:{port}` is not allowed on this deployment"
            )));
        }
        Ok(url.to_owned())
    }

    /// Resolves the routes of one run: the deployment's providers and routes, with `user`'s keys,
    /// base URLs (allowlisted hosts only) and preferred models overlaid.
    pub fn routes(&self, user: Option<&UserLlmSettings>) -> Result<RouteTable, LlmError> {
        self.routes_with(user, &BTreeMap::new())
    }

    /// [`Self::routes`] with one run's own choices on top: `overrides` by role name (`default`
    /// or an agent role) replace the deployment's provider and model for those roles. A new
    /// provider without a model uses that provider's model. Unknown role names are
    /// [`LlmError::Config`].
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use samokoder_core::llm::{AgentRole, LlmConfig, LlmRegistry, RouteConfig};
    ///
    /// let config: LlmConfig = serde_json::from_value(serde_json::json!({
    ///     "openai": { "api_key": "sk-deployment", "model": "gpt-4o-mini" },
    /// }))
    /// .unwrap();
    /// let registry = LlmRegistry::new(config).unwrap();
    /// let overrides = BTreeMap::from([(
    ///     "architect".to_owned(),
    ///     RouteConfig { model: Some("gpt-4.1".into()), ..RouteConfig::default() },
    /// )]);
    /// let routes = registry.routes_with(None, &overrides).unwrap();
    /// assert_eq!(routes.route(AgentRole::Architect).model, "gpt-4.1");
    /// assert_eq!(routes.route(AgentRole::CodeWriter).model, "gpt-4o-mini");
    /// ```
    pub fn routes_with(
        &self,
        user: Option<&UserLlmSettings>,
        overrides: &BTreeMap<String, RouteConfig>,
    ) -> Result<RouteTable, LlmError> {
        let mut agents = self.agents.clone();
        for (role, choice) in overrides {
            if role == "default" {
                continue;
            }
            role.parse::<AgentRole>()
                .map_err(|e| LlmError::Config(format!("models: {e}")))?;
            let entry = agents.entry(role.clone()).or_default();
            overlay_route(entry, choice);
        }
        let empty = UserLlmSettings::default();
        let user = user.unwrap_or(&empty);
        let mut handles: BTreeMap<String, Result<ProviderHandle, LlmError>> = self.handles.clone();
        let mut specs = self.specs.clone();
        for (name, settings) in &user.providers {
            let spec = match specs.get(name) {
                Some(spec) => spec.clone(),
                None => {
                    let kind = ProviderKind::from_name(name)
                        .filter(|k| k.default_base_url().is_some() || settings.base_url.is_some())
                        .filter(|k| *k != ProviderKind::OpenaiCompatible)
                        .ok_or_else(|| {
                            LlmError::Config(format!(
                                "provider `{name}` is not available on this deployment"
                            ))
                        })?;
                    Spec {
                        name: name.clone(),
                        kind,
                        config: ProviderConfig::default(),
                    }
                }
            };
            let base_url = match &settings.base_url {
                Some(url) => self.user_base_url(name, url)?,
                None => spec.base_url()?.to_owned(),
            };
            let mut spec = spec;
            if let Some(model) = &settings.model {
                spec.config.model = Some(model.clone());
            }
            handles.insert(
                name.clone(),
                spec.build(Some(settings.api_key.clone()), &base_url, &self.client),
            );
            specs.insert(name.clone(), spec);
        }

        let mut default_config = agents.get("default").cloned().unwrap_or_default();
        if user.default_provider.is_some() && user.default_provider != default_config.provider {
            // The deployment's default model belongs to its default provider; on the user's
            // provider the provider's own (or the user's preferred) model applies.
            default_config.model = None;
            default_config.provider = user.default_provider.clone();
        }
        if let Some(choice) = overrides.get("default") {
            overlay_route(&mut default_config, choice);
        }
        let default_provider = default_config
            .provider
            .clone()
            .or_else(|| {
                // The only provider is the default: the deployment's, or (on a deployment with
                // none) the user's. A user's extra key never changes the deployment's routing.
                let only =
                    |mut names: Vec<&String>| (names.len() == 1).then(|| names.remove(0).clone());
                only(self.specs.keys().collect()).or_else(|| {
                    self.specs
                        .is_empty()
                        .then(|| only(user.providers.keys().collect()))
                        .flatten()
                })
            })
            .ok_or_else(|| {
                LlmError::Config(if specs.is_empty() {
                    "no LLM provider is configured".into()
                } else {
                    "several providers are configured: set agents.default.provider".into()
                })
            })?;

        let resolve = |role: Option<AgentRole>, route: &RouteConfig| -> Result<Route, LlmError> {
            let provider = route
                .provider
                .clone()
                .unwrap_or_else(|| default_provider.clone());
            let spec = specs.get(&provider).ok_or_else(|| {
                LlmError::Config(format!("provider `{provider}` is not configured"))
            })?;
            let handle = match handles.get(&provider) {
                Some(Ok(handle)) => handle.clone(),
                Some(Err(e)) => return Err(e.clone()),
                None => {
                    return Err(LlmError::Config(format!(
                        "provider `{provider}` is not configured"
                    )));
                }
            };
            let model = route
                .model
                .clone()
                .or_else(|| spec.config.model.clone())
                .ok_or_else(|| {
                    LlmError::Config(format!(
                        "provider `{provider}` has no model; set its `model`"
                    ))
                })?;
            let limits = spec.limits(&model);
            let mut resolved = Route::new(handle, model).limits(limits);
            resolved.max_output_tokens = route.max_output_tokens.unwrap_or_else(|| {
                u32::try_from(limits.max_output_tokens)
                    .unwrap_or(u32::MAX)
                    .min(super::DEFAULT_MAX_OUTPUT_TOKENS)
            });
            resolved.temperature = route
                .temperature
                .or(role.map(AgentRole::default_temperature));
            Ok(resolved)
        };

        let mut table = RouteTable::new(resolve(None, &default_config)?);
        for role in AgentRole::ALL {
            let route = match agents.get(role.as_str()) {
                Some(route) => route.clone(),
                None => RouteConfig {
                    provider: None,
                    ..default_config.clone()
                },
            };
            table = table.with(role, resolve(Some(role), &route)?);
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: serde_json::Value) -> LlmConfig {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn user_base_urls_must_be_allowlisted() {
        let registry = LlmRegistry::new(config(serde_json::json!({
            "openai": { "api_key": "sk-deploy", "model": "gpt-4o" },
            "allowed_base_url_hosts": ["gateway.example.com"],
        })))
        .unwrap();
        let user = |url: &str| UserLlmSettings {
            providers: [(
                "openai".to_owned(),
                UserProviderSettings {
                    api_key: ApiKey::new("sk-user"),
                    base_url: Some(url.to_owned()),
                    model: None,
                },
            )]
            .into(),
            default_provider: None,
        };
        assert!(
            registry
                .routes(Some(&user("https://gateway.example.com/v1")))
                .is_ok()
        );
        for bad in [
            "http://169.254.169.254/latest",
            "http://localhost:5432",
            "https://user:pw@gateway.example.com/v1",
            "file:///etc/passwd",
            // The allowed host on another port is another service.
            "https://gateway.example.com:5432/v1",
        ] {
            let err = registry.routes(Some(&user(bad))).unwrap_err();
            assert!(matches!(err, LlmError::Config(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn run_choices_override_roles_and_name_missing_keys() {
        let registry = LlmRegistry::new(config(serde_json::json!({
            "openai": { "api_key": "sk-deploy", "model": "gpt-4o-mini" },
            "anthropic": { "model": "claude-sonnet-4-5" },
            "agents": { "default": { "provider": "openai" }, "tech_lead": { "model": "gpt-4.1" } },
        })))
        .unwrap();
        let choice = |provider: Option<&str>, model: Option<&str>| RouteConfig {
            provider: provider.map(str::to_owned),
            model: model.map(str::to_owned),
            ..RouteConfig::default()
        };
        // Another provider for one role: its own model, unless one is named.
        let overrides = BTreeMap::from([("architect".to_owned(), choice(Some("anthropic"), None))]);
        let err = registry.routes_with(None, &overrides).unwrap_err();
        assert!(
            matches!(&err, LlmError::MissingKey { provider } if provider == "anthropic"),
            "{err}"
        );
        assert_eq!(err.code(), "provider_key_missing");
        // A model only: the deployment's provider for the role keeps serving it.
        let overrides = BTreeMap::from([
            ("tech_lead".to_owned(), choice(None, Some("o3"))),
            ("default".to_owned(), choice(None, Some("gpt-4o"))),
        ]);
        let routes = registry.routes_with(None, &overrides).unwrap();
        assert_eq!(routes.route(AgentRole::TechLead).model, "o3");
        assert_eq!(routes.route(AgentRole::CodeWriter).model, "gpt-4o");
        assert_eq!(
            routes.route(AgentRole::CodeWriter).provider.name(),
            "openai"
        );
        let unknown = BTreeMap::from([("archtect".to_owned(), choice(None, Some("m")))]);
        assert!(matches!(
            registry.routes_with(None, &unknown),
            Err(LlmError::Config(_))
        ));
    }

    #[test]
    fn unknown_roles_and_providers_are_configuration_errors() {
        assert!(LlmRegistry::new(config(serde_json::json!({"agents": {"archtect": {}}}))).is_err());
        assert!(LlmRegistry::new(config(serde_json::json!({"mystery": {"model": "m"}}))).is_err());
        assert!(
            LlmRegistry::new(config(
                serde_json::json!({"agents": {"architect": {"provider": "nope"}}})
            ))
            .is_err()
        );
        let two = LlmRegistry::new(config(serde_json::json!({
            "ollama": {"model": "a"}, "vllm": {"model": "b"},
        })))
        .unwrap();
        assert!(
            two.routes(None)
                .unwrap_err()
                .to_string()
                .contains("agents.default.provider")
        );
    }

    #[test]
    fn routes_use_role_temperatures_and_model_overrides() {
        let registry = LlmRegistry::new(config(serde_json::json!({
            "local": {
                "kind": "openai_compatible",
                "base_url": "http://10.0.0.5:8000/v1",
                "model": "qwen",
                "context_window": 65536,
                "pricing": {"input": 0, "output": 0},
            },
            "agents": {"code_writer": {"max_output_tokens": 16000}, "architect": {"temperature": 0.9}},
        })))
        .unwrap();
        let routes = registry.routes(None).unwrap();
        assert_eq!(routes.route(AgentRole::CodeWriter).max_output_tokens, 16000);
        assert_eq!(routes.route(AgentRole::CodeWriter).temperature, Some(0.0));
        assert_eq!(routes.route(AgentRole::Architect).temperature, Some(0.9));
        assert_eq!(
            routes.route(AgentRole::SpecWriter).limits.context_window,
            65536
        );
        assert_eq!(
            registry.prices().lookup("local", "qwen").unwrap().input.0,
            0
        );
    }

    #[test]
    fn a_users_extra_key_does_not_change_the_default_provider() {
        let registry = LlmRegistry::new(config(serde_json::json!({
            "openai": { "api_key": "sk-deploy", "model": "gpt-4o" },
        })))
        .unwrap();
        let user: UserLlmSettings = serde_json::from_value(serde_json::json!({
            "providers": {"anthropic": {"api_key": "sk-ant", "model": "claude-sonnet-4-5"}},
        }))
        .unwrap();
        let routes = registry.routes(Some(&user)).unwrap();
        assert_eq!(routes.route(AgentRole::Developer).provider.name(), "openai");

        // A deployment without providers runs on the user's only one.
        let empty = LlmRegistry::new(LlmConfig::default()).unwrap();
        assert!(
            matches!(empty.routes(None), Err(LlmError::Config(m)) if m.contains("no LLM provider"))
        );
        let routes = empty.routes(Some(&user)).unwrap();
        assert_eq!(
            routes.route(AgentRole::Developer).model,
            "claude-sonnet-4-5"
        );
    }

    #[test]
    fn users_may_bring_keys_for_known_providers_only() {
        let registry = LlmRegistry::new(config(serde_json::json!({
            "openai": { "api_key": "sk-deploy", "model": "gpt-4o" },
        })))
        .unwrap();
        let user: UserLlmSettings = serde_json::from_value(serde_json::json!({
            "providers": {"openrouter": {"api_key": "sk-or", "model": "anthropic/claude-sonnet-4"}},
            "default_provider": "openrouter",
        }))
        .unwrap();
        let routes = registry.routes(Some(&user)).unwrap();
        assert_eq!(
            routes.route(AgentRole::Developer).provider.name(),
            "openrouter"
        );
        assert_eq!(
            routes.route(AgentRole::Developer).model,
            "anthropic/claude-sonnet-4"
        );

        let custom: UserLlmSettings = serde_json::from_value(serde_json::json!({
            "providers": {"my-box": {"api_key": "k", "base_url": "http://10.1.1.1"}},
        }))
        .unwrap();
        assert!(registry.routes(Some(&custom)).is_err());
    }
}
