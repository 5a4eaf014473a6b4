//! The error taxonomy of the LLM layer.
//!
//! Every failure a provider can produce maps to one variant, and the variant alone decides what
//! the layer does next: retry after a wait ([`LlmError::RateLimited`], [`LlmError::Transient`]),
//! give up on this request ([`LlmError::ContextOverflow`], [`LlmError::InvalidOutput`]), or stop
//! the whole run ([`LlmError::Authentication`], [`LlmError::Fatal`],
//! [`LlmError::BudgetExhausted`]). Messages carry the provider's own explanation (scrubbed of the
//! API key and truncated) but never the prompt.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::budget::BudgetExhausted;

/// What kind of passing failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransientKind {
    /// The TCP/TLS connection could not be made.
    Connect,
    /// The provider went silent longer than the idle timeout (slow first token, stalled stream).
    Timeout,
    /// An HTTP 5xx other than "overloaded".
    Server,
    /// The provider said it is overloaded (Anthropic 529, `overloaded_error`).
    Overloaded,
    /// The answer stream broke off, or ended without its final event.
    StreamBroken,
    /// The provider answered with a body that is not its protocol (a proxy page, broken JSON).
    MalformedResponse,
}

impl fmt::Display for TransientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connection failed",
            Self::Timeout => "timed out",
            Self::Server => "server error",
            Self::Overloaded => "overloaded",
            Self::StreamBroken => "stream broken",
            Self::MalformedResponse => "malformed response",
        })
    }
}

/// What kind of permanent failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FatalKind {
    /// The model (or Azure deployment) does not exist for this key.
    ModelNotFound,
    /// The account is out of quota or credit; waiting does not help.
    QuotaExceeded,
    /// The provider rejected the request as invalid.
    BadRequest,
    /// Any other non-retryable status.
    Other,
}

impl fmt::Display for FatalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ModelNotFound => "model not found",
            Self::QuotaExceeded => "quota exceeded",
            Self::BadRequest => "bad request",
            Self::Other => "request failed",
        })
    }
}

/// Errors of the LLM layer.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The key was rejected (HTTP 401/403). Retrying cannot help; the user must fix the key.
    #[error("{provider}: authentication failed (HTTP {status}): {message}")]
    Authentication {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's explanation (scrubbed).
        message: String,
    },
    /// The provider asked us to slow down.
    #[error("{provider}: rate limited{}: {message}", fmt_wait(*retry_after))]
    RateLimited {
        /// Provider name.
        provider: String,
        /// How long the provider asked us to wait, from `retry-after`, `retry-after-ms`, the
        /// OpenAI `x-ratelimit-reset-*` durations or the Anthropic reset timestamps.
        retry_after: Option<Duration>,
        /// The provider's explanation (scrubbed).
        message: String,
    },
    /// The prompt plus the requested output does not fit the model's context window. Raised
    /// before sending when the layer's count says so, or from the provider's own refusal.
    #[error("{provider}: context overflow: {message}")]
    ContextOverflow {
        /// Provider name.
        provider: String,
        /// The counted prompt tokens, when the layer refused before sending.
        prompt_tokens: Option<u64>,
        /// The context window the layer checked against.
        context_window: Option<u64>,
        /// What happened.
        message: String,
    },
    /// A failure that may pass: retried with backoff.
    #[error("{provider}: {kind}: {message}")]
    Transient {
        /// Provider name.
        provider: String,
        /// What failed.
        kind: TransientKind,
        /// A wait the provider asked for (e.g. `retry-after` on a 503 or 529).
        retry_after: Option<Duration>,
        /// Details (scrubbed).
        message: String,
    },
    /// A failure that will not pass by retrying.
    #[error("{provider}: {kind}: {message}")]
    Fatal {
        /// Provider name.
        provider: String,
        /// What failed.
        kind: FatalKind,
        /// The provider's explanation (scrubbed).
        message: String,
    },
    /// The model kept answering in a shape the caller cannot use, past the parse-retry limit.
    #[error("the answer was still unusable after {attempts} attempts: {last_error}")]
    InvalidOutput {
        /// Answers received (first answer plus re-asks).
        attempts: u32,
        /// Why the last answer was rejected.
        last_error: String,
    },
    /// A per-run budget is used up; the engine stops the run cleanly between steps.
    #[error(transparent)]
    BudgetExhausted(#[from] BudgetExhausted),
    /// The run's cancellation token fired.
    #[error("cancelled")]
    Cancelled,
    /// The per-request deadline passed (retries and waits included).
    #[error("no answer within the request deadline of {}", fmt_duration(*deadline))]
    DeadlineExceeded {
        /// The deadline that applied.
        deadline: Duration,
    },
    /// The LLM configuration cannot serve this request (unknown provider, missing key,
    /// disallowed base URL).
    #[error("LLM configuration: {0}")]
    Config(String),
    /// A route of the run needs a provider that has no API key: neither the deployment nor the
    /// user configured one.
    #[error(
        "LLM configuration: provider `{provider}` has no API key (configure one for the deployment or add your own)"
    )]
    MissingKey {
        /// The provider without a key.
        provider: String,
    },
    /// A route of the run would spend the deployment's key on a model the deployment has no
    /// price for, so no budget could count what it costs.
    #[error(
        "LLM configuration: model `{model}` on `{provider}` has no price on this deployment (choose a priced model, add your own key for `{provider}`, or have the operator price it in `llm.pricing`)"
    )]
    Unpriced {
        /// The provider whose deployment key the route uses.
        provider: String,
        /// The model without a price.
        model: String,
    },
}

