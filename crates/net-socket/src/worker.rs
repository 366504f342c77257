//! One event loop: a `mio::Poll`, its listeners and the connections it accepted.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::handler::{
    Close, CloseReason, ConnId, ConnInfo, Context, Handler, Service, TimerChange,
};
use crate::output::Output;
use crate::server::{Counters, Message, Shared};

pub(crate) const WAKER: Token = Token(usize::MAX);
/// Logs that a service or handler panicked, and that the panic was caught. The logger can
/// panic as well (env_logger's timestamp did with a clock past 9999, the same panic the handler
/// had hit writing its access-log line): unwinding from here ended the loop, and with it the
/// server; the report is lost instead.
fn report_panic(what: std::fmt::Arguments<'_>) {
    let _ = panic::catch_unwind(AssertUnwindSafe(|| log::error!("{what}")));
}

/// Listener `i` has token `LISTENER_BASE - i`; connections use their slab key.
const LISTENER_BASE: usize = usize::MAX - 1;
const READ_BUFFER: usize = 64 * 1024;
/// Reads per connection per wake-up before the loop serves others (fairness). With 16 (1 MiB
/// a turn), four clients streaming their echo kept an interactive one ~7 ms a round trip on
/// one loop; with 4, ~2 ms, as tokio's echo, and the streams as fast.
const READS_PER_TURN: usize = 4;
/// How often idle connections and timers are checked.
const TICK: Duration = Duration::from_millis(100);
/// After an accept error such as EMFILE, retrying at once would spin the CPU.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);
/// How long a closing connection may keep sending before it is cut off, and how long it may
/// be silent meanwhile: nginx's `lingering_time` and `lingering_timeout`. A client that sends
/// a whole upload before it reads (python's http.client, most SDKs) reads the answer refusing
/// it only if the upload is taken until it ends; with 2 s, a 3 MB upload at 1 MB/s got a reset.
const LINGER: Duration = Duration::from_secs(30);
const LINGER_SILENCE: Duration = Duration::from_secs(5);
/// Once the server is shutting down, it waits this long at most for a closing connection.
const SHUTDOWN_LINGER: Duration = Duration::from_secs(2);
/// Clients refused at `max_connections`, and failed accepts, are warned of at most this
/// often, with their count: at `--threads 16` a pause after each failed accept wrote 80
/// lines a second.
const WARNED_EVERY: Duration = Duration::from_secs(1);

/// Events of one kind warned of at most once per [`WARNED_EVERY`], with their count.
#[derive(Default)]
struct Tally {
    /// Events since the last warning.
    unwarned: u64,
    /// When they were last warned of.
    warned: Option<Instant>,
}

impl Tally {
    /// The count to warn of now, if any and if the last warning is old enough.
    fn due(&mut self, now: Instant) -> Option<u64> {
        if self.unwarned == 0
            || self
                .warned
                .is_some_and(|at| now.duration_since(at) < WARNED_EVERY)
        {
            return None;
        }
        self.warned = Some(now);
        Some(std::mem::take(&mut self.unwarned))
    }
}

struct Conn<H> {
    stream: TcpStream,
    handler: H,
    output: Output,
    id: ConnId,
    peer: SocketAddr,
    last_active: Instant,
    timer: Option<Instant>,
    /// Reading is paused until the output drains under the limit.
    paused: bool,
    /// Reading is paused until the handler resumes it (`Context::pause_reading`).
    held: bool,
    /// `on_drain` is due once the loop comes back to this connection.
    drained: bool,
    /// Output is left that a write stopped at [`PASS_BUDGET`](crate::output::PASS_BUDGET)
    /// did not try to send: it goes once the loop comes back to this connection.
    write_more: bool,
    /// The connection is in `to_flush`: output waits for the end of this turn's events.
    flush_queued: bool,
    /// The connection is in `ready_again`, once however many reasons a turn finds: listed
    /// once per reason, a streaming connection gained entries every turn (each read 16
    /// buffers), and after seconds one turn took 100-600 ms, the other clients waiting.
    again: bool,
    /// The peer has not sent EOF yet.
    read_open: bool,
    close_after_flush: bool,
    /// Our side is shut down; reads are discarded until the peer closes or this passes.
    lingering: Option<Instant>,
    /// This connection's share of the server's `buffered_output` counter.
    reported_buffered: u64,
    /// What other connections sent it that may still be queued: counted up by each send and
    /// down by every byte written, so that the handler's own output (a response streamed
    /// under the limit) does not count against its peers' messages.
    from_sends: u64,
    /// Why it is closing, once that is known.
    close_reason: Option<CloseReason>,
}

