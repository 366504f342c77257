//! `netkit serve`'s log: lines go through a bounded queue to a thread that writes them to
//! stderr, so a stderr nobody reads (`2>&1 | less` left on a screenful, a stuck log shipper)
//! stops neither the event loops, which write the access log, nor the signal thread. Lines
//! that find the queue full are counted, and the count takes their place in the log.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// Lines kept while stderr is not read.
const QUEUED_LINES: usize = 4096;

/// Lines queued and not yet written.
static PENDING: AtomicU64 = AtomicU64::new(0);

/// Lines dropped since the last count was queued.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The logger's target: hands each record to the writing thread.
pub struct Queue {
    lines: SyncSender<Vec<u8>>,
}

/// Starts the thread that writes to stderr; gives the logger's end, or the error when no
/// thread can be started (the log then goes to stderr directly).
pub fn start() -> std::io::Result<Queue> {
    let (lines, rx) = sync_channel(QUEUED_LINES);
    std::thread::Builder::new().spawn(move || write_out(&rx))?;
    Ok(Queue { lines })
}

fn write_out(lines: &Receiver<Vec<u8>>) {
    let mut stderr = std::io::stderr();
    for line in lines {
        // Nowhere to say that stderr failed: the line is gone, as with a closed stderr.
        let _ = stderr.write_all(&line);
        PENDING.fetch_sub(1, Ordering::Relaxed);
    }
}

fn dropped_line(lost: u64) -> Vec<u8> {
    format!("netkit: {lost} log lines dropped here: stderr was not read\n").into_bytes()
}

impl Queue {
    /// Queues `line`; false when the queue is full.
    fn queue(&self, line: Vec<u8>) -> bool {
        PENDING.fetch_add(1, Ordering::Relaxed);
        let queued = self.lines.try_send(line).is_ok();
        if !queued {
            PENDING.fetch_sub(1, Ordering::Relaxed);
        }
        queued
    }
}

impl Write for Queue {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The count of lines lost goes where they were lost: before this one.
        let lost = DROPPED.load(Ordering::Relaxed);
        let room = lost == 0 || self.queue(dropped_line(lost));
        if room {
            DROPPED.fetch_sub(lost, Ordering::Relaxed);
        }
        if !(room && self.queue(buf.to_vec())) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits, up to `within`, for the queued lines to be written (the last lines of a server
/// that stops are its most telling), then counts those lost after them.
pub fn drain(within: Duration) {
    let deadline = Instant::now() + within;
    while PENDING.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let lost = DROPPED.swap(0, Ordering::Relaxed);
    if lost > 0 && PENDING.load(Ordering::Relaxed) == 0 {
        let _ = std::io::stderr().write_all(&dropped_line(lost));
    }
}
