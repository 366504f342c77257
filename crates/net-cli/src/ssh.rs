//! `netkit ssh`: argument parsing and printing only (OpenSSH's words and flags).

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use net_ssh::{AddressFamily, Client, Config, Error, EscapeChar, HostKeyPolicy, Identity};

use crate::background;
use crate::exit::{Failure, Outcome};

/// OpenSSH exits 255 for its own errors: scripts tell them from the command's codes.
pub const OWN_ERROR: u8 = 255;

/// The value `option` (an -o's `Key=Value` or `Key Value`) gives `keyword` (lowercase), if it
/// names it.
fn option_value<'o>(option: &'o str, keyword: &str) -> Option<&'o str> {
    let (name, value) = option
        .trim()
        .split_once(|c: char| c == '=' || c.is_whitespace())?;
    name.eq_ignore_ascii_case(keyword)
        .then(|| value.trim_start_matches(['=', ' ']))
}

/// Connection flags shared by `netkit ssh` and `netkit sftp`.
#[derive(clap::Args, Clone)]
pub struct ConnectArgs {
    /// User to log in as (default: the one in the destination, else the local account, as
    /// ssh).
    #[arg(long = "login", value_name = "USER")]
    pub user: Option<String>,
    /// Private key file; repeat for several (passphrase from NETKIT_SSH_PASSPHRASE or a prompt).
    #[arg(short = 'i', value_name = "KEY")]
    identity: Vec<PathBuf>,
    /// The known_hosts file [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Add an unknown host key to known_hosts (a changed key is still refused).
    #[arg(long, conflicts_with = "insecure")]
    accept_new: bool,
    /// IPv4 addresses only (as ssh -4).
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// IPv6 addresses only (as ssh -6).
    #[arg(short = '6')]
    ipv6: bool,
    /// Compress the session (zlib, as ssh -C): for slow links; on fast ones it costs time.
    #[arg(short = 'C')]
    compress: bool,
    /// Ciphers to offer, most wanted first, as ssh -c (a list, or `+`, `-` or `^` and a list to
    /// add, drop or put first, as ssh_config's Ciphers).
    #[arg(short = 'c', value_name = "CIPHER_SPEC", overrides_with = "cipher")]
    cipher: Option<String>,
    /// MACs to offer, most wanted first, as ssh -m (`+`, `-` and `^` as for -c).
    #[arg(short = 'm', value_name = "MAC_SPEC", overrides_with = "macs")]
    macs: Option<String>,
    /// Accept any host key. Dangerous.
    #[arg(long)]
    insecure: bool,
    /// OpenSSH client config for Host aliases [default: ~/.ssh/config, then
    /// /etc/ssh/ssh_config or $NETKIT_SSH_SYSTEM_CONFIG; `none`: no file]; given twice, the
    /// last counts, as in ssh.
    #[arg(short = 'F', value_name = "FILE", action = clap::ArgAction::Append)]
    ssh_config: Vec<PathBuf>,
    /// Seconds to wait for the server in any one step: connecting (at most 10 s) and its
    /// banner, the key exchange, authentication, each SFTP call [default: 30]; -o
    /// ConnectTimeout=N bounds connecting, banner and key exchange together, as in ssh, on
    /// every hop. A running command (or -N, -W) may stay silent: a server that stops answering
    /// then is given up after ServerAliveInterval x (ServerAliveCountMax + 1) seconds (15 x 4
    /// unless set with -o).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// An OpenSSH option for the destination, as ssh -o (repeatable): HostName, User, Port,
    /// IdentityFile, IdentitiesOnly, ProxyJump, ProxyCommand, AddressFamily, ConnectTimeout,
    /// StrictHostKeyChecking, UserKnownHostsFile, GlobalKnownHostsFile, HashKnownHosts,
    /// BatchMode, ExitOnForwardFailure, LocalForward, RemoteForward, DynamicForward,
    /// Compression, Ciphers, KexAlgorithms, MACs, ServerAliveInterval, ServerAliveCountMax,
    /// LogLevel, and more (README); an option netkit does not act on is ignored with a
    /// warning, an unknown one is an error.
    #[arg(short = 'o', value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// Whether an `-o User=` or `-o Port=` was the first value obtained, over the flags
    /// (-l, --login, -p, -P) and over what DEST names, as ssh keeps the first. sftp hands its
    /// -o's to ssh ahead of the port and user it adds (`sftp -P 1 -o Port=2` connects to 2),
    /// so there they always are; `netkit ssh` notes the order given.
    #[arg(skip = OptionsFirst::ALWAYS)]
    options_first: OptionsFirst,
    /// Connect through these jump hosts first, in order, as OpenSSH's ProxyJump (given
    /// once, as in ssh: hops are separated by commas).
    #[arg(
        short = 'J',
        value_name = "[user@]host[:port],...",
        value_delimiter = ',',
        action = clap::ArgAction::Set
    )]
    jump: Vec<String>,
    /// Say what happens, as ssh -v: addresses, the server's banner and algorithms, the host
    /// key, each authentication method tried and the one that got in. ssh also says each
    /// forward's listener and connection and the exit status, and with -vv (or -vvv) each
    /// request sent and where each forwarded connection came from, as ssh's DEBUG2.
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Errors only, no warnings (as ssh -q).
    #[arg(short = 'q', long, conflicts_with = "verbose")]
    quiet: bool,
    /// Append warnings and -v's steps to FILE instead of stderr (as ssh -E).
    #[arg(short = 'E', value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

impl ConnectArgs {
    /// The log level -v, -q or `-o LogLevel=...` asks for, if any (the flags win).
    pub fn log_level(&self) -> Option<log::LevelFilter> {
        // -v is ssh's DEBUG1, -vv and -vvv its DEBUG2 and DEBUG3 (our trace: one level).
        match self.verbose {
            0 => {}
            1 => return Some(log::LevelFilter::Debug),
            _ => return Some(log::LevelFilter::Trace),
        }
        if self.quiet {
            return Some(log::LevelFilter::Error);
        }
        // The first -o LogLevel wins, as the first value obtained does in OpenSSH.
        let level = self.option("loglevel")?.to_ascii_uppercase();
        match level.as_str() {
            "QUIET" | "FATAL" | "ERROR" => Some(log::LevelFilter::Error),
            "DEBUG" | "DEBUG1" => Some(log::LevelFilter::Debug),
            l if l.starts_with("DEBUG") => Some(log::LevelFilter::Trace),
            _ => None,
        }
    }

    /// The log filter for [`log_level`](Self::log_level), if one was asked for.
    pub fn log_filter(&self) -> Option<&'static str> {
        self.log_level().map(|level| match level {
            log::LevelFilter::Off | log::LevelFilter::Error => "error",
            // sftp's -v sets no maximum level after the filter: the filter holds it at debug.
            log::LevelFilter::Debug => "warn,net_ssh=debug,netkit=debug",
            log::LevelFilter::Trace => OWN_STEPS,
            log::LevelFilter::Warn | log::LevelFilter::Info => "warn",
        })
    }

    /// The value of the first -o naming `keyword` (lowercase), as the first value obtained
    /// counts in OpenSSH.
    fn option(&self, keyword: &str) -> Option<&str> {
        self.options
            .iter()
            .find_map(|option| option_value(option, keyword))
    }

    /// Puts `options` ahead of -o's (the first value of an option counts).
    fn put_options_first(&mut self, options: Vec<String>) {
        self.options.splice(0..0, options);
    }

    /// The file -F names (the last, as ssh counts it), if any.
    pub fn ssh_config(&self) -> Option<&std::path::Path> {
        self.ssh_config.last().map(PathBuf::as_path)
    }

    /// The connection config for `dest` (`[user@]host[:port]`); `port` applies when DEST has none.
    pub fn config(&self, dest: &str, port: Option<u16>) -> Result<Config, Failure> {
        let first = |keyword: &str, noted: bool| noted && self.option(keyword).is_some();
        let (flags, named) = (self.options_first.flags, self.options_first.dest);
        let port = port.filter(|_| !first("port", flags.port));
        let user = self.user.as_deref().filter(|_| !first("user", flags.user));
        let dest = &without_named(dest, first("user", named.user), first("port", named.port));
        // The flags come first, as the first value obtained wins: the config's tokens (%r,
        // %p) then see them too, as ssh's do. -J is ProxyJump: it replaces the file's
        // ProxyJump and ProxyCommand, and the first hop is reached through its own
        // ProxyJump, as ssh's `-W` for it is.
        let options: Vec<String> = (!self.jump.is_empty())
            .then(|| format!("ProxyJump={}", self.jump.join(",")))
            .into_iter()
            .chain(user.iter().map(|user| format!("User={user}")))
            .chain(port.map(|port| format!("Port={port}")))
            .chain(self.cipher.iter().map(|spec| format!("Ciphers={spec}")))
            .chain(self.macs.iter().map(|spec| format!("MACs={spec}")))
            .chain(self.options.iter().cloned())
            .collect();
        // The system file a test (or an unusual install) names instead of /etc/ssh/ssh_config.
        let system = std::env::var_os("NETKIT_SSH_SYSTEM_CONFIG")
            .map_or_else(|| PathBuf::from(net_ssh::SYSTEM_CONFIG), PathBuf::from);
        let mut config =
            said_once(|| Config::resolve_files(dest, self.ssh_config(), Some(&system), &options))
                .map_err(own)?;
        // The config file's LogLevel too (-o's was read before the logger started): only a
        // quieter one can be followed now, the common `LogLevel ERROR` that hushes warnings.
        let quiet = ["QUIET", "FATAL", "ERROR"];
        if self.verbose == 0
            && config
                .log_level
                .as_deref()
                .is_some_and(|level| quiet.contains(&level.to_ascii_uppercase().as_str()))
        {
            log::set_max_level(log::LevelFilter::Error);
        }
        said_once(|| self.apply(&mut config, dest, port, user))?;
        // -4 and -6 are the target's alone: ssh passes neither to the `ssh -W` it runs for a
        // jump host, whose own config picks its family (`-6 -J v4-bastion v6-target` failed
        // with "no IPv6 address" for the bastion).
        if self.ipv4 {
            config.address_family = AddressFamily::Inet;
        } else if self.ipv6 {
            config.address_family = AddressFamily::Inet6;
        }
        // -o ConnectTimeout bounds the jump hosts' connections too (they read no -o): each
        // waited its own 10 s connect and --timeout key exchange on the same slow or dead link.
        // One that sets none (`none`, 0) leaves the hops' own.
        let connect = self
            .option("connecttimeout")
            .filter(|_| config.handshake_timeout.is_some())
            .map(|_| (config.connect_timeout, config.handshake_timeout));
        // The other flags apply to every hop; --login and -p to the target only.
        let mut hop = config.jump.as_deref_mut();
        while let Some(via) = hop {
            if let Some((connect_timeout, handshake_timeout)) = connect {
                via.connect_timeout = connect_timeout;
                via.handshake_timeout = handshake_timeout;
            }
            self.apply(via, "", None, None)?;
            hop = via.jump.as_deref_mut();
        }
        Ok(config)
    }

    /// Applies the flags to the config of one host, `dest` as given (what it names wins).
    fn apply(
        &self,
        config: &mut Config,
        dest: &str,
        port: Option<u16>,
        user: Option<&str>,
    ) -> Result<(), Failure> {
        let named = net_ssh::Destination::parse(dest).ok();
        if let Some(port) = port
            && named.as_ref().is_none_or(|d| d.port.is_none())
        {
            config.port = port;
        }
        if let Some(user) = user
            && named.as_ref().is_none_or(|d| d.user.is_none())
        {
            user.clone_into(&mut config.user);
        }
        // The flags win over -o and the config file; without them, those decide.
        if let Some(path) = &self.known_hosts {
            config.known_hosts.clone_from(path);
            config.keeps_new_keys = true;
            // As `-o UserKnownHostsFile=FILE`: that file alone of the user's.
            config.more_known_hosts.clear();
        }
        if self.compress {
            config.compression = true;
        }
        if self.insecure {
            config.host_key_policy = HostKeyPolicy::Insecure;
        } else if self.accept_new {
            config.host_key_policy = HostKeyPolicy::AcceptNew;
        }
        if let Some(secs) = self.timeout {
            let secs = Duration::from_secs(secs.max(1));
            config.timeout = secs;
            // Shorter only: connecting keeps ConnectTimeout's bound (10 s unless set), or a
            // dead host of a --hosts run cost all of a long --timeout.
            config.connect_timeout = config.connect_timeout.min(secs);
            config.handshake_timeout = config.handshake_timeout.map(|t| t.min(secs));
            // -G shows that bound: --timeout, which ssh has not, set it.
            config.connect_timeout_set = Some(config.connect_timeout);
        }
        let passphrase = std::env::var("NETKIT_SSH_PASSPHRASE").ok();
        if passphrase.is_some() && config.identities.is_empty() && self.identity.is_empty() {
            config.identities = Config::default_identities();
        }
        for identity in &mut config.identities {
            identity.passphrase.clone_from(&passphrase);
        }
        // As ssh: `-i` files are tried first, then the config file's (a key of its that
        // cannot be used, encrypted with no one to ask, leaves the others to try).
        let from_file = std::mem::take(&mut config.identities);
        for path in &self.identity {
            // As ssh: a key file that cannot be read is said (once, for the target) and passed
            // over; the other keys and the agent may still let the user in.
            if let Err(e) = std::fs::metadata(path) {
                if !dest.is_empty() {
                    log::warn!("identity file {} not accessible: {e}", path.display());
                }
                continue;
            }
            config
                .identities
                .push(Identity::new(path, passphrase.clone()));
        }
        for identity in from_file {
            if !config.identities.iter().any(|i| i.path == identity.path) {
                config.identities.push(identity);
            }
        }
        config.password = std::env::var("NETKIT_SSH_PASSWORD").ok();
        Ok(())
    }
}

/// `dest` without the user or the port it names (`user` or `port` true), which an earlier
/// `-o User=` or `-o Port=` gave first: ssh keeps that value (`-o User=b c@box` logs in as
/// b), where DEST's won.
fn without_named(dest: &str, user: bool, port: bool) -> std::borrow::Cow<'_, str> {
    let Ok(named) = net_ssh::Destination::parse(dest) else {
        return dest.into();
    };
    if !(user && named.user.is_some() || port && named.port.is_some()) {
        return dest.into();
    }
    let user = named.user.filter(|_| !user);
    let port = named.port.filter(|_| !port);
    let user = user.map(|user| format!("{user}@")).unwrap_or_default();
    // A bare IPv6 address is taken whole without a port, as given.
    let at = port.map_or_else(
        || named.host.to_owned(),
        |port| net_ssh::host_port(named.host, port),
    );
    format!("{user}{at}").into()
}

