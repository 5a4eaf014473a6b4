//! Workers: one killed mid-run loses its lease, and another resumes the run from its last
//! checkpoint and finishes it, paying for nothing twice.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use samokoder_core::engine::CancellationToken;
use samokoder_core::llm::fake::script::{STATS_GOOD, Script};
use samokoder_server::generation::worker::Worker;
use serde_json::json;
use uuid::Uuid;

use crate::app::send;
use crate::generating::{GenApp, RUN_TIMEOUT, assert_consecutive};

/// How many requests the fake saw whose last user message starts with `prefix`.
fn asked(ga: &GenApp, prefix: &str) -> usize {
    ga.fake
        .requests()
        .iter()
        .filter(|r| r.last_user_text().is_some_and(|t| t.starts_with(prefix)))
        .count()
}

/// Whether the run's LLM log holds a successful answer to a request starting with `prefix`.
async fn logged(ga: &GenApp, run: Uuid, prefix: &str) -> bool {
    ga.app
        .state
        .store()
        .llm_log
        .list_for_run(run)
        .await
        .unwrap()
        .iter()
        .any(|record| {
            record.outcome == samokoder_store::RequestOutcome::Success
                && record.request["messages"]
                    .as_array()
                    .and_then(|m| m.last())
                    .and_then(|m| m["content"].as_str())
                    .is_some_and(|t| t.starts_with(prefix))
        })
}

#[tokio::test]
async fn a_killed_workers_run_is_finished_by_another() {
    let ga = GenApp::spawn(
        Script {
            slow_test_file: true,
            ..Script::default()
        },
        |config| config.workers.concurrency = 0,
    )
    .await;
    let session = ga.app.user().await;
    let (project, run_id) = ga.start_todo_run(&session).await;
    let mut stream = ga.events(&session, project, run_id, None).await;

    let first = Worker::new(ga.app.state.clone(), "first");
    let killed = tokio::spawn(first.run(CancellationToken::new()));
    // Mid-step: the two fast code writers have answered, the slow one is still streaming.
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached the write step"
        );
        if ga.fake.in_flight() > 0
            && asked(&ga, "# Task: create `test/stats.test.js`") > 0
            && logged(&ga, run_id, "# Task: create `src/stats.js`").await
            && logged(&ga, run_id, "# Task: change `src/app.js`").await
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());
    assert_eq!(ga.run(&session, project, run_id).await["status"], "running");

    // The second worker claims the job once the first one's lease lapsed.
    let stop = CancellationToken::new();
    let second = tokio::spawn(Worker::new(ga.app.state.clone(), "second").run(stop.clone()));
    let events = stream.rest().await;
    let all: Vec<_> = events;
    assert_eq!(all.last().unwrap().outcome(), Some("completed"), "{all:?}");
    let resumed = all
        .iter()
        .filter(|e| e.event == "run_started")
        .collect::<Vec<_>>();
    assert_eq!(resumed.len(), 2, "two drives");
    assert_eq!(resumed[1].data["data"]["resumed"], true);
    assert_consecutive(&all, 1);

    // The finished step's answers were replayed from the log, not asked again.
    assert_eq!(asked(&ga, "# Task: create `src/stats.js`"), 1);
    assert_eq!(asked(&ga, "# Task: change `src/app.js`"), 1);
    let file = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/files/src/stats.js"),
        &session,
    ))
    .await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.text, STATS_GOOD);
    stop.cancel();
    second.await.unwrap();
    ga.app.stop().await;
}

#[tokio::test]
async fn a_stopping_worker_releases_its_run_at_once() {
    let ga = GenApp::spawn(
        Script {
            slow_test_file: true,
            ..Script::default()
        },
        |config| {
            config.workers.concurrency = 0;
            // Long enough that waiting for it would fail the test's deadline below.
            config.workers.lease_secs = 120;
            // Stopping must not spend it: the second worker still drives the run.
            config.workers.max_attempts = 1;
        },
    )
    .await;
    let session = ga.app.user().await;
    let (project, run_id) = ga.start_todo_run(&session).await;
    let mut stream = ga.events(&session, project, run_id, None).await;
    let stop_first = CancellationToken::new();
    let first = tokio::spawn(Worker::new(ga.app.state.clone(), "first").run(stop_first.clone()));
    stream
        .until(|e| e.event == "agent_started" && e.data["data"]["agent"] == "code_writer")
        .await;
    stop_first.cancel();
    first.await.unwrap();

    let stop = CancellationToken::new();
    let second = tokio::spawn(Worker::new(ga.app.state.clone(), "second").run(stop.clone()));
    let finished = tokio::time::timeout(Duration::from_secs(60), stream.rest())
        .await
        .expect("the released run finished well within its lease");
    assert_eq!(finished.last().unwrap().outcome(), Some("completed"));
    stop.cancel();
    second.await.unwrap();
    ga.app.stop().await;
}

