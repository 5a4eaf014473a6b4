//! The install phase as the engine runs it before each command ([`crate::install`]): the
//! project's dependencies in step with its manifests and lockfiles, plus the packages the
//! architect listed and a developer's `npm install x` / `pip install x` asked for; and the
//! probe of the sandbox's tools that every prompt states.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{CommandResult, CommandRunner, Drive, Engine, EngineError, RunnerError, StepStop};
use crate::install::{self, After, Ecosystem, FallbackWhen, InstallRequest, InstallStep, Wanted};
use crate::state::{EngineEvent, OutputStream, RunOutcome, Tool};

/// How long one install command may run.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// Prints `name<TAB>first line of --version` for each tool the sandbox has.
const TOOLS_SCRIPT: &str = r#"for t in node npm npx python3 pip3 sqlite3 git make gcc; do
  if command -v "$t" >/dev/null 2>&1; then
    printf '%s\t%s\n' "$t" "$("$t" --version 2>&1 | head -n 1)"
  fi
done"#;

/// An install command that failed: what it was, and how.
#[derive(Debug)]
pub struct Failed {
    /// What ran.
    pub argv: Vec<String>,
    /// How it ended.
    pub result: CommandResult,
}

fn internal(e: impl std::fmt::Display) -> StepStop {
    StepStop::Error(EngineError::Internal(e.to_string()))
}

impl Engine {
    /// The tools of the sandbox, probed in the run's working directory `dir`.
    pub(crate) async fn probe_tools(&self, d: &Drive, dir: &Path) -> Vec<Tool> {
        if std::fs::create_dir_all(dir).is_err() {
            return Vec::new();
        }
        let argv = ["sh", "-c", TOOLS_SCRIPT].map(str::to_owned);
        let mut ignore = |_: OutputStream, _: &str| {};
        let Ok(result) = self
            .deps()
            .runner
            .run(
                dir,
                &argv,
                Duration::from_secs(30),
                true,
                &mut ignore,
                &d.cancel,
            )
            .await
        else {
            return Vec::new();
        };
        result
            .stdout
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(name, version)| Tool {
                name: name.to_owned(),
                version: version.trim().to_owned(),
            })
            .collect()
    }

    /// What to add besides the manifests: the architect's dependencies, and `request`.
    fn wanted(&self, d: &Drive, dir: &Path, request: Option<&InstallRequest>) -> Wanted {
        let mut wanted = Wanted {
            npm_scripts_allowed: self.config.npm_scripts_allowed.clone(),
            ..Wanted::default()
        };
        let npm = dir.join(Ecosystem::Npm.manifest()).is_file();
        let pip = dir.join(Ecosystem::Pip.manifest()).is_file();
        for dependency in d
            .state
            .architecture
            .iter()
            .flat_map(|a| a.dependencies.iter())
        {
            let name = dependency.name.trim();
            if npm && install::valid_npm_spec(name) {
                wanted.npm.push((name.to_owned(), false));
            } else if pip && !npm && install::valid_pip_requirement(name) {
                wanted.pip.push(name.to_owned());
            }
        }
        match request {
            Some(InstallRequest::Npm(packages, dev)) => {
                wanted
                    .npm
                    .extend(packages.iter().map(|p| (p.clone(), *dev)));
            }
            Some(InstallRequest::Pip(packages)) => wanted.pip.extend(packages.iter().cloned()),
            None => {}
        }
        // Asked for twice (by the architect and a developer), installed once.
        let mut seen = std::collections::HashSet::new();
        wanted.npm.retain(|(spec, _)| seen.insert(spec.clone()));
        let mut seen = std::collections::HashSet::new();
        wanted.pip.retain(|r| seen.insert(install::pip_name(r)));
        wanted
    }

    /// Brings `dir`'s dependencies in step with its manifests, adding what is wanted, with
    /// each install command in the run's events and command log. The install command that
    /// failed, if one did; nothing happens where installs cannot reach a registry.
    pub(crate) async fn install_phase(
        &self,
        d: &Drive,
        dir: &Path,
        request: Option<&InstallRequest>,
    ) -> Result<Option<Failed>, StepStop> {
        if !self.deps().runner.can_install() {
            return Ok(None);
        }
        let wanted = self.wanted(d, dir, request);
        let mut observer = RunObserver {
            d,
            live: d.bus.output_sink(),
            ran: Vec::new(),
        };
        let outcome = prepare_dependencies(
            self.deps().runner.as_ref(),
            dir,
            &wanted,
            &mut observer,
            &d.cancel,
        )
        .await;
        observer.live.flush();
        let ran = std::mem::take(&mut observer.ran);
        for (argv, result) in &ran {
            self.deps()
                .store
                .record_command(d.run.id, &result.record(argv))
                .await?;
        }
        match outcome {
            Ok(()) => Ok(None),
            Err(PrepareError::Failed(failed)) => Ok(Some(failed)),
            Err(PrepareError::Cancelled) => Err(StepStop::Outcome(RunOutcome::Cancelled)),
            Err(PrepareError::Runner(e)) => Err(StepStop::Error(EngineError::from(e))),
            Err(PrepareError::Io(e)) => Err(internal(e)),
        }
    }
}

/// What happens during [`prepare_dependencies`], for whoever reports it.
pub trait InstallObserver: Send {
    /// An install command starts.
    fn started(&mut self, argv: &[String], purpose: &str);
    /// It printed something.
    fn output(&mut self, stream: OutputStream, text: &str);
    /// It ended (with any result: the caller learns of a failure from the return value too).
    fn finished(&mut self, argv: &[String], result: &CommandResult);
}

