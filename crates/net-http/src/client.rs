//! The client: connection pool, cookie jar, the request builder and the send loop
//! (redirects, cookies on every hop, retries).

use std::borrow::Cow;
use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use cookie_store::{CookieExpiration, CookieStore};
use rand::Rng as _;
use serde::Serialize;
use ureq::http;
use url::Url;

use crate::Error;
use crate::config::ClientConfig;
use crate::netrc::Netrc;
use crate::response::Response;

/// A blocking HTTP client: cheap to clone, clones share the connection pool and the
/// cookie jar (like a `requests.Session`).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    agent: ureq::Agent,
    /// The proxies requests go through.
    proxies: crate::proxy::Proxies,
    config: ClientConfig,
    jar: Mutex<CookieStore>,
    /// The last URL parsed, as given and as parsed: a loop over one URL (polling, paging by
    /// header) then pays for the WHATWG parse once. A callgrind profile of keep-alive GETs put
    /// `Url::parse` at 6.0 k of 48.6 k instructions per request, raw ureq's whole GET at 41.1 k.
    last_url: Mutex<Option<(Box<str>, Url)>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Credentials sent with a request (`Debug` shows no password or token).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Auth {
    /// `Authorization: Basic`.
    Basic {
        /// The user name.
        user: String,
        /// The password (empty when none).
        password: String,
    },
    /// `Authorization: Bearer`.
    Bearer(String),
    /// `Authorization: Digest` (RFC 7616: MD5 or SHA-256), answering the server's 401
    /// challenge, so the request is sent twice (as curl --digest).
    Digest {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const REDACTED: &str = "<redacted>";
        match self {
            Auth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &REDACTED)
                .finish(),
            Auth::Bearer(_) => f.debug_tuple("Bearer").field(&REDACTED).finish(),
            Auth::Digest { user, .. } => f
                .debug_struct("Digest")
                .field("user", user)
                .field("password", &REDACTED)
                .finish(),
        }
    }
}

impl Auth {
    /// The header sent before any challenge: none for Digest, which needs one.
    pub(crate) fn header_value(&self) -> Option<String> {
        match self {
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
            Auth::Digest { .. } => None,
        }
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Part {
    /// A text field.
    Text {
        /// The field name.
        name: String,
        /// Its value.
        value: String,
    },
    /// A file, streamed from disk.
    File {
        /// The field name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Its `Content-Type`; `None` guesses it from the file name's extension.
        content_type: Option<String>,
    },
}

#[derive(Clone, Debug, Default)]
enum Body {
    #[default]
    Empty,
    Bytes {
        data: Vec<u8>,
        content_type: Option<String>,
    },
    File(PathBuf),
    /// A file already open (stdin, a socket), read from where it stood when given: `start`,
    /// for a regular file (sought back to for each sending).
    Open {
        file: Arc<File>,
        start: Option<u64>,
    },
    Multipart {
        parts: Vec<Part>,
        /// Per part, what a part read from a pipe gave, to send it again.
        replays: Vec<Arc<Mutex<Replay>>>,
        /// The body as a [`Request::preview`] showed it (`Content-Type` with its boundary,
        /// bytes): then sent as shown, since each ureq form draws its own boundary.
        shown: OnceLock<(String, Vec<u8>)>,
    },
}

impl Client {
    /// A client with `config`.
    ///
    /// # Errors
    /// [`Error::File`] when the CA file or a client certificate or key file cannot be read
    /// (or the latter hold no certificate or key, or a key not the certificate's), or when the CA
    /// file holds no usable certificate; [`Error::BadUrl`] for a bad proxy URL. The system's
    /// roots (what `SSL_CERT_FILE` and `SSL_CERT_DIR` name, when set) are read at the first
    /// TLS connection, which fails with [`Error::File`] when they hold no usable certificate:
    /// reading them here made every plain-http start ten times dearer.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let mut tls = ureq::tls::TlsConfig::builder().disable_verification(config.insecure);
        // First: a key that is not the certificate's is named as such, not as the CA file's.
        let client_cert = config
            .client_cert
            .as_deref()
            .map(|cert_file| client_cert(cert_file, config.client_key.as_deref()))
            .transpose()?;
        let mut roots_tls = None;
        if let Some(ca_file) = &config.ca_file {
            let trusted = crate::tls::certificates(&read_pem(ca_file)?);
            if trusted.is_empty() {
                // Bad input, as a file that is not there: the caller's to fix, not the network.
                return Err(Error::File {
                    path: ca_file.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "no usable PEM certificate in the CA file",
                    ),
                });
            }
            // The file's certificates go to our own TLS connector alone: ureq's, which would
            // take them as roots, is not in the chain then (and with --insecure nothing is
            // checked against them).
            if !config.insecure {
                roots_tls = Some(crate::tls::RootsTls::new(trusted, client_cert.as_ref())?);
            }
        }
        if config.ca_file.is_none() && !config.insecure {
            roots_tls = Some(crate::tls::RootsTls::system(client_cert.clone()));
        }
        if client_cert.is_some() {
            tls = tls.client_cert(client_cert);
        }
        let proxies = crate::proxy::Proxies::new(config.proxy.as_deref())?;
        let config_ureq = ureq::Agent::config_builder()
            // We show error bodies, follow redirects ourselves (to keep every hop's cookies
            // and drop credentials across origins) and never wait forever.
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(config.user_agent.as_str())
            .accept_encoding(ACCEPT_ENCODING)
            .timeout_connect(limit(config.connect_timeout))
            .timeout_global(config.timeout.and_then(limit))
            .timeout_per_read(limit(config.read_timeout))
            // A server that stops reading our request fails like one that stops answering. A
            // constant write timeout also spares a setsockopt per request: without it the
            // socket's send timeout followed the shrinking whole-request budget.
            .timeout_per_write(limit(config.read_timeout))
            .no_delay(true)
            .allow_non_standard_methods(true)
            // Chosen per request, by scheme and NO_PROXY (`Proxies::for_url`).
            .proxy(None)
            .tls_config(tls.build())
            .build();
        use ureq::unversioned::transport::{self as transport, Connector as _};
        // ureq's default chain, with plain http:// sent to an HTTP proxy as curl sends it, and
        // TLS of our own for a CA file.
        let to_target =
            ().chain(transport::SocksConnector::default())
                .chain(crate::proxy::ForwardProxy)
                .chain(transport::ConnectProxyConnector::default())
                .chain(transport::TcpConnector::default())
                .chain(NoteConnected);
        let agent = match roots_tls {
            Some(tls) => ureq::Agent::with_parts(
                config_ureq,
                to_target.chain(tls).chain(ProbeWhenTaken),
                <CachingResolver>::default(),
            ),
            None => ureq::Agent::with_parts(
                config_ureq,
                to_target
                    .chain(transport::RustlsConnector::default())
                    .chain(ProbeWhenTaken),
                <CachingResolver>::default(),
            ),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                agent,
                proxies,
                config,
                jar: Mutex::new(CookieStore::default()),
                last_url: Mutex::new(None),
            }),
        })
    }

    /// The configuration this client was built with.
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Starts a request with any method (`GET`, `POST`, `PROPFIND`, ...).
    ///
    /// # Errors
    /// [`Error::BadUrl`] when `url` is not an absolute http(s) URL.
    pub fn request(&self, method: &str, url: &str) -> Result<Request, Error> {
        let method = if method.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(method.to_ascii_uppercase())
        } else {
            Cow::Borrowed(method)
        };
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::BadRequest(format!("bad method {method:?}")))?;
        let raw_path = self
            .config()
            .path_as_is
            .then(|| path_as_written(url))
            .flatten();
        let mut url = self.parse_url(url)?;
        let auth = credentials_in(&mut url);
        Ok(Request {
            client: self.clone(),
            method,
            url,
            raw_path,
            chunked: false,
            headers: Vec::new(),
            defaults: 0,
            removed: Vec::new(),
            auth,
            netrc: None,
            netrc_digest: false,
            body: Body::Empty,
            replay: Arc::default(),
            retried: 0,
            deadline: None,
        })
    }

    /// Starts a GET request.
    ///
    /// # Errors
    /// [`Error::BadUrl`] when `url` is not an absolute http(s) URL.
    pub fn get(&self, url: &str) -> Result<Request, Error> {
        self.request("GET", url)
    }

    /// Starts a POST request.
    ///
    /// # Errors
    /// [`Error::BadUrl`] when `url` is not an absolute http(s) URL.
    pub fn post(&self, url: &str) -> Result<Request, Error> {
        self.request("POST", url)
    }

    /// ureq's error for `url` as ours. ureq reports a proxy it cannot reach as if the target
    /// were down: name the proxy, as curl does.
    fn error_for(&self, url: &Url, error: ureq::Error) -> Error {
        // ureq's bare "Peer disconnected": here, before any response came.
        if let ureq::Error::Io(e) = &error
            && e.kind() == std::io::ErrorKind::UnexpectedEof
        {
            // A TLS server closes on a plain request, as openssl s_server and nginx's
            // ssl-only port do.
            let hint = if url.scheme() == "https" {
                String::new()
            } else {
                format!("; {}", crate::error::other_scheme(false))
            };
            return Error::Io {
                url: url.to_string(),
                reason: format!(
                    "the server closed the connection without answering (an empty reply){hint}"
                ),
            };
        }
        if let ureq::Error::Protocol(e) = &error
            && let Some(speaks) = SENDING.with(|s| {
                let (first, len) = s.first.get();
                not_http1(&first[..len])
            })
        {
            return Error::Io {
                url: crate::error::redacted(url.as_str()),
                reason: format!("the answer is not HTTP/1.x: {speaks} ({e})"),
            };
        }
        let error = match error {
            ureq::Error::Timeout(which) => {
                // ureq's connect deadline is the sooner of the two, and it names the connect
                // timer either way: `--connect-timeout 3 --max-time 2` said "no connection
                // within 3 s" after 2.
                let which = match (which, self.config().timeout) {
                    (ureq::Timeout::Connect, Some(total))
                        if total <= self.config().connect_timeout =>
                    {
                        ureq::Timeout::Global
                    }
                    (which, _) => which,
                };
                Error::Timeout {
                    url: crate::error::redacted(url.as_str()),
                    what: timeout_what(
                        self.config(),
                        which,
                        url.scheme() == "https" && SENDING.with(|s| s.connected.get()),
                    ),
                    kind: crate::TimeoutKind::of(which),
                }
            }
            other => Error::from_ureq(url.as_str(), other),
        };
        let Some(proxy) = self.inner.proxies.for_url(url) else {
            return error;
        };
        let via = format!("proxy {}:{}", proxy.host(), proxy.port());
        match error {
            Error::Connect { url, reason } => Error::Connect {
                url,
                reason: format!("{via}: {reason}"),
            },
            // SOCKS4 resolves the target here; every other proxy resolves it itself.
            Error::Dns { url } if !proxy.resolve_target() => Error::Connect {
                url,
                reason: format!("{via}: cannot resolve the proxy's host"),
            },
            other => other,
        }
    }

    /// [`parse_url`], remembering the last answer.
    fn parse_url(&self, url: &str) -> Result<Url, Error> {
        let mut last = self
            .inner
            .last_url
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((given, parsed)) = &*last
            && **given == *url
        {
            return Ok(parsed.clone());
        }
        let parsed = parse_url(url)?;
        *last = Some((url.into(), parsed.clone()));
        Ok(parsed)
    }

    /// A client on the same connections and settings with `jar` as its own cookie jar.
    pub(crate) fn with_own_jar(&self, jar: CookieStore) -> Client {
        Client {
            inner: Arc::new(Inner {
                agent: self.inner.agent.clone(),
                proxies: self.inner.proxies.clone(),
                config: self.inner.config.clone(),
                jar: Mutex::new(jar),
                last_url: Mutex::new(None),
            }),
        }
    }

    pub(crate) fn with_jar<T>(&self, f: impl FnOnce(&mut CookieStore) -> T) -> T {
        f(&mut self
            .inner
            .jar
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }
}

