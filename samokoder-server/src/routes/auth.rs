//! `/v1/auth/*`: registration, login, refresh, logout, the current user, password change.
//!
//! Tokens go out twice, as `HttpOnly; SameSite=Strict` cookies for the web app and in the JSON
//! body for other clients (`Authorization: Bearer` is accepted everywhere). Every answer that
//! carries tokens is `Cache-Control: no-store`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use samokoder_auth::AuthError;
use samokoder_auth::cookies::{REFRESH_COOKIE, cookie_values};
use samokoder_auth::lockout::{LockoutDecision, account_key};
use samokoder_auth::policy;
use samokoder_auth::refresh::TokenPair;
use samokoder_core::api::auth::{
    AuthResponse, ChangePasswordRequest, LoginForm, LoginRequest, LogoutAllResponse,
    RefreshRequest, RegisterRequest, UserResponse,
};
use samokoder_core::api::{ErrorBody, FieldError, MessageResponse};
use samokoder_store::{AuditAction, NewUser, StoreError, User};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::AuditEvent;
use crate::error::ApiError;
use crate::extract::{ClientIp, CurrentUser, Json, JsonOrForm, OptionalJson};
use crate::observability::metrics::{self as m, AuthOutcome};
use crate::quota::api_tier;
use crate::security::presented_access_tokens;
use crate::state::AppState;
use crate::validation;

/// The original's answer to a wrong e-mail or password, kept word for word.
pub const INVALID_CREDENTIALS: &str = "Invalid credentials";

/// The routes with the strict authentication rate limit: register, login, refresh.
pub(crate) fn strict_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
}

/// The other session routes.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(me))
        .routes(routes!(change_password))
}

/// A session's tokens as the JSON body and cookies, not to be cached.
fn session_response(
    state: &AppState,
    status: StatusCode,
    pair: &TokenPair,
    email: &str,
) -> Response {
    let body = AuthResponse {
        access_token: pair.access.token.expose().to_owned(),
        refresh_token: pair.refresh.token.expose().to_owned(),
        token_type: "bearer".to_owned(),
        expires_in: pair.access.lifetime_seconds(),
        user_id: pair.user_id,
        email: email.to_owned(),
    };
    let mut response = (status, state.auth().session_cookies(pair), Json(body)).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn invalid_credentials() -> ApiError {
    ApiError::bad_request("invalid_credentials", INVALID_CREDENTIALS)
}

/// 429 for a locked login, with the original's wording and `Retry-After`.
fn locked(retry_after_secs: u64) -> ApiError {
    let seconds = retry_after_secs.max(1);
    let minutes = seconds.div_ceil(60);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "account_locked",
        format!(
            "Account temporarily locked due to too many failed login attempts. Try again in {minutes} {unit}."
        ),
    )
    .with_header(RETRY_AFTER, HeaderValue::from(seconds))
}

/// The wire form of an account.
pub(crate) async fn user_response(state: &AppState, user: &User) -> Result<UserResponse, ApiError> {
    let counts = state
        .store()
        .projects
        .counts(user.id, chrono::Utc::now())
        .await?;
    Ok(UserResponse {
        id: user.id,
        email: user.email.clone(),
        tier: api_tier(user.tier),
        is_admin: user.is_admin,
        created_at: user.created_at,
        projects_count: counts.total,
    })
}

/// Create an account.
///
/// Validates the e-mail (normalised to lower case) and the password policy, reporting every
/// broken rule at once in `errors[]` (codes `invalid_email`, `email_too_long`, `too_short`,
/// `too_long`, `missing_uppercase`, `missing_lowercase`, `missing_digit`, `missing_special`,
/// `too_common`, `repeated_characters`). Then starts a session exactly as a login does.
///
/// **Existing e-mails.** A registration must be refused for an address that has an account,
/// which tells the caller that it has one; the answer is the original's 400 `User already
/// exists`. What is prevented is confirming that *faster* than a real registration: the
/// password is hashed (the expensive part) before the account is looked for, so both answers
/// take as long, and the strict authentication rate limit per client bounds how many addresses
/// anyone can test.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    operation_id = "register",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created; the session's tokens (also set as cookies)", body = AuthResponse),
        (status = 400, description = "`user_exists`: the e-mail has an account; `malformed_json`", body = ErrorBody),
        (status = 422, description = "`validation_error`: each broken rule in `errors`", body = ErrorBody),
    )
)]
async fn register(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(request): Json<RegisterRequest>,
) -> Result<Response, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let email = validation::normalize_email("email", &request.email)
        .map_err(|error| errors.push(error))
        .ok();
    if let Err(violations) = policy::check_password(&request.password) {
        errors.extend(violations.iter().map(|v| v.to_field_error("password")));
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let hash = state.auth().hasher.hash(&request.password).await?;
    let user = match state
        .store()
        .users
        .create(&NewUser::new(&email, hash))
        .await
    {
        Ok(user) => user,
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::bad_request("user_exists", "User already exists"));
        }
        Err(error) => return Err(error.into()),
    };
    let pair = state.auth().refresh.login(user.id).await?;
    AuditEvent::new(AuditAction::AccountCreated)
        .by(user.id)
        .client(client)
        .record(state.store())
        .await;
    Ok(session_response(
        &state,
        StatusCode::CREATED,
        &pair,
        &user.email,
    ))
}

