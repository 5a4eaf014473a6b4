//! Deserializers that accept both the TOML shape and the compact environment shape of a list.
//!
//! None of them ever puts the input into an error message: some of these values are secrets.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::KeyedSecret;
use samokoder_auth::secret::SecretString;

/// A list given either as an array or as one comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrString<T> {
    List(Vec<T>),
    String(String),
}

/// Splits `a, b,c` (optionally wrapped in `[` `]`) into trimmed, unquoted, non-empty items.
fn split_list(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    let raw = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    raw.split(',')
        .map(|item| {
            item.trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_owned()
        })
        .filter(|item| !item.is_empty())
        .collect()
}

/// `Option<Vec<String>>` from an array or a comma-separated string.
pub(super) fn optional_string_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    Ok(
        match Option::<ListOrString<String>>::deserialize(deserializer)? {
            None => None,
            Some(ListOrString::List(items)) => Some(items),
            Some(ListOrString::String(raw)) => Some(split_list(&raw)),
        },
    )
}

/// `Vec<String>` from an array or a comma-separated string.
pub(super) fn string_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    Ok(match ListOrString::<String>::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(raw) => split_list(&raw),
    })
}

/// CIDRs or bare addresses (a bare address is a /32 or /128), as an array or a comma-separated
/// string.
pub(super) fn ip_nets<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    let items = match ListOrString::<String>::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(raw) => split_list(&raw),
    };
    items
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    // Proxy addresses are not secret, and naming the bad one saves a search.
                    de::Error::custom(format!(
                        "`{item}` is neither a CIDR (10.0.0.0/8) nor an IP address"
                    ))
                })
        })
        .collect()
}

/// The TOML shape of one key: `{ kid = "...", secret = "..." }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyedSecretTable {
    kid: String,
    #[serde(deserialize_with = "secret_string")]
    secret: SecretString,
}

/// A secret string whose type errors never quote the value.
fn secret_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = SecretString;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(SecretString::new(value))
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom("a secret must be a string (quote it)"))
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom("a secret must be a string (quote it)"))
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom("a secret must be a string (quote it)"))
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom("a secret must be a string (quote it)"))
        }
    }

    deserializer.deserialize_any(Visitor)
}

/// Keys with ids: an array of `{kid, secret}` tables, or the string `kid:secret,kid:secret`.
pub(super) fn keyed_secrets<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<KeyedSecret>, D::Error> {
    // Not `ListOrString`: its "did not match any variant" error is fine, but deserializing the
    // table variant first would produce serde messages quoting the offending value.
    struct Visitor;

    impl<'de> de::Visitor<'de> for Visitor {
        type Value = Vec<KeyedSecret>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of {kid, secret} tables or a `kid:secret,kid:secret` string")
        }

        fn visit_str<E: de::Error>(self, raw: &str) -> Result<Self::Value, E> {
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .enumerate()
                .map(|(index, item)| {
                    let (kid, secret) = item.split_once(':').ok_or_else(|| {
                        E::custom(format!(
                            "entry {} has no `:` between key id and secret",
                            index + 1
                        ))
                    })?;
                    Ok(KeyedSecret::new(kid.trim(), secret.trim()))
                })
                .collect()
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(table) = seq.next_element::<KeyedSecretTable>()? {
                keys.push(KeyedSecret {
                    kid: table.kid,
                    secret: table.secret,
                });
            }
            Ok(keys)
        }

        // Other shapes are refused by serde with `expecting`; the defaults of `visit_i64` etc.
        // would quote the value, so numbers and booleans get value-free messages too.
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom("expected a list of keys, found a number"))
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom("expected a list of keys, found a number"))
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom("expected a list of keys, found a number"))
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom("expected a list of keys, found a boolean"))
        }
    }

    deserializer.deserialize_any(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_comma_lists_with_or_without_brackets() {
        assert_eq!(split_list("a, b,,c "), vec!["a", "b", "c"]);
        assert_eq!(
            split_list("[\"https://a.example\", 'https://b.example']"),
            vec!["https://a.example", "https://b.example"]
        );
        assert!(split_list("").is_empty());
    }
}
