//! `/v1/user/*`: profile counters, the tier with its limits and use, VCS tokens.

use reqwest::{Method, StatusCode};
use samokoder_auth::secret_box::associated_data;
use samokoder_store::{QuotaKind, Tier};
use serde_json::{Value, json};

use crate::app::{TestApp, send};

const GITHUB_TOKEN: &str = "ghp_0123456789abcdefABCDEFghijklmnopqrst";

#[tokio::test]
async fn profile_counts_real_projects() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    send(
        app.as_user(Method::POST, "/v1/projects", &user)
            .json(&json!({"name": "A"})),
    )
    .await
    .ok(StatusCode::CREATED);
    let profile = send(app.as_user(Method::GET, "/v1/user/profile", &user)).await;
    let profile = profile.ok(StatusCode::OK);
    assert_eq!(profile["id"], user.user_id.to_string());
    assert_eq!(profile["email"], user.email);
    assert_eq!(profile["tier"], "free");
    assert_eq!(profile["projects_monthly_count"], 1);
    assert_eq!(profile["projects_total"], 1);
    send(app.request(Method::GET, "/v1/user/profile"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "not_authenticated");
    app.stop().await;
}

#[tokio::test]
async fn tier_shows_limits_with_unlimited_as_null_and_the_months_use() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let free = send(app.as_user(Method::GET, "/v1/user/tier", &user)).await;
    let free = free.ok(StatusCode::OK);
    assert_eq!(free["tier"], "free");
    assert_eq!(free["price"], 0);
    assert_eq!(free["limits"]["projects_monthly"], 2);
    assert_eq!(free["limits"]["deployments_monthly"], 0);
    assert_eq!(free["features"]["deploy"], false);
    assert_eq!(free["rate_limits"]["requests_per_minute"], 30);
    assert_eq!(free["usage"]["exports_monthly"], 0);

    app.state
        .store()
        .users
        .set_tier(user.user_id, Tier::Pro)
        .await
        .unwrap();
    let stored = app.state.store().users.get(user.user_id).await.unwrap();
    samokoder_server::quota::consume(app.state.store(), &stored, QuotaKind::Export)
        .await
        .unwrap();
    let pro = send(app.as_user(Method::GET, "/v1/user/tier", &user)).await;
    let pro = pro.ok(StatusCode::OK);
    assert_eq!(pro["tier"], "pro");
    assert_eq!(pro["price"], 1490);
    assert_eq!(pro["limits"]["projects_total"], Value::Null);
    assert_eq!(pro["limits"]["exports_monthly"], Value::Null);
    assert_eq!(pro["limits"]["projects_monthly"], 50);
    assert_eq!(pro["usage"]["exports_monthly"], 1);
    send(app.request(Method::GET, "/v1/user/tier"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "not_authenticated");
    app.stop().await;
}

#[tokio::test]
async fn vcs_tokens_are_validated_sealed_and_never_echoed() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let set = send(
        app.as_user(Method::POST, "/v1/user/github-token", &user)
            .json(&json!({"token": GITHUB_TOKEN})),
    )
    .await;
    assert!(!set.text.contains(GITHUB_TOKEN));
    assert_eq!(
        set.ok(StatusCode::OK)["message"],
        "GitHub token has been set successfully."
    );
    let row = app
        .state
        .store()
        .keys
        .vcs_token(user.user_id, "github")
        .await
        .unwrap()
        .unwrap();
    let sealed = String::from_utf8(row.sealed.ciphertext).unwrap();
    assert!(!sealed.contains(GITHUB_TOKEN));
    let opened = app
        .state
        .auth()
        .secret_box
        .open_string(&sealed, &associated_data(user.user_id, "vcs:github"))
        .unwrap();
    assert_eq!(opened.expose(), GITHUB_TOKEN);

    for bad in [
        "not-a-github-token-at-all",
        "ghp_short",
        "ghp_with spaces inside the token",
    ] {
        let reply = send(
            app.as_user(Method::POST, "/v1/user/github-token", &user)
                .json(&json!({"token": bad})),
        )
        .await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert!(!reply.text.contains(bad));
    }

    let gitverse = send(
        app.as_user(Method::POST, "/v1/user/gitverse-token", &user)
            .json(&json!({"token": "gv_0123456789abcdefghij"})),
    )
    .await;
    assert_eq!(
        gitverse.ok(StatusCode::OK)["message"],
        "GitVerse token has been set successfully."
    );
    send(
        app.as_user(Method::POST, "/v1/user/gitverse-token", &user)
            .json(&json!({"token": "short"})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    for path in ["/v1/user/github-token", "/v1/user/gitverse-token"] {
        send(
            app.request(Method::POST, path)
                .json(&json!({"token": GITHUB_TOKEN})),
        )
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "not_authenticated");
    }
    app.stop().await;
}
