//! Rate limits of the resource routes: authenticated requests count against their user, the
//! authentication routes against the client address.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::app::{PASSWORD, TestApp, send};

#[tokio::test]
async fn authenticated_requests_are_limited_per_user_not_per_address() {
    let app = TestApp::spawn_with(|config| {
        config.rate_limit.general_per_minute = 3;
    })
    .await;
    let alice = app.user().await;
    let bob = app.user().await;
    // Same address (loopback) for both users.
    for _ in 0..3 {
        send(app.as_user(Method::GET, "/v1/projects", &alice))
            .await
            .ok(StatusCode::OK);
    }
    let limited = send(app.as_user(Method::GET, "/v1/projects", &alice)).await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    // Bob, from the same address, has his own allowance.
    let reply = send(app.as_user(Method::GET, "/v1/projects", &bob)).await;
    reply.ok(StatusCode::OK);
    assert_eq!(reply.header("x-ratelimit-limit"), Some("3"));
    app.stop().await;
}

#[tokio::test]
async fn the_authentication_routes_are_limited_per_client_address() {
    let app = TestApp::spawn_with(|config| {
        config.rate_limit.auth_per_minute = 2;
    })
    .await;
    let login = |ip: &'static str| {
        send(
            app.request_from_ip(Method::POST, "/v1/auth/login", ip)
                .json(&json!({"email": "nobody@example.com", "password": PASSWORD})),
        )
    };
    login("203.0.113.5")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_credentials");
    login("203.0.113.5")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_credentials");
    let limited = login("203.0.113.5").await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(limited.header("retry-after").is_some());
    // Another client is not affected.
    login("203.0.113.6")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_credentials");
    // Registration shares the class.
    send(
        app.request_from_ip(Method::POST, "/v1/auth/register", "203.0.113.5")
            .json(&json!({"email": "x@example.com", "password": PASSWORD})),
    )
    .await
    .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    app.stop().await;
}
