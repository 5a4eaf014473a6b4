//! A real server on port 0: the stack over a socket, and graceful shutdown.

use http::StatusCode;
use samokoder_server::Application;

use crate::helpers;

#[tokio::test]
async fn serves_over_a_socket_and_shuts_down_gracefully() {
    let (_dir, config) = helpers::config();
    let server = helpers::spawn(config).await;
    let client = helpers::client();

    let health = client
        .get(format!("{}/health", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    helpers::assert_security_headers(health.headers());

    let echoed = client
        .get(format!("{}/v1/test/ok", server.url()))
        .header("x-request-id", "socket-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "socket-test-1");

    // The client address is the socket's peer.
    let ip = client
        .get(format!("{}/v1/test/client-ip", server.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(ip, "127.0.0.1");

    let too_large = client
        .post(format!("{}/v1/test/login", server.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    helpers::assert_security_headers(too_large.headers());
    let body: serde_json::Value = too_large.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");

    let address = server.address();
    server.shutdown().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "stopped listening"
    );
}

#[tokio::test]
async fn application_build_validates_and_creates_development_secrets() {
    let (_dir, config) = helpers::config();
    let secrets_file = config.dev_secrets_path();
    let app = Application::build(config).await.unwrap();
    assert_ne!(app.local_addr().port(), 0);
    assert!(secrets_file.exists());
    let server = app.spawn();
    let answer = helpers::client()
        .get(format!("{}/health/ready", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    server.shutdown().await.unwrap();

    let (_dir, mut bad) = helpers::config();
    bad.cors.allowed_origins = Some(vec!["*".to_owned()]);
    let err = Application::build(bad).await.err().unwrap().to_string();
    assert!(err.contains("cors.allowed_origins"), "{err}");
}

#[tokio::test]
async fn every_error_over_a_socket_has_the_shape_and_the_headers() {
    let (_dir, mut config) = helpers::config();
    config.rate_limit.general_per_minute = 6;
    let server = helpers::spawn(config).await;
    let client = helpers::client();
    let url = |path: &str| format!("{}{path}", server.url());
    let json = "application/json";
    let cases = [
        (
            client.get(url("/nowhere")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            client.delete(url("/health")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            client
                .post(url("/v1/test/echo"))
                .header("content-type", "text/plain")
                .body("x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            client
                .post(url("/v1/test/echo"))
                .header("content-type", json)
                .body("{"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            client
                .post(url("/v1/test/echo"))
                .header("content-type", json)
                .body(r#"{"name":"a","count":999}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        ),
        (
            client.get(url("/v1/test/panic")),
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
        ),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{code}");
        helpers::assert_security_headers(response.headers());
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], code);
        assert_eq!(body["request_id"], id.as_str());
    }
    // Four /v1 requests above; two more use the allowance, the next is refused.
    for _ in 0..2 {
        assert_eq!(
            client
                .get(url("/v1/test/ok"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let refused = client.get(url("/v1/test/ok")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    helpers::assert_security_headers(refused.headers());
    assert!(refused.headers().get("retry-after").is_some());
    server.shutdown().await.unwrap();
}
