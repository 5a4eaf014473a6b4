//! Malformed requests get a 4xx with the standard body: never a 500, never an echo of the input.

use axum::body::Body;
use futures::stream;
use http::StatusCode;

use crate::helpers::{self, assert_error, request, send};

/// A value no response may contain.
const SECRET: &str = "hunter2-sentinel";

async fn post_json(router: &axum::Router, body: &str) -> helpers::Answer {
    send(
        router,
        request("POST", "/v1/test/echo")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap(),
    )
    .await
}

fn only_error(body: &serde_json::Value) -> (&str, &str) {
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    (
        errors[0]["field"].as_str().unwrap(),
        errors[0]["code"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn json_bodies() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;

    let ok = post_json(&router, r#"{"name": "a", "count": 3}"#).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json(), serde_json::json!({"name": "a", "count": 3}));

    let malformed = post_json(&router, &format!(r#"{{"name": "{SECRET}", "#)).await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "malformed_json");
    assert!(!malformed.text().contains(SECRET));

    let cases = [
        (
            format!(r#"{{"name": "a", "count": 3, "{SECRET}": 1}}"#),
            "body",
            "unknown_field",
        ),
        (
            r#"{"name": "a", "count": 300}"#.to_owned(),
            "body.count",
            "invalid_value",
        ),
        (
            r#"{"name": "a", "count": -1}"#.to_owned(),
            "body.count",
            "invalid_value",
        ),
        (
            format!(r#"{{"name": "a", "count": "{SECRET}"}}"#),
            "body.count",
            "invalid_type",
        ),
        (
            format!(r#"{{"name": 5, "count": 1, "x": "{SECRET}"}}"#),
            "body.name",
            "invalid_type",
        ),
        (r#"{"count": 1}"#.to_owned(), "body.name", "missing"),
        (format!(r#""{SECRET}""#), "body", "invalid_type"),
        // serde reads a struct from an array too, positionally.
        (format!(r#"["{SECRET}"]"#), "body", "invalid_length"),
        // ... and would accept one of the right length: a body is an object (found by the
        // contract test, which sent `[null, null]` as a project update and got 200).
        (r#"["a", 3]"#.to_owned(), "body", "invalid_type"),
        (" \n[\"a\", 3]".to_owned(), "body", "invalid_type"),
    ];
    for (body, field, code) in cases {
        let answer = post_json(&router, &body).await;
        let json = assert_error(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        );
        assert_eq!(only_error(&json), (field, code), "for {body}");
        assert!(
            !answer.text().contains(SECRET),
            "echoed the input: {}",
            answer.text()
        );
        // (Only the message parts: the random request id may contain any digits.)
        let messages = format!("{} {}", json["detail"], json["errors"]);
        assert!(!messages.contains("300"), "echoed the input: {messages}");
    }
}

#[tokio::test]
async fn content_types() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    let no_type = send(
        &router,
        request("POST", "/v1/test/echo")
            .body(Body::from(r#"{"name": "a", "count": 3}"#))
            .unwrap(),
    )
    .await;
    assert_error(
        &no_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let json_to_form = send(
        &router,
        request("POST", "/v1/test/login")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"username": "a", "password": "b"}"#))
            .unwrap(),
    )
    .await;
    assert_error(
        &json_to_form,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

#[tokio::test]
async fn forms() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    let login = |body: &'static str| {
        request("POST", "/v1/test/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let ok = send(
        &router,
        login("username=alice%40example.com&password=x&grant_type=password"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["user"], "alice@example.com");

    let missing = send(&router, login("username=alice")).await;
    let json = assert_error(
        &missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    );
    assert_eq!(only_error(&json), ("body.password", "missing"));
}

#[tokio::test]
async fn paths_and_queries() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;

    let id = uuid::Uuid::new_v4();
    let ok = helpers::get_path(&router, &format!("/v1/test/items/{id}")).await;
    assert_eq!(ok.status, StatusCode::OK);

    let bad_uuid = helpers::get_path(&router, &format!("/v1/test/items/{SECRET}")).await;
    let json = assert_error(
        &bad_uuid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    );
    assert_eq!(only_error(&json), ("path.id", "invalid_uuid"));
    assert!(!bad_uuid.text().contains(SECRET));

    let ok = helpers::get_path(&router, "/v1/test/search?limit=5").await;
    assert_eq!(ok.json(), serde_json::json!({"limit": 5}));

    for query in [
        format!("limit={SECRET}"),
        "limit=-1".to_owned(),
        "limit=99999999999".to_owned(),
        String::new(),
    ] {
        let answer = helpers::get_path(&router, &format!("/v1/test/search?{query}")).await;
        let json = assert_error(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        );
        assert!(only_error(&json).0.starts_with("query"), "{json}");
        assert!(!answer.text().contains(SECRET));
    }
}

#[tokio::test]
async fn streamed_bodies_over_the_limit() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    // No Content-Length: the limit applies while reading.
    let chunks = (0..20).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1024]));
    let answer = send(
        &router,
        request("POST", "/v1/test/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from_stream(stream::iter(chunks)))
            .unwrap(),
    )
    .await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // The general limit (1 MiB) is larger than the auth limit (16 KiB).
    let body = format!(r#"{{"name": "{}", "count": 1}}"#, "a".repeat(100 * 1024));
    assert_eq!(post_json(&router, &body).await.status, StatusCode::OK);
}
