//! Human in the loop: an interactive run stops at a question and continues once it is
//! answered; auto mode answers with the defaults.

use samokoder_core::state::{Autonomy, EngineEvent, RunOutcome, RunStatus, RunStore};
use tokio_util::sync::CancellationToken;

use super::support::{Harness, Script};

fn asking() -> Script {
    Script {
        ask_question: true,
        ..Script::default()
    }
}

fn spec_prompt_mentions(h: &Harness, text: &str) -> bool {
    h.fake.requests().iter().any(|r| {
        r.last_user_text()
            .is_some_and(|t| t.starts_with("# Task: write the specification") && t.contains(text))
    })
}

#[tokio::test]
async fn an_interactive_run_waits_for_the_answer_and_then_continues() {
    let h = Harness::new(asking()).await;
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
    assert_eq!(
        question.spec.text,
        "Should the count include items that are done?"
    );
    assert_eq!(question.spec.buttons, ["yes", "no"]);
    assert_eq!(question.answer, None);
    assert_eq!(
        h.store.run(run.id).await.unwrap().status,
        RunStatus::WaitingForHuman
    );
    let asked = h.fake.request_count();

    // Driving again before the answer does nothing and asks nobody.
    let again = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again, RunOutcome::WaitingForHuman { question_id });
    assert_eq!(h.fake.request_count(), asked);

    h.engine
        .answer(question_id, "no, only open items")
        .await
        .unwrap();
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    assert!(spec_prompt_mentions(&h, "no, only open items"));
}

#[tokio::test]
async fn auto_mode_answers_with_the_defaults() {
    let h = Harness::new(asking()).await;
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
    assert!(spec_prompt_mentions(&h, "yes, count every item"));
    let answered: Vec<EngineEvent> = h
        .store
        .events_after(run.id, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_value(e.payload).unwrap())
        .filter(|e| matches!(e, EngineEvent::QuestionAnswered { .. }))
        .collect();
    assert_eq!(answered.len(), 1);
    let EngineEvent::QuestionAnswered {
        question_id,
        answer,
        by_default,
    } = &answered[0]
    else {
        unreachable!()
    };
    assert!(*by_default);
    assert_eq!(answer, "yes, count every item");
    let stored = h.store.question(*question_id).await.unwrap();
    assert_eq!(stored.answer.as_deref(), Some("yes, count every item"));
}

fn risky() -> Script {
    Script {
        risky_command: true,
        ..Script::default()
    }
}

#[tokio::test]
async fn a_risky_command_asks_first_in_interactive_mode() {
    let h = Harness::new(risky()).await;
    let run = h.run(Autonomy::Interactive);
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    let RunOutcome::WaitingForHuman { question_id } = outcome else {
        panic!("expected an approval question, got {outcome:?}");
    };
    let question = h.store.question(question_id).await.unwrap();
    assert!(
        question.spec.text.starts_with("May I run `npm publish`?"),
        "{}",
        question.spec.text
    );
    assert_eq!(question.spec.buttons, ["run", "skip"]);
    assert!(
        h.store.commands(run.id).is_empty(),
        "nothing ran before the answer"
    );

    h.engine.answer(question_id, "skip").await.unwrap();
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    let argvs: Vec<Vec<String>> = h
        .store
        .commands(run.id)
        .into_iter()
        .map(|c| c.argv)
        .collect();
    assert_eq!(argvs, [["npm", "test"]], "the skipped command never ran");
}

#[tokio::test]
async fn a_risky_command_is_skipped_by_default_in_auto_mode() {
    let h = Harness::new(risky()).await;
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
    let argvs: Vec<Vec<String>> = h
        .store
        .commands(run.id)
        .into_iter()
        .map(|c| c.argv)
        .collect();
    assert_eq!(argvs, [["npm", "test"]]);
}
