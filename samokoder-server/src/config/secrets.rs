//! Signing and encryption keys: the configured ones, or development keys generated once.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Config, ConfigError, redact, serde_util};
use samokoder_auth::secret::SecretString;

/// Name of the development secrets file inside the data directory.
const DEV_SECRETS_FILE: &str = "dev-secrets.toml";
/// Key id given to generated development keys.
const DEV_KID: &str = "dev";
/// Bytes of randomness in a generated JWT key (64 characters once encoded).
const JWT_KEY_BYTES: usize = 48;
/// Length of a secret-box key.
pub(crate) const SECRET_BOX_KEY_BYTES: usize = 32;

/// A secret with the id that names it in tokens and ciphertexts, so keys can rotate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyedSecret {
    /// The key id (`kid`), e.g. `2026-01`. Not secret.
    pub kid: String,
    /// The key material. Serialized as `[redacted]`.
    #[serde(serialize_with = "redact")]
    pub secret: SecretString,
}

impl KeyedSecret {
    /// A key with its id.
    pub fn new(kid: impl Into<String>, secret: impl Into<SecretString>) -> Self {
        Self {
            kid: kid.into(),
            secret: secret.into(),
        }
    }

    /// The 32 key bytes of a secret-box key (base64 in configuration), or `None` when the value
    /// is not base64 of exactly 32 bytes.
    pub fn secret_box_bytes(&self) -> Option<Zeroizing<[u8; SECRET_BOX_KEY_BYTES]>> {
        let decoded = Zeroizing::new(STANDARD.decode(self.secret.expose().trim()).ok()?);
        let mut key = Zeroizing::new([0u8; SECRET_BOX_KEY_BYTES]);
        if decoded.len() != SECRET_BOX_KEY_BYTES {
            return None;
        }
        key.copy_from_slice(&decoded);
        Some(key)
    }
}

/// The keys the server runs with. Both lists are non-empty; in each the first key is current.
#[derive(Debug, Clone)]
pub struct Secrets {
    jwt_keys: Vec<KeyedSecret>,
    secret_box_keys: Vec<KeyedSecret>,
}

impl Secrets {
    /// Random keys held only in memory, for tests and throw-away servers.
    pub fn generate() -> Self {
        Self {
            jwt_keys: vec![KeyedSecret::new(DEV_KID, random_jwt_key())],
            secret_box_keys: vec![KeyedSecret::new(DEV_KID, random_secret_box_key())],
        }
    }

    /// The JWT keys, current first.
    pub fn jwt_keys(&self) -> &[KeyedSecret] {
        &self.jwt_keys
    }

    /// The key that signs new tokens.
    pub fn jwt_signing_key(&self) -> &KeyedSecret {
        // Non-empty by construction: `resolve` and `generate` are the only constructors.
        &self.jwt_keys[0]
    }

    /// The secret-box keys, current first.
    pub fn secret_box_keys(&self) -> &[KeyedSecret] {
        &self.secret_box_keys
    }
}

/// What [`Config::resolve_secrets`] did about development secrets, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevSecretsOutcome {
    /// Every key was configured; no file was involved.
    NotNeeded,
    /// Keys were read from the development secrets file.
    Loaded {
        /// The file.
        path: PathBuf,
        /// The file was readable by others and has been restricted to its owner (0600).
        permissions_tightened: bool,
    },
    /// The file did not exist and has been created with new random keys.
    Generated {
        /// The file.
        path: PathBuf,
    },
}

/// `<data_dir>/dev-secrets.toml`.
pub(super) fn dev_secrets_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DEV_SECRETS_FILE)
}

pub(super) fn resolve(config: &Config) -> Result<(Secrets, DevSecretsOutcome), ConfigError> {
    let configured = &config.secrets;
    if !configured.jwt_keys.is_empty() && !configured.secret_box_keys.is_empty() {
        let secrets = Secrets {
            jwt_keys: configured.jwt_keys.clone(),
            secret_box_keys: configured.secret_box_keys.clone(),
        };
        return Ok((secrets, DevSecretsOutcome::NotNeeded));
    }
    if config.env.is_production() {
        // `validate` refuses this first; keep the guarantee even when it was not called.
        return Err(ConfigError::Invalid(vec![super::Problem::new(
            if configured.jwt_keys.is_empty() {
                "secrets.jwt_keys"
            } else {
                "secrets.secret_box_keys"
            },
            "missing: production never generates secrets",
        )]));
    }
    let (dev, outcome) = load_or_create(&config.data_dir)?;
    let pick = |own: &Vec<KeyedSecret>, dev: Vec<KeyedSecret>| {
        if own.is_empty() { dev } else { own.clone() }
    };
    let secrets = Secrets {
        jwt_keys: pick(&configured.jwt_keys, dev.jwt_keys),
        secret_box_keys: pick(&configured.secret_box_keys, dev.secret_box_keys),
    };
    Ok((secrets, outcome))
}

/// The file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevSecretsFile {
    #[serde(deserialize_with = "serde_util::keyed_secrets")]
    jwt_keys: Vec<KeyedSecret>,
    #[serde(deserialize_with = "serde_util::keyed_secrets")]
    secret_box_keys: Vec<KeyedSecret>,
}

