//! `http-client-load --url URL --count N --client ureq|net-http`: N sequential keep-alive GETs;
//! prints `rps=...`.
#![allow(clippy::print_stdout, reason = "prints its figures for the harness")]

use std::io::Read;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url: String = net_bench::arg("--url", String::new());
    let count: usize = net_bench::arg("--count", 10_000);
    let which: String = net_bench::arg("--client", "ureq".to_owned());
    let started = Instant::now();
    let mut body = Vec::new();
    if which == "ureq" {
        let agent = ureq::Agent::new_with_defaults();
        for _ in 0..count {
            body.clear();
            let mut response = agent.get(&url).call()?;
            response.body_mut().as_reader().read_to_end(&mut body)?;
        }
    } else {
        let client = net_http::Client::new(net_http::ClientConfig::default())?;
        for _ in 0..count {
            body.clear();
            let response = client.get(&url)?.send()?;
            response.reader().read_to_end(&mut body)?;
        }
    }
    println!("rps={:.0}", count as f64 / started.elapsed().as_secs_f64());
    Ok(())
}
