//! `/v1/usage/token/*`: real usage from the store, by provider, model and period.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::app::{TestApp, send};
use crate::keys::record_usage;

#[tokio::test]
async fn usage_is_summed_by_provider_model_and_period() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let other = app.user().await;
    record_usage(&app, user.user_id, "openai", "gpt-4o-mini", 100, 20).await;
    record_usage(&app, user.user_id, "openai", "gpt-4o-mini", 10, 2).await;
    record_usage(&app, user.user_id, "openrouter", "openai/gpt-4o", 5, 5).await;
    record_usage(&app, other.user_id, "openai", "gpt-4o-mini", 1_000_000, 1).await;

    let all = send(app.as_user(Method::GET, "/v1/usage/token", &user)).await;
    let all = all.ok(StatusCode::OK);
    let mini = &all["usage"]["openai"]["gpt-4o-mini"];
    assert_eq!(mini["total_tokens"], 132);
    assert_eq!(mini["prompt_tokens"], 110);
    assert_eq!(mini["completion_tokens"], 22);
    assert_eq!(mini["requests"], 2);
    assert_eq!(mini["cost_micros"], 132);

    let provider = send(app.as_user(Method::GET, "/v1/usage/token/provider/openai", &user)).await;
    let provider = provider.ok(StatusCode::OK);
    assert_eq!(provider["provider"], "openai");
    assert_eq!(provider["totals"]["total_tokens"], 132);
    assert_eq!(provider["totals"]["total_requests"], 2);
    assert_eq!(provider["totals"]["models_count"], 1);

    // A model with a slash in its name, percent-encoded.
    let model = send(app.as_user(
        Method::GET,
        "/v1/usage/token/provider/openrouter/model/openai%2Fgpt-4o",
        &user,
    ))
    .await;
    let model = model.ok(StatusCode::OK);
    assert_eq!(model["model"], "openai/gpt-4o");
    assert_eq!(model["usage"]["total_tokens"], 10);
    let unused = send(app.as_user(
        Method::GET,
        "/v1/usage/token/provider/groq/model/llama",
        &user,
    ))
    .await;
    assert_eq!(unused.ok(StatusCode::OK)["usage"]["requests"], 0);

    let summary = send(app.as_user(Method::GET, "/v1/usage/token/summary", &user)).await;
    let summary = summary.ok(StatusCode::OK);
    assert_eq!(summary["totals"]["providers"], 2);
    assert_eq!(summary["totals"]["tokens"], 142);
    assert_eq!(summary["totals"]["requests"], 3);
    assert_eq!(summary["providers"]["openrouter"]["models"], 1);

    let days = send(app.as_user(Method::GET, "/v1/usage/token/periods", &user)).await;
    let days = days.ok(StatusCode::OK);
    assert_eq!(days["period"], "day");
    assert_eq!(days["buckets"].as_array().unwrap().len(), 1);
    assert_eq!(days["buckets"][0]["total_tokens"], 142);
    let split = send(app.as_user(
        Method::GET,
        "/v1/usage/token/periods?period=month&by_model=true",
        &user,
    ))
    .await;
    let split = split.ok(StatusCode::OK);
    assert_eq!(split["buckets"].as_array().unwrap().len(), 2);
    assert!(split["buckets"][0]["provider"].is_string());

    // A range that excludes everything.
    let past = send(app.as_user(
        Method::GET,
        "/v1/usage/token?to=2020-01-01T00:00:00Z",
        &user,
    ))
    .await;
    assert_eq!(past.ok(StatusCode::OK), json!({"usage": {}}));
    send(app.as_user(
        Method::GET,
        "/v1/usage/token?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
        &user,
    ))
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    send(app.as_user(Method::GET, "/v1/usage/token?from=yesterday", &user))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    app.stop().await;
}

#[tokio::test]
async fn every_usage_route_needs_authentication() {
    let app = TestApp::spawn().await;
    for path in [
        "/v1/usage/token",
        "/v1/usage/token/provider/openai",
        "/v1/usage/token/provider/openai/model/gpt-4o",
        "/v1/usage/token/summary",
        "/v1/usage/token/periods",
    ] {
        send(app.request(Method::GET, path))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "not_authenticated");
    }
    app.stop().await;
}
