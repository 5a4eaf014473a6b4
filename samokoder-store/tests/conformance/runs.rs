//! Runs, events, questions, the LLM log and the command log.

use std::sync::Arc;

use chrono::Utc;
use samokoder_store::*;
use serde_json::json;
use uuid::Uuid;

use crate::assert_err;
use crate::fixtures;
use crate::harness::Ctx;

pub async fn run_lifecycle(ctx: Ctx) {
    let store = &ctx.store;
    let (user, project, run) = fixtures::run(store).await;
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(store.runs.get(run.id).await.unwrap(), run);
    assert_eq!(store.runs.count_active_for_user(user.id).await.unwrap(), 1);

    let running = store
        .runs
        .transition(run.id, &[RunStatus::Queued], RunStatus::Running, None)
        .await
        .unwrap();
    assert_eq!(running.status, RunStatus::Running);
    let started = running.started_at.expect("started_at set on first run");
    assert!(running.finished_at.is_none());

    let waiting = store
        .runs
        .transition(
            run.id,
            &[RunStatus::Running],
            RunStatus::WaitingForHuman,
            None,
        )
        .await
        .unwrap();
    let resumed = store
        .runs
        .transition(
            run.id,
            &[RunStatus::WaitingForHuman],
            RunStatus::Running,
            None,
        )
        .await
        .unwrap();
    assert_eq!(waiting.started_at, Some(started));
    assert_eq!(
        resumed.started_at,
        Some(started),
        "started_at kept on resume"
    );

    store
        .runs
        .set_current_agent(run.id, Some("architect"))
        .await
        .unwrap();
    let totals = store
        .runs
        .add_totals(run.id, 1_500, 2_000, 1)
        .await
        .unwrap();
    let totals = store
        .runs
        .add_totals(totals.id, 500, 1_000, 2)
        .await
        .unwrap();
    assert_eq!(
        (
            totals.total_tokens,
            totals.total_cost_micros,
            totals.llm_calls
        ),
        (2_000, 3_000, 3)
    );
    assert_eq!(totals.current_agent.as_deref(), Some("architect"));
    assert_err!(
        store.runs.add_totals(run.id, -1, 0, 0).await,
        StoreError::InvalidInput(_)
    );

    let failed = store
        .runs
        .transition(
            run.id,
            &[RunStatus::Running],
            RunStatus::Failed,
            Some("provider unreachable"),
        )
        .await
        .unwrap();
    assert_eq!(failed.error.as_deref(), Some("provider unreachable"));
    assert!(failed.finished_at.is_some());
    assert_eq!(store.runs.count_active_for_user(user.id).await.unwrap(), 0);
    assert_err!(
        store
            .runs
            .transition(run.id, &[RunStatus::Running], RunStatus::Completed, None)
            .await,
        StoreError::Conflict { .. }
    );
    assert_eq!(
        store.runs.get(run.id).await.unwrap().status,
        RunStatus::Failed,
        "a lost compare-and-swap changes nothing"
    );

    let second = store
        .runs
        .create(&NewRun {
            project_id: project.id,
            user_id: user.id,
            description: "add login".into(),
            autonomy: "auto".into(),
            budget: json!({}),
            options: json!({}),
        })
        .await
        .unwrap();
    let listed = store.runs.list_for_project(project.id, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        [second.id, run.id],
        "newest first"
    );
}

pub async fn run_not_found_and_fk(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    let missing = Uuid::now_v7();
    assert_err!(store.runs.get(missing).await, StoreError::NotFound { .. });
    assert_err!(
        store
            .runs
            .transition(missing, &[RunStatus::Queued], RunStatus::Running, None)
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.runs.set_current_agent(missing, None).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.runs.add_totals(missing, 1, 1, 1).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .runs
            .create(&NewRun {
                project_id: Uuid::now_v7(),
                user_id: user.id,
                description: "x".into(),
                autonomy: "ask".into(),
                budget: json!({}),
                options: json!({}),
            })
            .await,
        StoreError::MissingReference { .. }
    );
}

