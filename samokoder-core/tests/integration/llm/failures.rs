//! Every failure a provider produces, against the fake: retried or not as the taxonomy says,
//! never waiting less than asked (measured by arrival times at the fake).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use samokoder_core::llm::fake::{FAKE_API_KEY, FakeLlm, FakeReply};
use samokoder_core::llm::{
    AgentRole, ApiKey, CollectSink, FatalKind, LlmCall, LlmError, LlmEvent, OpenAiProvider,
    RetryPolicy, TransientKind,
};

use super::support::{fast_policy, gap, openai, session_for};

fn call() -> LlmCall {
    LlmCall::new(AgentRole::Developer).user("Plan the task.")
}

#[tokio::test]
async fn retry_after_seconds_is_waited_in_full() {
    let (fake, session, events) = openai().await;
    fake.push(FakeReply::rate_limited().header("retry-after", "1"))
        .push(FakeReply::text("ok"));
    let reply = session.chat(call()).await.unwrap();
    assert_eq!(reply.text(), "ok");
    assert!(
        gap(&fake, 0, 1) >= Duration::from_secs(1),
        "{:?}",
        gap(&fake, 0, 1)
    );
    let events = events.all();
    assert!(
        matches!(events.as_slice(), [LlmEvent::WaitingForRateLimit { wait_ms, retry: 1, provider, .. }]
            if *wait_ms >= 1_000 && provider == "openai"),
        "{events:?}"
    );
}

