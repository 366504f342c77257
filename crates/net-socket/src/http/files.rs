//! Mapping a request path to a file under the root, safely, and what to send of it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::Mode;
use percent_encoding::percent_decode_str;

/// Why a path maps to no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    BadRequest,
    Forbidden(Denial),
    NotFound,
    /// The server could not look (out of descriptors or memory, an I/O error): 500, as
    /// nginx answers, where 404 told caches and crawlers the file was gone.
    Failed,
}

/// Why a path gets 403: the client is told no more, the log is (as nginx's error log says
/// `open() "..." failed (13: Permission denied)`), or a file the server's user may not read
/// looked like a link out of the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial {
    /// The system refused to open it (EACCES, EPERM).
    Denied(Errno),
    /// It, or a link on the way to it, leads outside the root.
    Outside,
    /// Neither a regular file nor a directory (a FIFO, a socket, a device).
    NotAFile,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::Denied(e) => write!(f, "cannot open it: {}", std::io::Error::from(*e)),
            Denial::Outside => f.write_str("it leads outside the root"),
            Denial::NotAFile => f.write_str("it is not a regular file"),
        }
    }
}

/// The path relative to the root (no leading `/`, `.` for the root), or why there is none.
///
/// `..` is refused rather than resolved, whether written raw or percent-encoded, so a
/// request never names anything above the root. A path ending in `/` (or `/.`) keeps its
/// trailing `/`, so that it opens only a directory: `/file.txt/` is 404, as in nginx.
pub(crate) fn relative_path(target: &str) -> Result<OsString, Refusal> {
    // An absolute-form target's authority takes the place of Host (RFC 9112 3.2.2): none
    // (`http:///x`, RFC 9110 4.2.1) or one with userinfo (4.2.4: a phisher's way to hide the
    // host) is refused, as nginx refuses them; a proxy in front could read it otherwise.
    if let Some(authority) = authority(target)
        && (authority.is_empty()
            || authority.contains('@')
            || !super::valid_host(authority.as_bytes()))
    {
        return Err(Refusal::BadRequest);
    }
    let path = target_path(target);
    // `%` not followed by two hex digits is no URL (RFC 3986 2.1); taken literally, `/p%zz`
    // and `/p%25zz` were one file. 400, as nginx.
    let bytes = path.as_bytes();
    if bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    }) {
        return Err(Refusal::BadRequest);
    }
    if !path.starts_with('/') {
        return Err(Refusal::BadRequest);
    }
    // Bytes, not UTF-8: a name that is none (`latin\xe9`, written in Latin-1) is served by
    // its percent-encoded bytes, as nginx and python's http.server serve it.
    let decoded = percent_decode_str(path).collect::<Vec<u8>>();
    if decoded.contains(&0) {
        return Err(Refusal::BadRequest);
    }
    // Dot segments are removed as RFC 3986 says (and nginx does): `/a/../b` is `/b`; one that
    // would climb above the root is refused.
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in decoded.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop().ok_or(Refusal::Forbidden(Denial::Outside))?;
            }
            part => parts.push(part),
        }
    }
    let mut rel = parts.join(&b'/');
    if rel.is_empty() {
        rel.push(b'.');
    } else if decoded.ends_with(b"/") || decoded.ends_with(b"/.") || decoded.ends_with(b"/..") {
        rel.push(b'/');
    }
    Ok(OsString::from_vec(rel))
}

/// The path of a request target, without its query or fragment: in absolute form
/// (`http://host/p`, the scheme in any case, RFC 3986) without the scheme and authority.
pub(crate) fn target_path(target: &str) -> &str {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    match after_scheme(path) {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    }
}

/// The authority of an absolute-form target (`http://host:1/p` gives `host:1`).
fn authority(target: &str) -> Option<&str> {
    let rest = after_scheme(target)?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or_default())
}

/// What follows `http://` or `https://` (the scheme in any case, RFC 3986), if one starts
/// `target`.
fn after_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        target
            .get(..scheme.len())
            .filter(|start| start.eq_ignore_ascii_case(scheme))
            .map(|_| &target[scheme.len()..])
    })
}

/// Whether `rel` (as [`relative_path`] gives it) names a directory as such: the root, or a
/// path whose decoded form ends in `/`, `/.` or `/..`. nginx decodes `%2F` before it looks:
/// `/d%2F` lists `d` as `/d/` does, where the target as sent (not ending in `/`) redirected.
pub(crate) fn names_a_dir(rel: &OsStr) -> bool {
    rel == "." || rel.as_bytes().ends_with(b"/")
}

/// The URL path of `rel` (as [`relative_path`] gives it) as a directory, encoded: what a
/// redirect to it says, whatever the target that named it looked like (`/\evil.com/..`).
pub(crate) fn dir_url(rel: &OsStr) -> String {
    let rel = without_slash(rel);
    if rel == b"." {
        return "/".to_owned();
    }
    let mut url = String::with_capacity(rel.len() + 2);
    for part in rel.split(|&b| b == b'/') {
        url.push('/');
        url.extend(percent_encoding::percent_encode(part, HREF));
    }
    url.push('/');
    url
}

