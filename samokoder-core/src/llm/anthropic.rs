//! The native Anthropic Messages protocol.
//!
//! Differences from the OpenAI shape that this module absorbs: the system prompt is its own
//! field; user and assistant turns must alternate (consecutive same-role messages are merged
//! with a blank line, as the original intended); `max_tokens` is required; structured output is a
//! tool the model is forced to call; the stream is a sequence of typed events.

use std::pin::Pin;

use async_trait::async_trait;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

use super::http::{self, ErrorBody};
use super::openai::default_http_client;
use super::{
    ApiKey, Capabilities, ChatRequest, ChatResponse, ChatStream, FinishReason, LlmError, Message,
    Provider, ResponseFormat, Role, StreamEvent, StructuredOutputMode, TokenizerKind, Usage,
};

/// The API version header this client implements.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A provider speaking the Anthropic Messages API.
///
/// ```
/// use samokoder_core::llm::{AnthropicProvider, ApiKey, Provider, StructuredOutputMode};
///
/// let claude = AnthropicProvider::new("anthropic", "https://api.anthropic.com", ApiKey::new("sk-ant-..."))
///     .unwrap();
/// assert_eq!(claude.capabilities("claude-sonnet-4-5").structured_output, StructuredOutputMode::ForcedTool);
/// ```
#[derive(Clone, Debug)]
pub struct AnthropicProvider {
    name: String,
    url: Url,
    key: ApiKey,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl AnthropicProvider {
    /// A provider at `base_url` (`https://api.anthropic.com`; `/v1/messages` is appended).
    pub fn new(name: impl Into<String>, base_url: &str, api_key: ApiKey) -> Result<Self, LlmError> {
        let name = name.into();
        let mut url = Url::parse(base_url.trim()).map_err(|e| {
            LlmError::Config(format!("provider {name}: base URL is not a URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(LlmError::Config(format!(
                "provider {name}: base URL must be http or https"
            )));
        }
        if let Ok(mut path) = url.path_segments_mut() {
            // Accept a base given with or without the version segment.
            path.pop_if_empty();
        }
        let url = if url.path().trim_end_matches('/').ends_with("/v1") {
            join(&url, &["messages"])
        } else {
            join(&url, &["v1", "messages"])
        };
        let mut headers = HeaderMap::new();
        let mut key_value = HeaderValue::from_str(api_key.expose()).map_err(|_| {
            LlmError::Config(format!(
                "provider {name}: the API key is not a valid header value"
            ))
        })?;
        key_value.set_sensitive(true);
        headers.insert(HeaderName::from_static("x-api-key"), key_value);
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        Ok(Self {
            name,
            url,
            key: api_key,
            headers,
            client: default_http_client(),
        })
    }

    /// Adds a header to every request (a beta flag, a gateway header).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, LlmError> {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            LlmError::Config(format!("provider {}: bad header name `{name}`", self.name))
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            LlmError::Config(format!(
                "provider {}: bad value for header `{name}`",
                self.name
            ))
        })?;
        self.headers.insert(header, value);
        Ok(self)
    }

    /// Uses `client` (share one client across providers to share its connection pool).
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }
}

fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[derive(Serialize, Debug, PartialEq)]
pub(crate) struct WireMessage {
    pub(crate) role: &'static str,
    pub(crate) content: String,
}

/// Splits system messages off into one system prompt and merges consecutive same-role turns.
pub(crate) fn convert_messages(messages: &[Message]) -> (Option<String>, Vec<WireMessage>) {
    let mut system: Vec<&str> = Vec::new();
    let mut out: Vec<WireMessage> = Vec::new();
    for message in messages {
        let role = match message.role {
            Role::System => {
                system.push(&message.content);
                continue;
            }
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        match out.last_mut() {
            Some(last) if last.role == role => {
                last.content.push_str("\n\n");
                last.content.push_str(&message.content);
            }
            _ => out.push(WireMessage {
                role,
                content: message.content.clone(),
            }),
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    (system, out)
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'static str,
    input_schema: &'a serde_json::Value,
}

#[derive(Serialize)]
struct WireToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[WireTool<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
}

fn body(request: &ChatRequest) -> WireRequest<'_> {
    let (system, messages) = convert_messages(&request.messages);
    let (tools, tool_choice) = match &request.response_format {
        Some(ResponseFormat::JsonSchema { name, schema, .. }) => (
            Some([WireTool {
                name,
                description: "Return the answer. Its input is the complete answer in the required shape.",
                input_schema: schema,
            }]),
            Some(WireToolChoice { kind: "tool", name }),
        ),
        None => (None, None),
    };
    WireRequest {
        model: &request.model,
        max_tokens: request.max_tokens,
        system,
        messages,
        // Anthropic's range is 0..=1; OpenAI-style temperatures above 1 are clamped, not refused.
        temperature: request.temperature.map(|t| t.clamp(0.0, 1.0)),
        stop_sequences: &request.stop,
        stream: request.stream,
        tools,
        tool_choice,
    }
}

#[derive(Deserialize, Default, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Later usage reports (`message_delta`) update only the fields they carry.
    fn merge(&mut self, other: WireUsage) {
        self.input_tokens = other.input_tokens.or(self.input_tokens);
        self.output_tokens = other.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = other
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = other
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }

    /// Anthropic's `input_tokens` excludes cache reads and writes; ours includes them.
    fn to_usage(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: self.input_tokens.unwrap_or(0)
                + cached
                + self.cache_creation_input_tokens.unwrap_or(0),
            completion_tokens: self.output_tokens.unwrap_or(0),
            cached_prompt_tokens: cached,
            estimated: self.input_tokens.is_none() && self.output_tokens.is_none(),
        }
    }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<WireBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        #[serde(default)]
        input: serde_json::Value,
    },
    #[serde(other)]
    Other,
}

