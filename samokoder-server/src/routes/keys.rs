//! `/v1/keys/*`: the caller's own provider keys (BYOK). A key is sealed with the secret box
//! bound to the user and the provider before it reaches the store, and only its last four
//! characters ever come back. Every change is audit-logged.

use std::collections::BTreeMap;

use axum::extract::State;
use http::StatusCode;
use samokoder_auth::secret_box::{SecretBox, associated_data};
use samokoder_core::api::ErrorBody;
use samokoder_core::api::keys::{
    ApiKeyCreateRequest, ApiKeyResponse, ApiKeySettingsRequest, KeyUsageEntry, KeysUsageResponse,
};
use samokoder_core::api::usage::UsageFigures;
use samokoder_store::{
    AuditAction, NewProviderKey, ProviderKey, SealedSecret, StoreError, TimeRange, UsageGrouping,
};
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::AuditEvent;
use crate::error::ApiError;
use crate::extract::{ClientIp, CurrentUser, Json, Path};
use crate::state::AppState;
use crate::validation;

/// The settings key that holds a base URL override.
const BASE_URL: &str = "base_url";
/// The largest settings object, serialized.
const MAX_SETTINGS_BYTES: usize = 4096;
/// The longest key accepted.
const MAX_KEY_LEN: usize = 512;
/// The shortest key accepted (the original's stricter model said 10).
const MIN_KEY_LEN: usize = 10;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_key, list_keys))
        .routes(routes!(all_usage))
        .routes(routes!(delete_key))
        .routes(routes!(update_settings))
        .routes(routes!(provider_usage))
}

fn key_not_found() -> ApiError {
    ApiError::not_found("API key for this provider not found").with_code("key_not_found")
}

/// The purpose a provider key is sealed for (bound into the ciphertext).
pub(crate) fn key_purpose(provider: &str) -> String {
    format!("provider:{provider}")
}

/// The prefixes real keys of a known provider start with.
fn key_prefixes(provider: &str) -> &'static [&'static str] {
    match provider {
        "openai" => &["sk-"],
        "anthropic" => &["sk-ant-"],
        "groq" => &["gsk_"],
        "openrouter" => &["sk-or-"],
        _ => &[],
    }
}

fn response(key: &ProviderKey) -> ApiKeyResponse {
    ApiKeyResponse {
        provider: key.provider.clone(),
        display_key: format!("...-{}", key.last_four),
        last_four: key.last_four.clone(),
        label: key.label.clone(),
        model: key.preferred_model.clone(),
        base_url: key
            .settings
            .get(BASE_URL)
            .and_then(Value::as_str)
            .map(str::to_owned),
        settings: key.settings.clone(),
        created_at: key.created_at,
        updated_at: key.updated_at,
    }
}

/// The normalised provider name, if users may store a key for it.
fn check_provider(
    state: &AppState,
    provider: &str,
) -> Result<String, samokoder_core::api::FieldError> {
    let provider = provider.trim().to_ascii_lowercase();
    if state.llm().catalog.accepts_user_key(&provider) {
        Ok(provider)
    } else {
        let known: Vec<&str> = state.llm().catalog.user_key_providers().collect();
        Err(validation::field_error(
            "provider",
            "unknown_provider",
            format!("Unknown provider; expected one of: {}.", known.join(", ")),
        ))
    }
}

/// Validates the model, base URL and settings of a key and merges them into the stored
/// settings object (the base URL lives in it under `base_url`).
fn check_settings(
    state: &AppState,
    model: Option<&str>,
    base_url: Option<&str>,
    settings: Option<&Value>,
    errors: &mut Vec<samokoder_core::api::FieldError>,
) -> (Option<String>, Value) {
    let model = model.and_then(|model| {
        validation::token("model", model, 1, 200, &[])
            .map_err(|e| errors.push(e))
            .ok()
    });
    let mut merged = Map::new();
    if let Some(settings) = settings.filter(|s| !s.is_null()) {
        match validation::json_object("settings", settings, MAX_SETTINGS_BYTES) {
            Ok(()) => {
                if let Some(object) = settings.as_object() {
                    merged.extend(object.clone());
                }
            }
            Err(error) => errors.push(error),
        }
    }
    // A base URL can arrive either way; both go through the allowlist.
    let nested = merged.remove(BASE_URL);
    let base_url = base_url.map(str::to_owned).or_else(|| {
        nested.and_then(|value| match value {
            Value::String(url) => Some(url),
            Value::Null => None,
            _ => {
                errors.push(validation::field_error(
                    "settings.base_url",
                    "invalid_url",
                    "Must be an http or https URL.",
                ));
                None
            }
        })
    });
    if let Some(url) = base_url {
        match validation::base_url("base_url", &url, &state.llm().allowed_base_url_hosts) {
            Ok(url) => {
                merged.insert(BASE_URL.to_owned(), Value::String(url));
            }
            Err(error) => errors.push(error),
        }
    }
    (model, Value::Object(merged))
}

