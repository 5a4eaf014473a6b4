//! A whole generation over the API: register, bring a key, create a project, start an auto
//! run, follow its events to the end, download the zip and find the app in it.

use futures::TryStreamExt;
use samokoder_client::EventStreamOptions;
use samokoder_client::api::events::RunEvent;
use samokoder_client::api::files::StateQuery;
use samokoder_client::api::projects::ProjectCreateRequest;
use samokoder_client::api::runs::{RunAutonomy, RunCreateRequest, RunStatus};
use samokoder_core::llm::fake::script::{DESCRIPTION, STATS_GOOD, Script};

use crate::support::{Database, RUN_TIMEOUT, Stack, zip_entry_names};

async fn generate(stack: &Stack) {
    let client = stack.user("ada").await;
    let project = client
        .projects()
        .create(&ProjectCreateRequest {
            name: "Todo API".into(),
            description: None,
        })
        .await
        .unwrap();
    let run = client
        .runs()
        .create(
            project.id,
            &RunCreateRequest {
                description: DESCRIPTION.into(),
                template: None,
                autonomy: RunAutonomy::Auto,
                budget: None,
                models: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(run.autonomy, RunAutonomy::Auto);

    let events: Vec<RunEvent> = tokio::time::timeout(
        RUN_TIMEOUT,
        client.runs().events(project.id, run.id).try_collect(),
    )
    .await
    .expect("the run finishes in time")
    .unwrap();
    let seqs: Vec<i64> = events.iter().map(|event| event.seq).collect();
    let expected: Vec<i64> = (1..=events.len() as i64).collect();
    assert_eq!(seqs, expected, "every event once, in order");
    let last = events.last().unwrap();
    assert_eq!(last.outcome(), Some("completed"), "{last:?}");
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
    for kind in ["run_started", "agent_started", "file_written", "checkpoint"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(
        events
            .iter()
            .any(|event| event.kind == "file_written" && event.data["path"] == "src/stats.js"),
        "{kinds:?}"
    );

    // A follower that joins late gets exactly the tail.
    let middle = seqs[seqs.len() / 2];
    let tail: Vec<i64> = client
        .runs()
        .events_with(
            project.id,
            run.id,
            EventStreamOptions {
                after: Some(middle),
                ..EventStreamOptions::default()
            },
        )
        .map_ok(|event| event.seq)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(tail, expected[middle as usize..].to_vec());

    let finished = client.runs().get(project.id, run.id).await.unwrap();
    assert_eq!(finished.status, RunStatus::Completed, "{finished:?}");
    assert!(finished.usage.llm_calls > 0);
    let listed = client
        .runs()
        .list(project.id, &Default::default())
        .await
        .unwrap();
    assert_eq!(listed.runs[0].id, run.id);

    let tree = client
        .files()
        .tree(project.id, &StateQuery::default())
        .await
        .unwrap();
    assert!(tree.files.iter().any(|file| file.path == "src/stats.js"));
    let stats = client
        .files()
        .read(project.id, "src/stats.js", &StateQuery::default())
        .await
        .unwrap();
    assert_eq!(String::from_utf8(stats).unwrap(), STATS_GOOD);

    let zip = client
        .files()
        .export(project.id, &StateQuery::default())
        .await
        .unwrap();
    let names = zip_entry_names(&zip);
    for file in [
        "package.json",
        "src/app.js",
        "src/stats.js",
        "test/stats.test.js",
    ] {
        assert!(
            names.iter().any(|name| name.ends_with(file)),
            "{file} in {names:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.zip");
    let written = client
        .files()
        .export_to_file(project.id, &StateQuery::default(), &path)
        .await
        .unwrap();
    assert_eq!(written, zip.len() as u64);
    assert_eq!(std::fs::read(&path).unwrap(), zip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_run_over_the_api_on_sqlite() {
    let stack = Stack::start("sqlite", Database::Sqlite, Script::default())
        .await
        .expect("SQLite needs no setup");
    generate(&stack).await;
    stack.stop().await;
}

#[cfg(feature = "sqlx-postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_run_over_the_api_on_postgres() {
    let Some(stack) = Stack::start(
        "an_auto_run_over_the_api_on_postgres",
        Database::Postgres,
        Script::default(),
    )
    .await
    else {
        return;
    };
    generate(&stack).await;
    stack.stop().await;
}

#[cfg(not(feature = "sqlx-postgres"))]
#[test]
fn an_auto_run_over_the_api_on_postgres() {
    crate::support::skipped(
        "an_auto_run_over_the_api_on_postgres",
        "build with `--features sqlx-postgres` and set SAMOKODER_TEST_POSTGRES_URL",
    );
}