/// `f`, its warnings hushed in the process `-f` starts (see [`background`]): it reads the
/// config again, which the process the user started read and warned about (each warning was
/// printed twice). Its errors still show: that process had none, or stopped at them.
fn said_once<T>(f: impl FnOnce() -> T) -> T {
    if !background::is_child() {
        return f();
    }
    let level = log::max_level();
    log::set_max_level(level.min(log::LevelFilter::Error));
    let done = f();
    log::set_max_level(level);
    done
}

/// Connects; with a terminal or an askpass program (unless BatchMode), asks for a key's
/// passphrase when it is needed (a default key's only once the server has refused the others)
/// and for the password when the other methods fail, as ssh does, each for the host (target or
/// jump) that wants it.
pub fn connect(config: &mut Config) -> Result<Client, Failure> {
    let asker = (!config.batch_mode)
        .then(crate::askpass::Asker::find)
        .flatten();
    let may_ask = asker.is_some();
    for_each_hop(config, |hop| hop.asks_passphrases = may_ask);
    // A cancelled askpass is an empty answer (ssh's read_passphrase): it skips a key.
    let ask = |prompt: &str| match &asker {
        Some(asker) => asker.ask(prompt).map_err(own),
        None => Ok(None),
    };
    let ask_passphrase = |path: &std::path::Path| {
        let prompt = format!("Enter passphrase for key '{}': ", path.display());
        Ok::<_, Failure>(ask(&prompt)?.unwrap_or_default())
    };
    // The default keys with the passphrases given (none when every one was skipped).
    let mut unlocked_defaults: Option<Vec<Identity>> = None;
    // The keys given up on.
    let mut skipped = Vec::new();
    // The keys whose passphrase a person was asked for, once per question: one from
    // NETKIT_SSH_PASSPHRASE that is wrong is passed over, not asked again as if someone had
    // mistyped it.
    let mut asked = Vec::new();
    // The (host, user) of each password a person typed.
    let mut typed: Vec<(String, String)> = Vec::new();
    loop {
        match Client::connect(config) {
            Err(Error::Key { path }) if may_ask => {
                let tries = asked.iter().filter(|p| **p == path).count();
                // The flags give every hop the same keys: one answer serves them all.
                let mut had_passphrase = None;
                let mut prompts = 0;
                for_each_hop(config, |hop| {
                    if let Some(identity) = hop
                        .identities
                        .iter()
                        .find(|i| i.path == path && i.is_encrypted())
                    {
                        had_passphrase.get_or_insert(identity.passphrase.is_some());
                        prompts = prompts.max(hop.password_prompts);
                    }
                });
                // Asked with the same words again after a wrong answer, NumberOfPasswordPrompts
                // times in all (0: never), as ssh's load_identity_file asks.
                let answer = match had_passphrase {
                    None => return Err(own(Error::Key { path })),
                    Some(true) if tries == 0 => String::new(),
                    Some(_) if u32::try_from(tries).is_ok_and(|n| n < prompts) => {
                        asked.push(path.clone());
                        ask_passphrase(&path)?
                    }
                    Some(_) => String::new(),
                };
                // An empty answer skips the key, as in ssh, and so does the last wrong one: the
                // next key or the password is tried.
                let passphrase = (!answer.is_empty()).then_some(answer);
                let update = |identities: &mut Vec<Identity>| match &passphrase {
                    Some(passphrase) => {
                        for identity in identities.iter_mut().filter(|i| i.path == path) {
                            identity.passphrase = Some(passphrase.clone());
                        }
                    }
                    None => identities.retain(|i| i.path != path),
                };
                for_each_hop(config, |hop| {
                    let named = !hop.identities.is_empty();
                    update(&mut hop.identities);
                    // The keys left are all this hop offers: no default files behind -i's.
                    hop.default_identities &= !named;
                });
                if let Some(identities) = &mut unlocked_defaults {
                    update(identities);
                }
                // Each answer is tried on a new connection (libssh2 cannot be asked mid-login):
                // said, or -v showed a second login with no reason.
                log::debug!(
                    "connecting again: the key {} {}",
                    path.display(),
                    if passphrase.is_some() {
                        "is offered with the passphrase given"
                    } else {
                        "is skipped"
                    }
                );
                if passphrase.is_none() {
                    skipped.push(path);
                }
            }
            Err(Error::Auth {
                host,
                user,
                tried,
                accepted,
            }) if may_ask => {
                let mut defaults = Config::default_identities();
                defaults.retain(|i| !skipped.contains(&i.path));
                if unlocked_defaults.as_ref().is_none_or(|ids| !ids.is_empty())
                    && defaults.iter().any(Identity::is_encrypted)
                    && let Some(hop) = refused_hop(config, &host, &user, |c| {
                        c.identities.is_empty() && c.default_identities && c.pubkey_authentication
                    })
                {
                    // Asked once: a jump host and the target behind it take the same answers.
                    if unlocked_defaults.is_none() {
                        let mut identities = Vec::new();
                        for mut identity in defaults {
                            if identity.is_encrypted() {
                                // An empty answer skips the key, as in ssh, and so does
                                // NumberOfPasswordPrompts=0, which asks for nothing.
                                if hop.password_prompts == 0 {
                                    continue;
                                }
                                asked.push(identity.path.clone());
                                let passphrase = ask_passphrase(&identity.path)?;
                                if passphrase.is_empty() {
                                    continue;
                                }
                                identity.passphrase = Some(passphrase);
                            }
                            identities.push(identity);
                        }
                        unlocked_defaults = Some(identities);
                    }
                    hop.identities = unlocked_defaults.clone().unwrap_or_default();
                    log::debug!(
                        "connecting again: {user}@{host} refused the other keys; the default \
                         keys are offered with the passphrases given"
                    );
                    continue;
                }
                // Not for a server that takes no password, as ssh never asks for one then.
                let takes_password =
                    accepted.contains("password") || accepted.contains("keyboard-interactive");
                // Asked again after a typed one failed, NumberOfPasswordPrompts times in
                // all (0: never), as ssh asks; one from NETKIT_SSH_PASSWORD is not asked over.
                let typed_tries = typed
                    .iter()
                    .filter(|(h, u)| *h == host && *u == user)
                    .count();
                let open = |c: &Config| {
                    takes_password
                        && c.password_authentication
                        && (c.password.is_none() || typed_tries > 0)
                        && u32::try_from(typed_tries).is_ok_and(|n| n < c.password_prompts)
                };
                let Some(hop) = refused_hop(config, &host, &user, open) else {
                    return Err(own(Error::Auth {
                        host,
                        user,
                        tried,
                        accepted,
                    }));
                };
                if typed_tries > 0 {
                    crate::exit::say(format_args!("Permission denied, please try again."));
                }
                let prompt = format!("{user}@{host}'s password: ");
                // A cancelled askpass is an empty password, tried and counted as one, as
                // ssh's read_passphrase gives it to userauth_passwd.
                hop.password = Some(ask(&prompt)?.unwrap_or_default());
                log::debug!(
                    "connecting again to {user}@{host} with the password asked for ({})",
                    if tried.is_empty() {
                        "no other method to try".to_owned()
                    } else {
                        format!("not in with: {}", tried.join(", "))
                    }
                );
                typed.push((host, user));
            }
            Err(error) => return Err(own(without_prompt(error, config, may_ask))),
            Ok(client) => return Ok(client),
        }
    }
}

/// `error`, with the variable to set when there was no terminal to ask on (a script's
/// "authentication failed" did not say that a password or passphrase could be given).
fn without_prompt(error: Error, config: &Config, may_ask: bool) -> anyhow::Error {
    let hint = match &error {
        _ if may_ask || config.batch_mode => None,
        Error::Auth { accepted, .. }
            if config.password.is_none()
                && config.password_authentication
                && (accepted.contains("password") || accepted.contains("keyboard-interactive")) =>
        {
            Some("set NETKIT_SSH_PASSWORD for a password (no terminal to ask on)")
        }
        Error::Key { path }
            if Identity::new(path, None).is_encrypted()
                && std::env::var_os("NETKIT_SSH_PASSPHRASE").is_none() =>
        {
            Some("set NETKIT_SSH_PASSPHRASE for its passphrase (no terminal to ask on)")
        }
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::anyhow!("{error}; {hint}"),
        None => error.into(),
    }
}

/// Calls `f` on the target's config, then on each jump host's.
fn for_each_hop(config: &mut Config, mut f: impl FnMut(&mut Config)) {
    let mut hop = Some(config);
    while let Some(c) = hop {
        f(c);
        hop = c.jump.as_deref_mut();
    }
}

/// The host in `config`'s chain (the target or a jump host) whose authentication as `user`
/// was refused and for which `open` holds: jump hosts are connected first, so the deepest
/// match.
fn refused_hop<'a>(
    config: &'a mut Config,
    host: &str,
    user: &str,
    open: impl Fn(&Config) -> bool,
) -> Option<&'a mut Config> {
    let mut depth = None;
    let mut hop = Some(&*config);
    let mut level = 0;
    while let Some(c) = hop {
        if c.host == host && c.user == user && open(c) {
            depth = Some(level);
        }
        hop = c.jump.as_deref();
        level += 1;
    }
    let mut hop = config;
    for _ in 0..depth? {
        hop = hop.jump.as_deref_mut()?;
    }
    Some(hop)
}

pub(crate) fn own(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: OWN_ERROR,
        error: error.into(),
    }
}

/// The log filter that shows our own steps, as ssh -v tells its own (the maximum level
/// decides how many); the config parser's are not the user's.
pub const OWN_STEPS: &str = "warn,net_ssh=trace,netkit=trace";

/// Arguments of `netkit ssh`.
#[derive(clap::Args)]
#[command(after_help = "\
The password comes from NETKIT_SSH_PASSWORD or a prompt on a terminal, never from argv.
Host keys are checked against known_hosts: unknown hosts are refused unless --accept-new.

Exit status: the remote command's; 255 for netkit's own errors and for a command killed by a
signal (as OpenSSH); 141 when whoever read the output went (`| head -1`); 130 or 143 after
Ctrl-C or SIGTERM (0 with -N or -W: a tunnel stopped so has done its job, as a supervisor
expects of SIGTERM). With --hosts: 0 when every host ran the command with status 0, else 1;
141 when the reader went; 130 or 143 after Ctrl-C or SIGTERM (the hosts done are reported, the
rest marked interrupted with what they printed so far); 255 for bad arguments.

Examples:
  netkit ssh deploy@10.0.0.5 -- uname -a
  tar cz dir | netkit ssh -p 2222 host 'tar xz -C /srv'
  netkit ssh host                  (no COMMAND: an interactive login shell on a terminal)
  netkit ssh -t host sudo systemctl restart nginx   (COMMAND on a remote terminal)
  netkit ssh -W db:5432 bastion    (stdin and stdout to db:5432 through bastion, for ProxyCommand)
  netkit ssh -f -N -L 5433:db:5432 web   (a tunnel left in the background once authenticated)
  netkit ssh host < script.sh      (no COMMAND, stdin not a terminal: the shell runs the script)
  netkit ssh --hosts web1,web2,db1 --parallel 10 --json -- uptime")]
