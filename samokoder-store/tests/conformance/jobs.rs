//! The job queue: claims, leases, retries, deduplication, and many workers at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use samokoder_store::*;
use serde_json::json;
use uuid::Uuid;

use crate::assert_err;
use crate::harness::Ctx;

const LONG: Duration = Duration::from_secs(60);

fn job(kind: &str) -> NewJob {
    NewJob::new(kind, json!({"project": "p1"}))
}

pub async fn enqueue_claim_complete(ctx: Ctx) {
    let store = &ctx.store;
    let queued = store.jobs.enqueue(&job("generation_run")).await.unwrap();
    assert!(!queued.deduplicated);
    let queued = queued.job;
    assert_eq!(
        (queued.status, queued.attempts, queued.max_attempts),
        (JobStatus::Queued, 0, 3)
    );
    assert_eq!(store.jobs.get(queued.id).await.unwrap(), queued);
    assert_eq!(store.jobs.stats().await.unwrap().ready, 1);

    let before = Utc::now();
    let claimed = store
        .jobs
        .claim("worker-a", &[], Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a job is due");
    assert_eq!(claimed.id, queued.id);
    assert_eq!(claimed.status, JobStatus::Running);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("worker-a"));
    assert_eq!(claimed.payload, json!({"project": "p1"}));
    let expiry = claimed.lease_expires_at.unwrap();
    assert!(expiry > before + chrono::Duration::seconds(25));
    assert!(
        store
            .jobs
            .claim("worker-b", &[], LONG)
            .await
            .unwrap()
            .is_none()
    );
    let stats = store.jobs.stats().await.unwrap();
    assert_eq!((stats.ready, stats.running), (0, 1));

    let extended = store
        .jobs
        .heartbeat(claimed.id, "worker-a", Duration::from_secs(120))
        .await
        .unwrap();
    assert!(extended > expiry);
    assert_err!(
        store.jobs.heartbeat(claimed.id, "worker-b", LONG).await,
        StoreError::LeaseLost { .. }
    );
    assert_err!(
        store.jobs.complete(claimed.id, "worker-b").await,
        StoreError::LeaseLost { .. }
    );

    store.jobs.complete(claimed.id, "worker-a").await.unwrap();
    let done = store.jobs.get(claimed.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert!(done.finished_at.is_some());
    assert_eq!(done.lease_owner, None);
    assert_err!(
        store.jobs.complete(claimed.id, "worker-a").await,
        StoreError::LeaseLost { .. }
    );
    assert_err!(
        store.jobs.heartbeat(claimed.id, "worker-a", LONG).await,
        StoreError::LeaseLost { .. }
    );
    let stats = store.jobs.stats().await.unwrap();
    assert_eq!((stats.completed, stats.running, stats.ready), (1, 0, 0));
}

pub async fn claim_respects_kinds_and_schedule(ctx: Ctx) {
    let store = &ctx.store;
    let now = Utc::now();
    let mut older = job("email");
    older.run_at = Some(now - chrono::Duration::minutes(2));
    let mut newer = job("email");
    newer.run_at = Some(now - chrono::Duration::minutes(1));
    let newer = store.jobs.enqueue(&newer).await.unwrap().job;
    let older = store.jobs.enqueue(&older).await.unwrap().job;
    let export = store.jobs.enqueue(&job("export")).await.unwrap().job;
    let mut later = job("export");
    later.run_at = Some(now + chrono::Duration::hours(1));
    store.jobs.enqueue(&later).await.unwrap();

    let stats = store.jobs.stats().await.unwrap();
    assert_eq!((stats.ready, stats.scheduled), (3, 1));
    assert_eq!(stats.oldest_ready_at, Some(truncate_micros(older.run_at)));

    let got = store
        .jobs
        .claim("w", &["export"], LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, export.id, "only the kinds asked for");
    let got = store
        .jobs
        .claim("w", &["email", "other"], LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, older.id, "oldest due first");
    let got = store.jobs.claim("w", &[], LONG).await.unwrap().unwrap();
    assert_eq!(got.id, newer.id);
    assert!(
        store.jobs.claim("w", &[], LONG).await.unwrap().is_none(),
        "the scheduled job is not due"
    );
}

pub async fn dedupe_key(ctx: Ctx) {
    let store = &ctx.store;
    let mut keyed = job("generation_run");
    keyed.dedupe_key = Some("run:1".into());
    let first = store.jobs.enqueue(&keyed).await.unwrap();
    let again = store.jobs.enqueue(&keyed).await.unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.job.id, first.job.id);

    let claimed = store.jobs.claim("w", &[], LONG).await.unwrap().unwrap();
    let while_running = store.jobs.enqueue(&keyed).await.unwrap();
    assert!(
        while_running.deduplicated,
        "a running job also blocks its key"
    );
    assert_eq!(while_running.job.id, claimed.id);

    store.jobs.complete(claimed.id, "w").await.unwrap();
    let fresh = store.jobs.enqueue(&keyed).await.unwrap();
    assert!(!fresh.deduplicated, "a finished job frees its key");
    assert_ne!(fresh.job.id, first.job.id);

    let mut other_key = keyed.clone();
    other_key.dedupe_key = Some("run:2".into());
    assert!(!store.jobs.enqueue(&other_key).await.unwrap().deduplicated);
    assert!(
        !store
            .jobs
            .enqueue(&job("no-key"))
            .await
            .unwrap()
            .deduplicated
    );
    assert!(
        !store
            .jobs
            .enqueue(&job("no-key"))
            .await
            .unwrap()
            .deduplicated
    );
}

