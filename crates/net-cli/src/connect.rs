//! `netkit connect`: argument parsing and printing only.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};

use crate::exit::{GENERIC, Outcome, USAGE, WithCode};

/// Arguments of `netkit connect`.
#[derive(clap::Args)]
#[command(after_help = "\
Copies stdin to the socket and the socket to stdout, like `nc`. At the end of stdin the \
sending side is shut down and netkit keeps printing until the peer closes.

Exit status: 0 when the peer closed, 1 when the connection failed, 2 for a bad address.

Examples:
  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | netkit connect 127.0.0.1:8000
  netkit connect ::1 8000")]
pub struct Args {
    /// Where to connect, as HOST:PORT (IPv6 as [::1]:PORT), or HOST PORT as nc.
    #[arg(value_name = "HOST:PORT")]
    target: String,
    /// The port, when given apart from the host (`netkit connect HOST PORT`, as nc).
    #[arg(value_name = "PORT")]
    port: Option<u16>,
    /// Give up connecting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
}

/// Runs `netkit connect`.
pub fn run(args: Args) -> Outcome {
    let target = &match args.port {
        Some(port) if args.target.contains(':') && !args.target.starts_with('[') => {
            format!("[{}]:{port}", args.target)
        }
        Some(port) => format!("{}:{port}", args.target),
        None => args.target,
    };
    // A well-formed HOST:PORT whose host does not resolve is named as such, as nc does.
    let has_port = target
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    let addrs: Vec<_> = target
        .to_socket_addrs()
        .with_context(|| {
            if has_port {
                format!("cannot resolve {target:?}")
            } else {
                format!("bad address {target:?}: expected HOST:PORT")
            }
        })
        .code(USAGE)?
        .collect();
    let mut last_error = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(args.timeout.max(1))) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(mut stream) = stream else {
        let why = last_error.map_or_else(|| "no address".to_owned(), |e| e.to_string());
        return Err(anyhow!("cannot connect to {target}: {why}")).code(GENERIC);
    };
    let mut sender = stream.try_clone().context("cannot share the socket")?;
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        if let Err(e) = std::io::copy(&mut stdin, &mut sender) {
            log::debug!("sending stdin: {e}");
        }
        // Half-close, so the peer sees our EOF and we still read its answer.
        let _ = sender.shutdown(Shutdown::Write);
    });
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("reading from {target}"))?;
        if n == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        stdout.write_all(&buf[..n]).context("writing to stdout")?;
        stdout.flush().context("writing to stdout")?;
    }
}
