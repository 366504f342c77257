//! Undoing a body's `Content-Encoding` (gzip, deflate, brotli) and reading text in the
//! charset its `Content-Type` names.
//!
//! ureq can do both, but its decompression drops the `Content-Encoding` and `Content-Length`
//! headers a caller asks to see (`netkit http -h`), fails on the empty body of a 304 or HEAD
//! answer that names an encoding, and its charset decoding changes the bytes of every text
//! body read, so a Latin-1 file saved came out as UTF-8 and longer than announced.

use std::io::{self, BufRead, BufReader, Read};

use encoding_rs::Encoding;

/// A `Content-Encoding` this crate undoes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "brotli",
        }
    }
}

/// The codings a response's `Content-Encoding` fields list, in the order they were applied;
/// none when one names a coding this crate cannot undo, whose body is then given as it came
/// (as httpie and curl give it).
pub(crate) struct Codings(Vec<Coding>);

impl Codings {
    /// The codings of every `Content-Encoding` field, in order: a proxy or CDN that adds a
    /// coding often adds a field of its own, and RFC 9110 5.3 reads two fields as one list
    /// (`gzip` then `br` is `gzip, br`), as curl and httpie undo them.
    pub(crate) fn of<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Codings {
        let listed: Option<Vec<Coding>> = fields
            .into_iter()
            .flat_map(|field| match std::str::from_utf8(field) {
                Ok(value) => value.split(',').map(Some).collect::<Vec<_>>(),
                // A coding named past ASCII is none this crate knows.
                Err(_) => vec![None],
            })
            .filter_map(|c| {
                let c = c.map(str::trim);
                match c {
                    Some(c) if c.is_empty() || c.eq_ignore_ascii_case("identity") => None,
                    Some(c) => Some(match c.to_ascii_lowercase().as_str() {
                        "gzip" | "x-gzip" => Some(Coding::Gzip),
                        "deflate" => Some(Coding::Deflate),
                        "br" => Some(Coding::Brotli),
                        _ => None,
                    }),
                    None => Some(None),
                }
            })
            .collect();
        Codings(listed.unwrap_or_default())
    }

    /// `raw` with the codings undone. An empty body stays empty whatever the header says,
    /// as the body of a 304 or a HEAD answer is.
    pub(crate) fn undo<R: Read + Send + 'static>(self, raw: R) -> Box<dyn Read + Send> {
        if self.0.is_empty() {
            return Box::new(raw);
        }
        Box::new(Decoded::Pending {
            raw: BufReader::new(Box::new(raw)),
            codings: self.0,
        })
    }
}

/// The most codings undone on one body, as curl's limit.
const MAX_CODINGS: usize = 5;

/// A body whose decoders are set up at its first byte.
enum Decoded {
    Pending {
        raw: BufReader<Box<dyn Read + Send>>,
        codings: Vec<Coding>,
    },
    Reading {
        reader: Box<dyn Read + Send>,
        /// The outermost coding, named in errors.
        coding: Coding,
    },
    Empty,
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Decoded::Pending { raw, .. } = self {
            if raw.fill_buf()?.is_empty() {
                *self = Decoded::Empty;
            } else if let Decoded::Pending { raw, codings } =
                std::mem::replace(self, Decoded::Empty)
            {
                // A decoder and its buffers a layer: 8,000 `gzip`s in one header took 415 MB
                // before failing. curl refuses more than 5 too.
                if codings.len() > MAX_CODINGS {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the body names {} content codings; more than {MAX_CODINGS} are refused",
                            codings.len()
                        ),
                    ));
                }
                let coding = codings[codings.len() - 1];
                let mut reader: Box<dyn Read + Send> = Box::new(raw);
                // The last coding applied is undone first.
                for &coding in codings.iter().rev() {
                    reader = undo(coding, BufReader::new(reader));
                }
                *self = Decoded::Reading { reader, coding };
            }
        }
        match self {
            Decoded::Reading { reader, coding } => reader.read(buf).map_err(|e| {
                io::Error::new(e.kind(), format!("{} decoding failed: {e}", coding.name()))
            }),
            Decoded::Pending { .. } | Decoded::Empty => Ok(0),
        }
    }
}

fn undo(coding: Coding, mut raw: BufReader<Box<dyn Read + Send>>) -> Box<dyn Read + Send> {
    match coding {
        Coding::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
        Coding::Deflate => {
            // `deflate` means zlib-wrapped (RFC 9110 8.4.1.2), but some servers send the
            // bare stream, as browsers and curl also accept.
            let head = raw.fill_buf().map(<[u8]>::to_vec).unwrap_or_default();
            let zlib = head.len() >= 2
                && head[0] & 0x0f == 8
                && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            if zlib {
                Box::new(flate2::bufread::ZlibDecoder::new(raw))
            } else {
                Box::new(flate2::bufread::DeflateDecoder::new(raw))
            }
        }
        Coding::Brotli => Box::new(brotli_decompressor::Decompressor::new(raw, 4096)),
    }
}

