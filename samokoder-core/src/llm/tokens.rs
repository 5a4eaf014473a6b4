//! Token counting before sending, model context windows, and fitting a conversation into one.
//!
//! OpenAI model families are counted exactly with `tiktoken-rs`, whose BPE tables are compiled
//! into the binary (`include_str!` of its bundled assets), so counting never touches the network.
//! Everything else (Anthropic, Llama on Groq, local models) uses a documented estimate:
//! `ceil(chars / 3.5)` per message plus a fixed per-message overhead. The estimate errs high for
//! English prose and code, which is the safe side for a "will it fit" decision.

use serde::{Deserialize, Serialize};
use tiktoken_rs::tokenizer::Tokenizer;

use super::{Message, Role};

/// Tokens every message costs beyond its content (role markers, separators). OpenAI documents
/// 3 for its chat format; 4 covers the other formats we estimate.
pub const MESSAGE_OVERHEAD_TOKENS: u64 = 4;
/// Tokens that prime the assistant's reply.
pub const REPLY_PRIMING_TOKENS: u64 = 3;

/// How a model's tokens are counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// OpenAI `o200k_base` (GPT-4o, GPT-4.1, GPT-5, o-series).
    O200k,
    /// OpenAI `cl100k_base` (GPT-4, GPT-3.5).
    Cl100k,
    /// `ceil(chars / 3.5)`: every other model.
    #[default]
    Estimate,
}

impl TokenizerKind {
    /// The exact tokenizer of an OpenAI model name, if tiktoken knows it.
    pub fn for_openai_model(model: &str) -> Option<Self> {
        match tiktoken_rs::tokenizer::get_tokenizer(model)? {
            Tokenizer::O200kBase | Tokenizer::O200kHarmony => Some(Self::O200k),
            Tokenizer::Cl100kBase => Some(Self::Cl100k),
            // Pre-chat models: the estimate is good enough and they are not used for agents.
            _ => None,
        }
    }

    /// Tokens of `text`.
    pub fn count(self, text: &str) -> u64 {
        match self {
            Self::O200k => tiktoken_rs::o200k_base_singleton().count_ordinary(text) as u64,
            Self::Cl100k => tiktoken_rs::cl100k_base_singleton().count_ordinary(text) as u64,
            Self::Estimate => estimate_tokens(text),
        }
    }

    /// Tokens of a whole conversation, including per-message overhead and reply priming.
    pub fn count_messages(self, messages: &[Message]) -> u64 {
        messages
            .iter()
            .map(|m| self.count(&m.content) + MESSAGE_OVERHEAD_TOKENS)
            .sum::<u64>()
            + REPLY_PRIMING_TOKENS
    }
}

/// The documented estimate: characters (Unicode scalar values) divided by 3.5, rounded up.
///
/// ```
/// use samokoder_core::llm::estimate_tokens;
/// assert_eq!(estimate_tokens(""), 0);
/// assert_eq!(estimate_tokens("abcdefg"), 2); // 7 / 3.5
/// assert_eq!(estimate_tokens("abcdefgh"), 3); // 8 / 3.5 = 2.29, rounded up
/// ```
pub fn estimate_tokens(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    // chars / 3.5 == chars * 2 / 7, kept in integers.
    (chars * 2).div_ceil(7)
}

/// The context window and output limit of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelLimits {
    /// Prompt plus output tokens the model accepts.
    pub context_window: u64,
    /// The most output tokens the model produces in one answer.
    pub max_output_tokens: u64,
}

/// Used for a model the catalogue does not know. Deliberately modest: local servers (Ollama in
/// particular) silently truncate prompts beyond their window, so over-assuming is the costly
/// mistake. Override per provider or model in configuration.
pub const UNKNOWN_MODEL_LIMITS: ModelLimits = ModelLimits {
    context_window: 32_768,
    max_output_tokens: 4_096,
};

/// Known limits by model-name prefix (the longest prefix wins).
const CATALOGUE: &[(&str, u64, u64)] = &[
    ("gpt-3.5-turbo", 16_385, 4_096),
    ("gpt-4", 8_192, 8_192),
    ("gpt-4-turbo", 128_000, 4_096),
    ("gpt-4o", 128_000, 16_384),
    ("gpt-4.1", 1_047_576, 32_768),
    ("gpt-5", 400_000, 128_000),
    ("o1", 200_000, 100_000),
    ("o3", 200_000, 100_000),
    ("o4-mini", 200_000, 100_000),
    ("claude-3-haiku", 200_000, 4_096),
    ("claude-3-opus", 200_000, 4_096),
    ("claude-3-5-haiku", 200_000, 8_192),
    ("claude-3-5-sonnet", 200_000, 8_192),
    ("claude-3-7-sonnet", 200_000, 64_000),
    ("claude-sonnet-4", 200_000, 64_000),
    ("claude-haiku-4-5", 200_000, 64_000),
    ("claude-opus-4", 200_000, 32_000),
    ("claude-opus-4-5", 200_000, 64_000),
    ("llama-3.1-8b-instant", 131_072, 131_072),
    ("llama-3.3-70b-versatile", 131_072, 32_768),
];

