//! Dependencies' log lines held below the level where they dump bytes and secrets, unless
//! `RUST_LOG` names the dependency itself.
//!
//! `RUST_LOG=trace` let ureq-proto hex-dump every 16 bytes of each request and response,
//! bodies included: a 200 MB download wrote 957 MB of log and took 30 times as long, and the
//! dump showed the Authorization, Cookie and Proxy-Authorization values that ureq's own line
//! just before calls redacted. `curl -v` shows heads only; only `--trace-ascii`, asked for by
//! name, dumps bodies: here that is `RUST_LOG=ureq_proto=trace`.
//!
//! ureq hides a URL's path and query, and a redirect's `Location`, in its debug lines only
//! while its `ureq::util` is not at trace: `RUST_LOG=trace` printed a Location's password
//! and `?token=` whole. Held at debug there, they stay hidden unless `ureq` is named.
//!
//! A client's default level (warn) also let rustls's warnings through: https to a peer that
//! echoes printed "warning: Received a ClientHello handshake message while expecting ..."
//! before the error that says the same in our words (curl says it once).

use log::{LevelFilter, Log, Metadata, Record};

/// The dependencies held, and the most verbose level each keeps unless named.
const CAPS: [(&str, LevelFilter); 4] = [
    // Its trace is the hex dump of every byte sent and received (util.rs `log_data`).
    ("ureq_proto", LevelFilter::Debug),
    // Its trace logs nothing itself: ureq asks whether it is on (`log_enabled!` in
    // util.rs) to print URLs' paths and queries and `Location` values unredacted.
    ("ureq::util", LevelFilter::Debug),
    // Its debug prints each Set-Cookie whole, the session's value included.
    ("cookie_store", LevelFilter::Info),
    // Its warnings are a failed handshake told in its own words, which the error tells.
    ("rustls", LevelFilter::Error),
];

/// An `env_logger` logger with [`CAPS`] applied to the modules `directives` do not name.
pub struct Capped {
    inner: env_logger::Logger,
    caps: Vec<(&'static str, LevelFilter)>,
}

impl Capped {
    /// `inner`, held to [`CAPS`] for each module that `directives` (`RUST_LOG`'s syntax)
    /// leaves unnamed: `RUST_LOG=trace` is capped, `RUST_LOG=trace,ureq_proto=trace` is not.
    pub fn new(inner: env_logger::Logger, directives: Option<&str>) -> Capped {
        let caps = CAPS
            .into_iter()
            .filter(|(module, _)| !directives.is_some_and(|d| names(d, module)))
            .collect();
        Capped { inner, caps }
    }

    /// Makes this the process's logger, as `env_logger::Builder::init` would. Setting it
    /// fails only when a logger is set already, which `main` never does twice.
    pub fn init(self) {
        let max = self.inner.filter();
        if log::set_boxed_logger(Box::new(self)).is_ok() {
            log::set_max_level(max);
        }
    }
}

impl Log for Capped {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let capped = self
            .caps
            .iter()
            .any(|(module, cap)| within(metadata.target(), module) && metadata.level() > *cap);
        !capped && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Whether a directive of `directives` is about `module`, one of its submodules or a module
/// it is in (a bare level, or `ureq=trace`, is not about `ureq_proto`; `ureq=trace` is about
/// `ureq::util`).
fn names(directives: &str, module: &str) -> bool {
    // Past a `/` is env_logger's message regex, not directives.
    let directives = directives.split('/').next().unwrap_or_default();
    directives.split(',').any(|directive| {
        let name = directive.split('=').next().unwrap_or_default().trim();
        within(name, module) || within(module, name)
    })
}

/// Whether `target` is `module` or inside it.
fn within(target: &str, module: &str) -> bool {
    target
        .strip_prefix(module)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_is_named_by_itself_or_a_submodule_only() {
        assert!(names("trace,ureq_proto=trace", "ureq_proto"));
        assert!(names("ureq_proto::util", "ureq_proto"));
        assert!(names("debug, ureq_proto = trace/regex", "ureq_proto"));
        assert!(!names("trace", "ureq_proto"));
        assert!(!names("ureq=trace", "ureq_proto"));
        assert!(!names("trace/ureq_proto", "ureq_proto"));
        assert!(!names("ureq_protocol=trace", "ureq_proto"));
        assert!(names("ureq=trace", "ureq::util"));
        assert!(!names("trace,ureq::run=trace", "ureq::util"));
    }
}
