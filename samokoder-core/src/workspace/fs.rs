//! Between snapshots and a real directory: [`materialize`] writes a snapshot out so commands can
//! run in it, [`scan`] reads the directory back after they ran.
//!
//! Every file-system access goes through directory file descriptors opened with `O_NOFOLLOW`
//! one component at a time (`openat`), never through a path string: a symlink a command planted
//! — even one swapped in while we work — can make an operation fail, but can never make it read
//! or write outside the root.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use super::WorkspaceError;
use super::blob::{BlobSource, MemoryBlobs};
use super::ignore_rules::{IgnoreMatcher, IgnoreRules, MAX_GITIGNORE_BYTES};
use super::path::WorkspacePath;
use super::snapshot::Snapshot;

/// Mode of directories we create: the owner writes, everyone reads and traverses.
const DIR_MODE: u32 = 0o755;
/// Mode of files we write: no execute bit (a snapshot records none) and nothing group/world
/// writable.
const FILE_MODE: u32 = 0o644;

/// Caps for [`scan`]: what a command may leave behind that we are willing to checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanLimits {
    /// Files bigger than this are skipped (and reported).
    pub max_file_bytes: u64,
    /// Once this many bytes were taken, further files are skipped.
    pub max_total_bytes: u64,
    /// Once this many files were taken, further files are skipped.
    pub max_files: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        // Source trees of generated apps are well under these; a lock file can reach ~1 MiB.
        Self {
            max_file_bytes: 2 * 1024 * 1024,
            max_total_bytes: 64 * 1024 * 1024,
            max_files: 5_000,
        }
    }
}

/// Options of [`scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// What is not part of the project.
    pub ignore: IgnoreRules,
    /// Size caps.
    pub limits: ScanLimits,
}

/// Why a file was left out of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// Bigger than [`ScanLimits::max_file_bytes`].
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// [`ScanLimits::max_total_bytes`] was reached.
    TotalSizeLimit {
        /// The limit.
        limit: u64,
    },
    /// [`ScanLimits::max_files`] was reached.
    FileCountLimit {
        /// The limit.
        limit: usize,
    },
    /// A symbolic link: never followed, never stored.
    Symlink,
    /// A FIFO, socket or device node.
    NotRegularFile,
    /// A name no [`WorkspacePath`] accepts (non-UTF-8, control characters, too long, ...).
    InvalidPath {
        /// Why.
        message: String,
    },
    /// Could not be opened or read (for instance replaced by a symlink while scanning).
    Unreadable {
        /// The OS error.
        message: String,
    },
}

/// A file [`scan`] left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// The relative path (lossily decoded when not UTF-8).
    pub path: String,
    /// Why.
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// The most skipped files listed one by one; beyond it only counted.
pub const MAX_SKIPPED_LISTED: usize = 200;

/// What [`scan`] found.
#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    /// The tree as found on disk.
    pub snapshot: Snapshot,
    /// The contents of its files (one copy per content).
    pub blobs: MemoryBlobs,
    /// Files left out, at most [`MAX_SKIPPED_LISTED`].
    pub skipped: Vec<SkippedFile>,
    /// How many more were left out than listed.
    pub skipped_unlisted: usize,
}

impl ScanResult {
    fn skip(&mut self, path: String, reason: SkipReason) {
        if self.skipped.len() < MAX_SKIPPED_LISTED {
            self.skipped.push(SkippedFile { path, reason });
        } else {
            self.skipped_unlisted += 1;
        }
    }
}

/// Options of [`materialize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializeOptions {
    /// Remove files (and symlinks, and then-empty directories) that are not in the snapshot and
    /// not ignored, so the directory holds exactly the snapshot plus ignored content such as
    /// `node_modules/`. Off: only write.
    pub prune: bool,
    /// What pruning leaves alone.
    pub ignore: IgnoreRules,
}

impl Default for MaterializeOptions {
    fn default() -> Self {
        Self {
            prune: true,
            ignore: IgnoreRules::default(),
        }
    }
}

/// What [`materialize`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterializeReport {
    /// Files (re)written.
    pub written: usize,
    /// Files already holding the right content, left untouched (their mtime too, which keeps
    /// file watchers quiet).
    pub unchanged: usize,
    /// Files, symlinks and directories removed by pruning or to make room.
    pub removed: usize,
}

