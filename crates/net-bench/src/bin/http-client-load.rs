//! `http-client-load --url URL --count N --client ureq|net-http --expect FILE`: N sequential
//! keep-alive GETs, each of which must answer 200 with exactly FILE's bytes; prints `rps=...`.
#![allow(clippy::print_stdout, reason = "prints its figures for the harness")]

use std::io::Read;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Longest wait for a connection or for the next bytes of an answer: a stalled server ends
/// the run with an error instead of hanging the bench.
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    let url: String = net_bench::arg("--url", String::new());
    let count: usize = net_bench::arg("--count", 10_000);
    let which: String = net_bench::arg("--client", "ureq".to_owned());
    let expected = std::fs::read(net_bench::arg("--expect", String::new()))
        .map_err(|e| format!("--expect FILE: {e}"))?;
    let started = Instant::now();
    let mut body = Vec::new();
    // A 404 or a wrong body would otherwise be timed as a GET like any other.
    let check = |status: u16, body: &[u8]| -> Result<()> {
        if status != 200 {
            return Err(format!("{which}: {url} answered {status}").into());
        }
        if body != expected.as_slice() {
            return Err(format!(
                "{which}: {url} sent {} bytes that are not the expected {}",
                body.len(),
                expected.len()
            )
            .into());
        }
        Ok(())
    };
    if which == "ureq" {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(TIMEOUT))
            .timeout_recv_response(Some(TIMEOUT))
            .timeout_recv_body(Some(TIMEOUT))
            .timeout_send_request(Some(TIMEOUT))
            .build()
            .into();
        for _ in 0..count {
            body.clear();
            let mut response = agent.get(&url).call()?;
            response.body_mut().as_reader().read_to_end(&mut body)?;
            check(response.status().as_u16(), &body)?;
        }
    } else {
        let mut config = net_http::ClientConfig::default();
        config.connect_timeout = TIMEOUT;
        config.read_timeout = TIMEOUT;
        let client = net_http::Client::new(config)?;
        for _ in 0..count {
            body.clear();
            let response = client.get(&url)?.send()?;
            let status = response.status();
            response.reader().read_to_end(&mut body)?;
            check(status, &body)?;
        }
    }
    println!("rps={:.0}", count as f64 / started.elapsed().as_secs_f64());
    Ok(())
}
