//! Generation over the API: an auto run from the request to the zip, an interactive run
//! answered over HTTP and the WebSocket, the budget stop and resume, cancelling, the missing
//! key, and the main flow once on PostgreSQL.

use std::io::Read;

use reqwest::{Method, StatusCode};
use samokoder_core::llm::fake::FAKE_API_KEY;
use samokoder_core::llm::fake::script::{STATS_GOOD, Script};
use samokoder_server::config::StoreBackend;
use samokoder_store::Tier;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::{Session, send};
use crate::generating::{GenApp, assert_consecutive};
use crate::helpers::metric_value;

fn id(value: &Value) -> Uuid {
    value.as_str().expect("an id").parse().expect("a uuid")
}

/// The files of a zip archive: path → content.
fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip archive");
    let mut files = std::collections::BTreeMap::new();
    for n in 0..archive.len() {
        let mut entry = archive.by_index(n).unwrap();
        let mut content = String::new();
        entry.read_to_string(&mut content).unwrap();
        files.insert(entry.name().unwrap().into_owned(), content);
    }
    files
}

/// From a description to an exported app: start, follow the events to the end, then the run,
/// its files, one file's content, the history and the zip.
async fn auto_run_to_export(ga: &GenApp, session: &Session) {
    let project = ga.project(session, "Todo API").await;
    let run = ga
        .start(
            session,
            project,
            json!({
                "description": "A small JSON API for a todo list, with an endpoint that reports how many items there are.",
                "autonomy": "auto",
                "template": "node-api",
            }),
        )
        .await;
    assert_eq!(run["status"], "queued");
    assert_eq!(run["autonomy"], "auto");
    assert_eq!(run["template"], "node-api");
    assert!(run["budget"]["llm_calls"].as_u64().is_some(), "{run}");
    let run_id = id(&run["id"]);

    let events = ga.follow_to_end(session, project, run_id).await;
    assert_consecutive(&events, 1);
    let last = events.last().unwrap();
    assert_eq!(last.outcome(), Some("completed"), "{last:?}");
    assert!(events.iter().any(|e| e.event == "agent_started"));
    assert!(events.iter().any(|e| e.event == "file_written"));
    assert!(
        events
            .iter()
            .any(|e| e.event == "command_finished" && e.data["data"]["success"] == true),
        "the app's tests ran and passed"
    );

    let done = ga.run(session, project, run_id).await;
    assert_eq!(done["status"], "completed");
    assert!(done["usage"]["tokens"].as_u64().unwrap() > 0, "{done}");
    assert!(done["usage"]["cost_micros"].as_u64().unwrap() > 0, "{done}");
    assert!(done["usage"]["llm_calls"].as_u64().unwrap() > 0, "{done}");
    assert_eq!(done["progress"]["tasks_total"], 1, "{done}");
    assert_eq!(done["progress"]["tasks_done"], 1, "{done}");
    assert_eq!(done["progress"]["phase"], "done");
    assert!(done["finished_at"].is_string());
    send(ga.app.as_user(
        Method::POST,
        &format!("/v1/projects/{project}/runs/{run_id}/cancel"),
        session,
    ))
    .await
    .assert_error(StatusCode::CONFLICT, "run_finished");

    let listed = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/runs"),
        session,
    ))
    .await
    .ok(StatusCode::OK);
    assert_eq!(listed["runs"][0]["id"], run["id"]);

    let tree = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/files"),
        session,
    ))
    .await
    .ok(StatusCode::OK);
    let paths: Vec<&str> = tree["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for wanted in [
        "package.json",
        "src/app.js",
        "src/stats.js",
        "test/stats.test.js",
    ] {
        assert!(paths.contains(&wanted), "{wanted} in {paths:?}");
    }
    let file = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/files/src/stats.js"),
        session,
    ))
    .await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.text, STATS_GOOD);
    assert_eq!(
        file.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/files/src/missing.js"),
        session,
    ))
    .await
    .assert_error(StatusCode::NOT_FOUND, "file_not_found");

    let states = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/states"),
        session,
    ))
    .await
    .ok(StatusCode::OK);
    let history = states["states"].as_array().unwrap();
    assert_eq!(states["head"], history[0]["id"], "newest first");
    assert!(history.len() > 3);
    // An earlier state's tree: before the task, there is no stats module.
    let architecture = history
        .iter()
        .find(|s| s["label"].as_str().unwrap().starts_with("architecture"))
        .expect("the architecture step's state");
    let early = send(ga.app.as_user(
        Method::GET,
        &format!(
            "/v1/projects/{project}/files?state={}",
            architecture["id"].as_str().unwrap()
        ),
        session,
    ))
    .await
    .ok(StatusCode::OK);
    assert!(
        !early["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "src/stats.js")
    );

    let zip = ga
        .app
        .as_user(
            Method::GET,
            &format!("/v1/projects/{project}/export"),
            session,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), StatusCode::OK);
    assert_eq!(
        zip.headers()["content-type"].to_str().unwrap(),
        "application/zip"
    );
    assert_eq!(
        zip.headers()["content-disposition"].to_str().unwrap(),
        "attachment; filename=\"todo-api.zip\""
    );
    let files = unzip(&zip.bytes().await.unwrap());
    assert_eq!(files["todo-api/src/stats.js"], STATS_GOOD);
    assert!(files.contains_key("todo-api/package.json"));
    assert!(
        !files.keys().any(|path| path.contains("node_modules")),
        "ignored files stay out"
    );
}

