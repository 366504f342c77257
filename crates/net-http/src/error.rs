use std::path::PathBuf;

/// What a proxy's 407 means, said after it: for an https URL's refused tunnel, and for the
/// 407 an http URL gets back as its answer.
pub const PROXY_WANTS_CREDENTIALS: &str =
    "it wants credentials (http://USER:PASS@proxy:port) or refused those given";

/// Which limit an [`Error::Timeout`] ran out of, each raised by its own field of
/// [`ClientConfig`](crate::ClientConfig): a caller names the one to raise, as curl's
/// "Connection timed out" and "Operation timed out" tell `--connect-timeout` from `--max-time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Connecting, TCP and TLS: `connect_timeout`.
    Connect,
    /// The server sent nothing for `read_timeout`: a wait between bytes, not the answer's
    /// whole time.
    Read,
    /// The server took nothing of the request for `read_timeout`.
    Write,
    /// The whole transfer, redirects, retries and their waits included: `timeout`.
    Total,
    /// A limit none of ours: the system's own (a TCP connect given up by the kernel).
    Other,
}

impl TimeoutKind {
    /// The limit behind ureq's timer.
    pub(crate) fn of(which: ureq::Timeout) -> TimeoutKind {
        match which {
            ureq::Timeout::Connect => TimeoutKind::Connect,
            ureq::Timeout::PerRead => TimeoutKind::Read,
            ureq::Timeout::PerWrite => TimeoutKind::Write,
            ureq::Timeout::Global => TimeoutKind::Total,
            // Timers we never set.
            _ => TimeoutKind::Other,
        }
    }

    /// The limit that ran out when a body's read failed with `error` (from
    /// [`Response::reader`](crate::Response::reader) and the like), if a timeout did: the
    /// body's reader hands out `std::io::Error`s, whose kind alone cannot say which.
    #[must_use]
    pub fn of_io(error: &std::io::Error) -> Option<TimeoutKind> {
        if let Some(timeout) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<BodyTimeout>())
        {
            return Some(timeout.kind);
        }
        (error.kind() == std::io::ErrorKind::TimedOut).then_some(TimeoutKind::Other)
    }
}

/// A body read's timeout, carried inside the `std::io::Error` a reader must return: its words
/// alone are shown, and its kind is read back by [`TimeoutKind::of_io`].
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub(crate) struct BodyTimeout {
    pub(crate) what: String,
    pub(crate) kind: TimeoutKind,
}

