//! Echo load: `echo-load --addr A --conns N --secs S` (64 B round trips, every byte checked)
//! prints `rps=... p99_us=...`; `echo-load --addr A --stream BYTES` (one connection, write
//! and read concurrently) prints `mib_s=...`.
#![allow(clippy::print_stdout, reason = "prints its figures for the harness")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let addr: String = net_bench::arg("--addr", String::new());
    let stream_bytes: u64 = net_bench::arg("--stream", 0);
    if stream_bytes > 0 {
        stream(&addr, stream_bytes);
        return;
    }
    let conns: usize = net_bench::arg("--conns", 50);
    let secs: f64 = net_bench::arg("--secs", 3.0);
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let workers: Vec<_> = (0..conns)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).expect("connect");
                s.set_nodelay(true).expect("nodelay");
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut msg = [0u8; 64];
                let mut back = [0u8; 64];
                let mut latencies = Vec::with_capacity(100_000);
                let mut n: u64 = 0;
                // Bounded by time and by count.
                while Instant::now() < until && n < 50_000_000 {
                    msg[..8].copy_from_slice(&(n ^ i as u64).to_le_bytes());
                    let t = Instant::now();
                    s.write_all(&msg).expect("write");
                    s.read_exact(&mut back).expect("read");
                    latencies.push(t.elapsed().as_micros() as u64);
                    assert_eq!(msg, back, "echo returned other bytes");
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut all: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    let elapsed = started.elapsed().as_secs_f64().max(secs);
    let p99 = net_bench::percentile(&mut all, 0.99);
    println!("rps={:.0} p99_us={p99}", all.len() as f64 / elapsed);
}

fn stream(addr: &str, bytes: u64) {
    let s = TcpStream::connect(addr).expect("connect");
    let mut writer = s.try_clone().expect("clone");
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let chunk = vec![0x5au8; 256 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            writer.write_all(&chunk[..n]).expect("write");
            left -= n as u64;
        }
        writer
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
    });
    let mut reader = s;
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        assert!(
            buf[..n].iter().all(|&b| b == 0x5a),
            "echo returned other bytes"
        );
        got += n as u64;
    }
    sender.join().expect("sender");
    assert_eq!(got, bytes, "echo lost bytes");
    println!(
        "mib_s={:.1}",
        got as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
    );
}