#[tokio::test]
async fn an_auto_run_goes_from_description_to_zip() {
    let ga = GenApp::spawn(Script::default(), |_| {}).await;
    let session = ga.app.user().await;
    ga.app
        .state
        .store()
        .users
        .set_tier(session.user_id, Tier::Pro)
        .await
        .unwrap();
    auto_run_to_export(&ga, &session).await;

    // The run's LLM usage reached the metrics.
    let metrics = send(ga.app.request(Method::GET, "/metrics")).await.text;
    for series in [
        "runs_started_total",
        "runs_finished_total{outcome=\"completed\"}",
        "llm_tokens_total{provider=\"fake\",kind=\"prompt\"}",
        "llm_cost_micros_total{provider=\"fake\"}",
    ] {
        assert!(
            metric_value(&metrics, series) > 0.0,
            "{series} in {metrics}"
        );
    }
    ga.app.stop().await;
}

#[tokio::test]
async fn the_main_flow_runs_on_postgres() {
    let Some(ga) = GenApp::spawn_postgres(
        "the_main_flow_runs_on_postgres",
        Script::default(),
        StoreBackend::SqlxPostgres,
    )
    .await
    else {
        return;
    };
    let session = ga.app.user().await;
    ga.app
        .state
        .store()
        .users
        .set_tier(session.user_id, Tier::Pro)
        .await
        .unwrap();
    auto_run_to_export(&ga, &session).await;
    ga.app.stop().await;
}

