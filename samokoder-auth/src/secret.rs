//! Values that must never be printed: passwords, tokens, keys.

use std::fmt;

use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// A string secret (password, API key, signing key, token).
///
/// `Debug` and `Display` print `[redacted]`, so a secret that ends up in a log line or an error
/// message by accident shows nothing. The memory is zeroed when the value is dropped. Read the
/// value deliberately with [`SecretString::expose`].
///
/// ```
/// use samokoder_auth::secret::SecretString;
///
/// let key = SecretString::new("sk-live-123");
/// assert_eq!(format!("{key:?} {key}"), "[redacted] [redacted]");
/// assert_eq!(key.expose(), "sk-live-123");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Every call site is a place where the secret leaves its wrapper.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, compared in time that does not depend on where the
    /// two first differ (only on their lengths), so a caller guessing a token byte by byte
    /// learns nothing from response times. An empty secret matches nothing.
    ///
    /// ```
    /// use samokoder_auth::secret::SecretString;
    ///
    /// let token = SecretString::new("scrape-7f3a");
    /// assert!(token.matches("scrape-7f3a"));
    /// assert!(!token.matches("scrape-7f3b"));
    /// assert!(!SecretString::new("").matches(""));
    /// ```
    pub fn matches(&self, presented: &str) -> bool {
        !self.0.is_empty() && bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let secret = SecretString::new("hunter2");
        let shown = format!("{secret} {secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn matches_only_the_whole_secret() {
        let secret = SecretString::new("abcdef");
        assert!(secret.matches("abcdef"));
        assert!(!secret.matches("abcde"));
        assert!(!secret.matches("abcdefg"));
        assert!(!secret.matches("Abcdef"));
        assert!(!secret.matches(""));
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let secret: SecretString = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(secret.expose(), "abc");
    }
}
