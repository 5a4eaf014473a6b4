//! Egress for jailed commands that need the network (package installs): only through the
//! runner's proxy, only to allowlisted hosts on allowed ports, never to a non-public address.

mod proxy;
mod registries;
mod rules;

pub use proxy::{EGRESS_METRIC, EgressRefusal, EgressRefusalReason, EgressStats};
pub(crate) use proxy::{EgressEvent, ProxyContext, ProxyHandle, ProxyListener, spawn};
pub use registries::{RegistryDiscovery, discover_registry_hosts};
pub use rules::{DEFAULT_EGRESS_PORTS, EgressPolicy, EgressPolicyError, EgressRules};
