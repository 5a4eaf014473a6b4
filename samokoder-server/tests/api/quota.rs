//! The monthly allowances of previews, exports and pushes (the routes that spend them arrive
//! with those features; these tests drive the quota service they will call).

use http::StatusCode;
use samokoder_server::quota;
use samokoder_store::{QuotaKind, Tier};

use crate::app::TestApp;

#[tokio::test]
async fn allowances_are_counted_atomically_and_refused_with_402() {
    let app = TestApp::spawn().await;
    let session = app.user().await;
    let store = app.state.store();
    let user = store.users.get(session.user_id).await.unwrap();

    // Free: no previews at all.
    let refused = quota::consume(store, &user, QuotaKind::Preview)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(refused.code(), "quota_exceeded");
    assert_eq!(
        refused.detail(),
        "Feature 'deploy' is not available in your current plan (free). Upgrade to starter to access this feature."
    );

    // Free: two exports a month, even when ten arrive at once.
    let attempts = (0..10).map(|_| quota::consume(store, &user, QuotaKind::Export));
    let outcomes = futures::future::join_all(attempts).await;
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 2);
    let refused = outcomes.into_iter().find_map(Result::err).unwrap();
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        refused.detail(),
        "Monthly export limit reached (2). Upgrade your plan for more exports."
    );
    assert_eq!(
        quota::used_this_month(store, &user, QuotaKind::Export)
            .await
            .unwrap(),
        2
    );

    for _ in 0..5 {
        quota::consume(store, &user, QuotaKind::GitPush)
            .await
            .unwrap();
    }
    let refused = quota::consume(store, &user, QuotaKind::GitPush)
        .await
        .unwrap_err();
    assert_eq!(
        refused.detail(),
        "Monthly git push limit reached (5). Upgrade your plan for more git pushes."
    );

    // Team: unlimited, and still counted.
    store.users.set_tier(user.id, Tier::Team).await.unwrap();
    let team = store.users.get(user.id).await.unwrap();
    for _ in 0..3 {
        quota::consume(store, &team, QuotaKind::Preview)
            .await
            .unwrap();
    }
    assert_eq!(
        quota::used_this_month(store, &team, QuotaKind::Preview)
            .await
            .unwrap(),
        3
    );
    app.stop().await;
}
