//! A real server on a free port with a fresh database, and a client that speaks to it: what
//! the flow tests use.

use std::io::Write;
use std::net::IpAddr;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use samokoder_server::config::Config;
use samokoder_server::{Api, AppState, Application, RunningServer, Secrets};
use samokoder_store::testing::ScratchDatabase;
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

use crate::helpers;

/// A password that satisfies the policy.
pub const PASSWORD: &str = "Correct-Horse-7-Battery";

/// The server under test and what it runs on.
pub struct TestApp {
    pub server: RunningServer,
    pub state: AppState,
    pub client: reqwest::Client,
    _dir: TempDir,
    scratch: Option<ScratchDatabase>,
}

/// A logged-in user's tokens.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: Uuid,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

/// A response, read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The `Set-Cookie` header of `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// Asserts the status and the standard error body with `code`.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
        assert_eq!(
            body["request_id"].as_str(),
            self.header("x-request-id"),
            "request id in body and header"
        );
        for name in [
            "x-content-type-options",
            "x-frame-options",
            "content-security-policy",
        ] {
            assert!(
                self.headers.contains_key(name),
                "{name} missing on an error"
            );
        }
        body
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn ok(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        if self.text.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }
}

impl TestApp {
    /// A server on a fresh SQLite database with the test configuration.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// The same after `adjust` changed the configuration.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let (dir, mut config) = helpers::config();
        // Tests pretend to be many clients behind a proxy on loopback.
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        adjust(&mut config);
        let state = AppState::builder(config, Secrets::generate())
            .build()
            .await
            .expect("state on a fresh SQLite database");
        Self::serve(state, dir, None).await
    }

    /// A server on a fresh schema of the PostgreSQL server named by
    /// `SAMOKODER_TEST_POSTGRES_URL`, through `backend`; `None` (after a loud notice) when unset.
    pub async fn spawn_postgres(
        test: &str,
        backend: samokoder_server::config::StoreBackend,
    ) -> Option<Self> {
        Self::spawn_postgres_with(test, backend, |_| {}).await
    }

    /// The same after `adjust` changed the configuration.
    pub async fn spawn_postgres_with(
        test: &str,
        backend: samokoder_server::config::StoreBackend,
        adjust: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        let url = match std::env::var("SAMOKODER_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                // Written directly: libtest captures `eprintln!`, and a skip must be seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: set SAMOKODER_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run it against PostgreSQL"
                );
                return None;
            }
        };
        let scratch = ScratchDatabase::postgres(&url)
            .await
            .expect("create a scratch schema");
        let (dir, mut config) = helpers::config();
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        config.database_url = Some(samokoder_server::config::ConnectionUrl::new(
            scratch.options().url.clone(),
        ));
        config.database.backend = Some(backend);
        config.database.max_connections = 4;
        adjust(&mut config);
        let state = AppState::builder(config, Secrets::generate())
            .build()
            .await
            .expect("state on a fresh PostgreSQL schema");
        Some(Self::serve(state, dir, Some(scratch)).await)
    }

    async fn serve(state: AppState, dir: TempDir, scratch: Option<ScratchDatabase>) -> Self {
        let server = Application::build_with(state.clone(), Api::standard())
            .await
            .expect("server starts")
            .spawn();
        Self {
            server,
            state,
            client: helpers::client(),
            _dir: dir,
            scratch,
        }
    }

    /// Stops the server and drops the PostgreSQL schema, if any.
    pub async fn stop(self) {
        self.server.shutdown().await.expect("graceful shutdown");
        self.state.store().close().await;
        if let Some(scratch) = self.scratch {
            scratch.remove().await.expect("drop the scratch schema");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// A request from the default client address.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request as `session` (bearer token).
    pub fn as_user(&self, method: Method, path: &str, session: &Session) -> RequestBuilder {
        self.request(method, path).bearer_auth(&session.access)
    }

    /// A request that appears to come from `ip` (through the trusted proxy on loopback).
    pub fn request_from_ip(&self, method: Method, path: &str, ip: &str) -> RequestBuilder {
        let _: IpAddr = ip.parse().expect("an IP address");
        self.request(method, path)
            .header("x-forwarded-for", HeaderValue::from_str(ip).unwrap())
    }

    /// Registers `email` with [`PASSWORD`].
    pub async fn register(&self, email: &str) -> Session {
        let reply = send(
            self.request(Method::POST, "/v1/auth/register")
                .json(&json!({"email": email, "password": PASSWORD})),
        )
        .await;
        session_of(&reply, StatusCode::CREATED)
    }

    /// Registers a fresh random user.
    pub async fn user(&self) -> Session {
        self.register(&format!("user-{}@example.com", Uuid::new_v4().simple()))
            .await
    }

    /// Registers a user and makes them an administrator.
    pub async fn admin(&self) -> Session {
        let session = self.user().await;
        self.state
            .store()
            .users
            .set_admin(session.user_id, true)
            .await
            .unwrap();
        session
    }

    /// Logs in with JSON.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        send(
            self.request(Method::POST, "/v1/auth/login")
                .json(&json!({"email": email, "password": password})),
        )
        .await
    }
}

/// Sends and reads a request.
pub async fn send(request: RequestBuilder) -> Reply {
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Reply {
        status,
        headers,
        text,
    }
}

/// The session in an `AuthResponse` answered with `status`.
#[track_caller]
pub fn session_of(reply: &Reply, status: StatusCode) -> Session {
    let body = reply.ok(status);
    assert_eq!(body["token_type"], "bearer", "{body}");
    Session {
        user_id: body["user_id"].as_str().unwrap().parse().unwrap(),
        email: body["email"].as_str().unwrap().to_owned(),
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}
