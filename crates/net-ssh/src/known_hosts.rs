//! What an OpenSSH known_hosts file holds for a host: the key types, read before the
//! handshake; whether it holds the server's key, after it; and the line added for a new one.
//! Names match as OpenSSH matches them (plain, hashed, patterns), which libssh2's own check
//! does not.
//!
//! The handshake picks the key type first: a host known by its ECDSA key that also has an
//! Ed25519 one would send the Ed25519 key, unknown to the file. OpenSSH asks for the known
//! types first (`order_hostkeyalgs`), and so do we.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;

/// The text of a known_hosts file, a line that is not UTF-8 (a comment saying `René` in
/// Latin-1) read with U+FFFD in it: read whole, such a byte made the file read as empty, and
/// accept-new took a changed or revoked key as new.
fn read(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The key types (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ...) that `path` holds
/// for `host` at `port`, in the file's order: plain, wildcard and hashed entries, as OpenSSH
/// matches them. Revoked keys and certificate authorities are not host keys; an unreadable
/// file holds none.
pub(crate) fn key_types(path: &Path, host: &str, port: u16) -> Vec<String> {
    let Some(text) = read(path) else {
        return Vec::new();
    };
    let mut types: Vec<String> = Vec::new();
    for (_, kind, _) in entries(&text, host, port) {
        if !types.iter().any(|t| t == kind) {
            types.push(kind.to_owned());
        }
    }
    types
}

/// What the lines of `path` naming `host` at `port` say of `key`, the server's key blob of
/// type `kind`: `Some(true)` when one holds it, `Some(false)` when they hold only other keys
/// (a changed key), `None` when none names the host. A host known by a key of another type
/// counts as changed, as OpenSSH 9 refuses it ("REMOTE HOST IDENTIFICATION HAS CHANGED",
/// accept-new included): else a man in the middle would only have to offer a type the real
/// server's recorded key is not. Names are matched as OpenSSH matches them, wildcards and
/// negations included, which libssh2's check does not.
pub(crate) fn holds(
    path: &Path,
    host: &str,
    port: u16,
    kind: &str,
    key: &[u8],
) -> Option<Result<(), usize>> {
    let text = read(path)?;
    // The line to name when the key is not there: OpenSSH's "Offending key", one of the
    // type sent if there is one.
    let (mut first, mut of_kind) = (None, None);
    for (line, line_kind, blob) in entries(&text, host, port) {
        if line_kind != kind {
            first = first.or(Some(line));
            continue;
        }
        if blob == key {
            return Some(Ok(()));
        }
        of_kind = of_kind.or(Some(line));
    }
    of_kind.or(first).map(Err)
}

/// The host-key lines of a known_hosts `text` that name `host` at `port` (`[host]:port` when
/// not 22), as (line number from 1, key type, key blob): revoked keys and certificate
/// authorities are not host keys, and a line whose key cannot be read is passed over, as
/// OpenSSH passes it over.
fn entries<'t>(
    text: &'t str,
    host: &str,
    port: u16,
) -> impl Iterator<Item = (usize, &'t str, Vec<u8>)> {
    let name = if port == 22 {
        host.to_ascii_lowercase()
    } else {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    };
    text.lines().enumerate().filter_map(move |(at, line)| {
        let mut fields = line.split_whitespace();
        let (hosts, kind) = (fields.next()?, fields.next()?);
        // Every key type's name has a dash (`ssh-rsa`, `ecdsa-sha2-nistp256`) and base64
        // none: a line without its type (`host AAAA...`) is skipped, as OpenSSH skips a key it
        // cannot read, not taken for another key of the host's (a "changed" key).
        let listed = kind.contains('-')
            && !hosts.starts_with('#')
            && !hosts.starts_with('@')
            && names(hosts, &name);
        if !listed {
            return None;
        }
        Some((at + 1, kind, key_blob(kind, fields.next()?)?))
    })
}

/// The key blob that `field`, a known_hosts line's base64 key, holds when it is a whole key
/// of type `kind`: length-prefixed fields, the first naming the type, as OpenSSH reads one.
/// A line cut short (a disk that filled while accept-new wrote it) was taken for another key
/// of the host's, a "changed" key that refused the host for good.
fn key_blob(kind: &str, field: &str) -> Option<Vec<u8>> {
    let blob = base64::engine::general_purpose::STANDARD
        .decode(field)
        .ok()?;
    let (mut rest, mut first, mut fields) = (blob.as_slice(), None, 0);
    while !rest.is_empty() {
        let len = usize::try_from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
        let end = len.checked_add(4)?;
        first = first.or(Some(rest.get(4..end)?));
        rest = &rest[end..];
        fields += 1;
    }
    (first == Some(kind.as_bytes()) && fields >= 2).then_some(blob)
}