/// Log in.
///
/// Accepts JSON `{"email", "password"}` (or `username` for `email`), or the OAuth2 password
/// form the original's web app sends (`username`, `password`, optional `grant_type=password`).
///
/// Repeated failures lock the account **for the client address they came from** (5 in 15
/// minutes by default; the owner elsewhere can still log in) and, at a much higher count, for
/// everyone: 429 `account_locked` with `Retry-After`, whether or not the password is right.
/// A wrong password and an unknown e-mail get the same answer in the same time.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    operation_id = "login",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Logged in; the session's tokens (also set as cookies)", body = AuthResponse),
        (status = 400, description = "`invalid_credentials` (`Invalid credentials`): unknown e-mail or wrong password; `unsupported_grant_type`", body = ErrorBody),
        (status = 429, description = "`account_locked`: too many failed attempts; see `Retry-After`. Also the route's rate limit (`rate_limited`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the lock lifts"))),
    )
)]
async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    body: JsonOrForm<LoginRequest, LoginForm>,
) -> Result<Response, ApiError> {
    let (email, password) = match body {
        JsonOrForm::Json(request) => (request.email, request.password),
        JsonOrForm::Form(form) => {
            if form
                .grant_type
                .as_deref()
                .is_some_and(|grant| grant != "password")
            {
                return Err(ApiError::bad_request(
                    "unsupported_grant_type",
                    "grant_type must be `password`",
                ));
            }
            (form.username, form.password)
        }
    };
    let auth = state.auth();
    let account = account_key(&email);
    let client = client.to_string();
    // Attempts on one account take turns, so concurrent guesses cannot all pass the check
    // before the first failure is recorded.
    let attempt = auth.lockout.begin(&account, &client).await?;
    let decision = attempt.decision();
    let user = state.store().users.find_by_email(&account).await?;
    if let LockoutDecision::Locked { .. } = decision {
        // The wall clock, not the issuer's (which an embedder may have replaced).
        let retry_after = decision.retry_after_seconds(chrono::Utc::now());
        m::record_auth_attempt(AuthOutcome::LockedOut);
        m::record_auth_lockout();
        AuditEvent::new(AuditAction::Lockout)
            .subject(user.as_ref().map(|u| u.id))
            .client(&client)
            .detail(json!({"account": account, "retry_after_secs": retry_after}))
            .record(state.store())
            .await;
        return Err(locked(retry_after));
    }
    let verification = match &user {
        Some(user) => auth.hasher.verify(&password, &user.password_hash).await?,
        None => auth.hasher.verify_unknown_user(&password).await?,
    };
    let user = match user {
        Some(user) if verification.is_valid() => user,
        other => {
            attempt.failed().await?;
            m::record_auth_attempt(AuthOutcome::InvalidCredentials);
            AuditEvent::new(AuditAction::LoginFailed)
                .subject(other.as_ref().map(|u| u.id))
                .client(&client)
                .detail(json!({"account": account, "known_account": other.is_some()}))
                .record(state.store())
                .await;
            return Err(invalid_credentials());
        }
    };
    if verification.needs_rehash() {
        // A legacy bcrypt (or weaker argon2) hash: replace it while the password is at hand.
        // A failure here must not fail the login; the next login tries again.
        match auth.hasher.hash(&password).await {
            Ok(hash) => {
                if let Err(error) = state.store().users.set_password_hash(user.id, &hash).await {
                    tracing::warn!(user_id = %user.id, %error, "could not upgrade a password hash");
                }
            }
            Err(error) => tracing::warn!(user_id = %user.id, %error, "could not rehash a password"),
        }
    }
    attempt.succeeded().await?;
    let pair = auth.refresh.login(user.id).await?;
    m::record_auth_attempt(AuthOutcome::Success);
    AuditEvent::new(AuditAction::Login)
        .by(user.id)
        .client(&client)
        .detail(json!({"method": "password", "rehashed": verification.needs_rehash()}))
        .record(state.store())
        .await;
    Ok(session_response(&state, StatusCode::OK, &pair, &user.email))
}

