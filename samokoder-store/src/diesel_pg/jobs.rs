//! The job queue.
//!
//! Workers on several machines share one PostgreSQL: a claim picks the oldest due job with
//! `SELECT ... FOR UPDATE SKIP LOCKED` (diesel's `.for_update().skip_locked()`), so concurrent
//! claimers step over each other's candidates instead of queueing behind them, and two claims
//! never return the same job. Every instant of the queue's own bookkeeping (default run-at,
//! leases, backoff, finish times) comes from the database clock, `now()`, exactly as in the sqlx
//! PostgreSQL backend: workers on machines with different clocks, and workers of either backend,
//! agree on when a lease expires.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::{AsExprOf, now, sql};
use diesel::expression::{SqlLiteral, UncheckedBind};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Int8, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::DieselPgStore;
use super::errors::{TxError, db};
use super::schema::jobs;
use crate::common::{LEASE_EXPIRED, lease_micros, validate_job, validate_worker};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::JobQueue;

/// How often `enqueue` retries when its dedupe key collided with a job that finished before the
/// collision could be read back.
const ENQUEUE_ATTEMPTS: usize = 3;

#[derive(Queryable, Selectable, QueryableByName)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
struct JobRow {
    id: Uuid,
    kind: String,
    payload: Value,
    status: String,
    attempts: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    dedupe_key: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            kind: row.kind,
            payload: row.payload,
            status: row.status.parse()?,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            lease_owner: row.lease_owner,
            lease_expires_at: row.lease_expires_at,
            last_error: row.last_error,
            dedupe_key: row.dedupe_key,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        })
    }
}

#[derive(QueryableByName)]
struct StatsRow {
    #[diesel(sql_type = Int8)]
    ready: i64,
    #[diesel(sql_type = Int8)]
    scheduled: i64,
    #[diesel(sql_type = Int8)]
    running: i64,
    #[diesel(sql_type = Int8)]
    expired: i64,
    #[diesel(sql_type = Int8)]
    completed: i64,
    #[diesel(sql_type = Int8)]
    dead: i64,
    #[diesel(sql_type = Int8)]
    cancelled: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest: Option<DateTime<Utc>>,
}

/// `now() + micros` as an expression of type `ST` (the timestamp column it is assigned to), for
/// lease expiries and retry times on the database clock.
fn now_plus<ST>(micros: i64) -> UncheckedBind<SqlLiteral<ST>, AsExprOf<i64, Int8>>
where
    ST: diesel::sql_types::SqlType + diesel::sql_types::SingleValue,
{
    sql::<ST>("now() + interval '1 microsecond' * ").bind::<Int8, _>(micros)
}

const QUEUED: &str = "queued";
const RUNNING: &str = "running";
const FINISHED: [&str; 3] = ["completed", "dead", "cancelled"];

fn lease_lost(job_id: Uuid, worker: &str) -> StoreError {
    StoreError::LeaseLost {
        job_id,
        worker: worker.to_owned(),
    }
}

