//! Project automation, run as `cargo xtask TASK` (see `.cargo/config.toml`).
//!
//! - `cargo xtask test [--no-lint] [CARGO_TEST_ARGS...]`: fmt and clippy, build, start the real
//!   local servers the integration tests need, run `cargo test`, stop the servers.
//! - `cargo xtask bench [NAME...] [--quick]`: netkit side by side with its anchors.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "printing is this binary's job"
)]

mod bench;
mod nginx;
mod provision;
mod service;
mod sshd;
mod test;
mod tinyproxy;

use std::process::ExitCode;

const USAGE: &str =
    "usage: cargo xtask test [--no-lint] [CARGO_TEST_ARGS...] | bench [NAME...] [--quick]";

fn main() -> ExitCode {
    service::kill_children_on_interrupt();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
