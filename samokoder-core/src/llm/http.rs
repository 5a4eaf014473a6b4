//! What the HTTP providers share: turning failed responses into the error taxonomy, reading the
//! wait a provider asks for, and mapping transport errors.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::ApiKey;
use super::error::{FatalKind, LlmError, TransientKind};

/// Longest provider message kept in an error: enough to act on, too short to smuggle a prompt
/// that a provider echoed back.
const MAX_MESSAGE_CHARS: usize = 400;

/// Trims a provider message for an error: key scrubbed, length capped.
pub(crate) fn clean_message(key: Option<&ApiKey>, text: &str) -> String {
    let scrubbed = match key {
        Some(key) => key.scrub(text),
        None => text.to_owned(),
    };
    let trimmed = scrubbed.trim();
    if trimmed.chars().count() <= MAX_MESSAGE_CHARS {
        trimmed.to_owned()
    } else {
        let cut: String = trimmed.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}…")
    }
}

/// Parses a Go-style duration as OpenAI sends in `x-ratelimit-reset-*`: `1s`, `6m0s`, `20ms`,
/// `1h2m3.5s`, `0.5s`.
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `retry-after` as seconds (integer or decimal) or an HTTP date.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = header(headers, "retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(until(now, SystemTime::from(at)))
}

fn until(now: SystemTime, at: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or_default()
}

/// The wait a provider asked for, from any of the headers providers use:
///
/// - `retry-after-ms` / `retry-after` (seconds or HTTP date): the direct ask;
/// - OpenAI `x-ratelimit-reset-{requests,tokens}` (Go durations) with the matching
///   `x-ratelimit-remaining-*`;
/// - Anthropic `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset`
///   (RFC 3339 timestamps) with the matching `-remaining`.
///
/// A limit whose `remaining` is zero is the one that is exhausted, so its reset binds; when no
/// `remaining` says zero, the latest reset binds. The result is the longest of the direct ask
/// and the binding resets: waiting less than any of them just earns another 429.
pub(crate) fn requested_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let direct = retry_after(headers, now);
    let mut resets: Vec<(Option<u64>, Duration)> = Vec::new();
    for dim in ["requests", "tokens"] {
        if let Some(reset) =
            header(headers, &format!("x-ratelimit-reset-{dim}")).and_then(parse_go_duration)
        {
            let remaining = header(headers, &format!("x-ratelimit-remaining-{dim}"))
                .and_then(|v| v.parse::<u64>().ok());
            resets.push((remaining, reset));
        }
    }
    for dim in ["requests", "tokens", "input-tokens", "output-tokens"] {
        if let Some(reset) = header(headers, &format!("anthropic-ratelimit-{dim}-reset"))
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        {
            let remaining = header(headers, &format!("anthropic-ratelimit-{dim}-remaining"))
                .and_then(|v| v.parse::<u64>().ok());
            resets.push((remaining, until(now, SystemTime::from(reset))));
        }
    }
    let exhausted = resets
        .iter()
        .filter(|(remaining, _)| *remaining == Some(0))
        .map(|(_, d)| *d)
        .max();
    let from_resets = match exhausted {
        Some(wait) => Some(wait),
        // Without a direct ask and without a known exhausted limit, the latest reset is the only
        // wait guaranteed to clear whichever limit we hit.
        None if direct.is_none() => resets.iter().map(|(_, d)| *d).max(),
        None => None,
    };
    match (direct, from_resets) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The error fields both protocols put in a JSON error body.
#[derive(Debug, Default)]
pub(crate) struct ErrorBody {
    /// OpenAI `error.code`, or Anthropic `error.type`.
    pub(crate) code: Option<String>,
    /// OpenAI `error.type`.
    pub(crate) kind: Option<String>,
    /// The message.
    pub(crate) message: Option<String>,
}

impl ErrorBody {
    /// Reads `{"error": {"message", "type", "code"}}` (OpenAI and most compatibles) and
    /// `{"type": "error", "error": {"type", "message"}}` (Anthropic). Some proxies send the
    /// error as a plain string.
    pub(crate) fn parse(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::default();
        };
        let error = value.get("error").unwrap_or(&value);
        let text = |v: Option<&serde_json::Value>| {
            v.and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        if let serde_json::Value::String(message) = error {
            return Self {
                message: Some(message.clone()),
                ..Self::default()
            };
        }
        Self {
            code: text(error.get("code")).or_else(|| text(error.get("type"))),
            kind: text(error.get("type")),
            message: text(error.get("message")).or_else(|| text(value.get("message"))),
        }
    }

