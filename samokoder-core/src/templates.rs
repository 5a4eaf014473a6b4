//! Starter templates: small, real projects a run can start from, embedded in the binary.
//!
//! Two need nothing installed and pass their tests offline: `node-api`, an HTTP API on
//! `node:http` tested with `node --test`, and `python-service`, a WSGI service on the standard
//! library tested with `unittest`. Two are full stacks whose dependencies the install phase
//! ([`crate::install`]) installs from a registry, pinned by their lockfiles: `fullstack-ts`
//! (React and Vite, an Express API over SQLite, accounts; vitest, a typecheck, a build) and
//! `python-api` (FastAPI over SQLite, accounts; pytest). Rendering substitutes `{{project_name}}` (as given) and
//! `{{project_slug}}` (lower-case, `-`-separated: package names) and yields a
//! [`Snapshot`](crate::workspace::Snapshot).
//!
//! ```
//! use samokoder_core::templates::{self, TemplateVars};
//! use samokoder_core::workspace::{MemoryBlobs, WorkspacePath};
//!
//! let template = templates::get("node-api").unwrap();
//! let mut blobs = MemoryBlobs::new();
//! let snapshot = template.render(&TemplateVars::new("Todo API"), &mut blobs).unwrap();
//! let package = snapshot.read_text(&blobs, &WorkspacePath::new("package.json").unwrap()).unwrap();
//! assert!(package.contains("\"name\": \"todo-api\""));
//! assert_eq!(template.test_command, ["npm", "test"]);
//! ```

use std::time::Duration;

use serde::Serialize;

use crate::runner::{CommandSpec, Invocation, ServiceSpec};
use crate::workspace::{MemoryBlobs, PathError, Snapshot, WorkspacePath};

/// A starter template.
#[derive(Debug, Serialize)]
pub struct Template {
    /// Stable id (`node-api`).
    pub id: &'static str,
    /// One sentence for people and for the architect's prompt.
    pub description: &'static str,
    /// The technology stack, short (`Node.js 18+, node:http, node:test`).
    pub stack: &'static str,
    /// The argv that runs its tests, from the project root.
    pub test_command: &'static [&'static str],
    /// The argv that starts it; it listens on `HOST:PORT` from the environment.
    pub start_command: &'static [&'static str],
    /// The argv that builds what the start command serves (a front end), run before a preview
    /// starts; empty when there is nothing to build.
    pub build_command: &'static [&'static str],
    /// Its dependencies come from a package registry (the install phase installs them
    /// before any command): usable only where installs can reach one.
    pub needs_install: bool,
    #[serde(skip)]
    files: &'static [(&'static str, &'static str)],
}

/// Values substituted into a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVars {
    /// The project's display name: letters, digits, spaces and `-_.`, at most 100 characters
    /// (it lands inside JSON strings, Python and JavaScript source unescaped).
    pub project_name: String,
}

impl TemplateVars {
    /// Vars with `project_name`.
    pub fn new(project_name: impl Into<String>) -> Self {
        Self {
            project_name: project_name.into(),
        }
    }
}

/// Errors of rendering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// No template has this id.
    #[error("no template {0:?}")]
    Unknown(String),
    /// The project name cannot be substituted safely.
    #[error("project name {name:?} is not usable: {reason}")]
    InvalidProjectName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// An embedded file has an invalid path (a bug in the template list).
    #[error(transparent)]
    Path(#[from] PathError),
}

