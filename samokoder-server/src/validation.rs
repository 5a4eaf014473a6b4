//! Input rules shared by the routes. Each check returns a [`FieldError`] naming the field and a
//! stable code, so a handler can collect every problem of a request and answer them at once
//! (422, `errors[]`). Messages never quote the input: some inputs are secrets.

use samokoder_core::api::FieldError;
use samokoder_core::net::HostAllowlist;
use serde_json::Value;

/// The longest e-mail address accepted (the SMTP path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// A field error.
pub fn field_error(field: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code: code.to_owned(),
        message: message.into(),
    }
}

/// The normalised form of an e-mail address (trimmed, lower-cased), or why it is not one.
///
/// Deliberately simple: `local@domain.tld`, no whitespace or control characters, one `@`, a
/// domain with a dot and no empty labels, at most 254 characters. Whether the address really
/// receives mail is not something a syntax check can know.
pub fn normalize_email(field: &str, email: &str) -> Result<String, FieldError> {
    let email = email.trim().to_lowercase();
    let invalid = || field_error(field, "invalid_email", "Enter a valid e-mail address.");
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(field_error(
            field,
            "email_too_long",
            format!("An e-mail address has at most {MAX_EMAIL_CHARS} characters."),
        ));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid());
    };
    let domain_ok = domain.contains('.')
        && !domain.contains('@')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(invalid());
    }
    Ok(email)
}

/// Whether `c` may appear in free text (line breaks and tabs are fine, other controls are not).
fn allowed_in_text(c: char) -> bool {
    !c.is_control() || matches!(c, '\n' | '\r' | '\t')
}

/// A one-line name: trimmed, 1 to `max` characters, no control characters at all.
pub fn single_line(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err(field_error(field, "blank", "Must not be blank."));
    }
    if chars > max {
        return Err(field_error(
            field,
            "too_long",
            format!("Must be at most {max} characters."),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(field_error(
            field,
            "control_characters",
            "Must not contain control characters.",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Free text of at most `max` characters; line breaks and tabs allowed, other control
/// characters not. Kept as given (not trimmed).
pub fn text(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    if value.chars().count() > max {
        return Err(field_error(
            field,
            "too_long",
            format!("Must be at most {max} characters."),
        ));
    }
    if !value.chars().all(allowed_in_text) {
        return Err(field_error(
            field,
            "control_characters",
            "Must not contain control characters other than line breaks and tabs.",
        ));
    }
    Ok(value.to_owned())
}

/// A JSON object of at most `max_bytes` serialized.
pub fn json_object(field: &str, value: &Value, max_bytes: usize) -> Result<(), FieldError> {
    if !value.is_object() {
        return Err(field_error(
            field,
            "not_an_object",
            "Must be a JSON object.",
        ));
    }
    let size = serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len());
    if size > max_bytes {
        return Err(field_error(
            field,
            "too_large",
            format!("Must be at most {max_bytes} bytes as JSON."),
        ));
    }
    Ok(())
}

/// A token-like secret (API key, access token): printable ASCII without spaces, within bounds,
/// starting with one of `prefixes` when any are given.
pub fn token(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    prefixes: &[&str],
) -> Result<String, FieldError> {
    let value = value.trim();
    if value.len() < min || value.len() > max {
        return Err(field_error(
            field,
            "invalid_length",
            format!("Must be {min} to {max} characters long."),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(field_error(
            field,
            "invalid_characters",
            "Must be printable ASCII without spaces.",
        ));
    }
    if !prefixes.is_empty() && !prefixes.iter().any(|prefix| value.starts_with(prefix)) {
        return Err(field_error(
            field,
            "invalid_format",
            format!(
                "Does not look like a key of this provider (expected it to start with {}).",
                prefixes.join(" or ")
            ),
        ));
    }
    Ok(value.to_owned())
}

/// The last four characters of a secret, for display.
pub fn last_four(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// A user-supplied API base URL: `https` (or `http`), no user info, on an allowed host and
/// port.
pub fn base_url(field: &str, value: &str, allowlist: &HostAllowlist) -> Result<String, FieldError> {
    let value = value.trim();
    let parsed = url::Url::parse(value)
        .map_err(|_| field_error(field, "invalid_url", "Must be an http or https URL."))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(field_error(
            field,
            "invalid_url",
            "Must be an http or https URL without user name or password.",
        ));
    }
    let host = parsed.host_str().unwrap_or_default();
    if !allowlist.allows(host, parsed.port_or_known_default().unwrap_or(0)) {
        return Err(field_error(
            field,
            "host_not_allowed",
            "This deployment does not allow API base URLs on that host and port.",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("email", "  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "alice@@example.com",
            "al ice@example.com",
            "alice@example..com",
            "alice@-example.com",
        ] {
            assert_eq!(
                normalize_email("email", bad).unwrap_err().code,
                "invalid_email",
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(
            normalize_email("email", &long).unwrap_err().code,
            "email_too_long"
        );
    }

    #[test]
    fn names_reject_controls_but_not_sql_words() {
        assert_eq!(
            single_line("name", "  Drop table planner ", 100).unwrap(),
            "Drop table planner"
        );
        assert_eq!(single_line("name", "   ", 100).unwrap_err().code, "blank");
        assert_eq!(
            single_line("name", "a\u{7}b", 100).unwrap_err().code,
            "control_characters"
        );
        assert_eq!(
            single_line("name", &"я".repeat(101), 100).unwrap_err().code,
            "too_long"
        );
        assert!(text("d", "line\nbreak\ttab", 100).is_ok());
        assert!(text("d", "nul\0", 100).is_err());
    }

    #[test]
    fn tokens_and_urls() {
        assert!(token("k", "sk-ant-api03-abcdefgh", 10, 512, &["sk-ant-"]).is_ok());
        assert_eq!(
            token("k", "pk-abcdefghijk", 10, 512, &["sk-"])
                .unwrap_err()
                .code,
            "invalid_format"
        );
        assert_eq!(
            token("k", "sk-abc def ghij", 10, 512, &[])
                .unwrap_err()
                .code,
            "invalid_characters"
        );
        assert_eq!(last_four("sk-abcdefgh"), "efgh");
        assert_eq!(last_four("ab"), "ab");

        let allow = HostAllowlist::parse(&["openrouter.ai", "*.openai.azure.com"]).unwrap();
        assert!(base_url("b", "https://openrouter.ai/api/v1", &allow).is_ok());
        assert_eq!(
            base_url("b", "https://openrouter.ai:5432/api/v1", &allow)
                .unwrap_err()
                .code,
            "host_not_allowed",
            "the host on another port is another service"
        );
        assert!(base_url("b", "https://team.openai.azure.com", &allow).is_ok());
        assert_eq!(
            base_url("b", "https://169.254.169.254/", &allow)
                .unwrap_err()
                .code,
            "host_not_allowed"
        );
        assert_eq!(
            base_url("b", "https://u:p@openrouter.ai/", &allow)
                .unwrap_err()
                .code,
            "invalid_url"
        );
        assert_eq!(
            base_url("b", "file:///etc/passwd", &allow)
                .unwrap_err()
                .code,
            "invalid_url"
        );
    }
}
