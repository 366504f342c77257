//! Where an sftp session's command lines come from: the prompt, with line editing, history
//! and Tab completion of command names and of local and remote paths (as sftp's own prompt
//! has them), or a batch file or pipe.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, IsTerminal as _, Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use anyhow::Context as _;
use net_ssh::Client;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Context, Editor, Helper};

/// The longest command line read from a batch or pipe: far past any real one (two paths of
/// PATH_MAX and flags).
const LINE_CAP: u64 = 64 << 10;

/// Where the lines come from.
pub(crate) enum Source {
    /// The prompt on a terminal, completing these command names and paths.
    Terminal(Vec<String>),
    /// Standard input.
    Stdin,
    /// A batch file.
    File(std::fs::File),
}

/// The session's command lines, read on a thread of their own while this one keeps the
/// connection up ([`Client::idle_until`]): waiting for a line at the prompt or in a batch
/// answered none of the server's keepalives, and sshd's `ClientAliveInterval` hung up on an
/// idle session that OpenSSH's sftp keeps.
pub(crate) struct Input {
    /// Asks the reader for the next line, with the remote directory paths complete in.
    asks: Sender<PathBuf>,
    /// What the reader has: a line, or a completion to list remote names for.
    events: Receiver<Event>,
    /// Readable once the reader has sent an event.
    woken: UnixStream,
}

/// What the reading thread sends.
enum Event {
    /// A line's bytes: a batch's need not be UTF-8.
    Line(anyhow::Result<Option<Vec<u8>>>),
    /// The names in a remote directory, for Tab: only this thread may use the client.
    Remote(PathBuf, Sender<Vec<(OsString, bool)>>),
}

/// The reading thread's way back: the events, and a byte on the socket after each.
#[derive(Clone)]
struct Back {
    events: Sender<Event>,
    wake: std::sync::Arc<UnixStream>,
}

impl Back {
    /// Sends `event`; false when the session is gone.
    fn send(&self, event: Event) -> bool {
        let sent = self.events.send(event).is_ok();
        let _ = (&*self.wake).write(&[1]);
        sent
    }
}

impl Input {
    /// Starts reading `source`.
    pub(crate) fn start(source: Source) -> anyhow::Result<Input> {
        let (woken, wake) = UnixStream::pair().context("cannot make the prompt's socket pair")?;
        woken
            .set_nonblocking(true)
            .context("cannot make the prompt's socket pair")?;
        let (asks, asked) = std::sync::mpsc::channel();
        let (events, received) = std::sync::mpsc::channel();
        let back = Back {
            events,
            wake: std::sync::Arc::new(wake),
        };
        crate::spawn(move || read_lines(&source, &asked, &back))?;
        Ok(Input {
            asks,
            events: received,
            woken,
        })
    }

    /// The next line, its bytes; `None` at the end (Ctrl-D at the prompt). `cwd` is the remote
    /// directory relative paths complete in. Until it comes, the connection of `client` is
    /// kept up; one that is lost meanwhile is told by the next command.
    pub(crate) fn next_line(
        &mut self,
        client: &Client,
        cwd: &Path,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        if self.asks.send(cwd.to_owned()).is_err() {
            return Ok(None);
        }
        let mut serving = !client.is_closed();
        loop {
            // Before looking for an event: one sent after that wakes the wait.
            let mut drained = [0; 64];
            while matches!((&self.woken).read(&mut drained), Ok(1..)) {}
            let event = match self.events.try_recv() {
                Ok(event) => event,
                Err(TryRecvError::Disconnected) => return Ok(None),
                Err(TryRecvError::Empty) if serving => {
                    if let Err(e) = client.idle_until(&self.woken) {
                        log::debug!("while waiting for a command: {e}");
                        serving = false;
                    }
                    continue;
                }
                Err(TryRecvError::Empty) => match self.events.recv() {
                    Ok(event) => event,
                    Err(_) => return Ok(None),
                },
            };
            match event {
                Event::Line(line) => return line,
                Event::Remote(dir, answer) => {
                    let names = client
                        .ls(&dir)
                        .map(|entries| entries.into_iter().map(|e| (e.name, e.is_dir)).collect())
                        .unwrap_or_default();
                    let _ = answer.send(names);
                }
            }
        }
    }
}

