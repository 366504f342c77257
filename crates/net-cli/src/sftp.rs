//! `netkit sftp`: argument parsing and printing only (OpenSSH sftp/scp words and flags).

use std::borrow::Cow;
use std::io::IsTerminal as _;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::anyhow;
use net_ssh::{Client, Transfer};

use crate::exit::{Failure, GENERIC, Outcome, USAGE, WithCode};
use crate::ssh::{ConnectArgs, connect};

/// An operation's `--help` end: its example, then the exit status all of them share.
macro_rules! op_help {
    ($($example:literal),+) => {
        concat!(
            "Examples:\n",
            $("  ", $example, "\n",)+
            "\nExit status: 0 done, 1 failure (connection, authentication, remote or local \
             file), 2 bad arguments, 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP."
        )
    };
}

/// Arguments of `netkit sftp`.
#[derive(clap::Args)]
#[command(after_help = "\
`netkit sftp [-b BATCHFILE] [user@]host[:DIR]` runs sftp's commands over one connection (put,
get, reput, reget, ls, cd, pwd, mkdir, rm, rmdir, chmod, chown, chgrp, rename, ln -s, symlink,
lcd, lls, lpwd, lmkdir, !COMMAND, progress, version, quit; `help` lists them), read from the
batch file (`-`: stdin) or typed at the prompt; in a batch the first that fails ends it unless
its line starts with `-`, and no progress bars are drawn until `progress`, as in sftp -b.
`netkit sftp [user@]host:FILE [LOCAL]` fetches FILE, as sftp.

Remote paths are [user@]host:PATH; the port is -P as in sftp and scp. Uploads go to a temporary
name renamed into place: an interrupted upload never leaves a truncated file. Ctrl-C (SIGINT),
SIGTERM or SIGHUP (the terminal closed) stops a transfer and removes its partial file; a second one
exits at once.

