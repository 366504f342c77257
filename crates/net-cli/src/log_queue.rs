//! `netkit serve`'s log: lines go through a bounded queue to a thread that writes them to
//! stderr, so a stderr nobody reads (`2>&1 | less` left on a screenful, a stuck log shipper)
//! stops neither the event loops, which write the access log, nor the signal thread. Lines
//! that find the queue full are counted, and the count takes their place in the log.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// Lines kept while the writer is behind (stderr not read, or written slower than the loops
/// log).
const QUEUED_LINES: usize = 4096;
/// The most one write takes of the lines waiting.
const BATCH: usize = 1 << 20;

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
    write_batches(lines, &mut Log::new(std::io::stderr()));
}

/// Writes every line waiting by the time the writer comes back in one write: a write per line
/// fell behind two loops' access logs under pipelined load, to a plain file too, and lines
/// were dropped.
fn write_batches<W: Write>(lines: &Receiver<Vec<u8>>, log: &mut Log<W>) {
    while let Ok(line) = lines.recv() {
        log.add(&line);
        let mut taken = 1;
        while log.buf.len() < BATCH
            && let Ok(line) = lines.try_recv()
        {
            log.add(&line);
            taken += 1;
        }
        log.write();
        PENDING.fetch_sub(taken, Ordering::Relaxed);
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
    /// What the next write takes: the lines added since the last, after what `torn` and
    /// `lost` ask to be said first.
    buf: Vec<u8>,
    /// How many lines `buf` holds.
    lines: u64,
    /// Where the lines start in `buf`, after that preamble.
    preamble: usize,
}

impl<W: Write> Log<W> {
    fn new(out: W) -> Self {
        Log {
            out,
            lost: None,
            torn: false,
            buf: Vec::new(),
            lines: 0,
            preamble: 0,
        }
    }

    /// Adds `line` to what the next [`Log::write`] writes.
    fn add(&mut self, line: &[u8]) {
        if self.buf.is_empty() {
            if self.torn {
                self.buf.push(b'\n');
            }
            if let Some((count, error)) = &self.lost {
                self.buf.extend_from_slice(
                    format!("netkit: {count} log lines lost here: {error}\n").as_bytes(),
                );
            }
            self.preamble = self.buf.len();
        }
        self.buf.extend_from_slice(line);
        self.lines += 1;
    }

    /// Writes the lines added since the last write.
    fn write(&mut self) {
        // Nothing to write says nothing of the disk: a loss not yet told stays to be told.
        if self.buf.is_empty() {
            return;
        }
        let mut done = 0;
        while done < self.buf.len() {
            match self.out.write(&self.buf[done..]) {
                Ok(0) => {
                    self.failed(done, std::io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed(done, e);
                    break;
                }
            }
        }
        if done == self.buf.len() {
            (self.lost, self.torn) = (None, false);
        }
        self.buf.clear();
        self.lines = 0;
    }

    fn failed(&mut self, written: usize, error: std::io::Error) {
        if written > 0 {
            self.torn = self.buf[written - 1] != b'\n';
        }
        // Lines are lost from the first one not written whole; the count said before them
        // is said again if it did not get out whole itself.
        let count = if written < self.preamble {
            self.lost.as_ref().map_or(0, |(count, _)| *count) + self.lines
        } else {
            self.buf[written..].iter().filter(|&&b| b == b'\n').count() as u64
        };
        self.lost = Some((count, error));
    }
}

fn dropped_line(lost: u64) -> Vec<u8> {
    format!(
        "netkit: {lost} log lines dropped here: the log writer fell behind \
         ({QUEUED_LINES} lines were waiting to be written)\n"
    )
    .into_bytes()
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
        // Written a line at a time or all in one batch, the count starts at the line cut.
        for batched in [false, true] {
            let mut log = Log::new(Disk {
                written: Vec::new(),
                room: 15,
            });
            for line in ["first line\n", "second line\n", "third line\n"] {
                log.add(line.as_bytes());
                if !batched {
                    log.write();
                }
            }
            log.write();
            log.out.room = 1000;
            log.add(b"fourth line\n");
            log.write();
            let text = String::from_utf8(log.out.written).unwrap();
            assert_eq!(
                text,
                "first line\nseco\nnetkit: 2 log lines lost here: No space left on device \
                 (os error 28)\nfourth line\n",
                "batched: {batched}"
            );
        }
    }

    /// Counts the writes it takes.
    struct Counted {
        written: Vec<u8>,
        writes: usize,
    }

    impl Write for Counted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.writes += 1;
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_waiting_go_out_in_one_write() {
        // A write per line fell behind the loops under pipelined load and dropped lines.
        let (tx, rx) = sync_channel(QUEUED_LINES);
        for i in 0..1000 {
            tx.send(format!("line {i}\n").into_bytes()).unwrap();
        }
        drop(tx);
        let mut log = Log::new(Counted {
            written: Vec::new(),
            writes: 0,
        });
        write_batches(&rx, &mut log);
        assert_eq!(log.out.writes, 1);
        let text = String::from_utf8(log.out.written).unwrap();
        assert_eq!(text.lines().count(), 1000);
        assert!(text.ends_with("line 999\n"));
    }

    #[test]
    fn the_drop_count_says_the_writer_fell_behind_and_blames_no_reader() {
        let line = String::from_utf8(dropped_line(3)).unwrap();
        assert!(line.starts_with("netkit: 3 log lines dropped here: the log writer fell behind"));
        assert!(!line.contains("not read"), "{line}");
    }
}
