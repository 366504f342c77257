//! `netkit`: the thin binary over net-socket, net-http and net-ssh.
//!
//! Argument parsing and printing only; every behaviour lives in a library crate.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "printing is this binary's job"
)]

mod askpass;
mod background;
mod connect;
mod exit;
mod http;
mod log_cap;
mod log_file;
mod log_queue;
mod progress;
mod serve;
mod sftp;
mod sftp_prompt;
mod sftp_session;
mod signals;
mod ssh;
mod stdio;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Network toolkit: TCP servers, an HTTP client and an SSH client in one binary.
#[derive(Parser)]
#[command(name = "netkit", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a built-in TCP service (echo, chat, http).
    Serve(serve::Args),
    /// Connect to HOST:PORT like `nc`: stdin to the socket, the socket to stdout.
    Connect(connect::Args),
    /// Send an HTTP request (httpie/xh syntax).
    Http(http::Args),
    /// Run a command over SSH on one or many hosts.
    // Boxed: its many flags (ssh takes all of OpenSSH's) made every command as large.
    Ssh(Box<ssh::Args>),
    /// Transfer and manage files over SFTP.
    Sftp(sftp::Args),
}

fn main() -> ExitCode {
    let cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // A server's access log is its output (as `python -m http.server`); clients stay quiet.
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level));
    // ssh's and sftp's -v and -q win over RUST_LOG, as the flags on the line are the newer word.
    let asked = match &cli.command {
        Command::Ssh(args) => args.connect.log_filter(),
        Command::Sftp(args) => args.log_filter(),
        Command::Http(args) => args.log_filter(),
        _ => None,
    };
    // `netkit ssh`'s ~v and ~V step the level while it runs, as ssh's: its filter lets our own
    // steps through and the maximum level, set after init, decides (RUST_LOG's filter stays).
    let stepped = match &cli.command {
        Command::Ssh(args) if std::env::var_os("RUST_LOG").is_none() => {
            Some(args.connect.log_level().unwrap_or(log::LevelFilter::Warn))
        }
        _ => None,
    };
    if stepped.is_some() {
        logger.parse_filters(ssh::OWN_STEPS);
    } else if let Some(filter) = asked {
        logger.parse_filters(filter);
    }
    let rust_log = std::env::var("RUST_LOG").ok();
    if !matches!(cli.command, Command::Serve(_)) {
        // Lines RUST_LOG chose name their module, as RUST_LOG's directives name them: a
        // flood had no name to turn down (`RUST_LOG=trace,ureq_proto=debug`). The lines -v
        // asks for and the warnings stay as ssh's and httpie's read.
        let targets = rust_log.is_some();
        // A client's warnings read as its errors do: one line, naming the program.
        logger.format(move |out, record| {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            // Warnings name what servers sent (paths, names): escaped, as errors are.
            let text = if targets && record.level() >= log::Level::Debug {
                format!("{}: {}", record.target(), record.args())
            } else {
                record.args().to_string()
            };
            writeln!(out, "netkit: {level}: {}", crate::exit::shown(&text))
        });
    } else {
        // env_logger's own format, with a timestamp that always formats: its own failed past
        // 9999-12-30, which made every log line (the access log's too) panic.
        logger.format(|out, record| {
            let level = out.default_level_style(record.level());
            let subtle = if level == env_logger::fmt::style::Style::new() {
                level
            } else {
                env_logger::fmt::style::AnsiColor::BrightBlack.on_default()
            };
            writeln!(
                out,
                "{subtle}[{subtle:#}{:.0} {level}{:<5}{level:#} {}{subtle}]{subtle:#} {}",
                log_timestamp(std::time::SystemTime::now()),
                record.level(),
                record.target(),
                record.args()
            )
        });
    }
    let log_file = match &cli.command {
        Command::Ssh(args) => args.connect.log_file.as_ref(),
        Command::Sftp(args) => args.log_file(),
        _ => None,
    };
    if let Some(path) = log_file {
        match log_file::open(path) {
            Ok(file) => {
                logger.target(env_logger::Target::Pipe(Box::new(file)));
            }
            Err(e) => {
                crate::exit::say(format_args!("netkit: error: -E {}: {e}", path.display()));
                // Each command's own code for its failures: ssh's 255, sftp's 1.
                let code = match cli.command {
                    Command::Sftp(_) => exit::GENERIC,
                    _ => ssh::OWN_ERROR,
                };
                return ExitCode::from(code);
            }
        }
    }
    if log_file.is_none()
        && matches!(cli.command, Command::Serve(_))
        && let Ok(queue) = log_queue::start()
    {
        logger.target(env_logger::Target::Pipe(Box::new(queue)));
        // A pipe target is never coloured by itself; on a terminal the log was, where
        // env_logger would colour it (not for TERM=dumb, CLICOLOR=0 or NO_COLOR).
        let asked_not = |name, value: &str| std::env::var_os(name).is_some_and(|v| v == value);
        if std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("RUST_LOG_STYLE").is_none()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && !asked_not("TERM", "dumb")
            && !asked_not("CLICOLOR", "0")
        {
            logger.write_style(env_logger::WriteStyle::Always);
        }
    }
    log_cap::Capped::new(logger.build(), rust_log.as_deref()).init();
    if let Some(level) = stepped {
        log::set_max_level(level);
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Connect(args) => connect::run(args),
        Command::Http(args) => http::run(args),
        Command::Ssh(args) => ssh::run(*args),
        Command::Sftp(args) => sftp::run(args),
    };
    exit::report(result)
}

