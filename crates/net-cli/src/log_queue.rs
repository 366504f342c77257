//! `netkit serve`'s log: lines go through a bounded queue to a thread that writes them to
//! stderr, so a stderr nobody reads (`2>&1 | less` left on a screenful, a stuck log shipper)
//! stops neither the event loops, which write the access log, nor the signal thread. Lines
//! that find the queue full are counted, and the count is written once stderr moves again.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Lines kept while stderr is not read.
const QUEUED_LINES: usize = 4096;

/// Lines queued and not yet written.
static PENDING: AtomicU64 = AtomicU64::new(0);

/// The logger's target: hands each record to the writing thread.
pub struct Queue {
    lines: SyncSender<Vec<u8>>,
    dropped: std::sync::Arc<AtomicU64>,
}

/// Starts the thread that writes to stderr; gives the logger's end.
pub fn start() -> Queue {
    let (lines, rx) = sync_channel(QUEUED_LINES);
    let dropped = std::sync::Arc::new(AtomicU64::new(0));
    let counted = std::sync::Arc::clone(&dropped);
    std::thread::spawn(move || write_out(&rx, &counted));
    Queue { lines, dropped }
}

fn write_out(lines: &Receiver<Vec<u8>>, dropped: &AtomicU64) {
    let mut stderr = std::io::stderr();
    for line in lines {
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                stderr,
                "netkit: {lost} log lines dropped: stderr was not read"
            );
        }
        // Nowhere to say that stderr failed: the line is gone, as with a closed stderr.
        let _ = stderr.write_all(&line);
        PENDING.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Write for Queue {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        PENDING.fetch_add(1, Ordering::Relaxed);
        match self.lines.try_send(buf.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                PENDING.fetch_sub(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits, up to `within`, for the queued lines to be written: the last lines of a server
/// that stops are its most telling.
pub fn drain(within: Duration) {
    let deadline = Instant::now() + within;
    while PENDING.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}
