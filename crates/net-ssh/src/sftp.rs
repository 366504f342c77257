//! SFTP: streamed put and get that never leave a truncated target, and file management.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ssh2::{FileStat, OpenFlags, OpenType, RenameFlags, Sftp};

use crate::Error;
use crate::client::Client;

/// libssh2 sends one write call's whole buffer ahead of the acknowledgements, and reads ahead
/// four times one read call's buffer (up to 8 MiB): 2 MiB reads keep 8 MiB in flight.
const CHUNK: usize = 2 << 20;

/// The most an upload keeps handed to libssh2 (sent or about to be) ahead of the
/// acknowledgements, once [`Window`] has found the link fast enough for it: on loopback a
/// window that drains at each buffer boundary lost throughput (see [`send_window`]).
const MAX_WINDOW: usize = 4 << 20;

/// The window an upload starts with, before any acknowledgement has said how fast the link
/// is: at 512 kbit/s its first call takes about a second.
const FIRST_WINDOW: usize = 64 << 10;

/// The smallest window: a little over one SFTP write request (libssh2 cuts them at 30000
/// bytes), so that there is always one to send.
const MIN_WINDOW: usize = 32 << 10;

/// How many bytes an upload hands libssh2 ahead of the acknowledgements, fitted to the link.
///
/// libssh2's write sends all of the bytes it is handed before it looks for the first
/// acknowledgement (and, without blocking, says nothing but "again" until then), and each
/// call is given the session's timeout (`--timeout`, 30 s by default). A fixed 4 MiB window
/// took 64 s to send at 512 kbit/s, so every put over such a link failed with "timed out",
/// where OpenSSH's sftp, with 64 requests of 32 KiB in flight, finishes. The window starts at
/// [`FIRST_WINDOW`], doubles after each call that handed bytes and took less than an eighth of
/// the timeout, and never exceeds what the acknowledgements say the link carries in a quarter
/// of it (nor [`MAX_WINDOW`], nor goes below [`MIN_WINDOW`]). Without a timeout it is
/// [`MAX_WINDOW`] from the start.
#[derive(Debug)]
struct Window {
    limit: usize,
    timeout: std::time::Duration,
    /// The acknowledged total and when, at the start of the previous and of the current
    /// period of a quarter of the timeout: the rate is measured since the older one, over a
    /// quarter to a half of the timeout, so that a link that slows down is seen within that.
    marks: [(std::time::Instant, u64); 2],
}

impl Window {
    fn new(timeout: std::time::Duration, now: std::time::Instant) -> Self {
        Window {
            limit: if timeout.is_zero() {
                MAX_WINDOW
            } else {
                FIRST_WINDOW
            },
            timeout,
            marks: [(now, 0); 2],
        }
    }

    /// How many bytes to keep handed to libssh2.
    fn limit(&self) -> usize {
        self.limit
    }

    /// Takes in a write call that handed libssh2 `fresh` bytes it did not hold before, took
    /// `took`, and left `acked` bytes acknowledged in all.
    fn called(
        &mut self,
        fresh: usize,
        took: std::time::Duration,
        acked: u64,
        now: std::time::Instant,
    ) {
        if self.timeout.is_zero() {
            return;
        }
        if fresh > 0 && took < self.timeout / 8 {
            self.limit = (self.limit * 2).min(MAX_WINDOW);
        }
        let (since, acked_then) = self.marks[0];
        let elapsed = now.saturating_duration_since(since).as_nanos();
        // What the link carried in a quarter of the timeout, at the rate measured (none yet
        // when no time has passed).
        if let Some(quarter) = (u128::from(acked.saturating_sub(acked_then))
            * (self.timeout / 4).as_nanos())
        .checked_div(elapsed)
        {
            let carried = usize::try_from(quarter).unwrap_or(usize::MAX);
            self.limit = self.limit.min(carried).max(MIN_WINDOW);
        }
        if now.saturating_duration_since(self.marks[1].0) >= self.timeout / 4 {
            self.marks = [self.marks[1], (now, acked)];
        }
    }
}

/// Which side of a copy failed, or that it was cancelled.
enum Copy {
    Local(std::io::Error),
    Remote(std::io::Error),
    Cancelled,
}

/// Why a recursive transfer leaves out a symbolic link to a directory: one that points back
/// up the tree would make it copy forever.
const LINKED_DIR: &str = "a link to a directory, which could loop";

/// Says that a recursive transfer left `path` out, as sftp does with what is neither a file
/// nor a directory (a FIFO, which would block the open; a socket; a dangling link). Named
/// alone, such a path is opened as asked (`put /dev/stdin host:f`).
fn skipped(path: impl std::fmt::Display, why: &str) {
    log::warn!("{path}: {why}; skipped");
}

/// Whether `path`, a name the server listed in `dir` joined to it, is a plain name in it.
fn listed_in(dir: &Path, path: &Path) -> bool {
    path.parent() == Some(dir) && path.file_name().is_some()
}

/// What went wrong with single files of a transfer of many (recursive, or a wildcard's),
/// each told as it happened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Files that could not be copied (or changed, as the transfer does).
    pub failed: usize,
    /// Files copied that changed size while they were ([`Error::Changed`]).
    pub changed: usize,
}

impl Tally {
    /// The line that ends a transfer whose files failed or changed, which were told as they
    /// did: "2 files could not be `done`, 1 changed as we read them (said above)"; `None`
    /// when none did.
    pub fn said(&self, done: &str) -> Option<String> {
        let files = |n: usize| if n == 1 { "file" } else { "files" };
        let said = match (self.failed, self.changed) {
            (0, 0) => return None,
            (failed, 0) => format!("{failed} {} could not be {done}", files(failed)),
            (0, changed) => format!("{changed} {} changed as we read them", files(changed)),
            (failed, changed) => format!(
                "{failed} {} could not be {done}, {changed} changed as we read them",
                files(failed)
            ),
        };
        Some(format!("{said} (said above)"))
    }
}

/// The end of a recursive transfer over `dir`: the files that failed or changed were told as
/// they did (the others went on, as sftp and scp go on, and as tar goes on past a file that
/// changed), and make it fail as a whole.
fn failed_in(host: &str, dir: &Path, tally: &Tally) -> Result<(), Error> {
    match tally.said("copied") {
        None => Ok(()),
        Some(reason) => Err(Error::Sftp {
            host: host.to_owned(),
            path: dir.to_owned(),
            reason,
        }),
    }
}

/// A failure of one file in a recursive transfer, told and gone past, as is a file that
/// changed while copied (a warning: it was copied); any other (the connection, a cancel) ends
/// the transfer.
fn go_past(result: Result<(), Error>, tally: &mut Tally) -> Result<(), Error> {
    match result {
        Err(e @ Error::Changed { .. }) => {
            log::warn!("{e}");
            tally.changed += 1;
            Ok(())
        }
        Err(e) if e.concerns_one_file() => {
            log::error!("{e}");
            tally.failed += 1;
            Ok(())
        }
        other => other,
    }
}

/// `Ok` when the `copied` bytes of `path` are the `size` it had when the copy began, else
/// [`Error::Changed`] (`host` when the file read is remote). A size not known, or of 0, is
/// not held against what was read: /proc's files say 0 and hold text, which sftp reads whole;
/// nor one the file still says (`now`, asked only then): /sys's files say 4096 and hold less.
fn same_size(
    host: Option<&str>,
    path: &Path,
    size: Option<u64>,
    copied: u64,
    now: impl FnOnce() -> Option<u64>,
) -> Result<(), Error> {
    let Some(size) = size.filter(|&size| size > 0 && size != copied) else {
        return Ok(());
    };
    if now() == Some(size) {
        return Ok(());
    }
    Err(Error::Changed {
        host: host.map(str::to_owned),
        path: path.to_owned(),
        size,
        copied,
    })
}

/// `error` naming where what was copied is kept, when it is the connection's loss, a local
/// file's (a full disk) or the server's (its full disk): the user then knows that a rerun
/// with `-a` goes on from there, as `http -d` says where what came is kept.
fn kept_in(error: Error, kept: impl FnOnce() -> String) -> Error {
    match error {
        // `put -a` onto a full disk left its part there, filling it, and said nothing of it.
        Error::Sftp { host, path, reason } => Error::Sftp {
            host,
            path,
            reason: format!("{reason}; {}", kept()),
        },
        Error::ConnectionLost { host, path, .. } => Error::ConnectionLost {
            host,
            path,
            kept: Some(kept()),
        },
        Error::Local { path, source } => Error::Local {
            path,
            source: std::io::Error::new(source.kind(), format!("{source}; {}", kept())),
        },
        other => other,
    }
}

/// One character of a name, or one byte of it that is no part of a UTF-8 character: names
/// are bytes (on Unix and in SFTP alike), and a name that is not UTF-8 is matched by its own
/// bytes, never read as another whose name holds U+FFFD in their place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Char(char),
    Byte(u8),
}

/// The units of `name`, in order.
fn units(name: &OsStr) -> Vec<Unit> {
    name.as_bytes()
        .utf8_chunks()
        .flat_map(|chunk| {
            let chars = chunk.valid().chars().map(Unit::Char);
            chars.chain(chunk.invalid().iter().map(|&byte| Unit::Byte(byte)))
        })
        .collect()
}

/// `unit` added to the bytes of `name`.
fn push_unit(name: &mut Vec<u8>, unit: Unit) {
    match unit {
        Unit::Char(c) => name.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        Unit::Byte(byte) => name.push(byte),
    }
}

/// What one place of a wildcard part takes.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// This unit itself.
    Is(Unit),
    /// `?`: any one unit.
    One,
    /// `*`: any units, none included.
    Any,
    /// `[...]` (`[!...]` when `not`): a unit in (or not in) one of these inclusive ranges.
    Set {
        not: bool,
        ranges: Vec<(Unit, Unit)>,
    },
}

impl Token {
    fn takes(&self, unit: Unit) -> bool {
        match self {
            Token::Is(is) => *is == unit,
            Token::One | Token::Any => true,
            Token::Set { not, ranges } => {
                ranges
                    .iter()
                    .any(|(low, high)| (low..=high).contains(&&unit))
                    != *not
            }
        }
    }
}

/// A part of a wildcard path, read as glob(3) reads it: `*`, `?`, `[...]` (`[!...]`, ranges
/// `[a-z]`, a `]` first a member), and backslashes making `\*`, `\?`, `\[` those characters,
/// not wildcards (`report\[1\].txt` names `report[1].txt`).
struct Escaped {
    tokens: Vec<Token>,
    /// The name with its backslashes dropped.
    literal: OsString,
    /// A wildcard not escaped is in it.
    wild: bool,
}

impl Escaped {
    fn of(part: &OsStr) -> Escaped {
        let units = units(part);
        let mut tokens = Vec::with_capacity(units.len());
        let mut literal = Vec::with_capacity(part.len());
        let mut wild = false;
        let mut i = 0;
        while let Some(&unit) = units.get(i) {
            i += 1;
            let token = match unit {
                Unit::Char('\\') => {
                    // A backslash at the end is itself.
                    let plain = units.get(i).copied().unwrap_or(unit);
                    i += 1;
                    push_unit(&mut literal, plain);
                    tokens.push(Token::Is(plain));
                    continue;
                }
                Unit::Char('*') => Token::Any,
                Unit::Char('?') => Token::One,
                // A `[` that no `]` closes is a plain character, as glob(3) reads it: an
                // escape sequence's `ESC[0m` names no set.
                Unit::Char('[') => match set(&units[i..], &mut literal) {
                    Some((set, used)) => {
                        i += used;
                        wild = true;
                        tokens.push(set);
                        continue;
                    }
                    None => Token::Is(unit),
                },
                _ => Token::Is(unit),
            };
            wild |= token != Token::Is(unit);
            push_unit(&mut literal, unit);
            tokens.push(token);
        }
        Escaped {
            tokens,
            literal: OsString::from_vec(literal),
            wild,
        }
    }

