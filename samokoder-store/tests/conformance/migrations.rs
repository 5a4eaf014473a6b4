//! Migrations, health checks and pool statistics.

use samokoder_store::migrations::{POSTGRES, SQLITE};
use samokoder_store::*;

use crate::assert_err;
use crate::harness::Ctx;

fn latest(store: &Store) -> i64 {
    let list = if store.backend().contains("sqlite") {
        SQLITE
    } else {
        POSTGRES
    };
    list.last().expect("at least one migration").version
}

pub async fn migrate_from_empty_twice(ctx: Ctx) {
    let (store, _) = ctx.empty_store().await;
    store
        .health_check()
        .await
        .expect("an empty database is healthy");
    assert!(
        store.users.count().await.is_err(),
        "connecting does not migrate: the tables do not exist yet"
    );
    let first = store.migrate().await.unwrap();
    let all: Vec<i64> = (1..=latest(&store)).collect();
    assert_eq!(first.applied, all);
    assert_eq!(first.current_version, latest(&store));
    let second = store.migrate().await.unwrap();
    assert!(second.applied.is_empty(), "running twice applies nothing");
    assert_eq!(second.current_version, latest(&store));
    assert_eq!(store.users.count().await.unwrap(), 0);
    store.close().await;

    // The case's own store was migrated by the harness already.
    assert!(ctx.store.migrate().await.unwrap().applied.is_empty());
}

pub async fn concurrent_migrations(ctx: Ctx) {
    let (first, options) = ctx.empty_store().await;
    let mut stores = vec![first];
    for _ in 0..3 {
        stores.push(connect_with(&options).await.unwrap());
    }
    let tasks: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| tokio::spawn(async move { store.migrate().await }))
        .collect();
    let mut applied = 0;
    for task in tasks {
        let report = task.await.unwrap().expect("concurrent migrate succeeds");
        applied += report.applied.len();
        assert_eq!(report.current_version, latest(&stores[0]));
    }
    assert_eq!(
        applied,
        latest(&stores[0]) as usize,
        "each migration applied once"
    );
    for store in stores {
        store.close().await;
    }
}

pub async fn health_and_pool_stats(ctx: Ctx) {
    let store = ctx.reopen().await;
    store.health_check().await.unwrap();
    let stats = store.pool_stats();
    assert!(stats.size >= 1, "{stats:?}");
    assert!(stats.size <= stats.max_size, "{stats:?}");
    assert_eq!(stats.in_use + stats.idle, stats.size, "{stats:?}");
    assert!(store.backend().starts_with("sqlx-") || store.backend().starts_with("diesel-"));
    assert!(format!("{store:?}").contains(store.backend()));
    store.close().await;
    assert_err!(store.health_check().await, StoreError::Unavailable { .. });
}
