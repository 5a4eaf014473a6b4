//! [`Snapshot`]: a file tree as path → blob hash, and diffs between two of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::WorkspaceError;
use super::blob::{BlobHash, BlobSource, MemoryBlobs};
use super::edit::{Edit, apply_edit};
use super::path::WorkspacePath;

/// A file tree: each path maps to the hash of its content. This is what a checkpointed state
/// holds; contents live in a [`BlobSource`].
///
/// Cloning is cheap relative to contents (hashes only). Serialises as a JSON object
/// `{"path": "hash", ...}` in path order.
///
/// ```
/// use samokoder_core::workspace::{ChangeKind, MemoryBlobs, Snapshot, WorkspacePath};
///
/// let mut blobs = MemoryBlobs::new();
/// let mut before = Snapshot::new();
/// before.write(&mut blobs, WorkspacePath::new("a.txt").unwrap(), "one");
/// let mut after = before.clone();
/// after.write(&mut blobs, WorkspacePath::new("a.txt").unwrap(), "two");
/// after.write(&mut blobs, WorkspacePath::new("b.txt").unwrap(), "one");
///
/// let changes = before.diff(&after);
/// assert_eq!(changes.len(), 2);
/// assert!(matches!(changes[0].kind, ChangeKind::Modified { .. }));
/// assert!(matches!(changes[1].kind, ChangeKind::Added { .. }));
/// assert_eq!(blobs.len(), 2, "\"one\" is stored once");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Snapshot {
    files: BTreeMap<WorkspacePath, BlobHash>,
}

/// One difference between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The path that changed.
    pub path: WorkspacePath,
    /// How.
    #[serde(flatten)]
    pub kind: ChangeKind,
}

/// How a path changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ChangeKind {
    /// New in the later snapshot.
    Added {
        /// Its content.
        hash: BlobHash,
    },
    /// Present in both with different content.
    Modified {
        /// Content before.
        old: BlobHash,
        /// Content after.
        new: BlobHash,
    },
    /// Gone from the later snapshot.
    Deleted {
        /// Content before.
        old: BlobHash,
    },
}

impl Change {
    /// The blob the path has after the change, `None` for a deletion — the shape of the store's
    /// `FileChange`/`FileEntry`.
    pub fn new_hash(&self) -> Option<&BlobHash> {
        match &self.kind {
            ChangeKind::Added { hash } => Some(hash),
            ChangeKind::Modified { new, .. } => Some(new),
            ChangeKind::Deleted { .. } => None,
        }
    }
}

impl Snapshot {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a snapshot from the store's `path → hash` strings, validating both, so a tree read
    /// back from a database is held to the same rules as one written by a model.
    pub fn from_store_map<I, P, H>(files: I) -> Result<Self, WorkspaceError>
    where
        I: IntoIterator<Item = (P, H)>,
        P: AsRef<str>,
        H: AsRef<str>,
    {
        let mut out = Self::new();
        for (path, hash) in files {
            let path = WorkspacePath::new(path.as_ref())?;
            let hash = BlobHash::parse(hash.as_ref())?;
            out.files.insert(path, hash);
        }
        Ok(out)
    }

    /// The tree as the store's `path → hash` strings.
    pub fn to_store_map(&self) -> BTreeMap<String, String> {
        self.files
            .iter()
            .map(|(p, h)| (p.as_str().to_owned(), h.as_str().to_owned()))
            .collect()
    }

    /// Sets `path` to an already stored blob; returns the previous hash.
    pub fn insert(&mut self, path: WorkspacePath, hash: BlobHash) -> Option<BlobHash> {
        self.files.insert(path, hash)
    }

    /// Stores `content` in `blobs` (once per content) and points `path` at it; returns the hash.
    pub fn write(
        &mut self,
        blobs: &mut MemoryBlobs,
        path: WorkspacePath,
        content: impl AsRef<[u8]>,
    ) -> BlobHash {
        let hash = blobs.put(content);
        self.files.insert(path, hash.clone());
        hash
    }