/// The bytes of a PEM file, without a byte-order mark (the file was said to hold no
/// certificate, where curl reads it).
fn read_pem(path: &Path) -> Result<Vec<u8>, Error> {
    let pem = crate::files::read_capped(path, crate::files::SETTINGS_CAP).map_err(|source| {
        Error::File {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(crate::decode::without_bom(&pem).to_vec())
}

/// The client certificate chain of `cert_file` with the private key of `key_file`, or of
/// `cert_file` itself when there is none.
fn client_cert(cert_file: &Path, key_file: Option<&Path>) -> Result<ureq::tls::ClientCert, Error> {
    let bad = |path: &Path, reason: &str| Error::File {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    };
    let pem = read_pem(cert_file)?;
    let mut certs = Vec::new();
    let mut key = None;
    for item in ureq::tls::parse_pem(&pem).flatten() {
        match item {
            ureq::tls::PemItem::Certificate(cert) => certs.push(cert),
            ureq::tls::PemItem::PrivateKey(k) => key = key.or(Some(k)),
            _ => {}
        }
    }
    if certs.is_empty() {
        return Err(bad(
            cert_file,
            "no PEM certificate in the client certificate file",
        ));
    }
    let key = match key_file {
        Some(path) => {
            let pem = read_pem(path)?;
            ureq::tls::parse_pem(&pem)
                .flatten()
                .find_map(|item| match item {
                    ureq::tls::PemItem::PrivateKey(k) => Some(k),
                    _ => None,
                })
                .ok_or_else(|| bad(path, "no unencrypted PEM private key in the key file"))?
        }
        None => key.ok_or_else(|| {
            bad(
                cert_file,
                "no unencrypted PEM private key beside the certificate; name the key file",
            )
        })?,
    };
    // ureq panics on a key that is not the certificate's (a renewed certificate with the
    // old key is common): said here, naming the files, as curl and httpie refuse it.
    let mismatch = || {
        bad(
            key_file.unwrap_or(cert_file),
            "the private key is not the client certificate's",
        )
    };
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.der()).map_err(|_| mismatch())?;
    #[allow(deprecated)] // rustls 0.23.48 deprecates ring's provider: see tls::client_config
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key_der.clone_key())
        .map_err(|_| mismatch())?;
    let chain = certs
        .iter()
        .map(|c| rustls::pki_types::CertificateDer::from(c.der().to_vec()))
        .collect();
    match rustls::sign::CertifiedKey::new(chain, signing).keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(_)) => return Err(mismatch()),
        // rustls reads X.509 version 3 alone: a version 1 certificate (`openssl x509 -req`
        // without extensions) was said to be another key's.
        Err(e) => {
            log::debug!("{}: {e:?}", cert_file.display());
            return Err(bad(
                cert_file,
                "the client certificate cannot be read as X.509 version 3, the only one \
                 rustls takes (openssl x509 -req without extensions makes version 1)",
            ));
        }
    }
    Ok(ureq::tls::ClientCert::new_with_certs(&certs, key))
}

/// Bytes of a cookie's name and value past which it is refused, as curl and browsers refuse
/// it (RFC 6265 6.1 asks for at least 4096): kept, it went back with every request to its
/// host, which then answered 431 until the session file was edited by hand.
const MAX_COOKIE_BYTES: usize = 4096;

/// `Set-Cookie` fields of one response that are taken, as curl takes them; the rest are
/// dropped, so that one response cannot fill the jar.
const MAX_COOKIES_PER_RESPONSE: usize = 50;

fn not_oversized(cookie: &cookie_store::RawCookie<'static>) -> bool {
    let bytes = cookie.name().len() + cookie.value().len();
    if bytes > MAX_COOKIE_BYTES {
        log::warn!(
            "cookie {} refused: {bytes} bytes, over the {MAX_COOKIE_BYTES} a cookie may have",
            cookie.name()
        );
    }
    bytes <= MAX_COOKIE_BYTES
}

/// `cookie` as RFC 6265 (5.3, step 5) takes it: a `Domain` that is a public suffix (`com`,
/// `co.uk`, `github.io`) would reach every site under it, so it is refused, unless it names
/// the host itself, whose cookie it then is alone; as curl (libpsl) and browsers take it.
fn not_for_a_public_suffix(
    mut cookie: cookie_store::RawCookie<'static>,
    host: Option<&str>,
) -> Option<cookie_store::RawCookie<'static>> {
    let Some(domain) = cookie
        .domain()
        .map(|d| d.trim_start_matches('.').to_ascii_lowercase())
    else {
        return Some(cookie);
    };
    // An address matches only itself (RFC 6265 5.1.3): `Domain=::1` was refused as "a public
    // suffix", which sent users to public suffix lists.
    let bare = |name: &str| {
        name.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    };
    if bare(&domain).parse::<std::net::IpAddr>().is_ok() {
        if host.is_some_and(|host| bare(host).eq_ignore_ascii_case(&bare(&domain))) {
            cookie.unset_domain();
            return Some(cookie);
        }
        log::warn!(
            "cookie {} refused: its domain {domain} is an address, and not the host's",
            cookie.name()
        );
        return None;
    }
    // A domain the host is not in is refused by the jar, without a word, as curl refuses it:
    // `Domain=localhost` from 127.0.0.1 was told as "a public suffix".
    let in_domain = host.is_some_and(|host| {
        let host = host.to_ascii_lowercase();
        host == domain || host.ends_with(&format!(".{domain}"))
    });
    if !in_domain || psl::suffix_str(&domain) != Some(domain.as_str()) {
        return Some(cookie);
    }
    if host.is_some_and(|host| host.eq_ignore_ascii_case(&domain)) {
        cookie.unset_domain();
        return Some(cookie);
    }
    log::warn!(
        "cookie {} refused: its domain {domain} is a public suffix",
        cookie.name()
    );
    None
}

/// Whether `cookie`, sent by `url`, leaves what only secure origins may set alone, as curl
/// and browsers take it (RFC 6265bis 4.1.3 and 5.7): a plain-http answer (a network in the
/// way can forge one) may not set a `Secure` cookie, one named `__Secure-` or `__Host-`, nor
/// replace or shadow a `Secure` cookie of the same name, domain and path; `__Host-` also
/// needs `Secure`, `Path=/` and no `Domain` from anyone. Loopback counts as secure, as in
/// curl and in the jar, which sends `Secure` cookies there.
fn secure_origin_kept(
    cookie: &cookie_store::RawCookie<'static>,
    url: &url::Url,
    jar: &CookieStore,
) -> bool {
    let secure_origin = url.scheme() == "https"
        || match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
    let name = cookie.name();
    let secure = cookie.secure() == Some(true);
    let refused = if name.starts_with("__Host-") {
        (!secure || cookie.domain().is_some() || cookie.path() != Some("/"))
            .then_some("a __Host- cookie needs Secure, Path=/ and no Domain")
    } else if name.starts_with("__Secure-") && !secure {
        Some("a __Secure- cookie needs Secure")
    } else {
        None
    };
    let refused = refused.or_else(|| {
        if secure_origin {
            None
        } else if secure || name.starts_with("__Secure-") || name.starts_with("__Host-") {
            Some("only https may set a secure cookie")
        } else if shadows_a_secure_cookie(cookie, url, jar) {
            Some("only https may replace a secure cookie")
        } else {
            None
        }
    });
    if let Some(why) = refused {
        log::warn!("cookie {name} from {url} refused: {why}");
    }
    refused.is_none()
}

/// Whether the jar holds a `Secure` cookie named as `cookie` whose domain and `cookie`'s
/// domain-match one way or the other and whose path `cookie`'s path lies under.
fn shadows_a_secure_cookie(
    cookie: &cookie_store::RawCookie<'static>,
    url: &url::Url,
    jar: &CookieStore,
) -> bool {
    let Ok(new) = cookie_store::Cookie::try_from_raw_cookie(cookie, url) else {
        return false;
    };
    let domain = |d: &cookie_store::CookieDomain| {
        d.as_cow()
            .map(|d| d.to_ascii_lowercase())
            .unwrap_or_default()
    };
    let under = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_suffix(outer)
                .is_some_and(|rest| rest.ends_with('.') || outer.starts_with('.'))
    };
    let (new_domain, new_path) = (domain(&new.domain), String::from(&new.path));
    jar.iter_unexpired().any(|old| {
        let (old_domain, old_path) = (domain(&old.domain), String::from(&old.path));
        old.secure() == Some(true)
            && old.name() == new.name()
            && (under(&new_domain, &old_domain) || under(&old_domain, &new_domain))
            && new_path.strip_prefix(&old_path).is_some_and(|rest| {
                rest.is_empty() || old_path.ends_with('/') || rest.starts_with('/')
            })
    })
}

/// Whether the clock is past 9999-12-31T23:59:59Z, the last time the cookie jar's dates can
/// hold: there cookie_store panicked at every look at a cookie's expiry (`http --session` with
/// the clock in year 10000 exited 101). Every dated cookie has expired by then, so the jar
/// sends its session cookies only, takes no new ones, and is never asked for the time.
pub(crate) fn clock_past_cookie_dates() -> bool {
    const LAST: u64 = 253_402_300_799;
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .is_ok_and(|since| since.as_secs() > LAST)
}

/// The length a body file announces (`meta` is its metadata): a regular file's, 0 too when it
/// holds nothing (an empty file went chunked, and servers that need a length answered 411);
/// but files in /proc and /sys say 0 whatever they hold (`< /proc/version` went as an empty
/// body), so a 0 is believed only when reading the first byte (`first`) finds none. Anything
/// else goes as pipes go, chunked.
fn announced_length(
    meta: &std::fs::Metadata,
    first: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
) -> Option<u64> {
    if !meta.is_file() {
        return None;
    }
    if meta.len() > 0 {
        return Some(meta.len());
    }
    first(&mut [0]).is_ok_and(|n| n == 0).then_some(0)
}

/// [`announced_length`] of an open file, read where it stands left as it was.
fn file_length(file: &File) -> Option<u64> {
    use std::os::unix::fs::FileExt as _;
    let meta = file.metadata().ok()?;
    announced_length(&meta, |buf| file.read_at(buf, 0))
}

/// [`announced_length`] of the file at `path`, opened only when regular (a FIFO's opening
/// would wait for a writer).
fn path_length(path: &Path) -> Option<u64> {
    use std::os::unix::fs::FileExt as _;
    let meta = std::fs::metadata(path).ok()?;
    announced_length(&meta, |buf| File::open(path)?.read_at(buf, 0))
}

/// `timeout` as ureq's limit: one too long to add to an instant (`Duration::MAX`, the usual
/// "no limit") made every request panic in ureq ("overflow when adding duration to
/// instant"); it is no limit.
fn limit(timeout: Duration) -> Option<Duration> {
    const NO_LIMIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    (timeout < NO_LIMIT).then_some(timeout)
}

/// How long a host name's addresses are reused: curl's default DNS cache timeout.
const NAME_TTL: Duration = Duration::from_secs(60);

/// ureq resolves the host before every request, even on a pooled connection, and with a
/// timeout set it does so on a new thread each time (a fifth of a keep-alive GET's cost on
/// loopback, and for a name a query to the name server per request). An IP address needs no
/// resolving: answered at once. A name's addresses are kept for [`NAME_TTL`], as curl keeps
/// them; a failed lookup is not kept.
#[derive(Debug, Default)]
struct CachingResolver<R = ureq::unversioned::resolver::DefaultResolver> {
    inner: R,
    names: Mutex<
        std::collections::HashMap<
            (String, u16),
            (
                std::time::Instant,
                ureq::unversioned::resolver::ResolvedSocketAddrs,
            ),
        >,
    >,
}

