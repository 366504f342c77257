//! Our stdin, stdout and stderr as a parent may hand them over: non-blocking (rsync sets
//! O_NONBLOCK on the pipes it gives its ssh). A read or write then fails with `EAGAIN` whenever
//! the pipe is empty or full; taken for an error or an end, that cut a transfer short (stdout),
//! sent the remote an early EOF (stdin) or dropped output (stderr). OpenSSH waits for the fd to be
//! ready (poll) and so does [`Patient`]: the description is left as the parent set it.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout};

/// A reader or writer on one of our standard fds that, where the fd is non-blocking, waits for
/// it to be ready rather than failing with `WouldBlock`; `Interrupted` is retried too.
#[derive(Debug)]
pub struct Patient<T>(pub T);

impl<T: AsFd> Patient<T> {
    /// Runs `op` until it is not `WouldBlock` (waiting for `events` on the fd in between) nor
    /// `Interrupted`.
    fn retry<R>(
        &mut self,
        events: PollFlags,
        mut op: impl FnMut(&mut T) -> std::io::Result<R>,
    ) -> std::io::Result<R> {
        loop {
            match op(&mut self.0) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let mut fds = [PollFd::new(self.0.as_fd(), events)];
                    // POLLHUP/POLLERR also end the wait: the next attempt then says what it is.
                    match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl<T: Read + AsFd> Read for Patient<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.retry(PollFlags::POLLIN, |inner| inner.read(buf))
    }
}

impl<T: Write + AsFd> Write for Patient<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.retry(PollFlags::POLLOUT, |inner| inner.write(buf))
    }

    // A buffered writer (std's stdout) keeps what it could not write and tries it again here.
    fn flush(&mut self) -> std::io::Result<()> {
        self.retry(PollFlags::POLLOUT, Write::flush)
    }
}

/// Our stdin, waiting where it is non-blocking.
pub fn stdin() -> Patient<std::io::Stdin> {
    Patient(std::io::stdin())
}

/// Our stdout, waiting where it is non-blocking. Not locked: log lines and messages from other
/// threads go on being written while a session pumps its output.
pub fn stdout() -> Patient<std::io::Stdout> {
    Patient(std::io::stdout())
}

/// Our stderr, waiting where it is non-blocking (not locked either).
pub fn stderr() -> Patient<std::io::Stderr> {
    Patient(std::io::stderr())
}

/// What is shown on stderr beside a job whose output goes elsewhere (the heads `http -d -v`
/// shows): a stderr that cannot take it (its reader gone, as in `2>&1 >file | grep -m1 HTTP`)
/// is not the job failing, as curl -v goes on; what it would not take is dropped.
#[derive(Debug)]
pub struct Aside<W>(pub W);

impl<W: Write> Write for Aside<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}
