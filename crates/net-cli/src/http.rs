//! `netkit http`: argument parsing and printing only (httpie/xh conventions).

use std::io::{IsTerminal as _, Read as _, Write};
use std::os::fd::AsFd as _;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use net_http::{
    Auth, BodyKind, Client, ClientConfig, Error, Head, Item, Preview, Request, Response, Retry,
    Session, TimeoutKind,
};

use crate::exit::{Failure, GENERIC, Outcome, USAGE, WithCode};

/// Exit codes of `netkit http` (httpie's for statuses).
const REDIRECT_STATUS: u8 = 3;
const CLIENT_ERROR_STATUS: u8 = 4;
const SERVER_ERROR_STATUS: u8 = 5;
const TOO_MANY_REDIRECTS: u8 = 6;
const TIMEOUT: u8 = 7;

/// Arguments of `netkit http`.
#[derive(clap::Args)]
#[command(
    disable_help_flag = true,
    after_help = "\
Items:
  Header:Value      request header            Header:        remove a default header
  field=value       JSON (or form) string     field:=json    raw JSON value
  param==value      query parameter           field@path     file upload (--form/--multipart)
  field=@file       string read from a file   field:=@file   JSON read from a file
  @file             the file is the body      @-             stdin is the body
  Header;           empty header value        param==@file   query parameter read from a file
  field@path;type=MIME   file upload with the part's Content-Type named (else from the extension)

