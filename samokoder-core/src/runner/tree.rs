//! Walks of a workspace tree on the host: its disk use (the quota) and handing it to the
//! jail's host user. Symbolic links are never followed and other file systems never entered.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A host user and group the jail runs as (see [`RunnerConfig::sandbox_uid`](super::RunnerConfig::sandbox_uid)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Calls `f` with every entry under `root` (not `root` itself), depth first.
fn walk(
    root: &Path,
    f: &mut dyn FnMut(&Path, &std::fs::Metadata) -> io::Result<()>,
) -> io::Result<()> {
    let device = std::fs::symlink_metadata(root)?.dev();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Removed by the command meanwhile, or unreadable: not ours to count.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            f(&path, &meta)?;
            if meta.is_dir() && meta.dev() == device {
                stack.push(path);
            }
        }
    }
    Ok(())
}

/// Bytes of disk the tree under `root` occupies (allocated blocks, each hard-linked file
/// once), the root directory itself included.
pub(crate) fn disk_usage(root: &Path) -> io::Result<u64> {
    let mut total = std::fs::symlink_metadata(root)?.blocks() * 512;
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    walk(root, &mut |_, meta| {
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            return Ok(());
        }
        total += meta.blocks() * 512;
        Ok(())
    })?;
    Ok(total)
}

/// Makes `user` the owner of `root` and of everything under it that it does not own yet
/// (symbolic links themselves, never their targets).
pub(crate) fn hand_over(root: &Path, user: HostUser) -> io::Result<()> {
    let chown = |path: &Path, meta: &std::fs::Metadata| {
        if meta.uid() != user.uid || meta.gid() != user.gid {
            std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))?;
        }
        Ok(())
    };
    chown(root, &std::fs::symlink_metadata(root)?)?;
    walk(root, &mut |path, meta| chown(path, meta))
}

/// Whether `user` can reach `path`: every directory from `/` down to it searchable by it.
/// The error names the first directory that is not.
pub(crate) fn check_reachable(path: &Path, user: HostUser) -> Result<(), String> {
    let mut at = PathBuf::from("/");
    let components: Vec<_> = path.components().skip(1).collect();
    for (i, component) in std::iter::once(None)
        .chain(components.iter().map(Some))
        .enumerate()
    {
        if let Some(c) = component {
            at.push(c);
        }
        let is_last = i == components.len();
        let meta = std::fs::metadata(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        if is_last && !meta.is_dir() {
            break;
        }
        let mode = meta.mode();
        let searchable = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Err(format!(
                "{} (mode {:04o}, owner {}:{}) is not searchable by the sandbox user {}:{}",
                at.display(),
                mode & 0o7777,
                meta.uid(),
                meta.gid(),
                user.uid,
                user.gid
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn usage_counts_blocks_and_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        let empty = disk_usage(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 100_000]).unwrap();
        let one = disk_usage(dir.path()).unwrap();
        assert!(one >= empty + 100_000, "{one} vs {empty}");
        std::fs::hard_link(dir.path().join("sub/a"), dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        let linked = disk_usage(dir.path()).unwrap();
        assert!(
            linked < one + 50_000,
            "a hard link or a symlink is not a second copy: {linked} vs {one}"
        );
    }

    #[test]
    fn reachability_names_the_blocking_directory() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        let stranger = HostUser {
            uid: 2_000_000_001,
            gid: 2_000_000_001,
        };
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let err = check_reachable(&inner, stranger).unwrap_err();
        assert!(err.contains("/a (mode 0700"), "{err}");
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o711))
            .unwrap();
        assert_eq!(check_reachable(&inner, stranger), Ok(()));
        let me = HostUser {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        };
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        assert_eq!(
            check_reachable(&inner, me),
            Ok(()),
            "the owner's own bits count"
        );
    }

    #[test]
    fn handing_over_to_oneself_changes_nothing_and_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("l")).unwrap();
        let me = HostUser {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        };
        let before = std::fs::metadata("/etc/passwd").unwrap().uid();
        hand_over(dir.path(), me).unwrap();
        assert_eq!(std::fs::metadata("/etc/passwd").unwrap().uid(), before);
        assert_eq!(
            std::fs::metadata(dir.path().join("f")).unwrap().uid(),
            me.uid
        );
    }
}
