//! axum's extractor rejections as [`ApiError`]s.
//!
//! axum's own rejection texts quote serde's messages, which quote the input
//! (`invalid type: string "hunter2", expected u32`). Here only the location of the problem
//! (`body.budget.max_tokens`) and a fixed description of its kind reach the client.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{
    BytesRejection, FailedToBufferBody, FormRejection, JsonRejection, PathRejection, QueryRejection,
};
use samokoder_core::api::FieldError;
use serde_path_to_error::Segment;

use super::ApiError;

/// The first error of type `T` in `error`'s source chain (including `error` itself).
fn find_source<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// Where in the request a problem is; the first segment of every [`FieldError::field`].
#[derive(Clone, Copy)]
enum Location {
    Body,
    Query,
    Path,
}

impl Location {
    fn as_str(self) -> &'static str {
        match self {
            Self::Body => "body",
            Self::Query => "query",
            Self::Path => "path",
        }
    }
}

/// A map key or variant from the request, echoed only when it is a plain identifier.
fn safe_key(key: &str) -> &str {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if plain { key } else { "?" }
}

/// `body` + `.a.b[0]` from a serde path, leaving out the last `skip_last` segments.
fn field_path(location: Location, path: &serde_path_to_error::Path, skip_last: usize) -> String {
    let segments: Vec<&Segment> = path.iter().collect();
    let kept = segments.len().saturating_sub(skip_last);
    let mut field = location.as_str().to_owned();
    for segment in &segments[..kept] {
        match segment {
            Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                field.push('.');
                field.push_str(safe_key(key));
            }
            Segment::Enum { variant } => {
                field.push('.');
                field.push_str(safe_key(variant));
            }
            Segment::Unknown => field.push_str(".?"),
        }
    }
    field
}

/// The kind of a serde data error, told from the fixed start of serde's message, as
/// `(code, message, missing field name)`. The rest of serde's message quotes the input and is
/// dropped. The missing field's name comes from our own type, so it is safe to echo.
fn classify(message: &str) -> (&'static str, &'static str, Option<String>) {
    if message.starts_with("missing field") {
        let name = message
            .split('`')
            .nth(1)
            .map(|name| safe_key(name).to_owned());
        ("missing", "This field is required", name)
    } else if message.starts_with("unknown field") {
        ("unknown_field", "This field is not allowed", None)
    } else if message.starts_with("invalid type") {
        ("invalid_type", "This value has the wrong type", None)
    } else if message.starts_with("invalid length") {
        (
            "invalid_length",
            "This value has the wrong number of items",
            None,
        )
    } else if message.starts_with("unknown variant") {
        (
            "invalid_choice",
            "This value is not one of the allowed values",
            None,
        )
    } else if message.starts_with("duplicate field") {
        (
            "duplicate_field",
            "This field is given more than once",
            None,
        )
    } else {
        // `invalid value` (including numbers out of range) and messages of custom
        // deserializers (UUIDs, dates, ...).
        ("invalid_value", "This value is not valid", None)
    }
}

/// One field error from a serde path and message.
fn field_error(location: Location, path: &serde_path_to_error::Path, message: &str) -> FieldError {
    let (code, text, missing) = classify(message);
    // The path of an unknown field ends with the client's own key: report its parent instead
    // of echoing it.
    let skip_last = usize::from(code == "unknown_field");
    let mut field = field_path(location, path, skip_last);
    // serde reports a missing field at its parent; name the field itself.
    if let Some(name) = missing {
        field.push('.');
        field.push_str(&name);
    }
    FieldError {
        field,
        code: code.to_owned(),
        message: text.to_owned(),
    }
}

/// 422 for a deserialization error of type `E` somewhere in `rejection`'s sources.
fn data_error<E: std::error::Error + 'static>(
    location: Location,
    rejection: &(dyn std::error::Error + 'static),
) -> ApiError {
    let error = match find_source::<serde_path_to_error::Error<E>>(rejection) {
        Some(err) => field_error(location, err.path(), &err.inner().to_string()),
        None => FieldError {
            field: location.as_str().to_owned(),
            code: "invalid_value".to_owned(),
            message: "This value is not valid".to_owned(),
        },
    };
    ApiError::validation(vec![error])
}

