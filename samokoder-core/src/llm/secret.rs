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

    /// Replaces every occurrence of the key in `text` with `[redacted]`.
    ///
    /// Provider error bodies sometimes echo (parts of) the key; every message the layer builds
    /// from a response passes through here before it can reach an error or a log line.
    pub fn scrub(&self, text: &str) -> String {
        // Keys shorter than 8 characters are test values or empty; replacing them would mangle
        // ordinary words in messages without protecting anything.
        if self.0.len() < 8 {
            return text.to_owned();
        }
        text.replace(&self.0, "[redacted]")
    }
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
    fn deserializes_strings_and_numbers() {
        let key: ApiKey = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(key.expose(), "abc");
        let key: ApiKey = serde_json::from_str("12345678").unwrap();
        assert_eq!(key.expose(), "12345678");
    }
}