JSON names nest as httpie's: user[name]=ann tags[]=a tags[]=b pets[0][id]:=1 ([]:=1 for a
top-level array); a backslash makes a separator literal: 'a\\=b=c' sends {\"a=b\": \"c\"}.

A stdin redirected from a file (`< data.json`) is the body when no item gives one (not with -I);
so is a pipe into an explicit POST, PUT or PATCH, waited for however long it takes to come.

Output: on a terminal, the response headers and body (JSON pretty-printed, colours unless
NO_COLOR); piped, the raw body only (--pretty all|colors|format|none changes either). --print
takes H (request headers), B (request body), h (response headers), b (response body).

Exit status: 0 done (also when the output's reader leaves early, as `| head`); 1 network or I/O
failure; 2 bad input (URL, item, file, option); with --check-status (or --download, told even when
the reader left early) 3 for an unfollowed 3xx, 4 for 4xx, 5 for 5xx; 6 too many redirects;
7 timeout (--timeout, --connect-timeout, --max-time; curl's 28); 130/143 after Ctrl-C or SIGTERM. The password of --auth USER comes from NETKIT_HTTP_PASSWORD or a prompt.

Examples:
  netkit http example.org/api/items page==2
  netkit http POST :8000/login name=ann admin:=true --session ./s.json
  netkit http -f PUT :8000/form a=1 file@./x.bin
  netkit http -d :8000/big.iso -o big.iso -c"
)]
pub struct Args {
    /// [METHOD] URL [ITEM...]: METHOD defaults to GET, or POST with data items.
    #[arg(value_name = "[METHOD] URL [ITEM]", required = true, num_args = 1..)]
    words: Vec<String>,
    /// Data items as application/x-www-form-urlencoded (multipart when a file is uploaded).
    #[arg(short = 'f', long, conflicts_with = "multipart")]
    form: bool,
    /// Data items as a JSON object (the default), and `Accept` and `Content-Type` say JSON
    /// even with no data, as httpie's -j.
    #[arg(short = 'j', long, conflicts_with_all = ["form", "multipart"])]
    json: bool,
    /// Data items as multipart/form-data.
    #[arg(long)]
    multipart: bool,
    /// The request body, as given.
    #[arg(long, value_name = "BODY")]
    raw: Option<String>,
    /// Credentials, USER or USER:PASS (prompted, or NETKIT_HTTP_PASSWORD, when absent).
    #[arg(short = 'a', long, value_name = "USER[:PASS]")]
    auth: Option<String>,
    /// Do not take credentials from ~/.netrc (or the file $NETRC names), which are otherwise
    /// sent to their host when no other credentials are given, as httpie's --ignore-netrc.
    #[arg(long)]
    ignore_netrc: bool,
    /// How --auth (or the URL's USER:PASS@) is sent: basic, or digest (answering the
    /// server's challenge).
    #[arg(short = 'A', long, value_name = "TYPE", default_value = "basic")]
    auth_type: AuthType,
    /// Bearer token.
    #[arg(long, value_name = "TOKEN", conflicts_with = "auth")]
    bearer: Option<String>,
    /// Send the body with Transfer-Encoding: chunked, its length not announced (as httpie's
    /// --chunked).
    #[arg(long)]
    chunked: bool,
    /// Send the URL's path as written: `..` and `.` kept, nothing re-encoded (as curl's and
    /// httpie's --path-as-is), for testing servers against such paths.
    #[arg(long)]
    path_as_is: bool,
    /// Follow redirects.
    #[arg(short = 'F', long)]
    follow: bool,
    /// Redirects followed with --follow.
    #[arg(long, value_name = "N", default_value_t = 30)]
    max_redirects: u32,
    /// With --follow, print the redirects too (as --print says), then the final response,
    /// as httpie's --all.
    #[arg(long)]
    all: bool,
    /// Seconds to wait for the connection and for each read or write [default: 10 to connect,
    /// 30 for each read or write; a write the server takes only part of starts the timer again,
    /// so a stalled upload may fail only after about three times as long]; as with curl and
    /// httpie, no limit on the whole exchange (an event stream may run for hours).
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Seconds to wait for the connection (TCP and TLS), as curl's --connect-timeout; wins
    /// over --timeout for connecting.
    #[arg(long, value_name = "SECS")]
    connect_timeout: Option<f64>,
    /// Seconds the whole transfer may take, redirects, retries and their waits included (curl's
    /// -m bounds each attempt; its --retry-max-time the retries); past it, exit 7.
    #[arg(long, value_name = "SECS")]
    max_time: Option<f64>,
    /// Retries of idempotent requests after connection errors, timeouts and 408, 429, 500,
    /// 502, 503 and 504, as curl's --retry (POST and PATCH are not retried).
    #[arg(long, value_name = "N", default_value_t = 0)]
    retry: u32,
    /// Keep headers, credentials and cookies in this JSON file (mode 0600); a NAME without
    /// `/` or `.json` is kept per host in ~/.config/netkit/sessions ($XDG_CONFIG_HOME/netkit/
    /// sessions when that is set), as httpie's.
    #[arg(long, value_name = "FILE|NAME")]
    session: Option<PathBuf>,
    /// Use the session in FILE (or NAME) without updating it (as httpie's
    /// --session-read-only).
    #[arg(long, value_name = "FILE|NAME", conflicts_with = "session")]
    session_read_only: Option<PathBuf>,
    /// `no` to skip TLS verification, or a CA bundle (PEM) to trust.
    #[arg(long, value_name = "no|yes|CA_FILE")]
    verify: Option<String>,
    /// Client certificate (PEM, with its key unless --cert-key names the key's file), for
    /// servers that ask for one.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The private key of --cert (PEM, unencrypted), as httpie's --cert-key and curl's --key.
    #[arg(long, value_name = "FILE", alias = "key", requires = "cert")]
    cert_key: Option<PathBuf>,
    /// Proxy URL (http://, socks5://), or httpie's PROTOCOL:URL for http or https URLs only
    /// (repeatable); default from http_proxy, https_proxy or all_proxy (lower case first,
    /// then upper case), as curl; hosts in NO_PROXY are reached directly either way.
    #[arg(long, value_name = "[PROTOCOL:]URL")]
    proxy: Vec<String>,
    /// Save the body to a file with a progress bar: -o FILE, or the name the server gives in
    /// Content-Disposition, or the URL's file name (NAME-1, NAME-2, ... when NAME exists, as
    /// httpie); without -o and with stdout redirected, to stdout (`-d URL | tar x`). What -v,
    /// -h or --all show goes to stderr, each head before its body, a refused one's too.
    #[arg(short = 'd', long)]
    download: bool,
    /// Save the body to FILE (`-` writes it to stdout as it comes, as curl).
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Resume a partial download (with --download).
    #[arg(short = 'c', long = "continue", requires = "download")]
    resume: bool,
    /// Flush the file to disk before it takes its name (with --download).
    #[arg(long, requires = "download")]
    fsync: bool,
    /// Exit 3, 4 or 5 for 3xx, 4xx, 5xx responses.
    #[arg(long)]
    check_status: bool,
    /// What to print: H request headers, B request body, h response headers, b response body,
    /// m the time the response took (as httpie's).
    #[arg(short = 'p', long, value_name = "WHAT")]
    print: Option<String>,
    /// Print the time the response took only (--print=m), as httpie's --meta.
    #[arg(short = 'm', long)]
    meta: bool,
    /// Print the request and the response (--print=HBhb).
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Print the response headers only (--print=h).
    #[arg(short = 'h', long)]
    headers: bool,
    /// Print the response body only (--print=b).
    #[arg(short = 'b', long)]
    body: bool,
    /// Build and print the request; send nothing.
    #[arg(long)]
    offline: bool,
    /// On a terminal, show a JSON body as it comes instead of pretty-printing it whole (other
    /// text is shown as it comes, unless it starts as JSON: that is held to be formatted, as
    /// httpie holds it), as httpie's -S.
    #[arg(short = 'S', long)]
    stream: bool,
    /// Colours and JSON formatting: all, colors, format or none (default: all on a terminal,
    /// none when piped), as httpie's --pretty.
    #[arg(long, value_enum, value_name = "STYLE")]
    pretty: Option<Pretty>,
    /// When formatting, keep headers and JSON keys in the order they came instead of sorting
    /// them by name, as httpie's --unsorted.
    #[arg(long, overrides_with = "sorted")]
    unsorted: bool,
    /// When formatting, sort headers and JSON keys by name (the default), as httpie's --sorted.
    #[arg(long, overrides_with = "unsorted")]
    sorted: bool,
    /// Print nothing but errors and warnings (no body, no progress bar); twice, warnings
    /// too are left out, as httpie's -q and -qq.
    #[arg(short = 'q', long, action = clap::ArgAction::Count)]
    quiet: u8,
    /// Do not take a stdin redirected from a file or piped into POST/PUT/PATCH as the body.
    #[arg(short = 'I', long)]
    ignore_stdin: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

impl Args {
    /// The log filter -qq asks for (errors only), if it does.
    pub fn log_filter(&self) -> Option<&'static str> {
        (self.quiet >= 2).then_some("error")
    }

    /// Whether redirects are followed: httpie's --download follows them by itself (a release
    /// asset, a "latest" link).
    fn follows(&self) -> bool {
        self.follow || self.download
    }
}

/// The library's `max_redirects` 0 hands the 3xx back; asked to follow redirects but none
/// (`--max-redirects 0` with -F or -d), a `response` the library would have followed (a
/// redirect status with a `Location`) is one too many, as httpie and curl --max-redirs 0 say:
/// exit 6, not 3's "not followed". A 3xx with no `Location` is no redirect but the server's
/// answer, as the library takes it: exit 3 under --check-status or -d, as httpie's (it was 6
/// under -d, as if a loop had been cut).
fn none_followed(args: &Args, response: &Response) -> Option<Error> {
    let redirect = matches!(response.status(), 301 | 302 | 303 | 307 | 308)
        && response
            .header("location")
            .is_some_and(|to| !to.trim().is_empty());
    (args.follows() && args.max_redirects == 0 && redirect).then(|| Error::TooManyRedirects {
        url: response.url().to_owned(),
        max: 0,
    })
}

/// Runs `netkit http`.
pub fn run(args: Args) -> Outcome {
    // A body that stops coming times out as a silent server does: exit 7, not 1.
    request(args).map_err(|mut failure| {
        let Some(kind) = timeout_kind(&failure.error) else {
            return failure;
        };
        if failure.code == GENERIC {
            failure.code = TIMEOUT;
        }
        if failure.code == TIMEOUT {
            failure.error = anyhow!("{:#}{}", failure.error, timeout_hint(kind));
        }
        failure
    })
}

fn request(mut args: Args) -> Outcome {
    // `-o -` is standard output, as in curl: the body as it comes, with no file to name;
    // so is --download without -o when stdout is redirected, as httpie and xh take
    // `http -d URL | tar x`. `-d -o -`, as curl users write it, is that download too (it
    // was a plain GET: a 404 page written, a redirect not followed, exit 0).
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    let download_to_stdout =
        args.download && (to_stdout || args.output.is_none() && !std::io::stdout().is_terminal());
    if download_to_stdout && args.resume {
        return Err(anyhow!(
            "--continue needs --output FILE: the download goes to stdout, which cannot be resumed"
        ))
        .code(USAGE);
    }
    // What httpie's --download does with what it shows, the file going to stdout or not.
    let downloading = args.download;
    let raw_stdout = to_stdout || download_to_stdout;
    if raw_stdout {
        args.download = false;
    }
    // Before a byte is sent, as httpie checks: a POST reached the server and its answer was
    // thrown away for a mistyped directory, with the exit code that says nothing happened.
    if let Some(path) = args.output.as_deref().filter(|_| !to_stdout) {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if path.is_dir() {
            return Err(anyhow!("cannot write {}: is a directory", path.display())).code(USAGE);
        }
        if !dir.is_dir() {
            return Err(anyhow!(
                "cannot write {}: no directory {}",
                path.display(),
                dir.display()
            ))
            .code(USAGE);
        }
        // One not ours to write was found only once the answer came.
        let writable = if path.exists() {
            nix::unistd::access(path, nix::unistd::AccessFlags::W_OK)
        } else {
            nix::unistd::access(
                dir,
                nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
            )
        };
        if let Err(errno) = writable {
            return Err(anyhow!(
                "cannot write {}: {}",
                path.display(),
                std::io::Error::from(errno)
            ))
            .code(USAGE);
        }
    }
    // Still a download: it follows redirects and an answer that is not the file (3xx, 4xx,
    // 5xx) writes nothing and exits 3/4/5, as httpie's `-d URL | tar x`.
    if download_to_stdout {
        args.follow = true;
        args.check_status = true;
    }
    let Words {
        method,
        url,
        items,
        body_file,
    } = split_words(&args.words).code(USAGE)?;
    // As httpie: stdin redirected from a file (`< data.json`) is the body when nothing else
    // is, and so is a pipe into an explicit POST, PUT or PATCH.
    // One body, as httpie allows one: the rest would be dropped without a word.
    let data = items.iter().any(Item::is_data);
    if let (Some(file), true) = (&body_file, data || args.raw.is_some()) {
        return Err(anyhow!(
            "the body is given twice: @{} and {}; give one",
            file.display(),
            if data {
                "data items (key=value)"
            } else {
                "--raw"
            }
        ))
        .code(USAGE);
    }
    if args.raw.is_some() && data {
        return Err(anyhow!(
            "the body is given twice: --raw and data items (key=value); give one"
        ))
        .code(USAGE);
    }
    let body_file = match body_file {
        Some(file) => Some(file),
        None if args.ignore_stdin || data || args.raw.is_some() => None,
        None => stdin_body(method, args.quiet < 2)?,
    };
    let client = Client::new(config(&args, &url)?).map_err(failure)?;
    let mut session = match args.session.as_ref().or(args.session_read_only.as_ref()) {
        Some(given) => {
            let path = Session::path_for(given, &url).map_err(failure)?;
            Some(Session::open(client.clone(), path).map_err(failure)?)
        }
        None => None,
    };
    let has_data = items.iter().any(Item::is_data) || args.raw.is_some() || body_file.is_some();
    let method = method
        .unwrap_or(if has_data { "POST" } else { "GET" })
        .to_owned();
    let mut request = match &session {
        Some(session) => session.request(&method, &url),
        None => client.request(&method, &url),
    }
    .map_err(failure)?;
    let kind = if args.multipart {
        BodyKind::Multipart
    } else if args.form {
        BodyKind::Form
    } else {
        BodyKind::Json
    };
    // Defaults, as httpie's: the user's own header (or its removal) wins, and so does the
    // session's (a default given would replace it).
    let user_sets = |name: &str| {
        let in_session = session.as_ref().is_some_and(|s| {
            s.headers()
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        });
        in_session
            || items.iter().any(|i| match i {
                Item::Header(n, _) | Item::RemoveHeader(n) => n.eq_ignore_ascii_case(name),
                _ => false,
            })
    };
    // A body given whole (--raw, stdin: `echo '{...}' | netkit http PUT URL`) is taken to be
    // of the kind asked for, JSON unless --form, as httpie takes it; a file's type is guessed
    // from its name.
    let whole_body = args.raw.is_some() || body_file.as_deref() == Some(Path::new(STDIN));
    let json_body = kind == BodyKind::Json && has_data;
    if (args.json || json_body) && !user_sets("Accept") {
        request = request.header("Accept", "application/json, */*;q=0.5");
    }
    if !user_sets("Content-Type") {
        if args.json || (json_body && whole_body) {
            request = request.header("Content-Type", "application/json");
        } else if kind == BodyKind::Form && whole_body {
            request = request.header("Content-Type", "application/x-www-form-urlencoded");
        }
    }
    let stdout_tty = std::io::stdout().is_terminal();
    let what = args.print.clone().unwrap_or_else(|| {
        if args.quiet > 0 {
            String::new()
        } else if args.verbose {
            "HBhb".into()
        } else if args.offline {
            "HB".into()
        } else if args.headers {
            "h".into()
        } else if args.meta {
            "m".into()
        } else if args.body || !stdout_tty || args.download {
            "b".into()
        } else {
            "hb".into()
        }
    });
    if let Some(bad) = what.chars().find(|c| !"HBhbm".contains(*c)) {
        return Err(anyhow!("--print takes H, B, h, b and m, not {bad:?}")).code(USAGE);
    }
    request = request.items(&items, kind).map_err(failure)?;
    if let Some(raw) = &args.raw {
        request = request.raw(raw.as_bytes());
    } else if let Some(path) = body_file {
        request = with_body(request, path, what.contains('B'))?;
    }
    if args.chunked {
        request = request.chunked();
    }
    // What a download asks for, set here so that -v and --offline show what is sent.
    if (args.download || download_to_stdout) && !user_sets("Accept-Encoding") {
        request = request.header("Accept-Encoding", "identity");
    }
    let session_auth = session.as_ref().is_some_and(|s| s.auth().is_some());
    let netrc = (!args.ignore_netrc).then(netrc).flatten();
    let from_session = if session_auth { None } else { netrc.as_ref() };
    let (auth, from_netrc) = auth(&args, &url, from_session)?;
    if let Some(auth) = &auth {
        request = request.auth(auth.clone());
    }
    if let Some(netrc) = netrc {
        request = request.netrc(netrc);
    }
    if let Some(session) = &mut session {
        for item in &items {
            match item {
                Item::Header(name, value) if name.eq_ignore_ascii_case("cookie") => {
                    session.set_cookies(&url, value).map_err(failure)?;
                }
                Item::Header(name, value) if Session::keeps_header(name) => {
                    session.set_header(name, value);
                }
                Item::RemoveHeader(name) => session.remove_header(name),
                _ => {}
            }
        }
        // Not the netrc's: it stays the place they are kept, as with httpie.
        if auth.is_some() && !from_netrc {
            session.set_auth(auth);
        }
    }

    // A download's body is all that goes to stdout: the heads and bodies -v, -h and --print
    // show go to stderr, as httpie's --download and curl -v -o - show them (`-d -v URL >
    // file` saved the heads as the file's first bytes).
    let (mut shown, shown_tty): (Box<dyn Write>, bool) = if downloading {
        (
            Box::new(crate::stdio::Aside(std::io::LineWriter::new(
                std::io::stderr(),
            ))),
            std::io::stderr().is_terminal(),
        )
    } else {
        (Box::new(std::io::stdout().lock()), stdout_tty)
    };
    let style = Style::new(shown_tty, args.pretty, !args.unsorted);
    let mut out = std::io::stdout().lock();
    // Nothing shown that would not be sent (a header holding a line break).
    request.check().map_err(failure)?;
    if what.contains('H') || what.contains('B') || args.offline {
        print_request(&mut shown, &request.preview(), &what, shown_tty, &style)?;
    }
    if args.offline {
        shown.flush()?;
        return Ok(ExitCode::SUCCESS);
    }

    let shows = Shows {
        what: &what,
        tty: shown_tty,
        style: &style,
        all: args.all,
        stream: args.stream,
    };
    if args.download {
        shown.flush()?;
        // On stderr with the request's, each head as it comes, as httpie's --download shows
        // them: before the body, and for an answer that is not saved.
        let mut show = |response: &mut Response| shows.head(&mut shown, response);
        return download(request, &args, session.as_ref(), &mut show);
    }
    let started = std::time::Instant::now();
    let mut response = request.send().map_err(failure)?;
    // From sending to the response's head, as httpie (requests) times it.
    let elapsed = started.elapsed();
    if let Some(error) = none_followed(&args, &response) {
        return Err(failure(error));
    }
    // Told after the response, which was had (its request may have changed the server's
    // state: a script must not take it for one never made and send it again).
    let saved = save(session.as_ref(), &args);
    let status = response.status();
    let reason = response.reason().to_owned();
    let via_proxy = response.via_proxy();
    // Before the body, as it came.
    shows.head(&mut shown, &mut response)?;
    let url = response.url().to_owned();
    // A download's 3xx (none to follow) is not the file, piped or saved: exit 3 either way.
    let code = status_code(
        status,
        args.check_status,
        args.follows() && !download_to_stdout,
    );
    let shown_all = (|| -> Result<(), Failure> {
        // A piped download's refused answer is not the file: the warning of --check-status says
        // why nothing came.
        if download_to_stdout {
            // The file as the server holds it, as a download to a file saves it: `-d URL | tar
            // xz` of a `.tar.gz` labelled gzip got it unpacked once already.
            // With its progress on the terminal, as when saved to a file (it showed nothing).
            if status < 300 {
                let bar = download_bar(args.quiet, response.content_length(), 0);
                let body = response.encoded_reader();
                let mut body: Box<dyn std::io::Read> = match &bar {
                    Some(bar) => Box::new(bar.wrap_read(body)),
                    None => Box::new(body),
                };
                let passed = pass_body(&mut body, &url, &mut out, "writing the output");
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                passed?;
            }
        } else if raw_stdout {
            pass_body(&mut response.reader(), &url, &mut out, "writing the output")?;
        } else if let Some(path) = &args.output {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))
                .code(USAGE)?;
            // Started over when cut off mid-way, retries being left, as curl -o --retry.
            response.save_to(&mut file, path).map_err(failure)?;
        } else if what.contains('b') {
            print_body(&mut out, response, stdout_tty, args.stream, &style)?;
            if what.contains('m') {
                // A piped body ends as it came; on a terminal it ended with a newline.
                write!(out, "{}", if stdout_tty { "\n" } else { "\n\n" })?;
            }
        }
        if what.contains('m') {
            writeln!(shown, "Elapsed time: {:.9}s\n", elapsed.as_secs_f64())?;
        }
        out.flush()?;
        shown.flush()?;
        Ok(())
    })();
    // A reader that left early (`| head`, `| grep -q`) is no failure of ours, but the status
    // still is: `set -o pipefail; netkit http --check-status URL | head` passed on a 500.
    if let Err(error) = shown_all
        && (code == 0 || !crate::exit::is_broken_pipe(&error.error))
    {
        return Err(error);
    }
    saved?;
    // The proxy's page alone said nothing on stderr, where an https URL's refused tunnel
    // says what it wants (curl and httpie say nothing either way). Only a proxy's: an origin
    // server's 407, with no proxy in the way, is no proxy's demand.
    if status == 407 && via_proxy {
        log::warn!(
            "the proxy answered 407, {}",
            net_http::PROXY_WANTS_CREDENTIALS
        );
    }
    // The body alone went to the file or pipe: the failed status is told, as httpie does.
    if code != 0 && !stdout_tty {
        log::warn!("HTTP {status} {reason}");
    }
    Ok(ExitCode::from(code))
}

