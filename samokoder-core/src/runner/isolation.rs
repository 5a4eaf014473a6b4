//! The self-test at start: which isolation features work on this host, probed once by running
//! real jails, so `/health/ready`, the start-up log and `require` mode can say exactly what is
//! and is not enforced.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cgroup::Cgroups;
use super::config::RunnerConfig;
use super::sandbox::{self, Bwrap, JAIL_HOME, JAIL_WORKSPACE, JailSpec};
use super::tree::{self, HostUser};
use super::{CommandLine, RunnerError, bridge};

/// The sub-directory of the support directory holding the jails' bridge directories.
pub(crate) const BRIDGES: &str = "bridges";

/// Feature names, as reported.
pub(crate) const JAIL: &str = "jail";
pub(crate) const NETWORK: &str = "network";
pub(crate) const TMP_SIZE: &str = "tmp_size";
pub(crate) const PROCESS_LIMIT: &str = "process_limit";
pub(crate) const MEMORY_LIMIT: &str = "memory_limit";
pub(crate) const BRIDGE: &str = "bridge";

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether one feature works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationState {
    /// Probed and working.
    Available,
    /// Not working here; the detail says why.
    Unavailable,
}

/// One isolation feature and what the probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationFeature {
    /// `jail` (bubblewrap with user, pid, mount, ipc and uts namespaces), `network` (a network
    /// namespace of its own), `tmp_size` (a size-capped `/tmp`), `process_limit` (a process
    /// limit that binds even a server run as root), `memory_limit` (memory of the whole jail,
    /// `/tmp` included) or `bridge` (the relay for egress and previews).
    pub name: String,
    /// What the probe found.
    pub state: IsolationState,
    /// `runner.sandbox = require` refuses to start without it.
    pub required: bool,
    /// How it works here, or why it does not.
    pub detail: String,
}

/// What the isolation self-test found.
///
/// ```
/// use samokoder_core::runner::{BwrapMode, Runner, RunnerConfig};
///
/// let runner = Runner::new(RunnerConfig { bwrap: BwrapMode::Disabled, ..RunnerConfig::default() })
///     .unwrap();
/// let report = runner.isolation();
/// assert!(!report.feature("jail").unwrap().detail.is_empty());
/// assert!(report.summary().contains("jail: unavailable"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationReport {
    /// Every feature, in a fixed order.
    pub features: Vec<IsolationFeature>,
}

impl IsolationReport {
    /// The feature called `name`.
    pub fn feature(&self, name: &str) -> Option<&IsolationFeature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// Whether every required feature works.
    pub fn complete(&self) -> bool {
        self.missing_required().is_empty()
    }