/// The path `name` names in the directory `rel` (as [`relative_path`] gives it).
pub(crate) fn child(rel: &OsStr, name: &OsStr) -> OsString {
    if rel == "." {
        return name.to_owned();
    }
    let mut path = OsString::from_vec(without_slash(rel).to_vec());
    path.push("/");
    path.push(name);
    path
}

/// `rel`'s bytes without the `/` that ends a directory's path.
fn without_slash(rel: &OsStr) -> &[u8] {
    let mut rel = rel.as_bytes();
    while let Some(rest) = rel.strip_suffix(b"/") {
        rel = rest;
    }
    rel
}

/// Opens `rel` under the directory `root` without ever leaving it: the kernel refuses `..`
/// and symlinks that resolve outside (openat2 with `RESOLVE_BENEATH`), or, where openat2 is
/// missing (`beneath` false), [`open_walking`] holds the path to the root the same way.
/// `flags` are those of the last part ([`FILE_FLAGS`] to read it).
pub(crate) fn open_beneath(
    root: &OwnedFd,
    rel: &OsStr,
    beneath: bool,
    flags: OFlag,
) -> Result<File, Refusal> {
    if !beneath {
        return open_walking(root, rel, flags);
    }
    match openat2_retrying(root, rel, flags) {
        // Still racing renames: the walk refuses the same paths and takes no seqlock. Told at
        // debug level: a busy host does this often, and it is no fault (a warning per request
        // would flood the log), but a slowdown seen in a profile can be traced to it.
        Err(Errno::EAGAIN) => {
            log::debug!(
                "openat2 of {rel:?} still racing renames after {OPENAT2_TRIES} tries: walking the path"
            );
            open_walking(root, rel, flags)
        }
        opened => opened.map(File::from).map_err(|e| refusal(e, rel)),
    }
}

/// How often [`openat2_retrying`] tries before giving up on EAGAIN.
const OPENAT2_TRIES: usize = 8;

/// openat2 with `RESOLVE_BENEATH`, tried again on EAGAIN: the kernel answers that when any
/// rename anywhere on the host moved its rename seqlock while the path walked a `..` (as an
/// in-root link like `current -> ../releases/v2` does), and openat2(2) says to retry. A
/// deploy or logrotate renaming files elsewhere must not make requests fail.
fn openat2_retrying(root: &OwnedFd, rel: &OsStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut opened = openat2(root, rel, how);
    for _ in 1..OPENAT2_TRIES {
        if !matches!(opened, Err(Errno::EAGAIN)) {
            break;
        }
        opened = openat2(root, rel, how);
    }
    opened
}

/// O_NONBLOCK: opening a FIFO someone left in the root must not block the event loop.
pub(crate) const FILE_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_NONBLOCK);

/// Whether openat2 works here: Linux before 5.6 lacks it, and the seccomp filters of older
/// container runtimes refuse it.
pub(crate) fn has_openat2(root: &OwnedFd) -> bool {
    let how = OpenHow::new()
        .flags(FILE_FLAGS)
        .resolve(ResolveFlag::RESOLVE_BENEATH);
    !matches!(openat2(root, ".", how), Err(Errno::ENOSYS | Errno::EPERM))
}

fn refusal(e: Errno, rel: &OsStr) -> Refusal {
    match e {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG | Errno::ELOOP => Refusal::NotFound,
        Errno::EXDEV => Refusal::Forbidden(Denial::Outside),
        Errno::EACCES | Errno::EPERM => Refusal::Forbidden(Denial::Denied(e)),
        // A Unix socket: a client could fill the log with warnings of a server fault.
        Errno::ENXIO => Refusal::Forbidden(Denial::NotAFile),
        e => {
            log::warn!("cannot open {rel:?} under the root: {e}");
            Refusal::Failed
        }
    }
}

/// The most symbolic links one path may go through, as Linux's limit.
const MAX_LINKS: usize = 40;

