//! The job queue on PostgreSQL.
//!
//! Claims use `FOR UPDATE SKIP LOCKED`: concurrent workers each lock a different due row instead
//! of queueing behind one, and a row locked by a claim in progress is simply skipped. Every
//! instant of the queue's own bookkeeping (run-at defaults, leases, backoff) comes from the
//! database clock (`now()`), so workers on machines with different clocks agree on expiry.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::{PgStore, RowExt, commit, err};
use crate::common::{LEASE_EXPIRED, lease_micros, validate_job, validate_worker};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::JobQueue;

macro_rules! job_columns {
    () => {
        "id, kind, payload, status, attempts, max_attempts, run_at, lease_owner, lease_expires_at,
         last_error, dedupe_key, created_at, updated_at, finished_at"
    };
}

fn job_from_row(row: &PgRow) -> StoreResult<Job> {
    Ok(Job {
        id: row.col("id")?,
        kind: row.col("kind")?,
        payload: row.col("payload")?,
        status: row.parsed("status")?,
        attempts: row.col("attempts")?,
        max_attempts: row.col("max_attempts")?,
        run_at: row.col("run_at")?,
        lease_owner: row.col("lease_owner")?,
        lease_expires_at: row.col("lease_expires_at")?,
        last_error: row.col("last_error")?,
        dedupe_key: row.col("dedupe_key")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
        finished_at: row.col("finished_at")?,
    })
}

fn lease_lost(job_id: Uuid, worker: &str) -> StoreError {
    StoreError::LeaseLost {
        job_id,
        worker: worker.to_owned(),
    }
}

