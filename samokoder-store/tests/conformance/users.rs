//! Users, and the `samokoder-auth` ports: refresh families, revocation, login attempts.

use std::sync::Arc;

use chrono::{Duration, Utc};
use samokoder_auth::ports::{RefreshFamily, TokenRef};
use samokoder_store::*;
use uuid::Uuid;

use crate::assert_err;
use crate::fixtures;
use crate::harness::Ctx;

pub async fn create_get_find(ctx: Ctx) {
    let store = &ctx.store;
    let mut new = NewUser::new("  Alice@Example.COM ", "hash-1");
    new.tier = Tier::Pro;
    new.is_admin = true;
    let created = store.users.create(&new).await.unwrap();
    assert_eq!(
        created.email, "Alice@Example.COM",
        "stored trimmed, case kept"
    );
    assert_eq!(created.tier, Tier::Pro);
    assert!(created.is_admin);
    assert_eq!(created.id.get_version_num(), 7, "ids are UUID v7");

    let loaded = store.users.get(created.id).await.unwrap();
    assert_eq!(
        loaded, created,
        "round trip is exact (times in microseconds)"
    );

    let found = store
        .users
        .find_by_email("alice@example.com")
        .await
        .unwrap();
    assert_eq!(found.map(|u| u.id), Some(created.id));
    let found = store
        .users
        .find_by_email(" ALICE@EXAMPLE.COM")
        .await
        .unwrap();
    assert_eq!(found.map(|u| u.id), Some(created.id));
    assert!(
        store
            .users
            .find_by_email("bob@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn email_unique_ignoring_case(ctx: Ctx) {
    let store = &ctx.store;
    store
        .users
        .create(&NewUser::new("Ёлка@Example.com", "h"))
        .await
        .unwrap();
    assert_err!(
        store
            .users
            .create(&NewUser::new("ёлка@example.COM", "h"))
            .await,
        StoreError::Conflict { .. }
    );
    assert_eq!(store.users.count().await.unwrap(), 1);
}

pub async fn rejects_invalid_users(ctx: Ctx) {
    let store = &ctx.store;
    assert_err!(
        store.users.create(&NewUser::new("   ", "h")).await,
        StoreError::InvalidInput(_)
    );
    assert_err!(
        store.users.create(&NewUser::new("no-at-sign", "h")).await,
        StoreError::InvalidInput(_)
    );
    assert_err!(
        store.users.create(&NewUser::new("a@b", "")).await,
        StoreError::InvalidInput(_)
    );
    let long = format!("{}@example.com", "x".repeat(400));
    assert_err!(
        store.users.create(&NewUser::new(long, "h")).await,
        StoreError::InvalidInput(_)
    );
}

pub async fn updates_and_not_found(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    store.users.set_tier(user.id, Tier::Team).await.unwrap();
    store.users.set_admin(user.id, true).await.unwrap();
    store
        .users
        .set_password_hash(user.id, "hash-2")
        .await
        .unwrap();
    let loaded = store.users.get(user.id).await.unwrap();
    assert_eq!(loaded.tier, Tier::Team);
    assert!(loaded.is_admin);
    assert_eq!(loaded.password_hash, "hash-2");
    assert!(loaded.updated_at > user.updated_at);
    assert_eq!(loaded.created_at, user.created_at);

    let missing = Uuid::now_v7();
    assert_err!(store.users.get(missing).await, StoreError::NotFound { .. });
    assert_err!(
        store.users.set_tier(missing, Tier::Pro).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.users.set_admin(missing, true).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.users.set_password_hash(missing, "h").await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.users.delete(missing).await,
        StoreError::NotFound { .. }
    );
}

pub async fn list_count_and_delete_cascades(ctx: Ctx) {
    let store = &ctx.store;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(fixtures::user(store).await.id);
    }
    assert_eq!(store.users.count().await.unwrap(), 5);
    let first = store.users.list(0, 3).await.unwrap();
    let rest = store.users.list(3, 3).await.unwrap();
    let listed: Vec<_> = first.iter().chain(&rest).map(|u| u.id).collect();
    assert_eq!(listed, ids, "oldest first, offset paging");
    assert_err!(store.users.list(0, 0).await, StoreError::InvalidInput(_));

    // Deleting a user takes their projects, runs and keys along; audit entries stay.
    let (user, project, run) = fixtures::run(store).await;
    store
        .audit
        .append(&NewAuditEntry {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            action: AuditAction::AccountCreated,
            client: None,
            detail: serde_json::json!({}),
            at: Utc::now(),
        })
        .await
        .unwrap();
    store.users.delete(user.id).await.unwrap();
    assert_err!(
        store.projects.get(project.id).await,
        StoreError::NotFound { .. }
    );
    assert_err!(store.runs.get(run.id).await, StoreError::NotFound { .. });
    let audit = store
        .audit
        .list(&AuditQuery {
            user_id: Some(user.id),
            action: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "the audit log outlives the account");
}

fn family(user_id: Uuid, jti: Uuid) -> RefreshFamily {
    RefreshFamily {
        family_id: Uuid::now_v7(),
        user_id,
        current_jti: jti,
        expires_at: Utc::now() + Duration::days(30),
        revoked_at: None,
    }
}

pub async fn refresh_family_rotation(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    let first_jti = Uuid::now_v7();
    let fam = family(user.id, first_jti);
    store.refresh_families.create_family(&fam).await.unwrap();
    let loaded = store
        .refresh_families
        .family(fam.family_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.current_jti, first_jti);
    assert_eq!(loaded.expires_at, truncate_micros(fam.expires_at));
    assert!(
        store
            .refresh_families
            .family(Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );

    let second_jti = Uuid::now_v7();
    let expiry = Utc::now() + Duration::days(31);
    assert!(
        store
            .refresh_families
            .rotate(fam.family_id, first_jti, second_jti, expiry)
            .await
            .unwrap()
    );
    // Replaying the old token: the swap no longer matches.
    assert!(
        !store
            .refresh_families
            .rotate(fam.family_id, first_jti, Uuid::now_v7(), expiry)
            .await
            .unwrap()
    );
    let loaded = store
        .refresh_families
        .family(fam.family_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.current_jti, second_jti);

    let revoked_at = Utc::now();
    store
        .refresh_families
        .revoke_family(fam.family_id, revoked_at)
        .await
        .unwrap();
    store
        .refresh_families
        .revoke_family(fam.family_id, revoked_at + Duration::hours(1))
        .await
        .expect("revoking twice is fine");
    let loaded = store
        .refresh_families
        .family(fam.family_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        loaded.revoked_at,
        Some(truncate_micros(revoked_at)),
        "first revocation kept"
    );
    assert!(
        !store
            .refresh_families
            .rotate(fam.family_id, second_jti, Uuid::now_v7(), expiry)
            .await
            .unwrap(),
        "a revoked family never rotates"
    );

    // Logout everywhere.
    for _ in 0..3 {
        store
            .refresh_families
            .create_family(&family(user.id, Uuid::now_v7()))
            .await
            .unwrap();
    }
    let count = store
        .refresh_families
        .revoke_user_families(user.id, Utc::now())
        .await
        .unwrap();
    assert_eq!(count, 3, "only the families not already revoked");

    // A family for a user that does not exist is refused (foreign key).
    assert!(
        store
            .refresh_families
            .create_family(&family(Uuid::now_v7(), Uuid::now_v7()))
            .await
            .is_err()
    );
}

pub async fn concurrent_rotate_has_one_winner(ctx: Ctx) {
    let store = ctx.store.clone();
    let user = fixtures::user(&store).await;
    let jti = Uuid::now_v7();
    let fam = family(user.id, jti);
    store.refresh_families.create_family(&fam).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .refresh_families
                    .rotate(
                        fam.family_id,
                        jti,
                        Uuid::now_v7(),
                        Utc::now() + Duration::days(1),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent refresh wins");
}

pub async fn token_revocation(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    let issued = Utc::now() - Duration::minutes(5);
    let token = TokenRef {
        jti: Uuid::now_v7(),
        user_id: user.id,
        issued_at: issued,
    };
    assert!(!store.revocations.is_revoked(&token).await.unwrap());

    assert!(
        store
            .revocations
            .revoke_token(token.jti, Utc::now() + Duration::minutes(10))
            .await
            .unwrap(),
        "the first revocation says so"
    );
    assert!(
        !store
            .revocations
            .revoke_token(token.jti, Utc::now() + Duration::minutes(5))
            .await
            .expect("revoking twice is fine"),
        "the second finds it revoked"
    );
    assert!(store.revocations.is_revoked(&token).await.unwrap());
    // Of concurrent revocations of one id, exactly one is the first (single-use tokens rely
    // on it across server processes).
    let contested = Uuid::now_v7();
    let firsts = futures::future::join_all((0..16).map(|_| {
        store
            .revocations
            .revoke_token(contested, Utc::now() + Duration::minutes(10))
    }))
    .await
    .into_iter()
    .filter(|first| *first.as_ref().unwrap())
    .count();
    assert_eq!(firsts, 1);

    // "Revoke everything issued at or before the mark".
    let other = TokenRef {
        jti: Uuid::now_v7(),
        ..token
    };
    assert!(!store.revocations.is_revoked(&other).await.unwrap());
    store
        .revocations
        .revoke_user_tokens_before(user.id, issued)
        .await
        .unwrap();
    assert!(
        store.revocations.is_revoked(&other).await.unwrap(),
        "issued at the mark"
    );
    let newer = TokenRef {
        jti: Uuid::now_v7(),
        issued_at: issued + Duration::seconds(1),
        ..token
    };
    assert!(!store.revocations.is_revoked(&newer).await.unwrap());
    // An older mark does not move it back.
    store
        .revocations
        .revoke_user_tokens_before(user.id, issued - Duration::hours(1))
        .await
        .unwrap();
    assert!(store.revocations.is_revoked(&other).await.unwrap());
    let user = store.users.get(user.id).await.unwrap();
    assert_eq!(user.tokens_revoked_before, Some(truncate_micros(issued)));

    // Fail closed: tokens of a user that does not exist are revoked.
    let ghost = TokenRef {
        jti: Uuid::now_v7(),
        user_id: Uuid::now_v7(),
        issued_at: Utc::now(),
    };
    assert!(store.revocations.is_revoked(&ghost).await.unwrap());
}

pub async fn login_failures_forgiven_after_success(ctx: Ctx) {
    let store = &ctx.store;
    let account = "alice@example.com";
    let t0 = Utc::now() - Duration::minutes(30);
    let record = |client: &'static str, ok: bool, minutes: i64| {
        let store = store.clone();
        async move {
            store
                .login_attempts
                .record_attempt(account, client, ok, t0 + Duration::minutes(minutes))
                .await
                .unwrap();
        }
    };
    record("10.0.0.1", false, 0).await;
    record("10.0.0.2", false, 1).await;
    record("10.0.0.1", false, 2).await;
    record("10.0.0.1", true, 3).await; // forgives 10.0.0.1's earlier failures
    record("10.0.0.2", false, 4).await;
    record("10.0.0.1", false, 5).await; // a failure after the success still counts
    store
        .login_attempts
        .record_attempt("bob@example.com", "10.0.0.9", false, t0)
        .await
        .unwrap();

    let failures = store
        .login_attempts
        .recent_failures(account, t0, 10)
        .await
        .unwrap();
    let seen: Vec<_> = failures.iter().map(|f| f.client.as_str()).collect();
    assert_eq!(seen, ["10.0.0.1", "10.0.0.2", "10.0.0.2"], "newest first");
    assert_eq!(failures[0].at, truncate_micros(t0 + Duration::minutes(5)));

    let limited = store
        .login_attempts
        .recent_failures(account, t0, 2)
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    let since = store
        .login_attempts
        .recent_failures(account, t0 + Duration::minutes(4), 10)
        .await
        .unwrap();
    assert_eq!(since.len(), 2, "only failures at or after `since`");
}

pub async fn session_purges(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    let now = Utc::now();
    let mut expired = family(user.id, Uuid::now_v7());
    expired.expires_at = now - Duration::minutes(1);
    store
        .refresh_families
        .create_family(&expired)
        .await
        .unwrap();
    let live = family(user.id, Uuid::now_v7());
    store.refresh_families.create_family(&live).await.unwrap();
    let old_jti = Uuid::now_v7();
    store
        .revocations
        .revoke_token(old_jti, now - Duration::minutes(1))
        .await
        .unwrap();
    let live_jti = Uuid::now_v7();
    store
        .revocations
        .revoke_token(live_jti, now + Duration::minutes(10))
        .await
        .unwrap();

    let purged = store.sessions.purge_expired(now).await.unwrap();
    assert_eq!(
        purged,
        SessionPurge {
            revoked_tokens: 1,
            refresh_families: 1
        }
    );
    assert!(
        store
            .refresh_families
            .family(expired.family_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .refresh_families
            .family(live.family_id)
            .await
            .unwrap()
            .is_some()
    );
    let live_ref = TokenRef {
        jti: live_jti,
        user_id: user.id,
        issued_at: now - Duration::minutes(1),
    };
    assert!(store.revocations.is_revoked(&live_ref).await.unwrap());
    assert_eq!(
        store.sessions.purge_expired(now).await.unwrap(),
        SessionPurge::default(),
        "a second purge finds nothing"
    );

    for minutes in [120, 90, 10] {
        store
            .login_attempts
            .record_attempt("a@b", "1.1.1.1", false, now - Duration::minutes(minutes))
            .await
            .unwrap();
    }
    let removed = store
        .sessions
        .purge_login_attempts(now - Duration::minutes(60))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let left = store
        .login_attempts
        .recent_failures("a@b", now - Duration::days(1), 10)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
}

pub async fn concurrent_same_email_has_one_winner(ctx: Ctx) {
    let store = ctx.store.clone();
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            // The same address in 50 spellings that differ only in case.
            let email: String = "racer@example.com"
                .chars()
                .enumerate()
                .map(|(j, c)| {
                    if (i >> (j % 6)) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            tokio::spawn(async move {
                barrier.wait().await;
                store.users.create(&NewUser::new(email, "h")).await
            })
        })
        .collect();
    let (mut won, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!((won, conflicts), (1, 49));
    assert_eq!(store.users.count().await.unwrap(), 1);
}
