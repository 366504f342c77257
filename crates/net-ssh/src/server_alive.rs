//! ssh's `ServerAliveInterval` and `ServerAliveCountMax`, over libssh2's keepalives, for the
//! loops that wait on a server (a command's, the forwards', an idle SFTP session's).

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

use crate::{Client, Error};

/// How long a loop sleeps at most while libssh2 holds something no poll tells of (a channel
/// open or close in progress, whose answer another channel's read may have taken off the
/// socket): the slice every turn slept before loops slept until they had something to do.
const LIBSSH2_SLICE: Duration = Duration::from_millis(50);

/// When the server was last heard from; gives up on it once it has been silent through
/// `count` keepalives.
pub(crate) struct ServerAlive {
    heard: Instant,
    /// libssh2's interval, at least 1 s: it sends no keepalive before its time, so counting
    /// our calls as keepalives gave up on a healthy server. (Upstream libssh2 took 1 s as 2 s,
    /// which ended a frozen server's session after 7-8 s where ssh takes 4; NETKIT.md.)
    every: Duration,
    count: u32,
    /// When libssh2 next sends a keepalive, as it said at the last call: a loop asleep until
    /// a timer is due wakes for it, and no sooner.
    next_send: Instant,
}

/// What a turn of a loop that waits on a server moved. Only what came from the server tells
/// that it is alive: counting local progress too (stdin written into the channel, a client's
/// bytes read) never gave a frozen server up while local data flowed, where ssh exits 255
/// after `(ServerAliveCountMax + 1) x ServerAliveInterval`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Moved {
    #[default]
    Nothing,
    /// Only our side: local bytes read or written, a write the channel's window had room for.
    Local,
    /// The server sent something (channel data or EOF, a window adjust).
    Server,
}

/// A channel's send window as last seen, to tell the server's window adjusts (its word that
/// it took in what we sent) from writes that went through only because the window still had
/// room, which a frozen server does not stop.
pub(crate) struct Window {
    remaining: u32,
}

impl Window {
    pub(crate) fn new(channel: &ssh2::Channel) -> Window {
        Window {
            remaining: channel.write_window().remaining,
        }
    }

    /// Whether the server widened `channel`'s window since the last call, `written` bytes
    /// having gone into it since: our writes only narrow it.
    pub(crate) fn widened(&mut self, channel: &ssh2::Channel, written: usize) -> bool {
        let now = channel.write_window().remaining;
        let expected = u64::from(self.remaining).saturating_sub(written as u64);
        self.remaining = now;
        u64::from(now) > expected
    }
}

impl ServerAlive {
    pub(crate) fn new(client: &Client) -> ServerAlive {
        let (every, count) = client.keepalive;
        ServerAlive {
            heard: Instant::now(),
            every: Duration::from_secs(every.as_secs().max(1)),
            count,
            next_send: Instant::now(),
        }
    }

    /// When [`check`](Self::check) next has something to do (a keepalive to send, or the
    /// server to give up on), if the server stays silent: `None` when never (an interval too
    /// long to count to).
    fn due(&self) -> Option<Instant> {
        let give_up = self
            .every
            .checked_mul(self.count.saturating_add(1))
            .and_then(|limit| self.heard.checked_add(limit));
        let send = self
            .heard
            .checked_add(self.every)
            .map(|silent| silent.max(self.next_send));
        give_up.into_iter().chain(send).min()
    }