impl ModelLimits {
    /// The limits of `model` from the built-in catalogue, or [`UNKNOWN_MODEL_LIMITS`].
    pub fn lookup(model: &str) -> Self {
        // Providers prefix model names (`openai/gpt-4o` on OpenRouter); match on the last part.
        let bare = model.rsplit('/').next().unwrap_or(model);
        CATALOGUE
            .iter()
            .filter(|(prefix, _, _)| bare.starts_with(prefix))
            .max_by_key(|(prefix, _, _)| prefix.len())
            .map(|&(_, context_window, max_output_tokens)| Self {
                context_window,
                max_output_tokens,
            })
            .unwrap_or(UNKNOWN_MODEL_LIMITS)
    }
}

/// A conversation that fits, and what it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Fitted {
    /// The messages to send.
    pub messages: Vec<Message>,
    /// Their prompt tokens: the exact count when one was needed, otherwise the
    /// `ceil(chars / 3.5)` estimate (see [`fit_messages`]).
    pub prompt_tokens: u64,
    /// Whether `prompt_tokens` is an exact tokenizer count.
    pub exact: bool,
    /// How many messages were dropped to fit.
    pub dropped: usize,
}

/// Why a conversation cannot fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// Prompt tokens after all allowed trimming.
    pub prompt_tokens: u64,
    /// Tokens available for the prompt (`context_window - max_output`).
    pub prompt_budget: u64,
}

