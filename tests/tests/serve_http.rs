//! `netkit serve http` against the real `curl`, and raw sockets where curl is too polite.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netkit_tests::{Served, env};

/// The server `cargo xtask test` started, and a fresh directory under its root.
fn site(name: &str) -> (String, PathBuf) {
    let dir = PathBuf::from(env("NETKIT_TEST_SERVE_ROOT")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (format!("{}/{name}", env("NETKIT_TEST_SERVE_URL")), dir)
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Runs curl with `args`, returning the last response.
fn curl(args: &[&str]) -> Reply {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed by cargo xtask test");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&out.stdout)
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    Reply {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

#[test]
fn get_and_head_with_content_types() {
    let (url, dir) = site("get");
    std::fs::write(dir.join("hello.txt"), b"hello world!\n").unwrap();
    std::fs::write(dir.join("page.html"), b"<p>hi</p>").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();

    let got = curl(&[&format!("{url}/hello.txt")]);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"hello world!\n");
    assert_eq!(got.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(got.header("content-length").as_deref(), Some("13"));
    assert!(got.header("last-modified").is_some());

    assert_eq!(
        curl(&[&format!("{url}/page.html")])
            .header("content-type")
            .as_deref(),
        Some("text/html")
    );
    let got = curl(&[&format!("{url}/big.bin")]);
    assert_eq!(got.body, big);
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("application/octet-stream")
    );

    let head = curl(&["-I", &format!("{url}/big.bin")]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length").as_deref(), Some("3000000"));
    assert!(head.body.is_empty());

    // nginx's types where mime_guess's first surprises: a package came as RealAudio, HLS as
    // DLNA and audio types; Markdown with the charset its type requires (RFC 7763).
    for (name, expected) in [
        ("pkg.rpm", "application/x-redhat-package-manager"),
        ("seg.TS", "video/mp2t"),
        ("clip.mts", "video/mp2t"),
        ("src.tgz", "application/gzip"),
        ("song.m4a", "audio/x-m4a"),
        ("pkg.deb", "application/vnd.debian.binary-package"),
        ("d-i.udeb", "application/vnd.debian.binary-package"),
        ("Main.class", "application/java-vm"),
        ("live.m3u8", "application/vnd.apple.mpegurl"),
        ("README.md", "text/markdown; charset=utf-8"),
    ] {
        std::fs::write(dir.join(name), b"x").unwrap();
        let head = curl(&["-I", &format!("{url}/{name}")]);
        assert_eq!(
            head.header("content-type").as_deref(),
            Some(expected),
            "{name}"
        );
    }
}

#[test]
fn a_file_kept_in_memory_is_never_served_once_changed() {
    // Small files unchanged for 2 s are kept in memory by each event loop, and each request
    // checks by a stat that the path still names what was read: every way of changing the
    // file is seen by the next request, on every loop.
    let (url, dir) = site("kept");
    let file = dir.join("kept.txt");
    std::fs::write(&file, b"first version\n").unwrap();
    std::fs::write(dir.join("other.txt"), b"other version\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let all_say = |body: &[u8], status: u16| {
        // Several requests, new connections each: every loop gets some.
        for _ in 0..8 {
            let got = curl(&[&format!("{url}/kept.txt")]);
            assert_eq!(got.status, status);
            if status == 200 {
                assert_eq!(
                    String::from_utf8_lossy(&got.body),
                    String::from_utf8_lossy(body)
                );
                assert_eq!(got.header("content-length"), Some(body.len().to_string()));
            }
        }
    };
    all_say(b"first version\n", 200);
    let range = curl(&["-r", "6-12", &format!("{url}/kept.txt")]);
    assert_eq!(
        (range.status, range.body.as_slice()),
        (206, &b"version"[..])
    );
    let parts = curl(&["-r", "0-4,6-12", &format!("{url}/kept.txt")]);
    assert_eq!(parts.status, 206);
    let parts: Vec<Vec<u8>> = byteranges(&parts)
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(parts, [&b"first"[..], &b"version"[..]]);
    // Rewritten in place to the same length, at once.
    std::fs::write(&file, b"final version\n").unwrap();
    all_say(b"final version\n", 200);
    // Replaced by another settled file of the same size.
    std::fs::rename(dir.join("other.txt"), &file).unwrap();
    all_say(b"other version\n", 200);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"more\n")
        .unwrap();
    all_say(b"other version\nmore\n", 200);
    std::fs::remove_file(&file).unwrap();
    all_say(b"", 404);
}

#[test]
fn ranges_give_206_and_416() {
    let (url, dir) = site("range");
    std::fs::write(dir.join("hello.txt"), b"hello world!\n").unwrap();
    let file = format!("{url}/hello.txt");
    let got = curl(&["-r", "0-4", &file]);
    assert_eq!((got.status, got.body.as_slice()), (206, &b"hello"[..]));
    assert_eq!(got.header("content-range").as_deref(), Some("bytes 0-4/13"));
    let got = curl(&["-r", "-6", &file]);
    assert_eq!((got.status, got.body.as_slice()), (206, &b"world!\n"[1..]));
    let got = curl(&["-r", "6-", &file]);
    assert_eq!((got.status, got.body.as_slice()), (206, &b"world!\n"[..]));
    let got = curl(&["-r", "100-", &file]);
    assert_eq!(got.status, 416);
    assert_eq!(got.header("content-range").as_deref(), Some("bytes */13"));
    // A malformed byte range is a 416 too (RFC 9110 14.2, as nginx); another unit is
    // ignored.
    for bad in ["bytes=9-1", "bytes=abc", "bytes=0-1,x"] {
        let got = curl(&["-H", &format!("Range: {bad}"), &file]);
        assert_eq!(got.status, 416, "{bad}");
    }
    let got = curl(&["-H", "Range: items=0-1", &file]);
    assert_eq!((got.status, got.body.len()), (200, 13));
    // The unit in any case (RFC 9110 14.1); an empty file whole, as from nginx (a resuming
    // client got a 416 for it).
    let got = curl(&["-H", "Range: Bytes=0-4", &file]);
    assert_eq!((got.status, got.body.as_slice()), (206, &b"hello"[..]));
    std::fs::write(dir.join("empty.txt"), b"").unwrap();
    for range in ["bytes=0-", "bytes=-1"] {
        let got = curl(&[
            "-H",
            &format!("Range: {range}"),
            &format!("{url}/empty.txt"),
        ]);
        assert_eq!((got.status, got.body.len()), (200, 0), "{range}");
    }
}

/// The parts of a `multipart/byteranges` reply: each part's Content-Range and bytes.
fn byteranges(reply: &Reply) -> Vec<(String, Vec<u8>)> {
    let content_type = reply.header("content-type").unwrap_or_default();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {}", reply.head));
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let mut at = Vec::new();
    let mut from = 0;
    while let Some(i) = reply.body[from..]
        .windows(delimiter.len())
        .position(|w| w == delimiter.as_slice())
    {
        at.push(from + i);
        from += i + delimiter.len();
    }
    assert_eq!(at.first(), Some(&0), "the body starts with a delimiter");
    let end = *at.last().unwrap();
    assert_eq!(
        &reply.body[end + delimiter.len()..],
        b"--\r\n",
        "a closing delimiter"
    );
    at.windows(2)
        .map(|pair| {
            let part = &reply.body[pair[0] + delimiter.len()..pair[1]];
            let split = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            let head = String::from_utf8_lossy(&part[..split]);
            let range = head
                .lines()
                .find_map(|line| line.strip_prefix("Content-Range: "))
                .unwrap_or_else(|| panic!("a part without Content-Range: {head}"))
                .to_owned();
            (range, part[split + 4..].to_vec())
        })
        .collect()
}

#[test]
fn several_ranges_come_as_multipart_byteranges_as_from_nginx() {
    let (url, dir) = site("multirange");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(dir.join("data.bin"), &data).unwrap();
    let nginx_file = PathBuf::from(env("NETKIT_TEST_NGINX_ROOT")).join("multirange.bin");
    std::fs::write(&nginx_file, &data).unwrap();
    // A small part, one large enough to go by sendfile, and a suffix.
    let ranges = "0-9,100-99999,-5";
    let ours = curl(&["-r", ranges, &format!("{url}/data.bin")]);
    let nginx = curl(&[
        "-r",
        ranges,
        &format!("{}/multirange.bin", env("NETKIT_TEST_NGINX_URL")),
    ]);
    assert_eq!((ours.status, nginx.status), (206, 206));
    assert_eq!(
        ours.header("content-length"),
        Some(ours.body.len().to_string()),
        "{}",
        ours.head
    );
    let parts = byteranges(&ours);
    assert_eq!(
        parts,
        [
            ("bytes 0-9/200000".to_owned(), data[..10].to_vec()),
            (
                "bytes 100-99999/200000".to_owned(),
                data[100..100_000].to_vec()
            ),
            (
                "bytes 199995-199999/200000".to_owned(),
                data[199_995..].to_vec()
            ),
        ]
    );
    assert_eq!(parts, byteranges(&nginx));
    // One range left of several is a plain 206; none is 416; overlapping ones are joined
    // (they got the whole file: 5 GiB for `0-10,5-20`).
    let got = curl(&["-r", "0-1,300000-", &format!("{url}/data.bin")]);
    assert_eq!(
        (got.status, got.header("content-range").as_deref()),
        (206, Some("bytes 0-1/200000"))
    );
    let got = curl(&["-r", "300000-,400000-", &format!("{url}/data.bin")]);
    assert_eq!(got.status, 416);
    let got = curl(&["-r", "0-10,5-20", &format!("{url}/data.bin")]);
    assert_eq!(
        (got.status, got.header("content-range").as_deref()),
        (206, Some("bytes 0-20/200000"))
    );
    assert_eq!(got.body, &data[..21]);
    let got = curl(&["-r", "100-199,0-9,150-300", &format!("{url}/data.bin")]);
    assert_eq!(
        byteranges(&got),
        [
            ("bytes 0-9/200000".to_owned(), data[..10].to_vec()),
            ("bytes 100-300/200000".to_owned(), data[100..301].to_vec()),
        ]
    );
}

#[test]
fn if_modified_since_gives_304() {
    let (url, dir) = site("cond");
    let path = dir.join("hello.txt");
    std::fs::write(&path, b"hello world!\n").unwrap();
    let file = format!("{url}/hello.txt");
    // curl -z FILE sends If-Modified-Since with FILE's own mtime.
    let got = curl(&["-z", path.to_str().unwrap(), &file]);
    assert_eq!(got.status, 304);
    assert!(got.body.is_empty());
    let got = curl(&[
        "-H",
        "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT",
        &file,
    ]);
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, &b"hello world!\n"[..])
    );
    // A date still to come is ignored, as Apache and nginx ignore it.
    let got = curl(&[
        "-H",
        "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT",
        &file,
    ]);
    assert_eq!(got.status, 200);
    // A file rolled back to an older one is sent to a client that has the newer one's date,
    // as nginx sends it (`wget -N` kept the newer, broken file).
    let seen = curl(&[&file]).header("last-modified").unwrap();
    let earlier = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(earlier)
        .unwrap();
    let got = curl(&["-H", &format!("If-Modified-Since: {seen}"), &file]);
    assert_eq!(got.status, 200);
    // A file from before 1970 (an archive's, a broken clock's) is served, dated 1970 as nginx
    // dates it: the date formatting panicked, and the server's loop with it.
    let old = dir.join("old.txt");
    std::fs::write(&old, b"old\n").unwrap();
    let decade = std::time::Duration::from_secs(10 * 365 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH - decade)
        .unwrap();
    for _ in 0..3 {
        let got = curl(&[&format!("{url}/old.txt")]);
        assert_eq!((got.status, got.body.as_slice()), (200, &b"old\n"[..]));
        assert_eq!(
            got.header("last-modified").as_deref(),
            Some("Thu, 01 Jan 1970 00:00:00 GMT")
        );
    }
}

#[test]
fn etags_drive_304_412_and_if_range() {
    let (url, dir) = site("etag");
    std::fs::write(dir.join("hello.txt"), b"hello world!\n").unwrap();
    let file = format!("{url}/hello.txt");
    // curl's own ETag cache: save on the first fetch, revalidate with If-None-Match after.
    let saved = dir.join("etag.saved");
    let saved = saved.to_str().unwrap();
    let first = curl(&["--etag-save", saved, &file]);
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("an ETag header");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let again = curl(&["--etag-compare", saved, &file]);
    assert_eq!(again.status, 304);
    assert_eq!(again.header("etag").as_deref(), Some(etag.as_str()));
    assert!(again.body.is_empty());
    let weak = format!("If-None-Match: \"other\", W/{etag}");
    assert_eq!(curl(&["-H", &weak, &file]).status, 304);
    let stale = "If-None-Match: \"other\"";
    assert_eq!(curl(&["-H", stale, &file]).status, 200);
    // A list in two field lines is one list (RFC 9110 5.3), as a proxy may split it.
    let two_lines = ["-H", &weak, "-H", stale];
    assert_eq!(
        curl(&[&two_lines[..], &[file.as_str()]].concat()).status,
        304
    );
    let (this, other) = (format!("If-Match: {etag}"), "If-Match: \"other\"");
    assert_eq!(curl(&["-H", &this, "-H", other, &file]).status, 200);
    // A listing has no tag, but `If-Match` and `If-None-Match: *` still guard it.
    let listing = format!("{url}/");
    assert_eq!(curl(&["-H", other, &listing]).status, 412);
    assert_eq!(curl(&["-H", "If-None-Match: *", &listing]).status, 304);
    assert_eq!(curl(&["-H", "If-Match: *", &listing]).status, 200);

    let if_match = format!("If-Match: {etag}");
    assert_eq!(curl(&["-H", &if_match, &file]).status, 200);
    assert_eq!(curl(&["-H", "If-Match: \"other\"", &file]).status, 412);
    let old = "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT";
    assert_eq!(curl(&["-H", old, &file]).status, 412);

    let if_range = format!("If-Range: {etag}");
    let got = curl(&["-r", "6-", "-H", &if_range, &file]);
    assert_eq!((got.status, got.body.as_slice()), (206, &b"world!\n"[..]));
    // A rewrite of the same size changes the tag: the range no longer applies.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(dir.join("hello.txt"), b"HELLO WORLD!\n").unwrap();
    let got = curl(&["-r", "6-", "-H", &if_range, &file]);
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, &b"HELLO WORLD!\n"[..])
    );
    assert_ne!(got.header("etag"), Some(etag));

    // Files dated before 1970 (unpacked from old archives) each keep their own tag.
    let old_file = |when: u64, body: &[u8]| {
        std::fs::write(dir.join("old.txt"), body).unwrap();
        std::fs::File::options()
            .write(true)
            .open(dir.join("old.txt"))
            .unwrap()
            .set_modified(std::time::SystemTime::UNIX_EPOCH - Duration::from_secs(when))
            .unwrap();
        curl(&[&format!("{url}/old.txt")])
            .header("etag")
            .expect("an ETag header")
    };
    let before = old_file(10 * 365 * 86_400, b"first");
    assert_ne!(old_file(5 * 365 * 86_400, b"later"), before);
    let got = curl(&[
        "-H",
        &format!("If-None-Match: {before}"),
        &format!("{url}/old.txt"),
    ]);
    assert_eq!((got.status, got.body.as_slice()), (200, &b"later"[..]));
}

