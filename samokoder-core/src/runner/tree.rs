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

    fn me() -> HostUser {
        HostUser {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        }
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn usage_counts_blocks_and_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        let empty = disk_usage(dir.path()).unwrap();
        assert_eq!(
            empty,
            std::fs::metadata(dir.path()).unwrap().blocks() * 512,
            "an empty directory is its own blocks"
        );
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 100_000]).unwrap();
        let one = disk_usage(dir.path()).unwrap();
        assert!(one >= empty + 100_000, "{one} vs {empty}");
        std::fs::hard_link(dir.path().join("sub/a"), dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        let linked = disk_usage(dir.path()).unwrap();
        assert!(
            linked >= one && linked < one + 50_000,
            "a hard link or a symlink is not a second copy, but the file counts: {linked} vs {one}"
        );
    }

    #[test]
    fn a_tree_changing_under_the_walk_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["a", "b"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            for n in 0..20 {
                std::fs::write(dir.path().join(sub).join(n.to_string()), "x").unwrap();
            }
        }
        let mut seen = 0;
        // Removing a directory just reported, and every file beside the first one seen: the
        // walk meets paths that are gone and goes on.
        walk(dir.path(), &mut |path, meta| {
            seen += 1;
            if meta.is_dir() {
                std::fs::remove_dir_all(path)?;
            } else if let Some(parent) = path.parent() {
                for entry in std::fs::read_dir(parent)?.flatten() {
                    if entry.path() != path {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
            Ok(())
        })
        .unwrap();
        assert!(seen >= 2, "{seen}");
        assert!(walk(&dir.path().join("missing"), &mut |_, _| Ok(())).is_err());
    }

    #[test]
    fn reachability_names_the_blocking_directory() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        let a = dir.path().join("a");
        let stranger = HostUser {
            uid: 2_000_000_001,
            gid: 2_000_000_001,
        };
        chmod(dir.path(), 0o711);
        chmod(&a, 0o700);
        let err = check_reachable(&inner, stranger).unwrap_err();
        assert!(err.contains("/a (mode 0700"), "{err}");
        chmod(&a, 0o711);
        assert_eq!(check_reachable(&inner, stranger), Ok(()));
        chmod(&a, 0o700);
        assert_eq!(
            check_reachable(&inner, me()),
            Ok(()),
            "the owner's own bits count"
        );
        chmod(&a, 0o677);
        assert!(
            check_reachable(&inner, me()).is_err(),
            "only the owner's bits count for the owner"
        );
        chmod(&a, 0o711);
        // A file at the end is fine; a file on the way is not a directory to search.
        std::fs::write(inner.join("f"), "").unwrap();
        assert_eq!(check_reachable(&inner.join("f"), stranger), Ok(()));
        assert!(check_reachable(&inner.join("f/g"), stranger).is_err());
        if me().uid == 0 {
            // The group's bits count for a member of the directory's group (only root can
            // give a directory to another group here).
            let member = HostUser {
                uid: 2_000_000_002,
                gid: 2_000_000_002,
            };
            std::os::unix::fs::chown(&a, None, Some(member.gid)).unwrap();
            chmod(&a, 0o710);
            assert_eq!(check_reachable(&inner, member), Ok(()));
            assert!(check_reachable(&inner, stranger).is_err());
            chmod(&a, 0o701);
            assert!(check_reachable(&inner, member).is_err());
        }
    }

    #[test]
    fn handing_over_changes_owners_and_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("l")).unwrap();
        let before = std::fs::metadata("/etc/passwd").unwrap().uid();
        hand_over(dir.path(), me()).unwrap();
        assert_eq!(std::fs::metadata("/etc/passwd").unwrap().uid(), before);
        assert_eq!(
            std::fs::metadata(dir.path().join("f")).unwrap().uid(),
            me().uid
        );
        if me().uid != 0 {
            return;
        }
        // As root: everything changes hands, links included, their targets never; the uid
        // and the gid each.
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/g"), "y").unwrap();
        for other in [
            HostUser {
                uid: 2_000_000_003,
                gid: 2_000_000_003,
            },
            HostUser {
                uid: 2_000_000_003,
                gid: 2_000_000_004,
            },
            HostUser {
                uid: 2_000_000_005,
                gid: 2_000_000_004,
            },
        ] {
            hand_over(dir.path(), other).unwrap();
            for path in ["", "f", "sub", "sub/g", "l"] {
                let meta = std::fs::symlink_metadata(dir.path().join(path)).unwrap();
                assert_eq!((meta.uid(), meta.gid()), (other.uid, other.gid), "{path:?}");
            }
            assert_eq!(std::fs::metadata("/etc/passwd").unwrap().uid(), before);
        }
    }
}
