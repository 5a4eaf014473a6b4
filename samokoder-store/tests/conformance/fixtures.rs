//! Small builders the cases share.

use chrono::{DateTime, Utc};
use samokoder_store::*;
use serde_json::json;
use uuid::Uuid;

/// A user with a unique e-mail.
pub async fn user(store: &Store) -> User {
    store
        .users
        .create(&NewUser::new(
            format!("user-{}@example.com", Uuid::new_v4().simple()),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        ))
        .await
        .expect("create user")
}

/// A project of `owner`.
pub async fn project(store: &Store, owner: Uuid, name: &str) -> Project {
    store
        .projects
        .create(&NewProject {
            owner_id: owner,
            name: name.into(),
            description: None,
        })
        .await
        .expect("create project")
}

/// A user, their project and a queued run of it.
pub async fn run(store: &Store) -> (User, Project, Run) {
    let user = user(store).await;
    let project = project(store, user.id, "app").await;
    let run = store
        .runs
        .create(&NewRun {
            project_id: project.id,
            user_id: user.id,
            description: "a todo app".into(),
            autonomy: "ask".into(),
            budget: json!({"max_cost_micros": 5_000_000}),
            options: json!({}),
        })
        .await
        .expect("create run");
    (user, project, run)
}

/// A fixed instant: `2026-MM-DDTHH:00:00Z`.
pub fn at(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2026-{month:02}-{day:02}T{hour:02}:00:00Z"))
        .expect("valid instant")
        .with_timezone(&Utc)
}

/// Asserts a result is the given error variant, with a readable failure.
#[macro_export]
macro_rules! assert_err {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err(ref error @ $pattern) => {
                // The message is ours: no SQL text and no raw driver message leaks into Display.
                let text = error.to_string();
                for leak in [
                    "INSERT",
                    "UPDATE ",
                    "SELECT",
                    "SQLSTATE",
                    "constraint failed",
                ] {
                    assert!(
                        !text.contains(leak),
                        "error display leaks driver text: {text}"
                    );
                }
            }
            Err(other) => panic!("expected {}, got error {other:?}", stringify!($pattern)),
            Ok(value) => panic!("expected {}, got Ok({value:?})", stringify!($pattern)),
        }
    };
}
