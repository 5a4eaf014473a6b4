//! Every request leaves a record; the records double as a replay cache.

use std::sync::Arc;

use samokoder_core::llm::fake::{FakeLlm, FakeReply};
use samokoder_core::llm::{
    AgentRole, Budget, CollectSink, LlmCall, MemoryRecorder, RecordOutcome, request_hash,
};
use uuid::Uuid;

use super::support::session_for;

#[tokio::test]
async fn each_attempt_is_recorded_with_usage_cost_and_bodies() {
    let fake = FakeLlm::start().await.unwrap();
    let recorder = Arc::new(MemoryRecorder::new());
    let run_id = Uuid::now_v7();
    let (builder, _) = session_for(fake.openai_provider("openai"), "gpt-4o");
    let session = builder.recorder(recorder.clone()).run_id(run_id).build();
    fake.push(FakeReply::rate_limited().header("retry-after-ms", "20"))
        .push(
            FakeReply::text("")
                .chunks(["Hello", " there"])
                .usage(400, 2),
        );

    let mut sink = CollectSink::default();
    let call = LlmCall::new(AgentRole::Architect)
        .system("Plan.")
        .user("A todo app.")
        .label("step-3");
    let reply = session.chat_stream(call, &mut sink).await.unwrap();

    let records = recorder.records();
    assert_eq!(records.len(), 2);
    let (failed, ok) = (&records[0], &records[1]);
    assert_eq!(failed.attempt, 0);
    assert!(
        matches!(&failed.outcome, RecordOutcome::Error { code, .. } if code == "llm_rate_limited")
    );
    assert_eq!(failed.cost_micros, 0);
    assert!(failed.response.is_none());

    assert_eq!(ok.attempt, 1);
    assert_eq!(ok.outcome, RecordOutcome::Ok);
    assert_eq!(
        (ok.run_id, ok.label.as_deref()),
        (Some(run_id), Some("step-3"))
    );
    assert_eq!(
        (ok.provider.as_str(), ok.model.as_str(), ok.role),
        ("openai", "gpt-4o", AgentRole::Architect)
    );
    assert_eq!(ok.usage.prompt_tokens, 400);
    // gpt-4o: 400 × $2.50/M + 2 × $10/M = 1000 + 20 µ$.
    assert_eq!((ok.cost_micros, ok.priced), (1_020, true));
    assert_eq!(ok.cost_micros, reply.cost_micros);
    assert_eq!(ok.prompt_chars, "Plan.A todo app.".len() as u64);
    assert_eq!(ok.response_chars, "Hello there".len() as u64);
    assert!(ok.first_token_ms.is_some());
    assert_eq!(ok.request.messages.len(), 2);
    assert_eq!(ok.response.as_ref().unwrap().text, "Hello there");
    // Both attempts carry the same hash: the hash of what was sent.
    assert_eq!(failed.request_hash, ok.request_hash);
    assert_eq!(ok.request_hash, request_hash("openai", &ok.request));
    assert_eq!(ok.request_hash, reply.request_hash);
    // Records serialise for the store.
    let json = serde_json::to_value(ok).unwrap();
    assert_eq!(json["outcome"]["status"], "ok");
    assert_eq!(json["role"], "architect");
}

#[tokio::test]
async fn a_recorded_answer_is_replayed_without_sending_or_charging() {
    let fake = FakeLlm::start().await.unwrap();
    let recorder = Arc::new(MemoryRecorder::new());
    let budget = Budget::default();
    let (builder, _) = session_for(fake.openai_provider("openai"), "gpt-4o");
    let session = builder
        .recorder(recorder.clone())
        .replay(recorder.clone())
        .budget(budget.clone())
        .build();
    fake.push(FakeReply::text("the plan").usage(100, 10));

    let call = || LlmCall::new(AgentRole::TechLead).user("Plan it.");
    let first = session.chat(call()).await.unwrap();
    let again = session.chat(call()).await.unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(again.text(), "the plan");
    assert_eq!(again.cost_micros, 0);
    assert_eq!(fake.request_count(), 1);
    assert_eq!(budget.snapshot().used.calls, 1);
    assert_eq!(recorder.records()[1].outcome, RecordOutcome::Replayed);

    // A different conversation is a different request.
    fake.push(FakeReply::text("other"));
    let other = session
        .chat(LlmCall::new(AgentRole::TechLead).user("Plan it differently."))
        .await
        .unwrap();
    assert!(!other.replayed);
    assert_eq!(fake.request_count(), 2);
    assert_eq!(recorder.total_cost(), first.cost_micros + other.cost_micros);
}
