//! The engine's persistence port with LLM usage counted into the server's metrics on the way.
//!
//! Every request the engine makes is recorded through [`RunStore::record_llm`] exactly once,
//! so counting there gives the tokens and cost of every run without touching the engine.

use std::collections::BTreeMap;

use async_trait::async_trait;
use samokoder_core::llm::{ChatResponse, LlmRecord, RecordOutcome};
use samokoder_core::state::{
    Checkpoint, CommandRecord, NewCheckpoint, QuestionRecord, QuestionSpec, RunInfo, RunStatus,
    RunStore, RunStoreResult, StoredEvent,
};
use serde_json::Value;
use uuid::Uuid;

use crate::observability::metrics;

/// A [`RunStore`] that counts LLM usage into `llm_tokens_total` and `llm_cost_micros_total`.
pub(crate) struct MeteredRunStore<S> {
    inner: S,
}

impl<S> MeteredRunStore<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl<S: RunStore> RunStore for MeteredRunStore<S> {
    async fn run(&self, run_id: Uuid) -> RunStoreResult<RunInfo> {
        self.inner.run(run_id).await
    }

    async fn transition(
        &self,
        run_id: Uuid,
        from: &[RunStatus],
        to: RunStatus,
        error: Option<&str>,
    ) -> RunStoreResult<RunInfo> {
        self.inner.transition(run_id, from, to, error).await
    }

    async fn set_current_agent(&self, run_id: Uuid, agent: Option<&str>) -> RunStoreResult<()> {
        self.inner.set_current_agent(run_id, agent).await
    }

    async fn add_totals(
        &self,
        run_id: Uuid,
        tokens: i64,
        cost_micros: i64,
        llm_calls: i64,
    ) -> RunStoreResult<()> {
        self.inner
            .add_totals(run_id, tokens, cost_micros, llm_calls)
            .await
    }

    async fn head(&self, project_id: Uuid) -> RunStoreResult<Option<Checkpoint>> {
        self.inner.head(project_id).await
    }

    async fn checkpoint(&self, id: Uuid) -> RunStoreResult<Checkpoint> {
        self.inner.checkpoint(id).await
    }

    async fn commit(&self, checkpoint: NewCheckpoint) -> RunStoreResult<Checkpoint> {
        self.inner.commit(checkpoint).await
    }

    async fn files(&self, checkpoint_id: Uuid) -> RunStoreResult<BTreeMap<String, String>> {
        self.inner.files(checkpoint_id).await
    }

    async fn blob(&self, hash: &str) -> RunStoreResult<Vec<u8>> {
        self.inner.blob(hash).await
    }

    async fn append_event(&self, run_id: Uuid, kind: &str, payload: &Value) -> RunStoreResult<i64> {
        self.inner.append_event(run_id, kind, payload).await
    }

    async fn last_event_seq(&self, run_id: Uuid) -> RunStoreResult<i64> {
        self.inner.last_event_seq(run_id).await
    }

    async fn events_after(
        &self,
        run_id: Uuid,
        after: i64,
        limit: u32,
    ) -> RunStoreResult<Vec<StoredEvent>> {
        self.inner.events_after(run_id, after, limit).await
    }

    async fn ask(&self, run_id: Uuid, question: &QuestionSpec) -> RunStoreResult<QuestionRecord> {
        self.inner.ask(run_id, question).await
    }

    async fn question(&self, id: Uuid) -> RunStoreResult<QuestionRecord> {
        self.inner.question(id).await
    }

    async fn answer(&self, id: Uuid, answer: &str) -> RunStoreResult<QuestionRecord> {
        self.inner.answer(id, answer).await
    }

    async fn record_llm(
        &self,
        run_id: Uuid,
        step_key: &str,
        record: &LlmRecord,
    ) -> RunStoreResult<()> {
        self.inner.record_llm(run_id, step_key, record).await?;
        // A replayed answer was paid for when it was first asked.
        if record.outcome != RecordOutcome::Replayed {
            metrics::record_llm_usage(
                &record.provider,
                record.usage.prompt_tokens,
                record.usage.completion_tokens,
                u64::try_from(record.cost_micros).unwrap_or(0),
            );
        }
        Ok(())
    }

    async fn find_llm(
        &self,
        run_id: Uuid,
        step_key: &str,
        request_hash: &str,
    ) -> RunStoreResult<Option<ChatResponse>> {
        self.inner.find_llm(run_id, step_key, request_hash).await
    }

    async fn record_command(&self, run_id: Uuid, command: &CommandRecord) -> RunStoreResult<()> {
        self.inner.record_command(run_id, command).await
    }
}
