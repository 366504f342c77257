//! `cargo xtask bench`: netkit side by side with its anchors.

use anyhow::bail;

/// Runs `cargo xtask bench [NAME...] [--quick]`.
pub fn run(_args: &[String]) -> anyhow::Result<()> {
    bail!("cargo xtask bench is not built yet")
}
