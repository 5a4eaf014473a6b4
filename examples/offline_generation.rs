//! The whole generation pipeline, offline: a scripted fake model (a real HTTP server speaking the
//! OpenAI protocol) plays every role, the engine drives the run over a SQLite store, commands run
//! in the sandbox, and the generated project's tree is printed at the end.
//!
//! Run it with `cargo run --example offline_generation`.
//!
//! The script answers the way a model would: it looks at which role's system prompt a request
//! carries and which task its user prompt names. The app: the `node-api` starter template plus a
//! `GET /api/stats` endpoint with its own module and tests, which the executor runs.

use std::sync::Arc;

use samokoder::store::engine::StoreRunStore;
use samokoder::store::{NewProject, NewRun, NewUser, StoreOptions, connect_with};
use samokoder_core::engine::{
    BuiltinTemplates, CancellationToken, Engine, EngineConfig, EngineDeps,
};
use samokoder_core::llm::fake::{FakeLlm, FakeReply, FakeRequest};
use samokoder_core::llm::{BudgetLimits, PriceTable, Route, RouteTable};
use samokoder_core::runner::{Runner, RunnerConfig};
use samokoder_core::state::{EngineEvent, RunStore};
use serde_json::json;

const STATS: &str = "'use strict';\n\nfunction countItems(items) { return items.length; }\n\nmodule.exports = { countItems };\n";
const STATS_TEST: &str = "'use strict';\n\nconst { test } = require('node:test');\nconst assert = require('node:assert/strict');\nconst { countItems } = require('../src/stats');\n\ntest('countItems counts the items', () => {\n  assert.equal(countItems([{}, {}]), 2);\n});\n";
const APP_EDIT: &str = "<<<<<<< SEARCH\nconst { ItemStore, ValidationError } = require('./store');\n=======\nconst { ItemStore, ValidationError } = require('./store');\nconst { countItems } = require('./stats');\n>>>>>>> REPLACE\n<<<<<<< SEARCH\n    ['GET', '/health', () => [200, { status: 'ok' }]],\n=======\n    ['GET', '/health', () => [200, { status: 'ok' }]],\n    ['GET', '/api/stats', () => [200, { count: countItems(store.list()) }]],\n>>>>>>> REPLACE\n";

