//! SSH work with net-ssh against `--port P --user U --key K --known-hosts F`:
//! `--exec N`: N commands (`true`) on one session; prints `total_ms=... median_ms=...
//! connect_ms=...`, where `total_ms` starts once the session is connected and authenticated,
//! as the anchors' (OpenSSH's ControlMaster, paramiko's `connect`) do.
//! `--many N`: `true` on N sessions at once; prints `total_ms=...`.
#![allow(clippy::print_stdout, reason = "prints its figures for the harness")]

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = net_ssh::Config::new("127.0.0.1");
    config.port = net_bench::arg("--port", 22);
    config.user = net_bench::arg("--user", String::new());
    config.known_hosts = net_bench::arg("--known-hosts", String::new()).into();
    config.use_agent = false;
    config.identities = vec![net_ssh::Identity::new(
        net_bench::arg("--key", String::new()),
        None,
    )];
    let exec: usize = net_bench::arg("--exec", 0);
    let many: usize = net_bench::arg("--many", 0);
    let started = Instant::now();
    if exec > 0 {
        let client = net_ssh::Client::connect(&config)?;
        let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let mut times = Vec::with_capacity(exec);
        for _ in 0..exec {
            let t = Instant::now();
            let out = client.exec("true", b"")?;
            if !out.status.success() {
                return Err(format!("`true` exited with {:?}", out.status).into());
            }
            times.push(t.elapsed().as_micros() as u64);
        }
        let median = net_bench::percentile(&mut times, 0.5) as f64 / 1000.0;
        println!(
            "total_ms={:.1} median_ms={median:.2} connect_ms={connect_ms:.1}",
            started.elapsed().as_secs_f64() * 1000.0
        );
    } else {
        let hosts = vec![config; many.max(1)];
        let results = net_ssh::run_many(&hosts, "true", hosts.len());
        if let Some(failed) = results.iter().find(|r| !r.success()) {
            return Err(format!("{}: {:?}", failed.host, failed.outcome).into());
        }
        println!("total_ms={:.1}", started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(())
}