/// Seals `secret` for the user and purpose.
pub(crate) fn seal(
    secret_box: &SecretBox,
    user_id: uuid::Uuid,
    purpose: &str,
    secret: &str,
) -> Result<SealedSecret, ApiError> {
    let sealed = secret_box.seal_str(secret, &associated_data(user_id, purpose))?;
    let key_id = SecretBox::key_id_of(&sealed)?.to_owned();
    Ok(SealedSecret {
        ciphertext: sealed.into_bytes(),
        key_id,
    })
}

/// Add or replace the key for a provider.
///
/// The provider must be one users may bring keys for (the hosted providers, and the ones the
/// deployment configured); the key must look like one (printable, 10 to 512 characters, and
/// the provider's prefix, e.g. `sk-ant-` for Anthropic). A `base_url` is accepted only for
/// hosts the deployment allows (`llm.allowed_base_url_hosts`). The key is encrypted at rest
/// and never returned.
#[utoipa::path(
    post,
    path = "/keys",
    tag = "keys",
    operation_id = "put_key",
    security(("bearer" = []), ("cookie" = [])),
    request_body = ApiKeyCreateRequest,
    responses(
        (status = 200, description = "Stored; the key masked", body = ApiKeyResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`validation_error`: `unknown_provider`, `invalid_format`, `invalid_length`, `invalid_characters`, `host_not_allowed`, `invalid_url`, ...", body = ErrorBody),
    )
)]
async fn put_key(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    current: CurrentUser,
    Json(request): Json<ApiKeyCreateRequest>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let mut errors = Vec::new();
    let provider = check_provider(&state, &request.provider)
        .map_err(|e| errors.push(e))
        .ok();
    let prefixes = provider.as_deref().map_or(&[][..], key_prefixes);
    let key = validation::token(
        "api_key",
        &request.api_key,
        MIN_KEY_LEN,
        MAX_KEY_LEN,
        prefixes,
    )
    .map_err(|e| errors.push(e))
    .ok();
    let label = request.label.as_deref().and_then(|label| {
        validation::single_line("label", label, 100)
            .map_err(|e| errors.push(e))
            .ok()
    });
    let (model, settings) = check_settings(
        &state,
        request.model.as_deref(),
        request.base_url.as_deref(),
        request.settings.as_ref(),
        &mut errors,
    );
    let (Some(provider), Some(key)) = (provider, key) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let sealed = seal(
        &state.auth().secret_box,
        current.id(),
        &key_purpose(&provider),
        &key,
    )?;
    let replaced = state
        .store()
        .keys
        .provider_key(current.id(), &provider)
        .await?
        .is_some();
    let stored = state
        .store()
        .keys
        .put_provider_key(&NewProviderKey {
            user_id: current.id(),
            provider: provider.clone(),
            label,
            last_four: validation::last_four(&key),
            preferred_model: model,
            settings,
            sealed,
        })
        .await?;
    AuditEvent::new(AuditAction::KeyStored)
        .by(current.id())
        .client(client)
        .detail(json!({"provider": provider, "replaced": replaced}))
        .record(state.store())
        .await;
    Ok(Json(response(&stored)))
}

/// List the caller's keys, masked.
///
/// One entry per provider with the key's last four characters, label, preferred model, base URL
/// and settings; never the key.
#[utoipa::path(
    get,
    path = "/keys",
    tag = "keys",
    operation_id = "list_keys",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Every stored key, by provider, masked", body = Vec<ApiKeyResponse>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn list_keys(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<Vec<ApiKeyResponse>>, ApiError> {
    let keys = state.store().keys.list_provider_keys(current.id()).await?;
    Ok(Json(keys.iter().map(response).collect()))
}

