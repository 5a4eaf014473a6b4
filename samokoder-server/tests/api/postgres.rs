//! The main flows once per database backend: SQLite always, PostgreSQL (through sqlx and through
//! diesel-async, each test on its own schema) when `SAMOKODER_TEST_POSTGRES_URL` is set.

use reqwest::{Method, StatusCode};
use samokoder_server::config::StoreBackend;
use serde_json::json;

use crate::app::{PASSWORD, TestApp, send, session_of};
use crate::keys::record_usage;

/// Registration, login, lockout, refresh rotation and reuse, projects with their quota,
/// keys, usage, notifications, logout: everything that touches every repository the API uses.
async fn main_flows(app: &TestApp) {
    let alice = app.register("alice@example.com").await;
    let bob = app.register("bob@example.com").await;
    send(
        app.request(Method::POST, "/v1/auth/register")
            .json(&json!({"email": "ALICE@example.com", "password": PASSWORD})),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "user_exists");
    let login = session_of(
        &app.login("alice@example.com", PASSWORD).await,
        StatusCode::OK,
    );
    assert_eq!(login.user_id, alice.user_id);

    // Lockout per address.
    for _ in 0..5 {
        send(
            app.request_from_ip(Method::POST, "/v1/auth/login", "198.51.100.1")
                .json(&json!({"email": "bob@example.com", "password": "Wrong-Password-1"})),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_credentials");
    }
    send(
        app.request_from_ip(Method::POST, "/v1/auth/login", "198.51.100.1")
            .json(&json!({"email": "bob@example.com", "password": PASSWORD})),
    )
    .await
    .assert_error(StatusCode::TOO_MANY_REQUESTS, "account_locked");
    session_of(
        &send(
            app.request_from_ip(Method::POST, "/v1/auth/login", "198.51.100.2")
                .json(&json!({"email": "bob@example.com", "password": PASSWORD})),
        )
        .await,
        StatusCode::OK,
    );

    // Refresh rotation and reuse.
    let rotated = session_of(
        &send(
            app.request(Method::POST, "/v1/auth/refresh")
                .json(&json!({"refresh_token": login.refresh})),
        )
        .await,
        StatusCode::OK,
    );
    send(
        app.request(Method::POST, "/v1/auth/refresh")
            .json(&json!({"refresh_token": login.refresh})),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "refresh_token_reused");
    send(
        app.request(Method::POST, "/v1/auth/refresh")
            .json(&json!({"refresh_token": rotated.refresh})),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");

    // Projects: CRUD, ownership, paging, quota.
    let created = send(
        app.as_user(Method::POST, "/v1/projects", &alice)
            .json(&json!({"name": "Shop", "description": "d"})),
    )
    .await;
    let id = created.ok(StatusCode::CREATED)["project"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(app.as_user(Method::GET, &format!("/v1/projects/{id}"), &bob))
        .await
        .assert_error(StatusCode::NOT_FOUND, "project_not_found");
    send(
        app.as_user(Method::PATCH, &format!("/v1/projects/{id}"), &alice)
            .json(&json!({"description": null})),
    )
    .await
    .ok(StatusCode::OK);
    send(
        app.as_user(Method::POST, "/v1/projects", &alice)
            .json(&json!({"name": "Blog"})),
    )
    .await
    .ok(StatusCode::CREATED);
    let page = send(app.as_user(Method::GET, "/v1/projects?limit=1&q=o", &alice)).await;
    let page = page.ok(StatusCode::OK);
    assert_eq!(page["projects"][0]["name"], "Blog");
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = send(app.as_user(
        Method::GET,
        &format!("/v1/projects?limit=1&q=o&cursor={cursor}"),
        &alice,
    ))
    .await;
    assert_eq!(next.ok(StatusCode::OK)["projects"][0]["name"], "Shop");
    send(
        app.as_user(Method::POST, "/v1/projects", &alice)
            .json(&json!({"name": "Third"})),
    )
    .await
    .assert_error(StatusCode::PAYMENT_REQUIRED, "quota_exceeded");

    // Keys and usage.
    send(
        app.as_user(Method::POST, "/v1/keys", &alice)
            .json(&json!({"provider": "openai", "api_key": "sk-proj-0123456789abcdefWXYZ"})),
    )
    .await
    .ok(StatusCode::OK);
    let keys = send(app.as_user(Method::GET, "/v1/keys", &alice)).await;
    assert_eq!(keys.ok(StatusCode::OK)[0]["last_four"], "WXYZ");
    record_usage(app, alice.user_id, "openai", "gpt-4o-mini", 10, 5).await;
    let usage = send(app.as_user(Method::GET, "/v1/usage/token/summary", &alice)).await;
    assert_eq!(usage.ok(StatusCode::OK)["totals"]["tokens"], 15);

    // Notifications.
    send(
        app.as_user(Method::POST, "/v1/notifications/test", &alice)
            .json(&json!({"title": "t", "message": "m"})),
    )
    .await
    .ok(StatusCode::CREATED);
    let listed = send(app.as_user(Method::GET, "/v1/notifications", &alice)).await;
    let listed = listed.ok(StatusCode::OK);
    let notification = listed["notifications"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(app.as_user(
        Method::POST,
        &format!("/v1/notifications/{notification}/read"),
        &bob,
    ))
    .await
    .assert_error(StatusCode::NOT_FOUND, "notification_not_found");
    send(app.as_user(
        Method::POST,
        &format!("/v1/notifications/{notification}/read"),
        &alice,
    ))
    .await
    .ok(StatusCode::OK);

    // Logout kills the session.
    send(
        app.as_user(Method::POST, "/v1/auth/logout", &alice)
            .json(&json!({"refresh_token": alice.refresh})),
    )
    .await
    .ok(StatusCode::OK);
    send(app.as_user(Method::GET, "/v1/auth/me", &alice))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_revoked");

    // Readiness sees the database and the queue.
    let ready = send(app.request(Method::GET, "/health/ready")).await;
    let ready = ready.ok(StatusCode::OK);
    assert_eq!(
        ready["checks"][0],
        json!({"name": "database", "status": "ok"})
    );
    assert_eq!(ready["checks"][1], json!({"name": "queue", "status": "ok"}));
}

#[tokio::test]
async fn main_flows_on_sqlite() {
    let app = TestApp::spawn().await;
    main_flows(&app).await;
    assert_eq!(app.state.store().backend(), "sqlx-sqlite");
    app.stop().await;
}

#[tokio::test]
async fn main_flows_on_postgres_through_sqlx() {
    let Some(app) = TestApp::spawn_postgres(
        "main_flows_on_postgres_through_sqlx",
        StoreBackend::SqlxPostgres,
    )
    .await
    else {
        return;
    };
    assert_eq!(app.state.store().backend(), "sqlx-postgres");
    main_flows(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn main_flows_on_postgres_through_diesel() {
    let Some(app) = TestApp::spawn_postgres(
        "main_flows_on_postgres_through_diesel",
        StoreBackend::DieselPostgres,
    )
    .await
    else {
        return;
    };
    assert_eq!(app.state.store().backend(), "diesel-postgres");
    main_flows(&app).await;
    app.stop().await;
}
