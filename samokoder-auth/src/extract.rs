//! The axum edge: authenticating requests from a bearer token or the `access_token` cookie.
//!
//! Two ways to use it, sharing one implementation:
//!
//! * the [`AuthenticatedUser`] extractor in a handler's arguments, with an [`AuthState`]
//!   reachable from the router state through [`FromRef`];
//! * the [`require_authentication`] middleware over a group of routes, which authenticates once
//!   and leaves the user in the request extensions, where the extractor then finds it.
//!
//! **Which credential.** The `Authorization: Bearer` header is tried first, then each
//! `access_token` cookie (at most four of them). The first one that verifies and is not revoked
//! wins, so a stale or broken cookie never shadows a valid header (the original's bug) and a
//! broken header never shadows a valid cookie. When none works, the error of the first presented
//! one is reported.
//!
//! **Rejections** are 401 with `WWW-Authenticate: Bearer` (plus `error="invalid_token"` when a
//! token was presented) and the API's JSON error body, codes `not_authenticated`,
//! `invalid_token`, `token_expired`, `token_revoked`. When the revocation store cannot be
//! asked, the answer is 503 `auth_unavailable`: failing closed, but not blaming the client.
//!
//! ```
//! use std::sync::Arc;
//!
//! use axum::{Router, extract::FromRef, routing::get};
//! use samokoder_auth::extract::{AuthState, AuthenticatedUser};
//! use samokoder_auth::memory::InMemoryRevocationStore;
//! use samokoder_auth::tokens::{SigningKeyConfig, TokenConfig, TokenIssuer};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     auth: AuthState,
//!     // ... the application's own state
//! }
//!
//! impl FromRef<AppState> for AuthState {
//!     fn from_ref(state: &AppState) -> Self {
//!         state.auth.clone()
//!     }
//! }
//!
//! async fn me(user: AuthenticatedUser) -> String {
//!     user.user_id.to_string()
//! }
//!
//! let issuer = TokenIssuer::new(&TokenConfig {
//!     keys: vec![SigningKeyConfig::generate("k1")],
//!     ..TokenConfig::default()
//! })?;
//! let auth = AuthState::new(Arc::new(issuer), Arc::new(InMemoryRevocationStore::new()));
//! let app: Router = Router::new()
//!     .route("/v1/auth/me", get(me))
//!     .with_state(AppState { auth });
//! # Ok::<(), samokoder_auth::AuthError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use samokoder_core::api::ErrorBody;
use uuid::Uuid;

use crate::cookies::{ACCESS_COOKIE, cookie_values};
use crate::error::AuthError;
use crate::ports::{RevocationStore, TokenRef};
use crate::tokens::TokenIssuer;

/// Header the request id is read from.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request id echoed back; a longer one is not ours and is left out.
const MAX_REQUEST_ID_LEN: usize = 128;
/// Most `access_token` cookies tried per request. A browser holds one per path it was set for,
/// so a handful is plenty; without a cap, a request stuffed with hundreds of the sender's own
/// revoked (still validly signed) tokens would cost one revocation-store query each.
const MAX_COOKIE_CANDIDATES: usize = 4;

/// The authenticated caller, as handlers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The user id (`sub`).
    pub user_id: Uuid,
    /// The access token's id (`jti`), e.g. to revoke it at logout.
    pub token_id: Uuid,
    /// When the access token was issued.
    pub issued_at: DateTime<Utc>,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
}

/// What the authentication layer needs: the token verifier and the revocation store.
///
/// Make it reachable from the router state with `impl FromRef<AppState> for AuthState`.
#[derive(Clone)]
pub struct AuthState {
    /// Verifies access tokens.
    pub issuer: Arc<TokenIssuer>,
    /// Knows which tokens were revoked.
    pub revocations: Arc<dyn RevocationStore>,
}

