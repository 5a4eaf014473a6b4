//! The settings of generation: workers, run defaults, the sandboxed runner and previews.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use samokoder_core::runner::{CgroupMode, ResourceLimits};
use serde::{Deserialize, Serialize};

/// The workers that drive runs. Each claims a run's job from the store's queue with a lease it
/// renews while it works; a worker that dies loses the lease and another one resumes the run
/// from its last checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Runs the server process drives at once (`serve`); 0 leaves all runs to
    /// `samokoder-server worker` processes sharing the database.
    /// Env: `SAMOKODER_WORKERS__CONCURRENCY`.
    pub concurrency: usize,
    /// How long a claimed run stays a worker's without a heartbeat, in seconds; the worker
    /// renews it every third of that. A dead worker's runs resume elsewhere after it.
    /// Env: `SAMOKODER_WORKERS__LEASE_SECS`.
    pub lease_secs: u64,
    /// How often an idle worker looks for work, in milliseconds.
    /// Env: `SAMOKODER_WORKERS__POLL_INTERVAL_MS`.
    pub poll_interval_ms: u64,
    /// Attempts at driving a run before it fails (a crash-resume and a retry after a provider
    /// outage each use one; answering a question or resuming starts a new count).
    /// Env: `SAMOKODER_WORKERS__MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// The first retry delay after a provider outage or a database error, in seconds; it
    /// doubles per attempt. Env: `SAMOKODER_WORKERS__RETRY_DELAY_SECS`.
    pub retry_delay_secs: u64,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            lease_secs: 60,
            poll_interval_ms: 500,
            max_attempts: 5,
            retry_delay_secs: 10,
        }
    }
}

impl WorkersConfig {
    /// The lease.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(1))
    }

    /// How often a worker renews its lease (and looks at the run's status).
    pub fn heartbeat(&self) -> Duration {
        self.lease() / 3
    }

    /// The idle poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }
}

/// Budget limits of a run (deployment defaults); unset means unlimited (up to the plan's
/// maximum, which always applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetDefaults {
    /// Prompt plus completion tokens. Env: `SAMOKODER_RUNS__DEFAULT_BUDGET__TOKENS`.
    pub tokens: Option<u64>,
    /// Cost in micro-dollars. Env: `SAMOKODER_RUNS__DEFAULT_BUDGET__COST_MICROS`.
    pub cost_micros: Option<u64>,
    /// LLM requests. Env: `SAMOKODER_RUNS__DEFAULT_BUDGET__LLM_CALLS`.
    pub llm_calls: Option<u64>,
    /// Wall time in seconds. Env: `SAMOKODER_RUNS__DEFAULT_BUDGET__WALL_TIME_SECS`.
    pub wall_time_secs: Option<u64>,
}

/// Runs: their default budget, where they work, and how their events are followed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunsConfig {
    /// Limits of a run that names none (each capped at the user's plan maximum).
    pub default_budget: BudgetDefaults,
    /// Steps a run may take before a person must allow more (interactive) or it ends (auto).
    /// Env: `SAMOKODER_RUNS__MAX_STEPS`.
    pub max_steps: u64,
    /// Where runs materialise their files to run commands; unset means `<data_dir>/work`.
    /// Env: `SAMOKODER_RUNS__WORKDIR`.
    pub workdir: Option<PathBuf>,
    /// How often an event stream with no live news reads the store, in milliseconds (runs
    /// driven by another process publish only there). Env: `SAMOKODER_RUNS__EVENT_POLL_MS`.
    pub event_poll_ms: u64,
    /// Seconds between keep-alive comments on an idle event stream.
    /// Env: `SAMOKODER_RUNS__KEEP_ALIVE_SECS`.
    pub keep_alive_secs: u64,
    /// Times one LLM request is retried after a passing failure (a 5xx, a dropped stream)
    /// before the worker gives the run back to the queue for a later attempt.
    /// Env: `SAMOKODER_RUNS__LLM_RETRIES`.
    pub llm_retries: u32,
    /// The first of those retries' delays, in milliseconds; it doubles per retry (a provider's
    /// `retry-after` wins when longer). Env: `SAMOKODER_RUNS__LLM_RETRY_DELAY_MS`.
    pub llm_retry_delay_ms: u64,
}

impl Default for RunsConfig {
    fn default() -> Self {
        Self {
            default_budget: BudgetDefaults {
                tokens: Some(2_000_000),
                cost_micros: Some(5_000_000),
                llm_calls: Some(500),
                wall_time_secs: Some(3600),
            },
            max_steps: 200,
            workdir: None,
            event_poll_ms: 400,
            keep_alive_secs: 15,
            llm_retries: 4,
            llm_retry_delay_ms: 500,
        }
    }
}

