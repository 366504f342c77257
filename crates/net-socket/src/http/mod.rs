//! The `http` service: an HTTP/1.1 static file server on `httparse`.

mod cache;
mod files;

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use httpdate::HttpDate;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use self::files::{Denial, Refusal, Span, Verdict};
use crate::Error;
use crate::handler::{CloseReason, ConnInfo, Context, Handler, Service};

/// Requests whose head (request line and headers) is longer get 431, however TCP split it:
/// nginx's default `large_client_header_buffers` hold 4 x 8 KiB.
const MAX_HEAD: usize = 32 * 1024;
/// Request lines longer than this get 414, as nginx's default `large_client_header_buffers`.
const MAX_REQUEST_LINE: usize = 8 * 1024;
/// More header fields get 431 (python's http.server takes 100; nginx counts only bytes).
const MAX_HEADERS: usize = 128;
/// The longest request line an access-log line gives of a request that could not be parsed.
const LOGGED_LINE: usize = 2048;
/// Bodies up to this size are copied behind the response head, so both leave in one write;
/// larger ones go by sendfile(2).
const INLINE_BODY: u64 = 64 * 1024;

/// Serves the files under a root directory over HTTP/1.1, like `python -m http.server`.
///
/// GET and HEAD; `Content-Type` by extension; `index.html` or an HTML listing for a
/// directory; `Range` requests (206, several ranges as `multipart/byteranges`; 416) with
/// `If-Range`; `Last-Modified` and `ETag` with
/// `If-None-Match`/`If-Modified-Since` (304) and `If-Match`/`If-Unmodified-Since` (412);
/// keep-alive, pipelining and HTTP/1.0. Paths that would leave the root get 403 or 404;
/// the kernel enforces it (openat2 with `RESOLVE_BENEATH`), symlinks included; where openat2 is
/// missing (Linux before 5.6, some container seccomp filters), a walk that opens one part at
/// a time and follows links by hand refuses the same paths.
/// One access-log line per request goes to the `netkit::access` log target at info level.
/// Pipelined requests are answered while the answers queued stay under the server's
/// [`max_pending_output`](crate::ServerBuilder::max_pending_output): `netkit serve http` sets
/// 64 KiB, so that a client that pipelines and never reads holds little memory and few
/// descriptors (at the default 1 MiB: up to 1 MiB, or one descriptor per file answer).
#[derive(Clone)]
pub struct HttpFiles {
    root: Arc<RootByName>,
    header_timeout: Duration,
    keep_alive_timeout: Duration,
    send_timeout: Duration,
}

impl std::fmt::Debug for HttpFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFiles")
            .field("root", &self.root.path)
            .field("header_timeout", &self.header_timeout)
            .field("keep_alive_timeout", &self.keep_alive_timeout)
            .field("send_timeout", &self.send_timeout)
            .finish()
    }
}

/// The directory served, looked up again by its name at most once a second: a deploy that
/// points the name at another directory (`current -> releases/v3`, `rm -rf dist && mkdir
/// dist`) is served within a second, as nginx (which opens by name per request) serves it,
/// where a descriptor held from the start served the old tree, then 404s once it was gone.
/// A name that no longer names a directory it can serve (`mv share private-archive`) takes
/// the old tree offline within that second too, as in nginx and python: held on to, it was
/// served for the life of the process.
struct RootByName {
    path: PathBuf,
    /// `None` while the name names nothing that can be served: every request is 404.
    current: RwLock<Option<Arc<Root>>>,
    /// When the name was last looked up, in ms after `since`.
    checked: AtomicU64,
    since: Instant,
    /// Why the name last could not be served, warned of once rather than each second; a
    /// directory refused is tried again only by the check once a second, not by each 404.
    unserved: Mutex<Option<Unserved>>,
}

/// What a root's name came to name that cannot be served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unserved {
    /// Nothing (moved away, removed), or something that cannot be looked at.
    Gone,
    /// The file or directory of this device and inode, which could not be opened as one.
    Refused((u64, u64)),
}

impl RootByName {
    fn get(&self) -> Option<Arc<Root>> {
        let now = self.since.elapsed().as_millis() as u64;
        let last = self.checked.load(Ordering::Relaxed);
        // One loop looks, the others go on with what they have.
        if now.saturating_sub(last) >= 1000
            && self
                .checked
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.look_up(true);
        }
        self.current()
    }

    fn current(&self) -> Option<Arc<Root>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Serves what the name names now, if it can, else nothing; `retry` tries again a
    /// directory it could not open before: its permissions may have been fixed since (a
    /// deploy's 0700 build directory, chmod'ed a moment later), which keeps its inode.
    fn look_up(&self, retry: bool) {
        let named = std::fs::metadata(&self.path).map(|meta| (meta.dev(), meta.ino()));
        if let (Ok(id), Some(root)) = (&named, self.current())
            && *id == root.id
        {
            return;
        }
        let mut unserved = self.unserved.lock().unwrap_or_else(PoisonError::into_inner);
        let now = named
            .as_ref()
            .map_or(Unserved::Gone, |id| Unserved::Refused(*id));
        let warned = *unserved == Some(now);
        if warned && (!retry || now == Unserved::Gone) {
            return;
        }
        match named.and_then(|_| Root::open_dir(&self.path)) {
            Ok(root) => {
                log::info!(
                    "{}: serving the directory it names now",
                    self.path.display()
                );
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(Arc::new(root));
                *unserved = None;
            }
            Err(_) if warned => {}
            Err(e) => {
                *unserved = Some(now);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = None;
                log::warn!(
                    "{}: {e}: every request is 404 until it names a directory again",
                    self.path.display()
                );
            }
        }
    }

    /// The file `rel` as this loop keeps it in memory, if it is still that file.
    fn kept(&self, rel: &OsStr) -> Option<Rc<cache::Cached>> {
        let root = self.get()?;
        cache::get(root.id, &root.dir, rel)
    }

    /// Keeps the file `rel`, just opened as `file`, in memory if it is worth it.
    fn keep(
        &self,
        rel: &OsStr,
        file: &File,
        meta: &std::fs::Metadata,
    ) -> Option<Rc<cache::Cached>> {
        cache::keep(self.current()?.id, rel, file, meta)
    }

    /// Whether `rel` is a directory under the root (see [`Root::is_dir`]).
    fn is_dir(&self, rel: &OsStr) -> bool {
        self.get().is_some_and(|root| root.is_dir(rel))
    }

    fn open(&self, rel: &OsStr) -> Result<File, Refusal> {
        let root = self.get();
        let opened = root
            .as_ref()
            .map_or(Err(Refusal::NotFound), |root| root.open(rel));
        match opened {
            // A deploy's new file, asked for within the second after the name moved to its
            // tree, would be a 404 a CDN keeps: the name is looked up again at once.
            Err(Refusal::NotFound) => {
                self.look_up(false);
                match self.current() {
                    Some(now) if !root.is_some_and(|root| Arc::ptr_eq(&now, &root)) => {
                        now.open(rel)
                    }
                    _ => Err(Refusal::NotFound),
                }
            }
            opened => opened,
        }
    }
}

