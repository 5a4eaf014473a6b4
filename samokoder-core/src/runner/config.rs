//! Runner configuration.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Processes/threads of the user (`RLIMIT_NPROC`). The kernel does not enforce it for
    /// processes whose real user is root outside the sandbox (a server run as root): there the
    /// pid namespace and the time limit are what bound a fork bomb.
    pub max_processes: u64,
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
            format!("--fsize={0}:{0}", self.max_file_bytes),
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
