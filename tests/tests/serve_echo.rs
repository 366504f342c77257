//! `netkit serve echo` and `netkit connect`, as processes, over real sockets on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netkit_tests::{Served, netkit_bin};
use rand::RngCore;

fn client(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
}

#[test]
fn two_hundred_clients_get_one_mib_back_byte_exact() {
    let served = Served::start(&["echo", "--bind", "127.0.0.1:0", "--threads", "4"]);
    let addr = served.addrs[0];
    let clients: Vec<_> = (0..200)
        .map(|_| {
            std::thread::spawn(move || {
                let mut data = vec![0u8; 1 << 20];
                rand::rng().fill_bytes(&mut data);
                let stream = client(addr);
                let mut writer = stream.try_clone().unwrap();
                let sent = data.clone();
                let sender = std::thread::spawn(move || {
                    writer.write_all(&sent).unwrap();
                    writer.shutdown(std::net::Shutdown::Write).unwrap();
                });
                let mut back = Vec::with_capacity(1 << 20);
                (&stream).read_to_end(&mut back).unwrap();
                sender.join().unwrap();
                back == data
            })
        })
        .collect();
    let exact = clients
        .into_iter()
        .map(|c| c.join().unwrap_or(false))
        .filter(|&ok| ok)
        .count();
    assert_eq!(
        exact, 200,
        "only {exact} of 200 clients got their bytes back exactly"
    );
}

#[test]
fn connect_half_closes_and_prints_until_the_peer_closes() {
    let served = Served::start(&["echo", "--bind", "127.0.0.1:0"]);
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["connect", &served.addrs[0].to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut data = vec![0u8; 3 << 20];
    rand::rng().fill_bytes(&mut data);
    let mut stdin = child.stdin.take().unwrap();
    let sent = data.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&sent).unwrap());
    let out = child.wait_with_output();
    feeder.join().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(out.stdout == data, "netkit connect lost or changed bytes");

    // nc's `HOST PORT`, IPv6 included.
    let both = Served::start(&["echo", "--bind", "[::1]:0", "--bind", "127.0.0.1:0"]);
    for addr in &both.addrs {
        let ip = addr.ip().to_string();
        let port = addr.port().to_string();
        let mut child = netkit_tests::Spawned::start(
            Command::new(netkit_bin())
                .args(["connect", &ip, &port])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        child.stdin.take().unwrap().write_all(b"apart\n").unwrap();
        let out = child.wait_with_output();
        assert_eq!(
            (out.status.code(), out.stdout.as_slice()),
            (Some(0), &b"apart\n"[..]),
            "{ip} {port}"
        );
    }

    // A peer that half-closes first still gets the rest of a piped stdin, as with nc.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["connect", &listener.local_addr().unwrap().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    peer.write_all(b"banner\n").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"late upload\n").unwrap();
    drop(stdin);
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), "late upload\n");
    let out = child.wait_with_output();
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"banner\n"[..])
    );

    // A peer that resets the connection while stdin is still going out: the upload was
    // lost, which is no success (it exited 0 without a word).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["connect", &listener.local_addr().unwrap().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdin = child.stdin.take().unwrap();
    let feeding = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) && stdin.write_all(&[0; 65536]).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let (peer, _) = listener.accept().unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    let out = child.wait_with_output();
    feeding.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("closed the connection before stdin was all sent"),
        "{err}"
    );
}

#[test]
fn connect_l_takes_one_connection_and_copies_both_ways() {
    use std::io::BufRead as _;
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["connect", "-l", "-v", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut said = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    said.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("netkit: listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "a port alone is loopback: {addr}"
    );
    let mut peer = client(addr.parse().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"down\n").unwrap();
    drop(stdin);
    peer.write_all(b"up\n").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"down\n");
    // One connection, as nc -l: the listener is gone once it is taken.
    assert!(
        TcpStream::connect(&addr).is_err(),
        "a second client was let in"
    );
    let out = child.wait_with_output();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"up\n");
    line.clear();
    said.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("netkit: connection from 127.0.0.1:"),
        "{line:?}"
    );

    // An address that cannot be listened on is said in one line, exit 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let out = Command::new(netkit_bin())
        .args(["connect", "-l", &taken])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {taken}")) && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn connect_z_only_connects_and_w_ends_a_silent_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // -z: connected, nothing sent, closed; -v says so.
    let out = Command::new(netkit_bin())
        .args(["connect", "-z", "-v", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("connected to {addr}")));
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert!(got.is_empty(), "-z sent {got:?}");

    // -w 2: a peer and a stdin both silent end it (exit 0), while stdin is still open; one
    // that keeps sending is not cut short by a peer that never answers (the last line goes at
    // 1 s: the end comes two seconds after it, not two after the start).
    let started = Instant::now();
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["connect", "-w", "2", &addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut stdin = child.stdin.take().unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for _ in 0..3 {
        stdin.write_all(b"tick\n").unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = child.wait_with_output();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(15),
        "{took:?}"
    );
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"tick\ntick\ntick\n");
    drop(stdin);
}