impl<R: ureq::unversioned::resolver::Resolver> ureq::unversioned::resolver::Resolver
    for CachingResolver<R>
{
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let Some(authority) = uri.authority() else {
            return self.inner.resolve(uri, config, timeout);
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            let mut addrs = self.empty();
            addrs.push(std::net::SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        let key = (host.to_ascii_lowercase(), port);
        let names = || self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, addrs)) = names().get(&key)
            && at.elapsed() < NAME_TTL
        {
            return Ok(addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut names = names();
        // A client that visits many hosts keeps only the names still fresh.
        if names.len() >= 256 {
            names.retain(|_, (at, _)| at.elapsed() < NAME_TTL);
        }
        names.insert(key, (std::time::Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

/// ureq probes a connection (a non-blocking read, three syscalls) both when a response is done
/// and when the connection is taken from the pool again: on a keep-alive loop that is six of
/// eight syscalls per request. The probe when it is taken sees all the first one would (bytes
/// the server sent past the body are still unread, a close is still there to read), so the
/// first is answered without I/O.
#[derive(Debug)]
struct ProbeWhenTaken;

impl<In: ureq::unversioned::transport::Transport> ureq::unversioned::transport::Connector<In>
    for ProbeWhenTaken
{
    type Out = ProbeWhenTakenTransport;

    fn connect(
        &self,
        _: &ureq::unversioned::transport::ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| ProbeWhenTakenTransport {
            inner: inner.boxed(),
            used: false,
            write_refused: false,
            carried: None,
        }))
    }
}

/// Notes in [`SENDING`] that the connection (TCP, or a proxy's tunnel) is up, before TLS:
/// ureq's connect timer runs through the TLS handshake too, and a server that takes the
/// connection but never answers the ClientHello is no unreachable host.
#[derive(Debug)]
struct NoteConnected;

impl<In: ureq::unversioned::transport::Transport> ureq::unversioned::transport::Connector<In>
    for NoteConnected
{
    type Out = In;

    fn connect(
        &self,
        _: &ureq::unversioned::transport::ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if chained.is_some() {
            SENDING.with(|s| s.connected.set(true));
        }
        Ok(chained)
    }
}

/// What the transport saw of the request being sent on this thread, read by the body source
/// and by [`Request::send`]. ureq sends a request, body and all, on the caller's thread, and
/// the transport (one per connection, pooled) and the body (one per request) meet nowhere
/// else.
struct Sending {
    /// The number of the request, unique in the process ([`REQUESTS`]).
    request: Cell<u64>,
    /// The server stopped taking the request (see [`ProbeWhenTakenTransport`]).
    refused: Cell<bool>,
    /// Bytes of the request (head and body) the connection took.
    sent: Cell<u64>,
    /// The connection carried an earlier request: kept alive, and taken from the pool.
    reused: Cell<bool>,
    /// A byte of the answer came.
    answered: Cell<bool>,
    /// The first bytes of the answer (up to an HTTP/2 frame header's 9) and how many came,
    /// to name what a server that does not speak HTTP/1.x speaks.
    first: Cell<([u8; 9], usize)>,
    /// A new connection was made for the request, up to before TLS ([`NoteConnected`]).
    connected: Cell<bool>,
}

/// Requests sent so far, by every thread: numbers them for [`Sending::request`].
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    static SENDING: Sending = const {
        Sending {
            request: Cell::new(0),
            refused: Cell::new(false),
            sent: Cell::new(0),
            reused: Cell::new(false),
            answered: Cell::new(false),
            first: Cell::new(([0; 9], 0)),
            connected: Cell::new(false),
        }
    };
}

impl Sending {
    /// Starts the record of a new request.
    fn start() {
        let request = REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        SENDING.with(|s| {
            s.request.set(request);
            s.refused.set(false);
            s.sent.set(0);
            s.reused.set(false);
            s.answered.set(false);
            s.first.set(([0; 9], 0));
            s.connected.set(false);
        });
    }

    /// Whether the server stopped taking the request being sent.
    fn refused() -> bool {
        SENDING.with(|s| s.refused.get())
    }

    /// Whether the request went on a kept-alive connection that closed before any answer
    /// came: one the server had closed as it was taken, a race no probe before the reuse
    /// can see.
    fn on_a_stale_connection() -> bool {
        SENDING.with(|s| s.reused.get() && !s.answered.get())
    }
}

/// A transport whose first `is_open` after I/O (a response put back in the pool) is `true`.
#[derive(Debug)]
struct ProbeWhenTakenTransport {
    inner: Box<dyn ureq::unversioned::transport::Transport>,
    /// I/O happened since the last `is_open`.
    used: bool,
    /// The server stopped taking the request: it answered early and closed (RFC 9112 9.6:
    /// a 401 or 413 before the upload's end). The rest of the request is dropped so that
    /// the answer already sent is read, as curl and httpie read it, not lost behind EPIPE.
    write_refused: bool,
    /// The request ([`Sending::request`]) it carried last.
    carried: Option<u64>,
}

impl ProbeWhenTakenTransport {
    /// Notes in [`SENDING`] that a byte of the answer came, after a read.
    fn note_answer(&mut self, read: &Result<bool, ureq::Error>) {
        let input = self.inner.buffers().input();
        if read.is_ok() && !input.is_empty() {
            SENDING.with(|s| {
                if !s.answered.replace(true) {
                    let mut first = [0; 9];
                    let n = input.len().min(first.len());
                    first[..n].copy_from_slice(&input[..n]);
                    s.first.set((first, n));
                }
            });
        }
    }
}

impl ureq::unversioned::transport::Transport for ProbeWhenTakenTransport {
    fn buffers(&mut self) -> &mut dyn ureq::unversioned::transport::Buffers {
        self.inner.buffers()
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<(), ureq::Error> {
        self.used = true;
        SENDING.with(|s| {
            let request = s.request.get();
            if self.carried.is_some_and(|carried| carried != request) {
                s.reused.set(true);
            }
            self.carried = Some(request);
        });
        if self.write_refused {
            return Ok(());
        }
        match self.inner.transmit_output(amount, timeout) {
            Err(ureq::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                log::debug!("the server stopped reading the request ({e}); reading its answer");
                self.write_refused = true;
                // The body source stops on it ([`Declared`]): ureq reads the answer only once
                // the body has ended.
                SENDING.with(|s| s.refused.set(true));
                Ok(())
            }
            Ok(()) => {
                SENDING.with(|s| s.sent.set(s.sent.get() + amount as u64));
                Ok(())
            }
            other => other,
        }
    }

    fn maybe_await_input(
        &mut self,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<bool, ureq::Error> {
        self.used = true;
        let read = reset_is_no_end(self.inner.maybe_await_input(timeout));
        self.note_answer(&read);
        read
    }

    fn await_input(
        &mut self,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<bool, ureq::Error> {
        self.used = true;
        let read = reset_is_no_end(self.inner.await_input(timeout));
        self.note_answer(&read);
        read
    }

    fn is_open(&mut self) -> bool {
        if self.write_refused {
            return false;
        }
        if std::mem::take(&mut self.used) {
            return true;
        }
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// A reset read as an error of another kind: ureq takes a reset (or an abort) while it reads a
/// body that ends where the connection closes for the body's end, so a download a server or a
/// proxy aborted was whole, exit 0, where curl reports error 56 and httpie fails.
fn reset_is_no_end(read: Result<bool, ureq::Error>) -> Result<bool, ureq::Error> {
    match read {
        Err(ureq::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            Err(ureq::Error::Io(std::io::Error::other(e)))
        }
        other => other,
    }
}

/// Takes `user:password@` out of `url` as Basic credentials, percent-decoded as curl reads
/// them (ureq would send `s%40cret` for `s@cret`); kept in the URL they would also be shown
/// wherever the URL is. [`Request::auth`] replaces them.
fn credentials_in(url: &mut Url) -> Option<Auth> {
    let (user, password) = decoded_credentials(url)?;
    // Cannot fail for http(s) URLs, which have a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(Auth::Basic {
        user,
        password: password.unwrap_or_default(),
    })
}

/// The user and password `url` carries, percent-decoded; `None` without either.
fn decoded_credentials(url: &Url) -> Option<(String, Option<String>)> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((decode(url.username()), url.password().map(decode)))
}

/// The user and password a URL carries (`http://ann:s%40cret@host/`), percent-decoded as
/// curl reads them; the password is `None` when the URL has none (`http://ann@host/`), empty
/// for `http://ann:@host/`. A
/// request sends them as Basic credentials unless given others; a program that asks for a
/// missing password or takes another scheme (Digest) reads them here.
#[must_use]
pub fn url_credentials(url: &str) -> Option<(String, Option<String>)> {
    let (user, password) = decoded_credentials(&parse_url(url).ok()?)?;
    // `user:@host` gives an empty password, as curl and httpie read it; the URL parser
    // keeps no empty password to tell it from `user@host`.
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
    let given = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    Some((user, password.or_else(|| given.then(String::new))))
}

/// httpie's shorthand for a URL typed on a command line: `:8080/x` is
/// `http://localhost:8080/x`, `example.com/x` is `http://example.com/x`; a word that starts
/// with a scheme (`https://...`) is returned as it is. [`Client`] takes absolute URLs only,
/// so that a program's relative `/api/items` is refused, not sent to a host named `api`.
#[must_use]
pub fn url_shorthand(word: &str) -> String {
    if has_scheme(word) {
        word.to_owned()
    } else if let Some(rest) = word.strip_prefix(':') {
        format!("http://localhost:{rest}")
    } else {
        format!("http://{word}")
    }
}

/// Parses an absolute http(s) URL.
pub(crate) fn parse_url(url: &str) -> Result<Url, Error> {
    let bad = |reason: String| Error::BadUrl {
        url: crate::error::redacted(url),
        reason,
    };
    // The URL standard drops them without a word: `/a<LF>b` was fetched as `/ab`.
    if url.contains(['\t', '\r', '\n']) {
        return Err(bad("a tab or line break in it".into()));
    }
    // `Url` would take `localhost:8080/x` as a URL of the scheme `localhost`.
    if !has_scheme(url) {
        return Err(bad(
            "not an absolute URL: it needs http:// or https:// and a host \
             (url_shorthand makes one of httpie's `:8080/x` or `host/x`)"
                .into(),
        ));
    }
    let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!("unsupported scheme {}", parsed.scheme())));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    Ok(parsed)
}

/// Whether `url` starts with `SCHEME://`, as httpie decides it: a `://` further on, in a query
/// such as `?next=http://a`, does not make `host/path?...` a URL with a scheme.
fn has_scheme(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// The path of `url` as written (after the host, before `?` or `#`), when it has one.
fn path_as_written(url: &str) -> Option<String> {
    let after_scheme = match url.split_once("://") {
        Some((_, rest)) if has_scheme(url) => rest,
        _ => url,
    };
    let path = &after_scheme[after_scheme.find(['/', '?', '#'])?..];
    let end = path.find(['?', '#']).unwrap_or(path.len());
    Some(path[..end].to_owned()).filter(|p| !p.is_empty())
}

/// A request being built; [`send`](Request::send) it.
#[derive(Clone)]
pub struct Request {
    client: Client,
    method: http::Method,
    url: Url,
    /// The path as written, sent in place of `url`'s until a redirect
    /// ([`ClientConfig::path_as_is`]).
    raw_path: Option<String>,
    /// Send the body chunked ([`Request::chunked`]).
    chunked: bool,
    headers: Vec<(String, String)>,
    /// How many of `headers`, first, are a session's defaults, which one given for this
    /// request replaces.
    defaults: usize,
    /// Automatic headers (`User-Agent`, `Accept`, `Accept-Encoding`) not to send.
    removed: Vec<String>,
    auth: Option<Auth>,
    /// Where credentials for the host a redirect leads to come from ([`Request::netrc`]).
    netrc: Option<Netrc>,
    /// The netrc's credentials go to another origin as Digest: the caller asked for Digest
    /// ([`Request::auth`]), which keeps the password off the wire there too.
    netrc_digest: bool,
    body: Body,
    /// What was read of a body file that cannot be read twice (a pipe), to send it again.
    replay: Arc<Mutex<Replay>>,
    /// Retries already used on this request before it is sent (a download retried for a body
    /// cut off): `send` goes on counting from there.
    pub(crate) retried: u32,
    /// When the whole exchange must be over ([`ClientConfig::timeout`] after `send` began),
    /// set from the second call to the server on (a retry, a redirect, a Digest answer): each
    /// call gets what is left, so retries and their waits count too, as curl's `--max-time`.
    deadline: Option<std::time::Instant>,
}

/// Header values and the body are left out: they may hold tokens.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &crate::error::redacted(self.url.as_str()))
            .field("headers", &names)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// The bytes a body from a pipe gave so far, kept (up to [`REPLAY_LIMIT`]) for a second
/// sending after a 307/308 redirect, a retry or a Digest challenge, as httpie sends such a
/// body again; opened again, the pipe would give only what is left, an empty body.
#[derive(Debug, Default)]
struct Replay {
    data: Vec<u8>,
    /// More than [`REPLAY_LIMIT`] came: what was kept is dropped and no second sending is
    /// possible.
    overflowed: bool,
    /// The body was sent once already.
    started: bool,
    /// The pipe read, kept for the next sending: a named FIFO opened again waited for a new
    /// writer for ever (each 307, retry and Digest challenge hung).
    file: Option<File>,
}

/// The most bytes of a piped body kept to send it again.
const REPLAY_LIMIT: usize = 16 << 20;

/// A pipe read as a body, adding what it gives to the [`Replay`].
struct Recorded {
    file: File,
    replay: Arc<Mutex<Replay>>,
}

impl std::io::Read for Recorded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        let mut replay = self.replay.lock().unwrap_or_else(PoisonError::into_inner);
        if !replay.overflowed {
            if replay.data.len() + n > REPLAY_LIMIT {
                replay.overflowed = true;
                replay.data = Vec::new();
            } else {
                replay.data.extend_from_slice(&buf[..n]);
            }
        }
        Ok(n)
    }
}

/// The request as it will go on the wire, for printing (`--offline`, `--print=HB`). Its
/// `Debug` leaves out credentials, cookies and the body; its fields hold them.
#[derive(Clone)]
#[non_exhaustive]
pub struct Preview {
    /// The method.
    pub method: String,
    /// The URL with its query.
    pub url: String,
    /// Headers in order (cookies and credentials included).
    pub headers: Vec<(String, String)>,
    /// The body, when it is in memory.
    pub body: Option<Vec<u8>>,
    /// The file the body is streamed from, when it is one.
    pub body_file: Option<PathBuf>,
}

impl std::fmt::Debug for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preview")
            .field("method", &self.method)
            .field("url", &crate::error::redacted(&self.url))
            .field("headers", &crate::error::redacted_headers(&self.headers))
            .field("body_file", &self.body_file)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// Adds a query parameter (percent-encoded as needed).
    #[must_use]
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.url.query_pairs_mut().append_pair(name, value);
        self
    }

    /// Adds a header (repeat for several values). One of the same name from a
    /// [`Session`](crate::Session)'s defaults is replaced, as requests merges a request's
    /// headers over its session's: both went, the session's first, and servers read it.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.drop_named(name, true);
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Drops the headers named `name` (only a session's defaults, with `only_defaults`).
    fn drop_named(&mut self, name: &str, only_defaults: bool) {
        let defaults = self.defaults;
        let (mut i, mut defaults_gone) = (0, 0);
        self.headers.retain(|(n, _)| {
            let default = i < defaults;
            i += 1;
            let gone = (default || !only_defaults) && n.eq_ignore_ascii_case(name);
            defaults_gone += usize::from(gone && default);
            !gone
        });
        self.defaults -= defaults_gone;
    }

    /// Adds a session's default header, which one given for the request replaces.
    pub(crate) fn default_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .insert(self.defaults, (name.to_owned(), value.to_owned()));
        self.defaults += 1;
        self
    }

    /// Drops the headers named `name` added so far (a session's), for one given anew.
    pub(crate) fn without_header(mut self, name: &str) -> Self {
        self.drop_named(name, false);
        self
    }

    /// Removes every header named `name` added so far, and does not send it even when it
    /// is one ureq adds by itself (`User-Agent`, `Accept`, `Accept-Encoding`).
    #[must_use]
    pub fn remove_header(mut self, name: &str) -> Self {
        self.drop_named(name, false);
        self.removed.push(name.to_ascii_lowercase());
        self
    }

    /// Sends credentials; with [`Auth::Digest`], the netrc's for another origin a redirect
    /// leads to go as Digest too ([`Request::netrc`]).
    #[must_use]
    pub fn auth(mut self, auth: Auth) -> Self {
        self.netrc_digest = matches!(auth, Auth::Digest { .. });
        self.auth = Some(auth);
        self
    }

    /// Looks up, in `netrc`, the credentials for each other origin a redirect leads to (sent
    /// as Basic, or as Digest when the request's were), as curl `-n` and requests do; without
    /// it no credentials follow a redirect to another origin. The first URL's credentials are
    /// the caller's to give ([`Request::auth`]), so that it can ask for a password the entry
    /// leaves out.
    #[must_use]
    pub fn netrc(mut self, netrc: Netrc) -> Self {
        self.netrc = Some(netrc);
        self
    }

    /// Basic authentication.
    #[must_use]
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        self.auth(Auth::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// Bearer token authentication.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.auth(Auth::Bearer(token.to_owned()))
    }

    /// A JSON body (`Content-Type: application/json`).
    ///
    /// # Errors
    /// [`Error::BadRequest`] when `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, Error> {
        let data = serde_json::to_vec(value).map_err(|e| Error::BadRequest(e.to_string()))?;
        Ok(self.body(data, "application/json"))
    }

    /// An `application/x-www-form-urlencoded` body.
    #[must_use]
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, fields: &[(K, V)]) -> Self {
        let mut encoder = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            encoder.append_pair(k.as_ref(), v.as_ref());
        }
        self.body(
            encoder.finish().into_bytes(),
            "application/x-www-form-urlencoded",
        )
    }

    /// A `multipart/form-data` body; files are streamed from disk (read whole only when a
    /// [`preview`](Self::preview) shows the body, up to 16 MiB of them).
    #[must_use]
    pub fn multipart(mut self, mut parts: Vec<Part>) -> Self {
        for part in &mut parts {
            let (Part::Text { name, .. } | Part::File { name, .. }) = part;
            *name = quotable(name);
        }
        self.body = Body::Multipart {
            replays: parts.iter().map(|_| Arc::default()).collect(),
            parts,
            shown: OnceLock::new(),
        };
        self
    }

    /// Sends the body with `Transfer-Encoding: chunked`, its length not announced (httpie's
    /// `--chunked`): for servers that should be tried with a streamed upload.
    #[must_use]
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    /// Raw bytes with a content type.
    #[must_use]
    pub fn body(mut self, data: impl Into<Vec<u8>>, content_type: &str) -> Self {
        self.body = Body::Bytes {
            data: data.into(),
            content_type: Some(content_type.to_owned()),
        };
        self
    }

    /// Raw bytes, with no content type unless a header gives one.
    #[must_use]
    pub fn raw(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Bytes {
            data: data.into(),
            content_type: None,
        };
        self
    }

    /// A file streamed from disk as the body, with a `Content-Type` guessed from its
    /// extension (`.json`, `.xml`, ...) unless a header gives one, as httpie does.
    #[must_use]
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.body = Body::File(path.into());
        self
    }

    /// An open file as the body, read from where it stands: stdin (`< data.json`, a pipe, a
    /// socket), which opened again by name would start over from its first byte, or fail for a
    /// socket. A regular file from its start goes with its length; anything else chunked, the
    /// bytes kept (up to 16 MiB) to send again after a 307/308 redirect or a retry.
    #[must_use]
    pub fn open_body(mut self, mut file: File) -> Self {
        let start = file_length(&file).and_then(|_| std::io::Seek::stream_position(&mut file).ok());
        self.body = Body::Open {
            file: Arc::new(file),
            start,
        };
        self
    }

    /// The type of a body file by its extension, when no header gives one.
    fn guessed_type(&self, path: &Path) -> Option<&'static str> {
        if !self.body_typed_by_us() {
            return None;
        }
        mime_guess::from_path(path).first_raw()
    }

    /// The request URL so far.
    #[must_use]
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The request as it would be sent now.
    #[must_use]
    pub fn preview(&self) -> Preview {
        // A Host header of the user's goes on the wire instead of ureq's.
        let mut headers = Vec::new();
        if !self.has_header("host") {
            headers.push(("Host".to_owned(), host_header(&self.url)));
        }
        headers.extend(self.automatic_headers());
        let authorization = self.auth.as_ref().and_then(Auth::header_value);
        headers.extend(self.wire_headers(&self.url, authorization.as_deref()));
        let mut body_file = None;
        // How the body's end is told: a Content-Length or Transfer-Encoding of the user's goes
        // instead (whatever it says, to test servers), as on the wire.
        let mut framing = Vec::new();
        let body = match &self.body {
            Body::Bytes { data, content_type } => {
                if let Some(ct) = content_type
                    && self.body_typed_by_us()
                {
                    headers.push(("Content-Type".into(), ct.clone()));
                }
                framing.push(("Content-Length".into(), data.len().to_string()));
                Some(data.clone())
            }
            Body::File(path) => {
                if let Some(ct) = self.guessed_type(path) {
                    headers.push(("Content-Type".into(), ct.into()));
                }
                match path_length(path) {
                    Some(length) => {
                        framing.push(("Content-Length".into(), length.to_string()));
                    }
                    _ => framing.push(("Transfer-Encoding".into(), "chunked".into())),
                }
                body_file = Some(path.clone());
                None
            }
            Body::Open { file, start } => {
                // As it will be sent: a regular file from its start with its length.
                match (start, file.metadata()) {
                    (Some(0), Ok(meta)) => {
                        framing.push(("Content-Length".into(), meta.len().to_string()));
                    }
                    _ => framing.push(("Transfer-Encoding".into(), "chunked".into())),
                }
                None
            }
            Body::Multipart {
                parts,
                replays,
                shown,
            } => {
                let built = shown.get().cloned().or_else(|| {
                    // Larger files stay streamed from disk, and unshown.
                    let files: u64 = parts
                        .iter()
                        .filter_map(|part| match part {
                            Part::File { path, .. } => std::fs::metadata(path).ok(),
                            Part::Text { .. } => None,
                        })
                        .map(|meta| meta.len())
                        .sum();
                    if files > SHOWN_FORM_LIMIT {
                        return None;
                    }
                    let mut form = form(parts, replays, &self.url).ok()?;
                    let content_type = form_type(&form);
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut form, &mut bytes).ok()?;
                    Some(shown.get_or_init(|| (content_type, bytes)).clone())
                });
                match built {
                    Some((content_type, bytes)) => {
                        headers.push(("Content-Type".into(), content_type));
                        framing.push(("Content-Length".into(), bytes.len().to_string()));
                        Some(bytes)
                    }
                    // Too large, or a file that cannot be read (sending says which).
                    None => {
                        headers.push(("Content-Type".into(), "multipart/form-data".into()));
                        None
                    }
                }
            }
            Body::Empty => None,
        };
        if self.chunked && !framing.is_empty() {
            framing = vec![("Transfer-Encoding".into(), "chunked".into())];
        }
        if !self.has_header("content-length") && !self.has_header("transfer-encoding") {
            headers.extend(framing);
        }
        Preview {
            method: self.method.to_string(),
            url: self.wire_url().into_owned(),
            headers,
            body,
            body_file,
        }
    }

    /// The URL as sent: no fragment (it never leaves the client) and, with
    /// [`ClientConfig::path_as_is`], its path as written.
    fn wire_url(&self) -> Cow<'_, str> {
        let Some(path) = &self.raw_path else {
            return Cow::Borrowed(&self.url[..url::Position::AfterQuery]);
        };
        let mut url = self.url[..url::Position::BeforePath].to_owned();
        url.push_str(path);
        if let Some(query) = self.url.query() {
            url.push('?');
            url.push_str(query);
        }
        Cow::Owned(url)
    }

    /// The headers ureq adds unless the request sets or removes them, as they go on the wire.
    fn automatic_headers(&self) -> Vec<(String, String)> {
        let user_agent = self.client.config().user_agent.clone();
        let accept_encoding = ACCEPT_ENCODING.to_owned();
        [
            ("User-Agent", user_agent),
            ("Accept-Encoding", accept_encoding),
            ("Accept", "*/*".to_owned()),
        ]
        .into_iter()
        .filter(|(name, value)| {
            !value.is_empty()
                && !self.has_header(name)
                && !self.removed.iter().any(|r| r.eq_ignore_ascii_case(name))
        })
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// Whether the body's `Content-Type` is ours to give: not when the caller gave one, or
    /// removed it (httpie's `Content-Type:` item sends none).
    fn body_typed_by_us(&self) -> bool {
        !self.has_header("content-type") && !self.removed.iter().any(|r| r == "content-type")
    }

    /// The `Content-Length` the user gave, checked against a body whose length is known: one
    /// longer than the body left ureq waiting for ever for the rest (at full CPU, no timeout
    /// applying), a shorter one sent part of it and read the rest as the next request.
    fn declared_length(&self) -> Result<Option<u64>, Error> {
        let Some((_, value)) = self
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        else {
            return Ok(None);
        };
        let digits = value.trim();
        let declared: u64 = digits
            .parse()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                Error::BadRequest(format!("Content-Length: {value} is not a number of bytes"))
            })?;
        let known = match &self.body {
            Body::Empty => Some(0),
            Body::Bytes { data, .. } => Some(data.len() as u64),
            Body::File(path) => path_length(path),
            Body::Open {
                file,
                start: Some(0),
            } => file_length(file),
            Body::Open { .. } => None,
            Body::Multipart { shown, .. } => {
                // Built and kept by a preview, when small enough to be.
                if shown.get().is_none() {
                    let _ = self.preview();
                }
                shown.get().map(|(_, data)| data.len() as u64)
            }
        };
        let refused = |what: String| {
            Err(Error::BadRequest(format!(
                "Content-Length: {declared} given for {what}; leave the header out and the \
                 body's length is sent"
            )))
        };
        match known {
            _ if self.chunked => Err(Error::BadRequest(format!(
                "Content-Length: {declared} given for a chunked body, which announces no length; \
                 leave one of them out"
            ))),
            Some(known) if known != declared => refused(format!("a body of {known} bytes")),
            // A form streamed from its files: ureq would wait for ever for what it lacks.
            None if matches!(self.body, Body::Multipart { .. }) => {
                refused("a multipart body whose length is not known beforehand".into())
            }
            _ => Ok(Some(declared)),
        }
    }

    /// Whether the caller chose header `name`: gave it, or removed it.
    pub(crate) fn chose_header(&self, name: &str) -> bool {
        self.has_header(name) || self.removed.iter().any(|r| r.eq_ignore_ascii_case(name))
    }

    /// Whether a header named `name` has been added.
    pub(crate) fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Our headers for `url`: the user's, then cookies from the jar and credentials.
    fn wire_headers(&self, url: &Url, authorization: Option<&str>) -> Vec<(String, String)> {
        let mut headers = self.headers.clone();
        // A name the caller's Cookie field gives is not sent again with the jar's value
        // (`x=1; x=2`: a server reading the first took the caller's, one reading the last the
        // jar's).
        let given: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';').map(cookie_name))
            .collect();
        let cookies = self.client.with_jar(|jar| {
            let mut cookies = if clock_past_cookie_dates() {
                jar.iter_any()
                    .filter(|c| c.expires == CookieExpiration::SessionEnd && c.matches(url))
                    .collect()
            } else {
                jar.matches(url)
            };
            // RFC 6265 5.4: longer paths first; then by name, so that every request sends
            // them in one order (the jar's is a hash map's).
            cookies.sort_by(|a, b| {
                b.path
                    .as_ref()
                    .len()
                    .cmp(&a.path.as_ref().len())
                    .then_with(|| a.name().cmp(b.name()))
            });
            cookies
                .iter()
                .filter(|c| !given.contains(&c.name()))
                .map(|c| format!("{}={}", c.name(), c.value()))
                .collect::<Vec<_>>()
                .join("; ")
        });
        // One Cookie field, the caller's cookies first (RFC 6265 5.4): a server that keeps
        // one of two fields would lose either the caller's or the jar's.
        match headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        {
            _ if cookies.is_empty() => {}
            Some((_, given)) => {
                given.push_str("; ");
                given.push_str(&cookies);
            }
            None => headers.push(("Cookie".into(), cookies)),
        }
        if let Some(value) = authorization
            && !self.has_header("authorization")
        {
            headers.push(("Authorization".into(), value.to_owned()));
        }
        headers
    }

    /// What [`send`](Self::send) refuses before anything goes out, for a caller showing the
    /// request unsent (httpie's `--offline`): a header that cannot go on the wire, a bearer
    /// token that cannot, a body file or file part that is a directory.
    ///
    /// # Errors
    /// [`Error::BadRequest`] or [`Error::File`], naming the header or the file.
    pub fn check(&self) -> Result<(), Error> {
        for (name, value) in &self.headers {
            check_header(name, value)?;
            // ureq sends a Host only as ASCII (its refusal came after connecting, as the
            // server's fault); a caller's Authorization stays ASCII too, as it was: only a
            // Digest user name goes as UTF-8 (vendor/ureq-proto).
            if !value.is_ascii() && ["host", "authorization"].contains(&&*name.to_ascii_lowercase())
            {
                let hint = url::Host::parse(value)
                    .ok()
                    .map(|host| format!(" (in ASCII: {host})"))
                    .unwrap_or_default();
                return Err(Error::BadRequest(format!(
                    "bad header {name:?}: it cannot carry characters outside ASCII{hint}"
                )));
            }
        }
        if let Some(Auth::Bearer(token)) = &self.auth {
            // ureq sends an Authorization only as ASCII, and its refusal read as the
            // server's fault; RFC 6750's tokens are ASCII.
            if !token.is_ascii() {
                return Err(Error::BadRequest(
                    "the bearer token has characters outside ASCII, which a token cannot hold"
                        .into(),
                ));
            }
            check_header("Authorization", token)?;
        }
        match &self.body {
            Body::Multipart { parts, .. } => {
                for part in parts {
                    if let Part::File { path, .. } = part {
                        upload_file(path)?;
                    }
                }
            }
            Body::File(path) => upload_file(path)?,
            _ => {}
        }
        Ok(())
    }

    /// Sends the request, following redirects and retrying as configured.
    ///
    /// # Errors
    /// Any [`Error`] but [`Error::Status`]: a 4xx or 5xx is a normal [`Response`] until
    /// [`Response::error_for_status`].
    pub fn send(mut self) -> Result<Response, Error> {
        self.check()?;
        // Its own handle (an Arc's): the request is changed as it goes.
        let client = self.client.clone();
        let config = client.config();
        let retry = config.retry.clone();
        // Asked for retries it does not get, by design (the server may have acted on it, as
        // urllib3 holds): said once, not left for the caller to find out at the first failure.
        if retry.retries > 0 && !self.idempotent() {
            log::warn!(
                "{} is not idempotent: not retried ({})",
                self.method,
                self.url
            );
        }
        let max_redirects = config.max_redirects;
        let limit = config.timeout.and_then(limit);
        // One already running (a download sent again) goes on to its own end.
        let deadline = self
            .deadline
            .or_else(|| limit.map(|limit| std::time::Instant::now() + limit));
        // The request becomes each hop's in turn; the first URL is kept for the error that
        // says too many redirects followed it.
        let mut first_url = None;
        let mut history = Vec::new();
        // The request that gets each response after a redirect, as sent.
        let mut sent = None;
        let mut attempt = self.retried;
        // Our answer to the server's Digest challenge for the current URL, once it gave one.
        let mut digest: Option<String> = None;
        // The current URL's Digest probe (the request without its body) was answered with
        // no challenge: the request goes whole, without credentials, as curl sends it then.
        let mut unchallenged = false;
        // A `stale=true` 401 to our answer was answered with its new nonce (once per URL).
        let mut renewed = false;
        // Sendings again on a new connection for one the server had closed under us.
        let mut stale = 0;
        loop {
            let authorization = match &self.auth {
                Some(Auth::Digest { .. }) => digest.clone(),
                Some(auth) => auth.header_value(),
                None => None,
            };
            // The first round of a Digest exchange goes without the body, as curl sends it
            // (`Content-Length: 0`): sent with it, the body went twice (a long upload past the
            // nonce's life got a stale 401), and a pipe past what is kept could not go at all.
            let probe = digest.is_none()
                && !unchallenged
                && matches!(self.auth, Some(Auth::Digest { .. }))
                && !matches!(self.body, Body::Empty);
            let outcome = if probe {
                self.send_without_body()
            } else {
                self.send_once(authorization.as_deref())
            };
            self.deadline = deadline;
            // A kept-alive connection the server closed as we took it (the close racing the
            // next request, a redirect's most often): the request is sent again on a new
            // one, without a word, as curl and Go's net/http send it again; idempotent
            // methods only (curl sends any), since the server may have acted on it. ureq
            // keeps up to 3 idle connections per host, each maybe stale.
            if let Err(e @ (Error::Io { .. } | Error::Connect { .. })) = &outcome
                && stale < 3
                && self.idempotent()
                && Sending::on_a_stale_connection()
            {
                stale += 1;
                log::debug!("{e}, on a kept-alive connection: sent again on a new one");
                continue;
            }
            // Of this hop's method: a POST a 303 made a GET is retried as a GET, as urllib3
            // and curl retry it.
            let retries_left = self.idempotent() && attempt < retry.retries;
            let response = match outcome {
                Ok(response) => response,
                Err(e) if retries_left && e.is_transient() && self.kept_for_a_retry() => {
                    attempt += 1;
                    let wait = backoff(&retry, attempt, None);
                    self.time_left_for(wait, &e.to_string())?;
                    // Said as curl says it: a person waiting should know why.
                    log::warn!(
                        "{e}; retry {attempt} of {} in {:.1} s",
                        retry.retries,
                        wait.as_secs_f64()
                    );
                    std::thread::sleep(wait);
                    continue;
                }
                Err(e) => return Err(e),
            };
            // An answer, judged once the retries are decided: a server that switches
            // protocols unasked does so again (curl does not retry it either).
            let response = self.switched(response)?;
            let set_cookie = response.headers().contains_key(http::header::SET_COOKIE);
            if set_cookie && clock_past_cookie_dates() {
                log::warn!(
                    "the clock is past 9999: cookies from {} not stored",
                    self.url
                );
            } else if set_cookie {
                self.client.with_jar(|jar| {
                    let cookies = response
                        .headers()
                        .get_all(http::header::SET_COOKIE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .filter_map(crate::cookie_date::set_cookie)
                        .filter(not_oversized)
                        .take(MAX_COOKIES_PER_RESPONSE)
                        .filter_map(|c| not_for_a_public_suffix(c, self.url.host_str()))
                        .filter(|c| secure_origin_kept(c, &self.url, jar))
                        .collect::<Vec<_>>();
                    jar.store_response_cookies(cookies.into_iter(), &self.url);
                });
            }
            let status = response.status().as_u16();
            let offered = || {
                crate::digest::challenges(
                    response
                        .headers()
                        .get_all(http::header::WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok()),
                )
            };
            match &self.auth {
                Some(Auth::Digest { user, password }) if status == 401 => {
                    let offered = offered();
                    // A nonce past its life is answered again with the new one, without asking
                    // for the password again (RFC 7616 3.3), as curl does; once, so that a
                    // server calling every nonce stale is not asked for ever.
                    let renew = digest.is_some()
                        && !renewed
                        && offered.iter().any(crate::digest::Challenge::stale);
                    if digest.is_none() || renew {
                        // The request-target as sent, `--path-as-is` dot segments and all: a
                        // server checks `uri` against it (RFC 7616 3.4.6).
                        let wire = self.wire_url();
                        let uri = &wire[self.url[..url::Position::BeforePath].len()..];
                        let cnonce = format!("{:016x}", rand::rng().random::<u64>());
                        // The first one we can answer, as RFC 7616 3.7 asks.
                        let answer = offered.iter().find_map(|c| {
                            crate::digest::authorization(
                                c,
                                user,
                                password,
                                self.method.as_str(),
                                uri,
                                &cnonce,
                            )
                        });
                        match answer {
                            Some(answer) if !renew || self.kept_for_a_retry() => {
                                renewed |= renew;
                                digest = Some(answer);
                                continue;
                            }
                            None if !renew => unanswered(&self.url, "Digest", &offered),
                            _ => {}
                        }
                    }
                }
                // The server took the probe without asking for credentials: the request goes
                // whole, as curl sends it after such a probe. A redirect is followed with the
                // body kept, and probed again there.
                Some(Auth::Digest { .. })
                    if probe && !matches!(status, 301 | 302 | 303 | 307 | 308) =>
                {
                    unchallenged = true;
                    continue;
                }
                Some(Auth::Basic { .. }) if status == 401 => {
                    let offered = offered();
                    if !offered.iter().any(|c| c.is("basic")) {
                        unanswered(&self.url, "Basic", &offered);
                    }
                }
                _ => {}
            }
            if retries_left && TRANSIENT_STATUS.contains(&status) && self.kept_for_a_retry() {
                attempt += 1;
                let asked = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after);
                let wait = backoff(&retry, attempt, asked);
                self.time_left_for(wait, &format!("answered {status}"))?;
                log::warn!(
                    "{} answered {status}; retry {attempt} of {} in {:.1} s",
                    self.url,
                    retry.retries,
                    wait.as_secs_f64()
                );
                std::thread::sleep(wait);
                continue;
            }
            // An empty one is no redirect (curl and requests hand the 3xx back): it was
            // followed to the same URL until the limit.
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .map(|v| location_text(v.as_bytes()))
                .filter(|l| !l.trim().is_empty());
            if max_redirects > 0
                && matches!(status, 301 | 302 | 303 | 307 | 308)
                && let Some(location) = location
            {
                if history.len() == max_redirects as usize {
                    let url = first_url.as_ref().unwrap_or(&self.url);
                    return Err(Error::TooManyRedirects {
                        url: url.to_string(),
                        max: max_redirects,
                    });
                }
                let bad = |reason: String| Error::BadRedirect {
                    url: self.url.to_string(),
                    location: location.clone(),
                    reason,
                };
                let mut next = self.url.join(&location).map_err(|e| bad(e.to_string()))?;
                // `socks5://` was followed as plain HTTP to its host and port; refused as a URL
                // given with it is, and as curl and httpie refuse it.
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(bad(format!("unsupported scheme {}", next.scheme())));
                }
                // Credentials a server writes into a Location for another origin are not sent
                // there, as curl and httpie send none: a server must not make us log in to a
                // third party.
                if next.origin() != self.url.origin() {
                    let _ = next.set_username("");
                    let _ = next.set_password(None);
                }
                // A HEAD stays a HEAD, as curl and httpie keep it (RFC 9110 15.4.4).
                if (status == 303 && self.method != http::Method::HEAD)
                    || (matches!(status, 301 | 302) && self.method == http::Method::POST)
                {
                    self.method = http::Method::GET;
                    self.body = Body::Empty;
                    // It described the body left behind, as requests drops it.
                    self.headers
                        .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
                }
                if next.origin() != self.url.origin() {
                    // Never hand credentials to another origin, nor the caller's own
                    // Authorization, Cookie or Host headers (as curl and requests do); the
                    // netrc's for the new host go instead.
                    // In the scheme asked for: Basic to a Digest server sent the password in
                    // clear (curl -n --digest -L answers the new host's challenge instead).
                    self.auth = self.netrc.as_ref().and_then(|netrc| {
                        let login = netrc.login_at(&next)?;
                        let (user, password) = (login.user.clone(), login.password.clone());
                        Some(if self.netrc_digest {
                            Auth::Digest { user, password }
                        } else {
                            Auth::Basic { user, password }
                        })
                    });
                    self.headers.retain(|(name, _)| {
                        !["authorization", "proxy-authorization", "cookie", "host"]
                            .iter()
                            .any(|h| name.eq_ignore_ascii_case(h))
                    });
                }
                // Redacted as ureq's own debug lines are: this one printed the Location's
                // `user:password@` and `?token=` that ureq's line just before hid.
                log::debug!(
                    "{status} {} -> {}",
                    crate::error::logged(&self.url),
                    crate::error::logged(&next)
                );
                let url = std::mem::replace(&mut self.url, next);
                self.raw_path = None;
                let mut hop = Response::followed(response, url.as_str().into());
                hop.set_sent(sent.take());
                history.push(hop);
                first_url.get_or_insert(url);
                sent = Some(self.preview());
                digest = None;
                unchallenged = false;
                renewed = false;
                continue;
            }
            let mut response = Response::new(response, self.url.as_str().into(), config.body_limit);
            response.set_timeouts(config.read_timeout, limit);
            response.set_retried(attempt);
            response.set_proxied(self.client.inner.proxies.for_url(&self.url).is_some());
            // Sent again if its body fails before the first byte, retries being left.
            if self.idempotent() && attempt < retry.retries {
                let mut again = self.clone();
                again.retried = attempt + 1;
                response.set_again(Some(again));
            }
            response.set_history(history);
            response.set_sent(sent);
            return Ok(response);
        }
    }

    /// This request (made for retry `self.retried`) sent again, for a body that failed
    /// (`error`) before its first byte came: the new response, when it came with the same
    /// `status`, within the whole-transfer time.
    pub(crate) fn body_again(self, error: &std::io::Error, status: u16) -> Option<Response> {
        self.wait_to_retry(self.retried, &format!("{}: {error}", self.url))
            .ok()?;
        let response = self.send().ok()?;
        (response.status() == status).then_some(response)
    }

    /// Waits before retry `attempt` after `failed` (said as it is), within the whole-transfer
    /// time: the request's own retries and those of a body say it alike.
    fn wait_to_retry(&self, attempt: u32, failed: &str) -> Result<(), Error> {
        let retry = self.retry_policy();
        let wait = backoff(retry, attempt, None);
        self.time_left_for(wait, failed)?;
        log::warn!(
            "{failed}; retry {attempt} of {} in {:.1} s",
            retry.retries,
            wait.as_secs_f64()
        );
        std::thread::sleep(wait);
        Ok(())
    }

    /// `attempt` made again with this request while it failed with its body cut off or
    /// stalled mid-way (it sets `cut` to the retries its request used) and retries are left,
    /// as curl's `--retry` takes such a transfer again: what `attempt` wrote is its to start
    /// over or go on from. `error` and `cut` are the first attempt's. The one loop behind
    /// [`Request::download`] and [`Response::save_to`].
    pub(crate) fn again_while_cut<T>(
        &self,
        mut error: Error,
        mut cut: Option<u32>,
        mut attempt: impl FnMut(Request, &mut Option<u32>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let retries = self.retry_policy().retries;
        while let Some(n) = cut.map(|n| n + 1).filter(|n| *n <= retries) {
            self.wait_to_retry(n, &error.to_string())?;
            let mut request = self.clone();
            request.retried = n;
            cut = None;
            error = match attempt(request, &mut cut) {
                Err(error) => error,
                done => return done,
            };
        }
        Err(error)
    }

    /// The client's retry policy.
    pub(crate) fn retry_policy(&self) -> &crate::Retry {
        &self.client.config().retry
    }

    /// Starts the whole-transfer clock now, for a request to be sent again later within it.
    pub(crate) fn start_deadline(&mut self) {
        if let Some(limit) = self.client.config().timeout.and_then(limit) {
            self.deadline
                .get_or_insert_with(|| std::time::Instant::now() + limit);
        }
    }

    /// A wait before a retry that would end past the deadline fails now, as a timeout (`last`
    /// says what the retry was for): sleeping into the limit only to fail later helps no one.
    pub(crate) fn time_left_for(&self, wait: Duration, last: &str) -> Result<(), Error> {
        let (Some(deadline), Some(limit)) = (self.deadline, self.client.config().timeout) else {
            return Ok(());
        };
        if std::time::Instant::now() + wait < deadline {
            return Ok(());
        }
        Err(Error::Timeout {
            url: crate::error::redacted(self.url.as_str()),
            what: format!(
                "no time left within the whole transfer's {} s for a retry after: {last}",
                limit.as_secs_f64()
            ),
            kind: crate::TimeoutKind::Total,
        })
    }

    /// Whether the method may be sent again without another effect (RFC 9110 9.2.2).
    pub(crate) fn idempotent(&self) -> bool {
        matches!(
            self.method,
            http::Method::GET
                | http::Method::HEAD
                | http::Method::PUT
                | http::Method::DELETE
                | http::Method::OPTIONS
                | http::Method::TRACE
        )
    }

    /// One exchange of the request as it stands but for its body: none, and a
    /// `Content-Length: 0` for a method that has one, whatever framing header the caller
    /// gave (it told the body's length).
    fn send_without_body(&mut self) -> Result<http::Response<ureq::Body>, Error> {
        let body = std::mem::take(&mut self.body);
        let chunked = std::mem::replace(&mut self.chunked, false);
        let headers = self.headers.clone();
        self.headers.retain(|(name, _)| {
            !name.eq_ignore_ascii_case("content-length")
                && !name.eq_ignore_ascii_case("transfer-encoding")
        });
        let outcome = self.send_once(None);
        self.body = body;
        self.chunked = chunked;
        self.headers = headers;
        outcome
    }

    /// One exchange of the request as it stands (method, URL and body of the current hop).
    fn send_once(&self, authorization: Option<&str>) -> Result<http::Response<ureq::Body>, Error> {
        let declared = self.declared_length()?;
        let (method, url) = (&self.method, &self.url);
        self.client.inner.proxies.check(url)?;
        let target = self.wire_url();
        // The http crate's Uri holds at most this many bytes (curl sends more; nginx answers
        // 414 past 8 KiB); its own refusal said only "uri too long", after a redirect too.
        const MAX_URL: usize = u16::MAX as usize - 1;
        if target.len() > MAX_URL {
            return Err(Error::BadRequest(format!(
                "the URL is {} bytes long, and at most {MAX_URL} can be sent",
                target.len()
            )));
        }
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(target.as_ref());
        for (name, value) in self.wire_headers(url, authorization) {
            builder = builder.header(name, value);
        }
        let bad = |e: http::Error| Error::BadRequest(e.to_string());
        // Bytes in memory go with their length, or chunked when asked.
        let bytes = |builder: http::request::Builder, data: &[u8]| {
            if self.chunked {
                let mut reader = data;
                let body = ureq::SendBody::from_reader(&mut reader);
                Ok(self.run(builder.body(body).map_err(bad)?))
            } else {
                Ok::<_, Error>(self.run(builder.body(data).map_err(bad)?))
            }
        };
        let result = match &self.body {
            // A POST, PUT or PATCH without a body says `Content-Length: 0`, as curl and
            // requests do; ureq would announce an empty chunked body, which servers that take
            // no chunked requests refuse.
            Body::Empty
                if [http::Method::POST, http::Method::PUT, http::Method::PATCH]
                    .contains(method) =>
            {
                self.run(builder.body(&[][..]).map_err(bad)?)
            }
            Body::Empty => self.run(builder.body(ureq::SendBody::none()).map_err(bad)?),
            Body::Bytes { data, content_type } => {
                if let Some(ct) = content_type
                    && self.body_typed_by_us()
                {
                    builder = builder.header("Content-Type", ct);
                }
                bytes(builder, data)?
            }
            Body::File(path) => {
                let file = kept_or_open(&self.replay, path)?;
                if let Some(ct) = self.guessed_type(path) {
                    builder = builder.header("Content-Type", ct);
                }
                match file_length(&file) {
                    Some(length) => self.streamed(builder, file, Some(length), declared)?,
                    // A pipe or device (`/dev/stdin`, `<(cmd)`) has no length to announce: it
                    // goes chunked, where ureq would take its size of 0 and send nothing.
                    None => {
                        let body = replayed(&self.replay, &self.url, path, file)?;
                        self.streamed(builder, body, None, declared)?
                    }
                }
            }
            Body::Open { file, start } => {
                // Only a regular file has a start to seek back to: the other is a pipe.
                let name = Path::new(if start.is_some() {
                    "the open body file"
                } else {
                    "a pipe"
                });
                let cannot = |source| Error::File {
                    path: name.into(),
                    source,
                };
                let mut file = file.try_clone().map_err(cannot)?;
                match start {
                    Some(start) => {
                        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(*start))
                            .map_err(cannot)?;
                        // Its whole length is right from its first byte alone.
                        let length = file_length(&file).filter(|_| *start == 0);
                        self.streamed(builder, file, length, declared)?
                    }
                    None => {
                        let body = replayed(&self.replay, &self.url, name, file)?;
                        self.streamed(builder, body, None, declared)?
                    }
                }
            }
            Body::Multipart {
                parts,
                replays,
                shown,
            } => match shown.get() {
                Some((content_type, data)) => {
                    bytes(builder.header("Content-Type", content_type), data)?
                }
                None => {
                    let mut form = form(parts, replays, &self.url)?;
                    builder = builder.header("Content-Type", form_type(&form));
                    if self.chunked {
                        let body = ureq::SendBody::from_reader(&mut form);
                        self.run(builder.body(body).map_err(bad)?)
                    } else {
                        self.run(builder.body(form).map_err(bad)?)
                    }
                }
            },
        };
        result.map_err(|e| match self.client.error_for(url, e) {
            // The reset or close that cut the upload was read as "an empty reply": said as
            // the upload's end, with how much of it went (curl: "Recv failure: Connection
            // reset by peer").
            Error::Io { url, reason } | Error::Connect { url, reason } if Sending::refused() => {
                Error::Io {
                    url,
                    reason: format!(
                        "the upload was cut after {} bytes of the request went: {reason}",
                        SENDING.with(|s| s.sent.get())
                    ),
                }
            }
            other => other,
        })
    }

    /// `response`, unless it is a `101 Switching Protocols` the request did not ask for: RFC
    /// 9110 15.2.2 forbids a server to switch to a protocol not in the request's `Upgrade`,
    /// and read as the final answer it was a success with no body (exit 0, a 0-byte file). One
    /// asked for is handed back, its head to be shown as curl shows it, and what comes after
    /// it (the new protocol, which netkit does not speak) is not read.
    fn switched(
        &self,
        response: http::Response<ureq::Body>,
    ) -> Result<http::Response<ureq::Body>, Error> {
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            return Ok(response);
        }
        let to = response
            .headers()
            .get(http::header::UPGRADE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let to = to.as_deref().unwrap_or("a protocol it does not name");
        let asked = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("upgrade"));
        if !asked {
            return Err(Error::Io {
                url: crate::error::redacted(self.url.as_str()),
                reason: format!(
                    "the server switched protocols (101, to {to}) though the request asked for \
                     none (no Upgrade header)"
                ),
            });
        }
        log::warn!(
            "{}: the server switched to {to} (101) as asked; netkit does not speak it: the \
             connection is closed after the head",
            crate::error::redacted(self.url.as_str())
        );
        Ok(response)
    }

    /// Whether the body can be sent again for a retry: not one read from a pipe past what is
    /// kept of it, which is said. The answer (or failure) is then handed back, where the
    /// retry failed as a bad request the server "asked the body again" for (curl -T - stops
    /// with "necessary data rewind wasn't possible").
    fn kept_for_a_retry(&self) -> bool {
        let overflowed = |replay: &Mutex<Replay>| {
            replay
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .overflowed
        };
        let kept = match &self.body {
            Body::Multipart { replays, .. } => !replays.iter().any(|r| overflowed(r)),
            _ => !overflowed(&self.replay),
        };
        if !kept {
            log::warn!(
                "{}: not retried: the piped body (over {} MiB) was not kept for a retry",
                self.url,
                REPLAY_LIMIT >> 20
            );
        }
        kept
    }
}

