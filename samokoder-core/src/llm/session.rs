//! The session: how an agent talks to models. Routing, token counting and trimming, budgets,
//! retries with backoff, streaming to a sink, cancellation, structured output with re-asks,
//! records, and the bounded parallel executor all meet here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::error::TransientKind;
use super::pricing::Micros;
use super::record::{LlmRecord, RecordOutcome};
use super::retry::RetryDecision;
use super::structured::reask_message;
use super::{
    AgentRole, Budget, ChatRequest, ChatResponse, LlmError, LlmRecorder, Message, OutputSchema,
    PriceTable, ReplayCache, ResponseFormat, RetryPolicy, Role, Route, RouteTable, StreamEvent,
    StreamSink, StructuredOutputMode, TokenizerKind, Usage, fit_messages, parse_json, request_hash,
};

/// Progress the session reports instead of going silent: the engine turns these into run events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LlmEvent {
    /// The provider asked us to wait; the session waits this long before retrying.
    WaitingForRateLimit {
        /// The role whose request waits.
        role: AgentRole,
        /// Provider name.
        provider: String,
        /// Model.
        model: String,
        /// The wait in milliseconds (never less than the provider asked).
        wait_ms: u64,
        /// Which retry this wait precedes (1-based).
        retry: u32,
    },
    /// A transient failure; the request is sent again after the wait.
    Retrying {
        /// The role.
        role: AgentRole,
        /// Provider name.
        provider: String,
        /// Model.
        model: String,
        /// The error code ([`LlmError::code`]).
        code: String,
        /// The error message.
        message: String,
        /// The wait in milliseconds.
        wait_ms: u64,
        /// Which retry (1-based).
        retry: u32,
        /// The retry limit.
        max_retries: u32,
    },
    /// The answer was unusable; the model is asked again with the error.
    ParseRetry {
        /// The role.
        role: AgentRole,
        /// Provider name.
        provider: String,
        /// Model.
        model: String,
        /// Why the answer was rejected.
        error: String,
        /// Which re-ask (1-based).
        retry: u32,
        /// The re-ask limit.
        max_retries: u32,
    },
    /// History was dropped so the request fits the context window.
    ContextTrimmed {
        /// The role.
        role: AgentRole,
        /// Provider name.
        provider: String,
        /// Model.
        model: String,
        /// Messages dropped.
        dropped_messages: usize,
        /// Prompt tokens after trimming.
        prompt_tokens: u64,
    },
}

/// Receives [`LlmEvent`]s. Any `Fn(LlmEvent) + Send + Sync` closure is one.
pub trait LlmEventSink: Send + Sync {
    /// One event.
    fn emit(&self, event: LlmEvent);
}

impl<F: Fn(LlmEvent) + Send + Sync> LlmEventSink for F {
    fn emit(&self, event: LlmEvent) {
        self(event);
    }
}

/// What an agent asks: a conversation for a role, plus per-call options.
///
/// ```
/// use std::time::Duration;
/// use samokoder_core::llm::{AgentRole, LlmCall};
///
/// let call = LlmCall::new(AgentRole::Architect)
///     .system("You pick technologies.")
///     .user("A todo app with sync.")
///     .max_tokens(2_000)
///     .deadline(Duration::from_secs(120))
///     .label("step-7");
/// assert_eq!(call.messages.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LlmCall {
    /// The role asking (decides the route).
    pub role: AgentRole,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Overrides the route's temperature.
    pub temperature: Option<f32>,
    /// Overrides the route's output limit.
    pub max_tokens: Option<u32>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// May history be dropped to fit the context window? Otherwise an oversized request is
    /// refused with [`LlmError::ContextOverflow`].
    pub allow_trim: bool,
    /// Overrides the policy's per-request deadline.
    pub deadline: Option<Duration>,
    /// A label for the records (the engine's step id).
    pub label: Option<String>,
}