#[test]
fn connect_reports_bad_and_refused_addresses() {
    let out = Command::new(netkit_bin())
        .args(["connect", "no-port-here"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad address \"no-port-here\""), "{err}");
    // An IPv6 address alone has no port (its last group was taken for one: "cannot
    // resolve \"::1\"", exit 1), with -l too.
    for args in [
        &["connect", "::1"][..],
        &["connect", "-l", "::1"],
        &["connect", "fe80::1"],
    ] {
        let out = Command::new(netkit_bin()).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(": no port") && err.lines().count() == 1,
            "{err}"
        );
    }
    // The port given twice is said so (it was read as an IPv6 host that did not resolve).
    let out = Command::new(netkit_bin())
        .args(["connect", "127.0.0.1:9", "9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the port is given twice") && err.lines().count() == 1,
        "{err}"
    );

    // A name that does not resolve is a connection that failed: 1, as nc exits.
    let out = Command::new(netkit_bin())
        .args([
            "connect",
            &format!("{}:80", netkit_tests::UNRESOLVABLE_HOST),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot resolve") && err.lines().count() == 1,
        "{err}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = Command::new(netkit_bin())
        .args(["connect", &closed.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("netkit: error: cannot connect to {closed}")),
        "{err}"
    );
}

#[test]
fn bad_address_port_in_use_and_missing_root_are_one_line_errors() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let missing = netkit_tests::work_dir().join("no-such-root");
    let missing = missing.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 9] = [
        // Refused before any name lookup: a test never asks the machine's name server.
        (
            &["echo", "--bind", "127.0.0.1:99999"],
            2,
            "bad address \"127.0.0.1:99999\"",
        ),
        (
            &["echo", "--bind", "127.0.0.1"],
            2,
            "bad address \"127.0.0.1\"",
        ),
        (&["echo", "--bind", &taken], 1, "address already in use"),
        (
            &["http", "--bind", "127.0.0.1:0", "--root", missing],
            2,
            missing,
        ),
        // A zero would make a server that serves nobody; a hundred thousand loops ran out of
        // descriptors with an error that did not name the flag.
        (&["echo", "--threads", "0"], 2, "0 is not in 1..=1024"),
        (
            &["echo", "--threads", "100000"],
            2,
            "100000 is not in 1..=1024",
        ),
        (&["echo", "--max-connections", "0"], 2, "--max-connections"),
        (&["echo", "--idle-timeout", "0"], 2, "--idle-timeout"),
        (&["http", "--header-timeout", "0"], 2, "--header-timeout"),
    ];
    for (args, code, needle) in cases {
        let out = Command::new(netkit_bin())
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("netkit: error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn max_connections_plus_one_is_closed_and_others_are_served() {
    let served = Served::start(&["echo", "--bind", "127.0.0.1:0", "--max-connections", "4"]);
    let addr = served.addrs[0];
    let mut open: Vec<TcpStream> = (0..4).map(|_| client(addr)).collect();
    for c in &mut open {
        c.write_all(b"ping").unwrap();
        let mut back = [0; 4];
        c.read_exact(&mut back).unwrap();
    }
    let mut extra = client(addr);
    let _ = extra.write_all(b"one too many");
    let mut buf = [0; 16];
    assert!(
        matches!(extra.read(&mut buf), Ok(0) | Err(_)),
        "the fifth connection was served"
    );
    open[3].write_all(b"still").unwrap();
    let mut back = [0; 5];
    open[3].read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still");
}

#[test]
fn idle_timeout_closes_idle_connections() {
    let served = Served::start(&["echo", "--bind", "127.0.0.1:0", "--idle-timeout", "1"]);
    let mut idle = client(served.addrs[0]);
    let started = Instant::now();
    let mut buf = [0; 1];
    assert_eq!(idle.read(&mut buf).unwrap(), 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[test]
fn running_out_of_file_descriptors_neither_crashes_nor_spins() {
    let mut command = Command::new("prlimit");
    command
        .args(["--nofile=32:32", "--"])
        .arg(netkit_bin())
        .args(["serve", "echo", "--bind", "127.0.0.1:0", "--threads", "1"]);
    let served = Served::start_with(&mut command);
    let addr = served.addrs[0];
    let crowd: Vec<TcpStream> = (0..64)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = netkit_tests::cpu_ticks(served.child.id());
    std::thread::sleep(Duration::from_secs(2));
    let ticks = netkit_tests::cpu_ticks(served.child.id()) - before;
    // A spinning accept loop burns ~200 ticks in 2 s; a paused one a handful.
    assert!(
        ticks < 60,
        "the server used {ticks} CPU ticks in 2 s while out of descriptors"
    );
    drop(crowd);
    std::thread::sleep(Duration::from_millis(500));
    let mut fresh = client(addr);
    fresh.write_all(b"alive").unwrap();
    let mut back = [0; 5];
    fresh.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"alive");
}

#[test]
fn a_bare_port_listens_on_loopback() {
    let served = Served::start(&["echo", "--bind", "0"]);
    let addr = served.addrs[0];
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let mut conn = client(addr);
    conn.write_all(b"port").unwrap();
    let mut back = [0; 4];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"port");
}

#[test]
fn clients_that_send_and_never_read_hold_little_of_the_servers_memory() {
    // Each held 1.1 MiB of the server's memory (a thousand: 1.1 GB, where tokio's echo holds
    // 12 MB); what is not read back now waits in the kernel's buffers and 64 KiB of ours.
    let served = Served::start(&["echo", "--bind", "127.0.0.1:0", "--threads", "1"]);
    let rss = || {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", served.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let before = rss();
    let mut writers = Vec::new();
    for _ in 0..16 {
        let mut conn = client(served.addrs[0]);
        conn.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        writers.push(std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 << 10];
            // Until the server stops taking more (its reads paused, and the kernel's buffers
            // both ways, some 20 MB on loopback, full).
            for _ in 0..1024 {
                if conn.write_all(&chunk).is_err() {
                    break;
                }
            }
            conn
        }));
    }
    let conns: Vec<TcpStream> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let grown_kib = rss().saturating_sub(before);
    assert!(grown_kib < 8 << 10, "{grown_kib} KiB for 16 clients");
    drop(conns);
}

