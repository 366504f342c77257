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
//! libssh2 is patched in this workspace (`vendor/libssh2-sys`, see its `NETKIT.md`): among
//! others, a keepalive reads what has come before it counts the server silent. Cargo does not
//! carry a `[patch]` to the crates that depend on us: a program outside the workspace adds
//! the same `libssh2-sys = { path = ".../vendor/libssh2-sys" }` under `[patch.crates-io]`,
//! or a quiet server may be taken for a lost one after the keepalive interval.

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

pub use client::{AlgorithmKind, Client, supported_algorithms};
pub use config::{
    AddressFamily, AuthMethod, Config, ConfiguredForwards, Destination, EscapeChar, HostKeyPolicy,
    Identity, RequestTty, SYSTEM_CONFIG, home, host_port,
};
pub use error::Error;
pub use exec::{ExitStatus, Output, Terminal};
pub use forward::{
    ChangeForwards, ForwardKind, Forwards, Relayed, StopForwards, forward_listeners,
};
pub use many::{HostResult, Progress, SharedInput, run_many, run_many_with};
pub use sftp::{Entry, Transfer, local_glob, upload_temp_name};