pub struct Args {
    /// Port: before DEST it wins over DEST's own, after DEST it counts only when DEST has none
    /// (given twice, the first counts, as in ssh).
    #[arg(
        short = 'p',
        value_name = "PORT",
        value_parser = clap::value_parser!(u16).range(1..),
        action = clap::ArgAction::Append
    )]
    port: Vec<u16>,
    /// User to log in as (given twice, the first counts, as in ssh).
    #[arg(short = 'l', value_name = "USER", action = clap::ArgAction::Append)]
    login: Vec<String>,
    /// Connect from this local address (as ssh -b; BindAddress in the config).
    #[arg(
        short = 'b',
        value_name = "BIND_ADDRESS",
        overrides_with = "bind_address"
    )]
    bind_address: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Run COMMAND on a remote terminal (for sudo, top, editors), as ssh -t; only when
    /// stdin is a terminal, unless given twice (-tt).
    #[arg(short = 't', action = clap::ArgAction::Count, overrides_with = "no_tty")]
    tty: u8,
    /// No remote terminal, not even for the login shell (as ssh -T); the last of -t and -T
    /// wins.
    #[arg(short = 'T', overrides_with = "tty")]
    no_tty: bool,
    /// Connect stdin and stdout to HOST:PORT as seen from the server, as ssh -W (for an
    /// OpenSSH ProxyCommand); no command, no terminal.
    #[arg(
        short = 'W',
        value_name = "HOST:PORT",
        conflicts_with_all = ["no_command", "tty", "forward", "remote_forward", "dynamic_forward", "hosts", "hosts_file"]
    )]
    stdio_forward: Option<String>,
    /// Do not read stdin: the remote side gets EOF at once (as ssh -n, for a loop that reads
    /// its own stdin).
    #[arg(short = 'n')]
    no_stdin: bool,
    /// Forward a local port to HOST:PORT as seen from the server, while COMMAND runs.
    #[arg(short = 'L', value_name = "[BIND:]LPORT:HOST:PORT")]
    forward: Vec<String>,
    /// Forward a port the server listens on (RPORT 0: one it picks, printed) to HOST:PORT as
    /// seen from here, while COMMAND runs.
    #[arg(short = 'R', value_name = "[BIND:]RPORT:HOST:PORT")]
    remote_forward: Vec<String>,
    /// Serve SOCKS4/5 on [BIND:]PORT, each client's connection made through the server.
    #[arg(short = 'D', value_name = "[BIND:]PORT")]
    dynamic_forward: Vec<String>,
    /// The command names a subsystem of the server to start (as ssh -s: `sftp`, `netconf`).
    #[arg(short = 's', conflicts_with_all = ["no_command", "tty"])]
    subsystem: bool,
    /// No command: only forward ports, until interrupted (as ssh -N).
    #[arg(short = 'N', conflicts_with = "tty")]
    no_command: bool,
    /// Local forwards (-L, -D) without a bind address listen on every interface, not only
    /// loopback (as ssh -g).
    #[arg(short = 'g')]
    gateway_ports: bool,
    /// The escape character on a remote terminal (default `~`; `^X` for a control key,
    /// `none` for none), as ssh -e; it wins over EscapeChar.
    #[arg(short = 'e', value_name = "CHAR", value_parser = escape_char, overrides_with = "escape")]
    escape: Option<EscapeChar>,
    /// ssh's -x turns X11 forwarding off (ForwardX11 no): netkit never does it, so scripts
    /// written for ssh keep working; it hushes a config's ForwardX11 yes.
    #[arg(short = 'x', action = clap::ArgAction::Count, hide = true)]
    no_x11: u8,
    /// ssh's -a turns agent forwarding off (ForwardAgent no): as -x.
    #[arg(short = 'a', action = clap::ArgAction::Count, hide = true)]
    no_agent: u8,
    /// ssh's -k turns GSSAPI credential forwarding off, which netkit never does.
    #[arg(short = 'k', action = clap::ArgAction::Count, hide = true)]
    _no_gssapi: u8,
    /// ssh's -2 (protocol 2, the only one), -P (a flag ssh 9.2 takes and ignores) and -y
    /// (ssh's log to syslog; netkit's stays on stderr or in -E FILE): taken, as sshfs and
    /// pdsh pass -2.
    #[arg(short = '2', short_aliases = ['P', 'y'], action = clap::ArgAction::Count, hide = true)]
    _taken: u8,
    /// ssh -1: protocol 1, which ssh refuses too.
    #[arg(short = '1', hide = true)]
    protocol_1: bool,
    /// ssh -S: the connection-sharing socket (ControlPath; netkit shares no connection).
    #[arg(short = 'S', value_name = "CTL_PATH", hide = true)]
    control_path: Option<String>,
    /// ssh -M: ControlMaster yes (twice: ask).
    #[arg(short = 'M', action = clap::ArgAction::Count, hide = true)]
    control_master: u8,
    /// ssh -O: a command for the master connection (check, forward, cancel, exit, stop,
    /// proxy); netkit keeps none, so it fails as ssh does when none runs.
    #[arg(short = 'O', value_name = "CTL_CMD", hide = true)]
    control_command: Option<String>,
    /// ssh -K: GSSAPI authentication with credentials delegated.
    #[arg(short = 'K', hide = true)]
    gssapi: bool,
    /// ssh -B: connect from this interface's address (BindInterface).
    #[arg(short = 'B', value_name = "BIND_INTERFACE", hide = true)]
    bind_interface: Option<String>,
    /// Agent forwarding (ssh -A, ForwardAgent yes): libssh2 cannot serve the channels the
    /// server opens for it, so netkit warns and goes on without.
    #[arg(short = 'A', action = clap::ArgAction::Count, hide = true)]
    agent_forwarding: u8,
    /// X11 forwarding (ssh -X, -Y): as -A.
    #[arg(short = 'X', short_aliases = ['Y'], action = clap::ArgAction::Count, hide = true)]
    x11: u8,
    /// Print the configuration netkit resolves for DEST (config file, -o and flags) and exit
    /// without connecting, as ssh -G: one `keyword value` line per option netkit acts on.
    #[arg(short = 'G', conflicts_with_all = ["hosts", "hosts_file"])]
    print_config: bool,
    /// List the algorithms netkit supports, as ssh -Q: cipher, mac, kex, key (or Ciphers,
    /// MACs, KexAlgorithms, HostKeyAlgorithms); help lists these.
    #[arg(short = 'Q', value_name = "QUERY")]
    query: Option<String>,
    /// Go to the background once connected and authenticated, as ssh -f (for `-f -N -L ...`
    /// tunnels, or a command left running): stdin is not read, output still goes to ours.
    #[arg(short = 'f', conflicts_with_all = ["stdio_forward", "hosts", "hosts_file"])]
    background: bool,
    /// Run on these hosts ([user@]host[:port], comma-separated) instead of DEST. Each
    /// host's command reads all of stdin (unless -n or a terminal; up to 64 MiB: one that
    /// reads to the end of a longer one fails, "stdin was cut short"), as pssh -I sends it.
    // An Option, so that a list given empty (`--hosts "$NONE"`) is told from no --hosts: it
    // is refused, where taking the command's first word for DEST ran it elsewhere.
    #[arg(
        long,
        value_name = "DEST,DEST,...",
        value_delimiter = ',',
        conflicts_with_all = ["hosts_file", "forward", "remote_forward", "dynamic_forward", "tty", "no_command", "subsystem"]
    )]
    hosts: Option<Vec<String>>,
    /// Run on the hosts listed in FILE, one per line (# comments).
    // Many hosts run one command each, with no forwards, terminal or subsystem: refused, not
    // passed over without a word.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["forward", "remote_forward", "dynamic_forward", "tty", "no_command", "subsystem"]
    )]
    hosts_file: Option<PathBuf>,
    /// Sessions at once with --hosts.
    #[arg(long, value_name = "P", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    parallel: u64,
    /// Give up on a command that runs longer than SECS (the host fails with a timeout), as
    /// pssh's -t; by default a command may run as long as it likes.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    command_timeout: Option<u64>,
    /// With --hosts: one JSON document with every host's result (output that is not UTF-8 has
    /// U+FFFD in place of its bytes).
    #[arg(long)]
    json: bool,
    /// DEST then COMMAND (DEST is absent with --hosts). As with ssh, options may also follow
    /// DEST, up to COMMAND's first word or `--`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "DEST [--] COMMAND"
    )]
    words: Vec<String>,
    #[arg(skip)]
    flags_first: FlagsFirst,
}

/// Which of -p and -l came before DEST (see [`Args::note_flags_before_destination`]), or
/// which of an `-o Port=` and `-o User=` came before them ([`OptionsFirst`]).
#[derive(Clone, Copy, Default)]
struct FlagsFirst {
    port: bool,
    user: bool,
}

/// Which of an `-o Port=` and `-o User=` came before their flags and before DEST (see
/// [`ConnectArgs::options_first`]).
#[derive(Clone, Copy, Default)]
struct OptionsFirst {
    flags: FlagsFirst,
    dest: FlagsFirst,
}

impl OptionsFirst {
    /// As sftp passes its -o's to ssh: ahead of all.
    const ALWAYS: OptionsFirst = OptionsFirst {
        flags: FlagsFirst {
            port: true,
            user: true,
        },
        dest: FlagsFirst {
            port: true,
            user: true,
        },
    };
}

impl Args {
    /// The connection config for `dest`, with the command's time limit.
    fn config(&self, dest: &str) -> Result<Config, Failure> {
        let port = self
            .port
            .first()
            .copied()
            .filter(|_| !self.connect.options_first.flags.port);
        let mut config = self.connect.config(dest, port)?;
        config.exec_timeout = self.command_timeout.map(Duration::from_secs);
        // ssh takes the first of a flag and DEST's word for the port and the user.
        if let (true, Some(port)) = (self.flags_first.port, port) {
            config.port = port;
        }
        if let (true, Some(user)) = (self.flags_first.user, &self.connect.user) {
            user.clone_into(&mut config.user);
        }
        Ok(config)
    }

    /// Notes which of -p and -l (or --login) come before DEST in `before` (the words ahead
    /// of it): those win over what DEST names, as in ssh.
    pub fn note_flags_before_destination(&mut self, before: &[std::ffi::OsString]) {
        let given = |short: &str, long: Option<&str>| {
            before.iter().any(|w| {
                let w = w.to_string_lossy();
                w.starts_with(short)
                    || long.is_some_and(|l| w == l || w.starts_with(&format!("{l}=")))
            })
        };
        self.flags_first = FlagsFirst {
            port: given("-p", None),
            user: given("-l", Some("--login")),
        };
    }

    /// Notes whether an `-o User=` came before -l (or --login), and an `-o Port=` before -p,
    /// among the words `matches` was parsed from: ssh keeps the first value it obtains, so
    /// such an -o wins over the flag, where the flag won whatever the order.
    pub fn note_options_before_flags(&mut self, matches: &clap::ArgMatches) {
        let first_flag = |ids: &[&str]| {
            ids.iter()
                .filter_map(|id| matches.indices_of(id)?.next())
                .min()
        };
        let first_option = |keyword: &str| {
            let values = matches.get_many::<String>("options")?;
            let indices = matches.indices_of("options")?;
            values
                .zip(indices)
                .find_map(|(option, at)| option_value(option, keyword).map(|_| at))
        };
        let before = |keyword: &str, ids: &[&str]| matches!((first_option(keyword), first_flag(ids)), (Some(o), Some(f)) if o < f);
        // Over DEST: none, until [`Args::note_options_before_destination`] says.
        self.connect.options_first = OptionsFirst {
            flags: FlagsFirst {
                port: before("port", &["port"]),
                user: before("user", &["login", "user"]),
            },
            dest: FlagsFirst::default(),
        };
    }

    /// With --hosts or --hosts-file, notes the `-o User=` and `-o Port=` given as coming
    /// before each host's user and port, as pssh hands its -O options to ssh ahead of the
    /// host: they win over `user@host:port`, as over a single DEST after them.
    pub fn note_options_before_hosts(&mut self) {
        if self.hosts.is_some() || self.hosts_file.is_some() {
            self.connect.options_first.dest = FlagsFirst {
                port: self.connect.option("port").is_some(),
                user: self.connect.option("user").is_some(),
            };
        }
    }

    /// Notes whether an `-o User=` and an `-o Port=` are among `before`, the options given
    /// ahead of DEST (parsed alone): such an -o wins over what DEST names, as in ssh, where
    /// DEST's user and port won whatever the order.
    pub fn note_options_before_destination(&mut self, before: &Args) {
        self.connect.options_first.dest = FlagsFirst {
            port: before.connect.option("port").is_some(),
            user: before.connect.option("user").is_some(),
        };
    }

    /// Refuses a first word (DEST, or with --hosts COMMAND's first) that looks like an option
    /// and does not follow `--` in `argv` (the words as given; clap drops that `--`): clap
    /// took it for a word because it knows no such option, so ssh calls it an unknown option
    /// (with --hosts it was run on every host).
    ///
    /// # Errors
    /// That word, as clap's error for an unknown option.
    pub fn refuse_unknown_option(&self, argv: &[std::ffi::OsString]) -> Result<(), clap::Error> {
        let after_dashes = argv
            .len()
            .checked_sub(self.words.len() + 1)
            .is_some_and(|before| argv[before] == "--");
        match self.words.first() {
            Some(word) if word.starts_with('-') && word != "--" && !after_dashes => {
                Err(unknown_option(word))
            }
            _ => Ok(()),
        }
    }

    /// DEST and the words after it, as given; empty with --hosts or --hosts-file, where no
    /// word is a destination.
    pub fn words_after_destination(&self) -> &[String] {
        if self.hosts.is_some() || self.hosts_file.is_some() {
            return &[];
        }
        &self.words
    }

    /// Puts `dest` before the command words (parsed again without it, see `main::parse`).
    ///
    /// # Errors
    /// The first word is one clap took for a word because it knows no such option: the
    /// command may start with a hyphen only after `--`, so ssh would call it an unknown option.
    pub fn put_destination_first(&mut self, dest: String) -> Result<(), clap::Error> {
        if let Some(unknown) = self.words.first().filter(|w| w.starts_with('-')) {
            return Err(unknown_option(unknown));
        }
        self.words.insert(0, dest);
        Ok(())
    }
}

impl Args {
    /// ssh's flags that stand for options (-b, -B, -S, -M, -K, -A, -a, -X, -x) as those
    /// options, ahead of -o's: a flag is the first value obtained, and the first counts. The
    /// options decide what is done and said (netkit shares no connection: ControlPath is said
    /// at -v, as with -o).
    fn flags_as_options(&mut self) -> Result<(), Failure> {
        if self.protocol_1 {
            return Err(own(anyhow!("SSH protocol v.1 is no longer supported")));
        }
        let master = match self.control_master {
            0 => None,
            1 => Some("ControlMaster=yes"),
            _ => Some("ControlMaster=ask"),
        };
        let gssapi = ["GSSAPIAuthentication=yes", "GSSAPIDelegateCredentials=yes"];
        // Off wins when both are given: nothing is done either way, and nothing is said.
        let yes_no = |name: &str, on: u8, off: u8| match (on, off) {
            (0, 0) => None,
            (_, 0) => Some(format!("{name}=yes")),
            _ => Some(format!("{name}=no")),
        };
        let option =
            |name: &str, value: &Option<String>| value.as_ref().map(|v| format!("{name}={v}"));
        let options = [
            option("BindAddress", &self.bind_address),
            option("BindInterface", &self.bind_interface),
            option("ControlPath", &self.control_path),
        ]
        .into_iter()
        .flatten()
        .chain(master.into_iter().map(str::to_owned))
        .chain(yes_no("ForwardAgent", self.agent_forwarding, self.no_agent))
        .chain(yes_no("ForwardX11", self.x11, self.no_x11))
        .chain(
            gssapi
                .iter()
                .filter(|_| self.gssapi)
                .map(|o| (*o).to_owned()),
        )
        .collect();
        self.connect.put_options_first(options);
        Ok(())
    }
}

/// The error for a word that looks like an option and is none of ours: the positional words
/// take hyphens (for the command's own options), so clap does not say it.
fn unknown_option(word: &str) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::UnknownArgument,
        format!("unexpected argument '{word}' found\n"),
    )
}