impl fmt::Debug for AuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthState")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl AuthState {
    /// Bundles the verifier and the revocation store.
    pub fn new(issuer: Arc<TokenIssuer>, revocations: Arc<dyn RevocationStore>) -> Self {
        Self {
            issuer,
            revocations,
        }
    }

    /// Authenticates a request from its headers; what the extractor and the middleware run.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<AuthenticatedUser, AuthRejection> {
        let reject = |kind| AuthRejection {
            kind,
            request_id: request_id(headers),
        };
        let mut candidates = Vec::new();
        let mut first_failure = None;
        match bearer_token(headers) {
            Some(Ok(token)) => candidates.push(token.to_owned()),
            Some(Err(())) => first_failure = Some(RejectionKind::InvalidToken),
            None => {}
        }
        candidates.extend(
            cookie_values(headers, ACCESS_COOKIE)
                .into_iter()
                .filter(|value| !value.is_empty())
                .take(MAX_COOKIE_CANDIDATES),
        );

        for token in &candidates {
            let failure = match self.issuer.verify_access(token) {
                Ok(claims) => match self.revocations.is_revoked(&TokenRef::from(&claims)).await {
                    Ok(false) => {
                        return Ok(AuthenticatedUser {
                            user_id: claims.user_id,
                            token_id: claims.token_id,
                            issued_at: claims.issued_at,
                            expires_at: claims.expires_at,
                        });
                    }
                    Ok(true) => RejectionKind::TokenRevoked,
                    Err(e) => {
                        tracing::error!(error = %e, "revocation check failed");
                        return Err(reject(RejectionKind::Unavailable));
                    }
                },
                Err(AuthError::TokenExpired) => RejectionKind::TokenExpired,
                Err(e) => {
                    tracing::debug!(error = %e, "access token rejected");
                    RejectionKind::InvalidToken
                }
            };
            first_failure.get_or_insert(failure);
        }
        Err(reject(
            first_failure.unwrap_or(RejectionKind::NotAuthenticated),
        ))
    }
}

/// `Some(Ok(token))` for `Authorization: Bearer <token>` (the scheme in any case),
/// `Some(Err(()))` for a bearer header that carries no usable token, `None` when there is no
/// header or it is another scheme.
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
/// use samokoder_auth::extract::bearer_token;
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(bearer_token(&headers), None);
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc"));
/// assert_eq!(bearer_token(&headers), Some(Ok("abc")));
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
/// assert_eq!(bearer_token(&headers), Some(Err(())));
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcg=="));
/// assert_eq!(bearer_token(&headers), None);
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err(()));
    };
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    Some(if token.is_empty() { Err(()) } else { Ok(token) })
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID_HEADER)?
        .to_str()
        .ok()
        .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN)
        .map(str::to_owned)
}

impl<S> FromRequestParts<S> for AuthenticatedUser
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Already done by `require_authentication` for this request.
        if let Some(user) = parts.extensions.get::<AuthenticatedUser>() {
            return Ok(*user);
        }
        AuthState::from_ref(state)
            .authenticate(&parts.headers)
            .await
    }
}

