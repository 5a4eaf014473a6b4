//! What the two keyrings (token signing, secret box) share: key id rules and picking the key
//! that signs or seals.

use crate::error::{AuthError, AuthResult};

/// Longest key id.
const MAX_KID_LEN: usize = 32;

/// Key ids travel in JWT headers and in sealed values (`v1.<kid>.<...>`, where `.` separates),
/// so they are restricted to characters that need no escaping anywhere.
pub(crate) fn is_valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn check_kid(kid: &str) -> AuthResult<()> {
    if is_valid_kid(kid) {
        Ok(())
    } else {
        Err(AuthError::InvalidKeyId {
            kid: kid.to_owned(),
        })
    }
}

/// A key id taken from untrusted input, made safe to put into an error message or a log line.
pub(crate) fn printable_kid(kid: &str) -> String {
    if is_valid_kid(kid) {
        kid.to_owned()
    } else {
        "<malformed>".to_owned()
    }
}

/// Checks the key ids of a keyring (valid, distinct, at least one) and returns the index of the
/// active key: the designated one, or else the last one listed (new keys are appended).
pub(crate) fn pick_active<'a>(
    kids: impl IntoIterator<Item = &'a str>,
    active_kid: Option<&str>,
    what: &'static str,
) -> AuthResult<usize> {
    let kids: Vec<&str> = kids.into_iter().collect();
    for (i, kid) in kids.iter().enumerate() {
        check_kid(kid)?;
        if kids[..i].contains(kid) {
            return Err(AuthError::DuplicateKeyId {
                kid: (*kid).to_owned(),
            });
        }
    }
    let last = kids
        .len()
        .checked_sub(1)
        .ok_or(AuthError::NoKeys { what })?;
    match active_kid {
        None => Ok(last),
        Some(active) => {
            kids.iter()
                .position(|kid| *kid == active)
                .ok_or_else(|| AuthError::UnknownActiveKey {
                    kid: active.to_owned(),
                    what,
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_rules() {
        for ok in ["k1", "2026-01", "A_b-9", &"x".repeat(32)] {
            assert!(is_valid_kid(ok), "{ok}");
        }
        for bad in ["", "a.b", "a b", "ключ", "a/b", &"x".repeat(33)] {
            assert!(!is_valid_kid(bad), "{bad}");
            assert!(matches!(
                check_kid(bad),
                Err(AuthError::InvalidKeyId { .. })
            ));
        }
        assert_eq!(printable_kid("a\nb"), "<malformed>");
    }

    #[test]
    fn active_is_designated_or_last() {
        assert_eq!(pick_active(["a", "b", "c"], None, "keys").unwrap(), 2);
        assert_eq!(pick_active(["a", "b", "c"], Some("a"), "keys").unwrap(), 0);
        assert!(matches!(
            pick_active(["a", "b"], Some("z"), "keys"),
            Err(AuthError::UnknownActiveKey { .. })
        ));
        assert!(matches!(
            pick_active([], None, "keys"),
            Err(AuthError::NoKeys { what: "keys" })
        ));
        assert!(matches!(
            pick_active(["a", "b", "a"], None, "keys"),
            Err(AuthError::DuplicateKeyId { kid }) if kid == "a"
        ));
    }
}
