//! The typed client from an account to a downloaded app: register (or log in), create a
//! project, start a run, follow its events, download the result as a zip.
//!
//! ```text
//! cargo run --example client_quickstart                          # offline, self-hosted
//! cargo run --example client_quickstart -- https://samokoder.example.com
//! ```
//!
//! With no server URL (argument or `SAMOKODER_URL`), the example starts the reference server
//! in-process on a free port, with SQLite in a temporary directory and a fake model over HTTP
//! scripted to build a small Node.js API, so it works without a network or an LLM account.
//! Against a real server it logs in as `SAMOKODER_EMAIL` / `SAMOKODER_PASSWORD` (or registers
//! a new account when they are unset) and, when `SAMOKODER_OPENAI_KEY` is set, stores that key
//! as the account's own OpenAI key. The zip is written to `SAMOKODER_ZIP` or
//! `client-quickstart.zip`.

use std::path::PathBuf;

use futures::TryStreamExt;
use samokoder_client::Client;
use samokoder_client::api::files::StateQuery;
use samokoder_client::api::keys::ApiKeyCreateRequest;
use samokoder_client::api::projects::ProjectCreateRequest;
use samokoder_client::api::runs::{RunAutonomy, RunCreateRequest};
use samokoder_core::llm::fake::script::{DESCRIPTION, Script};
use samokoder_core::llm::fake::{FAKE_API_KEY, FakeLlm};
use samokoder_server::config::{Config, Environment, LlmSettings};
use samokoder_server::{Application, RunningServer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server started here, with what it needs kept alive.
struct SelfHosted {
    server: RunningServer,
    fake: FakeLlm,
    _data: tempfile::TempDir,
}

/// The reference server on a free port with a scripted fake model; users bring a key that
/// points at the fake (the one host their base URLs may name).
async fn self_hosted() -> Result<SelfHosted, BoxError> {
    let fake = FakeLlm::start().await?;
    let script = Script::default();
    fake.respond_with(move |request| script.answer(request));
    let data = tempfile::tempdir()?;
    let mut config = Config {
        env: Environment::Development,
        listen: "127.0.0.1:0".parse()?,
        data_dir: data.path().to_path_buf(),
        ..Config::default()
    };
    config.preview.listen = "127.0.0.1:0".parse()?;
    config.llm = LlmSettings(serde_json::from_value(serde_json::json!({
        "openai": { "model": "fake-model" },
        "allowed_base_url_hosts": ["127.0.0.1:*"],
    }))?);
    let server = Application::build(config).await?.spawn();
    Ok(SelfHosted {
        server,
        fake,
        _data: data,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SAMOKODER_URL").ok());
    let hosted = match &url {
        Some(_) => None,
        None => Some(self_hosted().await?),
    };
    let url = url.unwrap_or_else(|| hosted.as_ref().map(|h| h.server.url()).unwrap_or_default());
    println!("server: {url}");
    let client = Client::new(&url)?;

    // 1. An account: log in when credentials are given, else register a new one.
    match (
        std::env::var("SAMOKODER_EMAIL"),
        std::env::var("SAMOKODER_PASSWORD"),
    ) {
        (Ok(email), Ok(password)) => {
            client.auth().login(&email, &password).await?;
        }
        _ => {
            let email = format!("quickstart-{}@example.com", uuid::Uuid::new_v4().simple());
            client.auth().register(&email, "Quick-Start-42!").await?;
        }
    }
    let me = client.auth().me().await?;
    println!("logged in as {} ({} tier)", me.email, me.tier);

    // 2. A provider key of the account's own: the fake's when self-hosted.
    let key = match &hosted {
        Some(hosted) => Some((FAKE_API_KEY.to_owned(), Some(hosted.fake.openai_base_url()))),
        None => std::env::var("SAMOKODER_OPENAI_KEY")
            .ok()
            .map(|key| (key, None)),
    };
    if let Some((api_key, base_url)) = key {
        let stored = client
            .keys()
            .put(&ApiKeyCreateRequest {
                provider: "openai".into(),
                api_key,
                label: Some("quickstart".into()),
                model: hosted.as_ref().map(|_| "fake-model".to_owned()),
                base_url,
                settings: None,
            })
            .await?;
        println!("stored the {} key {}", stored.provider, stored.display_key);
    }

    // 3. A project and a run that answers its own questions.
    let project = client
        .projects()
        .create(&ProjectCreateRequest {
            name: "Quickstart todo API".into(),
            description: Some(DESCRIPTION.into()),
        })
        .await?;
    let run = client
        .runs()
        .create(
            project.id,
            &RunCreateRequest {
                description: DESCRIPTION.into(),
                template: None,
                autonomy: RunAutonomy::Auto,
                budget: None,
                models: Default::default(),
            },
        )
        .await?;
    println!("run {} started in project {}", run.id, project.id);

    // 4. Its events, live, until it finishes (reconnecting by itself if the connection drops).
    let mut events = client.runs().events(project.id, run.id);
    while let Some(event) = events.try_next().await? {
        let data = &event.data;
        match event.kind.as_str() {
            "agent_started" => println!("  [{}] {}", data["agent"], data["label"]),
            "file_written" => println!("      wrote {}", data["path"]),
            "command_finished" => println!("      ran a command, success: {}", data["success"]),
            "run_finished" => println!("  finished: {}", event.outcome().unwrap_or("?")),
            _ => {}
        }
    }
    let run = client.runs().get(project.id, run.id).await?;
    println!(
        "run {}: {} tokens, {} LLM calls",
        run.status, run.usage.tokens, run.usage.llm_calls
    );

    // 5. The result as a zip.
    let path = PathBuf::from(
        std::env::var("SAMOKODER_ZIP").unwrap_or_else(|_| "client-quickstart.zip".into()),
    );
    let bytes = client
        .files()
        .export_to_file(project.id, &StateQuery::default(), &path)
        .await?;
    let tree = client
        .files()
        .tree(project.id, &StateQuery::default())
        .await?;
    println!(
        "wrote {} ({bytes} bytes) with {} files:",
        path.display(),
        tree.files.len()
    );
    for file in &tree.files {
        println!("  {}", file.path);
    }

    if let Some(hosted) = hosted {
        hosted.server.shutdown().await?;
    }
    Ok(())
}
