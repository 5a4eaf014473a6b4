//! The OpenAI chat-completions protocol, and every provider that speaks it: OpenAI, Azure
//! OpenAI, Groq, OpenRouter, Ollama, vLLM, LM Studio.

use std::pin::Pin;

use async_trait::async_trait;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

use super::http::{self, ErrorBody};
use super::{
    ApiKey, Capabilities, ChatRequest, ChatResponse, ChatStream, FinishReason, LlmError, Message,
    Provider, ResponseFormat, StreamEvent, StructuredOutputMode, TokenizerKind, Usage,
};

/// Which body field carries the output limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_completion_tokens`: OpenAI's current name (the only one its reasoning models take).
    #[default]
    MaxCompletionTokens,
    /// `max_tokens`: the older name most compatible servers read.
    MaxTokens,
}

/// Protocol details that differ between OpenAI-compatible servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenAiOptions {
    /// Native structured output support.
    pub structured_output: StructuredOutputMode,
    /// Ask for usage in the stream (`stream_options.include_usage`). Without it, streamed usage
    /// is estimated.
    pub stream_usage: bool,
    /// The output-limit field.
    pub max_tokens_field: MaxTokensField,
    /// Token counting for models tiktoken does not know.
    pub fallback_tokenizer: TokenizerKind,
}

impl OpenAiOptions {
    /// What api.openai.com (and Azure) supports: strict JSON schema, streamed usage,
    /// `max_completion_tokens`, o200k for unknown (newer) models.
    pub fn openai() -> Self {
        Self {
            structured_output: StructuredOutputMode::JsonSchemaStrict,
            stream_usage: true,
            max_tokens_field: MaxTokensField::MaxCompletionTokens,
            fallback_tokenizer: TokenizerKind::O200k,
        }
    }

    /// The safe subset for an arbitrary compatible server: schema in the prompt, `max_tokens`,
    /// estimated token counts.
    pub fn compatible() -> Self {
        Self {
            structured_output: StructuredOutputMode::Prompt,
            stream_usage: true,
            max_tokens_field: MaxTokensField::MaxTokens,
            fallback_tokenizer: TokenizerKind::Estimate,
        }
    }
}

#[derive(Clone, Debug)]
enum Endpoint {
    /// `{base}/chat/completions`.
    Standard(Url),
    /// `{base}/openai/deployments/{deployment}/chat/completions?api-version=...`.
    Azure {
        base: Url,
        api_version: String,
        deployment: Option<String>,
    },
}

/// A provider speaking OpenAI chat completions over HTTP.
///
/// ```
/// use samokoder_core::llm::{ApiKey, OpenAiProvider, Provider};
///
/// let groq = OpenAiProvider::new("groq", "https://api.groq.com/openai/v1", Some(ApiKey::new("gsk-...")))
///     .unwrap();
/// assert_eq!(groq.name(), "groq");
///
/// let azure = OpenAiProvider::azure(
///     "azure",
///     "https://my-resource.openai.azure.com",
///     "2024-10-21",
///     ApiKey::new("azure-key"),
/// )
/// .unwrap();
/// assert_eq!(azure.name(), "azure");
/// ```
#[derive(Clone, Debug)]
pub struct OpenAiProvider {
    name: String,
    endpoint: Endpoint,
    key: Option<ApiKey>,
    headers: HeaderMap,
    options: OpenAiOptions,
    client: reqwest::Client,
}

fn parse_base(name: &str, base_url: &str) -> Result<Url, LlmError> {
    let url = Url::parse(base_url.trim())
        .map_err(|e| LlmError::Config(format!("provider {name}: base URL is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(LlmError::Config(format!(
            "provider {name}: base URL must be http or https"
        )));
    }
    Ok(url)
}

fn sensitive(name: &str, value: &str) -> Result<HeaderValue, LlmError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        LlmError::Config(format!(
            "provider {name}: the API key is not a valid header value"
        ))
    })?;
    // Marks the value so HTTP-layer debug output never prints it.
    value.set_sensitive(true);
    Ok(value)
}

/// The HTTP client the providers use when none is given: connection pooling, a connect timeout,
/// no total timeout (the session's deadline and idle timeout govern long answers), and **no
/// redirects**: a base URL is checked against the deployment's allowlist, and a redirect would
/// send the prompt (and the key) wherever the answer points, an internal address included.
/// A redirect is an error of the request.
pub fn default_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

