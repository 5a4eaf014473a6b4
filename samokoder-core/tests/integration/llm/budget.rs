//! Budgets and the context window: refusals happen before anything is sent.

use samokoder_core::llm::fake::{FakeLlm, FakeReply};
use samokoder_core::llm::{
    AgentRole, Budget, BudgetLimits, BudgetResource, LlmCall, LlmError, LlmEvent, Message,
    ModelLimits, ProviderHandle, Route, RouteTable,
};

use super::support::{fast_policy, openai, session_for};

#[tokio::test]
async fn crossing_the_token_budget_stops_the_next_call_until_raised() {
    let fake = FakeLlm::start().await.unwrap();
    let (builder, _) = session_for(fake.openai_provider("openai"), "gpt-4o-mini");
    let budget = Budget::new(BudgetLimits::unlimited().with_tokens(1_500));
    let session = builder.budget(budget.clone()).build();
    fake.respond_with(|_| FakeReply::text("done").usage(900, 100));

    session
        .chat(LlmCall::new(AgentRole::Developer).user("one"))
        .await
        .unwrap();
    // 1000 used of 1500: the second call is admitted and crosses the limit; its answer is kept.
    let second = session
        .chat(LlmCall::new(AgentRole::Developer).user("two"))
        .await
        .unwrap();
    assert_eq!(second.text(), "done");
    let err = session
        .chat(LlmCall::new(AgentRole::Developer).user("three"))
        .await
        .unwrap_err();
    let LlmError::BudgetExhausted(exhausted) = err else {
        panic!("{err:?}")
    };
    assert_eq!(exhausted.resource, BudgetResource::Tokens);
    assert_eq!((exhausted.used, exhausted.limit), (2_000, 1_500));
    assert_eq!(fake.request_count(), 2);
    assert_eq!(budget.exhausted(), Some(exhausted));

    // The state a checkpoint stores, restored into a new session with a raised limit.
    let state = budget.snapshot();
    assert_eq!((state.used.tokens, state.used.calls), (2_000, 2));
    let restored =
        Budget::restore(serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap());
    restored.raise(BudgetLimits::unlimited().with_tokens(5_000));
    let (builder, _) = session_for(fake.openai_provider("openai"), "gpt-4o-mini");
    let resumed = builder.budget(restored.clone()).build();
    resumed
        .chat(LlmCall::new(AgentRole::Developer).user("three"))
        .await
        .unwrap();
    assert_eq!(restored.snapshot().used.tokens, 3_000);
}

#[tokio::test]
async fn cost_and_call_budgets() {
    let fake = FakeLlm::start().await.unwrap();
    let (builder, _) = session_for(fake.openai_provider("openai"), "gpt-4o");
    // gpt-4o: 1000 prompt + 1000 completion tokens = 2500 + 10000 µ$.
    let budget = Budget::new(
        BudgetLimits::unlimited()
            .with_cost_micros(20_000)
            .with_calls(10),
    );
    let session = builder.budget(budget.clone()).build();
    fake.respond_with(|_| FakeReply::text("x").usage(1_000, 1_000));
    session
        .chat(LlmCall::new(AgentRole::Developer).user("a"))
        .await
        .unwrap();
    session
        .chat(LlmCall::new(AgentRole::Developer).user("b"))
        .await
        .unwrap();
    let err = session
        .chat(LlmCall::new(AgentRole::Developer).user("c"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::BudgetExhausted(e) if e.resource == BudgetResource::Cost && e.used == 25_000)
    );
    assert_eq!(err.code(), "budget_exhausted");

    budget.raise(BudgetLimits::unlimited().with_calls(3));
    session
        .chat(LlmCall::new(AgentRole::Developer).user("c"))
        .await
        .unwrap();
    let err = session
        .chat(LlmCall::new(AgentRole::Developer).user("d"))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::BudgetExhausted(e) if e.resource == BudgetResource::Calls));
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn an_oversized_prompt_is_refused_before_any_request() {
    let (fake, session, _) = openai().await;
    // gpt-4o-mini: 128k context, 8192 of them reserved for the answer.
    let huge = "lorem ipsum dolor sit amet ".repeat(25_000);
    let err = session
        .chat(LlmCall::new(AgentRole::Developer).user(huge))
        .await
        .unwrap_err();
    let LlmError::ContextOverflow {
        prompt_tokens,
        context_window,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        prompt_tokens.unwrap() + 8_192 > 128_000,
        "{prompt_tokens:?}"
    );
    assert_eq!(*context_window, Some(128_000));
    assert_eq!(fake.request_count(), 0);
    // Nothing was charged either.
    assert_eq!(session.budget().snapshot().used.calls, 0);
}

#[tokio::test]
async fn history_is_trimmed_when_allowed() {
    let fake = FakeLlm::start().await.unwrap();
    let route = Route::new(
        ProviderHandle::new(fake.openai_provider("local"), 2),
        "small-model",
    )
    .limits(ModelLimits {
        context_window: 1_000,
        max_output_tokens: 200,
    });
    let events = super::support::Events::default();
    let session = samokoder_core::llm::LlmSession::builder(RouteTable::new(route))
        .policy(fast_policy())
        .events(events.sink())
        .build();
    fake.respond_with(|_| FakeReply::text("ok"));
    let history: Vec<Message> = (0..10)
        .flat_map(|i| {
            [
                Message::user(format!("question {i} {}", "q".repeat(700))),
                Message::assistant("a".repeat(700)),
            ]
        })
        .collect();
    let call = LlmCall::new(AgentRole::Developer)
        .system("sys")
        .user("THE TASK")
        .messages(history)
        .user("THE QUESTION");

    // Refused without permission to trim...
    assert!(matches!(
        session.chat(call.clone()).await,
        Err(LlmError::ContextOverflow { .. })
    ));
    assert_eq!(fake.request_count(), 0);

    // ...trimmed with it: the oldest history goes, the task and the question stay.
    let reply = session.chat(call.allow_trim(true)).await.unwrap();
    assert!(reply.trimmed_messages > 0);
    let sent = fake.requests()[0].messages();
    assert_eq!(sent[0], ("system".into(), "sys".into()));
    assert_eq!(sent[1], ("user".into(), "THE TASK".into()));
    assert_eq!(
        sent.last().unwrap(),
        &("user".to_owned(), "THE QUESTION".to_owned())
    );
    assert!(sent.len() < 23);
    assert_eq!(sent.len() + reply.trimmed_messages, 23);
    assert!(matches!(
        events.all().as_slice(),
        [LlmEvent::ContextTrimmed { dropped_messages, .. }] if *dropped_messages == reply.trimmed_messages
    ));
}