#[test]
fn an_index_that_is_no_file_still_hides_the_listing_and_a_socket_is_403() {
    let (url, dir) = site("odd-index");
    for sub in ["fifo", "dir"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join("private.txt"), "private\n").unwrap();
    }
    let made = Command::new("mkfifo")
        .arg(dir.join("fifo/index.html"))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::create_dir(dir.join("dir/index.html")).unwrap();
    for sub in ["fifo", "dir"] {
        let got = curl(&[&format!("{url}/{sub}/")]);
        assert_eq!(got.status, 403, "{sub}");
        assert!(
            !String::from_utf8_lossy(&got.body).contains("private"),
            "{sub}"
        );
    }
    // Its open fails with ENXIO, which was taken for a server fault: 500 and a warning.
    let _socket = std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap();
    assert_eq!(curl(&[&format!("{url}/socket")]).status, 403);
}

#[test]
fn missing_files_and_other_methods() {
    let (url, dir) = site("errors");
    std::fs::write(dir.join("hello.txt"), b"hello world!\n").unwrap();
    assert_eq!(curl(&[&format!("{url}/nope.txt")]).status, 404);
    // A file named as a directory is not that file (nginx and http.server say 404 too).
    for path in ["hello.txt/", "hello.txt/.", "hello.txt%2F"] {
        let got = curl(&["--path-as-is", &format!("{url}/{path}")]);
        assert_eq!(got.status, 404, "{path}");
    }
    for (method, status) in [
        ("POST", 405),
        ("PUT", 405),
        ("DELETE", 405),
        ("OPTIONS", 405),
        ("get", 501),
        ("BREW", 501),
    ] {
        let got = curl(&["-X", method, "-d", "x", &format!("{url}/hello.txt")]);
        assert_eq!(got.status, status, "{method}");
        assert_eq!(
            got.header("allow").as_deref(),
            Some("GET, HEAD"),
            "{method}"
        );
    }
}

#[test]
fn paths_that_escape_the_root_never_get_the_file() {
    let (url, dir) = site("escape");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd-link")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("../../..", dir.join("up-link")).unwrap();
    let base = env("NETKIT_TEST_SERVE_URL");
    let attempts = [
        format!("{base}/../../../../etc/passwd"),
        format!("{url}/../../../../../../etc/passwd"),
        format!("{base}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        format!("{base}/%2E%2E%2f%2E%2E%2f%2E%2E%2fetc%2fpasswd"),
        format!("{base}/..%2f..%2f..%2f..%2fetc%2fpasswd"),
        format!("{base}//etc/passwd"),
        format!("{url}/passwd-link"),
        format!("{url}/etc-link/passwd"),
        format!("{url}/up-link/etc/passwd"),
    ];
    for attempt in &attempts {
        let got = curl(&["--path-as-is", attempt]);
        assert!(matches!(got.status, 403 | 404), "{attempt}: {}", got.status);
        assert!(
            !String::from_utf8_lossy(&got.body).contains("root:"),
            "{attempt} leaked /etc/passwd"
        );
    }
    // `..` that stays inside the root is resolved, as nginx resolves it.
    std::fs::write(dir.join("inside.txt"), "inside\n").unwrap();
    let got = curl(&["--path-as-is", &format!("{url}/no-such-dir/../inside.txt")]);
    assert_eq!((got.status, got.body.as_slice()), (200, &b"inside\n"[..]));
    // So are links that lead back inside: absolute (a deploy's `current -> /srv/www/v2`),
    // or through `..` above their directory, as nginx and python follow them.
    let name = dir.file_name().unwrap().to_str().unwrap();
    std::os::unix::fs::symlink(dir.join("inside.txt"), dir.join("absolute.txt")).unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("current")).unwrap();
    std::os::unix::fs::symlink(format!("../{name}/inside.txt"), dir.join("back-in.txt")).unwrap();
    for path in ["absolute.txt", "current/inside.txt", "back-in.txt"] {
        let got = curl(&[&format!("{url}/{path}")]);
        assert_eq!(
            (got.status, got.body.as_slice()),
            (200, &b"inside\n"[..]),
            "{path}"
        );
    }
    let got = curl(&[&format!("{url}/current/")]);
    assert_eq!(got.status, 200);
    assert!(String::from_utf8_lossy(&got.body).contains("inside.txt"));
    // The listing leaves out what it would refuse (`wget -m` and `lftp mirror` failed on
    // every run for such an entry); a link back in is listed, as is a dangling one (nginx).
    std::os::unix::fs::symlink("no-such-file", dir.join("dangling")).unwrap();
    let html = String::from_utf8(curl(&[&format!("{url}/")]).body).unwrap();
    for out in ["passwd-link", "etc-link", "up-link"] {
        assert!(!html.contains(out), "{out} listed: {html}");
    }
    for listed in [
        "href=\"absolute.txt\"",
        "href=\"current/\"",
        "href=\"dangling\"",
    ] {
        assert!(html.contains(listed), "{listed} not listed: {html}");
    }
}

#[test]
fn directories_list_their_entries_or_serve_index_html() {
    let (url, dir) = site("listing");
    std::fs::create_dir(dir.join("sub dir")).unwrap();
    std::fs::write(dir.join("a&b <c>.txt"), b"x").unwrap();
    std::fs::write(dir.join(".env"), b"SECRET=1").unwrap();
    std::fs::create_dir(dir.join("with-index")).unwrap();
    std::fs::write(dir.join("with-index/index.html"), b"<h1>index</h1>").unwrap();
    std::os::unix::fs::symlink("sub dir", dir.join("linked")).unwrap();

    let got = curl(&[&format!("{url}/")]);
    assert_eq!(got.status, 200);
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(got.body).unwrap();
    assert!(html.contains(">a&amp;b &lt;c&gt;.txt</a>"), "{html}");
    // Hidden files are left out, as nginx's autoindex leaves them out; named, they are served.
    assert!(!html.contains(".env"), "{html}");
    assert_eq!(curl(&[&format!("{url}/.env")]).status, 200);
    assert!(html.contains("href=\"a%26b%20%3Cc%3E.txt\""), "{html}");
    assert!(html.contains("href=\"sub%20dir/\""), "{html}");
    // A link to a directory is listed as one, as nginx lists it.
    assert!(html.contains("href=\"linked/\">linked/</a>"), "{html}");
    // A listing is made per request: it offers no ranges (nginx's autoindex neither); a file does.
    let got = curl(&[&format!("{url}/")]);
    assert_eq!(got.header("accept-ranges"), None);
    let got = curl(&[&format!("{url}/with-index/index.html")]);
    assert_eq!(got.header("accept-ranges").as_deref(), Some("bytes"));

    let got = curl(&[&format!("{url}/with-index/")]);
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, &b"<h1>index</h1>"[..])
    );
    let got = curl(&[&format!("{url}/with-index")]);
    assert_eq!(got.status, 301);
    assert_eq!(
        got.header("location").as_deref(),
        Some("/listing/with-index/")
    );
    let got = curl(&[&format!("{url}/sub%20dir")]);
    assert_eq!(
        got.header("location").as_deref(),
        Some("/listing/sub%20dir/")
    );
    // The query goes along, as with nginx.
    let got = curl(&[&format!("{url}/sub%20dir?page=2&q=a%20b")]);
    assert_eq!(
        got.header("location").as_deref(),
        Some("/listing/sub%20dir/?page=2&q=a%20b")
    );
    assert_eq!(curl(&[&format!("{url}/sub%20dir/")]).status, 200);
}