fn fmt_wait(wait: Option<Duration>) -> String {
    match wait {
        Some(wait) => format!(" (retry after {})", fmt_duration(wait)),
        None => String::new(),
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.as_millis() < 10_000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

impl LlmError {
    /// Whether waiting and sending the same request again can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient { .. })
    }

    /// Whether the error dooms every other request of the run too (bad key, missing model,
    /// quota, budget, configuration): the parallel executor cancels siblings on these.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Authentication { .. }
                | Self::Fatal { .. }
                | Self::BudgetExhausted(_)
                | Self::Config(_)
                | Self::MissingKey { .. }
                | Self::Unpriced { .. }
        )
    }

    /// The wait the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Transient { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// A stable snake_case code for this kind of error (for the server's error body, records
    /// and metrics).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Authentication { .. } => "llm_authentication",
            Self::RateLimited { .. } => "llm_rate_limited",
            Self::ContextOverflow { .. } => "llm_context_overflow",
            Self::Transient { .. } => "llm_transient",
            Self::Fatal {
                kind: FatalKind::QuotaExceeded,
                ..
            } => "llm_quota_exceeded",
            Self::Fatal {
                kind: FatalKind::ModelNotFound,
                ..
            } => "llm_model_not_found",
            Self::Fatal { .. } => "llm_fatal",
            Self::InvalidOutput { .. } => "llm_invalid_output",
            Self::BudgetExhausted(_) => "budget_exhausted",
            Self::Cancelled => "cancelled",
            Self::DeadlineExceeded { .. } => "llm_deadline_exceeded",
            Self::Config(_) => "llm_config",
            Self::MissingKey { .. } => "provider_key_missing",
            Self::Unpriced { .. } => "model_unpriced",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taxonomy_decides_retry_and_fatality() {
        let rate = LlmError::RateLimited {
            provider: "p".into(),
            retry_after: Some(Duration::from_secs(2)),
            message: "slow down".into(),
        };
        assert!(rate.is_retryable());
        assert!(!rate.is_fatal());
        assert_eq!(rate.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(
            rate.to_string(),
            "p: rate limited (retry after 2000ms): slow down"
        );

        let quota = LlmError::Fatal {
            provider: "p".into(),
            kind: FatalKind::QuotaExceeded,
            message: "no credit".into(),
        };
        assert!(!quota.is_retryable());
        assert!(quota.is_fatal());
        assert_eq!(quota.code(), "llm_quota_exceeded");

        let overflow = LlmError::ContextOverflow {
            provider: "p".into(),
            prompt_tokens: Some(10),
            context_window: Some(5),
            message: "too long".into(),
        };
        assert!(!overflow.is_retryable());
        assert!(!overflow.is_fatal());
    }
}
