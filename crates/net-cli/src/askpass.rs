//! Where `netkit ssh` and `netkit sftp` get a password or a key's passphrase from, as OpenSSH
//! 9.2 decides it (readpass.c): the terminal, or the `SSH_ASKPASS` program when
//! `SSH_ASKPASS_REQUIRE` asks for it (`force`; `prefer` with a display) or when there is no
//! terminal but a display. Programs that drive ssh without a person at a terminal (ansible's
//! default password method, GUI front-ends) answer through such a program.

use std::ffi::OsString;
use std::io::Read as _;
use std::process::{Command, Stdio};

use anyhow::{Context as _, anyhow};

/// OpenSSH's askpass program when `SSH_ASKPASS` is not set (Debian's path).
const DEFAULT_PROGRAM: &str = "/usr/bin/ssh-askpass";

/// The most of an askpass program's output read: an answer is one line.
const MOST: u64 = 64 * 1024;

/// How a password or passphrase is asked for.
#[derive(Debug)]
pub enum Asker {
    /// On the controlling terminal, its echo off.
    Terminal,
    /// By running this program with the prompt as its argument: its output's first line is the
    /// answer, a non-zero exit status a cancel.
    Program(OsString),
}

impl Asker {
    /// The way to ask, as ssh picks it; `None` when there is none (no terminal, no display,
    /// or `SSH_ASKPASS_REQUIRE=never` without a terminal).
    pub fn find() -> Option<Asker> {
        let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let display = set("DISPLAY").is_some() || set("WAYLAND_DISPLAY").is_some();
        let require = std::env::var("SSH_ASKPASS_REQUIRE").unwrap_or_default();
        // (the program first, the program at all), as readpass.c reads the variable.
        let (first, allowed) = match require.to_ascii_lowercase().as_str() {
            "force" => (true, true),
            "prefer" => (display, display),
            "never" => (false, false),
            _ => (false, display),
        };
        // The controlling terminal, as ssh asks on /dev/tty: stdin may be the data piped to
        // the remote command with a person still at the terminal to answer.
        let terminal = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/tty")
                .is_ok()
        };
        let program = || Asker::Program(set("SSH_ASKPASS").unwrap_or(DEFAULT_PROGRAM.into()));
        if first {
            Some(program())
        } else if terminal() {
            Some(Asker::Terminal)
        } else {
            allowed.then(program)
        }
    }

    /// The answer to `prompt`; `None` when the askpass program was cancelled (its status not
    /// zero).
    ///
    /// # Errors
    /// The terminal cannot be read, or the program's output cannot.
    pub fn ask(&self, prompt: &str) -> anyhow::Result<Option<String>> {
        let program = match self {
            Asker::Terminal => return Ok(Some(crate::prompt_password(prompt)?)),
            Asker::Program(program) => program,
        };
        let shown = std::path::Path::new(program).display();
        // stdin and stderr are ours, as ssh leaves them to it. One that cannot be run (not
        // installed) is a cancel, as ssh's child that fails to exec it: the next key or
        // method is tried (the login stopped here, where a locked key is passed over).
        let mut child = match Command::new(program)
            .arg(prompt)
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                log::warn!("SSH_ASKPASS {shown}: {e}");
                return Ok(None);
            }
        };
        let mut output = Vec::new();
        let read = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("SSH_ASKPASS {shown}: no output"))
            .and_then(|out| Ok(out.take(MOST).read_to_end(&mut output)?));
        let status = child
            .wait()
            .with_context(|| format!("SSH_ASKPASS {shown}"))?;
        read.with_context(|| format!("SSH_ASKPASS {shown}"))?;
        if !status.success() {
            log::debug!("SSH_ASKPASS {shown}: {status}: cancelled");
            return Ok(None);
        }
        // Up to the first end of line, as ssh takes it.
        let line = output
            .split(|b| *b == b'\n' || *b == b'\r')
            .next()
            .unwrap_or_default();
        String::from_utf8(line.to_vec())
            .map(Some)
            .map_err(|_| anyhow!("SSH_ASKPASS {shown}: the answer is not UTF-8"))
    }
}
