//! Downloads streamed to a file: `NAME.part` first, renamed only when complete.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::client::Request;

const CHUNK: usize = 256 * 1024;

/// What a download tells its caller as it goes, to show it then (see [`Request::download`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum DownloadEvent<'a> {
    /// A response's head came, before its body is saved or refused: given for every response
    /// a download gets (one that then fails too: an error status, a redirect not followed, a
    /// body cut short), so that a caller shows the head before the body comes, as httpie's
    /// `--download` shows it, and does not lose it to the error. The redirects followed to it
    /// are in its [`history`](crate::Response::history), each with the request it answered;
    /// the caller may take them out ([`take_history`](crate::Response::take_history)) to read
    /// their bodies. A retry or a resumption sends again: its response is told as well.
    Head(&'a mut crate::Response),
    /// The bytes saved so far, after every chunk (and once before the first).
    Progress(Progress<'a>),
}

/// Progress of a download, told ([`DownloadEvent::Progress`]) after every chunk.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// Bytes in the file so far (a resumed part included).
    pub done: u64,
    /// The full size, when the server announced it.
    pub total: Option<u64>,
    /// The partial file, kept for a resume if the download stops now (none when written
    /// straight into a device): a caller killed meanwhile can say where it is.
    pub part: Option<&'a Path>,
}

/// How a kept partial file is told, the one wording of every message that names one:
/// `N bytes kept in PART to resume from`.
#[must_use]
pub fn kept_part(done: u64, part: &Path) -> String {
    format!("{done} bytes kept in {} to resume from", part.display())
}

/// A retry's whole body, its range ignored, shorter than the part it was to go on from.
fn shorter_again(url: String, done: u64, part: &Path) -> Error {
    Error::Io {
        url,
        reason: format!(
            "sent again, the server ignored the range and sent a whole body shorter than what \
             came before: {}",
            kept_part(done, part)
        ),
    }
}

/// The version of the file a download's bytes are of, as the response they came with named
/// it: a retry that goes on from those bytes asks for the rest only of that version
/// (`If-Range`, RFC 9110 13.1.5), and a file replaced on the server meanwhile (a deploy's
/// rename) starts the download over instead of being spliced onto them.
#[derive(Clone, Debug)]
struct Version {
    etag: Option<String>,
    last_modified: Option<String>,
    /// The whole file's length.
    total: Option<u64>,
    /// What `If-Range` sends: a strong entity tag, else a Last-Modified date at least a
    /// second before the response's Date (a date within that second could name two
    /// versions; a weak tag may not be sent there at all).
    if_range: Option<String>,
}

impl Version {
    /// The version `response` is of, the whole file being `total` bytes long.
    fn of(response: &crate::Response, total: Option<u64>) -> Version {
        let field = |name| response.header(name).map(|v| v.trim().to_owned());
        let (etag, last_modified) = (field("etag"), field("last-modified"));
        let strong_etag = etag.clone().filter(|tag| tag.starts_with('"'));
        let strong_date = last_modified.clone().filter(|modified| {
            let date = |v: &str| httpdate::parse_http_date(v).ok();
            let sent = response.header("date").and_then(|v| date(v.trim()));
            date(modified)
                .zip(sent)
                .and_then(|(modified, sent)| sent.duration_since(modified).ok())
                .is_some_and(|before| before >= std::time::Duration::from_secs(1))
        });
        Version {
            if_range: strong_etag.or(strong_date),
            etag,
            last_modified,
            total,
        }
    }

    /// Whether `other` is known to be another version: another entity tag, or without tags
    /// another date, or another length. What a response does not say is taken as the same.
    fn differs(&self, other: &Version) -> bool {
        let known_apart = |a: &Option<String>, b: &Option<String>| {
            a.as_ref().zip(b.as_ref()).is_some_and(|(a, b)| a != b)
        };
        let tags = self.etag.is_some() && other.etag.is_some();
        (tags && known_apart(&self.etag, &other.etag))
            || (!tags && known_apart(&self.last_modified, &other.last_modified))
            || self.total.zip(other.total).is_some_and(|(a, b)| a != b)
    }

    /// Whether `other` is known to be this version: the same entity tag, or without one the
    /// same date.
    fn same(&self, other: &Version) -> bool {
        match (&self.etag, &other.etag) {
            (Some(a), Some(b)) => a == b && !self.differs(other),
            (None, _) => {
                self.last_modified.is_some()
                    && self.last_modified == other.last_modified
                    && !self.differs(other)
            }
            (Some(_), None) => false,
        }
    }
}

/// The whole file's length a `Content-Range` names (`bytes 5-9/10`, `bytes */10`).
fn range_total(response: &crate::Response) -> Option<u64> {
    response
        .header("content-range")
        .and_then(|v| v.rsplit('/').next())
        .and_then(|v| v.trim().parse().ok())
}

/// How [`Request::download`] saves the body.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DownloadOptions {
    /// Continue an existing `dest.part` with a `Range` request.
    pub resume: bool,
    /// Flush the file to disk before it is renamed to `dest`. Off by default, as in curl,
    /// wget and httpie: the `.part` name already keeps a failed download from leaving a
    /// truncated `dest`, and only a machine crash soon after can lose it. On, a 1 GiB
    /// download waited 1.6 s more for a disk that writes 600 MB/s.
    pub fsync: bool,
}

