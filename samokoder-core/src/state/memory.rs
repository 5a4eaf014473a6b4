//! [`MemoryRunStore`]: the [`RunStore`] port in memory, for tests, examples and embedders that
//! keep nothing between processes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use super::port::{
    Checkpoint, CommandRecord, FileChange, NewCheckpoint, QuestionRecord, QuestionSpec, RunInfo,
    RunOptions, RunStatus, RunStore, RunStoreError, RunStoreResult, StoredEvent, blob_hash,
};
use crate::llm::{BudgetLimits, ChatResponse, LlmRecord, RecordOutcome};

use super::port::Autonomy;

#[derive(Default)]
struct Inner {
    runs: HashMap<Uuid, RunInfo>,
    totals: HashMap<Uuid, (i64, i64, i64)>,
    agents: HashMap<Uuid, Option<String>>,
    heads: HashMap<Uuid, Uuid>,
    checkpoints: HashMap<Uuid, Checkpoint>,
    /// Per checkpoint: the full tree (path → hash). Memory is cheap here; the SQL stores keep
    /// only each state's changes.
    trees: HashMap<Uuid, BTreeMap<String, String>>,
    blobs: HashMap<String, Vec<u8>>,
    events: HashMap<Uuid, Vec<StoredEvent>>,
    questions: Vec<QuestionRecord>,
    llm: Vec<(Uuid, String, LlmRecord)>,
    commands: Vec<(Uuid, CommandRecord)>,
}

/// The [`RunStore`] in memory. Cheap to share behind an `Arc`; all methods are atomic under one
/// lock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use samokoder_core::llm::BudgetLimits;
/// use samokoder_core::state::{Autonomy, MemoryRunStore, RunStatus, RunStore};
///
/// let store = MemoryRunStore::new();
/// let run = store.create_run("A todo app", Autonomy::Auto, BudgetLimits::unlimited());
/// assert_eq!(store.run(run.id).await.unwrap().status, RunStatus::Queued);
/// assert!(store.head(run.project_id).await.unwrap().is_none());
/// # }
/// ```
#[derive(Default)]
pub struct MemoryRunStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryRunStore")
            .field("runs", &inner.runs.len())
            .field("checkpoints", &inner.checkpoints.len())
            .finish_non_exhaustive()
    }
}

impl MemoryRunStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every method finishes its update before releasing the lock, so a panic elsewhere
        // cannot leave the data half-changed: a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a queued run in a new project.
    pub fn create_run(
        &self,
        description: impl Into<String>,
        autonomy: Autonomy,
        budget: BudgetLimits,
    ) -> RunInfo {
        self.create_run_in(Uuid::now_v7(), description, autonomy, budget)
    }

    /// Creates a queued run in `project_id` (a follow-up run continues the project's files).
    pub fn create_run_in(
        &self,
        project_id: Uuid,
        description: impl Into<String>,
        autonomy: Autonomy,
        budget: BudgetLimits,
    ) -> RunInfo {
        let run = RunInfo {
            id: Uuid::now_v7(),
            project_id,
            description: description.into(),
            autonomy,
            budget,
            status: RunStatus::Queued,
            error: None,
            options: RunOptions::default(),
        };
        self.lock().runs.insert(run.id, run.clone());
        run
    }

    /// Replaces a run's options (the template and model choices it was started with).
    pub fn set_options(&self, run_id: Uuid, options: RunOptions) {
        if let Some(run) = self.lock().runs.get_mut(&run_id) {
            run.options = options;
        }
    }

    /// The run's totals so far: (tokens, cost in micro-dollars, LLM calls).
    pub fn totals(&self, run_id: Uuid) -> (i64, i64, i64) {
        self.lock().totals.get(&run_id).copied().unwrap_or_default()
    }

    /// Every LLM record of a run, in order, with its step key.
    pub fn llm_records(&self, run_id: Uuid) -> Vec<(String, LlmRecord)> {
        self.lock()
            .llm
            .iter()
            .filter(|(run, _, _)| *run == run_id)
            .map(|(_, step, record)| (step.clone(), record.clone()))
            .collect()
    }

    /// Every command of a run, in order.
    pub fn commands(&self, run_id: Uuid) -> Vec<CommandRecord> {
        self.lock()
            .commands
            .iter()
            .filter(|(run, _)| *run == run_id)
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// Copies every LLM record of `from` to `to` (keeping step keys): what a replay of a
    /// recorded run under a new run id needs.
    pub fn copy_llm_log(&self, from: Uuid, to: Uuid) {
        let mut inner = self.lock();
        let copied: Vec<_> = inner
            .llm
            .iter()
            .filter(|(run, _, _)| *run == from)
            .map(|(_, step, record)| (to, step.clone(), record.clone()))
            .collect();
        inner.llm.extend(copied);
    }
}

