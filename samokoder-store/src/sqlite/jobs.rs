//! The job queue on SQLite.
//!
//! Every queue write goes through the single writer connection, so a claim (one conditional
//! `UPDATE ... RETURNING` inside a `BEGIN IMMEDIATE` transaction) can never hand the same job to
//! two workers. Time is this process's clock: an SQLite file has one host.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{RowExt, SqliteStore, commit, err, ts};
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

fn job_from_row(row: &SqliteRow) -> StoreResult<Job> {
    Ok(Job {
        id: row.col("id")?,
        kind: row.col("kind")?,
        payload: row.json("payload")?,
        status: row.parsed("status")?,
        attempts: row.col("attempts")?,
        max_attempts: row.col("max_attempts")?,
        run_at: row.time("run_at")?,
        lease_owner: row.col("lease_owner")?,
        lease_expires_at: row.time_opt("lease_expires_at")?,
        last_error: row.col("last_error")?,
        dedupe_key: row.col("dedupe_key")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        finished_at: row.time_opt("finished_at")?,
    })
}

/// Inserts `job` on `conn` (inside the caller's write transaction), or returns the unfinished
/// job holding its dedupe key. The job must be validated.
pub(super) async fn enqueue_in(conn: &mut SqliteConnection, job: &NewJob) -> StoreResult<Enqueued> {
    const ACTION: &str = "enqueueing job";
    let at = now();
    let run_at = job.run_at.map_or(at, truncate_micros);
    let row = sqlx::query(concat!(
        "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at,
                           dedupe_key, created_at, updated_at)
         VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $7, $7)
         ON CONFLICT (dedupe_key)
            WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running')
            DO NOTHING
         RETURNING ",
        job_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(&job.kind)
    .bind(job.payload.to_string())
    .bind(job.max_attempts)
    .bind(ts(run_at))
    .bind(&job.dedupe_key)
    .bind(ts(at))
    .fetch_optional(&mut *conn)
    .await
    .map_err(err("job", ACTION))?;
    match row {
        Some(row) => Ok(Enqueued {
            job: job_from_row(&row)?,
            deduplicated: false,
        }),
        None => {
            let row = sqlx::query(concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE dedupe_key = $1 AND status IN ('queued', 'running')"
            ))
            .bind(&job.dedupe_key)
            .fetch_one(&mut *conn)
            .await
            .map_err(err("job", ACTION))?;
            Ok(Enqueued {
                job: job_from_row(&row)?,
                deduplicated: true,
            })
        }
    }
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn enqueue(&self, job: &NewJob) -> StoreResult<Enqueued> {
        const ACTION: &str = "enqueueing job";
        validate_job(job)?;
        let mut tx = self.begin_write(ACTION).await?;
        let enqueued = enqueue_in(&mut tx, job).await?;
        commit(tx, ACTION).await?;
        Ok(enqueued)
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
        let kinds_json = serde_json::to_string(kinds).expect("strings serialise");
        let at = ts(now());
        let mut tx = self.begin_write(ACTION).await?;
        // A job whose worker vanished during its last attempt will not run again.
        sqlx::query(
            "UPDATE jobs SET status = 'dead', last_error = $2, lease_owner = NULL,
                             lease_expires_at = NULL, finished_at = $1, updated_at = $1
             WHERE status = 'running' AND lease_expires_at < $1 AND attempts >= max_attempts",
        )
        .bind(at)
        .bind(LEASE_EXPIRED)
        .execute(&mut *tx)
        .await
        .map_err(err("job", ACTION))?;
        let row = sqlx::query(concat!(
            "UPDATE jobs SET status = 'running', lease_owner = $2, lease_expires_at = $1 + $3,
                             attempts = attempts + 1, updated_at = $1
             WHERE id = (
                 SELECT id FROM jobs
                 WHERE ((status = 'queued' AND run_at <= $1)
                        OR (status = 'running' AND lease_expires_at < $1))
                   AND ($4 = '[]' OR kind IN (SELECT value FROM json_each($4)))
                 ORDER BY run_at, id LIMIT 1)
             RETURNING ",
            job_columns!()
        ))
        .bind(at)
        .bind(worker)
        .bind(lease)
        .bind(kinds_json)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err("job", ACTION))?;
        let job = row.map(|row| job_from_row(&row)).transpose()?;
        commit(tx, ACTION).await?;
        Ok(job)
    }

    async fn heartbeat(
        &self,
        job_id: Uuid,
        worker: &str,
        lease: Duration,
    ) -> StoreResult<DateTime<Utc>> {
        let lease = lease_micros(lease)?;
        let at = ts(now());
        let expires: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET lease_expires_at = $3 + $4, updated_at = $3
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'
             RETURNING lease_expires_at",
        )
        .bind(job_id)
        .bind(worker)
        .bind(at)
        .bind(lease)
        .fetch_optional(&self.writer)
        .await
        .map_err(err("job", "extending job lease"))?;
        match expires {
            Some(micros) => DateTime::from_timestamp_micros(micros)
                .ok_or_else(|| StoreError::corrupt("job", "lease expiry out of range")),
            None => Err(StoreError::LeaseLost {
                job_id,
                worker: worker.to_owned(),
            }),
        }
    }

    async fn complete(&self, job_id: Uuid, worker: &str) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'completed', lease_owner = NULL, lease_expires_at = NULL,
                             finished_at = $3, updated_at = $3
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .bind(ts(now()))
        .execute(&self.writer)
        .await
        .map_err(err("job", "completing job"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::LeaseLost {
                job_id,
                worker: worker.to_owned(),
            });
        }
        Ok(())
    }

    async fn release(&self, job_id: Uuid, worker: &str) -> StoreResult<()> {
        let released = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_at = $3,
                             lease_owner = NULL, lease_expires_at = NULL, updated_at = $3
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .bind(ts(now()))
        .execute(&self.writer)
        .await
        .map_err(err("job", "releasing job"))?;
        if released.rows_affected() == 0 {
            return Err(StoreError::LeaseLost {
                job_id,
                worker: worker.to_owned(),
            });
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
        let at = now();
        let mut tx = self.begin_write(ACTION).await?;
        let row = sqlx::query(
            "SELECT attempts, max_attempts FROM jobs
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err("job", ACTION))?;
        let Some(row) = row else {
            return Err(StoreError::LeaseLost {
                job_id,
                worker: worker.to_owned(),
            });
        };
        let attempts: i32 = row.col("attempts")?;
        let max_attempts: i32 = row.col("max_attempts")?;
        let outcome = if attempts >= max_attempts {
            sqlx::query(
                "UPDATE jobs SET status = 'dead', last_error = $2, lease_owner = NULL,
                                 lease_expires_at = NULL, finished_at = $3, updated_at = $3
                 WHERE id = $1",
            )
            .bind(job_id)
            .bind(error)
            .bind(ts(at))
            .execute(&mut *tx)
            .await
            .map_err(err("job", ACTION))?;
            FailOutcome::Dead
        } else {
            let delay = chrono::Duration::from_std(backoff.delay(attempts))
                .map_err(|_| StoreError::invalid("backoff delay out of range"))?;
            let run_at = at + delay;
            sqlx::query(
                "UPDATE jobs SET status = 'queued', run_at = $2, last_error = $3,
                                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $4
                 WHERE id = $1",
            )
            .bind(job_id)
            .bind(ts(run_at))
            .bind(error)
            .bind(ts(at))
            .execute(&mut *tx)
            .await
            .map_err(err("job", ACTION))?;
            FailOutcome::Retrying { run_at }
        };
        commit(tx, ACTION).await?;
        Ok(outcome)
    }

    async fn cancel(&self, job_id: Uuid) -> StoreResult<bool> {
        const ACTION: &str = "cancelling job";
        let mut tx = self.begin_write(ACTION).await?;
        let done = sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = $2, updated_at = $2
             WHERE id = $1 AND status = 'queued'",
        )
        .bind(job_id)
        .bind(ts(now()))
        .execute(&mut *tx)
        .await
        .map_err(err("job", ACTION))?;
        if done.rows_affected() == 0 {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)")
                    .bind(job_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err("job", ACTION))?;
            if !exists {
                return Err(StoreError::not_found("job", job_id));
            }
            return Ok(false);
        }
        commit(tx, ACTION).await?;
        Ok(true)
    }

    async fn get(&self, job_id: Uuid) -> StoreResult<Job> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(job_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("job", "loading job"))?
        .map(|row| job_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("job", job_id))
    }

    async fn stats(&self) -> StoreResult<QueueStats> {
        let row = sqlx::query(
            "SELECT
                COALESCE(SUM(status = 'queued' AND run_at <= $1), 0) AS ready,
                COALESCE(SUM(status = 'queued' AND run_at > $1), 0) AS scheduled,
                COALESCE(SUM(status = 'running' AND lease_expires_at >= $1), 0) AS running,
                COALESCE(SUM(status = 'running' AND lease_expires_at < $1), 0) AS expired,
                COALESCE(SUM(status = 'completed'), 0) AS completed,
                COALESCE(SUM(status = 'dead'), 0) AS dead,
                COALESCE(SUM(status = 'cancelled'), 0) AS cancelled,
                MIN(CASE WHEN status = 'queued' AND run_at <= $1 THEN run_at END) AS oldest
             FROM jobs",
        )
        .bind(ts(now()))
        .fetch_one(&self.reader)
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
            oldest_ready_at: row.time_opt("oldest")?,
        })
    }

    async fn purge_finished(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(sqlx::query(
            "DELETE FROM jobs
             WHERE status IN ('completed', 'dead', 'cancelled') AND finished_at < $1",
        )
        .bind(ts(before))
        .execute(&self.writer)
        .await
        .map_err(err("job", "purging finished jobs"))?
        .rows_affected())
    }
}
