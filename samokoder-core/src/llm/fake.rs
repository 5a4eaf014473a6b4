//! A fake LLM for tests: a real HTTP server on `127.0.0.1:0` speaking the OpenAI
//! chat-completions protocol (`POST /v1/chat/completions`, and Azure's
//! `POST /openai/deployments/{deployment}/chat/completions`) and the Anthropic Messages protocol
//! (`POST /v1/messages`), with real server-sent events.
//!
//! Tests script it per request: a queue of [`FakeReply`]s, or a function of the request. Replies
//! can stream with delays, rate-limit with `retry-after` or reset headers, fail with 5xx/529,
//! cut the stream mid-way, send malformed bodies, or answer anything a model might. The server
//! records every request with its arrival time and tracks how many were in flight at once, so
//! tests assert on what the provider saw, not on timing around the call.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use samokoder_core::llm::fake::{FakeLlm, FakeReply};
//! use samokoder_core::llm::{AgentRole, LlmCall, LlmSession, Route, RouteTable};
//!
//! let fake = FakeLlm::start().await.unwrap();
//! fake.push(FakeReply::text("Hello!"));
//! let routes = RouteTable::new(Route::to(fake.openai_provider("openai"), "gpt-4o-mini"));
//! let session = LlmSession::builder(routes).build();
//! let reply = session.chat(LlmCall::new(AgentRole::SpecWriter).user("Hi")).await.unwrap();
//! assert_eq!(reply.text(), "Hello!");
//! assert_eq!(fake.requests()[0].model(), Some("gpt-4o-mini"));
//! # }
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::{AnthropicProvider, ApiKey, OpenAiOptions, OpenAiProvider, StructuredOutputMode};

pub mod script;

/// The key the convenience constructors give providers pointed at the fake. Long enough that
/// [`ApiKey::scrub`] applies, so tests can check it never leaks.
pub const FAKE_API_KEY: &str = "sk-fake-0123456789abcdef";

/// Which protocol a request used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeProtocol {
    /// `POST /v1/chat/completions`.
    OpenAi,
    /// `POST /openai/deployments/{deployment}/chat/completions`.
    Azure {
        /// The deployment from the path.
        deployment: String,
    },
    /// `POST /v1/messages`.
    Anthropic,
}

/// A request the fake received.
#[derive(Clone, Debug)]
pub struct FakeRequest {
    /// 0-based arrival order.
    pub index: usize,
    /// The protocol.
    pub protocol: FakeProtocol,
    /// The path and query.
    pub uri: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
    /// When it arrived (monotonic).
    pub received_at: Instant,
    /// When it arrived (wall clock), for comparing with absolute reset timestamps.
    pub received_at_wall: SystemTime,
}

impl FakeRequest {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `model` field (the deployment for Azure).
    pub fn model(&self) -> Option<&str> {
        match &self.protocol {
            FakeProtocol::Azure { deployment } => Some(deployment),
            _ => self.body.get("model").and_then(Value::as_str),
        }
    }

