//! `netkit sftp [-b FILE] DEST`: sftp's commands over one connection, read from a batch file
//! or typed at the prompt, as OpenSSH's `sftp` reads them.

use std::ffi::{OsStr, OsString};
use std::io::IsTerminal as _;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::Parser as _;
use net_ssh::Client;

use crate::exit::{Failure, GENERIC, Outcome, USAGE, WithCode};
use crate::sftp;
use crate::sftp_prompt::{Input, Source};

/// One command line of a session.
#[derive(clap::Parser)]
#[command(no_binary_name = true, disable_help_subcommand = true)]
enum Line {
    /// Upload: put [-r] [-p] [-a] [-f] LOCAL [REMOTE]
    #[command(alias = "mput")]
    Put {
        #[command(flatten)]
        flags: sftp::TransferFlags,
        local: OsString,
        remote: Option<OsString>,
    },
    /// Download: get [-r] [-p] [-a] [-f] REMOTE [LOCAL]
    #[command(alias = "mget")]
    Get {
        #[command(flatten)]
        flags: sftp::TransferFlags,
        remote: OsString,
        local: Option<OsString>,
    },
    /// List: ls [-1afhlnrSt] [PATH]
    #[command(alias = "dir", disable_help_flag = true)]
    Ls {
        #[command(flatten)]
        flags: sftp::ListFlags,
        path: Option<OsString>,
    },
    /// Change the remote directory: cd [PATH] (the login directory without one)
    #[command(alias = "chdir")]
    Cd { path: Option<OsString> },
    /// Change the local directory: lcd [PATH] (the home directory without one)
    #[command(alias = "lchdir")]
    Lcd { path: Option<OsString> },
    /// List local files: lls [LS-OPTIONS] [PATH...] (the local ls)
    Lls {
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<OsString>,
    },
    /// Create a local directory: lmkdir PATH
    Lmkdir { path: OsString },
    /// Make a symbolic link: ln -s TARGET LINK
    Ln {
        #[arg(short = 's')]
        symbolic: bool,
        target: OsString,
        link: OsString,
    },
    /// Make a symbolic link: symlink TARGET LINK
    Symlink { target: OsString, link: OsString },
    /// Print the remote directory
    Pwd,
    /// Print the local directory
    Lpwd,
    /// Create a directory: mkdir [-p] PATH
    Mkdir {
        #[arg(short = 'p')]
        parents: bool,
        path: OsString,
    },
    /// Remove a file: rm PATH
    Rm { path: OsString },
    /// Remove an empty directory: rmdir PATH
    Rmdir { path: OsString },
    /// Change permissions: chmod MODE PATH
    Chmod {
        #[arg(value_parser = sftp::octal_mode)]
        mode: u32,
        path: OsString,
    },
    /// Change the owner: chown UID PATH (a number, as sftp's)
    Chown { uid: u32, path: OsString },
    /// Change the group: chgrp GID PATH (a number, as sftp's)
    Chgrp { gid: u32, path: OsString },
    /// Rename: rename FROM TO
    #[command(alias = "mv")]
    Rename { from: OsString, to: OsString },
    /// Print the SFTP protocol version
    Version,
    /// Turn the progress bar off, or on again
    Progress,
    /// End the session
    #[command(aliases = ["exit", "bye"])]
    Quit,
}

/// Where a session is: the remote directories, and what applies to every transfer.
struct Session<'a> {
    client: &'a Client,
    home: PathBuf,
    cwd: PathBuf,
    fsync: bool,
}

/// Where a session's commands come from: a batch file (`-`: stdin), else the prompt on a
/// terminal, else stdin. Opened before connecting, as sftp refuses a batch file it cannot read
/// before it logs in (after, a mistyped name cost a login and a password typed for nothing).
pub struct Commands {
    source: Source,
    batch: bool,
}

