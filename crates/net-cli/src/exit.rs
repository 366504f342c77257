//! Errors that carry the process exit code, and the one place that prints them.

use std::io::Write as _;
use std::process::ExitCode;

/// A failure of a subcommand: the error to print and the exit code to leave with.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

/// Exit code for failures that no subcommand gave a more specific code.
pub const GENERIC: u8 = 1;
/// Exit code for bad input: a bad address, argument or file named on the command line.
pub const USAGE: u8 = 2;

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure {
            code: GENERIC,
            error: error.into(),
        }
    }
}

/// Attaches an exit code to an error, e.g. `parse(x).code(2)?`.
pub trait WithCode<T> {
    fn code(self, code: u8) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> WithCode<T> for Result<T, E> {
    fn code(self, code: u8) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            code,
            error: e.into(),
        })
    }
}

/// The result of every subcommand.
pub type Outcome = Result<ExitCode, Failure>;

/// Prints a failure as one line on stderr and turns the outcome into the process exit code.
pub fn report(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            if is_broken_pipe(&failure.error) {
                // `netkit ... | head` closing early is not an error (as ripgrep does).
                return ExitCode::SUCCESS;
            }
            say_error(&failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// `netkit: error: ...` on stderr, in one line, what a server sent in it escaped; a file that
/// changed while it was copied is `netkit: warning: ...`, as it was copied all the same (tar
/// says it and exits 1).
pub fn say_error(error: &anyhow::Error) {
    let changed = error.chain().any(|cause| {
        cause
            .downcast_ref::<net_ssh::Error>()
            .is_some_and(|e| matches!(e, net_ssh::Error::Changed { .. }))
    });
    let level = if changed { "warning" } else { "error" };
    say(format_args!("netkit: {level}: {}", shown(&one_line(error))));
}

/// Writes a line to stderr, or to ssh -E's log file once it takes them
/// ([`crate::log_file::take_errors`]). A stderr that cannot take it (closed, a full disk)
/// changes nothing else: `eprintln!` panicked there, exit 101 in place of the documented code.
pub fn say(line: std::fmt::Arguments<'_>) {
    let _ = match crate::log_file::errors() {
        Some(mut file) => writeln!(file, "{line}"),
        None => writeln!(std::io::stderr(), "{line}"),
    };
}

/// Writes to stderr, without a line end, whatever -E says: what the session shows the person
/// at the terminal (escape help, `~.`'s goodbye), which ssh writes there and not to its log.
pub fn say_part(text: std::fmt::Arguments<'_>) {
    let _ = write!(std::io::stderr(), "{text}");
}

/// Writes a line to stdout; the error (a full disk, a reader gone) is the caller's to
/// report, where `println!` panicked.
pub fn out(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    writeln!(std::io::stdout(), "{line}")
}

/// As [`out`], without the line end.
pub fn out_part(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    write!(std::io::stdout(), "{text}")
}

/// Text from elsewhere (a server's name, message or path) as sftp and ssh print it: control
/// characters as octal escapes (`\\033`), so that it cannot clear the screen, forge lines or
/// write the clipboard (OSC 52) of whoever reads it on a terminal; bidi overrides and isolates
/// too, as OpenSSH escapes them: `fail-\u{202e}txt.exe` read as `fail-exe.txt`.
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(hidden) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            for byte in c.to_string().bytes() {
                out.push_str(&format!("\\{byte:03o}"));
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// A name or path from elsewhere as [`shown`] shows text, and a byte that is no part of a
/// UTF-8 character as an octal escape too (`latin\351`), as sftp's `ls` shows it: shown
/// lossily, `latin` and byte 0xE9 looked the same as the name `latin` and U+FFFD. The bytes
/// are spelled by [`net_ssh::name_shown`], as in net-ssh's errors: an error names a file as
/// `ls` lists it.
pub fn shown_name(name: &std::ffi::OsStr) -> String {
    shown(&net_ssh::name_shown(name)).into_owned()
}

/// The error and its causes joined by `: `, leaving out a cause whose text the line already
/// holds: our library errors name their I/O cause in their own message and also expose it as
/// `source()`, and anyhow's `{:#}` printed it twice ("Connection refused: Connection refused").
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

/// A clap error as one line, as ours are (the command line's and the sftp session's). clap
/// puts what is missing or conflicting on the lines below its first (`cannot be used with:`,
/// `were not provided:`): those are joined onto it. The value or argument at fault is escaped
/// as [`shown`] escapes, as a newline in it cut the line in two. The accepted values come last
/// when clap knows them.
pub fn clap_line(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let mut text = error.render().to_string();
    for kind in [ContextKind::InvalidValue, ContextKind::InvalidArg] {
        if let Some(ContextValue::String(word)) = error.get(kind)
            && shown(word) != word.as_str()
        {
            // Quoted, so a lone `\n` replaces the value's newline, not the message's.
            text = text.replacen(&format!("'{word}'"), &format!("'{}'", shown(word)), 1);
        }
    }
    // The message ends at the first blank line; usage, tips and "For more information" follow.
    let mut lines = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        // Given below as "one of", in our words.
        .filter(|l| !l.starts_with("[possible values"));
    let mut line = lines
        .next()
        .unwrap_or("bad arguments")
        .trim_start_matches("error: ")
        .to_owned();
    let listed: Vec<&str> = lines.collect();
    if !listed.is_empty() {
        line.push(' ');
        line.push_str(&listed.join(", "));
    }
    if let Some(ContextValue::Strings(values)) = error.get(ContextKind::ValidValue)
        && !values.is_empty()
    {
        line.push_str(&format!(" (one of: {})", values.join(", ")));
    }
    line
}

/// A reader of our output gone: quiet, as `cat | head`. Not a file named on the command line
/// (a FIFO or `/dev/stdout` given as the target of a download or an sftp get), whose reader
/// leaving early lost data: that is an error, as curl and sftp report it.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let named_file = error.chain().any(|cause| {
        cause
            .downcast_ref::<net_ssh::Error>()
            .is_some_and(|e| matches!(e, net_ssh::Error::Local { .. }))
            || cause
                .downcast_ref::<net_http::Error>()
                .is_some_and(|e| matches!(e, net_http::Error::File { .. }))
    });
    !named_file
        && error.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        })
}

#[cfg(test)]
mod tests {
    use super::{one_line, shown};
    use anyhow::Context as _;

    #[test]
    fn bidi_overrides_are_escaped_as_controls_are() {
        assert_eq!(
            shown("/evil/fail-\u{202e}txt.exe"),
            "/evil/fail-\\342\\200\\256txt.exe"
        );
        assert_eq!(shown("a\u{2066}b\x07"), "a\\342\\201\\246b\\007");
        assert_eq!(shown("caf\u{e9} \u{5b57}"), "caf\u{e9} \u{5b57}");
    }

    /// Shaped like our library errors: the cause in the message and as `source()`.
    #[derive(Debug)]
    struct Connect {
        source: std::io::Error,
    }

    impl std::fmt::Display for Connect {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot connect: {}", self.source)
        }
    }

    impl std::error::Error for Connect {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = anyhow::Error::new(Connect { source: refused() });
        assert_eq!(one_line(&error), format!("cannot connect: {}", refused()));
        let error = Err::<(), _>(refused())
            .context("reading key.pem")
            .unwrap_err();
        assert_eq!(one_line(&error), format!("reading key.pem: {}", refused()));
    }
}