pub(crate) struct Worker<S: Service> {
    index: usize,
    poll: Poll,
    listeners: Vec<TcpListener>,
    inbox: Receiver<Message>,
    service: Arc<S>,
    shared: Arc<Shared>,
    conns: Slab<Conn<S::Handler>>,
    read_buf: Box<[u8]>,
    woken: Vec<bool>,
    ready_again: Vec<usize>,
    /// Connections with output produced by this turn's reads, written after every ready
    /// connection has been read (see `read`).
    to_flush: Vec<usize>,
    scratch: Vec<usize>,
    next_serial: u64,
    accept_paused_until: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    next_tick: Instant,
    /// The earliest timer due before `next_tick`, which the loop wakes for.
    next_timer: Option<Instant>,
    /// Clients refused at `max_connections`.
    refusals: Tally,
    /// Accepts that failed (EMFILE with no idle connection to close, ENOBUFS, ...), and the
    /// last one's error.
    accept_failures: (Tally, Option<io::Error>),
    /// Idle connections closed to make room for newcomers, and the last one's reason.
    made_room: (Tally, &'static str),
}

impl<S: Service> Worker<S> {
    pub(crate) fn new(
        index: usize,
        poll: Poll,
        listeners: Vec<TcpListener>,
        inbox: Receiver<Message>,
        service: &Arc<S>,
        shared: &Arc<Shared>,
    ) -> Self {
        Worker {
            index,
            poll,
            listeners,
            inbox,
            service: Arc::clone(service),
            shared: Arc::clone(shared),
            conns: Slab::new(),
            read_buf: vec![0; READ_BUFFER].into_boxed_slice(),
            woken: vec![false; shared.remotes.len()],
            ready_again: Vec::new(),
            to_flush: Vec::new(),
            scratch: Vec::new(),
            next_serial: 0,
            accept_paused_until: None,
            shutdown_deadline: None,
            next_tick: Instant::now() + TICK,
            next_timer: None,
            refusals: Tally::default(),
            accept_failures: (Tally::default(), None),
            made_room: (Tally::default(), ""),
        }
    }

    pub(crate) fn run(mut self) -> io::Result<()> {
        for (i, listener) in self.listeners.iter_mut().enumerate() {
            self.poll.registry().register(
                listener,
                Token(LISTENER_BASE - i),
                Interest::READABLE,
            )?;
        }
        let mut events = Events::with_capacity(1024);
        loop {
            if self.shared.shutdown.load(Ordering::SeqCst) && self.shutdown_deadline.is_none() {
                self.begin_shutdown();
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() {
                    return Ok(());
                }
                let now = self.shared.abort.load(Ordering::SeqCst);
                if now || Instant::now() >= deadline {
                    log::warn!(
                        "{}: closing {} connections",
                        if now {
                            "stopping at once"
                        } else {
                            "shutdown deadline passed"
                        },
                        self.conns.len()
                    );
                    self.for_each_conn(|worker, key| {
                        worker.close_now(key, CloseReason::ShutdownTimeout);
                    });
                    return Ok(());
                }
            }

            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in &events {
                match event.token() {
                    WAKER => self.receive(),
                    Token(t) if t > LISTENER_BASE - self.listeners.len() => {
                        self.accept(LISTENER_BASE - t);
                    }
                    Token(key) => {
                        self.flush(key);
                        self.read(key, !event.is_read_closed());
                    }
                }
            }
            self.flush_queued();
            if !events.is_empty() {
                // Let whatever else waits for this core run before the next turn. When the
                // loops and the peers they serve share the cores (clients on the same host,
                // other busy threads), a loop that never blocks is switched out only at the
                // scheduler tick and holds its connections for up to two ticks: `perf sched`
                // showed 600 switches/s per loop and an 8 ms echo p99 at 50 connections on 2
                // cores (tokio, whose workers park often: 4.2 ms). Yielding each turn: ~1 ms,
                // the same throughput. It costs no CPU share (the scheduler keeps fairness by
                // runtime, a yield only moves this thread back in line) and is a no-op syscall
                // when nothing else is runnable.
                std::thread::yield_now();
            }
            let mut again = std::mem::take(&mut self.ready_again);
            // Unlisted before any resumes, so that the next list holds each key once even
            // when a closed connection's entry now names the newcomer with its key.
            for &key in &again {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.again = false;
                }
            }
            for &key in &again {
                self.resume(key);
            }
            again.clear();
            again.append(&mut self.ready_again);
            self.ready_again = again;
            let now = Instant::now();
            let timer_due = self.next_timer.is_some_and(|at| now >= at);
            if now >= self.next_tick || timer_due {
                if now >= self.next_tick {
                    self.next_tick = now + TICK;
                }
                self.next_timer = None;
                self.tick(now);
            }
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ready_again.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut wake = None::<Instant>;
        let mut consider = |at: Instant| wake = Some(wake.map_or(at, |w| w.min(at)));
        if !self.conns.is_empty() {
            consider(self.next_tick);
        }
        if let Some(at) = self.next_timer {
            consider(at);
        }
        if let Some(until) = self.accept_paused_until {
            consider(until);
        }
        if let Some(deadline) = self.shutdown_deadline {
            consider(deadline);
        }
        wake.map(|at| at.saturating_duration_since(now))
    }