/// The refresh token of a request: the body's when it has one, else the `refresh_token`
/// cookie's.
fn presented_refresh_token(headers: &HeaderMap, body: Option<RefreshRequest>) -> Option<String> {
    body.and_then(|b| b.refresh_token)
        .filter(|token| !token.trim().is_empty())
        .or_else(|| {
            cookie_values(headers, REFRESH_COOKIE)
                .into_iter()
                .find(|value| !value.is_empty())
        })
}

/// Exchange a refresh token for a new pair.
///
/// The token comes from the JSON body (`{"refresh_token": ...}`) or, when the body has none,
/// from the `refresh_token` cookie. Each refresh token works **once**: the answer carries a new
/// access token *and* a new refresh token (both also set as cookies). Presenting a used refresh
/// token again is treated as theft: that login's whole session ends (the newest token too), the
/// event is audit-logged, and the answer is 401 `refresh_token_reused`.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    operation_id = "refresh",
    request_body(content = Option<RefreshRequest>, description = "Optional when the `refresh_token` cookie is sent"),
    responses(
        (status = 200, description = "A new token pair (also set as cookies)", body = AuthResponse),
        (status = 401, description = "`missing_refresh_token`, `invalid_refresh_token` (malformed, expired, ended session), or `refresh_token_reused` (the session was ended)", body = ErrorBody),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let Some(token) = presented_refresh_token(&headers, body) else {
        return Err(
            ApiError::unauthorized("Missing refresh token").with_code("missing_refresh_token")
        );
    };
    let auth = state.auth();
    let refused = |error: ApiError| -> Result<Response, ApiError> {
        // A dead refresh token in a cookie would be sent forever: clear both cookies.
        let mut response = error.into_response();
        crate::security::append_cookies(response.headers_mut(), &auth.clearing_cookies().0);
        Ok(response)
    };
    let pair = match auth.refresh.refresh(&token).await {
        Ok(pair) => pair,
        Err(AuthError::RefreshTokenReused { family_id, user_id }) => {
            m::record_refresh_token_reuse();
            AuditEvent::new(AuditAction::TokenReuse)
                .by(user_id)
                .client(client)
                .detail(json!({"family_id": family_id}))
                .record(state.store())
                .await;
            return refused(
                ApiError::unauthorized(
                    "Refresh token reuse detected; the session has been ended. Log in again.",
                )
                .with_code("refresh_token_reused"),
            );
        }
        Err(error) if error.is_credential_error() => {
            return refused(
                ApiError::unauthorized("Invalid refresh token")
                    .with_code("invalid_refresh_token")
                    .with_source(error),
            );
        }
        Err(error) => return Err(error.into()),
    };
    let user = match state.store().users.get(pair.user_id).await {
        Ok(user) => user,
        Err(error) if error.is_not_found() => {
            auth.refresh.logout(pair.refresh.token.expose()).await?;
            return refused(
                ApiError::unauthorized("Invalid refresh token").with_code("invalid_refresh_token"),
            );
        }
        Err(error) => return Err(error.into()),
    };
    Ok(session_response(&state, StatusCode::OK, &pair, &user.email))
}

/// Log out of this session.
///
/// Revokes the presented access token (bearer header or cookie) and ends the session of the
/// presented refresh token (body or cookie), then clears both cookies. Answers 200 even
/// without a session, so a client can always call it.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    operation_id = "logout",
    request_body(content = Option<RefreshRequest>, description = "Optional: the refresh token, for clients without cookies"),
    responses(
        (status = 200, description = "Logged out (cookies cleared)", body = MessageResponse),
    )
)]
async fn logout(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let auth = state.auth();
    let mut user_id = None;
    for token in presented_access_tokens(&headers) {
        // An expired or forged token needs no revocation.
        if let Ok(claims) = auth.issuer.verify_access(&token) {
            auth.refresh.revoke_access(&claims).await?;
            user_id.get_or_insert(claims.user_id);
        }
    }
    if let Some(token) = presented_refresh_token(&headers, body) {
        match auth.refresh.logout(&token).await {
            Ok(()) => {}
            Err(error) if error.is_credential_error() => {}
            Err(error) => return Err(error.into()),
        }
    }
    if let Some(user_id) = user_id {
        AuditEvent::new(AuditAction::Logout)
            .by(user_id)
            .client(client)
            .detail(json!({"scope": "session"}))
            .record(state.store())
            .await;
    }
    Ok((
        auth.clearing_cookies(),
        Json(MessageResponse::new("Successfully logged out")),
    )
        .into_response())
}

