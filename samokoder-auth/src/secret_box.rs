//! Encryption at rest for users' provider API keys and VCS tokens: AES-256-GCM with key ids.
//!
//! ## Sealed format
//!
//! A sealed value is one ASCII string, safe in any text column:
//!
//! ```text
//! v1.<kid>.<base64url without padding of (12-byte nonce || ciphertext || 16-byte tag)>
//! ```
//!
//! * `v1` names this format, so a later one can be told apart.
//! * `kid` names the key that sealed it (1-32 of `A-Z a-z 0-9 _ -`), so keys rotate without a
//!   flag day: configure a new key (it seals), every configured key opens, and
//!   [`SecretBox::reseal`] moves stored values to the newest key at leisure. Remove an old key
//!   only after no value names it.
//! * The nonce is 96 random bits per seal. With random nonces, NIST's bound is 2^32 seals per
//!   key; rotate long before that.
//!
//! ## Associated data
//!
//! Every seal and open takes *associated data* naming the value's owner and purpose, e.g.
//! [`associated_data`]`(user_id, "provider:openai")` = `user:<uuid>|provider:openai`. It is
//! authenticated, not stored: a ciphertext copied into another user's row, or from the OpenAI
//! slot to the GitHub slot, does not open. The format version and key id are bound in too.
//!
//! Opening never returns an empty string on failure (the original did): it is an error.
//!
//! ```
//! use samokoder_auth::secret_box::{associated_data, SecretBox, SecretBoxConfig, SecretBoxKeyConfig};
//! use uuid::Uuid;
//!
//! let config = SecretBoxConfig {
//!     keys: vec![SecretBoxKeyConfig::generate("2026-01")],
//!     active_kid: None,
//! };
//! let secret_box = SecretBox::new(&config)?;
//!
//! let alice = Uuid::new_v4();
//! let ad = associated_data(alice, "provider:openai");
//! let sealed = secret_box.seal_str("sk-live-123", &ad)?;
//! assert!(sealed.starts_with("v1.2026-01."));
//! assert_eq!(secret_box.open_string(&sealed, &ad)?.expose(), "sk-live-123");
//!
//! // Bound to its owner: the same bytes in Bob's row do not open.
//! let bob = associated_data(Uuid::new_v4(), "provider:openai");
//! assert!(secret_box.open(&sealed, &bob).is_err());
//! # Ok::<(), samokoder_auth::AuthError>(())
//! ```

use std::fmt;

use aes_gcm::aead::{Aead, Generate, Nonce, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::{AuthError, AuthResult};
use crate::keyring::{is_valid_kid, pick_active};
use crate::secret::SecretString;

/// Length of a secret-box key in bytes (AES-256).
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
/// The format tag at the start of every sealed value.
pub const FORMAT_VERSION: &str = "v1";
/// Domain separation for the associated data, so these ciphertexts cannot be confused with any
/// other use of the same key.
const AD_DOMAIN: &[u8] = b"samokoder/secret-box/v1\0";

/// One secret-box key.
#[derive(Debug, Clone, Deserialize)]
pub struct SecretBoxKeyConfig {
    /// Key id recorded in every value this key seals.
    pub kid: String,
    /// Base64 (standard or URL-safe alphabet, padding optional) of exactly 32 random bytes.
    /// Generate one with `openssl rand -base64 32`.
    pub key: SecretString,
}

impl SecretBoxKeyConfig {
    /// A key with 32 fresh random bytes, for development set-ups that generate their keys on
    /// first start.
    pub fn generate(kid: impl Into<String>) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        rand::fill(&mut bytes[..]);
        Self {
            kid: kid.into(),
            key: SecretString::new(STANDARD.encode(&bytes[..])),
        }
    }
}

/// The secret-box keyring, as the server's configuration holds it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretBoxConfig {
    /// Keys, oldest first. All of them open.
    pub keys: Vec<SecretBoxKeyConfig>,
    /// The key that seals; when absent, the last of `keys`.
    pub active_kid: Option<String>,
}

/// The owner-and-purpose binding for a user's secret: `user:<uuid>|<purpose>`, with purposes
/// such as `provider:openai` or `vcs:github`.
pub fn associated_data(user_id: Uuid, purpose: &str) -> Vec<u8> {
    format!("user:{user_id}|{purpose}").into_bytes()
}