struct Root {
    dir: OwnedFd,
    /// The directory's device and inode, to tell when its name has moved on.
    id: (u64, u64),
    /// The root with every symbolic link resolved, to tell where a link leads.
    canonical: PathBuf,
    /// openat2 works here (see [`files::has_openat2`]).
    beneath: bool,
}

impl Root {
    /// Opens the directory `path` names.
    fn open_dir(path: &Path) -> std::io::Result<Root> {
        // O_PATH, which asks for no read permission: a root that may be entered but not
        // listed (0711) has files to serve, as nginx and python serve them; its listing is
        // refused (403) when a request opens it for reading.
        let dir = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // O_PATH asks for no search permission either: a root that may not be entered
        // started, and answered 403 to everything without a word.
        nix::unistd::access(path, nix::unistd::AccessFlags::X_OK)?;
        let meta = File::from(dir.try_clone()?).metadata()?;
        let canonical = std::fs::canonicalize(path)?;
        let beneath = files::has_openat2(&dir);
        Ok(Root {
            dir,
            id: (meta.dev(), meta.ino()),
            canonical,
            beneath,
        })
    }

    /// Opens `rel` without leaving the root (see [`files::open_beneath`]). A path refused
    /// for a link that is absolute or climbs out through `..` is tried again by where it
    /// leads, as nginx and python follow it: inside the root (a deploy's `current ->
    /// /srv/www/releases/v2`), that place is opened the same safe way; outside, refused.
    fn open(&self, rel: &OsStr) -> Result<File, Refusal> {
        self.open_with(rel, files::FILE_FLAGS)
    }

    /// Whether `rel` is a directory, told without reading it: one that may be entered but
    /// not listed (0711) cannot be opened to be read.
    fn is_dir(&self, rel: &OsStr) -> bool {
        self.open_with(rel, OFlag::O_PATH | OFlag::O_CLOEXEC)
            .is_ok_and(|f| f.metadata().is_ok_and(|m| m.is_dir()))
    }

    /// [`open`](Self::open) with `flags` for the last part of the path.
    fn open_with(&self, rel: &OsStr, flags: OFlag) -> Result<File, Refusal> {
        let refused = match files::open_beneath(&self.dir, rel, self.beneath, flags) {
            Err(Refusal::Forbidden(why)) => Refusal::Forbidden(why),
            opened => return opened,
        };
        let Some(inside) = std::fs::canonicalize(self.canonical.join(rel))
            .ok()
            .and_then(|real| {
                Some(
                    real.strip_prefix(&self.canonical)
                        .ok()?
                        .as_os_str()
                        .to_owned(),
                )
            })
        else {
            return Err(refused);
        };
        let mut inside = if inside.is_empty() {
            ".".into()
        } else {
            inside
        };
        if rel.as_bytes().ends_with(b"/") {
            inside.push("/");
        }
        files::open_beneath(&self.dir, &inside, self.beneath, flags)
    }
}

impl HttpFiles {
    /// Serves `root`, a directory the process may enter (its listing needs read permission
    /// too).
    ///
    /// # Errors
    /// [`Error::Root`] when `root` is missing, cannot be entered or is not a directory; its
    /// path is absolute, so that `.` is named.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = root.into();
        let root_error = |source| Error::Root {
            path: std::path::absolute(&path).unwrap_or_else(|_| path.clone()),
            source,
        };
        let root = Root::open_dir(&path).map_err(root_error)?;
        if !root.beneath {
            log::warn!(
                "openat2 is not available (Linux before 5.6, or a seccomp filter): request \
                 paths are walked one part at a time instead"
            );
        }
        Ok(HttpFiles {
            root: Arc::new(RootByName {
                path,
                current: RwLock::new(Some(Arc::new(root))),
                checked: AtomicU64::new(0),
                since: Instant::now(),
                unserved: Mutex::new(None),
            }),
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
        })
    }

    /// How long a client may take to send a request's headers before it gets 408 and is
    /// closed (default 10 s).
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long an idle keep-alive connection is kept open (default 60 s).
    #[must_use]
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// How long a client may take none of a response before it is dropped (default 60 s),
    /// as nginx's `send_timeout`: counted between writes, which a slow reader leaves
    /// seconds apart once the socket buffers (megabytes) are full, so it is apart from the
    /// keep-alive timeout, which proxies want short.
    #[must_use]
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }
}

/// The answer of a client refused at `max_connections` (RFC 9110 allows a 5xx without Date).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nServer: netkit\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 24\r\nConnection: close\r\n\r\n\
503 Service Unavailable\n";
/// The body of [`REFUSAL`], which its access-log line counts.
const REFUSAL_BODY: usize = b"503 Service Unavailable\n".len();

impl Service for HttpFiles {
    type Handler = HttpConn;

    fn refusal(&self) -> &[u8] {
        REFUSAL
    }

    fn on_refused(&self, peer: SocketAddr, received: &[u8], sent: usize) {
        // As nginx logs its limit_conn 503s: they are the lines an overload shows in.
        let body = sent.saturating_sub(REFUSAL.len() - REFUSAL_BODY);
        access_log(peer, request_line(received), 503, body as u64);
    }

    fn connect(&self, _info: &ConnInfo) -> HttpConn {
        HttpConn {
            root: Arc::clone(&self.root),
            header_timeout: self.header_timeout,
            keep_alive_timeout: self.keep_alive_timeout,
            send_timeout: self.send_timeout,
            input: Vec::new(),
            skip_body: 0,
            head_timer: false,
            body_timer: false,
            eof: false,
            done: false,
            stopping: false,
            stalled: None,
            head_only: false,
            requests: Vec::new(),
            logs: VecDeque::new(),
            body_start: 0,
        }
    }
}

/// One HTTP connection of [`HttpFiles`].
pub struct HttpConn {
    root: Arc<RootByName>,
    header_timeout: Duration,
    keep_alive_timeout: Duration,
    send_timeout: Duration,
    /// Received bytes not yet handled (a partial request, or requests held back while the
    /// output is over the limit).
    input: Vec<u8>,
    /// Request body bytes still to discard.
    skip_body: u64,
    /// The header timer runs for the partial request in `input` (from the accept for the
    /// first).
    head_timer: bool,
    /// The timer runs out the body being discarded (`skip_body`).
    body_timer: bool,
    eof: bool,
    /// The connection closes after the responses already queued.
    done: bool,
    /// The server is stopping gracefully: the request in hand is answered, and the
    /// connection closed after it.
    stopping: bool,
    /// The request being answered is a HEAD: no response to it has a body, an error's
    /// included (RFC 9110 9.3.2), or the next response's head would come after those bytes.
    head_only: bool,
    /// While a response goes out: the output pending, and since when it has been that much.
    /// The same for a whole send timeout, and the client has stopped reading.
    stalled: Option<(u64, Instant)>,
    /// The request lines of the responses in `logs`, one after another.
    requests: Vec<u8>,
    /// Access-log lines of responses queued and not all gone yet, in request order: nginx's
    /// `$body_bytes_sent` counts what went, so a download cut short is not logged whole.
    logs: VecDeque<Logged>,
    /// Where the body of the response whose head was queued last starts in the output.
    body_start: u64,
}

