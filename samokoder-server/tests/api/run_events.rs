//! Following runs: SSE resumed mid-run with `Last-Event-ID` (and `?after=`) without a gap or
//! a repeat, and who may open a project's WebSocket.

use reqwest::{Method, StatusCode};
use samokoder_core::llm::fake::script::Script;
use serde_json::json;
use uuid::Uuid;

use crate::app::send;
use crate::generating::{GenApp, Sse, assert_consecutive};
use crate::helpers::ALLOWED_ORIGIN;

#[tokio::test]
async fn a_dropped_stream_resumes_from_the_last_event_id_without_gap_or_repeat() {
    // The slow test file keeps the run going while the client drops and comes back.
    let ga = GenApp::spawn(
        Script {
            slow_test_file: true,
            ..Script::default()
        },
        |_| {},
    )
    .await;
    let session = ga.app.user().await;
    let (project, run_id) = ga.start_todo_run(&session).await;

    let mut stream = ga.events(&session, project, run_id, None).await;
    let mut seen: Vec<Sse> = stream
        .until(|e| e.event == "agent_started" && e.data["data"]["agent"] == "code_writer")
        .await;
    drop(stream);
    // Events go on being stored while nobody listens.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let last = seen.last().unwrap().id;
    let mut resumed = ga.events(&session, project, run_id, Some(last)).await;
    seen.extend(resumed.rest().await);
    assert_consecutive(&seen, 1);
    assert_eq!(seen.last().unwrap().outcome(), Some("completed"));

    // A client that cannot set headers says `?after=`; the header wins over it.
    let after = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/runs/{run_id}/events?after=3"),
        &session,
    ))
    .await;
    assert_eq!(after.status, StatusCode::OK);
    assert!(
        after.text.starts_with("id: 4\n") || after.text.contains("\nid: 4\n"),
        "{}",
        after.text
    );
    assert!(!after.text.contains("id: 3\n"));
    let bad = send(
        ga.app
            .as_user(
                Method::GET,
                &format!("/v1/projects/{project}/runs/{run_id}/events"),
                &session,
            )
            .header("last-event-id", "yesterday"),
    )
    .await;
    bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    ga.app.stop().await;
}

#[tokio::test]
async fn only_the_owner_opens_a_projects_socket_with_a_single_use_token_or_the_cookie() {
    let ga = GenApp::spawn(Script::default(), |config| {
        config.workers.concurrency = 0;
    })
    .await;
    let alice = ga.app.user().await;
    let bob = ga.app.user().await;
    let project = ga.project(&alice, "Alice's").await;
    let bobs = ga.project(&bob, "Bob's").await;

    // No credential at all.
    assert_eq!(
        ga.socket(project, None, &[]).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    // A token that is not one.
    assert_eq!(
        ga.socket(project, Some("v1.nope.AAAA"), &[]).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    // Bob cannot get a token for Alice's project, nor use his own token on it.
    send(
        ga.app
            .as_user(Method::POST, "/v1/workspace/token", &bob)
            .json(&json!({"project_id": project})),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "project_not_found");
    let bobs_token = ga.ws_token(&bob, bobs).await;
    assert_eq!(
        ga.socket(project, Some(&bobs_token), &[]).await.err(),
        Some(StatusCode::UNAUTHORIZED),
        "a token is bound to its project"
    );
    // Nor with his own session (the cookie a browser would send).
    let bobs_cookie = format!("access_token={}", bob.access);
    assert_eq!(
        ga.socket(project, None, &[("cookie", &bobs_cookie)])
            .await
            .err(),
        Some(StatusCode::NOT_FOUND)
    );

    // Alice's token opens her socket once.
    let token = ga.ws_token(&alice, project).await;
    let mut socket = ga.socket(project, Some(&token), &[]).await.expect("opens");
    let hello = socket.next().await;
    assert_eq!(hello, json!({"type": "subscribed", "project_id": project}));
    assert_eq!(
        ga.socket(project, Some(&token), &[]).await.err(),
        Some(StatusCode::UNAUTHORIZED),
        "a token is single-use"
    );
    // Her cookie works from an allowed origin, not from another one.
    let cookie = format!("access_token={}", alice.access);
    let mut by_cookie = ga
        .socket(
            project,
            None,
            &[("cookie", &cookie), ("origin", ALLOWED_ORIGIN)],
        )
        .await
        .expect("the cookie authenticates the handshake");
    assert_eq!(by_cookie.next().await["type"], "subscribed");
    assert_eq!(
        ga.socket(
            project,
            None,
            &[("cookie", &cookie), ("origin", "https://evil.example.net")]
        )
        .await
        .err(),
        Some(StatusCode::FORBIDDEN)
    );

    // A run started later shows up on the open socket, and its pending work too.
    let run = ga
        .start(&alice, project, json!({"description": "A todo API"}))
        .await;
    send(ga.app.as_user(
        Method::POST,
        &format!(
            "/v1/projects/{project}/runs/{}/cancel",
            run["id"].as_str().unwrap()
        ),
        &alice,
    ))
    .await
    .ok(StatusCode::OK);
    let event = socket.until(|f| f["type"] == "event").await;
    assert_eq!(event["event"]["run_id"], run["id"]);
    assert_eq!(event["event"]["data"]["outcome"]["outcome"], "cancelled");
    // A plain HTTP request to the socket route is told to upgrade.
    send(
        ga.app
            .as_user(Method::GET, &format!("/v1/ws/{project}"), &alice),
    )
    .await
    .assert_error(StatusCode::UPGRADE_REQUIRED, "upgrade_required");
    ga.app.stop().await;
}

#[tokio::test]
async fn a_socket_sending_a_huge_frame_is_closed() {
    let ga = GenApp::spawn(Script::default(), |config| {
        config.workers.concurrency = 0;
    })
    .await;
    let alice = ga.app.user().await;
    let project = ga.project(&alice, "Alice's").await;
    let token = ga.ws_token(&alice, project).await;
    let mut socket = ga.socket(project, Some(&token), &[]).await.expect("opens");
    assert_eq!(socket.next().await["type"], "subscribed");
    // An ordinary frame is answered...
    socket.send(json!({"type": "ping"})).await;
    assert_eq!(socket.next().await, json!({"type": "pong"}));
    // ...one far past any answer's size ends the socket instead of being read.
    let huge = json!({"type": "answer", "question_id": Uuid::nil(), "text": "x".repeat(1 << 20)});
    let _ = socket.send_text(huge.to_string()).await;
    let frames = socket.until_closed().await;
    assert!(
        frames.iter().all(|frame| frame["type"] != "answer_result"),
        "{frames:?}"
    );
    ga.app.stop().await;
}
