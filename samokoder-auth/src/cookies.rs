//! The `access_token` and `refresh_token` cookies: setting and clearing them.
//!
//! Both are `HttpOnly` (no script can read them), `SameSite=Strict` (never sent on cross-site
//! requests, the CSRF defence), `Secure` unless [`CookieConfig::secure`] is off for local
//! development over plain HTTP, and carry `Max-Age` equal to the token's lifetime. Clearing
//! sends the same name, path and attributes with `Max-Age=0`, which is what makes the browser
//! drop the right cookie.
//!
//! ## Paths
//!
//! The API is reachable as `/v1/...` directly and as `/api/v1/...` behind the proxy that strips
//! `/api`, and a cookie's `Path` is matched against the URL *the browser* sees. One fixed
//! narrow path therefore cannot serve both. The paths are configurable and both default to
//! `/`, which works for every deployment and matches the original frontend. A deployment with
//! a single public base can narrow the refresh cookie to its auth routes (both `refresh` and
//! `logout` need it), e.g. `refresh_path = "/api/v1/auth"`, so the long-lived token is not sent
//! with every API request.
//!
//! ```
//! use samokoder_auth::cookies::CookieConfig;
//! use samokoder_auth::tokens::{SigningKeyConfig, TokenConfig, TokenIssuer};
//! use uuid::Uuid;
//!
//! let issuer = TokenIssuer::new(&TokenConfig {
//!     keys: vec![SigningKeyConfig::generate("k1")],
//!     ..TokenConfig::default()
//! })?;
//! let access = issuer.issue_access(Uuid::new_v4())?;
//!
//! let cookies = CookieConfig::default();
//! let set = cookies.access_cookie(&access).to_string();
//! assert!(set.starts_with("access_token="));
//! assert!(set.contains("; HttpOnly; SameSite=Strict; Secure; Path=/; Max-Age=900"));
//!
//! let clear = cookies.clear_access_cookie().to_string();
//! assert_eq!(clear.split("; Expires=").next().unwrap(),
//!            "access_token=; HttpOnly; SameSite=Strict; Secure; Path=/; Max-Age=0");
//! # Ok::<(), samokoder_auth::AuthError>(())
//! ```

use cookie::time::Duration as CookieDuration;
use cookie::{Cookie, SameSite};
use http::HeaderMap;
use http::header::COOKIE;
use serde::Deserialize;

use crate::tokens::IssuedToken;

/// Name of the access-token cookie.
pub const ACCESS_COOKIE: &str = "access_token";
/// Name of the refresh-token cookie.
pub const REFRESH_COOKIE: &str = "refresh_token";

/// Cookie attributes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieConfig {
    /// Add `Secure` (HTTPS only). On by default; turn off only for local development.
    pub secure: bool,
    /// `Path` of the access cookie (default `/`).
    pub access_path: String,
    /// `Path` of the refresh cookie (default `/`; see the module docs for narrowing it).
    pub refresh_path: String,
    /// `Domain`, if any. Leave unset to keep cookies host-only.
    pub domain: Option<String>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            secure: true,
            access_path: "/".into(),
            refresh_path: "/".into(),
            domain: None,
        }
    }
}

impl CookieConfig {
    /// The defaults without `Secure`, for development over plain HTTP.
    pub fn development() -> Self {
        Self {
            secure: false,
            ..Self::default()
        }
    }

