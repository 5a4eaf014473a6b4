//! `/v1/keys/*` over a real socket: add, replace, list masked, settings, delete, usage; per-user
//! isolation; validation; sealing bound to user and provider; audit.

use reqwest::{Method, StatusCode};
use samokoder_auth::secret_box::associated_data;
use samokoder_store::{AuditAction, AuditQuery, NewUsageRecord, RequestOutcome, TokenCounts};
use serde_json::json;

use crate::app::{Session, TestApp, send};

pub const OPENAI_KEY: &str = "sk-proj-test0123456789abcdefWXYZ";
const ANTHROPIC_KEY: &str = "sk-ant-api03-test0123456789abcdef9876";

async fn put(app: &TestApp, session: &Session, body: serde_json::Value) -> crate::app::Reply {
    send(app.as_user(Method::POST, "/v1/keys", session).json(&body)).await
}

#[tokio::test]
async fn keys_are_stored_sealed_and_listed_masked() {
    let app = TestApp::spawn_with(|config| {
        config.llm.0.allowed_base_url_hosts = vec!["openrouter.ai".to_owned()];
    })
    .await;
    let user = app.user().await;
    let stored = put(
        &app,
        &user,
        json!({"provider": "OpenAI", "api_key": OPENAI_KEY, "label": "work", "model": "gpt-4o-mini"}),
    )
    .await;
    let stored = stored.ok(StatusCode::OK);
    assert_eq!(stored["provider"], "openai");
    assert_eq!(stored["display_key"], "...-WXYZ");
    assert_eq!(stored["last_four"], "WXYZ");
    assert_eq!(stored["label"], "work");
    assert_eq!(stored["model"], "gpt-4o-mini");
    assert!(!stored.to_string().contains(OPENAI_KEY));

    // Sealed with the secret box, bound to this user and this provider.
    let row = app
        .state
        .store()
        .keys
        .provider_key(user.user_id, "openai")
        .await
        .unwrap()
        .unwrap();
    let sealed = String::from_utf8(row.sealed.ciphertext.clone()).unwrap();
    assert!(!sealed.contains(OPENAI_KEY));
    let secret_box = &app.state.auth().secret_box;
    let opened = secret_box
        .open_string(&sealed, &associated_data(user.user_id, "provider:openai"))
        .unwrap();
    assert_eq!(opened.expose(), OPENAI_KEY);
    assert!(
        secret_box
            .open_string(
                &sealed,
                &associated_data(user.user_id, "provider:anthropic")
            )
            .is_err(),
        "bound to the provider"
    );
    assert!(
        secret_box
            .open_string(
                &sealed,
                &associated_data(uuid::Uuid::new_v4(), "provider:openai")
            )
            .is_err(),
        "bound to the user"
    );

    // Replacing keeps one key per provider; a second provider adds one.
    put(
        &app,
        &user,
        json!({"provider": "openai", "api_key": "sk-second-key-0123456789abcd"}),
    )
    .await
    .ok(StatusCode::OK);
    put(
        &app,
        &user,
        json!({"provider": "openrouter", "api_key": "sk-or-v1-0123456789abcdef", "base_url": "https://openrouter.ai/api/v1"}),
    )
    .await
    .ok(StatusCode::OK);
    let listed = send(app.as_user(Method::GET, "/v1/keys", &user)).await;
    let listed = listed.ok(StatusCode::OK);
    let keys = listed.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["provider"], "openai");
    assert_eq!(keys[0]["last_four"], "abcd");
    assert_eq!(keys[1]["base_url"], "https://openrouter.ai/api/v1");
    assert!(!listed.to_string().contains("sk-second-key"));

    let audit = app
        .state
        .store()
        .audit
        .list(&AuditQuery {
            user_id: Some(user.user_id),
            action: Some(AuditAction::KeyStored),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 3);
    assert!(audit.iter().any(|e| e.detail["replaced"] == true));
    assert!(
        !format!("{audit:?}").contains("sk-"),
        "no key in the audit log"
    );
    app.stop().await;
}

