//! `/api/v1` aliases and trailing slashes answer directly, without redirects.

use axum::Router;
use http::StatusCode;

use crate::helpers;

#[tokio::test]
async fn aliases_answer_in_process() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    for path in [
        "/v1/test/ok",
        "/v1/test/ok/",
        "/api/v1/test/ok",
        "/api/v1/test/ok/",
        "/health/",
    ] {
        let answer = helpers::get_path(&router, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    let with_query = helpers::get_path(&router, "/api/v1/test/search/?limit=7").await;
    assert_eq!(with_query.json(), serde_json::json!({"limit": 7}));
    // Only /api/v1 is an alias.
    assert_eq!(
        helpers::get_path(&router, "/api/health").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn aliases_answer_over_a_socket_without_redirects() {
    let (_dir, config) = helpers::config();
    let server = helpers::spawn(config).await;
    let client = helpers::client();
    for path in [
        "/v1/test/ok/",
        "/api/v1/test/ok",
        "/api/v1/test/ok/",
        "/health/",
    ] {
        let response = client
            .get(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers().get("location").is_none());
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn work_when_nested_by_an_embedder() {
    let (_dir, config) = helpers::config();
    let app = Router::new().nest_service("/embedded", helpers::router(config).await);
    for path in [
        "/embedded/v1/test/ok/",
        "/embedded/api/v1/test/ok",
        "/embedded/health",
    ] {
        assert_eq!(
            helpers::get_path(&app, path).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let missing = helpers::get_path(&app, "/embedded/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["code"], "not_found");
}