/// An observer that reports nothing.
#[derive(Debug, Default)]
pub struct Quietly;

impl InstallObserver for Quietly {
    fn started(&mut self, _: &[String], _: &str) {}
    fn output(&mut self, _: OutputStream, _: &str) {}
    fn finished(&mut self, _: &[String], _: &CommandResult) {}
}

/// Why [`prepare_dependencies`] did not finish.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// An install command failed; its output says why (the package manager's own error).
    #[error("`{}` failed", .0.argv.join(" "))]
    Failed(Failed),
    /// The runner could not run it.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The project's files could not be read or written.
    #[error("install phase: {0}")]
    Io(#[from] std::io::Error),
    /// The token fired.
    #[error("cancelled")]
    Cancelled,
}

/// Brings `dir`'s dependency trees in step with its manifests and lockfiles, adding what
/// `wanted` asks for ([`crate::install::plan`]), with `runner`'s installs: `npm ci` falls back
/// to `npm install` when the lockfile is out of date, `requirements.lock` is written from
/// `pip freeze`, and each completed tree is marked so an unchanged project installs nothing
/// the next time.
///
/// Used before a run's commands (by the engine) and before a preview starts.
pub async fn prepare_dependencies(
    runner: &dyn CommandRunner,
    dir: &Path,
    wanted: &Wanted,
    observer: &mut dyn InstallObserver,
    cancel: &CancellationToken,
) -> Result<(), PrepareError> {
    let at = dir.to_path_buf();
    let wanted = wanted.clone();
    let steps = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<InstallStep>> {
        if !wanted.pip.is_empty() {
            let path = at.join(Ecosystem::Pip.manifest());
            let manifest = std::fs::read_to_string(&path).unwrap_or_default();
            std::fs::write(&path, install::pip_manifest_with(&manifest, &wanted.pip))?;
        }
        let wanted = Wanted {
            pip: Vec::new(),
            ..wanted
        };
        install::plan(&at, &wanted)
    })
    .await
    .map_err(std::io::Error::other)??;
    for step in steps {
        let result = run_install(runner, dir, &step.argv, &step.purpose, observer, cancel).await?;
        let (argv, result) = match &step.fallback {
            Some(fallback)
                if !succeeded(&result)
                    && fallback.applies(&format!("{}\n{}", result.stdout, result.stderr)) =>
            {
                let purpose = match fallback.when {
                    FallbackWhen::LockfileOutOfDate => {
                        "bring package-lock.json up to date with package.json"
                    }
                    FallbackWhen::Failed => "fetch what the package cache does not have",
                };
                let again =
                    run_install(runner, dir, &fallback.argv, purpose, observer, cancel).await?;
                (fallback.argv.clone(), again)
            }
            _ => (step.argv.clone(), result),
        };
        if !succeeded(&result) {
            return Err(PrepareError::Failed(Failed { argv, result }));
        }
        let at = dir.to_path_buf();
        let ecosystem = step.ecosystem;
        let freeze = result.stdout.clone();
        let then = step.then.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            match then {
                After::Nothing => Ok(()),
                After::Mark => install::mark_installed(&at, ecosystem),
                After::WritePipLock => {
                    let manifest = std::fs::read_to_string(at.join(Ecosystem::Pip.manifest()))?;
                    std::fs::write(
                        at.join(Ecosystem::Pip.lockfile()),
                        install::pip_lock(&manifest, &freeze),
                    )?;
                    install::mark_installed(&at, ecosystem)
                }
            }
        })
        .await
        .map_err(std::io::Error::other)??;
    }
    Ok(())
}

fn succeeded(result: &CommandResult) -> bool {
    result.exit_code == Some(0) && !result.timed_out
}

async fn run_install(
    runner: &dyn CommandRunner,
    dir: &Path,
    argv: &[String],
    purpose: &str,
    observer: &mut dyn InstallObserver,
    cancel: &CancellationToken,
) -> Result<CommandResult, PrepareError> {
    observer.started(argv, purpose);
    let result = {
        let mut output = |stream, text: &str| observer.output(stream, text);
        runner
            .install(dir, argv, INSTALL_TIMEOUT, &mut output, cancel)
            .await?
    };
    if cancel.is_cancelled() {
        return Err(PrepareError::Cancelled);
    }
    observer.finished(argv, &result);
    Ok(result)
}

/// Reports a run's installs: events (live output included), then the command log.
struct RunObserver<'a> {
    d: &'a Drive,
    live: super::events::LiveOutput,
    ran: Vec<(Vec<String>, CommandResult)>,
}

impl InstallObserver for RunObserver<'_> {
    fn started(&mut self, argv: &[String], purpose: &str) {
        self.d.bus.emit(EngineEvent::CommandStarted {
            argv: argv.to_vec(),
            purpose: purpose.to_owned(),
        });
    }

    fn output(&mut self, stream: OutputStream, text: &str) {
        self.live.push(stream, text);
    }

    fn finished(&mut self, argv: &[String], result: &CommandResult) {
        self.live.flush();
        for block in &result.blocked {
            self.d.bus.emit(EngineEvent::SandboxBlocked {
                kind: block.kind.clone(),
                detail: block.detail.clone(),
            });
        }
        self.d.bus.emit(EngineEvent::CommandFinished {
            argv: argv.to_vec(),
            exit_code: result.exit_code,
            timed_out: result.timed_out,
            duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
            success: succeeded(result),
            analysis: None,
        });
        self.ran.push((argv.to_vec(), result.clone()));
    }
}
