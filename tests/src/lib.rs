//! Fixtures shared by the integration tests in `tests/tests/`.
//!
//! The servers these tests talk to are started by `cargo xtask test`, which passes their
//! addresses in `NETKIT_TEST_*` environment variables. A test whose server is missing fails
//! with a message saying so; it never passes by skipping.

pub mod http_echo;
pub mod slow_link;
pub mod ssh;

use std::path::PathBuf;

/// A host name that cannot resolve, known without asking any name server: the resolver refuses
/// a label over 63 octets before it sends a query. (A name under `.invalid` still goes to the
/// machine's name server, which is not on loopback.)
pub const UNRESOLVABLE_HOST: &str =
    "no-such-host-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.invalid";

/// The value of an environment variable set by `cargo xtask test`.
///
/// # Panics
/// When the variable is unset: the test was not started by `cargo xtask test`.
#[must_use]
pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) => value,
        Err(_) => panic!("{name} is not set: run the integration tests with `cargo xtask test`"),
    }
}

/// The `netkit` binary built by `cargo xtask test`.
#[must_use]
pub fn netkit_bin() -> PathBuf {
    PathBuf::from(env("NETKIT_BIN"))
}

/// A scratch directory for this run, emptied by the next `cargo xtask test` (what a failed
/// test left there can be looked at).
#[must_use]
pub fn work_dir() -> PathBuf {
    PathBuf::from(env("NETKIT_TEST_WORK"))
}

/// A port free on both loopbacks a moment ago, for a server to listen on later or for a
/// connection to be refused at, below the ephemeral range (32768 and up): one the system
/// hands out for `127.0.0.1:0` may become another test's listener, or the local port of
/// another test's connection, before it is used (a forward then found it taken, now and
/// then, in a full run).
///
/// # Panics
/// When none of 1000 random ports between 20000 and 32000 is free.
#[must_use]
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    for _ in 0..1000 {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = 20_000 + u16::try_from(random % 12_000).expect("below 12000");
        let v4 = std::net::TcpListener::bind(("127.0.0.1", port));
        let v6 = std::net::TcpListener::bind(("::1", port));
        if v4.is_ok() && v6.is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// The uid and gid of the unprivileged SSH test account (made by `cargo xtask test`).
#[must_use]
pub fn test_user_ids() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt as _;
    let home = std::fs::metadata(env("NETKIT_TEST_SSH_HOME")).unwrap();
    (home.uid(), home.gid())
}

/// `command` to be run as the SSH test account: the tests run as root, which may read and
/// write whatever the modes say, and permission answers are to be an ordinary user's.
pub fn as_test_user(command: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt as _;
    let (uid, gid) = test_user_ids();
    command.uid(uid).gid(gid)
}

/// The CPU time (user and system, in clock ticks: 100 a second) process `pid` has used.
///
/// # Panics
/// When the process is gone.
#[must_use]
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process is there");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields[i].parse::<u64>().expect("a number of ticks");
    ticks(11) + ticks(12)
}

/// A process a test started, killed (SIGKILL) and reaped when dropped: a test that fails while
/// it runs must not leave it running, holding the run's output open (a `cargo xtask test | grep`
/// would wait for it).
#[derive(Debug)]
pub struct Spawned {
    child: Option<std::process::Child>,
    /// The command line, for the message when it does not end in time.
    shown: String,
}

/// How long [`Spawned::wait_with_output`] waits: far beyond any healthy run (the slowest
/// tests move 1 GiB), so that a netkit that hangs fails its test, naming the command, instead
/// of holding the whole run until CI's job timeout.
pub const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

impl Spawned {
    /// Sends SIGTERM and waits, at most `within`, for the exit.
    ///
    /// # Panics
    /// When it has not exited by then.
    pub fn terminate(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let pid = self.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running {within:?} after SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Starts `command`.
    ///
    /// # Panics
    /// When it cannot start.
    #[must_use]
    pub fn start(command: &mut std::process::Command) -> Spawned {
        let shown = format!("{command:?}");
        match command.spawn() {
            Ok(child) => Spawned {
                child: Some(child),
                shown,
            },
            Err(e) => panic!("cannot run {shown}: {e}"),
        }
    }

    /// Closes its stdin, waits for the exit (at most [`RUN_LIMIT`]) and collects the piped
    /// stdout and stderr.
    ///
    /// # Panics
    /// When waiting fails, or it still runs (or its output is still open) after
    /// [`RUN_LIMIT`]: then it is killed and the message names the command.
    #[must_use]
    pub fn wait_with_output(self) -> std::process::Output {
        self.wait_with_output_within(RUN_LIMIT)
    }

    /// [`Spawned::wait_with_output`] with a deadline of its own, for a test whose point is
    /// that the process ends soon (with a pipe of the test's still open, say).
    ///
    /// # Panics
    /// As [`Spawned::wait_with_output`], after `within`.
    #[must_use]
    pub fn wait_with_output_within(mut self, within: std::time::Duration) -> std::process::Output {
        use std::io::Read;
        use std::time::Instant;
        let deadline = Instant::now() + within;
        drop(self.stdin.take());
        // Both read at once, as `Child::wait_with_output` does: a child blocked on a full
        // stderr pipe would otherwise never finish its stdout.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut data = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut data);
                }
                let _ = tx.send(data);
            });
            rx
        };
        let stdout = drain(
            self.stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            self.stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let shown = self.shown.clone();
        let late = |what: &str| -> ! { panic!("{shown} {what} after {within:?}: killed") };
        let status = loop {
            if let Some(status) = self.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() >= deadline {
                // Killed by the drop, as the panic unwinds.
                late("still runs");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| late("ended but its output is still open"))
        };
        let (stdout, stderr) = (collect(stdout), collect(stderr));
        self.child = None;
        std::process::Output {
            status,
            stdout,
            stderr,
        }
    }
}