/// Copies a body to `out`, saying which side failed: a full disk was "reading the response
/// body" (`writing` names the other side). A body that fails names its `url`, as curl's
/// errors do: the line said only "reading the response body".
fn pass_body(
    body: &mut dyn std::io::Read,
    url: &str,
    out: &mut dyn Write,
    writing: &str,
) -> anyhow::Result<()> {
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = match body.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context(url.to_owned()),
        };
        out.write_all(&chunk[..n]).context(writing.to_owned())?;
    }
}

/// The session file `given` names: a path when it has a `/` or ends in `.json`, else a
/// session name kept per host, as httpie's `--session NAME`.
/// Writes the session back, unless it is read-only. Failing is an I/O failure (1), not bad
/// input: the request was made.
fn save(session: Option<&Session>, args: &Args) -> Result<(), Failure> {
    match session {
        Some(session) if args.session_read_only.is_none() => {
            holding_signals(|| session.save()).code(GENERIC)
        }
        _ => Ok(()),
    }
}

/// What the watcher of SIGINT, SIGTERM and SIGHUP does with one.
struct Watch {
    /// A session file is being written: the signal waits for its end.
    holding: bool,
    /// The signal that came meanwhile.
    came: Option<i32>,
    /// A download's partial file, its size and its progress bar: said on the way out, since
    /// nothing told that the part was kept nor how to go on from it.
    part: Option<(PathBuf, u64, Option<indicatif::ProgressBar>)>,
}

