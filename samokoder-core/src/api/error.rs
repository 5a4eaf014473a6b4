//! The one error body every failing response carries.

use serde::{Deserialize, Serialize};

/// The JSON body of every error response: `{"detail", "code", "request_id"}`, plus `errors` for
/// validation failures.
///
/// `detail` is a message for humans (it keeps clients of the original API working); `code` is a
/// stable `snake_case` identifier for programs; `request_id` matches the `x-request-id` header and
/// the server's log lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Human-readable description of what went wrong.
    pub detail: String,
    /// Stable machine-readable error code, e.g. `invalid_credentials`.
    pub code: String,
    /// The request id the server assigned (or accepted) for this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field problems, present on validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ErrorBody {
    /// An error body with a code and a message and no request id yet.
    pub fn new(code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            code: code.into(),
            request_id: None,
            errors: Vec::new(),
        }
    }
}

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field, as a JSON path such as `password` or `budget.max_tokens`.
    pub field: String,
    /// Stable code of the rule that failed, e.g. `too_short`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omits_empty_optional_parts() {
        let json = serde_json::to_value(ErrorBody::new("not_found", "Not found")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"detail": "Not found", "code": "not_found"})
        );
    }
}
