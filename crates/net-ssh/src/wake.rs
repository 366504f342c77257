//! The wake-up socket pair of a loop that sleeps in poll() (the forwards', a command's): a
//! poll cannot watch a channel, so the threads that hand the loop something (a stop, a
//! thread's result, stdin, a resize) write a byte to [`Wake`] and the loop polls [`Woken`].

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use crate::Error;

/// The end a loop polls: readable once woken.
#[derive(Debug)]
pub(crate) struct Woken(UnixStream);

/// The end that wakes the loop; cloned for each thread that does.
#[derive(Debug)]
pub(crate) struct Wake(UnixStream);

/// A new pair, both ends non-blocking: a wake never blocks its thread.
///
/// # Errors
/// [`Error::Local`] (out of descriptors), naming `what` the pair is for.
pub(crate) fn pair(what: &str) -> Result<(Woken, Wake), Error> {
    let made = || -> std::io::Result<_> {
        let (woken, wake) = UnixStream::pair()?;
        woken.set_nonblocking(true)?;
        wake.set_nonblocking(true)?;
        Ok((Woken(woken), Wake(wake)))
    };
    made().map_err(|source| Error::Local {
        path: format!("{what} wake-up socket pair").into(),
        source,
    })
}

impl Woken {
    /// Takes the wake-ups sent so far, before the loop looks at what it was woken for: one
    /// sent after that keeps the next poll from sleeping.
    pub(crate) fn drain(&self) {
        let mut buf = [0; 64];
        while (&self.0).read(&mut buf).is_ok_and(|n| n > 0) {}
    }
}

impl AsFd for Woken {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Wake {
    /// Wakes the loop's poll. A full pair (wake-ups nobody took yet) is readable already:
    /// the byte that did not fit is not missed.
    pub(crate) fn wake(&self) {
        let _ = (&self.0).write(&[1]);
    }

    /// Another end for another thread.
    ///
    /// # Errors
    /// [`Error::Local`] (out of descriptors).
    pub(crate) fn try_clone(&self) -> Result<Wake, Error> {
        self.0.try_clone().map(Wake).map_err(|source| Error::Local {
            path: "wake-up socket pair".into(),
            source,
        })
    }
}