static WATCH: std::sync::Mutex<Watch> = std::sync::Mutex::new(Watch {
    holding: false,
    came: None,
    part: None,
});

fn watch_state() -> std::sync::MutexGuard<'static, Watch> {
    WATCH
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The signal watcher's state, the watcher started the first time: a signal ends the
/// process as the default would (130/143/129), unless it is held.
fn watch() -> std::sync::MutexGuard<'static, Watch> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static WATCHING: std::sync::Once = std::sync::Once::new();
    WATCHING.call_once(|| {
        let Ok(mut signals) = crate::signals::watch(&[SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        let _ = crate::spawn(move || {
            for signal in signals.forever() {
                let mut watch = watch_state();
                if watch.holding {
                    watch.came = Some(signal);
                    continue;
                }
                if let Some((part, done, bar)) = &watch.part {
                    if let Some(bar) = bar {
                        bar.abandon();
                    }
                    // What is on disk: a chunk may be written and not yet counted.
                    let done = std::fs::metadata(part).map_or(*done, |m| m.len());
                    crate::exit::say(format_args!(
                        "netkit: stopped; {} with --continue (-c)",
                        net_http::kept_part(done, part)
                    ));
                }
                // The default: the process ends, killed by it.
                let _ = signal_hook::low_level::emulate_default_handler(signal);
            }
        });
    });
    watch_state()
}

/// Runs `work` with SIGINT, SIGTERM and SIGHUP held until it is done, then taken as they
/// would have been: killed while the session was written, the process left the hidden copy
/// it was writing (cookies and credentials) beside the session, for good.
fn holding_signals<T>(work: impl FnOnce() -> T) -> T {
    watch().holding = true;
    let done = work();
    let came = {
        let mut watch = watch();
        watch.holding = false;
        watch.came.take()
    };
    if let Some(signal) = came {
        let _ = signal_hook::low_level::emulate_default_handler(signal);
    }
    done
}

/// The limit a failure ran out of, when a timeout ended it: the library's error, or a body's
/// read that a printing or saving step wrapped.
fn timeout_kind(error: &anyhow::Error) -> Option<TimeoutKind> {
    error.chain().find_map(|cause| {
        if let Some(Error::Timeout { kind, .. }) = cause.downcast_ref::<Error>() {
            return Some(*kind);
        }
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(TimeoutKind::of_io)
    })
}

/// How to wait longer for the limit that ran out, said after the library's words for the
/// time waited: the one flag that raises it, as curl's "Connection timed out" and "Operation
/// timed out" tell them apart (every limit given was listed, the one to raise left to guess).
fn timeout_hint(kind: TimeoutKind) -> &'static str {
    match kind {
        TimeoutKind::Connect => "; --connect-timeout SECS waits longer to connect",
        TimeoutKind::Read | TimeoutKind::Write => "; --timeout SECS waits longer",
        TimeoutKind::Total => "; --max-time SECS gives the whole transfer longer",
        // The system's own limit: no flag of ours raises it.
        _ => "",
    }
}

fn failure(error: Error) -> Failure {
    let code = match &error {
        Error::BadUrl { .. } | Error::BadRequest(_) | Error::Session { .. } => USAGE,
        // A file named that is not there, not a file, or not ours to read or write is bad
        // input, whatever flag names it (`--cert`, `@file` and `f@file` exited 1, `a=@file`
        // 2), as is one over the cap of such files (`--verify /dev/zero`); one the disk
        // cannot take (full) is an I/O failure, as curl's 23.
        Error::File { source, .. }
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::IsADirectory
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::FileTooLarge
            ) =>
        {
            USAGE
        }
        Error::TooManyRedirects { .. } => TOO_MANY_REDIRECTS,
        Error::Timeout { .. } => TIMEOUT,
        // A download refused for its status exits as --check-status would, as httpie's -d.
        Error::Status { status, .. } => status_code(*status, true, false),
        _ => GENERIC,
    };
    Failure {
        code,
        error: error.into(),
    }
}

/// The exit code of a final `status` under --check-status (`check`); `followed` when
/// redirects were followed: then a 3xx at the end (a 304, a 300, one with no Location) is
/// the server's answer, not a redirect left unfollowed, and exits 0 as in httpie.
fn status_code(status: u16, check: bool, followed: bool) -> u8 {
    match status {
        300..=399 if check && !followed => REDIRECT_STATUS,
        400..=499 if check => CLIENT_ERROR_STATUS,
        500..=599 if check => SERVER_ERROR_STATUS,
        _ => 0,
    }
}

/// The positional words of `netkit http`.
struct Words<'a> {
    method: Option<&'a str>,
    url: String,
    items: Vec<Item>,
    body_file: Option<PathBuf>,
}

/// The name standing for stdin as the body (`@-`, or stdin redirected); it is read as it
/// is open, never opened again by this name.
const STDIN: &str = "/dev/stdin";

/// `request` with the body of `path` ([`STDIN`] for stdin, read from where it stands: a
/// caller may have read its first line, and a socket cannot be opened again by name). A body
/// to be shown that cannot be read twice (a pipe) is read first and sent as read: reading it
/// to show it left nothing to send.
fn with_body(request: Request, path: PathBuf, shown: bool) -> Result<Request, Failure> {
    let stdin = path == Path::new(STDIN);
    if stdin && crate::stdin_is_null() {
        return Err(anyhow!(
            "@-: standard input is closed or /dev/null: no body sent in place of the data \
             meant (pipe an empty input to send an empty body)"
        ))
        .code(USAGE);
    }
    let regular = !stdin && std::fs::metadata(&path).is_ok_and(|m| m.is_file());
    let cannot_read = |e: std::io::Error| {
        failure(net_http::Error::File {
            path: path.clone(),
            source: e,
        })
    };
    if shown && !regular {
        let mut data = Vec::new();
        if stdin {
            std::io::stdin().lock().read_to_end(&mut data)
        } else {
            std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut data))
        }
        .map_err(cannot_read)?;
        return Ok(request.raw(data));
    }
    if stdin {
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(cannot_read)?;
        return Ok(request.open_body(std::fs::File::from(fd)));
    }
    Ok(request.file(path))
}

/// stdin as the body when nothing else is one, as httpie takes it: redirected from a file
/// (`< data.json`), or a pipe into an explicit POST, PUT or PATCH (`pg_dump | netkit http
/// PUT URL`), waited for however long its first bytes take (`note` says after a while that
/// it waits, and how not to).
fn stdin_body(method: Option<&str>, note: bool) -> Result<Option<PathBuf>, Failure> {
    let Ok(stdin) = std::fs::metadata(STDIN) else {
        return Ok(None);
    };
    if stdin.is_dir() {
        // It sent an empty body, exit 0.
        let name = std::fs::read_link("/proc/self/fd/0")
            .map_or_else(|_| "stdin".into(), |path| path.display().to_string());
        return Err(anyhow!(
            "{name}: a directory on stdin, not a body to send (-I leaves stdin alone)"
        ))
        .code(USAGE);
    }
    let takes_body = method.is_some_and(|m| {
        ["POST", "PUT", "PATCH"]
            .iter()
            .any(|b| m.eq_ignore_ascii_case(b))
    });
    let body =
        stdin.is_file() || (stdin.file_type().is_fifo() && takes_body && pipe_has_body(note));
    Ok(body.then(|| PathBuf::from(STDIN)))
}

/// How long a pipe into POST, PUT or PATCH stays silent before a note says the request waits
/// for it.
const PIPE_NOTE_MS: u16 = 5000;

