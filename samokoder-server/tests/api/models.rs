//! `/v1/models/*`: the public catalogue, with configured providers and prices.

use reqwest::{Method, StatusCode};

use crate::app::{TestApp, send};

#[tokio::test]
async fn the_catalogue_lists_providers_models_limits_and_prices() {
    let app = TestApp::spawn_with(|config| {
        config.llm.0 = serde_json::from_value(serde_json::json!({
            "ollama": {"model": "qwen2.5-coder:14b", "context_window": 65536,
                       "pricing": {"input": "0", "output": "0"}},
            "openai": {"model": "gpt-4.1-mini"},
        }))
        .unwrap();
    })
    .await;
    // Public: no credentials needed.
    let all = send(app.request(Method::GET, "/v1/models")).await;
    let all = all.ok(StatusCode::OK);
    for provider in ["openai", "anthropic", "groq", "openrouter", "ollama"] {
        assert!(all[provider]["models"].is_array(), "{provider}: {all}");
    }
    assert_eq!(
        all["openai"]["default"], "gpt-4.1-mini",
        "configured default"
    );
    let gpt4o = all["openai"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "gpt-4o")
        .unwrap();
    assert_eq!(gpt4o["context"], 128_000);
    assert_eq!(gpt4o["pricing"]["input_per_million_usd"], 2.5);
    assert_eq!(gpt4o["pricing"]["output_per_million_usd"], 10.0);
    assert_eq!(all["ollama"]["models"][0]["context"], 65_536);

    let one = send(app.request(Method::GET, "/v1/models/anthropic")).await;
    let one = one.ok(StatusCode::OK);
    assert_eq!(one["default"], "claude-sonnet-4-5");
    let missing = send(app.request(Method::GET, "/v1/models/acme")).await;
    let body = missing.assert_error(StatusCode::NOT_FOUND, "provider_not_found");
    assert_eq!(body["detail"], "Provider acme not found");
    app.stop().await;
}
