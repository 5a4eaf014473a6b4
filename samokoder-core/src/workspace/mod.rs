//! The versioned workspace: root-confined paths, content-addressed file trees, edits, and the
//! bridge to a real directory where commands run.
//!
//! - [`WorkspacePath`]: every path from a model goes through it (no absolute paths, no `..`, no
//!   control characters, no `.git`, bounded length).
//! - [`Snapshot`] maps paths to [`BlobHash`]es (lower-case hex SHA-256, the store's
//!   `blob_hash`); contents live once per hash in a [`BlobSource`] such as [`MemoryBlobs`].
//!   [`Snapshot::diff`] gives the [`Change`]s a checkpoint records.
//! - [`Edit`] / [`apply_edit`]: whole-file replacement or SEARCH/REPLACE blocks (the format the
//!   code-writer prompt asks for, documented in [`edit`]), exact first and then
//!   whitespace-tolerant, all or nothing, with a precise [`EditError`] to retry with.
//! - [`materialize`] / [`scan`]: snapshot → directory → snapshot, never following a symlink
//!   out of the root, honouring [`IgnoreRules`] (defaults plus the project's `.gitignore`) and
//!   [`ScanLimits`].
//! - [`export_zip`]: the archive the export endpoint serves.
//!
//! # Edits
//!
//! See [`edit`] for the format the code writer answers in — in short:
//!
//! ```text
//! <<<<<<< SEARCH
//! exact current lines
//! =======
//! new lines
//! >>>>>>> REPLACE
//! ```
//!
//! # A step, end to end
//!
//! ```
//! use samokoder_core::workspace::*;
//!
//! let mut blobs = MemoryBlobs::new();
//! let mut state = Snapshot::new();
//! let app = WorkspacePath::new("app.js").unwrap();
//! state.write(&mut blobs, app.clone(), "let x = 1;\n");
//!
//! // The model edits a file...
//! let edit = Edit::parse_search_replace("<<<<<<< SEARCH\nlet x = 1;\n=======\nlet x = 2;\n>>>>>>> REPLACE\n").unwrap();
//! let mut next = state.clone();
//! next.apply_edit(&mut blobs, &app, &edit).unwrap();
//!
//! // ...a command runs in the materialised tree and creates a file...
//! let dir = tempfile::tempdir().unwrap();
//! materialize(&next, &blobs, dir.path(), &MaterializeOptions::default()).unwrap();
//! std::fs::write(dir.path().join("out.txt"), "made by a command").unwrap();
//!
//! // ...and the scan becomes the next checkpoint.
//! let found = scan(dir.path(), &ScanOptions::default(), &next).unwrap();
//! blobs.extend(found.blobs);
//! let changes = state.diff(&found.snapshot);
//! assert_eq!(changes.len(), 2); // app.js modified, out.txt added
//! ```

mod blob;
pub mod edit;
mod export;
mod fs;
mod ignore_rules;
mod path;
mod snapshot;

pub use blob::{BlobHash, BlobSource, InvalidBlobHash, MemoryBlobs};
pub use edit::{ClosestMatch, Edit, EditError, SearchReplace, apply_edit};
pub use export::{ExportOptions, ExportReport, export_zip, export_zip_bytes};
pub use fs::{
    MAX_SKIPPED_LISTED, MaterializeOptions, MaterializeReport, ScanLimits, ScanOptions, ScanResult,
    SkipReason, SkippedFile, materialize, scan,
};
pub use ignore_rules::{DEFAULT_IGNORES, IgnoreMatcher, IgnoreRules, MAX_GITIGNORE_BYTES};
pub use path::{MAX_DEPTH, MAX_PATH_BYTES, MAX_SEGMENT_BYTES, PathError, WorkspacePath};
pub use snapshot::{Change, ChangeKind, Snapshot};

/// Errors of the workspace.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// A path that [`WorkspacePath`] refuses.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A malformed blob hash (read from a store or the wire).
    #[error(transparent)]
    InvalidHash(#[from] InvalidBlobHash),
    /// The snapshot has no file at this path.
    #[error("no file {0}")]
    NotFound(WorkspacePath),
    /// The snapshot names a blob the blob source does not have.
    #[error("the content of {path} (blob {hash}) is not available")]
    MissingBlob {
        /// The file.
        path: WorkspacePath,
        /// Its blob.
        hash: BlobHash,
    },
    /// A text operation on content that is not UTF-8.
    #[error("{0} is not UTF-8 text")]
    NotText(WorkspacePath),
    /// A model's edit that does not apply; nothing was changed.
    #[error("edit of {path} not applied: {source}")]
    Edit {
        /// The file.
        path: WorkspacePath,
        /// Why, precisely.
        #[source]
        source: EditError,
    },
    /// Something on disk is not what the snapshot needs and is not safe to replace (a
    /// directory where a file belongs, a symlink swapped in mid-operation).
    #[error("{path} {reason}")]
    Conflict {
        /// The relative path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The relative path (or the root).
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the zip archive failed.
    #[error("could not build the zip archive: {0}")]
    Zip(#[source] zip::result::ZipError),
}
