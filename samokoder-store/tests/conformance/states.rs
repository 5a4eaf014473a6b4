//! Branches, the chain of checkpointed states, file trees and blobs.

use std::collections::BTreeMap;
use std::sync::Arc;

use samokoder_store::*;
use serde_json::json;
use uuid::Uuid;

use crate::assert_err;
use crate::fixtures;
use crate::harness::Ctx;

fn write(path: &str, content: &str) -> FileChange {
    FileChange::Write {
        path: path.into(),
        content: content.as_bytes().to_vec(),
    }
}

fn delete(path: &str) -> FileChange {
    FileChange::Delete { path: path.into() }
}

fn new_state(
    project: Uuid,
    branch: &str,
    parent: Option<Uuid>,
    label: &str,
    files: Vec<FileChange>,
) -> NewState {
    NewState {
        project_id: project,
        branch: branch.into(),
        parent_id: parent,
        run_id: None,
        step_label: label.into(),
        state: json!({"step": label}),
        files,
    }
}

fn tree(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(path, content)| ((*path).to_owned(), blob_hash(content.as_bytes())))
        .collect()
}

pub async fn append_chain_and_materialise(ctx: Ctx) {
    let store = &ctx.store;
    let (_, project, run) = fixtures::run(store).await;
    let mut first = new_state(
        project.id,
        "main",
        None,
        "spec",
        vec![
            write("README.md", "# app"),
            write("src/main.rs", "fn main() {}"),
        ],
    );
    first.run_id = Some(run.id);
    let s1 = store.states.append(&first).await.unwrap();
    assert_eq!(
        (s1.sequence, s1.parent_id, s1.run_id),
        (1, None, Some(run.id))
    );
    assert_eq!(store.states.get(s1.id).await.unwrap(), s1);

    let s2 = store
        .states
        .append(&new_state(
            project.id,
            "main",
            Some(s1.id),
            "code",
            vec![
                write("src/main.rs", "fn main() { println!(\"hi\"); }"),
                write("src/lib.rs", "pub fn f() {}"),
            ],
        ))
        .await
        .unwrap();
    let s3 = store
        .states
        .append(&new_state(
            project.id,
            "main",
            Some(s2.id),
            "cleanup",
            vec![delete("README.md"), delete("never-existed.txt")],
        ))
        .await
        .unwrap();
    assert_eq!((s2.sequence, s3.sequence), (2, 3));

    assert_eq!(
        store.states.files(s1.id).await.unwrap(),
        tree(&[("README.md", "# app"), ("src/main.rs", "fn main() {}")])
    );
    assert_eq!(
        store.states.files(s3.id).await.unwrap(),
        tree(&[
            ("src/lib.rs", "pub fn f() {}"),
            ("src/main.rs", "fn main() { println!(\"hi\"); }"),
        ])
    );
    let changes = store.states.changes(s3.id).await.unwrap();
    assert_eq!(
        changes,
        [
            FileEntry {
                path: "README.md".into(),
                blob_hash: None
            },
            FileEntry {
                path: "never-existed.txt".into(),
                blob_hash: None
            },
        ]
    );

    // Reading files at any point of the history.
    let read = |state: Uuid, path: &'static str| {
        let store = store.clone();
        async move { store.files.read_file(state, path).await.unwrap() }
    };
    assert_eq!(
        read(s3.id, "src/main.rs").await.unwrap(),
        b"fn main() { println!(\"hi\"); }"
    );
    assert_eq!(read(s1.id, "src/main.rs").await.unwrap(), b"fn main() {}");
    assert_eq!(read(s2.id, "README.md").await.unwrap(), b"# app");
    assert_eq!(read(s3.id, "README.md").await, None, "deleted");
    assert_eq!(read(s3.id, "nope.txt").await, None);

    let head = store
        .states
        .head(project.id, "main")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.id, s3.id);
    let branch = store.states.branch(project.id, "main").await.unwrap();
    assert_eq!(branch.head_state_id, Some(s3.id));

    let history = store.states.history(s3.id, 1).await.unwrap();
    assert_eq!(
        history.iter().map(|s| s.id).collect::<Vec<_>>(),
        [s1.id, s2.id, s3.id]
    );
    assert_eq!(history[1].state, json!({"step": "code"}));
    let tail = store.states.history(s3.id, 2).await.unwrap();
    assert_eq!(tail.iter().map(|s| s.sequence).collect::<Vec<_>>(), [2, 3]);

    let missing = Uuid::now_v7();
    assert_err!(store.states.get(missing).await, StoreError::NotFound { .. });
    assert_err!(
        store.states.files(missing).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.states.changes(missing).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.states.history(missing, 1).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.files.read_file(missing, "a").await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.states.head(project.id, "nope").await,
        StoreError::NotFound { .. }
    );
}

