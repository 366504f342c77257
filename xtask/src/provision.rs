//! Installs the system packages the tests and benchmarks need: with apt-get when running as
//! root, otherwise a one-line error that says what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;

/// Something the run needs, and the Debian package that provides it.
#[derive(Clone, Copy)]
pub struct Need {
    /// A command name (looked up in `PATH`, `/usr/sbin` and `/sbin`) or an absolute file path.
    pub probe: &'static str,
    /// The Debian package that provides it.
    pub package: &'static str,
}

/// Debian's paramiko, for Debian's `/usr/bin/python3`: the bench's anchor client and the
/// tests' hostile SSH server (`tests/src/hostile_ssh.py`).
pub const PARAMIKO: Need = Need {
    probe: "/usr/lib/python3/dist-packages/paramiko/__init__.py",
    package: "python3-paramiko",
};

/// Makes sure every need is met, installing the missing packages when root.
pub fn ensure(needs: &[Need]) -> anyhow::Result<()> {
    let mut missing: Vec<&str> = needs
        .iter()
        .filter(|n| !present(n.probe))
        .map(|n| n.package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        bail!("missing packages: run `sudo apt-get install -y {list}` and try again");
    }
    eprintln!("xtask: installing {list}");
    // Package scripts must not start system-wide nginx or sshd on ports 80 and 22.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let wrote_policy = !policy.exists() && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok();
    if wrote_policy {
        let _ = Command::new("chmod").arg("755").arg(policy).status();
    }
    let result = apt_install(&missing);
    if wrote_policy {
        let _ = std::fs::remove_file(policy);
    }
    result?;
    if let Some(need) = needs.iter().find(|n| !present(n.probe)) {
        bail!(
            "{} is still missing after installing {}",
            need.probe,
            need.package
        );
    }
    Ok(())
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let quiet = |cmd: &mut Command| cmd.env("DEBIAN_FRONTEND", "noninteractive").status();
    let updated = quiet(Command::new("apt-get").args(["update", "-qq"]))?;
    if !updated.success() {
        bail!(
            "apt-get update failed ({updated}); install by hand: apt-get install -y {}",
            packages.join(" ")
        );
    }
    let installed = quiet(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages),
    )?;
    if !installed.success() {
        bail!(
            "apt-get install {} failed ({installed})",
            packages.join(" ")
        );
    }
    Ok(())
}

fn present(probe: &str) -> bool {
    if probe.starts_with('/') {
        return Path::new(probe).exists();
    }
    program(probe).is_absolute()
}

/// Where the program `name` is, looked up as its need was (`PATH`, then `/usr/sbin` and
/// `/sbin`, which a user's `PATH` on Debian lacks: nginx was found there, then started from
/// `PATH` and not found); `name` itself when it is nowhere.
pub fn program(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_absolute() && candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Whether this process runs as root (and so may install packages and add users).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