#[tokio::test]
async fn a_provider_outage_retries_the_run_later_and_it_completes() {
    // The provider answers the first three requests with 500s: the first call gives up after
    // its one retry, the worker puts the run back for later, and the next attempt succeeds.
    let script = Script::default();
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ga = GenApp::spawn(Script::default(), |config| {
        // A lease that cannot lapse on a loaded machine: only the outage may restart the run.
        config.workers.lease_secs = 60;
    })
    .await;
    let counter = failures.clone();
    ga.fake.respond_with(move |request| {
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
            samokoder_core::llm::fake::FakeReply::server_error()
        } else {
            script.answer(request)
        }
    });
    let session = ga.app.user().await;
    let (project, run_id) = ga.start_todo_run(&session).await;
    let events = ga.follow_to_end(&session, project, run_id).await;
    assert_eq!(events.last().unwrap().outcome(), Some("completed"));
    let starts = events.iter().filter(|e| e.event == "run_started").count();
    assert_eq!(
        starts, 2,
        "one attempt failed, the next one finished the run"
    );
    assert_consecutive(&events, 1);
    ga.app.stop().await;
}

#[tokio::test]
async fn a_run_whose_key_was_removed_fails_saying_so() {
    let ga = GenApp::spawn(Script::default(), |config| {
        config.workers.concurrency = 0;
        let base_url = config.llm.0.providers["fake"].base_url.clone();
        config.llm = serde_json::from_value(json!({
            "openai": {"base_url": base_url, "model": "fake-model", "structured_output": "prompt"},
        }))
        .unwrap();
    })
    .await;
    let session = ga.app.user().await;
    let project = ga.project(&session, "Todo").await;
    send(
        ga.app
            .as_user(Method::POST, "/v1/keys", &session)
            .json(&json!({"provider": "openai", "api_key": "sk-proj-removed-soon-0123456789"})),
    )
    .await
    .ok(StatusCode::OK);
    let run = ga
        .start(&session, project, json!({"description": "A todo API"}))
        .await;
    let run_id: Uuid = run["id"].as_str().unwrap().parse().unwrap();
    // The key goes before a worker picks the run up.
    send(ga.app.as_user(Method::DELETE, "/v1/keys/openai", &session))
        .await
        .ok(StatusCode::NO_CONTENT);
    let stop = CancellationToken::new();
    let worker = tokio::spawn(Worker::new(ga.app.state.clone(), "w").run(stop.clone()));
    let events = ga.follow_to_end(&session, project, run_id).await;
    assert_eq!(events.last().unwrap().outcome(), Some("failed"));
    let failed = ga.run(&session, project, run_id).await;
    assert_eq!(failed["status"], "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("`openai` has no API key"), "{error}");
    assert!(
        ga.fake.requests().is_empty(),
        "nothing was sent without a key"
    );
    stop.cancel();
    worker.await.unwrap();
    ga.app.stop().await;
}

#[tokio::test]
async fn a_run_on_an_unpriced_model_whose_own_key_was_removed_fails_before_spending() {
    // Queued on the user's key (any model goes), the run would fall back to the deployment's
    // key for a model the deployment has no price for: the worker refuses it.
    let ga = GenApp::spawn(Script::default(), |config| {
        config.workers.concurrency = 0;
        let base_url = config.llm.0.providers["fake"].base_url.clone();
        config.llm = serde_json::from_value(json!({
            "fake": {
                "kind": "openai_compatible",
                "base_url": base_url,
                "api_key": samokoder_core::llm::fake::FAKE_API_KEY,
                "model": "fake-model",
                "structured_output": "prompt",
                "models": {"fake-model": {"pricing": {"input": "100", "output": "100"}}},
            },
            "agents": {"default": {"provider": "fake"}},
        }))
        .unwrap();
    })
    .await;
    let session = ga.app.user().await;
    let project = ga.project(&session, "Todo").await;
    send(
        ga.app
            .as_user(Method::POST, "/v1/keys", &session)
            .json(&json!({"provider": "fake", "api_key": "sk-users-own-key-0123456789"})),
    )
    .await
    .ok(StatusCode::OK);
    let run = ga
        .start(
            &session,
            project,
            json!({"description": "A todo API", "models": {"default": {"model": "unpriced-model"}}}),
        )
        .await;
    let run_id: Uuid = run["id"].as_str().unwrap().parse().unwrap();
    send(ga.app.as_user(Method::DELETE, "/v1/keys/fake", &session))
        .await
        .ok(StatusCode::NO_CONTENT);
    let stop = CancellationToken::new();
    let worker = tokio::spawn(Worker::new(ga.app.state.clone(), "w").run(stop.clone()));
    let events = ga.follow_to_end(&session, project, run_id).await;
    assert_eq!(events.last().unwrap().outcome(), Some("failed"));
    let failed = ga.run(&session, project, run_id).await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("`unpriced-model`"), "{error}");
    assert!(error.contains("no price"), "{error}");
    assert!(ga.fake.requests().is_empty(), "nothing was spent");
    stop.cancel();
    worker.await.unwrap();
    ga.app.stop().await;
}

