//! `delay-proxy --listen ADDR --to ADDR --ms N`: a TCP proxy that delays every chunk by N ms
//! each way without limiting bandwidth, to measure protocols over a link with latency.
#![allow(clippy::print_stderr, reason = "reports its address like netkit serve")]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let listen: String = net_bench::arg("--listen", "127.0.0.1:0".to_owned());
    let to: String = net_bench::arg("--to", String::new());
    let delay = Duration::from_millis(net_bench::arg("--ms", 5));
    let listener = TcpListener::bind(&listen)?;
    eprintln!("listening on {}", listener.local_addr()?);
    for client in listener.incoming().flatten() {
        let Ok(server) = TcpStream::connect(&to) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (c2, s2) = (client.try_clone()?, server.try_clone()?);
        std::thread::spawn(move || pipe(client, s2, delay));
        std::thread::spawn(move || pipe(server, c2, delay));
    }
    Ok(())
}

/// Copies `from` to `to`, each chunk leaving `delay` after it arrived.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0; 256 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0
            || tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
}