#[test]
fn names_that_are_no_utf_8_are_served_and_listed_by_their_bytes() {
    use std::os::unix::ffi::OsStrExt as _;
    // Read as UTF-8, `latin\xe9` (a Latin-1 name) was 404 by its bytes, and listed as a link
    // to `latin\u{fffd}`: another file, when there is one of that name.
    let (url, dir) = site("latin");
    let named = |name: &[u8]| dir.join(std::ffi::OsStr::from_bytes(name));
    std::fs::write(named(b"latin\xe9"), b"latin-1 \xe9\n").unwrap();
    std::fs::write(dir.join("latin\u{fffd}"), "utf-8 \u{fffd}\n").unwrap();
    std::fs::create_dir(named(b"d\xe9")).unwrap();
    std::fs::write(named(b"d\xe9/in\xff.txt"), "inside\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", named(b"out\xe9")).unwrap();
    std::os::unix::fs::symlink(
        std::ffi::OsStr::from_bytes(b"latin\xe9"),
        dir.join("to-latin"),
    )
    .unwrap();

    let fetched = |path: &str| {
        let got = curl(&["--path-as-is", &format!("{url}/{path}")]);
        (got.status, got.body)
    };
    assert_eq!(fetched("latin%E9"), (200, b"latin-1 \xe9\n".to_vec()));
    assert_eq!(fetched("latin%e9"), (200, b"latin-1 \xe9\n".to_vec()));
    assert_eq!(fetched("to-latin"), (200, b"latin-1 \xe9\n".to_vec()));
    assert_eq!(fetched("latin%EF%BF%BD"), (200, "utf-8 \u{fffd}\n".into()));
    assert_eq!(fetched("d%E9/in%FF.txt"), (200, b"inside\n".to_vec()));
    assert_eq!(
        fetched("d%E9/..%2Flatin%E9"),
        (200, b"latin-1 \xe9\n".to_vec())
    );
    // What is refused by other names is refused by these.
    assert_eq!(fetched("out%E9").0, 403);
    assert_eq!(fetched("d%E9/../../../latin%E9").0, 403);
    assert_eq!(fetched("latin%E9%00").0, 400);
    let got = curl(&[&format!("{url}/d%E9")]);
    assert_eq!(got.status, 301);
    assert_eq!(got.header("location").as_deref(), Some("/latin/d%E9/"));

    // Every link of the listing fetches what it names; the names shown are escaped UTF-8.
    let got = curl(&[&format!("{url}/")]);
    assert_eq!(got.status, 200);
    let html = String::from_utf8(got.body).unwrap();
    assert!(
        !html.contains("out%E9"),
        "a link out of the root listed: {html}"
    );
    let links: Vec<&str> = html
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| *href != "../")
        .collect();
    assert_eq!(
        links,
        ["d%E9/", "latin%E9", "latin%EF%BF%BD", "to-latin"],
        "{html}"
    );
    assert_eq!(fetched(links[1]), (200, b"latin-1 \xe9\n".to_vec()));
    assert_eq!(fetched(links[2]), (200, "utf-8 \u{fffd}\n".into()));
    let sub = String::from_utf8(curl(&[&format!("{url}/{}", links[0])]).body).unwrap();
    assert!(sub.contains("href=\"in%FF.txt\">in\\xFF.txt</a>"), "{sub}");
}

#[test]
fn a_listing_shows_names_that_are_no_utf_8_apart_from_their_u_fffd_twins() {
    use std::os::unix::ffi::OsStrExt as _;
    // Read lossily, `latin\xe9` and `latin\u{fffd}` were both shown `latin\u{fffd}`: which
    // link was which file could not be told. Each byte that is no UTF-8 is now `\xHH` (as the
    // access log writes it), and `\` itself `\x5C`, so that no two names look alike.
    let (url, dir) = site("listing-bytes");
    let named = |name: &[u8]| dir.join(std::ffi::OsStr::from_bytes(name));
    for name in [
        &b"latin\xe9"[..],
        "latin\u{fffd}".as_bytes(),
        b"latin\\xE9",
        b"<\xff>&",
        b"tab\there",
    ] {
        std::fs::write(named(name), b"").unwrap();
    }
    std::fs::create_dir(named(b"d\xe9")).unwrap();
    let html = String::from_utf8(curl(&[&format!("{url}/")]).body).unwrap();
    for shown in [
        "href=\"latin%E9\">latin\\xE9</a>",
        "href=\"latin%EF%BF%BD\">latin\u{fffd}</a>",
        "href=\"latin%5CxE9\">latin\\x5CxE9</a>",
        "href=\"%3C%FF%3E%26\">&lt;\\xFF&gt;&amp;</a>",
        "href=\"tab%09here\">tab\\x09here</a>",
        "href=\"d%E9/\">d\\xE9/</a>",
    ] {
        assert!(html.contains(shown), "no {shown} in {html}");
    }
    // The title too: the path, as resolved.
    let sub = String::from_utf8(curl(&[&format!("{url}/d%E9/")]).body).unwrap();
    assert!(
        sub.contains("<h1>Index of /listing-bytes/d\\xE9/</h1>"),
        "{sub}"
    );
}

#[test]
fn an_encoded_slash_names_a_directory_as_a_slash_does_as_in_nginx() {
    use std::os::unix::ffi::OsStrExt as _;
    // `/d%FF%2f` was redirected to `/d%FF/` (the target as sent does not end in `/`); nginx
    // decodes `%2F` before it looks, and lists the directory, or serves its index.
    let (url, dir) = site("encoded-slash");
    let named = |name: &[u8]| dir.join(std::ffi::OsStr::from_bytes(name));
    std::fs::create_dir(named(b"d\xff")).unwrap();
    std::fs::write(named(b"d\xff/x.txt"), b"x\n").unwrap();
    std::fs::create_dir(dir.join("with-index")).unwrap();
    std::fs::write(dir.join("with-index/index.html"), b"the index\n").unwrap();
    for path in ["d%FF%2f", "d%FF%2F", "d%FF/.", "d%FF/x.txt/.."] {
        let got = curl(&["--path-as-is", &format!("{url}/{path}")]);
        assert_eq!(got.status, 200, "{path}: {}", got.head);
        let html = String::from_utf8(got.body).unwrap();
        assert!(html.contains("href=\"x.txt\""), "{path}: {html}");
        assert!(
            html.contains("<h1>Index of /encoded-slash/d\\xFF/</h1>"),
            "{path}: {html}"
        );
    }
    for path in ["with-index%2f", "with-index/."] {
        let got = curl(&["--path-as-is", &format!("{url}/{path}")]);
        assert_eq!(
            (got.status, got.body.as_slice()),
            (200, &b"the index\n"[..]),
            "{path}"
        );
    }
    // Without a slash of any kind, still redirected.
    let got = curl(&[&format!("{url}/d%FF")]);
    assert_eq!(got.status, 301);
    assert_eq!(
        got.header("location").as_deref(),
        Some("/encoded-slash/d%FF/")
    );
}

#[test]
fn raw_bytes_past_ascii_in_the_target_name_the_file_of_those_bytes_as_in_nginx() {
    use std::os::unix::ffi::OsStrExt as _;
    // `GET /caf\xe9` sent raw (a Latin-1 client, a script) was 400: httparse refuses a target
    // that is no UTF-8. nginx serves the file of those bytes; control bytes it refuses.
    let (mut child, mut stderr, addr) = serving_with_its_log("raw-bytes");
    let root = PathBuf::from(env("NETKIT_TEST_SERVE_ROOT")).join("raw-bytes");
    let named = |name: &[u8]| root.join(std::ffi::OsStr::from_bytes(name));
    std::fs::write(named(b"caf\xe9"), b"latin-1\n").unwrap();
    std::fs::write(root.join("caf\u{e9}"), b"utf-8\n").unwrap();
    std::fs::create_dir(named(b"d\xff")).unwrap();
    std::fs::write(named(b"d\xff/in\xe9"), b"inside\n").unwrap();
    let get = |line: &[u8]| {
        let mut conn = TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        conn.write_all(&[line, b"\r\nHost: t\r\nConnection: close\r\n\r\n"].concat())
            .unwrap();
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply).unwrap();
        let reply = parse(&reply);
        (reply.status, reply.body)
    };
    for (line, body) in [
        (&b"GET /caf\xe9 HTTP/1.1"[..], &b"latin-1\n"[..]),
        ("GET /caf\u{e9} HTTP/1.1".as_bytes(), b"utf-8\n"),
        (b"GET /d\xff/in\xe9?q=\xe9 HTTP/1.1", b"inside\n"),
        (b"GET /d\xff/../caf\xe9 HTTP/1.1", b"latin-1\n"),
        (b"GET /d\xff%2Fin\xe9 HTTP/1.1", b"inside\n"),
        // A later minor mended along with the target.
        (b"GET /caf\xe9 HTTP/1.7", b"latin-1\n"),
    ] {
        assert_eq!(get(line), (200, body.to_vec()), "{}", line.escape_ascii());
    }
    assert_eq!(get(b"GET /d\xff/../../caf\xe9 HTTP/1.1").0, 403);
    for refused in [
        &b"GET /caf\xe9\x01 HTTP/1.1"[..],
        b"GET /caf\x7f\xe9 HTTP/1.1",
        b"GET /caf\xe9\x00 HTTP/1.1",
        b"GET /a b\xe9 HTTP/1.1",
        b"G\xe9T /caf\xe9 HTTP/1.1",
    ] {
        assert_eq!(get(refused).0, 400, "{}", refused.escape_ascii());
    }
    let status = child.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    // Logged as sent, as nginx logs it, not as the encoded target it was parsed as.
    for line in [
        "\"GET /caf\\xE9 HTTP/1.1\" 200 8",
        "\"GET /caf\\xE9 HTTP/1.7\" 200 8",
        "\"GET /caf\\xE9\\x01 HTTP/1.1\" 400",
    ] {
        assert!(log.contains(line), "no {line} in {log}");
    }
}

#[test]
fn keep_alive_and_http_1_0() {
    let (url, dir) = site("keepalive");
    std::fs::write(dir.join("a.txt"), b"a").unwrap();
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects}\n",
        ])
        .args([format!("{url}/a.txt"), format!("{url}/a.txt")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\n0\n",
        "the second request did not reuse the connection"
    );
    let got = curl(&["-0", &format!("{url}/a.txt")]);
    assert_eq!((got.status, got.body.as_slice()), (200, &b"a"[..]));
    assert_eq!(got.header("connection").as_deref(), Some("close"));
    let got = curl(&["-H", "Connection: close", &format!("{url}/a.txt")]);
    assert_eq!(got.header("connection").as_deref(), Some("close"));
    // `close` wins over a `keep-alive` beside it (RFC 9112 9.6): the connection ends.
    let path = url.rsplit_once('/').map_or("", |(_, site)| site);
    for connection in ["close, keep-alive", "keep-alive\r\nConnection: close"] {
        let request = format!("GET /{path}/a.txt HTTP/1.0\r\nConnection: {connection}\r\n\r\n");
        let reply = parse(&raw(request.as_bytes()));
        assert_eq!(reply.header("connection").as_deref(), Some("close"));
    }
}

fn raw(request: &[u8]) -> Vec<u8> {
    raw_split(request, request.len())
}