/// Runs `netkit ssh`.
pub fn run(mut args: Args) -> Outcome {
    args.flags_as_options()?;
    if let Some(login) = args.login.first() {
        args.connect.user = Some(login.clone());
    }
    // An earlier `-o User=` is the first value obtained: the flag does not count, as in ssh.
    if args.connect.options_first.flags.user {
        args.connect.user = None;
    }
    if let Some(query) = &args.query {
        return list_algorithms(query);
    }
    // ssh's words for a command it does not have; clap's "unexpected argument '-O'" read as
    // a typo in a cleanup script's `ssh -O exit host`.
    if let Some(command) = &args.control_command {
        let known = ["check", "forward", "cancel", "exit", "stop", "proxy"];
        return Err(own(if known.contains(&command.as_str()) {
            anyhow!("no master connection: connection sharing is not supported (-O {command})")
        } else {
            anyhow!(
                "-O {command}: invalid multiplex command (check, forward, cancel, exit, stop or proxy)"
            )
        }));
    }
    // As pssh's -H: spaces separate hosts too, and a list built by a loop may end in a comma.
    let mut hosts: Vec<String> = args
        .hosts
        .iter()
        .flatten()
        .flat_map(|h| h.split_whitespace())
        .map(str::to_owned)
        .collect();
    if let Some(file) = &args.hosts_file {
        let text = net_http::files::read_capped(file, net_http::files::SETTINGS_CAP)
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text")
                })
            })
            .map_err(|e| own(anyhow!("{}: {e}", file.display())))?;
        hosts.extend(
            // A comment may follow a host too, as in pssh's host files; a byte-order mark
            // (Notepad's) was part of the first host's name.
            text.trim_start_matches('\u{feff}')
                .lines()
                .map(|l| l.split_once('#').map_or(l, |(host, _)| host).trim())
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    // getopt's `--` ends the options, before DEST or right after it; any other `--` is the
    // command's own (`rm -- -x`, `git checkout -- file`).
    let mut words = args.words.iter().map(String::as_str).peekable();
    words.next_if_eq(&"--");
    if args.hosts.is_some() || args.hosts_file.is_some() {
        let command = words.collect::<Vec<_>>().join(" ");
        return many(&args, &hosts, &command);
    }
    let Some(dest) = words.next() else {
        return Err(own(anyhow!(
            "a destination is required: netkit ssh [user@]host[:port] COMMAND"
        )));
    };
    words.next_if_eq(&"--");
    let mut command = words.collect::<Vec<_>>().join(" ");
    let mut config = args.config(dest)?;
    // ClearAllForwardings drops the flags' forwards too, as ssh drops them (the file's are
    // gone already).
    if config.clear_all_forwardings {
        args.forward.clear();
        args.remote_forward.clear();
        args.dynamic_forward.clear();
    }
    // Their Unix socket paths take OpenSSH's tokens, expanded once the config is read, as
    // ssh expands them (`-L 5432:/run/%u/pg.sock` reached a socket named so).
    let mut forwards = std::mem::take(&mut config.forwards);
    for (flag, specs) in [
        ("-L", &mut args.forward),
        ("-R", &mut args.remote_forward),
        ("LocalForward", &mut forwards.local),
        ("RemoteForward", &mut forwards.remote),
    ] {
        for spec in specs {
            *spec = socket_paths_expanded(&config, flag, spec).map_err(own)?;
        }
    }
    config.forwards = forwards;
    if args.print_config {
        let given = net_ssh::Destination::parse(dest).map_or(dest, |d| d.host);
        // A bad flag is an error, as in ssh; the file's forwards are shown whatever they are.
        ForwardSpecs::parse(&args, &net_ssh::ConfiguredForwards::default())?;
        let shown = resolved(given, &config, &args).map_err(own)?;
        crate::exit::out_part(format_args!("{shown}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Said by the process that does the work: with -f, the one in the background.
    if !(args.background || config.fork_after_authentication) || background::is_child() {
        unforwarded(config.forward_agent, config.forward_x11);
    }
    // The config's SessionType, StdinNull and ForkAfterAuthentication do what -N or -s, -n
    // and -f do; the flags win, as ssh keeps the first value it obtains (its flags').
    let no_command_by = if args.no_command {
        "-N"
    } else {
        "SessionType none"
    };
    let subsystem_by = if args.subsystem {
        "-s"
    } else {
        "SessionType subsystem"
    };
    let background_by = if args.background {
        "-f"
    } else {
        "ForkAfterAuthentication yes"
    };
    let flags = SessionFlags::of(&args, &config);
    args.no_command = flags.no_command;
    args.subsystem = flags.subsystem;
    args.no_stdin = flags.no_stdin;
    args.background = flags.background;
    // RemoteCommand runs when the command line gives none, as in ssh; -N and -W run nothing.
    if !args.no_command
        && args.stdio_forward.is_none()
        && let Some(remote) = config.expanded_remote_command().map_err(own)?
    {
        if !command.is_empty() {
            return Err(own(anyhow!(
                "cannot run both the command line's command and RemoteCommand"
            )));
        }
        command = remote;
    }
    if args.subsystem && command.is_empty() {
        return Err(own(anyhow!(
            "{subsystem_by} needs the subsystem's name as the command: netkit ssh -s HOST sftp"
        )));
    }
    // -t and -T win over RequestTTY: ssh keeps the first value it reads, flags first.
    let (tty, no_tty) = match config.request_tty {
        _ if args.subsystem => (0, true),
        _ if args.tty > 0 || args.no_tty || args.no_command => (args.tty, args.no_tty),
        Some(net_ssh::RequestTty::No) => (0, true),
        Some(net_ssh::RequestTty::Yes) => (1, false),
        Some(net_ssh::RequestTty::Force) => (2, false),
        _ => (0, false),
    };
    if args.background {
        if command.is_empty() && !args.no_command {
            return Err(own(anyhow!(
                "{background_by} needs a command to run in the background, or -N"
            )));
        }
        if !background::is_child() {
            return background::start();
        }
        args.no_stdin = true;
    }
    // Its tokens are expanded before connecting: a bad one is refused without a connection.
    let local_command = config.expanded_local_command().map_err(own)?;
    let on_terminal = !args.no_stdin && std::io::stdin().is_terminal();
    if args.no_command && !command.is_empty() {
        return Err(own(anyhow!(
            "{no_command_by} runs no command, but one was given"
        )));
    }
    // As ssh: -tt always, -t or a login shell when stdin is a terminal, -T never.
    let wants_terminal = !no_tty && (tty >= 2 || ((tty == 1 || command.is_empty()) && on_terminal));
    // Only an asked-for terminal is a must (ssh's RequestTTY yes/force): a login goes on
    // without one.
    let mut terminal = wants_terminal.then(|| local_terminal(tty >= 1));
    // -W carries one connection and nothing else, as with ssh (ClearAllForwardings).
    let from_file = match args.stdio_forward {
        Some(_) => net_ssh::ConfiguredForwards::default(),
        None => config.forwards.clone(),
    };
    let asked = ForwardSpecs::parse(&args, &from_file)?;
    let stdio_to = match &args.stdio_forward {
        Some(_) if !command.is_empty() => {
            return Err(own(anyhow!(
                "-W carries stdin and stdout, but a command was given"
            )));
        }
        Some(spec) => Some(parse_host_port(spec)?),
        None => None,
    };
    // The arguments are taken: from here what ssh -E would log goes to its file, as ssh's
    // messages do once its command line is read.
    crate::log_file::take_errors();
    // A warning as ssh's notice is: -q hushes it, -E takes it.
    if tty == 1 && !on_terminal {
        log::warn!("no remote terminal: stdin is not a terminal (-tt forces one)");
    }
    let client = connect(&mut config)?;
    if let Some((host, port)) = stdio_to {
        run_local_command(local_command.as_deref());
        return stdio_forward(client, host, port, !args.no_stdin);
    }
    if args.no_command {
        // The session has nothing to run: the forwards take it (without forwards it is held
        // open, as by ssh -N).
        let mut spare = Some(client);
        let forwards = start_forwards(&asked, &mut config, &mut spare)?;
        run_local_command(local_command.as_deref());
        if args.background {
            background::detach(false);
        }
        let mut signals =
            crate::signals::watch(&[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
                .context("cannot watch for signals")
                .map_err(own)?;
        // The forwards end by themselves only when the connection is lost: then, as ssh,
        // this ends too, with 255 (a tunnel that stayed up carrying nothing looked healthy to
        // its supervisor).
        let closer = signals.handle();
        let stop = forwards.as_ref().map(|forwards| forwards.stop.clone());
        let forwards = forwards
            .map(|forwards| {
                crate::spawn(move || {
                    let ended = forwards.carrying.join();
                    closer.close();
                    ended
                })
            })
            .transpose()
            .map_err(own)?;
        let signalled = signals.forever().next().is_some();
        if let Some(stop) = stop {
            stop.now();
        }
        let ended = forwards.and_then(|f| f.join().ok()).and_then(Result::ok);
        return match ended {
            Some(Err(e)) if !signalled => Err(own(anyhow!(e))),
            Some(Err(e)) => {
                log::warn!("forwarding: {e}");
                Ok(ExitCode::SUCCESS)
            }
            _ if !signalled => Err(own(anyhow!("the forwarding ended"))),
            _ => Ok(ExitCode::SUCCESS),
        };
    }
    let live = Arc::new(LiveForwards {
        running: Mutex::new(start_forwards(&asked, &mut config, &mut None)?),
        config: Mutex::new(config.clone()),
        gateway_ports: args.gateway_ports,
    });
    run_local_command(local_command.as_deref());
    if args.background {
        background::detach(true);
    }
    // On a remote terminal, keys go to it as typed (Ctrl-C included) until the end, but for
    // ssh's escapes (`~.` after a newline ends the session: the way out of a hung one). With
    // -tt and no local terminal there are no keys and no window to follow.
    let local = terminal.is_some() && on_terminal;
    let raw = local.then(RawMode::enter).transpose().map_err(own)?;
    // A terminal the server refused (a login goes on without one): ours is put back, as ssh
    // leaves raw mode then, for the keys to be edited and echoed here and Enter to end a line.
    if let (Some(raw), Some(terminal)) = (&raw, &mut terminal) {
        let (tx, rx) = std::sync::mpsc::channel();
        terminal.refused = Some(tx);
        let saved = raw.saved.clone();
        crate::spawn(move || {
            if rx.recv().is_ok() {
                restore_terminal(&saved);
            }
        })
        .map_err(own)?;
    }
    let escape = escape_in_use(&args, &config).0;
    let mut escapes = raw.as_ref().zip(escape).map(|(raw, escape)| {
        (
            Escapes::new(escape, config.escape_command_line),
            raw.saved.clone(),
        )
    });
    let host = config.host.clone();
    let forwards = Arc::clone(&live);
    let rx = (!args.no_stdin).then(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        crate::spawn(move || {
            let mut stdin = crate::stdio::stdin();
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    // The remote gets EOF, as from ssh: said, as a short input is no end.
                    Err(e) => {
                        log::warn!("reading stdin: {e}");
                        break;
                    }
                };
                let keys = match &mut escapes {
                    Some((escapes, saved)) => match escapes.filter(&buf[..n]) {
                        (keys, None) => keys,
                        (_, Some(Escape::Disconnect)) => {
                            // Exiting skips the guard's drop: put the terminal back here.
                            restore_terminal(saved);
                            crate::exit::say_part(format_args!("Connection to {host} closed.\n"));
                            std::process::exit(i32::from(OWN_ERROR));
                        }
                        (keys, Some(Escape::Help)) => {
                            crate::exit::say_part(format_args!("{}", escapes.help()));
                            keys
                        }
                        (keys, Some(Escape::Verbosity { more })) => {
                            let name = step_log_level(more);
                            crate::exit::say_part(format_args!(
                                "{}{} [LogLevel {name}]\r\n",
                                EscapeChar(Some(escapes.escape)),
                                if more { 'v' } else { 'V' }
                            ));
                            keys
                        }
                        (keys, Some(Escape::Unsupported { key, why })) => {
                            crate::exit::say_part(format_args!(
                                "{}{} [{why}]\r\n",
                                EscapeChar(Some(escapes.escape)),
                                char::from(key)
                            ));
                            keys
                        }
                        (keys, Some(Escape::Connections)) => {
                            crate::exit::say_part(format_args!(
                                "{}#\r\n{}",
                                EscapeChar(Some(escapes.escape)),
                                forwards.list()
                            ));
                            keys
                        }
                        // ssh 9.2's words, when EnableEscapeCommandline is off (the default).
                        (keys, Some(Escape::CommandLine)) if !escapes.command_line => {
                            crate::exit::say_part(format_args!("commandline disabled\r\n"));
                            keys
                        }
                        (keys, Some(Escape::CommandLine)) => {
                            let said = outside_raw_mode(saved, || {
                                crate::exit::say_part(format_args!("\r\nssh> "));
                                forwards.command_line(&read_line(&mut stdin))
                            });
                            crate::exit::say_part(format_args!("{said}"));
                            keys
                        }
                        (keys, Some(Escape::Suspend)) => {
                            crate::exit::say_part(format_args!(
                                "{}^Z [suspend netkit]\r\n",
                                EscapeChar(Some(escapes.escape))
                            ));
                            suspend(saved);
                            keys
                        }
                    },
                    None => buf[..n].to_vec(),
                };
                if !keys.is_empty() && tx.send(keys).is_err() {
                    break;
                }
            }
        })
        .map(|_| rx)
    });
    let rx = rx.transpose().map_err(own)?;
    let mut stdout = crate::stdio::stdout();
    let mut stderr = Some(crate::stdio::stderr());
    // A stdout that closes (`| head`) ends the session, as in ssh: a `tail -f` would run on.
    let mut on_stdout = |d: &[u8]| stdout.write_all(d).and_then(|()| stdout.flush());
    // A stderr that fails is given up and the session goes on, as ssh closes its write-efd;
    // said in the log (-E FILE may hold it).
    let mut on_stderr = |d: &[u8]| {
        if let Some(err) = &mut stderr
            && let Err(e) = err.write_all(d).and_then(|()| err.flush())
        {
            stderr = None;
            log::warn!("writing the command's stderr: {e}; the rest of it is dropped");
        }
        Ok(())
    };
    let resize = local.then(window_changes).transpose().map_err(own)?;
    let status = match (&terminal, command.is_empty()) {
        _ if args.subsystem => {
            client.subsystem_streaming(&command, rx, &mut on_stdout, &mut on_stderr)
        }
        (Some(terminal), true) => {
            client.shell_on_terminal(terminal, rx, resize, &mut on_stdout, &mut on_stderr)
        }
        (None, true) => client.shell_streaming(None, rx, &mut on_stdout, &mut on_stderr),
        (Some(terminal), false) => client.exec_on_terminal(
            &command,
            terminal,
            rx,
            resize,
            &mut on_stdout,
            &mut on_stderr,
        ),
        (None, false) => client.exec_streaming(&command, rx, &mut on_stdout, &mut on_stderr),
    };
    let status = match status {
        // Whoever read our output has gone: nothing to say to them, and the status a shell
        // gives ssh killed by SIGPIPE (141), as ssh mostly ends then; 255 was "could not
        // connect" to a `pipefail` script, with no line saying otherwise.
        Err(net_ssh::Error::Output { source })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            return Ok(ExitCode::from(128 + 13));
        }
        other => other.map_err(own)?,
    };
    end_forwards(lock(&live.running).take(), true);
    // Said on a terminal put back: in raw mode a bare \n left the shell's prompt mid-line.
    drop(raw);
    if let Some(signal) = status.signal {
        // -q (or LogLevel ERROR) hushes it as ssh, which never says it: the status tells.
        if log::max_level() >= log::LevelFilter::Warn {
            crate::exit::say(format_args!(
                "netkit: remote command killed by signal {}",
                crate::exit::shown(&signal)
            ));
        }
        return Ok(ExitCode::from(OWN_ERROR));
    }
    Ok(ExitCode::from(
        u8::try_from(status.code).unwrap_or(OWN_ERROR),
    ))
}

/// Warns of agent and X11 forwarding asked for (-A, -X, -Y, or ForwardAgent and ForwardX11
/// in the config): libssh2 cannot serve the channels the server opens for them.
fn unforwarded(agent: bool, x11: bool) {
    for (asked, what) in [
        (agent, "agent forwarding (-A, ForwardAgent)"),
        (x11, "X11 forwarding (-X, -Y, ForwardX11)"),
    ] {
        if asked {
            log::warn!(
                "{what} is not supported (libssh2 cannot serve its channels); going on without it"
            );
        }
    }
}

/// Runs the config's `LocalCommand` (see [`Config::expanded_local_command`]) here through
/// the user's shell, as ssh runs it once the connection and its forwards are up, and waits
/// for it; as there, how it ends changes nothing but a line at -v.
fn run_local_command(command: Option<&str>) {
    let Some(command) = command else {
        return;
    };
    let shell = std::env::var_os("SHELL")
        .filter(|shell| !shell.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    log::debug!("running LocalCommand: {command}");
    match std::process::Command::new(&shell)
        .arg("-c")
        .arg(command)
        .status()
    {
        Ok(status) if !status.success() => log::debug!("LocalCommand: {status}"),
        Ok(_) => {}
        Err(e) => log::warn!(
            "LocalCommand: cannot run {}: {e}",
            std::path::Path::new(&shell).display()
        ),
    }
}

/// One line typed at the terminal (in its line mode), without its newline; at most 4 KiB.
fn read_line(input: &mut impl std::io::Read) -> String {
    let mut line = Vec::new();
    let mut byte = [0];
    while line.len() < 4096 && matches!(input.read(&mut byte), Ok(1)) && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// `HOST:PORT` of -W (`[v6]:PORT` too).
fn parse_host_port(spec: &str) -> Result<(&str, u16), Failure> {
    match fields(spec).as_deref() {
        Some(&[host, port]) if !host.is_empty() => port.parse().ok().map(|port| (host, port)),
        _ => None,
    }
    .ok_or_else(|| own(anyhow!("bad -W {spec:?}: expected HOST:PORT")))
}

/// -W: stdin to `host:port` through the server, its answer to stdout, until it closes (as
/// ssh -W, stdin's EOF is passed on and the answer still read to its end).
fn stdio_forward(client: Client, host: &str, port: u16, read_stdin: bool) -> Outcome {
    let relayed = client.tunnel(host, port).map_err(own)?;
    let tunnel = &relayed.stream;
    let mut up = tunnel.try_clone().context("tunnel").map_err(own)?;
    crate::spawn(move || {
        if read_stdin && let Err(e) = std::io::copy(&mut crate::stdio::stdin(), &mut up) {
            log::warn!("-W: reading stdin: {e}");
        }
        let _ = up.shutdown(std::net::Shutdown::Write);
    })
    .map_err(own)?;
    // Flushed at every read: stdout is line-buffered, and a protocol's bytes (an SSH
    // handshake behind a ProxyCommand) must not wait for a newline.
    let mut stdout = crate::stdio::stdout();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match (&*tunnel).read(&mut buf) {
            // A server given up on (ServerAliveCountMax) fails, as ssh -W exits 255.
            Ok(0) => {
                return relayed
                    .lost()
                    .map_or(Ok(ExitCode::SUCCESS), |e| Err(own(e)));
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(own(anyhow!("-W {host}:{port}: {e}"))),
        };
        if let Err(e) = stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()) {
            // Whoever read our output has gone (a ProxyCommand's ssh that exited).
            log::debug!("stdout: {e}");
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// The size of our terminal (stdout) as (columns, rows).
fn window_size() -> Option<(u32, u32)> {
    terminal_size::terminal_size().map(|(w, h)| (u32::from(w.0), u32::from(h.0)))
}

/// Our terminal's new size each time it changes (SIGWINCH), for the remote one to follow.
fn window_changes() -> anyhow::Result<std::sync::mpsc::Receiver<(u32, u32)>> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGWINCH])
        .context("cannot watch the terminal's size")?;
    let (tx, rx) = std::sync::mpsc::channel();
    crate::spawn(move || {
        for _ in signals.forever() {
            if let Some(size) = window_size()
                && tx.send(size).is_err()
            {
                break;
            }
        }
    })?;
    Ok(rx)
}

/// The terminal to ask the server for: ours, by `$TERM` and the size of stdout.
fn local_terminal(required: bool) -> net_ssh::Terminal {
    let (columns, rows) = window_size().unwrap_or((80, 24));
    net_ssh::Terminal {
        // No TERM (cron, systemd, CI under -tt) is told as none, as ssh tells it: `xterm` made
        // remote programs write colours into the logs that captured them.
        term: std::env::var("TERM").unwrap_or_default(),
        columns,
        rows,
        required,
        refused: None,
    }
}

/// The escape character: -e's, else the config's, else `~`, as in ssh.
fn escape_in_use(args: &Args, config: &Config) -> EscapeChar {
    args.escape
        .or(config.escape_char)
        .unwrap_or(EscapeChar(Some(b'~')))
}

/// Parses -e as ssh does: one character, `^X` for a control key, or `none`.
fn escape_char(value: &str) -> Result<EscapeChar, String> {
    EscapeChar::parse(value).ok_or_else(|| "expected one character, ^X or none".to_owned())
}

/// An escape typed on the terminal, as ssh's.
#[derive(Debug, PartialEq)]
enum Escape {
    /// `~.`: end the session now.
    Disconnect,
    /// `~?`: list the escapes.
    Help,
    /// `~^Z`: suspend netkit (not the remote program).
    Suspend,
    /// `~V` (`more` false) or `~v`: less or more of the log, as ssh steps its LogLevel.
    Verbosity { more: bool },
    /// `~C`: ssh's command line, to add and cancel forwards.
    CommandLine,
    /// `~#`: list the forwarded connections.
    Connections,
    /// `~B` (a BREAK) and `~R` (a rekey): libssh2 can send neither (a started channel takes
    /// no other request of this kind, and it starts no key exchange), said on the terminal.
    Unsupported { key: u8, why: &'static str },
}

/// The levels `~V` and `~v` step through, by ssh's LogLevel names.
const LOG_LEVELS: [(log::LevelFilter, &str); 5] = [
    (log::LevelFilter::Off, "QUIET"),
    (log::LevelFilter::Error, "ERROR"),
    (log::LevelFilter::Warn, "INFO"),
    (log::LevelFilter::Info, "VERBOSE"),
    (log::LevelFilter::Debug, "DEBUG1"),
];

/// Steps the log level one down or up (as ssh's `~V`/`~v`, never past QUIET or the most we
/// log) and returns its LogLevel name.
fn step_log_level(more: bool) -> &'static str {
    let last = LOG_LEVELS.len() - 1;
    let now = LOG_LEVELS
        .iter()
        .position(|(level, _)| *level == log::max_level())
        .unwrap_or(last);
    let next = if more {
        (now + 1).min(last)
    } else {
        now.saturating_sub(1)
    };
    let (level, name) = LOG_LEVELS[next];
    log::set_max_level(level);
    name
}

/// ssh's escape character (`~` unless -e says), read from keys on their way to a remote
/// terminal: it counts at the start of a line only, typed twice it sends one, and any other
/// key after it sends both.
struct Escapes {
    escape: u8,
    /// `~C` opens the command line (EnableEscapeCommandline).
    command_line: bool,
    at_line_start: bool,
    pending: bool,
}

impl Escapes {
    fn new(escape: u8, command_line: bool) -> Escapes {
        Escapes {
            escape,
            command_line,
            at_line_start: true,
            pending: false,
        }
    }

    /// What `~?` prints, with the escape character in use (raw mode: lines end in \r\n);
    /// `~C` only when it opens the command line, as ssh 9.2 lists it.
    fn help(&self) -> String {
        let e = EscapeChar(Some(self.escape));
        let command_line = if self.command_line {
            format!(" {e}C   - open a command line\r\n")
        } else {
            String::new()
        };
        format!(
            "Supported escape sequences:\r\n {e}.   - terminate connection\r\n{command_line} {e}V/v - decrease/increase verbosity (LogLevel)\r\n {e}^Z  - suspend netkit\r\n {e}#   - list forwarded connections\r\n {e}?   - this message\r\n {e}{e}   - send the escape character by typing it twice\r\n(Note that escapes are only recognized immediately after newline.)\r\n"
        )
    }

    /// The keys to send and the escape met, if any (keys after a `~.` are dropped).
    fn filter(&mut self, keys: &[u8]) -> (Vec<u8>, Option<Escape>) {
        let mut out = Vec::with_capacity(keys.len());
        let mut escape = None;
        for &key in keys {
            if std::mem::take(&mut self.pending) {
                match key {
                    b'.' => return (out, Some(Escape::Disconnect)),
                    b'?' => {
                        escape = Some(Escape::Help);
                        continue;
                    }
                    b'\x1a' => {
                        escape = Some(Escape::Suspend);
                        continue;
                    }
                    b'V' | b'v' => {
                        escape = Some(Escape::Verbosity { more: key == b'v' });
                        continue;
                    }
                    b'C' => {
                        escape = Some(Escape::CommandLine);
                        continue;
                    }
                    b'#' => {
                        escape = Some(Escape::Connections);
                        continue;
                    }
                    b'B' => {
                        escape = Some(Escape::Unsupported {
                            key,
                            why: "BREAK not supported: libssh2 cannot send one",
                        });
                        continue;
                    }
                    b'R' => {
                        escape = Some(Escape::Unsupported {
                            key,
                            why: "rekey not supported: libssh2 cannot start one",
                        });
                        continue;
                    }
                    key if key == self.escape => out.push(key),
                    other => out.extend([self.escape, other]),
                }
            } else if self.at_line_start && key == self.escape {
                self.pending = true;
                continue;
            } else {
                out.push(key);
            }
            self.at_line_start = matches!(key, b'\r' | b'\n');
        }
        (out, escape)
    }
}

/// The local terminal in raw mode (no echo, no line editing, no signals from keys) while this
/// lives: the remote terminal does all of that. Restored when dropped.
struct RawMode {
    saved: nix::sys::termios::Termios,
    /// Ends the process on a signal once the terminal is put back (`timeout 60 netkit ssh
    /// -t ...` left the shell without echo); closed with the raw mode.
    watch: signal_hook::iterator::Handle,
}

impl RawMode {
    fn enter() -> anyhow::Result<RawMode> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
        let mut signals = crate::signals::watch(&[SIGINT, SIGTERM, SIGHUP, SIGQUIT])
            .context("cannot watch for signals")?;
        let watch = signals.handle();
        let kept = saved.clone();
        crate::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                restore_terminal(&kept);
                std::process::exit(128 + signal);
            }
        })?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).context("cannot set the terminal to raw")?;
        Ok(RawMode { saved, watch })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.watch.close();
        restore_terminal(&self.saved);
    }
}

