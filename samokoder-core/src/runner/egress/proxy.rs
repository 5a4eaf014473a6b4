//! The host side of the jail's egress: an HTTP proxy (`CONNECT` for HTTPS, absolute-form
//! requests for plain HTTP) that lets a jailed command reach only the allowlisted hosts.
//!
//! One proxy serves one jail, on a Unix socket bind-mounted into it (a relay inside the jail
//! connects its loopback port to that socket), so every decision can be told to that command:
//! refusals go to its output and its outcome, and every allowed connection is counted
//! ([`EgressStats`] and the `samokoder_sandbox_egress_total` metric).
//!
//! The proxy resolves names itself and checks every address it would connect to
//! ([`EgressRules::address_allowed`]) after resolution: a name on the allowlist that resolves
//! to a loopback, private, link-local or metadata address is refused, so DNS cannot be used to
//! reach the host's services.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::rules::EgressRules;
use crate::net::normalize_host;

/// How long the proxy waits for a name to resolve, and for each connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The metric counting the proxy's decisions, labelled `outcome` (`allowed` or `refused`) and
/// `reason` (empty when allowed).
pub const EGRESS_METRIC: &str = "samokoder_sandbox_egress_total";

/// Connections the egress proxies of one runner allowed and refused, since it was built.
#[derive(Debug, Default)]
pub struct EgressStats {
    allowed: AtomicU64,
    refused: AtomicU64,
}

impl EgressStats {
    /// Connections (tunnels and plain requests) let through.
    pub fn allowed(&self) -> u64 {
        self.allowed.load(Ordering::Relaxed)
    }

    /// Requests refused.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Why the proxy refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EgressRefusalReason {
    /// The host and port are not on the allowlist.
    NotAllowed,
    /// The name did not resolve.
    Unresolved {
        /// The resolver's error.
        error: String,
    },
    /// Every address the name resolved to is non-public.
    ForbiddenAddress {
        /// The first such address.
        address: String,
        /// What kind it is (loopback, private, ...).
        class: String,
    },
    /// Not a request a proxy can forward (no host, an `https://` URL without `CONNECT`, ...).
    BadRequest {
        /// What is wrong.
        problem: String,
    },
}

impl EgressRefusalReason {
    /// The metric label.
    fn label(&self) -> &'static str {
        match self {
            Self::NotAllowed => "not_allowed",
            Self::Unresolved { .. } => "unresolved",
            Self::ForbiddenAddress { .. } => "forbidden_address",
            Self::BadRequest { .. } => "bad_request",
        }
    }
}

impl std::fmt::Display for EgressRefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAllowed => f.write_str("not on the sandbox's egress allowlist"),
            Self::Unresolved { error } => write!(f, "the name does not resolve ({error})"),
            Self::ForbiddenAddress { address, class } => {
                write!(
                    f,
                    "it resolves to {address}, {class}, which the sandbox never connects to"
                )
            }
            Self::BadRequest { problem } => f.write_str(problem),
        }
    }
}

/// One request the proxy refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRefusal {
    /// `host:port` as the command asked for it.
    pub target: String,
    /// Why.
    pub reason: EgressRefusalReason,
}

impl EgressRefusal {
    /// The line written into the command's output.
    pub fn line(&self) -> String {
        format!(
            "[sandbox] egress refused: {}: {}\n",
            self.target, self.reason
        )
    }
}

/// What one jail's proxy tells its command's runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EgressEvent {
    Allowed,
    Refused(EgressRefusal),
}

/// What a proxy needs: the rules, the runner's counters, where to report.
#[derive(Clone)]
pub(crate) struct ProxyContext {
    pub(crate) rules: Arc<EgressRules>,
    pub(crate) stats: Arc<EgressStats>,
    pub(crate) events: mpsc::UnboundedSender<EgressEvent>,
}

/// A running proxy. Dropping it stops it and every connection it holds open.
#[derive(Debug)]
pub(crate) struct ProxyHandle {
    stop: CancellationToken,
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A listener the proxy accepts on: the jail's Unix socket, or a loopback port for a command
/// that runs without the jail.
pub(crate) enum ProxyListener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

/// Serves `listener` until the handle is dropped.
pub(crate) fn spawn(listener: ProxyListener, ctx: ProxyContext) -> ProxyHandle {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = token.cancelled() => return,
                accepted = accept(&listener) => accepted,
            };
            match accepted {
                Ok(io) => {
                    let ctx = ctx.clone();
                    let token = token.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            () = token.cancelled() => {}
                            () = serve(io, ctx, token.clone()) => {}
                        }
                    });
                }
                // Out of descriptors or similar: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    ProxyHandle { stop }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

async fn accept(listener: &ProxyListener) -> std::io::Result<Box<dyn Io>> {
    Ok(match listener {
        ProxyListener::Unix(l) => Box::new(l.accept().await?.0),
        ProxyListener::Tcp(l) => Box::new(l.accept().await?.0),
    })
}