impl LlmCall {
    /// An empty call for `role`.
    pub fn new(role: AgentRole) -> Self {
        Self {
            role,
            messages: Vec::new(),
            temperature: None,
            max_tokens: None,
            stop: Vec::new(),
            allow_trim: false,
            deadline: None,
            label: None,
        }
    }

    /// Appends a system message.
    pub fn system(mut self, content: impl Into<String>) -> Self {
        self.messages.push(Message::system(content));
        self
    }

    /// Appends a user message.
    pub fn user(mut self, content: impl Into<String>) -> Self {
        self.messages.push(Message::user(content));
        self
    }

    /// Appends an assistant message.
    pub fn assistant(mut self, content: impl Into<String>) -> Self {
        self.messages.push(Message::assistant(content));
        self
    }

    /// Appends messages.
    pub fn messages(mut self, messages: impl IntoIterator<Item = Message>) -> Self {
        self.messages.extend(messages);
        self
    }

    /// Sets the temperature.
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the output limit.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Adds a stop sequence.
    pub fn stop(mut self, stop: impl Into<String>) -> Self {
        self.stop.push(stop.into());
        self
    }

    /// Allows dropping history to fit the context window.
    pub fn allow_trim(mut self, allow: bool) -> Self {
        self.allow_trim = allow;
        self
    }

    /// Sets the per-request deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the record label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

/// A finished call.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The answer.
    pub response: ChatResponse,
    /// Provider name.
    pub provider: String,
    /// Model asked for.
    pub model: String,
    /// Cost in micro-dollars (0 for unpriced models and replays).
    pub cost_micros: Micros,
    /// Whether the model had a price.
    pub priced: bool,
    /// Transport retries it took.
    pub transport_retries: u32,
    /// Answered from the replay cache.
    pub replayed: bool,
    /// [`request_hash`] of the final request.
    pub request_hash: String,
    /// Messages dropped to fit the context window.
    pub trimmed_messages: usize,
    /// Wall time, retries included.
    pub latency: Duration,
}

impl Completion {
    /// The answer text.
    pub fn text(&self) -> &str {
        &self.response.text
    }
}

/// A finished structured call: the typed value and the call that produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct Structured<T> {
    /// The parsed, validated answer.
    pub value: T,
    /// The request that produced it.
    pub completion: Completion,
    /// Re-asks it took.
    pub parse_retries: u32,
}

struct Shared {
    routes: RouteTable,
    prices: Arc<PriceTable>,
    policy: RetryPolicy,
    budget: Budget,
    recorder: Option<Arc<dyn LlmRecorder>>,
    replay: Option<Arc<dyn ReplayCache>>,
    events: Option<Arc<dyn LlmEventSink>>,
    run_id: Option<Uuid>,
}

/// The LLM layer of one run. Cheap to clone; clones share routes, budget and recorder.
///
/// ```no_run
/// # async fn demo(routes: samokoder_core::llm::RouteTable) -> Result<(), samokoder_core::llm::LlmError> {
/// use samokoder_core::llm::{AgentRole, Budget, BudgetLimits, CollectSink, LlmCall, LlmSession};
///
/// let session = LlmSession::builder(routes)
///     .budget(Budget::new(BudgetLimits::unlimited().with_cost_micros(2_000_000)))
///     .build();
///
/// // One answer.
/// let reply = session.chat(LlmCall::new(AgentRole::SpecWriter).user("Describe a todo app.")).await?;
/// println!("{} (cost {} µ$)", reply.text(), reply.cost_micros);
///
/// // Streamed to a sink as tokens arrive.
/// let mut sink = CollectSink::default();
/// session.chat_stream(LlmCall::new(AgentRole::Developer).user("Plan it."), &mut sink).await?;
///
/// // Typed.
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Plan { steps: Vec<String> }
/// let plan = session.structured::<Plan>(LlmCall::new(AgentRole::TechLead).user("Plan.")).await?;
/// println!("{} steps", plan.value.steps.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LlmSession {
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for LlmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmSession")
            .field("run_id", &self.shared.run_id)
            .field("policy", &self.shared.policy)
            .field("budget", &self.shared.budget.snapshot())
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Builds an [`LlmSession`].
pub struct LlmSessionBuilder {
    routes: RouteTable,
    prices: Option<Arc<PriceTable>>,
    policy: RetryPolicy,
    budget: Budget,
    recorder: Option<Arc<dyn LlmRecorder>>,
    replay: Option<Arc<dyn ReplayCache>>,
    events: Option<Arc<dyn LlmEventSink>>,
    run_id: Option<Uuid>,
    cancel: CancellationToken,
}