/// [`open_beneath`] without openat2: the path is walked a part at a time from the root with
/// `O_NOFOLLOW`, and each symbolic link met is read and its target walked in its place, so
/// that `..`, absolute links and links climbing out are refused as `RESOLVE_BENEATH` refuses
/// them. Each step opens relative to a directory already held, so nothing renamed meanwhile
/// can lead outside.
fn open_walking(root: &OwnedFd, rel: &OsStr, last_flags: OFlag) -> Result<File, Refusal> {
    let split = |path: &OsStr| -> Vec<OsString> {
        path.as_bytes()
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .map(|p| OsStr::from_bytes(p).to_owned())
            .collect()
    };
    let opened = |e| refusal(e, rel);
    // The directories entered, the root first: `..` steps back to the one before.
    let mut dirs = vec![root.try_clone().map_err(|_| Refusal::Failed)?];
    let mut todo = std::collections::VecDeque::from(split(rel));
    let mut must_be_dir = rel.as_bytes().ends_with(b"/");
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            if dirs.len() == 1 {
                return Err(Refusal::Forbidden(Denial::Outside));
            }
            dirs.pop();
            continue;
        }
        let last = todo.is_empty();
        let flags = if !last {
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
        } else if must_be_dir {
            last_flags | OFlag::O_DIRECTORY
        } else {
            last_flags
        };
        let Some(dir) = dirs.last() else {
            return Err(Refusal::NotFound);
        };
        match openat(
            dir,
            part.as_os_str(),
            flags | OFlag::O_NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) if last => return Ok(File::from(fd)),
            Ok(fd) => dirs.push(fd),
            // A link, or a file where a directory should be: readlinkat tells which.
            Err(e @ (Errno::ELOOP | Errno::ENOTDIR)) => {
                let target = readlinkat(dir, part.as_os_str()).map_err(|_| opened(e))?;
                links += 1;
                if links > MAX_LINKS {
                    return Err(Refusal::NotFound);
                }
                if target.as_bytes().starts_with(b"/") {
                    return Err(Refusal::Forbidden(Denial::Outside));
                }
                if last {
                    must_be_dir |= target.as_bytes().ends_with(b"/");
                }
                for part in split(&target).into_iter().rev() {
                    todo.push_front(part);
                }
            }
            Err(e) => return Err(opened(e)),
        }
    }
    // The path named a directory already entered (the root, or through `..` or a link).
    let Some(dir) = dirs.last() else {
        return Err(Refusal::NotFound);
    };
    openat(dir, ".", last_flags | OFlag::O_DIRECTORY, Mode::empty())
        .map(File::from)
        .map_err(opened)
}

/// What part of a file a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Span {
    Whole,
    /// Bytes `start..=end`.
    Part {
        start: u64,
        end: u64,
    },
    /// Several `(start, end)` parts, in the order asked, for a `multipart/byteranges` body.
    Parts(Vec<(u64, u64)>),
    Unsatisfiable,
}

/// More ranges than this in one request get the whole file: RFC 9110 lets a server ignore a
/// Range, and many ranges in a small request would ask for a much larger answer.
const MAX_PARTS: usize = 16;

/// Reads a `Range` header for a file of `len` bytes. Ranges that cannot be satisfied are
/// dropped (416 when none is left); a malformed `bytes=` range (`9-1`, `abc`) is a 416 too,
/// as RFC 9110 14.2 asks and nginx answers. Ranges that overlap are joined, in the order of
/// the file (RFC 9110 14.2 lets a server coalesce them; whole, `0-10,5-20` of a 5 GiB file
/// was 5 GiB). Another unit, an empty list or more than [`MAX_PARTS`] ranges get the whole
/// file, as RFC 9110 allows.
pub(crate) fn range(header: &str, len: u64) -> Span {
    // The unit is case-insensitive (RFC 9110 14.1). An empty file has no range to give: it
    // goes whole, as from nginx.
    let header = super::ows(header);
    let spec = match header.split_at_checked(6) {
        Some((unit, spec)) if unit.eq_ignore_ascii_case("bytes=") && len > 0 => spec,
        _ => return Span::Whole,
    };
    let mut asked = 0;
    let mut parts = Vec::new();
    // Empty list elements are allowed (RFC 9110 5.6.1).
    for one in spec
        .split(',')
        .map(super::ows)
        .filter(|one| !one.is_empty())
    {
        asked += 1;
        match one_range(one, len) {
            Some(Some(part)) => parts.push(part),
            Some(None) => {}
            None => return Span::Unsatisfiable,
        }
    }
    if asked == 0 || asked > MAX_PARTS {
        return Span::Whole;
    }
    let mut sorted = parts.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|pair| pair[1].0 <= pair[0].1) {
        parts.clear();
        for (start, end) in sorted {
            match parts.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => parts.push((start, end)),
            }
        }
    }
    match parts.as_slice() {
        [] => Span::Unsatisfiable,
        [(start, end)] => Span::Part {
            start: *start,
            end: *end,
        },
        _ => Span::Parts(parts),
    }
}

/// One `first-last`, `first-` or `-suffix` range: `None` when malformed, `Some(None)` when
/// it lies past the end of the file.
fn one_range(spec: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (super::ows(first), super::ows(last));
    let (start, end) = if first.is_empty() {
        let suffix = digits(last)?;
        if suffix == 0 {
            return Some(None);
        }
        (len.saturating_sub(suffix), len.saturating_sub(1))
    } else {
        let start = digits(first)?;
        let end = if last.is_empty() {
            len.saturating_sub(1)
        } else {
            match digits(last)? {
                end if end >= start => end.min(len.saturating_sub(1)),
                _ => return None,
            }
        };
        (start, end)
    };
    if len == 0 || start >= len {
        return Some(None);
    }
    Some(Some((start, end)))
}