/// Inserts `job` on `conn` (in the caller's transaction, if any), or returns the unfinished job
/// holding its dedupe key. The job must be validated.
pub(super) async fn enqueue_in(
    conn: &mut AsyncPgConnection,
    job: &NewJob,
) -> StoreResult<Enqueued> {
    const ACTION: &str = "enqueueing job";
    let run_at = job.run_at.map(truncate_micros);
    // Each statement sees the latest committed rows (READ COMMITTED, in or out of the
    // caller's transaction). The partial unique index makes the INSERT wait for, then yield to, a concurrent enqueue of
    // the same key, and the SELECT reads that job; if it finished in between (and so no
    // longer holds the key), inserting again is right.
    for _ in 0..ENQUEUE_ATTEMPTS {
        let inserted: Option<JobRow> = diesel::sql_query(
            "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at,
                               dedupe_key, created_at, updated_at)
             VALUES ($1, $2, $3, 'queued', 0, $4, COALESCE($5, now()), $6, now(), now())
             ON CONFLICT (dedupe_key)
                WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running')
                DO NOTHING
             RETURNING id, kind, payload, status, attempts, max_attempts, run_at, lease_owner,
                       lease_expires_at, last_error, dedupe_key, created_at, updated_at,
                       finished_at",
        )
        .bind::<diesel::sql_types::Uuid, _>(Uuid::now_v7())
        .bind::<Text, _>(&job.kind)
        .bind::<diesel::sql_types::Jsonb, _>(&job.payload)
        .bind::<diesel::sql_types::Int4, _>(job.max_attempts)
        .bind::<Nullable<Timestamptz>, _>(run_at)
        .bind::<Nullable<Text>, _>(&job.dedupe_key)
        .get_result(&mut *conn)
        .await
        .optional()
        .map_err(db("job", ACTION))?;
        if let Some(row) = inserted {
            return Ok(Enqueued {
                job: row.try_into()?,
                deduplicated: false,
            });
        }
        let existing: Option<JobRow> = jobs::table
            .filter(jobs::dedupe_key.eq(&job.dedupe_key))
            .filter(jobs::status.eq_any([QUEUED, RUNNING]))
            .select(JobRow::as_select())
            .first(&mut *conn)
            .await
            .optional()
            .map_err(db("job", ACTION))?;
        if let Some(row) = existing {
            return Ok(Enqueued {
                job: row.try_into()?,
                deduplicated: true,
            });
        }
    }
    Err(StoreError::conflict(
        "job",
        "the job with this dedupe key keeps changing state; try again",
    ))
}

#[async_trait]
impl JobQueue for DieselPgStore {
    async fn enqueue(&self, job: &NewJob) -> StoreResult<Enqueued> {
        const ACTION: &str = "enqueueing job";
        validate_job(job)?;
        let mut conn = self.conn(ACTION).await?;
        enqueue_in(&mut conn, job).await
    }

