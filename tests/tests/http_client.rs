//! The net-http library against real servers on 127.0.0.1: the echo fixture (to see what
//! arrived), nginx and `netkit serve http`.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use net_http::{
    Auth, Client, ClientConfig, DownloadOptions, Error, Part, Retry, Session, TimeoutKind,
};
use netkit_tests::http_echo::{EchoServer, hex};
use netkit_tests::{UNRESOLVABLE_HOST, env, work_dir};
use serde_json::{Value, json};
use sha2::Digest as _;

fn client() -> Client {
    Client::new(ClientConfig::default()).unwrap()
}

fn client_with(change: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut config = ClientConfig::default();
    change(&mut config);
    Client::new(config).unwrap()
}

/// The cookies a request carried, sorted (the jar's order is unspecified).
fn cookies(got: &Value) -> Vec<String> {
    let mut all: Vec<String> = got["headers"]["cookie"]
        .as_str()
        .unwrap_or("")
        .split("; ")
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    all.sort_unstable();
    all
}

fn echo(response: net_http::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().unwrap()
}

#[test]
fn every_method_arrives() {
    let server = EchoServer::start();
    let client = client();
    for method in [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
    ] {
        let got = echo(
            client
                .request(method, &server.url("/echo"))
                .unwrap()
                .send()
                .unwrap(),
        );
        assert_eq!(got["method"], method);
    }
    let head = client
        .request("HEAD", &server.url("/echo"))
        .unwrap()
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
}

#[test]
fn query_parameters_are_encoded() {
    let server = EchoServer::start();
    let got = echo(
        client()
            .get(&server.url("/echo?fixed=1"))
            .unwrap()
            .query("q", "a b&c=d/é")
            .query("empty", "")
            .send()
            .unwrap(),
    );
    assert_eq!(got["target"], "/echo?fixed=1&q=a+b%26c%3Dd%2F%C3%A9&empty=");
}

