//! Connecting: TCP, handshake, host-key check against known_hosts, authentication.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};

use base64::Engine as _;
use ssh2::{HashType, HostKeyType, Session};

use crate::config::{AddressFamily, AuthMethod, Config, HostKeyPolicy, Identity};
use crate::{Error, known_hosts};

/// LIBSSH2_ERROR_EAGAIN: the non-blocking session would block.
pub(crate) const EAGAIN: ssh2::ErrorCode = ssh2::ErrorCode::Session(-37);

/// LIBSSH2_ERROR_FILE: a key file libssh2 cannot read or decode (an OpenSSH-format key with
/// a wrong passphrase among them).
const KEY_FILE: ssh2::ErrorCode = ssh2::ErrorCode::Session(-16);

/// LIBSSH2_ERROR_KEYFILE_AUTH_FAILED: OpenSSL could not decrypt a PEM or PKCS#8 key with the
/// passphrase given. The server refusing a key is LIBSSH2_ERROR_AUTHENTICATION_FAILED (-18)
/// instead, and libssh2 reads the key before it asks the server.
const KEY_PASSPHRASE: ssh2::ErrorCode = ssh2::ErrorCode::Session(-48);

/// An authenticated SSH connection to one host.
///
/// One session carries one operation at a time: each switches the session between blocking
/// and non-blocking modes, which another thread's operation would see mid-way. So a client
/// moves between threads (`Send`) but is not shared by them (not `Sync`: the compiler refuses
/// `&Client` in two threads); use one client per thread for parallel work, as
/// [`run_many`](crate::run_many) does.
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<net_ssh::Client>();
/// ```
pub struct Client {
    /// The session's one SFTP channel, started at the first SFTP call and kept, as OpenSSH's
    /// sftp keeps its one: before `session`, so that it is shut down first.
    pub(crate) sftp: std::cell::RefCell<Option<std::sync::Arc<ssh2::Sftp>>>,
    pub(crate) session: Session,
    /// A second handle on the socket (TCP, or the local end of a jump host's relay), to wait
    /// for readiness in non-blocking loops.
    pub(crate) socket: OwnedFd,
    pub(crate) host: String,
    /// `host:port`, for the errors of a server that stopped answering at some stage.
    pub(crate) address: String,
    pub(crate) timeout: std::time::Duration,
    pub(crate) exec_timeout: Option<std::time::Duration>,
    /// How long the server may stay silent before a keepalive asks it for an answer, and
    /// how many go unanswered before it counts as gone (`ServerAliveInterval`,
    /// `ServerAliveCountMax`).
    pub(crate) keepalive: (std::time::Duration, u32),
    /// Asked for on every command's or shell's channel (`Config::env`).
    pub(crate) env: Vec<(String, String)>,
    /// The ProxyCommand the session runs over, if any: after `session`, so that it is hung
    /// up on once the session is gone.
    _proxy: Option<crate::proxy_command::Running>,
    /// The thread relaying the session through a jump host (`Config::jump`), if any: last,
    /// so that it is stopped and joined once the session's end of the relay is closed, with
    /// what the session sent last (its disconnect) passed on.
    _relay: Option<crate::forward::Relay>,
    /// Why the connection was closed under a command given up on, if it was: what comes
    /// after says so. A `Cell`, which also makes the client `Send` but not `Sync` (see above).
    pub(crate) hung_up: std::cell::Cell<Option<&'static str>>,
    /// Whether the server refused an upload's fsync, said once.
    pub(crate) fsync_refused: std::cell::Cell<bool>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for Client {
    /// Says goodbye (SSH_MSG_DISCONNECT, "disconnected by user", as ssh says it when it
    /// exits) without waiting: the server logs a disconnect rather than a lost connection,
    /// and a jump host's relay is stopped and joined after it (`_relay`), each hop saying
    /// goodbye to its own server in turn.
    fn drop(&mut self) {
        // The SFTP channel's shutdown speaks on the session: before the goodbye.
        drop(self.sftp.get_mut().take());
        if self.hung_up.get().is_none() && !self.lost() {
            // Never blocking: a frozen server whose socket is full is left, as after a
            // timeout, instead of holding the drop up for the session's timeout.
            self.session.set_blocking(false);
            let _ = self.session.disconnect(
                Some(ssh2::DisconnectCode::ByApplication),
                "disconnected by user",
                None,
            );
        }
        // Nothing is said after the goodbye: freeing the session closes each channel still
        // open and waits for the server's answer (a frozen server's: the timeout, once
        // each); with our side shut, those sends fail at once and the free goes on.
        let _ = socket2::SockRef::from(&self.socket).shutdown(std::net::Shutdown::Write);
        self.session.set_blocking(true);
    }
}

impl Client {
    /// Connects, checks the host key, and authenticates.
    ///
    /// # Errors
    /// [`Error::Resolve`], [`Error::Connect`], [`Error::Handshake`], [`Error::UnknownHostKey`],
    /// [`Error::HostKeyChanged`], [`Error::HostKeyRevoked`], [`Error::Auth`], [`Error::Key`],
    /// [`Error::Timeout`].
    pub fn connect(config: &Config) -> Result<Client, Error> {
        // Before connecting: logging in as "" failed as if the key were wrong.
        if config.user.is_empty() {
            return Err(if crate::config::local_user().is_empty() {
                Error::NoUser {
                    uid: nix::unistd::getuid().as_raw(),
                }
            } else {
                Error::EmptyUser
            });
        }
        let host = config.host.clone();
        let (mut proxy, mut relay) = (None, None);
        let (stream, socket) = match (&config.jump, &config.proxy_command) {
            (Some(jump), _) => {
                let (stream, socket, relaying) = Client::connect(jump)?.relay_to(config)?;
                relay = Some(relaying);
                (stream, socket)
            }
            (None, Some(command)) => {
                let (stream, socket, running) = crate::proxy_command::start(config, command)?;
                proxy = Some(running);
                (stream, socket)
            }
            (None, None) => {
                let stream = tcp_connect(config)?;
                let socket = stream.try_clone().map_err(|source| Error::Connect {
                    host: crate::config::host_port(&config.host, config.port),
                    source,
                })?;
                (OwnedFd::from(stream), OwnedFd::from(socket))
            }
        };
        let at = crate::config::host_port(&host, config.port);
        let mut session = Session::new().map_err(|e| Error::ssh(&host, &e))?;
        session.set_compress(config.compression);
        offer_algorithms(&session, &host, config)?;
        session.set_tcp_stream(stream);
        let mut known = Vec::new();
        let (known_as, known_port) = config.known_as();
        for file in config.known_hosts_files() {
            for kind in known_hosts::key_types(file, &known_as, known_port) {
                if !known.contains(&kind) {
                    known.push(kind);
                }
            }
        }
        if let Some(chosen) = &config.host_key_algorithms {
            // As ssh: a list the user chose is taken as it is, not reordered by known_hosts.
            prefer(
                &session,
                &host,
                "HostKeyAlgorithms",
                &[ssh2::MethodType::HostKey],
                chosen,
                &[],
            )?;
        } else {
            let set = supported(&session, ssh2::MethodType::HostKey).and_then(|supported| {
                let preferred = known_hosts::algorithms_preferring(&known, &supported);
                session.method_pref(ssh2::MethodType::HostKey, &preferred)
            });
            // Not asking leaves libssh2 offering host certificates first, which no check of
            // ours could match: refuse rather than connect unchecked.
            if let Err(e) = set {
                return Err(Error::ssh(&host, &e));
            }
        }
        handshake(&mut session, &socket, config, &at)?;
        let millis = |d: std::time::Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        session.set_timeout(millis(config.timeout));
        log::debug!(
            "{host}: {} (kex {}, cipher {}, mac {}, compression {})",
            session.banner().unwrap_or("no banner"),
            session.methods(ssh2::MethodType::Kex).unwrap_or("unknown"),
            session
                .methods(ssh2::MethodType::CryptCs)
                .unwrap_or("unknown"),
            session
                .methods(ssh2::MethodType::MacCs)
                .unwrap_or("unknown"),
            session
                .methods(ssh2::MethodType::CompCs)
                .unwrap_or("unknown"),
        );
        let client = Client {
            sftp: std::cell::RefCell::new(None),
            session,
            socket,
            host,
            address: at,
            timeout: config.timeout,
            exec_timeout: config.exec_timeout,
            keepalive: (config.keepalive, config.keepalive_count),
            env: config.env.clone(),
            _proxy: proxy,
            _relay: relay,
            hung_up: std::cell::Cell::new(None),
            fsync_refused: std::cell::Cell::new(false),
        };
        client.check_host_key(config)?;
        let method = client.authenticate(config)?;
        // As ssh -v's "Authenticated to HOST ([IP]:PORT) using "publickey"."
        log::debug!(
            "{}: authenticated as {} to {} using {method}",
            client.host,
            config.user,
            client.address
        );
        // Each keepalive asks for an answer: one that never comes tells a server gone (a
        // link that drops everything, where TCP's own probes are answered on the way). Not
        // before authentication, as OpenSSH: Dropbear hangs up on any request then ("message
        // 80 before userauth"), and libssh2 sends its first keepalive at its first wait.
        let every = u32::try_from(config.keepalive.as_secs().max(1)).unwrap_or(u32::MAX);
        client.session.set_keepalive(true, every);
        Ok(client)
    }

