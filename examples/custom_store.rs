//! An embedder's own backend for one repository, plugged into a store built from SQLite.
//!
//! Here notifications live in process memory (say the embedder forwards them to its own
//! messaging system and does not want them in the database), while everything else stays in the
//! SQLite store. Because [`Store`] holds each repository as an `Arc<dyn Trait>` in a public field,
//! swapping one is an assignment; the rest of the program keeps calling `store.notifications`.
//!
//! Run it with `cargo run --example custom_store`.

use std::sync::{Arc, Mutex};

use samokoder::store::testing::ScratchDatabase;
use samokoder::store::{
    NewNotification, NewUser, Notification, NotificationQuery, NotificationRepo, Store, StoreError,
    StoreResult, UserRepo, async_trait, connect_with, now,
};
use serde_json::json;
use uuid::Uuid;

/// Notifications in memory. It keeps the contract of [`NotificationRepo`], including the
/// "unknown user" error, by asking the store's own user repository.
struct MemoryNotifications {
    users: Arc<dyn UserRepo>,
    items: Mutex<Vec<Notification>>,
}

impl MemoryNotifications {
    fn new(users: Arc<dyn UserRepo>) -> Self {
        Self {
            users,
            items: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl NotificationRepo for MemoryNotifications {
    async fn create(&self, new: &NewNotification) -> StoreResult<Notification> {
        if new.kind.trim().is_empty() {
            return Err(StoreError::invalid("notification kind must not be blank"));
        }
        match self.users.get(new.user_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                return Err(StoreError::MissingReference {
                    entity: "notification",
                    detail: format!("user {} does not exist", new.user_id),
                });
            }
            Err(other) => return Err(other),
        }
        let notification = Notification {
            id: Uuid::now_v7(),
            user_id: new.user_id,
            kind: new.kind.clone(),
            title: new.title.clone(),
            body: new.body.clone(),
            data: new.data.clone(),
            read_at: None,
            created_at: now(),
        };
        self.items.lock().unwrap().push(notification.clone());
        Ok(notification)
    }

    async fn list(&self, query: &NotificationQuery) -> StoreResult<Vec<Notification>> {
        if query.limit == 0 || query.limit > samokoder::store::MAX_PAGE_SIZE {
            return Err(StoreError::invalid("limit out of range"));
        }
        let items = self.items.lock().unwrap();
        // Newest first: ids are UUID v7, so id order is creation order.
        let mut found: Vec<_> = items
            .iter()
            .filter(|n| n.user_id == query.user_id)
            .filter(|n| !query.unread_only || n.read_at.is_none())
            .filter(|n| query.before.is_none_or(|before| n.id < before))
            .cloned()
            .collect();
        found.sort_by_key(|n| std::cmp::Reverse(n.id));
        found.truncate(query.limit as usize);
        Ok(found)
    }

    async fn mark_read(&self, user_id: Uuid, id: Uuid) -> StoreResult<()> {
        let mut items = self.items.lock().unwrap();
        let item = items
            .iter_mut()
            .find(|n| n.id == id && n.user_id == user_id)
            .ok_or_else(|| StoreError::not_found("notification", id))?;
        item.read_at.get_or_insert_with(now);
        Ok(())
    }

    async fn mark_all_read(&self, user_id: Uuid) -> StoreResult<u64> {
        let mut items = self.items.lock().unwrap();
        let mut changed = 0;
        for item in items
            .iter_mut()
            .filter(|n| n.user_id == user_id && n.read_at.is_none())
        {
            item.read_at = Some(now());
            changed += 1;
        }
        Ok(changed)
    }

    async fn unread_count(&self, user_id: Uuid) -> StoreResult<u64> {
        let items = self.items.lock().unwrap();
        Ok(items
            .iter()
            .filter(|n| n.user_id == user_id && n.read_at.is_none())
            .count() as u64)
    }

    async fn delete(&self, user_id: Uuid, id: Uuid) -> StoreResult<()> {
        let mut items = self.items.lock().unwrap();
        let before = items.len();
        items.retain(|n| !(n.id == id && n.user_id == user_id));
        if items.len() == before {
            return Err(StoreError::not_found("notification", id));
        }
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A real server derives the SQLite path from its data directory; a scratch file will do here.
    let scratch = ScratchDatabase::sqlite()?;
    let mut store: Store = connect_with(scratch.options()).await?;
    let report = store.migrate().await?;
    println!(
        "opened {} store, schema version {}",
        store.backend(),
        report.current_version
    );

    // The swap: one field, everything else untouched. (The SQLite repository is kept only to
    // show at the end that nothing reached the database.)
    let sqlite_notifications = store.notifications.clone();
    let memory = Arc::new(MemoryNotifications::new(store.users.clone()));
    store.notifications = memory.clone();

    let ada = store
        .users
        .create(&NewUser::new("ada@example.com", "$argon2id$v=19$..."))
        .await?;
    println!("user {} stored in SQLite (id {})", ada.email, ada.id);

    for (kind, title) in [
        ("run_completed", "Your todo app is ready"),
        ("key_expiring", "Your OpenAI key expires soon"),
    ] {
        store
            .notifications
            .create(&NewNotification {
                user_id: ada.id,
                kind: kind.into(),
                title: title.into(),
                body: String::new(),
                data: json!({}),
            })
            .await?;
    }
    let listed = store
        .notifications
        .list(&NotificationQuery {
            user_id: ada.id,
            unread_only: false,
            before: None,
            limit: 10,
        })
        .await?;
    println!(
        "{} notifications held in memory, newest first:",
        listed.len()
    );
    for n in &listed {
        println!("  [{}] {}", n.kind, n.title);
    }
    store.notifications.mark_read(ada.id, listed[0].id).await?;
    println!(
        "after reading one: {} unread",
        store.notifications.unread_count(ada.id).await?
    );

    // The contract holds: an unknown user is a typed error, found through the SQLite users.
    let ghost = store
        .notifications
        .create(&NewNotification {
            user_id: Uuid::now_v7(),
            kind: "run_completed".into(),
            title: "lost".into(),
            body: String::new(),
            data: json!({}),
        })
        .await;
    match ghost {
        Err(e @ StoreError::MissingReference { .. }) => println!("unknown user rejected: {e}"),
        other => return Err(format!("expected a missing-reference error, got {other:?}").into()),
    }

    let in_memory = memory.items.lock().unwrap().len();
    let in_database = sqlite_notifications
        .list(&NotificationQuery {
            user_id: ada.id,
            unread_only: false,
            before: None,
            limit: 10,
        })
        .await?
        .len();
    println!(
        "the custom repository holds {in_memory} notifications; the SQLite table holds {in_database}"
    );

    store.close().await;
    scratch.remove().await?;
    Ok(())
}