#[test]
fn json_form_raw_and_file_bodies_arrive_byte_exact() {
    let server = EchoServer::start();
    let client = client();
    let value = json!({"name": "ann", "tags": ["a", "b"], "n": 1.5, "nested": {"ok": true}});
    let got = echo(
        client
            .post(&server.url("/echo"))
            .unwrap()
            .json(&value)
            .unwrap()
            .send()
            .unwrap(),
    );
    assert_eq!(
        serde_json::from_str::<Value>(got["body"].as_str().unwrap()).unwrap(),
        value
    );
    assert_eq!(got["headers"]["content-type"], "application/json");

    let got = echo(
        client
            .post(&server.url("/echo"))
            .unwrap()
            .form(&[("a", "1"), ("b", "x y&z")])
            .send()
            .unwrap(),
    );
    assert_eq!(got["body"], "a=1&b=x+y%26z");
    assert_eq!(
        got["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );

    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let got = echo(
        client
            .request("PUT", &server.url("/echo"))
            .unwrap()
            .raw(data.clone())
            .send()
            .unwrap(),
    );
    assert_eq!(got["body_sha256"], hex(&sha2::Sha256::digest(&data)));

    let path = work_dir().join("http-client-upload.bin");
    std::fs::write(&path, &data).unwrap();
    let got = echo(
        client
            .post(&server.url("/echo"))
            .unwrap()
            .file(&path)
            .send()
            .unwrap(),
    );
    assert_eq!(got["body_len"], data.len());
    assert_eq!(got["body_sha256"], hex(&sha2::Sha256::digest(&data)));
    // The type follows the extension (as httpie), unless a header says otherwise.
    assert_eq!(got["headers"]["content-type"], "application/octet-stream");
    let json_file = work_dir().join("http-client-upload.json");
    std::fs::write(&json_file, b"{}").unwrap();
    let request = |extra: Option<(&str, &str)>| {
        let mut request = client.post(&server.url("/echo")).unwrap().file(&json_file);
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        echo(request.send().unwrap())
    };
    assert_eq!(request(None)["headers"]["content-type"], "application/json");
    let got = request(Some(("Content-Type", "text/plain")));
    assert_eq!(got["headers"]["content-type"], "text/plain");

    // A pipe has no length to announce: its bytes go chunked, every one of them.
    let fifo = work_dir().join("http-client-upload.fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let writer = {
        let (fifo, data) = (fifo.clone(), data.clone());
        std::thread::spawn(move || std::fs::write(fifo, data).unwrap())
    };
    let got = echo(
        client
            .post(&server.url("/echo"))
            .unwrap()
            .file(&fifo)
            .send()
            .unwrap(),
    );
    writer.join().unwrap();
    assert_eq!(got["headers"]["transfer-encoding"], "chunked");
    assert_eq!(got["body_len"], data.len());
    assert_eq!(got["body_sha256"], hex(&sha2::Sha256::digest(&data)));

    // No body at all: a POST still says so in Content-Length, as curl and requests do.
    let got = echo(client.post(&server.url("/echo")).unwrap().send().unwrap());
    assert_eq!(got["headers"]["content-length"], "0", "{got}");
    assert!(got["headers"].get("transfer-encoding").is_none(), "{got}");

    // A Content-Length of the user's that the body does not have: refused, where ureq
    // waited for ever at full CPU for bytes that would never come (or sent part of it).
    for (length, body) in [
        ("100", "a=1"),
        ("0", "a=1"),
        ("5", ""),
        ("x", "a"),
        ("+1", "a"),
    ] {
        let err = client
            .post(&server.url("/echo"))
            .unwrap()
            .header("Content-Length", length)
            .raw(body)
            .send()
            .expect_err(length);
        assert!(matches!(err, net_http::Error::BadRequest(_)), "{err}");
        assert!(err.to_string().contains("Content-Length"), "{err}");
    }
    let got = client
        .post(&server.url("/echo"))
        .unwrap()
        .header("Content-Length", "3")
        .raw("a=1")
        .send()
        .unwrap();
    assert_eq!(echo(got)["body_len"], 3);
    // A form: its length is known once built; chunked, none is.
    let form = || {
        client
            .post(&server.url("/echo"))
            .unwrap()
            .multipart(vec![Part::Text {
                name: "a".into(),
                value: "1".into(),
            }])
    };
    let built = form().preview().body.unwrap().len().to_string();
    let got = form().header("Content-Length", &built).send().unwrap();
    assert_eq!(echo(got)["body_len"].to_string(), built);
    for request in [
        form().header("Content-Length", "5"),
        client
            .post(&server.url("/echo"))
            .unwrap()
            .raw("abc")
            .chunked()
            .header("Content-Length", "3"),
    ] {
        let err = request.send().expect_err("refused");
        assert!(matches!(err, net_http::Error::BadRequest(_)), "{err}");
    }
    // A pipe that ends before the length given: an error, at once.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, b"abc").unwrap())
    };
    let err = client
        .request("PUT", &server.url("/echo"))
        .unwrap()
        .header("Content-Length", "10")
        .file(&fifo)
        .send()
        .expect_err("a short pipe");
    writer.join().unwrap();
    assert!(
        err.to_string()
            .contains("7 bytes short of its Content-Length"),
        "{err}"
    );
}

#[test]
fn multipart_carries_fields_and_files() {
    let server = EchoServer::start();
    let path = work_dir().join("http-client-part.txt");
    std::fs::write(&path, b"file contents\n").unwrap();
    let parts = vec![
        Part::Text {
            name: "title".into(),
            value: "hello".into(),
        },
        Part::File {
            name: "doc".into(),
            path: path.clone(),
            content_type: None,
        },
        Part::File {
            name: "raw".into(),
            path: path.clone(),
            content_type: Some("application/x-netkit".into()),
        },
    ];
    let got = echo(
        client()
            .post(&server.url("/echo"))
            .unwrap()
            .multipart(parts)
            .send()
            .unwrap(),
    );
    let content_type = got["headers"]["content-type"].as_str().unwrap();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
    let body = got["body"].as_str().unwrap();
    assert!(body.contains("name=\"title\"\r\n\r\nhello\r\n"), "{body}");
    assert!(
        body.contains("name=\"doc\"; filename=\"http-client-part.txt\""),
        "{body}"
    );
    assert!(body.contains("\r\n\r\nfile contents\n\r\n"), "{body}");
    assert!(
        body.contains("filename=\"http-client-part.txt\"\r\nContent-Type: text/plain\r\n"),
        "the type guessed from the extension: {body}"
    );
    assert!(
        body.contains("name=\"raw\"; filename=\"http-client-part.txt\"\r\nContent-Type: application/x-netkit\r\n"),
        "the type asked for: {body}"
    );

    let bad = vec![Part::File {
        name: "raw".into(),
        path,
        content_type: Some("not a type".into()),
    }];
    let err = client()
        .post(&server.url("/echo"))
        .unwrap()
        .multipart(bad)
        .send()
        .unwrap_err();
    assert!(err.to_string().contains("not a MIME type"), "{err}");
}

#[test]
fn a_previewed_multipart_body_is_the_one_sent() {
    let server = EchoServer::start();
    let path = work_dir().join("http-client-shown-part.txt");
    std::fs::write(&path, b"shown\n").unwrap();
    let request = client().post(&server.url("/echo")).unwrap().multipart(vec![
        Part::Text {
            name: "title".into(),
            value: "hello".into(),
        },
        Part::File {
            name: "doc".into(),
            path,
            content_type: None,
        },
    ]);
    let preview = request.preview();
    let header = |name: &str| {
        preview
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let shown = String::from_utf8(preview.body.clone().expect("the body is shown")).unwrap();
    assert!(
        header("content-type").starts_with("multipart/form-data; boundary=")
            && header("content-length") == shown.len().to_string()
            && shown.contains("filename=\"http-client-shown-part.txt\"\r\nContent-Type: text/plain\r\n\r\nshown\n\r\n"),
        "{preview:?}"
    );
    // Each form draws its own boundary: what was shown must be what goes out.
    let got = echo(request.send().unwrap());
    assert_eq!(got["headers"]["content-type"], header("content-type"));
    assert_eq!(got["body"], shown.as_str());
    // Files over 16 MiB are not read to be shown: they stay streamed from disk.
    let big = work_dir().join("http-client-big-part.bin");
    std::fs::write(&big, vec![b'x'; (16 << 20) + 1]).unwrap();
    let request = client()
        .post(&server.url("/echo"))
        .unwrap()
        .multipart(vec![Part::File {
            name: "big".into(),
            path: big,
            content_type: None,
        }]);
    assert!(request.preview().body.is_none());
    let got = echo(request.send().unwrap());
    let length: u64 = got["headers"]["content-length"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(length > 16 << 20, "{length}");
}

#[test]
fn digest_answers_for_the_path_as_sent() {
    let server = EchoServer::start();
    let client = client_with(|c| c.path_as_is = true);
    let url = format!("{}/digest-auth/./auth/ann/s3cret/MD5", server.url(""));
    let response = client
        .get(&url)
        .unwrap()
        .auth(Auth::Digest {
            user: "ann".into(),
            password: "s3cret".into(),
        })
        .send()
        .unwrap();
    assert_eq!(
        (response.status(), response.text().unwrap().as_str()),
        (200, "authenticated ann")
    );
}

#[test]
fn odd_locations_and_tokens_as_curl_takes_them() {
    use std::io::{BufRead as _, Write as _};
    // Answers `/latin` with a Latin-1 Location, `/empty` with an empty one, anything else
    // with its own request-target.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(3) {
            let mut stream = stream.unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&stream)
                .read_line(&mut line)
                .unwrap();
            let target = line.split(' ').nth(1).unwrap_or_default().to_owned();
            let head: &[u8] = match target.as_str() {
                "/latin" => b"HTTP/1.1 302 Found\r\nLocation: /caf\xe9\r\n",
                "/empty" => b"HTTP/1.1 302 Found\r\nLocation: \r\n",
                _ => b"HTTP/1.1 200 OK\r\n",
            };
            let _ = stream.write_all(head);
            let _ = write!(
                stream,
                "Content-Length: {}\r\nConnection: close\r\n\r\n{target}",
                target.len()
            );
        }
    });
    let client = client_with(|c| c.max_redirects = 5);
    let response = client.get(&format!("{url}/latin")).unwrap().send().unwrap();
    assert_eq!(
        (response.status(), response.text().unwrap().as_str()),
        (200, "/caf%E9")
    );
    // An empty Location is no redirect: the 3xx is the answer, not 6 requests and an error.
    let response = client.get(&format!("{url}/empty")).unwrap().send().unwrap();
    assert_eq!((response.status(), response.history().len()), (302, 0));
    // A token ureq cannot send is refused here, not blamed on the server.
    let refused = client
        .get(&format!("{url}/never"))
        .unwrap()
        .auth(Auth::Bearer("t\u{f8}k".into()))
        .send();
    match refused {
        Err(Error::BadRequest(reason)) => assert!(reason.contains("outside ASCII"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn path_as_is_keeps_the_path_until_a_redirect() {
    let server = EchoServer::start();
    let client = client_with(|c| {
        c.path_as_is = true;
        c.max_redirects = 5;
    });
    let raw = format!("{}/x/../echo", server.url(""));
    let request = client.get(&raw).unwrap();
    assert!(request.preview().url.ends_with("/x/../echo"));
    let got = echo(request.send().unwrap());
    assert_eq!(got["target"], "/x/../echo");
    // After a redirect the path is the Location's, resolved: not the one written.
    let redirected = format!("{}/redirect-to?url=/y/../echo", server.url(""));
    let got = echo(client.get(&redirected).unwrap().send().unwrap());
    assert_eq!(got["target"], "/echo");
}

#[test]
fn headers_and_credentials() {
    let server = EchoServer::start();
    let client = client();
    let got = echo(
        client
            .get(&server.url("/echo"))
            .unwrap()
            .header("X-One", "1")
            .header("X-Multi", "a")
            .header("X-Multi", "b")
            .basic_auth("user", "pa:ss")
            .send()
            .unwrap(),
    );
    assert_eq!(got["headers"]["x-one"], "1");
    assert_eq!(got["headers"]["x-multi"], "a, b");
    assert_eq!(got["headers"]["authorization"], "Basic dXNlcjpwYTpzcw==");
    assert!(
        got["headers"]["user-agent"]
            .as_str()
            .unwrap()
            .starts_with("netkit/")
    );
    let got = echo(
        client
            .get(&server.url("/echo"))
            .unwrap()
            .bearer("tok.en")
            .send()
            .unwrap(),
    );
    assert_eq!(got["headers"]["authorization"], "Bearer tok.en");
}

#[test]
fn digest_auth_answers_the_challenge_as_curl_does() {
    let server = EchoServer::start();
    let client = client();
    for algorithm in ["MD5", "SHA-256"] {
        let url = server.url(&format!("/digest-auth/auth/ann/s3cret/{algorithm}?q=1"));
        for (password, status, body) in [
            ("s3cret", 200, "authenticated ann"),
            ("wrong", 401, "who are you?"),
        ] {
            let auth = Auth::Digest {
                user: "ann".into(),
                password: password.into(),
            };
            let response = client
                .post(&url)
                .unwrap()
                .auth(auth)
                .json(&serde_json::json!({"sent": "twice"}))
                .unwrap()
                .send()
                .unwrap();
            assert_eq!(
                (response.status(), response.text().unwrap().as_str()),
                (status, body),
                "{algorithm} {password}"
            );
            // The same server, the same credentials, through curl --digest.
            let curl = std::process::Command::new("curl")
                .args(["-s", "--digest", "-u", &format!("ann:{password}"), &url])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&curl.stdout),
                body,
                "curl {algorithm}"
            );
        }
    }
}

/// The calls the server saw, as (scheme of the Authorization, body bytes, status), taken.
fn digest_calls(server: &EchoServer) -> Vec<(String, usize, u16)> {
    std::mem::take(&mut *server.digest_calls.lock().unwrap())
        .into_iter()
        .map(|c| (c.scheme, c.body_len, c.status))
        .collect()
}

fn digest_post(url: &str, user: &str, password: &str, body: &[u8]) -> net_http::Response {
    client()
        .post(url)
        .unwrap()
        .auth(Auth::Digest {
            user: user.into(),
            password: password.into(),
        })
        .body(body, "application/octet-stream")
        .send()
        .unwrap()
}

/// What `curl --digest -u ann:s3cret` POSTing `body` to `url` prints.
fn curl_digest_post(url: &str, body: &[u8]) -> String {
    let body_file = work_dir().join(format!("digest-body-{}", body.len()));
    std::fs::write(&body_file, body).unwrap();
    let curl = std::process::Command::new("curl")
        .args(["-s", "--digest", "-u", "ann:s3cret", "--data-binary"])
        .arg(format!("@{}", body_file.display()))
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&curl.stdout).into_owned()
}

