//! The project's files as the engine holds them during a `drive`: a workspace [`Snapshot`] with
//! the contents of its blobs, loaded once from the [`RunStore`] and kept in step with each
//! checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use crate::state::{RunStore, RunStoreError};
use crate::workspace::{BlobHash, BlobSource, MemoryBlobs, Snapshot, WorkspacePath};

/// The tree at the current checkpoint and the contents of its files.
#[derive(Clone, Default)]
pub(crate) struct ProjectFiles {
    pub(crate) snapshot: Snapshot,
    pub(crate) blobs: MemoryBlobs,
}

/// A file as a prompt shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FileView {
    pub(crate) path: String,
    pub(crate) bytes: usize,
    /// `None` when not shown (binary, or past the prompt's budget).
    pub(crate) content: Option<String>,
}

impl ProjectFiles {
    /// Loads the tree of `checkpoint` (empty for `None`) with every blob it needs.
    pub(crate) async fn load(
        store: &dyn RunStore,
        checkpoint: Option<Uuid>,
    ) -> Result<Self, RunStoreError> {
        let Some(id) = checkpoint else {
            return Ok(Self::default());
        };
        let map = store.files(id).await?;
        let snapshot = Snapshot::from_store_map(&map)
            .map_err(|e| RunStoreError::Invalid(format!("checkpoint {id} has a bad tree: {e}")))?;
        let mut blobs = MemoryBlobs::new();
        for hash in snapshot.hashes() {
            let content = store.blob(hash.as_str()).await?;
            let stored = blobs.put(&content);
            if &stored != hash {
                return Err(RunStoreError::Invalid(format!(
                    "blob {hash} does not hash to its name"
                )));
            }
        }
        Ok(Self { snapshot, blobs })
    }

    /// The content of `path`, if the tree has it.
    pub(crate) fn bytes(&self, path: &str) -> Option<Arc<[u8]>> {
        let path = WorkspacePath::new(path).ok()?;
        self.snapshot.read(&self.blobs, &path).ok()
    }

    /// Every file in path order, with contents shown while they fit in `budget` bytes.
    pub(crate) fn views(&self, budget: usize, exclude: Option<&str>) -> Vec<FileView> {
        let mut left = budget;
        let mut out = Vec::new();
        for (path, hash) in self.snapshot.iter() {
            if Some(path.as_str()) == exclude {
                continue;
            }
            let Some(content) = self.blobs.blob(hash) else {
                continue;
            };
            let text = std::str::from_utf8(&content).ok();
            let shown = match text {
                Some(text) if text.len() <= left => {
                    left -= text.len();
                    Some(text.to_owned())
                }
                _ => None,
            };
            out.push(FileView {
                path: path.as_str().to_owned(),
                bytes: content.len(),
                content: shown,
            });
        }
        out
    }

    /// The tree with `writes` applied (`None` deletes).
    pub(crate) fn with_writes(&self, writes: &BTreeMap<String, Option<Vec<u8>>>) -> Self {
        let mut next = self.clone();
        for (path, content) in writes {
            let Ok(path) = WorkspacePath::new(path) else {
                continue;
            };
            match content {
                Some(content) => {
                    next.snapshot.write(&mut next.blobs, path, content);
                }
                None => {
                    next.snapshot.remove(&path);
                }
            }
        }
        next
    }

    /// The hash `path` has, if any.
    pub(crate) fn hash(&self, path: &str) -> Option<BlobHash> {
        let path = WorkspacePath::new(path).ok()?;
        self.snapshot.get(&path).cloned()
    }
}
