//! OpenSSH's `ProxyCommand`: the SSH connection runs over a program's stdin and stdout.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

use crate::{Config, Error};

/// A running proxy command, hung up on (SIGHUP, as OpenSSH does) when the client that
/// speaks through it is dropped.
pub(crate) struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let child = &mut self.0;
        if matches!(child.try_wait(), Ok(None))
            && let Ok(pid) = i32::try_from(child.id())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGHUP,
            );
        }
        // One that ignores the hang-up is killed after a second, not waited for forever.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while matches!(child.try_wait(), Ok(None)) {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// `command` with the tokens ssh_config(5) gives ProxyCommand: `%h` host, `%p` port, `%r`
/// user, `%n` the host as given, `%%` a percent sign. The error names any other.
pub(crate) fn expand(command: &str, config: &Config) -> Result<String, String> {
    let port = config.port.to_string();
    let tokens = [
        ('h', config.host.as_str()),
        ('n', &config.original_host),
        ('p', &port),
        ('r', &config.user),
    ];
    crate::config::expand_tokens(command, &tokens)
}

/// Starts `command` under `/bin/sh` and joins its stdin and stdout to a local socket pair,
/// for the session to run over; returns two handles on our end (the session's and one to
/// wait on) and the command, to keep while the session lives. The command's stderr stays
/// ours, so its complaints are seen; it gets EOF once the session closes its end.
pub(crate) fn start(config: &Config, command: &str) -> Result<(OwnedFd, OwnedFd, Running), Error> {
    let failed = |reason: String| Error::Connect {
        host: crate::config::host_port(&config.host, config.port),
        source: std::io::Error::other(format!("ProxyCommand {command:?}: {reason}")),
    };
    let line = expand(command, config).map_err(&failed)?;
    log::debug!("{}: running ProxyCommand {line:?}", config.host);
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {line}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let pair = || -> std::io::Result<_> {
        let (ours, theirs) = UnixStream::pair()?;
        let (ours2, theirs2) = (ours.try_clone()?, theirs.try_clone()?);
        Ok((ours, ours2, theirs, theirs2))
    };
    let (ours, ours2, mut up_from, mut down_to) = pair().map_err(|e| failed(e.to_string()))?;
    let (Some(mut to_child), Some(mut from_child)) = (child.stdin.take(), child.stdout.take())
    else {
        let _ = child.kill();
        return Err(failed("no pipes to the command".into()));
    };
    let running = Running(child);
    crate::client::spawn(move || {
        let _ = copy(&mut from_child, &mut down_to);
        let _ = down_to.shutdown(std::net::Shutdown::Write);
    })?;
    crate::client::spawn(move || {
        let _ = copy(&mut up_from, &mut to_child);
    })?;
    Ok((OwnedFd::from(ours), OwnedFd::from(ours2), running))
}

/// Copies until EOF, flushing each piece: the protocol waits for every packet.
fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                to.write_all(&buf[..n])?;
                to.flush()?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expand_as_openssh_expands_them() {
        let mut config = Config::new("db.internal");
        config.port = 2222;
        config.user = "ann".into();
        assert_eq!(
            expand("nc -X 5 -x proxy:1080 %h %p # %r %n 100%%", &config).unwrap(),
            "nc -X 5 -x proxy:1080 db.internal 2222 # ann db.internal 100%"
        );
        assert!(expand("nc %x", &config).unwrap_err().contains("%x"));
        assert!(expand("nc %", &config).is_err());
    }
}
