//! The default egress allowlist: the registries the host's own npm and pip are set up to use,
//! read from their configuration (never a host name written here).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What [`discover_registry_hosts`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryDiscovery {
    /// Allowlist entries (`host` or `host:port`), without duplicates, in the order found.
    pub hosts: Vec<String>,
    /// What could not be read, and why (a missing npm or pip is not an error).
    pub notes: Vec<String>,
}

/// How long one package manager may take to print its configuration.
const TOOL_TIMEOUT: Duration = Duration::from_secs(15);

/// Asks the host's npm (`npm config list --json`: `registry` and every `@scope:registry`) and
/// pip (its configured `index-url` and `extra-index-url`, or its built-in index and the host
/// it serves files from) which registries they use, and returns their hosts as allowlist
/// entries. Blocking: call it once at start-up.
pub fn discover_registry_hosts() -> RegistryDiscovery {
    let mut found = RegistryDiscovery::default();
    match run_tool("npm", &["config", "list", "--json"]) {
        Ok(out) => match npm_registry_urls(&out) {
            Ok(urls) => urls.iter().for_each(|u| found.add_url(u)),
            Err(why) => found.notes.push(format!("npm: {why}")),
        },
        Err(why) => found.notes.push(format!("npm: {why}")),
    }
    match run_tool("python3", &["-c", PIP_INDEXES]) {
        Ok(out) => out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .for_each(|entry| found.add_url(entry)),
        Err(why) => found.notes.push(format!("pip: {why}")),
    }
    found
}

/// Prints, one per line, the index URLs pip would use and, when that is its built-in index,
/// the host that index serves its files from. pip's own configuration loader reads every
/// file and `PIP_*` variable the way `pip install` does.
const PIP_INDEXES: &str = r#"
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
index = get("index-url")
for url in index[:1] or [PyPI.simple_url]:
    print(url)
for url in get("extra-index-url"):
    print(url)
for link in get("find-links"):
    if link.startswith(("http://", "https://")):
        print(link)
if not index:
    print("https://" + PyPI.file_storage_domain + "/")
"#;

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

/// The registry URLs in `npm config list --json` output.
fn npm_registry_urls(json: &str) -> Result<Vec<String>, String> {
    let config: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("unreadable configuration ({e})"))?;
    let mut urls: Vec<String> = config
        .iter()
        .filter(|(key, _)| *key == "registry" || key.ends_with(":registry"))
        .filter_map(|(_, value)| value.as_str().map(str::to_owned))
        .collect();
    // The default registry first, then scopes in a stable order.
    urls.sort_by_key(|u| config.get("registry").and_then(|r| r.as_str()) != Some(u.as_str()));
    if urls.is_empty() {
        return Err("no registry in its configuration".into());
    }
    Ok(urls)
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
            "registry": "https://registry.example.test/", "cache": "/root/.npm"}"#;
        assert_eq!(
            npm_registry_urls(json).unwrap(),
            [
                "https://registry.example.test/",
                "https://npm.corp.test:8443/"
            ]
        );
        assert!(npm_registry_urls("{}").unwrap_err().contains("no registry"));
        assert!(
            npm_registry_urls("nope")
                .unwrap_err()
                .contains("unreadable")
        );
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