pub async fn fail_retries_with_backoff_then_dies(ctx: Ctx) {
    let store = &ctx.store;
    let mut flaky = job("flaky");
    flaky.max_attempts = 2;
    let queued = store.jobs.enqueue(&flaky).await.unwrap().job;
    let claimed = store.jobs.claim("w", &[], LONG).await.unwrap().unwrap();

    let quick = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_secs(1),
    };
    let before = Utc::now();
    let outcome = store
        .jobs
        .fail(claimed.id, "w", "provider timeout", quick)
        .await
        .unwrap();
    let FailOutcome::Retrying { run_at } = outcome else {
        panic!("expected a retry, got {outcome:?}");
    };
    assert!(run_at >= truncate_micros(before) + chrono::Duration::milliseconds(50));
    let waiting = store.jobs.get(queued.id).await.unwrap();
    assert_eq!(waiting.status, JobStatus::Queued);
    assert_eq!(waiting.last_error.as_deref(), Some("provider timeout"));
    assert_eq!(waiting.lease_owner, None);
    assert_err!(
        store.jobs.fail(claimed.id, "w", "again", quick).await,
        StoreError::LeaseLost { .. }
    );

    tokio::time::sleep(Duration::from_millis(120)).await;
    let second = store.jobs.claim("w2", &[], LONG).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempts), (queued.id, 2));
    let outcome = store
        .jobs
        .fail(second.id, "w2", "still broken", quick)
        .await
        .unwrap();
    assert_eq!(outcome, FailOutcome::Dead);
    let dead = store.jobs.get(queued.id).await.unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("still broken"));
    assert!(dead.finished_at.is_some());
    assert!(store.jobs.claim("w", &[], LONG).await.unwrap().is_none());
    assert_eq!(store.jobs.stats().await.unwrap().dead, 1);

    // The delay grows with the attempts and is capped.
    let mut slow = job("slow");
    slow.max_attempts = 10;
    store.jobs.enqueue(&slow).await.unwrap();
    let claimed = store.jobs.claim("w", &[], LONG).await.unwrap().unwrap();
    let hour = Backoff {
        base: Duration::from_secs(3600),
        max: Duration::from_secs(7200),
    };
    let FailOutcome::Retrying { run_at } =
        store.jobs.fail(claimed.id, "w", "x", hour).await.unwrap()
    else {
        panic!("expected a retry");
    };
    assert!(run_at > Utc::now() + chrono::Duration::minutes(59));
    assert_eq!(store.jobs.stats().await.unwrap().scheduled, 1);
}