pub async fn events_sequence_and_replay(ctx: Ctx) {
    let store = &ctx.store;
    let (_, _, run) = fixtures::run(store).await;
    let (_, _, other_run) = fixtures::run(store).await;
    assert_eq!(store.events.last_seq(run.id).await.unwrap(), 0);
    for i in 1..=5 {
        let event = store
            .events
            .append(run.id, "agent_started", &json!({ "i": i }))
            .await
            .unwrap();
        assert_eq!(event.seq, i);
    }
    let first = store
        .events
        .append(other_run.id, "agent_started", &json!({}))
        .await
        .unwrap();
    assert_eq!(first.seq, 1, "sequences are per run");

    let late = store.events.after(run.id, 2, 100).await.unwrap();
    assert_eq!(late.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(late[0].payload, json!({"i": 3}));
    assert_eq!(late[0].kind, "agent_started");
    let limited = store.events.after(run.id, 0, 2).await.unwrap();
    assert_eq!(limited.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(store.events.after(run.id, 5, 10).await.unwrap().is_empty());
    assert_eq!(store.events.last_seq(run.id).await.unwrap(), 5);

    let missing = Uuid::now_v7();
    assert_err!(
        store.events.append(missing, "x", &json!({})).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.events.last_seq(missing).await,
        StoreError::NotFound { .. }
    );
}

pub async fn concurrent_events_have_no_gaps(ctx: Ctx) {
    let store = ctx.store.clone();
    let (_, _, run) = fixtures::run(&store).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .events
                    .append(run.id, "tick", &json!({ "i": i }))
                    .await
                    .unwrap()
                    .seq
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    let stored = store.events.after(run.id, 0, 100).await.unwrap();
    assert_eq!(stored.len(), 50);
}

pub async fn questions_answer_once(ctx: Ctx) {
    let store = &ctx.store;
    let (user, _, run) = fixtures::run(store).await;
    let buttons = json!([{"key": "yes", "label": "Yes"}, {"key": "no", "label": "No"}]);
    let q1 = store
        .questions
        .ask(&NewQuestion {
            run_id: run.id,
            text: "Use PostgreSQL?".into(),
            buttons: buttons.clone(),
            default_answer: Some("yes".into()),
        })
        .await
        .unwrap();
    let q2 = store
        .questions
        .ask(&NewQuestion {
            run_id: run.id,
            text: "Add auth?".into(),
            buttons: json!([]),
            default_answer: None,
        })
        .await
        .unwrap();
    assert_eq!(store.questions.get(q1.id).await.unwrap(), q1);
    assert_eq!(
        store
            .questions
            .pending(run.id)
            .await
            .unwrap()
            .iter()
            .map(|q| q.id)
            .collect::<Vec<_>>(),
        [q1.id, q2.id]
    );
    assert_eq!(
        store
            .questions
            .pending_for_user(user.id)
            .await
            .unwrap()
            .len(),
        2
    );

    let answered = store.questions.answer(q1.id, "no").await.unwrap();
    assert_eq!(answered.answer.as_deref(), Some("no"));
    assert!(answered.answered_at.is_some());
    assert_err!(
        store.questions.answer(q1.id, "yes").await,
        StoreError::Conflict { .. }
    );
    assert_eq!(
        store.questions.get(q1.id).await.unwrap().answer.as_deref(),
        Some("no"),
        "the first answer stands"
    );
    assert_eq!(
        store
            .questions
            .pending(run.id)
            .await
            .unwrap()
            .iter()
            .map(|q| q.id)
            .collect::<Vec<_>>(),
        [q2.id]
    );
    assert_err!(
        store.questions.answer(Uuid::now_v7(), "x").await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.questions.get(Uuid::now_v7()).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .questions
            .ask(&NewQuestion {
                run_id: Uuid::now_v7(),
                text: "?".into(),
                buttons: json!([]),
                default_answer: None,
            })
            .await,
        StoreError::MissingReference { .. }
    );
}

pub async fn concurrent_answers_have_one_winner(ctx: Ctx) {
    let store = ctx.store.clone();
    let (_, _, run) = fixtures::run(&store).await;
    let question = store
        .questions
        .ask(&NewQuestion {
            run_id: run.id,
            text: "Continue?".into(),
            buttons: json!([]),
            default_answer: None,
        })
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .questions
                    .answer(question.id, &format!("answer {i}"))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(q) => winners.push(q.answer.unwrap()),
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let stored = store.questions.get(question.id).await.unwrap();
    assert_eq!(stored.answer.as_ref(), Some(&winners[0]));
}

fn llm(run: Uuid, hash: &str, outcome: RequestOutcome, minute: u32) -> NewLlmRequest {
    NewLlmRequest {
        run_id: run,
        step_key: "architect/plan".into(),
        request_hash: hash.into(),
        provider: "openai".into(),
        model: "gpt-4.1".into(),
        agent_role: Some("architect".into()),
        request: json!({"messages": [{"role": "user", "content": "plan it"}]}),
        response: (outcome == RequestOutcome::Success).then(|| json!({"text": minute})),
        counts: TokenCounts {
            prompt_tokens: 10,
            completion_tokens: 20,
            cached_tokens: 0,
            cost_micros: 30,
        },
        latency_ms: 1200,
        outcome,
        error: (outcome == RequestOutcome::Error).then(|| "HTTP 500".to_string()),
        at: fixtures::at(3, 1, 10) + chrono::Duration::minutes(minute.into()),
    }
}

pub async fn llm_log_replay_lookup(ctx: Ctx) {
    let store = &ctx.store;
    let (_, _, run) = fixtures::run(store).await;
    let first = store
        .llm_log
        .record(&llm(run.id, "h1", RequestOutcome::Success, 0))
        .await
        .unwrap();
    let newer = store
        .llm_log
        .record(&llm(run.id, "h1", RequestOutcome::Success, 5))
        .await
        .unwrap();
    store
        .llm_log
        .record(&llm(run.id, "h1", RequestOutcome::Error, 9))
        .await
        .unwrap();
    store
        .llm_log
        .record(&llm(run.id, "h2", RequestOutcome::Timeout, 1))
        .await
        .unwrap();

    let hit = store.llm_log.find_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(
        hit, newer,
        "the newest successful answer; failures never replay"
    );
    assert!(store.llm_log.find_by_hash("h2").await.unwrap().is_none());
    assert!(store.llm_log.find_by_hash("nope").await.unwrap().is_none());

    let all = store.llm_log.list_for_run(run.id).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0], first, "oldest first");
    assert_eq!(all[3].error.as_deref(), Some("HTTP 500"));
    assert_eq!(all[3].response, None);

    assert_err!(
        store
            .llm_log
            .record(&llm(Uuid::now_v7(), "h", RequestOutcome::Success, 0))
            .await,
        StoreError::MissingReference { .. }
    );
}

