//! The contract of the [`RunStore`] port as executable checks: every implementation (the
//! in-memory one here, `samokoder-store`'s, an embedder's own) runs [`run_all`] in its tests.
//!
//! The checks panic with a message naming the case on the first violation, like assertions in
//! a test.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::port::{
    Autonomy, CommandRecord, FileChange, NewCheckpoint, QuestionSpec, RunInfo, RunStatus, RunStore,
    RunStoreError, blob_hash,
};
use crate::llm::{
    AgentRole, BudgetLimits, ChatRequest, ChatResponse, FinishReason, LlmRecord, Message,
    RecordOutcome, Usage,
};

/// What the checks need from a backend: the store under test and a way to create runs (which
/// the port itself does not offer: the server creates runs).
#[async_trait]
pub trait Harness: Send + Sync {
    /// The store under test.
    fn store(&self) -> Arc<dyn RunStore>;

    /// Creates a queued run in a new project.
    async fn create_run(
        &self,
        description: &str,
        autonomy: Autonomy,
        budget: BudgetLimits,
    ) -> RunInfo;

    /// Creates a queued run in an existing project.
    async fn create_run_in(&self, project_id: Uuid, description: &str) -> RunInfo;
}

/// Runs every check against `harness`.
pub async fn run_all(harness: &dyn Harness) {
    runs_and_transitions(harness).await;
    checkpoints_chain_and_files(harness).await;
    commit_is_atomic_and_optimistic(harness).await;
    events_are_sequenced(harness).await;
    questions_are_asked_once_and_answered_once(harness).await;
    llm_log_is_keyed_by_run_and_step(harness).await;
    commands_totals_and_agent(harness).await;
    runs_of_a_project_share_its_branch(harness).await;
}

fn write(path: &str, content: &str) -> FileChange {
    FileChange::Write {
        path: path.into(),
        content: content.as_bytes().to_vec(),
    }
}

/// Loads a run, changes its status with compare-and-swap semantics, refuses unknown runs.
pub async fn runs_and_transitions(harness: &dyn Harness) {
    let store = harness.store();
    let limits = BudgetLimits::unlimited().with_tokens(1_000);
    let run = harness.create_run("todo app", Autonomy::Auto, limits).await;
    let loaded = store.run(run.id).await.expect("runs: load");
    assert_eq!(loaded.description, "todo app", "runs: description");
    assert_eq!(loaded.autonomy, Autonomy::Auto, "runs: autonomy");
    assert_eq!(loaded.budget, limits, "runs: budget limits");
    assert_eq!(
        loaded.status,
        RunStatus::Queued,
        "runs: new runs are queued"
    );

    let running = store
        .transition(run.id, &[RunStatus::Queued], RunStatus::Running, None)
        .await
        .expect("runs: queued -> running");
    assert_eq!(running.status, RunStatus::Running);
    let stale = store
        .transition(run.id, &[RunStatus::Queued], RunStatus::Running, None)
        .await;
    assert!(
        matches!(stale, Err(RunStoreError::Conflict(_))),
        "runs: a transition from the wrong status is a conflict, got {stale:?}"
    );
    let failed = store
        .transition(
            run.id,
            &[RunStatus::Running],
            RunStatus::Failed,
            Some("loop detected"),
        )
        .await
        .expect("runs: running -> failed");
    assert_eq!(failed.error.as_deref(), Some("loop detected"));
    assert!(
        matches!(
            store.run(Uuid::now_v7()).await,
            Err(RunStoreError::NotFound { .. })
        ),
        "runs: an unknown run is not found"
    );
}

