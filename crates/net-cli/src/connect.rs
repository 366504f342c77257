//! `netkit connect`: argument parsing and printing only.

use crate::exit::{GENERIC, Outcome, WithCode};

/// Arguments of `netkit connect`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `netkit connect`.
pub fn run(_args: Args) -> Outcome {
    Err(anyhow::anyhow!("`netkit connect` is not built yet")).code(GENERIC)
}