/// Whether a `@cert-authority` line of `path` names `host` at `port`: the host may be known
/// only through its certificate, which netkit cannot check.
pub(crate) fn names_authority(path: &Path, host: &str, port: u16) -> bool {
    let Some(text) = read(path) else {
        return false;
    };
    let name = if port == 22 {
        host.to_ascii_lowercase()
    } else {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    };
    text.lines().any(|line| {
        let mut fields = line.split_whitespace();
        fields.next() == Some("@cert-authority") && fields.next().is_some_and(|h| names(h, &name))
    })
}

/// Whether a `@revoked` line of `path` holds `key` (the server's public key blob). Such a
/// key "must not ever be accepted" (sshd(8)), whatever host the line names.
pub(crate) fn revoked(path: &Path, key: &[u8]) -> bool {
    let Some(text) = read(path) else {
        return false;
    };
    let engine = base64::engine::general_purpose::STANDARD;
    text.lines().any(|line| {
        let mut fields = line.split_whitespace();
        fields.next() == Some("@revoked")
            && fields
                .nth(2)
                .is_some_and(|blob| engine.decode(blob).is_ok_and(|k| k == key))
    })
}

/// Whether `key` is among the public keys of `path`, an OpenSSH `RevokedHostKeys` list: one
/// key a line (`TYPE BASE64 [comment]`).
///
/// # Errors
/// The file cannot be read, or is a binary KRL (`ssh-keygen -k`), which netkit cannot read.
pub(crate) fn listed_revoked(path: &Path, key: &[u8]) -> Result<bool, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.starts_with(b"SSHKRL\n\0") {
        return Err(
            "a KRL (ssh-keygen -k), which netkit cannot read: list the keys one a line".into(),
        );
    }
    let engine = base64::engine::general_purpose::STANDARD;
    Ok(String::from_utf8_lossy(&bytes).lines().any(|line| {
        line.split_whitespace()
            .nth(1)
            .is_some_and(|blob| engine.decode(blob).is_ok_and(|k| k == key))
    }))
}

/// The host-key algorithms of `supported` (libssh2's, in its order of preference), those
/// that sign with a key of a `known` type first.
pub(crate) fn algorithms_preferring(known: &[String], supported: &[&str]) -> String {
    let key_type = |algorithm: &str| match algorithm {
        "rsa-sha2-512" | "rsa-sha2-256" => "ssh-rsa".to_owned(),
        other => other.to_owned(),
    };
    let (mut first, rest): (Vec<&str>, Vec<&str>) =
        supported.iter().partition(|a| known.contains(&key_type(a)));
    first.extend(rest);
    first.join(",")
}

/// Whether a known_hosts host field (`|1|salt|hash`, or comma-separated patterns with `*`,
/// `?` and `!` negation) names `name`.
fn names(field: &str, name: &str) -> bool {
    if let Some(hashed) = field.strip_prefix("|1|") {
        return hashed_names(hashed, name);
    }
    pattern_list(field, name)
}

/// Whether `name` matches an OpenSSH pattern list (`a*,b?,!c`): a negated pattern that
/// matches rules it out, else any other that matches lets it in.
pub(crate) fn pattern_list(list: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in list.split(',') {
        match pattern.strip_prefix('!') {
            Some(negated) if wildcard(&negated.to_ascii_lowercase(), name) => return false,
            Some(_) => {}
            None => matched |= wildcard(&pattern.to_ascii_lowercase(), name),
        }
    }
    matched
}

