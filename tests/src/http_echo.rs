//! A small HTTP/1.1 server for the client tests that shows what it received.
//!
//! It is a fixture, not the thing under test: the client's requests must arrive byte-exact,
//! and only a server that echoes them can show it. Routes:
//! - anything else: 200 with a JSON object `method`, `target`, `headers` (lower-case names,
//!   repeated ones joined with `, `), `body` (lossy UTF-8), `body_len`, `body_sha256`;
//! - `/status/N`: status N with body `status N`;
//! - `/set-cookie?c=COOKIE`: 200 with `Set-Cookie: COOKIE` (repeat `c` for several);
//! - `/redirect/N`: 302 to `/redirect/N-1` with `Set-Cookie: hopN=1`, `/redirect/0` to `/echo`;
//! - `/redirect-to?url=URL&status=N`: N (default 302) to URL;
//! - `/retry/KEY/N?after=S&status=C`: C (default 503) with `Retry-After: S` for the first N calls
//!   of KEY, then 200;
//! - `/hang`: reads the request and answers nothing for 30 s; `/close`: reads it and closes;
//! - `/reject-early`: answers 413 to the head alone and closes without reading the body;
//! - `/gzip`: a gzip-encoded `hello from gzip\n`; `/brotli`: `hello from brotli\n` in br;
//!   `/latin1`: `café` in ISO-8859-1; `/gzip-gzip` and `/gzip-br`: `hello from gzip twice\n`
//!   coded twice, each coding in a `Content-Encoding` field of its own; `/binary-json`: JSON
//!   after binary bytes (a NUL among them);
//! - `/bytes/N`: N bytes (`i % 251`), with status C for `?status=C`; `/truncate/N`: announces N bytes, sends half, closes;
//! - `/chunked-with-length`: `hello` chunked, with a `Content-Length: 3` that framing overrides;
//! - `/slice`: 206 with `hello`, the first 5 of 10 bytes, whatever was asked (a cache's slice);
//! - `/reset/N`: N bytes of a body that ends at the close, then a reset (an aborted server);
//! - `/digest-auth/auth/USER/PASS/ALGORITHM` (MD5 or SHA-256, USER percent-encoded): as
//!   httpbin's, checking the Digest answer's hash; each call kept in
//!   [`EchoServer::digest_calls`]. Query: `challenge=joined` sends `Negotiate, Digest ...,
//!   Basic ...` in one field, `challenge=negotiate` or `challenge=basic` that scheme alone;
//!   `stale=1` answers a right answer to the first nonce `401 ... stale=true` with a new one,
//!   as apache answers one past its life; `userhash=1` offers `userhash=true` (RFC 7616);
//! - `/drip/sse` (`/drip/json`, `/drip/text`): `data: first`, then 30 s later `data: last`,
//!   typed as an event stream (as JSON, as plain text).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;

/// A running echo server (it lives until the test process ends).
#[derive(Debug)]
pub struct EchoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// When each `/retry/KEY/...` call arrived, by KEY.
    pub retry_calls: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    /// The targets of `CONNECT` requests: as a proxy, the server opens a "tunnel" to itself.
    pub tunnels: Arc<Mutex<Vec<String>>>,
    /// The absolute-form targets (`GET http://host/path`) it was sent: as a proxy, it answers
    /// them itself, routed by their path (`target` in the echo is the whole URL).
    pub forwarded: Arc<Mutex<Vec<String>>>,
    /// The calls to `/digest-auth/...`, in their order.
    pub digest_calls: Arc<Mutex<Vec<DigestCall>>>,
}

/// A call to `/digest-auth/...` as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCall {
    /// The scheme of its `Authorization` (empty without one).
    pub scheme: String,
    /// How many body bytes came with it.
    pub body_len: usize,
    /// The status it got.
    pub status: u16,
}

