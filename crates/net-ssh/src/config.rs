use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use crate::Error;
use crate::matching;

/// What to do with the server's host key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostKeyPolicy {
    /// Refuse hosts not in known_hosts (OpenSSH's `StrictHostKeyChecking yes`).
    #[default]
    Strict,
    /// Add unknown hosts to known_hosts; refuse changed keys (`accept-new`).
    AcceptNew,
    /// Accept any key, with a warning. Dangerous: an explicit opt-in only.
    Insecure,
}

/// A way to authenticate, as OpenSSH's `PreferredAuthentications` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// Keys: the agent's, then the key files (`publickey`).
    PublicKey,
    /// The password (`password`).
    Password,
    /// The password as the answer to the server's prompt (`keyboard-interactive`), for
    /// servers that take passwords only through PAM.
    KeyboardInteractive,
}

impl AuthMethod {
    /// The order tried unless told otherwise: keys, then the password both ways.
    pub const DEFAULT_ORDER: [AuthMethod; 3] = [
        AuthMethod::PublicKey,
        AuthMethod::Password,
        AuthMethod::KeyboardInteractive,
    ];

    /// The method's name in `PreferredAuthentications`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::PublicKey => "publickey",
            AuthMethod::Password => "password",
            AuthMethod::KeyboardInteractive => "keyboard-interactive",
        }
    }

    fn from_name(name: &str) -> Option<AuthMethod> {
        AuthMethod::DEFAULT_ORDER
            .into_iter()
            .find(|method| method.name() == name)
    }
}

/// Which addresses of a host name to connect to (OpenSSH's `AddressFamily`, `ssh -4`/`-6`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddressFamily {
    /// IPv4 and IPv6, in the resolver's order.
    #[default]
    Any,
    /// IPv4 only (`inet`, `-4`).
    Inet,
    /// IPv6 only (`inet6`, `-6`).
    Inet6,
}

impl AddressFamily {
    /// Whether `addr` is of this family.
    #[must_use]
    pub fn allows(self, addr: &std::net::SocketAddr) -> bool {
        match self {
            AddressFamily::Any => true,
            AddressFamily::Inet => addr.is_ipv4(),
            AddressFamily::Inet6 => addr.is_ipv6(),
        }
    }
}

/// How to connect to one host.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Host name or address.
    pub host: String,
    /// The host as given (on the command line, or as a jump host), before a `HostName` line
    /// names another: OpenSSH's `%n` token, and its `%k` without a `HostKeyAlias`.
    pub original_host: String,
    /// Port (default 22).
    pub port: u16,
    /// User name (default: the local user, as ssh takes it).
    pub user: String,
    /// Which of the host's addresses to try (default: any).
    pub address_family: AddressFamily,
    /// The local address to connect from, an IP address or a name (OpenSSH's `BindAddress`,
    /// `ssh -b`); `None` (the default) lets the system choose.
    pub bind_address: Option<String>,
    /// Rounds of connection attempts over the host's addresses, a second apart, before
    /// giving up (OpenSSH's `ConnectionAttempts`; default 1): for a host that is booting.
    pub connection_attempts: u32,
    /// Time to open the TCP connection (default 10 s); without a
    /// [`handshake_timeout`](Self::handshake_timeout), also the longest wait for the server's
    /// banner (a port that accepts and says nothing).
    pub connect_timeout: Duration,
    /// Longest time for the connection, the server's banner and the key exchange together
    /// (OpenSSH's `ConnectTimeout`, which sets it with `connect_timeout`, as ssh_config(5)
    /// says it covers all three). `None` (the default): the key exchange has
    /// [`timeout`](Self::timeout), as any other step: over a link with a 4 s round trip it takes
    /// about 12 s, which the 10 s connect timeout cut short.
    pub handshake_timeout: Option<Duration>,
    /// OpenSSH's `ConnectTimeout` as configured, for `ssh -G` to show: `None` when unset or
    /// `none`, `Some(0)` for 0. ssh bounds nothing with 0, as with none, so netkit's defaults
    /// apply then; but ssh -G tells the two apart (`connecttimeout 0` and `none`).
    pub connect_timeout_set: Option<Duration>,
    /// Longest wait for the server in any one protocol step (handshake, auth, SFTP call;
    /// default 30 s).
    pub timeout: Duration,
    /// Longest run of a command started by [`Client::exec`](crate::Client::exec)
    /// (default: none; a silent command may run as long as it likes). A command that runs
    /// longer ends in [`Error::Timeout`](crate::Error::Timeout) and closes the connection
    /// (later calls on the client say so: connect again).
    pub exec_timeout: Option<Duration>,
    /// Keepalive interval: after this long without a word from the server, a keepalive
    /// asks it for an answer (and TCP probes the connection as often); a server gone is
    /// noticed after [`keepalive_count`](Self::keepalive_count) unanswered, even while a
    /// command is silent (default 15 s; OpenSSH's `ServerAliveInterval`).
    pub keepalive: Duration,
    /// Unanswered keepalive probes after which the peer counts as gone (default 3, as
    /// OpenSSH's `ServerAliveCountMax`); 0 gives it up once silent through one interval,
    /// with no probe sent, as OpenSSH does.
    pub keepalive_count: u32,
    /// The known_hosts file (default `~/.ssh/known_hosts`), where keys accepted as new go.
    pub known_hosts: PathBuf,
    /// More known_hosts files of the user, trusted as `known_hosts` but never written: the
    /// rest of OpenSSH's `UserKnownHostsFile` (default `~/.ssh/known_hosts2`, as OpenSSH's).
    pub more_known_hosts: Vec<PathBuf>,
    /// The system-wide known_hosts files, also trusted (OpenSSH's `GlobalKnownHostsFile`,
    /// default `/etc/ssh/ssh_known_hosts` and `/etc/ssh/ssh_known_hosts2`); never written.
    pub global_known_hosts: Vec<PathBuf>,
    /// Whether a key accepted as new can be kept: false for OpenSSH's `UserKnownHostsFile
    /// none`, where [`HostKeyPolicy::AcceptNew`] then refuses an unknown key as OpenSSH does
    /// (kept nowhere, any key would be accepted on every connection). `/dev/null` named as
    /// the file keeps them "there", as in OpenSSH.
    pub keeps_new_keys: bool,
    /// A file of public keys the server's must not be, one per line (OpenSSH's
    /// `RevokedHostKeys`); one that cannot be read, or a binary KRL, which netkit cannot
    /// read, refuses every key, as OpenSSH refuses on an error reading it.
    pub revoked_host_keys: Option<PathBuf>,
    /// The host-key policy.
    pub host_key_policy: HostKeyPolicy,
    /// Write the host names of keys added to known_hosts hashed, as OpenSSH's
    /// `HashKnownHosts yes` (default false).
    pub hash_known_hosts: bool,
    /// The name the host's key is known by in known_hosts, in place of its name and port
    /// (OpenSSH's `HostKeyAlias`; default none): for hosts reached through a tunnel or a
    /// proxy command, or several behind one address.
    pub host_key_alias: Option<String>,
    /// Private keys to offer, with their passphrases; empty means OpenSSH's default files
    /// when `default_identities` allows.
    pub identities: Vec<Identity>,
    /// The `IdentityFile` lines that apply, as written (`~`, `${VAR}` and tokens unexpanded),
    /// each once: what ssh -G prints, whether or not the file is there; `identities` holds
    /// the keys found of them.
    pub identity_files: Vec<String>,
    /// Offer OpenSSH's default key files when `identities` is empty (default true). A program
    /// that drops keys the user named (ssh skips one after three wrong passphrases) clears it,
    /// as ssh never falls back to the default files once `-i` or `IdentityFile` named some.
    pub default_identities: bool,
    /// The caller can ask a person for passphrases (default false): a key of `identities`
    /// that cannot be opened without one (or with the one given) ends authentication with
    /// [`Error::Key`](crate::Error::Key) when its turn comes, to be asked for and tried
    /// again, as ssh asks then; otherwise it is passed over for the keys after it.
    pub asks_passphrases: bool,
    /// Ask for zlib compression (OpenSSH's `Compression`, `ssh -C`; default false): worth it
    /// on slow links only.
    pub compression: bool,
    /// The ciphers to offer, most wanted first (OpenSSH's `Ciphers`, `ssh -c`, whose `+`, `-`
    /// and `^` change [`default_ciphers`](Self::default_ciphers); names libssh2 does not know
    /// are passed over).
    pub ciphers: Vec<String>,
    /// The key exchange methods to offer, most wanted first (OpenSSH's `KexAlgorithms`, whose
    /// `+`, `-` and `^` change OpenSSH's default list); `None` (the default) offers libssh2's.
    /// Names libssh2 does not know are passed over.
    pub kex_algorithms: Option<Vec<String>>,
    /// The MACs to offer, as [`kex_algorithms`](Self::kex_algorithms) (OpenSSH's `MACs`,
    /// `ssh -m`); ciphers with their own integrity check (AES-GCM, chacha20-poly1305) use none.
    pub macs: Option<Vec<String>>,
    /// The host key types to ask for, most wanted first, as
    /// [`kex_algorithms`](Self::kex_algorithms) (OpenSSH's `HostKeyAlgorithms`); `None` asks
    /// first for the types known_hosts holds for the host, as OpenSSH does.
    pub host_key_algorithms: Option<Vec<String>>,
    /// Try the ssh-agent (`SSH_AUTH_SOCK`) first (default true).
    pub use_agent: bool,
    /// The ssh-agent's socket, where it is not `SSH_AUTH_SOCK`'s (OpenSSH's `IdentityAgent`:
    /// a path, or `$NAME` for another variable's; `none` clears [`use_agent`](Self::use_agent)).
    pub agent_socket: Option<PathBuf>,
    /// Offer only the agent's keys that are among `identities` (OpenSSH's `IdentitiesOnly`;
    /// default false: those first, then the agent's others).
    pub identities_only: bool,
    /// A password to try last (never taken from argv by the CLI).
    pub password: Option<String>,
    /// Authenticate with keys, the agent's or files (OpenSSH's `PubkeyAuthentication`;
    /// default true).
    pub pubkey_authentication: bool,
    /// Authenticate with the password (OpenSSH's `PasswordAuthentication`; default true);
    /// when false, [`password`](Self::password) is never sent and no program should ask for
    /// one.
    pub password_authentication: bool,
    /// The order the methods are tried in, those missing not at all (OpenSSH's
    /// `PreferredAuthentications`; default [`AuthMethod::DEFAULT_ORDER`]). The server's own
    /// list still decides which it takes.
    pub auth_order: Vec<AuthMethod>,
    /// Environment variables the server is asked to set for commands and shells: OpenSSH's
    /// `SetEnv NAME=VALUE`, and `SendEnv NAME` (`*` and `?` patterns) for local variables. A
    /// server sets only those its `AcceptEnv` names, and says nothing of the others.
    pub env: Vec<(String, String)>,
    /// The `SetEnv` pairs of the config, in order (they are in [`env`](Self::env) too), for
    /// a program that shows the config as `ssh -G` does.
    pub set_env: Vec<(String, String)>,
    /// The `SendEnv` patterns of the config, as OpenSSH adds them up (`-PATTERN` taking back
    /// earlier ones), for a program that shows the config as `ssh -G` does; the local
    /// variables they match are in [`env`](Self::env).
    pub send_env: Vec<String>,
    /// Never ask a person for a password or passphrase (OpenSSH's `BatchMode yes`). The
    /// library never asks; a program that would (as `netkit ssh` on a terminal) reads this.
    pub batch_mode: bool,
    /// The config file's `LogLevel` (`ERROR`, `QUIET`, ...), as written, for a program that
    /// logs to follow (the library only logs).
    pub log_level: Option<String>,
    /// A forward that cannot be set up ends the session (OpenSSH's `ExitOnForwardFailure
    /// yes`); otherwise it is a warning and the session goes on. Read by the program that
    /// sets the forwards up, as `netkit ssh -L/-R/-D`.
    pub exit_on_forward_failure: bool,
    /// The config file's `LocalForward`, `RemoteForward` and `DynamicForward` lines for this
    /// host, written as `ssh -L`, `-R` and `-D` take them (`[BIND:]PORT:HOST:PORT`,
    /// `[BIND:]PORT`). Read by the program that sets forwards up, as `netkit ssh`; a program
    /// that only copies files (as sftp) leaves them alone.
    pub forwards: ConfiguredForwards,
    /// Every forward is dropped, the flags' (`-L`, `-R`, `-D`) as the config file's
    /// ([`forwards`](Self::forwards) is left empty): OpenSSH's `ClearAllForwardings yes`,
    /// which scp, sftp and sshfs pass so that a file transfer opens no tunnel of the user's.
    /// Read by the program that sets forwards up.
    pub clear_all_forwardings: bool,
    /// How many times a person is asked for a password, each wrong one asked again
    /// (OpenSSH's `NumberOfPasswordPrompts`, 3 unless set); 0 never asks. Read by the program
    /// that asks.
    pub password_prompts: u32,
    /// Reach the host through this one (OpenSSH's `ProxyJump`, `-J`): the connection is a
    /// direct-tcpip channel from the jump host, which may have a jump host of its own. The
    /// host key checked is still this host's.
    pub jump: Option<Box<Config>>,
    /// The jump hosts as written (`ProxyJump`, `-J`: `%` tokens and `ssh://` forms left as
    /// they are), for `ssh -G`, which prints them so; `None` without any.
    pub proxy_jump: Option<String>,
    /// Run this command under `/bin/sh` and speak SSH over its stdin and stdout instead of
    /// connecting (OpenSSH's `ProxyCommand`; `%h`, `%p`, `%r`, `%n` and `%%` are expanded).
    /// `jump` wins when both are set; a config file sets only the one it names first.
    pub proxy_command: Option<String>,
    /// The command to run when none is given (OpenSSH's `RemoteCommand`), as written;
    /// [`expanded_remote_command`](Self::expanded_remote_command) expands its tokens. Read by
    /// the program that runs commands, as `netkit ssh`.
    pub remote_command: Option<String>,
    /// Whether to ask for a remote terminal (OpenSSH's `RequestTTY`); `None` when the config
    /// does not say. Read by the program that runs commands; its own flags (`-t`, `-T`) win.
    pub request_tty: Option<RequestTty>,
    /// The escape character on a remote terminal (OpenSSH's `EscapeChar`); `None` when the
    /// config does not say. Read by the program that runs commands; its `-e` wins.
    pub escape_char: Option<EscapeChar>,
    /// Whether the escape `~C` opens the command line that adds and cancels forwards
    /// (OpenSSH 9.2's `EnableEscapeCommandline`; default false, as there).
    pub escape_command_line: bool,
    /// What the session runs (OpenSSH's `SessionType`); `None` when the config does not say.
    /// Read by the program that runs commands; its own flags (`-N`, `-s`) win.
    pub session_type: Option<SessionType>,
    /// The remote side gets no stdin, EOF at once (OpenSSH's `StdinNull yes`, `ssh -n`).
    /// [`run_many_with`](crate::run_many_with) sends that host none; one session's stdin is
    /// the program's to withhold.
    pub stdin_null: bool,
    /// Go to the background once authenticated (OpenSSH's `ForkAfterAuthentication yes`,
    /// `ssh -f`). Read by the program that runs commands.
    pub fork_after_authentication: bool,
    /// Whether [`local_command`](Self::local_command) runs (OpenSSH's `PermitLocalCommand`;
    /// default false, as there).
    pub permit_local_command: bool,
    /// A command to run here once connected (OpenSSH's `LocalCommand`), as written;
    /// [`expanded_local_command`](Self::expanded_local_command) expands its tokens. Read by
    /// the program that runs commands, as `netkit ssh`.
    pub local_command: Option<String>,
    /// Agent forwarding was asked for (OpenSSH's `ForwardAgent yes`, `ssh -A`), which netkit
    /// does not do: for the program to say so, as ssh's flags are said.
    pub forward_agent: bool,
    /// X11 forwarding was asked for (OpenSSH's `ForwardX11 yes`, `ssh -X`), which netkit does
    /// not do: as [`forward_agent`](Self::forward_agent).
    pub forward_x11: bool,
}

/// What `Debug` shows for a secret: configs get logged, passwords must not be.
const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured without `..`: a new field must be placed here, shown or redacted.
        let Config {
            host,
            original_host,
            port,
            user,
            address_family,
            bind_address,
            connection_attempts,
            connect_timeout,
            handshake_timeout,
            connect_timeout_set,
            timeout,
            exec_timeout,
            keepalive,
            keepalive_count,
            known_hosts,
            more_known_hosts,
            global_known_hosts,
            keeps_new_keys,
            revoked_host_keys,
            host_key_policy,
            hash_known_hosts,
            host_key_alias,
            identities,
            identity_files,
            default_identities,
            asks_passphrases,
            compression,
            ciphers,
            kex_algorithms,
            macs,
            host_key_algorithms,
            use_agent,
            agent_socket,
            identities_only,
            password,
            pubkey_authentication,
            password_authentication,
            auth_order,
            env,
            set_env,
            send_env,
            batch_mode,
            log_level,
            exit_on_forward_failure,
            forwards,
            clear_all_forwardings,
            password_prompts,
            jump,
            proxy_jump,
            proxy_command,
            remote_command,
            request_tty,
            escape_char,
            escape_command_line,
            session_type,
            stdin_null,
            fork_after_authentication,
            permit_local_command,
            local_command,
            forward_agent,
            forward_x11,
        } = self;
        f.debug_struct("Config")
            .field("host", host)
            .field("original_host", original_host)
            .field("port", port)
            .field("user", user)
            .field("address_family", address_family)
            .field("bind_address", bind_address)
            .field("connection_attempts", connection_attempts)
            .field("connect_timeout", connect_timeout)
            .field("handshake_timeout", handshake_timeout)
            .field("connect_timeout_set", connect_timeout_set)
            .field("timeout", timeout)
            .field("exec_timeout", exec_timeout)
            .field("keepalive", keepalive)
            .field("keepalive_count", keepalive_count)
            .field("known_hosts", known_hosts)
            .field("more_known_hosts", more_known_hosts)
            .field("global_known_hosts", global_known_hosts)
            .field("keeps_new_keys", keeps_new_keys)
            .field("revoked_host_keys", revoked_host_keys)
            .field("host_key_policy", host_key_policy)
            .field("hash_known_hosts", hash_known_hosts)
            .field("host_key_alias", host_key_alias)
            .field("identities", identities)
            .field("identity_files", identity_files)
            .field("default_identities", default_identities)
            .field("asks_passphrases", asks_passphrases)
            .field("compression", compression)
            .field("ciphers", ciphers)
            .field("kex_algorithms", kex_algorithms)
            .field("macs", macs)
            .field("host_key_algorithms", host_key_algorithms)
            .field("use_agent", use_agent)
            .field("agent_socket", agent_socket)
            .field("identities_only", identities_only)
            .field("password", &password.as_ref().map(|_| REDACTED))
            .field("pubkey_authentication", pubkey_authentication)
            .field("password_authentication", password_authentication)
            .field("auth_order", auth_order)
            .field("env", env)
            .field("set_env", set_env)
            .field("send_env", send_env)
            .field("batch_mode", batch_mode)
            .field("log_level", log_level)
            .field("exit_on_forward_failure", exit_on_forward_failure)
            .field("forwards", forwards)
            .field("clear_all_forwardings", clear_all_forwardings)
            .field("password_prompts", password_prompts)
            .field("jump", jump)
            .field("proxy_jump", proxy_jump)
            .field("proxy_command", proxy_command)
            .field("remote_command", remote_command)
            .field("request_tty", request_tty)
            .field("escape_char", escape_char)
            .field("escape_command_line", escape_command_line)
            .field("session_type", session_type)
            .field("stdin_null", stdin_null)
            .field("fork_after_authentication", fork_after_authentication)
            .field("permit_local_command", permit_local_command)
            .field("local_command", local_command)
            .field("forward_agent", forward_agent)
            .field("forward_x11", forward_x11)
            .finish()
    }
}

/// OpenSSH's `RequestTTY`: when a session asks the server for a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestTty {
    /// Never (`ssh -T`).
    No,
    /// When the local stdin is a terminal (`ssh -t`).
    Yes,
    /// Always, even without a local terminal (`ssh -tt`).
    Force,
    /// For a login shell on a terminal, not for a command (the default).
    Auto,
}

/// OpenSSH's `SessionType`: what a session runs once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionType {
    /// Nothing: the connection only carries forwards (`ssh -N`).
    None,
    /// The command names a subsystem of the server (`ssh -s`).
    Subsystem,
    /// The command, or a login shell (the default).
    Default,
}

/// OpenSSH's `EscapeChar` (and `ssh -e`): the key that starts an escape such as `~.` on a
/// remote terminal, or none (`EscapeChar none`: every key goes to the remote side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EscapeChar(pub Option<u8>);

impl EscapeChar {
    /// Parses `value` as OpenSSH does: one character, `^X` for a control key (`^]` is 0x1d), or
    /// `none`; `None` for anything else.
    pub fn parse(value: &str) -> Option<EscapeChar> {
        match value.as_bytes() {
            b"none" => Some(EscapeChar(None)),
            &[c] if c.is_ascii() => Some(EscapeChar(Some(c))),
            &[b'^', c @ 64..128] => Some(EscapeChar(Some(c & 0x1f))),
            _ => None,
        }
    }
}