    /// Removes `path`; returns its hash if it was present.
    pub fn remove(&mut self, path: &WorkspacePath) -> Option<BlobHash> {
        self.files.remove(path)
    }

    /// The hash at `path`.
    pub fn get(&self, path: &WorkspacePath) -> Option<&BlobHash> {
        self.files.get(path)
    }

    /// Whether `path` is a file of this tree.
    pub fn contains(&self, path: &WorkspacePath) -> bool {
        self.files.contains_key(path)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the tree has no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Files in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&WorkspacePath, &BlobHash)> {
        self.files.iter()
    }

    /// Paths in order.
    pub fn paths(&self) -> impl Iterator<Item = &WorkspacePath> {
        self.files.keys()
    }

    /// The distinct blobs this tree refers to (what must be fetched before materialising).
    pub fn hashes(&self) -> BTreeSet<&BlobHash> {
        self.files.values().collect()
    }

    /// The content at `path`. [`WorkspaceError::NotFound`] when the tree has no such file,
    /// [`WorkspaceError::MissingBlob`] when the source lacks its blob.
    pub fn read(
        &self,
        blobs: &dyn BlobSource,
        path: &WorkspacePath,
    ) -> Result<Arc<[u8]>, WorkspaceError> {
        let hash = self
            .files
            .get(path)
            .ok_or_else(|| WorkspaceError::NotFound(path.clone()))?;
        blobs.blob(hash).ok_or_else(|| WorkspaceError::MissingBlob {
            path: path.clone(),
            hash: hash.clone(),
        })
    }

    /// The content at `path` as UTF-8 text; [`WorkspaceError::NotText`] for binary content.
    pub fn read_text(
        &self,
        blobs: &dyn BlobSource,
        path: &WorkspacePath,
    ) -> Result<String, WorkspaceError> {
        let bytes = self.read(blobs, path)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WorkspaceError::NotText(path.clone()))
    }

    /// Applies a model's [`Edit`] to the file at `path` (absent files can be created by a
    /// whole-file replacement or an empty-search block). All or nothing: on error the tree and
    /// the blobs are unchanged. Returns the new hash.
    pub fn apply_edit(
        &mut self,
        blobs: &mut MemoryBlobs,
        path: &WorkspacePath,
        edit: &Edit,
    ) -> Result<BlobHash, WorkspaceError> {
        let current = match self.files.get(path) {
            Some(_) => Some(self.read_text(&*blobs, path)?),
            None => None,
        };
        let updated =
            apply_edit(current.as_deref(), edit).map_err(|source| WorkspaceError::Edit {
                path: path.clone(),
                source,
            })?;
        Ok(self.write(blobs, path.clone(), updated))
    }

    /// What changed from `self` to `later`, in path order.
    pub fn diff(&self, later: &Snapshot) -> Vec<Change> {
        let mut out = Vec::new();
        let mut old = self.files.iter().peekable();
        let mut new = later.files.iter().peekable();
        // A merge walk over two sorted maps: one pass, no lookups.
        loop {
            let kind_path = match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some((op, oh)), None) => {
                    let c = (ChangeKind::Deleted { old: (*oh).clone() }, (*op).clone());
                    old.next();
                    Some(c)
                }
                (None, Some((np, nh))) => {
                    let c = (
                        ChangeKind::Added {
                            hash: (*nh).clone(),
                        },
                        (*np).clone(),
                    );
                    new.next();
                    Some(c)
                }
                (Some((op, oh)), Some((np, nh))) => match op.cmp(np) {
                    std::cmp::Ordering::Less => {
                        let c = (ChangeKind::Deleted { old: (*oh).clone() }, (*op).clone());
                        old.next();
                        Some(c)
                    }
                    std::cmp::Ordering::Greater => {
                        let c = (
                            ChangeKind::Added {
                                hash: (*nh).clone(),
                            },
                            (*np).clone(),
                        );
                        new.next();
                        Some(c)
                    }
                    std::cmp::Ordering::Equal => {
                        let c = (oh != nh).then(|| {
                            (
                                ChangeKind::Modified {
                                    old: (*oh).clone(),
                                    new: (*nh).clone(),
                                },
                                (*np).clone(),
                            )
                        });
                        old.next();
                        new.next();
                        c
                    }
                },
            };
            if let Some((kind, path)) = kind_path {
                out.push(Change { path, kind });
            }
        }
        out
    }

    /// Applies `changes` (as produced by [`Snapshot::diff`]) to this tree.
    pub fn apply_changes(&mut self, changes: &[Change]) {
        for change in changes {
            match change.new_hash() {
                Some(hash) => {
                    self.files.insert(change.path.clone(), hash.clone());
                }
                None => {
                    self.files.remove(&change.path);
                }
            }
        }
    }
}