    /// Whether `name` matches, as glob(3) matches a name of a directory it walks: one
    /// starting with a dot only when the pattern's first character is a dot.
    fn matches(&self, name: &OsStr) -> bool {
        let name = units(name);
        if name.first() == Some(&Unit::Char('.'))
            && self.tokens.first() != Some(&Token::Is(Unit::Char('.')))
        {
            return false;
        }
        // The last `*` and the unit of the name it was tried from: on a mismatch it takes
        // one more unit (a `*` before it need never take more).
        let (mut t, mut n, mut star) = (0, 0, None);
        while let Some(&unit) = name.get(n) {
            match self.tokens.get(t) {
                Some(Token::Any) => {
                    star = Some((t, n));
                    t += 1;
                }
                Some(token) if token.takes(unit) => {
                    t += 1;
                    n += 1;
                }
                _ => match star {
                    Some((st, sn)) => {
                        star = Some((st, sn + 1));
                        t = st + 1;
                        n = sn + 1;
                    }
                    None => return false,
                },
            }
        }
        self.tokens[t..].iter().all(|token| *token == Token::Any)
    }
}

/// The set that `rest`, what follows a `[`, starts with and the units it takes up to its
/// `]`, its characters added to `literal` without their backslashes; `None` when no `]`
/// closes it. A `]` first (or after `!`) is a member, a backslash makes the next unit plain.
fn set(rest: &[Unit], literal: &mut Vec<u8>) -> Option<(Token, usize)> {
    let mut text = vec![b'['];
    let not = rest.first() == Some(&Unit::Char('!'));
    let mut i = usize::from(not);
    if not {
        text.push(b'!');
    }
    let mut ranges = Vec::new();
    // The next member, its backslash dropped.
    let member = |i: &mut usize, text: &mut Vec<u8>| {
        let mut unit = *rest.get(*i)?;
        if unit == Unit::Char('\\') && *i + 1 < rest.len() {
            *i += 1;
            unit = rest[*i];
        }
        *i += 1;
        push_unit(text, unit);
        Some(unit)
    };
    loop {
        if rest.get(i) == Some(&Unit::Char(']')) && i > usize::from(not) {
            text.push(b']');
            literal.extend_from_slice(&text);
            return Some((Token::Set { not, ranges }, i + 1));
        }
        let low = member(&mut i, &mut text)?;
        let high = match rest.get(i..i + 2) {
            Some([Unit::Char('-'), end]) if *end != Unit::Char(']') => {
                i += 1;
                text.push(b'-');
                member(&mut i, &mut text)?
            }
            _ => low,
        };
        ranges.push((low, high));
    }
}

/// The paths a wildcard `pattern` matches, part by part as glob(3) walks them (`logs/2026-*/
/// *.log`), each with what `list` said of it when a wildcard matched it last. `list` gives a
/// directory's entries by name (`None`: it cannot be read, so it matches nothing), `dir`
/// whether an entry can hold more. A name starting with a dot matches only a part that
/// starts with one, and a part without wildcards after one that has them only what exists.
fn walk<E>(
    pattern: &Path,
    mut list: impl FnMut(&Path) -> Option<Vec<(OsString, E)>>,
    dir: impl Fn(&E) -> bool,
) -> Vec<(PathBuf, Option<E>)> {
    use std::path::Component;
    let parts: Vec<Component<'_>> = pattern.components().collect();
    let mut found: Vec<(PathBuf, Option<E>)> = vec![(PathBuf::new(), None)];
    for (i, part) in parts.iter().enumerate() {
        let name = Escaped::of(part.as_os_str());
        if !matches!(part, Component::Normal(_)) || !name.wild {
            for (path, entry) in &mut found {
                path.push(&name.literal);
                *entry = None;
            }
            continue;
        }
        let more = i + 1 < parts.len();
        let mut next = Vec::new();
        for (path, entry) in &found {
            // What a wildcard matched last is known: only directories (or links) go on.
            if entry.as_ref().is_some_and(|e| !dir(e)) {
                continue;
            }
            let listed = if path.as_os_str().is_empty() {
                Path::new(".")
            } else {
                path
            };
            let Some(entries) = list(listed) else {
                continue;
            };
            next.extend(
                entries
                    .into_iter()
                    .filter(|(found, _)| found != "." && found != "..")
                    .filter(|(found, _)| name.matches(found))
                    .filter(|(_, e)| !more || dir(e))
                    .map(|(found, e)| (path.join(found), Some(e))),
            );
        }
        found = next;
    }
    found
}

/// The local paths `pattern` names for an upload, as sftp's `put` expands it with glob(3):
/// the matches of its wildcards in sorted order, a name starting with a dot only when the
/// pattern's does (`put *` sends no `.env`), a backslash making a wildcard character plain
/// (`report\[1\].txt`), and a name holding such characters of its own found by that name
/// when it matches nothing else. A pattern with no wildcard is the path, backslashes dropped.
///
/// # Errors
/// [`Error::Local`] when nothing matches or the pattern cannot be read.
pub fn local_glob(pattern: &Path) -> Result<Vec<PathBuf>, Error> {
    let parts: Vec<Escaped> = pattern.iter().map(Escaped::of).collect();
    let literal: PathBuf = parts.iter().map(|p| p.literal.as_os_str()).collect();
    if !parts.iter().any(|p| p.wild) {
        return Ok(vec![literal]);
    }
    let list = |dir: &Path| {
        let entries = std::fs::read_dir(dir).ok()?.flatten().map(|e| {
            // A link to a directory goes on, as glob(3) follows it.
            (e.file_name(), e.path().is_dir())
        });
        Some(entries.collect())
    };
    let mut matches: Vec<PathBuf> = walk(pattern, list, |is_dir| *is_dir)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.symlink_metadata().is_ok())
        .collect();
    matches.sort();
    match matches.is_empty() {
        false => Ok(matches),
        true if literal.symlink_metadata().is_ok() => Ok(vec![literal]),
        true => Err(Error::Local {
            path: pattern.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        }),
    }
}

/// Writes in a row that libssh2 says took nothing before an upload is given up: a guard
/// against spinning, should a call ever return at once with nothing sent.
const MAX_ZERO_WRITES: u32 = 100_000;

/// Whether `cancel` says stop.
fn cancelled(cancel: Option<&AtomicBool>) -> bool {
    cancel.is_some_and(|flag| flag.load(Ordering::Relaxed))
}

/// How long a transfer waits for the socket at a time: a cancel is seen within it.
const SLICE_MS: u16 = 100;

/// How long a cancelled transfer still waits for a silent server to take or answer what was
/// already asked of it (a channel left with requests in flight is of no more use) before it
/// hangs up.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// An SFTP file read or written without blocking, waiting for the socket in slices: a
/// blocking call on a server that stopped answering held a cancel (Ctrl-C) until the
/// session's timeout, which then won over it. After a cancel it waits [`CANCEL_GRACE`] at
/// most, then hangs up, so that closing the file and what follows fail at once. Closed the
/// same way when dropped.
struct Sliced<'a> {
    file: ssh2::File,
    client: &'a Client,
    cancel: Option<&'a AtomicBool>,
}

impl<'a> Sliced<'a> {
    fn new(file: ssh2::File, client: &'a Client, cancel: Option<&'a AtomicBool>) -> Self {
        Sliced {
            file,
            client,
            cancel,
        }
    }

    /// `op` tried again until it no longer would block, within the session's timeout (or
    /// the grace after a cancel).
    fn retry<R>(
        &mut self,
        mut op: impl FnMut(&mut ssh2::File) -> std::io::Result<R>,
    ) -> std::io::Result<R> {
        let session = &self.client.session;
        let started = std::time::Instant::now();
        let mut cancelled_at = None;
        loop {
            let blocking = session.is_blocking();
            session.set_blocking(false);
            let result = op(&mut self.file);
            session.set_blocking(blocking);
            match result {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                done => return done,
            }
            if cancelled(self.cancel) {
                let since = *cancelled_at.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= CANCEL_GRACE {
                    self.client
                        .hang_up("a transfer was cancelled while the server did not answer");
                    return Err(std::io::Error::other("cancelled"));
                }
            } else if !self.client.timeout.is_zero() && started.elapsed() >= self.client.timeout {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            self.client.wait(&[], SLICE_MS);
        }
    }
}

impl Read for Sliced<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.retry(|file| file.read(buf))
    }
}

impl Write for Sliced<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.retry(|file| file.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.retry(Write::flush)
    }
}

impl Drop for Sliced<'_> {
    /// Closes the file as ssh2 would on drop, but in slices: ssh2 closes it blocking, and a
    /// cancelled get waited there for the whole timeout. A close that does not finish hangs
    /// up, so that ssh2's own close fails at once.
    fn drop(&mut self) {
        if !self.client.is_closed()
            && self
                .retry(|file| file.close().map_err(std::io::Error::from))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            self.client.hang_up("the server did not answer in time");
        }
    }
}

/// Uploads everything `source` holds through an SFTP file with a sliding window: libssh2's
/// write returns once the first packet is acknowledged and takes the unacknowledged rest again
/// at the front of the next call, so the buffer passed is refilled before it runs low. With
/// one 1 MiB buffer per call, throughput through a 10 ms round trip fell to 56 MiB/s as each
/// buffer drained; OpenSSH keeps 64 requests in flight and made 86. The window's size follows
/// the link ([`Window`]), within the session's `timeout`.
fn send_window(
    source: &mut dyn Read,
    target: &mut impl Write,
    timeout: std::time::Duration,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), Copy> {
    let mut window = Window::new(timeout, std::time::Instant::now());
    let mut buf = vec![0; MAX_WINDOW];
    let (mut start, mut end, mut eof) = (0, 0, false);
    let (mut sent, mut zeros) = (0u64, 0);
    // How far into the source libssh2 has been handed bytes: it holds what lies past `sent`.
    let mut handed = 0u64;
    // Why the upload stops early. What was handed to libssh2 is still written out first:
    // leaving its requests unacknowledged confuses the SFTP channel, and the next call (the
    // removal of the partial file) waited out the whole timeout.
    let mut stop = None;
    loop {
        if stop.is_none() && cancelled(cancel) {
            stop = Some(Copy::Cancelled);
        }
        // A window that shrank below what libssh2 holds is refilled only once the
        // acknowledgements bring that under its half: every call passes all libssh2 holds
        // (`start..end` never loses a byte it was given), which its write takes to be the
        // bytes it already made into requests, and only the rest is new.
        let limit = window.limit();
        if stop.is_none() && !eof && end - start <= limit / 2 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            while end < limit {
                match source.read(&mut buf[end..limit]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => end += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        stop = Some(Copy::Local(e));
                        break;
                    }
                }
            }
        }
        if start == end {
            return stop.map_or(Ok(()), Err);
        }
        let passed = sent + (end - start) as u64;
        let fresh = usize::try_from(passed.saturating_sub(handed)).unwrap_or(usize::MAX);
        handed = handed.max(passed);
        let called = std::time::Instant::now();
        let written = target.write(&buf[start..end]);
        let now = std::time::Instant::now();
        if let Ok(n) = written {
            window.called(fresh, now - called, sent + n as u64, now);
        }
        match written {
            // libssh2 sent what the channel's window took and nothing is acknowledged yet (a
            // server with a small window, as Dropbear's 24 KiB): the next call goes on with
            // it. Each such call waits for the socket; a server that never takes more ends it
            // with the session's timeout.
            Ok(0) => {
                zeros += 1;
                if zeros > MAX_ZERO_WRITES {
                    return Err(Copy::Remote(std::io::ErrorKind::WriteZero.into()));
                }
            }
            Ok(n) => {
                zeros = 0;
                start += n;
                sent += n as u64;
                progress(sent);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A cancel wins over the timeout it may have run into.
            Err(_) if cancelled(cancel) => return Err(Copy::Cancelled),
            Err(e) => return Err(Copy::Remote(e)),
        }
    }
}

/// The least one read is given: four times it is over libssh2's 30,000-byte request, so that
/// a smaller file is asked for in two requests and its end (the second one's answer) comes in
/// the same round trip as its bytes, where a read for the end cost one more.
const MIN_READ: usize = 8 << 10;

/// How much of the buffer the next read is given, once `received` of `expected` bytes came:
/// libssh2 asks the server ahead for four times the buffer, so a whole [`CHUNK`] for a 2 KiB
/// file sent some 280 read requests, each answered, and `get -r` of small files took 5 ms a
/// file (OpenSSH's sftp 0.65 ms). What is left of the file, at least [`MIN_READ`]; a file
/// that grew past what its size said is read in whole chunks again.
fn read_size(expected: u64, received: u64) -> usize {
    expected.checked_sub(received).map_or(CHUNK, |left| {
        usize::try_from(left).map_or(CHUNK, |left| left.clamp(MIN_READ, CHUNK))
    })
}