/// Fits `messages` into `context_window` leaving room for `max_output` tokens.
///
/// Exact tokenizers are only run when the answer depends on it. A byte-level BPE token covers at
/// least one byte, so the UTF-8 length is a sound upper bound of the token count: when even that
/// fits, the request fits, and `prompt_tokens` is the cheap estimate (exact counting of a 100 kB
/// prompt costs milliseconds; most requests are far from their window).
///
/// With `allow_trim`, the oldest droppable messages go first. System messages, the first
/// non-system message (the task statement) and the last message (the current question) are never
/// dropped; everything between them is history and may be.
///
/// ```
/// use samokoder_core::llm::{fit_messages, Message, TokenizerKind};
///
/// let history: Vec<Message> = vec![
///     Message::system("You are terse."),
///     Message::user("The task."),
///     Message::assistant("x".repeat(700)),
///     Message::user("y".repeat(700)),
///     Message::user("The question."),
/// ];
/// let fitted = fit_messages(TokenizerKind::Estimate, history, 400, 100, true).unwrap();
/// assert_eq!(fitted.dropped, 1);
/// assert_eq!(fitted.messages.len(), 4);
/// ```
pub fn fit_messages(
    counter: TokenizerKind,
    mut messages: Vec<Message>,
    context_window: u64,
    max_output: u64,
    allow_trim: bool,
) -> Result<Fitted, Overflow> {
    let prompt_budget = context_window.saturating_sub(max_output);
    let exact = counter != TokenizerKind::Estimate;
    if exact {
        let upper_bound = messages
            .iter()
            .map(|m| m.content.len() as u64 + MESSAGE_OVERHEAD_TOKENS)
            .sum::<u64>()
            + REPLY_PRIMING_TOKENS;
        if upper_bound <= prompt_budget {
            let prompt_tokens = TokenizerKind::Estimate.count_messages(&messages);
            return Ok(Fitted {
                messages,
                prompt_tokens,
                exact: false,
                dropped: 0,
            });
        }
    }
    let mut counts: Vec<u64> = messages
        .iter()
        .map(|m| counter.count(&m.content) + MESSAGE_OVERHEAD_TOKENS)
        .collect();
    let mut total: u64 = counts.iter().sum::<u64>() + REPLY_PRIMING_TOKENS;
    if total <= prompt_budget {
        return Ok(Fitted {
            messages,
            prompt_tokens: total,
            exact,
            dropped: 0,
        });
    }
    if !allow_trim {
        return Err(Overflow {
            prompt_tokens: total,
            prompt_budget,
        });
    }
    let first_task = messages.iter().position(|m| m.role != Role::System);
    let mut dropped = 0;
    let mut i = 0;
    while total > prompt_budget && i < messages.len() {
        let protected = messages[i].role == Role::System
            || Some(i + dropped) == first_task
            || i + 1 == messages.len();
        if protected {
            i += 1;
            continue;
        }
        total -= counts[i];
        messages.remove(i);
        counts.remove(i);
        dropped += 1;
    }
    if total <= prompt_budget {
        Ok(Fitted {
            messages,
            prompt_tokens: total,
            exact,
            dropped,
        })
    } else {
        Err(Overflow {
            prompt_tokens: total,
            prompt_budget,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiktoken_counts_openai_families_offline() {
        assert_eq!(
            TokenizerKind::for_openai_model("gpt-4o-2024-08-06"),
            Some(TokenizerKind::O200k)
        );
        assert_eq!(
            TokenizerKind::for_openai_model("gpt-4-0613"),
            Some(TokenizerKind::Cl100k)
        );
        assert_eq!(TokenizerKind::for_openai_model("llama-3.3-70b"), None);
        // "hello world" is two tokens in both encodings.
        assert_eq!(TokenizerKind::O200k.count("hello world"), 2);
        assert_eq!(TokenizerKind::Cl100k.count("hello world"), 2);
        let messages = [Message::user("hello world")];
        assert_eq!(TokenizerKind::O200k.count_messages(&messages), 2 + 4 + 3);
    }

    #[test]
    fn exact_counting_runs_only_near_the_window() {
        let messages = vec![Message::user("hello world ".repeat(100))];
        // 1200 bytes fit a 10k budget whatever the tokenizer says: no exact count.
        let far = fit_messages(
            TokenizerKind::O200k,
            messages.clone(),
            20_000,
            10_000,
            false,
        )
        .unwrap();
        assert!(!far.exact);
        assert_eq!(
            far.prompt_tokens,
            TokenizerKind::Estimate.count_messages(&messages)
        );
        // Near the window the exact count decides: about 200 tokens fit a budget of 300 that the
        // 1200 bytes would not, and do not fit a budget of 200.
        let exact = TokenizerKind::O200k.count_messages(&messages);
        assert!((200..300).contains(&exact), "{exact}");
        let near =
            fit_messages(TokenizerKind::O200k, messages.clone(), 1_300, 1_000, false).unwrap();
        assert!(near.exact);
        assert_eq!(near.prompt_tokens, exact);
        let over = fit_messages(TokenizerKind::O200k, messages, 1_200, 1_000, false).unwrap_err();
        assert_eq!(over.prompt_tokens, exact);
    }

    #[test]
    fn limits_match_the_longest_prefix() {
        assert_eq!(ModelLimits::lookup("gpt-4o-mini").context_window, 128_000);
        assert_eq!(ModelLimits::lookup("gpt-4-0613").context_window, 8_192);
        assert_eq!(
            ModelLimits::lookup("gpt-4.1-mini").context_window,
            1_047_576
        );
        assert_eq!(ModelLimits::lookup("openai/gpt-4o").context_window, 128_000);
        assert_eq!(
            ModelLimits::lookup("claude-sonnet-4-20250514").max_output_tokens,
            64_000
        );
        assert_eq!(ModelLimits::lookup("mystery"), UNKNOWN_MODEL_LIMITS);
    }

    #[test]
    fn refuses_without_trim_and_keeps_protected_messages_with_it() {
        let messages = vec![
            Message::system("s"),
            Message::user("task"),
            Message::assistant("a".repeat(350)), // 100 tokens
            Message::user("b".repeat(350)),
            Message::assistant("c".repeat(350)),
            Message::user("question"),
        ];
        let err =
            fit_messages(TokenizerKind::Estimate, messages.clone(), 220, 100, false).unwrap_err();
        assert_eq!((err.prompt_tokens, err.prompt_budget), (333, 120));

        // Two dropped messages leave 125 tokens: one more must go.
        let fitted =
            fit_messages(TokenizerKind::Estimate, messages.clone(), 220, 100, true).unwrap();
        assert_eq!(fitted.dropped, 3);
        let contents: Vec<&str> = fitted.messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, ["s", "task", "question"]);

        // Even dropping all history cannot make a huge question fit.
        let mut huge = messages.clone();
        huge.push(Message::user("z".repeat(3_500)));
        assert!(fit_messages(TokenizerKind::Estimate, huge, 220, 100, true).is_err());
        // Just enough is dropped, oldest first.
        let two = fit_messages(TokenizerKind::Estimate, messages, 230, 100, true).unwrap();
        assert_eq!(two.dropped, 2);
        assert_eq!(two.messages[2].content, "c".repeat(350));
    }
}
