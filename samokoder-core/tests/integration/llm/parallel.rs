//! The parallel executor: bounded per provider (observed at the fake), results in input order,
//! siblings cancelled on fatal errors.

use std::time::Duration;

use samokoder_core::llm::fake::{FakeLlm, FakeReply};
use samokoder_core::llm::{
    AgentRole, LlmCall, LlmError, LlmSession, ProviderHandle, Route, RouteTable,
};

use super::support::fast_policy;

fn session(fake: &FakeLlm, bound: usize) -> LlmSession {
    let handle = ProviderHandle::new(fake.openai_provider("openai"), bound);
    LlmSession::builder(RouteTable::new(Route::new(handle, "gpt-4o-mini")))
        .policy(fast_policy())
        .build()
}

#[tokio::test]
async fn never_more_than_the_bound_in_flight_and_results_in_input_order() {
    let fake = FakeLlm::start().await.unwrap();
    // Answer each request with its own question, slowly, so they overlap.
    fake.respond_with(|request| {
        FakeReply::text(format!(
            "answer to {}",
            request.last_user_text().unwrap_or_default()
        ))
        .delay(Duration::from_millis(60))
    });
    let session = session(&fake, 3);
    let results = session
        .parallel(0..12, |session, i| async move {
            session
                .chat(LlmCall::new(AgentRole::CodeWriter).user(format!("file {i}")))
                .await
                .map(|c| c.text().to_owned())
        })
        .await;
    let texts: Vec<String> = results.into_iter().map(Result::unwrap).collect();
    let expected: Vec<String> = (0..12).map(|i| format!("answer to file {i}")).collect();
    assert_eq!(texts, expected);
    assert_eq!(fake.request_count(), 12);
    assert_eq!(
        fake.max_in_flight(),
        3,
        "the bound was not reached or was exceeded"
    );
}

#[tokio::test]
async fn the_bound_is_per_provider_and_shared_by_concurrent_callers() {
    let fake = FakeLlm::start().await.unwrap();
    fake.respond_with(|_| FakeReply::text("ok").delay(Duration::from_millis(40)));
    let session = session(&fake, 2);
    // Two independent fan-outs on the same provider at once.
    let run = |offset: usize| {
        let session = session.clone();
        async move {
            session
                .parallel(0..5, |s, i| async move {
                    s.chat(LlmCall::new(AgentRole::DescribeFiles).user(format!("{}", offset + i)))
                        .await
                })
                .await
        }
    };
    let (a, b) = tokio::join!(run(0), run(100));
    assert!(a.iter().chain(&b).all(Result::is_ok));
    assert_eq!(fake.max_in_flight(), 2);
}

#[tokio::test]
async fn a_fatal_error_cancels_the_siblings() {
    let fake = FakeLlm::start().await.unwrap();
    fake.respond_with(|request| {
        if request.last_user_text().as_deref() == Some("file 1") {
            FakeReply::unauthorized()
        } else {
            // Long streams that would take seconds to finish.
            FakeReply::text("x".repeat(400)).chunk_delay(Duration::from_millis(40))
        }
    });
    let session = session(&fake, 8);
    let started = std::time::Instant::now();
    let results = session
        .parallel(0..4, |session, i| async move {
            let mut sink = |_: &str| {};
            session
                .chat_stream(
                    LlmCall::new(AgentRole::CodeWriter).user(format!("file {i}")),
                    &mut sink,
                )
                .await
                .map(|c| c.text().len())
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(results[1], Err(LlmError::Authentication { .. })));
    for i in [0, 2, 3] {
        assert!(
            matches!(results[i], Err(LlmError::Cancelled)),
            "{i}: {:?}",
            results[i]
        );
    }
    // The parent session is not cancelled: the group was.
    assert!(!session.cancel_token().is_cancelled());

    let err = session
        .try_parallel(0..4, |session, i| async move {
            session
                .chat(LlmCall::new(AgentRole::CodeWriter).user(format!("file {i}")))
                .await
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Authentication { .. }));
}