/// Downloads everything `source` holds (`expected` bytes, as its size said) into `target`,
/// writing on a second thread: on loopback the client is CPU-bound (a profile of a 256 MiB
/// get: 47 % in libssh2's chacha20-poly1305, 31 % in the kernel copying into the page cache),
/// and the two now overlap. A file smaller than one [`CHUNK`] is one buffer, with nothing to
/// overlap: it is written on this thread, as a thread a file cost `get -r` of small files
/// some 0.2 ms each. Returns the target once every byte is written, and how many there were.
fn receive_overlapped<W: Write + Send>(
    source: &mut impl Read,
    mut target: W,
    expected: u64,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(u64),
) -> Result<(W, u64), Copy> {
    if expected < CHUNK as u64 {
        let spare = std::cell::Cell::new(Vec::new());
        let deliver = |buf: Vec<u8>, len: usize| {
            target.write_all(&buf[..len]).map_err(Copy::Local)?;
            spare.set(buf);
            Ok(true)
        };
        let received = receive(source, expected, cancel, progress, || spare.take(), deliver)?;
        return Ok((target, received));
    }
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(4);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let writer = std::thread::Builder::new()
            .spawn_scoped(scope, move || {
                for (buf, len) in full_rx {
                    target.write_all(&buf[..len])?;
                    // The reader may be gone after an error of its own; the buffer is then
                    // freed.
                    let _ = empty_tx.send(buf);
                }
                Ok(target)
            })
            .map_err(Copy::Local)?;
        // A send fails only when the writer stopped on an error, which join reports.
        let deliver = |buf, len| Ok(full_tx.send((buf, len)).is_ok());
        let spare = || empty_rx.try_recv().unwrap_or_default();
        let read = receive(source, expected, cancel, progress, spare, deliver);
        drop(full_tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked")));
        let received = read?;
        Ok((written.map_err(Copy::Local)?, received))
    })
}

/// Reads `source` to its end into buffers from `spare` (grown as needed), each handed with
/// the length read to `deliver`, which says whether to go on; returns the bytes read. A file
/// that grew past `expected` is read to its new end, as OpenSSH's sftp reads it.
fn receive(
    source: &mut impl Read,
    expected: u64,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(u64),
    mut spare: impl FnMut() -> Vec<u8>,
    mut deliver: impl FnMut(Vec<u8>, usize) -> Result<bool, Copy>,
) -> Result<u64, Copy> {
    let mut received = 0u64;
    loop {
        if cancelled(cancel) {
            return Err(Copy::Cancelled);
        }
        // The whole buffer while more than it is left: libssh2 reads ahead four times what
        // one call is given, so a partly filled buffer would shrink the pipeline.
        let wanted = read_size(expected, received);
        let mut buf = spare();
        if buf.len() < wanted {
            buf.resize(wanted, 0);
        }
        let len = loop {
            match source.read(&mut buf[..wanted]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // A cancel wins over the timeout it may have run into.
                Err(_) if cancelled(cancel) => return Err(Copy::Cancelled),
                other => break other.map_err(Copy::Remote)?,
            }
        };
        if len == 0 || !deliver(buf, len)? {
            return Ok(received);
        }
        received += len as u64;
        progress(received);
    }
}

/// One entry of a remote directory listing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Entry {
    /// The file name, its bytes as the server sent them (not always UTF-8).
    #[serde(serialize_with = "name_bytes")]
    pub name: OsString,
    /// Size in bytes.
    pub size: u64,
    /// Permission and type bits (as `st_mode`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// The owner's user id, when the server says.
    pub uid: Option<u32>,
    /// The group id, when the server says.
    pub gid: Option<u32>,
}

impl Entry {
    fn new(name: OsString, stat: &FileStat) -> Entry {
        Entry {
            name,
            size: stat.size.unwrap_or(0),
            mode: stat.perm.unwrap_or(0),
            mtime: stat.mtime.unwrap_or(0),
            is_dir: stat.is_dir(),
            uid: stat.uid,
            gid: stat.gid,
        }
    }

    /// Whether it is a symbolic link (as listed: a listing does not follow links).
    #[must_use]
    pub fn is_link(&self) -> bool {
        self.mode & 0o170_000 == 0o120_000
    }

    /// `ls -l`-style permissions, e.g. `drwxr-xr-x`, `lrwxrwxrwx`.
    #[must_use]
    pub fn permissions(&self) -> String {
        let mut text = String::with_capacity(10);
        text.push(if self.is_dir {
            'd'
        } else if self.is_link() {
            'l'
        } else {
            '-'
        });
        for shift in [6, 3, 0] {
            let bits = (self.mode >> shift) & 7;
            text.push(if bits & 4 != 0 { 'r' } else { '-' });
            text.push(if bits & 2 != 0 { 'w' } else { '-' });
            text.push(if bits & 1 != 0 { 'x' } else { '-' });
        }
        text
    }
}

/// An entry's name as a string when it is UTF-8, otherwise as its bytes (a list of numbers
/// in JSON), never with U+FFFD put in place of bytes that would name another file.
fn name_bytes<S: serde::Serializer>(name: &OsStr, serializer: S) -> Result<S::Ok, S::Error> {
    match name.to_str() {
        Some(text) => serializer.serialize_str(text),
        None => serializer.serialize_bytes(name.as_bytes()),
    }
}

/// A setstat that changes nothing: each call fills in what it changes.
const UNCHANGED: FileStat = FileStat {
    size: None,
    uid: None,
    gid: None,
    perm: None,
    atime: None,
    mtime: None,
};

/// What `sftp put -p` keeps of a local file: its mode and times. SFTP carries a time in 32
/// bits: one past 2106 is sent as the last it holds, as one before 1970 is sent as 1970 (a
/// file of 2107 arrived dated 1970-11-24, as OpenSSH's does).
fn kept(meta: &std::fs::Metadata) -> FileStat {
    use std::os::unix::fs::MetadataExt as _;
    let time = |t: i64| Some(t.clamp(0, i64::from(u32::MAX)) as u64);
    FileStat {
        perm: Some(meta.mode() & 0o777),
        atime: time(meta.atime()),
        mtime: time(meta.mtime()),
        ..UNCHANGED
    }
}

/// Options of [`Client::put`] and [`Client::get`].
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Transfer {
    /// Copy directories with their contents.
    pub recursive: bool,
    /// Keep the mode and modification time.
    pub preserve: bool,
    /// Flush each file to disk before it takes its final name, as `sftp -f` (uploads need
    /// the server's `fsync@openssh.com`: one without it gets them unflushed, with a warning,
    /// as sftp sends them). Off by default, as in OpenSSH: the temporary name
    /// already keeps an interrupted transfer from leaving a truncated file, and only a
    /// machine crash soon after a transfer can lose it.
    pub fsync: bool,
    /// Stop when this turns true (as from a SIGINT handler): the transfer ends with
    /// [`Error::Cancelled`] and leaves no partial file, as on any other failure (but with
    /// `resume`).
    pub cancel: Option<&'static AtomicBool>,
    /// Go on from what an interrupted transfer left (a download's `NAME.part`, an upload's
    /// [`upload_temp_name`]; a long `NAME` cut to leave room) and leave it there if this one fails too, as sftp's `get -a`
    /// and `put -a`. A download's part is checked against the file by its length and its
    /// last 64 KiB, and `NAME` itself also by its time (one last written before the remote
    /// file changed is of an older version): one of another version is fetched whole.
    pub resume: bool,
    /// Holds the local file a download writes under a temporary name while it is written,
    /// so that a process that must exit at once (a second Ctrl-C) can remove it: nothing
    /// else would ever find it.
    pub partial: Option<&'static std::sync::Mutex<Option<PathBuf>>>,
}

impl Transfer {
    /// Recursive or not, preserving or not, without fsync.
    #[must_use]
    pub fn new(recursive: bool, preserve: bool) -> Self {
        Transfer {
            recursive,
            preserve,
            fsync: false,
            cancel: None,
            resume: false,
            partial: None,
        }
    }

    /// The same with [`resume`](Transfer::resume) on or off.
    #[must_use]
    pub fn with_resume(self, resume: bool) -> Self {
        Transfer { resume, ..self }
    }

    /// The same, stopped when `cancel` turns true.
    #[must_use]
    pub fn with_cancel(self, cancel: &'static AtomicBool) -> Self {
        Transfer {
            cancel: Some(cancel),
            ..self
        }
    }

    /// The same, noting a download's temporary file in `slot` (see
    /// [`partial`](Transfer::partial)).
    #[must_use]
    pub fn with_partial(self, slot: &'static std::sync::Mutex<Option<PathBuf>>) -> Self {
        Transfer {
            partial: Some(slot),
            ..self
        }
    }

    /// The same with [`fsync`](Transfer::fsync) on or off.
    #[must_use]
    pub fn with_fsync(self, fsync: bool) -> Self {
        Transfer { fsync, ..self }
    }
}

/// A write the server refused with SFTP v3's bare "failure", said with its likely cause: a
/// full disk, which the upload's temporary copy reaches sooner (a file replaced needs room
/// for both copies until the rename); "failure" alone sent the user looking elsewhere.
fn refused_write(error: Error) -> Error {
    match error {
        Error::Sftp { host, path, reason } if reason == "failure" => Error::Sftp {
            host,
            path,
            reason: "the server could not write (its disk full? the upload goes to a temporary \
                     copy first, so replacing a file needs room for both)"
                .into(),
        },
        other => other,
    }
}

/// The temporary name a resumable upload ([`Transfer::resume`]) is written to before it is
/// renamed into place, `.NAME.netkit-upload` (a long `NAME` cut to fit); any other
/// upload adds a random part, so that two uploads of one name do not share one.
#[must_use]
pub fn upload_temp_name(target: &Path) -> PathBuf {
    beside(target, ".", ".netkit-upload")
}

/// Where a replace without `posix-rename@openssh.com` moves the file it replaces for a moment
/// (`.NAME.netkit-aside`): named after it, so that what a replace killed half-way leaves is
/// found by the next put of the name (a random name left the bytes where nobody looked).
fn aside_name(target: &Path) -> PathBuf {
    beside(target, ".", ".netkit-aside")
}

/// SFTP v3's own rename, which OpenSSH's server refuses over an existing file. A rename with
/// [`RenameFlags::OVERWRITE`] (ssh2's default) is `posix-rename@openssh.com` where the server
/// offers it (our libssh2 patch, vendor/libssh2-sys/NETKIT.md): the steps of a replace without
/// it must not take that path, which is the one that failed.
const NO_OVERWRITE: Option<RenameFlags> = Some(RenameFlags::NATIVE);

/// `target`'s name between `prefix` and `suffix`, in its directory. A name too long for them
/// (with room for [`unguessable`]'s suffix) within the 255 bytes a file name may take is cut,
/// and a digest of the whole name added, so that two long names sharing a beginning do not
/// share a temporary file: a legal 241-byte name could not be uploaded.
fn beside(target: &Path, prefix: &str, suffix: &str) -> PathBuf {
    const MAX_NAME: usize = 255;
    const ROOM: usize = MAX_NAME - ".0123456789abcdef".len();
    let name = target.file_name().map_or(&[][..], |n| n.as_bytes());
    let mut out = prefix.as_bytes().to_vec();
    if prefix.len() + name.len() + suffix.len() <= ROOM {
        out.extend_from_slice(name);
    } else {
        let tag = hex(&ring::digest::digest(&ring::digest::SHA256, name).as_ref()[..4]);
        let mut end = ROOM - prefix.len() - suffix.len() - tag.len() - 1;
        // Not inside a UTF-8 character: a name cut there would not be text any more.
        while end > 0 && name[end] & 0xC0 == 0x80 {
            end -= 1;
        }
        out.extend_from_slice(&name[..end]);
        out.extend_from_slice(format!("~{tag}").as_bytes());
    }
    out.extend_from_slice(suffix.as_bytes());
    target.with_file_name(std::ffi::OsString::from_vec(out))
}

/// `temp` with a random suffix (`.NAME.netkit-upload.3f9a...`); `None` without randomness.
fn unguessable(temp: &Path) -> Option<PathBuf> {
    let mut random = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).ok()?;
    let mut name = temp.as_os_str().to_owned();
    name.push(format!(".{}", hex(&random)));
    Some(PathBuf::from(name))
}

