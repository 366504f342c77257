//! A real tinyproxy for the HTTP client's proxy tests, configured and started by xtask.
//!
//! Sets `NETKIT_TEST_PROXY` (`127.0.0.1:PORT`). It asks for Basic credentials
//! `netkit`:`pr0xy-s3cret` and, as tinyproxy's and squid's defaults allow only port 443, lets
//! CONNECT through only to nginx's TLS port: a plain `http://` URL must come as an
//! absolute-form request, which it forwards to any port.

use std::path::Path;
use std::process::Command;

use crate::provision::Need;
use crate::service::{self, Service, Started};
use crate::test::path_str;

/// What the proxy needs installed.
pub const NEEDS: &[Need] = &[Need {
    probe: "tinyproxy",
    package: "tinyproxy",
}];

/// Starts tinyproxy on a free 127.0.0.1 port that tunnels only to `connect_port`.
pub fn start(work: &Path, connect_port: u16) -> anyhow::Result<Started> {
    let dir = work.join("tinyproxy");
    std::fs::create_dir_all(&dir)?;
    let port = service::free_port()?;
    let conf = dir.join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}
Listen 127.0.0.1
Allow 127.0.0.1
Timeout 60
MaxClients 200
LogLevel Info
BasicAuth netkit pr0xy-s3cret
ConnectPort {connect_port}
"
        ),
    )?;
    let log = dir.join("tinyproxy.log");
    // -d: in the foreground, so the guard's signal stops it.
    let mut proxy = Service::spawn(
        "tinyproxy",
        Command::new(crate::provision::program("tinyproxy"))
            .arg("-d")
            .arg("-c")
            .arg(&conf),
        &log,
    )?;
    proxy.wait_for_port(format!("127.0.0.1:{port}").parse()?, &log)?;
    Ok(Started {
        services: vec![proxy],
        env: vec![
            ("NETKIT_TEST_PROXY".into(), format!("127.0.0.1:{port}")),
            ("NETKIT_TEST_PROXY_LOG".into(), path_str(&log)),
        ],
    })
}
