//! What the generation tests share: a server whose deployment LLM is the scripted fake model
//! (a real HTTP server), workers with short leases, and clients for the run API, its
//! server-sent events and the project WebSocket.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use samokoder_core::llm::fake::FakeLlm;
use samokoder_core::llm::fake::script::Script;
use samokoder_server::config::{Config, LlmSettings, StoreBackend};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use uuid::Uuid;

use crate::app::{Session, TestApp, send};

/// How long a whole run may take in a test before it counts as stuck.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The deployment's providers: one, `fake`, pointed at the fake model, with a price so runs
/// cost something.
pub fn fake_llm(fake: &FakeLlm) -> LlmSettings {
    serde_json::from_value(json!({
        "fake": {
            "kind": "openai_compatible",
            "base_url": fake.openai_base_url(),
            "api_key": samokoder_core::llm::fake::FAKE_API_KEY,
            "model": "fake-model",
            "structured_output": "prompt",
            "pricing": {"input": "100", "output": "100"},
        },
        "agents": {"default": {"provider": "fake"}},
    }))
    .expect("LLM settings")
}

/// Short leases and polls, so the tests that wait on them stay quick.
pub fn quick(config: &mut Config) {
    config.workers.concurrency = 1;
    config.workers.lease_secs = 3;
    config.workers.poll_interval_ms = 50;
    config.workers.retry_delay_secs = 1;
    config.runs.event_poll_ms = 100;
    config.runs.keep_alive_secs = 1;
    config.runs.llm_retries = 1;
    config.runs.llm_retry_delay_ms = 10;
}

/// A server with the scripted model behind its deployment LLM.
pub struct GenApp {
    pub app: TestApp,
    pub fake: FakeLlm,
}

impl GenApp {
    /// On a fresh SQLite database, configured by [`quick`] and then `adjust`.
    pub async fn spawn(script: Script, adjust: impl FnOnce(&mut Config)) -> Self {
        let fake = FakeLlm::start().await.expect("fake LLM");
        fake.respond_with(move |request| script.answer(request));
        let llm = fake_llm(&fake);
        let app = TestApp::spawn_with(|config| {
            config.llm = llm;
            quick(config);
            adjust(config);
        })
        .await;
        Self { app, fake }
    }

    /// On a fresh PostgreSQL schema through `backend`, when the test database is configured.
    pub async fn spawn_postgres(test: &str, script: Script, backend: StoreBackend) -> Option<Self> {
        let fake = FakeLlm::start().await.expect("fake LLM");
        fake.respond_with(move |request| script.answer(request));
        let llm = fake_llm(&fake);
        let app = TestApp::spawn_postgres_with(test, backend, |config| {
            config.llm = llm;
            quick(config);
        })
        .await?;
        Some(Self { app, fake })
    }