/// [`unguessable`] for the transfer of `path`, or the error that names it.
fn unguessable_for(temp: &Path, path: &Path) -> Result<PathBuf, Error> {
    unguessable(temp).ok_or_else(|| Error::Local {
        path: path.to_owned(),
        source: std::io::Error::other("no randomness for a temporary name"),
    })
}

/// `bytes` in lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One file's bytes on their way to a remote temporary name.
struct Outgoing<'a> {
    source: &'a mut dyn Read,
    /// Where the bytes come from, for errors: `None` for a caller's reader.
    local: Option<&'a Path>,
    mode: i32,
    /// The target is a file already there (found by `written_at`).
    replaces: bool,
    /// What an interrupted upload already sent, and the whole length (0: not known).
    done: u64,
    total: u64,
    /// Mode and times to set once written (`-p`).
    kept: Option<FileStat>,
}

impl Client {
    /// `host:path`, to name a remote file in a message.
    fn remote(&self, path: &Path) -> String {
        crate::error::host_path(&self.host, path)
    }

    /// The session's SFTP channel, started at the first call and kept for the next ones: a
    /// channel per call cost a round trip and an sftp-server process each (a batch of 100 puts
    /// started 100), and Dropbear's sftp-server now and then never answered a start.
    ///
    /// It starts plainly, not as [`Client::open`] starts an exec: an SFTP start resumed after
    /// a non-blocking first try never reached Dropbear's sftp-server (every put timed out).
    fn sftp(&self) -> Result<Arc<Sftp>, Error> {
        self.still_open()?;
        if let Some(sftp) = self.sftp.borrow().as_ref() {
            return Ok(Arc::clone(sftp));
        }
        let sftp = Arc::new(self.start_sftp()?);
        *self.sftp.borrow_mut() = Some(Arc::clone(&sftp));
        Ok(sftp)
    }

    /// Lets the next call start a new SFTP channel: after a failure that was not the server's
    /// plain answer to a request (a closed channel, a cancelled transfer's requests still in
    /// flight), the kept one may be of no more use.
    pub(crate) fn forget_sftp(&self) {
        self.sftp.borrow_mut().take();
    }

    fn start_sftp(&self) -> Result<Sftp, Error> {
        // LIBSSH2_ERROR_CHANNEL_FAILURE: the channel was refused. On a server taking one
        // channel at a time, right after a command the closed channel's place is not free
        // yet (sshd frees it once its loop comes round): asked again a moment later, it is.
        // Only a refused open: after a refused subsystem libssh2 only closes the channel on
        // the next call, which then fails with "no other error listed".
        let refused = ssh2::ErrorCode::Session(-21);
        let started = match self.session.sftp() {
            Err(e) if e.code() == refused && e.message() == "Unable to startup channel" => {
                std::thread::sleep(std::time::Duration::from_millis(100));
                self.session.sftp()
            }
            other => other,
        };
        started.map_err(|e| {
            // A connection the server closed fails every channel alike: said once, as closed.
            if let Err(closed) = self.still_open() {
                return closed;
            }
            self.given_up(match Error::ssh(&self.host, &e) {
                // libssh2's words when the server refused the channel itself (its
                // MaxSessions, a session it could not set up), as ssh's "channel 0: open
                // failed": nothing the account's shell did.
                Error::Ssh { host, .. } if e.message() == "Unable to startup channel" => {
                    Error::Ssh {
                        host,
                        reason: "the server refused a channel for SFTP (its MaxSessions, or a \
                                 session it could not set up, such as a broken \
                                 ChrootDirectory?)"
                            .to_owned(),
                    }
                }
                // The channel opened, the sftp subsystem was refused (no `Subsystem sftp`
                // line), as ssh -s says "subsystem request failed".
                Error::Ssh { host, .. } if e.message() == "Unable to request SFTP subsystem" => {
                    Error::Ssh {
                        host,
                        reason: "the server refused the SFTP subsystem: is SFTP enabled on it \
                                 (sshd's Subsystem sftp) and for this account?"
                            .to_owned(),
                    }
                }
                // libssh2 says "no other error listed", or a timeout that was none, when
                // what came back was no SFTP: a shell that prints at login (OpenSSH's sftp
                // warns of it), or a forced command.
                Error::Ssh { host, reason } if !reason.starts_with("connection closed") => {
                    Error::Ssh {
                        host,
                        reason: format!(
                            "the SFTP subsystem did not start ({reason}): is SFTP enabled for \
                             this account, and does its shell print nothing for a command (a \
                             .bashrc that prints breaks SFTP)?"
                        ),
                    }
                }
                other => other,
            })
        })
    }

    /// The entries of the remote directory `dir`, without those whose name is not a plain
    /// name in it (`../x`, `/etc/x`, `sub/x`), skipped with a warning as OpenSSH's sftp skips
    /// a "suspect path": a hostile server could have them read from outside the tree asked
    /// for, or one listed file saved over another of the same last name.
    fn read_dir(&self, sftp: &Sftp, dir: &Path) -> Result<Vec<(PathBuf, FileStat)>, Error> {
        let mut entries = sftp.readdir(dir).map_err(|e| self.sftp_error(dir, &e))?;
        entries.retain(|(path, _)| {
            let plain = listed_in(dir, path);
            if !plain {
                skipped(self.remote(path), "a suspect name sent by the server");
            }
            plain
        });
        Ok(entries)
    }

    fn local(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
        move |source| Error::Local {
            path: path.to_owned(),
            source,
        }
    }

    /// Uploads `local` to `remote` in constant memory. The bytes go to a temporary name
    /// renamed over `remote` at the end, so an interrupted upload never leaves a truncated
    /// `remote`. `progress` gets the bytes sent so far and the total.
    ///
    /// # Errors
    /// [`Error::Local`], [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`].
    pub fn put(
        &self,
        local: &Path,
        remote: &Path,
        options: Transfer,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), Error> {
        let sftp = self.sftp()?;
        let mut tally = Tally::default();
        self.put_with(&sftp, local, remote, options, progress, &mut tally)?;
        failed_in(&self.host, remote, &tally)
    }

    /// Uploads `local`; `tally` counts the files of a directory that could not be, or changed
    /// while sent, told and gone past.
    fn put_with(
        &self,
        sftp: &Sftp,
        local: &Path,
        remote: &Path,
        options: Transfer,
        progress: &mut dyn FnMut(u64, u64),
        tally: &mut Tally,
    ) -> Result<(), Error> {
        let meta = std::fs::metadata(local).map_err(Self::local(local))?;
        if meta.is_dir() {
            if !options.recursive {
                return Err(Error::Local {
                    path: local.to_owned(),
                    source: std::io::Error::other("is a directory (use -r)"),
                });
            }
            if sftp.stat(remote).is_err() {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = meta.permissions().mode() & 0o777 | 0o700;
                sftp.mkdir(remote, mode as i32)
                    .map_err(|e| self.sftp_error(remote, &e))?;
            }
            let mut entries: Vec<_> = std::fs::read_dir(local)
                .map_err(Self::local(local))?
                .filter_map(Result::ok)
                .collect();
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for entry in entries {
                let path = entry.path();
                let link = entry.file_type().is_ok_and(|t| t.is_symlink());
                match std::fs::metadata(&path) {
                    Ok(meta) if link && meta.is_dir() => skipped(path.display(), LINKED_DIR),
                    Ok(meta) if meta.is_dir() || meta.is_file() => {
                        let target = remote.join(entry.file_name());
                        let put = self.put_with(sftp, &path, &target, options, progress, tally);
                        go_past(put, tally)?;
                    }
                    Ok(_) => skipped(path.display(), "not a regular file"),
                    Err(e) if link => {
                        skipped(path.display(), &format!("a link that leads nowhere ({e})"))
                    }
                    // As sftp, whose lstat failing fails the transfer: the file is not sent
                    // (a name too long, a directory we may not enter), exit 0 said otherwise.
                    Err(source) => go_past(Err(Error::Local { path, source }), tally)?,
                }
            }
            if options.preserve {
                // After its files, whose writing moved its time, as sftp -p sets it.
                sftp.setstat(remote, kept(&meta))
                    .map_err(|e| self.sftp_error(remote, &e))?;
            }
            return Ok(());
        }
        // As sftp: opening a FIFO waited for a writer that might never come, past SIGTERM.
        if !meta.is_file() {
            return Err(Error::Local {
                path: local.to_owned(),
                source: std::io::Error::other("not a regular file (put - sends a stream)"),
            });
        }
        use std::os::unix::fs::PermissionsExt as _;
        let (remote, replaced_mode) = self.written_at(sftp, remote);
        let remote = &remote;
        let total = meta.len();
        let mut source = File::open(local).map_err(Self::local(local))?;
        // What an interrupted upload left under the temporary name, when resuming; one
        // longer than the file is from another file: start over. So is another user's: in
        // a shared directory anyone can put bytes there for us to finish (the upload would
        // start with them, and stay theirs to change).
        let temp = upload_temp_name(remote);
        // Looked for only when resuming: a round trip a file otherwise.
        let left = options.resume.then(|| sftp.lstat(&temp));
        let done = match left {
            Some(Ok(stat)) if stat.is_file() => {
                let why_not = match (stat.size, stat.uid) {
                    (Some(size), _) if size > total => Some("longer than the file"),
                    (_, None) => Some("the server does not say whose it is"),
                    (_, Some(uid)) => match Self::our_uid(sftp, &temp) {
                        None => Some("cannot tell whose it is (no file can be made beside it)"),
                        Some(ours) if ours != uid => Some("another user's"),
                        Some(_) => None,
                    },
                };
                match why_not {
                    None => stat.size.unwrap_or(0),
                    Some(why) => {
                        log::warn!("{}: {why}: not resumed, starting over", self.remote(&temp));
                        0
                    }
                }
            }
            // Nothing of ours to go on from, and a longer file where the upload goes: not
            // what an interrupted upload of this one left, and sftp's reput refuses it
            // rather than replace it (we replaced it, saying nothing).
            Some(Err(_)) => match sftp.stat(remote) {
                Ok(there) if there.is_file() && there.size.is_some_and(|size| size > total) => {
                    return Err(Error::Sftp {
                        host: self.host.clone(),
                        path: remote.to_owned(),
                        reason: format!(
                            "cannot resume: it is larger than {} (put without resuming \
                             replaces it)",
                            local.display()
                        ),
                    });
                }
                _ => 0,
            },
            _ => 0,
        };
        if done > 0 {
            use std::io::Seek as _;
            source
                .seek(std::io::SeekFrom::Start(done))
                .map_err(Self::local(local))?;
        }
        // As sftp and scp: a new file takes the local one's permissions (a 0600 key stays
        // private, a script runnable), one replaced keeps its own. Setuid, setgid and sticky
        // bits are never carried, either way, as sftp and scp drop them: a get -p as root
        // made a setuid-root file of whatever the server offered.
        let mode = if options.preserve {
            meta.permissions().mode() & 0o777
        } else {
            replaced_mode.unwrap_or(meta.permissions().mode() & 0o777)
        };
        let outgoing = Outgoing {
            source: &mut source,
            local: Some(local),
            mode: mode as i32,
            replaces: replaced_mode.is_some(),
            done,
            total,
            kept: options.preserve.then(|| kept(&meta)),
        };
        self.send(sftp, outgoing, remote, options, progress)
    }

    /// The remote user id files we create get, found by creating one beside `near` (SFTP
    /// has no call that tells it); `None` when that cannot be done.
    fn our_uid(sftp: &Sftp, near: &Path) -> Option<u32> {
        let probe = unguessable(near)?;
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUSIVE;
        let mut file = sftp.open_mode(&probe, flags, 0o600, OpenType::File).ok()?;
        let uid = file.stat().ok().and_then(|stat| stat.uid);
        drop(file);
        let _ = sftp.unlink(&probe);
        uid
    }

    /// Where writing `remote` lands, and the permissions of the file there, which an upload
    /// replacing it keeps: a symbolic link is written through to the file it names, as sftp
    /// writes (renamed over, the link would become a file and the linked one stay as it
    /// was).
    fn written_at(&self, sftp: &Sftp, remote: &Path) -> (PathBuf, Option<u32>) {
        let mode = |stat: &FileStat| stat.perm.filter(|_| stat.is_file()).map(|p| p & 0o777);
        match sftp.lstat(remote) {
            Ok(stat) if stat.file_type().is_symlink() => match sftp.realpath(remote) {
                Ok(real) => {
                    let kept = sftp.stat(&real).ok().and_then(|s| mode(&s));
                    (real, kept)
                }
                Err(_) => (remote.to_owned(), None),
            },
            Ok(stat) => (remote.to_owned(), mode(&stat)),
            Err(_) => (remote.to_owned(), None),
        }
    }

