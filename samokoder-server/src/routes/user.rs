//! `/v1/user/*`: the profile with real counters, the tier with its limits and the month's use,
//! and the version-control tokens (sealed, never echoed).

use axum::extract::State;
use chrono::Utc;
use samokoder_core::api::ErrorBody;
use samokoder_core::api::MessageResponse;
use samokoder_core::api::user::{TierResponse, TierUsage, UserProfileResponse, VcsTokenRequest};
use samokoder_store::{AuditAction, NewVcsToken, QuotaKind, month_start};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::AuditEvent;
use crate::error::ApiError;
use crate::extract::{ClientIp, CurrentUser, Json};
use crate::quota::{self, api_tier};
use crate::routes::keys::seal;
use crate::state::AppState;
use crate::validation;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(profile))
        .routes(routes!(tier))
        .routes(routes!(github_token))
        .routes(routes!(gitverse_token))
}

/// The user's project counts: created this calendar month (UTC) and in total.
async fn project_counts(state: &AppState, current: &CurrentUser) -> Result<(u64, u64), ApiError> {
    let month = month_start(Utc::now())
        .and_hms_opt(0, 0, 0)
        .map(|start| start.and_utc())
        .ok_or_else(|| ApiError::internal("the first of the month has no midnight"))?;
    let counts = state.store().projects.counts(current.id(), month).await?;
    Ok((counts.created_since, counts.total))
}

/// The user's profile.
///
/// With real counters: the projects created this calendar month (UTC) and in total.
#[utoipa::path(
    get,
    path = "/user/profile",
    tag = "user",
    operation_id = "user_profile",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The profile", body = UserProfileResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn profile(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<UserProfileResponse>, ApiError> {
    let (monthly, total) = project_counts(&state, &current).await?;
    let user = &current.user;
    Ok(Json(UserProfileResponse {
        id: user.id,
        email: user.email.clone(),
        tier: api_tier(user.tier),
        is_admin: user.is_admin,
        projects_monthly_count: monthly,
        projects_total: total,
        created_at: user.created_at,
    }))
}

/// The user's tier: price, limits (`null` = unlimited), features, and this month's use.
///
/// The limits are the plan's: projects per month and in total, preview deployments, exports and
/// pushes per month. `usage` says how much of each the user has used this month.
#[utoipa::path(
    get,
    path = "/user/tier",
    tag = "user",
    operation_id = "user_tier",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The tier and its limits", body = TierResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn tier(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<TierResponse>, ApiError> {
    let plan = quota::plan(api_tier(current.user.tier));
    let (monthly, total) = project_counts(&state, &current).await?;
    let store = state.store();
    let usage = TierUsage {
        projects_monthly: monthly,
        projects_total: total,
        deployments_monthly: quota::used_this_month(store, &current.user, QuotaKind::Preview)
            .await?,
        exports_monthly: quota::used_this_month(store, &current.user, QuotaKind::Export).await?,
        git_pushes_monthly: quota::used_this_month(store, &current.user, QuotaKind::GitPush)
            .await?,
    };
    Ok(Json(TierResponse {
        tier: plan.tier,
        name: plan.name.to_owned(),
        price: plan.price_rub,
        limits: plan.limits,
        features: plan.features,
        rate_limits: plan.rate_limits,
        usage,
    }))
}

/// One version-control host the user can store a token for.
struct VcsHost {
    /// Stored host name and sealing purpose suffix.
    host: &'static str,
    /// Display name.
    name: &'static str,
    /// Prefixes tokens of the host start with (empty: any).
    prefixes: &'static [&'static str],
}

const GITHUB: VcsHost = VcsHost {
    host: "github",
    name: "GitHub",
    // Classic and fine-grained personal tokens, OAuth, user-to-server, server-to-server, refresh.
    prefixes: &["ghp_", "github_pat_", "gho_", "ghu_", "ghs_", "ghr_"],
};

const GITVERSE: VcsHost = VcsHost {
    host: "gitverse",
    name: "GitVerse",
    prefixes: &[],
};

async fn store_vcs_token(
    state: &AppState,
    current: &CurrentUser,
    client: std::net::IpAddr,
    host: &VcsHost,
    request: &VcsTokenRequest,
) -> Result<Json<MessageResponse>, ApiError> {
    let token = validation::token("token", &request.token, 20, 255, host.prefixes)
        .map_err(|e| ApiError::validation(vec![e]))?;
    let sealed = seal(
        &state.auth().secret_box,
        current.id(),
        &format!("vcs:{}", host.host),
        &token,
    )?;
    state
        .store()
        .keys
        .put_vcs_token(&NewVcsToken {
            user_id: current.id(),
            host: host.host.to_owned(),
            label: None,
            last_four: validation::last_four(&token),
            sealed,
        })
        .await?;
    AuditEvent::new(AuditAction::KeyStored)
        .by(current.id())
        .client(client)
        .detail(json!({"vcs": host.host}))
        .record(state.store())
        .await;
    Ok(Json(MessageResponse::new(format!(
        "{} token has been set successfully.",
        host.name
    ))))
}

/// Store the GitHub token.
///
/// A personal access token (`ghp_...`, `github_pat_...`, or another GitHub token prefix), 20 to
/// 255 characters. Encrypted at rest; never returned. Replaces any previous one.
#[utoipa::path(
    post,
    path = "/user/github-token",
    tag = "user",
    operation_id = "set_github_token",
    security(("bearer" = []), ("cookie" = [])),
    request_body = VcsTokenRequest,
    responses(
        (status = 200, description = "Stored", body = MessageResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`validation_error`: not a GitHub token (`invalid_format`, `invalid_length`, `invalid_characters`)", body = ErrorBody),
    )
)]
async fn github_token(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    current: CurrentUser,
    Json(request): Json<VcsTokenRequest>,
) -> Result<Json<MessageResponse>, ApiError> {
    store_vcs_token(&state, &current, client, &GITHUB, &request).await
}

/// Store the GitVerse token.
///
/// 20 to 255 printable characters without spaces. Encrypted at rest; never returned.
#[utoipa::path(
    post,
    path = "/user/gitverse-token",
    tag = "user",
    operation_id = "set_gitverse_token",
    security(("bearer" = []), ("cookie" = [])),
    request_body = VcsTokenRequest,
    responses(
        (status = 200, description = "Stored", body = MessageResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`validation_error`: not a plausible token (`invalid_length`, `invalid_characters`)", body = ErrorBody),
    )
)]
async fn gitverse_token(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    current: CurrentUser,
    Json(request): Json<VcsTokenRequest>,
) -> Result<Json<MessageResponse>, ApiError> {
    store_vcs_token(&state, &current, client, &GITVERSE, &request).await
}