pub async fn blobs_stored_once_and_collected(ctx: Ctx) {
    let store = &ctx.store;
    let (_, project, _) = fixtures::run(store).await;
    let hash = store.files.put_blob(b"same bytes").await.unwrap();
    assert_eq!(store.files.put_blob(b"same bytes").await.unwrap(), hash);
    assert_eq!(hash, blob_hash(b"same bytes"));
    assert!(store.files.has_blob(&hash).await.unwrap());
    assert_eq!(store.files.blob(&hash).await.unwrap(), b"same bytes");
    let absent = blob_hash(b"absent");
    assert!(!store.files.has_blob(&absent).await.unwrap());
    assert_err!(store.files.blob(&absent).await, StoreError::NotFound { .. });
    assert_err!(
        store.files.blob("../etc").await,
        StoreError::InvalidInput(_)
    );

    // The same content under several paths and states is one blob.
    let s1 = store
        .states
        .append(&new_state(
            project.id,
            "main",
            None,
            "a",
            vec![
                write("a.txt", "same bytes"),
                write("b.txt", "same bytes"),
                write("c.bin", "\u{0}binary\u{ff}"),
            ],
        ))
        .await
        .unwrap();
    store
        .states
        .append(&new_state(
            project.id,
            "main",
            Some(s1.id),
            "b",
            vec![write("d.txt", "same bytes")],
        ))
        .await
        .unwrap();
    let files = store.states.files(s1.id).await.unwrap();
    assert_eq!(files["a.txt"], files["b.txt"]);
    assert_eq!(
        store
            .files
            .read_file(s1.id, "c.bin")
            .await
            .unwrap()
            .unwrap(),
        "\u{0}binary\u{ff}".as_bytes()
    );

    assert_eq!(
        store.files.collect_garbage().await.unwrap(),
        0,
        "all referenced"
    );
    let orphan = store.files.put_blob(b"nobody refers to me").await.unwrap();
    assert_eq!(store.files.collect_garbage().await.unwrap(), 1);
    assert!(!store.files.has_blob(&orphan).await.unwrap());
    store.projects.delete(project.id).await.unwrap();
    assert_eq!(
        store.files.collect_garbage().await.unwrap(),
        2,
        "exactly two distinct contents were stored"
    );
}

