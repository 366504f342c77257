//! net-ssh: an SSH client on libssh2 (ssh2): strict host keys by default, exec with exit
//! status and separate streams, SFTP, and one command over many hosts.
//!
//! ```
//! use std::path::Path;
//! use net_ssh::{Client, Config, Identity, Transfer};
//! # // The sshd that `cargo xtask test` starts, and its test account.
//! # let var = |name: &str| {
//! #     std::env::var(name).map_err(|_| format!("{name} is not set: run `cargo xtask test`"))
//! # };
//! # let destination = format!(
//! #     "{}@127.0.0.1:{}",
//! #     var("NETKIT_TEST_SSH_USER")?,
//! #     var("NETKIT_TEST_SSH_PORT")?
//! # );
//! # let keys = Path::new(&var("NETKIT_TEST_SSH_KEYS")?).to_owned();
//! # let local = std::env::temp_dir().join("net-ssh-doctest-app.tar");
//! # std::fs::write(&local, b"an archive")?;
//! # let remote = Path::new(&var("NETKIT_TEST_SSH_HOME")?).join("doctest-app.tar");
//!
//! // `destination` is [user@]host[:port] or an alias of ~/.ssh/config.
//! let mut config = Config::from_destination(&destination)?;
//! # config.known_hosts = var("NETKIT_TEST_SSH_KNOWN_HOSTS")?.into();
//! config.identities = vec![Identity::new(keys.join("id_ed25519"), None)];
//! let client = Client::connect(&config)?;
//! let out = client.exec("uname -s", b"")?;
//! assert!(out.status.success());
//! assert_eq!(out.stdout, b"Linux\n");
//! client.put(&local, &remote, Transfer::default(), &mut |_, _| {})?;
//! # assert_eq!(std::fs::read(&remote)?, b"an archive");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # libssh2
//!
//! netkit builds this crate against a patched libssh2 (`vendor/libssh2-sys` in the netkit
//! repository, see its `NETKIT.md`), through the workspace's `[patch.crates-io]`. Cargo does
//! not carry a `[patch]` to dependents, and the patched crate is not published, so the crate is
//! not published either (`publish = false` in its `Cargo.toml`). Built against crates.io's
//! `libssh2-sys` (a path dependency from outside the workspace, without the same `[patch]`), it
//! compiles and runs, but as upstream libssh2 does:
//!
//! - a blocking call (an SFTP read or write, opening a channel, authentication) fails with
//!   "Timed out waiting on socket" once the server has been quiet until the next keepalive
//!   ([`Config::keepalive`], 15 s by default), not after [`Config::timeout`];
//! - a keepalive sends without reading first: idle [`Forwards`] busy-poll on the packets left
//!   unread and do not notice that their server has gone;
//! - a remote forward after the first can take a keepalive's reply for its own and fail;
//! - a keepalive interval of 1 s is taken as 2 s;
//! - AES (CTR, GCM) goes to OpenSSL one 16-byte block at a time, which makes it slower than
//!   libssh2's portable chacha20-poly1305, while [`Config::default_ciphers`] puts aes-gcm first;
//! - a server's list of authentication methods or an exit signal's name that is not UTF-8
//!   makes ssh2 panic or drops the signal (a command killed by it counts as a success), and
//!   their control characters reach messages on a terminal;
//! - an SFTP rename over an existing file fails on OpenSSH's server, so an upload replaces a
//!   file in steps (the old one moved aside, the new one renamed in), its name missing for a
//!   moment, where patched it is one `rename(2)` (`posix-rename@openssh.com`).
//!
//! Nothing detects at run time which libssh2 was built. A program outside the workspace gets
//! netkit's behaviour only with a checkout of netkit and the same
//! `libssh2-sys = { path = "NETKIT/vendor/libssh2-sys" }` under its own `[patch.crates-io]`.

mod client;
mod config;
mod error;
mod exec;
mod forward;
mod known_hosts;
mod many;
mod matching;
mod proxy_command;
mod server_alive;
mod sftp;
mod socks;
mod wake;

pub use client::{AlgorithmKind, Client, supported_algorithms};
pub use config::{
    AddressFamily, AuthMethod, Config, ConfiguredForwards, Destination, EscapeChar, HostKeyPolicy,
    Identity, RequestTty, SYSTEM_CONFIG, SessionType, home, host_port,
};
pub use error::{Error, name_shown};
pub use exec::{ExitStatus, Output, Terminal};
pub use forward::{
    ChangeForwards, ForwardKind, Forwards, Relayed, StopForwards, forward_listeners,
};
pub use many::{HostResult, Progress, SharedInput, run_many, run_many_with};
pub use sftp::{Entry, Tally, Transfer, local_glob, upload_temp_name};