struct BoxKey {
    kid: String,
    /// With aes-gcm's `zeroize` feature, the key schedule is wiped on drop.
    cipher: Aes256Gcm,
}

/// Seals and opens secrets. Build once at start-up and share behind an `Arc`.
pub struct SecretBox {
    keys: Vec<BoxKey>,
    active: usize,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .field("active_kid", &self.active_kid())
            .finish()
    }
}

/// A sealed value taken apart.
struct Parsed<'a> {
    kid: &'a str,
    blob: Vec<u8>,
}

impl SecretBox {
    /// Builds the keyring. Fails, naming the key id, on a key that is not base64 of exactly
    /// 32 bytes or is obviously not random (all bytes equal).
    pub fn new(config: &SecretBoxConfig) -> AuthResult<Self> {
        let active = pick_active(
            config.keys.iter().map(|k| k.kid.as_str()),
            config.active_kid.as_deref(),
            "secret box keys",
        )?;
        let keys = config
            .keys
            .iter()
            .map(|key| {
                let bytes = decode_key(&key.kid, &key.key)?;
                let cipher = Aes256Gcm::new_from_slice(&bytes[..]).map_err(|_| {
                    AuthError::InvalidSecretBoxKey {
                        kid: key.kid.clone(),
                        reason: "not a valid AES-256 key".into(),
                    }
                })?;
                Ok(BoxKey {
                    kid: key.kid.clone(),
                    cipher,
                })
            })
            .collect::<AuthResult<Vec<_>>>()?;
        Ok(Self { keys, active })
    }

    /// The id of the key that seals.
    pub fn active_kid(&self) -> &str {
        &self.keys[self.active].kid
    }

    /// Seals `plaintext` bound to `associated_data`, with the active key and a fresh nonce.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> AuthResult<String> {
        let key = &self.keys[self.active];
        let nonce = Nonce::<Aes256Gcm>::generate();
        let ad = full_ad(&key.kid, associated_data);
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &ad,
                },
            )
            .map_err(|_| AuthError::SealFailed)?;
        let mut blob = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(format!(
            "{FORMAT_VERSION}.{}.{}",
            key.kid,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// [`SecretBox::seal`] for a string secret.
    pub fn seal_str(&self, plaintext: &str, associated_data: &[u8]) -> AuthResult<String> {
        self.seal(plaintext.as_bytes(), associated_data)
    }

    /// Opens a sealed value with the associated data it was sealed with. The plaintext is
    /// wiped from memory when dropped.
    pub fn open(&self, sealed: &str, associated_data: &[u8]) -> AuthResult<Zeroizing<Vec<u8>>> {
        let parsed = parse(sealed)?;
        let key = self
            .keys
            .iter()
            .find(|key| key.kid == parsed.kid)
            .ok_or_else(|| AuthError::UnknownSecretBoxKey {
                kid: parsed.kid.to_owned(),
            })?;
        let (nonce, ciphertext) = parsed.blob.split_at(NONCE_BYTES);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce)
            .map_err(|_| AuthError::MalformedSealedValue("bad nonce length"))?;
        let ad = full_ad(&key.kid, associated_data);
        key.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &ad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| AuthError::OpenFailed)
    }

    /// [`SecretBox::open`] for a string secret.
    pub fn open_string(&self, sealed: &str, associated_data: &[u8]) -> AuthResult<SecretString> {
        let bytes = self.open(sealed, associated_data)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| AuthError::NotUtf8)?;
        Ok(SecretString::new(text))
    }

    /// The key id a sealed value names, without opening it.
    pub fn key_id_of(sealed: &str) -> AuthResult<&str> {
        parse(sealed).map(|parsed| parsed.kid)
    }

    /// Whether a sealed value was sealed by another key than the active one.
    pub fn needs_reseal(&self, sealed: &str) -> AuthResult<bool> {
        Ok(Self::key_id_of(sealed)? != self.active_kid())
    }

    /// Re-seals a value under the active key, for rotating stored secrets: `Ok(None)` when it
    /// already is, `Ok(Some(new_value))` to write back otherwise. The value must open, so a
    /// tampered or misbound value is reported rather than laundered into a fresh ciphertext.
    pub fn reseal(&self, sealed: &str, associated_data: &[u8]) -> AuthResult<Option<String>> {
        let plaintext = self.open(sealed, associated_data)?;
        if !self.needs_reseal(sealed)? {
            return Ok(None);
        }
        self.seal(&plaintext, associated_data).map(Some)
    }
}

