//! Refuses state-changing requests a browser sends on behalf of another origin.
//!
//! `SameSite=Strict` cookies are not enough: a sibling subdomain or a preview on another port of
//! the same host is *same-site*, so the browser attaches the session cookie to its `POST`s. The
//! browser does tell where a request comes from, though, and a page cannot forge it:
//! - `Origin` (every cross-origin `POST`, and same-origin ones in current browsers): allowed when
//!   it is the server's own origin (its `Host`) or one of `cors.allowed_origins`;
//! - otherwise `Sec-Fetch-Site`: allowed when `same-origin` or `none` (typed by the user);
//! - neither header: not a browser (the CLI, the typed client, curl), so no ambient cookie to
//!   abuse, and the request is allowed.
//!
//! Safe methods (`GET`, `HEAD`, `OPTIONS`) change nothing and pass; CORS preflights are answered
//! by the CORS layer before this one.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{HOST, ORIGIN};
use http::{HeaderMap, Method, Uri};

use crate::error::ApiError;

/// The stable error code of a refused cross-origin request.
pub(crate) const CROSS_ORIGIN_CODE: &str = "cross_origin_refused";

/// The origins besides the server's own that may change state: the CORS list.
#[derive(Debug, Clone)]
pub(crate) struct TrustedOrigins(Arc<[String]>);

impl TrustedOrigins {
    pub(crate) fn new(origins: &[String]) -> Self {
        Self(origins.iter().map(|o| o.to_ascii_lowercase()).collect())
    }

    /// Whether a request with these headers may change state.
    fn allow(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return true;
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            let origin = origin.trim().to_ascii_lowercase();
            return self.0.contains(&origin) || is_own_origin(&origin, uri, headers);
        }
        match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
            None => true,
            Some(site) => site == b"same-origin" || site == b"none",
        }
    }
}

/// Whether `origin` (lowercase `scheme://host[:port]`) names the host this request was sent to.
/// The scheme is not compared: behind a TLS-terminating proxy the server cannot see it.
fn is_own_origin(origin: &str, uri: &Uri, headers: &HeaderMap) -> bool {
    let Some((_scheme, authority)) = origin.split_once("://") else {
        // `null` (sandboxed frames, `file:` pages) and anything malformed.
        return false;
    };
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    host.is_some_and(|host| !authority.is_empty() && host.eq_ignore_ascii_case(authority))
}

/// Middleware: answers 403 `cross_origin_refused` to a state-changing request from a foreign
/// origin, before any handler (or its side effects) runs.
pub(crate) async fn refuse_cross_origin(
    State(trusted): State<TrustedOrigins>,
    req: Request,
    next: Next,
) -> Response {
    if trusted.allow(req.method(), req.uri(), req.headers()) {
        return next.run(req).await;
    }
    tracing::warn!(
        method = %req.method(),
        origin = ?req.headers().get(ORIGIN),
        "refused a cross-origin state-changing request"
    );
    ApiError::forbidden("state-changing requests from another origin are refused")
        .with_code(CROSS_ORIGIN_CODE)
        .into_response()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn allowed(method: &Method, headers: &[(&'static str, &'static str)]) -> bool {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        TrustedOrigins::new(&["https://App.example".to_owned()]).allow(
            method,
            &Uri::from_static("/v1/auth/logout-all"),
            &map,
        )
    }

    #[test]
    fn the_servers_own_origin_and_listed_origins_may_change_state() {
        let host = ("host", "api.example:8000");
        assert!(allowed(
            &Method::POST,
            &[host, ("origin", "http://api.example:8000")]
        ));
        assert!(allowed(
            &Method::POST,
            &[host, ("origin", "https://API.example:8000")]
        ));
        assert!(allowed(
            &Method::DELETE,
            &[("origin", "https://app.example")]
        ));
    }

    #[test]
    fn foreign_null_and_sibling_origins_are_refused() {
        let host = ("host", "api.example:8000");
        for origin in [
            "https://evil.example",
            "http://api.example:8001",
            "http://preview.api.example:8000",
            "http://api.example",
            "null",
            "api.example:8000",
            "https://app.example.evil",
        ] {
            let headers = [host, ("origin", origin)];
            for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                assert!(!allowed(&method, &headers), "{method} from {origin}");
            }
        }
    }

    #[test]
    fn without_origin_the_fetch_site_decides_and_non_browsers_pass() {
        assert!(allowed(&Method::POST, &[]));
        assert!(allowed(&Method::POST, &[("sec-fetch-site", "same-origin")]));
        assert!(allowed(&Method::POST, &[("sec-fetch-site", "none")]));
        assert!(!allowed(&Method::POST, &[("sec-fetch-site", "same-site")]));
        assert!(!allowed(&Method::POST, &[("sec-fetch-site", "cross-site")]));
    }

    #[test]
    fn safe_methods_always_pass() {
        let evil = [
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ];
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(allowed(&method, &evil));
        }
    }
}
