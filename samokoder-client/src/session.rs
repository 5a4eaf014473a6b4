//! The login session a client holds: its tokens, how they are shared between concurrent
//! requests, and how a refresh is made at most once per rotation.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use samokoder_core::api::auth::AuthResponse;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A login session: the access token the requests carry and the refresh token that renews
/// it. Serializable so a program can keep it between runs (the CLI saves it with mode 0600);
/// `Debug` never prints the tokens.
///
/// Refresh tokens **rotate**: each works once, and presenting a used one ends the whole
/// session on the server. A saved session must therefore be saved again whenever the client
/// refreshes it — see [`ClientBuilder::on_session_change`](crate::ClientBuilder::on_session_change).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    access_token: String,
    refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

impl Session {
    /// A session from tokens obtained elsewhere.
    pub fn new(access_token: impl Into<String>, refresh_token: impl Into<String>) -> Self {
        Self {
            access_token: access_token.into(),
            refresh_token: refresh_token.into(),
            user_id: None,
            email: None,
        }
    }

    /// The access token (a JWT), sent as `Authorization: Bearer`.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The refresh token; each works once.
    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }

    /// The user the session belongs to, when the server said so.
    pub fn user_id(&self) -> Option<Uuid> {
        self.user_id
    }

    /// The user's e-mail address, when the server said so.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

impl From<&AuthResponse> for Session {
    fn from(response: &AuthResponse) -> Self {
        Self {
            access_token: response.access_token.clone(),
            refresh_token: response.refresh_token.clone(),
            user_id: Some(response.user_id),
            email: Some(response.email.clone()),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Called with the new session (or `None` after a logout or a failed refresh) whenever it
/// changes.
pub(crate) type SessionListener = Arc<dyn Fn(Option<&Session>) + Send + Sync>;

/// The session a client and its clones share, with a generation number that grows on every
/// change. A request remembers the generation it was sent with; when it comes back 401, only
/// a request whose generation is still current refreshes — the others just retry with the
/// token the first one obtained. That, and the lock around refreshing, is what keeps two
/// concurrent 401s from presenting the same refresh token twice (which the server would take
/// for theft and end the session).
pub(crate) struct SessionCell {
    state: Mutex<State>,
    /// Held across a whole refresh round trip.
    pub(crate) refresh_lock: tokio::sync::Mutex<()>,
    /// Held while a change is made and told.
    notify: Mutex<()>,
    listener: Option<SessionListener>,
}

struct State {
    session: Option<Session>,
    generation: u64,
}

/// What a request was sent with. (No `Debug`: it holds the tokens.)
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) access_token: Option<String>,
    pub(crate) refresh_token: Option<String>,
}

impl SessionCell {
    pub(crate) fn new(session: Option<Session>, listener: Option<SessionListener>) -> Self {
        Self {
            state: Mutex::new(State {
                session,
                generation: 0,
            }),
            refresh_lock: tokio::sync::Mutex::new(()),
            notify: Mutex::new(()),
            listener,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two plain fields written together; a panic elsewhere cannot leave them
        // inconsistent, so a poisoned lock is still good.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            generation: state.generation,
            access_token: state.session.as_ref().map(|s| s.access_token.clone()),
            refresh_token: state.session.as_ref().map(|s| s.refresh_token.clone()),
        }
    }

    pub(crate) fn get(&self) -> Option<Session> {
        self.lock().session.clone()
    }

    /// Replaces the session, tells the listener, and returns the new generation.
    pub(crate) fn set(&self, session: Option<Session>) -> u64 {
        self.replace(session, None)
            .unwrap_or_else(|| unreachable!("an unconditional replace always applies"))
    }

    /// Replaces the session only while it is still at `generation`: the outcome of a refresh
    /// that began there must not undo a login, logout or other refresh made meanwhile.
    /// `None` (and nothing told) when the session moved on.
    pub(crate) fn set_if(&self, generation: u64, session: Option<Session>) -> Option<u64> {
        self.replace(session, Some(generation))
    }

    fn replace(&self, session: Option<Session>, expected: Option<u64>) -> Option<u64> {
        // Changes are told in the order they are made: a program saving each one must end
        // with the latest, not with one that lost a race to be told.
        let _order = self
            .notify
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (generation, told) = {
            let mut state = self.lock();
            if expected.is_some_and(|expected| expected != state.generation) {
                return None;
            }
            let told = self.listener.as_ref().map(|_| session.clone());
            state.session = session;
            state.generation += 1;
            (state.generation, told)
        };
        // Outside the state's lock: a listener may well read the client's session itself.
        if let (Some(listener), Some(session)) = (&self.listener, told) {
            listener(session.as_ref());
        }
        Some(generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_snapshots_keep_tokens_out_of_print() {
        let session = Session::new("access-secret", "refresh-secret");
        let printed = format!("{session:?}");
        assert!(!printed.contains("secret"), "{printed}");
        let cell = SessionCell::new(Some(session), None);
        let snapshot = cell.snapshot();
        assert_eq!(snapshot.access_token.as_deref(), Some("access-secret"));
        assert_eq!(snapshot.generation, 0);
    }

    #[test]
    fn every_change_bumps_the_generation_and_reaches_the_listener() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let cell = SessionCell::new(
            None,
            Some(Arc::new(move |session: Option<&Session>| {
                sink.lock()
                    .unwrap()
                    .push(session.map(|s| s.refresh_token().to_owned()));
            })),
        );
        assert_eq!(cell.set(Some(Session::new("a1", "r1"))), 1);
        assert_eq!(cell.set(None), 2);
        assert_eq!(*seen.lock().unwrap(), vec![Some("r1".to_owned()), None]);
    }

    #[test]
    fn round_trips_through_json() {
        let session = Session::new("a", "r");
        let json = serde_json::to_string(&session).unwrap();
        assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), session);
    }

    #[test]
    fn a_conditional_change_applies_only_to_the_generation_it_began_from() {
        let told = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&told);
        let listener: SessionListener = Arc::new(move |session: Option<&Session>| {
            seen.lock()
                .unwrap()
                .push(session.map(|s| s.access_token().to_owned()));
        });
        let cell = SessionCell::new(Some(Session::new("old", "r0")), Some(listener));
        let began = cell.snapshot().generation;
        // A login lands while a refresh that began earlier is in flight...
        cell.set(Some(Session::new("login", "r1")));
        // ...so neither the refresh's new pair nor its "session ended" replaces it.
        assert_eq!(
            cell.set_if(began, Some(Session::new("refreshed", "r2"))),
            None
        );
        assert_eq!(cell.set_if(began, None), None);
        assert_eq!(cell.get().unwrap().access_token(), "login");
        assert_eq!(*told.lock().unwrap(), vec![Some("login".to_owned())]);
        // From the current generation it applies.
        let now = cell.snapshot().generation;
        assert!(
            cell.set_if(now, Some(Session::new("refreshed", "r2")))
                .is_some()
        );
        assert_eq!(cell.get().unwrap().access_token(), "refreshed");
    }
}
