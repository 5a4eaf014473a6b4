//! Kill a drive mid-stream and resume; replay a recorded run offline; cancel.

use std::time::Duration;

use samokoder_core::llm::fake::{FakeLlm, FakeReply};
use samokoder_core::state::{Autonomy, Phase, RunOutcome, RunState, RunStatus, RunStore};
use tokio_util::sync::CancellationToken;

use super::support::{Harness, Script, files_of, replay, request_counts};

fn last_user(record: &samokoder_core::llm::LlmRecord) -> String {
    record
        .request
        .messages
        .last()
        .map(|m| m.content.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_killed_run_resumes_to_the_same_files_paying_for_nothing_twice() {
    // The reference: the same script, uninterrupted.
    let reference = Harness::new(Script::default()).await;
    let run = reference.run(Autonomy::Auto);
    let outcome = reference
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    let expected = reference.files(run.project_id).await;

    let h = Harness::new(Script {
        slow_test_file: true,
        ..Script::default()
    })
    .await;
    let run = h.run(Autonomy::Auto);
    let engine = h.engine.clone();
    let task = tokio::spawn(async move { engine.drive(run.id, CancellationToken::new()).await });

    // Wait until the parallel writers' fast answers are logged while the slow one streams.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached the write step"
        );
        let records = h.store.llm_records(run.id);
        let done = |prefix: &str| {
            records
                .iter()
                .any(|(_, r)| last_user(r).starts_with(prefix))
        };
        let streaming = h.fake.requests().iter().any(|r| {
            r.last_user_text()
                .is_some_and(|t| t.starts_with("# Task: create `test/stats.test.js`"))
        });
        if streaming
            && done("# Task: create `src/stats.js`")
            && done("# Task: change `src/app.js`")
            && h.fake.in_flight() > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    // The last checkpoint is the one before the write step: nothing of it was kept.
    let head = h.store.head(run.project_id).await.unwrap().unwrap();
    let state: RunState = serde_json::from_value(head.state).unwrap();
    assert!(
        matches!(state.phase, Phase::Task { index: 0, .. }),
        "{:?}",
        state.phase
    );
    let files = h.files(run.project_id).await;
    assert!(!files.contains_key("src/stats.js"));
    assert!(!files.contains_key("test/stats.test.js"));
    assert_eq!(
        h.store.run(run.id).await.unwrap().status,
        RunStatus::Running
    );

    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    assert_eq!(h.files(run.project_id).await, expected);

    // Every conversation reached the provider once, except the one in flight at the kill.
    let counts = request_counts(&h.fake);
    let twice: Vec<&String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(twice.len(), 1, "{twice:?}");
    assert!(twice[0].contains("create `test/stats.test.js`"));
    assert!(counts.values().all(|n| *n <= 2));
    // The fast writers' answers came from the log on resume.
    let replayed = h
        .store
        .llm_records(run.id)
        .into_iter()
        .filter(|(_, r)| r.outcome == samokoder_core::llm::RecordOutcome::Replayed)
        .count();
    assert_eq!(replayed, 2);
}

#[tokio::test]
async fn a_recorded_run_replays_offline() {
    let recorded = Harness::new(Script::default()).await;
    let run = recorded.run(Autonomy::Auto);
    let outcome = recorded
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    let expected = recorded.files(run.project_id).await;

    // A provider that must not be asked anything.
    let offline = FakeLlm::start().await.unwrap();
    offline.respond_with(|_| FakeReply::server_error());
    let h = Harness::over(offline, replay(run.id), recorded.store.clone());
    let again = h.run(Autonomy::Auto);
    let outcome = h
        .engine
        .drive(again.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    assert_eq!(h.fake.request_count(), 0);
    assert_eq!(files_of(h.store.as_ref(), again.project_id).await, expected);

    // A run that diverges from the recording fails instead of calling a provider.
    let other = h.store.create_run(
        "Something else entirely",
        Autonomy::Auto,
        samokoder_core::llm::BudgetLimits::unlimited(),
    );
    let outcome = h
        .engine
        .drive(other.id, CancellationToken::new())
        .await
        .unwrap();
    let RunOutcome::Failed { reason } = outcome else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert!(reason.contains("replay mode"), "{reason}");
    assert_eq!(h.fake.request_count(), 0);
}

#[tokio::test]
async fn cancellation_stops_within_a_stream() {
    let h = Harness::new(Script {
        slow_test_file: true,
        ..Script::default()
    })
    .await;
    let run = h.run(Autonomy::Auto);
    let cancel = CancellationToken::new();
    let engine = h.engine.clone();
    let token = cancel.clone();
    let task = tokio::spawn(async move { engine.drive(run.id, token).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !h.fake.requests().iter().any(|r| {
        r.last_user_text()
            .is_some_and(|t| t.starts_with("# Task: create `test/stats.test.js`"))
    }) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stopped within the stream")
        .unwrap()
        .unwrap();
    assert_eq!(outcome, RunOutcome::Cancelled);
    assert_eq!(
        h.store.run(run.id).await.unwrap().status,
        RunStatus::Cancelled
    );
    assert!(!h.files(run.project_id).await.contains_key("src/stats.js"));
}
