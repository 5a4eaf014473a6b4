//! Single-use tickets: short-lived proofs that a user may open one project's WebSocket, or
//! enter one project's preview, from somewhere that cannot send the API's cookies (another
//! origin, a native client, a browser tab opened by the CLI).
//!
//! A ticket is the secret box's authenticated encryption of `{typ, sub, project, iat, exp,
//! jti}`: it cannot be forged or altered, is opaque to its holder, and any server process
//! with the same keys can check it. It is good for one use for its kind's TTL: its `jti` is
//! entered into the revocation store when it is used, and only the use that enters it first
//! passes (the store answers that atomically, so two simultaneous uses on two server
//! processes cannot both pass). "Log out everywhere" voids unused tickets too.

use std::time::Duration;

use chrono::{DateTime, Utc};
use samokoder_auth::ports::TokenRef;
use samokoder_auth::secret_box::SecretBox;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// What a ticket opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    /// A project's WebSocket (`POST /v1/workspace/token`).
    WebSocket,
    /// A project's preview, on the preview origin (`POST /v1/projects/{id}/preview/open`).
    Preview,
}

impl TicketKind {
    /// How long a ticket is good for.
    pub fn ttl(self) -> Duration {
        Duration::from_secs(60)
    }

    /// The type claim.
    fn typ(self) -> &'static str {
        match self {
            Self::WebSocket => "ws",
            Self::Preview => "preview",
        }
    }

    /// Bound into the ciphertext, so no other sealed value opens as this kind of ticket.
    fn associated_data(self) -> &'static [u8] {
        match self {
            Self::WebSocket => b"samokoder:ws-token:v1",
            Self::Preview => b"samokoder:preview-ticket:v1",
        }
    }

    fn refused(self) -> ApiError {
        match self {
            Self::WebSocket => ApiError::unauthorized("Invalid or expired WebSocket token")
                .with_code("invalid_ws_token"),
            Self::Preview => ApiError::unauthorized(
                "Invalid or expired preview link: open the preview from Samokoder again",
            )
            .with_code("invalid_preview_ticket"),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    typ: String,
    sub: Uuid,
    project: Uuid,
    iat: i64,
    exp: i64,
    jti: Uuid,
}

/// Issues a ticket of `kind` for `user` and `project`.
pub fn issue(
    secret_box: &SecretBox,
    kind: TicketKind,
    user: Uuid,
    project: Uuid,
) -> Result<String, ApiError> {
    let now = Utc::now();
    let ttl =
        chrono::Duration::from_std(kind.ttl()).unwrap_or_else(|_| chrono::Duration::seconds(60));
    let claims = Claims {
        typ: kind.typ().to_owned(),
        sub: user,
        project,
        iat: now.timestamp(),
        exp: (now + ttl).timestamp(),
        jti: Uuid::new_v4(),
    };
    let json = serde_json::to_vec(&claims).map_err(ApiError::internal)?;
    secret_box
        .seal(&json, kind.associated_data())
        .map_err(ApiError::internal)
}

/// Checks a ticket of `kind` for `project` and uses it up; returns the user it was issued to.
///
/// 401 (`invalid_ws_token`, `invalid_preview_ticket`) for a ticket that does not open, is of
/// another kind, expired, was issued for another project, or was used before.
pub async fn redeem(
    state: &AppState,
    kind: TicketKind,
    ticket: &str,
    project: Uuid,
) -> Result<Uuid, ApiError> {
    let refused = || kind.refused();
    let opened = state
        .auth()
        .secret_box
        .open(ticket, kind.associated_data())
        .map_err(|_| refused())?;
    let claims: Claims = serde_json::from_slice(&opened).map_err(|_| refused())?;
    let now = Utc::now();
    let expires = DateTime::from_timestamp(claims.exp, 0).ok_or_else(refused)?;
    let issued = DateTime::from_timestamp(claims.iat, 0).ok_or_else(refused)?;
    if claims.typ != kind.typ() || expires <= now || claims.project != project {
        return Err(refused());
    }
    let revocations = &state.store().revocations;
    let reference = TokenRef {
        jti: claims.jti,
        user_id: claims.sub,
        issued_at: issued,
    };
    if revocations
        .is_revoked(&reference)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(refused());
    }
    let first_use = revocations
        .revoke_token(claims.jti, expires)
        .await
        .map_err(ApiError::internal)?;
    if !first_use {
        return Err(refused());
    }
    Ok(claims.sub)
}
