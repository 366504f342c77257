//! The open-file limit: a server raises a low soft limit so that its connections can open.
//! In its own test binary, since it changes a limit of the whole process.

use std::io::{Read, Write};
use std::net::TcpStream;

use net_socket::{Echo, ServerBuilder};
use nix::sys::resource::{Resource, getrlimit, setrlimit};

#[test]
fn a_low_soft_limit_is_raised_and_more_clients_than_it_are_served() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let low = 256;
    // Each client costs this process two descriptors (its end and the server's end).
    let clients = 400;
    assert!(
        hard >= 2 * clients + 200,
        "the hard limit {hard} is too low for this test"
    );
    setrlimit(Resource::RLIMIT_NOFILE, low, hard).unwrap();

    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .threads(2)
        .max_connections(1000)
        .build(Echo::service())
        .unwrap();
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert_eq!(
        soft,
        (2 * 1000 + 64).min(hard),
        "the soft limit was not raised"
    );

    let addr = server.local_addrs()[0];
    let stop = server.shutdown_handle();
    let running = std::thread::spawn(move || server.run());
    let mut open: Vec<TcpStream> = (0..clients)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    for (i, client) in open.iter_mut().enumerate() {
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let msg = format!("client {i:04}");
        client.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0; msg.len()];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
    drop(open);
    stop.shutdown();
    running.join().unwrap().unwrap();
}
