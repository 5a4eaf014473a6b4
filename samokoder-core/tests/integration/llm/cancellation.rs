//! Cancellation takes effect within one streamed chunk, and during waits.

use std::time::{Duration, Instant};

use samokoder_core::llm::fake::FakeReply;
use samokoder_core::llm::{AgentRole, LlmCall, LlmError};

use super::support::openai;

#[tokio::test]
async fn cancelling_mid_stream_stops_within_one_chunk() {
    let (fake, session, _) = openai().await;
    let chunks: Vec<String> = (0..40).map(|i| format!("tok{i} ")).collect();
    fake.push(
        FakeReply::text("")
            .chunks(chunks)
            .chunk_delay(Duration::from_millis(50)),
    );

    let token = session.cancel_token().clone();
    let mut seen: Vec<String> = Vec::new();
    let mut cancelled_at = None;
    let mut sink = |delta: &str| {
        seen.push(delta.to_owned());
        if seen.len() == 3 {
            token.cancel();
            cancelled_at = Some(Instant::now());
        }
    };
    let err = session
        .chat_stream(LlmCall::new(AgentRole::CodeWriter).user("write"), &mut sink)
        .await
        .unwrap_err();
    let returned_at = Instant::now();
    assert!(matches!(err, LlmError::Cancelled), "{err:?}");
    // Not one more delta after the cancelling one, and back well before the next chunk is due.
    assert_eq!(seen, ["tok0 ", "tok1 ", "tok2 "]);
    assert!(returned_at - cancelled_at.unwrap() < Duration::from_millis(50));

    // The connection was dropped: the fake's response body ends long before its 40 chunks.
    let deadline = Instant::now() + Duration::from_secs(2);
    while fake.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.in_flight(), 0);
    assert!(
        fake.sent_chunks().len() < 10,
        "{}",
        fake.sent_chunks().len()
    );
}

#[tokio::test]
async fn cancelling_during_a_rate_limit_wait_returns_at_once() {
    let (fake, session, events) = openai().await;
    fake.push(FakeReply::rate_limited().header("retry-after", "10"));
    let token = session.cancel_token().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        token.cancel();
    });
    let started = Instant::now();
    let err = session
        .chat(LlmCall::new(AgentRole::Developer).user("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Cancelled), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.request_count(), 1);
    // The wait was announced before the session went quiet.
    assert_eq!(events.all().len(), 1);
}

#[tokio::test]
async fn a_cancelled_session_sends_nothing() {
    let (fake, session, _) = openai().await;
    session.cancel_token().cancel();
    let err = session
        .chat(LlmCall::new(AgentRole::Developer).user("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Cancelled));
    assert_eq!(fake.request_count(), 0);
}