    async fn claim(
        &self,
        worker: &str,
        kinds: &[&str],
        lease: Duration,
    ) -> StoreResult<Option<Job>> {
        const ACTION: &str = "claiming job";
        validate_worker(worker)?;
        let lease = lease_micros(lease)?;
        let any_kind = kinds.is_empty();
        let mut conn = self.conn(ACTION).await?;
        // A job whose worker vanished during its last attempt will not run again. Rows another
        // claimer holds are skipped, not waited for: that claimer marks them.
        diesel::sql_query(
            "UPDATE jobs SET status = 'dead', last_error = $1, lease_owner = NULL,
                             lease_expires_at = NULL, finished_at = now(), updated_at = now()
             WHERE id IN (
                 SELECT id FROM jobs
                 WHERE status = 'running' AND lease_expires_at < now()
                   AND attempts >= max_attempts
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind::<Text, _>(LEASE_EXPIRED)
        .execute(&mut conn)
        .await
        .map_err(db("job", ACTION))?;

        // The oldest due job nobody else is claiming right now, locked and taken in one
        // statement. The attempts guard covers a job on its expired last attempt that the
        // statement above skipped because someone held its row at that moment.
        // The subquery reads `jobs` under another name: diesel only nests a query over a
        // table inside a statement on that same table through an alias.
        let candidates = diesel::alias!(jobs as candidates);
        let due = candidates
            .field(jobs::status)
            .eq(QUEUED)
            .and(candidates.field(jobs::run_at).le(now))
            .or(candidates
                .field(jobs::status)
                .eq(RUNNING)
                .and(candidates.field(jobs::lease_expires_at).lt(now))
                .and(
                    candidates
                        .field(jobs::attempts)
                        .lt(candidates.field(jobs::max_attempts)),
                ));
        let candidate = candidates
            .filter(due)
            .filter(
                any_kind
                    .into_sql::<Bool>()
                    .or(candidates.field(jobs::kind).eq_any(kinds)),
            )
            .order((candidates.field(jobs::run_at), candidates.field(jobs::id)))
            .select(candidates.field(jobs::id))
            .for_update()
            .skip_locked()
            .single_value();
        let claimed: Option<JobRow> =
            diesel::update(jobs::table.filter(jobs::id.nullable().eq(candidate)))
                .set((
                    jobs::status.eq(RUNNING),
                    jobs::lease_owner.eq(worker),
                    jobs::lease_expires_at.eq(now_plus(lease)),
                    jobs::attempts.eq(jobs::attempts + 1),
                    jobs::updated_at.eq(now),
                ))
                .returning(JobRow::as_returning())
                .get_result(&mut conn)
                .await
                .optional()
                .map_err(db("job", ACTION))?;
        claimed.map(Job::try_from).transpose()
    }

    async fn heartbeat(
        &self,
        job_id: Uuid,
        worker: &str,
        lease: Duration,
    ) -> StoreResult<DateTime<Utc>> {
        const ACTION: &str = "extending job lease";
        let lease = lease_micros(lease)?;
        let mut conn = self.conn(ACTION).await?;
        // Still running under this worker is enough: an expired lease nobody re-claimed is
        // still this worker's (see the trait).
        let expires: Option<Option<DateTime<Utc>>> = diesel::update(
            jobs::table
                .find(job_id)
                .filter(jobs::lease_owner.eq(worker))
                .filter(jobs::status.eq(RUNNING)),
        )
        .set((
            jobs::lease_expires_at.eq(now_plus(lease)),
            jobs::updated_at.eq(now),
        ))
        .returning(jobs::lease_expires_at)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(db("job", ACTION))?;
        match expires {
            Some(Some(expires)) => Ok(expires),
            Some(None) => Err(StoreError::corrupt(
                "job",
                "a running job has no lease expiry",
            )),
            None => Err(lease_lost(job_id, worker)),
        }
    }

    async fn complete(&self, job_id: Uuid, worker: &str) -> StoreResult<()> {
        const ACTION: &str = "completing job";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::update(
            jobs::table
                .find(job_id)
                .filter(jobs::lease_owner.eq(worker))
                .filter(jobs::status.eq(RUNNING)),
        )
        .set((
            jobs::status.eq("completed"),
            jobs::lease_owner.eq(None::<&str>),
            jobs::lease_expires_at.eq(None::<DateTime<Utc>>),
            jobs::finished_at.eq(now),
            jobs::updated_at.eq(now),
        ))
        .execute(&mut conn)
        .await
        .map_err(db("job", ACTION))?;
        if rows == 0 {
            return Err(lease_lost(job_id, worker));
        }
        Ok(())
    }

    async fn release(&self, job_id: Uuid, worker: &str) -> StoreResult<()> {
        const ACTION: &str = "releasing job";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::update(
            jobs::table
                .find(job_id)
                .filter(jobs::lease_owner.eq(worker))
                .filter(jobs::status.eq(RUNNING)),
        )
        .set((
            jobs::status.eq(QUEUED),
            jobs::attempts.eq(jobs::attempts - 1),
            jobs::run_at.eq(now),
            jobs::lease_owner.eq(None::<&str>),
            jobs::lease_expires_at.eq(None::<DateTime<Utc>>),
            jobs::updated_at.eq(now),
        ))
        .execute(&mut conn)
        .await
        .map_err(db("job", ACTION))?;
        if rows == 0 {
            return Err(lease_lost(job_id, worker));
        }
        Ok(())
    }

    async fn fail(
        &self,
        job_id: Uuid,
        worker: &str,
        error: &str,
        backoff: Backoff,
    ) -> StoreResult<FailOutcome> {
        const ACTION: &str = "failing job";
        let mut conn = self.conn(ACTION).await?;
        let outcome = conn
            .transaction::<_, TxError, _>(async |conn| {
                // Locked until commit, so the decision below is made on the row as it stays.
                let held: Option<(i32, i32)> = jobs::table
                    .find(job_id)
                    .filter(jobs::lease_owner.eq(worker))
                    .filter(jobs::status.eq(RUNNING))
                    .select((jobs::attempts, jobs::max_attempts))
                    .for_update()
                    .first(conn)
                    .await
                    .optional()
                    .map_err(db("job", ACTION))?;
                let Some((attempts, max_attempts)) = held else {
                    return Err(lease_lost(job_id, worker).into());
                };
                if attempts >= max_attempts {
                    diesel::update(jobs::table.find(job_id))
                        .set((
                            jobs::status.eq("dead"),
                            jobs::last_error.eq(error),
                            jobs::lease_owner.eq(None::<&str>),
                            jobs::lease_expires_at.eq(None::<DateTime<Utc>>),
                            jobs::finished_at.eq(now),
                            jobs::updated_at.eq(now),
                        ))
                        .execute(conn)
                        .await
                        .map_err(db("job", ACTION))?;
                    return Ok(FailOutcome::Dead);
                }
                let delay = i64::try_from(backoff.delay(attempts).as_micros())
                    .map_err(|_| StoreError::invalid("backoff delay out of range"))?;
                let run_at: DateTime<Utc> = diesel::update(jobs::table.find(job_id))
                    .set((
                        jobs::status.eq(QUEUED),
                        jobs::run_at.eq(now_plus(delay)),
                        jobs::last_error.eq(error),
                        jobs::lease_owner.eq(None::<&str>),
                        jobs::lease_expires_at.eq(None::<DateTime<Utc>>),
                        jobs::updated_at.eq(now),
                    ))
                    .returning(jobs::run_at)
                    .get_result(conn)
                    .await
                    .map_err(db("job", ACTION))?;
                Ok(FailOutcome::Retrying { run_at })
            })
            .await?;
        Ok(outcome)
    }

    async fn cancel(&self, job_id: Uuid) -> StoreResult<bool> {
        const ACTION: &str = "cancelling job";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::update(jobs::table.find(job_id).filter(jobs::status.eq(QUEUED)))
            .set((
                jobs::status.eq("cancelled"),
                jobs::finished_at.eq(now),
                jobs::updated_at.eq(now),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("job", ACTION))?;
        if rows == 1 {
            return Ok(true);
        }
        // Not cancelled: jobs are only ever deleted by a purge of finished ones, so "it exists"
        // tells "already started or finished" from "no such job".
        let exists = diesel::select(diesel::dsl::exists(jobs::table.find(job_id)))
            .get_result::<bool>(&mut conn)
            .await
            .map_err(db("job", ACTION))?;
        if exists {
            Ok(false)
        } else {
            Err(StoreError::not_found("job", job_id))
        }
    }

    async fn get(&self, job_id: Uuid) -> StoreResult<Job> {
        const ACTION: &str = "loading job";
        let mut conn = self.conn(ACTION).await?;
        jobs::table
            .find(job_id)
            .select(JobRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("job", ACTION))?
            .ok_or_else(|| StoreError::not_found("job", job_id))?
            .try_into()
    }

    async fn stats(&self) -> StoreResult<QueueStats> {
        const ACTION: &str = "reading queue stats";
        let mut conn = self.conn(ACTION).await?;
        let row: StatsRow = diesel::sql_query(
            "SELECT
                COUNT(*) FILTER (WHERE status = 'queued' AND run_at <= now()) AS ready,
                COUNT(*) FILTER (WHERE status = 'queued' AND run_at > now()) AS scheduled,
                COUNT(*) FILTER (WHERE status = 'running' AND lease_expires_at >= now()) AS running,
                COUNT(*) FILTER (WHERE status = 'running' AND lease_expires_at < now()) AS expired,
                COUNT(*) FILTER (WHERE status = 'completed') AS completed,
                COUNT(*) FILTER (WHERE status = 'dead') AS dead,
                COUNT(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                MIN(run_at) FILTER (WHERE status = 'queued' AND run_at <= now()) AS oldest
             FROM jobs",
        )
        .get_result(&mut conn)
        .await
        .map_err(db("job", ACTION))?;
        Ok(QueueStats {
            ready: row.ready,
            scheduled: row.scheduled,
            running: row.running,
            expired: row.expired,
            completed: row.completed,
            dead: row.dead,
            cancelled: row.cancelled,
            oldest_ready_at: row.oldest,
        })
    }

    async fn purge_finished(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        const ACTION: &str = "purging finished jobs";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::delete(
            jobs::table
                .filter(jobs::status.eq_any(FINISHED))
                .filter(jobs::finished_at.lt(before)),
        )
        .execute(&mut conn)
        .await
        .map_err(db("job", ACTION))?;
        Ok(rows as u64)
    }
}
