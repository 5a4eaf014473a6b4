//! The egress allowlist and the address filter, compiled once from [`EgressPolicy`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::net::{DEFAULT_PORTS, EntryError, HostAllowlist};

/// Where jailed commands with [`Network::Egress`](crate::runner::Network::Egress) may connect,
/// through the runner's proxy. Nothing is allowed by default; the reference server fills
/// [`EgressPolicy::allowed_hosts`] with the registries the host's own npm and pip use
/// ([`discover_registry_hosts`](super::discover_registry_hosts)).
///
/// ```
/// use samokoder_core::runner::EgressPolicy;
///
/// let policy = EgressPolicy {
///     allowed_hosts: vec!["registry.example.test".into(), "*.mirror.example.test:8443".into()],
///     allowed_private_networks: vec![],
/// };
/// let rules = policy.compile().unwrap();
/// assert!(rules.host_allowed("registry.example.test", 443));
/// assert!(!rules.host_allowed("registry.example.test", 22));
/// assert!(rules.host_allowed("eu.mirror.example.test", 8443));
/// assert!(!rules.host_allowed("evil.test", 443));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressPolicy {
    /// `host`, `host:port`, `host:*`, `*.domain` or `*.domain:port` (a wildcard matches
    /// subdomains, not the domain itself; see [`HostAllowlist`]). Without a port an entry
    /// allows 443 and 80 only.
    pub allowed_hosts: Vec<String>,
    /// Networks (CIDR, e.g. `10.1.2.0/24`) the proxy may connect to although they are
    /// loopback, private or link-local: an internal registry mirror. Empty by default, so a
    /// name on the allowlist that resolves to such an address is refused.
    pub allowed_private_networks: Vec<String>,
}

/// An invalid [`EgressPolicy`] entry.
pub type EgressPolicyError = EntryError;

/// Ports an allowlist entry without one allows.
pub const DEFAULT_EGRESS_PORTS: [u16; 2] = DEFAULT_PORTS;

/// A compiled [`EgressPolicy`]: what the proxy checks every request against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressRules {
    hosts: HostAllowlist,
    private_networks: Vec<IpNet>,
}

impl EgressPolicy {
    /// Checks and compiles the policy.
    pub fn compile(&self) -> Result<EgressRules, EgressPolicyError> {
        let hosts = HostAllowlist::parse(&self.allowed_hosts)?;
        let private_networks = self
            .allowed_private_networks
            .iter()
            .map(|entry| {
                entry
                    .trim()
                    .parse::<IpNet>()
                    .or_else(|_| entry.trim().parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| EntryError {
                        entry: entry.clone(),
                        reason: "not a network in CIDR notation",
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(EgressRules {
            hosts,
            private_networks,
        })
    }
}

impl EgressRules {
    /// Whether `host:port` is on the allowlist (the name as the client sent it; addresses
    /// are checked after resolution by [`EgressRules::address_allowed`]).
    pub fn host_allowed(&self, host: &str, port: u16) -> bool {
        self.hosts.allows(host, port)
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// `Ok` when the proxy may connect to `ip`; otherwise what kind of address it is
    /// (loopback, private, link-local, ...). Networks in
    /// [`EgressPolicy::allowed_private_networks`] pass.
    pub fn address_allowed(&self, ip: IpAddr) -> Result<(), &'static str> {
        let ip = canonical(ip);
        if self.private_networks.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match forbidden_class(ip) {
            Some(class) => Err(class),
            None => Ok(()),
        }
    }
}

/// An IPv4 address carried in an IPv6 one (mapped, NAT64, 6to4) is judged as IPv4: otherwise
/// `::ffff:127.0.0.1` would pass as a public IPv6 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = |a: u16, b: u16| Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
    // NAT64 well-known prefix 64:ff9b::/96.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low(s[6], s[7]));
    }
    // 6to4 2002:AABB:CCDD::/48.
    if s[0] == 0x2002 {
        return Some(low(s[1], s[2]));
    }
    None
}

/// What kind of non-public address `ip` is, if it is one.
fn forbidden_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                // 169.254.169.254 is where clouds serve instance metadata and credentials.
                Some("a link-local address (cloud metadata lives there)")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (carrier-grade NAT) address")
            } else if a == 0 || a >= 240 {
                // "This network" 0/8 (0.0.0.0 included) and 240/4 (broadcast included).
                Some("a reserved address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else if a == 192 && b == 0 && v4.octets()[2] == 0 {
                Some("an IETF protocol address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("a reserved address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if first & 0xff00 == 0xff00 {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(hosts: &[&str], private: &[&str]) -> EgressRules {
        EgressPolicy {
            allowed_hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
            allowed_private_networks: private.iter().map(|s| (*s).to_owned()).collect(),
        }
        .compile()
        .unwrap()
    }

    #[test]
    fn hosts_are_checked_by_the_shared_allowlist() {
        let r = rules(&["registry.example.test", "mirror.test:4873"], &[]);
        assert!(r.host_allowed("registry.example.test", 443));
        assert!(!r.host_allowed("registry.example.test", 22));
        assert!(r.host_allowed("mirror.test", 4873));
        assert!(!r.is_empty() && EgressRules::default().is_empty());
        let err = EgressPolicy {
            allowed_hosts: vec!["a b".into()],
            ..EgressPolicy::default()
        }
        .compile()
        .unwrap_err();
        assert!(err.reason.contains("not a host"), "{err}");
        let err = EgressPolicy {
            allowed_private_networks: vec!["10.0.0.0/33".into()],
            ..EgressPolicy::default()
        }
        .compile()
        .unwrap_err();
        assert!(err.to_string().contains("CIDR"), "{err}");
    }

    #[test]
    fn non_public_addresses_are_refused_whatever_their_spelling() {
        let r = EgressRules::default();
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1",
            "192.0.0.170",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(r.address_allowed(ip).is_err(), "{ip} must be refused");
        }
        for ip in [
            "93.184.215.14",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.2.1",
            "2606:4700::1",
            // NAT64 of a public address is as public as the address.
            "64:ff9b::5db8:d70e",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(r.address_allowed(ip), Ok(()), "{ip}");
        }
        assert_eq!(
            r.address_allowed("127.0.0.1".parse().unwrap()),
            Err("a loopback address")
        );
        assert!(
            r.address_allowed("169.254.169.254".parse().unwrap())
                .unwrap_err()
                .contains("metadata")
        );
    }

    #[test]
    fn configured_private_networks_pass() {
        let r = rules(&[], &["10.1.0.0/16", "127.0.0.1"]);
        assert_eq!(r.address_allowed("10.1.2.3".parse().unwrap()), Ok(()));
        assert_eq!(r.address_allowed("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(
            r.address_allowed("::ffff:127.0.0.1".parse().unwrap()),
            Ok(())
        );
        assert!(r.address_allowed("10.2.0.1".parse().unwrap()).is_err());
        assert!(r.address_allowed("127.0.0.2".parse().unwrap()).is_err());
    }
}
