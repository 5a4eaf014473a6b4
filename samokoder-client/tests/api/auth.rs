//! Sessions: registration, login, the current user, refresh on 401, restore, logout.

use std::sync::{Arc, Mutex};

use samokoder_client::{AuthMode, Client, Session};

use crate::helpers::{PASSWORD, revoke_access_token, spawn};

#[tokio::test]
async fn register_login_me_and_logout() {
    let server = spawn().await;
    let client = server.client();
    let registered = client
        .auth()
        .register("Ada@Example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(registered.email, "ada@example.com");
    let session = client.session().expect("registration starts a session");
    assert_eq!(session.user_id(), Some(registered.user_id));

    let me = client.auth().me().await.unwrap();
    assert_eq!(me.id, registered.user_id);
    assert_eq!(me.projects_count, 0);

    let other = server.client();
    let login = other
        .auth()
        .login("ada@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(login.user_id, registered.user_id);
    assert_ne!(
        other.session().unwrap().refresh_token(),
        session.refresh_token(),
        "a login is a session of its own"
    );

    client.auth().logout().await.unwrap();
    assert!(client.session().is_none());
    let error = client.auth().me().await.unwrap_err();
    assert!(error.is_unauthorized(), "{error}");
    // The old session's tokens are dead on the server, not only forgotten here.
    let restored = Client::builder(server.url())
        .session(session)
        .build()
        .unwrap();
    let error = restored.auth().me().await.unwrap_err();
    assert!(error.is_unauthorized(), "{error}");
    // The other session lives on.
    other.auth().me().await.unwrap();
}

#[tokio::test]
async fn a_revoked_access_token_is_refreshed_once_and_the_call_repeated() {
    let server = spawn().await;
    let changes: Arc<Mutex<Vec<Option<Session>>>> = Arc::default();
    let sink = changes.clone();
    let client = Client::builder(server.url())
        .on_session_change(move |session| sink.lock().unwrap().push(session.cloned()))
        .build()
        .unwrap();
    client
        .auth()
        .register("bo@example.com", PASSWORD)
        .await
        .unwrap();
    let first = client.session().unwrap();
    revoke_access_token(&server, first.access_token()).await;

    let me = client.auth().me().await.unwrap();
    assert_eq!(me.email, "bo@example.com");
    let second = client.session().unwrap();
    assert_ne!(second.access_token(), first.access_token());
    assert_ne!(second.refresh_token(), first.refresh_token());
    let seen = changes.lock().unwrap().clone();
    assert_eq!(seen, vec![Some(first.clone()), Some(second.clone())]);

    // The spent refresh token is really spent: presenting it again ends the session, which
    // is exactly what the client must never do by itself.
    let thief = Client::builder(server.url())
        .session(first)
        .build()
        .unwrap();
    let error = thief.auth().me().await.unwrap_err();
    assert_eq!(error.code(), Some("refresh_token_reused"), "{error}");
    assert!(
        thief.session().is_none(),
        "a refused refresh forgets the session"
    );
}

#[tokio::test]
async fn concurrent_401s_share_one_refresh() {
    let server = spawn().await;
    let refreshes = Arc::new(Mutex::new(0));
    let counter = refreshes.clone();
    let client = Client::builder(server.url())
        .on_session_change(move |_| *counter.lock().unwrap() += 1)
        .build()
        .unwrap();
    client
        .auth()
        .register("cy@example.com", PASSWORD)
        .await
        .unwrap();
    let before = client.session().unwrap();
    revoke_access_token(&server, before.access_token()).await;

    let calls = (0..8).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.auth().me().await })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap()
            .expect("every call succeeds after the shared refresh");
    }
    // Registration, then exactly one refresh: a second refresh with the same token would
    // have been taken for theft and ended the session.
    assert_eq!(*refreshes.lock().unwrap(), 2);
    client.auth().me().await.unwrap();
    assert_ne!(client.session().unwrap(), before);
}

#[tokio::test]
async fn an_explicit_refresh_rotates_and_a_session_restores() {
    let server = spawn().await;
    let client = server.user("di").await;
    let before = client.session().unwrap();
    let renewed = client.auth().refresh().await.unwrap();
    assert_ne!(renewed.refresh_token, before.refresh_token());

    // What the CLI does: save, then start another client from the saved copy.
    let saved = serde_json::to_string(&client.session().unwrap()).unwrap();
    let restored = Client::builder(server.url())
        .session(serde_json::from_str(&saved).unwrap())
        .build()
        .unwrap();
    assert_eq!(restored.auth().me().await.unwrap().email, "di@example.com");

    let anonymous = server.client();
    assert!(matches!(
        anonymous.auth().refresh().await,
        Err(samokoder_client::Error::NotLoggedIn)
    ));
}

#[tokio::test]
async fn an_ended_session_fails_with_the_refresh_error_and_is_forgotten() {
    let server = spawn().await;
    let client = server.user("ed").await;
    let copy = Client::builder(server.url())
        .session(client.session().unwrap())
        .build()
        .unwrap();
    let ended = copy.auth().logout_all().await.unwrap();
    assert_eq!(ended.sessions_revoked, 1);
    assert!(copy.session().is_none());

    let error = client.auth().me().await.unwrap_err();
    assert!(error.is_unauthorized(), "{error}");
    assert_eq!(error.code(), Some("invalid_refresh_token"));
    assert!(client.session().is_none());
}

#[tokio::test]
async fn cookie_mode_sends_the_access_cookie_and_refreshes_too() {
    let server = spawn().await;
    let client = Client::builder(server.url())
        .auth_mode(AuthMode::Cookies)
        .build()
        .unwrap();
    client
        .auth()
        .register("fa@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(client.auth().me().await.unwrap().email, "fa@example.com");
    let before = client.session().unwrap();
    revoke_access_token(&server, before.access_token()).await;
    client.auth().me().await.unwrap();
    assert_ne!(client.session().unwrap(), before);
}

#[tokio::test]
async fn change_password_continues_with_the_new_session() {
    let server = spawn().await;
    let client = server.user("gu").await;
    let bystander = Client::builder(server.url())
        .session(client.session().unwrap())
        .build()
        .unwrap();
    client
        .auth()
        .change_password(PASSWORD, "Another-Horse-8?")
        .await
        .unwrap();
    client.auth().me().await.unwrap();
    // Every other session ended.
    assert!(bystander.auth().me().await.unwrap_err().is_unauthorized());
    let fresh = server.client();
    fresh
        .auth()
        .login("gu@example.com", "Another-Horse-8?")
        .await
        .unwrap();
}
