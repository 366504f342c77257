//! ssh's `ServerAliveInterval` and `ServerAliveCountMax`, over libssh2's keepalives, for the
//! loops that wait on a server (a command's, the forwards').

use std::time::{Duration, Instant};

use crate::{Client, Error};

/// When the server was last heard from; gives up on it once it has been silent through
/// `count` keepalives.
pub(crate) struct ServerAlive {
    heard: Instant,
    /// libssh2's interval, at least 1 s: it sends no keepalive before its time, so counting
    /// our calls as keepalives gave up on a healthy server. (Upstream libssh2 took 1 s as 2 s,
    /// which ended a frozen server's session after 7-8 s where ssh takes 4; NETKIT.md.)
    every: Duration,
    count: u32,
}

impl ServerAlive {
    pub(crate) fn new(client: &Client) -> ServerAlive {
        let (every, count) = client.keepalive;
        ServerAlive {
            heard: Instant::now(),
            every: Duration::from_secs(every.as_secs().max(1)),
            count,
        }
    }

    /// The server sent something.
    pub(crate) fn heard(&mut self) {
        self.heard = Instant::now();
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
        if silent >= self.every {
            // The patched keepalive reads what has come first (NETKIT.md): an answer already
            // there is counted before it is taken in.
            if client.wait(&[], 0) {
                self.heard();
            }
            let _ = client.session.keepalive_send();
        }
        Ok(())
    }
}