    /// Leaves delayed-ACK mode until our next send (see [`Client::open`]).
    pub(crate) fn ack_at_once(&self) {
        if let Err(e) = socket2::SockRef::from(&self.socket).set_tcp_quickack(true) {
            log::debug!("TCP_QUICKACK: {e}");
        }
    }

    /// Opens a channel (`open` is `channel_session`, `sftp`, ...) without the 40 ms stall that
    /// follows authentication.
    ///
    /// Right after authentication OpenSSH's sshd sends its host keys (`hostkeys-00@openssh.com`,
    /// no reply wanted) and then answers our first channel open. sshd runs with Nagle on, so the
    /// answer waits until the host-key packet is acknowledged, and Linux delays that ACK by 40 ms
    /// because we had just sent: `tcpdump` showed 41 ms of an 82 ms `true` spent there. So the
    /// request is sent without blocking, the socket is told to acknowledge at once, and only
    /// then do we wait for the answer.
    pub(crate) fn open<T>(
        &self,
        open: impl Fn(&Session) -> Result<T, ssh2::Error>,
    ) -> Result<T, Error> {
        self.still_open()?;
        let blocking = self.session.is_blocking();
        self.session.set_blocking(false);
        let first = open(&self.session);
        self.session.set_blocking(blocking);
        let opened = match first {
            Err(e) if e.code() == EAGAIN && blocking => {
                self.ack_at_once();
                open(&self.session)
            }
            other => other,
        };
        // A server that takes one channel at a time (MaxSessions 1) refuses a second while
        // the kept SFTP channel is open: that one goes, the next SFTP call starts it again.
        let opened = match opened {
            Err(e) if self.sftp.borrow().is_some() && !self.is_closed() => {
                log::debug!(
                    "{}: {e}; closing the SFTP channel and trying again",
                    self.host
                );
                self.forget_sftp();
                open(&self.session)
            }
            other => other,
        };
        opened.map_err(|e| {
            self.given_up(match Error::ssh(&self.host, &e) {
                // libssh2 says only "Timed out waiting on socket".
                Error::Timeout { .. } => Error::Timeout {
                    host: self.address.clone(),
                    what: format!(
                        "the server stopped answering while a channel was opened (timeout {} s)",
                        self.timeout.as_secs()
                    ),
                },
                other => other,
            })
        })
    }

