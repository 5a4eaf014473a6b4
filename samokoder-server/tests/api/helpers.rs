//! Shared test fixtures: configurations, a router with test routes, request helpers.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use http::{HeaderMap, Request, StatusCode};
use samokoder_server::config::{Config, Environment, PasswordHashConfig, SandboxMode};
use samokoder_server::extract::{ClientIp, Form, Json, Path, Query};
use samokoder_server::{Api, AppState, Application, RouteClass, RunningServer, Secrets};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;

/// The origin the test configuration allows.
pub const ALLOWED_ORIGIN: &str = "https://app.example.com";

/// A development-like configuration on port 0 with a private data directory. Limits are high
/// so only the rate-limit tests, which lower them, ever see a 429.
pub fn config() -> (TempDir, Config) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        env: Environment::Test,
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.cors.allowed_origins = Some(vec![ALLOWED_ORIGIN.to_owned()]);
    config.rate_limit.auth_per_minute = 10_000;
    config.rate_limit.general_per_minute = 10_000;
    // Tests hash many passwords; tiny argon2 parameters keep them fast (env = test only).
    config.auth.password_hash = PasswordHashConfig::fast_for_tests();
    // Production requires the jail by default; tests that switch to production to check cookies
    // or headers must still start on a machine without bubblewrap (the runner's own tests
    // cover the jail).
    config.runner.sandbox = Some(SandboxMode::Auto);
    // Many servers run at once: each preview listener on a port of its own.
    config.preview.listen = "127.0.0.1:0".parse().unwrap();
    (dir, config)
}

/// The state for `config`, with in-memory keys.
pub async fn state(config: Config) -> AppState {
    AppState::builder(config, Secrets::generate())
        .build()
        .await
        .expect("state")
}

/// The router for `config`, serving the reference API plus the test routes.
pub async fn router(config: Config) -> Router {
    samokoder_server::router_with(state(config).await, test_api())
}

/// A real server for `config` (with the test routes) on a free port.
pub async fn spawn(config: Config) -> RunningServer {
    Application::build_with(state(config).await, test_api())
        .await
        .expect("server starts")
        .spawn()
}

/// An HTTP client that never follows redirects (so a redirect shows up as one).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Echo {
    pub name: String,
    pub count: u8,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Login {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Search {
    pub limit: u32,
}

/// Routes that exercise the middleware and extractors (not part of the reference API).
pub fn test_api() -> Api {
    let general = OpenApiRouter::new()
        .route(
            "/test/ok",
            get(|| async { Json(serde_json::json!({"ok": true})) }),
        )
        .route(
            "/test/echo",
            post(|Json(echo): Json<Echo>| async move { Json(echo) }),
        )
        .route(
            "/test/items/{id}",
            get(|Path(id): Path<uuid::Uuid>| async move { Json(serde_json::json!({"id": id})) }),
        )
        .route(
            "/test/search",
            get(|Query(search): Query<Search>| async move { Json(search) }),
        )
        .route(
            "/test/client-ip",
            get(|ClientIp(ip): ClientIp| async move { ip.to_string() }),
        )
        .route(
            "/test/panic",
            get(|| async {
                if true {
                    panic!("test handler panics on purpose");
                }
                StatusCode::OK
            }),
        )
        .route(
            "/test/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                StatusCode::OK
            }),
        );
    let auth = OpenApiRouter::new().route(
        "/test/login",
        post(|Form(login): Form<Login>| async move {
            tracing::info!(user = %login.username, "test login handled");
            Json(serde_json::json!({"user": login.username}))
        }),
    );
    Api::standard()
        .routes(RouteClass::General, general)
        .routes(RouteClass::Auth, auth)
}

/// The peer address used unless a test says otherwise.
pub const DEFAULT_PEER: &str = "203.0.113.1:40000";

/// A request builder for `method uri` with a peer address (as a real connection would have).
pub fn request(method: &str, uri: &str) -> http::request::Builder {
    request_from(method, uri, DEFAULT_PEER)
}

/// A request from `peer`.
pub fn request_from(method: &str, uri: &str, peer: &str) -> http::request::Builder {
    let peer: SocketAddr = peer.parse().unwrap();
    Request::builder()
        .method(method)
        .uri(uri)
        .extension(ConnectInfo(peer))
}

/// A received response.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `req` through `router` in-process.
pub async fn send(router: &Router, req: Request<Body>) -> Answer {
    let response = router.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// `GET uri` through `router`.
pub async fn get_path(router: &Router, uri: &str) -> Answer {
    send(router, request("GET", uri).body(Body::empty()).unwrap()).await
}

/// Asserts the security headers every response must carry.
pub fn assert_security_headers(headers: &HeaderMap) {
    for (name, expected) in [
        ("x-content-type-options", Some("nosniff")),
        ("x-frame-options", Some("DENY")),
        ("referrer-policy", Some("no-referrer")),
        ("cross-origin-opener-policy", Some("same-origin")),
        ("content-security-policy", None),
        ("permissions-policy", None),
        ("x-request-id", None),
    ] {
        let value = headers
            .get(name)
            .unwrap_or_else(|| panic!("missing {name} in {headers:?}"));
        if let Some(expected) = expected {
            assert_eq!(value, expected, "{name}");
        }
    }
    assert!(headers.get("server").is_none(), "no Server header");
}

/// Asserts the standard error body with `code`, whose `request_id` matches the header.
pub fn assert_error(answer: &Answer, status: StatusCode, code: &str) -> serde_json::Value {
    assert_eq!(answer.status, status, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert_eq!(
        body["request_id"].as_str(),
        answer.header("x-request-id"),
        "request id in body and header"
    );
    assert_security_headers(&answer.headers);
    body
}

/// The current value of a metric series in a Prometheus text exposition, 0 when absent.
pub fn metric_value(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// The Redis URL of the test environment, or `None` after a loud notice.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("SAMOKODER_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Written directly: libtest captures `eprintln!`, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: set SAMOKODER_TEST_REDIS_URL to run it against Redis"
            );
            None
        }
    }
}

/// A `/health/ready` body without its `sandbox` part, after checking that part names every
/// isolation feature (which of them work depends on the machine; CI has them all).
pub fn without_sandbox(mut ready: serde_json::Value) -> serde_json::Value {
    let sandbox = ready
        .as_object_mut()
        .and_then(|o| o.remove("sandbox"))
        .expect("readiness reports the sandbox");
    let names: Vec<&str> = sandbox
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "jail",
            "network",
            "tmp_size",
            "process_limit",
            "memory_limit",
            "bridge"
        ]
    );
    for feature in sandbox.as_array().unwrap() {
        assert!(
            feature["required"].is_boolean() && feature["status"].is_string(),
            "{feature}"
        );
        assert!(
            feature.get("detail").is_none(),
            "details stay in the log: {feature}"
        );
    }
    ready
}
