//! `cargo xtask bench [NAME...] [--quick]`: netkit side by side with its anchors.
//!
//! Each work runs netkit and its anchor alternately (A B A B ...), takes the median of the
//! rounds, and reports the ratio netkit / anchor against the goal of issue 5. The table is
//! printed and written to `target/bench/results.json` and `target/bench/results.svg`.
//! Works: `echo`, `echo-stream`, `http-server`, `http-pipelined`, `http-client`, `http-cli`,
//! `download`, `sftp`, `sftp-delay`, `exec`, `many-hosts`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::provision::{self, Need};
use crate::service::{self, Service};
use crate::test::{build_bins, path_str, target_dir};

/// What the anchors need besides nginx and sshd (see their modules).
const NEEDS: &[Need] = &[
    Need {
        probe: "wrk",
        package: "wrk",
    },
    Need {
        probe: "curl",
        package: "curl",
    },
    Need {
        probe: "/usr/bin/time",
        package: "time",
    },
    Need {
        probe: "sftp",
        package: "openssh-client",
    },
    provision::PARAMIKO,
];

/// Event-loop threads for netkit and workers for the anchors: the same on both sides.
const THREADS: usize = 2;

struct Row {
    work: String,
    unit: &'static str,
    netkit: f64,
    anchor_name: &'static str,
    anchor: f64,
    /// Whether a larger figure is better (throughput) or worse (latency, time, memory).
    higher_is_better: bool,
    /// The goal on the ratio netkit / anchor.
    goal: f64,
}

impl Row {
    /// A row where a larger figure is better (throughput).
    fn more(
        work: impl Into<String>,
        unit: &'static str,
        netkit: f64,
        anchor_name: &'static str,
        anchor: f64,
        goal: f64,
    ) -> Row {
        Row {
            higher_is_better: true,
            ..Row::less(work, unit, netkit, anchor_name, anchor, goal)
        }
    }

    /// A row where a smaller figure is better (latency, time, memory).
    fn less(
        work: impl Into<String>,
        unit: &'static str,
        netkit: f64,
        anchor_name: &'static str,
        anchor: f64,
        goal: f64,
    ) -> Row {
        Row {
            work: work.into(),
            unit,
            netkit,
            anchor_name,
            anchor,
            higher_is_better: false,
            goal,
        }
    }

    fn ratio(&self) -> f64 {
        if self.anchor > 0.0 {
            self.netkit / self.anchor
        } else {
            0.0
        }
    }

    /// A missing figure (0) never passes: a run that measured nothing proves nothing.
    fn pass(&self) -> bool {
        if self.netkit <= 0.0 || self.anchor <= 0.0 {
            false
        } else if self.higher_is_better {
            self.ratio() >= self.goal
        } else {
            self.ratio() <= self.goal
        }
    }

    fn goal_text(&self) -> String {
        format!(
            "{}{:.1}x",
            if self.higher_is_better { ">=" } else { "<=" },
            self.goal
        )
    }
}

struct Plan {
    rounds: usize,
    secs: f64,
    stream_bytes: u64,
    download_bytes: u64,
    sftp_bytes: u64,
    sftp_delay_bytes: u64,
}