/// `~^Z`: stops netkit as ssh stops itself, the terminal put back meanwhile and made raw again
/// once resumed (`fg`); the session waits for it.
fn suspend(saved: &nix::sys::termios::Termios) {
    outside_raw_mode(saved, || {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTSTP);
    });
}

/// Runs `f` with the terminal as `saved` holds it (echo, line editing), and raw again after,
/// as ssh leaves raw mode to suspend itself or read its `~C` command line.
fn outside_raw_mode<T>(saved: &nix::sys::termios::Termios, f: impl FnOnce() -> T) -> T {
    use nix::sys::termios::{SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let raw = tcgetattr(&stdin);
    restore_terminal(saved);
    let done = f();
    if let Ok(raw) = raw {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
    }
    done
}

/// Puts the terminal's settings back as `saved` holds them.
fn restore_terminal(saved: &nix::sys::termios::Termios) {
    let _ =
        nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, saved);
}

/// The forwards carried on a thread of their own, what stops them and what changes them.
struct Forward {
    carrying: std::thread::JoinHandle<Result<(), Error>>,
    stop: net_ssh::StopForwards,
    change: net_ssh::ChangeForwards,
}

/// A session's forwards as `~C` and `~#` reach them: those it started with, or, once a `~C`
/// adds the first, forwards on a connection of their own (as those asked for with a command
/// are carried beside it).
struct LiveForwards {
    running: Mutex<Option<Forward>>,
    /// To connect that connection.
    config: Mutex<Config>,
    /// -g: forwards without a bind address listen on every interface.
    gateway_ports: bool,
}

/// What ssh's `~C` command line prints for `?` and `-h`.
const COMMAND_LINE_HELP: &str = "Commands:\r\n      -L[bind_address:]port:host:hostport    Request local forward\r\n      -R[bind_address:]port:host:hostport    Request remote forward\r\n      -D[bind_address:]port                  Request dynamic forward\r\n      -KL[bind_address:]port                 Cancel local forward\r\n      -KR[bind_address:]port                 Cancel remote forward\r\n      -KD[bind_address:]port                 Cancel dynamic forward\r\n";

impl LiveForwards {
    /// What ssh's `~C` says for `line` once done (lines end in \r\n, as ssh's): adds or
    /// cancels a forward, as ssh's command line does, with its words.
    fn command_line(&self, line: &str) -> String {
        let line = line.trim();
        let line = line.strip_prefix('-').unwrap_or(line);
        if line.is_empty() {
            return String::new();
        }
        if line.starts_with(['h', 'H', '?']) {
            return COMMAND_LINE_HELP.to_owned();
        }
        let (cancel, rest) = match line.strip_prefix('K') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let mut chars = rest.chars();
        let kind = match chars.next() {
            Some('L') => net_ssh::ForwardKind::Local,
            Some('R') => net_ssh::ForwardKind::Remote,
            Some('D') => net_ssh::ForwardKind::Dynamic,
            _ => return "Invalid command.\r\n".to_owned(),
        };
        let spec = chars.as_str().trim_start();
        let said = if cancel {
            self.cancel(kind, spec)
        } else {
            self.add(kind, spec)
        };
        said.unwrap_or_else(|e| e)
    }

    /// `-KL`, `-KR`, `-KD`: ssh's words when done, or its error.
    fn cancel(&self, kind: net_ssh::ForwardKind, spec: &str) -> Result<String, String> {
        let (bind, port) = parse_bind_port("-K", spec)
            .map_err(|_| "Bad forwarding close specification.\r\n".to_owned())?;
        let unknown = || "Unknown port forwarding.\r\n".to_owned();
        let change = lock(&self.running).as_ref().map(|f| f.change.clone());
        match change.map(|change| change.cancel(kind, bind, port)) {
            Some(Ok(true)) => Ok("Canceled forwarding.\r\n".to_owned()),
            Some(Err(e)) => Err(format!(
                "{}\r\n{}",
                crate::exit::shown(&e.to_string()),
                unknown()
            )),
            Some(Ok(false)) | None => Err(unknown()),
        }
    }

