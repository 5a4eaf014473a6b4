//! Security headers on every response, whatever produced it (handler, rejection, 404, 413,
//! 429, timeout, panic): this layer sits outside all of them.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// For JSON responses: nothing may load, nothing may frame them.
pub const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// For the Swagger UI page under `/docs`: its own scripts, styles (React sets inline styles),
/// inline SVG icons, and fetching the OpenAPI document and "try it out" calls from this origin.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'self'; form-action 'self'";

/// Features a JSON API never needs.
const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), \
    magnetometer=(), microphone=(), payment=(), usb=()";

/// One year; sent only in production, where the server is reached over HTTPS.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Which headers to send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecurityHeaders {
    /// `Strict-Transport-Security`, production only: on a developer's plain-HTTP localhost it
    /// would pin the browser to HTTPS for every port of that host.
    pub(crate) hsts: bool,
}

/// Whether a path is the docs page or one of its assets (they get [`DOCS_CSP`]).
fn is_docs(path: &str) -> bool {
    path == "/docs" || path.starts_with("/docs/")
}

/// Middleware: adds the headers to the response of everything inside it.
pub(crate) async fn security_headers(
    State(settings): State<SecurityHeaders>,
    req: Request,
    next: Next,
) -> Response {
    let docs = is_docs(req.uri().path());
    let mut response = next.run(req).await;
    apply(response.headers_mut(), docs, settings);
    response
}

/// Sets the headers a response does not already carry and removes identifying ones.
fn apply(headers: &mut HeaderMap, docs: bool, settings: SecurityHeaders) {
    let csp = if docs { DOCS_CSP } else { API_CSP };
    let mut set = |name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, csp);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        HeaderName::from_static("permissions-policy"),
        PERMISSIONS_POLICY,
    );
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if settings.hsts {
        set(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    // Nothing below the server adds these today; removing them keeps it that way for
    // whatever gets embedded or layered in later.
    headers.remove(header::SERVER);
    headers.remove(HeaderName::from_static("x-powered-by"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_handlers_own_policy_and_strips_server() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("custom"),
        );
        headers.insert(header::SERVER, HeaderValue::from_static("hyper/1.0"));
        apply(&mut headers, false, SecurityHeaders { hsts: true });
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], "custom");
        assert!(headers.get(header::SERVER).is_none());
        assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], HSTS);
    }

    #[test]
    fn docs_get_their_own_policy() {
        assert!(is_docs("/docs") && is_docs("/docs/swagger-ui.css"));
        assert!(!is_docs("/docsx") && !is_docs("/v1/docs"));
        let mut headers = HeaderMap::new();
        apply(&mut headers, true, SecurityHeaders { hsts: false });
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], DOCS_CSP);
        assert!(headers.get(header::STRICT_TRANSPORT_SECURITY).is_none());
    }
}