Exit status: 0 done, 1 failure (connection, authentication, remote or local file; also a file
that changed size while it was copied: it is kept as read, with a warning naming both sizes, as
tar's \"file changed as we read it\"), 2 bad arguments, 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP. The password comes from NETKIT_SSH_PASSWORD or a prompt, never from argv.

Examples:
  netkit sftp put -r ./site deploy@host:/srv/www
  netkit sftp get -P 2222 host:/var/log/syslog ./syslog
  netkit sftp ls -l host:/tmp")]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Upload files: put [-r] [-p] [-f] [-a] LOCAL... [user@]host:PATH
    #[command(after_help = op_help!("netkit sftp put -r ./site deploy@host:/srv/www", "netkit sftp put -a big.iso host:/data/   (go on from an interrupted put)", "tar c . | netkit sftp put - host:/backup/site.tar"))]
    Put {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        flags: TransferFlags,
        /// LOCAL... then [user@]host:PATH; LOCAL `-` is standard input.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Download: get [-r] [-p] [-f] [-a] [user@]host:PATH [LOCAL]
    #[command(after_help = op_help!("netkit sftp get -P 2222 host:/var/log/syslog ./syslog", "netkit sftp get -r host:'/srv/logs/2026-*' ./logs", "netkit sftp get host:/etc/hosts - | grep db"))]
    Get {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        flags: TransferFlags,
        /// [user@]host:PATH
        remote: String,
        /// Local file or directory (default: the current directory, as sftp's get); `-`:
        /// standard output.
        #[arg(default_value = ".")]
        local: PathBuf,
    },
    /// List a directory: ls [-1afhlnrSt] [user@]host:PATH (as sftp's ls; -l is the long
    /// form here, so the user is `--login USER`)
    #[command(disable_help_flag = true)]
    #[command(after_help = op_help!("netkit sftp ls -l host:/tmp", "netkit sftp ls -lt --login deploy host:/srv/www"))]
    Ls {
        /// Port.
        #[arg(short = 'P', value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        flags: ListFlags,
        /// [user@]host:PATH
        remote: String,
    },
    /// Create a directory: mkdir [-p] [user@]host:PATH
    #[command(after_help = op_help!("netkit sftp mkdir -p host:/srv/www/releases/v3"))]
    Mkdir {
        #[command(flatten)]
        common: Common,
        /// Create missing parents; an existing directory is fine.
        #[arg(short = 'p')]
        parents: bool,
        /// [user@]host:PATH
        remote: String,
    },
    /// Remove a file (or, with -d, an empty directory).
    #[command(after_help = op_help!("netkit sftp rm host:'/tmp/upload-*.tmp'", "netkit sftp rm -d host:/tmp/empty-dir"))]
    Rm {
        #[command(flatten)]
        common: Common,
        /// Remove an empty directory.
        #[arg(short = 'd')]
        dir: bool,
        /// [user@]host:PATH
        remote: String,
    },
    /// Remove an empty directory: rmdir [user@]host:PATH (as rm -d)
    #[command(after_help = op_help!("netkit sftp rmdir host:/tmp/empty-dir"))]
    Rmdir {
        #[command(flatten)]
        common: Common,
        /// [user@]host:PATH
        remote: String,
    },
    /// Change permissions: chmod MODE [user@]host:PATH (MODE in octal, as sftp's chmod)
    #[command(after_help = op_help!("netkit sftp chmod 640 host:'/etc/app/*.conf'"))]
    Chmod {
        #[command(flatten)]
        common: Common,
        /// Octal mode, such as 644 or 0755.
        #[arg(value_parser = octal_mode)]
        mode: u32,
        /// [user@]host:PATH (wildcards in any part, as for rm)
        remote: String,
    },
    /// Change the owner: chown UID [user@]host:PATH (a number, as sftp's chown)
    #[command(after_help = op_help!("netkit sftp chown 1000 host:/srv/www/index.html"))]
    Chown {
        #[command(flatten)]
        common: Common,
        /// The new owner's user id.
        uid: u32,
        /// [user@]host:PATH (wildcards in any part, as for rm)
        remote: String,
    },
    /// Change the group: chgrp GID [user@]host:PATH (a number, as sftp's chgrp)
    #[command(after_help = op_help!("netkit sftp chgrp 33 host:/srv/www/index.html"))]
    Chgrp {
        #[command(flatten)]
        common: Common,
        /// The new group id.
        gid: u32,
        /// [user@]host:PATH (wildcards in any part, as for rm)
        remote: String,
    },
    /// A session over one connection, as sftp's: commands from a batch file (-b FILE, `-`
    /// for stdin) or typed at the prompt. Reached as `netkit sftp [-b FILE] DEST`.
    #[command(hide = true)]
    Session {
        #[command(flatten)]
        common: Common,
        /// The commands, one per line (`-`: stdin); the first that fails ends the session
        /// unless it starts with `-`, as in sftp's batch mode.
        #[arg(short = 'b', value_name = "BATCHFILE")]
        batch: Option<PathBuf>,
        /// Flush each file a put or get writes to disk before it takes its final name (as
        /// `sftp -f`).
        #[arg(short = 'f', long)]
        fsync: bool,
        /// [user@]host[:DIR], or [user@]host:FILE to fetch FILE (into LOCAL), as sftp does.
        dest: String,
        /// Where a FILE named by DEST goes (default: its name, here).
        local: Option<PathBuf>,
    },
    /// Rename: mv [user@]host:FROM TO
    #[command(after_help = op_help!("netkit sftp mv host:/srv/www/new /srv/www/current"))]
    Mv {
        #[command(flatten)]
        common: Common,
        /// [user@]host:FROM
        remote: String,
        /// The new path on the same host.
        to: PathBuf,
    },
}

/// The flags of ls, as sftp's (`-h` is human sizes here: the help is `--help`).
#[derive(clap::Args, Clone, Copy)]
pub(crate) struct ListFlags {
    /// Long form: permissions, size and modification time.
    #[arg(short = 'l')]
    long: bool,
    /// Names that start with a dot too.
    #[arg(short = 'a')]
    all: bool,
    /// One name per line (always so).
    #[arg(short = '1')]
    one_per_line: bool,
    /// Sizes as 4.0K, 12M (with -l).
    #[arg(short = 'h')]
    human: bool,
    /// The long form with numeric user and group ids, as sftp's -n; -l shows the ids too
    /// (netkit does not read the owner and group names of the server's own long listing,
    /// which sftp's -l shows).
    #[arg(short = 'n')]
    numeric: bool,
    /// Newest first.
    #[arg(short = 't')]
    by_time: bool,
    /// Largest first.
    #[arg(short = 'S')]
    by_size: bool,
    /// The other way round.
    #[arg(short = 'r')]
    reverse: bool,
    /// Not sorted: in the order the server lists them.
    #[arg(short = 'f')]
    unsorted: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// The flags of put and get.
#[derive(clap::Args)]
pub(crate) struct TransferFlags {
    /// Copy directories recursively.
    #[arg(short = 'r', short_alias = 'R')]
    recursive: bool,
    /// Keep modes and modification times.
    #[arg(short = 'p', long)]
    preserve: bool,
    /// Resume: go on from what an interrupted transfer left (a put's temporary name, a get's
    /// `NAME.part`), and keep it if this one is interrupted too (as sftp's -a).
    #[arg(short = 'a', long = "resume")]
    resume: bool,
    /// Flush each file to disk before it takes its final name (as sftp's put -f and get -f).
    // Only where files are written: on rm or mv, `-f` reads as "force".
    #[arg(short = 'f', long)]
    fsync: bool,
}

impl TransferFlags {
    /// The transfer these flags ask for, flushed to disk first also when `fsync` (a
    /// session's -f, for all its transfers).
    pub(crate) fn transfer(&self, fsync: bool) -> Transfer {
        Transfer::new(self.recursive, self.preserve)
            .with_fsync(self.fsync || fsync)
            .with_resume(self.resume)
    }
}

#[derive(clap::Args)]
struct Common {
    /// Port.
    #[arg(short = 'P', value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
    /// User to log in as.
    #[arg(short = 'l', value_name = "USER")]
    login: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

impl Common {
    /// Connects to the host of `remote` and returns the client and the remote path.
    fn open(mut self, remote: &str) -> Result<(Client, PathBuf), Failure> {
        if self.login.is_some() {
            self.connect.user = self.login.take();
        }
        open(&self.connect, self.port, remote)
    }
}

/// Connects to the host of `remote` (`[user@]host:PATH`); returns the client and the path.
fn open(
    connect_args: &ConnectArgs,
    port: Option<u16>,
    remote: &str,
) -> Result<(Client, PathBuf), Failure> {
    let (dest, path) = split_remote(remote).code(USAGE)?;
    // sftp exits 1 for connection failures, not ssh's 255; 2 (as its --help says) for bad
    // arguments: a destination that is no host name, a bad -o, -c, -m or -J (all read as -o
    // options), or a -F file that cannot be read or parsed.
    let generic = |f: Failure| Failure {
        code: match f.error.downcast_ref::<net_ssh::Error>() {
            Some(
                net_ssh::Error::BadDestination(_)
                | net_ssh::Error::BadHostName(_)
                | net_ssh::Error::BadOption { .. },
            ) => USAGE,
            Some(net_ssh::Error::SshConfig { path, .. })
                if connect_args.ssh_config() == Some(path.as_path()) =>
            {
                USAGE
            }
            _ => GENERIC,
        },
        error: f.error,
    };
    let mut config = connect_args.config(&dest, port).map_err(generic)?;
    let client = connect(&mut config).map_err(generic)?;
    Ok((client, path))
}

/// The remote paths `path` names: what its wildcard matches, or itself.
fn matching(client: &Client, path: PathBuf) -> Result<Vec<PathBuf>, Failure> {
    Ok(match client.glob(&path).code(GENERIC)? {
        Some(found) => found.into_iter().map(|(path, _)| path).collect(),
        None => vec![path],
    })
}

/// `[user@]host:PATH` (IPv6 as `[::1]:PATH`) into the destination and the path. An empty
/// PATH, `~` and `~/...` are the remote home, as scp reads them: SFTP resolves a relative
/// path against it. The URI form `sftp://[user@]host[:port][/PATH]` (as sftp and curl take
/// it) names an absolute PATH, the home with `/~/`; its user and PATH are percent-decoded, as
/// sftp and curl decode them.
fn split_remote(remote: &str) -> anyhow::Result<(Cow<'_, str>, PathBuf)> {
    if let Some(uri) = remote.strip_prefix("sftp://") {
        let (dest, path) = uri.split_at(uri.find('/').unwrap_or(uri.len()));
        let path = if path == "/~" {
            ""
        } else {
            path.strip_prefix("/~/").unwrap_or(path)
        };
        let path: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
        let path = if path.is_empty() {
            PathBuf::from(".")
        } else {
            PathBuf::from(std::ffi::OsString::from_vec(path))
        };
        // As an `ssh://` URI the user is read as a URI's.
        return Ok((Cow::Owned(format!("ssh://{dest}")), path));
    }
    // `user@::1:/tmp`: split at its first colon, the host was "user@", and the message named it.
    let host = remote.split('/').next().unwrap_or(remote);
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    if is_ipv6(host) || host.rsplit_once(':').is_some_and(|(host, _)| is_ipv6(host)) {
        return Err(anyhow!(
            "bad remote path {remote:?}: an IPv6 address goes in brackets, [user@][::1]:PATH"
        ));
    }
    match path_colon(remote) {
        Some(i) if i > 0 => {
            let path = &remote[i + 1..];
            let path = match path.strip_prefix("~/") {
                Some(rest) => rest,
                None if path == "~" => "",
                None => path,
            };
            let path = if path.is_empty() { "." } else { path };
            Ok((Cow::Borrowed(&remote[..i]), PathBuf::from(path)))
        }
        _ => Err(anyhow!(
            "bad remote path {remote:?}: expected [user@]host:PATH"
        )),
    }
}

/// The `[user@]host:PATH` a session's DEST names. A bare destination starts in the login
/// directory: a plain host, as sftp takes it, a bare IPv6 address (`::1`) put in brackets so
/// that its colons are not the path's. Anything else is refused as `split_remote` refuses it,
/// naming DEST as typed (`::1:/tmp` was refused as "[::1:/tmp]:", without the bracket hint).
fn session_remote(dest: &str) -> anyhow::Result<Cow<'_, str>> {
    let refused = match split_remote(dest) {
        Ok(_) => return Ok(Cow::Borrowed(dest)),
        Err(refused) => refused,
    };
    let (user, host) = match dest.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), dest),
    };
    if is_ipv6(host) {
        Ok(Cow::Owned(format!("{user}[{host}]:")))
    } else if host.ends_with(']') || !(host.contains(':') || dest.contains('/')) {
        Ok(Cow::Owned(format!("{dest}:")))
    } else {
        Err(refused)
    }
}