impl DownloadOptions {
    /// The same with [`resume`](DownloadOptions::resume) on or off.
    #[must_use]
    pub fn with_resume(self, resume: bool) -> Self {
        DownloadOptions { resume, ..self }
    }

    /// The same with [`fsync`](DownloadOptions::fsync) on or off.
    #[must_use]
    pub fn with_fsync(self, fsync: bool) -> Self {
        DownloadOptions { fsync, ..self }
    }
}

/// A finished download.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Downloaded {
    /// The file written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Bytes that were already there from an earlier attempt.
    pub resumed_from: u64,
    /// The status of the last response (200, 206, or 416 when the part was complete).
    pub status: u16,
    /// The head of that response, for a caller to show (the body went to the file).
    pub head: crate::Head,
}

/// Where a download named `dest` goes, as curl -o writes into an existing file: a link is
/// written through to the file it names, a file replaced keeps its permissions and owner (a
/// 0600 token came out 0644), and one we may not write is refused before anything is fetched (the
/// rename over it needed only the directory's permission). Gives what is there now, if
/// anything.
fn write_through(dest: &Path) -> Result<(PathBuf, Option<std::fs::Metadata>), Error> {
    let file_error = |source| Error::File {
        path: dest.to_owned(),
        source,
    };
    let dest = match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_symlink() => match std::fs::canonicalize(dest) {
            Ok(target) => target,
            // A dangling link: the file it names is made, as curl makes it.
            Err(_) => match std::fs::read_link(dest) {
                Ok(target) => dest.parent().unwrap_or(Path::new("")).join(target),
                Err(e) => return Err(file_error(e)),
            },
        },
        _ => dest.to_owned(),
    };
    match std::fs::metadata(&dest) {
        // Refused before anything is fetched, as curl refuses it (the whole body came, then
        // the rename failed and left its part behind).
        Ok(meta) if meta.is_dir() => Err(file_error(std::io::Error::from(
            std::io::ErrorKind::IsADirectory,
        ))),
        Ok(meta) => {
            if meta.is_file() {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&dest)
                    .map_err(file_error)?;
            }
            Ok((dest, Some(meta)))
        }
        Err(_) => Ok((dest, None)),
    }
}

/// The partial file of a download to `dest`: `dest.part`, its name cut to leave room for
/// `.part` when `dest`'s is near the longest a file system takes (a 251-byte name, legal,
/// could not be downloaded).
#[must_use]
pub fn part_path(dest: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt as _;
    let name = dest.file_name().map_or(&[][..], |n| n.as_bytes());
    let mut end = name.len().min(MAX_NAME - ".part".len());
    // Not inside a UTF-8 character: a name cut there would not be text any more.
    while end < name.len() && end > 0 && name[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    let kept = &name[..end];
    let mut part = kept.to_vec();
    part.extend_from_slice(b".part");
    dest.with_file_name(std::ffi::OsStr::from_bytes(&part))
}

/// The longest file name Linux file systems take, in bytes.
const MAX_NAME: usize = 255;

/// `name` cut to leave room for a `-N` in [`MAX_NAME`] bytes, its extension kept, as httpie
/// trims a long name a server gives.
fn fitting(name: &str) -> std::borrow::Cow<'_, str> {
    const ROOM: usize = MAX_NAME - 8;
    if name.len() <= ROOM {
        return name.into();
    }
    let ext = name
        .rfind('.')
        .map(|dot| &name[dot..])
        .filter(|ext| ext.len() <= 16);
    let ext = ext.unwrap_or_default();
    let mut end = ROOM - ext.len();
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ext}", &name[..end]).into()
}

/// Where a download of `url` goes when no file is named, as httpie: the last segment of the
/// URL's path, percent-decoded (`index.html` for a directory), in `dir`. When a file of that
/// name exists, `-1`, `-2`, ... is added rather than writing over it, unless `resume` asks to
/// go on with that name's partial file.
#[must_use]
pub fn download_name(url: &str, dir: &Path, resume: bool) -> PathBuf {
    let segment = url::Url::parse(url)
        .ok()
        .and_then(|u| u.path_segments()?.next_back().map(str::to_owned))
        .unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(&segment).decode_utf8_lossy();
    // Control characters stay encoded, as wget leaves them: `%1B` decoded into the name put
    // an escape sequence on the terminal with the `saved` line.
    let decoded: String = decoded
        .chars()
        .map(|c| match c {
            c if c.is_control() => {
                let mut utf8 = [0; 4];
                c.encode_utf8(&mut utf8)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect()
            }
            c => c.to_string(),
        })
        .collect();
    let decoded = invisible_dropped(&decoded);
    let name = match decoded.as_str() {
        "" | "." | ".." => "index.html",
        name if name.contains(['/', '\\']) => "index.html",
        name => name,
    };
    free_name(dir, name, resume)
}