/// A number written in digits only, as HTTP's grammar writes them (RFC 9110 14.1.1, 9112 6.3):
/// `+3`, which `u64::from_str` takes, may be read otherwise, or refused, by a cache or a proxy
/// in front (how requests are smuggled).
pub(crate) fn digits(s: &str) -> Option<u64> {
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse().ok())
        .flatten()
}

/// Seconds since the epoch: HTTP dates have whole seconds, so they compare at that precision.
fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The strong validator of a file, from its modification time and size. nginx uses whole
/// seconds; the nanoseconds here keep a same-size rewrite within one second from looking
/// unchanged. A time before 1970 keeps its distance, signed as nginx's: all such files had
/// one tag per size, and a replaced one answered 304 and spliced ranges.
pub(crate) fn etag(mtime: Option<SystemTime>, len: u64) -> String {
    let (sign, since) = match mtime.map(|t| t.duration_since(SystemTime::UNIX_EPOCH)) {
        Some(Ok(since)) => ("", since),
        Some(Err(before)) => ("-", before.duration()),
        None => ("", Duration::ZERO),
    };
    format!(
        "\"{sign}{:x}.{:x}-{len:x}\"",
        since.as_secs(),
        since.subsec_nanos()
    )
}

/// The conditional headers of a request (RFC 9110 section 13.1); a list sent as several
/// field lines is one list, joined with commas (RFC 9110 5.3).
#[derive(Clone, Default)]
pub(crate) struct Conditions<'a> {
    pub(crate) if_match: Option<std::borrow::Cow<'a, str>>,
    pub(crate) if_none_match: Option<std::borrow::Cow<'a, str>>,
    pub(crate) if_modified_since: Option<&'a str>,
    pub(crate) if_unmodified_since: Option<&'a str>,
}

/// What the conditional headers ask of a GET or HEAD.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Send,
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
}

/// Whether a comma-separated list of entity tags (or `*`) holds `etag` (empty: the
/// representation has none, as a listing, and only `*` matches). The weak comparison
/// (If-None-Match) ignores `W/`; the strong one (If-Match) never matches a weak tag.
fn tag_listed(list: &str, etag: &str, weak: bool) -> bool {
    list.split(',')
        .map(super::ows)
        .any(|tag| match tag.strip_prefix("W/") {
            _ if tag == "*" => true,
            _ if etag.is_empty() => false,
            Some(tag) => weak && tag == etag,
            None => tag == etag,
        })
}

/// Evaluates the conditions in RFC 9110 section 13.2.2's order against a file's validators:
/// If-Match, else If-Unmodified-Since; then If-None-Match, else If-Modified-Since. `etag`
/// is empty and `mtime` `None` for a representation without validators (a listing).
pub(crate) fn evaluate(c: &Conditions<'_>, etag: &str, mtime: Option<SystemTime>) -> Verdict {
    let date = |header: &str| httpdate::parse_http_date(header).ok().map(secs);
    let modified = mtime.map(secs);
    if let Some(list) = &c.if_match {
        if !tag_listed(list, etag, false) {
            return Verdict::PreconditionFailed;
        }
    } else if let (Some(since), Some(modified)) = (c.if_unmodified_since.and_then(date), modified)
        && modified > since
    {
        return Verdict::PreconditionFailed;
    }
    if let Some(list) = &c.if_none_match {
        if tag_listed(list, etag, true) {
            return Verdict::NotModified;
        }
    } else if let (Some(since), Some(modified)) = (c.if_modified_since.and_then(date), modified)
        // The file's own date only, as nginx's `if_modified_since exact`: a file rolled back
        // to an older one (`current -> releases/v2`) is older than the date a client has, and
        // `wget -N` or a cache keeping only Last-Modified kept the newer, broken file.
        && modified == since
    {
        return Verdict::NotModified;
    }
    Verdict::Send
}

/// Whether a Range request applies under its `If-Range`: its one entity tag must match
/// strongly, its date (in any of HTTP's three forms) must be the file's Last-Modified
/// exactly; otherwise the whole file is sent.
pub(crate) fn range_applies(if_range: Option<&str>, etag: &str, mtime: Option<SystemTime>) -> bool {
    let Some(validator) = if_range.map(super::ows) else {
        return true;
    };
    if validator.starts_with('"') || validator.starts_with("W/") {
        return validator == etag;
    }
    let date = httpdate::parse_http_date(validator).ok();
    date.zip(mtime)
        .is_some_and(|(date, mtime)| secs(date) == secs(mtime))
}

