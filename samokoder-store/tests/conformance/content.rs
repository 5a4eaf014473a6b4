//! Usage records, notifications, analytics and the audit log.

use chrono::{Duration, NaiveDate, Utc};
use samokoder_store::*;
use serde_json::json;
use uuid::Uuid;

use crate::assert_err;
use crate::fixtures::{self, at};
use crate::harness::Ctx;

fn usage(user: Uuid, provider: &str, model: &str, tokens: i64, cost: i64) -> NewUsageRecord {
    NewUsageRecord {
        user_id: user,
        project_id: None,
        run_id: None,
        provider: provider.into(),
        model: model.into(),
        agent_role: Some("architect".into()),
        counts: TokenCounts {
            prompt_tokens: tokens,
            completion_tokens: tokens / 2,
            cached_tokens: 1,
            cost_micros: cost,
        },
        latency_ms: 850,
        outcome: RequestOutcome::Success,
        at: at(3, 1, 10),
    }
}

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).unwrap()
}

pub async fn usage_records_and_aggregates(ctx: Ctx) {
    let store = &ctx.store;
    let (user, project, run) = fixtures::run(store).await;
    let other = fixtures::user(store).await;
    let mut first = usage(user.id, "openai", "gpt-4.1", 100, 1_000);
    first.project_id = Some(project.id);
    first.run_id = Some(run.id);
    let recorded = store.usage.record(&first).await.unwrap();
    assert_eq!(recorded.counts.total_tokens(), 150);
    for (provider, model, tokens, cost, when) in [
        ("openai", "gpt-4.1", 200, 2_000, at(3, 1, 23)),
        ("openai", "gpt-4.1-mini", 10, 10, at(3, 2, 0)),
        ("anthropic", "claude", 300, 9_000, at(3, 2, 5)),
        ("anthropic", "claude", 40, 400, at(4, 15, 12)),
    ] {
        let mut record = usage(user.id, provider, model, tokens, cost);
        record.at = when;
        store.usage.record(&record).await.unwrap();
    }
    store
        .usage
        .record(&usage(other.id, "openai", "gpt-4.1", 999, 999))
        .await
        .unwrap();

    let march = TimeRange::new(at(3, 1, 0), at(4, 1, 0));
    let listed = store.usage.list(user.id, march, 10).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[0].at, at(3, 2, 5), "newest first");
    assert_eq!(listed[3], recorded);

    let total = store
        .usage
        .aggregate(user.id, TimeRange::all(), UsageGrouping::default())
        .await
        .unwrap();
    assert_eq!(total.len(), 1);
    assert_eq!(total[0].requests, 5);
    assert_eq!(total[0].counts.prompt_tokens, 650);
    assert_eq!(total[0].counts.cost_micros, 12_410);
    assert_eq!(
        (total[0].period_start, total[0].provider.as_deref()),
        (None, None)
    );

    let by_provider = store
        .usage
        .aggregate(
            user.id,
            march,
            UsageGrouping {
                by_provider: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let summary: Vec<_> = by_provider
        .iter()
        .map(|b| {
            (
                b.provider.clone().unwrap(),
                b.requests,
                b.counts.cost_micros,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("anthropic".into(), 1, 9_000), ("openai".into(), 3, 3_010)]
    );

    let by_day_model = store
        .usage
        .aggregate(
            user.id,
            march,
            UsageGrouping {
                by_model: true,
                period: Some(Period::Day),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let summary: Vec<_> = by_day_model
        .iter()
        .map(|b| {
            (
                b.period_start.unwrap(),
                b.model.clone().unwrap(),
                b.requests,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (day(3, 1), "gpt-4.1".to_string(), 2),
            (day(3, 2), "claude".to_string(), 1),
            (day(3, 2), "gpt-4.1-mini".to_string(), 1),
        ]
    );

    let by_month = store
        .usage
        .aggregate(
            user.id,
            TimeRange::all(),
            UsageGrouping {
                period: Some(Period::Month),
                by_provider: true,
                by_model: true,
            },
        )
        .await
        .unwrap();
    let summary: Vec<_> = by_month
        .iter()
        .map(|b| {
            (
                b.period_start.unwrap(),
                b.provider.clone().unwrap(),
                b.requests,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (day(3, 1), "anthropic".to_string(), 1),
            (day(3, 1), "openai".to_string(), 2),
            (day(3, 1), "openai".to_string(), 1),
            (day(4, 1), "anthropic".to_string(), 1),
        ]
    );

    // Usage is billing history: it survives deleting the project (and its runs).
    store.projects.delete(project.id).await.unwrap();
    let kept = store
        .usage
        .list(user.id, TimeRange::all(), 10)
        .await
        .unwrap();
    assert_eq!(kept.len(), 5);
    let orphaned = kept.iter().find(|r| r.id == recorded.id).unwrap();
    assert_eq!((orphaned.project_id, orphaned.run_id), (None, None));
}

pub async fn usage_rejects_bad_input(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    assert_err!(
        store
            .usage
            .record(&usage(user.id, "openai", "m", -1, 0))
            .await,
        StoreError::InvalidInput(_)
    );
    assert_err!(
        store.usage.record(&usage(user.id, "", "m", 1, 0)).await,
        StoreError::InvalidInput(_)
    );
    assert_err!(
        store
            .usage
            .record(&usage(Uuid::now_v7(), "openai", "m", 1, 0))
            .await,
        StoreError::MissingReference { .. }
    );
    let mut with_run = usage(user.id, "openai", "m", 1, 0);
    with_run.run_id = Some(Uuid::now_v7());
    assert_err!(
        store.usage.record(&with_run).await,
        StoreError::MissingReference { .. }
    );
    assert_err!(
        store
            .usage
            .list(user.id, TimeRange::new(at(4, 1, 0), at(3, 1, 0)), 10)
            .await,
        StoreError::InvalidInput(_)
    );
}

fn notification(user: Uuid, title: &str) -> NewNotification {
    NewNotification {
        user_id: user,
        kind: "run_completed".into(),
        title: title.into(),
        body: "Your app is ready".into(),
        data: json!({"run": "r1"}),
    }
}

pub async fn notifications_lifecycle(ctx: Ctx) {
    let store = &ctx.store;
    let user = fixtures::user(store).await;
    let other = fixtures::user(store).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            store
                .notifications
                .create(&notification(user.id, &format!("n{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    store
        .notifications
        .create(&notification(other.id, "theirs"))
        .await
        .unwrap();
    let query = NotificationQuery {
        user_id: user.id,
        unread_only: false,
        before: None,
        limit: 10,
    };
    let all = store.notifications.list(&query).await.unwrap();
    let listed: Vec<_> = all.iter().map(|n| n.id).collect();
    assert_eq!(
        listed,
        ids.iter().rev().copied().collect::<Vec<_>>(),
        "newest first"
    );
    assert_eq!(all[0].data, json!({"run": "r1"}));
    assert!(all.iter().all(|n| n.read_at.is_none()));

    let older = store
        .notifications
        .list(&NotificationQuery {
            before: Some(ids[2]),
            ..query
        })
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|n| n.id).collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );

    store
        .notifications
        .mark_read(user.id, ids[0])
        .await
        .unwrap();
    store
        .notifications
        .mark_read(user.id, ids[0])
        .await
        .expect("marking read twice is fine");
    assert_err!(
        store.notifications.mark_read(other.id, ids[1]).await,
        StoreError::NotFound { .. }
    );
    assert_eq!(store.notifications.unread_count(user.id).await.unwrap(), 3);
    let unread = store
        .notifications
        .list(&NotificationQuery {
            unread_only: true,
            ..query
        })
        .await
        .unwrap();
    assert_eq!(unread.len(), 3);
    assert!(!unread.iter().any(|n| n.id == ids[0]));

    assert_eq!(store.notifications.mark_all_read(user.id).await.unwrap(), 3);
    assert_eq!(store.notifications.unread_count(user.id).await.unwrap(), 0);
    assert_eq!(store.notifications.unread_count(other.id).await.unwrap(), 1);

    store.notifications.delete(user.id, ids[3]).await.unwrap();
    assert_err!(
        store.notifications.delete(user.id, ids[3]).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .notifications
            .create(&notification(Uuid::now_v7(), "x"))
            .await,
        StoreError::MissingReference { .. }
    );
}

pub async fn analytics_record_aggregate_export_purge(ctx: Ctx) {
    let store = &ctx.store;
    let alice = Uuid::now_v7();
    let bob = Uuid::now_v7();
    let events = [
        (Some(alice), "project_created", at(3, 1, 1)),
        (Some(alice), "project_created", at(3, 2, 1)),
        (Some(alice), "export", at(3, 3, 1)),
        (Some(bob), "project_created", at(3, 3, 2)),
        (None, "server_started", at(3, 4, 1)),
        (Some(alice), "export", at(5, 1, 1)),
    ];
    let mut recorded = Vec::new();
    for (n, (user, name, when)) in events.into_iter().enumerate() {
        let event = store
            .analytics
            .record(&NewAnalyticsEvent {
                user_id: user,
                name: name.into(),
                properties: json!({ "n": n }),
                at: when,
            })
            .await
            .unwrap();
        recorded.push(event);
    }
    let march = TimeRange::new(at(3, 1, 0), at(4, 1, 0));
    let listed = store
        .analytics
        .list_for_user(alice, march, 10)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|e| e.at).collect::<Vec<_>>(),
        [at(3, 3, 1), at(3, 2, 1), at(3, 1, 1)]
    );
    assert_eq!(listed[2], recorded[0]);

    let counts = store.analytics.counts_for_user(alice, march).await.unwrap();
    assert_eq!(
        counts,
        [
            EventCount {
                name: "project_created".into(),
                count: 2
            },
            EventCount {
                name: "export".into(),
                count: 1
            },
        ]
    );

    let summary = store.analytics.summary(march).await.unwrap();
    assert_eq!(summary.total_events, 5);
    assert_eq!(summary.distinct_users, 2, "anonymous events are not a user");
    assert_eq!(
        summary.by_name[0],
        EventCount {
            name: "project_created".into(),
            count: 3
        }
    );

    // Export pages through everything, oldest id first, each event once.
    let mut exported = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .analytics
            .export(TimeRange::all(), after, 4)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|e| e.id);
        exported.extend(page);
    }
    assert_eq!(exported, recorded);

    assert_eq!(store.analytics.purge_before(at(3, 3, 0)).await.unwrap(), 2);
    assert_eq!(
        store
            .analytics
            .summary(TimeRange::all())
            .await
            .unwrap()
            .total_events,
        4
    );
    assert_err!(
        store
            .analytics
            .record(&NewAnalyticsEvent {
                user_id: None,
                name: " ".into(),
                properties: json!({}),
                at: Utc::now(),
            })
            .await,
        StoreError::InvalidInput(_)
    );
}

pub async fn audit_append_and_list(ctx: Ctx) {
    let store = &ctx.store;
    let admin = Uuid::now_v7();
    let user = Uuid::now_v7();
    let entries = [
        (Some(user), Some(user), AuditAction::Login),
        (None, Some(user), AuditAction::LoginFailed),
        (None, Some(user), AuditAction::Lockout),
        (Some(user), Some(user), AuditAction::TokenReuse),
        (Some(user), Some(user), AuditAction::KeyStored),
        (Some(admin), Some(user), AuditAction::AdminAction),
        (Some(admin), None, AuditAction::KeysResealed),
    ];
    let mut ids = Vec::new();
    for (actor, subject, action) in entries {
        let entry = store
            .audit
            .append(&NewAuditEntry {
                actor_id: actor,
                subject_id: subject,
                action,
                client: Some("203.0.113.7".into()),
                detail: json!({"why": action.as_str()}),
                at: Utc::now() - Duration::seconds(1),
            })
            .await
            .unwrap();
        ids.push(entry.id);
    }
    let query = AuditQuery {
        user_id: None,
        action: None,
        before: None,
        limit: 100,
    };
    let all = store.audit.list(&query).await.unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all[0].id, ids[6], "newest first");
    assert_eq!(all[6].detail, json!({"why": "login"}));

    let about_user = store
        .audit
        .list(&AuditQuery {
            user_id: Some(user),
            ..query
        })
        .await
        .unwrap();
    assert_eq!(about_user.len(), 6, "as actor or as subject");
    let by_admin = store
        .audit
        .list(&AuditQuery {
            user_id: Some(admin),
            ..query
        })
        .await
        .unwrap();
    assert_eq!(by_admin.len(), 2);
    let lockouts = store
        .audit
        .list(&AuditQuery {
            action: Some(AuditAction::Lockout),
            ..query
        })
        .await
        .unwrap();
    assert_eq!(lockouts.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[2]]);
    let page = store
        .audit
        .list(&AuditQuery {
            before: Some(ids[3]),
            limit: 2,
            ..query
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
}