/// The codings asked for, all of which a [`Response`] undoes (as curl's `--compressed` and
/// httpie ask, zstd aside).
const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// The most file bytes a multipart [`Request::preview`] reads to show them (and then sends
/// from memory).
const SHOWN_FORM_LIMIT: u64 = 16 << 20;

/// ureq's `multipart/form-data` body of `parts`, files opened (not read); one read from a
/// pipe sends what its replay kept first.
fn form<'a>(
    parts: &'a [Part],
    replays: &[Arc<Mutex<Replay>>],
    url: &Url,
) -> Result<ureq::unversioned::multipart::Form<'a>, Error> {
    let mut form = ureq::unversioned::multipart::Form::new();
    for (part, replay) in parts.iter().zip(replays) {
        form = match part {
            Part::Text { name, value } => form.text(name, value),
            Part::File {
                name,
                path,
                content_type,
            } => {
                let file = kept_or_open(replay, path)?;
                // ureq takes a file's size from its metadata: a pipe's 0 (`f@<(cmd)`) made
                // the form's length wrong. One without a length goes chunked; sent again, it
                // was an empty part.
                let mut part = if file_length(&file).is_some() {
                    ureq::unversioned::multipart::Part::file(path).map_err(|source| {
                        Error::File {
                            path: path.clone(),
                            source,
                        }
                    })?
                } else {
                    let part = ureq::unversioned::multipart::Part::owned_reader(Declared::new(
                        replayed(replay, url, path, file)?,
                        None,
                    ));
                    match mime_guess::from_path(path).first_raw() {
                        Some(mime) => part.mime_str(mime).map_err(|_| {
                            Error::BadRequest(format!("{name}: {mime:?} is not a MIME type"))
                        })?,
                        None => part,
                    }
                };
                if let Some(file_name) = path.file_name().map(|n| n.to_string_lossy()) {
                    part = part.file_name(&quotable(&file_name));
                }
                if let Some(mime) = content_type {
                    part = part.mime_str(mime).map_err(|_| {
                        Error::BadRequest(format!("{name}: {mime:?} is not a MIME type"))
                    })?;
                }
                form.part(name, part)
            }
        };
    }
    Ok(form)
}

