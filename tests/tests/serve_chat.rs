//! `netkit serve chat` with real clients over 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use netkit_tests::Served;

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Connects and returns once the room has the client: a client joins when its loop
    /// accepts it, so two connects in a row may join in either order on different loops.
    /// `/nick` without a name is answered to the sender alone, after its join.
    fn join(addr: std::net::SocketAddr) -> Client {
        let mut client = Client::connect(addr);
        client.say("/nick");
        let answer = client.line();
        assert!(answer.starts_with("* error: usage: /nick"), "{answer}");
        client
    }

    fn say(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\n").unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches('\n').to_owned()
    }
}

#[test]
fn clients_see_each_other_and_the_notices_never_their_own_lines() {
    let served = Served::start(&["chat", "--bind", "127.0.0.1:0", "--threads", "3"]);
    let addr = served.addrs[0];
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    let joined_b = a.line();
    let b_name = joined_b
        .strip_prefix("* ")
        .and_then(|s| s.strip_suffix(" joined"))
        .unwrap()
        .to_owned();
    assert!(b_name.starts_with("guest-"), "{joined_b}");
    let mut c = Client::join(addr);
    let joined_c = a.line();
    assert_eq!(b.line(), joined_c);
    let c_name = joined_c
        .strip_prefix("* ")
        .and_then(|s| s.strip_suffix(" joined"))
        .unwrap()
        .to_owned();

    a.say("/nick alice");
    let renamed = b.line();
    assert!(
        renamed.starts_with("* guest-") && renamed.ends_with(" is now alice"),
        "{renamed}"
    );
    assert_eq!(c.line(), renamed);

    a.say("hello from a");
    assert_eq!(b.line(), "alice: hello from a");
    assert_eq!(c.line(), "alice: hello from a");
    b.say("hi from b");
    // a's next line is b's, so a never got its own.
    assert_eq!(a.line(), format!("{b_name}: hi from b"));
    assert_eq!(c.line(), format!("{b_name}: hi from b"));
    c.say("and c");
    assert_eq!(a.line(), format!("{c_name}: and c"));
    assert_eq!(b.line(), format!("{c_name}: and c"));

    drop(c);
    assert_eq!(a.line(), format!("* {c_name} left"));
    assert_eq!(b.line(), format!("* {c_name} left"));
}

#[test]
fn a_line_over_64_kib_gets_an_error_and_the_connection_closes() {
    let served = Served::start(&["chat", "--bind", "127.0.0.1:0"]);
    let mut talker = Client::join(served.addrs[0]);
    let mut listener = Client::join(served.addrs[0]);
    assert!(talker.line().ends_with(" joined"));
    talker.say(&"x".repeat(70 * 1024));
    let error = talker.line();
    assert!(
        error.starts_with("* error: line longer than 65536 bytes"),
        "{error}"
    );
    assert_eq!(talker.line(), "", "the connection stayed open");
    // The rest of a long line is usually still coming: the member has left all the same,
    // its name free, not once the server stops draining it (up to 30 s later).
    let started = std::time::Instant::now();
    let _ = talker.writer.write_all(&[b'x'; 4096]);
    let left = listener.line();
    assert!(left.ends_with(" left (line too long)"), "{left}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "left after {:?}",
        started.elapsed()
    );
    talker = Client::connect(served.addrs[0]);
    talker.say("/nick bob");
    talker.say("ok now");
    assert!(listener.line().ends_with(" joined"));
    assert!(listener.line().ends_with(" is now bob"));
    assert_eq!(listener.line(), "bob: ok now");
    // A CRLF line's CR is its newline's, not one byte of the 64 KiB: such a line of
    // exactly 64 KiB from a Windows or telnet client was refused.
    let longest = "y".repeat(64 * 1024);
    talker.writer.write_all(longest.as_bytes()).unwrap();
    talker.writer.write_all(b"\r\n").unwrap();
    assert_eq!(listener.line(), format!("bob: {longest}"));
}

