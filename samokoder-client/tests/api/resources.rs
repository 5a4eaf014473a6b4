//! The other resources: health, models, keys, usage, user, notifications, analytics, admin.

use reqwest::StatusCode;
use samokoder_client::api::analytics::{RecordActionRequest, UserActionsQuery};
use samokoder_client::api::keys::{ApiKeyCreateRequest, ApiKeySettingsRequest};
use samokoder_client::api::notifications::{NotificationListQuery, TestNotificationRequest};
use samokoder_client::api::usage::{UsagePeriodsQuery, UsageRangeQuery};
use samokoder_client::api::{HealthStatus, Tier};

use crate::helpers::spawn;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = spawn().await;
    let client = server.client();
    let health = client.health().await.unwrap();
    assert_eq!(health.status, HealthStatus::Ok);
    assert_eq!(health.version, samokoder_server::VERSION);
    let ready = client.ready().await.unwrap();
    assert_eq!(ready.status, HealthStatus::Ok);
    assert!(ready.checks.iter().any(|check| check.name == "database"));
    let metrics = client.metrics().await.unwrap();
    assert!(metrics.contains("# TYPE"), "{metrics}");
}

#[tokio::test]
async fn metrics_behind_a_scrape_token() {
    let (dir, mut config) = crate::helpers::config();
    let token = "scrape-4c1e0b9a7d2f4e6b8a1c3d5e7f9a0b2c";
    config.metrics.token = Some(token.into());
    let server = crate::helpers::spawn_with(dir, config).await;
    let client = server.client();
    let refused = client.metrics().await.unwrap_err();
    assert_eq!(refused.code(), Some("metrics_token_invalid"), "{refused}");
    assert_eq!(refused.status(), Some(StatusCode::UNAUTHORIZED));
    let wrong = client.metrics_with_token("not-it").await.unwrap_err();
    assert_eq!(wrong.code(), Some("metrics_token_invalid"), "{wrong}");
    let metrics = client.metrics_with_token(token).await.unwrap();
    assert!(metrics.contains("# TYPE"), "{metrics}");
    assert!(client.metrics_with_token("line\nbreak").await.is_err());
}

#[tokio::test]
async fn the_model_catalogue_needs_no_session() {
    let server = spawn().await;
    let client = server.client();
    let models = client.models().list().await.unwrap();
    let (provider, listed) = models.iter().next().expect("a provider");
    let one = client.models().provider(provider).await.unwrap();
    assert_eq!(&one, listed);
    let error = client
        .models()
        .provider("no-such-provider")
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");
}

