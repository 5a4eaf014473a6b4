//! Bring your own key: a run's LLM routes are the deployment's, with the run owner's own
//! provider keys (and their base URLs and preferred models) laid over them, and the run's own
//! model choices over those.
//!
//! The keys are sealed at rest. They are opened here only, when a worker starts driving a run,
//! and live in memory as [`ApiKey`]s (which print as `[redacted]`) inside that run's providers;
//! they are never logged. Starting a run checks the routes without opening anything: every
//! stored key stands in as present, so a provider that has no key at all is reported before
//! the run is queued.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use samokoder_auth::secret_box::{SecretBox, associated_data};
use samokoder_core::engine::RouteSource;
use samokoder_core::llm::{
    AgentRole, ApiKey, LlmError, LlmRegistry, PriceTable, RouteConfig, RouteTable, TransientKind,
    UserLlmSettings, UserProviderSettings,
};
use samokoder_core::state::{RunInfo, RunOptions};
use samokoder_store::{ProviderKey, Store, StoreError};
use uuid::Uuid;

use crate::routes::key_purpose;

/// The key under which a stored key's settings keep a base URL override.
const BASE_URL: &str = "base_url";

/// The engine's [`RouteSource`] for the server: deployment routes plus the owner's keys.
pub struct ByokRoutes {
    store: Store,
    registry: Arc<LlmRegistry>,
    secret_box: Arc<SecretBox>,
}

impl ByokRoutes {
    /// A route source over the store's keys.
    pub fn new(store: Store, registry: Arc<LlmRegistry>, secret_box: Arc<SecretBox>) -> Self {
        Self {
            store,
            registry,
            secret_box,
        }
    }
}

/// The run's model choices as routing overrides.
pub fn overrides(options: &RunOptions) -> BTreeMap<String, RouteConfig> {
    options
        .models
        .iter()
        .map(|(role, choice)| {
            (
                role.clone(),
                RouteConfig {
                    provider: choice.provider.clone(),
                    model: Some(choice.model.clone()),
                    ..RouteConfig::default()
                },
            )
        })
        .collect()
}

/// A stored key's settings with `api_key` as its key.
fn provider_settings(key: &ProviderKey, api_key: ApiKey) -> UserProviderSettings {
    UserProviderSettings {
        api_key,
        base_url: key
            .settings
            .get(BASE_URL)
            .and_then(|url| url.as_str())
            .map(str::to_owned),
        model: key.preferred_model.clone(),
    }
}

/// A store failure while loading keys: a database that is down may come back (the worker
/// retries the run later); anything else is reported as the configuration problem it is.
fn key_store_error(error: &StoreError) -> LlmError {
    if error.is_transient() {
        LlmError::Transient {
            provider: "key store".into(),
            kind: TransientKind::Connect,
            retry_after: None,
            message: "the provider keys could not be loaded".into(),
        }
    } else {
        LlmError::Config("the provider keys could not be loaded".into())
    }
}

/// Refuses a route table that would spend the deployment's key on a model the deployment has
/// no price for: budgets count cost by price, so such a run would have no cost cap. Routes on
/// the user's own keys (`own_keys`, by provider) may use any model; the bill is theirs.
fn require_prices(
    table: &RouteTable,
    prices: &PriceTable,
    own_keys: &BTreeSet<&str>,
) -> Result<(), LlmError> {
    for role in AgentRole::ALL {
        let route = table.route(role);
        let provider = route.provider.name();
        if !own_keys.contains(provider) && prices.lookup(provider, &route.model).is_none() {
            return Err(LlmError::Unpriced {
                provider: provider.to_owned(),
                model: route.model.clone(),
            });
        }
    }
    Ok(())
}

/// Checks that a run of `user_id` with `options` can be routed: every provider it needs has a
/// key (the deployment's or one the user stored), its model choices name known roles and
/// configured providers, and every model on the deployment's keys has a price. No key is
/// opened.
pub async fn check_routes(
    store: &Store,
    registry: &LlmRegistry,
    user_id: Uuid,
    options: &RunOptions,
) -> Result<(), LlmError> {
    let keys = store
        .keys
        .list_provider_keys(user_id)
        .await
        .map_err(|e| key_store_error(&e))?;
    let user = UserLlmSettings {
        providers: keys
            .iter()
            .map(|key| {
                // Stands in for the sealed key: present, never sent anywhere.
                let present = ApiKey::new("stored-key-not-opened");
                (key.provider.clone(), provider_settings(key, present))
            })
            .collect(),
        default_provider: None,
    };
    let table = registry.routes_with(Some(&user), &overrides(options))?;
    let own: BTreeSet<&str> = keys.iter().map(|key| key.provider.as_str()).collect();
    require_prices(&table, &registry.prices(), &own)
}

#[async_trait]
impl RouteSource for ByokRoutes {
    async fn routes(&self, run: &RunInfo) -> Result<RouteTable, LlmError> {
        let row = self
            .store
            .runs
            .get(run.id)
            .await
            .map_err(|e| key_store_error(&e))?;
        let keys = self
            .store
            .keys
            .list_provider_keys(row.user_id)
            .await
            .map_err(|e| key_store_error(&e))?;
        let mut providers = BTreeMap::new();
        for key in &keys {
            let sealed = String::from_utf8(key.sealed.ciphertext.clone()).map_err(|_| {
                LlmError::Config(format!(
                    "your key for `{}` cannot be read; add it again",
                    key.provider
                ))
            })?;
            let opened = self
                .secret_box
                .open_string(
                    &sealed,
                    &associated_data(row.user_id, &key_purpose(&key.provider)),
                )
                .map_err(|_| {
                    LlmError::Config(format!(
                        "your key for `{}` cannot be opened (the server's keys changed); add it again",
                        key.provider
                    ))
                })?;
            let api_key = ApiKey::new(opened.expose());
            providers.insert(key.provider.clone(), provider_settings(key, api_key));
        }
        let user = UserLlmSettings {
            providers,
            default_provider: None,
        };
        // Checked again here: a key deleted since the run was queued moves its routes back to
        // the deployment's key.
        let table = self
            .registry
            .routes_with(Some(&user), &overrides(&run.options))?;
        let own: BTreeSet<&str> = keys.iter().map(|key| key.provider.as_str()).collect();
        require_prices(&table, &self.registry.prices(), &own)?;
        Ok(table)
    }
}
