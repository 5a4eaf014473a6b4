//! The repository traits: the contract every backend implements and every consumer holds as
//! `Arc<dyn Trait>`.
//!
//! Each method is one atomic operation: it either happens completely or not at all (methods that
//! write several rows run in one transaction). Errors are [`StoreError`]s with the meaning given
//! on each method; any method may also fail with [`StoreError::Unavailable`] or
//! [`StoreError::Database`].
//!
//! The conformance suite in `samokoder-store/tests/conformance/` pins these semantics down; a new
//! backend is correct when it passes that suite.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;

#[allow(unused_imports)] // referenced by the doc links
use crate::error::StoreError;
use crate::error::StoreResult;
use crate::model::*;

/// User accounts.
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Creates a user. [`StoreError::Conflict`] when the e-mail is taken (ignoring case);
    /// [`StoreError::InvalidInput`] for an empty e-mail or one without `@`.
    async fn create(&self, user: &NewUser) -> StoreResult<User>;

    /// Loads a user; [`StoreError::NotFound`] when there is none.
    async fn get(&self, id: Uuid) -> StoreResult<User>;

    /// Finds a user by e-mail, ignoring case and surrounding whitespace.
    async fn find_by_email(&self, email: &str) -> StoreResult<Option<User>>;

    /// Replaces the password hash; [`StoreError::NotFound`] for an unknown user.
    async fn set_password_hash(&self, id: Uuid, password_hash: &str) -> StoreResult<()>;

    /// Changes the tier; [`StoreError::NotFound`] for an unknown user.
    async fn set_tier(&self, id: Uuid, tier: Tier) -> StoreResult<()>;

    /// Grants or removes admin rights; [`StoreError::NotFound`] for an unknown user.
    async fn set_admin(&self, id: Uuid, is_admin: bool) -> StoreResult<()>;

    /// Users ordered by creation (oldest first), for the admin listing.
    async fn list(&self, offset: u64, limit: u32) -> StoreResult<Vec<User>>;

    /// How many users there are.
    async fn count(&self) -> StoreResult<u64>;

    /// Deletes a user and everything they own (projects, runs, keys, sessions, usage,
    /// notifications). Audit entries and analytics events stay. [`StoreError::NotFound`] when
    /// there is no such user.
    async fn delete(&self, id: Uuid) -> StoreResult<()>;
}

/// Session maintenance besides the `samokoder-auth` ports (which every backend also implements).
#[async_trait]
pub trait SessionRepo: Send + Sync {
    /// Deletes revoked-token rows and refresh families whose expiry is before `now`: a token past
    /// its expiry is rejected anyway, so its revocation no longer needs remembering. (The expiry
    /// a revocation is stored with already includes the token verifier's clock-skew leeway; see
    /// `samokoder_auth::refresh::RefreshService::revoke_access`.)
    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<SessionPurge>;

