//! Files named on the command line or in the environment, read whole with a cap.

use std::io::Read as _;
use std::path::Path;

/// The most read of a file that holds settings or credentials: a CA bundle, a client
/// certificate or key, a session, a netrc, a host list. Far above any real one; a mistyped path
/// to a disk image, or a device such as `/dev/zero` that never ends, is refused at this size
/// instead of growing until the allocator or the OOM killer ends the process (curl refuses
/// `--cacert /dev/zero` at once).
pub const SETTINGS_CAP: u64 = 64 << 20;

/// The most read of a file whose content becomes part of a request: the `=@`, `:=@`, `==@`
/// and `H:@` items (a JSON body is built in memory; a raw `@FILE` body streams and has no cap).
pub const DATA_CAP: u64 = 256 << 20;

/// The bytes of `path`, at most `cap` of them.
///
/// A regular file's size is known before it is read; a device, FIFO or `/dev/fd/N` of a
/// process substitution is read up to the cap, as only its end tells its size.
///
/// # Errors
/// The file cannot be opened or read, or holds more than `cap` bytes
/// ([`std::io::ErrorKind::FileTooLarge`], whose text names the cap).
pub fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let too_big = || too_large(cap);
    if meta.is_file() && meta.len() > cap {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > cap) {
        return Err(too_big());
    }
    Ok(bytes)
}

/// The error of a file over `cap` bytes.
pub(crate) fn too_large(cap: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!(
            "holds more than {} MiB, the most netkit reads of such a file",
            cap >> 20
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_device_stops_at_the_cap_with_an_error_naming_it() {
        let err = read_capped(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("more than 1 MiB"), "{err}");
    }

    #[test]
    fn a_regular_file_over_the_cap_is_refused_unread_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'x'; 2 << 20]).unwrap();
        let err = read_capped(&path, 1 << 20).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        assert_eq!(read_capped(&path, 2 << 20).unwrap().len(), 2 << 20);
    }
}
