//! The scripted "model" and the engine set-up the engine tests share.
//!
//! The fake provider is a real HTTP server; [`Script`] answers each request the way a model
//! would, by looking at which role's system prompt it received and which task its user prompt
//! names. The app it builds: the `node-api` starter template plus a `GET /api/stats` endpoint
//! with its own module and tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use samokoder_core::engine::{
    BuiltinTemplates, CommandRunner, Engine, EngineConfig, EngineDeps, PublishedEvent, ReplayMode,
};
use samokoder_core::llm::fake::FakeLlm;
use samokoder_core::llm::{BudgetLimits, ModelPrice, PriceTable, RetryPolicy, Route, RouteTable};
use samokoder_core::runner::{Runner, RunnerConfig};
use samokoder_core::state::{Autonomy, MemoryRunStore, RunInfo, RunStore};
use uuid::Uuid;

pub use samokoder_core::llm::fake::script::{DESCRIPTION, STATS_BUGGY, STATS_GOOD, Script};

/// A fast retry policy: tests should not sit out production backoffs.
pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        idle_timeout: Duration::from_secs(10),
        request_deadline: Duration::from_secs(60),
        ..RetryPolicy::default()
    }
}

/// Everything a test drives.
pub struct Harness {
    pub fake: FakeLlm,
    pub store: Arc<MemoryRunStore>,
    pub engine: Arc<Engine>,
    /// Held so the engine's working directories live as long as the test.
    _workdir: tempfile::TempDir,
    pub events: Arc<Mutex<Vec<PublishedEvent>>>,
}

/// The runner, built once: it probes bubblewrap.
pub fn runner() -> Arc<Runner> {
    static RUNNER: std::sync::OnceLock<Arc<Runner>> = std::sync::OnceLock::new();
    RUNNER
        .get_or_init(|| {
            // The process limit counts every process of the user on the machine; with parallel
            // tests and compilers beside them the default can be reached by others' processes.
            let mut config = RunnerConfig::default();
            config.limits.max_processes = 16_384;
            Arc::new(Runner::new(config).expect("runner"))
        })
        .clone()
}

pub fn routes(fake: &FakeLlm) -> RouteTable {
    RouteTable::new(Route::to(fake.compatible_provider("fake"), "fake-model"))
}

/// Prices that make the fake's usage cost something: $100 per million tokens.
pub fn prices() -> Arc<PriceTable> {
    let mut table = PriceTable::empty();
    table.insert(
        Some("fake"),
        "fake-model",
        ModelPrice::usd("100", "100", None),
    );
    Arc::new(table)
}

impl Harness {
    pub async fn new(script: Script) -> Self {
        Self::with(
            script,
            EngineConfig::default(),
            Arc::new(MemoryRunStore::new()),
        )
        .await
    }

    pub async fn with(script: Script, config: EngineConfig, store: Arc<MemoryRunStore>) -> Self {
        let fake = FakeLlm::start().await.unwrap();
        fake.respond_with(move |request| script.answer(request));
        Self::over(fake, config, store)
    }

    pub fn over(fake: FakeLlm, config: EngineConfig, store: Arc<MemoryRunStore>) -> Self {
        Self::with_runner(fake, config, store, runner())
    }

    /// The same with another command runner in front of (or instead of) the sandbox.
    pub fn with_runner(
        fake: FakeLlm,
        mut config: EngineConfig,
        store: Arc<MemoryRunStore>,
        runner: Arc<dyn CommandRunner>,
    ) -> Self {
        config.retry_policy = fast_policy();
        let workdir = tempfile::tempdir().unwrap();
        let deps = EngineDeps {
            store: store.clone() as Arc<dyn RunStore>,
            routes: Arc::new(routes(&fake)),
            prices: prices(),
            runner,
            templates: Arc::new(BuiltinTemplates),
            workdir: workdir.path().to_owned(),
        };
        let engine = Arc::new(Engine::new(deps, config));
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut feed = engine.subscribe();
        let sink = events.clone();
        tokio::spawn(async move {
            while let Ok(event) = feed.recv().await {
                sink.lock().unwrap().push(event);
            }
        });
        Self {
            fake,
            store,
            engine,
            _workdir: workdir,
            events,
        }
    }

    pub fn run(&self, autonomy: Autonomy) -> RunInfo {
        self.store
            .create_run(DESCRIPTION, autonomy, BudgetLimits::unlimited())
            .clone()
    }

    /// The files of the project's head checkpoint, as text.
    pub async fn files(&self, project_id: Uuid) -> BTreeMap<String, String> {
        files_of(self.store.as_ref(), project_id).await
    }
}

pub async fn files_of(store: &dyn RunStore, project_id: Uuid) -> BTreeMap<String, String> {
    let Some(head) = store.head(project_id).await.unwrap() else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (path, hash) in store.files(head.id).await.unwrap() {
        let bytes = store.blob(&hash).await.unwrap();
        out.insert(path, String::from_utf8(bytes).unwrap());
    }
    out
}

/// Counts how often the fake saw each distinct conversation.
pub fn request_counts(fake: &FakeLlm) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in fake.requests() {
        let key = serde_json::to_string(&request.messages()).unwrap();
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[allow(dead_code)]
pub fn replay(from: Uuid) -> EngineConfig {
    EngineConfig {
        replay: ReplayMode::Replay { from: Some(from) },
        ..EngineConfig::default()
    }
}