/// `bytes` without the UTF-8 byte-order mark a Windows editor puts first, which JSON and PEM
/// readers take for a first character (RFC 8259 lets a parser pass over it).
pub(crate) fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// The encoding a `Content-Type`'s `charset` names, when it is one encoding_rs knows.
fn charset(content_type: Option<&str>) -> Option<&'static Encoding> {
    content_type?
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .and_then(|(_, value)| {
            let label = value.trim().trim_matches('"');
            // Python's and PHP's spelling, which the WHATWG list lacks (`latin1` is in it).
            let label = if label.eq_ignore_ascii_case("latin-1") {
                "latin1"
            } else {
                label
            };
            Encoding::for_label(label.as_bytes())
        })
}

/// `bytes` as text in the charset `content_type` names (UTF-8 when it names none; a BOM wins,
/// as browsers decide), bad sequences replaced.
pub(crate) fn text(bytes: &[u8], content_type: Option<&str>) -> String {
    let encoding = charset(content_type).unwrap_or(encoding_rs::UTF_8);
    encoding.decode(bytes).0.into_owned()
}

/// `reader` turned into UTF-8 from the charset `content_type` names, as it comes (a BOM
/// wins, as in [`text`]: `charset=utf-16` with a big-endian BOM came out garbled); a body in
/// UTF-8, or in no charset named, passes unchanged.
pub(crate) fn text_reader<R: Read + Send + 'static>(
    reader: R,
    content_type: Option<&str>,
) -> Box<dyn Read + Send> {
    match charset(content_type) {
        Some(encoding) if encoding != encoding_rs::UTF_8 => Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(encoding))
                .bom_override(true)
                .build(reader),
        ),
        _ => Box::new(reader),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn read(raw: Vec<u8>, encoding: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Codings::of(encoding.split('\n').map(str::as_bytes))
            .undo(io::Cursor::new(raw))
            .read_to_end(&mut out)?;
        Ok(out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn codings_are_undone_last_first_and_an_empty_body_stays_empty() {
        assert_eq!(read(gzip(b"hello"), "gzip").unwrap(), b"hello");
        assert_eq!(read(gzip(b"hello"), "X-GZIP").unwrap(), b"hello");
        assert_eq!(read(gzip(&gzip(b"twice")), "gzip, gzip").unwrap(), b"twice");
        let five = (0..5).fold(b"five".to_vec(), |body, _| gzip(&body));
        assert_eq!(read(five.clone(), &["gzip"; 5].join(",")).unwrap(), b"five");
        let refused = read(gzip(&five), &["gzip"; 6].join(",")).unwrap_err();
        assert!(
            refused.to_string().contains("6 content codings"),
            "{refused}"
        );
        // Two fields are one list, as one field with a comma.
        assert_eq!(
            read(gzip(&gzip(b"fields")), "gzip\ngzip").unwrap(),
            b"fields"
        );
        // br(gzip(...)), made by Python's brotli (no compressor is built here).
        let br = vec![
            139, 20, 128, 31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 203, 72, 205, 201, 201, 87, 72, 43, 202,
            207, 85, 72, 175, 202, 44, 80, 40, 41, 207, 76, 78, 229, 2, 0, 195, 196, 116, 158, 22,
            0, 0, 0, 3,
        ];
        assert_eq!(read(br, "gzip\nbr").unwrap(), b"hello from gzip twice\n");
        assert_eq!(read(b"raw".to_vec(), "gzip\nzstd").unwrap(), b"raw");
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(b"zlib").unwrap();
        assert_eq!(read(zlib.finish().unwrap(), "deflate").unwrap(), b"zlib");
        let mut bare = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        bare.write_all(b"bare deflate").unwrap();
        assert_eq!(
            read(bare.finish().unwrap(), "deflate").unwrap(),
            b"bare deflate"
        );
        // A 304 or HEAD answer naming gzip has no body to decode.
        assert_eq!(read(Vec::new(), "gzip").unwrap(), b"");
        assert_eq!(read(Vec::new(), "br").unwrap(), b"");
        // An encoding this crate does not know leaves the body as it came.
        assert_eq!(read(b"zstd bytes".to_vec(), "zstd").unwrap(), b"zstd bytes");
        let err = read(b"not gzip".to_vec(), "gzip").unwrap_err();
        assert!(err.to_string().starts_with("gzip decoding failed"), "{err}");
    }

    #[test]
    fn text_follows_the_charset() {
        assert_eq!(
            text(b"caf\xe9", Some("text/plain; charset=ISO-8859-1")),
            "café"
        );
        assert_eq!(text(b"caf\xc3\xa9", Some("text/plain")), "café");
        assert_eq!(
            text(b"caf\xe9", Some("text/plain; charset=Latin-1")),
            "café"
        );
        assert_eq!(
            text(b"caf\xc3\xa9", Some("text/html; charset=\"utf-8\"")),
            "café"
        );
        let mut out = String::new();
        text_reader(&b"caf\xe9"[..], Some("text/plain;charset=latin1"))
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "café");
        // A BOM says which UTF-16 it is, whatever the label, in both.
        let big_endian = b"\xfe\xff\x00h\x00i";
        assert_eq!(text(big_endian, Some("text/plain; charset=utf-16")), "hi");
        let mut out = String::new();
        text_reader(&big_endian[..], Some("text/plain; charset=utf-16"))
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hi");
    }
}