    /// `-L`, `-R`, `-D`: ssh's words when done, or its error.
    fn add(&self, kind: net_ssh::ForwardKind, spec: &str) -> Result<String, String> {
        use net_ssh::ForwardKind;
        let failed = |why: &dyn std::fmt::Display| {
            format!(
                "{}\r\nPort forwarding failed.\r\n",
                crate::exit::shown(&why.to_string())
            )
        };
        let bad = |which| format!("Bad {which} forwarding specification.\r\n");
        let mut said = String::new();
        match kind {
            ForwardKind::Local | ForwardKind::Dynamic => {
                let (bind, port, to) = if kind == ForwardKind::Local {
                    let (bind, port, to) = parse_forward("-L", spec).map_err(|_| bad("local"))?;
                    (bind, port, Some(to))
                } else {
                    let (bind, port) = parse_bind_port("-D", spec).map_err(|_| bad("local"))?;
                    (bind, port, None)
                };
                if port == 0 {
                    return Err(bad("local"));
                }
                let listeners =
                    listen_for(bind, port, self.gateway_ports).map_err(|e| failed(&e))?;
                let change = self
                    .change()
                    .map_err(|e| failed(&format!("{:#}", e.error)))?;
                match to {
                    Some(Reach::Tcp(host, to_port)) => change.local(listeners, host, to_port),
                    Some(Reach::Socket(path)) => change.local_to_socket(listeners, path),
                    None => change.dynamic(listeners),
                }
                .map_err(|e| failed(&e))?;
            }
            ForwardKind::Remote => {
                let (bind, port, to) = parse_forward("-R", spec).map_err(|_| bad("remote"))?;
                let Reach::Tcp(host, to_port) = to else {
                    return Err(bad("remote"));
                };
                let change = self
                    .change()
                    .map_err(|e| failed(&format!("{:#}", e.error)))?;
                let allocated = change
                    .remote(bind, port, host, to_port)
                    .map_err(|e| failed(&e))?;
                if port == 0 {
                    said = format!(
                        "Allocated port {allocated} for remote forward to {host}:{to_port}\r\n"
                    );
                }
            }
        }
        Ok(said + "Forwarding port.\r\n")
    }

    /// What changes the forwards, started (on a connection of their own) when none run.
    fn change(&self) -> Result<net_ssh::ChangeForwards, Failure> {
        let mut running = lock(&self.running);
        if let Some(forward) = running.as_ref() {
            return Ok(forward.change.clone());
        }
        let mut config = lock(&self.config);
        let client = connect(&mut config)?;
        let none = ForwardSpecs {
            local: Vec::new(),
            remote: Vec::new(),
            dynamic: Vec::new(),
            gateway_ports: self.gateway_ports,
        };
        let started = start_forwards(&none, &mut config, &mut Some(client))?;
        let change = started.as_ref().map(|f| f.change.clone());
        *running = started;
        change.ok_or_else(|| own(anyhow!("the forwarding did not start")))
    }

    /// What ssh's `~#` prints: the session, then each forwarded connection open.
    fn list(&self) -> String {
        let mut said = "The following connections are open:\r\n  #0 client-session\r\n".to_owned();
        let change = lock(&self.running).as_ref().map(|f| f.change.clone());
        let open = change.and_then(|change| change.connections().ok());
        for (n, about) in open.into_iter().flatten().enumerate() {
            said += &format!("  #{} {}\r\n", n + 1, crate::exit::shown(&about));
        }
        said
    }
}

/// `-L`/`-R` as `[BIND:]PORT:HOST:PORT`.
type Spec<'a> = (&'a str, Option<&'a str>, u16, Reach<'a>);

/// Where a forward's connections go: a host and port, or a Unix socket's path (ssh's
/// `-L PORT:/PATH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach<'a> {
    Tcp(&'a str, u16),
    Socket(&'a str),
}

/// The forwards asked for, each checked before anything connects (as ssh refuses a bad
/// specification at once).
struct ForwardSpecs<'a> {
    local: Vec<Spec<'a>>,
    remote: Vec<Spec<'a>>,
    /// `-D` as `[BIND:]PORT`.
    dynamic: Vec<(&'a str, Option<&'a str>, u16)>,
    /// -g: -L and -D without a bind address listen on every interface.
    gateway_ports: bool,
}

impl<'a> ForwardSpecs<'a> {
    /// The flags' forwards, then the config file's (OpenSSH adds both up).
    fn parse(
        args: &'a Args,
        from_file: &'a net_ssh::ConfiguredForwards,
    ) -> Result<ForwardSpecs<'a>, Failure> {
        // Each named as the user wrote it, for the error.
        let specs = |flag, option, all: &'a [String], file: &'a [String]| {
            all.iter()
                .map(|spec| (flag, spec))
                .chain(file.iter().map(|spec| (option, spec)))
                .map(|(flag, spec)| {
                    let (bind, listen, to) = parse_forward(flag, spec)?;
                    let remote = flag.starts_with("-R") || flag.starts_with("Remote");
                    // Port 0 is the server's to pick for -R (and said); ssh refuses it for a
                    // local listener, whose port no one would know.
                    if listen == 0 && !remote {
                        return Err(anyhow!("bad {flag} {spec:?}: cannot listen on port 0"));
                    }
                    if remote && matches!(to, Reach::Socket(_)) {
                        return Err(anyhow!(
                            "bad {flag} {spec:?}: netkit forwards -R to a host and port, not to \
                             a Unix socket"
                        ));
                    }
                    Ok((spec.as_str(), bind, listen, to))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        };
        let dynamic = args
            .dynamic_forward
            .iter()
            .map(|spec| ("-D", spec))
            .chain(
                from_file
                    .dynamic
                    .iter()
                    .map(|spec| ("DynamicForward", spec)),
            )
            .map(|(flag, spec)| {
                let (bind, port) = parse_bind_port(flag, spec)?;
                if port == 0 {
                    return Err(anyhow!("bad {flag} {spec:?}: expected [BIND:]PORT"));
                }
                Ok((spec.as_str(), bind, port))
            })
            .collect::<anyhow::Result<Vec<_>>>();
        Ok(ForwardSpecs {
            local: specs("-L", "LocalForward", &args.forward, &from_file.local).map_err(own)?,
            remote: specs(
                "-R",
                "RemoteForward",
                &args.remote_forward,
                &from_file.remote,
            )
            .map_err(own)?,
            dynamic: dynamic.map_err(own)?,
            gateway_ports: args.gateway_ports,
        })
    }

    fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty() && self.dynamic.is_empty()
    }
}

/// Starts -L, -R and -D, all on one session as ssh carries them, on a thread of their own
/// (libssh2 serialises a session's calls, so a command runs on another): `spare`, already
/// open, when given, else a new one. Every listener is up when this returns, so the command
/// can use them at once. A forward that cannot listen is a warning and is left out, as in
/// OpenSSH, unless `ExitOnForwardFailure yes` makes it an error.
fn start_forwards(
    asked: &ForwardSpecs<'_>,
    config: &mut Config,
    spare: &mut Option<Client>,
) -> Result<Option<Forward>, Failure> {
    // A spare session (-N) is carried even with nothing to forward, as ssh -N holds it: its
    // keepalives run, and its loss ends the process.
    if asked.is_empty() && spare.is_none() {
        return Ok(None);
    }
    let exit_on_failure = config.exit_on_forward_failure;
    let failed = |flag: &str, spec: &str, reason: String| {
        let message = format!("{flag} {spec}: {reason}");
        if exit_on_failure {
            return Err(own(anyhow!(message)));
        }
        log::warn!("{message}; going on without it");
        Ok(())
    };
    let listen = |flag: &str, spec: &str, bind: Option<&str>, port: u16| {
        listen_for(bind, port, asked.gateway_ports)
            .or_else(|why| failed(flag, spec, why).map(|()| Vec::new()))
    };
    let client = match spare.take() {
        Some(client) => client,
        None => {
            // Said, or -v showed a second login with no reason.
            log::debug!(
                "connecting again: the forwards run on a session of their own, beside the \
                 command's (libssh2 serialises a session's calls)"
            );
            connect(config)?
        }
    };
    let mut forwards = client.into_forwards().map_err(own)?;
    for &(spec, bind, lport, to) in &asked.local {
        for listener in listen("-L", spec, bind, lport)? {
            match to {
                Reach::Tcp(host, port) => forwards.local(listener, host, port),
                Reach::Socket(path) => forwards.local_to_socket(listener, path),
            }
            .map_err(own)?;
        }
    }
    for &(spec, bind, rport, to) in &asked.remote {
        // Refused when parsed.
        let Reach::Tcp(host, port) = to else {
            continue;
        };
        match forwards.remote(bind, rport, host, port) {
            Ok(allocated) if rport == 0 => {
                crate::exit::say(format_args!(
                    "netkit: allocated port {allocated} for remote forward to {host}:{port}"
                ));
            }
            Ok(_) => {}
            Err(e) => failed("-R", spec, e.to_string())?,
        }
    }
    for &(spec, bind, port) in &asked.dynamic {
        for listener in listen("-D", spec, bind, port)? {
            forwards.dynamic(listener).map_err(own)?;
        }
    }
    let stop = forwards.stopper();
    let change = forwards.changer();
    let carrying = crate::spawn(move || forwards.run()).map_err(own)?;
    Ok(Some(Forward {
        carrying,
        stop,
        change,
    }))
}

/// The listeners of a `-L` or `-D` forward (`forward_listeners`), or why there are none.
fn listen_for(
    bind: Option<&str>,
    port: u16,
    gateway_ports: bool,
) -> Result<Vec<std::net::TcpListener>, String> {
    net_ssh::forward_listeners(bind, port, gateway_ports).map_err(|e| {
        let host = match bind {
            None if gateway_ports => "*",
            None => "localhost",
            Some("") => "*",
            Some(host) => host,
        };
        format!("cannot listen on {host} port {port}: {e}")
    })
}

/// Ends the forwards (at once, or after the open connections when `drain`: the command
/// exited, and those already carried finish first, as in ssh) and waits for them; a failure
/// is reported.
fn end_forwards(forwards: Option<Forward>, drain: bool) {
    let Some(Forward { carrying, stop, .. }) = forwards else {
        return;
    };
    if drain {
        stop.after_open_ones();
    } else {
        stop.now();
    }
    if let Ok(Err(e)) = carrying.join() {
        log::warn!("forwarding: {e}");
    }
}

/// `[BIND:]PORT` (of `flag`: -D's, and what `~C`'s -K cancels) into the bind address, if
/// any, and the port.
fn parse_bind_port<'a>(flag: &str, spec: &'a str) -> anyhow::Result<(Option<&'a str>, u16)> {
    let bad = || anyhow!("bad {flag} {spec:?}: expected [BIND:]PORT");
    let (bind, port) = match fields(spec).as_deref() {
        Some(&[port]) => (None, port),
        Some(&[bind, port]) => (Some(bind), port),
        _ => return Err(bad()),
    };
    Ok((bind, port.parse().map_err(|_| bad())?))
}

/// `[BIND:]PORT:HOST:PORT` or `[BIND:]PORT:/PATH` (of `flag`) into the bind address, if
/// any, the port to listen on, and where to reach.
fn parse_forward<'a>(
    flag: &str,
    spec: &'a str,
) -> anyhow::Result<(Option<&'a str>, u16, Reach<'a>)> {
    let bad =
        || anyhow!("bad {flag} {spec:?}: expected [BIND:]PORT:HOST:PORT or [BIND:]PORT:/SOCKET");
    let fields = fields(spec).ok_or_else(bad)?;
    // A path is a field holding a `/`, as ssh tells it (brackets let it hold a colon):
    // `~/app.sock` too, which ssh passes on as written.
    if fields.first().is_some_and(|f| f.contains('/')) {
        return Err(anyhow!(
            "bad {flag} {spec:?}: netkit listens on a port, not on a Unix socket"
        ));
    }
    let (bind, listen, to) = match fields.as_slice() {
        &[listen, path] | &[_, listen, path] if path.contains('/') => {
            let bind = (fields.len() == 3).then(|| fields[0]);
            (bind, listen, Reach::Socket(path))
        }
        &[listen, host, port] => (
            None,
            listen,
            Reach::Tcp(host, port.parse().map_err(|_| bad())?),
        ),
        &[bind, listen, host, port] => (
            Some(bind),
            listen,
            Reach::Tcp(host, port.parse().map_err(|_| bad())?),
        ),
        _ => return Err(bad()),
    };
    let listen = listen.parse().map_err(|_| bad())?;
    // Port 0 can be connected to by no one: ssh refuses it for -L and -R alike.
    if let Reach::Tcp(host, port) = to
        && (host.is_empty() || port == 0)
    {
        return Err(bad());
    }
    Ok((bind, listen, to))
}

/// `spec` of `flag` with its Unix socket paths (the fields holding a `/`, as ssh tells
/// them) expanded as ssh expands them ([`Config::expanded_socket_path`]); host names stay as
/// written, as there.
fn socket_paths_expanded(
    config: &Config,
    flag: &str,
    spec: &str,
) -> Result<String, net_ssh::Error> {
    let mut out = spec.to_owned();
    let Some(fields) = fields(spec) else {
        return Ok(out);
    };
    // From the last, so that where the earlier ones are in `out` still holds.
    for field in fields.iter().rev().filter(|f| f.contains('/')) {
        let at = field.as_ptr() as usize - spec.as_ptr() as usize;
        out.replace_range(
            at..at + field.len(),
            &config.expanded_socket_path(flag, field)?,
        );
    }
    Ok(out)
}

/// `spec` split at its colons, as ssh splits forwarding specifications: an IPv6 address is
/// written in brackets (`[::1]`), which are taken off. `None` when a bracket is left open.
fn fields(spec: &str) -> Option<Vec<&str>> {
    let mut fields = Vec::new();
    let mut rest = spec;
    loop {
        if let Some(inner) = rest.strip_prefix('[') {
            let (address, after) = inner.split_once(']')?;
            fields.push(address);
            match after.strip_prefix(':') {
                Some(next) => rest = next,
                None if after.is_empty() => return Some(fields),
                None => return None,
            }
        } else {
            match rest.split_once(':') {
                Some((field, next)) => {
                    fields.push(field);
                    rest = next;
                }
                None => {
                    fields.push(rest);
                    return Some(fields);
                }
            }
        }
    }
}

