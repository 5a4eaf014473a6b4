//! Account administration for operators (the `samokoder-server admin` commands), over the
//! store: create a user, change a tier, grant or revoke admin rights. Every change is
//! audit-logged as an admin action taken from the command line.

use samokoder_auth::hashing::PasswordHasher;
use samokoder_auth::policy;
use samokoder_core::api::Tier;
use samokoder_store::{AuditAction, NewUser, Store, StoreError, User};
use serde_json::json;

use crate::audit::AuditEvent;
use crate::quota::{api_tier, store_tier};
use crate::validation;

/// Why an admin command failed; the message is meant for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The e-mail address is not acceptable.
    #[error("invalid e-mail address: {0}")]
    InvalidEmail(String),
    /// The password breaks the policy (every broken rule is listed).
    #[error("the password breaks the policy: {}", .0.join(" "))]
    WeakPassword(Vec<String>),
    /// No user has this e-mail address.
    #[error("no user with e-mail {0}")]
    UnknownUser(String),
    /// A user with this e-mail address exists already.
    #[error("a user with e-mail {0} exists already")]
    UserExists(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hashing(#[from] samokoder_auth::AuthError),
    /// The store failed.
    #[error("database: {0}")]
    Store(#[source] StoreError),
}

impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// A summary of an account for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    /// The user id.
    pub id: uuid::Uuid,
    /// The e-mail.
    pub email: String,
    /// The tier.
    pub tier: Tier,
    /// Whether an admin.
    pub is_admin: bool,
}

impl From<&User> for AccountSummary {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            tier: api_tier(user.tier),
            is_admin: user.is_admin,
        }
    }
}

impl std::fmt::Display for AccountSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} <{}> tier={} admin={}",
            self.id, self.email, self.tier, self.is_admin
        )
    }
}

async fn find(store: &Store, email: &str) -> Result<User, AdminError> {
    let normalized = validation::normalize_email("email", email)
        .map_err(|e| AdminError::InvalidEmail(e.message))?;
    store
        .users
        .find_by_email(&normalized)
        .await?
        .ok_or(AdminError::UnknownUser(normalized))
}

fn cli_event(action: AuditAction, subject: &User, detail: serde_json::Value) -> AuditEvent {
    AuditEvent::new(action)
        .subject(Some(subject.id))
        .client("cli")
        .detail(detail)
}

/// Creates an account with the registration rules (e-mail syntax, password policy).
pub async fn create_user(
    store: &Store,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
    tier: Tier,
    is_admin: bool,
) -> Result<AccountSummary, AdminError> {
    let email = validation::normalize_email("email", email)
        .map_err(|e| AdminError::InvalidEmail(e.message))?;
    if let Err(violations) = policy::check_password(password) {
        return Err(AdminError::WeakPassword(
            violations.iter().map(|v| v.message().to_owned()).collect(),
        ));
    }
    let hash = hasher.hash(password).await?;
    let user = store
        .users
        .create(&NewUser {
            email: email.clone(),
            password_hash: hash,
            tier: store_tier(tier),
            is_admin,
        })
        .await
        .map_err(|error| match error {
            StoreError::Conflict { .. } => AdminError::UserExists(email.clone()),
            other => AdminError::Store(other),
        })?;
    cli_event(
        AuditAction::AdminAction,
        &user,
        json!({"operation": "create_user", "tier": tier, "is_admin": is_admin}),
    )
    .record(store)
    .await;
    Ok(AccountSummary::from(&user))
}

/// Changes a user's tier.
pub async fn set_tier(
    store: &Store,
    email: &str,
    tier: Tier,
) -> Result<AccountSummary, AdminError> {
    let user = find(store, email).await?;
    store.users.set_tier(user.id, store_tier(tier)).await?;
    cli_event(
        AuditAction::AdminAction,
        &user,
        json!({"operation": "set_tier", "from": api_tier(user.tier), "to": tier}),
    )
    .record(store)
    .await;
    Ok(AccountSummary::from(&store.users.get(user.id).await?))
}

/// Grants (or, with `admin = false`, revokes) admin rights.
pub async fn set_admin(
    store: &Store,
    email: &str,
    admin: bool,
) -> Result<AccountSummary, AdminError> {
    let user = find(store, email).await?;
    store.users.set_admin(user.id, admin).await?;
    cli_event(
        AuditAction::AdminAction,
        &user,
        json!({"operation": if admin { "grant_admin" } else { "revoke_admin" }}),
    )
    .record(store)
    .await;
    Ok(AccountSummary::from(&store.users.get(user.id).await?))
}