/// A body that could not be read: too large (413) or broken off (400).
fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::payload_too_large(None)
        }
        other => ApiError::bad_request("body_unreadable", "The request body could not be read")
            .with_source(other),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(err) => {
                data_error::<serde_json::Error>(Location::Body, &err)
            }
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::bad_request("malformed_json", "The request body is not valid JSON")
            }
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::unsupported_media_type("application/json")
            }
            JsonRejection::BytesRejection(err) => bytes_rejection(err),
            other => ApiError::bad_request("bad_request", "The request body could not be read")
                .with_source(other),
        }
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        match rejection {
            FormRejection::InvalidFormContentType(_) => {
                ApiError::unsupported_media_type("application/x-www-form-urlencoded")
            }
            // A GET form is read from the query string, a POST form from the body.
            FormRejection::FailedToDeserializeForm(err) => {
                data_error::<serde_urlencoded::de::Error>(Location::Query, &err)
            }
            FormRejection::FailedToDeserializeFormBody(err) => {
                data_error::<serde_urlencoded::de::Error>(Location::Body, &err)
            }
            FormRejection::BytesRejection(err) => bytes_rejection(err),
            other => ApiError::bad_request("bad_request", "The form could not be read")
                .with_source(other),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        match rejection {
            QueryRejection::FailedToDeserializeQueryString(err) => {
                data_error::<serde_urlencoded::de::Error>(Location::Query, &err)
            }
            other => ApiError::bad_request("bad_request", "The query string could not be read")
                .with_source(other),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        let PathRejection::FailedToDeserializePathParams(err) = rejection else {
            // Missing path parameters mean a handler extracts `Path` on a route without them.
            return ApiError::internal(rejection.to_string());
        };
        let (field, (code, message)) = match err.kind() {
            ErrorKind::ParseErrorAtKey {
                key, expected_type, ..
            } => (path_field(key), expected_type_code(expected_type)),
            ErrorKind::ParseErrorAtIndex {
                index,
                expected_type,
                ..
            } => (
                format!("{}[{index}]", Location::Path.as_str()),
                expected_type_code(expected_type),
            ),
            ErrorKind::ParseError { expected_type, .. } => (
                Location::Path.as_str().to_owned(),
                expected_type_code(expected_type),
            ),
            ErrorKind::DeserializeError { key, message, .. } => (
                path_field(key),
                if message.contains("UUID") || message.contains("uuid") {
                    ("invalid_uuid", "This value is not a UUID")
                } else {
                    ("invalid_value", "This value is not valid")
                },
            ),
            ErrorKind::InvalidUtf8InPathParam { key } => (
                path_field(key),
                ("invalid_value", "This value is not valid UTF-8"),
            ),
            ErrorKind::Message(_) => (
                Location::Path.as_str().to_owned(),
                ("invalid_value", "This value is not valid"),
            ),
            // Wrong parameter counts and unsupported types are mistakes in a handler.
            _ => return ApiError::internal(err.to_string()),
        };
        ApiError::validation(vec![FieldError {
            field,
            code: code.to_owned(),
            message: message.to_owned(),
        }])
    }
}

/// `path.<key>` for a named path parameter.
fn path_field(key: &str) -> String {
    format!("{}.{}", Location::Path.as_str(), safe_key(key))
}

/// The code and message for a path value that did not parse as `expected_type`.
fn expected_type_code(expected_type: &str) -> (&'static str, &'static str) {
    if expected_type.contains("Uuid") {
        ("invalid_uuid", "This value is not a UUID")
    } else if expected_type.starts_with('u') || expected_type.starts_with('i') {
        ("invalid_integer", "This value is not an integer in range")
    } else {
        ("invalid_value", "This value is not valid")
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        bytes_rejection(rejection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_never_returns_the_input() {
        for message in [
            "invalid type: string \"hunter2\", expected u32 at line 1 column 20",
            "invalid value: integer `300`, expected u8",
            "unknown field `hunter2`, expected `name`",
            "UUID parsing failed: invalid character hunter2",
        ] {
            let (code, text, missing) = classify(message);
            assert!(!code.contains("hunter2") && !text.contains("hunter2"));
            assert!(missing.is_none());
        }
        assert_eq!(
            classify("missing field `email`").2.as_deref(),
            Some("email")
        );
    }

    #[test]
    fn odd_keys_are_not_echoed() {
        assert_eq!(safe_key("max_tokens"), "max_tokens");
        assert_eq!(safe_key("<script>"), "?");
        assert_eq!(safe_key(&"a".repeat(65)), "?");
    }
}