impl EchoServer {
    /// Starts a server on a free 127.0.0.1 port.
    ///
    /// # Panics
    /// When no port can be bound.
    #[must_use]
    pub fn start() -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
        let addr = listener.local_addr().expect("local address");
        let retry_calls = Arc::new(Mutex::new(HashMap::new()));
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let digest_calls = Arc::new(Mutex::new(Vec::new()));
        let seen = Seen {
            tunnels: Arc::clone(&tunnels),
            forwarded: Arc::clone(&forwarded),
            digest_calls: Arc::clone(&digest_calls),
        };
        let calls = Arc::clone(&retry_calls);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (calls, seen) = (Arc::clone(&calls), seen.clone());
                std::thread::spawn(move || serve(stream, &calls, &seen));
            }
        });
        EchoServer {
            addr,
            retry_calls,
            tunnels,
            forwarded,
            digest_calls,
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// What the server saw as a proxy, and its Digest calls (see [`EchoServer`]).
#[derive(Clone)]
struct Seen {
    tunnels: Arc<Mutex<Vec<String>>>,
    forwarded: Arc<Mutex<Vec<String>>>,
    digest_calls: Arc<Mutex<Vec<DigestCall>>>,
}

fn serve(stream: TcpStream, calls: &Mutex<HashMap<String, Vec<Instant>>>, seen: &Seen) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        if method == "CONNECT" {
            seen.tunnels.lock().unwrap().push(target);
            if writer
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .is_err()
            {
                return;
            }
            continue;
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        if target.ends_with("/reject-early") {
            // As a server refusing an upload from its head alone: answer, close, never read
            // the body (the unread bytes make the close a reset).
            let _ = writer.write_all(
                b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large",
            );
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
            loop {
                let mut size = String::new();
                if reader.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                if reader.read_exact(&mut chunk).is_err() {
                    return;
                }
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(len, 0);
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        }
        let origin_form = match target.strip_prefix("http://") {
            Some(rest) => {
                seen.forwarded.lock().unwrap().push(target.clone());
                rest.find('/')
                    .map_or("/", |slash| &rest[slash..])
                    .to_owned()
            }
            None => target.clone(),
        };
        let path = origin_form.split('?').next().unwrap_or("").to_owned();
        let query: Vec<(String, String)> = origin_form
            .split_once('?')
            .map(|(_, q)| url_decode_pairs(q))
            .unwrap_or_default();
        let mut status = 200;
        let mut extra: Vec<(String, String)> = Vec::new();
        let mut content_type = "application/json";
        let reply: Vec<u8>;
        // `.` segments resolved, as nginx resolves them: a target sent as written still routes.
        let segments: Vec<&str> = path
            .trim_start_matches('/')
            .split('/')
            .filter(|s| *s != ".")
            .collect();
        match segments.as_slice() {
            ["status", code] => {
                status = code.parse().unwrap_or(500);
                reply = format!("status {status}").into_bytes();
                content_type = "text/plain";
            }
            ["set-cookie"] => {
                for (k, v) in &query {
                    if k == "c" {
                        extra.push(("Set-Cookie".into(), v.clone()));
                    }
                }
                reply = b"cookies set".to_vec();
                content_type = "text/plain";
            }
            ["redirect", n] => {
                let n: u32 = n.parse().unwrap_or(0);
                status = 302;
                let next = if n == 0 {
                    "/echo".to_owned()
                } else {
                    format!("/redirect/{}", n - 1)
                };
                extra.push(("Location".into(), next));
                extra.push(("Set-Cookie".into(), format!("hop{n}=1; Path=/")));
                reply = Vec::new();
            }
            ["redirect-to"] => {
                status = query
                    .iter()
                    .find(|(k, _)| k == "status")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(302);
                if let Some((_, to)) = query.iter().find(|(k, _)| k == "url") {
                    extra.push(("Location".into(), to.clone()));
                }
                reply = Vec::new();
            }
            ["retry", key, n] => {
                let n: usize = n.parse().unwrap_or(0);
                let after = query
                    .iter()
                    .find(|(k, _)| k == "after")
                    .map_or("1".to_owned(), |(_, v)| v.clone());
                let mut calls = calls.lock().unwrap();
                let seen = calls.entry((*key).to_owned()).or_default();
                seen.push(Instant::now());
                if seen.len() <= n {
                    status = query
                        .iter()
                        .find(|(k, _)| k == "status")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(503);
                    extra.push(("Retry-After".into(), after));
                    reply = b"try later".to_vec();
                } else {
                    reply = b"ok".to_vec();
                }
                content_type = "text/plain";
            }
            ["hang"] => {
                std::thread::sleep(Duration::from_secs(30));
                return;
            }
            ["close"] => return,
            ["brotli"] => {
                reply = vec![
                    27, 17, 0, 224, 37, 21, 210, 216, 114, 16, 67, 52, 137, 28, 98, 171, 124, 244,
                    3,
                ];
                extra.push(("Content-Encoding".into(), "br".into()));
                content_type = "text/plain";
            }
            ["latin1"] => {
                reply = b"caf\xe9".to_vec();
                content_type = "text/plain; charset=iso-8859-1";
            }
            ["gzip"] => {
                reply = vec![
                    31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 203, 72, 205, 201, 201, 87, 72, 43, 202, 207,
                    85, 72, 175, 202, 44, 224, 2, 0, 120, 45, 189, 120, 16, 0, 0, 0,
                ];
                extra.push(("Content-Encoding".into(), "gzip".into()));
                content_type = "text/plain";
            }
            // Coded twice, one Content-Encoding field per coding, as a proxy adding its own
            // coding sends them.
            ["gzip-gzip"] => {
                reply = vec![
                    31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 147, 239, 230, 96, 0, 1, 38, 230, 211, 30,
                    103, 79, 158, 12, 247, 208, 62, 117, 62, 212, 99, 253, 41, 157, 0, 13, 205,
                    243, 62, 126, 79, 153, 24, 14, 31, 41, 153, 39, 6, 84, 1, 0, 50, 229, 155, 113,
                    42, 0, 0, 0,
                ];
                extra.push(("Content-Encoding".into(), "gzip".into()));
                extra.push(("Content-Encoding".into(), "gzip".into()));
                content_type = "text/plain";
            }
            ["gzip-br"] => {
                reply = vec![
                    139, 20, 128, 31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 203, 72, 205, 201, 201, 87, 72,
                    43, 202, 207, 85, 72, 175, 202, 44, 80, 40, 41, 207, 76, 78, 229, 2, 0, 195,
                    196, 116, 158, 22, 0, 0, 0, 3,
                ];
                extra.push(("Content-Encoding".into(), "gzip".into()));
                extra.push(("Content-Encoding".into(), "br".into()));
                content_type = "text/plain";
            }
            // A zstd frame's head before JSON: binary, though it ends as JSON.
            ["binary-json"] => {
                reply = b"\x28\xb5\x2f\xfd\x20\x1c\xe1\x00\x00{\"a\": 1}".to_vec();
            }
            // As httpbin's /digest-auth/auth/USER/PASS/ALGORITHM (MD5 or SHA-256).
            ["digest-auth", "auth", user, pass, algorithm] => {
                let (user, pass) = (decode(user), decode(pass));
                let option = |name: &str| {
                    query
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                };
                let answer = header("authorization").unwrap_or_default();
                let userhash = option("userhash") == Some("1");
                let check = |nonce: &str| {
                    digest_valid(&answer, &method, &target, &user, &pass, algorithm, nonce)
                };
                // With `stale`, the first nonce is "past its life" once answered rightly.
                let stale = option("stale") == Some("1") && check(DIGEST_NONCE);
                let nonce = if stale { FRESH_NONCE } else { DIGEST_NONCE };
                if !stale && (check(DIGEST_NONCE) || check(FRESH_NONCE)) {
                    reply = format!("authenticated {user}").into_bytes();
                } else {
                    status = 401;
                    let digest = format!(
                        "Digest realm=\"{DIGEST_REALM}\", qop=\"auth\", algorithm={algorithm}, \
                         nonce=\"{nonce}\", opaque=\"op4que\"{}{}",
                        if stale { ", stale=true" } else { "" },
                        if userhash { ", userhash=true" } else { "" },
                    );
                    let challenge = match option("challenge") {
                        Some("joined") => format!("Negotiate, {digest}, Basic realm=\"x, y\""),
                        Some("negotiate") => "Negotiate".to_owned(),
                        Some("basic") => "Basic realm=\"x\"".to_owned(),
                        _ => digest,
                    };
                    extra.push(("WWW-Authenticate".into(), challenge));
                    reply = b"who are you?".to_vec();
                }
                seen.digest_calls.lock().unwrap().push(DigestCall {
                    scheme: answer.split(' ').next().unwrap_or("").to_owned(),
                    body_len: body.len(),
                    status,
                });
                content_type = "text/plain";
            }
            ["bytes", n] => {
                let n: usize = n.parse().unwrap_or(0);
                if let Some((_, code)) = query.iter().find(|(k, _)| k == "status") {
                    status = code.parse().unwrap_or(500);
                }
                reply = (0..n).map(|i| (i % 251) as u8).collect();
                content_type = "application/octet-stream";
            }
            ["drip", content] => {
                let kind = match *content {
                    "json" => "application/json",
                    "text" => "text/plain",
                    _ => "text/event-stream",
                };
                let head =
                    format!("HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nConnection: close\r\n\r\n");
                let _ = writer.write_all(head.as_bytes());
                let _ = writer.write_all(b"data: first\n\n");
                let _ = writer.flush();
                std::thread::sleep(Duration::from_secs(30));
                let _ = writer.write_all(b"data: last\n\n");
                return;
            }
            ["reset", n] => {
                let n: usize = n.parse().unwrap_or(0);
                let head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
                let _ = writer.write_all(head.as_bytes());
                let _ = writer.write_all(&vec![7u8; n]);
                let _ = writer.flush();
                std::thread::sleep(Duration::from_millis(300));
                // A close with linger 0 sends a reset, as an aborted worker or proxy does.
                let _ = socket2::SockRef::from(&writer).set_linger(Some(Duration::ZERO));
                return;
            }
            ["slice"] => {
                let _ = writer.write_all(
                    b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/10\r\n\
                      Content-Length: 5\r\nConnection: close\r\n\r\nhello",
                );
                return;
            }
            ["chunked-with-length"] => {
                let _ = writer.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\
                      Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                );
                return;
            }
            ["truncate", n] => {
                let n: usize = n.parse().unwrap_or(0);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nContent-Type: application/octet-stream\r\n\r\n"
                );
                let _ = writer.write_all(head.as_bytes());
                let _ = writer.write_all(&vec![9u8; n / 2]);
                return;
            }
            _ => {
                let mut joined: Vec<(String, String)> = Vec::new();
                for (n, v) in &headers {
                    match joined.iter_mut().find(|(jn, _)| jn == n) {
                        Some((_, jv)) => {
                            jv.push_str(", ");
                            jv.push_str(v);
                        }
                        None => joined.push((n.clone(), v.clone())),
                    }
                }
                let headers: serde_json::Map<String, serde_json::Value> = joined
                    .into_iter()
                    .map(|(n, v)| (n, serde_json::Value::String(v)))
                    .collect();
                reply = serde_json::to_vec(&serde_json::json!({
                    "method": method,
                    "target": target,
                    "headers": headers,
                    "body": String::from_utf8_lossy(&body),
                    "body_len": body.len(),
                    "body_sha256": hex(&sha2::Sha256::digest(&body)),
                }))
                .unwrap();
            }
        }
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            if method == "HEAD" { 0 } else { reply.len() }
        );
        for (n, v) in extra {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        if method != "HEAD" && writer.write_all(&reply).is_err() {
            return;
        }
    }
}

