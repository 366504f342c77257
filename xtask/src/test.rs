//! `cargo xtask test`: lint, build, start the real local servers, run the tests, stop them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::provision::{self, Need};
use crate::service::{self, Service, Started};
use crate::{nginx, sshd, tinyproxy};

const HELP: &str = "usage: cargo xtask test [--no-lint] [CARGO_TEST_ARGS...]

As root: installs what the tests need (apt-get), checks `cargo fmt` and clippy (not with
--no-lint), builds, starts the local servers (netkit serve http, nginx with TLS, tinyproxy,
four OpenSSH sshds and the test account netkit-test), runs `cargo test --release
CARGO_TEST_ARGS` (the whole workspace when there are none) against them, and stops them.

One test file, or the tests whose names hold a word:
  cargo xtask test --no-lint -p netkit-tests --test ssh_cli dash_";

/// What building and running the tests needs besides the servers.
const NEEDS: &[Need] = &[
    // libssh2-sys builds libssh2 against the system OpenSSL.
    Need {
        probe: "pkg-config",
        package: "pkg-config",
    },
    Need {
        probe: "/usr/include/openssl/ssl.h",
        package: "libssl-dev",
    },
    Need {
        probe: "curl",
        package: "curl",
    },
    // Run by the tests: `/usr/bin/time -f %M` (a body file's peak memory), `ss -tnp` (the
    // sshd end of a session), `pgrep`; none is in the Debian and Ubuntu container images.
    Need {
        probe: "/usr/bin/time",
        package: "time",
    },
    Need {
        probe: "ss",
        package: "iproute2",
    },
    Need {
        probe: "pgrep",
        package: "procps",
    },
    // Clocks before 1970 and past 9999 for `serve http` and `http --session`.
    Need {
        probe: "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        package: "libfaketime",
    },
];

/// Runs `cargo xtask test [--no-lint] [CARGO_TEST_ARGS...]`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    // Flags past `--` are the test binaries'.
    let ours = args.iter().take_while(|a| *a != "--");
    if ours.clone().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return Ok(());
    }
    let lint = !ours.clone().any(|a| a == "--no-lint");
    let test_args: Vec<&String> = args.iter().filter(|a| *a != "--no-lint").collect();
    // Said before anything is built: the SSH tests need a local account.
    if !provision::is_root() {
        bail!(
            "the SSH tests create a local test account: run `cargo xtask test` as root (or with sudo)"
        );
    }

    let needs: Vec<Need> = [NEEDS, nginx::NEEDS, sshd::NEEDS, tinyproxy::NEEDS].concat();
    provision::ensure(&needs)?;

    if lint {
        service::run_ok(cargo().args(["fmt", "--all", "--", "--check"]))
            .context("cargo fmt --check found unformatted code: run `cargo fmt --all`")?;
        service::run_ok(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
        .context("cargo clippy found warnings")?;
    }
    build_bins()?;
    // The tests asked for, built as they will run (built as the workspace, a `-p` run then
    // rebuilt crates under other features); a mistyped flag is refused here, before any
    // server starts.
    service::run_ok(&mut test_command(&test_args, true))?;

    let target = target_dir()?;
    let work = target.join("xtask-test");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot clear {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let netkit = target.join("release").join("netkit");

    let mut started = Started::default();
    started.env.push(("NETKIT_BIN".into(), path_str(&netkit)));
    started
        .env
        .push(("NETKIT_TEST_WORK".into(), path_str(&work)));
    started.extend(start_netkit_http(&netkit, &work)?);
    let nginx = nginx::start(&work)?;
    started.extend(tinyproxy::start(&work, nginx.tls_port)?);
    started.extend(nginx.started);
    started.extend(sshd::start(&work)?);

    let mut test = test_command(&test_args, false);
    test.envs(started.env.iter().map(|(k, v)| (k, v)));
    // The tests talk to loopback servers only: a proxy set for this machine must not carry
    // them (the build above has fetched what it needed).
    for proxy in ["http", "https", "all", "no"] {
        test.env_remove(format!("{proxy}_proxy"));
        test.env_remove(format!("{}_PROXY", proxy.to_uppercase()));
    }
    // Nor may this machine's ~/.netrc send credentials to them; the netrc test names its own.
    test.env("NETRC", work.join("no-netrc"));
    // Nor its /etc/ssh/ssh_config (HashKnownHosts, SendEnv...) change what `netkit ssh` does.
    test.env("NETKIT_SSH_SYSTEM_CONFIG", work.join("no-ssh_config"));
    // Nor its ~/.ssh/config and default keys (a `Host *` ProxyJump or IdentityFile there, an
    // extra key offered): the tests run with an empty HOME, as xh's CLI tests do; a test that
    // needs one makes its own. cargo and rustup, which run under this HOME too, keep theirs.
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for (var, dir) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
        if let (None, Some(home)) = (std::env::var_os(var), &home) {
            test.env(var, home.join(dir));
        }
    }
    let empty_home = work.join("empty-home");
    std::fs::create_dir_all(&empty_home)?;
    test.env("HOME", &empty_home);
    let status = service::run(&mut test)?;
    drop(started);
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(())
}

/// `netkit serve http` over a scratch root that the tests fill.
fn start_netkit_http(netkit: &Path, work: &Path) -> anyhow::Result<Started> {
    let root = work.join("serve-root");
    std::fs::create_dir_all(&root)?;
    let port = service::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let log = work.join("netkit-serve.log");
    let mut server = Service::spawn(
        "netkit serve http",
        Command::new(netkit)
            .args(["serve", "http", "--bind", &addr, "--root"])
            .arg(&root),
        &log,
    )?;
    server.wait_for_port(addr.parse()?, &log)?;
    Ok(Started {
        services: vec![server],
        env: vec![
            ("NETKIT_TEST_SERVE_URL".into(), format!("http://{addr}")),
            ("NETKIT_TEST_SERVE_ROOT".into(), path_str(&root)),
        ],
    })
}

/// `cargo test --release` with `args` (the whole workspace when there are none), or only
/// their cargo flags and `--no-run` to build what they ask for.
fn test_command(args: &[&String], no_run: bool) -> Command {
    let mut test = cargo();
    test.args(["test", "--release"]);
    if args.is_empty() {
        test.arg("--workspace");
    }
    // What follows `--` is for the test binaries.
    let binaries = args.iter().position(|a| a.as_str() == "--");
    match (no_run, binaries) {
        (true, Some(at)) => test.args(&args[..at]).arg("--no-run"),
        (true, None) => test.args(args).arg("--no-run"),
        (false, _) => test.args(args),
    };
    test
}

/// Builds every binary in release. The whole workspace each time: cargo unifies features
/// over the packages it is asked for, so building fewer (`-p net-cli`) rebuilds half the tree
/// after a test run and again before the next.
pub fn build_bins() -> anyhow::Result<()> {
    service::run_ok(cargo().args(["build", "--release", "--workspace", "--bins"]))
}

/// `cargo`, as the one that runs xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The workspace's target directory (honours `CARGO_TARGET_DIR` and config).
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("cannot run cargo metadata")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let key = "\"target_directory\":\"";
    let start = text
        .find(key)
        .context("cargo metadata printed no target_directory")?
        + key.len();
    let end = text[start..]
        .find('"')
        .context("cargo metadata: unterminated target_directory")?;
    Ok(PathBuf::from(&text[start..start + end]))
}

/// A path as an environment variable value.
pub fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
