//! `netkit http` as a process against the echo fixture, nginx and `netkit serve http`.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use netkit_tests::http_echo::{EchoServer, hex};
use netkit_tests::{env, free_port, netkit_bin, work_dir};
use serde_json::Value;
use sha2::Digest as _;

fn http(args: &[&str]) -> Output {
    http_env(args, &[])
}

fn http_env(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(netkit_bin());
    command.arg("http");
    run_http(command, args, vars)
}

/// Runs `command` (which starts `netkit http`) with `args`, `vars`, no password from the
/// environment and an empty stdin.
fn run_http(mut command: Command, args: &[&str], vars: &[(&str, &str)]) -> Output {
    command
        .args(args)
        .env_remove("NETKIT_HTTP_PASSWORD")
        .envs(vars.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // Bounded: a netkit that hangs fails its test instead of the whole run.
    netkit_tests::Spawned::start(&mut command).wait_with_output()
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// `netkit http ARGS` started with a pipe on each of its standard streams.
fn http_with_stdin_pipe(args: &[&str]) -> netkit_tests::Spawned {
    netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .arg("http")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )
}

fn one_line_error(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("netkit: error: ") && err.contains(needle),
        "{err}"
    );
}

/// `netkit http ARGS` with `vars`, its address space held to 1.5 GB, as a small machine's
/// memory would hold it.
fn http_in_little_memory(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new("sh");
    command
        .args(["-c", "ulimit -v 1500000 && exec \"$0\" http \"$@\""])
        .arg(netkit_bin());
    run_http(command, args, vars)
}

#[test]
fn a_file_named_for_settings_or_items_is_read_up_to_a_cap() {
    // /dev/zero named by a flag, an item or a variable was read whole: past 2 GB, then "out
    // of memory" (or the OOM killer), where curl refuses `--cacert /dev/zero` at once.
    let server = EchoServer::start();
    let url = server.url("/echo");
    let started = Instant::now();
    for (args, cap) in [
        (&["--verify", "/dev/zero", &url][..], "64 MiB"),
        (&["--cert", "/dev/zero", &url], "64 MiB"),
        (&["--session", "/dev/zero", &url], "64 MiB"),
        (&["--session-read-only", "/dev/zero", &url], "64 MiB"),
        (&[&url, "a=@/dev/zero"], "256 MiB"),
        (&[&url, "a:=@/dev/zero"], "256 MiB"),
        (&[&url, "q==@/dev/zero"], "256 MiB"),
        (&[&url, "X-A:@/dev/zero"], "256 MiB"),
    ] {
        let out = http_in_little_memory(args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("netkit: error: /dev/zero: ") && err.contains(cap),
            "{args:?}: {err}"
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    }
    // A netrc that cannot be read is passed over with a warning, and the request goes.
    let out = http_in_little_memory(&[&url], &[("NETRC", "/dev/zero")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("/dev/zero") && err.contains("64 MiB"), "{err}");
    // The system's roots named by SSL_CERT_FILE, read at the first TLS connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let https = format!("https://{}/", listener.local_addr().unwrap());
    let out = http_in_little_memory(
        &["--timeout", "5", &https],
        &[("SSL_CERT_FILE", "/dev/zero")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/dev/zero") && err.contains("64 MiB"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn items_become_headers_query_and_json_form_or_multipart_bodies() {
    let server = EchoServer::start();
    let url = server.url("/echo");
    let got = ok_json(&http(&[
        &url,
        "name=ann",
        "n:=3",
        "tags:=[\"a\"]",
        "X-A:1",
        "q==a b",
    ]));
    assert_eq!(got["method"], "POST");
    assert_eq!(got["body"], r#"{"name":"ann","n":3,"tags":["a"]}"#);
    assert_eq!(got["headers"]["content-type"], "application/json");
    assert_eq!(got["headers"]["x-a"], "1");
    assert_eq!(got["target"], "/echo?q=a+b");

    let got = ok_json(&http(&[&url]));
    assert_eq!(
        (got["method"].as_str(), got["body_len"].as_u64()),
        (Some("GET"), Some(0))
    );
    let got = ok_json(&http(&["PUT", &url, "-f", "name=ann", "x=1 2"]));
    assert_eq!(got["method"], "PUT");
    assert_eq!(got["body"], "name=ann&x=1+2");

    let file = work_dir().join("http-cli-upload.txt");
    std::fs::write(&file, "uploaded\n").unwrap();
    let upload = format!("doc@{}", file.display());
    let got = ok_json(&http(&["--multipart", &url, "title=t", &upload]));
    assert!(
        got["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("multipart/form-data")
    );
    assert!(
        got["body"]
            .as_str()
            .unwrap()
            .contains("\r\n\r\nuploaded\n\r\n")
    );
    let got = ok_json(&http(&["-f", &url, &upload]));
    assert!(
        got["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("multipart/form-data"),
        "-f with a file goes multipart"
    );
    // A server that refuses an upload from its head and closes (RFC 9112 9.6): its answer is
    // shown, as curl and httpie show it, not a broken pipe.
    let big = work_dir().join("http-cli-big-upload.bin");
    std::fs::write(&big, vec![0u8; 8 << 20]).unwrap();
    let out = http(&[
        "-b",
        "--check-status",
        "PUT",
        &server.url("/reject-early"),
        &format!("@{}", big.display()),
    ]);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(4), &b"too large"[..]),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Quotes and line ends in names are encoded as browsers encode them (WHATWG), so that
    // they cannot end the name early or add a header.
    let odd = work_dir().join("q\"uote\r\nX-Evil: 1.txt");
    std::fs::write(&odd, "odd\n").unwrap();
    let got = ok_json(&http(&[
        "--multipart",
        &url,
        &format!("f@{}", odd.display()),
        "na\"me=v",
    ]));
    let body = got["body"].as_str().unwrap();
    assert!(
        body.contains("name=\"f\"; filename=\"q%22uote%0D%0AX-Evil: 1.txt\"\r\n")
            && body.contains("name=\"na%22me\"\r\n"),
        "{body}"
    );
    let typed = format!("doc@{};type=application/x-netkit", file.display());
    let got = ok_json(&http(&["-f", &url, &typed]));
    assert!(
        got["body"]
            .as_str()
            .unwrap()
            .contains("filename=\"http-cli-upload.txt\"\r\nContent-Type: application/x-netkit\r\n"),
        "httpie's ;type= names the part's type: {got}"
    );

    let from_file = format!("note=@{}", file.display());
    let got = ok_json(&http(&[&url, &from_file]));
    assert_eq!(got["body"], r#"{"note":"uploaded\n"}"#);
    let got = ok_json(&http(&[&url, "--raw", "just text"]));
    assert_eq!(got["body"], "just text");
    // A whole body is of the kind asked for, JSON by default, as httpie takes it.
    assert_eq!(got["headers"]["content-type"], "application/json");
    assert_eq!(got["headers"]["accept"], "application/json, */*;q=0.5");
    let got = ok_json(&http(&[&url, "--form", "--raw", "a=b"]));
    assert_eq!(
        got["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
    let body_file = format!("@{}", file.display());
    let got = ok_json(&http(&[&url, &body_file]));
    assert_eq!(got["body"], "uploaded\n");
    let got = ok_json(&http(&[&url, "User-Agent:"]));
    assert!(
        got["headers"].get("user-agent").is_none(),
        "User-Agent: must remove it"
    );
    // The body's own type goes too, as httpie leaves it out: data, a form, a typed file.
    for body in [&["a=1"][..], &["--form", "a=1"], &[&body_file]] {
        let got = ok_json(&http(&[&[url.as_str(), "Content-Type:"], body].concat()));
        assert!(
            got["headers"].get("content-type").is_none(),
            "{body:?}: {got}"
        );
    }
}

#[test]
fn an_early_answer_is_shown_at_once_without_reading_the_rest_of_the_upload() {
    // A server that answers from the head alone and closes (RFC 9112 9.6): the body source was
    // read to its end before the answer was shown, for ever from an endless pipe (`tail -f`,
    // `/dev/zero`); curl shows the answer at once.
    let server = EchoServer::start();
    let url = server.url("/reject-early");
    let shown_at_once = |out: &Output, started: Instant, what: &str| {
        assert_eq!(
            (out.status.code(), out.stdout.as_slice()),
            (Some(4), &b"too large"[..]),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            started.elapsed()
        );
    };
    // An endless pipe, chunked or under a Content-Length of the user's; the writer gives up
    // after 20 s, which ends a netkit that drains it.
    for length in [None, Some("Content-Length:100000000000")] {
        let args = [
            &["-b", "--check-status", "PUT", &url][..],
            length.as_slice(),
        ]
        .concat();
        let mut child = http_with_stdin_pipe(&args);
        let mut pipe = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 1 << 16];
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) && pipe.write_all(&chunk).is_ok() {}
        });
        let started = Instant::now();
        let out = child.wait_with_output();
        shown_at_once(&out, started, &format!("pipe {length:?}"));
        writer.join().unwrap();
    }
    // A file as large as no disk holds (sparse): read to its end, it took minutes.
    let huge = work_dir().join("http-cli-sparse-upload.bin");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 38)
        .unwrap();
    let started = Instant::now();
    let out = http(&[
        "-b",
        "--check-status",
        "PUT",
        &url,
        &format!("@{}", huge.display()),
    ]);
    shown_at_once(&out, started, "sparse file");
    std::fs::remove_file(&huge).unwrap();
}

#[test]
fn an_upload_cut_by_a_reset_is_said_as_cut_with_how_much_went() {
    // It was "closed the connection without answering (an empty reply)".
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut got = 0;
        let mut buf = vec![0; 1 << 16];
        while got < 100_000 {
            match std::io::Read::read(&mut stream, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        // A close with linger 0 sends a reset.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    let big = work_dir().join("http-cli-cut-upload.bin");
    std::fs::write(&big, vec![7u8; 20 << 20]).unwrap();
    let out = http(&["-b", "POST", &url, &format!("@{}", big.display())]);
    server.join().unwrap();
    one_line_error(&out, 1, "the upload was cut after ");
}

#[test]
fn a_request_head_too_large_to_send_is_said_to_be_ours() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let big = work_dir().join("http-cli-big-header.txt");
    std::fs::write(&big, "a".repeat(132_000)).unwrap();
    let out = http(&[&url, &format!("X-Big:@{}", big.display())]);
    one_line_error(&out, 1, "the request's head is too large to send");
}

#[test]
fn a_piped_body_too_large_to_keep_is_not_retried_and_its_answer_handed_back() {
    // It exited 2, "bad request: ... asks for the body again", the 503 lost.
    let server = EchoServer::start();
    let url = server.url("/retry/piped-big/1?after=0");
    let mut child = http_with_stdin_pipe(&["--retry", "2", "PUT", &url]);
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || pipe.write_all(&vec![b'x'; 17 << 20]));
    let out = child.wait_with_output();
    let _ = writer.join();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"try later"[..]),
        "{err}"
    );
    assert!(
        err.contains("not retried: the piped body (over 16 MiB) was not kept for a retry"),
        "{err}"
    );
}

#[test]
fn json_field_names_nest_and_separators_escape_as_in_httpie() {
    let server = EchoServer::start();
    let url = server.url("/echo");
    let query = work_dir().join("http-cli-query.txt");
    std::fs::write(&query, "from file").unwrap();
    let got = ok_json(&http(&[
        &url,
        "user[name]=ann",
        "user[admin]:=true",
        "tags[]=a",
        "tags[]=b",
        "pets[1][kind]=cat",
        r"time\:stamp=1",
        r"a\=b=c\=d",
        "X-Empty;",
        &format!("q==@{}", query.display()),
    ]));
    let body: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "user": {"name": "ann", "admin": true},
            "tags": ["a", "b"],
            "pets": [null, {"kind": "cat"}],
            "time:stamp": "1",
            "a=b": "c=d",
        })
    );
    assert_eq!(got["headers"]["x-empty"], "");
    assert_eq!(got["target"], "/echo?q=from+file");

    let got = ok_json(&http(&[&url, "[]:=1", "[]=two"]));
    assert_eq!(got["body"], r#"[1,"two"]"#, "a top-level array");
    // A form keeps the brackets: PHP and Rails read them themselves.
    let got = ok_json(&http(&["-f", &url, "tags[]=a", "tags[]=b"]));
    assert_eq!(got["body"], "tags%5B%5D=a&tags%5B%5D=b");

    one_line_error(
        &http(&[&url, "a=1", "a[b]=2"]),
        2,
        "a is a string, and [b] needs an object",
    );
    one_line_error(&http(&[&url, "a[b=1"]), 2, "expected ']'");
    one_line_error(&http(&[&url, "a[-1]=1"]), 2, "negative");
    one_line_error(&http(&[&url, "a[99999999999]=1"]), 2, "index");
}

#[test]
fn a_bare_host_name_is_the_url_not_a_method() {
    // A lower-case word is a method only when it names one; a word in capitals always is.
    for (words, first_line) in [
        (&["localhost", "a=1"][..], "POST / HTTP/1.1"),
        (&["myhost", "q==1"][..], "GET /?q=1 HTTP/1.1"),
        (&["delete", "myhost/x"][..], "DELETE /x HTTP/1.1"),
        (&["PURGE", "myhost/x"][..], "PURGE /x HTTP/1.1"),
    ] {
        let mut args = vec!["--offline"];
        args.extend_from_slice(words);
        let out = http(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().next(), Some(first_line), "{words:?}: {text}");
    }
}