pub async fn append_conflicts_and_errors(ctx: Ctx) {
    let store = &ctx.store;
    let (_, project, _) = fixtures::run(store).await;
    let (_, other_project, _) = fixtures::run(store).await;
    let s1 = store
        .states
        .append(&new_state(project.id, "main", None, "one", vec![]))
        .await
        .unwrap();
    let s2 = store
        .states
        .append(&new_state(project.id, "main", Some(s1.id), "two", vec![]))
        .await
        .unwrap();

    // A stale parent loses, and writes nothing.
    assert_err!(
        store
            .states
            .append(&new_state(
                project.id,
                "main",
                Some(s1.id),
                "stale",
                vec![write("x", "y")]
            ))
            .await,
        StoreError::Conflict { .. }
    );
    assert_err!(
        store
            .states
            .append(&new_state(project.id, "main", None, "again", vec![]))
            .await,
        StoreError::Conflict { .. }
    );
    assert_eq!(store.states.history(s2.id, 1).await.unwrap().len(), 2);
    assert!(store.states.files(s2.id).await.unwrap().is_empty());

    assert_err!(
        store
            .states
            .append(&new_state(
                project.id,
                "main",
                Some(Uuid::now_v7()),
                "x",
                vec![]
            ))
            .await,
        StoreError::NotFound { .. }
    );
    // A parent from another project is not a parent here.
    let foreign = store
        .states
        .append(&new_state(other_project.id, "main", None, "x", vec![]))
        .await
        .unwrap();
    assert_err!(
        store
            .states
            .append(&new_state(
                project.id,
                "main",
                Some(foreign.id),
                "x",
                vec![]
            ))
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .states
            .append(&new_state(project.id, "feature", Some(s2.id), "x", vec![]))
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .states
            .append(&new_state(Uuid::now_v7(), "main", None, "x", vec![]))
            .await,
        StoreError::MissingReference { .. }
    );
    let mut with_missing_run = new_state(project.id, "main", Some(s2.id), "x", vec![]);
    with_missing_run.run_id = Some(Uuid::now_v7());
    assert_err!(
        store.states.append(&with_missing_run).await,
        StoreError::MissingReference { .. }
    );
    for bad in ["/abs", "a/../b", ""] {
        assert_err!(
            store
                .states
                .append(&new_state(
                    project.id,
                    "main",
                    Some(s2.id),
                    "x",
                    vec![write(bad, "y")]
                ))
                .await,
            StoreError::InvalidInput(_)
        );
    }
    assert_err!(
        store
            .states
            .append(&new_state(
                project.id,
                "main",
                Some(s2.id),
                "x",
                vec![write("a", "1"), delete("a"),]
            ))
            .await,
        StoreError::InvalidInput(_)
    );
    // After every failure the head is still s2 and appending to it works.
    let s3 = store
        .states
        .append(&new_state(project.id, "main", Some(s2.id), "three", vec![]))
        .await
        .unwrap();
    assert_eq!(s3.sequence, 3);
}

pub async fn branches_fork(ctx: Ctx) {
    let store = &ctx.store;
    let (_, project, _) = fixtures::run(store).await;
    let (_, other_project, _) = fixtures::run(store).await;
    let s1 = store
        .states
        .append(&new_state(
            project.id,
            "main",
            None,
            "one",
            vec![write("a", "1")],
        ))
        .await
        .unwrap();
    let s2 = store
        .states
        .append(&new_state(
            project.id,
            "main",
            Some(s1.id),
            "two",
            vec![write("a", "2")],
        ))
        .await
        .unwrap();

    // Roll back by forking from an older state: history is kept, nothing is truncated.
    let fork = store
        .states
        .create_branch(project.id, "retry", Some(s1.id))
        .await
        .unwrap();
    assert_eq!(fork.head_state_id, Some(s1.id));
    let f2 = store
        .states
        .append(&new_state(
            project.id,
            "retry",
            Some(s1.id),
            "alt",
            vec![write("b", "x")],
        ))
        .await
        .unwrap();
    assert_eq!((f2.sequence, f2.branch.as_str()), (2, "retry"));
    assert_eq!(
        store.states.files(f2.id).await.unwrap(),
        tree(&[("a", "1"), ("b", "x")])
    );
    assert_eq!(
        store.states.files(s2.id).await.unwrap(),
        tree(&[("a", "2")])
    );
    let history = store.states.history(f2.id, 1).await.unwrap();
    assert_eq!(
        history.iter().map(|s| s.id).collect::<Vec<_>>(),
        [s1.id, f2.id]
    );

    let empty = store
        .states
        .create_branch(project.id, "empty", None)
        .await
        .unwrap();
    assert_eq!(empty.head_state_id, None);
    assert!(
        store
            .states
            .head(project.id, "empty")
            .await
            .unwrap()
            .is_none()
    );
    let e1 = store
        .states
        .append(&new_state(project.id, "empty", None, "first", vec![]))
        .await
        .unwrap();
    assert_eq!(e1.sequence, 1);

    let names: Vec<_> = store
        .states
        .list_branches(project.id)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["empty", "main", "retry"]);

    assert_err!(
        store.states.create_branch(project.id, "main", None).await,
        StoreError::Conflict { .. }
    );
    let foreign = store
        .states
        .append(&new_state(other_project.id, "main", None, "x", vec![]))
        .await
        .unwrap();
    assert_err!(
        store
            .states
            .create_branch(project.id, "stolen", Some(foreign.id))
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .states
            .create_branch(Uuid::now_v7(), "main", None)
            .await,
        StoreError::MissingReference { .. }
    );
    assert_err!(
        store.states.branch(project.id, "nope").await,
        StoreError::NotFound { .. }
    );
}

