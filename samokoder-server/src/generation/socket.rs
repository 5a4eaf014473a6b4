//! One browser's WebSocket on a project: the events of the project's runs out, answers and
//! pings in (frames of [`samokoder_core::api::events`]).
//!
//! On connect the socket replays the newest run's stored events and its pending questions,
//! then follows every run of the project, including runs started later. As with SSE the store
//! is read in sequence order per run (no gap, no repeat); the engine's live feed and a poll
//! interval only say when to read.
//!
//! A `question` frame goes out once per question, and only while it waits for an answer: a
//! replayed `question_asked` event of an answered question (or of a finished run) is sent as
//! the event alone. The server pings every keep-alive interval and ends a socket that stays
//! silent for three of them, and every socket ends after the access-token lifetime, so a
//! logged-out session does not keep one open: the browser reconnects with a fresh token.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use samokoder_core::api::events::{RunEvent, WsClientFrame, WsServerFrame};
use samokoder_core::api::runs::{AnswerRequest, QuestionResponse};
use samokoder_core::state::EngineEvent;
use samokoder_store::{Project, StoreError};
use uuid::Uuid;

use super::feed::{self, Subscriber};
use super::{control, views};
use crate::state::AppState;

/// Runs of the project looked at when discovering new ones.
const RECENT_RUNS: u32 = 5;

/// The socket closed, or could not be written: the session ends.
struct Closed;

/// The runs a socket follows and how far.
#[derive(Default)]
struct Runs {
    /// Run → last sequence number sent.
    followed: HashMap<Uuid, i64>,
    /// Runs whose final event was sent.
    finished: HashSet<Uuid>,
    /// Runs seen (followed or deliberately not: the older ones at connect time).
    known: HashSet<Uuid>,
    /// Questions sent as `question` frames.
    asked: HashSet<Uuid>,
}

struct Session {
    state: AppState,
    project: Project,
    sink: SplitSink<WebSocket, Message>,
    runs: Runs,
}

