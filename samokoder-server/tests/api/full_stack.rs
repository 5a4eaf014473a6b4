//! "A todo app with login, a React front end, an API and SQLite", end to end with the scripted
//! model on the `fullstack-ts` template, whose plan adds `zod`: the install goes through the
//! sandbox's proxy, the app's typecheck, tests and build pass in the jail, its preview serves
//! the page and the API on the preview origin, and its export installs and passes its tests on
//! the host. Needs the package registries (`SAMOKODER_TEST_REGISTRY=1`; skipped loudly
//! without).

use std::io::Read;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use samokoder_core::llm::fake::script::{FULL_STACK_DESCRIPTION, Script, VALIDATION_TS};
use samokoder_store::Tier;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::{Session, send};
use crate::generating::GenApp;

fn registry(test: &str) -> bool {
    let set = std::env::var("SAMOKODER_TEST_REGISTRY").is_ok_and(|v| !v.is_empty() && v != "0");
    if !set {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: it installs packages from the registries (set SAMOKODER_TEST_REGISTRY=1 where they are reachable)"
        );
    }
    set
}

async fn file(ga: &GenApp, session: &Session, project: Uuid, path: &str) -> String {
    let reply = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/files/{path}"),
        session,
    ))
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    reply.text
}

/// The owner's browser: opens the preview with a link from the API and keeps its cookie.
async fn open_preview(ga: &GenApp, session: &Session, project: Uuid) -> (reqwest::Client, String) {
    let open = send(ga.app.as_user(
        Method::POST,
        &format!("/v1/projects/{project}/preview/open"),
        session,
    ))
    .await
    .ok(StatusCode::OK);
    let origin = open["origin"].as_str().unwrap().to_owned();
    let host = origin
        .trim_start_matches("http://")
        .rsplit_once(':')
        .unwrap()
        .0
        .to_owned();
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .resolve(&host, ga.app.server.preview_address().unwrap())
        .build()
        .unwrap();
    let landed = client
        .get(open["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(landed.status(), StatusCode::OK);
    (client, origin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stack_todo_app_with_login_installs_passes_its_checks_and_previews() {
    if !registry("a_full_stack_todo_app_with_login_installs_passes_its_checks_and_previews") {
        return;
    }
    let ga = GenApp::spawn(
        Script {
            full_stack: true,
            ..Script::default()
        },
        |config| {
            config.preview.start_timeout_secs = 120;
        },
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
    let runner = ga.app.state.generation().runner().clone();
    assert!(runner.can_install(), "{}", runner.isolation().summary());
    let allowed_before = runner.egress_stats().allowed();

    let project = ga.project(&session, "Todo app").await;
    let run = ga
        .start(
            &session,
            project,
            // The test's price is $100 per million tokens, and a full stack's files fill the
            // prompts: room for the whole run.
            json!({
                "description": FULL_STACK_DESCRIPTION,
                "autonomy": "auto",
                "budget": {"cost_micros": 50_000_000u64},
            }),
        )
        .await;
    let run_id: Uuid = run["id"].as_str().unwrap().parse().unwrap();
    let events = ga.follow_to_end(&session, project, run_id).await;
    let last = events.last().unwrap();
    assert_eq!(
        last.outcome(),
        Some("completed"),
        "{:#?}",
        &events[events.len().saturating_sub(15)..]
    );
    // The install went through the proxy; the check ran in the jail and passed.
    assert!(runner.egress_stats().allowed() > allowed_before);
    let commands: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "command_finished")
        .map(|e| &e.data["data"])
        .collect();
    let ran = |needle: &str| {
        commands.iter().any(|c| {
            c["success"] == true
                && c["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(" ")
                    .starts_with(needle)
        })
    };
    assert!(ran("npm ci --ignore-scripts"), "{commands:#?}");
    assert!(
        ran("npm install --ignore-scripts"),
        "zod added: {commands:#?}"
    );
    assert!(ran("npm run check"), "{commands:#?}");
    assert!(
        !events.iter().any(|e| e.event == "sandbox_blocked"),
        "nothing was refused"
    );

    // The lockfile is part of the project, node_modules never is.
    let manifest: Value =
        serde_json::from_str(&file(&ga, &session, project, "package.json").await).unwrap();
    assert!(manifest["dependencies"]["zod"].is_string(), "{manifest}");
    let lock = file(&ga, &session, project, "package-lock.json").await;
    assert!(lock.contains("\"node_modules/zod\""));
    assert_eq!(
        file(&ga, &session, project, "server/validation.ts").await,
        VALIDATION_TS
    );
    let tree = send(ga.app.as_user(
        Method::GET,
        &format!("/v1/projects/{project}/files"),
        &session,
    ))
    .await
    .ok(StatusCode::OK)
    .to_string();
    assert!(
        !tree.contains("node_modules") && !tree.contains("\"dist"),
        "{tree}"
    );

    // The preview installs from the lockfile, builds the front end, and serves page and API on
    // the project's own origin.
    let started = send(ga.app.as_user(
        Method::POST,
        &format!("/v1/projects/{project}/preview/start"),
        &session,
    ))
    .await
    .ok(StatusCode::OK);
    assert_eq!(started["status"], "running", "{started:#}");
    let (browser, origin) = open_preview(&ga, &session, project).await;
    let page = browser.get(format!("{origin}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains(r#"<div id="root"></div>"#), "{page}");
    assert!(page.contains("/assets/"), "the built bundle: {page}");
    let signup = browser
        .post(format!("{origin}/api/register"))
        .json(&json!({"email": "owner@example.com", "password": "long-enough-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    let todo = browser
        .post(format!("{origin}/api/todos"))
        .json(&json!({"title": "  Ship it  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        todo.status(),
        StatusCode::CREATED,
        "the app's own session cookie works"
    );
    assert_eq!(
        todo.json::<Value>().await.unwrap()["title"],
        "Ship it",
        "zod trimmed it"
    );
    send(ga.app.as_user(
        Method::POST,
        &format!("/v1/projects/{project}/preview/stop"),
        &session,
    ))
    .await
    .ok(StatusCode::OK);

    // The export holds the lockfile and no node_modules; unzipped on the host it installs and
    // passes its tests.
    let zip = ga
        .app
        .as_user(
            Method::GET,
            &format!("/v1/projects/{project}/export"),
            &session,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), StatusCode::OK);
    let bytes = zip.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.expect("an entry name").into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("package-lock.json")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("node_modules/")),
        "{names:?}"
    );
    let unpacked = tempfile::tempdir().unwrap();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let Some(path) = entry.enclosed_name() else {
            continue;
        };
        let target = unpacked.path().join(path);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            continue;
        }
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        std::fs::write(&target, content).unwrap();
    }
    let root = std::fs::read_dir(unpacked.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("package.json").exists())
        .unwrap_or_else(|| unpacked.path().to_path_buf());
    let host_npm = move |args: &[&str]| {
        let out = std::process::Command::new("npm")
            .args(args)
            .current_dir(&root)
            .output()
            .expect("npm on the host");
        assert!(
            out.status.success(),
            "npm {args:?} on the exported app:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || {
        host_npm(&["ci", "--ignore-scripts", "--no-audit", "--no-fund"]);
        host_npm(&["test"]);
    })
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(600));
    ga.app.stop().await;
}