pub async fn command_log_caps_output(ctx: Ctx) {
    let store = &ctx.store;
    let (_, _, run) = fixtures::run(store).await;
    let huge = format!("{}THE END", "ё".repeat(MAX_COMMAND_OUTPUT_BYTES));
    let logged = store
        .commands
        .record(&NewCommandLog {
            run_id: run.id,
            argv: vec!["npm".into(), "run".into(), "build --prod".into()],
            exit_code: Some(1),
            stdout: "ok".into(),
            stderr: huge.clone(),
            duration_ms: 4_200,
            timed_out: false,
            at: Utc::now(),
        })
        .await
        .unwrap();
    assert!(logged.output_truncated);
    assert!(logged.stderr.len() <= MAX_COMMAND_OUTPUT_BYTES);
    assert!(logged.stderr.ends_with("THE END"), "the tail is kept");
    assert!(huge.ends_with(&logged.stderr));
    store
        .commands
        .record(&NewCommandLog {
            run_id: run.id,
            argv: vec!["sleep".into(), "999".into()],
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 60_000,
            timed_out: true,
            at: Utc::now(),
        })
        .await
        .unwrap();
    let listed = store.commands.list_for_run(run.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], logged);
    assert_eq!(listed[1].argv, ["sleep", "999"]);
    assert!(listed[1].timed_out && listed[1].exit_code.is_none() && !listed[1].output_truncated);

    assert_err!(
        store
            .commands
            .record(&NewCommandLog {
                run_id: run.id,
                argv: vec![],
                exit_code: Some(0),
                stdout: String::new(),
                stderr: String::new(),
                duration_ms: 0,
                timed_out: false,
                at: Utc::now(),
            })
            .await,
        StoreError::InvalidInput(_)
    );
    assert_err!(
        store
            .commands
            .record(&NewCommandLog {
                run_id: Uuid::now_v7(),
                argv: vec!["ls".into()],
                exit_code: Some(0),
                stdout: String::new(),
                stderr: String::new(),
                duration_ms: 0,
                timed_out: false,
                at: Utc::now(),
            })
            .await,
        StoreError::MissingReference { .. }
    );
}

fn run_job(id: Uuid) -> NewJob {
    NewJob {
        dedupe_key: Some(format!("run:{id}")),
        ..NewJob::new("generation_run", json!({"run_id": id}))
    }
}

fn new_run(user: &User, project: &Project) -> NewRun {
    NewRun {
        project_id: project.id,
        user_id: user.id,
        description: "a todo app".into(),
        autonomy: "auto".into(),
        budget: json!({"calls": 5}),
        options: json!({"template": "node-api"}),
    }
}