fn is_ipv6(text: &str) -> bool {
    text.parse::<std::net::Ipv6Addr>().is_ok()
}

/// The colon that starts the path of `[user@]host:PATH`, as OpenSSH's `colon()` finds it: a
/// host in brackets (`[::1]:PATH`, `user@[::1]:PATH`) ends at `]:`; none before a `/` or at
/// the start (local names).
fn path_colon(remote: &str) -> Option<usize> {
    let bytes = remote.as_bytes();
    let mut bracketed = bytes.first() == Some(&b'[');
    for (i, &b) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied();
        match b {
            b'@' if next == Some(b'[') => bracketed = true,
            b']' if bracketed && next == Some(b':') => return Some(i + 1),
            b':' if !bracketed => return Some(i),
            b'/' => return None,
            _ => {}
        }
    }
    None
}

impl Args {
    /// The log filter -v or -q asks for, if either.
    pub fn log_filter(&self) -> Option<&'static str> {
        self.connect().log_filter()
    }

    /// The file -E names for the log, if any.
    pub fn log_file(&self) -> Option<&PathBuf> {
        self.connect().log_file.as_ref()
    }

    fn connect(&self) -> &ConnectArgs {
        match &self.command {
            Command::Ls { connect, .. } => connect,
            Command::Put { common, .. }
            | Command::Get { common, .. }
            | Command::Mkdir { common, .. }
            | Command::Rm { common, .. }
            | Command::Rmdir { common, .. }
            | Command::Chmod { common, .. }
            | Command::Chown { common, .. }
            | Command::Chgrp { common, .. }
            | Command::Mv { common, .. }
            | Command::Session { common, .. } => &common.connect,
        }
    }
}

