//! Echo load: `echo-load --addr A --conns N --secs S [--threads T]` (64 B round trips, every
//! byte checked, from one event loop per core) prints `rps=... p50_us=... p99_us=... p999_us=...`;
//! `echo-load --addr A --stream BYTES` (one connection, write and read concurrently) prints
//! `mib_s=...`. Any wrong or missing byte is an error, and so is a wait longer than 10 s for
//! a connection or a byte.
#![allow(clippy::print_stdout, reason = "prints its figures for the harness")]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The longest wait for a connection, a byte, or (after the run) the last echoes: a server
/// that stops answering ends the run with an error instead of hanging the bench.
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    let addr: String = net_bench::arg("--addr", String::new());
    let stream_bytes: u64 = net_bench::arg("--stream", 0);
    if stream_bytes > 0 {
        return stream(&addr, stream_bytes);
    }
    let conns: usize = net_bench::arg("--conns", 50);
    let secs: f64 = net_bench::arg("--secs", 3.0);
    let threads: usize = net_bench::arg(
        "--threads",
        std::thread::available_parallelism().map_or(2, usize::from),
    );
    // The clock starts once every connection is up: a SYN the server's backlog dropped is
    // retried after 1 s, which would otherwise eat a short run (it did, at 500 connections).
    let ready = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let addr = addr.clone();
            let ready = Arc::clone(&ready);
            // Connections spread evenly: thread t drives every threads-th one.
            let mine = (t..conns).step_by(threads).map(|i| i as u64).collect();
            std::thread::spawn(move || round_trips(&addr, mine, &ready, secs))
        })
        .collect();
    ready.wait();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(joined(worker)?);
    }
    if all.is_empty() {
        return Err("no round trip completed".into());
    }
    // Each thread sends for `secs` from the barrier, then waits for its last echoes: the
    // rate is over the sending time alone.
    let [p50, p99, p999] = [0.5, 0.99, 0.999].map(|q| net_bench::percentile(&mut all, q));
    println!(
        "rps={:.0} p50_us={p50} p99_us={p99} p999_us={p999}",
        all.len() as f64 / secs
    );
    Ok(())
}

/// One connection of the load: a single 64-byte message in flight at a time.
struct Conn {
    stream: mio::net::TcpStream,
    salt: u64,
    n: u64,
    msg: [u8; 64],
    back: [u8; 64],
    got: usize,
    sent_at: Instant,
    /// A message is sent and its echo not yet wholly back.
    waiting: bool,
}

impl Conn {
    /// Writes the next message; 64 bytes always fit an empty socket buffer.
    fn send(&mut self) -> io::Result<()> {
        // The connection and the message number in fields of their own, so that no echo from
        // another connection or an earlier message can match.
        self.msg[..8].copy_from_slice(&self.salt.to_le_bytes());
        self.msg[8..16].copy_from_slice(&self.n.to_le_bytes());
        self.sent_at = Instant::now();
        self.got = 0;
        self.waiting = true;
        if self.stream.write(&self.msg)? != self.msg.len() {
            return Err(io::Error::other("a 64-byte write was cut short"));
        }
        Ok(())
    }

