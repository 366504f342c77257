//! `netkit connect`: argument parsing and printing only.

use std::io::{ErrorKind, IsTerminal as _, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};

use crate::exit::{GENERIC, Outcome, USAGE, WithCode};

/// Arguments of `netkit connect`.
#[derive(clap::Args)]
#[command(after_help = "\
Copies stdin to the socket and the socket to stdout, like `nc`. At the end of stdin the \
sending side is shut down and netkit keeps printing until the peer closes. With -l, netkit \
waits for one connection to HOST:PORT (a port alone: on 127.0.0.1) instead, as nc -l.

Exit status: 0 when the peer closed (or, with -w, went quiet; with -z, once connected), 1 when \
the connection failed, the peer closed before stdin could all be sent, or (with -l) the \
address could not be listened on, 2 for a bad address.

Examples:
  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | netkit connect 127.0.0.1:8000
  netkit connect ::1 8000
  netkit connect -z -w 2 db 5432 && echo up      is the port open?
  netkit connect -l 9000 > got.bin                receive one upload on 127.0.0.1:9000")]
pub struct Args {
    /// Where to connect, as HOST:PORT (IPv6 as [::1]:PORT), or HOST PORT as nc; with -l,
    /// where to listen, a port alone meaning 127.0.0.1.
    #[arg(value_name = "HOST:PORT")]
    target: String,
    /// The port, when given apart from the host (`netkit connect HOST PORT`, as nc).
    #[arg(value_name = "PORT")]
    port: Option<u16>,
    /// Give up connecting to each address of HOST after this many seconds (a name with an
    /// IPv6 and an IPv4 address may take twice as long, as with nc's -w).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
    /// As nc's -w: give up connecting (to each address) after SECS, and end once the
    /// connection has been silent for SECS.
    #[arg(short = 'w', value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    wait: Option<u64>,
    /// As nc's -z: connect, then close without sending anything (is the port open?).
    #[arg(short = 'z')]
    zero_io: bool,
    /// Say on stderr whether the connection was made, as nc's -v (with -l: where netkit
    /// listens, which it says anyway for port 0, and who connected).
    #[arg(short = 'v')]
    verbose: bool,
    /// As nc's -l: wait for one connection to HOST:PORT, then copy as when connecting.
    #[arg(short = 'l')]
    listen: bool,
}

/// Runs `netkit connect`.
pub fn run(args: Args) -> Outcome {
    // `HOST:PORT PORT`: the port twice, which the IPv6 reading below would make a host.
    if let (Some(port), Some((host, given))) = (args.port, args.target.rsplit_once(':'))
        && given.parse::<u16>().is_ok()
        && host.parse::<std::net::Ipv6Addr>().is_err()
        && !host.contains(':')
    {
        return Err(anyhow!(
            "the port is given twice ({} and {port}): HOST:PORT or HOST PORT",
            args.target
        ))
        .code(USAGE);
    }
    let target = &match args.port {
        Some(port) if args.target.contains(':') && !args.target.starts_with('[') => {
            format!("[{}]:{port}", args.target)
        }
        Some(port) => format!("{}:{port}", args.target),
        None if args.listen && args.target.parse::<u16>().is_ok() => {
            format!("127.0.0.1:{}", args.target)
        }
        None => args.target.clone(),
    };
    // A well-formed HOST:PORT whose host does not resolve is named as such, as nc does.
    // An IPv6 address's last group is no port: `::1` alone was "cannot resolve".
    let has_port = target.rsplit_once(':').is_some_and(|(host, port)| {
        let bracketed = host.starts_with('[') && host.ends_with(']');
        !host.is_empty() && (bracketed || !host.contains(':')) && port.parse::<u16>().is_ok()
    });
    // A name that does not resolve is a failed connection (exit 1, as nc), a malformed
    // address a usage error.
    let addrs: Vec<_> = match target.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) if has_port => {
            return Err(anyhow!("cannot resolve {target:?}: {e}")).code(GENERIC);
        }
        Err(e) => {
            let missing = if target.parse::<std::net::Ipv6Addr>().is_ok() {
                "no port: HOST PORT, or [HOST]:PORT".to_owned()
            } else {
                format!("expected HOST:PORT ({e})")
            };
            return Err(anyhow!("bad address {target:?}: {missing}")).code(USAGE);
        }
    };
    let timeout = Duration::from_secs(args.wait.unwrap_or(args.timeout).max(1));
    let (stream, peer) = if args.listen {
        accept(&addrs, target, args.verbose)?
    } else {
        let stream = connect(addrs, target, timeout, args.verbose)?;
        if args.verbose {
            let addr = stream
                .peer_addr()
                .map_or_else(|_| String::new(), |a| format!(" ({a})"));
            crate::exit::say(format_args!("netkit: connected to {target}{addr}"));
        }
        (stream, target.clone())
    };
    if args.zero_io {
        return Ok(ExitCode::SUCCESS);
    }
    copy(stream, &peer, args.wait.map(|_| timeout))
}