impl Commands {
    /// Opens `batch`'s file, if it names one.
    pub fn open(batch: Option<&Path>) -> Result<Commands, Failure> {
        let source = match batch {
            None if std::io::stdin().is_terminal() => Source::Terminal(command_names()),
            Some(path) if path != Path::new("-") => Source::File(
                std::fs::File::open(path)
                    .and_then(|file| {
                        // A directory opens: it failed once read, after the login, naming
                        // no file.
                        if file.metadata()?.is_dir() {
                            return Err(nix::errno::Errno::EISDIR.into());
                        }
                        Ok(file)
                    })
                    .with_context(|| format!("cannot read the batch file {}", path.display()))
                    .code(USAGE)?,
            ),
            _ => Source::Stdin,
        };
        Ok(Commands {
            source,
            batch: batch.is_some(),
        })
    }
}

/// Runs `commands`, starting in the remote directory `start`. In a batch, the first command
/// that fails ends the session with its error unless the line starts with `-`; `@` keeps a
/// line from being echoed.
pub fn run(client: &Client, start: &Path, commands: Commands, fsync: bool) -> Outcome {
    let home = client.realpath(Path::new(".")).code(GENERIC)?;
    let cwd = client.realpath(start).code(GENERIC)?;
    let mut session = Session {
        client,
        home,
        cwd,
        fsync,
    };
    let batch = commands.batch;
    if batch {
        // As sftp -b: a batch's transfers draw no bars on the terminal that started it.
        sftp::PROGRESS.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    let mut input = Input::start(commands.source)?;
    while let Some(line) = input.next_line(client, &session.cwd)? {
        // Only the line's end goes: a name completed as `name\ ` keeps its escaped space.
        let mut line = line.trim_ascii_start();
        while let Some(rest) = line
            .strip_suffix(b"\n")
            .or_else(|| line.strip_suffix(b"\r"))
        {
            line = rest;
        }
        let mut text = line;
        if text.is_empty() || text.starts_with(b"#") {
            continue;
        }
        let (mut go_on, mut echo) = (!batch, batch);
        while let Some(rest) = text.strip_prefix(b"-").or_else(|| text.strip_prefix(b"@")) {
            if text.starts_with(b"-") {
                go_on = true;
            } else {
                echo = false;
            }
            text = rest.trim_ascii_start();
        }
        // As written, a `-` kept: a transcript shows which errors were meant to be gone past.
        // A byte that is no part of a UTF-8 character is echoed as ls shows it, as sftp
        // echoes it.
        if echo {
            let line = net_ssh::name_shown(OsStr::from_bytes(line));
            crate::exit::out(format_args!("sftp> {line}"))?;
        }
        match session.perform(text) {
            Ok(true) => {}
            Ok(false) => break,
            // A server that let a call time out has been hung up on: the commands after it
            // would each fail, a `-` line's included.
            Err(failure) if go_on && !client.is_closed() => crate::exit::say_error(&failure.error),
            Err(failure) => return Err(failure),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The commands read before the parser sees the line, for `help`.
const SPELLED_OUT: [(&str, &str); 4] = [
    ("reget", "Resume a download: reget REMOTE [LOCAL] (get -a)"),
    ("reput", "Resume an upload: reput LOCAL [REMOTE] (put -a)"),
    ("!", "Run a local command: !COMMAND (a shell without one)"),
    ("help", "List the commands (also ?)"),
];

/// The words that start a command line, aliases and `help` too, for completion.
fn command_names() -> Vec<String> {
    use clap::CommandFactory as _;
    let mut names: Vec<String> = Line::command()
        .get_subcommands()
        .flat_map(|c| std::iter::once(c.get_name()).chain(c.get_all_aliases()))
        .chain(SPELLED_OUT.iter().map(|(name, _)| *name))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

impl Session<'_> {
    /// Carries out one command line; false when it ends the session.
    fn perform(&mut self, text: &[u8]) -> Result<bool, Failure> {
        sftp::forget_signals();
        if let Some(command) = text.strip_prefix(b"!") {
            local_shell(OsStr::from_bytes(command))?;
            return Ok(true);
        }
        let mut words = words(text)
            .ok_or_else(|| {
                let text = net_ssh::name_shown(OsStr::from_bytes(text));
                anyhow!("{text}: an unbalanced quote, or a backslash at the end")
            })
            .code(USAGE)?;
        // reget and reput are get -a and put -a, as in sftp.
        if let Some(first) = words.first_mut()
            && let Some(verb) = first
                .to_str()
                .and_then(|f| f.strip_prefix("re"))
                .filter(|v| ["get", "put"].contains(v))
        {
            *first = verb.into();
            words.insert(1, "-a".into());
        }
        let command = words.first().and_then(|w| w.to_str());
        // sftp(1)'s -P on a transfer is its -p.
        if matches!(command, Some("get" | "put" | "mget" | "mput")) {
            for word in words.iter_mut().skip(1).take_while(|w| *w != "--") {
                if let Some(flags) = word.to_str().and_then(|w| w.strip_prefix('-'))
                    && flags.chars().all(|c| c.is_ascii_alphabetic())
                {
                    *word = word.to_string_lossy().replace('P', "p").into();
                }
            }
        }
        if matches!(words.first().and_then(|w| w.to_str()), Some("help" | "?")) {
            for command in <Line as clap::CommandFactory>::command().get_subcommands() {
                let about = command.get_about().map(ToString::to_string);
                crate::exit::out(format_args!(
                    "{:<8} {}",
                    command.get_name(),
                    about.unwrap_or_default()
                ))?;
            }
            for (name, about) in SPELLED_OUT {
                crate::exit::out(format_args!("{name:<8} {about}"))?;
            }
            return Ok(true);
        }
        let parsed =
            Line::try_parse_from(&words).map_err(|e| anyhow!("{}", crate::exit::clap_line(&e)));
        match parsed.code(USAGE)? {
            Line::Put {
                flags,
                local,
                remote,
            } => {
                let remote = self.remote_plain(remote.as_deref().unwrap_or(".".as_ref()));
                let options = flags.transfer(self.fsync);
                let locals = local_matches(&local)?;
                if locals.len() > 1 && !sftp::is_dir(self.client, &remote)? {
                    return Err(anyhow!(
                        "{}: not a directory, and {} names {} files",
                        net_ssh::name_shown(&remote),
                        net_ssh::name_shown(&local),
                        locals.len()
                    ))
                    .code(USAGE);
                }
                sftp::upload(self.client, &locals, &remote, options)?;
            }
            Line::Get {
                flags,
                remote,
                local,
            } => {
                let options = flags.transfer(self.fsync);
                let local = local_path(local.as_deref().unwrap_or(".".as_ref()));
                let shown = net_ssh::name_shown(&remote);
                sftp::download(self.client, self.remote(&remote), &shown, &local, options)?;
            }
            Line::Ls { flags, path } => {
                let path = path.as_deref().unwrap_or(".".as_ref());
                // A relative path's entries and matches are shown relative, as sftp shows
                // them.
                let strip =
                    if path.as_bytes().starts_with(b"/") || path.as_bytes().starts_with(b"~") {
                        Path::new("")
                    } else {
                        &self.cwd
                    };
                sftp::list(self.client, &self.remote(path), flags, Some(strip))?;
            }
            Line::Cd { path } => {
                let path = path.map_or_else(|| self.home.clone(), |p| self.remote_plain(&p));
                let dir = self.client.realpath(&path).code(GENERIC)?;
                if !self.client.stat(&dir).code(GENERIC)?.is_dir {
                    return Err(anyhow!("{}: not a directory", net_ssh::name_shown(&dir)))
                        .code(GENERIC);
                }
                self.cwd = dir;
            }
            Line::Lcd { path } => {
                let path = local_path(path.as_deref().unwrap_or("~".as_ref()));
                std::env::set_current_dir(&path)
                    .with_context(|| format!("cannot change to {}", net_ssh::name_shown(&path)))
                    .code(GENERIC)?;
            }
            // As sftp's: the local shell reads the rest of the line, its wildcards too.
            Line::Lls { .. } => {
                let text = text.trim_ascii_start();
                let args = text
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .map_or(&[][..], |end| &text[end..]);
                local_shell(OsStr::from_bytes(&[&b"ls"[..], args].concat()))?;
            }
            Line::Lmkdir { path } => {
                let path = local_path(&path);
                std::fs::create_dir(&path)
                    .with_context(|| format!("cannot create {}", net_ssh::name_shown(&path)))
                    .code(GENERIC)?;
            }
            Line::Ln {
                symbolic: false, ..
            } => {
                return Err(anyhow!(
                    "ln: hard links need OpenSSH's hardlink@openssh.com request, which libssh2 \
                     cannot send; ln -s makes a symbolic link"
                ))
                .code(GENERIC);
            }
            Line::Ln { target, link, .. } | Line::Symlink { target, link } => self
                .client
                .symlink(Path::new(&plain(&target)), &self.remote_plain(&link))
                .code(GENERIC)?,
            Line::Version => crate::exit::out(format_args!("SFTP protocol version 3"))?,
            Line::Progress => {
                let on = !sftp::PROGRESS.fetch_xor(true, std::sync::atomic::Ordering::Relaxed);
                crate::exit::out(format_args!(
                    "Progress meter {}",
                    if on { "enabled" } else { "disabled" }
                ))?;
            }
            Line::Pwd => crate::exit::out(format_args!(
                "Remote working directory: {}",
                crate::exit::shown_name(self.cwd.as_os_str())
            ))?,
            Line::Lpwd => crate::exit::out(format_args!(
                "Local working directory: {}",
                std::env::current_dir()?.display()
            ))?,
            Line::Mkdir { parents, path } => {
                self.client
                    .mkdir(&self.remote_plain(&path), parents)
                    .code(GENERIC)?;
            }
            Line::Rm { path } => sftp::remove(self.client, self.remote(&path), false)?,
            // As sftp's, which expands no wildcard of rmdir's.
            Line::Rmdir { path } => self.client.rmdir(&self.remote_plain(&path)).code(GENERIC)?,
            Line::Chmod { mode, path } => sftp::chmod(self.client, self.remote(&path), mode)?,
            Line::Chown { uid, path } => {
                sftp::chown(self.client, self.remote(&path), Some(uid), None)?;
            }
            Line::Chgrp { gid, path } => {
                sftp::chown(self.client, self.remote(&path), None, Some(gid))?;
            }
            Line::Rename { from, to } => {
                // Never into a directory, as sftp's rename (mv's is sftp::rename).
                self.client
                    .rename(&self.remote_plain(&from), &self.remote_plain(&to))
                    .code(GENERIC)?;
            }
            Line::Quit => return Ok(false),
        }
        Ok(true)
    }

    /// A remote pattern as typed (a word as [`words`] gives it): `~` and `~/...` from the
    /// login directory, a relative one from the current directory, whose own wildcard
    /// characters are made plain (in `dir[1]`, `get *.txt` looked in `dir1`).
    fn remote(&self, word: &OsStr) -> PathBuf {
        let (base, rest) = self.base(word);
        let mut path = PathBuf::from(escaped_all(base));
        if !rest.is_empty() {
            path.push(rest);
        }
        path
    }

    /// A remote path as typed, for a command that expands no wildcard (cd, mkdir, rename,
    /// put's target, as sftp's).
    fn remote_plain(&self, word: &OsStr) -> PathBuf {
        match self.base(word) {
            (base, rest) if rest.is_empty() => base.to_owned(),
            (base, rest) => base.join(plain(rest)),
        }
    }

    /// The directory a remote word starts from (its bytes as the server named it, which may
    /// not be UTF-8) and the rest of the word: `~` and `~/...` from the login directory,
    /// anything else from the current one.
    fn base<'w>(&self, word: &'w OsStr) -> (&Path, &'w OsStr) {
        match word.as_bytes().strip_prefix(b"~/") {
            Some(rest) => (&self.home, OsStr::from_bytes(rest)),
            None if word == "~" => (&self.home, "".as_ref()),
            None if word == "." => (&self.cwd, "".as_ref()),
            None => (&self.cwd, word),
        }
    }
}

/// The characters a glob reads, which a quote or a backslash makes plain.
const WILDCARD: [char; 5] = ['*', '?', '[', ']', '\\'];

/// A piece of a command line: a character, or a byte that is no part of a UTF-8 one (a
/// name's own byte, written raw in a batch file, as sftp takes it).
#[derive(Clone, Copy)]
enum Unit {
    Char(char),
    Byte(u8),
}

/// The byte an octal escape at the start of `rest` (what follows a backslash) stands for: one
/// of 0x80 to 0xFF, `\200` to `\377`, the bytes that `ls` and errors show so when they are no
/// part of a UTF-8 character (`latin\351`). Typed so, such a name is taken by its bytes, and
/// Tab completes it so: the prompt's line is text, which cannot hold the byte itself. Bytes
/// below 0x80 are characters typed as they are; sftp reads `\351` as `351`.
fn octal_byte(rest: &[Unit]) -> Option<u8> {
    let digit = |unit: Option<&Unit>| match unit {
        Some(Unit::Char(c @ '0'..='7')) => c.to_digit(8),
        _ => None,
    };
    let high = digit(rest.first()).filter(|d| (2..=3).contains(d))?;
    let value = (high << 6) | (digit(rest.get(1))? << 3) | digit(rest.get(2))?;
    u8::try_from(value).ok()
}

/// Splits a command line into words as sftp(1) does: quotes and backslashes as a shell reads
/// them, but a wildcard character quoted or after a backslash stays escaped (`\*`) for the
/// wildcard expansion that follows, which reads it as plain: `rm "star*"` and `rm star\*`
/// remove the file named `star*`, not every name starting with `star` (a batch that quoted a
/// name to be safe removed other files), and a quoted `~` is no home (`rm "~/x"` removed the
/// home's `x`). A `#` starting a word starts a comment. The words are bytes: a byte that is no
/// part of a UTF-8 character is taken as it is (sftp takes a batch line's bytes), and outside
/// quotes `\351` stands for the byte 0xE9 ([`octal_byte`]). `None` for an unclosed quote or a
/// last backslash.
fn words(text: &[u8]) -> Option<Vec<OsString>> {
    fn push(word: &mut Vec<u8>, unit: Unit) {
        match unit {
            Unit::Char(c) => word.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            Unit::Byte(byte) => word.push(byte),
        }
    }
    let escape = |word: &mut Vec<u8>, unit: Unit| {
        if let Unit::Char(c) = unit
            && (WILDCARD.contains(&c) || c == '~')
        {
            word.push(b'\\');
        }
        push(word, unit);
    };
    let units: Vec<Unit> = text
        .utf8_chunks()
        .flat_map(|chunk| {
            let bytes = chunk.invalid().iter().map(|&byte| Unit::Byte(byte));
            chunk.valid().chars().map(Unit::Char).chain(bytes)
        })
        .collect();
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut quote = None;
    let mut at = 0;
    let next = |at: &mut usize| {
        *at += 1;
        units.get(*at - 1).copied()
    };
    while let Some(unit) = next(&mut at) {
        let Unit::Char(c) = unit else {
            push(word.get_or_insert_default(), unit);
            continue;
        };
        match (quote, c) {
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, '#') if word.is_none() => break,
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, '\\') => match octal_byte(&units[at..]) {
                Some(byte) => {
                    word.get_or_insert_default().push(byte);
                    at += 3;
                }
                None => escape(word.get_or_insert_default(), next(&mut at)?),
            },
            (Some(q), c) if c == q => quote = None,
            // In double quotes a backslash escapes a quote, itself or a wildcard character,
            // and is plain before anything else, as a shell reads it.
            (Some('"'), '\\') => {
                let w = word.get_or_insert_default();
                match next(&mut at)? {
                    Unit::Char('"') => w.push(b'"'),
                    Unit::Char(next) if WILDCARD.contains(&next) => escape(w, Unit::Char(next)),
                    next => {
                        escape(w, Unit::Char('\\'));
                        escape(w, next);
                    }
                }
            }
            (Some(_), _) => escape(word.get_or_insert_default(), unit),
            (None, _) => push(word.get_or_insert_default(), unit),
        }
    }
    if quote.is_some() {
        return None;
    }
    words.extend(word);
    Some(words.into_iter().map(OsString::from_vec).collect())
}

/// A word with the escapes [`words`] kept for the wildcard expansion undone, for what
/// expands none.
pub(crate) fn plain(word: &OsStr) -> OsString {
    let mut plain = Vec::with_capacity(word.len());
    let mut bytes = word.as_bytes().iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\\' => plain.extend(bytes.next()),
            byte => plain.push(byte),
        }
    }
    OsString::from_vec(plain)
}

