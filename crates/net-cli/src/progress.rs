//! The look of progress bars and spinners, shared by http downloads and sftp transfers.

/// A style for `template` drawn in what the terminal can show: UTF-8 blocks and braille
/// under a UTF-8 locale, ASCII otherwise (under `LANG=C` the blocks came out as mojibake,
/// as `■` in a serial console), as curl's `#` and OpenSSH's `*` bars are.
pub fn style(template: &str) -> indicatif::ProgressStyle {
    let style = indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    if utf8_locale(|name| std::env::var(name).ok()) {
        style
    } else {
        style.progress_chars("#>-").tick_chars("-\\|/ ")
    }
}

/// A bar on stderr in `template`, with `message`, for `total` bytes (0 when not known), at
/// `done` already: a resumed part, not fetched now, is not counted into its speed.
pub fn bar(template: &str, message: &str, total: u64, done: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::hidden(),
    );
    bar.set_style(style(template));
    bar.set_message(message.to_owned());
    bar.set_position(done);
    // indicatif's estimator counts from the last position it recorded, and reset_eta keeps
    // that: a tick records `done`, the reset then drops the rate the jump made (a resumed
    // download showed 264 GiB/s and "0s" left); drawn only from there on.
    bar.tick();
    bar.reset_eta();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

/// Whether the locale `var` gives (LC_ALL, LC_CTYPE, LANG: the first set wins, as
/// setlocale reads them) writes UTF-8.
fn utf8_locale(var: impl Fn(&str) -> Option<String>) -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .into_iter()
        .find_map(|name| var(name).filter(|value| !value.is_empty()))
        .is_some_and(|locale| {
            let locale = locale.to_ascii_lowercase();
            locale.contains("utf-8") || locale.contains("utf8")
        })
}

#[cfg(test)]
mod tests {
    use super::utf8_locale;

    #[test]
    fn the_first_locale_variable_set_decides() {
        let with = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            utf8_locale(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        };
        assert!(with(&[("LANG", "en_US.UTF-8")]));
        assert!(with(&[("LC_CTYPE", "C.utf8"), ("LANG", "C")]));
        assert!(!with(&[("LC_ALL", "C"), ("LANG", "en_US.UTF-8")]));
        assert!(with(&[("LC_ALL", ""), ("LANG", "de_DE.UTF-8")]));
        assert!(!with(&[("LANG", "POSIX")]));
        assert!(!with(&[]));
    }
}