    /// Fails once the connection was closed under this client (see [`Client::is_closed`]),
    /// or by the server: a call on a connection the server had closed (sshd restarted, its
    /// session killed, an idle limit) failed in libssh2's words for what it was doing ("Unable
    /// to startup channel", "connection closed (copying ...)" for a listing), and the calls
    /// after it the same, where sftp says "Connection closed" once.
    pub(crate) fn still_open(&self) -> Result<(), Error> {
        if self.hung_up.get().is_none() && self.lost() {
            self.hang_up("the server hung up");
        }
        match self.hung_up.get() {
            Some(why) => Err(Error::Ssh {
                host: self.host.clone(),
                reason: format!("the connection was closed when {why}; connect again"),
            }),
            None => Ok(()),
        }
    }

    /// Whether the server closed the connection or it was reset: libssh2 then reports what
    /// it was doing ("Failure while draining incoming flow"), not that.
    pub(crate) fn lost(&self) -> bool {
        closed(&self.socket)
    }

    /// Whether the server closed or reset the connection, even with bytes it sent before still
    /// unread: for a call that already failed. A server killed in the middle of an upload
    /// leaves window adjusts unread, and [`lost`](Self::lost) (which leaves those for libssh2
    /// to read, a disconnect's reason among them) then showed libssh2's "Unable to send
    /// channel data" where the connection was gone.
    pub(crate) fn gone(&self) -> bool {
        hung_up(&self.socket)
    }

    /// Whether the connection was closed under this client (a call that timed out hangs up
    /// on the server): every later call fails; connect again.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.hung_up.get().is_some()
    }

    /// `error`, after hanging up on a server that let a call time out: each later call
    /// (closing the file, the SFTP channel, the session) would wait out the timeout again,
    /// and `--timeout 5` took 20 s to give up on a frozen server.
    pub(crate) fn given_up(&self, error: Error) -> Error {
        if matches!(error, Error::Timeout { .. }) {
            self.hang_up("the server did not answer in time");
        }
        error
    }

    /// Waits up to `timeout_ms` for the session's socket or one of `locals` to have
    /// something, or for the session to be able to send what it could not; true when the
    /// server sent something.
    pub(crate) fn wait(&self, locals: &[&dyn AsFd], timeout_ms: u16) -> bool {
        let locals: Vec<_> = locals
            .iter()
            .map(|l| (l.as_fd(), nix::poll::PollFlags::POLLIN))
            .collect();
        self.wait_for(
            &locals,
            Some(std::time::Duration::from_millis(timeout_ms.into())),
        )
    }

