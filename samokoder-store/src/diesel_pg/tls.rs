//! TLS for the diesel backend: tokio-postgres over rustls, with libpq's `sslmode` meanings.
//!
//! diesel-async has no TLS of its own and tokio-postgres leaves it to a `MakeTlsConnect`
//! implementation; this is a small one over `tokio-rustls` (the `tokio-postgres-rustls` crate
//! does the same, but is not otherwise in the dependency graph). The crypto provider is chosen
//! explicitly (aws-lc-rs, the one the rest of the workspace uses), so this works whichever
//! providers happen to be compiled in.
//!
//! `sslmode` means what it means to libpq and to the sqlx backend, so one URL behaves the same
//! on both PostgreSQL backends:
//!
//! | `sslmode` | encrypted | certificate checked | host name checked |
//! |---|---|---|---|
//! | `disable` | no | - | - |
//! | `allow`, `prefer` (the default) | when the server offers it | no | no |
//! | `require` | yes | only if `sslrootcert` is given | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! Certificates are checked against `sslrootcert` (a PEM file) when the URL names one, and
//! against the Mozilla root programme's list (`webpki-roots`) otherwise or with
//! `sslrootcert=system`. Managed databases often sign with their own CA (Amazon RDS, Azure):
//! download it and point `sslrootcert` at it. Client certificates (`sslcert`, `sslkey`) are not
//! supported, and SCRAM channel binding is not offered (authentication falls back to plain
//! SCRAM-SHA-256 inside the TLS session).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::error::{StoreError, StoreResult};

/// The `sslmode` values, as libpq defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> StoreResult<Self> {
        match value {
            "disable" => Ok(Self::Disable),
            // tokio-postgres cannot try plaintext first; encrypting when offered is the
            // stricter reading of "allow".
            "allow" | "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            _ => Err(StoreError::invalid(
                "sslmode must be disable, allow, prefer, require, verify-ca or verify-full",
            )),
        }
    }

    /// What tokio-postgres is told: whether it may fall back to plaintext.
    pub(super) fn ssl_mode(self) -> SslMode {
        match self {
            Self::Disable => SslMode::Disable,
            Self::Prefer => SslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => SslMode::Require,
        }
    }
}

/// The TLS settings of a URL, taken out of it: tokio-postgres rejects `verify-ca`,
/// `verify-full` and `sslrootcert`, so they are read here and the rest of the URL goes to its
/// parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsParams {
    pub(super) mode: TlsMode,
    /// `sslrootcert`: a PEM file of trusted certificates, or `None` for the built-in roots.
    pub(super) root_cert: Option<String>,
}

/// Splits `url` into the URL without `sslmode`/`sslrootcert` and the TLS settings they gave.
pub(super) fn split_url(url: &str) -> StoreResult<(String, TlsParams)> {
    let mut params = TlsParams {
        mode: TlsMode::Prefer,
        root_cert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            percent_decode(value)
                .ok_or_else(|| StoreError::invalid(format!("{key} in the URL is not valid")))
        };
        match key {
            "sslmode" => params.mode = TlsMode::parse(&decoded()?)?,
            "sslrootcert" => {
                let path = decoded()?;
                params.root_cert = (path != "system").then_some(path);
            }
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(StoreError::invalid(
                    "the diesel-postgres backend does not support TLS client certificates \
                     (sslcert, sslkey)",
                ));
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, params))
}

/// Decodes `%XX` escapes (and nothing else: `+` stays a plus, as in a URL path).
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = tail.get(..2)?;
            bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The rustls client configuration for `params`, or `None` for `sslmode=disable`.
pub(super) fn connector(params: &TlsParams) -> StoreResult<Option<MakeRustlsConnect>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Database {
            context: "setting up TLS".into(),
            source: Box::new(e),
        })?;
    let checks_certificate = match params.mode {
        TlsMode::Disable => return Ok(None),
        TlsMode::Prefer => false,
        // libpq's rule: `require` with a root certificate file verifies like `verify-ca`.
        TlsMode::Require => params.root_cert.is_some(),
        TlsMode::VerifyCa | TlsMode::VerifyFull => true,
    };
    let config = if checks_certificate {
        let roots = Arc::new(root_store(params.root_cert.as_deref())?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| StoreError::Database {
                context: "setting up TLS certificate verification".into(),
                source: Box::new(e),
            })?;
        let verifier: Arc<dyn ServerCertVerifier> = if params.mode == TlsMode::VerifyFull {
            webpki
        } else {
            Arc::new(IgnoreHostName(webpki))
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth()
    };
    Ok(Some(MakeRustlsConnect {
        config: Arc::new(config),
    }))
}