/// Everything that can go wrong with a request, naming the URL or file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL cannot be parsed or is not http(s).
    #[error("bad URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header name or value, or a request part, is not valid HTTP.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The host name does not resolve.
    #[error("cannot resolve the host of {url}")]
    Dns {
        /// The URL requested.
        url: String,
    },
    /// The TCP connection failed (refused, unreachable, reset).
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL requested.
        url: String,
        /// What the OS said.
        reason: String,
    },
    /// A timeout expired.
    #[error("{url}: {what}")]
    Timeout {
        /// The URL requested.
        url: String,
        /// What ran out, in words ("the server sent nothing for 30 s").
        what: String,
        /// Which limit ran out: what a caller raises to wait longer.
        kind: TimeoutKind,
    },
    /// The TLS handshake or certificate check failed.
    #[error("TLS error with {url}: {reason}")]
    Tls {
        /// The URL requested.
        url: String,
        /// What failed.
        reason: String,
    },
    /// More redirects than allowed.
    #[error("too many redirects (more than {max}) from {url}")]
    TooManyRedirects {
        /// The URL first requested.
        url: String,
        /// The limit.
        max: u32,
    },
    /// A redirect's `Location` does not parse or names a scheme other than http(s): the
    /// server's doing, not the caller's.
    #[error("{url} redirected to {location:?}: {reason}")]
    BadRedirect {
        /// The URL that answered with the redirect.
        url: String,
        /// Its `Location`, as sent.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The response status is 4xx or 5xx ([`Response::error_for_status`](crate::Response::error_for_status)).
    #[error("{url} answered {status} {reason}{}", if excerpt.is_empty() { String::new() } else { format!(": {excerpt}") })]
    Status {
        /// The URL that answered.
        url: String,
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The start of the body.
        excerpt: String,
    },
    /// The body is larger than the limit.
    #[error("the body of {url} is larger than {limit} bytes")]
    BodyTooLarge {
        /// The URL that answered.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A download ended before all the bytes the server announced arrived.
    #[error("download of {url} ended after {got} of {expected} bytes (kept in {}; resume to finish)", part.display())]
    Truncated {
        /// The URL downloaded.
        url: String,
        /// Bytes received in all.
        got: u64,
        /// Bytes announced.
        expected: u64,
        /// The partial file.
        part: PathBuf,
    },
    /// The body is not the JSON asked for.
    #[error("the body of {url} is not the JSON expected: {source}")]
    Json {
        /// The URL that answered.
        url: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A `.netrc` file does not parse.
    #[error("bad netrc file {}: {reason}", path.display())]
    Netrc {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        reason: String,
    },
    /// The session file is not valid.
    #[error("bad session file {}: {reason}", path.display())]
    Session {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Any other failure while talking to the server.
    #[error("{url}: {reason}")]
    Io {
        /// The URL requested.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// Headers as `Debug` shows them: the values that carry credentials or a session (a token,
/// a cookie) replaced, since a `{:?}` is how a response or a preview reaches a log.
pub(crate) fn redacted_headers(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    const SECRET: [&str; 4] = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    ];
    headers
        .iter()
        .map(|(name, value)| {
            let secret = SECRET.iter().any(|s| name.eq_ignore_ascii_case(s));
            (
                name.as_str(),
                if secret { "<redacted>" } else { value.as_str() },
            )
        })
        .collect()
}

/// `url` as a debug log line shows it: its password redacted and its query (where tokens
/// travel: `?token=...`, signed links) left out, as ureq's debug lines leave out both; at
/// trace, which ureq documents as not redacted, its own lines show them.
pub(crate) fn logged(url: &url::Url) -> String {
    let mut shown = redacted(&url[..url::Position::AfterPath]);
    if url.query().is_some() {
        shown.push_str("?<redacted>");
    }
    shown
}

/// `url` with the password of its `user:password@` replaced, for errors and Debug output that
/// may reach a log: a URL as typed, even one that does not parse, may carry one.
pub(crate) fn redacted(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let Some(colon) = rest.find(':') else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = match rest[..end].rfind('@') {
        Some(at) => at,
        // A password with `/`, `?` or `#` ends the authority early for a parser, not for
        // the person who typed it (it was printed whole): the last `@` then, unless the
        // colon is a port's.
        None => {
            let after = &rest[colon + 1..];
            let port = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
            // Past the authority (`?q=mailto:bob@example.com`) it is no password.
            if colon > end || (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())) {
                return url.to_owned();
            }
            match rest.rfind('@') {
                Some(at) => at,
                None => return url.to_owned(),
            }
        }
    };
    if colon > at {
        return url.to_owned();
    }
    format!("{}<redacted>{}", &url[..=start + colon], &url[start + at..])
}

impl Error {
    /// Turns a ureq error for `url` into ours.
    pub(crate) fn from_ureq(url: &str, error: ureq::Error) -> Error {
        // `http:/u:pw@host` parses with the password in the path.
        let url = redacted(url);
        match error {
            ureq::Error::HostNotFound => Error::Dns { url },
            ureq::Error::Timeout(which) => Error::Timeout {
                url,
                what: which.to_string(),
                kind: TimeoutKind::of(which),
            },
            ureq::Error::BodyExceedsLimit(limit) => Error::BodyTooLarge { url, limit },
            ureq::Error::BadUri(reason) => Error::BadUrl { url, reason },
            ureq::Error::Tls(reason) => Error::Tls {
                url,
                reason: reason.to_owned(),
            },
            ureq::Error::Rustls(e) => Error::Tls {
                url,
                reason: tls_reason(&e),
            },
            ureq::Error::Pem(e) => Error::Tls {
                url,
                reason: e.to_string(),
            },
            ureq::Error::TooManyRedirects => Error::TooManyRedirects { url, max: 0 },
            ureq::Error::ConnectionFailed => Error::Connect {
                url,
                reason: "connection failed".into(),
            },
            ureq::Error::Io(e) => Error::from_io(url, &e),
            // ureq words it "proxy server responded 407/407".
            ureq::Error::ConnectProxyFailed(reason) => Error::Connect {
                url,
                reason: match reason.rsplit_once('/') {
                    // ureq does not say whether credentials went: both are named.
                    Some((_, "407")) => {
                        format!("the proxy refused the tunnel: 407, {PROXY_WANTS_CREDENTIALS}")
                    }
                    Some((_, code)) => format!("the proxy refused the tunnel: {code}"),
                    None => format!("the proxy: {reason}"),
                },
            },
            ureq::Error::LargeResponseHeader(_, limit) => Error::Io {
                url,
                reason: format!("the response's head is larger than {limit} bytes"),
            },
            ureq::Error::Protocol(e) if e.to_string().contains("too many headers") => Error::Io {
                url,
                reason: format!("the response's head has more fields than are taken ({e})"),
            },
            // Our own request, not the server's answer: its head did not fit the buffer it
            // is written into (a header, cookie or URL of over 128 KiB).
            ureq::Error::Protocol(e) if e.to_string().contains("output too small") => Error::Io {
                url,
                reason: "the request's head is too large to send (over 128 KiB: a header, a \
                         cookie or the URL)"
                    .to_owned(),
            },
            // Most often a port that speaks something else (TLS, SSH, a line protocol).
            ureq::Error::Protocol(e) => Error::Io {
                url,
                reason: format!("the answer is not HTTP/1.x ({e})"),
            },
            other => Error::Io {
                url,
                reason: other.to_string(),
            },
        }
    }

    pub(crate) fn from_io(url: String, e: &std::io::Error) -> Error {
        use std::io::ErrorKind as K;
        // Bad input, found at the first TLS connection.
        if let Some(roots) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<crate::tls::SystemRootsError>())
        {
            return Error::File {
                path: roots.path.clone(),
                source: std::io::Error::new(K::InvalidData, roots.why.clone()),
            };
        }
        // rustls's own error, where a handshake failed inside a read or write.
        if let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Error::Tls {
                url,
                reason: tls_reason(tls),
            };
        }
        // std reports resolver failures (getaddrinfo) as an uncategorized error.
        let text = e.to_string();
        if text.contains("failed to lookup address") {
            return Error::Dns { url };
        }
        // rustls failures reach us wrapped in io::Error when they happen inside a read.
        if text.contains("InvalidContentType") {
            // What rustls reads when the first bytes back are not a TLS record.
            return Error::Tls {
                url,
                reason: format!(
                    "the server does not answer in TLS; {} ({text})",
                    other_scheme(true)
                ),
            };
        }
        if text.contains("peer certificate") || text.contains("TLS") || text.contains("handshake") {
            return Error::Tls { url, reason: text };
        }
        match e.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::AddrNotAvailable => Error::Connect {
                url,
                reason: e.to_string(),
            },
            K::TimedOut | K::WouldBlock => Error::Timeout {
                url,
                what: e.to_string(),
                kind: TimeoutKind::of_io(e).unwrap_or(TimeoutKind::Other),
            },
            _ => Error::Io {
                url,
                reason: e.to_string(),
            },
        }
    }

    /// Whether a retry may help: the connection failed or timed out.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::Timeout { .. } | Error::Io { .. }
        )
    }
}