/// Whether the pipe on stdin brings a body: it does unless it closes with nothing in it.
/// Its first bytes are waited for however long they take, as httpie and curl `-T -` wait: a
/// dump or an archive may take minutes to start, and the request went without them, an
/// empty file put in place of the last good one, exit 0. A pipe left open and silent (a
/// script's stdin) holds the request up; after [`PIPE_NOTE_MS`] a note says so, and how to
/// send no body.
fn pipe_has_body(note: bool) -> bool {
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    let mut wait = PollTimeout::from(PIPE_NOTE_MS);
    loop {
        match poll(&mut fds, wait) {
            Ok(0) => {
                if note {
                    crate::exit::say(format_args!(
                        "netkit: waiting for the body on stdin (a pipe); `< /dev/null` or -I sends none"
                    ));
                }
                wait = PollTimeout::NONE;
            }
            Ok(_) => {
                return fds[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLIN));
            }
            Err(Errno::EINTR) => {}
            // Reading it tells what is wrong with it.
            Err(_) => return true,
        }
    }
}

/// `[METHOD] URL [ITEM...]` into its parts; `@file` names the body file, `@-` stdin.
fn split_words(words: &[String]) -> anyhow::Result<Words<'_>> {
    // A word in capitals, or a method's name in any case: `netkit http localhost a=1` is a
    // POST to localhost (httpie takes `localhost` for the method there).
    const METHODS: [&str; 16] = [
        "get",
        "head",
        "post",
        "put",
        "delete",
        "connect",
        "options",
        "trace",
        "patch",
        "propfind",
        "proppatch",
        "mkcol",
        "copy",
        "move",
        "lock",
        "unlock",
    ];
    let is_method = |w: &str| {
        !w.is_empty()
            && w.len() <= 16
            && w.chars().all(|c| c.is_ascii_alphabetic())
            && (w.chars().all(|c| c.is_ascii_uppercase())
                || METHODS.iter().any(|m| m.eq_ignore_ascii_case(w)))
    };
    let (method, rest) = match words {
        [first, second, rest @ ..] if is_method(first) && !second.is_empty() => {
            (Some(first.as_str()), (second, rest))
        }
        [url, rest @ ..] => (None, (url, rest)),
        [] => anyhow::bail!("a URL is required"),
    };
    let (url, rest) = rest;
    let mut items = Vec::new();
    let mut body_file = None;
    for word in rest {
        let file = if word == "@-" {
            Some(PathBuf::from(STDIN))
        } else if let Some(path) = word.strip_prefix('@') {
            std::fs::metadata(path).with_context(|| format!("cannot read the body file {path}"))?;
            Some(PathBuf::from(path))
        } else {
            items.push(Item::parse(word)?);
            None
        };
        if let Some(file) = file {
            if body_file.is_some() {
                anyhow::bail!("the body is given twice ({word} and an @file before it)");
            }
            body_file = Some(file);
        }
    }
    Ok(Words {
        method,
        url: net_http::url_shorthand(url),
        items,
        body_file,
    })
}

/// The `--proxy` for `url`: one given as `http:URL` or `https:URL` (httpie's form) for its
/// scheme, else one given as a bare URL; the error names a value with another protocol.
fn proxy_for<'a>(proxies: &'a [String], url: &str) -> anyhow::Result<Option<&'a str>> {
    let scheme = if url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let mut chosen = None;
    let mut plain = None;
    for value in proxies {
        match value.split_once(':') {
            Some((protocol, proxy)) if proxy.contains("://") => {
                if !["http", "https"].contains(&protocol) {
                    anyhow::bail!(
                        "--proxy {value:?}: the protocol before the URL is http or https"
                    );
                }
                if protocol == scheme {
                    chosen = chosen.or(Some(proxy));
                }
            }
            _ => plain = plain.or(Some(value.as_str())),
        }
    }
    Ok(chosen.or(plain))
}

fn config(args: &Args, url: &str) -> Result<ClientConfig, Failure> {
    let mut config = ClientConfig::default();
    config.max_redirects = if args.follows() {
        args.max_redirects
    } else {
        0
    };
    config.path_as_is = args.path_as_is;
    if let Some(timeout) = seconds("--timeout", args.timeout)? {
        config.connect_timeout = timeout;
        config.read_timeout = timeout;
    }
    if let Some(timeout) = seconds("--connect-timeout", args.connect_timeout)? {
        config.connect_timeout = timeout;
    }
    // Without --max-time a big download, a slow upload or an event stream takes as long as
    // it takes, as with curl and httpie; the read timeout still catches a dead server. (The
    // library's 300 s total cut a stream still flowing at 5 minutes, exit 7.)
    config.timeout = seconds("--max-time", args.max_time)?;
    config.retry = Retry::times(args.retry);
    config.proxy = proxy_for(&args.proxy, url).code(USAGE)?.map(str::to_owned);
    config.client_cert.clone_from(&args.cert);
    config.client_key.clone_from(&args.cert_key);
    match args.verify.as_deref() {
        None | Some("yes" | "true") => {}
        Some("no" | "false") => config.insecure = true,
        Some(path) => config.ca_file = Some(PathBuf::from(path)),
    }
    Ok(config)
}

/// The duration of a `--timeout`-like option, refused (exit 2) unless positive.
fn seconds(option: &str, secs: Option<f64>) -> Result<Option<Duration>, Failure> {
    let Some(secs) = secs else {
        return Ok(None);
    };
    // Past a billion seconds (31 years) a deadline no longer fits the clock's range.
    if !(secs > 0.0 && secs <= 1e9) {
        return Err(anyhow!(
            "{option} must be a positive number of seconds, at most 1000000000"
        ))
        .code(USAGE);
    }
    Ok(Some(Duration::from_secs_f64(secs)))
}

/// The netrc file (`$NETRC`, else `~/.netrc`), when there is one. It is the machine's, not
/// this command's input: one that does not parse is said and left out, as httpie (requests)
/// leaves it out, rather than failing every request.
fn netrc() -> Option<net_http::Netrc> {
    let path = net_http::Netrc::default_path()?;
    net_http::Netrc::load(&path)
        .inspect_err(|e| log::warn!("{e}; not used"))
        .ok()
}

/// The credentials to send: `--bearer`, else `--auth`, else the URL's, else `netrc`'s for the
/// host, as httpie and xh take them; and whether they came from the netrc file.
fn auth(
    args: &Args,
    url: &str,
    netrc: Option<&net_http::Netrc>,
) -> Result<(Option<Auth>, bool), Failure> {
    if let Some(token) = &args.bearer {
        return Ok((Some(Auth::Bearer(token.clone())), false));
    }
    let from_netrc_file = netrc
        .and_then(|netrc| netrc.login_for_url(url))
        .map(|login| (login.user.clone(), Some(login.password.clone())));
    // -a wins over the URL's user; a user without a password is asked for one, as httpie
    // does; --auth-type applies to either.
    let mut from_netrc = false;
    let (user, password) = match (&args.auth, net_http::url_credentials(url)) {
        (Some(auth), _) => match auth.split_once(':') {
            Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
            None => (auth.clone(), None),
        },
        (None, Some(from_url)) => from_url,
        (None, None) => match from_netrc_file {
            Some(login) => {
                from_netrc = true;
                login
            }
            None if matches!(args.auth_type, AuthType::Digest) => {
                return Err(anyhow!(
                    "-A digest needs credentials: -a USER[:PASS] or USER[:PASS]@ in the URL"
                ))
                .code(USAGE);
            }
            None => return Ok((None, false)),
        },
    };
    let password = match (password, std::env::var("NETKIT_HTTP_PASSWORD")) {
        (Some(password), _) | (None, Ok(password)) => password,
        (None, Err(_)) if std::io::stdin().is_terminal() => {
            crate::prompt_password(format!("http: password for {user}: "))
                .context("cannot read the password")?
        }
        (None, Err(_)) => {
            return Err(anyhow!(
                "no password for {user}: set NETKIT_HTTP_PASSWORD or run on a terminal"
            ))
            .code(USAGE);
        }
    };
    let auth = match args.auth_type {
        AuthType::Basic => Auth::Basic { user, password },
        AuthType::Digest => Auth::Digest { user, password },
    };
    Ok((Some(auth), from_netrc))
}

/// The schemes of `--auth-type`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum AuthType {
    Basic,
    Digest,
}

