//! `/v1/analytics/*`: recorded actions per user, and the admin-only system views (403
//! `admin_required`, the API's only 403).

use reqwest::{Method, StatusCode};
use samokoder_store::{AuditAction, AuditQuery};
use serde_json::json;

use crate::app::{TestApp, send};

#[tokio::test]
async fn users_record_and_read_their_own_actions() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let stranger = app.user().await;
    let project = send(
        app.as_user(Method::POST, "/v1/projects", &user)
            .json(&json!({"name": "P"})),
    )
    .await;
    let project_id = project.ok(StatusCode::CREATED)["project"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let recorded = send(
        app.as_user(Method::POST, "/v1/analytics/record", &user)
            .json(&json!({"action": "preview_opened", "details": {"tab": "code"}, "project_id": project_id})),
    )
    .await;
    assert_eq!(
        recorded.ok(StatusCode::OK),
        json!({"success": true, "message": "Action preview_opened recorded"})
    );
    send(
        app.as_user(Method::POST, "/v1/analytics/record", &user)
            .json(&json!({"action": "preview_opened"})),
    )
    .await
    .ok(StatusCode::OK);

    let metrics = send(app.as_user(Method::GET, "/v1/analytics/user", &user)).await;
    let metrics = metrics.ok(StatusCode::OK);
    assert_eq!(metrics["user_id"], user.user_id.to_string());
    assert_eq!(
        metrics["metrics"]["total_actions"], 3,
        "two recorded + project_created"
    );
    assert_eq!(metrics["metrics"]["actions_by_type"]["preview_opened"], 2);
    assert_eq!(metrics["metrics"]["projects_created"], 1);
    assert_eq!(metrics["metrics"]["projects_used_count"], 1);
    assert!(metrics["metrics"]["last_active"].is_string());

    let actions = send(app.as_user(Method::GET, "/v1/analytics/user/actions?limit=2", &user)).await;
    let actions = actions.ok(StatusCode::OK);
    let logs = actions["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[1]["details"], json!({"tab": "code"}));
    assert_eq!(logs[1]["project_id"], project_id.as_str());

    // The stranger's analytics are empty, and they cannot attach actions to the project.
    let theirs = send(app.as_user(Method::GET, "/v1/analytics/user", &stranger)).await;
    assert_eq!(theirs.ok(StatusCode::OK)["metrics"]["total_actions"], 0);
    send(
        app.as_user(Method::POST, "/v1/analytics/record", &stranger)
            .json(&json!({"action": "x", "project_id": project_id})),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "project_not_found");

    for body in [
        json!({"action": "Has Spaces"}),
        json!({"action": ""}),
        json!({"action": "ok", "details": "not an object"}),
    ] {
        send(
            app.as_user(Method::POST, "/v1/analytics/record", &user)
                .json(&body),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    }
    send(app.as_user(Method::GET, "/v1/analytics/user/actions?limit=501", &user))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    app.stop().await;
}

#[tokio::test]
async fn system_views_are_for_administrators_only() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let admin = app.admin().await;
    for action in ["a", "b", "b"] {
        send(
            app.as_user(Method::POST, "/v1/analytics/record", &user)
                .json(&json!({"action": action})),
        )
        .await
        .ok(StatusCode::OK);
    }
    for path in ["/v1/analytics/system", "/v1/analytics/export"] {
        let body = send(app.as_user(Method::GET, path, &user))
            .await
            .assert_error(StatusCode::FORBIDDEN, "admin_required");
        assert_eq!(body["detail"], "Administrator privileges required");
        send(app.request(Method::GET, path))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "not_authenticated");
    }
    let system = send(app.as_user(Method::GET, "/v1/analytics/system", &admin)).await;
    let system = system.ok(StatusCode::OK);
    assert_eq!(system["metrics"]["total_users"], 2);
    assert_eq!(system["metrics"]["total_actions"], 3);
    assert_eq!(system["metrics"]["most_common_actions"][0], json!(["b", 2]));
    assert_eq!(system["metrics"]["active_users_24h"], 1);

    let page = send(app.as_user(Method::GET, "/v1/analytics/export?limit=2", &admin)).await;
    let page = page.ok(StatusCode::OK);
    assert_eq!(page["action_logs"].as_array().unwrap().len(), 2);
    assert_eq!(page["action_logs"][0]["action"], "a", "oldest first");
    let after = page["next_after"].as_str().unwrap();
    let rest = send(app.as_user(
        Method::GET,
        &format!("/v1/analytics/export?limit=2&after={after}"),
        &admin,
    ))
    .await;
    let rest = rest.ok(StatusCode::OK);
    assert_eq!(rest["action_logs"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_after"], serde_json::Value::Null);
    let exports = app
        .state
        .store()
        .audit
        .list(&AuditQuery {
            user_id: Some(admin.user_id),
            action: Some(AuditAction::AdminAction),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(exports.len(), 2, "each export is audited");
    app.stop().await;
}
