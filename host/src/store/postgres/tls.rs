//! TLS to PostgreSQL with rustls (no OpenSSL at run time), with libpq's meanings of the
//! connection string's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`:
//!
//! - `disable`: no TLS; `prefer` (libpq's default): TLS when the server offers it; `require`:
//!   TLS or no connection. Neither checks the certificate unless there is a root certificate
//!   (`sslrootcert`, or libpq's default `~/.postgresql/root.crt` when it exists): then the chain
//!   is checked, and `require` is `verify-ca`, as in libpq;
//! - `verify-ca`: the certificate must chain to the root certificate; `verify-full`: and name the
//!   host connected to. Both need a root certificate.
//! - `sslrootcert`: a PEM file of certificate authorities, or `system` for the system's roots,
//!   which (as in libpq) means `verify-full` and allows no weaker mode.
//! - `sslcert` and `sslkey`: a client certificate (PEM) and its key (PEM, PKCS#8, PKCS#1 or SEC1).
//!
//! `tokio-postgres` itself knows only `disable`, `prefer` and `require`: the other values and the
//! file parameters are taken out of the string here before it parses the rest.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::postgres::config::SslMode;
use ::postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::store::{StoreError, StoreResult};

/// `sslmode`, as libpq spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS parameters taken out of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub mode: Mode,
    /// Whether the string named the mode (libpq's default with `sslrootcert=system` differs).
    pub mode_given: bool,
    pub root_cert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// Splits `url` (a `postgresql://` URL or libpq's `key=value` form) into the string
/// tokio-postgres parses (the TLS parameters taken out) and those parameters.
pub fn split(url: &str) -> Result<(String, Params), String> {
    let mut params = Params { mode: Mode::Prefer, mode_given: false, root_cert: None, cert: None, key: None };
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => {
                params.mode_given = true;
                params.mode = match value {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                        ));
                    }
                }
            }
            "sslrootcert" => params.root_cert = Some(value.to_owned()),
            "sslcert" => params.cert = Some(value.to_owned()),
            "sslkey" => params.key = Some(value.to_owned()),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, &percent_decode(v))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, text) in key_values(url)? {
            if !take(&key, &value)? {
                kept.push(text);
            }
        }
        kept.join(" ")
    };
    Ok((rest, params))
}

/// libpq's `key = value` form: each pair's key, its value (unquoted: `'...'` with `\'` and `\\`
/// escapes) and the pair's own text, so what is kept goes on exactly as written.
fn key_values(text: &str) -> Result<Vec<(String, String, &str)>, String> {
    let bytes = text.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= bytes.len() {
            return Ok(pairs);
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = text[start..i].to_owned();
        skip_space(&mut i);
        if bytes.get(i) != Some(&b'=') {
            return Err(format!("{key:?} in the connection string has no value (key=value)"));
        }
        i += 1;
        skip_space(&mut i);
        let mut value = Vec::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(format!("the quoted value of {key} is not closed")),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                value.push(bytes[i]);
                i += 1;
            }
        }
        pairs.push((key, String::from_utf8_lossy(&value).into_owned(), &text[start..i]));
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How the connections are made: plain, or TLS with a rustls configuration.
#[derive(Clone)]
pub struct Tls {
    pub mode: Mode,
    config: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Tls {
    /// tokio-postgres's mode for `params.mode`.
    pub fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    pub fn new(params: &Params) -> Result<Tls, String> {
        if params.mode == Mode::Disable {
            return Ok(Tls { mode: Mode::Disable, config: None });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?;
        let (mode, root_cert) = effective(params)?;
        let verifier: Arc<dyn ServerCertVerifier> = match root_cert {
            // No certificate authority: encryption without verification (prefer, require).
            None => Arc::new(Unverified(provider.clone())),
            Some(root_cert) => {
                let roots = roots(&root_cert)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert={root_cert}: {e}"))?;
                if mode == Mode::VerifyFull { webpki } else { Arc::new(AnyName(webpki)) }
            }
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        let config = match (&params.cert, &params.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect())
                    .map_err(|e| format!("sslcert={cert}: {e}"))?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("sslkey={key}: {e}"))?;
                builder.with_client_auth_cert(certs, key_der).map_err(|e| format!("sslcert/sslkey: {e}"))?
            }
            _ => return Err("sslcert and sslkey go together: give both or neither".into()),
        };
        Ok(Tls { mode, config: Some(Arc::new(config)) })
    }

