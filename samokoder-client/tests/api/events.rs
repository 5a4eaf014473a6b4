//! The run event stream across dropped connections, against a scripted SSE server that drops,
//! repeats and fails on purpose (the real server never does, which is the point of testing
//! the client's side here; the end-to-end tests follow real runs).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{StreamExt, TryStreamExt, stream};
use samokoder_client::{Client, EventStreamOptions};
use serde_json::json;
use uuid::Uuid;

/// What the scripted server does on each connection, in order.
#[derive(Clone)]
enum Reply {
    /// These events, then the body ends (a dropped connection).
    Events(Vec<i64>),
    /// These events, then the connection stays open and silent.
    EventsThenHang(Vec<i64>),
    Status(StatusCode),
}

#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<Vec<Reply>>>,
    /// The `Last-Event-ID` of each connection.
    seen: Arc<Mutex<Vec<Option<String>>>>,
    /// The status `GET .../runs/{run}` answers with; `None` answers 404.
    run_status: Option<&'static str>,
}

/// Event 5 is a `run_finished` waiting for a person (the stream goes on), 6 finishes the run.
fn message(run_id: Uuid, seq: i64) -> String {
    let (kind, data) = match seq {
        5 => (
            "run_finished",
            json!({"type": "run_finished", "outcome": {"outcome": "waiting_for_human"}}),
        ),
        6 => (
            "run_finished",
            json!({"type": "run_finished", "outcome": {"outcome": "completed"}}),
        ),
        _ => ("checkpoint", json!({"type": "checkpoint"})),
    };
    let event = json!({"run_id": run_id, "seq": seq, "kind": kind, "at": "2026-11-27T10:00:00Z", "data": data});
    format!(": keep-alive\n\nid: {seq}\nevent: {kind}\ndata: {event}\n\n")
}

async fn events(State(script): State<Script>, headers: HeaderMap) -> Response {
    script.seen.lock().unwrap().push(
        headers
            .get("last-event-id")
            .map(|v| v.to_str().unwrap().to_owned()),
    );
    let reply = {
        let mut replies = script.replies.lock().unwrap();
        assert!(
            !replies.is_empty(),
            "the client connected more often than scripted"
        );
        replies.remove(0)
    };
    let run_id = Uuid::nil();
    let chunks = |seqs: Vec<i64>| {
        stream::iter(
            seqs.into_iter()
                .map(move |seq| Ok::<_, Infallible>(message(run_id, seq))),
        )
    };
    let sse = |body: Body| ([("content-type", "text/event-stream")], body).into_response();
    match reply {
        Reply::Events(seqs) => sse(Body::from_stream(chunks(seqs))),
        Reply::EventsThenHang(seqs) => {
            sse(Body::from_stream(chunks(seqs).chain(stream::pending())))
        }
        Reply::Status(status) => (
            status,
            [("content-type", "application/json")],
            json!({"detail": "scripted", "code": "scripted", "request_id": "r-1"}).to_string(),
        )
            .into_response(),
    }
}

/// `GET .../runs/{run}`: a run with the scripted status.
async fn run(State(script): State<Script>) -> Response {
    let Some(status) = script.run_status else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let at = "2026-11-27T10:00:00Z";
    axum::Json(json!({
        "id": Uuid::nil(), "project_id": Uuid::nil(), "status": status,
        "description": "d", "autonomy": "auto", "budget": {}, "models": {},
        "usage": {"tokens": 0, "cost_micros": 0, "llm_calls": 0},
        "created_at": at, "updated_at": at,
    }))
    .into_response()
}

async fn serve(replies: Vec<Reply>) -> (Client, Script) {
    serve_with(replies, None).await
}

async fn serve_with(replies: Vec<Reply>, run_status: Option<&'static str>) -> (Client, Script) {
    let script = Script {
        replies: Arc::new(Mutex::new(replies)),
        run_status,
        ..Script::default()
    };
    let app = Router::new()
        .route("/v1/projects/{project}/runs/{run}/events", get(events))
        .route("/v1/projects/{project}/runs/{run}", get(run))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (Client::new(&format!("http://{address}")).unwrap(), script)
}

