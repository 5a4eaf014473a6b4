//! [`WorkspacePath`]: the only way a path enters the workspace.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest path accepted, in bytes: the store's limit, so every valid workspace path can be
/// checkpointed.
pub const MAX_PATH_BYTES: usize = 1024;

/// The longest single segment accepted, in bytes (the usual file-system name limit).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// The deepest nesting accepted. Real projects stay far below; a model producing deeper paths
/// is looping.
pub const MAX_DEPTH: usize = 32;

/// Why a path was refused. The message names the offending part so a model can correct it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing left after normalisation (`""`, `"."`, `"./"`).
    #[error("path {0:?} is empty")]
    Empty(String),
    /// `/etc/passwd`, `C:\x`, `\\server\share`, `~/x`.
    #[error("path {0:?} is absolute; give a path relative to the project root")]
    Absolute(String),
    /// A `..` segment: rejected outright rather than resolved, so no spelling can climb out.
    #[error("path {0:?} contains a '..' segment")]
    ParentSegment(String),
    /// NUL or another control character (newlines, escapes) anywhere in the path.
    #[error("path {path:?} contains the control character U+{code:04X}")]
    ControlCharacter {
        /// The path as given.
        path: String,
        /// The offending character's code point.
        code: u32,
    },
    /// Longer than [`MAX_PATH_BYTES`] or a segment longer than [`MAX_SEGMENT_BYTES`].
    #[error("path {path:?} is too long: {reason}")]
    TooLong {
        /// The path as given (shortened for display by the caller if needed).
        path: String,
        /// Which limit.
        reason: String,
    },
    /// More than [`MAX_DEPTH`] segments.
    #[error("path {0:?} is nested deeper than {MAX_DEPTH} directories")]
    TooDeep(String),
    /// A `.git` segment: git itself refuses to track such paths, and hooks or config placed there
    /// would run for whoever later uses git on the project.
    #[error("path {0:?} is inside a .git directory")]
    GitDirectory(String),
}

/// A validated, normalised path relative to a workspace root.
///
/// Construction is the validation: separators are normalised to `/`, `.` and empty segments are
/// dropped, and absolute paths (including Windows drive and UNC forms and `~`), `..` segments,
/// control characters, `.git` segments and over-long or over-deep paths are refused. So a
/// `WorkspacePath` joined to a root can only name something under that root — as long as no
/// directory on the way is a symlink, which the file-system functions of this module check.
///
/// ```
/// use samokoder_core::workspace::WorkspacePath;
///
/// let p = WorkspacePath::new(r".\src//app.js").unwrap();
/// assert_eq!(p.as_str(), "src/app.js");
/// assert!(WorkspacePath::new("../etc/passwd").is_err());
/// assert!(WorkspacePath::new("/etc/passwd").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkspacePath(String);

impl WorkspacePath {
    /// Validates and normalises `raw`.
    pub fn new(raw: &str) -> Result<Self, PathError> {
        let owned = || raw.to_owned();
        if let Some(c) = raw.chars().find(|c| c.is_control()) {
            return Err(PathError::ControlCharacter {
                path: raw.escape_debug().to_string(),
                code: u32::from(c),
            });
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong {
                path: shorten(raw),
                reason: format!("{} bytes, the limit is {MAX_PATH_BYTES}", raw.len()),
            });
        }
        let unified = raw.replace('\\', "/");
        let bytes = unified.as_bytes();
        let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
        if unified.starts_with('/') || unified.starts_with('~') || drive {
            return Err(PathError::Absolute(owned()));
        }
        let mut segments = Vec::new();
        for seg in unified.split('/') {
            match seg {
                "" | "." => {}
                ".." => return Err(PathError::ParentSegment(owned())),
                _ => {
                    if seg.len() > MAX_SEGMENT_BYTES {
                        return Err(PathError::TooLong {
                            path: shorten(raw),
                            reason: format!(
                                "a segment has {} bytes, the limit is {MAX_SEGMENT_BYTES}",
                                seg.len()
                            ),
                        });
                    }
                    if seg.eq_ignore_ascii_case(".git") {
                        return Err(PathError::GitDirectory(owned()));
                    }
                    segments.push(seg);
                }
            }
        }
        if segments.is_empty() {
            return Err(PathError::Empty(owned()));
        }
        if segments.len() > MAX_DEPTH {
            return Err(PathError::TooDeep(shorten(raw)));
        }
        Ok(Self(segments.join("/")))
    }

    /// The normalised path, `/`-separated, never empty, never starting or ending with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The containing directory, or `None` for a path at the root.
    pub fn parent(&self) -> Option<WorkspacePath> {
        self.0.rsplit_once('/').map(|(dir, _)| Self(dir.to_owned()))
    }

    /// `self/child`, validated like any other path.
    pub fn join(&self, child: &str) -> Result<WorkspacePath, PathError> {
        Self::new(&format!("{}/{child}", self.0))
    }

    /// Whether `self` is `dir` or lies under it (segment-wise: `src2/x` is not under `src`).
    pub fn starts_with(&self, dir: &WorkspacePath) -> bool {
        self.0 == dir.0
            || (self.0.starts_with(&dir.0) && self.0.as_bytes().get(dir.0.len()) == Some(&b'/'))
    }

    /// The path under `root`. Lexically confined; symlinks on the way are the caller's concern
    /// (the module's file-system functions refuse them).
    pub fn to_path_under(&self, root: &Path) -> PathBuf {
        let mut out = root.to_path_buf();
        out.extend(self.segments());
        out
    }

    /// Converts a relative file-system path (as found by a directory walk) into a workspace path.
    /// Fails for non-UTF-8 names as well as for anything [`WorkspacePath::new`] refuses.
    pub fn from_relative_path(path: &Path) -> Result<WorkspacePath, PathError> {
        match path.to_str() {
            Some(s) => Self::new(s),
            None => Err(PathError::ControlCharacter {
                path: path.to_string_lossy().into_owned(),
                code: u32::from(char::REPLACEMENT_CHARACTER),
            }),
        }
    }
}