#[tokio::test]
async fn openai_reset_of_the_exhausted_limit_is_waited() {
    let (fake, session, _) = openai().await;
    fake.push(
        FakeReply::rate_limited()
            .header("x-ratelimit-remaining-requests", "0")
            .header("x-ratelimit-reset-requests", "350ms")
            .header("x-ratelimit-remaining-tokens", "90000")
            .header("x-ratelimit-reset-tokens", "6m0s"),
    )
    .push(FakeReply::text("ok"));
    session.chat(call()).await.unwrap();
    let waited = gap(&fake, 0, 1);
    // The request limit was the exhausted one: its reset binds, not the token one.
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn retry_after_ms_and_http_dates_are_understood() {
    let (fake, session, _) = openai().await;
    fake.push(FakeReply::rate_limited().header("retry-after-ms", "200"))
        .push(FakeReply::text("ok"));
    session.chat(call()).await.unwrap();
    assert!(gap(&fake, 0, 1) >= Duration::from_millis(200));

    // An HTTP date (second resolution) about 1-2 s ahead.
    let at = SystemTime::now() + Duration::from_secs(2);
    let at = chrono::DateTime::<chrono::Utc>::from(at).with_nanosecond_zero();
    fake.push(FakeReply::rate_limited().header(
        "retry-after",
        at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    ))
    .push(FakeReply::text("ok"));
    session.chat(call()).await.unwrap();
    let requests = fake.requests();
    let arrived = chrono::DateTime::<chrono::Utc>::from(requests[3].received_at_wall);
    assert!(
        arrived >= at,
        "retried at {arrived}, asked to wait until {at}"
    );
}

trait NanoZero {
    fn with_nanosecond_zero(self) -> Self;
}

impl NanoZero for chrono::DateTime<chrono::Utc> {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap()
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_given_up() {
    let (fake, session, events) = openai().await;
    fake.push(FakeReply::server_error())
        .push(FakeReply::text("recovered"));
    let reply = session.chat(call()).await.unwrap();
    assert_eq!(reply.text(), "recovered");
    assert_eq!(reply.transport_retries, 1);
    assert!(matches!(
        events.all()[0],
        LlmEvent::Retrying {
            retry: 1,
            max_retries: 4,
            ..
        }
    ));

    fake.push_all((0..5).map(|_| FakeReply::server_error()));
    let err = session.chat(call()).await.unwrap_err();
    assert!(
        matches!(
            err,
            LlmError::Transient {
                kind: TransientKind::Server,
                ..
            }
        ),
        "{err:?}"
    );
    // One send plus max_transport_retries (4).
    assert_eq!(fake.request_count(), 2 + 5);
    assert_eq!(fake.pending_replies(), 0);
}

#[tokio::test]
async fn fatal_errors_are_not_retried() {
    let (fake, session, events) = openai().await;
    type Expected = fn(&LlmError) -> bool;
    let cases: Vec<(FakeReply, Expected)> = vec![
        (FakeReply::model_not_found(), |e| {
            matches!(
                e,
                LlmError::Fatal {
                    kind: FatalKind::ModelNotFound,
                    ..
                }
            )
        }),
        // A 429 that means "out of money" must not be waited on.
        (FakeReply::quota_exceeded(), |e| {
            matches!(
                e,
                LlmError::Fatal {
                    kind: FatalKind::QuotaExceeded,
                    ..
                }
            )
        }),
        (
            FakeReply::error(400, "invalid_request_error", "invalid_request_error", "bad"),
            |e| {
                matches!(
                    e,
                    LlmError::Fatal {
                        kind: FatalKind::BadRequest,
                        ..
                    }
                )
            },
        ),
        (FakeReply::context_overflow(), |e| {
            matches!(e, LlmError::ContextOverflow { .. })
        }),
        (FakeReply::unauthorized(), |e| {
            matches!(e, LlmError::Authentication { .. })
        }),
    ];
    for (i, (reply, expected)) in cases.into_iter().enumerate() {
        fake.push(reply);
        let err = session.chat(call()).await.unwrap_err();
        assert!(expected(&err), "case {i}: {err:?}");
        assert_eq!(fake.request_count(), i + 1, "case {i} was retried");
    }
    assert!(events.all().is_empty());
}

#[tokio::test]
async fn the_key_never_appears_in_errors_or_debug_output() {
    let (fake, session, _) = openai().await;
    fake.push(FakeReply::unauthorized());
    let err = session.chat(call()).await.unwrap_err();
    // The fake echoed the key it received...
    assert_eq!(fake.requests()[0].api_key(), Some(FAKE_API_KEY));
    // ...and the error carries the message with the key scrubbed.
    let shown = format!("{err} | {err:?} | {session:?}");
    assert!(!shown.contains(FAKE_API_KEY), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    let provider = OpenAiProvider::new(
        "p",
        "https://example.com/v1",
        Some(ApiKey::new(FAKE_API_KEY)),
    )
    .unwrap();
    assert!(!format!("{provider:?}").contains(FAKE_API_KEY));
    // The prompt is not in the error either.
    assert!(!shown.contains("Plan the task."));
}

#[tokio::test]
async fn a_cut_stream_restarts_the_sink_and_is_retried() {
    let (fake, session, events) = openai().await;
    fake.push(FakeReply::text("first try that breaks").cut_after(2))
        .push(FakeReply::text("second try"));
    let mut sink = CollectSink::default();
    let reply = session.chat_stream(call(), &mut sink).await.unwrap();
    assert_eq!(reply.text(), "second try");
    // The first two chunks reached the sink before the cut; the sink was told to drop them.
    assert_eq!(
        fake.sent_chunks().iter().filter(|c| c.request == 0).count(),
        2
    );
    assert_eq!(sink.restarts, 1);
    assert_eq!(sink.text(), "second try");
    assert!(matches!(&events.all()[0], LlmEvent::Retrying { code, .. } if code == "llm_transient"));
}

#[tokio::test]
async fn malformed_bodies_and_chunks_are_retried() {
    let (fake, session, _) = openai().await;
    fake.push(FakeReply::raw(200, "{\"choices\": [{\"message\": "))
        .push(FakeReply::text("fine"));
    assert_eq!(session.chat(call()).await.unwrap().transport_retries, 1);

    fake.push(FakeReply::raw(200, "data: {not json}\n\n"))
        .push(FakeReply::text("fine"));
    let mut sink = CollectSink::default();
    let reply = session.chat_stream(call(), &mut sink).await.unwrap();
    assert_eq!((reply.text(), reply.transport_retries), ("fine", 1));
}

#[tokio::test]
async fn a_slow_first_token_times_out_and_is_retried() {
    let fake = FakeLlm::start().await.unwrap();
    let (builder, events) = session_for(fake.openai_provider("openai"), "gpt-4o");
    let session = builder
        .policy(RetryPolicy {
            idle_timeout: Duration::from_millis(300),
            ..fast_policy()
        })
        .build();
    fake.push(FakeReply::text("too late").first_token_delay(Duration::from_secs(3)))
        .push(FakeReply::text("in time"));
    let mut sink = CollectSink::default();
    let reply = session.chat_stream(call(), &mut sink).await.unwrap();
    assert_eq!(reply.text(), "in time");
    assert!(
        matches!(&events.all()[0], LlmEvent::Retrying { message, .. } if message.contains("timed out"))
    );
}

#[tokio::test]
async fn a_long_non_streamed_generation_is_not_a_stall() {
    let fake = FakeLlm::start().await.unwrap();
    let (builder, events) = session_for(fake.openai_provider("openai"), "gpt-4o");
    let session = builder
        .policy(RetryPolicy {
            idle_timeout: Duration::from_millis(200),
            ..fast_policy()
        })
        .build();
    // The whole answer arrives after 700 ms, as a non-streamed completion does.
    fake.push(FakeReply::text("a long essay").delay(Duration::from_millis(700)));
    let reply = session.chat(call()).await.unwrap();
    assert_eq!((reply.text(), reply.transport_retries), ("a long essay", 0));
    assert!(events.all().is_empty());
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let provider = OpenAiProvider::new(
        "down",
        &format!("http://127.0.0.1:{port}/v1"),
        Some(ApiKey::new(FAKE_API_KEY)),
    )
    .unwrap();
    let (builder, events) = session_for(Arc::new(provider), "gpt-4o");
    let err = builder.build().chat(call()).await.unwrap_err();
    assert!(
        matches!(
            err,
            LlmError::Transient {
                kind: TransientKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(events.all().len(), 4);
}

#[tokio::test]
async fn asks_longer_than_the_policy_allows_fail_at_once_with_the_wait() {
    let (fake, session, events) = openai().await;
    fake.push(FakeReply::rate_limited().header("retry-after", "86400"));
    let started = std::time::Instant::now();
    let err = session.chat(call()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(err, LlmError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(86_400))
    );
    assert_eq!(fake.request_count(), 1);
    assert!(events.all().is_empty());
}

#[tokio::test]
async fn the_deadline_bounds_waits_and_slow_answers() {
    let fake = FakeLlm::start().await.unwrap();
    let (builder, _) = session_for(fake.openai_provider("openai"), "gpt-4o");
    let session = builder.build();

    // A wait that cannot end before the deadline is not started (and not shortened).
    fake.push(FakeReply::rate_limited().header("retry-after", "2"));
    let err = session
        .chat(call().deadline(Duration::from_millis(800)))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::RateLimited { .. }), "{err:?}");
    assert_eq!(fake.request_count(), 1);

    // A provider slower than the deadline.
    fake.push(FakeReply::text("slow").delay(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    let err = session
        .chat(call().deadline(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::DeadlineExceeded { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_redirect_is_never_followed_to_an_internal_address() {
    // What the outside review did: an allowed host answers 307 (and 302) to an internal
    // address; the prompt (and the key) must never be sent there.
    let internal = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = internal.local_addr().unwrap().port();
    internal.set_nonblocking(true).unwrap();
    let (fake, session, _) = openai().await;
    for status in [307, 302, 308, 301] {
        fake.push(FakeReply::raw(status, "").header(
            "location",
            format!("http://127.0.0.1:{port}/v1/chat/completions"),
        ));
    }
    for _ in 0..4 {
        let err = session.chat(call()).await.unwrap_err();
        assert!(
            !matches!(err, LlmError::Transient { .. }),
            "not retried: {err}"
        );
        assert!(err.to_string().contains("never followed"), "{err}");
    }
    assert!(
        internal.accept().is_err(),
        "nothing ever connected to the internal address"
    );
    assert_eq!(
        fake.requests().len(),
        4,
        "one request each, no retry through the redirect"
    );
}
