use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use crate::output::Output;

/// Identifies one connection of a [`Server`](crate::Server), across all its threads.
///
/// An id is never reused while the server runs, so a message sent to a connection that has
/// closed is dropped rather than delivered to a newcomer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) worker: usize,
    pub(crate) key: usize,
    pub(crate) serial: u64,
}

impl ConnId {
    /// The index of the event-loop thread that owns the connection.
    #[must_use]
    pub fn thread(&self) -> usize {
        self.worker
    }
}

/// Facts about a new connection, given to [`Service::connect`].
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    /// The connection's id.
    pub id: ConnId,
    /// The client's address.
    pub peer: SocketAddr,
    /// The server address the client connected to.
    pub local: SocketAddr,
}

/// A protocol: creates one [`Handler`] per accepted connection.
///
/// A service is shared by every thread of the server; per-connection state lives in its
/// handlers, which stay on the thread that accepted the connection.
pub trait Service: Send + Sync + 'static {
    /// The per-connection state.
    type Handler: Handler;

    /// Creates the handler of a freshly accepted connection.
    fn connect(&self, info: &ConnInfo) -> Self::Handler;

    /// What a client refused because `max_connections` are open is sent before it is closed
    /// (once, as far as the socket takes it): an HTTP 503, a line saying the room is full.
    /// By default nothing: the connection is just closed, and the client cannot tell a full
    /// server from a broken one.
    fn refusal(&self) -> &[u8] {
        &[]
    }

    /// A client from `peer` was refused at `max_connections`: `received` is what it had sent
    /// by then, `sent` how much of the [`Service::refusal`] its socket took (an access log
    /// writes the 503's line here).
    fn on_refused(&self, _peer: SocketAddr, _received: &[u8], _sent: usize) {}
}

impl<F, H> Service for F
where
    F: Fn(&ConnInfo) -> H + Send + Sync + 'static,
    H: Handler,
{
    type Handler = H;

    fn connect(&self, info: &ConnInfo) -> H {
        self(info)
    }
}

/// Per-connection protocol state, driven by the server's event loop.
///
/// Every callback gets a [`Context`] to write to this connection, close it, or send to other
/// connections. Callbacks must not block: they run on the event loop thread. A callback that
/// panics closes its own connection (the panic is logged), as a panicking tokio task drops its
/// socket; the loop and its other connections go on.
pub trait Handler: 'static {
    /// The connection was accepted.
    fn on_connect(&mut self, _ctx: &mut Context<'_>) {}

    /// Bytes arrived. `data` is only valid during the call: keep what you need.
    fn on_data(&mut self, ctx: &mut Context<'_>, data: &[u8]);

    /// The peer closed its sending side. By default the connection is closed once the pending
    /// output has been flushed.
    fn on_eof(&mut self, ctx: &mut Context<'_>) {
        ctx.close();
    }

    /// The pending output fell back under the limit after reading had been paused for it;
    /// a handler that stopped producing output because of [`Context::over_limit`] resumes here.
    fn on_drain(&mut self, _ctx: &mut Context<'_>) {}

    /// The timer set with [`Context::set_timer`] expired. By default the connection is closed
    /// once the pending output has been flushed (a timer is most often a deadline); override
    /// it for a heartbeat or a retry.
    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        ctx.close();
    }

    /// [`Context::sent`] has reached the mark set with [`Context::notify_sent`]: the bytes
    /// before it have all gone to the kernel (an access log writes a response's line here).
    fn on_sent(&mut self, _ctx: &mut Context<'_>) {}

    /// The connection is gone ([`Context::close_reason`] says why); writes to it are
    /// discarded, sends to others still go out.
    fn on_close(&mut self, _ctx: &mut Context<'_>) {}

    /// The server is shutting down gracefully (it accepts no one new). By default the
    /// connection is closed once its pending output has been written, a response still
    /// produced through [`Handler::on_drain`] included; a handler with an answer still to
    /// come (after a timer, or from another connection) overrides this and closes when it
    /// is done. Connections still open at the server's `shutdown_timeout` are cut.
    fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
        ctx.close();
    }

    /// Whether the connection only waits for its peer, with nothing under way (a keep-alive
    /// connection between requests): when `max_connections` are open, the loop that accepts a
    /// newcomer closes its longest-waiting idle connection to make room, as nginx reuses its
    /// idle keep-alive connections, instead of refusing the newcomer. Asked only of
    /// connections with no output pending. By default a connection is never idle.
    fn is_idle(&self) -> bool {
        false
    }
}

/// Why a connection closed, as [`Context::close_reason`] tells [`Handler::on_close`]: a chat
/// room says `left (timed out)` as an IRC server says `Ping timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The handler closed it, or the peer closed its side and the handler let it end.
    Done,
    /// Reading or writing failed: the peer reset it, or the network is gone.
    Lost,
    /// Silent for the server's `idle_timeout`.
    IdleTimeout,
    /// What other connections sent it waited unwritten past `max_pending_output`: the peer
    /// does not read.
    NotReading,
    /// Idle (see [`Handler::is_idle`]), it made room for a newcomer at `max_connections`.
    MadeRoom,
    /// Still open when the server's `shutdown_timeout` passed.
    ShutdownTimeout,
    /// One of its handler's callbacks panicked.
    Panicked,
    /// A file range queued with [`Context::write_file`] ran past the end of the file, which
    /// shrank after it was queued: the bytes promised cannot be sent.
    FileShrank,
}

/// Writes at least this large skip the queue when it is empty.
const DIRECT_WRITE: usize = 16 * 1024;

/// How a callback asked its connection to close.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    No,
    AfterFlush,
    Now,
}