#[test]
fn json_defaults_give_way_to_the_users_headers_and_dash_j_asks_for_json() {
    let server = EchoServer::start();
    let url = server.url("/echo");
    // The user's Accept replaces the JSON one; it was sent beside it.
    let got = ok_json(&http(&[&url, "a=1", "Accept:text/plain"]));
    assert_eq!(got["headers"]["accept"], "text/plain");
    assert_eq!(got["headers"]["content-type"], "application/json");
    // -j: JSON headers with no data too, as httpie; the user's still win.
    let got = ok_json(&http(&["-j", &url]));
    assert_eq!(
        (got["method"].as_str(), got["headers"]["accept"].as_str()),
        (Some("GET"), Some("application/json, */*;q=0.5"))
    );
    assert_eq!(got["headers"]["content-type"], "application/json");
    let got = ok_json(&http(&["-j", &url, "Content-Type:application/vnd.x+json"]));
    assert_eq!(got["headers"]["content-type"], "application/vnd.x+json");
    one_line_error(&http(&["-j", "-f", &url]), 2, "--form");

    // -q prints nothing; the exit status still tells.
    let out = http(&["-q", &url, "a=1"]);
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
    let out = http(&["-q", "--check-status", &server.url("/status/404")]);
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_2() {
    let server = EchoServer::start();
    one_line_error(&http(&["ftp://example.org/"]), 2, "bad URL");
    one_line_error(&http(&["http://"]), 2, "bad URL");
    one_line_error(
        &http(&[&server.url("/echo"), "nonsense"]),
        2,
        "bad item \"nonsense\"",
    );
    one_line_error(&http(&[&server.url("/echo"), "n:={oops"]), 2, "n:={oops");
    // A second URL was sent as the header `http: //...`, the first fetched alone, exit 0.
    one_line_error(
        &http(&[&server.url("/echo"), &server.url("/other")]),
        2,
        "a second URL",
    );
    one_line_error(
        &http(&[&server.url("/echo"), "f=@/no/such/file"]),
        2,
        "/no/such/file",
    );
    one_line_error(
        &http(&[&server.url("/echo"), "@/no/such/body"]),
        2,
        "/no/such/body",
    );
    one_line_error(
        &http(&["--verify", "/no/such/ca.pem", &server.url("/echo")]),
        2,
        "/no/such/ca.pem",
    );
    one_line_error(&http(&[&server.url("/echo"), "-p", "Hx"]), 2, "--print");
    // One body: a second one was dropped without a word (httpie refuses it too).
    let body = work_dir().join("http-cli-one-body.json");
    std::fs::write(&body, "{}").unwrap();
    let at_body = format!("@{}", body.display());
    for args in [
        &[&server.url("/echo"), at_body.as_str(), "a=1"][..],
        &["--raw", "R", &server.url("/echo"), "a=1"],
        &["--raw", "R", &server.url("/echo"), &at_body],
        &[&server.url("/echo"), &at_body, &at_body],
    ] {
        one_line_error(&http(args), 2, "the body is given twice");
    }
    // A timeout past what the clock can hold is refused, not a panic.
    for secs in ["1e19", "nan", "0"] {
        one_line_error(
            &http(&["--timeout", secs, &server.url("/echo")]),
            2,
            "--timeout must be",
        );
    }
    // What is missing is named on the one line (clap lists it on the lines below).
    one_line_error(&http(&[]), 2, "not provided: <[METHOD] URL");
    // The file asked for is named, not the `.part` beside it.
    let out = http(&["-d", &server.url("/echo"), "-o", "/no/such/dir/x"]);
    one_line_error(&out, 2, "/no/such/dir/x: ");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(".part"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    one_line_error(&http(&[&format!("http://{closed}/")]), 1, "cannot connect");
    // A port that speaks something else (here an echo server) is named as such.
    let echo = netkit_tests::Served::start(&["echo", "--bind", "127.0.0.1:0"]);
    one_line_error(&http(&[&echo.url()]), 1, "the answer is not HTTP/1.x");
}

#[test]
fn an_argument_error_names_its_problem_on_its_one_line() {
    // Only clap's first line was kept: a value with a newline lost the flag, a conflict with
    // several flags ended in "cannot be used with:".
    let run = |args: &[&str]| Command::new(netkit_bin()).args(args).output().unwrap();
    for (args, code, needle) in [
        (
            &["http", "-A", "a\nb", ":1/"][..],
            2,
            "invalid value 'a\\012b' for '--auth-type <TYPE>' (one of: basic, digest)",
        ),
        (
            &["serve", "--threads", "a\nb", "echo"],
            2,
            "invalid value 'a\\012b' for '--threads <N>': invalid digit",
        ),
        (
            &["connect", "127.0.0.1", "\n"],
            2,
            "invalid value '\\012' for '[PORT]'",
        ),
        (
            &["ssh", "--hosts", "127.0.0.1", "-G", "-N", "x"],
            255,
            "cannot be used with: -G, -N",
        ),
    ] {
        one_line_error(&run(args), code, needle);
    }
}

#[test]
fn credentials_from_argv_env_or_bearer() {
    let server = EchoServer::start();
    let url = server.url("/echo");
    let got = ok_json(&http(&["-a", "user:pa ss", &url]));
    assert_eq!(got["headers"]["authorization"], "Basic dXNlcjpwYSBzcw==");
    let got = ok_json(&http_env(
        &["-a", "user", &url],
        &[("NETKIT_HTTP_PASSWORD", "from env")],
    ));
    assert_eq!(
        got["headers"]["authorization"],
        "Basic dXNlcjpmcm9tIGVudg=="
    );
    one_line_error(&http(&["-a", "user", &url]), 2, "NETKIT_HTTP_PASSWORD");
    let got = ok_json(&http(&["--bearer", "t0k", &url]));
    assert_eq!(got["headers"]["authorization"], "Bearer t0k");
    // In the URL, percent-encoded as curl reads it (s%40cret is s@cret); -a wins over it.
    let with_user = url.replace("http://", "http://ann:s%40cret@");
    let got = ok_json(&http(&[&with_user]));
    assert_eq!(got["headers"]["authorization"], "Basic YW5uOnNAY3JldA==");
    let got = ok_json(&http(&["-a", "user:pa ss", &with_user]));
    assert_eq!(got["headers"]["authorization"], "Basic dXNlcjpwYSBzcw==");
    // A user without a password in the URL is asked for one, as with -a USER.
    let user_only = url.replace("http://", "http://ann@");
    let got = ok_json(&http_env(&[&user_only], &[("NETKIT_HTTP_PASSWORD", "pw")]));
    assert_eq!(got["headers"]["authorization"], "Basic YW5uOnB3");
    one_line_error(&http(&[&user_only]), 2, "no password for ann");
    // -A digest (httpie's words): the challenge is answered, the password from the env.
    let digest = server.url("/digest-auth/auth/ann/s3cret/SHA-256");
    let authenticated = |out: Output| {
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).as_ref()
            ),
            (Some(0), "authenticated ann"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    authenticated(http_env(
        &["-A", "digest", "-a", "ann", "--check-status", &digest],
        &[("NETKIT_HTTP_PASSWORD", "s3cret")],
    ));
    let out = http(&["-A", "digest", "-a", "ann:wrong", "--check-status", &digest]);
    assert_eq!(out.status.code(), Some(4), "a refused answer is the 401");
    // The URL's credentials answer the challenge too (they went as Basic, and were refused).
    let in_url = digest.replace("http://", "http://ann:s3cret@");
    authenticated(http(&["-A", "digest", "--check-status", &in_url]));
    one_line_error(&http(&["-A", "kerberos", "-a", "u:p", &url]), 2, "kerberos");
    one_line_error(
        &http(&["-A", "digest", &url]),
        2,
        "-A digest needs credentials",
    );
}

#[test]
fn credentials_from_netrc_when_none_are_given() {
    let server = EchoServer::start();
    let url = server.url("/echo");
    let netrc = work_dir().join("http-cli-netrc");
    std::fs::write(
        &netrc,
        "machine 127.0.0.1\n  login ann\n  password \"s3cret\"\nmachine other login x password y\n",
    )
    .unwrap();
    let with = |args: &[&str], vars: &[(&str, &str)]| {
        let mut all = vec![("NETRC", netrc.to_str().unwrap())];
        all.extend_from_slice(vars);
        http_env(args, &all)
    };
    // "ann:s3cret"
    let basic = "Basic YW5uOnMzY3JldA==";
    let got = ok_json(&with(&[&url], &[]));
    assert_eq!(got["headers"]["authorization"], basic);
    let got = ok_json(&with(&["--ignore-netrc", &url], &[]));
    assert_eq!(got["headers"]["authorization"], Value::Null);
    // The URL as typed without its scheme names the same host.
    let bare = url.trim_start_matches("http://");
    let got = ok_json(&with(&[bare], &[]));
    assert_eq!(got["headers"]["authorization"], basic);
    let got = ok_json(&with(&["-a", "bob:pw", &url], &[]));
    assert_eq!(got["headers"]["authorization"], "Basic Ym9iOnB3");
    // They answer a digest challenge too.
    let digest = server.url("/digest-auth/auth/ann/s3cret/MD5");
    let out = with(&["-A", "digest", "--check-status", &digest], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "authenticated ann",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A redirect to another host takes that host's entry, as curl -n and requests do; the
    // first host's never follow.
    std::fs::write(
        &netrc,
        "machine 127.0.0.1 login ann password s3cret\nmachine localhost login lee password pw2\n",
    )
    .unwrap();
    let elsewhere = server.url("/echo").replace("127.0.0.1", "localhost");
    let hop = server.url(&format!("/redirect-to?url={elsewhere}"));
    let got = ok_json(&with(&["-F", &hop], &[]));
    assert_eq!(got["headers"]["authorization"], "Basic bGVlOnB3Mg==");
    let got = ok_json(&with(&["-a", "bob:pw", "-F", &hop], &[]));
    assert_eq!(got["headers"]["authorization"], "Basic bGVlOnB3Mg==");
    let got = ok_json(&with(&["--ignore-netrc", "-a", "bob:pw", "-F", &hop], &[]));
    assert_eq!(got["headers"]["authorization"], Value::Null);
    std::fs::write(&netrc, "machine 127.0.0.1 login ann password s3cret\n").unwrap();
    let got = ok_json(&with(&["-F", &hop], &[]));
    assert_eq!(got["headers"]["authorization"], Value::Null);
    // Credentials a server writes into its Location for another host are not sent there,
    // as curl and httpie send none; a redirect to a scheme we do not speak is refused.
    let planted = elsewhere.replace("http://", "http://u2:p2@");
    let hop_with_login = server.url(&format!("/redirect-to?url={planted}"));
    let got = ok_json(&with(&["-F", &hop_with_login], &[]));
    assert_eq!(got["headers"]["authorization"], Value::Null);
    let socks = server.url("/redirect-to?url=socks5://127.0.0.1:1/x");
    // The server's doing, not bad input: 1, as curl and httpie.
    one_line_error(&with(&["-F", &socks], &[]), 1, "unsupported scheme socks5");
    // A session keeps what was given, not what the netrc holds (it stays the place for it).
    let session = work_dir().join("http-cli-netrc-session.json");
    let _ = std::fs::remove_file(&session);
    let got = ok_json(&with(&["--session", session.to_str().unwrap(), &url], &[]));
    assert_eq!(got["headers"]["authorization"], basic);
    let kept = std::fs::read_to_string(&session).unwrap();
    assert!(!kept.contains("ann"), "{kept}");
    // A login without a password goes with an empty one, as curl 8 and httpie send it
    // (it stopped netkit off a terminal); a password given for it is not the netrc's.
    std::fs::write(&netrc, "default login ann\n").unwrap();
    let got = ok_json(&with(&[&url], &[]));
    assert_eq!(got["headers"]["authorization"], "Basic YW5uOg==");
    let got = ok_json(&with(&[&url], &[("NETKIT_HTTP_PASSWORD", "pw")]));
    assert_eq!(got["headers"]["authorization"], "Basic YW5uOg==");
    // Words it does not know are passed over, as curl passes them: the file stays (it was
    // dropped whole), and the warning names the line, never the word (a password after a
    // misspelt keyword).
    std::fs::write(
        &netrc,
        "machine 127.0.0.1\nlogin ann\npasword hunter2\npassword s3cret\n",
    )
    .unwrap();
    let out = with(&[&url], &[]);
    let got = ok_json(&out);
    assert_eq!(got["headers"]["authorization"], basic);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3: a word netkit does not know passed over (and 1 more)")
            && !err.contains("hunter2")
            && err.lines().count() == 1,
        "{err}"
    );
    // One that does not parse is said and left out: the request goes without credentials.
    std::fs::write(&netrc, "machine 127.0.0.1 login ann password \"open\n").unwrap();
    let out = with(&[&url], &[]);
    let got = ok_json(&out);
    assert_eq!(got["headers"]["authorization"], Value::Null);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1: a quote is not closed; not used") && err.lines().count() == 1,
        "{err}"
    );
}

/// A reader that leaves early (`| head`) is no failure, but the status still is: `set -o
/// pipefail; netkit http --check-status URL | head` passed on a 500 with a large body.
#[test]
fn a_failed_status_is_told_when_the_reader_leaves_early() {
    use std::io::Read as _;
    let server = EchoServer::start();
    for (status, exit) in [(500, Some(5)), (200, Some(0))] {
        let mut child = Command::new(netkit_bin())
            .args(["http", "--check-status"])
            .arg(server.url(&format!("/bytes/1048576?status={status}")))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0; 10];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), exit, "{status}: {said}");
        let warned = if status == 500 {
            "netkit: warning: HTTP 500 Internal Server Error\n"
        } else {
            ""
        };
        assert_eq!(said, warned, "{status}");
    }
}

#[test]
fn redirects_check_status_and_exit_codes() {
    let server = EchoServer::start();
    let code = |args: &[&str]| http(args).status.code();
    assert_eq!(code(&[&server.url("/redirect/2")]), Some(0));
    assert_eq!(
        code(&["--check-status", &server.url("/redirect/2")]),
        Some(3)
    );
    assert_eq!(
        code(&["--check-status", &server.url("/status/404")]),
        Some(4)
    );
    assert_eq!(
        code(&["--check-status", &server.url("/status/503")]),
        Some(5)
    );
    assert_eq!(
        code(&["--check-status", &server.url("/status/204")]),
        Some(0)
    );
    assert_eq!(code(&[&server.url("/status/500")]), Some(0));
    // A download refused for its status exits as --check-status would, as httpie's -d.
    let target = work_dir().join("http-cli-refused-download");
    let target = target.to_str().unwrap();
    for (status, exit) in [("404", 4), ("503", 5)] {
        let url = server.url(&format!("/status/{status}"));
        one_line_error(&http(&["-d", "-o", target, &url]), exit, status);
    }
    // A download follows redirects by itself, as httpie's; past --max-redirects it exits 6,
    // and the file asked for keeps what it held.
    let followed = http(&["-d", "-o", target, &server.url("/redirect/2")]);
    assert_eq!(followed.status.code(), Some(0), "{followed:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(target).unwrap()).unwrap()["target"],
        "/echo"
    );
    let too_many = http(&[
        "-d",
        "--max-redirects",
        "1",
        "-o",
        target,
        &server.url("/redirect/2"),
    ]);
    assert_eq!(too_many.status.code(), Some(6), "{too_many:?}");
    assert!(std::fs::read(target).unwrap().starts_with(b"{"));
    // Piped, stdout holds the body alone: the failed status goes to stderr, as httpie warns.
    let out = http(&["--check-status", &server.url("/status/404")]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "netkit: warning: HTTP 404 Not Found\n"
    );
    let quiet = http(&["--check-status", "-qq", &server.url("/status/404")]);
    assert_eq!((quiet.status.code(), quiet.stderr.len()), (Some(4), 0));
    let got = ok_json(&http(&["-F", "--check-status", &server.url("/redirect/2")]));
    assert_eq!(got["target"], "/echo");
    // Followed, a 3xx at the end (a 304 to a conditional GET, a 300 with no Location) is
    // the server's answer, not a redirect left unfollowed: exit 0, as httpie's --follow.
    for status in ["304", "300"] {
        let url = server.url(&format!("/status/{status}"));
        assert_eq!(code(&["-F", "--check-status", &url]), Some(0), "{status}");
        assert_eq!(code(&["--check-status", &url]), Some(3), "{status}");
    }
    one_line_error(
        &http(&[
            "--follow",
            "--max-redirects",
            "1",
            &server.url("/redirect/3"),
        ]),
        6,
        "too many redirects",
    );
    // Following none, as curl --max-redirs 0: a redirect is one too many, a download's
    // too (it follows redirects); the line names the URL in full, as past any other limit.
    let first = server.url("/redirect/1");
    let typed = first.trim_start_matches("http://");
    let none = format!("too many redirects (more than 0) from {first}");
    one_line_error(&http(&["-F", "--max-redirects", "0", typed]), 6, &none);
    for follow in [&["-d"][..], &["-d", "-F"]] {
        let args = [follow, &["--max-redirects", "0", "-o", target, typed]].concat();
        one_line_error(&http(&args), 6, &none);
    }
    assert!(std::fs::read(target).unwrap().starts_with(b"{"));
    let nginx = http(&[
        "-F",
        &format!("{}/redirect/3", env("NETKIT_TEST_NGINX_URL")),
    ]);
    assert_eq!(nginx.stdout, b"hello from nginx\n");
    // --all shows each redirect, then the final response, as httpie's.
    let all = http(&[
        "-F",
        "--all",
        "--print=h",
        &format!("{}/redirect/2", env("NETKIT_TEST_NGINX_URL")),
    ]);
    let text = String::from_utf8_lossy(&all.stdout);
    let statuses: Vec<&str> = text.lines().filter(|l| l.starts_with("HTTP/")).collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 302 Found",
            "HTTP/1.1 302 Found",
            "HTTP/1.1 200 OK"
        ],
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Location: ") && l.ends_with("/redirect/1")),
        "{text}"
    );
    // With -v, each request that a redirect led to is shown before its response.
    let server = EchoServer::start();
    let all = http(&[
        "-F",
        "--all",
        "-v",
        "PUT",
        &server.url("/redirect-to?status=307&url=/echo"),
        "k=v",
    ]);
    let text = String::from_utf8_lossy(&all.stdout);
    let starts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("HTTP/") || l.starts_with("PUT "))
        .collect();
    assert_eq!(
        starts,
        [
            "PUT /redirect-to?status=307&url=/echo HTTP/1.1",
            "HTTP/1.1 307 Temporary Redirect",
            "PUT /echo HTTP/1.1",
            "HTTP/1.1 200 OK"
        ],
        "{text}"
    );
    assert_eq!(
        text.matches("\n{\"k\":\"v\"}\n").count(),
        2,
        "a 307 sends the body again: {text}"
    );
}