/// Commits build a chain whose file trees accumulate changes; blobs are content-addressed.
pub async fn checkpoints_chain_and_files(harness: &dyn Harness) {
    let store = harness.store();
    let run = harness
        .create_run("app", Autonomy::Interactive, BudgetLimits::unlimited())
        .await;
    assert!(
        store.head(run.project_id).await.unwrap().is_none(),
        "chain: a new project has no head"
    );
    let first = store
        .commit(NewCheckpoint {
            project_id: run.project_id,
            run_id: run.id,
            parent_id: None,
            label: "spec".into(),
            state: json!({"step": 1}),
            changes: vec![write("a.txt", "one"), write("src/b.js", "two")],
        })
        .await
        .expect("chain: first commit");
    assert_eq!(
        first.sequence, 1,
        "chain: the first checkpoint is sequence 1"
    );
    assert_eq!(first.parent_id, None);
    assert_eq!(first.run_id, Some(run.id));
    let second = store
        .commit(NewCheckpoint {
            project_id: run.project_id,
            run_id: run.id,
            parent_id: Some(first.id),
            label: "code".into(),
            state: json!({"step": 2, "nested": {"k": [1, 2]}}),
            changes: vec![
                write("a.txt", "one, changed"),
                FileChange::Delete {
                    path: "src/b.js".into(),
                },
                write("c.txt", "one"),
            ],
        })
        .await
        .expect("chain: second commit");
    assert_eq!(second.sequence, 2);
    assert_eq!(
        store.head(run.project_id).await.unwrap().map(|c| c.id),
        Some(second.id),
        "chain: the head moves"
    );
    let loaded = store.checkpoint(second.id).await.expect("chain: load");
    assert_eq!(loaded, second, "chain: a checkpoint loads as stored");
    assert_eq!(loaded.state, json!({"step": 2, "nested": {"k": [1, 2]}}));

    let old = store.files(first.id).await.unwrap();
    assert_eq!(
        old.keys().collect::<Vec<_>>(),
        ["a.txt", "src/b.js"],
        "chain: old trees stay as they were"
    );
    let new = store.files(second.id).await.unwrap();
    assert_eq!(new.keys().collect::<Vec<_>>(), ["a.txt", "c.txt"]);
    assert_eq!(new["a.txt"], blob_hash(b"one, changed"));
    assert_eq!(
        new["c.txt"], old["a.txt"],
        "chain: equal content, equal blob"
    );
    assert_eq!(
        store.blob(&new["a.txt"]).await.unwrap(),
        b"one, changed".to_vec()
    );
    assert!(matches!(
        store.blob(&blob_hash(b"never stored")).await,
        Err(RunStoreError::NotFound { .. })
    ));
}

/// A commit on a stale parent, or with a bad change, writes nothing.
pub async fn commit_is_atomic_and_optimistic(harness: &dyn Harness) {
    let store = harness.store();
    let run = harness
        .create_run("app", Autonomy::Auto, BudgetLimits::unlimited())
        .await;
    let checkpoint = |parent, changes| NewCheckpoint {
        project_id: run.project_id,
        run_id: run.id,
        parent_id: parent,
        label: "step".into(),
        state: json!({}),
        changes,
    };
    let first = store
        .commit(checkpoint(None, vec![write("x.txt", "x")]))
        .await
        .unwrap();
    let second = store
        .commit(checkpoint(Some(first.id), vec![write("y.txt", "y")]))
        .await
        .unwrap();

    for (name, parent) in [("stale parent", Some(first.id)), ("no parent", None)] {
        let result = store
            .commit(checkpoint(parent, vec![write("z.txt", "z")]))
            .await;
        assert!(
            matches!(result, Err(RunStoreError::Conflict(_))),
            "atomic: {name} is a conflict, got {result:?}"
        );
    }
    let bad = store
        .commit(checkpoint(
            Some(second.id),
            vec![write("ok.txt", "fine"), write("../escape", "no")],
        ))
        .await;
    assert!(
        matches!(bad, Err(RunStoreError::Invalid(_))),
        "atomic: a path escaping the workspace is refused, got {bad:?}"
    );
    let twice = store
        .commit(checkpoint(
            Some(second.id),
            vec![write("d.txt", "1"), write("d.txt", "2")],
        ))
        .await;
    assert!(
        twice.is_err(),
        "atomic: one path changed twice in a checkpoint is refused"
    );
    assert_eq!(
        store.head(run.project_id).await.unwrap().map(|c| c.id),
        Some(second.id),
        "atomic: failed commits do not move the head"
    );
    assert_eq!(
        store
            .files(second.id)
            .await
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["x.txt", "y.txt"],
        "atomic: failed commits write no file"
    );
}