pub async fn expired_lease_is_reclaimed(ctx: Ctx) {
    let store = &ctx.store;
    let queued = store.jobs.enqueue(&job("slow")).await.unwrap().job;
    let first = store
        .jobs
        .claim("worker-a", &[], Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .jobs
            .claim("worker-b", &[], LONG)
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(store.jobs.stats().await.unwrap().expired, 1);

    let second = store
        .jobs
        .claim("worker-b", &[], LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempts, 2);
    assert_eq!(second.lease_owner.as_deref(), Some("worker-b"));

    // The first worker wakes up: everything it tries now fails, and changes nothing.
    assert_err!(
        store.jobs.heartbeat(queued.id, "worker-a", LONG).await,
        StoreError::LeaseLost { .. }
    );
    assert_err!(
        store.jobs.complete(queued.id, "worker-a").await,
        StoreError::LeaseLost { .. }
    );
    assert_err!(
        store
            .jobs
            .fail(queued.id, "worker-a", "x", Backoff::default())
            .await,
        StoreError::LeaseLost { .. }
    );
    assert_eq!(
        store
            .jobs
            .get(queued.id)
            .await
            .unwrap()
            .lease_owner
            .as_deref(),
        Some("worker-b")
    );
    store.jobs.complete(queued.id, "worker-b").await.unwrap();
}

pub async fn release_returns_the_job_without_spending_an_attempt(ctx: Ctx) {
    let store = &ctx.store;
    let mut once = job("once");
    once.max_attempts = 1;
    let queued = store.jobs.enqueue(&once).await.unwrap().job;
    let claimed = store.jobs.claim("a", &[], LONG).await.unwrap().unwrap();
    assert_eq!(claimed.attempts, 1);
    // Only its holder releases it.
    assert_err!(
        store.jobs.release(queued.id, "b").await,
        StoreError::LeaseLost { .. }
    );
    store.jobs.release(queued.id, "a").await.unwrap();
    let released = store.jobs.get(queued.id).await.unwrap();
    assert_eq!(
        (released.status, released.attempts, released.lease_owner),
        (JobStatus::Queued, 0, None)
    );
    // Due at once, and its one attempt is still there to spend.
    let again = store.jobs.claim("b", &[], LONG).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (queued.id, 1));
    assert_err!(
        store.jobs.release(queued.id, "a").await,
        StoreError::LeaseLost { .. }
    );
    store.jobs.complete(queued.id, "b").await.unwrap();
    assert_err!(
        store.jobs.release(queued.id, "b").await,
        StoreError::LeaseLost { .. }
    );
}