    /// Whether the request asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.body
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The messages as (role, text) pairs; Anthropic's `system` field comes first as `system`.
    pub fn messages(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(system) = self.body.get("system").and_then(Value::as_str) {
            out.push(("system".to_owned(), system.to_owned()));
        }
        for m in self
            .body
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(""),
                _ => String::new(),
            };
            out.push((role, content));
        }
        out
    }

    /// The text of the last user message.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages()
            .into_iter()
            .rev()
            .find(|(r, _)| r == "user")
            .map(|(_, t)| t)
    }

    /// All message text concatenated (for "does the prompt mention X" checks).
    pub fn all_text(&self) -> String {
        self.messages()
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The key the request carried (`Authorization: Bearer`, `x-api-key` or `api-key`).
    pub fn api_key(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| self.header("x-api-key"))
            .or_else(|| self.header("api-key"))
    }

    fn forced_tool(&self) -> Option<String> {
        let choice = self.body.get("tool_choice")?;
        (choice.get("type").and_then(Value::as_str) == Some("tool")).then(|| {
            choice
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("output")
                .to_owned()
        })
    }

    fn wants_stream_usage(&self) -> bool {
        self.body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// One streamed content chunk the fake sent, with when.
#[derive(Clone, Copy, Debug)]
pub struct SentChunk {
    /// The request it belongs to.
    pub request: usize,
    /// 0-based content chunk number within the response.
    pub index: usize,
    /// When it was handed to the connection.
    pub at: Instant,
}

#[derive(Clone, Debug)]
struct ErrorSpec {
    status: u16,
    openai_code: String,
    anthropic_type: String,
    message: String,
    /// Put the key the request carried into the message, as some providers do on 401.
    echo_key: bool,
}

#[derive(Clone, Debug)]
enum ReplyBody {
    Answer(String),
    Error(ErrorSpec),
    Raw { status: u16, body: String },
}

/// How a streamed answer ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum StreamEnd {
    Complete,
    /// Abort the connection after this many content chunks.
    CutAfter(usize),
    /// End the body cleanly, but without the protocol's final events, after this many chunks.
    EndAfter(usize),
    /// Send an error event after this many chunks.
    ErrorAfter(usize),
}

/// One scripted reply.
#[derive(Clone, Debug)]
pub struct FakeReply {
    body: ReplyBody,
    headers: Vec<(String, String)>,
    delay: Duration,
    first_token_delay: Duration,
    chunk_delay: Duration,
    chunks: Option<Vec<String>>,
    usage: Option<(u64, u64)>,
    cached: u64,
    length_cut: bool,
    end: StreamEnd,
}

impl FakeReply {
    fn with_body(body: ReplyBody) -> Self {
        Self {
            body,
            headers: Vec::new(),
            delay: Duration::ZERO,
            first_token_delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            chunks: None,
            usage: None,
            cached: 0,
            length_cut: false,
            end: StreamEnd::Complete,
        }
    }

    /// A successful answer. Streamed in chunks of 8 characters unless [`Self::chunks`] says
    /// otherwise. With a forced Anthropic tool, JSON text becomes the tool input.
    pub fn text(text: impl Into<String>) -> Self {
        Self::with_body(ReplyBody::Answer(text.into()))
    }

    /// A JSON answer.
    pub fn json(value: &Value) -> Self {
        Self::text(value.to_string())
    }

    /// An error with `status`; the body is the protocol's error shape with `openai_code` (OpenAI
    /// `error.type` and `error.code`) or `anthropic_type` (Anthropic `error.type`).
    pub fn error(status: u16, openai_code: &str, anthropic_type: &str, message: &str) -> Self {
        Self::with_body(ReplyBody::Error(ErrorSpec {
            status,
            openai_code: openai_code.to_owned(),
            anthropic_type: anthropic_type.to_owned(),
            message: message.to_owned(),
            echo_key: false,
        }))
    }

    /// 429 without wait headers (add them with [`Self::header`]).
    pub fn rate_limited() -> Self {
        Self::error(
            429,
            "rate_limit_exceeded",
            "rate_limit_error",
            "Rate limit reached; please try again later.",
        )
    }

    /// 500.
    pub fn server_error() -> Self {
        Self::error(
            500,
            "server_error",
            "api_error",
            "The server had an error while processing your request.",
        )
    }

    /// 529, Anthropic's "overloaded".
    pub fn overloaded() -> Self {
        Self::error(529, "overloaded", "overloaded_error", "Overloaded")
    }

    /// 401 whose message echoes the key the request carried (as OpenAI's does, partly).
    pub fn unauthorized() -> Self {
        let mut reply = Self::error(
            401,
            "invalid_api_key",
            "authentication_error",
            "Incorrect API key provided",
        );
        if let ReplyBody::Error(spec) = &mut reply.body {
            spec.echo_key = true;
        }
        reply
    }

