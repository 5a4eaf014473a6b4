//! No token, cookie, password or query secret ever reaches the log.

use std::io::Write;
use std::sync::{Arc, Mutex};

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

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every request here carries credentials; the handlers and rejections run on this thread, so
/// a thread-local subscriber sees everything the server logs for them, at every level.
#[tokio::test(flavor = "current_thread")]
async fn requests_with_credentials_leave_none_in_the_log() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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