const DIGEST_REALM: &str = "netkit-tests@127.0.0.1";
const DIGEST_NONCE: &str = "6a1b0d3c9e";
/// The nonce after [`DIGEST_NONCE`] went stale.
const FRESH_NONCE: &str = "f7e5h2n0nce";

/// Whether `answer` (an Authorization value) proves `user:pass` for `method target` with
/// `nonce`, as RFC 7616 says a server checks it; the name from `username` (hashed with
/// `userhash=true`) or RFC 7616's `username*` (as lighttpd reads it).
fn digest_valid(
    answer: &str,
    method: &str,
    target: &str,
    user: &str,
    pass: &str,
    algorithm: &str,
    nonce: &str,
) -> bool {
    let Some(params) = answer.strip_prefix("Digest ") else {
        return false;
    };
    let fields: HashMap<&str, &str> = params
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
        .collect();
    let field = |k: &str| fields.get(k).copied().unwrap_or_default();
    let hash = |text: String| match algorithm {
        "SHA-256" => hex(&sha2::Sha256::digest(text.as_bytes())),
        _ => hex(&md5::Md5::digest(text.as_bytes())),
    };
    let ha1 = hash(format!("{user}:{DIGEST_REALM}:{pass}"));
    let ha2 = hash(format!("{method}:{target}"));
    let expected = hash(format!(
        "{ha1}:{nonce}:{}:{}:auth:{ha2}",
        field("nc"),
        field("cnonce")
    ));
    let name = if field("userhash") == "true" {
        hash(format!("{user}:{DIGEST_REALM}"))
    } else {
        user.to_owned()
    };
    let extended = field("username*").strip_prefix("UTF-8''").map(decode);
    (field("username") == name || extended.is_some_and(|e| e == name))
        && field("uri") == target
        && field("nonce") == nonce
        && field("qop") == "auth"
        && field("opaque") == "op4que"
        && field("response") == expected
}

/// Lower-case hex of bytes.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
