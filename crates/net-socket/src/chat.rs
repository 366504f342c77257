//! The `chat` service: a line from one client goes to every other client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::handler::{CloseReason, ConnId, ConnInfo, Context, Handler, Service};

/// The longest line accepted, newline (LF or CRLF) excluded; a longer one gets an error and
/// the connection is closed.
pub const MAX_LINE: usize = 64 * 1024;
const MAX_NICK: usize = 32;

/// Bytes a member may send at once, and then each second: past them its input waits (TCP
/// holds the sender back), as an IRC server delays a flooder. Without it, one member's paste
/// reached the others faster than their links took it and each was dropped as too slow to
/// read (a 9 MB paste emptied the room of all but its sender).
const BURST: f64 = 64.0 * 1024.0;
const RATE: f64 = 16.0 * 1024.0;

const HELP: &[u8] = b"* commands: /nick NAME, /who, /quit [MESSAGE], /help; //WORD says /WORD; \
any other line goes to everyone\n";

/// A chat room over a line protocol, shared by every thread of the server.
///
/// Each client is `guest-N` until it sends `/nick NAME` (ASCII letters, digits, `-_.`, as IRC
/// nicknames: a Cyrillic `а` could pass for `a`); its lines reach every other client as
/// `NAME: line`, and the others see `* NAME joined`, `* NAME left` (`* NAME left: MESSAGE`
/// after `/quit MESSAGE`; `* NAME left (timed out)`, `(connection lost)`, `(dropped: not
/// reading)`, `(line too long)` or `(server shutting down)` when the server closed it) and
/// `* OLD is now NEW`. A client refused because the server is full is told so, and each
/// member when the server shuts down. `/who` lists who is here, in name order
/// (`* N here: NAME, ...`, to the asker alone), `/help` lists the commands (to the asker),
/// `/quit` leaves; commands take any case, another `/word` of letters is an error to its
/// sender alone (a mistyped `/msg bob secret` went to everyone), and `//word` says `/word`;
/// other lines starting with `/` (`/usr/bin/env`, `// note`) are said as they are. Any other
/// line is sent, its control characters dropped; blank lines are not sent; a last line without
/// a newline is sent when the client closes. A client never receives its own lines. A member
/// sends up to 64 KiB at once and 16 KiB a second after that: faster, its input waits.
/// Telnet's commands are taken out of the input, its option requests refused. A client joins
/// when a loop accepts it and hears of those who join after it: of two clients connecting at
/// the same moment to different loops, the one its loop accepted first hears of the other.
#[derive(Clone, Default)]
pub struct Chat {
    room: Arc<Room>,
}

#[derive(Default)]
struct Room {
    members: Mutex<HashMap<ConnId, String>>,
    guests: AtomicU64,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members = self.room.members.lock().map_or(0, |m| m.len());
        f.debug_struct("Chat").field("members", &members).finish()
    }
}

impl Room {
    /// Sends `line` to every member but `from`; `line` ends with a newline.
    fn broadcast(&self, ctx: &mut Context<'_>, from: ConnId, line: &[u8]) {
        let members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        send_to_others(&members, ctx, from, line);
    }

    fn name_of(&self, id: ConnId) -> String {
        let members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.get(&id).cloned().unwrap_or_default()
    }
}

impl Chat {
    /// A new, empty room.
    #[must_use]
    pub fn new() -> Self {
        Chat::default()
    }
}

impl Service for Chat {
    type Handler = Member;

    fn refusal(&self) -> &[u8] {
        b"* error: the room is full; try again later\n"
    }

    fn connect(&self, _info: &ConnInfo) -> Member {
        Member {
            room: Arc::clone(&self.room),
            partial: Vec::new(),
            scratch: Vec::new(),
            left: false,
            allowance: BURST,
            counted: Instant::now(),
            held: Vec::new(),
            telnet: Telnet::Data,
            unescaped: Vec::new(),
        }
    }
}

/// One client of a [`Chat`] room.
pub struct Member {
    room: Arc<Room>,
    partial: Vec<u8>,
    scratch: Vec<u8>,
    /// Gone with `/quit`: what it sent after that is dropped, as the connection is closing.
    left: bool,
    /// Bytes it may still send before its input waits (see [`BURST`]), as of `counted`.
    allowance: f64,
    counted: Instant,
    /// What came past the allowance, taken once it is earned again.
    held: Vec<u8>,
    /// Where the input is in a telnet command, and the input without them.
    telnet: Telnet,
    unescaped: Vec<u8>,
}