/// The operations' names, as typed after `netkit sftp`.
pub const OPERATIONS: [&str; 10] = [
    "put", "get", "ls", "mkdir", "rm", "rmdir", "chmod", "chown", "chgrp", "mv",
];

/// Set by the first SIGINT, SIGTERM or SIGHUP during a transfer, and which one it was.
static CANCEL: AtomicBool = AtomicBool::new(false);
static CANCELLED_BY: AtomicI32 = AtomicI32::new(0);
/// The hidden file a download is writing, removed by a second signal's exit.
static PARTIAL: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);
/// Set while a session's local command runs: a SIGINT (Ctrl-C) is the command's, as
/// system(3) leaves it to the child.
pub(crate) static LOCAL_COMMAND: AtomicBool = AtomicBool::new(false);

/// `options` stopped by SIGINT, SIGTERM or SIGHUP (a closed terminal left a get's hidden
/// temporary file behind): the transfer removes its partial file and ends with
/// `Error::Cancelled`; a second signal exits at once (a transfer can be waiting on a server
/// that went silent), removing a download's hidden temporary file.
pub(crate) fn interruptible(options: Transfer) -> Result<Transfer, Failure> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Once per process: a session's second transfer must not add a second listener, which
    // would take the first signal for the second one and exit.
    static LISTENING: std::sync::Once = std::sync::Once::new();
    let mut listening = Ok(());
    LISTENING.call_once(|| {
        listening = crate::signals::watch(&[SIGINT, SIGTERM, SIGHUP]).and_then(|mut signals| {
            let watching = crate::spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGINT && LOCAL_COMMAND.load(Ordering::Relaxed) {
                        continue;
                    }
                    if CANCEL.swap(true, Ordering::Relaxed) {
                        let partial = PARTIAL
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if let Some(path) = partial.as_ref() {
                            let _ = std::fs::remove_file(path);
                        }
                        std::process::exit(128 + signal);
                    }
                    CANCELLED_BY.store(signal, Ordering::Relaxed);
                }
            });
            watching
                .map(drop)
                .map_err(|e| std::io::Error::other(format!("{e:#}")))
        });
    });
    listening?;
    Ok(options.with_cancel(&CANCEL).with_partial(&PARTIAL))
}