/// Runs `cargo xtask bench [NAME...] [--quick]`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(bad) = args.iter().find(|a| a.starts_with('-') && *a != "--quick") {
        bail!("unknown option {bad:?}: cargo xtask bench [NAME...] [--quick]");
    }
    let quick = args.iter().any(|a| a == "--quick");
    let names: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--quick")
        .collect();
    let known = [
        "echo",
        "echo-stream",
        "http-server",
        "http-pipelined",
        "http-client",
        "http-cli",
        "download",
        "sftp",
        "sftp-delay",
        "exec",
        "many-hosts",
    ];
    if let Some(bad) = names.iter().find(|n| !known.contains(n)) {
        bail!("unknown bench {bad:?}: choose from {}", known.join(", "));
    }
    let wanted = |name: &str| names.is_empty() || names.contains(&name);
    let plan = if quick {
        Plan {
            rounds: 3,
            secs: 1.0,
            stream_bytes: 256 << 20,
            download_bytes: 256 << 20,
            sftp_bytes: 64 << 20,
            sftp_delay_bytes: 16 << 20,
        }
    } else {
        Plan {
            rounds: 5,
            secs: 3.0,
            stream_bytes: 1 << 30,
            download_bytes: 1 << 30,
            sftp_bytes: 256 << 20,
            sftp_delay_bytes: 64 << 20,
        }
    };
    let target = target_dir()?;
    let out = target.join("bench");
    // A run that fails must not leave the last run's figures looking like its own.
    for old in ["results.json", "results.txt", "results.svg"] {
        std::fs::remove_file(out.join(old)).or_else(ignore_missing)?;
    }
    // Taken before the build: the commit and date of what is measured, not of the run's end.
    let info = RunInfo::now(quick)?;
    provision::ensure(&[NEEDS, crate::nginx::NEEDS, crate::sshd::NEEDS].concat())?;
    build_bins()?;
    let bin = target.join("release");
    let work = out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let started = Instant::now();
    let mut rows = Vec::new();

    if wanted("echo") || wanted("echo-stream") {
        let netkit = start(
            &work,
            "netkit-echo",
            Command::new(bin.join("netkit")).args([
                "serve",
                "echo",
                "--threads",
                &THREADS.to_string(),
                "--bind",
            ]),
        )?;
        let tokio = start(
            &work,
            "tokio-echo",
            Command::new(bin.join("tokio-echo")).args([
                "--threads",
                &THREADS.to_string(),
                "--bind",
            ]),
        )?;
        let load = |addr: &str, extra: &[String]| -> anyhow::Result<Vec<(String, f64)>> {
            figures(
                Command::new(bin.join("echo-load"))
                    .args(["--addr", addr])
                    .args(extra),
            )
        };
        if wanted("echo") {
            for conns in [50, 500] {
                let extra = vec![
                    "--conns".to_owned(),
                    conns.to_string(),
                    "--secs".to_owned(),
                    plan.secs.to_string(),
                ];
                let (a, b) = alternate(
                    plan.rounds,
                    || load(&netkit.1, &extra),
                    || load(&tokio.1, &extra),
                )?;
                rows.push(Row::more(
                    format!("echo {conns} conns, 64 B round trips"),
                    "rt/s",
                    median(&a, "rps"),
                    "tokio",
                    median(&b, "rps"),
                    1.2,
                ));
                rows.push(Row::less(
                    format!("echo {conns} conns, p99 latency"),
                    "us",
                    median(&a, "p99_us"),
                    "tokio",
                    median(&b, "p99_us"),
                    1.0,
                ));
            }
        }
        if wanted("echo-stream") {
            let extra = vec!["--stream".to_owned(), plan.stream_bytes.to_string()];
            let (a, b) = alternate(
                plan.rounds,
                || load(&netkit.1, &extra),
                || load(&tokio.1, &extra),
            )?;
            rows.push(Row::more(
                format!(
                    "echo stream {} MiB, one connection",
                    plan.stream_bytes >> 20
                ),
                "MiB/s",
                median(&a, "mib_s"),
                "tokio",
                median(&b, "mib_s"),
                1.0,
            ));
        }
    }

    let needs_files = [
        "http-server",
        "http-pipelined",
        "http-client",
        "http-cli",
        "download",
    ]
    .iter()
    .any(|n| wanted(n));
    if needs_files {
        let root = work.join("root");
        std::fs::create_dir_all(&root)?;
        let small_body = root.join("small.txt");
        std::fs::write(&small_body, "hello world!\n")?;
        std::fs::write(root.join("1mib.bin"), vec![7u8; 1 << 20])?;
        // Random content, so that a client that only sets the file's length is caught.
        write_pseudo_random(&root.join("big.bin"), plan.download_bytes)?;
        let script = work.join("pipeline.lua");
        std::fs::write(
            &script,
            "init = function(args)\n  local r = {}\n  for i = 1, 16 do r[i] = wrk.format(nil, \"/small.txt\") end\n  req = table.concat(r)\nend\nrequest = function() return req end\n",
        )?;
        let netkit = start(
            &work,
            "netkit-http",
            Command::new(bin.join("netkit"))
                .env("RUST_LOG", "off")
                .args(["serve", "http", "--threads", &THREADS.to_string(), "--root"])
                .arg(&root)
                .arg("--bind"),
        )?;
        let nginx = start_nginx(&work, &root)?;
        let secs = format!("{}s", plan.secs.max(1.0));
        // wrk's own timeout (2 s) counts a slow answer as an error but still waits for it; at
        // -c500 on a loaded machine a 1 MiB answer can take that long. 10 s is longer than a
        // run, so a timeout left is a stalled server.
        let wrk = |row: &str,
                   server: &str,
                   url: &str,
                   conns: u32,
                   body_len: u64,
                   extra: &[&str]|
         -> anyhow::Result<Vec<(String, f64)>> {
            let text = capture(
                Command::new("wrk")
                    .args(["-t2", &format!("-c{conns}"), &format!("-d{secs}")])
                    .args(["--timeout", "10s"])
                    .args(extra)
                    .arg(url),
                SHORT,
            )?;
            let rps = wrk_rps(&text, body_len).with_context(|| format!("{row} ({server})"))?;
            Ok(vec![("rps".into(), rps)])
        };
        if wanted("http-server") {
            for (file, label, len) in [("small.txt", "13 B", 13), ("1mib.bin", "1 MiB", 1 << 20)] {
                for conns in [50, 500] {
                    let row = format!("http server, wrk -c{conns}, {label} file");
                    let (a, b) = alternate(
                        plan.rounds,
                        || {
                            let url = format!("http://{}/{file}", netkit.1);
                            wrk(&row, "netkit", &url, conns, len, &[])
                        },
                        || {
                            let url = format!("http://{}/{file}", nginx.1);
                            wrk(&row, "nginx", &url, conns, len, &[])
                        },
                    )?;
                    rows.push(Row::more(
                        row,
                        "req/s",
                        median(&a, "rps"),
                        "nginx",
                        median(&b, "rps"),
                        1.0,
                    ));
                }
            }
        }
        if wanted("http-pipelined") {
            let s = path_str(&script);
            let extra = ["-s", s.as_str()];
            let row = "http server, pipelined 16 deep, 13 B file";
            let (a, b) = alternate(
                plan.rounds,
                || {
                    wrk(
                        row,
                        "netkit",
                        &format!("http://{}/", netkit.1),
                        50,
                        13,
                        &extra,
                    )
                },
                || {
                    wrk(
                        row,
                        "nginx",
                        &format!("http://{}/", nginx.1),
                        50,
                        13,
                        &extra,
                    )
                },
            )?;
            rows.push(Row::more(
                row,
                "req/s",
                median(&a, "rps"),
                "nginx",
                median(&b, "rps"),
                3.0,
            ));
        }
        let small = format!("http://{}/small.txt", nginx.1);
        let expected = std::fs::read(&small_body)?;
        if wanted("http-client") {
            let client = |which: &str| {
                figures(
                    Command::new(bin.join("http-client-load"))
                        .args(["--url", &small, "--count", "10000", "--client", which])
                        .arg("--expect")
                        .arg(&small_body),
                )
            };
            let (a, b) = alternate(plan.rounds, || client("net-http"), || client("ureq"))?;
            rows.push(Row::more(
                "http client, 10,000 keep-alive GETs",
                "req/s",
                median(&a, "rps"),
                "raw ureq",
                median(&b, "rps"),
                0.9,
            ));
            let glob = format!("{small}?[1-10000]");
            // One `STATUS SIZE` line per GET: every one must be `200 13`, as net-http's are.
            let want = format!("200 {}", expected.len());
            let curl = || -> anyhow::Result<Vec<(String, f64)>> {
                let t = Instant::now();
                let text = capture(
                    Command::new("curl").args([
                        "-s",
                        "--fail",
                        "--max-time",
                        "10",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code} %{size_download}\\n",
                        &glob,
                    ]),
                    SHORT,
                )?;
                let secs = t.elapsed().as_secs_f64();
                let good = text.lines().filter(|l| *l == want).count();
                if good != 10_000 {
                    bail!("http client, curl URL glob: {good} of 10,000 GETs answered {want:?}");
                }
                Ok(vec![("rps".into(), 10_000.0 / secs)])
            };
            let (a, b) = alternate(plan.rounds, || client("net-http"), curl)?;
            rows.push(Row::more(
                "http client, 10,000 keep-alive GETs",
                "req/s",
                median(&a, "rps"),
                "curl URL glob",
                median(&b, "rps"),
                3.0,
            ));
        }
        if wanted("http-cli") {
            let runs = if quick { 20 } else { 50 };
            let time = |cmd: &mut Command| -> anyhow::Result<Vec<(String, f64)>> {
                let mut samples = Vec::with_capacity(runs);
                for _ in 0..runs {
                    let t = Instant::now();
                    let body = capture(cmd, SHORT)?;
                    samples.push(t.elapsed().as_secs_f64() * 1000.0);
                    if body.as_bytes() != expected {
                        bail!("`netkit http URL` row: {cmd:?} printed {body:?}, not the file");
                    }
                }
                samples.sort_by(f64::total_cmp);
                Ok(vec![("ms".into(), samples[runs / 2])])
            };
            let (a, b) = alternate(
                plan.rounds,
                || time(Command::new(bin.join("netkit")).args(["http", &small])),
                || time(Command::new("curl").args(["-s", "--fail", "--max-time", "10", &small])),
            )?;
            rows.push(Row::less(
                "`netkit http URL`: start + one GET",
                "ms",
                median(&a, "ms"),
                "curl",
                median(&b, "ms"),
                1.0,
            ));
        }
        if wanted("download") {
            let big = format!("http://{}/big.bin", nginx.1);
            let dest = work.join("download.bin");
            let fetch = |cmd: &mut Command| -> anyhow::Result<Vec<(String, f64)>> {
                let _ = std::fs::remove_file(&dest);
                let t = Instant::now();
                let out = service::output_within(cmd.stderr(Stdio::piped()), LONG)?;
                if !out.status.success() {
                    bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
                }
                let secs = t.elapsed().as_secs_f64();
                let rss_kib: f64 = String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("0")
                    .trim()
                    .parse()
                    .unwrap_or(0.0);
                if !same_contents(&root.join("big.bin"), &dest)? {
                    bail!("download row: {cmd:?} wrote a file other than the one served");
                }
                Ok(vec![
                    ("mib_s".into(), (plan.download_bytes >> 20) as f64 / secs),
                    ("rss_mib".into(), rss_kib / 1024.0),
                ])
            };
            let d = path_str(&dest);
            let (a, b) = alternate(
                plan.rounds,
                || {
                    fetch(
                        Command::new("/usr/bin/time")
                            .args(["-f", "%M"])
                            .arg(bin.join("netkit"))
                            .args(["http", "--download", &big, "-o", &d]),
                    )
                },
                || {
                    fetch(
                        Command::new("/usr/bin/time")
                            .args(["-f", "%M", "curl", "-s", "--fail", "-o", &d, &big]),
                    )
                },
            )?;
            let _ = std::fs::remove_file(&dest);
            rows.push(Row::more(
                format!("download {} MiB to a file", plan.download_bytes >> 20),
                "MiB/s",
                median(&a, "mib_s"),
                "curl -o",
                median(&b, "mib_s"),
                0.9,
            ));
            let rss = median(&a, "rss_mib");
            rows.push(Row::less(
                "download, peak RSS (goal: <= 32 MiB)",
                "MiB",
                rss,
                "limit",
                32.0,
                1.0,
            ));
        }
    }

    if ["sftp", "sftp-delay", "exec", "many-hosts"]
        .iter()
        .any(|n| wanted(n))
    {
        rows.extend(ssh_works(&bin, &work, &plan, &wanted)?);
    }

    report(&rows, &out, &info, started.elapsed())
}