/// `name` without the characters that show nothing or turn text around (zero-width spaces
/// and joiners, bidi overrides and isolates, the BOM, the soft hyphen): `.\u{200b}.bashrc`
/// showed as `.bashrc`, `x\u{202e}txt.exe` as `xexe.txt`.
fn invisible_dropped(name: &str) -> String {
    name.chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{00AD}'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2060}'..='\u{2064}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{FEFF}'
            )
        })
        .collect()
}

/// `dir/name`, or `dir/name-N` with the first N that names no file nor a part another
/// download is writing (of five downloads of one URL at once, four failed as httpie gives
/// them `-1`, `-2`, ...); with `resume`, `name` when its partial file is there to go on with
/// (a file of that name is left alone: with no part of ours beside it, it is not ours to
/// continue or replace).
fn free_name(dir: &Path, name: &str, resume: bool) -> PathBuf {
    let name = fitting(name);
    let first = dir.join(name.as_ref());
    if resume && part_path(&first).exists() {
        return first;
    }
    // Opened without blocking and never through a link: a FIFO planted as the part held
    // the download for ever.
    let held = |path: &Path| {
        use std::os::unix::fs::OpenOptionsExt as _;
        OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
            .open(part_path(path))
            .is_ok_and(|part| {
                part.metadata().is_ok_and(|m| m.is_file())
                    && matches!(part.try_lock(), Err(std::fs::TryLockError::WouldBlock))
            })
    };
    let mut candidate = first;
    let mut n = 0;
    while candidate.exists() || held(&candidate) {
        n += 1;
        candidate = dir.join(format!("{name}-{n}"));
    }
    candidate
}

/// The file name a `Content-Disposition` value asks for (`filename*` over `filename`, as
/// RFC 6266 says), cut to its last path component with leading dots dropped (as httpie), so a
/// server can neither write outside the directory nor hide a dotfile there. `None` when there
/// is no usable name.
#[must_use]
pub fn disposition_name(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for (name, raw) in disposition_params(value) {
        if name.eq_ignore_ascii_case("filename*") {
            extended = decode_ext_value(&raw);
        } else if name.eq_ignore_ascii_case("filename") {
            plain = Some(raw);
        }
    }
    let name = invisible_dropped(&extended.or(plain)?);
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    // Dots and spaces in any mix: `. .bashrc` trimmed, then undotted, then trimmed again was
    // `.bashrc`.
    let clean = last
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end();
    (!clean.is_empty() && !clean.chars().any(char::is_control)).then(|| clean.to_owned())
}

/// The `name=value` parameters after the disposition type; quoted values unescaped.
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = value.split_once(';').map_or("", |(_, r)| r);
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        let Some((name, after)) = rest.split_once('=') else {
            return params;
        };
        // A parameter without a value (`attachment; inline; filename=x`): skip it.
        if let Some(semicolon) = name.find(';') {
            rest = &rest[semicolon + 1..];
            continue;
        }
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.push((name.trim().to_owned(), value));
        rest = next.split_once(';').map_or("", |(_, r)| r);
    }
}

/// An RFC 8187 `charset'language'percent-encoded` value (UTF-8 or ISO-8859-1).
fn decode_ext_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let charset = parts.next()?;
    let _language = parts.next()?;
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(parts.next()?).collect();
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

