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
pub fn delayed_link(delay: std::time::Duration) -> u16 {
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

/// An sshd of a test's own: the main one's config with `lines` in front (sshd takes most
/// keywords' first value; a line of the main config whose keyword `lines` names is left
/// out, so that `Subsystem` replaces the main one's), on a port of its own, stopped when
/// dropped. For the server's limits (`ClientAliveInterval`, `MaxSessions`) that the shared
/// sshd must not have.
#[derive(Debug)]
pub struct OwnSshd {
    /// Its port.
    pub port: u16,
    /// A known_hosts file that knows it.
    pub known_hosts: PathBuf,
    _sshd: crate::Spawned,
}

impl OwnSshd {
    /// Starts it, named `name` (its files in the work directory).
    ///
    /// # Panics
    /// When it does not start listening within 10 s.
    #[must_use]
    pub fn start(name: &str, lines: &[&str]) -> OwnSshd {
        let log = PathBuf::from(env("NETKIT_TEST_SSH_LOG"));
        let dir = log.parent().expect("the sshd directory");
        let main = std::fs::read_to_string(dir.join("sshd_config-main")).expect("main config");
        let port = crate::free_port();
        let keyword = |line: &str| line.split_whitespace().next().unwrap_or("").to_lowercase();
        let named: Vec<String> = lines.iter().map(|l| keyword(l)).collect();
        let mut config: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        config.push(format!("Port {port}"));
        let work = crate::work_dir().join(format!("sshd-{name}"));
        std::fs::create_dir_all(&work).expect("the sshd's directory");
        config.push(format!("PidFile {}", work.join("sshd.pid").display()));
        config.extend(
            main.lines()
                .filter(|l| !["port", "pidfile"].contains(&keyword(l).as_str()))
                .filter(|l| !named.contains(&keyword(l)))
                .map(str::to_owned),
        );
        let conf = work.join("sshd_config");
        std::fs::write(&conf, config.join("\n") + "\n").expect("write the config");
        let known_hosts = known_at(port, &work);
        let sshd = crate::Spawned::start(
            std::process::Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&conf)
                .stderr(std::fs::File::create(work.join("sshd.log")).expect("the sshd's log file")),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "sshd {name} did not listen on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        OwnSshd {
            port,
            known_hosts,
            _sshd: sshd,
        }
    }
}

/// A known_hosts file in `dir` that knows the main sshd's host keys at `port`.
fn known_at(port: u16, dir: &std::path::Path) -> PathBuf {
    let main_host = format!("[127.0.0.1]:{} ", self::port());
    let known: String = std::fs::read_to_string(env("NETKIT_TEST_SSH_KNOWN_HOSTS"))
        .expect("known_hosts")
        .lines()
        .filter_map(|l| l.strip_prefix(&main_host))
        .map(|key| format!("[127.0.0.1]:{port} {key}\n"))
        .collect();
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, known).expect("write known_hosts");
    known_hosts
}

/// A hostile SSH server (paramiko, `hostile_ssh.py`) with the main sshd's ed25519 host key,
/// on a port of its own, stopped when dropped. `mode` says what it sends: `auth`, a list of
/// methods that is not UTF-8 (and no login); `signal`, any login, and a command ends by an
/// exit-signal whose name is not UTF-8.
#[derive(Debug)]
pub struct HostileSsh {
    /// Its port.
    pub port: u16,
    /// A known_hosts file that knows it.
    pub known_hosts: PathBuf,
    _server: crate::Spawned,
}

impl HostileSsh {
    /// Starts it.
    ///
    /// # Panics
    /// When python3 with paramiko (installed by `cargo xtask test`) cannot start it.
    #[must_use]
    pub fn start(mode: &str) -> HostileSsh {
        let log = PathBuf::from(env("NETKIT_TEST_SSH_LOG"));
        let keys = log.parent().expect("the sshd directory");
        let work = crate::work_dir().join(format!("hostile-ssh-{mode}"));
        std::fs::create_dir_all(&work).expect("the server's directory");
        let script = work.join("hostile_ssh.py");
        std::fs::write(&script, include_str!("hostile_ssh.py")).expect("write the script");
        let mut server = crate::Spawned::start(
            std::process::Command::new("/usr/bin/python3")
                .arg(&script)
                .arg(keys.join("host_ed25519"))
                .arg(mode)
                .stdout(std::process::Stdio::piped())
                .stderr(std::fs::File::create(work.join("server.log")).expect("its log")),
        );
        let mut line = String::new();
        let stdout = server.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("read the port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "the hostile SSH server did not start (python3-paramiko missing? run via cargo \
                 xtask test): see {}",
                work.join("server.log").display()
            )
        });
        HostileSsh {
            port,
            known_hosts: known_at(port, &work),
            _server: server,
        }
    }
}
