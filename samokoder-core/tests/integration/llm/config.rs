//! Configuration loaded the way the server loads it (figment, `SAMOKODER_` environment), resolved
//! per run with a user's own keys, and used against the fake.

use figment::providers::Env;
use figment::{Figment, Jail};
use samokoder_core::llm::fake::{FakeLlm, FakeReply};
use samokoder_core::llm::{
    AgentRole, ApiKey, LlmCall, LlmConfig, LlmError, LlmRegistry, LlmSession, UserLlmSettings,
    UserProviderSettings,
};
use serde::Deserialize;

use super::support::fast_policy;

#[derive(Deserialize)]
struct ServerConfig {
    llm: LlmConfig,
}

/// Loads `vars` through figment exactly as the server does. `Jail` serialises environment
/// changes across tests (it also switches to a temporary working directory while it runs, so
/// nothing here may depend on the working directory).
// The closure's error type is figment's, fixed by `Jail::expect_with`.
#[allow(clippy::result_large_err)]
fn load(vars: &[(&str, String)]) -> LlmConfig {
    let mut config = None;
    Jail::expect_with(|jail| {
        for (name, value) in vars {
            jail.set_env(name, value);
        }
        let loaded: ServerConfig = Figment::new()
            .merge(Env::prefixed("SAMOKODER_").split("__"))
            .extract()?;
        config = Some(loaded.llm);
        Ok(())
    });
    config.unwrap()
}

const DEPLOYMENT_KEY: &str = "sk-deployment-0123456789";
const USER_ANTHROPIC_KEY: &str = "sk-ant-user-0123456789";
const USER_OPENAI_KEY: &str = "sk-user-openai-0123456789";

fn env_for(fake: &FakeLlm) -> Vec<(&'static str, String)> {
    vec![
        ("SAMOKODER_LLM__OPENAI__API_KEY", DEPLOYMENT_KEY.into()),
        ("SAMOKODER_LLM__OPENAI__MODEL", "gpt-4o-mini".into()),
        ("SAMOKODER_LLM__OPENAI__BASE_URL", fake.openai_base_url()),
        ("SAMOKODER_LLM__OPENAI__MAX_CONCURRENCY", "2".into()),
        ("SAMOKODER_LLM__ANTHROPIC__BASE_URL", fake.base_url()),
        (
            "SAMOKODER_LLM__ANTHROPIC__MODEL",
            "claude-sonnet-4-5".into(),
        ),
        ("SAMOKODER_LLM__OLLAMA__MODEL", "qwen2.5-coder:14b".into()),
        ("SAMOKODER_LLM__OLLAMA__CONTEXT_WINDOW", "16384".into()),
        ("SAMOKODER_LLM__OLLAMA__PRICING__INPUT", "0".into()),
        ("SAMOKODER_LLM__OLLAMA__PRICING__OUTPUT", "0".into()),
        ("SAMOKODER_LLM__AGENTS__DEFAULT__PROVIDER", "openai".into()),
        (
            "SAMOKODER_LLM__AGENTS__ARCHITECT__PROVIDER",
            "anthropic".into(),
        ),
        (
            "SAMOKODER_LLM__AGENTS__ARCHITECT__TEMPERATURE",
            "0.2".into(),
        ),
        (
            "SAMOKODER_LLM__AGENTS__DESCRIBE_FILES__PROVIDER",
            "ollama".into(),
        ),
        ("SAMOKODER_LLM__PRICING__GPT-4O-MINI__INPUT", "0.30".into()),
        ("SAMOKODER_LLM__PRICING__GPT-4O-MINI__OUTPUT", "1.20".into()),
        (
            "SAMOKODER_LLM__ALLOWED_BASE_URL_HOSTS",
            "[\"127.0.0.1:*\"]".into(),
        ),
    ]
}