fn join_path(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

impl OpenAiProvider {
    /// A provider at `base_url` (up to and including `/v1`), authenticating with
    /// `Authorization: Bearer <key>` when a key is given.
    pub fn new(
        name: impl Into<String>,
        base_url: &str,
        api_key: Option<ApiKey>,
    ) -> Result<Self, LlmError> {
        let name = name.into();
        let base = parse_base(&name, base_url)?;
        let mut headers = HeaderMap::new();
        let key = api_key.filter(|k| !k.is_empty());
        if let Some(key) = &key {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                sensitive(&name, &format!("Bearer {}", key.expose()))?,
            );
        }
        Ok(Self {
            endpoint: Endpoint::Standard(join_path(&base, &["chat", "completions"])),
            name,
            key,
            headers,
            options: OpenAiOptions::openai(),
            client: default_http_client(),
        })
    }

    /// An Azure OpenAI resource (`https://<resource>.openai.azure.com`): the deployment goes into
    /// the path (the request's model unless pinned with [`Self::with_deployment`]), the API
    /// version into the query, and the key into the `api-key` header.
    pub fn azure(
        name: impl Into<String>,
        endpoint: &str,
        api_version: &str,
        api_key: ApiKey,
    ) -> Result<Self, LlmError> {
        let name = name.into();
        let base = parse_base(&name, endpoint)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("api-key"),
            sensitive(&name, api_key.expose())?,
        );
        Ok(Self {
            endpoint: Endpoint::Azure {
                base,
                api_version: api_version.to_owned(),
                deployment: None,
            },
            name,
            key: Some(api_key),
            headers,
            options: OpenAiOptions::openai(),
            client: default_http_client(),
        })
    }

    /// Azure: sends every request to this deployment whatever the model name.
    pub fn with_deployment(mut self, deployment: impl Into<String>) -> Self {
        if let Endpoint::Azure { deployment: d, .. } = &mut self.endpoint {
            *d = Some(deployment.into());
        }
        self
    }

    /// Adds a header to every request (OpenRouter's `HTTP-Referer` and `X-Title`, a gateway's
    /// routing header).
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

    /// Replaces the protocol options.
    pub fn with_options(mut self, options: OpenAiOptions) -> Self {
        self.options = options;
        self
    }

    /// Uses `client` (share one client across providers to share its connection pool).
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    fn url(&self, model: &str) -> Url {
        match &self.endpoint {
            Endpoint::Standard(url) => url.clone(),
            Endpoint::Azure {
                base,
                api_version,
                deployment,
            } => {
                let deployment = deployment.as_deref().unwrap_or(model);
                let mut url = join_path(
                    base,
                    &["openai", "deployments", deployment, "chat", "completions"],
                );
                url.query_pairs_mut()
                    .append_pair("api-version", api_version);
                url
            }
        }
    }

    fn body<'a>(&self, request: &'a ChatRequest) -> WireRequest<'a> {
        let (max_completion_tokens, max_tokens) = match self.options.max_tokens_field {
            MaxTokensField::MaxCompletionTokens => (Some(request.max_tokens), None),
            MaxTokensField::MaxTokens => (None, Some(request.max_tokens)),
        };
        WireRequest {
            model: &request.model,
            messages: &request.messages,
            // OpenAI's reasoning models reject any temperature but the default.
            temperature: request
                .temperature
                .filter(|_| !fixed_temperature(&request.model)),
            max_completion_tokens,
            max_tokens,
            stop: &request.stop,
            stream: request.stream,
            stream_options: (request.stream && self.options.stream_usage).then_some(
                StreamOptions {
                    include_usage: true,
                },
            ),
            response_format: request.response_format.as_ref().map(|format| match format {
                ResponseFormat::JsonSchema {
                    name,
                    schema,
                    strict,
                } => serde_json::json!({
                    "type": "json_schema",
                    "json_schema": { "name": name, "schema": schema, "strict": strict },
                }),
            }),
        }
    }
}

fn fixed_temperature(model: &str) -> bool {
    let bare = model.rsplit('/').next().unwrap_or(model);
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| bare.starts_with(p))
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<WireUsageDetails>,
}

#[derive(Deserialize, Default)]
struct WireUsageDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_prompt_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            estimated: false,
        }
    }
}