/// The name a word being typed at the prompt stands for, for Tab: its bytes as [`words`]
/// reads them, escapes undone (`latin\\351` is `latin` and the byte 0xE9); one not yet
/// whole (an open quote) with its backslashes dropped.
pub(crate) fn typed_word(word: &str) -> OsString {
    let mut read = words(word.as_bytes()).unwrap_or_else(|| vec![word.into()]);
    read.truncate(1);
    read.pop().map(|word| plain(&word)).unwrap_or_default()
}

/// `path` with its wildcard characters escaped, to stand in a pattern as itself.
fn escaped_all(path: &Path) -> std::ffi::OsString {
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    let mut escaped = Vec::with_capacity(path.as_os_str().len());
    for &byte in path.as_os_str().as_bytes() {
        if WILDCARD.contains(&char::from(byte)) {
            escaped.push(b'\\');
        }
        escaped.push(byte);
    }
    std::ffi::OsString::from_vec(escaped)
}

/// A local word of [`words`] with `~` and `~/...` read from the home directory, as sftp's
/// lcd reads them (the password database's without `HOME`, as ssh takes it).
fn tilde(word: &OsStr) -> OsString {
    match after_home(word) {
        Some(rest) => {
            let mut path = escaped_all(&net_ssh::home());
            path.push(rest);
            path
        }
        None => word.to_owned(),
    }
}

