//! Sessions: a client plus default headers, credentials and cookies, kept in a JSON file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use cookie_store::{Cookie, CookieExpiration, CookieStore};

use crate::Error;
use crate::client::{Auth, Client, Request};

/// A [`Client`] whose default headers, credentials and cookies persist in a JSON file
/// (written with mode 0600: it holds secrets), like httpie's `--session`.
///
/// Cookies follow RFC 6265: a cookie goes only to its domain and path, not after it
/// expires, and a `Secure` one only over https. Session cookies (without expiry) are saved
/// too, as browsers keep them for the session's life.
pub struct Session {
    client: Client,
    path: PathBuf,
    headers: Vec<(String, String)>,
    auth: Option<Auth>,
}

/// Header values are left out: they may hold tokens.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Session")
            .field("path", &self.path)
            .field("headers", &names)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct SessionFile {
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    auth: Option<Auth>,
    #[serde(default)]
    cookies: Vec<Cookie<'static>>,
}

impl Session {
    /// Opens the session in `path` (a missing file starts an empty session) on `client`'s
    /// connections and settings, with a cookie jar of its own: sessions opened on clones of
    /// one client keep their cookies apart, as two `requests.Session`s do.
    ///
    /// # Errors
    /// [`Error::File`] when the file cannot be read, [`Error::Session`] when it is not a
    /// session file.
    pub fn open(client: Client, path: impl Into<PathBuf>) -> Result<Session, Error> {
        let path = path.into();
        let file = match crate::files::read_capped(&path, crate::files::SETTINGS_CAP) {
            Ok(bytes) => {
                // Edited by hand in a Windows editor: its byte-order mark passed over.
                let bytes = crate::decode::without_bom(&bytes);
                serde_json::from_slice::<SessionFile>(bytes).map_err(|e| Error::Session {
                    path: path.clone(),
                    reason: foreign_format(bytes).map_or_else(|| e.to_string(), str::to_owned),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SessionFile::default(),
            Err(source) => return Err(Error::File { path, source }),
        };
        // Past 9999 the dated cookies are all expired, and asking which panicked; they are
        // never sent then (see `clock_past_cookie_dates`).
        let past = crate::client::clock_past_cookie_dates();
        let jar = CookieStore::from_cookies(file.cookies.into_iter().map(Ok::<_, Error>), past)?;
        Ok(Session {
            client: client.with_own_jar(jar),
            path,
            headers: file.headers,
            auth: file.auth,
        })
    }

    /// The client the session sends with; its cookie jar is the session's.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Where the session is saved.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets a default header, replacing the one of the same name.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// Whether a header given for one request belongs in the session, as httpie decides:
    /// not `Content-*` and `If-*`, which describe that request's body and conditions (an
    /// `If-None-Match` kept would make every later request a 304).
    #[must_use]
    pub fn keeps_header(name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        !(lower.starts_with("content-") || lower.starts_with("if-") || lower == "cookie")
    }

    /// Keeps the cookies of a `Cookie` field given for a request to `url` in the jar, for
    /// its host and every path, as httpie keeps a `Cookie:` item: there the server can
    /// change or delete them (kept as a header, a cookie the server deleted at logout went
    /// on being sent).
    ///
    /// # Errors
    /// [`Error::BadUrl`] when `url` is not an absolute http(s) URL.
    pub fn set_cookies(&self, url: &str, field: &str) -> Result<(), Error> {
        let url = crate::client::parse_url(url)?;
        if crate::client::clock_past_cookie_dates() {
            log::warn!("the clock is past 9999: cookies given for {url} not kept");
            return Ok(());
        }
        self.client.with_jar(|jar| {
            for pair in field.split(';') {
                let Some((name, value)) =
                    pair.split_once('=').filter(|(n, _)| !n.trim().is_empty())
                else {
                    continue;
                };
                let mut cookie =
                    cookie_store::RawCookie::new(name.trim().to_owned(), value.trim().to_owned());
                cookie.set_path("/");
                let _ = jar.insert_raw(&cookie, &url);
            }
        });
        Ok(())
    }

    /// Removes a default header.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The default headers.
    #[must_use]
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Sets (or clears) the credentials sent with every request.
    pub fn set_auth(&mut self, auth: Option<Auth>) {
        self.auth = auth;
    }

    /// The saved credentials.
    #[must_use]
    pub fn auth(&self) -> Option<&Auth> {
        self.auth.as_ref()
    }

    /// Starts a request carrying the session's headers, credentials and cookies. A header
    /// given to the request replaces the session's of that name; credentials given replace
    /// the session's.
    ///
    /// # Errors
    /// [`Error::BadUrl`] when `url` is not an absolute http(s) URL.
    pub fn request(&self, method: &str, url: &str) -> Result<Request, Error> {
        let mut request = self.client.request(method, url)?;
        for (name, value) in &self.headers {
            request = request.default_header(name, value);
        }
        if let Some(auth) = &self.auth {
            request = request.auth(auth.clone());
        }
        Ok(request)
    }

    /// Where the session given as `given` for `url` lives, as httpie reads `--session`: a
    /// path when it holds a `/` or ends with `.json` (a leading `~/` is the home directory,
    /// which a shell leaves unexpanded in `--session=~/s.json`), else a session name (see
    /// [`Session::named_path`]).
    ///
    /// # Errors
    /// As [`Session::named_path`]; [`Error::Session`] when `~` is given and there is no
    /// home directory.
    pub fn path_for(given: &Path, url: &str) -> Result<PathBuf, Error> {
        let text = given.to_string_lossy();
        if !text.contains('/') && !text.ends_with(".json") {
            return Session::named_path(&text, url);
        }
        // `~/` is ours, `~ann/` ann's, as a shell (and httpie) reads them.
        let Some(rest) = text.strip_prefix('~') else {
            return Ok(given.to_owned());
        };
        // `~backup.json` names no home: a file of that name, as a shell leaves it.
        let Some((user, below)) = rest.split_once('/') else {
            return Ok(given.to_owned());
        };
        let home = if user.is_empty() {
            home()
        } else {
            nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .map(|user| user.dir)
        };
        let home = home.ok_or_else(|| Error::Session {
            path: given.to_owned(),
            reason: format!("no home directory for `~{user}`"),
        })?;
        Ok(home.join(below))
    }

    /// Where the session `name` for the host of `url` lives, as httpie keeps named sessions:
    /// `$XDG_CONFIG_HOME/netkit/sessions/HOST[_PORT]/NAME.json` (`~/.config` by default), so
    /// that each host has its own.
    ///
    /// # Errors
    /// [`Error::BadUrl`] when `url` has no host; [`Error::Session`] when `name` is not a plain
    /// file name.
    pub fn named_path(name: &str, url: &str) -> Result<PathBuf, Error> {
        let parsed = crate::client::parse_url(url)?;
        // `..` (or `%2e%2e`, `。。`) as a directory put the file above sessions/.
        let host = parsed
            .host_str()
            .filter(|host| !host.trim_matches('.').is_empty())
            .ok_or_else(|| Error::BadUrl {
                url: crate::error::redacted(url),
                reason: "no host".to_owned(),
            })?;
        let host = match parsed.port() {
            Some(port) => format!("{host}_{port}"),
            None => host.to_owned(),
        };
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            return Err(Error::Session {
                path: PathBuf::from(name),
                reason: "a session name is a plain file name".to_owned(),
            });
        }
        // Never a relative directory (an empty or unset HOME): the current directory's
        // session files would be read as ours.
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
            .or_else(|| home().map(|home| home.join(".config")))
            .ok_or_else(|| Error::Session {
                path: PathBuf::from(name),
                reason: "no home directory to keep sessions in".to_owned(),
            })?;
        Ok(config
            .join("netkit/sessions")
            .join(host.replace(':', "_"))
            .join(format!("{name}.json")))
    }

    /// Writes the session file (mode 0600), atomically: a crash never leaves half a file. A
    /// missing directory is made, private (0700).
    ///
    /// # Errors
    /// [`Error::File`] when the file cannot be written.
    pub fn save(&self) -> Result<(), Error> {
        let cookies = self.client.with_jar(|jar| {
            if crate::client::clock_past_cookie_dates() {
                jar.iter_any()
                    .filter(|c| c.expires == CookieExpiration::SessionEnd)
                    .cloned()
                    .collect()
            } else {
                jar.iter_unexpired().cloned().collect()
            }
        });
        let file = SessionFile {
            headers: self.headers.clone(),
            auth: self.auth.clone(),
            cookies,
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::Session {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let file_error = |source| Error::File {
            path: self.path.clone(),
            source,
        };
        let path = link_target(&self.path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(file_error)?;
        }
        // A new file of a name no one can guess, made 0600 beside the session: a fixed
        // `FILE.tmp` in a shared directory could be another user's file or link, which then
        // got the credentials or was overwritten. It starts with the session's name, and is
        // locked while written, so that the next save knows a killed save's from a live one's.
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let prefix = temp_prefix(&path);
        let mut out = tempfile::Builder::new()
            .prefix(&prefix)
            .rand_bytes(TEMP_RANDOM)
            .tempfile_in(dir)
            .map_err(file_error)?;
        out.as_file().lock().map_err(file_error)?;
        out.write_all(&json).map_err(file_error)?;
        out.as_file().sync_all().map_err(file_error)?;
        let saved = out.persist(&path).map_err(|e| file_error(e.error))?;
        if let Ok(ours) = saved.metadata() {
            remove_killed_saves(dir, &prefix, &ours);
        }
        Ok(())
    }
}

/// The start of a save's temporary name: `.NAME.netkit-session`, where NAME is the session
/// file's (`.netkit-session` for a name too long to leave room for it).
fn temp_prefix(path: &Path) -> std::ffi::OsString {
    let mut prefix = std::ffi::OsString::from(".");
    match path.file_name() {
        // 255 bytes a name, with room for tempfile's random part.
        Some(name) if name.len() < 200 => {
            prefix.push(name);
            prefix.push(".netkit-session");
        }
        _ => prefix.push("netkit-session"),
    }
    prefix
}

/// The length of the random part after a save's temporary name's prefix: letters and
/// digits, as tempfile makes it. Only a name of that shape is taken for a killed save's (the
/// user's `.s.json.netkit-session-notes` is not).
const TEMP_RANDOM: usize = 6;

/// How old a temporary file not locked must be to count as a killed save's: a save locks its
/// file as soon as it has made it, so one younger could be a live save's not yet locked.
const KILLED_SAVE_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes what saves of this session killed meanwhile (SIGKILL; other signals wait for the
/// save's end) left in `dir`: files named `prefix` and [`TEMP_RANDOM`] letters or digits, regular, owned as `ours` (the file just
/// saved), not locked by a live save and older than [`KILLED_SAVE_AGE`]. They hold the
/// session's cookies and credentials, and piled up (as httpie or curl leave none).
fn remove_killed_saves(dir: &Path, prefix: &std::ffi::OsStr, ours: &std::fs::Metadata) {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let shaped = name
            .as_bytes()
            .strip_prefix(prefix.as_bytes())
            .is_some_and(|random| {
                random.len() == TEMP_RANDOM && random.iter().all(u8::is_ascii_alphanumeric)
            });
        if !shaped {
            continue;
        }
        let path = entry.path();
        // Not through a link, and only a file of ours.
        let Ok(seen) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !seen.is_file() || seen.uid() != ours.uid() {
            continue;
        }
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let same = file
            .metadata()
            .is_ok_and(|m| m.ino() == seen.ino() && m.dev() == seen.dev());
        let old = seen
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > KILLED_SAVE_AGE);
        if same && old && file.try_lock().is_ok() {
            match std::fs::remove_file(&path) {
                Ok(()) => log::debug!("removed {}, left by a save killed", path.display()),
                Err(e) => log::debug!("{}: {e}", path.display()),
            }
        }
    }
}

/// Where a session file that is a link (kept in a dotfiles repository) is written, as httpie
/// writes it: where the link leads, the link kept, even when it leads nowhere yet (made
/// before the first run); `path` itself when it is no link.
fn link_target(path: &Path) -> PathBuf {
    let mut path = path.to_owned();
    // As many links as the kernel follows (ELOOP past 40), so a loop ends.
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        path = match path.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
    }
    path
}

/// What a file that is no session file is, when it is another tool's: the message then
/// says so rather than where the JSON parser stopped.
fn foreign_format(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"# Netscape HTTP Cookie File") || bytes.starts_with(b"# HTTP Cookie File")
    {
        return Some(
            "a curl (Netscape) cookie jar, not a netkit session file (netkit keeps its own JSON)",
        );
    }
    let value = serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    value.get("__meta__").is_some().then_some(
        "an httpie session file, not a netkit one (netkit keeps its own JSON: headers, auth, cookies)",
    )
}

/// The user's home: `$HOME` when it names an absolute path, else the password database's,
/// as httpie and curl find it; never the current directory.
pub(crate) fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|home| home.is_absolute())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|user| user.dir)
        })
}
