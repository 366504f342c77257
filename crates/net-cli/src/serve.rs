//! `netkit serve`: argument parsing and printing only.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use net_socket::{Chat, Echo, HttpFiles, ServerBuilder, Service};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};

use crate::exit::{GENERIC, Outcome, USAGE, WithCode};

/// Arguments of `netkit serve`.
#[derive(clap::Args)]
#[command(after_help = "\
Signals: SIGINT, SIGTERM and SIGQUIT (nginx's graceful stop) stop accepting and let open \
connections finish, for --shutdown-timeout at most; a second one ends the server at once. \
SIGUSR1 (logrotate's \"reopen the logs\") is taken and changes nothing: netkit logs to stderr. \
SIGHUP ends the server at once: there is no reload.

Exit status: 0 after a graceful shutdown, 130, 143 or 131 when a second signal cuts it short, \
129 at SIGHUP, 1 when the server cannot start (address in use, permission, a thread limit), 2 \
for bad arguments (bad address, a missing --root directory or one that is no directory).

Examples:
  netkit serve http --root .                  serve the current directory on 127.0.0.1:8000
  netkit serve echo --bind 0.0.0.0:7000 --bind [::]:7000
  netkit serve chat --bind 127.0.0.1:0        print the port picked in 'listening on ...'")]
pub struct Args {
    /// The service: `echo` (bytes back), `chat` (line chat room), `http` (static files).
    #[arg(value_enum)]
    service: Kind,
    /// Address to listen on, as IP:PORT or HOST:PORT, or a port alone (on 127.0.0.1); repeat
    /// for several. Port 0 picks one.
    #[arg(long, short, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    bind: Vec<String>,
    /// Event-loop threads, 1 to 1024 [default: the number of cores].
    #[arg(long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    threads: Option<usize>,
    /// Connections open at once; past it, an idle keep-alive connection (http) gives way to
    /// the newcomer, else the newcomer is closed as soon as accepted (http answers it 503,
    /// chat says the room is full).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_connections: usize,
    /// Close connections idle for this many seconds [default: never; http closes idle
    /// keep-alive connections after 60 s, or after this many seconds when given].
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// `http`: drop a client that takes none of a response for this many seconds, as
    /// nginx's send_timeout (a slow reader takes bytes seconds apart: keep it long).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    send_timeout: u64,
    /// Seconds open connections get to finish after SIGINT, SIGTERM or SIGQUIT (a download
    /// still running then is cut, with a warning).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    shutdown_timeout: u64,
    /// `http`: seconds a client may take to send a request's headers before 408.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    header_timeout: u64,
    /// Directory served by `http` [default: the current directory].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind {
    /// Every byte back as it came; a client that does not read them back has its input
    /// wait once 64 KiB are queued (about 160 KiB of memory each, with the read in hand).
    Echo,
    /// A line chat room: each line goes to everyone else; /nick NAME, /who, /quit [MESSAGE],
    /// /help, //WORD says /WORD; lines up to 64 KiB; a member sends 64 KiB at once and
    /// 16 KiB/s after (faster, its input waits); one that leaves 256 KiB unread is dropped.
    Chat,
    /// Static files and directory listings from --root over HTTP/1.1 (GET and HEAD).
    Http,
}

/// Runs `netkit serve`.
pub fn run(args: Args) -> Outcome {
    let mut builder = ServerBuilder::new()
        .max_connections(args.max_connections)
        .shutdown_timeout(Duration::from_secs(args.shutdown_timeout));
    let mut addrs = Vec::new();
    for bind in &args.bind {
        addrs.extend(resolve(bind).code(USAGE)?);
    }
    for addr in listened(addrs) {
        builder = builder.bind(addr);
    }
    // A zero would make a server that serves nobody.
    for (flag, value) in [
        ("--max-connections", Some(args.max_connections as u64)),
        ("--idle-timeout", args.idle_timeout),
        ("--header-timeout", Some(args.header_timeout)),
        ("--send-timeout", Some(args.send_timeout)),
    ] {
        if value == Some(0) {
            return Err(anyhow!("{flag} must be at least 1")).code(USAGE);
        }
    }
    if let Some(threads) = args.threads {
        builder = builder.threads(threads);
    }
    // The http service keeps its own times (header, keep-alive, send): the loop's idle
    // timeout, counted from the last write, cut slow readers whose socket buffers took
    // seconds to drain, and heads sent slowly, without a 408.
    if let (Some(secs), Kind::Echo | Kind::Chat) = (args.idle_timeout, args.service) {
        builder = builder.idle_timeout(Duration::from_secs(secs));
    }
    match args.service {
        Kind::Http => {
            let root = args.root.unwrap_or_else(|| PathBuf::from("."));
            let files = match HttpFiles::new(root) {
                Ok(files) => files,
                Err(e) => {
                    // A --root that is no directory is a bad argument; one the user may not
                    // enter is a server that cannot start, as --help says.
                    let code = match &e {
                        net_socket::Error::Root { source, .. }
                            if matches!(
                                source.kind(),
                                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                            ) =>
                        {
                            USAGE
                        }
                        _ => GENERIC,
                    };
                    return Err(e).code(code);
                }
            };
            let mut files = files
                .header_timeout(Duration::from_secs(args.header_timeout))
                .send_timeout(Duration::from_secs(args.send_timeout));
            if let Some(secs) = args.idle_timeout {
                files = files.keep_alive_timeout(Duration::from_secs(secs));
            }
            // Pipelined requests are answered while their answers queue under this, as nginx
            // answers one at a time: at the default 1 MiB, a client pipelining and never
            // reading held 1 MiB of memory, or a descriptor per file answer (100 of them:
            // 1,914), until the send timeout. A file answer past it waits whole.
            serve(builder.max_pending_output(64 << 10), files)
        }
        Kind::Echo | Kind::Chat if args.root.is_some() => {
            Err(anyhow!("--root only applies to `netkit serve http`")).code(USAGE)
        }
        // What a client sends and does not read back waits here up to this: at the default
        // 1 MiB, a thousand such clients held 1.1 GB (tokio's echo, 12 MB); the kernel's
        // socket buffers already keep a stream going.
        Kind::Echo => serve(builder.max_pending_output(64 << 10), Echo::service()),
        // Room for four bursts of a member's lines (the room's flood control lets 64 KiB go
        // at once): at the default 1 MiB, one sender had 500 members that did not read hold
        // 585 MB.
        Kind::Chat => serve(builder.max_pending_output(256 << 10), Chat::new()),
    }
}

/// The addresses to listen on: each once, and one a wildcard of its family on the same port
/// covers (`0.0.0.0:80` covers `127.0.0.1:80`) left to it, as nginx binds only the wildcard
/// then: listening on both failed with "address already in use", netkit against itself.
/// Port 0 asks for a new port each time, so those stay.
fn listened(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let covered = |addr: &SocketAddr| {
        addr.port() != 0
            && !addr.ip().is_unspecified()
            && addrs.iter().any(|other| {
                other.ip().is_unspecified()
                    && other.is_ipv4() == addr.is_ipv4()
                    && other.port() == addr.port()
            })
    };
    let mut kept: Vec<SocketAddr> = Vec::new();
    for addr in &addrs {
        if !covered(addr) && (addr.port() == 0 || !kept.contains(addr)) {
            kept.push(*addr);
        }
    }
    kept
}

fn resolve(bind: &str) -> anyhow::Result<Vec<SocketAddr>> {
    // A bare port (`--bind 8000`, as `python -m http.server 8000`) stays on loopback, as the
    // default does: listening beyond it is asked for by naming an address.
    if let Ok(port) = bind.parse::<u16>() {
        return Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    }
    let addrs: Vec<SocketAddr> = bind
        .to_socket_addrs()
        .with_context(|| {
            format!(
                "bad address {bind:?}: expected IP:PORT such as 127.0.0.1:8000 or [::1]:8000, or a port"
            )
        })?
        .collect();
    if addrs.is_empty() {
        anyhow::bail!("bad address {bind:?}: it resolves to no address");
    }
    Ok(addrs)
}

fn serve<S: Service>(builder: ServerBuilder, service: S) -> Outcome {
    // Handlers first: a supervisor may signal as soon as it reads "listening on".
    let mut signals = crate::signals::watch(&[SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1])
        .context("cannot install signal handlers")?;
    let server = builder.build(service).code(GENERIC)?;
    let stop = server.shutdown_handle();
    // The signal that cut the shutdown short, for the exit code a shell gives it (143, 130).
    static CUT_SHORT: AtomicI32 = AtomicI32::new(0);
    crate::spawn(move || {
        let mut stopping = false;
        for signal in signals.forever() {
            if signal == SIGUSR1 {
                log::info!("SIGUSR1: no log file to reopen (netkit logs to stderr)");
            } else if CUT_SHORT.load(Ordering::SeqCst) != 0 {
                std::process::exit(128 + signal);
            } else if stopping || signal == SIGHUP {
                // The connections are closed now, and their access-log lines written with
                // the bytes that went (nginx's fast shutdown drops them), then the log is
                // drained; a third signal ends it there.
                CUT_SHORT.store(signal, Ordering::SeqCst);
                stop.shutdown_now();
            } else {
                stopping = true;
                stop.shutdown();
                log::info!("signal received: finishing open connections (again to quit at once)");
            }
        }
    })
    .code(GENERIC)?;
    let addrs = server.local_addrs().to_vec();
    let ran = server.run_ready(|| {
        for addr in addrs {
            crate::exit::say(format_args!("listening on {addr}"));
        }
    });
    crate::log_queue::drain(Duration::from_secs(2));
    ran?;
    match CUT_SHORT.load(Ordering::SeqCst) {
        0 => Ok(ExitCode::SUCCESS),
        signal => Ok(ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_twice_or_under_a_wildcard_is_listened_on_once() {
        let addrs = |list: &[&str]| -> Vec<SocketAddr> {
            list.iter().map(|a| a.parse().unwrap()).collect()
        };
        assert_eq!(
            listened(addrs(&["127.0.0.1:80", "0.0.0.0:80", "127.0.0.1:80"])),
            addrs(&["0.0.0.0:80"])
        );
        assert_eq!(
            listened(addrs(&[
                "127.0.0.1:80",
                "127.0.0.1:80",
                "[::1]:80",
                "0.0.0.0:81"
            ])),
            addrs(&["127.0.0.1:80", "[::1]:80", "0.0.0.0:81"])
        );
        assert_eq!(
            listened(addrs(&[
                "[::1]:80",
                "[::]:80",
                "127.0.0.1:0",
                "127.0.0.1:0"
            ])),
            addrs(&["[::]:80", "127.0.0.1:0", "127.0.0.1:0"])
        );
    }
}