#[test]
fn digest_probes_without_the_body_then_sends_it_once_as_curl() {
    let server = EchoServer::start();
    let url = server.url("/digest-auth/auth/ann/s3cret/MD5");
    let body = vec![b'x'; 100_000];
    let response = digest_post(&url, "ann", "s3cret", &body);
    assert_eq!(
        (response.status(), response.text().unwrap().as_str()),
        (200, "authenticated ann")
    );
    let ours = digest_calls(&server);
    assert_eq!(
        ours,
        [("".into(), 0, 401), ("Digest".into(), body.len(), 200)]
    );
    // curl --digest: the same two calls, the first with `Content-Length: 0`.
    assert_eq!(curl_digest_post(&url, &body), "authenticated ann");
    assert_eq!(digest_calls(&server), ours);
}

#[test]
fn a_stale_nonce_is_answered_again_with_the_new_one_as_curl() {
    let server = EchoServer::start();
    let url = server.url("/digest-auth/auth/ann/s3cret/SHA-256?stale=1");
    let response = digest_post(&url, "ann", "s3cret", b"part1 part2");
    assert_eq!(
        (response.status(), response.text().unwrap().as_str()),
        (200, "authenticated ann")
    );
    let ours = digest_calls(&server);
    assert_eq!(
        ours,
        [
            ("".into(), 0, 401),
            ("Digest".into(), 11, 401),
            ("Digest".into(), 11, 200)
        ]
    );
    // curl --digest: the same calls.
    assert_eq!(curl_digest_post(&url, b"part1 part2"), "authenticated ann");
    assert_eq!(digest_calls(&server), ours);
    // A wrong password is no stale nonce: handed back, not asked again.
    let response = digest_post(&url, "ann", "wrong", b"x");
    assert_eq!(response.status(), 401);
    assert_eq!(digest_calls(&server).len(), 2);
}

#[test]
fn a_digest_name_past_ascii_goes_as_rfc_7616_writes_it() {
    let server = EchoServer::start();
    // `username*` (RFC 7616 3.4.4), or the hashed name when the server offers it.
    for query in ["", "?userhash=1"] {
        let url = server.url(&format!("/digest-auth/auth/j%C3%B6rg/p%C3%A4ss/MD5{query}"));
        let response = client()
            .get(&url)
            .unwrap()
            .auth(Auth::Digest {
                user: "j\u{f6}rg".into(),
                password: "p\u{e4}ss".into(),
            })
            .send()
            .unwrap();
        assert_eq!(
            (response.status(), response.text().unwrap().as_str()),
            (200, "authenticated j\u{f6}rg"),
            "{query}"
        );
    }
}

#[test]
fn responses_expose_status_headers_and_bodies() {
    let server = EchoServer::start();
    let client = client();
    let response = client
        .get(&server.url("/set-cookie?c=a%3D1&c=b%3D2"))
        .unwrap()
        .send()
        .unwrap();
    assert_eq!((response.status(), response.version()), (200, "HTTP/1.1"));
    assert_eq!(
        response.header_all("set-cookie").collect::<Vec<_>>(),
        ["a=1", "b=2"]
    );
    assert_eq!(response.text().unwrap(), "cookies set");

    let response = client
        .get(&server.url("/status/404"))
        .unwrap()
        .send()
        .unwrap();
    assert_eq!((response.status(), response.reason()), (404, "Not Found"));
    match response.error_for_status() {
        Err(Error::Status {
            status: 404,
            excerpt,
            url,
            ..
        }) => {
            assert_eq!(excerpt, "status 404");
            assert!(url.ends_with("/status/404"));
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    // A 500 whose body stalls after its first bytes: told at once, not after the read
    // timeout, and what the server put in it does not reach a terminal or log raw.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stalling = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0; 4096];
        let _ = std::io::Read::read(&mut conn, &mut request);
        let head = "HTTP/1.1 500 Oops\r\nContent-Length: 1000\r\n\r\n";
        let body = "bad \u{1b}[2J \u{202e}thing";
        std::io::Write::write_all(&mut conn, format!("{head}{body}").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_secs(8));
    });
    let started = Instant::now();
    let response = client
        .get(&format!("http://{addr}/"))
        .unwrap()
        .send()
        .unwrap();
    match response.error_for_status() {
        Err(Error::Status { excerpt, .. }) => {
            assert_eq!(excerpt, "bad \\u{1b}[2J \\u{202e}thing");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    stalling.join().unwrap();
    // nginx's error page spans lines; the error is shown on one.
    let error = client
        .get(&format!("{}/status/404", env("NETKIT_TEST_NGINX_URL")))
        .unwrap()
        .send()
        .unwrap()
        .error_for_status()
        .unwrap_err()
        .to_string();
    assert!(
        !error.contains('\n') && error.contains("answered 404 Not Found: <html> <head>"),
        "{error}"
    );
    let gz = client.get(&server.url("/gzip")).unwrap().send().unwrap();
    // The headers stay as the server sent them (ureq's decoding dropped these two).
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.content_length(), Some(36));
    assert_eq!(gz.text().unwrap(), "hello from gzip\n");
    // A body-less answer that names gzip (a HEAD's, a 304's) is empty, not a failed decoding.
    let head = client.request("HEAD", &server.url("/gzip")).unwrap();
    assert_eq!(head.send().unwrap().bytes().unwrap(), b"");
    let br = client.get(&server.url("/brotli")).unwrap().send().unwrap();
    assert_eq!(br.text().unwrap(), "hello from brotli\n");
    // Codings in two fields are one list, undone in order (only the first was: gzip bytes
    // came out, or a false "gzip decoding failed").
    for path in ["/gzip-gzip", "/gzip-br"] {
        let twice = client.get(&server.url(path)).unwrap().send().unwrap();
        assert_eq!(twice.text().unwrap(), "hello from gzip twice\n", "{path}");
    }

    let big = client_with(|c| c.body_limit = 1 << 20)
        .get(&server.url("/bytes/2000000"))
        .unwrap()
        .send()
        .unwrap();
    assert!(matches!(big.bytes(), Err(Error::BodyTooLarge { .. })));
    let streamed = client
        .get(&server.url("/bytes/2000000"))
        .unwrap()
        .send()
        .unwrap();
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut streamed.reader(), &mut all).unwrap();
    assert_eq!(all.len(), 2_000_000);
}

#[test]
fn nginx_gzip_is_decoded() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    let text = "compress me please ".repeat(500);
    std::fs::write(root.join("gz.txt"), &text).unwrap();
    let response = client()
        .get(&format!("{}/gz.txt", env("NETKIT_TEST_NGINX_URL")))
        .unwrap()
        .send()
        .unwrap();
    // nginx compresses only when asked; the body arrives decoded.
    assert_eq!(response.text().unwrap(), text);
    let server = EchoServer::start();
    let got = echo(client().get(&server.url("/echo")).unwrap().send().unwrap());
    assert!(
        got["headers"]["accept-encoding"]
            .as_str()
            .unwrap()
            .contains("gzip")
    );
}