fn check_path(path: &str) -> RunStoreResult<()> {
    let bad = path.is_empty()
        || path.len() > 1024
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(RunStoreError::Invalid(format!(
            "file path {path:?} must be relative, '/'-separated, without empty, '.' or '..' segments"
        )));
    }
    Ok(())
}

#[async_trait]
impl RunStore for MemoryRunStore {
    async fn run(&self, run_id: Uuid) -> RunStoreResult<RunInfo> {
        self.lock()
            .runs
            .get(&run_id)
            .cloned()
            .ok_or_else(|| RunStoreError::not_found(format!("run {run_id}")))
    }

    async fn transition(
        &self,
        run_id: Uuid,
        from: &[RunStatus],
        to: RunStatus,
        error: Option<&str>,
    ) -> RunStoreResult<RunInfo> {
        let mut inner = self.lock();
        let run = inner
            .runs
            .get_mut(&run_id)
            .ok_or_else(|| RunStoreError::not_found(format!("run {run_id}")))?;
        if !from.contains(&run.status) {
            return Err(RunStoreError::Conflict(format!(
                "run {run_id} is {}, not one of {:?}",
                run.status.as_str(),
                from.iter().map(|s| s.as_str()).collect::<Vec<_>>()
            )));
        }
        run.status = to;
        if let Some(error) = error {
            run.error = Some(error.to_owned());
        }
        Ok(run.clone())
    }

    async fn set_current_agent(&self, run_id: Uuid, agent: Option<&str>) -> RunStoreResult<()> {
        let mut inner = self.lock();
        if !inner.runs.contains_key(&run_id) {
            return Err(RunStoreError::not_found(format!("run {run_id}")));
        }
        inner.agents.insert(run_id, agent.map(str::to_owned));
        Ok(())
    }

    async fn add_totals(
        &self,
        run_id: Uuid,
        tokens: i64,
        cost_micros: i64,
        llm_calls: i64,
    ) -> RunStoreResult<()> {
        let mut inner = self.lock();
        if !inner.runs.contains_key(&run_id) {
            return Err(RunStoreError::not_found(format!("run {run_id}")));
        }
        let totals = inner.totals.entry(run_id).or_default();
        totals.0 += tokens;
        totals.1 += cost_micros;
        totals.2 += llm_calls;
        Ok(())
    }

    async fn head(&self, project_id: Uuid) -> RunStoreResult<Option<Checkpoint>> {
        let inner = self.lock();
        Ok(inner
            .heads
            .get(&project_id)
            .and_then(|id| inner.checkpoints.get(id))
            .cloned())
    }

    async fn checkpoint(&self, id: Uuid) -> RunStoreResult<Checkpoint> {
        self.lock()
            .checkpoints
            .get(&id)
            .cloned()
            .ok_or_else(|| RunStoreError::not_found(format!("checkpoint {id}")))
    }

