//! `/v1/auth/*`: registration, login, token refresh, logout, the current user, password change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Tier;

/// `POST /v1/auth/register`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// The e-mail address; trimmed and lower-cased before it is stored. At most 254
    /// characters, `local@domain.tld`.
    pub email: String,
    /// The password: 8 to 128 characters with an uppercase and a lowercase letter, a digit
    /// and a special character, not a common password, no character three times in a row.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub password: String,
}

impl std::fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/auth/login` as JSON.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// The e-mail address (`username` is accepted as another name for it).
    #[serde(alias = "username")]
    pub email: String,
    /// The password.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/auth/login` as an OAuth2 password form (`application/x-www-form-urlencoded`), as
/// the original's web app sends it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginForm {
    /// The e-mail address.
    pub username: String,
    /// The password.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub password: String,
    /// Must be `password` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// Accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("username", &self.username)
            .field("grant_type", &self.grant_type)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/auth/refresh` and `POST /v1/auth/logout` body: the refresh token, for clients that
/// do not keep cookies. Browsers send the `refresh_token` cookie instead and may omit the body.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    /// The refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRequest")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The tokens of a new or renewed session, also set as `HttpOnly` cookies.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthResponse {
    /// The access token (a JWT); send it as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// The refresh token; exchange it at `/v1/auth/refresh`. Each one works once.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The user's id.
    pub user_id: Uuid,
    /// The user's e-mail address.
    pub email: String,
}

impl std::fmt::Debug for AuthResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/auth/me`: the authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserResponse {
    /// The user's id.
    pub id: Uuid,
    /// The e-mail address.
    pub email: String,
    /// The subscription tier.
    pub tier: Tier,
    /// Whether the user may use the admin endpoints.
    pub is_admin: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// How many projects the user has (archived ones included).
    pub projects_count: u64,
}

/// `POST /v1/auth/change-password`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangePasswordRequest {
    /// The password in use now.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub current_password: String,
    /// The new password; the registration policy applies.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub new_password: String,
}

impl std::fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePasswordRequest")
            .finish_non_exhaustive()
    }
}

/// `POST /v1/auth/logout-all`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogoutAllResponse {
    /// What was done.
    pub message: String,
    /// How many sessions (refresh-token families) were ended.
    pub sessions_revoked: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_secrets() {
        let register = RegisterRequest {
            email: "a@example.com".into(),
            password: "Secret-Pa55".into(),
        };
        let login = LoginRequest {
            email: "a@example.com".into(),
            password: "Secret-Pa55".into(),
        };
        let refresh = RefreshRequest {
            refresh_token: Some("refresh-secret".into()),
        };
        let tokens = AuthResponse {
            access_token: "access-secret".into(),
            refresh_token: "refresh-secret".into(),
            token_type: "bearer".into(),
            expires_in: 900,
            user_id: Uuid::nil(),
            email: "a@example.com".into(),
        };
        let change = ChangePasswordRequest {
            current_password: "Secret-Pa55".into(),
            new_password: "Other-Pa55".into(),
        };
        let printed = format!("{register:?}{login:?}{refresh:?}{tokens:?}{change:?}");
        for secret in [
            "Secret-Pa55",
            "Other-Pa55",
            "refresh-secret",
            "access-secret",
        ] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn login_accepts_username_for_email() {
        let login: LoginRequest =
            serde_json::from_str(r#"{"username": "a@example.com", "password": "x"}"#).unwrap();
        assert_eq!(login.email, "a@example.com");
    }
}
