//! Downloads streamed to a file: `NAME.part` first, renamed only when complete.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::client::Request;

const CHUNK: usize = 256 * 1024;

/// Progress of a download, given to the progress callback after every chunk.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes in the file so far (a resumed part included).
    pub done: u64,
    /// The full size, when the server announced it.
    pub total: Option<u64>,
}

/// How [`Request::download`] saves the body.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DownloadOptions {
    /// Continue an existing `dest.part` with a `Range` request.
    pub resume: bool,
    /// Flush the file to disk before it is renamed to `dest`. Off by default, as in curl,
    /// wget and httpie: the `.part` name already keeps a failed download from leaving a
    /// truncated `dest`, and only a machine crash soon after can lose it. On, a 1 GiB
    /// download waited 1.6 s more for a disk that writes 600 MB/s.
    pub fsync: bool,
}

impl DownloadOptions {
    /// The same with [`resume`](DownloadOptions::resume) on or off.
    #[must_use]
    pub fn with_resume(self, resume: bool) -> Self {
        DownloadOptions { resume, ..self }
    }

    /// The same with [`fsync`](DownloadOptions::fsync) on or off.
    #[must_use]
    pub fn with_fsync(self, fsync: bool) -> Self {
        DownloadOptions { fsync, ..self }
    }
}

/// A finished download.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Downloaded {
    /// The file written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Bytes that were already there from an earlier attempt.
    pub resumed_from: u64,
    /// The status of the last response (200, 206, or 416 when the part was complete).
    pub status: u16,
}

/// The partial file of a download to `dest`.
#[must_use]
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Where a download of `url` goes when no file is named, as httpie: the last segment of the
/// URL's path, percent-decoded (`index.html` for a directory), in `dir`. When a file of that
/// name exists, `-1`, `-2`, ... is added rather than writing over it, unless `resume` asks to
/// go on with that name's partial file.
#[must_use]
pub fn download_name(url: &str, dir: &Path, resume: bool) -> PathBuf {
    let segment = url::Url::parse(url)
        .ok()
        .and_then(|u| u.path_segments()?.next_back().map(str::to_owned))
        .unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(&segment).decode_utf8_lossy();
    let name = match decoded.as_ref() {
        "" | "." | ".." => "index.html",
        name if name.contains(['/', '\\', '\0']) => "index.html",
        name => name,
    };
    let first = dir.join(name);
    if resume {
        return first;
    }
    let mut candidate = first;
    let mut n = 0;
    while candidate.exists() {
        n += 1;
        candidate = dir.join(format!("{name}-{n}"));
    }
    candidate
}

impl Request {
    /// Streams the response body to `dest` in constant memory.
    ///
    /// Bytes go to `dest.part`, renamed to `dest` only when the length matches what the
    /// server announced, so `dest` is never a truncated file. With `resume`, an existing
    /// part is continued with a `Range` request (a server that ignores it makes us start
    /// over). A 4xx/5xx answer is an [`Error::Status`] and writes nothing.
    ///
    /// # Errors
    /// [`Error::Status`], [`Error::Truncated`] (the part is kept for a resume),
    /// [`Error::File`] for local files, and the errors of [`Request::send`].
    pub fn download(
        self,
        dest: &Path,
        resume: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Downloaded, Error> {
        self.download_with(
            dest,
            DownloadOptions::default().with_resume(resume),
            progress,
        )
    }

    /// As [`download`](Request::download), with every option (fsync too).
    ///
    /// # Errors
    /// As [`download`](Request::download).
    pub fn download_with(
        self,
        dest: &Path,
        options: DownloadOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Downloaded, Error> {
        let part = part_path(dest);
        let file_error = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::File { path, source }
        };
        let have = if options.resume {
            std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
        // Byte ranges count encoded bytes: ask for the identity encoding.
        let mut request = self.header("Accept-Encoding", "identity");
        if have > 0 {
            request = request.header("Range", &format!("bytes={have}-"));
        }
        let url = request.url().to_owned();
        let response = request.send()?;
        let status = response.status();
        if status == 416 && have > 0 {
            let total = response
                .header("content-range")
                .and_then(|v| v.rsplit('/').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if total == Some(have) {
                std::fs::rename(&part, dest).map_err(file_error(dest))?;
                return Ok(Downloaded {
                    path: dest.to_owned(),
                    bytes: have,
                    resumed_from: have,
                    status,
                });
            }
        }
        let response = response.error_for_status()?;
        let (mut file, start, total) = if status == 206 && have > 0 {
            let range_start = response
                .header("content-range")
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if range_start != Some(have) {
                return Err(Error::Io {
                    url,
                    reason: format!("asked for bytes from {have}, the server sent another range"),
                });
            }
            let total = response
                .header("content-range")
                .and_then(|v| v.rsplit('/').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let file = OpenOptions::new()
                .append(true)
                .open(&part)
                .map_err(file_error(&part))?;
            (file, have, total)
        } else {
            let total = response.content_length();
            let file = File::create(&part).map_err(file_error(&part))?;
            (file, 0, total)
        };
        let mut reader = response.reader();
        let mut buf = vec![0; CHUNK];
        let mut done = start;
        progress(Progress { done, total });
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = file.flush();
                    return Err(match total {
                        Some(expected) => Error::Truncated {
                            url,
                            got: done,
                            expected,
                            part,
                        },
                        None => Error::from_io(url, &e),
                    });
                }
            };
            file.write_all(&buf[..n]).map_err(file_error(&part))?;
            done += n as u64;
            progress(Progress { done, total });
        }
        if options.fsync {
            file.sync_all().map_err(file_error(&part))?;
        }
        if let Some(expected) = total
            && done != expected
        {
            return Err(Error::Truncated {
                url,
                got: done,
                expected,
                part,
            });
        }
        std::fs::rename(&part, dest).map_err(file_error(dest))?;
        Ok(Downloaded {
            path: dest.to_owned(),
            bytes: done,
            resumed_from: start,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_come_from_the_url_and_never_take_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let name = |path: &str, resume: bool| {
            let chosen = download_name(&format!("http://h:1{path}"), dir.path(), resume);
            chosen
                .strip_prefix(dir.path())
                .unwrap()
                .display()
                .to_string()
        };
        assert_eq!(name("/a/b.txt?x=1#f", false), "b.txt");
        assert_eq!(name("/a%20b.txt", false), "a b.txt");
        for path in ["/", "/dir/", "/a/%2e%2e", "/x%2Fy"] {
            assert_eq!(name(path, false), "index.html", "{path}");
        }
        std::fs::write(dir.path().join("b.txt"), b"mine").unwrap();
        std::fs::write(dir.path().join("b.txt-1"), b"mine too").unwrap();
        assert_eq!(name("/b.txt", false), "b.txt-2");
        // Resuming goes on with the name the interrupted download had.
        assert_eq!(name("/b.txt", true), "b.txt");
    }
}
