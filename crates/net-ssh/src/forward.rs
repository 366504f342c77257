//! Port forwarding. Local (`ssh -L`): each connection accepted on a local listener is carried
//! over a direct-tcpip channel to a host and port as seen from the server. Remote (`ssh -R`):
//! each connection the server accepts on its side arrives as a channel, carried to a host and
//! port as seen from here. Dynamic (`ssh -D`): a local SOCKS proxy whose clients name the host
//! and port (`socks.rs`). A jump host (`-J`) carries the next hop's SSH connection like a
//! local forward, from a local socket pair.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::BorrowedFd;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::Error;
use crate::client::{Client, EAGAIN, connect_any};
use crate::config::host_port;
use crate::server_alive::{Moved, ServerAlive, Window};
use crate::socks;
use crate::wake::{Wake, Woken};

const CHUNK: usize = 32 * 1024;
/// Longest wait for a SOCKS client's request.
const SOCKS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a relay being stopped still passes on what its session sent last (its
/// goodbye) before it ends anyway: a frozen hop holds no drop up for longer.
const RELAY_GRACE: Duration = Duration::from_secs(1);

/// The local side of a tunnel: a forwarded TCP client, or our end of a jump's socket pair.
trait Local: Read + Write + AsFd {
    fn shutdown_write(&self);
}

impl Local for TcpStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Local for UnixStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// One forwarded connection.
struct Tunnel<S> {
    /// The forwarded client's connection, or our end of a jump's socket pair.
    local: S,
    channel: ssh2::Channel,
    /// Bytes read from the client, not yet written to the channel.
    up: Vec<u8>,
    /// Bytes read from the channel, not yet written to the client.
    down: Vec<u8>,
    client_eof: bool,
    /// Whether the last read of the local side found nothing to take (WouldBlock).
    local_idle: bool,
    eof_sent: bool,
    /// Whether the server's EOF was passed on to the local side.
    server_eof: bool,
    closed: bool,
    /// The channel's send window, to tell the server's adjusts from our writes.
    window: Window,
    /// What ssh's `~#` says of the connection (a jump's relay has none).
    about: String,
}

/// Where a `-L` or SOCKS connection goes, as seen from the server.
#[derive(Clone)]
enum Target {
    Tcp(String, u16),
    /// A Unix socket's path (`-L 5432:/run/postgresql/.s.PGSQL.5432`; OpenSSH's
    /// direct-streamlocal channel).
    Socket(String),
}

impl Target {
    /// As ssh's `~#` names it: `HOST port PORT`, or the socket's path.
    fn spoken(&self) -> String {
        match self {
            Target::Tcp(host, port) => format!("{host} port {port}"),
            Target::Socket(path) => path.clone(),
        }
    }
}

/// ssh's `~#` words for a connection accepted on a local listener (`kind`, the channel's
/// type): the forward it came to, and from where. Said at debug as ssh -v says it
/// ("Connection to port 8080 forwarding to db port 5432 requested."), with its source at
/// trace (-vv).
fn requested(kind: &str, tcp: &TcpStream, to: &Target) -> String {
    let (from, at) = (tcp.peer_addr().ok(), tcp.local_addr().ok());
    let to = to.spoken();
    let ip =
        |a: Option<std::net::SocketAddr>| a.map_or_else(|| "?".to_owned(), |a| a.ip().to_string());
    let port = |a: Option<std::net::SocketAddr>| a.map_or(0, |a| a.port());
    log::debug!(
        "Connection to port {} forwarding to {to} requested.",
        port(at)
    );
    let about = format!(
        "{kind}: listening port {} for {to}, connect from {} port {} to {} port {}",
        port(at),
        ip(from),
        port(from),
        ip(at),
        port(at)
    );
    log::trace!("{about}");
    about
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(host, port) => write!(f, "{host}:{port}"),
            Target::Socket(path) => f.write_str(path),
        }
    }
}

/// Says at debug (ssh -v) what a new `-L` (`to`) or `-D` (`None`) listener does, as ssh's
/// "Local forwarding listening on ..." tells it: a user could not see that a forward was up.
fn log_listening(listener: &TcpListener, to: Option<&Target>) {
    let at = listener.local_addr().map_or_else(
        |_| "an unknown address".to_owned(),
        |a| format!("{} port {}", a.ip(), a.port()),
    );
    match to {
        Some(to) => {
            log::debug!("Local forwarding listening on {at}, to remote address {to}");
        }
        None => log::debug!("Dynamic (SOCKS) forwarding listening on {at}"),
    }
}

/// A local connection waiting for its channel to its target; a SOCKS client gets its answer
/// once the channel is open or refused.
struct Open {
    tcp: TcpStream,
    to: Target,
    socks: Option<socks::Request>,
    /// What `~#` will say of its tunnel.
    about: String,
}

/// A connection on its way to a tunnel that waits on another thread, so that it holds up
/// none of the tunnels already carrying bytes.
enum Waiting {
    /// A SOCKS client whose request a thread reads (blocking, for at most SOCKS_TIMEOUT).
    Handshake(Receiver<Option<Open>>),
    /// A channel the server opened (`-R`), a thread's connection to the local target, and
    /// what `~#` will say of the tunnel.
    Connect(ssh2::Channel, Receiver<std::io::Result<TcpStream>>, String),
}

/// What a forward's listener turned up in one turn.
enum Arrival {
    Open(Open),
    Waiting(Waiting),
    /// The accept failed, or the thread for what came, for want of descriptors, memory or
    /// threads: the listeners are tried again a little later.
    Busy(std::io::Error),
}

/// After an accept that failed for want of resources, the listeners wait this long: at once,
/// the poll would wake at once again (a busy loop while the descriptors are all taken).
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// A local listener's failed accept: nothing this turn, a pause for want of resources (as
/// ssh, which accepts again once descriptors are free: one EMFILE ended every forward), or
/// an error that ends the forwarding.
fn accept_failed(e: std::io::Error) -> Result<Option<Arrival>, Error> {
    use nix::errno::Errno;
    match e.raw_os_error().map(Errno::from_raw) {
        _ if e.kind() == ErrorKind::WouldBlock => Ok(None),
        Some(Errno::ECONNABORTED | Errno::EINTR | Errno::EPROTO) => Ok(None),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM) => {
            Ok(Some(Arrival::Busy(e)))
        }
        _ => Err(listener_error(e)),
    }
}

