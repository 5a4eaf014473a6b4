//! The security audit log: who did what to which account, from where. Persisted through the
//! store (append-only), and mirrored to the log at `info` for operators who ship logs.
//!
//! An audit write that fails is logged as an error and does not fail the request: refusing a
//! login because the audit table is unavailable would turn an audit outage into an outage of
//! the whole service, and the log line still records the event.

use samokoder_store::{AuditAction, NewAuditEntry, Store, now};
use serde_json::Value;
use uuid::Uuid;

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    action: AuditAction,
    actor: Option<Uuid>,
    subject: Option<Uuid>,
    client: Option<String>,
    detail: Value,
}

impl AuditEvent {
    /// An event of `action` with no actor, subject or client yet.
    pub fn new(action: AuditAction) -> Self {
        Self {
            action,
            actor: None,
            subject: None,
            client: None,
            detail: Value::Object(serde_json::Map::new()),
        }
    }

    /// The user who acted, who is also the account concerned (the common case).
    #[must_use]
    pub fn by(mut self, user: Uuid) -> Self {
        self.actor = Some(user);
        self.subject = Some(user);
        self
    }

    /// The user who acted (an administrator acting on another account).
    #[must_use]
    pub fn actor(mut self, user: Option<Uuid>) -> Self {
        self.actor = user;
        self
    }

    /// The account concerned.
    #[must_use]
    pub fn subject(mut self, user: Option<Uuid>) -> Self {
        self.subject = user;
        self
    }

    /// The client address.
    #[must_use]
    pub fn client(mut self, client: impl std::fmt::Display) -> Self {
        self.client = Some(client.to_string());
        self
    }

    /// Details; never secrets.
    #[must_use]
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    /// Appends the event to the store's audit log.
    pub async fn record(self, store: &Store) {
        tracing::info!(
            target: "samokoder::audit",
            action = self.action.as_str(),
            actor = ?self.actor,
            subject = ?self.subject,
            client = self.client.as_deref().unwrap_or("-"),
            "audit"
        );
        let entry = NewAuditEntry {
            actor_id: self.actor,
            subject_id: self.subject,
            action: self.action,
            client: self.client,
            detail: self.detail,
            at: now(),
        };
        if let Err(error) = store.audit.append(&entry).await {
            tracing::error!(
                target: "samokoder::audit",
                action = entry.action.as_str(),
                error = %error,
                "could not persist an audit entry"
            );
        }
    }
}