    /// Uploads everything `source` yields to `remote` (as paramiko's `putfo`), through a
    /// temporary name renamed into place as [`put`](Client::put) does, with mode 0644 (or
    /// the replaced file's).
    /// `progress` gets the bytes sent so far and 0 for the total, which is not known. Of
    /// `options`, `fsync` and `cancel` apply; there is nothing to resume from.
    ///
    /// # Errors
    /// [`Error::Stream`] when `source` fails, [`Error::NoSuchFile`],
    /// [`Error::PermissionDenied`], [`Error::Sftp`].
    pub fn put_from(
        &self,
        source: &mut dyn Read,
        remote: &Path,
        options: Transfer,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), Error> {
        let sftp = self.sftp()?;
        let (remote, replaced_mode) = self.written_at(&sftp, remote);
        let remote = &remote;
        let outgoing = Outgoing {
            source,
            local: None,
            mode: replaced_mode.unwrap_or(0o644) as i32,
            replaces: replaced_mode.is_some(),
            done: 0,
            total: 0,
            kept: None,
        };
        let options = options.with_resume(false);
        self.send(&sftp, outgoing, remote, options, progress)
    }

    /// Writes `file` to `remote`'s temporary name, from `file.done` on, and renames it into
    /// place.
    fn send(
        &self,
        sftp: &Sftp,
        file: Outgoing<'_>,
        remote: &Path,
        options: Transfer,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), Error> {
        let (done, total) = (file.done, file.total);
        // The name a resume finds only when resuming (`put -a`); else one of this upload's
        // own: two uploads of one name shared the fixed one, each removed the other's, and
        // the file was lost (one of them exiting 0).
        let temp = if options.resume {
            upload_temp_name(remote)
        } else {
            unguessable_for(&upload_temp_name(remote), remote)?
        };
        let sftp_err = |e: ssh2::Error| self.sftp_error(remote, &e);
        // A file we may not write is refused, as sftp refuses it (it opens the file itself;
        // renaming over it needs only the directory's permission).
        if file.replaces {
            sftp.open_mode(remote, OpenFlags::WRITE, 0, OpenType::File)
                .map_err(sftp_err)?;
        }
        // The temporary name is predictable: what is there (another user's link in a shared
        // directory, which we would write through) is removed, and ours made new, exclusively.
        let flags = if done > 0 {
            OpenFlags::WRITE
        } else {
            // Only the fixed name of a resumable upload can be there: an unguessable one is
            // made exclusively, and one taken already is met below (a round trip a file).
            if options.resume {
                let _ = sftp.unlink(&temp);
            }
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUSIVE | OpenFlags::TRUNCATE
        };
        let (temp, mut target) = match sftp.open_mode(&temp, flags, file.mode, OpenType::File) {
            Ok(target) => (temp, target),
            // Another user's file holds the name in a shared (sticky) directory, where we
            // cannot remove it: a name of our own beside it, unguessable (sftp would write
            // in place; one planted file stopped every upload of that name).
            Err(e) if done == 0 && sftp.lstat(&temp).is_ok() => {
                let ours = unguessable(&temp).ok_or_else(|| sftp_err(e))?;
                let target = sftp
                    .open_mode(&ours, flags, file.mode, OpenType::File)
                    .map_err(sftp_err)?;
                (ours, target)
            }
            // A directory we may not write, holding a file we may: written in place, as sftp
            // writes every upload (a deploy user's file in root's /etc/app could not be
            // updated, and the error named the file, which is writable).
            Err(e) if done == 0 && file.replaces && e.code() == ssh2::ErrorCode::SFTP(3) => {
                log::warn!(
                    "{}: no temporary file can be made beside it: written in place (an \
                     interrupted upload leaves it cut short)",
                    self.remote(remote)
                );
                let target = sftp
                    .open_mode(
                        remote,
                        OpenFlags::WRITE | OpenFlags::TRUNCATE,
                        file.mode,
                        OpenType::File,
                    )
                    .map_err(sftp_err)?;
                (remote.to_owned(), target)
            }
            Err(e) => return Err(sftp_err(e)),
        };
        let in_place = temp == remote;
        if done > 0 {
            log::debug!("{}: resuming at {done} bytes", remote.display());
            self.resume_at(&mut target, remote, done)?;
        }
        let mut target = Sliced::new(target, self, options.cancel);
        progress(done, total);
        let mut sent_here = 0;
        let written = (|| {
            send_window(
                file.source,
                &mut target,
                self.timeout,
                options.cancel,
                &mut |sent| {
                    sent_here = sent;
                    progress(done + sent, total);
                },
            )
            .map_err(|e| refused_write(self.copy_failed(e, remote, file.local, remote)))?;
            // The server's umask took bits from the mode it was made with: a replaced file
            // keeps its own (a group-writable 0664 in a shared deploy directory became
            // 0644, as scp never does).
            let kept = file
                .kept
                .or((file.replaces && !in_place).then_some(FileStat {
                    perm: Some(file.mode as u32),
                    ..UNCHANGED
                }));
            if let Some(stat) = kept {
                target.file.setstat(stat).map_err(sftp_err)?;
            }
            if options.fsync {
                match target.file.fsync() {
                    // As sftp's -f, which sends it and reads no answer: a server without
                    // fsync@openssh.com (rclone, paramiko), or one refusing it, gets the file
                    // unflushed, where the whole upload was thrown away.
                    Err(e)
                        if [ssh2::ErrorCode::SFTP(8), ssh2::ErrorCode::SFTP(3)]
                            .contains(&e.code()) =>
                    {
                        if !self.fsync_refused.replace(true) {
                            log::warn!(
                                "{}: the server does not flush files to its disk on request                                  ({e}); they are written without",
                                self.host
                            );
                        }
                    }
                    flushed => flushed.map_err(sftp_err)?,
                }
            }
            Ok(())
        })();
        drop(target);
        if let Err(error) = written {
            // Without resume (or under a name of our own, which no resume finds) a partial
            // file would only be litter. A server that stopped answering was hung up on
            // (the removal would only wait out the timeout again): the error names what is
            // left there, a hidden file no one would find otherwise.
            let resumable = options.resume && temp == upload_temp_name(remote);
            if resumable {
                return Err(kept_in(error, || {
                    format!(
                        "the part sent is kept as {}: put -a goes on from it",
                        temp.display()
                    )
                }));
            }
            if !in_place && !self.is_closed() && sftp.unlink(&temp).is_ok() {
                return Err(error);
            }
            let left = if in_place {
                format!("{} is left cut short", remote.display())
            } else {
                format!("the part sent is left on the server as {}", temp.display())
            };
            return Err(match error {
                Error::Timeout { host, what } => Error::Timeout {
                    host,
                    what: format!("{what}; {left}"),
                },
                Error::Cancelled { path, .. } if self.is_closed() => Error::Cancelled {
                    path,
                    left: Some(left),
                },
                other => kept_in(other, || left),
            });
        }
        // Told once the file is in place, as read: OpenSSH's sftp sends a local file to its
        // end and says nothing of a change, tar and rsync warn.
        let unchanged = || match file.local {
            Some(local) => same_size(None, local, Some(total), done + sent_here, || {
                std::fs::metadata(local).ok().map(|now| now.len())
            }),
            None => Ok(()),
        };
        if in_place {
            return unchanged();
        }
        // `put -a`'s part has a name every upload of NAME shares: it is claimed first, under
        // a name of our own, so that of two at once only one replaces NAME (each removed the
        // file the other had just put, and NAME was lost while one exited 0).
        let temp = if temp == upload_temp_name(remote) {
            let raced = |what: &str| Error::Sftp {
                host: self.host.clone(),
                path: remote.to_owned(),
                reason: format!("another upload of it {what}; nothing replaced"),
            };
            let claimed = unguessable_for(&temp, remote)?;
            sftp.rename(&temp, &claimed, None)
                .map_err(|_| raced("took the part this one wrote"))?;
            // Its size is what this upload wrote (a file that grew while sent included).
            if sftp.stat(&claimed).ok().and_then(|s| s.size) != Some(done + sent_here) {
                let _ = sftp.unlink(&claimed);
                return Err(raced("wrote into the same part"));
            }
            claimed
        } else {
            temp
        };
        self.recover_aside(sftp, remote);
        // One atomic rename where the server offers posix-rename (OpenSSH does); else the
        // target is missing for a moment, never truncated. Another upload of the name
        // may put its file there in between: the rename is tried again over it (the last
        // one wins, as with sftp), where giving up lost both.
        let renamed = (|| {
            let mut tries = 0;
            loop {
                let renamed = if let Ok(there) = sftp.lstat(remote) {
                    // A directory there (or one a link leads to) is not replaced by a file:
                    // it was moved aside, files and all, and the put said it went.
                    if there.is_dir() || sftp.stat(remote).is_ok_and(|s| s.is_dir()) {
                        return Err((
                            remote.to_owned(),
                            ssh2::Error::new(ssh2::ErrorCode::SFTP(4), "a directory is in the way"),
                        ));
                    }
                    sftp.rename(&temp, remote, None)
                        .or_else(|_| self.moved_over(sftp, &temp, remote))
                } else {
                    sftp.rename(&temp, remote, None)
                        .map_err(|e| (temp.clone(), e))
                };
                match renamed {
                    Err(_) if tries < 5 && sftp.lstat(&temp).is_ok() => tries += 1,
                    renamed => return renamed,
                }
            }
        })();
        renamed.map_err(|(_, e)| {
            // The whole file under its temporary name would be left as litter.
            let _ = sftp.unlink(&temp);
            sftp_err(e)
        })?;
        // What an interrupted upload left for `put -a` is superseded by the whole file: a
        // later `put -a` would have gone on from it over the file just put.
        if !options.resume {
            let _ = sftp.unlink(&upload_temp_name(remote));
        }
        unchanged()
    }

    /// `error` on `path` in our terms.
    fn sftp_error(&self, path: &Path, error: &ssh2::Error) -> Error {
        let code = error.code();
        let error = Error::sftp(&self.host, path, error);
        match error {
            Error::Sftp { host, path, .. }
                if !matches!(code, ssh2::ErrorCode::SFTP(_)) && self.gone() =>
            {
                // Every later call fails as closed (an sftp session ends here, as sftp's on
                // "Connection closed"), not in libssh2's words for what it tried.
                self.hang_up("the server hung up");
                self.forget_sftp();
                Error::ConnectionLost {
                    host,
                    path,
                    kept: None,
                }
            }
            Error::Sftp { host, path, reason } if !matches!(code, ssh2::ErrorCode::SFTP(_)) => {
                // The channel, not the file, failed (its server gone: libssh2 says "Timeout
                // waiting for status message" then, at once).
                self.forget_sftp();
                Error::Sftp {
                    host,
                    path,
                    reason: format!(
                        "{reason}; the SFTP channel was given up, the next call starts another"
                    ),
                }
            }
            other => self.given_up(other),
        }
    }

    /// A copy's failure in our terms: `local` names the local side (`None`: a caller's
    /// stream), `cancelled` the file being written.
    fn copy_failed(
        &self,
        error: Copy,
        remote: &Path,
        local: Option<&Path>,
        cancelled: &Path,
    ) -> Error {
        if !matches!(error, Copy::Local(_)) {
            self.forget_sftp();
        }
        match (error, local) {
            (Copy::Local(source), Some(path)) => Error::Local {
                path: path.to_owned(),
                source,
            },
            (Copy::Local(source), None) => Error::Stream {
                host: self.host.clone(),
                path: remote.to_owned(),
                source,
            },
            (Copy::Remote(e), _) if e.kind() == std::io::ErrorKind::TimedOut => {
                self.given_up(Error::Timeout {
                    host: self.host.clone(),
                    what: format!("on {}", remote.display()),
                })
            }
            (Copy::Remote(_), _) if self.gone() => {
                self.hang_up("the server hung up");
                Error::ConnectionLost {
                    host: self.host.clone(),
                    path: remote.to_owned(),
                    kept: None,
                }
            }
            (Copy::Remote(e), _) => Error::Sftp {
                host: self.host.clone(),
                path: remote.to_owned(),
                reason: e.to_string(),
            },
            (Copy::Cancelled, _) => Error::Cancelled {
                path: cancelled.to_owned(),
                left: None,
            },
        }
    }