/// Embeds one template's files, relative to its folder under `templates/`.
macro_rules! files {
    ($dir:literal: $($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../templates/", $dir, "/", $path)))),+]
    };
}

static TEMPLATES: &[Template] = &[
    Template {
        id: "node-api",
        description: "A JSON HTTP API on Node.js's standard library (node:http) with CRUD routes over an in-memory store and tests with node:test; no dependencies.",
        stack: "Node.js 18+, node:http, node:test",
        test_command: &["npm", "test"],
        start_command: &["npm", "start"],
        build_command: &[],
        needs_install: false,
        files: files!("node-api":
            ".gitignore",
            "README.md",
            "package.json",
            "src/app.js",
            "src/server.js",
            "src/store.js",
            "test/app.test.js",
        ),
    },
    Template {
        id: "python-service",
        description: "A JSON web service on Python's standard library (wsgiref) with CRUD routes over an in-memory store and unittest tests; no packages to install.",
        stack: "Python 3.9+, wsgiref, unittest",
        test_command: &[
            "python3", "-m", "unittest", "discover", "-s", "tests", "-t", ".",
        ],
        start_command: &["python3", "-m", "service"],
        build_command: &[],
        needs_install: false,
        files: files!("python-service":
            ".gitignore",
            "README.md",
            "service/__init__.py",
            "service/__main__.py",
            "service/app.py",
            "service/store.py",
            "tests/__init__.py",
            "tests/test_app.py",
        ),
    },
    Template {
        id: "fullstack-ts",
        description: "A full-stack TypeScript app: a React front end built with Vite, an Express API under /api over SQLite (libsql), and accounts (scrypt-hashed passwords, session cookies), with a todo list as the example; API tests with supertest and component tests with Testing Library in vitest, a typecheck and a production build.",
        stack: "Node.js 20.19+, TypeScript, React 19, Vite, Express 5, SQLite (libsql), vitest, Testing Library",
        test_command: &["npm", "run", "check"],
        start_command: &["npm", "start"],
        build_command: &["npm", "run", "build"],
        needs_install: true,
        files: files!("fullstack-ts":
            ".gitignore",
            "README.md",
            "index.html",
            "package-lock.json",
            "package.json",
            "server/app.test.ts",
            "server/app.ts",
            "server/auth.ts",
            "server/db.ts",
            "server/index.ts",
            "src/App.test.tsx",
            "src/App.tsx",
            "src/api.ts",
            "src/main.tsx",
            "src/styles.css",
            "test/setup.ts",
            "tsconfig.json",
            "vite.config.ts",
        ),
    },
    Template {
        id: "python-api",
        description: "A JSON API on FastAPI over SQLite (the standard library's sqlite3) with accounts (scrypt-hashed passwords, session cookies) and a todo list as the example, tested with pytest; dependencies in requirements.txt, pinned in requirements.lock.",
        stack: "Python 3.11+, FastAPI, uvicorn, SQLite (sqlite3), pytest",
        test_command: &[".venv/bin/python", "-m", "pytest", "-q"],
        start_command: &[".venv/bin/python", "-m", "app"],
        build_command: &[],
        needs_install: true,
        files: files!("python-api":
            ".gitignore",
            "README.md",
            "app/__init__.py",
            "app/__main__.py",
            "app/auth.py",
            "app/db.py",
            "app/main.py",
            "requirements.lock",
            "requirements.txt",
            "tests/__init__.py",
            "tests/test_api.py",
        ),
    },
];

/// Every template.
pub fn list() -> &'static [Template] {
    TEMPLATES
}

/// The template with this id.
pub fn get(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

/// The template with this id, or [`TemplateError::Unknown`].
pub fn require(id: &str) -> Result<&'static Template, TemplateError> {
    get(id).ok_or_else(|| TemplateError::Unknown(id.to_owned()))
}

