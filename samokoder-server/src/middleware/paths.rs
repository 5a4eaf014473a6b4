//! Path normalisation before routing, so aliases answer directly instead of redirecting.
//!
//! - `/api/v1/...` is served as `/v1/...`: the browser app reaches the API through a proxy
//!   that keeps the `/api` prefix.
//! - A trailing slash is ignored (`/v1/projects/` is `/v1/projects`): the original's web app
//!   calls the slash form. The original answered it with a redirect, and behind a proxy that
//!   strips `/api` that redirect lost the prefix; rewriting instead of redirecting avoids that.
//!
//! `/docs/` keeps its slash: the Swagger UI page loads its assets relative to it.

use axum::extract::Request;
use http::Uri;
use http::uri::PathAndQuery;

/// The prefix the web app's proxy keeps in front of `/v1`.
const BROWSER_PREFIX: &str = "/api";

/// The normalised form of `path`, or `None` when it is already normal.
pub(crate) fn normalize(path: &str) -> Option<String> {
    let mut normal = path;
    if let Some(rest) = path.strip_prefix(BROWSER_PREFIX)
        && (rest == "/v1" || rest.starts_with("/v1/"))
    {
        normal = rest;
    }
    if !normal.starts_with("/docs/") {
        let trimmed = normal.trim_end_matches('/');
        normal = if trimmed.is_empty() { "/" } else { trimmed };
    }
    (normal != path).then(|| normal.to_owned())
}

/// Rewrites the request's URI to its normal path, keeping the query string.
pub(crate) fn normalize_request(mut req: Request) -> Request {
    let Some(path) = normalize(req.uri().path()) else {
        return req;
    };
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = req.uri().clone().into_parts();
    // The new path is a suffix of a valid path, so it parses; if it somehow did not, the
    // request is routed as it came.
    if let Ok(pq) = PathAndQuery::try_from(path_and_query) {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_browser_prefix_and_trailing_slashes() {
        assert_eq!(
            normalize("/api/v1/projects/").as_deref(),
            Some("/v1/projects")
        );
        assert_eq!(normalize("/api/v1").as_deref(), Some("/v1"));
        assert_eq!(normalize("/v1/projects//").as_deref(), Some("/v1/projects"));
        assert_eq!(normalize("/health/").as_deref(), Some("/health"));
        assert_eq!(normalize("/v1/projects"), None);
        assert_eq!(normalize("/"), None);
        assert_eq!(normalize("//").as_deref(), Some("/"));
    }

    #[test]
    fn leaves_other_prefixes_and_the_docs_alone() {
        assert_eq!(normalize("/api/v10/x"), None);
        assert_eq!(normalize("/api/health"), None);
        assert_eq!(normalize("/docs/"), None);
        assert_eq!(normalize("/docs/swagger-ui.css"), None);
    }

    #[test]
    fn keeps_the_query() {
        let req = Request::builder()
            .uri("/api/v1/projects/?page=2&q=a%20b")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(
            normalize_request(req).uri().to_string(),
            "/v1/projects?page=2&q=a%20b"
        );
    }
}
