//! The default egress allowlist: the registries the host's own npm and pip are set up to use,
//! read from their configuration (never a host name written here).

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What [`discover_registry_hosts`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryDiscovery {
    /// Allowlist entries (`host` or `host:port`), without duplicates, in the order found.
    pub hosts: Vec<String>,
    /// What installs in the jail need to use the same registries (the jail cannot read the
    /// host's configuration files): `npm_config_registry`, `npm_config_cafile`,
    /// `PIP_INDEX_URL`, `PIP_EXTRA_INDEX_URL`, `PIP_CERT`, for what is configured.
    pub install_env: BTreeMap<String, String>,
    /// What could not be read, and why (a missing npm or pip is not an error).
    pub notes: Vec<String>,
}

/// How long one package manager may take to print its configuration.
const TOOL_TIMEOUT: Duration = Duration::from_secs(15);

/// Asks the host's npm (`npm config list --json`: `registry`, every `@scope:registry`,
/// `cafile`) and pip (its configured `index-url`, `extra-index-url` and `cert`, or its
/// built-in index and the host it serves files from) which registries they use, and returns
/// their hosts as allowlist entries, with the settings installs in the jail need. Blocking:
/// call it once at start-up.
pub fn discover_registry_hosts() -> RegistryDiscovery {
    let mut found = RegistryDiscovery::default();
    match run_tool("npm", &["config", "list", "--json"]) {
        Ok(out) => match npm_settings(&out) {
            Ok(npm) => {
                npm.registries.iter().for_each(|u| found.add_url(u));
                if let Some(default) = npm.registries.first() {
                    found
                        .install_env
                        .insert("npm_config_registry".into(), default.clone());
                }
                if let Some(cafile) = npm.cafile.filter(|f| visible_in_jail(f)) {
                    found.install_env.insert("npm_config_cafile".into(), cafile);
                }
            }
            Err(why) => found.notes.push(format!("npm: {why}")),
        },
        Err(why) => found.notes.push(format!("npm: {why}")),
    }
    match run_tool("python3", &["-c", PIP_SETTINGS]) {
        Ok(out) => match serde_json::from_str::<PipSettings>(&out) {
            Ok(pip) => {
                for url in pip.index.iter().chain(&pip.extra).chain(&pip.files) {
                    found.add_url(url);
                }
                if pip.configured {
                    if let Some(index) = pip.index.first() {
                        found
                            .install_env
                            .insert("PIP_INDEX_URL".into(), index.clone());
                    }
                    if !pip.extra.is_empty() {
                        found
                            .install_env
                            .insert("PIP_EXTRA_INDEX_URL".into(), pip.extra.join(" "));
                    }
                }
                if let Some(cert) = pip.cert.filter(|f| visible_in_jail(f)) {
                    found.install_env.insert("PIP_CERT".into(), cert);
                }
            }
            Err(e) => found.notes.push(format!("pip: unreadable settings ({e})")),
        },
        Err(why) => found.notes.push(format!("pip: {why}")),
    }
    found
}

/// Whether the jail sees this host file at the same path (it binds parts of `/etc` and `/usr`).
fn visible_in_jail(path: &str) -> bool {
    path.starts_with("/etc/ssl/") || path.starts_with("/usr/")
}

/// What pip would use, as JSON: its index (the configured one, or its built-in one), the
/// extra indexes and `http(s)` find-links, the host its built-in index serves files from,
/// whether an index was configured, and its CA bundle setting. pip's own configuration
/// loader reads every file and `PIP_*` variable the way `pip install` does.
const PIP_SETTINGS: &str = r#"
import json
from pip._internal.configuration import Configuration
from pip._internal.models.index import PyPI
c = Configuration(isolated=False)
c.load()
values = dict(c.items())
def get(key):
    out = []
    for section in (":env:", "install", "global"):
        v = values.get(section + "." + key)
        if v:
            out.extend(v.split())
    return out
index = get("index-url")[:1]
print(json.dumps({
    "index": index or [PyPI.simple_url],
    "extra": get("extra-index-url"),
    "files": [l for l in get("find-links") if l.startswith(("http://", "https://"))]
             + ([] if index else ["https://" + PyPI.file_storage_domain + "/"]),
    "configured": bool(index),
    "cert": (get("cert") or [None])[0],
}))
"#;

#[derive(Debug, serde::Deserialize)]
struct PipSettings {
    index: Vec<String>,
    extra: Vec<String>,
    files: Vec<String>,
    configured: bool,
    cert: Option<String>,
}

/// npm's registries (the default first) and CA file.
#[derive(Debug, PartialEq, Eq)]
struct NpmSettings {
    registries: Vec<String>,
    cafile: Option<String>,
}

impl RegistryDiscovery {
    fn add_url(&mut self, url: &str) {
        match registry_entry(url) {
            Some(entry) if !self.hosts.contains(&entry) => self.hosts.push(entry),
            Some(_) => {}
            None => self
                .notes
                .push(format!("not an http(s) URL, left out: {url:?}")),
        }
    }
}

/// `host` for the default port of the URL's scheme (the allowlist's default ports), else
/// `host:port`.
fn registry_entry(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = match parsed.host()? {
        url::Host::Ipv6(v6) => format!("[{v6}]"),
        other => other.to_string(),
    };
    Some(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// The registries and CA file in `npm config list --json` output.
fn npm_settings(json: &str) -> Result<NpmSettings, String> {
    let config: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("unreadable configuration ({e})"))?;
    let mut registries: Vec<String> = config
        .iter()
        .filter(|(key, _)| *key == "registry" || key.ends_with(":registry"))
        .filter_map(|(_, value)| value.as_str().map(str::to_owned))
        .collect();
    // The default registry first, then scopes in a stable order.
    registries.sort_by_key(|u| config.get("registry").and_then(|r| r.as_str()) != Some(u.as_str()));
    if registries.is_empty() {
        return Err("no registry in its configuration".into());
    }
    let cafile = config
        .get("cafile")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Ok(NpmSettings { registries, cafile })
}

/// Runs a tool in the server's own environment (its configuration comes from `HOME` and its
/// own variables, as when an administrator runs it) with a time limit; its standard output.
fn run_tool(program: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("not run ({e})"))?;
    let mut stdout = child.stdout.take().ok_or("no output")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < TOOL_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("took longer than {} s", TOOL_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("failed ({status})"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_default_and_scoped_registries() {
        let json = r#"{"json": true, "@corp:registry": "https://npm.corp.test:8443/",
            "registry": "https://registry.example.test/", "cache": "/root/.npm",
            "cafile": "/etc/ssl/certs/ca-certificates.crt"}"#;
        let npm = npm_settings(json).unwrap();
        assert_eq!(
            npm.registries,
            [
                "https://registry.example.test/",
                "https://npm.corp.test:8443/"
            ]
        );
        assert_eq!(
            npm.cafile.as_deref(),
            Some("/etc/ssl/certs/ca-certificates.crt")
        );
        assert!(npm_settings("{}").unwrap_err().contains("no registry"));
        assert!(npm_settings("nope").unwrap_err().contains("unreadable"));
        assert!(visible_in_jail("/etc/ssl/certs/ca-certificates.crt"));
        assert!(!visible_in_jail("/root/ca.pem"));
    }

    #[test]
    fn the_hosts_own_npm_and_pip_are_read() {
        // On this machine (and CI's) npm and pip are set up: their registries are found, and
        // npm's default registry is passed on to installs.
        let found = discover_registry_hosts();
        if found.notes.iter().any(|n| n.contains("not run")) {
            return;
        }
        assert!(!found.hosts.is_empty(), "{found:?}");
        if let Some(registry) = found.install_env.get("npm_config_registry") {
            let host = registry_entry(registry).unwrap();
            assert!(found.hosts.contains(&host), "{found:?}");
        }
    }

    #[test]
    fn urls_become_allowlist_entries() {
        assert_eq!(
            registry_entry("https://registry.example.test/"),
            Some("registry.example.test".into())
        );
        assert_eq!(
            registry_entry("http://mirror.test:4873/simple"),
            Some("mirror.test:4873".into())
        );
        assert_eq!(
            registry_entry("https://[fd00::1]:8443/"),
            Some("[fd00::1]:8443".into())
        );
        assert_eq!(registry_entry("file:///opt/wheels"), None);
        assert_eq!(registry_entry("/opt/wheels"), None);
        let mut d = RegistryDiscovery::default();
        d.add_url("https://a.test/");
        d.add_url("https://a.test/other");
        d.add_url("/local");
        assert_eq!(d.hosts, ["a.test"]);
        assert_eq!(d.notes.len(), 1);
    }

    #[test]
    fn a_missing_tool_is_a_note_not_an_error() {
        let err = run_tool("/nonexistent/npm", &["config"]).unwrap_err();
        assert!(err.contains("not run"), "{err}");
        assert!(run_tool("false", &[]).unwrap_err().contains("failed"));
        assert_eq!(run_tool("echo", &["hi"]).unwrap(), "hi\n");
    }
}
