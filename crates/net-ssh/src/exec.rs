//! Running a command: stdin in, stdout and stderr out, both read in one loop so a full
//! window on one stream never stalls the other.

use std::io::{ErrorKind, Read, Write as _};
use std::os::fd::AsFd as _;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use nix::poll::PollFlags;

use crate::Error;
use crate::client::{Client, EAGAIN};
use crate::server_alive::{Moved, ServerAlive, Window};
use crate::wake::{Wake, Woken};

const CHUNK: usize = 64 * 1024;

/// A command longer than this that fails to start is taken to be too long for libssh2's one
/// request packet (it sends some 34,700 bytes and no more).
const LONG_COMMAND: usize = 32 * 1024;

/// How a remote command ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ExitStatus {
    /// The exit code (0 when the command was killed by a signal).
    pub code: i32,
    /// The signal that killed it, without `SIG` (e.g. `TERM`).
    pub signal: Option<String>,
}

impl ExitStatus {
    /// Whether the command exited with 0 and no signal.
    #[must_use]
    pub fn success(&self) -> bool {
        self.code == 0 && self.signal.is_none()
    }
}

/// LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED: the server answered a channel request with a failure.
const REQUEST_DENIED: ssh2::ErrorCode = ssh2::ErrorCode::Session(-22);

/// The pseudo-terminal asked for an interactive shell or a command that needs one.
#[derive(Clone, Debug)]
pub struct Terminal {
    /// The terminal type, as `$TERM` (e.g. `xterm-256color`).
    pub term: String,
    /// Width in characters.
    pub columns: u32,
    /// Height in lines.
    pub rows: u32,
    /// Whether the program may not run without it (`ssh -t`, `-tt`). When not (an
    /// interactive login, ssh's `RequestTTY auto`), a server that refuses terminals
    /// (`PermitTTY no`, `no-pty` on the key) is warned of and the program runs without one,
    /// as with ssh: restricted accounts are still reachable.
    pub required: bool,
    /// Told when the server refused the terminal and the program runs without one: an
    /// interactive client takes its own terminal out of raw mode then, as ssh does, so that
    /// lines are edited and echoed locally (Enter sends a newline the remote shell sees).
    pub refused: Option<std::sync::mpsc::Sender<()>>,
}

/// How a streamed program ended.
pub(crate) struct Ran {
    pub(crate) status: ExitStatus,
    /// Whether all of its input and then EOF went before it ended (not so when it exited
    /// without reading it all).
    pub(crate) input_ended: bool,
}

/// What a session channel starts, on a pseudo-terminal or not.
struct Start<'a> {
    program: Program<'a>,
    terminal: Option<&'a Terminal>,
}

