//! Projects, sealed keys and quota counters.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use samokoder_store::*;
use serde_json::json;
use uuid::Uuid;

use crate::assert_err;
use crate::fixtures;
use crate::harness::Ctx;

pub async fn create_get_and_ownership(ctx: Ctx) {
    let store = &ctx.store;
    let owner = fixtures::user(store).await;
    let other = fixtures::user(store).await;
    let created = store
        .projects
        .create(&NewProject {
            owner_id: owner.id,
            name: "  Todo app ".into(),
            description: Some("lists".into()),
        })
        .await
        .unwrap();
    assert_eq!(created.name, "Todo app");
    assert!(!created.archived);
    assert_eq!(store.projects.get(created.id).await.unwrap(), created);
    assert_eq!(
        store
            .projects
            .get_owned(owner.id, created.id)
            .await
            .unwrap(),
        created
    );
    assert_err!(
        store.projects.get_owned(other.id, created.id).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.projects.get(Uuid::now_v7()).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .projects
            .create(&NewProject {
                owner_id: Uuid::now_v7(),
                name: "orphan".into(),
                description: None,
            })
            .await,
        StoreError::MissingReference { .. }
    );
    for bad in ["", "   ", &"x".repeat(201)] {
        assert_err!(
            store
                .projects
                .create(&NewProject {
                    owner_id: owner.id,
                    name: bad.to_string(),
                    description: None,
                })
                .await,
            StoreError::InvalidInput(_)
        );
    }
}

pub async fn list_pages_newest_first(ctx: Ctx) {
    let store = &ctx.store;
    let owner = fixtures::user(store).await;
    let stranger = fixtures::user(store).await;
    fixtures::project(store, stranger.id, "not mine").await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            fixtures::project(store, owner.id, &format!("p{i}"))
                .await
                .id,
        );
    }
    created.reverse();

    let mut seen = Vec::new();
    let mut query = ProjectQuery::first_page(owner.id, 3);
    let mut pages = 0;
    loop {
        let page = store.projects.list(&query).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|p| p.id));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "newest first, each once, only the owner's");

    // A page that ends exactly at the last item has no next cursor.
    let exact = store
        .projects
        .list(&ProjectQuery::first_page(owner.id, 7))
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 7);
    assert!(exact.next_cursor.is_none());

    query.cursor = Some("not-a-cursor".into());
    assert_err!(
        store.projects.list(&query).await,
        StoreError::InvalidInput(_)
    );
    assert_err!(
        store
            .projects
            .list(&ProjectQuery::first_page(owner.id, 0))
            .await,
        StoreError::InvalidInput(_)
    );
}