    /// Deletes login attempts older than `before` (the lockout window only looks back so far).
    async fn purge_login_attempts(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Projects.
#[async_trait]
pub trait ProjectRepo: Send + Sync {
    /// Creates a project. [`StoreError::MissingReference`] when the owner does not exist;
    /// [`StoreError::InvalidInput`] for a blank or over-long name.
    async fn create(&self, project: &NewProject) -> StoreResult<Project>;

    /// Loads a project; [`StoreError::NotFound`] when there is none.
    async fn get(&self, id: Uuid) -> StoreResult<Project>;

    /// Loads a project only if `owner_id` owns it; otherwise [`StoreError::NotFound`] (so the
    /// caller cannot tell someone else's project from a missing one).
    async fn get_owned(&self, owner_id: Uuid, id: Uuid) -> StoreResult<Project>;

    /// Applies a partial update and returns the result; [`StoreError::NotFound`] when missing.
    async fn update(&self, id: Uuid, update: &ProjectUpdate) -> StoreResult<Project>;

    /// Deletes a project with its runs, states, events and logs; [`StoreError::NotFound`] when
    /// missing.
    async fn delete(&self, id: Uuid) -> StoreResult<()>;

    /// One page of an owner's projects, newest first. [`StoreError::InvalidInput`] for a
    /// malformed cursor or a bad limit.
    async fn list(&self, query: &ProjectQuery) -> StoreResult<Page<Project>>;

    /// Counts for quota checks: all of the owner's projects, and those created at or after
    /// `since`.
    async fn counts(&self, owner_id: Uuid, since: DateTime<Utc>) -> StoreResult<ProjectCounts>;
}

/// Sealed provider keys and VCS tokens.
#[async_trait]
pub trait KeyRepo: Send + Sync {
    /// Stores the user's key for a provider, replacing any previous one (the row keeps its id
    /// and `created_at`). [`StoreError::MissingReference`] for an unknown user.
    async fn put_provider_key(&self, key: &NewProviderKey) -> StoreResult<ProviderKey>;

    /// The user's key for a provider, if any.
    async fn provider_key(&self, user_id: Uuid, provider: &str)
    -> StoreResult<Option<ProviderKey>>;

    /// All of a user's provider keys, by provider name.
    async fn list_provider_keys(&self, user_id: Uuid) -> StoreResult<Vec<ProviderKey>>;

    /// Changes the preferred model and settings without touching the sealed key;
    /// [`StoreError::NotFound`] when the user has no key for the provider.
    async fn update_provider_settings(
        &self,
        user_id: Uuid,
        provider: &str,
        preferred_model: Option<&str>,
        settings: &Value,
    ) -> StoreResult<ProviderKey>;

    /// Deletes the user's key for a provider; [`StoreError::NotFound`] when there is none.
    async fn delete_provider_key(&self, user_id: Uuid, provider: &str) -> StoreResult<()>;

    /// Stores the user's token for a VCS host, replacing any previous one.
    async fn put_vcs_token(&self, token: &NewVcsToken) -> StoreResult<VcsToken>;

    /// The user's token for a host, if any.
    async fn vcs_token(&self, user_id: Uuid, host: &str) -> StoreResult<Option<VcsToken>>;

    /// All of a user's VCS tokens, by host.
    async fn list_vcs_tokens(&self, user_id: Uuid) -> StoreResult<Vec<VcsToken>>;

    /// Deletes the user's token for a host; [`StoreError::NotFound`] when there is none.
    async fn delete_vcs_token(&self, user_id: Uuid, host: &str) -> StoreResult<()>;

    /// Every sealed secret (provider keys, then VCS tokens) not sealed with `except_key_id`: the
    /// work list of a key-rotation pass.
    async fn list_sealed(&self, except_key_id: Option<&str>) -> StoreResult<Vec<SealedEntry>>;

    /// Replaces one sealed value if it still equals `expected` (compare-and-swap, so a key the
    /// user replaced meanwhile is not overwritten with a re-sealed old one). Returns whether it
    /// did.
    async fn reseal(
        &self,
        kind: SecretKind,
        id: Uuid,
        expected: &SealedSecret,
        replacement: &SealedSecret,
    ) -> StoreResult<bool>;
}

/// Per-request LLM usage and its aggregates.
#[async_trait]
pub trait UsageRepo: Send + Sync {
    /// Records one request. [`StoreError::MissingReference`] for an unknown user, project or run;
    /// [`StoreError::InvalidInput`] for negative figures.
    async fn record(&self, usage: &NewUsageRecord) -> StoreResult<UsageRecord>;

    /// A user's records in `range`, newest first, at most `limit`.
    async fn list(
        &self,
        user_id: Uuid,
        range: TimeRange,
        limit: u32,
    ) -> StoreResult<Vec<UsageRecord>>;

    /// A user's usage in `range`, grouped as asked; buckets ordered by period, provider, model.
    async fn aggregate(
        &self,
        user_id: Uuid,
        range: TimeRange,
        grouping: UsageGrouping,
    ) -> StoreResult<Vec<UsageBucket>>;
}

/// Persisted notifications.
#[async_trait]
pub trait NotificationRepo: Send + Sync {
    /// Creates a notification (unread). [`StoreError::MissingReference`] for an unknown user.
    async fn create(&self, notification: &NewNotification) -> StoreResult<Notification>;

    /// A user's notifications, newest first.
    async fn list(&self, query: &NotificationQuery) -> StoreResult<Vec<Notification>>;

    /// Marks one notification read (idempotent). [`StoreError::NotFound`] when it does not exist
    /// or is not the user's.
    async fn mark_read(&self, user_id: Uuid, id: Uuid) -> StoreResult<()>;

    /// Marks all of a user's notifications read; returns how many changed.
    async fn mark_all_read(&self, user_id: Uuid) -> StoreResult<u64>;

    /// How many unread notifications the user has.
    async fn unread_count(&self, user_id: Uuid) -> StoreResult<u64>;

    /// Deletes one notification; [`StoreError::NotFound`] when missing or not the user's.
    async fn delete(&self, user_id: Uuid, id: Uuid) -> StoreResult<()>;
}

/// Persisted product analytics.
#[async_trait]
pub trait AnalyticsRepo: Send + Sync {
    /// Records an event.
    async fn record(&self, event: &NewAnalyticsEvent) -> StoreResult<AnalyticsEvent>;

    /// A user's events in `range`, newest first, at most `limit`.
    async fn list_for_user(
        &self,
        user_id: Uuid,
        range: TimeRange,
        limit: u32,
    ) -> StoreResult<Vec<AnalyticsEvent>>;

    /// Counts of a user's events in `range` by name, most frequent first (ties by name).
    async fn counts_for_user(
        &self,
        user_id: Uuid,
        range: TimeRange,
    ) -> StoreResult<Vec<EventCount>>;

    /// System-wide summary of `range`.
    async fn summary(&self, range: TimeRange) -> StoreResult<AnalyticsSummary>;

    /// All events in `range` oldest first, after the event `after` (keyset paging for export).
    async fn export(
        &self,
        range: TimeRange,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<AnalyticsEvent>>;

    /// Deletes events before `before` (retention); returns how many.
    async fn purge_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// The security audit log: append and read, never update.
#[async_trait]
pub trait AuditRepo: Send + Sync {
    /// Appends an entry.
    async fn append(&self, entry: &NewAuditEntry) -> StoreResult<AuditEntry>;

    /// Entries matching `query`, newest first.
    async fn list(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
}

/// Per-user, per-period counters of limited actions.
#[async_trait]
pub trait QuotaRepo: Send + Sync {
    /// Atomically: if the counter for (user, kind, period) is below `limit`, adds one and
    /// returns `allowed: true`; otherwise changes nothing and returns `allowed: false`.
    /// Concurrent calls never push the count past `limit`. A `limit` below 1 denies without
    /// writing. [`StoreError::MissingReference`] when counting for an unknown user.
    async fn try_consume(
        &self,
        user_id: Uuid,
        kind: QuotaKind,
        period_start: NaiveDate,
        limit: i64,
    ) -> StoreResult<QuotaDecision>;

    /// The counter's value (0 when never consumed).
    async fn used(
        &self,
        user_id: Uuid,
        kind: QuotaKind,
        period_start: NaiveDate,
    ) -> StoreResult<i64>;
}

/// Generation runs.
#[async_trait]
pub trait RunRepo: Send + Sync {
    /// Creates a run with status `queued`. [`StoreError::MissingReference`] for an unknown
    /// project or user.
    async fn create(&self, run: &NewRun) -> StoreResult<Run>;

    /// Loads a run; [`StoreError::NotFound`] when missing.
    async fn get(&self, id: Uuid) -> StoreResult<Run>;

    /// A project's runs, newest first, at most `limit`.
    async fn list_for_project(&self, project_id: Uuid, limit: u32) -> StoreResult<Vec<Run>>;

    /// How many of the user's runs are not terminal (for "one run at a time" limits).
    async fn count_active_for_user(&self, user_id: Uuid) -> StoreResult<u64>;

    /// Moves the run to `to` if its status is one of `from` (compare-and-swap), setting
    /// `started_at` on the first move to `running`, `finished_at` on a terminal status, and
    /// `error` when given. [`StoreError::Conflict`] when the status is not in `from`;
    /// [`StoreError::NotFound`] when missing.
    async fn transition(
        &self,
        id: Uuid,
        from: &[RunStatus],
        to: RunStatus,
        error: Option<&str>,
    ) -> StoreResult<Run>;

    /// Records which agent is working; [`StoreError::NotFound`] when missing.
    async fn set_current_agent(&self, id: Uuid, agent: Option<&str>) -> StoreResult<()>;

    /// Creates run `id` (status `queued`) and enqueues `job` to drive it, in one transaction,
    /// unless the project already has an active run (`queued`, `running` or
    /// `waiting_for_human`): [`StoreError::Conflict`] then, and nothing is written. Of
    /// concurrent starts on one project at most one succeeds. [`StoreError::MissingReference`]
    /// for an unknown project or user; [`StoreError::InvalidInput`] for a job
    /// [`JobQueue::enqueue`] would refuse; [`StoreError::Conflict`] also when `id` is taken.
    async fn start(&self, id: Uuid, run: &NewRun, job: &NewJob) -> StoreResult<(Run, Job)>;

    /// Queues the run again, in one transaction: moves it to `queued` if its status is one of
    /// `from` (`queued` may be among them, to make sure a queued run has its job), replaces
    /// its budget when `budget` is given, clears `error`, `current_agent` and `finished_at`,
    /// and enqueues `job` with [`JobQueue::enqueue`]'s semantics (an unfinished job with the
    /// same dedupe key is returned instead of a new one). [`StoreError::Conflict`] when the
    /// status is not in `from`, or when another run of the project is active;
    /// [`StoreError::NotFound`] when missing.
    async fn requeue(
        &self,
        id: Uuid,
        from: &[RunStatus],
        budget: Option<&Value>,
        job: &NewJob,
    ) -> StoreResult<(Run, Enqueued)>;

    /// Adds to the run's totals atomically and returns the run; [`StoreError::NotFound`] when
    /// missing.
    async fn add_totals(
        &self,
        id: Uuid,
        tokens: i64,
        cost_micros: i64,
        llm_calls: i64,
    ) -> StoreResult<Run>;
}

/// Checkpointed states: branches, the linear chain of states, and each state's file changes.
#[async_trait]
pub trait StateRepo: Send + Sync {
    /// Creates a branch whose head is `from_state` (a state of the same project, or `None` for an
    /// empty branch). [`StoreError::Conflict`] when the branch exists;
    /// [`StoreError::NotFound`] when `from_state` is not a state of the project.
    async fn create_branch(
        &self,
        project_id: Uuid,
        name: &str,
        from_state: Option<Uuid>,
    ) -> StoreResult<Branch>;

    /// Loads a branch; [`StoreError::NotFound`] when missing.
    async fn branch(&self, project_id: Uuid, name: &str) -> StoreResult<Branch>;

    /// A project's branches by name.
    async fn list_branches(&self, project_id: Uuid) -> StoreResult<Vec<Branch>>;

    /// Appends a state after `state.parent_id` and moves the branch head to it, writing its file
    /// changes (blobs stored once per content) in the same transaction.
    ///
    /// Optimistic concurrency: [`StoreError::Conflict`] when `parent_id` is no longer the branch
    /// head (someone appended first); nothing is written then, and the caller re-reads the head
    /// and retries. A `None` parent is accepted only for a branch without states (created here
    /// when missing). [`StoreError::MissingReference`] for an unknown project or run;
    /// [`StoreError::InvalidInput`] for bad paths or a path changed twice.
    async fn append(&self, state: &NewState) -> StoreResult<StateRecord>;

    /// Loads a state; [`StoreError::NotFound`] when missing.
    async fn get(&self, id: Uuid) -> StoreResult<StateRecord>;

    /// The branch head, or `None` for an empty branch; [`StoreError::NotFound`] for a missing
    /// branch.
    async fn head(&self, project_id: Uuid, branch: &str) -> StoreResult<Option<StateRecord>>;

    /// The chain of states ending at `state_id`, oldest first, from sequence `from_sequence` on.
    async fn history(&self, state_id: Uuid, from_sequence: i64) -> StoreResult<Vec<StateRecord>>;

    /// The changes one state made, by path.
    async fn changes(&self, state_id: Uuid) -> StoreResult<Vec<FileEntry>>;

    /// The full file tree at a state (path → blob hash): every change along the chain, the latest
    /// winning, deleted paths left out. [`StoreError::NotFound`] for a missing state.
    async fn files(&self, state_id: Uuid) -> StoreResult<BTreeMap<String, String>>;
}

/// Content-addressed blobs and file contents.
#[async_trait]
pub trait FileRepo: Send + Sync {
    /// Stores content once per SHA-256 hash and returns the hash; writing the same content again
    /// stores nothing new.
    async fn put_blob(&self, content: &[u8]) -> StoreResult<String>;

    /// A blob's content; [`StoreError::NotFound`] when missing.
    async fn blob(&self, hash: &str) -> StoreResult<Vec<u8>>;

    /// Whether a blob is stored.
    async fn has_blob(&self, hash: &str) -> StoreResult<bool>;

    /// A file's content at a state, or `None` when the path does not exist there.
    async fn read_file(&self, state_id: Uuid, path: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Deletes blobs no state refers to (after projects were deleted); returns how many.
    async fn collect_garbage(&self) -> StoreResult<u64>;
}

/// Per-run event log with store-assigned sequence numbers.
#[async_trait]
pub trait EventRepo: Send + Sync {
    /// Appends an event; the store assigns the run's next sequence number (1, 2, ...; no gaps,
    /// no repeats even under concurrent appends). [`StoreError::NotFound`] for an unknown run.
    async fn append(&self, run_id: Uuid, kind: &str, payload: &Value) -> StoreResult<RunEvent>;

    /// Events of the run with `seq > after_seq`, ascending, at most `limit`.
    async fn after(&self, run_id: Uuid, after_seq: i64, limit: u32) -> StoreResult<Vec<RunEvent>>;

    /// The run's last sequence number (0 when it has none).
    async fn last_seq(&self, run_id: Uuid) -> StoreResult<i64>;
}

/// Questions to the user and their answers (human in the loop).
#[async_trait]
pub trait QuestionRepo: Send + Sync {
    /// Records a pending question. [`StoreError::MissingReference`] for an unknown run.
    async fn ask(&self, question: &NewQuestion) -> StoreResult<Question>;

    /// Loads a question; [`StoreError::NotFound`] when missing.
    async fn get(&self, id: Uuid) -> StoreResult<Question>;

    /// Answers a question once. [`StoreError::Conflict`] when it was already answered (the first
    /// answer stands); [`StoreError::NotFound`] when missing.
    async fn answer(&self, id: Uuid, answer: &str) -> StoreResult<Question>;

    /// The run's unanswered questions, oldest first.
    async fn pending(&self, run_id: Uuid) -> StoreResult<Vec<Question>>;

    /// Unanswered questions across the user's runs, oldest first.
    async fn pending_for_user(&self, user_id: Uuid) -> StoreResult<Vec<Question>>;
}

/// The LLM request log, which is also the replay cache.
#[async_trait]
pub trait LlmLogRepo: Send + Sync {
    /// Logs one request. [`StoreError::MissingReference`] for an unknown run.
    async fn record(&self, request: &NewLlmRequest) -> StoreResult<LlmRequestRecord>;

    /// The newest successful request with this hash (the replay-cache lookup).
    async fn find_by_hash(&self, request_hash: &str) -> StoreResult<Option<LlmRequestRecord>>;

    /// A run's requests, oldest first.
    async fn list_for_run(&self, run_id: Uuid) -> StoreResult<Vec<LlmRequestRecord>>;
}

/// The log of commands the runner executed.
#[async_trait]
pub trait CommandLogRepo: Send + Sync {
    /// Logs one command, keeping the tail of its output. [`StoreError::MissingReference`] for an
    /// unknown run; [`StoreError::InvalidInput`] for an empty argv.
    async fn record(&self, command: &NewCommandLog) -> StoreResult<CommandLog>;

    /// A run's commands, oldest first.
    async fn list_for_run(&self, run_id: Uuid) -> StoreResult<Vec<CommandLog>>;
}

/// A durable job queue with leases.
///
/// Delivery is at least once: a job whose worker stops heartbeating is claimed again after its
/// lease expires, so handlers must be idempotent (the run checkpoints make generation so).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues a job. With a dedupe key, an unfinished (queued or running) job with the same key
    /// is returned instead of inserting a second one. [`StoreError::InvalidInput`] for
    /// `max_attempts < 1` or an empty kind.
    async fn enqueue(&self, job: &NewJob) -> StoreResult<Enqueued>;

    /// Claims the oldest due job (of one of `kinds`, or any kind when empty) for `worker` with a
    /// lease of `lease`; a running job whose lease expired is claimable again. Each claim counts
    /// as an attempt. Jobs whose lease expired on their last attempt become dead. Returns `None`
    /// when nothing is due. Two concurrent claims never get the same job.
    async fn claim(
        &self,
        worker: &str,
        kinds: &[&str],
        lease: Duration,
    ) -> StoreResult<Option<Job>>;

    /// Extends the lease of a job `worker` holds to `lease` from now and returns the new expiry.
    /// [`StoreError::LeaseLost`] when the job is no longer running under this worker: another
    /// worker claimed it after the lease expired, or it finished. (A lease that expired but was
    /// not yet re-claimed is still this worker's: nobody else can be running the job.)
    ///
    /// Worker ids must be unique per live worker (e.g. host, process id and a random suffix).
    async fn heartbeat(
        &self,
        job_id: Uuid,
        worker: &str,
        lease: Duration,
    ) -> StoreResult<DateTime<Utc>>;

    /// Marks a job `worker` holds as completed. [`StoreError::LeaseLost`] when the job is no
    /// longer running under this worker (it may be running elsewhere now).
    async fn complete(&self, job_id: Uuid, worker: &str) -> StoreResult<()>;

    /// Records a failed attempt of a job `worker` holds: back to the queue after the backoff
    /// delay, or dead after the last attempt. [`StoreError::LeaseLost`] as for
    /// [`JobQueue::complete`].
    async fn fail(
        &self,
        job_id: Uuid,
        worker: &str,
        error: &str,
        backoff: Backoff,
    ) -> StoreResult<FailOutcome>;

    /// Gives a job `worker` holds back to the queue, due at once, without counting the claim
    /// as an attempt: for a worker that stops on purpose (a deploy), so that stopping does not
    /// use up the job's retries. [`StoreError::LeaseLost`] as for [`JobQueue::complete`].
    async fn release(&self, job_id: Uuid, worker: &str) -> StoreResult<()>;

    /// Cancels a job that has not started; returns whether it did (a running or finished job is
    /// left alone).
    async fn cancel(&self, job_id: Uuid) -> StoreResult<bool>;

    /// Loads a job; [`StoreError::NotFound`] when missing.
    async fn get(&self, job_id: Uuid) -> StoreResult<Job>;

    /// Depth and state counts for metrics.
    async fn stats(&self) -> StoreResult<QueueStats>;

    /// Deletes completed, dead and cancelled jobs that finished before `before`.
    async fn purge_finished(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Operations on the store as a whole.
#[async_trait]
pub trait StoreAdmin: Send + Sync {
    /// The backend's name, e.g. `sqlx-sqlite`.
    fn backend(&self) -> &'static str;

    /// Applies the embedded migrations not yet applied, in order, in one transaction (all or
    /// nothing). Safe to call twice and from several processes at once. [`StoreError::Migration`] when a migration
    /// fails, or the database has a migration this binary does not know or whose text changed.
    async fn migrate(&self) -> StoreResult<MigrationReport>;

    /// A round trip to the database (for readiness probes).
    async fn health_check(&self) -> StoreResult<()>;

    /// Connection-pool figures.
    fn pool_stats(&self) -> PoolStats;

    /// Closes the pool(s), waiting for checked-out connections to come back.
    async fn close(&self);
}
