use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong while setting up or running a [`Server`](crate::Server).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder was given no address to listen on.
    #[error("no bind address given")]
    NoBindAddress,
    /// Another socket already listens on the address.
    #[error("cannot listen on {addr}: address already in use")]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding or listening failed for another reason (permission, no such interface, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The directory an HTTP service should serve is missing or unreadable.
    #[error("cannot serve {}: {source}", path.display())]
    Root {
        /// The directory asked for.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The event loop itself failed (creating the poller or polling).
    #[error("event loop failed: {0}")]
    EventLoop(#[source] std::io::Error),
    /// An event loop's thread could not be started (a process, thread or memory limit);
    /// the loops started are stopped.
    #[error("cannot start event loop thread {index} of {threads}: {source}")]
    Thread {
        /// Its number, from 1.
        index: usize,
        /// The loops asked for.
        threads: usize,
        /// What the OS said.
        source: std::io::Error,
    },
}