#[test]
fn out_of_threads_serve_and_connect_say_so_in_one_line() {
    // A stack no mmap can give makes every new thread fail, as a process or cgroup limit
    // does; std's spawn panicked (exit 101).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    for args in [
        &["connect", addr.as_str()][..],
        &["serve", "echo", "--bind", "127.0.0.1:0"],
    ] {
        let out = Command::new(netkit_bin())
            .args(args)
            .env("RUST_MIN_STACK", (1u64 << 40).to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("cannot start a thread") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn sigquit_stops_gracefully_within_the_shutdown_timeout_and_sigusr1_changes_nothing() {
    // nginx's habits: `kill -QUIT` is its graceful stop, logrotate sends it USR1 to reopen
    // its logs. Both ended netkit at once (status 131 and 138), cutting transfers.
    let mut served = Served::start(&["echo", "--bind", "127.0.0.1:0", "--shutdown-timeout", "1"]);
    let addr = served.addrs[0];
    let signal = |signal: nix::sys::signal::Signal, served: &Served| {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(served.child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
    };
    signal(nix::sys::signal::Signal::SIGUSR1, &served);
    std::thread::sleep(Duration::from_millis(300));
    let mut talker = client(addr);
    talker.write_all(b"still here").unwrap();
    let mut back = [0; 10];
    talker.read_exact(&mut back).unwrap();
    // A client that sends and never reads: its echo cannot be flushed, so the shutdown
    // waits for it until --shutdown-timeout (30 s by default).
    let hog = client(addr);
    hog.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 << 10];
    let mut hog_writer = &hog;
    for _ in 0..64 {
        if hog_writer.write(&chunk).is_err() {
            break;
        }
    }
    let started = Instant::now();
    signal(nix::sys::signal::Signal::SIGQUIT, &served);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGQUIT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "stopped after {took:?}: a graceful stop waits for the client, 1 s at most"
    );
    drop(hog);
}
