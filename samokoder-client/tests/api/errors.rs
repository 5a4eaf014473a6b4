//! The server's errors arrive typed: status, code, detail, request id, field errors.

use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::{PASSWORD, spawn};

#[tokio::test]
async fn a_wrong_password_is_invalid_credentials_with_a_request_id() {
    let server = spawn().await;
    server.user("ha").await;
    let error = server
        .client()
        .auth()
        .login("ha@example.com", "Wrong-Horse-9!")
        .await
        .unwrap_err();
    let api = error.api().expect("an answer from the server");
    assert_eq!(api.status(), StatusCode::BAD_REQUEST);
    assert_eq!(api.code(), "invalid_credentials");
    assert_eq!(api.detail(), "Invalid credentials");
    let request_id = api.request_id().expect("request id");
    assert!(!request_id.is_empty());
    assert!(error.to_string().contains(request_id), "{error}");
}

#[tokio::test]
async fn validation_errors_carry_every_field_problem() {
    let server = spawn().await;
    let error = server
        .client()
        .auth()
        .register("not-an-email", "short")
        .await
        .unwrap_err();
    let api = error.api().unwrap();
    assert_eq!(api.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api.code(), "validation_error");
    let fields: Vec<(&str, &str)> = api
        .field_errors()
        .iter()
        .map(|e| (e.field.as_str(), e.code.as_str()))
        .collect();
    assert!(fields.contains(&("email", "invalid_email")), "{fields:?}");
    assert!(fields.contains(&("password", "too_short")), "{fields:?}");
}

#[tokio::test]
async fn an_existing_account_and_a_missing_project_have_their_codes() {
    let server = spawn().await;
    let client = server.user("ib").await;
    let error = server
        .client()
        .auth()
        .register("ib@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("user_exists"));

    let error = client.projects().get(Uuid::new_v4()).await.unwrap_err();
    assert!(error.is_not_found());
    assert_eq!(error.code(), Some("project_not_found"));
    assert!(error.api().unwrap().request_id().is_some());
}

#[tokio::test]
async fn without_a_session_protected_calls_are_401_and_nothing_is_refreshed() {
    let server = spawn().await;
    let error = server
        .client()
        .projects()
        .get(Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(error.is_unauthorized());
    assert!(!error.api().unwrap().detail().is_empty());
}

#[tokio::test]
async fn transport_failures_are_not_api_errors() {
    // A port nobody listens on: bind one, learn it, close it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = samokoder_client::Client::new(&format!("http://{address}")).unwrap();
    let error = client.health().await.unwrap_err();
    assert!(
        matches!(error, samokoder_client::Error::Transport(_)),
        "{error:?}"
    );
    assert!(error.api().is_none());
}
