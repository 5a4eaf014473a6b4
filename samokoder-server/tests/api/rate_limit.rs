//! Rate limits: 429 with Retry-After after N requests, per key (user or client address),
//! X-Forwarded-For only from trusted proxies, Redis-backed and with a fallback.

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, StatusCode};
use samokoder_server::config::{Config, ConnectionUrl};
use samokoder_server::{AppState, RateLimitKey, RateLimitKeyResolver, Secrets};
use tower::ServiceBuilder;

use crate::helpers::{self, Answer, assert_error, request_from, send};

/// Simulates the auth step: the header stands for a verified token of that user.
struct TestUser;

impl RateLimitKeyResolver for TestUser {
    fn resolve(&self, headers: &HeaderMap) -> Option<RateLimitKey> {
        let user = headers.get("x-test-user")?.to_str().ok()?;
        Some(RateLimitKey::user(user))
    }
}

fn limited_config(per_minute: u32) -> (tempfile::TempDir, Config) {
    let (dir, mut config) = helpers::config();
    config.rate_limit.general_per_minute = per_minute;
    config.rate_limit.auth_per_minute = per_minute;
    (dir, config)
}

async fn get_as(router: &Router, peer: &str, headers: &[(&str, &str)]) -> Answer {
    let mut builder = request_from("GET", "/v1/test/ok", peer);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(router, builder.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn refuses_with_retry_after_once_the_allowance_is_used() {
    let (_dir, config) = limited_config(3);
    let router = helpers::router(config).await;
    for remaining in ["2", "1", "0"] {
        let answer = get_as(&router, "198.51.100.1:1", &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(answer.header("x-ratelimit-remaining"), Some(remaining));
        assert!(answer.header("x-ratelimit-reset").is_some());
    }
    let refused = get_as(&router, "198.51.100.1:1", &[]).await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));

    // Health and metrics are not limited.
    assert_eq!(
        helpers::get_path(&router, "/health").await.status,
        StatusCode::OK
    );
    assert!(
        helpers::get_path(&router, "/health")
            .await
            .header("x-ratelimit-limit")
            .is_none()
    );
}

#[tokio::test]
async fn auth_routes_have_their_own_allowance() {
    let (_dir, mut config) = limited_config(1);
    config.rate_limit.auth_per_minute = 2;
    let router = helpers::router(config).await;
    assert_eq!(
        get_as(&router, "198.51.100.2:1", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&router, "198.51.100.2:1", &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let login = || {
        request_from("POST", "/v1/test/login", "198.51.100.2:1")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("username=a&password=b"))
            .unwrap()
    };
    let first = send(&router, login()).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(send(&router, login()).await.status, StatusCode::OK);
    assert_eq!(
        send(&router, login()).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn keys_on_the_user_when_authenticated_and_on_the_address_otherwise() {
    let (_dir, config) = limited_config(1);
    let state = AppState::builder(config, Secrets::generate())
        .rate_limit_key_resolver(TestUser)
        .build()
        .await
        .unwrap();
    let router = samokoder_server::router_with(state, helpers::test_api());

    // One address, two users: separate allowances, and separate from the anonymous one.
    let peer = "198.51.100.3:1";
    assert_eq!(
        get_as(&router, peer, &[("x-test-user", "alice")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&router, peer, &[("x-test-user", "bob")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(get_as(&router, peer, &[]).await.status, StatusCode::OK);
    assert_eq!(
        get_as(&router, peer, &[("x-test-user", "alice")])
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The same user from another address shares the allowance.
    assert_eq!(
        get_as(&router, "198.51.100.4:1", &[("x-test-user", "bob")])
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Anonymous clients are keyed by address.
    assert_eq!(
        get_as(&router, peer, &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        get_as(&router, "198.51.100.5:1", &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn auth_routes_count_against_the_address_whatever_token_comes_with_them() {
    // The outside review registered 40 accounts a minute from one address, each new account's
    // token keying the next request. On the auth routes a token changes nothing.
    let (_dir, mut config) = limited_config(100);
    config.rate_limit.auth_per_minute = 3;
    let state = AppState::builder(config, Secrets::generate())
        .rate_limit_key_resolver(TestUser)
        .build()
        .await
        .unwrap();
    let router = samokoder_server::router_with(state, helpers::test_api());
    let login = |user: &str| {
        request_from("POST", "/v1/test/login", "198.51.100.9:1")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-test-user", user)
            .body(Body::from("username=a&password=b"))
            .unwrap()
    };
    for user in ["a", "b", "c"] {
        assert_eq!(
            send(&router, login(user)).await.status,
            StatusCode::OK,
            "{user}"
        );
    }
    assert_eq!(
        send(&router, login("d")).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a fresh identity does not reset the address's allowance"
    );
    // Elsewhere the user is still the key.
    assert_eq!(
        get_as(&router, "198.51.100.9:1", &[("x-test-user", "d")])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn keys_on_an_extension_set_by_an_outer_layer() {
    let (_dir, config) = limited_config(1);
    let router = helpers::router(config).await;
    // An embedder's own authentication, outside the server's router.
    let app = Router::new().fallback_service(
        ServiceBuilder::new()
            .map_request(|mut req: http::Request<Body>| {
                let user = req
                    .headers()
                    .get("x-embedder-user")
                    .and_then(|v| v.to_str().ok())
                    .map(RateLimitKey::user);
                if let Some(key) = user {
                    req.extensions_mut().insert(key);
                }
                req
            })
            .service(router),
    );
    let peer = "198.51.100.6:1";
    assert_eq!(
        get_as(&app, peer, &[("x-embedder-user", "carol")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&app, peer, &[("x-embedder-user", "dave")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&app, peer, &[("x-embedder-user", "carol")])
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let (_dir, mut config) = limited_config(1);
    config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let router = helpers::router(config).await;

    // Through the trusted proxy, each real client has its own allowance.
    let proxy = "10.1.2.3:5000";
    assert_eq!(
        get_as(&router, proxy, &[("x-forwarded-for", "192.0.2.10")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&router, proxy, &[("x-forwarded-for", "192.0.2.11")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&router, proxy, &[("x-forwarded-for", "192.0.2.10")])
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A client cannot pick its key by prepending addresses: the right-most untrusted one counts.
    assert_eq!(
        get_as(
            &router,
            proxy,
            &[("x-forwarded-for", "1.1.1.1, 192.0.2.11")]
        )
        .await
        .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let seen = send(
        &router,
        request_from("GET", "/v1/test/client-ip", proxy)
            .header("x-forwarded-for", "1.1.1.1, 192.0.2.12")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(seen.text(), "192.0.2.12");

    // From an untrusted peer the header is ignored: changing it does not help.
    let direct = "203.0.113.50:5000";
    assert_eq!(
        get_as(&router, direct, &[("x-forwarded-for", "192.0.2.20")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&router, direct, &[("x-forwarded-for", "192.0.2.21")])
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A configuration limited to `per_minute`, backed by Redis at `url` under a fresh prefix.
fn redis_config(url: &str, prefix: &str, per_minute: u32) -> (tempfile::TempDir, Config) {
    let (dir, mut config) = limited_config(per_minute);
    config.redis_url = Some(ConnectionUrl::new(url));
    config.rate_limit.redis_key_prefix = prefix.to_owned();
    (dir, config)
}

#[tokio::test]
async fn redis_limits_are_shared_between_processes() {
    let Some(url) = helpers::redis_url("redis_limits_are_shared_between_processes") else {
        return;
    };
    let prefix = format!("samokoder-test:{}:", uuid::Uuid::new_v4());
    let (_a, config_a) = redis_config(&url, &prefix, 3);
    let (_b, config_b) = redis_config(&url, &prefix, 3);
    // Two routers with separate memory stand for two server processes.
    let first = helpers::router(config_a).await;
    let second = helpers::router(config_b).await;
    let peer = "198.51.100.7:1";
    let statuses = [
        get_as(&first, peer, &[]).await,
        get_as(&second, peer, &[]).await,
        get_as(&first, peer, &[]).await,
    ];
    let remaining: Vec<_> = statuses
        .iter()
        .map(|a| a.header("x-ratelimit-remaining").unwrap().to_owned())
        .collect();
    assert!(statuses.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(remaining, ["2", "1", "0"]);
    let refused = get_as(&second, peer, &[]).await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // Another client is unaffected.
    assert_eq!(
        get_as(&first, "198.51.100.8:1", &[]).await.status,
        StatusCode::OK
    );

    // Readiness checks Redis.
    let ready = helpers::get_path(&first, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    // After the server's own database and queue checks.
    assert_eq!(
        ready.json()["checks"][2],
        serde_json::json!({"name": "redis", "status": "ok"})
    );
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_memory_and_counts_it() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let (_dir, config) = redis_config(&url, "samokoder-test:", 2);
    let router = helpers::router(config).await;
    let series = r#"rate_limit_backend_errors_total{backend="redis"}"#;
    let before =
        helpers::metric_value(&helpers::get_path(&router, "/metrics").await.text(), series);

    let peer = "198.51.100.9:1";
    assert_eq!(get_as(&router, peer, &[]).await.status, StatusCode::OK);
    assert_eq!(get_as(&router, peer, &[]).await.status, StatusCode::OK);
    // Still limited, in memory.
    assert_eq!(
        get_as(&router, peer, &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let metrics = helpers::get_path(&router, "/metrics").await.text();
    assert!(
        helpers::metric_value(&metrics, series) > before,
        "{metrics}"
    );
    assert!(helpers::metric_value(&metrics, "rate_limit_fallback_total") >= 3.0);

    // Readiness names Redis as down, without saying why.
    let ready = helpers::get_path(&router, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        helpers::without_sandbox(ready.json()),
        serde_json::json!({"status": "unavailable", "checks": [
            {"name": "database", "status": "ok"},
            {"name": "queue", "status": "ok"},
            {"name": "redis", "status": "unavailable"},
        ]})
    );
    assert!(!ready.text().to_lowercase().contains("refused"));
}