fn io_err(action: &'static str, path: impl Into<String>) -> impl FnOnce(Errno) -> WorkspaceError {
    let path = path.into();
    move |e| WorkspaceError::Io {
        action,
        path,
        source: e.into(),
    }
}

fn open_root(root: &Path, create: bool) -> Result<OwnedFd, WorkspaceError> {
    if create {
        std::fs::create_dir_all(root).map_err(|source| WorkspaceError::Io {
            action: "create the workspace root",
            path: root.display().to_string(),
            source,
        })?;
    }
    // The root itself is the caller's (trusted) configuration, so it may sit behind symlinks.
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| WorkspaceError::Io {
        action: "open the workspace root",
        path: root.display().to_string(),
        source: e.into(),
    })
}

fn open_dir_at(dir: impl AsFd, name: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn file_type_at(dir: impl AsFd, name: &str) -> Result<Option<FileType>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the directory holding `path` beneath `root`, never following a symlink. With `create`,
/// missing directories are made, and a symlink or file standing where a directory belongs is
/// removed first (the snapshot is the truth; the link itself is unlinked, never its target).
fn open_parent(
    root: &OwnedFd,
    path: &WorkspacePath,
    create: bool,
    report: &mut MaterializeReport,
) -> Result<OwnedFd, WorkspaceError> {
    let segments: Vec<&str> = path.segments().collect();
    let mut dir = rustix::io::dup(root).map_err(io_err("open", path.as_str()))?;
    let mut so_far = String::new();
    for seg in &segments[..segments.len() - 1] {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(seg);
        if create {
            match file_type_at(&dir, seg).map_err(io_err("inspect", so_far.clone()))? {
                Some(FileType::Directory) => {}
                Some(_) => {
                    rustix::fs::unlinkat(&dir, *seg, AtFlags::empty()).map_err(io_err(
                        "remove what stands in place of directory",
                        so_far.clone(),
                    ))?;
                    report.removed += 1;
                    rustix::fs::mkdirat(&dir, *seg, Mode::from_raw_mode(DIR_MODE))
                        .map_err(io_err("create directory", so_far.clone()))?;
                }
                None => rustix::fs::mkdirat(&dir, *seg, Mode::from_raw_mode(DIR_MODE))
                    .map_err(io_err("create directory", so_far.clone()))?,
            }
        }
        dir = open_dir_at(&dir, seg).map_err(|e| match e {
            // ELOOP / ENOTDIR: a symlink or file raced into place; refuse rather than follow.
            Errno::LOOP | Errno::NOTDIR => WorkspaceError::Conflict {
                path: so_far.clone(),
                reason: "is not a real directory (a symlink or a file)".into(),
            },
            other => io_err("open directory", so_far.clone())(other),
        })?;
    }
    Ok(dir)
}

/// Reads a regular file beneath `root` without following symlinks; `Ok(None)` when absent.
/// `max` bounds the read: a file that grows past it while being read is reported as too large.
fn read_beneath(
    root: &OwnedFd,
    path: &WorkspacePath,
    max: u64,
) -> Result<Option<Result<Vec<u8>, SkipReason>>, WorkspaceError> {
    let mut scratch = MaterializeReport::default();
    let dir = match open_parent(root, path, false, &mut scratch) {
        Ok(d) => d,
        Err(WorkspaceError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(WorkspaceError::Conflict { .. }) => return Ok(Some(Err(SkipReason::Symlink))),
        Err(e) => return Err(e),
    };
    let fd = match rustix::fs::openat(
        &dir,
        path.file_name(),
        // NONBLOCK: opening a FIFO a command left behind must not hang the scan.
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => return Ok(Some(Err(SkipReason::Symlink))),
        Err(e) => {
            return Ok(Some(Err(SkipReason::Unreadable {
                message: e.to_string(),
            })));
        }
    };
    let st = rustix::fs::fstat(&fd).map_err(io_err("inspect", path.as_str()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(Some(Err(SkipReason::NotRegularFile)));
    }
    let size = st.st_size.max(0) as u64;
    if size > max {
        return Ok(Some(Err(SkipReason::TooLarge {
            bytes: size,
            limit: max,
        })));
    }
    let mut buf = Vec::with_capacity(size as usize);
    let mut file = std::fs::File::from(fd);
    if let Err(e) = (&mut file).take(max + 1).read_to_end(&mut buf) {
        return Ok(Some(Err(SkipReason::Unreadable {
            message: e.to_string(),
        })));
    }
    if buf.len() as u64 > max {
        return Ok(Some(Err(SkipReason::TooLarge {
            bytes: buf.len() as u64,
            limit: max,
        })));
    }
    Ok(Some(Ok(buf)))
}

/// One entry of a directory listing, read through its file descriptor.
struct Entry {
    name: Vec<u8>,
    kind: FileType,
}

fn list_dir(dir: &OwnedFd) -> Result<Vec<Entry>, Errno> {
    let mut out = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let mut kind = entry.file_type();
        if kind == FileType::Unknown {
            // Some file systems do not fill d_type; ask without following.
            let name_os = OsStr::from_bytes(name);
            kind = match rustix::fs::statat(dir, name_os, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            };
        }
        out.push(Entry {
            name: name.to_vec(),
            kind,
        });
    }
    // Sorted so scans, prunes and skip reports are deterministic.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn read_gitignore(dir: &OwnedFd) -> Option<String> {
    let fd = rustix::fs::openat(
        dir,
        ".gitignore",
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return None;
    }
    let mut buf = String::new();
    std::fs::File::from(fd)
        .take(MAX_GITIGNORE_BYTES as u64)
        .read_to_string(&mut buf)
        .ok()?;
    Some(buf)
}

/// Something the walk found, with its path relative to the root.
enum Found {
    File(String, Vec<u8>),
    Other(String, FileType, Vec<u8>),
    /// A directory after its children were visited.
    DirDone(String, Vec<u8>),
}

/// Walks non-ignored entries beneath `root` through directory descriptors, calling `visit` for
/// each; `.gitignore` files are picked up as the walk descends.
fn walk(
    root: &OwnedFd,
    matcher: &mut IgnoreMatcher,
    visit: &mut dyn FnMut(&OwnedFd, Found) -> Result<(), WorkspaceError>,
) -> Result<(), WorkspaceError> {
    fn recurse(
        dir: &OwnedFd,
        rel: &str,
        matcher: &mut IgnoreMatcher,
        visit: &mut dyn FnMut(&OwnedFd, Found) -> Result<(), WorkspaceError>,
    ) -> Result<(), WorkspaceError> {
        if let Some(text) = read_gitignore(dir) {
            matcher.add_gitignore(rel, &text);
        }
        let shown = if rel.is_empty() {
            ".".to_owned()
        } else {
            rel.to_owned()
        };
        let entries = list_dir(dir).map_err(io_err("list directory", shown))?;
        for entry in entries {
            let name_lossy = String::from_utf8_lossy(&entry.name).into_owned();
            let child = if rel.is_empty() {
                name_lossy.clone()
            } else {
                format!("{rel}/{name_lossy}")
            };
            let is_dir = entry.kind == FileType::Directory;
            if matcher.is_ignored(&child, is_dir) {
                continue;
            }
            if is_dir {
                let name_os = OsStr::from_bytes(&entry.name);
                match rustix::fs::openat(
                    dir,
                    name_os,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(sub) => recurse(&sub, &child, matcher, visit)?,
                    // Vanished or swapped for a symlink since the listing: report, don't follow.
                    Err(Errno::NOENT) => {}
                    Err(_) => {
                        visit(
                            dir,
                            Found::Other(child.clone(), FileType::Symlink, entry.name.clone()),
                        )?;
                    }
                }
                visit(dir, Found::DirDone(child, entry.name))?;
            } else if entry.kind == FileType::RegularFile {
                visit(dir, Found::File(child, entry.name))?;
            } else {
                visit(dir, Found::Other(child, entry.kind, entry.name))?;
            }
        }
        Ok(())
    }
    recurse(root, "", matcher, visit)
}

/// Reads the directory at `root` into a snapshot and its blobs.
///
/// Files the ignore rules exclude are left out — except paths of `tracked` (typically the
/// snapshot that was materialised before the command ran): as with git, ignore rules only keep
/// *new* files out, so a tracked `.env` does not vanish from the state because `.gitignore`
/// lists it. Symlinks, special files, over-large files and files past the caps are skipped and
/// reported in [`ScanResult::skipped`]; none is ever followed.
///
/// Blocking file-system work: from async code call it inside `spawn_blocking`.
///
/// ```
/// use samokoder_core::workspace::{scan, ScanOptions, Snapshot};
///
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("app.js"), "console.log(1)\n").unwrap();
/// std::fs::create_dir(dir.path().join("node_modules")).unwrap();
/// std::fs::write(dir.path().join("node_modules/dep.js"), "").unwrap();
///
/// let found = scan(dir.path(), &ScanOptions::default(), &Snapshot::new()).unwrap();
/// let paths: Vec<_> = found.snapshot.paths().map(|p| p.as_str()).collect();
/// assert_eq!(paths, ["app.js"]);
/// ```
pub fn scan(
    root: &Path,
    options: &ScanOptions,
    tracked: &Snapshot,
) -> Result<ScanResult, WorkspaceError> {
    let root_fd = open_root(root, false)?;
    let limits = options.limits;
    let mut result = ScanResult::default();
    let mut total: u64 = 0;
    let mut take = |result: &mut ScanResult, path: WorkspacePath, content: Vec<u8>| {
        if result.snapshot.len() >= limits.max_files {
            result.skip(
                path.to_string(),
                SkipReason::FileCountLimit {
                    limit: limits.max_files,
                },
            );
        } else if total + content.len() as u64 > limits.max_total_bytes {
            result.skip(
                path.to_string(),
                SkipReason::TotalSizeLimit {
                    limit: limits.max_total_bytes,
                },
            );
        } else {
            total += content.len() as u64;
            result.snapshot.write(&mut result.blobs, path, content);
        }
    };

    let mut matcher = IgnoreMatcher::new(&options.ignore);
    let mut found_paths = Vec::new();
    walk(&root_fd, &mut matcher, &mut |_, found| {
        match found {
            Found::File(rel, _) => found_paths.push(rel),
            Found::Other(rel, kind, _) => {
                let reason = if kind == FileType::Symlink {
                    SkipReason::Symlink
                } else {
                    SkipReason::NotRegularFile
                };
                result.skip(rel, reason);
            }
            Found::DirDone(..) => {}
        }
        Ok(())
    })?;
    // Tracked paths the walk did not reach (ignored ones) are read as well, if they still exist.
    let mut to_read: Vec<(String, Option<WorkspacePath>)> = found_paths
        .into_iter()
        .map(|rel| (rel.clone(), WorkspacePath::new(&rel).ok()))
        .collect();
    for path in tracked.paths() {
        if matcher.is_ignored(path.as_str(), false) {
            to_read.push((path.to_string(), Some(path.clone())));
        }
    }
    for (rel, path) in to_read {
        let Some(path) = path else {
            let message = WorkspacePath::new(&rel)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            result.skip(rel, SkipReason::InvalidPath { message });
            continue;
        };
        match read_beneath(&root_fd, &path, limits.max_file_bytes)? {
            None => {}
            Some(Ok(content)) => take(&mut result, path, content),
            Some(Err(reason)) => result.skip(rel, reason),
        }
    }
    Ok(result)
}

/// Writes `snapshot` into the directory `root` (created if missing) so commands can run there.
///
/// Files already holding the right content are not rewritten. With
/// [`MaterializeOptions::prune`], anything else not in the snapshot and not ignored is removed,
/// so the directory matches the snapshot while dependency trees (`node_modules/`, `.venv/`)
/// survive between commands. Files are written `0644` and directories `0755`; a symlink in the
/// way is removed (the link, never its target), never followed.
///
/// Blocking file-system work: from async code call it inside `spawn_blocking`.
///
/// ```
/// use samokoder_core::workspace::{materialize, MaterializeOptions, MemoryBlobs, Snapshot, WorkspacePath};
///
/// let mut blobs = MemoryBlobs::new();
/// let mut snap = Snapshot::new();
/// snap.write(&mut blobs, WorkspacePath::new("src/index.js").unwrap(), "console.log(1)\n");
///
/// let dir = tempfile::tempdir().unwrap();
/// let report = materialize(&snap, &blobs, dir.path(), &MaterializeOptions::default()).unwrap();
/// assert_eq!(report.written, 1);
/// assert_eq!(std::fs::read_to_string(dir.path().join("src/index.js")).unwrap(), "console.log(1)\n");
/// ```
pub fn materialize(
    snapshot: &Snapshot,
    blobs: &dyn BlobSource,
    root: &Path,
    options: &MaterializeOptions,
) -> Result<MaterializeReport, WorkspaceError> {
    // Every blob first: a missing one must fail before the directory is touched.
    let mut contents = Vec::with_capacity(snapshot.len());
    for (path, _) in snapshot.iter() {
        contents.push((path, snapshot.read(blobs, path)?));
    }
    let root_fd = open_root(root, true)?;
    let mut report = MaterializeReport::default();
    for (path, content) in contents {
        write_beneath(&root_fd, path, &content, &mut report)?;
    }
    // Pruning after writing, so the snapshot's own .gitignore files are the ones on disk when
    // the walk reads them: what the project ignores (a local database, `.env`) is left alone.
    if options.prune {
        prune(&root_fd, snapshot, &options.ignore, &mut report)?;
    }
    Ok(report)
}

fn prune(
    root: &OwnedFd,
    snapshot: &Snapshot,
    rules: &IgnoreRules,
    report: &mut MaterializeReport,
) -> Result<(), WorkspaceError> {
    let mut matcher = IgnoreMatcher::new(rules);
    let dirs_in_snapshot: std::collections::BTreeSet<String> = snapshot
        .paths()
        .flat_map(|p| {
            let mut acc = Vec::new();
            let mut cur = p.parent();
            while let Some(d) = cur {
                cur = d.parent();
                acc.push(d.to_string());
            }
            acc
        })
        .collect();
    walk(root, &mut matcher, &mut |dir, found| {
        let (rel, name, remove_flags) = match found {
            Found::File(rel, name) | Found::Other(rel, _, name) => (rel, name, AtFlags::empty()),
            Found::DirDone(rel, name) => {
                if dirs_in_snapshot.contains(&rel) {
                    return Ok(());
                }
                (rel, name, AtFlags::REMOVEDIR)
            }
        };
        let keep = remove_flags.is_empty()
            && WorkspacePath::new(&rel).is_ok_and(|p| snapshot.contains(&p));
        if keep {
            return Ok(());
        }
        match rustix::fs::unlinkat(dir, OsStr::from_bytes(&name), remove_flags) {
            Ok(()) => report.removed += 1,
            // A directory still holding ignored content stays.
            Err(Errno::NOTEMPTY | Errno::NOENT) => {}
            Err(e) => return Err(io_err("remove", rel)(e)),
        }
        Ok(())
    })?;
    Ok(())
}

fn write_beneath(
    root: &OwnedFd,
    path: &WorkspacePath,
    content: &[u8],
    report: &mut MaterializeReport,
) -> Result<(), WorkspaceError> {
    let dir = open_parent(root, path, true, report)?;
    let name = path.file_name();
    match file_type_at(&dir, name).map_err(io_err("inspect", path.as_str()))? {
        Some(FileType::RegularFile) => {
            if let Some(Ok(existing)) = read_beneath(root, path, content.len() as u64)?
                && existing == content
            {
                report.unchanged += 1;
                return Ok(());
            }
        }
        Some(FileType::Directory) => {
            return Err(WorkspaceError::Conflict {
                path: path.to_string(),
                reason: "a directory exists where the snapshot has a file".into(),
            });
        }
        Some(_) => {
            rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                .map_err(io_err("remove what stands in place of file", path.as_str()))?;
            report.removed += 1;
        }
        None => {}
    }
    let fd = rustix::fs::openat(
        &dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(FILE_MODE),
    )
    .map_err(|e| match e {
        Errno::LOOP => WorkspaceError::Conflict {
            path: path.to_string(),
            reason: "became a symlink while being written; refused to follow it".into(),
        },
        other => io_err("create file", path.as_str())(other),
    })?;
    // Explicit mode: the umask or a command's chmod must not decide what we leave behind.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(FILE_MODE))
        .map_err(io_err("set mode of", path.as_str()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(content)
        .map_err(|source| WorkspaceError::Io {
            action: "write",
            path: path.to_string(),
            source,
        })?;
    report.written += 1;
    Ok(())
}