/// The reading thread: a line of `source` for each directory `asked` sends, until the
/// session is gone.
fn read_lines(source: &Source, asked: &Receiver<PathBuf>, back: &Back) {
    match source {
        Source::Terminal(commands) => {
            // A list of the choices when they differ past what they share, as sftp (libedit)
            // shows them.
            // With stdout a file (`netkit sftp host > log`), the prompt and the line typed are
            // drawn on the terminal, as sftp draws them: on stdout the user typed blind and
            // the log filled with the editor's escapes. On a terminal, stdio as before (a
            // terminal that is not the controlling one is then still the one drawn on).
            let behavior = if std::io::stdout().is_terminal() {
                rustyline::config::Behavior::Stdio
            } else {
                rustyline::config::Behavior::PreferTerm
            };
            let config = rustyline::Config::builder()
                .completion_type(CompletionType::List)
                .behavior(behavior)
                .build();
            let mut editor: Editor<Completion, DefaultHistory> =
                match Editor::with_config(config).context("cannot set up the prompt") {
                    Ok(editor) => editor,
                    Err(e) => {
                        if asked.recv().is_ok() {
                            back.send(Event::Line(Err(e)));
                        }
                        return;
                    }
                };
            editor.set_helper(Some(Completion {
                back: back.clone(),
                commands: commands.clone(),
                cwd: PathBuf::new(),
            }));
            while let Ok(cwd) = asked.recv() {
                if let Some(completion) = editor.helper_mut() {
                    completion.cwd = cwd;
                }
                if !back.send(Event::Line(prompt(&mut editor))) {
                    return;
                }
            }
        }
        Source::Stdin => lines(&mut std::io::stdin().lock(), asked, back),
        Source::File(file) => lines(&mut std::io::BufReader::new(file), asked, back),
    }
}

/// A line typed at the prompt; `None` at Ctrl-D.
fn prompt(editor: &mut Editor<Completion, DefaultHistory>) -> anyhow::Result<Option<Vec<u8>>> {
    loop {
        match editor.readline("sftp> ") {
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                return Ok(Some(line.into_bytes()));
            }
            // Ctrl-C at the prompt drops the line typed, as at sftp's.
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => return Ok(None),
            Err(e) => return Err(e).context("reading the command line"),
        }
    }
}

/// The lines of a batch or pipe, one for each ask. One that cannot be read is told by its
/// number, as the batch stops there.
fn lines(reader: &mut dyn BufRead, asked: &Receiver<PathBuf>, back: &Back) {
    let mut number = 0_u64;
    while asked.recv().is_ok() {
        number += 1;
        let line = batch_line(reader).with_context(|| format!("batch line {number}"));
        if !back.send(Event::Line(line)) {
            return;
        }
    }
}

/// The next line of a batch or pipe, its bytes as they are (a name in it need not be UTF-8,
/// as sftp takes it); `None` at its end.
fn batch_line(reader: &mut dyn BufRead) -> anyhow::Result<Option<Vec<u8>>> {
    // Read up to a cap, as sftp reads a batch in lines of a fixed size: a file with no line
    // end (`-b /dev/zero`) grew one line until allocation failed and the process aborted.
    let mut line = Vec::new();
    let read = std::io::Read::take(&mut *reader, LINE_CAP)
        .read_until(b'\n', &mut line)
        .context("cannot read it")?;
    if read as u64 == LINE_CAP && !line.ends_with(b"\n") {
        anyhow::bail!("a command line longer than {} KiB", LINE_CAP >> 10);
    }
    Ok((read > 0).then_some(line))
}