/// Where [`Request::fetch`] writes: a file, or a directory where the response names it.
#[derive(Clone, Copy)]
enum Target<'a> {
    File(&'a Path),
    Dir(&'a Path),
}

impl Request {
    /// Streams the response body to `dest` in constant memory.
    ///
    /// Bytes go to `dest.part`, locked while it is written (a second download of the same
    /// name is refused), renamed to `dest` only when the length matches what the server
    /// announced, so `dest` is never a truncated file (an existing `dest` whose directory
    /// takes no new file is refused, the part named; a part moved or removed meanwhile is an [`Error::File`] that says where it
    /// went, `dest` untouched). With `resume`, an existing part is
    /// continued with a `Range` request; with no part, `dest` itself is, as httpie's
    /// `-c -o FILE` continues it. It asks for `Accept-Encoding: identity` (ranges count the
    /// bytes as sent) unless the request gives or removes that header itself. A server that
    /// does not answer the range with the rest of
    /// the file (it ignores ranges, or the part is longer than the file) leaves the part as
    /// it was, as curl leaves it (wget and httpie start over); on a retry after a cut, a whole
    /// body that starts with the part's bytes goes on from them, one that does not is refused.
    /// A retry's range is asked only of the version the part's bytes are of (`If-Range`
    /// with the first answer's strong ETag, or its Last-Modified); a file replaced on the
    /// server meanwhile (a 200 to that, or a 206 naming another ETag or length) starts the
    /// part over from byte 0, as curl --retry -C - does, never spliced. A 3xx (a redirect not
    /// followed, or one with no `Location` to follow: a final answer, as httpie takes it), 4xx
    /// or 5xx answer is an [`Error::Status`] and writes nothing.
    ///
    /// `events` is told of each response's head as it comes, before its body is saved or
    /// refused ([`DownloadEvent::Head`]), then of the progress after every chunk.
    ///
    /// # Errors
    /// [`Error::Status`], [`Error::Truncated`] (the part is kept for a resume), [`Error::Io`]
    /// for an answer that is not the rest of the file (or, to a request for all of it, is
    /// only part of it),
    /// [`Error::Timeout`] when a timeout ends it (the part is kept too; the client's whole-request
    /// `timeout` counts the download's time as well), [`Error::File`] for local files, and the
    /// errors of [`Request::send`].
    pub fn download(
        self,
        dest: &Path,
        resume: bool,
        events: &mut dyn FnMut(DownloadEvent),
    ) -> Result<Downloaded, Error> {
        self.download_with(dest, DownloadOptions::default().with_resume(resume), events)
    }

    /// As [`download`](Request::download), with every option (fsync too).
    ///
    /// # Errors
    /// As [`download`](Request::download).
    pub fn download_with(
        self,
        dest: &Path,
        options: DownloadOptions,
        events: &mut dyn FnMut(DownloadEvent),
    ) -> Result<Downloaded, Error> {
        self.fetch(Target::File(dest), options, events)
    }

    /// As [`download_with`](Request::download_with), into a file in `dir` named as httpie's
    /// `--download` names it: by the response's `Content-Disposition` (see
    /// [`disposition_name`]), else by the URL asked for, not where it redirected (see
    /// [`download_name`]); never over an existing file.
    ///
    /// # Errors
    /// As [`download`](Request::download).
    pub fn download_into(
        self,
        dir: &Path,
        options: DownloadOptions,
        events: &mut dyn FnMut(DownloadEvent),
    ) -> Result<Downloaded, Error> {
        self.fetch(Target::Dir(dir), options, events)
    }

    /// [`fetch_once`](Request::fetch_once), again while the body is cut off or stalls
    /// mid-way and retries are left, as curl's `--retry` takes a transfer that times out: the
    /// request's own retries end where its head came. Without `resume` the file starts over,
    /// as curl's does; with it, it goes on from what came, by a range. The retries are those
    /// of the request's, counted together, within the same whole-transfer time.
    fn fetch(
        self,
        target: Target<'_>,
        options: DownloadOptions,
        events: &mut dyn FnMut(DownloadEvent),
    ) -> Result<Downloaded, Error> {
        let again = (self.retry_policy().retries > 0 && self.idempotent()).then(|| {
            let mut again = self.clone();
            again.start_deadline();
            again
        });
        let mut cut = None;
        let mut version = None;
        let error = match self.fetch_once(target, options, events, &mut cut, &mut version) {
            Err(error) => error,
            done => return done,
        };
        let Some(again) = again else {
            return Err(error);
        };
        again.again_while_cut(error, cut, |request, cut| {
            request.fetch_once(target, options, events, cut, &mut version)
        })
    }

    /// One download: the request sent (with its own retries) and the body saved. A failure
    /// while the body came sets `cut` to the retries used so far. `version` is that of the
    /// part's bytes this run wrote, set here when they begin: a range going on from them
    /// asks for that version only, and another version starts the part over.
    fn fetch_once(
        self,
        target: Target<'_>,
        options: DownloadOptions,
        events: &mut dyn FnMut(DownloadEvent),
        cut: &mut Option<u32>,
        version: &mut Option<Version>,
    ) -> Result<Downloaded, Error> {
        let file_error = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::File { path, source }
        };
        let named = matches!(target, Target::File(_));
        // A retry's part is the cut one this download left: replaced without a word.
        let ours = self.retried > 0;
        // The file replaced, whose permissions and owner the new one takes.
        let mut replaced = None;
        // A device or FIFO named (`-o /dev/null`) is written into, as curl writes into it:
        // a part renamed over it replaced the device with a file (/dev/null itself, as root).
        let mut direct = false;
        let (known, dir) = match target {
            Target::File(dest) => {
                let (dest, there) = write_through(dest)?;
                direct = there.as_ref().is_some_and(|m| !m.is_file() && !m.is_dir());
                replaced = there.filter(std::fs::Metadata::is_file);
                (Some(dest), Path::new(""))
            }
            Target::Dir(dir) if options.resume => (Some(download_name(self.url(), dir, true)), dir),
            Target::Dir(dir) => (None, dir),
        };
        let size = |path: &Path| std::fs::metadata(path).ok().map(|m| m.len());
        // What a resume continues: our part file, else a file named by the caller itself,
        // as httpie's `-c -o FILE` and curl's `-C - -o FILE` continue it (a name we chose
        // could be an unrelated file).
        let (have, from_dest) = match &known {
            Some(dest) if options.resume && !direct => match size(&part_path(dest)) {
                Some(have) => (have, false),
                None if named => (size(dest).unwrap_or(0), true),
                None => (0, false),
            },
            _ => (0, false),
        };
        // The version this run's part is of, to go on from (an earlier run's part is of a
        // version nobody knows: resumed as it is, as curl and wget resume it).
        let going_on = version.clone().filter(|_| have > 0 && !from_dest);
        // Sent again from byte 0 should the server give the rest of another version.
        let over = going_on.is_some().then(|| self.clone());
        // A range the caller asked for itself is what it wants saved (curl -r).
        let asked_range = self.has_header("Range");
        // Byte ranges count encoded bytes: ask for the identity encoding, unless the caller
        // chose an Accept-Encoding of its own (or none), which is what it showed and sends.
        let mut request = if self.chose_header("Accept-Encoding") {
            self
        } else {
            self.header("Accept-Encoding", "identity")
        };
        if have > 0 {
            request = request.header("Range", &format!("bytes={have}-"));
            if let Some(tag) = going_on.as_ref().and_then(|v| v.if_range.as_deref())
                && !request.has_header("If-Range")
            {
                request = request.header("If-Range", tag);
            }
        }
        let url = request.url().to_owned();
        let mut response = request.send()?;
        let retried = response.retried();
        // A body cut off is sent again here, the file started over or resumed: not by the
        // reader, which counted its retries apart.
        response.set_again(None);
        // Before anything is judged or read, so that a refused answer is seen as well.
        events(DownloadEvent::Head(&mut response));
        let status = response.status();
        let head = response.head();
        let dest = known.unwrap_or_else(|| {
            let named = response
                .header("content-disposition")
                .and_then(disposition_name);
            match named {
                Some(name) => free_name(dir, &name, false),
                // The URL asked for, not where it redirected: a redirect must not choose the
                // file written (httpie's CVE-2019-10751 let one write a dot file); as curl -O.
                None => download_name(&url, dir, false),
            }
        });
        let dest = dest.as_path();
        let part = if direct {
            dest.to_owned()
        } else {
            part_path(dest)
        };
        if status == 416 && have > 0 {
            let total = range_total(&response);
            if total == Some(have) {
                if !from_dest {
                    std::fs::rename(&part, dest).map_err(file_error(dest))?;
                }
                return Ok(Downloaded {
                    path: dest.to_owned(),
                    bytes: have,
                    resumed_from: have,
                    status,
                    head,
                });
            }
            if let Some(total) = total.filter(|total| *total < have) {
                let kept = if from_dest { dest } else { &part };
                return Err(Error::Status {
                    url,
                    status,
                    reason: response.reason().to_owned(),
                    excerpt: format!(
                        "{} holds {have} bytes, more than the whole file's {total}: it is not \
                         part of this file (remove it to download again)",
                        kept.display()
                    ),
                });
            }
        }
        let response = response.error_for_status()?;
        if (300..400).contains(&status) {
            // Its body is not the file: nothing is written.
            let excerpt = match response.header("location").filter(|l| !l.trim().is_empty()) {
                Some(to) => format!("a redirect to {to}, not followed"),
                None => "no Location to follow: the server's answer, not the file".to_owned(),
            };
            return Err(Error::Status {
                url,
                status,
                reason: response.reason().to_owned(),
                excerpt,
            });
        }
        // Another version than the part's: what came is of a file replaced meanwhile (a
        // deploy's rename), to start over rather than splice two files, as curl --retry -C -
        // ends up starting over. A 200 to our `If-Range` says so, or what the answer names.
        let total_now = if status == 206 {
            range_total(&response)
        } else {
            response.content_length()
        };
        let now = Version::of(&response, total_now);
        let changed = going_on.as_ref().is_some_and(|was| {
            was.differs(&now) || (status == 200 && was.if_range.is_some() && !was.same(&now))
        });
        if changed {
            log::warn!(
                "{url}: the file changed on the server since the download began; it starts over"
            );
            if let Some(over) = over.filter(|_| status == 206) {
                // The rest of the new version (a server that ignores If-Range): the whole
                // of it is asked for instead. The part is emptied, not removed: with none,
                // `-c -o FILE` would go on from FILE itself.
                drop(response);
                open_part(&part, true, None, false)
                    .and_then(|file| file.set_len(0))
                    .map_err(file_error(&part))?;
                *version = None;
                return over.fetch_once(target, options, events, cut, version);
            }
        }
        // A whole body of another version is the file from its first byte.
        let have = if changed { 0 } else { have };
        *version = Some(match going_on {
            Some(was) if !changed => was,
            _ => now,
        });
        // A retry's range the server ignored: the part's bytes, to compare with the start of
        // the whole body that comes instead (see below).
        let mut again_whole = None;
        let (mut file, start, total) = if status == 206 && have > 0 {
            let range_start = response
                .header("content-range")
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if range_start != Some(have) {
                return Err(Error::Io {
                    url,
                    reason: format!("asked for bytes from {have}, the server sent another range"),
                });
            }
            let total = total_now;
            if from_dest {
                // From here the file is a part like any other: whole again only at the end.
                std::fs::rename(dest, &part).map_err(|e| {
                    // Gone since we looked: another `-c` of it took it as its part.
                    file_error(dest)(match e.kind() {
                        std::io::ErrorKind::NotFound if part.exists() => std::io::Error::new(
                            std::io::ErrorKind::WouldBlock,
                            "another download is writing it",
                        ),
                        _ => no_part_beside(&part, e),
                    })
                })?;
            }
            let file =
                open_part(&part, true, replaced.as_ref(), false).map_err(file_error(&part))?;
            (file, have, total)
        } else if have > 0 && ours && !from_dest && status == 200 {
            // A retry after a cut, its range ignored: the whole file comes again (curl -C -
            // gives up, exit 33; wget starts over, losing the part should this try be cut
            // too). Its first `have` bytes are checked against the part and only the rest
            // appended: the part is kept until the body shows it is this file's start, and
            // a body of another file (a captive portal's page) is never appended to it.
            let total = response.content_length();
            if total.is_some_and(|total| total < have) {
                return Err(shorter_again(url, have, &part));
            }
            let file =
                open_part(&part, true, replaced.as_ref(), false).map_err(file_error(&part))?;
            let kept = File::open(&part).map_err(file_error(&part))?;
            again_whole = Some((std::io::BufReader::new(kept), have));
            (file, have, total)
        } else if have > 0 {
            // A server that ignores the range sends the whole file, or a page that is not the
            // file at all (a proxy, a captive portal): what is kept stays, as curl
            // keeps it, rather than being thrown away for whatever comes.
            let kept = if from_dest { dest } else { &part };
            return Err(Error::Io {
                url,
                reason: format!(
                    "the server does not resume (it answered {status}, not 206, to a range): \
                     {} kept as it was; without resuming the download starts over",
                    kept.display()
                ),
            });
        } else if status == 206 && !asked_range {
            // Part of the file to a request for all of it (a cache answering with a slice):
            // saved, it would be taken for the whole file.
            return Err(Error::Io {
                url,
                reason: "the server sent part of the file (206) to a request for all of it".into(),
            });
        } else {
            let total = response.content_length();
            // Errors writing name the file asked for: `.part` is ours.
            let file = if direct {
                File::create(&part)
            } else {
                open_part(&part, false, replaced.as_ref(), ours).map_err(|e| {
                    if replaced.is_some() {
                        no_part_beside(&part, e)
                    } else {
                        e
                    }
                })
            }
            .map_err(file_error(dest))?;
            (file, 0, total)
        };
        let mut reader = response.raw_reader();
        let mut buf = vec![0; CHUNK];
        let mut done = start;
        let resumable = (!direct).then_some(part.as_path());
        events(DownloadEvent::Progress(Progress {
            done,
            total,
            part: resumable,
        }));
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = file.flush();
                    *cut = Some(retried);
                    let kept = |why: String| format!("{why}; {}", kept_part(done, &part));
                    return Err(match (Error::from_io(url.clone(), &e), total) {
                        // Our timeout, not the server's doing: named as such, part and all.
                        (Error::Timeout { url, what, kind }, _) => Error::Timeout {
                            url,
                            what: kept(what),
                            kind,
                        },
                        (_, Some(expected)) => Error::Truncated {
                            url,
                            got: done,
                            expected,
                            part,
                        },
                        // Cut with no length announced (chunked): where it went, as above.
                        (Error::Io { url, reason }, None) if !direct => Error::Io {
                            url,
                            reason: kept(reason),
                        },
                        (Error::Connect { url, reason }, None) if !direct => Error::Connect {
                            url,
                            reason: kept(reason),
                        },
                        (error, None) => error,
                    });
                }
            };
            let mut chunk = &buf[..n];
            if let Some((kept, left)) = &mut again_whole {
                let same = chunk
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                let mut had = vec![0; same];
                kept.read_exact(&mut had).map_err(file_error(&part))?;
                if had != chunk[..same] {
                    return Err(Error::Io {
                        url,
                        reason: format!(
                            "sent again, the server ignored the range and sent a whole body \
                             that does not start as what came before: another file? {}",
                            kept_part(done, &part)
                        ),
                    });
                }
                *left -= same as u64;
                chunk = &chunk[same..];
            }
            file.write_all(chunk).map_err(|e| {
                // A full disk: where the bytes are, to go on from once there is room. A file
                // written into, one that takes no bytes (`/proc/version`: EIO), says so.
                let why = if direct {
                    format!("cannot be written: {e}")
                } else {
                    // A file being replaced stays whole until the download is: with room for
                    // one copy, resuming cannot help (curl -o overwrites in place).
                    let both = if e.kind() == std::io::ErrorKind::StorageFull && dest.exists() {
                        format!(
                            " ({} is replaced only once the download is whole: it needs room \
                             for both, or remove it first)",
                            dest.display()
                        )
                    } else {
                        String::new()
                    };
                    format!(
                        "{e}; what came is kept in {} to resume from{both}",
                        part.display()
                    )
                };
                file_error(dest)(std::io::Error::new(e.kind(), why))
            })?;
            done += chunk.len() as u64;
            events(DownloadEvent::Progress(Progress {
                done,
                total,
                part: resumable,
            }));
        }
        if again_whole.is_some_and(|(_, left)| left > 0) {
            return Err(shorter_again(url, done, &part));
        }
        if options.fsync {
            file.sync_all().map_err(file_error(dest))?;
        }
        if let Some(expected) = total
            && done != expected
        {
            *cut = Some(retried);
            return Err(Error::Truncated {
                url,
                got: done,
                expected,
                part,
            });
        }
        if let Some(kept) = &replaced {
            use std::os::unix::fs::MetadataExt as _;
            // Through the open file, not its name: a part moved or removed meanwhile is told
            // of below, not as a missing file (exit 2, bad input).
            file.set_permissions(kept.permissions())
                .map_err(file_error(dest))?;
            // And its owner, where we may give it (root refreshing a user's file locked the
            // user out of it).
            if let Err(e) = std::os::unix::fs::fchown(&file, Some(kept.uid()), Some(kept.gid())) {
                log::debug!("{}: owner not kept: {e}", dest.display());
            }
        }
        if !direct {
            // Still the file we wrote, and only we: another program could have replaced or
            // written to it (curl, or a user), and renamed, it would be taken as complete.
            let ours = file.metadata().map_err(file_error(&part))?;
            let there = std::fs::symlink_metadata(&part).map_err(|e| match e.kind() {
                // Removed, or its directory moved, by another program (curl, writing into the
                // file it opened, ends with it wherever it went): an I/O failure, not a
                // missing file the user named, and the file asked for is not written.
                std::io::ErrorKind::NotFound => Error::File {
                    path: part.clone(),
                    source: std::io::Error::other(format!(
                        "{} by another program during the download; {} not written",
                        gone_to(&file),
                        dest.display()
                    )),
                },
                _ => file_error(&part)(e),
            })?;
            use std::os::unix::fs::MetadataExt as _;
            if (ours.dev(), ours.ino(), ours.len()) != (there.dev(), there.ino(), done) {
                return Err(Error::File {
                    path: part,
                    source: std::io::Error::other(
                        "changed by another program during the download; not renamed",
                    ),
                });
            }
            std::fs::rename(&part, dest).map_err(|e| {
                // Another user's file in a sticky directory, an immutable one.
                let kept = format!(
                    "cannot be replaced with the download: {e}; it is in {}",
                    part.display()
                );
                file_error(dest)(std::io::Error::new(e.kind(), kept))
            })?;
        }
        Ok(Downloaded {
            path: dest.to_owned(),
            bytes: done,
            resumed_from: start,
            status,
            head,
        })
    }
}