/// SFTP, exec and many hosts against the same real sshd that the tests use.
fn ssh_works(
    bin: &Path,
    work: &Path,
    plan: &Plan,
    wanted: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<Row>> {
    let started = crate::sshd::start(work)?;
    let var = |name: &str| {
        started
            .env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .context(name.to_owned())
    };
    let (port, user, home) = (
        var("NETKIT_TEST_SSH_PORT")?,
        var("NETKIT_TEST_SSH_USER")?,
        var("NETKIT_TEST_SSH_HOME")?,
    );
    let key = format!("{}/id_ed25519", var("NETKIT_TEST_SSH_KEYS")?);
    let known_hosts = var("NETKIT_TEST_SSH_KNOWN_HOSTS")?;
    let mut rows = Vec::new();
    let transfer = |size: u64, port: &str, kh: &str, label: &str| -> anyhow::Result<Vec<Row>> {
        let local = work.join("sftp-local.bin");
        let back = work.join("sftp-back.bin");
        write_pseudo_random(&local, size)?;
        let remote = format!("{home}/bench-sftp.bin");
        let dest = format!("{user}@127.0.0.1:{remote}");
        let netkit = |args: &[&str]| -> anyhow::Result<Vec<(String, f64)>> {
            let t = Instant::now();
            capture(
                Command::new(bin.join("netkit"))
                    .arg("sftp")
                    .arg(args[0])
                    .args(["-P", port, "-i", &key, "--known-hosts", kh])
                    .args(&args[1..]),
                LONG,
            )?;
            Ok(vec![(
                "mib_s".into(),
                (size >> 20) as f64 / t.elapsed().as_secs_f64(),
            )])
        };
        let openssh = |batch: String| -> anyhow::Result<Vec<(String, f64)>> {
            let file = work.join("sftp.batch");
            std::fs::write(&file, batch)?;
            let t = Instant::now();
            capture(
                Command::new("sftp")
                    .args(["-q", "-b"])
                    .arg(&file)
                    .args(["-P", port, "-i", &key])
                    .args(ssh_bounds(&format!("UserKnownHostsFile={kh}")))
                    .args(["-o", "StrictHostKeyChecking=yes"])
                    .arg(format!("{user}@127.0.0.1")),
                LONG,
            )?;
            Ok(vec![(
                "mib_s".into(),
                (size >> 20) as f64 / t.elapsed().as_secs_f64(),
            )])
        };
        let (l, b) = (path_str(&local), path_str(&back));
        // Checked after each sample, outside the timed part.
        let arrived = |what: &str, copy: &Path| -> anyhow::Result<()> {
            if !same_contents(&local, copy)? {
                bail!(
                    "sftp {what}, {label}: {} differs from what was sent",
                    copy.display()
                );
            }
            Ok(())
        };
        // Each put writes a new file: a put that wrote nothing must not find the last one's.
        let put = |sample: anyhow::Result<Vec<(String, f64)>>| {
            let sample = sample?;
            arrived("put", Path::new(&remote))?;
            std::fs::remove_file(&remote)?;
            Ok(sample)
        };
        let (a, o) = alternate(
            plan.rounds,
            || put(netkit(&["put", &l, &dest])),
            || put(openssh(format!("put {l} {remote}\n"))),
        )?;
        // The gets read the file a put left.
        netkit(&["put", &l, &dest])?;
        let mut rows = vec![Row::more(
            format!("sftp put {} MiB, {label}", size >> 20),
            "MiB/s",
            median(&a, "mib_s"),
            "OpenSSH sftp",
            median(&o, "mib_s"),
            1.0,
        )];
        // Each get writes a new file, as a first download does: left in place, the previous
        // copy changes the work (OpenSSH truncates it and reuses its page cache; netkit writes
        // NAME.part beside it and renames).
        let fresh = || std::fs::remove_file(&back).or_else(ignore_missing);
        let (a, o) = alternate(
            plan.rounds,
            || {
                fresh()?;
                let sample = netkit(&["get", &dest, &b])?;
                arrived("get", &back)?;
                Ok(sample)
            },
            || {
                fresh()?;
                let sample = openssh(format!("get {remote} {b}\n"))?;
                arrived("get", &back)?;
                Ok(sample)
            },
        )?;
        rows.push(Row::more(
            format!("sftp get {} MiB, {label}", size >> 20),
            "MiB/s",
            median(&a, "mib_s"),
            "OpenSSH sftp",
            median(&o, "mib_s"),
            1.0,
        ));
        let _ = std::fs::remove_file(&local);
        let _ = std::fs::remove_file(&back);
        Ok(rows)
    };
    if wanted("sftp") {
        rows.extend(transfer(plan.sftp_bytes, &port, &known_hosts, "loopback")?);
    }
    if wanted("sftp-delay") {
        let proxy = start(
            work,
            "delay-proxy",
            Command::new(bin.join("delay-proxy")).args([
                "--ms",
                "5",
                "--to",
                &format!("127.0.0.1:{port}"),
                "--listen",
            ]),
        )?;
        let proxy_port = proxy.1.rsplit(':').next().unwrap_or_default().to_owned();
        let kh = work.join("known_hosts-proxy");
        std::fs::write(
            &kh,
            std::fs::read_to_string(&known_hosts)?
                .replace(&format!("]:{port} "), &format!("]:{proxy_port} ")),
        )?;
        rows.extend(transfer(
            plan.sftp_delay_bytes,
            &proxy_port,
            &path_str(&kh),
            "5 ms each way",
        )?);
    }
    let load = |args: &[&str]| {
        figures(
            Command::new(bin.join("ssh-load"))
                .args([
                    "--port",
                    &port,
                    "--user",
                    &user,
                    "--key",
                    &key,
                    "--known-hosts",
                    &known_hosts,
                ])
                .args(args),
        )
    };
    if wanted("exec") {
        let control = work.join("ssh-control");
        let ssh = |extra: &[&str]| -> Command {
            let mut cmd = Command::new("ssh");
            cmd.args(["-p", &port, "-i", &key])
                .args(ssh_bounds(&format!("UserKnownHostsFile={known_hosts}")))
                .arg("-S")
                .arg(&control)
                .args(extra);
            cmd.arg(format!("{user}@127.0.0.1"));
            cmd
        };
        // Not through `capture`: the master forks into the background with the parent's
        // stdout, so a captured stdout would not end. ssh_bounds' timeouts bound it.
        service::run_ok(&mut ssh(&["-M", "-f", "-N", "-o", "ControlPersist=120"]))?;
        let openssh = || -> anyhow::Result<Vec<(String, f64)>> {
            let t = Instant::now();
            for _ in 0..100 {
                capture(ssh(&[]).arg("true"), SHORT)?;
            }
            Ok(vec![(
                "total_ms".into(),
                t.elapsed().as_secs_f64() * 1000.0,
            )])
        };
        let (a, o) = alternate(plan.rounds, || load(&["--exec", "100"]), openssh)?;
        let _ = ssh(&["-O", "exit"]).stderr(Stdio::null()).status();
        rows.push(Row::less(
            "exec 100 commands, one session (after connect)",
            "ms",
            median(&a, "total_ms"),
            "OpenSSH ControlMaster",
            median(&o, "total_ms"),
            1.0,
        ));
        let script = format!(
            "import paramiko, time\nc = paramiko.SSHClient()\nc.load_host_keys('{known_hosts}')\nc.connect('127.0.0.1', port={port}, username='{user}', key_filename='{key}', allow_agent=False, look_for_keys=False, timeout=10, banner_timeout=10, auth_timeout=10)\nt = time.time()\nfor _ in range(100):\n    _, out, _ = c.exec_command('true', timeout=10)\n    out.channel.recv_exit_status()\nprint('total_ms=%.1f' % ((time.time() - t) * 1000))\n"
        );
        let paramiko = || figures(Command::new("/usr/bin/python3").arg("-c").arg(&script));
        let (a2, p) = alternate(plan.rounds, || load(&["--exec", "100"]), paramiko)?;
        rows.push(Row::less(
            "exec 100 commands, one session (after connect)",
            "ms",
            median(&a2, "total_ms"),
            "paramiko",
            median(&p, "total_ms"),
            0.2,
        ));
        rows.push(Row::less(
            "exec median round trip (goal: <= 5 ms)",
            "ms",
            median(&a, "median_ms"),
            "limit",
            5.0,
            1.0,
        ));
    }
    if wanted("many-hosts") {
        let (a, o) = alternate(
            plan.rounds,
            || load(&["--many", "50"]),
            || load(&["--many", "1"]),
        )?;
        rows.push(Row::less(
            "`true` on 50 sessions, parallel 50",
            "ms",
            median(&a, "total_ms"),
            "one session",
            median(&o, "total_ms"),
            3.0,
        ));
    }
    drop(started);
    Ok(rows)
}

/// OpenSSH options for the anchors: `known_hosts` (a `UserKnownHostsFile=` option), no
/// prompt, and a bounded wait for the connection and for a silent server.
fn ssh_bounds(known_hosts: &str) -> [&str; 10] {
    [
        "-o",
        known_hosts,
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=3",
    ]
}

/// `size` bytes that do not compress, written quickly.
fn write_pseudo_random(path: &Path, size: u64) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in chunk.chunks_mut(8) {
            // xorshift64: cheap bytes that defeat compression.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(())
}

/// Starts a server on a free port (the port is appended to `cmd`); returns it and its address.
fn start(work: &Path, name: &str, cmd: &mut Command) -> anyhow::Result<(Service, String)> {
    let addr = format!("127.0.0.1:{}", service::free_port()?);
    let log = work.join(format!("{name}.log"));
    let mut server = Service::spawn(name, cmd.arg(&addr), &log)?;
    server.wait_for_port(addr.parse()?, &log)?;
    Ok((server, addr))
}

/// nginx with the same worker count as netkit, in the config that was fastest for nginx on each
/// file (measured 2026-12-07, wrk -t2 -c50, medians of 4-5 alternated runs on this machine):
/// the 13-byte file without sendfile (sendfile makes each response a header write plus a
/// sendfile that pipelining cannot coalesce: 11,000 req/s pipelined and 12,000 unpipelined
/// with `sendfile on; tcp_nopush on`, 33,000 and 24,000 with `sendfile off`), the 1 MiB file
/// with `sendfile on; tcp_nopush on` as nginx advises for large files (171 req/s against 184
/// without: within the noise). Open files are cached, as a tuned static server does.
fn start_nginx(work: &Path, root: &Path) -> anyhow::Result<(Service, String)> {
    let port = service::free_port()?;
    let http = format!(
        "    access_log off;\n    sendfile on;\n    tcp_nopush on;\n    tcp_nodelay on;\n    keepalive_requests 10000000;\n    open_file_cache max=1000 inactive=60s;\n    open_file_cache_valid 60s;\n    server {{\n        listen 127.0.0.1:{port};\n        root {};\n        location = /small.txt {{ sendfile off; tcp_nopush off; }}\n    }}\n",
        path_str(root)
    );
    let nginx = crate::nginx::run(&work.join("nginx"), THREADS, &http, port)?;
    Ok((nginx, format!("127.0.0.1:{port}")))
}

/// Runs A then B, `rounds` times.
fn alternate<T>(
    rounds: usize,
    mut a: impl FnMut() -> anyhow::Result<T>,
    mut b: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(Vec<T>, Vec<T>)> {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        xs.push(a()?);
        ys.push(b()?);
    }
    Ok((xs, ys))
}

fn median(samples: &[Vec<(String, f64)>], key: &str) -> f64 {
    let mut values: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
        .collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The longest a command whose length the plan bounds (wrk's `-d`, echo-load's `--secs`, a
/// GET, 100 execs) may take on a loaded machine before it counts as hung.
const SHORT: Duration = Duration::from_secs(60);
/// The same for one timed transfer (up to 1 GiB, or 64 MiB through the delay proxy).
const LONG: Duration = Duration::from_secs(600);

/// Runs `cmd` (killed after `limit`) and returns its stdout; fails unless it exits 0.
fn capture(cmd: &mut Command, limit: Duration) -> anyhow::Result<String> {
    let out = service::output_within(cmd, limit)?;
    if !out.status.success() {
        bail!("{cmd:?} failed with {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Requests/sec from wrk's output, or an error if any answer was not 2xx/3xx, any socket
/// error happened, or fewer bytes came than `body_len` per answer: wrk exits 0 in all these
/// cases and would otherwise report a server's error rate as its speed. No socket error is
/// tolerated: keep-alive connections on loopback have no reason to fail, and with wrk's
/// timeout above the run's length a timeout is a stall.
fn wrk_rps(text: &str, body_len: u64) -> anyhow::Result<f64> {
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix));
    if let Some(bad) = field("Non-2xx or 3xx responses:") {
        bail!("{} answers were not 2xx or 3xx", bad.trim());
    }
    if let Some(errors) = field("Socket errors:") {
        bail!("socket errors: {}", errors.trim());
    }
    // `123 requests in 1.00s, 4.56MB read`
    let (requests, read) = text
        .lines()
        .find_map(|l| {
            let (n, rest) = l.trim().split_once(" requests in ")?;
            let read = rest.split_once(", ")?.1.strip_suffix(" read")?;
            Some((n.parse::<f64>().ok()?, read))
        })
        .with_context(|| format!("wrk printed no request count:\n{text}"))?;
    let bytes = wrk_bytes(read).with_context(|| format!("wrk's byte count {read:?}"))?;
    // wrk prints the count with two decimals of its unit: 1 % covers the rounding.
    if requests < 1.0 || bytes < 0.99 * requests * body_len as f64 {
        bail!("{requests} answers carried {read}, less than {body_len} bytes each");
    }
    let rps = field("Requests/sec:").context("wrk printed no Requests/sec")?;
    Ok(rps.trim().parse()?)
}

/// wrk's binary-unit byte count (`512.00B`, `6.10MB`) in bytes.
fn wrk_bytes(text: &str) -> Option<f64> {
    let number = text.strip_suffix('B')?;
    let (number, scale) = match number.chars().last()? {
        'K' => (&number[..number.len() - 1], 1u64 << 10),
        'M' => (&number[..number.len() - 1], 1 << 20),
        'G' => (&number[..number.len() - 1], 1 << 30),
        'T' => (&number[..number.len() - 1], 1 << 40),
        _ => (number, 1),
    };
    Some(number.parse::<f64>().ok()? * scale as f64)
}

/// Runs a program that prints `key=value` figures (killed after `SHORT`).
fn figures(cmd: &mut Command) -> anyhow::Result<Vec<(String, f64)>> {
    let text = capture(cmd, SHORT)?;
    text.split_whitespace()
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .with_context(|| format!("unexpected output {text:?}"))?;
            Ok((k.to_owned(), v.parse::<f64>()?))
        })
        .collect()
}

/// When, on what and how a run was made: written beside its figures.
struct RunInfo {
    /// UTC, `2026-12-07T17:30:00Z`.
    date: String,
    /// `git describe --always --dirty` of the checkout measured.
    commit: String,
    quick: bool,
    cores: usize,
}

impl RunInfo {
    fn now(quick: bool) -> anyhow::Result<RunInfo> {
        let line = |cmd: &mut Command| -> anyhow::Result<String> {
            Ok(capture(cmd, SHORT)?.trim().to_owned())
        };
        Ok(RunInfo {
            date: line(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]))?,
            commit: line(Command::new("git").args(["describe", "--always", "--dirty"]))?,
            quick,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} run, {}, commit {}, {} cores",
            if self.quick { "quick" } else { "full" },
            self.date,
            self.commit,
            self.cores
        )
    }
}

