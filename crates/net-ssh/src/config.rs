use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;

/// What to do with the server's host key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse hosts not in known_hosts (OpenSSH's `StrictHostKeyChecking yes`).
    #[default]
    Strict,
    /// Add unknown hosts to known_hosts; refuse changed keys (`accept-new`).
    AcceptNew,
    /// Accept any key, with a warning. Dangerous: an explicit opt-in only.
    Insecure,
}

/// How to connect to one host.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Host name or address.
    pub host: String,
    /// Port (default 22).
    pub port: u16,
    /// User name (default: `$USER`).
    pub user: String,
    /// Time to open the TCP connection (default 10 s).
    pub connect_timeout: Duration,
    /// Longest wait for the server in any one protocol step (handshake, auth, SFTP call;
    /// default 30 s).
    pub timeout: Duration,
    /// Longest run of a command started by [`Client::exec`](crate::Client::exec)
    /// (default: none; a silent command may run as long as it likes).
    pub exec_timeout: Option<Duration>,
    /// TCP keepalive probing interval: a dead peer is noticed after about three times this
    /// without an answer, even while a command is silent (default 15 s).
    pub keepalive: Duration,
    /// The known_hosts file (default `~/.ssh/known_hosts`).
    pub known_hosts: PathBuf,
    /// The host-key policy.
    pub host_key_policy: HostKeyPolicy,
    /// Private keys to offer, with their passphrases; empty means OpenSSH's default files.
    pub identities: Vec<Identity>,
    /// Try the ssh-agent (`SSH_AUTH_SOCK`) first (default true).
    pub use_agent: bool,
    /// A password to try last (never taken from argv by the CLI).
    pub password: Option<String>,
    /// Reach the host through this one (OpenSSH's `ProxyJump`, `-J`): the connection is a
    /// direct-tcpip channel from the jump host, which may have a jump host of its own. The
    /// host key checked is still this host's.
    pub jump: Option<Box<Config>>,
}

/// A private key file and its passphrase.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Identity {
    /// The private key file (OpenSSH or PEM format).
    pub path: PathBuf,
    /// Its passphrase, if encrypted.
    pub passphrase: Option<String>,
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
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

impl Config {
    /// A config for `host` with the defaults.
    #[must_use]
    pub fn new(host: &str) -> Config {
        Config {
            host: host.to_owned(),
            port: 22,
            user: std::env::var("USER").unwrap_or_else(|_| "root".to_owned()),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            exec_timeout: None,
            keepalive: Duration::from_secs(15),
            known_hosts: home().join(".ssh/known_hosts"),
            host_key_policy: HostKeyPolicy::Strict,
            identities: Vec::new(),
            use_agent: true,
            password: None,
            jump: None,
        }
    }

    /// Parses `[user@]host[:port]` (IPv6 as `[::1]:port`) over the defaults.
    ///
    /// # Errors
    /// [`Error::BadDestination`] when the port is not a number or the host is empty.
    pub fn from_destination(dest: &str) -> Result<Config, Error> {
        let bad = || Error::BadDestination(dest.to_owned());
        let (user, rest) = match dest.rsplit_once('@') {
            Some((user, rest)) if !user.is_empty() => (Some(user), rest),
            Some(_) => return Err(bad()),
            None => (None, dest),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
                None if after.is_empty() => None,
                None => return Err(bad()),
            };
            (host, port)
        } else {
            match rest.split_once(':') {
                Some((host, p)) => (host, Some(p.parse::<u16>().map_err(|_| bad())?)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        let mut config = Config::new(host);
        if let Some(user) = user {
            config.user = user.to_owned();
        }
        if let Some(port) = port {
            config.port = port;
        }
        Ok(config)
    }

    /// Parses `dest` like [`Config::from_destination`], then applies the `Host` block of an
    /// OpenSSH client config (`HostName`, `User`, `Port`, `IdentityFile`, `ProxyJump`) that
    /// matches its host: `ssh_config`, or `~/.ssh/config` when it exists. What `dest` says
    /// wins. Jump hosts are resolved the same way, their own `ProxyJump`s included.
    ///
    /// # Errors
    /// [`Error::BadDestination`]; [`Error::SshConfig`] when the file cannot be read or
    /// parsed, or when `ProxyJump`s chain deeper than 8 hosts (a loop, as `Host *`).
    pub fn resolve(dest: &str, ssh_config: Option<&Path>) -> Result<Config, Error> {
        Config::resolve_hop(dest, ssh_config, 0)
    }

    fn resolve_hop(dest: &str, ssh_config: Option<&Path>, depth: usize) -> Result<Config, Error> {
        let mut config = Config::from_destination(dest)?;
        let default = home().join(".ssh/config");
        let path = match ssh_config {
            Some(path) => path,
            None if default.exists() => default.as_path(),
            None => return Ok(config),
        };
        let bad = |reason: String| Error::SshConfig {
            path: path.to_owned(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let rules = ssh2_config::ParseRule::ALLOW_UNKNOWN_FIELDS
            | ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let parsed = ssh2_config::SshConfig::default()
            .parse(&mut std::io::BufReader::new(file), rules)
            .map_err(|e| bad(e.to_string()))?;
        let params = parsed.query(&config.host);
        let (user_given, port_given) = (
            dest.contains('@'),
            dest.rsplit_once(']').map_or(dest, |(_, p)| p).contains(':'),
        );
        if let Some(host) = params.host_name {
            config.host = host;
        }
        if let (Some(user), false) = (params.user, user_given) {
            config.user = user;
        }
        if let (Some(port), false) = (params.port, port_given) {
            config.port = port;
        }
        if let Some(files) = params.identity_file {
            config.identities = files
                .into_iter()
                .map(|path| Identity::new(path, None))
                .collect();
        }
        let hops = params.proxy_jump.unwrap_or_default();
        if hops.iter().any(|h| !h.eq_ignore_ascii_case("none")) {
            if depth == 8 {
                return Err(bad(format!("ProxyJump for {dest} chains past 8 hosts")));
            }
            // Each hop is reached through the one before it; the first through its own
            // ProxyJump, if it has one (as OpenSSH's `ssh -W` for it would).
            for hop in &hops {
                let mut via = Config::resolve_hop(hop, Some(path), depth + 1)?;
                if config.jump.is_some() {
                    via.jump = config.jump.take();
                }
                config.jump = Some(Box::new(via));
            }
        }
        Ok(config)
    }

    /// The identities to try: the configured ones, or OpenSSH's default files that exist.
    pub(crate) fn identities_to_try(&self) -> Vec<Identity> {
        if !self.identities.is_empty() {
            return self.identities.clone();
        }
        ["id_ed25519", "id_ecdsa", "id_rsa"]
            .iter()
            .map(|name| home().join(".ssh").join(name))
            .filter(|path| path.exists())
            .map(|path| Identity::new(path, None))
            .collect()
    }

    /// `host` for port 22, else `[host]:port`, as known_hosts writes it.
    #[must_use]
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Config::from_destination("h:port").is_err());
        assert!(Config::from_destination("@h").is_err());
        assert!(Config::from_destination("").is_err());
    }
}