fn full_ad(kid: &str, associated_data: &[u8]) -> Vec<u8> {
    // kid cannot contain NUL (key id rules), so this concatenation is unambiguous.
    let mut ad = Vec::with_capacity(AD_DOMAIN.len() + kid.len() + 1 + associated_data.len());
    ad.extend_from_slice(AD_DOMAIN);
    ad.extend_from_slice(kid.as_bytes());
    ad.push(0);
    ad.extend_from_slice(associated_data);
    ad
}

fn parse(sealed: &str) -> AuthResult<Parsed<'_>> {
    let mut parts = sealed.splitn(3, '.');
    let (Some(version), Some(kid), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::MalformedSealedValue(
            "expected v1.<kid>.<base64url data>",
        ));
    };
    if version != FORMAT_VERSION {
        return Err(AuthError::MalformedSealedValue("unknown format version"));
    }
    if !is_valid_kid(kid) {
        return Err(AuthError::MalformedSealedValue("malformed key id"));
    }
    let blob = URL_SAFE_NO_PAD
        .decode(data)
        .map_err(|_| AuthError::MalformedSealedValue("data is not unpadded base64url"))?;
    if blob.len() < NONCE_BYTES + TAG_BYTES {
        return Err(AuthError::MalformedSealedValue("data too short"));
    }
    Ok(Parsed { kid, blob })
}