/// Keeps error messages readable when a model sends a kilobyte-long path.
fn shorten(raw: &str) -> String {
    const KEEP: usize = 80;
    if raw.len() <= KEEP {
        return raw.to_owned();
    }
    let mut end = KEEP;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &raw[..end])
}

impl fmt::Display for WorkspacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WorkspacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for WorkspacePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for WorkspacePath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for WorkspacePath {
    type Error = PathError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl TryFrom<&str> for WorkspacePath {
    type Error = PathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<WorkspacePath> for String {
    fn from(p: WorkspacePath) -> Self {
        p.0
    }
}

impl Serialize for WorkspacePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for WorkspacePath {
    /// Deserialising validates too: a path read back from JSON a model produced is no more
    /// trusted than one given directly.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::new(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_separators_and_dots() {
        let cases = [
            ("a/b.txt", "a/b.txt"),
            ("./a//b.txt", "a/b.txt"),
            ("a\\b\\c.js", "a/b/c.js"),
            ("a/./b/", "a/b"),
            ("weird name ü.md", "weird name ü.md"),
            ("..foo/bar..", "..foo/bar.."),
        ];
        for (raw, want) in cases {
            assert_eq!(WorkspacePath::new(raw).unwrap().as_str(), want, "{raw}");
        }
    }

    #[test]
    fn refuses_escapes_and_garbage() {
        type Check = fn(&PathError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, PathError::Empty(_))),
            ("./", |e| matches!(e, PathError::Empty(_))),
            ("/etc/passwd", |e| matches!(e, PathError::Absolute(_))),
            ("\\\\server\\share", |e| matches!(e, PathError::Absolute(_))),
            ("C:\\Windows", |e| matches!(e, PathError::Absolute(_))),
            ("~/.ssh/id_rsa", |e| matches!(e, PathError::Absolute(_))),
            ("../x", |e| matches!(e, PathError::ParentSegment(_))),
            ("a/../../x", |e| matches!(e, PathError::ParentSegment(_))),
            ("a\\..\\..\\x", |e| matches!(e, PathError::ParentSegment(_))),
            ("a\0b", |e| {
                matches!(e, PathError::ControlCharacter { code: 0, .. })
            }),
            ("a\nb", |e| {
                matches!(e, PathError::ControlCharacter { code: 10, .. })
            }),
            (".git/hooks/pre-commit", |e| {
                matches!(e, PathError::GitDirectory(_))
            }),
            ("sub/.GIT/config", |e| {
                matches!(e, PathError::GitDirectory(_))
            }),
        ];
        for (raw, check) in cases {
            let err = WorkspacePath::new(raw).unwrap_err();
            assert!(check(&err), "{raw:?} gave {err:?}");
        }
    }

    #[test]
    fn enforces_limits() {
        let long_segment = "a".repeat(MAX_SEGMENT_BYTES + 1);
        assert!(matches!(
            WorkspacePath::new(&long_segment),
            Err(PathError::TooLong { .. })
        ));
        let too_long = "ab/".repeat(MAX_PATH_BYTES / 3 + 1);
        assert!(matches!(
            WorkspacePath::new(&too_long),
            Err(PathError::TooLong { .. })
        ));
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        assert!(matches!(
            WorkspacePath::new(&deep),
            Err(PathError::TooDeep(_))
        ));
        let ok = vec!["d"; MAX_DEPTH].join("/");
        assert!(WorkspacePath::new(&ok).is_ok());
    }

    #[test]
    fn helpers() {
        let p = WorkspacePath::new("src/lib/x.rs").unwrap();
        assert_eq!(p.file_name(), "x.rs");
        assert_eq!(p.parent().unwrap().as_str(), "src/lib");
        assert!(WorkspacePath::new("x").unwrap().parent().is_none());
        let src = WorkspacePath::new("src").unwrap();
        assert!(p.starts_with(&src));
        assert!(!WorkspacePath::new("src2/a").unwrap().starts_with(&src));
        assert_eq!(src.join("a/b").unwrap().as_str(), "src/a/b");
        assert!(src.join("../../x").is_err());
        assert_eq!(
            p.to_path_under(Path::new("/root/ws")),
            PathBuf::from("/root/ws/src/lib/x.rs")
        );
    }

    #[test]
    fn serde_validates() {
        let p: WorkspacePath = serde_json::from_str("\"a\\\\b\"").unwrap();
        assert_eq!(p.as_str(), "a/b");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"a/b\"");
        assert!(serde_json::from_str::<WorkspacePath>("\"../x\"").is_err());
    }
}