/// The command line, with `netkit ssh`'s options after the destination read as OpenSSH reads
/// them (`ssh web -p 2222 -t top`: up to the command's first word or `--`), and `netkit
/// sftp`'s before the operation as sftp users write them.
fn parse(argv: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    let argv = split_joined_values(argv);
    let mut cli = match Cli::try_parse_from(&argv) {
        Ok(mut cli) => {
            note_options_before_flags(&mut cli, &argv);
            cli
        }
        Err(e) => {
            return sftp_options_first(&argv)
                .or_else(|| sftp_session(&argv))
                .ok_or(e);
        }
    };
    let Command::Ssh(args) = &mut cli.command else {
        return Ok(cli);
    };
    args.refuse_unknown_option(&argv)?;
    let words = args.words_after_destination();
    let Some(dest) = words.first().cloned() else {
        args.note_options_before_hosts();
        return Ok(cli);
    };
    let option_follows = words
        .get(1)
        .is_some_and(|w| w.len() > 1 && w.starts_with('-') && w != "--");
    let at = argv.len() - words.len();
    let before = argv[..at].to_vec();
    if !option_follows || !argv[at..].iter().eq(words.iter().map(std::ffi::OsStr::new)) {
        args.note_flags_before_destination(&before);
        note_options_before_destination(args, &before);
        return Ok(cli);
    }
    let mut without_dest = before.clone();
    without_dest.extend_from_slice(&argv[at + 1..]);
    let mut cli = Cli::try_parse_from(&without_dest)?;
    note_options_before_flags(&mut cli, &without_dest);
    if let Command::Ssh(args) = &mut cli.command {
        args.put_destination_first(dest)?;
        args.note_flags_before_destination(&before);
        note_options_before_destination(args, &before);
    }
    Ok(cli)
}

/// Notes, for `netkit ssh`, which of `-o User=` and `-o Port=` the words `before` DEST give
/// (see [`ssh::Args::note_options_before_destination`]).
fn note_options_before_destination(args: &mut ssh::Args, before: &[std::ffi::OsString]) {
    if let Ok(Cli {
        command: Command::Ssh(given),
        ..
    }) = Cli::try_parse_from(before)
    {
        args.note_options_before_destination(&given);
    }
}

/// Notes, for `netkit ssh`, which of an `-o User=` or `-o Port=` and its flag came first in
/// `argv`, the words `cli` was parsed from (the parsed struct keeps no order).
fn note_options_before_flags(cli: &mut Cli, argv: &[std::ffi::OsString]) {
    use clap::CommandFactory as _;
    let Command::Ssh(args) = &mut cli.command else {
        return;
    };
    if let Ok(matches) = Cli::command().try_get_matches_from(argv)
        && let Some(("ssh", matches)) = matches.subcommand()
    {
        args.note_options_before_flags(matches);
    }
}

