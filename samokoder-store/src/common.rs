//! Checks and preparation every backend shares, so they reject the same inputs the same way.
// Without any backend feature nothing here is called.
#![cfg_attr(
    not(any(
        feature = "sqlx-sqlite",
        feature = "sqlx-postgres",
        feature = "diesel-postgres"
    )),
    allow(dead_code)
)]

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::error::{StoreError, StoreResult};
use crate::model::*;

/// A file change with its content hashed, ready to write.
pub(crate) struct PreparedChange<'a> {
    pub(crate) path: &'a str,
    /// `(hash, content)` for a write, `None` for a delete.
    pub(crate) blob: Option<(String, &'a [u8])>,
}

/// Validates a new state and hashes its file contents before any transaction starts, so the
/// transaction holds the write lock only for writing.
pub(crate) fn prepare_state(state: &NewState) -> StoreResult<Vec<PreparedChange<'_>>> {
    validate_name("branch name", &state.branch)?;
    if state.step_label.trim().is_empty() {
        return Err(StoreError::invalid("step label must not be blank"));
    }
    let mut seen = HashSet::with_capacity(state.files.len());
    state
        .files
        .iter()
        .map(|change| {
            let path = change.path();
            validate_path(path)?;
            if !seen.insert(path) {
                return Err(StoreError::invalid(format!(
                    "file path {path:?} is changed twice in one state"
                )));
            }
            Ok(PreparedChange {
                path,
                blob: match change {
                    FileChange::Write { content, .. } => Some((blob_hash(content), content)),
                    FileChange::Delete { .. } => None,
                },
            })
        })
        .collect()
}

/// A lease length in microseconds; it must be positive and not absurd.
pub(crate) fn lease_micros(lease: Duration) -> StoreResult<i64> {
    match i64::try_from(lease.as_micros()) {
        Ok(micros) if micros > 0 && lease <= Duration::from_secs(7 * 24 * 3600) => Ok(micros),
        _ => Err(StoreError::invalid(
            "a lease must last between 1 µs and 7 days",
        )),
    }
}

pub(crate) fn validate_job(job: &NewJob) -> StoreResult<()> {
    validate_name("job kind", &job.kind)?;
    if job.max_attempts < 1 {
        return Err(StoreError::invalid("max_attempts must be at least 1"));
    }
    if job.dedupe_key.as_deref().is_some_and(str::is_empty) {
        return Err(StoreError::invalid("a dedupe key must not be empty"));
    }
    Ok(())
}

pub(crate) fn validate_worker(worker: &str) -> StoreResult<()> {
    validate_name("worker id", worker)
}

/// The message stored on a job whose worker vanished during its last attempt.
pub(crate) const LEASE_EXPIRED: &str = "lease expired on the last attempt";

/// A sealed secret must be what `samokoder-auth`'s secret box produces (`v1.<kid>.<data>`), and
/// `key_id` must be the key it names. This keeps a plaintext key that was handed over by mistake
/// out of the database, and keeps key rotation honest: [`crate::KeyRepo::list_sealed`] finds the
/// values still to re-seal by `key_id`, so a `key_id` that disagrees with the value would hide
/// it from the rotation until its real key is retired and it can no longer be opened.
pub(crate) fn validate_sealed(sealed: &SealedSecret) -> StoreResult<()> {
    let named = std::str::from_utf8(&sealed.ciphertext)
        .ok()
        .and_then(|text| samokoder_auth::secret_box::SecretBox::key_id_of(text).ok());
    match named {
        Some(kid) if kid == sealed.key_id => Ok(()),
        Some(_) => Err(StoreError::invalid(
            "the sealed secret's key id differs from the key that sealed it",
        )),
        None => Err(StoreError::invalid(
            "a sealed secret must be a secret-box value (v1.<key id>.<data>), never plaintext",
        )),
    }
}

pub(crate) fn validate_settings(settings: &Value) -> StoreResult<()> {
    if !settings.is_object() {
        return Err(StoreError::invalid(
            "provider settings must be a JSON object",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use samokoder_auth::secret_box::{SecretBox, SecretBoxConfig, SecretBoxKeyConfig};

    use super::*;

    #[test]
    fn sealed_secrets_must_be_secret_box_values_under_their_key() {
        let secret_box = SecretBox::new(&SecretBoxConfig {
            keys: vec![SecretBoxKeyConfig::generate("k1")],
            active_kid: None,
        })
        .unwrap();
        let value = secret_box.seal_str("sk-live-123", b"ad").unwrap();
        let sealed = |ciphertext: &[u8], key_id: &str| SealedSecret {
            ciphertext: ciphertext.to_vec(),
            key_id: key_id.into(),
        };
        validate_sealed(&sealed(value.as_bytes(), "k1")).unwrap();

        for (bad, key_id) in [
            (&b"sk-live-123"[..], "k1"), // plaintext handed over by mistake
            (value.as_bytes(), "k2"),    // names another key than the one that sealed it
            (b"", "k1"),                 // nothing
            (b"v1.k1.", "k1"),           // no data
            (b"\xff\xfe", "k1"),         // not even text
        ] {
            assert!(
                matches!(
                    validate_sealed(&sealed(bad, key_id)),
                    Err(StoreError::InvalidInput(_))
                ),
                "{:?} under {key_id} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