impl LlmSessionBuilder {
    /// The price table (default: [`PriceTable::with_defaults`]).
    pub fn prices(mut self, prices: Arc<PriceTable>) -> Self {
        self.prices = Some(prices);
        self
    }

    /// The retry and timeout policy.
    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The run's budget (default: unlimited).
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Where request records go.
    pub fn recorder(mut self, recorder: Arc<dyn LlmRecorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Where already-answered requests are looked up before sending.
    pub fn replay(mut self, replay: Arc<dyn ReplayCache>) -> Self {
        self.replay = Some(replay);
        self
    }

    /// Where progress events go.
    pub fn events(mut self, events: Arc<dyn LlmEventSink>) -> Self {
        self.events = Some(events);
        self
    }

    /// The run id stamped on records.
    pub fn run_id(mut self, run_id: Uuid) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// The run's cancellation token.
    pub fn cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// The session.
    pub fn build(self) -> LlmSession {
        LlmSession {
            shared: Arc::new(Shared {
                routes: self.routes,
                prices: self
                    .prices
                    .unwrap_or_else(|| Arc::new(PriceTable::with_defaults())),
                policy: self.policy,
                budget: self.budget,
                recorder: self.recorder,
                replay: self.replay,
                events: self.events,
                run_id: self.run_id,
            }),
            cancel: self.cancel,
        }
    }
}

/// A request ready to send, and what preparing it found out.
struct Prepared<'a> {
    route: &'a Route,
    request: ChatRequest,
    prompt_tokens: u64,
    tokenizer: TokenizerKind,
    trimmed: usize,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl LlmSession {
    /// Starts building a session over `routes`.
    pub fn builder(routes: RouteTable) -> LlmSessionBuilder {
        LlmSessionBuilder {
            routes,
            prices: None,
            policy: RetryPolicy::default(),
            budget: Budget::default(),
            recorder: None,
            replay: None,
            events: None,
            run_id: None,
            cancel: CancellationToken::new(),
        }
    }

    /// The run's budget.
    pub fn budget(&self) -> &Budget {
        &self.shared.budget
    }

    /// The session's cancellation token.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The routes.
    pub fn routes(&self) -> &RouteTable {
        &self.shared.routes
    }

    /// The same session under another cancellation token (a child token cancels with its parent).
    pub fn with_cancel(&self, cancel: CancellationToken) -> Self {
        Self {
            shared: self.shared.clone(),
            cancel,
        }
    }

    fn emit(&self, event: LlmEvent) {
        if let Some(events) = &self.shared.events {
            events.emit(event);
        }
    }

    /// Sends `call` and waits for the whole answer (no streaming).
    pub async fn chat(&self, call: LlmCall) -> Result<Completion, LlmError> {
        self.run_call(call, None, 0, None).await
    }

    /// Sends `call` with streaming; every delta goes to `sink` as it arrives, in order.
    pub async fn chat_stream(
        &self,
        call: LlmCall,
        sink: &mut dyn StreamSink,
    ) -> Result<Completion, LlmError> {
        self.run_call(call, None, 0, Some(sink)).await
    }

    /// Asks for a `T`: native structured output where the provider has it, the schema in the
    /// prompt otherwise; re-asks with the error (up to the policy's parse-retry limit) when the
    /// answer does not deserialise.
    pub async fn structured<T>(&self, call: LlmCall) -> Result<Structured<T>, LlmError>
    where
        T: DeserializeOwned + JsonSchema + Send,
    {
        self.structured_inner(call, None, |_: &T| Ok(())).await
    }

    /// [`Self::structured`] with streaming to `sink` (the UI sees the JSON being written).
    pub async fn structured_stream<T>(
        &self,
        call: LlmCall,
        sink: &mut dyn StreamSink,
    ) -> Result<Structured<T>, LlmError>
    where
        T: DeserializeOwned + JsonSchema + Send,
    {
        self.structured_inner(call, Some(sink), |_: &T| Ok(()))
            .await
    }

    /// [`Self::structured`] with a semantic check on top of the schema: an `Err(reason)` from
    /// `validate` is treated like a schema violation (re-asked with the reason).
    pub async fn structured_validated<T, V>(
        &self,
        call: LlmCall,
        validate: V,
    ) -> Result<Structured<T>, LlmError>
    where
        T: DeserializeOwned + JsonSchema + Send,
        V: Fn(&T) -> Result<(), String> + Send + Sync,
    {
        self.structured_inner(call, None, validate).await
    }

    async fn structured_inner<'s, T, V>(
        &self,
        mut call: LlmCall,
        mut sink: Option<&mut (dyn StreamSink + 's)>,
        validate: V,
    ) -> Result<Structured<T>, LlmError>
    where
        T: DeserializeOwned + JsonSchema + Send,
        V: Fn(&T) -> Result<(), String> + Send + Sync,
    {
        let schema = OutputSchema::of::<T>();
        let route = self.shared.routes.route(call.role);
        let mode = route
            .provider
            .provider()
            .capabilities(&route.model)
            .structured_output;
        let native = |strict: bool, schema_value: serde_json::Value| {
            Some(ResponseFormat::JsonSchema {
                name: schema.name.clone(),
                schema: schema_value,
                strict,
            })
        };
        let format = match mode {
            _ if !schema.is_object() => None,
            StructuredOutputMode::Prompt => None,
            StructuredOutputMode::JsonSchema | StructuredOutputMode::ForcedTool => {
                native(false, schema.schema.clone())
            }
            StructuredOutputMode::JsonSchemaStrict => match schema.strict() {
                Some(strict) => native(true, strict),
                None => native(false, schema.schema.clone()),
            },
        };
        if format.is_none() {
            add_instructions(&mut call.messages, &schema.prompt_instructions());
        }
        let max_retries = self.shared.policy.max_parse_retries;
        let mut retry = 0;
        let mut reask: Option<(String, String)> = None;
        loop {
            let mut attempt_call = call.clone();
            if let Some((answer, error)) = &reask {
                attempt_call
                    .messages
                    .push(Message::assistant(truncate_answer(answer)));
                attempt_call
                    .messages
                    .push(Message::user(reask_message(error)));
            }
            let completion = self
                .run_call(attempt_call, format.clone(), retry, sink.as_deref_mut())
                .await?;
            let parsed = parse_json::<T>(&completion.response.text)
                .and_then(|value| validate(&value).map(|()| value));
            match parsed {
                Ok(value) => {
                    return Ok(Structured {
                        value,
                        completion,
                        parse_retries: retry,
                    });
                }
                Err(mut error) => {
                    if completion.response.finish_reason == super::FinishReason::Length {
                        error.push_str(
                            " (the answer was cut off at the output limit; answer more concisely)",
                        );
                    }
                    if retry >= max_retries {
                        return Err(LlmError::InvalidOutput {
                            attempts: retry + 1,
                            last_error: super::http::clean_message(None, &error),
                        });
                    }
                    retry += 1;
                    self.emit(LlmEvent::ParseRetry {
                        role: call.role,
                        provider: completion.provider.clone(),
                        model: completion.model.clone(),
                        error: error.clone(),
                        retry,
                        max_retries,
                    });
                    if let Some(sink) = sink.as_deref_mut() {
                        sink.restart();
                    }
                    reask = Some((completion.response.text, error));
                }
            }
        }
    }

    /// Runs `items` through `f` concurrently and returns the results in input order.
    ///
    /// Concurrency is bounded by each provider's semaphore (every request takes a permit), so
    /// any number of items is safe. `f` gets a session whose cancellation token is a child of a
    /// group token: when one item fails with a fatal error ([`LlmError::is_fatal`]: bad key,
    /// missing model, quota, budget), the group is cancelled and the siblings stop within one
    /// streamed chunk, reporting [`LlmError::Cancelled`].
    pub async fn parallel<I, T, F, Fut>(
        &self,
        items: impl IntoIterator<Item = I>,
        f: F,
    ) -> Vec<Result<T, LlmError>>
    where
        F: Fn(LlmSession, I) -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let group = self.cancel.child_token();
        let tasks = items.into_iter().map(|item| {
            let session = self.with_cancel(group.child_token());
            let group = group.clone();
            let task = f(session, item);
            async move {
                let result = task.await;
                if let Err(error) = &result
                    && error.is_fatal()
                {
                    group.cancel();
                }
                result
            }
        });
        futures::future::join_all(tasks).await
    }

