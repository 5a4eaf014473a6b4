//! Host allowlists: the `host:port`s a deployment lets something connect to — the sandbox's
//! egress proxy ([`crate::runner::EgressPolicy`]) and users' own LLM base URLs — matched on
//! host *and* port.
//!
//! ```
//! use samokoder_core::net::HostAllowlist;
//!
//! let list = HostAllowlist::parse(&["api.example.test", "*.gateway.test:8443", "127.0.0.1:*"]).unwrap();
//! assert!(list.allows("api.example.test", 443));
//! assert!(!list.allows("api.example.test", 5432), "443 and 80 only, without a port");
//! assert!(list.allows("eu.gateway.test", 8443));
//! assert!(!list.allows("gateway.test", 8443), "a wildcard names subdomains only");
//! assert!(list.allows("127.0.0.1", 5432), "`:*` is any port, said explicitly");
//! ```

use std::net::IpAddr;

/// An invalid allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowlist entry {entry:?}: {reason}")]
pub struct EntryError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Ports an allowlist entry without one allows.
pub const DEFAULT_PORTS: [u16; 2] = [443, 80];

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// Matches names ending in `.{0}`.
    Subdomains(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRule {
    /// 443 and 80.
    Default,
    One(u16),
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRule {
    pattern: HostPattern,
    port: PortRule,
}

/// Entries `host`, `host:port`, `host:*`, `*.domain[:port]`, `[v6]`, `[v6]:port`. Without a
/// port an entry allows 443 and 80 only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostAllowlist {
    rules: Vec<HostRule>,
}

impl HostAllowlist {
    /// Checks and compiles `entries`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, EntryError> {
        Ok(Self {
            rules: entries
                .iter()
                .map(|e| parse_host_rule(e.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether `host:port` is on the list (the name as given; addresses it resolves to are
    /// the caller's to check).
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = normalize_host(host);
        self.rules.iter().any(|rule| {
            let name_matches = match &rule.pattern {
                HostPattern::Exact(name) => *name == host,
                HostPattern::Subdomains(domain) => host
                    .strip_suffix(domain.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            };
            let port_matches = match rule.port {
                PortRule::One(p) => p == port,
                PortRule::Default => DEFAULT_PORTS.contains(&port),
                PortRule::Any => true,
            };
            name_matches && port_matches
        })
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn parse_host_rule(entry: &str) -> Result<HostRule, EntryError> {
    let bad = |reason| EntryError {
        entry: entry.to_owned(),
        reason,
    };
    let trimmed = entry.trim();
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, port) = if let Some(rest) = trimmed.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("unclosed '[' around an IPv6 address"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad("unexpected text after ']'")),
        }
    } else {
        match trimmed.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return Err(bad("write IPv6 addresses in brackets: [::1]:443")),
            None => (trimmed, None),
        }
    };
    let port = match port {
        None => PortRule::Default,
        Some("*") => PortRule::Any,
        Some(p) => PortRule::One(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535, or *"))?,
        ),
    };
    let host = normalize_host(host);
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let pattern = match host.strip_prefix("*.") {
        Some(domain) if valid_name(domain) => HostPattern::Subdomains(domain.to_owned()),
        Some(_) => return Err(bad("a wildcard must be followed by a domain name")),
        None if host.parse::<IpAddr>().is_ok() || valid_name(&host) => HostPattern::Exact(host),
        None => return Err(bad("not a host name or an IP address")),
    };
    Ok(HostRule { pattern, port })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Lower case, no brackets, no trailing dot: the form entries and hosts are compared in.
pub fn normalize_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> HostAllowlist {
        HostAllowlist::parse(entries).unwrap()
    }

    #[test]
    fn hosts_match_exactly_and_by_default_on_443_and_80_only() {
        let r = list(&["Registry.Example.Test."]);
        assert!(r.allows("registry.example.test", 443));
        assert!(r.allows("REGISTRY.example.test.", 80));
        assert!(!r.allows("registry.example.test", 8080));
        assert!(!r.allows("sub.registry.example.test", 443));
        assert!(!r.allows("registry.example.test.evil", 443));
        assert!(!r.allows("xregistry.example.test", 443));
        assert!(!HostAllowlist::default().allows("registry.example.test", 443));
        assert!(HostAllowlist::default().is_empty());
        assert!(!r.is_empty());
    }

    #[test]
    fn explicit_ports_any_ports_and_wildcards() {
        let r = list(&[
            "mirror.test:4873",
            "*.cdn.test",
            "[::1]:8443",
            "10.0.0.5",
            "my-registry.example.test",
            "a_b.test",
            "dev.test:*",
        ]);
        assert!(r.allows("my-registry.example.test", 443));
        assert!(r.allows("a_b.test", 80));
        assert!(
            !r.allows(".cdn.test", 443),
            "an empty label is no subdomain"
        );
        assert!(
            !r.allows("evilcdn.test", 443),
            "a wildcard matches whole labels"
        );
        assert!(r.allows("mirror.test", 4873));
        assert!(!r.allows("mirror.test", 443));
        assert!(r.allows("a.cdn.test", 443));
        assert!(r.allows("a.b.cdn.test", 80));
        assert!(
            !r.allows("cdn.test", 443),
            "a wildcard names subdomains only"
        );
        assert!(!r.allows("xcdn.test", 443));
        assert!(r.allows("[::1]", 8443));
        assert!(r.allows("::1", 8443));
        assert!(r.allows("10.0.0.5", 443));
        assert!(r.allows("dev.test", 5432) && r.allows("dev.test", 1));
        assert!(!r.allows("x.dev.test", 5432));
        let bracketed = list(&["[fd00::1]"]);
        assert!(
            bracketed.allows("[fd00::1]", 443),
            "brackets without a port"
        );
        assert!(!bracketed.allows("[fd00::1]", 8443));
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        for (entry, reason) in [
            ("", "no host"),
            ("host:0", "port"),
            ("host:99999", "port"),
            ("host:x", "port"),
            ("::1", "brackets"),
            ("[::1", "unclosed"),
            ("[::1]x", "after"),
            ("*.a b", "wildcard"),
            ("*.", "not a host"),
            ("a b", "not a host"),
            ("a..b", "not a host"),
        ] {
            let err = HostAllowlist::parse(&[entry]).unwrap_err();
            assert!(err.reason.contains(reason), "{entry:?}: {err}");
            assert_eq!(err.entry, entry);
        }
    }
}
