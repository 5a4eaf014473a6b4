//! A zip archive of a snapshot, for the export endpoint.

use std::io::{Cursor, Seek, Write};

use serde::{Deserialize, Serialize};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::WorkspaceError;
use super::blob::BlobSource;
use super::ignore_rules::{IgnoreMatcher, IgnoreRules};
use super::path::WorkspacePath;
use super::snapshot::Snapshot;

/// Options of [`export_zip`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Leave out what these rules (and the snapshot's own `.gitignore` files) exclude.
    pub ignore: IgnoreRules,
    /// A top-level folder every entry goes under (e.g. the project's name), so unpacking does
    /// not scatter files; validated like any path. `None`: entries at the archive root.
    pub folder: Option<WorkspacePath>,
}

/// What [`export_zip`] put in the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportReport {
    /// Files written.
    pub files: usize,
    /// Their total uncompressed size.
    pub bytes: u64,
    /// Paths left out by the ignore rules.
    pub ignored: Vec<WorkspacePath>,
}

/// Writes `snapshot` as a zip archive to `out`, leaving out ignored files.
///
/// Entries are deflated, in path order, with mode `0644` and a fixed timestamp, so the same
/// snapshot always gives the same bytes (cacheable, comparable).
///
/// ```
/// use samokoder_core::workspace::{export_zip_bytes, ExportOptions, MemoryBlobs, Snapshot, WorkspacePath};
///
/// let mut blobs = MemoryBlobs::new();
/// let mut snap = Snapshot::new();
/// snap.write(&mut blobs, WorkspacePath::new("README.md").unwrap(), "# hi\n");
/// let (zip, report) = export_zip_bytes(&snap, &blobs, &ExportOptions::default()).unwrap();
/// assert_eq!(report.files, 1);
/// assert_eq!(&zip[..2], b"PK");
/// ```
pub fn export_zip<W: Write + Seek>(
    snapshot: &Snapshot,
    blobs: &dyn BlobSource,
    out: W,
    options: &ExportOptions,
) -> Result<(W, ExportReport), WorkspaceError> {
    let matcher = IgnoreMatcher::for_snapshot(&options.ignore, snapshot, blobs);
    let file_options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    let mut zip = ZipWriter::new(out);
    let mut report = ExportReport::default();
    for (path, _) in snapshot.iter() {
        if matcher.is_ignored(path.as_str(), false) {
            report.ignored.push(path.clone());
            continue;
        }
        let content = snapshot.read(blobs, path)?;
        let name = match &options.folder {
            Some(folder) => format!("{folder}/{path}"),
            None => path.to_string(),
        };
        zip.start_file(name, file_options)
            .map_err(WorkspaceError::Zip)?;
        zip.write_all(&content)
            .map_err(|source| WorkspaceError::Io {
                action: "write zip entry",
                path: path.to_string(),
                source,
            })?;
        report.files += 1;
        report.bytes += content.len() as u64;
    }
    let out = zip.finish().map_err(WorkspaceError::Zip)?;
    Ok((out, report))
}

/// [`export_zip`] into memory.
pub fn export_zip_bytes(
    snapshot: &Snapshot,
    blobs: &dyn BlobSource,
    options: &ExportOptions,
) -> Result<(Vec<u8>, ExportReport), WorkspaceError> {
    let (cursor, report) = export_zip(snapshot, blobs, Cursor::new(Vec::new()), options)?;
    Ok((cursor.into_inner(), report))
}
