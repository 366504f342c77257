//! `netkit sftp`: argument parsing and printing only.

use crate::exit::{GENERIC, Outcome, WithCode};

/// Arguments of `netkit sftp`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `netkit sftp`.
pub fn run(_args: Args) -> Outcome {
    Err(anyhow::anyhow!("`netkit sftp` is not built yet")).code(GENERIC)
}
