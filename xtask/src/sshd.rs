//! A real OpenSSH sshd for the SSH client tests, configured and started by xtask.
//!
//! Runs `sshd -D` on a free 127.0.0.1 port from its own config and host keys (ed25519, ecdsa,
//! rsa) under the run's work directory, for a test account with `/bin/sh` and a password.
//! Variables for the tests:
//! - `NETKIT_TEST_SSH_HOST`, `NETKIT_TEST_SSH_PORT`, `NETKIT_TEST_SSH_USER`,
//!   `NETKIT_TEST_SSH_PASSWORD`, `NETKIT_TEST_SSH_HOME` (the account's home directory);
//! - `NETKIT_TEST_SSH_KEYS`: a directory of client keys the account accepts: `id_ed25519`,
//!   `id_ecdsa`, `id_rsa` (OpenSSH format), `id_rsa_pem` (PEM), `id_encrypted` (ed25519 with
//!   the passphrase in `NETKIT_TEST_SSH_PASSPHRASE`), `id_encrypted_pem` (RSA, PEM, the same
//!   passphrase), and `id_unknown` (not accepted);
//! - `NETKIT_TEST_SSH_KNOWN_HOSTS`: a known_hosts file with the server's three host keys;
//! - `NETKIT_TEST_SSH_AGENT`: the socket of a running ssh-agent holding `id_ecdsa`;
//! - `NETKIT_TEST_SSH_KBD_PORT`: a second sshd, same host keys and account, that takes the
//!   password only through keyboard-interactive (PAM), as many servers do, and also holds a
//!   host certificate for its ed25519 key, signed by `NETKIT_TEST_SSH_HOST_CA` (a public key),
//!   as servers in organisations that use certificates do;
//! - `NETKIT_TEST_SSH_TWO_FACTOR_PORT`: a third, that wants a key and then the password
//!   through keyboard-interactive (`AuthenticationMethods publickey,keyboard-interactive`);
//! - `NETKIT_TEST_SSH_PASSWORD_FIRST_PORT`: a fourth, that wants the password and then a key
//!   (`AuthenticationMethods password,publickey`).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::provision::{self, Need, is_root};
use crate::service::{self, Service, Started};
use crate::test::path_str;

/// What sshd and the key tools need installed.
pub const NEEDS: &[Need] = &[
    Need {
        probe: "sshd",
        package: "openssh-server",
    },
    Need {
        probe: "ssh-keygen",
        package: "openssh-client",
    },
    Need {
        probe: "ssh-agent",
        package: "openssh-client",
    },
    // A terminal for the tests of the interactive prompt and shell.
    Need {
        probe: "script",
        package: "bsdutils",
    },
    // The tests' hostile SSH server.
    provision::PARAMIKO,
];

const USER: &str = "netkit-test";
const PASSPHRASE: &str = "correct horse battery staple";

