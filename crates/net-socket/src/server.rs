//! The server: configuration, binding, threads, shutdown and counters.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Poll, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::Error;
use crate::echo::Echo;
use crate::handler::{ConnId, Service};
use crate::worker::{WAKER, Worker};

/// Configures and binds a [`Server`]. Accepted connections have `TCP_NODELAY` set: a handler's
/// output goes out whole at the end of each turn, and Nagle's wait would only delay answers.
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    addrs: Vec<SocketAddr>,
    pub(crate) config: Config,
}

/// Limits shared by every thread of a server.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) threads: usize,
    pub(crate) max_connections: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_pending_output: usize,
    pub(crate) shutdown_timeout: Duration,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            addrs: Vec::new(),
            config: Config {
                threads: std::thread::available_parallelism().map_or(1, usize::from),
                max_connections: 10_000,
                idle_timeout: None,
                max_pending_output: 1 << 20,
                shutdown_timeout: Duration::from_secs(30),
            },
        }
    }
}

impl ServerBuilder {
    /// Starts configuring a server with the defaults.
    #[must_use]
    pub fn new() -> Self {
        ServerBuilder::default()
    }

    /// Adds an address to listen on (IPv4 or IPv6; port 0 picks a free port). An IPv6
    /// address takes IPv6 clients only (`[::]` too, as nginx's `listen [::]`): add
    /// `0.0.0.0:P` beside `[::]:P` for both.
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addrs.push(addr);
        self
    }

    /// Event-loop threads, each accepting on its own listener (default: available cores).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.config.threads = threads.max(1);
        self
    }

    /// Connections open at once across all threads (default 10,000). Past it, the loop that
    /// accepts closes one of its connections whose handler says it is idle
    /// ([`Handler::is_idle`](crate::Handler::is_idle)) to let the newcomer in, as nginx
    /// lets an idle keep-alive connection go; with none, the newcomer is closed at once. [`build`](Self::build) raises the process's soft open-file limit
    /// towards two descriptors per connection, up to the hard limit, and warns if that falls
    /// short.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// Closes a connection after this long without reading or writing a byte (default: never).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = Some(timeout);
        self
    }

    /// Output bytes queued for one connection above which the server stops reading from it
    /// until it drains (default 1 MiB). A connection to which other connections' messages
    /// wait unwritten past this limit is closed, so a client that never reads cannot grow the
    /// server's memory; its own streamed output does not count there. Size it for the
    /// largest burst sent to one connection at once.
    #[must_use]
    pub fn max_pending_output(mut self, bytes: usize) -> Self {
        self.config.max_pending_output = bytes.max(1);
        self
    }

    /// How long a graceful shutdown may spend flushing before closing what is left
    /// (default 30 s; `Duration::MAX` for as long as it takes).
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        // A century is "no limit", and an Instant can be moved that far without overflow.
        self.config.shutdown_timeout = timeout.min(Duration::from_secs(100 * 365 * 86_400));
        self
    }

    /// Binds every address on every thread; the server starts serving with [`Server::run`].
    ///
    /// A closure as the service names its argument's type, `|_: &ConnInfo| MyHandler`:
    /// Rust infers a closure good for any lifetime only from a bound that asks for one, which
    /// the `Service` trait cannot give it, and `|_| MyHandler` fails with "implementation of
    /// `FnOnce` is not general enough".
    ///
    /// # Errors
    /// [`Error::AddrInUse`] when another socket listens on an address, [`Error::Bind`] for other
    /// bind failures, [`Error::EventLoop`] when the poller cannot be created.
    pub fn build<S: Service>(self, service: S) -> Result<Server<S>, Error> {
        if self.addrs.is_empty() {
            return Err(Error::NoBindAddress);
        }
        let threads = self.config.threads;
        let mut listeners: Vec<Vec<TcpListener>> = (0..threads).map(|_| Vec::new()).collect();
        let mut local_addrs = Vec::with_capacity(self.addrs.len());
        for &addr in &self.addrs {
            refuse_if_taken(addr)?;
            let first = listen(addr)?;
            let real = first
                .local_addr()
                .map_err(|source| Error::Bind { addr, source })?;
            local_addrs.push(real);
            listeners[0].push(first);
            for per_thread in listeners.iter_mut().skip(1) {
                per_thread.push(listen(real)?);
            }
        }

        raise_open_files_limit(self.config.max_connections);
        let mut polls = Vec::with_capacity(threads);
        let mut remotes = Vec::with_capacity(threads);
        let mut inboxes = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new().map_err(Error::EventLoop)?;
            let waker = Waker::new(poll.registry(), WAKER).map_err(Error::EventLoop)?;
            let (tx, rx) = mpsc::channel();
            polls.push(poll);
            remotes.push(Remote { tx, waker });
            inboxes.push(rx);
        }
        Ok(Server {
            service: Arc::new(service),
            shared: Arc::new(Shared {
                config: self.config,
                shutdown: AtomicBool::new(false),
                abort: AtomicBool::new(false),
                counters: remotes.iter().map(|_| Counters::default()).collect(),
                remotes,
            }),
            local_addrs,
            workers: polls
                .into_iter()
                .zip(listeners)
                .zip(inboxes)
                .map(|((p, l), i)| (p, l, i))
                .collect(),
        })
    }
}