#[test]
fn a_request_header_replaces_the_session_one_and_debug_output_keeps_secrets() {
    let server = EchoServer::start();
    let path = work_dir().join("http-client-session-headers.json");
    let _ = std::fs::remove_file(&path);
    let mut session = Session::open(client(), &path).unwrap();
    session.set_header("X-Api-Version", "1");
    session.set_header("X-Kept", "k");
    // As requests merges them: the request's alone (both went, the session's first, and
    // servers read that one); a request's own repeats all go.
    let got = echo(
        session
            .request("GET", &server.url("/echo"))
            .unwrap()
            .header("x-api-version", "2")
            .header("X-Twice", "a")
            .header("X-Twice", "b")
            .send()
            .unwrap(),
    );
    assert_eq!(got["headers"]["x-api-version"], "2");
    assert_eq!(got["headers"]["x-twice"], "a, b");
    assert_eq!(got["headers"]["x-kept"], "k");

    // `{:?}` is how a response reaches a log: no cookie, no token in it.
    let request = session
        .request("GET", &server.url("/set-cookie?c=sid%3Dtopsecret"))
        .unwrap()
        .bearer("tokensecret");
    let preview = request.preview();
    let response = request.send().unwrap();
    let shown = format!("{response:?} {preview:?}");
    assert!(
        !shown.contains("sid=topsecret") && !shown.contains("tokensecret"),
        "{shown}"
    );
    assert!(
        shown.contains("set-cookie") && shown.contains("X-Kept"),
        "{shown}"
    );
}

#[test]
fn a_cookie_given_to_a_session_is_the_servers_to_change_or_delete_as_httpie_keeps_it() {
    let server = EchoServer::start();
    let path = work_dir().join("http-client-session-cookie-item.json");
    let _ = std::fs::remove_file(&path);
    let session = Session::open(client(), &path).unwrap();
    assert!(!Session::keeps_header("Cookie"));
    session.set_cookies(&server.url("/"), "x=1; y=2").unwrap();
    let cookie = |request: net_http::Request| {
        let got = echo(request.send().unwrap());
        got["headers"]["cookie"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let get = |path: &str| session.request("GET", &server.url(path)).unwrap();
    assert_eq!(cookie(get("/echo")), "x=1; y=2");
    // The server changes one, then deletes it (a logout).
    get("/set-cookie?c=x%3D3").send().unwrap();
    assert_eq!(cookie(get("/echo")), "x=3; y=2");
    get("/set-cookie?c=x%3D%3B%20Max-Age%3D0").send().unwrap();
    assert_eq!(cookie(get("/echo")), "y=2");
    // A Cookie field given to one request wins over the jar's cookie of that name, sent once.
    assert_eq!(cookie(get("/echo").header("Cookie", "y=9")), "y=9");
    session.save().unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(
        !saved.to_ascii_lowercase().contains("\"cookie\""),
        "{saved}"
    );
    // Edited by hand and saved with a byte-order mark: still the session.
    std::fs::write(&path, format!("\u{feff}{saved}")).unwrap();
    let reopened = Session::open(client(), &path).unwrap();
    let got = echo(
        reopened
            .request("GET", &server.url("/echo"))
            .unwrap()
            .send()
            .unwrap(),
    );
    assert_eq!(got["headers"]["cookie"], "y=2");
    // A pair with no name is no cookie: kept, it made the session file unreadable.
    session.set_cookies(&server.url("/"), "=v; ok=1").unwrap();
    session.save().unwrap();
    Session::open(client(), &path).expect("the session file still reads");
}

#[test]
fn cookie_expiry_dates_in_lenient_forms_are_obeyed_as_rfc_6265_reads_them() {
    // Forms the strict parser dropped, making each cookie a session cookie that the session
    // file kept for ever (QA clocks finding 1).
    let server = EchoServer::start();
    let path = work_dir().join("http-client-session-lenient-expires.json");
    let _ = std::fs::remove_file(&path);
    let session = Session::open(client(), &path).unwrap();
    let set = |cookie: &str| {
        let query: String = cookie
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        session
            .request("GET", &server.url(&format!("/set-cookie?c={query}")))
            .unwrap()
            .send()
            .unwrap();
    };
    let sent = || {
        cookies(&echo(
            session
                .request("GET", &server.url("/echo"))
                .unwrap()
                .send()
                .unwrap(),
        ))
    };
    for past in [
        "Sat, 01 Jan 2000 00:00:00 UTC",
        "Sat, 1 Jan 2000 00:00:00 GMT",
        "Sat, 01 Jan 2000 00:00:00 +0000",
        "Sat, 01 Jan 2000 00:00:00",
        "sat, 01 jan 2000 00:00:00 gmt",
        "Sat, 01 Jan 2000 0:0:0 GMT",
    ] {
        set("tok=secret");
        assert_eq!(sent(), ["tok=secret"]);
        set(&format!("tok=secret; Expires={past}"));
        assert_eq!(sent(), Vec::<String>::new(), "deleted with {past}");
    }
    set("later=1; Expires=fri, 1 jan 2100 0:0:0 UTC");
    // Max-Age wins over Expires; a date the algorithm refuses is no expiry at all.
    set("kept=1; Max-Age=3600; Expires=Sat, 1 Jan 2000 0:0:0 UTC");
    set("session=1; Expires=some day");
    assert_eq!(sent(), ["kept=1", "later=1", "session=1"]);
    session.save().unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains("2100-01-01T00:00:00Z"), "{saved}");
}

#[test]
fn cookies_follow_the_rules_and_survive_the_session_file() {
    let server = EchoServer::start();
    let path = work_dir().join("http-client-session.json");
    let _ = std::fs::remove_file(&path);
    let session = Session::open(client(), &path).unwrap();
    let set = "/set-cookie?c=sid%3Dabc&c=persist%3D1%3B%20Max-Age%3D3600&c=gone%3D1%3B%20Max-Age%3D0\
               &c=other%3D1%3B%20Domain%3Dexample.com&c=deep%3D1%3B%20Path%3D%2Fdeep";
    session
        .request("GET", &server.url(set))
        .unwrap()
        .send()
        .unwrap();
    let got = echo(
        session
            .request("GET", &server.url("/echo"))
            .unwrap()
            .send()
            .unwrap(),
    );
    assert_eq!(cookies(&got), ["persist=1", "sid=abc"]);
    let got = echo(
        session
            .request("GET", &server.url("/deep/x"))
            .unwrap()
            .send()
            .unwrap(),
    );
    assert_eq!(cookies(&got), ["deep=1", "persist=1", "sid=abc"]);
    // In one order every time: the longer path first (RFC 6265 5.4), then by name.
    assert_eq!(got["headers"]["cookie"], "deep=1; persist=1; sid=abc");
    // A Cookie header given joins the jar's in one field (two would lose one at many servers).
    let got = echo(
        session
            .request("GET", &server.url("/echo"))
            .unwrap()
            .header("Cookie", "mine=1")
            .send()
            .unwrap(),
    );
    assert_eq!(got["headers"]["cookie"], "mine=1; persist=1; sid=abc");
    session.save().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let reloaded = Session::open(client(), &path).unwrap();
    let got = echo(
        reloaded
            .request("GET", &server.url("/echo"))
            .unwrap()
            .send()
            .unwrap(),
    );
    assert_eq!(cookies(&got), ["persist=1", "sid=abc"]);
    let fresh = echo(client().get(&server.url("/echo")).unwrap().send().unwrap());
    assert!(fresh["headers"].get("cookie").is_none());

    // Sessions on clones of one client keep their cookies apart.
    let shared = client();
    let ann = Session::open(shared.clone(), &path).unwrap();
    let bob_path = work_dir().join("http-client-bob.json");
    let _ = std::fs::remove_file(&bob_path);
    let bob = Session::open(shared.clone(), bob_path).unwrap();
    bob.request("GET", &server.url("/set-cookie?c=who%3Dbob"))
        .unwrap()
        .send()
        .unwrap();
    let sent = |session: &Session| {
        cookies(&echo(
            session
                .request("GET", &server.url("/echo"))
                .unwrap()
                .send()
                .unwrap(),
        ))
    };
    assert_eq!(sent(&ann), ["persist=1", "sid=abc"]);
    assert_eq!(sent(&bob), ["who=bob"]);

    // A session file that is a link is written where it leads; the link stays.
    let kept = work_dir().join("http-client-dotfiles-session.json");
    let link = work_dir().join("http-client-linked-session.json");
    let _ = std::fs::remove_file(&link);
    std::fs::write(&kept, "{}").unwrap();
    std::os::unix::fs::symlink(&kept, &link).unwrap();
    Session::open(client(), &link).unwrap().save().unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert!(
        std::fs::read_to_string(&kept)
            .unwrap()
            .contains("\"cookies\"")
    );
}

#[test]
fn a_redirect_to_another_origin_carries_no_credentials() {
    let (here, there) = (EchoServer::start(), EchoServer::start());
    let client = client();
    let via = |server: &EchoServer, status: u16, method: &str| {
        let to = server.url("/echo");
        let url = format!("{}?status={status}&url={to}", here.url("/redirect-to"));
        let request = client.request(method, &url).unwrap();
        echo(
            request
                .header("Authorization", "Bearer mine")
                .header("Cookie", "k=v")
                .header("X-Kept", "1")
                .basic_auth("ann", "pw")
                .json(&serde_json::json!({"a": 1}))
                .unwrap()
                .send()
                .unwrap(),
        )
    };
    // Another port is another origin: the caller's Authorization and Cookie stay behind, as
    // with curl and requests; other headers go on.
    let got = via(&there, 307, "PUT");
    assert_eq!(got["method"], "PUT");
    assert_eq!(got["body"], "{\"a\":1}");
    assert!(got["headers"]["authorization"].is_null(), "{got}");
    assert!(got["headers"]["cookie"].is_null(), "{got}");
    assert_eq!(got["headers"]["x-kept"], "1");
    // The same origin keeps them; a 303 turns to a GET without the body or its type.
    let got = via(&here, 303, "POST");
    assert_eq!(got["method"], "GET");
    assert_eq!(got["headers"]["authorization"], "Bearer mine");
    assert_eq!(got["headers"]["cookie"], "k=v");
    assert!(got["headers"]["content-type"].is_null(), "{got}");
    assert_eq!(got["body_len"], 0);
    // A Location in raw UTF-8 is followed, percent-encoded, as curl follows it.
    let url = format!(
        "{}?status=302&url=%2Fecho%3Fq%3Dcaf%C3%A9",
        here.url("/redirect-to")
    );
    let got = echo(client.get(&url).unwrap().send().unwrap());
    assert_eq!(got["target"], "/echo?q=caf%C3%A9");
    // A HEAD stays a HEAD after a 303, as curl and httpie keep it.
    let url = format!(
        "{}?status=303&url={}",
        here.url("/redirect-to"),
        here.url("/echo")
    );
    let response = client.request("HEAD", &url).unwrap().send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.redirected_request().unwrap().method, "HEAD");
}