    /// The cookie carrying an access token.
    pub fn access_cookie(&self, token: &IssuedToken) -> Cookie<'static> {
        self.build(ACCESS_COOKIE, token.token.expose(), &self.access_path)
            .max_age(CookieDuration::seconds(token.lifetime_seconds()))
            .build()
    }

    /// The cookie carrying a refresh token.
    pub fn refresh_cookie(&self, token: &IssuedToken) -> Cookie<'static> {
        self.build(REFRESH_COOKIE, token.token.expose(), &self.refresh_path)
            .max_age(CookieDuration::seconds(token.lifetime_seconds()))
            .build()
    }

    /// The cookie that deletes the access cookie (`Max-Age=0`, same attributes).
    pub fn clear_access_cookie(&self) -> Cookie<'static> {
        self.build(ACCESS_COOKIE, "", &self.access_path)
            .removal()
            .build()
    }

    /// The cookie that deletes the refresh cookie (`Max-Age=0`, same attributes).
    pub fn clear_refresh_cookie(&self) -> Cookie<'static> {
        self.build(REFRESH_COOKIE, "", &self.refresh_path)
            .removal()
            .build()
    }

    fn build(&self, name: &'static str, value: &str, path: &str) -> cookie::CookieBuilder<'static> {
        let builder = Cookie::build((name, value.to_owned()))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure)
            .path(path.to_owned());
        match &self.domain {
            Some(domain) => builder.domain(domain.clone()),
            None => builder,
        }
    }
}

/// Every value of the cookie `name` in the request's `Cookie` headers, in order.
///
/// A browser can hold several cookies of one name (different paths, or a stale one from an
/// older deployment) and sends them all, so callers should try each rather than trust the first.
pub fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| Cookie::split_parse(header.to_owned()))
        .filter_map(Result::ok)
        .filter(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use http::HeaderValue;
    use uuid::Uuid;

    use super::*;
    use crate::secret::SecretString;

    fn token(lifetime: i64) -> IssuedToken {
        let issued_at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        IssuedToken {
            token: SecretString::new("header.payload.signature"),
            token_id: Uuid::new_v4(),
            issued_at,
            expires_at: issued_at + Duration::seconds(lifetime),
        }
    }

    #[test]
    fn attributes_of_both_cookies() {
        let config = CookieConfig::default();
        let access = config.access_cookie(&token(900));
        assert_eq!(access.name(), "access_token");
        assert_eq!(access.value(), "header.payload.signature");
        assert_eq!(access.http_only(), Some(true));
        assert_eq!(access.same_site(), Some(SameSite::Strict));
        assert_eq!(access.secure(), Some(true));
        assert_eq!(access.path(), Some("/"));
        assert_eq!(access.max_age(), Some(CookieDuration::seconds(900)));
        assert_eq!(access.domain(), None);

        let refresh = config.refresh_cookie(&token(604_800));
        assert_eq!(refresh.name(), "refresh_token");
        assert_eq!(refresh.max_age(), Some(CookieDuration::seconds(604_800)));
        assert_eq!(refresh.http_only(), Some(true));
    }

    #[test]
    fn development_drops_only_secure_and_paths_are_configurable() {
        let config = CookieConfig {
            refresh_path: "/api/v1/auth".into(),
            domain: Some("example.com".into()),
            ..CookieConfig::development()
        };
        let refresh = config.refresh_cookie(&token(60)).to_string();
        assert_eq!(
            refresh,
            "refresh_token=header.payload.signature; HttpOnly; SameSite=Strict; \
             Path=/api/v1/auth; Domain=example.com; Max-Age=60"
        );
    }

    #[test]
    fn clearing_matches_the_attributes_with_max_age_zero() {
        let config = CookieConfig {
            refresh_path: "/v1/auth".into(),
            ..CookieConfig::default()
        };
        for (set, clear) in [
            (
                config.access_cookie(&token(900)),
                config.clear_access_cookie(),
            ),
            (
                config.refresh_cookie(&token(900)),
                config.clear_refresh_cookie(),
            ),
        ] {
            assert_eq!(clear.name(), set.name());
            assert_eq!(clear.value(), "");
            assert_eq!(clear.path(), set.path());
            assert_eq!(clear.http_only(), set.http_only());
            assert_eq!(clear.same_site(), set.same_site());
            assert_eq!(clear.secure(), set.secure());
            assert_eq!(clear.max_age(), Some(CookieDuration::ZERO));
        }
    }

    #[test]
    fn reads_every_value_of_a_name_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("theme=dark; access_token=one"),
        );
        headers.append(COOKIE, HeaderValue::from_static("access_token=two"));
        assert_eq!(cookie_values(&headers, ACCESS_COOKIE), vec!["one", "two"]);
        assert!(cookie_values(&headers, REFRESH_COOKIE).is_empty());
    }
}