    /// As [`wait`](Self::wait), each of `locals` waited on for its own readiness (a
    /// connection with bytes to take is waited on for room), for at most `timeout`, or until
    /// something happens when `None`: a loop that knows when its timers are due sleeps until
    /// then, where a fixed slice woke it 20 times a second for nothing.
    pub(crate) fn wait_for(
        &self,
        locals: &[(std::os::fd::BorrowedFd<'_>, nix::poll::PollFlags)],
        timeout: Option<std::time::Duration>,
    ) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut session = PollFlags::POLLIN;
        if matches!(
            self.session.block_directions(),
            ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
        ) {
            session |= PollFlags::POLLOUT;
        }
        let mut fds = vec![PollFd::new(self.socket.as_fd(), session)];
        fds.extend(locals.iter().map(|&(fd, flags)| PollFd::new(fd, flags)));
        // Rounded up: a timer due in 0.4 ms must not make a poll of 0 ms, which would spin
        // until it is due.
        let timeout = timeout.map_or(PollTimeout::NONE, |t| {
            let ms = t.as_micros().div_ceil(1000);
            PollTimeout::try_from(i32::try_from(ms).unwrap_or(i32::MAX)).unwrap_or(PollTimeout::MAX)
        });
        let _ = poll(&mut fds, timeout);
        fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
    }

    /// The host this client is connected to.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Checks the server's key against the known_hosts files.
    fn check_host_key(&self, config: &Config) -> Result<(), Error> {
        let (key, kind) = self.session.host_key().ok_or_else(|| Error::Handshake {
            host: self.host.clone(),
            reason: "the server sent no host key".into(),
        })?;
        let algorithm = algorithm_name(kind).to_owned();
        let fingerprint = self.fingerprint();
        let name = config.known_hosts_name();
        // No line can hold a key of a type we cannot name: without this, accept-new wrote an
        // `unknown` line that never matched, and any later key passed.
        if matches!(kind, HostKeyType::Unknown)
            && !matches!(config.host_key_policy, HostKeyPolicy::Insecure)
        {
            return Err(Error::Handshake {
                host: self.host.clone(),
                reason: format!(
                    "the server's host key ({fingerprint}) is of a type netkit cannot check"
                ),
            });
        }
        let path = &config.known_hosts;
        // A file that cannot be read is passed over, as ssh passes it over: hosts the other
        // files know still connect, the others are unknown. It used to stop every session,
        // `--insecure` ones too, after a `sudo -E` run had left a root-owned ~/.ssh behind.
        // A HOME that is no directory (`HOME=/dev/null`, as service accounts have) holds no
        // file, without a word.
        if let Err(e) = std::fs::File::open(path)
            && ![
                std::io::ErrorKind::NotFound,
                std::io::ErrorKind::NotADirectory,
            ]
            .contains(&e.kind())
        {
            log::warn!(
                "{}: {e}: passed over (is ~/.ssh owned by another user, left by a sudo run?)",
                path.display()
            );
        }
        // As OpenSSH, a RevokedHostKeys file that cannot be read refuses the key.
        let listed = |file: &std::path::Path| {
            known_hosts::listed_revoked(file, key).map_err(|reason| Error::KnownHosts {
                path: file.to_owned(),
                reason: format!("RevokedHostKeys: {reason}; host key not accepted"),
            })
        };
        let revoked_in = match &config.revoked_host_keys {
            Some(file) if listed(file)? => Some(file),
            _ => config
                .known_hosts_files()
                .find(|file| known_hosts::revoked(file, key)),
        };
        if let Some(file) = revoked_in {
            if !matches!(config.host_key_policy, HostKeyPolicy::Insecure) {
                return Err(Error::HostKeyRevoked {
                    host: name,
                    algorithm,
                    fingerprint,
                    known_hosts: file.clone(),
                });
            }
            log::warn!(
                "{name}: host key {algorithm} {fingerprint} is REVOKED in {}; going on: --insecure",
                file.display()
            );
        }
        // Matched as OpenSSH matches names (plain, hashed, patterns such as `*.example.com`),
        // which libssh2's own check does not, and a line that does not parse is passed over,
        // where libssh2 stopped reading the file. A host known by a key of another type has
        // changed its key (see `known_hosts::holds`).
        let (known_as, known_port) = config.known_as();
        // Known if any file holds the key; else changed if any names the host otherwise,
        // told with the first such file and line.
        let mut result = None;
        for file in config.known_hosts_files() {
            match known_hosts::holds(file, &known_as, known_port, &algorithm, key) {
                Some(Ok(())) => {
                    result = Some(Ok(()));
                    break;
                }
                Some(Err(line)) if result.is_none() => result = Some(Err((file, line))),
                _ => {}
            }
        }
        // A host not known at its port may be known by its name alone (ssh-keyscan without
        // -p, a host that moved its port): its key there is taken, as ssh takes it ("found
        // matching key w/out port"); another key there is no change, the host stays unknown.
        if result.is_none()
            && known_port != 22
            && config.known_hosts_files().any(|file| {
                known_hosts::holds(file, &known_as, 22, &algorithm, key) == Some(Ok(()))
            })
        {
            log::debug!("{name}: host key {algorithm} {fingerprint} known without the port");
            result = Some(Ok(()));
        }
        match (result, config.host_key_policy) {
            (Some(Ok(())), _) => {
                log::debug!("{name}: host key {algorithm} {fingerprint} is known");
                Ok(())
            }
            (_, HostKeyPolicy::Insecure) => {
                log::warn!("{name}: host key NOT checked ({algorithm} {fingerprint}): --insecure");
                Ok(())
            }
            (Some(Err((file, line))), _) => Err(Error::HostKeyChanged {
                host: name,
                algorithm,
                fingerprint,
                known_hosts: file.clone(),
                line,
            }),
            (None, HostKeyPolicy::AcceptNew) if !config.keeps_new_keys => Err(Error::KnownHosts {
                path: std::path::PathBuf::from("UserKnownHostsFile none"),
                reason: format!(
                    "{name}: host key {algorithm} {fingerprint} is not known and could not be kept, so it is not accepted (as OpenSSH); name a known_hosts file"
                ),
            }),
            (None, HostKeyPolicy::AcceptNew) => {
                // A file that cannot be written (a read-only home) costs the memory of the
                // key, not the session, as with ssh.
                match known_hosts::append(path, &name, &algorithm, key, config.hash_known_hosts) {
                    Ok(()) => log::warn!(
                        "{name}: added {algorithm} {fingerprint} to {}",
                        path.display()
                    ),
                    Err(e) => log::warn!(
                        "{name}: accepted {algorithm} {fingerprint} but cannot add it to {}: {e}",
                        path.display()
                    ),
                }
                Ok(())
            }
            (None, _) => {
                if config
                    .known_hosts_files()
                    .any(|file| known_hosts::names_authority(file, &known_as, known_port))
                {
                    log::warn!(
                        "{name}: known_hosts trusts a @cert-authority for it, but netkit cannot \
                         check host certificates: add the host's own key"
                    );
                }
                Err(Error::UnknownHostKey {
                    host: name,
                    algorithm,
                    fingerprint,
                    known_hosts: path.clone(),
                })
            }
        }
    }

    /// The server's key fingerprint as OpenSSH prints it: `SHA256:` + unpadded base64.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.session
            .host_key_hash(HashType::Sha256)
            .map(|hash| {
                format!(
                    "SHA256:{}",
                    base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash)
                )
            })
            .unwrap_or_default()
    }

    /// Notes an authentication method about to be tried (for the error if all fail).
    fn attempt(&self, tried: &mut Vec<String>, what: impl Into<String>) {
        let what = what.into();
        log::debug!("{}: trying {what}", self.host);
        tried.push(what);
    }

    /// Offers the agent's keys as OpenSSH orders them: those of `identities` first (known by
    /// their public keys), then the others unless `IdentitiesOnly`. A server allows only a
    /// few failed keys (sshd's MaxAuthTries, 6), so an agent full of other keys would
    /// otherwise use them up before the one the user named.
    fn agent_authenticates(&self, config: &Config, identities: &[Identity]) -> bool {
        let agent = self.session.agent().and_then(|mut agent| {
            if let Some(socket) = &config.agent_socket {
                agent.set_identity_path(socket)?;
            }
            agent.connect()?;
            agent.list_identities()?;
            let keys = agent.identities()?;
            Ok((agent, keys))
        });
        let (agent, mut keys) = match agent {
            Ok(listed) => listed,
            Err(e) => {
                log::debug!("{}: ssh-agent: {e}", self.host);
                return false;
            }
        };
        let named: Vec<Vec<u8>> = identities
            .iter()
            .filter_map(Identity::public_blob)
            .collect();
        let is_named = |key: &ssh2::PublicKey| named.iter().any(|blob| blob == key.blob());
        keys.sort_by_key(|key| !is_named(key));
        keys.into_iter()
            .filter(|key| !config.identities_only || is_named(key))
            .any(|key| {
                log::debug!("{}: offering agent key {}", self.host, key.comment());
                agent.userauth(&config.user, &key).is_ok() && self.session.authenticated()
            })
    }

    /// Tries the agent's keys, then the key files; true once one is taken. A key file that
    /// cannot be used (malformed, a public key, a wrong passphrase, readable by others, a DSA
    /// or security key) is passed over, as ssh passes it over, and a named one is noted in
    /// `unusable`.
    fn keys_authenticate(
        &self,
        config: &Config,
        tried: &mut Vec<String>,
        unusable: &mut Vec<Error>,
    ) -> bool {
        let (user, session) = (&config.user, &self.session);
        let identities = config.identities_to_try();
        if config.use_agent
            && (config.agent_socket.is_some()
                || std::env::var_os("SSH_AUTH_SOCK").is_some_and(|socket| !socket.is_empty()))
        {
            self.attempt(tried, "agent");
            if self.agent_authenticates(config, &identities) {
                return true;
            }
        }
        for identity in identities {
            if !identity.path.exists() {
                // Named for the agent by its `.pub` alone; a key named that is not there at
                // all is the likely reason nothing got in (paramiko raises
                // FileNotFoundError, ssh warns "not accessible"): the failure names it.
                let mut public = identity.path.clone().into_os_string();
                public.push(".pub");
                if !config.identities.is_empty() && !std::path::Path::new(&public).exists() {
                    unusable.push(Error::Local {
                        path: identity.path.clone(),
                        source: std::io::ErrorKind::NotFound.into(),
                    });
                }
                continue;
            }
            let refused = match (too_open(&identity.path), identity.unusable_kind()) {
                (Some(mode), _) => Some(Error::KeyPermissions {
                    path: identity.path.clone(),
                    mode,
                }),
                (None, Some(what)) => Some(Error::KeyKind {
                    path: identity.path.clone(),
                    what,
                }),
                (None, None) => None,
            };
            // A default key the user cannot read (copied in by `sudo cp`) was offered, and
            // the login failed as if the server had refused it; ssh says "Load key".
            if config.identities.is_empty()
                && let Err(e) = std::fs::File::open(&identity.path)
            {
                log::warn!(
                    "cannot load the key {}: {e}; passed over",
                    identity.path.display()
                );
                continue;
            }
            if let Some(refused) = refused {
                if config.identities.is_empty() {
                    log::warn!("{refused}; passed over");
                } else {
                    unusable.push(refused);
                }
                continue;
            }
            // OpenSSH offers KEY-cert.pub beside a key; libssh2 cannot offer a certificate
            // from a file, and the login failed with nothing said of it.
            let mut certificate = identity.path.clone().into_os_string();
            certificate.push("-cert.pub");
            if std::path::Path::new(&certificate).exists() {
                log::warn!(
                    "{}: netkit cannot offer a certificate from a file (the key is offered \
                     alone); load the key into ssh-agent (ssh-add), which offers it",
                    std::path::Path::new(&certificate).display()
                );
            }
            self.attempt(tried, format!("publickey {}", identity.path.display()));
            let result = session.userauth_pubkey_file(
                user,
                None,
                &identity.path,
                identity.passphrase.as_deref(),
            );
            if let Err(e) = &result {
                log::debug!(
                    "{}: key {} not taken: libssh2 error {:?}: {}",
                    self.host,
                    identity.path.display(),
                    e.code(),
                    e.message()
                );
            }
            match result {
                Ok(()) if session.authenticated() => return true,
                // An unreadable, malformed or wrongly decrypted key; an encrypted PEM or PKCS#8
                // key without its passphrase fails otherwise (and was never asked for: the
                // password was, which the server may not even take), and one with a wrong
                // passphrase was taken for a key the server refused, its passphrase not asked
                // again as ssh asks it.
                Err(e)
                    if !config.identities.is_empty()
                        && (e.code() == KEY_FILE
                            || e.code() == KEY_PASSPHRASE
                            || (identity.passphrase.is_none() && identity.is_encrypted())) =>
                {
                    unusable.push(Error::Key {
                        path: identity.path,
                    });
                    // Its passphrase is asked for now, before a key after it gets in.
                    if config.asks_passphrases {
                        return false;
                    }
                }
                _ => {}
            }
        }
        false
    }

    /// Tries, like OpenSSH, in [`Config::auth_order`]: the agent and the key files, then the
    /// password (also as the answer to keyboard-interactive, for servers that offer that).
    /// Returns the method that got in, as [`attempt`](Self::attempt) named it (`none` when the
    /// server asked for nothing).
    fn authenticate(&self, config: &Config) -> Result<String, Error> {
        let user = &config.user;
        let session = &self.session;
        let stopped = |what: &str| Error::Timeout {
            host: self.address.clone(),
            what: format!(
                "the server stopped answering during authentication ({what} within the \
                 timeout of {} s)",
                config.timeout.as_secs()
            ),
        };
        let accepted = match session.auth_methods(user) {
            Ok(methods) => methods.to_owned(),
            // A server stalled from the start (a user looked up on a hung LDAP) was asked
            // again with a key, which waited a second timeout and took the blame.
            Err(e) if e.code() == ssh2::ErrorCode::Session(-9) => {
                return Err(stopped("no list of its methods"));
            }
            Err(_) => String::new(),
        };
        if session.authenticated() {
            return Ok("none".to_owned());
        }
        log::debug!("{}: the server accepts {accepted} for {user}", self.host);
        let mut tried = Vec::new();
        let mut unusable = Vec::new();
        let password = config
            .password
            .as_ref()
            .filter(|_| config.password_authentication);
        // A method that was a first factor changes what the server lists: a second pass takes
        // the methods it lists then (`publickey,keyboard-interactive` wants PAM after the
        // key; `password,publickey` the key after the password, which came first). The list
        // is asked for again only then: past the first, each asking counts against sshd's
        // MaxAuthTries.
        let mut listed = accepted.clone();
        for pass in 0..2 {
            if self.pass(config, password, &listed, &mut tried, &mut unusable) {
                return Ok(tried.pop().unwrap_or_default());
            }
            // A server that stopped answering (a home on a hung NFS mount) was "authentication
            // failed", and asking it for its methods again waited a second timeout.
            if ssh2::Error::last_session_error(session)
                .is_some_and(|e| e.code() == ssh2::ErrorCode::Session(-9))
            {
                return Err(stopped(&format!(
                    "no answer to {}",
                    tried.last().map_or("nothing tried", String::as_str)
                )));
            }
            match session.auth_methods(user) {
                Ok(now) if pass == 0 && now != listed => {
                    // A first factor taken (ssh -v: "Authenticated using ... with partial
                    // success", then "Authentications that can continue").
                    log::debug!(
                        "{}: partial success; authentications that can continue: {now}",
                        self.host
                    );
                    listed = now.to_owned();
                }
                Ok(now) => {
                    listed = now.to_owned();
                    break;
                }
                Err(_) => break,
            }
        }
        // Nothing got in: the key named that could not be used is the likely reason.
        if let Some(problem) = unusable.into_iter().next() {
            return Err(problem);
        }
        Err(Error::Auth {
            host: self.host.clone(),
            user: user.clone(),
            tried,
            // What it wants now: after a key that was a first factor, the second.
            accepted: listed,
        })
    }

    /// Tries each method of [`Config::auth_order`] that `listed` (the server's list) names,
    /// once, as OpenSSH tries only those; true when in.
    fn pass(
        &self,
        config: &Config,
        password: Option<&String>,
        listed: &str,
        tried: &mut Vec<String>,
        unusable: &mut Vec<Error>,
    ) -> bool {
        let (user, session) = (&config.user, &self.session);
        // A server that would not list them (the request failed) is tried with each.
        let offered = |method: &str| listed.is_empty() || listed.split(',').any(|m| m == method);
        for method in &config.auth_order {
            let done = match method {
                AuthMethod::PublicKey if config.pubkey_authentication && offered("publickey") => {
                    self.keys_authenticate(config, tried, unusable)
                }
                AuthMethod::Password if offered("password") => password.is_some_and(|password| {
                    self.attempt(tried, "password");
                    session.userauth_password(user, password).is_ok() && session.authenticated()
                }),
                // Servers that take passwords only through PAM offer keyboard-interactive.
                AuthMethod::KeyboardInteractive if offered("keyboard-interactive") => password
                    .is_some_and(|password| {
                        self.attempt(tried, "keyboard-interactive");
                        let mut answer = PasswordPrompt(password);
                        session
                            .userauth_keyboard_interactive(user, &mut answer)
                            .is_ok()
                            && session.authenticated()
                    }),
                _ => false,
            };
            if done {
                for problem in unusable.iter() {
                    log::warn!("{problem}; passed over");
                }
                return true;
            }
        }
        false
    }
}