/// `text` as a quoted name in a part's `Content-Disposition` may hold it, encoded as browsers
/// encode it (WHATWG): `"`, CR and LF would end the name early or start a header of their own.
fn quotable(text: &str) -> String {
    text.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn form_type(form: &ureq::unversioned::multipart::Form<'_>) -> String {
    format!("multipart/form-data; boundary={}", form.boundary())
}

impl Request {
    /// Runs one exchange with a streamed `body` of `length` bytes when known (sent chunked when
    /// not, or when asked), or of the `declared` length the user gave.
    fn streamed(
        &self,
        mut builder: http::request::Builder,
        body: impl std::io::Read + 'static,
        length: Option<u64>,
        declared: Option<u64>,
    ) -> Result<Result<http::Response<ureq::Body>, ureq::Error>, Error> {
        let length = length.filter(|_| !self.chunked);
        // ureq announces a reader's body as chunked; a length announced here goes instead.
        if let Some(length) = length
            && declared.is_none()
        {
            builder = builder.header("Content-Length", length);
        }
        let body = ureq::SendBody::from_owned_reader(Declared::new(body, length.or(declared)));
        let request = builder
            .body(body)
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        Ok(self.run(request))
    }

    /// Runs one exchange on the agent, without the automatic headers the user removed.
    fn run<S: ureq::AsSendBody>(
        &self,
        request: http::Request<S>,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        Sending::start();
        let agent = &self.client.inner.agent;
        let proxy = self.client.inner.proxies.for_url(&self.url);
        let left = self
            .deadline
            .map(|deadline| deadline.saturating_duration_since(std::time::Instant::now()));
        if self.removed.is_empty() && proxy.is_none() && left.is_none() {
            return agent.run(request);
        }
        let mut config = agent.configure_request(request).proxy(proxy.cloned());
        if let Some(left) = left {
            config = config.timeout_global(Some(left));
        }
        let none = || ureq::config::AutoHeaderValue::None;
        for name in &self.removed {
            config = match name.as_str() {
                "user-agent" => config.user_agent(none()),
                "accept" => config.accept(none()),
                "accept-encoding" => config.accept_encoding(none()),
                _ => config,
            };
        }
        agent.run(config.build())
    }
}

/// A header that cannot go on the wire, named (http's own error names neither it nor why).
fn check_header(name: &str, value: &str) -> Result<(), Error> {
    let reason = if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        "not a header name"
    } else if http::HeaderValue::from_bytes(value.as_bytes()).is_err() {
        "its value holds a line break or another control character"
    } else {
        return Ok(());
    };
    Err(Error::BadRequest(format!("bad header {name:?}: {reason}")))
}

