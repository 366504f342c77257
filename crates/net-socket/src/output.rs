//! A connection's pending output: bytes and file ranges, written in order.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;

/// Buffers above this size are not kept for reuse once drained.
const KEEP_CAPACITY: usize = 256 * 1024;
/// The most one connection writes before its loop serves the others (nginx's
/// `sendfile_max_chunk`): a download whose reader kept up wrote 184 MiB in one pass, and a
/// small GET on the same loop waited 20-170 ms behind four of them. Each call is asked for
/// no more than what is left of it, so that a pass never goes past it.
pub(crate) const PASS_BUDGET: u64 = 2 << 20;
/// Linux `MSG_MORE`: more data follows, so a response head waits for the file's first bytes
/// and leaves in the same segment (nginx gets the same with `tcp_nopush`).
const MSG_MORE: i32 = 0x8000;

enum Segment {
    Bytes { buf: Vec<u8>, pos: usize },
    File { file: File, offset: u64, end: u64 },
}

/// Output queued for one connection.
#[derive(Default)]
pub(crate) struct Output {
    segments: VecDeque<Segment>,
    spare: Vec<u8>,
    /// Bytes handed to the kernel since the connection opened, kept when the queue is
    /// discarded: a handler tells from it how much of a response went (an access log's
    /// bytes sent).
    sent: u64,
    /// The handler asked to hear when `sent` reaches this.
    mark: Option<u64>,
}

impl Output {
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.tail_buffer().extend_from_slice(bytes);
        }
    }

    pub(crate) fn push_file(&mut self, file: File, offset: u64, len: u64) {
        if len > 0 {
            self.segments.push_back(Segment::File {
                file,
                offset,
                end: offset + len,
            });
        }
    }

    /// The byte buffer at the end of the queue, created when the queue ends with a file.
    pub(crate) fn tail_buffer(&mut self) -> &mut Vec<u8> {
        if !matches!(self.segments.back(), Some(Segment::Bytes { .. })) {
            let buf = std::mem::take(&mut self.spare);
            self.segments.push_back(Segment::Bytes { buf, pos: 0 });
        }
        match self.segments.back_mut() {
            Some(Segment::Bytes { buf, .. }) => buf,
            // The branch above just made the last segment a byte buffer.
            _ => unreachable!("the output queue ends with a byte buffer"),
        }
    }

    /// Drops what is queued and not written yet; the count of bytes sent stays.
    pub(crate) fn discard(&mut self) {
        self.segments.clear();
        self.spare = Vec::new();
    }

    /// Counts bytes written to the socket past the queue (`Context::write`).
    pub(crate) fn note_sent(&mut self, n: u64) {
        self.sent += n;
    }

    /// Bytes handed to the kernel since the connection opened.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Where the output queued so far ends, counted as [`Output::sent`].
    pub(crate) fn end(&self) -> u64 {
        self.sent + self.pending()
    }

    pub(crate) fn set_mark(&mut self, at: u64) {
        self.mark = Some(at);
    }

    /// Whether `sent` has reached the mark; the mark is cleared when it has.
    pub(crate) fn take_mark(&mut self) -> bool {
        let reached = self.mark.is_some_and(|at| self.sent >= at);
        if reached {
            self.mark = None;
        }
        reached
    }

    /// Bytes still to write, file ranges included.
    pub(crate) fn pending(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Bytes { buf, pos } => (buf.len() - pos) as u64,
                Segment::File { offset, end, .. } => end - offset,
            })
            .sum()
    }

    /// Bytes held in memory, the part of [`Output::pending`] that costs the server RAM.
    pub(crate) fn buffered(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Bytes { buf, pos } => (buf.len() - pos) as u64,
                Segment::File { .. } => 0,
            })
            .sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| match s {
            Segment::Bytes { buf, pos } => *pos == buf.len(),
            Segment::File { offset, end, .. } => offset == end,
        })
    }

    /// Writes until the queue is empty, the socket would block or [`PASS_BUDGET`] bytes are
    /// written; returns the bytes written.
    pub(crate) fn write_to<S: Write + AsFd>(&mut self, stream: &mut S) -> io::Result<u64> {
        let mut written = 0u64;
        while written < PASS_BUDGET {
            let left = usize::try_from(PASS_BUDGET - written).unwrap_or(usize::MAX);
            let only = self.segments.len() == 1;
            let file_follows = matches!(self.segments.get(1), Some(Segment::File { .. }));
            let Some(front) = self.segments.front_mut() else {
                break;
            };
            let step = match front {
                Segment::Bytes { buf, pos } => {
                    if *pos == buf.len() {
                        if only {
                            // Keep the last buffer for the next response.
                            buf.clear();
                            *pos = 0;
                            if buf.capacity() > KEEP_CAPACITY {
                                *buf = Vec::new();
                            }
                            break;
                        }
                        self.recycle_front();
                        continue;
                    }
                    let part = &buf[*pos..buf.len().min(pos.saturating_add(left))];
                    let sent = if file_follows {
                        socket2::SockRef::from(&*stream).send_with_flags(part, MSG_MORE)
                    } else {
                        stream.write(part)
                    };
                    match sent {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => {
                            *pos += n;
                            n
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                Segment::File { file, offset, end } => {
                    if offset == end {
                        self.segments.pop_front();
                        continue;
                    }
                    let count = usize::try_from(*end - *offset).unwrap_or(left).min(left);
                    let mut off = i64::try_from(*offset)
                        .map_err(|_| io::Error::other("file offset out of range"))?;
                    match nix::sys::sendfile::sendfile64(
                        stream.as_fd(),
                        file.as_fd(),
                        Some(&mut off),
                        count,
                    ) {
                        // The file shrank under us: the promised length cannot be sent.
                        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Ok(n) => {
                            *offset += n as u64;
                            n
                        }
                        Err(nix::errno::Errno::EINTR) => continue,
                        Err(nix::errno::Errno::EAGAIN) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            written += step as u64;
            self.sent += step as u64;
        }
        Ok(written)
    }

    /// Pops a drained byte buffer, keeping its allocation as the spare.
    fn recycle_front(&mut self) {
        if let Some(Segment::Bytes { mut buf, .. }) = self.segments.pop_front()
            && buf.capacity() <= KEEP_CAPACITY
            && self.spare.capacity() == 0
        {
            buf.clear();
            self.spare = buf;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    /// A pass stops at the budget even when the write that reaches it could move more: file
    /// ranges of 1.5 and 3 MiB went out as 3.5 MiB in one pass.
    #[test]
    fn a_pass_writes_no_more_than_its_budget() {
        const MIB: u64 = 1 << 20;
        let mut source = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..7 << 20).map(|i: u32| (i % 251) as u8).collect();
        source.write_all(&content).unwrap();
        let mut output = Output::default();
        output.push_file(source.try_clone().unwrap(), 0, 3 * MIB / 2);
        output.push_file(source, 3 * MIB / 2, 3 * MIB);
        output.push_bytes(&content[9 << 19..]);
        // sendfile(2) writes to a regular file as to a socket, and a file never blocks.
        let mut sink = tempfile::tempfile().unwrap();
        let mut passes = Vec::new();
        while !output.is_empty() {
            passes.push(output.write_to(&mut sink).unwrap());
        }
        assert_eq!(passes, [2 * MIB, 2 * MIB, 2 * MIB, MIB], "bytes per pass");
        let mut written = Vec::new();
        sink.rewind().unwrap();
        sink.read_to_end(&mut written).unwrap();
        assert!(
            written == content,
            "the file holds what was queued, in order"
        );
    }
}