    /// 404 for the model.
    pub fn model_not_found() -> Self {
        Self::error(
            404,
            "model_not_found",
            "not_found_error",
            "The model does not exist or you do not have access to it.",
        )
    }

    /// 429 for an exhausted quota (OpenAI's `insufficient_quota`): not a rate limit.
    pub fn quota_exceeded() -> Self {
        Self::error(
            429,
            "insufficient_quota",
            "invalid_request_error",
            "You exceeded your current quota, please check your plan and billing details.",
        )
    }

    /// 400 for a prompt longer than the context window.
    pub fn context_overflow() -> Self {
        Self::error(
            400,
            "context_length_exceeded",
            "invalid_request_error",
            "prompt is too long: maximum context length exceeded",
        )
    }

    /// An exact body with `status` and `content-type: application/json` (malformed JSON, a
    /// proxy's page).
    pub fn raw(status: u16, body: impl Into<String>) -> Self {
        Self::with_body(ReplyBody::Raw {
            status,
            body: body.into(),
        })
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Waits before sending the response headers.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Streams: waits after the headers before the first content chunk (non-streaming: before the
    /// response).
    pub fn first_token_delay(mut self, delay: Duration) -> Self {
        self.first_token_delay = delay;
        self
    }

    /// Streams: waits between content chunks.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Streams: these content chunks (joined, they are the answer text).
    pub fn chunks<S: Into<String>>(mut self, chunks: impl IntoIterator<Item = S>) -> Self {
        let chunks: Vec<String> = chunks.into_iter().map(Into::into).collect();
        self.body = ReplyBody::Answer(chunks.concat());
        self.chunks = Some(chunks);
        self
    }

    /// Reports this usage (default: a quarter of the characters, as tokens).
    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.usage = Some((prompt_tokens, completion_tokens));
        self
    }

    /// Reports this many prompt tokens as served from the cache.
    pub fn cached(mut self, cached_tokens: u64) -> Self {
        self.cached = cached_tokens;
        self
    }

    /// Finishes with "length" / "max_tokens" instead of a natural stop.
    pub fn cut_by_length(mut self) -> Self {
        self.length_cut = true;
        self
    }

    /// Aborts the connection after `n` content chunks (a broken stream).
    pub fn cut_after(mut self, n: usize) -> Self {
        self.end = StreamEnd::CutAfter(n);
        self
    }

    /// Ends the body cleanly after `n` content chunks, without the protocol's final events.
    pub fn end_after(mut self, n: usize) -> Self {
        self.end = StreamEnd::EndAfter(n);
        self
    }

    /// Sends an "overloaded" error event after `n` content chunks.
    pub fn error_event_after(mut self, n: usize) -> Self {
        self.end = StreamEnd::ErrorAfter(n);
        self
    }
}

type Responder = Arc<dyn Fn(&FakeRequest) -> FakeReply + Send + Sync>;

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<FakeReply>>,
    responder: Mutex<Option<Responder>>,
    requests: Mutex<Vec<FakeRequest>>,
    chunks: Mutex<Vec<SentChunk>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts a request in flight until dropped (the end of its response body).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(shared: Arc<Shared>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The fake LLM server. Stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLlm")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLlm {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        // Providers flush every event as it is produced; without TCP_NODELAY, Nagle's algorithm
        // and the client's delayed ACKs would hold small SSE frames back for up to 40 ms.
        let listener = listener.tap_io(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::warn!(error = %e, "fake LLM: could not set TCP_NODELAY");
            }
        });
        let shared = Arc::new(Shared::default());
        let router =
            Router::new()
                .route(
                    "/v1/chat/completions",
                    post(
                        |State(s): State<Arc<Shared>>,
                         uri: Uri,
                         headers: HeaderMap,
                         body: Bytes| async move {
                            handle(s, FakeProtocol::OpenAi, uri, headers, body).await
                        },
                    ),
                )
                .route(
                    "/openai/deployments/{deployment}/chat/completions",
                    post(
                        |State(s): State<Arc<Shared>>,
                         Path(deployment): Path<String>,
                         uri: Uri,
                         headers: HeaderMap,
                         body: Bytes| async move {
                            handle(s, FakeProtocol::Azure { deployment }, uri, headers, body).await
                        },
                    ),
                )
                .route(
                    "/v1/messages",
                    post(
                        |State(s): State<Arc<Shared>>,
                         uri: Uri,
                         headers: HeaderMap,
                         body: Bytes| async move {
                            handle(s, FakeProtocol::Anthropic, uri, headers, body).await
                        },
                    ),
                )
                .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "fake LLM server stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>`: the Anthropic and Azure base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port>/v1`: the OpenAI-compatible base URL.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An OpenAI provider named `name` pointed at the fake, with [`FAKE_API_KEY`] and OpenAI's
    /// options (strict structured output).
    pub fn openai_provider(&self, name: &str) -> Arc<OpenAiProvider> {
        Arc::new(
            OpenAiProvider::new(
                name,
                &self.openai_base_url(),
                Some(ApiKey::new(FAKE_API_KEY)),
            )
            .unwrap_or_else(|e| panic!("fake base URL: {e}")),
        )
    }

    /// An OpenAI-compatible provider with the compatible options (schema in the prompt).
    pub fn compatible_provider(&self, name: &str) -> Arc<OpenAiProvider> {
        Arc::new(
            OpenAiProvider::new(
                name,
                &self.openai_base_url(),
                Some(ApiKey::new(FAKE_API_KEY)),
            )
            .unwrap_or_else(|e| panic!("fake base URL: {e}"))
            .with_options(OpenAiOptions {
                structured_output: StructuredOutputMode::Prompt,
                ..OpenAiOptions::compatible()
            }),
        )
    }

    /// An Azure provider pointed at the fake.
    pub fn azure_provider(&self, name: &str, api_version: &str) -> Arc<OpenAiProvider> {
        Arc::new(
            OpenAiProvider::azure(
                name,
                &self.base_url(),
                api_version,
                ApiKey::new(FAKE_API_KEY),
            )
            .unwrap_or_else(|e| panic!("fake base URL: {e}")),
        )
    }

    /// An Anthropic provider pointed at the fake.
    pub fn anthropic_provider(&self, name: &str) -> Arc<AnthropicProvider> {
        Arc::new(
            AnthropicProvider::new(name, &self.base_url(), ApiKey::new(FAKE_API_KEY))
                .unwrap_or_else(|e| panic!("fake base URL: {e}")),
        )
    }

    /// Queues a reply; queued replies answer requests in arrival order.
    pub fn push(&self, reply: FakeReply) -> &Self {
        lock(&self.shared.queue).push_back(reply);
        self
    }

    /// Queues several replies.
    pub fn push_all(&self, replies: impl IntoIterator<Item = FakeReply>) -> &Self {
        lock(&self.shared.queue).extend(replies);
        self
    }

    /// Answers every request the queue does not cover with `f(request)`.
    pub fn respond_with(
        &self,
        f: impl Fn(&FakeRequest) -> FakeReply + Send + Sync + 'static,
    ) -> &Self {
        *lock(&self.shared.responder) = Some(Arc::new(f));
        self
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<FakeRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests arrived.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Queued replies not used yet.
    pub fn pending_replies(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// The most requests that were in flight at once (from arrival to the end of the response
    /// body).
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Every streamed content chunk sent, with when.
    pub fn sent_chunks(&self) -> Vec<SentChunk> {
        lock(&self.shared.chunks).clone()
    }

    /// Forgets recorded requests, chunks and the in-flight maximum (not the queue).
    pub fn reset_observations(&self) {
        lock(&self.shared.requests).clear();
        lock(&self.shared.chunks).clear();
        self.shared.max_in_flight.store(
            self.shared.in_flight.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
    }
}

async fn handle(
    shared: Arc<Shared>,
    protocol: FakeProtocol,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = Instant::now();
    let received_at_wall = SystemTime::now();
    let guard = InFlight::new(shared.clone());
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return plain(
                400,
                &format!("fake-llm: request body is not JSON: {e}"),
                guard,
            );
        }
    };
    let request = {
        let mut requests = lock(&shared.requests);
        let request = FakeRequest {
            index: requests.len(),
            protocol,
            uri: uri.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            body,
            received_at,
            received_at_wall,
        };
        requests.push(request.clone());
        request
    };
    let scripted = lock(&shared.queue).pop_front();
    let reply = match scripted {
        Some(reply) => reply,
        None => {
            let responder = lock(&shared.responder).clone();
            match responder {
                Some(f) => f(&request),
                None => FakeReply::error(
                    418,
                    "fake_unscripted",
                    "invalid_request_error",
                    &format!("fake-llm: no reply scripted for request #{}", request.index),
                ),
            }
        }
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    render(&shared, &request, &reply, guard)
}

fn plain(status: u16, text: &str, guard: InFlight) -> Response {
    respond(
        status,
        &[("content-type".into(), "text/plain".into())],
        vec![Frame::data(text.to_owned())],
        StreamEnd::Complete,
        guard,
        None,
    )
}

/// One piece of a response body.
struct Frame {
    bytes: String,
    /// Wait before sending it.
    wait: Duration,
    /// Its content-chunk number, for the chunk log.
    content: Option<usize>,
}

impl Frame {
    fn data(bytes: String) -> Self {
        Self {
            bytes,
            wait: Duration::ZERO,
            content: None,
        }
    }
}

fn estimate(text: &str) -> u64 {
    (text.chars().count() as u64 / 4).max(1)
}

fn render(
    shared: &Arc<Shared>,
    request: &FakeRequest,
    reply: &FakeReply,
    guard: InFlight,
) -> Response {
    let mut headers = reply.headers.clone();
    let text = match &reply.body {
        ReplyBody::Raw { status, body } => {
            headers.push(("content-type".into(), "application/json".into()));
            return respond(
                *status,
                &headers,
                vec![Frame::data(body.clone())],
                reply.end,
                guard,
                None,
            );
        }
        ReplyBody::Error(spec) => {
            let mut message = spec.message.clone();
            if spec.echo_key {
                message = format!("{message}: {}.", request.api_key().unwrap_or("(none)"));
            }
            let body = match request.protocol {
                FakeProtocol::Anthropic => json!({
                    "type": "error",
                    "error": { "type": spec.anthropic_type, "message": message },
                }),
                _ => json!({
                    "error": { "message": message, "type": spec.openai_code, "code": spec.openai_code, "param": null },
                }),
            };
            headers.push(("content-type".into(), "application/json".into()));
            return respond(
                spec.status,
                &headers,
                vec![Frame::data(body.to_string())],
                StreamEnd::Complete,
                guard,
                None,
            );
        }
        ReplyBody::Answer(text) => text.clone(),
    };
    let (prompt, completion) = reply
        .usage
        .unwrap_or_else(|| (estimate(&request.all_text()), estimate(&text)));
    let model = request.model().unwrap_or("fake-model").to_owned();
    let chunks = reply.chunks.clone().unwrap_or_else(|| {
        let chars: Vec<char> = text.chars().collect();
        chars.chunks(8).map(|c| c.iter().collect()).collect()
    });
    let stream = request.is_stream();
    let mut frames = Vec::new();
    match (&request.protocol, stream) {
        (FakeProtocol::Anthropic, false) => {
            let (content, stop) = anthropic_content(request, &text, reply.length_cut);
            let body = json!({
                "id": format!("msg_fake_{}", request.index),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": null,
                "usage": {
                    "input_tokens": prompt - reply.cached.min(prompt),
                    "output_tokens": completion,
                    "cache_read_input_tokens": reply.cached,
                    "cache_creation_input_tokens": 0,
                },
            });
            frames.push(Frame {
                bytes: body.to_string(),
                wait: reply.first_token_delay,
                content: None,
            });
            headers.push(("content-type".into(), "application/json".into()));
        }
        (_, false) => {
            let body = json!({
                "id": format!("chatcmpl-fake-{}", request.index),
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": { "role": "assistant", "content": text, "refusal": null },
                    "finish_reason": if reply.length_cut { "length" } else { "stop" },
                }],
                "usage": openai_usage(prompt, completion, reply.cached),
            });
            frames.push(Frame {
                bytes: body.to_string(),
                wait: reply.first_token_delay,
                content: None,
            });
            headers.push(("content-type".into(), "application/json".into()));
        }
        (FakeProtocol::Anthropic, true) => {
            headers.push(("content-type".into(), "text/event-stream".into()));
            let tool = request
                .forced_tool()
                .filter(|_| serde_json::from_str::<serde_json::Map<String, Value>>(&text).is_ok());
            let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
            frames.push(Frame::data(event(
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": format!("msg_fake_{}", request.index), "type": "message", "role": "assistant",
                    "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": prompt - reply.cached.min(prompt), "output_tokens": 1,
                              "cache_read_input_tokens": reply.cached, "cache_creation_input_tokens": 0},
                }}),
            )));
            let block = match &tool {
                Some(name) => {
                    json!({"type": "tool_use", "id": "toolu_fake", "name": name, "input": {}})
                }
                None => json!({"type": "text", "text": ""}),
            };
            frames.push(Frame::data(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": block}),
            )));
            frames.push(Frame::data(event("ping", json!({"type": "ping"}))));
            for (i, chunk) in chunks.iter().enumerate() {
                if stop_before(reply.end, i) {
                    break;
                }
                let delta = match &tool {
                    Some(_) => json!({"type": "input_json_delta", "partial_json": chunk}),
                    None => json!({"type": "text_delta", "text": chunk}),
                };
                frames.push(Frame {
                    bytes: event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0, "delta": delta}),
                    ),
                    wait: if i == 0 {
                        reply.first_token_delay
                    } else {
                        reply.chunk_delay
                    },
                    content: Some(i),
                });
            }
            match reply.end {
                StreamEnd::Complete => {
                    let stop = if reply.length_cut { "max_tokens" } else if tool.is_some() { "tool_use" } else { "end_turn" };
                    frames.push(Frame::data(event("content_block_stop", json!({"type": "content_block_stop", "index": 0}))));
                    frames.push(Frame::data(event(
                        "message_delta",
                        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": completion}}),
                    )));
                    frames.push(Frame::data(event("message_stop", json!({"type": "message_stop"}))));
                }
                StreamEnd::ErrorAfter(_) => frames.push(Frame::data(event(
                    "error",
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                ))),
                StreamEnd::CutAfter(_) | StreamEnd::EndAfter(_) => {}
            }
        }
        (_, true) => {
            headers.push(("content-type".into(), "text/event-stream".into()));
            let id = format!("chatcmpl-fake-{}", request.index);
            let chunk_json = |delta: Value, finish: Value| {
                format!(
                    "data: {}\n\n",
                    json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                )
            };
            frames.push(Frame::data(chunk_json(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )));
            for (i, chunk) in chunks.iter().enumerate() {
                if stop_before(reply.end, i) {
                    break;
                }
                frames.push(Frame {
                    bytes: chunk_json(json!({"content": chunk}), Value::Null),
                    wait: if i == 0 {
                        reply.first_token_delay
                    } else {
                        reply.chunk_delay
                    },
                    content: Some(i),
                });
            }
            match reply.end {
                StreamEnd::Complete => {
                    let finish = if reply.length_cut { "length" } else { "stop" };
                    frames.push(Frame::data(chunk_json(json!({}), json!(finish))));
                    if request.wants_stream_usage() {
                        frames.push(Frame::data(format!(
                            "data: {}\n\n",
                            json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                                   "choices": [], "usage": openai_usage(prompt, completion, reply.cached)})
                        )));
                    }
                    frames.push(Frame::data("data: [DONE]\n\n".to_owned()));
                }
                StreamEnd::ErrorAfter(_) => frames.push(Frame::data(format!(
                    "data: {}\n\n",
                    json!({"error": {"message": "The server is overloaded", "type": "overloaded_error", "code": null}})
                ))),
                StreamEnd::CutAfter(_) | StreamEnd::EndAfter(_) => {}
            }
        }
    }
    respond(
        200,
        &headers,
        frames,
        reply.end,
        guard,
        Some((shared.clone(), request.index)),
    )
}