/// A download's progress bar on stderr when it is a terminal (unless -q), for `total`
/// bytes when known: how much and how fast otherwise.
fn download_bar(quiet: u8, total: Option<u64>, done: u64) -> Option<indicatif::ProgressBar> {
    (quiet == 0 && std::io::stderr().is_terminal()).then(|| {
        let template = match total {
            Some(_) => "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} {eta}",
            None => "{spinner} {bytes} {bytes_per_sec}",
        };
        let bar = crate::progress::bar(template, "", total.unwrap_or(0), done);
        // Redrawn while nothing comes, its speed falling: a stalled download looked like a
        // running one.
        bar.enable_steady_tick(std::time::Duration::from_millis(500));
        bar
    })
}

/// Downloads as `args` ask, `show` given each response's head as it comes (before its body,
/// and for one that is then refused or cut short).
fn download(
    request: Request,
    args: &Args,
    session: Option<&Session>,
    show: &mut dyn FnMut(&mut Response) -> anyhow::Result<()>,
) -> Outcome {
    let mut bar: Option<Option<indicatif::ProgressBar>> = None;
    // The redirect the last head was, when it was one too many (--max-redirects 0).
    let mut too_many = None;
    // Showing failed (stderr closed): the download goes on, and says so once it is done.
    let mut not_shown = None;
    let mut events = |event: net_http::DownloadEvent<'_>| match event {
        net_http::DownloadEvent::Head(response) => {
            too_many = none_followed(args, response);
            // A retry's head comes with the bar drawn: printed clear of it.
            let shown = match &bar {
                Some(Some(bar)) => bar.suspend(|| show(response)),
                _ => show(response),
            };
            if let Err(e) = shown {
                not_shown.get_or_insert(e);
            }
        }
        net_http::DownloadEvent::Progress(p) => {
            // Made once the length is known, and from there on (see progress::bar).
            let bar = bar.get_or_insert_with(|| download_bar(args.quiet, p.total, p.done));
            if let Some(bar) = bar {
                bar.set_position(p.done);
            }
            if let Some(part) = p.part {
                match &mut watch().part {
                    Some((kept, done, _)) if kept == part => *done = p.done,
                    slot => *slot = Some((part.to_owned(), p.done, bar.clone())),
                }
            }
        }
        _ => {}
    };
    let options = net_http::DownloadOptions::default()
        .with_resume(args.resume)
        .with_fsync(args.fsync);
    let done = match &args.output {
        Some(path) => request.download_with(path, options, &mut events),
        None => request.download_into(Path::new("."), options, &mut events),
    };
    // The 3xx a download refuses is one too many when it was a redirect to follow.
    let done = match (done, too_many) {
        (Err(Error::Status { .. }), Some(too_many)) => Err(too_many),
        (done, _) => done,
    }
    .map_err(failure);
    watch().part = None;
    if let Some(Some(bar)) = &bar {
        bar.finish_and_clear();
    }
    let done = done?;
    if let Some(e) = not_shown {
        return Err(e.into());
    }
    save(session, args)?;
    // Said on a terminal or not, as httpie says it: without `-o` the name is the server's
    // or `NAME-1`, and a CI log would not tell where the file went.
    if args.quiet == 0 {
        crate::exit::say(format_args!(
            "saved {} ({} bytes)",
            done.path.display(),
            done.bytes
        ));
    }
    // A 416 here is a file already whole (its size is the server's): done, as curl -C -.
    let status = if done.status == 416 { 200 } else { done.status };
    Ok(ExitCode::from(status_code(status, true, false)))
}

/// What `--pretty` asks for, as httpie's.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Pretty {
    /// Colours and formatting.
    All,
    /// Colours only.
    Colors,
    /// Formatting (indented JSON) only.
    Format,
    /// Neither: the body as it came.
    None,
}

/// How output looks: ANSI colours (by default on a terminal unless NO_COLOR is set) and
/// formatting (by default on a terminal): indented JSON, and headers and JSON keys sorted by
/// name unless asked not to be, as httpie sorts them.
struct Style {
    on: bool,
    format: bool,
    sort: bool,
}

impl Style {
    fn new(tty: bool, pretty: Option<Pretty>, sort: bool) -> Style {
        let (on, format) = match pretty {
            Some(Pretty::All) => (true, true),
            Some(Pretty::Colors) => (true, false),
            Some(Pretty::Format) => (false, true),
            Some(Pretty::None) => (false, false),
            None => (
                tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
                tty,
            ),
        };
        Style {
            on,
            format,
            sort: sort && format,
        }
    }

    /// `headers` in the order they are shown: sorted by name when sorting, a name's own lines
    /// kept in the order they came (Set-Cookie, Via).
    fn order<'h, N: AsRef<str>, V>(&self, headers: &'h [(N, V)]) -> Vec<&'h (N, V)> {
        let mut shown: Vec<_> = headers.iter().collect();
        if self.sort {
            shown.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        }
        shown
    }

    /// Writes `body` formatted, with a line end, when it is JSON (perhaps after a prefix, see
    /// [`prefixed_json`]); false, and nothing written, when it is not.
    fn write_json(&self, out: &mut impl Write, body: &[u8]) -> anyhow::Result<bool> {
        let Some((prefix, json)) = prefixed_json(body) else {
            return Ok(false);
        };
        out.write_all(prefix)?;
        writeln!(out, "{}", self.json(json)?)?;
        Ok(true)
    }

    /// `json` (valid JSON) pretty-printed, four spaces an indent as httpie and xh print it,
    /// coloured when colours are on, keys sorted when asked. Its tokens are kept as they
    /// are, as xh keeps them: read into values, a number past 64 bits became a float
    /// (`18446744073709551617` showed as `1.8446744073709552e19`) and of two equal keys one
    /// was lost.
    fn json(&self, json: &str) -> anyhow::Result<String> {
        let pretty = reindented(json, "    ", self.sort);
        Ok(if self.on {
            colour_json(&pretty)
        } else {
            pretty
        })
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// What is shown of each response, as its head comes: the same for a download's (on stderr)
/// as for a plain request's.
struct Shows<'a> {
    /// `--print`'s letters.
    what: &'a str,
    /// Where they go is a terminal.
    tty: bool,
    style: &'a Style,
    /// --all: the redirects followed too.
    all: bool,
    /// -S, for the redirects' bodies.
    stream: bool,
}

impl Shows<'_> {
    /// Shows `response` before its body is read: with --all, each redirect followed to it
    /// (the request it led to, its head and body) and the request that got it, as httpie's
    /// --all; then its head. A download showed only the last head, once the file was whole,
    /// and nothing when it failed.
    fn head(&self, out: &mut impl Write, response: &mut Response) -> anyhow::Result<()> {
        let (what, style) = (self.what, self.style);
        // Each request after the first (shown before it was sent).
        let print_sent = |out: &mut _, hop: &Response| match hop.redirected_request() {
            Some(sent) if what.contains('H') || what.contains('B') => {
                print_request(out, sent, what, self.tty, style)
            }
            _ => Ok(()),
        };
        if self.all {
            for hop in response.take_history() {
                print_sent(out, &hop)?;
                if what.contains('h') {
                    print_head(out, &hop.head(), style)?;
                }
                if what.contains('b') {
                    print_body(out, hop, self.tty, self.stream, style)?;
                    writeln!(out)?;
                }
            }
            print_sent(out, response)?;
        }
        if what.contains('h') {
            print_head(out, &response.head(), style)?;
        }
        out.flush()?;
        Ok(())
    }
}

fn print_request(
    out: &mut impl Write,
    preview: &Preview,
    what: &str,
    tty: bool,
    style: &Style,
) -> anyhow::Result<()> {
    if what.contains('H') {
        let target = preview
            .url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("/");
        writeln!(
            out,
            "{} {} HTTP/1.1",
            style.paint("1;36", &preview.method),
            target
        )?;
        for (name, value) in style.order(&preview.headers) {
            writeln!(out, "{}: {value}", style.paint("36", name))?;
        }
        writeln!(out)?;
    }
    if !what.contains('B') {
        return Ok(());
    }
    let body = match (&preview.body, &preview.body_file) {
        (Some(body), _) => std::borrow::Cow::Borrowed(body),
        // A file is read whole to be shown only when small enough to be formatted: `-v` of
        // a disk image read all of it into memory, even to print only the binary note.
        (None, Some(path)) => {
            let cannot = |e| anyhow!("cannot read {}: {e}", path.display());
            let mut file = std::fs::File::open(path).map_err(cannot)?;
            let mut head = Vec::new();
            (&mut file)
                .take(SHOWN_WHOLE)
                .read_to_end(&mut head)
                .map_err(cannot)?;
            if head.len() as u64 == SHOWN_WHOLE {
                print_streamed(out, &head, &mut file, tty).map_err(cannot)?;
                writeln!(out)?;
                return Ok(());
            }
            std::borrow::Cow::Owned(head)
        }
        (None, None) => return Ok(()),
    };
    let may_be_json = preview
        .headers
        .iter()
        .any(|(name, value)| name.eq_ignore_ascii_case("content-type") && may_be_json(value));
    if tty && body.contains(&0) {
        writeln!(out, "{BINARY_NOTE}")?;
    } else if !(may_be_json && style.format && style.write_json(out, &body)?) {
        out.write_all(&body)?;
        writeln!(out)?;
    }
    writeln!(out)?;
    Ok(())
}