/// Runs `work` on a thread of its own and sends its result back, then wakes the forward's
/// loop through `wake` (its poll cannot watch a channel). Out of threads, the error (and
/// `work` is dropped, with the connection it holds).
fn on_thread<T: Send + 'static>(
    wake: &Arc<Stop>,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<Receiver<T>> {
    let (tx, rx) = mpsc::channel();
    let wake = Arc::clone(wake);
    std::thread::Builder::new().spawn(move || {
        let _ = tx.send(work());
        wake.wake();
    })?;
    Ok(rx)
}

/// Where one forward's connections come from, and where they go.
enum Source {
    /// `-L`: a local listener; each connection goes to `to` as seen from the server.
    Local { listener: TcpListener, to: Target },
    /// `-D`: a local SOCKS listener; each client names where it goes.
    Dynamic(TcpListener),
    /// `-R`: the server's listener on `listening` (the port it listens on); each
    /// connection goes to `host:port` as seen from here.
    Remote {
        listener: ssh2::Listener,
        listening: u16,
        host: String,
        port: u16,
    },
}

/// Which of a session's forwards: `-L`, `-R` or `-D`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardKind {
    /// `-L`: a local listener to a host and port (or socket) as seen from the server.
    Local,
    /// `-R`: the server's listener to a host and port as seen from here.
    Remote,
    /// `-D`: a local SOCKS listener.
    Dynamic,
}

impl Source {
    /// Whether this is the `kind` forward listening on `port` at one of `addresses` (any
    /// address when `None`), as ssh's `-KL`, `-KR` and `-KD` name a forward to cancel.
    fn is(&self, kind: ForwardKind, addresses: Option<&[std::net::IpAddr]>, port: u16) -> bool {
        let local = |listener: &TcpListener| {
            listener.local_addr().is_ok_and(|at| {
                at.port() == port && addresses.is_none_or(|addresses| addresses.contains(&at.ip()))
            })
        };
        match (self, kind) {
            (Source::Local { listener, .. }, ForwardKind::Local)
            | (Source::Dynamic(listener), ForwardKind::Dynamic) => local(listener),
            (Source::Remote { listening, .. }, ForwardKind::Remote) => *listening == port,
            _ => false,
        }
    }
}

/// A change asked of a running [`Forwards`] through [`ChangeForwards`], taken by its loop.
enum Change {
    /// A local (`-L`) or SOCKS (`-D`) listener, already non-blocking.
    Add(Source),
    /// `-R`: the server is asked to listen; its answer (the port it listens on) goes back.
    Remote {
        bind: Option<String>,
        port: u16,
        host: String,
        to_port: u16,
        reply: mpsc::Sender<Result<u16, Error>>,
    },
    /// Closes the forwards of a kind listening on a port (on one of the addresses, when
    /// given); whether there was one goes back. Their open connections go on, as in ssh.
    Cancel {
        kind: ForwardKind,
        addresses: Option<Vec<std::net::IpAddr>>,
        port: u16,
        reply: mpsc::Sender<bool>,
    },
    /// What `~#` lists: one line for each open forwarded connection.
    List(mpsc::Sender<Vec<String>>),
}

/// The forwards one session carries (`ssh -L`, `-R` and `-D`), all over the one connection
/// as ssh carries them: add them, then [`run`](Forwards::run) until stopped through a
/// [`StopForwards`] from [`stopper`](Forwards::stopper).
pub struct Forwards {
    client: Client,
    sources: Vec<Source>,
    /// Readable once a stop is asked for or a thread's work for the loop is done
    /// ([`on_thread`]): the loop sleeps in its poll until then, or until a timer is due.
    woken: Woken,
    stop: Arc<Stop>,
    /// What [`ChangeForwards`] asks while the loop runs.
    changes: Receiver<Change>,
}

impl std::fmt::Debug for Forwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwards")
            .field("client", &self.client)
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

/// What a [`StopForwards`] asked for, and the write end of the loop's wake-up pair.
#[derive(Debug)]
struct Stop {
    now: AtomicBool,
    after_open_ones: AtomicBool,
    wake: Wake,
    changes: mpsc::Sender<Change>,
}

impl Stop {
    /// Wakes the loop's poll.
    fn wake(&self) {
        self.wake.wake();
    }
}

/// Ends [`Forwards::run`] from another thread (a signal's, the command's). Cheap to clone;
/// the loop sleeps until there is something to do, and a stop asked for wakes it at once.
#[derive(Clone, Debug)]
pub struct StopForwards(Arc<Stop>);

impl StopForwards {
    /// Ends the forwarding at once, open connections and all (ssh on a signal).
    pub fn now(&self) {
        self.0.now.store(true, Ordering::Release);
        self.0.wake();
    }

    /// No new connection is taken, and the forwarding ends once the open ones have closed,
    /// as ssh ends once its command has exited and the forwarded connections are done (`ssh
    /// -f -L ... sleep 10`, a tunnel for one connection); [`now`](Self::now) still ends it
    /// at once.
    pub fn after_open_ones(&self) {
        self.0.after_open_ones.store(true, Ordering::Release);
        self.0.wake();
    }
}

/// Adds and cancels forwards of a running [`Forwards`], and lists its connections, from
/// another thread (ssh's `~C` command line and `~#`). Cheap to clone. Each call waits for the
/// loop to take it, which it does at once, between two turns.
#[derive(Clone, Debug)]
pub struct ChangeForwards(Arc<Stop>);

impl ChangeForwards {
    fn ask<T>(&self, change: impl FnOnce(mpsc::Sender<T>) -> Change) -> Result<T, Error> {
        let (reply, answer) = mpsc::channel();
        self.send(change(reply))?;
        answer.recv().map_err(|_| Error::ForwardingEnded)
    }

    fn send(&self, change: Change) -> Result<(), Error> {
        self.0
            .changes
            .send(change)
            .map_err(|_| Error::ForwardingEnded)?;
        self.0.wake();
        Ok(())
    }

    /// `-L` on a running session: as [`Forwards::local`], for each of `listeners`.
    ///
    /// # Errors
    /// [`Error::Local`] when a listener cannot be made non-blocking,
    /// [`Error::ForwardingEnded`] when the loop has ended.
    pub fn local(&self, listeners: Vec<TcpListener>, host: &str, port: u16) -> Result<(), Error> {
        self.local_to(listeners, &Target::Tcp(host.to_owned(), port))
    }

