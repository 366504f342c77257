//! The signals a command heeds (SIGINT, SIGTERM, SIGHUP...), watched the same way by every
//! command: one the caller left ignored stays ignored, and one signal sent twice at once by
//! the same process counts once.

use std::time::{Duration, Instant};

use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::{Handle, SignalsInfo};

/// A signal sent again by the same process within this is the same request: coreutils'
/// `timeout` sends its signal to the command and then to the command's process group, and
/// `netkit serve` took the second, microseconds later, for the operator's "again: quit at
/// once" (its downloads were cut, exit 143). A person's second Ctrl-C comes from the kernel,
/// not a process, and always counts.
const SAME_REQUEST: Duration = Duration::from_millis(100);

/// The signals of `wanted` this process heeds from now on, as [`Watched::forever`] hands
/// them over.
pub(crate) struct Watched {
    signals: SignalsInfo<WithOrigin>,
}

/// Starts watching for those of `wanted` the caller did not leave ignored: `nohup netkit
/// serve` (and `sftp put`, `http --session`) died at the SIGHUP of its terminal's closing.
pub(crate) fn watch(wanted: &[i32]) -> std::io::Result<Watched> {
    let ignored = ignored_signals();
    let heeded = wanted
        .iter()
        .copied()
        .filter(|s| ignored & (1 << (s - 1)) == 0);
    Ok(Watched {
        signals: SignalsInfo::new(heeded)?,
    })
}

impl Watched {
    /// Ends [`Watched::forever`] when closed.
    pub(crate) fn handle(&self) -> Handle {
        self.signals.handle()
    }

    /// Each signal as it comes, until the handle is closed; a repeat within
    /// [`SAME_REQUEST`] from the process that sent it is left out.
    pub(crate) fn forever(&mut self) -> impl Iterator<Item = i32> + '_ {
        let mut last: Option<(i32, i32, Instant)> = None;
        self.signals.forever().filter_map(move |origin| {
            let now = Instant::now();
            let sender = origin.process.map(|p| p.pid);
            let repeat = matches!(
                (last, sender),
                (Some((signal, pid, at)), Some(sender))
                    if signal == origin.signal && pid == sender && now - at < SAME_REQUEST
            );
            last = sender.map(|pid| (origin.signal, pid, now));
            (!repeat).then_some(origin.signal)
        })
    }
}

/// The signals this process ignores, bit N-1 for signal N (`SigIgn` of /proc/self/status:
/// reading the disposition through sigaction takes unsafe code); none when it cannot tell.
fn ignored_signals() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .unwrap_or(0)
}