/// The access-log line of a response, waiting for the response to go.
struct Logged {
    /// Where its request line lies in `HttpConn::requests`.
    line: (usize, usize),
    status: u16,
    /// Where its body starts and ends in the connection's output (`Context::output_end`).
    body: (u64, u64),
}

impl std::fmt::Debug for HttpConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConn")
            .field("root", &self.root.path)
            .field("buffered", &self.input.len())
            .finish_non_exhaustive()
    }
}

/// The parts of a request the responder reads.
#[derive(Clone)]
struct Request<'a> {
    method: &'a str,
    target: &'a str,
    range: Option<&'a str>,
    if_range: Option<&'a str>,
    conditions: files::Conditions<'a>,
}

/// Where the body of a file's response comes from.
enum Source {
    /// Opened for this request, with what stat said of it then.
    File(File, std::fs::Metadata),
    /// Kept in memory by this event loop (see [`cache`]).
    Kept(Rc<cache::Cached>),
}

impl Source {
    /// Another handle on the same bytes, one per part of a multipart answer: the output
    /// queue owns what it sends from.
    fn try_clone(&self) -> std::io::Result<Source> {
        Ok(match self {
            Source::File(file, meta) => Source::File(file.try_clone()?, meta.clone()),
            Source::Kept(kept) => Source::Kept(Rc::clone(kept)),
        })
    }
}

/// A response head about to be written.
struct Head<'a> {
    status: u16,
    keep_alive: bool,
    content_type: &'a str,
    length: u64,
    last_modified: Option<SystemTime>,
    /// Empty when the response has none.
    etag: &'a str,
    extra: &'a [(&'a str, &'a str)],
}

impl HttpConn {
    fn feed(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if self.done {
            return;
        }
        if self.input.is_empty() {
            let used = self.handle(ctx, data);
            self.input.extend_from_slice(&data[used..]);
        } else {
            self.input.extend_from_slice(data);
            let mut input = std::mem::take(&mut self.input);
            let used = self.handle(ctx, &input);
            input.drain(..used);
            self.input = input;
        }
        if self.done {
            self.input.clear();
            ctx.close();
            return;
        }
        let partial = !self.input.is_empty() && self.skip_body == 0 && !ctx.over_limit();
        if partial && !self.head_timer {
            self.head_timer = true;
            ctx.set_timer(self.header_timeout);
        } else if self.skip_body > 0 {
            // A body we only throw away gets the header timeout once, from its head, not a
            // keep-alive timeout per byte: one byte a minute held the slot for ever (nginx
            // gives up on such a body after 5 s, its lingering_timeout).
            if !std::mem::replace(&mut self.body_timer, true) {
                ctx.set_timer(self.header_timeout);
            }
        } else if self.input.is_empty() {
            self.head_timer = false;
            self.body_timer = false;
            self.watch(ctx);
        }
        if self.eof && (self.input.is_empty() || partial) {
            ctx.close();
        }
        if self.stopping && self.input.is_empty() && self.skip_body == 0 {
            ctx.close();
        }
    }

    /// Answers the complete requests at the start of `input`; returns the bytes used.
    fn handle(&mut self, ctx: &mut Context<'_>, input: &[u8]) -> usize {
        let mut used = 0;
        while !self.done && !ctx.over_limit() {
            if self.skip_body > 0 {
                let n = self.skip_body.min((input.len() - used) as u64);
                used += n as usize;
                self.skip_body -= n;
                if self.skip_body > 0 {
                    break;
                }
            }
            if used == input.len() {
                break;
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&input[used..]) {
                Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => {
                    self.fail(ctx, &input[used..], 431, "Request Header Fields Too Large");
                }
                Ok(httparse::Status::Complete(n)) => {
                    used += n;
                    // Each request's body (pipelined ones too) gets a timeout of its own.
                    self.head_timer = false;
                    self.body_timer = false;
                    self.respond(ctx, &input[used - n..], &parsed);
                }
                Ok(httparse::Status::Partial) => {
                    if let Some((status, reason)) = oversized(&input[used..]) {
                        self.fail(ctx, &input[used..], status, reason);
                    }
                    break;
                }
                Err(httparse::Error::TooManyHeaders) => {
                    self.fail(ctx, &input[used..], 431, "Request Header Fields Too Large");
                }
                Err(httparse::Error::Version) if asks_a_later_http(&input[used..]) => {
                    self.fail(ctx, &input[used..], 505, "HTTP Version Not Supported");
                }
                Err(httparse::Error::Version | httparse::Error::Token) => {
                    // What httparse refuses and nginx serves, mended in a copy of the head
                    // (rare enough to pay for one) and parsed again.
                    let pending = &input[used..];
                    let Some((head, grown)) = mended(pending) else {
                        // Its request line not all here yet (`GET /caf\xe9 ` in one segment),
                        // it is judged once it is, as a partial head is.
                        if !pending[blank_lines(pending)..].contains(&b'\n') {
                            if let Some((status, reason)) = oversized(pending) {
                                self.fail(ctx, pending, status, reason);
                            }
                            break;
                        }
                        self.fail(ctx, pending, 400, "Bad Request");
                        continue;
                    };
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut parsed = httparse::Request::new(&mut headers);
                    match parsed.parse(&head) {
                        // The mending only grew the request line, which `n` covers.
                        Ok(httparse::Status::Complete(n)) if n - grown > MAX_HEAD => {
                            self.fail(ctx, &input[used..], 431, "Request Header Fields Too Large");
                        }
                        Ok(httparse::Status::Complete(n)) => {
                            // The bytes as received, for the log line to say `HTTP/1.7` and
                            // `\xE9` as sent.
                            let raw = &input[used..used + n - grown];
                            used += raw.len();
                            self.head_timer = false;
                            self.body_timer = false;
                            self.respond(ctx, raw, &parsed);
                        }
                        Ok(httparse::Status::Partial) => {
                            if let Some((status, reason)) = oversized(&input[used..]) {
                                self.fail(ctx, &input[used..], status, reason);
                            }
                            break;
                        }
                        Err(httparse::Error::TooManyHeaders) => {
                            self.fail(ctx, &input[used..], 431, "Request Header Fields Too Large");
                        }
                        Err(_) => self.fail(ctx, &input[used..], 400, "Bad Request"),
                    }
                }
                Err(_) => self.fail(ctx, &input[used..], 400, "Bad Request"),
            }
        }
        used
    }

    /// Answers a request that could not be parsed, and closes; `raw` is where it starts in
    /// the input, its request line logged as received, as nginx logs it.
    fn fail(&mut self, ctx: &mut Context<'_>, raw: &[u8], status: u16, reason: &str) {
        self.done = true;
        self.error(ctx, status, false, &[]);
        let line_start = self.requests.len();
        self.requests.extend_from_slice(request_line(raw));
        self.record(ctx, line_start, status);
        // As nginx logs a bad request's reason at info: the access line alone says only 400.
        log::info!("{}: {status}: {reason}", ctx.peer());
    }

