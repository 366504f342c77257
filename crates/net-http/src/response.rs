use std::cell::OnceCell;
use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;
use ureq::http;

use crate::{Error, Preview, decode};

/// A response: status, headers and a body read once, as text, bytes, JSON or a stream.
pub struct Response {
    status: u16,
    reason: &'static str,
    version: &'static str,
    /// As ureq parsed them; turned into strings only when asked for, since a caller that
    /// only streams the body would pay a third of a keep-alive GET's instructions for them.
    map: http::HeaderMap,
    headers: OnceCell<Vec<(String, String)>>,
    url: String,
    body: ureq::Body,
    limit: u64,
    history: Vec<Response>,
    sent: Option<Preview>,
    /// The read timeout and the whole-transfer one, to word a body's timeout.
    timeouts: (Duration, Option<Duration>),
    /// Retries the request took to get this response.
    retried: u32,
    /// The request to send again when the body fails before its first byte, retries being
    /// left (see [`Counted`]).
    again: Option<Box<crate::Request>>,
    /// The request went through a proxy.
    proxied: bool,
}

/// A response's head as plain data (version, status, reason and headers), kept where its
/// body is gone: a download's went to the file, and its head is what `-h` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Head {
    /// The HTTP version, as `HTTP/1.1`.
    pub version: String,
    /// The status code.
    pub status: u16,
    /// The standard reason phrase of the status (`OK`, `Not Found`, ...).
    pub reason: String,
    /// Every header in order, names in lower case; a repeated header appears once per value.
    pub headers: Vec<(String, String)>,
}

/// How much of a followed redirect's body [`Response::history`] keeps.
const HISTORY_BODY: u64 = 64 << 10;

impl Response {
    pub(crate) fn new(response: http::Response<ureq::Body>, url: String, limit: u64) -> Self {
        let (parts, body) = response.into_parts();
        let version = match parts.version {
            http::Version::HTTP_09 => "HTTP/0.9",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/1.1",
        };
        Response {
            status: parts.status.as_u16(),
            reason: parts.status.canonical_reason().unwrap_or(""),
            version,
            map: parts.headers,
            headers: OnceCell::new(),
            url,
            body,
            limit,
            history: Vec::new(),
            sent: None,
            timeouts: (Duration::ZERO, None),
            retried: 0,
            again: None,
            proxied: false,
        }
    }

    /// A redirect that was followed, its body read now (up to [`HISTORY_BODY`]), which also
    /// frees the connection for the next hop.
    pub(crate) fn followed(response: http::Response<ureq::Body>, url: String) -> Self {
        let (parts, mut body) = response.into_parts();
        let mut data = Vec::new();
        // The redirect is followed whatever became of its body; what was read is kept.
        let _ = body.as_reader().take(HISTORY_BODY).read_to_end(&mut data);
        let body = ureq::Body::builder().data(data);
        Response::new(http::Response::from_parts(parts, body), url, HISTORY_BODY)
    }

    pub(crate) fn set_history(&mut self, history: Vec<Response>) {
        self.history = history;
    }

    pub(crate) fn set_timeouts(&mut self, read: Duration, whole: Option<Duration>) {
        self.timeouts = (read, whole);
    }

    pub(crate) fn set_retried(&mut self, retried: u32) {
        self.retried = retried;
    }

    /// Lets the body's reader send `request` again if the body fails before its first byte.
    pub(crate) fn set_again(&mut self, request: Option<crate::Request>) {
        self.again = request.map(Box::new);
    }

    pub(crate) fn set_proxied(&mut self, proxied: bool) {
        self.proxied = proxied;
    }

    /// Whether the request that got this response went through a proxy: only then is a 407
    /// the proxy asking for credentials (an origin server may answer 407 too).
    #[must_use]
    pub fn via_proxy(&self) -> bool {
        self.proxied
    }

    /// Retries the request took to get this response.
    pub(crate) fn retried(&self) -> u32 {
        self.retried
    }

    pub(crate) fn set_sent(&mut self, sent: Option<Preview>) {
        self.sent = sent;
    }