    /// Downloads `remote` to `local` in constant memory, through `local.part` renamed at the
    /// end. `progress` gets the bytes received so far and the total.
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`], [`Error::Local`].
    pub fn get(
        &self,
        remote: &Path,
        local: &Path,
        options: Transfer,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), Error> {
        let sftp = self.sftp()?;
        let mut tally = Tally::default();
        self.get_with(&sftp, (remote, None), local, options, progress, &mut tally)?;
        failed_in(&self.host, remote, &tally)
    }

    /// Downloads `remote`, whose attributes are `known` when its directory's listing gave
    /// them (asked for again, they cost a round trip a file); `tally` counts the files of a
    /// directory that could not be, or changed while read, told and gone past.
    fn get_with(
        &self,
        sftp: &Sftp,
        (remote, known): (&Path, Option<FileStat>),
        local: &Path,
        options: Transfer,
        progress: &mut dyn FnMut(u64, u64),
        tally: &mut Tally,
    ) -> Result<(), Error> {
        let sftp_err = |e: ssh2::Error| self.sftp_error(remote, &e);
        let stat = match known {
            Some(stat) => stat,
            None => sftp.stat(remote).map_err(sftp_err)?,
        };
        if stat.is_dir() {
            if !options.recursive {
                return Err(Error::Sftp {
                    host: self.host.clone(),
                    path: remote.to_owned(),
                    reason: "is a directory (use -r)".into(),
                });
            }
            // The remote directory's permissions (the umask applied), as sftp gives them:
            // a private directory stays private. Its parent must be there, as scp -r
            // requires: a mistyped target made a tree of directories somewhere new.
            let made = std::fs::DirBuilder::new()
                .mode(stat.perm.map_or(0o777, |perm| perm & 0o777 | 0o700))
                .create(local);
            match made {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && local.is_dir() => {}
                made => made.map_err(Self::local(local))?,
            }
            let mut entries = self.read_dir(sftp, remote)?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let wanted = |stat: &FileStat| stat.is_dir() || stat.is_file();
            for (path, stat) in entries {
                let Some(name) = path.file_name() else {
                    continue;
                };
                // readdir does not follow symbolic links; get does.
                let link = stat.file_type().is_symlink();
                let followed = if wanted(&stat) {
                    Ok(stat)
                } else {
                    sftp.stat(&path)
                };
                match followed {
                    Ok(stat) if link && stat.is_dir() => skipped(self.remote(&path), LINKED_DIR),
                    Ok(stat) if wanted(&stat) => {
                        let to = local.join(name);
                        let got =
                            self.get_with(sftp, (&path, Some(stat)), &to, options, progress, tally);
                        go_past(got, tally)?;
                    }
                    Ok(_) => skipped(self.remote(&path), "not a regular file"),
                    Err(e) if link => skipped(
                        self.remote(&path),
                        &format!("a link that leads nowhere ({})", e.message()),
                    ),
                    Err(e) => go_past(Err(self.sftp_error(&path, &e)), tally)?,
                }
            }
            if options.preserve {
                // After its files, whose writing moved its time, as sftp -p sets it.
                use std::os::unix::fs::PermissionsExt as _;
                if let Some(perm) = stat.perm {
                    std::fs::set_permissions(local, std::fs::Permissions::from_mode(perm & 0o777))
                        .map_err(Self::local(local))?;
                }
                if let Some(mtime) = stat.mtime {
                    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                    File::open(local)
                        .and_then(|dir| dir.set_modified(when))
                        .map_err(Self::local(local))?;
                }
            }
            return Ok(());
        }
        // A FIFO or a device would be opened and read until the timeout, or forever (sftp
        // refuses them too); a server that gives no type is taken at its word.
        if stat.perm.is_some() && !stat.is_file() {
            return Err(Error::Sftp {
                host: self.host.clone(),
                path: remote.to_owned(),
                reason: "not a regular file".into(),
            });
        }
        let total = stat.size.unwrap_or(0);
        let mut source = sftp.open(remote).map_err(sftp_err)?;
        // A device, a FIFO, or a link to one (`/dev/null`, `/dev/stdout`) is written into, as
        // sftp writes it: a part renamed over it replaced the device with a file.
        if std::fs::metadata(local).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let target = File::options()
                .write(true)
                .open(local)
                .map_err(Self::local(local))?;
            progress(0, total);
            let mut source = Sliced::new(source, self, options.cancel);
            let (_, received) = receive_overlapped(
                &mut source,
                target,
                total,
                options.cancel,
                &mut |received| {
                    progress(received, total);
                },
            )
            .map_err(|e| self.copy_failed(e, remote, Some(local), local))?;
            return same_size(Some(&self.host), remote, stat.size, received, || {
                sftp.stat(remote).ok().and_then(|now| now.size)
            });
        }
        // Refused before a byte comes: only the rename at the end would have failed, the
        // whole download left as its part.
        let names_dir = local.as_os_str().as_encoded_bytes().ends_with(b"/");
        let is_dir = std::fs::metadata(local).map(|m| m.is_dir());
        if names_dir || is_dir.as_ref().is_ok_and(|&dir| dir) {
            let source = match is_dir {
                Ok(_) => std::io::ErrorKind::IsADirectory.into(),
                Err(e) => e,
            };
            return Err(Error::Local {
                path: local.to_owned(),
                source,
            });
        }
        // Through a symbolic link to the file it names, as sftp writes.
        let through = std::fs::symlink_metadata(local)
            .is_ok_and(|m| m.file_type().is_symlink())
            .then(|| std::fs::canonicalize(local).ok())
            .flatten();
        let local = through.as_deref().unwrap_or(local);
        // A file its user may not write (mode 0444, another user's) is refused as sftp, curl
        // and `http -o` refuse it: renaming over it needs only the directory, and replaced it.
        if local.is_file() {
            nix::unistd::access(local, nix::unistd::AccessFlags::W_OK).map_err(|errno| {
                Error::Local {
                    path: local.to_owned(),
                    source: errno.into(),
                }
            })?;
        }
        // `NAME.part` only when resuming, where the caller asks for what it holds: a user's own
        // `NAME.part` (a split archive, a browser's download) was removed by every get of
        // NAME. Else a name of our own, made new beside the file, removed on failure.
        let part = if options.resume {
            beside(local, "", ".part")
        } else {
            unguessable_for(&beside(local, ".", ".netkit-get"), local)?
        };
        // As sftp and scp: a new file takes the remote one's permissions (the umask
        // applied: a 0600 key stays private), one replaced keeps its own, and its owner and
        // group where we may give them (root: a service's 0640 file became root's, which
        // the service could no longer read; sftp and scp write in place).
        let replaced = std::fs::metadata(local)
            .ok()
            .filter(std::fs::Metadata::is_file);
        // A part longer than the remote file is from another file, and so is the file itself
        // (taken when there is no part, as sftp's reget takes it) when longer: sftp refuses
        // to touch it, and so do we.
        let larger = |what: &Path| Error::Sftp {
            host: self.host.clone(),
            path: remote.to_owned(),
            reason: format!(
                "cannot resume: {} is larger than the remote file",
                what.display()
            ),
        };
        let theirs = |meta: &std::fs::Metadata| {
            use std::os::unix::fs::MetadataExt as _;
            meta.uid() != nix::unistd::geteuid().as_raw()
        };
        // One of an older version ends otherwise than the remote file does at its length:
        // appending the new one's tail to it made a file of both, and `-p` then gave it the
        // remote size and time, so that nothing (rsync's quick check included) saw it. The
        // file itself (a plain get's target, left as it was by an interrupted get) must also
        // be written since the remote file changed: an edit before its last 64 KiB is
        // otherwise missed. A part, written by get -a itself, is not judged by time: a
        // server whose clock was ahead had every one fetched whole. Neither is a FIFO, which
        // would be waited on.
        let older = |what: &Path, meta: &std::fs::Metadata, source: &mut ssh2::File| {
            use std::os::unix::fs::MetadataExt as _;
            let before_remote = what == local
                && stat
                    .mtime
                    .and_then(|mtime| i64::try_from(mtime).ok())
                    .is_some_and(|mtime| meta.mtime() < mtime);
            let older = !meta.is_file() || before_remote || !same_tail(what, source, meta.len());
            if older {
                log::warn!(
                    "{}: its last bytes are not the remote file's: not resumed, fetched whole",
                    what.display()
                );
            }
            older
        };
        // The file taken as the part is opened before it is renamed: one that could not be
        // opened was left only as `NAME.part`, and the error named a file that was gone.
        let mut adopted = None;
        // Never through a link planted at the predictable name.
        let append = |path: &Path| {
            File::options()
                .append(true)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(path)
        };
        let done = match (std::fs::metadata(&part), std::fs::metadata(local)) {
            // In a shared directory anyone may leave a part for us to finish: the file would
            // start with their bytes and stay theirs to change (put -a refuses it too).
            (Ok(meta), _) if options.resume && theirs(&meta) => {
                return Err(Error::Local {
                    path: part,
                    source: std::io::Error::other("another user's: not resumed"),
                });
            }
            (Ok(meta), _) if options.resume && meta.len() > total => return Err(larger(&part)),
            (Ok(meta), _) if options.resume && !older(&part, &meta, &mut source) => meta.len(),
            (Err(_), Ok(meta)) if options.resume && meta.is_file() && meta.len() > total => {
                return Err(larger(local));
            }
            (Err(_), Ok(meta))
                if options.resume
                    && meta.is_file()
                    && meta.len() > 0
                    && !older(local, &meta, &mut source) =>
            {
                adopted = Some(append(local).map_err(Self::local(local))?);
                std::fs::rename(local, &part).map_err(Self::local(local))?;
                meta.len()
            }
            _ => 0,
        };
        // Errors name the file the caller asked for: `.part` is ours.
        if done > 0 {
            self.resume_at(&mut source, remote, done)?;
            log::debug!("{}: resuming at {done} bytes", local.display());
        }
        let target = if let Some(file) = adopted {
            Ok(file)
        } else if done > 0 {
            append(&part)
        } else {
            // An empty part left by another get keeps the mode it was made with: made anew.
            let _ = std::fs::remove_file(&part);
            File::options()
                .write(true)
                .create_new(true)
                .mode(stat.perm.map_or(0o666, |perm| perm & 0o777))
                .open(&part)
        }
        .map_err(Self::local(local))?;
        // Two `get -a` of one file appended to one part (a 300 MB file became 595 MB, and one
        // of them exited 0); a plain get's part is a name of its own.
        if let Err(std::fs::TryLockError::WouldBlock) = target.try_lock() {
            return Err(Error::Local {
                path: part,
                source: std::io::Error::other("another download is writing it"),
            });
        }
        if let Some(meta) = replaced {
            use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
            let owned = std::os::unix::fs::fchown(&target, Some(meta.uid()), Some(meta.gid()));
            if let Err(e) = &owned {
                log::debug!("{}: owner not kept: {e}", local.display());
            }
            // Setuid and setgid bits only on a file still its owner's: root's get over a
            // user's setuid program made a setuid-root one of what the server sent.
            let bits = if owned.is_ok() { 0o7777 } else { 0o777 };
            target
                .set_permissions(std::fs::Permissions::from_mode(meta.mode() & bits))
                .map_err(Self::local(local))?;
        }
        progress(done, total);
        let mut source = Sliced::new(source, self, options.cancel);
        let note = |part: Option<&Path>| {
            if let Some(slot) = options.partial.filter(|_| !options.resume) {
                *slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = part.map(Path::to_owned);
            }
        };
        note(Some(&part));
        let written = (|| {
            let expected = total.saturating_sub(done);
            let (target, received) = receive_overlapped(
                &mut source,
                target,
                expected,
                options.cancel,
                &mut |received| {
                    progress(done + received, total);
                },
            )
            .map_err(|e| self.copy_failed(e, remote, Some(local), local))?;
            if options.fsync {
                target.sync_all().map_err(Self::local(local))?;
            }
            if options.preserve {
                use std::os::unix::fs::PermissionsExt as _;
                if let Some(perm) = stat.perm {
                    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(perm & 0o777))
                        .map_err(Self::local(&part))?;
                }
                if let Some(mtime) = stat.mtime {
                    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                    target.set_modified(when).map_err(Self::local(&part))?;
                }
            }
            Ok(done + received)
        })();
        let copied = match written {
            Ok(copied) => copied,
            Err(error) => {
                note(None);
                // Without resume a partial file would only be litter.
                if !options.resume {
                    let _ = std::fs::remove_file(&part);
                    return Err(error);
                }
                return Err(kept_in(error, || {
                    format!(
                        "the part received is kept as {}: get -a goes on from it",
                        part.display()
                    )
                }));
            }
        };
        let renamed = std::fs::rename(&part, local);
        note(None);
        renamed.map_err(|e| {
            // Refused (another user's file in a sticky directory, an immutable one): the
            // whole file received would stay as a hidden copy, one more each try.
            if !options.resume {
                let _ = std::fs::remove_file(&part);
            }
            let why = format!("cannot be replaced with the file received: {e}");
            Self::local(local)(std::io::Error::new(e.kind(), why))
        })?;
        // Told once the file is in place, as received: OpenSSH's sftp keeps it so and says
        // nothing, tar and rsync keep it and warn.
        same_size(Some(&self.host), remote, stat.size, copied, || {
            sftp.stat(remote).ok().and_then(|now| now.size)
        })
    }

    /// Streams `remote` into `out` as it arrives (as paramiko's `getfo`), for output that goes
    /// to a pipe or stays in memory; returns the bytes written. `progress` gets the bytes
    /// received so far and the total. Of `options`, only `cancel` applies.
    ///
    /// # Errors
    /// [`Error::Stream`] when `out` fails, [`Error::NoSuchFile`],
    /// [`Error::PermissionDenied`], [`Error::Sftp`] (also for a directory).
    pub fn get_to(
        &self,
        remote: &Path,
        out: &mut (dyn Write + Send),
        options: Transfer,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, Error> {
        let sftp = self.sftp()?;
        let sftp_err = |e: ssh2::Error| self.sftp_error(remote, &e);
        let stat = sftp.stat(remote).map_err(sftp_err)?;
        if stat.is_dir() {
            return Err(Error::Sftp {
                host: self.host.clone(),
                path: remote.to_owned(),
                reason: "is a directory".into(),
            });
        }
        let total = stat.size.unwrap_or(0);
        let source = sftp.open(remote).map_err(sftp_err)?;
        let mut source = Sliced::new(source, self, options.cancel);
        progress(0, total);
        let (out, received) =
            receive_overlapped(&mut source, out, total, options.cancel, &mut |n| {
                progress(n, total);
            })
            .map_err(|e| self.copy_failed(e, remote, None, remote))?;
        out.flush()
            .map_err(|e| self.copy_failed(Copy::Local(e), remote, None, remote))?;
        same_size(Some(&self.host), remote, stat.size, received, || {
            sftp.stat(remote).ok().and_then(|now| now.size)
        })?;
        Ok(received)
    }

    /// Moves an open remote file to `offset`, where a resumed transfer goes on.
    fn resume_at(&self, file: &mut ssh2::File, remote: &Path, offset: u64) -> Result<(), Error> {
        use std::io::Seek as _;
        file.seek(std::io::SeekFrom::Start(offset))
            .map(drop)
            .map_err(|e| Error::Sftp {
                host: self.host.clone(),
                path: remote.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Lists a remote directory, sorted by name.
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`].
    pub fn ls(&self, remote: &Path) -> Result<Vec<Entry>, Error> {
        let sftp = self.sftp()?;
        let stat = sftp.stat(remote).map_err(|e| self.sftp_error(remote, &e))?;
        if !stat.is_dir() {
            let name = remote.file_name().unwrap_or_default().to_owned();
            return Ok(vec![Entry::new(name, &stat)]);
        }
        let mut entries: Vec<Entry> = self
            .read_dir(&sftp, remote)?
            .into_iter()
            .map(|(path, stat)| Entry::new(path.file_name().unwrap_or_default().to_owned(), &stat))
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The remote paths `pattern` matches when it has wildcards (`*`, `?`, `[...]`, in any
    /// part: `logs/2026-*/*.log`), with what they are, sorted by path; `None` when it has
    /// none (the path is meant as written). As glob(3), which OpenSSH's sftp uses: a name
    /// starting with a dot matches only a pattern that starts with one, a directory that
    /// cannot be read matches nothing, and a part without wildcards after one that has them
    /// matches only what exists.
    ///
    /// # Errors
    /// [`Error::NoSuchFile`] when nothing matches.
    pub fn glob(&self, pattern: &Path) -> Result<Option<Vec<(PathBuf, Entry)>>, Error> {
        if !pattern.iter().any(|part| Escaped::of(part).wild) {
            // A backslash made each wildcard character a plain one: the path without them.
            let literal: PathBuf = pattern.iter().map(|p| Escaped::of(p).literal).collect();
            if literal == pattern {
                return Ok(None);
            }
            let entry = self.stat(&literal)?;
            return Ok(Some(vec![(literal, entry)]));
        }
        let list = |dir: &Path| {
            let entries = self.ls(dir).ok()?;
            Some(entries.into_iter().map(|e| (e.name.clone(), e)).collect())
        };
        let found = walk(pattern, list, |e: &Entry| e.is_dir || e.is_link());
        let mut found: Vec<(PathBuf, Entry)> = found
            .into_iter()
            .filter_map(|(path, entry)| match entry {
                Some(entry) => Some((path, entry)),
                None => self.stat(&path).ok().map(|entry| (path, entry)),
            })
            .collect();
        if found.is_empty() {
            // A name holding wildcard characters of its own (`report[1].txt`) is that file
            // when it matches nothing else, as scp's remote shell leaves such a word.
            return match self.stat(pattern) {
                Ok(entry) => Ok(Some(vec![(pattern.to_owned(), entry)])),
                Err(_) => Err(Error::NoSuchFile {
                    host: self.host.clone(),
                    path: pattern.to_owned(),
                }),
            };
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(found))
    }

    /// The absolute, canonical form of a remote path (`.` is the login directory), as the
    /// server resolves it.
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`].
    pub fn realpath(&self, remote: &Path) -> Result<PathBuf, Error> {
        self.sftp()?
            .realpath(remote)
            .map_err(|e| self.sftp_error(remote, &e))
    }

    /// Facts about one remote path.
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`].
    pub fn stat(&self, remote: &Path) -> Result<Entry, Error> {
        let stat = self
            .sftp()?
            .stat(remote)
            .map_err(|e| self.sftp_error(remote, &e))?;
        let name = remote.file_name().unwrap_or_default().to_owned();
        Ok(Entry::new(name, &stat))
    }

    /// Creates a directory; with `parents`, also the missing ones above it, and an existing
    /// directory is fine (as `mkdir -p`).
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`] (naming what is in
    /// the way when the path exists).
    pub fn mkdir(&self, remote: &Path, parents: bool) -> Result<(), Error> {
        let sftp = self.sftp()?;
        let exists = |stat: &FileStat| {
            Some(if stat.is_dir() {
                "the directory exists"
            } else {
                "a file is in the way"
            })
        };
        if !parents {
            return sftp
                .mkdir(remote, 0o755)
                .map_err(|e| self.explain(&sftp, remote, &e, exists));
        }
        let mut path = PathBuf::new();
        for part in remote.components() {
            path.push(part);
            if sftp.stat(&path).is_ok_and(|s| s.is_dir()) {
                continue;
            }
            sftp.mkdir(&path, 0o755)
                .map_err(|e| self.explain(&sftp, &path, &e, exists))?;
        }
        Ok(())
    }

    /// Removes a file.
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`] (saying so when the
    /// path is a directory).
    pub fn rm(&self, remote: &Path) -> Result<(), Error> {
        let sftp = self.sftp()?;
        sftp.unlink(remote).map_err(|e| {
            self.explain(&sftp, remote, &e, |stat| {
                stat.is_dir().then_some("is a directory")
            })
        })
    }

    /// Removes an empty directory.
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`] (saying why: not
    /// empty, or not a directory).
    pub fn rmdir(&self, remote: &Path) -> Result<(), Error> {
        let sftp = self.sftp()?;
        sftp.rmdir(remote).map_err(|e| {
            self.explain(&sftp, remote, &e, |stat| {
                Some(if stat.is_dir() {
                    "the directory is not empty"
                } else {
                    "not a directory"
                })
            })
        })
    }

    /// Renames `from` to `to`, replacing a file at `to` as `mv` and OpenSSH's sftp do: in one
    /// step where the server offers `posix-rename@openssh.com`, else (SFTP v3 refuses to
    /// rename over a file) it is moved aside first, so `to` is missing for a moment, and put
    /// back when the rename is refused. A second name of the same path
    /// (`a` to `./a`) changes nothing, as POSIX `rename` does.
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`] (saying so when `to`
    /// is a directory, or a file that `from`, a directory, would replace).
    pub fn rename(&self, from: &Path, to: &Path) -> Result<(), Error> {
        let sftp = self.sftp()?;
        let Err(e) = sftp.rename(from, to, None) else {
            return Ok(());
        };
        let in_the_way = |reason: &str| Error::Sftp {
            host: self.host.clone(),
            path: to.to_owned(),
            reason: reason.into(),
        };
        // The server's bare "failure" (SSH_FX_FAILURE) says neither why nor whether `to` is
        // the obstacle: nothing is removed until the rename has gone through without it.
        let (target, source) = match (sftp.lstat(to), sftp.lstat(from)) {
            (Ok(target), Ok(source)) => (target, source),
            // The source is there: the target's side failed (its directory missing, or not
            // ours to write), which the error names, as sftp names both (it blamed the
            // source, and the user looked for a file that had not gone).
            (Err(_), Ok(_)) => return Err(self.sftp_error(to, &e)),
            _ => return Err(self.sftp_error(from, &e)),
        };
        let named = |path: &Path| -> Option<PathBuf> {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            let dir = sftp.realpath(parent.unwrap_or(Path::new("."))).ok()?;
            Some(dir.join(path.file_name()?))
        };
        if named(from).is_some_and(|f| named(to).is_some_and(|t| f == t)) {
            return Ok(());
        }
        if target.is_dir() {
            return Err(in_the_way("a directory is in the way"));
        }
        if source.is_dir() {
            return Err(in_the_way("a file is in the way of a directory"));
        }
        // SSH_FX_FAILURE from OpenSSH; ProFTPD says FILE_ALREADY_EXISTS (11), where the
        // source was named as the file that exists.
        if ![ssh2::ErrorCode::SFTP(4), ssh2::ErrorCode::SFTP(11)].contains(&e.code()) {
            return Err(self.sftp_error(from, &e));
        }
        self.moved_over(&sftp, from, to)
            .map_err(|(path, e)| self.sftp_error(&path, &e))
    }

    /// Renames `from` over the file `to` where the one-step rename failed (no
    /// `posix-rename@openssh.com`): SFTP v3 refuses to rename over a file, so `to` is moved
    /// aside first, removed once `from` took its place and put back when the rename is
    /// refused (an upload removed it first, and a server refusing renames lost the file, the
    /// new one never written). The error comes with the path its step was about.
    fn moved_over(
        &self,
        sftp: &Sftp,
        from: &Path,
        to: &Path,
    ) -> Result<(), (PathBuf, ssh2::Error)> {
        let aside = aside_name(to);
        sftp.rename(to, &aside, NO_OVERWRITE)
            .map_err(|e| (to.to_owned(), e))?;
        let left = |why: &str| {
            log::warn!(
                "{}: the file replaced is left as {} ({why})",
                self.remote(to),
                aside.display()
            );
        };
        match sftp.rename(from, to, NO_OVERWRITE) {
            Ok(()) => {
                // A server that takes no removals (sftp-server -P remove) keeps it.
                if sftp.unlink(&aside).is_err() {
                    left("the server would not remove it");
                }
                Ok(())
            }
            Err(e) => {
                if sftp.rename(&aside, to, NO_OVERWRITE).is_err() {
                    // Another upload of the name put its file there meanwhile: the file
                    // replaced is superseded, as it would have been by that upload.
                    if sftp.lstat(to).is_ok() && sftp.unlink(&aside).is_ok() {
                        return Err((from.to_owned(), e));
                    }
                    left("it could not be put back");
                }
                Err((from.to_owned(), e))
            }
        }
    }

    /// What a replace of `to` killed between [`Self::moved_over`]'s steps left: the file
    /// replaced as `.NAME.netkit-aside`, put back when nothing is at `to` (a kill after the
    /// first step left the name empty), removed when `to` is there (it was replaced), and
    /// said in one line either way. A live replace of the same name at this moment finds its
    /// aside file gone: its rename is refused and tried again, or its removal is.
    fn recover_aside(&self, sftp: &Sftp, to: &Path) {
        let aside = aside_name(to);
        if sftp.lstat(&aside).is_err() {
            return;
        }
        if sftp.lstat(to).is_err() {
            if sftp.rename(&aside, to, NO_OVERWRITE).is_ok() {
                log::warn!(
                    "{}: put back from {}, where an interrupted replace had left it",
                    self.remote(to),
                    aside.display()
                );
            }
        } else if sftp.unlink(&aside).is_ok() {
            log::warn!(
                "{}: removed {}, the old file an interrupted replace had left",
                self.remote(to),
                aside.display()
            );
        }
    }

    /// Creates a symbolic link at `link` that points to `target` (as `ln -s TARGET LINK`;
    /// `target` is stored as given, relative ones resolved from the link's directory).
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`] (when `link` exists).
    pub fn symlink(&self, target: &Path, link: &Path) -> Result<(), Error> {
        self.sftp()?
            .symlink(target, link)
            .map_err(|e| self.sftp_error(link, &e))
    }

    /// `error` on `path` as ours; SFTP v3's bare "failure" is replaced by what `why` makes of
    /// the path as it stands, when it exists and `why` knows. So is "no such file" for a path
    /// that exists: OpenSSH's server reports ENOTDIR so.
    fn explain(
        &self,
        sftp: &Sftp,
        path: &Path,
        error: &ssh2::Error,
        why: impl FnOnce(&FileStat) -> Option<&'static str>,
    ) -> Error {
        // SSH_FX_NO_SUCH_FILE, SSH_FX_FAILURE
        if matches!(error.code(), ssh2::ErrorCode::SFTP(2 | 4))
            && let Some(reason) = sftp.stat(path).ok().as_ref().and_then(why)
        {
            return Error::Sftp {
                host: self.host.clone(),
                path: path.to_owned(),
                reason: reason.into(),
            };
        }
        self.sftp_error(path, error)
    }

    /// Changes the permission bits of a remote path.
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`], [`Error::Sftp`].
    pub fn chmod(&self, remote: &Path, mode: u32) -> Result<(), Error> {
        let stat = FileStat {
            perm: Some(mode),
            ..UNCHANGED
        };
        self.sftp()?
            .setstat(remote, stat)
            .map_err(|e| self.sftp_error(remote, &e))
    }

    /// Changes the owner (`uid`) or the group (`gid`) of a remote path, by number as sftp's
    /// `chown` and `chgrp`; the one not given stays as it is.
    ///
    /// # Errors
    /// [`Error::NoSuchFile`], [`Error::PermissionDenied`] (only root may give a file away),
    /// [`Error::Sftp`].
    pub fn chown(&self, remote: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), Error> {
        let sftp = self.sftp()?;
        let error = |e: ssh2::Error| self.sftp_error(remote, &e);
        // SFTP sets owner and group together: the one left alone is sent as it is now.
        let now = match (uid, gid) {
            (Some(_), Some(_)) => UNCHANGED,
            _ => sftp.stat(remote).map_err(error)?,
        };
        let stat = FileStat {
            uid: uid.or(now.uid),
            gid: gid.or(now.gid),
            ..UNCHANGED
        };
        sftp.setstat(remote, stat).map_err(error)
    }
}