/// Telnet's commands in the input: `IAC` (255) and what follows it. A telnet client sends
/// them (Ctrl-C is `IAC IP IAC DO TIMING-MARK`): taken as text, they were garbage before the
/// user's next line, and telnet showed nothing more while it waited for an answer. Only what
/// telnet sends is taken for one (an option below 128, a subnegotiation within a line and
/// 64 bytes): 255 is also `я` in an 8-bit Cyrillic text, whose lines must still arrive.
#[derive(Clone, Copy)]
enum Telnet {
    Data,
    Iac,
    /// `WILL`, `WONT`, `DO` or `DONT`, its option to come.
    Option(u8),
    /// `SB`, its option to come.
    SubOption,
    /// In a subnegotiation (`SB ... IAC SE`), so many bytes in.
    Sub(u8),
    SubIac(u8),
}

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;

/// Whether `b` can be a telnet option's code.
fn option_code(b: u8) -> bool {
    b < 0x80 && b != b'\n' && b != b'\r'
}

impl Member {
    /// Puts `data` without telnet's commands in `unescaped`, answering each `DO` with `WONT`
    /// and each `WILL` with `DONT` (a line server has no options); false when `data` has
    /// none, and is taken as it is.
    fn unescape(&mut self, ctx: &mut Context<'_>, data: &[u8]) -> bool {
        if matches!(self.telnet, Telnet::Data) && !data.contains(&IAC) {
            return false;
        }
        self.unescaped.clear();
        for &b in data {
            let out = &mut self.unescaped;
            self.telnet = match (self.telnet, b) {
                (Telnet::Data, IAC) => Telnet::Iac,
                (Telnet::Iac, 251..=254) => Telnet::Option(b),
                (Telnet::Iac, SB) => Telnet::SubOption,
                // NOP, IP, AYT and the like: the command is all.
                (Telnet::Iac, 240..=249) => Telnet::Data,
                (Telnet::Iac, _) => {
                    out.extend_from_slice(&[IAC, b]);
                    Telnet::Data
                }
                (Telnet::Option(command), option) if option_code(option) => {
                    match command {
                        253 => ctx.write(&[IAC, 252, option]),
                        251 => ctx.write(&[IAC, 254, option]),
                        _ => {}
                    }
                    Telnet::Data
                }
                (Telnet::Option(command), _) => {
                    out.extend_from_slice(&[IAC, command, b]);
                    Telnet::Data
                }
                (Telnet::SubOption, option) if option_code(option) => Telnet::Sub(0),
                (Telnet::SubOption, _) => {
                    out.extend_from_slice(&[IAC, SB, b]);
                    Telnet::Data
                }
                // A line's end, or 64 bytes, ends what was no subnegotiation after all.
                (Telnet::Sub(_) | Telnet::SubIac(_), b'\n') => {
                    out.push(b);
                    Telnet::Data
                }
                (Telnet::Sub(64..) | Telnet::SubIac(64..), _) | (Telnet::SubIac(_), SE) => {
                    Telnet::Data
                }
                (Telnet::Sub(n), IAC) => Telnet::SubIac(n + 1),
                (Telnet::Sub(n) | Telnet::SubIac(n), _) => Telnet::Sub(n + 1),
                (Telnet::Data, _) => {
                    out.push(b);
                    Telnet::Data
                }
            };
        }
        true
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

impl Member {
    /// Refuses a line over [`MAX_LINE`] and closes the connection.
    fn too_long(&mut self, ctx: &mut Context<'_>) {
        ctx.write(format!("* error: line longer than {MAX_LINE} bytes\n").as_bytes());
        self.leave(ctx, b"", " (line too long)");
        ctx.close();
    }

    fn line(&mut self, ctx: &mut Context<'_>, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.left || line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let id = ctx.id();
        let text = if command_like(line) {
            return self.command(ctx, line);
        } else if line.starts_with(b"//") && command_like(&line[1..]) {
            &line[1..]
        } else {
            line
        };
        let name = self.room.name_of(id);
        self.scratch.clear();
        self.scratch.extend_from_slice(name.as_bytes());
        self.scratch.extend_from_slice(b": ");
        let start = self.scratch.len();
        printable(&mut self.scratch, text);
        // A line of control characters alone (`\x1b\x07`) says nothing once they are gone,
        // as a blank line says nothing: it went out as an empty `name: `.
        if self.scratch[start..].iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.scratch.push(b'\n');
        self.room.broadcast(ctx, id, &self.scratch);
    }

    /// A line starting with `/` (not `//`), answered to its sender when it is no command.
    fn command(&mut self, ctx: &mut Context<'_>, line: &[u8]) {
        let word_end = line
            .iter()
            .position(u8::is_ascii_whitespace)
            .unwrap_or(line.len());
        let (word, arg) = line.split_at(word_end);
        match word.to_ascii_lowercase().as_slice() {
            b"/nick" => self.nick(ctx, arg),
            b"/quit" => {
                // The others hear of it now, not once the client has closed its side too.
                self.leave(ctx, arg, "");
                ctx.close();
            }
            b"/who" => self.who(ctx),
            b"/help" => ctx.write(HELP),
            _ => {
                self.scratch.clear();
                self.scratch.extend_from_slice(b"* error: unknown command ");
                printable(&mut self.scratch, word);
                self.scratch
                    .extend_from_slice(b" (not sent); /help lists them, //WORD says /WORD\n");
                ctx.write(&self.scratch);
            }
        }
    }

    /// Leaves the room, telling the others, with the member's `message` or the server's
    /// `why` when there is one; once only.
    fn leave(&mut self, ctx: &mut Context<'_>, message: &[u8], why: &str) {
        self.left = true;
        let id = ctx.id();
        let removed = self
            .room
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if let Some(name) = removed {
            self.scratch.clear();
            self.scratch.extend_from_slice(b"* ");
            self.scratch.extend_from_slice(name.as_bytes());
            self.scratch.extend_from_slice(b" left");
            self.scratch.extend_from_slice(why.as_bytes());
            let message = message.trim_ascii();
            if !message.is_empty() {
                self.scratch.extend_from_slice(b": ");
                printable(&mut self.scratch, message);
            }
            self.scratch.push(b'\n');
            self.room.broadcast(ctx, id, &self.scratch);
        }
    }

    /// Takes the lines of `data` while the member's allowance lasts; past it, the rest is
    /// held, reading paused, until the allowance is earned again. True when it held some.
    fn take(&mut self, ctx: &mut Context<'_>, data: &[u8]) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.counted).as_secs_f64() * RATE;
        self.counted = now;
        self.allowance = (self.allowance + earned).min(BURST);
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            if self.left {
                return false;
            }
            if self.allowance < 0.0 {
                self.held.extend_from_slice(rest);
                ctx.pause_reading();
                ctx.set_timer(Duration::from_secs_f64(-self.allowance / RATE));
                return true;
            }
            // A CRLF line's CR is part of its newline.
            let cr = match end {
                0 => self.partial.last() == Some(&b'\r'),
                _ => rest[end - 1] == b'\r',
            };
            if self.partial.len() + end - usize::from(cr) > MAX_LINE {
                self.too_long(ctx);
                return false;
            }
            self.allowance -= (self.partial.len() + end + 1) as f64;
            if self.partial.is_empty() {
                self.line(ctx, &rest[..end]);
            } else {
                self.partial.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut self.partial);
                self.line(ctx, &line);
                self.partial = line;
                self.partial.clear();
            }
            rest = &rest[end + 1..];
        }
        // One byte more may be the CR of a CRLF still to come.
        if self.partial.len() + rest.len() > MAX_LINE + usize::from(rest.last() == Some(&b'\r')) {
            self.too_long(ctx);
            return false;
        }
        self.partial.extend_from_slice(rest);
        false
    }