/// Inserts `job` on `conn` (in the caller's transaction, if any), or returns the unfinished job
/// holding its dedupe key. The job must be validated.
pub(super) async fn enqueue_in(conn: &mut PgConnection, job: &NewJob) -> StoreResult<Enqueued> {
    const ACTION: &str = "enqueueing job";
    let run_at = job.run_at.map(truncate_micros);
    // The insert yields to an unfinished job with the same key; that job can finish between
    // the insert and the look-up, in which case the insert is simply tried again.
    for _ in 0..3 {
        let row = sqlx::query(concat!(
            "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at,
                               dedupe_key, created_at, updated_at)
             VALUES ($1, $2, $3, 'queued', 0, $4, COALESCE($5, now()), $6, now(), now())
             ON CONFLICT (dedupe_key)
                WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running')
                DO NOTHING
             RETURNING ",
            job_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(&job.kind)
        .bind(&job.payload)
        .bind(job.max_attempts)
        .bind(run_at)
        .bind(&job.dedupe_key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err("job", ACTION))?;
        if let Some(row) = row {
            return Ok(Enqueued {
                job: job_from_row(&row)?,
                deduplicated: false,
            });
        }
        let existing = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE dedupe_key = $1 AND status IN ('queued', 'running')"
        ))
        .bind(&job.dedupe_key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err("job", ACTION))?;
        if let Some(row) = existing {
            return Ok(Enqueued {
                job: job_from_row(&row)?,
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
impl JobQueue for PgStore {
    async fn enqueue(&self, job: &NewJob) -> StoreResult<Enqueued> {
        validate_job(job)?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(err("job", "enqueueing job"))?;
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
        // A job whose worker vanished during its last attempt will not run again. Rows another
        // worker is busy with are skipped rather than waited for.
        sqlx::query(
            "UPDATE jobs SET status = 'dead', last_error = $1, lease_owner = NULL,
                             lease_expires_at = NULL, finished_at = now(), updated_at = now()
             WHERE id IN (
                 SELECT id FROM jobs
                 WHERE status = 'running' AND lease_expires_at < now()
                   AND attempts >= max_attempts
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(LEASE_EXPIRED)
        .execute(&self.pool)
        .await
        .map_err(err("job", ACTION))?;
        let row = sqlx::query(concat!(
            "UPDATE jobs SET status = 'running', lease_owner = $1,
                             lease_expires_at = now() + $2 * interval '1 microsecond',
                             attempts = attempts + 1, updated_at = now()
             WHERE id = (
                 SELECT id FROM jobs
                 WHERE ((status = 'queued' AND run_at <= now())
                        OR (status = 'running' AND lease_expires_at < now()))
                   AND (cardinality($3::text[]) = 0 OR kind = ANY($3))
                 ORDER BY run_at, id
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED)
             RETURNING ",
            job_columns!()
        ))
        .bind(worker)
        .bind(lease)
        .bind(kinds)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("job", ACTION))?;
        row.map(|row| job_from_row(&row)).transpose()
    }

    async fn heartbeat(
        &self,
        job_id: Uuid,
        worker: &str,
        lease: Duration,
    ) -> StoreResult<DateTime<Utc>> {
        let lease = lease_micros(lease)?;
        let expires: Option<DateTime<Utc>> = sqlx::query_scalar(
            "UPDATE jobs SET lease_expires_at = now() + $3 * interval '1 microsecond',
                             updated_at = now()
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'
             RETURNING lease_expires_at",
        )
        .bind(job_id)
        .bind(worker)
        .bind(lease)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("job", "extending job lease"))?;
        expires.ok_or_else(|| lease_lost(job_id, worker))
    }

    async fn complete(&self, job_id: Uuid, worker: &str) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'completed', lease_owner = NULL, lease_expires_at = NULL,
                             finished_at = now(), updated_at = now()
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(err("job", "completing job"))?;
        if done.rows_affected() == 0 {
            return Err(lease_lost(job_id, worker));
        }
        Ok(())
    }

    async fn release(&self, job_id: Uuid, worker: &str) -> StoreResult<()> {
        let released = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_at = now(),
                             lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(err("job", "releasing job"))?;
        if released.rows_affected() == 0 {
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
        let mut tx = self.begin(ACTION).await?;
        let row = sqlx::query(
            "SELECT attempts, max_attempts FROM jobs
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'
             FOR UPDATE",
        )
        .bind(job_id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err("job", ACTION))?;
        let Some(row) = row else {
            return Err(lease_lost(job_id, worker));
        };
        let attempts: i32 = row.col("attempts")?;
        let max_attempts: i32 = row.col("max_attempts")?;
        let outcome = if attempts >= max_attempts {
            sqlx::query(
                "UPDATE jobs SET status = 'dead', last_error = $2, lease_owner = NULL,
                                 lease_expires_at = NULL, finished_at = now(), updated_at = now()
                 WHERE id = $1",
            )
            .bind(job_id)
            .bind(error)
            .execute(&mut *tx)
            .await
            .map_err(err("job", ACTION))?;
            FailOutcome::Dead
        } else {
            let delay = i64::try_from(backoff.delay(attempts).as_micros())
                .map_err(|_| StoreError::invalid("backoff delay out of range"))?;
            let run_at: DateTime<Utc> = sqlx::query_scalar(
                "UPDATE jobs SET status = 'queued',
                                 run_at = now() + $2 * interval '1 microsecond',
                                 last_error = $3, lease_owner = NULL, lease_expires_at = NULL,
                                 updated_at = now()
                 WHERE id = $1 RETURNING run_at",
            )
            .bind(job_id)
            .bind(delay)
            .bind(error)
            .fetch_one(&mut *tx)
            .await
            .map_err(err("job", ACTION))?;
            FailOutcome::Retrying { run_at }
        };
        commit(tx, ACTION).await?;
        Ok(outcome)
    }

    async fn cancel(&self, job_id: Uuid) -> StoreResult<bool> {
        const ACTION: &str = "cancelling job";
        let row = sqlx::query(
            "WITH cancelled AS (
                 UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now()
                 WHERE id = $1 AND status = 'queued'
                 RETURNING id)
             SELECT EXISTS (SELECT 1 FROM cancelled) AS cancelled,
                    EXISTS (SELECT 1 FROM jobs WHERE id = $1) AS found",
        )
        .bind(job_id)
        .fetch_one(&self.pool)
        .await
        .map_err(err("job", ACTION))?;
        if !row.col::<bool>("found")? {
            return Err(StoreError::not_found("job", job_id));
        }
        row.col("cancelled")
    }

    async fn get(&self, job_id: Uuid) -> StoreResult<Job> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("job", "loading job"))?
        .map(|row| job_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("job", job_id))
    }

    async fn stats(&self) -> StoreResult<QueueStats> {
        let row = sqlx::query(
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
        .fetch_one(&self.pool)
        .await
        .map_err(err("job", "reading queue stats"))?;
        Ok(QueueStats {
            ready: row.col("ready")?,
            scheduled: row.col("scheduled")?,
            running: row.col("running")?,
            expired: row.col("expired")?,
            completed: row.col("completed")?,
            dead: row.col("dead")?,
            cancelled: row.col("cancelled")?,
            oldest_ready_at: row.col("oldest")?,
        })
    }

    async fn purge_finished(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(sqlx::query(
            "DELETE FROM jobs
             WHERE status IN ('completed', 'dead', 'cancelled') AND finished_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(err("job", "purging finished jobs"))?
        .rows_affected())
    }
}
