//! `/v1/notifications/*`: persisted notifications, read and unread, per user.

use reqwest::{Method, StatusCode};
use samokoder_store::NewNotification;
use serde_json::json;

use crate::app::{Session, TestApp, send};

async fn notify(app: &TestApp, session: &Session, title: &str) -> uuid::Uuid {
    app.state
        .store()
        .notifications
        .create(&NewNotification {
            user_id: session.user_id,
            kind: "run_completed".to_owned(),
            title: title.to_owned(),
            body: "Your app is ready".to_owned(),
            data: json!({"run": 1}),
        })
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn notifications_are_listed_marked_read_and_deleted() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let stranger = app.user().await;
    let first = notify(&app, &user, "First").await;
    let second = notify(&app, &user, "Second").await;
    let test = send(
        app.as_user(Method::POST, "/v1/notifications/test", &user)
            .json(&json!({"title": "Hello", "message": "It works", "data": {"k": "v"}})),
    )
    .await;
    let test = test.ok(StatusCode::CREATED);
    assert_eq!(test["type"], "test");
    assert_eq!(test["read"], false);

    let listed = send(app.as_user(Method::GET, "/v1/notifications", &user)).await;
    let listed = listed.ok(StatusCode::OK);
    assert_eq!(listed["unread_count"], 3);
    let titles: Vec<&str> = listed["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Hello", "Second", "First"], "newest first");
    assert_eq!(listed["notifications"][1]["message"], "Your app is ready");

    let read = send(app.as_user(
        Method::POST,
        &format!("/v1/notifications/{first}/read"),
        &user,
    ))
    .await;
    assert_eq!(
        read.ok(StatusCode::OK),
        json!({"success": true, "message": "Notification marked as read"})
    );
    let unread = send(app.as_user(Method::GET, "/v1/notifications?unread_only=true", &user)).await;
    let unread = unread.ok(StatusCode::OK);
    assert_eq!(unread["notifications"].as_array().unwrap().len(), 2);
    assert_eq!(unread["unread_count"], 2);

    // Paging.
    let page = send(app.as_user(Method::GET, "/v1/notifications?limit=2", &user)).await;
    let page = page.ok(StatusCode::OK);
    let before = page["next_before"].as_str().unwrap();
    let rest = send(app.as_user(
        Method::GET,
        &format!("/v1/notifications?limit=2&before={before}"),
        &user,
    ))
    .await;
    assert_eq!(
        rest.ok(StatusCode::OK)["notifications"][0]["title"],
        "First"
    );

    // Someone else's notification is not found.
    for (method, path) in [
        (Method::POST, format!("/v1/notifications/{second}/read")),
        (Method::DELETE, format!("/v1/notifications/{second}")),
    ] {
        send(app.as_user(method, &path, &stranger))
            .await
            .assert_error(StatusCode::NOT_FOUND, "notification_not_found");
    }

    let all = send(app.as_user(Method::POST, "/v1/notifications/read-all", &user)).await;
    assert_eq!(all.ok(StatusCode::OK)["updated"], 2);
    let deleted = send(app.as_user(
        Method::DELETE,
        &format!("/v1/notifications/{second}"),
        &user,
    ))
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let after = send(app.as_user(Method::GET, "/v1/notifications", &user)).await;
    let after = after.ok(StatusCode::OK);
    assert_eq!(after["notifications"].as_array().unwrap().len(), 2);
    assert_eq!(after["unread_count"], 0);

    send(app.as_user(Method::GET, "/v1/notifications?limit=0", &user))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    send(
        app.as_user(Method::POST, "/v1/notifications/test", &user)
            .json(&json!({"title": "", "message": "x"})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    app.stop().await;
}

#[tokio::test]
async fn every_notification_route_needs_authentication() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4();
    for (method, path) in [
        (Method::GET, "/v1/notifications".to_owned()),
        (Method::POST, format!("/v1/notifications/{id}/read")),
        (Method::POST, "/v1/notifications/read-all".to_owned()),
        (Method::DELETE, format!("/v1/notifications/{id}")),
        (Method::POST, "/v1/notifications/test".to_owned()),
    ] {
        send(
            app.request(method, &path)
                .json(&json!({"title": "t", "message": "m"})),
        )
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "not_authenticated");
    }
    app.stop().await;
}