/// The pipe a first sending of `replay`'s body opened, or `path` opened now.
fn kept_or_open(replay: &Mutex<Replay>, path: &Path) -> Result<File, Error> {
    let replay = replay.lock().unwrap_or_else(PoisonError::into_inner);
    match &replay.file {
        Some(file) => file.try_clone().map_err(|source| Error::File {
            path: path.to_owned(),
            source,
        }),
        None => open(path),
    }
}

/// The name of a `name=value` pair of a Cookie field.
fn cookie_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(name, _)| name).trim()
}

/// Says why a 401 comes back with the credentials given unused: the server offers no
/// challenge in their `scheme` that can be answered. curl and httpie say nothing, and the
/// 401 alone left users guessing at their password.
fn unanswered(url: &Url, scheme: &str, offered: &[crate::digest::Challenge]) {
    let mut names: Vec<&str> = Vec::new();
    for challenge in offered {
        if !names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&challenge.scheme))
        {
            names.push(&challenge.scheme);
        }
    }
    let names = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    };
    log::warn!(
        "{} answered 401 with no {scheme} challenge that can be answered (offered: {names})",
        crate::error::redacted(url.as_str())
    );
}

/// A streamed body (a file, a pipe) as it goes out.
///
/// Under a known length (the file's, or a `Content-Length` of the user's) it ends neither
/// short of it (a pipe that ends before is an error, where ureq asked for the rest again and
/// again for ever) nor past it (a file that grows while it goes).
///
/// Once the server stopped taking the request (it answered early, 401/413/503, and closed:
/// RFC 9112 9.6) the source is read no more: a pipe from an endless producer (`tail -f`,
/// `/dev/zero`) was drained until its end, for ever, before the answer was shown, where curl
/// shows it at once. ureq reads the answer only once the body has ended: a chunked body ends
/// there; under a length, the rest is told as sent without being read, and the transport,
/// which takes no more of the request, drops it.
struct Declared<R> {
    body: R,
    left: Option<u64>,
}

