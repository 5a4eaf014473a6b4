//! The sandboxed runner as the configuration asks for it: built once per process, with the
//! isolation self-test's findings logged, and the egress allowlist read from the host's own
//! package-manager configuration unless configured.

use std::sync::OnceLock;

use samokoder_core::runner::{
    BwrapMode, EgressPolicy, IsolationState, RegistryDiscovery, Runner, RunnerConfig, RunnerError,
    discover_registry_hosts,
};

use crate::config::{Config, SandboxMode};

/// The runner's configuration from the server's.
pub fn runner_config(config: &Config) -> RunnerConfig {
    let settings = &config.runner;
    let allowed_hosts = match &settings.egress_hosts {
        Some(hosts) => hosts.clone(),
        None => registry_hosts().hosts.clone(),
    };
    // Installs use the registries the host's npm and pip use, wherever they are allowed.
    let install_env = if allowed_hosts.is_empty() {
        Default::default()
    } else {
        registry_hosts().install_env.clone()
    };
    RunnerConfig {
        bwrap: match config.sandbox_mode() {
            SandboxMode::Auto => BwrapMode::Auto { path: None },
            SandboxMode::Require => BwrapMode::Require { path: None },
        },
        limits: settings.limits(),
        cgroup: (&settings.cgroup).into(),
        sandbox_uid: settings.sandbox_uid,
        socat_path: settings.socat_path.clone(),
        egress: EgressPolicy {
            allowed_hosts,
            allowed_private_networks: settings
                .egress_private_networks
                .iter()
                .map(ToString::to_string)
                .collect(),
        },
        package_cache: Some(config.package_cache_dir()),
        install_env,
        ..RunnerConfig::default()
    }
}

/// The registries the host's npm and pip use, asked once per process (it runs both tools).
fn registry_hosts() -> &'static RegistryDiscovery {
    static FOUND: OnceLock<RegistryDiscovery> = OnceLock::new();
    FOUND.get_or_init(|| {
        let found = discover_registry_hosts();
        for note in &found.notes {
            tracing::warn!(%note, "egress allowlist: a registry could not be read");
        }
        found
    })
}

/// Builds the runner (blocking: it probes the host) and logs what the self-test found.
pub fn build_runner(config: &Config) -> Result<Runner, RunnerError> {
    let runner_config = runner_config(config);
    let hosts = runner_config.egress.allowed_hosts.clone();
    let runner = Runner::new(runner_config)?;
    let report = runner.isolation();
    let missing: Vec<&str> = report
        .features
        .iter()
        .filter(|f| f.state == IsolationState::Unavailable)
        .map(|f| f.name.as_str())
        .collect();
    if missing.is_empty() {
        tracing::info!(sandbox = %report.summary(), egress_hosts = ?hosts, "sandbox self-test: every isolation feature works");
    } else {
        tracing::warn!(
            sandbox = %report.summary(),
            unavailable = ?missing,
            egress_hosts = ?hosts,
            "sandbox self-test: some isolation features do not work here"
        );
    }
    Ok(runner)
}
