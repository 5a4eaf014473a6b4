//! CORS: the configured origin may call with credentials; others may not.

use axum::body::Body;
use http::StatusCode;

use crate::helpers::{self, ALLOWED_ORIGIN, assert_security_headers, request, send};

fn preflight(origin: &str) -> http::Request<Body> {
    request("OPTIONS", "/v1/test/echo")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn preflight_is_allowed_for_the_configured_origin_with_credentials() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    let answer = send(&router, preflight(ALLOWED_ORIGIN)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    let methods = answer.header("access-control-allow-methods").unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = answer.header("access-control-allow-headers").unwrap();
    assert!(headers.contains("content-type"), "{headers}");
    assert_security_headers(&answer.headers);
}

#[tokio::test]
async fn preflight_is_refused_for_other_origins() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    for origin in [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "null",
    ] {
        let answer = send(&router, preflight(origin)).await;
        assert!(
            answer.header("access-control-allow-origin").is_none(),
            "{origin} allowed"
        );
        assert_security_headers(&answer.headers);
    }
}

#[tokio::test]
async fn actual_requests_expose_the_useful_headers() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    let answer = send(
        &router,
        request("GET", "/v1/test/ok")
            .header("origin", ALLOWED_ORIGIN)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    let exposed = answer
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in ["x-request-id", "retry-after", "x-ratelimit-remaining"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

/// Review finding 13: `SameSite=Strict` lets same-site pages (a sibling subdomain, a preview on
/// another port) send the session cookie; the browser's `Origin` / `Sec-Fetch-Site` say where a
/// request comes from, and a foreign one must not change state.
#[tokio::test]
async fn a_foreign_origin_cannot_change_state_with_the_session_cookie() {
    use crate::app::{TestApp, send as send_http};
    use reqwest::Method;

    let app = TestApp::spawn().await;
    let session = app.user().await;
    let cookie = format!("access_token={}", session.access);
    let address = app.server.address();
    let own_origin = format!("http://{address}");
    let refused: Vec<(Option<String>, Option<&str>)> = vec![
        (Some("https://evil.example".to_owned()), None),
        (Some(format!("http://preview.{address}")), Some("same-site")),
        (
            Some(format!("http://{}:{}", address.ip(), address.port() + 1)),
            Some("same-site"),
        ),
        (Some("null".to_owned()), Some("cross-site")),
        (None, Some("same-site")),
        (None, Some("cross-site")),
    ];
    for (origin, fetch_site) in refused {
        let mut request = app
            .request(Method::POST, "/v1/auth/logout-all")
            .header("cookie", &cookie);
        if let Some(origin) = &origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        let reply = send_http(request).await;
        reply.assert_error(StatusCode::FORBIDDEN, "cross_origin_refused");
        assert!(
            reply.set_cookies().is_empty(),
            "{origin:?}: cookies cleared"
        );
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
    // None of them ended the session.
    send_http(app.as_user(Method::GET, "/v1/auth/me", &session))
        .await
        .ok(StatusCode::OK);

    // The server's own origin (the docs page), a configured origin, and a client that is not a
    // browser may.
    let reply = send_http(
        app.request(Method::POST, "/v1/auth/logout-all")
            .header("cookie", &cookie)
            .header("origin", &own_origin)
            .header("sec-fetch-site", "same-origin"),
    )
    .await;
    assert_eq!(reply.ok(StatusCode::OK)["sessions_revoked"], 1);
    let other = app.user().await;
    let reply = send_http(
        app.as_user(Method::POST, "/v1/auth/logout", &other)
            .header("origin", ALLOWED_ORIGIN)
            .header("sec-fetch-site", "cross-site"),
    )
    .await;
    assert!(reply.status.is_success(), "{}", reply.text);
    let third = app.user().await;
    let reply = send_http(app.as_user(Method::POST, "/v1/auth/logout-all", &third)).await;
    assert!(reply.status.is_success(), "{}", reply.text);
    app.stop().await;
}