fn stop_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("end_turn" | "stop_sequence") | None => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolUse,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self, _model: &str) -> Capabilities {
        Capabilities {
            structured_output: StructuredOutputMode::ForcedTool,
            tokenizer: TokenizerKind::Estimate,
        }
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .json(&body(request))
            .send()
            .await
            .map_err(|e| http::transport_error(&self.name, e, Some(&self.key)))?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            return Err(http::classify_status(
                &self.name,
                status,
                &headers,
                &body,
                Some(&self.key),
            ));
        }
        if !request.stream {
            let body = response
                .bytes()
                .await
                .map_err(|e| http::transport_error(&self.name, e, Some(&self.key)))?;
            let parsed: WireResponse = serde_json::from_slice(&body)
                .map_err(|e| http::malformed(&self.name, format!("messages body: {e}")))?;
            // With a forced tool the answer is the tool input; otherwise the text blocks.
            let tool_input = parsed.content.iter().find_map(|b| match b {
                WireBlock::ToolUse { input } => Some(input.to_string()),
                _ => None,
            });
            let text = tool_input.unwrap_or_else(|| {
                parsed
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        WireBlock::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect()
            });
            return Ok(super::single_response_stream(ChatResponse {
                text,
                usage: parsed.usage.to_usage(),
                finish_reason: stop_reason(parsed.stop_reason.as_deref()),
                model: parsed.model.unwrap_or_else(|| request.model.clone()),
                provider_id: parsed.id,
            }));
        }
        let state = SseState {
            events: Box::pin(response.bytes_stream().eventsource()),
            provider: self.name.clone(),
            key: self.key.clone(),
            text: String::new(),
            tool_json: None,
            stop: None,
            usage: WireUsage::default(),
            model: request.model.clone(),
            id: None,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, SseState::step)))
    }
}

type Events = Pin<
    Box<
        dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<reqwest::Error>>>
            + Send,
    >,
>;

