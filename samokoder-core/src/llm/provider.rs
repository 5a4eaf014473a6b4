//! The `Provider` trait every model backend implements, and the sinks streamed text goes to.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{ChatRequest, ChatResponse, ChatStream, LlmError, TokenizerKind};

/// How a provider can be made to answer in a given JSON shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutputMode {
    /// Only through the prompt: the schema is written into the system message.
    #[default]
    Prompt,
    /// OpenAI-style `response_format: {type: json_schema}` without `strict`.
    JsonSchema,
    /// OpenAI-style `response_format` with `strict: true` (the schema is converted to OpenAI's
    /// strict subset; when a schema cannot be, the layer falls back to non-strict).
    JsonSchemaStrict,
    /// A single tool whose input schema is the output schema, which the model is forced to call
    /// (Anthropic).
    ForcedTool,
}

/// What a provider can do for a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Native structured output support.
    pub structured_output: StructuredOutputMode,
    /// How to count this model's tokens before sending.
    pub tokenizer: TokenizerKind,
}

/// A model backend: takes a chat request and returns its answer as a stream.
///
/// The trait is object-safe (`Arc<dyn Provider>`); implement it with `#[async_trait]`. Retries,
/// budgets, records, token counting and cancellation are the session's job, so an implementation
/// only translates one request into its backend's protocol and reports failures in the
/// [`LlmError`] taxonomy (a transient failure as [`LlmError::Transient`], and so on): that is
/// what makes the session retry it or not.
///
/// The returned stream yields [`crate::llm::StreamEvent::Delta`]s (for `request.stream`) and
/// must end with one [`crate::llm::StreamEvent::Done`]. A backend without streaming can return
/// [`crate::llm::single_response_stream`].
///
/// ```
/// use async_trait::async_trait;
/// use samokoder_core::llm::{
///     single_response_stream, Capabilities, ChatRequest, ChatResponse, ChatStream, FinishReason,
///     LlmError, Provider, Usage,
/// };
///
/// /// Answers every question with its length.
/// struct Counter;
///
/// #[async_trait]
/// impl Provider for Counter {
///     fn name(&self) -> &str {
///         "counter"
///     }
///     fn capabilities(&self, _model: &str) -> Capabilities {
///         Capabilities::default()
///     }
///     async fn chat(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
///         let chars = request.prompt_chars();
///         Ok(single_response_stream(ChatResponse {
///             text: chars.to_string(),
///             usage: Usage { prompt_tokens: chars as u64, completion_tokens: 1, ..Usage::default() },
///             finish_reason: FinishReason::Stop,
///             model: request.model.clone(),
///             provider_id: None,
///         }))
///     }
/// }
/// ```
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's name in configuration, records and errors (`openai`, `anthropic`, ...).
    fn name(&self) -> &str;

    /// What the provider supports for `model`.
    fn capabilities(&self, model: &str) -> Capabilities;

    /// Sends one request. Resolves once the response headers are in (so HTTP errors, rate
    /// limits included, surface here); the body follows through the stream.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatStream, LlmError>;
}

/// A provider together with the semaphore that bounds its requests in flight.
///
/// Every request of every session that holds this handle takes a permit for the duration of
/// one attempt (not while waiting out a rate limit), so the bound holds across parallel calls,
/// agents and, when the handle is shared, runs.
#[derive(Clone)]
pub struct ProviderHandle {
    provider: Arc<dyn Provider>,
    limiter: Arc<Semaphore>,
    max_concurrency: usize,
}

impl fmt::Debug for ProviderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderHandle")
            .field("name", &self.provider.name())
            .field("max_concurrency", &self.max_concurrency)
            .finish()
    }
}

/// Requests in flight per provider when nothing else is configured.
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;

impl ProviderHandle {
    /// Wraps `provider`, allowing at most `max_concurrency` requests in flight (at least 1).
    pub fn new(provider: Arc<dyn Provider>, max_concurrency: usize) -> Self {
        let max_concurrency = max_concurrency.max(1);
        Self {
            provider,
            limiter: Arc::new(Semaphore::new(max_concurrency)),
            max_concurrency,
        }
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        self.provider.name()
    }

    /// The in-flight bound.
    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    pub(crate) fn limiter(&self) -> &Arc<Semaphore> {
        &self.limiter
    }
}

/// Where streamed answer text goes as it arrives (the UI, through the engine's events).
///
/// Any `FnMut(&str) + Send` closure is a sink that sees only the deltas.
pub trait StreamSink: Send {
    /// A piece of answer text, in order.
    fn delta(&mut self, text: &str);

    /// The text delivered so far is void: the stream broke and the request is being retried
    /// from the start. Default: nothing.
    fn restart(&mut self) {}

    /// The answer is complete (the end-of-stream signal). Default: nothing.
    fn finish(&mut self, response: &ChatResponse) {
        let _ = response;
    }
}

impl<F: FnMut(&str) + Send> StreamSink for F {
    fn delta(&mut self, text: &str) {
        self(text);
    }
}

/// A sink that keeps the streamed text (and forgets it on restart): handy for tests and for
/// callers that want both the live stream and the final text checked against each other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectSink {
    /// The deltas of the current attempt, in order.
    pub deltas: Vec<String>,
    /// How many times the stream restarted.
    pub restarts: u32,
    /// Whether the end-of-stream signal arrived.
    pub finished: bool,
}

impl CollectSink {
    /// The deltas joined.
    pub fn text(&self) -> String {
        self.deltas.concat()
    }
}

impl StreamSink for CollectSink {
    fn delta(&mut self, text: &str) {
        self.deltas.push(text.to_owned());
    }

    fn restart(&mut self) {
        self.deltas.clear();
        self.restarts += 1;
    }

    fn finish(&mut self, _response: &ChatResponse) {
        self.finished = true;
    }
}