    /// Notes the access-log line of the response just queued, whose request line `requests`
    /// holds from `line_start`; it is written once the response has gone.
    fn record(&mut self, ctx: &mut Context<'_>, line_start: usize, status: u16) {
        let end = ctx.output_end();
        self.logs.push_back(Logged {
            line: (line_start, self.requests.len()),
            status,
            body: (self.body_start.min(end), end),
        });
        if self.logs.len() == 1 {
            ctx.notify_sent(end);
        }
    }

    /// Answers the request `parsed` from `raw`, the bytes it was parsed from.
    fn respond(&mut self, ctx: &mut Context<'_>, raw: &[u8], parsed: &httparse::Request<'_, '_>) {
        let (Some(method), Some(target), Some(minor)) =
            (parsed.method, parsed.path, parsed.version)
        else {
            return self.fail(ctx, raw, 400, "incomplete request line");
        };
        if target.len() > MAX_REQUEST_LINE {
            return self.fail(ctx, raw, 414, "URI Too Long");
        }
        let mut request = Request {
            method,
            target,
            range: None,
            if_range: None,
            conditions: files::Conditions::default(),
        };
        let mut keep_alive = minor >= 1;
        // `close` wins over a `keep-alive` beside it or after it (RFC 9112 9.6).
        let mut close = false;
        let mut has_host = false;
        let mut length = None;
        let mut chunked = false;
        let mut expects_continue = false;
        for header in parsed.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("host") {
                // Two could name two sites to two servers on the way (RFC 9112 3.2).
                if has_host {
                    return self.fail(ctx, raw, 400, "more than one Host");
                }
                if !valid_host(header.value) {
                    return self.fail(ctx, raw, 400, "bad Host");
                }
                has_host = true;
                continue;
            }
            let Ok(value) = std::str::from_utf8(header.value) else {
                // Passed over, the body of `Content-Length: 36\xff` would be read as the next
                // request, where a proxy in front took it for a body: refused, as nginx does.
                if ["content-length", "transfer-encoding"]
                    .iter()
                    .any(|framing| name.eq_ignore_ascii_case(framing))
                {
                    return self.fail(ctx, raw, 400, "a framing field that is not text");
                }
                continue;
            };
            if name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(ows) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") && minor == 0 && !close {
                        keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                let len = files::digits(ows(value));
                // Two that differ frame the request two ways (RFC 9112 6.3).
                match len {
                    Some(len) if length.is_none_or(|seen| seen == len) => length = Some(len),
                    _ => return self.fail(ctx, raw, 400, "bad Content-Length"),
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // A body whose end cannot be found (its last coding not chunked) is refused
                // (RFC 9112 6.3). We never read request bodies, and cannot find where a
                // chunked one ends without decoding it: answer this request, then close.
                let last = ows(value.rsplit(',').next().unwrap_or_default());
                if !last.eq_ignore_ascii_case("chunked") {
                    return self.fail(ctx, raw, 400, "a Transfer-Encoding not ending in chunked");
                }
                chunked = true;
                keep_alive = false;
            } else if name.eq_ignore_ascii_case("expect") {
                expects_continue = ows(value).eq_ignore_ascii_case("100-continue");
            } else if name.eq_ignore_ascii_case("range") {
                request.range = Some(value);
            } else if name.eq_ignore_ascii_case("if-range") {
                request.if_range = Some(value);
            } else if name.eq_ignore_ascii_case("if-modified-since") {
                request.conditions.if_modified_since = Some(value);
            } else if name.eq_ignore_ascii_case("if-unmodified-since") {
                request.conditions.if_unmodified_since = Some(value);
            } else if name.eq_ignore_ascii_case("if-none-match") {
                joined(&mut request.conditions.if_none_match, value);
            } else if name.eq_ignore_ascii_case("if-match") {
                joined(&mut request.conditions.if_match, value);
            }
        }
        if minor >= 1 && !has_host {
            return self.fail(ctx, raw, 400, "HTTP/1.1 request without Host");
        }
        // Framed two ways, or chunked where HTTP/1.0 has no chunks: a proxy in front may
        // have read it the other way (RFC 9112 6.1), so refused, as nginx refuses both.
        if chunked && (length.is_some() || minor == 0) {
            return self.fail(
                ctx,
                raw,
                400,
                "a body framed by Transfer-Encoding and otherwise",
            );
        }
        match length {
            // Not worth reading to throw away: answered, then closed.
            Some(len) if len > MAX_DISCARDED_BODY => keep_alive = false,
            Some(len) => {
                self.skip_body = len;
                // The client waits for this before it sends the body; answered without it,
                // a client such as curl sends its next request instead, which would be
                // thrown away as this body (and the one after it read as a request).
                if len > 0 && expects_continue && minor >= 1 {
                    ctx.output_buffer()
                        .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
            }
            None => {}
        }
        keep_alive &= !self.stopping;
        if !keep_alive {
            self.done = true;
        }
        self.head_only = method == "HEAD";
        let line_start = self.requests.len();
        // The request line as sent, past the empty lines httparse skips before one: a later
        // minor version (parsed as 1.1) and a target percent-encoded to be parsed at all are
        // logged as they came (`HTTP/1.7`, `/caf\xE9`), as nginx logs them.
        self.requests.extend_from_slice(sent_line(raw));
        let status = match method {
            "GET" | "HEAD" => self.serve(ctx, &request, keep_alive),
            // Methods are case-sensitive (RFC 9110 9.1): a known one is not allowed here, any
            // other (`get`, `FOO`) is not implemented.
            "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "TRACE" | "CONNECT" => {
                self.error(ctx, 405, keep_alive, &[("Allow", "GET, HEAD")]);
                405
            }
            _ => {
                self.error(ctx, 501, keep_alive, &[("Allow", "GET, HEAD")]);
                501
            }
        };
        self.head_only = false;
        self.record(ctx, line_start, status);
    }

    /// Answers a GET or HEAD; returns the status.
    fn serve(&mut self, ctx: &mut Context<'_>, req: &Request<'_>, keep_alive: bool) -> u16 {
        let refused = |this: &mut Self, ctx: &mut Context<'_>, refusal| {
            let status = match refusal {
                Refusal::BadRequest => 400,
                Refusal::Forbidden(why) => return this.forbid(ctx, req.target, why, keep_alive),
                Refusal::NotFound => 404,
                Refusal::Failed => 500,
            };
            this.error(ctx, status, keep_alive, &[]);
            status
        };
        let rel = match files::relative_path(req.target) {
            Ok(rel) => rel,
            Err(refusal) => return refused(self, ctx, refusal),
        };
        let source = if let Some(kept) = self.root.kept(&rel) {
            Source::Kept(kept)
        } else {
            let file = match self.root.open(&rel) {
                Ok(file) => file,
                // A directory that may be entered but not listed (0711) still has its index to
                // serve, as nginx serves it; only its listing is refused.
                Err(refusal @ Refusal::Forbidden(Denial::Denied(_)))
                    if files::names_a_dir(&rel) =>
                {
                    return match self.serve_index(ctx, req, &rel, keep_alive) {
                        Some(status) => status,
                        None => refused(self, ctx, refusal),
                    };
                }
                // Named without its `/`, it is redirected to it as a listable one is (nginx's
                // 301), for its index to be found there.
                Err(Refusal::Forbidden(Denial::Denied(_))) if self.root.is_dir(&rel) => {
                    return self.redirect_to_dir(ctx, req, &rel, keep_alive);
                }
                Err(refusal) => return refused(self, ctx, refusal),
            };
            let Ok(meta) = file.metadata() else {
                return refused(self, ctx, Refusal::NotFound);
            };
            if meta.is_dir() {
                return self.serve_dir(ctx, req, &rel, file, keep_alive);
            }
            if !meta.is_file() {
                return refused(self, ctx, Refusal::Forbidden(Denial::NotAFile));
            }
            match self.root.keep(&rel, &file, &meta) {
                Some(kept) => Source::Kept(kept),
                None => Source::File(file, meta),
            }
        };
        let (len, modified, content_type, etag) = match &source {
            Source::File(_, meta) => {
                let modified = meta.modified().ok();
                // From the time as it is: clamped to what a date can say, every file before
                // 1970 had one tag per size.
                let etag = files::etag(modified, meta.len());
                (
                    meta.len(),
                    modified,
                    content_type(Path::new(&rel)),
                    etag.into(),
                )
            }
            Source::Kept(kept) => (
                kept.bytes.len() as u64,
                kept.modified,
                kept.content_type,
                std::borrow::Cow::Borrowed(kept.etag.as_str()),
            ),
        };
        let modified = modified.map(http_time);
        // A time still to come (a fast clock on the build host, an archive's local time) is
        // told as now: a Last-Modified must not be later than the Date (RFC 9110 8.8.2.1).
        let mtime = modified.map(|t| t.min(now()));
        if let Some(answered) = self.preconditions(ctx, req, &etag, mtime, keep_alive) {
            return answered;
        }
        let span = match req.range {
            Some(range) if files::range_applies(req.if_range, &etag, mtime) => {
                files::range(range, len)
            }
            _ => Span::Whole,
        };
        let (start, count, content_range) = match span {
            Span::Whole => (0, len, String::new()),
            Span::Part { start, end } => {
                (start, end - start + 1, format!("bytes {start}-{end}/{len}"))
            }
            Span::Parts(parts) => {
                return self.serve_parts(
                    ctx,
                    req,
                    &source,
                    &parts,
                    (len, mtime, &etag, content_type),
                    keep_alive,
                );
            }
            Span::Unsatisfiable => {
                let unsatisfied = format!("bytes */{len}");
                self.error(ctx, 416, keep_alive, &[("Content-Range", &unsatisfied)]);
                return 416;
            }
        };
        let status = if content_range.is_empty() { 200 } else { 206 };
        let extra: &[(&str, &str)] = if content_range.is_empty() {
            &[]
        } else {
            &[("Content-Range", &content_range)]
        };
        self.head(
            ctx,
            &Head {
                status,
                keep_alive,
                content_type,
                length: count,
                last_modified: mtime,
                etag: &etag,
                extra,
            },
        );
        if req.method != "HEAD" && count > 0 {
            self.queue_body(ctx, Ok(source), req.target, start, count);
        }
        status
    }

    /// A 206 with several parts of one file, as a `multipart/byteranges` body laid out as
    /// nginx lays it out.
    fn serve_parts(
        &mut self,
        ctx: &mut Context<'_>,
        req: &Request<'_>,
        source: &Source,
        parts: &[(u64, u64)],
        (len, mtime, etag, content_type): (u64, Option<SystemTime>, &str, &str),
        keep_alive: bool,
    ) -> u16 {
        let boundary = boundary();
        let heads: Vec<String> = parts
            .iter()
            .map(|(start, end)| {
                format!(
                    "\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\
                     Content-Range: bytes {start}-{end}/{len}\r\n\r\n"
                )
            })
            .collect();
        let tail = format!("\r\n--{boundary}--\r\n");
        let length = heads.iter().map(|h| h.len() as u64).sum::<u64>()
            + parts
                .iter()
                .map(|(start, end)| end - start + 1)
                .sum::<u64>()
            + tail.len() as u64;
        let multipart = format!("multipart/byteranges; boundary={boundary}");
        self.head(
            ctx,
            &Head {
                status: 206,
                keep_alive,
                content_type: &multipart,
                length,
                last_modified: mtime,
                etag,
                extra: &[],
            },
        );
        if req.method == "HEAD" {
            return 206;
        }
        for (head, (start, end)) in heads.iter().zip(parts) {
            ctx.output_buffer().extend_from_slice(head.as_bytes());
            if !self.queue_body(ctx, source.try_clone(), req.target, *start, end - start + 1) {
                return 206;
            }
        }
        ctx.output_buffer().extend_from_slice(tail.as_bytes());
        206
    }

    /// Queues `count` bytes of `source` from `start`: copied behind what is queued when small
    /// or kept, else sent by sendfile. False when the file cannot be read: the head promised
    /// bytes we cannot send, so the connection is cut (the client must not take a short body).
    fn queue_body(
        &mut self,
        ctx: &mut Context<'_>,
        source: std::io::Result<Source>,
        target: &str,
        start: u64,
        count: u64,
    ) -> bool {
        let result = source.and_then(|source| {
            let file = match source {
                Source::File(file, _) => file,
                Source::Kept(kept) => {
                    // The span was worked out from the kept length, so it lies within.
                    let part = usize::try_from(start)
                        .ok()
                        .zip(usize::try_from(start + count).ok())
                        .and_then(|(from, to)| kept.bytes.get(from..to))
                        .unwrap_or_default();
                    ctx.output_buffer().extend_from_slice(part);
                    return Ok(());
                }
            };
            if count > INLINE_BODY {
                ctx.write_file(file, start, count);
                return Ok(());
            }
            let buf = ctx.output_buffer();
            let at = buf.len();
            // `count` is at most INLINE_BODY, so it fits in usize.
            buf.resize(at + count as usize, 0);
            let read = file.read_exact_at(&mut buf[at..], start);
            if read.is_err() {
                buf.truncate(at);
            }
            read
        });
        if let Err(e) = result {
            log::warn!("reading {target}: {e}");
            self.done = true;
            return false;
        }
        true
    }

    fn serve_dir(
        &mut self,
        ctx: &mut Context<'_>,
        req: &Request<'_>,
        rel: &OsStr,
        dir: File,
        keep_alive: bool,
    ) -> u16 {
        // A removed directory still open here would list as empty; it is gone, as nginx's 404.
        if dir.metadata().is_ok_and(|m| m.nlink() == 0) {
            self.error(ctx, 404, keep_alive, &[]);
            return 404;
        }
        if !files::names_a_dir(rel) {
            return self.redirect_to_dir(ctx, req, rel, keep_alive);
        }
        if let Some(status) = self.serve_index(ctx, req, rel, keep_alive) {
            return status;
        }
        let hidden = match self.root.open(&index_of(rel)) {
            // An index there but not readable still hides the directory, as nginx's 403.
            Err(Refusal::Forbidden(why))
                if nix::sys::stat::fstatat(
                    &dir,
                    "index.html",
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .is_ok() =>
            {
                Some(why)
            }
            // Opened, yet no file to serve: a FIFO or a directory by that name listed what
            // the index was put there to hide (nginx: 404 or a redirect).
            Ok(_) => Some(Denial::NotAFile),
            Err(_) => None,
        };
        if let Some(why) = hidden {
            let target = format!("{}index.html", files::dir_url(rel));
            return self.forbid(ctx, &target, why, keep_alive);
        }
        // A listing has no validators, but `If-Match` and `If-None-Match: *` still guard it.
        if let Some(answered) = self.preconditions(ctx, req, "", None, keep_alive) {
            return answered;
        }
        let link_kind = |name: &OsStr| {
            let path = files::child(rel, name);
            match self.root.open(&path) {
                Ok(f) => Some(f.metadata().is_ok_and(|m| m.is_dir())),
                Err(Refusal::Forbidden(Denial::Outside)) => None,
                // A dangling link, or one to what may not be read, is listed, as nginx lists
                // it (a directory that may be entered but not listed, as one).
                Err(_) => Some(self.root.is_dir(&path)),
            }
        };
        match files::listing(dir, rel, link_kind) {
            Ok(html) => {
                let len = html.len() as u64;
                self.head(
                    ctx,
                    &Head {
                        status: 200,
                        keep_alive,
                        content_type: "text/html; charset=utf-8",
                        length: len,
                        last_modified: None,
                        etag: "",
                        extra: &[],
                    },
                );
                if req.method == "GET" {
                    ctx.write(html.as_bytes());
                }
                200
            }
            Err(e) => {
                log::warn!("listing {}: {e}", rel.display());
                self.error(ctx, 403, keep_alive, &[]);
                403
            }
        }
    }

    /// Answers 301 to the directory `rel` named without its trailing `/`.
    fn redirect_to_dir(
        &mut self,
        ctx: &mut Context<'_>,
        req: &Request<'_>,
        rel: &OsStr,
        keep_alive: bool,
    ) -> u16 {
        // Made from the path as resolved, not as sent: `//evil.com` or `/\evil.com/..`
        // would send a browser to another host (python's http.server had this hole,
        // CVE-2021-28861); nginx redirects to the resolved path too.
        let path = files::dir_url(rel);
        // The query goes along, as nginx and python's http.server keep it.
        let location = match req.target.split('#').next().and_then(|t| t.split_once('?')) {
            Some((_, query)) => format!("{path}?{query}"),
            None => path,
        };
        self.error(ctx, 301, keep_alive, &[("Location", &location)]);
        301
    }

    /// Serves the `index.html` of the directory `rel` (requested as a path ending in `/`),
    /// with its status; `None` when there is no such file to serve.
    fn serve_index(
        &mut self,
        ctx: &mut Context<'_>,
        req: &Request<'_>,
        rel: &OsStr,
        keep_alive: bool,
    ) -> Option<u16> {
        let file = self.root.open(&index_of(rel)).ok()?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return None;
        }
        // From the path as resolved: `/d/.` or `/d%2F` named `d/`, not `d/.index.html`.
        let target = format!("{}index.html", files::dir_url(rel));
        let inner = Request {
            target: &target,
            ..req.clone()
        };
        Some(self.serve(ctx, &inner, keep_alive))
    }

    /// Answers 403 to a request for `target`, and logs why.
    fn forbid(
        &mut self,
        ctx: &mut Context<'_>,
        target: &str,
        why: Denial,
        keep_alive: bool,
    ) -> u16 {
        log::info!(
            "{} \"{}\": 403: {why}",
            ctx.peer(),
            Escaped(target.as_bytes())
        );
        self.error(ctx, 403, keep_alive, &[]);
        403
    }

    /// Answers 304 or 412 when the request's conditions ask for it, with the status; `None`
    /// when the representation is to be sent.
    fn preconditions(
        &mut self,
        ctx: &mut Context<'_>,
        req: &Request<'_>,
        etag: &str,
        mtime: Option<SystemTime>,
        keep_alive: bool,
    ) -> Option<u16> {
        match files::evaluate(&req.conditions, etag, mtime) {
            Verdict::Send => None,
            Verdict::NotModified => {
                self.head(
                    ctx,
                    &Head {
                        status: 304,
                        keep_alive,
                        content_type: "",
                        length: 0,
                        last_modified: mtime,
                        etag,
                        extra: &[],
                    },
                );
                Some(304)
            }
            Verdict::PreconditionFailed => {
                self.error(ctx, 412, keep_alive, &[]);
                Some(412)
            }
        }
    }

    /// Writes a short plain-text error response.
    /// Sets the timer that ends an idle keep-alive connection or, while a response goes out,
    /// looks a quarter of the send timeout later whether the client took any of it: looking
    /// once a timeout, a client that stopped reading held its slot for two or three (180 s
    /// where nginx's send_timeout takes 60).
    fn watch(&mut self, ctx: &mut Context<'_>) {
        let pending = ctx.pending_output();
        if pending == 0 {
            self.stalled = None;
            ctx.set_timer(self.keep_alive_timeout);
            return;
        }
        if self.stalled.is_none_or(|(before, _)| before != pending) {
            self.stalled = Some((pending, Instant::now()));
        }
        ctx.set_timer(self.send_timeout / 4);
    }

    fn error(
        &mut self,
        ctx: &mut Context<'_>,
        status: u16,
        keep_alive: bool,
        extra: &[(&str, &str)],
    ) {
        // As nginx: a server that failed (a file it could not open at EMFILE) or does not
        // know the method gives back the connection, and with it a descriptor; 50 clients
        // keeping theirs after a 500 at `ulimit -n 64` left a newcomer waiting 60 s.
        if matches!(status, 500 | 501) {
            self.done = true;
        }
        let reason = reason(status);
        self.head(
            ctx,
            &Head {
                status,
                keep_alive,
                content_type: "text/plain; charset=utf-8",
                length: (status.to_string().len() + 1 + reason.len() + 1) as u64,
                last_modified: None,
                etag: "",
                extra,
            },
        );
        if !self.head_only {
            let _ = writeln!(ctx.output_buffer(), "{status} {reason}");
        }
    }

    fn head(&mut self, ctx: &mut Context<'_>, head: &Head<'_>) {
        let buf = ctx.output_buffer();
        // Writing into a Vec cannot fail.
        let _ = write!(
            buf,
            "HTTP/1.1 {} {}\r\nServer: netkit\r\nDate: {}\r\n",
            head.status,
            reason(head.status),
            date_now()
        );
        if !head.content_type.is_empty() {
            let _ = write!(buf, "Content-Type: {}\r\n", head.content_type);
        }
        if head.status != 304 {
            let _ = write!(buf, "Content-Length: {}\r\n", head.length);
        }
        if let Some(mtime) = head.last_modified {
            let _ = write!(buf, "Last-Modified: {}\r\n", HttpDate::from(mtime));
        }
        if !head.etag.is_empty() {
            let _ = write!(buf, "ETag: {}\r\n", head.etag);
        }
        // Only a file has ranges (and an ETag): a listing or an error page is made per request.
        if !head.etag.is_empty() {
            buf.extend_from_slice(b"Accept-Ranges: bytes\r\n");
        }
        for (name, value) in head.extra {
            let _ = write!(buf, "{name}: {value}\r\n");
        }
        buf.extend_from_slice(if head.keep_alive && !self.done {
            b"Connection: keep-alive\r\n\r\n"
        } else {
            b"Connection: close\r\n\r\n"
        });
        self.body_start = ctx.output_end();
    }
}