#[test]
fn timeouts_and_retries() {
    let server = EchoServer::start();
    let started = Instant::now();
    // With other limits given, the one that ran out is named alone.
    let out = http(&[
        "--timeout",
        "1",
        "--connect-timeout",
        "5",
        "--max-time",
        "30",
        &server.url("/hang"),
    ]);
    one_line_error(
        &out,
        7,
        "the server sent nothing for 1 s; --timeout SECS waits longer",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("--max-time") && !err.contains("--connect-timeout"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // A body that stops coming is a timeout too (it was exit 1).
    let out = http(&["--timeout", "1", &server.url("/drip/text")]);
    assert_eq!(out.stdout, b"data: first\n\n");
    // Naming the URL and what ran out, in words: it was "reading the response body: timed
    // out reading the body (per read)".
    let url = server.url("/drip/text");
    one_line_error(
        &out,
        7,
        &format!("{url}: the server sent nothing for 1 s while sending the body; --timeout"),
    );
    let out = http(&["--retry", "2", &server.url("/retry/cli/1?after=1")]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"ok");
    // Each retry is announced, as curl does.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().count() == 1 && err.contains("503; retry 1 of 2 in 1.0 s"),
        "{err}"
    );
    assert_eq!(server.retry_calls.lock().unwrap()["cli"].len(), 2);
}

#[test]
fn sessions_keep_cookies_and_credentials_in_a_private_file() {
    let server = EchoServer::start();
    let session = work_dir().join("http-cli-session.json");
    let _ = std::fs::remove_file(&session);
    let s = session.to_str().unwrap();
    let out = http(&[
        "--session",
        s,
        "-a",
        "ann:pw",
        &server.url("/set-cookie?c=sid%3D42"),
        "X-Team:blue",
        "Accept:application/vnd.api+json",
        "If-None-Match:\"v1\"",
        "Content-Language:de",
    ]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::metadata(&session).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let got = ok_json(&http(&["--session", s, &server.url("/echo")]));
    assert_eq!(got["headers"]["cookie"], "sid=42");
    assert_eq!(got["headers"]["authorization"], "Basic YW5uOnB3");
    assert_eq!(got["headers"]["x-team"], "blue");
    // The session's Accept stands against the one --json would give, as httpie keeps it.
    let json = ok_json(&http(&["--session", s, "-j", &server.url("/echo")]));
    assert_eq!(json["headers"]["accept"], "application/vnd.api+json");
    // Conditions and body headers were for that one request, as httpie keeps them.
    assert!(got["headers"].get("if-none-match").is_none(), "{got}");
    assert!(got["headers"].get("content-language").is_none(), "{got}");
    let got = ok_json(&http(&[&server.url("/echo")]));
    assert!(got["headers"].get("cookie").is_none());

    // --session-read-only sends what the file holds and leaves the file as it was.
    let before = std::fs::read(&session).unwrap();
    let out = http(&[
        "--session-read-only",
        s,
        &server.url("/set-cookie?c=other%3D1"),
        "X-Team:red",
    ]);
    assert!(out.status.success());
    assert_eq!(std::fs::read(&session).unwrap(), before);
    let got = ok_json(&http(&["--session-read-only", s, &server.url("/echo")]));
    assert_eq!(got["headers"]["cookie"], "sid=42");
    assert_eq!(got["headers"]["x-team"], "blue");
    one_line_error(
        &http(&["--session", s, "--session-read-only", s, &server.url("/")]),
        2,
        "--session",
    ); // A header given replaces the session's of that name (one field, not the old one and
    // the new), and a Cookie given joins the jar's cookies in it.
    let got = ok_json(&http(&[
        "--session-read-only",
        s,
        &server.url("/echo"),
        "X-Team:green",
    ]));
    assert_eq!(got["headers"]["x-team"], "green");
    ok_json(&http(&[
        "--session",
        s,
        &server.url("/echo"),
        "Cookie:mine=1",
    ]));
    let got = ok_json(&http(&[
        "--session",
        s,
        &server.url("/echo"),
        "Cookie:mine=9",
    ]));
    assert_eq!(got["headers"]["cookie"], "mine=9; sid=42");
}

#[test]
fn a_session_behind_a_link_or_a_tilde_is_written_where_httpie_writes_it() {
    let server = EchoServer::start();
    let dir = work_dir().join("http-session-places");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("dotfiles")).unwrap();
    std::fs::create_dir_all(dir.join("home")).unwrap();
    // A dotfiles link made before the first run leads nowhere yet: the file is made where
    // it leads and the link stays (it was replaced by a file beside it).
    let link = dir.join("api.json");
    std::os::unix::fs::symlink("dotfiles/api.json", &link).unwrap();
    let set = server.url("/set-cookie?c=sid%3D1");
    assert!(
        http(&["--session", link.to_str().unwrap(), &set])
            .status
            .success()
    );
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    let kept = std::fs::read_to_string(dir.join("dotfiles/api.json")).unwrap();
    assert!(kept.contains("sid"), "{kept}");
    // `--session=~/s.json` reaches netkit unexpanded by the shell; `~` is the home, as in
    // httpie (it made a directory named `~`).
    let home = dir.join("home");
    let out = Command::new(netkit_bin())
        .args(["http", "--session=~/s.json", &set])
        .current_dir(&dir)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(home.join("s.json").exists());
    assert!(!dir.join("~").exists());
    // `~USER/` is that user's home, as a shell and httpie read it.
    let out = Command::new(netkit_bin())
        .args(["http", "--session=~nobody-such-user/s.json", &set])
        .current_dir(&dir)
        .output()
        .unwrap();
    one_line_error(&out, 2, "no home directory for `~nobody-such-user`");
    assert!(!dir.join("~nobody-such-user").exists());
}

#[test]
fn another_tools_cookie_file_is_named_and_oversized_cookies_are_refused_as_curl_refuses_them() {
    let server = EchoServer::start();
    let dir = work_dir().join("http-session-foreign");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let jar = dir.join("jar.txt");
    std::fs::write(
        &jar,
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\ta\t1\n",
    )
    .unwrap();
    let echo = server.url("/echo");
    one_line_error(
        &http(&["--session", jar.to_str().unwrap(), &echo]),
        2,
        "a curl (Netscape) cookie jar",
    );
    let httpie = dir.join("httpie.json");
    std::fs::write(
        &httpie,
        r#"{"__meta__": {"httpie": "3.2.4"}, "auth": {"type": null}, "cookies": [], "headers": []}"#,
    )
    .unwrap();
    one_line_error(
        &http(&["--session", httpie.to_str().unwrap(), &echo]),
        2,
        "an httpie session file",
    );
    // A 5000-byte cookie would go back with every request; 60 cookies in one response
    // fill the jar: 4096 bytes and 50 a response, as curl takes them. `Domain=localhost`
    // from 127.0.0.1 is not the host's: refused without being called a public suffix.
    let session = dir.join("s.json");
    let s = session.to_str().unwrap();
    let big = format!("big%3D{}", "x".repeat(5000));
    let mut many = vec![
        "c=lh%3D1%3B%20Domain%3Dlocalhost".to_owned(),
        format!("c={big}"),
    ];
    many.extend((0..60).map(|i| format!("c=n{i}%3D1")));
    let out = http(&[
        "--session",
        s,
        &server.url(&format!("/set-cookie?{}", many.join("&"))),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("public suffix"), "{err}");
    let got = ok_json(&http(&["--session-read-only", s, &echo]));
    let sent = got["headers"]["cookie"].as_str().unwrap().to_owned();
    // The first 50 taken, less the one for localhost.
    assert_eq!(sent.split("; ").count(), 49, "{sent}");
    assert!(!sent.contains("big=") && !sent.contains("lh="), "{sent}");
}

#[test]
fn a_session_name_is_kept_per_host_as_httpie_keeps_it() {
    let server = EchoServer::start();
    let config = work_dir().join("http-named-session-config");
    let _ = std::fs::remove_dir_all(&config);
    let vars = [("XDG_CONFIG_HOME", config.to_str().unwrap())];
    let out = http_env(
        &["--session", "ann", &server.url("/set-cookie?c=sid%3D7")],
        &vars,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = server
        .url("/")
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let host_dir = config.join(format!("netkit/sessions/127.0.0.1_{port}"));
    let file = host_dir.join("ann.json");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&host_dir), mode(&file)), (0o700, 0o600));
    let got = ok_json(&http_env(
        &["--session-read-only", "ann", &server.url("/echo")],
        &vars,
    ));
    assert_eq!(got["headers"]["cookie"], "sid=7");
    // The shorthand URL (`:PORT/path`, as httpie) names localhost's sessions.
    let shorthand = format!(":{port}/echo");
    let out = http_env(&["--session", "ann", &shorthand], &vars);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        config
            .join(format!("netkit/sessions/localhost_{port}/ann.json"))
            .exists()
    );
    // Another host (the same server by its name) has sessions of its own.
    let other = server.url("/echo").replace("127.0.0.1", "localhost");
    let got = ok_json(&http_env(&["--session", "ann", &other], &vars));
    assert!(got["headers"].get("cookie").is_none(), "{got}");
    one_line_error(
        &http_env(&["--session", "..", &server.url("/")], &vars),
        2,
        "session name",
    );
    // A host of dots is no host: `..` put the file above sessions/.
    for dots in ["http://../", "http://%2e%2e/", "http://./"] {
        one_line_error(
            &http_env(&["--offline", "--session", "ann", dots], &vars),
            2,
            "no host",
        );
    }
    assert!(!config.join("netkit/ann.json").exists());
}

#[test]
fn the_proxy_carries_the_request() {
    let proxy = EchoServer::start();
    let got = ok_json(&http(&[
        "--proxy",
        &proxy.url(""),
        "http://example.invalid/through?x=1",
    ]));
    // The request went to the proxy naming the whole URL (as curl and httpie send it), never
    // to example.invalid itself, and no tunnel was asked for.
    assert_eq!(got["target"], "http://example.invalid/through?x=1");
    assert_eq!(got["headers"]["host"], "example.invalid");
    assert!(proxy.tunnels.lock().unwrap().is_empty());
    // Without a scheme, with a slash after the port, as curl and requests take it: the URL
    // was checked with `http://` added, and given to ureq without it.
    let bare = format!("{}/", proxy.addr);
    let got = ok_json(&http_env(
        &["http://example.invalid/bare"],
        &[("http_proxy", bare.as_str())],
    ));
    assert_eq!(got["target"], "http://example.invalid/bare");
    // On one kept-alive connection every request names its URL; a body is sent as it is, even
    // one that reads like a request.
    let body = "GET /not-a-request HTTP/1.1\r\n";
    let got = ok_json(&http(&[
        "--follow",
        "--proxy",
        &proxy.url(""),
        "--raw",
        body,
        "POST",
        "http://example.invalid:8080/redirect-to?url=/echo&status=307",
    ]));
    assert_eq!(got["body"], body);
    // Nor after a head that waits for 100 Continue (here it never comes: ureq sends the body
    // after a second).
    let got = ok_json(&http(&[
        "--proxy",
        &proxy.url(""),
        "--raw",
        body,
        "POST",
        "http://example.invalid:8080/continued",
        "Expect:100-continue",
    ]));
    assert_eq!(got["body"], body);
    assert_eq!(
        proxy.forwarded.lock().unwrap().as_slice(),
        [
            "http://example.invalid/through?x=1",
            "http://example.invalid/bare",
            "http://example.invalid:8080/redirect-to?url=/echo&status=307",
            "http://example.invalid:8080/echo",
            "http://example.invalid:8080/continued",
        ]
    );
    // httpie's PROTOCOL:URL: the one for the URL's scheme is used, one for another is not.
    let closed_proxy = format!("https:http://127.0.0.1:{}", free_port());
    let http_proxy = format!("http:{}", proxy.url(""));
    ok_json(&http(&[
        "--proxy",
        &closed_proxy,
        "--proxy",
        &http_proxy,
        "http://example.invalid/by-scheme",
    ]));
    assert_eq!(proxy.forwarded.lock().unwrap().len(), 6);
    one_line_error(
        &http(&[
            "--proxy",
            "ftp:http://127.0.0.1:1",
            "http://example.invalid/",
        ]),
        2,
        "http or https",
    );
    // A proxy that cannot be reached is named, not taken for the target (as curl).
    let closed_port = free_port();
    let target = proxy.url("/never");
    let out = http(&[
        "--proxy",
        &format!("http://127.0.0.1:{closed_port}"),
        &target,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("proxy 127.0.0.1:{closed_port}")) && err.contains(&target),
        "{err}"
    );
    // A host in NO_PROXY is reached directly, past an explicit --proxy too (as curl).
    let got = ok_json(&http_env(
        &[
            "--proxy",
            &format!("http://127.0.0.1:{closed_port}"),
            &target,
        ],
        &[("NO_PROXY", "localhost, 127.0.0.1")],
    ));
    assert_eq!(got["target"], "/never");
    let dead = format!("http://127.0.0.1:{closed_port}");
    // And by a CIDR block, as curl and requests read it.
    let got = ok_json(&http_env(
        &[&target],
        &[
            ("http_proxy", dead.as_str()),
            ("NO_PROXY", "10.0.0.0/8,127.0.0.0/8"),
        ],
    ));
    assert_eq!(got["target"], "/never");
    // An empty `no_proxy=` (an env file's way to unset it) hides no NO_PROXY, as curl and
    // requests read them: the hosts listed there went to the proxy.
    let got = ok_json(&http_env(
        &[&target],
        &[
            ("http_proxy", dead.as_str()),
            ("no_proxy", ""),
            ("NO_PROXY", "127.0.0.1"),
        ],
    ));
    assert_eq!(got["target"], "/never");
    // Each scheme's variable is for that scheme alone: HTTPS_PROXY does not carry http://.
    let got = ok_json(&http_env(&[&target], &[("HTTPS_PROXY", dead.as_str())]));
    assert_eq!(got["target"], "/never");
    let both = ok_json(&http_env(
        &[&proxy.url("/by-its-variable")],
        &[
            ("HTTPS_PROXY", dead.as_str()),
            ("http_proxy", proxy.url("").as_str()),
        ],
    ));
    assert_eq!(both["target"], proxy.url("/by-its-variable"));
    // HTTP_PROXY in capitals carries http:// too, but not under CGI, where a visitor's
    // `Proxy:` header sets it (httpoxy: it got the request's credentials), as requests.
    let upper = [("HTTP_PROXY", proxy.url(""))];
    let upper: Vec<(&str, &str)> = upper.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let got = ok_json(&http_env(&[&target], &upper));
    assert_eq!(got["target"], target);
    let cgi = [upper.as_slice(), &[("REQUEST_METHOD", "GET")]].concat();
    let got = ok_json(&http_env(&[&target], &cgi));
    assert_eq!(got["target"], "/never");
    // A proxy variable that does not parse is an error, not a way around the proxy; so is a
    // port that cannot be (ureq read it as 80).
    one_line_error(
        &http_env(&[&target], &[("http_proxy", "garbage url")]),
        2,
        "http_proxy",
    );
    // Only the variable that would carry the request counts, as curl reads them.
    for vars in [
        &[("https_proxy", "garbage url")][..],
        &[("http_proxy", "garbage url"), ("no_proxy", "127.0.0.1")],
    ] {
        let got = ok_json(&http_env(&[&target], vars));
        assert_eq!(got["target"], "/never", "{vars:?}");
    }
    one_line_error(
        &http(&["--proxy", "http://127.0.0.1:99999", &target]),
        2,
        "invalid port number",
    );
}