    /// `-L PORT:/PATH` on a running session: as [`Forwards::local_to_socket`].
    ///
    /// # Errors
    /// As [`local`](Self::local).
    pub fn local_to_socket(&self, listeners: Vec<TcpListener>, path: &str) -> Result<(), Error> {
        self.local_to(listeners, &Target::Socket(path.to_owned()))
    }

    fn local_to(&self, listeners: Vec<TcpListener>, to: &Target) -> Result<(), Error> {
        for listener in listeners {
            listener.set_nonblocking(true).map_err(listener_error)?;
            log_listening(&listener, Some(to));
            self.send(Change::Add(Source::Local {
                listener,
                to: to.clone(),
            }))?;
        }
        Ok(())
    }

    /// `-D` on a running session: as [`Forwards::dynamic`], for each of `listeners`.
    ///
    /// # Errors
    /// As [`local`](Self::local).
    pub fn dynamic(&self, listeners: Vec<TcpListener>) -> Result<(), Error> {
        for listener in listeners {
            listener.set_nonblocking(true).map_err(listener_error)?;
            log_listening(&listener, None);
            self.send(Change::Add(Source::Dynamic(listener)))?;
        }
        Ok(())
    }

    /// `-R` on a running session: as [`Forwards::remote`]; the port the server listens on.
    ///
    /// # Errors
    /// [`Error::Ssh`] when the server refuses, [`Error::ForwardingEnded`] when the loop has
    /// ended.
    pub fn remote(
        &self,
        bind: Option<&str>,
        port: u16,
        host: &str,
        to_port: u16,
    ) -> Result<u16, Error> {
        self.ask(|reply| Change::Remote {
            bind: bind.map(str::to_owned),
            port,
            host: host.to_owned(),
            to_port,
            reply,
        })?
    }

    /// Closes the `kind` forwards listening on `port` (`bind`: on its addresses only; for
    /// `-R`, any forward on the port), as ssh's `-KL`, `-KR` and `-KD`: whether there was
    /// one. The connections they carry go on.
    ///
    /// # Errors
    /// [`Error::Resolve`] when `bind` does not resolve, [`Error::ForwardingEnded`] when the
    /// loop has ended.
    pub fn cancel(&self, kind: ForwardKind, bind: Option<&str>, port: u16) -> Result<bool, Error> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let addresses = match bind {
            None => None,
            Some("localhost") => Some(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]),
            Some("" | "*") => Some(vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ]),
            Some(name) => Some(
                (name, port)
                    .to_socket_addrs()
                    .map_err(|_| Error::Resolve {
                        host: name.to_owned(),
                    })?
                    .map(|addr| addr.ip())
                    .collect(),
            ),
        };
        self.ask(|reply| Change::Cancel {
            kind,
            addresses,
            port,
            reply,
        })
    }

    /// What ssh's `~#` says of each open forwarded connection, as its list words them
    /// (`direct-tcpip: listening port 8080 for db port 5432, connect from ...`).
    ///
    /// # Errors
    /// [`Error::ForwardingEnded`] when the loop has ended.
    pub fn connections(&self) -> Result<Vec<String>, Error> {
        self.ask(Change::List)
    }
}

impl Client {
    /// This session, to carry forwards and nothing else.
    ///
    /// # Errors
    /// [`Error::Local`] when the loop's wake-up socket pair cannot be made (out of
    /// descriptors).
    pub fn into_forwards(self) -> Result<Forwards, Error> {
        let (woken, wake) = crate::wake::pair("forwarding")?;
        let (changes, changed) = mpsc::channel();
        Ok(Forwards {
            client: self,
            sources: Vec::new(),
            woken,
            stop: Arc::new(Stop {
                now: AtomicBool::new(false),
                after_open_ones: AtomicBool::new(false),
                wake,
                changes,
            }),
            changes: changed,
        })
    }
}

impl Forwards {
    /// `-L`: connections accepted on `listener` go to `host:port` as seen from the server;
    /// one the server refuses to forward is closed and logged.
    ///
    /// # Errors
    /// [`Error::Local`] when the listener cannot be made non-blocking.
    pub fn local(&mut self, listener: TcpListener, host: &str, port: u16) -> Result<(), Error> {
        self.local_to(listener, Target::Tcp(host.to_owned(), port))
    }

    /// `-L PORT:/PATH`: connections accepted on `listener` go to the Unix socket at `path`
    /// on the server (a database's or Docker's), as OpenSSH forwards them; the server may
    /// refuse (`AllowStreamLocalForwarding no`), which closes and logs the connection.
    ///
    /// # Errors
    /// [`Error::Local`] when the listener cannot be made non-blocking.
    pub fn local_to_socket(&mut self, listener: TcpListener, path: &str) -> Result<(), Error> {
        self.local_to(listener, Target::Socket(path.to_owned()))
    }

    fn local_to(&mut self, listener: TcpListener, to: Target) -> Result<(), Error> {
        listener.set_nonblocking(true).map_err(listener_error)?;
        log_listening(&listener, Some(&to));
        self.sources.push(Source::Local { listener, to });
        Ok(())
    }

    /// `-D`: SOCKS4, 4a and 5 on `listener`; each client names a host and port, reached
    /// through the server. A client whose handshake fails or whose destination cannot be
    /// reached gets the SOCKS refusal and is closed.
    ///
    /// # Errors
    /// [`Error::Local`] when the listener cannot be made non-blocking.
    pub fn dynamic(&mut self, listener: TcpListener) -> Result<(), Error> {
        listener.set_nonblocking(true).map_err(listener_error)?;
        log_listening(&listener, None);
        self.sources.push(Source::Dynamic(listener));
        Ok(())
    }

    /// `-R`: asks the server to listen on `bind:port` on its side (`port` 0: one it picks;
    /// `bind` `None`: its loopback, `*`: every interface, as ssh asks); what arrives there
    /// goes to `host:to_port` as seen from here. Returns the port the server listens on.
    ///
    /// # Errors
    /// [`Error::Ssh`] when the server refuses (the port is taken, or forwarding is off).
    pub fn remote(
        &mut self,
        bind: Option<&str>,
        port: u16,
        host: &str,
        to_port: u16,
    ) -> Result<u16, Error> {
        let (source, listening) = self.client.listen_remote(bind, port, host, to_port)?;
        self.sources.push(source);
        Ok(listening)
    }

    /// What changes the forwards while [`run`](Self::run) carries them (ssh's `~C`).
    #[must_use]
    pub fn changer(&self) -> ChangeForwards {
        ChangeForwards(Arc::clone(&self.stop))
    }

