//! The loop detector and the cost budget stop a run cleanly, with the right outcome and a
//! consistent last checkpoint.

use std::sync::Arc;

use samokoder_core::engine::{DriveOptions, EngineConfig};
use samokoder_core::llm::{BudgetLimits, BudgetResource};
use samokoder_core::state::{
    Autonomy, MemoryRunStore, Phase, RunOutcome, RunState, RunStatus, RunStore,
};
use tokio_util::sync::CancellationToken;

use super::support::{DESCRIPTION, Harness, STATS_BUGGY, STATS_GOOD, Script};

fn looping() -> Script {
    Script {
        buggy_first: true,
        useless_fix: true,
        ..Script::default()
    }
}

/// Every file of the head checkpoint is whole: either the template's or one the script wrote.
async fn assert_consistent(h: &Harness, project_id: uuid::Uuid) -> RunState {
    let head = h.store.head(project_id).await.unwrap().unwrap();
    let state: RunState = serde_json::from_value(head.state).unwrap();
    for (path, content) in h.files(project_id).await {
        if path == "src/stats.js" {
            assert!(content == STATS_BUGGY || content == STATS_GOOD, "{content}");
        }
        assert!(!content.is_empty(), "{path} is empty");
    }
    state
}

#[tokio::test]
async fn a_looping_model_is_stopped_in_auto_mode() {
    let h = Harness::new(looping()).await;
    let run = h.run(Autonomy::Auto);
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    let RunOutcome::Failed { reason } = outcome else {
        panic!("expected the loop detector to end the run, got {outcome:?}");
    };
    assert!(reason.contains("failed the same way 3 times"), "{reason}");
    assert_eq!(
        h.store.commands(run.id).len(),
        3,
        "three identical failures, no more"
    );
    let stored = h.store.run(run.id).await.unwrap();
    assert_eq!(stored.status, RunStatus::Failed);
    assert_eq!(stored.error.as_deref(), Some(reason.as_str()));
    let state = assert_consistent(&h, run.project_id).await;
    assert!(matches!(state.phase, Phase::Failed { .. }));
    assert_eq!(h.files(run.project_id).await["src/stats.js"], STATS_BUGGY);
}

#[tokio::test]
async fn a_looping_model_pauses_for_the_human_in_interactive_mode() {
    let h = Harness::new(looping()).await;
    let run = h.run(Autonomy::Interactive);
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    let RunOutcome::WaitingForHuman { question_id } = outcome else {
        panic!("expected a question, got {outcome:?}");
    };
    let question = h.store.question(question_id).await.unwrap();
    assert!(question.spec.text.contains("failed the same way 3 times"));
    assert_eq!(question.spec.buttons, ["keep trying", "stop"]);
    assert_eq!(
        h.store.run(run.id).await.unwrap().status,
        RunStatus::WaitingForHuman
    );
    h.engine.answer(question_id, "stop").await.unwrap();
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
    assert_eq!(h.store.commands(run.id).len(), 3);
}

#[tokio::test]
async fn the_cost_budget_stops_the_run_and_a_raised_one_continues_it() {
    let store = Arc::new(MemoryRunStore::new());
    let h = Harness::with(Script::default(), EngineConfig::default(), store).await;
    // $100 per million tokens: a few calls cross 40 cents.
    let run = h.store.create_run(
        DESCRIPTION,
        Autonomy::Auto,
        BudgetLimits::unlimited().with_cost_micros(400_000),
    );
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    let RunOutcome::BudgetExhausted { exhausted } = outcome else {
        panic!("expected the budget to stop the run, got {outcome:?}");
    };
    assert_eq!(exhausted.resource, BudgetResource::Cost);
    assert_eq!(
        h.store.run(run.id).await.unwrap().status,
        RunStatus::BudgetExhausted
    );
    let state = assert_consistent(&h, run.project_id).await;
    assert!(!matches!(state.phase, Phase::Done));
    assert!(state.budget.used.cost_micros > 0);
    let (_, cost, _) = h.store.totals(run.id);
    assert!(cost > 0, "the run's totals follow its checkpoints");

    let outcome = h
        .engine
        .drive_with(
            run.id,
            CancellationToken::new(),
            DriveOptions {
                budget: Some(BudgetLimits::unlimited()),
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    assert_eq!(h.files(run.project_id).await["src/stats.js"], STATS_GOOD);
}

#[tokio::test]
async fn the_step_cap_ends_an_auto_run_and_asks_in_an_interactive_one() {
    let config = || EngineConfig {
        max_steps: 3,
        ..EngineConfig::default()
    };
    let h = Harness::with(Script::default(), config(), Arc::new(MemoryRunStore::new())).await;
    let run = h.run(Autonomy::Auto);
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::StepCapReached { steps: 3 });
    let stored = h.store.run(run.id).await.unwrap();
    assert_eq!(stored.status, RunStatus::Failed);
    assert_eq!(
        stored.error.as_deref(),
        Some("step cap reached after 3 steps")
    );
    let head = h.store.head(run.project_id).await.unwrap().unwrap();
    assert_eq!(head.sequence, 3, "three steps, three checkpoints");

    let run = h.run(Autonomy::Interactive);
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    let RunOutcome::WaitingForHuman { question_id } = outcome else {
        panic!("expected a question, got {outcome:?}");
    };
    assert_eq!(
        h.store.question(question_id).await.unwrap().spec.buttons,
        ["continue", "stop"]
    );
    h.engine.answer(question_id, "continue").await.unwrap();
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::WaitingForHuman { .. }),
        "three more steps, then the cap asks again: {outcome:?}"
    );
    let head = h.store.head(run.project_id).await.unwrap().unwrap();
    let state: RunState = serde_json::from_value(head.state).unwrap();
    assert_eq!(
        state.step, 9,
        "3 steps, the question, the answer, 3 more steps, the question again"
    );
    assert!(matches!(state.phase, Phase::WaitingForHuman { .. }));
}