#[test]
fn a_real_proxy_forwards_plain_http_and_tunnels_only_to_its_tls_port() {
    // tinyproxy, set up as proxies are by default: CONNECT only to one TLS port (443 there).
    let proxy = env("NETKIT_TEST_PROXY");
    let with_login = format!("http://netkit:pr0xy-s3cret@{proxy}");
    let origin = EchoServer::start();
    let got = ok_json(&http(&["--proxy", &with_login, &origin.url("/via?x=1")]));
    assert_eq!(got["target"], "/via?x=1");
    assert!(
        got["headers"]["via"]
            .as_str()
            .is_some_and(|via| via.contains("tinyproxy")),
        "{got}"
    );
    // The proxy's credentials are for the proxy: the origin never sees them.
    assert!(got["headers"].get("proxy-authorization").is_none(), "{got}");
    assert!(origin.tunnels.lock().unwrap().is_empty());
    // From the environment, as curl and httpie read it.
    let got = ok_json(&http_env(
        &[&origin.url("/from-env")],
        &[("http_proxy", with_login.as_str())],
    ));
    assert!(got["headers"]["via"].is_string(), "{got}");
    // Without credentials the proxy's 407 is the answer, with httpie's exit status for a 4xx
    // under --check-status.
    let out = http(&[
        "--check-status",
        "--proxy",
        &format!("http://{proxy}"),
        &origin.url("/"),
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("407"),
        "{out:?}"
    );
    // https goes through a tunnel, with the certificate checked end to end.
    let tls = format!("{}/hello.txt", env("NETKIT_TEST_NGINX_TLS_URL"));
    let out = http(&[
        "-b",
        "--proxy",
        &format!("https:{with_login}"),
        "--verify",
        &env("NETKIT_TEST_NGINX_CA"),
        &tls,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from nginx\n",
        "{out:?}"
    );
    // A tunnel refused for want of credentials says what is missing.
    let out = http(&[
        "--proxy",
        &format!("https:http://{proxy}"),
        "--verify",
        &env("NETKIT_TEST_NGINX_CA"),
        &tls,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && err.contains("407") && err.contains("credentials"),
        "{err}"
    );
    let log = std::fs::read_to_string(env("NETKIT_TEST_PROXY_LOG")).unwrap();
    assert!(log.contains("GET http://127.0.0.1:"), "{log}");
    assert!(log.contains("CONNECT 127.0.0.1:"), "{log}");
}

#[test]
fn print_options_and_offline() {
    let server = EchoServer::start();
    let url = server.url("/echo");
    let out = http(&["-v", &url, "a=1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("POST /echo HTTP/1.1\n"), "{text}");
    assert!(
        text.contains("\n{\"a\":\"1\"}\n") && text.contains("\nHTTP/1.1 200 OK\n"),
        "{text}"
    );
    let out = http(&["-h", &url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 200 OK\n") && !text.contains("\"method\""),
        "{text}"
    );
    assert!(
        text.contains("\nContent-Type: application/json") && text.contains("\nContent-Length: "),
        "header names as servers send them: {text}"
    );
    let root = std::path::PathBuf::from(env("NETKIT_TEST_SERVE_ROOT"));
    std::fs::write(root.join("etag.txt"), "tagged\n").unwrap();
    let out = http(&["-h", &format!("{}/etag.txt", env("NETKIT_TEST_SERVE_URL"))]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\nETag: \""), "as the RFC spells it: {text}");
    let out = http(&["-b", &url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("{\"method\":\"GET\"") && !text.contains("HTTP/1.1"),
        "{text}"
    );
    let out = http(&["--print=H", &url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("GET /echo HTTP/1.1\n") && !text.contains("HTTP/1.1 200"),
        "{text}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = http(&["--offline", &format!("http://{closed}/x"), "k=v", "X-H:1"]);
    assert!(out.status.success(), "--offline must not connect");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("POST /x HTTP/1.1\n")
            && text.contains("X-H: 1\n")
            && text.ends_with("{\"k\":\"v\"}\n\n"),
        "{text}"
    );
    // What a send refuses is refused unsent too, naming what is wrong: a preview showed
    // `X-Evil: 1` as a header of its own, and a directory as an empty multipart body.
    let dir = work_dir().join("http-cli-offline-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let (unsent, part) = (format!("http://{closed}/x"), format!("f@{}", dir.display()));
    for (args, named) in [
        (vec![&unsent, "X:a\r\nX-Evil: 1"], "\"X\""),
        (
            vec![&unsent, "Host:b\u{fc}cher.example"],
            "xn--bcher-kva.example",
        ),
        (vec!["http://127.0.0.1:9/a\nb"], "a tab or line break"),
        (
            vec!["--bearer", "tok\r\nX-Evil: 1", &unsent],
            "\"Authorization\"",
        ),
        (
            vec!["-f", "POST", &unsent, &part],
            "http-cli-offline-dir: a directory",
        ),
    ] {
        let out = http(&[&["--offline"][..], &args].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            out.stdout.is_empty() && err.contains(named),
            "{args:?}: {err}"
        );
    }
    // Formatted as a response body is, when asked (by default on a terminal).
    let out = http(&["--offline", "--pretty=format", &url, "k=v"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n{\n    \"k\": \"v\"\n}\n\n"), "{text}");
    // A body from a file is shown too, as httpie shows it.
    let file = work_dir().join("http-cli-offline-body.txt");
    std::fs::write(&file, "from a file").unwrap();
    let body = format!("@{}", file.display());
    let out = http(&["--offline", "PUT", &url, &body]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\nContent-Length: 11\n") && text.ends_with("\n\nfrom a file\n\n"),
        "{text}"
    );
    // And a multipart one, boundary and all, as httpie shows it.
    let upload = format!("doc@{}", file.display());
    let out = http(&["--offline", "--multipart", &url, "title=t", &upload]);
    let text = String::from_utf8_lossy(&out.stdout);
    let boundary = text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: multipart/form-data; boundary="))
        .unwrap_or_else(|| panic!("no boundary: {text}"));
    assert!(
        text.contains(&format!("\n\n--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nt\r\n"))
            && text.contains("filename=\"http-cli-offline-body.txt\"\r\nContent-Type: text/plain\r\n\r\nfrom a file\r\n")
            && text.ends_with(&format!("--{boundary}--\r\n\n\n")),
        "{text}"
    );
}

#[test]
fn chunked_sends_every_kind_of_body_without_a_length() {
    let server = EchoServer::start();
    let url = server.url("/echo");
    let file = work_dir().join("http-cli-chunked.txt");
    std::fs::write(&file, "from a file").unwrap();
    let upload = format!("doc@{}", file.display());
    let body = format!("@{}", file.display());
    for (args, expected) in [
        (vec!["a=b"], "{\"a\":\"b\"}"),
        (vec!["--raw", "raw text"], "raw text"),
        (vec![body.as_str()], "from a file"),
        (
            vec!["--multipart", "title=t", upload.as_str()],
            "from a file",
        ),
    ] {
        let mut all = vec!["--chunked", "POST", url.as_str()];
        all.extend(args);
        let got = ok_json(&http(&all));
        assert_eq!(
            got["headers"]["transfer-encoding"], "chunked",
            "{all:?}: {got}"
        );
        assert!(
            got["headers"].get("content-length").is_none(),
            "{all:?}: {got}"
        );
        assert!(
            got["body"].as_str().unwrap().contains(expected),
            "{all:?}: {got}"
        );
    }
}

#[test]
fn path_as_is_sends_dot_segments_as_written() {
    let server = EchoServer::start();
    let written = format!("{}/a/./b/../../x%2e%2e?q=1", server.url(""));
    let got = ok_json(&http(&["--path-as-is", &written]));
    assert_eq!(got["target"], "/a/./b/../../x%2e%2e?q=1", "{got}");
    let got = ok_json(&http(&[&written]));
    assert_eq!(
        got["target"], "/x%2e%2e?q=1",
        "resolved by default, as curl: {got}"
    );
    // A server's traversal defence meets the raw path: netkit's own refuses it.
    let serve = env("NETKIT_TEST_SERVE_URL");
    let out = http(&[
        "--path-as-is",
        "--check-status",
        "-h",
        &format!("{serve}/../etc/passwd"),
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.1 403"));
}

#[test]
fn verbose_shows_the_request_headers_that_go_on_the_wire() {
    let server = EchoServer::start();
    let url = server.url("/echo");
    let cases: [&[&str]; 6] = [
        &[],
        &["User-Agent:", "Accept:", "Accept-Encoding:"],
        &["Accept:application/xml", "X-Team:blue"],
        &["a=1", "Cookie:k=v"],
        &["a=1", "Accept:text/plain"],
        &["Host:example.test"],
    ];
    for items in cases {
        let mut args = vec!["-v", &url];
        args.extend(items);
        let out = http(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        let printed: std::collections::BTreeSet<String> = text
            .lines()
            .skip(1)
            .take_while(|line| !line.is_empty())
            .map(|line| line.to_ascii_lowercase())
            .collect();
        let body = text.lines().last().unwrap_or_default();
        let got: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
        let sent: std::collections::BTreeSet<String> = got["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, value)| {
                format!("{name}: {}", value.as_str().unwrap()).to_ascii_lowercase()
            })
            .collect();
        assert_eq!(printed, sent, "{items:?}: {text}");
    }
    // A header that cannot go on the wire is named, not sent.
    let out = http(&[&url, "X-A:b\r\nInjected: 1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad header \"X-A\"") && err.contains("line break"),
        "{err}"
    );
}

/// Runs `netkit http ARGS` on a terminal of its own (util-linux `script`) and waits up to
/// 10 s for `text` to be on its screen; true when it came. The command is killed after.
fn shown_on_a_terminal_while_running(args: &str, text: &str) -> bool {
    let command = format!("{} http {args}", netkit_bin().display());
    let mut child = netkit_tests::Spawned::start(
        Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped()),
    );
    let mut screen = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = std::io::Read::read(&mut screen, &mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(bytes) => seen.extend(bytes),
            Err(_) => break,
        }
        if String::from_utf8_lossy(&seen).contains(text) {
            return true;
        }
    }
    false
}

#[test]
fn a_terminal_shows_a_stream_as_it_comes() {
    // An event stream's first event shows while the server holds the rest back for 30 s.
    let server = EchoServer::start();
    let sse = server.url("/drip/sse");
    assert!(shown_on_a_terminal_while_running(&sse, "data: first"));
    // Text is formatted when it is JSON, but a log that does not start as JSON streams.
    let text = server.url("/drip/text");
    assert!(shown_on_a_terminal_while_running(&text, "data: first"));
    // JSON is pretty-printed whole, unless -S asks for it as it comes.
    let json = server.url("/drip/json");
    assert!(shown_on_a_terminal_while_running(
        &format!("-S {json}"),
        "data: first"
    ));
}

#[test]
fn binary_bytes_before_json_are_not_written_to_a_terminal() {
    // As httpie: the body is binary (its NUL was written raw, then the formatted JSON).
    let server = EchoServer::start();
    assert!(shown_on_a_terminal_while_running(
        &server.url("/binary-json"),
        "binary data not shown"
    ));
}

#[test]
fn a_terminal_gets_the_whole_of_a_text_body_too_long_to_format() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    let line = "netkit prints every line of this on a terminal\n";
    let text = line.repeat((70 << 20) / line.len());
    std::fs::write(root.join("long.txt"), &text).unwrap();
    let command = format!(
        "{} http -b {}/long.txt",
        netkit_bin().display(),
        env("NETKIT_TEST_NGINX_URL")
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    let shown: Vec<u8> = out.stdout.into_iter().filter(|&b| b != b'\r').collect();
    assert_eq!(shown.len(), text.len(), "the terminal got a cut body");
    assert!(shown == text.as_bytes());
}

#[test]
fn meta_prints_the_elapsed_time_as_httpie() {
    let server = EchoServer::start();
    let url = server.url("/status/200");
    let elapsed = |text: &str| {
        let secs = text
            .strip_prefix("Elapsed time: ")
            .and_then(|rest| rest.strip_suffix("s\n\n"))
            .unwrap_or_else(|| panic!("{text:?}"));
        let (whole, fraction) = secs.split_once('.').unwrap();
        assert!(
            whole.parse::<u64>().is_ok() && fraction.len() == 9,
            "{text:?}"
        );
    };
    let out = http(&["-m", &url]);
    assert_eq!(out.status.code(), Some(0));
    elapsed(&String::from_utf8_lossy(&out.stdout));
    // After a piped body, a blank line, as httpie lays it out.
    let out = http(&["-p", "bm", &url]);
    let text = String::from_utf8_lossy(&out.stdout);
    elapsed(
        text.strip_prefix("status 200\n\n")
            .unwrap_or_else(|| panic!("{text:?}")),
    );
}

#[test]
fn a_server_that_closes_without_answering_is_named_so() {
    let server = EchoServer::start();
    one_line_error(
        &http(&[&server.url("/close")]),
        1,
        "the server closed the connection without answering",
    );
}

#[test]
fn a_body_cut_short_is_a_one_line_error() {
    let server = EchoServer::start();
    let out = http(&[&server.url("/truncate/1000")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("closed 500 bytes before the end of the body (500 of 1000 bytes came)")
            && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(out.stdout.len(), 500);
}

#[test]
fn a_body_ending_at_the_close_cut_by_a_reset_is_an_error_not_the_end() {
    // ureq read the reset as the body's end: exit 0, and -d named the part as the file.
    let server = EchoServer::start();
    let url = server.url("/reset/500000");
    let out = http(&[&url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("reset") && err.lines().count() == 1, "{err}");
    let dest = work_dir().join("http-cli-reset.bin");
    let _ = std::fs::remove_file(&dest);
    let out = http(&["-d", "-o", dest.to_str().unwrap(), &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(!dest.exists(), "a cut download was named as the whole file");
}

#[test]
fn piped_output_is_exactly_the_body_and_a_terminal_gets_colours() {
    let server = EchoServer::start();
    let out = http(&[&server.url("/bytes/300000")]);
    let expected: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
    assert!(out.stdout == expected, "piped output is not the raw body");
    // A text body in another charset too, piped or saved with -o or -d (they were turned
    // into UTF-8, and -d failed: more bytes came than were announced).
    let latin1 = server.url("/latin1");
    assert_eq!(http(&[&latin1]).stdout, b"caf\xe9");
    let saved = work_dir().join("http-cli-latin1.txt");
    for flags in [&["-o"][..], &["-d", "-o"]] {
        let _ = std::fs::remove_file(&saved);
        let mut args = flags.to_vec();
        args.extend([saved.to_str().unwrap(), latin1.as_str()]);
        let out = http(&args);
        assert!(out.status.success(), "{flags:?}: {out:?}");
        assert_eq!(std::fs::read(&saved).unwrap(), b"caf\xe9", "{flags:?}");
    }
    // A download keeps a body as it came, as curl -o: it asks for no coding, so one sent
    // anyway is the file's own (a .tar.gz a server labels gzip).
    let _ = std::fs::remove_file(&saved);
    let gzip = server.url("/gzip");
    assert!(
        http(&["-d", "-o", saved.to_str().unwrap(), &gzip])
            .status
            .success()
    );
    let kept = std::fs::read(&saved).unwrap();
    assert!(kept.len() == 36 && kept.starts_with(&[31, 139]), "{kept:?}");
    // What -v shows a download sending is what it sends, and a user's Accept-Encoding is
    // sent alone (-v showed gzip, deflate, br and identity went; a user's went with identity).
    for (item, expected) in [(None, "identity"), (Some("Accept-Encoding:gzip"), "gzip")] {
        let _ = std::fs::remove_file(&saved);
        let echo = server.url("/echo");
        let mut args = vec!["-v", "-d", "-o", saved.to_str().unwrap(), echo.as_str()];
        args.extend(item);
        let out = http(&args);
        assert!(out.status.success(), "{out:?}");
        // On stderr, as httpie's --download shows it.
        let shown = String::from_utf8_lossy(&out.stderr);
        assert!(
            shown.contains(&format!("Accept-Encoding: {expected}\n"))
                && shown.matches("Accept-Encoding").count() == 1,
            "{shown}"
        );
        let got: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
        assert_eq!(got["headers"]["accept-encoding"], expected, "{item:?}");
    }
    // A file replaced keeps its permissions and a link is written through, as curl -o
    // writes into them (-d renamed its part over them: a 0600 file came out 0644).
    let private = work_dir().join("http-cli-private.txt");
    let link = work_dir().join("http-cli-link.txt");
    let _ = std::fs::remove_file(&link);
    std::fs::write(&private, "old").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Another user's (nobody's), refreshed by root: still theirs after.
    std::os::unix::fs::chown(&private, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::symlink(&private, &link).unwrap();
    for dest in [&private, &link] {
        let out = http(&["-d", "-o", dest.to_str().unwrap(), &latin1]);
        assert!(out.status.success(), "{out:?}");
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read(&private).unwrap(), b"caf\xe9");
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(std::fs::metadata(&private).unwrap().uid(), 65534);
    // A device is written into (`-d -o /dev/null`), not replaced by a file: a null device of
    // our own, so that a failure here cannot take the machine's.
    let null = work_dir().join("http-cli-null");
    let _ = std::fs::remove_file(&null);
    let made = Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status()
        .expect("mknod (coreutils)");
    assert!(made.success(), "mknod needs root, as cargo xtask test runs");
    let out = http(&["-d", "-o", null.to_str().unwrap(), &latin1]);
    assert!(out.status.success(), "{out:?}");
    use std::os::unix::fs::FileTypeExt as _;
    assert!(
        std::fs::metadata(&null)
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // -h shows the headers as they came, gzip's included (ureq's decoding dropped them).
    let head = http(&["-h", &server.url("/gzip")]);
    let head = String::from_utf8_lossy(&head.stdout);
    assert!(
        head.contains("Content-Encoding: gzip") && head.contains("Content-Length: 36"),
        "{head}"
    );

    let url = server.url("/echo");
    // `ARGS` go before the URL, `AFTER` after it.
    let script = |env: &str, args: &str, after: &str| {
        let line = format!("{env} {} http {args} {url} {after}", netkit_bin().display());
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .output()
            .expect("script (util-linux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tty = script("", "", "");
    assert!(tty.contains("\x1b[1;32m200 OK\x1b[0m"), "{tty:?}");
    assert!(
        tty.contains("    \"method\": ") || tty.contains("  \x1b[34m\"method\""),
        "{tty:?}"
    );
    for plain in [
        script("NO_COLOR=1", "", ""),
        script("", "--pretty=format", ""),
    ] {
        assert!(
            !plain.contains('\x1b') && plain.contains("    \"method\": \"GET\""),
            "{plain:?}"
        );
    }
    let raw = script("", "--pretty=none -b", "");
    assert!(
        !raw.contains('\x1b') && raw.starts_with("{\"method\":\"GET\""),
        "{raw:?}"
    );

    // A binary body sent is not written to the terminal either, only said to be there.
    let binary = work_dir().join("http-cli-binary-body.bin");
    std::fs::write(&binary, b"\x00\x01binary\x00").unwrap();
    let sent = script("", "--offline PUT", &format!("@{}", binary.display()));
    assert!(
        sent.contains("NOTE: binary data not shown in terminal") && !sent.contains("binary\0"),
        "{sent:?}"
    );

    // --pretty asks for formatting and colours when piped too, as httpie's.
    // Formatting sorts headers and JSON keys by name, as httpie; --unsorted keeps the order
    // they came in (the echo server sends "method" first, then "target", "headers", "body").
    let formatted = http(&["--pretty=format", "-p", "hb", &url, "Zed:1", "Abc:2"]);
    let text = String::from_utf8_lossy(&formatted.stdout);
    let (head, body) = text.split_once("\n\n").unwrap();
    let names: Vec<&str> = head
        .lines()
        .skip(1)
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert!(names == sorted && names.len() > 1, "{head}");
    assert!(body.starts_with("{\n    \"body\": \"\""), "{body:?}");
    let keys = |json: &str| -> Vec<String> {
        json.lines()
            .filter(|l| l.starts_with("    \"") || l.starts_with("        \""))
            .map(|l| l.trim().split('"').nth(1).unwrap().to_owned())
            .collect()
    };
    let shown = keys(body);
    let nested: Vec<&String> = shown
        .iter()
        .filter(|k| ["abc", "zed"].contains(&k.as_str()))
        .collect();
    assert!(nested == ["abc", "zed"], "nested keys unsorted: {body}");
    let unsorted = http(&["--pretty=format", "--unsorted", &url]);
    let text = String::from_utf8_lossy(&unsorted.stdout);
    assert!(text.starts_with("{\n    \"method\": \"GET\""), "{text:?}");
    let coloured = http(&["--pretty=all", &url]);
    let text = String::from_utf8_lossy(&coloured.stdout);
    assert!(text.contains("\x1b[34m\"method\""), "{text:?}");

    // JSON sent as text or JavaScript, or after a byte order mark or an anti-XSSI guard, is
    // formatted too, the prefix kept, as httpie formats it; text that is not JSON is as sent.
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    let nginx = env("NETKIT_TEST_NGINX_URL");
    for (name, body, shown) in [
        (
            "api.txt",
            "{\"a\":[1]}",
            "{\n    \"a\": [\n        1\n    ]\n}\n",
        ),
        ("api.js", "[2]", "[\n    2\n]\n"),
        (
            "guarded.txt",
            ")]}',\n{\"b\":3}",
            ")]}',\n{\n    \"b\": 3\n}\n",
        ),
        (
            "bom.txt",
            "\u{feff}{\"c\":4}",
            "\u{feff}{\n    \"c\": 4\n}\n",
        ),
        ("plain.txt", "not {json", "not {json"),
    ] {
        std::fs::write(root.join(name), body).unwrap();
        let out = http(&["--pretty=format", "-b", &format!("{nginx}/{name}")]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), shown, "{name}");
    }
}

#[test]
fn a_download_stopped_by_a_signal_says_where_its_part_is_kept() {
    use std::os::unix::process::ExitStatusExt as _;
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    let data: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("cli-signal.bin"), &data).unwrap();
    let dir = work_dir().join("http-cli-signal");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let slow = format!("{}/slow/cli-signal.bin", env("NETKIT_TEST_NGINX_URL"));
    let absolute = dir.join("absolute.bin");
    // Ctrl-C and SIGTERM, a name relative to the working directory and an absolute one:
    // the part was kept and nothing said so, nor how to go on from it.
    for (signal, number, output) in [
        ("-INT", 2, "relative.bin"),
        ("-TERM", 15, absolute.to_str().unwrap()),
    ] {
        let mut child = netkit_tests::Spawned::start(
            Command::new(netkit_bin())
                .current_dir(&dir)
                .args(["http", "-d", &slow, "-o", output])
                .stderr(std::process::Stdio::piped()),
        );
        let part = dir.join(format!("{output}.part"));
        netkit_tests::wait_for_file_size(&part, 1 << 20, &mut child);
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let out = child.wait_with_output();
        // Killed by it as before, for the shell's 130/143.
        assert_eq!(out.status.signal(), Some(number), "{out:?}");
        let have = std::fs::metadata(&part).unwrap().len();
        let err = String::from_utf8_lossy(&out.stderr);
        let said = format!(
            "netkit: stopped; {have} bytes kept in {output}.part to resume from with --continue (-c)\n"
        );
        assert_eq!(err, said);
        assert!(have < data.len() as u64, "{have}");
    }
}

#[test]
fn downloads_write_the_file_and_resume_after_a_kill() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    let data: Vec<u8> = (0..(16u32 << 20))
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 24) as u8)
        .collect();
    std::fs::write(root.join("cli-resume.bin"), &data).unwrap();
    let dir = work_dir().join("http-cli-downloads");
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("resumed.bin");
    let part = dir.join("resumed.bin.part");
    // What a run before this one in the same work directory finished there (a second
    // `cargo test` after `cargo xtask test`) is no target left by the kill below.
    let _ = std::fs::remove_file(&dest);
    let _ = std::fs::remove_file(&part);
    let slow = format!("{}/slow/cli-resume.bin", env("NETKIT_TEST_NGINX_URL"));
    let mut child = netkit_tests::Spawned::start(Command::new(netkit_bin()).args([
        "http",
        "-d",
        &slow,
        "-o",
        dest.to_str().unwrap(),
    ]));
    netkit_tests::wait_for_file_size(&part, 1 << 20, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dest.exists(), "a killed download left its target");
    let have = std::fs::metadata(&part).unwrap().len();
    assert!(
        have > 0 && have < data.len() as u64,
        "part has {have} bytes"
    );
    let full = format!("{}/cli-resume.bin", env("NETKIT_TEST_NGINX_URL"));
    let out = http(&["-d", "-c", &full, "-o", dest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(&dest).unwrap();
    assert_eq!(
        hex(&sha2::Sha256::digest(&got)),
        hex(&sha2::Sha256::digest(&data))
    );
    assert!(!part.exists());

    // A partial file of another tool's at the -o name is continued, as httpie's -c -o: only
    // the rest is asked for (nginx logs the bytes it sent).
    let other = dir.join("from-curl.bin");
    std::fs::write(&other, &data[..3_000_000]).unwrap();
    let out = http(&["-d", "-c", &full, "-o", other.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read(&other).unwrap() == data,
        "the continued file differs"
    );
    let log = std::fs::read_to_string(
        std::path::Path::new(&env("NETKIT_TEST_NGINX_ROOT")).join("../access.log"),
    )
    .unwrap();
    let rest = format!(" 206 {} ", data.len() - 3_000_000);
    assert!(
        log.lines()
            .any(|l| l.contains("GET /cli-resume.bin") && l.contains(&rest)),
        "{log}"
    );

    let out = http(&[
        "--download",
        "--check-status",
        &format!("{}/nope.bin", env("NETKIT_TEST_SERVE_URL")),
        "-o",
        dir.join("nope").to_str().unwrap(),
    ]);
    // 4 for the 404, as httpie's --download exits.
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.join("nope").exists());
}

#[test]
fn downloads_take_the_name_the_server_gives_or_the_last_url() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    std::fs::write(root.join("named.txt"), "named\n").unwrap();
    let dir = work_dir().join("http-cli-named");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let nginx = env("NETKIT_TEST_NGINX_URL");
    let piped = |args: &[&str]| {
        let out = Command::new(netkit_bin())
            .args(["http", "--download"])
            .args(args)
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // `-o -` is stdout, as in curl: no file named `-`; and so is a redirected stdout
    // without -o, as httpie and xh take `http -d URL | tar x`.
    let named = format!("{nginx}/named.txt");
    assert_eq!(piped(&["-o", "-", &named]), b"named\n");
    assert_eq!(piped(&[&named]), b"named\n");
    // Piped, it is still a download: redirects followed, and a refusal writes nothing and
    // exits as httpie's (4 for the 404).
    // So is `-d -o -`, as curl users write it (it was a plain GET: the redirect's empty
    // body and the 404's page written, exit 0).
    let redirect = format!("{nginx}/redirect/2");
    for to_stdout in [&[][..], &["-o", "-"]] {
        let redirected = [to_stdout, &[redirect.as_str()]].concat();
        assert_eq!(piped(&redirected), b"hello from nginx\n");
        let refused = Command::new(netkit_bin())
            .args(["http", "--download", &format!("{nginx}/status/404")])
            .args(to_stdout)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            (refused.status.code(), refused.stdout.len()),
            (Some(4), 0),
            "{refused:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "a file was written"
    );
    let out = http(&["-d", "-c", &named]);
    one_line_error(&out, 2, "--continue needs --output FILE");
    // On a terminal, the file is named by the server or the URL.
    let download = |args: &[&str]| {
        let line = format!(
            "cd {} && {} http --download {} < /dev/null",
            dir.display(),
            netkit_bin().display(),
            args.join(" ")
        );
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .output()
            .expect("script (util-linux)");
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    // A name with a path is cut to its last part: nothing is written outside the directory.
    download(&[&format!("{nginx}/named/named.txt")]);
    download(&[&format!("{nginx}/named/named.txt")]);
    // filename* (RFC 8187, UTF-8) is preferred to filename.
    download(&[&format!("{nginx}/named-utf8/named.txt")]);
    // After redirects, the name comes from the URL asked for, as httpie and curl -O name it:
    // a redirect does not choose the file written.
    download(&["--follow", &format!("{nginx}/redirect/2")]);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["2", "evil name.txt", "evil name.txt-1", "naïve report.txt"]
    );
    assert_eq!(
        std::fs::read(dir.join("naïve report.txt")).unwrap(),
        b"named\n"
    );
    assert!(!work_dir().join("evil name.txt").exists());
}

#[test]
fn downloads_never_write_through_a_planted_part_nor_over_a_file_not_theirs() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    std::fs::write(root.join("fresh.txt"), "fresh\n").unwrap();
    let url = format!("{}/fresh.txt", env("NETKIT_TEST_NGINX_URL"));
    let dir = work_dir().join("http-cli-planted");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let victim = work_dir().join("http-cli-victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    let in_dir = |args: &[&str]| {
        Command::new(netkit_bin())
            .args(["http", "--download"])
            .args(args)
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // In a shared directory another user can name our next part: its link was written through.
    std::os::unix::fs::symlink(&victim, dir.join("got.txt.part")).unwrap();
    let out = in_dir(&["-o", "got.txt", &url]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    assert_eq!(std::fs::read(dir.join("got.txt")).unwrap(), b"fresh\n");
    assert!(
        !std::fs::symlink_metadata(dir.join("got.txt"))
            .unwrap()
            .is_symlink()
    );
    // Resuming a file already whole is done, as curl -C - (the server's 416 made it exit 4).
    let out = in_dir(&["-c", "-o", "got.txt", &url]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(dir.join("got.txt")).unwrap(), b"fresh\n");
    // Nor is one followed to go on with it.
    std::os::unix::fs::symlink(&victim, dir.join("again.txt.part")).unwrap();
    let out = in_dir(&["-c", "-o", "again.txt", &url]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    // A directory named is refused before anything is fetched, and no part is left.
    std::fs::create_dir(dir.join("sub")).unwrap();
    one_line_error(&in_dir(&["-o", "sub", &url]), 2, "is a directory");
    assert!(!dir.join("sub.part").exists());
    // A legal name too long to take `.part` is downloaded.
    let long = "l".repeat(253);
    let out = in_dir(&["-o", &long, &url]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(dir.join(&long)).unwrap(), b"fresh\n");
    // -c without -o goes on only with a part of ours: a file of the URL's name without one
    // is not ours, and is left alone as a plain -d leaves it (it was replaced).
    std::fs::write(dir.join("fresh.txt"), "my notes\n").unwrap();
    let line = format!(
        "cd {} && {} http -d -c {url} < /dev/null",
        dir.display(),
        netkit_bin().display()
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(dir.join("fresh.txt")).unwrap(), b"my notes\n");
    assert_eq!(std::fs::read(dir.join("fresh.txt-1")).unwrap(), b"fresh\n");
    // Piped, the body is the file as the server holds it, as with -o (a `.tar.gz` labelled
    // gzip came unpacked).
    let server = EchoServer::start();
    let out = in_dir(&[&server.url("/gzip")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout[..2], [31, 139]);
}

#[test]
fn verify_flag() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    std::fs::write(root.join("tls-cli.txt"), "tls cli\n").unwrap();
    let url = format!("{}/tls-cli.txt", env("NETKIT_TEST_NGINX_TLS_URL"));
    let out = http(&[&url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        http(&["--verify", &env("NETKIT_TEST_NGINX_CA"), &url]).stdout,
        b"tls cli\n"
    );
    assert_eq!(http(&["--verify", "no", &url]).stdout, b"tls cli\n");
    // The system's roots are trusted as curl's, SSL_CERT_FILE naming them (only the bundled
    // Mozilla roots were); one naming no certificate is bad input.
    let ca = env("NETKIT_TEST_NGINX_CA");
    let out = http_env(&[&url], &[("SSL_CERT_FILE", &ca), ("SSL_CERT_DIR", "")]);
    assert_eq!(out.stdout, b"tls cli\n", "{out:?}");
    one_line_error(
        &http_env(
            &[&url],
            &[("SSL_CERT_FILE", "/dev/null"), ("SSL_CERT_DIR", "")],
        ),
        2,
        "SSL_CERT_FILE",
    );
    // A FIFO (or `<(cat ca.pem)`) can be read once: read twice, the second open waited for
    // ever.
    let fifo = netkit_tests::work_dir().join("http-cli-ca.fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let writer = {
        let (fifo, ca) = (fifo.clone(), ca.clone());
        std::thread::spawn(move || {
            let _ = std::fs::write(&fifo, std::fs::read(&ca).unwrap());
        })
    };
    let mut bounded = Command::new("timeout");
    bounded.arg("20").arg(netkit_bin()).arg("http");
    let out = run_http(
        bounded,
        &[&url],
        &[
            ("SSL_CERT_FILE", fifo.to_str().unwrap()),
            ("SSL_CERT_DIR", ""),
        ],
    );
    assert_eq!(out.stdout, b"tls cli\n", "{out:?}");
    writer.join().unwrap();
    // https:// to a port that speaks plain HTTP is named as such.
    let plain = env("NETKIT_TEST_NGINX_URL").replace("http://", "https://");
    one_line_error(&http(&[&plain]), 1, "does not answer in TLS; plain HTTP?");
}

/// `openssl s_server -www` on a free port with `dir`'s `NAME.pem` and `NAME.key`, and more
/// `args`, once it listens: the server and its URL (as `localhost`, the name certificates
/// here carry).
fn openssl_server(
    dir: &std::path::Path,
    name: &str,
    args: &[&str],
) -> (netkit_tests::Spawned, String) {
    let port = free_port().to_string();
    let server = netkit_tests::Spawned::start(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept", &port])
            .args([
                "-cert",
                &format!("{name}.pem"),
                "-key",
                &format!("{name}.key"),
            ])
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null()),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "openssl s_server"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, format!("https://localhost:{port}/"))
}

#[test]
fn a_self_signed_certificate_in_the_ca_file_is_trusted_as_by_curl_cacert() {
    // What `openssl req -x509` makes is marked as a CA, which webpki refused as a server's
    // own certificate (CaUsedAsEndEntity) even when the CA file held it.
    let dir = work_dir().join("http-cli-self-signed");
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl (cargo xtask test installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for (name, usage) in [
        ("self", "serverAuth"),
        ("other", "serverAuth"),
        ("client-only", "clientAuth"),
    ] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            &format!("extendedKeyUsage={usage}"),
        ]);
    }
    let serve = |name: &str| openssl_server(&dir, name, &[]);
    // Pinned, a certificate is still checked as curl checks it: one made for clients only
    // is no server's (nor is an expired one).
    let (_client_only, url) = serve("client-only");
    let pinned = dir.join("client-only.pem");
    one_line_error(
        &http(&["--verify", pinned.to_str().unwrap(), &url]),
        1,
        "TLS",
    );
    let (_server, url) = serve("self");
    let trusted = dir.join("self.pem");
    let out = http(&["-b", "--verify", trusted.to_str().unwrap(), &url]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("s_server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another certificate with the same name, or none, is still refused.
    let other = dir.join("other.pem");
    one_line_error(
        &http(&["--verify", other.to_str().unwrap(), &url]),
        1,
        "TLS",
    );
    one_line_error(&http(&[&url]), 1, "a CA certificate (CA:TRUE)");
}

#[test]
fn refused_certificates_are_named_in_one_line_as_curl_names_them() {
    let dir = work_dir().join("http-cli-tls-words");
    std::fs::create_dir_all(&dir).unwrap();
    // A root, and a leaf it signs for each way a certificate is refused.
    let script = r#"set -e
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout root.key -out root.pem \
            -subj /CN=root -addext basicConstraints=critical,CA:TRUE 2>/dev/null
        leaf() { # NAME KEY DIGEST EXTENSIONS
            openssl req -new -newkey "$2" -nodes -keyout "$1.key" -subj /CN=localhost \
                -out "$1.csr" 2>/dev/null
            printf "$4" > "$1.ext"
            openssl x509 -req -in "$1.csr" -CA root.pem -CAkey root.key -CAcreateserial \
                "-$3" -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
        }
        san='subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n'
        leaf ca rsa:2048 sha256 "${san}basicConstraints=critical,CA:TRUE\n"
        leaf sha1 rsa:2048 sha1 "$san"
        leaf rsa1024 rsa:1024 sha256 "$san"
        leaf cn-only rsa:2048 sha256 'extendedKeyUsage=serverAuth\n'
        leaf elsewhere rsa:2048 sha256 \
            'subjectAltName=DNS:wrong.example,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n'
        leaf ip-as-name rsa:2048 sha256 \
            'subjectAltName=DNS:127.0.0.1\nextendedKeyUsage=serverAuth\n'
        leaf good rsa:2048 sha256 "$san"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout other.key -out other.pem \
            -subj /CN=other -addext basicConstraints=critical,CA:TRUE 2>/dev/null
        echo 'no certificate here' > nocert.pem
    "#;
    let made = Command::new("sh")
        .args(["-c", script])
        .current_dir(&dir)
        .output()
        .expect("sh and openssl (cargo xtask test installs it)");
    assert!(made.status.success(), "{made:?}");
    let root = dir.join("root.pem");
    let root = root.to_str().unwrap();
    for (name, words, not) in [
        ("ca", "a CA certificate (CA:TRUE)", "self-signed"),
        (
            "sha1",
            "signed with SHA-1, too weak",
            "supported_algorithms",
        ),
        ("rsa1024", "RSA key under 2048 bits", "BadSignature"),
        (
            "cn-only",
            "has no subjectAltName",
            "according to its subjectAltName",
        ),
    ] {
        // Weak keys and signatures taken, for netkit's refusal to be the one seen.
        let weak = ["-auth_level", "0", "-cipher", "DEFAULT:@SECLEVEL=0"];
        let (_server, url) = openssl_server(&dir, name, &weak);
        let out = http(&["--verify", root, &url]);
        one_line_error(&out, 1, words);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains(not),
            "{name}: {out:?}"
        );
    }
    // A certificate for another host names it, as curl's "no alternative certificate
    // subject name matches": the line showed webpki's `DnsName("wrong.example")`.
    let (_server, url) = openssl_server(&dir, "elsewhere", &[]);
    let out = http(&["--verify", root, &url]);
    one_line_error(
        &out,
        1,
        "the server's certificate is for wrong.example, 10.0.0.1, not localhost",
    );
    let (_server, url) = openssl_server(&dir, "ip-as-name", &[]);
    let url = url.replace("localhost", "127.0.0.1");
    let out = http(&["--verify", root, &url]);
    one_line_error(&out, 1, "holds the address as a DNS name");
    // A client certificate the server does not trust: said so, not "alert: UnknownCA".
    let (_server, url) = openssl_server(
        &dir,
        "good",
        &[
            "-Verify",
            "1",
            "-verify_return_error",
            "-CAfile",
            "other.pem",
        ],
    );
    let good = |ext| dir.join(format!("good.{ext}")).to_str().unwrap().to_owned();
    let out = http(&[
        "--verify",
        root,
        "--cert",
        &good("pem"),
        "--cert-key",
        &good("key"),
        &url,
    ]);
    one_line_error(
        &out,
        1,
        "the server refused the client certificate: it does not trust its issuer",
    );
    // An empty SSL_CERT_FILE (an env file's way to unset it) leaves the system's store in
    // use, as with curl: it was taken for a file named "", and the bundled roots were used.
    let mut command = Command::new(netkit_bin());
    command
        .arg("http")
        .env_remove("SSL_CERT_DIR")
        .env("SSL_CERT_FILE", "");
    let out = run_http(command, &[&url], &[]);
    one_line_error(&out, 1, "not signed by a trusted CA");
    // A CA file with no certificate is bad input, as one that is not there.
    let nocert = dir.join("nocert.pem");
    one_line_error(
        &http(&["--verify", nocert.to_str().unwrap(), "https://localhost:1/"]),
        2,
        "no usable PEM certificate",
    );
}

#[test]
fn a_client_certificate_opens_a_server_that_asks_for_one() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    std::fs::write(root.join("mtls.txt"), "mutual\n").unwrap();
    let url = format!("{}/mtls.txt", env("NETKIT_TEST_NGINX_MTLS_URL"));
    let dir = env("NETKIT_TEST_NGINX_CLIENT_DIR");
    let ca = env("NETKIT_TEST_NGINX_CA");
    let (cert, key, both) = (
        format!("{dir}/client.pem"),
        format!("{dir}/client.key"),
        format!("{dir}/client-with-key.pem"),
    );
    // Without a certificate nginx answers 400 ("No required SSL certificate was sent").
    let out = http(&["--verify", &ca, "--check-status", &url]);
    assert_eq!(out.status.code(), Some(4));
    for flags in [
        &["--cert", &both][..],
        &["--cert", &cert, "--cert-key", &key],
    ] {
        let mut args = vec!["--verify", ca.as_str(), "--check-status"];
        args.extend(flags);
        args.push(&url);
        let out = http(&args);
        assert_eq!(
            out.stdout,
            b"mutual\n",
            "{flags:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A certificate without its key, a key file that is none, a missing file: named, exit 2.
    one_line_error(&http(&["--cert", &cert, &url]), 2, "private key");
    one_line_error(
        &http(&["--cert", &cert, "--cert-key", &ca, &url]),
        2,
        "no unencrypted PEM private key",
    );
    one_line_error(
        &http(&["--cert", "/nonexistent.pem", &url]),
        2,
        "/nonexistent.pem",
    );
    // A key that is not the certificate's (ureq panicked on it), with or without a CA file.
    let other = work_dir().join("http-cli-other-client.key");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    for verify in [&["--verify", "no"][..], &["--verify", &ca]] {
        let mut args = verify.to_vec();
        args.extend(["--cert", &cert, "--cert-key", other.to_str().unwrap(), &url]);
        one_line_error(&http(&args), 2, "not the client certificate's");
    }
}

/// The heads `-d -v` shows on a stderr whose reader has gone (`2>&1 >file | grep -m1
/// HTTP`) are not the download: it was dropped, exit 0 and no file, where curl -v saves it.
#[test]
fn a_download_goes_on_when_its_shown_heads_cannot_be() {
    let server = EchoServer::start();
    let target = work_dir().join("http-cli-download-stderr-gone.bin");
    let _ = std::fs::remove_file(&target);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(netkit_bin())
        .args(["http", "-v", "-d", "-o"])
        .arg(&target)
        .arg(server.url("/bytes/300000"))
        .stdin(std::process::Stdio::null())
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let got = std::fs::read(&target).unwrap_or_default();
    assert_eq!(got.len(), 300_000);
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
}

#[test]
fn download_progress_only_on_a_terminal() {
    let server = EchoServer::start();
    let dir = work_dir().join("http-cli-progress");
    std::fs::create_dir_all(&dir).unwrap();
    let piped = dir.join("piped.bin");
    let out = http(&[
        "-d",
        &server.url("/bytes/500000"),
        "-o",
        piped.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    // Where the file went is said all the same, as httpie says it (a CI log told nothing).
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("saved {} (500000 bytes)\n", piped.display()),
        "no progress when not on a terminal"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::metadata(&piped).unwrap().len(), 500_000);
    let tty = dir.join("tty.bin");
    let line = format!(
        "{} http -d {} -o {}",
        netkit_bin().display(),
        server.url("/bytes/500000"),
        tty.display()
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("saved {} (500000 bytes)", tty.display())),
        "{text:?}"
    );
}

#[test]
fn stdin_is_read_where_it_stands_and_a_piped_body_shown_is_still_sent() {
    let server = EchoServer::start();
    let url = server.url("/echo");
    let piped = |args: &[&str], body: &'static [u8]| {
        let mut child = http_with_stdin_pipe(args);
        let mut pipe = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || pipe.write_all(body));
        let out = child.wait_with_output();
        let _ = writer.join();
        out
    };
    // Shown, the pipe was read dry to show it and an empty body went, exit 0.
    for shown in ["-v", "--print=Bb"] {
        let out = piped(&[shown, "POST", &url], b"{\"k\": \"piped\"}");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(r#""body":"{\"k\": \"piped\"}""#),
            "{shown}: {text}"
        );
    }
    // A multipart file from a pipe has no length to take from its metadata (ureq's 0 made a
    // body longer than announced: "the answer is not HTTP/1.x").
    let got = ok_json(&piped(&["-f", "POST", &url, "f@/dev/stdin"], b"piped file"));
    assert!(
        got["body"]
            .as_str()
            .unwrap()
            .contains("\r\n\r\npiped file\r\n"),
        "{got}"
    );
    // A stdin whose first line a script has read gives the rest, as curl and httpie send it
    // (opened again by name, the whole file went).
    let file = work_dir().join("http-cli-stdin-offset.txt");
    std::fs::write(&file, b"HEADER\n{\"rest\": 1}").unwrap();
    let mut stdin = std::fs::File::open(&file).unwrap();
    std::io::Seek::seek(&mut stdin, std::io::SeekFrom::Start(7)).unwrap();
    let out = Command::new(netkit_bin())
        .args(["http", "POST", &url])
        .stdin(stdin)
        .output()
        .unwrap();
    assert_eq!(ok_json(&out)["body"], "{\"rest\": 1}");
    // A file of /proc says it is empty and is not: it went as an empty body.
    let version = std::fs::read_to_string("/proc/version").unwrap();
    let got = ok_json(&http(&["PUT", &url, "@/proc/version"]));
    assert_eq!(got["body"], version.as_str());
    let out = Command::new(netkit_bin())
        .args(["http", "PUT", &url])
        .stdin(std::fs::File::open("/proc/version").unwrap())
        .output()
        .unwrap();
    assert_eq!(ok_json(&out)["body"], version.as_str());
    // Previewed as it goes: a file from its start with its length.
    let out = Command::new(netkit_bin())
        .args(["http", "--offline", "--print=H", "POST", &url])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(head.contains("Content-Length: 18"), "{head}");
    // A socket on stdin (socket activation, a parent's socketpair) cannot be opened by name.
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.write_all(b"through a socket").unwrap();
    ours.shutdown(std::net::Shutdown::Write).unwrap();
    let out = Command::new(netkit_bin())
        .args(["http", "POST", &url, "@-"])
        .stdin(std::os::fd::OwnedFd::from(theirs))
        .output()
        .unwrap();
    assert_eq!(ok_json(&out)["body"], "through a socket");
}

#[test]
fn stdin_is_the_body_with_at_dash_when_redirected_or_piped_into_a_post() {
    let server = EchoServer::start();
    let url = server.url("/echo");
    let run = |args: &[&str], stdin: std::process::Stdio| {
        Command::new(netkit_bin())
            .arg("http")
            .args(args)
            .stdin(stdin)
            .output()
            .unwrap()
    };
    // `@-` reads a pipe to its end, however it is fed.
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["http", "PUT", &url, "@-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped()),
    );
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(b"from a ").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    pipe.write_all(b"pipe\n").unwrap();
    drop(pipe);
    let got = ok_json(&child.wait_with_output());
    assert_eq!(
        (got["method"].as_str(), got["body"].as_str()),
        (Some("PUT"), Some("from a pipe\n"))
    );

    // After a 307 a piped body goes again, whole, as httpie sends it (opened again, the pipe
    // gave nothing more: an empty body went); past 16 MiB it is not kept, and that is said.
    let redirect = server.url("/redirect-to?status=307&url=/echo");
    let piped = |body: Vec<u8>| {
        let mut child = netkit_tests::Spawned::start(
            Command::new(netkit_bin())
                .args(["http", "-F", "PUT", &redirect, "@-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        );
        let mut pipe = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || pipe.write_all(&body));
        let out = child.wait_with_output();
        let _ = writer.join();
        out
    };
    let got = ok_json(&piped(b"sent twice".to_vec()));
    assert_eq!(got["body"], "sent twice");
    let out = piped(vec![b'x'; 17 << 20]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be sent twice"), "{err}");

    // A stdin redirected from a file is the body, and makes the request a POST (httpie).
    let file = work_dir().join("http-cli-stdin.json");
    std::fs::write(&file, b"{\"from\": \"a file\"}").unwrap();
    let got = ok_json(&run(&[&url], std::fs::File::open(&file).unwrap().into()));
    assert_eq!(got["method"], "POST");
    assert_eq!(got["body"], "{\"from\": \"a file\"}");
    assert_eq!(got["headers"]["content-length"], "18");
    assert_eq!(got["headers"]["content-type"], "application/json");
    // Unless -I, or another body is given.
    let got = ok_json(&run(
        &["-I", &url],
        std::fs::File::open(&file).unwrap().into(),
    ));
    assert_eq!(
        (got["method"].as_str(), got["body"].as_str()),
        (Some("GET"), Some(""))
    );
    let got = ok_json(&run(
        &[&url, "k=v"],
        std::fs::File::open(&file).unwrap().into(),
    ));
    assert_eq!(got["body"], "{\"k\":\"v\"}");
    // A pipe into an explicit POST, PUT or PATCH is the body, as in httpie's
    // `echo '{...}' | http PUT URL`, read to its end however slowly it comes.
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["http", "patch", &url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped()),
    );
    let mut pipe = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pipe.write_all(b"{\"late\": ").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pipe.write_all(b"true}").unwrap();
    drop(pipe);
    let got = ok_json(&child.wait_with_output());
    assert_eq!(
        (got["method"].as_str(), got["body"].as_str()),
        (Some("PATCH"), Some("{\"late\": true}"))
    );
    // A pipe closed empty is no body: a POST says Content-Length: 0.
    let got = ok_json(&run(&["POST", &url], std::process::Stdio::piped()));
    assert_eq!(got["headers"]["content-length"], "0");
    // A GET never waits for a pipe left open.
    let mut child = http_with_stdin_pipe(&[&url]);
    let open_pipe = child.stdin.take().unwrap();
    // A GET that waited would fail here, killed, rather than hold the run.
    let out = child.wait_with_output_within(Duration::from_secs(3));
    drop(open_pipe);
    let got = ok_json(&out);
    assert_eq!(
        (got["method"].as_str(), got["body"].as_str()),
        (Some("GET"), Some(""))
    );
}

#[test]
fn a_pipe_slow_to_start_is_waited_for_not_dropped() {
    // `pg_dump db | netkit http PUT URL`: a producer silent for over 5 s had the PUT sent
    // empty, exit 0, the server's file replaced by nothing. It is waited for, with a note
    // saying how to send no body.
    let server = EchoServer::start();
    let mut child = http_with_stdin_pipe(&["PUT", &server.url("/echo")]);
    let mut pipe = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(6500));
    pipe.write_all(b"late backup").unwrap();
    drop(pipe);
    let out = child.wait_with_output();
    let got = ok_json(&out);
    assert_eq!(
        (got["method"].as_str(), got["body"].as_str()),
        (Some("PUT"), Some("late backup"))
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("waiting for the body on stdin") && err.contains("< /dev/null"),
        "{err}"
    );
}

#[test]
fn an_empty_body_file_goes_with_a_length_of_0() {
    // It went chunked, and servers that need a length answered 411 (curl and httpie send
    // Content-Length: 0).
    let server = EchoServer::start();
    let url = server.url("/echo");
    let empty = work_dir().join("http-cli-empty-body.dat");
    std::fs::write(&empty, b"").unwrap();
    let by_name = http(&["PUT", &url, &format!("@{}", empty.display())]);
    let redirected = Command::new(netkit_bin())
        .args(["http", "PUT", &url])
        .stdin(std::fs::File::open(&empty).unwrap())
        .output()
        .unwrap();
    for out in [by_name, redirected] {
        let got = ok_json(&out);
        assert_eq!(got["headers"]["content-length"], "0", "{got}");
        assert!(got["headers"].get("transfer-encoding").is_none(), "{got}");
    }
    let shown = http(&["--offline", "PUT", &url, &format!("@{}", empty.display())]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("Content-Length: 0"), "{shown}");
}

#[test]
fn a_directory_as_the_body_is_refused_before_connecting() {
    // `@dir` connected, sent a chunked head and failed naming the URL, exit 1; `< dir` sent
    // an empty PUT, exit 0.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let dir = work_dir().join("http-cli-dir-body");
    std::fs::create_dir_all(&dir).unwrap();
    let by_name = http(&["PUT", &url, &format!("@{}", dir.display())]);
    let redirected = Command::new(netkit_bin())
        .args(["http", "PUT", &url])
        .stdin(std::fs::File::open(&dir).unwrap())
        .output()
        .unwrap();
    for out in [by_name, redirected] {
        one_line_error(&out, 2, "a directory");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(dir.to_str().unwrap()), "{err}");
        assert!(listener.accept().is_err(), "the request was sent anyway");
    }
}

#[test]
fn a_file_not_ours_to_read_or_write_is_bad_input_whatever_flag_names_it() {
    // `-d -o`, `f@`, `@file`, `--cert`, `--verify` exited 1 (a network failure, to a script
    // that retries), `-o`, `a=@` and `H:@` 2; no request is sent in any of them.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let dir = work_dir().join("http-cli-not-ours");
    let locked = dir.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let secret = dir.join("secret.pem");
    std::fs::write(&secret, b"secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secret = secret.to_str().unwrap();
    let out_file = locked.join("out.txt");
    let out_file = out_file.to_str().unwrap();
    let https = url.replace("http:", "https:");
    let cases: [Vec<String>; 8] = [
        vec!["-o".into(), out_file.into(), url.clone()],
        vec!["-d".into(), "-o".into(), out_file.into(), url.clone()],
        vec!["-f".into(), url.clone(), format!("f@{secret}")],
        vec!["PUT".into(), url.clone(), format!("@{secret}")],
        vec!["--cert".into(), secret.into(), https.clone()],
        vec!["--verify".into(), secret.into(), https.clone()],
        vec![url.clone(), format!("a=@{secret}")],
        vec![url.clone(), format!("H:@{secret}")],
    ];
    for args in cases {
        let out = netkit_tests::as_test_user(&mut Command::new(netkit_bin()))
            .args(["http", "--ignore-netrc"])
            .args(&args)
            .env("HOME", &dir)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("Permission denied"), "{args:?}: {err}");
        assert!(listener.accept().is_err(), "{args:?}: the request was sent");
    }
}

#[test]
fn an_output_file_that_cannot_be_written_is_refused_before_the_request() {
    // A POST reached the server and its answer was thrown away for a mistyped directory,
    // with exit 2 (nothing happened): a script that fixed the path posted twice.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/orders", listener.local_addr().unwrap());
    let dir = netkit_tests::work_dir().join("http-cli-unwritable-output");
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("no-such-dir").join("reply.json");
    let dir_arg = dir.to_str().unwrap();
    for args in [
        vec!["-o", missing.to_str().unwrap(), "POST", &url, "item=1"],
        vec!["-d", "-o", missing.to_str().unwrap(), &url],
        vec!["-o", dir_arg, "POST", &url, "item=1"],
    ] {
        let out = http(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("cannot write") && err.lines().count() == 1,
            "{err}"
        );
        assert!(
            listener.accept().is_err(),
            "{args:?}: the request was sent anyway"
        );
    }
}

#[test]
fn an_empty_part_is_replaced_without_a_warning() {
    // A download stopped before its first byte leaves an empty part: `-c` then warned that
    // "a resume would have gone on from it", when there was nothing to go on from.
    let server = EchoServer::start();
    let url = server.url("/bytes/1000");
    let dest = work_dir().join("http-cli-empty-part.bin");
    let mut part = dest.clone().into_os_string();
    part.push(".part");
    for (flags, held, warned) in [(&["-c"][..], &b""[..], false), (&[][..], b"earlier", true)] {
        let _ = std::fs::remove_file(&dest);
        std::fs::write(&part, held).unwrap();
        let mut args = vec!["-d"];
        args.extend_from_slice(flags);
        args.extend(["-o", dest.to_str().unwrap(), &url]);
        let out = http(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(err.contains("is replaced"), warned, "{flags:?}: {err}");
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), 1000);
    }
}

#[test]
fn at_dash_with_a_closed_stdin_sends_nothing() {
    // A closed stdin (a cron job's, `<&-`), which Rust makes /dev/null, sent an empty body,
    // exit 0: a PUT wiped what it was meant to replace.
    let server = EchoServer::start();
    let out = http(&["PUT", &server.url("/echo"), "@-"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("standard input is closed or /dev/null"),
        "{err}"
    );
}

#[test]
fn a_session_with_the_clock_past_9999_keeps_its_session_cookies_and_does_not_panic() {
    // Every look at a cookie's expiry panicked in the time crate (QA clocks finding 3).
    const LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        std::path::Path::new(LIB).exists(),
        "{LIB} missing: run via cargo xtask test"
    );
    let server = EchoServer::start();
    let path = work_dir().join("http-cli-session-year-10000.json");
    let _ = std::fs::remove_file(&path);
    let session = path.to_str().unwrap();
    let set = server.url("/set-cookie?c=sid%3D1&c=ma%3D1%3B%20Max-Age%3D7200");
    let out = http(&["-b", &set, "--session", session]);
    assert!(out.status.success(), "{out:?}");
    let far = [("LD_PRELOAD", LIB), ("FAKETIME", "+8000y")];
    let echo = server.url("/echo");
    let out = http_env(&["-b", &echo, "--session", session], &far);
    assert!(out.status.success(), "{out:?}");
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["headers"]["cookie"], "sid=1");
    let out = http_env(&["-b", &set, "--session", session], &far);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the clock is past 9999"), "{stderr}");
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains("\"raw_cookie\": \"sid=1\""), "{saved}");
    assert!(!saved.contains("ma=1"), "{saved}");
}

#[test]
fn a_large_body_file_is_shown_by_verbose_without_being_read_whole() {
    // `-v PUT URL @disk.img` read the whole file into memory to show it (1.2 GB of it), even
    // on a terminal, where only the binary note is printed.
    let server = EchoServer::start();
    let file = work_dir().join("http-cli-verbose-large.bin");
    let size = 96 << 20;
    std::fs::write(&file, vec![b'x'; size]).unwrap();
    let shown = work_dir().join("http-cli-verbose-large.out");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss %M"])
        .arg(netkit_bin())
        .args(["http", "-p", "Bh", "PUT", &server.url("/echo")])
        .arg(format!("@{}", file.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&shown).unwrap())
        .output()
        .expect("/usr/bin/time (package time, installed by cargo xtask test)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let kib: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(kib < 48 << 10, "{kib} KiB for a {size}-byte file");
    // All of it shown, then the response's head.
    let shown = std::fs::read(&shown).unwrap();
    assert!(shown.starts_with(&vec![b'x'; size]), "{}", shown.len());
    assert!(String::from_utf8_lossy(&shown[size..]).contains("200 OK"));
}

#[test]
fn retry_takes_408_and_500_as_transient_as_curl_does_and_says_a_post_is_not_retried() {
    // 500 and 408 were handed back at once: curl's --retry retries them.
    let server = EchoServer::start();
    for status in [408, 500] {
        let url = server.url(&format!("/retry/s{status}/1?after=0&status={status}"));
        let out = http(&["--retry", "2", &url]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(out.stdout, b"ok");
        assert!(
            err.lines().count() == 1 && err.contains(&format!("{status}; retry 1 of 2")),
            "{err}"
        );
        assert_eq!(
            server.retry_calls.lock().unwrap()[&format!("s{status}")].len(),
            2
        );
    }
    // A POST is not retried, by design; --retry said nothing of it.
    let url = server.url("/retry/post-cli/1?after=0&status=500");
    let out = http(&["--retry", "2", "POST", &url, "a=1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, b"try later");
    assert!(
        err.lines().count() == 1 && err.contains("POST is not idempotent: not retried"),
        "{err}"
    );
    assert_eq!(server.retry_calls.lock().unwrap()["post-cli"].len(), 1);
}

#[test]
fn a_download_that_stalls_mid_body_says_once_what_ran_out_naming_the_url() {
    // `-d` said "timed out: URL (timed out reading the body (per read); ...)".
    let server = EchoServer::start();
    let url = server.url("/drip/text");
    let dest = work_dir().join("http-cli-stalled-download.txt");
    let _ = std::fs::remove_file(&dest);
    let out = http(&["-d", "--timeout", "1", "-o", dest.to_str().unwrap(), &url]);
    one_line_error(
        &out,
        7,
        &format!("{url}: the server sent nothing for 1 s while sending the body"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("timed out").count(), 0, "{err}");
    assert!(!err.contains("per read"), "{err}");
}

#[test]
fn max_time_bounds_the_whole_transfer_retries_and_their_waits_included_as_curl_m() {
    let server = EchoServer::start();
    // A body still coming when the time is up.
    let started = Instant::now();
    let out = http(&[
        "--timeout",
        "20",
        "--max-time",
        "1.5",
        &server.url("/drip/text"),
    ]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.stdout, b"data: first\n\n");
    // Only --max-time raises it: --timeout was listed as if it would.
    one_line_error(
        &out,
        7,
        "the whole transfer took longer than 1.5 s, while the server sent the body; \
         --max-time SECS gives the whole transfer longer",
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("--timeout"),
        "{:?}",
        out.stderr
    );
    // Retries that would wait past it: given up at the wait that does not fit, exit 7.
    let started = Instant::now();
    let url = server.url("/retry/max-time/10?after=1");
    let out = http(&["--max-time", "1.5", "--retry", "5", &url]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    let last = format!(
        "{url}: no time left within the whole transfer's 1.5 s for a retry after: answered 503"
    );
    assert!(
        err.lines().last().unwrap_or_default().contains(&last),
        "{err}"
    );
    assert_eq!(server.retry_calls.lock().unwrap()["max-time"].len(), 2);
    // A listener whose queue is full drops the SYN: the connect waits, and --connect-timeout
    // is the limit named (--timeout alone changed nothing for it).
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    full.listen(0).unwrap();
    let addr = full.local_addr().unwrap().as_socket().unwrap();
    let queued: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)))
        .collect();
    let out = http(&[
        "--timeout",
        "30",
        "--connect-timeout",
        "1",
        "--max-time",
        "60",
        &format!("http://{addr}/"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    // The one limit that ran out and its flag: every limit given was listed.
    assert!(
        err.contains("no connection within 1 s; --connect-timeout SECS waits longer to connect")
            && !err.contains("--max-time")
            && !err.contains("--timeout SECS"),
        "{err}"
    );
    // The whole transfer's limit, shorter, is the one that ran out while connecting.
    let out = http(&[
        "--connect-timeout",
        "3",
        "--max-time",
        "1",
        &format!("http://{addr}/"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        err.contains("the whole transfer took longer than 1 s")
            && err.contains("--max-time SECS")
            && !err.contains("--connect-timeout"),
        "{err}"
    );
    drop(queued);
    // Bad values are bad input, as for --timeout.
    for option in ["--max-time", "--connect-timeout"] {
        one_line_error(
            &http(&[option, "0", &server.url("/")]),
            2,
            &format!("{option} must be a positive number"),
        );
    }
}

/// A server that sends the head and half of a 10-byte body on its first connection, then
/// stalls (`stall`) or closes; later connections get the whole body, or its second half as a
/// 206 to `Range: bytes=5-`. Returns the URL and the requests' heads as they come.
fn cut_once_server(stall: bool) -> (String, std::sync::mpsc::Receiver<String>) {
    cut_once_server_with(stall, true, "0123456789")
}

/// As [`cut_once_server`], with later connections answering `whole` (10 bytes) with a 200,
/// and a range with a 206 only when `ranges`.
fn cut_once_server_with(
    stall: bool,
    ranges: bool,
    whole: &'static str,
) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead as _, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/file.bin", listener.local_addr().unwrap());
    let (heads, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().take(5).enumerate() {
            let mut stream = stream.unwrap();
            let heads = heads.clone();
            // Its own thread: the stalled one must not hold the next answer up.
            std::thread::spawn(move || {
                let mut head = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                while reader.read_line(&mut head).unwrap_or(0) > 2 {}
                let ranged = ranges && head.to_ascii_lowercase().contains("range: bytes=5-");
                let _ = heads.send(head);
                let reply = if n == 0 {
                    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234".to_owned()
                } else if ranged {
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nContent-Range: bytes 5-9/10\r\n\r\n56789".to_owned()
                } else {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{whole}")
                };
                let _ = stream.write_all(reply.as_bytes());
                let _ = stream.flush();
                if n == 0 && stall {
                    std::thread::sleep(Duration::from_secs(4));
                }
            });
        }
    });
    (url, seen)
}

#[test]
fn retry_takes_a_download_cut_or_stalled_mid_body_again_as_curl_does() {
    // A body that stalled or was cut after the head was never retried: exit 7 or 1.
    let dir = work_dir().join("http-cli-retry-mid-body");
    std::fs::create_dir_all(&dir).unwrap();
    for (stall, resume) in [(true, false), (false, false), (true, true)] {
        let (url, heads) = cut_once_server(stall);
        let dest = dir.join(format!("file-{stall}-{resume}.bin"));
        let _ = std::fs::remove_file(&dest);
        let mut args = vec![
            "-d",
            "--timeout",
            "1",
            "--retry",
            "2",
            "-o",
            dest.to_str().unwrap(),
        ];
        if resume {
            args.push("-c");
        }
        args.push(&url);
        let out = http(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stall} {resume}: {err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"0123456789", "{err}");
        assert!(err.contains("retry 1 of 2"), "{err}");
        // The cut part is this download's own: not told as an earlier download's, replaced.
        assert!(!err.contains("earlier download"), "{err}");
        let heads: Vec<String> = heads.try_iter().collect();
        assert_eq!(heads.len(), 2, "{heads:?}");
        // With -c it goes on from what came, as curl -C - would; else it starts over.
        assert_eq!(
            heads[1].to_ascii_lowercase().contains("range: bytes=5-"),
            resume,
            "{heads:?}"
        );
    }
}

#[test]
fn retry_takes_a_body_cut_mid_way_into_o_file_again_starting_the_file_over_as_curl() {
    // Without -d, `-o FILE` kept the cut half and failed (exit 7 or 1): curl --retry takes it
    // again and truncates what it wrote.
    let dir = work_dir().join("http-cli-retry-mid-body-o");
    std::fs::create_dir_all(&dir).unwrap();
    for stall in [true, false] {
        let (url, heads) = cut_once_server(stall);
        let dest = dir.join(format!("file-{stall}.bin"));
        let _ = std::fs::remove_file(&dest);
        let out = http(&[
            "--timeout",
            "1",
            "--retry",
            "2",
            "-o",
            dest.to_str().unwrap(),
            &url,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stall}: {err}");
        // Started over: not the cut half followed by the whole body.
        assert_eq!(std::fs::read(&dest).unwrap(), b"0123456789", "{err}");
        assert!(
            err.lines().count() == 1
                && err.contains(&format!("{url}: "))
                && err.contains("; retry 1 of 2"),
            "{err}"
        );
        let heads: Vec<String> = heads.try_iter().collect();
        assert_eq!(heads.len(), 2, "{heads:?}");
        assert!(
            !heads[1].to_ascii_lowercase().contains("range:"),
            "{heads:?}"
        );
    }
}

#[test]
fn a_retry_whose_range_is_ignored_goes_on_only_from_a_whole_body_that_starts_as_the_part() {
    // With -c, a retry after a cut asks for the rest; a server ignoring the range sends the
    // whole file with a 200, which failed the download ("the server does not resume").
    let dir = work_dir().join("http-cli-retry-range-ignored");
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("file.bin");
    let part = dir.join("file.bin.part");
    let run = |whole: &'static str| {
        let _ = std::fs::remove_file(&dest);
        let _ = std::fs::remove_file(&part);
        let (url, heads) = cut_once_server_with(false, false, whole);
        let out = http(&[
            "-d",
            "-c",
            "--retry",
            "1",
            "-o",
            dest.to_str().unwrap(),
            &url,
        ]);
        let heads: Vec<String> = heads.try_iter().collect();
        assert_eq!(heads.len(), 2, "{heads:?}");
        assert!(
            heads[1].to_ascii_lowercase().contains("range: bytes=5-"),
            "{heads:?}"
        );
        out
    };
    // The same file: its first bytes are those kept; the rest goes on from them.
    let out = run("0123456789");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"0123456789", "{err}");
    assert!(!part.exists());
    // Another body (a portal's page): not appended, and the part kept as it was.
    let out = run("abcdefghij");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not start as what came before"), "{err}");
    assert!(!dest.exists());
    assert_eq!(std::fs::read(&part).unwrap(), b"01234", "{err}");
}

#[test]
fn retry_sends_again_a_body_that_stalls_before_its_first_byte_reached_stdout() {
    // Headers came, then nothing: never retried, exit 7. Nothing of the body was written, so
    // asking again gives nothing twice.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&calls);
    std::thread::spawn(move || {
        use std::io::{BufRead as _, BufReader};
        for stream in listener.incoming().take(4) {
            let mut stream = stream.unwrap();
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
                let _ = stream.flush();
                if n == 0 {
                    std::thread::sleep(Duration::from_secs(4));
                }
                let _ = stream.write_all(b"hello");
            });
        }
    });
    let out = http(&["--timeout", "1", "--retry", "2", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(out.stdout, b"hello");
    assert!(
        err.lines().count() == 1
            && err.contains(&format!(
                "{url}: the server sent nothing for 1 s while sending the body; retry 1 of 2"
            )),
        "{err}"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// The scheme of each Authorization the server's Digest endpoint saw, taken.
fn digest_schemes(server: &EchoServer) -> Vec<String> {
    std::mem::take(&mut *server.digest_calls.lock().unwrap())
        .into_iter()
        .map(|c| c.scheme)
        .collect()
}

#[test]
fn digest_follows_a_redirect_to_another_origin_with_its_netrc_login_as_curl() {
    let (first, other) = (EchoServer::start(), EchoServer::start());
    let netrc = work_dir().join("http-cli-digest-netrc");
    std::fs::write(&netrc, "machine 127.0.0.1 login ann password s3cret\n").unwrap();
    let target = other.url("/digest-auth/auth/ann/s3cret/MD5");
    let hop = first.url(&format!("/redirect-to?url={target}"));
    let out = http_env(
        &["-b", "-A", "digest", "-F", "--check-status", &hop],
        &[("NETRC", netrc.to_str().unwrap())],
    );
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "authenticated ann"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No Basic (the password in clear) before the challenge: as curl -n --digest -L.
    let ours = digest_schemes(&other);
    assert_eq!(ours, ["", "Digest"]);
    let curl = Command::new("curl")
        .args(["-s", "--digest", "-L", "--netrc-file"])
        .arg(&netrc)
        .arg(&hop)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "authenticated ann");
    assert_eq!(digest_schemes(&other), ours);
}

#[test]
fn a_piped_body_past_16_mib_goes_once_with_digest_as_curl() {
    let server = EchoServer::start();
    let url = server.url("/digest-auth/auth/ann/s3cret/SHA-256");
    let out = Command::new("sh")
        .args([
            "-c",
            "head -c 20000000 /dev/zero | \"$0\" http -A digest -a ann:s3cret --check-status \
             POST \"$1\"",
        ])
        .arg(netkit_bin())
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "authenticated ann"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls: Vec<usize> = std::mem::take(&mut *server.digest_calls.lock().unwrap())
        .into_iter()
        .map(|c| c.body_len)
        .collect();
    assert_eq!(calls, [0, 20_000_000]);
}

#[test]
fn several_challenges_in_one_field_and_none_to_answer_as_said() {
    let server = EchoServer::start();
    let url = |query: &str| server.url(&format!("/digest-auth/auth/ann/s3cret/MD5?{query}"));
    // `Negotiate, Digest ..., Basic ...` in one field: Digest answered, as curl and httpie.
    let joined = url("challenge=joined");
    let out = http(&["-b", "-A", "digest", "-a", "ann:s3cret", &joined]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "authenticated ann",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let curl = Command::new("curl")
        .args(["-s", "--digest", "-u", "ann:s3cret", &joined])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "authenticated ann");
    // Nothing we can answer in the scheme asked: the 401 comes back (exit 0 as ever) with
    // one line saying what was offered (curl and httpie say nothing).
    for (args, query, offered) in [
        (
            &["-A", "digest"][..],
            "challenge=negotiate",
            "(offered: Negotiate)",
        ),
        (&["-A", "digest"][..], "challenge=basic", "(offered: Basic)"),
        (&[][..], "", "(offered: Digest)"),
    ] {
        let mut all = args.to_vec();
        let target = url(query);
        all.extend(["-b", "-a", "ann:s3cret", &target]);
        let out = http(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).as_ref()
            ),
            (Some(0), "who are you?"),
            "{err}"
        );
        assert!(
            err.lines().count() == 1 && err.contains("answered 401") && err.contains(offered),
            "{args:?} {query}: {err}"
        );
    }
    // A wrong password, with the scheme offered, is the 401 alone.
    let out = http(&["-b", "-A", "digest", "-a", "ann:wrong", &joined]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_proxy_407_for_an_http_url_is_explained() {
    let proxy = EchoServer::start();
    let out = http(&[
        "--proxy",
        &proxy.url(""),
        "http://origin.invalid/status/407",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.lines().count() == 1 && err.contains("the proxy answered 407, it wants credentials"),
        "{err}"
    );
}

#[test]
fn an_origin_server_407_with_no_proxy_is_not_said_to_be_a_proxy_s() {
    // Said for any 407: "the proxy answered 407" with no proxy in use. curl says nothing.
    let server = EchoServer::start();
    let out = http_env(
        &[&server.url("/status/407")],
        &[
            ("http_proxy", ""),
            ("HTTP_PROXY", ""),
            ("all_proxy", ""),
            ("ALL_PROXY", ""),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("proxy"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("status 407"));
}

/// A relay to the server at `to` that cuts its first connection once `cut` bytes of the
/// answer have gone through, running `between` before the client sees the cut (the file
/// replaced on the server), and takes `If-Range` out of requests when `strip` (a server that
/// ignores it). Returns its URL and the request heads as they came.
fn cutting_relay(
    to: std::net::SocketAddr,
    cut: usize,
    strip: bool,
    between: impl FnOnce() + Send + 'static,
) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead as _, BufReader, Read as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (heads, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut between = Some(between);
        for (n, client) in listener.incoming().take(5).enumerate() {
            let mut client = client.unwrap();
            let mut server = std::net::TcpStream::connect(to).unwrap();
            let (mut up, heads) = (server.try_clone().unwrap(), heads.clone());
            let requests = BufReader::new(client.try_clone().unwrap());
            // Requests (GETs: heads only), line by line, If-Range taken out when asked.
            std::thread::spawn(move || {
                let mut head = String::new();
                for line in requests.split(b'\n') {
                    let Ok(mut line) = line else { break };
                    line.push(b'\n');
                    let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
                    // A head is told before its end goes on: told after, the answer and the
                    // next connection's head could come first (heads seen out of order).
                    head.push_str(&text);
                    if text == "\r\n" {
                        let _ = heads.send(std::mem::take(&mut head));
                    }
                    if !(strip && text.starts_with("if-range:")) && up.write_all(&line).is_err() {
                        break;
                    }
                }
                // The client gone: so is the server's keep-alive connection it held.
                let _ = up.shutdown(std::net::Shutdown::Both);
            });
            let mut buf = vec![0; 16 << 10];
            let mut sent = 0;
            while let Ok(got) = server.read(&mut buf) {
                let got = if n == 0 { got.min(cut - sent) } else { got };
                if got == 0 || client.write_all(&buf[..got]).is_err() {
                    break;
                }
                sent += got;
                if n == 0 && sent == cut {
                    let _ = server.shutdown(std::net::Shutdown::Both);
                    if let Some(between) = between.take() {
                        between();
                    }
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    break;
                }
            }
        }
    });
    (url, seen)
}

#[test]
fn a_retry_never_splices_a_file_replaced_on_the_server_onto_what_came_before() {
    // `-d -c --retry`: the first answer cut, the file replaced by a deploy's rename, the
    // retry asked for `Range: bytes=N-` alone and saved N bytes of the old file followed by
    // the rest of the new one, exit 0. Now the range is asked with `If-Range` (the first
    // answer's ETag, or without one its Last-Modified date): nginx and our server send the
    // whole new file, and one that ignores If-Range (taken out here) sends the rest of
    // another version, which starts it over. A file not replaced goes on from the cut.
    const SIZE: usize = 4 << 20;
    let dir = work_dir().join("http-cli-retry-replaced");
    std::fs::create_dir_all(&dir).unwrap();
    let nginx = env("NETKIT_TEST_NGINX_URL");
    let servers = [
        (
            "serve",
            env("NETKIT_TEST_SERVE_URL"),
            "",
            env("NETKIT_TEST_SERVE_ROOT"),
        ),
        ("nginx", nginx.clone(), "", env("NETKIT_TEST_NGINX_ROOT")),
        // Last-Modified its only validator, as many servers and CDNs send.
        (
            "nginx without ETag",
            nginx,
            "/no-etag",
            env("NETKIT_TEST_NGINX_ROOT"),
        ),
    ];
    for (server, base, prefix, root) in servers {
        for (strip, replace) in [(false, true), (true, true), (false, false)] {
            let root = std::path::PathBuf::from(&root);
            let name = format!("replaced-{strip}-{replace}.bin");
            let file = root.join(&name);
            std::fs::write(&file, vec![b'A'; SIZE]).unwrap();
            // A version of a while ago: nginx's ETag counts whole seconds, and a date within
            // the second of the answer's is no validator.
            let old = std::time::SystemTime::now() - Duration::from_secs(100);
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(old)
                .unwrap();
            let to = base
                .trim_start_matches("http://")
                .parse()
                .expect("the server's address");
            let deploy = move || {
                if replace {
                    let new = file.with_extension("new");
                    std::fs::write(&new, vec![b'B'; SIZE]).unwrap();
                    std::fs::rename(&new, &file).unwrap();
                }
            };
            let (url, heads) = cutting_relay(to, 1 << 20, strip, deploy);
            let dest = dir.join(&name);
            let _ = std::fs::remove_file(&dest);
            let out = http(&[
                "-d",
                "-c",
                "--retry",
                "2",
                "-o",
                dest.to_str().unwrap(),
                &format!("{url}{prefix}/{name}"),
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            let case = format!("{server} strip={strip} replace={replace}");
            assert!(out.status.success(), "{case}: {err}");
            let got = std::fs::read(&dest).unwrap();
            let (byte, other) = if replace { (b'B', b'A') } else { (b'A', b'B') };
            let wrong = got.iter().filter(|b| **b != byte).count();
            assert!(
                got.len() == SIZE && wrong == 0,
                "{case}: {} bytes, {wrong} not {}: {err}",
                got.len(),
                char::from(byte)
            );
            assert!(!got.contains(&other));
            assert_eq!(
                err.contains("the file changed on the server since the download began"),
                replace,
                "{case}: {err}"
            );
            let heads: Vec<String> = heads.try_iter().collect();
            assert!(heads[1].contains("range: bytes="), "{case}: {heads:?}");
            let validator = if prefix.is_empty() {
                "\"".to_owned()
            } else {
                httpdate::fmt_http_date(old).to_ascii_lowercase()
            };
            assert!(
                heads[1].contains(&format!("if-range: {validator}")),
                "{case}: {heads:?}"
            );
            if !replace {
                // Gone on from the cut, not fetched whole again.
                assert_eq!(heads.len(), 2, "{case}: {heads:?}");
            }
        }
    }
}

/// The lines of `text` that start a request (`GET ...`) or a response (`HTTP/...`) head.
fn head_lines(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|l| l.starts_with("GET ") || l.starts_with("HTTP/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_downloads_head_is_shown_before_its_body_and_when_the_download_fails() {
    // As httpie's --download: the head on stderr as it comes. It came only once the file was
    // whole: the server holds the rest of this body back for 30 s.
    let server = EchoServer::start();
    let dest = work_dir().join("http-cli-head-first.txt");
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["http", "-d", "-h", "-o", dest.to_str().unwrap()])
            .arg(server.url("/drip/text"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = std::io::Read::read(&mut stderr, &mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("Content-Type: text/plain\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(bytes) => seen.extend(bytes),
            Err(_) => panic!(
                "no head on stderr while the body comes: {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    assert!(
        String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200 OK\n"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    assert!(child.try_wait().unwrap().is_none(), "the download ended");
    child.terminate(Duration::from_secs(10));
    // A download that fails shows the head too (httpie saves nothing of a 404, and shows it):
    // a refused status, a body cut short, a redirect one too many.
    let refused = work_dir().join("http-cli-head-refused");
    let refused = refused.to_str().unwrap();
    for (url, exit, head) in [
        (server.url("/status/404"), 4, "HTTP/1.1 404 Not Found\n"),
        (server.url("/truncate/1000"), 1, "Content-Length: 1000\n"),
        (server.url("/redirect/1"), 6, "Location: /redirect/0\n"),
    ] {
        let out = http(&["-d", "-h", "--max-redirects", "0", "-o", refused, &url]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(exit), "{url}: {err}");
        assert!(
            err.starts_with("HTTP/1.1 ") && err.contains(head),
            "{url}: {err}"
        );
        assert!(
            err.lines().last().unwrap().starts_with("netkit: error: "),
            "{url}: {err}"
        );
        assert!(!std::path::Path::new(refused).exists(), "{url}");
    }
    // With -v, the request before it, each once.
    let out = http(&["-d", "-v", "-o", refused, &server.url("/status/404")]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        head_lines(&out.stderr),
        ["GET /status/404 HTTP/1.1", "HTTP/1.1 404 Not Found"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_download_shows_the_redirects_it_follows_as_a_plain_request_shows_them() {
    // What -v and --all show of a redirected request is the same whether the body is saved
    // (-d, heads on stderr) or printed: a download showed the first request and the last
    // head, whatever --all asked.
    let server = EchoServer::start();
    let url = server.url("/redirect/2");
    let dest = work_dir().join("http-cli-download-hops.json");
    let dest = dest.to_str().unwrap();
    let every_hop = [
        "GET /redirect/2 HTTP/1.1",
        "HTTP/1.1 302 Found",
        "GET /redirect/1 HTTP/1.1",
        "HTTP/1.1 302 Found",
        "GET /redirect/0 HTTP/1.1",
        "HTTP/1.1 302 Found",
        "GET /echo HTTP/1.1",
        "HTTP/1.1 200 OK",
    ];
    for flags in [
        &["-v", "-F", "--all"][..],
        &["-v", "-F"],
        &["-F", "--all", "-h"],
    ] {
        let plain = http(&[flags, &[url.as_str()]].concat());
        assert!(plain.status.success(), "{flags:?}: {plain:?}");
        let saved = http(&[flags, &["-d", "-o", dest, &url]].concat());
        let err = String::from_utf8_lossy(&saved.stderr);
        assert!(saved.status.success(), "{flags:?}: {err}");
        assert_eq!(
            head_lines(&saved.stderr),
            head_lines(&plain.stdout),
            "{flags:?}: {err}"
        );
        let saved_body: Value = serde_json::from_slice(&std::fs::read(dest).unwrap()).unwrap();
        assert_eq!(saved_body["target"], "/echo");
        std::fs::remove_file(dest).unwrap();
    }
    let all = http(&["-d", "-v", "--all", "-o", dest, &url]);
    assert_eq!(head_lines(&all.stderr), every_hop);
    // Without --all, as httpie without it: the request sent first, the head of the answer.
    let last = http(&["-d", "-v", "-o", dest, &url]);
    assert_eq!(
        head_lines(&last.stderr),
        ["GET /redirect/2 HTTP/1.1", "HTTP/1.1 200 OK"]
    );
}

#[test]
fn a_3xx_with_no_location_is_a_downloads_answer_not_a_redirect_loop() {
    // Nothing to follow: the server's final answer, not the file. As httpie's --download
    // (exit 3, as --check-status takes a 3xx), nothing saved; "too many redirects" (6) was
    // said of it under --max-redirects 0, and a loop cut short is not what happened.
    let server = EchoServer::start();
    let url = server.url("/redirect-to?status=302");
    let dest = work_dir().join("http-cli-no-location");
    let dest = dest.to_str().unwrap();
    for max in ["30", "0"] {
        let out = http(&["-d", "-h", "--max-redirects", max, "-o", dest, &url]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "--max-redirects {max}: {err}");
        assert!(err.starts_with("HTTP/1.1 302 Found\n"), "{err}");
        let error = err.lines().last().unwrap();
        assert!(
            error.starts_with("netkit: error: ") && error.contains("no Location to follow"),
            "{err}"
        );
        assert!(!std::path::Path::new(dest).exists());
    }
    // Piped (`-d URL | tar x`), the same: nothing written, exit 3, not an empty success.
    for args in [&["-d", &url][..], &["-d", "-o", "-", &url][..]] {
        let out = http(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    // A plain request takes it alike, as the server's answer: followed, a final 3xx exits 0
    // with --check-status, as httpie's --follow; not followed, 3.
    let out = http(&["-F", "--max-redirects", "0", "--check-status", &url]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = http(&["--check-status", &url]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn a_download_to_stdout_is_the_file_alone_and_its_heads_go_to_stderr() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    let body: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(root.join("heads-apart.bin"), &body).unwrap();
    let url = format!("{}/heads-apart.bin", env("NETKIT_TEST_NGINX_URL"));
    let request_head = "GET /heads-apart.bin HTTP/1.1";
    // As httpie's --download (and curl -v -o -): stdout is the body only, whatever is shown
    // goes to stderr. They were written ahead of the body, the file's first bytes.
    for (flags, request_shown) in [
        (&["-d", "-v"][..], true),
        (&["-d", "-o", "-", "-v"], true),
        (&["-d", "-h"], false),
        (&["-d", "--print=Hh"], true),
    ] {
        let out = http(&[flags, &[url.as_str()]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{flags:?}: {err}");
        assert!(
            out.stdout == body,
            "{flags:?}: stdout is not the file ({} bytes of {}), starting {:?}",
            out.stdout.len(),
            body.len(),
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(200)])
        );
        assert!(err.contains("HTTP/1.1 200 OK"), "{flags:?}: {err}");
        assert_eq!(
            err.contains(request_head),
            request_shown,
            "{flags:?}: {err}"
        );
    }
    // Saved to a file, the same: httpie shows the heads on stderr, stdout stays empty. The
    // response's head was never shown (the library kept it from the CLI).
    let saved = work_dir().join("http-cli-heads-apart.bin");
    for (flag, request_shown) in [("-v", true), ("-h", false), ("--print=h", false)] {
        let out = http(&["-d", flag, "-o", saved.to_str().unwrap(), &url]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{flag}: {err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{flag}: {err}");
        assert_eq!(err.contains(request_head), request_shown, "{flag}: {err}");
        assert!(
            err.contains("HTTP/1.1 200 OK\n") && err.contains("Content-Length: 300000\n"),
            "{flag}: {err}"
        );
        assert!(std::fs::read(&saved).unwrap() == body);
        std::fs::remove_file(&saved).unwrap();
    }
}

#[test]
fn rust_log_trace_does_not_dump_bodies_and_headers_unless_ureq_proto_is_named() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    std::fs::write(root.join("trace-me.bin"), vec![b'z'; 1 << 20]).unwrap();
    let url = format!("{}/trace-me.bin", env("NETKIT_TEST_NGINX_URL"));
    let saved = work_dir().join("http-cli-trace-me.bin");
    // Any 16-byte row of a hex dump inside the value holds the word whole.
    let token = "S3CR3T".repeat(8);
    let header = format!("Authorization:Bearer {token}");
    let run = |rust_log: &str| {
        let out = http_env(
            &["-d", "-o", saved.to_str().unwrap(), &url, &header],
            &[("RUST_LOG", rust_log)],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&saved).unwrap().len(), 1 << 20);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // ureq-proto hex-dumped every 16 bytes of the 1 MB body (4.7 MB of log) and the request
    // head, Authorization included, right after ureq's line saying it was redacted.
    let err = run("trace");
    assert!(err.len() < 100_000, "{} bytes of log", err.len());
    assert!(!err.contains("S3CR3T"), "{err}");
    // The lines name their module, for a RUST_LOG directive to name it.
    assert!(err.contains("netkit: debug: ureq::"), "{err}");
    // Asked for by name, as curl's --trace-ascii, the dump is there.
    let err = run("ureq_proto=trace");
    assert!(err.len() > 1 << 20, "{} bytes of log", err.len());
    std::fs::remove_file(&saved).unwrap();
}

#[test]
fn rust_log_debug_keeps_a_redirects_password_query_and_set_cookie_out() {
    let server = EchoServer::start();
    // The Location carries a password and a query token, and the page it leads to sets a
    // cookie: ureq's debug lines hide them, netkit's redirect line and cookie_store's
    // "inserting Set-Cookie" printed them.
    let location = server
        .url("/set-cookie?c=session%3DSETCOOKIESECRET")
        .replace("http://", "http://alice:LOCPASSSECRET@");
    let encoded = location
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('=', "%3D");
    let hop = server.url(&format!("/redirect-to?url={encoded}"));
    let out = http_env(&["-F", &hop], &[("RUST_LOG", "debug")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cookies set", "{err}");
    assert!(err.contains("302 "), "{err}");
    for secret in ["LOCPASSSECRET", "SETCOOKIESECRET"] {
        assert!(!err.contains(secret), "{secret}: {err}");
    }
}

#[test]
fn rust_log_trace_keeps_an_unfollowed_redirects_password_and_query_out() {
    // ureq hides a Location's password and query in its `Response { .. }` debug line only
    // while its own trace is off: `RUST_LOG=trace` printed them whole.
    let server = EchoServer::start();
    let location = server
        .url("/anything?token=QUERYSECRET")
        .replace("http://", "http://alice:LOCPASSSECRET@");
    let encoded = location.replace('?', "%3F").replace('=', "%3D");
    let hop = server.url(&format!("/redirect-to?url={encoded}"));
    for level in ["debug", "trace"] {
        let out = http_env(&["-h", &hop], &[("RUST_LOG", level)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{level}: {err}");
        // The head asked for shows it, as the server sent it; the log does not.
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("LOCPASSSECRET"),
            "{level}: {out:?}"
        );
        assert!(err.contains("Response {"), "{level}: {err}");
        for secret in ["LOCPASSSECRET", "QUERYSECRET"] {
            assert!(!err.contains(secret), "{level}: {secret}: {err}");
        }
    }
    // Named, as curl's --trace names it, ureq shows it all.
    let out = http_env(&["-h", &hop], &[("RUST_LOG", "ureq=trace")]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("QUERYSECRET"),
        "{out:?}"
    );
}

#[test]
fn a_download_into_a_file_whose_directory_takes_no_new_file_names_the_part_it_cannot_make() {
    // `-d -o FILE` makes FILE.part beside it, renamed at the end. Where no file may be made
    // (/proc, a directory we may not write), the part's error was told of FILE: `-o
    // /proc/version` said "No such file or directory" of a file that is there, and a file
    // we may write was "Permission denied". Now the part is named. Written into, as curl -o
    // does, a cut download would leave the file truncated: it is left as it was.
    let server = EchoServer::start();
    let url = server.url("/bytes/1000");
    let dir = work_dir().join("http-cli-closed-dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mine = dir.join("mine.bin");
    std::fs::write(&mine, b"old").unwrap();
    let (uid, gid) = netkit_tests::test_user_ids();
    std::os::unix::fs::chown(&mine, Some(uid), Some(gid)).unwrap();
    let out = netkit_tests::as_test_user(&mut Command::new(netkit_bin()))
        .args([
            "http",
            "--ignore-netrc",
            "-d",
            "-o",
            mine.to_str().unwrap(),
            &url,
        ])
        .env("HOME", &dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err,
        format!(
            "netkit: error: {}: cannot make {}.part beside it (Permission denied (os error \
             13)): a download is written there and renamed, so that the file is never left \
             cut short\n",
            mine.display(),
            mine.display()
        )
    );
    assert_eq!(std::fs::read(&mine).unwrap(), b"old");
    assert!(!dir.join("mine.bin.part").exists());
    // `-c` (the file itself continued: renamed to its part first, by a server that resumes)
    // is told the same.
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    std::fs::write(root.join("closed-dir.bin"), [b'x'; 1000]).unwrap();
    let resumed = format!("{}/closed-dir.bin", env("NETKIT_TEST_NGINX_URL"));
    let out = netkit_tests::as_test_user(&mut Command::new(netkit_bin()))
        .args([
            "http",
            "--ignore-netrc",
            "-d",
            "-c",
            "-o",
            mine.to_str().unwrap(),
            &resumed,
        ])
        .env("HOME", &dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), err);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(&mine).unwrap(), b"old");
    let out = http(&["-d", "-o", "/proc/version", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(
            "netkit: error: /proc/version: cannot make /proc/version.part beside it (No such \
             file or directory"
        ),
        "{err}"
    );
}

#[test]
fn a_part_removed_or_moved_away_during_a_download_is_said_with_an_io_exit_code() {
    // Another program removing the `.part` or moving its directory mid-download: the rename
    // at the end found no part, "No such file or directory", exit 2 (bad input). Now the line
    // says where it went, exit 1 (I/O), and the file asked for is not written.
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    std::fs::write(root.join("cli-vanish.bin"), vec![7u8; 8 << 20]).unwrap();
    let slow = format!("{}/slow/cli-vanish.bin", env("NETKIT_TEST_NGINX_URL"));
    let base = work_dir().join("http-cli-vanish");
    let _ = std::fs::remove_dir_all(&base);
    for moved in [false, true] {
        let dir = base.join("dir");
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("got.bin");
        let part = dir.join("got.bin.part");
        let mut child = netkit_tests::Spawned::start(
            Command::new(netkit_bin())
                .args(["http", "-d", &slow, "-o", dest.to_str().unwrap()])
                .stderr(std::process::Stdio::piped()),
        );
        netkit_tests::wait_for_file_size(&part, 1 << 20, &mut child);
        let away = base.join(format!("away-{moved}"));
        let said = if moved {
            std::fs::rename(&dir, &away).unwrap();
            format!("moved to {}", away.join("got.bin.part").display())
        } else {
            std::fs::remove_file(&part).unwrap();
            "removed".to_owned()
        };
        let out = child.wait_with_output();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "moved={moved}: {err}");
        assert_eq!(
            err,
            format!(
                "netkit: error: {}: {said} by another program during the download; {} not \
                 written\n",
                part.display(),
                dest.display()
            )
        );
        assert!(!dest.exists() && !away.join("got.bin").exists());
    }
}

/// A peer on a free port of loopback that takes one connection, reads what comes first, and
/// hands both to `then`: its `host:port`, and its thread.
fn one_peer(
    then: impl FnOnce(std::net::TcpStream, &[u8]) + Send + 'static,
) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = vec![0; 1 << 16];
        let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
        then(stream, &buf[..n]);
    });
    (addr, peer)
}

/// Reads until the client closes (bounded by the peer's read timeout).
fn until_closed(mut stream: std::net::TcpStream) {
    let mut buf = [0; 4096];
    while matches!(std::io::Read::read(&mut stream, &mut buf), Ok(n) if n > 0) {}
}

#[test]
fn a_tls_handshake_that_stalls_is_named_as_such_not_as_no_connection() {
    // It was "no connection within 1 s", though the TCP connection was made.
    let (addr, peer) = one_peer(|stream, _| until_closed(stream));
    let out = http(&["--connect-timeout", "1", &format!("https://{addr}/")]);
    peer.join().unwrap();
    one_line_error(
        &out,
        7,
        "connected, but the TLS handshake did not finish within 1 s",
    );
}

#[test]
fn https_to_a_peer_that_echoes_is_one_line_naming_the_echo() {
    // rustls's own warning came first: "warning: Received a ClientHello handshake message
    // while expecting [ServerHello, HelloRetryRequest]".
    let (addr, peer) = one_peer(|mut stream, hello| {
        stream.write_all(hello).unwrap();
        until_closed(stream);
    });
    let out = http_env(&[&format!("https://{addr}/")], &[("RUST_LOG", "warn")]);
    peer.join().unwrap();
    one_line_error(&out, 1, "sent our own ClientHello back: not a TLS server");
}

#[test]
fn a_switch_of_protocols_not_asked_for_is_an_error_and_one_asked_for_is_said_unspoken() {
    // An unasked 101 was a success with no body, exit 0 (RFC 9110 15.2.2: a server must not).
    let switching = |mut stream: std::net::TcpStream, _: &[u8]| {
        stream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\n\r\n\x81\x02hi",
            )
            .unwrap();
        until_closed(stream);
    };
    let (addr, peer) = one_peer(switching);
    let out = http(&["--check-status", &format!("http://{addr}/x")]);
    peer.join().unwrap();
    one_line_error(
        &out,
        1,
        "switched protocols (101, to websocket) though the request asked for none",
    );
    // Asked for, the head is the answer, as curl shows it, and what netkit cannot do is said.
    let (addr, peer) = one_peer(switching);
    let out = http(&[
        "-h",
        &format!("http://{addr}/x"),
        "Upgrade:websocket",
        "Connection:Upgrade",
    ]);
    peer.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.1 101 Switching Protocols"),
        "{out:?}"
    );
    assert!(err.contains("netkit does not speak it"), "{err}");
}

#[test]
fn an_unasked_switch_of_protocols_is_not_retried() {
    // With --retry it was sent again, as a network failure: a server that switches protocols
    // unasked does so every time (curl does not retry it either).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let server = std::thread::spawn(move || {
        let mut requests = 0;
        let until = Instant::now() + Duration::from_secs(30);
        while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < until {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0; 4096];
            if matches!(std::io::Read::read(&mut stream, &mut buf), Ok(n) if n > 0) {
                requests += 1;
                let _ = stream.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                      Connection: Upgrade\r\n\r\n",
                );
            }
        }
        requests
    });
    let out = http(&["--retry", "2", "--check-status", &url]);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let requests = server.join().unwrap();
    one_line_error(
        &out,
        1,
        "switched protocols (101, to websocket) though the request asked for none",
    );
    assert_eq!(requests, 1);
}

#[test]
fn plain_http_to_a_tls_or_http2_server_names_what_it_speaks() {
    // A TLS server that closes on a plain request (openssl s_server): no hint before.
    let (addr, peer) = one_peer(|_, _| {});
    let out = http(&[&format!("http://{addr}/")]);
    peer.join().unwrap();
    one_line_error(&out, 1, "(an empty reply); https?");
    // One that answers with an alert record.
    let (addr, peer) = one_peer(|mut stream, _| {
        stream.write_all(b"\x15\x03\x03\x00\x02\x02\x46").unwrap();
    });
    let out = http(&[&format!("http://{addr}/")]);
    peer.join().unwrap();
    one_line_error(&out, 1, "the server answers in TLS; https?");
    // An HTTP/2 server's first frame, SETTINGS (nghttpd --no-tls): it was "not HTTP/1.x".
    let (addr, peer) = one_peer(|mut stream, _| {
        stream
            .write_all(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64")
            .unwrap();
        until_closed(stream);
    });
    let out = http(&[&format!("http://{addr}/")]);
    peer.join().unwrap();
    one_line_error(&out, 1, "the server speaks HTTP/2 only");
}
