//! `/metrics`: route templates as labels, registered counters, process metrics, probes.

use async_trait::async_trait;
use http::StatusCode;
use samokoder_server::error::BoxError;
use samokoder_server::observability::metrics::{ScrapeProbe, set_queue_depth};
use samokoder_server::{AppState, Secrets};

use crate::helpers;

struct QueueProbe;

#[async_trait]
impl ScrapeProbe for QueueProbe {
    fn name(&self) -> &'static str {
        "test_queue"
    }

    async fn probe(&self) -> Result<(), BoxError> {
        set_queue_depth("test_jobs", 42);
        Ok(())
    }
}

#[tokio::test]
async fn labels_requests_by_route_template() {
    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    let ids = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    for id in ids {
        helpers::get_path(&router, &format!("/v1/test/items/{id}")).await;
        // The alias and the slash form count under the same template.
        helpers::get_path(&router, &format!("/api/v1/test/items/{id}/")).await;
    }
    helpers::get_path(&router, "/no/such/path/4f1b2c").await;

    let answer = helpers::get_path(&router, "/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = answer.text();
    let series = r#"http_requests_total{method="GET",route="/v1/test/items/{id}",status="200"}"#;
    assert!(helpers::metric_value(&text, series) >= 4.0, "{text}");
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    for id in ids {
        assert!(!text.contains(&id.to_string()), "raw path in labels");
    }
    assert!(!text.contains("4f1b2c"), "raw path in labels");
    assert!(
        text.contains("# TYPE http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/v1/test/items/{id}",status="200",le="0.005"}"#), "{text}");
}

#[tokio::test]
async fn exposes_registered_counters_and_process_metrics() {
    let (_dir, config) = helpers::config();
    let state = AppState::builder(config, Secrets::generate())
        .scrape_probe(QueueProbe)
        .build()
        .await
        .unwrap();
    let router = samokoder_server::router(state);
    let text = helpers::get_path(&router, "/metrics").await.text();
    for series in [
        r#"auth_attempts_total{outcome="success"}"#,
        r#"auth_attempts_total{outcome="invalid_credentials"}"#,
        r#"auth_attempts_total{outcome="locked_out"}"#,
        "auth_lockouts_total",
        r#"rate_limited_total{route_class="auth"}"#,
        r#"rate_limited_total{route_class="general"}"#,
        "refresh_token_reuse_total",
        r#"rate_limit_backend_errors_total{backend="redis"}"#,
        "http_requests_in_flight",
        "# HELP auth_lockouts_total",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert_eq!(
        helpers::metric_value(&text, r#"job_queue_depth{queue="test_jobs"}"#),
        42.0
    );
    #[cfg(target_os = "linux")]
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            helpers::metric_value(&text, name) > 0.0,
            "{name} missing from:\n{text}"
        );
    }
}

#[tokio::test]
async fn the_store_feeds_pool_and_queue_gauges() {
    let (_dir, config) = helpers::config();
    let state = AppState::builder(config, Secrets::generate())
        .build()
        .await
        .unwrap();
    state
        .store()
        .jobs
        .enqueue(&samokoder_store::NewJob::new(
            "test_job",
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    let router = samokoder_server::router(state);
    let text = helpers::get_path(&router, "/metrics").await.text();
    assert!(
        helpers::metric_value(&text, r#"db_pool_connections{pool="main"}"#) >= 1.0,
        "{text}"
    );
    assert!(
        text.contains(r#"db_pool_connections_in_use{pool="main"}"#),
        "{text}"
    );
    // Every test's server reports into the one process-wide registry, so only the series'
    // presence is certain here (its value is whichever server was scraped last).
    assert!(text.contains(r#"job_queue_depth{queue="jobs"}"#), "{text}");
}

#[tokio::test]
async fn a_configured_token_is_required_to_scrape() {
    let (_dir, mut config) = helpers::config();
    let token = "scrape-0d6c1f5e9b2a47c8a3e1f0b7d4c2a9e6";
    config.metrics.token = Some(token.into());
    let router = helpers::router(config).await;

    let scrape = |authorization: Option<String>| {
        let router = router.clone();
        async move {
            let mut request = helpers::request("GET", "/metrics");
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            helpers::send(&router, request.body(axum::body::Body::empty()).unwrap()).await
        }
    };
    for refused in [
        None,
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {}", &token[..token.len() - 1])),
        Some(format!("Basic {token}")),
    ] {
        let answer = scrape(refused.clone()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(answer.json()["code"], "metrics_token_invalid");
        assert_eq!(
            answer.header("www-authenticate"),
            Some(r#"Bearer realm="metrics""#)
        );
        helpers::assert_security_headers(&answer.headers);
        assert!(!answer.text().contains("http_requests_total"));
    }
    let answer = scrape(Some(format!("bearer {token}"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text().contains("# TYPE http_requests_total"));
}

#[tokio::test]
async fn production_without_a_token_refuses_every_scrape() {
    let (_dir, mut config) = helpers::config();
    config.env = samokoder_server::Environment::Production;
    // Production refuses the tests' weak password hashing.
    config.auth.password_hash = samokoder_server::config::PasswordHashConfig::default();
    let router = helpers::router(config).await;
    let answer = helpers::get_path(&router, "/metrics").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json()["code"], "metrics_token_required");
    assert!(!answer.text().contains("auth_lockouts_total"));
}
