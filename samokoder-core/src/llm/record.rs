//! The record every request leaves behind, the port the store implements to keep it, and the
//! replay cache built on the same records.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::pricing::Micros;
use super::{AgentRole, ChatRequest, ChatResponse, Usage};

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RecordOutcome {
    /// An answer arrived.
    Ok,
    /// The answer came from the replay cache; nothing was sent.
    Replayed,
    /// The request failed; `code` is [`crate::llm::LlmError::code`].
    Error {
        /// Stable error code.
        code: String,
        /// The error's message (scrubbed, no prompt).
        message: String,
    },
}

/// One request to a provider (one transport attempt), as the store keeps it.
///
/// `request` and `response` are the provider-neutral bodies: with `request_hash` they make the
/// log usable as a replay cache (see [`ReplayCache`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlmRecord {
    /// Unique id (UUID v7, so ids sort by time).
    pub id: Uuid,
    /// The run the request belongs to, when the session knows it.
    pub run_id: Option<Uuid>,
    /// A caller-chosen label (the engine's step id), for finding a step's requests.
    pub label: Option<String>,
    /// Provider name.
    pub provider: String,
    /// Model asked for.
    pub model: String,
    /// The role that asked.
    pub role: AgentRole,
    /// Transport attempt within the call (0 for the first send).
    pub attempt: u32,
    /// Parse attempt of a structured call (0 for the first answer).
    pub parse_attempt: u32,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// Wall time of the attempt in milliseconds.
    pub latency_ms: u64,
    /// Time to the first streamed token, for streaming requests.
    pub first_token_ms: Option<u64>,
    /// Tokens used (estimated for failed attempts that produced partial output).
    pub usage: Usage,
    /// Cost in micro-dollars (0 when the model has no price).
    pub cost_micros: Micros,
    /// Whether the model had a price.
    pub priced: bool,
    /// How it ended.
    pub outcome: RecordOutcome,
    /// Characters sent (all message contents).
    pub prompt_chars: u64,
    /// Characters received.
    pub response_chars: u64,
    /// [`request_hash`] of `request` on `provider`.
    pub request_hash: String,
    /// What was sent (after trimming and structured-output preparation).
    pub request: ChatRequest,
    /// What came back, for successful requests.
    pub response: Option<ChatResponse>,
}

/// A stable hash of everything that determines an answer: provider, model, messages, output
/// schema and sampling parameters. Streaming or not does not change the answer and is left out.
///
/// The engine combines it with the run and step to key its replay cache. A version tag is part of
/// the hashed text so a future change of what is hashed cannot collide with old keys.
///
/// ```
/// use samokoder_core::llm::{request_hash, ChatRequest, Message};
///
/// let mut a = ChatRequest::new("gpt-4o", vec![Message::user("hi")]);
/// let mut b = a.clone();
/// b.stream = !a.stream;
/// assert_eq!(request_hash("openai", &a), request_hash("openai", &b));
/// a.temperature = Some(0.1);
/// assert_ne!(request_hash("openai", &a), request_hash("openai", &b));
/// assert_ne!(request_hash("openai", &b), request_hash("groq", &b));
/// ```
pub fn request_hash(provider: &str, request: &ChatRequest) -> String {
    #[derive(Serialize)]
    struct Hashed<'a> {
        v: u32,
        provider: &'a str,
        model: &'a str,
        messages: &'a [super::Message],
        temperature: Option<f32>,
        max_tokens: u32,
        stop: &'a [String],
        response_format: &'a Option<super::ResponseFormat>,
    }
    let hashed = Hashed {
        v: 1,
        provider,
        model: &request.model,
        messages: &request.messages,
        temperature: request.temperature,
        max_tokens: request.max_tokens,
        stop: &request.stop,
        response_format: &request.response_format,
    };
    let mut hasher = Sha256::new();
    // Serialising our own structs cannot fail; the expect documents that, not a runtime risk.
    serde_json::to_writer(HashWriter(&mut hasher), &hashed)
        .expect("serialising a request to a hasher");
    hex::encode(hasher.finalize())
}

/// Feeds serde_json output straight into the hasher (no intermediate buffer).
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Receives every request record. The store implements it; the engine may wrap it to also feed
/// metrics. Implementations should not fail the request: log and drop on storage errors.
#[async_trait]
pub trait LlmRecorder: Send + Sync {
    /// Keeps one record.
    async fn record(&self, record: LlmRecord);
}

/// Answers requests that were already answered (a resumed step, a replayed run) without sending
/// them: looked up by [`request_hash`] before anything is sent or charged.
#[async_trait]
pub trait ReplayCache: Send + Sync {
    /// The recorded answer for `request_hash`, if any.
    async fn lookup(&self, request_hash: &str) -> Option<ChatResponse>;
}

/// Keeps records in memory: for tests, examples and small embedders. Also a [`ReplayCache`] over
/// its own successful records.
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    records: Mutex<Vec<LlmRecord>>,
}

impl MemoryRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the records so far, in order.
    pub fn records(&self) -> Vec<LlmRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Total usage over all records.
    pub fn total_usage(&self) -> Usage {
        self.records().iter().fold(Usage::default(), |mut acc, r| {
            acc.prompt_tokens += r.usage.prompt_tokens;
            acc.completion_tokens += r.usage.completion_tokens;
            acc.cached_prompt_tokens += r.usage.cached_prompt_tokens;
            acc.estimated |= r.usage.estimated;
            acc
        })
    }

    /// Total cost over all records.
    pub fn total_cost(&self) -> Micros {
        self.records().iter().map(|r| r.cost_micros).sum()
    }
}

#[async_trait]
impl LlmRecorder for MemoryRecorder {
    async fn record(&self, record: LlmRecord) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }
}

#[async_trait]
impl ReplayCache for MemoryRecorder {
    async fn lookup(&self, request_hash: &str) -> Option<ChatResponse> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find(|r| r.request_hash == request_hash && r.outcome == RecordOutcome::Ok)
            .and_then(|r| r.response.clone())
    }
}
