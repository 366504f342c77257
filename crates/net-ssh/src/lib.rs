//! net-ssh: an SSH client on libssh2 (ssh2): strict host keys by default, exec with exit
//! status and separate streams, SFTP, and one command over many hosts.
//!
//! ```no_run
//! use std::path::Path;
//! use net_ssh::{Client, Config, Transfer};
//!
//! let mut config = Config::from_destination("deploy@127.0.0.1:2222")?;
//! config.password = std::env::var("NETKIT_SSH_PASSWORD").ok();
//! let client = Client::connect(&config)?;
//! let out = client.exec("uname -a", b"")?;
//! assert!(out.status.success());
//! client.put(Path::new("app.tar"), Path::new("/tmp/app.tar"), Transfer::default(), &mut |_, _| {})?;
//! # Ok::<(), net_ssh::Error>(())
//! ```

mod client;
mod config;
mod error;
mod exec;
mod forward;
mod known_hosts;
mod many;
mod proxy_command;
mod sftp;
mod socks;

pub use client::Client;
pub use config::{
    AddressFamily, AuthMethod, Config, ConfiguredForwards, Destination, HostKeyPolicy, Identity,
    RequestTty,
};
pub use error::Error;
pub use exec::{ExitStatus, Output, Terminal};
pub use forward::Forwards;
pub use many::{HostResult, run_many, run_many_with};
pub use sftp::{Entry, Transfer, upload_temp_name};