/// Starts sshd on a free 127.0.0.1 port; sets the `NETKIT_TEST_SSH_*` variables.
pub fn start(work: &Path) -> anyhow::Result<Started> {
    if !is_root() {
        bail!(
            "the SSH tests create a local test account: run `cargo xtask test` as root (or with sudo)"
        );
    }
    let password = password()?;
    let home = ensure_user(&password)?;
    let dir = work.join("sshd");
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys)?;
    std::fs::create_dir_all("/run/sshd").context("cannot create /run/sshd")?;

    for kind in ["ed25519", "ecdsa", "rsa"] {
        keygen(&dir.join(format!("host_{kind}")), kind, "", &[])?;
    }
    keygen(&dir.join("host_ca"), "ed25519", "", &[])?;
    service::run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(dir.join("host_ca"))
            .args(["-I", "netkit-test-host", "-h", "-n", "127.0.0.1"])
            .arg(dir.join("host_ed25519.pub")),
    )?;
    keygen(&keys.join("id_ed25519"), "ed25519", "", &[])?;
    keygen(&keys.join("id_ecdsa"), "ecdsa", "", &[])?;
    keygen(&keys.join("id_rsa"), "rsa", "", &[])?;
    keygen(&keys.join("id_rsa_pem"), "rsa", "", &["-m", "PEM"])?;
    keygen(&keys.join("id_encrypted"), "ed25519", PASSPHRASE, &[])?;
    keygen(
        &keys.join("id_encrypted_pem"),
        "rsa",
        PASSPHRASE,
        &["-m", "PEM"],
    )?;
    keygen(&keys.join("id_unknown"), "ed25519", "", &[])?;
    keygen(&keys.join("id_no_pty"), "ed25519", "", &[])?;

    let mut authorized = String::new();
    for name in [
        "id_ed25519",
        "id_ecdsa",
        "id_rsa",
        "id_rsa_pem",
        "id_encrypted",
        "id_encrypted_pem",
    ] {
        authorized.push_str(&std::fs::read_to_string(keys.join(format!("{name}.pub")))?);
    }
    // A restricted account's key: the server refuses it a terminal.
    authorized.push_str("no-pty ");
    authorized.push_str(&std::fs::read_to_string(keys.join("id_no_pty.pub"))?);
    let ssh_dir = home.join(".ssh");
    std::fs::create_dir_all(&ssh_dir)?;
    std::fs::write(home.join(authorized_keys(&dir)), authorized)?;
    service::run_ok(
        Command::new("chown")
            .args(["-R", &format!("{USER}:")])
            .arg(&ssh_dir),
    )?;

    let (main_sshd, port) = spawn_sshd(
        &dir,
        "main",
        "UsePAM no\nPasswordAuthentication yes\n",
        &sshd(),
    )?;
    // sshd names its PAM service after its own file name: a link gives it one of ours, so
    // the system's sshd PAM stack (loginuid, motd, ...) stays out of the way.
    let pam_sshd = dir.join("netkit-sshd");
    let _ = std::fs::remove_file(&pam_sshd);
    std::os::unix::fs::symlink(sshd(), &pam_sshd)?;
    std::fs::write(
        "/etc/pam.d/netkit-sshd",
        "auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_permit.so\n",
    )
    .context("cannot write /etc/pam.d/netkit-sshd")?;
    let (kbd_sshd, kbd_port) = spawn_sshd(
        &dir,
        "kbd",
        &format!(
            "UsePAM yes\nPasswordAuthentication no\nHostCertificate {}\n",
            path_str(&dir.join("host_ed25519-cert.pub"))
        ),
        &pam_sshd,
    )?;

    // A key and then PAM's password, as a second factor often is.
    let (two_factor_sshd, two_factor_port) = spawn_sshd(
        &dir,
        "two-factor",
        "UsePAM yes\nPasswordAuthentication no\nAuthenticationMethods publickey,keyboard-interactive\n",
        &pam_sshd,
    )?;
    // The password first, then a key; one channel at a time (sshd takes a keyword's first
    // value: this MaxSessions wins over the template's); an SFTP server refusing fsync, as
    // servers without fsync@openssh.com do.
    let (password_first_sshd, password_first_port) = spawn_sshd(
        &dir,
        "password-first",
        "UsePAM no\nPasswordAuthentication yes\nAuthenticationMethods password,publickey\n\
         MaxSessions 1\nSubsystem sftp internal-sftp -P fsync\n",
        &sshd(),
    )?;

    let mut known_hosts = String::new();
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let public = std::fs::read_to_string(dir.join(format!("host_{kind}.pub")))?;
        let mut fields = public.split_whitespace();
        let (algo, key) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        for p in [port, kbd_port, two_factor_port, password_first_port] {
            known_hosts.push_str(&format!("[127.0.0.1]:{p} {algo} {key}\n"));
        }
    }
    let known_hosts_path = dir.join("known_hosts");
    std::fs::write(&known_hosts_path, known_hosts)?;

    let agent_sock = dir.join("agent.sock");
    let agent_log = dir.join("agent.log");
    let agent = Service::spawn(
        "ssh-agent",
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&agent_sock),
        &agent_log,
    )?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !agent_sock.exists() {
        if std::time::Instant::now() > deadline {
            bail!("ssh-agent did not create {}", agent_sock.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    service::run_ok(
        Command::new("ssh-add")
            .arg("-q")
            .arg(keys.join("id_ecdsa"))
            .env("SSH_AUTH_SOCK", &agent_sock),
    )?;

    let vars = [
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
        ("KBD_PORT", kbd_port.to_string()),
        ("TWO_FACTOR_PORT", two_factor_port.to_string()),
        ("PASSWORD_FIRST_PORT", password_first_port.to_string()),
        ("USER", USER.to_owned()),
        ("PASSWORD", password),
        ("PASSPHRASE", PASSPHRASE.to_owned()),
        ("HOME", path_str(&home)),
        ("KEYS", path_str(&keys)),
        ("KNOWN_HOSTS", path_str(&known_hosts_path)),
        ("AGENT", path_str(&agent_sock)),
        ("HOST_CA", path_str(&dir.join("host_ca.pub"))),
        ("LOG", path_str(&dir.join("sshd-main.log"))),
    ];
    Ok(Started {
        services: vec![
            main_sshd,
            kbd_sshd,
            two_factor_sshd,
            password_first_sshd,
            agent,
        ],
        env: vars
            .into_iter()
            .map(|(k, v)| (format!("NETKIT_TEST_SSH_{k}"), v))
            .collect(),
    })
}

/// The test user's authorized_keys for the run working in `dir`, relative to the user's home:
/// one of its own, as two clones' runs at once rewrote one file under each other and one's key
/// logins failed. In the home, which the user can always read, unlike a clone under /root.
fn authorized_keys(dir: &Path) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    dir.hash(&mut hasher);
    format!(".ssh/authorized_keys-{:016x}", hasher.finish())
}

/// Starts `binary` (sshd) on a free port with the shared host keys and `auth` settings.
fn spawn_sshd(dir: &Path, name: &str, auth: &str, binary: &Path) -> anyhow::Result<(Service, u16)> {
    let port = service::free_port()?;
    let d = path_str(dir);
    let authorized = authorized_keys(dir);
    // sshd refuses a subsystem defined twice: `auth` may give its own.
    let sftp = if auth.contains("Subsystem ") {
        ""
    } else {
        "Subsystem sftp internal-sftp\n"
    };
    let config = format!(
        "Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_ed25519
HostKey {d}/host_ecdsa
HostKey {d}/host_rsa
PidFile {d}/sshd-{name}.pid
AuthorizedKeysFile {authorized}
StrictModes no
PermitRootLogin no
{auth}KbdInteractiveAuthentication yes
PubkeyAuthentication yes
{sftp}MaxStartups 200
MaxSessions 100
GatewayPorts clientspecified
AcceptEnv NETKIT_TEST_*
Ciphers +aes128-cbc,aes256-cbc
LogLevel VERBOSE
"
    );
    let conf = dir.join(format!("sshd_config-{name}"));
    std::fs::write(&conf, config)?;
    service::run_ok(Command::new(binary).arg("-t").arg("-f").arg(&conf))
        .with_context(|| format!("sshd rejected the generated config {}", conf.display()))?;
    let log = dir.join(format!("sshd-{name}.log"));
    let mut sshd = Service::spawn(
        "sshd",
        Command::new(binary).args(["-D", "-e", "-f"]).arg(&conf),
        &log,
    )?;
    sshd.wait_for_port(format!("127.0.0.1:{port}").parse()?, &log)?;
    Ok((sshd, port))
}

fn sshd() -> std::path::PathBuf {
    crate::provision::program("sshd")
}

/// The test account's password: random, made once for the machine and kept where only root
/// reads it (`PASSWORD_FILE`), the same for every clone's run (one run changing it would fail
/// another's logins). It was a constant in the source: with the system's sshd installed, an
/// account anyone could log in to.
fn password() -> anyhow::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let file = Path::new(PASSWORD_FILE);
    if let Ok(kept) = std::fs::read_to_string(file)
        && kept.trim().len() >= 20
    {
        return Ok(kept.trim().to_owned());
    }
    if let Some(dir) = file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut random = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let password: String = random
        .iter()
        .map(|&b| char::from(LETTERS[usize::from(b) % LETTERS.len()]))
        .collect();
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)?;
    std::io::Write::write_all(&mut out, password.as_bytes())?;
    Ok(password)
}

