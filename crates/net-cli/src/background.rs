//! `netkit ssh -f`: the session goes on in the background once it is authenticated, as ssh -f.
//!
//! The workspace has no unsafe code, so no fork(2): the process the user started runs the
//! same command line again as a child, which connects (asking for passwords on the terminal
//! as usual), leaves the terminal's session and signals its parent, which then exits 0.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{getppid, setsid};

use crate::exit::Outcome;
use crate::ssh::{OWN_ERROR, own};

/// Names the parent, in the child's environment.
const PARENT_ENV: &str = "NETKIT_SSH_FORKED_FROM";

/// Whether this process is the child [`start`] made: the one that does the work.
pub fn is_child() -> bool {
    // Checked against our parent: a variable inherited from further up names another.
    std::env::var(PARENT_ENV).is_ok_and(|pid| pid == getppid().to_string())
}

/// In the process the user started: runs this command line again as a child and waits until
/// it is ready (exit 0; the child goes on) or ends first (its status, as if it had been this
/// process all along).
pub fn start() -> Outcome {
    let ready = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&ready))
        .context("cannot watch for signals")
        .map_err(own)?;
    let exe = std::env::current_exe()
        .context("cannot find netkit's own program to run in the background")
        .map_err(own)?;
    let mut child = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(PARENT_ENV, std::process::id().to_string())
        .spawn()
        .context("cannot start the background process")
        .map_err(own)?;
    loop {
        if ready.load(Ordering::SeqCst) {
            return Ok(ExitCode::SUCCESS);
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                let code = status.code().and_then(|c| u8::try_from(c).ok());
                return Ok(ExitCode::from(code.unwrap_or(OWN_ERROR)));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(own(anyhow!("background process: {e}"))),
        }
    }
}

/// In the child, once the session is up: leaves the terminal's session (its hang-up and
/// Ctrl-C no longer reach us), lets go of stdin (and of stdout and stderr unless a command's
/// output goes there), and lets the parent exit. As ssh -f: whoever reads our output (a
/// script's `$(...)`, a pipe) is not kept waiting by forwards that run on.
pub fn detach(keep_output: bool) {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        Ok(null) => {
            let mut redirected = nix::unistd::dup2_stdin(&null);
            if !keep_output {
                redirected = redirected
                    .and_then(|()| nix::unistd::dup2_stdout(&null))
                    .and_then(|()| nix::unistd::dup2_stderr(&null));
            }
            if let Err(e) = redirected {
                log::debug!("to /dev/null: {e}");
            }
        }
        Err(e) => log::debug!("/dev/null: {e}"),
    }
    // The parent named, not whoever is the parent by then: one that is gone leaves init
    // in its place, which must not be signalled.
    let parent = getppid();
    let waiting = is_child();
    if let Err(e) = setsid() {
        log::debug!("setsid: {e}");
    }
    if waiting && let Err(e) = kill(parent, Signal::SIGUSR1) {
        log::debug!("telling the parent: {e}");
    }
}
