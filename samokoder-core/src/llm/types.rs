//! The provider-neutral request and response types every provider speaks.

use std::pin::Pin;

use futures::Stream;
use serde::{Deserialize, Serialize};

use super::LlmError;

/// Who wrote a message of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model. Anthropic receives these in its separate `system` field.
    System,
    /// The user (for us: the agent asking).
    User,
    /// The model's own earlier answers.
    Assistant,
}

impl Role {
    /// The lowercase wire name (`system`, `user`, `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// How the answer must be shaped, when the provider can enforce it natively.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// A JSON value matching `schema`. OpenAI-compatible providers send it as `response_format`
    /// (`json_schema`); Anthropic as a single tool the model is forced to call.
    JsonSchema {
        /// A name for the schema (`^[a-zA-Z0-9_-]{1,64}$`), also used as the Anthropic tool name.
        name: String,
        /// The JSON Schema (root type `object`).
        schema: serde_json::Value,
        /// Ask for strict schema adherence (OpenAI `strict: true`). The schema must then follow
        /// OpenAI's strict subset, which [`crate::llm::OutputSchema`] prepares.
        strict: bool,
    },
}

/// A provider-level chat request: everything resolved (model, limits, format).
///
/// Agents do not build this directly; they build an [`crate::llm::LlmCall`] and the session turns it
/// into a `ChatRequest` after routing, token counting and trimming. A custom [`crate::llm::Provider`]
/// receives it as is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model (or Azure deployment) name.
    pub model: String,
    /// The conversation, system messages included.
    pub messages: Vec<Message>,
    /// Sampling temperature; `None` leaves the provider's default.
    pub temperature: Option<f32>,
    /// The most tokens the answer may have. Always set: Anthropic requires it, and the context
    /// window check needs it.
    pub max_tokens: u32,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Native structured output, when the provider supports it for this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Stream the answer as server-sent events (deltas) instead of one response body.
    pub stream: bool,
}

impl ChatRequest {
    /// A request for `model` with the given messages, no streaming and `max_tokens` 1024.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            messages,
            temperature: None,
            max_tokens: 1024,
            stop: Vec::new(),
            response_format: None,
            stream: false,
        }
    }

    /// Total characters of all message contents (for records and estimates).
    pub fn prompt_chars(&self) -> usize {
        self.messages.iter().map(|m| m.content.len()).sum()
    }
}

/// Token usage of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt (input) tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Completion (output) tokens.
    pub completion_tokens: u64,
    /// The part of `prompt_tokens` served from the provider's prompt cache (billed cheaper).
    #[serde(default)]
    pub cached_prompt_tokens: u64,
    /// The provider reported no usage, so these figures are the layer's own estimate.
    #[serde(default)]
    pub estimated: bool,
}

impl Usage {
    /// Prompt plus completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// `max_tokens` was reached: the answer is cut.
    Length,
    /// The model called a tool (Anthropic structured output ends this way).
    ToolUse,
    /// The provider filtered the answer or the model refused.
    ContentFilter,
    /// Anything else, as the provider named it.
    Other(String),
}

/// The final answer of one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The whole answer text (for native structured output: the JSON document).
    pub text: String,
    /// Token usage.
    pub usage: Usage,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// The model that answered, as the provider reported it (may carry a date suffix).
    pub model: String,
    /// The provider's id for the response, for support tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
}

/// One item of a provider's answer stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// A piece of answer text, in order.
    Delta(String),
    /// The end: the full answer with usage. A stream must end with exactly one `Done`; a stream
    /// that ends without it counts as broken (a transient failure).
    Done(ChatResponse),
}

/// The answer stream a [`crate::llm::Provider`] returns.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// Builds a [`ChatStream`] that delivers `response` in one piece: for providers (and custom
/// implementations) that have the whole answer at once.
pub fn single_response_stream(response: ChatResponse) -> ChatStream {
    Box::pin(futures::stream::iter([Ok(StreamEvent::Done(response))]))
}