/// Delete the key of a provider.
///
/// The provider's key and its settings are removed; runs then use the deployment's key, if it
/// has one. Audit-logged.
#[utoipa::path(
    delete,
    path = "/keys/{provider}",
    tag = "keys",
    operation_id = "delete_key",
    security(("bearer" = []), ("cookie" = [])),
    params(("provider" = String, Path, description = "The provider, e.g. `openai`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`key_not_found`: no key for this provider", body = ErrorBody),
    )
)]
async fn delete_key(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    current: CurrentUser,
    Path(provider): Path<String>,
) -> Result<StatusCode, ApiError> {
    let provider = provider.trim().to_ascii_lowercase();
    match state
        .store()
        .keys
        .delete_provider_key(current.id(), &provider)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound { .. }) => return Err(key_not_found()),
        Err(error) => return Err(error.into()),
    }
    AuditEvent::new(AuditAction::KeyDeleted)
        .by(current.id())
        .client(client)
        .detail(json!({"provider": provider}))
        .record(state.store())
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace a key's settings.
///
/// Replaces the preferred model, base URL and provider settings as a whole (an absent field
/// is cleared), as the original did; the key itself stays.
#[utoipa::path(
    put,
    path = "/keys/{provider}/settings",
    tag = "keys",
    operation_id = "update_key_settings",
    security(("bearer" = []), ("cookie" = [])),
    params(("provider" = String, Path, description = "The provider, e.g. `openai`")),
    request_body = ApiKeySettingsRequest,
    responses(
        (status = 200, description = "The key with its new settings, masked", body = ApiKeyResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`key_not_found`: no key for this provider", body = ErrorBody),
        (status = 422, description = "`validation_error`: `model`, `base_url` or `settings` is invalid", body = ErrorBody),
    )
)]
async fn update_settings(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    current: CurrentUser,
    Path(provider): Path<String>,
    Json(request): Json<ApiKeySettingsRequest>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let provider = provider.trim().to_ascii_lowercase();
    let mut errors = Vec::new();
    let (model, settings) = check_settings(
        &state,
        request.model.as_deref(),
        request.base_url.as_deref(),
        request.settings.as_ref(),
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let updated = match state
        .store()
        .keys
        .update_provider_settings(current.id(), &provider, model.as_deref(), &settings)
        .await
    {
        Ok(key) => key,
        Err(StoreError::NotFound { .. }) => return Err(key_not_found()),
        Err(error) => return Err(error.into()),
    };
    AuditEvent::new(AuditAction::KeyStored)
        .by(current.id())
        .client(client)
        .detail(json!({"provider": provider, "change": "settings"}))
        .record(state.store())
        .await;
    Ok(Json(response(&updated)))
}

/// The user's usage by provider and model over all time.
pub(crate) async fn usage_by_model(
    state: &AppState,
    user_id: uuid::Uuid,
    range: TimeRange,
) -> Result<BTreeMap<String, BTreeMap<String, UsageFigures>>, ApiError> {
    let buckets = state
        .store()
        .usage
        .aggregate(
            user_id,
            range,
            UsageGrouping {
                by_provider: true,
                by_model: true,
                period: None,
            },
        )
        .await?;
    let mut usage: BTreeMap<String, BTreeMap<String, UsageFigures>> = BTreeMap::new();
    for bucket in buckets {
        let (Some(provider), Some(model)) = (bucket.provider, bucket.model) else {
            continue;
        };
        usage.entry(provider).or_default().insert(
            model,
            crate::routes::usage::figures(bucket.requests, &bucket.counts),
        );
    }
    Ok(usage)
}

/// Usage of one provider's key, by model.
///
/// From the recorded LLM requests (all time); an unknown provider or one never used gives `[]`.
#[utoipa::path(
    get,
    path = "/keys/{provider}/usage",
    tag = "keys",
    operation_id = "key_usage",
    security(("bearer" = []), ("cookie" = [])),
    params(("provider" = String, Path, description = "The provider, e.g. `openai`")),
    responses(
        (status = 200, description = "One entry per model used", body = Vec<KeyUsageEntry>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn provider_usage(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(provider): Path<String>,
) -> Result<Json<Vec<KeyUsageEntry>>, ApiError> {
    let provider = provider.trim().to_ascii_lowercase();
    let mut usage = usage_by_model(&state, current.id(), TimeRange::all()).await?;
    let entries = usage
        .remove(&provider)
        .unwrap_or_default()
        .into_iter()
        .map(|(model, usage)| KeyUsageEntry {
            provider: provider.clone(),
            model,
            usage,
        })
        .collect();
    Ok(Json(entries))
}

/// Usage of every provider, by provider and model.
///
/// From the recorded LLM requests, all time; the original's `{provider: {model: usage}}` shape.
#[utoipa::path(
    get,
    path = "/keys/usage",
    tag = "keys",
    operation_id = "keys_usage",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Provider → model → usage (all time)", body = BTreeMap<String, BTreeMap<String, KeyUsageEntry>>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn all_usage(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<KeysUsageResponse>, ApiError> {
    let usage = usage_by_model(&state, current.id(), TimeRange::all()).await?;
    let response = usage
        .into_iter()
        .map(|(provider, models)| {
            let entries = models
                .into_iter()
                .map(|(model, usage)| {
                    let entry = KeyUsageEntry {
                        provider: provider.clone(),
                        model: model.clone(),
                        usage,
                    };
                    (model, entry)
                })
                .collect();
            (provider, entries)
        })
        .collect();
    Ok(Json(response))
}
