//! The OpenAI-compatible provider end to end: wire format, streaming, usage, Azure.

use samokoder_core::llm::fake::{FAKE_API_KEY, FakeLlm, FakeProtocol, FakeReply};
use samokoder_core::llm::{AgentRole, CollectSink, FinishReason, LlmCall};

use super::support::{openai, session_for};

#[tokio::test]
async fn non_streaming_answer_with_usage_and_cost() {
    let (fake, session, _) = openai().await;
    fake.push(FakeReply::text("A todo app.").usage(1_000, 100).cached(200));
    let reply = session
        .chat(
            LlmCall::new(AgentRole::SpecWriter)
                .system("Be brief.")
                .user("What is it?"),
        )
        .await
        .unwrap();
    assert_eq!(reply.text(), "A todo app.");
    assert_eq!(reply.response.finish_reason, FinishReason::Stop);
    assert_eq!(reply.response.usage.prompt_tokens, 1_000);
    assert_eq!(reply.response.usage.cached_prompt_tokens, 200);
    assert!(!reply.response.usage.estimated);
    // gpt-4o-mini: 800 × $0.15 + 200 × $0.075 + 100 × $0.60 per million = 195 µ$
    assert_eq!(reply.cost_micros, 195);
    assert!(reply.priced);

    let request = &fake.requests()[0];
    assert_eq!(request.protocol, FakeProtocol::OpenAi);
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {FAKE_API_KEY}").as_str())
    );
    assert!(!request.is_stream());
    assert_eq!(request.body["model"], "gpt-4o-mini");
    assert_eq!(request.body["max_completion_tokens"], 8192);
    assert_eq!(
        request.messages(),
        [
            ("system".into(), "Be brief.".into()),
            ("user".into(), "What is it?".into())
        ]
    );
    // The spec writer's default temperature.
    assert_eq!(request.body["temperature"], 0.5);
}

#[tokio::test]
async fn streamed_deltas_arrive_in_order_and_concatenate_to_the_answer() {
    let (fake, session, _) = openai().await;
    let pieces = ["Hel", "lo, ", "wor", "ld", "! ", "Ünï", "cödé ✓"];
    fake.push(FakeReply::text("").chunks(pieces).usage(10, 7));
    let mut sink = CollectSink::default();
    let reply = session
        .chat_stream(LlmCall::new(AgentRole::Developer).user("Greet."), &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.deltas, pieces);
    assert_eq!(sink.text(), reply.text());
    assert_eq!(reply.text(), pieces.concat());
    assert!(sink.finished);
    assert_eq!(sink.restarts, 0);
    // Usage came from the stream's usage chunk (stream_options.include_usage).
    assert_eq!(reply.response.usage.completion_tokens, 7);
    assert!(!reply.response.usage.estimated);
    let request = &fake.requests()[0];
    assert!(request.is_stream());
    assert_eq!(request.body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn closures_are_sinks() {
    let (fake, session, _) = openai().await;
    fake.push(FakeReply::text("abcdefghijklmnopqrstuvwxyz"));
    let mut seen = String::new();
    let mut sink = |delta: &str| seen.push_str(delta);
    session
        .chat_stream(LlmCall::new(AgentRole::Developer).user("abc"), &mut sink)
        .await
        .unwrap();
    assert_eq!(seen, "abcdefghijklmnopqrstuvwxyz");
}

#[tokio::test]
async fn length_finish_is_reported() {
    let (fake, session, _) = openai().await;
    fake.push(FakeReply::text("cut sho").cut_by_length());
    let reply = session
        .chat(LlmCall::new(AgentRole::Developer).user("x").max_tokens(3))
        .await
        .unwrap();
    assert_eq!(reply.response.finish_reason, FinishReason::Length);
    assert_eq!(fake.requests()[0].body["max_completion_tokens"], 3);
}

#[tokio::test]
async fn missing_stream_usage_is_estimated() {
    let fake = FakeLlm::start().await.unwrap();
    // A compatible server that was not asked for usage reports none.
    let provider = std::sync::Arc::new(
        samokoder_core::llm::OpenAiProvider::new("vllm", &fake.openai_base_url(), None)
            .unwrap()
            .with_options(samokoder_core::llm::OpenAiOptions {
                stream_usage: false,
                ..samokoder_core::llm::OpenAiOptions::compatible()
            }),
    );
    let (builder, _) = session_for(provider, "qwen2.5-coder");
    let session = builder.build();
    fake.push(FakeReply::text("x".repeat(70)));
    let mut sink = CollectSink::default();
    let reply = session
        .chat_stream(LlmCall::new(AgentRole::Developer).user("go"), &mut sink)
        .await
        .unwrap();
    assert!(reply.response.usage.estimated);
    // 70 characters / 3.5 = 20 tokens.
    assert_eq!(reply.response.usage.completion_tokens, 20);
    let request = &fake.requests()[0];
    assert!(request.body.get("stream_options").is_none());
    assert_eq!(request.body["max_tokens"], 4096);
    assert!(request.header("authorization").is_none());
}

#[tokio::test]
async fn azure_sends_deployment_path_api_version_and_api_key_header() {
    let fake = FakeLlm::start().await.unwrap();
    let (builder, _) = session_for(fake.azure_provider("azure", "2024-10-21"), "gpt-4o");
    let session = builder.build();
    fake.push(FakeReply::text("hi from azure"));
    let mut sink = CollectSink::default();
    let reply = session
        .chat_stream(LlmCall::new(AgentRole::Architect).user("hi"), &mut sink)
        .await
        .unwrap();
    assert_eq!(reply.text(), "hi from azure");
    let request = &fake.requests()[0];
    assert_eq!(
        request.protocol,
        FakeProtocol::Azure {
            deployment: "gpt-4o".into()
        }
    );
    assert_eq!(
        request.uri,
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(request.header("api-key"), Some(FAKE_API_KEY));
    assert!(request.header("authorization").is_none());
}

#[tokio::test]
async fn extra_headers_reach_the_provider() {
    let fake = FakeLlm::start().await.unwrap();
    let provider =
        samokoder_core::llm::OpenAiProvider::new("openrouter", &fake.openai_base_url(), None)
            .unwrap()
            .with_header("HTTP-Referer", "https://samokoder.example")
            .unwrap()
            .with_header("X-Title", "Samokoder")
            .unwrap();
    let (builder, _) = session_for(std::sync::Arc::new(provider), "openai/gpt-4o");
    fake.push(FakeReply::text("ok"));
    builder
        .build()
        .chat(LlmCall::new(AgentRole::Developer).user("x"))
        .await
        .unwrap();
    let request = &fake.requests()[0];
    assert_eq!(
        request.header("http-referer"),
        Some("https://samokoder.example")
    );
    assert_eq!(request.header("x-title"), Some("Samokoder"));
}