#[tokio::test]
async fn a_worker_process_drives_the_runs_a_server_queues() {
    // The server drives nothing itself; `samokoder-server worker`, another process on the same
    // database, does.
    let ga = GenApp::spawn(Script::default(), |config| config.workers.concurrency = 0).await;
    let session = ga.app.user().await;
    let (project, run_id) = ga.start_todo_run(&session).await;

    let config = ga.app.state.config();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_samokoder-server"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SAMOKODER_") {
            command.env_remove(name);
        }
    }
    let mut worker = command
        .args(["worker", "--concurrency", "1"])
        .env("SAMOKODER_ENV", "test")
        .env("SAMOKODER_DATA_DIR", &config.data_dir)
        .env("SAMOKODER_LOG__FILTER", "warn")
        .env("SAMOKODER_WORKERS__POLL_INTERVAL_MS", "50")
        .env("SAMOKODER_LLM__FAKE__KIND", "openai_compatible")
        .env("SAMOKODER_LLM__FAKE__BASE_URL", ga.fake.openai_base_url())
        .env(
            "SAMOKODER_LLM__FAKE__API_KEY",
            samokoder_core::llm::fake::FAKE_API_KEY,
        )
        .env("SAMOKODER_LLM__FAKE__MODEL", "fake-model")
        // The same price as the server's: a deployment key spends only on priced models.
        .env("SAMOKODER_LLM__FAKE__PRICING__INPUT", "100")
        .env("SAMOKODER_LLM__FAKE__PRICING__OUTPUT", "100")
        .env("SAMOKODER_LLM__FAKE__STRUCTURED_OUTPUT", "prompt")
        .env("SAMOKODER_LLM__AGENTS__DEFAULT__PROVIDER", "fake")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the worker process starts");

    let events = ga.follow_to_end(&session, project, run_id).await;
    assert_eq!(events.last().unwrap().outcome(), Some("completed"));
    assert_consecutive(&events, 1);
    assert_eq!(
        ga.run(&session, project, run_id).await["status"],
        "completed"
    );

    // SIGTERM stops it gracefully.
    let pid = worker.id().expect("running").to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    ga.app.stop().await;
}

/// Starts an auto run that no server worker picks up, lets a worker of the test's drive it into
/// its code-writing step, and kills that worker there (its lease then lapses).
async fn run_with_a_killed_worker(
    ga: &GenApp,
    session: &crate::app::Session,
) -> (Uuid, Uuid, crate::generating::EventStream) {
    let (project, run_id) = ga.start_todo_run(session).await;
    let mut stream = ga.events(session, project, run_id, None).await;
    let doomed =
        tokio::spawn(Worker::new(ga.app.state.clone(), "doomed").run(CancellationToken::new()));
    stream
        .until(|e| e.event == "agent_started" && e.data["data"]["agent"] == "code_writer")
        .await;
    doomed.abort();
    assert!(doomed.await.unwrap_err().is_cancelled());
    (project, run_id, stream)
}

#[tokio::test]
async fn a_run_whose_workers_all_died_fails_saying_so() {
    let ga = GenApp::spawn(
        Script {
            slow_test_file: true,
            ..Script::default()
        },
        |config| {
            config.workers.concurrency = 0;
            config.workers.max_attempts = 1;
        },
    )
    .await;
    let session = ga.app.user().await;
    let (project, run_id, mut stream) = run_with_a_killed_worker(&ga, &session).await;

    // The next claim is past the attempts: it ends the run instead of driving it.
    let stop = CancellationToken::new();
    let settler = tokio::spawn(Worker::new(ga.app.state.clone(), "settler").run(stop.clone()));
    let rest = tokio::time::timeout(RUN_TIMEOUT, stream.rest())
        .await
        .expect("the stream ends");
    let last = rest.last().expect("a final event");
    assert_eq!(last.outcome(), Some("failed"), "{rest:?}");
    let reason = last.data.to_string();
    assert!(
        reason.contains("gave up after 1 attempts") && reason.contains("crashed or killed"),
        "{reason}"
    );
    assert!(
        rest.iter().all(|e| e.event != "run_started"),
        "not driven again: {rest:?}"
    );
    let run = ga.run(&session, project, run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    stop.cancel();
    settler.await.unwrap();
    ga.app.stop().await;
}

#[tokio::test]
async fn cancelling_a_run_whose_worker_died_still_ends_its_stream() {
    let ga = GenApp::spawn(
        Script {
            slow_test_file: true,
            ..Script::default()
        },
        |config| config.workers.concurrency = 0,
    )
    .await;
    let session = ga.app.user().await;
    let (project, run_id, mut stream) = run_with_a_killed_worker(&ga, &session).await;
    assert_eq!(ga.run(&session, project, run_id).await["status"], "running");

    // No worker anywhere will see the cancel: the server publishes the end itself.
    let cancel = format!("/v1/projects/{project}/runs/{run_id}/cancel");
    let cancelled = send(ga.app.as_user(Method::POST, &cancel, &session))
        .await
        .ok(StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    let rest = tokio::time::timeout(Duration::from_secs(60), stream.rest())
        .await
        .expect("the stream ends");
    assert_eq!(
        rest.last().and_then(|e| e.outcome()),
        Some("cancelled"),
        "{rest:?}"
    );
    ga.app.stop().await;
}
