//! Small files kept in memory by each event loop, served only while a stat of their path
//! shows the very file that was read.
//!
//! A file served from disk costs four system calls (open, stat, read, close) besides the
//! request's receive and send; a hit here costs one stat. nginx's `open_file_cache` saves as
//! much but serves a changed file for up to `open_file_cache_valid` (60 s in tuned configs);
//! this one serves what the file holds when the request is answered, whatever wrote, renamed
//! or chmod'ed it (a writer through a shared memory map: within a second):
//!
//! - Every hit stats the path again, from the same root, and needs the device, inode, type,
//!   permissions, size, modification and change times to be the ones the bytes were read
//!   with. Writing, truncating, renaming over, linking, unlinking or chmod'ing the file all
//!   move its change time (ctime), which no process can set back.
//! - A file is kept only once its change time is [`SETTLED`] in the past. The kernel stamps a
//!   change with a clock that may lag by a tick (a few ms, a whole second on filesystems with
//!   one-second times), so two writes close together can leave the same ctime; a file written
//!   within the last two seconds is therefore read from disk each time, and any change made
//!   after it was kept gets a later ctime than the one kept.
//! - Writes through a shared memory map do not always move the ctime (a page already dirty
//!   takes more writes unseen), so a file is read again once its bytes are a second old: such
//!   a writer's change is served within a second, as a new `--root` is.
//! - Only files on local filesystems are kept: an NFS or FUSE client answers stat from
//!   attributes it caches for up to a minute, where opening the file asks the server.
//! - The stat follows the path as the kernel resolves it now, links included, so it may
//!   reach the file another way than the checked open did (a directory moved out of the root
//!   and a link put in its place): then it is still the same, unchanged inode whose bytes
//!   were served from inside the root, and nothing new is disclosed. A path that now leads to
//!   anything else misses and is opened the safe way ([`super::files::open_beneath`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use nix::sys::statfs::{self, fstatfs};

/// Larger files are read from disk (and the largest sent by sendfile) every time.
pub(crate) const MAX_FILE: u64 = 64 * 1024;
/// What one loop keeps at most: a site of many small files misses for the rest, it is not
/// allowed to grow the server's memory.
const MAX_BYTES: usize = 8 * 1024 * 1024;
const MAX_ENTRIES: usize = 4096;
/// How long ago a file must have last changed to be kept (see the module's doc).
const SETTLED: Duration = Duration::from_secs(2);
/// How long kept bytes are served before the file is read again (see the module's doc).
const FRESH_FOR: Duration = Duration::from_secs(1);
/// The filesystems whose stat tells every change at once: local ones.
const LOCAL: [statfs::FsType; 6] = [
    statfs::EXT4_SUPER_MAGIC,
    statfs::XFS_SUPER_MAGIC,
    statfs::BTRFS_SUPER_MAGIC,
    statfs::TMPFS_MAGIC,
    statfs::OVERLAYFS_SUPER_MAGIC,
    statfs::F2FS_SUPER_MAGIC,
];

/// A file's identity and state as stat tells it: any change to the file moves one of them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    dev: u64,
    ino: u64,
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mode: meta.mode(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// What `rel` under `dir` names now, following links as an open would.
    fn now(dir: &OwnedFd, rel: &OsStr) -> Option<Stamp> {
        let st = fstatat(dir, rel, AtFlags::empty()).ok()?;
        // The casts follow libc's field types, which differ between targets.
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        Some(Stamp {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mode: st.st_mode as u32,
            size: st.st_size as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        })
    }

    /// Whether the file last changed at least [`SETTLED`] before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let Ok(since_epoch) = now.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let (secs, nanos) = self.ctime;
        let Ok(secs) = u64::try_from(secs) else {
            return false;
        };
        let Ok(nanos) = u32::try_from(nanos) else {
            return false;
        };
        Duration::new(secs, 0).saturating_add(Duration::from_nanos(u64::from(nanos))) + SETTLED
            <= since_epoch
    }
}

