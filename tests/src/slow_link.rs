//! A slow link to a local TCP server, for a client's `ProxyCommand`: each way carries a fixed
//! number of bytes a second, and little waits in buffers on the way.
//!
//! A TCP relay on loopback alone does not make a slow link for the client: the client's own
//! socket takes up to 4 MiB (`tcp_wmem`) into its send buffer whatever the relay reads, so a
//! client that hands over megabytes at once sees them taken at once. Here the client's side
//! is its proxy command (`cat` to and from two FIFOs the relay reads and writes at the rate):
//! what it can hold is the client's socket pair and pipes, about half a MiB. The relay's
//! socket to the server is made with small buffers.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A slow link to a server on 127.0.0.1, carried by a `ProxyCommand` ([`SlowLink::proxy_command`]).
/// It carries one connection, made when the command starts; its threads end when either side
/// closes.
#[derive(Debug)]
pub struct SlowLink {
    up: PathBuf,
    down: PathBuf,
}

/// What the relay reads and writes at a time: the rate is kept to within one piece.
const PIECE: usize = 4096;

impl SlowLink {
    /// A link to `127.0.0.1:port` carrying `rate` bytes a second each way, through FIFOs
    /// made in `dir`.
    ///
    /// # Panics
    /// When the FIFOs cannot be made or a relay thread cannot start.
    #[must_use]
    pub fn start(dir: &Path, port: u16, rate: u32) -> SlowLink {
        std::fs::create_dir_all(dir).expect("make the link's directory");
        let (up, down) = (dir.join("up"), dir.join("down"));
        for fifo in [&up, &down] {
            let _ = std::fs::remove_file(fifo);
            let made = std::process::Command::new("mkfifo").arg(fifo).status();
            assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
        }
        let (up_path, down_path) = (up.clone(), down.clone());
        std::thread::Builder::new()
            .name("slow link".into())
            .spawn(move || {
                // Each open waits for the proxy command to open the other end.
                let Ok(from_client) = std::fs::File::open(&up_path) else {
                    return;
                };
                let Ok(server) = connect(port) else { return };
                let Ok(to_client) = std::fs::OpenOptions::new().write(true).open(&down_path) else {
                    return;
                };
                let Ok(from_server) = server.try_clone() else {
                    return;
                };
                let down = std::thread::spawn(move || copy(from_server, to_client, rate));
                copy(from_client, &server, rate);
                let _ = server.shutdown(std::net::Shutdown::Write);
                let _ = down.join();
            })
            .expect("start the slow link");
        SlowLink { up, down }
    }

    /// The `ProxyCommand` that runs a connection over the link.
    #[must_use]
    pub fn proxy_command(&self) -> String {
        format!(
            "cat '{}' & exec cat > '{}'",
            self.down.display(),
            self.up.display()
        )
    }
}

/// A connection to `127.0.0.1:port` whose socket buffers are small, so that what the server
/// sends waits in the server rather than in the relay's kernel buffers.
fn connect(port: u16) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_send_buffer_size(PIECE * 4)?;
    socket.set_recv_buffer_size(PIECE * 4)?;
    socket.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    Ok(socket.into())
}

/// Copies `from` to `to` until either ends, at most `rate` bytes a second: each piece waits
/// until the time the ones before it took at that rate has passed (a quiet spell earns no
/// burst).
fn copy(mut from: impl Read, mut to: impl Write, rate: u32) {
    let mut buf = [0; PIECE];
    let mut next = Instant::now();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        next = next.max(Instant::now()) + Duration::from_secs(n as u64) / rate;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        if to.write_all(&buf[..n]).is_err() || to.flush().is_err() {
            return;
        }
    }
}
