//! Programs `cargo xtask bench` runs beside netkit (see `src/bin/`): `tokio-echo`, the
//! anchor for `netkit serve echo`; `echo-load`, the echo load generator; `http-client-load`,
//! sequential keep-alive GETs with raw ureq or net-http. Each prints one line of
//! `key=value` figures for the harness to read.
//!
//! ```
//! assert_eq!(net_bench::percentile(&mut [5, 1, 3, 2, 4], 0.5), 3);
//! ```

/// The `q` quantile (0..=1) of `samples`, by sorting them.
#[must_use]
pub fn percentile(samples: &mut [u64], q: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

/// Reads `--name value` from the arguments, or `default`.
#[must_use]
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}