/// Opens a download's partial file, locked for as long as it is open: to go on with it
/// (`resume`), never through a link, and only a regular file; else made new, exclusively,
/// after what is there under its name is removed. Its name is known in advance: in a shared
/// directory another user could plant a link there, through which our download overwrote a
/// file of ours it named. A part another download holds is refused: two downloads of one
/// name wrote into one part, and the first renamed the second's, short or too long. Made
/// new, it has the permissions of the file it will replace (`replaced`): a private file's
/// new content was readable by all while it came (and after an interruption). A part left
/// by an earlier download is warned of as replaced, unless it is `ours` (this run's cut one).
fn open_part(
    part: &Path,
    resume: bool,
    replaced: Option<&std::fs::Metadata>,
    ours: bool,
) -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let existing = || {
        let file = OpenOptions::new()
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(part)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        locked(file)
    };
    if resume {
        // In a shared directory anyone may leave a part for us to finish: the file would
        // start with their bytes and stay theirs to change (sftp's put -a refuses it too).
        let file = existing()?;
        if file.metadata()?.uid() != nix::unistd::geteuid().as_raw() {
            return Err(std::io::Error::other("another user's part: not resumed"));
        }
        return Ok(file);
    }
    match std::fs::symlink_metadata(part) {
        Ok(meta) => {
            // Only a download holding it stops us: one we may not open (read-only) goes as
            // it went before the lock.
            if meta.is_file()
                && let Err(e) = existing()
                && e.kind() == std::io::ErrorKind::WouldBlock
            {
                return Err(e);
            }
            // An empty one holds nothing to lose (one stopped before its first byte came).
            if meta.len() > 0 && !ours {
                log::warn!(
                    "{}: what an earlier download left there is replaced (a resume would have \
                     gone on from it)",
                    part.display()
                );
            }
            std::fs::remove_file(part)?;
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let mode = replaced.map_or(0o666, |meta| meta.mode() & 0o777);
    locked(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(part)?,
    )
}

/// Where an open file whose name is gone went, as the kernel tells (`/proc/self/fd`):
/// `moved to PATH`, or `removed`.
fn gone_to(file: &File) -> String {
    use std::os::fd::AsRawFd as _;
    match std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(now) if !now.to_string_lossy().ends_with(" (deleted)") => {
            format!("moved to {}", now.display())
        }
        _ => "removed".to_owned(),
    }
}

