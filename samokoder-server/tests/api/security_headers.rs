//! Security headers on every kind of response.

use axum::body::Body;
use http::StatusCode;

use crate::helpers::{self, assert_error, assert_security_headers, request, send};

#[tokio::test]
async fn on_success_not_found_and_method_not_allowed() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;

    let ok = helpers::get_path(&router, "/health").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_security_headers(&ok.headers);
    assert_eq!(
        ok.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    );
    assert!(
        ok.header("strict-transport-security").is_none(),
        "no HSTS outside production"
    );

    let missing = helpers::get_path(&router, "/nowhere").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");

    let wrong_method = send(
        &router,
        request("POST", "/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_error(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_eq!(wrong_method.header("allow"), Some("GET,HEAD"));
}

#[tokio::test]
async fn on_rejections_and_limits() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;

    let too_large = send(
        &router,
        request("POST", "/v1/test/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(vec![b'a'; 17 * 1024]))
            .unwrap(),
    )
    .await;
    assert_error(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    let wrong_type = send(
        &router,
        request("POST", "/v1/test/echo")
            .header("content-type", "text/plain")
            .body(Body::from("hello"))
            .unwrap(),
    )
    .await;
    assert_error(
        &wrong_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let invalid = send(
        &router,
        request("POST", "/v1/test/echo")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"name": "a", "count": 300}"#))
            .unwrap(),
    )
    .await;
    assert_error(
        &invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    );

    let malformed = send(
        &router,
        request("POST", "/v1/test/echo")
            .header("content-type", "application/json")
            .body(Body::from("{"))
            .unwrap(),
    )
    .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "malformed_json");
}

#[tokio::test]
async fn on_panics_and_rate_limits() {
    let (_dir, mut config) = helpers::config();
    config.rate_limit.general_per_minute = 1;
    let router = helpers::router(config).await;

    let panicked = helpers::get_path(&router, "/v1/test/panic").await;
    let body = assert_error(
        &panicked,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
    );
    assert_eq!(body["detail"], "An internal server error occurred");
    assert!(
        !panicked.text().contains("on purpose"),
        "the panic message stays in the log"
    );

    // The panic used the one request per minute of this client.
    let limited = helpers::get_path(&router, "/v1/test/ok").await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

/// Takes the one second of the smallest configurable limit.
#[tokio::test]
async fn on_timeouts() {
    let (_dir, mut config) = helpers::config();
    config.limits.request_timeout_secs = 1;
    let router = helpers::router(config).await;
    let slow = helpers::get_path(&router, "/v1/test/slow").await;
    assert_error(&slow, StatusCode::SERVICE_UNAVAILABLE, "request_timeout");
}

#[tokio::test]
async fn hsts_in_production_only() {
    let (_dir, mut config) = helpers::config();
    config.env = samokoder_server::Environment::Production;
    // Production refuses the tests' weak password hashing.
    config.auth.password_hash = samokoder_server::config::PasswordHashConfig::default();
    let router = helpers::router(config).await;
    let ok = helpers::get_path(&router, "/health").await;
    assert_eq!(
        ok.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
}
