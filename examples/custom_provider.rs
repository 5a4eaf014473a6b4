//! An embedder's own model backend, plugged into Samokoder's LLM layer.
//!
//! `RuleBot` is not a language model: it writes commit messages by rule from the list of changed
//! files in the prompt, and it is flaky on purpose (its first request fails). Everything around
//! it is the real layer: routing by agent role, token counting, the retry policy (the failure is
//! retried after a backoff, and reported as an event), streaming to a sink, prices, a per-run
//! budget that stops the run cleanly, and a record of every request.
//!
//! Run with `cargo run --example custom_provider`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use samokoder_core::llm::{
    AgentRole, Budget, BudgetLimits, Capabilities, ChatRequest, ChatResponse, ChatStream,
    FinishReason, LlmCall, LlmError, LlmEvent, LlmSession, MemoryRecorder, ModelPrice, PriceTable,
    Provider, ProviderHandle, RecordOutcome, RetryPolicy, Role, Route, RouteTable, StreamEvent,
    TransientKind, Usage, async_trait, estimate_tokens, format_usd,
};

/// Writes "Update a, b and c" for a prompt that lists changed files.
struct RuleBot {
    requests: AtomicUsize,
}

impl RuleBot {
    fn answer(request: &ChatRequest) -> String {
        let prompt = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
            .unwrap_or_default();
        let files: Vec<&str> = prompt
            .split_once("Changed files:")
            .map(|(_, list)| {
                list.split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        match files.as_slice() {
            [] => "Tidy up".to_owned(),
            [one] => format!("Update {one}"),
            [rest @ .., last] => format!("Update {} and {last}", rest.join(", ")),
        }
    }
}

#[async_trait]
impl Provider for RuleBot {
    fn name(&self) -> &str {
        "rulebot"
    }

    fn capabilities(&self, _model: &str) -> Capabilities {
        // No native structured output; token counts use the layer's documented estimate.
        Capabilities::default()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        if self.requests.fetch_add(1, Ordering::SeqCst) == 0 {
            // Errors in the layer's taxonomy decide what happens next: this one is retried.
            return Err(LlmError::Transient {
                provider: self.name().to_owned(),
                kind: TransientKind::Server,
                retry_after: None,
                message: "warming up".into(),
            });
        }
        let text = Self::answer(request);
        let usage = Usage {
            prompt_tokens: request
                .messages
                .iter()
                .map(|m| estimate_tokens(&m.content))
                .sum(),
            completion_tokens: estimate_tokens(&text),
            ..Usage::default()
        };
        let done = ChatResponse {
            text: text.clone(),
            usage,
            finish_reason: FinishReason::Stop,
            model: request.model.clone(),
            provider_id: None,
        };
        // Stream word by word when asked to; the final event carries the whole answer.
        let mut events: Vec<Result<StreamEvent, LlmError>> = Vec::new();
        if request.stream {
            for word in text.split_inclusive(' ') {
                events.push(Ok(StreamEvent::Delta(word.to_owned())));
            }
        }
        events.push(Ok(StreamEvent::Done(done)));
        Ok(futures::stream::iter(events).boxed())
    }
}

fn commit_call(files: &str) -> LlmCall {
    LlmCall::new(AgentRole::TaskCompleter)
        .system("You write one-line commit messages.")
        .user(format!("Changed files: {files}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), LlmError> {
    let bot = Arc::new(RuleBot {
        requests: AtomicUsize::new(0),
    });
    // The commit writer goes to RuleBot; every other role would too (there is only one route).
    let routes = RouteTable::new(Route::new(ProviderHandle::new(bot, 2), "rules-v1"));

    // RuleBot charges $1 per million input tokens and $2 per million output tokens.
    let mut prices = PriceTable::with_defaults();
    prices.insert(Some("rulebot"), "rules-", ModelPrice::usd("1", "2", None));

    let recorder = Arc::new(MemoryRecorder::new());
    let budget = Budget::new(BudgetLimits::unlimited().with_calls(3).with_tokens(10_000));
    let session = LlmSession::builder(routes)
        .prices(Arc::new(prices))
        .budget(budget.clone())
        .recorder(recorder.clone())
        .policy(RetryPolicy {
            base_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        })
        .events(Arc::new(|event: LlmEvent| {
            println!(
                "  event: {}",
                serde_json::to_string(&event).unwrap_or_default()
            );
        }))
        .build();

    println!("one answer:");
    let reply = session.chat(commit_call("src/main.rs, README.md")).await?;
    println!(
        "  {:?} after {} retry, cost {}",
        reply.text(),
        reply.transport_retries,
        format_usd(reply.cost_micros)
    );

    println!("streamed:");
    let mut sink = |delta: &str| println!("  delta {delta:?}");
    let reply = session
        .chat_stream(
            commit_call("Cargo.toml, src/lib.rs, tests/api.rs"),
            &mut sink,
        )
        .await?;
    println!("  final {:?}", reply.text());

    println!("until the budget stops us:");
    loop {
        match session.chat(commit_call("docs/guide.md")).await {
            Ok(reply) => println!("  {:?}", reply.text()),
            Err(LlmError::BudgetExhausted(exhausted)) => {
                println!("  stopped cleanly: {exhausted}");
                break;
            }
            Err(other) => return Err(other),
        }
    }

    println!("raised, continued:");
    budget.raise(BudgetLimits::unlimited().with_calls(4).with_tokens(10_000));
    println!(
        "  {:?}",
        session.chat(commit_call("CHANGELOG.md")).await?.text()
    );

    let state = budget.snapshot();
    let usage = recorder.total_usage();
    println!("usage and budget:");
    println!("  requests recorded: {}", recorder.records().len());
    for record in recorder.records() {
        let outcome = match &record.outcome {
            RecordOutcome::Ok => "ok".to_owned(),
            RecordOutcome::Replayed => "replayed".to_owned(),
            RecordOutcome::Error { code, .. } => code.clone(),
        };
        println!(
            "    {} {} attempt {} -> {outcome}: {} + {} tokens, {}",
            record.provider,
            record.model,
            record.attempt,
            record.usage.prompt_tokens,
            record.usage.completion_tokens,
            format_usd(record.cost_micros),
        );
    }
    println!(
        "  tokens: {} prompt + {} completion",
        usage.prompt_tokens, usage.completion_tokens
    );
    println!("  cost:   {}", format_usd(recorder.total_cost()));
    println!(
        "  budget: {} of {:?} calls, {} of {:?} tokens, {} spent",
        state.used.calls,
        state.limits.calls,
        state.used.tokens,
        state.limits.tokens,
        format_usd(state.used.cost_micros)
    );
    println!(
        "  checkpoint: {}",
        serde_json::to_string(&state).unwrap_or_default()
    );
    Ok(())
}
