//! OpenSSH `Host` and `Match` lines, decided for one destination (ssh2-config has no
//! `Match`; a `Match` line becomes `Host *` or [`NO_HOST`] before the text goes to it).

use crate::known_hosts::{pattern_list, wildcard};

/// What `Match` criteria are decided against.
pub(crate) struct Target<'a> {
    /// The host name to connect to, after `HostName` (`Match host`).
    pub host: &'a str,
    /// The name as given (`Match originalhost`).
    pub original: &'a str,
    /// The remote user (`Match user`).
    pub user: &'a str,
    /// The local user (`Match localuser`).
    pub local_user: &'a str,
    /// `%` tokens for `Match exec`.
    pub tokens: &'a [(char, &'a str)],
    /// Whether this is the second reading that `Match final` asks for.
    pub final_pass: bool,
}

/// Whether a `Match` line's criteria name `final`, which asks for a second reading of the
/// files once the first has settled the host name.
pub(crate) fn asks_final(criteria: &str) -> bool {
    shlex::split(criteria).is_some_and(|words| {
        words
            .iter()
            .any(|w| w.trim_start_matches('!').eq_ignore_ascii_case("final"))
    })
}

/// The `Host` line a block never matches under.
pub(crate) const NO_HOST: &str = "Host !*";

/// Whether a `Host` line's patterns (`*.prod !db.prod`) take in `host`, as OpenSSH matches
/// them: the host as given, case and all, and a comma part of a pattern (`Match host` lists
/// are another matter).
pub(crate) fn host_matches(patterns: &str, host: &str) -> bool {
    let mut matched = false;
    for pattern in crate::config::words(patterns) {
        match pattern.strip_prefix('!') {
            Some(negated) if wildcard(negated, host) => return false,
            Some(_) => {}
            None => matched |= wildcard(&pattern, host),
        }
    }
    matched
}

/// Whether the criteria of a `Match` line hold for `target`: each must (`!` negates one);
/// `exec` runs its command through `sh -c` once the criteria before it hold, as OpenSSH does.
pub(crate) fn holds(criteria: &str, target: &Target<'_>) -> Result<bool, String> {
    let words =
        shlex::split(criteria).ok_or_else(|| format!("Match {criteria}: unbalanced quotes"))?;
    if words.is_empty() {
        return Err("Match needs criteria (all, host, user, exec, ...)".into());
    }
    let mut words = words.iter();
    let mut all = true;
    // The criteria before this one, as ssh 9.2 counts them.
    let mut attributes = 0;
    while let Some(word) = words.next() {
        let (negated, name) = match word.strip_prefix('!') {
            Some(name) => (true, name.to_ascii_lowercase()),
            None => (false, word.to_ascii_lowercase()),
        };
        // ssh 9.2 refuses `all` with anything after it, or after two criteria or more
        // (match_cfg_line's `attributes > 1`): `Match all host x` applied its block to
        // every host, where ssh stops at the line. `Match host x all` it takes.
        if name == "all" && (attributes > 1 || !words.as_slice().is_empty()) {
            return Err(format!(
                "Match {criteria}: 'all' cannot be combined with other Match attributes"
            ));
        }
        attributes += 1;
        let mut argument = || {
            words
                .next()
                .ok_or_else(|| format!("Match {name} needs an argument"))
        };
        let result = match name.as_str() {
            "all" => true,
            "final" => target.final_pass,
            // netkit does not canonicalize host names.
            "canonical" => false,
            "host" => pattern_list(argument()?, &target.host.to_ascii_lowercase()),
            "originalhost" => pattern_list(argument()?, &target.original.to_ascii_lowercase()),
            "user" => pattern_list(argument()?, target.user),
            "localuser" => pattern_list(argument()?, target.local_user),
            "exec" => {
                let command = argument()?;
                all && run(command, target.tokens)?
            }
            "localnetwork" | "tagged" | "command" | "sessiontype" | "version" => {
                argument()?;
                log::warn!("Match {name} is not supported: its block is not applied");
                return Ok(false);
            }
            other => return Err(format!("Match: unknown criterion {other:?}")),
        };
        all &= result != negated;
    }
    Ok(all)
}

/// Runs a `Match exec` command (its `%` tokens expanded); true when it exits 0.
fn run(command: &str, tokens: &[(char, &str)]) -> Result<bool, String> {
    let command = crate::config::expand_tokens(command, tokens)
        .map_err(|e| format!("Match exec {command:?}: {e}"))?;
    log::debug!("Match exec: {command}");
    std::process::Command::new("sh")
        .args(["-c", &command])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .map(|status| status.success())
        .map_err(|e| format!("Match exec {command:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::{Target, holds, host_matches};

    fn target() -> Target<'static> {
        Target {
            host: "db1.prod.example.com",
            original: "db1",
            user: "deploy",
            local_user: "ann",
            tokens: &[('h', "db1.prod.example.com"), ('r', "deploy")],
            final_pass: false,
        }
    }

    #[test]
    fn criteria_as_openssh_reads_them() {
        let t = target();
        let yes = |c: &str| holds(c, &t).unwrap();
        assert!(yes("all"));
        assert!(yes("host *.prod.example.com"));
        assert!(yes("host DB1.PROD.example.com"));
        assert!(!yes("host *.prod.example.com,!db1.*"));
        assert!(yes("originalhost db? user deploy localuser ann"));
        assert!(!yes("originalhost db? user root"));
        assert!(yes("!user root"));
        assert!(yes("exec \"test %h = db1.prod.example.com\""));
        assert!(!yes("exec false"));
        // exec runs only once the criteria before it hold.
        assert!(!yes("user root exec \"touch /nonexistent/ran\""));
        assert!(!yes("canonical"));
        assert!(!yes("final host db1*"));
        let last = Target {
            final_pass: true,
            ..target()
        };
        assert!(holds("final host db1*", &last).unwrap());
        assert!(!yes("localnetwork 10.0.0.0/8"));
        let bad = |c: &str| holds(c, &t).unwrap_err();
        assert!(bad("").contains("needs criteria"));
        assert!(bad("host").contains("needs an argument"));
        assert!(bad("hots x").contains("unknown criterion"));
        assert!(bad("exec \"open").contains("unbalanced"));
        for combined in [
            "all host x",
            "all final",
            "!all user deploy",
            "host x user y all",
            "final canonical all",
        ] {
            assert!(bad(combined).contains("cannot be combined"), "{combined}");
        }
        // After one criterion ssh 9.2 takes it, as true.
        assert!(yes("host db1.prod.example.com all"));
        assert!(!yes("host x all"));
        assert!(!yes("user deploy !all"));
        assert!(holds("final all", &t).is_ok());
        assert!(yes("all # a comment"));
        assert!(!yes("host all"));
    }

    #[test]
    fn host_lines_as_openssh_reads_them() {
        assert!(host_matches("web *.prod !db.prod", "app.prod"));
        assert!(!host_matches("*.prod !db.prod", "db.prod"));
        assert!(!host_matches("!*", "anything"));
        // As ssh 9 reads them (`ssh -G WEB` gets port 22 under `Host web`): the name as
        // given, and no list in a pattern.
        assert!(!host_matches("web *.prod", "WEB"));
        assert!(!host_matches("*.prod", "app.PROD"));
        assert!(!host_matches("a,b c", "b"));
        assert!(host_matches("a,b c", "a,b"));
    }
}
