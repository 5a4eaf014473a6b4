//! Structured output: native where supported, in the prompt otherwise, re-asked on failure.

use samokoder_core::llm::fake::{FakeLlm, FakeReply};
use samokoder_core::llm::{AgentRole, CollectSink, LlmCall, LlmError, LlmEvent, RetryPolicy};
use schemars::JsonSchema;
use serde::Deserialize;

use super::support::{anthropic, fast_policy, openai, session_for};

/// What a tech lead might return.
#[derive(Debug, Deserialize, JsonSchema, PartialEq)]
struct Plan {
    /// The epics, in order.
    epics: Vec<Epic>,
    /// Anything the developer must know.
    note: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema, PartialEq)]
struct Epic {
    title: String,
    tasks: u32,
}

fn plan_json() -> serde_json::Value {
    serde_json::json!({"epics": [{"title": "Auth", "tasks": 3}, {"title": "Sync", "tasks": 2}], "note": null})
}

fn call() -> LlmCall {
    LlmCall::new(AgentRole::TechLead)
        .system("You plan.")
        .user("Plan a todo app.")
}

#[tokio::test]
async fn openai_gets_a_strict_json_schema() {
    let (fake, session, _) = openai().await;
    fake.push(FakeReply::json(&plan_json()));
    let plan = session.structured::<Plan>(call()).await.unwrap();
    assert_eq!(
        plan.value.epics[0],
        Epic {
            title: "Auth".into(),
            tasks: 3
        }
    );
    assert_eq!(plan.parse_retries, 0);

    let body = &fake.requests()[0].body;
    let format = &body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "Plan");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_eq!(
        format["json_schema"]["schema"]["additionalProperties"],
        false
    );
    assert_eq!(
        format["json_schema"]["schema"]["required"],
        serde_json::json!(["epics", "note"])
    );
    // Native: the schema is not repeated in the prompt.
    assert!(!fake.requests()[0].all_text().contains("JSON Schema"));
}

#[tokio::test]
async fn a_schema_violation_is_re_asked_with_the_error() {
    let (fake, session, events) = openai().await;
    // Valid JSON, wrong shape: `tasks` is a string.
    let bad = r#"{"epics": [{"title": "Auth", "tasks": "three"}], "note": null}"#;
    fake.push(FakeReply::text(bad))
        .push(FakeReply::json(&plan_json()));
    let plan = session.structured::<Plan>(call()).await.unwrap();
    assert_eq!(plan.parse_retries, 1);
    assert_eq!(plan.value.epics.len(), 2);

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let second = requests[1].messages();
    // The re-ask carries the original conversation, the rejected answer and the error.
    assert_eq!(second[..2], requests[0].messages()[..]);
    assert_eq!(second[2], ("assistant".to_owned(), bad.to_owned()));
    let (role, reask) = &second[3];
    assert_eq!(role, "user");
    assert!(
        reask.contains("invalid type: string \"three\", expected u32"),
        "{reask}"
    );
    assert!(matches!(
        &events.all()[..],
        [LlmEvent::ParseRetry {
            retry: 1,
            max_retries: 2,
            ..
        }]
    ));
}

#[tokio::test]
async fn the_prompt_carries_the_schema_where_there_is_no_native_support() {
    let fake = FakeLlm::start().await.unwrap();
    let (builder, _) = session_for(fake.compatible_provider("ollama"), "qwen2.5-coder");
    let session = builder.build();
    let answer = format!(
        "Sure! Here is the plan:\n```json\n{}\n```\nLet me know.",
        plan_json()
    );
    fake.push(FakeReply::text(answer));
    let plan = session.structured::<Plan>(call()).await.unwrap();
    assert_eq!(plan.value.epics[1].title, "Sync");
    let request = &fake.requests()[0];
    assert!(request.body.get("response_format").is_none());
    let (role, system) = &request.messages()[0];
    assert_eq!(role, "system");
    assert!(
        system.starts_with("You plan.\n\nAnswer with a single JSON value"),
        "{system}"
    );
    assert!(system.contains("\"epics\""));
}

#[tokio::test]
async fn malformed_json_is_re_asked_and_the_limit_holds() {
    let (fake, session, _) = openai().await;
    fake.push(FakeReply::text("{\"epics\": [ {\"title\": \"Auth\", "))
        .push(FakeReply::json(&plan_json()));
    let plan = session.structured::<Plan>(call()).await.unwrap();
    assert_eq!(plan.parse_retries, 1);
    assert!(
        fake.requests()[1]
            .last_user_text()
            .unwrap()
            .contains("no well-formed JSON")
    );

    // Three unusable answers with max_parse_retries = 2: one answer plus two re-asks, then fail.
    fake.push_all((0..3).map(|_| FakeReply::text("I cannot do that.")));
    let err = session.structured::<Plan>(call()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::InvalidOutput { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(fake.request_count(), 2 + 3);
    // Parse retries do not use up transport retries, and vice versa.
    fake.push_all([
        FakeReply::server_error(),
        FakeReply::text("nope"),
        FakeReply::server_error(),
        FakeReply::server_error(),
        FakeReply::json(&plan_json()),
    ]);
    let plan = session.structured::<Plan>(call()).await.unwrap();
    assert_eq!(plan.parse_retries, 1);
    assert_eq!(plan.completion.transport_retries, 2);
}

#[tokio::test]
async fn validators_reject_like_the_schema_does() {
    let (fake, session, _) = openai().await;
    fake.push(FakeReply::json(
        &serde_json::json!({"epics": [], "note": null}),
    ))
    .push(FakeReply::json(&plan_json()));
    let plan = session
        .structured_validated::<Plan, _>(call(), |plan| {
            if plan.epics.is_empty() {
                Err("a plan needs at least one epic".into())
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
    assert_eq!(plan.value.epics.len(), 2);
    assert!(
        fake.requests()[1]
            .last_user_text()
            .unwrap()
            .contains("a plan needs at least one epic")
    );
}

#[tokio::test]
async fn anthropic_answers_through_a_forced_tool() {
    let (fake, session, _) = anthropic().await;
    fake.push(FakeReply::json(&plan_json()));
    let plan = session.structured::<Plan>(call()).await.unwrap();
    assert_eq!(plan.value.epics.len(), 2);
    let body = &fake.requests()[0].body;
    assert_eq!(
        body["tool_choice"],
        serde_json::json!({"type": "tool", "name": "Plan"})
    );
    assert_eq!(body["tools"][0]["name"], "Plan");
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(body["system"], "You plan.");

    // Streamed: the tool input arrives as JSON deltas.
    fake.push(FakeReply::json(&plan_json()));
    let mut sink = CollectSink::default();
    let plan = session
        .structured_stream::<Plan>(call(), &mut sink)
        .await
        .unwrap();
    assert_eq!(plan.value.epics[0].tasks, 3);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&sink.text()).unwrap(),
        plan_json()
    );
}

#[tokio::test]
async fn a_stricter_parse_limit_is_respected() {
    let fake = FakeLlm::start().await.unwrap();
    let (builder, _) = session_for(fake.openai_provider("openai"), "gpt-4o");
    let session = builder
        .policy(RetryPolicy {
            max_parse_retries: 0,
            ..fast_policy()
        })
        .build();
    fake.push(FakeReply::text("{}"));
    let err = session.structured::<Plan>(call()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::InvalidOutput { attempts: 1, last_error } if last_error.contains("missing field `epics`"))
    );
    assert_eq!(fake.request_count(), 1);
}
