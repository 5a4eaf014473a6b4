//! Who the client is: the peer address, or — only when the peer is a trusted proxy — the
//! right-most address in `X-Forwarded-For` that is not a trusted proxy.
//!
//! Right-most, because each proxy appends the address it received the request from: entries
//! to the left of the last trusted hop were written by the client and prove nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use ipnet::IpNet;

use crate::extract::ClientIp;

/// `X-Forwarded-For`.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// Warn once when the server runs without connection info (see [`client_ip`]).
static WARNED_NO_PEER: AtomicBool = AtomicBool::new(false);

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    pub(crate) fn new(nets: Vec<IpNet>) -> Self {
        Self(Arc::new(nets))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address for a request from `peer` carrying `headers`.
    pub(crate) fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        // Several headers are one list, in order.
        let hops: Vec<&str> = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|hop| !hop.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) if self.contains(ip) => client = ip,
                Some(ip) => return ip,
                // A trusted proxy wrote this entry and it is garbage: the last address we can
                // vouch for is the best answer.
                None => return client,
            }
        }
        // Every hop is a trusted proxy: the request started inside.
        client
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

/// Middleware: inserts [`ClientIp`] into the request.
///
/// The peer address comes from axum's `ConnectInfo`, which exists when the router is served
/// with `into_make_service_with_connect_info::<SocketAddr>()` (as [`crate::Application`]
/// does). Without it the client is unknown: all anonymous requests then share one rate-limit
/// bucket, and a warning says so once.
pub(crate) async fn client_ip(
    State(trusted): State<TrustedProxies>,
    mut req: Request,
    next: Next,
) -> Response {
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => {
            let ip = trusted.client_ip(peer.ip(), req.headers());
            req.extensions_mut().insert(ClientIp(ip));
        }
        None => {
            if !WARNED_NO_PEER.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "no peer address (serve with into_make_service_with_connect_info::<SocketAddr>()); \
                     anonymous clients share one rate limit"
                );
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ignores_the_header_from_untrusted_peers() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(
            trusted.client_ip(ip("203.0.113.9"), &xff(&["198.51.100.1"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn takes_the_right_most_untrusted_hop() {
        let trusted = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.1/32".parse().unwrap(),
        ]);
        // The client claims to be 1.1.1.1; the edge proxy saw 198.51.100.7.
        let headers = xff(&["1.1.1.1, 198.51.100.7", "192.0.2.1"]);
        assert_eq!(
            trusted.client_ip(ip("10.0.0.5"), &headers),
            ip("198.51.100.7")
        );
        // Ports and brackets are tolerated.
        assert_eq!(
            trusted.client_ip(ip("10.0.0.5"), &xff(&["[2001:db8::7]:443"])),
            ip("2001:db8::7")
        );
        // Garbage written by a trusted proxy stops the walk at the last trusted hop.
        assert_eq!(
            trusted.client_ip(ip("10.0.0.5"), &xff(&["nonsense, 192.0.2.1"])),
            ip("192.0.2.1")
        );
        // No header: the proxy itself.
        assert_eq!(
            trusted.client_ip(ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
        // IPv4-mapped peers count as IPv4.
        assert_eq!(
            trusted.client_ip(ip("::ffff:10.0.0.5"), &xff(&["198.51.100.8"])),
            ip("198.51.100.8")
        );
    }
}