/// `t`, or the nearest time an HTTP date can say when it is before 1970 or after 9999 (a file
/// from an archive, a broken clock), as nginx tells it: httpdate panics on others.
fn http_time(t: SystemTime) -> SystemTime {
    let latest = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    t.clamp(SystemTime::UNIX_EPOCH, latest)
}

/// The clock's time as an HTTP date can say it: with a clock before 1970 (a board without a
/// working RTC) every response panicked building its `Date`.
fn now() -> SystemTime {
    http_time(SystemTime::now())
}

/// [`now`] as a `Date` field says it, formatted once a second per event loop as nginx keeps
/// its time string: formatting it for each response was a few percent of a pipelined loop.
fn date_now() -> Rc<str> {
    thread_local! {
        static TODAY: std::cell::RefCell<(u64, Rc<str>)> =
            std::cell::RefCell::new((u64::MAX, Rc::from("")));
    }
    let now = now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    TODAY.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = Rc::from(HttpDate::from(now).to_string());
        }
        Rc::clone(text)
    })
}

/// A `multipart/byteranges` boundary, different for every response (nginx counts; the
/// count alone could turn up in a file's bytes, so the process start time goes in too).
fn boundary() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("netkit-{seed:016x}-{n:08}")
}

impl Handler for HttpConn {
    fn on_connect(&mut self, ctx: &mut Context<'_>) {
        // nginx's client_header_timeout counts from the accept: a connection that never sends
        // a byte, or sends its first late, would hold a slot for as long as it liked (or for
        // twice the timeout). One that sent nothing is closed silently (a browser's unused
        // preconnect would show a 408).
        self.head_timer = true;
        ctx.set_timer(self.header_timeout);
    }