/// A JSON string (the names are ours, but a quote or a non-ASCII letter must not break it).
fn json_string(text: &str) -> String {
    let mut s = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if u32::from(c) < 0x20 => s.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// A JSON number, or `null` for a figure that is not one (NaN, infinite).
fn json_number(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        "null".to_owned()
    }
}

fn report(rows: &[Row], out: &Path, info: &RunInfo, took: Duration) -> anyhow::Result<()> {
    let width = rows.iter().map(|r| r.work.len()).max().unwrap_or(4).max(4);
    let mut table = format!(
        "{:width$}  {:>12}  {:>14} {:>12}  {:>6}  {:>7}  result\n",
        "work", "netkit", "anchor", "", "ratio", "goal"
    );
    for r in rows {
        table.push_str(&format!(
            "{:width$}  {:>12.1}  {:>14} {:>12.1}  {:>6.2}  {:>7}  {}\n",
            r.work,
            r.netkit,
            format!("{} {}", r.anchor_name, r.unit),
            r.anchor,
            r.ratio(),
            r.goal_text(),
            if r.pass() { "pass" } else { "FAIL" }
        ));
    }
    let summary = format!(
        "{}; {:.0} s; {} of {} goals met",
        info.describe(),
        took.as_secs_f64(),
        rows.iter().filter(|r| r.pass()).count(),
        rows.len()
    );
    println!("\n{table}");
    println!("{summary}");
    std::fs::create_dir_all(out)?;
    let json: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "    {{\"work\": {}, \"unit\": {}, \"netkit\": {}, \"anchor\": {}, \"anchor_value\": {}, \"ratio\": {}, \"goal\": {}, \"pass\": {}}}",
                json_string(&r.work),
                json_string(r.unit),
                json_number(r.netkit),
                json_string(r.anchor_name),
                json_number(r.anchor),
                json_number(r.ratio()),
                json_string(&r.goal_text()),
                r.pass()
            )
        })
        .collect();
    std::fs::write(
        out.join("results.json"),
        format!(
            "{{\n  \"date\": {},\n  \"commit\": {},\n  \"run\": {},\n  \"cores\": {},\n  \"seconds\": {},\n  \"rows\": [\n{}\n  ]\n}}\n",
            json_string(&info.date),
            json_string(&info.commit),
            json_string(if info.quick { "quick" } else { "full" }),
            info.cores,
            json_number(took.as_secs_f64()),
            json.join(",\n")
        ),
    )?;
    std::fs::write(out.join("results.txt"), format!("{table}\n{summary}\n"))?;
    std::fs::write(out.join("results.svg"), svg(rows))?;
    println!("wrote {}", path_str(&out.join("results.{json,txt,svg}")));
    Ok(())
}