fn many(args: &Args, hosts: &[String], command: &str) -> Outcome {
    if hosts.is_empty() {
        // As pssh refuses an empty -H: nothing would run, and saying so beats exit 0.
        let source = if args.hosts.is_some() {
            "--hosts names"
        } else {
            "the hosts file lists"
        };
        return Err(own(anyhow!("{source} no host")));
    }
    if command.is_empty() {
        return Err(own(anyhow!("a command is required after --")));
    }
    let configs = hosts
        .iter()
        .map(|h| args.config(h))
        .collect::<Result<Vec<_>, _>>()?;
    // Every host runs the command in the foreground: a config's words for -N, -s and -f
    // are refused as the flags are (they ran the command and stayed, without a word).
    let with = if args.hosts.is_some() {
        "--hosts"
    } else {
        "--hosts-file"
    };
    for (host, config) in hosts.iter().zip(&configs) {
        let flags = SessionFlags::of(args, config);
        let refused = [
            (flags.no_command, "SessionType none"),
            (flags.subsystem, "SessionType subsystem"),
            (flags.background, "ForkAfterAuthentication yes"),
        ];
        if let Some((_, option)) = refused.iter().find(|(on, _)| *on) {
            return Err(own(anyhow!(
                "{option} (for {host}) cannot be used with {with}"
            )));
        }
    }
    // StdinNull yes keeps stdin from its host as -n does (net_ssh::run_many_with sends
    // it none); read at all only if some host takes it.
    let no_stdin = configs.iter().all(|c| SessionFlags::of(args, c).no_stdin);
    unforwarded(
        configs.iter().any(|c| c.forward_agent),
        configs.iter().any(|c| c.forward_x11),
    );
    // Each host's row as it finishes; `None` once reported (the last word is said once).
    let rows: Mutex<Option<Vec<Option<Row>>>> = Mutex::new(Some(vec![None; hosts.len()]));
    // What the hosts still running have said: shown if the run is cut short.
    let partial = Mutex::new(vec![Said::default(); hosts.len()]);
    // Set once a signal's report has taken `partial`: a host done after that is told there,
    // not again here.
    let interrupted = AtomicBool::new(false);
    // Ctrl-C or SIGTERM: the hosts done so far are reported and the rest marked interrupted,
    // as pssh marks them (the process died and the summary and --json were lost); the
    // remote commands go on, as with ssh.
    let mut signals =
        crate::signals::watch(&[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
            .context("cannot install signal handlers")
            .map_err(own)?;
    // Closed however the run ends: a panic out of it skipped the close, and the scope
    // then waited for ever on the signal thread, with no summary for any host.
    let handle = CloseOnDrop(signals.handle());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            if let Some(signal) = signals.forever().next() {
                let taken = lock(&rows).take();
                if let Some(rows) = taken {
                    // A stdout nobody reads (`| less` on its first screen) must not keep a
                    // signal from ending the run: the report gets a moment, then we go.
                    let (written, done) = std::sync::mpsc::channel();
                    interrupted.store(true, Ordering::SeqCst);
                    let partial = std::mem::take(&mut *lock(&partial));
                    scope.spawn(move || {
                        let _ = report(hosts, &rows, &partial, args.json);
                        let _ = written.send(());
                    });
                    let _ = done.recv_timeout(Duration::from_secs(2));
                    std::process::exit(128 + signal);
                }
                // Every host was done and the report is being written: it is let finish.
            }
        });
        let shown = Shown {
            json: args.json,
            hosts,
            width: hosts.iter().map(String::len).max().unwrap_or(0),
            rows: &rows,
            partial: &partial,
            interrupted: &interrupted,
        };
        let outcome = run_and_report(args, no_stdin, &configs, command, &shown);
        drop(handle);
        outcome
    })
}

/// The flags -N, -s, -n and -f, with the config's SessionType, StdinNull and
/// ForkAfterAuthentication taken as the flags they stand for.
#[derive(Clone, Copy)]
struct SessionFlags {
    no_command: bool,
    subsystem: bool,
    no_stdin: bool,
    background: bool,
}

impl SessionFlags {
    /// The flags win, as ssh keeps the first value it obtains (its flags'); -W runs no
    /// session for SessionType to change.
    fn of(args: &Args, config: &net_ssh::Config) -> Self {
        let (mut no_command, mut subsystem) = (args.no_command, args.subsystem);
        if !no_command && !subsystem && args.stdio_forward.is_none() {
            match config.session_type {
                Some(net_ssh::SessionType::None) => no_command = true,
                Some(net_ssh::SessionType::Subsystem) => subsystem = true,
                _ => {}
            }
        }
        Self {
            no_command,
            subsystem,
            no_stdin: args.no_stdin || config.stdin_null,
            background: args.background || config.fork_after_authentication,
        }
    }
}

/// Ends a `Signals::forever` loop when dropped.
struct CloseOnDrop(signal_hook::iterator::Handle);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// What one host's command wrote.
#[derive(Clone, Default)]
struct Said {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What `host` said, each line after its prefix, stdout's on stdout and stderr's on stderr.
/// One host's at a time, each stream in one write: with both streams in one place (`2>&1`,
/// a terminal), two hosts done at once tore each other's lines (`web1 | web2 | out`).
fn show_said(host: &str, width: usize, stdout: &[u8], stderr: &[u8]) {
    static SHOWING: Mutex<()> = Mutex::new(());
    let _showing = lock(&SHOWING);
    let _ = crate::stdio::stdout().write_all(&prefixed(host, width, stdout));
    let _ = crate::stdio::stdout().flush();
    let _ = crate::stdio::stderr().write_all(&prefixed(host, width, stderr));
}

/// Each line of `bytes` after `host`'s prefix, as they came (not every program writes
/// UTF-8); a last line without its newline gets one.
fn prefixed(host: &str, width: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let _ = write!(out, "{host:width$} | ");
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out
}

/// A run's progress as `netkit ssh --hosts` shows it: each host's output once it is done
/// (what one still running said kept in `partial`), its row kept for the summary.
struct Shown<'a> {
    json: bool,
    /// Each host as given (an alias, a user): the resolved address alone can be ambiguous.
    hosts: &'a [String],
    width: usize,
    rows: &'a Mutex<Option<Vec<Option<Row>>>>,
    partial: &'a Mutex<Vec<Said>>,
    interrupted: &'a AtomicBool,
}

impl net_ssh::Progress for Shown<'_> {
    fn output(&self, host: usize, stderr: bool, bytes: &[u8]) {
        if let Some(said) = lock(self.partial).get_mut(host) {
            let stream = if stderr {
                &mut said.stderr
            } else {
                &mut said.stdout
            };
            stream.extend_from_slice(bytes);
        }
    }

    fn done(&self, i: usize, r: &net_ssh::HostResult) {
        if let Some(said) = lock(self.partial).get_mut(i) {
            *said = Said::default();
        }
        // After the signal's report took what the host had said, it is the report's to tell.
        let told = self.interrupted.load(Ordering::SeqCst);
        if !self.json && !told {
            show_said(&self.hosts[i], self.width, &r.stdout, &r.stderr);
        }
        let (code, signal, error) = match &r.outcome {
            // A command killed by a signal has no exit code.
            Ok(status) if status.signal.is_some() => (None, status.signal.clone(), None),
            Ok(status) => (Some(status.code), None, None),
            Err(e) => (None, None, Some(e.to_string())),
        };
        let row = Row {
            ok: r.success(),
            code,
            signal,
            error,
            input_ended: r.input_ended,
            // Only --json shows it again: another copy of a big output was held for nothing.
            said: if self.json {
                Said {
                    stdout: r.stdout.clone(),
                    stderr: r.stderr.clone(),
                }
            } else {
                Said::default()
            },
            duration: r.duration,
        };
        if let Some(rows) = lock(self.rows).as_mut() {
            rows[i] = Some(row);
        }
    }
}

/// One host's end, as the summary and `--json` show it.
#[derive(Clone)]
struct Row {
    ok: bool,
    code: Option<i32>,
    signal: Option<String>,
    error: Option<String>,
    /// Whether the command was sent all of stdin and its end before it ended.
    input_ended: bool,
    said: Said,
    duration: std::time::Duration,
}

impl Row {
    /// The summary's status and result columns.
    fn cells(&self) -> (String, String) {
        match (&self.signal, &self.error, self.code) {
            // The server's words, escaped as in the one host's lines: a signal name or a list
            // of methods with ESC[2J or a CR in it rewrote the table.
            (Some(sig), _, _) => (
                "-".to_owned(),
                format!("killed by {}", crate::exit::shown(sig)),
            ),
            (_, Some(e), _) => ("-".to_owned(), format!("error: {}", crate::exit::shown(e))),
            (_, _, Some(code)) => (
                code.to_string(),
                if self.ok { "ok" } else { "failed" }.to_owned(),
            ),
            _ => ("-".to_owned(), String::new()),
        }
    }
}

fn run_and_report(
    args: &Args,
    no_stdin: bool,
    configs: &[net_ssh::Config],
    command: &str,
    shown: &Shown<'_>,
) -> Outcome {
    let parallel = usize::try_from(args.parallel).unwrap_or(usize::MAX);
    let too_much = || {
        anyhow!(
            "stdin is over {} MiB, the most --hosts keeps for every host (send a file with \
             netkit sftp put)",
            STDIN_KEPT >> 20
        )
    };
    // A file too large is refused before any host starts: every host's `cat > FILE` wrote
    // its first 64 MiB, and the table said ok.
    if !no_stdin && stdin_file_left().is_some_and(|left| left > STDIN_KEPT as u64) {
        return Err(own(too_much()));
    }
    let (input, cut) = input(no_stdin);
    let _ = net_ssh::run_many_with(configs, command, parallel, &input, shown);
    let taken = lock(shown.rows).take();
    let Some(mut rows) = taken else {
        // A signal's report is being written; the process ends with it.
        loop {
            std::thread::park();
        }
    };
    // A pipe is known to be too much only once read: what a host that read to the end made
    // of its first 64 MiB is no success. One whose command ended before had what it wanted
    // (`head -c 10`, as with one host): every host was failed, also once all were done and
    // netkit read on. The flag is set before the input ends, so a host sent its end sees it.
    let cut = cut.load(Ordering::SeqCst);
    let mut short = 0;
    for row in rows.iter_mut().flatten().filter(|r| cut && r.input_ended) {
        row.ok = false;
        row.error
            .get_or_insert_with(|| "stdin was cut short".to_owned());
        short += 1;
    }
    if let Err(e) = report(shown.hosts, &rows, &[], args.json) {
        // Whoever read the summary went (`| head -1`): 141 as with one host, where the
        // quiet success of a broken pipe hid every host's failure.
        let gone = e.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind)
                .or_else(|| cause.downcast_ref::<serde_json::Error>()?.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
        });
        return if gone {
            Ok(ExitCode::from(128 + 13))
        } else {
            Err(e.into())
        };
    }
    if short > 0 {
        // A host's failure: 1, as for the others (255 is for netkit's own errors).
        let hosts = if short == 1 { "host" } else { "hosts" };
        return Err(Failure {
            code: crate::exit::GENERIC,
            error: too_much().context(format!(
                "{short} {hosts} got only the first part of stdin and then EOF"
            )),
        });
    }
    Ok(if rows.iter().all(|r| r.as_ref().is_some_and(|r| r.ok)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The bytes left to read in stdin when it is a regular file (`< FILE`).
fn stdin_file_left() -> Option<u64> {
    use std::io::Seek as _;
    use std::os::fd::AsFd as _;
    let mut file = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned().ok()?);
    let meta = file.metadata().ok().filter(std::fs::Metadata::is_file)?;
    Some(meta.len().saturating_sub(file.stream_position().ok()?))
}

/// The most of stdin `--hosts` keeps (each host to come gets all of it): a stream such as
/// `tar c . |` is a file to send with sftp, and `/dev/zero` would take all memory.
const STDIN_KEPT: usize = 64 << 20;

/// What every host's command reads: our stdin, all of it for each (as pssh -I), read as it
/// comes while the hosts run; nothing with `no_stdin` (-n) or from a terminal. The flag is
/// set, before the input ends, when stdin went past [`STDIN_KEPT`] and the commands got
/// only that much.
fn input(no_stdin: bool) -> (net_ssh::SharedInput, Arc<AtomicBool>) {
    let cut = Arc::new(AtomicBool::new(false));
    if no_stdin || std::io::stdin().is_terminal() {
        return (net_ssh::SharedInput::from_bytes(Vec::new()), cut);
    }
    let input = net_ssh::SharedInput::open();
    let (feed, cut_short) = (input.clone(), cut.clone());
    let read = crate::spawn(move || {
        let mut stdin = crate::stdio::stdin();
        let mut buf = vec![0; 64 * 1024];
        let mut kept = 0;
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) if kept + n > STDIN_KEPT => {
                    cut_short.store(true, Ordering::SeqCst);
                    break;
                }
                Ok(n) => {
                    kept += n;
                    feed.push(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("cannot read stdin: {e}; the commands get EOF");
                    break;
                }
            }
        }
        feed.close();
    });
    if let Err(e) = read {
        log::warn!("{e}; the commands get no stdin");
        input.close();
    }
    (input, cut)
}