    /// What stops [`run`](Self::run), to keep before it starts (it holds `self`).
    #[must_use]
    pub fn stopper(&self) -> StopForwards {
        StopForwards(Arc::clone(&self.stop))
    }

    /// Carries every forward's connections until a [`StopForwards`] ends it, or the
    /// connection is lost. Between connections' bytes it sleeps until one of them, a
    /// listener, the server or a stop has something, or a keepalive is due: idle tunnels cost
    /// no CPU, as with ssh.
    ///
    /// # Errors
    /// [`Error::Local`] when a local listener fails, [`Error::Ssh`] when the session does,
    /// [`Error::Timeout`] when the server stopped answering keepalives.
    pub fn run(&mut self) -> Result<(), Error> {
        self.client
            .carry(&mut self.sources, &self.woken, &self.stop, &self.changes)
    }
}

fn listener_error(source: std::io::Error) -> Error {
    Error::Local {
        path: "forwarding listener".into(),
        source,
    }
}

/// The listeners of a `-L` or `-D` forward on `port`, as ssh opens them: no `bind` (or
/// `localhost`) is loopback, 127.0.0.1 and ::1 (every interface when `gateway_ports`, ssh's
/// `-g`); `""` or `*` every interface, 0.0.0.0 and `[::]`; a name, each of its addresses. IPv6
/// sockets take IPv6 only, so both families share the port; port 0 is one port the system
/// picks, the same on each address. An address that cannot listen is left out when another
/// can (a host without IPv6), as ssh does.
///
/// # Errors
/// The first address's error when none can listen, or the name's when it does not resolve.
pub fn forward_listeners(
    bind: Option<&str>,
    port: u16,
    gateway_ports: bool,
) -> std::io::Result<Vec<TcpListener>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let both = |v4: Ipv4Addr, v6: Ipv6Addr| {
        vec![
            SocketAddr::new(IpAddr::V4(v4), port),
            SocketAddr::new(IpAddr::V6(v6), port),
        ]
    };
    let addrs = match bind {
        None if gateway_ports => both(Ipv4Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED),
        None | Some("localhost") => both(Ipv4Addr::LOCALHOST, Ipv6Addr::LOCALHOST),
        Some("" | "*") => both(Ipv4Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED),
        Some(host) => (host, port).to_socket_addrs()?.collect(),
    };
    let mut listeners = Vec::new();
    let mut failures = Vec::new();
    let mut port = port;
    for mut addr in addrs {
        addr.set_port(port);
        match listen_on(addr) {
            Ok(listener) => {
                port = listener.local_addr()?.port();
                listeners.push(listener);
            }
            Err(e) => failures.push((addr, e)),
        }
    }
    if listeners.is_empty() {
        return Err(failures.into_iter().next().map_or_else(
            || std::io::Error::new(ErrorKind::AddrNotAvailable, "the name has no address"),
            |(_, e)| e,
        ));
    }
    for (addr, e) in failures {
        // Another program on one loopback would take the clients that pick it, so the
        // user is told (as ssh tells); a family this host lacks is no news.
        if e.kind() == ErrorKind::AddrInUse {
            log::warn!("cannot listen on {addr}: {e}");
        } else {
            log::debug!("cannot listen on {addr}: {e}");
        }
    }
    Ok(listeners)
}