/// A horizontal bar per work, longer is better on every row: the ratio netkit / anchor where a
/// larger figure is better, anchor / netkit where a smaller one is (time, latency, memory),
/// with the goal marked the same way. The number printed is the table's ratio.
fn svg(rows: &[Row]) -> String {
    let (bar_h, left, scale) = (22.0, 360.0, 120.0);
    let height = 40.0 + bar_h * rows.len() as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n",
        left + scale * 4.0 + 80.0
    );
    s.push_str("<text x=\"4\" y=\"16\">netkit's lead over the anchor, longer is better (bar); goal (line); number: the table's ratio</text>\n");
    for (i, r) in rows.iter().enumerate() {
        let y = 28.0 + bar_h * i as f64;
        let (lead, goal) = if r.higher_is_better {
            (r.ratio(), r.goal)
        } else if r.ratio() > 0.0 {
            (1.0 / r.ratio(), 1.0 / r.goal)
        } else {
            (0.0, 1.0 / r.goal)
        };
        let w = if lead.is_finite() {
            (lead * scale).min(scale * 4.0)
        } else {
            0.0
        };
        let colour = if r.pass() { "#3a3" } else { "#c33" };
        let name = r
            .work
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('`', "");
        s.push_str(&format!("<text x=\"4\" y=\"{}\">{name}</text>\n", y + 14.0));
        s.push_str(&format!(
            "<rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{colour}\"/>\n",
            bar_h - 6.0
        ));
        let gx = left + (goal * scale).min(scale * 4.0);
        s.push_str(&format!(
            "<line x1=\"{gx:.1}\" x2=\"{gx:.1}\" y1=\"{y}\" y2=\"{}\" stroke=\"#000\"/>\n",
            y + bar_h - 6.0
        ));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\">{:.2}</text>\n",
            left + w + 4.0,
            y + 13.0,
            r.ratio()
        ));
    }
    s.push_str("</svg>\n");
    s
}

/// Whether two files hold the same bytes (read in 1 MiB pieces).
fn same_contents(a: &Path, b: &Path) -> anyhow::Result<bool> {
    use std::io::Read as _;
    let open =
        |p: &Path| std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// For `remove_file(..).or_else(ignore_missing)`: a file that is not there is already gone.
fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}