impl Session {
    async fn send(&mut self, frame: &WsServerFrame) -> Result<(), Closed> {
        let text = serde_json::to_string(frame).map_err(|_| Closed)?;
        self.sink
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| Closed)
    }

    /// Follows the newest run from its first event and sends its pending questions.
    async fn start(&mut self) -> Result<(), StoreError> {
        let recent = self
            .state
            .store()
            .runs
            .list_for_project(self.project.id, RECENT_RUNS)
            .await?;
        self.runs.known.extend(recent.iter().map(|run| run.id));
        if let Some(newest) = recent.first() {
            self.runs.followed.insert(newest.id, 0);
            let pending = if views::status(newest.status).is_final() {
                Vec::new()
            } else {
                self.state.store().questions.pending(newest.id).await?
            };
            for question in pending {
                self.runs.asked.insert(question.id);
                let frame = WsServerFrame::Question {
                    question: views::question(&question),
                };
                if self.send(&frame).await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Starts following runs created since the socket connected.
    async fn discover(&mut self) -> Result<(), StoreError> {
        let recent = self
            .state
            .store()
            .runs
            .list_for_project(self.project.id, RECENT_RUNS)
            .await?;
        for run in recent {
            if self.runs.known.insert(run.id) {
                self.runs.followed.insert(run.id, 0);
            }
        }
        Ok(())
    }

    /// Sends what the followed runs stored since the last read.
    async fn flush(&mut self) -> Result<(), Closed> {
        let runs: Vec<(Uuid, i64)> = self
            .runs
            .followed
            .iter()
            .filter(|(run, _)| !self.runs.finished.contains(run))
            .map(|(run, last)| (*run, *last))
            .collect();
        for (run_id, last) in runs {
            let events = match feed::read_after(self.state.store(), run_id, last).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(run = %run_id, %error, "could not read events for a socket");
                    continue;
                }
            };
            for event in events {
                self.runs.followed.insert(run_id, event.seq);
                if event.ends_stream() {
                    self.runs.finished.insert(run_id);
                }
                let question = match question_of(&event) {
                    Some(question) if self.runs.asked.insert(question.id) => {
                        self.still_waiting(question).await
                    }
                    _ => None,
                };
                self.send(&WsServerFrame::Event { event }).await?;
                if let Some(question) = question {
                    self.send(&WsServerFrame::Question { question }).await?;
                }
            }
        }
        Ok(())
    }

    /// The question as the store has it now, if it still waits for an answer.
    async fn still_waiting(&self, question: QuestionResponse) -> Option<QuestionResponse> {
        match self.state.store().questions.get(question.id).await {
            Ok(stored) if stored.answer.is_none() => Some(question),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(question = %question.id, %error, "could not check a question for a socket");
                None
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Closed> {
        let frame = match serde_json::from_str::<WsClientFrame>(text) {
            Ok(frame) => frame,
            Err(_) => {
                let unsupported = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|value| value.get("type")?.as_str().map(str::to_owned))
                    .filter(|kind| kind != "answer" && kind != "ping");
                let frame = match unsupported {
                    Some(kind) => WsServerFrame::Error {
                        code: "unsupported_frame".into(),
                        detail: format!("Frames of type `{kind}` are not handled; send `answer` or `ping`"),
                    },
                    None => WsServerFrame::Error {
                        code: "invalid_frame".into(),
                        detail: "Expected a JSON frame: {\"type\": \"answer\", \"question_id\": ..., \"text\": ...} or {\"type\": \"ping\"}".into(),
                    },
                };
                return self.send(&frame).await;
            }
        };
        match &frame {
            WsClientFrame::Ping => self.send(&WsServerFrame::Pong).await,
            WsClientFrame::Answer { question_id, .. } => {
                let answer = frame.answer_text().unwrap_or_default().to_owned();
                let reply = self.answer(*question_id, answer).await;
                self.send(&reply).await
            }
        }
    }

    /// Answers a question of one of the project's runs, as the HTTP route does.
    async fn answer(&self, question_id: Uuid, answer: String) -> WsServerFrame {
        let result = async {
            let question = match self.state.store().questions.get(question_id).await {
                Ok(question) => question,
                Err(StoreError::NotFound { .. }) => return Err(control::question_not_found()),
                Err(error) => return Err(error.into()),
            };
            let run = control::project_run(&self.state, &self.project, question.run_id)
                .await
                .map_err(|_| control::question_not_found())?;
            control::answer(&self.state, &run, question_id, &AnswerRequest { answer }).await
        }
        .await;
        match result {
            Ok(_) => WsServerFrame::AnswerResult {
                question_id,
                ok: true,
                code: None,
                detail: None,
            },
            Err(error) => WsServerFrame::AnswerResult {
                question_id,
                ok: false,
                code: Some(error.code().to_owned()),
                detail: Some(error.detail().to_owned()),
            },
        }
    }
}

/// The question a `question_asked` event announces.
fn question_of(event: &RunEvent) -> Option<QuestionResponse> {
    match serde_json::from_value::<EngineEvent>(event.data.clone()).ok()? {
        EngineEvent::QuestionAsked {
            question_id,
            text,
            buttons,
            default_answer,
        } => Some(QuestionResponse {
            id: question_id,
            run_id: event.run_id,
            text,
            buttons,
            default_answer,
            answer: None,
            asked_at: event.at,
            answered_at: None,
        }),
        _ => None,
    }
}

/// Serves one socket until the browser leaves, the server shuts down or the socket fails.
pub async fn serve(socket: WebSocket, state: AppState, project: Project) {
    let _subscriber = Subscriber::new("websocket");
    let (sink, mut incoming): (_, SplitStream<WebSocket>) = socket.split();
    let generation = state.generation().clone();
    // Subscribed before the first read, so no news is missed between reading and waiting.
    let mut live = generation.engine().subscribe();
    let shutdown = generation.shutdown_signal().clone();
    let poll = state.config().runs.event_poll();
    let mut session = Session {
        project: project.clone(),
        state,
        sink,
        runs: Runs::default(),
    };
    let subscribed = WsServerFrame::Subscribed {
        project_id: project.id,
    };
    if session.send(&subscribed).await.is_err() {
        return;
    }
    if let Err(error) = session.start().await {
        tracing::warn!(project = %project.id, %error, "socket could not load the project's runs");
        return;
    }
    if session.flush().await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let keep_alive = session.state.config().runs.keep_alive();
    let mut ping = tokio::time::interval(keep_alive);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut heard = Instant::now();
    let ends = tokio::time::sleep(std::time::Duration::from_secs(
        session.state.config().auth.access_ttl_secs,
    ));
    tokio::pin!(ends);
    loop {
        // News of a followed run wakes the socket at once; new runs of the project are found
        // at the next tick (the live feed carries every project's runs).
        let followed: HashSet<Uuid> = session.runs.followed.keys().copied().collect();
        let relevant = move |run: Uuid| followed.contains(&run);
        let outcome = tokio::select! {
            () = shutdown.cancelled() => break,
            () = &mut ends => {
                let frame = WsServerFrame::Error {
                    code: "session_expired".into(),
                    detail: "The socket lasts as long as an access token; reconnect with a new token".into(),
                };
                let _ = session.send(&frame).await;
                break;
            }
            _ = ping.tick() => {
                if heard.elapsed() > keep_alive * 3 {
                    tracing::info!(project = %project.id, "websocket silent too long; closing it");
                    break;
                }
                session.sink.send(Message::Ping(Default::default())).await.map_err(|_| Closed)
            }
            message = incoming.next() => match message.inspect(|_| heard = Instant::now()) {
                Some(Ok(Message::Text(text))) => session.on_text(text.as_str()).await,
                Some(Ok(Message::Binary(_))) => {
                    let frame = WsServerFrame::Error {
                        code: "invalid_frame".into(),
                        detail: "Frames are JSON text".into(),
                    };
                    session.send(&frame).await
                }
                // Pings are answered by the socket itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            () = feed::live_news(&mut live, relevant) => session.flush().await,
            _ = tick.tick() => {
                session.discover().await.ok();
                session.flush().await
            }
        };
        if outcome.is_err() {
            break;
        }
    }
    let _ = session.sink.close().await;
}
