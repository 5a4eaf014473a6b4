//! The session cookies' attributes: HttpOnly, SameSite=Strict, Path, Max-Age, and Secure
//! outside development and test.

use reqwest::{Method, StatusCode};
use samokoder_server::config::{Environment, PasswordHashConfig};

use crate::app::{Reply, TestApp};

#[track_caller]
fn assert_session_cookie(reply: &Reply, name: &str, max_age: u64, secure: bool) {
    let cookie = reply
        .set_cookie(name)
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", reply.set_cookies()));
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix(&format!("{name}="))
        .unwrap();
    assert!(value.len() > 20, "carries the token: {cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        cookie.contains(&format!("Max-Age={max_age}")),
        "Max-Age={max_age} missing: {cookie}"
    );
    assert_eq!(cookie.contains("Secure"), secure, "Secure: {cookie}");
}

#[tokio::test]
async fn cookies_in_test_and_development_are_not_secure() {
    let app = TestApp::spawn().await;
    let reply = crate::app::send(app.request(Method::POST, "/v1/auth/register").json(
        &serde_json::json!({
            "email": "cookie@example.com", "password": crate::app::PASSWORD,
        }),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_session_cookie(&reply, "access_token", 900, false);
    assert_session_cookie(&reply, "refresh_token", 604_800, false);
    app.stop().await;
}

#[tokio::test]
async fn cookies_in_production_are_secure() {
    let app = TestApp::spawn_with(|config| {
        config.env = Environment::Production;
        // Production refuses weak hashing parameters.
        config.auth.password_hash = PasswordHashConfig::default();
        config.auth.access_ttl_secs = 600;
    })
    .await;
    let reply = crate::app::send(app.request(Method::POST, "/v1/auth/register").json(
        &serde_json::json!({
            "email": "cookie@example.com", "password": crate::app::PASSWORD,
        }),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json()["expires_in"], 600);
    assert_session_cookie(&reply, "access_token", 600, true);
    assert_session_cookie(&reply, "refresh_token", 604_800, true);
    let logout = crate::app::send(app.request(Method::POST, "/v1/auth/logout")).await;
    for name in ["access_token", "refresh_token"] {
        let cleared = logout.set_cookie(name).unwrap();
        assert!(
            cleared.contains("Secure") && cleared.contains("Max-Age=0"),
            "{cleared}"
        );
    }
    app.stop().await;
}