#[tokio::test]
async fn keys_are_stored_masked_updated_and_deleted() {
    let server = spawn().await;
    let client = server.user("la").await;
    let stored = client
        .keys()
        .put(&ApiKeyCreateRequest {
            provider: "openai".into(),
            api_key: "sk-test-0123456789abcdef".into(),
            label: Some("work".into()),
            model: Some("gpt-4o-mini".into()),
            base_url: None,
            settings: None,
        })
        .await
        .unwrap();
    assert_eq!(stored.last_four, "cdef");
    let listed = client.keys().list().await.unwrap();
    assert_eq!(listed, vec![stored.clone()]);
    let printed = format!("{listed:?}");
    assert!(!printed.contains("0123456789"), "{printed}");

    let updated = client
        .keys()
        .update_settings(
            "openai",
            &ApiKeySettingsRequest {
                model: Some("gpt-4o".into()),
                ..ApiKeySettingsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.model.as_deref(), Some("gpt-4o"));
    assert_eq!(updated.last_four, "cdef");

    assert!(client.keys().usage().await.unwrap().is_empty());
    assert!(
        client
            .keys()
            .provider_usage("openai")
            .await
            .unwrap()
            .is_empty()
    );

    client.keys().delete("openai").await.unwrap();
    assert!(client.keys().list().await.unwrap().is_empty());
    assert!(
        client
            .keys()
            .delete("openai")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn usage_of_a_new_account_is_zero_everywhere() {
    let server = spawn().await;
    let client = server.user("ma").await;
    let range = UsageRangeQuery::default();
    assert!(
        client
            .usage()
            .tokens(&range)
            .await
            .unwrap()
            .usage
            .is_empty()
    );
    assert_eq!(
        client
            .usage()
            .summary(&range)
            .await
            .unwrap()
            .totals
            .requests,
        0
    );
    assert!(
        client
            .usage()
            .periods(&UsagePeriodsQuery {
                by_model: Some(true),
                ..UsagePeriodsQuery::default()
            })
            .await
            .unwrap()
            .buckets
            .is_empty()
    );
    let provider = client.usage().provider("openai", &range).await.unwrap();
    assert_eq!(provider.totals.total_requests, 0);
    let model = client
        .usage()
        .model("openrouter", "meta/llama-3", &range)
        .await
        .unwrap();
    assert_eq!(
        model.model, "meta/llama-3",
        "a model id with a slash stays one segment"
    );
}

#[tokio::test]
async fn profile_tier_and_vcs_tokens() {
    let server = spawn().await;
    let client = server.user("na").await;
    let profile = client.user().profile().await.unwrap();
    assert_eq!(profile.email, "na@example.com");
    assert_eq!(client.user().tier().await.unwrap().tier, Tier::Free);
    client
        .user()
        .set_github_token("ghp_0123456789abcdefghij")
        .await
        .unwrap();
    client
        .user()
        .set_gitverse_token("gv_0123456789abcdefghij")
        .await
        .unwrap();
}

#[tokio::test]
async fn notifications_round_trip() {
    let server = spawn().await;
    let client = server.user("oa").await;
    let sent = client
        .notifications()
        .send_test(&TestNotificationRequest {
            title: "Hello".into(),
            message: "From the client".into(),
            data: None,
        })
        .await
        .unwrap();
    let list = client
        .notifications()
        .list(&NotificationListQuery {
            unread_only: Some(true),
            ..NotificationListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(list.unread_count, 1);
    assert_eq!(list.notifications[0].id, sent.id);
    client.notifications().mark_read(sent.id).await.unwrap();
    assert_eq!(
        client
            .notifications()
            .mark_all_read()
            .await
            .unwrap()
            .updated,
        0
    );
    client.notifications().delete(sent.id).await.unwrap();
    assert!(
        client
            .notifications()
            .list(&NotificationListQuery::default())
            .await
            .unwrap()
            .notifications
            .is_empty()
    );
}

#[tokio::test]
async fn analytics_and_the_admin_only_parts() {
    let server = spawn().await;
    let client = server.user("pa").await;
    client
        .analytics()
        .record(&RecordActionRequest {
            action: "client.test".into(),
            details: Some(serde_json::json!({"ok": true})),
            project_id: None,
        })
        .await
        .unwrap();
    let mine = client.analytics().user().await.unwrap();
    assert!(mine.metrics.actions_by_type.contains_key("client.test"));
    let actions = client
        .analytics()
        .user_actions(&UserActionsQuery { limit: Some(5) })
        .await
        .unwrap();
    assert!(actions.logs.iter().any(|log| log.action == "client.test"));

    for error in [
        client.analytics().system().await.unwrap_err(),
        client
            .analytics()
            .export(&Default::default())
            .await
            .unwrap_err(),
        client
            .admin()
            .set_tier(mine.user_id, Tier::Pro)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(error.status(), Some(StatusCode::FORBIDDEN), "{error}");
    }

    let admin = server.user("pb").await;
    server.make_admin("pb@example.com").await;
    assert!(
        admin
            .analytics()
            .system()
            .await
            .unwrap()
            .metrics
            .total_users
            >= 2
    );
    let page = admin.analytics().export(&Default::default()).await.unwrap();
    assert!(
        page.action_logs
            .iter()
            .any(|log| log.action == "client.test")
    );
    let promoted = admin
        .admin()
        .set_tier(mine.user_id, Tier::Pro)
        .await
        .unwrap();
    assert_eq!(promoted.tier, Tier::Pro);
    assert_eq!(client.user().tier().await.unwrap().tier, Tier::Pro);
}