    fn on_data(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.feed(ctx, data);
    }

    fn on_eof(&mut self, ctx: &mut Context<'_>) {
        self.eof = true;
        self.feed(ctx, &[]);
    }

    fn on_drain(&mut self, ctx: &mut Context<'_>) {
        self.feed(ctx, &[]);
    }

    fn on_sent(&mut self, ctx: &mut Context<'_>) {
        let sent = ctx.sent();
        while let Some(logged) = self.logs.front()
            && logged.body.1 <= sent
        {
            let (from, to) = logged.line;
            access_log(
                ctx.peer(),
                &self.requests[from..to],
                logged.status,
                logged.body.1 - logged.body.0,
            );
            self.logs.pop_front();
        }
        let Some(next) = self.logs.front() else {
            self.requests.clear();
            // All sent: the keep-alive timeout counts from now, as nginx's. The timer set
            // while the response was queued watched for a stalled client; left to run, it
            // added a quarter of the send timeout (15 s) to every idle timeout.
            if self.is_idle() {
                self.watch(ctx);
            }
            return;
        };
        ctx.notify_sent(next.body.1);
        // A client that pipelines without a pause never lets `logs` empty: the lines logged
        // are cut off once they are half of what is held, or `requests` would grow for ever.
        let done = next.line.0;
        if done > self.requests.len() / 2 {
            self.requests.drain(..done);
            for logged in &mut self.logs {
                logged.line = (logged.line.0 - done, logged.line.1 - done);
            }
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>) {
        // Each response not all gone is logged with what went of its body, as nginx's
        // `$body_bytes_sent`.
        let sent = ctx.sent();
        let shrank = ctx.close_reason() == Some(CloseReason::FileShrank);
        for Logged {
            line,
            status,
            body: (start, end),
        } in self.logs.drain(..)
        {
            let request = &self.requests[line.0..line.1];
            let went = sent.clamp(start, end) - start;
            // Only the response being sent when its file came up short (nginx's alert names
            // the file and the offset).
            if shrank && (start..end).contains(&sent) {
                log::warn!(
                    "{} \"{}\": the file shrank while it was sent: the response was cut after \
                     {went} of {} body bytes",
                    ctx.peer(),
                    Escaped(request),
                    end - start
                );
            }
            access_log(ctx.peer(), request, status, went);
        }
        self.requests.clear();
    }

    fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
        // Only a connection with no request bytes in hand is closed at once, as nginx closes
        // only its idle ones: a slow client's request whose head was still arriving got no
        // answer at all. Its header timer bounds the wait, as the shutdown timeout does.
        self.stopping = true;
        if self.input.is_empty() && self.skip_body == 0 {
            ctx.close();
        }
    }