fn listen_on(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // As std's bind: a port whose last connections are in TIME_WAIT can be listened on again.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

impl Client {
    /// Asks the server to listen on `bind:port` for a `-R` to `host:to_port`: the source and
    /// the port the server listens on.
    fn listen_remote(
        &self,
        bind: Option<&str>,
        port: u16,
        host: &str,
        to_port: u16,
    ) -> Result<(Source, u16), Error> {
        // As ssh asks: no address is `localhost`, the server's loopback (libssh2 would ask
        // for 0.0.0.0, every interface where the server lets the client choose); `*` is
        // every interface.
        let asked = match bind {
            None => "localhost",
            Some("*") => "",
            Some(bind) => bind,
        };
        let (listener, listening) = self
            .session
            .channel_forward_listen(port, Some(asked), None)
            .map_err(|e| Error::ssh(&self.host, &e))?;
        log::debug!(
            "{}: Remote forwarding listening on {} port {listening} (on the server), to local \
             address {}",
            self.host,
            bind.unwrap_or("localhost"),
            host_port(host, to_port)
        );
        let source = Source::Remote {
            listener,
            listening,
            host: host.to_owned(),
            port: to_port,
        };
        Ok((source, listening))
    }

    /// Makes `change` to the running loop's `sources`; `tunnels` are what `~#` lists.
    fn change(&self, change: Change, sources: &mut Vec<Source>, tunnels: &[Tunnel<TcpStream>]) {
        match change {
            Change::Add(source) => sources.push(source),
            Change::Remote {
                bind,
                port,
                host,
                to_port,
                reply,
            } => {
                // One global request and its answer, blocking (bounded by the session's
                // timeout): libssh2 goes on with a request it began only when asked again
                // with the same words, which a loop between other calls cannot promise.
                self.session.set_blocking(true);
                let listened = self.listen_remote(bind.as_deref(), port, &host, to_port);
                self.session.set_blocking(false);
                let _ = reply.send(listened.map(|(source, listening)| {
                    sources.push(source);
                    listening
                }));
            }
            Change::Cancel {
                kind,
                addresses,
                port,
                reply,
            } => {
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(sources)
                    .into_iter()
                    .partition(|source| source.is(kind, addresses.as_deref(), port));
                *sources = kept;
                let found = !gone.is_empty();
                // A remote listener dropped sends the server its cancel-tcpip-forward:
                // blocking, or a send cut short by EAGAIN would be left half done.
                self.session.set_blocking(true);
                drop(gone);
                self.session.set_blocking(false);
                let _ = reply.send(found);
            }
            Change::List(reply) => {
                let _ = reply.send(tunnels.iter().map(|t| t.about.clone()).collect());
            }
        }
    }

    /// What `source` turned up this turn, if anything. Work that can be slow (a SOCKS
    /// handshake, `-R`'s local connect) goes to a thread that wakes the loop through `wake`.
    fn arrival(&self, source: &mut Source, wake: &Arc<Stop>) -> Result<Option<Arrival>, Error> {
        match source {
            Source::Local { listener, to } => match listener.accept() {
                Ok((tcp, _)) => Ok(Some(Arrival::Open(Open {
                    about: requested(
                        match to {
                            Target::Tcp(..) => "direct-tcpip",
                            Target::Socket(_) => "direct-streamlocal@openssh.com",
                        },
                        &tcp,
                        to,
                    ),
                    tcp,
                    to: to.clone(),
                    socks: None,
                }))),
                Err(e) => accept_failed(e),
            },
            Source::Dynamic(listener) => match listener.accept() {
                Ok((tcp, _)) => Ok(Some(
                    match on_thread(wake, move || read_socks_request(tcp)) {
                        Ok(handshake) => Arrival::Waiting(Waiting::Handshake(handshake)),
                        Err(e) => Arrival::Busy(e),
                    },
                )),
                Err(e) => accept_failed(e),
            },
            Source::Remote {
                listener,
                listening,
                host,
                port,
            } => match listener.accept() {
                Ok(channel) => {
                    let to = Target::Tcp(host.clone(), *port).spoken();
                    log::debug!(
                        "{}: Connection to the server's port {listening} forwarding to {to} \
                         requested.",
                        self.host
                    );
                    let about = format!("forwarded-tcpip: listening port {listening} for {to}");
                    let (target, timeout) = ((host.clone(), *port), self.timeout);
                    let tcp = on_thread(wake, move || {
                        let (host, port) = &target;
                        (host.as_str(), *port)
                            .to_socket_addrs()
                            .and_then(|addrs| connect_any(&addrs.collect::<Vec<_>>(), timeout, &[]))
                            .map_err(|e| {
                                std::io::Error::new(
                                    e.kind(),
                                    format!("{}: {e}", host_port(host, *port)),
                                )
                            })
                    });
                    Ok(Some(match tcp {
                        Ok(tcp) => Arrival::Waiting(Waiting::Connect(channel, tcp, about)),
                        Err(e) => Arrival::Busy(e),
                    }))
                }
                Err(e) if e.code() == EAGAIN => Ok(None),
                Err(e) => Err(Error::ssh(&self.host, &e)),
            },
        }
    }

    /// Moves bytes between the tunnels of every source's connections until `stop` says so
    /// (at once, or once none is left open); the local listeners are polled with the session.
    fn carry(
        &self,
        sources: &mut Vec<Source>,
        woken: &Woken,
        stop: &Arc<Stop>,
        changes: &Receiver<Change>,
    ) -> Result<(), Error> {
        self.session.set_blocking(false);
        let mut tunnels: Vec<Tunnel<TcpStream>> = Vec::new();
        let mut waiting: Vec<Waiting> = Vec::new();
        // libssh2 keeps one channel open in progress per session, and a call after EAGAIN
        // goes on with that open whatever host it is given: opens go in turn, the front one
        // in progress, and an open once begun is never given up (a later one would get its
        // channel, to the wrong host).
        let mut opens: VecDeque<Open> = VecDeque::new();
        // Channels of tunnels that ended, until the server confirms the close: dropped before,
        // a channel stays in libssh2 with what it had queued (about 1 MB for each client that
        // reset a connection mid-transfer, never given back).
        let mut closing: Vec<ssh2::Channel> = Vec::new();
        let mut buf = vec![0; CHUNK];
        // A server gone or frozen ends the forwarding as it ends a command (`exec.rs`).
        let mut alive = ServerAlive::new(self);
        let mut accepts_paused_until: Option<Instant> = None;
        // Whether the last turn ran again, without sleeping, for what libssh2 held.
        let mut rechecked = false;
        let result = loop {
            // Before the flags and `waiting`: a stop or a thread's result after this wakes
            // the poll.
            woken.drain();
            while let Ok(change) = changes.try_recv() {
                self.change(change, sources, &tunnels);
            }
            let finishing = stop.after_open_ones.load(Ordering::Acquire);
            if finishing {
                // Closed, a listener turns new connections away instead of holding them.
                sources.clear();
            }
            let idle = tunnels.is_empty() && opens.is_empty() && waiting.is_empty();
            if stop.now.load(Ordering::Acquire) || (finishing && idle) {
                break Ok(());
            }
            let mut progress = Moved::Nothing;
            for w in std::mem::take(&mut waiting) {
                match w {
                    Waiting::Handshake(rx) => match rx.try_recv() {
                        Ok(Some(open)) => {
                            progress = progress.max(Moved::Local);
                            opens.push_back(open);
                        }
                        Ok(None) | Err(TryRecvError::Disconnected) => {}
                        Err(TryRecvError::Empty) => waiting.push(Waiting::Handshake(rx)),
                    },
                    Waiting::Connect(channel, rx, about) => match rx.try_recv() {
                        Ok(Ok(tcp)) => {
                            progress = progress.max(Moved::Local);
                            tunnels.push(Tunnel::over(tcp, channel, about));
                        }
                        Ok(Err(e)) => log::warn!("remote forward: {e}"),
                        Err(TryRecvError::Disconnected) => {}
                        Err(TryRecvError::Empty) => {
                            waiting.push(Waiting::Connect(channel, rx, about));
                        }
                    },
                }
            }
            if let Some(open) = opens.front() {
                let opened = match &open.to {
                    Target::Tcp(host, port) => self.session.channel_direct_tcpip(host, *port, None),
                    Target::Socket(path) => self.session.channel_direct_streamlocal(path, None),
                };
                match opened {
                    Err(e) if e.code() == EAGAIN => self.ack_at_once(),
                    result => {
                        // The server's confirmation; a failure may be ours (a hung-up session).
                        progress = progress.max(if result.is_ok() {
                            Moved::Server
                        } else {
                            Moved::Local
                        });
                        if let Some(open) = opens.pop_front()
                            && let Some(tunnel) = open.finish(result)
                        {
                            tunnels.push(tunnel);
                        }
                    }
                }
            }
            for tunnel in &mut tunnels {
                progress = progress.max(tunnel.pump(&mut buf));
            }
            if tunnels.iter().any(|t| t.closed) {
                // Looked at again before sleeping: the last one gone may end a finishing
                // loop (`-L ... CMD` waited out a keepalive interval after the command).
                progress = progress.max(Moved::Local);
                let (ended, open) = std::mem::take(&mut tunnels)
                    .into_iter()
                    .partition(|t| t.closed);
                tunnels = open;
                for tunnel in &ended {
                    log::trace!("forwarded connection closed: {}", tunnel.about);
                }
                closing.extend(ended.into_iter().map(|t: Tunnel<TcpStream>| t.channel));
            }
            closing.retain_mut(|channel| matches!(channel.close(), Err(e) if e.code() == EAGAIN));
            // Last of the turn's reads of the session: a `-R` connection the server opened is
            // queued for its listener by whichever call reads its packet, and one read by a
            // tunnel's call after the accepts would wait, with the socket read, for the next
            // wake-up.
            match self.take_arrivals(
                sources,
                stop,
                (&mut opens, &mut waiting),
                &mut accepts_paused_until,
            ) {
                Ok(true) => progress = progress.max(Moved::Local),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
            if alive.moved(progress) {
                rechecked = false;
                continue;
            }
            if let Err(e) = alive.check(self) {
                break Err(e);
            }
            // What libssh2 took off the socket for a tunnel while reading for another, no
            // poll tells of: one more turn takes it. Still there after that turn (an open or a
            // close the server has not answered, bytes the channel cannot take), the loop
            // sleeps a slice at most, not until something else happens.
            let held = !opens.is_empty() || !closing.is_empty() || tunnels.iter().any(Tunnel::held);
            if held && !rechecked {
                rechecked = true;
                continue;
            }
            let accepting = accepts_paused_until.is_none();
            let waited = self.wait_idle(
                woken,
                sources.iter().filter(|_| accepting),
                &tunnels,
                (&mut alive, accepts_paused_until, held),
            );
            if let Err(e) = waited {
                break Err(e);
            }
        };
        self.session.set_blocking(true);
        result
    }

    /// Takes what the listeners turned up into `opens` and `waiting`, unless they are paused
    /// for want of resources (`paused_until`, set here when an accept finds none); whether
    /// anything came.
    fn take_arrivals(
        &self,
        sources: &mut [Source],
        wake: &Arc<Stop>,
        (opens, waiting): (&mut VecDeque<Open>, &mut Vec<Waiting>),
        paused_until: &mut Option<Instant>,
    ) -> Result<bool, Error> {
        if paused_until.is_some_and(|until| Instant::now() < until) {
            return Ok(false);
        }
        let mut busy = false;
        let mut arrived = false;
        for source in sources {
            match self.arrival(source, wake)? {
                Some(Arrival::Open(open)) => {
                    opens.push_back(open);
                    arrived = true;
                }
                Some(Arrival::Waiting(w)) => {
                    waiting.push(w);
                    arrived = true;
                }
                Some(Arrival::Busy(e)) => {
                    if paused_until.is_none() {
                        log::warn!("forwarding: accept: {e} (trying again)");
                    }
                    busy = true;
                }
                None => {}
            }
        }
        *paused_until = busy.then(|| Instant::now() + ACCEPT_PAUSE);
        Ok(arrived)
    }

    /// Sleeps until the session, a listener of `sources`, a tunnel's client or `woken` has
    /// something, or as [`ServerAlive::sleep`] says (`alive`, `until`, `held`). What the
    /// server sent with no channel to read it (its host keys after authentication, keepalive
    /// answers, the end of the connection) is taken in here: left unread, it kept the poll
    /// awake, and a closed connection went unnoticed (the patched `libssh2_keepalive_send`
    /// reads first, NETKIT.md).
    fn wait_idle<'a>(
        &self,
        woken: &Woken,
        sources: impl Iterator<Item = &'a Source>,
        tunnels: &[Tunnel<TcpStream>],
        (alive, until, held): (&mut ServerAlive, Option<Instant>, bool),
    ) -> Result<(), Error> {
        let mut locals = vec![(woken.as_fd(), PollFlags::POLLIN)];
        locals.extend(sources.filter_map(|source| match source {
            Source::Local { listener, .. } | Source::Dynamic(listener) => {
                Some((listener.as_fd(), PollFlags::POLLIN))
            }
            Source::Remote { .. } => None,
        }));
        locals.extend(tunnels.iter().filter_map(Tunnel::interest));
        if alive.sleep(self, &locals, until, held) {
            self.take_in()?;
        }
        Ok(())
    }

    /// Opens a connection to `host:port` as the server sees it and relays it, on a thread
    /// of its own that owns this client, to the returned [`Relayed`] stream: what is written
    /// to it reaches `host:port`, what `host:port` sends can be read from it (as `ssh -W`,
    /// which a ProxyCommand uses). Shutting the stream's write side sends EOF; the stream
    /// reads EOF once the far side has sent it, or once the server is given up on
    /// (ServerAliveInterval x (ServerAliveCountMax + 1) silent), which
    /// [`Relayed::lost`] then tells.
    ///
    /// # Errors
    /// [`Error::Connect`] when the server cannot reach `host:port` (or refuses to),
    /// [`Error::Local`] when the local stream cannot be made.
    pub fn tunnel(self, host: &str, port: u16) -> Result<Relayed, Error> {
        let unreachable = |e: Error| Error::Connect {
            host: host_port(host, port),
            source: std::io::Error::other(match e {
                // The hop with its port, as the timeouts name it: two hops may share a host.
                Error::Ssh { reason, .. } => format!("through {}: {reason}", self.address),
                e => e.to_string(),
            }),
        };
        let local = |source| Error::Local {
            path: "tunnel socket pair".into(),
            source,
        };
        self.session.set_blocking(false);
        let channel = self.open_tunnel(host, port).map_err(unreachable)?;
        let pair = || -> std::io::Result<_> {
            let (ours, theirs) = UnixStream::pair()?;
            theirs.set_nonblocking(true)?;
            let (stop, stopped) = UnixStream::pair()?;
            stopped.set_nonblocking(true)?;
            Ok((ours, theirs, stop, stopped))
        };
        let (ours, theirs, stop, stopped) = pair().map_err(local)?;
        let (lost, why) = mpsc::channel();
        // Named for `top -H` and debuggers (15 bytes at most).
        let thread = std::thread::Builder::new().name(format!("ssh-relay:{port}"));
        let thread = crate::client::spawn_with(thread, move || {
            let mut tunnel = Tunnel::new(theirs, channel);
            if let Err(e) = self.relay(&mut tunnel, &stopped) {
                // Told before the stream closes (with `tunnel`), so that its EOF finds it.
                let _ = lost.send(e);
            }
            drop(tunnel);
            // `self` goes here: it says goodbye to its server (and its own relay's, hop by
            // hop) before the thread ends.
        })?;
        Ok(Relayed {
            stream: ours,
            why,
            _relay: Relay {
                stop,
                thread: Some(thread),
            },
        })
    }

    /// Moves a tunnel's bytes until it closes, or `stopped` is readable (its other end shut
    /// or gone: the relay is being dropped), what the local side had sent is passed on and
    /// the far side has ended, for [`RELAY_GRACE`] at most. Sleeps until the tunnel, the server or `stopped` has
    /// something, or a keepalive is due.
    fn relay(&self, tunnel: &mut Tunnel<UnixStream>, stopped: &UnixStream) -> Result<(), Error> {
        let mut buf = vec![0; CHUNK];
        // A frozen server ended nothing: `ssh -W` under a ProxyCommand hung for ever,
        // where ssh gives up as in a session (exit 255).
        let mut alive = ServerAlive::new(self);
        let mut ending: Option<Instant> = None;
        let mut rechecked = false;
        while !tunnel.closed {
            // EOF (or a byte, though none is written) asks for the end; WouldBlock does not.
            if ending.is_none()
                && !matches!((&*stopped).read(&mut [0]), Err(e) if e.kind() == ErrorKind::WouldBlock)
            {
                ending = Some(Instant::now() + RELAY_GRACE);
                // What the session wrote last (its goodbye) may have come after the last
                // read that found nothing: read again before counting it passed on.
                tunnel.local_idle = false;
            }
            // Passed on, and the far side done (the server's EOF: with a session's goodbye,
            // once the next hop has taken it), as ssh -W waits for its channel to close.
            let done = |tunnel: &Tunnel<UnixStream>| tunnel.flushed() && tunnel.server_eof;
            if ending.is_some_and(|deadline| done(tunnel) || Instant::now() >= deadline) {
                break;
            }
            if alive.moved(tunnel.pump(&mut buf)) {
                rechecked = false;
                continue;
            }
            // A turn that found the local side idle may have made it done: else the relay
            // slept out its grace (`-W` ended 1 s after the server closed, stdin still open).
            if ending.is_some() && done(tunnel) {
                break;
            }
            alive.check(self)?;
            // As in the forwards' loop (`carry`): what libssh2 took in for the channel while
            // it did something else gets one more turn, then a slice at most.
            let held = tunnel.held();
            if held && !rechecked {
                rechecked = true;
                continue;
            }
            let mut locals: Vec<_> = tunnel.interest().into_iter().collect();
            if ending.is_none() {
                locals.push((stopped.as_fd(), PollFlags::POLLIN));
            }
            alive.sleep(self, &locals, ending, held);
        }
        log::debug!("tunnel through {} closed", self.host);
        Ok(())
    }

    /// [`tunnel`](Self::tunnel) to `next`'s host and port; returns two handles on the
    /// stream, for the next hop's session and for waiting on it, and the relay, to drop
    /// once the next hop's session is gone.
    pub(crate) fn relay_to(self, next: &crate::Config) -> Result<(OwnedFd, OwnedFd, Relay), Error> {
        let Relayed { stream, _relay, .. } = self.tunnel(&next.host, next.port)?;
        let socket = stream.try_clone().map_err(|source| Error::Local {
            path: "tunnel socket pair".into(),
            source,
        })?;
        Ok((OwnedFd::from(stream), OwnedFd::from(socket), _relay))
    }

    fn open_tunnel(&self, host: &str, port: u16) -> Result<ssh2::Channel, Error> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.session.channel_direct_tcpip(host, port, None) {
                Ok(channel) => return Ok(channel),
                Err(e) if e.code() == EAGAIN && Instant::now() < deadline => {
                    self.ack_at_once();
                    let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
                    let _ = poll(&mut fds, PollTimeout::from(20u16));
                }
                Err(e) => return Err(Error::ssh(&self.host, &e)),
            }
        }
    }
}

