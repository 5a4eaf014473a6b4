//! Previews of a generated app (the starter template's server, really started in the sandbox),
//! the export quota, and rolling back to an earlier state.

use reqwest::{Method, StatusCode};
use samokoder_core::llm::fake::script::Script;
use samokoder_store::Tier;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::{Session, send};
use crate::generating::GenApp;

/// A project whose run stopped right after the architect applied the `node-api` template (the
/// budget allows the questions, the spec and the architecture only): a real app to run.
async fn templated_project(ga: &GenApp, session: &Session, name: &str) -> Uuid {
    let project = ga.project(session, name).await;
    let run = ga
        .start(
            session,
            project,
            json!({
                "description": "A todo API",
                "autonomy": "auto",
                "template": "node-api",
                "budget": {"llm_calls": 3},
            }),
        )
        .await;
    let events = ga
        .follow_to_end(
            session,
            project,
            run["id"].as_str().unwrap().parse().unwrap(),
        )
        .await;
    assert_eq!(events.last().unwrap().outcome(), Some("budget_exhausted"));
    project
}

async fn post(ga: &GenApp, session: &Session, path: &str) -> crate::app::Reply {
    send(ga.app.as_user(Method::POST, path, session)).await
}

/// The owner's browser on the preview origin: it keeps cookies, and finds every
/// `{id}.localhost` at the server's preview listener.
struct Browser {
    client: reqwest::Client,
    origin: String,
}

impl Browser {
    /// Opens `project`'s preview with a fresh link from the API, as a person clicking it.
    async fn open(ga: &GenApp, session: &Session, project: Uuid) -> (Self, String) {
        let open = post(ga, session, &format!("/v1/projects/{project}/preview/open"))
            .await
            .ok(StatusCode::OK);
        let origin = open["origin"].as_str().unwrap().to_owned();
        let link = open["url"].as_str().unwrap().to_owned();
        assert!(
            link.starts_with(&format!("{origin}/__samokoder/enter?ticket=")),
            "{link}"
        );
        assert_eq!(open["expires_in"], 60);
        let browser = Self::for_origin(ga, &origin);
        let landed = browser.client.get(&link).send().await.unwrap();
        assert_eq!(landed.url().path(), "/", "the link leads to the app");
        (browser, link)
    }