pub async fn start_writes_run_and_job_one_active_per_project(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    let project = fixtures::project(store, user.id, "app").await;
    let id = Uuid::now_v7();
    let (run, job) = store
        .runs
        .start(id, &new_run(&user, &project), &run_job(id))
        .await
        .unwrap();
    assert_eq!(run.id, id);
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.options, json!({"template": "node-api"}));
    assert_eq!(store.runs.get(id).await.unwrap(), run, "options round-trip");
    assert_eq!(job.payload, json!({"run_id": id}));
    assert_eq!(
        store.jobs.get(job.id).await.unwrap().status,
        JobStatus::Queued
    );

    // A second start on the project is refused while the first is active, and writes nothing.
    let second = Uuid::now_v7();
    assert_err!(
        store
            .runs
            .start(second, &new_run(&user, &project), &run_job(second))
            .await,
        StoreError::Conflict { .. }
    );
    assert_err!(store.runs.get(second).await, StoreError::NotFound { .. });
    assert_eq!(store.jobs.stats().await.unwrap().ready, 1, "no second job");

    // Other projects are not blocked; a finished run frees its project.
    let other = fixtures::project(store, user.id, "other").await;
    let third = Uuid::now_v7();
    store
        .runs
        .start(third, &new_run(&user, &other), &run_job(third))
        .await
        .unwrap();
    store
        .runs
        .transition(id, &[RunStatus::Queued], RunStatus::Cancelled, None)
        .await
        .unwrap();
    store
        .runs
        .start(second, &new_run(&user, &project), &run_job(second))
        .await
        .unwrap();

    let missing = NewRun {
        project_id: Uuid::now_v7(),
        ..new_run(&user, &project)
    };
    let fourth = Uuid::now_v7();
    assert_err!(
        store.runs.start(fourth, &missing, &run_job(fourth)).await,
        StoreError::MissingReference { .. }
    );
}

pub async fn concurrent_starts_have_one_winner(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    let project = fixtures::project(store, user.id, "app").await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        let run = new_run(&user, &project);
        tasks.push(tokio::spawn(async move {
            let id = Uuid::now_v7();
            store.runs.start(id, &run, &run_job(id)).await
        }));
    }
    let mut started = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => started += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(started, 1);
    assert_eq!(
        store
            .runs
            .list_for_project(project.id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn requeue_moves_status_budget_and_job(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    let project = fixtures::project(store, user.id, "app").await;
    let id = Uuid::now_v7();
    let (_, first_job) = store
        .runs
        .start(id, &new_run(&user, &project), &run_job(id))
        .await
        .unwrap();
    // While the first job is unfinished, queueing again returns it.
    let (run, again) = store
        .runs
        .requeue(id, &[RunStatus::Queued], None, &run_job(id))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    assert!(again.deduplicated);
    assert_eq!(again.job.id, first_job.id);

    let claimed = store
        .jobs
        .claim(
            "w1",
            &["generation_run"],
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap()
        .unwrap();
    store.jobs.complete(claimed.id, "w1").await.unwrap();
    store
        .runs
        .transition(id, &[RunStatus::Queued], RunStatus::Running, None)
        .await
        .unwrap();
    let stopped = store
        .runs
        .transition(
            id,
            &[RunStatus::Running],
            RunStatus::BudgetExhausted,
            Some("calls budget exhausted"),
        )
        .await
        .unwrap();
    assert!(stopped.finished_at.is_some());

    assert_err!(
        store
            .runs
            .requeue(id, &[RunStatus::WaitingForHuman], None, &run_job(id))
            .await,
        StoreError::Conflict { .. }
    );
    let (resumed, job) = store
        .runs
        .requeue(
            id,
            &[RunStatus::BudgetExhausted],
            Some(&json!({"calls": 50})),
            &run_job(id),
        )
        .await
        .unwrap();
    assert_eq!(resumed.status, RunStatus::Queued);
    assert_eq!(resumed.budget, json!({"calls": 50}));
    assert_eq!(resumed.error, None);
    assert_eq!(resumed.finished_at, None);
    assert_eq!(resumed.options, json!({"template": "node-api"}), "kept");
    assert!(!job.deduplicated, "the old job finished: a new one");
    assert_ne!(job.job.id, first_job.id);

    // Another active run on the project blocks re-queueing a stopped one.
    store
        .runs
        .transition(id, &[RunStatus::Queued], RunStatus::BudgetExhausted, None)
        .await
        .unwrap();
    let other = Uuid::now_v7();
    store
        .runs
        .start(other, &new_run(&user, &project), &run_job(other))
        .await
        .unwrap();
    assert_err!(
        store
            .runs
            .requeue(id, &[RunStatus::BudgetExhausted], None, &run_job(id))
            .await,
        StoreError::Conflict { .. }
    );
    assert_eq!(
        store.runs.get(id).await.unwrap().status,
        RunStatus::BudgetExhausted,
        "nothing changed"
    );
    assert_err!(
        store
            .runs
            .requeue(Uuid::now_v7(), &[RunStatus::Queued], None, &run_job(id))
            .await,
        StoreError::NotFound { .. }
    );
}
