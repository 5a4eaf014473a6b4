//! From a description to a tested app on the `node-api` template.

use samokoder_core::state::{
    Autonomy, EngineEvent, Phase, RunOptions, RunOutcome, RunState, RunStatus, RunStore,
};
use tokio_util::sync::CancellationToken;

use super::support::{Harness, STATS_BUGGY, STATS_GOOD, Script};

#[tokio::test]
async fn builds_a_tested_app_from_a_description() {
    let h = Harness::new(Script::default()).await;
    let run = h.run(Autonomy::Auto);
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    let RunOutcome::Completed { checkpoint_id } = outcome else {
        for c in h.store.commands(run.id) {
            eprintln!(
                "{:?} exit {:?}\n{}\n{}",
                c.argv, c.exit_code, c.stdout, c.stderr
            );
        }
        panic!("expected completion, got {outcome:?}");
    };

    let files = h.files(run.project_id).await;
    assert_eq!(files["src/stats.js"], STATS_GOOD);
    assert!(files["src/app.js"].contains("countItems(store.list())"));
    assert!(files["src/app.js"].contains("require('./stats')"));
    assert!(files["test/stats.test.js"].contains("countItems counts the items"));
    assert!(files["README.md"].starts_with("# Todo API"));
    assert!(
        files.contains_key("package.json"),
        "the starter template is there"
    );

    // The executor ran the app's own test command in the sandbox, and it passed.
    let commands = h.store.commands(run.id);
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert_eq!(commands[0].argv, ["npm", "test"]);
    assert_eq!(commands[0].exit_code, Some(0), "{}", commands[0].stderr);
    assert!(commands[0].stdout.contains("countItems counts the items"));

    let stored = h.store.run(run.id).await.unwrap();
    assert_eq!(stored.status, RunStatus::Completed);
    let head = h.store.head(run.project_id).await.unwrap().unwrap();
    assert_eq!(head.id, checkpoint_id);
    let state: RunState = serde_json::from_value(head.state).unwrap();
    assert_eq!(state.phase, Phase::Done);
    assert_eq!(state.tasks.len(), 1);
    assert!(
        state.tasks[0]
            .summary
            .as_deref()
            .unwrap()
            .contains("/api/stats")
    );

    // Three code writers worked in one step (in parallel), merged into one checkpoint.
    let labels: Vec<String> = h
        .store
        .events_after(run.id, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match serde_json::from_value(e.payload).unwrap() {
            EngineEvent::Checkpoint { label, .. } => Some(label),
            _ => None,
        })
        .collect();
    assert!(
        labels.contains(&"task 1: write src/stats.js, test/stats.test.js, src/app.js".to_owned()),
        "{labels:?}"
    );

    // Events were stored in order with gap-free sequence numbers before being broadcast.
    let stored_events = h.store.events_after(run.id, 0, 10_000).await.unwrap();
    for (n, e) in stored_events.iter().enumerate() {
        assert_eq!(e.seq, n as i64 + 1);
    }
    assert_eq!(stored_events.last().unwrap().kind, "run_finished");
    let live = h.events.lock().unwrap().clone();
    assert!(live.iter().all(|e| e.run_id == run.id));
    assert!(live.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test]
async fn the_troubleshooter_fixes_failing_tests() {
    let h = Harness::new(Script {
        buggy_first: true,
        ..Script::default()
    })
    .await;
    let run = h.run(Autonomy::Auto);
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );

    let commands = h.store.commands(run.id);
    assert_eq!(commands.len(), 2, "one failing test run, one passing");
    assert_ne!(commands[0].exit_code, Some(0));
    assert!(
        commands[0].stdout.contains("not ok"),
        "{}",
        commands[0].stdout
    );
    assert_eq!(commands[1].exit_code, Some(0));

    let files = h.files(run.project_id).await;
    assert_eq!(files["src/stats.js"], STATS_GOOD);
    assert_ne!(files["src/stats.js"], STATS_BUGGY);

    // The troubleshooter saw the failing output, inside a data block.
    let saw_failure = h.fake.requests().iter().any(|r| {
        r.messages()[0].1.starts_with("You are the troubleshooter")
            && r.all_text().contains("[[data command output #")
            && r.all_text().contains("not ok")
    });
    assert!(saw_failure);
}

#[tokio::test]
async fn any_checkpoint_can_be_rolled_back_to_and_materialised() {
    let h = Harness::new(Script::default()).await;
    let run = h.run(Autonomy::Auto);
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    let finished = h.files(run.project_id).await;
    let head = h.store.head(run.project_id).await.unwrap().unwrap();

    // The checkpoint right after the architect applied the starter template.
    let events = h.store.events_after(run.id, 0, 10_000).await.unwrap();
    let template_checkpoint = events
        .into_iter()
        .find_map(|e| match serde_json::from_value(e.payload).unwrap() {
            EngineEvent::Checkpoint {
                checkpoint_id,
                label,
                ..
            } if label.starts_with("architecture") => Some(checkpoint_id),
            _ => None,
        })
        .unwrap();
    let template_files = h.store.files(template_checkpoint).await.unwrap();
    assert!(!template_files.contains_key("src/stats.js"));

    let rolled = h
        .engine
        .rollback(run.id, template_checkpoint)
        .await
        .unwrap();
    assert_eq!(rolled.parent_id, Some(head.id), "history is kept");
    assert_eq!(h.store.files(rolled.id).await.unwrap(), template_files);

    // And the finished state is still there to go back to, on disk this time.
    let dir = tempfile::tempdir().unwrap();
    h.engine.materialize(head.id, dir.path()).await.unwrap();
    for (path, content) in &finished {
        assert_eq!(
            &std::fs::read_to_string(dir.path().join(path)).unwrap(),
            content
        );
    }
}

#[tokio::test]
async fn a_template_named_at_the_start_is_the_only_one_the_architect_sees() {
    let h = Harness::new(Script::default()).await;
    let run = h.store.create_run(
        super::support::DESCRIPTION,
        Autonomy::Auto,
        // Questions, spec, architecture: stop before planning.
        samokoder_core::llm::BudgetLimits::unlimited().with_calls(3),
    );
    h.store.set_options(
        run.id,
        RunOptions {
            template: Some("node-api".into()),
            ..RunOptions::default()
        },
    );
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::BudgetExhausted { .. }),
        "{outcome:?}"
    );
    let architect = h
        .fake
        .requests()
        .into_iter()
        .find(|r| r.messages()[0].1.starts_with("You are the architect"))
        .expect("the architect was asked");
    let prompt = architect.all_text();
    assert!(prompt.contains("`node-api`"), "{prompt}");
    assert!(!prompt.contains("`python-service`"), "{prompt}");
    assert!(h.files(run.project_id).await.contains_key("package.json"));

    // A template that does not exist fails the run at the architecture step.
    let h = Harness::new(Script::default()).await;
    let run = h.run(Autonomy::Auto);
    h.store.set_options(
        run.id,
        RunOptions {
            template: Some("cobol-api".into()),
            ..RunOptions::default()
        },
    );
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    let RunOutcome::Failed { reason } = outcome else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert!(reason.contains("cobol-api"), "{reason}");
}