#[tokio::test]
async fn an_interactive_run_is_answered_over_http_and_the_websocket() {
    let ga = GenApp::spawn(
        Script {
            ask_question: true,
            risky_command: true,
            ..Script::default()
        },
        |_| {},
    )
    .await;
    let session = ga.app.user().await;
    let project = ga.project(&session, "Todo").await;
    let token = ga.ws_token(&session, project).await;
    let mut socket = ga
        .socket(project, Some(&token), &[])
        .await
        .expect("the socket opens");
    assert_eq!(socket.next().await["type"], "subscribed");

    let run = ga
        .start(
            &session,
            project,
            json!({"description": "A todo API with a count endpoint", "autonomy": "interactive"}),
        )
        .await;
    let run_id = id(&run["id"]);
    let base = format!("/v1/projects/{project}/runs/{run_id}");

    // The first question: the spec writer's, answered over HTTP.
    let question = socket.until(|f| f["type"] == "question").await;
    let first = question["question"].clone();
    assert_eq!(first["run_id"], run["id"]);
    assert_eq!(first["buttons"], json!(["yes", "no"]));
    ga.wait_for_status(&session, project, run_id, "waiting_for_human")
        .await;
    let pending = send(
        ga.app
            .as_user(Method::GET, &format!("{base}/questions"), &session),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(pending["questions"][0]["id"], first["id"]);
    let answer_path = format!("{base}/questions/{}/answer", first["id"].as_str().unwrap());
    let answered = send(
        ga.app
            .as_user(Method::POST, &answer_path, &session)
            .json(&json!({"answer": "no, only open items"})),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(answered["answer"], "no, only open items");
    // The same answer again: the same result. Another one: refused.
    let again = send(
        ga.app
            .as_user(Method::POST, &answer_path, &session)
            .json(&json!({"answer": "no, only open items"})),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(again, answered);
    send(
        ga.app
            .as_user(Method::POST, &answer_path, &session)
            .json(&json!({"answer": "yes"})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "question_already_answered");

    // The second question: may `npm publish` run? Answered over the WebSocket.
    let question = socket
        .until(|f| f["type"] == "question" && f["question"]["id"] != first["id"])
        .await;
    let second = question["question"].clone();
    assert!(
        second["text"].as_str().unwrap().contains("npm publish"),
        "{second}"
    );
    socket.send(json!({"type": "ping"})).await;
    assert_eq!(socket.until(|f| f["type"] == "pong").await["type"], "pong");
    socket
        .send(json!({"type": "chat_message", "message": "hello"}))
        .await;
    let unsupported = socket.until(|f| f["type"] == "error").await;
    assert_eq!(unsupported["code"], "unsupported_frame");
    socket
        .send(json!({"type": "answer", "question_id": second["id"], "text": "ignored", "button": "skip"}))
        .await;
    let result = socket.until(|f| f["type"] == "answer_result").await;
    assert_eq!(result["ok"], true, "{result}");

    // The run completes; the socket saw its final event.
    let finished = socket
        .until(|f| {
            f["type"] == "event"
                && f["event"]["kind"] == "run_finished"
                && f["event"]["data"]["outcome"]["outcome"] != "waiting_for_human"
        })
        .await;
    assert_eq!(finished["event"]["data"]["outcome"]["outcome"], "completed");
    let done = ga
        .wait_for_status(&session, project, run_id, "completed")
        .await;
    assert!(done["error"].is_null());
    let pending = send(
        ga.app
            .as_user(Method::GET, &format!("{base}/questions"), &session),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(pending["questions"], json!([]));
    // The skipped command never ran; the answer reached the spec writer.
    assert!(ga.fake.requests().iter().any(|r| {
        r.last_user_text()
            .is_some_and(|t| t.contains("no, only open items"))
    }));
    ga.app.stop().await;
}

#[tokio::test]
async fn a_run_stopped_by_its_budget_resumes_with_a_raised_one() {
    let ga = GenApp::spawn(Script::default(), |_| {}).await;
    let session = ga.app.user().await;
    let project = ga.project(&session, "Todo").await;
    // Questions, spec and architecture: three calls, then the budget stops the run.
    let run = ga
        .start(
            &session,
            project,
            json!({"description": "A todo API", "autonomy": "auto", "budget": {"llm_calls": 3}}),
        )
        .await;
    let run_id = id(&run["id"]);
    let first = ga.follow_to_end(&session, project, run_id).await;
    assert_eq!(first.last().unwrap().outcome(), Some("budget_exhausted"));
    let stopped = ga.run(&session, project, run_id).await;
    assert_eq!(stopped["status"], "budget_exhausted");
    assert!(
        stopped["error"].as_str().unwrap().contains("calls"),
        "{stopped}"
    );

    let resume = format!("/v1/projects/{project}/runs/{run_id}/resume");
    send(
        ga.app
            .as_user(Method::POST, &resume, &session)
            .json(&json!({"budget": {"tokens": 1_000_000}})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "budget_not_raised");
    send(
        ga.app
            .as_user(Method::POST, &resume, &session)
            .json(&json!({"budget": {"llm_calls": 1_000_000}})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "budget_over_plan");
    let resumed = send(
        ga.app
            .as_user(Method::POST, &resume, &session)
            .json(&json!({"budget": {"llm_calls": 100}})),
    )
    .await
    .ok(StatusCode::ACCEPTED);
    assert_eq!(resumed["status"], "queued");
    assert_eq!(resumed["budget"]["llm_calls"], 100);

    // The stream continues the numbering after the last event seen.
    let last = first.last().unwrap().id;
    let mut stream = ga.events(&session, project, run_id, Some(last)).await;
    let rest = stream.rest().await;
    assert_consecutive(&rest, last + 1);
    assert_eq!(rest.last().unwrap().outcome(), Some("completed"));
    let resumed_start = &rest[0];
    assert_eq!(resumed_start.event, "run_started");
    assert_eq!(resumed_start.data["data"]["resumed"], true);
    send(ga.app.as_user(Method::POST, &resume, &session))
        .await
        .assert_error(StatusCode::CONFLICT, "run_not_resumable");
    ga.app.stop().await;
}

#[tokio::test]
async fn cancelling_stops_a_running_run_and_a_queued_one() {
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
    stream
        .until(|e| e.event == "agent_started" && e.data["data"]["agent"] == "code_writer")
        .await;
    let cancel = format!("/v1/projects/{project}/runs/{run_id}/cancel");
    let cancelled = send(ga.app.as_user(Method::POST, &cancel, &session))
        .await
        .ok(StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    let rest = stream.rest().await;
    assert_eq!(
        rest.last().unwrap().outcome(),
        Some("cancelled"),
        "{rest:?}"
    );
    // Cancelling again is fine.
    send(ga.app.as_user(Method::POST, &cancel, &session))
        .await
        .ok(StatusCode::OK);

    // A run nobody drives (no worker here) is cancelled with its final event written at once.
    let idle = GenApp::spawn(Script::default(), |config| {
        config.workers.concurrency = 0;
    })
    .await;
    let session = idle.app.user().await;
    let project = idle.project(&session, "Todo").await;
    let run = idle
        .start(&session, project, json!({"description": "A todo API"}))
        .await;
    let run_id = id(&run["id"]);
    // One active run per project.
    let busy = send(
        idle.app
            .as_user(
                Method::POST,
                &format!("/v1/projects/{project}/runs"),
                &session,
            )
            .json(&json!({"description": "Another"})),
    )
    .await;
    busy.assert_error(StatusCode::CONFLICT, "run_active");
    send(idle.app.as_user(
        Method::POST,
        &format!("/v1/projects/{project}/runs/{run_id}/cancel"),
        &session,
    ))
    .await
    .ok(StatusCode::OK);
    let events = idle.follow_to_end(&session, project, run_id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome(), Some("cancelled"));
    // The project is free again.
    idle.start(&session, project, json!({"description": "Another"}))
        .await;
    idle.app.stop().await;
    ga.app.stop().await;
}

#[tokio::test]
async fn a_provider_without_any_key_is_named_and_a_users_own_key_is_used() {
    let ga = GenApp::spawn(Script::default(), |config| {
        // The deployment routes everything to `openai` (pointed at the fake) without a key.
        let base_url = config.llm.0.providers["fake"].base_url.clone();
        config.llm = serde_json::from_value(json!({
            "openai": {"base_url": base_url, "model": "fake-model", "structured_output": "prompt"},
        }))
        .unwrap();
    })
    .await;
    let session = ga.app.user().await;
    let project = ga.project(&session, "Todo").await;
    let refused = send(
        ga.app
            .as_user(
                Method::POST,
                &format!("/v1/projects/{project}/runs"),
                &session,
            )
            .json(&json!({"description": "A todo API"})),
    )
    .await;
    let body = refused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "provider_key_missing");
    assert!(
        body["detail"].as_str().unwrap().contains("`openai`"),
        "{body}"
    );
    // A model choice for an unknown role is a field error.
    send(
        ga.app
            .as_user(
                Method::POST,
                &format!("/v1/projects/{project}/runs"),
                &session,
            )
            .json(&json!({"description": "A todo API", "models": {"archtect": {"model": "m"}}})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");

    let user_key = "sk-proj-users-own-key-0123456789";
    send(
        ga.app
            .as_user(Method::POST, "/v1/keys", &session)
            .json(&json!({"provider": "openai", "api_key": user_key})),
    )
    .await
    .ok(StatusCode::OK);
    let run = ga
        .start(
            &session,
            project,
            json!({"description": "A todo API", "autonomy": "auto", "budget": {"llm_calls": 1}}),
        )
        .await;
    let events = ga.follow_to_end(&session, project, id(&run["id"])).await;
    assert_eq!(events.last().unwrap().outcome(), Some("budget_exhausted"));
    let requests = ga.fake.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.api_key() == Some(user_key)),
        "every request carried the user's key"
    );
    assert!(requests.iter().all(|r| r.api_key() != Some(FAKE_API_KEY)));
    ga.app.stop().await;
}

/// Review finding 5: an unpriced model costs $0, so a run on the deployment's key could spend
/// without limit. Such runs are refused; on the user's own key any model goes.
#[tokio::test]
async fn a_model_the_deployment_has_no_price_for_is_refused_on_its_key() {
    let ga = GenApp::spawn(Script::default(), |config| {
        // The deployment prices one model of its provider, and the built-in list prices apply.
        let base_url = config.llm.0.providers["fake"].base_url.clone();
        config.llm = serde_json::from_value(json!({
            "fake": {
                "kind": "openai_compatible",
                "base_url": base_url,
                "api_key": FAKE_API_KEY,
                "model": "fake-model",
                "structured_output": "prompt",
                "models": {"fake-model": {"pricing": {"input": "100", "output": "100"}}},
            },
            "agents": {"default": {"provider": "fake"}},
        }))
        .unwrap();
    })
    .await;
    let session = ga.app.user().await;
    let project = ga.project(&session, "Todo").await;
    let start = |models: Value| {
        ga.app
            .as_user(
                Method::POST,
                &format!("/v1/projects/{project}/runs"),
                &session,
            )
            .json(&json!({"description": "A todo API", "models": models}))
    };
    for (models, unpriced) in [
        (
            json!({"default": {"model": "fake-model-pro"}}),
            "fake-model-pro",
        ),
        // `o3-deep-research` is not `o3`, whatever its name starts with.
        (
            json!({"architect": {"model": "o3-deep-research"}}),
            "o3-deep-research",
        ),
    ] {
        let body = send(start(models))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "model_unpriced");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("`{unpriced}`")), "{detail}");
        assert!(detail.contains("`fake`"), "{detail}");
    }
    // Priced: the configured model, a dated snapshot of it, a list-priced name.
    let run = ga
        .start(
            &session,
            project,
            json!({"description": "A todo API", "autonomy": "auto", "budget": {"llm_calls": 1},
                   "models": {"default": {"model": "fake-model-2025-01-31"}, "architect": {"model": "o3"}}}),
        )
        .await;
    let events = ga.follow_to_end(&session, project, id(&run["id"])).await;
    assert_eq!(events.last().unwrap().outcome(), Some("budget_exhausted"));

    // With the user's own key for the provider, the bill is theirs: any model is accepted.
    send(
        ga.app
            .as_user(Method::POST, "/v1/keys", &session)
            .json(&json!({"provider": "fake", "api_key": "sk-users-own-key-0123456789"})),
    )
    .await
    .ok(StatusCode::OK);
    let reply = send(start(json!({"default": {"model": "fake-model-pro"}}))).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    ga.app.stop().await;
}

#[tokio::test]
async fn a_cancelled_runs_question_no_longer_waits() {
    let ga = GenApp::spawn(
        Script {
            ask_question: true,
            ..Script::default()
        },
        |_| {},
    )
    .await;
    let session = ga.app.user().await;
    let project = ga.project(&session, "Todo").await;
    let run = ga
        .start(&session, project, json!({"description": "A todo API"}))
        .await;
    let run_id = id(&run["id"]);
    ga.wait_for_status(&session, project, run_id, "waiting_for_human")
        .await;
    let base = format!("/v1/projects/{project}/runs/{run_id}");
    let pending = send(
        ga.app
            .as_user(Method::GET, &format!("{base}/questions"), &session),
    )
    .await
    .ok(StatusCode::OK);
    let question = pending["questions"][0]["id"].as_str().unwrap().to_owned();
    send(
        ga.app
            .as_user(Method::POST, &format!("{base}/cancel"), &session),
    )
    .await
    .ok(StatusCode::OK);
    let pending = send(
        ga.app
            .as_user(Method::GET, &format!("{base}/questions"), &session),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(pending["questions"], json!([]));
    send(
        ga.app
            .as_user(
                Method::POST,
                &format!("{base}/questions/{question}/answer"),
                &session,
            )
            .json(&json!({"answer": "yes"})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "run_finished");
    let events = ga.follow_to_end(&session, project, run_id).await;
    assert_eq!(events.last().unwrap().outcome(), Some("cancelled"));
    // Cancelling again changes nothing.
    let done = send(
        ga.app
            .as_user(Method::POST, &format!("{base}/cancel"), &session),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(done["status"], "cancelled");
    ga.app.stop().await;
}
