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
