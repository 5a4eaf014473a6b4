//! Following a run's events over server-sent events, across dropped connections.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use samokoder_core::api::events::{EventStreamQuery, RunEvent};
use samokoder_core::api::runs::{RunResponse, RunStatus};
use uuid::Uuid;

use crate::client::success;
use crate::operations as ops;
use crate::{Client, Error};

/// How a [`RunEvents`] stream starts and reconnects.
#[derive(Debug, Clone)]
pub struct EventStreamOptions {
    /// Start after this sequence number (`None`: from the run's first event).
    pub after: Option<i64>,
    /// How many reconnections in a row may fail (or deliver nothing) before the stream gives
    /// up with an error. Any delivered event resets the count.
    pub max_reconnects: u32,
    /// The wait before the first reconnection; it doubles with each failure in a row, up to
    /// `max_reconnect_delay`. A `retry:` field from the server replaces it.
    pub reconnect_delay: Duration,
    /// The longest wait between reconnections.
    pub max_reconnect_delay: Duration,
}

impl Default for EventStreamOptions {
    fn default() -> Self {
        Self {
            after: None,
            max_reconnects: 10,
            reconnect_delay: Duration::from_millis(250),
            max_reconnect_delay: Duration::from_secs(10),
        }
    }
}

/// A run's events in sequence order, each exactly once, ending after the event that finishes
/// the run ([`RunEvent::ends_stream`]: `completed`, `failed`, `cancelled`,
/// `budget_exhausted`). A `run_finished` with outcome `waiting_for_human` does not end it:
/// the run continues once its question is answered.
///
/// When the connection drops, the stream reconnects with `Last-Event-ID` set to the last
/// sequence number it delivered, so the server resumes right after it; events the server
/// sends again anyway are skipped by sequence number. A 401 on reconnecting refreshes the
/// session like any call. Errors the server gives on connecting (404, 403) end the stream with
/// that error; server errors and broken connections are retried (see
/// [`EventStreamOptions`]).
///
/// Made by [`Runs::events`](crate::resources::Runs::events).
pub struct RunEvents {
    inner: BoxStream<'static, Result<RunEvent, Error>>,
}

impl std::fmt::Debug for RunEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunEvents").finish_non_exhaustive()
    }
}

impl Stream for RunEvents {
    type Item = Result<RunEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

type SseStream = BoxStream<
    'static,
    Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>,
>;

/// The follower's state between events.
struct Follower {
    client: Client,
    project_id: String,
    run_id: String,
    options: EventStreamOptions,
    /// The highest sequence number delivered.
    last_seq: Option<i64>,
    connection: Option<SseStream>,
    /// Reconnections in a row without a delivered event.
    failures: u32,
    /// The server's `retry:` advice.
    retry: Option<Duration>,
    done: bool,
}

impl RunEvents {
    pub(crate) fn follow(
        client: Client,
        project_id: Uuid,
        run_id: Uuid,
        options: EventStreamOptions,
    ) -> Self {
        let follower = Follower {
            client,
            project_id: project_id.to_string(),
            run_id: run_id.to_string(),
            last_seq: options.after,
            options,
            connection: None,
            failures: 0,
            retry: None,
            done: false,
        };
        let inner = futures::stream::unfold(follower, |mut follower| async move {
            let item = follower.next().await?;
            Some((item, follower))
        })
        .boxed();
        Self { inner }
    }
}

/// What one connection attempt gave.
enum Connect {
    Open(SseStream),
    /// Worth trying again (a server error, a transport failure).
    Retry(Error),
    /// Final (the run does not exist, no access).
    Fail(Error),
}

impl Follower {
    /// The next event to deliver, `None` once the run finished (or after a final error).
    async fn next(&mut self) -> Option<Result<RunEvent, Error>> {
        if self.done {
            return None;
        }
        loop {
            let Some(connection) = self.connection.as_mut() else {
                match self.connect().await {
                    Connect::Open(stream) => {
                        self.connection = Some(stream);
                        continue;
                    }
                    Connect::Fail(error) => return Some(Err(self.finish(error))),
                    Connect::Retry(error) => {
                        if let Err(error) = self.back_off(error).await {
                            return Some(Err(self.finish(error)));
                        }
                        continue;
                    }
                }
            };
            match connection.next().await {
                Some(Ok(message)) => {
                    if let Some(retry) = message.retry {
                        self.retry = Some(retry);
                    }
                    // Keep-alive comments never get here; an empty `data` is a bare `retry:`.
                    if message.data.trim().is_empty() {
                        continue;
                    }
                    let event: RunEvent = match serde_json::from_str(&message.data) {
                        Ok(event) => event,
                        Err(error) => {
                            let error = Error::EventStream(format!(
                                "event {:?} is not a run event: {error}",
                                message.id
                            ));
                            return Some(Err(self.finish(error)));
                        }
                    };
                    if self.last_seq.is_some_and(|last| event.seq <= last) {
                        continue;
                    }
                    self.last_seq = Some(event.seq);
                    self.failures = 0;
                    if event.ends_stream() {
                        self.finish_quietly();
                    }
                    return Some(Ok(event));
                }
                Some(Err(error)) => {
                    self.connection = None;
                    let error = Error::EventStream(format!("the connection broke: {error}"));
                    if let Err(error) = self.back_off(error).await {
                        return Some(Err(self.finish(error)));
                    }
                }
                None => {
                    self.connection = None;
                    // A stream that started after the run's end event is closed by the server
                    // once the run has stayed finished a while: nothing more can come.
                    if run_is_over(&self.client, &self.project_id, &self.run_id).await {
                        self.finish_quietly();
                        return None;
                    }
                    // The server closed the stream before the run finished (a restart, a
                    // proxy's timeout): pick up where we are.
                    let error = Error::EventStream(
                        "the server closed the stream before the run finished".into(),
                    );
                    if let Err(error) = self.back_off(error).await {
                        return Some(Err(self.finish(error)));
                    }
                }
            }
        }
    }

