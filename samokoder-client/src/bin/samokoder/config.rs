//! The CLI's configuration file: the server URL and the saved login.
//!
//! ```toml
//! server = "https://samokoder.example.com"
//!
//! [session]
//! server = "https://samokoder.example.com"
//! access_token = "..."
//! refresh_token = "..."
//! user_id = "..."
//! email = "ada@example.com"
//! ```
//!
//! The file holds tokens, so it is written with mode 0600 (atomically: a temporary file in
//! the same directory, renamed over the old one).

use std::io::Write;
use std::path::{Path, PathBuf};

use samokoder_client::Session;
use serde::{Deserialize, Serialize};

/// Where the server is when nothing says otherwise.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:8000";

/// The file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// The server to use when `--server` and `SAMOKODER_SERVER` are not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) server: Option<String>,
    /// The saved login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session: Option<SavedSession>,
}

/// A login and the server it belongs to (a session is never sent to another server).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedSession {
    /// The server's URL as given at login.
    pub(crate) server: String,
    /// The tokens.
    #[serde(flatten)]
    pub(crate) session: Session,
}

/// The configuration file's path: `--config`, else `SAMOKODER_CLI_CONFIG` (both handled by
/// clap), else `$XDG_CONFIG_HOME/samokoder/config.toml`, else
/// `$HOME/.config/samokoder/config.toml`.
pub(crate) fn default_path() -> Result<PathBuf, String> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => {
                return Err(
                    "cannot find the configuration directory: set HOME, XDG_CONFIG_HOME or --config"
                        .into(),
                );
            }
        },
    };
    Ok(base.join("samokoder").join("config.toml"))
}

impl ConfigFile {
    /// Reads `path`; a missing file is an empty configuration.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| format!("{} is not a valid configuration: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes `path` with mode 0600, creating its directory.
    pub(crate) fn save(&self, path: &Path) -> Result<(), String> {
        let text =
            toml::to_string(self).map_err(|e| format!("cannot encode the configuration: {e}"))?;
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.toml".into());
        // A random name: a file left by a killed run (with a reused process id, as in
        // containers) must not block the next save.
        let temporary = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let written = write_private(&temporary, text.as_bytes())
            .and_then(|()| std::fs::rename(&temporary, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(format!("cannot write {}: {e}", path.display()));
        }
        Ok(())
    }

    /// The saved session when it belongs to `server`.
    pub(crate) fn session_for(&self, server: &str) -> Option<Session> {
        self.session
            .as_ref()
            .filter(|saved| same_server(&saved.server, server))
            .map(|saved| saved.session.clone())
    }
}

/// Creates `path` readable and writable by its owner only (the mode is set at creation, so
/// the tokens are never readable by others, not even for a moment).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Whether two server URLs name the same server (a trailing slash does not matter).
pub(crate) fn same_server(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_privately_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/config.toml");
        let config = ConfigFile {
            server: Some("http://a.example".into()),
            session: Some(SavedSession {
                server: "http://a.example/".into(),
                session: Session::new("acc", "ref"),
            }),
        };
        config.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = ConfigFile::load(&path).unwrap();
        let session = back.session_for("http://a.example").unwrap();
        assert_eq!(session.refresh_token(), "ref");
        assert!(back.session_for("http://b.example").is_none());
        // Saving again replaces the file.
        ConfigFile::default().save(&path).unwrap();
        assert!(ConfigFile::load(&path).unwrap().session.is_none());
    }

    #[test]
    fn a_missing_file_is_empty_and_a_broken_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            ConfigFile::load(&dir.path().join("none.toml"))
                .unwrap()
                .server
                .is_none()
        );
        let broken = dir.path().join("broken.toml");
        std::fs::write(&broken, "server = [").unwrap();
        assert!(ConfigFile::load(&broken).is_err());
    }
}