    /// Connects with `config` (its sslmode already set from this value).
    pub fn connect(&self, config: &::postgres::Config) -> Result<::postgres::Client, ::postgres::Error> {
        match &self.config {
            None => config.connect(::postgres::NoTls),
            Some(c) => config.connect(MakeRustls(c.clone())),
        }
    }
}

/// The mode and certificate authorities libpq would use for `params`, without reading files:
/// - `sslrootcert=system` means `verify-full` unless a mode is given, and allows no other;
/// - a root certificate (`sslrootcert`, or `~/.postgresql/root.crt` when it exists) makes
///   `prefer` and `require` check the chain too (`require` becomes `verify-ca`);
/// - `verify-ca` and `verify-full` need one.
pub fn effective(params: &Params) -> Result<(Mode, Option<String>), String> {
    if params.mode == Mode::Disable {
        return Ok((Mode::Disable, None));
    }
    if params.cert.is_some() != params.key.is_some() {
        return Err("sslcert and sslkey go together: give both or neither".into());
    }
    if params.root_cert.as_deref() == Some("system") {
        return match (params.mode_given, params.mode) {
            (false, _) | (true, Mode::VerifyFull) => Ok((Mode::VerifyFull, Some("system".into()))),
            (true, _) => Err("sslrootcert=system needs sslmode=verify-full (as in libpq): any public \
                              certificate authority would otherwise vouch for any host"
                .into()),
        };
    }
    let default_root = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string());
    let root_cert = params.root_cert.clone().or(default_root);
    match (params.mode, root_cert) {
        (Mode::VerifyCa | Mode::VerifyFull, None) => Err(format!(
            "sslmode={} needs sslrootcert: a PEM file of the certificate authorities, or sslrootcert=system \
             for the system's",
            if params.mode == Mode::VerifyCa { "verify-ca" } else { "verify-full" }
        )),
        (Mode::Require, Some(root)) => Ok((Mode::VerifyCa, Some(root))),
        (mode, root) => Ok((mode, root)),
    }
}

fn roots(root_cert: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if root_cert == "system" {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err("sslrootcert=system: this system has no certificate authorities".into());
        }
        return Ok(roots);
    }
    let path = Path::new(root_cert);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect())
        .map_err(|e| format!("sslrootcert={root_cert} cannot be read as PEM certificates: {e}"))?;
    for cert in certs {
        roots.add(cert).map_err(|e| format!("sslrootcert={root_cert}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert={root_cert} holds no certificate"));
    }
    Ok(roots)
}

/// `require` and `prefer`: any certificate, its handshake signature still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain checked, the host name not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
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

/// tokio-postgres's TLS connector over rustls.
#[derive(Clone)]
struct MakeRustls(Arc<ClientConfig>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for MakeRustls {
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> io::Result<Connect> {
        // tokio-postgres asks with no name for a Unix socket or a bare hostaddr; PostgreSQL
        // offers no TLS on a socket, and a verifying mode then fails at the name check.
        let name = if host.is_empty() {
            ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
        } else {
            ServerName::try_from(host.to_owned())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?} as a TLS name: {e}")))?
        };
        Ok(Connect { config: self.0.clone(), name })
    }
}

struct Connect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for Connect {
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let host = format!("{:?}", self.name);
            let tls = tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await.map_err(|e| {
                let hint = if e.to_string().contains("not valid for name") {
                    " (sslmode=verify-full: the server's certificate does not name this host; connect by a name \
                     it has, or use verify-ca)"
                } else {
                    ""
                };
                io::Error::new(e.kind(), format!("TLS with {host}: {e}{hint}"))
            })?;
            Ok(Stream(tls))
        })
    }
}

struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// Whether `url` is a connection string a start would accept, without connecting or reading
/// its certificate files (for `face-server check-settings` and start-up): what is wrong, if not.
pub fn check_connection_string(url: &str) -> Result<(), String> {
    let (rest, params) = split(url)?;
    rest.parse::<::postgres::Config>().map_err(|e| {
        format!("not a PostgreSQL connection string ({e}); write it as postgresql://user:password@host:5432/database")
    })?;
    effective(&params).map(|_| ())
}

/// A connection string read as a connection would: its settings and its TLS rules. `setting`
/// names where it came from, for the error.
pub(super) fn parse_connection(url: &str, setting: &str) -> StoreResult<(::postgres::Config, Tls)> {
    let (rest, params) = split(url).map_err(|e| StoreError::Internal(format!("{setting}: {e}")))?;
    let mut config: ::postgres::Config = rest.parse().map_err(|e| {
        StoreError::Internal(format!(
            "{setting} is not a PostgreSQL connection string ({e}); \
             write it as postgresql://user:password@host:5432/database"
        ))
    })?;
    let tls = Tls::new(&params).map_err(|e| StoreError::Internal(format!("{setting}: {e}")))?;
    config.ssl_mode(tls.ssl_mode());
    Ok((config, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_both_forms() {
        let (rest, p) = split(
            "postgresql://face:pw@db:5432/face?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://face:pw@db:5432/face?connect_timeout=5");
        assert_eq!(p.mode, Mode::VerifyFull);
        assert_eq!(p.root_cert.as_deref(), Some("/etc/ca.pem"));
        let (rest, p) = split("host=db user=face sslmode=require sslcert=/c.pem sslkey=/k.pem").unwrap();
        assert_eq!(rest, "host=db user=face");
        assert_eq!((p.mode, p.cert.as_deref(), p.key.as_deref()), (Mode::Require, Some("/c.pem"), Some("/k.pem")));
        let (rest, p) = split("postgresql://db/face").unwrap();
        assert_eq!((rest.as_str(), p.mode), ("postgresql://db/face", Mode::Prefer));
        assert!(split("postgresql://db/face?sslmode=sometimes").unwrap_err().contains("sslmode=sometimes"));
        // Quoted values as libpq reads them; what is kept goes on exactly as written.
        let (rest, p) =
            split(r"host=db password='a  b\'c sslmode=disable' sslmode = require sslrootcert='/x y/ca.pem'").unwrap();
        assert_eq!(rest, r"host=db password='a  b\'c sslmode=disable'");
        assert_eq!((p.mode, p.root_cert.as_deref()), (Mode::Require, Some("/x y/ca.pem")));
        assert!(split("host=db password='open").is_err());
        // sslrootcert=system means verify-full and allows nothing weaker; a root certificate
        // makes require verify the chain.
        let effective_of = |s: &str| effective(&split(s).unwrap().1);
        assert_eq!(effective_of("postgresql://db/f?sslrootcert=system").unwrap().0, Mode::VerifyFull);
        assert!(effective_of("postgresql://db/f?sslrootcert=system&sslmode=require").is_err());
        assert_eq!(effective_of("postgresql://db/f?sslrootcert=/ca.pem&sslmode=require").unwrap().0, Mode::VerifyCa);
        assert!(effective_of("postgresql://db/f?sslcert=/c.pem").is_err(), "a certificate without its key");
        assert!(
            Tls::new(&Params { mode: Mode::VerifyFull, mode_given: true, root_cert: None, cert: None, key: None })
                .is_err_and(|e| e.contains("needs sslrootcert"))
                || std::env::var_os("HOME").is_some_and(|h| Path::new(&h).join(".postgresql/root.crt").is_file())
        );
    }
}