/// The first of `addrs` that answers within `timeout`; each one that does not is said with
/// `verbose`, as nc -v says it (a name whose IPv6 address is silent cost the whole timeout
/// with no word of which address).
fn connect(
    addrs: Vec<std::net::SocketAddr>,
    target: &str,
    timeout: Duration,
    verbose: bool,
) -> Result<TcpStream, crate::exit::Failure> {
    let mut failed = Vec::new();
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(connected) => return Ok(connected),
            Err(e) => {
                if verbose {
                    crate::exit::say(format_args!("netkit: connect to {addr} failed: {e}"));
                }
                failed.push((addr, e));
            }
        }
    }
    let why = match failed.as_slice() {
        [] => "no address".to_owned(),
        [(_, e)] => e.to_string(),
        all => all
            .iter()
            .map(|(addr, e)| format!("{addr}: {e}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Err(anyhow!("cannot connect to {target}: {why}").into())
}

/// Listens on the first of `addrs` and takes one connection; the listener is closed then,
/// as nc -l closes it, so a second client is refused rather than left waiting.
fn accept(
    addrs: &[std::net::SocketAddr],
    target: &str,
    verbose: bool,
) -> Result<(TcpStream, String), crate::exit::Failure> {
    let listener = TcpListener::bind(addrs)
        .with_context(|| format!("cannot listen on {target}"))
        .code(GENERIC)?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    if verbose || addrs.iter().all(|a| a.port() == 0) {
        crate::exit::say(format_args!("netkit: listening on {local}"));
    }
    let (stream, peer) = listener
        .accept()
        .with_context(|| format!("cannot accept on {local}"))?;
    if verbose {
        crate::exit::say(format_args!("netkit: connection from {peer}"));
    }
    Ok((stream, peer.to_string()))
}

/// Copies stdin to `stream` and `stream` to stdout until the peer closes, or (with `idle`)
/// until neither side has spoken for that long.
fn copy(mut stream: TcpStream, target: &str, idle: Option<Duration>) -> Outcome {
    let mut sender = stream.try_clone().context("cannot share the socket")?;
    // When stdin last sent something, for -w: the connection is idle only when neither side
    // spoke (a silent sink must not cut an upload short).
    let start = Instant::now();
    let sent_at = Arc::new(AtomicU64::new(0));
    let sent = Arc::clone(&sent_at);
    // Disconnected once stdin is all sent, or given why it cannot be.
    let (sending, sender_done) = std::sync::mpsc::channel::<std::io::Error>();
    crate::spawn(move || {
        let mut stdin = crate::stdio::stdin();
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("reading stdin: {e}");
                    break;
                }
            };
            if let Err(e) = sender.write_all(&buf[..n]) {
                let _ = sending.send(e);
                break;
            }
            sent.store(millis(start.elapsed()), Ordering::Relaxed);
        }
        // Half-close, so the peer sees our EOF and we still read its answer.
        let _ = sender.shutdown(Shutdown::Write);
    })?;
    let mut stdout = crate::stdio::stdout();
    let mut buf = vec![0; 64 * 1024];
    let mut received_at = 0;
    let mut peer_done = false;
    loop {
        let left = match idle {
            Some(timeout) => {
                let last = received_at.max(sent_at.load(Ordering::Relaxed));
                let quiet = Duration::from_millis(millis(start.elapsed()).saturating_sub(last));
                if quiet >= timeout {
                    // -w: silent both ways for that long; nc ends as quietly.
                    return Ok(ExitCode::SUCCESS);
                }
                Some(timeout - quiet)
            }
            None => None,
        };
        if peer_done {
            let waited = match left {
                Some(left) => sender_done.recv_timeout(left),
                None => sender_done
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match waited {
                Err(RecvTimeoutError::Timeout) => continue,
                // Said in words: a broken pipe here is the peer's, not a reader of our stdout
                // gone (which `exit::report` lets pass), and stdin was not all delivered.
                Ok(e) => {
                    return Err(anyhow::anyhow!(
                        "{target} closed the connection before stdin was all sent ({e})"
                    )
                    .into());
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(ExitCode::SUCCESS),
            }
        }
        if let Some(left) = left {
            stream
                .set_read_timeout(Some(left))
                .context("cannot set the read timeout")?;
        }
        let n = match stream.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => other.with_context(|| format!("reading from {target}"))?,
        };
        if n == 0 {
            // The peer has said all it will, but what stdin still holds goes to it before
            // netkit ends, as nc sends it: a half-closing server must not lose a piped
            // upload. A person at a terminal has nothing unsent to wait for.
            if std::io::stdin().is_terminal() {
                return Ok(ExitCode::SUCCESS);
            }
            peer_done = true;
            continue;
        }
        received_at = millis(start.elapsed());
        stdout.write_all(&buf[..n]).context("writing to stdout")?;
        stdout.flush().context("writing to stdout")?;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
