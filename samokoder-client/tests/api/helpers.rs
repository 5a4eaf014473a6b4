//! A real server on port 0 with a fresh SQLite database per test.

use samokoder_client::Client;
use samokoder_client::api::Tier;
use samokoder_server::config::{Config, Environment, PasswordHashConfig};
use samokoder_server::{Api, AppState, Application, RunningServer, Secrets};
use tempfile::TempDir;

/// A password the server's policy accepts.
pub const PASSWORD: &str = "Correct-Horse-9!";

/// A running server and its data directory (deleted on drop).
pub struct TestServer {
    pub server: RunningServer,
    pub state: AppState,
    _dir: TempDir,
}

impl TestServer {
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A client without a session.
    pub fn client(&self) -> Client {
        Client::new(&self.url()).expect("client")
    }

    /// Puts the account of `email` on `tier` (the free tier allows two projects a month).
    pub async fn upgrade(&self, email: &str, tier: Tier) {
        samokoder_server::admin::set_tier(self.state.store(), email, tier)
            .await
            .expect("tier set");
    }

    /// Makes the account of `email` an administrator.
    pub async fn make_admin(&self, email: &str) {
        samokoder_server::admin::set_admin(self.state.store(), email, true)
            .await
            .expect("admin granted");
    }

    /// A client with a freshly registered account on the pro tier (no project quota).
    pub async fn pro_user(&self, name: &str) -> Client {
        let client = self.user(name).await;
        self.upgrade(&format!("{name}@example.com"), Tier::Pro)
            .await;
        client
    }

    /// A client with a freshly registered account.
    pub async fn user(&self, name: &str) -> Client {
        let client = self.client();
        client
            .auth()
            .register(&format!("{name}@example.com"), PASSWORD)
            .await
            .expect("registration");
        client
    }
}

/// The test configuration: port 0, its own data directory, fast password hashing, limits high
/// enough that no test meets them.
pub fn config() -> (TempDir, Config) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        env: Environment::Test,
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.rate_limit.auth_per_minute = 10_000;
    config.rate_limit.general_per_minute = 10_000;
    config.auth.password_hash = PasswordHashConfig::fast_for_tests();
    config.preview.listen = "127.0.0.1:0".parse().unwrap();
    (dir, config)
}

/// A server whose users' own OpenAI keys may point at a fake model on 127.0.0.1 (the
/// deployment has no key of its own), with its in-process workers driving runs.
pub async fn spawn_generating() -> TestServer {
    let (dir, mut config) = config();
    config.llm = samokoder_server::config::LlmSettings(
        serde_json::from_value(serde_json::json!({
            "openai": { "model": FAKE_MODEL },
            "allowed_base_url_hosts": ["127.0.0.1:*"],
        }))
        .expect("LLM configuration"),
    );
    spawn_with(dir, config).await
}

/// The model name the fake answers as.
pub const FAKE_MODEL: &str = "fake-model";

pub async fn spawn() -> TestServer {
    let (dir, config) = config();
    spawn_with(dir, config).await
}

pub async fn spawn_with(dir: TempDir, config: Config) -> TestServer {
    let state = AppState::builder(config, Secrets::generate())
        .build()
        .await
        .expect("state");
    let server = Application::build_with(state.clone(), Api::standard())
        .await
        .expect("server starts")
        .spawn();
    TestServer {
        server,
        state,
        _dir: dir,
    }
}

/// Ends the access token of `access_token` on the server (as a logout that presents only it
/// does), leaving its refresh token working: the next call with it answers 401.
pub async fn revoke_access_token(server: &TestServer, access_token: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/auth/logout", server.url()))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}