/// The permission bits of a private key file of ours that others may read or write, which
/// OpenSSH refuses to use ("UNPROTECTED PRIVATE KEY FILE"): a key others can read is no
/// longer a secret. Like OpenSSH, a file owned by someone else (root's keys read by a
/// service) is left to its owner.
fn too_open(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.mode() & 0o777;
    let ours = meta.is_file() && meta.uid() == nix::unistd::getuid().as_raw();
    (ours && mode & 0o077 != 0).then_some(mode)
}

/// Answers every keyboard-interactive prompt that hides its echo with the password.
struct PasswordPrompt<'a>(&'a str);

impl ssh2::KeyboardInteractivePrompt for PasswordPrompt<'_> {
    fn prompt<'b>(
        &mut self,
        _user: &str,
        _instructions: &str,
        prompts: &[ssh2::Prompt<'b>],
    ) -> Vec<String> {
        prompts
            .iter()
            .map(|p| {
                if p.echo {
                    String::new()
                } else {
                    self.0.to_owned()
                }
            })
            .collect()
    }
}

/// Starts `work` on a thread of its own: out of threads (a process or cgroup limit), an
/// [`Error::Local`], where `std::thread::spawn` panics.
pub(crate) fn spawn<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, Error> {
    spawn_with(std::thread::Builder::new(), work)
}

