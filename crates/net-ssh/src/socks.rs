//! The server side of the SOCKS handshake for dynamic forwarding (`ssh -D`): SOCKS5 without
//! authentication (RFC 1928) and SOCKS4/4a, CONNECT only, as OpenSSH's ssh accepts.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

/// SOCKS5 reply codes (RFC 1928 §6).
pub(crate) const GENERAL_FAILURE: u8 = 1;
const COMMAND_NOT_SUPPORTED: u8 = 7;
const ADDRESS_NOT_SUPPORTED: u8 = 8;

/// A client that asked to connect somewhere, waiting for our answer.
pub(crate) struct Request {
    /// The host (a name or an address) and port asked for.
    pub(crate) host: String,
    pub(crate) port: u16,
    version: u8,
}

impl Request {
    /// Tells the client whether its connection is open: `None` for yes, else a SOCKS5 reply
    /// code (SOCKS4 has only "rejected").
    pub(crate) fn answer(&self, stream: &mut impl Write, failure: Option<u8>) -> io::Result<()> {
        if self.version == 4 {
            let status = if failure.is_none() { 0x5a } else { 0x5b };
            return stream.write_all(&[0, status, 0, 0, 0, 0, 0, 0]);
        }
        stream.write_all(&[5, failure.unwrap_or(0), 0, 1, 0, 0, 0, 0, 0, 0])
    }
}

/// Reads a client's greeting and CONNECT request. Refusals the protocol can express (another
/// command, an authentication we do not offer) are answered here and returned as errors.
pub(crate) fn handshake(stream: &mut (impl Read + Write)) -> io::Result<Request> {
    let version = byte(stream)?;
    match version {
        5 => socks5(stream),
        4 => socks4(stream),
        other => Err(bad(format!("not a SOCKS client (first byte {other})"))),
    }
}

fn socks5(stream: &mut (impl Read + Write)) -> io::Result<Request> {
    let methods = counted(stream)?;
    if !methods.contains(&0) {
        stream.write_all(&[5, 0xff])?;
        return Err(bad("the client wants authentication".into()));
    }
    stream.write_all(&[5, 0])?;
    let [_, command, _, kind] = array::<4>(stream)?;
    let host = match kind {
        1 => Ipv4Addr::from(array::<4>(stream)?).to_string(),
        3 => {
            let name = counted(stream)?;
            String::from_utf8(name).map_err(|_| bad("a host name that is not UTF-8".into()))?
        }
        4 => Ipv6Addr::from(array::<16>(stream)?).to_string(),
        _ => {
            let refused = Request {
                host: String::new(),
                port: 0,
                version: 5,
            };
            refused.answer(stream, Some(ADDRESS_NOT_SUPPORTED))?;
            return Err(bad(format!("address type {kind}")));
        }
    };
    let port = u16::from_be_bytes(array::<2>(stream)?);
    let request = Request {
        host,
        port,
        version: 5,
    };
    if command != 1 {
        request.answer(stream, Some(COMMAND_NOT_SUPPORTED))?;
        return Err(bad(format!("command {command} (only CONNECT is)")));
    }
    Ok(request)
}

fn socks4(stream: &mut (impl Read + Write)) -> io::Result<Request> {
    let head = array::<7>(stream)?;
    let port = u16::from_be_bytes([head[1], head[2]]);
    let ip = Ipv4Addr::new(head[3], head[4], head[5], head[6]);
    until_nul(stream)?; // the user id, unused
    // SOCKS4a: 0.0.0.x (x > 0) means "the host name follows".
    let host = if head[3..6] == [0, 0, 0] && head[6] != 0 {
        String::from_utf8(until_nul(stream)?)
            .map_err(|_| bad("a host name that is not UTF-8".into()))?
    } else {
        ip.to_string()
    };
    let request = Request {
        host,
        port,
        version: 4,
    };
    if head[0] != 1 {
        request.answer(stream, Some(COMMAND_NOT_SUPPORTED))?;
        return Err(bad(format!("command {} (only CONNECT is)", head[0])));
    }
    Ok(request)
}

fn byte(stream: &mut impl Read) -> io::Result<u8> {
    Ok(array::<1>(stream)?[0])
}

fn array<const N: usize>(stream: &mut impl Read) -> io::Result<[u8; N]> {
    let mut buf = [0; N];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

/// A length byte, then that many bytes.
fn counted(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; usize::from(byte(stream)?)];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

/// Bytes up to a NUL (at most 255, as a host name or user id).
fn until_nul(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        match byte(stream)? {
            0 => return Ok(out),
            _ if out.len() == 255 => return Err(bad("a SOCKS4 field past 255 bytes".into())),
            b => out.push(b),
        }
    }
}

fn bad(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}