/// What the scripted model answers.
fn answer(request: &FakeRequest) -> FakeReply {
    let messages = request.messages();
    let system = messages.first().map(|(_, t)| t.as_str()).unwrap_or("");
    let user = request.last_user_text().unwrap_or_default();
    let json = |value: serde_json::Value| FakeReply::json(&value);
    match system {
        s if s.starts_with("You are the spec writer") && user.contains("clarifying questions") => {
            json(json!({"questions": []}))
        }
        s if s.starts_with("You are the spec writer") => json(json!({
            "summary": "A JSON API for todo items that also reports how many items exist.",
            "features": ["CRUD on /api/items", "GET /api/stats returns {count}"],
            "constraints": ["Node's standard library only"],
            "complexity": "simple"
        })),
        s if s.starts_with("You are the architect") => json(json!({
            "summary": "The node-api template's HTTP layer plus a stats module.",
            "template": "node-api",
            "stack": ["Node.js", "node:http", "node:test"],
            "dependencies": []
        })),
        s if s.starts_with("You are the tech lead") => json(json!({"epics": [{
            "title": "Statistics",
            "description": "Report on the items.",
            "tasks": [{
                "title": "Item count endpoint",
                "description": "GET /api/stats returns {count}, computed by countItems in src/stats.js.",
                "definition_of_done": "npm test passes, including a test of countItems."
            }]
        }]})),
        s if s.starts_with("You are a full-stack developer") => json(json!({"steps": [
            {"kind": "write_file", "path": "src/stats.js", "instructions": "Export countItems(items)."},
            {"kind": "write_file", "path": "test/stats.test.js", "instructions": "Test countItems."},
            {"kind": "write_file", "path": "src/app.js", "instructions": "Route GET /api/stats."}
        ]})),
        s if s.starts_with("You are the code writer") => {
            if user.starts_with("# Task: create `src/stats.js`") {
                FakeReply::text(format!("```js\n{STATS}```"))
            } else if user.starts_with("# Task: create `test/stats.test.js`") {
                FakeReply::text(format!("```js\n{STATS_TEST}```"))
            } else {
                FakeReply::text(APP_EDIT)
            }
        }
        s if s.starts_with("You are the executor") => {
            json(json!({"success": !user.contains("not ok"), "analysis": "read the report"}))
        }
        s if s.starts_with("You are the task completer") => {
            json(json!({"summary": "Added GET /api/stats backed by src/stats.js, with a test."}))
        }
        s if s.starts_with("You are the technical writer") => FakeReply::text(
            "```markdown\n# Todo API\n\n`npm start` serves it; `npm test` tests it.\n\n- `GET /api/stats`: how many items there are.\n```",
        ),
        _ => FakeReply::error(
            400,
            "unscripted",
            "invalid_request_error",
            "not in the script",
        ),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;

    // The fake model, scripted.
    let fake = FakeLlm::start().await?;
    fake.respond_with(answer);
    let routes = RouteTable::new(Route::to(fake.compatible_provider("fake"), "fake-model"));

    // A SQLite store with a user, a project and a run in auto mode.
    let url = format!("sqlite://{}", scratch.path().join("samokoder.db").display());
    let store = connect_with(&StoreOptions::new(url)).await?;
    store.migrate().await?;
    let user = store
        .users
        .create(&NewUser::new("ada@example.com", "$argon2id$example"))
        .await?;
    let project = store
        .projects
        .create(&NewProject {
            owner_id: user.id,
            name: "Todo API".into(),
            description: None,
        })
        .await?;
    let run = store
        .runs
        .create(&NewRun {
            project_id: project.id,
            user_id: user.id,
            description: "A small JSON API for a todo list, with an endpoint that reports how \
                          many items there are."
                .into(),
            autonomy: "auto".into(),
            budget: serde_json::to_value(BudgetLimits::unlimited().with_calls(100))?,
            options: serde_json::json!({}),
        })
        .await?;

    // The engine: the store behind the RunStore port, the sandboxed runner, the templates.
    let runs: Arc<dyn RunStore> = Arc::new(StoreRunStore::new(&store));
    let runner = Arc::new(Runner::new(RunnerConfig::default())?);
    let engine = Engine::new(
        EngineDeps {
            store: runs.clone(),
            routes: Arc::new(routes),
            prices: Arc::new(PriceTable::with_defaults()),
            runner,
            templates: Arc::new(BuiltinTemplates),
            workdir: scratch.path().join("work"),
        },
        EngineConfig::default(),
    );

    // Follow the run live.
    let mut feed = engine.subscribe();
    let printer = tokio::spawn(async move {
        while let Ok(published) = feed.recv().await {
            match published.event {
                EngineEvent::AgentStarted { agent, label, .. } => {
                    println!("  [{:>3}] {agent}: {label}", published.seq);
                }
                EngineEvent::CommandFinished {
                    argv,
                    exit_code,
                    success,
                    ..
                } => println!(
                    "  [{:>3}] ran `{}`: exit {exit_code:?}, {}",
                    published.seq,
                    argv.join(" "),
                    if success { "passed" } else { "failed" }
                ),
                EngineEvent::SandboxUnconfined { reason } => {
                    println!(
                        "  [{:>3}] warning: commands run unconfined: {reason}",
                        published.seq
                    );
                }
                EngineEvent::RunFinished { outcome } => {
                    println!("  [{:>3}] finished: {}", published.seq, outcome.as_str());
                    break;
                }
                _ => {}
            }
        }
    });

    println!("Driving run {}:", run.id);
    let outcome = engine.drive(run.id, CancellationToken::new()).await?;
    printer.await?;
    println!("Outcome: {outcome:?}");

    let head = runs
        .head(project.id)
        .await?
        .ok_or("the run left no checkpoint")?;
    println!(
        "\nGenerated tree (checkpoint {}, step {}):",
        head.id, head.sequence
    );
    for (path, hash) in runs.files(head.id).await? {
        let size = runs.blob(&hash).await?.len();
        println!("  {path:<28} {size:>6} bytes");
    }
    let readme = runs.blob(&runs.files(head.id).await?["README.md"]).await?;
    println!("\nREADME.md:\n{}", String::from_utf8_lossy(&readme));
    println!(
        "LLM requests answered by the fake model: {}",
        fake.request_count()
    );
    Ok(())
}
