//! Child processes that xtask starts: servers that stop when their guard drops, and one
//! interrupt handler that stops every child still running, so no server outlives a run.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Process ids of the children running now; the interrupt handler stops them.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// On SIGINT or SIGTERM, stop every child still running and exit 130.
pub fn kill_children_on_interrupt() {
    let installed = ctrlc::set_handler(|| {
        let pids: Vec<u32> = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
        for pid in pids {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        eprintln!("xtask: interrupted; stopped every server it started");
        std::process::exit(130);
    });
    if let Err(err) = installed {
        eprintln!("xtask: warning: cannot install the interrupt handler: {err}");
    }
}

fn register(pid: u32) {
    if let Ok(mut pids) = RUNNING.lock() {
        pids.push(pid);
    }
}

fn unregister(pid: u32) {
    if let Ok(mut pids) = RUNNING.lock() {
        pids.retain(|&p| p != pid);
    }
}

/// Runs a command to completion with inherited stdio; an interrupt stops it too.
pub fn run(cmd: &mut Command) -> anyhow::Result<ExitStatus> {
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    register(child.id());
    let status = child.wait();
    unregister(child.id());
    Ok(status?)
}

/// Runs a command and fails unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> anyhow::Result<()> {
    let status = run(cmd)?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// A server started for a run: stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Service {
    name: String,
    child: Child,
}

impl Service {
    /// Starts `cmd` as the server `name`; its stdout and stderr go to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> anyhow::Result<Service> {
        let out = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        register(child.id());
        Ok(Service {
            name: name.to_owned(),
            child,
        })
    }

    /// Waits until `addr` accepts TCP connections; fails if the server exits first or the
    /// deadline passes. `log` is quoted in the error so the cause is on screen.
    pub fn wait_for_port(&mut self, addr: SocketAddr, log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            let log_text = || std::fs::read_to_string(log).unwrap_or_default();
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before listening on {addr}:\n{}",
                    self.name,
                    log_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {addr} within 20 s:\n{}",
                    self.name,
                    log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                unregister(pid);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        unregister(pid);
    }
}

/// A free TCP port on 127.0.0.1 (bound and released: a server started at once gets it).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Servers started for a run and the environment variables that tell the tests where they are.
#[derive(Default)]
pub struct Started {
    /// Stopped when dropped.
    pub services: Vec<Service>,
    /// `NETKIT_TEST_*` variables for the tests.
    pub env: Vec<(String, String)>,
}

impl Started {
    /// Adds what another starter started.
    pub fn extend(&mut self, other: Started) {
        self.services.extend(other.services);
        self.env.extend(other.env);
    }
}
