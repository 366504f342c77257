//! `netkit ssh` and `netkit sftp` as processes against the real sshd.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use netkit_tests::ssh::{WAIT_FOR_43X132, dest, key, port, remote_dir};
use netkit_tests::{UNRESOLVABLE_HOST, env, free_port, netkit_bin, work_dir};
use rand::RngCore as _;

fn netkit(args: &[&str], stdin: &[u8], vars: &[(&str, String)]) -> Output {
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("NETKIT_SSH_PASSWORD")
            .env_remove("NETKIT_SSH_PASSPHRASE")
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output();
    feeder.join().unwrap();
    out
}

fn common() -> Vec<String> {
    vec![
        "--known-hosts".into(),
        env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        "-i".into(),
        key("id_ed25519").display().to_string(),
    ]
}

/// `netkit ssh` to the test sshd: `flags` before the destination, `words` after it.
fn ssh_args(flags: &[&str], words: &[&str]) -> Vec<String> {
    let mut args = vec!["ssh".to_owned(), "-p".into(), port().to_string()];
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    args.extend(common());
    args.push(dest());
    args.extend(words.iter().map(|w| (*w).to_owned()));
    args
}

fn ssh_with(flags: &[&str], words: &[&str], stdin: &[u8]) -> Output {
    let args = ssh_args(flags, words);
    netkit(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        stdin,
        &[],
    )
}

fn ssh(extra: &[&str], stdin: &[u8]) -> Output {
    ssh_with(&[], extra, stdin)
}

/// `netkit ssh ...` (as [`ssh_args`]) as one shell command line.
/// An empty home of a test's own, with its `~/.ssh`.
fn fresh_home(name: &str) -> std::path::PathBuf {
    let home = work_dir().join(name);
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    home
}

fn netkit_line(flags: &[&str], words: &[&str]) -> String {
    let mut line = vec![netkit_bin().display().to_string()];
    line.extend(ssh_args(flags, words));
    line.join(" ")
}

/// The shell command `line` running on a terminal of its own, from `script` (util-linux;
/// bsdutils on Debian and Ubuntu): keys go in, the screen is collected as it comes.
struct Terminal {
    child: netkit_tests::Spawned,
    keys: Option<std::process::ChildStdin>,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    deadline: std::time::Instant,
}

impl Terminal {
    /// Starts `line`; every wait below ends within 30 s of this.
    fn start(line: &str) -> Terminal {
        Terminal::start_paced(line, None)
    }

    /// Starts `line` on a terminal that takes 4 KB of output a millisecond at most, as one busy
    /// drawing it; the screen keeps the last 64 KiB or more of a flood.
    fn start_reading_slowly(line: &str) -> Terminal {
        Terminal::start_paced(line, Some(Duration::from_millis(1)))
    }

    fn start_paced(line: &str, pause: Option<Duration>) -> Terminal {
        let mut child = netkit_tests::Spawned::start(
            Command::new("script")
                .args(["-q", "-e", "-c", line, "/dev/null"])
                .env_remove("SSH_AUTH_SOCK")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let mut stdout = child.stdout.take().unwrap();
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reader = {
            let screen = std::sync::Arc::clone(&screen);
            std::thread::spawn(move || {
                let mut buf = [0; 4096];
                while let Ok(n @ 1..) = std::io::Read::read(&mut stdout, &mut buf) {
                    let mut screen = screen.lock().unwrap();
                    screen.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if let Some(pause) = pause {
                        if screen.len() > 128 * 1024 {
                            *screen = tail(&screen, 64 * 1024).to_owned();
                        }
                        std::thread::sleep(pause);
                    }
                }
            })
        };
        Terminal {
            keys: child.stdin.take(),
            child,
            screen,
            reader: Some(reader),
            deadline: std::time::Instant::now() + Duration::from_secs(30),
        }
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.keys.as_mut().unwrap().write_all(keys).unwrap();
    }

    fn wait_for(&self, text: &str) {
        self.wait_for_nth(text, 1);
    }

    /// Waits until `text` is on the screen `n` times (a prompt asked again).
    fn wait_for_nth(&self, text: &str, n: usize) {
        while self.screen.lock().unwrap().matches(text).count() < n {
            assert!(
                std::time::Instant::now() < self.deadline,
                "{text:?} not {n} times on the screen: {}",
                self.screen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the program to end, with the keyboard still there (its EOF would end the
    /// terminal first); returns the exit code and the whole screen.
    fn finish(mut self) -> (Option<i32>, String) {
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < self.deadline,
                "the program did not end: {}",
                self.screen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(self.keys.take());
        let status = self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
        let screen = self.screen.lock().unwrap().clone();
        (status.code(), screen)
    }
}

/// The last `bytes` of `text`, or a few less to start on a character.
fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[test]
fn dash_s_starts_a_subsystem() {
    // SSH_FXP_INIT, version 3: the sftp subsystem answers SSH_FXP_VERSION (type 2). Stdin
    // stays open until it has: sftp-server drops its answer when EOF comes first.
    let args = ssh_args(&["-s"], &["sftp"]);
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"\0\0\0\x05\x01\0\0\0\x03").unwrap();
    let mut answer = [0u8; 9];
    let mut output = child.stdout.take().unwrap();
    std::io::Read::read_exact(&mut output, &mut answer).unwrap();
    assert_eq!(answer[4..], [2, 0, 0, 0, 3], "{answer:?}");
    drop(input);
    drop(output);
    assert_eq!(child.wait_with_output().status.code(), Some(0));
    // A subsystem the server does not have, and none named.
    let out = ssh_with(&["-s"], &["no-such-subsystem"], b"");
    assert_eq!(out.status.code(), Some(255));
    let out = ssh_with(&["-s"], &[], b"");
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-s needs the subsystem's name") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn exit_status_streams_and_stdin_pass_through() {
    let out = ssh(&["--", "cat; echo to-err >&2; exit 42"], b"piped stdin\n");
    assert_eq!(
        out.status.code(),
        Some(42),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"piped stdin\n");
    assert_eq!(out.stderr, b"to-err\n");
    let out = ssh(&["true"], b"");
    assert_eq!(out.status.code(), Some(0));
    let out = ssh(&["kill -KILL $$"], b"");
    assert_eq!(
        out.status.code(),
        Some(255),
        "a signal exits 255 as OpenSSH"
    );
}

#[test]
fn without_a_command_the_login_shell_runs_what_stdin_holds() {
    let out = ssh(&[], b"echo shell:$0\necho to-err >&2\nexit 5\n");
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The test user's login shell is /bin/sh, which sshd starts as `-sh`.
    assert_eq!(out.stdout, b"shell:-sh\n");
    assert_eq!(out.stderr, b"to-err\n");
    let out = ssh(&[], b"");
    assert_eq!(out.status.code(), Some(0), "EOF at once ends the shell");
}

#[test]
fn on_a_terminal_without_a_command_an_interactive_shell_gets_a_remote_terminal_that_follows_resizes()
 {
    // Beside netkit, a background job resizes the terminal once told to (by a file), as a
    // window being resized does: the kernel then sends SIGWINCH to netkit.
    let go = work_dir().join("resize-now");
    let _ = std::fs::remove_file(&go);
    let mut terminal = Terminal::start(&format!(
        "stty cols 100 rows 30; \
         (while [ ! -e {go} ]; do sleep 0.05; done; stty cols 132 rows 43 </dev/tty; echo resized-here) & \
         exec {}",
        netkit_line(&[], &[]),
        go = go.display(),
    ));
    terminal.type_keys(b"tty; stty size\r");
    terminal.wait_for("30 100");
    std::fs::write(&go, b"").unwrap();
    terminal.wait_for("resized-here");
    // The window-change request and the keys take separate ways: the shell waits for the size.
    terminal.type_keys(WAIT_FOR_43X132.replace('\n', "\r").as_bytes());
    terminal.type_keys(b"stty size; echo pty-$((6*7)); exit 3\r");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(3), "{screen}");
    assert!(screen.contains("/dev/pts/"), "no remote terminal: {screen}");
    assert!(screen.contains("pty-42"), "{screen}");
    assert!(
        screen.contains("43 132"),
        "the remote terminal was not resized: {screen}"
    );
}

#[test]
fn a_login_goes_on_without_a_terminal_the_server_refuses_but_dash_t_does_not() {
    // The key is authorized with `no-pty`, as a restricted account's: ssh says "PTY
    // allocation request failed" and runs the shell without a terminal.
    let no_pty = key("id_no_pty").display().to_string();
    let mut terminal = Terminal::start(&netkit_line(&["-i", &no_pty], &[]));
    terminal.wait_for("going on without one");
    // Our terminal is out of raw mode again, as with ssh: Enter ends the line.
    terminal.type_keys(b"echo no-tty-$((6*7)); tty; exit 3\n");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(3), "{screen}");
    assert!(screen.contains("no-tty-42"), "{screen}");
    assert!(screen.contains("not a tty"), "{screen}");
    // Asked for with -t, a terminal is a must, as in ssh (255).
    let out = ssh_with(&["-i", &no_pty, "-tt"], &["echo", "ran"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("refused a remote terminal"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ran"));
}

#[test]
fn tilde_dot_after_a_newline_ends_a_terminal_session_as_in_ssh() {
    // The way out of a session that no longer answers: the remote command would run 60 s.
    let mut terminal = Terminal::start(&netkit_line(&["-t"], &["'echo ready; sleep 60'"]));
    terminal.wait_for("ready");
    // ~? lists the escapes; a ~ inside a line is just a key; ~. ends it all.
    terminal.type_keys(b"\r~?");
    terminal.wait_for("terminate connection");
    terminal.type_keys(b"a~b\r~.");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(255), "{screen}");
    assert!(
        screen.contains("Connection to 127.0.0.1 closed."),
        "{screen}"
    );
}

#[test]
fn tilde_v_steps_the_log_level_and_tilde_b_and_tilde_r_say_why_not_as_in_ssh() {
    // ssh's ~V and ~v step its LogLevel ("~v [LogLevel VERBOSE]"); ~B and ~R, which libssh2
    // cannot do, are each said in one line. All three went to the remote as keys.
    let mut terminal = Terminal::start(&netkit_line(&["-t"], &["'echo ready; sleep 60'"]));
    terminal.wait_for("ready");
    for (keys, said) in [
        (&b"\r~v"[..], "~v [LogLevel VERBOSE]"),
        (b"\r~v", "~v [LogLevel DEBUG1]"),
        (b"\r~v", "~v [LogLevel DEBUG1]"),
        (b"\r~V", "~V [LogLevel VERBOSE]"),
        (b"\r~B", "~B [BREAK not supported: libssh2 cannot send one]"),
        (
            b"\r~R",
            "~R [rekey not supported: libssh2 cannot start one]",
        ),
    ] {
        let seen = terminal.screen.lock().unwrap().matches(said).count();
        terminal.type_keys(keys);
        terminal.wait_for_nth(said, seen + 1);
    }
    // ~? lists what is supported, and only that; ~C only with EnableEscapeCommandline, off
    // by default as in ssh 9.2, which says so (netkit opened its command line).
    terminal.type_keys(b"\r~?");
    terminal.wait_for("(Note that escapes");
    terminal.type_keys(b"\r~C");
    terminal.wait_for("commandline disabled");
    terminal.type_keys(b"\r~.");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(255), "{screen}");
    let help = screen
        .split("Supported escape sequences:")
        .nth(1)
        .and_then(|rest| rest.split("(Note").next())
        .unwrap_or_default();
    let listed: Vec<&str> = help
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(!screen.contains("ssh> "), "{screen}");
    assert_eq!(
        listed,
        [
            "~.   - terminate connection",
            "~V/v - decrease/increase verbosity (LogLevel)",
            "~^Z  - suspend netkit",
            "~#   - list forwarded connections",
            "~?   - this message",
            "~~   - send the escape character by typing it twice",
        ],
        "{screen}"
    );
}

#[test]
fn tilde_c_adds_and_cancels_a_forward_on_a_running_session_and_tilde_hash_lists_it_as_in_ssh() {
    // ssh's command line: `-L` listens at once on the session that runs, whose bytes go
    // through (here to the test sshd, whose banner comes back); `~#` lists the connection;
    // `-KL` closes the listener; bad lines get ssh's one-line answers. ~? lists it.
    let mut terminal = Terminal::start(&netkit_line(
        &["-t", "-o", "EnableEscapeCommandline=yes"],
        &["'echo ready; sleep 60'"],
    ));
    terminal.wait_for("ready");
    let listen = free_port();
    let mut prompts = 0;
    let mut command = |terminal: &mut Terminal, line: &str, said: &str| {
        let seen = terminal.screen.lock().unwrap().matches(said).count();
        terminal.type_keys(b"\r~C");
        prompts += 1;
        terminal.wait_for_nth("ssh> ", prompts);
        terminal.type_keys(format!("{line}\r").as_bytes());
        terminal.wait_for_nth(said, seen + 1);
    };
    terminal.type_keys(b"\r~?");
    terminal.wait_for("~C   - open a command line");
    command(&mut terminal, "?", "-KD[bind_address:]port");
    command(&mut terminal, "x -L 1:a:1", "Invalid command.");
    command(&mut terminal, "-L 1", "Bad local forwarding specification.");
    command(
        &mut terminal,
        "-KL 1:2:3",
        "Bad forwarding close specification.",
    );
    let forward = format!("-L {listen}:127.0.0.1:{}", port());
    command(&mut terminal, &forward, "Forwarding port.");
    let mut through = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
    through
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut banner = [0; 8];
    std::io::Read::read_exact(&mut through, &mut banner).unwrap();
    assert_eq!(&banner, b"SSH-2.0-");
    terminal.type_keys(b"\r~#");
    terminal.wait_for(&format!(
        "direct-tcpip: listening port {listen} for 127.0.0.1 port {}, connect from 127.0.0.1",
        port()
    ));
    drop(through);
    command(
        &mut terminal,
        &format!("-KL {listen}"),
        "Canceled forwarding.",
    );
    command(
        &mut terminal,
        &format!("-KL {listen}"),
        "Unknown port forwarding.",
    );
    let refused = std::net::TcpStream::connect(("127.0.0.1", listen));
    assert!(refused.is_err(), "still listening after -KL");
    terminal.type_keys(b"\r~.");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(255), "{screen}");
    assert!(
        screen.contains("The following connections are open:"),
        "{screen}"
    );
    // The line is echoed as typed: the terminal left raw mode for it, as ssh leaves it.
    assert!(screen.contains(&format!("ssh> {forward}")), "{screen}");
}

#[test]
fn ctrl_c_stops_a_remote_command_whose_output_outruns_the_terminal() {
    // The keys were sent only once the output paused: a `yes` ran on after Ctrl-C.
    let mut terminal =
        Terminal::start_reading_slowly(&netkit_line(&["-t"], &["'echo ready; sleep 1; exec yes'"]));
    terminal.wait_for("ready");
    std::thread::sleep(Duration::from_secs(3));
    terminal.type_keys(b"\x03");
    let (code, screen) = terminal.finish();
    let end = tail(&screen, 200);
    assert_eq!(code, Some(255), "{end}");
    assert!(end.contains("killed by signal INT"), "{end}");
}

#[test]
fn dash_e_sets_the_escape_character_as_in_ssh() {
    // With -e '^]', a typed `~.` is just keys for the remote side, and Ctrl-] then `.` ends it.
    let mut terminal = Terminal::start(&netkit_line(
        &["-t", "-e", "'^]'"],
        &["'echo ready; read line; echo got-$line; sleep 60'"],
    ));
    terminal.wait_for("ready");
    terminal.type_keys(b"~.\r");
    terminal.wait_for("got-~.");
    terminal.type_keys(b"\x1d.");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(255), "{screen}");
    // -e none: no escapes at all.
    let mut terminal = Terminal::start(&netkit_line(
        &["-t", "-e", "none"],
        &["'echo ready; read line; echo got-$line'"],
    ));
    terminal.wait_for("ready");
    terminal.type_keys(b"~.\r");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("got-~."), "{screen}");
}

#[test]
fn escape_char_from_the_config_or_dash_o_is_used_and_dash_e_wins() {
    // EscapeChar was warned of and ignored: with `EscapeChar none`, a typed `~.` still cut
    // the connection.
    let dir = work_dir().join("ssh-cli-escape-char");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(&config, "Host *\n  EscapeChar none\n").unwrap();
    let config = config.to_str().unwrap();
    let read_line = "'echo ready; read line; echo got-$line'";
    let mut terminal = Terminal::start(&netkit_line(&["-t", "-F", config], &[read_line]));
    terminal.wait_for("ready");
    terminal.type_keys(b"~.\r");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("got-~."), "{screen}");
    // -o sets it too (its ^X form as well), and is not warned of.
    let mut terminal =
        Terminal::start(&netkit_line(&["-t", "-o", "EscapeChar='^]'"], &[read_line]));
    terminal.wait_for("ready");
    terminal.type_keys(b"~.\r");
    terminal.wait_for("got-~.");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(!screen.contains("warning"), "{screen}");
    // -e wins over both.
    let mut terminal = Terminal::start(&netkit_line(
        &["-t", "-F", config, "-o", "EscapeChar=none", "-e", "'~'"],
        &["'echo ready; sleep 60'"],
    ));
    terminal.wait_for("ready");
    terminal.type_keys(b"\r~.");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(255), "{screen}");
    // As ssh -G shows it.
    for (flags, shown) in [
        (&["-F", config][..], "none"),
        (&["-F", "none"], "~"),
        (&["-F", config, "-e", "^]"], "^]"),
        (&["-F", "none", "-o", "EscapeChar=%"], "%"),
    ] {
        let mut args = vec!["ssh", "-G"];
        args.extend(flags);
        args.push("box");
        let out = netkit(&args, b"", &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("\nescapechar {shown}\n")),
            "{flags:?}: {text}"
        );
    }
    let out = netkit(
        &["ssh", "-F", "none", "-o", "EscapeChar=ab", "-G", "box"],
        b"",
        &[],
    );
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn enable_escape_commandline_is_read_and_shown_by_dash_g_as_ssh_does() {
    // OpenSSH 9.2's option, default no: netkit had no such option and ~C always on.
    let dir = work_dir().join("ssh-cli-escape-commandline");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(&config, "Host on\n  EnableEscapeCommandline yes\n").unwrap();
    let config = config.to_str().unwrap();
    let line = |out: &Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("enableescapecommandline "))
            .map(str::to_owned)
    };
    for (flags, host, shown) in [
        (&[][..], "box", "no"),
        (&["-o", "EnableEscapeCommandline=yes"], "box", "yes"),
        (&["-o", "EnableEscapeCommandline=true"], "box", "yes"),
        (&[], "on", "yes"),
        (&["-o", "EnableEscapeCommandline=no"], "on", "no"),
    ] {
        let mut args = vec!["-F", config, "-G"];
        args.extend(flags);
        args.push(host);
        let ours = netkit(&[&["ssh"][..], &args].concat(), b"", &[]);
        let theirs = Command::new("ssh")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&ours.stderr);
        assert!(ours.status.success(), "{args:?}: {err}");
        assert!(!err.contains("ignoring"), "{args:?}: {err}");
        let expected = format!("enableescapecommandline {shown}");
        assert_eq!(
            line(&theirs).as_deref(),
            Some(expected.as_str()),
            "ssh {args:?}"
        );
        assert_eq!(line(&ours), line(&theirs), "{args:?}");
    }
    let args = [
        "-F",
        "none",
        "-o",
        "EnableEscapeCommandline=maybe",
        "-G",
        "box",
    ];
    let ours = netkit(&[&["ssh"][..], &args[..]].concat(), b"", &[]);
    let err = String::from_utf8_lossy(&ours.stderr);
    assert_eq!(ours.status.code(), Some(255), "{err}");
    assert!(err.contains("EnableEscapeCommandline maybe"), "{err}");
}

#[test]
fn tilde_ctrl_z_suspends_netkit_and_fg_resumes_the_session_as_in_ssh() {
    // ~^Z went to the remote side as a Ctrl-Z, stopping the remote program instead.
    let mut terminal = Terminal::start("bash --norc --noprofile -i");
    // Waited for by what the command prints, not by its words that the shell echoes.
    let line = netkit_line(
        &["-t"],
        &["'echo up-$((6 * 7)); read line; echo got-$line'"],
    );
    terminal.type_keys(format!("PS1=prompt-; {line}\r").as_bytes());
    terminal.wait_for("up-42");
    terminal.type_keys(b"~\x1a");
    terminal.wait_for("[suspend netkit]");
    terminal.wait_for("Stopped");
    // The local shell has the terminal back, cooked: it runs a command, then resumes netkit.
    terminal.type_keys(b"echo local-$((6 * 8))\r");
    terminal.wait_for("local-48");
    terminal.type_keys(b"fg\r");
    std::thread::sleep(Duration::from_millis(500));
    terminal.type_keys(b"remote\r");
    terminal.wait_for("got-remote");
    terminal.type_keys(b"echo status-$?; exit\r");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("status-0"), "{screen}");
}

#[test]
fn a_signal_that_kills_the_remote_command_is_told_on_a_terminal_put_back() {
    // The message came while the terminal was still raw: its bare \n left the next prompt
    // mid-line.
    let (code, screen) = Terminal::start(&netkit_line(&["-t"], &["'kill -9 $$'"])).finish();
    assert_eq!(code, Some(255), "{screen}");
    assert!(
        screen.contains("remote command killed by signal KILL\r\n"),
        "{screen:?}"
    );
}

#[test]
fn dash_t_runs_the_command_on_a_remote_terminal_when_there_is_a_local_one() {
    let (code, screen) = Terminal::start(&netkit_line(&["-t"], &["'tty; exit 4'"])).finish();
    assert_eq!(code, Some(4), "{screen}");
    assert!(screen.contains("/dev/pts/"), "no remote terminal: {screen}");

    // Without a local terminal there is none to pass on: a warning, and the command runs
    // without one (as ssh -t). It is a `netkit: warning:` line (it was a bare `netkit:` one
    // that -q left), as ssh -q hushes its notice.
    let out = ssh_with(&["-t"], &["tty"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(out.stdout, b"not a tty\n");
    assert_eq!(
        err,
        "netkit: warning: no remote terminal: stdin is not a terminal (-tt forces one)\n"
    );
    let out = ssh_with(&["-t", "-q"], &["tty"], b"");
    assert_eq!((out.stdout, out.stderr), (b"not a tty\n".to_vec(), vec![]));

    // -tt forces one, -T refuses one; the last of them wins, as in ssh.
    for (flags, pts) in [
        (&["-tt"][..], true),
        (&["-T", "-tt"], true),
        (&["-tt", "-T"], false),
    ] {
        let out = ssh_with(flags, &["tty"], b"");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.contains("/dev/pts/"), pts, "{flags:?}: {text}");
        assert_eq!(
            out.status.code(),
            Some(if pts { 0 } else { 1 }),
            "{flags:?}"
        );
    }
    // A login shell on a terminal, but -T: no remote terminal.
    let mut terminal = Terminal::start(&netkit_line(&["-T"], &[]));
    terminal.type_keys(b"tty; exit 3\n");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(3), "{screen}");
    assert!(screen.contains("not a tty"), "{screen}");
}

#[test]
fn options_after_the_destination_are_read_as_ssh_reads_them() {
    // -n: stdin is not read (ssh -n), so a loop reading its own stdin keeps it.
    let out = ssh(&["-n", "cat"], b"kept for the loop\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Options after DEST, up to the command's first word; the command keeps its own. A
    // second -p is passed over: the first counts, as in ssh.
    let out = ssh(&["-q", "-p", "1", "cat", "-n"], b"line\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1\tline");
    // After `--`, everything is the command's, a later `--` included (`rm -- -x`).
    // The remote shell runs `sh -c -n` and refuses it with 2 (dash, bash); a `-n` taken as
    // netkit's own would leave no command, a shell on an empty stdin, and 0.
    let out = ssh(&["--", "-n"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("-c") && err.contains("requires an argument"),
        "{err}"
    );
    let out = ssh(&["--", "echo", "a", "--", "b", "--"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a -- b --\n");
    let out = ssh(&["echo", "--"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "--\n");
    // A value joined to its letter, as getopt takes it (`-p2222`, `-oKey=value`, `-Cp2222`):
    // these were taken for the command.
    let (key, p) = (key("id_ed25519").display().to_string(), port().to_string());
    for flags in [
        vec![format!("-p{p}"), format!("-i{key}")],
        vec![format!("-oPort={p}"), "-oStrictHostKeyChecking yes".into()],
        vec![format!("-Cqp{p}"), format!("-oIdentityFile={key}")],
    ] {
        let mut args = vec!["ssh".to_owned()];
        args.extend(flags.iter().cloned());
        args.extend(common());
        args.push(dest());
        args.extend(["echo".into(), format!("-p{p}")]);
        let out = netkit(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            b"",
            &[],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("-p{p}\n"),
            "{flags:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // An option netkit does not know is an error, before DEST or after it.
    for words in [&["-Z", "true"][..], &["-q", "-Z"]] {
        let out = ssh(words, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{words:?}: {err}");
        assert!(err.contains("'-Z'") && err.lines().count() == 1, "{err}");
    }
    let out = netkit(&["ssh", "-Z", "host"], b"", &[]);
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn the_first_of_a_flag_and_the_destination_names_the_port_and_user_as_in_ssh() {
    let user = env("NETKIT_TEST_SSH_USER");
    let p = port().to_string();
    let run = |words: &[&str]| {
        let mut args = vec!["ssh".to_owned()];
        args.extend(common());
        args.extend(words.iter().map(|w| (*w).to_owned()));
        netkit(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            b"",
            &[],
        )
    };
    let nobody_at = "nobody@127.0.0.1";
    let user_at = format!("{user}@127.0.0.1");
    let on_port_1 = format!("{user}@127.0.0.1:1");
    let on_our_port = format!("{user}@127.0.0.1:{p}");
    for words in [
        // -l and -p before DEST win over what it names.
        &["-p", &p, "-l", &user, nobody_at, "whoami"][..],
        &["-p", &p, &on_port_1, "whoami"],
        // After it, DEST's word was first.
        &[&on_our_port, "-l", "nobody", "-p", "1", "whoami"],
        &["-p", &p, &user_at, "-l", "nobody", "whoami"],
    ] {
        let out = run(words);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            user,
            "{words:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn dash_o_connect_timeout_bounds_the_jump_hosts_key_exchange_too() {
    // The jump host's key exchange over a slow link (0.6 s round trip) took its own bounds
    // (10 s), whatever -o ConnectTimeout said: it counts for every hop, as the target's.
    let slow = netkit_tests::ssh::delayed_link(Duration::from_millis(300));
    let jump = format!("{}@127.0.0.1:{slow}", env("NETKIT_TEST_SSH_USER"));
    let started = std::time::Instant::now();
    let out = ssh_with(&["-J", &jump, "-o", "ConnectTimeout=1"], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{slow}"))
            && err.contains("did not finish within 1 s (ConnectTimeout)"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{err}");
}

#[test]
fn dash_4_and_6_are_the_targets_not_the_jump_hosts_as_in_ssh() {
    // ssh passes neither to the `ssh -W` it runs for a jump host (only -l, -p, -J, -F, -v):
    // `-6 -J IPV4-BASTION` failed with "127.0.0.1: no IPv6 address" for the bastion. The
    // target, reached through the bastion, is its to resolve.
    let jump = jump_dest();
    let out = ssh_with(&["-6", "-J", &jump], &["echo jumped"], b"");
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"jumped\n"[..]),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = port().to_string();
    let mut args = vec!["sftp", "ls", "-6", "-J", &jump, "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let listing = format!("{}:/", dest());
    args.push(&listing);
    let out = netkit(&args, b"", &[]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("etc"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without a jump host, -6 is still the target's.
    let out = ssh_with(&["-6"], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("no IPv6 address"), "{err}");
}

#[test]
fn dash_j_goes_through_jump_hosts_for_ssh_and_sftp() {
    let jump = format!("{},{}", jump_dest(), jump_dest());
    let out = ssh_with(&["-J", &jump], &["echo jumped"], b"");
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"jumped\n"[..]),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = port().to_string();
    let mut args = vec!["sftp", "ls", "-J", &jump, "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let listing = format!("{}:/", dest());
    args.push(&listing);
    let out = netkit(&args, b"", &[]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("etc"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ssh_with(&["-J", UNRESOLVABLE_HOST], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains(UNRESOLVABLE_HOST) && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn a_variable_that_is_not_utf8_in_the_environment_is_no_crash() {
    // bash exports PWD as the bytes of a Latin-1 directory name: every ssh and sftp panicked
    // (exit 101), as ssh does not.
    use std::os::unix::ffi::OsStrExt as _;
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let out = Command::new(netkit_tests::netkit_bin())
        .args(["ssh", "-G", "-o", "SendEnv=NETKIT_ODD", "example.org"])
        .env("NETKIT_ODD", odd)
        .env("PWD", odd)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("NETKIT_ODD is not UTF-8"), "{err}");
}

#[test]
fn connect_timeout_none_zero_and_signed_values_are_read_as_ssh_reads_them() {
    // ssh reads `none` as no value (a later line sets it), 0 as no ConnectTimeout and each
    // number as strtol reads it (`+5`, `-0`); netkit refused `none` and `+5`, and made 0 a
    // 1 s bound that a link with a 0.6 s round trip could not make. -G showed netkit's 10 s
    // default bound where ssh -G shows `none` (unset) or `0`.
    let dir = work_dir().join("ssh-cli-connect-timeout");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(&config, "Host *\n  ConnectTimeout 3\n").unwrap();
    let config = config.to_str().unwrap();
    let shown = |out: &Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("connecttimeout "))
            .map(str::to_owned)
    };
    for (file, value) in [
        ("none", "none"),
        ("none", "0"),
        ("none", "+5"),
        ("none", "1m+5"),
        ("none", "-0"),
        ("none", "+1m"),
        (config, "none"),
        (config, "0"),
        (config, "7"),
    ] {
        let args = [
            "-F",
            file,
            "-o",
            &format!("ConnectTimeout={value}"),
            "-G",
            "box",
        ];
        let ours = netkit(&[&["ssh"][..], &args].concat(), b"", &[]);
        let theirs = Command::new("ssh")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(theirs.status.success(), "ssh {args:?}");
        let err = String::from_utf8_lossy(&ours.stderr);
        assert!(ours.status.success(), "{value}: {err}");
        assert!(!err.contains("ignoring"), "{value}: {err}");
        assert_eq!(
            shown(&ours),
            shown(&theirs),
            "-F {file} -o ConnectTimeout={value}"
        );
    }
    // What ssh refuses, netkit refuses, naming the option.
    for value in ["NONE", "-1", "+-1", "m", "0x10"] {
        let args = [
            "-F",
            "none",
            "-o",
            &format!("ConnectTimeout={value}"),
            "-G",
            "box",
        ];
        let theirs = Command::new("ssh")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(theirs.status.code(), Some(255), "ssh {args:?}");
        let ours = netkit(&[&["ssh"][..], &args].concat(), b"", &[]);
        let err = String::from_utf8_lossy(&ours.stderr);
        assert_eq!(ours.status.code(), Some(255), "{value}: {err}");
        assert!(
            err.contains(&format!("ConnectTimeout {value}: invalid time value"))
                && err.lines().count() == 1,
            "{err}"
        );
    }
    // 0 and none bound nothing of their own: the key exchange over a 0.6 s round trip gets
    // through, as ssh's.
    for value in ["0", "none"] {
        let slow = netkit_tests::ssh::delayed_link(Duration::from_millis(300));
        let known = dir.join(format!("known-{value}"));
        let _ = std::fs::remove_file(&known);
        let user = env("NETKIT_TEST_SSH_USER");
        let key = key("id_ed25519");
        let option = format!("ConnectTimeout={value}");
        let out = netkit(
            &[
                "ssh",
                "-F",
                "none",
                "--accept-new",
                "--known-hosts",
                known.to_str().unwrap(),
                "-i",
                key.to_str().unwrap(),
                "-o",
                &option,
                "-p",
                &slow.to_string(),
                &format!("{user}@127.0.0.1"),
                "echo through",
            ],
            b"",
            &[],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{value}: {err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "through\n");
    }
}

#[test]
fn dash_g_writes_each_variable_sent_and_a_command_as_written_as_ssh_does() {
    // ssh -G writes a `sendenv` line for each; netkit wrote them on one line, which a reader
    // of `sendenv` lines (as ssh writes them) took for one name.
    let vars = [
        ("NETKIT_G_ONE", "1".to_owned()),
        ("NETKIT_G_TWO", "2".to_owned()),
    ];
    let out = netkit(
        &[
            "ssh",
            "-G",
            "-F",
            "none",
            "-o",
            "SendEnv NETKIT_G_ONE NETKIT_G_TWO",
            "-o",
            "RemoteCommand=echo  \"a   b\" 'c'",
            "example.org",
        ],
        b"",
        &vars,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "sendenv NETKIT_G_ONE",
        "sendenv NETKIT_G_TWO",
        "remotecommand echo  \"a   b\" 'c'",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
}

#[test]
fn dash_g_prints_set_env_send_env_request_tty_and_remote_command_as_ssh_g_does() {
    // netkit -G printed the names of the variables sent, no SetEnv value, no SendEnv
    // pattern, no requesttty, and RemoteCommand's tokens unexpanded.
    let dir = work_dir().join("ssh-cli-dash-g-env");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        "Host box\n  SetEnv A=1 \"B=two words\"\n  SendEnv NETKIT_G_* LC_* -LC_*\n  \
         SendEnv NETKIT_UNSET\n  RequestTTY yes\n  User alice\n  \
         RemoteCommand echo %r@%h:%p %n %%\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let keys = ["setenv", "sendenv", "requesttty", "remotecommand"];
    let shown = |out: Output| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .filter(|l| keys.contains(&l.split(' ').next().unwrap_or_default()))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for flags in [&[][..], &["-T"], &["-tt"], &["-N"]] {
        let mut args = vec!["-G", "-F", config];
        args.extend(flags);
        args.push("box");
        let vars = [("NETKIT_G_ONE", "secret".to_owned())];
        let mut ours = shown(netkit(&[&["ssh"][..], &args].concat(), b"", &vars));
        let mut theirs = shown(
            Command::new("ssh")
                .args(&args)
                .envs(vars.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        );
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "with {flags:?}");
        assert!(
            theirs.contains(&"setenv B=two words".to_owned()),
            "{theirs:?}"
        );
    }
}

#[test]
fn a_missing_identity_file_of_dash_o_is_warned_of_once() {
    // Each -o line is first checked alone, which warned of the missing key too: twice.
    let out = netkit(
        &[
            "ssh",
            "-G",
            "-F",
            "none",
            "-o",
            "IdentityFile=/nonexistent/netkit-key",
            "example.org",
        ],
        b"",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("no such identity: /nonexistent/netkit-key")
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn a_config_line_no_openssh_option_names_is_warned_of() {
    // ssh refuses such a file; netkit dropped the line without a word, and a typo in a
    // security option (`IdentitesOnly yes`) went unseen.
    let dir = work_dir().join("ssh-cli-config-typo");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        "IgnoreUnknown AddKeysTo*\nHost box\n  IdentitesOnly yes\n  ChannelTimeout session=5m\n  \
         AddKeysToMacKeychain yes\n  CanonicalizeFallbackLocal yes\nHost other\n  Bogus 1\n",
    )
    .unwrap();
    let out = netkit(
        &["ssh", "-F", config.to_str().unwrap(), "-G", "box"],
        b"",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ignoring IdentitesOnly"), "{err}");
    assert_eq!(err.lines().count(), 1, "only the typo, of this host: {err}");
}

#[test]
fn percent_tokens_expand_as_ssh_expands_them_for_each_option() {
    // RemoteCommand's `%n` was the HostName (ssh's is the host as typed) and `%u %C %d %i %k
    // %l %L` were refused as unknown; files had no `%C`; ProxyCommand's `%n` came out of
    // -G expanded, where ssh -G shows the command as written.
    let dir = work_dir().join("ssh-cli-percent-tokens");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        "Host Mixed\n  HostName Db.Example.ORG\n  User Bob\n  Port 2222\n  \
         RemoteCommand echo %n %h %p %r %u %C %d %i %k %l %L %%\n  \
         UserKnownHostsFile /kh/%C /kh/%n_%k_%h_%u_%i\n  IdentityAgent /agents/%C-%r\n  \
         ProxyCommand nc %n %h %p\n\
         Host Aliased\n  HostName 127.0.0.1\n  HostKeyAlias Prod-DB\n  \
         RemoteCommand echo %k %n %C\n  UserKnownHostsFile /kh/%k\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let keys = [
        "remotecommand",
        "userknownhostsfile",
        "identityagent",
        "proxycommand",
        "hostkeyalias",
    ];
    // The lines, not their order (netkit's differs).
    let shown = |out: &Output| {
        let mut lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| keys.contains(&l.split(' ').next().unwrap_or_default()))
            .map(str::to_owned)
            .collect::<Vec<_>>();
        lines.sort();
        lines
    };
    let real_ssh = |args: &[&str]| {
        Command::new("ssh")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // ssh's %d is the passwd entry's home, netkit's the $HOME it takes `~` from (the tests run
    // with an empty one): the same directory when HOME is the passwd home, as on a login.
    let home = real_ssh(&["-F", "none", "-o", "RemoteCommand=%d", "-G", "box"]);
    let home = String::from_utf8_lossy(&home.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("remotecommand ").map(str::to_owned))
        .unwrap();
    for host in ["Mixed", "Aliased"] {
        let args = ["-F", config, "-G", host];
        let ours = netkit(
            &[&["ssh"][..], &args].concat(),
            b"",
            &[("HOME", home.clone())],
        );
        let theirs = real_ssh(&args);
        assert!(theirs.status.success(), "ssh -G {host}");
        assert!(
            ours.status.success(),
            "{host}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        assert_eq!(shown(&ours), shown(&theirs), "{host}");
        assert!(shown(&theirs).len() >= 3, "{:?}", shown(&theirs));
    }
    // Tokens ssh 9.2 does not have are refused by both (%j came in a later OpenSSH).
    for token in ["%j", "%T", "%z"] {
        let option = format!("RemoteCommand=echo {token}");
        let args = ["-F", "none", "-o", &option, "-G", "box"];
        assert_eq!(real_ssh(&args).status.code(), Some(255), "ssh {token}");
        let ours = netkit(&[&["ssh"][..], &args].concat(), b"", &[]);
        let err = String::from_utf8_lossy(&ours.stderr);
        assert_eq!(ours.status.code(), Some(255), "{token}: {err}");
        assert!(err.contains(&format!("unknown token {token}")), "{err}");
    }
    // Run on the real sshd, the command is the one ssh -G shows.
    let run = dir.join("run-config");
    std::fs::write(
        &run,
        format!(
            "Host Typed-Alias\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  \
             UserKnownHostsFile {}\n  RemoteCommand echo %n %k %C %u %d %i %L\n",
            env("NETKIT_TEST_SSH_HOST"),
            port(),
            env("NETKIT_TEST_SSH_USER"),
            key("id_ed25519").display(),
            env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        ),
    )
    .unwrap();
    let run = run.to_str().unwrap();
    let theirs = real_ssh(&["-F", run, "-G", "Typed-Alias"]);
    let command = String::from_utf8_lossy(&theirs.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("remotecommand echo ").map(str::to_owned))
        .unwrap();
    assert!(command.starts_with("Typed-Alias Typed-Alias "), "{command}");
    let out = netkit(&["ssh", "-F", run, "Typed-Alias"], b"", &[("HOME", home)]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{command}\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dash_g_prints_identity_files_as_configured_there_or_not_as_ssh_g_does() {
    // netkit -G printed only the key files found, as expanded paths.
    let dir = work_dir().join("ssh-cli-dash-g-identities");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "Host box\n  IdentityFile ~/.ssh/netkit-absent\n  IdentityFile %d/k_%h\n  \
             IdentityFile {}\n  IdentityFile ~/.ssh/netkit-absent\n",
            key("id_ed25519").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let lines = |out: &Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("identityfile "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let both = |args: &[&str]| {
        let ours = netkit(&[&["ssh"][..], args].concat(), b"", &[]);
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let theirs = Command::new("ssh")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (lines(&ours), lines(&theirs))
    };
    let (ours, theirs) = both(&["-F", config, "-G", "box"]);
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 3, "{ours:?}");
    let (ours, theirs) = both(&["-F", config, "-i", "/nonexistent/netkit-i", "-G", "box"]);
    assert_eq!(ours, theirs);
    // Without any: ssh's seven default files (netkit printed the three it tries).
    let (ours, theirs) = both(&["-F", "none", "-G", "box"]);
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 7, "{ours:?}");
}

#[test]
fn dash_j_names_a_jump_host_reached_through_its_own_proxy_jump() {
    // As ssh, whose `-J j3` runs `ssh -W` for j3, which reads j3's ProxyJump: netkit
    // connected to j3 directly.
    let dir = work_dir().join("ssh-cli-jump-alias");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    let write = |j3_via: &str| {
        std::fs::write(
            &config,
            format!(
                "Host j3 j2\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  \
                 UserKnownHostsFile {}\nHost j3\n  ProxyJump {j3_via}\n",
                port(),
                env("NETKIT_TEST_SSH_USER"),
                key("id_ed25519").display(),
                env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
            ),
        )
        .unwrap();
    };
    let run = || {
        let mut args = vec!["ssh", "-F", config.to_str().unwrap(), "-J", "j3"];
        let common = common();
        args.extend(common.iter().map(String::as_str));
        let port = port().to_string();
        let dest = dest();
        args.extend(["-p", &port, &dest, "echo", "jumped"]);
        netkit(&args, b"", &[])
    };
    write(UNRESOLVABLE_HOST);
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains(UNRESOLVABLE_HOST), "{err}");
    write("j2");
    let out = run();
    assert_eq!(
        out.stdout,
        b"jumped\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn revoked_host_keys_and_a_known_hosts_file_of_none_refuse_as_in_openssh() {
    let dir = work_dir().join("ssh-cli-revoked-host-keys");
    std::fs::create_dir_all(&dir).unwrap();
    let port = port().to_string();
    let key = key("id_ed25519").display().to_string();
    let kh = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let dest = dest();
    let run = |extra: &[&str]| {
        let mut args = vec!["ssh", "-p", &port, "-i", &key];
        args.extend_from_slice(extra);
        args.extend([dest.as_str(), "echo", "in"]);
        netkit(&args, b"", &[])
    };
    // Every key the server may send, as `TYPE BASE64` lines.
    let server_keys: String = std::fs::read_to_string(&kh)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 3 && !line.starts_with(['#', '@']))
                .then(|| format!("{} {} revoked\n", fields[1], fields[2]))
        })
        .collect();
    assert!(!server_keys.is_empty());
    let revoked = dir.join("revoked");
    let option = format!("RevokedHostKeys={}", revoked.display());
    std::fs::write(&revoked, &server_keys).unwrap();
    let out = run(&["--known-hosts", &kh, "-o", &option]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("REVOKED HOST KEY"), "{err}");
    std::fs::write(&revoked, "# nothing revoked\n").unwrap();
    assert_eq!(run(&["--known-hosts", &kh, "-o", &option]).stdout, b"in\n");
    // A KRL netkit cannot read, or no file, refuses the key, as a file ssh cannot read.
    std::fs::write(&revoked, b"SSHKRL\n\0\0\0\0\x01").unwrap();
    let out = run(&["--known-hosts", &kh, "-o", &option]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("KRL") && err.lines().count() == 1, "{err}");
    std::fs::remove_file(&revoked).unwrap();
    assert_eq!(
        run(&["--known-hosts", &kh, "-o", &option]).status.code(),
        Some(255)
    );
    // `none` keeps no key: accepting a new one would accept any key on every connection.
    for policy in ["--accept-new", "-oStrictHostKeyChecking=no"] {
        let out = run(&[
            "-o",
            "UserKnownHostsFile=none",
            "-o",
            "GlobalKnownHostsFile=none",
            policy,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{policy}: {err}");
        assert!(err.contains("could not be kept"), "{err}");
    }
    // A file named on the command line wins over the config's `none`.
    let fresh = dir.join("fresh_known_hosts");
    let _ = std::fs::remove_file(&fresh);
    let fresh = fresh.to_str().unwrap();
    let out = run(&[
        "-o",
        "UserKnownHostsFile=none",
        "--known-hosts",
        fresh,
        "--accept-new",
    ]);
    assert_eq!(
        out.stdout,
        b"in\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The idiom of scripts that want no check: the key is "kept" in /dev/null, as in ssh.
    let out = run(&[
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
    ]);
    assert_eq!(
        out.stdout,
        b"in\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_host_known_by_its_name_alone_is_known_at_any_port_as_in_ssh() {
    // known_hosts lines without `[host]:port` (ssh-keyscan without -p, a host that moved its
    // port): ssh takes them ("found matching key w/out port"); netkit refused the host.
    let dir = work_dir().join("ssh-cli-known-without-port");
    std::fs::create_dir_all(&dir).unwrap();
    let kh = std::fs::read_to_string(env("NETKIT_TEST_SSH_KNOWN_HOSTS")).unwrap();
    let bracketed = format!("[{}]:{}", env("NETKIT_TEST_SSH_HOST"), port());
    assert!(kh.contains(&bracketed), "{kh}");
    let no_port = dir.join("no_port");
    std::fs::write(
        &no_port,
        kh.replace(&bracketed, &env("NETKIT_TEST_SSH_HOST")),
    )
    .unwrap();
    let port = port().to_string();
    let key = key("id_ed25519").display().to_string();
    let dest = dest();
    let run = |file: &Path| {
        let file = file.to_str().unwrap();
        let args = [
            "ssh",
            "-p",
            &port,
            "-i",
            &key,
            "--known-hosts",
            file,
            &dest,
            "echo",
            "in",
        ];
        netkit(&args, b"", &[])
    };
    let out = run(&no_port);
    assert_eq!(
        out.stdout,
        b"in\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another key under the name alone is no proof: still unknown, not "changed".
    let forged: String = std::fs::read_to_string(&no_port)
        .unwrap()
        .lines()
        .map(|l| format!("{}AAAA\n", &l[..l.len() - 4]))
        .collect();
    std::fs::write(&no_port, forged).unwrap();
    let out = run(&no_port);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("host key is not known"), "{err}");
}

/// The test sshd as a jump host: `user@127.0.0.1:PORT`.
fn jump_dest() -> String {
    format!("{}:{}", dest(), port())
}

#[test]
fn password_only_from_the_environment() {
    let port = port().to_string();
    let kh = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let dest = dest();
    let args = [
        "ssh",
        "-p",
        &port,
        "--known-hosts",
        &kh,
        &dest,
        "echo",
        "ok",
    ];
    let out = netkit(
        &args,
        b"",
        &[("NETKIT_SSH_PASSWORD", env("NETKIT_TEST_SSH_PASSWORD"))],
    );
    assert_eq!(
        out.stdout,
        b"ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = netkit(&args, b"", &[("NETKIT_SSH_PASSWORD", "wrong".into())]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("authentication failed") && err.contains("password"),
        "{err}"
    );
    // No password and no terminal to ask on (setsid: none, as under cron or CI): the error
    // says how to give one; an encrypted key's, its passphrase.
    let encrypted = key("id_encrypted");
    for (extra, hint) in [
        (&[][..], "set NETKIT_SSH_PASSWORD"),
        (
            &["-i", encrypted.to_str().unwrap()][..],
            "set NETKIT_SSH_PASSPHRASE",
        ),
    ] {
        let (head, tail) = args.split_at(5);
        let out = Command::new("setsid")
            .arg("-w")
            .arg(netkit_bin())
            .args([head, extra, tail].concat())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("NETKIT_SSH_PASSWORD")
            .env_remove("NETKIT_SSH_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{err}");
        assert!(err.contains(hint) && err.lines().count() == 1, "{err}");
    }

    // OpenSSH's switches for each method: with the key offered and the right password set,
    // PubkeyAuthentication=no logs in by password, PasswordAuthentication=no by key, and
    // both off try nothing.
    let key = key("id_ed25519");
    let password = [("NETKIT_SSH_PASSWORD", env("NETKIT_TEST_SSH_PASSWORD"))];
    let with = |option: &str, password: &[(&str, String)]| {
        let (head, tail) = args.split_at(5);
        let options = ["-i", key.to_str().unwrap(), "-o", option];
        netkit(&[head, &options, tail].concat(), b"", password)
    };
    let out = with("PubkeyAuthentication=no", &password);
    assert_eq!(
        out.stdout,
        b"ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = with(
        "PubkeyAuthentication=no",
        &[("NETKIT_SSH_PASSWORD", "wrong".into())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(tried: password"),
        "the key was not offered: {err}"
    );
    let out = with(
        "PasswordAuthentication=no",
        &[("NETKIT_SSH_PASSWORD", "wrong".into())],
    );
    assert_eq!(
        out.stdout,
        b"ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let both = ["-o", "PubkeyAuthentication=no"];
    let (head, tail) = args.split_at(5);
    let only_key = [
        "-i",
        key.to_str().unwrap(),
        "-o",
        "PasswordAuthentication=no",
    ];
    let out = netkit(&[head, &both, &only_key, tail].concat(), b"", &password);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(tried: nothing"), "{err}");
    // PreferredAuthentications: the methods in its order, one it leaves out not at all.
    let wrong = [("NETKIT_SSH_PASSWORD", "wrong".to_owned())];
    for (option, vars, tried) in [
        ("PreferredAuthentications=password", &password, None),
        (
            "PreferredAuthentications=keyboard-interactive,password",
            &wrong,
            Some("(tried: keyboard-interactive, password;"),
        ),
        (
            "PreferredAuthentications=password,keyboard-interactive",
            &wrong,
            Some("(tried: password, keyboard-interactive;"),
        ),
        (
            "PreferredAuthentications=gssapi-with-mic",
            &password,
            Some("(tried: nothing"),
        ),
    ] {
        let out = with(option, vars);
        let err = String::from_utf8_lossy(&out.stderr);
        match tried {
            None => assert_eq!(out.stdout, b"ok\n", "{option}: {err}"),
            Some(tried) => assert!(err.contains(tried), "{option}: {err}"),
        }
    }
    // KbdInteractiveAuthentication=no: the password is not given as a keyboard-interactive
    // answer (the server offers both).
    let no_keyboard = ["-o", "KbdInteractiveAuthentication=no"];
    let out = netkit(&[head, &no_keyboard, tail].concat(), b"", &wrong);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(tried: password;"), "{err}");
    let out = netkit(&args, b"", &wrong);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(tried: password, keyboard-interactive;"),
        "{err}"
    );
    // A key the server does not know and the right password: the password is not tried.
    let unknown_key = netkit_tests::ssh::key("id_unknown");
    let with_unknown_key = |preferred: &str, vars: &[(&str, String)]| {
        let option = format!("PreferredAuthentications={preferred}");
        let unknown = ["-i", unknown_key.to_str().unwrap(), "-o", &option];
        netkit(&[head, &unknown, tail].concat(), b"", vars)
    };
    let out = with_unknown_key("publickey", &password);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    let tried = err
        .split("(tried: ")
        .nth(1)
        .and_then(|t| t.split(';').next());
    assert!(
        tried.is_some_and(|t| t.starts_with("publickey") && !t.contains("password")),
        "the password was not sent: {err}"
    );
    // The password before the key when asked so.
    let out = with_unknown_key("password,publickey", &wrong);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(tried: password, publickey "), "{err}");
}

#[test]
fn dash_q_lists_the_algorithms_as_ssh_does() {
    let list = |query: &str| {
        let out = netkit(&["ssh", "-Q", query], b"", &[]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let ciphers = list("cipher");
    assert!(
        ciphers.iter().any(|c| c == "aes128-gcm@openssh.com"),
        "{ciphers:?}"
    );
    assert!(ciphers.iter().any(|c| c == "chacha20-poly1305@openssh.com"));
    assert_eq!(list("Ciphers"), ciphers);
    let kex = list("kex");
    assert!(kex.iter().any(|k| k == "curve25519-sha256"), "{kex:?}");
    assert!(
        !kex.iter()
            .any(|k| k.starts_with("ext-info") || k.starts_with("kex-strict"))
    );
    assert!(list("mac").iter().any(|m| m == "hmac-sha2-256"));
    assert!(list("key").iter().any(|k| k == "ssh-ed25519"));
    // What -Q lists, -c takes, against the real sshd.
    let port = port().to_string();
    let mut args = vec!["ssh", "-p", &port, "-c", "aes128-ctr"];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let dest = dest();
    args.extend([dest.as_str(), "true"]);
    assert!(ciphers.iter().any(|c| c == "aes128-ctr"));
    assert_eq!(netkit(&args, b"", &[]).status.code(), Some(0));
    // Every name it lists -c and -m take (-Q listed libssh2's rijndael-cbc@lysator.liu.se,
    // which -c refuses as ssh 9.2 does).
    for (flag, names) in [("-c", &ciphers), ("-m", &list("mac"))] {
        for name in names {
            let out = netkit(&["ssh", "-F", "none", flag, name, "-G", "box"], b"", &[]);
            assert!(
                out.status.success(),
                "{flag} {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let out = netkit(&["ssh", "-Q", "bogus"], b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("unsupported query \"bogus\"") && err.lines().count() == 1);
}

#[test]
fn dash_g_prints_the_resolved_config_without_connecting() {
    let dir = work_dir().join("ssh-cli-dash-g");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = key("id_ed25519");
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "Host web\n  HostName 127.0.0.9\n  User deploy\n  Port 2222\n  IdentityFile {}\n  \
             ProxyJump jump1,admin@jump2:2200,ops@[::1]:2201\n  LocalForward 5433 db:5432\n  \
             LocalForward /tmp/netkit-g.sock db:22\n  RemoteForward 8080\n  \
             SetEnv TOKEN=s3cret\n  PreferredAuthentications password,publickey\n\
             Host jump1\n  User hopper\n",
            key.display()
        ),
    )
    .unwrap();
    let out = netkit(
        &[
            "ssh",
            "-F",
            config.to_str().unwrap(),
            "-G",
            "-o",
            "Compression=yes",
            "-p",
            "2223",
            "-L",
            "127.0.0.1:8080:[::1]:80",
            "-D",
            "1080",
            "web",
        ],
        b"",
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in [
        "user deploy",
        "hostname 127.0.0.9",
        "port 2223",
        "compression yes",
        "stricthostkeychecking true",
        "preferredauthentications password,publickey",
        &format!("identityfile {}", key.display()),
        // As written, as ssh -G prints it (not `hopper@jump1:22`, the hop resolved).
        "proxyjump jump1,admin@jump2:2200,ops@[::1]:2201",
        // The flags' forwards and the file's, written as ssh -G writes them.
        "localforward [127.0.0.1]:8080 [::1]:80",
        "localforward 5433 [db]:5432",
        "dynamicforward 1080",
        // Forwards netkit cannot carry (a Unix socket, remote SOCKS) do not stop -G.
        "remoteforward 8080",
        // As ssh -G prints SetEnv: the value with it.
        "setenv TOKEN=s3cret",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    assert!(text.starts_with("host web\n"), "{text}");
    // Patterns match the host as given; the host name is shown in lower case, as ssh's.
    std::fs::write(&config, "Host Mixed\n  HostName Db.Example.ORG\n").unwrap();
    let out = netkit(
        &["ssh", "-F", config.to_str().unwrap(), "-G", "Mixed"],
        b"",
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("host Mixed\nuser ") && text.contains("\nhostname db.example.org\n"),
        "{text}"
    ); // A bare IPv6 address is a host, as ssh takes it (not host `:` and port 1).
    let out = netkit(&["ssh", "-F", "none", "-G", "ann@::1"], b"", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\nuser ann\nhostname ::1\nport 22\n"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_system_config_is_read_after_the_users_unless_dash_f_names_a_file_as_in_ssh() {
    // /etc/ssh/ssh_config was never read: what a distribution or an administrator set
    // there (ssh_config.d's files included) did not apply, where ssh applies it.
    let dir = work_dir().join("ssh-cli-system-config");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("home/.ssh")).unwrap();
    std::fs::create_dir_all(dir.join("etc/ssh_config.d")).unwrap();
    let user = dir.join("home/.ssh/config");
    std::fs::write(&user, "Host box\n  User ann\n").unwrap();
    let system = dir.join("etc/ssh_config");
    // Debian's, with Fedora's crypto-policies lines (algorithms libssh2 lacks among them)
    // and an option of a distribution's patched ssh: valid there, so not to be refused or
    // warned of on every run.
    std::fs::write(
        &system,
        "Include ssh_config.d/*.conf\nHost *\n  User sysadmin\n  Port 2200\n  \
         SendEnv LANG LC_*\n  HashKnownHosts yes\n  GSSAPIAuthentication yes\n  \
         GSSAPIKeyExchange yes\n  VendorPatchedOption yes\n\
         Match final all\n  \
         Ciphers aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr\n  \
         KexAlgorithms mlkem768x25519-sha256,sntrup761x25519-sha512,curve25519-sha256\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/ssh_config.d/50-site.conf"),
        "Host *\n  Port 2222\n",
    )
    .unwrap();
    let show = |flags: &[&str]| {
        let out = Command::new(netkit_bin())
            .arg("ssh")
            .args(flags)
            .args(["-G", "box"])
            .env_clear()
            .env("HOME", dir.join("home"))
            .env("LANG", "C")
            .env("NETKIT_SSH_SYSTEM_CONFIG", &system)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{flags:?}: {err}");
        (text, err)
    };
    let (text, err) = show(&[]);
    for line in [
        // The user's file first, then the system file's Include, then its own lines.
        "user ann",
        "port 2222",
        "sendenv LANG",
        "hashknownhosts yes",
        "ciphers aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    assert_eq!(err, "", "nothing to say of a file the user did not write");
    // -F (a file or none) leaves the system file unread, as in ssh.
    for flags in [["-F", user.to_str().unwrap()], ["-F", "none"]] {
        let (text, _) = show(&flags);
        assert!(text.lines().any(|l| l == "port 22"), "{flags:?}: {text}");
        assert!(!text.contains("sendenv"), "{flags:?}: {text}");
    }
}

#[test]
fn an_empty_home_never_makes_the_current_directory_the_users() {
    // `~/.ssh/config` was `./.ssh/config` with HOME empty: a cloned repository's config
    // chose the host, the keys trusted, and a ProxyCommand to run.
    let dir = work_dir().join("ssh-cli-empty-home");
    std::fs::create_dir_all(dir.join(".ssh")).unwrap();
    std::fs::write(
        dir.join(".ssh/config"),
        "Host planted\n  HostName 127.0.0.9\n  User evil\n",
    )
    .unwrap();
    for home in ["", "relative"] {
        let out = Command::new(netkit_bin())
            .args(["ssh", "-G", "planted"])
            .env("HOME", home)
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("\nhostname planted\n"),
            "HOME={home:?}: {text}"
        );
        assert!(
            !text.contains("evil") && !text.contains(" .ssh/"),
            "HOME={home:?}: {text}"
        );
    }
}

#[test]
fn a_config_file_others_can_write_is_refused_as_openssh_does() {
    use std::os::unix::fs::PermissionsExt as _;
    // Whoever can write it could name a ProxyCommand that runs as us.
    let home = fresh_home("ssh-cli-config-modes");
    let config = home.join(".ssh/config");
    let included = home.join(".ssh/included.conf");
    std::fs::write(&config, "Include included.conf\nHost a\n  User ann\n").unwrap();
    std::fs::write(&included, "Host b\n  User bob\n").unwrap();
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let show = |host: &str, file: Option<&std::path::Path>| {
        let mut command = Command::new(netkit_bin());
        command.arg("ssh");
        if let Some(file) = file {
            command.arg("-F").arg(file);
        }
        command
            .args(["-G", host])
            .env("HOME", &home)
            .output()
            .unwrap()
    };
    for (file, writable) in [(&config, 0o600), (&included, 0o644)] {
        mode(file, writable);
    }
    let out = show("b", None);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\nuser bob\n"),
        "{out:?}"
    );
    for (file, other) in [(&config, &included), (&included, &config)] {
        mode(other, 0o600);
        mode(file, 0o666);
        let out = show("a", None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{err}");
        assert!(
            err.contains(&format!("bad owner or permissions on {}", file.display()))
                && err.lines().count() == 1,
            "{err}"
        );
        mode(file, 0o600);
    }
    // Another user's file is mended with chown, not with the chmod the hint said.
    std::os::unix::fs::chown(&config, Some(65534), None).unwrap();
    let out = show("a", None);
    std::os::unix::fs::chown(&config, Some(0), None).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("owned by uid 65534; chown it to yourself") && !err.contains("chmod"),
        "{err}"
    );
    // One its user cannot open (root's, after `sudo vi`) is passed over, as ssh passes it.
    let shown = netkit_tests::as_test_user(&mut Command::new(netkit_bin()))
        .args(["ssh", "-G", "a"])
        .env("HOME", &home)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&shown.stderr);
    assert_eq!(shown.status.code(), Some(0), "{err}");
    assert!(err.contains("Permission denied: passed over"), "{err}");
    // A file given with -F is the user's own choice, as in OpenSSH.
    mode(&config, 0o666);
    let out = show("a", Some(&config));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\nuser ann\n"),
        "{out:?}"
    );
}

#[test]
fn names_that_would_run_commands_in_a_proxy_command_are_refused_as_openssh_does() {
    // CVE-2023-51385: a destination from a hosts list or a git URL, put in by %h or %r,
    // must not run commands in the shell that runs ProxyCommand or Match exec.
    let dir = work_dir().join("ssh-cli-shell-names");
    std::fs::create_dir_all(&dir).unwrap();
    let pwned = dir.join("pwned");
    let touch = format!("$(touch${{IFS}}{})", pwned.display());
    let config = dir.join("config");
    std::fs::write(&config, "Match exec \"test %h = x\"\n  User y\n").unwrap();
    let config = config.to_str().unwrap();
    let host = format!("x{touch}");
    let user_host = format!("u{touch}@127.0.0.1");
    let proxy_host = ["-F", "none", "-o", "ProxyCommand=nc %h %p", &host, "true"];
    let proxy_user = [
        "-F",
        "none",
        "-o",
        "ProxyCommand=true %r",
        &user_host,
        "true",
    ];
    let match_exec = ["-F", config, "-G", &host];
    for (args, what) in [
        (&proxy_host[..], "hostname"),
        (&proxy_user[..], "remote username"),
        (&match_exec[..], "hostname"),
    ] {
        let mut line = vec!["ssh"];
        line.extend(args);
        let out = netkit(&line, b"", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
        assert!(
            err.contains(&format!("{what} ")) && err.contains("contains invalid characters"),
            "{err}"
        );
        assert!(!pwned.exists(), "{args:?} ran a command");
    }
    // Names with nothing for a shell to act on still reach it.
    let out = netkit(&["ssh", "-F", config, "-G", "db-1.example.com"], b"", &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn agent_authentication_through_a_real_ssh_agent() {
    let port = port().to_string();
    let kh = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let dest = dest();
    let out = netkit(
        &[
            "ssh",
            "-p",
            &port,
            "--known-hosts",
            &kh,
            &dest,
            "echo",
            "agent",
        ],
        b"",
        &[("SSH_AUTH_SOCK", env("NETKIT_TEST_SSH_AGENT"))],
    );
    assert_eq!(
        out.stdout,
        b"agent\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn known_hosts_lines_libssh2_cannot_read_are_passed_over_as_ssh_does() {
    let known = std::fs::read_to_string(env("NETKIT_TEST_SSH_KNOWN_HOSTS")).unwrap();
    // A damaged line and a key type libssh2 lacks, ahead of the server's key.
    let file = work_dir().join("known-hosts-odd-lines");
    std::fs::write(
        &file,
        format!("garbage line here\nhost1 ssh-foo AAAA\n# a comment\n\n{known}"),
    )
    .unwrap();
    let port = port().to_string();
    let key = key("id_ed25519").display().to_string();
    let dest = dest();
    let run = |options: &[&str]| {
        let mut args = vec!["ssh", "-p", &port, "-i", &key];
        args.extend_from_slice(options);
        args.extend([dest.as_str(), "echo", "in"]);
        netkit(&args, b"", &[])
    };
    let file = file.to_str().unwrap();
    for options in [
        vec!["--known-hosts", file],
        // Read-only files too: the key after the odd lines still counts.
        vec![
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            &format!("GlobalKnownHostsFile={file}"),
        ],
    ] {
        let out = run(&options);
        assert_eq!(
            out.stdout,
            b"in\n",
            "{options:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A line naming the host by a wildcard holds its key, as for ssh; another key under the
    // same wildcard is a changed one.
    let (name, rest) = known
        .lines()
        .find(|l| l.contains("ssh-ed25519"))
        .and_then(|l| l.split_once(' '))
        .unwrap();
    let wildcard = name.replace("127.0.0.1", "127.0.0.*");
    std::fs::write(file, format!("{wildcard} {rest}\n")).unwrap();
    let out = run(&["--known-hosts", file]);
    assert_eq!(
        out.stdout,
        b"in\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = rest.replace(
        rest.split(' ').nth(1).unwrap(),
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    );
    std::fs::write(file, format!("{wildcard} {other}\n")).unwrap();
    let out = run(&["--known-hosts", file, "--accept-new"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("CHANGED"), "{err}");
}

#[test]
fn a_known_hosts_file_that_cannot_be_read_is_passed_over_as_ssh_does() {
    // A link to itself cannot be opened, even by root (a root-owned ~/.ssh cannot by its
    // user): the global file still vouches for the host, and --insecure needs neither.
    let looped = work_dir().join("known-hosts-loop");
    let _ = std::fs::remove_file(&looped);
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let port = port().to_string();
    let key = key("id_ed25519").display().to_string();
    let dest = dest();
    let user = format!("UserKnownHostsFile={}", looped.display());
    let global = format!(
        "GlobalKnownHostsFile={}",
        env("NETKIT_TEST_SSH_KNOWN_HOSTS")
    );
    for options in [vec!["-o", &global], vec!["--insecure"]] {
        let mut args = vec!["ssh", "-p", &port, "-i", &key, "-o", &user];
        args.extend_from_slice(&options);
        args.extend([dest.as_str(), "echo", "in"]);
        let out = netkit(&args, b"", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.stdout, b"in\n", "{options:?}: {err}");
        assert!(
            err.contains("known-hosts-loop") && err.contains("passed over"),
            "{err}"
        );
    }
}

#[test]
fn a_default_key_its_user_cannot_read_is_named_as_ssh_names_it() {
    use std::os::unix::fs::PermissionsExt as _;
    // Copied in with `sudo cp`: root's key in the user's ~/.ssh. The login failed as if the
    // server had refused the key.
    let home = fresh_home("home-with-root-key");
    for dir in [&home, &home.join(".ssh")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let root_key = home.join(".ssh/id_ed25519");
    std::fs::copy(key("id_ed25519"), &root_key).unwrap();
    std::fs::set_permissions(&root_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = netkit_tests::as_test_user(&mut Command::new(netkit_bin()))
        .env("HOME", &home)
        .args([
            "ssh",
            "-p",
            &port().to_string(),
            "--insecure",
            "-o",
            "BatchMode=yes",
        ])
        .args([dest().as_str(), "true"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    let named = format!(
        "cannot load the key {}: Permission denied",
        root_key.display()
    );
    assert!(err.contains(&named), "{err}");
}

#[test]
fn a_key_file_that_cannot_be_read_is_said_and_passed_over_as_ssh_does() {
    let port = port().to_string();
    let kh = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let key = key("id_ed25519").display().to_string();
    let dest = dest();
    let missing = work_dir().join("no-such-key");
    let missing = missing.to_str().unwrap();
    let args = |keys: &[&str]| {
        let mut args = vec!["ssh", "-p", &port, "--known-hosts", &kh];
        for k in keys {
            args.extend(["-i", k]);
        }
        args.extend([dest.as_str(), "echo", "in"]);
        netkit(&args, b"", &[])
    };
    let out = args(&[missing, &key]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "in\n"),
        "{err}"
    );
    assert!(
        err.contains(&format!("identity file {missing} not accessible"))
            && err.lines().count() == 1,
        "{err}"
    );
    // Alone, it leaves nothing to log in with: the failure says so.
    let out = args(&[missing]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("authentication failed"), "{err}");
    // A key that cannot be used (malformed, a .pub, a directory) is passed over too, with a
    // warning once in; alone, the one-line error names it.
    let garbage = work_dir().join("garbage-key");
    std::fs::write(&garbage, "not a key\n").unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A public key made private (ssh-keygen writes it 0644, refused below for that alone).
    let public = work_dir().join("public-key.pub");
    std::fs::copy(format!("{key}.pub"), &public).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = public.display().to_string();
    for bad in [
        garbage.to_str().unwrap(),
        &public,
        work_dir().to_str().unwrap(),
    ] {
        let out = args(&[bad, &key]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{bad}: {err}");
        assert!(
            err.contains(&format!("{bad}: cannot use the key")) && err.lines().count() == 1,
            "{err}"
        );
    }
    let out = args(&[garbage.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains("garbage-key: cannot use the key") && err.lines().count() == 1,
        "{err}"
    );
    // The right key, readable by others: refused as ssh refuses an unprotected private key
    // (it is no longer a secret), even though the server would take it.
    let open = work_dir().join("open-key");
    std::fs::copy(&key, &open).unwrap();
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = args(&[open.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{mode:o}: {err}");
        assert!(
            err.contains(&format!("open-key: permissions 0{mode:o} are too open"))
                && err.lines().count() == 1,
            "{err}"
        );
    }
    let out = args(&[open.to_str().unwrap(), &key]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("too open") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn identity_agent_names_the_agent_socket_or_turns_the_agent_off() {
    let (port, kh, dest) = (
        port().to_string(),
        env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        dest(),
    );
    // No key files to fall back on: the agent decides.
    let home = work_dir().join("ssh-cli-identity-agent");
    std::fs::create_dir_all(&home).unwrap();
    let agent = env("NETKIT_TEST_SSH_AGENT");
    let run = |option: &str, vars: &[(&str, String)]| {
        let mut all = vec![("HOME", home.display().to_string())];
        all.extend_from_slice(vars);
        let args = [
            "ssh",
            "-p",
            &port,
            "--known-hosts",
            &kh,
            "-o",
            option,
            &dest,
            "echo",
            "in",
        ];
        netkit(&args, b"", &all)
    };
    for (option, vars) in [
        (format!("IdentityAgent={agent}"), vec![]),
        (
            "IdentityAgent=$NETKIT_AGENT".to_owned(),
            vec![("NETKIT_AGENT", agent.clone())],
        ),
    ] {
        let out = run(&option, &vars);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.stdout, b"in\n", "{option}: {err}");
    }
    let out = run("IdentityAgent=none", &[("SSH_AUTH_SOCK", agent.clone())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains("authentication failed") && !err.contains("agent"),
        "{err}"
    );
}

#[test]
fn every_agent_key_is_offered_those_named_first_and_identities_only_keeps_to_them() {
    let dir = work_dir().join("ssh-cli-crowded-agent");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("home")).unwrap();
    let sock = dir.join("agent.sock");
    let _agent = netkit_tests::Spawned::start(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null()),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ssh_add = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("ssh-add")
            .args(args)
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let strangers: Vec<_> = (0..6)
        .map(|n| {
            let stranger = dir.join(format!("stranger{n}"));
            let made = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&stranger)
                .status()
                .unwrap();
            assert!(made.success());
            stranger
        })
        .collect();
    let right = key("id_ed25519");
    // Loads the agent with `keys`, in order, and nothing else.
    let load = |keys: &[&std::path::Path]| {
        ssh_add(&["-D".as_ref()]);
        for key in keys {
            ssh_add(&[key.as_os_str()]);
        }
    };
    let vars = [
        ("SSH_AUTH_SOCK", sock.display().to_string()),
        ("HOME", dir.join("home").display().to_string()),
    ];
    let run = |extra: &[&str]| {
        let mut args = vec![
            "ssh".to_owned(),
            "-p".into(),
            port().to_string(),
            "--known-hosts".into(),
            env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        ];
        args.extend(extra.iter().map(|e| (*e).to_owned()));
        args.extend([dest(), "echo".into(), "in".into()]);
        let out = netkit(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            b"",
            &vars,
        );
        assert_eq!(
            out.stdout,
            b"in\n",
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The server's key second in the agent, no key file: the agent's keys are all offered.
    load(&[&strangers[0], &right]);
    run(&[]);
    // Behind six strangers (sshd allows six failures, MaxAuthTries) the key -i names is
    // offered first; known by the OpenSSH private key alone too, with no .pub beside it.
    let mut crowd: Vec<&std::path::Path> = strangers.iter().map(|p| p.as_path()).collect();
    crowd.push(&right);
    load(&crowd);
    let bare = dir.join("named-key");
    std::fs::copy(&right, &bare).unwrap();
    std::fs::set_permissions(&bare, std::fs::Permissions::from_mode(0o600)).unwrap();
    for named in [&right, &bare] {
        run(&["-i", named.to_str().unwrap()]);
    }
    // A public key alone names the agent's key, as ssh takes `IdentityFile key.pub` for a
    // private half held only by the agent.
    let selector = dir.join("selector.pub");
    std::fs::copy(right.with_extension("pub"), &selector).unwrap();
    run(&["-i", selector.to_str().unwrap(), "-o", "IdentitiesOnly=yes"]);
    // Named by its `.pub` alone where the key file would be (a key kept only in a hardware
    // or password-manager agent), as ssh reads an IdentityFile: the agent's key it names.
    std::fs::copy(right.with_extension("pub"), dir.join("kept-away.pub")).unwrap();
    let kept_away = format!("IdentityFile={}", dir.join("kept-away").display());
    run(&["-o", &kept_away, "-o", "IdentitiesOnly=yes"]);
    // The agent holding only strangers: IdentitiesOnly offers none of them, the file works.
    crowd.pop();
    load(&crowd);
    run(&["-i", right.to_str().unwrap(), "-o", "IdentitiesOnly=yes"]);
}

#[test]
fn unknown_and_changed_host_keys_are_refused_loudly() {
    let dir = work_dir().join("ssh-cli-known-hosts");
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty");
    let _ = std::fs::remove_file(&empty);
    let port = port().to_string();
    let key = key("id_ed25519").display().to_string();
    let dest = dest();
    let run = |kh: &str, extra: &[&str]| {
        let mut args = vec!["ssh", "-p", &port, "-i", &key, "--known-hosts", kh];
        args.extend_from_slice(extra);
        args.extend([dest.as_str(), "echo", "in"]);
        netkit(&args, b"", &[])
    };
    let out = run(empty.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host key is not known") && err.contains("SHA256:"),
        "{err}"
    );
    let out = run(empty.to_str().unwrap(), &["--accept-new"]);
    assert_eq!(
        out.stdout,
        b"in\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(empty.to_str().unwrap(), &[]).stdout, b"in\n");
    let contents = std::fs::read_to_string(&empty).unwrap();
    let changed = dir.join("changed");
    let forged: String = contents
        .lines()
        .map(|l| format!("{}AAAA\n", &l[..l.len() - 4]))
        .collect();
    std::fs::write(&changed, format!("# a comment\n{forged}")).unwrap();
    let out = run(changed.to_str().unwrap(), &["--accept-new"]);
    assert_eq!(out.status.code(), Some(255));
    // The file and line of the offending key are named, as ssh names them, and how to
    // remove it; also when the key is in a file other than the first (a global one).
    let offending = format!("offending key in {}:2", changed.display());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            && err.contains(&offending)
            && err.contains("ssh-keygen -f"),
        "{err}"
    );
    let global = format!("GlobalKnownHostsFile={}", changed.display());
    let none = dir.join("none-here");
    let out = run(none.to_str().unwrap(), &["-o", &global]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&offending), "{err}");

    // A key marked @revoked is refused even where the file also lists it as the host's, as
    // ssh refuses it; --insecure goes on, with a warning.
    let revoked = dir.join("revoked");
    let marked: String = contents
        .lines()
        .map(|l| format!("@revoked * {}\n", l.split_once(' ').unwrap().1))
        .collect();
    std::fs::write(&revoked, marked + &contents).unwrap();
    for extra in [&[][..], &["--accept-new"]] {
        let out = run(revoked.to_str().unwrap(), extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{err}");
        assert!(
            err.contains("REVOKED HOST KEY DETECTED") && err.contains("SHA256:"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let out = run(revoked.to_str().unwrap(), &["--insecure"]);
    assert_eq!(out.stdout, b"in\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("REVOKED"));

    // Host names are known in lower case, as OpenSSH lowercases the one it connects to.
    let named = dir.join("named");
    let _ = std::fs::remove_file(&named);
    let user = env("NETKIT_TEST_SSH_USER");
    let (lower, upper) = (format!("{user}@localhost"), format!("{user}@LocalHost"));
    let named_path = named.to_str().unwrap();
    let by_name = |dest: &str, extra: &[&str]| {
        let head = ["ssh", "-p", &port, "-i", &key, "--known-hosts", named_path];
        netkit(
            &[&head[..], extra, &[dest, "echo", "in"]].concat(),
            b"",
            &[],
        )
    };
    assert_eq!(by_name(&upper, &["--accept-new"]).stdout, b"in\n");
    let line = std::fs::read_to_string(&named).unwrap();
    assert!(line.starts_with(&format!("[localhost]:{port} ")), "{line}");
    // HostKeyAlias: the key is known by that name, whatever the host and port.
    let aliased = dir.join("aliased");
    let _ = std::fs::remove_file(&aliased);
    let alias = |extra: &[&str]| {
        let head = [
            "ssh",
            "-p",
            &port,
            "-i",
            &key,
            "--known-hosts",
            aliased.to_str().unwrap(),
        ];
        netkit(
            &[&head[..], extra, &[lower.as_str(), "echo", "in"]].concat(),
            b"",
            &[],
        )
    };
    assert_eq!(
        alias(&["-o", "HostKeyAlias=MyBox", "--accept-new"]).stdout,
        b"in\n"
    );
    let line = std::fs::read_to_string(&aliased).unwrap();
    assert!(line.starts_with("mybox ssh-ed25519 "), "{line}");
    assert_eq!(alias(&["-o", "HostKeyAlias=mybox"]).stdout, b"in\n");
    let err = String::from_utf8_lossy(&alias(&[]).stderr).into_owned();
    assert!(err.contains("host key is not known"), "{err}");
    for dest in [&lower, &upper] {
        let out = by_name(dest, &[]);
        assert_eq!(
            out.stdout,
            b"in\n",
            "{dest}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn set_env_and_send_env_ask_the_server_to_set_variables_as_in_ssh() {
    // The test sshd accepts NETKIT_TEST_*; SendEnv sends the local variables its patterns
    // match (every line's, as ssh adds them up), and no others.
    let flags = [
        "-o",
        "SetEnv=NETKIT_TEST_SET=\"one and\"",
        "-o",
        "SendEnv=NETKIT_TEST_SEN*",
        "-o",
        "SendEnv NETKIT_TEST_ALSO",
    ];
    let words = [
        "echo",
        "${NETKIT_TEST_SET}-${NETKIT_TEST_SENT}-${NETKIT_TEST_ALSO}-${NETKIT_TEST_OTHER}",
    ];
    let args = ssh_args(&flags, &words);
    let vars = [
        ("NETKIT_TEST_SENT", "two".to_owned()),
        ("NETKIT_TEST_ALSO", "three".to_owned()),
        ("NETKIT_TEST_OTHER", "four".to_owned()),
    ];
    let out = netkit(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
        &vars,
    );
    // A quoted value loses its quotes, as ssh_config(5) quotes one with spaces.
    assert_eq!(
        out.stdout,
        b"one and-two-three-\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One the server does not accept is left unset, as ssh leaves it, and the command runs.
    let out = ssh_with(
        &["-o", "SetEnv=NOT_ACCEPTED=x"],
        &["echo", "${NOT_ACCEPTED}ran"],
        b"",
    );
    assert_eq!(
        out.stdout,
        b"ran\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ssh_with(&["-o", "SetEnv=NO_VALUE"], &["true"], b"");
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected NAME=VALUE"));
}

#[test]
fn a_command_that_runs_past_command_timeout_is_given_up_on() {
    // A 30 s command and a 1 s limit: the host fails with a timeout long before the
    // command would end (closing its channel the polite way waited for it to end).
    let started = std::time::Instant::now();
    let out = ssh_with(
        &["--command-timeout", "1"],
        &["echo started; sleep 30"],
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert_eq!(out.stdout, b"started\n");
    assert!(err.contains("ran longer than 1s"), "{err}");
    let hosts = format!("{},{}", dest(), dest());
    let args = [
        "ssh",
        "--command-timeout",
        "1",
        "-p",
        &port().to_string(),
        "--known-hosts",
        &env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        "-i",
        &key("id_ed25519").display().to_string(),
        "--hosts",
        &hosts,
        "--",
        "printf 'caf\\351\\n'; sleep 30",
    ]
    .map(str::to_owned);
    let out = netkit(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.matches("ran longer than 1s").count(), 2, "{text}");
    // What a host printed before it was given up on is shown, byte for byte (Latin-1 here).
    let mut printed = format!("{} | caf", dest()).into_bytes();
    printed.extend([0xe9, b'\n']);
    let shown = out.stdout.windows(printed.len()).filter(|w| *w == printed);
    assert_eq!(shown.count(), 2, "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited for the commands: {:?}",
        started.elapsed()
    );
    let out = ssh_with(&["--command-timeout", "0"], &["true"], b"");
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn a_closed_stdout_ends_the_session_as_in_ssh() {
    // `netkit ssh HOST 'tail -f log' | head -1`: once head has its line and goes, the next
    // output finds the pipe closed and netkit goes too (it ran on, writing into the closed
    // pipe, for as long as the command did: here for ever).
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(
                &[],
                &["echo first; while :; do sleep 0.2; echo more; done"],
            ))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0; 6];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"first\n");
    drop(stdout);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "netkit ran on with its stdout closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // A shell's status for SIGPIPE, as ssh's: 255 said "could not connect".
    assert_eq!(status.code(), Some(141));
}

#[test]
fn dash_o_user_and_port_win_over_each_host_of_the_list_as_over_one_destination() {
    // pssh hands its -O options to ssh ahead of the host, so ssh keeps their user and port;
    // netkit did so for one DEST but let `user@host:port` of --hosts win.
    let port = port().to_string();
    let user = env("NETKIT_TEST_SSH_USER");
    let (with_user, with_port) = (format!("User={user}"), format!("Port={port}"));
    for (host, option) in [
        (
            format!("nobody-netkit@127.0.0.1:{port}"),
            with_user.as_str(),
        ),
        (format!("{user}@127.0.0.1:1"), with_port.as_str()),
    ] {
        let mut args = vec!["ssh", "--hosts", &host, "-o", option];
        let common = common();
        args.extend(common.iter().map(String::as_str));
        args.extend(["--", "whoami"]);
        let out = netkit(&args, b"", &[]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains(&user),
            "{host} -o {option}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_interrupted_run_over_many_hosts_reports_the_hosts_done_and_the_rest() {
    // Ctrl-C lost the summary and the --json document (stdout empty): which hosts had run
    // was gone; pssh marks the rest "Interrupted".
    let port = port().to_string();
    let user = env("NETKIT_TEST_SSH_USER");
    let host = format!("{user}@127.0.0.1:{port}");
    for json in [true, false] {
        let mut args = vec!["ssh".to_owned(), "--hosts".into(), format!("{host},{host}")];
        args.extend(["--parallel".into(), "1".into()]);
        if json {
            args.push("--json".into());
        }
        args.extend(common());
        // One at a time: the first to make the directory ends at once, the second says it
        // has begun by a file and runs on until the signal. (A fixed 3 s before Ctrl-C, with
        // each host sleeping 2 s, raced the first host's handshake: on a loaded machine it
        // was not done yet.)
        let marks = remote_dir(&format!("ssh-cli-interrupted-{json}"));
        let (first, second) = (marks.join("first"), marks.join("second-begun"));
        args.extend([
            "--".into(),
            format!(
                "echo begun; if mkdir {}; then echo ended; else touch {}; sleep 20; fi",
                first.display(),
                second.display()
            ),
        ]);
        let child = netkit_tests::Spawned::start(
            Command::new(netkit_bin())
                .args(&args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        );
        let _ = netkit_tests::temporary_file(&marks, "second-begun");
        // The second host's "begun", written before its file, has still to travel through
        // sshd to netkit.
        std::thread::sleep(Duration::from_millis(500));
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output();
        assert_eq!(out.status.code(), Some(130), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        if json {
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(doc[0]["ok"], true, "{text}");
            assert_eq!(doc[1]["error"], "interrupted", "{text}");
            // What it said before is kept (it was lost: a stuck host told nothing).
            assert_eq!(doc[1]["stdout"], "begun\n", "{text}");
        } else {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&host) && !l.contains(" | "))
                .collect();
            assert_eq!(lines.len(), 2, "{text}");
            assert!(
                lines[0].ends_with(" ok") && lines[1].ends_with(" interrupted"),
                "{text}"
            );
            assert_eq!(text.matches(" | begun\n").count(), 2, "{text}");
            assert_eq!(text.matches(" | ended\n").count(), 1, "{text}");
        }
    }
}

#[test]
fn a_run_over_many_hosts_whose_output_nobody_reads_still_ends_at_sigterm() {
    // The report after a signal waited for a stdout nobody read (`| less` on its first
    // screen), and the signal did nothing: only SIGKILL ended it.
    let port = port().to_string();
    let user = env("NETKIT_TEST_SSH_USER");
    let host = format!("{user}@127.0.0.1:{port}");
    let mut args = vec!["ssh".to_owned(), "--hosts".into(), format!("{host},{host}")];
    args.extend(common());
    args.extend(["--".into(), "head -c 300000 /dev/zero".into()]);
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null()),
    );
    // Held, never read.
    let _stdout = child.stdout.take().unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let status = child.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(143));
}

#[test]
fn each_of_many_hosts_reads_all_of_stdin() {
    // stdin was dropped: `cat > conf < app.conf` on every host wrote empty files, exit 0.
    // Each command gets all of it, the later ones of --parallel 1 too, as pssh -I sends it.
    let port = port().to_string();
    let user = env("NETKIT_TEST_SSH_USER");
    let host = format!("{user}@127.0.0.1:{port}");
    // Spaces between hosts and a last comma, as pssh -H and generated lists have them.
    let hosts = format!("{host}, {host},{host},");
    let mut data = vec![0u8; 300_000];
    rand::rng().fill_bytes(&mut data);
    let run = |flags: &[&str], command: &str, stdin: &[u8]| {
        let mut args = vec!["ssh", "--hosts", &hosts, "--parallel", "1"];
        args.extend(flags);
        let common = common();
        args.extend(common.iter().map(String::as_str));
        args.extend(["--", command]);
        netkit(&args, stdin, &[])
    };
    let out = run(&[], "cksum", &data);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let mut cksum = netkit_tests::Spawned::start(
        Command::new("cksum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    cksum.stdin.take().unwrap().write_all(&data).unwrap();
    let sum = String::from_utf8(cksum.wait_with_output().stdout).unwrap();
    let sum = format!(" | {}", sum.replace(" -", ""));
    assert_eq!(text.matches(&sum).count(), 3, "{sum}: {text}");
    let out = run(&["-n"], "wc -c", &data);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(" | 0\n").count(), 3, "{text}");
    // A stdin that never ends does not hold up commands that do not read it.
    let mut args = vec!["ssh".to_owned(), "--hosts".into(), hosts.clone()];
    args.extend(common());
    args.extend(["--".into(), "echo done".into()]);
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let _open = child.stdin.take().unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "held up by stdin"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.matches(" | done\n").count(), 3, "{text}");
}

#[test]
fn many_hosts_take_the_configs_stdin_null_and_refuse_its_session_type_and_fork() {
    // With --hosts they were passed over without a word: StdinNull yes still sent stdin,
    // SessionType none ran the command, ForkAfterAuthentication yes stayed in the foreground.
    let port = port().to_string();
    let user = env("NETKIT_TEST_SSH_USER");
    let host = format!("{user}@127.0.0.1:{port}");
    let hosts = format!("{host},{host}");
    let run = |option: &str| {
        let mut args = vec!["ssh", "--hosts", &hosts, "-o", option];
        let common = common();
        args.extend(common.iter().map(String::as_str));
        args.extend(["--", "echo hi; cat"]);
        netkit(&args, b"INPUT\n", &[])
    };
    let out = run("StdinNull=yes");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.matches(" | hi\n").count(), 2, "{text}");
    assert!(!text.contains("INPUT"), "{text}");
    for (option, said) in [
        ("SessionType=none", "SessionType none"),
        ("SessionType=subsystem", "SessionType subsystem"),
        ("ForkAfterAuthentication=yes", "ForkAfterAuthentication yes"),
    ] {
        let out = run(option);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{option}: {err}");
        assert!(out.stdout.is_empty(), "{option}: {err}");
        assert!(
            err.contains(said)
                && err.contains("cannot be used with --hosts")
                && err.lines().count() == 1,
            "{option}: {err}"
        );
    }
}

/// Runs `command` on the test host twice (`--hosts H,H`) with stdin from `stdin`, within
/// `within`.
fn on_two_hosts_with_stdin(command: &str, stdin: Stdio, within: Duration) -> Output {
    let port = port().to_string();
    let user = env("NETKIT_TEST_SSH_USER");
    let host = format!("{user}@127.0.0.1:{port}");
    let mut args = vec!["ssh".to_owned(), "--hosts".into(), format!("{host},{host}")];
    args.extend(common());
    args.extend(["--".into(), command.into()]);
    netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_with_output_within(within)
}

#[test]
fn a_host_whose_command_stopped_reading_a_stdin_too_large_to_keep_is_told_its_own_status() {
    // A command that read what it wanted and exited is told its own exit status, as with one
    // host (and ssh, pssh, fabric): once netkit had read past 64 MiB, every host was turned
    // into "stdin was cut short", exit 255, for the rest of a pipe nobody read any more.
    let check = |out: &Output, said: &str| {
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{text}{err}");
        assert_eq!(text.matches(said).count(), 2, "{text}");
        assert!(
            !text.contains("cut short") && !err.contains("64 MiB"),
            "{text}{err}"
        );
        assert_eq!(text.matches("  ok\n").count(), 2, "{text}");
    };
    // 70 MB down a pipe, each host's command reading 10 bytes of it (then staying a second, so
    // that netkit is past 64 MiB before the hosts are done, however fast they are).
    let mut feeder = netkit_tests::Spawned::start(
        Command::new("sh")
            .args(["-c", "head -c 70000000 /dev/zero"])
            .stdout(Stdio::piped()),
    );
    let piped = Stdio::from(feeder.stdout.take().unwrap());
    let out = on_two_hosts_with_stdin(
        "head -c 10 | wc -c; sleep 1",
        piped,
        Duration::from_secs(60),
    );
    check(&out, " | 10\n");
    drop(feeder);
    // `yes |`, which never ends: netkit ends all the same, once the hosts are done.
    let mut yes = netkit_tests::Spawned::start(Command::new("yes").stdout(Stdio::piped()));
    let piped = Stdio::from(yes.stdout.take().unwrap());
    let out = on_two_hosts_with_stdin("head -c 2", piped, Duration::from_secs(60));
    check(&out, " | y\n");
    drop(yes);
    // A command that never reads stdin and was still running when netkit stopped at 64 MiB
    // did not reach the cut either.
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let out = on_two_hosts_with_stdin("sleep 1; echo slept", zero.into(), Duration::from_secs(60));
    check(&out, " | slept\n");
}

#[test]
fn a_stdin_too_large_to_keep_fails_the_hosts_that_read_to_its_end_in_bounded_memory() {
    // `< /dev/zero` took 2.7 GB in 6 s: stdin is kept for the hosts to come, up to 64 MiB.
    let port = port().to_string();
    let user = env("NETKIT_TEST_SSH_USER");
    let host = format!("{user}@127.0.0.1:{port}");
    let mut args = vec!["ssh".to_owned(), "--hosts".into(), format!("{host},{host}")];
    args.extend(common());
    args.extend(["--".into(), "wc -c".into()]);
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .stdin(Stdio::from(zero))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    // A host's failure, as any other: 1 (255 is for netkit's own errors).
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("2 hosts got only the first part of stdin")
            && err.contains("stdin is over 64 MiB")
            && err.lines().count() == 1,
        "{err}"
    );
    // What `wc -c` made of the first 64 MiB is no success (the table said ok).
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(" | 67108864\n").count(), 2, "{text}");
    assert_eq!(text.matches("stdin was cut short").count(), 2, "{text}");
    // A file is known to be too large before any host starts: each host's `cat > FILE`
    // wrote its first 64 MiB.
    let big = work_dir().join("ssh-hosts-stdin-65m");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(65 << 20))
        .unwrap();
    let out = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .stdin(Stdio::from(std::fs::File::open(&big).unwrap()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(255), &b""[..]),
        "{err}"
    );
    assert!(err.contains("stdin is over 64 MiB"), "{err}");
}

#[test]
fn many_hosts_lines_are_whole_in_one_stream_and_a_reader_gone_is_141() {
    let user = env("NETKIT_TEST_SSH_USER");
    let host = format!("{user}@127.0.0.1:{}", port());
    let many = |command: &str, redirect: &str| {
        let mut line = vec![
            netkit_bin().display().to_string(),
            "ssh".into(),
            "-n".into(),
            "--hosts".into(),
            [host.as_str(); 4].join(","),
        ];
        line.extend(common());
        line.extend(["--".into(), format!("'{command}'"), redirect.into()]);
        let out = Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {}", line.join(" "))])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // stdout and stderr in one place (`2>&1`, a terminal): four hosts done at once tore
    // each other's lines (`HOST | HOST | 17`).
    for _ in 0..3 {
        let (code, text) = many("seq 1 300; seq 1 300 >&2", "2>&1");
        assert_eq!(code, Some(0), "{text}");
        let torn: Vec<&str> = text
            .lines()
            .filter(|line| {
                let number = line.strip_prefix(&format!("{host} | "));
                number.is_none_or(|n| n.parse::<u32>().is_err())
                    && !line.is_empty()
                    && !line.starts_with("host ")
                    && !line.ends_with("  ok")
            })
            .collect();
        assert!(torn.is_empty(), "{torn:?}");
    }
    // Whoever read the output went: 141 as with one host, where the run said 0 and every
    // host's failure was lost to a `pipefail` script.
    let (code, _) = many("seq 1 300000; exit 3", "| head -1");
    assert_eq!(code, Some(141));
}

#[test]
fn an_empty_hosts_list_is_refused_not_read_as_one_destination() {
    // `--hosts "$HOSTS"` with a script's empty list took the command's first word for DEST:
    // here the test sshd, run as a plain ssh, --json dropped. pssh refuses an empty -H.
    for list in ["", ",,,", "  "] {
        let out = ssh_with(&["--hosts", list, "--json"], &["echo", "ran"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{list:?}: {err}");
        assert!(out.stdout.is_empty(), "{list:?}");
        assert_eq!(err, "netkit: error: --hosts names no host\n", "{list:?}");
    }
}

#[test]
fn many_hosts_summary_and_json() {
    let port = port().to_string();
    let closed = free_port();
    let user = env("NETKIT_TEST_SSH_USER");
    let hosts =
        format!("{user}@127.0.0.1:{port},{user}@127.0.0.1:{closed},{user}@127.0.0.1:{port}");
    let mut args = vec!["ssh".to_owned(), "--hosts".into(), hosts, "--json".into()];
    args.extend(common());
    args.extend(["--".into(), "echo".into(), "hello".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = netkit(&args, b"", &[]);
    assert_eq!(out.status.code(), Some(1), "one host failed");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = doc.as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["stdout"], "hello\n");
    assert_eq!(
        results[0]["host"],
        format!("{user}@127.0.0.1:{port}"),
        "as given"
    );
    assert_eq!(results[0]["exit_code"], 0);
    assert!(results[1]["exit_code"].is_null() && results[1]["signal"].is_null());
    assert!(
        results[1]["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect")
    );
    assert_eq!(results[2]["ok"], true);
    // Forwards and terminals are one session's: with many hosts they are refused, not
    // passed over without a word.
    for flag in [&["-L", "9:127.0.0.1:9"][..], &["-t"], &["-N"]] {
        let mut args = vec!["ssh", "--hosts", "127.0.0.1"];
        args.extend(flag);
        args.extend(["--", "true"]);
        let out = netkit(&args, b"", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(255) && err.contains("cannot be used with"),
            "{flag:?}: {err}"
        );
    }
    // A command killed by a signal has no exit code.
    let mut args = vec![
        "ssh".to_owned(),
        "--hosts".into(),
        format!("{user}@127.0.0.1:{port}"),
        "--json".into(),
    ];
    args.extend(common());
    args.extend(["--".into(), "kill -TERM $$".into()]);
    let out = netkit(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
        &[],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&doc[0]["exit_code"], &doc[0]["signal"], &doc[0]["ok"]),
        (
            &serde_json::Value::Null,
            &serde_json::json!("TERM"),
            &serde_json::json!(false)
        ),
        "{doc}"
    );

    let file = work_dir().join("ssh-hosts.txt");
    std::fs::write(
        &file,
        // With Notepad's byte-order mark, which was read as part of a host.
        format!("\u{feff}# web\n{user}@127.0.0.1:{port}  # the first\n\n{user}@127.0.0.1:{port}\n"),
    )
    .unwrap();
    let mut args = vec![
        "ssh".to_owned(),
        "--hosts-file".into(),
        file.display().to_string(),
    ];
    args.extend(common());
    args.extend(["--".into(), "echo".into(), "line".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = netkit(&args, b"", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("127.0.0.1:{port} | line")), "{text}");
    assert!(text.contains("status") && text.contains(" ok"), "{text}");
}

fn sftp(args: &[&str]) -> Output {
    sftp_fed(args, b"")
}

/// `netkit sftp` with `stdin` on its standard input.
fn sftp_fed(args: &[&str], stdin: &[u8]) -> Output {
    let port = port().to_string();
    let mut all = vec![args[0], "-P", &port];
    let common = common();
    all.extend(common.iter().map(String::as_str));
    all.extend_from_slice(&args[1..]);
    let mut full = vec!["sftp"];
    full.extend(all);
    netkit(&full, stdin, &[])
}

/// `netkit ARGS` with its address space held to 1.5 GB, as a small machine's memory would
/// hold it.
fn netkit_in_little_memory(args: &[&str]) -> Output {
    Command::new("sh")
        .args(["-c", "ulimit -v 1500000 && exec \"$0\" \"$@\""])
        .arg(netkit_bin())
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_hosts_file_or_batch_that_never_ends_is_refused_at_a_cap() {
    // Read whole: /dev/zero grew past 2 GB ("out of memory"); `sftp -b /dev/zero` read one
    // line with no end until an allocation of 4 GiB failed and the process aborted (134).
    let out = netkit_in_little_memory(&["ssh", "--hosts-file", "/dev/zero", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.starts_with("netkit: error: /dev/zero: ") && err.contains("64 MiB"),
        "{err}"
    );
    let port = port().to_string();
    let mut args = vec!["sftp", "-b", "/dev/zero", "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let dest = dest();
    args.push(&dest);
    let out = netkit_in_little_memory(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("longer than 64 KiB"), "{err}");
}

#[test]
fn sftp_lcd_tilde_without_home_is_the_password_databases_home() {
    let out = Command::new(netkit_bin())
        .args(["sftp", "-P", &port().to_string()])
        .args(common())
        .arg(dest())
        .env_remove("HOME")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(b"lcd ~\nlpwd\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let home = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .dir;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&home.display().to_string()),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_batch_command_missing_its_arguments_names_them() {
    // The session kept clap's first line: "the following required arguments were not
    // provided:", naming nothing.
    let port = port().to_string();
    let mut args = vec!["sftp", "-b", "-", "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let dest = dest();
    args.push(&dest);
    let out = netkit(&args, b"rename\n", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("were not provided: <"), "{err}");
}

#[test]
fn sftp_chown_and_chgrp_as_one_operation() {
    let base = remote_dir("sftp-chown");
    let user = std::fs::metadata(&base).unwrap();
    let owned = base.join("owned");
    std::fs::create_dir_all(&owned).unwrap();
    std::os::unix::fs::chown(&owned, Some(user.uid()), Some(0)).unwrap();
    let remote = format!("{}:{}", dest(), owned.display());
    ok(sftp(&["chgrp", &user.gid().to_string(), &remote]));
    ok(sftp(&["chown", &user.uid().to_string(), &remote]));
    let now = std::fs::metadata(&owned).unwrap();
    assert_eq!((now.uid(), now.gid()), (user.uid(), user.gid()));
    // Giving it away is the server's to refuse.
    let out = sftp(&["chown", "0", &remote]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied") && err.lines().count() == 1,
        "{err}"
    );
    let out = sftp(&["chgrp", "staff", &remote]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sftp_takes_a_host_in_brackets_after_a_user_as_scp_does() {
    // `user@[::1]:PATH`: the colons inside the brackets are the address's (IPv4 here: the
    // test sshd listens there only, and the brackets are read the same way).
    let base = remote_dir("sftp-brackets");
    std::fs::write(base.join("seen.txt"), "x").unwrap();
    let user = env("NETKIT_TEST_SSH_USER");
    let bracketed = format!("{user}@[127.0.0.1]");
    let out = sftp(&["ls", &format!("{bracketed}:{}", base.display())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "seen.txt\n");
    // With IPv6, whose colons were taken for the path's (sshd is not there: a connection
    // error, not a bad destination).
    let out = sftp(&["ls", &format!("{user}@[::1]:{}", base.display())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("::1") && !err.contains("bad"), "{err}");
    // A session's destination without a path: the host alone, a bare IPv6 address too.
    let port = port().to_string();
    let common = common();
    let (v6_user, bare_v6_user) = (format!("{user}@[::1]"), format!("{user}@::1"));
    for target in [bracketed.as_str(), "::1", "[::1]", &v6_user, &bare_v6_user] {
        let mut args = vec!["sftp", "-b", "-", "-P", &port];
        args.extend(common.iter().map(String::as_str));
        args.push(target);
        let out = netkit(&args, b"pwd\n", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        if target.contains("::1") {
            // Read as a host (sshd is not there): a connection error, not a bad path.
            assert!(err.contains("::1") && !err.contains("bad"), "{err}");
        } else {
            assert_eq!(out.status.code(), Some(0), "{err}");
            assert!(String::from_utf8_lossy(&out.stdout).contains("Remote working directory"));
        }
    }
    // Unbracketed before a path, the address's colons cannot be told from the path's: said
    // so (it named "user@" as the host), a bad argument as any bad destination.
    let out = sftp(&["get", &format!("{user}@::1:/etc/hostname"), "."]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("goes in brackets"), "{err}");
    let out = sftp(&["get", &format!("{user}@bad host:/x"), "."]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
}

#[test]
fn sftp_session_names_an_unbracketed_ipv6_path_as_typed_with_the_bracket_hint() {
    // The session form wrapped `::1:/tmp` in brackets when it did not parse, and refused the
    // rewritten "[::1:/tmp]:" (no hint, and text never typed); the one-shot forms say this.
    let (user, port) = (env("NETKIT_TEST_SSH_USER"), port().to_string());
    for dest in ["::1:/tmp".to_string(), format!("{user}@::1:/tmp")] {
        let out = netkit(&["sftp", "-b", "-", "-P", &port, &dest], b"pwd\n", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(
            err,
            format!(
                "netkit: error: bad remote path {dest:?}: an IPv6 address goes in brackets, \
                 [user@][::1]:PATH\n"
            )
        );
    }
}

#[test]
fn sftp_bad_connection_options_are_bad_arguments_exit_2() {
    // sftp's --help says 2 for bad arguments; a bad -o, -c, -m, -J or -F exited 1, as a
    // connection failure does. The session form (no operation) too.
    let user = env("NETKIT_TEST_SSH_USER");
    let remote = format!("{user}@127.0.0.1:/");
    let missing = work_dir().join("sftp-no-such-config");
    let missing = missing.to_str().unwrap();
    for flags in [
        &["-o", "Bogus=1"][..],
        &["-o", "Port=abc"],
        &["-o", "StrictHostKeyChecking=maybe"],
        &["-c", "nosuchcipher"],
        &["-m", "nosuchmac"],
        &["-J", ""],
        &["-F", missing],
    ] {
        let mut args = vec!["ls"];
        args.extend(flags);
        args.push(&remote);
        let out = sftp(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
    }
    let port = port().to_string();
    let out = netkit(
        &["sftp", "-P", &port, "-o", "Bogus=1", &dest()],
        b"pwd\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // A connection failure stays 1.
    let closed = free_port().to_string();
    let out = netkit(
        &["sftp", "ls", "-P", &closed, &format!("{user}@127.0.0.1:/")],
        b"",
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn sftp_ls_lists_a_directory_named_with_wildcard_characters_as_sftp() {
    let base = remote_dir("sftp-ls-brackets");
    for (dir, file) in [("a[1]", "f.txt"), ("b[x", "g.txt"), ("c", "h.txt")] {
        std::fs::create_dir_all(base.join(dir)).unwrap();
        std::fs::write(base.join(dir).join(file), "x").unwrap();
    }
    let status = Command::new("chown")
        .args(["-R", &format!("{}:", env("NETKIT_TEST_SSH_USER"))])
        .arg(&base)
        .status()
        .unwrap();
    assert!(status.success());
    // A pattern that is its own name, one no pattern at all (`[` unclosed), and one
    // matching a single directory: each lists the directory's contents.
    std::os::unix::fs::symlink("c", base.join("ld")).unwrap();
    for (path, listed) in [
        ("a[1]", "f.txt\n"),
        ("b[x", "g.txt\n"),
        ("[c]", "h.txt\n"),
        ("l[d]", "h.txt\n"),
    ] {
        let out = sftp(&["ls", &format!("{}:{}/{path}", dest(), base.display())]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{path}: {err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), listed, "{path}");
    }
}

#[test]
fn sftp_is_safe_with_what_others_can_put_on_the_server() {
    let base = remote_dir("sftp-hostile");
    let user = std::fs::metadata(&base).unwrap();
    let owned = |path: &Path| {
        std::os::unix::fs::lchown(path, Some(user.uid()), Some(user.gid())).unwrap();
    };
    let remote = |p: &str| format!("{}:{}/{p}", dest(), base.display());
    let local = work_dir().join("sftp-hostile-local");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local).unwrap();
    // Setuid, setgid and sticky bits are not carried by -p either way, as sftp drops them.
    let suid = base.join("suid.sh");
    std::fs::write(&suid, "#!/bin/sh\n").unwrap();
    owned(&suid);
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    ok(sftp(&[
        "get",
        "-p",
        &remote("suid.sh"),
        local.to_str().unwrap(),
    ]));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&local.join("suid.sh")), 0o755);
    let mine = local.join("mine.sh");
    std::fs::write(&mine, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o2755)).unwrap();
    ok(sftp(&[
        "put",
        "-p",
        mine.to_str().unwrap(),
        &remote("mine.sh"),
    ]));
    assert_eq!(mode(&base.join("mine.sh")), 0o755);
    // A name with terminal escapes is listed as sftp lists it, escaped.
    let escape = base.join("f\x1b[2Jforged\x07");
    std::fs::write(&escape, "").unwrap();
    owned(&escape);
    let out = sftp(&["ls", &remote("")]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !listed.contains('\x1b') && !listed.contains('\x07'),
        "{listed:?}"
    );
    assert!(listed.contains("f\\033[2Jforged\\007"), "{listed:?}");
    // So is such a name in an error or a warning.
    let out = sftp(&["get", &remote("g\x1b]0;title\x07"), local.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('\x1b') && err.contains("g\\033]0;title\\007"),
        "{err:?}"
    );
    // And in a session's errors (commands piped in, without -b: it goes on past them).
    let line = format!("get \"{}/g\x1b]0;title\x07\"\n", base.display());
    let port = port().to_string();
    let mut args = vec!["sftp", "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let target = dest();
    args.push(&target);
    let out = netkit(&args, line.as_bytes(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('\x1b') && err.contains("g\\033]0;title\\007"),
        "{err:?}"
    );
    // A link planted at the upload's temporary name is not written through.
    let victim = base.join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    owned(&victim);
    let planted = base.join(".up.txt.netkit-upload");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    owned(&planted);
    let upload = local.join("up.txt");
    std::fs::write(&upload, "uploaded\n").unwrap();
    ok(sftp(&["put", upload.to_str().unwrap(), &remote("up.txt")]));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let up = base.join("up.txt");
    assert!(std::fs::symlink_metadata(&up).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(&up).unwrap(), "uploaded\n");
    // Another user's file at that name in a shared (sticky) directory, which cannot be
    // removed, does not stop the upload: it goes by a name of its own.
    let shared = base.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let squatter = shared.join(".up.txt.netkit-upload");
    std::fs::write(&squatter, "root's\n").unwrap();
    let out = sftp(&["put", upload.to_str().unwrap(), &remote("shared/up.txt")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(shared.join("up.txt")).unwrap(),
        "uploaded\n"
    );
    assert_eq!(std::fs::read_to_string(&squatter).unwrap(), "root's\n");
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 2, "no litter");
    // Nor is it resumed from, read-only or writable by all: the upload would start with
    // its bytes, and stay its owner's.
    for mode in [0o644, 0o666] {
        std::fs::set_permissions(&squatter, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::remove_file(shared.join("up.txt")).unwrap();
        let out = sftp(&[
            "put",
            "-a",
            upload.to_str().unwrap(),
            &remote("shared/up.txt"),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{mode:o}: {err}");
        let up = shared.join("up.txt");
        assert_eq!(
            std::fs::read_to_string(&up).unwrap(),
            "uploaded\n",
            "{mode:o}"
        );
        assert_ne!(std::fs::metadata(&up).unwrap().uid(), 0, "{mode:o}");
        assert_eq!(std::fs::read_to_string(&squatter).unwrap(), "root's\n");
        assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 2, "no litter");
    }
    // A file the server's user may not write is refused, as sftp refuses it.
    let read_only = base.join("read-only.txt");
    std::fs::write(&read_only, "kept\n").unwrap();
    owned(&read_only);
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = sftp(&["put", upload.to_str().unwrap(), &remote("read-only.txt")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ermission denied") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&read_only).unwrap(), "kept\n");
    // The same for a download resumed into a local part that is a link.
    let local_victim = local.join("local-victim.txt");
    std::fs::write(&local_victim, "mine\n").unwrap();
    std::os::unix::fs::symlink(&local_victim, local.join("up.txt.part")).unwrap();
    std::fs::remove_file(&upload).unwrap();
    // (Not read through, it is no part of the file: fetched whole beside it.)
    ok(sftp(&[
        "get",
        "-a",
        &remote("up.txt"),
        local.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read_to_string(&local_victim).unwrap(), "mine\n");
    // -vvv is taken, as ssh and sftp take it.
    ok(sftp(&["ls", "-vvv", &remote("")]));
}

#[test]
fn sftp_dash_is_standard_input_and_output() {
    // As curl's `-T -` and `-o -`.
    let base = remote_dir("sftp-dash");
    let remote = |p: &str| format!("{}:{}/{p}", dest(), base.display());
    let mut data = vec![0u8; (3 << 20) + 17];
    rand::rng().fill_bytes(&mut data);
    ok(sftp_fed(&["put", "-", &remote("in.bin")], &data));
    assert!(std::fs::read(base.join("in.bin")).unwrap() == data);
    let out = sftp(&["get", &remote("in.bin"), "-"]);
    ok(out.clone());
    assert!(out.stdout == data);
    // A wildcard's matches one after the other, as cat prints them.
    std::fs::write(base.join("a.txt"), "one\n").unwrap();
    std::fs::write(base.join("b.txt"), "two\n").unwrap();
    let out = sftp(&["get", &remote("*.txt"), "-"]);
    ok(out.clone());
    assert_eq!(out.stdout, b"one\ntwo\n");
    assert!(!Path::new("-").exists());
    // Standard input has no name to keep in a directory.
    let out = sftp_fed(&["put", "-", &remote("")], b"x");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a directory") && err.lines().count() == 1,
        "{err}"
    );
    // A closed standard input (`<&-`, which Rust makes /dev/null) emptied the file, exit 0;
    // an empty pipe still means an empty file.
    let port = port().to_string();
    let mut args = vec!["sftp", "put", "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let target = remote("in.bin");
    args.extend(["-", &target]);
    let out = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_with_output();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(std::fs::read(base.join("in.bin")).unwrap() == data);
    ok(sftp_fed(&["put", "-", &remote("in.bin")], b""));
    assert_eq!(std::fs::metadata(base.join("in.bin")).unwrap().len(), 0);
}

/// Fails the test unless `out` is of a command that succeeded.
fn ok(out: Output) {
    assert!(
        out.status.success(),
        "{:?} {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn sftp_put_get_ls_mkdir_mv_rm() {
    let base = remote_dir("sftp-cli");
    let remote = |p: &str| format!("{}:{}/{p}", dest(), base.display());
    let local = work_dir().join("sftp-cli-up.txt");
    std::fs::write(&local, "uploaded by netkit\n").unwrap();
    ok(sftp(&["mkdir", "-p", &remote("a/b")]));
    // -f: each file flushed to disk first (fsync@openssh.com for the upload), as sftp -f.
    ok(sftp(&[
        "put",
        "-f",
        local.to_str().unwrap(),
        &remote("a/b"),
    ]));
    assert_eq!(
        std::fs::read_to_string(base.join("a/b/sftp-cli-up.txt")).unwrap(),
        "uploaded by netkit\n"
    );
    let out = sftp(&["ls", "-l", &remote("a/b")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("-rw-r--r--") && text.contains("sftp-cli-up.txt"),
        "{text}"
    );
    // The owner and group as numbers, as sftp's ls -n.
    let meta = std::fs::metadata(base.join("a/b/sftp-cli-up.txt")).unwrap();
    let owner = format!("-rw-r--r-- {:<8} {:<8} ", meta.uid(), meta.gid());
    assert!(text.contains(&owner), "{owner:?} in {text}");
    // The date as `ls -l --time-style=long-iso` shows it, in the local time zone.
    let date = Command::new("date")
        .args(["+%Y-%m-%d"])
        .output()
        .expect("date");
    let today = String::from_utf8_lossy(&date.stdout).trim().to_owned();
    assert!(text.contains(&format!(" {today} ")), "{today}: {text}");
    // mv into a directory keeps the name, as mv does.
    ok(sftp(&[
        "mv",
        &remote("a/b/sftp-cli-up.txt"),
        &format!("{}/a", base.display()),
    ]));
    ok(sftp(&[
        "mv",
        &remote("a/sftp-cli-up.txt"),
        &format!("{}/a/renamed.txt", base.display()),
    ]));
    // A second name of the same file changes nothing (it was removed, then "no such file").
    let at = |p: &str| format!("{}/{p}", base.display());
    ok(sftp(&[
        "mv",
        &remote("a/renamed.txt"),
        &at("a/./renamed.txt"),
    ]));
    let read = |p: &str| std::fs::read_to_string(base.join(p)).unwrap();
    assert_eq!(read("a/renamed.txt"), "uploaded by netkit\n");
    // Nothing in the way is removed by a rename that cannot be: a directory onto a file, a
    // file out of a directory we may not write. A file in the way of one that can is.
    std::fs::write(base.join("kept.txt"), "kept\n").unwrap();
    std::fs::create_dir(base.join("dir")).unwrap();
    std::fs::create_dir(base.join("ro")).unwrap();
    std::fs::write(base.join("ro/f"), "f\n").unwrap();
    std::fs::set_permissions(base.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    for (from, why) in [("dir", "in the way"), ("ro/f", "permission denied")] {
        let out = sftp(&["mv", &remote(from), &at("kept.txt")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{from}: {err}");
        assert!(
            err.contains(why) && err.lines().count() == 1,
            "{from}: {err}"
        );
        assert_eq!(read("kept.txt"), "kept\n", "{from}");
        assert_eq!(
            std::fs::read_dir(&base).unwrap().count(),
            4,
            "{from}: no litter"
        );
    }
    std::fs::write(base.join("new.txt"), "new\n").unwrap();
    ok(sftp(&["mv", &remote("new.txt"), &at("kept.txt")]));
    assert_eq!(read("kept.txt"), "new\n");
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 4, "no litter");
    // The file in the way of a name near NAME_MAX is moved aside under a short name.
    let long = "l".repeat(240);
    std::fs::write(base.join(&long), "old\n").unwrap();
    ok(sftp(&["mv", &remote("kept.txt"), &at(&long)]));
    assert_eq!(read(&long), "new\n");
    let back = work_dir().join("sftp-cli-back.txt");
    ok(sftp(&[
        "get",
        "--fsync",
        &remote("a/renamed.txt"),
        back.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "uploaded by netkit\n"
    );
    // -f is put's and get's (--fsync): `rm -f` read as "force" removed the file as rm, and a
    // missing one still failed. sftp's rm and mkdir take no -f either.
    for op in ["rm", "mkdir"] {
        let out = sftp(&[op, "-f", &remote("a/renamed.txt")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{op}: {err}");
        assert!(err.contains("'-f'") && err.lines().count() == 1, "{err}");
    }
    assert!(base.join("a/renamed.txt").is_file());
    ok(sftp(&["rm", &remote("a/renamed.txt")]));
    let out = sftp(&["get", &remote("a/renamed.txt"), back.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such file") && err.lines().count() == 1,
        "{err}"
    );
    // A local path that cannot be written is named as given, not as the `.part` beside it.
    ok(sftp(&[
        "put",
        local.to_str().unwrap(),
        &remote("a/again.txt"),
    ]));
    let nowhere = work_dir().join("sftp-cli-missing-dir/back.txt");
    let out = sftp(&["get", &remote("a/again.txt"), nowhere.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}: No such file", nowhere.display())) && !err.contains(".part"),
        "{err}"
    );
    let out = sftp(&["ls", "not-a-remote-path"]);
    assert_eq!(out.status.code(), Some(2));
    // chmod MODE and rmdir, as sftp has them.
    ok(sftp(&["chmod", "640", &remote("a/again.*")]));
    let mode = std::fs::metadata(base.join("a/again.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
    let out = sftp(&["chmod", "u+x", &remote("a/again.txt")]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(sftp(&["mkdir", &remote("empty")]));
    ok(sftp(&["rmdir", &remote("empty")]));
    assert!(!base.join("empty").exists());
}

#[test]
fn a_recursive_put_that_cannot_read_a_file_fails_as_sftp() {
    // A file under a path past PATH_MAX is listed but cannot be read by its name: not sent,
    // and said to have failed, as sftp's lstat failing fails the put (it was skipped, exit 0).
    let local = work_dir().join("sftp-too-deep");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("first"), "sent\n").unwrap();
    let deep = "d".repeat(200);
    let made = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for i in $(seq 24); do mkdir {deep} && cd -P {deep} || exit 1; done; echo lost > f"
        ))
        .current_dir(&local)
        .status()
        .unwrap();
    assert!(made.success());
    let base = remote_dir("sftp-too-deep");
    let remote = format!("{}:{}/up", dest(), base.display());
    let out = sftp(&["put", "-r", local.to_str().unwrap(), &remote]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("could not be copied"), "{err}");
    assert_eq!(
        std::fs::read_to_string(base.join("up/first")).unwrap(),
        "sent\n"
    );
    std::fs::remove_dir_all(&local).unwrap();
}

#[test]
fn recursive_sftp_skips_what_is_neither_file_nor_directory_as_sftp() {
    // A FIFO would block the open forever, a dangling link cannot be read, a link back up
    // the tree would be copied forever: each is left out with a warning, and the rest of the
    // tree is copied, each way.
    let tree = |dir: &std::path::Path| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("file"), "kept\n").unwrap();
        std::os::unix::fs::symlink("file", dir.join("link")).unwrap();
        std::os::unix::fs::symlink("/no/such/target", dir.join("dangling")).unwrap();
        std::os::unix::fs::symlink("..", dir.join("up")).unwrap();
        let fifo = Command::new("mkfifo")
            .arg(dir.join("fifo"))
            .status()
            .unwrap();
        assert!(fifo.success());
    };
    let check = |out: Output, copied: &std::path::Path| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("fifo: not a regular file; skipped"), "{err}");
        assert!(
            err.contains("dangling: ") && err.contains("; skipped"),
            "{err}"
        );
        assert!(err.contains("up: a link to a directory"), "{err}");
        let names = |d: &std::path::Path| {
            let mut names: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(copied), ["file", "link"]);
        assert_eq!(
            std::fs::read_to_string(copied.join("link")).unwrap(),
            "kept\n"
        );
    };
    let local = work_dir().join("sftp-skip-local");
    let _ = std::fs::remove_dir_all(&local);
    tree(&local);
    let base = remote_dir("sftp-skip");
    let remote = format!("{}:{}/up", dest(), base.display());
    check(
        sftp(&["put", "-r", local.to_str().unwrap(), &remote]),
        &base.join("up"),
    );

    let served = base.join("served");
    tree(&served);
    let status = Command::new("chown")
        .args(["-R", "-h", &format!("{}:", env("NETKIT_TEST_SSH_USER"))])
        .arg(&served)
        .status()
        .unwrap();
    assert!(status.success());
    let back = work_dir().join("sftp-skip-back");
    let _ = std::fs::remove_dir_all(&back);
    let remote = format!("{}:{}", dest(), served.display());
    check(sftp(&["get", "-r", &remote, back.to_str().unwrap()]), &back);
    // Named, or matched by a wildcard, a FIFO is refused at once (it was read until the
    // timeout), and the other matches are fetched, as sftp does.
    let matched = work_dir().join("sftp-skip-matched");
    let _ = std::fs::remove_dir_all(&matched);
    std::fs::create_dir_all(&matched).unwrap();
    let started = std::time::Instant::now();
    let pattern = format!("{}:{}/fi*", dest(), served.display());
    let out = sftp(&[
        "get",
        "--timeout",
        "20",
        &pattern,
        matched.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("fifo: not a regular file"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    assert_eq!(
        std::fs::read_to_string(matched.join("file")).unwrap(),
        "kept\n"
    );
}

/// An empty remote directory and an empty local one, both named `name`.
fn fresh_dirs(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let local = work_dir().join(name);
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local).unwrap();
    (remote_dir(name), local)
}

#[test]
fn sftp_prompt_edits_lines_and_keeps_a_history() {
    // A terminal, as `script` gives one (util-linux, on every Debian and Ubuntu).
    let dir = work_dir().join("sftp-prompt");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut line = vec![netkit_bin().display().to_string(), "sftp".into()];
    line.extend(["-P".into(), port().to_string()]);
    line.extend(common());
    line.push(dest());
    let quoted: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let mut child = netkit_tests::Spawned::start(
        Command::new("script")
            .args(["-qfec", &quoted.join(" "), "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut keys = child.stdin.take().unwrap();
    let mut screen = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut screen, &mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // Reads the terminal until `done` holds of what it showed (20 s at most).
    let mut shown = Vec::new();
    let mut until = |done: &dyn Fn(&str) -> bool| loop {
        let screen = String::from_utf8_lossy(&shown);
        if done(&screen) {
            break screen.len();
        }
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(bytes) => shown.extend(bytes),
            Err(e) => panic!("{e}: {screen}"),
        }
    };
    // An empty prompt drawn whole, so the editor reads keys raw (the terminal's own line
    // editing would take an arrow's bytes as text): the prompt, the cursor put after it, the
    // end of the synchronized update (rustyline's drawing, pinned by Cargo.lock).
    let fresh = |screen: &str| screen.ends_with("sftp> \r\x1b[6C\x1b[?2026l");
    let mut seen = until(&fresh);
    // A typo rubbed out; the line back with the up arrow, its last letter changed; Tab
    // completing a local path, then a remote one; two lines typed ahead at once.
    let d = dir.display();
    let remote = remote_dir("sftp-prompt");
    std::fs::write(remote.join("only-one.txt"), "x").unwrap();
    let r = remote.display();
    let steps: [(String, &dyn Fn() -> bool); 5] = [
        (format!("lmkdir {d}/ab\x7fc\r"), &|| dir.join("ac").exists()),
        ("\x1b[A\x7fd\r".into(), &|| dir.join("ad").exists()),
        (format!("lmkdir {d}/ac\tx\r"), &|| dir.join("ac/x").exists()),
        (format!("rename {r}/on\t {r}/moved.txt\r"), &|| {
            remote.join("moved.txt").exists()
        }),
        (format!("lmkdir {d}/t1\rlmkdir {d}/t2\r"), &|| {
            dir.join("t2").exists()
        }),
    ];
    for (typed, done) in steps {
        keys.write_all(typed.as_bytes()).unwrap();
        // Past what was shown before the keys: a prompt drawn after them.
        let before = seen;
        seen = until(&|screen| screen.len() > before && fresh(screen) && done());
    }
    keys.write_all(b"quit\r").unwrap();
    drop(keys);
    let out = child.wait_with_output();
    assert!(out.status.success(), "{out:?}");
    let mut made: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    made.sort();
    assert_eq!(made, ["ac", "ad", "t1", "t2"]);
    assert!(!remote.join("only-one.txt").exists());
}

#[test]
fn sftp_session_has_local_commands_links_and_resumes() {
    let (remote, local) = fresh_dirs("sftp-session-more");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(remote.join("data.bin"), &data).unwrap();
    // What an interrupted get left, its first 10,000 bytes: reget goes on from there.
    std::fs::write(local.join("data.bin.part"), &data[..10_000]).unwrap();
    // The user's own directory, in root's group for now.
    let user = std::fs::metadata(&remote).unwrap();
    let owned = remote.join("owned");
    std::fs::create_dir(&owned).unwrap();
    std::os::unix::fs::chown(&owned, Some(user.uid()), Some(0)).unwrap();
    let batch = local.join("batch");
    std::fs::write(
        &batch,
        format!(
            "lchdir {}\nchdir {}\nversion\nprogress\n!echo ran > bang.txt\nlmkdir made\nlls -d made\n\
             ln -s data.bin link.bin\nsymlink data.bin other-link.bin\nreget data.bin\n\
             get -P data.bin kept.bin\nchgrp {gid} owned\nchown {uid} owned\n\
             -chown 0 owned\n!exit 3\nln data.bin hard.bin\nversion\n",
            local.display(),
            remote.display(),
            gid = user.gid(),
            uid = user.uid(),
        ),
    )
    .unwrap();
    let mut args = vec!["sftp", "-b", batch.to_str().unwrap()];
    let port = port().to_string();
    args.extend(["-P", &port]);
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let target = dest();
    args.push(&target);
    let out = netkit(&args, b"", &[]);
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("sftp> version\nSFTP protocol version 3\n")
            // A batch starts with the meter off, as sftp -b: `progress` turns it on.
            && stdout.contains("sftp> progress\nProgress meter enabled\n")
            && stdout.contains("sftp> lls -d made\nmade\n"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(local.join("bang.txt")).unwrap(),
        "ran\n"
    );
    assert!(local.join("made").is_dir());
    assert_eq!(
        std::fs::read_link(remote.join("link.bin")).unwrap(),
        std::path::Path::new("data.bin")
    );
    assert_eq!(
        std::fs::read_link(remote.join("other-link.bin")).unwrap(),
        std::path::Path::new("data.bin")
    );
    assert!(std::fs::read(local.join("data.bin")).unwrap() == data);
    // sftp's get -P is its -p: the time is kept.
    let modified = |p: &std::path::Path| std::fs::metadata(p).unwrap().mtime();
    assert_eq!(
        modified(&local.join("kept.bin")),
        modified(&remote.join("data.bin"))
    );
    // chgrp changed the group; chown of the owner alone kept it; giving it away was refused.
    let now = std::fs::metadata(&owned).unwrap();
    assert_eq!((now.uid(), now.gid()), (user.uid(), user.gid()));
    assert!(err.contains("owned: permission denied"), "{err}");
    // A failing local command is said and the batch goes on; a hard link ends it.
    assert!(err.contains("Shell exited with status 3"), "{err}");
    assert_eq!(out.status.code(), Some(1), "{stdout}{err}");
    assert!(err.contains("ln -s"), "{err}");
    assert_eq!(
        stdout.matches("SFTP protocol version").count(),
        1,
        "{stdout}"
    );
}

#[test]
fn sftp_ls_takes_sftps_flags() {
    let (dir, _) = fresh_dirs("sftp-ls-flags");
    std::fs::write(dir.join(".hidden"), "").unwrap();
    std::fs::write(dir.join("old.bin"), vec![0u8; 2048]).unwrap();
    let old = std::fs::File::options()
        .write(true)
        .open(dir.join("old.bin"))
        .unwrap();
    old.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_577_880_000))
        .unwrap();
    std::fs::write(dir.join("new.bin"), "12345").unwrap();
    let sub = remote_dir("sftp-ls-flags-sub");
    std::fs::create_dir_all(sub.join("deeper")).unwrap();
    std::fs::write(sub.join("in.txt"), "in").unwrap();
    let batch = format!(
        "cd {}\nls\nls -a\nls -lh\nls -t\nls -S\nls -Sr\nls ../sftp-ls-flags-sub\n\
         ls -l ../sftp-ls-flags-sub\nls ../sftp-ls-flags*\nls ../sftp-ls-flags-sub/in.txt\nhelp\n",
        dir.display()
    );
    let port = port().to_string();
    let mut args = vec!["sftp", "-b", "-", "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let target = dest();
    args.push(&target);
    let out = netkit(&args, batch.as_bytes(), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Dot files only with -a; -t newest first, -S largest first, -r the other way.
    // A directory's entries by the path a later `get` finds them by (a bare `in.txt`
    // fetched another file of that name), no `/` after a directory's name but for a
    // wildcard's matches, as sftp shows them.
    for listed in [
        "sftp> ls\nnew.bin\nold.bin\n",
        "sftp> ls -a\n.hidden\nnew.bin\nold.bin\n",
        "sftp> ls -t\nnew.bin\nold.bin\n",
        "sftp> ls -S\nold.bin\nnew.bin\n",
        "sftp> ls -Sr\nnew.bin\nold.bin\n",
        "sftp> ls ../sftp-ls-flags-sub\n../sftp-ls-flags-sub/deeper\n../sftp-ls-flags-sub/in.txt\n",
        " ../sftp-ls-flags-sub/in.txt\nsftp> ls ../sftp-ls-flags*\n../sftp-ls-flags/\n../sftp-ls-flags-sub/\n",
        "sftp> ls ../sftp-ls-flags-sub/in.txt\n../sftp-ls-flags-sub/in.txt\n",
    ] {
        assert!(text.contains(listed), "{listed:?} in {text}");
    }
    assert!(
        text.contains(" 2.0K 2020-01-01 ") && text.contains(" 5B "),
        "{text}"
    );
    // help lists the flags, and the commands read before the parser too.
    assert!(
        text.contains("ls       List: ls [-1afhlnrSt] [PATH]") && text.contains("\nreget    "),
        "{text}"
    );
    // The same flags after `netkit sftp ls`.
    let remote = format!("{}:{}", dest(), dir.display());
    let out = sftp(&["ls", "-1a", &remote]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        ".hidden\nnew.bin\nold.bin\n"
    );
}

#[test]
fn sftp_destination_naming_a_file_fetches_it_as_sftp_does() {
    let (base, local) = fresh_dirs("sftp-dest-file");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("wanted.txt"), "fetched\n").unwrap();
    let port = port().to_string();
    let mut args: Vec<String> = vec!["sftp".into(), "-P".into(), port];
    args.extend(common());
    let target = |path: &str| format!("{}:{}/{path}", dest(), base.display());
    // Into the current directory under its own name; no session is started.
    let out = Command::new(netkit_bin())
        .args(&args)
        .arg(target("wanted.txt"))
        .current_dir(&local)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(local.join("wanted.txt")).unwrap(),
        "fetched\n"
    );
    // To the path given second.
    let to = local.join("renamed.txt");
    let mut with_local: Vec<&str> = args.iter().map(String::as_str).collect();
    let from = target("wanted.txt");
    with_local.extend([from.as_str(), to.to_str().unwrap()]);
    let out = netkit(&with_local, b"", &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read_to_string(&to).unwrap(), "fetched\n");
    // A missing file is an error; a directory is where the session starts.
    let mut missing: Vec<&str> = args.iter().map(String::as_str).collect();
    let absent = target("absent.txt");
    missing.push(&absent);
    let out = netkit(&missing, b"pwd\n", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("absent.txt") && err.lines().count() == 1,
        "{err}"
    );
    let mut dir: Vec<&str> = args.iter().map(String::as_str).collect();
    let there = target("");
    dir.push(&there);
    let out = netkit(&dir, b"pwd\n", &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Remote working directory: {}\n", base.display())
    );
}

#[test]
fn sftp_session_runs_commands_over_one_connection_as_sftp_does() {
    let (base, local) = fresh_dirs("sftp-session");
    std::fs::write(local.join("up.txt"), "by batch\n").unwrap();
    let made = base.join("made");
    let batch = local.join("batch");
    std::fs::write(
        &batch,
        format!(
            "lcd {}\n-mkdir {}\n# a comment\ncd {}\nput up.txt\nmput up.txt 'with space.txt'\n\
             ls\nmget up.txt back.txt\nrename up.txt moved.txt\nchmod 600 moved.txt\n@pwd\n\
             mkdir sub\n-rename moved.txt sub\nrm nonexistent\nmkdir not-reached\n",
            local.display(),
            made.display(),
            made.display()
        ),
    )
    .unwrap();
    let port = port().to_string();
    let common = common();
    let session = |first: &[&str], target: &str, stdin: &[u8]| {
        let mut args = vec!["sftp"];
        args.extend_from_slice(first);
        args.extend(["-P", &port]);
        args.extend(common.iter().map(String::as_str));
        args.push(target);
        netkit(&args, stdin, &[])
    };
    // A batch stops at the first command that fails, with its error.
    let out = session(&["-b", batch.to_str().unwrap()], &dest(), b"");
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{err}");
    assert!(stdout.contains("sftp> put up.txt\n"), "{stdout}");
    // A `-` line is echoed as written, as sftp echoes it.
    assert!(stdout.contains("sftp> -rename moved.txt sub\n"), "{stdout}");
    assert!(
        stdout.contains("sftp> ls\nup.txt\nwith space.txt\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Remote working directory: {}\n", made.display()))
            && !stdout.contains("sftp> pwd"),
        "@ keeps the line from being echoed: {stdout}"
    );
    // rename onto a directory fails, as with sftp (mv moves into it).
    assert!(
        err.contains("nonexistent")
            && err.contains("a directory is in the way")
            && err.lines().count() == 2,
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(made.join("moved.txt")).unwrap(),
        "by batch\n"
    );
    assert!(!made.join("sub/moved.txt").exists());
    assert_eq!(
        std::fs::read_to_string(made.join("with space.txt")).unwrap(),
        "by batch\n"
    );
    assert_eq!(
        std::fs::read_to_string(local.join("back.txt")).unwrap(),
        "by batch\n"
    );
    let mode = std::fs::metadata(made.join("moved.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!made.join("not-reached").exists());
    // From stdin, starting in host:DIR: a failure is said and the session goes on; quit
    // ends it.
    let target = format!("{}:{}", dest(), made.display());
    std::fs::write(local.join("a.log"), "a\n").unwrap();
    std::fs::write(local.join("b.log"), "b\n").unwrap();
    let typed = format!(
        "rm nonexistent\nrm moved.txt\nfrob\nlcd {}\nput *.log\nput *.nothing\nls *.log\nquit\n\
         rm 'with space.txt'\n",
        local.display()
    );
    let typed = typed.as_bytes();
    let out = session(&[], &target, typed);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("nonexistent") && err.contains("frob"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\na.log\nb.log\n") || stdout.starts_with("a.log\nb.log\n"),
        "a relative pattern's matches shown relative, as sftp shows them: {stdout}"
    );
    assert!(!made.join("moved.txt").exists());
    assert!(made.join("with space.txt").exists());
    // A local wildcard names its matches, as sftp's put expands it.
    assert_eq!(std::fs::read_to_string(made.join("a.log")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(made.join("b.log")).unwrap(), "b\n");
    assert!(err.contains("*.nothing: no such file"), "{err}");
}

#[test]
fn a_file_of_several_that_fails_is_gone_past_as_sftp_goes_on() {
    // The first file that failed ended a wildcard's get (or a put of several): the rest were
    // never copied; sftp copies them and exits 1.
    use std::os::unix::fs::PermissionsExt as _;
    let remote = remote_dir("sftp-cli-go-past");
    let local = work_dir().join("sftp-cli-go-past");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(local.join("out")).unwrap();
    for name in ["a.log", "b.log", "c.log"] {
        std::fs::write(remote.join(name), name).unwrap();
    }
    // Root's, and closed to the test user the sshd runs as.
    std::fs::set_permissions(remote.join("b.log"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let pattern = format!("{}:{}/*.log", dest(), remote.display());
    let out = sftp(&["get", &pattern, local.join("out").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("b.log") && err.contains("1 file could not be copied"),
        "{err}"
    );
    assert_eq!(std::fs::read(local.join("out/a.log")).unwrap(), b"a.log");
    assert_eq!(std::fs::read(local.join("out/c.log")).unwrap(), b"c.log");
    // The same for a put of several, past a dangling link.
    let up = remote_dir("sftp-cli-go-past-up");
    std::fs::write(local.join("one.txt"), "one").unwrap();
    std::os::unix::fs::symlink("nowhere", local.join("gone.txt")).unwrap();
    std::fs::write(local.join("two.txt"), "two").unwrap();
    let target = format!("{}:{}", dest(), up.display());
    let files: Vec<String> = ["one.txt", "gone.txt", "two.txt"]
        .iter()
        .map(|n| local.join(n).display().to_string())
        .collect();
    let out = sftp(&["put", &files[0], &files[1], &files[2], &target]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("1 file could not be copied"), "{err}");
    assert_eq!(std::fs::read(up.join("two.txt")).unwrap(), b"two");
}

#[test]
fn in_a_session_quotes_and_backslashes_keep_wildcard_characters_plain_as_in_sftp() {
    let (remote, local) = fresh_dirs("sftp-quoted-wildcards");
    for name in [
        "star*", "star1", "keep1", "log[1]", "log1", "b[x", "a\\b", "trail ",
    ] {
        std::fs::write(remote.join(name), name).unwrap();
    }
    std::fs::create_dir(remote.join("e1")).unwrap();
    std::fs::create_dir(remote.join("e*")).unwrap();
    for name in ["a.txt", ".env", "report[1].txt", "report1.txt"] {
        std::fs::write(local.join(name), name).unwrap();
    }
    let batch = local.join("batch");
    std::fs::write(
        &batch,
        format!(
            "lcd {}\ncd {}\nrm \"star*\"\nrm log\\[1\\]\n-rm 'keep*'\nrmdir e*\nget b[x\n\
             get 'a\\b'\nmkdir up\nput * up\nput \"report[1].txt\" q1\nput report\\[1\\].txt q2\n\
             mkdir \"~\" # a comment, as in a shell\nput a.txt \"~/t.txt\"\nget trail\\ \n",
            local.display(),
            remote.display(),
        ),
    )
    .unwrap();
    let port = port().to_string();
    let mut args = vec!["sftp", "-b", batch.to_str().unwrap(), "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let target = dest();
    args.push(&target);
    let out = netkit(&args, b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Only the files named went: `star*` not `star1`, `log[1]` not `log1`, no `keep*` at
    // all (an error the `-` went past), the directory `e*` not `e1`.
    let left = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        left(&remote),
        [
            "a\\b", "b[x", "e1", "keep1", "log1", "q1", "q2", "star1", "trail ", "up", "~"
        ]
    );
    assert!(err.contains("keep*: no such file"), "{err}");
    assert_eq!(std::fs::read(local.join("b[x")).unwrap(), b"b[x");
    assert_eq!(std::fs::read(local.join("a\\b")).unwrap(), b"a\\b");
    // A name ending in a space, as Tab completion writes it, keeps its escaped space.
    assert_eq!(std::fs::read(local.join("trail ")).unwrap(), b"trail ");
    // `put *` leaves the dot file at home, as glob(3); a quoted or escaped `[1]` is the file
    // of that name, not report1.txt.
    assert_eq!(
        left(&remote.join("up")),
        [
            "a.txt",
            "a\\b",
            "b[x",
            "batch",
            "report1.txt",
            "report[1].txt"
        ]
    );
    // A quoted `~` is a name, not the home.
    assert_eq!(std::fs::read(remote.join("~/t.txt")).unwrap(), b"a.txt");
    for copy in ["q1", "q2"] {
        assert_eq!(std::fs::read(remote.join(copy)).unwrap(), b"report[1].txt");
    }
}

#[test]
fn sftp_wildcards_for_get_ls_and_rm() {
    let remote = remote_dir("sftp-cli-wildcards");
    let local = work_dir().join("sftp-cli-wildcards");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(local.join("in")).unwrap();
    std::fs::create_dir_all(local.join("out")).unwrap();
    let mut sources = Vec::new();
    for name in ["a.log", "b.log", "c.txt", ".hidden.log"] {
        let path = local.join("in").join(name);
        std::fs::write(&path, name).unwrap();
        sources.push(path.display().to_string());
    }
    let target = format!("{}:{}", dest(), remote.display());
    let mut put = vec!["put"];
    put.extend(sources.iter().map(String::as_str));
    put.push(&target);
    ok(sftp(&put));
    let pattern = format!("{}:{}/*.log", dest(), remote.display());
    let out_dir = local.join("out");
    ok(sftp(&["get", &pattern, out_dir.to_str().unwrap()]));
    let mut got: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["a.log", "b.log"],
        "a leading dot is matched only by a dot"
    );
    assert_eq!(std::fs::read(out_dir.join("b.log")).unwrap(), b"b.log");
    // A name with wildcard characters of its own: by its name when it matches nothing else
    // (as scp finds it), or with backslashes before them (as sftp takes it).
    std::fs::write(remote.join("report[1].txt"), b"report").unwrap();
    for name in ["report[1].txt", "report\\[1\\].txt"] {
        let _ = std::fs::remove_file(out_dir.join("report[1].txt"));
        let path = format!("{}:{}/{name}", dest(), remote.display());
        ok(sftp(&["get", &path, out_dir.to_str().unwrap()]));
        assert_eq!(
            std::fs::read(out_dir.join("report[1].txt")).unwrap(),
            b"report"
        );
    }
    std::fs::remove_file(remote.join("report[1].txt")).unwrap();
    // ls shows the matches by path, as sftp's ls and a shell's `ls DIR/*.log` show them.
    let out = sftp(&["ls", &pattern]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{0}/a.log\n{0}/b.log\n", remote.display())
    );
    // Without LOCAL, into the current directory (as sftp's get).
    let here = local.join("here");
    std::fs::create_dir_all(&here).unwrap();
    let one = format!("{}:{}/c.txt", dest(), remote.display());
    let out = Command::new(netkit_bin())
        .args(["sftp", "get", "-P", &port().to_string()])
        .args(common())
        .arg(&one)
        .current_dir(&here)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    ok(out);
    assert_eq!(std::fs::read(here.join("c.txt")).unwrap(), b"c.txt");
    // Several files into one that is not a directory, a pattern that matches nothing,
    // a wildcard before the last part: each named.
    let file = out_dir.join("a.log");
    let out = sftp(&["get", &pattern, file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    let none = format!("{}:{}/*.none", dest(), remote.display());
    let out = sftp(&["get", &none, out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("*.none: no such file"));
    // Wildcards in any part, as glob(3): directories matched on the way, files at the end.
    for (dir, file) in [("d1", "one.txt"), ("d2", "two.txt"), ("d2", "three.log")] {
        std::fs::create_dir_all(remote.join(dir)).unwrap();
        std::fs::write(remote.join(dir).join(file), file).unwrap();
    }
    std::fs::write(remote.join("dfile"), "not a directory").unwrap();
    let inner = format!("{}:{}/d*/*.txt", dest(), remote.display());
    let out = sftp(&["ls", &inner]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{0}/d1/one.txt\n{0}/d2/two.txt\n", remote.display())
    );
    ok(sftp(&["get", &inner, out_dir.to_str().unwrap()]));
    assert_eq!(std::fs::read(out_dir.join("two.txt")).unwrap(), b"two.txt");
    let literal_last = format!("{}:{}/*/two.txt", dest(), remote.display());
    let out = sftp(&["ls", &literal_last]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}/d2/two.txt\n", remote.display())
    );
    ok(sftp(&["rm", &pattern]));
    let mut left: Vec<_> = std::fs::read_dir(&remote)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [".hidden.log", "c.txt", "d1", "d2", "dfile"]);
    // A match rm cannot remove (a directory first among them) is told, and the others are
    // removed all the same, as sftp removes them; the command fails.
    let out = sftp(&["rm", &format!("{}:{}/d*", dest(), remote.display())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/d1") && err.contains("/d2") && err.contains("2 files could not be removed"),
        "{err}"
    );
    assert!(!remote.join("dfile").exists() && remote.join("d1").exists());
}

#[test]
fn sftp_get_dash_a_goes_on_from_the_part_an_interrupted_get_left() {
    let remote = remote_dir("sftp-cli-resume");
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 253) as u8 + 1).collect();
    std::fs::write(remote.join("big.bin"), &data).unwrap();
    let source = format!("{}:{}/big.bin", dest(), remote.display());
    let local = work_dir().join("sftp-cli-resume.bin");
    let part = work_dir().join("sftp-cli-resume.bin.part");
    let _ = std::fs::remove_file(&local);
    // What an interrupted get left: its first 256 KiB. The first byte a zero here, where the
    // file has none, so that the result shows the part was kept and not fetched again (its
    // last 64 KiB, compared with the file's, are the file's).
    let kept = 256 << 10;
    let mut left = data[..kept].to_vec();
    left[0] = 0;
    std::fs::write(&part, &left).unwrap();
    ok(sftp(&["get", "-a", &source, local.to_str().unwrap()]));
    let got = std::fs::read(&local).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got[0] == 0, "the part was not kept");
    assert!(got[kept..] == data[kept..], "the rest is not the file's");
    assert!(!part.exists());
    // Without -a the whole file comes again and the part is not ours to touch (a user's
    // own `NAME.part` was removed); with -a, one longer than the file is refused, as sftp
    // refuses such a file itself.
    std::fs::write(&part, vec![0u8; kept]).unwrap();
    ok(sftp(&["get", &source, local.to_str().unwrap()]));
    assert!(std::fs::read(&local).unwrap() == data);
    assert_eq!(std::fs::metadata(&part).unwrap().len(), kept as u64);
    std::fs::write(&part, vec![0u8; data.len() + 1]).unwrap();
    let out = sftp(&["get", "-a", &source, local.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(".part is larger than the remote file"),
        "{err}"
    );
    std::fs::remove_file(&part).unwrap();
    // With no part, the file itself is what an earlier get left, as sftp's reget takes it.
    std::fs::write(&local, &left).unwrap();
    ok(sftp(&["get", "-a", &source, local.to_str().unwrap()]));
    let got = std::fs::read(&local).unwrap();
    assert!(got[0] == 0 && got[1..] == data[1..]);
    // One longer than the remote file is something else: left alone, as sftp leaves it.
    let longer = vec![7u8; data.len() + 1];
    std::fs::write(&local, &longer).unwrap();
    let out = sftp(&["get", "-a", &source, local.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is larger than the remote file"), "{err}");
    assert!(std::fs::read(&local).unwrap() == longer);
}

/// A directory of the SSH test account's own, holding a copy of its key and known hosts, and
/// `netkit sftp` run as that account (not root, which may write any file) in it.
struct AsTestUser {
    dir: std::path::PathBuf,
    uid: u32,
    gid: u32,
}

impl AsTestUser {
    fn new(name: &str) -> AsTestUser {
        let (uid, gid) = netkit_tests::test_user_ids();
        let dir = work_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        for (from, to) in [
            (key("id_ed25519"), "key"),
            (env("NETKIT_TEST_SSH_KNOWN_HOSTS").into(), "known_hosts"),
        ] {
            std::fs::copy(from, dir.join(to)).unwrap();
            std::os::unix::fs::chown(dir.join(to), Some(uid), Some(gid)).unwrap();
        }
        AsTestUser { dir, uid, gid }
    }

    /// `netkit sftp VERB [FLAGS...] REMOTE LOCAL`, run as the test account.
    fn sftp(&self, verb: &str, flags: &[&str], remote: &Path, local: &Path) -> Output {
        let mut args = vec![
            "sftp".to_owned(),
            verb.into(),
            "-P".into(),
            port().to_string(),
        ];
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        for (flag, file) in [("--known-hosts", "known_hosts"), ("-i", "key")] {
            args.extend([flag.to_owned(), self.dir.join(file).display().to_string()]);
        }
        args.push(format!("{}:{}", dest(), remote.display()));
        args.push(local.display().to_string());
        netkit_tests::Spawned::start(
            netkit_tests::as_test_user(&mut Command::new(netkit_bin()))
                .args(&args)
                .env("HOME", &self.dir)
                .env_remove("SSH_AUTH_SOCK")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .wait_with_output()
    }

    /// `path` (in its directory) made with `data`, owned by the test account unless `root`.
    fn file(&self, path: &str, data: &[u8], mode: u32, root: bool) -> std::path::PathBuf {
        let path = self.dir.join(path);
        std::fs::write(&path, data).unwrap();
        if !root {
            std::os::unix::fs::chown(&path, Some(self.uid), Some(self.gid)).unwrap();
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

#[test]
fn sftp_get_refuses_a_local_file_its_user_may_not_write_as_sftp() {
    let remote = remote_dir("sftp-not-writable");
    std::fs::write(
        remote.join("r.txt"),
        b"remote-data, longer than what is here\n",
    )
    .unwrap();
    std::fs::create_dir(remote.join("tree")).unwrap();
    std::fs::write(remote.join("tree/r.txt"), b"remote-data\n").unwrap();
    std::process::Command::new("chown")
        .args(["-R", &format!("{}:", env("NETKIT_TEST_SSH_USER"))])
        .arg(&remote)
        .status()
        .unwrap();
    let user = AsTestUser::new("sftp-not-writable");
    // Write-protected, another user's in a directory the user may write, or the file a
    // resumed get takes as its part: each left as it is, named, as sftp, curl and wget do;
    // renaming over it only needs the directory, and replaced it.
    let read_only = user.file("keep.txt", b"PRECIOUS\n", 0o444, false);
    let roots = user.file("roots.txt", b"ROOT'S\n", 0o644, true);
    std::fs::create_dir(user.dir.join("tree")).unwrap();
    std::os::unix::fs::chown(user.dir.join("tree"), Some(user.uid), Some(user.gid)).unwrap();
    let in_tree = user.file("tree/r.txt", b"PRECIOUS\n", 0o444, false);
    // (flags, remote, local, the file refused)
    let cases = [
        (&[][..], remote.join("r.txt"), &read_only, &read_only),
        (&[], remote.join("r.txt"), &roots, &roots),
        (&["-a"], remote.join("r.txt"), &read_only, &read_only),
        (&["-r"], remote.join("tree"), &user.dir, &in_tree),
    ];
    for (flags, from, to, named) in cases {
        let before = std::fs::read(named).unwrap();
        let out = user.sftp("get", flags, &from, to);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?} {err}");
        assert!(
            err.contains(&format!("{}: Permission denied", named.display())),
            "{flags:?} {err}"
        );
        assert_eq!(std::fs::read(named).unwrap(), before, "{flags:?}");
        assert!(!named.with_extension("txt.part").exists(), "{flags:?}");
    }
    assert_eq!(std::fs::metadata(&roots).unwrap().uid(), 0);
    // What the user may write is still fetched.
    let own = user.file("own.txt", b"old\n", 0o644, false);
    ok(user.sftp("get", &[], &remote.join("r.txt"), &own));
    assert_eq!(
        std::fs::read(&own).unwrap(),
        std::fs::read(remote.join("r.txt")).unwrap()
    );
}

#[test]
fn sftp_get_dash_a_fetches_whole_a_file_of_another_version_whatever_the_clocks_say() {
    let remote = remote_dir("sftp-cli-older");
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8 + 1).collect();
    std::fs::write(remote.join("new.bin"), &data).unwrap();
    let changed = std::fs::metadata(remote.join("new.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let source = format!("{}:{}/new.bin", dest(), remote.display());
    let local = work_dir().join("sftp-cli-older.bin");
    let part = work_dir().join("sftp-cli-older.bin.part");
    let leave = |path: &Path, bytes: &[u8], when: std::time::SystemTime| {
        let _ = std::fs::remove_file(&local);
        let _ = std::fs::remove_file(&part);
        std::fs::write(path, bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    };
    let get = || {
        let out = sftp(&["get", "-a", &source, local.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        ok(out);
        assert!(std::fs::read(&local).unwrap() == data);
        assert!(!part.exists());
        err
    };
    // The old copy an interrupted plain get left as it was (shorter, or as long), or a part
    // of the version before, written since the remote file changed: appending to it made a
    // file of both versions, exit 0.
    let old = vec![0u8; data.len()];
    let later = changed + Duration::from_secs(60);
    for (path, bytes) in [
        (&local, &old[..256 << 10]),
        (&local, &old[..]),
        (&part, &old[..256 << 10]),
    ] {
        leave(path, bytes, later);
        let err = get();
        let told = format!(
            "{}: its last bytes are not the remote file's: not resumed, fetched whole",
            path.display()
        );
        assert!(err.contains(&told), "{err}");
    }
    // A part of this version goes on, however old it looks (a server whose clock is ahead
    // dates the remote file after it: by time, every part was fetched whole again).
    leave(
        &part,
        &data[..256 << 10],
        changed - Duration::from_secs(3600),
    );
    let err = get();
    assert!(!err.contains("fetched whole"), "{err}");
    // The file itself, of this version's bytes at its end but last written before the
    // remote file changed (an edit before its last 64 KiB), is fetched whole.
    let mut edited = data.clone();
    edited[10] = 0;
    leave(&local, &edited, changed - Duration::from_secs(3600));
    let err = get();
    assert!(err.contains("fetched whole"), "{err}");
    // A FIFO at the part's name is not waited on.
    let _ = std::fs::remove_file(&local);
    assert!(
        Command::new("mkfifo")
            .arg(&part)
            .status()
            .unwrap()
            .success()
    );
    let err = get();
    assert!(err.contains("fetched whole"), "{err}");
    std::fs::remove_file(&local).unwrap();
}

#[test]
fn sftp_put_dash_a_goes_on_from_what_an_interrupted_put_left() {
    let remote = remote_dir("sftp-cli-put-resume");
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8 + 1).collect();
    let local = work_dir().join("sftp-cli-put-resume.bin");
    std::fs::write(&local, &data).unwrap();
    let target = remote.join("up.bin");
    let temp = net_ssh::upload_temp_name(&target);
    let dest_path = format!("{}:{}", dest(), target.display());
    // What a killed put left under the temporary name: zeros, where the file has none,
    // written as the remote user would have.
    let kept = 256 << 10;
    let leave_part = || {
        std::fs::write(&temp, vec![0u8; kept]).unwrap();
        let owner = format!("{}:", env("NETKIT_TEST_SSH_USER"));
        let chown = Command::new("chown").arg(owner).arg(&temp).status();
        assert!(chown.is_ok_and(|s| s.success()));
    };
    leave_part();
    ok(sftp(&["put", "-a", local.to_str().unwrap(), &dest_path]));
    let got = std::fs::read(&target).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got[..kept].iter().all(|&b| b == 0), "the part was not kept");
    assert!(got[kept..] == data[kept..], "the rest is not the file's");
    assert!(!temp.exists());
    // Without -a the whole file goes again.
    leave_part();
    ok(sftp(&["put", local.to_str().unwrap(), &dest_path]));
    assert!(std::fs::read(&target).unwrap() == data);
    // With -a and nothing of ours to go on from, a longer file where the upload goes is
    // refused, as sftp's reput refuses it (it was replaced without a word).
    let longer = vec![7u8; data.len() + 1];
    std::fs::write(&target, &longer).unwrap();
    let out = sftp(&["put", "-a", local.to_str().unwrap(), &dest_path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot resume: it is larger than"), "{err}");
    assert!(std::fs::read(&target).unwrap() == longer);
}

#[test]
fn sftp_put_r_dash_a_sends_whole_a_remote_file_as_long_whatever_it_holds() {
    let remote = remote_dir("sftp-put-r-a");
    let local = work_dir().join("sftp-put-r-a");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir(&local).unwrap();
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 249) as u8 + 1).collect();
    for name in ["a", "b", "c"] {
        std::fs::write(local.join(name), &data).unwrap();
    }
    // A remote file as long as the local one is no part of it: `a` differs before its last
    // 64 KiB, `c` in them; a check by the tail (or by time) kept the stale version, exit 0,
    // so both are sent whole (as before, at the cost of a tree sent again). `b` is new.
    let sent = remote.join("sftp-put-r-a");
    std::fs::create_dir(&sent).unwrap();
    let mut marked = data.clone();
    marked[0] = 0;
    std::fs::write(sent.join("a"), &marked).unwrap();
    std::fs::write(sent.join("c"), vec![0u8; data.len()]).unwrap();
    std::process::Command::new("chown")
        .args(["-R", &format!("{}:", env("NETKIT_TEST_SSH_USER"))])
        .arg(&remote)
        .status()
        .unwrap();
    let to = format!("{}:{}", dest(), remote.display());
    ok(sftp(&["put", "-r", "-a", local.to_str().unwrap(), &to]));
    assert!(std::fs::read(sent.join("a")).unwrap() == data);
    assert!(std::fs::read(sent.join("b")).unwrap() == data);
    assert!(std::fs::read(sent.join("c")).unwrap() == data);
    std::fs::remove_dir_all(&local).unwrap();
}

#[test]
fn sftp_put_updates_a_writable_file_in_a_directory_it_may_not_write() {
    // A deploy user's file in a root-owned directory (`/etc/app/app.conf`): sftp writes it in
    // place; we could not make our temporary file there, and said the file was not writable.
    let base = remote_dir("sftp-read-only-dir");
    let user = format!("{}:", env("NETKIT_TEST_SSH_USER"));
    let target = base.join("app.conf");
    std::fs::write(&target, "old = 1\n").unwrap();
    let chown = Command::new("chown").arg(&user).arg(&target).status();
    assert!(chown.is_ok_and(|s| s.success()));
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o555)).unwrap();
    let local = work_dir().join("sftp-read-only-dir.conf");
    std::fs::write(&local, "new = 2\n").unwrap();
    let out = sftp(&[
        "put",
        local.to_str().unwrap(),
        &format!("{}:{}", dest(), target.display()),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("written in place"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new = 2\n");
    // A new file has nowhere to go there.
    let out = sftp(&[
        "put",
        local.to_str().unwrap(),
        &format!("{}:{}/other.conf", dest(), base.display()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 1);
}

#[test]
fn an_upload_killed_midway_leaves_no_target() {
    let local = work_dir().join("sftp-kill.bin");
    std::fs::File::create(&local)
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    let base = remote_dir("sftp-kill");
    let target = base.join("big.bin");
    let port = port().to_string();
    let common = common();
    let mut args = vec!["sftp", "put", "-P", &port];
    args.extend(common.iter().map(String::as_str));
    let remote = format!("{}:{}", dest(), target.display());
    args.extend([local.to_str().unwrap(), remote.as_str()]);
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .env_remove("SSH_AUTH_SOCK"),
    );
    let temp = netkit_tests::temporary_file(&base, ".big.bin.netkit-upload");
    netkit_tests::wait_for_file_size(&temp, 16 << 20, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!target.exists(), "a killed upload left a target file");
    std::fs::remove_file(&local).unwrap();
    // What went up stays in the test account's home, which no cargo clean frees.
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn sigterm_or_sigint_stops_a_transfer_and_removes_its_partial_file() {
    let base = remote_dir("sftp-stop");
    let local = work_dir().join("sftp-stop-up.bin");
    let remote_big = base.join("down.bin");
    for big in [&local, &remote_big] {
        std::fs::File::create(big)
            .unwrap()
            .set_len(512 << 20)
            .unwrap();
    }
    let target = base.join("up.bin");
    // Temporary names are unguessable: found by their beginning, a get's as the one file in
    // a directory of its own.
    let fetched_in = work_dir().join("sftp-stop-down");
    let _ = std::fs::remove_dir_all(&fetched_in);
    std::fs::create_dir_all(&fetched_in).unwrap();
    let fetched = fetched_in.join("down.bin");
    let port = port().to_string();
    let common = common();
    let upload = [
        local.display().to_string(),
        format!("{}:{}", dest(), target.display()),
    ];
    let download = [
        format!("{}:{}", dest(), remote_big.display()),
        fetched.display().to_string(),
    ];
    let cases = [
        (
            "put",
            upload,
            (&base, ".up.bin.netkit-upload"),
            nix::sys::signal::Signal::SIGTERM,
        ),
        (
            "get",
            download.clone(),
            (&fetched_in, ""),
            nix::sys::signal::Signal::SIGINT,
        ),
        // A closed terminal too: it left the get's hidden temporary file behind.
        (
            "get",
            download,
            (&fetched_in, ""),
            nix::sys::signal::Signal::SIGHUP,
        ),
    ];
    for (verb, paths, (temp_dir, temp_prefix), signal) in cases {
        let mut args = vec!["sftp", verb, "-P", &port];
        args.extend(common.iter().map(String::as_str));
        args.extend(paths.iter().map(String::as_str));
        let mut child = netkit_tests::Spawned::start(
            Command::new(netkit_bin())
                .args(&args)
                .env_remove("SSH_AUTH_SOCK")
                .stderr(Stdio::piped()),
        );
        let partial = netkit_tests::temporary_file(temp_dir, temp_prefix);
        netkit_tests::wait_for_file_size(&partial, 16 << 20, &mut child);
        let started = std::time::Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            signal,
        )
        .unwrap();
        let out = child.wait_with_output();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(128 + signal as i32),
            "{verb}: {err}"
        );
        assert!(err.contains("transfer cancelled"), "{verb}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{verb}: {:?}",
            started.elapsed()
        );
        assert!(!partial.exists(), "{verb} left {}", partial.display());
    }
    assert!(!target.exists() && std::fs::read_dir(&fetched_in).unwrap().next().is_none());
    std::fs::remove_file(&local).unwrap();
    std::fs::remove_file(&remote_big).unwrap();
}

#[test]
fn a_nohup_upload_lives_through_sighup() {
    // It put back the SIGHUP that nohup had ignored: the upload was thrown away at logout.
    let local = work_dir().join("sftp-nohup.bin");
    std::fs::File::create(&local)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let base = remote_dir("sftp-nohup");
    let target = base.join("up.bin");
    let port = port().to_string();
    let common = common();
    let remote = format!("{}:{}", dest(), target.display());
    let mut child = netkit_tests::Spawned::start(
        Command::new("nohup")
            .arg(netkit_bin())
            .args(["sftp", "put", "-P", &port])
            .args(&common)
            .args([local.to_str().unwrap(), remote.as_str()])
            .env_remove("SSH_AUTH_SOCK")
            .stderr(Stdio::piped()),
    );
    let temp = netkit_tests::temporary_file(&base, ".up.bin.netkit-upload");
    netkit_tests::wait_for_file_size(&temp, 8 << 20, &mut child);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 256 << 20);
    std::fs::remove_file(&local).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}

/// The sshd processes at the far end of `client`'s SSH connection, stopped (SIGSTOP) so that
/// the server stops answering as a hung one does, and resumed when dropped.
struct Frozen(Vec<nix::unistd::Pid>);

/// The sshd processes at the far end of `client`'s SSH connection.
fn server_of(client: u32) -> Vec<nix::unistd::Pid> {
    let sockets = Command::new("ss")
        .args(["-tnpH"])
        .output()
        .expect("ss (iproute2, installed by cargo xtask test)");
    let sockets = String::from_utf8_lossy(&sockets.stdout).into_owned();
    // `ESTAB 0 0 127.0.0.1:LOCAL 127.0.0.1:PEER users:(("name",pid=N,fd=M),...)`
    let rows: Vec<Vec<&str>> = sockets
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|r: &Vec<&str>| r.len() >= 6)
        .collect();
    let ours = rows
        .iter()
        .find(|r| {
            r[5].contains(&format!("pid={client},")) && r[4].ends_with(&format!(":{}", port()))
        })
        .unwrap_or_else(|| panic!("no SSH connection of pid {client} in {sockets}"));
    let theirs = rows
        .iter()
        .find(|r| r[3] == ours[4] && r[4] == ours[3])
        .unwrap_or_else(|| panic!("no sshd end of {} in {sockets}", ours[3]));
    theirs[5]
        .split("pid=")
        .skip(1)
        .map(|p| nix::unistd::Pid::from_raw(p.split(',').next().unwrap().parse().unwrap()))
        .collect()
}

impl Frozen {
    fn server_of(client: u32) -> Frozen {
        let pids = server_of(client);
        for pid in &pids {
            nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        }
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGCONT);
        }
    }
}

#[test]
fn a_lost_connection_is_said_once_and_ends_a_recursive_transfer_as_sftp() {
    let remote = remote_dir("sftp-lost");
    let local = work_dir().join("sftp-lost");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(local.join("up")).unwrap();
    std::fs::create_dir(remote.join("down")).unwrap();
    for i in 1..=4 {
        for dir in [remote.join("down"), local.join("up")] {
            std::fs::File::create(dir.join(format!("f{i}")))
                .unwrap()
                .set_len(1 << 30)
                .unwrap();
        }
    }
    let host = |path: &Path| format!("{}:{}", dest(), path.display());
    let port = port().to_string();
    let common = common();
    // (direction, paths, where the file being copied is written, what keeps it with -a)
    let cases = [
        (
            "get",
            [host(&remote.join("down")), local.display().to_string()],
            local.join("down"),
            "",
        ),
        (
            "put",
            [local.join("up").display().to_string(), host(&remote)],
            remote.join("up"),
            ".f1.netkit-upload",
        ),
    ];
    for (verb, paths, written_in, upload_part) in &cases {
        for resume in [false, true] {
            let _ = std::fs::remove_dir_all(written_in);
            let mut args = vec!["sftp", verb, "-r", "-P", &port];
            if resume {
                args.push("-a");
            }
            args.extend(common.iter().map(String::as_str));
            args.extend(paths.iter().map(String::as_str));
            let mut child = netkit_tests::Spawned::start(
                Command::new(netkit_bin())
                    .args(&args)
                    .env_remove("SSH_AUTH_SOCK")
                    .stderr(Stdio::piped()),
            );
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !written_in.is_dir() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{verb}: no directory made"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let prefix = match (resume, *verb) {
                (true, "get") => "f1.part",
                (_, "get") => ".f1",
                (true, _) => upload_part,
                _ => ".f1.netkit-upload.",
            };
            let partial = netkit_tests::temporary_file(written_in, prefix);
            netkit_tests::wait_for_file_size(&partial, 16 << 20, &mut child);
            for pid in server_of(child.id()) {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            let out = child.wait_with_output();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{verb} -a {resume}: {err}");
            // One line, saying it as sftp's "Connection closed", not libssh2's words and
            // not once for each file left.
            assert_eq!(err.lines().count(), 1, "{verb} -a {resume}: {err}");
            assert!(
                err.contains("connection closed (copying ") && err.contains("f1)"),
                "{verb} -a {resume}: {err}"
            );
            if resume {
                assert!(
                    err.contains(&format!("kept as {}", partial.display())),
                    "{verb} -a {resume}: {err}"
                );
            }
        }
    }
    std::fs::remove_dir_all(&local).unwrap();
    std::fs::remove_dir_all(&remote).unwrap();
}

#[test]
fn a_signal_stops_a_transfer_the_server_stopped_answering_at_once() {
    let base = remote_dir("sftp-frozen");
    let local = work_dir().join("sftp-frozen-up.bin");
    let remote_big = base.join("down.bin");
    for big in [&local, &remote_big] {
        std::fs::File::create(big)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
    }
    let fetched_in = work_dir().join("sftp-frozen-down");
    let _ = std::fs::remove_dir_all(&fetched_in);
    std::fs::create_dir_all(&fetched_in).unwrap();
    let port = port().to_string();
    let common = common();
    let upload = [
        local.display().to_string(),
        format!("{}:{}", dest(), base.join("up.bin").display()),
    ];
    let download = [
        format!("{}:{}", dest(), remote_big.display()),
        fetched_in.join("down.bin").display().to_string(),
    ];
    use nix::sys::signal::Signal::{SIGINT, SIGTERM};
    // (verb, paths, where its temporary file is, signals sent (none: wait for the timeout),
    // exit code, what the error says)
    let cases = [
        (
            "get",
            &download,
            (&fetched_in, ""),
            &[SIGINT][..],
            130,
            "transfer cancelled",
        ),
        // The second exits at once, and took the hidden temporary file with it no more.
        (
            "get",
            &download,
            (&fetched_in, ""),
            &[SIGINT, SIGINT],
            130,
            "",
        ),
        (
            "put",
            &upload,
            (&base, ".up.bin.netkit-upload"),
            &[SIGTERM],
            143,
            "the part sent is left on the server as",
        ),
        (
            "put",
            &upload,
            (&base, ".up.bin.netkit-upload"),
            &[],
            1,
            "the part sent is left on the server as",
        ),
    ];
    for (verb, paths, (temp_dir, temp_prefix), signals, code, says) in cases {
        let mut args = vec!["sftp", verb, "--timeout", "20", "-P", &port];
        if signals.is_empty() {
            args[3] = "3";
        }
        args.extend(common.iter().map(String::as_str));
        args.extend(paths.iter().map(String::as_str));
        let mut child = netkit_tests::Spawned::start(
            Command::new(netkit_bin())
                .args(&args)
                .env_remove("SSH_AUTH_SOCK")
                .stderr(Stdio::piped()),
        );
        let partial = netkit_tests::temporary_file(temp_dir, temp_prefix);
        netkit_tests::wait_for_file_size(&partial, 16 << 20, &mut child);
        let frozen = Frozen::server_of(child.id());
        // What was on its way is taken in first.
        std::thread::sleep(Duration::from_millis(500));
        let started = std::time::Instant::now();
        for signal in signals {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
                *signal,
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
        let out = child.wait_with_output();
        let took = started.elapsed();
        drop(frozen);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{verb} {signals:?}: {err}");
        assert!(err.contains(says), "{verb} {signals:?}: {err}");
        assert!(
            took < Duration::from_secs(8),
            "{verb} {signals:?}: {took:?}"
        );
        if verb == "get" {
            assert!(
                !partial.exists(),
                "{verb} {signals:?} left {}",
                partial.display()
            );
        } else {
            assert!(err.contains(&partial.display().to_string()), "{err}");
            std::fs::remove_file(&partial).unwrap();
        }
    }
    assert!(std::fs::read_dir(&fetched_in).unwrap().next().is_none());
    std::fs::remove_file(&local).unwrap();
    std::fs::remove_file(&remote_big).unwrap();
}

#[test]
fn bad_forwarding_and_arguments_are_refused_before_connecting() {
    // Nothing listens there: an error about connecting would mean the check came too late.
    let closed = free_port().to_string();
    for (flags, words, says) in [
        (&["-L", "abc"][..], &["true"][..], "bad -L \"abc\""),
        (&["-L", "1234:db:99999"], &["true"], "bad -L"),
        (&["-R", "80"], &["true"], "bad -R \"80\""),
        (&["-D", "notaport"], &["true"], "bad -D \"notaport\""),
        // Port 0 for a local listener, whose port no one would be told, as ssh refuses it.
        (&["-L", "0:db:5432"], &["true"], "cannot listen on port 0"),
        (&["-D", "0"], &["true"], "bad -D \"0\""),
        // A destination port 0 reaches nothing, for -L and -R alike (ssh: "Bad ... specification").
        (&["-L", "8000:db:0"], &["true"], "bad -L \"8000:db:0\""),
        (&["-R", "8000:db:0"], &["true"], "bad -R \"8000:db:0\""),
        (&["-N", "-D", "1080"], &["uptime"], "-N runs no command"),
        // Bad arguments are netkit's own errors too: 255, as OpenSSH.
        (&["--no-such-flag"], &["true"], "--no-such-flag"),
        (&["-o", "Port=0"], &["true"], "Port"),
        (&["-J", "nobody@127.0.0.1:0"], &["true"], "bad destination"),
    ] {
        let mut args = vec!["ssh", "-p", &closed];
        args.extend(flags);
        args.push("nobody@127.0.0.1");
        args.extend(words);
        let out = netkit(&args, b"", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{flags:?}: {err}");
        assert!(
            err.contains(says) && err.lines().count() == 1,
            "{flags:?}: {err}"
        );
    }
}

#[test]
fn a_port_that_is_not_ssh_is_named_as_such() {
    // netkit's own HTTP server, started by `cargo xtask test`.
    let serve = env("NETKIT_TEST_SERVE_URL");
    let port = serve.rsplit(':').next().unwrap();
    let out = netkit(&["ssh", "-p", port, "nobody@127.0.0.1", "true"], b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains("is it an SSH server") && err.lines().count() == 1,
        "{err}"
    );
    // Named with its port, as the timeouts name it (it was "127.0.0.1: SSH handshake ...").
    assert!(
        err.contains(&format!("127.0.0.1:{port}: SSH handshake failed")),
        "{err}"
    );
    // A server that drops a newcomer before its banner (sshd over MaxStartups) may be one
    // over its limit: "Failed getting banner" sent users looking for a port mistake.
    let dropping = serve_each(drop);
    let p = dropping.to_string();
    let out = netkit(&["ssh", "-p", &p, "nobody@127.0.0.1", "true"], b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("MaxStartups"), "{err}");
}

#[test]
fn dash_v_tells_each_step_and_dash_q_keeps_warnings_quiet() {
    let out = ssh_with(&["-v"], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for step in [
        "debug: connecting to 127.0.0.1:",
        "SSH-2.0-OpenSSH",
        "is known",
        "trying publickey",
        "authenticated as",
    ] {
        assert!(err.contains(step), "{step}: {err}");
    }
    assert!(err.contains("compression none"), "{err}");
    // -C (or Compression yes) compresses, as ssh -C.
    for flags in [&["-v", "-C"][..], &["-v", "-o", "Compression=yes"]] {
        let out = ssh_with(flags, &["head -c 100000 /dev/zero | wc -c"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.stdout, b"100000\n", "{err}");
        assert!(err.contains("compression zlib"), "{flags:?}: {err}");
    }
    // An option netkit does not act on is a warning, which -q leaves out.
    let out = ssh_with(&["-o", "VisualHostKey=yes"], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: ignoring the option"), "{err}");
    // Unless it asks for nothing netkit would do anyway (as sftp -S passes it).
    let out = ssh_with(&["-o", "ForwardX11=no"], &["true"], b"");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ssh_with(&["-q", "-o", "ForwardX11=yes"], &["true"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dash_c_and_ciphers_choose_the_cipher_as_ssh_c() {
    let negotiated = |flags: &[&str]| {
        let out = ssh_with(flags, &["echo", "ok"], b"");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.stdout, b"ok\n", "{flags:?}: {err}");
        err
    };
    for (flags, cipher) in [
        (&["-v", "-c", "aes256-ctr"][..], "aes256-ctr"),
        (&["-v", "-o", "Ciphers=aes128-ctr,aes192-ctr"], "aes128-ctr"),
        (&["-v", "-c", "^aes192-ctr"], "aes192-ctr"),
        // The flag is the first value obtained, so it wins over -o.
        (
            &["-v", "-c", "aes256-ctr", "-o", "Ciphers=aes128-ctr"],
            "aes256-ctr",
        ),
        (
            &["-v", "-c", "chacha20-poly1305@openssh.com"],
            "chacha20-poly1305@openssh.com",
        ),
    ] {
        let err = negotiated(flags);
        assert!(
            err.contains(&format!("cipher {cipher},")),
            "{flags:?}: {err}"
        );
    }
    let err = negotiated(&["-v", "-c", "-aes128-gcm@openssh.com,aes256-gcm@openssh.com"]);
    assert!(!err.contains("-gcm@openssh.com,"), "{err}");
    // -m and MACs, KexAlgorithms, HostKeyAlgorithms, as ssh's.
    for (flags, chosen) in [
        (
            &["-v", "-o", "HostKeyAlgorithms=ecdsa-sha2-nistp256"][..],
            "host key ecdsa-sha2-nistp256 ",
        ),
        (
            &["-v", "-c", "aes128-ctr", "-m", "hmac-sha2-512"],
            "mac hmac-sha2-512,",
        ),
        (
            &[
                "-v",
                "-c",
                "aes256-ctr",
                "-o",
                "MACs=hmac-sha2-256-etm@openssh.com",
            ],
            "mac hmac-sha2-256-etm@openssh.com,",
        ),
        (
            &["-v", "-o", "KexAlgorithms=diffie-hellman-group14-sha256"],
            "kex diffie-hellman-group14-sha256,",
        ),
        (
            &["-v", "-o", "KexAlgorithms=^ecdh-sha2-nistp256"],
            "kex ecdh-sha2-nistp256,",
        ),
    ] {
        let err = negotiated(flags);
        assert!(err.contains(chosen), "{flags:?}: {err}");
    }
    // One netkit has but the test sshd does not take: the error says what was offered.
    let out = ssh_with(&["-c", "aes192-cbc"], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("(ciphers: aes192-cbc)"), "{err}");
    for (flags, name, has) in [
        (["-c", "rot13"], "rot13", "aes128-ctr"),
        (["-m", "crc32"], "crc32", "hmac-sha2-256"),
        (["-o", "KexAlgorithms=none"], "none", "curve25519-sha256"),
    ] {
        let out = ssh_with(&flags, &["true"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(name) && err.contains(has), "{err}");
    }
}

#[test]
fn algorithm_removal_patterns_take_away_every_match_as_in_ssh() {
    // `-v`'s "(kex K, cipher C, mac M, ...)" and "host key T ...": what was negotiated.
    let negotiated = |flags: &[&str], what: &str| {
        let out = ssh_with(flags, &["echo", "ok"], b"");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.stdout, b"ok\n", "{flags:?}: {err}");
        let at = err.find(what).unwrap_or_else(|| panic!("{flags:?}: {err}"));
        err[at + what.len()..]
            .split([',', ' ', ')'])
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    // ssh2-config matched `-` patterns as exact names: each removed nothing, and netkit
    // negotiated the very algorithm taken away.
    let cipher = negotiated(&["-v", "-o", "Ciphers=-aes128*,chacha*"], "cipher ");
    assert!(
        !cipher.starts_with("aes128") && !cipher.starts_with("chacha"),
        "{cipher}"
    );
    // The published Terrapin client mitigation, the MAC half.
    let mac = negotiated(
        &["-v", "-c", "aes128-ctr", "-o", "MACs=-*-etm@openssh.com"],
        "mac ",
    );
    assert!(!mac.ends_with("-etm@openssh.com"), "{mac}");
    let kex = negotiated(&["-v", "-o", "KexAlgorithms=-curve25519*"], "kex ");
    assert!(!kex.starts_with("curve25519"), "{kex}");
    // The test sshd has ed25519, ECDSA and RSA host keys.
    let key = negotiated(
        &["-v", "-o", "HostKeyAlgorithms=-ssh-ed25519*"],
        "host key ",
    );
    assert!(!key.contains("ed25519") && !key.is_empty(), "{key}");
    // A file's lines, as the command line's.
    let dir = work_dir().join("ssh-cli-algorithm-patterns");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        "Host *\n  Ciphers -aes*-gcm@openssh.com,chacha20*\n  KexAlgorithms -curve25519*\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let flags = ["-v", "-F", config];
    assert_eq!(negotiated(&flags, "cipher "), "aes128-ctr");
    assert!(!negotiated(&flags, "kex ").starts_with("curve25519"));
    // -G shows the lists left, as ssh -G (whose MACs are netkit's list).
    let shown = |args: &[&str], out: &Output, keyword: &str| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(keyword))
            .unwrap_or_else(|| panic!("{args:?}: {out:?}"))
            .to_owned()
    };
    let args = [
        "-F",
        "none",
        "-o",
        "Ciphers=-aes128*",
        "-o",
        "MACs=-*-etm@openssh.com",
        "-G",
        "box",
    ];
    let ours = netkit(&[&["ssh"][..], &args[..]].concat(), b"", &[]);
    let theirs = Command::new("ssh")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(shown(&args, &ours, "macs "), shown(&args, &theirs, "macs "));
    let mut ciphers: Vec<String> = shown(&args, &ours, "ciphers ")
        .split(',')
        .map(str::to_owned)
        .collect();
    ciphers.sort();
    assert_eq!(
        ciphers,
        [
            "aes192-ctr",
            "aes256-ctr",
            "aes256-gcm@openssh.com",
            "chacha20-poly1305@openssh.com"
        ]
    );
    // Patterns where ssh 9.2 takes names only are refused, as there.
    for (flags, said) in [
        (
            ["-o", "Ciphers=+aes*-cbc"],
            "Bad SSH2 cipher spec '+aes*-cbc'",
        ),
        (["-c", "^aes256-c*"], "Bad SSH2 cipher spec '^aes256-c*'"),
        (["-o", "Ciphers=aes*"], "Bad SSH2 cipher spec 'aes*'"),
        (["-m", "+hmac*"], "Bad SSH2 MAC spec '+hmac*'"),
    ] {
        let out = ssh_with(&flags, &["true"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{flags:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{flags:?}: {err}");
        assert!(err.contains(said), "{flags:?}: {err}");
    }
}

#[test]
fn dash_b_and_bind_address_choose_where_the_connection_comes_from() {
    // sshd names the client's address in SSH_CLIENT.
    for flags in [&["-b", "127.0.0.2"][..], &["-o", "BindAddress=127.0.0.3"]] {
        let out = ssh_with(flags, &["echo", "$SSH_CLIENT"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        let from = flags[1].trim_start_matches("BindAddress=");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(&format!("{from} ")),
            "{flags:?}: {err}"
        );
    }
    // An address of no local interface is refused by the system, and said so.
    let out = ssh_with(&["-b", "192.0.2.1"], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("BindAddress 192.0.2.1"), "{err}");
}

#[test]
fn dash_e_writes_the_log_to_a_file_as_ssh_e() {
    let log = work_dir().join("ssh-dash-e.log");
    let _ = std::fs::remove_file(&log);
    let l = log.to_str().unwrap();
    for _ in 0..2 {
        let out = ssh_with(&["-v", "-E", l], &["true"], b"");
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    // Appended, as ssh -E: both runs are there.
    assert_eq!(text.matches("authenticated as").count(), 2, "{text}");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = ssh_with(&["-E", "/no/such/dir/log"], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains("/no/such/dir/log") && err.lines().count() == 1,
        "{err}"
    );
    // sftp's code for its failures is 1 (it was ssh's 255, which sftp never documents).
    let out = sftp(&["ls", "-E", "/no/such/dir/log", &format!("{}:", dest())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
}

#[test]
fn dash_e_takes_the_error_lines_too_as_ssh_e() {
    // ssh -E writes its error messages to the file and nothing to stderr (`ssh -E f -p 1
    // 127.0.0.1`: "connect to host 127.0.0.1 port 1: Connection refused" in f); netkit's
    // errors stayed on stderr.
    let log = work_dir().join("ssh-dash-e-errors.log");
    let _ = std::fs::remove_file(&log);
    let l = log.to_str().unwrap();
    let port = free_port().to_string();
    let args = [
        "ssh",
        "-E",
        l,
        "-o",
        "ConnectTimeout=1",
        "-p",
        &port,
        "127.0.0.1",
        "true",
    ];
    let out = netkit(&args, b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert_eq!(err, "");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("netkit: error:") && text.contains(&port),
        "{text}"
    );
    // So do the lines said between password questions.
    let _ = std::fs::remove_file(&log);
    let dir = work_dir().join("ssh-dash-e-errors");
    std::fs::create_dir_all(&dir).unwrap();
    let (script, asked) = askpass_script(&dir, "wrong");
    let _ = std::fs::remove_file(&asked);
    let out = ssh_by_password_without_terminal(
        &["-E", l, "-o", "NumberOfPasswordPrompts=2"],
        &[
            ("SSH_ASKPASS", &script),
            ("SSH_ASKPASS_REQUIRE", Path::new("force")),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert_eq!(err, "");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("Permission denied, please try again.") && text.contains("netkit: error:"),
        "{text}"
    );
}

#[test]
fn dash_e_makes_no_log_file_for_a_line_that_is_refused() {
    // The file was made before the arguments were checked: an empty file for every typo.
    // OpenSSH makes none.
    let dir = work_dir().join("dash-e-refused");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = |name: &str| dir.join(name).display().to_string();
    let (e1, e2, e3) = (log("e1"), log("e2"), log("e3"));
    for args in [
        &["ssh", "-E", &e1, "-W", "", "127.0.0.1"][..],
        &["ssh", "-E", &e2, "127.0.0.1:99999", "true"],
        &["sftp", "get", "-E", &e3, "bad"],
    ] {
        let out = netkit(args, b"", &[]);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// An empty known_hosts file `name` under the work dir, and a `-o ProxyCommand=...` that
/// reaches the test sshd whatever host is named (the host name is ours to choose).
fn fresh_known_hosts_and_proxy_command(name: &str) -> (std::path::PathBuf, String) {
    let kh = work_dir().join(name);
    let _ = std::fs::remove_file(&kh);
    let proxy = format!(
        "ProxyCommand={} connect 127.0.0.1:{}",
        netkit_bin().display(),
        port()
    );
    (kh, proxy)
}

#[test]
fn messages_name_an_ipv6_host_in_brackets_before_a_path_or_port() {
    // `::1:/nonexist: no such file`, and `::1:47223` for the path `47223`, read as a port:
    // scp writes `[::1]:PATH`. The test sshd listens on 127.0.0.1 alone: a ProxyCommand
    // reaches it for the host ::1.
    let (kh, proxy) = fresh_known_hosts_and_proxy_command("ssh-v6-message-known-hosts");
    let key = key("id_ed25519");
    let user = env("NETKIT_TEST_SSH_USER");
    let mut args = vec![
        "sftp",
        "ls",
        "-F",
        "none",
        "--known-hosts",
        kh.to_str().unwrap(),
    ];
    args.extend(["--accept-new", "-i", key.to_str().unwrap(), "-o", &proxy]);
    let remote = format!("{user}@[::1]:/nonexist");
    args.push(&remote);
    let out = netkit(&args, b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    // (After the warning that the key was added for [::1]:PORT.)
    assert!(
        err.ends_with("\nnetkit: error: [::1]:/nonexist: no such file or directory\n"),
        "{err}"
    );
    // A session's path that looks like a port.
    let mut args = vec![
        "sftp",
        "-b",
        "-",
        "-F",
        "none",
        "--known-hosts",
        kh.to_str().unwrap(),
    ];
    args.extend(["-i", key.to_str().unwrap(), "-o", &proxy]);
    let remote = format!("{user}@[::1]:47223");
    args.push(&remote);
    let out = netkit(&args, b"pwd\n", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        "netkit: error: [::1]:47223: no such file or directory\n"
    );
    // Where ssh -v says where it connects (nothing listens on port 1).
    let out = netkit(
        &["ssh", "-F", "none", "-v", "-p", "1", "::1", "true"],
        b"",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connecting to [::1]:1 "), "{err}");
}

#[test]
fn host_names_that_would_be_known_hosts_patterns_are_never_recorded() {
    // `foo,*` recorded by --accept-new made its key every host's, for ssh reading the file
    // too; a ProxyCommand that ignores %h lets such a name reach the handshake.
    let (kh, proxy) = fresh_known_hosts_and_proxy_command("ssh-pattern-known-hosts");
    let key = key("id_ed25519");
    let user = env("NETKIT_TEST_SSH_USER");
    let run = |extra: &[&str], dest: &str| {
        let mut args = vec!["ssh", "-F", "none", "--known-hosts", kh.to_str().unwrap()];
        args.extend(["--accept-new", "-i", key.to_str().unwrap(), "-l", &user]);
        args.extend(["-o", &proxy]);
        args.extend(extra);
        args.extend([dest, "echo", "ran"]);
        netkit(&args, b"", &[])
    };
    // Given as the destination: refused before anything, as OpenSSH refuses it.
    let out = run(&[], "foo,*");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains("invalid characters") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!kh.exists());
    // Named by the config's HostKeyAlias: accepted for this session, never written.
    let out = run(&["-o", "HostKeyAlias=foo,*"], "127.0.0.1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, b"ran\n", "{err}");
    assert!(err.contains("cannot add"), "{err}");
    let recorded = std::fs::read_to_string(&kh).unwrap_or_default();
    assert!(!recorded.contains('*'), "{recorded}");
}

#[test]
fn a_proxy_command_carries_the_session_and_ends_with_it() {
    // The host name cannot be resolved: only the ProxyCommand (our own `netkit connect`)
    // can reach the server, and it does so by the port it is given.
    let file = work_dir().join("ssh-config-proxy-command");
    std::fs::write(
        &file,
        format!(
            "Host behind-proxy\n    HostName {UNRESOLVABLE_HOST}\n    Port {}\n    User {}\n    ProxyCommand {} connect 127.0.0.1:%p\n",
            port(),
            env("NETKIT_TEST_SSH_USER"),
            netkit_bin().display()
        ),
    )
    .unwrap();
    let kh = work_dir().join("ssh-proxy-command-known-hosts");
    let _ = std::fs::remove_file(&kh);
    let (f, k) = (file.to_str().unwrap(), kh.to_str().unwrap());
    let key = key("id_ed25519");
    let key = key.to_str().unwrap();
    let connection = ["-F", f, "--known-hosts", k, "--accept-new", "-i", key];
    // `netkit ssh` takes them before DEST, `netkit sftp` after its operation.
    let run = |sub: &str, words: &[&str]| {
        let (head, tail) = words.split_at(usize::from(sub == "sftp"));
        let mut args = vec![sub];
        args.extend(head);
        args.extend(connection);
        args.extend(tail);
        netkit(&args, b"", &[])
    };
    let out = run("ssh", &["behind-proxy", "echo", "through-the-proxy"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, b"through-the-proxy\n", "{err}");
    let out = run("sftp", &["ls", "behind-proxy:/"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("etc"),
        "{err}"
    );

    // -o sets one too; a command that never speaks SSH times out and is hung up on.
    let marker = "sleep 86.25";
    let option = format!("ProxyCommand={marker}");
    let out = run(
        "ssh",
        &["--timeout", "1", "-o", &option, "behind-proxy", "true"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("no SSH banner within 1 s"), "{err}");
    let left = Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .expect("pgrep (procps, installed by cargo xtask test)");
    assert!(left.stdout.is_empty(), "the ProxyCommand outlived netkit");
    // A token OpenSSH does not have is named.
    let out = run(
        "ssh",
        &["-o", "ProxyCommand=nc %h %q", "behind-proxy", "true"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("%q") && err.lines().count() == 1, "{err}");
}

#[test]
fn a_key_given_by_dash_i_is_tried_before_the_config_files_keys_not_instead_of_them() {
    // An encrypted -i key with no one to ask its passphrase (no terminal; always so with
    // --hosts) is passed over and the config file's key lets us in, as ssh does.
    let file = work_dir().join("ssh-config-identities");
    std::fs::write(
        &file,
        format!(
            "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  \
             UserKnownHostsFile {}\n  BatchMode yes\n",
            port(),
            env("NETKIT_TEST_SSH_USER"),
            key("id_ed25519").display(),
            env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        ),
    )
    .unwrap();
    let (file, encrypted) = (file.display().to_string(), key("id_encrypted"));
    let encrypted = encrypted.to_str().unwrap();
    let out = netkit(
        &["ssh", "-F", &file, "-i", encrypted, "box", "echo", "in"],
        b"",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, b"in\n", "{err}");
    assert!(err.contains("passed over"), "{err}");
    let out = netkit(
        &[
            "ssh", "-F", &file, "-i", encrypted, "--hosts", "box", "--", "echo in",
        ],
        b"",
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("box | in"), "{text}");
}

#[test]
fn host_aliases_from_an_ssh_config_file() {
    let file = work_dir().join("ssh-config");
    std::fs::write(
        &file,
        format!(
            "Host netkit-alias\n    HostName 127.0.0.1\n    Port {}\n    User {}\n    IdentityFile {}\n    ForwardAgent no\n",
            port(),
            env("NETKIT_TEST_SSH_USER"),
            key("id_ecdsa").display()
        ),
    )
    .unwrap();
    let kh = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let f = file.to_str().unwrap();
    let out = netkit(
        &[
            "ssh",
            "-F",
            f,
            "--known-hosts",
            &kh,
            "netkit-alias",
            "whoami",
        ],
        b"",
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        env("NETKIT_TEST_SSH_USER"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = netkit(
        &[
            "ssh",
            "-F",
            f,
            "--known-hosts",
            &kh,
            UNRESOLVABLE_HOST,
            "true",
        ],
        b"",
        &[],
    );
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().count() == 1 && err.contains(UNRESOLVABLE_HOST),
        "{err}"
    );
    let out = netkit(
        &["ssh", "-F", "/no/such/config", "netkit-alias", "true"],
        b"",
        &[],
    );
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/config"));

    // `-F none` reads no file at all, not even ~/.ssh/config (here one sending every host to
    // 127.0.0.2, where nothing listens).
    let home = work_dir().join("ssh-config-none-home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/config"), "Host *\n  HostName 127.0.0.2\n").unwrap();
    let (port, kh, key) = (
        port().to_string(),
        env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        key("id_ed25519"),
    );
    let key = key.to_str().unwrap();
    let dest = dest();
    let vars = [("HOME", home.display().to_string())];
    let run = |config: &[&str]| {
        let common = ["-p", &port, "--known-hosts", &kh, "-i", key, &dest];
        let args = [&["ssh"], config, &common, &["echo", "read-no-config"]].concat();
        netkit(&args, b"", &vars)
    };
    // `-o` wins over the file, and a file's first value over its later ones, as in ssh.
    let globals = work_dir().join("ssh-config-globals");
    let file = format!(
        "Port {port}\nPort 1\nUser {}\nUser nobody\n",
        env("NETKIT_TEST_SSH_USER")
    );
    std::fs::write(&globals, file).unwrap();
    let globals = globals.to_str().unwrap();
    let run_globals = |options: &[&str]| {
        let common = [
            "-F",
            globals,
            "--known-hosts",
            &kh,
            "-i",
            key,
            "127.0.0.1",
            "echo",
            "ok",
        ];
        netkit(&[&["ssh"], options, &common].concat(), b"", &[])
    };
    let out = run_globals(&[]);
    assert_eq!(
        out.stdout,
        b"ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_globals(&["-o", "Port=1", "-o", &format!("Port={port}")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":1: cannot connect"),
        "the first -o Port wins: {err}"
    );
    let out = run_globals(&["-o", "User=nobody"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nobody@127.0.0.1: authentication failed"),
        "-o User wins: {err}"
    );
    // Tokens in HostName (%h) and IdentityFile (%r), as ssh expands them; a key file that is
    // not there is passed over, as ssh does.
    let keys = work_dir().join("ssh-config-token-keys");
    std::fs::create_dir_all(&keys).unwrap();
    let user = env("NETKIT_TEST_SSH_USER");
    std::fs::copy(key, keys.join(format!("id_{user}"))).unwrap();
    let tokens = work_dir().join("ssh-config-tokens");
    let file = format!(
        "Host 127.0.0\n  HostName %h.1\n  Port {port}\n  User {user}\n\
         IdentityFile {0}/absent_%r\n  IdentityFile {0}/id_%r\n",
        keys.display()
    );
    std::fs::write(&tokens, file).unwrap();
    let tokens = tokens.to_str().unwrap();
    let out = netkit(
        &[
            "ssh",
            "-F",
            tokens,
            "--known-hosts",
            &kh,
            "127.0.0",
            "echo",
            "tokens",
        ],
        b"",
        &[],
    );
    assert_eq!(
        out.stdout,
        b"tokens\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // -l and -p come first, as ssh's: %r and %p see them, not the file's User and Port.
    let flagged = work_dir().join("ssh-config-tokens-flagged");
    let file = format!(
        "Host 127.0.0\n  HostName %h.1\n  Port 1\n  User alice\n\
         IdentityFile {0}/id_%r\n  UserKnownHostsFile {1}-%p\n",
        keys.display(),
        flagged.display()
    );
    std::fs::write(&flagged, file).unwrap();
    std::fs::copy(&kh, format!("{}-{port}", flagged.display())).unwrap();
    let port_flag = port.to_string();
    let out = netkit(
        &[
            "ssh",
            "-F",
            flagged.to_str().unwrap(),
            "-l",
            &user,
            "-p",
            &port_flag,
            "127.0.0",
            "echo",
            "flags",
        ],
        b"",
        &[],
    );
    assert_eq!(
        out.stdout,
        b"flags\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["-F", "none"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"read-no-config\n");
    let out = run(&[]);
    assert_eq!(
        out.status.code(),
        Some(255),
        "without -F none the home config applies: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn quotes_in_the_config_file_and_dash_o_reach_the_server_as_in_ssh() {
    // As ssh (readconf.c, misc.c argv_split): RemoteCommand is the rest of the line as
    // written, for the remote shell (its spaces were squeezed); a quote inside a quoted
    // SetEnv word is part of the value (it was lost, or the line refused). The test sshd
    // accepts NETKIT_TEST_*.
    let file = work_dir().join("ssh-config-quotes");
    std::fs::write(
        &file,
        format!(
            "Host netkit-quoted\n    HostName 127.0.0.1\n    Port {}\n    User {}\n    \
             IdentityFile {}\n    SetEnv \"NETKIT_TEST_QUOTE=it's\"\n    \
             RemoteCommand echo \"a   b\"  \"$NETKIT_TEST_QUOTE\"\n",
            port(),
            env("NETKIT_TEST_SSH_USER"),
            key("id_ed25519").display()
        ),
    )
    .unwrap();
    let kh = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let run = |words: &[&str]| {
        let mut args = vec!["ssh", "-F", file.to_str().unwrap(), "--known-hosts", &kh];
        args.extend_from_slice(words);
        netkit(&args, b"", &[])
    };
    let out = run(&["netkit-quoted"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a   b it's\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same with -o, which come first and win; `b\ c` is one word, as in ssh.
    let out = run(&[
        "-o",
        "SetEnv NETKIT_TEST_QUOTE='say \"hi\"' NETKIT_TEST_OTHER=b\\ c",
        "-o",
        "RemoteCommand=echo '[$NETKIT_TEST_QUOTE]'  \"[$NETKIT_TEST_OTHER]  'x'\"",
        "netkit-quoted",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[$NETKIT_TEST_QUOTE] [b c]  'x'\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "-o",
        "SetEnv NETKIT_TEST_QUOTE='say \"hi\"'",
        "-o",
        "RemoteCommand=echo \"$NETKIT_TEST_QUOTE\"",
        "netkit-quoted",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "say \"hi\"\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_quoted_hash_in_a_config_command_reaches_the_server_as_in_ssh() {
    // As `ssh -G` reads it: `RemoteCommand echo "#tag"` is the command as written, and a line
    // in another host's block stops no host (the whole file was refused).
    let file = work_dir().join("ssh-config-quoted-hash");
    std::fs::write(
        &file,
        format!(
            "Host netkit-other\n    LocalCommand tmux new -A -s \"#main\"\n\
             Host netkit-hash\n    HostName 127.0.0.1\n    Port {}\n    User {}\n    \
             IdentityFile {}\n    RemoteCommand echo \"#tag\" '#x'\n",
            port(),
            env("NETKIT_TEST_SSH_USER"),
            key("id_ed25519").display()
        ),
    )
    .unwrap();
    let kh = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let run = |words: &[&str]| {
        let mut args = vec!["ssh", "-F", file.to_str().unwrap(), "--known-hosts", &kh];
        args.extend_from_slice(words);
        netkit(&args, b"", &[])
    };
    let out = run(&["netkit-hash"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "#tag #x\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ssh: "keyword user extra arguments at end of line", exit 255 (it was user `a`).
    let out = run(&["-o", "User=a b", "netkit-hash"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(
        stderr.contains("extra arguments at end of line"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn remote_command_and_request_tty_from_the_config_file_as_in_ssh() {
    let file = work_dir().join("ssh-config-remote-command");
    let host = |name: &str, extra: &str| {
        format!(
            "Host {name}\n    HostName 127.0.0.1\n    Port {}\n    User {}\n    IdentityFile {}\n{extra}",
            port(),
            env("NETKIT_TEST_SSH_USER"),
            key("id_ed25519").display()
        )
    };
    std::fs::write(
        &file,
        [
            host("netkit-rc", "    RemoteCommand echo ran for %r at %p\n"),
            host("netkit-tty", "    RequestTTY force\n"),
            host("netkit-plain", ""),
        ]
        .concat(),
    )
    .unwrap();
    let kh = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let run = |words: &[&str]| {
        let mut args = vec!["ssh", "-F", file.to_str().unwrap(), "--known-hosts", &kh];
        args.extend_from_slice(words);
        netkit(&args, b"", &[])
    };
    let text = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();

    let out = run(&["netkit-rc"]);
    assert_eq!(
        text(&out),
        format!("ran for {} at {}\n", env("NETKIT_TEST_SSH_USER"), port()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As ssh: a command on the line and RemoteCommand together are refused, and `-o
    // RemoteCommand=none` (first obtained wins) lets the line's command run.
    let out = run(&["netkit-rc", "true"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RemoteCommand"));
    let out = run(&["-o", "RemoteCommand=none", "netkit-rc", "echo", "mine"]);
    assert_eq!(text(&out), "mine\n");
    let out = run(&["-o", "RemoteCommand=echo from -o", "netkit-plain"]);
    assert_eq!(text(&out), "from -o\n");

    // RequestTTY force is -tt; -T on the command line wins over it.
    let out = run(&["netkit-tty", "tty"]);
    assert!(text(&out).contains("/dev/pts/"), "{}", text(&out));
    let out = run(&["-T", "netkit-tty", "tty"]);
    assert_eq!(
        (out.status.code(), text(&out)),
        (Some(1), "not a tty\n".into())
    );
    let out = run(&["-o", "RequestTTY=force", "netkit-plain", "tty"]);
    assert!(text(&out).contains("/dev/pts/"), "{}", text(&out));
    let out = run(&["-o", "RequestTTY=sometimes", "netkit-plain", "tty"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RequestTTY"));
}

#[test]
fn remote_forwarding_carries_bytes_both_ways_while_the_command_runs() {
    let echo = netkit_tests::Served::start(&["echo", "--bind", "127.0.0.1:0"]);
    let rport = free_port();
    let spec = format!("{rport}:127.0.0.1:{}", echo.addrs[0].port());
    // The command itself uses the port the server now listens on.
    let script = format!(
        "python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', {rport})); \
         s.sendall(bytes(range(256)) * 4096); s.shutdown(socket.SHUT_WR); \
         d = b''.join(iter(lambda: s.recv(65536), b'')); print(len(d), d == bytes(range(256)) * 4096)\""
    );
    let out = ssh_with(&["-R", &spec], &[&script], b"");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        (Some(0), "1048576 True"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Port 0: the server picks one, and netkit says which (as OpenSSH).
    let spec = format!("0:127.0.0.1:{}", echo.addrs[0].port());
    let out = ssh_with(&["-R", &spec], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("allocated port"),
        "{err}"
    );
    // A port the server cannot listen on (taken on both loopbacks) is a warning and the
    // command still runs, as in OpenSSH; with ExitOnForwardFailure it is a one-line error.
    let (taken_port, _taken) = taken_on_both_loopbacks();
    let spec = format!("{taken_port}:127.0.0.1:{}", echo.addrs[0].port());
    a_forward_that_cannot_listen_warns_unless_exit_on_forward_failure("-R", &spec);
}

#[test]
fn remote_forwards_without_an_address_listen_on_the_servers_loopback() {
    // The test sshd lets the client choose (GatewayPorts clientspecified): asking for no
    // address in particular must still mean loopback, as ssh asks, not every interface.
    let rport = free_port();
    let spec = format!("{rport}:127.0.0.1:9");
    let _child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(&["-N", "-R", &spec], &[]))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null()),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ss = Command::new("ss")
            .args(["-tlnH"])
            .output()
            .expect("ss (iproute2)");
        let mut heard: Vec<String> = String::from_utf8_lossy(&ss.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
            .filter(|addr| addr.ends_with(&format!(":{rport}")))
            .collect();
        heard.sort();
        if heard.len() >= 2 || std::time::Instant::now() > deadline {
            assert_eq!(
                heard,
                [format!("127.0.0.1:{rport}"), format!("[::1]:{rport}")]
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_remote_forward_is_taken_when_the_server_opens_it() {
    // The first keepalive goes out while the first -R waits for its answer, and sshd answers
    // it (REQUEST_FAILURE) after the forward's SUCCESS: libssh2 left that reply queued, and
    // the second -R took it for its own, so it "failed" though sshd listened on it. As ssh,
    // each -R gets its own answer; the command sees all three ports listening.
    let ports = [free_port(), free_port(), free_port()];
    let mut flags = vec!["-o", "ExitOnForwardFailure=yes"];
    let specs: Vec<String> = ports.iter().map(|p| format!("{p}:127.0.0.1:9")).collect();
    for spec in &specs {
        flags.extend(["-R", spec.as_str()]);
    }
    let out = ssh_with(&flags, &["ss -tlnH"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    let listening = String::from_utf8_lossy(&out.stdout);
    for port in ports {
        assert!(
            listening.contains(&format!("127.0.0.1:{port} ")),
            "{port} not listening:\n{listening}"
        );
    }
}

/// A port taken on 127.0.0.1 and on ::1 while the listeners are held.
fn taken_on_both_loopbacks() -> (u16, [std::net::TcpListener; 2]) {
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = v4.local_addr().unwrap().port();
    let v6 = std::net::TcpListener::bind(("::1", port)).unwrap();
    (port, [v4, v6])
}

/// A `flag spec` forward that cannot listen: a one-line warning and the command runs, as in
/// OpenSSH; with `ExitOnForwardFailure=yes`, a one-line error, exit 255, and no command.
fn a_forward_that_cannot_listen_warns_unless_exit_on_forward_failure(flag: &str, spec: &str) {
    let out = ssh_with(&[flag, spec], &["echo", "ran"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        (Some(0), "ran"),
        "{err}"
    );
    assert!(
        err.contains(&format!("warning: {flag}")) && err.lines().count() == 1,
        "{err}"
    );
    let out = ssh_with(
        &["-o", "ExitOnForwardFailure=yes", flag, spec],
        &["echo", "ran"],
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(out.stdout.is_empty(), "the command ran");
    assert!(err.contains(flag) && err.lines().count() == 1, "{err}");
}

#[test]
fn dash_d_is_a_socks_proxy_through_the_server_and_dash_n_waits_for_a_signal() {
    let dir = work_dir().join("socks-root");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "through socks\n").unwrap();
    let http = netkit_tests::Served::start(&[
        "http",
        "--root",
        dir.to_str().unwrap(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let dport = free_port().to_string();
    let lport = free_port();
    let local = format!("{lport}:127.0.0.1:{}", http.addrs[0].port());
    let child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(&["-N", "-D", &dport, "-L", &local], &[]))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let url = format!("http://127.0.0.1:{}/hello.txt", http.addrs[0].port());
    let proxy = format!("127.0.0.1:{dport}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&proxy).is_err() {
        assert!(std::time::Instant::now() < deadline, "-D never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    for kind in ["--socks5-hostname", "--socks5", "--socks4a", "--socks4"] {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", kind, &proxy, &url])
            .output()
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "through socks\n",
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // netkit's HTTP client takes the same proxy (ureq's SOCKS connector).
    for scheme in ["socks5h", "socks5", "socks4a", "socks4"] {
        let out = netkit(
            &[
                "http",
                "--timeout",
                "20",
                "--proxy",
                &format!("{scheme}://{proxy}"),
                &url,
            ],
            b"",
            &[],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "through socks\n",
            "netkit http via {scheme}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The -L beside it.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .arg(format!("http://127.0.0.1:{lport}/hello.txt"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through socks\n");
    // -N: the one session carries both forwards, as with ssh (each had one of its own, and
    // an idle one was held besides).
    let ss = Command::new("ss")
        .args(["-tnpH", "state", "established"])
        .arg(format!("dport = :{}", port()))
        .output()
        .expect("ss (iproute2)");
    let sessions = String::from_utf8_lossy(&ss.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={},", child.id())))
        .count();
    // -N: no command runs; SIGTERM ends it, with success.
    terminate(i32::try_from(child.id()).unwrap());
    let out = child.wait_with_output();
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sessions, 1, "{}", String::from_utf8_lossy(&ss.stdout));
}

#[test]
fn dash_w_joins_stdin_and_stdout_to_a_port_and_serves_openssh_as_a_proxy_command() {
    let echo = netkit_tests::Served::start(&["echo", "--bind", "127.0.0.1:0"]);
    let to = format!("127.0.0.1:{}", echo.addrs[0].port());
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let out = ssh(&["-W", &to], &data);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == data,
        "{} of {} bytes",
        out.stdout.len(),
        data.len()
    );

    // OpenSSH's own client reaches the server through `netkit ssh -W %h:%p`.
    let proxy = netkit_line(&[], &["-W", "%h:%p"]);
    let out = Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("ProxyCommand={proxy}"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            env("NETKIT_TEST_SSH_KNOWN_HOSTS")
        ))
        .arg("-i")
        .arg(key("id_ed25519"))
        .args(["-p", &port().to_string(), &dest(), "echo", "via-netkit"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(out.stdout, b"via-netkit\n", "{err}");

    // A port nothing listens on: ssh's exit code and the port named on one line.
    let closed = format!("127.0.0.1:{}", free_port());
    let out = ssh(&["-W", &closed], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains(&closed) && err.lines().count() == 1, "{err}");
    for (words, named) in [
        (&["-W", "no-port"][..], "-W \"no-port\""),
        (&["-W", &to, "true"], "a command was given"),
    ] {
        let out = ssh(words, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{err}");
        assert!(err.contains(named), "{err}");
    }
}

/// A connection to the forward listening on `lport`, once it listens (waited for up to 10 s).
fn forwarded(lport: u16) -> std::net::TcpStream {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stream = loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", lport)) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the forward never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn local_forwarding_carries_bytes_both_ways_while_the_command_runs() {
    let echo = netkit_tests::Served::start(&["echo", "--bind", "127.0.0.1:0"]);
    let lport = free_port();
    let spec = format!("{lport}:127.0.0.1:{}", echo.addrs[0].port());
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(&["-L", &spec], &["sleep", "3"]))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null()),
    );
    let mut stream = forwarded(lport);
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 13 % 256) as u8).collect();
    let mut writer = stream.try_clone().unwrap();
    let sent = data.clone();
    let feeder = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut back).unwrap();
    feeder.join().unwrap();
    assert!(
        back == data,
        "{} of {} bytes came back",
        back.len(),
        data.len()
    );
    assert!(child.wait().unwrap().success());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", lport)).is_err(),
        "the forward outlived the command"
    );
    // A connection still carrying when the command exits finishes first, as with ssh
    // (`ssh -f -L ... sleep 10` then one connection): it was cut off.
    let slow = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = format!("{lport}:127.0.0.1:{}", slow.local_addr().unwrap().port());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = slow.accept().unwrap();
        for i in 0..4 {
            conn.write_all(format!("chunk {i}\n").as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(&["-L", &spec], &["sleep", "1"]))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null()),
    );
    let mut stream = forwarded(lport);
    // Our side done sending first, the server's end closes the connection; netkit ends with
    // it, at once: it slept until the next keepalive was due (15 s).
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut stream, &mut got).unwrap();
    let closed = std::time::Instant::now();
    assert_eq!(got, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    server.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        closed.elapsed() < Duration::from_secs(5),
        "netkit ended {:?} after its last connection",
        closed.elapsed()
    );
    // A local port in use.
    let (taken_port, _taken) = taken_on_both_loopbacks();
    let spec = format!("{taken_port}:127.0.0.1:9");
    a_forward_that_cannot_listen_warns_unless_exit_on_forward_failure("-L", &spec);
}

#[test]
fn dash_v_tells_the_forward_its_connection_the_login_and_the_exit_status() {
    // As ssh -v tells them: a forward used once said nothing of its listener, its connection,
    // the method that got in or how the command ended.
    let echo = netkit_tests::Served::start(&["echo", "--bind", "127.0.0.1:0"]);
    let (lport, eport) = (free_port(), echo.addrs[0].port());
    let spec = format!("{lport}:127.0.0.1:{eport}");
    let child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(&["-v", "-L", &spec], &["sleep 2; exit 3"]))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut stream = forwarded(lport);
    stream.write_all(b"ping").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut back).unwrap();
    assert_eq!(back, b"ping");
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    for line in [
        format!(
            "debug: Local forwarding listening on 127.0.0.1 port {lport}, to remote address \
             127.0.0.1:{eport}"
        ),
        format!(
            "debug: Connection to port {lport} forwarding to 127.0.0.1 port {eport} requested."
        ),
        format!(
            "authenticated as {} to {}:{} using publickey {}",
            env("NETKIT_TEST_SSH_USER"),
            env("NETKIT_TEST_SSH_HOST"),
            port(),
            key("id_ed25519").display()
        ),
        ": Exit status 3 after ".to_owned(),
    ] {
        assert!(err.contains(&line), "{line:?} in:\n{err}");
    }
    // Where the connection came from is -vv's (ssh's DEBUG2), not -v's.
    assert!(!err.contains("connect from 127.0.0.1"), "{err}");
}

#[test]
fn forward_socket_paths_take_tokens_as_ssh_expands_them() {
    // `-L PORT:/run/%u/x.sock` and LocalForward's socket paths were taken as written, where
    // ssh expands OpenSSH's tokens and variables in them (not `~`, nor in host names).
    let dir = work_dir().join("ssh-cli-forward-tokens");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        "Host Mixed\n  HostName Db.Example.ORG\n  User Bob\n  Port 2222\n  \
         LocalForward 8080 /s/%h-%p-%r-%n-%C-%u-%i-%l-%L-%k-%%.sock\n  \
         LocalForward 8081 ~/s-%h.sock\n  LocalForward 8082 %h:80\n  \
         LocalForward 8083 /s/${NETKIT_SOCK_DIR}/%h.sock\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let args = [
        "-F",
        config,
        "-L",
        "9090:/run/%r/%h.sock",
        "-L",
        "[127.0.0.1]:9091:[/a:%p]",
        "-G",
        "Mixed",
    ];
    let vars = [("NETKIT_SOCK_DIR", "var-dir".to_owned())];
    let forwards = |out: &Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("localforward "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let ours = netkit(&[&["ssh"][..], &args].concat(), b"", &vars);
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let theirs = Command::new("ssh")
        .args(args)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(theirs.status.success(), "ssh -G");
    assert_eq!(forwards(&ours), forwards(&theirs));
    assert_eq!(forwards(&ours).len(), 6, "{:?}", forwards(&ours));
    assert!(
        forwards(&ours).contains(&"localforward 9090 /run/Bob/db.example.org.sock".to_owned()),
        "{:?}",
        forwards(&ours)
    );
    // A token ssh 9.2 does not have is refused, as by ssh.
    let args = ["-F", "none", "-L", "9090:/run/%j.sock", "-G", "box"];
    let ours = netkit(&[&["ssh"][..], &args].concat(), b"", &[]);
    let err = String::from_utf8_lossy(&ours.stderr);
    assert_eq!(ours.status.code(), Some(255), "{err}");
    assert!(err.contains("unknown token %j"), "{err}");
    // On the real sshd, the socket reached is the one the tokens name.
    let host = env("NETKIT_TEST_SSH_HOST");
    let path = remote_dir("streamlocal-tokens").join(format!("app-{host}-{}.sock", port()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"reached").unwrap();
    });
    let lport = free_port();
    let spec = format!(
        "{lport}:{}",
        path.with_file_name("app-%h-%p.sock").display()
    );
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(&["-L", &spec], &["sleep", "2"]))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null()),
    );
    let mut stream = forwarded(lport);
    let mut got = String::new();
    std::io::Read::read_to_string(&mut stream, &mut got).unwrap();
    assert_eq!(got, "reached");
    server.join().unwrap();
    drop(stream);
    assert!(child.wait().unwrap().success());
}

#[test]
fn proxy_jump_takes_the_hosts_tokens_as_ssh_does() {
    // `-J %r@%h:PORT` (ssh_config(5): ProxyJump takes %h %n %p %r) was a host named `%h`.
    let jump = format!("%r@%h:{}", port());
    let out = ssh_with(&["-J", &jump], &["echo jumped"], b"");
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"jumped\n"[..]),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A token ProxyJump does not take is refused, as by ssh.
    let out = ssh_with(&["-J", "jump-%C"], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("unknown token %C"), "{err}");
}

#[test]
fn dash_l_reaches_a_unix_socket_on_the_server_as_ssh_does() {
    // A database's or Docker's socket, which the test user may connect to.
    let path = remote_dir("streamlocal").join("app.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut asked = [0; 5];
        std::io::Read::read_exact(&mut conn, &mut asked).unwrap();
        conn.write_all(b"got ").unwrap();
        conn.write_all(&asked).unwrap();
    });
    let lport = free_port();
    let spec = format!("{lport}:{}", path.display());
    let out = netkit(&["ssh", "-G", "-L", &spec, "example.org"], b"", &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("localforward {lport} {}\n", path.display())),
        "{out:?}"
    );
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(&["-L", &spec], &["sleep", "2"]))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null()),
    );
    let mut stream = forwarded(lport);
    stream.write_all(b"hello").unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut stream, &mut got).unwrap();
    assert_eq!(got, "got hello");
    server.join().unwrap();
    // An open connection is waited for when the command ends, as ssh waits for it.
    drop(stream);
    assert!(child.wait().unwrap().success());
    // What netkit cannot do is said before connecting.
    for (flag, spec, says) in [
        ("-R", "8000:/tmp/x.sock", "not to a Unix socket"),
        ("-L", "/tmp/x.sock:db:80", "not on a Unix socket"),
    ] {
        let out = ssh_with(&[flag, spec], &["true"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn a_forward_the_server_cannot_open_and_a_silent_socks_client_are_said_plainly() {
    let (lport, dport, closed) = (free_port(), free_port(), free_port());
    let spec = format!("{lport}:127.0.0.1:{closed}");
    let child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(
                &["-L", &spec, "-D", &dport.to_string()],
                &["sleep", "7"],
            ))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stderr(Stdio::piped()),
    );
    // Nothing listens behind the forward: the local connection is closed at once, as ssh's.
    let mut refused = forwarded(lport);
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut refused, &mut got).unwrap();
    assert!(got.is_empty());
    // A SOCKS client that says nothing (a browser's spare connection) is closed quietly.
    let mut silent = forwarded(dport);
    std::io::Read::read_to_end(&mut silent, &mut got).unwrap();
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "forward to 127.0.0.1:{closed}: Channel open failure (connect failed)"
        )),
        "{err}"
    );
    // Neither ssh2's code nor errno's "temporarily unavailable" for a timeout.
    assert!(!err.contains("Session("), "{err}");
    assert!(!err.contains("temporarily"), "{err}");
}

#[test]
fn dash_o_takes_openssh_options_and_refuses_unknown_ones() {
    let dir = work_dir().join("ssh-cli-dash-o");
    std::fs::create_dir_all(&dir).unwrap();
    let known = dir.join("known_hosts");
    let _ = std::fs::remove_file(&known);
    let key = key("id_ed25519").display().to_string();
    let run = |options: &[String]| {
        let mut args = vec!["ssh".to_owned(), "-i".into(), key.clone()];
        for option in options {
            args.extend(["-o".to_owned(), option.clone()]);
        }
        args.extend([dest(), "echo".into(), "in".into()]);
        netkit(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            b"",
            &[],
        )
    };
    let port = format!("Port={}", port());
    let file = format!("UserKnownHostsFile={}", known.display());
    let out = run(&[
        port.clone(),
        "StrictHostKeyChecking=accept-new".into(),
        file.clone(),
        "ForwardX11 yes".into(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"in\n"[..]),
        "{err}"
    );
    assert!(
        err.contains("ForwardX11"),
        "an ignored option is named: {err}"
    );
    assert!(
        std::fs::metadata(&known).unwrap().len() > 0,
        "the key was not added"
    );
    // The scripts' usual line: no known_hosts kept, nothing said (LogLevel ERROR), the
    // keepalive interval taken.
    let out = run(&[
        port.clone(),
        "StrictHostKeyChecking=no".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "LogLevel=ERROR".into(),
        "ServerAliveInterval=5".into(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice(), err.as_ref()),
        (Some(0), &b"in\n"[..], "")
    );
    // So in a config file (it was followed only as -o).
    let quiet = dir.join("quiet.conf");
    std::fs::write(&quiet, "Host *\n  LogLevel ERROR\n").unwrap();
    let mut args = vec!["ssh", "-F", quiet.to_str().unwrap(), "-i", &key];
    let port_option = port.clone();
    args.extend(["-o", &port_option, "-o", "StrictHostKeyChecking=no"]);
    args.extend(["-o", "UserKnownHostsFile=/dev/null"]);
    let destination = dest();
    args.extend([destination.as_str(), "echo", "in"]);
    let out = netkit(&args, b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice(), err.as_ref()),
        (Some(0), &b"in\n"[..], "")
    );

    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let out = run(&[
        port.clone(),
        "StrictHostKeyChecking yes".into(),
        format!("UserKnownHostsFile {}", empty.display()),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("host key is not known"), "{err}");

    for bad in ["NoSuchOption=1", "Port", "Host *"] {
        let out = run(&[port.clone(), file.clone(), bad.into()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{bad}: {err}");
        assert!(
            err.starts_with("netkit: ") && err.contains(bad) && err.lines().count() == 1,
            "{bad}: {err}"
        );
        assert!(out.stdout.is_empty(), "{bad} ran the command");
    }
}

#[test]
fn ctrl_c_at_a_passphrase_prompt_leaves_the_terminal_as_it_was() {
    // The prompt read in raw mode and raised SIGINT before putting the terminal back: the
    // shell was left with no echo, no line editing and no Ctrl-C.
    let line = format!(
        "{} ssh -p {} --known-hosts {} -i {} {} true; echo status-$?; \
         stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(isig|icanon|echo)' | tr '\\n' ' '",
        netkit_bin().display(),
        port(),
        env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        key("id_encrypted").display(),
        dest()
    );
    let mut terminal = Terminal::start(&line);
    terminal.wait_for("Enter passphrase for key");
    terminal.type_keys(b"\x03");
    let (_, screen) = terminal.finish();
    assert!(screen.contains("status-130"), "{screen}");
    assert!(screen.contains("isig icanon echo "), "{screen}");
}

#[test]
fn a_remote_terminal_ended_by_a_signal_leaves_the_terminal_as_it_was() {
    // Raw for the remote terminal, `timeout 60 netkit ssh -t ...` left the shell without
    // echo, line editing or Ctrl-C.
    let ssh = format!(
        "{} 'echo raw-mode-test; sleep 30'",
        netkit_line(&["-t"], &[])
    );
    let line = format!(
        "(sleep 2; pkill -TERM -f '^{} ssh .*raw-mode-test') & {ssh}; echo status-$?; \
         stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(isig|icanon|echo)' | tr '\\n' ' '",
        netkit_bin().display()
    );
    let terminal = Terminal::start(&line);
    terminal.wait_for("raw-mode-test");
    let (_, screen) = terminal.finish();
    assert!(screen.contains("status-143"), "{screen}");
    assert!(screen.contains("isig icanon echo "), "{screen}");
}

#[test]
fn on_a_terminal_the_passphrase_of_a_key_is_asked_for() {
    let line = [
        netkit_bin().display().to_string(),
        "ssh".into(),
        "-p".into(),
        port().to_string(),
        "--known-hosts".into(),
        env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        "-i".into(),
        key("id_encrypted").display().to_string(),
        dest(),
        "echo".into(),
        "unlocked-$((6*7))".into(),
    ]
    .join(" ");
    let mut terminal = Terminal::start(&line);
    terminal.wait_for("Enter passphrase for key");
    // A wrong passphrase is asked again in the same words, as ssh does.
    terminal.type_keys(b"not-the-passphrase\r");
    terminal.wait_for_nth("Enter passphrase for key", 2);
    terminal.type_keys(format!("{}\r", env("NETKIT_TEST_SSH_PASSPHRASE")).as_bytes());
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("unlocked-42"), "{screen}");

    // Three wrong answers, or an empty one, skip the key: the password is asked next, as ssh.
    let password = format!("{}\r", env("NETKIT_TEST_SSH_PASSWORD"));
    for answers in [&["wrong-1\r", "wrong-2\r", "wrong-3\r"][..], &["\r"]] {
        let mut terminal = Terminal::start(&line);
        for (n, answer) in answers.iter().enumerate() {
            terminal.wait_for_nth("passphrase", n + 1);
            terminal.type_keys(answer.as_bytes());
        }
        terminal.wait_for("'s password:");
        terminal.type_keys(password.as_bytes());
        let (code, screen) = terminal.finish();
        assert_eq!(code, Some(0), "{answers:?}: {screen}");
        assert!(screen.contains("unlocked-42"), "{answers:?}: {screen}");
        assert_eq!(
            screen.matches("passphrase").count(),
            answers.len(),
            "{answers:?}: {screen}"
        );
    }

    // A key named with -i and skipped leaves no default key behind it: ssh tries the default
    // files only when no key was named, so an authorized ~/.ssh/id_ed25519 is not offered.
    let home = work_dir().join("ssh-cli-named-key-skipped");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let default_key = home.join(".ssh/id_ed25519");
    std::fs::copy(key("id_ed25519"), &default_key).unwrap();
    std::fs::set_permissions(&default_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // An -i key is asked for when its turn comes, before a config file's key after it gets
    // in (who logs in can depend on the key), as ssh asks.
    let file = work_dir().join("ssh-config-after-dash-i");
    std::fs::write(
        &file,
        format!("IdentityFile {}\n", key("id_ed25519").display()),
    )
    .unwrap();
    let with_file = line.replacen(" ssh ", &format!(" ssh -F {} ", file.display()), 1);
    let mut terminal = Terminal::start(&with_file);
    terminal.wait_for("Enter passphrase for key");
    terminal.type_keys(format!("{}\r", env("NETKIT_TEST_SSH_PASSPHRASE")).as_bytes());
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("unlocked-42") && !screen.contains("passed over"),
        "{screen}"
    );
    let mut terminal = Terminal::start(&format!("HOME={} {line}", home.display()));
    terminal.wait_for("Enter passphrase for key");
    terminal.type_keys(b"\r");
    terminal.wait_for("'s password:");
    terminal.type_keys(password.as_bytes());
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("unlocked-42"), "{screen}");

    // The same key as the default ~/.ssh/id_ed25519, no -i: asked for too, as ssh does.
    let home = work_dir().join("ssh-cli-locked-default-key");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let default_key = home.join(".ssh/id_ed25519");
    std::fs::copy(key("id_encrypted"), &default_key).unwrap();
    std::fs::set_permissions(&default_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let line = format!(
        "HOME={} {} ssh -p {} --known-hosts {} {} echo unlocked-$((6*7))",
        home.display(),
        netkit_bin().display(),
        port(),
        env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        dest()
    );
    let mut terminal = Terminal::start(&line);
    terminal.wait_for(&format!(
        "Enter passphrase for key '{}'",
        default_key.display()
    ));
    terminal.type_keys(format!("{}\r", env("NETKIT_TEST_SSH_PASSPHRASE")).as_bytes());
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("unlocked-42") && !screen.contains("password"),
        "{screen}"
    );
    // Off a terminal, NETKIT_SSH_PASSPHRASE unlocks it.
    let out = netkit(
        &[
            "ssh",
            "-p",
            &port().to_string(),
            "--known-hosts",
            &env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
            &dest(),
            "echo",
            "unlocked",
        ],
        b"",
        &[
            ("HOME", home.display().to_string()),
            ("NETKIT_SSH_PASSPHRASE", env("NETKIT_TEST_SSH_PASSPHRASE")),
        ],
    );
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        (Some(0), "unlocked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Through a jump host that wants the same key: one question serves both hosts, for a key
    // given with -i and for a default one.
    let jump = jump_dest();
    let known_hosts = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let port = port().to_string();
    let encrypted = key("id_encrypted").display().to_string();
    let netkit_bin = netkit_bin().display().to_string();
    let home_var = format!("HOME={}", home.display());
    let lines = [
        ["", &netkit_bin, "ssh", "-i", &encrypted, "-J", &jump],
        [&home_var, &netkit_bin, "ssh", "-J", &jump, "", ""],
    ];
    for words in lines {
        let line = format!(
            "{} -p {port} --known-hosts {known_hosts} {} echo both-$((6*7))",
            words.join(" "),
            dest()
        );
        let mut terminal = Terminal::start(&line);
        terminal.wait_for("Enter passphrase for key");
        terminal.type_keys(format!("{}\r", env("NETKIT_TEST_SSH_PASSPHRASE")).as_bytes());
        let (code, screen) = terminal.finish();
        assert_eq!(code, Some(0), "{line}: {screen}");
        assert!(screen.contains("both-42"), "{line}: {screen}");
        assert_eq!(screen.matches("passphrase").count(), 1, "{line}: {screen}");
    }
}

#[test]
fn a_wrong_passphrase_is_asked_again_for_every_key_as_ssh_asks() {
    // A default key and a config file's, each answered wrongly once: ssh asks again in the
    // same words, up to three times in all.
    let home = fresh_home("ssh-cli-passphrase-again");
    let default_key = home.join(".ssh/id_ed25519");
    std::fs::copy(key("id_encrypted"), &default_key).unwrap();
    std::fs::set_permissions(&default_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = home.join("config");
    std::fs::write(
        &file,
        format!("IdentityFile {}\n", key("id_encrypted").display()),
    )
    .unwrap();
    let base = format!(
        "HOME={} {} ssh -p {} --known-hosts {} -o PasswordAuthentication=no",
        home.display(),
        netkit_bin().display(),
        port(),
        env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
    );
    let right = format!("{}\r", env("NETKIT_TEST_SSH_PASSPHRASE"));
    for flags in ["", &format!("-F {}", file.display())] {
        let line = format!("{base} {flags} {} echo unlocked-$((6*7))", dest());
        let mut terminal = Terminal::start(&line);
        terminal.wait_for("Enter passphrase for key");
        terminal.type_keys(b"wrong\r");
        terminal.wait_for_nth("Enter passphrase for key", 2);
        terminal.type_keys(right.as_bytes());
        let (code, screen) = terminal.finish();
        assert_eq!(code, Some(0), "{line}: {screen}");
        assert!(screen.contains("unlocked-42"), "{line}: {screen}");
    }
    // A passphrase from NETKIT_SSH_PASSPHRASE is no answer of a person's: a wrong one is
    // said, not turned into a question.
    let line = format!(
        "NETKIT_SSH_PASSPHRASE=wrong {base} -i {} {} echo unlocked-$((6*7))",
        key("id_encrypted").display(),
        dest()
    );
    let terminal = Terminal::start(&line);
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(255), "{screen}");
    assert!(!screen.contains("Enter passphrase"), "{screen}");
}

#[test]
fn sftp_paths_relative_to_the_remote_home_and_into_directories_as_scp() {
    let base = remote_dir("sftp-relative");
    let name = base.file_name().unwrap().to_str().unwrap().to_owned();
    let local = work_dir().join("sftp-relative-up.txt");
    std::fs::write(&local, "relative\n").unwrap();
    // `host:DIR` (relative to the home) that is a directory: the file goes in under its name.
    ok(sftp(&[
        "put",
        local.to_str().unwrap(),
        &format!("{}:{name}", dest()),
    ]));
    assert_eq!(
        std::fs::read_to_string(base.join("sftp-relative-up.txt")).unwrap(),
        "relative\n"
    );
    // `host:` alone is the home directory.
    let home_copy =
        std::path::PathBuf::from(env("NETKIT_TEST_SSH_HOME")).join("sftp-relative-up.txt");
    let _ = std::fs::remove_file(&home_copy);
    ok(sftp(&[
        "put",
        local.to_str().unwrap(),
        &format!("{}:", dest()),
    ]));
    assert_eq!(std::fs::read_to_string(&home_copy).unwrap(), "relative\n");
    std::fs::remove_file(&home_copy).unwrap();
    // `host:~/DIR` and `host:~` are the home too, as scp reads them.
    std::fs::remove_file(base.join("sftp-relative-up.txt")).unwrap();
    ok(sftp(&[
        "put",
        local.to_str().unwrap(),
        &format!("{}:~/{name}", dest()),
    ]));
    assert!(base.join("sftp-relative-up.txt").exists());
    // The connection's options before the operation, as sftp and scp users write them.
    let port = port().to_string();
    let mut args = vec!["sftp", "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let home = format!("{}:~", dest());
    args.extend(["ls", &home]);
    let out = netkit(&args, b"", &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|line| line == name),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A local directory as the target of get: the file goes in under its name.
    let into = work_dir().join("sftp-relative-into");
    let _ = std::fs::remove_dir_all(&into);
    std::fs::create_dir_all(&into).unwrap();
    ok(sftp(&[
        "get",
        &format!("{}:{name}/sftp-relative-up.txt", dest()),
        into.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(into.join("sftp-relative-up.txt")).unwrap(),
        "relative\n"
    );
}

#[test]
fn many_hosts_adding_their_keys_at_once_keep_known_hosts_whole() {
    let known = work_dir().join("ssh-many-accept-new");
    let _ = std::fs::remove_file(&known);
    let (user, port) = (env("NETKIT_TEST_SSH_USER"), port());
    let hosts: Vec<String> = (0..20)
        .map(|i| {
            let host = if i % 2 == 0 { "127.0.0.1" } else { "localhost" };
            format!("{user}@{host}:{port}")
        })
        .collect();
    let key = key("id_ed25519").display().to_string();
    let hosts = hosts.join(",");
    let args = [
        "ssh",
        "--hosts",
        &hosts,
        "--parallel",
        "20",
        "--accept-new",
        "--known-hosts",
    ];
    let mut args: Vec<&str> = args.to_vec();
    let known_str = known.display().to_string();
    args.extend([known_str.as_str(), "-i", &key, "--", "true"]);
    let out = netkit(&args, b"", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = std::fs::read_to_string(&known).unwrap();
    assert!(!text.is_empty());
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert!(
            fields.len() == 3
                && fields[0].starts_with('[')
                && fields[1].starts_with("ssh-")
                && fields[2].len() > 40,
            "a torn known_hosts line: {line:?}\n{text}"
        );
    }
}

#[test]
fn on_a_terminal_the_password_is_asked_for_the_host_that_wants_it() {
    let password = format!("{}\r", env("NETKIT_TEST_SSH_PASSWORD"));
    let user = env("NETKIT_TEST_SSH_USER");
    // The target refuses the key: its password is asked for, as ssh does.
    let line = format!(
        "{} ssh -p {} --known-hosts {} -i {} {} echo by-password-$((6*7))",
        netkit_bin().display(),
        port(),
        env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
        key("id_unknown").display(),
        dest()
    );
    let mut terminal = Terminal::start(&line);
    terminal.wait_for(&format!("{user}@127.0.0.1's password:"));
    terminal.type_keys(password.as_bytes());
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("by-password-42"), "{screen}");

    // A jump host that refuses its key: the password is asked for it, and the target behind
    // it still logs in with its own key.
    let file = work_dir().join("ssh-config-jump-password");
    std::fs::write(
        &file,
        format!(
            "Host nk-jump\n    HostName 127.0.0.1\n    Port {port}\n    User {user}\n    IdentityFile {}\n\
             Host nk-target\n    HostName 127.0.0.1\n    Port {port}\n    User {user}\n    IdentityFile {}\n    ProxyJump nk-jump\n",
            key("id_unknown").display(),
            key("id_ed25519").display(),
            port = port(),
        ),
    )
    .unwrap();
    let line = format!(
        "{} ssh -F {} --known-hosts {} nk-target echo jumped-$((6*7))",
        netkit_bin().display(),
        file.display(),
        env("NETKIT_TEST_SSH_KNOWN_HOSTS"),
    );
    let mut terminal = Terminal::start(&line);
    terminal.wait_for(&format!("{user}@127.0.0.1's password:"));
    terminal.type_keys(password.as_bytes());
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("jumped-42"), "{screen}");
    assert_eq!(screen.matches("password:").count(), 1, "{screen}");
}

/// The pids of netkit processes whose command line holds `needle` (the remote shell runs on
/// this machine too).
fn pids_running(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let netkit = netkit_bin().display().to_string();
            (cmdline.starts_with(&netkit) && cmdline.contains(needle)).then_some(pid)
        })
        .collect()
}

/// `netkit ssh ARGS` with stdout and stderr to files: a background netkit keeps a pipe open
/// for as long as it runs, as ssh -f does. Returns the status, bounded in time, and the two
/// files.
fn ssh_to_files(
    args: &[String],
    name: &str,
) -> (std::process::ExitStatus, [std::path::PathBuf; 2]) {
    let files = [
        work_dir().join(format!("{name}.out")),
        work_dir().join(format!("{name}.err")),
    ];
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&files[0]).unwrap())
            .stderr(std::fs::File::create(&files[1]).unwrap()),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, files);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "netkit ssh {args:?} did not return: -f did not go to the background"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn terminate(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
}

#[test]
fn dash_f_goes_to_the_background_once_authenticated_as_ssh_f() {
    // -f -N -L: the tunnel is up when netkit returns, and goes on in the background.
    let lport = free_port();
    let spec = format!("127.0.0.1:{lport}:127.0.0.1:{}", port());
    let (status, [_, err]) = ssh_to_files(&ssh_args(&["-f", "-N", "-L", &spec], &[]), "bg-n");
    let background = pids_running(&spec);
    let _kill = killed_on_drop(background.clone());
    assert!(
        status.success(),
        "{status:?} {}",
        std::fs::read_to_string(&err).unwrap()
    );
    assert_eq!(background.len(), 1, "one background netkit: {background:?}");
    assert_sshd_answers_at("127.0.0.1", lport);
    // Out of the terminal's session: its hang-up and Ctrl-C do not reach it.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", background[0])).unwrap();
    let session: i32 = stat
        .rsplit(") ")
        .next()
        .unwrap()
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(session, background[0], "{stat}");
    terminate(background[0]);

    // With -N it lets go of stdout and stderr, as ssh -f: a reader of its output (here a
    // pipe, as `$(...)` in a script) gets EOF at once, though the tunnel runs on.
    let lport = free_port();
    let spec = format!("127.0.0.1:{lport}:127.0.0.1:{}", port());
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(&["-f", "-N", "-L", &spec], &[]))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut text);
        let _ = std::io::Read::read_to_end(&mut err, &mut text);
        let _ = tx.send(text);
    });
    let released = rx.recv_timeout(Duration::from_secs(20));
    let background = pids_running(&spec);
    let _kill_too = killed_on_drop(background.clone());
    assert!(released.is_ok(), "the background netkit held the pipes");
    assert_eq!(background.len(), 1, "one background netkit: {background:?}");
    assert_sshd_answers_at("127.0.0.1", lport);

    // A command: netkit returns while it runs; its output still comes to ours.
    let dir = remote_dir("dash-f");
    let go = dir.join("go");
    let line = format!(
        "i=0; until [ -e {} ] || [ $i = 200 ]; do sleep 0.05; i=$((i+1)); done; echo ran-in-background",
        go.display()
    );
    let (status, [out, err]) = ssh_to_files(&ssh_args(&["-f"], &[&line]), "bg-command");
    assert!(
        status.success(),
        "{status:?} {}",
        std::fs::read_to_string(&err).unwrap()
    );
    let background = pids_running(&line);
    let _kill = killed_on_drop(background.clone());
    assert_eq!(background.len(), 1, "one background netkit: {background:?}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    std::fs::write(&go, "").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !pids_running(&line).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "ran-in-background\n"
    );

    // A failure before the session is up is the foreground's: its message and 255.
    let mut refused = vec!["ssh".to_owned(), "-f".into(), "-p".into()];
    refused.push(free_port().to_string());
    refused.extend(common());
    refused.extend([dest(), "true".into()]);
    let (status, [_, err]) = ssh_to_files(&refused, "bg-refused");
    let err = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(255), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Nothing to run in the background is refused, as by ssh.
    let (status, [_, err]) = ssh_to_files(&ssh_args(&["-f"], &[]), "bg-nothing");
    let err = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(255), "{err}");
    assert!(err.contains("-f needs a command"), "{err}");
}

#[test]
fn session_type_stdin_null_and_fork_after_authentication_do_what_dash_n_s_n_and_f_do() {
    // In a file or with -o, as ssh 9.2 reads them; netkit ran the command, sent stdin and
    // stayed in the foreground, without a word.
    let dir = work_dir().join("ssh-cli-session-type");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, lines: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("Host *\n{lines}")).unwrap();
        path.display().to_string()
    };
    let none = file("none", "  SessionType none\n");
    let subsystem = file("subsystem", "  SessionType subsystem\n");
    let stdin_null = file("stdin-null", "  StdinNull yes\n");
    // SessionType none (-N) runs no command; subsystem (-s) takes it for a subsystem's name.
    for (flags, refused) in [
        (&["-F", &none][..], "SessionType none runs no command"),
        (
            &["-F", "none", "-o", "SessionType=none"],
            "SessionType none",
        ),
        (&["-F", &subsystem], ""),
        (&["-F", "none", "-o", "SessionType subsystem"], ""),
    ] {
        let out = ssh_with(flags, &["echo", "RAN"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.stdout, b"", "{flags:?}: {err}");
        assert_eq!(out.status.code(), Some(255), "{flags:?}: {err}");
        assert!(err.contains(refused), "{flags:?}: {err}");
    }
    // SessionType default is the command; -o wins over the file.
    for flags in [
        &["-F", "none", "-o", "SessionType=default"][..],
        &["-o", "SessionType=default", "-F", &none],
    ] {
        let out = ssh_with(flags, &["echo", "RAN"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.stdout, b"RAN\n", "{flags:?}: {err}");
        assert_eq!(err, "", "{flags:?}");
    }
    // StdinNull yes (-n): the remote command reads EOF.
    for (flags, expected) in [
        (&["-F", &stdin_null][..], &b""[..]),
        (&["-F", "none", "-o", "StdinNull=yes"], b""),
        (&["-o", "StdinNull=no", "-F", &stdin_null], b"INPUT\n"),
    ] {
        let out = ssh_with(flags, &["cat"], b"INPUT\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.stdout, expected, "{flags:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{flags:?}: {err}");
    }
    // ForkAfterAuthentication yes (-f) with SessionType none (-N): a tunnel left in the
    // background once authenticated.
    let both = file(
        "fork",
        "  SessionType none\n  ForkAfterAuthentication yes\n",
    );
    let lport = free_port();
    let spec = format!("127.0.0.1:{lport}:127.0.0.1:{}", port());
    let (status, [_, err]) = ssh_to_files(&ssh_args(&["-F", &both, "-L", &spec], &[]), "fork");
    let background = pids_running(&spec);
    let _kill = killed_on_drop(background.clone());
    let said = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "{status:?} {said}");
    assert_eq!(background.len(), 1, "one background netkit: {background:?}");
    assert_sshd_answers_at("127.0.0.1", lport);
    // The flags win: -N over SessionType subsystem (which wants a command).
    let lport = free_port();
    let spec = format!("127.0.0.1:{lport}:127.0.0.1:{}", port());
    let flags = ["-F", &subsystem, "-f", "-N", "-L", &spec];
    let (status, [_, err]) = ssh_to_files(&ssh_args(&flags, &[]), "fork-flags");
    let background = pids_running(&spec);
    let _kill_too = killed_on_drop(background.clone());
    let said = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "{status:?} {said}");
    assert_eq!(background.len(), 1, "one background netkit: {background:?}");
    // Nothing to run in the background is refused, as -f without a command.
    let flags = ["-F", "none", "-o", "ForkAfterAuthentication=yes"];
    let (status, [_, err]) = ssh_to_files(&ssh_args(&flags, &[]), "fork-nothing");
    let err = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(255), "{err}");
    assert!(
        err.contains("ForkAfterAuthentication yes needs a command"),
        "{err}"
    );
}

#[test]
fn local_command_runs_here_once_connected_only_with_permit_local_command_as_in_ssh() {
    // netkit never ran it, without a word.
    let dir = work_dir().join("ssh-cli-local-command");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    let made = dir.join(format!("made-{}", port()));
    // %p expanded, as ssh expands LocalCommand's tokens; its output comes before the
    // remote command's.
    std::fs::write(
        &config,
        format!(
            "Host *\n  PermitLocalCommand yes\n  LocalCommand touch {}/made-%p; echo local\n",
            dir.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = ssh_with(&["-F", config], &["echo", "remote"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "local\nremote\n",
        "{err}"
    );
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(made.exists(), "{err}");
    std::fs::remove_file(&made).unwrap();
    // PermitLocalCommand no (the default, or -o ahead of the file): not run.
    for flags in [
        &["-F", config, "-o", "PermitLocalCommand=no"][..],
        &[
            "-F",
            "none",
            "-o",
            &format!("LocalCommand=touch {}", made.display()),
        ],
    ] {
        let out = ssh_with(flags, &["echo", "remote"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.stdout, b"remote\n", "{flags:?}: {err}");
        assert_eq!(err, "", "{flags:?}");
        assert!(!made.exists(), "{flags:?}");
    }
    // With -o, and with -N: run once the connection is up.
    let flags = [
        "-F",
        "none",
        "-f",
        "-N",
        "-o",
        "PermitLocalCommand=yes",
        "-o",
    ];
    let local = format!("LocalCommand=touch {}", made.display());
    let mut args = ssh_args(&flags, &[]);
    args.insert(flags.len() + 3, local.clone());
    let (status, [_, err]) = ssh_to_files(&args, "local-command");
    let background = pids_running(&local);
    let _kill = killed_on_drop(background.clone());
    assert!(
        status.success(),
        "{status:?} {}",
        std::fs::read_to_string(&err).unwrap()
    );
    assert!(made.exists());
}

#[test]
fn options_netkit_does_not_act_on_are_told_of_from_a_file_as_from_dash_o() {
    // A file's were dropped without a word, even at -v; -o's were all warned of, Ansible's
    // ControlMaster and ControlPath on every call, and ControlPath=none too.
    let dir = work_dir().join("ssh-cli-unread-options");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, lines: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("Host *\n{lines}")).unwrap();
        path.display().to_string()
    };
    // Forwarding asked for in a file: the warning -A and -X give; -a and -x hush it.
    let forwarding = file("forwarding", "  ForwardAgent yes\n  ForwardX11 yes\n");
    let out = ssh_with(&["-F", &forwarding], &["echo", "ran"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, b"ran\n", "{err}");
    assert!(
        err.contains("agent forwarding (-A, ForwardAgent) is not supported"),
        "{err}"
    );
    assert!(err.contains("X11 forwarding"), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    let out = ssh_with(&["-F", &forwarding, "-a", "-x"], &["echo", "ran"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.stdout.as_slice(), &*err), (&b"ran\n"[..], ""));
    // Security tightenings not applied: warned of once each, naming the file.
    let tight = file(
        "tight",
        "  CheckHostIP yes\n  RekeyLimit 1G\n  CertificateFile /nonexistent-cert.pub\n  \
         CheckHostIP no\n  VisualHostKey yes\n  CASignatureAlgorithms ssh-ed25519\n",
    );
    let out = netkit(&["ssh", "-F", &tight, "-G", "box"], b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for option in [
        "CheckHostIP yes",
        "RekeyLimit 1G",
        "CertificateFile /nonexistent-cert.pub",
        "CASignatureAlgorithms ssh-ed25519",
    ] {
        let said = format!("warning: ignoring the option \"{option}\" ({tight})");
        assert!(err.contains(&said), "{said}: {err}");
    }
    assert_eq!(err.lines().count(), 4, "{err}");
    // Lines that loosen or ask for ssh's default, common in configs for old servers, were
    // warned of on every connection: at -v only.
    let loose = file(
        "loose",
        "  PubkeyAcceptedKeyTypes +ssh-rsa\n  PubkeyAcceptedAlgorithms +ssh-rsa\n  \
         UpdateHostKeys yes\n",
    );
    let out = netkit(&["ssh", "-F", &loose, "-G", "box"], b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.success(), &*err), (true, ""));
    let out = netkit(&["ssh", "-v", "-F", &loose, "-G", "box"], b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"UpdateHostKeys yes\""), "{err}");
    // The others of a file, at -v.
    let out = netkit(&["ssh", "-v", "-F", &tight, "-G", "box"], b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"VisualHostKey yes\""), "{err}");
    // Connection sharing, from a file, -o, -S or -M: said at -v only, once.
    let sharing = file(
        "sharing",
        "  ControlMaster auto\n  ControlPath /tmp/cm-%C\n  ControlPersist 60\n",
    );
    for flags in [
        &["-F", &sharing][..],
        &[
            "-F",
            "none",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=60s",
        ],
        &["-F", "none", "-S", "/tmp/ctl", "-M"],
    ] {
        let out = ssh_with(flags, &["echo", "ran"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            (out.stdout.as_slice(), &*err),
            (&b"ran\n"[..], ""),
            "{flags:?}"
        );
        let verbose = [&["-v"][..], flags].concat();
        let out = netkit(&[&["ssh"][..], &verbose, &["-G", "box"]].concat(), b"", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        let said = "connection sharing is not supported: each run connects anew";
        assert_eq!(err.matches(said).count(), 1, "{flags:?}: {err}");
    }
    // Values asking for what netkit does anyway: nothing said.
    for option in [
        "ControlPath=none",
        "ControlMaster=no",
        "ControlPersist=no",
        "SessionType=default",
        "StdinNull=no",
        "ForkAfterAuthentication=no",
        "Tunnel=no",
        "CheckHostIP=no",
        "UpdateHostKeys=no",
        "VerifyHostKeyDNS=no",
        "AddKeysToAgent=no",
        "ForwardAgent=no",
        "ForwardX11=no",
        "PermitLocalCommand=no",
    ] {
        let out = netkit(&["ssh", "-F", "none", "-o", option, "-G", "box"], b"", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{option}: {err}");
        assert_eq!(err, "", "{option}");
    }
}

#[test]
fn dash_o_upper_fails_as_ssh_with_no_master_connection() {
    // It was clap's "unexpected argument '-O'", which reads as a typo.
    for (flags, said) in [
        (&["-O", "check"][..], "no master connection"),
        (
            &["-O", "exit", "-S", "/nonexistent/ctl"],
            "no master connection",
        ),
        (&["-O", "stop"], "(-O stop)"),
        (&["-O", "bogus"], "invalid multiplex command"),
    ] {
        let out = ssh_with(flags, &[], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{flags:?}: {err}");
        assert!(err.contains(said), "{flags:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{flags:?}: {err}");
    }
}

/// Ends the background processes `pids` when dropped, so that a failing assertion leaves
/// none running.
fn killed_on_drop(pids: Vec<i32>) -> impl Drop {
    struct Kill(Vec<i32>);
    impl Drop for Kill {
        fn drop(&mut self) {
            self.0.iter().copied().for_each(terminate);
        }
    }
    Kill(pids)
}

#[test]
fn dash_4_and_dash_6_choose_the_address_family() {
    let out = ssh_with(&["-4"], &["echo", "over-v4"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over-v4\n");
    for flags in [&["-6"][..], &["-o", "AddressFamily=inet6"]] {
        let out = ssh_with(flags, &["true"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{flags:?}: {err}");
        assert!(err.contains("no IPv6 address"), "{flags:?}: {err}");
    }
    let out = ssh_with(&["-o", "AddressFamily=ipx"], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("AddressFamily ipx"), "{err}");
}

/// The local addresses `pid` listens on, once there are `count` (waited for up to 10 s).
fn listening(pid: u32, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ss = Command::new("ss")
            .args(["-tlnpH"])
            .output()
            .expect("ss (iproute2)");
        let heard: Vec<String> = String::from_utf8_lossy(&ss.stdout)
            .lines()
            .filter(|l| l.contains(&format!("pid={pid},")))
            .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
            .collect();
        if heard.len() >= count {
            return heard;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "listening on {heard:?}, not {count}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The test sshd's banner comes through `host`'s `port` (a forward to it).
fn assert_sshd_answers_at(host: &str, port: u16) {
    let mut tunnel = std::net::TcpStream::connect((host, port)).unwrap();
    tunnel
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut banner = [0; 8];
    std::io::Read::read_exact(&mut tunnel, &mut banner).unwrap();
    assert_eq!(&banner, b"SSH-2.0-");
}

#[test]
fn forwards_from_the_config_file_add_to_the_flags_as_in_ssh() {
    let (l1, l2, l3, d) = (free_port(), free_port(), free_port(), free_port());
    let file = work_dir().join("ssh-config-forwards");
    std::fs::write(
        &file,
        format!(
            "Host netkit-forwards\n    HostName 127.0.0.1\n    Port {p}\n    User {}\n    \
             IdentityFile {}\n    LocalForward {l1} 127.0.0.1:{p}\n    \
             LocalForward 127.0.0.1:{l2} 127.0.0.1:{p}\n    DynamicForward {d}\n",
            env("NETKIT_TEST_SSH_USER"),
            key("id_ed25519").display(),
            p = port(),
        ),
    )
    .unwrap();
    let by_flag = format!("{l3}:127.0.0.1:{}", port());
    let child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["ssh", "-F", file.to_str().unwrap(), "--known-hosts"])
            .arg(env("NETKIT_TEST_SSH_KNOWN_HOSTS"))
            .args(["-N", "-L", &by_flag, "netkit-forwards"])
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut heard = listening(child.id(), 7);
    heard.sort();
    // The one given 127.0.0.1 listens there only; the others on both loopbacks.
    let mut expected: Vec<_> = [l1, l2, l3, d]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .chain([l1, l3, d].iter().map(|p| format!("[::1]:{p}")))
        .collect();
    expected.sort();
    assert_eq!(heard, expected);
    for port in [l1, l2, l3] {
        assert_sshd_answers_at("127.0.0.1", port);
    }
    // A bad line is named as the file has it, before anything connects.
    std::fs::write(&file, "Host netkit-forwards\n    LocalForward 8080\n").unwrap();
    let out = netkit(
        &[
            "ssh",
            "-F",
            file.to_str().unwrap(),
            "netkit-forwards",
            "true",
        ],
        b"",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    // ssh: "line 2: Missing target argument."
    assert!(
        err.contains("line 2: LocalForward 8080: missing target argument"),
        "{err}"
    );
}

#[test]
fn local_forwards_listen_on_both_loopbacks_or_with_dash_g_on_every_interface() {
    for (flags, addresses) in [
        (&[][..], ["127.0.0.1", "[::1]"]),
        (&["-g"][..], ["0.0.0.0", "[::]"]),
    ] {
        let (lport, dport) = (free_port(), free_port());
        let local = format!("{lport}:127.0.0.1:{}", port());
        let mut args = flags.to_vec();
        let dport_arg = dport.to_string();
        args.extend(["-N", "-L", &local, "-D", &dport_arg]);
        let child = netkit_tests::Spawned::start(
            Command::new(netkit_bin())
                .args(ssh_args(&args, &[]))
                .env_remove("SSH_AUTH_SOCK")
                .stdin(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let mut heard = listening(child.id(), 4);
        heard.sort();
        let mut expected: Vec<String> = addresses
            .iter()
            .flat_map(|address| [format!("{address}:{lport}"), format!("{address}:{dport}")])
            .collect();
        expected.sort();
        assert_eq!(heard, expected, "{flags:?}");
        // Through either loopback address either way, as a client of `localhost` may pick.
        assert_sshd_answers_at("127.0.0.1", lport);
        assert_sshd_answers_at("::1", lport);
    }
    // One loopback's port held by another program, which would take the clients that pick
    // it: the other is listened on, and the user told, as ssh tells.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = ssh_with(&["-L", &format!("{port}:127.0.0.1:9")], &["true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn ssh_flags_for_forwarding_netkit_does_not_do_keep_scripts_working() {
    // -x, -a, -k turn off what netkit never does: accepted silently, as scripts pass them.
    let out = ssh_with(&["-x", "-a", "-k"], &["echo", "fine"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fine\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    // -A and -X cannot be honoured: a warning, and the command still runs.
    for flag in ["-A", "-X", "-Y"] {
        let out = ssh_with(&[flag], &["echo", "ran"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ran\n",
            "{flag}: {err}"
        );
        assert!(err.contains("not supported"), "{flag}: {err}");
        assert_eq!(err.lines().count(), 1, "{flag}: {err}");
    }
}

#[test]
fn uri_destinations_as_ssh_and_sftp_take_them() {
    let user = env("NETKIT_TEST_SSH_USER");
    let ssh_to = |flags: &[String], dest: String, command: &[&str]| {
        let mut args = vec!["ssh".to_owned()];
        args.extend_from_slice(flags);
        args.extend(common());
        args.push(dest);
        args.extend(command.iter().map(|w| (*w).to_owned()));
        netkit(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            b"",
            &[],
        )
    };
    let out = ssh_to(
        &[],
        format!("ssh://{user}@127.0.0.1:{}", port()),
        &["echo", "by-uri"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "by-uri\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // -p fills in a port the URI leaves out, as for user@host; so for an address in brackets
    // (as IPv6 ones are written), which names no port.
    let p = ["-p".to_owned(), port().to_string()];
    // A URI's user is percent-decoded (`alice%40corp` is how a user with an `@` is written).
    let encoded: String = user.bytes().map(|b| format!("%{b:02X}")).collect();
    for dest in [
        format!("ssh://{user}@127.0.0.1/"),
        format!("{user}@[127.0.0.1]"),
        format!("ssh://{encoded};fingerprint=SHA256-x@127.0.0.1"),
    ] {
        let out = ssh_to(&p, dest.clone(), &["true"]);
        assert!(
            out.status.success(),
            "{dest}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let dir = remote_dir("sftp-uri");
    std::fs::write(dir.join("in-dir.txt"), "absolute\n").unwrap();
    std::fs::write(dir.join("in dir%.txt"), "decoded\n").unwrap();
    let home = std::path::PathBuf::from(env("NETKIT_TEST_SSH_HOME"));
    std::fs::write(home.join("sftp-uri-home.txt"), "home\n").unwrap();
    let local = work_dir().join("sftp-uri");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local).unwrap();
    let base = format!("sftp://{user}@127.0.0.1:{}", port());
    for (remote, name, text) in [
        (
            format!("{base}{}/in-dir.txt", dir.display()),
            "in-dir.txt",
            "absolute\n",
        ),
        (
            format!("{base}/~/sftp-uri-home.txt"),
            "sftp-uri-home.txt",
            "home\n",
        ),
        // The user and the path percent-decoded, as sftp and curl read them.
        (
            format!(
                "sftp://{encoded}@127.0.0.1:{}{}/in%20dir%25.txt",
                port(),
                dir.display()
            ),
            "in dir%.txt",
            "decoded\n",
        ),
    ] {
        // No -P: the port is the URI's.
        let mut args = vec!["sftp".to_owned(), "get".into()];
        args.extend(common());
        args.extend([remote.clone(), local.display().to_string()]);
        ok(netkit(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            b"",
            &[],
        ));
        assert_eq!(
            std::fs::read_to_string(local.join(name)).unwrap(),
            text,
            "{remote}"
        );
    }
}

#[test]
fn a_local_user_without_a_name_is_told_to_name_one() {
    // A uid missing from the password database (containers run as `--user 4242`) logged in
    // as "" and read as a key problem; OpenSSH says so before connecting.
    let out = Command::new("setpriv")
        .args(["--reuid=4242", "--regid=4242", "--clear-groups"])
        .arg(netkit_bin())
        .args(["ssh", "-p", &port().to_string(), "127.0.0.1", "true"])
        .env_remove("USER")
        .env("HOME", work_dir().join("no-such-home"))
        .output()
        .expect("setpriv (util-linux)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{said}");
    assert!(said.contains("no user name for uid 4242"), "{said}");
}

#[test]
fn a_home_that_is_no_directory_holds_no_known_hosts() {
    // `HOME=/dev/null`, as service accounts and CI sandboxes have: every login failed on
    // "Not a directory", even with the host's key in the global file.
    let home = work_dir().join("ssh-home-is-a-file");
    std::fs::write(&home, "").unwrap();
    let global = format!(
        "GlobalKnownHostsFile={}",
        env("NETKIT_TEST_SSH_KNOWN_HOSTS")
    );
    let out = netkit(
        &[
            "ssh",
            "-F",
            "none",
            "-p",
            &port().to_string(),
            "-i",
            key("id_ed25519").to_str().unwrap(),
            "-o",
            &global,
            &dest(),
            "echo",
            "in",
        ],
        b"",
        &[("HOME", home.display().to_string())],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "in\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keys_netkit_cannot_offer_are_named_as_such() {
    // A DSA key was "unreadable, malformed, or a wrong passphrase"; a security key (-sk) was
    // said to be tried and refused, never offered.
    let dir = work_dir().join("ssh-cli-unusable-keys");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dsa = dir.join("id_dsa");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "dsa", "-N", "", "-f"])
        .arg(&dsa)
        .status()
        .unwrap();
    assert!(made.success());
    // A security key's file: its public half says its type (no token is needed to read it).
    let sk = dir.join("id_ed25519_sk");
    std::fs::copy(key("id_unknown"), &sk).unwrap();
    std::fs::set_permissions(&sk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let kind = b"sk-ssh-ed25519@openssh.com";
    let mut blob = (kind.len() as u32).to_be_bytes().to_vec();
    blob.extend_from_slice(kind);
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &blob);
    std::fs::write(
        dir.join("id_ed25519_sk.pub"),
        format!("sk-ssh-ed25519@openssh.com {encoded} test\n"),
    )
    .unwrap();
    for (file, said) in [(&dsa, "a DSA key"), (&sk, "a security key")] {
        let err = refused_login(&["-i", file.to_str().unwrap()], &[]);
        assert!(err.contains(&format!("netkit cannot use {said}")), "{err}");
    }
}

#[test]
fn a_config_whose_key_files_are_all_missing_names_them() {
    // The failure said "tried: nothing", the path looked for (a typo) shown only with -v.
    let config = work_dir().join("ssh-config-missing-key");
    std::fs::write(
        &config,
        "Host *\n  IdentityFile ~/.ssh/id_typo_work\n  IdentitiesOnly yes\n",
    )
    .unwrap();
    let said = refused_login(&["-F", config.to_str().unwrap()], &[]);
    assert!(
        said.contains("no such identity: ") && said.contains("id_typo_work"),
        "{said}"
    );
}

/// `netkit ssh FLAGS DEST true` against the test sshd with no agent and no prompt, which must
/// fail with 255: what it said.
fn refused_login(flags: &[&str], vars: &[(&str, String)]) -> String {
    let port = port().to_string();
    let known = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let destination = dest();
    let mut args = vec![
        "ssh",
        "-p",
        &port,
        "--known-hosts",
        &known,
        "-o",
        "BatchMode=yes",
    ];
    args.extend(flags);
    args.extend([destination.as_str(), "true"]);
    let mut vars = vars.to_vec();
    vars.push(("SSH_AUTH_SOCK", String::new()));
    let out = netkit(&args, b"", &vars);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(255), "{said}");
    said
}

#[test]
fn default_keys_are_tried_in_openssh_order() {
    // ~/.ssh/id_ed25519 went first: where keys are tied to accounts (deploy keys, gitolite,
    // `command=` lines) ssh and netkit logged in as different identities.
    let home = work_dir().join("ssh-cli-default-key-order");
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        let path = ssh.join(name);
        std::fs::copy(key("id_unknown"), &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let said = refused_login(&[], &[("HOME", home.display().to_string())]);
    let at = |name: &str| said.find(&format!(".ssh/{name}")).unwrap_or(usize::MAX);
    assert!(
        at("id_rsa") < at("id_ecdsa")
            && at("id_ecdsa") < at("id_ed25519")
            && at("id_ed25519") < said.len(),
        "{said}"
    );
}

#[test]
fn hash_known_hosts_writes_what_openssh_reads() {
    let known = work_dir().join("known-hosts-hashed");
    let _ = std::fs::remove_file(&known);
    let k = known.to_str().unwrap();
    let args = [
        "ssh",
        "-p",
        &port().to_string(),
        "--accept-new",
        "--known-hosts",
        k,
        "-o",
        "HashKnownHosts=yes",
        "-i",
        key("id_ed25519").to_str().unwrap(),
        &dest(),
        "true",
    ]
    .map(str::to_owned);
    let out = netkit(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = std::fs::read_to_string(&known).unwrap();
    assert!(
        line.starts_with("|1|") && !line.contains("127.0.0.1"),
        "{line}"
    );
    // OpenSSH finds the host in it, and connects with strict checking.
    let found = Command::new("ssh-keygen")
        .args(["-F", &format!("[127.0.0.1]:{}", port()), "-f", k])
        .output()
        .expect("ssh-keygen");
    assert!(found.status.success(), "ssh-keygen -F: {found:?}");
    let out = Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={k}"))
        .args(["-o", "IdentitiesOnly=yes", "-i"])
        .arg(key("id_ed25519"))
        .args(["-p", &port().to_string(), &dest(), "echo", "openssh"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .expect("ssh");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "openssh\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openssh_sftp_and_scp_take_netkit_ssh_as_their_dash_s_program() {
    // They pass options as getopt reads them: `-oForwardX11 no`, `-oPermitLocalCommand=no`,
    // `-l USER`, `-p PORT`, `-s -- HOST sftp`.
    let dir = work_dir().join("ssh-cli-dash-s");
    std::fs::create_dir_all(&dir).unwrap();
    let wrapper = dir.join("netkit-ssh");
    let mut script = format!("#!/bin/sh\nexec {} ssh", netkit_bin().display());
    for word in common() {
        script.push_str(&format!(" '{word}'"));
    }
    script.push_str(" \"$@\"\n");
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let remote = remote_dir("dash-s");
    std::fs::write(remote.join("fetched.txt"), b"through netkit\n").unwrap();
    let (user, host, p) = (
        env("NETKIT_TEST_SSH_USER"),
        env("NETKIT_TEST_SSH_HOST"),
        port().to_string(),
    );
    let target = dir.join("fetched.txt");
    let _ = std::fs::remove_file(&target);
    let out = Command::new("scp")
        .args(["-S", wrapper.to_str().unwrap(), "-P", &p])
        .arg(format!(
            "{user}@{host}:{}",
            remote.join("fetched.txt").display()
        ))
        .arg(&target)
        .stdin(Stdio::null())
        .output()
        .expect("scp (openssh-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"through netkit\n");
    let mut sftp = netkit_tests::Spawned::start(
        Command::new("sftp")
            .args(["-S", wrapper.to_str().unwrap(), "-P", &p, "-b", "-"])
            .arg(format!("{user}@{host}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let listing = format!("ls {}\n", remote.display());
    sftp.stdin
        .take()
        .unwrap()
        .write_all(listing.as_bytes())
        .unwrap();
    let out = sftp.wait_with_output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("fetched.txt"));
}

#[test]
fn sftp_files_keep_their_permissions_and_a_wrong_target_writes_nothing() {
    let base = remote_dir("sftp-modes");
    let remote = |p: &str| format!("{}:{}/{p}", dest(), base.display());
    let dir = work_dir().join("sftp-modes");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let (script, secret) = (dir.join("run.sh"), dir.join("secret.txt"));
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&secret, "key\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // As sftp and scp: a new file takes its source's permissions both ways (it was 0644,
    // a private file made readable by all); a file replaced keeps its own.
    let (s, k) = (script.to_str().unwrap(), secret.to_str().unwrap());
    ok(sftp(&["put", s, k, &remote("")]));
    assert_eq!(mode(&base.join("run.sh")), 0o755);
    assert_eq!(mode(&base.join("secret.txt")), 0o600);
    let fetched = dir.join("fetched.txt");
    ok(sftp(&[
        "get",
        &remote("secret.txt"),
        fetched.to_str().unwrap(),
    ]));
    assert_eq!(mode(&fetched), 0o600);
    std::fs::set_permissions(&fetched, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(sftp(&[
        "get",
        &remote("secret.txt"),
        fetched.to_str().unwrap(),
    ]));
    assert_eq!(mode(&fetched), 0o640);
    // A service's file replaced by root keeps its owner and group, as sftp and scp write in
    // place (it became root's, and the service could read it no more).
    if nix::unistd::geteuid().is_root() {
        let user = env("NETKIT_TEST_SSH_USER");
        assert!(
            Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&fetched)
                .status()
                .unwrap()
                .success()
        );
        let owner = |path: &Path| {
            use std::os::unix::fs::MetadataExt as _;
            let meta = std::fs::metadata(path).unwrap();
            (meta.uid(), meta.gid())
        };
        let before = owner(&fetched);
        assert_ne!(before.0, 0);
        ok(sftp(&[
            "get",
            &remote("secret.txt"),
            fetched.to_str().unwrap(),
        ]));
        assert_eq!(owner(&fetched), before);
        assert_eq!(mode(&fetched), 0o640);
    }
    // A tree into a directory that is not there is refused, as scp -r refuses it (a
    // mistyped target made every directory on the way).
    let astray = dir.join("no-such-parent").join("tree");
    let out = sftp(&["get", "-r", &remote(""), astray.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.join("no-such-parent").exists());
    std::fs::set_permissions(base.join("run.sh"), std::fs::Permissions::from_mode(0o700)).unwrap();
    ok(sftp(&["put", s, &remote("run.sh")]));
    assert_eq!(mode(&base.join("run.sh")), 0o700);
    // Group-writable, in a shared deploy directory: the server's umask (022) made it 0644.
    std::fs::set_permissions(base.join("run.sh"), std::fs::Permissions::from_mode(0o664)).unwrap();
    ok(sftp(&["put", s, &remote("run.sh")]));
    assert_eq!(mode(&base.join("run.sh")), 0o664);
    // A FIFO is no file to send, as sftp says: opening it waited for a writer, past SIGTERM.
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let out = sftp(&["put", fifo.to_str().unwrap(), &remote("fifo")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not a regular file"), "{err}");

    // Several files into a name that is no directory: refused, as sftp refuses it (each
    // went over the one before); a directory that is not there: refused, nothing left.
    let out = sftp(&["put", s, k, &remote("one-file")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    let out = sftp(&["put", s, &remote("no-such-dir/")]);
    assert!(!out.status.success());
    let names: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["run.sh", "secret.txt"]);

    // A symbolic link is written through, both ways, as sftp writes (renamed over, it
    // became a file of its own and the linked file stayed as it was).
    std::os::unix::fs::symlink("secret.txt", base.join("link")).unwrap();
    let new = dir.join("new.txt");
    std::fs::write(&new, "new\n").unwrap();
    ok(sftp(&["put", new.to_str().unwrap(), &remote("link")]));
    assert!(
        std::fs::symlink_metadata(base.join("link"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(std::fs::read(base.join("secret.txt")).unwrap(), b"new\n");
    let link = dir.join("local-link");
    std::os::unix::fs::symlink(&fetched, &link).unwrap();
    ok(sftp(&["get", &remote("run.sh"), link.to_str().unwrap()]));
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read(&fetched).unwrap(), b"#!/bin/sh\n");
}

#[test]
fn a_recursive_get_goes_past_a_file_it_cannot_read_as_sftp_and_scp() {
    let base = remote_dir("sftp-unreadable");
    let tree = base.join("mix");
    std::fs::create_dir_all(&tree).unwrap();
    for name in ["1a", "2b", "3c"] {
        std::fs::write(tree.join(name), name).unwrap();
    }
    let user = env("NETKIT_TEST_SSH_USER");
    let chown = Command::new("chown")
        .args(["-R", &format!("{user}:")])
        .arg(&tree)
        .status()
        .unwrap();
    assert!(chown.success());
    // Root's own, and private: the test account cannot read it.
    std::os::unix::fs::chown(tree.join("2b"), Some(0), Some(0)).unwrap();
    std::fs::set_permissions(tree.join("2b"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let local = work_dir().join("sftp-unreadable");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local).unwrap();
    let out = sftp(&[
        "get",
        "-r",
        &format!("{}:{}", dest(), tree.display()),
        local.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("2b") && err.contains("1 file could not be copied"),
        "{err}"
    );
    // The files after it came too.
    assert_eq!(std::fs::read(local.join("mix/1a")).unwrap(), b"1a");
    assert_eq!(std::fs::read(local.join("mix/3c")).unwrap(), b"3c");
    assert!(!local.join("mix/2b").exists());
}

/// A relay to the sshd for one connection, to lose the server under a running netkit:
/// `freeze` makes it silent both ways with its sockets held open (TCP keepalive probes are
/// still answered, by the relay, so only keepalives that want an SSH answer tell the server is
/// gone); `cut` closes them, as a server that died.
struct Relay {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sockets: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn start() -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay {
            port: listener.local_addr().unwrap().port(),
            frozen: std::sync::Arc::default(),
            sockets: std::sync::Arc::default(),
        };
        let (frozen, sockets) = (relay.frozen.clone(), relay.sockets.clone());
        std::thread::spawn(move || {
            let (client, _) = listener.accept().unwrap();
            let server = std::net::TcpStream::connect(("127.0.0.1", port())).unwrap();
            sockets
                .lock()
                .unwrap()
                .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
            let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                let frozen = std::sync::Arc::clone(&frozen);
                std::thread::spawn(move || {
                    let mut buf = [0; 16 * 1024];
                    while let Ok(n @ 1..) = std::io::Read::read(&mut from, &mut buf) {
                        if frozen.load(std::sync::atomic::Ordering::Relaxed) {
                            // Held, never passed on (nor closed) until the test ends.
                            std::thread::sleep(Duration::from_secs(60));
                            return;
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                })
            };
            let _a = pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            let _b = pipe(server, client);
        });
        relay
    }

    fn freeze(&self) {
        self.frozen
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn cut(&self) {
        for socket in self.sockets.lock().unwrap().iter() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn server_alive_count_max_0_gives_up_after_one_silent_interval_from_dash_o_and_a_file() {
    // `-o ServerAliveCountMax=0` was refused (exit 255, "expected a number above 0") while
    // the same line in a file was taken as 1. ssh takes both: a server silent through one
    // interval is given up, with no keepalive sent ("Timeout, server not responding"), even
    // one that would answer.
    let dir = work_dir().join("ssh-cli-alive-count-0");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        "Host *\n  ServerAliveInterval 1\n  ServerAliveCountMax 0\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let dash_o = ["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=0"];
    for flags in [&dash_o[..], &["-F", config][..]] {
        let started = std::time::Instant::now();
        let out = ssh_with(flags, &["sleep 8; echo done"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            (out.status.code(), out.stdout.as_slice()),
            (Some(255), &b""[..]),
            "{flags:?}: {err}"
        );
        assert!(err.contains("the server sent nothing for 1 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(6), "{flags:?}");
    }
}

#[test]
fn server_alive_gives_up_on_a_server_that_stops_answering_as_ssh_does() {
    // A server that answers is kept, at the shortest interval too (libssh2 takes 1 s as 2 s
    // and sends nothing before: each call was counted as unanswered, exit 255 after 2 s).
    let alive = ["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=1"];
    let out = ssh_with(&alive, &["sleep 5; echo done"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"done\n"[..]),
        "{err}"
    );
    let relay = Relay::start();
    let relay_port = relay.port;
    let known = work_dir().join("ssh-cli-server-alive-known-hosts");
    let _ = std::fs::remove_file(&known);
    let p = relay_port.to_string();
    let file = format!("UserKnownHostsFile={}", known.display());
    let key = key("id_ed25519").display().to_string();
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["ssh", "-p", &p, "--accept-new", "-i", &key, "-o", &file])
            .args(["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2"])
            .args([dest().as_str(), "echo started; sleep 30"])
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdout = child.stdout.take().unwrap();
    let mut line = [0; 8];
    std::io::Read::read_exact(&mut stdout, &mut line).unwrap();
    assert_eq!(&line, b"started\n");
    relay.freeze();
    gives_up_on_2_keepalives(child);
}

#[test]
fn server_alive_gives_up_on_a_frozen_server_in_ssh_time_also_under_dash_w() {
    // ServerAliveInterval=1, ServerAliveCountMax=3: ssh gives a frozen server up after
    // 3.9-4.0 s (exit 255, a session and -W alike). netkit took 7.6 s in a session (libssh2
    // took the 1 s interval as 2 s) and -W never ended.
    for (name, words) in [
        ("session", &["echo started; sleep 30"][..]),
        ("dash-w", &[][..]),
    ] {
        gives_up_on_a_frozen_server(name, words, 3, false);
    }
}

#[test]
fn server_alive_gives_up_on_a_frozen_server_while_stdin_flows_also_under_dash_w() {
    // Only the server's bytes tell it is alive: ssh gives a frozen server up after 2.4 s
    // (ServerAliveInterval=1, ServerAliveCountMax=2) whatever stdin sends. netkit counted
    // stdin written into the channel as the server's answer, and a byte every 300 ms kept
    // it waiting for ever (-W under an outer ssh's keepalives, an upload, a user typing).
    for (name, words) in [
        ("session", &["echo started; cat > /dev/null"][..]),
        ("dash-w", &[][..]),
    ] {
        gives_up_on_a_frozen_server(name, words, 2, true);
    }
}

/// Runs `netkit ssh` through a relay with `ServerAliveInterval=1` and `ServerAliveCountMax`
/// `count`: `words` as its command (it prints `started` first), or `-W` to the sshd when
/// none; freezes the relay once the command (or the tunnel) is up, with a byte written to
/// stdin every 300 ms after when `trickle`; checks that netkit gives up as ssh does.
fn gives_up_on_a_frozen_server(name: &str, words: &[&str], count: u32, trickle: bool) {
    let key = key("id_ed25519").display().to_string();
    let relay = Relay::start();
    let known = work_dir().join(format!("ssh-cli-frozen-{name}-{trickle}-known-hosts"));
    let _ = std::fs::remove_file(&known);
    let target = format!("127.0.0.1:{}", port());
    let mut command = Command::new(netkit_bin());
    command
        .args([
            "ssh",
            "-p",
            &relay.port.to_string(),
            "--accept-new",
            "-i",
            &key,
        ])
        .args(["-o", &format!("UserKnownHostsFile={}", known.display())])
        .args(["-o", "ServerAliveInterval=1"])
        .args(["-o", &format!("ServerAliveCountMax={count}")]);
    if words.is_empty() {
        // To the sshd itself, whose banner says the tunnel is up.
        command.args(["-W", &target]);
    }
    let mut child = netkit_tests::Spawned::start(
        command
            .arg(dest())
            .args(words)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0; 7];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert!(
        &first == b"started" || &first == b"SSH-2.0",
        "{name}: {first:?}"
    );
    relay.freeze();
    let frozen = std::time::Instant::now();
    let stdin = child.stdin.take().unwrap();
    // Bounded: 40 bytes, 12 s, past which the test fails anyway; stops once netkit is gone.
    let trickler = trickle.then(|| {
        std::thread::spawn(move || {
            let mut stdin = stdin;
            for _ in 0..40 {
                if std::io::Write::write_all(&mut stdin, b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    });
    // ssh: (count + 1) x 1 s, and up to 1.5 s more; one that never gave up fails at the wait.
    let limit = Duration::from_millis(1500 + 1000 * u64::from(count + 1));
    let out = child.wait_with_output_within(limit);
    let elapsed = frozen.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{name}: {err}");
    assert!(
        err.contains(&format!("did not answer {count} keepalives")),
        "{name}: {err}"
    );
    assert!(elapsed < limit, "{name}: {elapsed:?}");
    if let Some(trickler) = trickler {
        trickler.join().unwrap();
    }
}

#[test]
fn sftp_timeout_bounds_each_step_as_its_help_says() {
    // After a call timed out, closing the file, the SFTP channel and the session each waited
    // the timeout again: a frozen server took `--timeout 2` 8 s to give up on.
    // A directory of its own: remote_dir empties the one it names, and
    // a_signal_stops_a_transfer_the_server_stopped_answering_at_once, which may run at the
    // same time in another thread, had its files in "sftp-frozen" too.
    let remote = remote_dir("sftp-timeout-frozen").join("big");
    std::fs::File::create(&remote)
        .and_then(|f| f.set_len(1 << 30))
        .unwrap();
    let local = work_dir().join("sftp-frozen");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local).unwrap();
    let relay = Relay::start();
    let known = work_dir().join("sftp-frozen-known-hosts");
    let _ = std::fs::remove_file(&known);
    let child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["sftp", "get", "-q", "--timeout", "2", "--accept-new"])
            .args(["-P", &relay.port.to_string(), "-i"])
            .arg(key("id_ed25519"))
            .arg(format!("-oUserKnownHostsFile={}", known.display()))
            .arg(format!("{}:{}", dest(), remote.display()))
            .arg(local.join("big"))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let receiving = || {
        std::fs::read_dir(&local)
            .unwrap()
            .any(|e| e.unwrap().metadata().unwrap().len() > 1 << 20)
    };
    let started = std::time::Instant::now();
    while !receiving() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    relay.freeze();
    let frozen = std::time::Instant::now();
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(
        frozen.elapsed() < Duration::from_millis(4500),
        "{:?}: {err}",
        frozen.elapsed()
    );
    // Connecting is bounded by ConnectTimeout, which a shorter --timeout shortens; -G shows
    // the bound taken once --timeout is given, ssh's `none` without either.
    for (flags, bound) in [
        (&[][..], "none"),
        (&["--timeout", "60"], "10"),
        (&["--timeout", "3"], "3"),
        (&["--timeout", "60", "-o", "ConnectTimeout=30"], "30"),
        (&["--timeout", "6", "-o", "ConnectTimeout=2"], "2"),
    ] {
        let mut args = vec!["ssh", "-F", "none", "-G"];
        args.extend(flags);
        args.push("box");
        let out = netkit(&args, b"", &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("\nconnecttimeout {bound}\n")),
            "{flags:?}: {text}"
        );
    }
}

#[test]
fn an_sftp_session_ends_once_a_call_timed_out() {
    // The connection is hung up on after a timeout: each later command failed, one by one,
    // a `-` line's included, and the session went on.
    let relay = Relay::start();
    let known = work_dir().join("sftp-session-frozen-known-hosts");
    let _ = std::fs::remove_file(&known);
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(["sftp", "-b", "-", "--timeout", "1", "--accept-new"])
            .args(["-P", &relay.port.to_string(), "-i"])
            .arg(key("id_ed25519"))
            .arg(format!("-oUserKnownHostsFile={}", known.display()))
            .arg(dest())
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"pwd\n").unwrap();
    let mut line = String::new();
    while !line.contains("Remote working directory") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0);
    }
    relay.freeze();
    stdin.write_all(b"-ls /\n-ls /tmp\npwd\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("error").count(), 1, "{err}");
}

/// Waits for `child`, whose server just went silent, to give up on it as ssh does.
fn gives_up_on_2_keepalives(child: netkit_tests::Spawned) {
    let started = std::time::Instant::now();
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("did not answer 2 keepalives"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A port on 127.0.0.1 whose connections are each handled by `handle` on a thread.
fn serve_each(handle: fn(std::net::TcpStream)) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || handle(conn));
        }
    });
    port
}

#[test]
fn a_tunnel_is_idle_when_unused_and_ends_with_255_when_its_server_is_lost() {
    // Each connection sends up to 64 MiB; the clients read a little, then reset.
    let target_port = serve_each(|mut conn| {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..1024 {
            if conn.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let rss_kib = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let key = key("id_ed25519").display().to_string();
    let tunnel = |relay: &Relay, name: &str| {
        let known = work_dir().join(format!("ssh-cli-tunnel-{name}-known-hosts"));
        let _ = std::fs::remove_file(&known);
        let local = free_port();
        let spec = format!("{local}:127.0.0.1:{target_port}");
        let child = netkit_tests::Spawned::start(
            Command::new(netkit_bin())
                .args([
                    "ssh",
                    "-p",
                    &relay.port.to_string(),
                    "--accept-new",
                    "-i",
                    &key,
                ])
                .args(["-o", &format!("UserKnownHostsFile={}", known.display())])
                .args(["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2"])
                .args(["-N", "-L", &spec, dest().as_str()])
                .env_remove("SSH_AUTH_SOCK")
                .stdin(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", local)).is_err() {
            assert!(std::time::Instant::now() < deadline, "-L never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        (child, local)
    };
    let relay = Relay::start();
    let (child, local) = tunnel(&relay, "cut");
    // Clients that reset mid-transfer: each left about 1 MB in libssh2 for good.
    let before = rss_kib(child.id());
    for _ in 0..60 {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
        let mut buf = vec![0; 200 * 1024];
        std::io::Read::read_exact(&mut conn, &mut buf).unwrap();
        socket2::SockRef::from(&conn)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    let grown = rss_kib(child.id()).saturating_sub(before);
    assert!(grown < 20 * 1024, "RSS grew {grown} KiB over 60 resets");
    // Idle, it sleeps (the server's packets nobody read kept its poll awake: 50-85 % of a
    // core); a busy loop takes about 100 ticks a second.
    let ticks = netkit_tests::cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let spent = netkit_tests::cpu_ticks(child.id()) - ticks;
    assert!(spent < 40, "{spent} ticks of CPU in 2 s of idling");
    relay.cut();
    let lost = std::time::Instant::now();
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("connection was closed"), "{err}");
    assert!(
        lost.elapsed() < Duration::from_secs(5),
        "{:?}",
        lost.elapsed()
    );

    // A server that stops answering: the keepalives go unanswered, as with a command.
    let relay = Relay::start();
    let (child, _) = tunnel(&relay, "frozen");
    relay.freeze();
    gives_up_on_2_keepalives(child);
}

#[test]
fn a_tunnel_out_of_descriptors_accepts_again_once_they_are_free() {
    // One EMFILE on accept ended every forward for good, the process still running.
    let target_port = serve_each(|mut conn| {
        let _ = conn.write_all(b"hello\n");
        let _ = std::io::Read::read(&mut conn, &mut [0; 16]);
    });
    let local = free_port();
    let known = work_dir().join("ssh-cli-tunnel-emfile-known-hosts");
    let _ = std::fs::remove_file(&known);
    let command = format!(
        "ulimit -n 32 && exec {} ssh -p {} --accept-new -i {} -o UserKnownHostsFile={} -N -L {local}:127.0.0.1:{target_port} {}",
        netkit_bin().display(),
        port(),
        key("id_ed25519").display(),
        known.display(),
        dest()
    );
    let mut child = netkit_tests::Spawned::start(
        Command::new("sh")
            .args(["-c", &command])
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let hello = || -> Option<String> {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", local)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut got = [0; 6];
        std::io::Read::read_exact(&mut conn, &mut got).ok()?;
        Some(String::from_utf8_lossy(&got).into_owned())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hello().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the tunnel never worked"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Held open at once: more than 32 descriptors' worth.
    let held: Vec<_> = (0..40)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", local)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(held);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        hello().as_deref(),
        Some("hello\n"),
        "no forwarding after EMFILE"
    );
    child.terminate(Duration::from_secs(5));
}

#[test]
fn out_of_threads_ssh_and_sftp_say_so_in_one_line() {
    // A stack no mmap can give makes every new thread fail, as a process or cgroup limit
    // does; std's spawn panicked (exit 101).
    let huge = [("RUST_MIN_STACK", (1u64 << 40).to_string())];
    let forward = format!("{}:127.0.0.1:{}", free_port(), port());
    let args = ssh_args(&["-N", "-L", &forward], &[]);
    let sftp = [
        "sftp".to_owned(),
        "get".into(),
        "-P".into(),
        port().to_string(),
    ]
    .into_iter()
    .chain(common())
    .chain([format!("{}:/etc/hostname", dest()), "-".into()])
    .collect::<Vec<_>>();
    for (args, code) in [(args, 255), (ssh_args(&[], &["true"]), 255), (sftp, 1)] {
        let out = netkit(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            b"",
            &huge,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            err.contains("cannot start a thread") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_get_into_a_fifo_whose_reader_leaves_early_is_an_error() {
    // The broken pipe was taken for `| head` closing our stdout: exit 0, the data lost.
    let remote = remote_dir("sftp-cli-fifo").join("big.bin");
    std::fs::write(&remote, vec![5u8; 1 << 20]).unwrap();
    let fifo = work_dir().join("sftp-cli-fifo");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut first = [0; 10];
            std::io::Read::read_exact(&mut std::fs::File::open(fifo).unwrap(), &mut first)
        })
    };
    let mut args = vec![
        "sftp".to_owned(),
        "get".into(),
        "-P".into(),
        port().to_string(),
    ];
    args.extend(common());
    args.push(format!("{}:{}", dest(), remote.display()));
    args.push(fifo.display().to_string());
    let out = netkit(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
        &[],
    );
    reader.join().unwrap().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sftp-cli-fifo") && err.contains("Broken pipe"),
        "{err}"
    );
}

#[test]
fn two_transfers_of_one_name_at_once_lose_nothing() {
    // Two uploads shared one temporary name: each removed the other's, the file was lost
    // and one of them exited 0. Two `get -a` appended to one part: a file twice as long.
    let base = remote_dir("sftp-two-at-once");
    let dir = work_dir().join("sftp-two-at-once");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = vec![0u8; 48 << 20];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let local = dir.join("big.bin");
    std::fs::write(&local, &bytes).unwrap();
    let target = format!("{}:{}/big.bin", dest(), base.display());
    let both = |args: &[&str]| {
        std::thread::scope(|scope| {
            let first = scope.spawn(|| sftp(args));
            std::thread::sleep(Duration::from_millis(150));
            let second = sftp(args);
            (first.join().unwrap(), second)
        })
    };
    for _ in 0..2 {
        let (a, b) = both(&["put", local.to_str().unwrap(), &target]);
        ok(a);
        ok(b);
        assert!(
            std::fs::read(base.join("big.bin")).unwrap() == bytes,
            "the uploaded file is not the file"
        );
    }
    // `put -a` shares the name a resume finds: of two at once, one replaces the file, the
    // other says it did not (each removed what the other had put: no file, one exit 0).
    for second in [["put", "-a"], ["put", "-p"]] {
        let _ = std::fs::remove_file(base.join("big.bin"));
        let (a, b) = std::thread::scope(|scope| {
            let first = scope.spawn(|| sftp(&["put", "-a", local.to_str().unwrap(), &target]));
            std::thread::sleep(Duration::from_millis(150));
            let other = sftp(&[second[0], second[1], local.to_str().unwrap(), &target]);
            (first.join().unwrap(), other)
        });
        for out in [&a, &b] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() || err.contains("another upload of it"),
                "{second:?}: {err}"
            );
        }
        assert!(
            std::fs::read(base.join("big.bin")).is_ok_and(|got| got == bytes),
            "{second:?}: the uploaded file is not the file"
        );
    }
    let fetched = dir.join("fetched.bin");
    let (a, b) = both(&["get", "-a", &target, fetched.to_str().unwrap()]);
    let succeeded = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert!(succeeded >= 1, "{}", String::from_utf8_lossy(&a.stderr));
    for out in [&a, &b] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || err.contains("another download"),
            "{err}"
        );
    }
    assert!(
        std::fs::read(&fetched).unwrap() == bytes,
        "the download is not the file"
    );
    // Another user's part is not finished: the file would start with their bytes and stay
    // theirs to change (put -a refuses theirs too).
    if nix::unistd::geteuid().is_root() {
        let part = dir.join("theirs.bin.part");
        std::fs::write(&part, &bytes[..1 << 20]).unwrap();
        let user = env("NETKIT_TEST_SSH_USER");
        assert!(
            Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&part)
                .status()
                .unwrap()
                .success()
        );
        let out = sftp(&[
            "get",
            "-a",
            &target,
            dir.join("theirs.bin").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("another user's"), "{err}");
    }
}

#[test]
fn a_certificate_file_beside_a_key_is_said_to_go_unused() {
    // OpenSSH offers KEY-cert.pub; libssh2 cannot, and the login failed without a word.
    let dir = work_dir().join("cert-beside-key");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("id_ed25519");
    std::fs::copy(key("id_ed25519"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::copy(key("id_ed25519.pub"), dir.join("id_ed25519.pub")).unwrap();
    let ca = env("NETKIT_TEST_SSH_HOST_CA");
    let signed = Command::new("ssh-keygen")
        .args(["-q", "-s", ca.trim_end_matches(".pub"), "-I", "user", "-n"])
        .arg(env("NETKIT_TEST_SSH_USER"))
        .arg(dir.join("id_ed25519.pub"))
        .status();
    assert!(signed.is_ok_and(|s| s.success()), "ssh-keygen -s");
    let out = ssh_with(&["-i", copy.to_str().unwrap()], &["true"], b"");
    ok(out.clone());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("id_ed25519-cert.pub: netkit cannot offer a certificate from a file"),
        "{err}"
    );
}

/// Sets O_NONBLOCK on `fd`, as rsync sets it on the pipes it hands its ssh.
fn set_nonblocking(fd: impl std::os::fd::AsFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_retain(fcntl(&fd, FcntlArg::F_GETFL).unwrap());
    fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).unwrap();
}

/// `netkit ssh` (as [`ssh_args`]) with these stdin, stdout and stderr.
fn ssh_on(
    flags: &[&str],
    words: &[&str],
    (stdin, stdout, stderr): (Stdio, Stdio, Stdio),
) -> netkit_tests::Spawned {
    netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(flags, words))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr),
    )
}

/// All `reader` holds once it has waited a second: the writer fills the pipe meanwhile.
fn read_late(mut reader: std::io::PipeReader) -> Vec<u8> {
    std::thread::sleep(Duration::from_secs(1));
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut all).unwrap();
    all
}

/// `data` written to `writer` in 5 parts a fifth of a second apart, then closed.
fn write_slowly(mut writer: std::io::PipeWriter, data: &[u8]) -> std::thread::JoinHandle<()> {
    let parts: Vec<Vec<u8>> = data
        .chunks(data.len().div_ceil(5))
        .map(<[u8]>::to_vec)
        .collect();
    std::thread::spawn(move || {
        for part in parts {
            std::thread::sleep(Duration::from_millis(200));
            writer.write_all(&part).unwrap();
        }
    })
}

#[test]
fn non_blocking_stdin_stdout_and_stderr_lose_nothing_as_with_ssh() {
    // rsync hands its ssh non-blocking pipes: EAGAIN on a full stdout was an error (exit 255
    // after 64 KiB), on an empty stdin an EOF (the remote got 0 bytes, exit 0) and on a full
    // stderr the rest of it was dropped (exit 0). ssh waits for the pipe.
    let (reader, writer) = std::io::pipe().unwrap();
    set_nonblocking(&writer);
    let child = ssh_on(
        &[],
        &["head -c 5000000 /dev/zero"],
        (Stdio::null(), writer.into(), Stdio::piped()),
    );
    let stdout = read_late(reader);
    let out = child.wait_with_output();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (stdout.len(), out.status.code()),
        (5_000_000, Some(0)),
        "{said}"
    );

    let (reader, writer) = std::io::pipe().unwrap();
    set_nonblocking(&reader);
    let child = ssh_on(
        &[],
        &["wc -c"],
        (reader.into(), Stdio::piped(), Stdio::piped()),
    );
    let feeder = write_slowly(writer, &[b'x'; 5000]);
    let out = child.wait_with_output();
    feeder.join().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "5000",
        "{said}"
    );
    assert_eq!(out.status.code(), Some(0), "{said}");

    let (reader, writer) = std::io::pipe().unwrap();
    set_nonblocking(&writer);
    let child = ssh_on(
        &[],
        &["head -c 3000000 /dev/zero >&2; echo done"],
        (Stdio::null(), Stdio::piped(), writer.into()),
    );
    let stderr = read_late(reader);
    let out = child.wait_with_output();
    assert_eq!(
        (stderr.len(), out.status.code()),
        (3_000_000, Some(0)),
        "{}",
        String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(300)..])
    );
    assert_eq!(out.stdout, b"done\n");
}

#[test]
fn dash_w_with_non_blocking_stdin_and_stdout_loses_nothing_as_with_ssh() {
    // -W took EAGAIN on stdin for its end (the tunnel got EOF early) and on stdout for a
    // reader gone (exit 0, the rest dropped).
    let echo = netkit_tests::Served::start(&["echo", "--bind", "127.0.0.1:0"]);
    let to = format!("127.0.0.1:{}", echo.addrs[0].port());
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (in_reader, in_writer) = std::io::pipe().unwrap();
    let (out_reader, out_writer) = std::io::pipe().unwrap();
    set_nonblocking(&in_reader);
    set_nonblocking(&out_writer);
    let child = ssh_on(
        &["-W", &to],
        &[],
        (in_reader.into(), out_writer.into(), Stdio::piped()),
    );
    let feeder = write_slowly(in_writer, &data);
    let echoed = read_late(out_reader);
    feeder.join().unwrap();
    let out = child.wait_with_output();
    assert!(
        echoed == data,
        "{} of {} bytes; {}",
        echoed.len(),
        data.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn flags_and_option_forms_openssh_takes_are_taken() {
    // sshfs and pdsh pass -2, git-annex -S, Kerberos sites -K: refused as unknown, the tool
    // failed (sshfs: "read: Connection reset by peer"). -P is a flag ssh 9.2 takes and
    // ignores; KeepAlive is TCPKeepAlive's old name; ssh takes single quotes off as double.
    let user = env("NETKIT_TEST_SSH_USER");
    let as_user = format!("User='{user}'");
    let taken: [&[&str]; 8] = [
        &["-2"],
        &["-2", "-a", "-x"],
        &["-P"],
        &["-y"],
        &["-K"],
        &["-M", "-S", "/nonexistent/ctl", "-o", "ControlPersist=yes"],
        &["-B", "lo"],
        &["-o", "KeepAlive=yes"],
    ];
    for flags in taken {
        let out = ssh_with(flags, &["echo", "ok"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.stdout, b"ok\n", "{flags:?}: {err}");
        assert!(!err.contains("KeepAlive"), "{flags:?}: {err}");
    }
    // The user from -o alone: the destination names none.
    let mut args = vec!["ssh".to_owned(), "-p".into(), port().to_string()];
    args.extend(["-o".to_owned(), as_user]);
    args.extend(common());
    args.extend([env("NETKIT_TEST_SSH_HOST"), "echo".into(), "ok".into()]);
    let out = netkit(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
        &[],
    );
    assert_eq!(
        out.stdout,
        b"ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As ssh says it, exit 255.
    let out = ssh_with(&["-1"], &["echo", "ok"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains("SSH protocol v.1 is no longer supported"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn clear_all_forwardings_drops_every_forward_as_ssh_does() {
    // scp, sftp and sshfs pass ClearAllForwardings=yes: netkit warned that it ignored it and
    // opened the config file's forwards, failing with ExitOnForwardFailure when the user's
    // own tunnel held the port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = taken.local_addr().unwrap().port();
    let dir = work_dir().join("ssh-cli-clear-all-forwardings");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "Host *\n  LocalForward 127.0.0.1:{held} 127.0.0.1:22\n  ExitOnForwardFailure yes\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let flag = format!("127.0.0.1:{held}:127.0.0.1:22");
    for clear in ["ClearAllForwardings=yes", "ClearAllForwardings yes"] {
        let out = ssh_with(
            &["-F", config, "-o", clear, "-L", &flag],
            &["echo", "ran"],
            b"",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.stdout, b"ran\n", "{err}");
        assert!(err.is_empty(), "{err}");
    }
    // Without it the forward is made, and fails here.
    let out = ssh_with(&["-F", config], &["echo", "ran"], b"");
    assert_eq!(out.status.code(), Some(255));
    let out = ssh_with(
        &["-F", config, "-o", "ClearAllForwardings=yes", "-G"],
        &[],
        b"",
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("clearallforwardings yes\n") && !shown.contains("localforward"),
        "{shown}"
    );
}

/// An askpass program that logs each prompt it is given to `log` and answers `answer`.
fn askpass_script(dir: &Path, answer: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let script = dir.join("askpass.sh");
    let log = dir.join("askpass.log");
    let _ = std::fs::remove_file(&log);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\nprintf '%s\\n' '{answer}'\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

/// `netkit ssh` by password only, without a controlling terminal (setsid, as under ansible),
/// with these variables.
fn ssh_by_password_without_terminal(flags: &[&str], vars: &[(&str, &Path)]) -> Output {
    let mut args = vec!["-o", "PubkeyAuthentication=no"];
    args.extend(flags);
    Command::new("setsid")
        .arg("-w")
        .arg(netkit_bin())
        .args(ssh_args(&args, &["echo", "ok"]))
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("NETKIT_SSH_PASSWORD")
        .env_remove("SSH_ASKPASS_REQUIRE")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn ssh_askpass_answers_for_the_password_as_ssh_asks_it() {
    // ansible-core 2.19's default password method sets SSH_ASKPASS and
    // SSH_ASKPASS_REQUIRE=force: netkit prompted on the terminal nobody reads, for ever.
    let dir = work_dir().join("ssh-cli-askpass");
    std::fs::create_dir_all(&dir).unwrap();
    let (script, log) = askpass_script(&dir, &env("NETKIT_TEST_SSH_PASSWORD"));
    let force = Path::new("force");
    let out = ssh_by_password_without_terminal(
        &[],
        &[("SSH_ASKPASS", &script), ("SSH_ASKPASS_REQUIRE", force)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, b"ok\n", "{err}");
    let asked = std::fs::read_to_string(&log).unwrap();
    assert!(
        asked.ends_with("'s password: \n") && asked.lines().count() == 1,
        "{asked}"
    );
    // Without a terminal, a display lets ssh use it too; `never` does not.
    let _ = std::fs::remove_file(&log);
    let display = Path::new(":0");
    let out =
        ssh_by_password_without_terminal(&[], &[("SSH_ASKPASS", &script), ("DISPLAY", display)]);
    assert_eq!(
        out.stdout,
        b"ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let never = Path::new("never");
    let out = ssh_by_password_without_terminal(
        &[],
        &[
            ("SSH_ASKPASS", &script),
            ("DISPLAY", display),
            ("SSH_ASKPASS_REQUIRE", never),
        ],
    );
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    // A cancelled askpass (status 1) is an empty password, refused and asked again up to
    // NumberOfPasswordPrompts times, as ssh asks (it stopped at the first).
    let cancel = dir.join("cancel.sh");
    std::fs::write(
        &cancel,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\nexit 1\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cancel, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_file(&log);
    let out = ssh_by_password_without_terminal(
        &["-o", "NumberOfPasswordPrompts=2"],
        &[("SSH_ASKPASS", &cancel), ("SSH_ASKPASS_REQUIRE", force)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(out.stdout.is_empty());
    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(asked.matches("'s password: ").count(), 2, "{asked}");
    assert_eq!(
        err.matches("Permission denied, please try again.").count(),
        1,
        "{err}"
    );
}

#[test]
fn number_of_password_prompts_bounds_the_passphrase_questions() {
    // ssh asks "Enter passphrase for key" again after a wrong answer, NumberOfPasswordPrompts
    // times in all (0: never), then goes on to the next method; netkit asked three times
    // whatever the option said, and a PEM or PKCS#8 key only once (libssh2 says "wrong
    // passphrase" for them with a code of its own, read as a refusal by the server).
    let dir = work_dir().join("ssh-cli-passphrase-prompts");
    std::fs::create_dir_all(&dir).unwrap();
    let (script, log) = askpass_script(&dir, "wrong");
    let passphrase = env("NETKIT_TEST_SSH_PASSPHRASE");
    // The PEM key again, as `ssh-keygen -p -m PKCS8` writes it (BEGIN ENCRYPTED PRIVATE KEY).
    let pkcs8 = dir.join("id_encrypted_pkcs8");
    let _ = std::fs::remove_file(&pkcs8);
    std::fs::copy(key("id_encrypted_pem"), &pkcs8).unwrap();
    std::fs::set_permissions(&pkcs8, std::fs::Permissions::from_mode(0o600)).unwrap();
    keygen(
        &["-p", "-m", "PKCS8", "-P", &passphrase, "-N", &passphrase],
        &pkcs8,
    );
    assert!(
        std::fs::read_to_string(&pkcs8)
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    );
    // A key the server does not accept, whose passphrase is the askpass's answer: asked for
    // once, then refused by the server, which is no wrong passphrase to ask again.
    let refused = dir.join("id_refused_pem");
    let _ = std::fs::remove_file(&refused);
    keygen(
        &["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "wrong"],
        &refused,
    );
    let run = |path: &str, option: &str| {
        let _ = std::fs::remove_file(&log);
        let out = Command::new("setsid")
            .arg("-w")
            .arg(netkit_bin())
            // The key alone: no working key after it.
            .args(["ssh", "-p", &port().to_string(), "--known-hosts"])
            .arg(env("NETKIT_TEST_SSH_KNOWN_HOSTS"))
            .args(["-o", "PasswordAuthentication=no", "-o", option, "-i", path])
            .args([dest().as_str(), "echo", "ok"])
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("NETKIT_SSH_PASSPHRASE")
            .env_remove("DISPLAY")
            .env("SSH_ASKPASS", &script)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(255), "{path} {option}: {err}");
        let questions = std::fs::read_to_string(&log).unwrap_or_default();
        let asked = questions
            .matches(&format!("Enter passphrase for key '{path}': "))
            .count();
        assert_eq!(questions.lines().count(), asked, "{questions}");
        (asked, err)
    };
    // ECDSA keys in both formats too (BEGIN EC PRIVATE KEY with Proc-Type: 4,ENCRYPTED): a
    // wrong passphrase fails before the server is asked, so they need not be authorised.
    let ec_pem = dir.join("id_ec_pem");
    let _ = std::fs::remove_file(&ec_pem);
    keygen(
        &["-q", "-t", "ecdsa", "-m", "PEM", "-N", &passphrase],
        &ec_pem,
    );
    let ec_pkcs8 = dir.join("id_ec_pkcs8");
    let _ = std::fs::remove_file(&ec_pkcs8);
    keygen(
        &["-q", "-t", "ecdsa", "-m", "PKCS8", "-N", &passphrase],
        &ec_pkcs8,
    );
    for path in [
        key("id_encrypted"),
        key("id_encrypted_pem"),
        pkcs8,
        ec_pem,
        ec_pkcs8,
    ] {
        let path = path.display().to_string();
        for (prompts, asked) in [("2", 2), ("1", 1), ("0", 0)] {
            let option = format!("NumberOfPasswordPrompts={prompts}");
            assert_eq!(run(&path, &option).0, asked, "{path} {option}");
        }
    }
    let path = refused.display().to_string();
    let (asked, err) = run(&path, "NumberOfPasswordPrompts=2");
    assert_eq!(asked, 1, "{err}");
    assert!(
        err.contains(&format!("authentication failed (tried: publickey {path};")),
        "{err}"
    );
}

/// Runs `ssh-keygen` with `args` on the key file `path`.
fn keygen(args: &[&str], path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(args)
        .arg("-f")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_askpass_program_that_cannot_be_run_passes_the_locked_key_over_as_ssh() {
    // With a display and no terminal, ssh-askpass not installed: the login stopped at the
    // locked key ("SSH_ASKPASS /usr/bin/ssh-askpass: No such file"), where ssh, its askpass
    // child failing, takes no passphrase and goes on to the next key.
    let encrypted = key("id_encrypted").display().to_string();
    let out = Command::new("setsid")
        .arg("-w")
        .arg(netkit_bin())
        .args(ssh_args(&["-i", &encrypted], &["echo", "ok"]))
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("NETKIT_SSH_PASSPHRASE")
        .env_remove("SSH_ASKPASS_REQUIRE")
        .env("DISPLAY", ":0")
        .env("SSH_ASKPASS", "/nonexistent/ssh-askpass")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, b"ok\n", "{err}");
    assert!(err.contains("/nonexistent/ssh-askpass"), "{err}");
}

#[test]
fn number_of_password_prompts_is_how_many_times_a_password_is_asked_for() {
    // pssh and ansible pass NumberOfPasswordPrompts=1: warned of on every connection, and a
    // wrong password was never asked again (ssh asks 3 times); 0 asks never.
    let dir = work_dir().join("ssh-cli-password-prompts");
    std::fs::create_dir_all(&dir).unwrap();
    let (script, log) = askpass_script(&dir, "wrong");
    let force = Path::new("force");
    let vars = [
        ("SSH_ASKPASS", script.as_path()),
        ("SSH_ASKPASS_REQUIRE", force),
    ];
    for (option, asked) in [
        (None, 3),
        (Some("NumberOfPasswordPrompts=1"), 1),
        (Some("NumberOfPasswordPrompts=2"), 2),
        (Some("NumberOfPasswordPrompts=0"), 0),
    ] {
        let _ = std::fs::remove_file(&log);
        let flags: Vec<&str> = option.iter().flat_map(|o| ["-o", o]).collect();
        let out = ssh_by_password_without_terminal(&flags, &vars);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{err}");
        let prompts = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(prompts.lines().count(), asked, "{option:?}: {prompts}");
        assert!(!err.contains("NumberOfPasswordPrompts"), "{err}");
        assert_eq!(
            err.matches("Permission denied, please try again.").count(),
            asked.saturating_sub(1),
            "{err}"
        );
    }
}

/// `netkit sftp -b -` to the sshd at `port` (known in `known_hosts`) with `flags`, its
/// commands written one at a time by the caller.
fn sftp_batch(port: u16, known_hosts: &Path, flags: &[&str]) -> netkit_tests::Spawned {
    let port = port.to_string();
    let key = key("id_ed25519").display().to_string();
    let known_hosts = known_hosts.display().to_string();
    let mut args = vec!["sftp", "-b", "-", "-P", &port];
    args.extend(["--known-hosts", &known_hosts, "-i", &key]);
    args.extend(flags);
    let dest = dest();
    args.push(&dest);
    netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
}

#[test]
fn an_idle_sftp_session_answers_the_servers_keepalives_as_sftp_does() {
    // sshd's ClientAliveInterval (CIS hardening: 300 s, 3 unanswered) hung up on a session
    // waiting for its next command: nothing read the socket, so nothing answered sshd's
    // keepalives ("Timeout, client not responding"), where OpenSSH's sftp stays up.
    let sshd = netkit_tests::ssh::OwnSshd::start(
        "client-alive",
        &["ClientAliveInterval 1", "ClientAliveCountMax 1"],
    );
    let mut child = sftp_batch(sshd.port, &sshd.known_hosts, &[]);
    let mut commands = child.stdin.take().unwrap();
    commands.write_all(b"pwd\n").unwrap();
    // sshd hangs up after two unanswered checks, a second or more apart: 2 to 4 s.
    std::thread::sleep(Duration::from_secs(6));
    commands.write_all(b"ls /\n").unwrap();
    drop(commands);
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sftp> ls /"),
        "{err}"
    );
}

/// Waits (30 s at most) until the `sftp_batch` session has answered the `pwd` it was sent:
/// logged in, its sshd child forked, so that `server_of` finds the process that carries it
/// (a fixed 500 ms could find none, or only sshd's pre-auth ones on a loaded machine). The
/// rest of stdout is read and dropped, so that the pipe never fills.
fn answered_pwd(child: &mut netkit_tests::Spawned) {
    use std::io::BufRead as _;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("Remote working directory: ") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the sftp session answered pwd within 30 s");
}

#[test]
fn a_connection_the_server_closed_is_told_once_as_closed_and_ends_the_session() {
    // Killed under an idle session (a reboot, an idle limit), the connection was told as
    // "connection closed (copying /)" for an ls, and a session at the prompt went on, each
    // command then blaming a .bashrc that prints.
    let mut child = sftp_batch(port(), Path::new(&env("NETKIT_TEST_SSH_KNOWN_HOSTS")), &[]);
    let mut commands = child.stdin.take().unwrap();
    commands.write_all(b"pwd\n").unwrap();
    answered_pwd(&mut child);
    for pid in server_of(child.id()) {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(500));
    commands.write_all(b"-ls /\n-ls /\npwd\n").unwrap();
    drop(commands);
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("the connection was closed"), "{err}");
    assert!(
        !err.contains("copying") && !err.contains(".bashrc"),
        "{err}"
    );
}

#[test]
fn an_idle_sftp_session_gives_up_on_a_silent_server_after_server_alive_count_max() {
    // -o ServerAliveInterval/ServerAliveCountMax pass through to sftp as to ssh: they went
    // unused while the session waited for its next command, which then waited out the whole
    // timeout on a server gone silent.
    let mut child = sftp_batch(
        port(),
        Path::new(&env("NETKIT_TEST_SSH_KNOWN_HOSTS")),
        &["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=1"],
    );
    let mut commands = child.stdin.take().unwrap();
    commands.write_all(b"pwd\n").unwrap();
    answered_pwd(&mut child);
    let frozen = Frozen::server_of(child.id());
    std::thread::sleep(Duration::from_secs(6));
    let asked = std::time::Instant::now();
    commands.write_all(b"ls /\n").unwrap();
    drop(commands);
    let out = child.wait_with_output();
    drop(frozen);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(asked.elapsed() < Duration::from_secs(3), "{err}");
    assert!(err.contains("keepalive"), "{err}");
}

/// How many times the threads of process `pid` wake in the next 2 s (their voluntary context
/// switches, `/proc/PID/task/*/status`: each sleep in a poll that ends is one).
fn wakeups_in_2s(pid: u32) -> u64 {
    let switches = || -> u64 {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
            .filter_map(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .sum()
    };
    let before = switches();
    std::thread::sleep(Duration::from_secs(2));
    switches().saturating_sub(before)
}

/// The process named `name` among `pid`'s descendants (`script` runs its line in a shell).
fn descendant_named(pid: u32, name: &str) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|child| child.parse().ok())
        .find_map(|child: u32| {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).ok()?;
            if comm.trim_end() == name {
                Some(child)
            } else {
                descendant_named(child, name)
            }
        })
}

#[test]
fn an_idle_command_and_an_idle_remote_shell_sleep_until_something_happens() {
    // The command loop woke every 100 ms (some 20 times in 2 s) with nothing to do; ssh
    // sleeps until the connection, stdin, a signal or a keepalive needs it.
    let args = ssh_args(&[], &["sleep 4; cat; exit 7"]);
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    // Connected, the command started, stdin open and silent.
    std::thread::sleep(Duration::from_millis(800));
    let woke = wakeups_in_2s(child.id());
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"typed\n").unwrap();
    drop(input);
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert_eq!(out.stdout, b"typed\n", "{err}");
    assert!(
        woke < 10,
        "an idle `netkit ssh HOST CMD` woke {woke} times in 2 s"
    );
    // An interactive shell idle at its prompt, on a terminal.
    let mut terminal = Terminal::start(&netkit_line(&[], &[]));
    terminal.type_keys(b"echo ready-$((6*7))\r");
    terminal.wait_for("ready-42");
    std::thread::sleep(Duration::from_millis(300));
    let netkit = descendant_named(terminal.child.id(), "netkit").expect("netkit under script");
    let woke = wakeups_in_2s(netkit);
    terminal.type_keys(b"exit 4\r");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(4), "{screen}");
    assert!(
        woke < 10,
        "an idle remote shell woke {woke} times in 2 s: {screen}"
    );
}

#[test]
fn an_idle_sftp_prompt_sleeps_until_its_next_command() {
    // It woke every 500 ms (4 times in 2 s), to send a keepalive should one be due; asleep
    // until something happens, none (one or two allowed for the machine's own doings).
    let mut child = sftp_batch(port(), Path::new(&env("NETKIT_TEST_SSH_KNOWN_HOSTS")), &[]);
    let mut commands = child.stdin.take().unwrap();
    commands.write_all(b"pwd\n").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let woke = wakeups_in_2s(child.id());
    commands.write_all(b"ls /\n").unwrap();
    drop(commands);
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sftp> ls /"),
        "{err}"
    );
    assert!(woke < 3, "an idle sftp prompt woke {woke} times in 2 s");
}

#[test]
fn a_refused_sftp_channel_is_told_as_refused_not_as_a_missing_directory() {
    // MaxSessions 0: `put f host:/tmp/` said "/tmp/: not a directory", exit 2 (a stat's
    // every failure was taken for "not there"), and `ls` blamed a .bashrc that prints.
    let sshd = netkit_tests::ssh::OwnSshd::start("max-sessions-0", &["MaxSessions 0"]);
    let local = work_dir().join("refused-channel.txt");
    std::fs::write(&local, "x\n").unwrap();
    let (port, known_hosts) = (
        sshd.port.to_string(),
        sshd.known_hosts.display().to_string(),
    );
    let key = key("id_ed25519").display().to_string();
    let run = |words: &[&str]| {
        let mut args = vec!["sftp", words[0], "-P", &port, "--known-hosts", &known_hosts];
        args.extend(["-i", &key]);
        args.extend(&words[1..]);
        netkit(&args, b"", &[])
    };
    let target = format!("{}:/tmp/", dest());
    let out = run(&["put", local.to_str().unwrap(), &target]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused a channel"), "{err}");
    let out = run(&["ls", &format!("{}:/tmp", dest())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refused a channel") && !err.contains(".bashrc"),
        "{err}"
    );

    // No sftp subsystem: refused as such.
    let sshd =
        netkit_tests::ssh::OwnSshd::start("no-sftp-subsystem", &["Subsystem other internal-sftp"]);
    let (port, known_hosts) = (
        sshd.port.to_string(),
        sshd.known_hosts.display().to_string(),
    );
    let args = [
        "sftp",
        "ls",
        "-P",
        &port,
        "--known-hosts",
        &known_hosts,
        "-i",
        &key,
    ];
    let listed = format!("{}:/tmp", dest());
    let out = netkit(&[&args[..], &[listed.as_str()]].concat(), b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused the SFTP subsystem"), "{err}");

    // A directory the user may not search: permission denied, exit 1, as sftp and scp say.
    let shut = remote_dir("sftp-put-unsearchable");
    std::fs::create_dir_all(shut.join("inner")).unwrap();
    std::fs::set_permissions(&shut, std::fs::Permissions::from_mode(0o700)).unwrap();
    Command::new("chown")
        .arg("root:")
        .arg(&shut)
        .status()
        .unwrap();
    let target = format!("{}:{}/", dest(), shut.join("inner").display());
    let port = netkit_tests::ssh::port().to_string();
    let known_hosts = env("NETKIT_TEST_SSH_KNOWN_HOSTS");
    let args = [
        "sftp",
        "put",
        "-P",
        &port,
        "--known-hosts",
        &known_hosts,
        "-i",
        &key,
    ];
    let out = netkit(
        &[&args[..], &[local.to_str().unwrap(), target.as_str()]].concat(),
        b"",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied"), "{err}");
}

/// `netkit args`, killed and failed if it has not ended within 60 s.
fn netkit_within_a_minute(args: &[String]) -> Output {
    let child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    child.wait_with_output_within(Duration::from_secs(60))
}

#[test]
fn a_server_listing_methods_that_are_not_utf8_is_refused_as_ssh_does_not_a_crash() {
    // ssh2's auth_methods unwrapped the list as UTF-8: netkit panicked (exit 101), and with
    // --hosts hung with no summary for any host, the good one's included. OpenSSH:
    // "Permission denied (pass\377word).", exit 255.
    let hostile = netkit_tests::ssh::HostileSsh::start("auth");
    let key = key("id_ed25519").display().to_string();
    let known = hostile.known_hosts.display().to_string();
    let port = hostile.port.to_string();
    let sftp_to = work_dir().join("hostile-ssh-auth-x").display().to_string();
    let one = |command: &[&str]| {
        let mut args = vec![command[0].to_owned(), "-i".into(), key.clone()];
        args.extend(["--known-hosts".into(), known.clone()]);
        args.extend(command[1..].iter().map(|&a| a.to_owned()));
        netkit_within_a_minute(&args)
    };
    // netkit sftp exits 1 on failure (its README).
    for (out, code) in [
        (one(&["ssh", "-p", &port, "u@127.0.0.1", "true"]), 255),
        (one(&["sftp", "-P", &port, "u@127.0.0.1:/x", &sftp_to]), 1),
    ] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(
            err.contains("pass?word") && !err.contains("panicked"),
            "{err}"
        );
    }
    // Both servers in one known_hosts: the good host's result comes, the other is a row.
    let both = work_dir().join("hostile-ssh-auth-and-main-known_hosts");
    let text = std::fs::read_to_string(env("NETKIT_TEST_SSH_KNOWN_HOSTS")).unwrap()
        + &std::fs::read_to_string(&hostile.known_hosts).unwrap();
    std::fs::write(&both, text).unwrap();
    let good = format!("{}@127.0.0.1:{}", env("NETKIT_TEST_SSH_USER"), self::port());
    let bad = format!("u@127.0.0.1:{port}");
    let out = netkit_within_a_minute(&[
        "ssh".into(),
        "--hosts".into(),
        format!("{good},{bad}"),
        "--json".into(),
        "-i".into(),
        key.clone(),
        "--known-hosts".into(),
        both.display().to_string(),
        "--".into(),
        "echo hi".into(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["ok"], true, "{text}");
    assert_eq!(doc[0]["stdout"], "hi\n", "{text}");
    assert_eq!(doc[1]["ok"], false, "{text}");
    assert!(
        doc[1]["error"].as_str().unwrap().contains("pass?word"),
        "{text}"
    );
}

#[test]
fn an_exit_signal_whose_name_is_not_utf8_still_counts_as_killed_as_in_ssh() {
    // ssh2 drops a signal name that is not UTF-8: the command counted as a success (exit 0,
    // "ok": true). OpenSSH exits 255.
    let hostile = netkit_tests::ssh::HostileSsh::start("signal");
    let common = [
        "-i".to_owned(),
        key("id_ed25519").display().to_string(),
        "--known-hosts".into(),
        hostile.known_hosts.display().to_string(),
    ];
    let mut args = vec!["ssh".to_owned(), "-p".into(), hostile.port.to_string()];
    args.extend(common.iter().cloned());
    args.extend(["u@127.0.0.1".into(), "sleep 9".into()]);
    let out = netkit_within_a_minute(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("killed by signal ??KILL"), "{err}");
    let mut args = vec!["ssh".to_owned(), "--json".into(), "--hosts".into()];
    args.push(format!("u@127.0.0.1:{}", hostile.port));
    args.extend(common.iter().cloned());
    args.extend(["--".into(), "sleep 9".into()]);
    let out = netkit_within_a_minute(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["ok"], false, "{text}");
    assert_eq!(doc[0]["signal"], "??KILL", "{text}");
}

#[test]
fn dash_w_ends_when_the_far_side_closes_with_stdin_still_open() {
    // ssh -W ends at once; netkit's relay slept out its 1 s grace when the turn that found
    // the local side idle was the one that made it done.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"bye\n").unwrap();
        drop(conn);
        std::time::Instant::now()
    });
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(ssh_args(&["-W", &target], &[]))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let stdin = child.stdin.take().unwrap();
    // A -W that never ended fails here, killed, instead of holding the run.
    let out = child.wait_with_output_within(Duration::from_secs(10));
    assert_eq!(out.stdout, b"bye\n");
    assert!(out.status.success());
    let closed = server.join().unwrap();
    assert!(
        closed.elapsed() < Duration::from_millis(900),
        "netkit ended {:?} after the far side closed",
        closed.elapsed()
    );
    drop(stdin);
}

/// `netkit sftp` with `words` after the operation (`get`, `put`, or a session's destination),
/// started with its stderr piped and its stdin holding `stdin`.
fn sftp_started(op: &str, words: &[String], stdin: &[u8]) -> netkit_tests::Spawned {
    let port = port().to_string();
    let mut args = vec!["sftp".to_owned()];
    if !op.is_empty() {
        args.push(op.to_owned());
    }
    args.extend(["-P".to_owned(), port]);
    args.extend(common());
    args.extend(words.iter().cloned());
    let mut child = netkit_tests::Spawned::start(
        Command::new(netkit_bin())
            .args(&args)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child
}

/// Once `partial` (a transfer's temporary file, the first in `dir` starting with `prefix`)
/// holds 16 MiB, stops `child` (SIGSTOP), runs `change` and lets it go on: what is in flight
/// then (the windows and read-ahead, some megabytes) is far less than the files changed, so
/// that the change lands midway wherever the machine's load puts the transfer.
fn change_midway(
    child: &mut netkit_tests::Spawned,
    (dir, prefix): (&Path, &str),
    change: impl FnOnce(),
) {
    let partial = netkit_tests::temporary_file(dir, prefix);
    netkit_tests::wait_for_file_size(&partial, 16 << 20, child);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    change();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
}

/// Sets the length of the file at `path`.
fn set_len(path: &Path, len: u64) {
    std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// A remote file cut short while a get reads it, or one that grew, is kept as read (to its
/// new end, as OpenSSH's sftp reads it), with one warning naming it and both sizes, and exit 1,
/// as tar's "file changed as we read it" (sftp said nothing and exited 0): a get, a get -r that
/// goes on with the other files, the session's get, and a put of a local file cut short.
#[test]
fn sftp_takes_a_sys_file_that_says_4096_bytes_and_holds_less_as_unchanged() {
    // Regression pass: /sys's files say 4096 bytes and hold a line; the size check after a
    // copy warned "file changed as we read it" and exited 1 for each (OpenSSH's sftp: 0). A
    // file that still says the size it said is taken as not changed.
    let sys = Path::new("/sys/class/net/lo/mtu");
    let want = std::fs::read(sys).unwrap();
    assert!(std::fs::metadata(sys).unwrap().len() > want.len() as u64);
    let into = work_dir().join("sftp-sys");
    let _ = std::fs::remove_dir_all(&into);
    std::fs::create_dir_all(&into).unwrap();
    let got = into.join("mtu");
    let remote = format!("{}:{}", dest(), sys.display());
    let out = sftp(&["get", &remote, got.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "{err}");
    assert_eq!(std::fs::read(&got).unwrap(), want);
    let base = remote_dir("sftp-sys");
    let put = format!("{}:{}", dest(), base.join("mtu").display());
    let out = sftp(&["put", sys.to_str().unwrap(), &put]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "{err}");
    assert_eq!(std::fs::read(base.join("mtu")).unwrap(), want);
}

#[test]
fn sftp_warns_of_a_file_that_changed_size_while_copied_and_exits_1() {
    let base = remote_dir("sftp-changed");
    let into = work_dir().join("sftp-changed");
    let _ = std::fs::remove_dir_all(&into);
    std::fs::create_dir_all(&into).unwrap();
    let remote = |path: &Path| format!("{}:{}", dest(), path.display());
    let warned = |err: &str, path: &str, size: u64, copied: u64| {
        let line = format!(
            "netkit: warning: {}:{path}: file changed as we read it: {size} bytes when the copy \
             began, {copied} copied",
            env("NETKIT_TEST_SSH_HOST")
        );
        assert!(err.lines().any(|l| l == line), "{line:?} in {err}");
    };
    // A get: cut to 1 MiB once 16 MiB came.
    let shrinks = base.join("shrinks.bin");
    set_len(&shrinks, 512 << 20);
    let got = into.join("shrinks.bin");
    let mut child = sftp_started("get", &[remote(&shrinks), got.display().to_string()], b"");
    change_midway(&mut child, (&into, ".shrinks.bin"), || {
        set_len(&shrinks, 1 << 20)
    });
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let saved = std::fs::metadata(&got).expect("kept as read").len();
    assert!((16 << 20..512 << 20).contains(&saved), "{saved}");
    warned(&err, &shrinks.display().to_string(), 512 << 20, saved);
    assert_eq!(err.lines().count(), 1, "{err}");

    // The session's get of a file that grew from 64 to 96 MiB: read to its new end.
    let grows = base.join("grows.bin");
    set_len(&grows, 64 << 20);
    let script = format!("get {} {}\n", grows.display(), into.display());
    let mut child = sftp_started("", &[remote(&base)], script.as_bytes());
    change_midway(&mut child, (&into, ".grows.bin"), || {
        set_len(&grows, 96 << 20)
    });
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    warned(&err, &grows.display().to_string(), 64 << 20, 96 << 20);
    assert_eq!(
        std::fs::metadata(into.join("grows.bin")).unwrap().len(),
        96 << 20
    );

    // A get -r: the other file is fetched, the run ends in failure.
    let tree = base.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("b.txt"), "b\n").unwrap();
    let cut = tree.join("a.bin");
    set_len(&cut, 512 << 20);
    // Into the directory `into`, as scp -r nests it: `into/tree`, made here to be watched.
    let tree_into = into.join("tree");
    std::fs::create_dir_all(&tree_into).unwrap();
    let words = ["-r".to_owned(), remote(&tree), into.display().to_string()];
    let mut child = sftp_started("get", &words, b"");
    change_midway(&mut child, (&tree_into, ".a.bin"), || set_len(&cut, 0));
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let saved = std::fs::metadata(tree_into.join("a.bin")).unwrap().len();
    warned(&err, &cut.display().to_string(), 512 << 20, saved);
    assert!(err.contains("1 file changed as we read them"), "{err}");
    assert_eq!(std::fs::read(tree_into.join("b.txt")).unwrap(), b"b\n");

    // A put of a local file cut short: the local path is named.
    let local = into.join("up.bin");
    set_len(&local, 512 << 20);
    let target = base.join("up.bin");
    let words = [local.display().to_string(), remote(&target)];
    let mut child = sftp_started("put", &words, b"");
    change_midway(&mut child, (&base, ".up.bin.netkit-upload"), || {
        set_len(&local, 1 << 20);
    });
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let sent = std::fs::metadata(&target).expect("kept as read").len();
    let line = format!(
        "netkit: warning: {}: file changed as we read it: {} bytes when the copy began, {sent} \
         copied",
        local.display(),
        512 << 20
    );
    assert!(err.lines().any(|l| l == line), "{line:?} in {err}");
    std::fs::remove_dir_all(&into).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_put_over_a_file_never_leaves_its_name_empty_as_sftp_with_posix_rename() {
    // QA (crash): the replace went rename(f, aside), rename(upload, f), remove(aside), so f
    // was missing between two calls, and for good when netkit was killed there. OpenSSH's
    // server offers posix-rename@openssh.com: one rename(2), as OpenSSH's sftp renames.
    use std::sync::atomic::{AtomicBool, Ordering};
    let base = remote_dir("sftp-put-atomic");
    let user = std::fs::metadata(&base).unwrap();
    let owned = |path: &Path| {
        std::os::unix::fs::lchown(path, Some(user.uid()), Some(user.gid())).unwrap();
    };
    let target = base.join("f");
    std::fs::write(&target, "old\n").unwrap();
    owned(&target);
    let local = work_dir().join("sftp-put-atomic.txt");
    std::fs::write(&local, "new\n").unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, target) = (stop.clone(), target.clone());
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            let mut missing = 0_u64;
            while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                if std::fs::symlink_metadata(&target).is_err() {
                    missing += 1;
                }
            }
            missing
        })
    };
    let remote = format!("{}:{}", dest(), target.display());
    for _ in 0..20 {
        ok(sftp(&["put", local.to_str().unwrap(), &remote]));
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(watcher.join().unwrap(), 0, "times f was seen missing");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 1, "no litter");
}

#[test]
fn what_a_replace_killed_half_way_left_is_put_back_or_removed_by_the_next_put() {
    // QA (crash): a replace without posix-rename killed after its first step left no file
    // at the name and the old one as `.netkit-aside.RANDOM`, which nothing found. It is
    // named after the file now, and the next put of the name puts it back (the name was
    // empty) or removes it (the name was replaced), and says so.
    let sshd = netkit_tests::ssh::OwnSshd::start(
        "no-posix-rename",
        &["Subsystem sftp internal-sftp -P posix-rename"],
    );
    let (port, known_hosts) = (
        sshd.port.to_string(),
        sshd.known_hosts.display().to_string(),
    );
    let key = key("id_ed25519").display().to_string();
    let base = remote_dir("sftp-put-aside");
    let user = std::fs::metadata(&base).unwrap();
    let owned = |path: &Path| {
        std::os::unix::fs::lchown(path, Some(user.uid()), Some(user.gid())).unwrap();
    };
    let target = base.join("f");
    let aside = base.join(".f.netkit-aside");
    let local = work_dir().join("sftp-put-aside.txt");
    std::fs::write(&local, "new\n").unwrap();
    let remote = format!("{}:{}", dest(), target.display());
    let put = || {
        let args = [
            "sftp",
            "put",
            "-P",
            &port,
            "--known-hosts",
            &known_hosts,
            "-i",
            &key,
            local.to_str().unwrap(),
            &remote,
        ];
        let out = netkit(&args, b"", &[]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{err}");
        err
    };
    // Killed after the first step: nothing at f.
    std::fs::write(&aside, "old\n").unwrap();
    owned(&aside);
    let err = put();
    assert!(
        err.contains("put back from") && err.contains(".f.netkit-aside"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 1, "no litter");
    // Killed after the second: f is the new file, the old one is superseded.
    std::fs::write(&aside, "old\n").unwrap();
    owned(&aside);
    let err = put();
    assert!(
        err.contains("removed") && err.contains(".f.netkit-aside"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 1, "no litter");
    // Without the extension the replace still goes (moved aside for a moment), quietly.
    std::fs::write(&target, "old\n").unwrap();
    owned(&target);
    assert_eq!(put(), "");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 1, "no litter");
}

#[test]
fn get_a_out_of_disk_space_says_the_part_is_kept_as_http_d_does() {
    // QA (crash): `get -a` on a full disk said only "No space left on device"; the part it
    // kept (and the next `get -a` went on from) went unsaid, where `http -d` names it.
    let base = remote_dir("sftp-get-full");
    std::fs::write(base.join("big.bin"), vec![7_u8; 2 << 20]).unwrap();
    let full = work_dir().join("sftp-get-full");
    let _ = std::fs::remove_dir_all(&full);
    std::fs::create_dir_all(&full).unwrap();
    // A 1 MiB tmpfs in a mount namespace of the run's own, gone with it.
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs '{}' && exec \"$0\" \"$@\"",
        full.display()
    );
    let port = port().to_string();
    let remote = format!("{}:{}/big.bin", dest(), base.display());
    let local = full.join("big.bin");
    let mut args = vec!["-m", "sh", "-c", &script];
    let bin = netkit_bin().display().to_string();
    args.extend([bin.as_str(), "sftp", "get", "-a", "-P", &port]);
    let common = common();
    args.extend(common.iter().map(String::as_str));
    args.extend([remote.as_str(), local.to_str().unwrap()]);
    let out = netkit_tests::Spawned::start(
        Command::new("unshare")
            .args(&args)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("No space left")
            && err.contains("big.bin.part")
            && err.contains("get -a goes on from it"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn no_term_of_ours_is_no_term_on_the_server() {
    // cron, systemd and CI run `ssh -tt` with no TERM: the server was told `xterm`, and
    // `ls --color=auto` there wrote colours into the logs that captured it. ssh sends none.
    let mut command = Command::new(netkit_bin());
    command
        .args(ssh_args(&["-tt"], &["echo \"[${TERM-none}]\""]))
        .env_remove("TERM")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null());
    let out = netkit_tests::Spawned::start(command.stdout(Stdio::piped()).stderr(Stdio::piped()))
        .wait_with_output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("[none]"), "{stdout:?}");
}

#[test]
fn dash_q_hushes_the_remote_signal_line_but_not_its_status() {
    // ssh -q says nothing of a command killed by a signal; the status (255) tells it.
    let out = ssh_with(&["-q"], &["kill -9 $$"], b"");
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let out = ssh_with(&[], &["kill -9 $$"], b"");
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("killed by signal KILL"),
        "{out:?}"
    );
}

#[test]
fn a_batch_file_that_cannot_be_read_is_refused_before_logging_in() {
    // sftp refuses it before it connects: netkit logged in first (a password typed for
    // nothing) and only then said so. A port nothing listens on shows which came first.
    // A directory opens, and failed only once read, after the login, naming no file.
    let missing = work_dir().join("no-such-batch-file");
    let dir = work_dir();
    let closed = free_port().to_string();
    for (batch, why) in [(&missing, "No such file"), (&dir, "Is a directory")] {
        let out = netkit(
            &[
                "sftp",
                "-b",
                batch.to_str().unwrap(),
                "-P",
                &closed,
                "-o",
                "ConnectTimeout=5",
                "u@127.0.0.1",
            ],
            b"",
            &[],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let said = format!("cannot read the batch file {}: {why}", batch.display());
        assert!(err.contains(&said) && err.lines().count() == 1, "{err}");
    }
}

#[test]
fn the_sftp_prompt_is_drawn_on_the_terminal_when_stdout_is_a_file() {
    // `netkit sftp host > log` at a terminal: the prompt and the typed line went to stdout, so
    // the user typed blind and the log filled with the editor's escapes. sftp draws them on
    // the terminal and keeps the log to what the commands print.
    let dir = work_dir().join("sftp-prompt-to-file");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let mut line = vec![netkit_bin().display().to_string(), "sftp".into()];
    line.extend(["-P".into(), port().to_string()]);
    line.extend(common());
    line.push(dest());
    let quoted: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let mut terminal = Terminal::start(&format!("{} > '{}'", quoted.join(" "), log.display()));
    terminal.wait_for("sftp> ");
    terminal.type_keys(b"pwd\r");
    terminal.wait_for_nth("sftp> ", 2);
    terminal.type_keys(b"quit\r");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("pwd"), "{screen}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.starts_with("Remote working directory: /"), "{log:?}");
    assert!(!log.contains('\x1b') && !log.contains("sftp>"), "{log:?}");
}

/// `netkit sftp -b -` with `batch`, which must succeed; its standard output.
fn sftp_batch_out(batch: &str) -> String {
    let port = port().to_string();
    let mut args = vec!["sftp", "-b", "-", "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let target = dest();
    args.push(&target);
    let out = netkit(&args, batch.as_bytes(), &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn sftp_names_that_are_not_utf8_are_shown_fetched_and_removed_by_their_bytes() {
    use std::os::unix::ffi::OsStrExt as _;
    let name = |bytes: &[u8]| std::ffi::OsStr::from_bytes(bytes).to_owned();
    let (latin, twin) = (name(b"latin\xe9"), name("latin\u{fffd}".as_bytes()));
    let dir = remote_dir("sftp-not-utf8");
    std::fs::write(dir.join(&latin), "bytes").unwrap();
    std::fs::write(dir.join(&twin), "twin").unwrap();
    let local = work_dir().join("sftp-not-utf8");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local).unwrap();
    // `[!U+FFFD]` takes the byte 0xE9 alone: read lossily, the byte was that character.
    let text = sftp_batch_out(&format!(
        "cd {}\nlcd {}\nls\nget lat*\nget latin[!\u{fffd}] alone\nrm latin[!\u{fffd}]\nls\n",
        dir.display(),
        local.display()
    ));
    // Shown as sftp shows them, the byte as an octal escape: the two names no longer alike.
    assert!(
        text.contains("sftp> ls\nlatin\\351\nlatin\u{fffd}\nsftp> get"),
        "{text}"
    );
    assert!(text.ends_with("sftp> ls\nlatin\u{fffd}\n"), "{text}");
    // Each file fetched by its own name (the twin was fetched for both), and then the one
    // file removed, its twin left.
    assert_eq!(std::fs::read(local.join(&latin)).unwrap(), b"bytes");
    assert_eq!(std::fs::read(local.join(&twin)).unwrap(), b"twin");
    assert_eq!(std::fs::read(local.join("alone")).unwrap(), b"bytes");
    assert!(!dir.join(&latin).exists());
    assert_eq!(std::fs::read(dir.join(&twin)).unwrap(), b"twin");
}

/// `netkit sftp -b -` with the bytes of `batch`: its output, standard error and exit code.
fn sftp_batch_bytes(batch: &[u8]) -> (String, String, Option<i32>) {
    let port = port().to_string();
    let mut args = vec!["sftp", "-b", "-", "-P", &port];
    let common = common();
    args.extend(common.iter().map(String::as_str));
    let target = dest();
    args.push(&target);
    let out = netkit(&args, batch, &[]);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (text(&out.stdout), text(&out.stderr), out.status.code())
}

#[test]
fn a_batch_line_holding_a_name_that_is_not_utf8_takes_its_bytes_as_sftp_does() {
    // The whole batch ended at such a line ("stream did not contain valid UTF-8"), naming no
    // line, where OpenSSH's sftp takes the line's bytes as the name.
    use std::os::unix::ffi::OsStrExt as _;
    let latin = std::ffi::OsStr::from_bytes(b"latin\xe9");
    let (dir, local) = fresh_dirs("sftp-batch-bytes");
    std::fs::write(dir.join(latin), "bytes").unwrap();
    let mut batch = format!("cd {}\nlcd {}\n", dir.display(), local.display()).into_bytes();
    batch.extend_from_slice(b"get latin\xe9 got\nrename latin\xe9 moved\xff\n");
    let (text, err, code) = sftp_batch_bytes(&batch);
    assert_eq!(code, Some(0), "{text}{err}");
    // Echoed as sftp echoes it, the byte as ls shows it.
    assert!(text.contains("sftp> get latin\\351 got\n"), "{text}");
    assert_eq!(std::fs::read(local.join("got")).unwrap(), b"bytes");
    let moved = dir.join(std::ffi::OsStr::from_bytes(b"moved\xff"));
    assert_eq!(std::fs::read(moved).unwrap(), b"bytes");
}

#[test]
fn a_batch_line_that_cannot_be_taken_is_named_by_its_number() {
    // A line past the cap ended the batch with an error that said what, not where.
    let mut batch = b"pwd\n# a comment\n".to_vec();
    batch.extend(std::iter::repeat_n(b'x', 70 << 10));
    batch.extend_from_slice(b"\npwd\n");
    let (text, err, code) = sftp_batch_bytes(&batch);
    assert_eq!(code, Some(1), "{text}{err}");
    assert_eq!(text.matches("sftp> pwd").count(), 1, "{text}");
    assert!(
        err.contains("batch line 3: a command line longer than 64 KiB"),
        "{err}"
    );
}

#[test]
fn sftp_errors_name_a_file_that_is_not_utf8_as_ls_shows_it() {
    // Errors showed the name lossily (`latin\u{fffd}`, the name of another file) where ls
    // shows `latin\351`, as sftp's errors do; and typed so, as Tab completes it, the name is
    // that file's.
    use std::os::unix::ffi::OsStrExt as _;
    let (dir, local) = fresh_dirs("sftp-error-bytes");
    std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"latin\xe9")), "bytes").unwrap();
    let mut batch = format!("cd {}\nlcd {}\nls\n", dir.display(), local.display()).into_bytes();
    batch.extend_from_slice(b"get latin\\351 typed\n-get nosuch\xe9x\nrm nosuch\xe9x\n");
    let (text, err, code) = sftp_batch_bytes(&batch);
    assert_eq!(code, Some(1), "{text}{err}");
    assert!(text.contains("sftp> ls\nlatin\\351\n"), "{text}");
    assert_eq!(std::fs::read(local.join("typed")).unwrap(), b"bytes");
    assert_eq!(err.matches("nosuch\\351x").count(), 2, "{err}");
    assert!(!err.contains('\u{fffd}'), "{err}");
}

#[test]
fn sftp_tab_completes_a_name_that_is_not_utf8_as_ls_shows_it() {
    // Tab left such names out: the prompt's line is text, which cannot hold the byte. It
    // completes them as ls shows them, `latin\351`, which the line reads back as the byte.
    use std::os::unix::ffi::OsStrExt as _;
    let (dir, local) = fresh_dirs("sftp-tab-bytes");
    std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"latin\xe9")), "bytes").unwrap();
    let mut line = vec![netkit_bin().display().to_string(), "sftp".into()];
    line.extend(["-P".into(), port().to_string()]);
    line.extend(common());
    line.push(dest());
    let quoted: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let mut terminal = Terminal::start(&quoted.join(" "));
    terminal.wait_for("sftp> ");
    let got = local.join("got");
    terminal.type_keys(format!("get {}/lat\t{}\r", dir.display(), got.display()).as_bytes());
    terminal.wait_for_nth("sftp> ", 2);
    terminal.type_keys(b"quit\r");
    let (code, screen) = terminal.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("latin\\351 "), "{screen}");
    assert_eq!(std::fs::read(&got).unwrap(), b"bytes", "{screen}");
}

#[test]
fn sftp_recursive_put_and_get_keep_names_that_are_not_utf8_byte_for_byte() {
    use std::os::unix::ffi::OsStrExt as _;
    let name = |bytes: &[u8]| std::ffi::OsStr::from_bytes(bytes).to_owned();
    let local = work_dir().join("sftp-not-utf8-tree");
    let _ = std::fs::remove_dir_all(&local);
    let tree = local.join("up").join(name(b"tree\xe9"));
    std::fs::create_dir_all(tree.join(name(b"sub\xff"))).unwrap();
    std::fs::write(tree.join(name(b"sub\xff")).join(name(b"f\xe9")), "deep").unwrap();
    std::fs::write(tree.join("plain"), "top").unwrap();
    std::fs::create_dir_all(local.join("down")).unwrap();
    let dir = remote_dir("sftp-not-utf8-tree");
    // The top's name itself is not UTF-8 and reached by a wildcard, as a name that cannot be
    // typed is.
    sftp_batch_out(&format!(
        "cd {}\nlcd {}\nput -r tree*\nlcd ../down\nget -r tree*\n",
        dir.display(),
        local.join("up").display()
    ));
    for root in [dir.clone(), local.join("down")] {
        let copy = root.join(name(b"tree\xe9"));
        let deep = copy.join(name(b"sub\xff")).join(name(b"f\xe9"));
        assert_eq!(std::fs::read(&deep).unwrap(), b"deep", "{}", deep.display());
        assert_eq!(std::fs::read(copy.join("plain")).unwrap(), b"top");
        assert_eq!(std::fs::read_dir(&copy).unwrap().count(), 2);
    }
}

#[test]
fn a_flag_given_twice_counts_as_in_ssh() {
    // The first -F counted, and a second -c, -m, -b or -e was refused: a wrapper appending its
    // own after the user's got the user's, or nothing. ssh takes the last of each, and
    // refuses a second -J.
    let dir = work_dir().join("ssh-cli-flag-twice");
    std::fs::create_dir_all(&dir).unwrap();
    let (first, last) = (dir.join("first"), dir.join("last"));
    std::fs::write(&first, "Host web\n  Port 1111\n").unwrap();
    std::fs::write(&last, "Host web\n  Port 2222\n").unwrap();
    let (first, last) = (first.to_str().unwrap(), last.to_str().unwrap());
    let setting = |out: Output, key: &str| {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text.lines().find(|l| l.split(' ').next() == Some(key));
        line.unwrap_or_default().to_owned()
    };
    for (flags, key, want) in [
        (["-F", first, "-F", last], "port", "port 2222"),
        (
            ["-c", "aes128-ctr", "-c", "aes256-ctr"],
            "ciphers",
            "ciphers aes256-ctr",
        ),
        (
            ["-m", "hmac-sha2-256", "-m", "hmac-sha2-512"],
            "macs",
            "macs hmac-sha2-512",
        ),
        (
            ["-b", "127.0.0.1", "-b", "127.0.0.2"],
            "bindaddress",
            "bindaddress 127.0.0.2",
        ),
        (["-e", "^]", "-e", "none"], "escapechar", "escapechar none"),
    ] {
        let words = [&["-F", first][..], &flags, &["-G", "web"]].concat();
        let ours = setting(netkit(&[&["ssh"][..], &words].concat(), b"", &[]), key);
        let theirs = Command::new("ssh")
            .args(&words)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!((ours.as_str(), setting(theirs, key).as_str()), (want, want));
    }
    let out = netkit(&["ssh", "-J", "a", "-J", "b", "-G", "web"], b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("'-J ") && err.lines().count() == 1, "{err}");
}

#[test]
fn an_unknown_option_before_the_command_of_many_hosts_is_refused() {
    // `--hosts A,B --bogus` ran `--bogus` on every host (exit 1): there is no DEST, so clap
    // took the option it does not know for the command's first word. ssh refuses it.
    let host = format!("{}@127.0.0.1:{}", env("NETKIT_TEST_SSH_USER"), port());
    let mut args = vec!["ssh".to_owned(), "--hosts".into(), format!("{host},{host}")];
    args.extend(common());
    args.extend(["--bogus".into(), "true".into()]);
    let out = netkit(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains("'--bogus'") && err.lines().count() == 1,
        "{err}"
    );
    // After `--` it is the command's, as in ssh.
    args.insert(args.len() - 2, "--".into());
    let out = netkit(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn a_transfer_bar_shows_a_name_that_is_no_utf_8_as_ls_shows_it() {
    // The bar read `big\u{FFFD}` where ls (and sftp) show `big\351`: the name of the file being
    // copied was not the one a listing gives, and its U+FFFD twin looked the same.
    use std::os::unix::ffi::OsStrExt as _;
    let remote = remote_dir("bar-not-utf8");
    let local = work_dir().join("bar-not-utf8");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"big\xe9");
    std::fs::write(remote.join(name), vec![7u8; 4 << 20]).unwrap();
    let mut line = vec![
        netkit_bin().display().to_string(),
        "sftp".into(),
        "get".into(),
    ];
    line.extend(["-P".into(), port().to_string()]);
    line.extend(common());
    line.push(format!("{}:{}/big*", dest(), remote.display()));
    line.push(local.display().to_string());
    let quoted: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let (code, screen) = Terminal::start(&quoted.join(" ")).finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("big\\351"), "{screen:?}");
    assert!(!screen.contains('\u{FFFD}'), "{screen:?}");
    assert_eq!(std::fs::read(local.join(name)).unwrap().len(), 4 << 20);
    let _ = std::fs::remove_dir_all(&remote);
}

/// `ssh -G ARGS` and `netkit ssh -G ARGS` (as given; `-G` is the caller's), both run.
fn both_dash_g(args: &[&str]) -> (Output, Output) {
    let ours = netkit(&[&["ssh"][..], args].concat(), b"", &[]);
    let theirs = Command::new("ssh")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (ours, theirs)
}

/// The lines of a `-G` output that start with one of `keys`, sorted.
fn dash_g_lines(out: &Output, keys: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| keys.contains(&l.split(' ').next().unwrap_or_default()))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_first_of_a_flag_and_its_dash_o_on_the_command_line_wins_as_in_ssh() {
    // -l and -p beat `-o User=` and `-o Port=` whatever the order, and DEST's user and port
    // an earlier -o, where ssh keeps the first value it obtains.
    let orders: &[&[&str]] = &[
        &["-o", "User=ann", "-l", "bob", "-G", "box"],
        &["-l", "bob", "-o", "User=ann", "-G", "box"],
        &["-o", "Port=2201", "-p", "2202", "-G", "box"],
        &["-p", "2202", "-o", "Port=2201", "-G", "box"],
        &["-oUser=ann", "-lbob", "-G", "box"],
        &["-o", "User=ann", "-G", "box", "-l", "bob"],
        // Before DEST's user and port too (DEST's won whatever the order).
        &["-o", "User=ann", "-G", "cid@box"],
        &["-o", "User=ann", "-l", "bob", "-G", "cid@box"],
        &["-G", "cid@box", "-o", "User=ann"],
        &["-G", "box", "-o", "User=ann", "-l", "bob"],
        &["-o", "User=ann", "-G", "cid@box", "-l", "bob"],
        &["-o", "Port=2201", "-G", "ssh://cid@box:2203"],
        &["-p", "2202", "-o", "Port=2201", "-G", "ssh://box:2203"],
        &["-G", "ssh://box:2203", "-o", "Port=2201"],
    ];
    for args in orders {
        let args = [&["-F", "none"][..], args].concat();
        let (ours, theirs) = both_take(&args);
        let keys = ["user", "port"];
        assert_eq!(
            dash_g_lines(&ours, &keys),
            dash_g_lines(&theirs, &keys),
            "{args:?}"
        );
    }
}

#[test]
fn proxy_jump_none_leaves_a_proxy_command_as_in_ssh() {
    // `-J none` and `-o ProxyJump=none` took the file's ProxyCommand away too.
    let dir = work_dir().join("ssh-cli-proxy-jump-none");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        // gw reached directly, as a working config has it (without, gw's own ProxyJump is gw:
        // ssh loops on connecting, netkit stops at 8 hops, ssh -G does not look).
        "Host box\n  ProxyCommand nc %h %p\nHost lined\n  ProxyJump none\n  \
         ProxyCommand nc %h %p\nHost gw\n  ProxyJump none\nHost *\n  ProxyJump gw\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let keys = ["proxycommand", "proxyjump"];
    for (args, expected) in [
        (&["-J", "none", "-G", "box"][..], "proxycommand nc %h %p"),
        (
            &["-o", "ProxyJump=none", "-G", "box"],
            "proxycommand nc %h %p",
        ),
        (&["-G", "lined"], "proxycommand nc %h %p"),
        (&["-G", "other"], "proxyjump gw"),
        (&["-J", "none", "-G", "other"], ""),
    ] {
        let args = [&["-F", config][..], args].concat();
        let (ours, theirs) = both_dash_g(&args);
        assert!(
            ours.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let shown = dash_g_lines(&ours, &keys);
        assert_eq!(shown, dash_g_lines(&theirs, &keys), "{args:?}");
        assert_eq!(shown.join("\n"), expected, "{args:?}");
    }
}

/// Runs `ssh` and `netkit ssh` with `args` (a `-G`, nothing connects) and asserts both take
/// them; their outputs, ours first.
fn both_take(args: &[&str]) -> (std::process::Output, std::process::Output) {
    let (ours, theirs) = both_dash_g(args);
    assert!(theirs.status.success(), "ssh {args:?}");
    assert!(
        ours.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
    (ours, theirs)
}

/// Runs `ssh` and `netkit ssh` with `args` (a `-G`, nothing connects) and asserts both refuse
/// them (exit 255), netkit in one line holding each of `said`.
fn both_refuse(args: &[&str], said: &[&str]) {
    let (ours, theirs) = both_dash_g(args);
    assert_eq!(theirs.status.code(), Some(255), "ssh {args:?}");
    let err = String::from_utf8_lossy(&ours.stderr);
    assert_eq!(ours.status.code(), Some(255), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    for part in said {
        assert!(err.contains(part), "{args:?}: {part:?} not in {err}");
    }
}

#[test]
fn an_unknown_algorithm_name_is_refused_as_in_ssh() {
    // It was passed over, and netkit connected with the rest of the list.
    for (option, bad) in [
        ("Ciphers=aes128-ctr,bogus-cipher", "bogus-cipher"),
        ("Ciphers=+bogus-cipher", "bogus-cipher"),
        ("Ciphers=aes128-CTR", "aes128-CTR"),
        ("KexAlgorithms=curve25519-sha256,bogus-kex", "bogus-kex"),
        ("MACs=^hmac-sha2-256,bogus-mac", "bogus-mac"),
        ("HostKeyAlgorithms=ssh-ed25519,bogus-key", "bogus-key"),
    ] {
        let name = option.split('=').next().unwrap();
        both_refuse(&["-F", "none", "-o", option, "-G", "box"], &[name, bad]);
    }
    // ssh checks a file's line in a block for another host too, and names it.
    let dir = work_dir().join("ssh-cli-unknown-algorithm");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(&config, "Host other\n  MACs hmac-sha2-256,bogus-mac\n").unwrap();
    let config = config.to_str().unwrap();
    let line = format!("{config} line 2");
    both_refuse(&["-F", config, "-G", "box"], &[&line, "MACs", "bogus-mac"]);
    // Names ssh knows, and lists of what to take away, which ssh does not check, are taken.
    for option in [
        "Ciphers=aes128-ctr,aes256-gcm@openssh.com",
        "MACs=-bogus-mac",
        "HostKeyAlgorithms=rsa-sha2-512,ssh-ed25519*",
        "KexAlgorithms=+diffie-hellman-group14-sha1",
    ] {
        both_take(&["-F", "none", "-o", option, "-G", "box"]);
    }
}

#[test]
fn match_all_with_other_criteria_is_refused_as_in_ssh_9_2() {
    // `Match all host x` applied its block to every host. ssh 9.2 refuses `all` with
    // anything after it, or after two criteria or more, not after one (`host box all`).
    let dir = work_dir().join("ssh-cli-match-all");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    for criteria in [
        "all host x",
        "all final",
        "host box user zed all",
        "final canonical all",
    ] {
        std::fs::write(&config, format!("Match {criteria}\n  User zed\n")).unwrap();
        let config = config.to_str().unwrap();
        both_refuse(
            &["-F", config, "-G", "box"],
            &[config, criteria, "'all' cannot be combined"],
        );
    }
    // Alone, with a comment after it, or after one criterion, it stands (`host box all` was
    // refused, stopping the config for every host).
    for criteria in [
        "all # every host",
        "final all",
        "host all",
        "host box all",
        "host other all",
        "host box !all",
        "originalhost box ALL # c",
    ] {
        std::fs::write(
            &config,
            format!("Match {criteria}\n  User zed\nHost *\n  User amy\n"),
        )
        .unwrap();
        let config = config.to_str().unwrap();
        let (ours, theirs) = both_take(&["-F", config, "-G", "box"]);
        assert_eq!(
            dash_g_lines(&ours, &["user"]),
            dash_g_lines(&theirs, &["user"]),
            "{criteria}"
        );
    }
}

#[test]
fn bad_values_of_options_netkit_does_not_act_on_are_refused_as_in_ssh() {
    // netkit took them (with at most a warning), where ssh stops at the line.
    let bad = [
        "ControlMaster=bogus",
        "RekeyLimit=lots",
        "RekeyLimit=1G lots",
        "ControlPersist=bogus",
        "CheckHostIP=maybe",
        "UpdateHostKeys=bogus",
        "VerifyHostKeyDNS=perhaps",
        "Tunnel=maybe",
        "Compression=true",
        "BatchMode=1",
        "ConnectionAttempts=lots",
        "NumberOfPasswordPrompts=-1",
        "LogLevel=loud",
    ];
    let dir = work_dir().join("ssh-cli-bad-values");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    for option in bad {
        let (name, value) = option.split_once('=').unwrap();
        let shown = value.split(' ').next_back().unwrap();
        both_refuse(&["-F", "none", "-o", option, "-G", "box"], &[name, shown]);
        // In a file, in a block for another host too, named by its file and line.
        std::fs::write(&config, format!("Host other\n  {name} {value}\n")).unwrap();
        let config = config.to_str().unwrap();
        let line = format!("{config} line 2");
        both_refuse(&["-F", config, "-G", "box"], &[&line, name, shown]);
    }
    // The values ssh takes are taken.
    for option in [
        "ControlMaster=autoask",
        "RekeyLimit=1G 1h",
        "RekeyLimit=default none",
        "ControlPersist=10m",
        "UpdateHostKeys=ask",
        "Tunnel=point-to-point",
        "CheckHostIP=No",
        "LogLevel=debug3",
        "CanonicalizeHostname=always",
        "PubkeyAuthentication=host-bound",
    ] {
        both_take(&["-F", "none", "-o", option, "-G", "box"]);
    }
}

#[test]
fn dash_g_prints_the_session_lines_and_proxy_jump_as_ssh_g_does() {
    // -G lacked sessiontype, stdinnull, forkafterauthentication, permitlocalcommand and
    // localcommand, and printed ProxyJump's hops resolved (`root@gw:22`).
    let keys = [
        "sessiontype",
        "stdinnull",
        "forkafterauthentication",
        "permitlocalcommand",
        "localcommand",
        "proxyjump",
    ];
    for flags in [
        &[][..],
        &["-n"],
        &["-N"],
        &["-f", "-N"],
        &["-W", "db:5432"],
        &["-o", "StdinNull=yes", "-o", "SessionType=none"],
        &["-o", "ForkAfterAuthentication=yes", "-N"],
        &[
            "-o",
            "PermitLocalCommand=yes",
            "-o",
            "LocalCommand=echo %h %d",
        ],
        &["-J", "gw"],
        &["-J", "ann@gw:2222,%r@second"],
        &["-o", "ProxyJump=ssh://ann@gw:2222"],
        &["-J", "ssh://ann@gw,last:22"],
        &["-J", "[::1]"],
    ] {
        let args = [&["-F", "none"][..], flags, &["-G", "box"]].concat();
        let (ours, theirs) = both_take(&args);
        let shown = dash_g_lines(&ours, &keys);
        assert_eq!(shown, dash_g_lines(&theirs, &keys), "{args:?}");
        assert!(shown.len() >= 4, "{shown:?}");
    }
}

#[test]
fn dash_f_says_the_configs_warnings_once() {
    // The process in the background read the config again, and said each warning again.
    let marker = "netkit-warned-once";
    let args = ssh_args(
        &[
            "-f",
            "-o",
            "VisualHostKey=yes",
            "-i",
            "/nonexistent/netkit-f-key",
        ],
        &["echo", marker],
    );
    let (status, [out, err]) = ssh_to_files(&args, "bg-warn-once");
    let said = || std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "{status:?} {}", said());
    let _kill = killed_on_drop(pids_running(marker));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !pids_running(marker).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("{marker}\n")
    );
    let err = said();
    for warning in ["VisualHostKey", "/nonexistent/netkit-f-key"] {
        let lines = err.lines().filter(|line| line.contains(warning)).count();
        assert_eq!(lines, 1, "{warning}: {err}");
    }
}

#[test]
fn values_ssh_9_2_takes_are_taken_in_any_block_and_in_dash_o() {
    // Refused (exit 255, in a block for another host too, so for every host): RekeyLimit with
    // a B unit, a `+`, blanks before it or what follows its unit (scan_scaled reads `1G,` and
    // `100k,1h` as 1G and 100k); algorithm lists with an empty name, where ssh's check ends
    // (a generated `Ciphers a,b,`).
    let dir = work_dir().join("ssh-cli-values-taken");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    for (name, value) in [
        ("RekeyLimit", "1024B"),
        ("RekeyLimit", "1024b 1h"),
        ("RekeyLimit", "+1G"),
        ("RekeyLimit", "\" 1G\""),
        ("RekeyLimit", "1G,"),
        ("RekeyLimit", "100k,1h"),
        ("RekeyLimit", "+1g +1h"),
        ("RekeyLimit", "1.5T"),
        ("RekeyLimit", "16"),
        ("Ciphers", "aes128-ctr,"),
        ("Ciphers", ",aes128-ctr"),
        ("Ciphers", "aes128-ctr,,aes256-ctr"),
        ("Ciphers", "+aes128-cbc,"),
        ("Ciphers", "-aes128-ctr,"),
        ("MACs", "hmac-sha2-256,"),
        ("KexAlgorithms", "curve25519-sha256,"),
        ("HostKeyAlgorithms", "ssh-ed25519,"),
        // Patterns stand for the key types they match (`+ssh-rsa*` was refused).
        ("HostKeyAlgorithms", "ssh-rsa*"),
        ("HostKeyAlgorithms", "+ssh-rsa*"),
        ("HostKeyAlgorithms", "^ssh-ed25519*"),
    ] {
        for block in ["box", "other"] {
            std::fs::write(&config, format!("Host {block}\n  {name} {value}\n")).unwrap();
            let config = config.to_str().unwrap();
            let (ours, theirs) = both_take(&["-F", config, "-G", "box"]);
            // The list as ssh makes it (netkit's own defaults, which `+` and `-` change, are
            // in another order; RekeyLimit it does not print).
            let key = name.to_ascii_lowercase();
            if block == "box" && name != "RekeyLimit" && !value.starts_with(['+', '-']) {
                let shown = dash_g_lines(&ours, &[&key]);
                assert_eq!(shown, dash_g_lines(&theirs, &[&key]), "{name} {value}");
            }
        }
        let option = format!("{name}={}", value.trim_matches('"'));
        both_take(&["-F", "none", "-o", &option, "-G", "box"]);
    }
    // -c and -m, which are Ciphers and MACs.
    for (flags, key) in [
        (["-c", "aes128-ctr,"], "ciphers"),
        (["-m", "hmac-sha2-256,"], "macs"),
    ] {
        let args = [&["-F", "none"][..], &flags, &["-G", "box"]].concat();
        let (ours, theirs) = both_dash_g(&args);
        assert!(theirs.status.success(), "ssh {flags:?}");
        assert!(ours.status.success(), "{flags:?}");
        assert_eq!(
            dash_g_lines(&ours, &[key]),
            dash_g_lines(&theirs, &[key]),
            "{flags:?}"
        );
    }
    // A key type taken away by `!` passes ssh's check (a negative match is a match), to fail
    // only for a host it applies to; refused, another host's block stopped every host.
    for value in ["ssh-ed25519,!ssh-dss", "*,!ssh-dss", "+!ssh-dss"] {
        std::fs::write(
            &config,
            format!("Host other\n  HostKeyAlgorithms {value}\n"),
        )
        .unwrap();
        both_take(&["-F", config.to_str().unwrap(), "-G", "box"]);
    }
    // Still refused, as ssh refuses them: no unit ssh has, a letter after the unit, a
    // comma after a number without unit, a name ssh lacks before the empty one.
    for option in [
        "RekeyLimit=1X",
        "RekeyLimit=1GB",
        "RekeyLimit=1024,",
        "RekeyLimit=1e3",
        "Ciphers=bogus-cipher,",
    ] {
        let name = option.split('=').next().unwrap();
        both_refuse(&["-F", "none", "-o", option, "-G", "box"], &[name]);
    }
}

#[test]
fn sftp_dash_o_port_and_user_win_over_dash_p_and_the_destination_as_in_sftp() {
    // OpenSSH's sftp passes -P (and the destination's port and user) to ssh after the -o's,
    // so the -o's are the first values obtained: `sftp -P 1 -o Port=22` connects to 22.
    // netkit's -P won.
    let port = port().to_string();
    let with_port = format!("Port={port}");
    let user = dest().split('@').next().unwrap().to_owned();
    let host = dest().split('@').nth(1).unwrap().to_owned();
    let common = common();
    let run = |options: &[&str], remote: &str| {
        let mut args = vec!["sftp", "ls"];
        args.extend_from_slice(options);
        args.extend(common.iter().map(String::as_str));
        args.push(remote);
        netkit(&args, b"", &[])
    };
    let home = format!("{}:", dest());
    for options in [["-P", "1", "-o", &with_port], ["-o", &with_port, "-P", "1"]] {
        let out = run(&options, &home);
        assert!(
            out.status.success(),
            "{options:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And the other way round: the -o's port 1 is tried, whatever the order.
    for options in [["-P", &port, "-o", "Port=1"], ["-o", "Port=1", "-P", &port]] {
        let out = run(&options, &home);
        assert_eq!(out.status.code(), Some(1), "{options:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(":1"), "{options:?}: {err}");
    }
    // Over the destination's port (an sftp:// URI's) and user too.
    let uri = format!("sftp://{user}@{host}:1/");
    let out = run(&["-o", &with_port], &uri);
    assert!(
        out.status.success(),
        "{uri}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let with_user = format!("User={user}");
    let out = run(
        &["-P", &port, "-o", &with_user],
        &format!("nobody-netkit@{host}:"),
    );
    assert!(
        out.status.success(),
        "-o User: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