    fn is_idle(&self) -> bool {
        // Between requests: one answered, not part-way through a head or a body, not
        // closing. Not a connection waiting for its first request: in a burst at the limit
        // each newcomer closed the one before it, its request sent but not yet read.
        !self.done && !self.head_timer && self.input.is_empty() && self.skip_body == 0
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        if self.head_timer && !self.done && !self.input.is_empty() {
            self.error(ctx, 408, false, &[]);
            let line_start = self.requests.len();
            self.requests.extend_from_slice(request_line(&self.input));
            self.record(ctx, line_start, 408);
        }
        if (self.head_timer || self.body_timer) && !self.done {
            self.done = true;
            self.input.clear();
            self.skip_body = 0;
        }
        let pending = ctx.pending_output();
        if pending == 0 && self.stalled.is_none() {
            ctx.close();
            return;
        }
        // A response still going out: as nginx's send_timeout, a client that took none of it
        // for a whole timeout is dropped (waiting to flush would hold its slot and file for
        // ever); one that reads, however slowly, gets it all.
        if let Some((before, since)) = self.stalled
            && before == pending
            && since.elapsed() >= self.send_timeout
        {
            log::info!(
                "{}: took no response bytes in {:?}; closing",
                ctx.peer(),
                self.send_timeout
            );
            ctx.abort();
            return;
        }
        self.watch(ctx);
        if self.done {
            ctx.close();
        }
    }
}

/// The `Content-Type` of a file by its extension: mime_guess's first, but nginx's where the
/// first is a surprise (`.rpm` came as RealAudio, HLS segments and playlists as DLNA and
/// audio types: a browser took a package for audio, players refused the stream), and IANA's
/// for Debian packages.
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("rpm") => "application/x-redhat-package-manager",
        Some("ts" | "mts" | "m2ts") => "video/mp2t",
        // A gzipped tarball by either name (mime_guess: `application/x-compressed` for one).
        Some("tgz") => "application/gzip",
        Some("m4a") => "audio/x-m4a",
        // A Debian installer package is a .deb by another name (mime_guess: a type no
        // package tool knows); a Java class file as Debian's mime.types, not an applet.
        Some("deb" | "udeb") => "application/vnd.debian.binary-package",
        Some("class") => "application/java-vm",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        // Its charset is required (RFC 7763), and has no default a client could fall back on.
        Some("md" | "markdown") => "text/markdown; charset=utf-8",
        _ => mime_guess::from_path(path)
            .first_raw()
            .unwrap_or("application/octet-stream"),
    }
}

