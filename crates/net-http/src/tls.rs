//! TLS for a client given a CA file: the file's certificates are trusted as curl's
//! `--cacert` and requests' `verify=` trust them, a server's own certificate among them
//! included.
//!
//! ureq's rustls setup takes a CA file as roots for webpki, which refuses a certificate
//! marked as a CA when a server presents it as its own (`CaUsedAsEndEntity`): exactly what
//! `openssl req -x509` makes for a test or intranet server, and what curl, OpenSSL and
//! python accept once the file holds it. So this connector stands where ureq's would.

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme, StreamOwned,
};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport, TransportAdapter,
};

use crate::Error;

/// The roots trusted without a CA file: the system's, as curl and OpenSSL read them
/// (`SSL_CERT_FILE` and `SSL_CERT_DIR` when set, else the distribution's bundle, where a
/// company CA is installed), not only the bundled Mozilla ones. Read at the first TLS
/// connection, not before: some 1,000 system calls (a bundle, and a directory of hundreds of
/// files) made every plain-http run ten times dearer to start.
///
/// A system with no store at all (a bare container) gets the bundled Mozilla roots, with a
/// warning in the log; `SSL_CERT_FILE` or `SSL_CERT_DIR` naming nothing usable is an error
/// ([`SystemRootsError`]), as curl refuses a CA bundle it cannot read.
fn system_roots() -> Result<RootCertStore, SystemRootsError> {
    // rustls_native_certs reads SSL_CERT_FILE whole, with no bound: a huge file named there
    // is refused by its size first.
    if let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
        let path = std::path::PathBuf::from(path);
        let cap = crate::files::SETTINGS_CAP;
        let refused = |e: std::io::Error| SystemRootsError {
            why: format!("SSL_CERT_FILE names a file that {e}"),
            path: path.clone(),
        };
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() > cap => {
                return Err(refused(crate::files::too_large(cap)));
            }
            Ok(meta) if !meta.is_file() => {
                // A pipe (`<(cat ca.pem)`, a FIFO) can be read once only, and a device may
                // never end: read here, up to the cap, and trusted from these bytes (read
                // twice, a FIFO's second open waited for ever).
                let pem = crate::files::read_capped(&path, cap).map_err(refused)?;
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(certificates(&pem));
                if roots.is_empty() {
                    return Err(SystemRootsError {
                        why: "SSL_CERT_FILE names no usable certificate (no PEM certificate \
                              there)"
                            .to_owned(),
                        path,
                    });
                }
                return Ok(roots);
            }
            _ => {}
        }
    }
    // An env file's `SSL_CERT_FILE=` is unset, as curl and requests read it: rustls_native_certs
    // takes it for a file named "" and looked nowhere else (the bundled roots were used, and a
    // company CA in /etc/ssl/certs distrusted). The distribution's store is probed instead.
    let found = if std::env::var_os("SSL_CERT_FILE").is_some_and(|v| v.is_empty())
        && std::env::var_os("SSL_CERT_DIR").is_none_or(|v| v.is_empty())
    {
        let probed = openssl_probe::probe();
        rustls_native_certs::load_certs_from_paths(
            probed.cert_file.as_deref(),
            probed.cert_dir.first().map(std::path::PathBuf::as_path),
        )
    } else {
        rustls_native_certs::load_native_certs()
    };
    let mut roots = RootCertStore::empty();
    if !found.certs.is_empty() {
        roots.add_parsable_certificates(found.certs);
        return Ok(roots);
    }
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        if let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return Err(SystemRootsError {
                path: path.into(),
                why: format!(
                    "{var} names no usable certificate ({})",
                    found.errors.first().map_or_else(
                        || "no PEM certificate there".to_owned(),
                        ToString::to_string
                    )
                ),
            });
        }
    }
    log::warn!("no trusted certificates in the system's store: the bundled Mozilla roots are used");
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(roots)
}

/// The certificates of a PEM file's bytes (a byte-order mark before them passed over).
pub(crate) fn certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    ureq::tls::parse_pem(crate::decode::without_bom(pem))
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => {
                Some(CertificateDer::from(cert.der().to_vec()))
            }
            _ => None,
        })
        .collect()
}

/// `SSL_CERT_FILE` or `SSL_CERT_DIR` names no usable certificate: carried out of a
/// connection in an I/O error, to be told as bad input about that file.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{why}")]
pub(crate) struct SystemRootsError {
    pub(crate) path: std::path::PathBuf,
    pub(crate) why: String,
}

