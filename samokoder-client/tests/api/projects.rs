//! Projects: create, read, update, archive, delete, and the paging stream.

use futures::TryStreamExt;
use samokoder_client::api::projects::{
    ProjectCreateRequest, ProjectListQuery, ProjectUpdateRequest,
};

use crate::helpers::spawn;

fn named(name: &str) -> ProjectCreateRequest {
    ProjectCreateRequest {
        name: name.to_owned(),
        description: None,
    }
}

#[tokio::test]
async fn crud() {
    let server = spawn().await;
    let client = server.user("ja").await;
    let created = client
        .projects()
        .create(&ProjectCreateRequest {
            name: "Todo".into(),
            description: Some("A list".into()),
        })
        .await
        .unwrap();
    assert_eq!(client.projects().get(created.id).await.unwrap(), created);

    let renamed = client
        .projects()
        .update(
            created.id,
            &ProjectUpdateRequest {
                name: Some("Todo 2".into()),
                description: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "Todo 2");
    assert_eq!(renamed.description.as_deref(), Some("A list"));
    let cleared = client
        .projects()
        .put(
            created.id,
            &ProjectUpdateRequest {
                name: None,
                description: Some(None),
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.description, None);

    assert!(
        client
            .projects()
            .archive(created.id)
            .await
            .unwrap()
            .archived
    );
    let listed = client
        .projects()
        .list(&ProjectListQuery::default())
        .await
        .unwrap();
    assert!(listed.projects.is_empty(), "archived projects are hidden");
    assert_eq!(listed.total, 1);
    assert!(
        !client
            .projects()
            .unarchive(created.id)
            .await
            .unwrap()
            .archived
    );

    client.projects().delete(created.id).await.unwrap();
    let error = client.projects().get(created.id).await.unwrap_err();
    assert_eq!(error.code(), Some("project_not_found"));
    let error = client.projects().delete(created.id).await.unwrap_err();
    assert!(error.is_not_found());

    // Someone else's project is as missing as a deleted one.
    let mine = client.projects().create(&named("Mine")).await.unwrap();
    let stranger = server.user("jb").await;
    assert!(
        stranger
            .projects()
            .get(mine.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn list_all_follows_the_cursor_through_every_page() {
    let server = spawn().await;
    let client = server.pro_user("ka").await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            client
                .projects()
                .create(&named(&format!("p{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    let first = client
        .projects()
        .list(&ProjectListQuery {
            limit: Some(3),
            ..ProjectListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(first.projects.len(), 3);
    assert!(first.next_cursor.is_some());

    let all: Vec<_> = client
        .projects()
        .list_all(ProjectListQuery {
            limit: Some(3),
            ..ProjectListQuery::default()
        })
        .map_ok(|project| project.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 7, "three pages, nothing twice");
    created.reverse();
    assert_eq!(all, created, "newest first");

    let filtered: Vec<_> = client
        .projects()
        .list_all(ProjectListQuery {
            q: Some("P6".into()),
            ..ProjectListQuery::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
}

#[tokio::test]
async fn a_failing_page_ends_the_stream_with_its_error() {
    let server = spawn().await;
    let client = server.client();
    let results: Vec<_> = futures::StreamExt::collect::<Vec<_>>(
        client.projects().list_all(ProjectListQuery::default()),
    )
    .await;
    assert_eq!(results.len(), 1);
    assert!(results[0].as_ref().unwrap_err().is_unauthorized());
}