#[tokio::test]
async fn environment_shapes_the_config() {
    let fake = FakeLlm::start().await.unwrap();
    let config = load(&env_for(&fake));
    assert_eq!(config.providers.len(), 3);
    let openai = &config.providers["openai"];
    assert_eq!(
        openai.api_key.as_ref().map(ApiKey::expose),
        Some(DEPLOYMENT_KEY)
    );
    assert_eq!(openai.max_concurrency, Some(2));
    assert!(!format!("{config:?}").contains(DEPLOYMENT_KEY));
    assert_eq!(config.providers["ollama"].context_window, Some(16_384));
    assert_eq!(config.agents["architect"].temperature, Some(0.2));
    assert_eq!(config.allowed_base_url_hosts, ["127.0.0.1:*"]);
    assert_eq!(config.pricing["gpt-4o-mini"].input.0, 300_000);

    let registry = LlmRegistry::new(config).unwrap();
    // The architect is routed to Anthropic, which has no deployment key.
    let err = registry.routes(None).unwrap_err();
    assert!(
        matches!(&err, LlmError::MissingKey { provider } if provider == "anthropic"),
        "{err}"
    );
}

#[tokio::test]
async fn user_keys_replace_the_deployment_key_per_provider() {
    let fake = FakeLlm::start().await.unwrap();
    let registry = LlmRegistry::new(load(&env_for(&fake))).unwrap();
    let user = UserLlmSettings {
        providers: [(
            "anthropic".to_owned(),
            UserProviderSettings {
                api_key: ApiKey::new(USER_ANTHROPIC_KEY),
                base_url: None,
                model: None,
            },
        )]
        .into(),
        default_provider: None,
    };
    let routes = registry.routes(Some(&user)).unwrap();
    assert_eq!(routes.route(AgentRole::Architect).temperature, Some(0.2));
    assert_eq!(
        routes.route(AgentRole::DescribeFiles).limits.context_window,
        16_384
    );
    let session = LlmSession::builder(routes)
        .policy(fast_policy())
        .prices(registry.prices())
        .build();

    fake.respond_with(|_| FakeReply::text("ok").usage(1_000_000, 0));
    let architect = session
        .chat(LlmCall::new(AgentRole::Architect).user("stack?"))
        .await
        .unwrap();
    let developer = session
        .chat(LlmCall::new(AgentRole::Developer).user("steps?"))
        .await
        .unwrap();
    let requests = fake.requests();
    assert_eq!(requests[0].header("x-api-key"), Some(USER_ANTHROPIC_KEY));
    assert_eq!(requests[0].model(), Some("claude-sonnet-4-5"));
    assert_eq!(requests[0].body["temperature"], 0.2);
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("Bearer {DEPLOYMENT_KEY}").as_str())
    );
    assert_eq!(requests[1].model(), Some("gpt-4o-mini"));
    // Prices: the built-in list price for Claude, the configured override for gpt-4o-mini.
    assert_eq!(architect.cost_micros, 3_000_000);
    assert_eq!(developer.cost_micros, 300_000);

    // The user's own OpenAI key and an allowlisted base URL.
    let user = UserLlmSettings {
        providers: [
            (
                "anthropic".to_owned(),
                UserProviderSettings {
                    api_key: ApiKey::new(USER_ANTHROPIC_KEY),
                    base_url: None,
                    model: None,
                },
            ),
            (
                "openai".to_owned(),
                UserProviderSettings {
                    api_key: ApiKey::new(USER_OPENAI_KEY),
                    base_url: Some(fake.openai_base_url()),
                    model: Some("gpt-4.1-mini".into()),
                },
            ),
        ]
        .into(),
        default_provider: None,
    };
    let session = LlmSession::builder(registry.routes(Some(&user)).unwrap())
        .policy(fast_policy())
        .build();
    session
        .chat(LlmCall::new(AgentRole::Developer).user("steps?"))
        .await
        .unwrap();
    let last = fake.requests().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {USER_OPENAI_KEY}").as_str())
    );
    assert_eq!(last.model(), Some("gpt-4.1-mini"));
}

#[tokio::test]
async fn user_base_urls_outside_the_allowlist_are_refused_before_any_request() {
    let fake = FakeLlm::start().await.unwrap();
    let registry = LlmRegistry::new(load(&env_for(&fake))).unwrap();
    let user = UserLlmSettings {
        providers: [(
            "openai".to_owned(),
            UserProviderSettings {
                api_key: ApiKey::new(USER_OPENAI_KEY),
                base_url: Some("http://localhost:6379/v1".into()),
                model: None,
            },
        )]
        .into(),
        default_provider: Some("openai".into()),
    };
    let err = registry.routes(Some(&user)).unwrap_err();
    assert!(
        matches!(&err, LlmError::Config(m) if m.contains("not allowed")),
        "{err}"
    );
    assert_eq!(fake.request_count(), 0);
}