impl FromIterator<(WorkspacePath, BlobHash)> for Snapshot {
    fn from_iter<T: IntoIterator<Item = (WorkspacePath, BlobHash)>>(iter: T) -> Self {
        Self {
            files: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WorkspacePath {
        WorkspacePath::new(s).unwrap()
    }

    #[test]
    fn diff_reports_each_kind_in_path_order() {
        let mut blobs = MemoryBlobs::new();
        let mut a = Snapshot::new();
        a.write(&mut blobs, p("keep"), "k");
        a.write(&mut blobs, p("mod"), "1");
        a.write(&mut blobs, p("del"), "d");
        let mut b = a.clone();
        b.write(&mut blobs, p("mod"), "2");
        b.remove(&p("del"));
        b.write(&mut blobs, p("add"), "a");

        let changes = a.diff(&b);
        let summary: Vec<_> = changes
            .iter()
            .map(|c| {
                let k = match c.kind {
                    ChangeKind::Added { .. } => "A",
                    ChangeKind::Modified { .. } => "M",
                    ChangeKind::Deleted { .. } => "D",
                };
                format!("{k} {}", c.path)
            })
            .collect();
        assert_eq!(summary, ["A add", "D del", "M mod"]);
        assert!(a.diff(&a).is_empty());

        let mut replay = a.clone();
        replay.apply_changes(&changes);
        assert_eq!(replay, b);
    }

    #[test]
    fn store_map_round_trip_validates() {
        let mut blobs = MemoryBlobs::new();
        let mut a = Snapshot::new();
        a.write(&mut blobs, p("src/x.js"), "x");
        let map = a.to_store_map();
        assert_eq!(Snapshot::from_store_map(&map).unwrap(), a);

        let bad_path = [("../x", BlobHash::of(b"x").to_string())];
        assert!(matches!(
            Snapshot::from_store_map(bad_path),
            Err(WorkspaceError::Path(_))
        ));
        let bad_hash = [("x", "zz")];
        assert!(matches!(
            Snapshot::from_store_map(bad_hash),
            Err(WorkspaceError::InvalidHash(_))
        ));
    }

    #[test]
    fn json_shape_is_a_path_map() {
        let mut blobs = MemoryBlobs::new();
        let mut a = Snapshot::new();
        let h = a.write(&mut blobs, p("a"), "x");
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json, serde_json::json!({ "a": h.as_str() }));
        let back: Snapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn read_reports_missing_file_and_blob() {
        let mut blobs = MemoryBlobs::new();
        let mut a = Snapshot::new();
        a.write(&mut blobs, p("a"), "x");
        a.insert(p("b"), BlobHash::of(b"never stored"));
        assert_eq!(&*a.read(&blobs, &p("a")).unwrap(), b"x");
        assert!(matches!(
            a.read(&blobs, &p("zz")),
            Err(WorkspaceError::NotFound(_))
        ));
        assert!(matches!(
            a.read(&blobs, &p("b")),
            Err(WorkspaceError::MissingBlob { .. })
        ));
    }
}