    async fn connect(&mut self) -> Connect {
        let mut call = self
            .client
            .call(&ops::RUN_EVENTS, &[&self.project_id, &self.run_id])
            .header("accept", HeaderValue::from_static("text/event-stream"));
        if let Some(last) = self.last_seq {
            // Both ways of saying it: the header for the server, the query for proxies that
            // drop unknown headers (the server prefers the header when both arrive).
            call = call
                .header("last-event-id", HeaderValue::from(last))
                .query(&EventStreamQuery { after: Some(last) });
        }
        let response = match call.send().await {
            Ok(response) => response,
            Err(error @ Error::Transport(_)) => return Connect::Retry(error),
            Err(error) if is_transient(&error) => return Connect::Retry(error),
            Err(error) => return Connect::Fail(error),
        };
        match success(response).await {
            Ok(response) => Connect::Open(response.bytes_stream().eventsource().boxed()),
            Err(error) if is_transient(&error) => Connect::Retry(error),
            Err(error) => Connect::Fail(error),
        }
    }

    /// Waits before the next connection attempt, or gives up with `error` when the attempts
    /// are spent.
    async fn back_off(&mut self, error: Error) -> Result<(), Error> {
        self.failures += 1;
        if self.failures > self.options.max_reconnects {
            return Err(error);
        }
        let base = self.retry.unwrap_or(self.options.reconnect_delay);
        let factor = 2u32.saturating_pow(self.failures.saturating_sub(1).min(16));
        let delay = base
            .saturating_mul(factor)
            .min(self.options.max_reconnect_delay);
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn finish(&mut self, error: Error) -> Error {
        self.finish_quietly();
        error
    }

    fn finish_quietly(&mut self) {
        self.done = true;
        self.connection = None;
    }
}

/// Whether the run finished or stopped for its budget (so no event follows without a resume);
/// `false` when that cannot be told.
async fn run_is_over(client: &Client, project_id: &str, run_id: &str) -> bool {
    let run = client
        .call(&ops::GET_RUN, &[project_id, run_id])
        .send_json::<RunResponse>()
        .await;
    run.is_ok_and(|run| run.status.is_final() || run.status == RunStatus::BudgetExhausted)
}

/// Server trouble that reconnecting may outlast.
fn is_transient(error: &Error) -> bool {
    match error {
        Error::Transport(_) => true,
        Error::Api(api) => {
            api.status().is_server_error() || api.status() == StatusCode::TOO_MANY_REQUESTS
        }
        _ => false,
    }
}