    fn begin_shutdown(&mut self) {
        let now = Instant::now();
        self.shutdown_deadline = Some(now + self.shared.config.shutdown_timeout);
        // Dropping the listeners closes them: new clients are refused from now on.
        self.listeners.clear();
        self.for_each_conn(|worker, key| {
            let Some(conn) = worker.conns.get_mut(key) else {
                return;
            };
            if let Some(until) = conn.lingering {
                conn.lingering = Some(until.min(now + SHUTDOWN_LINGER));
                return;
            }
            worker.callback(key, |h, ctx| h.on_shutdown(ctx));
            worker.flush(key);
            worker.deliver();
        });
        // Said only where some are left: a server whose other loops could not start stopped
        // every loop, each with a line that told nothing.
        if !self.conns.is_empty() {
            log::info!(
                "shutting down: {} connections left on loop {}",
                self.conns.len(),
                self.index
            );
        }
    }

    fn for_each_conn(&mut self, mut f: impl FnMut(&mut Self, usize)) {
        let mut keys = std::mem::take(&mut self.scratch);
        keys.clear();
        keys.extend(self.conns.iter().map(|(key, _)| key));
        for &key in &keys {
            f(self, key);
        }
        self.scratch = keys;
    }

    fn accept(&mut self, index: usize) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) => {}
                // Out of descriptors: an idle keep-alive connection gives way to the
                // newcomer, as at max_connections (nginx drains its reusable connections
                // too); a client waited 60 s behind 50 idle ones at `ulimit -n 64`.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(code) if code == nix::libc::EMFILE || code == nix::libc::ENFILE
                    ) && self.close_idle("out of file descriptors") => {}
                Err(e) => {
                    let now = Instant::now();
                    self.accept_failures.0.unwarned += 1;
                    self.accept_failures.1 = Some(e);
                    self.warn_of_tallies(now);
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        if self.shared.sum(|c| &c.open) >= self.shared.config.max_connections as u64
            && !self.close_idle("max_connections open")
        {
            self.shared.counters[self.index]
                .refused
                .fetch_add(1, Ordering::Relaxed);
            self.refusals.unwarned += 1;
            self.warn_of_tallies(Instant::now());
            self.refuse(stream, peer);
            return;
        }
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("TCP_NODELAY on {peer}: {e}");
        }
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(e) => {
                log::debug!("dropping {peer}: {e}");
                return;
            }
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("cannot watch {peer}: {e}");
            return;
        }
        self.next_serial += 1;
        let id = ConnId {
            worker: self.index,
            key,
            serial: self.next_serial,
        };
        let info = ConnInfo { id, peer, local };
        // As in a callback: a panic costs the newcomer, not the loop.
        let Ok(handler) = panic::catch_unwind(AssertUnwindSafe(|| self.service.connect(&info)))
        else {
            report_panic(format_args!(
                "the service panicked creating the handler for {peer}; closing it"
            ));
            // Registered above; dropping the stream deregisters it.
            return;
        };
        entry.insert(Conn {
            stream,
            handler,
            output: Output::default(),
            id,
            peer,
            last_active: Instant::now(),
            timer: None,
            paused: false,
            held: false,
            drained: false,
            write_more: false,
            flush_queued: false,
            again: false,
            read_open: true,
            close_after_flush: false,
            lingering: None,
            from_sends: 0,
            close_reason: None,
            reported_buffered: 0,
        });
        let counters = &self.shared.counters[self.index];
        counters.open.fetch_add(1, Ordering::Relaxed);
        counters.total.fetch_add(1, Ordering::Relaxed);
        self.callback(key, |h, ctx| h.on_connect(ctx));
        self.flush(key);
        self.deliver();
    }

    /// Tells a client refused at `max_connections` why, as far as its fresh socket takes it
    /// at once. What it sent already is read first: closing with unread input resets the
    /// connection, which would destroy the answer before the client reads it.
    fn refuse(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let refusal = self.service.refusal();
        if refusal.is_empty() {
            return;
        }
        let received = stream.read(&mut self.read_buf).unwrap_or(0);
        let sent = stream.write(refusal).unwrap_or(0);
        if sent > 0 {
            let _ = stream.shutdown(Shutdown::Write);
        }
        let received = &self.read_buf[..received];
        // As in `admit`: a panic costs this client, not the loop.
        if panic::catch_unwind(AssertUnwindSafe(|| {
            self.service.on_refused(peer, received, sent);
        }))
        .is_err()
        {
            report_panic(format_args!(
                "the service panicked hearing of the refusal of {peer}"
            ));
        }
    }

    /// Warns of the clients refused at `max_connections` and of failed accepts, and tells of
    /// the idle connections closed to make room, at most once a second each: a line each came
    /// to 35,000 lines a minute under load (refusals), and stayed when the access log (which
    /// has each refusal's 503) was silenced; 42,700 in 24 s for the closed idle ones.
    fn warn_of_tallies(&mut self, now: Instant) {
        if let (Some(n), why) = (self.made_room.0.due(now), self.made_room.1) {
            log::info!(
                "closed {n} idle {} to make room: {why}",
                if n == 1 { "connection" } else { "connections" }
            );
        }
        if let Some(n) = self.refusals.due(now) {
            log::warn!(
                "refused {n} {}: max_connections ({}) open",
                if n == 1 { "connection" } else { "connections" },
                self.shared.config.max_connections
            );
        }
        if let (Some(n), Some(e)) = (self.accept_failures.0.due(now), &self.accept_failures.1) {
            log::warn!(
                "accept failed{}: {e}; accepts paused for {ACCEPT_PAUSE:?} each time",
                if n == 1 {
                    String::new()
                } else {
                    format!(" {n} times")
                }
            );
        }
    }

    /// Runs one handler callback with a context for connection `key`.
    fn callback(&mut self, key: usize, f: impl FnOnce(&mut S::Handler, &mut Context<'_>)) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut close = Close::No;
        let mut timer = TimerChange::Keep;
        let mut reading = None;
        let writable = !conn.close_after_flush && conn.lingering.is_none();
        let mut ctx = Context {
            id: conn.id,
            peer: conn.peer,
            output: &mut conn.output,
            socket: writable.then_some(&conn.stream),
            written: 0,
            remotes: &self.shared.remotes,
            sent_to: &mut self.woken,
            close: &mut close,
            timer: &mut timer,
            reading: &mut reading,
            max_pending_output: self.shared.config.max_pending_output,
            close_reason: conn.close_reason,
        };
        // A panicking handler costs its own connection only, as a panicking tokio task does:
        // unwinding out of here would end the loop and every connection on it.
        let panicked = panic::catch_unwind(AssertUnwindSafe(|| f(&mut conn.handler, &mut ctx)));
        let written = ctx.written;
        if panicked.is_err() {
            report_panic(format_args!(
                "the handler of the connection from {} panicked; closing it",
                conn.peer
            ));
            close = Close::Now;
            conn.close_reason.get_or_insert(CloseReason::Panicked);
        }
        sent(conn, &self.shared.counters[self.index], written);
        match close {
            Close::No => {}
            Close::AfterFlush => conn.close_after_flush = true,
            Close::Now => {
                // With nothing left to write and nothing more to read, the next flush closes.
                conn.output.discard();
                // Nor is the handler asked for more (`on_drain`) after aborting.
                conn.paused = false;
                conn.drained = false;
                conn.close_after_flush = true;
                conn.read_open = false;
            }
        }
        if conn.output.pending() > self.shared.config.max_pending_output as u64 {
            conn.paused = true;
        }
        match reading {
            Some(false) => conn.held = true,
            // Input that came while held raised no new edge: read it on the next turn.
            Some(true) if std::mem::take(&mut conn.held) => {
                come_back(&mut self.ready_again, conn, key);
            }
            _ => {}
        }
        match timer {
            TimerChange::Keep => {}
            TimerChange::Set(after) => {
                conn.timer = Instant::now().checked_add(after);
                let at = conn.timer;
                self.note_timer(at);
            }
            TimerChange::Clear => conn.timer = None,
        }
    }

    /// Reads what the connection has (up to `READS_PER_TURN` buffers) and hands it to the
    /// handler. The output is written once every ready connection of this turn has been read:
    /// writing at once woke each client while the loop still had others to read, and with more
    /// runnable threads than cores the loop lost its core in the middle of the batch; 50
    /// connections then saw p99 latencies of 2-6 ms (3x tokio) and per-connection round trips
    /// anywhere from 2,500 to 30,000 in 3 s. Written per turn, they are fair (5,500-8,000).
    /// Those figures came from a client with a thread per connection; with the event-loop
    /// client of `cargo xtask bench` both ways measure the same, so per turn stays for fairness.
    ///
    /// With `short_read_drains`, a read that does not fill the buffer is taken to have drained
    /// the socket, saving the read that would return `WouldBlock` (as tokio does on epoll):
    /// data arriving later raises a new edge. It is only sound when the event did not report
    /// the peer's EOF, which would raise no new edge.
    fn read(&mut self, key: usize, short_read_drains: bool) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let discarding = conn.lingering.is_some();
            if !conn.read_open
                || (!discarding && (conn.paused || conn.held || conn.close_after_flush))
            {
                return;
            }
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    conn.read_open = false;
                    if discarding {
                        self.close_now(key, CloseReason::Done);
                    } else {
                        self.callback(key, |h, ctx| h.on_eof(ctx));
                        self.flush(key);
                        self.deliver();
                    }
                    return;
                }
                Ok(n) => {
                    self.shared.counters[self.index]
                        .bytes_in
                        .fetch_add(n as u64, Ordering::Relaxed);
                    conn.last_active = Instant::now();
                    if discarding {
                        continue;
                    }
                    if !std::mem::replace(&mut conn.flush_queued, true) {
                        self.to_flush.push(key);
                    }
                    let buf = std::mem::take(&mut self.read_buf);
                    self.callback(key, |h, ctx| h.on_data(ctx, &buf[..n]));
                    self.read_buf = buf;
                    self.deliver();
                    if short_read_drains && n < self.read_buf.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("read from {}: {e}", conn.peer);
                    self.close_now(key, CloseReason::Lost);
                    return;
                }
            }
        }
        // Still readable: come back after serving the others.
        if let Some(conn) = self.conns.get_mut(key) {
            come_back(&mut self.ready_again, conn, key);
        }
    }

    fn flush_queued(&mut self) {
        let mut queued = std::mem::take(&mut self.to_flush);
        for &key in &queued {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.flush_queued = false;
                self.flush(key);
            }
        }
        queued.clear();
        self.to_flush = queued;
    }

    /// Writes what is pending; closes, lingers or resumes reading as the state asks.
    fn flush(&mut self, key: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let written = match conn.output.write_to(&mut conn.stream) {
                Ok(written) => written,
                Err(e) => {
                    log::debug!("write to {}: {e}", conn.peer);
                    // A file range that ends early: the handler is told, so that it can say
                    // which (nginx logs an alert naming the file).
                    let reason = if e.kind() == io::ErrorKind::UnexpectedEof {
                        CloseReason::FileShrank
                    } else {
                        CloseReason::Lost
                    };
                    self.close_now(key, reason);
                    return;
                }
            };
            sent(conn, &self.shared.counters[self.index], written);
            // A socket still writable raises no new edge: the rest goes on the next turn.
            if written >= crate::output::PASS_BUDGET && !conn.output.is_empty() {
                conn.write_more = true;
                come_back(&mut self.ready_again, conn, key);
            }
            if !conn.output.take_mark() {
                break;
            }
            let was_empty = conn.output.is_empty();
            self.callback(key, |h, ctx| h.on_sent(ctx));
            // Written now only what the callback queued behind an empty queue: a socket that
            // was full raises its WRITABLE edge for the rest.
            if !(was_empty && self.conns.get(key).is_some_and(|c| !c.output.is_empty())) {
                break;
            }
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let buffered = conn.output.buffered();
        let counter = &self.shared.counters[self.index].buffered;
        if buffered > conn.reported_buffered {
            counter.fetch_add(buffered - conn.reported_buffered, Ordering::Relaxed);
        } else if buffered < conn.reported_buffered {
            counter.fetch_sub(conn.reported_buffered - buffered, Ordering::Relaxed);
        }
        conn.reported_buffered = buffered;

        // A handler waiting for the drain (streaming under `max_pending_output`) is asked for
        // more, in `resume`, before a close after the flush: closing as soon as the queue
        // emptied cut its response short.
        if conn.paused && conn.output.pending() <= self.shared.config.max_pending_output as u64 {
            conn.paused = false;
            conn.drained = true;
            come_back(&mut self.ready_again, conn, key);
        } else if conn.output.is_empty()
            && conn.close_after_flush
            && conn.lingering.is_none()
            && !conn.drained
        {
            if !conn.read_open {
                self.close_now(key, CloseReason::Done);
                return;
            }
            // Closing with unread input would reset the connection and could destroy the
            // last response in flight; shut our side and drain theirs for a while instead.
            if conn.stream.shutdown(Shutdown::Write).is_err() {
                self.close_now(key, CloseReason::Lost);
                return;
            }
            let now = Instant::now();
            let within = if self.shutdown_deadline.is_some() {
                SHUTDOWN_LINGER
            } else {
                LINGER
            };
            conn.lingering = Some(now + within);
            conn.close_reason.get_or_insert(CloseReason::Done);
            conn.last_active = now;
            come_back(&mut self.ready_again, conn, key);
            // Done as far as the handler can tell: it hears of the close now, not once the
            // peer stops sending (up to LINGER later), so a chat member closed for a long
            // line leaves the room at once.
            self.callback(key, |h, ctx| h.on_close(ctx));
            // What it wrote there cannot go out: our side is shut.
            if let Some(conn) = self.conns.get_mut(key) {
                conn.output.discard();
            }
            self.deliver();
        }
    }

    /// Comes back to a connection that was paused, or had more to read or to write.
    fn resume(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if std::mem::take(&mut conn.write_more) {
            self.flush(key);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if std::mem::take(&mut conn.drained) {
            self.callback(key, |h, ctx| h.on_drain(ctx));
            self.flush(key);
            self.deliver();
        }
        self.read(key, false);
        self.flush_queued();
    }

    /// Closes the connection of this loop that has waited longest while idle (see
    /// [`Handler::is_idle`]) to make room for a newcomer, logging `why`; false when there is
    /// none.
    fn close_idle(&mut self, why: &'static str) -> bool {
        let idle = self
            .conns
            .iter()
            .filter(|(_, conn)| {
                !conn.close_after_flush
                    && conn.lingering.is_none()
                    && conn.output.is_empty()
                    // A handler's panic here would end the loop, as in a callback.
                    && panic::catch_unwind(AssertUnwindSafe(|| conn.handler.is_idle()))
                        .unwrap_or(false)
            })
            .min_by_key(|(_, conn)| conn.last_active)
            .map(|(key, conn)| (key, conn.peer));
        let Some((key, peer)) = idle else {
            return false;
        };
        log::debug!("closing idle {peer} to make room: {why}");
        self.close_now(key, CloseReason::MadeRoom);
        self.made_room.0.unwarned += 1;
        self.made_room.1 = why;
        self.warn_of_tallies(Instant::now());
        true
    }

    /// Closes the connection for `reason`, unless it was closing for another already.
    fn close_now(&mut self, key: usize, reason: CloseReason) {
        // Writes to the closing connection itself are dropped with it below.
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.close_after_flush = true;
        conn.close_reason.get_or_insert(reason);
        if self
            .conns
            .get(key)
            .is_some_and(|conn| conn.lingering.is_none())
        {
            self.callback(key, |h, ctx| h.on_close(ctx));
        }
        let conn = self.conns.remove(key);
        let counters = &self.shared.counters[self.index];
        counters.open.fetch_sub(1, Ordering::Relaxed);
        counters
            .buffered
            .fetch_sub(conn.reported_buffered, Ordering::Relaxed);
        // Dropping the stream closes the socket, which also removes it from the poller; a
        // handler whose Drop panics costs nothing more than its connection.
        if panic::catch_unwind(AssertUnwindSafe(|| drop(conn))).is_err() {
            report_panic(format_args!("a connection's handler panicked when dropped"));
        }
        self.deliver();
    }

    /// Delivers what handlers sent to this loop's connections (in the channel's order, with
    /// what other loops sent before), and wakes the other loops sent to.
    fn deliver(&mut self) {
        while std::mem::take(&mut self.woken[self.index]) {
            self.take_inbox();
        }
        for (worker, woken) in self.woken.iter_mut().enumerate() {
            if std::mem::take(woken)
                && let Err(e) = self.shared.remotes[worker].waker.wake()
            {
                log::warn!("cannot wake event loop {worker}: {e}");
            }
        }
    }

    fn deliver_local(&mut self, to: ConnId, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(to.key) else {
            return;
        };
        if conn.id != to || conn.close_after_flush {
            return;
        }
        if conn.from_sends > self.shared.config.max_pending_output as u64 {
            log::warn!("closing {}: it does not read what is sent to it", conn.peer);
            self.close_now(to.key, CloseReason::NotReading);
            return;
        }
        conn.from_sends += bytes.len() as u64;
        conn.output.push_bytes(bytes);
        self.flush(to.key);
    }

    fn receive(&mut self) {
        self.take_inbox();
        self.deliver();
    }

    fn take_inbox(&mut self) {
        while let Ok((to, bytes)) = self.inbox.try_recv() {
            self.deliver_local(to, &bytes);
        }
    }

    fn tick(&mut self, now: Instant) {
        self.warn_of_tallies(now);
        let idle = self.shared.config.idle_timeout;
        self.for_each_conn(|worker, key| {
            let Some(conn) = worker.conns.get_mut(key) else {
                return;
            };
            let silent = now.duration_since(conn.last_active);
            if conn
                .lingering
                .is_some_and(|until| now >= until || silent >= LINGER_SILENCE)
            {
                worker.close_now(key, CloseReason::Done);
            } else if idle.is_some_and(|idle| silent >= idle) {
                worker.close_now(key, CloseReason::IdleTimeout);
            } else if conn.lingering.is_some() {
                // Its handler is done (`on_close` came): a timer it left set is not fired,
                // nor waited for: noted, the past one had the loop poll without blocking for
                // as long as the peer kept its side open (a core, up to LINGER).
            } else if conn.timer.is_some_and(|at| now >= at) {
                conn.timer = None;
                worker.callback(key, |h, ctx| h.on_timer(ctx));
                worker.flush(key);
                worker.deliver();
            } else {
                let at = conn.timer;
                worker.note_timer(at);
            }
        });
    }

    /// Wakes the loop for a timer due before the next tick (the tick alone would fire it up
    /// to 100 ms late); a later one is found by the tick that comes before it.
    fn note_timer(&mut self, at: Option<Instant>) {
        if let Some(at) = at.filter(|&at| at < self.next_tick) {
            self.next_timer = Some(self.next_timer.map_or(at, |t| t.min(at)));
        }
    }
}

/// Lists `conn` in `ready_again` unless it is there already.
fn come_back<H>(ready_again: &mut Vec<usize>, conn: &mut Conn<H>, key: usize) {
    if !std::mem::replace(&mut conn.again, true) {
        ready_again.push(key);
    }
}

/// Counts `written` bytes as sent on `conn` and marks it active.
fn sent<H>(conn: &mut Conn<H>, counters: &Counters, written: u64) {
    conn.from_sends = conn.from_sends.saturating_sub(written);
    if written > 0 {
        conn.last_active = Instant::now();
        counters.bytes_out.fetch_add(written, Ordering::Relaxed);
    }
}