#[test]
fn a_redirect_to_another_host_takes_its_netrc_credentials() {
    let server = EchoServer::start();
    let netrc = net_http::Netrc::parse(
        "machine 127.0.0.1 login ann password a1\nmachine localhost login lee password l2\n",
    )
    .unwrap();
    let elsewhere = server.url("/echo").replace("127.0.0.1", "localhost");
    let hop = format!("{}?url={elsewhere}", server.url("/redirect-to"));
    let send = |netrc: Option<&net_http::Netrc>| {
        let mut request = client().get(&hop).unwrap().basic_auth("bob", "pw");
        if let Some(netrc) = netrc {
            request = request.netrc(netrc.clone());
        }
        echo(request.send().unwrap())
    };
    // "lee:l2": the new host's entry, never the caller's credentials for the first one.
    assert_eq!(
        send(Some(&netrc))["headers"]["authorization"],
        "Basic bGVlOmwy"
    );
    assert!(send(None)["headers"]["authorization"].is_null());
    let none_there = net_http::Netrc::parse("machine 127.0.0.1 login ann password a1").unwrap();
    assert!(send(Some(&none_there))["headers"]["authorization"].is_null());
}

#[test]
fn redirects_are_followed_limited_or_returned() {
    let server = EchoServer::start();
    let client = client();
    let response = client
        .get(&server.url("/redirect/3"))
        .unwrap()
        .send()
        .unwrap();
    assert!(response.url().ends_with("/echo"), "{}", response.url());
    // Every hop is kept, oldest first, as requests' `history`.
    let hops: Vec<(u16, String, Option<&str>)> = response
        .history()
        .iter()
        .map(|r| (r.status(), server_path(r.url()), r.header("location")))
        .collect();
    assert_eq!(
        hops,
        [
            (302, "/redirect/3".into(), Some("/redirect/2")),
            (302, "/redirect/2".into(), Some("/redirect/1")),
            (302, "/redirect/1".into(), Some("/redirect/0")),
            (302, "/redirect/0".into(), Some("/echo")),
        ]
    );
    // Each request a redirect led to is kept with its response, as it was sent.
    let sent: Vec<Option<(String, String)>> = response
        .history()
        .iter()
        .chain([&response])
        .map(|r| {
            r.redirected_request().map(|p| {
                let cookie = p.headers.iter().find(|(n, _)| n == "Cookie");
                (
                    server_path(&p.url),
                    cookie.map(|c| c.1.clone()).unwrap_or_default(),
                )
            })
        })
        .collect();
    assert_eq!(sent[0], None, "the first request is the caller's");
    assert_eq!(sent[1], Some(("/redirect/2".into(), "hop3=1".into())));
    assert_eq!(sent[4].as_ref().map(|s| s.0.as_str()), Some("/echo"));
    let got = echo(response);
    // Every hop's cookie was kept and sent on.
    assert_eq!(cookies(&got), ["hop0=1", "hop1=1", "hop2=1", "hop3=1"]);
    let limited = client_with(|c| c.max_redirects = 2)
        .get(&server.url("/redirect/3"))
        .unwrap()
        .send();
    assert!(
        matches!(&limited, Err(Error::TooManyRedirects { max: 2, url }) if url.ends_with("/redirect/3")),
        "the URL asked for is named: {limited:?}"
    );
    let unfollowed = client_with(|c| c.max_redirects = 0)
        .get(&server.url("/redirect/3"))
        .unwrap()
        .send()
        .unwrap();
    assert_eq!(
        (unfollowed.status(), unfollowed.header("location")),
        (302, Some("/redirect/2"))
    );
    let mut nginx = client
        .get(&format!("{}/redirect/4", env("NETKIT_TEST_NGINX_URL")))
        .unwrap()
        .send()
        .unwrap();
    // nginx's redirects carry a small HTML page: each hop's body is kept.
    let history = nginx.take_history();
    assert_eq!(history.len(), 4);
    for hop in history {
        let page = hop.text().unwrap();
        assert!(page.contains("302 Found"), "{page}");
    }
    assert!(nginx.history().is_empty());
    assert_eq!(nginx.text().unwrap(), "hello from nginx\n");
}

/// The path (and query) of a URL on a test server.
fn server_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/')
        .map_or("/".into(), |at| rest[at..].to_owned())
}