/// The summary table (or the `--json` document) of `rows`; a host without one was
/// interrupted, having said what `partial` holds.
fn report(
    hosts: &[String],
    rows: &[Option<Row>],
    partial: &[Said],
    json: bool,
) -> anyhow::Result<()> {
    let width = hosts.iter().map(String::len).max().unwrap_or(0);
    let nothing = Said::default();
    let said = |i: usize| partial.get(i).unwrap_or(&nothing);
    if !json {
        for (i, host) in hosts.iter().enumerate().filter(|(i, _)| rows[*i].is_none()) {
            show_said(host, width, &said(i).stdout, &said(i).stderr);
        }
    }
    let mut out = crate::stdio::stdout();
    if json {
        let doc: Vec<serde_json::Value> = hosts
            .iter()
            .zip(rows)
            .enumerate()
            .map(|(i, (host, r))| match r {
                Some(r) => serde_json::json!({
                    "host": host, "ok": r.ok, "exit_code": r.code, "signal": r.signal,
                    "stdout": String::from_utf8_lossy(&r.said.stdout), "stderr": String::from_utf8_lossy(&r.said.stderr),
                    "duration_ms": r.duration.as_millis(), "error": r.error,
                }),
                None => serde_json::json!({
                    "host": host, "ok": false, "exit_code": null, "signal": null,
                    "stdout": String::from_utf8_lossy(&said(i).stdout),
                    "stderr": String::from_utf8_lossy(&said(i).stderr),
                    "duration_ms": null, "error": "interrupted",
                }),
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &doc).context("writing JSON")?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "\n{:width$}  {:>6}  {:>8}  result",
            "host", "status", "time"
        )?;
        for (host, r) in hosts.iter().zip(rows) {
            let Some(r) = r else {
                writeln!(out, "{host:width$}  {:>6}  {:>8}  interrupted", "-", "-")?;
                continue;
            };
            let (status, result) = r.cells();
            writeln!(
                out,
                "{host:width$}  {status:>6}  {:>7.2}s  {result}",
                r.duration.as_secs_f64()
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Prints the algorithms `query` names, one a line, as ssh -Q.
fn list_algorithms(query: &str) -> Outcome {
    use net_ssh::AlgorithmKind::{Cipher, HostKey, Kex, Mac};
    const QUERIES: [(&str, net_ssh::AlgorithmKind); 11] = [
        ("cipher", Cipher),
        ("ciphers", Cipher),
        ("mac", Mac),
        ("macs", Mac),
        ("kex", Kex),
        ("kexalgorithms", Kex),
        ("key", HostKey),
        ("key-plain", HostKey),
        ("sig", HostKey),
        ("hostkeyalgorithms", HostKey),
        ("pubkeyacceptedalgorithms", HostKey),
    ];
    let mut out = std::io::stdout().lock();
    if query.eq_ignore_ascii_case("help") {
        for name in ["cipher", "mac", "kex", "key", "sig", "help"] {
            writeln!(out, "{name}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some((_, kind)) = QUERIES.iter().find(|(n, _)| n.eq_ignore_ascii_case(query)) else {
        return Err(own(anyhow!(
            "unsupported query {query:?} (-Q help lists them)"
        )));
    };
    for name in net_ssh::supported_algorithms(*kind).map_err(own)? {
        writeln!(out, "{name}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `config` as `ssh -G` prints one: `keyword value` lines, OpenSSH's keywords in lower case,
/// the host as `given` first and the host name in lower case (ssh connects to it so); an
/// error for a RemoteCommand token OpenSSH does not have, as ssh -G fails on it.
fn resolved(given: &str, config: &Config, args: &Args) -> Result<String, net_ssh::Error> {
    let yes_no = |on: bool| if on { "yes" } else { "no" };
    let session = SessionFlags::of(args, config);
    let paths = |paths: &[PathBuf]| {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut lines = vec![
        ("host", given.to_owned()),
        ("user", config.user.clone()),
        ("hostname", config.host.to_ascii_lowercase()),
        ("port", config.port.to_string()),
        (
            "addressfamily",
            match config.address_family {
                AddressFamily::Any => "any",
                AddressFamily::Inet => "inet",
                AddressFamily::Inet6 => "inet6",
            }
            .into(),
        ),
        ("batchmode", yes_no(config.batch_mode).into()),
        ("compression", yes_no(config.compression).into()),
        ("connectionattempts", config.connection_attempts.to_string()),
        // As configured, as ssh -G shows it (netkit's 10 s default bound is not an option).
        (
            "connecttimeout",
            config
                .connect_timeout_set
                .map_or_else(|| "none".to_owned(), |t| t.as_secs().to_string()),
        ),
        (
            "serveraliveinterval",
            config.keepalive.as_secs().to_string(),
        ),
        ("serveralivecountmax", config.keepalive_count.to_string()),
        (
            "stricthostkeychecking",
            match config.host_key_policy {
                HostKeyPolicy::Strict => "true",
                HostKeyPolicy::AcceptNew => "accept-new",
                HostKeyPolicy::Insecure => "false",
                _ => "true", // a policy net-ssh adds later: shown as the strictest
            }
            .into(),
        ),
        ("userknownhostsfile", {
            let mut files = vec![config.known_hosts.clone()];
            files.extend(config.more_known_hosts.iter().cloned());
            paths(&files)
        }),
        ("globalknownhostsfile", paths(&config.global_known_hosts)),
        ("hashknownhosts", yes_no(config.hash_known_hosts).into()),
        ("identitiesonly", yes_no(config.identities_only).into()),
        (
            "pubkeyauthentication",
            yes_no(config.pubkey_authentication).into(),
        ),
        (
            "passwordauthentication",
            yes_no(config.password_authentication).into(),
        ),
        (
            "preferredauthentications",
            config
                .auth_order
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("ciphers", config.ciphers.join(",")),
        (
            "exitonforwardfailure",
            yes_no(config.exit_on_forward_failure).into(),
        ),
        ("escapechar", escape_in_use(args, config).to_string()),
        (
            "enableescapecommandline",
            yes_no(config.escape_command_line).into(),
        ),
        ("requesttty", tty_requested(args, config).into()),
        (
            "sessiontype",
            if session.no_command || args.stdio_forward.is_some() {
                "none"
            } else if session.subsystem {
                "subsystem"
            } else {
                "default"
            }
            .into(),
        ),
        // -f reads no stdin either, as ssh's (ForkAfterAuthentication leaves StdinNull).
        (
            "stdinnull",
            yes_no(session.no_stdin || args.background).into(),
        ),
        ("forkafterauthentication", yes_no(session.background).into()),
        (
            "permitlocalcommand",
            yes_no(config.permit_local_command).into(),
        ),
        (
            "clearallforwardings",
            yes_no(config.clear_all_forwardings).into(),
        ),
        (
            "numberofpasswordprompts",
            config.password_prompts.to_string(),
        ),
    ];
    let listed = [
        ("kexalgorithms", &config.kex_algorithms),
        ("macs", &config.macs),
        ("hostkeyalgorithms", &config.host_key_algorithms),
    ];
    for (keyword, list) in listed {
        if let Some(list) = list {
            lines.push((keyword, list.join(",")));
        }
    }
    // As ssh -G: the -i files that are there, then the config's lines as written, there or
    // not (it printed only the files found, as paths); without any, the default files.
    let mut identities: Vec<String> = args
        .connect
        .identity
        .iter()
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .chain(config.identity_files.iter().cloned())
        .collect();
    if identities.is_empty() && config.default_identities {
        identities = Config::DEFAULT_IDENTITY_FILES.map(str::to_owned).to_vec();
    }
    lines.extend(identities.into_iter().map(|file| ("identityfile", file)));
    let agent = match (&config.agent_socket, config.use_agent) {
        (_, false) => Some("none".to_owned()),
        (Some(socket), true) => Some(socket.display().to_string()),
        (None, true) => None,
    };
    let optional = [
        ("identityagent", agent),
        ("bindaddress", config.bind_address.clone()),
        // In lower case, as ssh -G prints it (and as keys are looked up under it).
        (
            "hostkeyalias",
            config.host_key_alias.as_deref().map(str::to_lowercase),
        ),
        ("proxycommand", config.proxy_command.clone()),
        // As written, as ssh -G prints it.
        ("localcommand", config.local_command.clone()),
        // Its tokens expanded (`%r@%h`), as ssh -G prints it.
        ("remotecommand", config.expanded_remote_command()?),
    ];
    lines.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    // As written, as ssh -G prints it (it printed the hops resolved, users and ports
    // filled in): the last hop taken apart and put together again, as ssh keeps it.
    if let Some(hops) = &config.proxy_jump {
        let (before, last) = hops
            .rsplit_once(',')
            .map_or(("", hops.as_str()), |(b, l)| (b, l));
        let last = net_ssh::Destination::parse(last).map_or_else(
            |_| last.to_owned(),
            |hop| {
                let user = hop.user.map(|user| format!("{user}@")).unwrap_or_default();
                match hop.port {
                    Some(port) => format!("{user}{}", net_ssh::host_port(hop.host, port)),
                    None if hop.host.contains(':') => format!("{user}[{}]", hop.host),
                    None => format!("{user}{}", hop.host),
                }
            },
        );
        let shown = if before.is_empty() {
            last
        } else {
            format!("{before},{last}")
        };
        lines.push(("proxyjump", shown));
    }
    // The flags' and the file's, in ssh's order.
    let forwards = [
        (
            "dynamicforward",
            "-D",
            &args.dynamic_forward,
            &config.forwards.dynamic,
        ),
        ("localforward", "-L", &args.forward, &config.forwards.local),
        (
            "remoteforward",
            "-R",
            &args.remote_forward,
            &config.forwards.remote,
        ),
    ];
    for (keyword, flag, flags, file) in forwards {
        lines.extend(
            flags
                .iter()
                .chain(file)
                .map(|spec| (keyword, forward_shown(flag, spec))),
        );
    }
    // As ssh -G: the SendEnv patterns, one line each, never the values of the local
    // variables they match (secrets of the environment); SetEnv's pairs as the config has them.
    lines.extend(config.send_env.iter().map(|p| ("sendenv", p.clone())));
    lines.extend(
        config
            .set_env
            .iter()
            .map(|(name, value)| ("setenv", format!("{name}={value}"))),
    );
    Ok(lines
        .into_iter()
        .map(|(keyword, value)| format!("{keyword} {value}\n"))
        .collect())
}

/// RequestTTY as ssh -G prints it: the last of -t (`true`, `force` twice) and -T
/// (`false`), -N and -W (`false`), else the config's (`auto` unless it says).
fn tty_requested(args: &Args, config: &Config) -> &'static str {
    use net_ssh::RequestTty;
    if args.no_tty || args.no_command || args.stdio_forward.is_some() {
        return "false";
    }
    match (args.tty, config.request_tty) {
        (2.., _) | (0, Some(RequestTty::Force)) => "force",
        (1, _) | (0, Some(RequestTty::Yes)) => "true",
        (0, Some(RequestTty::No)) => "false",
        _ => "auto",
    }
}

/// A forward of `flag` as ssh -G writes it: `[bind]:port` or a port, then `[host]:port`; one
/// netkit cannot carry (a Unix socket, remote SOCKS) as written.
fn forward_shown(flag: &str, spec: &str) -> String {
    let listen = |bind: Option<&str>, port: &str| match bind {
        Some(bind) => format!("[{bind}]:{port}"),
        None => port.to_owned(),
    };
    if flag == "-D" {
        return match fields(spec).as_deref() {
            Some(&[port]) => port.to_owned(),
            Some(&[bind, port]) => listen(Some(bind), port),
            _ => spec.to_owned(),
        };
    }
    match parse_forward(flag, spec) {
        Ok((bind, port, Reach::Tcp(host, to_port))) => {
            format!("{} [{host}]:{to_port}", listen(bind, &port.to_string()))
        }
        Ok((bind, port, Reach::Socket(path))) => {
            format!("{} {path}", listen(bind, &port.to_string()))
        }
        Err(_) => spec.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_escapes_what_the_server_said() {
        let row = |signal: Option<&str>, error: Option<&str>| Row {
            ok: false,
            code: None,
            signal: signal.map(str::to_owned),
            error: error.map(str::to_owned),
            input_ended: false,
            said: Said::default(),
            duration: std::time::Duration::ZERO,
        };
        assert_eq!(
            row(Some("\x1b[2JTERM"), None).cells().1,
            "killed by \\033[2JTERM"
        );
        assert_eq!(
            row(None, Some("accepts: a\r\x1b[Kok")).cells().1,
            "error: accepts: a\\015\\033[Kok"
        );
    }

    #[test]
    fn the_escape_character_counts_only_at_the_start_of_a_line() {
        let mut e = Escapes::new(b'~', true);
        assert_eq!(e.filter(b"a~b\r"), (b"a~b\r".to_vec(), None));
        assert_eq!(e.filter(b"~~x~y"), (b"~x~y".to_vec(), None));
        assert_eq!(e.filter(b"\r~"), (b"\r".to_vec(), None));
        // Split across reads, as keys come one by one.
        assert_eq!(e.filter(b"?"), (Vec::new(), Some(Escape::Help)));
        assert_eq!(e.filter(b"~z"), (b"~z".to_vec(), None));
        assert_eq!(
            e.filter(b"\n~.rest"),
            (b"\n".to_vec(), Some(Escape::Disconnect))
        );
        assert_eq!(
            Escapes::new(b'~', true).filter(b"~."),
            (Vec::new(), Some(Escape::Disconnect))
        );
        assert_eq!(
            Escapes::new(b'~', true).filter(b"~\x1aa"),
            (b"a".to_vec(), Some(Escape::Suspend))
        );
        assert_eq!(
            Escapes::new(b'~', true).filter(b"~V"),
            (Vec::new(), Some(Escape::Verbosity { more: false }))
        );
        for key in [b'B', b'R'] {
            assert!(matches!(
                Escapes::new(b'~', true).filter(&[b'~', key]),
                (keys, Some(Escape::Unsupported { key: k, .. })) if keys.is_empty() && k == key
            ));
        }
    }

    #[test]
    fn dash_e_changes_the_escape_character_as_in_ssh() {
        let EscapeChar(Some(caret)) = escape_char("^]").unwrap() else {
            panic!("^] is a control key");
        };
        assert_eq!(caret, 0x1d);
        let mut e = Escapes::new(caret, false);
        assert_eq!(e.filter(b"~."), (b"~.".to_vec(), None));
        assert_eq!(e.filter(b"\r\x1d\x1d"), (b"\r\x1d".to_vec(), None));
        assert_eq!(
            e.filter(b"\r\x1d."),
            (b"\r".to_vec(), Some(Escape::Disconnect))
        );
        assert!(e.help().contains(" ^]. "), "{}", e.help());
        // ~C is listed only where it opens the command line, as ssh 9.2 lists it.
        assert!(!e.help().contains("command line"), "{}", e.help());
        assert!(
            Escapes::new(caret, true)
                .help()
                .contains(" ^]C   - open a command line")
        );
        assert!(escape_char("none").is_ok_and(|e| e.0.is_none()));
        assert_eq!(escape_char("%").map(|e| e.0), Ok(Some(b'%')));
        assert!(escape_char("ab").is_err());
    }

    #[test]
    fn forwarding_specifications_split_as_ssh_splits_them() {
        assert_eq!(
            parse_forward("-L", "8080:db:5432").unwrap(),
            (None, 8080, Reach::Tcp("db", 5432))
        );
        assert_eq!(
            parse_forward("-L", "[::1]:8080:[fe80::1]:80").unwrap(),
            (Some("::1"), 8080, Reach::Tcp("fe80::1", 80))
        );
        assert_eq!(
            parse_forward("-L", "*:8080:db:80").unwrap(),
            (Some("*"), 8080, Reach::Tcp("db", 80))
        );
        assert_eq!(
            parse_forward("-L", "5432:/run/pg/.s.PGSQL.5432").unwrap(),
            (None, 5432, Reach::Socket("/run/pg/.s.PGSQL.5432"))
        );
        assert_eq!(
            parse_forward("-L", "127.0.0.2:80:[/tmp/a:b.sock]").unwrap(),
            (Some("127.0.0.2"), 80, Reach::Socket("/tmp/a:b.sock"))
        );
        // Any field with a `/` is a path to ssh, which passes `~` on as written.
        assert_eq!(
            parse_forward("-L", "5432:~/pg.sock").unwrap(),
            (None, 5432, Reach::Socket("~/pg.sock"))
        );
        for bad in [
            "8080:db",
            "x:db:80",
            "8080::80",
            "[::1:8080:db:80",
            "1:2:3:4:5",
            "8080:db:0",
            "/tmp/local.sock:/remote.sock",
            "x:/remote.sock",
            "8080:relative.sock",
        ] {
            assert!(parse_forward("-L", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_host_port("[::1]:22").ok(), Some(("::1", 22)));
        assert_eq!(parse_host_port("db:5432").ok(), Some(("db", 5432)));
        for bad in ["db", ":22", "db:port", "[::1]22"] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }
}