impl<R: std::io::Read> Declared<R> {
    fn new(body: R, length: Option<u64>) -> Self {
        Declared { body, left: length }
    }
}

impl<R: std::io::Read> std::io::Read for Declared<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // At most what is left: bounded by `buf.len()`, so back in usize.
        let cap = self
            .left
            .map_or(buf.len(), |left| left.min(buf.len() as u64) as usize);
        let n = if Sending::refused() {
            self.left.map_or(0, |_| cap)
        } else {
            self.body.read(&mut buf[..cap])?
        };
        if let Some(left) = &mut self.left {
            if n == 0 && *left > 0 && !buf.is_empty() {
                // Not UnexpectedEof, which is the server's hanging up to ureq.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("the body ended {left} bytes short of its Content-Length"),
                ));
            }
            *left -= n as u64;
        }
        Ok(n)
    }
}

/// The body read from the pipe `file` (named `path`): what earlier sendings read of it,
/// kept in `replay`, then what it still gives, added to `replay` as it comes.
fn replayed(
    replay: &Arc<Mutex<Replay>>,
    url: &Url,
    path: &Path,
    file: File,
) -> Result<impl std::io::Read + use<>, Error> {
    let mut kept = replay.lock().unwrap_or_else(PoisonError::into_inner);
    if kept.overflowed {
        return Err(Error::BadRequest(format!(
            "{url} asks for the body again, and the body read from {} cannot be sent twice \
             (over {} MiB of it came, more than is kept)",
            path.display(),
            REPLAY_LIMIT >> 20
        )));
    }
    let before = if kept.started {
        kept.data.clone()
    } else {
        Vec::new()
    };
    kept.started = true;
    if kept.file.is_none() {
        kept.file = file.try_clone().ok();
    }
    let rest = Recorded {
        file,
        replay: Arc::clone(replay),
    };
    Ok(std::io::Read::chain(std::io::Cursor::new(before), rest))
}

/// A file to upload (a part, or the body), looked at before anything is sent: a directory
/// opens (on Linux) and failed only when read, blamed on the URL, after connecting.
pub(crate) fn upload_file(path: &Path) -> Result<(), Error> {
    let fail = |source| Error::File {
        path: path.to_owned(),
        source,
    };
    if std::fs::metadata(path).map_err(fail)?.is_dir() {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "a directory, not a file to upload",
        )));
    }
    Ok(())
}

fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|source| Error::File {
        path: path.to_owned(),
        source,
    })
}

fn host_header(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}

/// A `Location` value as text: raw UTF-8 (`/café`) as it is, for the join to percent-encode
/// as curl and browsers do; other bytes (a Latin-1 `/caf\xe9`) percent-encoded one by one, as
/// curl follows them (the redirect was dropped, the 3xx shown as the answer).
fn location_text(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => text.to_owned(),
        // percent_encode encodes every byte past ASCII, whatever the set.
        Err(_) => percent_encoding::percent_encode(value, percent_encoding::CONTROLS).to_string(),
    }
}

/// What a server whose answer starts with `first` speaks, when that is recognisably not
/// HTTP/1.x: ureq says only that the status line does not parse.
fn not_http1(first: &[u8]) -> Option<String> {
    // A TLS record: an alert (21) or a handshake (22), version 3.x.
    if let [21 | 22, 3, ..] = first {
        return Some(format!(
            "the server answers in TLS; {}",
            crate::error::other_scheme(false)
        ));
    }
    // An HTTP/2 frame header: a SETTINGS frame (type 4) on stream 0 is what an HTTP/2 server
    // sends first (RFC 9113 3.4), as its preface.
    if let [_, _, _, 4, _, 0, 0, 0, 0] = first {
        return Some("the server speaks HTTP/2 only (netkit speaks HTTP/1.1)".into());
    }
    None
}

/// What ran out, for [`Error::Timeout`]: ureq says only which timer; how long it waited tells
/// how much longer to. `handshaking`: the connect timer ran out after TCP connected, in TLS.
fn timeout_what(config: &ClientConfig, which: ureq::Timeout, handshaking: bool) -> String {
    let secs = |d: Duration| d.as_secs_f64();
    match which {
        ureq::Timeout::PerRead => format!(
            "the server sent nothing for {} s",
            secs(config.read_timeout)
        ),
        ureq::Timeout::PerWrite => {
            format!(
                "the server took no data for {} s",
                secs(config.read_timeout)
            )
        }
        ureq::Timeout::Connect if handshaking => format!(
            "connected, but the TLS handshake did not finish within {} s (a server that does \
             not speak TLS?)",
            secs(config.connect_timeout)
        ),
        ureq::Timeout::Connect => {
            format!("no connection within {} s", secs(config.connect_timeout))
        }
        ureq::Timeout::Global => match config.timeout {
            Some(limit) => format!("the whole transfer took longer than {} s", secs(limit)),
            None => "the whole transfer took too long".into(),
        },
        other => format!("timed out ({other})"),
    }
}