    async fn commit(&self, checkpoint: NewCheckpoint) -> RunStoreResult<Checkpoint> {
        let mut inner = self.lock();
        if !inner.runs.contains_key(&checkpoint.run_id) {
            return Err(RunStoreError::not_found(format!(
                "run {}",
                checkpoint.run_id
            )));
        }
        let head = inner.heads.get(&checkpoint.project_id).copied();
        if head != checkpoint.parent_id {
            return Err(RunStoreError::Conflict(format!(
                "checkpoint parent {:?} is not the head {head:?} of project {}",
                checkpoint.parent_id, checkpoint.project_id
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for change in &checkpoint.changes {
            check_path(change.path())?;
            if !seen.insert(change.path()) {
                return Err(RunStoreError::Invalid(format!(
                    "path {:?} changed twice in one checkpoint",
                    change.path()
                )));
            }
        }
        let (mut tree, sequence) = match head {
            Some(id) => (
                inner.trees.get(&id).cloned().unwrap_or_default(),
                inner.checkpoints.get(&id).map_or(0, |c| c.sequence),
            ),
            None => (BTreeMap::new(), 0),
        };
        for change in checkpoint.changes {
            match change {
                FileChange::Write { path, content } => {
                    let hash = blob_hash(&content);
                    inner.blobs.entry(hash.clone()).or_insert(content);
                    tree.insert(path, hash);
                }
                FileChange::Delete { path } => {
                    tree.remove(&path);
                }
            }
        }
        let stored = Checkpoint {
            id: Uuid::now_v7(),
            project_id: checkpoint.project_id,
            parent_id: checkpoint.parent_id,
            run_id: Some(checkpoint.run_id),
            sequence: sequence + 1,
            label: checkpoint.label,
            state: checkpoint.state,
        };
        inner.trees.insert(stored.id, tree);
        inner.checkpoints.insert(stored.id, stored.clone());
        inner.heads.insert(stored.project_id, stored.id);
        Ok(stored)
    }

    async fn files(&self, checkpoint_id: Uuid) -> RunStoreResult<BTreeMap<String, String>> {
        self.lock()
            .trees
            .get(&checkpoint_id)
            .cloned()
            .ok_or_else(|| RunStoreError::not_found(format!("checkpoint {checkpoint_id}")))
    }

    async fn blob(&self, hash: &str) -> RunStoreResult<Vec<u8>> {
        self.lock()
            .blobs
            .get(hash)
            .cloned()
            .ok_or_else(|| RunStoreError::not_found(format!("blob {hash}")))
    }

    async fn append_event(&self, run_id: Uuid, kind: &str, payload: &Value) -> RunStoreResult<i64> {
        let mut inner = self.lock();
        if !inner.runs.contains_key(&run_id) {
            return Err(RunStoreError::not_found(format!("run {run_id}")));
        }
        let events = inner.events.entry(run_id).or_default();
        let seq = events.len() as i64 + 1;
        events.push(StoredEvent {
            seq,
            kind: kind.to_owned(),
            payload: payload.clone(),
            at: Utc::now(),
        });
        Ok(seq)
    }

    async fn last_event_seq(&self, run_id: Uuid) -> RunStoreResult<i64> {
        Ok(self
            .lock()
            .events
            .get(&run_id)
            .map_or(0, |e| e.len() as i64))
    }

    async fn events_after(
        &self,
        run_id: Uuid,
        after: i64,
        limit: u32,
    ) -> RunStoreResult<Vec<StoredEvent>> {
        Ok(self
            .lock()
            .events
            .get(&run_id)
            .map(|events| {
                events
                    .iter()
                    .filter(|e| e.seq > after)
                    .take(limit as usize)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn ask(&self, run_id: Uuid, question: &QuestionSpec) -> RunStoreResult<QuestionRecord> {
        let mut inner = self.lock();
        if !inner.runs.contains_key(&run_id) {
            return Err(RunStoreError::not_found(format!("run {run_id}")));
        }
        if let Some(pending) = inner
            .questions
            .iter()
            .find(|q| q.run_id == run_id && q.answer.is_none() && q.spec == *question)
        {
            return Ok(pending.clone());
        }
        let record = QuestionRecord {
            id: Uuid::now_v7(),
            run_id,
            spec: question.clone(),
            answer: None,
        };
        inner.questions.push(record.clone());
        Ok(record)
    }

    async fn question(&self, id: Uuid) -> RunStoreResult<QuestionRecord> {
        self.lock()
            .questions
            .iter()
            .find(|q| q.id == id)
            .cloned()
            .ok_or_else(|| RunStoreError::not_found(format!("question {id}")))
    }

    async fn answer(&self, id: Uuid, answer: &str) -> RunStoreResult<QuestionRecord> {
        let mut inner = self.lock();
        let question = inner
            .questions
            .iter_mut()
            .find(|q| q.id == id)
            .ok_or_else(|| RunStoreError::not_found(format!("question {id}")))?;
        if question.answer.is_some() {
            return Err(RunStoreError::Conflict(format!(
                "question {id} is already answered"
            )));
        }
        question.answer = Some(answer.to_owned());
        Ok(question.clone())
    }

    async fn record_llm(
        &self,
        run_id: Uuid,
        step_key: &str,
        record: &LlmRecord,
    ) -> RunStoreResult<()> {
        let mut inner = self.lock();
        if !inner.runs.contains_key(&run_id) {
            return Err(RunStoreError::not_found(format!("run {run_id}")));
        }
        inner
            .llm
            .push((run_id, step_key.to_owned(), record.clone()));
        Ok(())
    }

    async fn find_llm(
        &self,
        run_id: Uuid,
        step_key: &str,
        request_hash: &str,
    ) -> RunStoreResult<Option<ChatResponse>> {
        Ok(self
            .lock()
            .llm
            .iter()
            .rev()
            .find(|(run, step, r)| {
                *run == run_id
                    && step == step_key
                    && r.request_hash == request_hash
                    && r.outcome == RecordOutcome::Ok
            })
            .and_then(|(_, _, r)| r.response.clone()))
    }

    async fn record_command(&self, run_id: Uuid, command: &CommandRecord) -> RunStoreResult<()> {
        let mut inner = self.lock();
        if !inner.runs.contains_key(&run_id) {
            return Err(RunStoreError::not_found(format!("run {run_id}")));
        }
        if command.argv.is_empty() {
            return Err(RunStoreError::Invalid("a command needs an argv".into()));
        }
        inner.commands.push((run_id, command.clone()));
        Ok(())
    }
}