async fn serve(io: Box<dyn Io>, ctx: ProxyContext, stop: CancellationToken) {
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        let stop = stop.clone();
        async move { Ok::<_, Infallible>(handle(req, &ctx, stop).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

fn text(status: StatusCode, message: String) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(message))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn empty(status: StatusCode) -> Response<ProxyBody> {
    text(status, String::new())
}

async fn handle(
    req: Request<Incoming>,
    ctx: &ProxyContext,
    stop: CancellationToken,
) -> Response<ProxyBody> {
    if req.method() == Method::CONNECT {
        connect(req, ctx, stop).await
    } else {
        forward(req, ctx).await
    }
}

/// Host and port of a request: the authority of `CONNECT host:port`, or of an absolute
/// `http://` URL.
fn target(req: &Request<Incoming>) -> Result<(String, u16), (String, EgressRefusalReason)> {
    let uri = req.uri();
    let shown = uri
        .authority()
        .map_or_else(|| uri.to_string(), ToString::to_string);
    let bad = |problem: &str| {
        (
            shown.clone(),
            EgressRefusalReason::BadRequest {
                problem: problem.to_owned(),
            },
        )
    };
    let Some(authority) = uri.authority() else {
        return Err(bad(
            "this is a proxy: send absolute http:// URLs, or CONNECT for https",
        ));
    };
    let port = if req.method() == Method::CONNECT {
        authority
            .port_u16()
            .ok_or_else(|| bad("CONNECT needs host:port"))?
    } else {
        match uri.scheme_str() {
            Some("http") => authority.port_u16().unwrap_or(80),
            _ => {
                return Err(bad(
                    "only http:// URLs are forwarded; use CONNECT for https",
                ));
            }
        }
    };
    Ok((normalize_host(authority.host()), port))
}

/// Allowlist, resolution and the address check: the addresses the proxy may connect to.
async fn admit(
    rules: &EgressRules,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, EgressRefusalReason> {
    if !rules.host_allowed(host, port) {
        return Err(EgressRefusalReason::NotAllowed);
    }
    let resolved = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| EgressRefusalReason::Unresolved {
            error: "timed out".into(),
        })?
        .map_err(|e| EgressRefusalReason::Unresolved {
            error: e.to_string(),
        })?
        .collect::<Vec<_>>();
    let mut first_forbidden = None;
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|addr| match rules.address_allowed(addr.ip()) {
            Ok(()) => true,
            Err(class) => {
                first_forbidden.get_or_insert((addr.ip(), class));
                false
            }
        })
        .collect();
    match (allowed.is_empty(), first_forbidden) {
        (false, _) => Ok(allowed),
        (true, Some((ip, class))) => Err(EgressRefusalReason::ForbiddenAddress {
            address: ip.to_string(),
            class: class.to_owned(),
        }),
        (true, None) => Err(EgressRefusalReason::Unresolved {
            error: "no addresses".into(),
        }),
    }
}

/// Admits the request's target or answers `403` with the reason, reporting either way.
async fn decide(
    req: &Request<Incoming>,
    ctx: &ProxyContext,
) -> Result<(String, Vec<SocketAddr>), Response<ProxyBody>> {
    let decided = match target(req) {
        Ok((host, port)) => match admit(&ctx.rules, &host, port).await {
            Ok(addrs) => Ok((format!("{host}:{port}"), addrs)),
            Err(reason) => Err((format!("{host}:{port}"), reason)),
        },
        Err(refused) => Err(refused),
    };
    match decided {
        Ok(admitted) => {
            ctx.stats.allowed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(EGRESS_METRIC, "outcome" => "allowed", "reason" => "").increment(1);
            let _ = ctx.events.send(EgressEvent::Allowed);
            Ok(admitted)
        }
        Err((target, reason)) => {
            ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(EGRESS_METRIC, "outcome" => "refused", "reason" => reason.label())
                .increment(1);
            let refusal = EgressRefusal { target, reason };
            let body = refusal.line();
            let _ = ctx.events.send(EgressEvent::Refused(refusal));
            Err(text(StatusCode::FORBIDDEN, body))
        }
    }
}

/// Connects to the first address that answers.
async fn dial(target: &str, addrs: &[SocketAddr]) -> Result<TcpStream, Response<ProxyBody>> {
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
    }
    Err(text(
        StatusCode::BAD_GATEWAY,
        format!("[sandbox] egress: could not connect to {target}: {last}\n"),
    ))
}

async fn connect(
    req: Request<Incoming>,
    ctx: &ProxyContext,
    stop: CancellationToken,
) -> Response<ProxyBody> {
    let (target, addrs) = match decide(&req, ctx).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let mut upstream = match dial(&target, &addrs).await {
        Ok(stream) => stream,
        Err(failed) => return failed,
    };
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            upgraded = hyper::upgrade::on(req) => {
                if let Ok(upgraded) = upgraded {
                    let mut client = TokioIo::new(upgraded);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            }
        }
    });
    empty(StatusCode::OK)
}

/// Headers that belong to one hop, never forwarded (RFC 9110 section 7.6.1), and the proxy's
/// own.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

async fn forward(req: Request<Incoming>, ctx: &ProxyContext) -> Response<ProxyBody> {
    let (target, addrs) = match decide(&req, ctx).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let stream = match dial(&target, &addrs).await {
        Ok(stream) => stream,
        Err(failed) => return failed,
    };
    let bad_gateway = |e: hyper::Error| {
        text(
            StatusCode::BAD_GATEWAY,
            format!("[sandbox] egress: {target}: {e}\n"),
        )
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(e) => return bad_gateway(e),
        };
    tokio::spawn(connection);
    let (mut parts, body) = req.into_parts();
    let host_header = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), ToString::to_string)
        .parse()
        .unwrap_or_else(|_| hyper::Uri::from_static("/"));
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(host) = HeaderValue::from_str(&host_header) {
        parts.headers.insert(header::HOST, host);
    }
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => bad_gateway(e),
    }
}