/// `salt|hash` (base64) of a hashed entry: HMAC-SHA1 of the name keyed by the salt.
fn hashed_names(hashed: &str, name: &str) -> bool {
    let engine = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (engine.decode(salt), engine.decode(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
}

/// OpenSSH's pattern match: `*` any run of characters, `?` any one.
pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.as_bytes(), name.as_bytes());
    // The last `*` seen and where in `name` it stands for nothing more yet: on a mismatch
    // it takes one more character.
    let (mut p, mut n, mut star) = (0, 0, None);
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Appends one line to known_hosts (creating it 0600, as ssh does), leaving the rest as is;
/// with `hashed`, the host name as OpenSSH's `HashKnownHosts` writes it (`|1|salt|hash`).
pub(crate) fn append(
    path: &Path,
    name: &str,
    algorithm: &str,
    key: &[u8],
    hashed: bool,
) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    // The name is written as the line's pattern: a comma, wildcard or negation would make
    // the key other hosts' too (a HostKeyAlias or HostName of the config file may hold one).
    let pattern_like = |c: char| ",*?!".contains(c) || c.is_whitespace() || c.is_control();
    if name.is_empty() || name.starts_with(['|', '@', '#']) || name.contains(pattern_like) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name:?} is not a host name known_hosts can hold"),
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // As ssh makes ~/.ssh: private, and one level only. Every missing level was made,
        // so a HOME that is not there (`/nonexistent`, many service users') or a typo in
        // UserKnownHostsFile grew a tree where no one would look for the keys.
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let engine = base64::engine::general_purpose::STANDARD;
    let encoded = engine.encode(key);
    let name = if hashed {
        let mut salt = [0; 20];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| std::io::Error::other("no random bytes for the salt"))?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let hash = ring::hmac::sign(&key, name.to_ascii_lowercase().as_bytes());
        format!(
            "|1|{}|{}",
            engine.encode(salt),
            engine.encode(hash.as_ref())
        )
    } else {
        name.to_owned()
    };
    // After a last line without its end (a file edited by hand), a line of its own: joined
    // to it, both keys were lost.
    let unended = {
        use std::io::{Read as _, Seek as _};
        let mut last = [0; 1];
        let mut reader = std::fs::File::open(path)?;
        reader.seek(std::io::SeekFrom::End(-1)).is_ok()
            && reader.read_exact(&mut last).is_ok()
            && last[0] != b'\n'
    };
    // One write per line: sessions of a parallel run may add hosts at the same moment, and
    // O_APPEND keeps whole writes apart, not the pieces `writeln!` would make.
    let line = format!(
        "{}{name} {algorithm} {encoded}\n",
        if unended { "\n" } else { "" }
    );
    let written = file.write(line.as_bytes())?;
    if written < line.len() {
        // A disk that took only part of the line: the torn line goes, not to be read back
        // as a key the host does not have.
        let len = file.metadata()?.len();
        file.set_len(len.saturating_sub(written as u64))?;
        return Err(nix::errno::Errno::ENOSPC.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_openssh_matches_them() {
        assert!(wildcard("*.example.org", "db.example.org"));
        assert!(wildcard("db?.example.org", "db1.example.org"));
        assert!(!wildcard("db?.example.org", "db.example.org"));
        assert!(wildcard("[10.0.0.*]:2222", "[10.0.0.7]:2222"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("a*b", "acd"));
        assert!(names("web,DB", "db"));
        assert!(!names("*.org,!secret.org", "secret.org"));
        assert!(names("*.org,!secret.org", "public.org"));
        assert!(!names("!secret.org", "other.org"));
    }

    #[test]
    fn a_new_line_makes_one_missing_directory_not_a_tree() {
        use std::os::unix::fs::PermissionsExt as _;
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let key = [0, 0, 0, 1, 7];
        append(
            &dir.join(".ssh/known_hosts"),
            "h",
            "ssh-ed25519",
            &key,
            false,
        )
        .unwrap();
        let mode = std::fs::metadata(dir.join(".ssh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        // A HOME that is not there, a typo's directory: nothing made, the write refused.
        let deep = dir.join("nonexistent/.ssh/known_hosts");
        assert!(append(&deep, "h", "ssh-ed25519", &key, false).is_err());
        assert!(!dir.join("nonexistent").exists());
    }

    #[test]
    fn known_types_are_found_for_plain_wildcard_and_hashed_entries() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let path = dir.join("known_hosts");
        // "|1|...": ssh-keygen -H of "[127.0.0.1]:2222" with this salt.
        let salt = [7u8; 20];
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let tag = ring::hmac::sign(&key, b"[127.0.0.1]:2222");
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        // A key blob of `kind` whose key is `k`, as the fields of a real one are laid out.
        let blob = |kind: &str, k: u8| {
            let mut blob = (kind.len() as u32).to_be_bytes().to_vec();
            blob.extend_from_slice(kind.as_bytes());
            blob.extend_from_slice(&[0, 0, 0, 1, k]);
            blob
        };
        let (rsa, ed) = (blob("ssh-rsa", 0), blob("ssh-ed25519", 0));
        std::fs::write(
            &path,
            format!(
                "# comment\n@revoked [127.0.0.1]:2222 ssh-dss {}\n\
                 |1|{}|{} ecdsa-sha2-nistp256 {}\n[127.0.0.*]:2222 ssh-rsa {}\n\
                 127.0.0.1 ssh-ed25519 {}\n127.0.0.1 AAAAC3NzaC1lZDI1NTE5 typeless\n\
                 [10.0.0.9]:2222 ssh-ed25519 AAAAC3NzaC\n[10.0.0.9]:2222 ssh-ed2\n\
                 [10.0.0.9]:2222 ssh-ed25519 {}\n[10.0.0.9]:2222 ssh-rsa {}\n",
                b64(&blob("ssh-dss", 0)),
                b64(&salt),
                b64(tag.as_ref()),
                b64(&blob("ecdsa-sha2-nistp256", 0)),
                b64(&rsa),
                b64(&ed),
                b64(&ed[..ed.len() - 1]),
                b64(&ed),
            ),
        )
        .unwrap();
        assert_eq!(
            key_types(&path, "127.0.0.1", 2222),
            ["ecdsa-sha2-nistp256", "ssh-rsa"]
        );
        assert_eq!(key_types(&path, "127.0.0.1", 22), ["ssh-ed25519"]);
        assert!(key_types(&dir.join("none"), "127.0.0.1", 22).is_empty());
        // The wildcard line names 127.0.0.1 at 2222.
        assert_eq!(
            holds(&path, "127.0.0.1", 2222, "ssh-rsa", &rsa),
            Some(Ok(()))
        );
        // Changed: the line named is the one of the type sent, as OpenSSH's offending key.
        assert_eq!(
            holds(&path, "127.0.0.1", 2222, "ssh-rsa", &blob("ssh-rsa", 1)),
            Some(Err(4))
        );
        // Known by keys of other types only: changed, as OpenSSH 9 judges it.
        assert_eq!(
            holds(&path, "127.0.0.1", 2222, "ssh-ed25519", &ed),
            Some(Err(3))
        );
        assert_eq!(holds(&path, "127.0.0.2", 2223, "ssh-rsa", &rsa), None);
        // Lines whose key cannot be read (cut short by a full disk, a type cut, a key of
        // another type than the line says) are passed over: the host is unknown, not changed.
        assert_eq!(holds(&path, "10.0.0.9", 2222, "ssh-ed25519", &ed), None);
        assert!(key_types(&path, "10.0.0.9", 2222).is_empty());
        assert!(revoked(&path, &blob("ssh-dss", 0)));
        assert!(!revoked(&path, &rsa));
        assert!(!revoked(&dir.join("none"), &rsa));
        // A Latin-1 comment does not make the file empty: the key is still known, changed
        // and revoked keys still refused.
        let mut latin = b"# Ren\xe9's servers\n".to_vec();
        latin.extend(std::fs::read(&path).unwrap());
        let latin_path = dir.join("latin1");
        std::fs::write(&latin_path, latin).unwrap();
        assert_eq!(
            holds(&latin_path, "127.0.0.1", 2222, "ssh-rsa", &rsa),
            Some(Ok(()))
        );
        assert_eq!(
            holds(
                &latin_path,
                "127.0.0.1",
                2222,
                "ssh-rsa",
                &blob("ssh-rsa", 1)
            ),
            Some(Err(5))
        );
        assert!(revoked(&latin_path, &blob("ssh-dss", 0)));
        // What HashKnownHosts writes is found again.
        let appended = dir.join("appended");
        append(&appended, "[10.1.2.3]:2200", "ssh-ed25519", &ed, true).unwrap();
        let line = std::fs::read_to_string(&appended).unwrap();
        assert!(
            line.starts_with("|1|") && !line.contains("10.1.2.3"),
            "{line}"
        );
        assert_eq!(key_types(&appended, "10.1.2.3", 2200), ["ssh-ed25519"]);
        assert!(key_types(&appended, "10.1.2.4", 2200).is_empty());
        // A name that would be a pattern there (other hosts' key too) is not written.
        for pattern in ["foo,*", "*", "h?", "!h", "a b", "|1|x", "@revoked"] {
            assert!(append(&appended, pattern, "ssh-ed25519", &ed, false).is_err());
        }
        assert_eq!(std::fs::read_to_string(&appended).unwrap(), line);
        // After a last line left without its end, the key goes on a line of its own.
        let unended = dir.join("unended");
        std::fs::write(&unended, line.trim_end()).unwrap();
        append(&unended, "10.9.9.9", "ssh-ed25519", &ed, false).unwrap();
        assert_eq!(key_types(&unended, "10.1.2.3", 2200), ["ssh-ed25519"]);
        assert_eq!(key_types(&unended, "10.9.9.9", 22), ["ssh-ed25519"]);
        let supported = [
            "ssh-ed25519",
            "ecdsa-sha2-nistp256",
            "rsa-sha2-512",
            "ssh-rsa",
        ];
        assert_eq!(
            algorithms_preferring(&["ssh-rsa".into()], &supported),
            "rsa-sha2-512,ssh-rsa,ssh-ed25519,ecdsa-sha2-nistp256"
        );
        assert_eq!(
            algorithms_preferring(&[], &supported),
            "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,ssh-rsa"
        );
    }
}