/// As [`spawn`], the thread made as `thread` says (a name, seen in `top -H` and debuggers).
pub(crate) fn spawn_with<T: Send + 'static>(
    thread: std::thread::Builder,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, Error> {
    thread.spawn(work).map_err(|source| Error::Local {
        path: "cannot start a thread".into(),
        source,
    })
}

/// The server's banner, once it came: not libssh2's own, which an echo server sends back.
fn server_banner(session: &Session) -> Option<&str> {
    session
        .banner()
        .filter(|banner| !banner.starts_with("SSH-2.0-libssh2_"))
}

/// The banner exchange and key exchange, bounded as OpenSSH's ConnectTimeout bounds them:
/// with one given ([`Config::handshake_timeout`]), all of it within that; else the banner
/// within the connect timeout (a port that accepts and says nothing, or echoes, fails as
/// soon as a dead host would) and the key exchange within the per-step `timeout`: about
/// three round trips, 12 s over a link with a 4 s round trip, which the 10 s connect timeout
/// cut short ("stopped answering") where ssh, which has no default bound, got in.
fn handshake(
    session: &mut Session,
    socket: &OwnedFd,
    config: &Config,
    at: &str,
) -> Result<(), Error> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let started = std::time::Instant::now();
    let (for_banner, for_all, named) = match config.handshake_timeout {
        Some(limit) => (limit, limit, "ConnectTimeout"),
        None => (
            config.connect_timeout.min(config.timeout),
            config.timeout,
            "timeout",
        ),
    };
    // Driven here, not blocking in libssh2, whose one timeout would bound both parts alike.
    session.set_blocking(false);
    let shaken = loop {
        match session.handshake() {
            Err(e) if e.code() == EAGAIN => {}
            done => break done,
        }
        let banner = server_banner(session);
        let limit = if banner.is_some() {
            for_all
        } else {
            for_banner
        };
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            session.set_blocking(true);
            return Err(Error::Timeout {
                host: at.to_owned(),
                what: match banner {
                    // It is an SSH server: slow, or stalled, in the key exchange.
                    Some(banner) => format!(
                        "the key exchange with the server ({banner}) did not finish within {} s \
                         ({named})",
                        limit.as_secs()
                    ),
                    None => format!(
                        "no SSH banner within {} s ({named}); is it an SSH server?",
                        limit.as_secs()
                    ),
                },
            });
        }
        let mut flags = PollFlags::POLLIN;
        if matches!(
            session.block_directions(),
            ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
        ) {
            flags |= PollFlags::POLLOUT;
        }
        let wait = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let _ = poll(
            &mut [PollFd::new(socket.as_fd(), flags)],
            PollTimeout::from(wait),
        );
    };
    session.set_blocking(true);
    // host:port, as the timeouts: a jump host and its target may share a host.
    shaken.map_err(|e| Error::Handshake {
        host: at.to_owned(),
        reason: if e.message().contains("banner") && config.proxy_command.is_some() {
            format!("{}; did the ProxyCommand reach an SSH server?", e.message())
        } else if e.message().contains("exchange encryption keys") {
            // libssh2 does not say which list found nothing in common.
            format!(
                "{}; the server takes none of the key exchange, host key or cipher \
                 algorithms offered (ciphers: {})",
                e.message(),
                config.ciphers.join(",")
            )
        } else if e.message().contains("banner") && closed(socket) {
            // sshd over its MaxStartups drops a newcomer before its banner, as do
            // fail2ban and firewalls' connection limits: not only a port speaking
            // another protocol (which netkit cannot tell from it).
            "the server closed the connection without an SSH banner: is it an SSH \
             server, or one over its connection limit (sshd's MaxStartups)?"
                .to_owned()
        } else if e.message().contains("banner") {
            // It answered, but not with "SSH-2.0-...": a port that speaks something else.
            format!("{}; is it an SSH server?", e.message())
        } else {
            e.message().to_owned()
        },
    })
}