/// Descriptors a server may hold per connection: its socket and a file it is sending.
const FILES_PER_CONNECTION: u64 = 2;
/// Descriptors besides connections: listeners, pollers, wakers, stdio, logs.
const SPARE_FILES: u64 = 64;

/// Raises the soft open-file limit (often 1024 while the hard one is far higher) so that
/// `max_connections` can really be open, as Go's runtime does at start and nginx does with
/// `worker_rlimit_nofile`; past the limit, accepts fail with EMFILE and clients wait.
/// Only ever raises, never past the hard limit; warns when that leaves less than one
/// descriptor per connection.
fn raise_open_files_limit(max_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let connections = max_connections as u64;
    let wanted = connections
        .saturating_mul(FILES_PER_CONNECTION)
        .saturating_add(SPARE_FILES);
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= wanted {
        return;
    }
    let raised = wanted.min(hard);
    if raised > soft {
        match setrlimit(Resource::RLIMIT_NOFILE, raised, hard) {
            Ok(()) => log::debug!("open-file limit raised from {soft} to {raised}"),
            Err(e) => {
                log::warn!("cannot raise the open-file limit from {soft}: {e}");
                return;
            }
        }
    }
    if raised < connections.saturating_add(SPARE_FILES) {
        log::warn!(
            "the open-file limit ({raised}) is below {max_connections} connections: \
             connections past it wait; raise it with `ulimit -n` or lower max_connections"
        );
    }
}

/// SO_REUSEPORT lets a second server bind a port we use without an error; a plain bind first
/// turns that into the "address in use" users expect.
fn refuse_if_taken(addr: SocketAddr) -> Result<(), Error> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = || -> io::Result<()> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() {
            // As `listen` binds it: a dual-stack probe would collide with our own 0.0.0.0:P.
            socket.set_only_v6(true)?;
        }
        // As the listener: without it the connections of a server just stopped (TIME_WAIT,
        // a minute) would keep a restart from binding; a listening socket still collides.
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())
    };
    probe().map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => Error::AddrInUse { addr },
        _ => Error::Bind { addr, source },
    })
}

fn listen(addr: SocketAddr) -> Result<TcpListener, Error> {
    let bind = || -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() {
            // So that [::]:P and 0.0.0.0:P can both be bound, as the user asked.
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(TcpListener::from_std(socket.into()))
    };
    bind().map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => Error::AddrInUse { addr },
        _ => Error::Bind { addr, source },
    })
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server<S: Service> {
    service: Arc<S>,
    shared: Arc<Shared>,
    local_addrs: Vec<SocketAddr>,
    workers: Vec<(Poll, Vec<TcpListener>, Receiver<Message>)>,
}

impl<S: Service> std::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addrs", &self.local_addrs)
            .field("event_loops", &self.workers.len())
            .finish_non_exhaustive()
    }
}

// On `Server<Echo>` alone so that `Server::builder()` names no type, as `HashMap::new()`:
// the service is chosen by `build`.
impl Server<Echo> {
    /// A [`ServerBuilder`], as `ServerBuilder::new()`.
    #[must_use]
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }
}