/// `My Todo App` → `my-todo-app`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        "app".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn check_name(name: &str) -> Result<(), TemplateError> {
    let bad = |reason| {
        Err(TemplateError::InvalidProjectName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.trim().is_empty() {
        return bad("it is empty");
    }
    if name.chars().count() > 100 {
        return bad("it is longer than 100 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
    {
        return bad("only letters, digits, spaces and - _ . are allowed");
    }
    Ok(())
}

impl Template {
    /// The embedded files as (relative path, raw content with placeholders).
    pub fn files(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        self.files.iter().copied()
    }

    /// Renders into a snapshot, storing contents in `blobs`.
    pub fn render(
        &self,
        vars: &TemplateVars,
        blobs: &mut MemoryBlobs,
    ) -> Result<Snapshot, TemplateError> {
        check_name(&vars.project_name)?;
        let name = vars.project_name.trim();
        let slug = slug(name);
        let mut snapshot = Snapshot::new();
        for (path, content) in self.files() {
            let rendered = content
                .replace("{{project_name}}", name)
                .replace("{{project_slug}}", &slug);
            snapshot.write(blobs, WorkspacePath::new(path)?, rendered);
        }
        Ok(snapshot)
    }

    /// The test command as a runner spec (no network, five minutes: a typecheck and a build
    /// may be part of it).
    pub fn test_spec(&self) -> CommandSpec {
        CommandSpec::argv(self.test_command.iter().copied()).timeout(Duration::from_secs(300))
    }

    /// The build command as a runner spec, when it has one.
    pub fn build_spec(&self) -> Option<CommandSpec> {
        (!self.build_command.is_empty()).then(|| {
            CommandSpec::argv(self.build_command.iter().copied()).timeout(Duration::from_secs(300))
        })
    }

    /// The start command as a preview service spec.
    pub fn start_spec(&self) -> ServiceSpec {
        ServiceSpec::new(Invocation::Argv {
            args: self.start_command.iter().map(|s| (*s).to_owned()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_on_disk_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for template in list() {
            let dir = root.join(template.id);
            let mut on_disk: Vec<String> = walk(&dir, &dir);
            on_disk.sort();
            let mut embedded: Vec<String> = template.files().map(|(p, _)| p.to_owned()).collect();
            embedded.sort();
            assert_eq!(
                embedded, on_disk,
                "template {} lists different files than its folder",
                template.id
            );
        }
    }

    fn walk(base: &std::path::Path, dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            // Caches left by running a template's tests in place are not part of it.
            if name == "__pycache__" || name == "node_modules" {
                continue;
            }
            if path.is_dir() {
                out.extend(walk(base, &path));
            } else {
                out.push(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        out
    }

    #[test]
    fn ids_are_unique_and_found() {
        for t in list() {
            assert!(std::ptr::eq(get(t.id).unwrap(), t));
        }
        assert_eq!(
            require("nope").unwrap_err(),
            TemplateError::Unknown("nope".into())
        );
    }

    #[test]
    fn render_substitutes_every_placeholder() {
        for t in list() {
            let mut blobs = MemoryBlobs::new();
            let snap = t
                .render(&TemplateVars::new("Shop Backend 2"), &mut blobs)
                .unwrap();
            assert_eq!(snap.len(), t.files().count());
            let mut saw_name = false;
            for (path, _) in snap.iter() {
                let text = snap.read_text(&blobs, path).unwrap();
                assert!(
                    !text.contains("{{project_"),
                    "{}: {path} keeps a placeholder",
                    t.id
                );
                saw_name |= text.contains("Shop Backend 2");
            }
            assert!(saw_name, "{} never uses the project name", t.id);
        }
    }

    #[test]
    fn names_are_checked_and_slugged() {
        assert_eq!(slug("My Todo  App!"), "my-todo-app");
        assert_eq!(slug("Ünïcode"), "n-code");
        assert_eq!(slug("!!!"), "app");
        let mut blobs = MemoryBlobs::new();
        for bad in ["", "a\"b", "x{{y}}", "line\nbreak", &"n".repeat(101)] {
            let err = list()[0]
                .render(&TemplateVars::new(bad), &mut blobs)
                .unwrap_err();
            assert!(
                matches!(err, TemplateError::InvalidProjectName { .. }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn metadata_serialises_without_files() {
        let json = serde_json::to_value(get("python-service").unwrap()).unwrap();
        assert_eq!(
            json["start_command"],
            serde_json::json!(["python3", "-m", "service"])
        );
        assert!(json.get("files").is_none());
    }
}
