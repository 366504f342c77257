//! HTTP Digest authentication (RFC 7616), the answer to a `WWW-Authenticate: Digest`
//! challenge: MD5 and SHA-256, their `-sess` forms, `qop=auth` (or none, as RFC 2069).

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// One challenge of a `WWW-Authenticate` field: its scheme and its auth-params (names in
/// lower case; a token68 is kept under the empty name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of the auth-param `name` (given in lower case).
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the scheme is `scheme` (compared without case, RFC 9110 11.1).
    pub(crate) fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// A Digest challenge saying that our answer used a nonce past its life, not a wrong
    /// password (RFC 7616 3.3 `stale=true`).
    pub(crate) fn stale(&self) -> bool {
        self.is("digest")
            && self
                .param("stale")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The challenges of `fields` (the `WWW-Authenticate` values), in their order: each field is
/// a comma-separated list of them, and each challenge's auth-params are comma-separated too,
/// commas within quoted strings included (RFC 9110 11.6.1). Read by the first word of each
/// field alone, `Negotiate, Digest realm=...` in one field was no Digest challenge.
pub(crate) fn challenges<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for field in fields {
        let mut rest = field;
        loop {
            rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            let (scheme, after) = token(rest);
            if scheme.is_empty() {
                // Not a challenge at all: what follows cannot be read either.
                break;
            }
            let mut challenge = Challenge {
                scheme: scheme.to_owned(),
                params: Vec::new(),
            };
            rest = after;
            if let Some((token68, after)) = token68(rest) {
                challenge.params.push((String::new(), token68.to_owned()));
                rest = after;
            } else {
                while let Some((name, value, after)) = auth_param(rest) {
                    challenge.params.push((name.to_ascii_lowercase(), value));
                    rest = after;
                }
            }
            out.push(challenge);
        }
    }
    out
}

/// RFC 9110 `tchar`.
fn tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The token at the start of `input` (empty when there is none), and what follows.
fn token(input: &str) -> (&str, &str) {
    let end = input.find(|c: char| !tchar(c)).unwrap_or(input.len());
    input.split_at(end)
}

/// A token68 after a scheme (`Negotiate abc==`): one word that no `=value` follows.
fn token68(input: &str) -> Option<(&str, &str)> {
    let trimmed = input.trim_start_matches([' ', '\t']);
    if trimmed.len() == input.len() {
        return None;
    }
    let end = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-._~+/".contains(c)))
        .unwrap_or(trimmed.len());
    if end == 0 {
        return None;
    }
    let end = end + trimmed[end..].len() - trimmed[end..].trim_start_matches('=').len();
    let (word, after) = trimmed.split_at(end);
    let next = after.trim_start_matches([' ', '\t']);
    (next.is_empty() || next.starts_with(',')).then_some((word, next))
}

/// The auth-param (`name=token` or `name="quoted"`) after the separators at the start of
/// `input`, when one comes next (not the next challenge's scheme), and what follows it.
fn auth_param(input: &str) -> Option<(&str, String, &str)> {
    let start = input.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    let (name, after) = token(start);
    let after = after.trim_start_matches([' ', '\t']).strip_prefix('=')?;
    if name.is_empty() {
        return None;
    }
    let after = after.trim_start_matches([' ', '\t']);
    if let Some(quoted) = after.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '"' => return Some((name, value, &quoted[i + 1..])),
                c => value.push(c),
            }
        }
        // Unterminated: the rest is its value.
        Some((name, value, ""))
    } else {
        let (value, after) = token(after);
        Some((name, value.to_owned(), after))
    }
}

