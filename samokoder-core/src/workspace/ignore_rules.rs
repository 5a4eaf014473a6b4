//! Which files are not part of a project: a default list plus the project's `.gitignore` files,
//! with git's semantics (via the `ignore` crate's matcher).

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::blob::BlobSource;
use super::snapshot::Snapshot;

/// Build output, dependency trees, caches and editor litter: never part of a project's source,
/// often huge. In gitignore syntax.
pub const DEFAULT_IGNORES: &[&str] = &[
    ".git/",
    ".hg/",
    ".svn/",
    "node_modules/",
    "bower_components/",
    ".npm/",
    ".yarn/cache/",
    ".pnpm-store/",
    "__pycache__/",
    "*.pyc",
    ".venv/",
    "venv/",
    ".tox/",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    "*.egg-info/",
    "target/",
    "dist/",
    "build/",
    ".next/",
    ".nuxt/",
    ".svelte-kit/",
    ".parcel-cache/",
    ".turbo/",
    ".cache/",
    "coverage/",
    ".nyc_output/",
    ".idea/",
    ".DS_Store",
    "Thumbs.db",
    "*.swp",
    "npm-debug.log*",
    "yarn-error.log*",
];

/// The largest `.gitignore` read; bigger ones are generated noise and are not honoured.
pub const MAX_GITIGNORE_BYTES: usize = 64 * 1024;

/// Ignore configuration: gitignore-syntax patterns applied everywhere, and whether the
/// project's own `.gitignore` files count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreRules {
    /// Patterns in gitignore syntax, relative to the workspace root.
    pub patterns: Vec<String>,
    /// Honour `.gitignore` files found in the tree (each for its own directory, as git does).
    pub use_gitignore_files: bool,
}

impl Default for IgnoreRules {
    fn default() -> Self {
        Self {
            patterns: DEFAULT_IGNORES.iter().map(|s| (*s).to_owned()).collect(),
            use_gitignore_files: true,
        }
    }
}

impl IgnoreRules {
    /// No patterns and no `.gitignore`: every file counts.
    pub fn none() -> Self {
        Self {
            patterns: Vec::new(),
            use_gitignore_files: false,
        }
    }
}

/// A compiled matcher over `/`-separated relative paths.
///
/// Precedence follows git: a deeper `.gitignore` overrides a shallower one, any `.gitignore`
/// overrides the configured patterns (so a project can `!dist/` to keep its `dist`), and a file
/// inside an ignored directory is ignored whatever its own patterns say.
///
/// ```
/// use samokoder_core::workspace::{IgnoreMatcher, IgnoreRules};
///
/// let mut m = IgnoreMatcher::new(&IgnoreRules::default());
/// m.add_gitignore("", "*.secret\n");
/// assert!(m.is_ignored("node_modules/x/index.js", false));
/// assert!(m.is_ignored("config/db.secret", false));
/// assert!(!m.is_ignored("src/index.js", false));
/// ```
#[derive(Debug, Clone)]
pub struct IgnoreMatcher {
    defaults: Gitignore,
    /// (directory prefix, "" for the root; its `.gitignore`), in insertion order.
    per_dir: Vec<(String, Gitignore)>,
    use_gitignore_files: bool,
}