/// The local end of [`Client::tunnel`]'s relay. Dropped, it stops the relay's thread and
/// waits for it: what was written to [`stream`](Self::stream) is passed on (for a second at
/// most, should the server be frozen) and the client says goodbye to its server
/// (SSH_MSG_DISCONNECT).
#[derive(Debug)]
pub struct Relayed {
    /// Reads what `host:port` sends; what is written to it goes there.
    pub stream: UnixStream,
    why: Receiver<Error>,
    /// Last: the stream is closed before the relay is stopped.
    _relay: Relay,
}

/// The thread relaying a tunnel, stopped and joined when dropped.
#[derive(Debug)]
pub(crate) struct Relay {
    /// Shut when dropped: the thread's end reads EOF, which asks it to end.
    stop: UnixStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            // The thread ends within RELAY_GRACE and its client's goodbye, which never
            // blocks; a panic there is not ours to repeat.
            let _ = thread.join();
        }
    }
}

impl Relayed {
    /// Why the relay ended before `host:port` closed: the server stopped answering
    /// keepalives ([`Error::Timeout`]). Asked once [`stream`](Self::stream) has read its EOF,
    /// `None` means the far side closed.
    #[must_use]
    pub fn lost(&self) -> Option<Error> {
        self.why.try_recv().ok()
    }
}

