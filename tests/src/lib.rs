//! Fixtures shared by the integration tests in `tests/tests/`.
//!
//! The servers these tests talk to are started by `cargo xtask test`, which passes their
//! addresses in `NETKIT_TEST_*` environment variables. A test whose server is missing fails
//! with a message saying so; it never passes by skipping.

use std::path::PathBuf;

/// The value of an environment variable set by `cargo xtask test`.
///
/// # Panics
/// When the variable is unset: the test was not started by `cargo xtask test`.
#[must_use]
pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) => value,
        Err(_) => panic!("{name} is not set: run the integration tests with `cargo xtask test`"),
    }
}

/// The `netkit` binary built by `cargo xtask test`.
#[must_use]
pub fn netkit_bin() -> PathBuf {
    PathBuf::from(env("NETKIT_BIN"))
}

/// A scratch directory for this run, removed by `cargo xtask test` when it ends.
#[must_use]
pub fn work_dir() -> PathBuf {
    PathBuf::from(env("NETKIT_TEST_WORK"))
}