/// Forgets a signal that stopped an earlier transfer (or came at a session's prompt), so the
/// next one runs.
pub(crate) fn forget_signals() {
    CANCEL.store(false, Ordering::Relaxed);
}

/// A transfer's error with its exit code: 128 + the signal that stopped it (as a shell
/// reports a process the signal ended), else 1.
fn transfer_failure(error: net_ssh::Error) -> Failure {
    let code = match error {
        net_ssh::Error::Cancelled { .. } => {
            u8::try_from(128 + CANCELLED_BY.load(Ordering::Relaxed)).unwrap_or(GENERIC)
        }
        _ => GENERIC,
    };
    Failure {
        code,
        error: error.into(),
    }
}

/// Runs `netkit sftp`.
pub fn run(args: Args) -> Outcome {
    match args.command {
        Command::Put {
            common,
            flags,
            paths,
        } => {
            let (target, locals) = paths
                .split_last()
                .ok_or_else(|| anyhow!("nothing to upload"))
                .code(USAGE)?;
            let options = flags.transfer(false);
            let (client, remote) = common.open(target)?;
            if locals == ["-"] {
                upload_stdin(&client, &remote, options)?;
            } else {
                upload(&client, locals, &remote, options)?;
            }
        }
        Command::Get {
            common,
            flags,
            remote,
            local,
        } => {
            let options = flags.transfer(false);
            let (client, path) = common.open(&remote)?;
            if local == Path::new("-") {
                download_stdout(&client, path, options)?;
            } else {
                download(&client, path, &remote, &local, options)?;
            }
        }
        Command::Ls {
            port,
            connect,
            flags,
            remote,
        } => {
            let (client, path) = open(&connect, port, &remote)?;
            list(&client, &path, flags, None)?;
        }
        Command::Mkdir {
            common,
            parents,
            remote,
        } => {
            let (client, path) = common.open(&remote)?;
            client.mkdir(&path, parents).code(GENERIC)?;
        }
        Command::Rm {
            common,
            dir,
            remote,
        } => {
            let (client, path) = common.open(&remote)?;
            remove(&client, path, dir)?;
        }
        Command::Rmdir { common, remote } => {
            let (client, path) = common.open(&remote)?;
            remove(&client, path, true)?;
        }
        Command::Chmod {
            common,
            mode,
            remote,
        } => {
            let (client, path) = common.open(&remote)?;
            chmod(&client, path, mode)?;
        }
        Command::Chown {
            common,
            uid,
            remote,
        } => {
            let (client, path) = common.open(&remote)?;
            chown(&client, path, Some(uid), None)?;
        }
        Command::Chgrp {
            common,
            gid,
            remote,
        } => {
            let (client, path) = common.open(&remote)?;
            chown(&client, path, None, Some(gid))?;
        }
        Command::Mv { common, remote, to } => {
            let (client, path) = common.open(&remote)?;
            rename(&client, &path, to)?;
        }
        Command::Session {
            common,
            batch,
            fsync,
            dest,
            local,
        } => {
            let remote = session_remote(&dest).code(USAGE)?;
            let commands = crate::sftp_session::Commands::open(batch.as_deref())?;
            let (client, path) = common.open(&remote)?;
            // As sftp: a path that is not a directory (or a second argument) is fetched, and
            // that is all; a directory is where the session starts.
            if local.is_some() || (path != Path::new(".") && !is_dir(&client, &path)?) {
                let shown = net_ssh::name_shown(&path);
                let options = Transfer::new(false, false).with_fsync(fsync);
                let local = local.unwrap_or_else(|| PathBuf::from("."));
                download(&client, path, &shown, &local, options)?;
                return Ok(ExitCode::SUCCESS);
            }
            return crate::sftp_session::run(&client, &path, commands, fsync);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `path` is a remote directory; false when nothing is there. Any other failure
/// (permission denied, the SFTP channel refused, the connection lost) is the error, as sftp
/// and scp report it: taken for "not a directory", `put f host:DIR/` said "DIR/: not a
/// directory", exit 2, whatever had gone wrong.
pub(crate) fn is_dir(client: &Client, path: &Path) -> Result<bool, Failure> {
    match client.stat(path) {
        Ok(entry) => Ok(entry.is_dir),
        Err(net_ssh::Error::NoSuchFile { .. }) => Ok(false),
        Err(e) => Err(e).code(GENERIC),
    }
}

/// Uploads `locals` to `remote`, into it when it is a directory (keeping the names, as scp
/// and sftp do).
pub(crate) fn upload<S: AsRef<Path>>(
    client: &Client,
    locals: &[S],
    remote: &Path,
    options: Transfer,
) -> Result<(), Failure> {
    let into_dir = is_dir(client, remote)?;
    // Each file would overwrite the one before (as sftp and scp refuse it); a name ending in
    // `/` names a directory that is not there.
    if !into_dir && (locals.len() > 1 || remote.as_os_str().as_encoded_bytes().ends_with(b"/")) {
        return Err(anyhow!(
            "{}: not a directory{}",
            net_ssh::name_shown(remote),
            if locals.len() > 1 {
                ", and there are several files to put in it"
            } else {
                ""
            }
        ))
        .code(USAGE);
    }
    let options = interruptible(options)?;
    let mut pairs = Vec::new();
    for local in locals {
        let local = local.as_ref();
        let name = local
            .file_name()
            .ok_or_else(|| anyhow!("bad local path {}", net_ssh::name_shown(local)))
            .code(USAGE)?;
        let dest = if into_dir {
            remote.join(name)
        } else {
            remote.to_path_buf()
        };
        pairs.push((local, dest));
    }
    each_file(pairs, "copied", |(local, dest)| {
        let bar = Bar::new(local.as_os_str());
        client.put(local, &dest, options, &mut |done, total| {
            bar.update(done, total)
        })
    })
}

/// Copies (or changes, as `done` says) each of `files`, going past one that fails (told as it
/// fails) to the next, as sftp goes on with the rest of a wildcard's files, and past one that
/// changed while copied (warned of, as tar goes on); the whole then fails. A lost connection
/// or a cancel ends it at once. One file's failure is the error itself.
fn each_file<T>(
    files: Vec<T>,
    done: &str,
    mut copy: impl FnMut(T) -> Result<(), net_ssh::Error>,
) -> Result<(), Failure> {
    let several = files.len() > 1;
    let mut tally = net_ssh::Tally::default();
    for file in files {
        match copy(file) {
            Ok(()) => {}
            Err(e) if several && (e.concerns_one_file() || is_changed(&e)) => {
                if is_changed(&e) {
                    tally.changed += 1;
                } else {
                    tally.failed += 1;
                }
                crate::exit::say_error(&e.into());
            }
            Err(e) => return Err(transfer_failure(e)),
        }
    }
    match tally.said(done) {
        None => Ok(()),
        Some(said) => Err(anyhow!(said)).code(GENERIC),
    }
}

/// Whether `error` is a file that changed while it was copied: it was copied, and is warned of.
fn is_changed(error: &net_ssh::Error) -> bool {
    matches!(error, net_ssh::Error::Changed { .. })
}

/// Downloads what `path` names (a wildcard's matches; `shown` is how it was written) to
/// `local`, into it when it is a directory.
pub(crate) fn download(
    client: &Client,
    path: PathBuf,
    shown: &str,
    local: &Path,
    options: Transfer,
) -> Result<(), Failure> {
    let sources = matching(client, path)?;
    if sources.len() > 1 && !local.is_dir() {
        return Err(anyhow!(
            "{}: not a directory, and {shown} names {} files",
            net_ssh::name_shown(local),
            sources.len()
        ))
        .code(USAGE);
    }
    let options = interruptible(options)?;
    each_file(sources, "copied", |source| {
        let dest = match source.file_name() {
            Some(name) if local.is_dir() => local.join(name),
            _ => local.to_path_buf(),
        };
        let bar = Bar::new(source.as_os_str());
        client.get(&source, &dest, options, &mut |done, total| {
            bar.update(done, total)
        })
    })
}

/// Uploads standard input to `remote` (`put - host:PATH`, as curl's `-T -`).
fn upload_stdin(client: &Client, remote: &Path, options: Transfer) -> Result<(), Failure> {
    if is_dir(client, remote)? {
        return Err(anyhow!(
            "{}: is a directory; name the file to write standard input to",
            net_ssh::name_shown(remote)
        ))
        .code(USAGE);
    }
    // Rust opens /dev/null in place of a closed stdin (`<&-`, a daemon's job): read, it
    // replaced the remote file with nothing, exit 0. An empty upload is meant with a pipe.
    if crate::stdin_is_null() {
        return Err(anyhow!(
            "standard input is closed or /dev/null: {} not replaced with nothing (pipe an empty \
             input to mean it: printf '' | netkit sftp put - ...)",
            net_ssh::name_shown(remote)
        ))
        .code(USAGE);
    }
    let options = interruptible(options)?;
    let bar = Bar::counting("-".as_ref());
    client
        .put_from(
            &mut crate::stdio::stdin(),
            remote,
            options,
            &mut |done, _| bar.update(done, 0),
        )
        .map_err(transfer_failure)
}

/// Writes what `path` names to standard output (`get host:PATH -`, as curl's `-o -`): a
/// wildcard's matches one after the other, as cat prints them.
fn download_stdout(client: &Client, path: PathBuf, options: Transfer) -> Result<(), Failure> {
    let options = interruptible(options)?;
    for source in matching(client, path)? {
        let bar = Bar::new(source.as_os_str());
        client
            .get_to(
                &source,
                &mut crate::stdio::stdout(),
                options,
                &mut |done, total| bar.update(done, total),
            )
            .map_err(transfer_failure)?;
    }
    Ok(())
}

/// Prints a directory's entries or what a wildcard matches (directories marked with a `/`)
/// by path less the `strip` before it, as sftp's ls shows them: `ls logs` from the start
/// directory prints `logs/a.log`, the name a later `get` finds (a bare `a.log` fetched another
/// file of that name). With no `strip`, a directory's entries by name, as `ssh host ls DIR`
/// shows them. As `flags` ask: names starting with a dot only with -a, sorted by name (or
/// time or size).
pub(crate) fn list(
    client: &Client,
    path: &Path,
    flags: ListFlags,
    strip: Option<&Path>,
) -> Result<(), Failure> {
    let found = match client.glob(path) {
        Ok(found) => found,
        // A name with a `[` of its own (`b[x`) is no pattern: found by its name, as glob(3)'s
        // GLOB_NOCHECK finds it.
        Err(e) => match client.stat(path) {
            Ok(entry) => Some(vec![(path.to_owned(), entry)]),
            Err(_) => return Err(e).code(GENERIC),
        },
    };
    let shown = |path: &Path| {
        let path = path
            .strip_prefix(strip.unwrap_or(Path::new("")))
            .unwrap_or(path);
        crate::exit::shown_name(path.as_os_str())
    };
    // A directory's entry, or a file named: by path, or by name with no `strip`.
    let named = |path: &Path| match (strip, path.file_name()) {
        (None, Some(name)) => crate::exit::shown_name(name),
        _ => shown(path),
    };
    let contents = |dir: &Path| -> Result<Vec<(String, net_ssh::Entry)>, Failure> {
        Ok(client
            .ls(dir)
            .code(GENERIC)?
            .into_iter()
            .filter(|entry| flags.all || !entry.name.as_bytes().starts_with(b"."))
            .map(|entry| (named(&dir.join(&entry.name)), entry))
            .collect())
    };
    let mut entries = match found {
        // One directory matched (`a[1]` naming itself too), or a link to one: its contents,
        // as sftp lists it.
        Some(found)
            if found.len() == 1
                && (found[0].1.is_dir || found[0].1.is_link() && is_dir(client, &found[0].0)?) =>
        {
            contents(&found[0].0)?
        }
        Some(found) => found
            .into_iter()
            .map(|(path, entry)| {
                let slash = if entry.is_dir { "/" } else { "" };
                (format!("{}{slash}", shown(&path)), entry)
            })
            .collect(),
        // A file named is itself, by the path given (`dir/b.txt`, not `dir/b.txt/b.txt`).
        None => match client.stat(path) {
            Ok(entry) if !entry.is_dir => vec![(named(path), entry)],
            // A directory we may not look at may still be listed; any other failure (a
            // connection or channel lost) is told, not taken for a directory to list.
            Ok(_) | Err(net_ssh::Error::PermissionDenied { .. }) => contents(path)?,
            Err(e) => return Err(e).code(GENERIC),
        },
    };
    if !flags.unsorted {
        if flags.by_time {
            entries.sort_by_key(|(_, e)| std::cmp::Reverse(e.mtime));
        } else if flags.by_size {
            entries.sort_by_key(|(_, e)| std::cmp::Reverse(e.size));
        }
        if flags.reverse {
            entries.reverse();
        }
    }
    for (name, entry) in entries {
        if flags.long || flags.numeric {
            let size = if flags.human {
                human_size(entry.size)
            } else {
                entry.size.to_string()
            };
            // Owner and group as numbers, as sftp's ls -n: SFTP v3 carries no names.
            let id = |id: Option<u32>| id.map_or_else(|| "?".to_owned(), |id| id.to_string());
            crate::exit::out(format_args!(
                "{} {:<8} {:<8} {size:>12} {} {name}",
                entry.permissions(),
                id(entry.uid),
                id(entry.gid),
                local_time(entry.mtime),
            ))?;
        } else {
            crate::exit::out(format_args!("{name}"))?;
        }
    }
    Ok(())
}

/// A size as sftp's `ls -lh` shows it: 512B, 4.0K, 12M.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes}B"),
        _ if value < 10.0 => format!("{value:.1}{}", UNITS[unit]),
        _ => format!("{value:.0}{}", UNITS[unit]),
    }
}

/// Does `change` to each path `path` names (a wildcard's matches, or itself), going past
/// one it fails for, as sftp's rm goes on (`rm a*` stopped at a directory among the matches
/// and removed none of the files after it).
fn each_match(
    client: &Client,
    path: PathBuf,
    done: &str,
    change: impl Fn(&Path) -> Result<(), net_ssh::Error>,
) -> Result<(), Failure> {
    each_file(matching(client, path)?, done, |target| change(&target))
}

/// rm and rmdir: removes what `path` names, directories with `dir`.
pub(crate) fn remove(client: &Client, path: PathBuf, dir: bool) -> Result<(), Failure> {
    each_match(client, path, "removed", |target| {
        if dir {
            client.rmdir(target)
        } else {
            client.rm(target)
        }
    })
}

/// Sets the mode of what `path` names.
pub(crate) fn chmod(client: &Client, path: PathBuf, mode: u32) -> Result<(), Failure> {
    each_match(client, path, "changed", |target| client.chmod(target, mode))
}

/// chown and chgrp: sets the owner or group (by number) of what `path` names.
pub(crate) fn chown(
    client: &Client,
    path: PathBuf,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), Failure> {
    each_match(client, path, "changed", |target| {
        client.chown(target, uid, gid)
    })
}

/// Renames `path` to `to`, into `to` when it is a directory (keeping the name, as mv does).
pub(crate) fn rename(client: &Client, path: &Path, to: PathBuf) -> Result<(), Failure> {
    let to = match path.file_name() {
        Some(name) if is_dir(client, &to)? => to.join(name),
        _ => to,
    };
    client.rename(path, &to).code(GENERIC)
}

/// A mode as chmod takes it: octal digits, at most 7777.
pub(crate) fn octal_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| format!("{text:?} is not an octal mode such as 644"))
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM` in the local time zone (`ls -l
/// --time-style=long-iso`).
fn local_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .map_or_else(
            || "????-??-?? ??:??".to_owned(),
            |at| {
                at.to_zoned_datetime(jiff::tz::TimeZone::system())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string()
            },
        )
}

