//! Administration: the HTTP tier endpoint and the operations behind the `admin` commands.

use reqwest::{Method, StatusCode};
use samokoder_core::api::Tier;
use samokoder_server::admin::{self, AdminError};
use samokoder_store::{AuditAction, AuditQuery};
use serde_json::json;

use crate::app::{PASSWORD, TestApp, send, session_of};

#[tokio::test]
async fn admins_change_tiers_over_http() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let admin = app.admin().await;
    let path = format!("/v1/admin/users/{}/tier", user.user_id);
    send(
        app.as_user(Method::PUT, &path, &user)
            .json(&json!({"tier": "team"})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "admin_required");
    send(
        app.request(Method::PUT, &path)
            .json(&json!({"tier": "team"})),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "not_authenticated");
    let changed = send(
        app.as_user(Method::PUT, &path, &admin)
            .json(&json!({"tier": "team"})),
    )
    .await;
    let changed = changed.ok(StatusCode::OK);
    assert_eq!(changed["tier"], "team");
    assert_eq!(changed["email"], user.email);
    let tier = send(app.as_user(Method::GET, "/v1/user/tier", &user)).await;
    assert_eq!(tier.ok(StatusCode::OK)["tier"], "team");

    send(
        app.as_user(Method::PUT, &path, &admin)
            .json(&json!({"tier": "platinum"})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let nobody = format!("/v1/admin/users/{}/tier", uuid::Uuid::new_v4());
    send(
        app.as_user(Method::PUT, &nobody, &admin)
            .json(&json!({"tier": "pro"})),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    let audit = app
        .state
        .store()
        .audit
        .list(&AuditQuery {
            user_id: Some(user.user_id),
            action: Some(AuditAction::AdminAction),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor_id, Some(admin.user_id));
    assert_eq!(audit[0].detail["to"], "team");
    app.stop().await;
}

#[tokio::test]
async fn admin_operations_create_users_and_change_rights() {
    let app = TestApp::spawn().await;
    let store = app.state.store();
    let hasher = &app.state.auth().hasher;
    let created = admin::create_user(
        store,
        hasher,
        " Ops@Example.com ",
        PASSWORD,
        Tier::Pro,
        true,
    )
    .await
    .unwrap();
    assert_eq!(created.email, "ops@example.com");
    assert_eq!(created.tier, Tier::Pro);
    assert!(created.is_admin);
    // The account works.
    let session = session_of(
        &app.login("ops@example.com", PASSWORD).await,
        StatusCode::OK,
    );
    let system = send(app.as_user(Method::GET, "/v1/analytics/system", &session)).await;
    system.ok(StatusCode::OK);

    assert!(matches!(
        admin::create_user(
            store,
            hasher,
            "ops@example.com",
            PASSWORD,
            Tier::Free,
            false
        )
        .await,
        Err(AdminError::UserExists(_))
    ));
    let weak = admin::create_user(
        store,
        hasher,
        "weak@example.com",
        "password",
        Tier::Free,
        false,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(weak, AdminError::WeakPassword(ref rules) if rules.len() >= 3),
        "{weak}"
    );
    assert!(matches!(
        admin::create_user(store, hasher, "not an email", PASSWORD, Tier::Free, false).await,
        Err(AdminError::InvalidEmail(_))
    ));

    let demoted = admin::set_admin(store, "ops@example.com", false)
        .await
        .unwrap();
    assert!(!demoted.is_admin);
    send(app.as_user(Method::GET, "/v1/analytics/system", &session))
        .await
        .assert_error(StatusCode::FORBIDDEN, "admin_required");
    let starter = admin::set_tier(store, "OPS@example.com", Tier::Starter)
        .await
        .unwrap();
    assert_eq!(starter.tier, Tier::Starter);
    assert!(matches!(
        admin::set_tier(store, "nobody@example.com", Tier::Pro).await,
        Err(AdminError::UnknownUser(_))
    ));
    let audit = store
        .audit
        .list(&AuditQuery {
            user_id: Some(created.id),
            action: Some(AuditAction::AdminAction),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 3, "create, revoke, set tier");
    assert!(audit.iter().all(|e| e.client.as_deref() == Some("cli")));
    app.stop().await;
}