/// The statuses retried: those curl's `--retry` takes as transient (408 Request Timeout, 429
/// Too Many Requests, 500, 502, 503, 504), a server's trouble that may pass.
const TRANSIENT_STATUS: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The wait before retry `attempt`: what the server asked, or exponential with jitter.
pub(crate) fn backoff(retry: &crate::Retry, attempt: u32, asked: Option<Duration>) -> Duration {
    let wait = asked.unwrap_or_else(|| {
        let exp = retry.backoff.saturating_mul(1 << (attempt - 1).min(16));
        let jittered = exp.as_secs_f64() * rand::rng().random_range(0.75..1.25);
        // Past Duration's range (a backoff of Duration::MAX, meant as "no limit"), max_wait.
        Duration::try_from_secs_f64(jittered).unwrap_or(Duration::MAX)
    });
    wait.min(retry.max_wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_tell_an_empty_password_from_none() {
        let got = |url: &str| url_credentials(url);
        assert_eq!(got("http://ann@h/"), Some(("ann".into(), None)));
        assert_eq!(
            got("http://ann:@h/"),
            Some(("ann".into(), Some(String::new())))
        );
        assert_eq!(
            got("http://ann:s%40cret@h/x@y"),
            Some(("ann".into(), Some("s@cret".into())))
        );
        assert_eq!(got("http://h/a:b@c"), None);
    }

    #[test]
    fn cookies_for_a_public_suffix_are_refused() {
        let taken = |set: &str, host: &str| {
            let cookie = cookie_store::RawCookie::parse(set.to_owned()).unwrap();
            not_for_a_public_suffix(cookie, Some(host)).map(|c| c.domain().map(str::to_owned))
        };
        assert_eq!(taken("a=1; Domain=co.uk", "evil.co.uk"), None);
        assert_eq!(taken("a=1; Domain=.com", "evil.com"), None);
        assert_eq!(taken("a=1; Domain=github.io", "evil.github.io"), None);
        assert_eq!(taken("a=1; Domain=test", "a.test"), None);
        assert_eq!(
            taken("a=1; Domain=example.co.uk", "www.example.co.uk"),
            Some(Some("example.co.uk".into()))
        );
        // The suffix as the host itself: the host's cookie alone.
        assert_eq!(taken("a=1; Domain=localhost", "localhost"), Some(None));
        assert_eq!(taken("a=1", "evil.co.uk"), Some(None));
        // An address is the host's own or refused (it was "a public suffix").
        assert_eq!(taken("a=1; Domain=::1", "[::1]"), Some(None));
        assert_eq!(taken("a=1; Domain=127.0.0.1", "127.0.0.1"), Some(None));
        assert_eq!(taken("a=1; Domain=127.0.0.1", "127.0.0.2"), None);
        assert_eq!(taken("a=1; Domain=::1", "localhost"), None);
    }

    #[test]
    fn only_secure_origins_set_or_replace_secure_cookies() {
        let url = |u: &str| url::Url::parse(u).unwrap();
        let raw = |set: &str| cookie_store::RawCookie::parse(set.to_owned()).unwrap();
        let mut jar = CookieStore::default();
        let kept =
            |jar: &CookieStore, set: &str, at: &str| secure_origin_kept(&raw(set), &url(at), jar);
        for (set, plain, https) in [
            ("a=1", true, true),
            ("a=1; Secure", false, true),
            ("__Secure-a=1; Secure", false, true),
            ("__Secure-a=1", false, false),
            ("__Host-a=1; Secure; Path=/", false, true),
            (
                "__Host-a=1; Secure; Path=/; Domain=example.test",
                false,
                false,
            ),
            ("__Host-a=1; Secure", false, false),
            ("__Host-a=1; Path=/", false, false),
        ] {
            assert_eq!(
                kept(&jar, set, "http://example.test/"),
                plain,
                "{set} over http"
            );
            assert_eq!(
                kept(&jar, set, "https://example.test/"),
                https,
                "{set} over https"
            );
        }
        // Loopback is a secure origin, as in curl.
        assert!(kept(&jar, "a=1; Secure", "http://127.0.0.1/"));
        assert!(kept(&jar, "a=1; Secure", "http://localhost/"));
        jar.store_response_cookies(
            [raw("sid=good; Secure; Path=/app"), raw("other=1; Secure")].into_iter(),
            &url("https://www.example.test/"),
        );
        for (set, at, taken) in [
            ("sid=forged", "http://www.example.test/app/page", false),
            ("sid=forged; Path=/app/x", "http://www.example.test/", false),
            (
                "sid=forged; Domain=example.test; Path=/app",
                "http://a.example.test/app",
                false,
            ),
            (
                "sid=forged; Path=/application",
                "http://www.example.test/",
                true,
            ),
            ("sid=forged; Path=/", "http://www.example.test/", true),
            ("sid=x", "http://elsewhere.test/app", true),
            ("sid=new", "https://www.example.test/app", true),
            ("third=1", "http://www.example.test/", true),
        ] {
            assert_eq!(kept(&jar, set, at), taken, "{set} from {at}");
        }
    }

    #[test]
    fn configs_logins_and_bad_urls_show_no_password() {
        let config = ClientConfig {
            proxy: Some("http://pu:proxy-secret@127.0.0.1:3128".into()),
            ..ClientConfig::default()
        };
        let login = crate::Login {
            user: "u".into(),
            password: "netrc-secret".into(),
        };
        let bad = parse_url("http://user:url-secret@127.0.0.1:99999/").unwrap_err();
        let shown = format!("{config:?} {login:?} {bad} {bad:?}");
        for secret in ["proxy-secret", "netrc-secret", "url-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("http://pu:<redacted>@127.0.0.1:3128"),
            "{shown}"
        );
        assert_eq!(
            crate::error::redacted("http://ann@h:8080/p:q@r"),
            "http://ann@h:8080/p:q@r",
            "no password: the colon is the port's"
        );
        assert_eq!(
            crate::error::redacted("http://a@b:c@h/"),
            "http://a@b:<redacted>@h/"
        );
        assert_eq!(crate::error::redacted("h:1/x"), "h:1/x");
        // A password holding `/`, `?` or `#` (the URL does not parse) is still not shown.
        for (typed, shown) in [
            ("http://u:se/cret@h:99999/", "http://u:<redacted>@h:99999/"),
            ("http://u:se?cret@h/", "http://u:<redacted>@h/"),
            ("http://u:se#cret@h/", "http://u:<redacted>@h/"),
            ("http:/u:secret@h/", "http:<redacted>@h/"),
            ("http://h:8080/@who", "http://h:8080/@who"),
            (
                "http://h/?q=mailto:bob@example.com",
                "http://h/?q=mailto:bob@example.com",
            ),
            ("http://h/wiki/User:Bob@home", "http://h/wiki/User:Bob@home"),
        ] {
            assert_eq!(crate::error::redacted(typed), shown, "{typed}");
        }
        assert_eq!(
            crate::error::redacted("socks5://u:p@h"),
            "socks5://u:<redacted>@h"
        );
    }

    #[test]
    fn debug_shows_no_password_or_token() {
        let shown = format!(
            "{:?} {:?} {:?}",
            Auth::Basic {
                user: "ann".into(),
                password: "hunter2".into()
            },
            Auth::Bearer("t0ken".into()),
            Auth::Digest {
                user: "bob".into(),
                password: "s3cret".into()
            }
        );
        assert_eq!(
            shown,
            r#"Basic { user: "ann", password: "<redacted>" } Bearer("<redacted>") Digest { user: "bob", password: "<redacted>" }"#
        );
        let client = Client::new(ClientConfig::default()).unwrap();
        let request = client
            .get("http://ann:hunter2@h/x")
            .unwrap()
            .header("X-Api-Key", "t0ken")
            .auth(Auth::Bearer("b3arer".into()));
        let shown = format!("{client:?} {request:?}");
        assert!(shown.contains("X-Api-Key"), "{shown}");
        for secret in ["hunter2", "t0ken", "b3arer"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn a_url_too_long_to_send_is_refused_naming_its_length() {
        let client = Client::new(ClientConfig::default()).unwrap();
        // Refused before connecting: nothing listens on port 9 of this address.
        let url = format!("http://127.0.0.9:9/{}", "a".repeat(70_000));
        match client.get(&url).unwrap().send() {
            Err(Error::BadRequest(why)) => {
                assert!(
                    why.contains("70019 bytes") && why.contains("65534"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_backoff_past_durations_range_waits_max_wait() {
        let mut retry = crate::Retry::times(3);
        retry.backoff = Duration::MAX;
        retry.max_wait = Duration::from_millis(10);
        assert_eq!(backoff(&retry, 3, None), Duration::from_millis(10));
    }

    #[test]
    fn the_preview_shows_no_fragment_and_one_length() {
        let client = Client::new(ClientConfig::default()).unwrap();
        let preview = |request: Request| {
            let shown = request.preview();
            let lengths: Vec<_> = shown
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.clone())
                .collect();
            (shown.url, lengths)
        };
        let request = client.get("http://h/p?q=1#frag").unwrap().raw("hello");
        assert_eq!(
            preview(request),
            ("http://h/p?q=1".into(), vec!["5".into()])
        );
        let own = client
            .post("http://h/p#f")
            .unwrap()
            .header("Content-Length", "3")
            .raw("hello");
        assert_eq!(preview(own), ("http://h/p".into(), vec!["3".into()]));
    }

    #[test]
    fn the_path_as_written_ends_at_the_query_and_starts_after_the_host() {
        assert_eq!(
            path_as_written("http://h:1/a/../b?x=/y#z").as_deref(),
            Some("/a/../b")
        );
        assert_eq!(path_as_written("http://h?x=/y"), None);
        assert_eq!(path_as_written(":8000/./x").as_deref(), Some("/./x"));
        assert_eq!(path_as_written("h/%2e%2e/x").as_deref(), Some("/%2e%2e/x"));
        assert_eq!(path_as_written("https://h"), None);
    }

    #[test]
    fn names_are_resolved_once_a_minute_and_addresses_never() {
        use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
        #[derive(Debug, Default)]
        struct Counting(std::sync::atomic::AtomicUsize, DefaultResolver);
        impl Resolver for Counting {
            fn resolve(
                &self,
                uri: &http::Uri,
                config: &ureq::config::Config,
                timeout: ureq::unversioned::transport::NextTimeout,
            ) -> Result<ResolvedSocketAddrs, ureq::Error> {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.1.resolve(uri, config, timeout)
            }
        }
        let resolver = CachingResolver::<Counting>::default();
        let config = ureq::Agent::config_builder().build();
        let ask = |url: &str| {
            let timeout = ureq::unversioned::transport::NextTimeout {
                after: Duration::from_secs(5).into(),
                reason: ureq::Timeout::Resolve,
                per_read: None,
                per_write: None,
            };
            resolver
                .resolve(&url.parse().unwrap(), &config, timeout)
                .unwrap()
        };
        // localhost comes from /etc/hosts: no name server is asked.
        let first = ask("http://localhost:8080/a");
        let again = ask("http://LOCALHOST:8080/b");
        assert_eq!(&first[..], &again[..]);
        assert!(
            first
                .iter()
                .all(|a| a.port() == 8080 && a.ip().is_loopback())
        );
        assert_eq!(
            resolver.inner.0.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        ask("http://localhost:9090/");
        assert_eq!(
            resolver.inner.0.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        let literal = ask("https://[::1]/");
        assert_eq!(&literal[..], &["[::1]:443".parse().unwrap()]);
        assert_eq!(
            resolver.inner.0.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    #[test]
    fn shorthand_urls_get_a_scheme_and_bad_ones_are_refused() {
        let parsed = |word: &str| parse_url(&url_shorthand(word)).unwrap();
        assert_eq!(parsed("example.com/x").as_str(), "http://example.com/x");
        assert_eq!(parsed(":8080/a").as_str(), "http://localhost:8080/a");
        assert_eq!(parsed("https://a/b").as_str(), "https://a/b");
        assert!(matches!(parse_url("ftp://x/"), Err(Error::BadUrl { .. })));
        assert!(matches!(parse_url("http://"), Err(Error::BadUrl { .. })));
        // A URL in the query is no scheme of the whole.
        assert_eq!(
            parsed("localhost:8401/cb?to=http://a/b").as_str(),
            "http://localhost:8401/cb?to=http://a/b"
        );
        assert_eq!(
            parsed(":8401/cb?to=http://a").as_str(),
            "http://localhost:8401/cb?to=http://a"
        );
        // A program's URL is taken as written: no guessing of a host from a relative one.
        for relative in [
            "/api/items",
            "api/items",
            ":8080/x",
            "localhost:8080/x",
            "mailto:a@b",
        ] {
            assert!(
                matches!(parse_url(relative), Err(Error::BadUrl { .. })),
                "{relative}"
            );
        }
        assert_eq!(
            path_as_written("localhost:8401/a/../b?to=http://a").as_deref(),
            Some("/a/../b")
        );
        assert!(matches!(
            parse_url("http://exa mple.com/"),
            Err(Error::BadUrl { .. })
        ));
    }

    #[test]
    fn credentials_in_the_url_become_basic_auth_decoded() {
        let client = Client::new(ClientConfig::default()).unwrap();
        let request = client.get("http://ann:s%40cret@example.com/x").unwrap();
        assert_eq!(request.url(), "http://example.com/x");
        let preview = request.preview();
        let auth = preview
            .headers
            .iter()
            .find(|(n, _)| n == "Authorization")
            .map(|(_, v)| v.as_str());
        // base64("ann:s@cret")
        assert_eq!(auth, Some("Basic YW5uOnNAY3JldA=="));
        let explicit = client
            .get("http://ann:x@example.com/")
            .unwrap()
            .basic_auth("bob", "pw")
            .preview();
        assert!(
            explicit
                .headers
                .contains(&("Authorization".into(), "Basic Ym9iOnB3".into()))
        );
    }

    #[test]
    fn a_remembered_url_is_a_fresh_copy() {
        let client = Client::new(ClientConfig::default()).unwrap();
        let first = client
            .get("http://example.com/x")
            .unwrap()
            .query("page", "2");
        assert_eq!(first.url(), "http://example.com/x?page=2");
        assert_eq!(
            client.get("http://example.com/x").unwrap().url(),
            "http://example.com/x"
        );
        assert_eq!(
            client.get("http://localhost:8080/y").unwrap().url(),
            "http://localhost:8080/y"
        );
        assert!(matches!(client.get("ftp://x/"), Err(Error::BadUrl { .. })));
        assert!(matches!(client.get(":8080/y"), Err(Error::BadUrl { .. })));
        assert_eq!(
            client.get("http://localhost:8080/y").unwrap().url(),
            "http://localhost:8080/y"
        );
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
