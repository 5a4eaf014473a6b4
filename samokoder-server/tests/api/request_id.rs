//! `x-request-id`: accepted when sane, generated otherwise, echoed, and in error bodies.

use axum::body::Body;
use http::StatusCode;

use crate::helpers::{self, request, send};

#[tokio::test]
async fn accepts_a_sane_incoming_id_and_echoes_it() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    let answer = send(
        &router,
        request("GET", "/nowhere")
            .header("x-request-id", "req-0123456789abcdef")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.header("x-request-id"), Some("req-0123456789abcdef"));
    assert_eq!(answer.json()["request_id"], "req-0123456789abcdef");
}

#[tokio::test]
async fn replaces_insane_ids_and_generates_missing_ones() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    for incoming in [
        Some("a".repeat(200)),
        Some("has spaces and <tags>".to_owned()),
        None,
    ] {
        let mut builder = request("GET", "/health");
        if let Some(id) = &incoming {
            builder = builder.header("x-request-id", id.as_str());
        }
        let answer = send(&router, builder.body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status, StatusCode::OK);
        let id = answer.header("x-request-id").expect("an id");
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "generated UUID, got {id}"
        );
        assert_ne!(Some(id), incoming.as_deref());
    }
}

#[tokio::test]
async fn every_request_gets_its_own_id() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    let first = helpers::get_path(&router, "/v1/test/panic").await;
    let second = helpers::get_path(&router, "/v1/test/panic").await;
    assert_ne!(first.json()["request_id"], second.json()["request_id"]);
}