    /// [`Self::parallel`], failing as a whole: all values in input order, or the error that
    /// stopped the group (the first fatal one; otherwise the first error in input order).
    pub async fn try_parallel<I, T, F, Fut>(
        &self,
        items: impl IntoIterator<Item = I>,
        f: F,
    ) -> Result<Vec<T>, LlmError>
    where
        F: Fn(LlmSession, I) -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let results = self.parallel(items, f).await;
        if let Some(fatal) = results
            .iter()
            .find_map(|r| r.as_ref().err().filter(|e| e.is_fatal()))
        {
            return Err(fatal.clone());
        }
        results.into_iter().collect()
    }

    fn prepare<'a>(
        &'a self,
        call: LlmCall,
        response_format: Option<ResponseFormat>,
        stream: bool,
    ) -> Result<Prepared<'a>, LlmError> {
        let route = self.shared.routes.route(call.role);
        let capabilities = route.provider.provider().capabilities(&route.model);
        let model_max = u32::try_from(route.limits.max_output_tokens).unwrap_or(u32::MAX);
        let max_tokens = call
            .max_tokens
            .unwrap_or(route.max_output_tokens)
            .min(model_max)
            .max(1);
        let fitted = fit_messages(
            capabilities.tokenizer,
            call.messages,
            route.limits.context_window,
            u64::from(max_tokens),
            call.allow_trim,
        )
        .map_err(|overflow| LlmError::ContextOverflow {
            provider: route.provider.name().to_owned(),
            prompt_tokens: Some(overflow.prompt_tokens),
            context_window: Some(route.limits.context_window),
            message: format!(
                "the prompt needs {} tokens but {} has room for {} besides {} output tokens{}",
                overflow.prompt_tokens,
                route.model,
                overflow.prompt_budget,
                max_tokens,
                if call.allow_trim {
                    " even after dropping history"
                } else {
                    ""
                },
            ),
        })?;
        if fitted.dropped > 0 {
            self.emit(LlmEvent::ContextTrimmed {
                role: call.role,
                provider: route.provider.name().to_owned(),
                model: route.model.clone(),
                dropped_messages: fitted.dropped,
                prompt_tokens: fitted.prompt_tokens,
            });
        }
        Ok(Prepared {
            route,
            request: ChatRequest {
                model: route.model.clone(),
                messages: fitted.messages,
                temperature: call
                    .temperature
                    .or(route.temperature)
                    .or(Some(call.role.default_temperature())),
                max_tokens,
                stop: call.stop,
                response_format,
                stream,
            },
            prompt_tokens: fitted.prompt_tokens,
            tokenizer: capabilities.tokenizer,
            trimmed: fitted.dropped,
        })
    }

    async fn run_call<'s>(
        &self,
        call: LlmCall,
        response_format: Option<ResponseFormat>,
        parse_attempt: u32,
        mut sink: Option<&mut (dyn StreamSink + 's)>,
    ) -> Result<Completion, LlmError> {
        if self.cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        let role = call.role;
        let label = call.label.clone();
        let deadline_after = call.deadline.unwrap_or(self.shared.policy.request_deadline);
        let prepared = self.prepare(call, response_format, sink.is_some())?;
        let Prepared {
            route,
            request,
            prompt_tokens,
            tokenizer,
            trimmed,
        } = prepared;
        let provider = route.provider.name().to_owned();
        let hash = request_hash(&provider, &request);
        let call_started = Instant::now();
        let meta = RecordMeta {
            role,
            label: label.as_deref(),
            parse_attempt,
            hash: &hash,
            provider: &provider,
        };

        if let Some(replay) = &self.shared.replay
            && let Some(response) = replay.lookup(&hash).await
        {
            if let Some(sink) = sink.as_deref_mut() {
                sink.delta(&response.text);
                sink.finish(&response);
            }
            let record_usage = response.usage;
            self.record(
                &meta,
                &request,
                0,
                Utc::now(),
                Duration::ZERO,
                None,
                record_usage,
                0,
                false,
                RecordOutcome::Replayed,
                Some(&response),
            )
            .await;
            return Ok(Completion {
                response,
                provider,
                model: request.model,
                cost_micros: 0,
                priced: false,
                transport_retries: 0,
                replayed: true,
                request_hash: hash,
                trimmed_messages: trimmed,
                latency: call_started.elapsed(),
            });
        }

        let prices = &self.shared.prices;
        let prompt_usage = Usage {
            prompt_tokens,
            ..Usage::default()
        };
        let prompt_cost = prices
            .cost(&provider, &request.model, &prompt_usage)
            .unwrap_or(0);
        self.shared.budget.admit(prompt_tokens, prompt_cost)?;

        let deadline = call_started + deadline_after;
        let policy = self.shared.policy;
        let mut retry = 0u32;
        loop {
            if self.cancel.is_cancelled() {
                return Err(LlmError::Cancelled);
            }
            let started_at = Utc::now();
            let attempt_started = Instant::now();
            let mut partial = String::new();
            let mut first_token = None;
            let result = self
                .attempt(
                    route,
                    &request,
                    &mut sink,
                    deadline,
                    deadline_after,
                    &mut partial,
                    &mut first_token,
                )
                .await;
            let latency = attempt_started.elapsed();
            match result {
                Ok(mut response) => {
                    if response.usage.prompt_tokens == 0 && response.usage.completion_tokens == 0 {
                        // The provider reported nothing (Azure streams, some local servers).
                        response.usage = Usage {
                            prompt_tokens,
                            completion_tokens: tokenizer.count(&response.text),
                            cached_prompt_tokens: 0,
                            estimated: true,
                        };
                    }
                    let cost = prices.cost(&provider, &request.model, &response.usage);
                    self.shared
                        .budget
                        .account(&response.usage, cost.unwrap_or(0));
                    if let Some(sink) = sink.as_deref_mut() {
                        sink.finish(&response);
                    }
                    self.record(
                        &meta,
                        &request,
                        retry,
                        started_at,
                        latency,
                        first_token,
                        response.usage,
                        cost.unwrap_or(0),
                        cost.is_some(),
                        RecordOutcome::Ok,
                        Some(&response),
                    )
                    .await;
                    return Ok(Completion {
                        response,
                        provider,
                        model: request.model,
                        cost_micros: cost.unwrap_or(0),
                        priced: cost.is_some(),
                        transport_retries: retry,
                        replayed: false,
                        request_hash: hash,
                        trimmed_messages: trimmed,
                        latency: call_started.elapsed(),
                    });
                }
                Err(error) => {
                    // Output that was generated before the failure is billed by the provider.
                    let usage = if partial.is_empty() {
                        Usage::default()
                    } else {
                        Usage {
                            prompt_tokens,
                            completion_tokens: tokenizer.count(&partial),
                            cached_prompt_tokens: 0,
                            estimated: true,
                        }
                    };
                    let cost = prices.cost(&provider, &request.model, &usage);
                    self.shared.budget.account(&usage, cost.unwrap_or(0));
                    let outcome = RecordOutcome::Error {
                        code: error.code().to_owned(),
                        message: error.to_string(),
                    };
                    self.record(
                        &meta,
                        &request,
                        retry,
                        started_at,
                        latency,
                        first_token,
                        usage,
                        cost.unwrap_or(0),
                        cost.is_some(),
                        outcome,
                        None,
                    )
                    .await;
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let wait = match policy.decide(&error, retry, remaining) {
                        RetryDecision::GiveUp => return Err(error),
                        RetryDecision::RetryAfter(wait) => wait,
                    };
                    self.shared.budget.check()?;
                    retry += 1;
                    let event = match &error {
                        LlmError::RateLimited { .. } => LlmEvent::WaitingForRateLimit {
                            role,
                            provider: provider.clone(),
                            model: request.model.clone(),
                            wait_ms: millis(wait),
                            retry,
                        },
                        _ => LlmEvent::Retrying {
                            role,
                            provider: provider.clone(),
                            model: request.model.clone(),
                            code: error.code().to_owned(),
                            message: error.to_string(),
                            wait_ms: millis(wait),
                            retry,
                            max_retries: policy.max_transport_retries,
                        },
                    };
                    tracing::debug!(provider = %provider, model = %request.model, code = error.code(), wait_ms = millis(wait), retry, "retrying LLM request");
                    self.emit(event);
                    if !partial.is_empty()
                        && let Some(sink) = sink.as_deref_mut()
                    {
                        sink.restart();
                    }
                    tokio::select! {
                        biased;
                        () = self.cancel.cancelled() => return Err(LlmError::Cancelled),
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Runs `future` until it completes, the session is cancelled, the request deadline passes, or
    /// (with `idle`) the provider has been silent for the idle timeout.
    async fn guard<F: Future>(
        &self,
        deadline: Instant,
        deadline_after: Duration,
        idle: bool,
        future: F,
        what: &str,
    ) -> Result<F::Output, LlmError> {
        let idle_at = Instant::now() + self.shared.policy.idle_timeout;
        let (limit, is_deadline) = if !idle || deadline <= idle_at {
            (deadline, true)
        } else {
            (idle_at, false)
        };
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(LlmError::Cancelled),
            result = tokio::time::timeout_at(limit, future) => result.map_err(|_| {
                if is_deadline {
                    LlmError::DeadlineExceeded { deadline: deadline_after }
                } else {
                    LlmError::Transient {
                        provider: String::new(),
                        kind: TransientKind::Timeout,
                        retry_after: None,
                        message: format!("no {what} within {}ms", self.shared.policy.idle_timeout.as_millis()),
                    }
                }
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt<'s>(
        &self,
        route: &Route,
        request: &ChatRequest,
        sink: &mut Option<&mut (dyn StreamSink + 's)>,
        deadline: Instant,
        deadline_after: Duration,
        partial: &mut String,
        first_token: &mut Option<Duration>,
    ) -> Result<ChatResponse, LlmError> {
        let name = route.provider.name();
        let with_provider = |error: LlmError| match error {
            LlmError::Transient {
                provider,
                kind,
                retry_after,
                message,
            } if provider.is_empty() => LlmError::Transient {
                provider: name.to_owned(),
                kind,
                retry_after,
                message,
            },
            other => other,
        };
        // Waiting for a permit is queueing, not provider silence: only cancellation and the
        // deadline bound it.
        let permit = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(LlmError::Cancelled),
            permit = tokio::time::timeout_at(deadline, route.provider.limiter().acquire()) => match permit {
                Err(_) => return Err(LlmError::DeadlineExceeded { deadline: deadline_after }),
                Ok(Err(_)) => return Err(LlmError::Config(format!("provider `{name}` is shut down"))),
                Ok(Ok(permit)) => permit,
            },
        };
        let started = Instant::now();
        let provider = route.provider.provider();
        // A non-streamed answer arrives in one piece after the whole generation, which can take
        // minutes without being a stall: only the deadline bounds it.
        let mut stream = self
            .guard(
                deadline,
                deadline_after,
                request.stream,
                provider.chat(request),
                "response",
            )
            .await
            .map_err(with_provider)?
            .map_err(with_provider)?;
        let response = loop {
            let next = self
                .guard(deadline, deadline_after, true, stream.next(), "data")
                .await
                .map_err(with_provider)?;
            match next {
                None => {
                    break Err(LlmError::Transient {
                        provider: name.to_owned(),
                        kind: TransientKind::StreamBroken,
                        retry_after: None,
                        message: "the answer stream ended without its final event".into(),
                    });
                }
                Some(Err(error)) => break Err(error),
                Some(Ok(StreamEvent::Delta(text))) => {
                    first_token.get_or_insert_with(|| started.elapsed());
                    partial.push_str(&text);
                    if let Some(sink) = sink.as_deref_mut() {
                        sink.delta(&text);
                    }
                }
                Some(Ok(StreamEvent::Done(response))) => break Ok(response),
            }
        };
        drop(permit);
        response
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        meta: &RecordMeta<'_>,
        request: &ChatRequest,
        attempt: u32,
        started_at: chrono::DateTime<Utc>,
        latency: Duration,
        first_token: Option<Duration>,
        usage: Usage,
        cost_micros: Micros,
        priced: bool,
        outcome: RecordOutcome,
        response: Option<&ChatResponse>,
    ) {
        let Some(recorder) = &self.shared.recorder else {
            return;
        };
        recorder
            .record(LlmRecord {
                id: Uuid::now_v7(),
                run_id: self.shared.run_id,
                label: meta.label.map(str::to_owned),
                provider: meta.provider.to_owned(),
                model: request.model.clone(),
                role: meta.role,
                attempt,
                parse_attempt: meta.parse_attempt,
                started_at,
                latency_ms: millis(latency),
                first_token_ms: first_token.map(millis),
                usage,
                cost_micros,
                priced,
                outcome,
                prompt_chars: request.prompt_chars() as u64,
                response_chars: response.map_or(0, |r| r.text.len() as u64),
                request_hash: meta.hash.to_owned(),
                request: request.clone(),
                response: response.cloned(),
            })
            .await;
    }
}

struct RecordMeta<'a> {
    role: AgentRole,
    label: Option<&'a str>,
    parse_attempt: u32,
    hash: &'a str,
    provider: &'a str,
}

/// Appends structured-output instructions to the system prompt (or adds one).
fn add_instructions(messages: &mut Vec<Message>, instructions: &str) {
    match messages.iter_mut().rev().find(|m| m.role == Role::System) {
        Some(system) => {
            system.content.push_str("\n\n");
            system.content.push_str(instructions);
        }
        None => messages.insert(0, Message::system(instructions)),
    }
}

/// The longest rejected answer echoed back on a re-ask: enough for the model to see its mistake
/// without paying for a huge answer twice.
const MAX_REASK_ECHO_CHARS: usize = 16_000;

fn truncate_answer(answer: &str) -> String {
    if answer.chars().count() <= MAX_REASK_ECHO_CHARS {
        return answer.to_owned();
    }
    let cut: String = answer.chars().take(MAX_REASK_ECHO_CHARS).collect();
    format!("{cut}\n[… answer truncated …]")
}
