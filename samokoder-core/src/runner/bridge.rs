//! The two bridges across a jail's network namespace, both Unix sockets in the jail's bridge
//! directory ([`JAIL_BRIDGE_DIR`](super::sandbox::JAIL_BRIDGE_DIR)), with `socat` as the relay
//! inside the jail (as Anthropic's sandbox-runtime does on Linux):
//!
//! - **egress**: the jail's `127.0.0.1:3128` relays to the host's proxy socket
//!   ([`super::egress`]); the command's proxy variables point there.
//! - **ingress** (previews): the jail's `app.sock` relays to the preview's port inside the
//!   jail; only the runner's process can open the socket's host path.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::sandbox::JAIL_BRIDGE_DIR;

/// The port the egress relay listens on inside the jail (its own loopback, not the host's).
pub const EGRESS_PROXY_PORT: u16 = 3128;
/// The port a preview is given (`PORT`) inside its jail.
pub const PREVIEW_PORT: u16 = 3000;
/// The proxy's socket in the bridge directory.
pub(crate) const EGRESS_SOCKET: &str = "egress.sock";
/// A preview's socket in the bridge directory.
pub(crate) const PREVIEW_SOCKET: &str = "app.sock";

/// `sh -c` script starting the egress relay and waiting until it listens (so the command's
/// first connection does not race it), then running the command. `$0` is socat.
const EGRESS_SCRIPT: &str = r#""$0" TCP-LISTEN:3128,bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:/run/bridge/egress.sock 2>/dev/null &
n=0
until grep -q '0100007F:0C38 00000000:0000 0A' /proc/net/tcp; do
  n=$((n+1))
  if [ "$n" -gt 500 ]; then echo '[sandbox] the egress relay did not start' >&2; exit 125; fi
  sleep 0.01
done
exec "$@""#;

/// `sh -c` script starting the ingress relay, then the service. `$0` is socat.
const INGRESS_SCRIPT: &str = r#""$0" UNIX-LISTEN:/run/bridge/app.sock,fork,mode=600,unlink-early TCP:127.0.0.1:3000 2>/dev/null &
exec "$@""#;

/// The argv prefix that runs a command behind the egress relay.
pub(crate) fn egress_wrapper(socat: &Path) -> Vec<String> {
    debug_assert!(EGRESS_SCRIPT.contains(&format!("{JAIL_BRIDGE_DIR}/{EGRESS_SOCKET}")));
    debug_assert!(EGRESS_SCRIPT.contains(&format!(":{EGRESS_PROXY_PORT:04X} ")));
    wrapper(EGRESS_SCRIPT, socat)
}

/// The argv prefix that runs a service behind the ingress relay.
pub(crate) fn ingress_wrapper(socat: &Path) -> Vec<String> {
    debug_assert!(INGRESS_SCRIPT.contains(&format!("{JAIL_BRIDGE_DIR}/{PREVIEW_SOCKET}")));
    debug_assert!(INGRESS_SCRIPT.contains(&format!(":{PREVIEW_PORT} ")));
    wrapper(INGRESS_SCRIPT, socat)
}

fn wrapper(script: &str, socat: &Path) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        script.into(),
        socat.to_string_lossy().into_owned(),
    ]
}

/// The variables that send a command's HTTP clients (npm, pip, curl, ...) through the proxy
/// at `url`.
pub(crate) fn proxy_env(url: &str) -> BTreeMap<String, String> {
    [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), url.to_owned()))
    .chain(
        ["NO_PROXY", "no_proxy"]
            .into_iter()
            .map(|name| (name.to_owned(), String::new())),
    )
    .collect()
}

/// Where the runner reaches a running service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceUpstream {
    /// The jail's ingress socket (host path).
    Socket(PathBuf),
    /// A loopback port of the host: a service run without the jail.
    Loopback(SocketAddr),
}

/// How long a connection through the bridge must stay open (or answer) to count as the
/// service listening.
const LISTEN_PROBE: Duration = Duration::from_millis(150);

impl ServiceUpstream {
    /// Opens a connection to the service.
    pub async fn connect(&self) -> io::Result<BridgeStream> {
        Ok(match self {
            Self::Socket(path) => BridgeStream::Unix(UnixStream::connect(path).await?),
            Self::Loopback(addr) => BridgeStream::Tcp(TcpStream::connect(addr).await?),
        })
    }

