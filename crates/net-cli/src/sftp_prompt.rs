//! Where an sftp session's command lines come from: the prompt, with line editing, history
//! and Tab completion of command names and of local and remote paths (as sftp's own prompt
//! has them), or a batch file or pipe.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use net_ssh::Client;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Context, Editor, Helper};

/// The longest command line read from a batch or pipe: far past any real one (two paths of
/// PATH_MAX and flags).
const LINE_CAP: u64 = 64 << 10;

/// The session's command lines.
pub(crate) enum Input<'a> {
    Terminal(Box<Editor<Completion<'a>, DefaultHistory>>),
    Lines(Box<dyn BufRead>),
}

impl<'a> Input<'a> {
    /// The prompt on a terminal, completing `commands` and the paths of `client`.
    pub(crate) fn terminal(client: &'a Client, commands: Vec<String>) -> anyhow::Result<Self> {
        // A list of the choices when they differ past what they share, as sftp (libedit)
        // shows them.
        let config = rustyline::Config::builder()
            .completion_type(CompletionType::List)
            .build();
        let mut editor = Editor::with_config(config).context("cannot set up the prompt")?;
        editor.set_helper(Some(Completion {
            client,
            commands,
            cwd: PathBuf::new(),
        }));
        Ok(Input::Terminal(Box::new(editor)))
    }

    /// The next line; `None` at the end (Ctrl-D at the prompt). `cwd` is the remote
    /// directory relative paths complete in.
    pub(crate) fn next_line(&mut self, cwd: &Path) -> anyhow::Result<Option<String>> {
        match self {
            Input::Terminal(editor) => loop {
                if let Some(completion) = editor.helper_mut() {
                    completion.cwd = cwd.to_owned();
                }
                match editor.readline("sftp> ") {
                    Ok(line) => {
                        let _ = editor.add_history_entry(line.as_str());
                        return Ok(Some(line));
                    }
                    // Ctrl-C at the prompt drops the line typed, as at sftp's.
                    Err(ReadlineError::Interrupted) => {}
                    Err(ReadlineError::Eof) => return Ok(None),
                    Err(e) => return Err(e).context("reading the command line"),
                }
            },
            Input::Lines(reader) => {
                // Read up to a cap, as sftp reads a batch in lines of a fixed size: a file
                // with no line end (`-b /dev/zero`) grew one line until allocation failed and
                // the process aborted.
                let mut line = String::new();
                let read = std::io::Read::take(&mut *reader, LINE_CAP).read_line(&mut line)?;
                if read as u64 == LINE_CAP && !line.ends_with('\n') {
                    anyhow::bail!("a command line longer than {} KiB", LINE_CAP >> 10);
                }
                Ok((read > 0).then_some(line))
            }
        }
    }
}

/// Tab completion at the prompt.
pub(crate) struct Completion<'a> {
    client: &'a Client,
    commands: Vec<String>,
    cwd: PathBuf,
}

impl Completer for Completion<'_> {
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
        let typed = crate::sftp_session::plain(word);
        let (dir, prefix) = match typed.rfind('/') {
            Some(i) => typed.split_at(i + 1),
            None => ("", typed.as_str()),
        };
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
            .filter(|(name, _)| !name.chars().any(char::is_control))
            .filter(|(name, _)| {
                name.starts_with(prefix) && (prefix.starts_with('.') || !name.starts_with('.'))
            })
            .map(|(name, is_dir)| Pair {
                replacement: format!(
                    "{typed_dir}{}{}",
                    escaped(&name),
                    if is_dir { "/" } else { " " }
                ),
                display: if is_dir { format!("{name}/") } else { name },
            })
            .collect();
        pairs.sort_by(|a, b| a.display.cmp(&b.display));
        Ok((start, pairs))
    }
}

impl Completion<'_> {
    /// The names in remote directory `dir` (relative to the session's), and which are
    /// directories; none when it cannot be listed.
    fn remote_entries(&self, dir: &str) -> Vec<(String, bool)> {
        let path = match dir.strip_prefix("~/") {
            Some(rest) => Path::new(".").join(rest),
            None if dir.is_empty() => self.cwd.clone(),
            None => self.cwd.join(dir),
        };
        self.client
            .ls(&path)
            .map(|entries| entries.into_iter().map(|e| (e.name, e.is_dir)).collect())
            .unwrap_or_default()
    }
}

/// The names in local directory `dir`, and which are directories.
fn local_entries(dir: &str) -> Vec<(String, bool)> {
    let path = if dir.is_empty() { "." } else { dir };
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let is_dir = std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir());
                    (e.file_name().to_string_lossy().into_owned(), is_dir)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `path` as a word of a command line: a backslash before each character the line's
/// splitting or the wildcard expansion would read (`apos'x`, `back\slash` and `a*b` were
/// inserted as they are, an unbalanced quote or another file).
fn escaped(path: &str) -> String {
    let mut word = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_whitespace() || "\\'\"*?[]#~".contains(c) {
            word.push('\\');
        }
        word.push(c);
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

impl rustyline::hint::Hinter for Completion<'_> {
    type Hint = String;
}

impl rustyline::highlight::Highlighter for Completion<'_> {}

impl rustyline::validate::Validator for Completion<'_> {}

impl Helper for Completion<'_> {}

#[cfg(test)]
mod tests {
    use super::{escaped, word_start};
    use crate::sftp_session::plain;

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
            assert_eq!(plain(&escaped(name)), name);
        }
        assert_eq!(escaped("dir/a b*"), "dir/a\\ b\\*");
    }

    #[test]
    fn words_start_after_unescaped_spaces() {
        assert_eq!(word_start("get my\\ fi"), 4);
        assert_eq!(word_start("put a b"), 6);
        assert_eq!(word_start("ls"), 0);
    }
}