/// The scheme to try when the server speaks the other of TLS and plain HTTP than the URL
/// asked for (`https`: the URL asked for TLS), said the same way both ways.
pub(crate) fn other_scheme(https: bool) -> &'static str {
    if https { "plain HTTP?" } else { "https?" }
}

/// rustls's refusal in one line naming the problem, as curl's (rustls's own words are its
/// type names, UNIX seconds, or a dump of algorithm identifiers).
fn tls_reason(error: &rustls::Error) -> String {
    use rustls::AlertDescription as Alert;
    match error {
        rustls::Error::InvalidCertificate(why) => certificate_reason(why),
        // What rustls reads when the first bytes back are not a TLS record.
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            format!("the server does not answer in TLS; {}", other_scheme(true))
        }
        // What rustls reads when the bytes back are our own ClientHello.
        rustls::Error::InappropriateHandshakeMessage {
            got_type: rustls::HandshakeType::ClientHello,
            ..
        } => "the server sent our own ClientHello back: not a TLS server (an echo?)".into(),
        rustls::Error::AlertReceived(Alert::ProtocolVersion) => {
            "the server speaks no TLS version netkit does (1.2 or 1.3): an older one only?".into()
        }
        rustls::Error::AlertReceived(Alert::CertificateRequired) => {
            "the server wants a client certificate".into()
        }
        // Alerts a client receives about a certificate are about the one it sent: curl's
        // "tlsv1 alert unknown ca" is rustls's "received fatal alert: UnknownCA".
        rustls::Error::AlertReceived(
            alert @ (Alert::UnknownCA
            | Alert::BadCertificate
            | Alert::CertificateExpired
            | Alert::CertificateRevoked
            | Alert::CertificateUnknown
            | Alert::UnsupportedCertificate
            | Alert::AccessDenied),
        ) => {
            let why = match alert {
                Alert::UnknownCA => "it does not trust its issuer",
                Alert::CertificateExpired => "expired",
                Alert::CertificateRevoked => "revoked",
                Alert::UnsupportedCertificate => "a certificate of a kind it does not take",
                Alert::AccessDenied => "access denied",
                _ => "a bad certificate",
            };
            format!("the server refused the client certificate: {why}")
        }
        rustls::Error::AlertReceived(Alert::HandshakeFailure) => {
            "the server refused the handshake: no cipher or TLS version in common, or it \
             wants a client certificate"
                .into()
        }
        other => other.to_string(),
    }
}