impl std::fmt::Display for EscapeChar {
    /// As `ssh -G` shows it: `none`, `^]` for a control key, or the character.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("none"),
            Some(c) if c < 0x20 => write!(f, "^{}", char::from(c | 0x40)),
            Some(c) => write!(f, "{}", char::from(c)),
        }
    }
}

/// What a destination names: `[user@]host[:port]` (IPv6 as `[::1]:port`) or
/// `ssh://[user[;params]@]host[:port]` (the user percent-decoded, as OpenSSH reads it). A
/// program that lets flags fill in what it leaves out (`-l`, `-p`) asks it what was named.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Destination<'a> {
    /// The user, if named.
    pub user: Option<Cow<'a, str>>,
    /// The host name or address (an IPv6 one without its brackets).
    pub host: &'a str,
    /// The port, if named.
    pub port: Option<u16>,
}

impl<'a> Destination<'a> {
    /// Parses `dest`.
    ///
    /// # Errors
    /// [`Error::BadDestination`] when the port is not a number, the host is empty or an
    /// `ssh://` URI has a path; [`Error::BadHostName`] when the host name holds a character
    /// no host name has.
    pub fn parse(dest: &'a str) -> Result<Destination<'a>, Error> {
        let bad = || Error::BadDestination(dest.to_owned());
        let uri = dest.strip_prefix("ssh://");
        let named = uri.map_or(dest, |rest| rest.strip_suffix('/').unwrap_or(rest));
        if uri.is_some() && named.contains('/') {
            return Err(bad());
        }
        // A URI's user ends at its first `@` and may be percent-encoded (`alice%40corp`), as
        // RFC 3986 and OpenSSH's parse_uri read it; `ssh://a@b@host` is then no host. Plain
        // `user@host` ends at the last, as ssh's command line takes it.
        let at = if uri.is_some() {
            named.split_once('@')
        } else {
            named.rsplit_once('@')
        };
        let (user, rest) = match at {
            Some((user, rest)) if uri.is_some() => {
                // `;fingerprint=...` connection parameters (RFC draft) are ignored, as OpenSSH does.
                let user = user.split_once(';').map_or(user, |(user, _)| user);
                let user = percent_encoding::percent_decode_str(user)
                    .decode_utf8()
                    .map_err(|_| bad())?;
                if user.is_empty() || rest.contains('@') {
                    return Err(bad());
                }
                (Some(user), rest)
            }
            Some((user, rest)) if !user.is_empty() => (Some(Cow::Borrowed(user)), rest),
            Some(_) => return Err(bad()),
            None => (None, named),
        };
        let port_number = |p: &str| p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad);
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(port_number(p)?),
                None if after.is_empty() => None,
                None => return Err(bad()),
            };
            (host, port)
        } else if rest.matches(':').count() > 1 {
            // A bare IPv6 address (`::1`, `fe80::1`): ssh takes it whole, with no port.
            (rest, None)
        } else {
            match rest.split_once(':') {
                Some((host, p)) => (host, Some(port_number(p)?)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        if !valid_host_name(host) {
            return Err(Error::BadHostName(dest.to_owned()));
        }
        Ok(Destination { user, host, port })
    }
}

/// `host:port` as ssh writes it, an IPv6 address in brackets (`[::1]:22`).
#[must_use]
pub fn host_port(host: &str, port: u16) -> String {
    format!("{}:{port}", bracketed(host))
}

/// `host` as it stands before `:port` or `:path`: an IPv6 address in brackets, whose colons
/// would be read as the separator (`::1:f1` is itself an address).
pub(crate) fn bracketed(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

/// As OpenSSH's `valid_hostname`, and no known_hosts pattern character: the name is written
/// there as the host's pattern, where `foo,*` would make its key every host's.
fn valid_host_name(host: &str) -> bool {
    !host.starts_with('-')
        && !host
            .chars()
            .any(|c| "'`\"$\\;&<>|(){},*?!".contains(c) || c.is_whitespace() || c.is_control())
}

/// Port forwards asked for by an OpenSSH config file, as `ssh -L`, `-R` and `-D` write them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfiguredForwards {
    /// `LocalForward`s as `[BIND:]PORT:HOST:PORT`.
    pub local: Vec<String>,
    /// `RemoteForward`s as `[BIND:]PORT:HOST:PORT`.
    pub remote: Vec<String>,
    /// `DynamicForward`s as `[BIND:]PORT`.
    pub dynamic: Vec<String>,
}

/// A private key file and its passphrase.
#[derive(Clone)]
#[non_exhaustive]
pub struct Identity {
    /// The private key file (OpenSSH or PEM format).
    pub path: PathBuf,
    /// Its passphrase, if encrypted.
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("path", &self.path)
            .field("passphrase", &self.passphrase.as_ref().map(|_| REDACTED))
            .finish()
    }
}

impl Identity {
    /// A key file, with an optional passphrase.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>, passphrase: Option<String>) -> Self {
        Identity {
            path: path.into(),
            passphrase,
        }
    }

    /// Whether the key file is protected by a passphrase (OpenSSH, PEM or PKCS#8 format);
    /// false when it cannot be read.
    #[must_use]
    pub fn is_encrypted(&self) -> bool {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return false;
        };
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || text.contains("Proc-Type: 4,ENCRYPTED")
        {
            return true;
        }
        let bytes = openssh_bytes(&text);
        let cipher = bytes
            .as_deref()
            .and_then(|b| b.strip_prefix(b"openssh-key-v1\0"))
            .and_then(length_prefixed);
        cipher.is_some_and(|(name, _)| name != b"none")
    }

    /// What this key is when netkit cannot offer it from a file: a security key (`sk-…`,
    /// FIDO), which libssh2 signs with only through an agent, or a DSA key, which OpenSSH
    /// 9.8 dropped and servers refuse. Offered, they failed as if refused by the server, or
    /// a DSA key was called malformed.
    pub(crate) fn unusable_kind(&self) -> Option<&'static str> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        if text.contains("-----BEGIN DSA PRIVATE KEY-----") {
            return Some("a DSA key (ssh-dss), which OpenSSH 9.8 dropped");
        }
        let blob = self.public_blob()?;
        let (kind, _) = length_prefixed(&blob)?;
        if kind.starts_with(b"sk-") {
            Some("a security key (FIDO, -sk) from a file: load it into ssh-agent (ssh-add)")
        } else if kind == b"ssh-dss" {
            Some("a DSA key (ssh-dss), which OpenSSH 9.8 dropped")
        } else {
            None
        }
    }

    /// The public key blob (as an agent lists it): from the `.pub` file beside the key, from
    /// the file itself when it is a public key, or from an OpenSSH private key file, which
    /// holds it in the clear.
    pub(crate) fn public_blob(&self) -> Option<Vec<u8>> {
        let mut pub_path = self.path.clone().into_os_string();
        pub_path.push(".pub");
        if let Ok(line) = std::fs::read_to_string(&pub_path) {
            let encoded = line.split_whitespace().nth(1)?;
            return base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok();
        }
        let text = std::fs::read_to_string(&self.path).ok()?;
        // A public key named itself (`IdentityFile key.pub` with the private half only in
        // the agent), as ssh takes it to pick that agent key.
        let mut fields = text.split_whitespace();
        if let (Some(kind), Some(encoded)) = (fields.next(), fields.next())
            && (kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
        {
            return base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok();
        }
        let bytes = openssh_bytes(&text)?;
        let mut rest = bytes.strip_prefix(b"openssh-key-v1\0")?;
        // The cipher, the KDF and its options, the key count, then the first public key.
        for _ in 0..3 {
            rest = length_prefixed(rest)?.1;
        }
        length_prefixed(rest.get(4..)?).map(|(blob, _)| blob.to_vec())
    }
}

/// The decoded body of an OpenSSH-format private key (PROTOCOL.key).
fn openssh_bytes(text: &str) -> Option<Vec<u8>> {
    let body = text
        .split("-----BEGIN OPENSSH PRIVATE KEY-----")
        .nth(1)?
        .split("-----END")
        .next()?;
    let encoded: String = body.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// An SSH wire string: a 4-byte big-endian length, then that many bytes; and what follows.
fn length_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    Some((bytes.get(4..4 + len)?, bytes.get(4 + len..)?))
}

/// `text` with OpenSSH's `%` tokens replaced by their values in `tokens` and `%%` by a
/// percent sign; the error names a token that is not in `tokens`.
pub(crate) fn expand_tokens(text: &str, tokens: &[(char, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(token) => match tokens.iter().find(|(name, _)| *name == token) {
                Some((_, value)) => {
                    shell_safe(token, value)?;
                    out.push_str(value);
                }
                None => return Err(format!("unknown token %{token}")),
            },
            None => return Err("a lone % at the end".into()),
        }
    }
    Ok(out)
}

/// `text` with each `${NAME}` replaced by the environment variable's value, as OpenSSH's
/// `dollar_expand`; one not set is an error, as there.
fn expand_variables(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "a ${ without its }".to_owned())?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("${{{name}}} is no environment variable name"));
        }
        let value = std::env::var(name)
            .map_err(|_| format!("the environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Refuses a host or user name for `%h`, `%n` or `%r` that would make a shell running the
/// expanded text (a `ProxyCommand`, `Match exec`) do more than name it, as OpenSSH 9.6
/// refuses them (CVE-2023-51385): a destination may come from a hosts list or a git URL,
/// not from the user's hand. The characters are OpenSSH's.
fn shell_safe(token: char, value: &str) -> Result<(), String> {
    let chars: Vec<char> = value.chars().collect();
    let bad_at = |i: usize| {
        let c = chars[i];
        match token {
            'h' | 'n' => "'`\"$\\;&<>|(){}".contains(c) || c.is_whitespace() || c.is_control(),
            _ => {
                "'`\";&<>|(){}".contains(c)
                    || c.is_control()
                    || (c.is_whitespace() && chars.get(i + 1) == Some(&'-'))
                    || (c == '\\' && i + 1 == chars.len())
            }
        }
    };
    let what = match token {
        'h' | 'n' => "hostname",
        'r' => "remote username",
        _ => return Ok(()),
    };
    if value.starts_with('-') || (0..chars.len()).any(bad_at) {
        return Err(format!("{what} {value:?} contains invalid characters"));
    }
    Ok(())
}

/// The text of the user's config file or of an included one, which must be safe from other
/// users, as OpenSSH reads them: one they can write could name a `ProxyCommand` to run as us.
/// A file is safe when root or we own it and no one else can write it; a group may write it
/// when it is the owner's own (Debian's user-private groups, which OpenSSH there accepts).
fn read_guarded(path: &Path, whose: Whose) -> Result<String, Fault> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let uid = nix::unistd::getuid().as_raw();
    let private_group = || {
        let owner = nix::unistd::User::from_uid(meta.uid().into())
            .ok()
            .flatten();
        let group = nix::unistd::Group::from_gid(meta.gid().into())
            .ok()
            .flatten();
        owner.zip(group).is_some_and(|(owner, group)| {
            owner.gid == group.gid
                && owner.name == group.name
                && group.mem.iter().all(|member| *member == owner.name)
        })
    };
    let safe = (meta.uid() == 0 || meta.uid() == uid)
        && meta.mode() & 0o002 == 0
        && (meta.mode() & 0o020 == 0 || private_group());
    if !safe {
        // Another user's file cannot be mended with chmod, which the hint said.
        let hint = if meta.uid() == 0 || meta.uid() == uid {
            "others could write it; chmod go-w it".to_owned()
        } else {
            format!("owned by uid {}; chown it to yourself", meta.uid())
        };
        return Err(Fault::File(format!(
            "bad owner or permissions on {} ({hint})",
            path.display()
        )));
    }
    read_config(path, whose)
}

/// Whose config a text is, which says whether its values are checked against ssh 9.2's
/// ([`Takes`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Whose {
    /// The user's (`-o`, `~/.ssh/config`, `-F`, their Includes): checked, as ssh checks them.
    User,
    /// The system file's and its Includes': a distribution's ssh may be newer or patched and
    /// take more (Fedora's crypto policies name algorithms ssh 9.2 lacks), and a value
    /// refused there stopped the whole file, so its Port and every other line were lost.
    System,
}

/// The text of an ssh config file: a byte that is not UTF-8 (a Latin-1 comment) read as
/// U+FFFD, where it failed every connection; a byte-order mark left out, where it made the
/// first line unknown, and its `Host` block's options apply to every host. Each line comes
/// as [`openssh_line`] writes it; one OpenSSH refuses (unbalanced quotes, an empty argument)
/// is an error naming its line, as in ssh.
fn read_config(path: &Path, whose: Whose) -> Result<String, Fault> {
    let bytes = std::fs::read(path).map_err(|e| Fault::File(e.to_string()))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = String::from_utf8_lossy(bytes);
    let mut read = String::with_capacity(text.len());
    for (at, line) in text.lines().enumerate() {
        let at = at + 1;
        match openssh_line(line, whose) {
            Ok(line) => read.push_str(&line),
            Err(LineError::NotCarried(why)) => {
                // The file and line, for the error of a host it applies to.
                let why = format!("{}\n{at}\n{why}", path.display());
                read.push_str(&format!("{NOT_CARRIED} {}", carried_command(&why)));
            }
            Err(LineError::Refused(why)) => {
                return Err(Fault::Line {
                    file: path.to_owned(),
                    at,
                    why,
                });
            }
        }
        read.push('\n');
    }
    Ok(read)
}

/// Options whose value is the rest of the line as written, for a shell: OpenSSH keeps its
/// quotes and spacing (`RemoteCommand echo "a   b"` runs just that).
const COMMANDS: [&str; 4] = [
    "proxycommand",
    "remotecommand",
    "localcommand",
    "knownhostscommand",
];