/// What a handler can do from a callback.
pub struct Context<'a> {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) output: &'a mut Output,
    /// The socket, while large writes may go to it at once (not once it is closing).
    pub(crate) socket: Option<&'a mio::net::TcpStream>,
    /// Bytes written to `socket` directly in this callback.
    pub(crate) written: u64,
    /// Each loop's channel, this one's included, and which of them were sent to.
    pub(crate) remotes: &'a [crate::server::Remote],
    pub(crate) sent_to: &'a mut [bool],
    pub(crate) close: &'a mut Close,
    pub(crate) timer: &'a mut TimerChange,
    /// Whether the handler wants input: `Some` when a callback paused or resumed reading.
    pub(crate) reading: &'a mut Option<bool>,
    pub(crate) max_pending_output: usize,
    pub(crate) close_reason: Option<CloseReason>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// This connection's id.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The client's address.
    #[must_use]
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Queues bytes for this connection; they are written when the callback returns. A large
    /// write with nothing queued before it goes to the socket at once, and only what the
    /// socket does not take is queued.
    ///
    /// Every byte given is kept until the peer takes it, whatever `max_pending_output` says
    /// (that limit pauses reading): a handler with much to send writes it in pieces, stopping
    /// when [`Context::over_limit`] and going on in [`Handler::on_drain`], so that a slow
    /// reader holds at most about the limit in memory.
    pub fn write(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        // Copying a stream's chunks into the queue first cost a memcpy per byte (46 % of an
        // echo stream's server samples; tokio writes from the caller's buffer); small writes
        // still wait, so a response's pieces leave together.
        if bytes.len() >= DIRECT_WRITE
            && let Some(mut socket) = self.socket
            && self.output.is_empty()
        {
            match socket.write(bytes) {
                Ok(n) => {
                    self.written += n as u64;
                    self.output.note_sent(n as u64);
                    rest = &bytes[n..];
                }
                // Queued instead: the flush writes it once the socket takes more, or meets
                // the error again and closes.
                Err(_) => self.socket = None,
            }
        }
        self.output.push_bytes(rest);
    }

    /// Queues `len` bytes of `file` from `offset`; they go from the page cache to the socket
    /// without passing through user space where the OS allows it.
    pub fn write_file(&mut self, file: std::fs::File, offset: u64, len: u64) {
        self.output.push_file(file, offset, len);
    }

    /// Gives direct access to the output buffer, to format into it without a copy.
    pub fn output_buffer(&mut self) -> &mut Vec<u8> {
        self.output.tail_buffer()
    }

    /// Queues bytes for another connection, on any thread. Sends to a closed connection are
    /// dropped. They join its output as they are, after what it had queued when they
    /// arrived: between two pieces of a response it streams under
    /// [`over_limit`](Self::over_limit), so a framed protocol should send whole frames to a
    /// connection that is not streaming. One whose messages from others wait unwritten past
    /// the server's `max_pending_output` is closed.
    ///
    /// It goes into the channel of the connection's loop at once, even for a connection of
    /// this loop: what is sent under one lock (a chat room's) reaches every loop in the order
    /// the lock was taken, so that all the members of a room read its lines in one order.
    pub fn send(&mut self, to: ConnId, bytes: &[u8]) {
        self.send_each([to], bytes);
    }

    /// Queues the same bytes for each of `to`, as [`Context::send`] does, with one copy of
    /// them shared by all.
    pub fn send_each(&mut self, to: impl IntoIterator<Item = ConnId>, bytes: &[u8]) {
        let mut shared: Option<std::sync::Arc<[u8]>> = None;
        for to in to {
            let bytes = shared.get_or_insert_with(|| bytes.into()).clone();
            if let Some(remote) = self.remotes.get(to.worker)
                && remote.tx.send((to, bytes)).is_ok()
            {
                self.sent_to[to.worker] = true;
            }
        }
    }

    /// Closes the connection once its pending output has been written (and any
    /// [`Handler::on_drain`] that asks for more). While the peer still sends, our side is shut
    /// first and its input is read and dropped while it comes, for up to 30 s (5 s of
    /// silence ends it; 2 s once the server shuts down), as nginx's lingering close, so that
    /// closing with unread input does not reset the connection and destroy the last response
    /// in flight.
    pub fn close(&mut self) {
        if *self.close == Close::No {
            *self.close = Close::AfterFlush;
        }
    }

    /// Closes the connection at once, dropping the output not written yet: for a peer that
    /// stopped reading, whose output would never be flushed.
    pub fn abort(&mut self) {
        *self.close = Close::Now;
    }

    /// Why the connection closed, in [`Handler::on_close`]; `None` before.
    #[must_use]
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason
    }

    /// Bytes queued for this connection and not written yet.
    #[must_use]
    pub fn pending_output(&self) -> u64 {
        self.output.pending()
    }

    /// Bytes of this connection's output handed to the kernel since it was accepted.
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.output.sent()
    }

    /// Where the output queued so far ends, counted as [`Context::sent`] counts: noted
    /// before and after a response is queued, it tells which bytes of the connection are the
    /// response's, and with [`Context::notify_sent`] when they have gone.
    #[must_use]
    pub fn output_end(&self) -> u64 {
        self.output.end()
    }

    /// Calls [`Handler::on_sent`] once [`Context::sent`] reaches `at` (at once after this
    /// callback if it has already). One mark per connection: setting it again moves it; it is
    /// cleared when reached, and never reached once the connection closes
    /// ([`Handler::on_close`] comes instead).
    pub fn notify_sent(&mut self, at: u64) {
        self.output.set_mark(at);
    }

    /// Whether the pending output is over the server's `max_pending_output`: a handler that
    /// can produce much output should stop until [`Handler::on_drain`].
    #[must_use]
    pub fn over_limit(&self) -> bool {
        self.output.pending() > self.max_pending_output as u64
    }

    /// Calls [`Handler::on_timer`] after `after` (within about a millisecond, load
    /// permitting), unless reset or cleared before. A connection has one timer: setting it
    /// again moves it.
    pub fn set_timer(&mut self, after: Duration) {
        *self.timer = TimerChange::Set(after);
    }

    /// Cancels the timer.
    pub fn clear_timer(&mut self) {
        *self.timer = TimerChange::Clear;
    }

    /// Stops reading this connection until [`Context::resume_reading`]: a handler whose
    /// answers wait (on a timer, another connection, a backend) takes no more requests than
    /// it can hold, and TCP makes the peer wait, as a tokio task that stops calling `read`.
    pub fn pause_reading(&mut self) {
        *self.reading = Some(false);
    }

    /// Reads this connection again after [`Context::pause_reading`]; what arrived meanwhile
    /// comes to [`Handler::on_data`] first.
    pub fn resume_reading(&mut self) {
        *self.reading = Some(true);
    }
}

/// What a callback did to the connection's timer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerChange {
    Keep,
    Set(Duration),
    Clear,
}