impl std::ops::Deref for Spawned {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.child.as_ref().expect("not yet waited")
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.child.as_mut().expect("not yet waited")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `path` holds at least `bytes` bytes, so that a test interrupts a transfer
/// midway rather than after a guessed delay (a loaded CI machine may not have started it).
///
/// # Panics
/// When `child` ends first or 20 s pass.
pub fn wait_for_file_size(path: &std::path::Path, bytes: u64, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::metadata(path).map_or(0, |m| m.len()) < bytes {
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "the transfer to {} ended before it was interrupted",
            path.display()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not reach {bytes} bytes in 20 s",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The first file in `dir` whose name starts with `prefix`, waited for (20 s at most): a
/// transfer's temporary file, whose name ends in a random part.
///
/// # Panics
/// When none comes in 20 s.
#[must_use]
pub fn temporary_file(dir: &std::path::Path, prefix: &str) -> std::path::PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let found = std::fs::read_dir(dir)
            .expect("the directory is there")
            .filter_map(Result::ok)
            .find(|entry| entry.file_name().to_string_lossy().starts_with(prefix));
        if let Some(entry) = found {
            return entry.path();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {prefix}* in {} in 20 s",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A `netkit serve ...` process started by a test, stopped (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Served {
    /// The process.
    pub child: Spawned,
    /// The addresses it printed in its `listening on ADDR` lines.
    pub addrs: Vec<std::net::SocketAddr>,
    /// Everything it has written to stderr so far.
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Starts `netkit serve ARGS...` and waits (at most 10 s) for its first `listening on`
    /// line, then takes the lines that follow it at once.
    ///
    /// # Panics
    /// When the server does not start: the test fails with its stderr.
    #[must_use]
    pub fn start(args: &[&str]) -> Served {
        Self::start_with(
            std::process::Command::new(netkit_bin())
                .arg("serve")
                .args(args),
        )
    }

    /// Like [`Served::start`], for a prepared command (e.g. under `prlimit`).
    ///
    /// # Panics
    /// When the server does not start: the test fails with its stderr.
    #[must_use]
    pub fn start_with(command: &mut std::process::Command) -> Served {
        use std::io::BufRead;
        use std::sync::PoisonError;
        use std::time::Duration;
        let shown = format!("{command:?}");
        let mut child = Spawned::start(
            command
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped()),
        );
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("piped stderr");
        let sink = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                // Kept before it is sent: a test that fails on the address then shows it.
                let mut all = sink.lock().unwrap_or_else(PoisonError::into_inner);
                all.push_str(&line);
                all.push('\n');
                drop(all);
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.parse::<std::net::SocketAddr>());
                }
            }
        });
        // The first line may take long on a loaded machine (exec, bind, a prlimit or setpriv
        // in front): the whole deadline is for it. `serve` prints all its lines in one go
        // once every socket is bound, so the rest follow at once, and a short pause ends them.
        // A server that exits first ends the wait at once (the reader drops `tx`).
        let mut addrs = Vec::new();
        let mut wait = Duration::from_secs(10);
        while let Ok(addr) = rx.recv_timeout(wait) {
            addrs.push(addr.expect("a socket address after 'listening on'"));
            wait = Duration::from_millis(300);
        }
        if addrs.is_empty() {
            let status = child.try_wait().ok().flatten();
            // Cloned first: a panic while the guard lives would poison it for the reader.
            let text = stderr
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            panic!(
                "{shown} did not start: no 'listening on' line in 10 s (exit status so far: \
                 {status:?}); its stderr:\n{text}"
            );
        }
        Served {
            child,
            addrs,
            stderr,
        }
    }

    /// The first address, as `http://IP:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// Sends SIGTERM and waits (at most `within`) for the exit status.
    ///
    /// # Panics
    /// When the process does not exit in time.
    pub fn terminate(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        self.child.terminate(within)
    }
}