/// Whether a `Host` value can be a host and port (RFC 9112 3.2: otherwise 400, as nginx
/// answers `a b` or `x/y`): no spaces or other delimiters of a URL. Bytes past ASCII pass, as
/// in nginx: an internationalized name a client did not turn into punycode is still a name.
fn valid_host(value: &[u8]) -> bool {
    let characters = value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b >= 0x80 || b"-._~%!$&'()*+,;=:[]".contains(&b));
    // `host [":" port]`, the port digits (RFC 9112 3.2: `x:abc`, `x:80:80`, `[::1` and a bare
    // `::1` are no Host); an IPv6 address in brackets.
    let (host, port) = match value.iter().position(|&b| b == b']') {
        Some(end) if value.first() == Some(&b'[') => (&value[1..end], &value[end + 1..]),
        _ => match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &[][..]),
        },
    };
    let bracketed = value.first() == Some(&b'[');
    characters
        && (bracketed || !host.iter().any(|b| b":[]".contains(b)))
        && (!bracketed || value.contains(&b']'))
        && port
            .split_first()
            .is_none_or(|(&colon, digits)| colon == b':' && digits.iter().all(u8::is_ascii_digit))
}

/// `list` with the elements of one more field line of it (RFC 9110 5.3).
fn joined<'a>(list: &mut Option<std::borrow::Cow<'a, str>>, line: &'a str) {
    *list = Some(match list.take() {
        None => line.into(),
        Some(before) => format!("{before}, {line}").into(),
    });
}

/// The largest request body read to be thrown away, to keep the connection open: past it the
/// request is answered and the connection closed.
const MAX_DISCARDED_BODY: u64 = 1 << 20;

/// Whether a request line httparse refused names an HTTP version past 1.x (`HTTP/2.0`,
/// `HTTP/3`): that gets 505, as in nginx, where a garbled version gets 400.
fn asks_a_later_http(input: &[u8]) -> bool {
    let line = input.split(|&b| b == b'\n').next().unwrap_or_default();
    let version = line
        .trim_ascii()
        .rsplit(|&b| b == b' ')
        .next()
        .unwrap_or_default();
    version
        .strip_prefix(b"HTTP/")
        .and_then(|v| v.first())
        .is_some_and(|major| (b'2'..=b'9').contains(major))
}

/// The answer to a head not complete yet that is already too long to be one, if any.
fn oversized(pending: &[u8]) -> Option<(u16, &'static str)> {
    if pending.len() > MAX_REQUEST_LINE && !pending[..MAX_REQUEST_LINE].contains(&b'\n') {
        Some((414, "URI Too Long"))
    } else if pending.len() > MAX_HEAD {
        Some((431, "Request Header Fields Too Large"))
    } else {
        None
    }
}

/// The first request line in `input` (past the empty lines before it), without its line end.
fn sent_line(input: &[u8]) -> &[u8] {
    request_line_uncut(&input[blank_lines(input)..])
}

/// How many bytes of empty lines `input` starts with: httparse skips them.
fn blank_lines(input: &[u8]) -> usize {
    input
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(input.len())
}

/// A copy of the head at the start of `input`, mended where httparse refuses what nginx
/// serves, and how many bytes longer it got; `None` when there is nothing to mend, or the
/// request line has not all come. A later 1.x minor (`HTTP/1.7`) is read as 1.1 (RFC 9112
/// 2.3). Raw bytes past ASCII in a target that is then no UTF-8 (a name in Latin-1, sent
/// unencoded), which httparse refuses, are percent-encoded: `/caf%E9` names the same bytes
/// (`files::relative_path` decodes them). Control bytes are left as they are, refused.
fn mended(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let start = blank_lines(input);
    if !input[start..].contains(&b'\n') {
        return None;
    }
    let line = request_line_uncut(&input[start..]);
    let first = line.iter().position(|&b| b == b' ')?;
    let last = line.iter().rposition(|&b| b == b' ')?;
    let target = line.get(first + 1..last)?;
    let mut version = line[last..].to_vec();
    let later = version.len() == 9
        && version.starts_with(b" HTTP/1.")
        && (b'2'..=b'9').contains(&version[8]);
    if later {
        version[8] = b'1';
    }
    let raw = std::str::from_utf8(target).is_err();
    if !later && !raw {
        return None;
    }
    let mut head = Vec::with_capacity(input.len() + 2 * target.len());
    head.extend_from_slice(&input[..start + first + 1]);
    for &b in target {
        if raw && !b.is_ascii() {
            let _ = write!(head, "%{b:02X}");
        } else {
            head.push(b);
        }
    }
    head.extend_from_slice(&version);
    head.extend_from_slice(&input[start + line.len()..]);
    let grown = head.len() - input.len();
    Some((head, grown))
}

/// Writes a response's access-log line: the request line, the status and the body bytes
/// sent.
fn access_log(peer: SocketAddr, request: &[u8], status: u16, sent: u64) {
    log::info!(target: "netkit::access", "{peer} \"{}\" {status} {sent}", Escaped(request));
}

/// The request line at the start of `input` as received, for the log of a request that
/// could not be parsed: up to its end of line, at most [`LOGGED_LINE`] bytes.
fn request_line(input: &[u8]) -> &[u8] {
    let line = request_line_uncut(input);
    &line[..line.len().min(LOGGED_LINE)]
}

/// The line at the start of `input`, without its line end.
fn request_line_uncut(input: &[u8]) -> &[u8] {
    let line = input.split(|&b| b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Bytes from the client as the access log writes them: a `"` or `\` as nginx writes it
/// (`\x22`), so that a target cannot end the quoted field and forge the ones after it; so is
/// every control byte and every byte past ASCII, as nginx's log has it: a raw right-to-left
/// override or C1 control turned the line around or worked on the terminal of whoever read
/// the log.
struct Escaped<'a>(&'a [u8]);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plain = |b: u8| (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\';
        let mut rest = self.0;
        while !rest.is_empty() {
            let run = rest.iter().position(|&b| !plain(b)).unwrap_or(rest.len());
            // Plain bytes are ASCII, so always UTF-8.
            f.write_str(std::str::from_utf8(&rest[..run]).map_err(|_| std::fmt::Error)?)?;
            if let Some(b) = rest.get(run) {
                write!(f, "\\x{b:02X}")?;
                rest = &rest[run + 1..];
            } else {
                rest = &[];
            }
        }
        Ok(())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        412 => "Precondition Failed",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// `value` without the spaces and tabs around it, HTTP's only whitespace (RFC 9110 5.6.3):
/// `str::trim` also takes Unicode spaces, where a proxy in front refuses or reads otherwise
/// (`Content-Length: 5\u{a0}`).
fn ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// The path of the `index.html` of the directory `rel` (`.` for the root).
fn index_of(rel: &OsStr) -> OsString {
    files::child(rel, OsStr::new("index.html"))
}