#[derive(Clone, Copy)]
enum Program<'a> {
    Shell,
    Command(&'a str),
    Subsystem(&'a str),
}

/// The full result of [`Client::exec`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Output {
    /// How the command ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Client {
    /// Runs `command`, feeding it `stdin` (then EOF), and collects stdout and stderr apart.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the command runs longer than the config's `exec_timeout`;
    /// [`Error::Ssh`] for channel failures (a dead peer is noticed by TCP keepalive).
    pub fn exec(&self, command: &str, stdin: &[u8]) -> Result<Output, Error> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if !stdin.is_empty() {
            let _ = tx.send(stdin.to_vec());
        }
        drop(tx);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = self.exec_streaming(
            command,
            Some(rx),
            &mut |d| {
                stdout.extend_from_slice(d);
                Ok(())
            },
            &mut |d| {
                stderr.extend_from_slice(d);
                Ok(())
            },
        )?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs `command`, handing output chunks to the callbacks as they arrive; a callback
    /// that fails (its reader went away) ends the command with [`Error::Output`] and closes
    /// the connection, as ssh does when its stdout closes.
    ///
    /// `stdin` yields chunks to send; when its sender is dropped, EOF is sent. `None` sends
    /// EOF at once. A command may stay silent as long as it likes unless `exec_timeout` is set.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Output`], [`Error::Ssh`].
    pub fn exec_streaming(
        &self,
        command: &str,
        stdin: Option<Receiver<Vec<u8>>>,
        on_stdout: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        on_stderr: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<ExitStatus, Error> {
        self.exec_streamed(command, stdin, on_stdout, on_stderr)
            .map(|ran| ran.status)
    }

    /// [`exec_streaming`](Self::exec_streaming), also telling whether `stdin` went to its end.
    pub(crate) fn exec_streamed(
        &self,
        command: &str,
        stdin: Option<Receiver<Vec<u8>>>,
        on_stdout: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        on_stderr: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<Ran, Error> {
        let start = Start {
            program: Program::Command(command),
            terminal: None,
        };
        self.run_streaming(start, stdin, None, on_stdout, on_stderr)
    }

    /// Starts the server's subsystem `name` (as `ssh -s`: `sftp`, `netconf`), its input and
    /// output carried as [`exec_streaming`](Self::exec_streaming) carries a command's.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Output`], [`Error::Ssh`] (also for a subsystem the server
    /// does not offer).
    pub fn subsystem_streaming(
        &self,
        name: &str,
        stdin: Option<Receiver<Vec<u8>>>,
        on_stdout: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        on_stderr: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<ExitStatus, Error> {
        let start = Start {
            program: Program::Subsystem(name),
            terminal: None,
        };
        self.run_streaming(start, stdin, None, on_stdout, on_stderr)
            .map(|ran| ran.status)
    }

    /// Runs `command` on a remote pseudo-terminal of `terminal`'s type and size, as `ssh -t`
    /// does for programs that need one (`sudo` asking for a password, `top`, an editor);
    /// otherwise as [`shell_on_terminal`](Self::shell_on_terminal): stderr arrives merged
    /// into stdout, and `resize` resizes the terminal.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Output`], [`Error::Ssh`].
    pub fn exec_on_terminal(
        &self,
        command: &str,
        terminal: &Terminal,
        stdin: Option<Receiver<Vec<u8>>>,
        resize: Option<Receiver<(u32, u32)>>,
        on_stdout: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        on_stderr: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<ExitStatus, Error> {
        let start = Start {
            program: Program::Command(command),
            terminal: Some(terminal),
        };
        self.run_streaming(start, stdin, resize, on_stdout, on_stderr)
            .map(|ran| ran.status)
    }

    /// Starts the user's login shell; otherwise as [`exec_streaming`](Self::exec_streaming).
    ///
    /// Without a `terminal` (as `ssh HOST < script`) the shell reads its commands from
    /// `stdin` and exits at its EOF. With one (as an interactive `ssh HOST`) the server
    /// allocates a pseudo-terminal of that type and size, and the shell's stderr arrives
    /// merged into stdout, as on any terminal; [`shell_on_terminal`](Self::shell_on_terminal)
    /// also follows resizes.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Output`], [`Error::Ssh`].
    pub fn shell_streaming(
        &self,
        terminal: Option<&Terminal>,
        stdin: Option<Receiver<Vec<u8>>>,
        on_stdout: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        on_stderr: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<ExitStatus, Error> {
        let start = Start {
            program: Program::Shell,
            terminal,
        };
        self.run_streaming(start, stdin, None, on_stdout, on_stderr)
            .map(|ran| ran.status)
    }

    /// Starts the user's login shell on a remote pseudo-terminal of `terminal`'s type and
    /// size (as an interactive `ssh HOST`); each `(columns, rows)` from `resize` resizes it,
    /// as `ssh` does on SIGWINCH. A resize and the input sent after it travel separately:
    /// the input may reach the shell first. Otherwise as
    /// [`shell_streaming`](Self::shell_streaming).
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Output`], [`Error::Ssh`].
    pub fn shell_on_terminal(
        &self,
        terminal: &Terminal,
        stdin: Option<Receiver<Vec<u8>>>,
        resize: Option<Receiver<(u32, u32)>>,
        on_stdout: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        on_stderr: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<ExitStatus, Error> {
        let start = Start {
            program: Program::Shell,
            terminal: Some(terminal),
        };
        self.run_streaming(start, stdin, resize, on_stdout, on_stderr)
            .map(|ran| ran.status)
    }

    fn run_streaming(
        &self,
        start: Start<'_>,
        stdin: Option<Receiver<Vec<u8>>>,
        resize: Option<Receiver<(u32, u32)>>,
        on_stdout: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        on_stderr: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<Ran, Error> {
        let fail = |e: ssh2::Error| self.given_up(Error::ssh(&self.host, &e));
        let began = std::time::Instant::now();
        let mut channel = self.open(ssh2::Session::channel_session)?;
        for (name, value) in &self.env {
            // Refused unless the server's AcceptEnv names it; ssh goes on silently too. The
            // name only: a value may be a secret. The refusal is the server's, which libssh2's
            // "Unable to complete request for channel-setenv" did not say.
            match channel.setenv(name, value) {
                Ok(()) => log::trace!("{}: sent env {name}", self.host),
                Err(e) if e.code() == REQUEST_DENIED => log::debug!(
                    "{}: the server refused to set {name} (SendEnv; not in its AcceptEnv)",
                    self.host
                ),
                Err(e) => log::debug!("{}: {name} not sent: {}", self.host, e.message()),
            }
        }
        if let Some(t) = start.terminal
            && let Err(e) = channel.request_pty(&t.term, None, Some((t.columns, t.rows, 0, 0)))
        {
            // The channel stays open after a refused request: the program can still start.
            let refused = e.code() == REQUEST_DENIED;
            if !refused {
                return Err(fail(e));
            }
            let said = "the server refused a remote terminal (PTY allocation request failed)";
            if t.required {
                return Err(self.given_up(Error::Ssh {
                    host: self.host.clone(),
                    reason: said.to_owned(),
                }));
            }
            log::warn!("{}: {said}; going on without one", self.host);
            if let Some(refused) = &t.refused {
                let _ = refused.send(());
            }
        }
        let (started, request) = match start.program {
            Program::Command(command) => (channel.exec(command), "exec"),
            Program::Subsystem(name) => (channel.subsystem(name), "subsystem"),
            Program::Shell => (channel.shell(), "shell"),
        };
        // Not the command itself: it may carry a secret.
        log::trace!("{}: sent the {request} request", self.host);
        started.map_err(|e| {
            // Request denied: an SFTP-only server (ProFTPD, rclone,
            // `ForceCommand internal-sftp` elsewhere), where libssh2 says only "Unable to
            // complete request for channel-process-startup".
            // libssh2 sends a request in one packet of at most ~35 KB, and said only "Unable
            // to send channel request" of a longer command (sshd takes 256 KB, ssh sends it).
            if let Program::Command(command) = start.program
                && command.len() > LONG_COMMAND
            {
                return Error::Ssh {
                    host: self.host.clone(),
                    reason: format!(
                        "the command is {} bytes, more than can be sent in one request (about \
                         34 KB): send a long script on stdin instead (sh -s < script)",
                        command.len()
                    ),
                };
            }
            if e.code() == REQUEST_DENIED {
                let what = match start.program {
                    Program::Command(_) => "to run the command".to_owned(),
                    Program::Subsystem(name) => format!("the {name} subsystem"),
                    Program::Shell => "a shell".to_owned(),
                };
                return Error::Ssh {
                    host: self.host.clone(),
                    reason: format!("the server refused {what} ({request} request failed)"),
                };
            }
            fail(e)
        })?;
        self.session.set_blocking(false);
        let result = self.pump(&mut channel, stdin, resize, on_stdout, on_stderr);
        self.session.set_blocking(true);
        let input_ended = result?;
        channel.wait_close().map_err(fail)?;
        let code = channel.exit_status().map_err(fail)?;
        let signal = channel.exit_signal().map_err(fail)?.exit_signal;
        // As ssh -v ends: "Exit status 0", and how long the channel was open.
        let took = began.elapsed().as_secs_f64();
        match &signal {
            Some(signal) => {
                log::debug!("{}: ended by signal {signal} after {took:.1} s", self.host)
            }
            None => log::debug!("{}: Exit status {code} after {took:.1} s", self.host),
        }
        Ok(Ran {
            status: ExitStatus { code, signal },
            input_ended,
        })
    }

    /// Closes the connection under a command that is given up on. libssh2 closes a channel
    /// by waiting for the server's close, which sshd sends only once the command ends (a
    /// `tail -f` never does): the connection goes instead, as when ssh is killed, and the
    /// server hangs up on the command.
    pub(crate) fn hang_up(&self, why: &'static str) {
        self.hung_up.set(Some(why));
        let _ = socket2::SockRef::from(&self.socket).shutdown(std::net::Shutdown::Both);
    }

    /// Carries stdin in and the output out until the command's output ends; true when all of
    /// `stdin` and its EOF went, before the command ended.
    fn pump(
        &self,
        channel: &mut ssh2::Channel,
        stdin: Option<Receiver<Vec<u8>>>,
        mut resize: Option<Receiver<(u32, u32)>>,
        on_stdout: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        on_stderr: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<bool, Error> {
        let mut buf = vec![0; CHUNK];
        let mut pending: Vec<u8> = Vec::new();
        let mut sent = 0;
        let mut stdin = stdin;
        let mut eof_sent = false;
        // Whether the input went to its end: not when the command ended without taking it.
        let (mut input_dropped, mut input_ended) = (false, false);
        let mut new_size = None;
        let mut woken = None;
        let (mut out_done, mut err_done) = (false, false);
        // When the command is given up on, a timer of the loop's own.
        let give_up = self
            .exec_timeout
            .and_then(|limit| Instant::now().checked_add(limit));
        let mut alive = ServerAlive::new(self);
        let mut window = Window::new(channel);
        // Whether the last turn ran again, without sleeping, for what libssh2 held.
        let mut rechecked = false;
        loop {
            let mut progress = Moved::Nothing;
            let mut written = 0;
            // Only the latest size matters; one that would block is sent on a later turn.
            if let Some(rx) = &resize {
                loop {
                    match rx.try_recv() {
                        Ok(size) => new_size = Some(size),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            resize = None;
                            break;
                        }
                    }
                }
            }
            if let Some((columns, rows)) = new_size {
                match channel.request_pty_size(columns, rows, None, None) {
                    Err(e) if e.code() == EAGAIN => {}
                    done => {
                        if let Err(e) = done {
                            log::debug!("{}: resizing the terminal: {e}", self.host);
                        }
                        new_size = None;
                        progress = Moved::Local;
                    }
                }
            }
            // stdin: refill, write what the window takes, then EOF.
            if sent == pending.len() {
                pending.clear();
                sent = 0;
                if let Some(rx) = &stdin {
                    match rx.try_recv() {
                        Ok(chunk) => pending = chunk,
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Disconnected) => stdin = None,
                    }
                }
            }
            if sent < pending.len() {
                match channel.write(&pending[sent..]) {
                    Ok(n) => {
                        sent += n;
                        written = n;
                        progress = Moved::Local;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    // The command exited without reading all its input: drop the rest.
                    Err(_) => {
                        pending.clear();
                        sent = 0;
                        stdin = None;
                        input_dropped = true;
                    }
                }
            }
            if stdin.is_none() && sent == pending.len() && !eof_sent {
                match channel.send_eof() {
                    Ok(()) => {
                        eof_sent = true;
                        input_ended = !input_dropped;
                    }
                    Err(e) if e.code() == EAGAIN => {}
                    Err(_) => eof_sent = true,
                }
            }
            // One read per stream and turn, not until it would block: when the output comes
            // faster than it is taken (a `yes` on a slow terminal) the socket never runs dry,
            // and keys (Ctrl-C) and resizes, sent at the top of the loop, would wait for ever.
            for (stream_id, done) in [(0, &mut out_done), (1, &mut err_done)] {
                if *done {
                    continue;
                }
                match channel.stream(stream_id).read(&mut buf) {
                    Ok(0) => *done = channel.eof(),
                    Ok(n) => {
                        progress = Moved::Server;
                        let taken = if stream_id == 0 {
                            on_stdout(&buf[..n])
                        } else {
                            on_stderr(&buf[..n])
                        };
                        if let Err(source) = taken {
                            self.hang_up("the command's output could not be taken");
                            return Err(Error::Output { source });
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => {
                        return Err(Error::Ssh {
                            host: self.host.clone(),
                            reason: Error::reason(&e.to_string()),
                        });
                    }
                }
            }
            if out_done && err_done {
                return Ok(input_ended);
            }
            if window.widened(channel, written) {
                progress = Moved::Server;
            }
            if alive.moved(progress) {
                rechecked = false;
                continue;
            }
            alive.check(self)?;
            if let Some(limit) = self.exec_timeout
                && give_up.is_some_and(|at| Instant::now() >= at)
            {
                self.hang_up("a command ran longer than exec_timeout");
                return Err(Error::Timeout {
                    host: self.host.clone(),
                    what: format!("the command ran longer than {limit:?}"),
                });
            }
            // What libssh2 took off the socket for one stream while reading the other (or a
            // window adjust while writing), no poll tells of: one more turn takes it, as in
            // the forwards' loop.
            let held = channel.read_window().available > 0
                || channel.eof()
                || (sent < pending.len() && channel.write_window().remaining > 0);
            if held && !rechecked {
                rechecked = true;
                continue;
            }
            // Nothing moved: sleep until the socket or local input has something, or a
            // timer is due. Input (stdin, resizes) comes through channels, which cannot be
            // polled: once we would wait with one open, threads pass it on and wake us
            // through a socket pair. (Slices of 100 ms woke an idle command 20 times a
            // second; 5 ms, 200.)
            let input_open = stdin.is_some() || resize.is_some();
            if input_open && woken.is_none() {
                woken = Some(wake_on_input(&mut stdin, &mut resize)?);
            }
            // Once the input has ended, its threads are gone and the pair reads its end,
            // always readable: not waited on then.
            let locals: Vec<_> = woken
                .iter()
                .filter(|_| input_open)
                .map(|woken| (woken.as_fd(), PollFlags::POLLIN))
                .collect();
            alive.sleep(self, &locals, give_up, held);
            if let Some(woken) = &woken {
                woken.drain();
            }
        }
    }
}

/// Passes `stdin` and `resize` on through threads that wake the loop (the forwards' wake-up
/// pair, `wake.rs`) after each item and at the end; returns the end the loop polls.
///
/// # Errors
/// [`Error::Local`] when the pair cannot be made or a thread cannot be started.
fn wake_on_input(
    stdin: &mut Option<Receiver<Vec<u8>>>,
    resize: &mut Option<Receiver<(u32, u32)>>,
) -> Result<Woken, Error> {
    let (woken, wake) = crate::wake::pair("command input")?;
    *stdin = stdin
        .take()
        .map(|rx| pass_on(rx, wake.try_clone()?))
        .transpose()?;
    // The last one: once every thread has ended, the loop's end reads the pair's end.
    *resize = resize.take().map(|rx| pass_on(rx, wake)).transpose()?;
    Ok(woken)
}

/// A receiver of what `from` receives, the loop woken through `wake` after each item and
/// when `from` ends.
fn pass_on<T: Send + 'static>(from: Receiver<T>, wake: Wake) -> Result<Receiver<T>, Error> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    crate::client::spawn(move || {
        for item in from {
            if tx.send(item).is_err() {
                return;
            }
            wake.wake();
        }
        drop(tx);
        wake.wake();
    })?;
    Ok(rx)
}