    fn who(&self, ctx: &mut Context<'_>) {
        let mut names: Vec<String> = self
            .room
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        names.sort_unstable_by(|a, b| natural_order(a, b));
        ctx.write(format!("* {} here: {}\n", names.len(), names.join(", ")).as_bytes());
    }

    fn nick(&mut self, ctx: &mut Context<'_>, arg: &[u8]) {
        let new = String::from_utf8_lossy(arg).trim().to_owned();
        let valid = !new.is_empty()
            && new.len() <= MAX_NICK
            && new
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            ctx.write(
                format!(
                    "* error: usage: /nick NAME (1 to {MAX_NICK} ASCII letters, digits, - _ .)\n"
                )
                .as_bytes(),
            );
            return;
        }
        let id = ctx.id();
        let old = {
            let mut members = self
                .room
                .members
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Names differ by more than case, as IRC nicknames do: `Bob` cannot pass for `bob`.
            if members
                .iter()
                .any(|(&other, name)| other != id && name.eq_ignore_ascii_case(&new))
            {
                drop(members);
                ctx.write(format!("* error: the name {new} is taken\n").as_bytes());
                return;
            }
            if members.get(&id) == Some(&new) {
                return;
            }
            members.insert(id, new.clone()).unwrap_or_default()
        };
        self.room
            .broadcast(ctx, id, format!("* {old} is now {new}\n").as_bytes());
    }
}

