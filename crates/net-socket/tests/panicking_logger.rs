//! A logger that panics must not end the server: its own test process, as the logger is
//! global.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use net_socket::{ConnInfo, Context, Handler, ServerBuilder};

/// Panics on every error record, as env_logger's timestamp did with a clock past 9999.
struct Panicking;

impl log::Log for Panicking {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        assert!(record.level() != log::Level::Error, "a logger bug");
    }

    fn flush(&self) {}
}

/// Echoes, and panics on a line `PANIC`.
struct Fragile;

impl Handler for Fragile {
    fn on_data(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        assert!(data != b"PANIC\n", "a handler bug");
        ctx.write(data);
    }
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn a_logger_panicking_on_the_report_of_a_caught_panic_ends_nothing() {
    log::set_logger(&Panicking).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    // One loop: had the report's panic unwound out of it, no client would be served again.
    let server = ServerBuilder::new()
        .threads(1)
        .bind("127.0.0.1:0".parse().unwrap())
        .build(|_: &ConnInfo| Fragile)
        .unwrap();
    let addr = server.local_addrs()[0];
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    let mut culprit = connect(addr);
    culprit.write_all(b"PANIC\n").unwrap();
    let mut rest = Vec::new();
    let _ = culprit.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    let mut next = connect(addr);
    next.write_all(b"still here\n").unwrap();
    let mut back = [0; 11];
    next.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here\n");
    stop.shutdown();
    thread.join().unwrap().unwrap();
}