    /// A browser with no cookie yet.
    fn for_origin(ga: &GenApp, origin: &str) -> Self {
        let host = origin
            .trim_start_matches("http://")
            .rsplit_once(':')
            .unwrap()
            .0
            .to_owned();
        let listener = ga
            .app
            .server
            .preview_address()
            .expect("previews are served");
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .resolve(&host, listener)
            .build()
            .unwrap();
        Self {
            client,
            origin: origin.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.origin))
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_preview_runs_the_app_in_the_sandbox_within_the_plans_limits() {
    let ga = GenApp::spawn(Script::default(), |config| {
        config.preview.max_per_user = 1;
    })
    .await;
    let session = ga.app.user().await;
    let first = templated_project(&ga, &session, "First").await;
    let second = templated_project(&ga, &session, "Second").await;

    // The free plan has no deployments.
    post(
        &ga,
        &session,
        &format!("/v1/projects/{first}/preview/start"),
    )
    .await
    .assert_error(StatusCode::PAYMENT_REQUIRED, "quota_exceeded");
    ga.app
        .state
        .store()
        .users
        .set_tier(session.user_id, Tier::Starter)
        .await
        .unwrap();
    let empty = ga.project(&session, "Empty").await;
    post(
        &ga,
        &session,
        &format!("/v1/projects/{empty}/preview/start"),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "nothing_to_preview");

    let started = post(
        &ga,
        &session,
        &format!("/v1/projects/{first}/preview/start"),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(started["command"], json!(["npm", "start"]));
    assert_eq!(started["process_id"], first.to_string());
    let url = started["url"].as_str().unwrap().to_owned();
    let port = ga.app.server.preview_address().unwrap().port();
    assert_eq!(
        url,
        format!("http://{first}.localhost:{port}"),
        "one origin per project"
    );
    // Its owner opens it through the preview listener; the app answers through its bridge.
    let (browser, link) = Browser::open(&ga, &session, first).await;
    let health = browser.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    // Without the cookie, or with a used link, nobody gets in.
    let stranger = Browser::for_origin(&ga, &url);
    assert_eq!(
        stranger.get("/health").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let reused = stranger.client.get(&link).send().await.unwrap();
    assert_eq!(
        reused.status(),
        StatusCode::UNAUTHORIZED,
        "a link lets in once"
    );
    assert_eq!(
        stranger.get("/health").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The preview listener serves previews only: not the API, not unknown hosts.
    let listener = ga.app.server.preview_address().unwrap();
    let api_on_preview = reqwest::get(format!("http://{listener}/health"))
        .await
        .unwrap();
    assert_eq!(api_on_preview.status(), StatusCode::NOT_FOUND);

    let status = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{first}/preview/status"),
        &session,
    ))
    .await
    .ok(StatusCode::OK);
    assert_eq!(status["status"]["status"], "running");
    assert_eq!(status["status"]["url"], url.as_str());
    assert!(status["status"]["idle_timeout_secs"].as_u64().is_some());

    // One preview at a time for this user.
    post(
        &ga,
        &session,
        &format!("/v1/projects/{second}/preview/start"),
    )
    .await
    .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_previews");

    let stopped = post(&ga, &session, &format!("/v1/projects/{first}/preview/stop"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(stopped["success"], true);
    assert_eq!(stopped["message"], "Preview stopped successfully");
    assert_eq!(
        browser.get("/health").await.status(),
        StatusCode::GONE,
        "gone"
    );
    post(&ga, &session, &format!("/v1/projects/{first}/preview/open"))
        .await
        .assert_error(StatusCode::CONFLICT, "preview_not_running");
    let status = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{first}/preview/status"),
        &session,
    ))
    .await
    .ok(StatusCode::OK);
    assert_eq!(
        status,
        json!({"status": {"status": "stopped", "url": null, "process_id": first.to_string()}})
    );
    let again = post(&ga, &session, &format!("/v1/projects/{first}/preview/stop"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(again["message"], "Preview was not running");

    // The slot is free for the other project now.
    let other = post(
        &ga,
        &session,
        &format!("/v1/projects/{second}/preview/start"),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(other["status"], "running");
    post(
        &ga,
        &session,
        &format!("/v1/projects/{second}/preview/stop"),
    )
    .await
    .ok(StatusCode::OK);

    // Two starts at once on different projects: the limit still holds.
    let start_first = format!("/v1/projects/{first}/preview/start");
    let start_second = format!("/v1/projects/{second}/preview/start");
    let (a, b) = tokio::join!(
        post(&ga, &session, &start_first),
        post(&ga, &session, &start_second),
    );
    let (started, refused, running, idle) = if a.status == StatusCode::OK {
        (a, b, first, second)
    } else {
        (b, a, second, first)
    };
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_previews");
    let (browser, _) = Browser::open(&ga, &session, running).await;
    assert_eq!(browser.get("/health").await.status(), StatusCode::OK);
    // Deleting the project stops its preview and frees its place.
    send(
        ga.app
            .as_user(Method::DELETE, &format!("/v1/projects/{running}"), &session),
    )
    .await
    .ok(StatusCode::NO_CONTENT);
    assert_eq!(
        browser.get("/health").await.status(),
        StatusCode::GONE,
        "stopped with its project"
    );
    post(&ga, &session, &format!("/v1/projects/{idle}/preview/start"))
        .await
        .ok(StatusCode::OK);
    post(&ga, &session, &format!("/v1/projects/{idle}/preview/stop"))
        .await
        .ok(StatusCode::OK);
    ga.app.stop().await;
}

#[tokio::test]
async fn exports_count_against_the_plan_and_rollback_keeps_history() {
    let ga = GenApp::spawn(Script::default(), |_| {}).await;
    let session = ga.app.user().await;
    let empty = ga.project(&session, "Empty").await;
    send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{empty}/export"),
        &session,
    ))
    .await
    .assert_error(StatusCode::CONFLICT, "nothing_to_export");
    let project = templated_project(&ga, &session, "Todo").await;

    // The free plan exports twice a month; the third is refused.
    for path in ["export", "archive"] {
        let zip = ga
            .app
            .as_user(
                Method::GET,
                &format!("/v1/projects/{project}/{path}"),
                &session,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(zip.status(), StatusCode::OK, "{path}");
        assert_eq!(&zip.bytes().await.unwrap()[..2], b"PK");
    }
    send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/export"),
        &session,
    ))
    .await
    .assert_error(StatusCode::PAYMENT_REQUIRED, "quota_exceeded");

    // Roll back to the state before the architect applied the template. The history pages
    // (one state at a time here) add up to the whole list.
    let all = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/states"),
        &session,
    ))
    .await
    .ok(StatusCode::OK);
    let mut paged = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let query = match before {
            Some(before) => format!("limit=1&before={before}"),
            None => "limit=1".to_owned(),
        };
        let page = send(ga.app.as_user(
            Method::GET,
            &format!("/v1/projects/{project}/states?{query}"),
            &session,
        ))
        .await
        .ok(StatusCode::OK);
        paged.extend(page["states"].as_array().unwrap().iter().cloned());
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(Value::Array(paged), all["states"]);
    let spec = all["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == "spec")
        .expect("the spec step's state")
        .clone();
    let rolled = send(ga.app.as_user(
        Method::POST,
        &format!(
            "/v1/projects/{project}/states/{}/rollback",
            spec["id"].as_str().unwrap()
        ),
        &session,
    ))
    .await
    .ok(StatusCode::CREATED);
    assert_eq!(rolled["rolled_back_to"], spec["id"]);
    let tree = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/files"),
        &session,
    ))
    .await
    .ok(StatusCode::OK);
    assert_eq!(tree["state_id"], rolled["state"]["id"]);
    assert_eq!(tree["files"], json!([]), "the spec step wrote no files");
    let history = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/states"),
        &session,
    ))
    .await
    .ok(StatusCode::OK);
    assert_eq!(history["head"], rolled["state"]["id"]);
    assert!(
        history["states"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["label"].as_str().unwrap().starts_with("architecture")),
        "the rolled-back states are still there"
    );
    send(ga.app.as_user(
        Method::POST,
        &format!("/v1/projects/{project}/states/{}/rollback", Uuid::now_v7()),
        &session,
    ))
    .await
    .assert_error(StatusCode::NOT_FOUND, "state_not_found");
    ga.app.stop().await;
}