impl Handler for Member {
    fn on_connect(&mut self, ctx: &mut Context<'_>) {
        // Numbering, notice and entry under one lock: guests are numbered in join order, and
        // of two clients joining at once on different loops exactly the first hears of the
        // second.
        let mut members = self
            .room
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A number whose name someone took with /nick is passed over: two can't share one.
        let name = loop {
            let n = self.room.guests.fetch_add(1, Ordering::Relaxed) + 1;
            let name = format!("guest-{n}");
            if !members
                .values()
                .any(|taken| taken.eq_ignore_ascii_case(&name))
            {
                break name;
            }
        };
        send_to_others(
            &members,
            ctx,
            ctx.id(),
            format!("* {name} joined\n").as_bytes(),
        );
        members.insert(ctx.id(), name);
    }

    fn on_data(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if self.unescape(ctx, data) {
            let unescaped = std::mem::take(&mut self.unescaped);
            self.take(ctx, &unescaped);
            self.unescaped = unescaped;
        } else {
            self.take(ctx, data);
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        let held = std::mem::take(&mut self.held);
        if !self.take(ctx, &held) {
            ctx.resume_reading();
        }
    }

    fn on_eof(&mut self, ctx: &mut Context<'_>) {
        let last = std::mem::take(&mut self.partial);
        self.line(ctx, &last);
        ctx.close();
    }

    fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
        // As an IRC server's "Server shutdown": the others' "left" notices that follow read
        // as if each had quit.
        ctx.write(b"* the server is shutting down\n");
        self.leave(ctx, b"", " (server shutting down)");
        ctx.close();
    }

    fn on_close(&mut self, ctx: &mut Context<'_>) {
        // The others are told why, as IRC's `Ping timeout`: a member who timed out or fell
        // behind looked as if it had quit.
        let why = match ctx.close_reason() {
            Some(CloseReason::Lost) => " (connection lost)",
            Some(CloseReason::IdleTimeout) => " (timed out)",
            Some(CloseReason::NotReading) => " (dropped: not reading)",
            Some(CloseReason::ShutdownTimeout) => " (server shut down)",
            Some(CloseReason::Panicked) => " (server error)",
            _ => "",
        };
        self.leave(ctx, b"", why);
    }
}

fn send_to_others(
    members: &HashMap<ConnId, String>,
    ctx: &mut Context<'_>,
    from: ConnId,
    line: &[u8],
) {
    ctx.send_each(members.keys().copied().filter(|&id| id != from), line);
}

/// Whether `line` starts with `/` and a word of letters (`/nick`, `/msg`): pasted code and
/// paths (`/* ... */`, `// note`, `/usr/bin/env`) are said as they are.
fn command_like(line: &[u8]) -> bool {
    line.strip_prefix(b"/").is_some_and(|rest| {
        let word = rest
            .split(u8::is_ascii_whitespace)
            .next()
            .unwrap_or_default();
        !word.is_empty() && word.iter().all(u8::is_ascii_alphabetic)
    })
}

/// Appends `text` to `out` without its control characters other than TAB (C1 too, such as
/// CSI; bytes that are not UTF-8 become U+FFFD): a CR or an escape sequence would let one
/// member's text overwrite its own name on the others' terminals and pass for another
/// member's line or a server notice.
fn printable(out: &mut Vec<u8>, text: &[u8]) {
    for c in String::from_utf8_lossy(text).chars() {
        if c == '\t' || !c.is_control() {
            let mut utf8 = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }
}

/// Orders names as a person reads them: `guest-2` before `guest-10`.
fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (na, rest_a) = split_number(a);
                let (nb, rest_b) = split_number(b);
                // With leading zeros dropped, fewer digits is the smaller number.
                let (va, vb) = (without_zeros(na), without_zeros(nb));
                let order = va
                    .len()
                    .cmp(&vb.len())
                    .then(va.cmp(vb))
                    .then(na.len().cmp(&nb.len()));
                if order.is_ne() {
                    return order;
                }
                (a, b) = (rest_a, rest_b);
            }
            (Some(x), Some(y)) if x == y => (a, b) = (&a[1..], &b[1..]),
            (x, y) => return x.cmp(&y),
        }
    }
}

/// The leading digits of `s`, and the rest.
fn split_number(s: &[u8]) -> (&[u8], &[u8]) {
    s.split_at(s.iter().take_while(|b| b.is_ascii_digit()).count())
}

fn without_zeros(digits: &[u8]) -> &[u8] {
    &digits[digits.iter().take_while(|&&d| d == b'0').count()..]
}

#[cfg(test)]
mod tests {
    use super::natural_order;

    #[test]
    fn names_sort_with_their_numbers_as_numbers() {
        let mut names = vec![
            "guest-10", "bob", "guest-2", "guest-02", "Alice", "guest-1x", "g",
        ];
        names.sort_by(|a, b| natural_order(a, b));
        assert_eq!(
            names,
            [
                "Alice", "bob", "g", "guest-1x", "guest-2", "guest-02", "guest-10"
            ]
        );
    }
}