    fn mentions(&self, needles: &[&str]) -> bool {
        let hay = [&self.code, &self.kind, &self.message]
            .into_iter()
            .flatten()
            .map(|s| s.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        needles.iter().any(|n| hay.contains(n))
    }
}

const CONTEXT_MARKERS: &[&str] = &[
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "prompt is too long",
    "too many tokens",
    "string_above_max_length",
    "request_too_large",
    "reduce the length",
];

const QUOTA_MARKERS: &[&str] = &[
    "insufficient_quota",
    "exceeded your current quota",
    "credit balance is too low",
    "billing",
    "insufficient credits",
    "payment required",
];

/// Classifies a failed HTTP response into the taxonomy.
pub(crate) fn classify_status(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    key: Option<&ApiKey>,
) -> LlmError {
    let parsed = ErrorBody::parse(body);
    let message = {
        let raw = parsed.message.clone().unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            if text.trim().is_empty() {
                status.canonical_reason().unwrap_or("no body").to_owned()
            } else {
                text.into_owned()
            }
        });
        clean_message(key, &raw)
    };
    let provider = provider.to_owned();
    let wait = requested_wait(headers, SystemTime::now());
    let code = status.as_u16();
    match code {
        401 | 403 => LlmError::Authentication {
            provider,
            status: code,
            message,
        },
        402 => LlmError::Fatal {
            provider,
            kind: FatalKind::QuotaExceeded,
            message,
        },
        404 => LlmError::Fatal {
            provider,
            kind: FatalKind::ModelNotFound,
            message,
        },
        408 => LlmError::Transient {
            provider,
            kind: TransientKind::Timeout,
            retry_after: wait,
            message,
        },
        409 => LlmError::Transient {
            provider,
            kind: TransientKind::Server,
            retry_after: wait,
            message,
        },
        413 => LlmError::ContextOverflow {
            provider,
            prompt_tokens: None,
            context_window: None,
            message,
        },
        429 if parsed.mentions(QUOTA_MARKERS) => LlmError::Fatal {
            provider,
            kind: FatalKind::QuotaExceeded,
            message,
        },
        429 => LlmError::RateLimited {
            provider,
            retry_after: wait,
            message,
        },
        400 | 422 if parsed.mentions(CONTEXT_MARKERS) => LlmError::ContextOverflow {
            provider,
            prompt_tokens: None,
            context_window: None,
            message,
        },
        400 if parsed.mentions(QUOTA_MARKERS) => LlmError::Fatal {
            provider,
            kind: FatalKind::QuotaExceeded,
            message,
        },
        529 => LlmError::Transient {
            provider,
            kind: TransientKind::Overloaded,
            retry_after: wait,
            message,
        },
        500..=599 if parsed.mentions(&["overloaded"]) => LlmError::Transient {
            provider,
            kind: TransientKind::Overloaded,
            retry_after: wait,
            message,
        },
        500..=599 => LlmError::Transient {
            provider,
            kind: TransientKind::Server,
            retry_after: wait,
            message,
        },
        400..=499 => LlmError::Fatal {
            provider,
            kind: FatalKind::BadRequest,
            message,
        },
        // Never followed (the client has no redirect policy): the allowlist names the base
        // URL, not wherever an answer points.
        300..=399 => LlmError::Fatal {
            provider,
            kind: FatalKind::Other,
            message: format!(
                "the provider answered with a redirect ({code}), which is never followed: set its base URL to the address it redirects to"
            ),
        },
        _ => LlmError::Fatal {
            provider,
            kind: FatalKind::Other,
            message,
        },
    }
}

/// Classifies an error event inside a stream (Anthropic `event: error`, an OpenAI-compatible
/// chunk carrying `error`), where no HTTP status is left to look at.
pub(crate) fn classify_stream_error(
    provider: &str,
    body: &ErrorBody,
    key: Option<&ApiKey>,
) -> LlmError {
    let message = clean_message(
        key,
        body.message
            .as_deref()
            .unwrap_or("error event in the stream"),
    );
    let provider = provider.to_owned();
    if body.mentions(&["rate_limit"]) {
        LlmError::RateLimited {
            provider,
            retry_after: None,
            message,
        }
    } else if body.mentions(&["overloaded"]) {
        LlmError::Transient {
            provider,
            kind: TransientKind::Overloaded,
            retry_after: None,
            message,
        }
    } else if body.mentions(CONTEXT_MARKERS) {
        LlmError::ContextOverflow {
            provider,
            prompt_tokens: None,
            context_window: None,
            message,
        }
    } else if body.mentions(&["authentication", "permission"]) {
        LlmError::Authentication {
            provider,
            status: 401,
            message,
        }
    } else if body.mentions(&["invalid_request"]) {
        LlmError::Fatal {
            provider,
            kind: FatalKind::BadRequest,
            message,
        }
    } else {
        // `api_error`, `server_error` and unnamed errors: the provider broke mid-answer.
        LlmError::Transient {
            provider,
            kind: TransientKind::Server,
            retry_after: None,
            message,
        }
    }
}

/// Maps a reqwest failure. The URL is dropped from the text (a user-configured base URL could
/// carry credentials in its query) and the cause chain kept, so "connection refused" survives.
pub(crate) fn transport_error(
    provider: &str,
    err: reqwest::Error,
    key: Option<&ApiKey>,
) -> LlmError {
    let kind = if err.is_connect() {
        TransientKind::Connect
    } else if err.is_timeout() {
        TransientKind::Timeout
    } else if err.is_body() || err.is_decode() {
        TransientKind::StreamBroken
    } else {
        TransientKind::Connect
    };
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    LlmError::Transient {
        provider: provider.to_owned(),
        kind,
        retry_after: None,
        message: clean_message(key, &text),
    }
}