/// Bytes of a resumed file compared with the remote file's at the same place.
const TAIL: u64 = 64 << 10;

/// Whether the first `len` bytes of the local file `local` end as the remote `file`'s first
/// `len` bytes do (their last [`TAIL`] bytes compared), the remote file read from its start
/// again afterwards: a part of another version (or a same-size file of other content)
/// differs there, whatever the clocks say; by time, a server whose clock was ahead had every
/// part refetched whole. Any error reads as "not the same".
fn same_tail(local: &Path, file: &mut ssh2::File, len: u64) -> bool {
    use std::io::{Read as _, Seek as _};
    use std::os::unix::fs::FileExt as _;
    let from = len.saturating_sub(TAIL);
    let Ok(size) = usize::try_from(len - from) else {
        return false;
    };
    let mut mine = vec![0; size];
    let mut theirs = vec![0; size];
    // Never through a link planted at the part's name.
    let opened = File::options()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
        .open(local);
    let same = opened.is_ok_and(|f| f.read_exact_at(&mut mine, from).is_ok())
        && file.seek(std::io::SeekFrom::Start(from)).is_ok()
        && file.read_exact(&mut theirs).is_ok()
        && mine == theirs;
    file.seek(std::io::SeekFrom::Start(0)).is_ok() && same
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_refused_write_of_a_resumable_upload_names_the_part_kept() {
        let refused = refused_write(Error::Sftp {
            host: "h".into(),
            path: "/d/p.bin".into(),
            reason: "failure".into(),
        });
        let said = kept_in(refused, || {
            "the part sent is kept as /d/.p.bin.netkit-upload".into()
        })
        .to_string();
        assert!(said.contains("disk full?"), "{said}");
        assert!(said.contains("kept as /d/.p.bin.netkit-upload"), "{said}");
    }

    /// The limits a window takes over `calls` write calls at `rate` bytes a second, each
    /// handing it bytes it did not hold and lasting `took`.
    fn windows(timeout: u64, rate: u64, took: Duration, calls: usize) -> Vec<usize> {
        let start = std::time::Instant::now();
        let mut window = Window::new(Duration::from_secs(timeout), start);
        let mut now = start;
        (0..calls)
            .map(|_| {
                now += took;
                let acked = rate * (now - start).as_millis() as u64 / 1000;
                window.called(1, took, acked, now);
                window.limit()
            })
            .collect()
    }

    #[test]
    fn the_send_window_follows_the_link_within_a_quarter_of_the_timeout() {
        // Loopback: doubled up to the most at each quick call.
        let fast = windows(30, 1 << 30, Duration::from_millis(1), 8);
        assert_eq!(fast[..3], [128 << 10, 256 << 10, 512 << 10]);
        assert_eq!(fast[7], MAX_WINDOW);
        // 512 kbit/s: what 7.5 s carries, 480 KB, at most, where 4 MiB took 64 s.
        let slow = windows(30, 64_000, Duration::from_millis(500), 20);
        assert!(slow.iter().all(|&w| w <= 480_000), "{slow:?}");
        assert!(slow[19] > 240_000, "{slow:?}");
        // Slower than a quarter of the timeout carries one request: one request.
        assert_eq!(
            windows(2, 8_000, Duration::from_millis(500), 4)[3],
            MIN_WINDOW
        );
        // Calls that take long do not grow it.
        assert_eq!(
            windows(30, 1 << 30, Duration::from_secs(4), 4),
            [FIRST_WINDOW; 4]
        );
        // With no timeout, nothing is to be kept within one.
        assert_eq!(
            windows(0, 1_000, Duration::from_secs(1), 2),
            [MAX_WINDOW; 2]
        );
    }

    #[test]
    fn kept_times_are_held_to_what_sftp_carries() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("kept");
        let file = std::fs::File::create(&path).unwrap();
        for (secs, sent) in [(4_354_819_200_i64, u64::from(u32::MAX)), (1_000, 1_000)] {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.unsigned_abs());
            file.set_times(std::fs::FileTimes::new().set_modified(at).set_accessed(at))
                .unwrap();
            let stat = kept(&file.metadata().unwrap());
            assert_eq!((stat.mtime, stat.atime), (Some(sent), Some(sent)), "{secs}");
        }
    }

    #[test]
    fn a_listed_name_is_taken_only_when_it_is_a_plain_name_in_the_directory() {
        // ssh2 joins each name the server lists to the directory: a hostile server's
        // `zz/report.txt` would be saved over the listed `report.txt`, and `../x` or `/etc/x`
        // read from outside the tree.
        let dir = Path::new("/srv/data");
        for name in ["report.txt", ".hidden", "with space", "a\u{1b}b"] {
            assert!(listed_in(dir, &dir.join(name)), "{name}");
            assert!(
                listed_in(Path::new("/srv/data/"), &dir.join(name)),
                "{name}"
            );
        }
        for name in [
            "zz/report.txt",
            "../x",
            "../../x",
            "/etc/passwd",
            "sub/../../x",
            "..",
        ] {
            assert!(!listed_in(dir, &dir.join(name)), "{name}");
        }
        assert!(listed_in(Path::new("."), Path::new("./x")));
        assert!(!listed_in(Path::new("."), Path::new("./a/x")));
    }

    #[test]
    fn a_bracket_no_bracket_closes_is_a_plain_character() {
        let of = |s: &str| {
            let e = Escaped::of(OsStr::new(s));
            (e.literal.into_string().unwrap(), e.wild)
        };
        assert_eq!(of("\u{1b}[0m"), ("\u{1b}[0m".into(), false));
        assert_eq!(of("a[1]"), ("a[1]".into(), true));
        assert_eq!(of("a[]]"), ("a[]]".into(), true));
        assert_eq!(of("a[!]x"), ("a[!]x".into(), false));
        assert_eq!(of("a\\[1\\]"), ("a[1]".into(), false));
        let matches =
            |pattern: &str, name: &str| Escaped::of(OsStr::new(pattern)).matches(OsStr::new(name));
        assert!(matches("\u{1b}[0m", "\u{1b}[0m"));
        assert!(matches("a[]]", "a]") && !matches("a[]]", "a"));
        assert!(matches("a[!]]", "ab") && !matches("a[!]]", "a]"));
        assert!(matches("[a-c]*[!x]", "bee") && !matches("[a-c]*[!x]", "box"));
        assert!(matches("a\\*", "a*") && !matches("a\\*", "ab"));
        assert!(matches("*a*b", "xaab") && !matches("*a*b", "xaba"));
        assert!(matches("?", "é") && !matches("?", ".") && matches(".*", ".env"));
    }

    #[test]
    fn wildcards_match_names_that_are_not_utf8_by_their_bytes() {
        let bytes = OsStr::from_bytes(b"latin\xe9");
        let twin = OsStr::new("latin\u{fffd}");
        let of = |pattern: &[u8]| Escaped::of(OsStr::from_bytes(pattern));
        // The byte is one unit, as a character is, and only itself.
        for pattern in [&b"lat*"[..], b"latin?", b"latin\xe9", b"latin[\xe0-\xef]"] {
            assert!(of(pattern).matches(bytes), "{}", pattern.escape_ascii());
        }
        for pattern in [
            &b"latin\xe9"[..],
            b"latin[\xe0-\xef]",
            b"latin[!\xef\xbf\xbd]",
        ] {
            assert!(!of(pattern).matches(twin), "{}", pattern.escape_ascii());
        }
        assert!(!of("latin\u{fffd}".as_bytes()).matches(bytes));
        assert!(of(b"latin[!\xef\xbf\xbd]").matches(bytes));
        assert_eq!(of(b"lat\\\xe9").literal, OsStr::from_bytes(b"lat\xe9"));
    }

    #[test]
    fn local_wildcards_as_glob_3_expands_them() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        for name in [
            "a.txt",
            "b.txt",
            ".env",
            "report[1].txt",
            "report1.txt",
            "star*",
            "starfish",
        ] {
            std::fs::write(dir.join(name), name).unwrap();
        }
        let names = |pattern: &str| -> Vec<String> {
            local_glob(&dir.join(pattern))
                .unwrap()
                .iter()
                .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            names("*.txt"),
            ["a.txt", "b.txt", "report1.txt", "report[1].txt"]
        );
        // The dot file is left out, `[1]` is a set, and a backslash makes it plain.
        let all = [
            "a.txt",
            "b.txt",
            "report1.txt",
            "report[1].txt",
            "star*",
            "starfish",
        ];
        assert_eq!(names("*"), all);
        assert_eq!(names("report[1].txt"), ["report1.txt"]);
        assert_eq!(names("report\\[1\\].txt"), ["report[1].txt"]);
        assert_eq!(names("star\\*"), ["star*"]);
        assert_eq!(names(".e*"), [".env"]);
        std::fs::remove_file(dir.join("report1.txt")).unwrap();
        // Matching nothing else, a name holding wildcard characters is that file.
        assert_eq!(names("report[1].txt"), ["report[1].txt"]);
        assert!(matches!(
            local_glob(&dir.join("none*")),
            Err(Error::Local { .. })
        ));
        assert_eq!(names("plain"), ["plain"]);
    }
}
