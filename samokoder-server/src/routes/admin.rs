//! `/v1/admin/*`: account administration over HTTP (administrators only; the same operations
//! exist as `samokoder-server admin` commands).

use axum::extract::State;
use samokoder_core::api::ErrorBody;
use samokoder_core::api::admin::{AdminUserResponse, SetTierRequest};
use samokoder_store::{AuditAction, StoreError, User};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::error::ApiError;
use crate::extract::{AdminUser, ClientIp, Json, Path};
use crate::quota::{api_tier, store_tier};
use crate::state::AppState;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_tier))
}

fn response(user: &User) -> AdminUserResponse {
    AdminUserResponse {
        id: user.id,
        email: user.email.clone(),
        tier: api_tier(user.tier),
        is_admin: user.is_admin,
        created_at: user.created_at,
    }
}

/// Change a user's tier.
///
/// Sets the subscription tier of any account, which changes its quotas at once. Audit-logged as
/// an admin action with the old and new tier.
#[utoipa::path(
    put,
    path = "/admin/users/{user_id}/tier",
    tag = "admin",
    operation_id = "admin_set_tier",
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = Uuid, Path, description = "The user's id")),
    request_body = SetTierRequest,
    responses(
        (status = 200, description = "The account with its new tier", body = AdminUserResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`admin_required`: the caller is not an administrator", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
        (status = 422, description = "`validation_error`: unknown tier", body = ErrorBody),
    )
)]
async fn set_tier(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    AdminUser(admin): AdminUser,
    Path(user_id): Path<Uuid>,
    Json(request): Json<SetTierRequest>,
) -> Result<Json<AdminUserResponse>, ApiError> {
    let not_found = || ApiError::not_found("User not found").with_code("user_not_found");
    let store = state.store();
    let before = match store.users.get(user_id).await {
        Ok(user) => user,
        Err(StoreError::NotFound { .. }) => return Err(not_found()),
        Err(error) => return Err(error.into()),
    };
    match store
        .users
        .set_tier(user_id, store_tier(request.tier))
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound { .. }) => return Err(not_found()),
        Err(error) => return Err(error.into()),
    }
    AuditEvent::new(AuditAction::AdminAction)
        .actor(Some(admin.id()))
        .subject(Some(user_id))
        .client(client)
        .detail(json!({
            "operation": "set_tier",
            "from": api_tier(before.tier),
            "to": request.tier,
        }))
        .record(store)
        .await;
    Ok(Json(response(&store.users.get(user_id).await?)))
}
