//! No response ever carries a password, a password hash, a provider key, a VCS token or a
//! sealed value, whatever the route and whether it succeeds or fails.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::app::{PASSWORD, Reply, TestApp, send};

const API_KEY: &str = "sk-ant-api03-leak-canary-0123456789";
const GITHUB_TOKEN: &str = "ghp_leakcanary0123456789abcdefghijklmn";

#[tokio::test]
async fn no_response_carries_a_secret() {
    let app = TestApp::spawn().await;
    let user = app.register("canary@example.com").await;
    let mut replies: Vec<Reply> = Vec::new();
    let calls = vec![
        app.as_user(Method::POST, "/v1/keys", &user)
            .json(&json!({"provider": "anthropic", "api_key": API_KEY, "label": "mine"})),
        app.as_user(Method::POST, "/v1/keys", &user)
            .json(&json!({"provider": "openai", "api_key": API_KEY})),
        app.as_user(Method::POST, "/v1/keys", &user)
            .json(&json!({"provider": "nope", "api_key": API_KEY})),
        app.as_user(Method::GET, "/v1/keys", &user),
        app.as_user(Method::PUT, "/v1/keys/anthropic/settings", &user)
            .json(&json!({"model": "claude-sonnet-4-5"})),
        app.as_user(Method::GET, "/v1/keys/anthropic/usage", &user),
        app.as_user(Method::POST, "/v1/user/github-token", &user)
            .json(&json!({"token": GITHUB_TOKEN})),
        app.as_user(Method::POST, "/v1/user/gitverse-token", &user)
            .json(&json!({"token": format!("{GITHUB_TOKEN} with spaces")})),
        app.as_user(Method::GET, "/v1/auth/me", &user),
        app.as_user(Method::GET, "/v1/user/profile", &user),
        app.as_user(Method::GET, "/v1/user/tier", &user),
        app.as_user(Method::GET, "/v1/analytics/user/actions", &user),
        app.request(Method::POST, "/v1/auth/login")
            .json(&json!({"email": "canary@example.com", "password": format!("{PASSWORD}x")})),
        app.request(Method::POST, "/v1/auth/register")
            .json(&json!({"email": "canary@example.com", "password": PASSWORD})),
        app.request(Method::POST, "/v1/auth/register")
            .json(&json!({"email": "weak@example.com", "password": "weakpassword"})),
        app.request(Method::POST, "/v1/auth/register")
            .header("content-type", "application/json")
            .body(format!(r#"{{"email": 1, "password": "{PASSWORD}"}}"#)),
        app.as_user(Method::POST, "/v1/auth/change-password", &user)
            .json(&json!({"current_password": format!("{PASSWORD}x"), "new_password": API_KEY})),
    ];
    for call in calls {
        replies.push(send(call).await);
    }
    assert!(
        replies
            .iter()
            .any(|r| r.status == StatusCode::UNPROCESSABLE_ENTITY)
    );

    let store = app.state.store();
    let account = store.users.get(user.user_id).await.unwrap();
    let key = store
        .keys
        .provider_key(user.user_id, "anthropic")
        .await
        .unwrap()
        .unwrap();
    let vcs = store
        .keys
        .vcs_token(user.user_id, "github")
        .await
        .unwrap()
        .unwrap();
    let sealed_key = String::from_utf8(key.sealed.ciphertext).unwrap();
    let sealed_vcs = String::from_utf8(vcs.sealed.ciphertext).unwrap();
    // The distinctive part of a sealed value (after its version and key id).
    let sealed_key_body = sealed_key.rsplit('.').next().unwrap().to_owned();
    for reply in &replies {
        let everything = format!("{:?} {}", reply.headers, reply.text);
        for secret in [
            PASSWORD,
            API_KEY,
            GITHUB_TOKEN,
            account.password_hash.as_str(),
            sealed_key.as_str(),
            sealed_key_body.as_str(),
            sealed_vcs.as_str(),
        ] {
            assert!(
                !everything.contains(secret),
                "a response carried a secret ({} chars): {everything}",
                secret.len()
            );
        }
        assert!(!everything.contains("$argon2"), "{everything}");
    }
    app.stop().await;
}
