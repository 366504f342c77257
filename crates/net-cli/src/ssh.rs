//! `netkit ssh`: argument parsing and printing only.

use crate::exit::{GENERIC, Outcome, WithCode};

/// Arguments of `netkit ssh`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `netkit ssh`.
pub fn run(_args: Args) -> Outcome {
    Err(anyhow::anyhow!("`netkit ssh` is not built yet")).code(GENERIC)
}
