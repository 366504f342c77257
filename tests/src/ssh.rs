//! The sshd started by `cargo xtask test`, as net-ssh configs and `netkit ssh` arguments.

use std::path::PathBuf;

use net_ssh::{Config, Identity};

use crate::env;

/// A config for the test sshd with no credentials: tests add the one they exercise.
#[must_use]
pub fn config() -> Config {
    let mut config = Config::new(&env("NETKIT_TEST_SSH_HOST"));
    config.port = port();
    config.user = env("NETKIT_TEST_SSH_USER");
    config.known_hosts = PathBuf::from(env("NETKIT_TEST_SSH_KNOWN_HOSTS"));
    config.use_agent = false;
    config
}

/// The same with the ed25519 key.
#[must_use]
pub fn keyed() -> Config {
    let mut config = config();
    config.identities = vec![Identity::new(key("id_ed25519"), None)];
    config
}

/// The sshd's port.
///
/// # Panics
/// When the variable is not a port number.
#[must_use]
pub fn port() -> u16 {
    env("NETKIT_TEST_SSH_PORT").parse().expect("a port number")
}

/// A client key file by name (`id_ed25519`, `id_ecdsa`, `id_rsa`, `id_rsa_pem`,
/// `id_encrypted`, `id_unknown`).
#[must_use]
pub fn key(name: &str) -> PathBuf {
    PathBuf::from(env("NETKIT_TEST_SSH_KEYS")).join(name)
}

/// `user@host` of the test sshd.
#[must_use]
pub fn dest() -> String {
    format!(
        "{}@{}",
        env("NETKIT_TEST_SSH_USER"),
        env("NETKIT_TEST_SSH_HOST")
    )
}

/// A fresh directory in the test account's home, for SFTP tests.
///
/// # Panics
/// When it cannot be created.
#[must_use]
pub fn remote_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env("NETKIT_TEST_SSH_HOME")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the remote test directory");
    let user = env("NETKIT_TEST_SSH_USER");
    let status = std::process::Command::new("chown")
        .arg(format!("{user}:"))
        .arg(&dir)
        .status();
    assert!(status.is_ok_and(|s| s.success()), "chown {}", dir.display());
    dir
}

/// A shell line that waits (up to 5 s) until its terminal is 132 columns by 43 rows. A
/// window-change request and the keys typed after it travel separately, so a test that
/// resizes and then asks `stty size` at once may ask first. The line never spells the size
/// as `stty` prints it, so its echo cannot pass for the answer.
pub const WAIT_FOR_43X132: &str = "i=0; until [ \"$(stty size | tr ' ' x)\" = 43x132 ] || [ $i = 100 ]; do sleep 0.05; i=$((i+1)); done\n";

/// A port relaying one connection to the test sshd, each chunk `delay` late both ways: a
/// link with a round trip of twice `delay`.
///
/// # Panics
/// When the relay cannot listen.
pub fn slow_link(delay: std::time::Duration) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = std::net::TcpStream::connect(("127.0.0.1", port())).unwrap();
        let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
            let (tx, rx) = std::sync::mpsc::channel::<(std::time::Instant, Vec<u8>)>();
            std::thread::spawn(move || {
                let mut buf = [0; 16 * 1024];
                while let Ok(n @ 1..) = std::io::Read::read(&mut from, &mut buf) {
                    if tx
                        .send((std::time::Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            });
            std::thread::spawn(move || {
                for (due, chunk) in rx {
                    std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                    if std::io::Write::write_all(&mut to, &chunk).is_err() {
                        return;
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
        };
        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
        pipe(server, client);
    });
    relay_port
}