pub async fn list_filters_by_name_ignoring_case(ctx: Ctx) {
    let store = &ctx.store;
    let owner = fixtures::user(store).await;
    for name in [
        "Shop Frontend",
        "shopping list",
        "Магазин Цветов",
        "50% off_sale",
        "5000 offsale",
        "Blog",
    ] {
        fixtures::project(store, owner.id, name).await;
    }
    let names = |filter: &str| {
        let store = store.clone();
        let filter = filter.to_owned();
        async move {
            let mut query = ProjectQuery::first_page(owner.id, 50);
            query.name_contains = Some(filter);
            let mut names: Vec<_> = store
                .projects
                .list(&query)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|p| p.name)
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(names("SHOP").await, ["Shop Frontend", "shopping list"]);
    assert_eq!(
        names("магазин").await,
        ["Магазин Цветов"],
        "Unicode case folding"
    );
    assert_eq!(
        names("0% off_").await,
        ["50% off_sale"],
        "% and _ are literal"
    );
    assert!(names("nothing").await.is_empty());
}

pub async fn update_archive_delete(ctx: Ctx) {
    let store = &ctx.store;
    let owner = fixtures::user(store).await;
    let project = store
        .projects
        .create(&NewProject {
            owner_id: owner.id,
            name: "before".into(),
            description: Some("d".into()),
        })
        .await
        .unwrap();
    let renamed = store
        .projects
        .update(
            project.id,
            &ProjectUpdate {
                name: Some("After".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "After");
    assert_eq!(
        renamed.description.as_deref(),
        Some("d"),
        "untouched fields stay"
    );
    let cleared = store
        .projects
        .update(
            project.id,
            &ProjectUpdate {
                description: Some(None),
                archived: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.description, None);
    assert!(cleared.archived);
    assert_eq!(cleared.name, "After");

    // Archived projects are hidden unless asked for; search uses the new name.
    let mut query = ProjectQuery::first_page(owner.id, 10);
    assert!(store.projects.list(&query).await.unwrap().items.is_empty());
    query.include_archived = true;
    query.name_contains = Some("aft".into());
    assert_eq!(store.projects.list(&query).await.unwrap().items.len(), 1);

    assert_err!(
        store
            .projects
            .update(
                project.id,
                &ProjectUpdate {
                    name: Some(" ".into()),
                    ..Default::default()
                }
            )
            .await,
        StoreError::InvalidInput(_)
    );
    assert_err!(
        store
            .projects
            .update(Uuid::now_v7(), &ProjectUpdate::default())
            .await,
        StoreError::NotFound { .. }
    );
    store.projects.delete(project.id).await.unwrap();
    assert_err!(
        store.projects.delete(project.id).await,
        StoreError::NotFound { .. }
    );
}

pub async fn counts_for_quotas(ctx: Ctx) {
    let store = &ctx.store;
    let owner = fixtures::user(store).await;
    fixtures::project(store, owner.id, "a").await;
    let boundary = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    fixtures::project(store, owner.id, "b").await;
    let archived = fixtures::project(store, owner.id, "c").await;
    store
        .projects
        .update(
            archived.id,
            &ProjectUpdate {
                archived: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let counts = store.projects.counts(owner.id, boundary).await.unwrap();
    assert_eq!(
        counts,
        ProjectCounts {
            total: 3,
            created_since: 2
        }
    );
    let none = store
        .projects
        .counts(Uuid::now_v7(), boundary)
        .await
        .unwrap();
    assert_eq!(
        none,
        ProjectCounts {
            total: 0,
            created_since: 0
        }
    );
}

/// A value shaped like `samokoder-auth`'s secret box output (`v1.<kid>.<base64url data>`),
/// distinct per `label` and deterministic, so tests can compare what they stored.
fn sealed(label: &[u8], key: &str) -> SealedSecret {
    // Hex digits are base64url characters; a multiple of 4 of them, at least 40, decodes to
    // the 30 or more bytes a nonce and a tag need.
    let mut data = hex::encode(label);
    while data.len() < 40 || data.len() % 4 != 0 {
        data.push('A');
    }
    SealedSecret {
        ciphertext: format!("v1.{key}.{data}").into_bytes(),
        key_id: key.into(),
    }
}

fn provider_key(user: Uuid, provider: &str, secret: &[u8]) -> NewProviderKey {
    NewProviderKey {
        user_id: user,
        provider: provider.into(),
        label: Some("work".into()),
        last_four: "abcd".into(),
        preferred_model: Some("gpt-4.1".into()),
        settings: json!({"base_url": "https://api.example.com"}),
        sealed: sealed(secret, "k1"),
    }
}

pub async fn provider_keys(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    let first = store
        .keys
        .put_provider_key(&provider_key(user.id, "openai", b"\x00sealed-1"))
        .await
        .unwrap();
    assert_eq!(first.sealed, sealed(b"\x00sealed-1", "k1"));
    store
        .keys
        .put_provider_key(&provider_key(user.id, "anthropic", b"sealed-a"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;

    // Replacing keeps the row's identity and creation time.
    let mut replacement = provider_key(user.id, "openai", b"sealed-2");
    replacement.last_four = "wxyz".into();
    let replaced = store.keys.put_provider_key(&replacement).await.unwrap();
    assert_eq!(replaced.id, first.id);
    assert_eq!(replaced.created_at, first.created_at);
    assert!(replaced.updated_at > first.updated_at);
    assert_eq!(replaced.last_four, "wxyz");
    assert_eq!(replaced.sealed, sealed(b"sealed-2", "k1"));

    let listed = store.keys.list_provider_keys(user.id).await.unwrap();
    let providers: Vec<_> = listed.iter().map(|k| k.provider.as_str()).collect();
    assert_eq!(providers, ["anthropic", "openai"]);
    assert_eq!(
        store.keys.provider_key(user.id, "openai").await.unwrap(),
        Some(replaced.clone())
    );
    assert!(
        store
            .keys
            .provider_key(user.id, "groq")
            .await
            .unwrap()
            .is_none()
    );

    let updated = store
        .keys
        .update_provider_settings(user.id, "openai", None, &json!({"org": "x"}))
        .await
        .unwrap();
    assert_eq!(updated.preferred_model, None);
    assert_eq!(updated.settings, json!({"org": "x"}));
    assert_eq!(updated.sealed, replaced.sealed, "the secret is untouched");
    assert_err!(
        store
            .keys
            .update_provider_settings(user.id, "groq", None, &json!({}))
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .keys
            .update_provider_settings(user.id, "openai", None, &json!([1]))
            .await,
        StoreError::InvalidInput(_)
    );

    let mut bad = provider_key(user.id, "x", b"s");
    bad.last_four = "sk-full-secret".into();
    assert_err!(
        store.keys.put_provider_key(&bad).await,
        StoreError::InvalidInput(_)
    );
    let mut bad = provider_key(user.id, "x", b"");
    bad.sealed.ciphertext.clear();
    assert_err!(
        store.keys.put_provider_key(&bad).await,
        StoreError::InvalidInput(_)
    );
    // Plaintext is refused, and so is a key id other than the one the value names.
    let mut bad = provider_key(user.id, "x", b"");
    bad.sealed.ciphertext = b"sk-live-plaintext-key".to_vec();
    assert_err!(
        store.keys.put_provider_key(&bad).await,
        StoreError::InvalidInput(_)
    );
    let mut bad = provider_key(user.id, "x", b"s");
    bad.sealed.key_id = "k2".into();
    assert_err!(
        store.keys.put_provider_key(&bad).await,
        StoreError::InvalidInput(_)
    );
    assert_err!(
        store
            .keys
            .put_provider_key(&provider_key(Uuid::now_v7(), "openai", b"s"))
            .await,
        StoreError::MissingReference { .. }
    );

    store
        .keys
        .delete_provider_key(user.id, "openai")
        .await
        .unwrap();
    assert_err!(
        store.keys.delete_provider_key(user.id, "openai").await,
        StoreError::NotFound { .. }
    );
    assert_eq!(
        store.keys.list_provider_keys(user.id).await.unwrap().len(),
        1
    );
}

pub async fn vcs_tokens(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    let token = NewVcsToken {
        user_id: user.id,
        host: "github".into(),
        label: None,
        last_four: "9f3a".into(),
        sealed: sealed(b"gh-sealed", "k1"),
    };
    let stored = store.keys.put_vcs_token(&token).await.unwrap();
    let again = store
        .keys
        .put_vcs_token(&NewVcsToken {
            sealed: sealed(b"gh-sealed-2", "k1"),
            ..token.clone()
        })
        .await
        .unwrap();
    assert_eq!(again.id, stored.id);
    assert_eq!(
        store.keys.vcs_token(user.id, "github").await.unwrap(),
        Some(again.clone())
    );
    assert!(
        store
            .keys
            .vcs_token(user.id, "gitverse")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.keys.list_vcs_tokens(user.id).await.unwrap(), [again]);
    store
        .keys
        .delete_vcs_token(user.id, "github")
        .await
        .unwrap();
    assert_err!(
        store.keys.delete_vcs_token(user.id, "github").await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .keys
            .put_vcs_token(&NewVcsToken {
                user_id: Uuid::now_v7(),
                ..token
            })
            .await,
        StoreError::MissingReference { .. }
    );
}

pub async fn reseal_is_compare_and_swap(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    store
        .keys
        .put_provider_key(&provider_key(user.id, "openai", b"old-openai"))
        .await
        .unwrap();
    let mut current = provider_key(user.id, "groq", b"new-groq");
    current.sealed = sealed(b"new-groq", "k2");
    store.keys.put_provider_key(&current).await.unwrap();
    store
        .keys
        .put_vcs_token(&NewVcsToken {
            user_id: user.id,
            host: "github".into(),
            label: None,
            last_four: "1234".into(),
            sealed: sealed(b"old-gh", "k1"),
        })
        .await
        .unwrap();

    assert_eq!(store.keys.list_sealed(None).await.unwrap().len(), 3);
    let work = store.keys.list_sealed(Some("k2")).await.unwrap();
    let kinds: Vec<_> = work.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [SecretKind::ProviderKey, SecretKind::VcsToken]);

    for entry in &work {
        let resealed = match entry.kind {
            SecretKind::ProviderKey => sealed(b"old-openai+k2", "k2"),
            SecretKind::VcsToken => sealed(b"old-gh+k2", "k2"),
        };
        assert!(
            store
                .keys
                .reseal(entry.kind, entry.id, &entry.sealed, &resealed)
                .await
                .unwrap()
        );
        // A second pass with the stale expectation changes nothing.
        assert!(
            !store
                .keys
                .reseal(
                    entry.kind,
                    entry.id,
                    &entry.sealed,
                    &sealed(b"clobber", "k3")
                )
                .await
                .unwrap()
        );
    }
    assert!(store.keys.list_sealed(Some("k2")).await.unwrap().is_empty());
    let openai = store
        .keys
        .provider_key(user.id, "openai")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(openai.sealed, sealed(b"old-openai+k2", "k2"));
    let github = store
        .keys
        .vcs_token(user.id, "github")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(github.sealed, sealed(b"old-gh+k2", "k2"));
}

fn month(m: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, 1).unwrap()
}

pub async fn quota_consume_until_limit(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    for expected in 1..=3 {
        let decision = store
            .quotas
            .try_consume(user.id, QuotaKind::Export, month(3), 3)
            .await
            .unwrap();
        assert_eq!(
            decision,
            QuotaDecision {
                allowed: true,
                used: expected,
                limit: 3
            }
        );
    }
    let denied = store
        .quotas
        .try_consume(user.id, QuotaKind::Export, month(3), 3)
        .await
        .unwrap();
    assert_eq!(
        denied,
        QuotaDecision {
            allowed: false,
            used: 3,
            limit: 3
        }
    );
    assert_eq!(
        store
            .quotas
            .used(user.id, QuotaKind::Export, month(3))
            .await
            .unwrap(),
        3
    );
    // Other kinds and periods count separately; a raised limit allows again.
    assert!(
        store
            .quotas
            .try_consume(user.id, QuotaKind::Export, month(4), 3)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        store
            .quotas
            .try_consume(user.id, QuotaKind::GitPush, month(3), 1)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        store
            .quotas
            .try_consume(user.id, QuotaKind::Export, month(3), 4)
            .await
            .unwrap()
            .allowed
    );
    let zero = store
        .quotas
        .try_consume(user.id, QuotaKind::Preview, month(3), 0)
        .await
        .unwrap();
    assert!(!zero.allowed);
    assert_eq!(zero.used, 0);
    assert_eq!(
        store
            .quotas
            .used(user.id, QuotaKind::Preview, month(3))
            .await
            .unwrap(),
        0
    );
    assert_err!(
        store
            .quotas
            .try_consume(Uuid::now_v7(), QuotaKind::Export, month(3), 5)
            .await,
        StoreError::MissingReference { .. }
    );
}

pub async fn concurrent_quota_never_overshoots(ctx: Ctx) {
    let store = ctx.store.clone();
    let user = fixtures::user(&store).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .quotas
                    .try_consume(user.id, QuotaKind::Preview, month(5), 5)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut used = HashSet::new();
    let mut allowed = 0;
    for task in tasks {
        let decision = task.await.unwrap();
        if decision.allowed {
            allowed += 1;
            assert!(
                used.insert(decision.used),
                "each success sees its own count"
            );
        }
    }
    assert_eq!(allowed, 5);
    assert_eq!(
        store
            .quotas
            .used(user.id, QuotaKind::Preview, month(5))
            .await
            .unwrap(),
        5
    );
}