/// The trusted roots: the certificates of a PEM file, or the Mozilla list.
fn root_store(path: Option<&str>) -> StoreResult<RootCertStore> {
    let Some(path) = path else {
        return Ok(RootCertStore::from_iter(
            webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
        ));
    };
    // The path comes from the operator's configuration; it is named in the error so a typo is
    // easy to find.
    let unreadable = |detail: &str| StoreError::invalid(format!("sslrootcert {path:?}: {detail}"));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|_| unreadable("cannot be read"))? {
        let cert = cert.map_err(|_| unreadable("is not a PEM certificate file"))?;
        roots
            .add(cert)
            .map_err(|_| unreadable("holds a certificate that cannot be used as a root"))?;
    }
    if roots.is_empty() {
        return Err(unreadable("holds no certificate"));
    }
    Ok(roots)
}

/// `sslmode=prefer`/`require` without a root certificate: encrypt, and check that the server
/// holds the key of the certificate it shows, but not who signed it (libpq's meaning; it stops
/// passive eavesdropping, not an active man in the middle).
#[derive(Debug)]
struct EncryptOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the full webpki check except the host name (which webpki checks last,
/// after the chain, so a name mismatch means the chain itself was fine).
#[derive(Debug)]
struct IgnoreHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres's hook for TLS: one [`RustlsConnect`] per connection attempt.
#[derive(Clone)]
pub(super) struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
}

impl MakeTlsConnect<tokio_postgres::Socket> for MakeRustlsConnect {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.config.clone(),
            server_name: ServerName::try_from(host.to_owned())?,
        })
    }
}

/// The TLS handshake with one server.
pub(super) struct RustlsConnect {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsConnect<tokio_postgres::Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<RustlsStream>>;

    fn connect(self, socket: tokio_postgres::Socket) -> Self::Future {
        async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.server_name, socket)
                .await
                .map(RustlsStream)
        }
        .boxed()
    }
}

/// An established TLS session to the server.
pub(super) struct RustlsStream(tokio_rustls::client::TlsStream<tokio_postgres::Socket>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tokio_postgres::tls::TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        // Offering tls-server-end-point would need the certificate's hash algorithm; without
        // it the server simply uses SCRAM-SHA-256 without the PLUS variant.
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_taken_out_of_the_url() {
        let (rest, params) = split_url(
            "postgres://u:p@db:5432/x?sslmode=verify-full&options=-c%20a%3Db&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db:5432/x?options=-c%20a%3Db");
        assert_eq!(params.mode, TlsMode::VerifyFull);
        assert_eq!(params.root_cert.as_deref(), Some("/etc/ca.pem"));

        let (rest, params) = split_url("postgres://db/x").unwrap();
        assert_eq!(rest, "postgres://db/x");
        assert_eq!(params.mode, TlsMode::Prefer, "libpq's default");

        let (rest, params) = split_url("postgres://db/x?sslmode=disable").unwrap();
        assert_eq!(rest, "postgres://db/x");
        assert_eq!(params.mode, TlsMode::Disable);

        let (_, params) = split_url("postgres://db/x?sslrootcert=system&sslmode=require").unwrap();
        assert_eq!(params.root_cert, None, "system means the built-in roots");

        assert!(split_url("postgres://db/x?sslmode=sometimes").is_err());
        assert!(split_url("postgres://db/x?sslcert=/c.pem").is_err());
        assert!(split_url("postgres://db/x?sslrootcert=%zz").is_err());
    }

    #[test]
    fn modes_map_to_fallback_rules() {
        assert_eq!(TlsMode::Disable.ssl_mode(), SslMode::Disable);
        assert_eq!(TlsMode::Prefer.ssl_mode(), SslMode::Prefer);
        for strict in [TlsMode::Require, TlsMode::VerifyCa, TlsMode::VerifyFull] {
            assert_eq!(strict.ssl_mode(), SslMode::Require);
        }
        let disabled = TlsParams {
            mode: TlsMode::Disable,
            root_cert: None,
        };
        assert!(connector(&disabled).unwrap().is_none());
        let missing_roots = TlsParams {
            mode: TlsMode::VerifyCa,
            root_cert: Some("/nonexistent/ca.pem".into()),
        };
        let err = connector(&missing_roots)
            .err()
            .expect("unreadable sslrootcert");
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    }
}