/// The most of a body file read at once to be shown (and formatted, when JSON); past it, it
/// is shown as it is read.
const SHOWN_WHOLE: u64 = 16 << 20;

/// A body file too large to be read whole, shown as read: `head`, then the rest of `file`;
/// on a terminal up to the first chunk with a NUL byte, where the binary note goes, as
/// httpie shows it.
fn print_streamed(
    out: &mut impl Write,
    head: &[u8],
    file: &mut std::fs::File,
    tty: bool,
) -> std::io::Result<()> {
    if tty && head.contains(&0) {
        return writeln!(out, "{BINARY_NOTE}");
    }
    out.write_all(head)?;
    let mut chunk = vec![0; 64 << 10];
    loop {
        let n = match file.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            read => read?,
        };
        if n == 0 {
            return writeln!(out);
        }
        if tty && chunk[..n].contains(&0) {
            return writeln!(out, "{BINARY_NOTE}");
        }
        out.write_all(&chunk[..n])?;
    }
}

fn print_head(out: &mut impl Write, head: &Head, style: &Style) -> anyhow::Result<()> {
    let colour = match head.status {
        200..=299 => "1;32",
        300..=399 => "1;33",
        _ => "1;31",
    };
    let status = format!("{} {}", head.status, head.reason);
    writeln!(out, "{} {}", head.version, style.paint(colour, &status))?;
    let headers: Vec<(String, &str)> = head
        .headers
        .iter()
        .map(|(name, value)| (title_case(name), value.as_str()))
        .collect();
    for (name, value) in style.order(&headers) {
        writeln!(out, "{}: {value}", style.paint("36", name))?;
    }
    writeln!(out)?;
    Ok(())
}

/// `content-type` as `Content-Type`: the client keeps header names in lower case, and most
/// servers send them capitalised, as curl and httpie show them (xh does the same). The names
/// the RFCs spell otherwise are shown so.
fn title_case(name: &str) -> String {
    const SPELLED: [&str; 6] = [
        "ETag",
        "WWW-Authenticate",
        "Content-MD5",
        "X-XSS-Protection",
        "X-UA-Compatible",
        "TE",
    ];
    if let Some(spelled) = SPELLED.iter().find(|s| s.eq_ignore_ascii_case(name)) {
        return (*spelled).to_owned();
    }
    let mut out = String::with_capacity(name.len());
    let mut start = true;
    for c in name.chars() {
        out.push(if start { c.to_ascii_uppercase() } else { c });
        start = c == '-';
    }
    out
}

/// Whether a body of this type is formatted when it parses as JSON: httpie formats JSON sent
/// as JavaScript or text (`text/plain` APIs, JSONP-less `application/javascript`).
fn may_be_json(content_type: &str) -> bool {
    let content_type = content_type.to_ascii_lowercase();
    ["json", "javascript", "text/"]
        .iter()
        .any(|kind| content_type.contains(kind))
        && !content_type.contains("event-stream")
}

/// `body` as JSON after what comes before its first `{` or `[`: a byte order mark or an
/// anti-XSSI guard (`)]}',`), which httpie keeps in front of the formatted JSON.
/// Deeper JSON is shown as it came: the formatter recurses once a level, and a 100 KB
/// `[[[...` overflowed the stack (httpie gives up at about 1200 levels).
fn prefixed_json(body: &[u8]) -> Option<(&[u8], &str)> {
    let valid = |json: &[u8]| {
        nesting(json) <= MAX_NESTING
            && serde_json::from_slice::<serde::de::IgnoredAny>(json).is_ok()
    };
    let start = if valid(body) {
        0
    } else {
        let start = body.iter().position(|&b| b == b'{' || b == b'[')?;
        valid(&body[start..]).then_some(start)?
    };
    Some((&body[..start], std::str::from_utf8(&body[start..]).ok()?))
}

/// How deep a formatted JSON text may nest.
const MAX_NESTING: usize = 1000;

/// The deepest nesting of brackets in `json`, those in strings not counted.
fn nesting(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0);
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            in_string = escaped || b != b'"';
            escaped = !escaped && b == b'\\';
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `json` (valid JSON) laid out as serde_json's pretty printer lays it out, `indent` a
/// level, each token as it was; with `sort`, each object's keys in order (equal ones kept).
fn reindented(json: &str, indent: &str, sort: bool) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut rest = json;
    Json::read(&mut rest).write(&mut out, 0, indent, sort);
    out
}

/// `token` as shown: a string's escapes of printable characters written out (`"caf\u00e9"`
/// shows as `"café"`, as httpie and serde_json show it); anything else as it is.
fn shown_string(token: &str) -> std::borrow::Cow<'_, str> {
    if token.starts_with('"')
        && token.contains('\\')
        && let Ok(text) = serde_json::from_str::<String>(token)
        && let Ok(shown) = serde_json::to_string(&text)
    {
        return shown.into();
    }
    token.into()
}

