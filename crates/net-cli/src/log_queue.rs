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
    let mut log = Log::new(std::io::stderr());
    for line in lines {
        log.write_line(&line);
        PENDING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes log lines to `out`, saying where lines were lost to failed writes (a full disk)
/// once writing works again, as nginx logs its failed writes: they went without a word, and
/// the log went on in the middle of the line the disk had cut.
struct Log<W> {
    out: W,
    /// Lines lost since the last one written, and the last error.
    lost: Option<(u64, std::io::Error)>,
    /// What was last written ended in the middle of a line.
    torn: bool,
    buf: Vec<u8>,
}

impl<W: Write> Log<W> {
    fn new(out: W) -> Self {
        Log {
            out,
            lost: None,
            torn: false,
            buf: Vec::new(),
        }
    }

    fn write_line(&mut self, line: &[u8]) {
        self.buf.clear();
        if self.torn {
            self.buf.push(b'\n');
        }
        if let Some((count, error)) = &self.lost {
            self.buf.extend_from_slice(
                format!("netkit: {count} log lines lost here: {error}\n").as_bytes(),
            );
        }
        self.buf.extend_from_slice(line);
        let mut done = 0;
        while done < self.buf.len() {
            match self.out.write(&self.buf[done..]) {
                Ok(0) => {
                    self.failed(done, std::io::ErrorKind::WriteZero.into());
                    return;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed(done, e);
                    return;
                }
            }
        }
        (self.lost, self.torn) = (None, false);
    }

    fn failed(&mut self, written: usize, error: std::io::Error) {
        if written > 0 {
            self.torn = self.buf[written - 1] != b'\n';
        }
        let count = self.lost.as_ref().map_or(0, |(count, _)| *count);
        self.lost = Some((count + 1, error));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then fails as a full disk, until given more room.
    struct Disk {
        written: Vec<u8>,
        room: usize,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_lost_to_a_full_disk_are_counted_where_they_went_missing() {
        let mut log = Log::new(Disk {
            written: Vec::new(),
            room: 15,
        });
        log.write_line(b"first line\n");
        log.write_line(b"second line\n");
        log.write_line(b"third line\n");
        log.out.room = 1000;
        log.write_line(b"fourth line\n");
        let text = String::from_utf8(log.out.written).unwrap();
        assert_eq!(
            text,
            "first line\nseco\nnetkit: 2 log lines lost here: No space left on device \
             (os error 28)\nfourth line\n"
        );
    }
}