/// A file kept in memory, with what its response heads say of it.
#[derive(Debug)]
pub(crate) struct Cached {
    /// The device and inode of the root it was read under.
    root: (u64, u64),
    stamp: Stamp,
    read: Instant,
    pub(crate) bytes: Box<[u8]>,
    pub(crate) modified: Option<SystemTime>,
    /// What each response says of it, worked out once: a pipelined loop spent a tenth of
    /// its time on the type's lookup and the tag's formatting.
    pub(crate) content_type: &'static str,
    pub(crate) etag: String,
}

/// One event loop's files, by their path under the root.
#[derive(Default)]
struct Files {
    entries: HashMap<Box<[u8]>, Rc<Cached>>,
    bytes: usize,
}

thread_local! {
    /// Per thread, so per event loop: no lock, and a loop's hits stay in its core's cache.
    static FILES: RefCell<Files> = RefCell::default();
}

/// The kept bytes of `rel` under the root `dir` (whose device and inode are `root`), if
/// what the path names now is what they were read from.
pub(crate) fn get(root: (u64, u64), dir: &OwnedFd, rel: &OsStr) -> Option<Rc<Cached>> {
    let cached = FILES.with_borrow(|files| files.entries.get(rel.as_bytes()).cloned())?;
    if cached.root == root
        && cached.read.elapsed() < FRESH_FOR
        && Stamp::now(dir, rel) == Some(cached.stamp)
    {
        return Some(cached);
    }
    // Dropped, or a file that changes all the time (and so is never kept again) would cost
    // this stat on every request on top of the open.
    FILES.with_borrow_mut(|files| {
        if let Some(old) = files.entries.remove(rel.as_bytes()) {
            files.bytes -= old.bytes.len();
        }
    });
    None
}

/// Reads and keeps `file`, the regular file `rel` under the root `root` opened with `meta`,
/// if it is small and has settled; returns what was kept, or `None` to serve it from disk.
pub(crate) fn keep(
    root: (u64, u64),
    rel: &OsStr,
    file: &std::fs::File,
    meta: &Metadata,
) -> Option<Rc<Cached>> {
    use std::os::unix::fs::FileExt as _;
    let stamp = Stamp::of(meta);
    if !meta.is_file() || meta.len() > MAX_FILE || !stamp.settled(SystemTime::now()) {
        return None;
    }
    let on = fstatfs(file).ok()?.filesystem_type();
    if !LOCAL.contains(&on) {
        return None;
    }
    let read = Instant::now();
    // At most MAX_FILE, so it fits in usize.
    let mut bytes = vec![0; meta.len() as usize].into_boxed_slice();
    file.read_exact_at(&mut bytes, 0).ok()?;
    let modified = meta.modified().ok();
    let cached = Rc::new(Cached {
        root,
        stamp,
        read,
        bytes,
        modified,
        content_type: super::content_type(std::path::Path::new(rel)),
        etag: super::files::etag(modified, meta.len()),
    });
    FILES.with_borrow_mut(|files| {
        let key = Box::from(rel.as_bytes());
        if let Some(old) = files.entries.remove(&key) {
            files.bytes -= old.bytes.len();
        }
        // Any entry makes room: the hit rate of a working set larger than the cache is low
        // whatever is dropped, and this keeps no order to update on every hit.
        while files.entries.len() >= MAX_ENTRIES || files.bytes + cached.bytes.len() > MAX_BYTES {
            let Some(victim) = files.entries.keys().next().cloned() else {
                break;
            };
            if let Some(old) = files.entries.remove(&victim) {
                files.bytes -= old.bytes.len();
            }
        }
        files.bytes += cached.bytes.len();
        files.entries.insert(key, Rc::clone(&cached));
    });
    Some(cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_changed_long_enough_ago_are_settled() {
        let at = |secs: i64| Stamp {
            dev: 1,
            ino: 2,
            mode: 0o100644,
            size: 3,
            mtime: (secs, 0),
            ctime: (secs, 5),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert!(at(900).settled(now));
        assert!(at(997).settled(now));
        assert!(!at(998).settled(now));
        assert!(!at(1_000).settled(now));
        assert!(!at(2_000).settled(now));
        assert!(!at(-1).settled(now));
    }
}