fn load_or_create(data_dir: &Path) -> Result<(Secrets, DevSecretsOutcome), ConfigError> {
    let path = dev_secrets_path(data_dir);
    let io_error = |source| ConfigError::DevSecrets {
        path: path.clone(),
        source,
    };
    create_private_dir(data_dir).map_err(io_error)?;
    match read(&path)? {
        Some(secrets) => {
            let permissions_tightened = restrict_permissions(&path).map_err(io_error)?;
            Ok((
                secrets,
                DevSecretsOutcome::Loaded {
                    path,
                    permissions_tightened,
                },
            ))
        }
        None => {
            let generated = Secrets::generate();
            if create_exclusively(&path, &render(&generated)).map_err(io_error)? {
                Ok((generated, DevSecretsOutcome::Generated { path }))
            } else {
                // Another process created the file first: use its keys, so both agree.
                let secrets = read(&path)?.ok_or_else(|| {
                    io_error(io::Error::new(
                        io::ErrorKind::NotFound,
                        "the file vanished after another process created it",
                    ))
                })?;
                Ok((
                    secrets,
                    DevSecretsOutcome::Loaded {
                        path,
                        permissions_tightened: false,
                    },
                ))
            }
        }
    }
}

/// Reads and checks the file; `Ok(None)` when it does not exist.
fn read(path: &Path) -> Result<Option<Secrets>, ConfigError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::DevSecrets {
                path: path.to_owned(),
                source,
            });
        }
    };
    let malformed = |reason: &str| ConfigError::DevSecretsMalformed {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    // toml's own messages quote the offending line, which would print a key.
    let file: DevSecretsFile =
        toml::from_str(&text).map_err(|_| malformed("not the expected TOML"))?;
    if file.jwt_keys.is_empty() || file.secret_box_keys.is_empty() {
        return Err(malformed("a key list is empty"));
    }
    if file.jwt_keys.iter().any(|k| k.secret.expose().len() < 32) {
        return Err(malformed("a JWT key is shorter than 32 bytes"));
    }
    if file
        .secret_box_keys
        .iter()
        .any(|k| k.secret_box_bytes().is_none())
    {
        return Err(malformed("a secret-box key is not base64 of 32 bytes"));
    }
    Ok(Some(Secrets {
        jwt_keys: file.jwt_keys,
        secret_box_keys: file.secret_box_keys,
    }))
}

/// The file's text. Values are base64, so they need no TOML escaping.
fn render(secrets: &Secrets) -> Zeroizing<String> {
    let mut text = String::from(
        "# Development secrets, generated by samokoder-server on its first start and reused\n\
         # on later starts. Delete this file to generate new ones (signed-in sessions and sealed\n\
         # provider keys then stop working). Never use these keys in production.\n",
    );
    for (table, keys) in [
        ("jwt_keys", &secrets.jwt_keys),
        ("secret_box_keys", &secrets.secret_box_keys),
    ] {
        for key in keys {
            text.push_str(&format!(
                "\n[[{table}]]\nkid = \"{}\"\nsecret = \"{}\"\n",
                key.kid,
                key.secret.expose()
            ));
        }
    }
    Zeroizing::new(text)
}

fn random_jwt_key() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; JWT_KEY_BYTES]);
    rand::fill(&mut bytes[..]);
    SecretString::new(URL_SAFE_NO_PAD.encode(&bytes[..]))
}

fn random_secret_box_key() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; SECRET_BOX_KEY_BYTES]);
    rand::fill(&mut bytes[..]);
    SecretString::new(STANDARD.encode(&bytes[..]))
}

/// Creates `dir` (and parents) readable only by the owner when it does not exist yet.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `contents` to `path` only if `path` does not exist, atomically: readers see either no
/// file or the whole file, and when two processes race exactly one file wins. Returns whether
/// this call created it.
fn create_exclusively(path: &Path, contents: &str) -> io::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(".{DEV_SECRETS_FILE}.{}.tmp", uuid::Uuid::new_v4()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    })();
    // A hard link, unlike a rename, fails when the target exists: the first writer wins.
    let linked = written.and_then(|()| fs::hard_link(&temp, path));
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes an existing file owner-only; returns whether it had to.
#[cfg(unix)]
fn restrict_permissions(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;

    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(true)
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> io::Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let secrets = Secrets::generate();
        assert_eq!(secrets.jwt_signing_key().secret.expose().len(), 64);
        assert!(secrets.secret_box_keys()[0].secret_box_bytes().is_some());
        assert_ne!(
            Secrets::generate().jwt_signing_key().secret,
            secrets.jwt_signing_key().secret,
            "keys are random"
        );
    }

    #[test]
    fn rendered_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEV_SECRETS_FILE);
        let secrets = Secrets::generate();
        assert!(create_exclusively(&path, &render(&secrets)).unwrap());
        let back = read(&path).unwrap().unwrap();
        assert_eq!(back.jwt_keys(), secrets.jwt_keys());
        assert_eq!(back.secret_box_keys(), secrets.secret_box_keys());
        // A second writer loses and leaves the first file alone.
        assert!(!create_exclusively(&path, "other").unwrap());
        assert_eq!(read(&path).unwrap().unwrap().jwt_keys(), secrets.jwt_keys());
    }

    #[test]
    fn malformed_file_errors_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEV_SECRETS_FILE);
        fs::write(
            &path,
            "jwt_keys = \"k:hunter2-hunter2\"\nsecret_box_keys = [",
        )
        .unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("delete it"), "{err}");
    }

    #[test]
    fn secret_box_bytes_need_exactly_32_bytes() {
        assert!(
            KeyedSecret::new("k", STANDARD.encode([7u8; 31]))
                .secret_box_bytes()
                .is_none()
        );
        assert!(
            KeyedSecret::new("k", "not base64!")
                .secret_box_bytes()
                .is_none()
        );
        assert_eq!(
            *KeyedSecret::new("k", STANDARD.encode([7u8; 32]))
                .secret_box_bytes()
                .unwrap(),
            [7u8; 32]
        );
    }
}