    /// A project of `session`'s; its id.
    pub async fn project(&self, session: &Session, name: &str) -> Uuid {
        let reply = send(
            self.app
                .as_user(Method::POST, "/v1/projects", session)
                .json(&json!({"name": name})),
        )
        .await;
        reply.ok(StatusCode::CREATED)["project"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Starts a run; the run as answered (202).
    pub async fn start(&self, session: &Session, project: Uuid, body: Value) -> Value {
        let reply = send(
            self.app
                .as_user(
                    Method::POST,
                    &format!("/v1/projects/{project}/runs"),
                    session,
                )
                .json(&body),
        )
        .await;
        reply.ok(StatusCode::ACCEPTED)
    }

    /// Creates a project "Todo" and starts an auto run of "A todo API" in it: the ids of both.
    pub async fn start_todo_run(&self, session: &Session) -> (Uuid, Uuid) {
        let project = self.project(session, "Todo").await;
        let run = self
            .start(
                session,
                project,
                json!({"description": "A todo API", "autonomy": "auto"}),
            )
            .await;
        let run_id = run["id"].as_str().unwrap().parse().unwrap();
        (project, run_id)
    }

    /// `GET` of one run.
    pub async fn run(&self, session: &Session, project: Uuid, run: Uuid) -> Value {
        let reply = send(self.app.as_user(
            Method::GET,
            &format!("/v1/projects/{project}/runs/{run}"),
            session,
        ))
        .await;
        reply.ok(StatusCode::OK)
    }

    /// Polls the run until its status is `status`.
    pub async fn wait_for_status(
        &self,
        session: &Session,
        project: Uuid,
        run: Uuid,
        status: &str,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
        loop {
            let current = self.run(session, project, run).await;
            if current["status"] == status {
                return current;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run never became {status}: {current}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens the run's event stream, after `last_event_id` when given.
    pub async fn events(
        &self,
        session: &Session,
        project: Uuid,
        run: Uuid,
        last_event_id: Option<i64>,
    ) -> EventStream {
        let mut request = self.app.as_user(
            Method::GET,
            &format!("/v1/projects/{project}/runs/{run}/events"),
            session,
        );
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("event stream request");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        EventStream::new(response)
    }

    /// Every event of the run from the start to the end of its stream.
    pub async fn follow_to_end(&self, session: &Session, project: Uuid, run: Uuid) -> Vec<Sse> {
        let mut stream = self.events(session, project, run, None).await;
        stream.rest().await
    }

    /// A WebSocket on `project`; `Err` with the refused handshake's status.
    pub async fn socket(
        &self,
        project: Uuid,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Socket, StatusCode> {
        let base = self.app.server.url().replacen("http://", "ws://", 1);
        let url = match token {
            Some(token) => format!("{base}/v1/ws/{project}?token={token}"),
            None => format!("{base}/v1/ws/{project}"),
        };
        let mut request = url.into_client_request().expect("ws request");
        for (name, value) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Ok(Socket { stream }),
            Err(tungstenite::Error::Http(response)) => {
                Err(StatusCode::from_u16(response.status().as_u16()).unwrap())
            }
            Err(other) => panic!("websocket handshake failed: {other}"),
        }
    }

    /// A single-use WebSocket token for `project`.
    pub async fn ws_token(&self, session: &Session, project: Uuid) -> String {
        let reply = send(
            self.app
                .as_user(Method::POST, "/v1/workspace/token", session)
                .json(&json!({"project_id": project})),
        )
        .await;
        let body = reply.ok(StatusCode::OK);
        assert_eq!(body["expires_in"], 60);
        body["token"].as_str().unwrap().to_owned()
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: i64,
    pub event: String,
    pub data: Value,
}

impl Sse {
    /// The outcome of a `run_finished` event.
    pub fn outcome(&self) -> Option<&str> {
        (self.event == "run_finished")
            .then(|| self.data["data"]["outcome"]["outcome"].as_str())
            .flatten()
    }
}

/// A `text/event-stream` response, parsed.
pub struct EventStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
}

impl EventStream {
    fn new(response: reqwest::Response) -> Self {
        Self {
            body: response
                .bytes_stream()
                .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
                .boxed(),
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when the stream ended. Comments (keep-alives) are skipped.
    pub async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(RUN_TIMEOUT, self.body.next())
                .await
                .expect("the event stream went silent")?
                .expect("event stream body");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Every remaining event until the stream ends.
    pub async fn rest(&mut self) -> Vec<Sse> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }

    /// Reads until an event matches `wanted`; every event read, that one last.
    pub async fn until(&mut self, wanted: impl Fn(&Sse) -> bool) -> Vec<Sse> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await.expect("the stream ended first");
            let done = wanted(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

fn parse_block(block: &str) -> Option<Sse> {
    let (mut id, mut event, mut data) = (None, None, String::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = value.parse().ok(),
            "event" => event = Some(value.to_owned()),
            "data" => data.push_str(value),
            _ => {}
        }
    }
    Some(Sse {
        id: id?,
        event: event?,
        data: serde_json::from_str(&data).expect("event data is JSON"),
    })
}

/// Asserts `events` are numbered `from`, `from + 1`, ... without a gap or a repeat.
pub fn assert_consecutive(events: &[Sse], from: i64) {
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event.id, from + n as i64, "event {n}: {event:?}");
        assert_eq!(event.data["seq"], event.id);
        assert_eq!(event.data["kind"], event.event.as_str());
    }
}

/// A test's end of the project WebSocket.
pub struct Socket {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Socket {
    /// The next JSON frame.
    pub async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(RUN_TIMEOUT, self.stream.next())
                .await
                .expect("the socket went silent")
                .expect("the socket closed")
                .expect("socket error");
            match message {
                Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// Frames until one matches `wanted`; that one.
    pub async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = self.next().await;
            if wanted(&frame) {
                return frame;
            }
        }
    }

    /// Sends a text frame as it is; an error when the socket is gone.
    pub async fn send_text(&mut self, text: String) -> Result<(), tungstenite::Error> {
        futures::SinkExt::send(&mut self.stream, Message::Text(text.into())).await
    }

    /// The JSON frames the server sends until it closes the socket (within 30 s).
    pub async fn until_closed(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("the socket stayed open; frames: {frames:?}"));
            match message {
                Some(Ok(Message::Text(text))) => {
                    frames.push(serde_json::from_str(text.as_str()).unwrap());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(_) | Err(_)) | None => return frames,
            }
        }
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        futures::SinkExt::send(&mut self.stream, Message::Text(frame.to_string().into()))
            .await
            .expect("send a frame");
    }
}
