//! `GET /v1/projects/{project_id}/runs/{run_id}/events`: a run's events as server-sent
//! events, resumable with `Last-Event-ID`.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::HeaderMap;
use samokoder_core::api::ErrorBody;
use samokoder_core::api::events::EventStreamQuery;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::projects::owned_project;
use crate::error::ApiError;
use crate::extract::{CurrentUser, Path, Query};
use crate::generation::control;
use crate::generation::feed::{self, Pace, Subscriber};
use crate::state::AppState;
use crate::validation;

/// The routes of this file.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(run_events))
}

/// Where a reconnecting client left off: `Last-Event-ID` (what `EventSource` sends), else
/// `?after=`, else the start.
fn resume_point(headers: &HeaderMap, query: &EventStreamQuery) -> Result<i64, ApiError> {
    let invalid = |field: &str| {
        ApiError::validation(vec![validation::field_error(
            field,
            "invalid_event_id",
            "Must be an event sequence number (a non-negative integer).",
        )])
    };
    if let Some(value) = headers.get("last-event-id") {
        let text = value
            .to_str()
            .map_err(|_| invalid("header.last-event-id"))?;
        if !text.trim().is_empty() {
            return text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|seq| *seq >= 0)
                .ok_or_else(|| invalid("header.last-event-id"));
        }
    }
    match query.after {
        Some(after) if after < 0 => Err(invalid("query.after")),
        Some(after) => Ok(after),
        None => Ok(0),
    }
}

/// Follow a run's events.
///
/// A `text/event-stream` of the run's events: each has `id:` its sequence number, `event:` its
/// kind and `data:` a `RunEvent` (JSON). The stream replays the stored events after
/// `Last-Event-ID` (or `?after=`; from the first otherwise), then follows new ones as they
/// happen, without gaps or repeats, and ends after the `run_finished` event that ends the run
/// (a `waiting_for_human` one does not). Comment lines keep an idle connection alive.
#[utoipa::path(
    get,
    path = "/projects/{project_id}/runs/{run_id}/events",
    tag = "runs",
    operation_id = "run_events",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("project_id" = Uuid, Path, description = "The project's id"),
        ("run_id" = Uuid, Path, description = "The run's id"),
        ("Last-Event-ID" = Option<i64>, Header, description = "The last sequence number received; the stream starts after it"),
        EventStreamQuery,
    ),
    responses(
        (status = 200, description = "Server-sent events; each `data` is a `RunEvent`", body = String, content_type = "text/event-stream"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "`project_not_found` or `run_not_found`", body = ErrorBody),
    )
)]
async fn run_events(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((project_id, run_id)): Path<(Uuid, Uuid)>,
    Query(query): Query<EventStreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = resume_point(&headers, &query)?;
    let project = owned_project(&state, &current, project_id).await?;
    let run = control::project_run(&state, &project, run_id).await?;
    let generation = state.generation();
    // Subscribed before the first read, so news between the read and the wait is not lost.
    let live = generation.engine().subscribe();
    let config = state.config();
    let pace = Pace {
        poll: config.runs.event_poll(),
        // Past the lease after which a cancel of a run no worker drives publishes its end
        // (`control::cancel`), with room for that publish to land.
        final_grace: config.workers.lease() * 2,
    };
    let events = feed::follow(
        state.store().clone(),
        live,
        generation.shutdown_signal().clone(),
        run.id,
        after,
        pace,
        Subscriber::new("sse"),
    )
    .map(move |item| -> Result<Event, Infallible> {
        Ok(match item {
            Ok(event) => {
                let data = serde_json::to_string(&event).unwrap_or_else(|_| String::from("{}"));
                Event::default()
                    .id(event.seq.to_string())
                    .event(event.kind.clone())
                    .data(data)
            }
            // The stream cannot carry a status any more: say so in a comment and end (the
            // follower ends after an error), so the client reconnects with its last id.
            Err(error) => {
                tracing::warn!(run = %run_id, %error, "event stream interrupted by a store error");
                Event::default().comment("error: the event store is unavailable; reconnect")
            }
        })
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(config.runs.keep_alive()))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_the_query() {
        let mut headers = HeaderMap::new();
        let query = EventStreamQuery { after: Some(3) };
        assert_eq!(resume_point(&headers, &query).unwrap(), 3);
        headers.insert("last-event-id", "7".parse().unwrap());
        assert_eq!(resume_point(&headers, &query).unwrap(), 7);
        headers.insert("last-event-id", "seven".parse().unwrap());
        assert_eq!(
            resume_point(&headers, &query).unwrap_err().code(),
            "validation_error"
        );
        let none = EventStreamQuery::default();
        assert_eq!(resume_point(&HeaderMap::new(), &none).unwrap(), 0);
    }
}
