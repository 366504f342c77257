//! `.netrc` credentials, as curl (`--netrc`), httpie and xh (by default) read them.

use std::path::{Path, PathBuf};

use crate::Error;

/// A login from a `.netrc` file; the password is `None` when the entry has none (the caller
/// may ask for it, as for `--auth USER`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Login {
    /// The user name (empty when the entry gives only a password).
    pub user: String,
    /// The password.
    pub password: Option<String>,
}

/// The password left out: a `{:?}` of a login, or of the [`Netrc`] holding it, may reach a log.
impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The parsed `machine` entries of a `.netrc` file and its `default`.
#[derive(Clone, Debug, Default)]
pub struct Netrc {
    machines: Vec<(String, Login)>,
    default: Option<Login>,
}

impl Netrc {
    /// Where the netrc file is: `$NETRC` when set (as curl, requests and xh read it), else
    /// `~/.netrc`.
    #[must_use]
    pub fn default_path() -> Option<PathBuf> {
        match std::env::var_os("NETRC") {
            Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
            _ => crate::session::home().map(|home| home.join(".netrc")),
        }
    }

    /// Reads and parses `path`; a missing file is an empty one.
    ///
    /// # Errors
    /// [`Error::File`] when it cannot be read, [`Error::Netrc`] when it does not parse.
    pub fn load(path: &Path) -> Result<Netrc, Error> {
        // A byte that is no UTF-8 (a Latin-1 comment) is read as U+FFFD, as curl reads on.
        match std::fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()) {
            Ok(text) => Netrc::parse(&text).map_err(|reason| Error::Netrc {
                path: path.to_owned(),
                reason,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Netrc::default()),
            Err(source) => Err(Error::File {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses a netrc text: `machine NAME`, `default`, `login`, `password` and `account`
    /// tokens separated by any white space, double-quoted tokens with `\` escapes (as curl
    /// reads them), `#` comments, and `macdef` bodies (up to an empty line) skipped.
    ///
    /// # Errors
    /// What is wrong, naming the line.
    pub fn parse(text: &str) -> Result<Netrc, String> {
        let mut netrc = Netrc::default();
        // The entry being read: its machine name (`None`: `default`) and login.
        let mut entry: Option<(Option<String>, Login)> = None;
        let mut tokens = Tokens::new(text);
        while let Some((line, token)) = tokens.next_token()? {
            let mut value = |what: &str| -> Result<String, String> {
                match tokens.next_token()? {
                    Some((_, value)) => Ok(value),
                    None => Err(format!("line {line}: {what} has no value")),
                }
            };
            match token.as_str() {
                "machine" | "default" => {
                    let name = if token == "machine" {
                        Some(value("machine")?)
                    } else {
                        None
                    };
                    netrc.finish(entry.take());
                    let login = Login {
                        user: String::new(),
                        password: None,
                    };
                    entry = Some((name, login));
                }
                "login" | "password" | "account" => {
                    let value = value(&token)?;
                    let Some((_, login)) = entry.as_mut() else {
                        return Err(format!("line {line}: {token} before any machine"));
                    };
                    match token.as_str() {
                        "login" => login.user = value,
                        "password" => login.password = Some(value),
                        _ => {}
                    }
                }
                "macdef" => {
                    value("macdef")?;
                    tokens.skip_macro();
                }
                other => return Err(format!("line {line}: unknown word {other:?}")),
            }
        }
        netrc.finish(entry);
        Ok(netrc)
    }

    fn finish(&mut self, entry: Option<(Option<String>, Login)>) {
        // A login or password with a byte that is no UTF-8 (read as U+FFFD) would go out
        // changed: such an entry is passed over, said once.
        let entry = entry.filter(|(machine, login)| {
            let changed = login.user.contains('\u{FFFD}')
                || login
                    .password
                    .as_deref()
                    .is_some_and(|p| p.contains('\u{FFFD}'));
            if changed {
                log::warn!(
                    "netrc: the entry for {} holds bytes that are not UTF-8; passed over",
                    machine.as_deref().unwrap_or("default")
                );
            }
            !changed
        });
        match entry {
            Some((Some(machine), login)) => self.machines.push((machine, login)),
            // The first `default` counts, as the first matching machine does.
            Some((None, login)) if self.default.is_none() => self.default = Some(login),
            _ => {}
        }
    }

    /// The login for the host of `url` (an http or https URL, or httpie's shorthand as
    /// [`Client::request`](crate::Client::request) takes it), as [`login`](Netrc::login).
    #[must_use]
    pub fn login_for_url(&self, url: &str) -> Option<&Login> {
        // As a request reads it: `host:port/path` and `:port/path` are http URLs too.
        self.login_at(&crate::client::parse_url(url).ok()?)
    }

    pub(crate) fn login_at(&self, url: &url::Url) -> Option<&Login> {
        match url.host()? {
            url::Host::Domain(name) => self.login(name),
            url::Host::Ipv4(ip) => self.login(&ip.to_string()),
            url::Host::Ipv6(ip) => self.login(&ip.to_string()),
        }
    }

    /// The login for `host`: its first `machine` entry (host names compare without case),
    /// else `default`.
    #[must_use]
    pub fn login(&self, host: &str) -> Option<&Login> {
        self.machines
            .iter()
            .find(|(machine, _)| machine.eq_ignore_ascii_case(host))
            .map(|(_, login)| login)
            .or(self.default.as_ref())
    }
}

/// The tokens of a netrc text with their line numbers.
struct Tokens<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Tokens {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    fn next_token(&mut self) -> Result<Option<(usize, String)>, String> {
        loop {
            match self.chars.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('#') => while self.bump().is_some_and(|c| c != '\n') {},
                Some(_) => break,
                None => return Ok(None),
            }
        }
        let line = self.line;
        let mut token = String::new();
        if self.chars.peek() == Some(&'"') {
            self.bump();
            loop {
                match self.bump() {
                    Some('"') => break,
                    Some('\\') => match self.bump() {
                        Some('n') => token.push('\n'),
                        Some('r') => token.push('\r'),
                        Some('t') => token.push('\t'),
                        Some(c) => token.push(c),
                        None => break,
                    },
                    Some(c) => token.push(c),
                    None => return Err(format!("line {line}: a quote is not closed")),
                }
            }
        } else {
            while let Some(&c) = self.chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                token.push(c);
                self.bump();
            }
        }
        Ok(Some((line, token)))
    }

    /// Skips a macro definition's body: the rest of its line and every line up to an empty one.
    fn skip_macro(&mut self) {
        while self.bump().is_some_and(|c| c != '\n') {}
        let mut empty = true;
        while let Some(c) = self.bump() {
            match c {
                '\n' if empty => return,
                '\n' => empty = true,
                // A CRLF file's empty line is `\r\n`: else the macro never ended, and took
                // every machine after it.
                '\r' => {}
                _ => empty = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Login, Netrc};

    fn login(user: &str, password: Option<&str>) -> Login {
        Login {
            user: user.into(),
            password: password.map(Into::into),
        }
    }

    #[test]
    fn machines_default_quotes_comments_and_macros() {
        let netrc = Netrc::parse(
            "# mine\nmachine api.example.com login ann password s3cret\n\
             machine Other.Example login bob\n\
             macdef init\ncd /pub\nmachine evil login x password y\n\n\
             machine quoted login \"a b\" password \"q\\\"uote\\\\\" # trailing\n\
             default login anonymous password me@\n\
             machine api.example.com login second password no\n",
        )
        .unwrap();
        assert_eq!(
            netrc.login("api.example.com"),
            Some(&login("ann", Some("s3cret")))
        );
        assert_eq!(netrc.login("other.example"), Some(&login("bob", None)));
        assert_eq!(
            netrc.login("quoted"),
            Some(&login("a b", Some("q\"uote\\")))
        );
        // The macro's body is not read as entries.
        assert_eq!(netrc.login("evil"), Some(&login("anonymous", Some("me@"))));
        assert_eq!(
            netrc.login("elsewhere").map(|l| l.user.as_str()),
            Some("anonymous")
        );
        let login = netrc.login_for_url("https://ann:x@API.example.com:8443/p?q");
        assert_eq!(login.map(|l| l.user.as_str()), Some("ann"));
        // Written on Windows: the macro ends at its empty line all the same.
        let netrc =
            Netrc::parse("macdef init\r\ncd /pub\r\n\r\nmachine after login ann password pw\r\n")
                .unwrap();
        assert_eq!(
            netrc.login("after"),
            Some(&super::Login {
                user: "ann".into(),
                password: Some("pw".into())
            })
        );
        // A password whose Latin-1 byte was read as U+FFFD would go out changed: left out.
        let netrc = Netrc::parse("machine a login ann password p\u{FFFD}ss\nmachine b login bob\n")
            .unwrap();
        assert_eq!(netrc.login("a"), None);
        assert!(netrc.login("b").is_some());
    }

    #[test]
    fn no_default_means_no_login_and_bad_files_name_the_line() {
        let netrc = Netrc::parse("machine a login u password p").unwrap();
        assert_eq!(netrc.login("b"), None);
        assert_eq!(Netrc::parse("").unwrap().login("a"), None);
        let bad = |text: &str| Netrc::parse(text).unwrap_err();
        assert!(bad("login u").contains("line 1"));
        assert!(bad("machine a\n\nlogin").contains("line 3"));
        assert!(bad("machine a\nusername u").contains("line 2: unknown word"));
        assert!(bad("machine a login \"open").contains("not closed"));
    }
}