#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Groq reports streamed usage here.
    #[serde(default)]
    x_groq: Option<WireGroq>,
    /// OpenRouter and some gateways report failures mid-stream as a chunk with `error`.
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireGroq {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolUse,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self, model: &str) -> Capabilities {
        let bare = model.rsplit('/').next().unwrap_or(model);
        Capabilities {
            structured_output: self.options.structured_output,
            tokenizer: TokenizerKind::for_openai_model(bare)
                .unwrap_or(self.options.fallback_tokenizer),
        }
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        let response = self
            .client
            .post(self.url(&request.model))
            .headers(self.headers.clone())
            .json(&self.body(request))
            .send()
            .await
            .map_err(|e| http::transport_error(&self.name, e, self.key.as_ref()))?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            return Err(http::classify_status(
                &self.name,
                status,
                &headers,
                &body,
                self.key.as_ref(),
            ));
        }
        if !request.stream {
            let body = response
                .bytes()
                .await
                .map_err(|e| http::transport_error(&self.name, e, self.key.as_ref()))?;
            let parsed: WireCompletion = serde_json::from_slice(&body)
                .map_err(|e| http::malformed(&self.name, format!("chat completion body: {e}")))?;
            let choice =
                parsed.choices.into_iter().next().ok_or_else(|| {
                    http::malformed(&self.name, "chat completion without choices")
                })?;
            let message = choice.message.unwrap_or(WireMessage {
                content: None,
                refusal: None,
            });
            let refused = message.refusal.is_some();
            let finish = if refused {
                FinishReason::ContentFilter
            } else {
                finish_reason(choice.finish_reason.as_deref().unwrap_or("stop"))
            };
            let usage = parsed.usage.map(Usage::from).unwrap_or(Usage {
                estimated: true,
                ..Usage::default()
            });
            return Ok(super::single_response_stream(ChatResponse {
                text: message.content.or(message.refusal).unwrap_or_default(),
                usage,
                finish_reason: finish,
                model: parsed.model.unwrap_or_else(|| request.model.clone()),
                provider_id: parsed.id,
            }));
        }
        let state = SseState {
            events: Box::pin(response.bytes_stream().eventsource()),
            provider: self.name.clone(),
            key: self.key.clone(),
            text: String::new(),
            finish: None,
            usage: None,
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
    key: Option<ApiKey>,
    text: String,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    model: String,
    id: Option<String>,
    done: bool,
}

impl SseState {
    fn finish_event(&mut self) -> Result<StreamEvent, LlmError> {
        let Some(finish) = self.finish.take() else {
            return Err(http::stream_broken(
                &self.provider,
                "the stream ended without a finish reason",
            ));
        };
        Ok(StreamEvent::Done(ChatResponse {
            text: std::mem::take(&mut self.text),
            usage: self.usage.unwrap_or(Usage {
                estimated: true,
                ..Usage::default()
            }),
            finish_reason: finish,
            model: std::mem::take(&mut self.model),
            provider_id: self.id.take(),
        }))
    }