impl<S: Service> Server<S> {
    /// The addresses really bound, in the order given (the real port where 0 was asked).
    #[must_use]
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The first address really bound (the real port where 0 was asked): the only one
    /// unless several were given to [`ServerBuilder::bind`].
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        // `build` refuses a server with no address, so there is a first.
        self.local_addrs[0]
    }

    /// A handle that stops the server from any thread.
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Live counters of the server.
    #[must_use]
    pub fn stats(&self) -> Stats {
        Stats {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves until [`ShutdownHandle::shutdown`], then flushes and closes every connection
    /// (within the shutdown timeout) and returns.
    ///
    /// # Errors
    /// [`Error::Thread`] when a loop's thread cannot be started, [`Error::EventLoop`] when
    /// a poller fails.
    pub fn run(self) -> Result<(), Error> {
        self.run_ready(|| {})
    }

    /// As [`run`](Self::run), calling `ready` once every event loop has started: where a
    /// program says it is listening (a supervisor takes that line for "up", and a server
    /// whose threads could not start should never print it).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_ready(self, ready: impl FnOnce()) -> Result<(), Error> {
        let threads = self.workers.len();
        let mut workers = self.workers.into_iter().enumerate();
        let Some((_, first)) = workers.next() else {
            return Ok(());
        };
        let mut handles = Vec::new();
        for (index, (poll, listeners, inbox)) in workers {
            let (service, shared) = (Arc::clone(&self.service), Arc::clone(&self.shared));
            let handle = std::thread::Builder::new()
                .name(format!("netkit-loop-{index}"))
                .spawn(move || Worker::new(index, poll, listeners, inbox, &service, &shared).run())
                .map_err(|source| {
                    self.shared.stop();
                    Error::Thread {
                        index: index + 1,
                        threads,
                        source,
                    }
                })?;
            handles.push(handle);
        }
        ready();
        let (poll, listeners, inbox) = first;
        let mut result = Worker::new(0, poll, listeners, inbox, &self.service, &self.shared).run();
        if result.is_err() {
            self.shared.stop();
        }
        for handle in handles {
            let outcome = handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("event loop thread panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        result.map_err(Error::EventLoop)
    }
}

/// Stops a running server from any thread (cheap to clone).
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle").finish_non_exhaustive()
    }
}

impl ShutdownHandle {
    /// Starts the graceful shutdown: stop accepting, flush pending output, close, return.
    ///
    /// A connection whose output is flushed is half-closed, and what its peer still sends is
    /// read and dropped for up to 2 s before the close, so that a response in flight is not
    /// destroyed by a reset; `shutdown_timeout` bounds the whole shutdown.
    pub fn shutdown(&self) {
        self.shared.stop();
    }

    /// Ends the server at once, as when the shutdown timeout passes: every connection is
    /// closed, its handler told ([`CloseReason::ShutdownTimeout`](crate::CloseReason::ShutdownTimeout)), so that what they were
    /// doing is accounted for (an access log's line with the bytes that went), and
    /// [`Server::run`] returns.
    pub fn shutdown_now(&self) {
        self.shared.abort.store(true, Ordering::SeqCst);
        self.shared.stop();
    }
}

/// Live counters of a server (cheap to clone, readable from any thread).
#[derive(Clone)]
pub struct Stats {
    shared: Arc<Shared>,
}

/// Shows the counters at the moment it is formatted.
impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Stats").field(&self.snapshot()).finish()
    }
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Connections open now.
    pub open_connections: u64,
    /// Connections accepted since the start, the refused ones excluded.
    pub total_connections: u64,
    /// Connections closed at once because `max_connections` were open.
    pub refused_connections: u64,
    /// Bytes read from all connections.
    pub bytes_in: u64,
    /// Bytes written to all connections.
    pub bytes_out: u64,
    /// Output bytes held in memory for all connections now (file ranges excluded).
    pub buffered_output: u64,
}

impl Stats {
    /// Reads the counters.
    #[must_use]
    pub fn snapshot(&self) -> StatsSnapshot {
        let sum = |field: fn(&Counters) -> &AtomicU64| self.shared.sum(field);
        StatsSnapshot {
            open_connections: sum(|c| &c.open),
            total_connections: sum(|c| &c.total),
            refused_connections: sum(|c| &c.refused),
            bytes_in: sum(|c| &c.bytes_in),
            bytes_out: sum(|c| &c.bytes_out),
            buffered_output: sum(|c| &c.buffered),
        }
    }
}

/// What the threads of one server share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) shutdown: AtomicBool,
    /// Set by [`ShutdownHandle::shutdown_now`]: the shutdown's deadline is now.
    pub(crate) abort: AtomicBool,
    pub(crate) remotes: Vec<Remote>,
    /// One set per event loop, each written by its loop alone.
    pub(crate) counters: Vec<Counters>,
}

impl Shared {
    /// One counter summed over the loops.
    pub(crate) fn sum(&self, field: fn(&Counters) -> &AtomicU64) -> u64 {
        self.counters
            .iter()
            .map(|c| field(c).load(Ordering::Relaxed))
            .sum()
    }

    fn stop(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for remote in &self.remotes {
            if let Err(e) = remote.waker.wake() {
                log::warn!("cannot wake an event loop for shutdown: {e}");
            }
        }
    }
}

/// The way into another thread's event loop.
pub(crate) struct Remote {
    pub(crate) tx: Sender<Message>,
    pub(crate) waker: Waker,
}

/// Bytes for a connection, through its loop's channel; shared by every connection a
/// message is for (a chat line to 120 members was 120 copies waiting).
pub(crate) type Message = (ConnId, std::sync::Arc<[u8]>);

/// A loop's counters, on cache lines of their own: shared by the loops, the counters of a
/// read and a write moved one line between the cores on every message.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub(crate) open: AtomicU64,
    pub(crate) total: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) buffered: AtomicU64,
}
