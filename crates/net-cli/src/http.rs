//! `netkit http`: argument parsing and printing only.

use crate::exit::{GENERIC, Outcome, WithCode};

/// Arguments of `netkit http`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `netkit http`.
pub fn run(_args: Args) -> Outcome {
    Err(anyhow::anyhow!("`netkit http` is not built yet")).code(GENERIC)
}