    /// The request that got this response when a redirect led to it, as it was sent (the
    /// first request is the caller's own: [`Request::preview`](crate::Request::preview)).
    #[must_use]
    pub fn redirected_request(&self) -> Option<&Preview> {
        self.sent.as_ref()
    }

    /// The redirects followed to get here, oldest first, as requests' `history`: status,
    /// headers, URL, and the first 64 KiB of each body.
    #[must_use]
    pub fn history(&self) -> &[Response] {
        &self.history
    }

    /// Takes [`history`](Self::history) out, to read the bodies (which consume a response).
    pub fn take_history(&mut self) -> Vec<Response> {
        std::mem::take(&mut self.history)
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The standard reason phrase of the status (`OK`, `Not Found`, ...).
    #[must_use]
    pub fn reason(&self) -> &str {
        self.reason
    }

    /// The HTTP version, as `HTTP/1.1`.
    #[must_use]
    pub fn version(&self) -> &str {
        self.version
    }

    /// The URL that answered, after redirects.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every header in order, names in lower case; a repeated header appears once per value.
    #[must_use]
    pub fn headers(&self) -> &[(String, String)] {
        self.headers.get_or_init(|| {
            self.map
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect()
        })
    }

    /// The head (version, status, reason and headers), copied out as plain data.
    #[must_use]
    pub fn head(&self) -> Head {
        Head {
            version: self.version.to_owned(),
            status: self.status,
            reason: self.reason.to_owned(),
            headers: self.headers().to_vec(),
        }
    }

    /// The first value of a header (name case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header (name case-insensitive), e.g. all `Set-Cookie`s.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers()
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Content-Length` announced, if any, and if the body is not framed by a
    /// `Transfer-Encoding` instead, which overrides it (RFC 9112 6.3).
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        if self.header("transfer-encoding").is_some() {
            return None;
        }
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }

    /// Sets the largest body that [`text`](Response::text), [`bytes`](Response::bytes) and
    /// [`json`](Response::json) read.
    #[must_use]
    pub fn body_limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// Turns a 4xx or 5xx response into [`Error::Status`], with the start of its body on one
    /// line: what one read gives of its first 200 bytes (it waits for the first bytes, up to
    /// the read timeout, but not for all 200 of a body that trickles), control and
    /// direction-changing characters escaped, as the server may have sent anything.
    ///
    /// # Errors
    /// [`Error::Status`] for 4xx and 5xx.
    pub fn error_for_status(self) -> Result<Self, Error> {
        if self.status < 400 {
            return Ok(self);
        }
        let (url, status, reason) = (self.url.clone(), self.status, self.reason.to_owned());
        let mut start = [0; 200];
        let got = self.reader().read(&mut start).unwrap_or(0);
        // On one line, as every error is shown; a character cut at the end is dropped.
        let text = String::from_utf8_lossy(&start[..got]);
        let words: Vec<&str> = text
            .trim_end_matches('\u{FFFD}')
            .split_whitespace()
            .collect();
        let excerpt = words
            .join(" ")
            .chars()
            .map(|c| match c {
                c if c.is_control()
                    || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') =>
                {
                    c.escape_unicode().to_string()
                }
                c => c.to_string(),
            })
            .collect();
        Err(Error::Status {
            url,
            status,
            reason,
            excerpt,
        })
    }

    /// The body as text, decoded from the charset the server names (UTF-8 by default).
    ///
    /// # Errors
    /// [`Error::BodyTooLarge`] past the body limit; [`Error::Io`] when reading fails.
    pub fn text(self) -> Result<String, Error> {
        let content_type = value(&self.map, http::header::CONTENT_TYPE).map(str::to_owned);
        let bytes = self.bytes()?;
        Ok(decode::text(&bytes, content_type.as_deref()))
    }

    /// The body as bytes.
    ///
    /// # Errors
    /// [`Error::BodyTooLarge`] past the body limit; [`Error::Io`] when reading fails.
    pub fn bytes(self) -> Result<Vec<u8>, Error> {
        let (url, limit) = (self.url.clone(), self.limit);
        let mut data = Vec::new();
        self.reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| Error::from_ureq(&url, e.into()))?;
        if data.len() as u64 > limit {
            return Err(Error::BodyTooLarge { url, limit });
        }
        Ok(data)
    }

    /// The body parsed as JSON into `T` (any `Deserialize`, or `serde_json::Value`).
    ///
    /// # Errors
    /// [`Error::Json`] when the body is not that JSON; the errors of [`bytes`](Response::bytes).
    pub fn json<T: DeserializeOwned>(self) -> Result<T, Error> {
        let url = self.url.clone();
        let bytes = self.bytes()?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { url, source })
    }

    /// The body as a stream of its bytes, decompressed (gzip, deflate, brotli) but otherwise
    /// as they came, without size limit. A body the server cuts short fails with
    /// [`std::io::ErrorKind::UnexpectedEof`], naming how much came of how much was announced
    /// (as curl's "transfer closed with N bytes remaining").
    #[must_use]
    pub fn reader(self) -> impl Read + Send + 'static {
        let codings = decode::Codings::of(
            self.map
                .get_all(http::header::CONTENT_ENCODING)
                .iter()
                .map(http::HeaderValue::as_bytes),
        );
        codings.undo(self.raw_reader())
    }

    /// Writes the body into `file` (`name` is how errors name it) from where it stands, as
    /// [`reader`](Response::reader) gives it, whatever the status, as curl's `-o` saves it.
    /// A body cut off or stalled mid-way is asked for again while retries are left, and
    /// `file`, a regular one, started over from where it stood, as curl's `--retry` truncates
    /// what it wrote: it never holds a cut body followed by another whole one. Returns the
    /// bytes written.
    ///
    /// # Errors
    /// [`Error::Timeout`] or [`Error::Io`] when the body fails (retries used up, or the
    /// request sent again gets another status: what came stays in `file`), [`Error::File`]
    /// when `file` cannot be written, and the errors of [`Request::send`](crate::Request::send).
    pub fn save_to(
        mut self,
        file: &mut std::fs::File,
        name: &std::path::Path,
    ) -> Result<u64, Error> {
        use std::io::Seek as _;
        let file_error = |source| Error::File {
            path: name.to_owned(),
            source,
        };
        // Retried here, written bytes and all, not by the reader, which retries only a body
        // not a byte of which was handed out.
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        let again = self.again.take().filter(|_| regular);
        let start = if regular {
            file.stream_position().map_err(file_error)?
        } else {
            0
        };
        let status = self.status;
        let mut cut = None;
        let error = match self.copy_into(file, name, &mut cut) {
            Err(error) => error,
            done => return done,
        };
        let Some(again) = again else {
            return Err(error);
        };
        again.again_while_cut(error, cut, |request, cut| {
            let response = request.send()?;
            if response.status() != status {
                return Err(Error::Io {
                    url: crate::error::redacted(&response.url),
                    reason: format!(
                        "sent again after its body was cut off, it answered {} instead of \
                         {status}; {} holds what came before",
                        response.status(),
                        name.display()
                    ),
                });
            }
            file.set_len(start).map_err(file_error)?;
            file.seek(std::io::SeekFrom::Start(start))
                .map_err(file_error)?;
            response.copy_into(file, name, cut)
        })
    }

    /// The body read into `file` to its end; a failure reading it sets `cut` to the retries
    /// the request used.
    fn copy_into(
        self,
        file: &mut std::fs::File,
        name: &std::path::Path,
        cut: &mut Option<u32>,
    ) -> Result<u64, Error> {
        use std::io::Write as _;
        let url = crate::error::redacted(&self.url);
        let retried = self.retried;
        let mut body = self.reader();
        let mut buf = vec![0; 64 << 10];
        let mut done = 0;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => return Ok(done),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    *cut = Some(retried);
                    // A reset mid-body is no failure to connect, as from_io would call it.
                    return Err(match Error::from_io(url.clone(), &e) {
                        timeout @ Error::Timeout { .. } => timeout,
                        _ => Error::Io {
                            url,
                            reason: e.to_string(),
                        },
                    });
                }
            };
            file.write_all(&buf[..n]).map_err(|source| Error::File {
                path: name.to_owned(),
                source,
            })?;
            done += n as u64;
        }
    }

    /// The body as it came, any `Content-Encoding` left on: what a download saves, as curl
    /// `-o` does (a `.tar.gz` a server labels gzip stays the `.tar.gz` file). It fails as
    /// [`reader`](Response::reader) does when the body is cut short.
    #[must_use]
    pub fn encoded_reader(self) -> impl Read + Send + 'static {
        self.raw_reader()
    }

    /// The body as it came, compressed or not: what a download saves, as curl `-o` does
    /// (it asks for no coding, so one sent anyway is the file's own, as a `.tar.gz` a
    /// server labels gzip), and what `Content-Length` counts.
    pub(crate) fn raw_reader(self) -> Counted {
        // Read from ureq's map: the headers as strings cost a streaming caller too much.
        let announced =
            value(&self.map, http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
        Counted {
            inner: self.body.into_reader(),
            read: 0,
            announced,
            timeouts: self.timeouts,
            status: self.status,
            again: self.again,
        }
    }

    /// As [`reader`](Self::reader), text turned into UTF-8 from the charset the
    /// `Content-Type` names, as it comes (for showing it; a body saved wants its bytes).
    #[must_use]
    pub fn text_reader(self) -> impl Read + Send + 'static {
        let content_type = value(&self.map, http::header::CONTENT_TYPE).map(str::to_owned);
        decode::text_reader(self.reader(), content_type.as_deref())
    }
}

/// The first value of a header as ureq parsed it, when it is text.
fn value(map: &http::HeaderMap, name: http::header::HeaderName) -> Option<&str> {
    map.get(name).and_then(|v| v.to_str().ok())
}

/// A body reader that counts what it gave, to say how much of the body a cut-short
/// connection left out. A body that fails before its first byte is asked for again, retries
/// being left, as curl's `--retry` takes a transfer that times out: nothing of it was handed
/// out, so nothing is given twice (past that, bytes already written to a pipe cannot be taken
/// back, and curl's retry wrote them twice).
pub(crate) struct Counted {
    inner: ureq::BodyReader<'static>,
    read: u64,
    announced: Option<u64>,
    timeouts: (Duration, Option<Duration>),
    /// The status of the response: the one sent again must give the same.
    status: u16,
    again: Option<Box<crate::Request>>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let error = match self.read_once(buf) {
                Err(e) if e.kind() != std::io::ErrorKind::Interrupted => e,
                done => return done,
            };
            let again = match self.again.take() {
                Some(again) if self.read == 0 => again,
                _ => return Err(error),
            };
            let Some(response) = again.body_again(&error, self.status) else {
                return Err(error);
            };
            *self = response.raw_reader();
        }
    }
}

impl Counted {
    fn read_once(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let read = self.read;
                let why = match self.announced {
                    Some(len) if len > read => format!(
                        "the connection closed {} bytes before the end of the body \
                         ({read} of {len} bytes came)",
                        len - read
                    ),
                    _ => format!(
                        "the connection closed before the end of the body (after {read} bytes)"
                    ),
                };
                Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, why))
            }
            // ureq's timeouts come wrapped as "other" errors; said as one, a caller can tell.
            Err(e) => Err(match ureq::Error::from(e) {
                // What ran out, in words: "timed out reading the body (per read)" named
                // ureq's timer, and a download said "timed out" twice.
                ureq::Error::Timeout(which) => {
                    let secs = |d: Duration| d.as_secs_f64();
                    let what = match (which, self.timeouts) {
                        (ureq::Timeout::Global, (_, Some(whole))) => format!(
                            "the whole transfer took longer than {} s, while the server sent \
                             the body",
                            secs(whole)
                        ),
                        (ureq::Timeout::PerRead, (read, _)) => format!(
                            "the server sent nothing for {} s while sending the body",
                            secs(read)
                        ),
                        (other, _) => format!("timed out while the server sent the body ({other})"),
                    };
                    let kind = crate::TimeoutKind::of(which);
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        crate::error::BodyTimeout { what, kind },
                    )
                }
                other => other.into_io(),
            }),
        }
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &crate::error::redacted(&self.url))
            .field("headers", &crate::error::redacted_headers(self.headers()))
            .finish_non_exhaustive()
    }
}