/// Whether the peer of `socket` has closed the connection (or reset it) and sent nothing
/// more to read.
fn closed(socket: &OwnedFd) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd as _;
    let peeked = recv(
        socket.as_raw_fd(),
        &mut [0; 1],
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    );
    matches!(peeked, Ok(0) | Err(nix::errno::Errno::ECONNRESET))
}

/// Whether the peer of `socket` has closed the connection (or reset it), whatever it sent
/// before that is still unread.
fn hung_up(socket: &impl AsFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    // POLLRDHUP: the peer's FIN, seen past unread bytes. nix 0.32 does not name it, and its
    // `revents` is `None` for a bit it does not name: with POLLRDHUP the only event asked
    // for, that is the FIN (POLLHUP, POLLERR and POLLNVAL it names).
    let mut fds = [PollFd::new(
        socket.as_fd(),
        PollFlags::from_bits_retain(nix::libc::POLLRDHUP),
    )];
    poll(&mut fds, PollTimeout::ZERO).is_ok()
        && fds[0]
            .revents()
            .is_none_or(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// The TCP connection to `config`'s host, with TCP_NODELAY and keepalive.
fn tcp_connect(config: &Config) -> Result<TcpStream, Error> {
    let addrs: Vec<_> = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|_| Error::Resolve {
            host: config.host.clone(),
        })?
        .filter(|addr| config.address_family.allows(addr))
        .collect();
    if addrs.is_empty() {
        return Err(Error::NoAddress {
            host: config.host.clone(),
            family: if config.address_family == AddressFamily::Inet {
                "IPv4"
            } else {
                "IPv6"
            },
        });
    }
    let at = crate::config::host_port(&config.host, config.port);
    let connect_error = |source| Error::Connect {
        host: at.clone(),
        source,
    };
    let from = match &config.bind_address {
        Some(name) => (name.as_str(), 0)
            .to_socket_addrs()
            .map_err(|e| {
                connect_error(std::io::Error::new(
                    e.kind(),
                    format!("BindAddress {name}: {e}"),
                ))
            })?
            .map(|a| a.ip())
            .collect(),
        None => Vec::new(),
    };
    log::debug!("connecting to {at} ({addrs:?})");
    let mut attempt = 1;
    let stream = loop {
        match connect_any(&addrs, config.connect_timeout, &from) {
            Ok(stream) => break stream,
            Err(e) if attempt < config.connection_attempts => {
                log::debug!("{at}: {e}; trying again in 1 s");
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            Err(e) => return Err(connect_error(e)),
        }
    };
    // One exec round trip: 48 ms without TCP_NODELAY, 4 ms with it.
    let _ = stream.set_nodelay(true);
    set_keepalive(&stream, config.keepalive, config.keepalive_count);
    Ok(stream)
}

/// The first of `addrs` that accepts within `timeout`, else the last error; from the first
/// of `from` of the same family when `from` names local addresses.
pub(crate) fn connect_any(
    addrs: &[std::net::SocketAddr],
    timeout: std::time::Duration,
    from: &[std::net::IpAddr],
) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        let connected = if from.is_empty() {
            TcpStream::connect_timeout(addr, timeout)
        } else {
            connect_from(addr, timeout, from)
        };
        match connected {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()))
}

/// Connects to `addr` from the first of `from` of its family.
fn connect_from(
    addr: &std::net::SocketAddr,
    timeout: std::time::Duration,
    from: &[std::net::IpAddr],
) -> std::io::Result<TcpStream> {
    let local = from
        .iter()
        .find(|ip| ip.is_ipv4() == addr.is_ipv4())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("no BindAddress of {addr}'s address family"),
            )
        })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(*addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket
        .bind(&std::net::SocketAddr::new(*local, 0).into())
        .map_err(|e| std::io::Error::new(e.kind(), format!("BindAddress {local}: {e}")))?;
    socket.connect_timeout(&(*addr).into(), timeout)?;
    Ok(socket.into())
}

