use std::path::{Path, PathBuf};

/// Everything that can go wrong, naming the host (and file) concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The destination is not `[user@]host[:port]`.
    #[error("bad destination {0:?}: expected [user@]host[:port]")]
    BadDestination(String),
    /// The destination's host name holds a character no host name has: a shell
    /// metacharacter, a comma or wildcard of known_hosts' patterns, a space, or a leading
    /// `-` (OpenSSH refuses them too).
    #[error("bad destination {0:?}: the hostname contains invalid characters")]
    BadHostName(String),
    /// No user to log in as: none named, and the local one has no name (a uid missing from
    /// the password database, as in some containers, and no `$USER`).
    #[error(
        "no user name for uid {uid} (it has no password database entry): name the user to log in as"
    )]
    NoUser {
        /// The local user id.
        uid: u32,
    },
    /// The user to log in as was named as empty (`Config.user = ""`, `-l ''`): OpenSSH
    /// would try to log in as "", which no server has.
    #[error("empty user name: name the user to log in as")]
    EmptyUser,
    /// The host name does not resolve.
    #[error("{host}: cannot resolve the host name")]
    Resolve {
        /// The host.
        host: String,
    },
    /// The host name has no address of the family asked for (`ssh -4`/`-6`).
    #[error("{host}: no {family} address")]
    NoAddress {
        /// The host.
        host: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// The TCP connection failed.
    #[error("{host}: cannot connect: {source}")]
    Connect {
        /// `host:port`.
        host: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The SSH handshake failed.
    #[error("{host}: SSH handshake failed: {reason}")]
    Handshake {
        /// The host.
        host: String,
        /// What libssh2 said.
        reason: String,
    },
    /// The host is not in known_hosts and the policy is strict.
    #[error(
        "{host}: host key is not known ({algorithm} {fingerprint}); add it to {} or use --accept-new",
        name_shown(known_hosts)
    )]
    UnknownHostKey {
        /// `host` or `[host]:port`.
        host: String,
        /// e.g. `ssh-ed25519`.
        algorithm: String,
        /// `SHA256:...` as OpenSSH prints it.
        fingerprint: String,
        /// The file consulted.
        known_hosts: PathBuf,
    },
    /// The host's key differs from the one in known_hosts.
    #[error(
        "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for {host}! Someone could be eavesdropping on you right now (man-in-the-middle attack), or the host key has just been changed. The {algorithm} key sent is {fingerprint}; offending key in {}:{line} (remove it with: ssh-keygen -f \"{}\" -R \"{host}\"). Host key verification failed",
        name_shown(known_hosts),
        name_shown(known_hosts)
    )]
    HostKeyChanged {
        /// `host` or `[host]:port`.
        host: String,
        /// e.g. `ssh-ed25519`.
        algorithm: String,
        /// `SHA256:...` of the key the server sent.
        fingerprint: String,
        /// The known_hosts file whose line names the host with another key.
        known_hosts: PathBuf,
        /// That line, from 1.
        line: usize,
    },
    /// The host's key is marked `@revoked` in a known_hosts file.
    #[error(
        "WARNING: REVOKED HOST KEY DETECTED for {host}! The {algorithm} key sent ({fingerprint}) is marked as revoked in {}: a stolen key could be impersonating the host. Connection refused",
        name_shown(known_hosts)
    )]
    HostKeyRevoked {
        /// `host` or `[host]:port`.
        host: String,
        /// e.g. `ssh-ed25519`.
        algorithm: String,
        /// `SHA256:...` of the key the server sent.
        fingerprint: String,
        /// The file that marks it revoked.
        known_hosts: PathBuf,
    },
    /// An OpenSSH `-o` option that is not `Key=Value` of a client option.
    #[error("bad option {option:?}: {reason}")]
    BadOption {
        /// The option as given.
        option: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The OpenSSH client config could not be read or parsed.
    #[error("{}", ssh_config_message(path, line.as_ref(), reason))]
    SshConfig {
        /// The file.
        path: PathBuf,
        /// The file (this one or one it includes) and the number of the line at fault, when
        /// it is one line.
        line: Option<(PathBuf, usize)>,
        /// What is wrong.
        reason: String,
    },
    /// known_hosts could not be read or written.
    #[error("{}: {reason}", name_shown(path))]
    KnownHosts {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// No authentication method worked.
    #[error("{user}@{host}: authentication failed (tried: {}; the server accepts: {accepted})", if tried.is_empty() { "nothing".to_owned() } else { tried.join(", ") })]
    Auth {
        /// The host.
        host: String,
        /// The user.
        user: String,
        /// What was tried, in order (e.g. `publickey ~/.ssh/id_ed25519`).
        tried: Vec<String>,
        /// The methods the server offers.
        accepted: String,
    },
    /// A private key file cannot be used.
    #[error(
        "{}: cannot use the key: unreadable, malformed, or a wrong passphrase",
        name_shown(path)
    )]
    Key {
        /// The key file.
        path: PathBuf,
    },
    /// A private key file of a kind netkit cannot offer from a file.
    #[error("{}: netkit cannot use {what}", name_shown(path))]
    KeyKind {
        /// The key file.
        path: PathBuf,
        /// The kind, and what to do instead.
        what: &'static str,
    },
    /// A private key file that others may read, refused as OpenSSH refuses it.
    #[error(
        "{}: permissions {mode:04o} are too open: a private key must not be accessible by others (chmod 600 it)",
        name_shown(path)
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An operation took longer than the timeout.
    #[error("{host}: timed out ({what})")]
    Timeout {
        /// The host.
        host: String,
        /// What was going on.
        what: String,
    },
    /// The connection was lost (the server or the network went away) while a file was
    /// copied: a transfer of several files stops there, as sftp's does.
    #[error("{host}: connection closed (copying {}){}", name_shown(path), kept.as_ref().map_or(String::new(), |kept| format!("; {kept}")))]
    ConnectionLost {
        /// The host.
        host: String,
        /// The remote file being copied.
        path: PathBuf,
        /// Where what was copied so far is kept (a resumable part, or a temporary file
        /// that could not be removed).
        kept: Option<String>,
    },
    /// A remote file does not exist.
    #[error("{}: no such file or directory", host_path(host, path))]
    NoSuchFile {
        /// The host.
        host: String,
        /// The remote path.
        path: PathBuf,
    },
    /// The remote side refused access to a file.
    #[error("{}: permission denied", host_path(host, path))]
    PermissionDenied {
        /// The host.
        host: String,
        /// The remote path.
        path: PathBuf,
    },
    /// Another SFTP failure on a remote path.
    #[error("{}: {reason}", host_path(host, path))]
    Sftp {
        /// The host.
        host: String,
        /// The remote path.
        path: PathBuf,
        /// What the server said.
        reason: String,
    },
    /// A file changed size while it was copied, as tar's "file changed as we read it": the
    /// copy is in place and holds the bytes read, to the end the file had when it was read (as
    /// OpenSSH's sftp keeps them, read past the size it had at the start when it grew), which
    /// may be neither the file as it was when the copy began nor as it is now. A file whose
    /// size was 0 or not known is not judged (/proc's files say 0 and hold text).
    #[error("{}: file changed as we read it: {size} bytes when the copy began, {copied} copied", host.as_ref().map_or_else(|| name_shown(path), |host| host_path(host, path)))]
    Changed {
        /// The host when the file read is remote (a get); none for a local file (a put).
        host: Option<String>,
        /// The file read.
        path: PathBuf,
        /// Its size when the copy began.
        size: u64,
        /// The bytes the copy holds.
        copied: u64,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", name_shown(path))]
    Local {
        /// The local path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The reader given to [`Client::put_from`](crate::Client::put_from) or the writer given
    /// to [`Client::get_to`](crate::Client::get_to) failed.
    #[error("the local side: {source} (copying {})", host_path(host, path))]
    Stream {
        /// The host.
        host: String,
        /// The remote file.
        path: PathBuf,
        /// What the reader or writer returned.
        source: std::io::Error,
    },
    /// A transfer was stopped through [`Transfer::with_cancel`](crate::Transfer::with_cancel);
    /// the partial file was removed, unless `left` says what remains.
    #[error("{}: transfer cancelled{}", name_shown(path), left.as_ref().map_or(String::new(), |left| format!("; the server stopped answering: {left}")))]
    Cancelled {
        /// The file being written (remote for a put, local for a get).
        path: PathBuf,
        /// What could not be cleaned up on a server that stopped answering (the connection
        /// was closed).
        left: Option<String>,
    },
    /// An output callback of a streaming command failed (its reader went away, as `head`
    /// does); the connection is closed and the command left to the server's hang-up.
    #[error("writing the command's output: {source}")]
    Output {
        /// What the callback returned.
        source: std::io::Error,
    },
    /// A change asked of forwards whose loop has ended (the connection was lost).
    #[error("the forwarding has ended")]
    ForwardingEnded,
    /// Any other SSH failure.
    #[error("{host}: {reason}")]
    Ssh {
        /// The host.
        host: String,
        /// What failed.
        reason: String,
    },
}

impl Error {
    /// Whether the failure is one file's (not there, refused, a local file, an SFTP status),
    /// so that a transfer of several files can go past it to the next, as sftp and scp go
    /// on; a lost connection or a cancel ends the whole transfer.
    #[must_use]
    pub fn concerns_one_file(&self) -> bool {
        matches!(
            self,
            Error::NoSuchFile { .. }
                | Error::PermissionDenied { .. }
                | Error::Local { .. }
                | Error::Sftp { .. }
        )
    }
}

impl Error {
    pub(crate) fn ssh(host: &str, error: &ssh2::Error) -> Error {
        // LIBSSH2_ERROR_TIMEOUT
        if error.code() == ssh2::ErrorCode::Session(-9) {
            return Error::Timeout {
                host: host.to_owned(),
                what: error.message().to_owned(),
            };
        }
        Error::Ssh {
            host: host.to_owned(),
            reason: Error::reason(error.message()),
        }
    }

    /// libssh2's words for what failed, with a connection that went away under it said as
    /// ssh says it.
    pub(crate) fn reason(message: &str) -> String {
        match message {
            "transport read" | "socket disconnect" | "Socket disconnect" => {
                format!("connection closed by the remote host ({message})")
            }
            _ => message.to_owned(),
        }
    }

    pub(crate) fn sftp(host: &str, path: &std::path::Path, error: &ssh2::Error) -> Error {
        let (host, path) = (host.to_owned(), path.to_owned());
        match error.code() {
            ssh2::ErrorCode::SFTP(2) => Error::NoSuchFile { host, path },
            ssh2::ErrorCode::SFTP(3) => Error::PermissionDenied { host, path },
            ssh2::ErrorCode::Session(-9) => Error::Timeout {
                host,
                what: format!("on {}", name_shown(path)),
            },
            _ => Error::Sftp {
                host,
                path,
                reason: error.message().to_owned(),
            },
        }
    }
}

/// [`Error::SshConfig`]'s message: a line at fault named as ssh names it, `cfg line 3: ...`
/// (naming the file once: it was `cfg: bad ssh config: cfg: line 3: ...`).
fn ssh_config_message(path: &Path, line: Option<&(PathBuf, usize)>, reason: &str) -> String {
    match line {
        Some((file, at)) => format!("{} line {at}: {reason}", name_shown(file)),
        None => format!("{}: bad ssh config: {reason}", name_shown(path)),
    }
}

/// `host:path`, naming a remote file in a message: an IPv6 address in brackets
/// (`[::1]:/tmp`), as scp writes it, so that the path is not read as a port or part of the
/// address.
pub(crate) fn host_path(host: &str, path: &Path) -> String {
    format!("{}:{}", crate::config::bracketed(host), name_shown(path))
}

/// A name or path as text: UTF-8 as it is, and each byte that is no part of a UTF-8 character
/// as an octal escape (`latin\351`), as OpenSSH's sftp shows it. Shown lossily
/// ([`Path::display`]), the name `latin` + byte 0xE9 read as `latin\u{fffd}`, the name of
/// another file. The one spelling of such names: errors use it, and so does netkit's `ls`.
#[must_use]
pub fn name_shown(name: impl AsRef<std::ffi::OsStr>) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = name.as_ref().as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\{byte:03o}"));
        }
    }
    out
}
