//! The errors of the store and of the authentication services as [`ApiError`]s, so handlers can
//! use `?`. Routes map the cases they expect (a missing project is `project_not_found`) before
//! these generic mappings apply; what reaches them is mostly an outage or a bug, answered with
//! a fixed message while the cause goes to the log.

use http::StatusCode;
use samokoder_auth::AuthError;
use samokoder_store::StoreError;

use super::ApiError;

/// 503 for a database that is down or saturated: retrying later may work.
fn storage_unavailable(source: impl Into<super::BoxError>) -> ApiError {
    ApiError::service_unavailable(
        "storage_unavailable",
        "The service is temporarily unavailable; try again shortly",
    )
    .with_source(source)
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::NotFound { .. } => ApiError::not_found("Not found").with_source(error),
            StoreError::Conflict { .. } | StoreError::MissingReference { .. } => {
                ApiError::conflict(
                    "conflict",
                    "The request conflicts with the current state; reload and try again",
                )
                .with_source(error)
            }
            StoreError::InvalidInput(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "The request is not valid",
            )
            .with_source(error),
            StoreError::Unavailable { .. } => storage_unavailable(error),
            _ => ApiError::internal(error),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        if error.is_credential_error() {
            return ApiError::unauthorized("Could not validate credentials")
                .with_code(error.code())
                .with_source(error);
        }
        if let AuthError::Store(port) = &error {
            let transient = std::error::Error::source(port)
                .and_then(|cause| cause.downcast_ref::<StoreError>())
                .is_some_and(StoreError::is_transient);
            if transient {
                return storage_unavailable(error);
            }
        }
        ApiError::internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses_without_their_text() {
        let not_found: ApiError = StoreError::not_found("project", "secret-key").into();
        assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
        assert!(!not_found.detail().contains("secret-key"));
        let conflict: ApiError = StoreError::conflict("user", "taken").into();
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        let down: ApiError = StoreError::Unavailable {
            context: "x".into(),
            source: "pool timed out".into(),
        }
        .into();
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        let broken: ApiError = StoreError::corrupt("user", "tier").into();
        assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn auth_errors_tell_credentials_from_outages() {
        let expired: ApiError = AuthError::TokenExpired.into();
        assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(expired.code(), "token_expired");
        let down: ApiError = AuthError::Store(samokoder_auth::ports::PortError::new(
            StoreError::Unavailable {
                context: "x".into(),
                source: "refused".into(),
            },
        ))
        .into();
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bug: ApiError = AuthError::SealFailed.into();
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