    /// `name: available (detail); ...`, one line for the start-up log.
    pub fn summary(&self) -> String {
        self.features
            .iter()
            .map(|f| {
                let state = match f.state {
                    IsolationState::Available => "available",
                    IsolationState::Unavailable => "unavailable",
                };
                format!("{}: {state} ({})", f.name, f.detail)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The required features that do not work, each with why; empty when none.
    pub(crate) fn missing_required(&self) -> String {
        self.features
            .iter()
            .filter(|f| f.required && f.state == IsolationState::Unavailable)
            .map(|f| format!("{} is unavailable: {}", f.name, f.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Why `name` does not work (empty when it does).
    pub(crate) fn reason_of(&self, name: &str) -> String {
        self.feature(name)
            .filter(|f| f.state == IsolationState::Unavailable)
            .map(|f| f.detail.clone())
            .unwrap_or_default()
    }

    /// Why there is no jail.
    pub(crate) fn jail_reason(&self) -> String {
        self.reason_of(JAIL)
    }

    fn set(&mut self, name: &'static str, required: bool, found: Result<String, String>) {
        let (state, detail) = match found {
            Ok(detail) => (IsolationState::Available, detail),
            Err(detail) => (IsolationState::Unavailable, detail),
        };
        self.features.push(IsolationFeature {
            name: name.to_owned(),
            state,
            required,
            detail,
        });
    }
}

/// The runner's support directory: the jail's synthetic passwd files and the bridges'
/// directories. Searchable (not listable) by others, so a sandbox user can reach what is
/// bound into its jail.
pub(crate) fn support_dir() -> Result<tempfile::TempDir, RunnerError> {
    let io = |action| move |source| RunnerError::Io { action, source };
    let dir = tempfile::Builder::new()
        .prefix("samokoder-runner-")
        .tempdir()
        .map_err(io("create the runner's support directory"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
        .map_err(io("create the runner's support directory"))?;
    sandbox::write_passwd_files(dir.path()).map_err(io("write the jail's passwd files"))?;
    let bridges = dir.path().join(BRIDGES);
    std::fs::create_dir(&bridges).map_err(io("create the bridges' directory"))?;
    std::fs::set_permissions(&bridges, std::fs::Permissions::from_mode(0o711))
        .map_err(io("create the bridges' directory"))?;
    Ok(dir)
}

/// What the self-test settles on.
pub(crate) struct Probed {
    pub(crate) bwrap: Option<Bwrap>,
    pub(crate) socat: Option<PathBuf>,
    pub(crate) cgroups: Option<Cgroups>,
    pub(crate) host_user: Option<HostUser>,
    pub(crate) report: IsolationReport,
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs the probes for `config`, with `support` as the runner's support directory.
pub(crate) fn probe(config: &RunnerConfig, support: &Path) -> Probed {
    let mut report = IsolationReport {
        features: Vec::new(),
    };
    let cgroups = Cgroups::detect(&config.cgroup);
    let socat = sandbox::find_socat(config.socat_path.as_deref());
    let mut host_user = match config.sandbox_uid {
        Some(uid) if is_root() => Some(HostUser { uid, gid: uid }),
        _ => None,
    };
    let mut user_problem = None;
    if let Some(user) = host_user
        && let Err(why) = tree::check_reachable(support, user)
    {
        user_problem = Some(format!("the sandbox uid {}: {why}", user.uid));
        host_user = None;
    }

    let found = sandbox::find_bwrap(&config.bwrap).and_then(|path| {
        let mut last = String::new();
        // Newest hardening first; older bubblewrap versions lack --disable-userns and --size.
        for (disable_userns, tmp_size) in
            [(true, true), (false, true), (true, false), (false, false)]
        {
            let candidate = Bwrap {
                path: path.clone(),
                disable_userns,
                tmp_size,
            };
            match basic_probe(&candidate, support, config, host_user, None) {
                Ok(()) => return Ok(candidate),
                Err(why) => last = why,
            }
        }
        // Working without the sandbox user means that user is the problem.
        if let Some(user) = host_user {
            let candidate = Bwrap {
                path: path.clone(),
                disable_userns: true,
                tmp_size: true,
            };
            if basic_probe(&candidate, support, config, None, None).is_ok() {
                user_problem = Some(format!(
                    "bubblewrap does not work as the sandbox uid {}: {last}",
                    user.uid
                ));
                host_user = None;
                return Ok(candidate);
            }
        }
        Err(last)
    });
    let bwrap = match found {
        Ok(b) => Some(b),
        Err(why) => {
            let no_jail = format!("no jail: {why}");
            report.set(JAIL, true, Err(why));
            report.set(NETWORK, true, Err(no_jail.clone()));
            report.set(TMP_SIZE, true, Err(no_jail.clone()));
            let (process, memory) = limits_without_jail(&cgroups);
            report.set(PROCESS_LIMIT, true, process);
            report.set(MEMORY_LIMIT, false, memory);
            report.set(BRIDGE, true, Err(no_jail));
            return Probed {
                bwrap: None,
                socat: None,
                cgroups: cgroups.ok(),
                host_user: None,
                report,
            };
        }
    };
    let bw = bwrap.as_ref().expect("found");
    report.set(
        JAIL,
        true,
        Ok(format!(
            "bubblewrap at {}: user, pid, mount, ipc and uts namespaces{}",
            bw.path.display(),
            if bw.disable_userns {
                ", no nested user namespaces"
            } else {
                ""
            }
        )),
    );
    report.set(
        NETWORK,
        true,
        Ok("a network namespace per jail: the host's loopback is not reachable".into()),
    );
    report.set(
        TMP_SIZE,
        true,
        if bw.tmp_size {
            Ok(format!("/tmp capped at {} bytes", config.limits.tmp_bytes))
        } else {
            Err("this bubblewrap has no --size (0.8 or newer has)".into())
        },
    );

    // Control groups: proven by running a jail inside one.
    let cgroups = cgroups.and_then(|cg| {
        let group = cg
            .create(&config.limits)
            .map_err(|e| format!("{}: {e}", cg.describe()))?;
        basic_probe(bw, support, config, host_user, Some(&group))
            .map_err(|e| format!("{}: a jail in it failed: {e}", cg.describe()))?;
        Ok(cg)
    });
    let (process, memory) = match &cgroups {
        Ok(cg) => (
            Ok(format!(
                "{}: pids.max {} per jail",
                cg.describe(),
                config.limits.max_processes
            )),
            Ok(format!(
                "memory.max {} bytes per jail, /tmp included",
                config.limits.total_memory_bytes
            )),
        ),
        Err(why) => {
            let memory = Err(format!(
                "per process only (RLIMIT_DATA): no control group ({why})"
            ));
            let process = match (host_user, is_root()) {
                (Some(user), _) => Ok(format!(
                    "RLIMIT_NPROC of the sandbox uid {} (no control group: {why})",
                    user.uid
                )),
                (None, false) => Ok(format!(
                    "RLIMIT_NPROC of the server's own uid {} (not root; no control group: {why})",
                    rustix::process::geteuid().as_raw()
                )),
                (None, true) => Err(format!(
                    "running as root, where RLIMIT_NPROC does not bind, without a control group ({why}) or a working runner.sandbox_uid{}",
                    user_problem
                        .as_deref()
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default()
                )),
            };
            (process, memory)
        }
    };
    report.set(PROCESS_LIMIT, true, process);
    report.set(MEMORY_LIMIT, false, memory);

    let socat = socat.and_then(|path| {
        bridge_probe(bw, &path, support, config, host_user)?;
        Ok(path)
    });
    report.set(
        BRIDGE,
        true,
        match &socat {
            Ok(path) => Ok(format!(
                "socat at {} relays the jail's loopback to the runner's sockets",
                path.display()
            )),
            Err(why) => Err(format!(
                "{why}: no egress for installs and no previews in the jail"
            )),
        },
    );
    Probed {
        bwrap,
        socat: socat.ok(),
        cgroups: cgroups.ok(),
        host_user,
        report,
    }
}

/// The limits of unconfined commands: a control group still applies to them.
fn limits_without_jail(
    cgroups: &Result<Cgroups, String>,
) -> (Result<String, String>, Result<String, String>) {
    match cgroups {
        Ok(cg) => (
            Ok(format!("{} (without a jail)", cg.describe())),
            Ok("memory.max per command (without a jail)".into()),
        ),
        Err(why) if is_root() => (
            Err(format!(
                "running as root without a jail or a control group ({why})"
            )),
            Err(format!("per process only: no control group ({why})")),
        ),
        Err(why) => (
            Ok(format!(
                "RLIMIT_NPROC of the server's own uid {} (no control group: {why})",
                rustix::process::geteuid().as_raw()
            )),
            Err(format!("per process only: no control group ({why})")),
        ),
    }
}

/// The command line of a probe jail running `script` (and what it needs bound).
fn probe_line(
    bw: &Bwrap,
    root: &Path,
    support: &Path,
    config: &RunnerConfig,
    user: Option<HostUser>,
    bridge_dir: Option<&Path>,
    script: Vec<String>,
) -> CommandLine {
    let mut args = bw.args(&JailSpec {
        root,
        cwd_inside: JAIL_WORKSPACE.into(),
        passwd_dir: support,
        extra_ro_binds: &config.extra_ro_binds,
        tmp_bytes: config.limits.tmp_bytes,
        bridge: bridge_dir.map(|d| (d, false)),
        cache: None,
    });
    args.push("--".into());
    args.extend(script);
    CommandLine {
        program: bw.path.clone(),
        args,
        env: sandbox::base_env(JAIL_HOME, "/tmp"),
        cwd: None,
        user,
        wait_for_attach: false,
    }
}

/// A workspace for a probe, handed to the sandbox user.
fn probe_root(support: &Path, user: Option<HostUser>) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("probe")
        .tempdir_in(support.join(BRIDGES))
        .map_err(|e| format!("cannot create a probe directory: {e}"))?;
    if let Some(user) = user {
        tree::hand_over(dir.path(), user)
            .map_err(|e| format!("cannot hand a probe directory to the sandbox user: {e}"))?;
    }
    Ok(dir)
}

/// Runs `true`-like checks in exactly the jail commands get (in `group` when given): the
/// workspace is writable, the host's root is not there, and a listener on the host's
/// loopback is invisible from inside (its own network namespace).
fn basic_probe(
    bw: &Bwrap,
    support: &Path,
    config: &RunnerConfig,
    user: Option<HostUser>,
    group: Option<&super::cgroup::JailGroup>,
) -> Result<(), String> {
    let root = probe_root(support, user)?;
    let host_listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| format!("cannot open a loopback listener for the probe: {e}"))?;
    let port = host_listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .port();
    let script = format!(
        "test -w /workspace && test ! -e /root && test -r /proc/net/tcp && ! grep -qi ':{port:04X} ' /proc/net/tcp"
    );
    let mut line = probe_line(
        bw,
        root.path(),
        support,
        config,
        user,
        None,
        vec!["/bin/sh".into(), "-c".into(), script],
    );
    line.wait_for_attach = group.is_some();
    let output = run_probe(&line, group)?;
    drop(host_listener);
    if output.0 {
        Ok(())
    } else {
        Err(format!(
            "bubblewrap at {} does not work here: {}",
            bw.path.display(),
            output.1.trim()
        ))
    }
}

/// Proves the egress relay: a jail behind it sends a line through its loopback port, and it
/// arrives on a Unix socket of ours.
fn bridge_probe(
    bw: &Bwrap,
    socat: &Path,
    support: &Path,
    config: &RunnerConfig,
    user: Option<HostUser>,
) -> Result<(), String> {
    let root = probe_root(support, user)?;
    let dir = probe_root(support, user)?;
    let socket = dir.path().join(bridge::EGRESS_SOCKET);
    let listener = std::os::unix::net::UnixListener::bind(&socket)
        .map_err(|e| format!("cannot open a probe socket: {e}"))?;
    if let Some(user) = user {
        std::os::unix::fs::lchown(&socket, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("cannot hand the probe socket over: {e}"))?;
    }
    let echo = std::thread::spawn(move || -> Result<(), String> {
        let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(PROBE_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut got = [0u8; 5];
        stream.read_exact(&mut got).map_err(|e| e.to_string())?;
        if &got != b"ping\n" {
            return Err(format!("unexpected probe bytes {got:?}"));
        }
        stream.write_all(b"pong\n").map_err(|e| e.to_string())
    });
    let mut script = bridge::egress_wrapper(socat);
    script.extend([
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "test \"$(echo ping | \"$0\" -t5 - TCP:127.0.0.1:{})\" = pong",
            bridge::EGRESS_PROXY_PORT
        ),
        socat.to_string_lossy().into_owned(),
    ]);
    let line = probe_line(
        bw,
        root.path(),
        support,
        config,
        user,
        Some(dir.path()),
        script,
    );
    let (ok, stderr) = run_probe(&line, None)?;
    if !ok {
        // Unblock the echo thread.
        let _ = std::os::unix::net::UnixStream::connect(&socket);
        let _ = echo.join();
        return Err(format!(
            "the relay through socat at {} failed: {}",
            socat.display(),
            stderr.trim()
        ));
    }
    echo.join()
        .map_err(|_| "the probe's echo thread panicked".to_owned())?
        .map_err(|e| format!("the relay through socat at {} failed: {e}", socat.display()))
}

/// Runs a probe to its end (killing it after [`PROBE_TIMEOUT`]): whether it succeeded, and
/// its standard error.
fn run_probe(
    line: &CommandLine,
    group: Option<&super::cgroup::JailGroup>,
) -> Result<(bool, String), String> {
    let mut command = line.std();
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", line.program.display()))?;
    if let Some(group) = group {
        let attached = group.attach(child.id());
        if let Some(mut stdin) = child.stdin.take()
            && attached.is_ok()
        {
            let _ = stdin.write_all(b"go\n");
        }
        if let Err(e) = attached {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot move a process into the group: {e}"));
        }
    }
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(err) = stderr.as_mut() {
            let _ = err.read_to_string(&mut text);
        }
        text
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the probe took longer than {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let stderr = reader.join().unwrap_or_default();
    Ok((status.success(), stderr))
}
