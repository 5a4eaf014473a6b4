//! Someone else's project, run, question or state is 404 on every generation route, exactly
//! like a missing one; and a run is only reachable under its own project.

use reqwest::{Method, StatusCode};
use samokoder_core::llm::fake::script::Script;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::send;
use crate::generating::GenApp;

#[tokio::test]
async fn every_generation_route_hides_other_peoples_projects() {
    let ga = GenApp::spawn(Script::default(), |config| {
        config.workers.concurrency = 0;
    })
    .await;
    let alice = ga.app.user().await;
    let bob = ga.app.user().await;
    let project = ga.project(&alice, "Alice's").await;
    let run = ga
        .start(&alice, project, json!({"description": "A todo API"}))
        .await;
    let run_id = run["id"].as_str().unwrap();
    let question = Uuid::now_v7();
    let state = Uuid::now_v7();
    let base = format!("/v1/projects/{project}");
    let runs = format!("{base}/runs/{run_id}");
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            format!("{base}/runs"),
            Some(json!({"description": "mine now"})),
        ),
        (Method::GET, format!("{base}/runs"), None),
        (Method::GET, runs.clone(), None),
        (Method::POST, format!("{runs}/cancel"), None),
        (Method::POST, format!("{runs}/resume"), None),
        (Method::GET, format!("{runs}/events"), None),
        (Method::GET, format!("{runs}/questions"), None),
        (
            Method::POST,
            format!("{runs}/questions/{question}/answer"),
            Some(json!({"answer": "yes"})),
        ),
        (Method::GET, format!("{base}/files"), None),
        (Method::GET, format!("{base}/files/src/app.js"), None),
        (Method::GET, format!("{base}/states"), None),
        (
            Method::POST,
            format!("{base}/states/{state}/rollback"),
            None,
        ),
        (Method::GET, format!("{base}/export"), None),
        (Method::GET, format!("{base}/archive"), None),
        (Method::POST, format!("{base}/preview/start"), None),
        (Method::POST, format!("{base}/preview/stop"), None),
        (Method::GET, format!("{base}/preview/status"), None),
        (
            Method::POST,
            "/v1/workspace/token".to_owned(),
            Some(json!({"project_id": project})),
        ),
    ];
    for (method, path, body) in routes {
        let mut request = ga.app.as_user(method.clone(), &path, &bob);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = send(request).await;
        let error = reply.assert_error(StatusCode::NOT_FOUND, "project_not_found");
        assert_eq!(error["detail"], "Project not found", "{method} {path}");
    }
    // Nothing of Bob's requests touched Alice's run.
    assert_eq!(
        ga.run(&alice, project, run_id.parse().unwrap()).await["status"],
        "queued"
    );

    // Alice's run under Bob's project is no run of his.
    let bobs = ga.project(&bob, "Bob's").await;
    send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{bobs}/runs/{run_id}"),
        &bob,
    ))
    .await
    .assert_error(StatusCode::NOT_FOUND, "run_not_found");
    // And a question of another run is not one of this run's.
    send(
        ga.app
            .as_user(
                Method::POST,
                &format!("{runs}/questions/{question}/answer"),
                &alice,
            )
            .json(&json!({"answer": "yes"})),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "question_not_found");
    // Without credentials: 401.
    send(ga.app.request(Method::GET, &format!("{base}/runs")))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "not_authenticated");
    ga.app.stop().await;
}