impl RunsConfig {
    /// The store poll interval of event streams.
    pub fn event_poll(&self) -> Duration {
        Duration::from_millis(self.event_poll_ms.max(10))
    }

    /// The keep-alive interval of event streams.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs.max(1))
    }
}

/// Whether commands must run in the bubblewrap sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// Use bubblewrap when it works on the host; otherwise run commands unconfined (with a
    /// scrubbed environment and resource limits) and say so in every run's events.
    Auto,
    /// Refuse to start without a working bubblewrap.
    Require,
}

/// The sandboxed runner that runs generated code (tests, installs, previews). Every jail has
/// a network namespace of its own; see the README's "Isolation" section for the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerSettings {
    /// `auto` or `require`; unset means `require` in production and `auto` elsewhere.
    /// `require` refuses to start unless every required isolation feature works (the jail,
    /// its network namespace, the `/tmp` cap, a process limit that binds root, the bridge).
    /// Env: `SAMOKODER_RUNNER__SANDBOX`.
    pub sandbox: Option<SandboxMode>,
    /// Control groups for the jails' limits: `auto` (cgroup v2 where delegated or as root,
    /// else cgroup v1 as root), `disabled`, or the path of a cgroup v2 directory delegated to
    /// the server's user. Env: `SAMOKODER_RUNNER__CGROUP`.
    pub cgroup: CgroupSetting,
    /// The host uid (and gid) jailed processes run as when the server runs as root, so that
    /// `RLIMIT_NPROC` binds without a control group. The work and preview directories must be
    /// reachable by it. Env: `SAMOKODER_RUNNER__SANDBOX_UID`.
    pub sandbox_uid: Option<u32>,
    /// The `socat` relay used inside the jails (egress and previews); unset looks in
    /// `/usr/bin` and `/bin`. Env: `SAMOKODER_RUNNER__SOCAT_PATH`.
    pub socat_path: Option<PathBuf>,
    /// Hosts package installs may reach through the egress proxy: `host`, `host:port` or
    /// `*.domain` (ports 443 and 80 unless given). Unset means the registries the host's own
    /// npm and pip are configured to use, read from their configuration at start; an empty
    /// list means no egress at all. Env: `SAMOKODER_RUNNER__EGRESS_HOSTS` (comma-separated).
    #[serde(deserialize_with = "super::serde_util::optional_string_list")]
    pub egress_hosts: Option<Vec<String>>,
    /// Networks the egress proxy may connect to although they are loopback, private or
    /// link-local (an internal registry mirror). Env:
    /// `SAMOKODER_RUNNER__EGRESS_PRIVATE_NETWORKS` (comma-separated CIDRs).
    #[serde(deserialize_with = "super::serde_util::ip_nets")]
    pub egress_private_networks: Vec<IpNet>,
    /// Processes and threads per jail. Env: `SAMOKODER_RUNNER__MAX_PROCESSES`.
    pub max_processes: u64,
    /// Memory per jail in MiB, its `/tmp` included (with a control group; per process
    /// otherwise). Env: `SAMOKODER_RUNNER__MEMORY_MIB`.
    pub memory_mib: u64,
    /// CPU per jail in thousandths of a core (with a control group's CPU controller).
    /// Env: `SAMOKODER_RUNNER__CPU_MILLICORES`.
    pub cpu_millicores: u32,
    /// Size of a jail's private `/tmp` in MiB. Env: `SAMOKODER_RUNNER__TMP_MIB`.
    pub tmp_mib: u64,
    /// Disk space a run's (or a preview's) workspace may use in MiB, dependencies included.
    /// Env: `SAMOKODER_RUNNER__WORKSPACE_MIB`.
    pub workspace_mib: u64,
    /// The package cache every install shares (npm's and pip's), so the second install of
    /// a lockfile downloads nothing; unset means `<data_dir>/package-cache`.
    /// Env: `SAMOKODER_RUNNER__PACKAGE_CACHE`.
    pub package_cache: Option<PathBuf>,
    /// npm packages whose install scripts may run (after an install with scripts off); none
    /// by default. Env: `SAMOKODER_RUNNER__NPM_SCRIPTS_ALLOWED` (comma-separated).
    #[serde(deserialize_with = "super::serde_util::string_list")]
    pub npm_scripts_allowed: Vec<String>,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        let limits = ResourceLimits::default();
        Self {
            sandbox: None,
            cgroup: CgroupSetting::Auto,
            sandbox_uid: None,
            socat_path: None,
            egress_hosts: None,
            egress_private_networks: Vec::new(),
            max_processes: limits.max_processes,
            memory_mib: limits.total_memory_bytes >> 20,
            cpu_millicores: limits.cpu_millicores,
            tmp_mib: limits.tmp_bytes >> 20,
            workspace_mib: limits.workspace_bytes >> 20,
            package_cache: None,
            npm_scripts_allowed: Vec::new(),
        }
    }
}

