//! Extractors whose rejections are [`ApiError`]s, so a malformed request gets the standard
//! error body (and never a 500, and never an echo of the input).
//!
//! Use these instead of axum's in handlers: `samokoder_server::extract::{Json, Form, Query,
//! Path}`. `Json` is also a response type.

use std::net::IpAddr;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

use samokoder_core::api::FieldError;

use crate::error::ApiError;

/// A JSON body (`Content-Type: application/json`), or a JSON response.
///
/// Rejections: 415 for another content type, 400 for malformed JSON, 413 over the route's body
/// limit, 422 with the offending field for unknown fields (`#[serde(deny_unknown_fields)]`),
/// wrong types, values out of range and missing fields.
///
/// Every request body of the API is a JSON object (or, for [`OptionalJson`], `null`): a
/// top-level array is 422 `invalid_type` at `body`, even when serde could read `T` from it.
/// serde reads a struct from an array of its fields in order (`[null, null]` is a valid
/// two-field update), which no client means and the OpenAPI document does not allow. A route
/// that wants a list takes an object with a list in it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes =
            axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
                .await?;
        let is_array = bytes
            .iter()
            .find(|byte| !byte.is_ascii_whitespace())
            .is_some_and(|&byte| byte == b'[');
        // The content type and the syntax are checked (415, 400) before the shape.
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        if is_array {
            return Err(ApiError::validation(vec![FieldError {
                field: "body".into(),
                code: "invalid_type".into(),
                message: "This value has the wrong type".into(),
            }]));
        }
        Ok(Self(value))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A form: `application/x-www-form-urlencoded` body, or the query string of a GET. The web app
/// of the original logs in with such a form.
#[derive(Debug, Clone, Copy, Default)]
pub struct Form<T>(pub T);

impl<T, S> FromRequest<S> for Form<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Form(value) = axum::Form::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// The query string, deserialized.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// Path parameters, deserialized (a malformed UUID is a 422 naming the parameter).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the right-most
/// untrusted address of `X-Forwarded-For`. Set for every request by the server's middleware;
/// auth uses it for the lockout and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<ClientIp>().copied().ok_or_else(|| {
            ApiError::internal(
                "ClientIp extension missing: the route is outside the server's middleware",
            )
        })
    }
}

/// The authenticated caller and their account, loaded from the store.
///
/// Rejections: 401 (no credential, an invalid, expired or revoked token, or a token of an
/// account that no longer exists) with `WWW-Authenticate: Bearer`, 503 when the revocation
/// check or the store cannot be reached. Every rejection has the standard error body.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// The verified access token.
    pub token: samokoder_auth::extract::AuthenticatedUser,
    /// The account.
    pub user: samokoder_store::User,
}

impl CurrentUser {
    /// The user's id.
    pub fn id(&self) -> uuid::Uuid {
        self.user.id
    }
}

/// An [`AuthRejection`](samokoder_auth::extract::AuthRejection) as the server's error body.
fn auth_rejection(rejection: &samokoder_auth::extract::AuthRejection) -> ApiError {
    let kind = rejection.kind();
    let mut error = ApiError::new(kind.status(), kind.code(), kind.detail());
    if let Some(challenge) = kind.challenge() {
        error = error.with_header(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(challenge),
        );
    }
    error
}

impl FromRequestParts<crate::AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(current) = parts.extensions.get::<CurrentUser>() {
            return Ok(current.clone());
        }
        let token = state
            .auth()
            .state
            .authenticate(&parts.headers)
            .await
            .map_err(|rejection| auth_rejection(&rejection))?;
        let user = match state.store().users.get(token.user_id).await {
            Ok(user) => user,
            // A valid token of a deleted account authenticates nobody.
            Err(error) if error.is_not_found() => {
                return Err(ApiError::unauthorized("Could not validate credentials")
                    .with_code("invalid_token")
                    .with_source(error));
            }
            Err(error) => return Err(error.into()),
        };
        let current = CurrentUser { token, user };
        parts.extensions.insert(current.clone());
        Ok(current)
    }
}

/// The authenticated caller, who must be an administrator: 403 `admin_required` otherwise
/// (the only 403 of the API: the caller is known and not allowed).
#[derive(Debug, Clone)]
pub struct AdminUser(pub CurrentUser);

impl FromRequestParts<crate::AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let current = CurrentUser::from_request_parts(parts, state).await?;
        if current.user.is_admin {
            Ok(Self(current))
        } else {
            Err(ApiError::forbidden("Administrator privileges required")
                .with_code("admin_required"))
        }
    }
}

/// A JSON body that may be absent: an empty body and a JSON `null` are `None` (the OpenAPI
/// document describes these bodies as `T` or `null`), anything else must be JSON of `T` (with
/// the same rejections as [`Json`]). For endpoints whose browser clients send nothing and
/// whose other clients send a body (refresh, logout).
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes =
            axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
                .await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let Json(value) = Json::<Option<T>>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// A body in either of two formats, chosen by `Content-Type`: JSON (`J`) or an
/// `application/x-www-form-urlencoded` form (`F`). Anything else is 415.
#[derive(Debug, Clone)]
pub enum JsonOrForm<J, F> {
    /// A JSON body.
    Json(J),
    /// A form body.
    Form(F),
}

impl<J, F, S> FromRequest<S> for JsonOrForm<J, F>
where
    J: DeserializeOwned,
    F: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if content_type == "application/x-www-form-urlencoded" {
            let Form(form) = Form::<F>::from_request(req, state).await?;
            Ok(Self::Form(form))
        } else if content_type == "application/json" || content_type.ends_with("+json") {
            let Json(json) = Json::<J>::from_request(req, state).await?;
            Ok(Self::Json(json))
        } else {
            Err(ApiError::unsupported_media_type(
                "application/json or application/x-www-form-urlencoded",
            ))
        }
    }
}