/// `netkit ssh`'s words with each value joined to its option letter split off, as getopt
/// reads them (`-p2222`, `-oStrictHostKeyChecking=no`, `-i~/.ssh/k`, `-Cp2222`; sftp -S and
/// scp -S pass `-oForwardX11 no`): clap, whose last positional takes words starting with `-`
/// for the command, took such a word for the command. Options end at `--`, or at the word
/// after DEST (the command's first), as in ssh.
fn split_joined_values(argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory as _;
    if argv.get(1).is_none_or(|w| w != "ssh") {
        return argv;
    }
    let mut cli = Cli::command();
    // Built, clap has settled how many values each option takes.
    cli.build();
    let Some(ssh) = cli.find_subcommand("ssh") else {
        return argv;
    };
    let takes_value = |arg: &clap::Arg| arg.get_num_args().is_some_and(|n| n.takes_values());
    let short = |c: char| ssh.get_arguments().find(|a| a.get_short() == Some(c));
    let long_with_value = |name: &str| {
        ssh.get_arguments()
            .any(|a| a.get_long() == Some(name) && takes_value(a))
    };
    let mut out = argv[..2].to_vec();
    let mut words = argv[2..].iter();
    // With --hosts there is no DEST: the first word that is no option is the command's.
    let mut dest_seen = false;
    while let Some(word) = words.next() {
        out.push(word.clone());
        let Some(text) = word.to_str() else { continue };
        if text == "--" {
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            dest_seen |= long.starts_with("hosts");
            if !long.contains('=') && long_with_value(long) {
                out.extend(words.next().cloned());
            }
            continue;
        }
        let Some(cluster) = text.strip_prefix('-').filter(|c| !c.is_empty()) else {
            if dest_seen {
                break;
            }
            dest_seen = true;
            continue;
        };
        for (at, c) in cluster.char_indices() {
            let Some(arg) = short(c) else { break };
            if !takes_value(arg) {
                continue;
            }
            let value = &cluster[at + c.len_utf8()..];
            if value.is_empty() {
                out.extend(words.next().cloned());
            } else {
                out.pop();
                out.push(format!("-{}", &cluster[..at + c.len_utf8()]).into());
                out.push(value.into());
            }
            break;
        }
    }
    out.extend(words.cloned());
    out
}

/// `netkit sftp -P 2222 get ...` read as `netkit sftp get -P 2222 ...`: sftp and scp users
/// put the connection's options first. Only tried once the line as given is refused, and
/// taken only if the operation then parses.
fn sftp_options_first(argv: &[std::ffi::OsString]) -> Option<Cli> {
    if argv.get(1)? != "sftp" || !argv.get(2)?.to_string_lossy().starts_with('-') {
        return None;
    }
    let op = argv
        .iter()
        .skip(3)
        .position(|w| sftp::OPERATIONS.iter().any(|op| w == op))?
        + 3;
    let mut reordered = argv[..2].to_vec();
    reordered.push(argv[op].clone());
    reordered.extend_from_slice(&argv[2..op]);
    reordered.extend_from_slice(&argv[op + 1..]);
    Cli::try_parse_from(reordered).ok()
}

/// `netkit sftp [-b FILE] [OPTIONS] DEST` (no operation): a session, as `sftp DEST`.
fn sftp_session(argv: &[std::ffi::OsString]) -> Option<Cli> {
    if argv.get(1)? != "sftp" || argv.len() < 3 {
        return None;
    }
    let rest = &argv[2..];
    let asks_help = ["-h", "--help", "-V", "--version", "help"];
    if rest
        .iter()
        .any(|w| sftp::OPERATIONS.iter().chain(&asks_help).any(|op| w == op))
    {
        return None;
    }
    let mut session = argv[..2].to_vec();
    session.push("session".into());
    session.extend_from_slice(rest);
    Cli::try_parse_from(session).ok()
}

/// Help and version as clap prints them; any other argument error on one line, as ours are,
/// with the accepted values when clap knows them, and exit 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let line = exit::clap_line(e);
    exit::say(format_args!("netkit: error: {line}; see --help"));
    // `netkit ssh` keeps OpenSSH's codes: 255 for its own errors, bad arguments included, so
    // that scripts tell them from the remote command's.
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "ssh") {
        return ExitCode::from(ssh::OWN_ERROR);
    }
    ExitCode::from(exit::USAGE)
}

