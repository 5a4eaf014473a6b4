//! The authentication services the routes use, built once from configuration, the keys and the
//! store: token issuer, password hasher, refresh sessions, lockout, secret box, cookies.

use std::fmt;
use std::sync::Arc;

use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use cookie::Cookie;
use http::header::{AUTHORIZATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use samokoder_auth::AuthError;
use samokoder_auth::clock::SystemClock;
use samokoder_auth::cookies::{ACCESS_COOKIE, CookieConfig, cookie_values};
use samokoder_auth::extract::AuthState;
use samokoder_auth::hashing::PasswordHasher;
use samokoder_auth::lockout::LockoutService;
use samokoder_auth::refresh::{RefreshService, TokenPair};
use samokoder_auth::secret_box::{SecretBox, SecretBoxConfig, SecretBoxKeyConfig};
use samokoder_auth::tokens::{SigningKeyConfig, TokenConfig, TokenIssuer};
use samokoder_store::Store;

use crate::config::{Config, Environment, Secrets};
use crate::rate_limit::{RateLimitKey, RateLimitKeyResolver};

/// The authentication services. Cheap to clone.
#[derive(Clone)]
pub struct AuthServices {
    /// Signs and verifies access and refresh tokens.
    pub issuer: Arc<TokenIssuer>,
    /// Hashes and verifies passwords.
    pub hasher: PasswordHasher,
    /// Login sessions: issue, rotate, revoke.
    pub refresh: RefreshService,
    /// Failed-login lockout.
    pub lockout: LockoutService,
    /// Seals users' provider keys and VCS tokens.
    pub secret_box: Arc<SecretBox>,
    /// Cookie attributes.
    pub cookies: CookieConfig,
    /// What the `AuthenticatedUser` extractor needs.
    pub state: AuthState,
}

impl fmt::Debug for AuthServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthServices")
            .field("issuer", &self.issuer)
            .field("hasher", &self.hasher)
            .field("lockout", &self.lockout)
            .field("secret_box", &self.secret_box)
            .field("cookies", &self.cookies)
            .finish_non_exhaustive()
    }
}

impl AuthServices {
    /// Builds the services over `store`. Fails, naming the setting or key id at fault, when the
    /// configuration is unusable; computes the unknown-user dummy hash up front so the first
    /// login for an unknown e-mail is not slower than the others.
    pub async fn new(config: &Config, secrets: &Secrets, store: &Store) -> Result<Self, AuthError> {
        let auth = &config.auth;
        let issuer = Arc::new(TokenIssuer::new(&TokenConfig {
            keys: secrets
                .jwt_keys()
                .iter()
                .map(|key| SigningKeyConfig {
                    kid: key.kid.clone(),
                    secret: key.secret.clone(),
                })
                .collect(),
            active_kid: Some(secrets.jwt_signing_key().kid.clone()),
            access_ttl_seconds: auth.access_ttl_secs,
            refresh_ttl_seconds: auth.refresh_ttl_secs,
            ..TokenConfig::default()
        })?);
        let hasher = password_hasher(config)?;
        hasher.warm_up().await?;
        let secret_box = Arc::new(SecretBox::new(&SecretBoxConfig {
            keys: secrets
                .secret_box_keys()
                .iter()
                .map(|key| SecretBoxKeyConfig {
                    kid: key.kid.clone(),
                    key: key.secret.clone(),
                })
                .collect(),
            active_kid: secrets.secret_box_keys().first().map(|k| k.kid.clone()),
        })?);
        let refresh = RefreshService::new(
            issuer.clone(),
            store.refresh_families.clone(),
            store.revocations.clone(),
        );
        let lockout = LockoutService::new(
            auth.lockout.policy(),
            store.login_attempts.clone(),
            Arc::new(SystemClock),
        )?;
        let state = AuthState::new(issuer.clone(), store.revocations.clone());
        Ok(Self {
            issuer,
            hasher,
            refresh,
            lockout,
            secret_box,
            cookies: auth.cookies.cookie_config(config.env),
            state,
        })
    }

    /// The `Set-Cookie` headers that start (or renew) a session in a browser.
    pub fn session_cookies(&self, pair: &TokenPair) -> SetCookies {
        SetCookies(vec![
            self.cookies.access_cookie(&pair.access),
            self.cookies.refresh_cookie(&pair.refresh),
        ])
    }