/// Whether `args` is one host name and nothing more: no user, port, list or `none`.
fn bare_host(args: &[String]) -> bool {
    match args {
        [host] => {
            !host.eq_ignore_ascii_case("none")
                && !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
        _ => false,
    }
}

/// A config line (a file's or an `ssh -o` one) read as OpenSSH's readconf.c reads it, written
/// back in the one form ssh2-config reads without loss: the keyword, then each argument of
/// [`split_words`] on its own, in double quotes (`\"` and `\\` escaped) unless it is plain.
/// ssh2-config hands back a lone quoted argument unquoted and several as written, which
/// [`arguments`] takes apart; a command (see [`COMMANDS`]) is its one argument, as written,
/// carried as [`carried_command`] writes it. Empty for a blank line or a comment.
///
/// ssh2-config knows double quotes only, and no backslash outside them: `SetEnv A=b\ c`,
/// `User 'x'` and `SetEnv "A=it's"` came out other than ssh reads them, or were refused.
fn openssh_line(line: &str, whose: Whose) -> Result<String, LineError> {
    // As readconf.c: trailing spaces, tabs and form feeds are no part of the value.
    let line = line.trim();
    let keyword_end = line
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(keyword_end);
    if keyword.is_empty() || keyword.starts_with('#') {
        return Ok(String::new());
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    let refused = |why: &str| Err(LineError::Refused(format!("{keyword} {rest}: {why}")));
    let (args, open) = split_words(rest);
    // Commands too: ssh splits their line only to check its quotes.
    if open {
        return refused("invalid quotes");
    }
    if args.first().is_none_or(String::is_empty) {
        return refused("missing argument");
    }
    let lower = keyword.to_ascii_lowercase();
    // ssh reads ProxyJump's line as written, quotes and all, and refuses a host list in
    // quotes (`ProxyJump "a,b"` was taken as two hops). One host name alone in quotes in a
    // file, `ProxyJump "bastion"`, it connects through (the quotes go through a shell); not
    // `"u@h"`, `"h:22"` or `"none"`, nor anything quoted in `-o` ([`checked_option`]).
    if lower == "proxyjump" && rest.contains(['"', '\'']) && !bare_host(&args) {
        return refused("Invalid ProxyJump");
    }
    // ssh takes a LocalForward's listening side and its target as two arguments; one,
    // quoted or not (`"8080 localhost:80"`, `8080:localhost:80`), forwards nothing.
    if lower == "localforward" && args.len() == 1 {
        return refused("missing target argument");
    }
    if COMMANDS.contains(&lower.as_str()) {
        return Ok(format!("{keyword} {}", carried_command(rest)));
    }
    // As ssh checks a value on reading its line, in a block for another host too.
    if let (Whose::User, Some((_, takes))) = (whose, VALUES.iter().find(|(name, _)| *name == lower))
    {
        takes
            .check(&args)
            .map_err(|why| LineError::Refused(format!("{keyword} {rest}: {why}")))?;
    }
    // readconf.c: "extra arguments at end of line" (`User a b` was user `a`).
    if args.len() > 1
        && OPTIONS_READ.contains(&lower.as_str())
        && !SEVERAL.contains(&lower.as_str())
    {
        return refused("extra arguments at end of line");
    }
    // ssh2-config reads these as plain seconds, where ssh takes `1m30s` (and `-o
    // ConnectTimeout=5s` was refused); what ssh's convtime refuses is named here.
    let args = if TIMES.contains(&lower.as_str()) {
        let time = args.first().map_or("", String::as_str);
        // ssh reads `none` (so written, `NONE` is an invalid time) as no value: the option
        // stays unset, for a later line to set or for the default, where it was refused.
        if time == "none" {
            return Ok(String::new());
        }
        match seconds(time) {
            Some(time) => vec![time.to_string()],
            None => return refused("invalid time value"),
        }
    } else {
        args
    };
    let mut out = keyword.to_owned();
    for arg in &args {
        out.push(' ');
        let plain = !arg.starts_with(['#', '='])
            && !arg.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '#'));
        if plain {
            out.push_str(arg);
        } else {
            out.push('"');
            for c in arg.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    // ssh2-config cuts a line at a `#` outside double quotes, counting escaped ones too: a
    // `#` after an odd number of `"` in one argument would be cut off without a word.
    let mut quoted = false;
    for c in out.chars() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => {
                return Err(LineError::NotCarried(format!(
                    "{keyword} {rest}: netkit cannot read a # after a \" in one argument"
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What ssh 9.2's readconf.c takes as an option's value. ssh checks it when it reads the line,
/// whether or not its block applies, in a file and in `-o` alike, and refuses the rest:
/// netkit took `ControlMaster bogus` or `Ciphers aes128-ctr,bogus` and went on (skipping the
/// unknown name), where the same config stops ssh.
#[derive(Clone, Copy)]
enum Takes {
    /// One of these words, in any case (readconf.c's `multistate` tables and `parse_flag`).
    OneOf(&'static [&'static str]),
    /// A whole number from 0 to `INT_MAX` (readconf.c's `parse_int`).
    Number,
    /// RekeyLimit's: a byte count (`1G`, `512M`), `default` or `none`, then optionally a time.
    RekeyLimit,
    /// ControlPersist's: a flag or a time.
    FlagOrTime,
    /// A comma-separated list of these names (`-` first: patterns, which ssh does not check;
    /// `+` or `^` first: names), and the words of ssh's refusal.
    Algorithms(&'static [&'static str], &'static str),
}

/// `parse_flag`'s words.
const FLAG: &[&str] = &["yes", "no", "true", "false"];

/// `multistate_yesnoask`'s words.
const YES_NO_ASK: &[&str] = &["yes", "no", "true", "false", "ask"];

/// ssh 9.2's cipher names (`ssh -Q cipher`).
const OPENSSH_CIPHERS: &[&str] = &[
    "3des-cbc",
    "aes128-cbc",
    "aes192-cbc",
    "aes256-cbc",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
];

/// ssh 9.2's MAC names (`ssh -Q mac`).
const OPENSSH_MACS: &[&str] = &[
    "hmac-sha1",
    "hmac-sha1-96",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-md5",
    "hmac-md5-96",
    "umac-64@openssh.com",
    "umac-128@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "hmac-sha1-96-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-md5-etm@openssh.com",
    "hmac-md5-96-etm@openssh.com",
    "umac-64-etm@openssh.com",
    "umac-128-etm@openssh.com",
];

/// ssh 9.2's key exchange names (`ssh -Q kex`).
const OPENSSH_KEX: &[&str] = &[
    "diffie-hellman-group1-sha1",
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group-exchange-sha1",
    "diffie-hellman-group-exchange-sha256",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
];

/// ssh 9.2's key and signature names (`ssh -Q key-sig`).
const OPENSSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
    "ssh-dss-cert-v01@openssh.com",
    "ssh-rsa",
    "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-512-cert-v01@openssh.com",
];

/// The options whose values ssh 9.2 checks (lower case), and what each takes.
const VALUES: &[(&str, Takes)] = &[
    ("addressfamily", Takes::OneOf(&["inet", "inet6", "any"])),
    ("batchmode", Takes::OneOf(FLAG)),
    ("canonicalizefallbacklocal", Takes::OneOf(FLAG)),
    (
        "canonicalizehostname",
        Takes::OneOf(&["yes", "no", "true", "false", "always"]),
    ),
    ("canonicalizemaxdots", Takes::Number),
    ("checkhostip", Takes::OneOf(FLAG)),
    ("clearallforwardings", Takes::OneOf(FLAG)),
    // Not `true` or `false`: readconf.c's `multistate_compression`.
    ("compression", Takes::OneOf(&["yes", "no"])),
    ("connectionattempts", Takes::Number),
    (
        "controlmaster",
        Takes::OneOf(&["yes", "no", "true", "false", "ask", "auto", "autoask"]),
    ),
    ("controlpersist", Takes::FlagOrTime),
    ("enableescapecommandline", Takes::OneOf(FLAG)),
    ("enablesshkeysign", Takes::OneOf(FLAG)),
    ("exitonforwardfailure", Takes::OneOf(FLAG)),
    ("forkafterauthentication", Takes::OneOf(FLAG)),
    ("forwardx11", Takes::OneOf(FLAG)),
    ("forwardx11trusted", Takes::OneOf(FLAG)),
    ("gatewayports", Takes::OneOf(FLAG)),
    ("gssapiauthentication", Takes::OneOf(FLAG)),
    ("gssapidelegatecredentials", Takes::OneOf(FLAG)),
    ("hashknownhosts", Takes::OneOf(FLAG)),
    ("hostbasedauthentication", Takes::OneOf(FLAG)),
    ("identitiesonly", Takes::OneOf(FLAG)),
    ("kbdinteractiveauthentication", Takes::OneOf(FLAG)),
    (
        "loglevel",
        Takes::OneOf(&[
            "quiet", "fatal", "error", "info", "verbose", "debug", "debug1", "debug2", "debug3",
        ]),
    ),
    ("nohostauthenticationforlocalhost", Takes::OneOf(FLAG)),
    ("numberofpasswordprompts", Takes::Number),
    ("passwordauthentication", Takes::OneOf(FLAG)),
    ("permitlocalcommand", Takes::OneOf(FLAG)),
    ("proxyusefdpass", Takes::OneOf(FLAG)),
    (
        "pubkeyauthentication",
        Takes::OneOf(&["yes", "no", "true", "false", "unbound", "host-bound"]),
    ),
    ("rekeylimit", Takes::RekeyLimit),
    (
        "requesttty",
        Takes::OneOf(&["yes", "no", "true", "false", "force", "auto"]),
    ),
    ("serveralivecountmax", Takes::Number),
    (
        "sessiontype",
        Takes::OneOf(&["none", "subsystem", "default"]),
    ),
    ("stdinnull", Takes::OneOf(FLAG)),
    (
        "stricthostkeychecking",
        Takes::OneOf(&["yes", "no", "true", "false", "ask", "off", "accept-new"]),
    ),
    ("streamlocalbindunlink", Takes::OneOf(FLAG)),
    ("tcpkeepalive", Takes::OneOf(FLAG)),
    (
        "tunnel",
        Takes::OneOf(&["yes", "no", "true", "false", "ethernet", "point-to-point"]),
    ),
    ("updatehostkeys", Takes::OneOf(YES_NO_ASK)),
    ("verifyhostkeydns", Takes::OneOf(YES_NO_ASK)),
    ("visualhostkey", Takes::OneOf(FLAG)),
    (
        "ciphers",
        Takes::Algorithms(OPENSSH_CIPHERS, "Bad SSH2 cipher spec"),
    ),
    ("macs", Takes::Algorithms(OPENSSH_MACS, "Bad SSH2 MAC spec")),
    (
        "kexalgorithms",
        Takes::Algorithms(OPENSSH_KEX, "Bad SSH2 KexAlgorithms"),
    ),
    (
        "hostkeyalgorithms",
        Takes::Algorithms(OPENSSH_KEY_TYPES, "Bad key types"),
    ),
];

impl Takes {
    /// Why `args` (the line's words after the keyword) are not a value ssh takes, if so.
    fn check(self, args: &[String]) -> Result<(), String> {
        let value = args.first().map_or("", String::as_str);
        match self {
            Takes::OneOf(words) => {
                if words.iter().any(|w| w.eq_ignore_ascii_case(value)) {
                    return Ok(());
                }
                let (last, others) = words.split_last().unwrap_or((&"", &[]));
                Err(format!("expected {} or {last}", others.join(", ")))
            }
            Takes::Number => match value.parse::<i64>() {
                Ok(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(()),
                _ => Err("expected a whole number from 0 to 2147483647".to_owned()),
            },
            Takes::FlagOrTime => {
                if FLAG.iter().any(|w| w.eq_ignore_ascii_case(value)) || seconds(value).is_some() {
                    return Ok(());
                }
                Err("expected yes, no or a time".to_owned())
            }
            Takes::RekeyLimit => {
                if !value.eq_ignore_ascii_case("default")
                    && !value.eq_ignore_ascii_case("none")
                    && !byte_count(value)
                {
                    return Err(
                        "expected a number of bytes (1G, 512M, ...), default or none".to_owned(),
                    );
                }
                match args.get(1).map(String::as_str) {
                    Some(time)
                        if time != "default" && time != "none" && seconds(time).is_none() =>
                    {
                        Err(format!("expected a time after the bytes, not {time}"))
                    }
                    _ => Ok(()),
                }
            }
            Takes::Algorithms(known, refusal) => {
                // ssh leaves a list of what to take away unchecked.
                if value.starts_with('-') {
                    return Ok(());
                }
                let list = value.strip_prefix(['+', '^']).unwrap_or(value);
                // A pattern matching one of the names is checked later, where ssh takes it.
                // ssh's check ends at an empty name (`a,`, `,a`, `a,,b`): it takes the list,
                // where netkit refused it; `assembled` passes the empty names over.
                // A name after `!` counts too: ssh's check of key types takes a negative match
                // as a match (`HostKeyAlgorithms ssh-ed25519,!ssh-dss`), and failing where
                // ssh would not is the worse side.
                let unknown = list
                    .split(',')
                    .take_while(|name| !name.is_empty())
                    .find(|name| {
                        let pattern = name.strip_prefix('!').unwrap_or(name);
                        !known
                            .iter()
                            .any(|k| crate::known_hosts::wildcard(pattern, k))
                    });
                match unknown {
                    // With the names there are: `-c rot13` said nothing of what to write.
                    Some(name) => Err(format!(
                        "{refusal}: unknown name \"{name}\" (known: {})",
                        known.join(",")
                    )),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Whether `value` is a byte count as ssh's `scan_scaled` (OpenBSD's fmt_scaled.c) reads
/// one: blanks, a sign, digits with at most one `.`, then the end, or a unit of B, K, M, G,
/// T, P or E in either case that no letter or digit follows (`1G,` and `100k,1h` are 1G and
/// 100k). A unit B, a `+` or a trailing comma was refused, stopping the whole config where
/// ssh 9.2 takes it; what scan_scaled refuses only as out of range (`8E`) is taken here.
fn byte_count(value: &str) -> bool {
    // C's isspace.
    let rest = value.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    let number_end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let (number, after) = rest.split_at(number_end);
    if number.matches('.').count() > 1 {
        return false;
    }
    let mut after = after.chars();
    match after.next() {
        None => true,
        Some(unit) => {
            "BKMGTPE".contains(unit.to_ascii_uppercase())
                && !after.next().is_some_and(|c| c.is_ascii_alphanumeric())
        }
    }
}

/// What stops a config file being read: the file itself, or one of its lines.
#[derive(Debug)]
enum Fault {
    /// The file (unreadable, unsafe) or the text as a whole.
    File(String),
    /// One line, in `file` (the one read or one it includes), as ssh names it.
    Line {
        file: PathBuf,
        at: usize,
        why: String,
    },
}

impl From<String> for Fault {
    fn from(why: String) -> Fault {
        Fault::File(why)
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::File(why) => f.write_str(why),
            Fault::Line { file, at, why } => write!(f, "{} line {at}: {why}", file.display()),
        }
    }
}

/// Why [`openssh_line`] gives no line.
#[derive(Debug)]
enum LineError {
    /// OpenSSH refuses the line too (unbalanced quotes, a missing or extra argument).
    Refused(String),
    /// OpenSSH takes the line, but ssh2-config cannot carry it: only a host it applies to
    /// is refused, as [`NOT_CARRIED`] marks it.
    NotCarried(String),
}

impl LineError {
    /// What is wrong, for a message.
    fn reason(self) -> String {
        match self {
            LineError::Refused(why) | LineError::NotCarried(why) => why,
        }
    }
}

/// The time-valued options netkit reads, which ssh reads with its `convtime`.
const TIMES: [&str; 2] = ["connecttimeout", "serveraliveinterval"];

/// The keyword [`read_config`] writes in place of a line ssh2-config cannot carry (its
/// reason, as [`carried_command`] writes a command): a host whose options hold it is refused
/// when it is resolved, where refusing the file stopped every host in it.
const NOT_CARRIED: &str = "NetkitNotCarried";

/// Options of several arguments (a command's is one, see [`COMMANDS`]), among those netkit
/// reads: the others take one, as readconf.c.
const SEVERAL: [&str; 6] = [
    "setenv",
    "sendenv",
    "localforward",
    "remoteforward",
    "globalknownhostsfile",
    "userknownhostsfile",
];

/// `text` as one plain word ssh2-config hands back unchanged: the hex digits of its bytes.
/// ssh2-config counts an escaped `"` as opening or closing a quote when it looks for a
/// comment, so a command such as `echo "#tag"` could not be written quoted
/// (`"echo \"#tag\""` was cut at the `#`); [`uncarried`] reads it back.
fn carried_command(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The text [`carried_command`] wrote, or `None` if `word` is not such.
fn uncarried(word: &str) -> Option<String> {
    let bytes = (0..word.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(word.get(at..at + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// OpenSSH's system-wide client config, read after the user's unless `-F` names a file.
pub const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// The config files a resolution reads: the user's (`-F`, or `None` for `~/.ssh/config`) and
/// the system-wide one, if any.
#[derive(Clone, Copy)]
struct Files<'a> {
    user: Option<&'a Path>,
    system: Option<&'a Path>,
}

/// The user's home: `$HOME` when it names an absolute path, else the password database's,
/// as OpenSSH takes it. An empty `HOME` made `~/.ssh/config` the current directory's
/// `.ssh/config` (a cloned repository's, and its ProxyCommand ran).
#[must_use]
pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|home| home.is_absolute())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|user| user.dir)
        })
        .unwrap_or_else(|| PathBuf::from("/"))
}

impl Config {
    /// OpenSSH's default ciphers, AES-GCM first when the CPU has AES instructions: OpenSSL's
    /// AES-GCM then costs a fraction of the CPU of libssh2's portable chacha20-poly1305, which
    /// bounds SFTP on fast links (see `vendor/libssh2-sys/NETKIT.md`); chacha20-poly1305
    /// first otherwise, as OpenSSH.
    #[must_use]
    pub fn default_ciphers() -> Vec<String> {
        let chacha = ["chacha20-poly1305@openssh.com"];
        let gcm = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"];
        let ctr = ["aes128-ctr", "aes192-ctr", "aes256-ctr"];
        let order = if aes_in_hardware() {
            [&gcm[..], &chacha, &ctr]
        } else {
            [&chacha[..], &ctr, &gcm]
        };
        order.concat().into_iter().map(str::to_owned).collect()
    }

    /// A config for `host` with the defaults.
    #[must_use]
    pub fn new(host: &str) -> Config {
        Config {
            host: host.to_owned(),
            original_host: host.to_owned(),
            port: 22,
            user: local_user(),
            address_family: AddressFamily::Any,
            bind_address: None,
            connection_attempts: 1,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: None,
            connect_timeout_set: None,
            timeout: Duration::from_secs(30),
            exec_timeout: None,
            keepalive: Duration::from_secs(15),
            keepalive_count: 3,
            known_hosts: home().join(".ssh/known_hosts"),
            more_known_hosts: vec![home().join(".ssh/known_hosts2")],
            global_known_hosts: ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]
                .map(PathBuf::from)
                .to_vec(),
            keeps_new_keys: true,
            revoked_host_keys: None,
            host_key_policy: HostKeyPolicy::Strict,
            hash_known_hosts: false,
            host_key_alias: None,
            identities: Vec::new(),
            identity_files: Vec::new(),
            compression: false,
            ciphers: Config::default_ciphers(),
            kex_algorithms: None,
            macs: None,
            host_key_algorithms: None,
            use_agent: true,
            agent_socket: None,
            identities_only: false,
            default_identities: true,
            asks_passphrases: false,
            password: None,
            pubkey_authentication: true,
            password_authentication: true,
            auth_order: AuthMethod::DEFAULT_ORDER.to_vec(),
            env: Vec::new(),
            set_env: Vec::new(),
            send_env: Vec::new(),
            batch_mode: false,
            log_level: None,
            exit_on_forward_failure: false,
            forwards: ConfiguredForwards::default(),
            clear_all_forwardings: false,
            password_prompts: 3,
            jump: None,
            proxy_jump: None,
            proxy_command: None,
            remote_command: None,
            request_tty: None,
            escape_char: None,
            escape_command_line: false,
            session_type: None,
            stdin_null: false,
            fork_after_authentication: false,
            permit_local_command: false,
            local_command: None,
            forward_agent: false,
            forward_x11: false,
        }
    }

    /// Parses `[user@]host[:port]` (IPv6 as `[::1]:port`), or the URI form ssh takes,
    /// `ssh://[user@]host[:port]`, over the defaults.
    ///
    /// # Errors
    /// [`Error::BadDestination`] when the port is not a number or the host is empty.
    pub fn from_destination(dest: &str) -> Result<Config, Error> {
        let named = Destination::parse(dest)?;
        let mut config = Config::new(named.host);
        if let Some(user) = named.user {
            config.user = user.into_owned();
        }
        if let Some(port) = named.port {
            config.port = port;
        }
        Ok(config)
    }

    /// Parses `dest` like [`Config::from_destination`], then applies the `Host` block of an
    /// OpenSSH client config that matches its host: `ssh_config`, or `~/.ssh/config` when it
    /// exists; `none` reads no file, as `ssh -F none`. What `dest` says wins; otherwise, as in
    /// OpenSSH, an option's first value does (an earlier line, or block, over a later one).
    ///
    /// Read: `HostName` (`%h`: the host as given), `User`, `Port`, `IdentityFile` (OpenSSH's
    /// `%d %h %i %k %l %n %p %r %u` tokens), `IdentitiesOnly`, `ProxyJump`, `ProxyCommand`,
    /// `AddressFamily`, `ConnectTimeout`, `Compression`, `ServerAliveInterval`,
    /// `StrictHostKeyChecking` (`no` adds unknown keys as `accept-new` does; a changed key is
    /// still refused), `UserKnownHostsFile` (every file), `BatchMode`, `PubkeyAuthentication`,
    /// `PasswordAuthentication`, `GlobalKnownHostsFile`, `HashKnownHosts`, `HostKeyAlias`,
    /// `SetEnv`, `SendEnv`,
    /// `ExitOnForwardFailure`, `LocalForward`, `RemoteForward`, `DynamicForward` (every line
    /// that applies, as OpenSSH adds them up), `Ciphers`, `KexAlgorithms`, `MACs`,
    /// `HostKeyAlgorithms`, `BindAddress`, `ConnectionAttempts`, `IdentityAgent`,
    /// `PreferredAuthentications`, `KbdInteractiveAuthentication`, `ServerAliveCountMax`, in
    /// `Include`d files too, and in `Match` blocks (`all`, `host`, `originalhost`, `user`,
    /// `localuser`, `exec`, `final`, each negated with `!`; `exec` runs its command; each
    /// decided against the host name and user the lines above it gave, as OpenSSH does, and
    /// `final` in a second reading of the files);
    /// other OpenSSH options are ignored. Jump hosts are resolved the same way, their own
    /// `ProxyJump`s included.
    ///
    /// # Errors
    /// [`Error::BadDestination`]; [`Error::SshConfig`] when the file cannot be read or
    /// parsed, or when `ProxyJump`s chain deeper than 8 hosts (a loop, as `Host *`).
    pub fn resolve(dest: &str, ssh_config: Option<&Path>) -> Result<Config, Error> {
        Config::resolve_with(dest, ssh_config, &[])
    }

    /// As [`resolve`](Self::resolve), with OpenSSH command-line options (`ssh -o`, each
    /// `Key=Value` or `Key Value`) ahead of the file: they win over it, for this host only
    /// (not its jump hosts), as in OpenSSH. An option netkit does not act on is logged at
    /// warn level and ignored.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve); [`Error::BadOption`] for a name that is no OpenSSH
    /// client option, a missing value, or a `Host`, `Match` or `Include` line.
    pub fn resolve_with(
        dest: &str,
        ssh_config: Option<&Path>,
        options: &[String],
    ) -> Result<Config, Error> {
        Config::resolve_files(dest, ssh_config, Some(Path::new(SYSTEM_CONFIG)), options)
    }

    /// As [`resolve_with`](Self::resolve_with), naming the system-wide file read after the
    /// user's when `ssh_config` is `None` ([`SYSTEM_CONFIG`] there; `None` here reads none).
    /// As in OpenSSH, `-F` (`ssh_config` given, `none` too) leaves the system file unread.
    /// Its lines come after the user's, so the user's values win; an option in it that
    /// OpenSSH does not have either is passed over without a warning (the user did not write
    /// it, and a distribution's ssh may know more options), and relative `Include`s in it
    /// are under its own directory, as OpenSSH reads `/etc/ssh/ssh_config.d/*.conf`.
    ///
    /// # Errors
    /// As [`resolve_with`](Self::resolve_with).
    pub fn resolve_files(
        dest: &str,
        ssh_config: Option<&Path>,
        system_config: Option<&Path>,
        options: &[String],
    ) -> Result<Config, Error> {
        let mut text = String::new();
        for option in options {
            text.push_str(&checked_option(option)?);
            text.push('\n');
        }
        let files = Files {
            user: ssh_config,
            system: system_config.filter(|_| ssh_config.is_none()),
        };
        Config::resolve_hop(dest, files, text, 0)
    }

    fn resolve_hop(
        dest: &str,
        files: Files<'_>,
        mut text: String,
        depth: usize,
    ) -> Result<Config, Error> {
        let ssh_config = files.user;
        // The lines of `-o` (and of the flags standing for options), ahead of the files'.
        let given = text.lines().count();
        let mut config = Config::from_destination(dest)?;
        let default = home().join(".ssh/config");
        let path = match ssh_config {
            Some(path) if path == Path::new("none") => None,
            Some(path) => Some(path),
            None if default.exists() => Some(default.as_path()),
            None => None,
        };
        // As OpenSSH: the file given by -F is the user's choice; the default one is guarded.
        let guarded = ssh_config.is_none();
        // As OpenSSH, root's file unguarded, and passed over when it cannot be read.
        let system = files
            .system
            .and_then(|path| match read_config(path, Whose::System) {
                Ok(text) => Some((path, text)),
                Err(e) => {
                    log::debug!("{}: {e}; not read", path.display());
                    None
                }
            });
        if path.is_none() && system.is_none() && text.is_empty() {
            return Ok(config);
        }
        let shown = path.unwrap_or(Path::new("-o"));
        let fault = |fault: Fault| match fault {
            Fault::File(reason) => Error::SshConfig {
                path: shown.to_owned(),
                line: None,
                reason,
            },
            Fault::Line { file, at, why } => Error::SshConfig {
                path: shown.to_owned(),
                line: Some((file, at)),
                reason: why,
            },
        };
        let bad = |reason: String| fault(Fault::File(reason));
        // Lines ahead of the first `Host` are command-line options: they win over the file.
        // The default file its user cannot open (root's, after `sudo vi ~/.ssh/config`) is
        // passed over, as ssh passes it over: it refused every connection. One named with -F
        // is still an error, as in ssh.
        if let Some(path) = path {
            let unreadable = guarded
                && std::fs::File::open(path)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
            if unreadable {
                log::warn!(
                    "{}: Permission denied: passed over, as ssh passes it over",
                    path.display()
                );
            } else {
                let read = if guarded {
                    read_guarded(path, Whose::User)
                } else {
                    read_config(path, Whose::User)
                };
                text.push_str(&read.map_err(fault)?);
            }
        }
        let rules = ssh2_config::ParseRule::ALLOW_UNKNOWN_FIELDS
            | ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let parse = |text: &str| {
            ssh2_config::SshConfig::default()
                .parse(&mut text.as_bytes(), rules)
                .map(|parsed| parsed.query(&config.host))
                .map_err(|e| {
                    // The line, which ssh2-config does not name: in a long file with
                    // Includes, "expected port number" alone left the user to guess.
                    let line = text.lines().find(|line| {
                        ssh2_config::SshConfig::default()
                            .parse(&mut line.as_bytes(), rules)
                            .is_err()
                    });
                    bad(match line {
                        Some(line) => format!("{}: {e}", line.trim()),
                        None => e.to_string(),
                    })
                })
        };
        // The host name and user the lines read so far give, which `Match host` and `user`
        // see, as OpenSSH decides each Match line when it reaches it.
        let names = |so_far: &str| -> Result<Config, String> {
            let mut probe = config.clone();
            probe.take_names(
                parse(&first_values(so_far)).map_err(|e| e.to_string())?,
                dest,
            )?;
            Ok(probe)
        };
        let local_user = local_user();
        let decide = |probe: &Config, criteria: &str, final_pass: bool| {
            let tokens = probe.percent_tokens();
            let tokens: Vec<(char, &str)> = tokens.iter().map(|(c, v)| (*c, v.as_str())).collect();
            matching::holds(
                criteria,
                &matching::Target {
                    host: &probe.host,
                    original: &config.host,
                    user: &probe.user,
                    local_user: &local_user,
                    tokens: &tokens,
                    final_pass,
                },
            )
        };
        let user_dir = home().join(".ssh");
        // The user's lines (the options' and the file's), then the system file's, each file
        // starting in the global scope as OpenSSH reads it; with the user's part alone.
        let read_all = |decide: &mut dyn FnMut(&str, &str) -> Result<bool, String>| {
            let user = with_includes(&text, 0, &config.host, "", (&user_dir, Whose::User), decide)?;
            let mut all = user.clone();
            if let Some((path, system)) = &system {
                let dir = path.parent().unwrap_or(Path::new("/"));
                all.push_str("Host *\n");
                let from = (dir, Whose::System);
                all.push_str(&with_includes(system, 0, &config.host, &all, from, decide)?);
            }
            Ok::<_, Fault>((user, all))
        };
        let mut want_final = false;
        let (user, mut read) = read_all(&mut |criteria, so_far| {
            want_final |= matching::asks_final(criteria);
            decide(&names(so_far)?, criteria, false)
        })
        .map_err(fault)?;
        if want_final {
            // `Match final` asks OpenSSH to read the files again with the host name and user
            // the first reading settled; what the first reading set stays (first wins).
            let settled = names(&read).map_err(bad)?;
            let (_, again) =
                read_all(&mut |criteria, _| decide(&settled, criteria, true)).map_err(fault)?;
            read.push_str("Host *\n");
            read.push_str(&again);
        }
        let text = first_values(&read);
        let mut params = parse(&text)?;
        // A line ssh2-config cannot carry stops only the hosts it applies to.
        if let Some(why) = take_unknown(&mut params, NOT_CARRIED) {
            // As read_config wrote it: the file, the line's number and why.
            let carried = why
                .first()
                .and_then(|why| uncarried(why))
                .unwrap_or_default();
            let mut parts = carried.splitn(3, '\n');
            let (file, at, why) = (parts.next(), parts.next(), parts.next());
            let line = match (file, at.and_then(|at| at.parse().ok()), why) {
                (Some(file), Some(at), Some(why)) => Some(Fault::Line {
                    file: file.into(),
                    at,
                    why: why.to_owned(),
                }),
                _ => None,
            };
            return Err(fault(line.unwrap_or(Fault::File(carried))));
        }
        // Once, for the destination (its jump hosts read the same files), and for the
        // user's lines only: the system file's unknown options are the distribution's.
        if depth == 0 {
            warn_unknown(&parse(&first_values(&user))?);
            tell_unread(&user, given, shown);
        }
        // One setting in OpenSSH, where the first obtained wins: `-o ProxyCommand=...` over
        // the file's ProxyJump, a host's own line over a `Host *` one below it. Not
        // `ProxyJump none`, which settles ProxyJump alone: a ProxyCommand still applies, as
        // ssh -G shows (`-J none` dropped the file's ProxyCommand).
        match first_line(&text, &["proxycommand", "proxyjump"]) {
            Some(("proxycommand", _)) => params.proxy_jump = None,
            Some((_, hops))
                if !words(hops)
                    .first()
                    .is_some_and(|hop| hop.eq_ignore_ascii_case("none")) =>
            {
                params.unsupported_fields.remove("proxycommand");
            }
            _ => {}
        }
        // The lines ssh2-config keeps one value of are added up here.
        config.forwards = forwards_for(&text, &config.host, rules).map_err(bad)?;
        // As written, each once, as ssh adds them (ssh2-config expands `~`).
        for (_, file) in every_line(&text, &config.host, rules, &["identityfile"]).map_err(bad)? {
            let file = file.join(" ");
            if !config.identity_files.contains(&file) {
                config.identity_files.push(file);
            }
        }
        let patterns = send_env_for(&text, &config.host, rules).map_err(bad)?;
        let (hops, missing) = config.take_params(params, dest).map_err(bad)?;
        config.take_algorithms(&text).map_err(bad)?;
        // None left: the failure would say "tried: nothing" and leave the user to guess the
        // path looked for (a typo, an unset variable), which ssh names. Said here, once:
        // take_params also checks each `-o` line alone.
        if !missing.is_empty() {
            log::warn!("no such identity: {} (IdentityFile)", missing.join(", "));
        }
        // Whichever line came first, as ssh clears them once all is read.
        if config.clear_all_forwardings {
            config.forwards = ConfiguredForwards::default();
        }
        // After SetEnv's, which take_params sets, as ssh sends them.
        // vars_os: one variable that is not UTF-8 (bash exports PWD as a directory name's
        // bytes) made std::env::vars() panic, every connection. libssh2 takes text only:
        // such a variable is not sent.
        let sent = std::env::vars_os().filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            if !patterns
                .iter()
                .any(|p| crate::known_hosts::wildcard(p, &name))
            {
                return None;
            }
            let value = value.into_string().ok();
            if value.is_none() {
                log::warn!("SendEnv: {name} is not UTF-8; not sent");
            }
            Some((name, value?))
        });
        config.env.extend(sent);
        config.send_env = patterns;
        if hops.iter().any(|h| !h.eq_ignore_ascii_case("none")) {
            if depth == 8 {
                return Err(bad(format!("ProxyJump for {dest} chains past 8 hosts")));
            }
            config.proxy_jump = Some(hops.join(","));
            // Each hop is reached through the one before it; the first through its own
            // ProxyJump, if it has one (as OpenSSH's `ssh -W` for it would). The others'
            // own ProxyJump lines are not read: OpenSSH reaches them with `ssh -J PREVIOUS`,
            // whose command line wins (`Host * !gw` / `ProxyJump gw,gw2` took gw2 through
            // itself, a loop).
            for (i, hop) in hops.iter().enumerate() {
                // ProxyJump takes ProxyCommand's tokens, this host's (ssh puts the hops in
                // the `ssh -W %h:%p` command it runs): `%r@%h` was a host named so.
                let hop = crate::proxy_command::expand(hop, &config)
                    .map_err(|e| bad(format!("ProxyJump {hop}: {e}")))?;
                let given = if i == 0 { "" } else { "ProxyJump none\n" };
                let mut via = Config::resolve_hop(&hop, files, given.to_owned(), depth + 1)?;
                if config.jump.is_some() {
                    via.jump = config.jump.take();
                }
                config.jump = Some(Box::new(via));
            }
        }
        Ok(config)
    }

    /// Takes `HostName`, `User` and `Port` from `params`, leaving what `dest` names.
    fn take_names(&mut self, params: ssh2_config::HostParams, dest: &str) -> Result<(), String> {
        let named = Destination::parse(dest).ok();
        let (user_given, port_given) = (
            named.as_ref().is_some_and(|d| d.user.is_some()),
            named.as_ref().is_some_and(|d| d.port.is_some()),
        );
        if let Some(host) = params.host_name {
            self.host = expand_tokens(&host, &[('h', &self.host)])
                .map_err(|e| format!("HostName {host}: {e}"))?;
        }
        if let (Some(user), false) = (params.user, user_given) {
            self.user = user;
        }
        if let (Some(port), false) = (params.port, port_given) {
            if port == 0 {
                return Err("Port 0 is not a port to connect to".into());
            }
            self.port = port;
        }
        Ok(())
    }

    /// OpenSSH's `%` tokens for this destination, those ssh_config(5) gives `IdentityFile`,
    /// `UserKnownHostsFile`, `IdentityAgent`, `RemoteCommand` and `Match exec` alike:
    /// `%% %C %d %h %i %k %L %l %n %p %r %u` (OpenSSH 9.2 has no `%j` yet).
    fn percent_tokens(&self) -> Vec<(char, String)> {
        let local_host = nix::unistd::gethostname().unwrap_or_default();
        let local_host = local_host.to_string_lossy().into_owned();
        let short = local_host.split('.').next().unwrap_or_default().to_owned();
        // ssh lowercases the host and the alias (not the host as given, `%n`): a
        // `UserKnownHostsFile kh_%k` of `HostKeyAlias Prod-DB` is ssh's `kh_prod-db`.
        let host = self.host.to_lowercase();
        let port = self.port.to_string();
        // ssh's connection hash, its `%C`: SHA-1 of `%l%h%p%r` in hex (a ControlPath or a
        // known_hosts file per connection without the host's name in it).
        let connection = [local_host.as_str(), &host, &port, &self.user].concat();
        let hash = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            connection.as_bytes(),
        );
        let hash: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        vec![
            (
                'k',
                self.host_key_alias
                    .as_deref()
                    .map_or_else(|| self.original_host.clone(), str::to_lowercase),
            ),
            ('h', host),
            ('n', self.original_host.clone()),
            ('p', port),
            ('r', self.user.clone()),
            ('C', hash),
            ('d', home().to_string_lossy().into_owned()),
            ('u', local_user()),
            ('l', local_host),
            ('L', short),
            ('i', nix::unistd::getuid().to_string()),
        ]
    }

    /// `text` with [`percent_tokens`](Self::percent_tokens) expanded; the error names a
    /// token OpenSSH does not give these options.
    fn expand_percent(&self, text: &str) -> Result<String, String> {
        let tokens = self.percent_tokens();
        let tokens: Vec<(char, &str)> = tokens.iter().map(|(c, v)| (*c, v.as_str())).collect();
        expand_tokens(text, &tokens)
    }

    /// Takes what it reads of `params` (see [`resolve`](Self::resolve)), leaving what `dest`
    /// names; returns the `ProxyJump` hosts and the `IdentityFile`s not there when none is
    /// (for a warning), or what is wrong with a value.
    fn take_params(
        &mut self,
        mut params: ssh2_config::HostParams,
        dest: &str,
    ) -> Result<(Vec<String>, Vec<String>), String> {
        self.take_names(params.clone(), dest)?;
        // Options ssh2-config does not know, kept under their names as written.
        let challenge_response = take_unknown(&mut params, "challengeresponseauthentication");
        let remote_command = take_unknown(&mut params, "remotecommand");
        if let Some(on) = take_unknown(&mut params, "enableescapecommandline")
            .and_then(|values| values.into_iter().next())
        {
            self.escape_command_line = flag("EnableEscapeCommandline", &on)?;
        }
        if let Some(level) = params
            .unsupported_fields
            .remove("loglevel")
            .or_else(|| take_unknown(&mut params, "loglevel"))
            .and_then(|values| values.into_iter().next())
        {
            self.log_level = Some(level);
        }
        // Before the files named, whose `%k` it is.
        let alias = params.unsupported_fields.remove("hostkeyalias");
        if let Some(alias) = alias.and_then(|a| a.into_iter().next()) {
            self.host_key_alias = Some(alias);
        }
        let mut missing_identities = Vec::new();
        if let Some(files) = params.identity_file {
            let mut identities = Vec::with_capacity(files.len());
            let mut missing = Vec::new();
            for path in files {
                let path = self.path_option("IdentityFile", path)?;
                // As ssh, a config's key file that is not there is passed over (one config
                // serves machines with different keys), and the default files stay unused;
                // one with only its `.pub` beside it names the agent's key to offer (a key
                // kept in a hardware or password-manager agent).
                let mut public = path.clone().into_os_string();
                public.push(".pub");
                if path.exists() || Path::new(&public).exists() {
                    identities.push(Identity::new(path, None));
                } else {
                    log::debug!("IdentityFile {}: no such file; skipped", path.display());
                    missing.push(path.display().to_string());
                }
            }
            if identities.is_empty() {
                missing_identities = missing;
            }
            self.identities = identities;
            self.default_identities = false;
        }
        self.connect_timeout_set = params.connect_timeout;
        // 0 is no ConnectTimeout in ssh, as `none`: netkit's default bounds then, where it
        // was a 1 s one that cut short a connection ssh makes.
        if let Some(timeout) = params.connect_timeout.filter(|t| !t.is_zero()) {
            self.connect_timeout = timeout;
            self.handshake_timeout = Some(timeout);
        }
        // Every file named, where the others take one value.
        let global_files = params.unsupported_fields.remove("globalknownhostsfile");
        let user_files = params.unsupported_fields.remove("userknownhostsfile");
        let set_env = params.unsupported_fields.remove("setenv");
        for pair in arguments(set_env.unwrap_or_default()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("SetEnv {pair}: expected NAME=VALUE"))?;
            self.env.push((name.to_owned(), value.to_owned()));
            self.set_env.push((name.to_owned(), value.to_owned()));
        }
        // A second word is a slip ssh refuses (`StrictHostKeyChecking no yes`, an `-o` that
        // swallowed the next one): taking the first applied a security option in a sense
        // not meant, without a word.
        for (name, args) in &params.unsupported_fields {
            if SINGLE_VALUED.contains(&name.as_str()) && args.len() > 1 {
                return Err(format!(
                    "{name} {}: extra arguments at end of line",
                    args.join(" ")
                ));
            }
        }
        let mut value = |name: &str| {
            params
                .unsupported_fields
                .remove(name)
                .and_then(|args| args.into_iter().next())
        };
        if let Some(policy) = value("stricthostkeychecking") {
            self.host_key_policy = match policy.to_ascii_lowercase().as_str() {
                "yes" | "true" | "ask" => HostKeyPolicy::Strict,
                "accept-new" | "no" | "false" | "off" => HostKeyPolicy::AcceptNew,
                other => {
                    return Err(format!(
                        "StrictHostKeyChecking {other}: expected yes, ask, accept-new, no or off"
                    ));
                }
            };
        }
        // `none` is no file, as in OpenSSH: nothing read, and a key accepted as new kept
        // nowhere (`/dev/null`, where it was a file named `none` in the current directory).
        let paths = |option: &str, files: Vec<String>| {
            arguments(files)
                .into_iter()
                .map(|file| {
                    if file.eq_ignore_ascii_case("none") {
                        Ok(PathBuf::from("/dev/null"))
                    } else {
                        self.path_option(option, file.into())
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        };
        // `none` first: a key accepted as new is kept nowhere (`/dev/null` named is "kept").
        let none_first = user_files
            .as_ref()
            .and_then(|files| arguments(files.clone()).into_iter().next())
            .is_some_and(|first| first.eq_ignore_ascii_case("none"));
        let user_files = user_files
            .map(|files| paths("UserKnownHostsFile", files))
            .transpose()?;
        let global_files = global_files
            .map(|files| paths("GlobalKnownHostsFile", files))
            .transpose()?;
        if let Some(files) = user_files {
            self.keeps_new_keys = !none_first;
            let mut files = files.into_iter();
            if let Some(first) = files.next() {
                self.known_hosts = first;
            }
            self.more_known_hosts = files.collect();
        }
        if let Some(files) = global_files {
            self.global_known_hosts = files;
        }
        if let Some(file) = value("revokedhostkeys") {
            self.revoked_host_keys = (!file.eq_ignore_ascii_case("none"))
                .then(|| self.path_option("RevokedHostKeys", file.into()))
                .transpose()?;
        }
        if let Some(compression) = params.compression {
            self.compression = compression;
        }
        if let Some(bind) = params.bind_address {
            self.bind_address = Some(bind);
        }
        if let Some(attempts) = params.connection_attempts {
            self.connection_attempts = u32::try_from(attempts.max(1)).unwrap_or(u32::MAX);
        }
        // A dead server is noticed through TCP keepalive probes rather than SSH messages;
        // the interval is what the option is for.
        if let Some(interval) = params.server_alive_interval.filter(|i| !i.is_zero()) {
            self.keepalive = interval;
        }
        if let Some(agent) = value("identityagent") {
            match agent.as_str() {
                "SSH_AUTH_SOCK" => {}
                "none" => self.use_agent = false,
                named if named.starts_with('$') => {
                    // An unset variable means no agent, as in OpenSSH.
                    match std::env::var_os(
                        named.trim_start_matches(['$', '{']).trim_end_matches('}'),
                    ) {
                        Some(path) => self.agent_socket = Some(path.into()),
                        None => self.use_agent = false,
                    }
                }
                path => {
                    self.agent_socket = Some(self.path_option("IdentityAgent", path.into())?);
                }
            }
        }
        // 0 as OpenSSH: the server is given up once silent through one interval, with no
        // keepalive sent (`ssh -o ServerAliveCountMax=0` ends a quiet `sleep` so).
        if let Some(count) = value("serveralivecountmax") {
            self.keepalive_count = count
                .parse()
                .map_err(|_| format!("ServerAliveCountMax {count}: expected a whole number"))?;
        }
        if let Some(only) = value("identitiesonly") {
            self.identities_only = flag("IdentitiesOnly", &only)?;
        }
        if let Some(agent) = params.forward_agent {
            self.forward_agent = agent;
        }
        if let Some(pubkey) = params.pubkey_authentication {
            self.pubkey_authentication = pubkey;
        }
        if let Some(password) = value("passwordauthentication") {
            self.password_authentication = flag("PasswordAuthentication", &password)?;
        }
        // Tried in its order; the methods it leaves out (or netkit lacks: hostbased,
        // gssapi-with-mic) not at all.
        if let Some(methods) = value("preferredauthentications") {
            self.auth_order = methods
                .split(',')
                .filter_map(|m| AuthMethod::from_name(m.trim()))
                .collect();
            let has = |m| self.auth_order.contains(&m);
            self.pubkey_authentication &= has(AuthMethod::PublicKey);
            self.password_authentication &=
                has(AuthMethod::Password) || has(AuthMethod::KeyboardInteractive);
        }
        // `ChallengeResponseAuthentication` is its old name, which ssh2-config does not know.
        let keyboard = value("kbdinteractiveauthentication")
            .or_else(|| challenge_response.and_then(|args| args.into_iter().next()));
        if let Some(keyboard) = keyboard
            && !flag("KbdInteractiveAuthentication", &keyboard)?
        {
            self.auth_order
                .retain(|m| *m != AuthMethod::KeyboardInteractive);
        }
        if let Some(batch) = value("batchmode") {
            self.batch_mode = flag("BatchMode", &batch)?;
        }
        if let Some(family) = value("addressfamily") {
            self.address_family = match family.to_ascii_lowercase().as_str() {
                "any" => AddressFamily::Any,
                "inet" => AddressFamily::Inet,
                "inet6" => AddressFamily::Inet6,
                other => {
                    return Err(format!(
                        "AddressFamily {other}: expected any, inet or inet6"
                    ));
                }
            };
        }
        if let Some(hash) = value("hashknownhosts") {
            self.hash_known_hosts = flag("HashKnownHosts", &hash)?;
        }
        if let Some(exit) = value("exitonforwardfailure") {
            self.exit_on_forward_failure = flag("ExitOnForwardFailure", &exit)?;
        }
        if let Some(clear) = value("clearallforwardings") {
            self.clear_all_forwardings = flag("ClearAllForwardings", &clear)?;
        }
        if let Some(prompts) = value("numberofpasswordprompts") {
            self.password_prompts = prompts
                .parse()
                .map_err(|_| format!("NumberOfPasswordPrompts {prompts}: expected a number"))?;
        }
        if let Some(tty) = value("requesttty") {
            self.request_tty = Some(match tty.to_ascii_lowercase().as_str() {
                "no" | "false" => RequestTty::No,
                "yes" | "true" => RequestTty::Yes,
                "force" => RequestTty::Force,
                "auto" => RequestTty::Auto,
                other => {
                    return Err(format!(
                        "RequestTTY {other}: expected yes, no, force or auto"
                    ));
                }
            });
        }
        if let Some(kind) = value("sessiontype") {
            self.session_type = Some(match kind.to_ascii_lowercase().as_str() {
                "none" => SessionType::None,
                "subsystem" => SessionType::Subsystem,
                "default" => SessionType::Default,
                _ => {
                    return Err(format!(
                        "SessionType {kind}: expected none, subsystem or default"
                    ));
                }
            });
        }
        if let Some(null) = value("stdinnull") {
            self.stdin_null = flag("StdinNull", &null)?;
        }
        if let Some(fork) = value("forkafterauthentication") {
            self.fork_after_authentication = flag("ForkAfterAuthentication", &fork)?;
        }
        if let Some(x11) = value("forwardx11") {
            self.forward_x11 = flag("ForwardX11", &x11)?;
        }
        if let Some(permit) = value("permitlocalcommand") {
            self.permit_local_command = flag("PermitLocalCommand", &permit)?;
        }
        if let Some(escape) = value("escapechar") {
            self.escape_char = Some(EscapeChar::parse(&escape).ok_or_else(|| {
                format!("EscapeChar {escape}: expected one character, ^X or none")
            })?);
        }
        // The rest of the line is the command, as OpenSSH reads it; `none` is no command.
        let command = |words: Vec<String>| {
            let command = uncarried(&words.join(" "))
                .ok_or_else(|| format!("a command not as netkit wrote it: {words:?}"))?;
            Ok::<_, String>((!command.eq_ignore_ascii_case("none")).then_some(command))
        };
        // Its tokens are expanded when it starts (ssh -G shows them as written).
        if let Some(words) = params.unsupported_fields.remove("proxycommand") {
            self.proxy_command = command(words)?;
        }
        if let Some(words) = remote_command {
            self.remote_command = command(words)?;
        }
        if let Some(words) = params.unsupported_fields.remove("localcommand") {
            self.local_command = command(words)?;
        }
        Ok((params.proxy_jump.unwrap_or_default(), missing_identities))
    }

    /// Takes the `Ciphers`, `KexAlgorithms`, `MACs` and `HostKeyAlgorithms` that the lines of
    /// `text` applying to the host set, the first of each, as [`assembled`] makes them. `-`, `+` and `^`
    /// change netkit's own cipher list (what it offers unasked) and OpenSSH's lists of the
    /// others, of which the names libssh2 knows are offered: a removal acts on what netkit
    /// would offer.
    fn take_algorithms(&mut self, text: &str) -> Result<(), String> {
        let openssh = ssh2_config::DefaultAlgorithms::default();
        let lists: [(&str, &[String]); 4] = [
            ("ciphers", &Config::default_ciphers()),
            ("kexalgorithms", &openssh.kex_algorithms),
            ("macs", &openssh.mac),
            ("hostkeyalgorithms", &openssh.host_key_algorithms),
        ];
        for (option, defaults) in lists {
            let Some((_, args)) = first_line(text, &[option]) else {
                continue;
            };
            let refusal = VALUES
                .iter()
                .find_map(|(name, takes)| match takes {
                    Takes::Algorithms(_, refusal) if *name == option => Some(*refusal),
                    _ => None,
                })
                .unwrap_or("Bad algorithm list");
            let value = words(args).into_iter().next().unwrap_or_default();
            let list = assembled((option, refusal), &value, defaults)?;
            match option {
                "ciphers" => self.ciphers = list,
                "kexalgorithms" => self.kex_algorithms = Some(list),
                "macs" => self.macs = Some(list),
                _ => self.host_key_algorithms = Some(list),
            }
        }
        Ok(())
    }

    /// A file named by `option` (`IdentityFile`, `UserKnownHostsFile`, ...) with `~/` and
    /// OpenSSH's tokens ([`percent_tokens`](Self::percent_tokens)) expanded for this host;
    /// the error names the option, the file and the token.
    fn path_option(&self, option: &str, path: PathBuf) -> Result<PathBuf, String> {
        // `~` first, then the rest, as ssh's tilde_expand_filename then
        // percent_dollar_expand.
        let path = match path.strip_prefix("~") {
            Ok(rest) => home().join(rest),
            Err(_) => path,
        };
        match path.to_str() {
            Some(text) => self
                .expanded(text)
                .map(PathBuf::from)
                .map_err(|e| format!("{option} {text}: {e}")),
            None => Ok(path),
        }
    }

    /// `text` with `${NAME}` variables and OpenSSH's tokens
    /// ([`percent_tokens`](Self::percent_tokens)) expanded, as ssh's percent_dollar_expand;
    /// the error names the token or variable.
    fn expanded(&self, text: &str) -> Result<String, String> {
        // `${HOME}/.ssh/id_work`, as OpenSSH 8.4 expands them in these options: taken as
        // written, the key was never offered and known hosts went to a `./${HOME}` directory.
        let text = if text.contains("${") {
            Cow::Owned(expand_variables(text)?)
        } else {
            Cow::Borrowed(text)
        };
        if !text.contains('%') {
            return Ok(text.into_owned());
        }
        self.expand_percent(&text)
    }

    /// A Unix socket path of a forward (`LocalForward`, `RemoteForward`, -L, -R) with
    /// `${NAME}` variables and OpenSSH's tokens expanded, as ssh expands them there (not
    /// `~`, nor in host names): `-L 5432:/run/%u/pg.sock`.
    ///
    /// # Errors
    /// [`Error::BadOption`] naming a token OpenSSH does not have or a variable not set.
    pub fn expanded_socket_path(&self, option: &str, path: &str) -> Result<String, Error> {
        self.expanded(path).map_err(|reason| Error::BadOption {
            option: format!("{option} {path}"),
            reason,
        })
    }

    /// [`remote_command`](Self::remote_command) with OpenSSH's tokens expanded as ssh runs
    /// it: `%h` host, `%p` port, `%r` user, `%n` the host as given, `%k` its key's alias or
    /// that, `%C` the connection hash, `%d` local home, `%u` local user, `%i` local uid,
    /// `%l` and `%L` the local host name with and without its domain, `%%`.
    ///
    /// # Errors
    /// [`Error::BadOption`] naming a token OpenSSH does not have.
    pub fn expanded_remote_command(&self) -> Result<Option<String>, Error> {
        let Some(command) = &self.remote_command else {
            return Ok(None);
        };
        self.expand_percent(command)
            .map(Some)
            .map_err(|reason| Error::BadOption {
                option: format!("RemoteCommand {command}"),
                reason,
            })
    }

    /// [`local_command`](Self::local_command) with OpenSSH's tokens expanded as ssh runs it
    /// (those of [`expanded_remote_command`](Self::expanded_remote_command), and `%T`, the
    /// tunnel device: `NONE`, as netkit opens none); `None` unless
    /// [`permit_local_command`](Self::permit_local_command).
    ///
    /// # Errors
    /// [`Error::BadOption`] naming a token OpenSSH does not have.
    pub fn expanded_local_command(&self) -> Result<Option<String>, Error> {
        let Some(command) = self
            .local_command
            .as_ref()
            .filter(|_| self.permit_local_command)
        else {
            return Ok(None);
        };
        let mut tokens = self.percent_tokens();
        tokens.push(('T', "NONE".to_owned()));
        let tokens: Vec<(char, &str)> = tokens.iter().map(|(c, v)| (*c, v.as_str())).collect();
        expand_tokens(command, &tokens)
            .map(Some)
            .map_err(|reason| Error::BadOption {
                option: format!("LocalCommand {command}"),
                reason,
            })
    }

    /// The identities to try: the configured ones, or [`default_identities`](Self::default_identities).
    pub(crate) fn identities_to_try(&self) -> Vec<Identity> {
        if !self.identities.is_empty() || !self.default_identities {
            return self.identities.clone();
        }
        Config::default_identities()
    }

    /// OpenSSH 9.2's default key files, in its order and as ssh -G writes them: where keys
    /// are tied to accounts, as deploy keys and gitolite's are, the first that gets in says
    /// who logs in.
    pub const DEFAULT_IDENTITY_FILES: [&str; 7] = [
        "~/.ssh/id_rsa",
        "~/.ssh/id_ecdsa",
        "~/.ssh/id_ecdsa_sk",
        "~/.ssh/id_ed25519",
        "~/.ssh/id_ed25519_sk",
        "~/.ssh/id_xmss",
        "~/.ssh/id_dsa",
    ];

    /// The [`DEFAULT_IDENTITY_FILES`](Self::DEFAULT_IDENTITY_FILES) netkit never tries:
    /// libssh2 signs with a security key (`_sk`) only through an agent and has no XMSS, and
    /// its build here has DSA off (as OpenSSH 9.2's sshd refuses ssh-dss): offered, each
    /// failed as a refusal or a malformed key, before the keys after it.
    const UNTRIED_DEFAULT_FILES: [&str; 4] = [
        "~/.ssh/id_ecdsa_sk",
        "~/.ssh/id_ed25519_sk",
        "~/.ssh/id_xmss",
        "~/.ssh/id_dsa",
    ];

    /// The [`DEFAULT_IDENTITY_FILES`](Self::DEFAULT_IDENTITY_FILES) netkit can sign with
    /// that exist, in ssh's order, without passphrases: tried when no identity is
    /// configured. One that is encrypted is then skipped; a program that may ask a person
    /// can set these with the passphrases, as ssh asks for them.
    #[must_use]
    pub fn default_identities() -> Vec<Identity> {
        Config::DEFAULT_IDENTITY_FILES
            .iter()
            .filter(|name| !Config::UNTRIED_DEFAULT_FILES.contains(name))
            .map(|name| home().join(name.trim_start_matches("~/")))
            .filter(|path| path.exists())
            .map(|path| Identity::new(path, None))
            .collect()
    }

    /// Every known_hosts file trusted: [`known_hosts`](Self::known_hosts), the one keys are
    /// added to, then those never written (the user's others, then the system's).
    pub(crate) fn known_hosts_files(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.known_hosts)
            .chain(&self.more_known_hosts)
            .chain(&self.global_known_hosts)
    }

    /// The name and port the host's key is known by: its own in lower case, as OpenSSH
    /// lowercases the host it connects to, or [`host_key_alias`](Self::host_key_alias).
    pub(crate) fn known_as(&self) -> (String, u16) {
        match &self.host_key_alias {
            Some(alias) => (alias.to_ascii_lowercase(), 22),
            // An address in its one written form, as OpenSSH records it: `0::1` is `::1`,
            // `127.1` is `127.0.0.1` (the same host, connected to so: under the name as
            // typed, a changed key was "not known" and --accept-new took it).
            None => match self.host.parse::<std::net::IpAddr>() {
                Ok(ip) => (ip.to_string(), self.port),
                Err(_) => match inet_aton(&self.host) {
                    Some(ip) => (ip.to_string(), self.port),
                    None => (self.host.to_ascii_lowercase(), self.port),
                },
            },
        }
    }

    /// `host` for port 22, else `[host]:port`, as known_hosts writes it (see
    /// [`host_key_alias`](Self::host_key_alias)).
    #[must_use]
    pub fn known_hosts_name(&self) -> String {
        match self.known_as() {
            (host, 22) => host,
            (host, port) => format!("[{host}]:{port}"),
        }
    }
}

/// `text` as an IPv4 address in the forms inet_aton(3) reads, which getaddrinfo and so the
/// connection take: one to four parts, each decimal, octal (`0177`) or hex (`0x7f`), the
/// last filling the bytes left (`127.1`, `2130706433`).
fn inet_aton(text: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut address = 0u32;
    for (i, part) in parts.iter().enumerate() {
        let (digits, radix) = match part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            Some(hex) => (hex, 16),
            None if part.len() > 1 && part.starts_with('0') => (&part[1..], 8),
            None => (*part, 10),
        };
        // from_str_radix takes a sign, inet_aton does not.
        if digits.is_empty() && radix != 16 || digits.starts_with(['+', '-']) {
            return None;
        }
        let value = if digits.is_empty() {
            0
        } else {
            u32::from_str_radix(digits, radix).ok()?
        };
        let bits = if i + 1 == parts.len() {
            32 - 8 * i as u32
        } else {
            8
        };
        if bits < 32 && value >> bits != 0 {
            return None;
        }
        address |= value << (32 - 8 * i as u32 - bits);
    }
    Some(std::net::Ipv4Addr::from(address))
}

/// The forwarding lines of an OpenSSH config `text` that apply to `host` (see
/// [`Config::forwards`]), each written as `ssh -L`, `-R` or `-D` takes it.
fn forwards_for(
    text: &str,
    host: &str,
    rules: ssh2_config::ParseRule,
) -> Result<ConfiguredForwards, String> {
    const KINDS: [&str; 3] = ["localforward", "remoteforward", "dynamicforward"];
    let mut forwards = ConfiguredForwards::default();
    for (kind, args) in every_line(text, host, rules, &KINDS)? {
        let args = args.join(":");
        let list = match kind {
            0 => &mut forwards.local,
            1 => &mut forwards.remote,
            _ => &mut forwards.dynamic,
        };
        // OpenSSH adds a forward once, however many lines (or readings) name it.
        if !list.contains(&args) {
            list.push(args);
        }
    }
    Ok(forwards)
}

/// The list the line `option value` makes of `defaults` (`refusal`: the words of ssh 9.2's
/// refusal of a bad list), as ssh 9.2 assembles it (readconf.c,
/// kex.c `kex_assemble_names`): `-` removes each default that one of its comma-separated
/// patterns (`*`, `?`) matches, `^` puts the names given first and `+` after the defaults,
/// and a plain list is taken as given. ssh2-config matched `-` patterns as exact names, so
/// `MACs -*-etm@openssh.com` removed nothing and netkit offered what the user took away.
/// Patterns elsewhere are refused as ssh refuses them, except in `HostKeyAlgorithms`, where
/// ssh expands them against every key type it knows (plain, or after `+` and `^`: `+ssh-rsa*`
/// was refused) and refuses one matching nothing.
fn assembled(
    (option, refusal): (&str, &str),
    value: &str,
    defaults: &[String],
) -> Result<Vec<String>, String> {
    let refused = || format!("{refusal} '{value}'.");
    let pattern = |name: &str| name.contains(['*', '?']);
    let (sign, list) = match value.chars().next() {
        Some(sign @ ('-' | '^' | '+')) => (Some(sign), &value[1..]),
        _ => (None, value),
    };
    let names: Vec<&str> = list.split(',').filter(|name| !name.is_empty()).collect();
    if names.is_empty() {
        return Err(refused());
    }
    let matched = |name: &String| names.iter().any(|p| crate::known_hosts::wildcard(p, name));
    if sign == Some('-') {
        return Ok(defaults.iter().filter(|d| !matched(d)).cloned().collect());
    }
    let mut given = Vec::new();
    for name in &names {
        if !pattern(name) {
            given.push((*name).to_owned());
            continue;
        }
        if option != "hostkeyalgorithms" {
            return Err(refused());
        }
        let before = given.len();
        given.extend(
            OPENSSH_KEY_TYPES
                .iter()
                .filter(|known| crate::known_hosts::wildcard(name, known))
                .map(|known| (*known).to_owned()),
        );
        if given.len() == before {
            return Err(refused());
        }
    }
    let mut assembled: Vec<String> = match sign {
        Some('^') => given
            .iter()
            .cloned()
            .chain(defaults.iter().filter(|d| !given.contains(d)).cloned())
            .collect(),
        Some(_) => defaults.iter().cloned().chain(given).collect(),
        None => given,
    };
    // Each once, as ssh lists them.
    let mut seen = std::collections::HashSet::new();
    assembled.retain(|name| seen.insert(name.clone()));
    Ok(assembled)
}

/// OpenSSH's most nested `Include`s.
const INCLUDE_DEPTH: usize = 16;

/// `text` as the lines that concern `host`: each `Include` replaced by the files it names, as
/// OpenSSH reads them (`~` for the home directory, other relative paths under `dir`,
/// wildcards expanded in sorted order, missing files passed over), and each `Match` line by
/// a `Host` line that matches every host or none, as `decide` says of its criteria
/// (ssh2-config has no `Match`: it took a block's lines for the block above). An `Include`
/// inside a `Host` or `Match` block that does not apply to `host` reads nothing, as in
/// OpenSSH; after one that does, the block's line comes again, so the lines after it keep
/// their scope.
fn with_includes(
    text: &str,
    depth: usize,
    host: &str,
    before: &str,
    (dir, whose): (&Path, Whose),
    decide: &mut dyn FnMut(&str, &str) -> Result<bool, String>,
) -> Result<String, Fault> {
    let mut out = String::with_capacity(text.len());
    // The current block's line, as written out, and whether it applies to `host`.
    let mut block: Option<(String, bool)> = None;
    for line in text.lines() {
        let word = keyword(line);
        let args = line.trim_start()[word.len()..]
            .trim_start_matches(|c: char| c == '=' || c.is_whitespace());
        let line = match word.as_str() {
            // Decided here, as quotes are read (ssh2-config takes `"db"` for a pattern with
            // quotes in it): the block then applies to `Host *` or to no host.
            "host" => {
                let applies = matching::host_matches(args, host);
                let line = if applies { "Host *" } else { matching::NO_HOST };
                block = Some((line.to_owned(), applies));
                line.to_owned()
            }
            "match" => {
                let applies = decide(args, &format!("{before}{out}"))?;
                let line = if applies { "Host *" } else { matching::NO_HOST };
                block = Some((line.to_owned(), applies));
                line.to_owned()
            }
            "include" if depth < INCLUDE_DEPTH => {
                if block.as_ref().is_some_and(|(_, applies)| !applies) {
                    continue;
                }
                for pattern in words(args) {
                    let pattern = pattern.as_str();
                    let path = match pattern.strip_prefix("~/") {
                        Some(rest) => home().join(rest),
                        None if Path::new(pattern).is_absolute() => PathBuf::from(pattern),
                        None => dir.join(pattern),
                    };
                    let Ok(files) = glob::glob(&path.to_string_lossy()) else {
                        continue;
                    };
                    for file in files.flatten() {
                        if !file.is_file() {
                            log::debug!("Include {}: not a file", file.display());
                            continue;
                        }
                        let included = read_guarded(&file, whose)?;
                        let before = format!("{before}{out}");
                        let from = (dir, whose);
                        let lines =
                            with_includes(&included, depth + 1, host, &before, from, decide)?;
                        out.push_str(&lines);
                        // What follows (the next file, the lines after the Include) is back
                        // in the Include's scope, as OpenSSH reads it: a file ending in a
                        // `Host orb` block took the global lines after it for that host's.
                        out.push_str(block.as_ref().map_or("Host *", |(line, _)| line));
                        out.push('\n');
                    }
                }
                continue;
            }
            _ => normalized(line).into_owned(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// A line OpenSSH takes whose value ssh2-config refuses, in a form it reads (its refusal
/// ended every connection): `Port ssh` as 22, `AddKeysToAgent confirm` (or `ask`, a time)
/// and `PubkeyAuthentication unbound` (or `host-bound`) as `yes`, which is all netkit makes
/// of them. Times are written as seconds by [`openssh_line`].
fn normalized(line: &str) -> Cow<'_, str> {
    let word = keyword(line);
    let args =
        line.trim_start()[word.len()..].trim_start_matches(|c: char| c == '=' || c.is_whitespace());
    let lower = words(args).join(" ").to_ascii_lowercase();
    let value = match word.as_str() {
        "port" if lower == "ssh" => Some("22".to_owned()),
        "addkeystoagent" if !["yes", "no"].contains(&lower.as_str()) => Some("yes".to_owned()),
        "pubkeyauthentication" if ["unbound", "host-bound"].contains(&lower.as_str()) => {
            Some("yes".to_owned())
        }
        _ => None,
    };
    match value {
        Some(value) => Cow::Owned(format!("{word} {value}")),
        None => Cow::Borrowed(line),
    }
}

/// A time as OpenSSH's `convtime` reads it (`90`, `1m30s`, `2h`, `1W`, a bare number being
/// seconds), in seconds; `None` for what ssh calls an invalid time value (an unknown unit, a
/// unit without a number, a number below 0, nothing, or past `INT_MAX` seconds). Each number
/// is read as `strtol` reads it, as there: spaces before it and a sign are taken (`+5` is 5
/// seconds, `-0` is 0), where `+5` was refused.
fn seconds(value: &str) -> Option<u64> {
    const MAX: u64 = i32::MAX as u64;
    if value.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut rest = value;
    while !rest.is_empty() {
        // strtol's white space: the C locale's isspace.
        rest = rest.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
        let negative = rest.starts_with('-');
        rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return None;
        }
        let (number, after) = rest.split_at(digits);
        // Past INT_MAX it is refused whatever the unit; a negative one unless it is 0.
        let number: u64 = number.parse().ok().filter(|n| *n <= MAX)?;
        if negative && number != 0 {
            return None;
        }
        let mut units = after.chars();
        let unit = match units.next().map(|c| c.to_ascii_lowercase()) {
            None | Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            Some('w') => 604_800,
            Some(_) => return None,
        };
        total = total.checked_add(number.checked_mul(unit)?)?;
        if total > MAX {
            return None;
        }
        rest = units.as_str();
    }
    Some(total)
}

/// The `SendEnv` patterns of an OpenSSH config `text` that apply to `host`, every line's, as
/// OpenSSH adds them up; `-PATTERN` takes back what earlier ones gave.
fn send_env_for(
    text: &str,
    host: &str,
    rules: ssh2_config::ParseRule,
) -> Result<Vec<String>, String> {
    let mut patterns: Vec<String> = Vec::new();
    for (_, args) in every_line(text, host, rules, &["sendenv"])? {
        for arg in args {
            match arg.strip_prefix('-') {
                Some(taken) => {
                    patterns.retain(|p| !crate::known_hosts::wildcard(taken, p));
                }
                None => patterns.push(arg),
            }
        }
    }
    Ok(patterns)
}

/// The lines of an OpenSSH config `text` setting one of `kinds` that apply to `host`, in
/// order, as (index in `kinds`, arguments). ssh2-config keeps one value of an option it does
/// not read, where OpenSSH adds up every line of these, so each line is put to ssh2-config
/// alone: its own `Host` and `Match` rules say whether the line applies.
fn every_line(
    text: &str,
    host: &str,
    rules: ssh2_config::ParseRule,
    kinds: &[&str],
) -> Result<Vec<(usize, Vec<String>)>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let kind_of = |line: &str| {
        let word = keyword(line);
        kinds.iter().position(|k| *k == word)
    };
    let mut found = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(kind) = kind_of(line) else {
            continue;
        };
        // This line alone, as an option ssh2-config keeps without reading it.
        let mut alone = String::new();
        for (i, other) in lines.iter().enumerate() {
            if i == at {
                alone.push_str("LocalForward x\n");
            } else if kind_of(other).is_none() {
                alone.push_str(other);
                alone.push('\n');
            }
        }
        let applies = ssh2_config::SshConfig::default()
            .parse(&mut alone.as_bytes(), rules)
            .map_err(|e| e.to_string())?
            .query(host)
            .unsupported_fields
            .contains_key("localforward");
        if applies {
            let args = line.trim_start()[kinds[kind].len()..]
                .trim_start_matches(|c: char| c == '=' || c.is_whitespace());
            found.push((kind, words(args)));
        }
    }
    Ok(found)
}

/// The option a config line sets, in lower case (empty for a blank line).
fn keyword(line: &str) -> String {
    line.trim_start()
        .split(|c: char| c == '=' || c.is_whitespace())
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The first of `options` (in lower case) that a line applying to the host sets, in a text
/// [`with_includes`] wrote, whose blocks read `Host *` where they apply; with the line's
/// arguments.
fn first_line<'o, 't>(text: &'t str, options: &[&'o str]) -> Option<(&'o str, &'t str)> {
    let mut applies = true;
    for line in text.lines() {
        let word = keyword(line);
        if word == "host" {
            applies = line.trim() == "Host *";
        } else if applies && let Some(option) = options.iter().find(|o| **o == word) {
            let args = line.trim_start()[word.len()..]
                .trim_start_matches(|c: char| c == '=' || c.is_whitespace());
            return Some((option, args));
        }
    }
    None
}

/// Options every line of which counts in OpenSSH, where for the others the first value wins.
const ADDED_UP: [&str; 9] = [
    "host",
    "match",
    "include",
    "identityfile",
    "certificatefile",
    "localforward",
    "remoteforward",
    "dynamicforward",
    "sendenv",
];

/// `text` without the lines that repeat an option earlier in their `Host` or `Match` block,
/// unless it is one OpenSSH adds up: OpenSSH keeps an option's first value and ssh2-config
/// its last, which let a `Port` at the top of the file win over `ssh -o Port=...` (the
/// command line's options come first in the same block).
fn first_values(text: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut kept = String::with_capacity(text.len());
    for line in text.lines() {
        let word = keyword(line);
        if word == "host" || word == "match" {
            seen.clear();
        }
        if word.is_empty()
            || word.starts_with('#')
            || ADDED_UP.contains(&word.as_str())
            || seen.insert(word)
        {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

#[cfg(target_arch = "x86_64")]
fn aes_in_hardware() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn aes_in_hardware() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn aes_in_hardware() -> bool {
    false
}

/// The OpenSSH options netkit acts on, in lower case.
const OPTIONS_READ: [&str; 51] = [
    "hostname",
    // Read by the program that runs commands (`netkit ssh`).
    "remotecommand",
    "requesttty",
    "sessiontype",
    "stdinnull",
    "forkafterauthentication",
    "permitlocalcommand",
    "localcommand",
    // Read for the program to say it does not forward them, as for its flags.
    "forwardagent",
    "forwardx11",
    "escapechar",
    "enableescapecommandline",
    "globalknownhostsfile",
    "hashknownhosts",
    "hostkeyalias",
    "setenv",
    "sendenv",
    "localforward",
    "remoteforward",
    "dynamicforward",
    "addressfamily",
    "user",
    "port",
    "identityfile",
    "identitiesonly",
    "identityagent",
    "proxyjump",
    "proxycommand",
    "connecttimeout",
    "stricthostkeychecking",
    "userknownhostsfile",
    "batchmode",
    "pubkeyauthentication",
    "passwordauthentication",
    "preferredauthentications",
    "kbdinteractiveauthentication",
    "challengeresponseauthentication",
    "exitonforwardfailure",
    "clearallforwardings",
    "numberofpasswordprompts",
    "serveraliveinterval",
    "serveralivecountmax",
    "compression",
    "ciphers",
    "kexalgorithms",
    "bindaddress",
    "connectionattempts",
    "hostkeyalgorithms",
    "macs",
    "revokedhostkeys",
    // Read by the program, for its own logging (`netkit ssh` maps it to -q or -v).
    "loglevel",
];

/// Options netkit does not act on, with the value (in lower case, `true` and `false` read
/// as `yes` and `no`) that asks for what it does anyway: nothing to say of them, which
/// scp, sftp -S and Ansible pass on every call. `ForwardX11Trusted` asks for nothing
/// without `ForwardX11 yes`, which is said of.
const AS_DONE: [(&str, &str); 22] = [
    ("controlmaster", "no"),
    ("controlpath", "none"),
    ("controlpersist", "no"),
    ("tunnel", "no"),
    ("checkhostip", "no"),
    ("updatehostkeys", "no"),
    ("verifyhostkeydns", "no"),
    ("addkeystoagent", "no"),
    ("forwardx11trusted", "no"),
    ("forwardx11trusted", "yes"),
    ("gssapiauthentication", "no"),
    ("gssapidelegatecredentials", "no"),
    ("hostbasedauthentication", "no"),
    ("enablesshkeysign", "no"),
    ("nohostauthenticationforlocalhost", "no"),
    ("gatewayports", "no"),
    ("canonicalizehostname", "no"),
    ("visualhostkey", "no"),
    ("proxyusefdpass", "no"),
    ("fingerprinthash", "sha256"),
    ("tcpkeepalive", "yes"),
    ("keepalive", "yes"),
];

/// Options netkit does not act on that tighten security (certificates, limits on algorithms
/// and key sizes, host checks, rekeying): passed over from a file too, they are warned of,
/// where the others are said at -v only.
const TIGHTENINGS: [&str; 10] = [
    "certificatefile",
    "pubkeyacceptedalgorithms",
    "pubkeyacceptedkeytypes",
    "casignaturealgorithms",
    "requiredrsasize",
    "checkhostip",
    "verifyhostkeydns",
    "rekeylimit",
    "updatehostkeys",
    "knownhostscommand",
];

/// Whether `word value` (both in lower case), one of [`TIGHTENINGS`], tightens what netkit
/// does: a `+` list only adds algorithms to the defaults (the common `+ssh-rsa` of old
/// servers), and `UpdateHostKeys yes` is ssh's own default. Warned of on every connection,
/// they hid the warnings that matter.
fn tightens(word: &str, value: &str) -> bool {
    let loosens = match word {
        "pubkeyacceptedalgorithms" | "pubkeyacceptedkeytypes" | "casignaturealgorithms" => {
            value.starts_with('+')
        }
        "updatehostkeys" => value == "yes",
        _ => false,
    };
    TIGHTENINGS.contains(&word) && !loosens
}

/// Connection sharing's options, which change only how fast a connection is made: said at
/// -v only (Ansible passes them on every call).
const SHARING: [&str; 3] = ["controlmaster", "controlpath", "controlpersist"];

/// `option` as a config line, once it names an OpenSSH client option with a value (one
/// netkit does not act on is told of by [`tell_unread`]).
fn checked_option(option: &str) -> Result<String, Error> {
    let bad = |reason: &str| Error::BadOption {
        option: option.to_owned(),
        reason: reason.to_owned(),
    };
    if option.contains(['\n', '\r']) {
        return Err(bad("more than one line"));
    }
    // ssh parses `-o ProxyJump` at once, and no host name has quotes in it.
    let keyword = option
        .trim_start()
        .split(|c: char| c == '=' || c.is_whitespace())
        .next()
        .unwrap_or_default();
    if keyword.eq_ignore_ascii_case("proxyjump") && option.contains(['"', '\'']) {
        return Err(bad(&format!("{}: Invalid ProxyJump", option.trim())));
    }
    let line = openssh_line(option, Whose::User).map_err(|e| bad(&e.reason()))?;
    // Nothing set (`ConnectTimeout=none`, a blank option), as ssh takes it: no warning.
    if line.is_empty() {
        return Ok(line);
    }
    let name = line
        .split(|c: char| c == '=' || c.is_whitespace())
        .next()
        .unwrap_or_default();
    if ["host", "match", "include"].contains(&name.to_ascii_lowercase().as_str()) {
        return Err(bad("not a command-line option"));
    }
    // OpenSSH options ssh2-config has never heard of, which it would call unknown.
    let rules = if UNKNOWN_TO_THE_PARSER.contains(&name.to_ascii_lowercase().as_str()) {
        ssh2_config::ParseRule::ALLOW_UNKNOWN_FIELDS
    } else {
        ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS
    };
    // As the files' lines are read (`-o PubkeyAuthentication=host-bound` was refused).
    let parsed = ssh2_config::SshConfig::default()
        .parse(&mut normalized(&line).as_bytes(), rules)
        .map_err(|e| match e {
            ssh2_config::SshParserError::UnknownField(..) => bad("no such OpenSSH option"),
            e => bad(&e.to_string()),
        })?;
    // Any valid host name: `-` made `HostName=%h.example` an invalid name.
    let mut probe = Config::new("host");
    probe
        .take_params(parsed.query("host"), "host")
        .and_then(|_| probe.take_algorithms(&line))
        .map_err(|reason| bad(&reason))?;
    Ok(line)
}

/// Tells of each option netkit does not act on among the lines of `text` that apply (the
/// user's, as [`with_includes`] wrote them: its first `given` lines are `-o`'s, the others
/// come from `file`), once, as its first value: a warning for one given with `-o` or one
/// of [`TIGHTENINGS`] that [`tightens`], a line at -v for the others of a file (a config shared with ssh holds
/// many) and for connection sharing; nothing for [`AS_DONE`]'s values.
fn tell_unread(text: &str, given: usize, file: &Path) {
    let mut applies = true;
    let mut seen = std::collections::HashSet::new();
    let mut sharing = false;
    for (at, line) in text.lines().enumerate() {
        let word = keyword(line);
        if word == "host" {
            applies = line.trim() == "Host *";
            continue;
        }
        let skipped = ["", "match", "include", "ignoreunknown"].contains(&word.as_str())
            || word.eq_ignore_ascii_case(NOT_CARRIED)
            || OPTIONS_READ.contains(&word.as_str());
        if !applies || skipped || !seen.insert(word.clone()) {
            continue;
        }
        let line = line.trim();
        let name = &line[..word.len()];
        let args = line[word.len()..].trim_start_matches(|c: char| c == '=' || c.is_whitespace());
        let value = match COMMANDS.contains(&word.as_str()) {
            true => uncarried(args).unwrap_or_else(|| args.to_owned()),
            false => words(args).join(" "),
        };
        let asked = match value.to_ascii_lowercase().as_str() {
            "true" => "yes".to_owned(),
            "false" => "no".to_owned(),
            other => other.to_owned(),
        };
        if AS_DONE.contains(&(word.as_str(), asked.as_str())) {
            continue;
        }
        if SHARING.contains(&word.as_str()) {
            sharing = true;
            continue;
        }
        // A name OpenSSH does not have either is warn_unknown's.
        let known = UNKNOWN_TO_THE_PARSER.contains(&word.as_str())
            || !matches!(
                ssh2_config::SshConfig::default().parse(
                    &mut line.as_bytes(),
                    ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS
                ),
                Err(ssh2_config::SshParserError::UnknownField(..))
            );
        if !known {
            continue;
        }
        let from = if at < given {
            "-o".to_owned()
        } else {
            file.display().to_string()
        };
        let said = format!(
            "ignoring the option \"{name} {value}\" ({from}): netkit does not act on {name}"
        );
        if at < given || tightens(&word, &asked) {
            log::warn!("{said}");
        } else {
            log::debug!("{said}");
        }
    }
    if sharing {
        log::debug!("connection sharing is not supported: each run connects anew");
    }
}

/// The arguments of `option` (in lower case), an OpenSSH option ssh2-config does not know and
/// keeps under the name as written.
fn take_unknown(params: &mut ssh2_config::HostParams, option: &str) -> Option<Vec<String>> {
    let name = params
        .ignored_fields
        .keys()
        .find(|k| k.eq_ignore_ascii_case(option))
        .cloned()?;
    params.ignored_fields.remove(&name)
}

/// OpenSSH client options ssh2-config does not know (newer, deprecated or distributions'),
/// which are no typo.
const UNKNOWN_TO_THE_PARSER: [&str; 32] = [
    // TCPKeepAlive's old name, which OpenSSH still takes.
    "keepalive",
    // ssh2-config spells it `canonicalizefallbacklock`.
    "canonicalizefallbacklocal",
    "useprivilegedport",
    "fallbacktorsh",
    "usersh",
    "rhostsrsaauthentication",
    "rsaauthentication",
    "useblacklistedkeys",
    "remotecommand",
    "challengeresponseauthentication",
    "tunnel",
    "tunneldevice",
    "channeltimeout",
    "obscurekeystroketiming",
    "tag",
    "enableescapecommandline",
    "requiredrsasize",
    "securitykeyprovider",
    "streamlocalbindunlink",
    "gssapikeyexchange",
    "gssapitrustdns",
    "gssapiclientidentity",
    "gssapiserveridentity",
    "gssapirenewalforcesrekey",
    "gssapikexalgorithms",
    "smartcarddevice",
    "protocol",
    "useroaming",
    "cipher",
    "compressionlevel",
    "refuseconnection",
    "warnweakcrypto",
];

/// Warns of each option applying to the host that OpenSSH does not have either (a typo such
/// as `IdentitesOnly yes`, which ssh refuses and netkit would silently drop), unless
/// `IgnoreUnknown` names it, as ssh reads that.
fn warn_unknown(params: &ssh2_config::HostParams) {
    let ignored = params.ignore_unknown.as_deref().unwrap_or_default();
    let mut names: Vec<&String> = params.ignored_fields.keys().collect();
    names.sort();
    for name in names {
        let lower = name.to_ascii_lowercase();
        let known = UNKNOWN_TO_THE_PARSER.contains(&lower.as_str())
            || ignored
                .iter()
                .any(|pattern| crate::known_hosts::wildcard(&pattern.to_ascii_lowercase(), &lower));
        if !known {
            log::warn!("ssh config: ignoring {name}: no OpenSSH option by that name");
        }
    }
}

/// A yes-or-no option's value, as OpenSSH reads one (`true` and `false` too); anything else
/// is an error, as in OpenSSH, not a quiet `no` (`IdentitiesOnly true` offered every key).
fn flag(option: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("{option} {value}: expected yes or no")),
    }
}

/// The local user's name, as ssh takes it: from the password database (cron, systemd units
/// and `env -i` run without `$USER`), else `$USER`.
pub(crate) fn local_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default()
}

/// The options read with `value` in `take_params`, which take one word.
const SINGLE_VALUED: &[&str] = &[
    "stricthostkeychecking",
    "revokedhostkeys",
    "identityagent",
    "serveralivecountmax",
    "identitiesonly",
    "passwordauthentication",
    "preferredauthentications",
    "kbdinteractiveauthentication",
    "batchmode",
    "addressfamily",
    "hashknownhosts",
    "exitonforwardfailure",
    "requesttty",
    "clearallforwardings",
    "numberofpasswordprompts",
    "sessiontype",
    "stdinnull",
    "forkafterauthentication",
    "permitlocalcommand",
    "forwardx11",
];

/// The arguments of an option of several (`UserKnownHostsFile`, `SetEnv`), from what
/// ssh2-config makes of an [`openssh_line`]: a lone one comes as it is (a quoted
/// `"/Users/John Smith/kh"` unquoted, one file, which splitting again made two); several come
/// as written there, each taken apart here as ssh takes it.
fn arguments(given: Vec<String>) -> Vec<String> {
    match given.as_slice() {
        [_] => given,
        _ => words(&given.join(" ")),
    }
}

/// A line's arguments as OpenSSH splits them (misc.c `argv_split`, `"/a b" /c`,
/// `NAME="two words"`): spaces and tabs separate; double or single quotes group, and are not
/// part of an argument; a backslash takes `'`, `"` or `\\` (and a space outside quotes) as it
/// is, and is kept before any other character (`C:\keys`); a `#` at the start of an argument
/// starts a comment.
pub(crate) fn words(args: &str) -> Vec<String> {
    split_words(args).0
}

/// [`words`], and whether a quote was left open at the end (OpenSSH's "invalid quotes").
fn split_words(args: &str) -> (Vec<String>, bool) {
    let mut words = Vec::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.next_if(|c| matches!(c, ' ' | '\t')).is_some() {}
        if chars.peek().is_none_or(|c| *c == '#') {
            return (words, false);
        }
        let (mut word, mut quote) = (String::new(), None);
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => {
                    let escaped = chars.next_if(|n| {
                        matches!(n, '\'' | '"' | '\\') || (*n == ' ' && quote.is_none())
                    });
                    word.push(escaped.unwrap_or('\\'));
                }
                (' ' | '\t', None) => break,
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, _) => word.push(c),
            }
        }
        words.push(word);
        if quote.is_some() {
            return (words, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_in_dash_o_values_as_ssh_reads_them() {
        let with = |option: &str| {
            Config::resolve_files("h", Some(Path::new("none")), None, &[option.to_owned()])
        };
        assert_eq!(with("User='a b'").unwrap().user, "a b");
        // A quote inside another kind stays (it was taken as a quote again: `its here`).
        let env = with("SetEnv A=\"it's here\" B=\"say 'hi'\"").unwrap().env;
        assert_eq!(
            env,
            [
                ("A".to_owned(), "it's here".to_owned()),
                ("B".to_owned(), "say 'hi'".to_owned())
            ]
        );
        // ssh: "invalid quotes" and "Missing argument" (another file and user were used).
        for (option, why) in [
            ("IdentityFile=/tmp/bob's_key", "invalid quotes"),
            ("User=''", "missing argument"),
            ("User=\"\"", "missing argument"),
        ] {
            let e = with(option).unwrap_err().to_string();
            assert!(e.contains(why), "{option}: {e}");
        }
    }

    #[test]
    fn arguments_lose_their_quotes_as_in_ssh() {
        assert_eq!(words("B=\"two words\""), ["B=two words"]);
        assert_eq!(words("\"C=x y\""), ["C=x y"]);
        assert_eq!(words("D='it''s'"), ["D=its"]);
        assert_eq!(words("E=a\\\"b"), ["E=a\"b"]);
        assert_eq!(words(" /a  \"/b c\" '' d\\ e "), ["/a", "/b c", "", "d e"]);
        // As misc.c argv_split: `\'`, `\"`, `\\` anywhere, `\ ` outside quotes; any other
        // backslash stays (it was dropped: `C:\keys` read `C:keys`).
        assert_eq!(words(r"C:\keys\\id a\b"), [r"C:\keys\id", r"a\b"]);
        assert_eq!(words(r#"'it\'s' "a\ b" 'x"y'"#), ["it's", r"a\ b", "x\"y"]);
        // A `#` starts a comment at the start of a word only.
        assert_eq!(words("a#b #c d"), ["a#b"]);
        assert_eq!(split_words("\"open"), (vec!["open".to_owned()], true));
    }

    #[test]
    fn lines_are_written_for_ssh2_config_as_ssh_reads_them() {
        for (line, written) in [
            ("  User = bob  ", "User bob"),
            ("User 'bob'", "User bob"),
            (r#"SetEnv "A=it's""#, r#"SetEnv "A=it's""#),
            (
                r#"SetEnv A='say "hi"' B=b\ c"#,
                r#"SetEnv "A=say \"hi\"" "B=b c""#,
            ),
            (r"IdentityFile C:\k\\id", r#"IdentityFile "C:\\k\\id""#),
            // A command's line is as written (its quotes and spaces are the shell's), carried
            // as hex digits.
            (
                "RemoteCommand=echo \"#\"  ",
                "RemoteCommand 6563686f20222322",
            ),
            ("# a comment", ""),
            ("", ""),
        ] {
            assert_eq!(openssh_line(line, Whose::User).unwrap(), written, "{line}");
        }
        // ssh: "invalid quotes" (a command's too) and "Missing argument".
        for (line, why) in [
            ("User \"bob", "invalid quotes"),
            ("RemoteCommand echo 'a", "invalid quotes"),
            ("User \"\"", "missing argument"),
            ("User", "missing argument"),
            ("User #x", "missing argument"),
            // readconf.c: "keyword user extra arguments at end of line"; `User a b` was `a`.
            ("User a b", "extra arguments at end of line"),
            ("ProxyJump a b", "extra arguments at end of line"),
            // ssh: Invalid ProxyJump ""a" b".
            ("ProxyJump \"a\" b", "Invalid ProxyJump"),
        ] {
            let e = openssh_line(line, Whose::User).unwrap_err().reason();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn a_quoted_hash_in_a_command_is_kept_and_stops_no_other_host() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = dir.join("config");
        // As `ssh -G` reads it: each command as written; the SetEnv line, which ssh2-config
        // cannot carry, refuses its own host only (the whole file was refused).
        std::fs::write(
            &file,
            "Host other\n  RemoteCommand echo \"#tag\"\n  \
             ProxyCommand nc %h \"#x\" \\\"\nHost tmux\n  \
             RemoteCommand tmux new -A -s \"#main\"\nHost env\n  SetEnv A=\"x\\\"#\"\n\
             Host *\n  User bob\n",
        )
        .unwrap();
        let other = Config::resolve("other", Some(&file)).unwrap();
        let tmux = Config::resolve("tmux", Some(&file)).unwrap();
        let env = Config::resolve("env", Some(&file)).unwrap_err().to_string();
        let mine = Config::resolve("mine", Some(&file)).unwrap();
        assert_eq!(other.remote_command.as_deref(), Some("echo \"#tag\""));
        assert_eq!(other.proxy_command.as_deref(), Some("nc %h \"#x\" \\\""));
        assert_eq!(
            tmux.remote_command.as_deref(),
            Some("tmux new -A -s \"#main\"")
        );
        assert!(
            env.starts_with(&format!("{} line 7: SetEnv", file.display())),
            "{env}"
        );
        assert_eq!(mine.user, "bob");
        let with =
            |option: &str| Config::resolve_with("h", Some(Path::new("none")), &[option.to_owned()]);
        let command = with("RemoteCommand=echo \"#tag\" # not a comment").unwrap();
        assert_eq!(
            command.remote_command.as_deref(),
            Some("echo \"#tag\" # not a comment")
        );
        let e = with("User=a b").unwrap_err().to_string();
        assert!(e.contains("extra arguments at end of line"), "{e}");
    }

    #[test]
    fn a_quoted_word_holding_a_jump_list_or_a_whole_forward_is_refused_as_in_ssh() {
        for (line, why) in [
            (
                r#"ProxyJump "a,b""#,
                r#"ProxyJump "a,b": Invalid ProxyJump"#,
            ),
            ("ProxyJump 'a'", "ProxyJump 'a': Invalid ProxyJump"),
            (
                r#"LocalForward "8080 localhost:80""#,
                r#"LocalForward "8080 localhost:80": missing target argument"#,
            ),
            (
                "LocalForward 8080:localhost:80",
                "LocalForward 8080:localhost:80: missing target argument",
            ),
        ] {
            let e = Config::resolve_with("h", Some(Path::new("none")), &[line.to_owned()])
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("bad option {line:?}: {why}"));
        }
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = dir.join("cfg");
        std::fs::write(&file, "Host h\n  ProxyJump \"a,b\"\n").unwrap();
        let e = Config::resolve("h", Some(&file)).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{} line 2: ProxyJump \"a,b\": Invalid ProxyJump",
                file.display()
            )
        );
        // Written as ssh takes them, they still count.
        std::fs::write(
            &file,
            "Host h\n  ProxyJump a,b\n  LocalForward \"8080\" \"localhost:80\"\n",
        )
        .unwrap();
        let c = Config::resolve("h", Some(&file)).unwrap();
        assert_eq!(c.forwards.local, ["8080:localhost:80"]);
        assert_eq!(c.jump.map(|j| j.host).as_deref(), Some("b"));
        // One host name in quotes is one host, as ssh connects through it; with a user, a
        // port or `none` in the quotes, ssh refuses it.
        std::fs::write(&file, "Host h\n  ProxyJump \"bastion\"\n").unwrap();
        let c = Config::resolve("h", Some(&file)).unwrap();
        assert_eq!(c.jump.map(|j| j.host).as_deref(), Some("bastion"));
        for quoted in ["\"u@bastion\"", "\"bastion:22\"", "\"none\""] {
            std::fs::write(&file, format!("Host h\n  ProxyJump {quoted}\n")).unwrap();
            let e = Config::resolve("h", Some(&file)).unwrap_err().to_string();
            assert!(e.ends_with("Invalid ProxyJump"), "{quoted}: {e}");
        }
    }

    #[test]
    fn a_bad_line_names_its_file_once_as_ssh_does() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let (file, included) = (dir.join("cfg"), dir.join("inc"));
        std::fs::write(&file, "Host *\n  Port 22\n  User a b\n").unwrap();
        std::fs::write(&included, "# x\nUser \"a\n").unwrap();
        let e = Config::resolve("h", Some(&file)).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{} line 3: User a b: extra arguments at end of line",
                file.display()
            )
        );
        // An included file's line is named in that file, as ssh names it.
        std::fs::write(&file, format!("Include {}\n", included.display())).unwrap();
        let e = Config::resolve("h", Some(&file)).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{} line 2: User \"a: invalid quotes", included.display())
        );
    }

    #[test]
    fn values_come_out_of_a_file_and_dash_o_as_ssh_reads_them() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        // `a\ b\x` is the file `a b\x`, as ssh reads it.
        std::fs::write(dir.join("a b\\x"), "").unwrap();
        let key = format!("{}/a\\ b\\x", dir.display());
        let file = dir.join("config");
        std::fs::write(
            &file,
            format!(
                "Host h\n  User 'it\\'s'\n  SetEnv \"A=it's\" B='say \"hi\"' C=b\\ c\n  \
                 RemoteCommand echo \"a   b\"\n  IdentityFile {key}\n  \
                 UserKnownHostsFile '/k/one' \"/k/t\\\"wo\"\n"
            ),
        )
        .unwrap();
        let from_file = Config::resolve("h", Some(&file)).unwrap();
        let options = [
            "User='it\\'s'".to_owned(),
            "SetEnv \"A=it's\" B='say \"hi\"' C=b\\ c".to_owned(),
            "RemoteCommand=echo \"a   b\"".to_owned(),
            format!("IdentityFile={key}"),
            "UserKnownHostsFile '/k/one' \"/k/t\\\"wo\"".to_owned(),
        ];
        let from_options = Config::resolve_with("h", Some(Path::new("none")), &options).unwrap();
        for config in [from_file, from_options] {
            assert_eq!(config.user, "it's");
            let env: Vec<(&str, &str)> = config
                .env
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            assert_eq!(env, [("A", "it's"), ("B", "say \"hi\""), ("C", "b c")]);
            assert_eq!(config.remote_command.as_deref(), Some("echo \"a   b\""));
            let keys: Vec<&Path> = config.identities.iter().map(|i| i.path.as_path()).collect();
            assert_eq!(keys, [dir.join("a b\\x")]);
            assert_eq!(config.known_hosts, Path::new("/k/one"));
            assert_eq!(config.more_known_hosts, [Path::new("/k/t\"wo")]);
        }
        let with =
            |option: &str| Config::resolve_with("h", Some(Path::new("none")), &[option.to_owned()]);
        let command = with("RemoteCommand=echo 'a\"b'").unwrap().remote_command;
        assert_eq!(command.as_deref(), Some("echo 'a\"b'"));
    }

    #[test]
    fn quoted_patterns_and_files_among_several_count_as_in_ssh() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = dir.join("config");
        std::fs::write(
            &file,
            "Host db2 \"db\"\n  HostName db.internal\n  \
             UserKnownHostsFile /k/one \"/k/two words\" '/k/three'\n  \
             GlobalKnownHostsFile \"/g/one\" /g/two\n",
        )
        .unwrap();
        let config = Config::resolve("db", Some(&file)).unwrap();
        assert_eq!(config.host, "db.internal");
        let files: Vec<&Path> = config.known_hosts_files().map(PathBuf::as_path).collect();
        for expected in ["/k/one", "/k/two words", "/k/three", "/g/one", "/g/two"] {
            assert!(files.contains(&Path::new(expected)), "{files:?}");
        }
        // One quoted file with a space is one file, in a file or with -o.
        std::fs::write(
            &file,
            "Host x\n  UserKnownHostsFile \"/Users/John Smith/kh\"\n",
        )
        .unwrap();
        let from_file = Config::resolve("x", Some(&file)).unwrap();
        let option = ["UserKnownHostsFile=\"/Users/John Smith/kh\"".to_owned()];
        let from_option = Config::resolve_with("x", Some(Path::new("none")), &option).unwrap();
        for config in [from_file, from_option] {
            assert_eq!(config.known_hosts, Path::new("/Users/John Smith/kh"));
            assert!(config.more_known_hosts.is_empty(), "{config:?}");
        }
    }

    #[test]
    fn debug_shows_no_password_or_passphrase() {
        let mut config = Config::from_destination("ann@example.org").unwrap();
        config.password = Some("hunter2".into());
        config.identities = vec![Identity::new("/k", Some("open sesame".into()))];
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("open sesame"),
            "{shown}"
        );
        assert!(shown.contains("ann") && shown.contains("\"/k\""), "{shown}");
    }

    #[test]
    fn host_name_and_identity_file_tokens_expand_as_in_openssh() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let key = dir.join("ann@db.internal.corp.example:2222-db.internal-100%");
        std::fs::write(&key, "").unwrap();
        let text = format!(
            "Host *.internal\n  HostName %h.corp.example\n  User ann\n  Port 2222\n\
             IdentityFile {0}/%r@%h:%p-%n-100%%\n  IdentityFile {0}/absent-%r\n\
             UserKnownHostsFile %d/.ssh/known_%k /kh/%n\n",
            dir.display()
        );
        let rules = ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let parsed = ssh2_config::SshConfig::default()
            .parse(&mut text.as_bytes(), rules)
            .unwrap();
        let mut config = Config::from_destination("db.internal").unwrap();
        config
            .take_params(parsed.query("db.internal"), "db.internal")
            .unwrap();
        assert_eq!(config.host, "db.internal.corp.example");
        // A key file that is not there is passed over, and the default ones stay unused.
        let files: Vec<_> = config.identities.iter().map(|i| i.path.clone()).collect();
        assert_eq!(files, [key]);
        assert!(!config.default_identities);
        assert_eq!(config.known_hosts, home().join(".ssh/known_db.internal"));
        assert_eq!(config.more_known_hosts, [PathBuf::from("/kh/db.internal")]);

        let text = "Host x\n  IdentityFile /keys/%z\n";
        let parsed = ssh2_config::SshConfig::default()
            .parse(&mut text.as_bytes(), rules)
            .unwrap();
        let err = Config::from_destination("x")
            .unwrap()
            .take_params(parsed.query("x"), "x")
            .unwrap_err();
        assert_eq!(err, "IdentityFile /keys/%z: unknown token %z");

        // %k is the HostKeyAlias when there is one, as in OpenSSH, which lowercases it and
        // %h (not %n).
        let text = "Host X\n  UserKnownHostsFile /kh/%k /kh/%h_%n\n  HostKeyAlias Prod-DB\n  \
                    HostName LocalHost\n";
        let parsed = ssh2_config::SshConfig::default()
            .parse(&mut text.as_bytes(), rules)
            .unwrap();
        let mut config = Config::from_destination("X").unwrap();
        config.take_params(parsed.query("X"), "X").unwrap();
        assert_eq!(config.known_hosts, PathBuf::from("/kh/prod-db"));
        assert_eq!(config.more_known_hosts[0], PathBuf::from("/kh/localhost_X"));

        // A second word is refused, as ssh refuses it, not dropped.
        let text = "Host x\n  StrictHostKeyChecking no yes\n";
        let parsed = ssh2_config::SshConfig::default()
            .parse(&mut text.as_bytes(), rules)
            .unwrap();
        let mut config = Config::from_destination("x").unwrap();
        let err = config.take_params(parsed.query("x"), "x").unwrap_err();
        assert_eq!(
            err,
            "stricthostkeychecking no yes: extra arguments at end of line"
        );
    }

    #[test]
    fn a_byte_order_mark_or_a_latin_1_byte_changes_nothing() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let main = dir.join("config");
        // Saved by Notepad: a BOM, CRLF, a Latin-1 comment.
        std::fs::write(
            &main,
            b"\xEF\xBB\xBFHost box\r\n  HostName box.example.com\r\n  Port 2200\r\n\
              # Ren\xe9\r\nHost *\r\n  User last\r\n",
        )
        .unwrap();
        let got = |dest: &str| {
            let c = Config::resolve(dest, Some(&main)).unwrap();
            (c.host, c.user, c.port)
        };
        assert_eq!(got("box"), ("box.example.com".into(), "last".into(), 2200));
        // The first block's options were everyone's.
        assert_eq!(got("other"), ("other".into(), "last".into(), 22));
    }

    #[test]
    fn match_blocks_apply_as_in_openssh() {
        // Compared with `ssh -G` (OpenSSH 9.2) on the same files.
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::write(
            dir.join("extra.conf"),
            "Match originalhost short\n  User from-include\n",
        )
        .unwrap();
        let main = dir.join("config");
        let text = format!(
            "Host short\n  HostName long.example.com\nHost *.internal\n  User internal\n\
             Match host long.example.com\n  Port 2201\n\
             Match user internal exec \"test -d /\"\n  Port 2202\n\
             Match !host *.example.com,!*.internal\n  User notexample\n\
             Include {}/extra.conf\n\
             Match originalhost x* !user root\n  Port 2203\nHost *\n  User last\n",
            dir.display()
        );
        std::fs::write(&main, text).unwrap();
        let got = |dest: &str| {
            let c = Config::resolve(dest, Some(&main)).unwrap();
            (c.host, c.user, c.port)
        };
        let want = |host: &str, user: &str, port| (host.to_owned(), user.to_owned(), port);
        // The Include sits in a block that does not apply to long.example.com: not read.
        assert_eq!(got("short"), want("long.example.com", "last", 2201));
        assert_eq!(got("a.internal"), want("a.internal", "internal", 2202));
        assert_eq!(got("root@xa"), want("xa", "root", 22));
        assert_eq!(got("xb"), want("xb", "notexample", 2203));
        std::fs::write(
            &main,
            "Host a\n  User ua\nMatch host b\n  User ub\nMatch all\n  Port 2022\n",
        )
        .unwrap();
        // Not the block above the Match line's.
        assert_eq!(got("a"), want("a", "ua", 2022));
        // A Match line sees the host name and user the lines above it gave, not those below.
        std::fs::write(
            &main,
            "Match host *.example.com\n  User corp\nHost web\n  HostName web.example.com\n\
             Match user ann\n  Port 2500\nHost web\n  User late\n",
        )
        .unwrap();
        assert_eq!(got("ann@web"), want("web.example.com", "ann", 2500));
        assert_eq!(got("web"), want("web.example.com", "late", 22));
        assert_eq!(got("b.example.com"), want("b.example.com", "corp", 22));
        // `Match final` reads the file again with the settled host name: what the first
        // reading left unset, a block that applies now sets.
        std::fs::write(
            &main,
            "Match host *.example.com\n  User corp\nHost web\n  HostName web.example.com\n\
             LocalForward 1 h:1\nMatch final host web.*\n  Port 2300\n",
        )
        .unwrap();
        assert_eq!(got("web"), want("web.example.com", "corp", 2300));
        let forwards = Config::resolve("web", Some(&main)).unwrap().forwards;
        assert_eq!(forwards.local, ["1:h:1"], "read twice, added once");
        std::fs::write(&main, "Match hots x\n").unwrap();
        let err = Config::resolve("a", Some(&main)).unwrap_err().to_string();
        assert!(err.contains("unknown criterion \"hots\""), "{err}");
    }

    #[test]
    fn forwards_and_send_env_in_included_files_count_as_in_openssh() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(
            dir.join("conf.d/a.conf"),
            "Host x\n  LocalForward 1 h:1\n  SendEnv A_*",
        )
        .unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "SendEnv B\n").unwrap();
        let main = dir.join("config");
        let text = format!(
            "Host x\n  Include {0}/conf.d/*.conf {0}/absent\n  LocalForward 2 h:2\n\
             Host y\n  Port 3\n",
            dir.display()
        );
        std::fs::write(&main, text).unwrap();
        let x = Config::resolve("x", Some(&main)).unwrap();
        assert_eq!(x.forwards.local, ["1:h:1", "2:h:2"]);
        let text = std::fs::read_to_string(&main).unwrap();
        let rules = ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let every =
            with_includes(&text, 0, "x", "", (&dir, Whose::User), &mut |_, _| Ok(true)).unwrap();
        assert_eq!(send_env_for(&every, "x", rules).unwrap(), ["A_*", "B"]);
        let every =
            with_includes(&text, 0, "y", "", (&dir, Whose::User), &mut |_, _| Ok(true)).unwrap();
        assert!(send_env_for(&every, "y", rules).unwrap().is_empty());
        assert!(
            Config::resolve("y", Some(&main))
                .unwrap()
                .forwards
                .local
                .is_empty()
        );
    }

    #[test]
    fn the_system_file_counts_after_the_users_unless_dash_f_names_one_as_in_openssh() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(dir.join("etc/ssh_config.d")).unwrap();
        let (user, system) = (dir.join("config"), dir.join("etc/ssh_config"));
        std::fs::write(&user, "Host box\n  User ann\n").unwrap();
        // Options OpenSSH has, or a distribution's ssh, that netkit does not act on or know
        // are no error; its relative Include is under its own directory.
        std::fs::write(
            &system,
            "Include ssh_config.d/*.conf\nHost *\n  User sysadmin\n  Port 2200\n  \
             Compression yes\n  GSSAPIAuthentication yes\n  VendorPatchedOption yes\n\
             Match final all\n  HashKnownHosts yes\n",
        )
        .unwrap();
        std::fs::write(dir.join("etc/ssh_config.d/50-site.conf"), "Port 2222\n").unwrap();
        let files = Files {
            user: Some(&user),
            system: Some(&system),
        };
        let c = Config::resolve_hop("box", files, "Compression no\n".into(), 0).unwrap();
        let got = (c.user.as_str(), c.port, c.compression, c.hash_known_hosts);
        assert_eq!(got, ("ann", 2222, false, true));
        let c = Config::resolve_files("box", Some(&user), Some(&system), &[]).unwrap();
        assert_eq!((c.port, c.hash_known_hosts), (22, false), "-F: not read");
    }

    #[test]
    fn a_hash_starts_a_comment_only_at_the_start_of_a_word_as_in_openssh() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::write(dir.join("id#work"), "").unwrap();
        std::fs::write(dir.join("id b#2"), "").unwrap();
        let file = dir.join("config");
        std::fs::write(
            &file,
            format!(
                "# a comment\nHost box # not a pattern: other\n  \
                 IdentityFile {0}/id#work # the work key\n  IdentityFile=\"{0}/id b#2\"\n  \
                 UserKnownHostsFile {0}/k#1 {0}/k2 #{0}/k3\nHost other\n  User bob\n",
                dir.display()
            ),
        )
        .unwrap();
        let c = Config::resolve("box", Some(&file)).unwrap();
        let other = Config::resolve("other", Some(&file)).unwrap();
        let given = [
            format!("IdentityFile={}/id#work", dir.display()),
            "User=ann #c".into(),
        ];
        let options = Config::resolve_with("box", Some(Path::new("none")), &given).unwrap();
        assert_eq!(options.user, "ann");
        assert_eq!(options.identities[0].path, dir.join("id#work"));
        let paths: Vec<&Path> = c.identities.iter().map(|i| i.path.as_path()).collect();
        assert_eq!(paths, [dir.join("id#work"), dir.join("id b#2")]);
        assert_eq!(c.known_hosts, dir.join("k#1"));
        assert_eq!(c.more_known_hosts, [dir.join("k2")]);
        assert_eq!(other.user, "bob", "a Host line's comment is no pattern");
        assert_eq!(
            openssh_line("LocalForward 1 h:1 #x", Whose::User).unwrap(),
            "LocalForward 1 h:1"
        );
        assert_eq!(
            openssh_line("SetEnv A=a#b 'c#d' \"e f#\"", Whose::User).unwrap(),
            "SetEnv \"A=a#b\" \"c#d\" \"e f#\""
        );
    }

    #[test]
    fn values_openssh_takes_are_read_not_refused() {
        assert_eq!(seconds("1m30s"), Some(90));
        assert_eq!(seconds("2h"), Some(7200));
        assert_eq!(
            (seconds("90"), seconds("1x"), seconds("m")),
            (Some(90), None, None)
        );
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = dir.join("config");
        std::fs::write(
            &file,
            "Host *\n  AddKeysToAgent confirm 1h\n  ServerAliveInterval 1m\n  \
             ConnectTimeout 10s\n  Port ssh\n  PubkeyAuthentication unbound\n  \
             ServerAliveCountMax 0\n",
        )
        .unwrap();
        let c = Config::resolve("h", Some(&file)).unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.port, 22);
        assert_eq!(c.keepalive_count, 0);
        std::fs::write(&file, "Host *\n  LogLevel ERROR\n").unwrap();
        let c = Config::resolve("h", Some(&file)).unwrap();
        assert_eq!(c.log_level.as_deref(), Some("ERROR"));
    }

    #[test]
    fn times_are_read_as_openssh_convtime_reads_them_in_dash_o_and_files() {
        assert_eq!(
            ["1h30m", "90s", "2m", "1m30", "1W", "0", "2147483647"].map(seconds),
            [5400, 90, 120, 90, 604_800, 0, 2_147_483_647].map(Some)
        );
        assert_eq!(
            ["+5", "1m+5", "-0", "+1m", "1m-0", "1m 5", "010"].map(seconds),
            [5, 65, 0, 60, 60, 65, 10].map(Some)
        );
        assert_eq!(
            [
                "",
                "5x",
                "-1",
                "s",
                "2147483648",
                "4000w",
                "+-1",
                "+",
                "0x10",
                "1m5 "
            ]
            .map(seconds),
            [None; 10]
        );
        let with = |options: &[&str], file: Option<&Path>| {
            let options: Vec<String> = options.iter().map(|o| (*o).to_owned()).collect();
            Config::resolve_files("h", Some(file.unwrap_or(Path::new("none"))), None, &options)
        };
        let c = with(&["ConnectTimeout=5s", "ServerAliveInterval 1m"], None).unwrap();
        assert_eq!(
            (c.connect_timeout, c.keepalive),
            (Duration::from_secs(5), Duration::from_secs(60))
        );
        let c = with(&["ConnectTimeout 1h30m"], None).unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(5400));
        let e = with(&["ConnectTimeout=5x"], None).unwrap_err().to_string();
        assert_eq!(
            e,
            "bad option \"ConnectTimeout=5x\": ConnectTimeout 5x: invalid time value"
        );
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = dir.join("cfg");
        std::fs::write(&file, "Host *\n  ServerAliveInterval 2m\n").unwrap();
        let c = with(&[], Some(&file)).unwrap();
        assert_eq!(c.keepalive, Duration::from_secs(120));
        // `none` sets nothing, for a later line; 0 is no ConnectTimeout, netkit's defaults.
        std::fs::write(&file, "Host *\n  ConnectTimeout 3\n").unwrap();
        let c = with(&["ConnectTimeout=none"], Some(&file)).unwrap();
        assert_eq!(c.handshake_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.connect_timeout_set, Some(Duration::from_secs(3)));
        let c = with(&["ConnectTimeout 0"], Some(&file)).unwrap();
        assert_eq!(
            (
                c.connect_timeout,
                c.handshake_timeout,
                c.connect_timeout_set
            ),
            (Config::new("h").connect_timeout, None, Some(Duration::ZERO))
        );
        std::fs::write(&file, "Host *\n  ConnectTimeout 1y\n").unwrap();
        let e = with(&[], Some(&file)).unwrap_err().to_string();
        assert!(e.contains("ConnectTimeout 1y: invalid time value"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn environment_variables_in_file_options_are_expanded_as_in_openssh() {
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            expand_variables("${HOME}/.ssh/id").unwrap(),
            format!("{home}/.ssh/id")
        );
        let unset = expand_variables("${NETKIT_SURELY_UNSET}/x").unwrap_err();
        assert!(unset.contains("NETKIT_SURELY_UNSET is not set"), "{unset}");
        assert!(expand_variables("${HOME/x").is_err());
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = dir.join("config");
        std::fs::write(
            &file,
            "Host *\n  IdentityFile ${CARGO_MANIFEST_DIR}/Cargo.toml\n  \
             UserKnownHostsFile ${HOME}/kh\n",
        )
        .unwrap();
        let c = Config::resolve("h", Some(&file)).unwrap();
        // An identity file that is there is kept (a missing one is passed over).
        assert_eq!(
            c.identities[0].path,
            Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")
        );
        assert_eq!(c.known_hosts, PathBuf::from(format!("{home}/kh")));
    }

    #[test]
    fn proxy_command_n_is_the_host_as_given() {
        let text: String = [
            "Host alias",
            "  HostName 10.1.2.3",
            "ProxyCommand connect %n:%p %h %%n",
        ]
        .map(|line| openssh_line(line, Whose::User).unwrap() + "\n")
        .concat();
        let rules = ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let parsed = ssh2_config::SshConfig::default()
            .parse(&mut text.as_bytes(), rules)
            .unwrap();
        let mut config = Config::from_destination("alias").unwrap();
        config.take_params(parsed.query("alias"), "alias").unwrap();
        let line = crate::proxy_command::expand(config.proxy_command.as_deref().unwrap(), &config);
        assert_eq!(line.unwrap(), "connect alias:22 10.1.2.3 %n");
    }

    #[test]
    fn send_env_lines_add_up_as_in_openssh() {
        let text = "SendEnv LANG\nHost x\n  SendEnv LC_*\n  SendEnv GIT_* TERM_X\n\
                    Host y\n  SendEnv OTHER\nHost *\n  SendEnv -GIT_*\n";
        let rules = ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        assert_eq!(
            send_env_for(text, "x", rules).unwrap(),
            ["LANG", "LC_*", "TERM_X"]
        );
        assert_eq!(send_env_for(text, "y", rules).unwrap(), ["LANG", "OTHER"]);
    }

    #[test]
    fn an_options_first_value_in_a_block_wins_as_in_openssh() {
        let text = "Port 1\nUser=a\n# Port 3\nport 2\nIdentityFile a\nIdentityFile b\n\
                    Host x\n  Port 4\n  Port 5\n  LocalForward 1 h:1\n  LocalForward 2 h:2\n";
        assert_eq!(
            first_values(text),
            "Port 1\nUser=a\n# Port 3\nIdentityFile a\nIdentityFile b\n\
             Host x\n  Port 4\n  LocalForward 1 h:1\n  LocalForward 2 h:2\n"
        );
    }

    #[test]
    fn destinations() {
        let c = Config::from_destination("ann@example.org:2222").unwrap();
        assert_eq!(
            (c.user.as_str(), c.host.as_str(), c.port),
            ("ann", "example.org", 2222)
        );
        let c = Config::from_destination("[::1]:22").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 22));
        assert_eq!(Config::from_destination("h").unwrap().port, 22);
        assert!(Config::from_destination("h:0").is_err());
        assert!(Config::from_destination("h:port").is_err());
        assert!(Config::from_destination("@h").is_err());
        assert!(Config::from_destination("").is_err());
        // What was named, for flags to fill in the rest; ssh's URI form too.
        let named = |user: Option<&'static str>, host, port| Destination {
            user: user.map(Cow::Borrowed),
            host,
            port,
        };
        assert_eq!(
            Destination::parse("ssh://ann@example.org:2222/").unwrap(),
            named(Some("ann"), "example.org", Some(2222))
        );
        // A URI's user is percent-decoded and ends at the first `@`, as OpenSSH reads it.
        assert_eq!(
            Destination::parse("ssh://alice%40corp;fingerprint=SHA256-x@example.org").unwrap(),
            named(Some("alice@corp"), "example.org", None)
        );
        for bad in [
            "ssh://a@b@host",
            "ssh://%ff@host",
            "ssh://;x@host",
            "ssh://@host",
        ] {
            assert!(
                matches!(Destination::parse(bad), Err(Error::BadDestination(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            Destination::parse("a@b@host").unwrap(),
            named(Some("a@b"), "host", None)
        );
        assert_eq!(
            Destination::parse("ssh://[::1]").unwrap(),
            named(None, "::1", None)
        );
        assert_eq!(
            Destination::parse("[::1]").unwrap(),
            named(None, "::1", None)
        );
        // A bare IPv6 address is a host, as ssh takes it.
        assert_eq!(
            Destination::parse("ann@fe80::1").unwrap(),
            named(Some("ann"), "fe80::1", None)
        );
        assert_eq!(Destination::parse("::1").unwrap(), named(None, "::1", None));
        assert!(Config::from_destination("ssh://h/path").is_err());
        // Names no host has, among them known_hosts' pattern characters: `foo,*` would be
        // recorded as every host's pattern.
        for bad in [
            "foo,*",
            "*",
            "web?",
            "-oProxyCommand=x",
            "a;b",
            "a b",
            "a\u{1b}b",
            "!h",
        ] {
            assert!(
                matches!(Destination::parse(bad), Err(Error::BadHostName(_))),
                "{bad:?}"
            );
        }
        assert!(Destination::parse("[fe80::1%lo]:22").is_ok());
        // known_hosts names an address in its one written form, as OpenSSH does.
        let name = |dest: &str| Config::from_destination(dest).unwrap().known_hosts_name();
        assert_eq!(name("[0:0::1]:2222"), "[::1]:2222");
        assert_eq!(name("0::1"), "::1");
        for typed in ["127.1", "2130706433", "0x7f.1", "0177.0.0.1", "127.0.1"] {
            assert_eq!(
                name(&format!("[{typed}]:2222")),
                "[127.0.0.1]:2222",
                "{typed}"
            );
        }
        assert_eq!(name("10.0x10203"), "10.1.2.3");
        for not_an_address in ["127.0.0.256", "1.2.3.4.5", "08.1", "1..2", "1.2.3.com"] {
            assert_eq!(name(not_an_address), not_an_address, "{not_an_address}");
        }
        assert_eq!(name("Web.Example.org"), "web.example.org");
    }

    #[test]
    fn encrypted_keys_are_told_apart_in_every_format() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let openssh = |cipher: &str| {
            let mut blob = b"openssh-key-v1\0".to_vec();
            blob.extend((cipher.len() as u32).to_be_bytes());
            blob.extend(cipher.as_bytes());
            blob.extend([0; 40]);
            let body = base64::engine::general_purpose::STANDARD.encode(blob);
            format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                &body[..20],
                &body[20..]
            )
        };
        let cases = [
            (openssh("aes256-ctr"), true),
            (openssh("none"), false),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n".into(),
                true,
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n".into(),
                false,
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n".into(),
                true,
            ),
            ("not a key".into(), false),
        ];
        for (i, (text, encrypted)) in cases.iter().enumerate() {
            let path = dir.join(format!("key{i}"));
            std::fs::write(&path, text).unwrap();
            assert_eq!(
                Identity::new(&path, None).is_encrypted(),
                *encrypted,
                "{text}"
            );
        }
        assert!(!Identity::new(dir.join("missing"), None).is_encrypted());
    }

    #[test]
    fn yes_and_no_options_read_as_openssh_reads_them() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = dir.join("config");
        std::fs::write(
            &file,
            "Host box\n  IdentitiesOnly true\n  BatchMode TRUE\n  HashKnownHosts true\n  \
             ExitOnForwardFailure true\n  PasswordAuthentication false\n  \
             StrictHostKeyChecking true\n  RevokedHostKeys ~/revoked\n",
        )
        .unwrap();
        let c = Config::resolve("box", Some(&file)).unwrap();
        assert!(c.identities_only && c.batch_mode && c.hash_known_hosts);
        assert!(c.exit_on_forward_failure && !c.password_authentication);
        assert_eq!(c.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(c.revoked_host_keys, Some(home().join("revoked")));
        let off = ["StrictHostKeyChecking=false".to_owned()];
        let c = Config::resolve_with("box", Some(&file), &off).unwrap();
        assert_eq!(c.host_key_policy, HostKeyPolicy::AcceptNew);
        // Anything else is an error, as in ssh: `yess` was a quiet `no`.
        std::fs::write(&file, "Host box\n  IdentitiesOnly yess\n").unwrap();
        let err = Config::resolve("box", Some(&file)).unwrap_err().to_string();
        assert!(
            err.contains("IdentitiesOnly yess: expected yes, no, true or false"),
            "{err}"
        );
        // Told with its line, in a block for another host too, as ssh tells it.
        std::fs::write(&file, "Host other\n  User u\n  Compression maybe\n").unwrap();
        let err = Config::resolve("box", Some(&file)).unwrap_err().to_string();
        assert!(
            err.contains("line 3: Compression maybe: expected yes or no"),
            "{err}"
        );
    }

    #[test]
    fn lines_after_an_include_are_back_in_its_scope() {
        // As OrbStack's `Include ~/.orbstack/ssh/config`, which ends in `Host orb`: the global
        // lines after it were taken for that host alone.
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("orb.conf"), "Host orb\n  HostName 127.0.0.9\n").unwrap();
        let main = dir.join("config");
        let include = |what: &str, after: &str| {
            std::fs::write(&main, format!("Include {}/{what}\n{after}", dir.display())).unwrap();
        };
        let got = |dest: &str| {
            let c = Config::resolve(dest, Some(&main)).unwrap();
            (c.host, c.user, c.port)
        };
        include("orb.conf", "User global\nPort 2222\n");
        assert_eq!(got("web"), ("web".into(), "global".into(), 2222));
        assert_eq!(got("orb"), ("127.0.0.9".into(), "global".into(), 2222));
        // The files of one glob each start where the Include stands.
        std::fs::write(dir.join("conf.d/a.conf"), "Host a\n  User ua\n").unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "Port 2223\n").unwrap();
        include("conf.d/*.conf", "");
        assert_eq!(got("web").2, 2223);
        assert_eq!(got("a"), ("a".into(), "ua".into(), 2223));
    }

    #[test]
    fn the_first_of_proxy_command_and_proxy_jump_wins_as_in_openssh() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = dir.join("config");
        std::fs::write(
            &file,
            "Host special\n  ProxyCommand nc %h %p\nHost * !bastion !gw\n  ProxyJump bastion\n",
        )
        .unwrap();
        let c = Config::resolve("special", Some(&file)).unwrap();
        assert_eq!(c.proxy_command.as_deref(), Some("nc %h %p"));
        assert!(c.jump.is_none(), "the host's own ProxyCommand came first");
        let c = Config::resolve("other", Some(&file)).unwrap();
        assert_eq!(c.jump.map(|j| j.host).as_deref(), Some("bastion"));
        let command = ["ProxyCommand=ssh -W %h:%p gw".to_owned()];
        let c = Config::resolve_with("other", Some(&file), &command).unwrap();
        assert!(
            c.jump.is_none(),
            "-o ProxyCommand beats the file's ProxyJump"
        );
        let direct = ["ProxyCommand=none".to_owned()];
        let c = Config::resolve_with("other", Some(&file), &direct).unwrap();
        assert!(c.jump.is_none() && c.proxy_command.is_none());
        let jump = ["ProxyJump=gw".to_owned()];
        let c = Config::resolve_with("special", Some(&file), &jump).unwrap();
        assert!(c.proxy_command.is_none());
        assert_eq!(c.jump.map(|j| j.host).as_deref(), Some("gw"));
        // Two bastions for every host but the first: the second is reached through the
        // first, its own `Host *` ProxyJump not read (it was "chains past 8 hosts").
        std::fs::write(&file, "Host * !gw\n  ProxyJump gw,gw2\n").unwrap();
        let c = Config::resolve("web", Some(&file)).unwrap();
        let gw2 = c.jump.unwrap();
        assert_eq!(gw2.host, "gw2");
        let gw = gw2.jump.unwrap();
        assert_eq!(gw.host, "gw");
        assert!(gw.jump.is_none());
    }

    #[test]
    fn command_line_options_win_over_the_file() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = dir.join("config");
        std::fs::write(
            &file,
            "Host box\n  HostName 10.0.0.9\n  Port 2200\n  StrictHostKeyChecking yes\n  ConnectTimeout 7\n",
        )
        .unwrap();
        let c = Config::resolve("box", Some(&file)).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("10.0.0.9", 2200));
        assert_eq!(c.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(c.connect_timeout, Duration::from_secs(7));
        let options = [
            "Port=2222",
            "StrictHostKeyChecking no",
            "UserKnownHostsFile=/dev/null",
            "GlobalKnownHostsFile ~/global_known_hosts /etc/kh2",
            "batchmode=yes",
            "ExitOnForwardFailure=yes",
            "ServerAliveInterval 5",
        ]
        .map(String::from);
        let c = Config::resolve_with("box", Some(&file), &options).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("10.0.0.9", 2222));
        assert_eq!(c.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(c.known_hosts, PathBuf::from("/dev/null"));
        assert!(c.more_known_hosts.is_empty(), "the file named alone");
        assert_eq!(
            c.global_known_hosts,
            [home().join("global_known_hosts"), PathBuf::from("/etc/kh2")]
        );
        assert!(c.batch_mode && c.exit_on_forward_failure);
        assert_eq!(
            (c.keepalive, c.keepalive_count),
            (Duration::from_secs(5), 3)
        );
        let counted = ["ServerAliveCountMax 2".to_owned()];
        let c = Config::resolve_with("box", Some(&file), &counted).unwrap();
        assert_eq!(c.keepalive_count, 2);
        // 0 is taken as OpenSSH takes it, from -o as from a file (below).
        let zero = ["ServerAliveCountMax=0".to_owned()];
        let c = Config::resolve_with("box", Some(&file), &zero).unwrap();
        assert_eq!(c.keepalive_count, 0);
        let bad = ["ServerAliveCountMax=-1".to_owned()];
        let err = Config::resolve_with("box", Some(&file), &bad).unwrap_err();
        assert!(err.to_string().contains("ServerAliveCountMax -1"), "{err}");
        let none = [
            "UserKnownHostsFile none".to_owned(),
            "GlobalKnownHostsFile=none".to_owned(),
        ];
        let c = Config::resolve_with("box", Some(&file), &none).unwrap();
        assert_eq!(c.known_hosts, PathBuf::from("/dev/null"));
        assert_eq!(c.global_known_hosts, [PathBuf::from("/dev/null")]);
        assert!(
            !c.keeps_new_keys,
            "none keeps no key, so accepts none as new"
        );
        let dev_null = ["UserKnownHostsFile /dev/null".to_owned()];
        let c = Config::resolve_with("box", Some(&file), &dev_null).unwrap();
        assert!(
            c.keeps_new_keys,
            "the /dev/null idiom keeps them there, as ssh"
        );
        let both = ["UserKnownHostsFile ~/kh /etc/kh_old".to_owned()];
        let c = Config::resolve_with("box", Some(&file), &both).unwrap();
        assert_eq!(
            (c.known_hosts, c.more_known_hosts),
            (home().join("kh"), vec![PathBuf::from("/etc/kh_old")])
        );
        assert_eq!(
            Config::new("h").more_known_hosts,
            [home().join(".ssh/known_hosts2")]
        );
        assert!(
            !Config::resolve("box", Some(&file))
                .unwrap()
                .exit_on_forward_failure
        );
    }

    #[test]
    fn every_forwarding_line_that_applies_is_kept_as_openssh_adds_them_up() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = dir.join("config");
        std::fs::write(
            &file,
            "Host web\n  LocalForward 8080 localhost:80\n  localforward=[::1]:8081 [::1]:81\n  \
             DynamicForward 1080\nHost db*\n  LocalForward 5432 db:5432\nHost !db* *\n  \
             RemoteForward 9000 localhost:9000\n",
        )
        .unwrap();
        let options = ["LocalForward 1111 a:1".to_owned()];
        let web = Config::resolve_with("web", Some(&file), &options).unwrap();
        assert_eq!(
            web.forwards.local,
            ["1111:a:1", "8080:localhost:80", "[::1]:8081:[::1]:81"]
        );
        assert_eq!(web.forwards.remote, ["9000:localhost:9000"]);
        assert_eq!(web.forwards.dynamic, ["1080"]);
        let db = Config::resolve("db1", Some(&file)).unwrap();
        assert_eq!(db.forwards.local, ["5432:db:5432"]);
        assert!(db.forwards.remote.is_empty() && db.forwards.dynamic.is_empty());
    }

    #[test]
    fn ciphers_change_netkit_defaults_as_in_openssh() {
        let defaults = Config::default_ciphers();
        assert!(defaults.len() == 6 && defaults.iter().all(|c| !c.contains("cbc")));
        let ciphers = |option: &str| {
            Config::resolve_with("h", Some(Path::new("/dev/null")), &[option.into()])
                .unwrap()
                .ciphers
        };
        assert_eq!(ciphers("HostName=h"), defaults);
        assert_eq!(
            ciphers("Ciphers aes256-ctr,aes128-ctr"),
            ["aes256-ctr", "aes128-ctr"]
        );
        let head = ciphers("Ciphers=^aes192-ctr");
        assert_eq!(head[0], "aes192-ctr");
        assert_eq!(head.len(), defaults.len());
        let less = ciphers("Ciphers -chacha20-poly1305@openssh.com");
        assert_eq!(less.len(), defaults.len() - 1);
        assert!(!less.iter().any(|c| c.starts_with("chacha20")));
        assert_eq!(ciphers("Ciphers +aes128-cbc").last().unwrap(), "aes128-cbc");
        // `-` takes patterns, which remove every match.
        assert_eq!(
            ciphers("Ciphers -aes*,x"),
            ["chacha20-poly1305@openssh.com"]
        );
        // Key exchanges and MACs are libssh2's unless a line names them.
        let config = |option: &str| {
            Config::resolve_with("h", Some(Path::new("/dev/null")), &[option.into()]).unwrap()
        };
        let plain = config("HostName=h");
        assert!(plain.kex_algorithms.is_none() && plain.macs.is_none());
        let kex = config("KexAlgorithms -diffie-hellman-group14-sha256")
            .kex_algorithms
            .unwrap();
        assert!(kex.contains(&"curve25519-sha256".to_owned()));
        assert!(!kex.iter().any(|k| k.ends_with("group14-sha256")));
        assert_eq!(
            config("MACs hmac-sha2-512").macs.unwrap(),
            ["hmac-sha2-512"]
        );
        let types = config("HostKeyAlgorithms=rsa-sha2-256,ssh-ed25519").host_key_algorithms;
        assert_eq!(types.unwrap(), ["rsa-sha2-256", "ssh-ed25519"]);
        // ssh expands patterns in a HostKeyAlgorithms list (only), in its order of key types
        // (ssh 9.2 -G: ssh-ed25519 before its certificate).
        let types = config("HostKeyAlgorithms=ssh-ed*,rsa-sha2-256").host_key_algorithms;
        assert_eq!(
            types.unwrap(),
            [
                "ssh-ed25519",
                "ssh-ed25519-cert-v01@openssh.com",
                "rsa-sha2-256"
            ]
        );
    }

    #[test]
    fn bad_command_line_options_are_refused() {
        for option in [
            "NoSuchOption=1",
            "Port",
            "Port=abc",
            "StrictHostKeyChecking=maybe",
            "Host *",
            "Include /etc/passwd",
            "User=a\nHostName=evil",
        ] {
            let got = Config::resolve_with("h", Some(Path::new("/dev/null")), &[option.into()]);
            assert!(
                matches!(got, Err(Error::BadOption { .. } | Error::SshConfig { .. })),
                "{option}: {got:?}"
            );
        }
    }
}