pub async fn last_attempt_expiry_is_dead(ctx: Ctx) {
    let store = &ctx.store;
    let mut once = job("once");
    once.max_attempts = 1;
    let queued = store.jobs.enqueue(&once).await.unwrap().job;
    store
        .jobs
        .claim("w", &[], Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(store.jobs.claim("w2", &[], LONG).await.unwrap().is_none());
    let dead = store.jobs.get(queued.id).await.unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert!(dead.last_error.is_some());
    assert!(dead.finished_at.is_some());
}

pub async fn cancel_get_purge(ctx: Ctx) {
    let store = &ctx.store;
    let a = store.jobs.enqueue(&job("a")).await.unwrap().job;
    assert!(store.jobs.cancel(a.id).await.unwrap());
    assert!(!store.jobs.cancel(a.id).await.unwrap(), "already cancelled");
    assert_eq!(
        store.jobs.get(a.id).await.unwrap().status,
        JobStatus::Cancelled
    );
    assert!(store.jobs.claim("w", &[], LONG).await.unwrap().is_none());

    let b = store.jobs.enqueue(&job("b")).await.unwrap().job;
    store.jobs.claim("w", &[], LONG).await.unwrap().unwrap();
    assert!(
        !store.jobs.cancel(b.id).await.unwrap(),
        "running jobs are not cancelled"
    );
    store.jobs.complete(b.id, "w").await.unwrap();
    let c = store.jobs.enqueue(&job("c")).await.unwrap().job;

    assert_err!(
        store.jobs.cancel(Uuid::now_v7()).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.jobs.get(Uuid::now_v7()).await,
        StoreError::NotFound { .. }
    );

    assert_eq!(
        store
            .jobs
            .purge_finished(Utc::now() - chrono::Duration::hours(1))
            .await
            .unwrap(),
        0,
        "nothing finished that long ago"
    );
    assert_eq!(
        store
            .jobs
            .purge_finished(Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        2
    );
    assert_err!(store.jobs.get(a.id).await, StoreError::NotFound { .. });
    assert_eq!(
        store.jobs.get(c.id).await.unwrap().status,
        JobStatus::Queued
    );

    let mut bad = job("x");
    bad.max_attempts = 0;
    assert_err!(store.jobs.enqueue(&bad).await, StoreError::InvalidInput(_));
    assert_err!(
        store.jobs.enqueue(&job(" ")).await,
        StoreError::InvalidInput(_)
    );
    assert_err!(
        store.jobs.claim("w", &[], Duration::ZERO).await,
        StoreError::InvalidInput(_)
    );
    assert_err!(
        store.jobs.claim("", &[], LONG).await,
        StoreError::InvalidInput(_)
    );
}

/// 8 workers drain 1,000 jobs; one of them dies holding a lease. Every job completes exactly
/// once, and no job is ever held by two workers at a time except the one whose lease expired.
pub async fn eight_workers_one_dies_no_job_lost(ctx: Ctx) {
    const JOBS: usize = 1_000;
    const WORKERS: usize = 8;
    const DOOMED: usize = 7;
    const DIES_AFTER: usize = 10;
    let store = ctx.store.clone();
    let mut ids = Vec::with_capacity(JOBS);
    for n in 0..JOBS {
        let mut new = NewJob::new("work", json!({ "n": n }));
        new.max_attempts = 5;
        ids.push(store.jobs.enqueue(&new).await.unwrap().job.id);
    }

    let claims: Arc<Mutex<HashMap<Uuid, Vec<String>>>> = Arc::default();
    let completions: Arc<Mutex<HashMap<Uuid, usize>>> = Arc::default();
    let completed = Arc::new(AtomicUsize::new(0));
    let orphan: Arc<Mutex<Option<Uuid>>> = Arc::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let store = store.clone();
            let (claims, completions) = (claims.clone(), completions.clone());
            let (completed, orphan) = (completed.clone(), orphan.clone());
            tokio::spawn(async move {
                let name = format!("worker-{w}");
                // The doomed worker uses a short lease, so its last job comes back quickly.
                let lease = if w == DOOMED {
                    Duration::from_millis(800)
                } else {
                    Duration::from_secs(60)
                };
                let mut handled = 0;
                while completed.load(Ordering::SeqCst) < JOBS {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "queue never drained"
                    );
                    let Some(job) = store.jobs.claim(&name, &["work"], lease).await.unwrap() else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    claims
                        .lock()
                        .unwrap()
                        .entry(job.id)
                        .or_default()
                        .push(name.clone());
                    if w == DOOMED && handled == DIES_AFTER {
                        // Dies mid-lease: no heartbeat, no completion, never comes back.
                        *orphan.lock().unwrap() = Some(job.id);
                        return;
                    }
                    store.jobs.complete(job.id, &name).await.unwrap();
                    *completions.lock().unwrap().entry(job.id).or_default() += 1;
                    completed.fetch_add(1, Ordering::SeqCst);
                    handled += 1;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }

    let completions = completions.lock().unwrap().clone();
    assert_eq!(completions.len(), JOBS, "every job completed");
    assert!(completions.values().all(|&n| n == 1), "each exactly once");
    let orphan = orphan
        .lock()
        .unwrap()
        .expect("the doomed worker died holding a job");
    let claims = claims.lock().unwrap().clone();
    for id in &ids {
        let by = &claims[id];
        if *id == orphan {
            assert_eq!(
                by.len(),
                2,
                "the orphan was claimed again after its lease expired"
            );
            assert_eq!(by[0], format!("worker-{DOOMED}"));
            assert_ne!(by[1], by[0]);
        } else {
            assert_eq!(by.len(), 1, "job {id} was handed to two workers: {by:?}");
        }
    }
    let orphan_job = store.jobs.get(orphan).await.unwrap();
    assert_eq!(
        (orphan_job.status, orphan_job.attempts),
        (JobStatus::Completed, 2)
    );
    assert_err!(
        store
            .jobs
            .complete(orphan, &format!("worker-{DOOMED}"))
            .await,
        StoreError::LeaseLost { .. }
    );
    let stats = store.jobs.stats().await.unwrap();
    assert_eq!(
        (stats.completed, stats.ready, stats.running, stats.expired),
        (JOBS as i64, 0, 0, 0)
    );
}