/// A protocol violation in a successful response (unparseable JSON, a missing field).
pub(crate) fn malformed(provider: &str, what: impl std::fmt::Display) -> LlmError {
    LlmError::Transient {
        provider: provider.to_owned(),
        kind: TransientKind::MalformedResponse,
        retry_after: None,
        message: what.to_string(),
    }
}

/// The stream ended before the provider's final event.
pub(crate) fn stream_broken(provider: &str, what: &str) -> LlmError {
    LlmError::Transient {
        provider: provider.to_owned(),
        kind: TransientKind::StreamBroken,
        retry_after: None,
        message: what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_go_duration("2.5s"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration("5x"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn retry_after_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            requested_wait(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            requested_wait(&headers(&[("retry-after-ms", "250")]), now),
            Some(Duration::from_millis(250))
        );
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        let date = headers(&[("retry-after", "Tue, 14 Nov 2023 22:13:27 GMT")]);
        assert_eq!(requested_wait(&date, now), Some(Duration::from_secs(7)));
        let past = headers(&[("retry-after", "Tue, 14 Nov 2023 22:00:00 GMT")]);
        assert_eq!(requested_wait(&past, now), Some(Duration::ZERO));
    }

    #[test]
    fn the_exhausted_openai_limit_binds() {
        let now = SystemTime::now();
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-tokens", "5000"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(requested_wait(&h, now), Some(Duration::from_secs(1)));
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "10"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(requested_wait(&h, now), Some(Duration::from_secs(360)));
        // Nothing says which one: the later reset is the safe wait.
        let h = headers(&[
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "2s"),
        ]);
        assert_eq!(requested_wait(&h, now), Some(Duration::from_secs(2)));
    }

    #[test]
    fn anthropic_reset_timestamps_and_retry_after_combine() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = headers(&[
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2023-11-14T22:13:30Z"),
            ("anthropic-ratelimit-requests-remaining", "3"),
            ("anthropic-ratelimit-requests-reset", "2023-11-14T22:20:00Z"),
        ]);
        assert_eq!(requested_wait(&h, now), Some(Duration::from_secs(10)));
        let mut h = h;
        h.insert("retry-after", HeaderValue::from_static("4"));
        assert_eq!(requested_wait(&h, now), Some(Duration::from_secs(10)));
        h.insert("retry-after", HeaderValue::from_static("30"));
        assert_eq!(requested_wait(&h, now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn statuses_map_to_the_taxonomy() {
        let none = HeaderMap::new();
        let classify = |status: u16, body: &str| {
            classify_status(
                "p",
                StatusCode::from_u16(status).unwrap(),
                &none,
                body.as_bytes(),
                None,
            )
        };
        assert!(matches!(
            classify(401, "{}"),
            LlmError::Authentication { status: 401, .. }
        ));
        assert!(matches!(
            classify(
                429,
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#
            ),
            LlmError::Fatal {
                kind: FatalKind::QuotaExceeded,
                ..
            }
        ));
        assert!(matches!(classify(429, "{}"), LlmError::RateLimited { .. }));
        assert!(matches!(
            classify(
                400,
                r#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#
            ),
            LlmError::ContextOverflow { .. }
        ));
        assert!(matches!(
            classify(
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#
            ),
            LlmError::ContextOverflow { .. }
        ));
        assert!(matches!(
            classify(
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low"}}"#
            ),
            LlmError::Fatal {
                kind: FatalKind::QuotaExceeded,
                ..
            }
        ));
        assert!(matches!(
            classify(400, "{}"),
            LlmError::Fatal {
                kind: FatalKind::BadRequest,
                ..
            }
        ));
        assert!(matches!(
            classify(404, "{}"),
            LlmError::Fatal {
                kind: FatalKind::ModelNotFound,
                ..
            }
        ));
        assert!(matches!(
            classify(529, "{}"),
            LlmError::Transient {
                kind: TransientKind::Overloaded,
                ..
            }
        ));
        assert!(matches!(
            classify(502, "<html>bad gateway</html>"),
            LlmError::Transient {
                kind: TransientKind::Server,
                ..
            }
        ));
    }

    #[test]
    fn messages_are_scrubbed_and_capped() {
        let key = ApiKey::new("sk-secret-secret-1234");
        let body = format!(
            r#"{{"error":{{"message":"Incorrect API key provided: {}. {}"}}}}"#,
            key.expose(),
            "x".repeat(1000)
        );
        let err = classify_status(
            "p",
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            body.as_bytes(),
            Some(&key),
        );
        let text = err.to_string();
        assert!(!text.contains(key.expose()));
        assert!(text.contains("[redacted]"));
        assert!(text.chars().count() < 500);
    }
}