fn compile(lines: impl IntoIterator<Item = impl AsRef<str>>) -> Gitignore {
    let mut builder = GitignoreBuilder::new(".");
    for line in lines {
        // A malformed line is skipped, as git skips it, rather than failing the whole file.
        let _ = builder.add_line(None, line.as_ref());
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

impl IgnoreMatcher {
    /// A matcher with the configured patterns and no `.gitignore` yet.
    pub fn new(rules: &IgnoreRules) -> Self {
        Self {
            defaults: compile(&rules.patterns),
            per_dir: Vec::new(),
            use_gitignore_files: rules.use_gitignore_files,
        }
    }

    /// A matcher for a snapshot: the configured patterns plus every `.gitignore` in it whose
    /// blob `blobs` has and which is UTF-8 and at most [`MAX_GITIGNORE_BYTES`].
    pub fn for_snapshot(rules: &IgnoreRules, snapshot: &Snapshot, blobs: &dyn BlobSource) -> Self {
        let mut m = Self::new(rules);
        if rules.use_gitignore_files {
            for (path, hash) in snapshot.iter() {
                if path.file_name() != ".gitignore" {
                    continue;
                }
                let Some(bytes) = blobs.blob(hash) else {
                    continue;
                };
                if bytes.len() > MAX_GITIGNORE_BYTES {
                    continue;
                }
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    let dir = path
                        .parent()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default();
                    m.add_gitignore(&dir, text);
                }
            }
        }
        m
    }

    /// Adds the `.gitignore` of directory `dir` (`""` for the root). Ignored when the rules say
    /// not to honour `.gitignore` files.
    pub fn add_gitignore(&mut self, dir: &str, content: &str) {
        if self.use_gitignore_files {
            self.per_dir
                .push((dir.trim_matches('/').to_owned(), compile(content.lines())));
        }
    }

    /// Whether `path` (relative, `/`-separated) is ignored, it or any directory above it.
    pub fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        let path = path.trim_matches('/');
        let mut end = 0;
        // Each ancestor directory first: git never looks inside an excluded directory.
        while let Some(pos) = path[end..].find('/') {
            let dir = &path[..end + pos];
            if self.decide(dir, true) {
                return true;
            }
            end += pos + 1;
        }
        self.decide(path, is_dir)
    }

    fn decide(&self, path: &str, is_dir: bool) -> bool {
        // Deepest .gitignore first; within the same depth the later one wins.
        let mut applicable: Vec<&(String, Gitignore)> = self
            .per_dir
            .iter()
            .filter(|(dir, _)| {
                dir.is_empty()
                    || (path.len() > dir.len()
                        && path.starts_with(dir.as_str())
                        && path.as_bytes()[dir.len()] == b'/')
            })
            .collect();
        applicable.reverse();
        applicable.sort_by_key(|(dir, _)| std::cmp::Reverse(dir.len()));
        for (dir, gi) in applicable {
            let rel = if dir.is_empty() {
                path
            } else {
                &path[dir.len() + 1..]
            };
            match gi.matched(rel, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        self.defaults.matched(path, is_dir).is_ignore()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::{MemoryBlobs, WorkspacePath};

    #[test]
    fn defaults_cover_dependency_and_build_dirs() {
        let m = IgnoreMatcher::new(&IgnoreRules::default());
        for p in [
            "node_modules/a/b.js",
            "pkg/node_modules/x",
            "__pycache__/m.cpython-311.pyc",
            "app/mod.pyc",
            ".venv/bin/python",
            "target/debug/x",
            "dist/bundle.js",
            ".DS_Store",
        ] {
            assert!(m.is_ignored(p, false), "{p}");
        }
        for p in [
            "src/app.js",
            "package.json",
            "README.md",
            "distance.txt",
            "builder/x.py",
        ] {
            assert!(!m.is_ignored(p, false), "{p}");
        }
        assert!(m.is_ignored("dist", true));
        assert!(
            !m.is_ignored("dist", false),
            "a plain file named dist is not the dist/ dir"
        );
    }

    #[test]
    fn gitignore_files_scope_and_precedence() {
        let mut m = IgnoreMatcher::new(&IgnoreRules::default());
        m.add_gitignore("", "*.env\n!dist/\n");
        m.add_gitignore("sub", "local.txt\n!keep.env\n");
        assert!(m.is_ignored("a.env", false));
        assert!(m.is_ignored("sub/x.env", false));
        assert!(!m.is_ignored("sub/keep.env", false), "deeper file wins");
        assert!(
            !m.is_ignored("dist/app.js", false),
            "project re-includes dist/"
        );
        assert!(m.is_ignored("sub/local.txt", false));
        assert!(
            !m.is_ignored("local.txt", false),
            "sub/.gitignore applies only under sub/"
        );

        let off = IgnoreRules {
            use_gitignore_files: false,
            ..IgnoreRules::default()
        };
        let mut m = IgnoreMatcher::new(&off);
        m.add_gitignore("", "*.env\n");
        assert!(!m.is_ignored("a.env", false));
    }

    #[test]
    fn reads_gitignores_from_a_snapshot() {
        let mut blobs = MemoryBlobs::new();
        let mut s = Snapshot::new();
        s.write(
            &mut blobs,
            WorkspacePath::new(".gitignore").unwrap(),
            "secret.txt\n",
        );
        s.write(
            &mut blobs,
            WorkspacePath::new("web/.gitignore").unwrap(),
            "*.tmp\n",
        );
        let m = IgnoreMatcher::for_snapshot(&IgnoreRules::default(), &s, &blobs);
        assert!(m.is_ignored("secret.txt", false));
        assert!(m.is_ignored("web/a.tmp", false));
        assert!(!m.is_ignored("a.tmp", false));
    }
}
