//! Runner configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::egress::EgressPolicy;
use super::policy::CommandPolicy;

/// Whether and how to use bubblewrap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum BwrapMode {
    /// Use bubblewrap when it works here (probed once when the runner is built); otherwise run
    /// unconfined and say so in every outcome.
    Auto {
        /// The executable; `None` looks in `/usr/bin`, `/bin`, `/usr/local/bin`.
        path: Option<PathBuf>,
    },
    /// Refuse to build a runner without a working bubblewrap (production).
    Require {
        /// As for `Auto`.
        path: Option<PathBuf>,
    },
    /// Never use it (tests of the fallback, or hosts where an outer sandbox already confines).
    Disabled,
}

impl Default for BwrapMode {
    fn default() -> Self {
        BwrapMode::Auto { path: None }
    }
}

/// Per-command resource limits, applied with the `prlimit` utility (util-linux) inside the
/// sandbox, so they bind the command and everything it starts, not the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// CPU seconds (`RLIMIT_CPU`); past it the kernel kills the process.
    pub cpu_seconds: u64,
    /// Memory in bytes (`RLIMIT_DATA`: heap and private writable mappings): allocation beyond
    /// it fails (`MemoryError`, V8's out-of-memory). This is the memory limit to use.
    pub memory_bytes: u64,
    /// Address space in bytes (`RLIMIT_AS`), off by default: V8 reserves tens of GiB of
    /// address space it never touches (WebAssembly guard regions — `fetch` in Node uses
    /// WebAssembly), so an address-space cap low enough to matter breaks Node programs.
    pub address_space_bytes: Option<u64>,
    /// Processes and threads of the whole jail: the jail's control group's `pids.max` when
    /// there is one, and `RLIMIT_NPROC` of its host user (which the kernel does not apply to
    /// root, hence the control group or [`RunnerConfig::sandbox_uid`] for a server run as root).
    pub max_processes: u64,
    /// Memory of the whole jail, its `/tmp` included (tmpfs pages are charged to the control
    /// group that wrote them): the control group's `memory.max`, swap off. Without a control
    /// group only [`ResourceLimits::memory_bytes`] per process and
    /// [`ResourceLimits::tmp_bytes`] hold.
    pub total_memory_bytes: u64,
    /// CPU of the whole jail in thousandths of a core (`1000` = one core), through the control
    /// group's CPU controller when it has one. `RLIMIT_CPU` ([`ResourceLimits::cpu_seconds`])
    /// bounds each process's CPU time either way.
    pub cpu_millicores: u32,
    /// Size of the jail's private `/tmp` (a tmpfs, so host memory): writes past it fail with
    /// "No space left on device".
    pub tmp_bytes: u64,
    /// Disk space the workspace may use after a command, dependency trees included. Checked
    /// while the command runs and when it ends: a command that leaves the workspace over it
    /// is stopped and reported ([`LimitHit::DiskQuota`](super::LimitHit::DiskQuota)).
    pub workspace_bytes: u64,
    /// Largest file a process may write (`RLIMIT_FSIZE`).
    pub max_file_bytes: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub max_open_files: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            cpu_seconds: 300,
            memory_bytes: 2 * 1024 * 1024 * 1024,
            address_space_bytes: None,
            max_processes: 256,
            total_memory_bytes: 2 * 1024 * 1024 * 1024,
            cpu_millicores: 1000,
            tmp_bytes: 512 * 1024 * 1024,
            workspace_bytes: 2 * 1024 * 1024 * 1024,
            max_file_bytes: 512 * 1024 * 1024,
            max_open_files: 4096,
        }
    }
}

impl ResourceLimits {
    /// The `prlimit` options, soft = hard.
    pub(crate) fn prlimit_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--cpu={0}:{0}", self.cpu_seconds),
            format!("--data={0}:{0}", self.memory_bytes),
            format!("--nproc={0}:{0}", self.max_processes),
            format!(
                "--fsize={0}:{0}",
                self.max_file_bytes.min(self.workspace_bytes)
            ),
            format!("--nofile={0}:{0}", self.max_open_files),
            "--core=0:0".into(),
        ];
        if let Some(bytes) = self.address_space_bytes {
            args.push(format!("--as={bytes}:{bytes}"));
        }
        args
    }
}