fn certificate_reason(why: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    let date = |t: &rustls::pki_types::UnixTime| {
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.as_secs()))
    };
    match why {
        C::ExpiredContext { not_after, .. } => {
            format!("the server's certificate expired on {}", date(not_after))
        }
        C::Expired => "the server's certificate has expired".into(),
        C::NotValidYetContext { not_before, .. } => format!(
            "the server's certificate is not valid before {}",
            date(not_before)
        ),
        C::NotValidYet => "the server's certificate is not valid yet".into(),
        // No subjectAltName at all: the name is in the Common Name alone, which browsers and
        // rustls no longer read (curl 7 still did).
        C::NotValidForNameContext {
            expected,
            presented,
        } if presented.is_empty() => format!(
            "the server's certificate has no subjectAltName, so it names no host; {:?} only \
             in its Common Name is no longer accepted",
            expected.to_str()
        ),
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = expected.to_str();
            let names: Vec<(&str, bool)> =
                presented.iter().filter_map(|p| presented_name(p)).collect();
            // An address is named by an `IP:` entry: one written as a DNS name names none.
            let as_dns = names.iter().any(|&(name, dns)| dns && name == expected);
            format!(
                "the server's certificate is for {}, not {expected}{}",
                names
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", "),
                if as_dns {
                    " (its subjectAltName holds the address as a DNS name, which names no \
                     address: it must be an IP entry)"
                } else {
                    ""
                }
            )
        }
        C::UnsupportedSignatureAlgorithmContext {
            signature_algorithm_id,
            ..
        } => match weak_hash(signature_algorithm_id) {
            Some(hash) => format!("a certificate of the server's is signed with {hash}, too weak"),
            None => {
                "a certificate of the server's is signed with an algorithm not supported".into()
            }
        },
        // ring refuses an RSA key under 2048 bits as a signature that does not verify; so
        // reads a self-signed `CN=localhost` checked against a trusted certificate of the
        // same name (Debian's ssl-cert snakeoil in /etc/ssl/certs).
        C::BadSignature => "a signature in the server's certificate chain does not verify \
                            (not signed by the trusted certificate of its issuer's name, as a \
                            self-signed one named like it; or an RSA key under 2048 bits)"
            .into(),
        C::UnknownIssuer => "the server's certificate is not signed by a trusted CA (self-signed, \
                             a private CA, or an intermediate the server does not send)"
            .into(),
        // webpki's name for a certificate marked CA:TRUE presented as a server's; a
        // self-signed one (`openssl req -x509`) is trusted from a CA file holding it.
        C::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            "the server presents a CA certificate (CA:TRUE) as its own, which is for signing \
             others; a CA file holding that very certificate trusts it (a test server's)"
                .into()
        }
        other => format!("invalid certificate: {other}"),
    }
}

/// A name of a certificate's subjectAltName from webpki's words for it (`DnsName("a.b")`,
/// `IpAddress(10.0.0.1)`), and whether it is a DNS name; `None` for an entry naming no host.
fn presented_name(presented: &str) -> Option<(&str, bool)> {
    let inside = |kind: &str| {
        presented
            .strip_prefix(kind)?
            .strip_prefix('(')?
            .strip_suffix(')')
            .map(|name| name.trim_matches('"'))
    };
    inside("DnsName")
        .map(|name| (name, true))
        .or_else(|| inside("IpAddress").map(|ip| (ip, false)))
        .or_else(|| inside("UniformResourceIdentifier").map(|uri| (uri, false)))
}

/// The hash of a signature algorithm too weak to be supported, by its DER identifier.
fn weak_hash(algorithm_id: &[u8]) -> Option<&'static str> {
    const WEAK: [(&[u8], &str); 4] = [
        // sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1, md5WithRSAEncryption.
        (b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05", "SHA-1"),
        (b"\x2a\x86\x48\xce\x3d\x04\x01", "SHA-1"),
        (b"\x2a\x86\x48\xce\x38\x04\x03", "SHA-1"),
        (b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x04", "MD5"),
    ];
    WEAK.iter()
        .find(|(oid, _)| algorithm_id.windows(oid.len()).any(|w| w == *oid))
        .map(|(_, hash)| *hash)
}