/// The `Authorization` value answering `challenge` for one request; `None` when it is not
/// a Digest challenge we can answer (another scheme, an unknown algorithm, or only
/// `qop=auth-int`).
pub(crate) fn authorization(
    challenge: &Challenge,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> Option<String> {
    if !challenge.is("digest") {
        return None;
    }
    let realm = challenge.param("realm")?;
    let nonce = challenge.param("nonce")?;
    let algorithm = challenge.param("algorithm").unwrap_or("MD5");
    let (hash, session): (fn(&str) -> String, bool) = match algorithm.to_ascii_uppercase().as_str()
    {
        "MD5" => (md5_hex, false),
        "MD5-SESS" => (md5_hex, true),
        "SHA-256" => (sha256_hex, false),
        "SHA-256-SESS" => (sha256_hex, true),
        _ => return None,
    };
    let qop = match challenge.param("qop") {
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
    // The name goes hashed when the server offers it (RFC 7616 3.4.4), as curl sends it; a
    // name past ASCII otherwise as RFC 7616's `username*` (lighttpd takes it; apache 2.4 reads
    // no `username*`, AH01782): curl's raw UTF-8 in the quoted string, which apache takes, is
    // refused by ureq before it goes.
    let userhash = challenge
        .param("userhash")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let username = if userhash {
        format!(
            "username=\"{}\", userhash=true",
            hash(&format!("{user}:{realm}"))
        )
    } else if user.is_ascii() {
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
    if let Some(opaque) = challenge.param("opaque") {
        header.push_str(&format!(", opaque=\"{}\"", quote(opaque)));
    }
    Some(header)
}

fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
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

    fn answer(challenge: &str, user: &str) -> Option<String> {
        challenges([challenge])
            .iter()
            .find_map(|c| authorization(c, user, "p", "GET", "/", "c"))
    }

    /// RFC 7616 section 3.4.4's example: a name past ASCII goes as `username*`.
    #[test]
    fn a_name_past_ascii_goes_in_the_extended_notation() {
        let got = answer(
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\"",
            "J\u{e4}s\u{f8}n Doe",
        )
        .unwrap();
        assert!(
            got.starts_with("Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=\"r\""),
            "{got}"
        );
        assert!(got.is_ascii(), "{got}");
    }

    /// With `userhash=true` the name goes as H(user:realm) (RFC 7616 3.4.4; 3.9.2's example
    /// with SHA-256 instead of SHA-512-256, which is not implemented).
    #[test]
    fn the_rfc_7616_userhash_example() {
        let got = answer(
            "Digest realm=\"api@example.org\", qop=\"auth\", algorithm=SHA-256, \
             nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", userhash=true",
            "J\u{e4}s\u{f8}n Doe",
        )
        .unwrap();
        assert!(
            got.starts_with(
                "Digest username=\"5a1a8a47df5c298551b9b42ba9b05835174a5bd7d511ff7fe9191d8e946fc4e7\", \
                 userhash=true"
            ),
            "{got}"
        );
    }

    /// RFC 9110 11.6.1: several challenges in one field, commas inside quoted strings, a
    /// token68, and several fields.
    #[test]
    fn challenges_in_one_field_and_in_several() {
        let all = challenges([
            "Negotiate, Digest realm=\"a, b\", nonce=n1, qop=\"auth,auth-int\", Basic realm=\"x\"",
            "Bearer abc+/==, Digest realm = r2 , nonce=\"n\\\"2\"",
        ]);
        let schemes: Vec<&str> = all.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(
            schemes,
            ["Negotiate", "Digest", "Basic", "Bearer", "Digest"]
        );
        assert_eq!(all[1].param("realm"), Some("a, b"));
        assert_eq!(all[1].param("qop"), Some("auth,auth-int"));
        assert_eq!(all[2].param("realm"), Some("x"));
        assert_eq!(all[3].param(""), Some("abc+/=="));
        assert_eq!(all[4].param("realm"), Some("r2"));
        assert_eq!(all[4].param("nonce"), Some("n\"2"));
        assert!(challenges(["Digest realm=r, nonce=n, stale=TRUE"])[0].stale());
        assert!(
            answer(
                "Negotiate, Digest realm=\"a, b\", nonce=n, Basic realm=x",
                "u"
            )
            .is_some()
        );
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
        let mufasa = |algorithm: &str| {
            authorization(
                &challenges([challenge(algorithm).as_str()])[0],
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            )
            .unwrap()
        };
        let md5 = mufasa("MD5");
        assert!(
            md5.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{md5}"
        );
        assert!(md5.contains("qop=auth, nc=00000001"), "{md5}");
        assert!(
            md5.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""),
            "{md5}"
        );
        let sha = mufasa("SHA-256");
        assert!(
            sha.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{sha}"
        );
        assert_eq!(answer("Basic realm=\"x\"", "u"), None);
        assert_eq!(
            answer("Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\"", "u"),
            None
        );
    }
}