/// Middleware for `axum::middleware::from_fn_with_state(auth_state, require_authentication)`:
/// rejects unauthenticated requests, and puts the [`AuthenticatedUser`] into the request
/// extensions for the handlers behind it.
pub async fn require_authentication(
    State(auth): State<AuthState>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth.authenticate(request.headers()).await {
        Ok(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(rejection) => rejection.into_response(),
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// No credential was presented.
    NotAuthenticated,
    /// A credential was presented and is not a valid access token.
    InvalidToken,
    /// The access token expired.
    TokenExpired,
    /// The access token was revoked.
    TokenRevoked,
    /// The revocation store could not be asked.
    Unavailable,
}

impl RejectionKind {
    /// The stable error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotAuthenticated => "not_authenticated",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::Unavailable => "auth_unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `detail` message.
    pub fn detail(self) -> &'static str {
        match self {
            Self::NotAuthenticated => "Not authenticated",
            // The original's wording, kept for its clients.
            Self::InvalidToken => "Could not validate credentials",
            Self::TokenExpired => "Token has expired",
            Self::TokenRevoked => "Token has been revoked",
            Self::Unavailable => "Authentication is temporarily unavailable",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750), if this rejection carries one.
    pub fn challenge(self) -> Option<&'static str> {
        match self {
            Self::NotAuthenticated => Some("Bearer"),
            Self::InvalidToken | Self::TokenExpired | Self::TokenRevoked => {
                Some(r#"Bearer error="invalid_token""#)
            }
            Self::Unavailable => None,
        }
    }
}

/// The response to an unauthenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    kind: RejectionKind,
    request_id: Option<String>,
}

impl AuthRejection {
    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The request id echoed in the body, if the request had one.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.detail())
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let mut body = ErrorBody::new(self.kind.code(), self.kind.detail());
        body.request_id = self.request_id;
        let mut response = (self.kind.status(), Json(body)).into_response();
        if let Some(challenge) = self.kind.challenge() {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::routing::get;
    use chrono::{Duration, TimeZone};
    use tower::ServiceExt as _;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::memory::InMemoryRevocationStore;
    use crate::ports::{PortError, PortResult};
    use crate::secret::SecretString;
    use crate::tokens::{SigningKeyConfig, TokenConfig};

    #[derive(Clone)]
    struct AppState {
        auth: AuthState,
    }

    impl FromRef<AppState> for AuthState {
        fn from_ref(state: &AppState) -> Self {
            state.auth.clone()
        }
    }

    struct Fixture {
        issuer: Arc<TokenIssuer>,
        revocations: Arc<InMemoryRevocationStore>,
        clock: Arc<ManualClock>,
    }

    fn fixture() -> Fixture {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
        ));
        let issuer = TokenIssuer::with_clock(
            &TokenConfig {
                keys: vec![SigningKeyConfig {
                    kid: "k1".into(),
                    secret: SecretString::new("extractor-tests-secret-0123456789abcdef"),
                }],
                ..TokenConfig::default()
            },
            clock.clone(),
        )
        .unwrap();
        Fixture {
            issuer: Arc::new(issuer),
            revocations: Arc::new(InMemoryRevocationStore::new()),
            clock,
        }
    }

    async fn whoami(user: AuthenticatedUser) -> String {
        user.user_id.to_string()
    }

    fn router(auth: AuthState) -> Router {
        Router::new()
            .route("/me", get(whoami))
            .with_state(AppState { auth })
    }

    impl Fixture {
        fn auth(&self) -> AuthState {
            AuthState::new(self.issuer.clone(), self.revocations.clone())
        }
    }

    async fn call(
        router: Router,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut request = Request::builder().uri("/me");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, headers, body)
    }

    #[tokio::test]
    async fn bearer_header_authenticates() {
        let f = fixture();
        let user = Uuid::new_v4();
        let token = f.issuer.issue_access(user).unwrap().token;
        let bearer = format!("Bearer {}", token.expose());
        let (status, _, body) = call(router(f.auth()), &[("authorization", &bearer)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::Value::String(user.to_string()));
    }

    #[tokio::test]
    async fn cookie_works_alone() {
        let f = fixture();
        let user = Uuid::new_v4();
        let token = f.issuer.issue_access(user).unwrap().token;
        let cookie = format!("theme=dark; access_token={}", token.expose());
        let (status, _, body) = call(router(f.auth()), &[("cookie", &cookie)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::Value::String(user.to_string()));
    }

    #[tokio::test]
    async fn valid_header_beats_stale_cookie_and_valid_cookie_beats_broken_header() {
        let f = fixture();
        let (old_user, new_user) = (Uuid::new_v4(), Uuid::new_v4());
        let stale = f.issuer.issue_access(old_user).unwrap().token;
        f.clock.advance(Duration::hours(1));
        let fresh = f.issuer.issue_access(new_user).unwrap().token;

        let bearer = format!("Bearer {}", fresh.expose());
        let cookie = format!("access_token={}", stale.expose());
        let (status, _, body) = call(
            router(f.auth()),
            &[("authorization", &bearer), ("cookie", &cookie)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::Value::String(new_user.to_string()));

        let cookie = format!("access_token={}", fresh.expose());
        let (status, _, body) = call(
            router(f.auth()),
            &[("authorization", "Bearer not-a-jwt"), ("cookie", &cookie)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::Value::String(new_user.to_string()));

        // A second, valid cookie of the same name behind a stale one is found too.
        let cookies = format!(
            "access_token={}; access_token={}",
            stale.expose(),
            fresh.expose()
        );
        let (status, _, _) = call(router(f.auth()), &[("cookie", &cookies)]).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn when_both_are_valid_the_header_decides() {
        let f = fixture();
        let (header_user, cookie_user) = (Uuid::new_v4(), Uuid::new_v4());
        let bearer = format!(
            "Bearer {}",
            f.issuer.issue_access(header_user).unwrap().token.expose()
        );
        let cookie = format!(
            "access_token={}",
            f.issuer.issue_access(cookie_user).unwrap().token.expose()
        );
        let (status, _, body) = call(
            router(f.auth()),
            &[("cookie", &cookie), ("authorization", &bearer)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::Value::String(header_user.to_string()));
    }

    #[tokio::test]
    async fn the_first_presented_credential_names_the_failure() {
        let f = fixture();
        let expired = f.issuer.issue_access(Uuid::new_v4()).unwrap().token;
        f.clock.advance(Duration::hours(1));
        let bearer = format!("Bearer {}", expired.expose());
        let (_, _, body) = call(
            router(f.auth()),
            &[
                ("authorization", &bearer),
                ("cookie", "access_token=garbage"),
            ],
        )
        .await;
        assert_eq!(body["code"], "token_expired");
        let cookie = format!("access_token={}", expired.expose());
        let (_, _, body) = call(
            router(f.auth()),
            &[("authorization", "Bearer garbage"), ("cookie", &cookie)],
        )
        .await;
        assert_eq!(body["code"], "invalid_token");
    }

    #[tokio::test]
    async fn missing_credentials_is_not_authenticated_with_a_plain_challenge() {
        let f = fixture();
        let (status, headers, body) = call(
            router(f.auth()),
            &[
                ("x-request-id", "req-42"),
                ("authorization", "Basic dXNlcjpwdw=="),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            body,
            serde_json::json!({
                "detail": "Not authenticated",
                "code": "not_authenticated",
                "request_id": "req-42"
            })
        );
    }

    #[tokio::test]
    async fn invalid_token_body_and_challenge() {
        let f = fixture();
        let (status, headers, body) =
            call(router(f.auth()), &[("authorization", "Bearer abc.def.ghi")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[WWW_AUTHENTICATE], r#"Bearer error="invalid_token""#);
        assert_eq!(
            body,
            serde_json::json!({"detail": "Could not validate credentials", "code": "invalid_token"})
        );
        let (_, _, body) = call(router(f.auth()), &[("authorization", "Bearer ")]).await;
        assert_eq!(body["code"], "invalid_token");
    }

    #[tokio::test]
    async fn expired_token_is_reported_as_such() {
        let f = fixture();
        let token = f.issuer.issue_access(Uuid::new_v4()).unwrap().token;
        f.clock.advance(Duration::minutes(16));
        let bearer = format!("Bearer {}", token.expose());
        let (status, headers, body) = call(router(f.auth()), &[("authorization", &bearer)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[WWW_AUTHENTICATE], r#"Bearer error="invalid_token""#);
        assert_eq!(body["code"], "token_expired");
    }

    #[tokio::test]
    async fn refresh_token_is_not_an_access_token() {
        let f = fixture();
        let token = f
            .issuer
            .issue_refresh(Uuid::new_v4(), Uuid::new_v4())
            .unwrap()
            .token;
        let bearer = format!("Bearer {}", token.expose());
        let (status, _, body) = call(router(f.auth()), &[("authorization", &bearer)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "invalid_token");
    }

    #[tokio::test]
    async fn revoked_tokens_are_rejected_by_id_and_by_user_mark() {
        let f = fixture();
        let user = Uuid::new_v4();
        let issued = f.issuer.issue_access(user).unwrap();
        f.revocations
            .revoke_token(issued.token_id, issued.expires_at)
            .await
            .unwrap();
        let bearer = format!("Bearer {}", issued.token.expose());
        let (status, headers, body) = call(router(f.auth()), &[("authorization", &bearer)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[WWW_AUTHENTICATE], r#"Bearer error="invalid_token""#);
        assert_eq!(body["code"], "token_revoked");
        assert_eq!(body["detail"], "Token has been revoked");

        let other = f.issuer.issue_access(user).unwrap();
        f.revocations
            .revoke_user_tokens_before(user, f.clock.now())
            .await
            .unwrap();
        let bearer = format!("Bearer {}", other.token.expose());
        let (_, _, body) = call(router(f.auth()), &[("authorization", &bearer)]).await;
        assert_eq!(body["code"], "token_revoked");
    }

    /// Counts revocation checks, answering "revoked" to every one.
    #[derive(Default)]
    struct CountingStore(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl RevocationStore for CountingStore {
        async fn revoke_token(&self, _: Uuid, _: DateTime<Utc>) -> PortResult<bool> {
            Ok(true)
        }
        async fn revoke_user_tokens_before(&self, _: Uuid, _: DateTime<Utc>) -> PortResult<()> {
            Ok(())
        }
        async fn is_revoked(&self, _: &TokenRef) -> PortResult<bool> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(true)
        }
    }

    #[tokio::test]
    async fn a_request_stuffed_with_cookies_costs_a_bounded_number_of_store_queries() {
        let f = fixture();
        let user = Uuid::new_v4();
        let cookies = (0..50)
            .map(|_| {
                let token = f.issuer.issue_access(user).unwrap().token;
                format!("access_token={}", token.expose())
            })
            .collect::<Vec<_>>()
            .join("; ");
        let store = Arc::new(CountingStore::default());
        let auth = AuthState::new(f.issuer.clone(), store.clone());
        let (status, _, body) = call(router(auth), &[("cookie", &cookies)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "token_revoked");
        let queries = store.0.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            queries <= MAX_COOKIE_CANDIDATES,
            "{queries} revocation queries for one request"
        );
    }

    struct BrokenStore;

    #[async_trait]
    impl RevocationStore for BrokenStore {
        async fn revoke_token(&self, _: Uuid, _: DateTime<Utc>) -> PortResult<bool> {
            Err(PortError::new(std::io::Error::other("down")))
        }
        async fn revoke_user_tokens_before(&self, _: Uuid, _: DateTime<Utc>) -> PortResult<()> {
            Err(PortError::new(std::io::Error::other("down")))
        }
        async fn is_revoked(&self, _: &TokenRef) -> PortResult<bool> {
            Err(PortError::new(std::io::Error::other("down")))
        }
    }

    #[tokio::test]
    async fn store_failure_is_503_not_401() {
        let f = fixture();
        let token = f.issuer.issue_access(Uuid::new_v4()).unwrap().token;
        let auth = AuthState::new(f.issuer.clone(), Arc::new(BrokenStore));
        let bearer = format!("Bearer {}", token.expose());
        let (status, headers, body) = call(router(auth), &[("authorization", &bearer)]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.get(WWW_AUTHENTICATE).is_none());
        assert_eq!(body["code"], "auth_unavailable");
    }

    #[tokio::test]
    async fn middleware_authenticates_once_for_the_routes_behind_it() {
        let f = fixture();
        let user = Uuid::new_v4();
        let auth = f.auth();
        let app = Router::new()
            .route("/me", get(whoami))
            .route_layer(axum::middleware::from_fn_with_state(
                auth.clone(),
                require_authentication,
            ))
            .with_state(AppState { auth });
        let token = f.issuer.issue_access(user).unwrap().token;
        let bearer = format!("Bearer {}", token.expose());
        let (status, _, body) = call(app.clone(), &[("authorization", &bearer)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::Value::String(user.to_string()));
        let (status, headers, _) = call(app, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
    }

    #[tokio::test]
    async fn overlong_request_ids_are_not_echoed() {
        let f = fixture();
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        let (_, _, body) = call(router(f.auth()), &[("x-request-id", &long)]).await;
        assert!(body.get("request_id").is_none());
    }
}