/// Where the test account's password is kept.
const PASSWORD_FILE: &str = "/var/lib/netkit-test/password";

/// Creates the test account with `/bin/sh` and `password`; returns its home. The system's own
/// sshd (its config reads `sshd_config.d`) is told to refuse the account: it is for the run's
/// sshds alone.
fn ensure_user(password: &str) -> anyhow::Result<std::path::PathBuf> {
    let drop_in = Path::new("/etc/ssh/sshd_config.d");
    if drop_in.is_dir() {
        std::fs::write(
            drop_in.join("netkit-test.conf"),
            format!("# cargo xtask test's account, for its own sshds only\nDenyUsers {USER}\n"),
        )?;
    }
    let exists = Command::new("id")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        service::run_ok(Command::new("useradd").args([
            "--create-home",
            "--shell",
            "/bin/sh",
            USER,
        ]))?;
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    if let Some(stdin) = chpasswd.stdin.as_mut() {
        std::io::Write::write_all(stdin, format!("{USER}:{password}\n").as_bytes())?;
    }
    if !chpasswd.wait()?.success() {
        bail!("chpasswd failed for {USER}");
    }
    let home = std::path::PathBuf::from(format!("/home/{USER}"));
    std::fs::create_dir_all(&home)?;
    service::run_ok(Command::new("chown").arg(format!("{USER}:")).arg(&home))?;
    Ok(home)
}

fn keygen(path: &Path, kind: &str, passphrase: &str, extra: &[&str]) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        "netkit-test",
        "-f",
    ])
    .arg(path)
    .args(extra);
    service::run_ok(&mut cmd)
}