    /// The one sleep of the loops that wait on a server (the forwards', a relay's, a
    /// command's, an idle SFTP session's): until `client`'s socket or one of `locals` is
    /// ready (each for its flags: a wake-up pair's end among them), [`check`](Self::check)
    /// has something to do, or `until` (a loop's own timer) is due, whichever comes first.
    /// With `held` (libssh2 holds something for the loop that no poll tells of) a
    /// [`LIBSSH2_SLICE`] at most. Nothing else wakes it: fixed slices woke idle loops 2 to
    /// 20 times a second for nothing. Whether the server sent something, which is counted.
    pub(crate) fn sleep(
        &mut self,
        client: &Client,
        locals: &[(BorrowedFd<'_>, PollFlags)],
        until: Option<Instant>,
        held: bool,
    ) -> bool {
        let due = self.due().into_iter().chain(until).min();
        let mut timeout = due.map(|due| due.saturating_duration_since(Instant::now()));
        if held {
            timeout = Some(timeout.map_or(LIBSSH2_SLICE, |t| t.min(LIBSSH2_SLICE)));
        }
        let heard = client.wait_for(locals, timeout);
        if heard {
            self.heard();
        }
        heard
    }

    /// The server sent something.
    pub(crate) fn heard(&mut self) {
        self.heard = Instant::now();
    }

    /// Takes in what a turn moved, the server heard from only when it sent something;
    /// whether anything moved.
    pub(crate) fn moved(&mut self, moved: Moved) -> bool {
        if moved == Moved::Server {
            self.heard();
        }
        moved != Moved::Nothing
    }

    /// Sends a keepalive when one is due; [`Error::Timeout`], the connection hung up on, once
    /// the server has been silent through `count` of them (as ssh's "Timeout, server not
    /// responding").
    pub(crate) fn check(&mut self, client: &Client) -> Result<(), Error> {
        let silent = self.heard.elapsed();
        // An interval too long to count to (`Duration::MAX`) never runs out.
        let limit = self.every.checked_mul(self.count.saturating_add(1));
        if limit.is_some_and(|limit| silent >= limit) {
            // Else closing the session would wait (blocking) on the silent server.
            client.hang_up("the server did not answer keepalives");
            return Err(Error::Timeout {
                host: client.host.clone(),
                what: match self.count {
                    // ServerAliveCountMax 0: no keepalive was sent to be answered.
                    0 => format!("the server sent nothing for {} s", self.every.as_secs()),
                    1 => "the server did not answer 1 keepalive".to_owned(),
                    count => format!("the server did not answer {count} keepalives"),
                },
            });
        }
        let now = Instant::now();
        if silent >= self.every && now >= self.next_send {
            // The patched keepalive reads what has come first (NETKIT.md): an answer already
            // there is counted before it is taken in.
            if client.wait(&[], 0) {
                self.heard();
            }
            // libssh2 counts whole seconds to its next keepalive, rounded down: 0 while
            // less than a second is left, which asked again at once would spin until then.
            let to_next = client.session.keepalive_send().unwrap_or(0).max(1);
            self.next_send = now + Duration::from_secs(to_next.into());
        }
        Ok(())
    }
}

impl Client {
    /// Takes in what the server sent with no call of ours to read it (its keepalive requests,
    /// which libssh2 answers only as it reads them, its host keys after authentication, the
    /// answers to our keepalives, the end of the connection): the patched
    /// `libssh2_keepalive_send` reads first (NETKIT.md). A connection found closed is hung up
    /// on, so that every later call says so ([`Client::is_closed`]).
    pub(crate) fn take_in(&self) -> Result<(), Error> {
        self.session.keepalive_send().map(drop).map_err(|e| {
            self.hang_up("the server hung up");
            Error::Ssh {
                host: self.host.clone(),
                reason: format!("the connection was closed ({})", e.message()),
            }
        })
    }

    /// Keeps the connection up while the caller waits for `ready` to be readable (the next
    /// command line of an SFTP session, typed or piped): answers what the server asks (sshd's
    /// `ClientAliveInterval` keepalives: unanswered, sshd hangs up on an idle session, where
    /// OpenSSH's sftp stays connected because ssh answers them) and sends keepalives as
    /// `ServerAliveInterval` and `ServerAliveCountMax` say, as `ssh` does under sftp.
    ///
    /// # Errors
    /// [`Error::Ssh`] once the server closed the connection, [`Error::Timeout`] once it did
    /// not answer the keepalives; the client is closed then ([`Client::is_closed`]): the
    /// caller may still wait for `ready`, and its next call says that the connection was
    /// closed.
    pub fn idle_until(&self, ready: &impl AsFd) -> Result<(), Error> {
        self.still_open()?;
        // Only the reads of a non-blocking session return when nothing more has come.
        let blocking = self.session.is_blocking();
        self.session.set_blocking(false);
        let mut alive = ServerAlive::new(self);
        let result = loop {
            if let Err(e) = alive.check(self) {
                break Err(e);
            }
            // Woken by the server (its keepalives to answer), by `ready`, or for a keepalive
            // of ours: a 500 ms slice woke the prompt twice a second for nothing.
            let locals = [(ready.as_fd(), PollFlags::POLLIN)];
            if alive.sleep(self, &locals, None, false)
                && let Err(e) = self.take_in()
            {
                break Err(e);
            }
            if readable(ready) {
                break Ok(());
            }
        };
        self.session.set_blocking(blocking);
        result
    }
}

/// Whether `fd` has something to read (or its end), without waiting.
fn readable(fd: &impl AsFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
}