    /// The `Set-Cookie` headers that delete both session cookies.
    pub fn clearing_cookies(&self) -> SetCookies {
        SetCookies(vec![
            self.cookies.clear_access_cookie(),
            self.cookies.clear_refresh_cookie(),
        ])
    }
}

/// The password hasher `config` asks for. Parameters below the OWASP minimum are accepted only
/// with `env = "test"` (see [`crate::config::PasswordHashConfig`]).
pub fn password_hasher(config: &Config) -> Result<PasswordHasher, AuthError> {
    let params = config.auth.password_hash.params();
    if config.env == Environment::Test {
        PasswordHasher::dangerous_with_weak_params(params)
    } else {
        PasswordHasher::new(params)
    }
}

/// `Set-Cookie` headers to add to a response (`(cookies, body).into_response()`).
#[derive(Debug, Clone, Default)]
pub struct SetCookies(pub Vec<Cookie<'static>>);

impl IntoResponseParts for SetCookies {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        append_cookies(parts.headers_mut(), &self.0);
        Ok(parts)
    }
}

impl IntoResponse for SetCookies {
    fn into_response(self) -> Response {
        (self, ()).into_response()
    }
}

/// Appends one `Set-Cookie` per cookie. A cookie whose text is not a valid header value (it
/// cannot be: names, tokens and paths are ASCII) is skipped rather than sent broken.
pub(crate) fn append_cookies(headers: &mut HeaderMap, cookies: &[Cookie<'static>]) {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
            headers.append(SET_COOKIE, value);
        }
    }
}

/// The access tokens a request presents: the bearer token first, then each `access_token`
/// cookie (the order the authentication extractor tries them in).
pub(crate) fn presented_access_tokens(headers: &HeaderMap) -> Vec<String> {
    let mut tokens = Vec::new();
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some((scheme, token)) = value.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
        && !token.trim().is_empty()
    {
        tokens.push(token.trim().to_owned());
    }
    tokens.extend(
        cookie_values(headers, ACCESS_COOKIE)
            .into_iter()
            .filter(|value| !value.is_empty()),
    );
    tokens
}

/// Keys the rate limit of an authenticated request on its user: the first presented access
/// token whose signature and expiry verify decides. (Revocation is not checked here: a revoked
/// token still only spends its own user's allowance, and is refused by the route.)
pub struct TokenKeyResolver {
    issuer: Arc<TokenIssuer>,
}

impl TokenKeyResolver {
    /// A resolver verifying with `issuer`.
    pub fn new(issuer: Arc<TokenIssuer>) -> Self {
        Self { issuer }
    }
}

impl RateLimitKeyResolver for TokenKeyResolver {
    fn resolve(&self, headers: &HeaderMap) -> Option<RateLimitKey> {
        presented_access_tokens(headers)
            .iter()
            .find_map(|token| self.issuer.verify_access(token).ok())
            .map(|claims| RateLimitKey::user(claims.user_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_issuer() -> Arc<TokenIssuer> {
        Arc::new(
            TokenIssuer::new(&TokenConfig {
                keys: vec![SigningKeyConfig::generate("k1")],
                ..TokenConfig::default()
            })
            .unwrap(),
        )
    }

    #[test]
    fn resolver_keys_verified_tokens_on_their_user() {
        let issuer = new_issuer();
        let user = uuid::Uuid::new_v4();
        let token = issuer.issue_access(user).unwrap();
        let resolver = TokenKeyResolver::new(issuer.clone());

        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            format!("Bearer {}", token.token.expose()).parse().unwrap(),
        );
        assert_eq!(resolver.resolve(&headers), Some(RateLimitKey::user(user)));

        // A cookie works too, after a broken bearer header.
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Bearer forged".parse().unwrap());
        headers.insert(
            http::header::COOKIE,
            format!("access_token={}", token.token.expose())
                .parse()
                .unwrap(),
        );
        assert_eq!(resolver.resolve(&headers), Some(RateLimitKey::user(user)));

        // A token signed by someone else's key is anonymous.
        let foreign = new_issuer().issue_access(user).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            format!("Bearer {}", foreign.token.expose())
                .parse()
                .unwrap(),
        );
        assert_eq!(resolver.resolve(&headers), None);
    }
}