fn stop_before(end: StreamEnd, chunk: usize) -> bool {
    match end {
        StreamEnd::CutAfter(n) | StreamEnd::EndAfter(n) | StreamEnd::ErrorAfter(n) => chunk >= n,
        StreamEnd::Complete => false,
    }
}

fn openai_usage(prompt: u64, completion: u64, cached: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

fn anthropic_content(request: &FakeRequest, text: &str, length_cut: bool) -> (Value, &'static str) {
    let stop = if length_cut { "max_tokens" } else { "end_turn" };
    if let Some(name) = request.forced_tool()
        && let Ok(input) = serde_json::from_str::<serde_json::Map<String, Value>>(text)
    {
        let stop = if length_cut { "max_tokens" } else { "tool_use" };
        return (
            json!([{"type": "tool_use", "id": "toolu_fake", "name": name, "input": input}]),
            stop,
        );
    }
    (json!([{"type": "text", "text": text}]), stop)
}

fn respond(
    status: u16,
    headers: &[(String, String)],
    frames: Vec<Frame>,
    end: StreamEnd,
    guard: InFlight,
    chunk_log: Option<(Arc<Shared>, usize)>,
) -> Response {
    let cut = matches!(end, StreamEnd::CutAfter(_));
    // A non-streamed body that must be cut: send half of it, then abort.
    let frames = if cut && frames.len() == 1 && frames[0].content.is_none() && chunk_log.is_some() {
        let whole = &frames[0].bytes;
        let half = whole
            .char_indices()
            .nth(whole.chars().count() / 2)
            .map_or(0, |(i, _)| i);
        vec![Frame {
            bytes: whole[..half].to_owned(),
            wait: frames[0].wait,
            content: None,
        }]
    } else {
        frames
    };
    struct BodyState {
        frames: std::vec::IntoIter<Frame>,
        cut: bool,
        log: Option<(Arc<Shared>, usize)>,
        _guard: InFlight,
    }
    let state = BodyState {
        frames: frames.into_iter(),
        cut,
        log: chunk_log,
        _guard: guard,
    };
    let body = futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.frames.next() {
            Some(frame) => {
                if !frame.wait.is_zero() {
                    tokio::time::sleep(frame.wait).await;
                }
                if let (Some(index), Some((shared, request))) = (frame.content, &state.log) {
                    lock(&shared.chunks).push(SentChunk {
                        request: *request,
                        index,
                        at: Instant::now(),
                    });
                }
                Some((
                    Ok::<Bytes, std::io::Error>(Bytes::from(frame.bytes)),
                    Some(state),
                ))
            }
            None if state.cut => {
                // Pause first so the server flushes what was sent: a real broken stream delivers
                // its first chunks, then dies.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((Err(std::io::Error::other("fake-llm: stream cut")), None))
            }
            None => None,
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