/// Events get 1, 2, 3, ... per run.
pub async fn events_are_sequenced(harness: &dyn Harness) {
    let store = harness.store();
    let a = harness
        .create_run("a", Autonomy::Auto, BudgetLimits::unlimited())
        .await;
    let b = harness
        .create_run("b", Autonomy::Auto, BudgetLimits::unlimited())
        .await;
    assert_eq!(store.last_event_seq(a.id).await.unwrap(), 0);
    for n in 1..=3 {
        let seq = store
            .append_event(a.id, "tick", &json!({"n": n}))
            .await
            .unwrap();
        assert_eq!(seq, n, "events: sequence numbers count from 1 without gaps");
    }
    assert_eq!(
        store.append_event(b.id, "tick", &json!({})).await.unwrap(),
        1,
        "events: each run has its own sequence"
    );
    let after = store.events_after(a.id, 1, 10).await.unwrap();
    assert_eq!(
        after.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 3],
        "events: after skips what the subscriber has"
    );
    assert_eq!(after[0].kind, "tick");
    assert_eq!(after[0].payload, json!({"n": 2}));
    assert_eq!(store.events_after(a.id, 0, 2).await.unwrap().len(), 2);
    assert_eq!(store.last_event_seq(a.id).await.unwrap(), 3);
}

/// Pending questions are not asked twice; answers are given once.
pub async fn questions_are_asked_once_and_answered_once(harness: &dyn Harness) {
    let store = harness.store();
    let run = harness
        .create_run("app", Autonomy::Interactive, BudgetLimits::unlimited())
        .await;
    let spec = QuestionSpec {
        text: "Which database?".into(),
        buttons: vec!["SQLite".into(), "PostgreSQL".into()],
        default_answer: Some("SQLite".into()),
    };
    let asked = store.ask(run.id, &spec).await.unwrap();
    assert_eq!(asked.spec, spec);
    assert_eq!(asked.answer, None);
    let again = store.ask(run.id, &spec).await.unwrap();
    assert_eq!(
        again.id, asked.id,
        "questions: an identical pending question is not asked twice"
    );
    let answered = store.answer(asked.id, "PostgreSQL").await.unwrap();
    assert_eq!(answered.answer.as_deref(), Some("PostgreSQL"));
    assert!(
        matches!(
            store.answer(asked.id, "SQLite").await,
            Err(RunStoreError::Conflict(_))
        ),
        "questions: a second answer is a conflict"
    );
    assert_eq!(
        store.question(asked.id).await.unwrap().answer.as_deref(),
        Some("PostgreSQL"),
        "questions: the first answer stands"
    );
    let later = store.ask(run.id, &spec).await.unwrap();
    assert_ne!(
        later.id, asked.id,
        "questions: asking again after the answer is a new question"
    );
    assert!(matches!(
        store.question(Uuid::now_v7()).await,
        Err(RunStoreError::NotFound { .. })
    ));
}

fn record(hash: &str, text: &str, outcome: RecordOutcome) -> LlmRecord {
    let request = ChatRequest::new("model-x", vec![Message::user("hello")]);
    let ok = outcome == RecordOutcome::Ok;
    LlmRecord {
        id: Uuid::now_v7(),
        run_id: None,
        label: None,
        provider: "fake".into(),
        model: "model-x".into(),
        role: AgentRole::Architect,
        attempt: 0,
        parse_attempt: 0,
        started_at: Utc::now(),
        latency_ms: 12,
        first_token_ms: None,
        usage: Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            ..Usage::default()
        },
        cost_micros: 7,
        priced: true,
        outcome,
        prompt_chars: 5,
        response_chars: text.len() as u64,
        request_hash: hash.into(),
        request,
        response: ok.then(|| ChatResponse {
            text: text.into(),
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                ..Usage::default()
            },
            finish_reason: FinishReason::Stop,
            model: "model-x".into(),
            provider_id: None,
        }),
    }
}

