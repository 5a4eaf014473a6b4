//! Publishing events: persisted through the [`RunStore`] (which assigns the sequence number),
//! then broadcast to live subscribers, in order, by one writer task per `drive` call.
//!
//! Model text and command output arrive in tiny pieces; they are coalesced into events of up
//! to [`TEXT_FLUSH_BYTES`] or every [`TEXT_FLUSH_INTERVAL`], whichever comes first, so the
//! store sees a few rows per second per stream rather than one per token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::llm::{AgentRole, ChatResponse, LlmEvent, LlmEventSink, StreamSink};
use crate::state::{EngineEvent, OutputStream, RunStore, RunStoreError};

/// Coalesced text is flushed once this many bytes are buffered.
pub const TEXT_FLUSH_BYTES: usize = 1024;
/// Coalesced text is flushed when a piece arrives this long after the last flush.
pub const TEXT_FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// An event as live subscribers receive it: persisted, with its sequence number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedEvent {
    /// The run.
    pub run_id: Uuid,
    /// Its per-run sequence number.
    pub seq: i64,
    /// The event.
    pub event: EngineEvent,
}

enum Msg {
    Event(EngineEvent),
    Flush(oneshot::Sender<Result<i64, String>>),
}

/// The per-drive publisher. Cloning shares the writer.
#[derive(Clone)]
pub(crate) struct EventBus {
    tx: mpsc::UnboundedSender<Msg>,
}

/// The writer task; awaiting [`EventWriter::finish`] waits until every queued event is stored.
pub(crate) struct EventWriter {
    task: JoinHandle<()>,
}

impl EventWriter {
    pub(crate) async fn finish(self) {
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "event writer task ended abnormally");
        }
    }
}

impl EventBus {
    /// Starts the writer for `run_id`.
    pub(crate) fn start(
        store: Arc<dyn RunStore>,
        run_id: Uuid,
        live: broadcast::Sender<PublishedEvent>,
        last_seq: i64,
    ) -> (Self, EventWriter) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let task = tokio::spawn(async move {
            let mut last_seq = last_seq;
            let mut failure: Option<String> = None;
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Event(event) => {
                        let payload = match serde_json::to_value(&event) {
                            Ok(payload) => payload,
                            Err(e) => {
                                failure.get_or_insert_with(|| format!("serialising event: {e}"));
                                continue;
                            }
                        };
                        match store.append_event(run_id, event.kind(), &payload).await {
                            Ok(seq) => {
                                last_seq = seq;
                                // Nobody listening is fine: subscribers catch up from the store.
                                let _ = live.send(PublishedEvent { run_id, seq, event });
                            }
                            Err(e) => {
                                tracing::warn!(%run_id, error = %e, "could not store a run event");
                                failure.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                    Msg::Flush(reply) => {
                        let result = match failure.take() {
                            Some(error) => Err(error),
                            None => Ok(last_seq),
                        };
                        let _ = reply.send(result);
                    }
                }
            }
        });
        (Self { tx }, EventWriter { task })
    }

    /// Queues a live event (stored and broadcast in order, without waiting).
    pub(crate) fn emit(&self, event: EngineEvent) {
        // The writer only stops when every sender is gone, so this cannot fail while `self`
        // exists; a send error would mean the writer panicked, which the flush reports.
        let _ = self.tx.send(Msg::Event(event));
    }

    /// Waits until everything queued so far is stored; returns the run's last sequence number.
    pub(crate) async fn flush(&self) -> Result<i64, RunStoreError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Msg::Flush(reply))
            .map_err(|_| RunStoreError::backend("publishing events", "the event writer stopped"))?;
        wait.await
            .map_err(|_| RunStoreError::backend("publishing events", "the event writer stopped"))?
            .map_err(|e| RunStoreError::backend("publishing events", e))
    }

    /// A stream sink that turns model text into coalesced [`EngineEvent::LlmText`] events.
    pub(crate) fn text_sink(&self, agent: AgentRole) -> LiveText {
        LiveText {
            bus: self.clone(),
            agent,
            buf: String::new(),
            last_flush: Instant::now(),
        }
    }

    /// An output callback that turns command output into coalesced events.
    pub(crate) fn output_sink(&self) -> LiveOutput {
        LiveOutput {
            bus: self.clone(),
            stream: OutputStream::Stdout,
            buf: String::new(),
            last_flush: Instant::now(),
        }
    }
}

/// Model text for the live feed.
pub(crate) struct LiveText {
    bus: EventBus,
    agent: AgentRole,
    buf: String,
    last_flush: Instant,
}

impl LiveText {
    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.bus.emit(EngineEvent::LlmText {
                agent: self.agent,
                text: std::mem::take(&mut self.buf),
            });
        }
        self.last_flush = Instant::now();
    }
}

impl StreamSink for LiveText {
    fn delta(&mut self, text: &str) {
        self.buf.push_str(text);
        if self.buf.len() >= TEXT_FLUSH_BYTES || self.last_flush.elapsed() >= TEXT_FLUSH_INTERVAL {
            self.flush();
        }
    }

    fn restart(&mut self) {
        self.flush();
        self.bus
            .emit(EngineEvent::LlmStreamRestarted { agent: self.agent });
    }

    fn finish(&mut self, _response: &ChatResponse) {
        self.flush();
    }
}

impl Drop for LiveText {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Command output for the live feed.
pub(crate) struct LiveOutput {
    bus: EventBus,
    stream: OutputStream,
    buf: String,
    last_flush: Instant,
}

impl LiveOutput {
    pub(crate) fn push(&mut self, stream: OutputStream, text: &str) {
        if stream != self.stream {
            self.flush();
            self.stream = stream;
        }
        self.buf.push_str(text);
        if self.buf.len() >= TEXT_FLUSH_BYTES || self.last_flush.elapsed() >= TEXT_FLUSH_INTERVAL {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.bus.emit(EngineEvent::CommandOutput {
                stream: self.stream,
                text: std::mem::take(&mut self.buf),
            });
        }
        self.last_flush = Instant::now();
    }
}

impl Drop for LiveOutput {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Forwards the LLM layer's progress reports as run events.
pub(crate) struct LlmProgress(pub(crate) EventBus);

impl LlmEventSink for LlmProgress {
    fn emit(&self, event: LlmEvent) {
        let event = match event {
            LlmEvent::WaitingForRateLimit {
                role,
                provider,
                wait_ms,
                ..
            } => EngineEvent::WaitingForRateLimit {
                agent: role,
                provider,
                wait_ms,
            },
            other => EngineEvent::LlmNotice { notice: other },
        };
        self.0.emit(event);
    }
}