pub async fn concurrent_appends_one_winner_per_parent(ctx: Ctx) {
    const WRITERS: usize = 10;
    let store = ctx.store.clone();
    let (_, project, _) = fixtures::run(&store).await;
    let root = store
        .states
        .append(&new_state(
            project.id,
            "main",
            None,
            "root",
            vec![write("shared.txt", "0")],
        ))
        .await
        .unwrap();

    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let change = |parent| {
                    new_state(
                        project.id,
                        "main",
                        Some(parent),
                        &format!("writer {i}"),
                        vec![
                            write(&format!("writer-{i}.txt"), &i.to_string()),
                            write("shared.txt", &i.to_string()),
                        ],
                    )
                };
                barrier.wait().await;
                let first = store.states.append(&change(root.id)).await;
                let won_first_round = first.is_ok();
                match first {
                    Ok(_) | Err(StoreError::Conflict { .. }) => {}
                    Err(other) => panic!("unexpected error {other:?}"),
                }
                // Losers re-read the head and retry until they get in.
                let mut attempts = 1;
                let mut result = first;
                while result.is_err() {
                    attempts += 1;
                    assert!(attempts < 200, "writer {i} starved");
                    let head = store
                        .states
                        .head(project.id, "main")
                        .await
                        .unwrap()
                        .unwrap();
                    result = store.states.append(&change(head.id)).await;
                    if let Err(ref e) = result {
                        assert!(e.is_conflict(), "unexpected error {e:?}");
                    }
                }
                won_first_round
            })
        })
        .collect();
    let mut first_round_winners = 0;
    for task in tasks {
        if task.await.unwrap() {
            first_round_winners += 1;
        }
    }
    assert_eq!(first_round_winners, 1, "exactly one append per parent wins");

    let head = store
        .states
        .head(project.id, "main")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.sequence, WRITERS as i64 + 1);
    let history = store.states.history(head.id, 1).await.unwrap();
    assert_eq!(
        history.iter().map(|s| s.sequence).collect::<Vec<_>>(),
        (1..=WRITERS as i64 + 1).collect::<Vec<_>>(),
        "one linear chain, no gaps"
    );
    let files = store.states.files(head.id).await.unwrap();
    for i in 0..WRITERS {
        assert!(
            files.contains_key(&format!("writer-{i}.txt")),
            "writer {i}'s file lost"
        );
    }
    let last_writer = head.step_label.trim_start_matches("writer ");
    assert_eq!(
        store
            .files
            .read_file(head.id, "shared.txt")
            .await
            .unwrap()
            .unwrap(),
        last_writer.as_bytes(),
        "the shared file holds the last writer's content"
    );
}

pub async fn project_delete_cascades_states(ctx: Ctx) {
    let store = &ctx.store;
    let (_, project, run) = fixtures::run(store).await;
    let mut first = new_state(project.id, "main", None, "one", vec![write("a", "1")]);
    first.run_id = Some(run.id);
    let s1 = store.states.append(&first).await.unwrap();
    store.events.append(run.id, "x", &json!({})).await.unwrap();
    store.projects.delete(project.id).await.unwrap();
    assert_err!(store.states.get(s1.id).await, StoreError::NotFound { .. });
    assert_err!(store.runs.get(run.id).await, StoreError::NotFound { .. });
    assert!(
        store
            .states
            .list_branches(project.id)
            .await
            .unwrap()
            .is_empty()
    );
}