#[tokio::test]
async fn a_previews_websocket_upgrade_is_relayed_through_the_bridge() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ga = GenApp::spawn(
        Script {
            echo_upgrades: true,
            ..Script::default()
        },
        |_| {},
    )
    .await;
    let session = ga.app.user().await;
    ga.app
        .state
        .store()
        .users
        .set_tier(session.user_id, Tier::Pro)
        .await
        .unwrap();
    let project = ga.project(&session, "Echo").await;
    let run = ga
        .start(
            &session,
            project,
            json!({"description": "A todo API", "autonomy": "auto", "template": "node-api"}),
        )
        .await;
    let events = ga
        .follow_to_end(
            &session,
            project,
            run["id"].as_str().unwrap().parse().unwrap(),
        )
        .await;
    assert_eq!(events.last().unwrap().outcome(), Some("completed"));
    post(
        &ga,
        &session,
        &format!("/v1/projects/{project}/preview/start"),
    )
    .await
    .ok(StatusCode::OK);

    // Enter with the link (no cookie jar here: the cookie is read off the answer).
    let open = post(
        &ga,
        &session,
        &format!("/v1/projects/{project}/preview/open"),
    )
    .await
    .ok(StatusCode::OK);
    let origin = open["origin"].as_str().unwrap();
    let host = origin.trim_start_matches("http://");
    let listener = ga.app.server.preview_address().unwrap();
    let link = open["url"].as_str().unwrap().replacen(origin, "", 1);
    let mut enter = tokio::net::TcpStream::connect(listener).await.unwrap();
    enter
        .write_all(
            format!("GET {link} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    enter.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let cookie = answer
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie: {answer}"))
        .to_owned();

    // The upgrade: the app's 101 comes back, then bytes go both ways through the bridge.
    let mut socket = tokio::net::TcpStream::connect(listener).await.unwrap();
    socket
        .write_all(
            format!(
                "GET /live HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: echo\r\nCookie: {cookie}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            socket.read(&mut byte).await.unwrap(),
            1,
            "{}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    socket.write_all(b"hello through the bridge").await.unwrap();
    let mut echoed = [0u8; 24];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_exact(&mut echoed),
    )
    .await
    .expect("the echo comes back")
    .unwrap();
    assert_eq!(&echoed, b"hello through the bridge");

    // Without the cookie, no upgrade.
    let mut stranger = tokio::net::TcpStream::connect(listener).await.unwrap();
    stranger
        .write_all(
            format!(
                "GET /live HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut refused = [0u8; 12];
    stranger.read_exact(&mut refused).await.unwrap();
    assert_eq!(&refused, b"HTTP/1.1 401");
    ga.app.stop().await;
}