/// What follows the `~` of a local word that starts from the home directory.
fn after_home(word: &OsStr) -> Option<&OsStr> {
    let rest = word.as_bytes().strip_prefix(b"~")?;
    (rest.is_empty() || rest.starts_with(b"/")).then(|| OsStr::from_bytes(rest))
}

/// A local path as typed, for what expands no wildcard (lcd, lmkdir).
fn local_path(word: &OsStr) -> PathBuf {
    match after_home(word) {
        Some(rest) => {
            let mut path = net_ssh::home().into_os_string();
            path.push(plain(rest));
            path.into()
        }
        None => plain(word).into(),
    }
}

/// Runs `command` in the local shell (an interactive one when it is empty), as sftp's `!`:
/// its failure is said and the session goes on, a Ctrl-C stopping it included.
fn local_shell(command: &OsStr) -> Result<(), Failure> {
    use std::sync::atomic::Ordering;
    // The signals are ours to watch from here on: a Ctrl-C before any transfer ended the
    // session (SIGINT's default) where it should end only the command.
    sftp::interruptible(net_ssh::Transfer::default())?;
    let command = command.as_bytes().trim_ascii();
    let shell = std::env::var_os("SHELL").filter(|s| !s.is_empty());
    let mut shell = std::process::Command::new(shell.unwrap_or_else(|| "/bin/sh".into()));
    if !command.is_empty() {
        shell.arg("-c").arg(OsStr::from_bytes(command));
    }
    sftp::LOCAL_COMMAND.store(true, Ordering::Relaxed);
    let status = shell.status();
    sftp::LOCAL_COMMAND.store(false, Ordering::Relaxed);
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => match status.code() {
            Some(code) => crate::exit::say(format_args!("Shell exited with status {code}")),
            None => crate::exit::say(format_args!("Shell exited abnormally")),
        },
        Err(e) => crate::exit::say(format_args!(
            "netkit: error: cannot run the local shell: {e}"
        )),
    }
    Ok(())
}

/// The local files a `put` names (a word of [`words`]): a wildcard's matches in sorted
/// order, as sftp expands them with glob(3), or the path itself.
fn local_matches(local: &OsStr) -> Result<Vec<PathBuf>, Failure> {
    net_ssh::local_glob(Path::new(&tilde(local)))
        .map_err(|e| match e {
            net_ssh::Error::Local { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                anyhow!("{}: no such file", net_ssh::name_shown(plain(local)))
            }
            other => other.into(),
        })
        .code(GENERIC)
}