#[tokio::test]
async fn settings_are_replaced_and_deletion_is_per_user() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let stranger = app.user().await;
    put(
        &app,
        &owner,
        json!({"provider": "anthropic", "api_key": ANTHROPIC_KEY, "model": "claude-sonnet-4-5", "settings": {"temperature": 0.2}}),
    )
    .await
    .ok(StatusCode::OK);

    let updated = send(
        app.as_user(Method::PUT, "/v1/keys/anthropic/settings", &owner)
            .json(&json!({"settings": {"max_tokens": 1000}})),
    )
    .await;
    let updated = updated.ok(StatusCode::OK);
    assert_eq!(
        updated["model"],
        serde_json::Value::Null,
        "replaced as a whole"
    );
    assert_eq!(updated["settings"], json!({"max_tokens": 1000}));
    assert_eq!(updated["last_four"], "9876", "the key stays");

    // The stranger sees nothing of it and cannot touch it.
    let theirs = send(app.as_user(Method::GET, "/v1/keys", &stranger)).await;
    assert_eq!(theirs.ok(StatusCode::OK), json!([]));
    send(app.as_user(Method::DELETE, "/v1/keys/anthropic", &stranger))
        .await
        .assert_error(StatusCode::NOT_FOUND, "key_not_found");
    send(
        app.as_user(Method::PUT, "/v1/keys/anthropic/settings", &stranger)
            .json(&json!({})),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "key_not_found");

    let deleted = send(app.as_user(Method::DELETE, "/v1/keys/anthropic", &owner)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let body = send(app.as_user(Method::DELETE, "/v1/keys/anthropic", &owner))
        .await
        .assert_error(StatusCode::NOT_FOUND, "key_not_found");
    assert_eq!(body["detail"], "API key for this provider not found");
    let audit = app
        .state
        .store()
        .audit
        .list(&AuditQuery {
            user_id: Some(owner.user_id),
            action: Some(AuditAction::KeyDeleted),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn keys_and_settings_are_validated() {
    let app = TestApp::spawn_with(|config| {
        config.llm.0.allowed_base_url_hosts = vec!["*.openai.azure.com".to_owned()];
    })
    .await;
    let user = app.user().await;
    for (body, field, code) in [
        (
            json!({"provider": "acme", "api_key": OPENAI_KEY}),
            "provider",
            "unknown_provider",
        ),
        (
            json!({"provider": "ollama", "api_key": OPENAI_KEY}),
            "provider",
            "unknown_provider",
        ),
        (
            json!({"provider": "anthropic", "api_key": OPENAI_KEY}),
            "api_key",
            "invalid_format",
        ),
        (
            json!({"provider": "openai", "api_key": "sk-short"}),
            "api_key",
            "invalid_length",
        ),
        (
            json!({"provider": "openai", "api_key": "sk-has spaces in it 123"}),
            "api_key",
            "invalid_characters",
        ),
        (
            json!({"provider": "azure", "api_key": "0123456789abcdef0123", "base_url": "https://169.254.169.254/"}),
            "base_url",
            "host_not_allowed",
        ),
        (
            json!({"provider": "azure", "api_key": "0123456789abcdef0123", "base_url": "https://user:pw@team.openai.azure.com"}),
            "base_url",
            "invalid_url",
        ),
        (
            json!({"provider": "azure", "api_key": "0123456789abcdef0123", "settings": {"base_url": "http://localhost:11434"}}),
            "base_url",
            "host_not_allowed",
        ),
        (
            json!({"provider": "openai", "api_key": OPENAI_KEY, "settings": [1, 2]}),
            "settings",
            "not_an_object",
        ),
        (
            json!({"provider": "openai", "api_key": OPENAI_KEY, "label": "a\u{1}"}),
            "label",
            "control_characters",
        ),
    ] {
        let reply = put(&app, &user, body.clone()).await;
        let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert!(
            error["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field && e["code"] == code),
            "{body}: {error}"
        );
        assert!(!reply.text.contains(OPENAI_KEY), "the key is never echoed");
    }
    put(
        &app,
        &user,
        json!({"provider": "azure", "api_key": "0123456789abcdef0123", "base_url": "https://team.openai.azure.com"}),
    )
    .await
    .ok(StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn key_usage_comes_from_the_recorded_requests() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let other = app.user().await;
    for (who, provider, model, prompt, completion) in [
        (&user, "openai", "gpt-4o-mini", 100, 20),
        (&user, "openai", "gpt-4o-mini", 50, 10),
        (&user, "openai", "gpt-4o", 1000, 100),
        (&user, "anthropic", "claude-sonnet-4-5", 7, 3),
        (&other, "openai", "gpt-4o-mini", 99_999, 1),
    ] {
        record_usage(&app, who.user_id, provider, model, prompt, completion).await;
    }
    let usage = send(app.as_user(Method::GET, "/v1/keys/openai/usage", &user)).await;
    let usage = usage.ok(StatusCode::OK);
    assert_eq!(usage.as_array().unwrap().len(), 2);
    let mini = usage
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["model"] == "gpt-4o-mini")
        .unwrap();
    assert_eq!(mini["provider"], "openai");
    assert_eq!(mini["total_tokens"], 180);
    assert_eq!(mini["requests"], 2);
    let none = send(app.as_user(Method::GET, "/v1/keys/groq/usage", &user)).await;
    assert_eq!(none.ok(StatusCode::OK), json!([]));
    let all = send(app.as_user(Method::GET, "/v1/keys/usage", &user)).await;
    let all = all.ok(StatusCode::OK);
    assert_eq!(all["anthropic"]["claude-sonnet-4-5"]["total_tokens"], 10);
    assert_eq!(all["openai"]["gpt-4o"]["prompt_tokens"], 1000);
    app.stop().await;
}

/// Records one LLM request for `user` as the engine would.
pub async fn record_usage(
    app: &TestApp,
    user: uuid::Uuid,
    provider: &str,
    model: &str,
    prompt: i64,
    completion: i64,
) {
    app.state
        .store()
        .usage
        .record(&NewUsageRecord {
            user_id: user,
            project_id: None,
            run_id: None,
            provider: provider.to_owned(),
            model: model.to_owned(),
            agent_role: Some("architect".to_owned()),
            counts: TokenCounts {
                prompt_tokens: prompt,
                completion_tokens: completion,
                cached_tokens: 0,
                cost_micros: prompt + completion,
            },
            latency_ms: 100,
            outcome: RequestOutcome::Success,
            at: samokoder_store::now(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn every_key_route_needs_authentication() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::POST, "/v1/keys"),
        (Method::GET, "/v1/keys"),
        (Method::DELETE, "/v1/keys/openai"),
        (Method::PUT, "/v1/keys/openai/settings"),
        (Method::GET, "/v1/keys/openai/usage"),
        (Method::GET, "/v1/keys/usage"),
    ] {
        send(app.request(method, path).json(&json!({})))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "not_authenticated");
    }
    app.stop().await;
}