/// A local connection's peer, for the log.
fn peer(tcp: &TcpStream) -> String {
    tcp.peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string())
}

/// Reads a SOCKS client's request, blocking for at most SOCKS_TIMEOUT.
fn read_socks_request(mut tcp: TcpStream) -> Option<Open> {
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_read_timeout(Some(SOCKS_TIMEOUT));
    match socks::handshake(&mut tcp) {
        Ok(request) => {
            let _ = tcp.set_read_timeout(None);
            let to = Target::Tcp(request.host.clone(), request.port);
            log::trace!("SOCKS: {} asks for {to}", peer(&tcp));
            Some(Open {
                about: requested("dynamic-tcpip", &tcp, &to),
                tcp,
                to,
                socks: Some(request),
            })
        }
        // A client that opened a connection and said nothing (a browser's spare one):
        // dropped quietly, as ssh leaves it be; errno's "Resource temporarily unavailable"
        // read as a shortage.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            log::debug!(
                "SOCKS: a client sent no request within {} s: closed",
                SOCKS_TIMEOUT.as_secs()
            );
            None
        }
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
            log::debug!("SOCKS: a client closed before its request");
            None
        }
        // The peer and the listener named: a stray client (a browser's HTTP to the SOCKS
        // port) was otherwise a line that said which of neither.
        Err(e) => {
            let at = tcp
                .local_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string());
            log::warn!("SOCKS: client {} on {at}: {e}", peer(&tcp));
            None
        }
    }
}