/// Whether transfers show a progress bar (a session's `progress` turns it off and on; a
/// batch starts with it off, as sftp's).
pub(crate) static PROGRESS: AtomicBool = AtomicBool::new(true);

/// A progress bar on stderr, only when it is a terminal; drawn from the first progress on
/// (drawn before, it showed a full `0 B/0 B` bar).
struct Bar {
    /// The label and the template, when bars are shown.
    shown: Option<(String, &'static str)>,
    bar: std::cell::OnceCell<indicatif::ProgressBar>,
}

impl Bar {
    fn new(label: &std::ffi::OsStr) -> Bar {
        Bar::with_template(
            label,
            "{msg} {bytes}/{total_bytes} {wide_bar} {bytes_per_sec}",
        )
    }

    /// For bytes whose total is not known (standard input).
    fn counting(label: &std::ffi::OsStr) -> Bar {
        Bar::with_template(label, "{msg} {bytes} {bytes_per_sec}")
    }

    /// `label` is shown as `ls` shows a name: a byte that is no UTF-8 as sftp's `\351`.
    fn with_template(label: &std::ffi::OsStr, template: &'static str) -> Bar {
        let shown = PROGRESS.load(Ordering::Relaxed) && std::io::stderr().is_terminal();
        Bar {
            shown: shown.then(|| (crate::exit::shown_name(label), template)),
            bar: std::cell::OnceCell::new(),
        }
    }

    fn update(&self, done: u64, total: u64) {
        let Some((label, template)) = &self.shown else {
            return;
        };
        let bar = self
            .bar
            .get_or_init(|| crate::progress::bar(template, label, total, done));
        bar.set_length(total);
        bar.set_position(done);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}
