//! `/v1/models/*`: the provider and model catalogue (public).

use axum::extract::State;
use samokoder_core::api::ErrorBody;
use samokoder_core::api::models::{ModelsResponse, ProviderModels};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models))
        .routes(routes!(provider_models))
}

/// Every provider with its models.
///
/// The hosted providers users can bring keys for, plus the providers this deployment
/// configured, each with its models, their context window (`context`), output limit and price
/// in US dollars per million tokens (`null` when the deployment has no price for the model).
#[utoipa::path(
    get,
    path = "/models",
    tag = "models",
    operation_id = "list_models",
    responses(
        (status = 200, description = "Provider name → its models and default model", body = BTreeMap<String, ProviderModels>),
    )
)]
async fn list_models(State(state): State<AppState>) -> Json<ModelsResponse> {
    Json(state.llm().catalog.all().clone())
}

/// One provider's models.
///
/// The same entry as in `GET /v1/models`, for one provider; 404 `provider_not_found` for a
/// provider this deployment does not offer.
#[utoipa::path(
    get,
    path = "/models/{provider}",
    tag = "models",
    operation_id = "provider_models",
    params(("provider" = String, Path, description = "The provider, e.g. `openai`")),
    responses(
        (status = 200, description = "The provider's models and default model", body = ProviderModels),
        (status = 404, description = "`provider_not_found`", body = ErrorBody),
    )
)]
async fn provider_models(
    State(state): State<AppState>,
    Path(provider): Path<String>,
) -> Result<Json<ProviderModels>, ApiError> {
    match state.llm().catalog.provider(&provider) {
        Some(models) => Ok(Json(models.clone())),
        None => {
            // The name is echoed, as the original did, but only when it is a plain identifier.
            let plain = provider.len() <= 64
                && provider
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            let detail = if plain {
                format!("Provider {provider} not found")
            } else {
                "Provider not found".to_owned()
            };
            Err(ApiError::not_found(detail).with_code("provider_not_found"))
        }
    }
}