/// An HTML listing of `dir`, the directory `rel` (as [`relative_path`] gives it). `link_kind`
/// tells of a link (or an entry of unknown type) by name whether a request for it reaches
/// a directory, or `None` when it would be refused (a link out of the root): such an entry
/// is left out, as a mirror (`wget -m`, `lftp mirror`) fetching every entry failed on it.
pub(crate) fn listing(
    dir: File,
    rel: &OsStr,
    link_kind: impl Fn(&OsStr) -> Option<bool>,
) -> std::io::Result<String> {
    // Read through the descriptor opened beneath the root: read again by name, it could be
    // another directory by now (a symlink swapped under us to point out of the root).
    let mut dir = nix::dir::Dir::from_fd(OwnedFd::from(dir))?;
    let mut names: Vec<(Vec<u8>, bool)> = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        // `.`, `..`, and the hidden files nginx's autoindex leaves out (`.git/`, `.env`);
        // they are still served to whoever names them.
        if name.starts_with(b".") {
            continue;
        }
        // A link to a directory is listed as one, as nginx lists it, if a request for it
        // would reach one; so is an entry whose type the file system does not tell.
        let is_dir = match entry.file_type() {
            Some(nix::dir::Type::Directory) => true,
            // Whatever its bytes: a link named in Latin-1 that led out of the root was listed.
            Some(nix::dir::Type::Symlink) | None => match link_kind(OsStr::from_bytes(name)) {
                Some(is_dir) => is_dir,
                None => continue,
            },
            Some(_) => false,
        };
        names.push((name.to_vec(), is_dir));
    }
    names.sort();
    // The path as resolved, as nginx titles it: `/d/sub/..` and `/d%2F` are `/d/`.
    let root = rel == ".";
    let title = if root {
        "/".to_owned()
    } else {
        shown(&[b"/", without_slash(rel), b"/"].concat())
    };
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n"
    );
    if !root {
        html.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (name, is_dir) in names {
        let slash = if is_dir { "/" } else { "" };
        // The name's own bytes, not its UTF-8 reading: a link to `latin\xe9` shown as
        // `latin\u{fffd}` fetched another file of that name.
        let href = percent_encoding::percent_encode(&name, HREF);
        let text = shown(&name);
        html.push_str(&format!(
            "<li><a href=\"{href}{slash}\">{text}{slash}</a></li>\n"
        ));
    }
    html.push_str("</ul>\n</body></html>\n");
    Ok(html)
}

