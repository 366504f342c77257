//! Child processes that xtask starts: servers that stop when their guard drops, and one
//! interrupt handler that stops every child still running, so no server outlives a run.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Process ids of the children running now; the interrupt handler stops them.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// On SIGINT or SIGTERM, stop every child still running and exit 130.
pub fn kill_children_on_interrupt() {
    let installed = ctrlc::set_handler(|| {
        let pids: Vec<u32> = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
        for pid in pids {
            // The pid, and its process group if it leads one (see `output_within`).
            let _ = Command::new("kill")
                .args(["-TERM", "--"])
                .args([pid.to_string(), format!("-{pid}")])
                .stderr(Stdio::null())
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

/// Runs `cmd` to completion with stdin empty and stdout captured (stderr as `cmd` says), and
/// kills it, with every process it started, if it runs longer than `limit`: a program that
/// hangs ends the run with an error naming it instead of hanging the run.
pub fn output_within(cmd: &mut Command, limit: Duration) -> anyhow::Result<Output> {
    use std::os::unix::process::CommandExt as _;
    // Its own process group, so that the kill reaches what it started (`time`'s child, ssh's).
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let pid = child.id();
    register(pid);
    let (finished, wait) = mpsc::channel::<()>();
    // A thread waits for the deadline, so the command's own time is not rounded up to a
    // polling interval (some rows time a single command).
    let watchdog = std::thread::spawn(move || {
        let expired = wait.recv_timeout(limit) == Err(RecvTimeoutError::Timeout);
        if expired {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        expired
    });
    let out = child.wait_with_output();
    drop(finished);
    unregister(pid);
    if watchdog.join().unwrap_or(false) {
        bail!(
            "{cmd:?} did not finish within {} s and was killed",
            limit.as_secs()
        );
    }
    out.with_context(|| format!("cannot wait for {cmd:?}"))
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

    /// Waits until `addr` accepts TCP connections on a socket of this server's and of no other
    /// process; fails if the server exits or the deadline passes. A port chosen free can be
    /// taken by another program before the server binds it (the server then exits, or binds
    /// beside it with SO_REUSEPORT): a connection alone would measure that program. `log` is
    /// quoted in the error so the cause is on screen.
    pub fn wait_for_port(&mut self, addr: SocketAddr, log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        // Once answered, always: connections nobody accepts fill the listeners' backlogs, after
        // which a connect times out and the last try alone said nothing of the other process.
        let mut answered = false;
        loop {
            let log_text = || std::fs::read_to_string(log).unwrap_or_default();
            answered |= TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            if answered && listeners_all_of(self.child.id(), addr.port())? {
                // Checked after the connection: the server may have exited since the listing.
                if self.child.try_wait()?.is_none() {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before listening on {addr}:\n{}",
                    self.name,
                    log_text()
                );
            }
            if Instant::now() > deadline {
                let other = if answered {
                    " alone (another process listens on that port too)"
                } else {
                    ""
                };
                bail!(
                    "{} did not listen on {addr}{other} within 20 s:\n{}",
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

/// Whether some socket listens on TCP `port` and every one that does (any address, IPv4 or
/// IPv6) is an open file of process `pid`: /proc/net/tcp{,6} give the sockets' inodes,
/// /proc/PID/fd the process's.
fn listeners_all_of(pid: u32, port: u16) -> anyhow::Result<bool> {
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue; // No IPv6 in this kernel.
        };
        // `sl local_address rem_address st ... inode`: st 0A is LISTEN, inode the 10th field.
        listening.extend(text.lines().skip(1).filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local == port && *fields.get(3)? == "0A")
                .then(|| fields.get(9).map(|i| i.to_string()))?
        }));
    }
    if listening.is_empty() {
        return Ok(false);
    }
    // Unreadable once the process has exited: the caller's `try_wait` says so.
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Ok(false);
    };
    let owned: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let inode = link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .collect();
    Ok(listening.iter().all(|inode| owned.contains(inode)))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A python3 listener on 127.0.0.1:`port` with SO_REUSEPORT, as netkit and many servers
    /// bind: a second one binds beside it instead of failing.
    fn reuseport_listener(port: u16) -> Command {
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(format!(
            "import socket, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\ns.bind(('127.0.0.1', {port}))\ns.listen()\ntime.sleep(30)\n"
        ));
        cmd
    }

    #[test]
    fn a_server_sharing_its_port_with_another_process_is_refused() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-service-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut squatter =
            Service::spawn("squatter", &mut reuseport_listener(port), &dir.join("a"))?;
        squatter.wait_for_port(addr, &dir.join("a"))?;
        let mut ours = Service::spawn("ours", &mut reuseport_listener(port), &dir.join("b"))?;
        let err = ours
            .wait_for_port(addr, &dir.join("b"))
            .expect_err("the squatter's listener was taken for ours");
        assert!(err.to_string().contains("another process"), "{err}");
        Ok(())
    }

    #[test]
    fn a_command_past_its_limit_is_killed_with_what_it_started() {
        let started = Instant::now();
        // The shell's child keeps stdout open: only a kill of the whole group ends the wait.
        let err = output_within(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30"]),
            Duration::from_secs(1),
        )
        .expect_err("a 30 s command finished within 1 s");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            err.to_string().contains("did not finish within 1 s"),
            "{err}"
        );
        assert!(err.to_string().contains("sleep 30"), "{err}");
    }
}
