//! `/health` and `/health/ready` with pluggable checks.

use std::time::Duration;

use async_trait::async_trait;
use http::StatusCode;
use samokoder_server::error::BoxError;
use samokoder_server::{AppState, ReadinessCheck, Secrets};

use crate::helpers;

struct Check {
    name: &'static str,
    outcome: Outcome,
}

enum Outcome {
    Pass,
    Fail,
    Hang,
}

#[async_trait]
impl ReadinessCheck for Check {
    fn name(&self) -> &str {
        self.name
    }

    async fn check(&self) -> Result<(), BoxError> {
        match self.outcome {
            Outcome::Pass => Ok(()),
            Outcome::Fail => Err("connect to postgres://app:hunter2@db failed".into()),
            Outcome::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        }
    }
}

/// The router and the data directory its database lives in (keep it alive while testing).
async fn router_with(checks: Vec<Check>) -> (tempfile::TempDir, axum::Router) {
    let (dir, mut config) = helpers::config();
    config.health.check_timeout_ms = 200;
    let mut builder = AppState::builder(config, Secrets::generate());
    for check in checks {
        builder = builder.readiness_check(check);
    }
    (
        dir,
        samokoder_server::router(builder.build().await.unwrap()),
    )
}

#[tokio::test]
async fn liveness_reports_the_version() {
    let (_dir, router) = router_with(Vec::new()).await;
    let answer = helpers::get_path(&router, "/health").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        serde_json::json!({"status": "ok", "version": samokoder_server::VERSION})
    );
}

#[tokio::test]
async fn readiness_passes_when_every_check_passes() {
    let (_dir, router) = router_with(vec![
        Check {
            name: "search",
            outcome: Outcome::Pass,
        },
        Check {
            name: "mailer",
            outcome: Outcome::Pass,
        },
    ])
    .await;
    let answer = helpers::get_path(&router, "/health/ready").await;
    assert_eq!(answer.status, StatusCode::OK);
    // The server's own checks of its database and job queue come first.
    assert_eq!(
        helpers::without_sandbox(answer.json()),
        serde_json::json!({"status": "ok", "checks": [
            {"name": "database", "status": "ok"},
            {"name": "queue", "status": "ok"},
            {"name": "search", "status": "ok"},
            {"name": "mailer", "status": "ok"},
        ]})
    );
}

#[tokio::test]
async fn readiness_names_failed_and_hanging_checks_without_details() {
    let (_dir, router) = router_with(vec![
        Check {
            name: "search",
            outcome: Outcome::Fail,
        },
        Check {
            name: "mailer",
            outcome: Outcome::Hang,
        },
        Check {
            name: "cache",
            outcome: Outcome::Pass,
        },
    ])
    .await;
    let started = std::time::Instant::now();
    let answer = helpers::get_path(&router, "/health/ready").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "checks have a time limit"
    );
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        helpers::without_sandbox(answer.json()),
        serde_json::json!({"status": "unavailable", "checks": [
            {"name": "database", "status": "ok"},
            {"name": "queue", "status": "ok"},
            {"name": "search", "status": "unavailable"},
            {"name": "mailer", "status": "unavailable"},
            {"name": "cache", "status": "ok"},
        ]})
    );
    assert!(!answer.text().contains("hunter2"));
    helpers::assert_security_headers(&answer.headers);
}

/// Counts how often it is run.
struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

#[async_trait]
impl ReadinessCheck for Counting {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> Result<(), BoxError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn readiness_answers_are_reused_briefly_so_the_endpoint_cannot_hammer_dependencies() {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (_dir, config) = helpers::config();
    let state = AppState::builder(config, Secrets::generate())
        .readiness_check(Counting(runs.clone()))
        .build()
        .await
        .unwrap();
    let router = samokoder_server::router(state);
    let calls = (0..10).map(|_| helpers::get_path(&router, "/health/ready"));
    for answer in futures::future::join_all(calls).await {
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    tokio::time::sleep(samokoder_server::readiness::REUSE_FOR).await;
    helpers::get_path(&router, "/health/ready").await;
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
}