/// `error`, making `part` beside an existing file, naming the part when it says the file's
/// directory takes no new file (a pseudo file system: ENOENT in /proc; a directory not ours
/// to write): told of the file, it read as the file's own ("No such file" of one that is
/// there). Written into, as curl does, a cut download would leave the file truncated.
fn no_part_beside(part: &Path, error: std::io::Error) -> std::io::Error {
    use std::io::ErrorKind as K;
    if !matches!(
        error.kind(),
        K::NotFound | K::PermissionDenied | K::ReadOnlyFilesystem
    ) {
        return error;
    }
    let why = format!(
        "cannot make {} beside it ({error}): a download is written there and renamed, so \
         that the file is never left cut short",
        part.display()
    );
    std::io::Error::new(error.kind(), why)
}

/// `file` with an exclusive lock, held until it is closed; refused when another holds it.
fn locked(file: File) -> std::io::Result<File> {
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "another download is writing it",
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_come_from_the_url_and_never_take_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let name = |path: &str, resume: bool| {
            let chosen = download_name(&format!("http://h:1{path}"), dir.path(), resume);
            chosen
                .strip_prefix(dir.path())
                .unwrap()
                .display()
                .to_string()
        };
        assert_eq!(name("/a/b.txt?x=1#f", false), "b.txt");
        assert_eq!(name("/a%20b.txt", false), "a b.txt");
        // Control characters stay encoded: none reaches the terminal in the `saved` line.
        assert_eq!(name("/x%1B%5B2J%0Ay%00", false), "x%1B[2J%0Ay%00");
        assert_eq!(name("/a%C2%85b", false), "a%C2%85b");
        for path in ["/", "/dir/", "/a/%2e%2e", "/x%2Fy"] {
            assert_eq!(name(path, false), "index.html", "{path}");
        }
        std::fs::write(dir.path().join("b.txt"), b"mine").unwrap();
        std::fs::write(dir.path().join("b.txt-1"), b"mine too").unwrap();
        assert_eq!(name("/b.txt", false), "b.txt-2");
        // Resuming goes on with the name the interrupted download had, when its part is
        // there: else a file of that name is not ours to continue or replace.
        assert_eq!(name("/b.txt", true), "b.txt-2");
        std::fs::write(dir.path().join("b.txt.part"), b"half").unwrap();
        assert_eq!(name("/b.txt", true), "b.txt");
        // A name whose part another download is writing is taken: the next one is ours.
        assert_eq!(name("/c.txt", false), "c.txt");
        let writing = File::create(dir.path().join("c.txt.part")).unwrap();
        writing.lock().unwrap();
        assert_eq!(name("/c.txt", false), "c.txt-1");
        drop(writing);
        assert_eq!(name("/c.txt", false), "c.txt");
        // A FIFO there is no part being written, and looking at it does not wait for a
        // writer.
        nix::unistd::mkfifo(
            &dir.path().join("d.txt.part"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        assert_eq!(name("/d.txt", false), "d.txt");
        // A name too long to take `.part` or `-N` is cut, its extension kept.
        let long = format!("/{}.tar.gz", "n".repeat(300));
        let chosen = name(&long, false);
        assert!(
            chosen.len() <= 247 && chosen.ends_with("nnn.gz"),
            "{chosen}"
        );
        let part = part_path(&dir.path().join("p".repeat(255)));
        assert_eq!(part.file_name().unwrap().len(), 255);
        assert!(part.to_string_lossy().ends_with("pp.part"));
        // 'é' is two bytes: a name of 253 cut at 250 would split the 125th.
        let part = part_path(&dir.path().join(format!("a{}", "é".repeat(126))));
        let part = part.file_name().unwrap().to_str().expect("still UTF-8");
        assert_eq!(part, format!("a{}.part", "é".repeat(124)));
    }

    #[test]
    fn content_disposition_names_are_decoded_and_kept_inside_the_directory() {
        let cases = [
            ("attachment; filename=report.pdf", Some("report.pdf")),
            (
                "attachment; filename=\"a \\\"b\\\".txt\"; size=3",
                Some("a \"b\".txt"),
            ),
            (
                "attachment; filename=\"plain.txt\"; filename*=UTF-8''na%C3%AFve%20r.txt",
                Some("naïve r.txt"),
            ),
            (
                "attachment; FILENAME*=iso-8859-1'en'caf%E9.txt",
                Some("café.txt"),
            ),
            ("attachment; filename=\"../../etc/passwd\"", Some("passwd")),
            (
                "attachment; filename=\"C:\\\\x\\\\..\\\\y.txt\"",
                Some("y.txt"),
            ),
            ("attachment; filename=.bashrc", Some("bashrc")),
            ("attachment; filename=\". .bashrc\"", Some("bashrc")),
            ("attachment; filename=\".. .netrc \"", Some("netrc")),
            (
                "attachment; filename*=UTF-8''%2E%20%2Eprofile",
                Some("profile"),
            ),
            ("attachment; filename=\". .\"", None),
            (
                "attachment; filename*=UTF-8''.%E2%80%8B.bashrc",
                Some("bashrc"),
            ),
            (
                "attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe",
                Some("invoicefdp.exe"),
            ),
            ("attachment; filename=\"..\"", None),
            ("attachment; filename=\"a\u{7}b\"", None),
            ("attachment; filename*=koi8-r''x", None),
            ("inline", None),
            ("attachment; name=\"f\"", None),
            ("attachment; odd; filename=x.bin", Some("x.bin")),
        ];
        for (value, want) in cases {
            assert_eq!(disposition_name(value).as_deref(), want, "{value}");
        }
    }
}