fn fast() -> EventStreamOptions {
    EventStreamOptions {
        reconnect_delay: Duration::from_millis(5),
        max_reconnect_delay: Duration::from_millis(20),
        max_reconnects: 3,
        ..EventStreamOptions::default()
    }
}

#[tokio::test]
async fn resumes_after_drops_and_errors_without_gaps_or_repeats_and_stops_when_finished() {
    let (client, script) = serve(vec![
        Reply::Events(vec![1, 2, 3]),
        Reply::Status(StatusCode::SERVICE_UNAVAILABLE),
        // The server repeats 2 and 3 (as a proxy's replay could): they are skipped.
        Reply::Events(vec![2, 3, 4]),
        Reply::EventsThenHang(vec![4, 5, 6]),
    ])
    .await;
    let (project, run) = (Uuid::new_v4(), Uuid::new_v4());
    let seqs: Vec<i64> = tokio::time::timeout(
        Duration::from_secs(10),
        client
            .runs()
            .events_with(project, run, fast())
            .map_ok(|event| event.seq)
            .try_collect(),
    )
    .await
    .expect("the stream ends after the finishing event, not at the hanging connection")
    .unwrap();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(
        *script.seen.lock().unwrap(),
        vec![None, Some("3".into()), Some("3".into()), Some("4".into())]
    );
}

#[tokio::test]
async fn starts_after_a_given_sequence_number() {
    let (client, script) = serve(vec![Reply::Events(vec![5, 6])]).await;
    let options = EventStreamOptions {
        after: Some(4),
        ..fast()
    };
    let seqs: Vec<i64> = client
        .runs()
        .events_with(Uuid::nil(), Uuid::nil(), options)
        .map_ok(|event| event.seq)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(seqs, vec![5, 6]);
    assert_eq!(*script.seen.lock().unwrap(), vec![Some("4".into())]);
}

#[tokio::test]
async fn a_client_error_ends_the_stream_at_once() {
    let (client, script) = serve(vec![Reply::Status(StatusCode::NOT_FOUND)]).await;
    let results: Vec<_> = client
        .runs()
        .events_with(Uuid::nil(), Uuid::nil(), fast())
        .collect()
        .await;
    assert_eq!(results.len(), 1);
    let error = results[0].as_ref().unwrap_err();
    assert!(error.is_not_found(), "{error}");
    assert_eq!(error.api().unwrap().request_id(), Some("r-1"));
    assert_eq!(script.seen.lock().unwrap().len(), 1, "no retry after a 404");
}

#[tokio::test]
async fn gives_up_after_the_reconnection_budget() {
    let (client, script) = serve(vec![
        Reply::Events(vec![1]),
        Reply::Status(StatusCode::BAD_GATEWAY),
        Reply::Status(StatusCode::BAD_GATEWAY),
        Reply::Status(StatusCode::BAD_GATEWAY),
    ])
    .await;
    let results: Vec<_> = client
        .runs()
        .events_with(Uuid::nil(), Uuid::nil(), fast())
        .collect()
        .await;
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().unwrap().seq, 1);
    assert_eq!(
        results[1].as_ref().unwrap_err().status(),
        Some(StatusCode::BAD_GATEWAY)
    );
    // The first connection's drop is the first failure in a row and the next two refusals
    // the second and third; the third refusal is one more than the three allowed.
    assert_eq!(script.seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn a_stream_after_the_end_of_a_finished_run_ends_when_the_server_closes_it() {
    // Started after the run's end event: the server has nothing to send and closes the stream.
    let (client, script) = serve_with(vec![Reply::Events(vec![])], Some("completed")).await;
    let options = EventStreamOptions {
        after: Some(6),
        ..fast()
    };
    let results: Vec<_> = tokio::time::timeout(
        Duration::from_secs(10),
        client
            .runs()
            .events_with(Uuid::nil(), Uuid::nil(), options)
            .collect(),
    )
    .await
    .expect("ends at once");
    assert!(
        results.is_empty(),
        "no error, no event: {:?}",
        results.len()
    );
    assert_eq!(script.seen.lock().unwrap().len(), 1, "no reconnection");
}
