//! `.netrc` credentials, as curl (`--netrc`), httpie and xh (by default) read them.

use std::path::{Path, PathBuf};

use crate::Error;

/// A login from a `.netrc` file.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Login {
    /// The user name (empty when the entry gives only a password).
    pub user: String,
    /// The password (empty when the entry gives only a login: curl sends it so).
    pub password: String,
}

/// The password left out: a `{:?}` of a login, or of the [`Netrc`] holding it, may reach a log.
impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<redacted>")
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
        match crate::files::read_capped(path, crate::files::SETTINGS_CAP)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        {
            Ok(text) => {
                Netrc::parse_in(&text, &format!("netrc {}", path.display())).map_err(|reason| {
                    Error::Netrc {
                        path: path.to_owned(),
                        reason,
                    }
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Netrc::default()),
            Err(source) => Err(Error::File {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses a netrc text: `machine NAME`, `default`, `login`, `password` and `account`
    /// tokens separated by any white space, double-quoted tokens with `\\` escapes (as curl
    /// reads them), `#` comments, and `macdef` bodies (up to an empty line) skipped. Words it
    /// does not know, and a last keyword with no value, are passed over as curl passes them
    /// over, said in one warning that names the line and never the word (it may be a
    /// password after a misspelt `password`).
    ///
    /// # Errors
    /// What is wrong, naming the line: a quote left open.
    pub fn parse(text: &str) -> Result<Netrc, String> {
        Netrc::parse_in(text, "netrc")
    }

    /// As [`parse`](Netrc::parse), its warning starting with `source`.
    fn parse_in(text: &str, source: &str) -> Result<Netrc, String> {
        let mut netrc = Netrc::default();
        // The entry being read: its machine name (`None`: `default`) and login.
        let mut entry: Option<(Option<String>, Option<String>, Option<String>)> = None;
        // The lines of words passed over.
        let mut passed = Vec::new();
        let mut tokens = Tokens::new(text);
        while let Some((line, token)) = tokens.next_token()? {
            let keyword = matches!(
                token.as_str(),
                "machine" | "default" | "login" | "password" | "account" | "macdef"
            );
            let value = if keyword && token != "default" {
                match tokens.next_token()? {
                    Some((_, value)) => Some(value),
                    None => {
                        passed.push(line);
                        break;
                    }
                }
            } else {
                None
            };
            match (token.as_str(), value) {
                ("machine", name) => {
                    netrc.finish(entry.take());
                    entry = Some((name, None, None));
                }
                ("default", _) => {
                    netrc.finish(entry.take());
                    entry = Some((None, None, None));
                }
                ("macdef", _) => tokens.skip_macro(),
                (keyword @ ("login" | "password" | "account"), Some(value)) => {
                    match (entry.as_mut(), keyword) {
                        (Some((_, user, _)), "login") => *user = Some(value),
                        (Some((_, _, password)), "password") => *password = Some(value),
                        (Some(_), _) => {}
                        // Before any machine: curl reads no entry there.
                        (None, _) => passed.push(line),
                    }
                }
                _ => passed.push(line),
            }
        }
        netrc.finish(entry);
        if let Some(first) = passed.first() {
            let more = match passed.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            log::warn!("{source}: line {first}: a word netkit does not know passed over{more}");
        }
        Ok(netrc)
    }

    /// Keeps an entry read: its machine (`None`: `default`), login and password.
    fn finish(&mut self, entry: Option<(Option<String>, Option<String>, Option<String>)>) {
        let Some((machine, user, password)) = entry else {
            return;
        };
        // With neither, it gives nothing: curl goes on to the next entry for the host, or
        // `default`.
        if user.is_none() && password.is_none() {
            return;
        }
        // A login alone goes with an empty password, as curl 8 and httpie send it.
        let login = Login {
            user: user.unwrap_or_default(),
            password: password.unwrap_or_default(),
        };
        // A login or password with a byte that is no UTF-8 (read as U+FFFD) would go out
        // changed: such an entry is passed over, said once.
        if login.user.contains('\u{FFFD}') || login.password.contains('\u{FFFD}') {
            log::warn!(
                "netrc: the entry for {} holds bytes that are not UTF-8; passed over",
                machine.as_deref().unwrap_or("default")
            );
            return;
        }
        match machine {
            Some(machine) => self.machines.push((machine, login)),
            // The first `default` counts, as the first matching machine does.
            None if self.default.is_none() => self.default = Some(login),
            None => {}
        }
    }

    /// The login for the host of `url` (an absolute http or https URL), as
    /// [`login`](Netrc::login).
    #[must_use]
    pub fn login_for_url(&self, url: &str) -> Option<&Login> {
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

    /// Skips a macro definition's body: the rest of its line and every line up to an empty one
    /// (blanks alone count as empty, as libcurl 8 counts them).
    fn skip_macro(&mut self) {
        while self.bump().is_some_and(|c| c != '\n') {}
        let mut empty = true;
        while let Some(c) = self.bump() {
            match c {
                '\n' if empty => return,
                '\n' => empty = true,
                // A CRLF file's empty line is `\r\n`, and a line of spaces looks empty: else
                // the macro never ended, and took every machine after it.
                '\r' | ' ' | '\t' => {}
                _ => empty = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Login, Netrc};

    fn login(user: &str, password: &str) -> Login {
        Login {
            user: user.into(),
            password: password.into(),
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
            Some(&login("ann", "s3cret"))
        );
        assert_eq!(netrc.login("other.example"), Some(&login("bob", "")));
        assert_eq!(netrc.login("quoted"), Some(&login("a b", "q\"uote\\")));
        // The macro's body is not read as entries.
        assert_eq!(netrc.login("evil"), Some(&login("anonymous", "me@")));
        assert_eq!(
            netrc.login("elsewhere").map(|l| l.user.as_str()),
            Some("anonymous")
        );
        let from_url = netrc.login_for_url("https://ann:x@API.example.com:8443/p?q");
        assert_eq!(from_url.map(|l| l.user.as_str()), Some("ann"));
        // Written on Windows: the macro ends at its empty line all the same.
        let netrc =
            Netrc::parse("macdef init\r\ncd /pub\r\n\r\nmachine after login ann password pw\r\n")
                .unwrap();
        assert_eq!(netrc.login("after"), Some(&login("ann", "pw")));
        let netrc =
            Netrc::parse("macdef init\ncd /pub\n  \t\nmachine after login ann password pw\n")
                .unwrap();
        assert_eq!(netrc.login("after"), Some(&login("ann", "pw")));
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
        assert!(
            Netrc::parse("machine a login \"open")
                .unwrap_err()
                .contains("line 1: a quote is not closed")
        );
    }

    /// As curl 8 reads them (libcurl 8.23 checked on a loopback server): a login alone goes
    /// with an empty password, words it does not know are passed over one by one, and an
    /// entry with no credentials gives none.
    #[test]
    fn logins_without_passwords_and_unknown_words_read_as_curl_reads_them() {
        let read = |text: &str, host: &str| Netrc::parse(text).unwrap().login(host).cloned();
        let host = "127.0.0.1";
        assert_eq!(
            read("machine 127.0.0.1 login bob", host),
            Some(login("bob", ""))
        );
        // The first entry for the host counts, one with a login alone too.
        let text = "machine 127.0.0.1 login bob\nmachine 127.0.0.1 login ann password pw";
        assert_eq!(read(text, host), Some(login("bob", "")));
        let text = "machine 127.0.0.1 login bob\ndefault login anon password x";
        assert_eq!(read(text, host), Some(login("bob", "")));
        // No credentials: the next entry for the host, or default.
        let text = "machine 127.0.0.1\nmachine 127.0.0.1 login ann password pw";
        assert_eq!(read(text, host), Some(login("ann", "pw")));
        let text = "machine 127.0.0.1\ndefault login anon password x";
        assert_eq!(read(text, host), Some(login("anon", "x")));
        assert_eq!(read("default\nmachine x login a password b", host), None);
        // Unknown words, one at a time: the entry's own words still count.
        let text = "machine 127.0.0.1 login bob bogus word password pw";
        assert_eq!(read(text, host), Some(login("bob", "pw")));
        let text = "machine 127.0.0.1 login bob passwd s3 port 80";
        assert_eq!(read(text, host), Some(login("bob", "")));
        let text =
            "machine other login x password y\nfoo bar\nmachine 127.0.0.1 login ann password pw";
        assert_eq!(read(text, host), Some(login("ann", "pw")));
        // Words before any machine, and a last keyword with nothing after it.
        let text = "login zed\nmachine 127.0.0.1 login ann password pw";
        assert_eq!(read(text, host), Some(login("ann", "pw")));
        assert_eq!(
            read("machine 127.0.0.1 login bob password", host),
            Some(login("bob", ""))
        );
        assert_eq!(
            read("machine 127.0.0.1 password pw login", host),
            Some(login("", "pw"))
        );
    }
}
