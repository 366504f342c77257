//! Echo load: `echo-load --addr A --conns N --secs S` (64 B round trips, every byte checked)
//! prints `rps=... p99_us=...`; `echo-load --addr A --stream BYTES` (one connection, write
//! and read concurrently) prints `mib_s=...`. Any wrong or missing byte is an error.
#![allow(clippy::print_stdout, reason = "prints its figures for the harness")]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let addr: String = net_bench::arg("--addr", String::new());
    let stream_bytes: u64 = net_bench::arg("--stream", 0);
    if stream_bytes > 0 {
        return stream(&addr, stream_bytes);
    }
    let conns: usize = net_bench::arg("--conns", 50);
    let secs: f64 = net_bench::arg("--secs", 3.0);
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let workers: Vec<_> = (0..conns)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || round_trips(&addr, i as u64, until))
        })
        .collect();
    let started = Instant::now();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(joined(worker)?);
    }
    let elapsed = started.elapsed().as_secs_f64().max(secs);
    let p99 = net_bench::percentile(&mut all, 0.99);
    println!("rps={:.0} p99_us={p99}", all.len() as f64 / elapsed);
    Ok(())
}

/// 64-byte round trips on one connection until `until` (and at most 50 million); returns
/// each one's latency in microseconds.
fn round_trips(addr: &str, salt: u64, until: Instant) -> io::Result<Vec<u64>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut msg = [0u8; 64];
    let mut back = [0u8; 64];
    let mut latencies = Vec::with_capacity(100_000);
    let mut n: u64 = 0;
    while Instant::now() < until && n < 50_000_000 {
        msg[..8].copy_from_slice(&(n ^ salt).to_le_bytes());
        let t = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        latencies.push(t.elapsed().as_micros() as u64);
        if msg != back {
            return Err(io::Error::other("echo returned other bytes"));
        }
        n += 1;
    }
    Ok(latencies)
}

fn joined<T>(handle: JoinHandle<io::Result<T>>) -> Result<T> {
    Ok(handle.join().map_err(|_| "a load thread panicked")??)
}

fn stream(addr: &str, bytes: u64) -> Result<()> {
    let s = TcpStream::connect(addr)?;
    let mut writer = s.try_clone()?;
    let started = Instant::now();
    let sender = std::thread::spawn(move || -> io::Result<()> {
        let chunk = vec![0x5au8; 256 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            writer.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        writer.shutdown(std::net::Shutdown::Write)
    });
    let mut reader = s;
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0x5a) {
            return Err("echo returned other bytes".into());
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