/// The environment variables a command may be given besides the fixed base (`PATH`, `HOME`,
/// `TMPDIR`, `LANG`, `TERM=dumb`, `CI=1`, ...). An entry ending in `*` allows a prefix.
pub const DEFAULT_ENV_ALLOWLIST: &[&str] = &[
    "NODE_ENV",
    "PORT",
    "HOST",
    "DEBUG",
    "LOG_LEVEL",
    "TZ",
    "PYTHONPATH",
    "NODE_OPTIONS",
    "FLASK_ENV",
    "APP_*",
];

/// How a [`Runner`](super::Runner) runs commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerConfig {
    /// bubblewrap use.
    pub bwrap: BwrapMode,
    /// `prlimit` executable; `None` looks in `/usr/bin`, `/bin`. It must lie under `/usr` or
    /// `/bin` to be visible inside the jail.
    pub prlimit_path: Option<PathBuf>,
    /// Limits for every command.
    pub limits: ResourceLimits,
    /// Bytes kept per output stream (head and tail), see
    /// [`CapturedOutput`](super::CapturedOutput).
    pub output_cap_bytes: usize,
    /// Names (or `PREFIX*`) allowed in [`CommandSpec::env`](super::CommandSpec::env).
    pub env_allowlist: BTreeSet<String>,
    /// Extra host directories bound read-only into the jail at the same path (a toolchain under
    /// `/opt`, say). `/usr`, `/bin`, `/lib*` and a minimal `/etc` are always there.
    pub extra_ro_binds: Vec<PathBuf>,
    /// What commands may run.
    pub policy: CommandPolicy,
    /// Control groups for the jail's limits.
    pub cgroup: CgroupMode,
    /// The host user and group id jailed processes run as when the runner runs as root: the
    /// kernel exempts root from `RLIMIT_NPROC`, so without a control group this is what bounds
    /// a fork bomb. `None` leaves them root outside the jail (uid 1000 inside either way). The
    /// workspace directories must be reachable by this id (every parent directory searchable);
    /// the runner hands the workspace's files to it before each command.
    pub sandbox_uid: Option<u32>,
    /// The relay inside the jail that connects its loopback to the host's Unix sockets
    /// (egress proxy, preview bridge): `socat`.
    pub socat_path: Option<PathBuf>,
    /// Where [`Network::Egress`](super::Network::Egress) commands may connect.
    pub egress: EgressPolicy,
    /// The deployment's package cache (`npm/` and `pip/` below it), shared by every install
    /// ([`CommandSpec::package_cache`](super::CommandSpec::package_cache)), so a second
    /// install of the same lockfile downloads nothing. `None`: installs have no cache beyond
    /// their own `/tmp`.
    pub package_cache: Option<PathBuf>,
    /// Environment variables of installs: the registries the host's package managers use
    /// (`npm_config_registry`, `PIP_INDEX_URL`, ...), which the jail cannot read from the
    /// host's own configuration files. Names need not be on the allowlist.
    pub install_env: BTreeMap<String, String>,
}

/// Whether and where to create a control group per jail.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CgroupMode {
    /// Find one: cgroup v2 (as root a group under the hierarchy's root, otherwise next to the
    /// runner's own group when that is delegated to its user), else the cgroup v1 `pids` and
    /// `memory` hierarchies as root. None found: limits fall back to `RLIMIT_*` and
    /// [`RunnerConfig::sandbox_uid`], and the self-test says so.
    #[default]
    Auto,
    /// Jails go under this directory of a cgroup v2 hierarchy (e.g. a systemd service's
    /// delegated group, with the server itself in a sub-group of it).
    Path {
        /// The directory, e.g. `/sys/fs/cgroup/system.slice/samokoder.service`.
        path: PathBuf,
    },
    /// No control groups.
    Disabled,
}

/// Default [`RunnerConfig::output_cap_bytes`]: the store keeps 64 KiB of a command's output.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            bwrap: BwrapMode::default(),
            prlimit_path: None,
            limits: ResourceLimits::default(),
            output_cap_bytes: DEFAULT_OUTPUT_CAP,
            env_allowlist: DEFAULT_ENV_ALLOWLIST
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            extra_ro_binds: Vec::new(),
            policy: CommandPolicy::default(),
            cgroup: CgroupMode::default(),
            sandbox_uid: None,
            socat_path: None,
            egress: EgressPolicy::default(),
            package_cache: None,
            install_env: BTreeMap::new(),
        }
    }
}

impl RunnerConfig {
    /// Whether `name` may be passed to a command.
    pub fn env_allowed(&self, name: &str) -> bool {
        self.env_allowlist
            .iter()
            .any(|allowed| match allowed.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => allowed == name,
            })
    }
}