#[test]
fn timeouts_fire_on_a_server_that_never_answers() {
    let server = EchoServer::start();
    let client = client_with(|c| c.read_timeout = Duration::from_millis(700));
    let started = Instant::now();
    let result = client.get(&server.url("/hang")).unwrap().send();
    // How long it waited is named (it said only "per read"), never a command line's flag.
    // Which limit ran out is typed, for a caller to name the one to raise.
    match &result {
        Err(Error::Timeout { what, kind, .. }) => {
            assert_eq!(what, "the server sent nothing for 0.7 s");
            assert_eq!(*kind, TimeoutKind::Read);
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // A listener that never accepts: the connection itself hangs in the backlog... or the
    // total timeout catches it.
    let total = client_with(|c| c.timeout = Some(Duration::from_millis(500)));
    let started = Instant::now();
    let result = total.get(&server.url("/hang")).unwrap().send();
    assert!(
        matches!(
            result,
            Err(Error::Timeout {
                kind: TimeoutKind::Total,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // A body that stops coming: its reader's io::Error still tells which limit ran out.
    let response = client
        .get(&server.url("/drip/text"))
        .unwrap()
        .send()
        .unwrap();
    let mut body = response.reader();
    let mut got = Vec::new();
    let error = std::io::Read::read_to_end(&mut body, &mut got).unwrap_err();
    assert_eq!(
        TimeoutKind::of_io(&error),
        Some(TimeoutKind::Read),
        "{error}"
    );
}

#[test]
fn an_upload_to_a_server_that_stops_reading_times_out() {
    // Accepts and never reads: once the socket buffers fill, every write waits.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    let holder = std::thread::spawn(move || listener.accept().map(|(stream, _)| stream));
    let client = client_with(|c| {
        c.read_timeout = Duration::from_millis(700);
        c.timeout = None;
    });
    let started = Instant::now();
    let result = client.post(&url).unwrap().raw(vec![0u8; 64 << 20]).send();
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(holder.join().unwrap());
}

/// A raw keep-alive server: each connection answers its requests with the connection's letter
/// and the request's number on it; the second request on the first connection gets stray bytes
/// after its body, the first on the second connection is followed by a close.
fn spoiling_server() -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for (letter, stream) in (b'A'..=b'D').zip(listener.incoming()) {
            let mut stream = stream.unwrap();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                for n in 1u8..=10 {
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(got) => seen.extend_from_slice(&buf[..got]),
                        }
                    }
                    seen.clear();
                    let mut answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}{n}",
                        char::from(letter)
                    );
                    if (letter, n) == (b'A', 2) {
                        answer.push_str("stray bytes");
                    }
                    stream.write_all(answer.as_bytes()).unwrap();
                    if (letter, n) == (b'B', 1) {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[test]
fn a_pooled_connection_is_reused_only_while_clean() {
    let url = spoiling_server();
    let client = client();
    let mut bodies = Vec::new();
    for _ in 0..4 {
        // The close needs a moment to arrive before the next request looks at the pool.
        std::thread::sleep(Duration::from_millis(100));
        bodies.push(client.get(&url).unwrap().send().unwrap().text().unwrap());
    }
    // A2's stray bytes keep that connection out of the pool; B's close is seen before reuse.
    assert_eq!(bodies, ["A1", "A2", "B1", "C1"]);
}

#[test]
fn retries_honour_retry_after_and_only_for_idempotent_methods() {
    let server = EchoServer::start();
    let retrying = client_with(|c| c.retry = Retry::times(3));
    let started = Instant::now();
    let response = retrying
        .get(&server.url("/retry/get/2?after=1"))
        .unwrap()
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "Retry-After: 1 was not honoured"
    );
    let calls = server.retry_calls.lock().unwrap()["get"].clone();
    assert_eq!(calls.len(), 3);
    assert!(calls[1] - calls[0] >= Duration::from_millis(950));

    let response = retrying
        .post(&server.url("/retry/post/1"))
        .unwrap()
        .send()
        .unwrap();
    assert_eq!(response.status(), 503, "POST must not be retried");
    // A POST a 303 turned into a GET: the GET is retried (it was not, the POST's method
    // deciding for every hop), as urllib3 and curl retry it.
    let response = retrying
        .post(&server.url("/redirect-to"))
        .unwrap()
        .query("url", "/retry/post-303/1?after=0")
        .query("status", "303")
        .send()
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the GET after a 303 must be retried"
    );
    assert_eq!(server.retry_calls.lock().unwrap()["post-303"].len(), 2);
    let response = client()
        .get(&server.url("/retry/none/1"))
        .unwrap()
        .send()
        .unwrap();
    assert_eq!(response.status(), 503, "no retries unless asked");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let mut retry = Retry::times(2);
    retry.backoff = Duration::from_millis(100);
    let quick = client_with(|c| c.retry = retry);
    let result = quick.get(&format!("http://{closed}/")).unwrap().send();
    assert!(matches!(result, Err(Error::Connect { .. })), "{result:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "connection errors were not retried"
    );
}

#[test]
fn a_request_on_a_kept_alive_connection_closed_under_it_goes_again_on_a_new_one() {
    // The server closes a kept-alive connection as the next request (a redirect's) goes on
    // it: curl and Go's net/http send it again on a new connection, where it failed as "an
    // empty reply", half the time. Here the close comes after that request was read, every
    // time. Idempotent methods only, and only on a reused connection.
    use std::io::{BufRead as _, BufReader, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = std::sync::Arc::clone(&seen);
    // Lives until the test process ends, blocked in accept.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = || {
                let mut first = String::new();
                reader.read_line(&mut first).unwrap_or(0);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                log.lock().unwrap().push(first.trim().to_owned());
                first
            };
            let first = head();
            if first.contains("/start") {
                stream
                    .write_all(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
                // Read the next request on this connection, then close it unanswered.
                head();
            } else if first.contains("/ok") {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        }
    });
    let url = |path: &str| format!("http://{addr}{path}");
    let taken = || std::mem::take(&mut *seen.lock().unwrap());
    let response = client().get(&url("/start")).unwrap().send().unwrap();
    assert_eq!(
        (response.status(), response.text().unwrap().as_str()),
        (200, "ok")
    );
    assert_eq!(
        taken(),
        [
            "GET /start HTTP/1.1",
            "GET /ok HTTP/1.1",
            "GET /ok HTTP/1.1"
        ]
    );
    // A POST may have been acted on: not sent again.
    let result = client().post(&url("/start")).unwrap().send();
    assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
    assert_eq!(taken(), ["POST /start HTTP/1.1", "POST /ok HTTP/1.1"]);
    // Nor a request that a new connection's server closed unanswered.
    let result = client().get(&url("/drop")).unwrap().send();
    assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
    assert_eq!(taken(), ["GET /drop HTTP/1.1"]);
}

#[test]
fn a_body_cut_short_says_how_much_came() {
    let server = EchoServer::start();
    let response = client()
        .get(&server.url("/truncate/1000"))
        .unwrap()
        .send()
        .unwrap();
    let mut got = Vec::new();
    let err = std::io::Read::read_to_end(&mut response.reader(), &mut got).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    assert_eq!(got.len(), 500);
    assert_eq!(
        err.to_string(),
        "the connection closed 500 bytes before the end of the body (500 of 1000 bytes came)"
    );
}

#[test]
fn a_private_files_download_is_private_while_it_comes_and_no_ones_part_is_finished() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = EchoServer::start();
    let dir = work_dir().join("http-client-private-part");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A private file refreshed: its new content was readable by all in a 0644 part while
    // it came, and after an interruption.
    let dest = dir.join("secret.bin");
    std::fs::write(&dest, b"old secret").unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
    let result = client()
        .get(&server.url("/truncate/1000000"))
        .unwrap()
        .download(&dest, false, &mut |_| {});
    assert!(matches!(result, Err(Error::Truncated { .. })), "{result:?}");
    let part = net_http::part_path(&dest);
    let mode = std::fs::metadata(&part).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the part of a private file is {mode:o}");
    // Another user's part is not gone on from: the file would start with their bytes and
    // stay theirs to change.
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&part, Some(65534), None).unwrap();
        let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
        std::fs::write(root.join("private.bin"), vec![7u8; 1_000_000]).unwrap();
        let url = format!("{}/private.bin", env("NETKIT_TEST_NGINX_URL"));
        let result = client()
            .get(&url)
            .unwrap()
            .download(&dest, true, &mut |_| {});
        let err = result.unwrap_err().to_string();
        assert!(err.contains("another user's part"), "{err}");
    }
}

