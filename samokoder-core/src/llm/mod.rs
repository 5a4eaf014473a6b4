//! The LLM layer: every agent talks to models through here.
//!
//! - [`Provider`]: one trait per model backend, with [`OpenAiProvider`] (OpenAI, Azure OpenAI,
//!   Groq, OpenRouter, Ollama, vLLM, LM Studio) and [`AnthropicProvider`] built in. Embedders
//!   add their own (`examples/custom_provider.rs`).
//! - [`LlmSession`]: the per-run entry point. Routes a role's [`LlmCall`] to its provider and
//!   model ([`RouteTable`], resolved per run by [`LlmRegistry`] from [`LlmConfig`] and the user's
//!   own keys), counts tokens and refuses or trims what cannot fit ([`fit_messages`]), checks and
//!   charges the [`Budget`], retries under the [`RetryPolicy`] (never waiting less than a
//!   provider asked), streams deltas to a [`StreamSink`], stops within one chunk when its
//!   cancellation token fires, parses structured output ([`LlmSession::structured`]) with
//!   re-asks, records every request for an [`LlmRecorder`], and runs independent requests in
//!   parallel under per-provider bounds ([`LlmSession::parallel`]).
//! - Errors are one taxonomy, [`LlmError`]; progress (rate-limit waits, retries, re-asks) is
//!   reported as [`LlmEvent`]s.
//! - With the `fake-llm` feature, [`fake::FakeLlm`] is a real HTTP server speaking both wire
//!   protocols, scriptable per test.

mod anthropic;
mod budget;
mod config;
mod error;
pub(crate) mod http;
mod openai;
mod parse;
mod pricing;
mod provider;
mod record;
mod retry;
mod routing;
mod secret;
mod session;
mod structured;
mod tokens;
mod types;

#[cfg(feature = "fake-llm")]
pub mod fake;

/// The attribute macro that makes [`Provider`], [`LlmRecorder`] and [`ReplayCache`]
/// implementations object-safe, re-exported so embedders need not depend on `async-trait`
/// themselves (and cannot pick a mismatched version).
pub use async_trait::async_trait;

pub use anthropic::{ANTHROPIC_VERSION, AnthropicProvider};
pub use budget::{Budget, BudgetExhausted, BudgetLimits, BudgetResource, BudgetState, BudgetUsage};
pub use config::{
    LlmConfig, LlmRegistry, ModelConfig, ProviderConfig, ProviderKind, RouteConfig,
    UserLlmSettings, UserProviderSettings,
};
pub use error::{FatalKind, LlmError, TransientKind};
pub use openai::{MaxTokensField, OpenAiOptions, OpenAiProvider, default_http_client};
pub use parse::{CodeBlock, FileBlock, code_blocks, extract_json, file_blocks, parse_json};
pub use pricing::{Micros, ModelPrice, PriceTable, UsdPerMTok, format_usd};
pub use provider::{
    Capabilities, CollectSink, DEFAULT_MAX_CONCURRENCY, Provider, ProviderHandle, StreamSink,
    StructuredOutputMode,
};
pub use record::{
    LlmRecord, LlmRecorder, MemoryRecorder, RecordOutcome, ReplayCache, request_hash,
};
pub use retry::{RetryDecision, RetryPolicy};
pub use routing::{AgentRole, DEFAULT_MAX_OUTPUT_TOKENS, Route, RouteTable};
pub use secret::ApiKey;
pub use session::{
    Completion, LlmCall, LlmEvent, LlmEventSink, LlmSession, LlmSessionBuilder, Structured,
};
pub use structured::OutputSchema;
pub use tokens::{
    Fitted, MESSAGE_OVERHEAD_TOKENS, ModelLimits, Overflow, REPLY_PRIMING_TOKENS, TokenizerKind,
    UNKNOWN_MODEL_LIMITS, estimate_tokens, fit_messages,
};
pub use types::{
    ChatRequest, ChatResponse, ChatStream, FinishReason, Message, ResponseFormat, Role,
    StreamEvent, Usage, single_response_stream,
};