    /// Whether the service accepts connections now. Through the bridge a connection always
    /// opens (the relay takes it); when nothing listens inside, the relay closes it at once,
    /// so a connection that stays open (or answers) means the service listens. Nothing is
    /// sent: the service sees a connection open and close.
    pub async fn is_listening(&self) -> bool {
        let Ok(mut stream) = self.connect().await else {
            return false;
        };
        if matches!(self, Self::Loopback(_)) {
            return true;
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout(LISTEN_PROBE, stream.read(&mut byte)).await {
            Err(_) => true,
            Ok(Ok(n)) => n > 0,
            Ok(Err(_)) => false,
        }
    }
}

/// A connection to a service: through its jail's bridge, or to a loopback port.
#[derive(Debug)]
pub enum BridgeStream {
    /// Through the ingress socket.
    Unix(UnixStream),
    /// To a host loopback port.
    Tcp(TcpStream),
}

impl AsyncRead for BridgeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BridgeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relays_use_the_documented_paths_and_ports() {
        let egress = egress_wrapper(Path::new("/usr/bin/socat"));
        assert_eq!(egress[0], "/bin/sh");
        assert_eq!(egress[3], "/usr/bin/socat");
        assert!(egress[2].contains("UNIX-CONNECT:/run/bridge/egress.sock"));
        // /proc/net/tcp spells 127.0.0.1:3128 as little-endian hex address and port.
        assert!(egress[2].contains("0100007F:0C38"));
        assert!(egress[2].ends_with(r#"exec "$@""#));
        let ingress = ingress_wrapper(Path::new("/usr/bin/socat"));
        assert!(ingress[2].contains("UNIX-LISTEN:/run/bridge/app.sock"));
        assert!(ingress[2].contains("TCP:127.0.0.1:3000"));
    }

    #[tokio::test]
    async fn a_bridge_stream_carries_bytes_both_ways_over_either_transport() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let unix = tokio::net::UnixListener::bind(&path).unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        // Echo servers: read four bytes, answer them upper-cased, then see the end.
        let unix_side = tokio::spawn(async move {
            let (mut s, _) = unix.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf.to_ascii_uppercase()).await.unwrap();
            s.read(&mut buf).await.unwrap()
        });
        let tcp_side = tokio::spawn(async move {
            let (mut s, _) = tcp.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf.to_ascii_uppercase()).await.unwrap();
            s.read(&mut buf).await.unwrap()
        });
        for upstream in [
            ServiceUpstream::Socket(path),
            ServiceUpstream::Loopback(addr),
        ] {
            let mut stream = upstream.connect().await.unwrap();
            stream.write_all(b"ping").await.unwrap();
            stream.flush().await.unwrap();
            let mut back = [0u8; 4];
            stream.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"PING", "{upstream:?}");
            stream.shutdown().await.unwrap();
        }
        assert_eq!(unix_side.await.unwrap(), 0, "the shutdown arrived");
        assert_eq!(tcp_side.await.unwrap(), 0, "the shutdown arrived");
    }

    #[tokio::test]
    async fn listening_means_the_relay_keeps_the_connection() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap();
        let missing = ServiceUpstream::Socket(dir.path().join("none.sock"));
        assert!(!missing.is_listening().await, "no socket");
        // A relay with nothing behind it takes the connection and closes it at once.
        let closing_path = dir.path().join("closing.sock");
        let closing = tokio::net::UnixListener::bind(&closing_path).unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = closing.accept().await {
                drop(s);
            }
        });
        assert!(!ServiceUpstream::Socket(closing_path).is_listening().await);
        // A relay with an app behind it keeps it open.
        let open_path = dir.path().join("open.sock");
        let open = tokio::net::UnixListener::bind(&open_path).unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = open.accept().await {
                held.push(s);
            }
        });
        assert!(ServiceUpstream::Socket(open_path).is_listening().await);
        // An app that greets first listens too.
        let greeting_path = dir.path().join("greeting.sock");
        let greeting = tokio::net::UnixListener::bind(&greeting_path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = greeting.accept().await {
                let _ = s.write_all(b"220 hello\r\n").await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        assert!(ServiceUpstream::Socket(greeting_path).is_listening().await);
        // Without the jail, a port that accepts is listening.
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        assert!(ServiceUpstream::Loopback(addr).is_listening().await);
        drop(tcp);
        assert!(!ServiceUpstream::Loopback(addr).is_listening().await);
    }

    #[test]
    fn proxy_variables_cover_the_usual_clients() {
        let env = proxy_env("http://127.0.0.1:3128");
        for name in [
            "HTTPS_PROXY",
            "https_proxy",
            "npm_config_https_proxy",
            "HTTP_PROXY",
        ] {
            assert_eq!(env[name], "http://127.0.0.1:3128", "{name}");
        }
        assert_eq!(env["NO_PROXY"], "");
    }
}