/// Starts `work` on a thread of its own: out of threads (a process or cgroup limit), an error
/// saying so, where `std::thread::spawn` panics (exit 101).
fn spawn<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<T>> {
    use anyhow::Context as _;
    std::thread::Builder::new()
        .spawn(work)
        .context("cannot start a thread")
}

/// Whether standard input is /dev/null, as it is once closed (Rust opens /dev/null in
/// place of a closed one): read as a body, it sent nothing in place of the data meant.
pub(crate) fn stdin_is_null() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // /dev/stdin is fd 0's file, followed through /proc/self/fd.
    match (
        std::fs::metadata("/dev/stdin"),
        std::fs::metadata("/dev/null"),
    ) {
        (Ok(stdin), Ok(null)) => (stdin.dev(), stdin.ino()) == (null.dev(), null.ino()),
        _ => false,
    }
}

/// Asks for a password on the terminal, its echo off. rpassword reads in raw mode and, on
/// Ctrl-C, raises SIGINT before it puts the terminal back: the process died and left the
/// shell with no echo, line editing or Ctrl-C. SIGINT is held for this thread meanwhile,
/// and comes once the terminal is back (ending the process as Ctrl-C does, or going to
/// whoever watches for it).
fn prompt_password(prompt: impl ToString) -> std::io::Result<String> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut held = SigSet::empty();
    held.add(Signal::SIGINT);
    let mut before = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&held), Some(&mut before))?;
    let password = rpassword::prompt_password(prompt);
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None)?;
    password
}

/// `now` as a log line's timestamp, or the nearest one jiff can say (its range ends a day
/// short of 9999-12-31 and begins in -9999).
fn log_timestamp(now: std::time::SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(now).unwrap_or(if now > std::time::SystemTime::UNIX_EPOCH {
        jiff::Timestamp::MAX
    } else {
        jiff::Timestamp::MIN
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_timestamps_past_9999_or_before_1970_still_format() {
        use std::time::{Duration, SystemTime};
        let year_10000 = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_387_200);
        let shown = format!("{:.0}", super::log_timestamp(year_10000));
        assert_eq!(shown, "9999-12-30T22:00:00Z");
        let year_1960 = SystemTime::UNIX_EPOCH - Duration::from_secs(315_619_200);
        let shown = format!("{:.0}", super::log_timestamp(year_1960));
        assert_eq!(shown, "1960-01-01T00:00:00Z");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn sftp_operations_are_named_as_clap_knows_them() {
        use clap::CommandFactory as _;
        let cli = super::Cli::command();
        let sftp = cli.find_subcommand("sftp").unwrap();
        let mut known: Vec<_> = sftp
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name())
            .collect();
        known.sort_unstable();
        let mut ours = crate::sftp::OPERATIONS.to_vec();
        ours.sort_unstable();
        assert_eq!(known, ours);
    }

    #[test]
    fn every_command_s_help_has_examples_and_exit_codes() {
        // As the README promises: the sftp operations had neither.
        use clap::CommandFactory as _;
        fn check(command: &clap::Command, path: &str) {
            let path = format!("{path} {}", command.get_name());
            let visible: Vec<_> = command
                .get_subcommands()
                .filter(|c| !c.is_hide_set() && c.get_name() != "help")
                .collect();
            if visible.is_empty() {
                let after = command
                    .get_after_help()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                assert!(after.contains("Examples:"), "{path}: no examples");
                assert!(after.contains("Exit status"), "{path}: no exit status");
            }
            for sub in visible {
                check(sub, &path);
            }
        }
        check(&super::Cli::command(), "");
    }

    #[test]
    fn sftp_options_may_come_before_the_operation() {
        let argv = |line: &str| line.split(' ').map(Into::into).collect::<Vec<_>>();
        assert!(super::parse(argv("netkit sftp -P 2222 -v get h:/x /tmp")).is_ok());
        assert!(super::parse(argv("netkit sftp -P 2222 -Z get h:/x /tmp")).is_err());
        assert!(super::parse(argv("netkit sftp -P 2222")).is_err());
    }
}