/// The replay lookup finds successful answers of the same run and step only.
pub async fn llm_log_is_keyed_by_run_and_step(harness: &dyn Harness) {
    let store = harness.store();
    let run = harness
        .create_run("app", Autonomy::Auto, BudgetLimits::unlimited())
        .await;
    let other = harness
        .create_run("app", Autonomy::Auto, BudgetLimits::unlimited())
        .await;
    let hash = "a".repeat(64);
    let failed = "b".repeat(64);
    store
        .record_llm(
            run.id,
            "s1",
            &record(&hash, "the answer", RecordOutcome::Ok),
        )
        .await
        .unwrap();
    store
        .record_llm(
            run.id,
            "s1",
            &record(
                &failed,
                "",
                RecordOutcome::Error {
                    code: "llm_transient".into(),
                    message: "boom".into(),
                },
            ),
        )
        .await
        .unwrap();
    let hit = store.find_llm(run.id, "s1", &hash).await.unwrap();
    assert_eq!(
        hit.map(|r| r.text).as_deref(),
        Some("the answer"),
        "llm log: the same run, step and hash hit"
    );
    assert!(
        store.find_llm(run.id, "s2", &hash).await.unwrap().is_none(),
        "llm log: another step misses"
    );
    assert!(
        store
            .find_llm(other.id, "s1", &hash)
            .await
            .unwrap()
            .is_none(),
        "llm log: another run misses"
    );
    assert!(
        store
            .find_llm(run.id, "s1", &failed)
            .await
            .unwrap()
            .is_none(),
        "llm log: failed requests are not replayed"
    );
}

/// Command log, totals and the current agent accept writes for a known run.
pub async fn commands_totals_and_agent(harness: &dyn Harness) {
    let store = harness.store();
    let run = harness
        .create_run("app", Autonomy::Auto, BudgetLimits::unlimited())
        .await;
    store
        .record_command(
            run.id,
            &CommandRecord {
                argv: vec!["node".into(), "--test".into()],
                exit_code: Some(1),
                stdout: "ok 1\nnot ok 2\n".into(),
                stderr: String::new(),
                duration_ms: 320,
                timed_out: false,
                at: Utc::now(),
            },
        )
        .await
        .expect("commands: record");
    store.add_totals(run.id, 100, 42, 2).await.expect("totals");
    store
        .set_current_agent(run.id, Some("developer"))
        .await
        .expect("current agent");
    store
        .set_current_agent(run.id, None)
        .await
        .expect("clear current agent");
    assert!(matches!(
        store.add_totals(Uuid::now_v7(), 1, 1, 1).await,
        Err(RunStoreError::NotFound { .. })
    ));
}

/// A second run of a project builds on the first run's head.
pub async fn runs_of_a_project_share_its_branch(harness: &dyn Harness) {
    let store = harness.store();
    let first = harness
        .create_run("app", Autonomy::Auto, BudgetLimits::unlimited())
        .await;
    let checkpoint = store
        .commit(NewCheckpoint {
            project_id: first.project_id,
            run_id: first.id,
            parent_id: None,
            label: "first".into(),
            state: json!({}),
            changes: vec![write("README.md", "# App")],
        })
        .await
        .unwrap();
    let second = harness.create_run_in(first.project_id, "add login").await;
    assert_eq!(second.project_id, first.project_id);
    let head = store.head(second.project_id).await.unwrap().unwrap();
    assert_eq!(head.id, checkpoint.id, "branch: the new run sees the head");
    let next = store
        .commit(NewCheckpoint {
            project_id: second.project_id,
            run_id: second.id,
            parent_id: Some(head.id),
            label: "second".into(),
            state: json!({}),
            changes: vec![write("login.js", "//")],
        })
        .await
        .unwrap();
    assert_eq!(next.run_id, Some(second.id));
    assert_eq!(next.sequence, 2);
    assert_eq!(store.files(next.id).await.unwrap().len(), 2);
}