/// The connector doing TLS with the certificates of a CA file, or with the system's roots
/// (read at its first TLS connection).
#[derive(Debug)]
pub(crate) struct RootsTls {
    config: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, SystemRootsError>>,
    /// The client certificate, kept to build the configuration from the system's roots.
    client: Option<ureq::tls::ClientCert>,
}

impl RootsTls {
    /// For the certificates `trusted` (DER) and, when the server asks for one, the client
    /// certificate chain and key `client` (read once, by the client's own reading, which
    /// passes a byte-order mark over).
    pub(crate) fn new(
        trusted: Vec<CertificateDer<'static>>,
        client: Option<&ureq::tls::ClientCert>,
    ) -> Result<RootsTls, Error> {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(trusted.iter().cloned());
        Ok(RootsTls {
            config: std::sync::OnceLock::from(Ok(client_config(roots, trusted, client)?)),
            client: None,
        })
    }

    /// For the system's roots (see [`system_roots`]), read when first needed, and the
    /// client certificate `client`.
    pub(crate) fn system(client: Option<ureq::tls::ClientCert>) -> RootsTls {
        RootsTls {
            config: std::sync::OnceLock::new(),
            client,
        }
    }

    fn config(&self) -> Result<Arc<rustls::ClientConfig>, ureq::Error> {
        let built = self.config.get_or_init(|| {
            let roots = system_roots()?;
            client_config(roots, Vec::new(), self.client.as_ref()).map_err(|e| SystemRootsError {
                path: "the system's certificates".into(),
                why: e.to_string(),
            })
        });
        built
            .clone()
            .map_err(|e| ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }
}

/// The rustls configuration trusting `roots`, and `trusted` as servers' own certificates,
/// with the client certificate `client`.
fn client_config(
    roots: RootCertStore,
    trusted: Vec<CertificateDer<'static>>,
    client: Option<&ureq::tls::ClientCert>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    // rustls 0.23.48 deprecates ring's provider for its lack of post-quantum key exchange and
    // names no replacement for ring in 0.23: the ring provider it points to (`rustls-ring`) is
    // for rustls 0.24, and aws-lc-rs (which has it) is not built here. Kept until one of those
    // is taken; client.rs loads the client key with the same provider.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_error = |reason: String| Error::Tls {
        url: "the CA file".into(),
        reason,
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls_error(e.to_string()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustedFile { webpki, trusted }));
    let config = match client {
        Some(client) => {
            let chain = client
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.der().to_vec()))
                .collect();
            let key = PrivateKeyDer::try_from(client.private_key().der().to_vec())
                .map_err(|e| tls_error(e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_error(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

impl<In: Transport> Connector<In> for RootsTls {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(transport.boxed()));
        }
        let host = details
            .uri
            .host()
            .ok_or(ureq::Error::Tls("no host to check the certificate against"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::Tls("not a host name a certificate can name"))?;
        let mut conn = ClientConnection::new(self.config()?, name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Box::new(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// webpki's verification against the CA file, and the file's own certificates accepted as
/// the server's when they name it.
#[derive(Debug)]
struct TrustedFile {
    webpki: Arc<WebPkiServerVerifier>,
    trusted: Vec<CertificateDer<'static>>,
}

/// What webpki checks of a chain and a certificate pinned by its bytes still needs (curl,
/// through OpenSSL, checks it of a trusted self-signed one too): its dates, and that it is
/// meant for a server.
fn pinned_still_valid(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    use rustls::CertificateError;
    let invalid = rustls::Error::InvalidCertificate;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| invalid(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = parsed.validity();
    if now < validity.not_before.timestamp() {
        return Err(invalid(CertificateError::NotValidYet));
    }
    if now > validity.not_after.timestamp() {
        return Err(invalid(CertificateError::Expired));
    }
    match parsed.extended_key_usage() {
        Ok(Some(usage)) if !usage.value.any && !usage.value.server_auth => {
            Err(invalid(CertificateError::InvalidPurpose))
        }
        Ok(_) => Ok(()),
        Err(_) => Err(invalid(CertificateError::BadEncoding)),
    }
}

impl ServerCertVerifier for TrustedFile {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verified {
            Err(_)
                if self
                    .trusted
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                pinned_still_valid(end_entity, now)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A TLS connection as ureq's transports are driven.
struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