struct SseState {
    events: Events,
    provider: String,
    key: ApiKey,
    text: String,
    /// The forced tool's input JSON, once a `tool_use` block started.
    tool_json: Option<String>,
    stop: Option<String>,
    usage: WireUsage,
    model: String,
    id: Option<String>,
    done: bool,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: WireStartMessage,
    },
    ContentBlockStart {
        content_block: WireStartBlock,
    },
    ContentBlockDelta {
        delta: WireDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: WireMessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error {
        error: serde_json::Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireStartMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireStartBlock {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct WireMessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

impl SseState {
    fn finish_event(&mut self) -> StreamEvent {
        let text = match self.tool_json.take() {
            Some(json) => json,
            None => std::mem::take(&mut self.text),
        };
        StreamEvent::Done(ChatResponse {
            text,
            usage: self.usage.to_usage(),
            finish_reason: stop_reason(self.stop.as_deref()),
            model: std::mem::take(&mut self.model),
            provider_id: self.id.take(),
        })
    }

    fn fail(mut self, error: LlmError) -> Option<(Result<StreamEvent, LlmError>, Self)> {
        self.done = true;
        Some((Err(error), self))
    }

    async fn step(mut self) -> Option<(Result<StreamEvent, LlmError>, Self)> {
        if self.done {
            return None;
        }
        loop {
            let event = match self.events.next().await {
                None => {
                    let provider = self.provider.clone();
                    return self.fail(http::stream_broken(
                        &provider,
                        "the stream ended before message_stop",
                    ));
                }
                Some(Err(EventStreamError::Transport(e))) => {
                    let error = http::transport_error(&self.provider, e, Some(&self.key));
                    return self.fail(error);
                }
                Some(Err(e)) => {
                    let error = http::malformed(&self.provider, format!("event stream: {e}"));
                    return self.fail(error);
                }
                Some(Ok(event)) => event,
            };
            if event.data.trim().is_empty() {
                continue;
            }
            let parsed: WireEvent = match serde_json::from_str(&event.data) {
                Ok(parsed) => parsed,
                Err(e) => {
                    let error =
                        http::malformed(&self.provider, format!("`{}` event: {e}", event.event));
                    return self.fail(error);
                }
            };
            match parsed {
                WireEvent::MessageStart { message } => {
                    self.id = message.id.or(self.id.take());
                    if let Some(model) = message.model {
                        self.model = model;
                    }
                    if let Some(usage) = message.usage {
                        self.usage.merge(usage);
                    }
                }
                WireEvent::ContentBlockStart { content_block } => {
                    if content_block.kind == "tool_use" {
                        self.tool_json.get_or_insert_with(String::new);
                    }
                }
                WireEvent::ContentBlockDelta { delta } => {
                    let piece = match delta {
                        WireDelta::TextDelta { text } => {
                            self.text.push_str(&text);
                            text
                        }
                        WireDelta::InputJsonDelta { partial_json } => {
                            self.tool_json
                                .get_or_insert_with(String::new)
                                .push_str(&partial_json);
                            partial_json
                        }
                        WireDelta::Other => continue,
                    };
                    if !piece.is_empty() {
                        return Some((Ok(StreamEvent::Delta(piece)), self));
                    }
                }
                WireEvent::MessageDelta { delta, usage } => {
                    if delta.stop_reason.is_some() {
                        self.stop = delta.stop_reason;
                    }
                    if let Some(usage) = usage {
                        self.usage.merge(usage);
                    }
                }
                WireEvent::MessageStop => {
                    self.done = true;
                    let end = self.finish_event();
                    return Some((Ok(end), self));
                }
                WireEvent::Error { error } => {
                    let body = ErrorBody::parse(
                        &serde_json::to_vec(&serde_json::json!({ "error": error }))
                            .unwrap_or_default(),
                    );
                    let error = http::classify_stream_error(&self.provider, &body, Some(&self.key));
                    return self.fail(error);
                }
                // `ping`, `content_block_stop`, thinking blocks and future event types.
                WireEvent::Other => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_goes_to_its_field_and_same_role_turns_merge() {
        let messages = [
            Message::system("Be brief."),
            Message::user("one"),
            Message::user("two"),
            Message::assistant("a"),
            Message::system("Also: be kind."),
            Message::assistant("b"),
            Message::user("three"),
        ];
        let (system, wire) = convert_messages(&messages);
        assert_eq!(system.as_deref(), Some("Be brief.\n\nAlso: be kind."));
        assert_eq!(
            wire,
            [
                WireMessage {
                    role: "user",
                    content: "one\n\ntwo".into()
                },
                WireMessage {
                    role: "assistant",
                    content: "a\n\nb".into()
                },
                WireMessage {
                    role: "user",
                    content: "three".into()
                },
            ]
        );
    }

    #[test]
    fn structured_output_is_a_forced_tool() {
        let mut request = ChatRequest::new("claude-sonnet-4-5", vec![Message::user("u")]);
        request.temperature = Some(1.5);
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "Plan".into(),
            schema: serde_json::json!({"type": "object"}),
            strict: false,
        });
        let value = serde_json::to_value(body(&request)).unwrap();
        assert_eq!(
            value["tool_choice"],
            serde_json::json!({"type": "tool", "name": "Plan"})
        );
        assert_eq!(
            value["tools"][0]["input_schema"],
            serde_json::json!({"type": "object"})
        );
        assert_eq!(value["max_tokens"], 1024);
        assert_eq!(value["temperature"], 1.0);
        assert!(value.get("system").is_none());
    }

    #[test]
    fn base_url_with_or_without_version() {
        let a = AnthropicProvider::new("a", "https://api.anthropic.com", ApiKey::new("k")).unwrap();
        let b = AnthropicProvider::new(
            "a",
            "https://gateway.example/anthropic/v1/",
            ApiKey::new("k"),
        )
        .unwrap();
        assert_eq!(a.url.as_str(), "https://api.anthropic.com/v1/messages");
        assert_eq!(
            b.url.as_str(),
            "https://gateway.example/anthropic/v1/messages"
        );
    }

    #[test]
    fn usage_counts_cache_reads_as_prompt_tokens() {
        let usage = WireUsage {
            input_tokens: Some(100),
            output_tokens: Some(20),
            cache_creation_input_tokens: Some(10),
            cache_read_input_tokens: Some(1000),
        };
        let u = usage.to_usage();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_prompt_tokens),
            (1110, 20, 1000)
        );
    }
}
