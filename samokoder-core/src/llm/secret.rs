//! A redacting wrapper for API keys.
//!
//! `samokoder-core` cannot depend on `samokoder-auth` (the dependency points the other way), so the
//! LLM layer carries its own small secret type. It deliberately implements neither `Serialize` nor
//! a revealing `Debug`/`Display`: the only way to the plain text is [`ApiKey::expose`], which the
//! providers call at the moment they build a request header.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// An API key (or any other credential) that cannot be printed by accident.
///
/// ```
/// use samokoder_core::llm::ApiKey;
///
/// let key = ApiKey::new("sk-live-123456");
/// assert_eq!(format!("{key:?}"), "ApiKey(\"[redacted]\")");
/// assert_eq!(key.to_string(), "[redacted]");
/// assert_eq!(key.expose(), "sk-live-123456");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The plain key. Call it only where the key leaves the process (a request header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the key is empty (a provider that needs no key, such as a local Ollama).
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// Replaces the key in `text` with `[redacted]`: the key itself, any run of
    /// [`SCRUB_MIN_RUN`] or more of its characters (a truncated or partly masked echo such as
    /// `sk-proj-AbCd...wxyz` shows its prefix and its end), and the key in base64 (standard and
    /// URL-safe, padded or not, alone or as the password of `Basic` credentials), hex and
    /// percent-encoding.
    ///
    /// Provider error bodies sometimes echo the key in one of these forms; every message the
    /// layer builds from a response passes through here before it can reach an error, an
    /// event or a log line.
    pub fn scrub(&self, text: &str) -> String {
        // Keys shorter than 8 characters are test values or empty; replacing them would mangle
        // ordinary words in messages without protecting anything.
        if self.0.len() < SCRUB_MIN_RUN {
            return text.to_owned();
        }
        let mut out = text.to_owned();
        for encoded in encodings(&self.0) {
            out = out.replace(&encoded, "[redacted]");
        }
        redact_runs(&out, &self.0)
    }
}

/// The shortest run of a key's characters [`ApiKey::scrub`] removes.
pub const SCRUB_MIN_RUN: usize = 8;

/// The forms a key travels in besides itself.
fn encodings(key: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut forms = vec![key.to_owned()];
    for raw in [key.to_owned(), format!(":{key}")] {
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            forms.push(engine.encode(raw.as_bytes()));
        }
    }
    forms.push(hex::encode(key));
    forms.push(hex::encode_upper(key));
    forms.push(
        key.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect(),
    );
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

/// `text` with every run of at least [`SCRUB_MIN_RUN`] consecutive characters that also
/// occurs in `key` replaced by `[redacted]`.
fn redact_runs(text: &str, key: &str) -> String {
    let text_chars: Vec<char> = text.chars().collect();
    let key_chars: Vec<char> = key.chars().collect();
    let mut hidden = vec![false; text_chars.len()];
    for start in 0..text_chars.len() {
        let longest = (0..key_chars.len())
            .map(|k| {
                text_chars[start..]
                    .iter()
                    .zip(&key_chars[k..])
                    .take_while(|(a, b)| a == b)
                    .count()
            })
            .max()
            .unwrap_or(0);
        if longest >= SCRUB_MIN_RUN {
            hidden[start..start + longest]
                .iter_mut()
                .for_each(|h| *h = true);
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for (c, hide) in text_chars.iter().zip(&hidden) {
        match (hide, in_run) {
            (true, false) => {
                out.push_str("[redacted]");
                in_run = true;
            }
            (true, true) => {}
            (false, _) => {
                out.push(*c);
                in_run = false;
            }
        }
    }
    out
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiKey").field(&"[redacted]").finish()
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for ApiKey {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for ApiKey {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<'de> Deserialize<'de> for ApiKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Environment loaders (figment) turn an all-digit value into a number; a key is text
        // either way, so accept both instead of failing on an unlucky key.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ApiKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an API key string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ApiKey, E> {
                Ok(ApiKey(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<ApiKey, E> {
                Ok(ApiKey(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ApiKey, E> {
                Ok(ApiKey(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ApiKey, E> {
                Ok(ApiKey(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_key() {
        let key = ApiKey::new("sk-very-secret-value");
        assert!(!format!("{key:?}").contains("secret"));
        assert!(!format!("{key}").contains("secret"));
        assert!(!format!("{:#?}", Some(&key)).contains("secret"));
    }

    #[test]
    fn scrub_removes_echoed_keys() {
        let key = ApiKey::new("sk-very-secret-value");
        let echoed = "Incorrect API key provided: sk-very-secret-value.";
        assert_eq!(key.scrub(echoed), "Incorrect API key provided: [redacted].");
    }

    #[test]
    fn scrub_removes_truncated_masked_and_encoded_echoes() {
        use base64::Engine as _;
        let secret = "sk-proj-Q7vX9mK2pL4nR8tY1wZ6";
        let key = ApiKey::new(secret);
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for echo in [
            format!("key {secret} is invalid"),
            "Incorrect API key provided: sk-proj-Q7vX****************wZ6.".to_owned(),
            "key ending in ...L4nR8tY1wZ6 was revoked".to_owned(),
            format!("token {}", b64.encode(secret)),
            format!("token {}", url.encode(secret)),
            format!("Authorization: Basic {}", b64.encode(format!(":{secret}"))),
            format!("hex {}", hex::encode(secret)),
            format!("hex {}", hex::encode_upper(secret)),
            "url sk-proj-Q7vX9mK2pL4nR8tY1wZ6%0A".to_owned(),
        ] {
            let scrubbed = key.scrub(&echo);
            assert!(scrubbed.contains("[redacted]"), "{echo} -> {scrubbed}");
            for part in ["Q7vX9mK2", "L4nR8tY1", "pL4nR8tY"] {
                assert!(!scrubbed.contains(part), "{echo} -> {scrubbed}");
            }
            assert!(!scrubbed.contains(&hex::encode(secret)), "{scrubbed}");
        }
        // Ordinary text and short coincidences stay.
        assert_eq!(
            key.scrub("rate limit reached for gpt-4o"),
            "rate limit reached for gpt-4o"
        );
        assert_eq!(
            key.scrub("sk-proj key"),
            "sk-proj key",
            "seven characters are not a run"
        );
        assert_eq!(ApiKey::new("short").scrub("short text"), "short text");
        assert_eq!(redact_runs("ab12345678cd", "x12345678y"), "ab[redacted]cd");
        assert_eq!(
            redact_runs("12345678 and 12345678", "012345678"),
            "[redacted] and [redacted]"
        );
    }

    #[test]
    fn deserializes_strings_and_numbers() {
        let key: ApiKey = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(key.expose(), "abc");
        let key: ApiKey = serde_json::from_str("12345678").unwrap();
        assert_eq!(key.expose(), "12345678");
    }
}