#[test]
fn downloads_never_leave_a_truncated_target_and_resume_byte_exact() {
    let server = EchoServer::start();
    let dir = work_dir().join("http-client-downloads");
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("cut.bin");
    let result = client()
        .get(&server.url("/truncate/1000000"))
        .unwrap()
        .download(&dest, false, &mut |_| {});
    assert!(
        matches!(
            result,
            Err(Error::Truncated {
                got: 500_000,
                expected: 1_000_000,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(
        !dest.exists(),
        "a truncated download reached its target name"
    );
    assert!(net_http::part_path(&dest).exists());
    // A chunked body's length is its chunks', whatever Content-Length says beside them
    // (RFC 9112 6.3): it was "ended after 5 of 3 bytes", and no resume could finish it.
    let dest = dir.join("chunked.txt");
    client()
        .get(&server.url("/chunked-with-length"))
        .unwrap()
        .download(&dest, false, &mut |_| {})
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"hello");

    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    let data: Vec<u8> = (0..(6u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(root.join("resume.bin"), &data).unwrap();
    let dest = dir.join("resume.bin");
    std::fs::write(net_http::part_path(&dest), &data[..2_500_000]).unwrap();
    let mut seen = Vec::new();
    let url = format!("{}/resume.bin", env("NETKIT_TEST_NGINX_URL"));
    let done = client()
        .get(&url)
        .unwrap()
        .download_with(
            &dest,
            DownloadOptions::default()
                .with_resume(true)
                .with_fsync(true),
            &mut |event| match event {
                // The head is told first, before a byte is saved.
                net_http::DownloadEvent::Head(response) => {
                    assert!(seen.is_empty(), "a head after progress: {seen:?}");
                    assert_eq!(response.status(), 206);
                }
                net_http::DownloadEvent::Progress(p) => seen.push(p.done),
                _ => {}
            },
        )
        .unwrap();
    assert_eq!(
        (done.status, done.resumed_from, done.bytes),
        (206, 2_500_000, data.len() as u64)
    );
    assert_eq!(seen.first(), Some(&2_500_000));
    assert_eq!(seen.last(), Some(&(data.len() as u64)));
    assert!(
        std::fs::read(&dest).unwrap() == data,
        "the resumed file differs"
    );
    assert!(!net_http::part_path(&dest).exists());

    // A timeout that ends a download is named as one (not as the server's truncation), and
    // the part is kept.
    let dest = dir.join("timed-out.bin");
    let result = client_with(|c| c.timeout = Some(Duration::from_millis(500)))
        .get(&format!("{}/slow/resume.bin", env("NETKIT_TEST_NGINX_URL")))
        .unwrap()
        .download(&dest, false, &mut |_| {});
    match result {
        Err(Error::Timeout { what, .. }) => assert!(what.contains("timed-out.bin.part"), "{what}"),
        other => panic!("{other:?}"),
    }
    assert!(!dest.exists() && net_http::part_path(&dest).exists());
    // A body of no announced length cut short says where it went too, as one of a known
    // length does (it said nothing of the part).
    let server = EchoServer::start();
    let dest = dir.join("cut.bin");
    let _ = std::fs::remove_file(net_http::part_path(&dest));
    let error = client()
        .get(&server.url("/reset/50000"))
        .unwrap()
        .download(&dest, false, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("bytes kept in") && error.contains("cut.bin.part"),
        "{error}"
    );

    let served = std::path::PathBuf::from(env("NETKIT_TEST_SERVE_ROOT")).join("download.bin");
    std::fs::write(&served, &data).unwrap();
    let dest = dir.join("from-netkit.bin");
    let url = format!("{}/download.bin", env("NETKIT_TEST_SERVE_URL"));
    client()
        .get(&url)
        .unwrap()
        .download(&dest, false, &mut |_| {})
        .unwrap();
    assert!(std::fs::read(&dest).unwrap() == data);
    let missing = client()
        .get(&format!("{}/missing.bin", env("NETKIT_TEST_SERVE_URL")))
        .unwrap()
        .download(&dir.join("m"), false, &mut |_| {});
    assert!(matches!(missing, Err(Error::Status { status: 404, .. })));
    assert!(!dir.join("m").exists() && !dir.join("m.part").exists());
}

#[test]
fn a_download_keeps_its_part_from_what_is_not_the_rest_of_the_file() {
    let server = EchoServer::start();
    let dir = work_dir().join("http-client-kept-parts");
    std::fs::create_dir_all(&dir).unwrap();
    let resume = DownloadOptions::default().with_resume(true);
    // A server that ignores the range: the part stays as it was, as curl and wget keep it
    // (it was thrown away for whatever came: a portal's page was saved under its name).
    let dest = dir.join("ignored.bin");
    let part = net_http::part_path(&dest);
    std::fs::write(&part, [7u8; 4000]).unwrap();
    let result = client()
        .get(&server.url("/bytes/9000"))
        .unwrap()
        .download_with(&dest, resume, &mut |_| {});
    match result {
        Err(error @ Error::Io { .. }) => {
            assert!(error.to_string().contains("does not resume"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&part).unwrap(), [7u8; 4000]);
    assert!(!dest.exists());

    // A part longer than the whole file: a 416 that says so, the part kept.
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    std::fs::write(root.join("shorter.bin"), [1u8; 100]).unwrap();
    let url = format!("{}/shorter.bin", env("NETKIT_TEST_NGINX_URL"));
    let dest = dir.join("shorter.bin");
    let part = net_http::part_path(&dest);
    std::fs::write(&part, [2u8; 150]).unwrap();
    let result = client()
        .get(&url)
        .unwrap()
        .download_with(&dest, resume, &mut |_| {});
    match result {
        Err(error @ Error::Status { status: 416, .. }) => {
            let text = error.to_string();
            assert!(
                text.contains("holds 150 bytes, more than the whole file's 100"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&part).unwrap(), [2u8; 150]);

    // Part of the file to a request for all of it is not saved as the file; to a range the
    // caller asked for, it is what is wanted (curl -r). What a run before this one in the
    // same work directory saved below is no file saved by the first request.
    let dest = dir.join("slice.bin");
    let _ = std::fs::remove_file(&dest);
    let result = client()
        .get(&server.url("/slice"))
        .unwrap()
        .download(&dest, false, &mut |_| {});
    assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
    assert!(!dest.exists());
    client()
        .get(&server.url("/slice"))
        .unwrap()
        .header("Range", "bytes=0-4")
        .download(&dest, false, &mut |_| {})
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"hello");

    // A part another download is writing is refused, to go on with or to replace: two
    // downloads of one name wrote into one part, and the first renamed the other's.
    let dest = dir.join("busy.bin");
    let _ = std::fs::remove_file(&dest);
    let part = net_http::part_path(&dest);
    std::fs::write(&part, [3u8; 10]).unwrap();
    let held = std::fs::File::open(&part).unwrap();
    held.lock().unwrap();
    for options in [resume, DownloadOptions::default()] {
        let result = client()
            .get(&url)
            .unwrap()
            .download_with(&dest, options, &mut |_| {});
        match result {
            Err(error @ Error::File { .. }) => {
                assert!(error.to_string().contains("another download"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&part).unwrap(), [3u8; 10]);
        assert!(!dest.exists());
    }
    drop(held);
    client()
        .get(&url)
        .unwrap()
        .download(&dest, false, &mut |_| {})
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), [1u8; 100]);
}

#[test]
fn bad_urls_and_unreachable_hosts_are_typed_errors() {
    let client = client();
    assert!(matches!(client.get("ftp://x/"), Err(Error::BadUrl { .. })));
    assert!(matches!(
        client.get("http://[::1"),
        Err(Error::BadUrl { .. })
    ));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = client
        .get(&format!("http://{closed}/x"))
        .unwrap()
        .send()
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
    let err = client
        .get(&format!("http://{UNRESOLVABLE_HOST}/"))
        .unwrap()
        .send()
        .unwrap_err();
    assert!(
        matches!(err, Error::Dns { .. } | Error::Connect { .. }),
        "{err:?}"
    );
}

#[test]
fn tls_is_verified_unless_told_otherwise() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    std::fs::write(root.join("tls.txt"), "over tls\n").unwrap();
    let url = format!("{}/tls.txt", env("NETKIT_TEST_NGINX_TLS_URL"));
    let err = client().get(&url).unwrap().send().unwrap_err();
    assert!(
        matches!(err, Error::Tls { .. }),
        "an unknown CA must be refused: {err:?}"
    );
    let trusted = client_with(|c| c.ca_file = Some(env("NETKIT_TEST_NGINX_CA").into()));
    assert_eq!(
        trusted.get(&url).unwrap().send().unwrap().text().unwrap(),
        "over tls\n"
    );
    let insecure = client_with(|c| c.insecure = true);
    assert_eq!(insecure.get(&url).unwrap().send().unwrap().status(), 200);
    // Saved by a Windows editor, with a byte-order mark first: read as curl reads it.
    let bom = work_dir().join("ca-with-bom.pem");
    let mut pem = b"\xEF\xBB\xBF".to_vec();
    pem.extend(std::fs::read(env("NETKIT_TEST_NGINX_CA")).unwrap());
    std::fs::write(&bom, pem).unwrap();
    let trusted = client_with(|c| c.ca_file = Some(bom.clone()));
    assert_eq!(trusted.get(&url).unwrap().send().unwrap().status(), 200);
}

#[test]
fn a_client_certificate_is_presented_when_configured() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    std::fs::write(root.join("mtls-lib.txt"), "mutual tls\n").unwrap();
    let url = format!("{}/mtls-lib.txt", env("NETKIT_TEST_NGINX_MTLS_URL"));
    let dir = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_CLIENT_DIR"));
    let ca = || Some(env("NETKIT_TEST_NGINX_CA").into());
    let anonymous = client_with(|c| c.ca_file = ca());
    assert_eq!(anonymous.get(&url).unwrap().send().unwrap().status(), 400);
    let known = client_with(|c| {
        c.ca_file = ca();
        c.client_cert = Some(dir.join("client.pem"));
        c.client_key = Some(dir.join("client.key"));
    });
    let response = known.get(&url).unwrap().send().unwrap();
    assert_eq!(response.text().unwrap(), "mutual tls\n");
    // Saved with a byte-order mark, the pair is read once, as curl reads it (with a CA file
    // it was read a second time, BOM and all, and refused).
    let with_bom = |name: &str| {
        let path = work_dir().join(format!("bom-{name}"));
        let mut pem = b"\xEF\xBB\xBF".to_vec();
        pem.extend(std::fs::read(dir.join(name)).unwrap());
        std::fs::write(&path, pem).unwrap();
        path
    };
    let bom = client_with(|c| {
        c.ca_file = ca();
        c.client_cert = Some(with_bom("client.pem"));
        c.client_key = Some(with_bom("client.key"));
    });
    assert_eq!(bom.get(&url).unwrap().send().unwrap().status(), 200);
    let mut keyless = ClientConfig::default();
    keyless.client_cert = Some(dir.join("client.pem"));
    assert!(matches!(Client::new(keyless), Err(Error::File { .. })));
}

#[test]
fn text_honours_the_charset() {
    let server = EchoServer::start();
    let text = client()
        .get(&server.url("/latin1"))
        .unwrap()
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text, "café");
    // The bytes are the body's own, as a download saves them: ureq's charset decoding turned
    // them into UTF-8 (a byte longer than announced, so a download of it failed).
    let latin1 = || {
        client()
            .get(&server.url("/latin1"))
            .unwrap()
            .send()
            .unwrap()
    };
    assert_eq!(latin1().bytes().unwrap(), b"caf\xe9");
    let mut streamed = Vec::new();
    std::io::Read::read_to_end(&mut latin1().reader(), &mut streamed).unwrap();
    assert_eq!(streamed, b"caf\xe9");
    let mut shown = String::new();
    std::io::Read::read_to_string(&mut latin1().text_reader(), &mut shown).unwrap();
    assert_eq!(shown, "café");
}

#[test]
fn duration_max_is_no_limit_not_a_panic() {
    // The usual "no limit" went to ureq as it was: every send panicked adding it to an instant.
    let server = EchoServer::start();
    let client = client_with(|c| {
        c.connect_timeout = Duration::MAX;
        c.timeout = Some(Duration::MAX);
        c.read_timeout = Duration::MAX;
    });
    let response = client.get(&server.url("/echo")).unwrap().send().unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn a_head_of_many_fields_is_named_as_such() {
    // It was "the answer is not HTTP/1.x", which sends the user looking for a TLS port.
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0; 4096];
        let _ = conn.read(&mut buf);
        let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n".to_vec();
        for i in 0..1000 {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let _ = conn.write_all(&head);
    });
    let err = client().get(&url).unwrap().send().expect_err("refused");
    assert!(err.to_string().contains("more fields"), "{err}");
}

#[test]
fn a_body_from_a_named_pipe_goes_again_after_a_307_without_opening_it_again() {
    // Opened again for the second sending, a FIFO waited for a new writer for ever: every
    // 307, retry and Digest challenge hung. Multipart parts from a pipe went again empty.
    let server = EchoServer::start();
    let redirect = server.url("/redirect-to?status=307&url=/echo");
    let fifo = work_dir().join("http-client-replay.fifo");
    let feed = |data: &'static [u8]| {
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::fs::write(&fifo, data).unwrap();
            // Should the client open it again, this lets it go (and the test fail) instead
            // of hanging.
            std::thread::sleep(Duration::from_secs(10));
            let _ = std::os::unix::fs::OpenOptionsExt::custom_flags(
                std::fs::OpenOptions::new().write(true),
                nix::libc::O_NONBLOCK,
            )
            .open(&fifo);
        })
    };
    let started = Instant::now();
    let _writer = feed(b"piped body");
    let got = echo(
        client()
            .request("PUT", &redirect)
            .unwrap()
            .file(&fifo)
            .send()
            .unwrap(),
    );
    assert_eq!(
        (got["method"].as_str(), got["body"].as_str()),
        (Some("PUT"), Some("piped body"))
    );
    let _writer = feed(b"piped part");
    let parts = vec![Part::File {
        name: "doc".into(),
        path: fifo.clone(),
        content_type: None,
    }];
    let got = echo(
        client()
            .post(&redirect)
            .unwrap()
            .multipart(parts)
            .send()
            .unwrap(),
    );
    let body = got["body"].as_str().unwrap();
    assert!(body.contains("\r\n\r\npiped part\r\n"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_save_removes_what_a_killed_save_of_the_session_left_and_nothing_live() {
    // QA (crash): a SIGKILL while the session was saved left a `.netkit-session*` file
    // (0600, the cookies and auth) that nothing removed; they piled up. httpie and curl
    // leave none. A killed save's is removed by the next save; a live save's (locked) or a
    // new one (maybe not locked yet) and another session's are not.
    let dir = work_dir().join("http-client-session-killed");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.json");
    let old = std::time::SystemTime::now() - Duration::from_secs(600);
    let plant = |name: &str, when: std::time::SystemTime| {
        let file = std::fs::File::create(dir.join(name)).unwrap();
        file.set_modified(when).unwrap();
        file
    };
    drop(plant(".s.json.netkit-sessionK1LLed", old));
    drop(plant(
        ".s.json.netkit-sessionNEWnew",
        std::time::SystemTime::now(),
    ));
    let live = plant(".s.json.netkit-sessionLIVEli", old);
    live.lock().unwrap();
    drop(plant(".t.json.netkit-sessionOTHERo", old));
    // Regression pass: a user's file that starts as a temporary name would was removed.
    drop(plant(".s.json.netkit-session-notes", old));
    let mut session = Session::open(client(), &path).unwrap();
    session.set_header("X-Kept", "k");
    session.save().unwrap();
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            ".s.json.netkit-session-notes",
            ".s.json.netkit-sessionLIVEli",
            ".s.json.netkit-sessionNEWnew",
            ".t.json.netkit-sessionOTHERo",
            "s.json"
        ]
    );
    drop(live);
}