/// Characters escaped in a link to a listed name (so `#`, `?`, `%` and quotes stay literal).
const HREF: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A name (or a path) as a listing shows it: its UTF-8 as text, HTML-escaped, and each byte
/// that is no UTF-8 as `\xHH`, as the access log writes it. Read lossily, `latin\xe9` and
/// `latin\u{fffd}` looked alike; nginx writes the raw bytes, which this page (in UTF-8) shows
/// as U+FFFD too, and which no UTF-8 reader takes. So that nothing is lost, `\` is written
/// `\x5C` (`latin\xE9` typed in ASCII is another name), and so are the bytes of control
/// characters, which show nothing (or work on a terminal the page is dumped to): U+0085 is
/// `\xC2\x85`, not the lone byte `\x85`.
fn shown(name: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(name.len());
    let escape = |bytes: &[u8], text: &mut String| {
        for b in bytes {
            let _ = write!(text, "\\x{b:02X}");
        }
    };
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' || c.is_control() {
                escape(c.encode_utf8(&mut [0; 4]).as_bytes(), &mut text);
            } else {
                text.push(c);
            }
        }
        escape(chunk.invalid(), &mut text);
    }
    html_escape(&text)
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only spaces and tabs are HTTP's whitespace: a range or a tag with a Unicode space
    /// beside it is not the one without (nginx answers 416 for `0-4` and a no-break space).
    #[test]
    fn ranges_and_tags_take_only_spaces_and_tabs_around_them() {
        let five = Span::Part { start: 0, end: 4 };
        assert_eq!(range(" bytes=0-4\t", 13), five);
        assert_eq!(range("bytes= 0 - 4 ,", 13), five);
        for odd in ["bytes=0-4\u{a0}", "bytes=\u{2003}0-4", "bytes=0-\u{3000}4"] {
            assert_eq!(range(odd, 13), Span::Unsatisfiable, "{odd:?}");
        }
        assert!(tag_listed(" \"a\"\t, \"b\"", "\"b\"", false));
        assert!(!tag_listed("\"b\"\u{a0}", "\"b\"", false));
        assert!(range_applies(Some("\t\"a\" "), "\"a\"", None));
        assert!(!range_applies(Some("\"a\"\u{a0}"), "\"a\"", None));
    }

    /// Where openat2 is missing the walk must open and refuse exactly what it does.
    #[test]
    fn walking_the_path_opens_and_refuses_what_openat2_does() {
        use std::io::Read as _;
        use std::os::unix::fs::symlink;
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/b.txt"), "b").unwrap();
        std::fs::write(top.path().join("secret"), "secret").unwrap();
        for (target, name) in [
            ("a.txt", "to-a"),
            ("sub", "to-sub"),
            ("../secret", "out"),
            ("sub/../a.txt", "dot-dot-inside"),
            ("loop-b", "loop-a"),
            ("loop-a", "loop-b"),
            ("to-sub/../../secret", "out-through-a-link"),
            ("../b.txt", "sub/deeper/up"),
            ("../../../secret", "sub/deeper/way-up"),
            ("deeper/..", "sub/back"),
        ] {
            symlink(target, root.join(name)).unwrap();
        }
        symlink(top.path().join("secret"), root.join("absolute")).unwrap();
        // Names and link targets that are no UTF-8: the walk reads them as bytes too.
        let latin = |name: &[u8]| root.join(OsStr::from_bytes(name));
        std::fs::write(latin(b"latin\xe9"), "latin").unwrap();
        symlink(OsStr::from_bytes(b"latin\xe9"), latin(b"to-latin")).unwrap();
        symlink("../secret", latin(b"out\xe9")).unwrap();
        symlink(OsStr::from_bytes(b"out\xe9"), latin(b"to-out")).unwrap();
        let fd = OwnedFd::from(File::open(&root).unwrap());
        let what = |opened: Result<File, Refusal>| {
            opened.map(|mut file| {
                let mut text = String::new();
                match file.read_to_string(&mut text) {
                    Ok(_) => text,
                    Err(_) => "a directory".to_owned(),
                }
            })
        };
        for rel in [
            &b"."[..],
            b"latin\xe9",
            b"to-latin",
            b"out\xe9",
            b"to-out",
            b"a.txt",
            b"to-a",
            b"to-sub/",
            b"to-sub/b.txt",
            b"out",
            b"absolute",
            b"dot-dot-inside",
            b"loop-a",
            b"out-through-a-link",
            b"sub/deeper/up",
            b"sub/deeper/way-up",
            b"sub/back/b.txt",
            b"a.txt/",
            b"a.txt/x",
            b"missing",
            b"sub/",
            b"to-a/",
        ] {
            let rel = OsStr::from_bytes(rel);
            let kernel = what(open_beneath(&fd, rel, true, FILE_FLAGS));
            assert_eq!(
                what(open_beneath(&fd, rel, false, FILE_FLAGS)),
                kernel,
                "{rel:?}"
            );
        }
        assert_eq!(
            what(open_beneath(
                &fd,
                OsStr::new("to-sub/b.txt"),
                false,
                FILE_FLAGS
            )),
            Ok("b".into())
        );
        assert_eq!(
            what(open_beneath(&fd, OsStr::new("out"), false, FILE_FLAGS)),
            Err(Refusal::Forbidden(Denial::Outside))
        );
        for (rel, expected) in [
            (&b"to-latin"[..], Ok("latin".into())),
            (b"to-out", Err(Refusal::Forbidden(Denial::Outside))),
        ] {
            let rel = OsStr::from_bytes(rel);
            assert_eq!(
                what(open_beneath(&fd, rel, false, FILE_FLAGS)),
                expected,
                "{rel:?}"
            );
        }
        assert_eq!(
            what(open_beneath(&fd, OsStr::new("loop-a"), false, FILE_FLAGS)),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn traversal_is_refused_raw_and_encoded() {
        assert_eq!(
            relative_path("/../etc/passwd"),
            Err(Refusal::Forbidden(Denial::Outside))
        );
        assert_eq!(
            relative_path("/a/%2e%2e/%2E%2E/x"),
            Err(Refusal::Forbidden(Denial::Outside))
        );
        assert_eq!(
            relative_path("/a/..%2f..%2fb"),
            Err(Refusal::Forbidden(Denial::Outside))
        );
        assert_eq!(relative_path("etc/passwd"), Err(Refusal::BadRequest));
        assert_eq!(relative_path("/a%00b"), Err(Refusal::BadRequest));
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(relative_path("/"), Ok(".".into()));
        assert_eq!(relative_path("//a/./b/?x=1"), Ok("a/b/".into()));
        assert_eq!(relative_path("/a/b/."), Ok("a/b/".into()));
        assert_eq!(relative_path("/a/b%2F"), Ok("a/b/".into()));
        assert_eq!(relative_path("/a/./b"), Ok("a/b".into()));
        // Dot segments that stay inside the root are removed, as nginx removes them.
        assert_eq!(relative_path("/a/../b"), Ok("b".into()));
        assert_eq!(relative_path("/a/..%2fb"), Ok("b".into()));
        assert_eq!(relative_path("/a/b/.."), Ok("a/".into()));
        assert_eq!(relative_path("/a/.."), Ok(".".into()));
        assert_eq!(relative_path("/with%20space"), Ok("with space".into()));
        assert_eq!(relative_path("http://host:1/x/y"), Ok("x/y".into()));
        // No host, userinfo, a port that is not one: refused, as nginx refuses them.
        for bad in [
            "http:///a.txt",
            "http://u:p@host/a.txt",
            "http://evil.example@host/",
            "http://host:abc/",
            "HTTP://[::1/x",
            "/p%zz",
            "/a.txt%",
            "/a.txt%2",
        ] {
            assert_eq!(relative_path(bad), Err(Refusal::BadRequest), "{bad}");
        }
        assert_eq!(relative_path("HTTP://[::1]:80"), Ok(".".into()));
        assert_eq!(relative_path("/p%25zz?q=%zz"), Ok("p%zz".into()));
    }

    /// A name is bytes: one that is no UTF-8 is named by its percent-encoded bytes, and is
    /// not the name its lossy reading gives; the refusals hold for it as for any other.
    #[test]
    fn paths_are_bytes_not_utf_8() {
        let bytes = |target| relative_path(target).map(OsString::into_vec);
        assert_eq!(bytes("/latin%E9"), Ok(b"latin\xe9".to_vec()));
        assert_eq!(bytes("/d%FF/latin%e9/"), Ok(b"d\xff/latin\xe9/".to_vec()));
        assert_eq!(bytes("/latin%EF%BF%BD"), Ok("latin\u{fffd}".into()));
        assert_eq!(
            bytes("/%E9/../../x"),
            Err(Refusal::Forbidden(Denial::Outside))
        );
        assert_eq!(
            bytes("/%E9%2f%2e%2e%2f%2e%2e/x"),
            Err(Refusal::Forbidden(Denial::Outside))
        );
        assert_eq!(bytes("/%E9%00"), Err(Refusal::BadRequest));
        assert_eq!(dir_url(OsStr::from_bytes(b"d\xff/sub/")), "/d%FF/sub/");
        assert_eq!(
            child(OsStr::new("."), OsStr::from_bytes(b"\xe9")),
            OsStr::from_bytes(b"\xe9")
        );
        assert_eq!(
            child(OsStr::from_bytes(b"d\xff/"), OsStr::new("index.html")),
            OsStr::from_bytes(b"d\xff/index.html")
        );
    }

    #[test]
    fn conditions_follow_rfc_9110_order() {
        let mtime = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let tag = etag(Some(mtime), 13);
        let before = "Sat, 01 Jan 2000 00:00:00 GMT";
        let at = httpdate::HttpDate::from(mtime).to_string();
        let check = |c: Conditions<'_>| evaluate(&c, &tag, Some(mtime));
        assert_eq!(check(Conditions::default()), Verdict::Send);
        let none_match = |list: &str| Conditions {
            if_none_match: Some(list.to_owned().into()),
            // Ignored when If-None-Match is present.
            if_modified_since: Some(&at),
            ..Conditions::default()
        };
        assert_eq!(check(none_match(&tag)), Verdict::NotModified);
        let weak = format!("\"x\", W/{tag}");
        assert_eq!(check(none_match(&weak)), Verdict::NotModified);
        assert_eq!(check(none_match("*")), Verdict::NotModified);
        assert_eq!(check(none_match("\"other\"")), Verdict::Send);
        let since = |date| Conditions {
            if_modified_since: Some(date),
            ..Conditions::default()
        };
        assert_eq!(check(since(&at)), Verdict::NotModified);
        assert_eq!(check(since(before)), Verdict::Send);
        let later =
            httpdate::HttpDate::from(mtime + std::time::Duration::from_secs(60)).to_string();
        assert_eq!(check(since(&later)), Verdict::Send);
        assert_eq!(check(since("yesterday")), Verdict::Send);
        assert_eq!(check(since("Fri, 31 Dec 9999 23:59:59 GMT")), Verdict::Send);
        let matching = |list: &str| Conditions {
            if_match: Some(list.to_owned().into()),
            ..Conditions::default()
        };
        assert_eq!(check(matching(&tag)), Verdict::Send);
        assert_eq!(check(matching("*")), Verdict::Send);
        let weak_only = format!("W/{tag}");
        assert_eq!(check(matching(&weak_only)), Verdict::PreconditionFailed);
        assert_eq!(check(matching("\"other\"")), Verdict::PreconditionFailed);
        let unmodified = |date| Conditions {
            if_unmodified_since: Some(date),
            ..Conditions::default()
        };
        assert_eq!(check(unmodified(&at)), Verdict::Send);
        assert_eq!(check(unmodified(before)), Verdict::PreconditionFailed);
        assert!(range_applies(None, &tag, Some(mtime)));
        assert!(range_applies(Some(&tag), &tag, Some(mtime)));
        assert!(range_applies(Some(&at), &tag, Some(mtime)));
        assert!(!range_applies(Some(&weak_only), &tag, Some(mtime)));
        assert!(!range_applies(Some("\"other\""), &tag, Some(mtime)));
        assert!(!range_applies(Some(before), &tag, Some(mtime)));
        // The date in HTTP's two obsolete forms (RFC 9110 5.6.7), one tag and not a list.
        let rfc850 = "Sunday, 09-Sep-01 01:46:40 GMT";
        let asctime = "Sun Sep  9 01:46:40 2001";
        assert_eq!(at, "Sun, 09 Sep 2001 01:46:40 GMT");
        assert!(range_applies(Some(rfc850), &tag, Some(mtime)));
        assert!(range_applies(Some(asctime), &tag, Some(mtime)));
        assert!(!range_applies(
            Some(&format!("\"x\", {tag}")),
            &tag,
            Some(mtime)
        ));
        // A listing has no validators: only `*` matches.
        let listing = |c: Conditions<'_>| evaluate(&c, "", None);
        assert_eq!(listing(matching("*")), Verdict::Send);
        assert_eq!(listing(matching("\"x\"")), Verdict::PreconditionFailed);
        assert_eq!(listing(matching(",")), Verdict::PreconditionFailed);
        assert_eq!(listing(none_match("*")), Verdict::NotModified);
        assert_eq!(listing(none_match("\"x\", ,")), Verdict::Send);
        assert_eq!(listing(since(&at)), Verdict::Send);
        let later = mtime + std::time::Duration::from_nanos(1);
        assert_ne!(etag(Some(later), 13), tag);
        assert_ne!(etag(Some(mtime), 14), tag);
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Span::Part { start: 0, end: 9 });
        assert_eq!(range("bytes=90-", 100), Span::Part { start: 90, end: 99 });
        assert_eq!(range("bytes=-10", 100), Span::Part { start: 90, end: 99 });
        assert_eq!(
            range("bytes=50-1000", 100),
            Span::Part { start: 50, end: 99 }
        );
        assert_eq!(range("bytes=100-", 100), Span::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), Span::Unsatisfiable);
        assert_eq!(range("bytes=+0-+3", 100), Span::Unsatisfiable);
        assert_eq!(range("bytes=-+3", 100), Span::Unsatisfiable);
        assert_eq!(
            range("bytes=0-1, 5-6,", 100),
            Span::Parts(vec![(0, 1), (5, 6)])
        );
        assert_eq!(
            range("bytes=-10,0-0", 100),
            Span::Parts(vec![(90, 99), (0, 0)])
        );
        assert_eq!(
            range("bytes=0-1,200-300", 100),
            Span::Part { start: 0, end: 1 }
        );
        assert_eq!(range("bytes=200-,300-", 100), Span::Unsatisfiable);
        assert_eq!(range("bytes=0-5,5-6", 100), Span::Part { start: 0, end: 6 });
        assert_eq!(
            range("bytes=50-60,0-1,55-70,3-4", 100),
            Span::Parts(vec![(0, 1), (3, 4), (50, 70)])
        );
        assert_eq!(range("bytes=0-1,x", 100), Span::Unsatisfiable);
        assert_eq!(range("bytes=abc", 100), Span::Unsatisfiable);
        assert_eq!(range("bytes=", 100), Span::Whole);
        // The unit in any case; an empty file whole, whatever is asked, as from nginx.
        assert_eq!(range("Bytes=0-4", 100), Span::Part { start: 0, end: 4 });
        assert_eq!(range("bytes=0-", 0), Span::Whole);
        assert_eq!(range("bytes=-1", 0), Span::Whole);
        assert_eq!(range("items=0-4", 100), Span::Whole);
        let many = (0..17)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(range(&format!("bytes={many}"), 100), Span::Whole);
        assert_eq!(range("items=0-1", 100), Span::Whole);
        assert_eq!(range("bytes=9-1", 100), Span::Unsatisfiable);
    }

    #[test]
    fn listing_escapes_names() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("<b>&\"x\".txt"), b"").unwrap();
        use std::os::unix::ffi::OsStrExt as _;
        let latin = std::ffi::OsStr::from_bytes(b"latin\xe9");
        std::fs::write(dir.join(latin), b"").unwrap();
        std::fs::write(dir.join("back\\slash\u{85}"), b"").unwrap();
        let html = listing(File::open(&dir).unwrap(), OsStr::new("d/"), |_| Some(false)).unwrap();
        // A name that is no UTF-8 is linked by its own bytes, shown with `\xHH` for them; `\`
        // and controls (by their UTF-8 bytes) so too, that no two names look alike.
        assert!(html.contains("href=\"latin%E9\">latin\\xE9</a>"), "{html}");
        assert!(
            html.contains("href=\"back%5Cslash%C2%85\">back\\x5Cslash\\xC2\\x85</a>"),
            "{html}"
        );
        assert!(html.contains("<h1>Index of /d/</h1>"), "{html}");
        let top = listing(File::open(&dir).unwrap(), OsStr::new("."), |_| Some(false)).unwrap();
        assert!(top.contains("<h1>Index of /</h1>"), "{top}");
        assert!(!top.contains("href=\"../\""), "{top}");
        assert!(html.contains("href=\"../\""), "{html}");
        assert!(
            html.contains("&lt;b&gt;&amp;&quot;x&quot;.txt</a>"),
            "{html}"
        );
        assert!(html.contains("href=\"%3Cb%3E%26%22x%22.txt\""), "{html}");
        assert!(html.contains("href=\"sub/\">sub/</a>"), "{html}");
    }
}
