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
    let project = ga.project(&session, "Todo").await;
    let run = ga
        .start(
            &session,
            project,
            json!({"description": "A todo API", "autonomy": "auto"}),
        )
        .await;
    let run_id: Uuid = run["id"].as_str().unwrap().parse().unwrap();
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
        },
    )
    .await;
    let session = ga.app.user().await;
    let project = ga.project(&session, "Todo").await;
    let run = ga
        .start(
            &session,
            project,
            json!({"description": "A todo API", "autonomy": "auto"}),
        )
        .await;
    let run_id: Uuid = run["id"].as_str().unwrap().parse().unwrap();
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