fn decode_key(kid: &str, key: &SecretString) -> AuthResult<Zeroizing<Vec<u8>>> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let invalid = |reason: String| AuthError::InvalidSecretBoxKey {
        kid: kid.to_owned(),
        reason,
    };
    let text = key.expose().trim();
    if text.is_empty() {
        return Err(invalid("the key is empty".into()));
    }
    let bytes = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT)
        .decode(text)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT).decode(text))
        .map(Zeroizing::new)
        .map_err(|_| invalid("not base64; expected base64 of 32 random bytes".into()))?;
    if bytes.len() != KEY_BYTES {
        return Err(invalid(format!(
            "decodes to {} bytes; exactly {KEY_BYTES} are required",
            bytes.len()
        )));
    }
    if bytes.iter().all(|b| *b == bytes[0]) {
        return Err(invalid("all bytes are equal; use 32 random bytes".into()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE;
    use proptest::prelude::*;

    use super::*;

    fn key(kid: &str, byte: u8) -> SecretBoxKeyConfig {
        let mut bytes = [byte; KEY_BYTES];
        bytes[0] = byte.wrapping_add(1);
        SecretBoxKeyConfig {
            kid: kid.into(),
            key: SecretString::new(STANDARD.encode(bytes)),
        }
    }

    fn boxed(keys: Vec<SecretBoxKeyConfig>) -> SecretBox {
        SecretBox::new(&SecretBoxConfig {
            keys,
            active_kid: None,
        })
        .unwrap()
    }

    #[test]
    fn round_trip_and_format() {
        let sb = boxed(vec![key("k1", 7)]);
        let ad = associated_data(Uuid::nil(), "vcs:github");
        assert_eq!(
            ad,
            b"user:00000000-0000-0000-0000-000000000000|vcs:github".to_vec()
        );
        let sealed = sb.seal_str("ghp_secret", &ad).unwrap();
        let mut parts = sealed.split('.');
        assert_eq!(parts.next(), Some("v1"));
        assert_eq!(parts.next(), Some("k1"));
        let blob = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        assert_eq!(blob.len(), NONCE_BYTES + "ghp_secret".len() + TAG_BYTES);
        assert_eq!(sb.open_string(&sealed, &ad).unwrap().expose(), "ghp_secret");
        // Fresh nonce each time.
        assert_ne!(sealed, sb.seal_str("ghp_secret", &ad).unwrap());
    }

    #[test]
    fn empty_plaintext_round_trips_and_is_not_confused_with_failure() {
        let sb = boxed(vec![key("k1", 7)]);
        let sealed = sb.seal(b"", b"ad").unwrap();
        assert!(sb.open(&sealed, b"ad").unwrap().is_empty());
        assert!(matches!(
            sb.open(&sealed, b"other"),
            Err(AuthError::OpenFailed)
        ));
    }

    #[test]
    fn wrong_key_under_the_same_kid_fails() {
        let ours = boxed(vec![key("k1", 7)]);
        let theirs = boxed(vec![key("k1", 8)]);
        let sealed = theirs.seal(b"secret", b"ad").unwrap();
        assert!(matches!(
            ours.open(&sealed, b"ad"),
            Err(AuthError::OpenFailed)
        ));
    }

    #[test]
    fn relabelled_kid_fails_even_when_both_keys_are_configured() {
        let sb = boxed(vec![key("k1", 7), key("k2", 9)]);
        let sealed = sb.seal(b"secret", b"ad").unwrap();
        let relabelled = sealed.replacen(".k2.", ".k1.", 1);
        assert!(matches!(
            sb.open(&relabelled, b"ad"),
            Err(AuthError::OpenFailed)
        ));
    }

    #[test]
    fn rotation_old_values_open_and_reseal_moves_them() {
        let old = boxed(vec![key("2025", 7)]);
        let ad = associated_data(Uuid::new_v4(), "provider:anthropic");
        let sealed_old = old.seal(b"sk-ant-1", &ad).unwrap();

        let rotated = boxed(vec![key("2025", 7), key("2026", 9)]);
        assert_eq!(rotated.active_kid(), "2026");
        assert_eq!(&rotated.open(&sealed_old, &ad).unwrap()[..], b"sk-ant-1");
        assert!(rotated.needs_reseal(&sealed_old).unwrap());

        let moved = rotated.reseal(&sealed_old, &ad).unwrap().unwrap();
        assert_eq!(SecretBox::key_id_of(&moved).unwrap(), "2026");
        assert!(!rotated.needs_reseal(&moved).unwrap());
        assert_eq!(rotated.reseal(&moved, &ad).unwrap(), None);

        // After the old key is retired, the moved value still opens, the old one does not.
        let retired = boxed(vec![key("2026", 9)]);
        assert_eq!(&retired.open(&moved, &ad).unwrap()[..], b"sk-ant-1");
        assert!(matches!(
            retired.open(&sealed_old, &ad),
            Err(AuthError::UnknownSecretBoxKey { kid }) if kid == "2025"
        ));
        // Reseal refuses values bound elsewhere instead of re-encrypting them.
        assert!(rotated.reseal(&sealed_old, b"other").is_err());
    }

    #[test]
    fn designated_active_key_seals() {
        let sb = SecretBox::new(&SecretBoxConfig {
            keys: vec![key("a", 1), key("b", 2)],
            active_kid: Some("a".into()),
        })
        .unwrap();
        assert!(sb.seal(b"x", b"").unwrap().starts_with("v1.a."));
    }

    #[test]
    fn malformed_values_are_errors() {
        let sb = boxed(vec![key("k1", 7)]);
        for bad in [
            "",
            "v1",
            "v1.k1",
            "v2.k1.AAAA",
            "v1.k 1.AAAA",
            "v1.k1.!!!!",
            "v1.k1.AAAA",
            "v1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert!(
                matches!(sb.open(bad, b""), Err(AuthError::MalformedSealedValue(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn key_configuration_errors_name_the_key() {
        let cases = [
            ("not base64 !!", "not base64"),
            ("", "empty"),
            (&STANDARD.encode([1u8; 16]), "16 bytes"),
            (&STANDARD.encode([1u8; 33]), "33 bytes"),
            (&STANDARD.encode([0u8; 32]), "all bytes are equal"),
        ];
        for (material, expected) in cases {
            let err = SecretBox::new(&SecretBoxConfig {
                keys: vec![SecretBoxKeyConfig {
                    kid: "prod-2026".into(),
                    key: SecretString::new(material),
                }],
                active_kid: None,
            })
            .unwrap_err();
            let message = err.to_string();
            assert!(message.contains("\"prod-2026\""), "{message}");
            assert!(message.contains(expected), "{message}");
            assert!(
                material.is_empty() || !message.contains(material),
                "{message}"
            );
        }
        assert!(matches!(
            SecretBox::new(&SecretBoxConfig::default()),
            Err(AuthError::NoKeys { .. })
        ));
    }

    #[test]
    fn keys_in_either_alphabet_with_or_without_padding() {
        let bytes: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(250))
            .collect();
        let encodings = [
            STANDARD.encode(&bytes),
            URL_SAFE.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes),
        ];
        let sealed = boxed(vec![SecretBoxKeyConfig {
            kid: "k".into(),
            key: SecretString::new(encodings[0].clone()),
        }])
        .seal(b"x", b"")
        .unwrap();
        for encoded in encodings {
            let sb = boxed(vec![SecretBoxKeyConfig {
                kid: "k".into(),
                key: SecretString::new(encoded),
            }]);
            assert_eq!(&sb.open(&sealed, b"").unwrap()[..], b"x");
        }
    }

    #[test]
    fn debug_shows_only_key_ids() {
        let config = SecretBoxConfig {
            keys: vec![key("k1", 7)],
            active_kid: None,
        };
        let shown = format!("{:?} {config:?}", SecretBox::new(&config).unwrap());
        assert!(shown.contains("k1"));
        assert!(!shown.contains(config.keys[0].key.expose()), "{shown}");
    }

    #[test]
    fn generated_keys_work_and_differ() {
        let (a, b) = (
            SecretBoxKeyConfig::generate("a"),
            SecretBoxKeyConfig::generate("b"),
        );
        assert_ne!(a.key.expose(), b.key.expose());
        boxed(vec![a, b]);
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(plaintext in proptest::collection::vec(any::<u8>(), 0..512),
                                 ad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let sb = boxed(vec![key("k1", 7)]);
            let sealed = sb.seal(&plaintext, &ad).unwrap();
            prop_assert_eq!(&sb.open(&sealed, &ad).unwrap()[..], &plaintext[..]);
        }

        #[test]
        fn any_flipped_bit_fails_to_open(plaintext in proptest::collection::vec(any::<u8>(), 0..64),
                                         position in any::<prop::sample::Index>(),
                                         bit in 0u8..8) {
            let sb = boxed(vec![key("k1", 7), key("k2", 9)]);
            let sealed = sb.seal(&plaintext, b"ad").unwrap();
            let mut bytes = sealed.into_bytes();
            let i = position.index(bytes.len());
            bytes[i] ^= 1 << bit;
            // A flipped bit may leave invalid UTF-8; that cannot even be presented as a value.
            if let Ok(tampered) = String::from_utf8(bytes) {
                prop_assert!(sb.open(&tampered, b"ad").is_err());
            }
        }

        #[test]
        fn any_flipped_bit_of_the_binary_payload_fails(plaintext in proptest::collection::vec(any::<u8>(), 0..64),
                                                      position in any::<prop::sample::Index>(),
                                                      bit in 0u8..8) {
            let sb = boxed(vec![key("k1", 7)]);
            let sealed = sb.seal(&plaintext, b"ad").unwrap();
            let data = sealed.rsplit('.').next().unwrap();
            let mut blob = URL_SAFE_NO_PAD.decode(data).unwrap();
            let i = position.index(blob.len());
            blob[i] ^= 1 << bit;
            let tampered = format!("v1.k1.{}", URL_SAFE_NO_PAD.encode(blob));
            prop_assert!(matches!(sb.open(&tampered, b"ad"), Err(AuthError::OpenFailed)));
        }

        #[test]
        fn other_associated_data_or_key_fails(plaintext in proptest::collection::vec(any::<u8>(), 0..64),
                                              ad in proptest::collection::vec(any::<u8>(), 0..32),
                                              other in proptest::collection::vec(any::<u8>(), 0..32)) {
            prop_assume!(ad != other);
            let sb = boxed(vec![key("k1", 7)]);
            let sealed = sb.seal(&plaintext, &ad).unwrap();
            prop_assert!(matches!(sb.open(&sealed, &other), Err(AuthError::OpenFailed)));
            let wrong_key = boxed(vec![key("k1", 8)]);
            prop_assert!(matches!(wrong_key.open(&sealed, &ad), Err(AuthError::OpenFailed)));
        }
    }
}