/// A JSON text's values with their tokens as written.
enum Json<'a> {
    /// A string (quotes and escapes included), number, `true`, `false` or `null`.
    Token(&'a str),
    List(Vec<Json<'a>>),
    Object(Vec<(&'a str, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// The value at the start of `rest` (valid JSON), which is left after it.
    fn read(rest: &mut &'a str) -> Json<'a> {
        *rest = rest.trim_start();
        // Past an opening bracket: false when its closing one follows at once.
        let opened = |rest: &mut &'a str, close: char| {
            *rest = rest[1..].trim_start();
            match rest.strip_prefix(close) {
                Some(after) => {
                    *rest = after;
                    false
                }
                None => true,
            }
        };
        // Past an element and what follows it: true when a comma announced another.
        let more = |rest: &mut &'a str| {
            *rest = rest.trim_start();
            let comma = rest.starts_with(',');
            *rest = &rest[1.min(rest.len())..];
            comma
        };
        match rest.chars().next() {
            Some('{') => {
                let mut entries = Vec::new();
                if opened(rest, '}') {
                    while let Json::Token(key) = Json::read(rest) {
                        let after_key = rest.trim_start();
                        *rest = after_key.strip_prefix(':').unwrap_or(after_key);
                        entries.push((key, Json::read(rest)));
                        if !more(rest) {
                            break;
                        }
                    }
                }
                Json::Object(entries)
            }
            Some('[') => {
                let mut items = Vec::new();
                if opened(rest, ']') {
                    loop {
                        items.push(Json::read(rest));
                        if !more(rest) {
                            break;
                        }
                    }
                }
                Json::List(items)
            }
            Some('"') => {
                let mut escaped = false;
                let end = rest[1..]
                    .char_indices()
                    .find(|&(_, c)| {
                        let closing = c == '"' && !escaped;
                        escaped = c == '\\' && !escaped;
                        closing
                    })
                    .map_or(rest.len(), |(at, _)| at + 2);
                let (token, after) = rest.split_at(end);
                *rest = after;
                Json::Token(token)
            }
            _ => {
                let end = rest
                    .find(|c: char| c == ',' || c == ']' || c == '}' || c.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                let (token, after) = rest.split_at(end);
                *rest = after;
                Json::Token(token)
            }
        }
    }

    fn write(&self, out: &mut String, depth: usize, indent: &str, sort: bool) {
        let line = |out: &mut String, depth: usize| {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(indent);
            }
        };
        match self {
            Json::Token(token) => out.push_str(&shown_string(token)),
            Json::List(items) if items.is_empty() => out.push_str("[]"),
            Json::Object(entries) if entries.is_empty() => out.push_str("{}"),
            Json::List(items) => {
                out.push('[');
                for (at, item) in items.iter().enumerate() {
                    if at > 0 {
                        out.push(',');
                    }
                    line(out, depth + 1);
                    item.write(out, depth + 1, indent, sort);
                }
                line(out, depth);
                out.push(']');
            }
            Json::Object(entries) => {
                let mut shown: Vec<&(&str, Json)> = entries.iter().collect();
                if sort {
                    // By the keys as read, escapes undone: raw, `"\u0041"` came before `"B"`
                    // and `"a b"` before `"a"`.
                    shown.sort_by_cached_key(|(key, _)| {
                        serde_json::from_str::<String>(key).unwrap_or_default()
                    });
                }
                out.push('{');
                for (at, (key, value)) in shown.into_iter().enumerate() {
                    if at > 0 {
                        out.push(',');
                    }
                    line(out, depth + 1);
                    out.push_str(&shown_string(key));
                    out.push_str(": ");
                    value.write(out, depth + 1, indent, sort);
                }
                line(out, depth);
                out.push('}');
            }
        }
    }
}

/// Whether text begins as a JSON object or array does, perhaps after a byte order mark or an
/// anti-XSSI guard: its start parses, or runs out before an error (a log line such as
/// `[INFO] up` or `[2026-12-05 10:00] up` is no JSON, and streams).
fn starts_as_json(text: &[u8]) -> bool {
    let text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
    let text = text.strip_prefix(b")]}'").unwrap_or(text);
    let Some(start) = text
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != b',')
    else {
        return false;
    };
    let text = &text[start..];
    if !text.starts_with(b"{") && !text.starts_with(b"[") {
        return false;
    }
    let mut values =
        serde_json::Deserializer::from_slice(text).into_iter::<serde::de::IgnoredAny>();
    match values.next() {
        Some(Ok(_)) => true,
        Some(Err(e)) => e.is_eof(),
        None => false,
    }
}

/// Shown instead of a body with NUL bytes on a terminal, as httpie shows it.
const BINARY_NOTE: &str = "+-----------------------------------------+\n| NOTE: binary data not shown in terminal |\n+-----------------------------------------+";

fn print_body(
    out: &mut impl Write,
    response: Response,
    tty: bool,
    stream: bool,
    style: &Style,
) -> anyhow::Result<()> {
    let url = response.url().to_owned();
    let content_type = response.header("content-type").unwrap_or_default();
    let is_json = content_type.to_ascii_lowercase().contains("json");
    let may_be_json = may_be_json(content_type);
    // A terminal shows text in its charset turned into UTF-8, as httpie shows it; piped, the
    // bytes are the body's own.
    let mut reader: Box<dyn std::io::Read> = if tty {
        Box::new(response.text_reader())
    } else {
        Box::new(response.reader())
    };
    // Pretty JSON needs the whole body (up to this much); anything else is shown as it
    // comes, since an event stream or a log may never end.
    const FORMAT_LIMIT: u64 = 64 << 20;
    let mut body = Vec::new();
    if may_be_json && !is_json && !stream && style.format {
        // Text may be a log that never ends: it is read whole only when it starts as JSON.
        let mut start = vec![0; 1024];
        let n = loop {
            match reader.read(&mut start) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                read => break read.context(url.clone())?,
            }
        };
        body.extend_from_slice(&start[..n]);
    }
    if (is_json || starts_as_json(&body)) && !stream && style.format {
        (&mut reader)
            .take(FORMAT_LIMIT)
            .read_to_end(&mut body)
            .context(url.clone())?;
        // Bytes before the JSON that hold a NUL are binary, shown as any other binary body
        // is on a terminal (they were written raw, a zstd frame's head included).
        let binary = tty && body.contains(&0);
        if (body.len() as u64) < FORMAT_LIMIT && !binary && style.write_json(out, &body)? {
            return Ok(());
        }
    }
    if !tty {
        // Piped: exactly the body, streamed.
        out.write_all(&body)?;
        pass_body(&mut reader, &url, out, "writing the output")?;
        return Ok(());
    }
    let mut chunk = vec![0; 64 * 1024];
    let mut last = b'\n';
    loop {
        if !body.is_empty() {
            if body.contains(&0) {
                writeln!(out, "{BINARY_NOTE}")?;
                return Ok(());
            }
            out.write_all(&body)?;
            out.flush()?;
            last = body[body.len() - 1];
            body.clear();
        }
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context(url),
        }
    }
    if last != b'\n' {
        writeln!(out)?;
    }
    Ok(())
}

/// Colours keys, strings and literals of pretty-printed JSON.
fn colour_json(pretty: &str) -> String {
    let mut out = String::with_capacity(pretty.len() * 2);
    for line in pretty.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        out.push_str(indent);
        if let Some((key, rest)) = trimmed
            .split_once("\": ")
            .filter(|_| trimmed.starts_with('"'))
        {
            out.push_str(&format!("\x1b[34m{key}\"\x1b[0m: {}", colour_value(rest)));
        } else {
            out.push_str(&colour_value(trimmed));
        }
        out.push('\n');
    }
    out.pop();
    out
}

fn colour_value(value: &str) -> String {
    let (core, tail) = match value.strip_suffix(',') {
        Some(core) => (core, ","),
        None => (value, ""),
    };
    let code = if core.starts_with('"') {
        "33"
    } else if core == "true" || core == "false" || core == "null" {
        "35"
    } else if core.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        "32"
    } else {
        return value.to_owned();
    };
    format!("\x1b[{code}m{core}\x1b[0m{tail}")
}

#[cfg(test)]
mod tests {
    use super::{MAX_NESTING, prefixed_json, reindented, starts_as_json};

    #[test]
    fn json_too_deep_to_format_is_left_as_it_came() {
        let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(prefixed_json(deep(MAX_NESTING).as_bytes()).is_some());
        // 100 KB of brackets overflowed the stack; brackets in strings do not count.
        assert!(prefixed_json(deep(50_000).as_bytes()).is_none());
        let quoted = format!("[\"{}\\\"\"]", "[".repeat(500));
        assert!(prefixed_json(quoted.as_bytes()).is_some(), "{quoted}");
    }

    #[test]
    fn json_is_laid_out_as_serde_json_does_with_every_token_kept() {
        for json in [
            r#"{"a":1,"b":[true,null,{"c":"d, e: [f]"}],"g":{},"h":[ ],"i":"q\"uo\\te"}"#,
            "[ ]",
            r#"  { "x" : [ 1 , 2.5 , -3 ] }  "#,
            r#""just a string""#,
        ] {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            let mut expected = Vec::new();
            let indent = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            serde::Serialize::serialize(
                &value,
                &mut serde_json::Serializer::with_formatter(&mut expected, indent),
            )
            .unwrap();
            assert_eq!(
                reindented(json, "    ", false),
                String::from_utf8(expected).unwrap()
            );
        }
        // What a reading into values changed: a number past 64 bits, a second equal key.
        assert_eq!(
            reindented(
                r#"{"n":18446744073709551617,"a":1,"a":2,"e":"\u00e9\n"}"#,
                "  ",
                false
            ),
            "{\n  \"n\": 18446744073709551617,\n  \"a\": 1,\n  \"a\": 2,\n  \"e\": \"é\\n\"\n}"
        );
        // Sorted by the keys as read, equal keys staying in the order they came.
        assert_eq!(
            reindented(r#"{"B":1,"\u0041":2,"a b":3,"a":4}"#, "", true),
            "{\n\"A\": 2,\n\"B\": 1,\n\"a\": 4,\n\"a b\": 3\n}"
        );
        assert_eq!(
            reindented(r#"{"b":[{"z":1,"y":2}],"a":3,"b":4}"#, " ", true),
            "{\n \"a\": 3,\n \"b\": [\n  {\n   \"y\": 2,\n   \"z\": 1\n  }\n ],\n \"b\": 4\n}"
        );
    }

    #[test]
    fn text_is_held_to_be_formatted_only_when_it_starts_as_json() {
        for json in [
            &b"{\"a\": [1, 2"[..],
            b"[\"x\"]\n",
            b"\xef\xbb\xbf{\"c\":4}",
            b")]}',\n{\"b\":3}",
            b"  [\n  {\"id\": 1}",
        ] {
            assert!(starts_as_json(json), "{}", String::from_utf8_lossy(json));
        }
        // Logs that stream as they come.
        for log in [
            &b"[INFO] server up\n"[..],
            b"[2026-12-05 10:00:00] up\n",
            b"{not json}",
            b"hello [1]",
            b"",
        ] {
            assert!(!starts_as_json(log), "{}", String::from_utf8_lossy(log));
        }
    }
}