    /// Reads what the echo sent back; returns the round trip's latency in microseconds once
    /// the whole message is back and checked.
    fn receive(&mut self) -> io::Result<Option<u64>> {
        while self.got < self.back.len() {
            match self.stream.read(&mut self.back[self.got..]) {
                Ok(0) => return Err(io::Error::other("the echo server closed the connection")),
                Ok(n) => self.got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.msg != self.back {
            return Err(io::Error::other("echo returned other bytes"));
        }
        self.n += 1;
        self.waiting = false;
        Ok(Some(self.sent_at.elapsed().as_micros() as u64))
    }
}

/// Closed-loop 64-byte round trips on the connections `salts` (one per salt) from one event
/// loop for `secs` from the moment every thread is connected (and at most 50 million each);
/// returns every round trip's latency in
/// microseconds. One loop drives many connections, as the servers do, so the load generator
/// does not spend the CPU the servers need on a thread switch per round trip.
fn round_trips(addr: &str, salts: Vec<u64>, ready: &Barrier, secs: f64) -> io::Result<Vec<u64>> {
    let connected = connect_all(addr, salts);
    // Waiting even after a failed connect, or the other threads would wait forever.
    ready.wait();
    let (mut poll, mut conns) = connected?;
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut events = mio::Events::with_capacity(1024);
    for conn in &mut conns {
        conn.send()?;
    }
    let mut latencies = Vec::with_capacity(100_000 * conns.len().max(1));
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        poll.poll(&mut events, Some(until - now))?;
        for event in &events {
            let conn = &mut conns[event.token().0];
            if let Some(micros) = conn.receive()? {
                latencies.push(micros);
                if conn.n < 50_000_000 && Instant::now() < until {
                    conn.send()?;
                }
            }
        }
    }
    // Every message sent must come back, however short the run: a lost echo would otherwise
    // only silence its connection and lower the figures. Nothing is sent after `until`, so
    // this waits for at most one echo per connection.
    let drained = Instant::now() + TIMEOUT;
    loop {
        if conns.iter().all(|c| !c.waiting) {
            return Ok(latencies);
        }
        let now = Instant::now();
        if now >= drained {
            break;
        }
        poll.poll(&mut events, Some(drained - now))?;
        for event in &events {
            conns[event.token().0].receive()?;
        }
    }
    let missing = conns.iter().filter(|c| c.waiting).count();
    Err(io::Error::other(format!(
        "{missing} of {} connections' last echo did not come back within {} s of the run's end",
        conns.len(),
        TIMEOUT.as_secs()
    )))
}

/// Opens the connections `salts` (one per salt), registered for reading on a new poll.
fn connect_all(addr: &str, salts: Vec<u64>) -> io::Result<(mio::Poll, Vec<Conn>)> {
    let poll = mio::Poll::new()?;
    let addr = resolve(addr)?;
    let mut conns = Vec::with_capacity(salts.len());
    for (i, salt) in salts.into_iter().enumerate() {
        let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut stream = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(&mut stream, mio::Token(i), mio::Interest::READABLE)?;
        conns.push(Conn {
            stream,
            salt,
            n: 0,
            msg: [0; 64],
            back: [0; 64],
            got: 0,
            sent_at: Instant::now(),
            waiting: false,
        });
    }
    Ok((poll, conns))
}

fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{addr:?} names no address")))
}

fn joined<T>(handle: JoinHandle<io::Result<T>>) -> Result<T> {
    Ok(handle.join().map_err(|_| "a load thread panicked")??)
}

/// The stream's bytes repeat every `PERIOD` (a prime, no power of two), so a chunk echoed out
/// of order or twice does not match.
const PERIOD: u64 = 251;
const CHUNK: usize = 256 * 1024;

/// The pattern from offset 0, long enough that `[offset % PERIOD..][..CHUNK]` is the stream's
/// next `CHUNK` bytes at any offset.
fn pattern() -> Vec<u8> {
    (0..CHUNK as u64 + PERIOD)
        .map(|i| (i % PERIOD) as u8)
        .collect()
}

/// The stream's `n` bytes at `offset` (`n` at most `CHUNK`).
fn expected(pattern: &[u8], offset: u64, n: usize) -> &[u8] {
    let start = (offset % PERIOD) as usize;
    &pattern[start..start + n]
}

/// A socket timeout, said as what it means here.
fn stalled(e: io::Error) -> io::Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        io::Error::other(format!(
            "the echo server took or sent no byte for {} s",
            TIMEOUT.as_secs()
        ))
    } else {
        e
    }
}

fn stream(addr: &str, bytes: u64) -> Result<()> {
    let s = TcpStream::connect_timeout(&resolve(addr)?, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    let mut writer = s.try_clone()?;
    let started = Instant::now();
    let sender = std::thread::spawn(move || -> io::Result<()> {
        let pattern = pattern();
        let mut sent = 0u64;
        while sent < bytes {
            let n = (bytes - sent).min(CHUNK as u64) as usize;
            writer
                .write_all(expected(&pattern, sent, n))
                .map_err(stalled)?;
            sent += n as u64;
        }
        writer.shutdown(std::net::Shutdown::Write)
    });
    let mut reader = s;
    let mut buf = vec![0u8; CHUNK];
    let pattern = pattern();
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(stalled)?;
        if n == 0 {
            break;
        }
        if buf[..n] != *expected(&pattern, got, n) {
            return Err(format!("echo returned other bytes near byte {got}").into());
        }
        got += n as u64;
    }
    joined(sender)?;
    if got != bytes {
        return Err(format!("echo returned {got} of {bytes} bytes").into());
    }
    println!(
        "mib_s={:.1}",
        got as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}