impl RunnerSettings {
    /// The runner's limits: the per-process defaults with these per-jail figures.
    pub fn limits(&self) -> ResourceLimits {
        ResourceLimits {
            max_processes: self.max_processes,
            total_memory_bytes: self.memory_mib << 20,
            cpu_millicores: self.cpu_millicores,
            tmp_bytes: self.tmp_mib << 20,
            workspace_bytes: self.workspace_mib << 20,
            ..ResourceLimits::default()
        }
    }
}

/// [`RunnerSettings::cgroup`]: written as `auto`, `disabled` or a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CgroupSetting {
    /// Find one.
    Auto,
    /// None.
    Disabled,
    /// A delegated cgroup v2 directory.
    Path(PathBuf),
}

impl TryFrom<String> for CgroupSetting {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        match raw.trim() {
            "auto" => Ok(Self::Auto),
            "disabled" | "off" => Ok(Self::Disabled),
            path if path.starts_with('/') => Ok(Self::Path(PathBuf::from(path))),
            _ => Err(
                "expected `auto`, `disabled` or an absolute path of a cgroup v2 directory".into(),
            ),
        }
    }
}

impl From<CgroupSetting> for String {
    fn from(setting: CgroupSetting) -> String {
        match setting {
            CgroupSetting::Auto => "auto".into(),
            CgroupSetting::Disabled => "disabled".into(),
            CgroupSetting::Path(path) => path.display().to_string(),
        }
    }
}

impl From<&CgroupSetting> for CgroupMode {
    fn from(setting: &CgroupSetting) -> CgroupMode {
        match setting {
            CgroupSetting::Auto => CgroupMode::Auto,
            CgroupSetting::Disabled => CgroupMode::Disabled,
            CgroupSetting::Path(path) => CgroupMode::Path { path: path.clone() },
        }
    }
}

/// Previews: the generated app's own start command, in the sandbox, reached through its
/// bridge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreviewConfig {
    /// Previews one user may run at once (per server process).
    /// Env: `SAMOKODER_PREVIEW__MAX_PER_USER`.
    pub max_per_user: usize,
    /// Seconds without a status request after which a preview is stopped.
    /// Env: `SAMOKODER_PREVIEW__IDLE_TIMEOUT_SECS`.
    pub idle_timeout_secs: u64,
    /// Seconds after which a preview is stopped whatever happens.
    /// Env: `SAMOKODER_PREVIEW__MAX_LIFETIME_SECS`.
    pub max_lifetime_secs: u64,
    /// How long start waits for the app to listen, in seconds, before answering `starting`.
    /// Env: `SAMOKODER_PREVIEW__START_TIMEOUT_SECS`.
    pub start_timeout_secs: u64,
    /// Serve previews to their owners on the preview listener. Env:
    /// `SAMOKODER_PREVIEW__ENABLED`.
    pub enabled: bool,
    /// The preview listener: a second listener that serves only previews, never the API.
    /// Env: `SAMOKODER_PREVIEW__LISTEN`.
    pub listen: SocketAddr,
    /// Where owners' browsers reach a preview: a URL whose host starts with `{id}.`, one
    /// host per project, so every preview is an origin of its own and never the API's (the
    /// API's cookies are not sent to it). Requests for it must arrive at the preview
    /// listener with that `Host` (a wildcard DNS name and a reverse proxy in production).
    /// Unset means `http://{id}.localhost:{port}` with the preview listener's port (browsers
    /// resolve `*.localhost` to this machine). Env: `SAMOKODER_PREVIEW__ORIGIN`.
    pub origin: Option<String>,
}

impl Default for PreviewConfig {
    fn default() -> Self {
        Self {
            max_per_user: 2,
            idle_timeout_secs: 300,
            max_lifetime_secs: 3600,
            start_timeout_secs: 15,
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
            origin: None,
        }
    }
}
