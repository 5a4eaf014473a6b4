//! No token, cookie, password or query secret ever reaches the log.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use tracing_subscriber::fmt::MakeWriter;

use crate::helpers::{self, request, send};

const BEARER: &str = "eyJhbGciOiJIUzI1NiJ9.bearer-token-sentinel.sig";
const COOKIE: &str = "cookie-token-sentinel";
const PASSWORD: &str = "password-sentinel-Pa55!";
const QUERY_SECRET: &str = "query-secret-sentinel";

/// A log destination the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

thread_local! {
    /// Where this thread's log lines go while a test captures them.
    static SINK: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// The writer of the process-wide test subscriber: this thread's capture, if any; otherwise
/// lines are dropped.
#[derive(Clone, Copy)]
struct ThreadSink;

impl Write for ThreadSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        SINK.with(|sink| {
            if let Some(captured) = sink.borrow().as_ref() {
                captured.0.lock().unwrap().extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadSink {
    type Writer = ThreadSink;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Captures every log line emitted on this thread until dropped.
///
/// A *global* subscriber (JSON, every level) is installed once for the whole test binary and
/// routes lines by thread. A thread-local subscriber would not do: tracing caches per call site
/// whether anyone listens, and call sites first reached by concurrently running tests (on
/// threads without a subscriber) could stay silent for this one.
struct CaptureGuard(Captured);

impl CaptureGuard {
    fn start() -> Self {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_max_level(tracing::Level::TRACE)
                .with_writer(ThreadSink)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the test binary");
        });
        let captured = Captured::default();
        SINK.with(|sink| *sink.borrow_mut() = Some(captured.clone()));
        Self(captured)
    }

    fn text(&self) -> String {
        self.0.text()
    }
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        SINK.with(|sink| *sink.borrow_mut() = None);
    }
}

/// Every request here carries credentials; the handlers and rejections run on this thread, so
/// the capture sees everything the server logs for them, at every level.
#[tokio::test(flavor = "current_thread")]
async fn requests_with_credentials_leave_none_in_the_log() {
    let captured = CaptureGuard::start();

    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    let with_credentials = |method: &str, uri: &str| {
        request(method, uri)
            .header("authorization", format!("Bearer {BEARER}"))
            .header(
                "cookie",
                format!("access_token={COOKIE}; refresh_token={COOKIE}"),
            )
    };

    let requests = vec![
        // A password in an unknown field, rejected.
        with_credentials("POST", "/v1/test/echo")
            .header("content-type", "application/json")
            .body(Body::from(format!(
                r#"{{"name": "a", "count": 1, "password": "{PASSWORD}"}}"#
            )))
            .unwrap(),
        // A password where a number belongs, rejected.
        with_credentials("POST", "/v1/test/echo")
            .header("content-type", "application/json")
            .body(Body::from(format!(
                r#"{{"name": "a", "count": "{PASSWORD}"}}"#
            )))
            .unwrap(),
        // Malformed JSON around a password.
        with_credentials("POST", "/v1/test/echo")
            .header("content-type", "application/json")
            .body(Body::from(format!(r#"{{"password": "{PASSWORD}""#)))
            .unwrap(),
        // A successful form login.
        with_credentials("POST", "/v1/test/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("username=alice&password={PASSWORD}")))
            .unwrap(),
        // A secret in the query string, and a 404.
        with_credentials(
            "GET",
            &format!("/v1/test/search?limit=1&token={QUERY_SECRET}"),
        )
        .body(Body::empty())
        .unwrap(),
        with_credentials("GET", &format!("/nowhere?token={QUERY_SECRET}"))
            .body(Body::empty())
            .unwrap(),
        // A panic and a refused body.
        with_credentials("GET", "/v1/test/panic")
            .body(Body::empty())
            .unwrap(),
        with_credentials("POST", "/v1/test/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "password={PASSWORD}&pad={}",
                "a".repeat(20_000)
            )))
            .unwrap(),
    ];
    for req in requests {
        send(&router, req).await;
    }

    let log = captured.text();
    // The capture works: the server did log these requests, with their ids and routes.
    assert!(log.contains("\"request_id\""), "{log}");
    assert!(log.contains("/v1/test/echo"), "{log}");
    assert!(log.contains("test login handled"), "{log}");
    assert!(log.contains("handler panicked"), "{log}");
    for secret in [
        BEARER,
        "bearer-token-sentinel",
        COOKIE,
        PASSWORD,
        QUERY_SECRET,
    ] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
}

/// The session and key flows: register, login, refresh (body and cookie), add a key, log out.
/// Neither the password, the API key, nor any access or refresh token reaches the log.
#[tokio::test(flavor = "current_thread")]
async fn session_and_key_flows_leave_no_secret_in_the_log() {
    const FLOW_PASSWORD: &str = "Flow-Password-Sentinel-7";
    const API_KEY: &str = "sk-ant-api03-log-sentinel-0123456789";

    let captured = CaptureGuard::start();

    let (_dir, config) = helpers::config();
    let router = helpers::router(config).await;
    let json_request = |method: &str, uri: &str, body: serde_json::Value| {
        request(method, uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let mut tokens: Vec<String> = Vec::new();
    let mut remember = |answer: &helpers::Answer| {
        let body = answer.json();
        for field in ["access_token", "refresh_token"] {
            if let Some(token) = body[field].as_str() {
                tokens.push(token.to_owned());
            }
        }
        body
    };

    let registered = send(
        &router,
        json_request(
            "POST",
            "/v1/auth/register",
            serde_json::json!({"email": "flow@example.com", "password": FLOW_PASSWORD}),
        ),
    )
    .await;
    assert_eq!(
        registered.status,
        http::StatusCode::CREATED,
        "{}",
        registered.text()
    );
    remember(&registered);
    // A failed login, then a successful one (form-encoded, as the web app does).
    send(
        &router,
        json_request(
            "POST",
            "/v1/auth/login",
            serde_json::json!({"email": "flow@example.com", "password": format!("{FLOW_PASSWORD}!")}),
        ),
    )
    .await;
    let logged_in = send(
        &router,
        request("POST", "/v1/auth/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "username=flow%40example.com&password={FLOW_PASSWORD}"
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(
        logged_in.status,
        http::StatusCode::OK,
        "{}",
        logged_in.text()
    );
    let session = remember(&logged_in);
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = send(
        &router,
        json_request(
            "POST",
            "/v1/auth/refresh",
            serde_json::json!({"refresh_token": refresh}),
        ),
    )
    .await;
    assert_eq!(refreshed.status, http::StatusCode::OK);
    let session = remember(&refreshed);
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    // Refresh by cookie, then reuse the spent token (theft path, logged as a warning).
    let by_cookie = send(
        &router,
        request("POST", "/v1/auth/refresh")
            .header("cookie", format!("refresh_token={refresh}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let session = remember(&by_cookie);
    send(
        &router,
        json_request(
            "POST",
            "/v1/auth/refresh",
            serde_json::json!({"refresh_token": refresh}),
        ),
    )
    .await;
    let fresh = session_after_login(&router, FLOW_PASSWORD).await;
    tokens.push(fresh.clone());
    let with_key = send(
        &router,
        request("POST", "/v1/keys")
            .header("authorization", format!("Bearer {fresh}"))
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::json!({"provider": "anthropic", "api_key": API_KEY}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(with_key.status, http::StatusCode::OK, "{}", with_key.text());
    send(
        &router,
        request("POST", "/v1/auth/logout")
            .header(
                "cookie",
                format!(
                    "access_token={fresh}; refresh_token={}",
                    session["refresh_token"].as_str().unwrap()
                ),
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await;

    let log = captured.text();
    assert!(log.contains("/v1/auth/login"), "the capture works: {log}");
    assert!(log.contains("refresh token reuse detected"), "{log}");
    assert!(
        log.contains("samokoder::audit"),
        "audit lines are logged: {log}"
    );
    assert!(tokens.len() >= 5);
    for secret in [FLOW_PASSWORD, API_KEY]
        .into_iter()
        .map(str::to_owned)
        .chain(tokens)
    {
        assert!(
            !log.contains(&secret),
            "a secret ({} chars) leaked into the log:\n{log}",
            secret.len()
        );
        // Not even the signature part of a token.
        if let Some(signature) = secret.rsplit('.').next().filter(|s| s.len() > 20) {
            assert!(!log.contains(signature), "a token signature leaked:\n{log}");
        }
    }
}

/// Logs in with JSON and returns the access token.
async fn session_after_login(router: &axum::Router, password: &str) -> String {
    let answer = send(
        router,
        request("POST", "/v1/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::json!({"email": "flow@example.com", "password": password}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, http::StatusCode::OK, "{}", answer.text());
    answer.json()["access_token"].as_str().unwrap().to_owned()
}
