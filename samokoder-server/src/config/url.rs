//! Connection URLs that may carry a password.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A database or Redis URL. `Debug`, `Display` and `Serialize` hide the password
/// (`postgres://app:[redacted]@db/samokoder`), so the URL can be logged and printed; the
/// connection code reads it with [`ConnectionUrl::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, password included. Use only to connect.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL's scheme (`sqlite`, `postgres`, `redis`, ...), or `""` when it has none.
    pub fn scheme(&self) -> &str {
        self.0.split_once("://").map_or("", |(scheme, _)| scheme)
    }

    /// The URL with the password part of its user info replaced.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        // The authority ends at the first '/', '?' or '#'; user info is what precedes its last '@'.
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let Some((userinfo, host)) = authority.rsplit_once('@') else {
            return self.0.clone();
        };
        match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:[redacted]@{host}{tail}"),
            // No ':' means the whole user info may be a token (`redis://token@host`).
            None if userinfo.is_empty() => self.0.clone(),
            None => format!("{scheme}://[redacted]@{host}{tail}"),
        }
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for ConnectionUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for ConnectionUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords_in_every_rendering() {
        let url =
            ConnectionUrl::new("postgres://app:s3cr3t@db.internal:5432/samokoder?sslmode=require");
        for shown in [
            format!("{url}"),
            format!("{url:?}"),
            serde_json::to_string(&url).unwrap(),
        ] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(
                shown.contains("app:[redacted]@db.internal:5432/samokoder"),
                "{shown}"
            );
        }
        assert_eq!(
            url.expose(),
            "postgres://app:s3cr3t@db.internal:5432/samokoder?sslmode=require"
        );
        assert_eq!(url.scheme(), "postgres");
    }

    #[test]
    fn hides_token_only_user_info_and_keeps_plain_urls() {
        assert_eq!(
            ConnectionUrl::new("redis://:pw@127.0.0.1:6379/0").redacted(),
            "redis://:[redacted]@127.0.0.1:6379/0"
        );
        assert_eq!(
            ConnectionUrl::new("rediss://tok3n@cache/0").redacted(),
            "rediss://[redacted]@cache/0"
        );
        assert_eq!(
            ConnectionUrl::new("sqlite://./.samokoder/samokoder.db?mode=rwc").redacted(),
            "sqlite://./.samokoder/samokoder.db?mode=rwc"
        );
        // An '@' in the path is not user info.
        assert_eq!(
            ConnectionUrl::new("sqlite:///data/a@b.db").redacted(),
            "sqlite:///data/a@b.db"
        );
    }
}
