//! The Anthropic provider end to end: system field, role merging, streaming events, errors.

use std::time::Duration;

use samokoder_core::llm::fake::{FAKE_API_KEY, FakeProtocol, FakeReply};
use samokoder_core::llm::{
    AgentRole, CollectSink, FinishReason, LlmCall, LlmError, LlmEvent, Message,
};

use super::support::{anthropic, gap};

#[tokio::test]
async fn system_is_its_own_field_and_same_role_turns_merge() {
    let (fake, session, _) = anthropic().await;
    fake.push(FakeReply::text("merged"));
    let call = LlmCall::new(AgentRole::Troubleshooter).messages([
        Message::system("You debug."),
        Message::user("Log 1"),
        Message::user("Log 2"),
        Message::assistant("Seen."),
        Message::assistant("Anything else?"),
        Message::system("Answer in English."),
        Message::user("Why does it crash?"),
    ]);
    let reply = session.chat(call).await.unwrap();
    assert_eq!(reply.text(), "merged");

    let request = &fake.requests()[0];
    assert_eq!(request.protocol, FakeProtocol::Anthropic);
    assert_eq!(request.uri, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(FAKE_API_KEY));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.body["system"], "You debug.\n\nAnswer in English.");
    assert_eq!(
        request.body["messages"],
        serde_json::json!([
            {"role": "user", "content": "Log 1\n\nLog 2"},
            {"role": "assistant", "content": "Seen.\n\nAnything else?"},
            {"role": "user", "content": "Why does it crash?"},
        ])
    );
    // max_tokens is always sent: the route's default for this model.
    assert_eq!(request.body["max_tokens"], 8192);
}

#[tokio::test]
async fn streaming_events_become_ordered_deltas_with_usage() {
    let (fake, session, _) = anthropic().await;
    fake.push(
        FakeReply::text("")
            .chunks(["Fix ", "the ", "null ", "check."])
            .usage(500, 12)
            .cached(300),
    );
    let mut sink = CollectSink::default();
    let reply = session
        .chat_stream(LlmCall::new(AgentRole::BugHunter).user("Why?"), &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.deltas, ["Fix ", "the ", "null ", "check."]);
    assert_eq!(reply.text(), "Fix the null check.");
    assert_eq!(reply.response.finish_reason, FinishReason::Stop);
    // input_tokens excludes cache reads; ours includes them.
    assert_eq!(reply.response.usage.prompt_tokens, 500);
    assert_eq!(reply.response.usage.cached_prompt_tokens, 300);
    assert_eq!(reply.response.usage.completion_tokens, 12);
    assert!(fake.requests()[0].is_stream());
}

#[tokio::test]
async fn overloaded_529_is_retried_with_an_event() {
    let (fake, session, events) = anthropic().await;
    fake.push(FakeReply::overloaded())
        .push(FakeReply::text("back"));
    let reply = session
        .chat(LlmCall::new(AgentRole::Architect).user("x"))
        .await
        .unwrap();
    assert_eq!(reply.text(), "back");
    assert_eq!(reply.transport_retries, 1);
    assert_eq!(fake.request_count(), 2);
    assert!(matches!(
        events.all().as_slice(),
        [LlmEvent::Retrying { code, retry: 1, .. }] if code == "llm_transient"
    ));
}

#[tokio::test]
async fn error_event_mid_stream_restarts_the_sink_and_retries() {
    let (fake, session, _) = anthropic().await;
    fake.push(FakeReply::text("partial answer that dies").error_event_after(2))
        .push(FakeReply::text("whole answer"));
    let mut sink = CollectSink::default();
    let reply = session
        .chat_stream(LlmCall::new(AgentRole::Developer).user("x"), &mut sink)
        .await
        .unwrap();
    assert_eq!(reply.text(), "whole answer");
    assert_eq!(sink.restarts, 1);
    assert_eq!(sink.text(), "whole answer");
}

#[tokio::test]
async fn reset_timestamp_is_honoured() {
    let (fake, session, events) = anthropic().await;
    // An absolute reset time 1.2 s from now, sub-second precision as Anthropic sends it.
    let reset = chrono::Utc::now() + chrono::Duration::milliseconds(1_200);
    fake.push(
        FakeReply::rate_limited()
            .header("anthropic-ratelimit-tokens-remaining", "0")
            .header(
                "anthropic-ratelimit-tokens-reset",
                reset.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
    )
    .push(FakeReply::text("ok"));
    session
        .chat(LlmCall::new(AgentRole::Architect).user("x"))
        .await
        .unwrap();
    let requests = fake.requests();
    let second = chrono::DateTime::<chrono::Utc>::from(requests[1].received_at_wall);
    assert!(
        second >= reset,
        "retried at {second}, before the reset at {reset}"
    );
    assert!(
        matches!(events.all()[0], LlmEvent::WaitingForRateLimit { wait_ms, .. } if wait_ms >= 1_000)
    );
}

#[tokio::test]
async fn retry_after_on_anthropic_429() {
    let (fake, session, _) = anthropic().await;
    fake.push(FakeReply::rate_limited().header("retry-after", "1"))
        .push(FakeReply::text("ok"));
    session
        .chat(LlmCall::new(AgentRole::Architect).user("x"))
        .await
        .unwrap();
    assert!(
        gap(&fake, 0, 1) >= Duration::from_secs(1),
        "{:?}",
        gap(&fake, 0, 1)
    );
}

#[tokio::test]
async fn a_stream_ending_before_message_stop_is_broken_and_retried() {
    let (fake, session, _) = anthropic().await;
    fake.push(FakeReply::text("never finishes").end_after(1))
        .push(FakeReply::text("done"));
    let mut sink = CollectSink::default();
    let reply = session
        .chat_stream(LlmCall::new(AgentRole::Developer).user("x"), &mut sink)
        .await
        .unwrap();
    assert_eq!(reply.text(), "done");
    assert_eq!(reply.transport_retries, 1);
}

#[tokio::test]
async fn bad_key_is_an_authentication_error_without_the_key() {
    let (fake, session, _) = anthropic().await;
    fake.push(FakeReply::unauthorized());
    let err = session
        .chat(LlmCall::new(AgentRole::Developer).user("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Authentication { status: 401, .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(FAKE_API_KEY));
    assert_eq!(fake.request_count(), 1);
}
