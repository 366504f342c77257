//! ssh's and sftp's `-E FILE`: the log appended to a file, made only when a line is logged.
//! It was made before the subcommand checked its arguments, so every typo on a line with -E
//! left an empty file behind (OpenSSH opens it once the line is accepted).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// The log's target for `path`: the file itself when it exists, else one that makes it at
/// the first line logged.
///
/// # Errors
/// The file exists and cannot be opened for appending, or it does not and its directory
/// cannot take it: said at once, as ssh says it, not lost with the first line.
pub fn target(path: &Path) -> std::io::Result<Box<dyn Write + Send>> {
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
