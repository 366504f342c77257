//! ssh's and sftp's `-E FILE`: the log appended to a file, made only when a line is logged.
//! It was made before the subcommand checked its arguments, so every typo on a line with -E
//! left an empty file behind (OpenSSH opens it once the line is accepted).
//! Once `netkit ssh` has taken its arguments, its error and warning lines go there too
//! ([`take_errors`]), as ssh -E sends everything it logs, `fatal` and `error` included.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The log file of this process, once opened.
static OPENED: OnceLock<Shared> = OnceLock::new();

/// Whether the lines said to the user go to [`OPENED`] rather than stderr.
static TAKES_ERRORS: AtomicBool = AtomicBool::new(false);

/// The log file, one writer shared by the logger and the lines said to the user.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Box<dyn Write + Send>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A writer that panicked mid-line leaves a file that can still take lines.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .flush()
    }
}

/// Opens the log at `path` (as [`target`]) as this process's log file.
///
/// # Errors
/// As [`target`].
pub fn open(path: &Path) -> std::io::Result<Shared> {
    let file = Shared(Arc::new(Mutex::new(target(path)?)));
    // One per process: main opens it once.
    let _ = OPENED.set(file.clone());
    Ok(file)
}

/// From now on the lines said to the user (errors, warnings, "Permission denied, please try
/// again.") go to the log file, when there is one: ssh -E sends them there once its options
/// are read (a refused command line is still said on stderr, and makes no file).
pub fn take_errors() {
    TAKES_ERRORS.store(true, Ordering::Relaxed);
}

/// The log file, when it takes the lines said to the user.
pub fn errors() -> Option<Shared> {
    OPENED
        .get()
        .filter(|_| TAKES_ERRORS.load(Ordering::Relaxed))
        .cloned()
}

/// The log's target for `path`: the file itself when it exists, else one that makes it at
/// the first line logged.
///
/// # Errors
/// The file exists and cannot be opened for appending, or it does not and its directory
/// cannot take it: said at once, as ssh says it, not lost with the first line.
fn target(path: &Path) -> std::io::Result<Box<dyn Write + Send>> {
    match std::fs::OpenOptions::new().append(true).open(path) {
        Ok(file) => return Ok(Box::new(file)),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .map_err(std::io::Error::from)?;
    Ok(Box::new(Deferred {
        path: path.to_owned(),
        file: None,
    }))
}

/// A log file made by its first write.
struct Deferred {
    path: PathBuf,
    file: Option<File>,
}

impl Deferred {
    fn file(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            // 0600 as ssh makes it: host names and addresses are nobody else's business.
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)?;
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the log file was just opened"))
    }
}

impl Write for Deferred {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}