#[test]
fn a_member_that_floods_is_held_back_as_irc_servers_do() {
    // One member's paste reached the others faster than they read it, and each was dropped
    // as too slow: a 9 MB paste emptied the room of all but its sender.
    let served = Served::start(&["chat", "--bind", "127.0.0.1:0"]);
    let mut flooder = Client::join(served.addrs[0]);
    let mut listener = Client::join(served.addrs[0]);
    assert!(flooder.line().ends_with(" joined"));
    flooder.say("/nick f");
    assert!(listener.line().ends_with(" is now f"));
    let started = std::time::Instant::now();
    // 96 KiB: the first 64 KiB go at once, the rest at 16 KiB a second.
    let mut writer = flooder.writer.try_clone().unwrap();
    let paste = std::thread::spawn(move || {
        let line = format!("{}\n", "z".repeat(1023));
        for _ in 0..96 {
            writer.write_all(line.as_bytes()).unwrap();
        }
    });
    for _ in 0..96 {
        assert_eq!(listener.line().len(), 3 + 1023);
    }
    paste.join().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "96 KiB went through in {:?}",
        started.elapsed()
    );
}

#[test]
fn quit_blank_lines_look_alike_commands_and_a_last_line_without_newline() {
    let served = Served::start(&["chat", "--bind", "127.0.0.1:0"]);
    let mut talker = Client::join(served.addrs[0]);
    let mut listener = Client::join(served.addrs[0]);
    assert!(talker.line().ends_with(" joined"));
    talker.say("/nick carol");
    assert!(listener.line().ends_with(" is now carol"));
    // A name taken in another case is taken: Carol cannot pass for carol.
    listener.say("/nick Carol");
    assert_eq!(listener.line(), "* error: the name Carol is taken");
    talker.say("");
    talker.say("  \r");
    // Nor is a line of control characters alone, which says nothing once they are gone.
    talker.say("\x1b\x07\x1b\t");
    // /who answers the asker alone: the listener's next line is the talker's next one.
    talker.say("/who");
    let who = talker.line();
    assert!(
        who.starts_with("* 2 here: ") && who.contains("carol") && who.contains("guest-"),
        "{who}"
    );
    talker.say("/HELP");
    assert!(talker.line().starts_with("* commands: /nick NAME, /who"));
    // Taking the name one has already is no news.
    talker.say("/Nick carol");
    // A mistyped command is not said to everyone; `//` says a line starting with `/`.
    talker.say("/msgg bob my password");
    assert_eq!(
        talker.line(),
        "* error: unknown command /msgg (not sent); /help lists them, //WORD says /WORD"
    );
    talker.say("//nickname is not a command");
    assert_eq!(listener.line(), "carol: /nickname is not a command");
    // Pasted code and paths are no commands.
    for said in ["/usr/bin/env python3", "// a note", "/* c */"] {
        talker.say(said);
        assert_eq!(listener.line(), format!("carol: {said}"));
    }
    // A CR or an escape sequence cannot make a line pass for another member's.
    talker.say("hi\r* bob is now admin\x1b[2K\tok\u{9b}2K caf\u{e9}");
    assert_eq!(
        listener.line(),
        "carol: hi* bob is now admin[2K\tok2K caf\u{e9}"
    );
    // What follows /quit in the same write is dropped, not sent under no name.
    talker
        .writer
        .write_all(b"/quit\nafter quit\n/nick ghost\n")
        .unwrap();
    assert_eq!(talker.line(), "", "/quit closes the connection");
    // The others hear of it at once, though the talker has not closed its side: before a
    // client that joins after it (the leave notice waited for the connection's end).
    let mut last = Client::join(served.addrs[0]);
    assert_eq!(listener.line(), "* carol left");
    assert!(listener.line().ends_with(" joined"));
    last.writer.write_all(b"/nick dave\nno newline").unwrap();
    last.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(listener.line().ends_with(" is now dave"));
    assert_eq!(listener.line(), "dave: no newline");
    assert_eq!(listener.line(), "* dave left");
    // /quit says why to those who stay.
    let mut erin = Client::join(served.addrs[0]);
    assert!(listener.line().ends_with(" joined"));
    erin.say("/quit  back \x1b[2Jtomorrow ");
    assert!(listener.line().ends_with(" left: back [2Jtomorrow"));
}

