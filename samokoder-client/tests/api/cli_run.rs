//! `samokoder run` through whole generations against the real server and the scripted fake
//! model: unattended with `--json`, and interactive with the question answered on standard
//! input; then `runs list` and `export`.

use std::time::Duration;

use samokoder_core::llm::fake::script::{DESCRIPTION, Script};
use samokoder_core::llm::fake::{FAKE_API_KEY, FakeLlm};
use serde_json::Value;

use crate::cli::{Cli, register};
use crate::helpers::{FAKE_MODEL, spawn_generating};

/// The entry names of a zip archive, from its central directory (names are stored
/// uncompressed there).
fn zip_entry_names(zip: &[u8]) -> Vec<String> {
    let u16_at = |at: usize| u16::from_le_bytes([zip[at], zip[at + 1]]) as usize;
    let u32_at =
        |at: usize| u32::from_le_bytes([zip[at], zip[at + 1], zip[at + 2], zip[at + 3]]) as usize;
    let end = (0..zip.len().saturating_sub(21))
        .rev()
        .find(|&at| zip[at..at + 4] == [0x50, 0x4b, 0x05, 0x06])
        .expect("an end-of-central-directory record");
    let mut at = u32_at(end + 16);
    let mut names = Vec::new();
    for _ in 0..u16_at(end + 10) {
        assert_eq!(zip[at..at + 4], [0x50, 0x4b, 0x01, 0x02]);
        let name_len = u16_at(at + 28);
        names.push(String::from_utf8_lossy(&zip[at + 46..at + 46 + name_len]).into_owned());
        at += 46 + name_len + u16_at(at + 30) + u16_at(at + 32);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_from_the_command_line_auto_and_interactive() {
    let fake = FakeLlm::start().await.unwrap();
    let script = Script {
        ask_question: true,
        ..Script::default()
    };
    fake.respond_with(move |request| script.answer(request));
    let server = spawn_generating().await;
    let cli = Cli::new(&server);
    register(&cli, "ra@example.com").await;
    samokoder_server::admin::set_tier(
        server.state.store(),
        "ra@example.com",
        samokoder_client::api::Tier::Pro,
    )
    .await
    .unwrap();
    cli.run(
        &[
            "keys",
            "add",
            "openai",
            "--key-stdin",
            "--model",
            FAKE_MODEL,
            "--base-url",
            &fake.openai_base_url(),
        ],
        &format!("{FAKE_API_KEY}\n"),
    )
    .await
    .ok();

    // Unattended, for a program: JSON lines, the question answered by its default.
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        cli.run(
            &["--json", "run", DESCRIPTION, "--name", "Todo API", "--auto"],
            "",
        ),
    )
    .await
    .expect("the run finishes in time")
    .ok();
    let lines = out.json_lines();
    assert_eq!(lines[0]["type"], "run");
    let project = lines[0]["run"]["project_id"].as_str().unwrap().to_owned();
    let events: Vec<&Value> = lines
        .iter()
        .filter(|line| line["type"] == "event")
        .map(|line| &line["event"])
        .collect();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "question_answered" && e["data"]["by_default"] == true),
        "auto mode answers with the default"
    );
    assert!(
        !lines.iter().any(|line| line["type"] == "question"),
        "nothing asked"
    );
    let result = lines.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["run"]["status"], "completed", "{result}");

    // `preview open` starts the app and prints a link; a browser following it reaches the
    // app on the project's own origin, through the sandbox's bridge.
    let link = cli
        .run(&["--json", "preview", "open", &project], "")
        .await
        .ok()
        .json();
    let (url, origin) = (
        link["url"].as_str().unwrap(),
        link["origin"].as_str().unwrap(),
    );
    assert!(url.starts_with(origin), "{link}");
    let host = origin
        .trim_start_matches("http://")
        .rsplit_once(':')
        .unwrap()
        .0;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .resolve(host, server.server.preview_address().unwrap())
        .build()
        .unwrap();
    let landed = browser.get(url).send().await.unwrap();
    assert_eq!(landed.url().path(), "/");
    let health = browser
        .get(format!("{origin}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
    let status = cli
        .run(&["--json", "preview", "status", &project], "")
        .await
        .ok()
        .json();
    assert_eq!(status["status"], "running", "{status}");
    assert_eq!(status["url"], origin);
    let stopped = cli.run(&["preview", "stop", &project], "").await.ok();
    assert!(
        stopped.stdout.contains("Preview stopped successfully"),
        "{}",
        stopped.stdout
    );

    // Interactive, for a person, in a new project (the scripted model builds from scratch):
    // the question is asked and answered from standard input ("2" picks the second button).
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        cli.run(&["run", DESCRIPTION, "--name", "Todo API 2"], "2\n"),
    )
    .await
    .expect("the run finishes in time")
    .ok();
    let text = &out.stdout;
    assert!(
        text.contains("? Should the count include items that are done?"),
        "{text}"
    );
    assert!(text.contains("  1) yes"), "{text}");
    assert!(text.contains("  2) no"), "{text}");
    assert!(text.contains("answered: no"), "{text}");
    assert!(
        text.contains("+ src/stats.js") || text.contains("~ src/stats.js"),
        "{text}"
    );
    assert!(text.contains("completed"), "{text}");
    assert!(text.contains("samokoder export "), "{text}");

    // `--name` finds the existing project; `--detach` returns at once; `runs cancel` stops it.
    let detached = cli
        .run(
            &[
                "--json",
                "run",
                DESCRIPTION,
                "--name",
                "Todo API",
                "--detach",
            ],
            "",
        )
        .await
        .ok()
        .json();
    assert_eq!(
        detached["project_id"],
        project.as_str(),
        "same project by name"
    );
    let run = detached["id"].as_str().unwrap();
    let cancelled = cli
        .run(&["--json", "runs", "cancel", &project, run], "")
        .await
        .ok()
        .json();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let runs = cli
        .run(&["--json", "runs", "list", &project], "")
        .await
        .ok()
        .json();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["cancelled", "completed"], "newest first");
    let projects = cli
        .run(&["--json", "projects", "list"], "")
        .await
        .ok()
        .json();
    assert_eq!(projects.as_array().unwrap().len(), 2);

    let zip = cli.config.with_file_name("app.zip");
    let out = cli
        .run(&["export", &project, "-o", zip.to_str().unwrap()], "")
        .await
        .ok();
    assert!(out.stdout.contains("Wrote"), "{}", out.stdout);
    let names = zip_entry_names(&std::fs::read(&zip).unwrap());
    for file in ["package.json", "src/stats.js", "test/stats.test.js"] {
        assert!(
            names.iter().any(|n| n.ends_with(file)),
            "{file} in {names:?}"
        );
    }

    // A run stopped by its budget and resumed with a raised one: `runs resume` follows the
    // resumed run to its end, not the earlier stop its event history replays first.
    let stopped = tokio::time::timeout(
        Duration::from_secs(240),
        cli.run(
            &[
                "--json",
                "run",
                DESCRIPTION,
                "--name",
                "Todo API 3",
                "--budget-calls",
                "3",
            ],
            "1\n",
        ),
    )
    .await
    .expect("the run stops in time");
    assert_eq!(stopped.status, 5, "{}\n{}", stopped.stdout, stopped.stderr);
    let lines = stopped.json_lines();
    let result = &lines.last().unwrap()["run"];
    assert_eq!(result["status"], "budget_exhausted", "{result}");
    let (project, run) = (
        result["project_id"].as_str().unwrap().to_owned(),
        result["id"].as_str().unwrap().to_owned(),
    );
    let last_before = lines
        .iter()
        .filter(|line| line["type"] == "event")
        .map(|line| line["event"]["seq"].as_i64().unwrap())
        .max()
        .unwrap();
    let resumed = tokio::time::timeout(
        Duration::from_secs(240),
        cli.run(
            &[
                "--json",
                "runs",
                "resume",
                &project,
                &run,
                "--budget-calls",
                "500",
                "--auto",
            ],
            "",
        ),
    )
    .await
    .expect("the resumed run finishes in time")
    .ok();
    let lines = resumed.json_lines();
    let seqs: Vec<i64> = lines
        .iter()
        .filter(|line| line["type"] == "event")
        .map(|line| line["event"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (last_before + 1..=last_before + seqs.len() as i64).collect::<Vec<_>>(),
        "only the resumed run's events, in order"
    );
    let result = lines.last().unwrap();
    assert_eq!(result["run"]["status"], "completed", "{result}");
}
