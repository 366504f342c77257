//! One command on many hosts, at most P sessions at once; each host gets its own result.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::Error;
use crate::client::Client;
use crate::config::Config;
use crate::exec::ExitStatus;

/// What happened on one host.
#[derive(Debug)]
#[non_exhaustive]
pub struct HostResult {
    /// The host (as configured, with its port when not 22).
    pub host: String,
    /// How the command ended, or why it did not run or finish.
    pub outcome: Result<ExitStatus, Error>,
    /// What the command wrote to stdout, also before an error (a timeout, a lost connection)
    /// ended it: that is when it tells most.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr, likewise.
    pub stderr: Vec<u8>,
    /// Connect + authenticate + run.
    pub duration: Duration,
    /// Whether the command was sent all of the input and then EOF before it ended: not so
    /// for one that exited without reading it all (`head -1`), nor for a host with
    /// `StdinNull yes`. Only such a command can have read to the end of an input the caller
    /// [cut short](SharedInput::close); one that ended before had what it wanted.
    pub input_ended: bool,
}

impl HostResult {
    /// Whether the command ran and exited 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.outcome.as_ref().is_ok_and(ExitStatus::success)
    }
}

/// The standard input of one command run on many hosts, as `pssh -I` sends it: every host's
/// command gets all of it, from its first byte, however late its turn comes, then EOF once
/// it is [closed](SharedInput::close). The bytes are kept until the run ends, for the hosts
/// still to come. Clones share it: one thread can feed it while the hosts run.
#[derive(Clone, Debug)]
pub struct SharedInput(Arc<Mutex<Shared>>);

#[derive(Debug)]
struct Shared {
    bytes: Vec<u8>,
    closed: bool,
    /// The commands running now, each taking what comes.
    readers: Vec<Sender<Vec<u8>>>,
}

impl SharedInput {
    /// An input still open: [`push`](Self::push) adds to it, [`close`](Self::close) ends it.
    #[must_use]
    pub fn open() -> Self {
        SharedInput(Arc::new(Mutex::new(Shared {
            bytes: Vec::new(),
            closed: false,
            readers: Vec::new(),
        })))
    }

    /// An input of `bytes` and nothing more (empty: every command gets EOF at once).
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let input = SharedInput::open();
        input.lock().bytes = bytes;
        input.close();
        input
    }

    /// Adds `bytes`, sent at once to the commands running and later to the others.
    pub fn push(&self, bytes: &[u8]) {
        let mut shared = self.lock();
        shared.bytes.extend_from_slice(bytes);
        // A command that ended has dropped its end.
        shared
            .readers
            .retain(|reader| reader.send(bytes.to_vec()).is_ok());
    }

    /// Ends the input: each command gets EOF after the bytes pushed.
    pub fn close(&self) {
        let mut shared = self.lock();
        shared.closed = true;
        shared.readers.clear();
    }

    /// What one command reads: everything pushed so far, then what comes.
    fn reader(&self) -> Receiver<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut shared = self.lock();
        if !shared.bytes.is_empty() {
            let _ = tx.send(shared.bytes.clone());
        }
        if !shared.closed {
            shared.readers.push(tx);
        }
        rx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a run over many hosts tells as it goes, each call from the thread running that
/// host (`host` is its index in `hosts`). A closure `Fn(usize, &HostResult)` is one that
/// hears only when each host is done.
pub trait Progress: Sync {
    /// Bytes the command wrote to stdout (`stderr` false) or stderr, as they come: what a
    /// host still running has said, when the run is cut short.
    fn output(&self, host: usize, stderr: bool, bytes: &[u8]) {
        let _ = (host, stderr, bytes);
    }

    /// The host is done.
    fn done(&self, host: usize, result: &HostResult) {
        let _ = (host, result);
    }
}

impl<F: Fn(usize, &HostResult) + Sync> Progress for F {
    fn done(&self, host: usize, result: &HostResult) {
        self(host, result);
    }
}

/// Runs `command` on every host, at most `parallel` at once, with no input (EOF at once).
/// One host's failure never stops the others; results come back in the order of `hosts`.
#[must_use]
pub fn run_many(hosts: &[Config], command: &str, parallel: usize) -> Vec<HostResult> {
    let input = SharedInput::from_bytes(Vec::new());
    run_many_with(
        hosts,
        command,
        parallel,
        &input,
        &|_: usize, _: &HostResult| {},
    )
}

/// [`run_many`], feeding each command `input` (none to a host whose config says
/// `StdinNull yes`), and telling `progress` each host's output
/// and end as they come (a host is done as soon as it is, to show it then).
#[must_use]
pub fn run_many_with(
    hosts: &[Config],
    command: &str,
    parallel: usize,
    input: &SharedInput,
    progress: &dyn Progress,
) -> Vec<HostResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<HostResult>>> =
        Mutex::new((0..hosts.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        let work = || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(config) = hosts.get(i) else { break };
                let started = Instant::now();
                let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
                let mut input_ended = false;
                // A panic on one host (a bug, or a library's unwrap of what a hostile server
                // sent) is that host's failure, as pssh reports a failed host: re-raised by
                // the scope, it lost every host's result (and hung `netkit ssh --hosts`).
                // Nothing is shared across it but the output kept so far.
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    Client::connect(config)
                        .and_then(|client| {
                            client.exec_streamed(
                                command,
                                // StdinNull yes: this host's command gets EOF at once, as with -n.
                                (!config.stdin_null).then(|| input.reader()),
                                &mut |b| {
                                    progress.output(i, false, b);
                                    stdout.extend_from_slice(b);
                                    Ok(())
                                },
                                &mut |b| {
                                    progress.output(i, true, b);
                                    stderr.extend_from_slice(b);
                                    Ok(())
                                },
                            )
                        })
                        .map(|ran| {
                            input_ended = ran.input_ended && !config.stdin_null;
                            ran.status
                        })
                }))
                .unwrap_or_else(|panic| {
                    Err(Error::Ssh {
                        host: display_name(config),
                        reason: format!("netkit failed on this host: {}", panic_message(&*panic)),
                    })
                });
                let result = HostResult {
                    host: display_name(config),
                    outcome,
                    stdout,
                    stderr,
                    duration: started.elapsed(),
                    input_ended,
                };
                progress.done(i, &result);
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(result);
                }
            }
        };
        // Out of threads (a process or cgroup limit), the hosts are run by those that
        // started, or by this one.
        let started = (0..parallel.clamp(1, hosts.len().max(1)))
            .filter(|_| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, work)
                    .is_ok()
            })
            .count();
        if started == 0 {
            work();
        }
    });
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect()
}

/// What a caught panic said (`panic!` carries a `&str` or a `String`).
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

fn display_name(config: &Config) -> String {
    if config.port == 22 {
        config.host.clone()
    } else {
        crate::config::host_port(&config.host, config.port)
    }
}
