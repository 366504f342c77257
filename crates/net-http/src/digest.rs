//! HTTP Digest authentication (RFC 7616), the answer to a `WWW-Authenticate: Digest`
//! challenge: MD5 and SHA-256, their `-sess` forms, `qop=auth` (or none, as RFC 2069).

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// The `Authorization` value answering `challenge` (a `WWW-Authenticate` value) for one
/// request; `None` when it is not a Digest challenge we can answer (another scheme, an
/// unknown algorithm, or only `qop=auth-int`).
pub(crate) fn authorization(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> Option<String> {
    let rest = challenge.trim_start();
    let (scheme, params) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let params = parse_params(params);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let realm = get("realm")?;
    let nonce = get("nonce")?;
    let algorithm = get("algorithm").unwrap_or("MD5");
    let (hash, session): (fn(&str) -> String, bool) = match algorithm.to_ascii_uppercase().as_str()
    {
        "MD5" => (md5_hex, false),
        "MD5-SESS" => (md5_hex, true),
        "SHA-256" => (sha256_hex, false),
        "SHA-256-SESS" => (sha256_hex, true),
        _ => return None,
    };
    let qop = match get("qop") {
        None => None,
        Some(offered) if offered.split(',').any(|q| q.trim() == "auth") => Some("auth"),
        Some(_) => return None,
    };
    let nc = "00000001";
    let mut ha1 = hash(&format!("{user}:{realm}:{password}"));
    if session {
        ha1 = hash(&format!("{ha1}:{nonce}:{cnonce}"));
    }
    let ha2 = hash(&format!("{method}:{uri}"));
    let response = match qop {
        Some(qop) => hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")),
        None => hash(&format!("{ha1}:{nonce}:{ha2}")),
    };
    // A name past ASCII cannot be a quoted string on the wire (ureq sends ASCII only):
    // RFC 7616 3.4.4's extended notation carries it, UTF-8 percent-encoded.
    let username = if user.is_ascii() {
        format!("username=\"{}\"", quote(user))
    } else {
        format!(
            "username*=UTF-8''{}",
            percent_encoding::utf8_percent_encode(user, NOT_ATTR_CHAR)
        )
    };
    let mut header = format!(
        "Digest {username}, realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm={algorithm}, \
         response=\"{response}\"",
        quote(realm),
        quote(nonce),
        quote(uri)
    );
    if let Some(qop) = qop {
        header.push_str(&format!(
            ", qop={qop}, nc={nc}, cnonce=\"{}\"",
            quote(cnonce)
        ));
    }
    if let Some(opaque) = get("opaque") {
        header.push_str(&format!(", opaque=\"{}\"", quote(opaque)));
    }
    Some(header)
}

/// What RFC 8187's `attr-char` leaves out, percent-encoded in `username*`.
const NOT_ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `key=value` and `key="quoted, value"` pairs, comma-separated.
fn parse_params(input: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

fn md5_hex(input: &str) -> String {
    hex(&Md5::digest(input.as_bytes()))
}

fn sha256_hex(input: &str) -> String {
    hex(&Sha256::digest(input.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 section 3.4.4's example: a name past ASCII goes as `username*`.
    #[test]
    fn a_name_past_ascii_goes_in_the_extended_notation() {
        let answer = authorization(
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\"",
            "J\u{e4}s\u{f8}n Doe",
            "p",
            "GET",
            "/",
            "c",
        )
        .unwrap();
        assert!(
            answer.starts_with("Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=\"r\""),
            "{answer}"
        );
        assert!(answer.is_ascii(), "{answer}");
    }

    /// RFC 7616 section 3.9.1: the same request answered with MD5 and with SHA-256.
    #[test]
    fn the_rfc_7616_examples() {
        let challenge = |algorithm: &str| {
            format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                 algorithm={algorithm}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            )
        };
        let answer = |algorithm: &str| {
            authorization(
                &challenge(algorithm),
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            )
            .unwrap()
        };
        let md5 = answer("MD5");
        assert!(
            md5.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{md5}"
        );
        assert!(md5.contains("qop=auth, nc=00000001"), "{md5}");
        assert!(
            md5.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""),
            "{md5}"
        );
        let sha = answer("SHA-256");
        assert!(
            sha.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{sha}"
        );
        assert_eq!(
            authorization("Basic realm=\"x\"", "u", "p", "GET", "/", "c"),
            None
        );
        assert_eq!(
            authorization(
                "Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\"",
                "u",
                "p",
                "GET",
                "/",
                "c"
            ),
            None
        );
    }
}
