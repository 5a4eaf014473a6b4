//! The runners the sandbox tests use, and what happens on a machine without bubblewrap.
//!
//! `.ci/run` installs bubblewrap and sets `SAMOKODER_TEST_REQUIRE_BWRAP=1`, so in CI a missing or
//! broken jail fails the tests. On a developer's machine without it, the jail's half of each
//! test is skipped with a loud notice and the unconfined half still runs: the README's test
//! command passes on a fresh clone either way.

use std::io::Write as _;
use std::time::Duration;

use samokoder_core::runner::{BwrapMode, Runner, RunnerConfig, RunnerError, ServiceHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Set (to anything but `0` or empty) where the jail must work.
pub const REQUIRE_VAR: &str = "SAMOKODER_TEST_REQUIRE_BWRAP";

fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The bubblewrap runner with default settings; see [`jail_with`].
pub fn jail(test: &str) -> Option<Runner> {
    jail_with(test, RunnerConfig::default())
}

/// The bubblewrap runner with `config`'s other settings, or `None` after a notice on standard
/// error (written directly: libtest captures `eprintln!`) when bubblewrap does not work here
/// and [`REQUIRE_VAR`] is unset.
pub fn jail_with(test: &str, config: RunnerConfig) -> Option<Runner> {
    match Runner::new(RunnerConfig {
        bwrap: BwrapMode::Require { path: None },
        ..config
    }) {
        Ok(runner) => Some(runner),
        Err(RunnerError::SandboxUnavailable(why)) if !required() => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test} in the jail: {why} (install bubblewrap, or set {REQUIRE_VAR}=1 to make this a failure)"
            );
            None
        }
        Err(error) => {
            panic!("bubblewrap must work on this machine ({REQUIRE_VAR} is set): {error}")
        }
    }
}

/// The runner with the jail disabled: the scrubbed environment and resource limits only.
pub fn unconfined() -> Runner {
    Runner::new(RunnerConfig {
        bwrap: BwrapMode::Disabled,
        ..RunnerConfig::default()
    })
    .expect("the unconfined runner needs nothing from the host")
}

/// The jail (when it works here) and the unconfined runner, each with its name.
pub fn both(test: &str) -> Vec<(&'static str, Runner)> {
    let mut runners: Vec<_> = jail(test).map(|j| ("jail", j)).into_iter().collect();
    runners.push(("unconfined", unconfined()));
    runners
}

/// `GET path` through the service's bridge (HTTP/1.0, so the answer ends with the
/// connection): the status line, headers and body.
pub async fn http_get(service: &ServiceHandle, path: &str) -> String {
    let mut stream = service.connect().await.expect("connect through the bridge");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the service answers in time")
    .unwrap();
    response
}

/// Whether this process runs as root (the limits that must hold "even as root" are tested
/// as root; CI runs as root).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Set (to anything but `0` or empty) where the package registries are reachable: tests that
/// install packages run instead of skipping. `.ci/run` sets it.
pub const REGISTRY_VAR: &str = "SAMOKODER_TEST_REGISTRY";

/// Whether the registry tests run; says so loudly when they do not.
pub fn registry(test: &str) -> bool {
    let set = std::env::var(REGISTRY_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
    if !set {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: it installs packages from the registries (set {REGISTRY_VAR}=1 where they are reachable)"
        );
    }
    set
}

/// A jailed runner whose installs reach the registries the host's npm and pip use, through
/// the egress proxy, with a package cache in `cache`.
pub fn installing_jail(test: &str, cache: &std::path::Path) -> Option<Runner> {
    let found = samokoder_core::runner::discover_registry_hosts();
    assert!(
        !found.hosts.is_empty(),
        "no registry configured on this host: {found:?}"
    );
    jail_with(
        test,
        RunnerConfig {
            egress: samokoder_core::runner::EgressPolicy {
                allowed_hosts: found.hosts,
                allowed_private_networks: Vec::new(),
            },
            install_env: found.install_env,
            package_cache: Some(cache.to_path_buf()),
            ..RunnerConfig::default()
        },
    )
}