#[test]
fn a_guest_number_taken_as_a_nick_is_passed_over() {
    let served = Served::start(&["chat", "--bind", "127.0.0.1:0", "--threads", "1"]);
    let addr = served.addrs[0];
    let mut a = Client::join(addr);
    // The first guest is guest-1: A takes the name the next guest would get.
    a.say("/nick guest-2");
    a.say("/who");
    assert_eq!(a.line(), "* 1 here: guest-2");
    let mut b = Client::join(addr);
    assert_eq!(a.line(), "* guest-3 joined");
    b.say("/who");
    let who = b.line();
    assert!(who.contains("guest-2") && who.contains("guest-3"), "{who}");
    // Names are ASCII, as IRC nicknames: a Cyrillic а or a fullwidth ａ passed for a.
    a.say("/nick alice");
    assert_eq!(b.line(), "* guest-2 is now alice");
    for lookalike in ["\u{430}lice", "\u{ff41}lice", "al\u{131}ce", "\u{e9}lodie"] {
        b.say(&format!("/nick {lookalike}"));
        let answer = b.line();
        assert!(answer.starts_with("* error: usage: /nick NAME"), "{answer}");
    }
    b.say("/who");
    assert_eq!(b.line(), "* 2 here: alice, guest-3");
}

#[test]
fn a_telnet_client_s_commands_are_answered_not_sent_as_text() {
    // Ctrl-C in telnet sends IAC IP IAC DO TIMING-MARK: the bytes were garbage before the
    // user's next line, and telnet showed nothing more while it waited for the answer.
    let served = Served::start(&["chat", "--bind", "127.0.0.1:0"]);
    let mut telnet = Client::join(served.addrs[0]);
    let mut listener = Client::join(served.addrs[0]);
    assert!(telnet.line().ends_with(" joined"));
    telnet.say("/nick tel");
    assert!(listener.line().ends_with(" is now tel"));
    telnet
        .writer
        .write_all(b"\xff\xf4\xff\xfd\x06typed after ctrl-c\r\n\xff\xfa\x18\x01\xff")
        .unwrap();
    telnet.writer.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // A command split across writes, and a subnegotiation's end in the next one.
    telnet.writer.write_all(b"\xf0\xff\xfb\x01ok\r\n").unwrap();
    assert_eq!(listener.line(), "tel: typed after ctrl-c");
    assert_eq!(listener.line(), "tel: ok");
    let mut answers = [0; 6];
    std::io::Read::read_exact(&mut telnet.reader, &mut answers).unwrap();
    // WONT TIMING-MARK, DONT ECHO.
    assert_eq!(answers, [0xff, 0xfc, 0x06, 0xff, 0xfe, 0x01]);
    // 255 is also `я` in 8-bit Cyrillic (CP1251): such lines still arrive, one by one.
    telnet
        .writer
        .write_all(b"\xff\nb\xff\xfd\xe0\n\xff\xfa\xe0c\n")
        .unwrap();
    assert_eq!(listener.line(), "tel: \u{fffd}");
    assert_eq!(listener.line(), "tel: b\u{fffd}\u{fffd}\u{fffd}");
    assert_eq!(listener.line(), "tel: \u{fffd}\u{fffd}\u{fffd}c");
}

