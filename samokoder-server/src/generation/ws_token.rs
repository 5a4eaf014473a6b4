//! Single-use WebSocket tokens: a page that cannot send the `access_token` cookie to the
//! WebSocket (another origin, a native client) asks `POST /v1/workspace/token` for one and
//! passes it as `?token=`.
//!
//! A token is the secret box's authenticated encryption of `{typ: "ws", sub, project, iat,
//! exp, jti}`: it cannot be forged or altered, is opaque to its holder, and any server
//! process with the same keys can check it. It is good for one connection to one project's
//! socket for [`TTL`]: its `jti` is entered into the revocation store when it is used, and
//! only the use that enters it first passes (the store answers that atomically, so two
//! simultaneous uses on two server processes cannot both pass). "Log out everywhere" voids
//! unused tokens too.

use std::time::Duration;

use chrono::{DateTime, Utc};
use samokoder_auth::ports::TokenRef;
use samokoder_auth::secret_box::SecretBox;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a token is good for.
pub const TTL: Duration = Duration::from_secs(60);

/// Bound into every token's ciphertext, so no other sealed value opens as a token.
const ASSOCIATED_DATA: &[u8] = b"samokoder:ws-token:v1";

/// The token's type claim.
const TYPE: &str = "ws";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    typ: String,
    sub: Uuid,
    project: Uuid,
    iat: i64,
    exp: i64,
    jti: Uuid,
}

/// Issues a token for `user` to open `project`'s socket.
pub fn issue(secret_box: &SecretBox, user: Uuid, project: Uuid) -> Result<String, ApiError> {
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(TTL).unwrap_or_else(|_| chrono::Duration::seconds(60));
    let claims = Claims {
        typ: TYPE.to_owned(),
        sub: user,
        project,
        iat: now.timestamp(),
        exp: (now + ttl).timestamp(),
        jti: Uuid::new_v4(),
    };
    let json = serde_json::to_vec(&claims).map_err(ApiError::internal)?;
    secret_box
        .seal(&json, ASSOCIATED_DATA)
        .map_err(ApiError::internal)
}

fn refused() -> ApiError {
    ApiError::unauthorized("Invalid or expired WebSocket token").with_code("invalid_ws_token")
}

/// Checks `token` for `project` and uses it up; returns the user it was issued to.
///
/// 401 `invalid_ws_token` for a token that does not open, is of another type, expired, was
/// issued for another project, or was used before.
pub async fn redeem(state: &AppState, token: &str, project: Uuid) -> Result<Uuid, ApiError> {
    let opened = state
        .auth()
        .secret_box
        .open(token, ASSOCIATED_DATA)
        .map_err(|_| refused())?;
    let claims: Claims = serde_json::from_slice(&opened).map_err(|_| refused())?;
    let now = Utc::now();
    let expires = DateTime::from_timestamp(claims.exp, 0).ok_or_else(refused)?;
    let issued = DateTime::from_timestamp(claims.iat, 0).ok_or_else(refused)?;
    if claims.typ != TYPE || expires <= now || claims.project != project {
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
