//! Mapping a request path to a file under the root, safely, and what to send of it.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use percent_encoding::percent_decode_str;

/// Why a path maps to no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    BadRequest,
    Forbidden,
    NotFound,
}

/// The path relative to the root (no leading `/`, `.` for the root), or why there is none.
///
/// `..` is refused rather than resolved, whether written raw or percent-encoded, so a
/// request never names anything above the root.
pub(crate) fn relative_path(target: &str) -> Result<String, Refusal> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = if let Some(rest) = path
        .strip_prefix("http://")
        .or_else(|| path.strip_prefix("https://"))
    {
        rest.find('/').map_or("/", |i| &rest[i..])
    } else {
        path
    };
    if !path.starts_with('/') {
        return Err(Refusal::BadRequest);
    }
    let decoded = percent_decode_str(path).collect::<Vec<u8>>();
    let decoded = String::from_utf8(decoded).map_err(|_| Refusal::NotFound)?;
    if decoded.contains('\0') {
        return Err(Refusal::BadRequest);
    }
    let mut rel = String::with_capacity(decoded.len());
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(Refusal::Forbidden),
            part => {
                if !rel.is_empty() {
                    rel.push('/');
                }
                rel.push_str(part);
            }
        }
    }
    if rel.is_empty() {
        rel.push('.');
    }
    Ok(rel)
}

/// Opens `rel` under the directory `root` without ever leaving it: the kernel refuses `..`
/// and symlinks that resolve outside (openat2 with `RESOLVE_BENEATH`).
pub(crate) fn open_beneath(root: &OwnedFd, rel: &str) -> Result<File, Refusal> {
    // O_NONBLOCK: opening a FIFO someone left in the root must not block the event loop.
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(root, rel, how) {
        Ok(fd) => Ok(File::from(fd)),
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG | Errno::ELOOP) => {
            Err(Refusal::NotFound)
        }
        Err(Errno::EXDEV | Errno::EACCES | Errno::EPERM) => Err(Refusal::Forbidden),
        Err(e) => {
            log::warn!("cannot open {rel:?} under the root: {e}");
            Err(Refusal::NotFound)
        }
    }
}

/// What part of a file a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    Whole,
    /// Bytes `start..=end`.
    Part {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// Reads a `Range` header for a file of `len` bytes. Only a single `bytes=` range is
/// honoured; anything else is ignored and the whole file is sent, as RFC 9110 allows.
pub(crate) fn range(header: &str, len: u64) -> Span {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Span::Whole;
    };
    if spec.contains(',') {
        return Span::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Span::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let (start, end) = if first.is_empty() {
        let Some(suffix) = parse(last) else {
            return Span::Whole;
        };
        if suffix == 0 {
            return Span::Unsatisfiable;
        }
        (len.saturating_sub(suffix), len.saturating_sub(1))
    } else {
        let Some(start) = parse(first) else {
            return Span::Whole;
        };
        let end = if last.is_empty() {
            len.saturating_sub(1)
        } else {
            match parse(last) {
                Some(end) if end >= start => end.min(len.saturating_sub(1)),
                _ => return Span::Whole,
            }
        };
        (start, end)
    };
    if len == 0 || start >= len {
        return Span::Unsatisfiable;
    }
    Span::Part { start, end }
}

/// Whether a file modified at `mtime` is unchanged since the client's `If-Modified-Since`.
pub(crate) fn not_modified(if_modified_since: &str, mtime: SystemTime) -> bool {
    let Ok(since) = httpdate::parse_http_date(if_modified_since) else {
        return false;
    };
    // HTTP dates have whole seconds; compare at that precision.
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    secs(mtime) <= secs(since)
}

/// An HTML listing of `dir`, whose URL path is `url_path` (ending with `/`).
pub(crate) fn listing(dir: &Path, url_path: &str) -> std::io::Result<String> {
    let mut names: Vec<(String, bool)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            (entry.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    names.sort();
    let title = html_escape(url_path);
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n"
    );
    if url_path != "/" {
        html.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (name, is_dir) in names {
        let slash = if is_dir { "/" } else { "" };
        let href = percent_encoding::utf8_percent_encode(&name, HREF);
        let text = html_escape(&name);
        html.push_str(&format!(
            "<li><a href=\"{href}{slash}\">{text}{slash}</a></li>\n"
        ));
    }
    html.push_str("</ul>\n</body></html>\n");
    Ok(html)
}

/// Characters escaped in a link to a listed name (so `#`, `?`, `%` and quotes stay literal).
const HREF: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused_raw_and_encoded() {
        assert_eq!(relative_path("/../etc/passwd"), Err(Refusal::Forbidden));
        assert_eq!(relative_path("/a/%2e%2e/%2E%2E/x"), Err(Refusal::Forbidden));
        assert_eq!(relative_path("/a/..%2fb"), Err(Refusal::Forbidden));
        assert_eq!(relative_path("etc/passwd"), Err(Refusal::BadRequest));
        assert_eq!(relative_path("/a%00b"), Err(Refusal::BadRequest));
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(relative_path("/").as_deref(), Ok("."));
        assert_eq!(relative_path("//a/./b/?x=1").as_deref(), Ok("a/b"));
        assert_eq!(relative_path("/with%20space").as_deref(), Ok("with space"));
        assert_eq!(relative_path("http://host:1/x/y").as_deref(), Ok("x/y"));
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Span::Part { start: 0, end: 9 });
        assert_eq!(range("bytes=90-", 100), Span::Part { start: 90, end: 99 });
        assert_eq!(range("bytes=-10", 100), Span::Part { start: 90, end: 99 });
        assert_eq!(
            range("bytes=50-1000", 100),
            Span::Part { start: 50, end: 99 }
        );
        assert_eq!(range("bytes=100-", 100), Span::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), Span::Unsatisfiable);
        assert_eq!(range("bytes=0-1,5-6", 100), Span::Whole);
        assert_eq!(range("items=0-1", 100), Span::Whole);
        assert_eq!(range("bytes=9-1", 100), Span::Whole);
    }

    #[test]
    fn listing_escapes_names() {
        let dir = std::env::temp_dir().join(format!("netkit-listing-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("<b>&\"x\".txt"), b"").unwrap();
        let html = listing(&dir, "/d/").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            html.contains("&lt;b&gt;&amp;&quot;x&quot;.txt</a>"),
            "{html}"
        );
        assert!(html.contains("href=\"%3Cb%3E%26%22x%22.txt\""), "{html}");
        assert!(html.contains("href=\"sub/\">sub/</a>"), "{html}");
    }
}