/// Tab completion at the prompt.
pub(crate) struct Completion {
    back: Back,
    commands: Vec<String>,
    cwd: PathBuf,
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = word_start(before);
        let word = &before[start..];
        let mut words = before[..start].split_whitespace();
        let Some(command) = words.next() else {
            let names = self.commands.iter().filter(|c| c.starts_with(word));
            let pairs = names.map(|name| Pair {
                display: name.clone(),
                replacement: format!("{name} "),
            });
            return Ok((start, pairs.collect()));
        };
        // Which argument this is, flags aside: put's first is local, get's second.
        let position = words.filter(|w| !w.starts_with('-')).count();
        let local = match command {
            "lcd" | "lls" | "lmkdir" => true,
            "put" | "reput" => position == 0,
            "get" | "reget" => position == 1,
            _ => false,
        };
        // The word's bytes: `\351` typed (or completed) is the byte 0xE9.
        let typed = crate::sftp_session::typed_word(word);
        let typed = typed.as_bytes();
        let (dir, prefix) = match typed.iter().rposition(|&b| b == b'/') {
            Some(i) => typed.split_at(i + 1),
            None => (&[][..], typed),
        };
        let dir = OsStr::from_bytes(dir);
        let entries = if local {
            local_entries(dir)
        } else {
            self.remote_entries(dir)
        };
        // The directory as typed (`~/` stays the home), the name escaped for the line.
        let typed_dir = &word[..word.rfind('/').map_or(0, |i| i + 1)];
        let mut pairs: Vec<Pair> = entries
            .into_iter()
            // A control character cannot be typed back in: such a name is not offered.
            .filter(|(name, _)| !name.to_string_lossy().chars().any(char::is_control))
            .filter(|(name, _)| {
                let name = name.as_bytes();
                name.starts_with(prefix) && (prefix.starts_with(b".") || !name.starts_with(b"."))
            })
            .map(|(name, is_dir)| Pair {
                replacement: format!(
                    "{typed_dir}{}{}",
                    escaped(&name),
                    if is_dir { "/" } else { " " }
                ),
                // As ls lists it: `latin\351`.
                display: format!(
                    "{}{}",
                    crate::exit::shown_name(&name),
                    if is_dir { "/" } else { "" }
                ),
            })
            .collect();
        pairs.sort_by(|a, b| a.display.cmp(&b.display));
        Ok((start, pairs))
    }
}

impl Completion {
    /// The names in remote directory `dir` (relative to the session's), and which are
    /// directories; none when it cannot be listed. Asked of the session's thread, which
    /// holds the client.
    fn remote_entries(&self, dir: &OsStr) -> Vec<(OsString, bool)> {
        let path = match dir.as_bytes().strip_prefix(b"~/") {
            Some(rest) => Path::new(".").join(OsStr::from_bytes(rest)),
            None if dir.is_empty() => self.cwd.clone(),
            None => self.cwd.join(dir),
        };
        let (answer, answered) = std::sync::mpsc::channel();
        if !self.back.send(Event::Remote(path, answer)) {
            return Vec::new();
        }
        answered.recv().unwrap_or_default()
    }
}

/// The names in local directory `dir`, and which are directories.
fn local_entries(dir: &OsStr) -> Vec<(OsString, bool)> {
    let path = if dir.is_empty() { ".".as_ref() } else { dir };
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let is_dir = std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir());
                    (e.file_name(), is_dir)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `path` as a word of a command line: a backslash before each character the line's
/// splitting or the wildcard expansion would read (`apos'x`, `back\slash` and `a*b` were
/// inserted as they are, an unbalanced quote or another file), and a byte that is no part of
/// a UTF-8 character as its octal escape (`latin\351`), which the line reads back as that
/// byte: the line is text, and left out, such a name could not be completed at all.
fn escaped(path: &OsStr) -> String {
    let mut word = String::with_capacity(path.len());
    for chunk in path.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_whitespace() || "\\'\"*?[]#~".contains(c) {
                word.push('\\');
            }
            word.push(c);
        }
        word.push_str(&net_ssh::name_shown(OsStr::from_bytes(chunk.invalid())));
    }
    word
}

/// Where the word being typed starts: after the last space that no backslash escapes.
fn word_start(before: &str) -> usize {
    let bytes = before.as_bytes();
    (0..bytes.len())
        .rev()
        .find(|&i| bytes[i] == b' ' && (i == 0 || bytes[i - 1] != b'\\'))
        .map_or(0, |i| i + 1)
}

impl rustyline::hint::Hinter for Completion {
    type Hint = String;
}

impl rustyline::highlight::Highlighter for Completion {}

impl rustyline::validate::Validator for Completion {}

impl Helper for Completion {}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt as _;

    use super::{escaped, word_start};
    use crate::sftp_session::typed_word;

    #[test]
    fn completed_names_are_escaped_for_the_line() {
        for name in [
            "apos'x",
            "back\\slash",
            "a b",
            "star*",
            "log[1]",
            "~home",
            "q\"uote",
        ] {
            assert_eq!(typed_word(&escaped(name.as_ref())), name);
        }
        assert_eq!(escaped("dir/a b*".as_ref()), "dir/a\\ b\\*");
        let latin = OsStr::from_bytes(b"dir/latin\xe9 x");
        assert_eq!(escaped(latin), "dir/latin\\351\\ x");
        assert_eq!(typed_word(&escaped(latin)), latin);
    }

    #[test]
    fn words_start_after_unescaped_spaces() {
        assert_eq!(word_start("get my\\ fi"), 4);
        assert_eq!(word_start("put a b"), 6);
        assert_eq!(word_start("ls"), 0);
    }
}