/// TCP keepalive probes so that a dead peer breaks the connection even when nothing is sent.
fn set_keepalive(stream: &TcpStream, every: std::time::Duration, count: u32) {
    use nix::sys::socket::{setsockopt, sockopt};
    let secs = u32::try_from(every.as_secs().max(1)).unwrap_or(u32::MAX);
    let set = setsockopt(stream, sockopt::KeepAlive, &true)
        .and_then(|()| setsockopt(stream, sockopt::TcpKeepIdle, &secs))
        .and_then(|()| setsockopt(stream, sockopt::TcpKeepInterval, &secs))
        // TCP takes no count of 0 (EINVAL); ServerAlive gives up before its probes then.
        .and_then(|()| setsockopt(stream, sockopt::TcpKeepCount, &count.max(1)));
    if let Err(e) = set {
        log::debug!("TCP keepalive: {e}");
    }
}

fn algorithm_name(kind: HostKeyType) -> &'static str {
    match kind {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

/// A kind of algorithm, as `ssh -Q` asks for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlgorithmKind {
    /// Ciphers (`Ciphers`).
    Cipher,
    /// Message authentication codes (`MACs`).
    Mac,
    /// Key exchanges (`KexAlgorithms`).
    Kex,
    /// Host key types (`HostKeyAlgorithms`).
    HostKey,
}

/// The algorithms of `kind` netkit can use, libssh2's, in its order of preference, as
/// `ssh -Q` lists OpenSSH's.
///
/// # Errors
/// [`Error::Ssh`] when libssh2 cannot be asked.
pub fn supported_algorithms(kind: AlgorithmKind) -> Result<Vec<&'static str>, Error> {
    let session = Session::new().map_err(|e| Error::ssh("localhost", &e))?;
    let method = match kind {
        AlgorithmKind::Cipher => ssh2::MethodType::CryptCs,
        AlgorithmKind::Mac => ssh2::MethodType::MacCs,
        AlgorithmKind::Kex => ssh2::MethodType::Kex,
        AlgorithmKind::HostKey => ssh2::MethodType::HostKey,
    };
    let mut names = supported(&session, method).map_err(|e| Error::ssh("localhost", &e))?;
    // Signals in the key exchange list, not key exchanges (ssh -Q kex leaves them out).
    names.retain(|name| !name.starts_with("ext-info-") && !name.starts_with("kex-strict-"));
    Ok(names)
}

/// The algorithms of `method` libssh2 has and netkit offers: no host certificates
/// (`*-cert-v01@openssh.com`), which libssh2 takes without checking their signer, dates or
/// names, so that the server's plain key is sent and checked, as OpenSSH falls back to it
/// when no `@cert-authority` matches.
fn supported(
    session: &Session,
    method: ssh2::MethodType,
) -> Result<Vec<&'static str>, ssh2::Error> {
    let mut names = session.supported_algs(method)?;
    match method {
        ssh2::MethodType::HostKey => names.retain(|name| !name.contains("-cert-")),
        // libssh2's old name for aes256-cbc, which ssh 9.2 neither knows nor takes: -Q listed
        // it, and -c refused it.
        ssh2::MethodType::CryptCs | ssh2::MethodType::CryptSc => {
            names.retain(|name| *name != "rijndael-cbc@lysator.liu.se");
        }
        _ => {}
    }
    Ok(names)
}

/// Offers the config's ciphers, and its key exchanges and MACs when it names them.
fn offer_algorithms(session: &Session, host: &str, config: &Config) -> Result<(), Error> {
    use ssh2::MethodType::{CryptCs, CryptSc, Kex, MacCs, MacSc};
    prefer(
        session,
        host,
        "Ciphers",
        &[CryptCs, CryptSc],
        &config.ciphers,
        &[],
    )?;
    if let Some(kex) = &config.kex_algorithms {
        // Signals libssh2 lists among the key exchanges, which ssh sends whatever
        // KexAlgorithms says: strict key exchange (against Terrapin) and the server's
        // signature algorithms (RSA keys with SHA-2).
        let signals = ["ext-info-c", "kex-strict-c-v00@openssh.com"];
        prefer(session, host, "KexAlgorithms", &[Kex], kex, &signals)?;
    }
    if let Some(macs) = &config.macs {
        prefer(session, host, "MACs", &[MacCs, MacSc], macs, &[])?;
    }
    Ok(())
}

/// Offers `wanted` for each of `ways`, those libssh2 knows, then `also`; `option` names the
/// list in the error when it knows none of them.
fn prefer(
    session: &Session,
    host: &str,
    option: &str,
    ways: &[ssh2::MethodType],
    wanted: &[String],
    also: &[&str],
) -> Result<(), Error> {
    let supported = supported(session, ways[0]).map_err(|e| Error::ssh(host, &e))?;
    let mut known: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|c| supported.contains(c))
        .collect();
    if known.is_empty() {
        return Err(Error::BadOption {
            option: format!("{option} {}", wanted.join(",")),
            reason: format!(
                "netkit has none of them (it has {})",
                supported
                    .iter()
                    .filter(|name| !also.contains(name))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        });
    }
    for extra in also {
        if supported.contains(extra) && !known.contains(extra) {
            known.push(extra);
        }
    }
    for &way in ways {
        session
            .method_pref(way, &known.join(","))
            .map_err(|e| Error::ssh(host, &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// An empty user was blamed on the password database, where root has an entry.
    #[test]
    fn an_empty_user_is_named_as_such() {
        let mut config = Config::new("127.0.0.1");
        config.user = String::new();
        let said = Client::connect(&config).err().map(|e| e.to_string());
        assert_eq!(
            said.as_deref(),
            Some("empty user name: name the user to log in as")
        );
    }

    #[test]
    fn a_peer_that_wrote_and_closed_has_hung_up_though_its_bytes_are_unread() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert!(!hung_up(&client));
        server.write_all(b"window adjust").unwrap();
        drop(server);
        let socket = OwnedFd::from(client);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !hung_up(&socket) {
            assert!(std::time::Instant::now() < deadline, "no hang-up seen");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // What libssh2 is left to read keeps `closed` false: the reason of a disconnect.
        assert!(!closed(&socket));
    }
}