/// Log out everywhere.
///
/// Ends every session of the user: all refresh tokens stop working, and every access token
/// issued until now is revoked (this one included). Clears both cookies.
#[utoipa::path(
    post,
    path = "/auth/logout-all",
    tag = "auth",
    operation_id = "logout_all",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Every session ended (cookies cleared)", body = LogoutAllResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
async fn logout_all(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    current: CurrentUser,
) -> Result<Response, ApiError> {
    let revoked = state.auth().refresh.logout_all(current.id()).await?;
    AuditEvent::new(AuditAction::Logout)
        .by(current.id())
        .client(client)
        .detail(json!({"scope": "all", "sessions": revoked}))
        .record(state.store())
        .await;
    Ok((
        state.auth().clearing_cookies(),
        Json(LogoutAllResponse {
            message: "Logged out of every session".to_owned(),
            sessions_revoked: revoked,
        }),
    )
        .into_response())
}

/// The current user.
///
/// The account of the access token presented (bearer header or `access_token` cookie), with its
/// project count.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    operation_id = "me",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The authenticated user", body = UserResponse),
        (status = 401, description = "Not authenticated, or the token is invalid, expired or revoked", body = ErrorBody),
    )
)]
async fn me(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(user_response(&state, &current.user).await?))
}

/// Change the password.
///
/// Verifies the current password (wrong ones count towards the login lockout, so a stolen
/// session cannot be used to guess it), applies the password policy to the new one, ends
/// every other session, and returns a fresh token pair (also set as cookies).
#[utoipa::path(
    post,
    path = "/auth/change-password",
    tag = "auth",
    operation_id = "change_password",
    security(("bearer" = []), ("cookie" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; a new token pair for this client (also set as cookies)", body = AuthResponse),
        (status = 400, description = "`invalid_credentials`: the current password is wrong", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`validation_error`: the new password breaks the policy (`errors`), or equals the current one (`same_as_current`)", body = ErrorBody),
        (status = 429, description = "`account_locked`: too many wrong passwords; see `Retry-After`", body = ErrorBody),
    )
)]
async fn change_password(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    current: CurrentUser,
    Json(request): Json<ChangePasswordRequest>,
) -> Result<Response, ApiError> {
    let auth = state.auth();
    let user = &current.user;
    let account = account_key(&user.email);
    let client = client.to_string();
    let attempt = auth.lockout.begin(&account, &client).await?;
    let decision = attempt.decision();
    if decision.is_locked() {
        m::record_auth_lockout();
        AuditEvent::new(AuditAction::Lockout)
            .by(user.id)
            .client(&client)
            .detail(json!({"account": account, "during": "change_password"}))
            .record(state.store())
            .await;
        return Err(locked(decision.retry_after_seconds(chrono::Utc::now())));
    }
    let verification = auth
        .hasher
        .verify(&request.current_password, &user.password_hash)
        .await?;
    if !verification.is_valid() {
        attempt.failed().await?;
        AuditEvent::new(AuditAction::LoginFailed)
            .by(user.id)
            .client(&client)
            .detail(json!({"during": "change_password"}))
            .record(state.store())
            .await;
        return Err(invalid_credentials());
    }
    let mut errors: Vec<FieldError> = match policy::check_password(&request.new_password) {
        Ok(()) => Vec::new(),
        Err(violations) => violations
            .iter()
            .map(|v| v.to_field_error("new_password"))
            .collect(),
    };
    if request.new_password == request.current_password {
        errors.push(validation::field_error(
            "new_password",
            "same_as_current",
            "The new password must differ from the current one.",
        ));
    }
    // The current password was right: that forgives this client's failures, whatever becomes
    // of the new one.
    attempt.succeeded().await?;
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let hash = auth.hasher.hash(&request.new_password).await?;
    state
        .store()
        .users
        .set_password_hash(user.id, &hash)
        .await?;
    auth.refresh.logout_all(user.id).await?;
    let pair = auth.refresh.login(user.id).await?;
    AuditEvent::new(AuditAction::PasswordChanged)
        .by(user.id)
        .client(&client)
        .record(state.store())
        .await;
    Ok(session_response(&state, StatusCode::OK, &pair, &user.email))
}
