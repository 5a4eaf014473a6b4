//! Shared helpers: a session over the fake with a fast retry policy, and an event collector.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use samokoder_core::llm::fake::FakeLlm;
use samokoder_core::llm::{
    LlmEvent, LlmEventSink, LlmSession, LlmSessionBuilder, Provider, ProviderHandle, RetryPolicy,
    Route, RouteTable,
};

/// Backoff steps of milliseconds so tests stay fast; provider-requested waits still apply in
/// full (the policy never shortens them).
pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        idle_timeout: Duration::from_secs(5),
        request_deadline: Duration::from_secs(30),
        ..RetryPolicy::default()
    }
}

/// Events the session emitted.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<LlmEvent>>>);

impl Events {
    pub fn all(&self) -> Vec<LlmEvent> {
        self.0.lock().unwrap().clone()
    }

    pub fn sink(&self) -> Arc<dyn LlmEventSink> {
        let events = self.0.clone();
        Arc::new(move |e: LlmEvent| events.lock().unwrap().push(e))
    }
}

/// A session whose every role goes to `model` on `provider`, with the fast policy and an event
/// collector.
pub fn session_for(provider: Arc<dyn Provider>, model: &str) -> (LlmSessionBuilder, Events) {
    let events = Events::default();
    let routes = RouteTable::new(Route::new(ProviderHandle::new(provider, 4), model));
    let builder = LlmSession::builder(routes)
        .policy(fast_policy())
        .events(events.sink());
    (builder, events)
}

/// A fake and an OpenAI session over it.
pub async fn openai() -> (FakeLlm, LlmSession, Events) {
    let fake = FakeLlm::start().await.unwrap();
    let (builder, events) = session_for(fake.openai_provider("openai"), "gpt-4o-mini");
    (fake, builder.build(), events)
}

/// A fake and an Anthropic session over it.
pub async fn anthropic() -> (FakeLlm, LlmSession, Events) {
    let fake = FakeLlm::start().await.unwrap();
    let (builder, events) = session_for(fake.anthropic_provider("anthropic"), "claude-sonnet-4-5");
    (fake, builder.build(), events)
}

/// The gap between the arrivals of two requests at the fake.
pub fn gap(fake: &FakeLlm, first: usize, second: usize) -> Duration {
    let requests = fake.requests();
    requests[second]
        .received_at
        .duration_since(requests[first].received_at)
}
