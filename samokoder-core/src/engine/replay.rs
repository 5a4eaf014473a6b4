//! The LLM log as a replay cache, scoped to one step of one run.
//!
//! Every request of a step is recorded under (run, step key); before sending, the session
//! looks the request up under the same key. A step redone after a crash therefore gets the
//! answers its earlier attempt already paid for, and nothing of another run or step can leak
//! in. In [`ReplayMode::Replay`] every provider is replaced by one that refuses to send, so a
//! recorded run replays offline and any request not in the log fails the run.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::llm::{
    Capabilities, ChatRequest, ChatResponse, ChatStream, LlmError, LlmRecord, LlmRecorder,
    Provider, ProviderHandle, ReplayCache, Route, RouteTable,
};
use crate::state::RunStore;

/// Whether requests may reach providers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplayMode {
    /// Normal: answers come from the log when the same step already has them, otherwise from
    /// the provider.
    #[default]
    Live,
    /// Offline: answers come only from the log of run `from` (the run itself when `None`); a
    /// request that is not there fails the run. For regression tests of recorded runs.
    Replay {
        /// The recorded run whose log answers.
        from: Option<Uuid>,
    },
}

/// The record and lookup side of one step.
pub(crate) struct StepLog {
    pub(crate) store: Arc<dyn RunStore>,
    pub(crate) run_id: Uuid,
    /// Whose log answers lookups (the run itself, or a recorded run in replay mode).
    pub(crate) source_run: Uuid,
    pub(crate) step_key: String,
}

#[async_trait]
impl LlmRecorder for StepLog {
    async fn record(&self, record: LlmRecord) {
        if let Err(e) = self
            .store
            .record_llm(self.run_id, &self.step_key, &record)
            .await
        {
            // Losing a record costs a re-sent request on resume at worst; failing the request
            // for it would cost more.
            tracing::warn!(run_id = %self.run_id, step = %self.step_key, error = %e, "could not store an LLM record");
        }
    }
}

#[async_trait]
impl ReplayCache for StepLog {
    async fn lookup(&self, request_hash: &str) -> Option<ChatResponse> {
        match self
            .store
            .find_llm(self.source_run, &self.step_key, request_hash)
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(run_id = %self.run_id, error = %e, "replay lookup failed; sending the request");
                None
            }
        }
    }
}

/// A provider that keeps the name and capabilities of the real one (so request hashes are the
/// recorded ones) but never sends.
struct ReplayOnly {
    inner: Arc<dyn Provider>,
}

#[async_trait]
impl Provider for ReplayOnly {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self, model: &str) -> Capabilities {
        self.inner.capabilities(model)
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        Err(LlmError::Config(format!(
            "replay mode: no recorded answer for a request to {} ({} messages); the run \
             diverged from its recording",
            request.model,
            request.messages.len()
        )))
    }
}

fn replay_only(route: &Route) -> Route {
    let provider: Arc<dyn Provider> = Arc::new(ReplayOnly {
        inner: route.provider.provider().clone(),
    });
    Route {
        provider: ProviderHandle::new(provider, route.provider.max_concurrency()),
        ..route.clone()
    }
}

/// `routes` with every provider replaced by a refusing one of the same name.
pub(crate) fn replay_only_routes(routes: &RouteTable) -> RouteTable {
    let mut table = RouteTable::new(replay_only(routes.default_route()));
    for role in crate::llm::AgentRole::ALL {
        table = table.with(role, replay_only(routes.route(role)));
    }
    table
}