#[test]
fn the_others_hear_why_a_member_left_and_a_newcomer_to_a_full_room_hears_it_is_full() {
    let mut served = Served::start(&[
        "chat",
        "--bind",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--idle-timeout",
        "2",
        "--max-connections",
        "3",
    ]);
    let addr = served.addrs[0];
    let mut keeper = Client::join(addr);
    let mut quiet = Client::join(addr);
    let quiet_name = keeper.line().replace(" joined", "").replace("* ", "");
    let reset = Client::join(addr);
    let reset_name = keeper.line().replace(" joined", "").replace("* ", "");
    assert!(quiet.line().ends_with(" joined"));

    // A fourth is refused and told why (it was closed without a word).
    let mut refused = Client::connect(addr);
    assert_eq!(refused.line(), "* error: the room is full; try again later");
    assert_eq!(refused.line(), "");

    // Closed with a line unread, the connection is reset: lost, not quit. The line is
    // waited for in its socket (peeked, left unread): a fixed 200 ms raced the server's write
    // on a loaded machine, and a close before it came was a quit.
    keeper.say("for everyone");
    assert!(quiet.line().ends_with(": for everyone"));
    assert!(reset.writer.peek(&mut [0; 1]).unwrap() > 0);
    drop(reset);
    assert_eq!(
        keeper.line(),
        format!("* {reset_name} left (connection lost)")
    );
    assert_eq!(
        quiet.line(),
        format!("* {reset_name} left (connection lost)")
    );

    // The keeper's /who keeps it busy; the quiet one says and hears nothing for 2 s.
    let mut heard = Vec::new();
    for _ in 0..20 {
        keeper.say("/who");
        let line = keeper.line();
        if line.contains(" left") {
            heard.push(line);
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(heard, [format!("* {quiet_name} left (timed out)")]);

    // Stopped, the server says so, as IRC's "Server shutdown".
    let _other = Client::join(addr);
    // After the answer to a /who said when the quiet one left before it, if that was so.
    let other_name = std::iter::from_fn(|| Some(keeper.line()))
        .take(3)
        .find_map(|l| Some(l.strip_suffix(" joined")?.replace("* ", "")))
        .expect("the keeper hears the other join");
    // One loop closes its members in the order they joined: the last to join hears the
    // others go (the keeper, first, heard nobody, and so proved nothing).
    let mut last = Client::join(addr);
    assert!(served.terminate(Duration::from_secs(10)).success());
    let rest: Vec<String> = std::iter::from_fn(|| Some(last.line()).filter(|l| !l.is_empty()))
        .take(10)
        .collect();
    assert!(
        rest.iter().any(|l| l == "* the server is shutting down"),
        "{rest:?}"
    );
    // The others leave as the server closes them, not as if each had quit.
    assert!(
        rest.contains(&format!("* {other_name} left (server shutting down)")),
        "{rest:?}"
    );
    assert!(
        rest.iter()
            .filter(|l| l.contains(" left"))
            .all(|l| l.ends_with(" left (server shutting down)")),
        "{rest:?}"
    );
}

#[test]
fn every_member_reads_the_rooms_lines_in_one_order() {
    // A line went at once to the members of its sender's loop and through a channel to the
    // others: members on two loops read lines said at the same moment in two orders (327,144
    // pairs out of order over three rounds of this), where one ircd has one order.
    let served = Served::start(&["chat", "--bind", "127.0.0.1:0", "--threads", "2"]);
    let addr = served.addrs[0];
    let mut readers: Vec<Client> = (0..8).map(|_| Client::join(addr)).collect();
    let mut speakers: Vec<Client> = (0..4).map(|_| Client::join(addr)).collect();
    let said: Vec<_> = speakers
        .drain(..)
        .enumerate()
        .map(|(i, mut speaker)| {
            std::thread::spawn(move || {
                for chunk in 0..10 {
                    let lines: String = (0..20).map(|k| format!("m{i}-{chunk}-{k}\n")).collect();
                    speaker.writer.write_all(lines.as_bytes()).unwrap();
                }
                speaker
            })
        })
        .collect();
    let heard: Vec<Vec<String>> = readers
        .iter_mut()
        .map(|reader| {
            let mut lines = Vec::new();
            while lines.len() < 800 {
                let line = reader.line();
                if let Some((_, text)) = line.split_once(": m") {
                    lines.push(text.to_owned());
                }
            }
            lines
        })
        .collect();
    for speaker in said {
        speaker.join().unwrap();
    }
    for (i, lines) in heard.iter().enumerate().skip(1) {
        let apart = lines.iter().zip(&heard[0]).filter(|(a, b)| a != b).count();
        assert_eq!(
            apart, 0,
            "reader {i} read {apart} of 800 lines in another place"
        );
    }
}

#[test]
fn a_room_pasting_at_once_holds_one_copy_of_each_line_in_flight() {
    // Each member's copy of a line waited in the channel to the other loop: 90 members
    // pasting 60 KB at once took the server to 235 MB (with one copy shared: 23 MB).
    let served = Served::start(&["chat", "--bind", "127.0.0.1:0", "--threads", "2"]);
    let status = |field: &str| {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", served.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    const MEMBERS: usize = 80;
    let members: Vec<Client> = (0..MEMBERS)
        .map(|_| Client::join(served.addrs[0]))
        .collect();
    let before = status("VmHWM:");
    let line = format!("{}\n", "L".repeat(60_000));
    let readers: Vec<_> = members
        .into_iter()
        .map(|mut member| {
            member.writer.write_all(line.as_bytes()).unwrap();
            std::thread::spawn(move || {
                use std::io::Read as _;
                let mut got = 0;
                let mut buf = vec![0; 1 << 16];
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while got < (MEMBERS - 1) * 60_000 && std::time::Instant::now() < deadline {
                    match member.reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                got
            })
        })
        .collect();
    for reader in readers {
        assert!(
            reader.join().unwrap() >= (MEMBERS - 1) * 60_000,
            "a member missed lines"
        );
    }
    let grown_mib = status("VmHWM:").saturating_sub(before) >> 10;
    assert!(grown_mib < 64, "the server's peak grew {grown_mib} MiB");
}