/// A connection to the run's `netkit serve http`, reads cut at 20 s.
fn connect_to_serve() -> TcpStream {
    let addr = env("NETKIT_TEST_SERVE_URL")
        .trim_start_matches("http://")
        .to_owned();
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// [`raw`], sending the first `at` bytes, then the rest a moment later (a second read).
fn raw_split(request: &[u8], at: usize) -> Vec<u8> {
    let mut stream = connect_to_serve();
    stream.write_all(&request[..at]).unwrap();
    if at < request.len() {
        std::thread::sleep(Duration::from_millis(200));
        stream.write_all(&request[at..]).unwrap();
    }
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    reply
}

#[test]
fn a_raw_byte_target_split_before_its_line_ends_is_still_served() {
    // httparse refuses such a target as soon as the space after it came; with the rest of
    // the line still on its way, it was 400, where nginx waits for the line.
    use std::os::unix::ffi::OsStrExt as _;
    let (_, dir) = site("raw-split");
    std::fs::write(
        dir.join(std::ffi::OsStr::from_bytes(b"split\xe9")),
        b"split\n",
    )
    .unwrap();
    let request = b"GET /raw-split/split\xe9 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    for at in [
        b"GET /raw-split/split\xe9 ".len(),
        b"GET /raw-split/split\xe9 HTTP/1".len(),
    ] {
        let reply = parse(&raw_split(request, at));
        assert_eq!(
            (reply.status, reply.body.as_slice()),
            (200, &b"split\n"[..]),
            "{at}"
        );
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_, dir) = site("pipeline");
    for (name, body) in [("1.txt", "first"), ("2.txt", "second"), ("3.txt", "third")] {
        std::fs::write(dir.join(name), body).unwrap();
    }
    let mut request = Vec::new();
    for name in ["1.txt", "2.txt", "missing", "3.txt"] {
        request.extend_from_slice(
            format!("GET /pipeline/{name} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
    }
    request.extend_from_slice(
        b"HEAD /pipeline/1.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let reply = String::from_utf8(raw(&request)).unwrap();
    let statuses: Vec<&str> = reply
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &reply[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "404", "200", "200"], "{reply}");
    let first = reply.find("\r\n\r\nfirst").unwrap();
    let second = reply.find("\r\n\r\nsecond").unwrap();
    let third = reply.find("\r\n\r\nthird").unwrap();
    assert!(first < second && second < third, "{reply}");
    assert!(
        reply.ends_with("Connection: close\r\n\r\n"),
        "HEAD must not send a body: {reply}"
    );
}

#[test]
fn malformed_and_oversized_requests() {
    let reply =
        String::from_utf8_lossy(&raw(b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n")).into_owned();
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    let reply = String::from_utf8_lossy(&raw(b"GET / HTTP/1.1\r\n\r\n")).into_owned();
    assert!(
        reply.starts_with("HTTP/1.1 400 "),
        "HTTP/1.1 without Host: {reply}"
    );
    let reply =
        String::from_utf8_lossy(&raw(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")).into_owned();
    assert!(reply.starts_with("HTTP/1.1 400 "), "two Hosts: {reply}");
    // Framing a proxy in front could read otherwise: refused, and the body never taken for
    // a request (nginx answers 400 to each).
    for framing in [
        &b"Content-Length: 36\xff\r\n"[..],
        b"Content-Length: 0\r\nContent-Length: 36\r\n",
        b"Content-Length: 36\r\nContent-Length: 2000000\r\n",
        b"Transfer-Encoding: chunked\xff\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ] {
        let mut request = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
        request.extend_from_slice(framing);
        request.extend_from_slice(b"\r\nGET /hidden HTTP/1.1\r\nHost: t\r\n\r\n");
        let reply = String::from_utf8_lossy(&raw(&request)).into_owned();
        assert!(
            reply.starts_with("HTTP/1.1 400 ") && reply.matches("HTTP/1.1").count() == 1,
            "{}: {reply}",
            String::from_utf8_lossy(framing)
        );
    }
    let reply = String::from_utf8_lossy(&raw(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ))
    .into_owned();
    assert!(
        reply.starts_with("HTTP/1.1 400 "),
        "chunked in 1.0: {reply}"
    );
    // A name past ASCII, sent as it is rather than as punycode, is still a Host (nginx 200).
    for host in [&b"caf\xc3\xa9.example"[..], b"\xff"] {
        let mut request = b"GET / HTTP/1.1\r\nConnection: close\r\nHost: ".to_vec();
        request.extend_from_slice(host);
        request.extend_from_slice(b"\r\n\r\n");
        let reply = String::from_utf8_lossy(&raw(&request)).into_owned();
        assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    }
    // A later 1.x is answered as 1.1 (RFC 9112, nginx); HTTP/1.1 needs its Host then too.
    for (version, status) in [
        ("HTTP/2.0", 505),
        ("HTTP/3", 505),
        ("HTTX/1.1", 400),
        ("HTTP/1.2\r\nHost: t\r\nConnection: close", 200),
        ("HTTP/1.9", 400),
        ("HTTP/1.10", 400),
    ] {
        let reply = String::from_utf8_lossy(&raw(format!("GET / {version}\r\n\r\n").as_bytes()))
            .into_owned();
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status} ")),
            "{version}: {reply}"
        );
    }
    let mut huge = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..400 {
        huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(100)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let reply = String::from_utf8_lossy(&raw(&huge)).into_owned();
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
    // An 18 KB head of big cookies is taken, as nginx takes it, however it arrives.
    let cookies: String = (0..3)
        .map(|i| format!("Cookie: c{i}={}\r\n", "v".repeat(6000)))
        .collect();
    let request = format!("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{cookies}\r\n");
    for split in [request.len(), 8000, 17_000] {
        let reply = String::from_utf8_lossy(&raw_split(request.as_bytes(), split)).into_owned();
        assert!(reply.starts_with("HTTP/1.1 200 "), "{split}: {reply}");
    }
    for (count, status) in [(100, 200), (200, 431)] {
        let many: String = (0..count).map(|i| format!("X-{i}: v\r\n")).collect();
        let reply = String::from_utf8_lossy(&raw(format!(
            "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{many}\r\n"
        )
        .as_bytes()))
        .into_owned();
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status} ")),
            "{count} headers: {reply}"
        );
    }
    // As nginx: a request line past 8 KiB is refused whether it arrived whole or not.
    let long = format!("/{}", "a".repeat(9000));
    let reply = String::from_utf8_lossy(&raw(
        format!("GET {long} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()
    ))
    .into_owned();
    assert!(reply.starts_with("HTTP/1.1 414 "), "long URI: {reply}");
    let reply = String::from_utf8_lossy(&raw(format!("GET /{}", "a".repeat(20_000)).as_bytes()))
        .into_owned();
    assert!(
        reply.starts_with("HTTP/1.1 414 "),
        "unfinished long request line: {reply}"
    );
    // Framing and Host as RFC 9112 wants them (and nginx refuses them): a Content-Length
    // of digits only (`+5` was read as 5, a request smuggled past a proxy reading it
    // otherwise), a Transfer-Encoding that ends in chunked, a Host that can be one.
    for (header, what) in [
        ("Content-Length: +5", "signed length"),
        (
            "Content-Length: 5\u{a0}",
            "a Unicode space after the length",
        ),
        ("Transfer-Encoding: gzip", "no chunked last"),
        ("Host: a b", "Host with a space"),
        ("Host: x/y", "Host with a slash"),
        ("Host: x:abc", "Host with a port that is not a number"),
        ("Host: x:80:80", "Host with two ports"),
        ("Host: ::1", "an IPv6 Host without brackets"),
        ("Host: [::1", "an IPv6 Host unclosed"),
    ] {
        let host = if header.starts_with("Host") {
            ""
        } else {
            "Host: t\r\n"
        };
        let request = format!(
            "GET / HTTP/1.1\r\n{host}{header}\r\n\r\nabcdeGET / HTTP/1.1\r\nHost: t\r\n\r\n"
        );
        let reply = String::from_utf8_lossy(&raw(request.as_bytes())).into_owned();
        assert!(
            reply.starts_with("HTTP/1.1 400 ") && reply.matches("HTTP/1.1").count() == 1,
            "{what}: {reply}"
        );
    }
    // An absolute-form target's authority stands for Host (RFC 9112 3.2.2): none, or one
    // with userinfo (RFC 9110 4.2.4), is refused, as is a `%` that encodes nothing; nginx
    // refuses them too. A Host in brackets with a port is one.
    for (line, status) in [
        ("GET http:///a.txt HTTP/1.1\r\nHost: t", 400),
        ("GET http://u:p@t/ HTTP/1.1\r\nHost: t", 400),
        ("GET /p%zz HTTP/1.1\r\nHost: t", 400),
        ("GET http://t/ HTTP/1.1\r\nHost: t", 200),
        ("GET / HTTP/1.1\r\nHost: [::1]:80", 200),
    ] {
        let reply = String::from_utf8_lossy(&raw(
            format!("{line}\r\nConnection: close\r\n\r\n").as_bytes()
        ))
        .into_owned();
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status} ")),
            "{line}: {reply}"
        );
    }
    // A body too large to be worth throwing away: answered, then closed, not waited for.
    let reply = String::from_utf8_lossy(&raw(
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 18446744073709551615\r\n\r\n",
    ))
    .into_owned();
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
}

#[test]
fn head_answers_carry_no_body_whatever_the_status() {
    let (url, dir) = site("head");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), b"abc").unwrap();
    let path = url
        .trim_start_matches(&env("NETKIT_TEST_SERVE_URL"))
        .to_owned();
    // A 404, a 301 and a 416 to HEADs, then a GET on the same connection: each head right
    // after the last (the error bodies came in between, where the next status line goes).
    let request = format!(
        "HEAD {path}/missing HTTP/1.1\r\nHost: t\r\n\r\n\
         HEAD {path}/sub HTTP/1.1\r\nHost: t\r\n\r\n\
         HEAD {path}/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=50-\r\n\r\n\
         GET {path}/a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    let reply = String::from_utf8_lossy(&raw(request.as_bytes())).into_owned();
    let heads: Vec<&str> = reply.split("\r\n\r\n").collect();
    assert_eq!(heads.len(), 5, "{reply}");
    for (head, status) in heads.iter().zip(["404", "301", "416", "200"]) {
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{reply}");
    }
    assert_eq!(heads[4], "abc");
}

#[test]
fn a_redirect_stays_on_this_host_and_a_silent_connection_is_closed() {
    let (_, dir) = site("evil.example");
    std::fs::write(dir.join("x.txt"), b"x").unwrap();
    // `//evil.example` is a directory here: its slash is added without making the Location
    // a scheme-relative URL to another host (CVE-2021-28861 in python's http.server).
    let reply = String::from_utf8_lossy(&raw(
        b"GET //evil.example HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ))
    .into_owned();
    assert!(reply.starts_with("HTTP/1.1 301 "), "{reply}");
    assert!(
        reply.contains("\r\nLocation: /evil.example/\r\n"),
        "{reply}"
    );
    // A target whose path resolves to a directory with its `/` is that directory, served as
    // nginx serves it, never redirected: `/\evil.com/..` is the root (a browser reads a
    // Location `/\evil.com/` as another host).
    for target in ["/\\evil.example/..", "/evil.example/x/%2e%2e"] {
        let reply = String::from_utf8_lossy(&raw(format!(
            "GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .as_bytes()))
        .into_owned();
        assert!(
            reply.starts_with("HTTP/1.1 200 ") && !reply.contains("\r\nLocation:"),
            "{target}: {reply}"
        );
    }
    // The Location names the directory as resolved, an absolute-form target its path (any
    // case).
    for (target, location) in [
        ("http://other.example/evil.example", "/evil.example/"),
        (
            "HTTP://other.example/evil.example?a=1",
            "/evil.example/?a=1",
        ),
    ] {
        let reply = String::from_utf8_lossy(&raw(format!(
            "GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .as_bytes()))
        .into_owned();
        assert!(
            reply.starts_with("HTTP/1.1 301 ")
                && reply.contains(&format!("\r\nLocation: {location}\r\n")),
            "{target}: {reply}"
        );
    }

    // A connection that sends nothing is closed once the header timeout passes, without a
    // word: it held its slot as long as it liked.
    let served = with_header_timeout_of_1_s("silent-root");
    let mut silent = TcpStream::connect(served.addrs[0]).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut reply = Vec::new();
    silent.read_to_end(&mut reply).unwrap();
    assert!(reply.is_empty(), "{}", String::from_utf8_lossy(&reply));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `netkit serve http` of an empty directory `root`, with a header timeout of 1 s.
fn with_header_timeout_of_1_s(root: &str) -> Served {
    let root = netkit_tests::work_dir().join(root);
    std::fs::create_dir_all(&root).unwrap();
    Served::start(&[
        "http",
        "--bind",
        "127.0.0.1:0",
        "--header-timeout",
        "1",
        "--root",
        root.to_str().unwrap(),
    ])
}

#[test]
fn a_closed_connection_whose_peer_keeps_its_side_open_costs_no_cpu() {
    // The header timer set at the accept fell due while the answered connection lingered
    // (the client neither closed nor went quiet): the loop polled without blocking until the
    // linger ended, a core for up to 30 s.
    let served = with_header_timeout_of_1_s("linger-root");
    let mut client = TcpStream::connect(served.addrs[0]).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let started = std::time::Instant::now();
    let mut before = None;
    while started.elapsed() < Duration::from_millis(3500) {
        std::thread::sleep(Duration::from_millis(500));
        // Not silent, so still lingering: a byte a second.
        client.write_all(b"x").unwrap();
        if before.is_none() && started.elapsed() >= Duration::from_millis(1500) {
            before = Some(netkit_tests::cpu_ticks(served.child.id()));
        }
    }
    let ticks = netkit_tests::cpu_ticks(served.child.id()) - before.unwrap();
    // Spinning: ~200 ticks in 2 s; waiting: a handful.
    assert!(
        ticks < 60,
        "the server used {ticks} CPU ticks in 2 s with one lingering client"
    );
}

#[test]
fn a_client_sending_headers_too_slowly_gets_408() {
    let served = with_header_timeout_of_1_s("slow-root");
    let mut slow = TcpStream::connect(served.addrs[0]).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    // One byte every 200 ms: always active, never done.
    for byte in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: yes" {
        if slow.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let mut reply = Vec::new();
    let _ = slow.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_short_idle_timeout_leaves_a_head_its_header_timeout() {
    // `--idle-timeout` was also the event loop's timeout from the last byte: a head stopped
    // part-way was closed at 1 s without a 408 or a log line (and a slow reader's download
    // was cut between two writes seconds apart), as nginx's keepalive_timeout does neither.
    let root = netkit_tests::work_dir().join("idle-head-root");
    std::fs::create_dir_all(&root).unwrap();
    let served = Served::start(&[
        "http",
        "--bind",
        "127.0.0.1:0",
        "--idle-timeout",
        "1",
        "--header-timeout",
        "3",
        "--root",
        root.to_str().unwrap(),
    ]);
    let mut slow = TcpStream::connect(served.addrs[0]).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = slow.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{reply}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_from_its_last_response() {
    // The timer set while a response was queued (a quarter of the send timeout, to catch a
    // client that stopped reading) was left to run once the response had gone: an idle
    // connection was closed 15 s late, `--idle-timeout 2` after 17 s (nginx: 2 s).
    let root = netkit_tests::work_dir().join("idle-after-response-root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "a\n").unwrap();
    let served = Served::start(&[
        "http",
        "--bind",
        "127.0.0.1:0",
        "--idle-timeout",
        "2",
        "--root",
        root.to_str().unwrap(),
    ]);
    let mut client = TcpStream::connect(served.addrs[0]).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    client
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let mut buf = [0; 4096];
    while !String::from_utf8_lossy(&reply).ends_with("\r\n\r\na\n") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response: {reply:?}");
        reply.extend_from_slice(&buf[..n]);
    }
    let answered = std::time::Instant::now();
    let n = client.read(&mut buf).unwrap_or(0);
    let idle = answered.elapsed();
    assert_eq!(n, 0, "more than the response came");
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(6),
        "closed {idle:?} after the response, with --idle-timeout 2"
    );
}

#[test]
fn a_body_announced_with_expect_100_continue_is_asked_for_and_the_connection_kept_in_step() {
    // Answered at once without 100 Continue, curl had its answer, sent its next request
    // instead of the body, and that request was thrown away as the body.
    let mut stream = connect_to_serve();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0; 4096];
    while !seen.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut buf[..1]).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(seen, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream
        .write_all(b"abcdeGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert_eq!(reply.matches("HTTP/1.1 200 ").count(), 2, "{reply}");
    assert!(!reply.contains("400"), "{reply}");
}

#[test]
fn a_body_trickled_to_be_thrown_away_does_not_hold_the_connection() {
    // One byte of a declared body every 300 ms kept the keep-alive timer fresh for ever.
    let served = with_header_timeout_of_1_s("slow-body-root");
    let mut slow = TcpStream::connect(served.addrs[0]).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        .unwrap();
    while started.elapsed() < Duration::from_secs(4) && slow.write_all(b"x").is_ok() {
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut reply = Vec::new();
    let _ = slow.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(!reply.contains("408"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5), "held open");
}

#[test]
fn a_file_dated_in_the_future_is_served_dated_now() {
    // ext4 clamps times past 9999; tmpfs keeps them (archives and broken clocks make them).
    let root =
        std::path::Path::new("/dev/shm").join(format!("netkit-future-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let in_two_hours = std::time::SystemTime::now() + Duration::from_secs(7200);
    let year_10000 = std::time::UNIX_EPOCH + Duration::from_secs(253_402_300_800);
    for (name, mtime) in [("soon.txt", in_two_hours), ("y10k.txt", year_10000)] {
        let file = root.join(name);
        std::fs::write(&file, b"future").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    let served = Served::start(&[
        "http",
        "--bind",
        "127.0.0.1:0",
        "--root",
        root.to_str().unwrap(),
    ]);
    let replies: Vec<Reply> = ["soon.txt", "y10k.txt"]
        .iter()
        .map(|name| curl(&[&format!("http://{}/{name}", served.addrs[0])]))
        .collect();
    // The tag stays (it is the file's), so a cache still gets its 304.
    let url = format!("http://{}/soon.txt", served.addrs[0]);
    let tag = replies[0].header("etag").unwrap_or_default();
    let again = curl(&["-H", &format!("If-None-Match: {tag}"), &url]);
    let _ = std::fs::remove_dir_all(&root);
    for got in replies {
        assert_eq!((got.status, got.body.as_slice()), (200, &b"future"[..]));
        // Not later than the Date (RFC 9110 8.8.2.1); the date formatting panicked past 9999.
        let date = |name| httpdate::parse_http_date(&got.header(name).unwrap()).unwrap();
        assert!(date("last-modified") <= date("date"), "{}", got.head);
    }
    assert_eq!(again.status, 304);
}

#[test]
fn a_root_whose_name_moves_to_another_directory_is_followed() {
    // A deploy's `current -> releases/vN` swap, or a rebuilt output directory: the old tree
    // was served, then 404 once removed.
    let base = netkit_tests::work_dir().join("root-by-name");
    let _ = std::fs::remove_dir_all(&base);
    for version in ["v1", "v2"] {
        std::fs::create_dir_all(base.join(version)).unwrap();
        std::fs::write(base.join(version).join("version.txt"), version).unwrap();
    }
    let current = base.join("current");
    std::os::unix::fs::symlink("v1", &current).unwrap();
    let served = Served::start(&[
        "http",
        "--bind",
        "127.0.0.1:0",
        "--root",
        current.to_str().unwrap(),
    ]);
    let url = format!("http://{}/version.txt", served.addrs[0]);
    assert_eq!(curl(&[&url]).body, b"v1");
    let swap = base.join("swap");
    std::os::unix::fs::symlink("v2", &swap).unwrap();
    std::fs::write(base.join("v2").join("app.2.js"), "new").unwrap();
    std::fs::rename(&swap, &current).unwrap();
    // A file only the new tree has is there at once, not a 404 for up to a second (which a
    // CDN in front may keep): a missing file has the name looked up again.
    let new = curl(&[&format!("http://{}/app.2.js", served.addrs[0])]);
    assert_eq!((new.status, new.body.as_slice()), (200, &b"new"[..]));
    std::fs::remove_dir_all(base.join("v1")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = curl(&[&url]);
        if got.body == b"v2" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {} {:?}",
            got.status,
            String::from_utf8_lossy(&got.body)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A root removed is gone, as nginx's 404: not an empty listing.
    let kept = base.join("v2-kept");
    std::fs::create_dir(&kept).unwrap();
    std::fs::write(kept.join("version.txt"), "v2").unwrap();
    std::fs::remove_dir_all(base.join("v2")).unwrap();
    let root = format!("http://{}/", served.addrs[0]);
    let got = curl(&[&root]);
    assert_eq!(got.status, 404, "{:?}", String::from_utf8_lossy(&got.body));
    // A name that comes to name a file is 404, as in nginx (the tree it named before is not
    // served on), and warned of once, not each second.
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink("v2-kept", &current).unwrap();
    until_answered(&url, 200, b"v2");
    let warnings = || {
        let stderr = served.stderr.lock().unwrap().clone();
        (stderr.matches("every request is 404").count(), stderr)
    };
    // The removed root's warning, told at the next check, is in before counting.
    std::thread::sleep(Duration::from_millis(1500));
    let before = warnings().0;
    std::fs::remove_file(&current).unwrap();
    std::fs::write(&current, "not a directory").unwrap();
    // Requests drive the check: one a moment until the warning, then one a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while warnings().0 == before {
        assert!(std::time::Instant::now() < deadline, "{}", warnings().1);
        curl(&[&url]);
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(curl(&[&url]).status, 404);
    }
    let (after, stderr) = warnings();
    assert_eq!(after, before + 1, "{stderr}");
}

#[test]
fn a_root_moved_away_is_no_longer_served() {
    // `mv share private-archive` to take a share down: the tree went on being served for the
    // life of the process. nginx and python answer 404 at once; netkit looks within a second.
    let base = netkit_tests::work_dir().join("root-moved");
    let _ = std::fs::remove_dir_all(&base);
    let share = base.join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("notes.txt"), "private").unwrap();
    let served = Served::start(&[
        "http",
        "--bind",
        "127.0.0.1:0",
        "--root",
        share.to_str().unwrap(),
    ]);
    let url = format!("{}/notes.txt", served.url());
    assert_eq!(curl(&[&url]).body, b"private");
    std::fs::rename(&share, base.join("private-archive")).unwrap();
    // Polled, not one request after a fixed 1.5 s that a late timer turned into a 200; the
    // second it takes is held to a generous bound.
    let moved = std::time::Instant::now();
    loop {
        let got = curl(&[&url]);
        if got.status == 404 {
            break;
        }
        assert!(
            moved.elapsed() < Duration::from_secs(5),
            "still {} {:?}",
            got.status,
            String::from_utf8_lossy(&got.body)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for_log(
        &served,
        "every request is 404 until it names a directory again",
    );
    // A name back (the second rename of a deploy) is served again at once.
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("notes.txt"), "public").unwrap();
    let got = curl(&[&url]);
    assert_eq!((got.status, got.body.as_slice()), (200, &b"public"[..]));
}

#[test]
fn the_header_timeout_counts_from_the_accept() {
    // Waiting 0.9 s and then trickling gave a client nearly twice the timeout.
    let served = with_header_timeout_of_1_s("late-head-root");
    let mut late = TcpStream::connect(served.addrs[0]).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut writer = late.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(900));
        for byte in b"GET / HTTP/1.1\r\nHost: t\r\n" {
            if writer.write_all(&[*byte]).is_err() || started.elapsed() > Duration::from_secs(3) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut first = [0; 13];
    late.read_exact(&mut first).unwrap();
    let answered = started.elapsed();
    trickle.join().unwrap();
    assert_eq!(&first, b"HTTP/1.1 408 ");
    assert!(answered < Duration::from_millis(1700), "{answered:?}");
}

#[test]
fn sigterm_during_a_large_download_lets_it_finish_and_exits_0() {
    let root = netkit_tests::work_dir().join("sigterm-root");
    std::fs::create_dir_all(&root).unwrap();
    let data: Vec<u8> = (0..(48u32 << 20)).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.join("large.bin"), &data).unwrap();
    let mut served = Served::start(&[
        "http",
        "--bind",
        "127.0.0.1:0",
        "--root",
        root.to_str().unwrap(),
    ]);
    let out_path = netkit_tests::work_dir().join("sigterm-download.bin");
    // A whole file left by a run before this one in the same work directory would pass for
    // the download begun, and the signal would go before curl had connected.
    let _ = std::fs::remove_file(&out_path);
    let mut download = netkit_tests::Spawned::start(
        Command::new("curl")
            .args(["-s", "-S", "--limit-rate", "16M", "-o"])
            .arg(&out_path)
            .arg(format!("{}/large.bin", served.url())),
    );
    netkit_tests::wait_for_file_size(&out_path, 1 << 20, &mut download);
    let status = served.terminate(Duration::from_secs(20));
    assert!(status.success(), "netkit serve exited with {status}");
    assert!(download.wait().unwrap().success(), "curl failed");
    let got = std::fs::read(&out_path).unwrap();
    assert!(
        got.len() == data.len() && got == data,
        "the download was cut at {} bytes",
        got.len()
    );
    assert!(
        TcpStream::connect(served.addrs[0]).is_err(),
        "still accepting after shutdown"
    );
}

/// `netkit serve http` on a site of its own, its log to be read by the test, and where it
/// listens.
fn serving_with_its_log(
    name: &str,
) -> (
    netkit_tests::Spawned,
    std::io::BufReader<std::process::ChildStderr>,
    String,
) {
    serving_with_its_log_and(name, &[])
}

/// [`serving_with_its_log`], with more arguments for `netkit serve http`.
fn serving_with_its_log_and(
    name: &str,
    args: &[&str],
) -> (
    netkit_tests::Spawned,
    std::io::BufReader<std::process::ChildStderr>,
    String,
) {
    let (_, root) = site(name);
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_tests::netkit_bin())
            .args(["serve", "http", "--bind", "127.0.0.1:0"])
            .args(args)
            .arg("--root")
            .arg(&root)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
    (child, stderr, addr)
}

#[test]
fn the_access_log_writes_what_the_client_sent_past_ascii_as_nginx_does() {
    // A raw right-to-left override turned the line around on the screen of whoever read the
    // log; quotes and backslashes could end the quoted field.
    let (mut child, mut stderr, addr) = serving_with_its_log("log-escapes");
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.write_all("GET /a\"b\\c\u{202e}txt.exe HTTP/1.0\r\n\r\n".as_bytes())
        .unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).unwrap();
    let status = child.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains("\"GET /a\\x22b\\x5Cc\\xE2\\x80\\xAEtxt.exe HTTP/1.0\" 404"),
        "{rest}"
    );
}

#[test]
fn a_stderr_nobody_reads_stops_neither_serving_nor_sigterm() {
    // `netkit serve http 2>&1 | less` left on a screenful: the access log filled the pipe,
    // every loop blocked writing it, and SIGTERM (logged before acting) did nothing.
    let (mut child, mut stderr, addr) = serving_with_its_log("stderr-unread");
    // Some 100 bytes of log each: ten times what a pipe holds.
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(100);
    let mut reply = Vec::new();
    let mut buf = vec![0; 1 << 16];
    for round in 1..=70 {
        conn.write_all(&request).unwrap();
        while reply.windows(8).filter(|w| w == b"HTTP/1.1").count() < 100 {
            let n = conn
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("stalled after {} answers: {e}", round * 100 - 100));
            assert!(n > 0, "closed");
            reply.extend_from_slice(&buf[..n]);
        }
        reply.clear();
    }
    // Read from now on: the lines that found the queue full are counted, and said.
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let status = child.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let rest = reader.join().unwrap();
    // Where they were lost: after the lines kept while stderr was not read.
    let at = rest.find("log lines dropped here").unwrap_or(0);
    let before = rest[..at].matches("netkit::access").count();
    assert!(before >= 4096, "{before} lines before the count");
    assert!(
        rest.contains("log lines dropped here"),
        "{}",
        &rest[rest.len().saturating_sub(500)..]
    );
}

/// `netkit serve http --threads 1` with 40 file descriptors, on a root holding `there.txt`.
fn serving_with_few_descriptors(name: &str) -> Served {
    let (_, root) = site(name);
    std::fs::write(root.join("there.txt"), "there\n").unwrap();
    let line = format!(
        "ulimit -n 40 && exec {} serve http --threads 1 --bind 127.0.0.1:0 --root {}",
        netkit_tests::netkit_bin().display(),
        root.display()
    );
    Served::start_with(Command::new("sh").args(["-c", &line]))
}

#[test]
fn out_of_descriptors_a_file_that_is_there_is_500_not_404() {
    // 404 told caches and crawlers that the file was gone; nginx answers 500.
    let served = serving_with_few_descriptors("few-descriptors");
    let conns: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(served.addrs[0]).unwrap())
        .collect();
    let mut statuses = Vec::new();
    // Each held open: an answered connection keeps its descriptor in the server.
    for conn in &conns {
        let mut conn = conn;
        conn.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let _ = conn.write_all(b"GET /there.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut head = [0; 12];
        // Those still waiting to be accepted time out: only answers count.
        if conn.read_exact(&mut head).is_ok() {
            statuses.push(String::from_utf8_lossy(&head[9..]).into_owned());
        }
    }
    assert!(!statuses.iter().any(|s| s == "404"), "{statuses:?}");
    assert!(statuses.iter().any(|s| s == "500"), "{statuses:?}");
}

#[test]
fn out_of_descriptors_idle_clients_give_way_to_a_newcomer() {
    // With every descriptor held by a keep-alive connection (its 500 said keep-alive too), a
    // newcomer waited out the idle timeout, 60 s; nginx answers it at once.
    let served = serving_with_few_descriptors("few-descriptors-idle");
    let request = b"GET /there.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    let idle: Vec<TcpStream> = (0..60)
        .map(|_| {
            let mut conn = TcpStream::connect(served.addrs[0]).unwrap();
            conn.write_all(request).unwrap();
            conn
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut newcomer = TcpStream::connect(served.addrs[0]).unwrap();
    newcomer
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    newcomer.write_all(request).unwrap();
    let mut head = [0; 9];
    newcomer
        .read_exact(&mut head)
        .expect("no answer in 10 s with 60 clients idle");
    assert_eq!(&head, b"HTTP/1.1 ");
    drop(idle);
}

#[test]
fn downloads_whose_readers_keep_up_leave_a_small_get_its_turn() {
    // One loop: a download kept writing while its socket took more, 184 MiB in one pass
    // when its reader kept up, and a small GET waited 15-170 ms (nginx: ~4 ms).
    let (_, root) = site("fair-share");
    std::fs::File::create(root.join("big.bin"))
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    std::fs::write(root.join("small.txt"), "small\n").unwrap();
    let served = Served::start(&[
        "http",
        "--threads",
        "1",
        "--bind",
        "127.0.0.1:0",
        "--root",
        root.to_str().unwrap(),
    ]);
    let addr = served.addrs[0];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let downloads: Vec<_> = (0..4)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut conn = TcpStream::connect(addr).unwrap();
                conn.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
                    .unwrap();
                let mut buf = vec![0; 1 << 20];
                let mut read = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match conn.read(&mut buf) {
                        Ok(n) if n > 0 => read += n as u64,
                        _ => break,
                    }
                }
                read
            })
        })
        .collect();
    let mut small = TcpStream::connect(addr).unwrap();
    small.set_nodelay(true).unwrap();
    let started = std::time::Instant::now();
    let mut waits = Vec::new();
    while started.elapsed() < Duration::from_secs(4) {
        let sent = std::time::Instant::now();
        small
            .write_all(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut reply = Vec::new();
        let mut buf = [0; 4096];
        while !reply.ends_with(b"small\n") {
            let n = small.read(&mut buf).unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&reply));
            reply.extend_from_slice(&buf[..n]);
        }
        if started.elapsed() > Duration::from_secs(1) {
            waits.push(sent.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(served);
    for download in downloads {
        assert!(download.join().unwrap() > 0);
    }
    waits.sort();
    let p90 = waits[waits.len() * 9 / 10];
    // Generous: this guards against a loop held by one connection, not for speed. On two
    // cores shared with a build: 16-26 ms, 95-204 ms before.
    assert!(
        p90 < Duration::from_millis(60),
        "one small GET in ten waited {p90:?} or more beside four downloads (median {:?})",
        waits[waits.len() / 2]
    );
}

#[test]
fn an_upload_refused_before_it_ends_still_gets_its_answer() {
    // As python's http.client and most SDKs send: the whole body, then read. 3 MB over 3 s
    // was reset after 2 s (the answer, 405, lost); nginx reads on for up to 30 s.
    let mut stream = connect_to_serve();
    let chunk = vec![b'x'; 100_000];
    let head = format!(
        "PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        30 * chunk.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    for _ in 0..30 {
        stream
            .write_all(&chunk)
            .expect("the server stopped taking the upload");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert_eq!(parse(&reply).status, 405);
}

#[test]
fn a_client_past_max_connections_gets_503_as_from_a_full_proxy() {
    // It was closed without a word: curl said "Empty reply from server", which reads as a
    // broken server rather than a busy one.
    let root = netkit_tests::work_dir().join("full-house");
    std::fs::create_dir_all(&root).unwrap();
    let served = Served::start(&[
        "http",
        "--bind",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--max-connections",
        "1",
        "--root",
        root.to_str().unwrap(),
    ]);
    // Half a request: busy, so not closed to make room as an idle keep-alive would be.
    let mut busy = TcpStream::connect(served.addrs[0]).unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "20"])
        .arg(format!("http://{}/", served.addrs[0]))
        .output()
        .unwrap();
    let reply = parse(&out.stdout);
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(reply.header("connection").as_deref(), Some("close"));
    assert_eq!(reply.body, b"503 Service Unavailable\n");
    drop(busy);
}

/// The access-log lines of `log` naming `request` (`GET /x HTTP/1.1`), each as its status and
/// body bytes.
fn logged(log: &str, request: &str) -> Vec<(u16, u64)> {
    let quoted = format!("\"{request}\" ");
    log.lines()
        .filter(|line| line.contains("netkit::access"))
        .filter_map(|line| {
            let (_, rest) = line.split_once(&quoted)?;
            let (status, sent) = rest.trim().split_once(' ')?;
            Some((status.parse().ok()?, sent.parse().ok()?))
        })
        .collect()
}

/// Stops a server started by [`serving_with_its_log`] and gives all it logged.
fn stopped_log(
    mut child: netkit_tests::Spawned,
    mut stderr: std::io::BufReader<std::process::ChildStderr>,
) -> String {
    let status = child.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    rest
}

#[test]
fn a_download_cut_short_is_logged_with_the_body_bytes_that_went_as_nginx_logs_it() {
    // The line was written when the response was queued, with the whole file's length: a
    // client that read 64 KiB of 100 MB and hung up was logged as having taken 100 MB.
    let (child, stderr, addr) = serving_with_its_log("log-cut");
    let root = PathBuf::from(env("NETKIT_TEST_SERVE_ROOT")).join("log-cut");
    let whole = 64u64 << 20;
    std::fs::File::create(root.join("big.bin"))
        .unwrap()
        .set_len(whole)
        .unwrap();
    std::fs::write(root.join("small.txt"), "small").unwrap();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Pipelined: the first goes whole, the second is cut.
    conn.write_all(
        b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let mut got = vec![0; 64 * 1024];
    conn.read_exact(&mut got).unwrap();
    // Unread bytes left behind: the close resets the connection, as the QA client did.
    drop(conn);
    std::thread::sleep(Duration::from_millis(300));
    let log = stopped_log(child, stderr);
    assert_eq!(logged(&log, "GET /small.txt HTTP/1.1"), [(200, 5)], "{log}");
    let big = logged(&log, "GET /big.bin HTTP/1.1");
    assert!(
        big.len() == 1 && big[0].0 == 200 && big[0].1 < whole / 2,
        "{log}"
    );
}

/// The size of [`big_download_begun`]'s file.
const BIG: u64 = 64 << 20;

/// Makes `path` a sparse file of [`BIG`] bytes under the root served at `addr` and starts
/// downloading it: the connection, and the first 64 KiB read from it.
fn big_download_begun(addr: &str, path: &Path) -> (TcpStream, Vec<u8>) {
    std::fs::File::create(path).unwrap().set_len(BIG).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(format!("GET /{name} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = vec![0; 64 * 1024];
    conn.read_exact(&mut got).unwrap();
    (conn, got)
}

#[test]
fn a_stop_at_once_logs_the_responses_it_cuts_short_with_the_bytes_that_went() {
    // A second SIGTERM, or a SIGHUP, ended the process where it stood: responses in flight
    // never reached the access log.
    for (signals, code) in [(&["-TERM", "-TERM"][..], 143), (&["-HUP"][..], 129)] {
        let (mut child, mut stderr, addr) = serving_with_its_log("log-stop-at-once");
        let root = PathBuf::from(env("NETKIT_TEST_SERVE_ROOT")).join("log-stop-at-once");
        let (_conn, _) = big_download_begun(&addr, &root.join("big.bin"));
        for signal in signals {
            kill(signal, child.id());
            std::thread::sleep(Duration::from_millis(300));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "still running");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(code), "{signals:?}");
        let mut log = String::new();
        stderr.read_to_string(&mut log).unwrap();
        let big = logged(&log, "GET /big.bin HTTP/1.1");
        assert!(
            big.len() == 1 && big[0].0 == 200 && big[0].1 > 0 && big[0].1 < BIG,
            "{signals:?}: {log}"
        );
    }
}

#[test]
fn a_file_that_shrinks_while_sent_is_warned_of_and_logged_with_what_went() {
    // The connection was cut, rightly, but without a word, and the log claimed the whole
    // file had gone; nginx logs an alert and the bytes it sent.
    let (child, stderr, addr) = serving_with_its_log("log-shrinks");
    let path = PathBuf::from(env("NETKIT_TEST_SERVE_ROOT")).join("log-shrinks/shrinks.bin");
    let (mut conn, mut got) = big_download_begun(&addr, &path);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let _ = conn.read_to_end(&mut got);
    let head = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = (got.len() - head) as u64;
    assert!(body < BIG, "the whole file came");
    let log = stopped_log(child, stderr);
    assert_eq!(
        logged(&log, "GET /shrinks.bin HTTP/1.1"),
        [(200, body)],
        "{log}"
    );
    assert!(
        log.lines().any(|line| line.contains("WARN")
            && line.contains("shrank")
            && line.contains("/shrinks.bin")),
        "{log}"
    );
}

#[test]
fn a_request_that_cannot_be_parsed_is_logged_as_received_with_its_status_and_body_bytes() {
    // Such requests were all `"- - HTTP/1.1"` (an HTTP/2 preface as HTTP/1.1), and every error
    // body was logged as 0 bytes.
    let (child, stderr, addr) = serving_with_its_log("log-unparsed");
    let long = format!("BAD\x01{}", "a".repeat(3000));
    let requests = [
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_owned(),
        "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_owned(),
        "GET /sub/a.txt\r\n\r\n".to_owned(),
        "HEAD /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_owned(),
        format!("{long}\r\n\r\n"),
        // Answered as 1.1 (RFC 9112 2.3), logged as sent, as nginx logs it; so is a 1.0
        // after the empty line a server passes over (RFC 9112 2.2).
        "GET /nope HTTP/1.7\r\nHost: t\r\nConnection: close\r\n\r\n".to_owned(),
        "\r\nGET /gone HTTP/1.0\r\n\r\n".to_owned(),
    ];
    for request in &requests {
        let mut conn = TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply).unwrap();
    }
    let log = stopped_log(child, stderr);
    // Bodies: "505 HTTP Version Not Supported\n", "404 Not Found\n", "400 Bad Request\n".
    assert_eq!(logged(&log, "PRI * HTTP/2.0"), [(505, 31)], "{log}");
    assert_eq!(logged(&log, "GET /nope HTTP/1.1"), [(404, 14)], "{log}");
    assert_eq!(logged(&log, "GET /x HTTP/1.1"), [(400, 16)], "{log}");
    assert_eq!(logged(&log, "GET /sub/a.txt"), [(400, 16)], "{log}");
    assert_eq!(logged(&log, "HEAD /nope HTTP/1.1"), [(404, 0)], "{log}");
    let capped = format!("BAD\\x01{}", "a".repeat(2044));
    assert_eq!(logged(&log, &capped), [(400, 16)], "{log}");
    assert_eq!(logged(&log, "GET /nope HTTP/1.7"), [(404, 14)], "{log}");
    assert_eq!(logged(&log, "GET /gone HTTP/1.0"), [(404, 14)], "{log}");
}

#[test]
fn clients_refused_at_max_connections_are_in_the_access_log_and_warned_of_once_a_second() {
    // Their 503s never reached the access log, where overload shows, and each had a warning
    // of its own: 35,000 lines a minute under load.
    let (child, stderr, addr) =
        serving_with_its_log_and("log-refused", &["--threads", "1", "--max-connections", "1"]);
    // Half a request: busy, so not closed to make room as an idle keep-alive would be.
    let mut busy = TcpStream::connect(&addr).unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..20 {
        let mut conn = TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = conn.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut reply = Vec::new();
        let _ = conn.read_to_end(&mut reply);
        assert_eq!(parse(&reply).status, 503);
    }
    drop(busy);
    std::thread::sleep(Duration::from_millis(200));
    // Keep-alive clients, each closed while idle to make room for the next: told of with a
    // count at most once a second too (a line each: 42,700 in 24 s under wrk).
    let mut kept = Vec::new();
    for _ in 0..20 {
        let mut conn = TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut reply = [0; 4096];
        let n = conn.read(&mut reply).unwrap();
        assert_eq!(parse(&reply[..n]).status, 404);
        kept.push(conn);
    }
    let log = stopped_log(child, stderr);
    let made_room = log
        .lines()
        .filter(|line| line.contains("INFO") && line.contains("to make room"))
        .count();
    assert!((1..=3).contains(&made_room), "{log}");
    let refused = log
        .lines()
        .filter(|line| line.contains("netkit::access") && line.ends_with("\" 503 24"))
        .count();
    assert_eq!(refused, 20, "{log}");
    let warnings = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("refus"))
        .count();
    assert!((1..=3).contains(&warnings), "{log}");
}

/// libfaketime, installed by `cargo xtask test`: the clock `netkit` sees is `at`.
fn at_clock(command: &mut Command, at: &str) {
    const LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        std::path::Path::new(LIB).exists(),
        "{LIB} missing: run via cargo xtask test"
    );
    command.env("LD_PRELOAD", LIB).env("FAKETIME", at);
}

#[test]
fn clocks_before_1970_and_past_9999_give_the_nearest_dates_not_empty_replies() {
    // Before 1970 building the Date header panicked; past 9999 the access log's timestamp
    // did, and then the report of that panic, which ended the process (QA clocks 2 and 3).
    let (_, dir) = site("clocks");
    std::fs::write(dir.join("a.txt"), b"a\n").unwrap();
    for (clock, date) in [
        ("@1960-01-01 00:00:00", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("@9999-12-31 23:59:58", "Fri, 31 Dec 9999 23:59:58 GMT"),
        ("+8000y", "Fri, 31 Dec 9999 23:59:59 GMT"),
    ] {
        let mut command = Command::new(netkit_tests::netkit_bin());
        command.args(["serve", "http", "--bind", "127.0.0.1:0", "--root"]);
        command.arg(&dir);
        at_clock(&mut command, clock);
        let mut served = Served::start_with(&mut command);
        for _ in 0..2 {
            let got = curl(&[&format!("{}/a.txt", served.url())]);
            assert_eq!(got.status, 200, "{clock}");
            assert_eq!(got.body, b"a\n");
            let shown = got.header("date").unwrap();
            assert!(
                clock.starts_with("@9999") || shown == date,
                "{clock}: {shown}"
            );
        }
        let status = served.terminate(Duration::from_secs(10));
        let log = served.stderr.lock().unwrap().clone();
        assert!(status.success(), "{clock}: {status:?} {log}");
        assert!(!log.contains("panicked"), "{clock}: {log}");
    }
}

/// `netkit serve http --bind 127.0.0.1:0`, to be run as the unprivileged user `netkit-test`:
/// the tests run as root, which may read anything, and permission answers are to be an
/// ordinary user's.
fn unprivileged_serve_http() -> Command {
    let mut command = Command::new(netkit_tests::netkit_bin());
    netkit_tests::as_test_user(&mut command).args(["serve", "http", "--bind", "127.0.0.1:0"]);
    command
}

/// [`unprivileged_serve_http`] serving `root`.
fn served_unprivileged(root: &Path) -> Served {
    Served::start_with(unprivileged_serve_http().arg("--root").arg(root))
}

/// Asks for `url` until it answers `status` with `body`, for 5 s at most.
fn until_answered(url: &str, status: u16, body: &[u8]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = curl(&[url]);
        if got.status == status && got.body == body {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {} {:?}",
            got.status,
            String::from_utf8_lossy(&got.body)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sets the mode of each path.
fn chmod(paths: &[(&Path, u32)]) {
    use std::os::unix::fs::PermissionsExt as _;
    for (path, mode) in paths {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

#[test]
fn a_root_unreadable_for_a_moment_is_served_once_its_permissions_are_fixed() {
    // A deploy whose new tree is 0700 for a moment (`cp -a` of a build directory, umask
    // 077), then chmod'ed: the directory was remembered as refused by its inode, which a
    // chmod keeps, and every request was 404 until a restart. nginx serves it at once.
    let base = netkit_tests::work_dir().join("root-chmod");
    let _ = std::fs::remove_dir_all(&base);
    let site = base.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("f.txt"), "old").unwrap();
    let served = served_unprivileged(&site);
    let url = format!("{}/f.txt", served.url());
    assert_eq!(curl(&[&url]).body, b"old");
    std::fs::remove_dir_all(&site).unwrap();
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("f.txt"), "new").unwrap();
    chmod(&[(&site, 0o700), (&site.join("f.txt"), 0o600)]);
    // The name is looked at once a second.
    std::thread::sleep(Duration::from_millis(2500));
    assert_ne!(curl(&[&url]).status, 200);
    chmod(&[(&site, 0o755), (&site.join("f.txt"), 0o644)]);
    until_answered(&url, 200, b"new");
}

#[test]
fn a_root_that_may_be_entered_but_not_listed_serves_its_files_and_refuses_its_listing() {
    // Mode 0711: nginx and python serve its files and refuse only its listing; netkit did not
    // start (exit 2, and `cannot serve .` when run in it).
    let base = netkit_tests::work_dir().join("exec-only-root");
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("f.txt"), "f").unwrap();
    std::fs::write(base.join("plain.txt"), "not a directory").unwrap();
    std::fs::create_dir_all(root.join("site")).unwrap();
    std::fs::write(root.join("site/index.html"), "home").unwrap();
    chmod(&[(&root, 0o711), (&root.join("site"), 0o711)]);
    let served = served_unprivileged(&root);
    let got = curl(&[&format!("{}/f.txt", served.url())]);
    assert_eq!((got.status, got.body.as_slice()), (200, &b"f"[..]));
    assert_eq!(curl(&[&format!("{}/", served.url())]).status, 403);
    assert_eq!(curl(&[&format!("{}/sub/", served.url())]).status, 200);
    // Its index is served all the same, as nginx serves it (it was 403).
    let got = curl(&[&format!("{}/site/", served.url())]);
    assert_eq!((got.status, got.body.as_slice()), (200, &b"home"[..]));
    // Named without its `/`, it is redirected there, as nginx and a listable one (it was 403).
    let got = curl(&[&format!("{}/site?x=1", served.url())]);
    assert_eq!(got.status, 301, "{}", got.head);
    assert!(got.head.contains("Location: /site/?x=1"), "{}", got.head);
    // One it may not enter is a server that cannot start, exit 1 as --help says (2 is for
    // bad arguments), named by its whole path.
    chmod(&[(&root, 0o700)]);
    let started = |root: &str| {
        let out = unprivileged_serve_http()
            .args(["--root", root])
            .current_dir(&base)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = started("root/sub");
    assert_eq!(code, Some(1), "{stderr}");
    let named = format!("cannot serve {}: ", root.join("sub").display());
    assert!(stderr.contains(&named), "{stderr}");
    // The root itself too (opened without asking to read it, it started and 403'd all).
    let (code, stderr) = started("root");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    // A root that is not there, or no directory, is a bad argument.
    for bad in ["missing", "plain.txt"] {
        let (code, stderr) = started(bad);
        assert_eq!(code, Some(2), "{bad}: {stderr}");
    }
}

/// Waits (5 s at most) for `served` to have logged `line`; the log reaches stderr through a
/// queue, maybe after the answer.
fn wait_for_log(served: &Served, line: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !served.stderr.lock().unwrap().contains(line) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {line:?} in {}",
            served.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_403_is_logged_with_its_reason_and_answered_without_it() {
    // Only `"GET /secret.txt HTTP/1.1" 403 14`: a file the server's user may not read looked
    // like a link out of the root. nginx's error log says `(13: Permission denied)`.
    let root = netkit_tests::work_dir().join("forbidden-reasons");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("secret.txt"), "secret").unwrap();
    chmod(&[(&root.join("secret.txt"), 0o600)]);
    std::os::unix::fs::symlink("/etc/hostname", root.join("out")).unwrap();
    let served = served_unprivileged(&root);
    for (path, reason) in [
        (
            "/secret.txt",
            "cannot open it: Permission denied (os error 13)",
        ),
        ("/out", "it leads outside the root"),
    ] {
        let got = curl(&[&format!("{}{path}", served.url())]);
        assert_eq!(
            (got.status, got.body.as_slice()),
            (403, &b"403 Forbidden\n"[..])
        );
        wait_for_log(&served, &format!("\"{path}\": 403: {reason}"));
    }
}

/// One GET of `path` on the keep-alive connection `conn`: its status and body.
fn get_kept_alive(conn: &mut std::io::BufReader<TcpStream>, path: &str) -> (u16, Vec<u8>) {
    use std::io::BufRead as _;
    conn.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert_ne!(conn.read_until(b'\n', &mut head).unwrap(), 0, "closed");
    }
    let reply = parse(&head);
    let length = reply
        .header("content-length")
        .and_then(|n| n.parse().ok())
        .expect("a Content-Length");
    let mut body = vec![0; length];
    conn.read_exact(&mut body).unwrap();
    (reply.status, body)
}

/// A root whose `rel/up` links to `../a.txt` (as `current -> ../releases/v2` does), and a
/// scratch directory beside it for renames.
fn root_with_a_dot_dot_link(name: &str) -> (PathBuf, PathBuf) {
    let base = netkit_tests::work_dir().join(name);
    let _ = std::fs::remove_dir_all(&base);
    let (root, scratch) = (base.join("root"), base.join("scratch"));
    std::fs::create_dir_all(root.join("rel")).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(root.join("a.txt"), b"the file\n").unwrap();
    std::os::unix::fs::symlink("../a.txt", root.join("rel/up")).unwrap();
    (root, scratch)
}

/// Runs `work` while two threads rename files back and forth under `scratch`, for 10 s at
/// most: each rename moves the kernel's rename seqlock, which openat2 checks across a `..`.
fn while_renaming<T>(scratch: &Path, work: impl FnOnce() -> T) -> T {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let renamers: Vec<_> = (0..2)
        .map(|i| {
            let (done, dir) = (done.clone(), scratch.join(i.to_string()));
            std::fs::create_dir(&dir).unwrap();
            std::thread::spawn(move || {
                let (a, b) = (dir.join("a"), dir.join("b"));
                std::fs::write(&a, b"").unwrap();
                while !done.load(std::sync::atomic::Ordering::Relaxed)
                    && std::time::Instant::now() < deadline
                {
                    std::fs::rename(&a, &b).unwrap();
                    std::fs::rename(&b, &a).unwrap();
                }
            })
        })
        .collect();
    let result = work();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for renamer in renamers {
        renamer.join().unwrap();
    }
    result
}

/// A keep-alive connection to `served`, reads cut at 10 s.
fn kept_alive(served: &Served) -> std::io::BufReader<TcpStream> {
    let conn = TcpStream::connect(served.addrs[0]).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::io::BufReader::new(conn)
}

#[test]
fn renames_elsewhere_on_the_host_do_not_fail_a_file_reached_through_a_link_with_dot_dot() {
    // openat2 answers EAGAIN when any rename on the machine races a `..` it walks (as in the
    // common `current -> ../releases/v2`): a deploy elsewhere made such requests 500.
    let (root, scratch) = root_with_a_dot_dot_link("rename-race");
    let served = Served::start(&[
        "http",
        "--bind",
        "127.0.0.1:0",
        "--root",
        root.to_str().unwrap(),
    ]);
    let answers = while_renaming(&scratch, || {
        let mut conn = kept_alive(&served);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut answers = std::collections::BTreeMap::new();
        let mut sent = 0;
        while sent < 3000 && std::time::Instant::now() < deadline {
            let (status, body) = get_kept_alive(&mut conn, "/rel/up");
            assert!(status != 200 || body == b"the file\n", "{body:?}");
            *answers.entry(status).or_insert(0) += 1;
            sent += 1;
        }
        answers
    });
    assert_eq!(answers.keys().collect::<Vec<_>>(), [&200], "{answers:?}");
}

#[test]
fn pipelining_clients_that_never_read_hold_few_of_the_servers_descriptors() {
    // A client that pipelined requests and never read had answers queued up to 1 MiB, a
    // descriptor each for a file (100 such clients: 1,914 descriptors, where nginx, which
    // answers one request at a time, held 41); curl then got 500 for every file.
    let dir = netkit_tests::work_dir().join("serve-http-pipelined-no-reader");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("100k.bin"), vec![7u8; 100_000]).unwrap();
    let root = dir.to_str().unwrap();
    let served = Served::start(&[
        "http",
        "--bind",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--root",
        root,
    ]);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", served.child.id()))
            .unwrap()
            .count()
    };
    let before = fds();
    let requests = "GET /100k.bin HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100);
    let clients: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut conn = TcpStream::connect(served.addrs[0]).unwrap();
            conn.write_all(requests.as_bytes()).unwrap();
            conn
        })
        .collect();
    // Until the server has answered what it will: the kernel's buffers full, its queue at
    // its limit.
    let mut held = fds();
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        held = held.max(fds());
    }
    // Each client: its socket, and the file of the one answer waiting.
    assert!(
        held - before <= 3 * clients.len(),
        "{} descriptors for {} clients",
        held - before,
        clients.len()
    );
    // And a newcomer is served.
    let got = curl(&[&format!("http://{}/100k.bin", served.addrs[0])]);
    assert_eq!((got.status, got.body.len()), (200, 100_000));
}

/// Sends `signal` (as `kill` names it: `-HUP`) to the process `pid` from a process of its own.
fn kill(signal: &str, pid: u32) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[test]
fn a_nohup_server_lives_through_sighup() {
    // It put back the SIGHUP that nohup had ignored, and died at its terminal's closing.
    let (_, root) = site("nohup");
    std::fs::write(root.join("a.txt"), "still here\n").unwrap();
    let mut served = Served::start_with(
        Command::new("nohup")
            .arg(netkit_tests::netkit_bin())
            .args(["serve", "http", "--bind", "127.0.0.1:0", "--root"])
            .arg(&root),
    );
    kill("-HUP", served.child.id());
    std::thread::sleep(Duration::from_millis(300));
    assert!(served.child.try_wait().unwrap().is_none(), "died at SIGHUP");
    let mut conn = TcpStream::connect(served.addrs[0]).unwrap();
    conn.write_all(b"GET /a.txt HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).unwrap();
    assert!(
        reply.ends_with(b"still here\n"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let status = served.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_signal_sent_twice_at_once_by_one_process_stops_gracefully() {
    // coreutils' `timeout` sends its signal to the command, then to its process group: the
    // second, from the same process at once, was taken for "again: quit at once", and the
    // downloads in flight were cut (exit 143).
    let (mut child, mut stderr, addr) = serving_with_its_log("twice-at-once");
    let root = PathBuf::from(env("NETKIT_TEST_SERVE_ROOT")).join("twice-at-once");
    let (mut conn, mut got) = big_download_begun(&addr, &root.join("big.bin"));
    let pid = child.id().to_string();
    let sent = Command::new("sh")
        .args(["-c", "kill -TERM $0; sleep 0.03; kill -TERM $0", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    conn.read_to_end(&mut got).unwrap();
    let head = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!((got.len() - head) as u64, BIG, "the download was cut");
    let status = child.wait().unwrap();
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(status.success(), "{status:?}: {log}");
}

#[test]
fn a_graceful_stop_answers_a_request_still_arriving_and_closes_an_idle_connection() {
    // A request whose head was still on its way was closed unanswered at SIGTERM, where
    // nginx answers it; an idle keep-alive connection still closes at once.
    let (mut child, mut stderr, addr) = serving_with_its_log("stop-mid-head");
    let root = PathBuf::from(env("NETKIT_TEST_SERVE_ROOT")).join("stop-mid-head");
    std::fs::write(root.join("a.txt"), "answered\n").unwrap();
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    idle.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0; 512];
    let n = idle.read(&mut first).unwrap();
    assert!(first[..n].ends_with(b"answered\n"));
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    kill("-TERM", child.id());
    let stopped = std::time::Instant::now();
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty() && stopped.elapsed() < Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(500));
    slow.write_all(b"X-A: b\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    slow.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 200 ")
            && reply.contains("\r\nConnection: close\r\n")
            && reply.ends_with("answered\n"),
        "{reply}"
    );
    let status = child.wait().unwrap();
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(status.success(), "{status:?}: {log}");
    assert_eq!(logged(&log, "GET /a.txt HTTP/1.1").len(), 2, "{log}");
}