impl Open {
    /// The tunnel, once the server has opened the channel; a SOCKS client is told either way.
    fn finish(mut self, channel: Result<ssh2::Channel, ssh2::Error>) -> Option<Tunnel<TcpStream>> {
        match channel {
            Ok(channel) => {
                if let Some(request) = &self.socks {
                    request.answer(&mut self.tcp, None).ok()?;
                }
                log::debug!("forwarded connection open to {}", self.to);
                Some(Tunnel::over(self.tcp, channel, self.about))
            }
            Err(e) => {
                // ssh2's Display adds its code (`[Session(-21)]`), which tells a user nothing.
                log::warn!("forward to {}: {}", self.to, e.message());
                if let Some(request) = &self.socks {
                    let _ = request.answer(&mut self.tcp, Some(socks::GENERAL_FAILURE));
                }
                None
            }
        }
    }
}

impl Tunnel<TcpStream> {
    /// A tunnel between a TCP connection and a channel, both made non-blocking.
    fn over(tcp: TcpStream, channel: ssh2::Channel, about: String) -> Self {
        let _ = tcp.set_nonblocking(true);
        let _ = tcp.set_nodelay(true);
        Tunnel {
            about,
            ..Tunnel::new(tcp, channel)
        }
    }
}

impl<S: Local> Tunnel<S> {
    fn new(local: S, channel: ssh2::Channel) -> Self {
        Tunnel {
            window: Window::new(&channel),
            local,
            channel,
            up: Vec::new(),
            down: Vec::new(),
            client_eof: false,
            local_idle: false,
            eof_sent: false,
            server_eof: false,
            closed: false,
            about: String::new(),
        }
    }

    /// What the local side is waited for: to read, unless after its EOF (always readable:
    /// the poll never slept) or while what it sent waits for the channel; to write, while
    /// the server's bytes wait for it to take them.
    fn interest(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        let mut flags = PollFlags::empty();
        if !self.client_eof && self.up.is_empty() {
            flags |= PollFlags::POLLIN;
        }
        if !self.down.is_empty() {
            flags |= PollFlags::POLLOUT;
        }
        (!flags.is_empty()).then(|| (self.local.as_fd(), flags))
    }

    /// Whether libssh2 holds something for this tunnel that no poll tells of: the server's
    /// bytes or EOF, or a window it widened for bytes that wait, taken off the socket while
    /// another call read it.
    fn held(&self) -> bool {
        let incoming = self.down.is_empty()
            && (self.channel.read_window().available > 0
                || (self.channel.eof() && !self.server_eof));
        incoming || (!self.up.is_empty() && self.channel.write_window().remaining > 0)
    }

    /// Whether everything the local side sent is passed on: all it had sent when last read,
    /// or all of it and its EOF.
    fn flushed(&self) -> bool {
        self.up.is_empty()
            && if self.client_eof {
                self.eof_sent
            } else {
                self.local_idle
            }
    }

    /// Moves what can move without blocking; returns what did, [`Moved::Server`] only for
    /// what the server sent.
    fn pump(&mut self, buf: &mut [u8]) -> Moved {
        let mut progress = Moved::Nothing;
        let mut written = 0;
        // An end reached (EOF sent, the tunnel closed) is a change the loops must look at
        // before sleeping: not counted, a relay slept out its grace (every -J run ended 1 s
        // late a hop).
        let ends_before = (self.eof_sent, self.closed);
        if self.up.is_empty() && !self.client_eof {
            self.local_idle = false;
            match self.local.read(buf) {
                Ok(0) => {
                    self.client_eof = true;
                    progress = Moved::Local;
                }
                Ok(n) => {
                    self.up.extend_from_slice(&buf[..n]);
                    progress = Moved::Local;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.local_idle = true,
                Err(_) => self.closed = true,
            }
        }
        if !self.up.is_empty() {
            match self.channel.write(&self.up) {
                Ok(n) => {
                    self.up.drain(..n);
                    written = n;
                    progress = progress.max(Moved::Local);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.closed = true,
            }
        }
        if self.client_eof && self.up.is_empty() && !self.eof_sent {
            match self.channel.send_eof() {
                Ok(()) => self.eof_sent = true,
                Err(e) if e.code() == EAGAIN => {}
                Err(_) => self.eof_sent = true,
            }
        }
        if self.down.is_empty() {
            match self.channel.read(buf) {
                Ok(0) if self.channel.eof() => {
                    if !self.server_eof {
                        self.server_eof = true;
                        self.local.shutdown_write();
                        progress = Moved::Server;
                    }
                    if self.client_eof {
                        self.closed = true;
                    }
                }
                Ok(0) => {}
                Ok(n) => {
                    self.down.extend_from_slice(&buf[..n]);
                    progress = Moved::Server;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.closed = true,
            }
        }
        if !self.down.is_empty() {
            match self.local.write(&self.down) {
                Ok(n) => {
                    self.down.drain(..n);
                    progress = progress.max(Moved::Local);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.closed = true,
            }
        }
        if self.window.widened(&self.channel, written) {
            progress = Moved::Server;
        }
        if (self.eof_sent, self.closed) != ends_before {
            progress = progress.max(Moved::Local);
        }
        progress
    }
}

#[cfg(test)]
mod tests {
    use super::forward_listeners;

    fn listened(bind: Option<&str>, gateway_ports: bool) -> Vec<String> {
        let listeners = forward_listeners(bind, 0, gateway_ports).unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        listeners
            .iter()
            .map(|l| {
                let addr = l.local_addr().unwrap();
                assert_eq!(addr.port(), port, "one port on every address");
                addr.ip().to_string()
            })
            .collect()
    }

    #[test]
    fn listeners_are_those_ssh_opens_for_each_bind_address() {
        assert_eq!(listened(None, false), ["127.0.0.1", "::1"]);
        assert_eq!(listened(Some("localhost"), false), ["127.0.0.1", "::1"]);
        assert_eq!(listened(None, true), ["0.0.0.0", "::"]);
        assert_eq!(listened(Some("*"), false), ["0.0.0.0", "::"]);
        assert_eq!(listened(Some(""), false), ["0.0.0.0", "::"]);
        assert_eq!(listened(Some("127.0.0.2"), true), ["127.0.0.2"]);
        assert_eq!(listened(Some("::1"), false), ["::1"]);
    }

    #[test]
    fn an_address_taken_is_left_out_unless_none_can_listen() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let only_v6 = forward_listeners(None, port, false).unwrap();
        assert_eq!(only_v6.len(), 1);
        assert!(only_v6[0].local_addr().unwrap().is_ipv6());
        let e = forward_listeners(None, port, false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    }
}
