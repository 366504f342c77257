//! The `chat` service: a line from one client goes to every other client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::handler::{ConnId, ConnInfo, Context, Handler, Service};

/// The longest line accepted, newline excluded; a longer one gets an error and the
/// connection is closed.
pub const MAX_LINE: usize = 64 * 1024;
const MAX_NICK: usize = 32;

/// A chat room over a line protocol, shared by every thread of the server.
///
/// Each client is `guest-N` until it sends `/nick NAME`; its lines reach every other client
/// as `NAME: line`, and the others see `* NAME joined`, `* NAME left` and
/// `* OLD is now NEW`. `/who` lists who is here (`* N here: NAME, ...`, to the asker alone),
/// `/help` lists the commands (to the asker), `/quit` leaves; any other line, `/word`s
/// included, is sent. Blank lines are not sent; a
/// last line without a newline is sent when the client closes. A client never receives its
/// own lines. A client joins when a loop accepts it and hears of those who join after it: of
/// two clients connecting at the same moment to different loops, the one its loop accepted
/// first hears of the other.
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

    fn connect(&self, _info: &ConnInfo) -> Member {
        Member {
            room: Arc::clone(&self.room),
            partial: Vec::new(),
            scratch: Vec::new(),
            left: false,
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
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

impl Member {
    fn line(&mut self, ctx: &mut Context<'_>, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.left || line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let id = ctx.id();
        let word_end = line
            .iter()
            .position(u8::is_ascii_whitespace)
            .unwrap_or(line.len());
        match &line[..word_end] {
            b"/nick" => return self.nick(ctx, &line[word_end..]),
            b"/quit" => {
                // The others hear of it now, not once the client has closed its side too.
                self.leave(ctx);
                return ctx.close();
            }
            b"/who" => return self.who(ctx),
            b"/help" => {
                return ctx.write(
                    b"* commands: /nick NAME, /who, /quit, /help; any other line goes to everyone\n",
                );
            }
            _ => {}
        }
        let name = self.room.name_of(id);
        self.scratch.clear();
        self.scratch.extend_from_slice(name.as_bytes());
        self.scratch.extend_from_slice(b": ");
        // Control characters other than TAB are dropped (C1 too, such as CSI, and bytes that
        // are not UTF-8 become U+FFFD): a CR or an escape sequence would let one member's text
        // overwrite its own name on the others' terminals and pass for another member's line
        // or a server notice.
        for c in String::from_utf8_lossy(line).chars() {
            if c == '\t' || !c.is_control() {
                let mut utf8 = [0; 4];
                self.scratch
                    .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
        self.scratch.push(b'\n');
        self.room.broadcast(ctx, id, &self.scratch);
    }

    /// Leaves the room, telling the others; once only.
    fn leave(&mut self, ctx: &mut Context<'_>) {
        self.left = true;
        let id = ctx.id();
        let removed = self
            .room
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if let Some(name) = removed {
            self.room
                .broadcast(ctx, id, format!("* {name} left\n").as_bytes());
        }
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
        names.sort_unstable();
        ctx.write(format!("* {} here: {}\n", names.len(), names.join(", ")).as_bytes());
    }

    fn nick(&mut self, ctx: &mut Context<'_>, arg: &[u8]) {
        let new = String::from_utf8_lossy(arg).trim().to_owned();
        let valid = !new.is_empty()
            && new.chars().count() <= MAX_NICK
            && new
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.".contains(c));
        if !valid {
            ctx.write(
                format!("* error: usage: /nick NAME (1 to {MAX_NICK} letters, digits, - _ .)\n")
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
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            if self.left {
                return;
            }
            if self.partial.len() + end > MAX_LINE {
                too_long(ctx);
                return;
            }
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
        if self.partial.len() + rest.len() > MAX_LINE {
            too_long(ctx);
            return;
        }
        self.partial.extend_from_slice(rest);
    }

    fn on_eof(&mut self, ctx: &mut Context<'_>) {
        let last = std::mem::take(&mut self.partial);
        self.line(ctx, &last);
        ctx.close();
    }

    fn on_close(&mut self, ctx: &mut Context<'_>) {
        self.leave(ctx);
    }
}

fn send_to_others(
    members: &HashMap<ConnId, String>,
    ctx: &mut Context<'_>,
    from: ConnId,
    line: &[u8],
) {
    for &id in members.keys() {
        if id != from {
            ctx.send(id, line);
        }
    }
}

fn too_long(ctx: &mut Context<'_>) {
    ctx.write(format!("* error: line longer than {MAX_LINE} bytes\n").as_bytes());
    ctx.close();
}
