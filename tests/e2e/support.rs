//! The stack under test: the real server on port 0 (SQLite in a temporary directory, or a
//! scratch schema of PostgreSQL) with its in-process workers, and the fake LLM over HTTP
//! scripted to build a small app, reached through the user's own key (BYOK).

use std::io::Write;
use std::time::Duration;

use samokoder_client::Client;
use samokoder_client::api::Tier;
use samokoder_client::api::keys::ApiKeyCreateRequest;
use samokoder_core::llm::fake::script::Script;
use samokoder_core::llm::fake::{FAKE_API_KEY, FakeLlm};
use samokoder_server::config::{Config, Environment, LlmSettings, PasswordHashConfig};
use samokoder_server::{Api, AppState, Application, RunningServer, Secrets};
use samokoder_store::testing::ScratchDatabase;
use tempfile::TempDir;

/// A password the server's policy accepts.
pub const PASSWORD: &str = "Correct-Horse-9!";

/// The model the fake answers as.
pub const MODEL: &str = "fake-model";

/// Which database the server uses.
#[derive(Debug, Clone, Copy)]
pub enum Database {
    Sqlite,
    /// A scratch schema of the server `SAMOKODER_TEST_POSTGRES_URL` names.
    #[cfg(feature = "sqlx-postgres")]
    Postgres,
}

/// A running server, the fake model behind it, and what they keep on disk.
pub struct Stack {
    pub server: RunningServer,
    pub state: AppState,
    pub fake: FakeLlm,
    _dir: TempDir,
    scratch: Option<ScratchDatabase>,
}

impl Stack {
    /// Starts the stack, or returns `None` after a loud notice when `database` is PostgreSQL
    /// and `SAMOKODER_TEST_POSTGRES_URL` is not set.
    // `test` names the test in the SKIPPED notice, which only the PostgreSQL case prints.
    #[cfg_attr(not(feature = "sqlx-postgres"), allow(unused_variables))]
    pub async fn start(test: &str, database: Database, script: Script) -> Option<Self> {
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
        let fake = FakeLlm::start().await.expect("fake LLM");
        fake.respond_with(move |request| script.answer(request));
        // The deployment knows the provider but has no key for it: each user brings their own,
        // pointed at the fake (the only host users' base URLs may name here).
        config.llm = LlmSettings(
            serde_json::from_value(serde_json::json!({
                "openai": { "model": MODEL },
                "allowed_base_url_hosts": ["127.0.0.1:*"],
            }))
            .expect("LLM configuration"),
        );
        let scratch = match database {
            Database::Sqlite => None,
            #[cfg(feature = "sqlx-postgres")]
            Database::Postgres => {
                let url = std::env::var("SAMOKODER_TEST_POSTGRES_URL")
                    .ok()
                    .filter(|url| !url.is_empty());
                let Some(url) = url else {
                    skipped(
                        test,
                        "set SAMOKODER_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test)",
                    );
                    return None;
                };
                let scratch = ScratchDatabase::postgres(&url)
                    .await
                    .expect("a scratch schema");
                config.database_url = Some(samokoder_server::config::ConnectionUrl::new(
                    scratch.options().url.clone(),
                ));
                config.database.max_connections = 4;
                Some(scratch)
            }
        };
        let state = AppState::builder(config, Secrets::generate())
            .build()
            .await
            .expect("state");
        let server = Application::build_with(state.clone(), Api::standard())
            .await
            .expect("server starts")
            .spawn();
        Some(Self {
            server,
            state,
            fake,
            _dir: dir,
            scratch,
        })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A registered user (on the pro tier, so quotas stay out of the way) whose own OpenAI
    /// key points at the fake.
    pub async fn user(&self, name: &str) -> Client {
        let client = Client::new(&self.url()).expect("client");
        let email = format!("{name}@example.com");
        client
            .auth()
            .register(&email, PASSWORD)
            .await
            .expect("registration");
        samokoder_server::admin::set_tier(self.state.store(), &email, Tier::Pro)
            .await
            .expect("tier");
        client
            .keys()
            .put(&ApiKeyCreateRequest {
                provider: "openai".into(),
                api_key: FAKE_API_KEY.into(),
                label: Some("fake".into()),
                model: Some(MODEL.into()),
                base_url: Some(self.fake.openai_base_url()),
                settings: None,
            })
            .await
            .expect("key stored");
        client
    }

    /// Stops the server and drops the PostgreSQL schema, if any.
    pub async fn stop(self) {
        self.server.shutdown().await.expect("graceful shutdown");
        self.state.store().close().await;
        if let Some(scratch) = self.scratch {
            scratch.remove().await.expect("drop the scratch schema");
        }
    }
}

/// Says loudly that a test did not run: libtest captures `eprintln!`, but not a write to the
/// standard error handle itself.
pub fn skipped(test: &str, how: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {how} to run it against PostgreSQL"
    );
}

/// How long a whole scripted run may take (it runs `npm test` in the sandbox).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// The entry names of a zip archive, read from its central directory (the archive format's
/// table of contents, which stores names uncompressed).
pub fn zip_entry_names(zip: &[u8]) -> Vec<String> {
    const END: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
    const ENTRY: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    let u16_at = |at: usize| u16::from_le_bytes([zip[at], zip[at + 1]]) as usize;
    let u32_at =
        |at: usize| u32::from_le_bytes([zip[at], zip[at + 1], zip[at + 2], zip[at + 3]]) as usize;
    let end = (0..zip.len().saturating_sub(21))
        .rev()
        .find(|&at| zip[at..at + 4] == END)
        .expect("a zip archive has an end-of-central-directory record");
    let count = u16_at(end + 10);
    let mut at = u32_at(end + 16);
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        assert_eq!(zip[at..at + 4], ENTRY, "a central directory entry");
        let (name_len, extra_len, comment_len) =
            (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32));
        names.push(String::from_utf8_lossy(&zip[at + 46..at + 46 + name_len]).into_owned());
        at += 46 + name_len + extra_len + comment_len;
    }
    names
}