    async fn step(mut self) -> Option<(Result<StreamEvent, LlmError>, Self)> {
        if self.done {
            return None;
        }
        loop {
            let event = match self.events.next().await {
                None => {
                    self.done = true;
                    let end = self.finish_event();
                    return Some((end, self));
                }
                Some(Err(EventStreamError::Transport(e))) => {
                    self.done = true;
                    return Some((
                        Err(http::transport_error(&self.provider, e, self.key.as_ref())),
                        self,
                    ));
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some((
                        Err(http::malformed(
                            &self.provider,
                            format!("event stream: {e}"),
                        )),
                        self,
                    ));
                }
                Some(Ok(event)) => event,
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                self.done = true;
                let end = self.finish_event();
                return Some((end, self));
            }
            let chunk: WireChunk = match serde_json::from_str(data) {
                Ok(chunk) => chunk,
                Err(e) => {
                    self.done = true;
                    return Some((
                        Err(http::malformed(
                            &self.provider,
                            format!("stream chunk: {e}"),
                        )),
                        self,
                    ));
                }
            };
            if let Some(error) = chunk.error {
                self.done = true;
                let body = ErrorBody::parse(
                    &serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default(),
                );
                return Some((
                    Err(http::classify_stream_error(
                        &self.provider,
                        &body,
                        self.key.as_ref(),
                    )),
                    self,
                ));
            }
            if let Some(id) = chunk.id {
                self.id.get_or_insert(id);
            }
            if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
                self.model = model;
            }
            if let Some(usage) = chunk.usage.or_else(|| chunk.x_groq.and_then(|g| g.usage)) {
                self.usage = Some(usage.into());
            }
            let mut delta = String::new();
            if let Some(choice) = chunk.choices.into_iter().next() {
                if let Some(message) = choice.delta {
                    if let Some(content) = message.content {
                        delta.push_str(&content);
                    }
                    if let Some(refusal) = message.refusal {
                        delta.push_str(&refusal);
                        self.finish = Some(FinishReason::ContentFilter);
                    }
                }
                if let Some(reason) = choice.finish_reason
                    && self.finish.is_none()
                {
                    self.finish = Some(finish_reason(&reason));
                }
            }
            if !delta.is_empty() {
                self.text.push_str(&delta);
                return Some((Ok(StreamEvent::Delta(delta)), self));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ChatRequest {
        let mut r = ChatRequest::new("gpt-4o", vec![Message::system("s"), Message::user("u")]);
        r.temperature = Some(0.2);
        r.max_tokens = 100;
        r
    }

    #[test]
    fn body_matches_the_wire_format() {
        let p = OpenAiProvider::new(
            "openai",
            "https://api.openai.com/v1",
            Some(ApiKey::new("k")),
        )
        .unwrap();
        let mut r = request();
        r.stream = true;
        r.response_format = Some(ResponseFormat::JsonSchema {
            name: "plan".into(),
            schema: serde_json::json!({"type": "object"}),
            strict: true,
        });
        let body = serde_json::to_value(p.body(&r)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "gpt-4o",
                "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                "temperature": 0.2f32,
                "max_completion_tokens": 100,
                "stream": true,
                "stream_options": {"include_usage": true},
                "response_format": {"type": "json_schema", "json_schema": {"name": "plan", "schema": {"type": "object"}, "strict": true}},
            })
        );
        assert_eq!(
            p.url("gpt-4o").as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
    }

    #[test]
    fn compatible_servers_get_max_tokens_and_reasoning_models_no_temperature() {
        let p = OpenAiProvider::new("ollama", "http://localhost:11434/v1/", None)
            .unwrap()
            .with_options(OpenAiOptions::compatible());
        let body = serde_json::to_value(p.body(&request())).unwrap();
        assert_eq!(body["max_tokens"], 100);
        assert!(body.get("max_completion_tokens").is_none());
        assert!(body.get("stream_options").is_none());
        assert_eq!(
            p.url("x").as_str(),
            "http://localhost:11434/v1/chat/completions"
        );

        let mut r = request();
        r.model = "o3-mini".into();
        let openai = OpenAiProvider::new("openai", "https://api.openai.com/v1", None).unwrap();
        assert!(
            serde_json::to_value(openai.body(&r))
                .unwrap()
                .get("temperature")
                .is_none()
        );
    }

    #[test]
    fn azure_puts_the_deployment_in_the_path() {
        let p = OpenAiProvider::azure(
            "azure",
            "https://res.openai.azure.com/",
            "2024-10-21",
            ApiKey::new("k"),
        )
        .unwrap();
        assert_eq!(
            p.url("gpt-4o").as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        let pinned = p.with_deployment("prod chat");
        assert!(
            pinned
                .url("gpt-4o")
                .as_str()
                .contains("/deployments/prod%20chat/")
        );
        assert!(pinned.headers.get("api-key").unwrap().is_sensitive());
    }

    #[test]
    fn tokenizer_follows_the_model() {
        let openai = OpenAiProvider::new("openai", "https://api.openai.com/v1", None).unwrap();
        assert_eq!(
            openai.capabilities("gpt-4-0613").tokenizer,
            TokenizerKind::Cl100k
        );
        assert_eq!(
            openai.capabilities("brand-new-model").tokenizer,
            TokenizerKind::O200k
        );
        let router = OpenAiProvider::new("openrouter", "https://openrouter.ai/api/v1", None)
            .unwrap()
            .with_options(OpenAiOptions::compatible());
        assert_eq!(
            router.capabilities("openai/gpt-4o").tokenizer,
            TokenizerKind::O200k
        );
        assert_eq!(
            router.capabilities("meta-llama/llama-3.3-70b").tokenizer,
            TokenizerKind::Estimate
        );
    }

    #[test]
    fn rejects_non_http_base_urls() {
        assert!(matches!(
            OpenAiProvider::new("x", "ftp://host", None),
            Err(LlmError::Config(_))
        ));
        assert!(matches!(
            OpenAiProvider::new("x", "not a url", None),
            Err(LlmError::Config(_))
        ));
    }
}
