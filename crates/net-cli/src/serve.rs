//! `netkit serve`: argument parsing and printing only.

use crate::exit::{GENERIC, Outcome, WithCode};

/// Arguments of `netkit serve`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `netkit serve`.
pub fn run(_args: Args) -> Outcome {
    Err(anyhow::anyhow!("`netkit serve` is not built yet")).code(GENERIC)
}
