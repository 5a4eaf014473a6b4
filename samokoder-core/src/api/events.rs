//! Run events over server-sent events and the browser WebSocket.
//!
//! # Server-sent events
//!
//! `GET /v1/projects/{project_id}/runs/{run_id}/events` answers `text/event-stream`. Each event
//! is one SSE message:
//!
//! ```text
//! id: 42
//! event: file_written
//! data: {"run_id":"…","seq":42,"kind":"file_written","at":"…","data":{"type":"file_written",…}}
//! ```
//!
//! `id` is the run's event sequence number (1, 2, 3, ... without gaps), `event` the kind, and
//! `data` a [`RunEvent`]. A client that reconnects with `Last-Event-ID: 42` (or `?after=42`)
//! receives exactly the events after 42: no gap, no repeat. The stream ends after a
//! [`RUN_FINISHED`] event whose outcome is not `waiting_for_human` (see
//! [`RunEvent::ends_stream`]); comment lines keep idle connections alive.
//!
//! # WebSocket
//!
//! `GET /v1/ws/{project_id}` upgrades to a WebSocket carrying JSON text frames:
//! [`WsServerFrame`] from the server, [`WsClientFrame`] from the browser. Authentication is
//! the `access_token` cookie or `?token=` from `POST /v1/workspace/token`
//! ([`super::workspace`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::runs::QuestionResponse;

/// The kind of the event that ends a worker's turn on a run; with an outcome other than
/// `waiting_for_human` it is the run's last event.
pub const RUN_FINISHED: &str = "run_finished";

/// One persisted event of a run.
///
/// `data` is the engine's event object, tagged by `type` (equal to `kind`). The kinds:
/// `run_started`, `agent_started`, `agent_finished`, `llm_text`, `llm_stream_restarted`,
/// `waiting_for_rate_limit`, `llm_notice`, `file_written`, `command_started`,
/// `command_output`, `command_finished`, `command_skipped`, `question_asked`,
/// `question_answered`, `usage`, `sandbox_unconfined`, `sandbox_blocked`, `guard_tripped`, `checkpoint`,
/// `run_finished` (`data.outcome.outcome` is `completed`, `failed`, `cancelled`,
/// `budget_exhausted`, `waiting_for_human` or `step_cap_reached`). New kinds may be added;
/// clients should ignore kinds they do not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunEvent {
    /// The run.
    pub run_id: Uuid,
    /// Its per-run sequence number, from 1.
    pub seq: i64,
    /// The event's kind.
    pub kind: String,
    /// When it was stored.
    pub at: DateTime<Utc>,
    /// The event itself.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

impl RunEvent {
    /// The outcome of a [`RUN_FINISHED`] event (`completed`, `waiting_for_human`, ...).
    pub fn outcome(&self) -> Option<&str> {
        if self.kind != RUN_FINISHED {
            return None;
        }
        self.data
            .get("outcome")
            .and_then(|outcome| outcome.get("outcome"))
            .and_then(serde_json::Value::as_str)
    }

    /// Whether no further event can follow without someone acting: the run finished with an
    /// outcome other than `waiting_for_human` (after `budget_exhausted`, a resume continues the
    /// numbering; reconnect with the last id to follow it).
    pub fn ends_stream(&self) -> bool {
        self.outcome()
            .is_some_and(|outcome| outcome != "waiting_for_human")
    }
}

/// Query of the event stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct EventStreamQuery {
    /// Start after this sequence number, for clients that cannot set `Last-Event-ID` (the
    /// header wins when both are given). Absent: from the run's first event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
}

/// A frame the server sends over the WebSocket, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WsServerFrame {
    /// The first frame: the socket follows this project's runs.
    Subscribed {
        /// The project.
        project_id: Uuid,
    },
    /// An event of one of the project's runs (replayed for the newest run on connect, then
    /// live). Per run, events arrive in sequence order without repeats.
    Event {
        /// The event.
        event: RunEvent,
    },
    /// A question waiting for an answer: sent on connect for every pending question of the
    /// project's newest run, and whenever a run asks one. Answer with a
    /// [`WsClientFrame::Answer`].
    Question {
        /// The question.
        question: QuestionResponse,
    },
    /// The reply to an [`WsClientFrame::Answer`].
    AnswerResult {
        /// The question.
        question_id: Uuid,
        /// Whether the answer was stored (answering again with the same text also succeeds).
        ok: bool,
        /// The error code when not, as the HTTP API would give it (e.g.
        /// `question_already_answered`, `question_not_found`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// A human-readable reason when not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// The reply to a [`WsClientFrame::Ping`].
    Pong,
    /// A frame the server could not use (not JSON, an unknown `type`, a missing field).
    Error {
        /// Stable code: `invalid_frame` or `unsupported_frame`.
        code: String,
        /// What was wrong.
        detail: String,
    },
}

/// A frame the browser sends over the WebSocket, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WsClientFrame {
    /// Answers a pending question of one of the project's runs (as
    /// `POST .../questions/{question_id}/answer` does); the run continues.
    Answer {
        /// The question.
        question_id: Uuid,
        /// The answer text.
        #[serde(default)]
        text: String,
        /// The button chosen, if any; it wins over `text` (the original's frame had both).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        button: Option<String>,
    },
    /// Keeps the connection alive; the server replies [`WsServerFrame::Pong`].
    Ping,
}

impl WsClientFrame {
    /// The answer an `answer` frame gives: the button when one was chosen, else the text.
    pub fn answer_text(&self) -> Option<&str> {
        match self {
            Self::Answer { text, button, .. } => Some(button.as_deref().unwrap_or(text)),
            Self::Ping => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finished(outcome: &str) -> RunEvent {
        RunEvent {
            run_id: Uuid::nil(),
            seq: 9,
            kind: RUN_FINISHED.into(),
            at: DateTime::<Utc>::UNIX_EPOCH,
            data: json!({"type": RUN_FINISHED, "outcome": {"outcome": outcome}}),
        }
    }

    #[test]
    fn only_a_final_outcome_ends_the_stream() {
        assert!(finished("completed").ends_stream());
        assert!(finished("budget_exhausted").ends_stream());
        assert!(!finished("waiting_for_human").ends_stream());
        let mut other = finished("completed");
        other.kind = "checkpoint".into();
        assert!(!other.ends_stream());
    }

    #[test]
    fn frames_are_tagged_by_type() {
        let ping: WsClientFrame = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ping, WsClientFrame::Ping);
        let answer: WsClientFrame = serde_json::from_value(json!({
            "type": "answer", "question_id": Uuid::nil(), "text": "typed", "button": "yes"
        }))
        .unwrap();
        assert_eq!(answer.answer_text(), Some("yes"));
        assert_eq!(
            serde_json::to_value(WsServerFrame::Pong).unwrap(),
            json!({"type": "pong"})
        );
        let subscribed = WsServerFrame::Subscribed {
            project_id: Uuid::nil(),
        };
        assert_eq!(
            serde_json::to_value(subscribed).unwrap()["type"],
            "subscribed"
        );
    }
}
