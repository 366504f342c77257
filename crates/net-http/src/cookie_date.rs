//! Cookie dates as RFC 6265 section 5.1.1 reads them, and `Set-Cookie` fields whose
//! `Expires` the `cookie` crate refused.
//!
//! The `cookie` crate takes only the exact RFC 1123, RFC 850 and asctime forms and drops any
//! other `Expires`, which turns the cookie into a session cookie: a session file then kept a
//! cookie sent with `Expires=Sat, 1 Jan 2000 00:00:00 UTC` (meant to delete it) for ever.
//! Browsers, curl and Python's `http.cookiejar` read such dates token by token, as here.

use cookie_store::RawCookie;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Parses a `Set-Cookie` field value. An `Expires` the `cookie` crate could not read is read
/// with [`parse`]; one that [`parse`] refuses too stays ignored, as RFC 6265 5.2.1 says.
/// `Max-Age` still wins over `Expires` where the jar turns the cookie into its own.
pub(crate) fn set_cookie(field: &str) -> Option<RawCookie<'static>> {
    let mut cookie = RawCookie::parse(field.to_owned()).ok()?;
    if cookie.expires().is_none()
        && let Some(date) = last_expires(field).and_then(parse)
    {
        cookie.set_expires(date);
    }
    Some(cookie)
}

/// The value of the last `Expires` attribute of a `Set-Cookie` field: RFC 6265 5.3 step 3
/// takes the last of an attribute given twice.
fn last_expires(field: &str) -> Option<&str> {
    field
        .split(';')
        .skip(1)
        .filter_map(|attribute| attribute.split_once('='))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("expires"))
        .map(|(_, value)| value.trim())
        .last()
}

/// A cookie date by RFC 6265 5.1.1, in UTC, or `None` where the algorithm aborts (a field
/// missing or out of range, a year before 1601, a day the month does not have).
pub(crate) fn parse(date: &str) -> Option<OffsetDateTime> {
    let mut time = None;
    let mut day = None;
    let mut month = None;
    let mut year = None;
    for token in date.as_bytes().split(|&b| is_delimiter(b)) {
        if token.is_empty() {
            continue;
        }
        if time.is_none()
            && let Some(hms) = hms_time(token)
        {
            time = Some(hms);
        } else if day.is_none()
            && let Some(d) = leading_digits(token, 1, 2)
        {
            day = Some(d);
        } else if month.is_none()
            && let Some(m) = month_of(token)
        {
            month = Some(m);
        } else if year.is_none()
            && let Some(y) = leading_digits(token, 2, 4)
        {
            year = Some(y);
        }
    }
    let (hour, minute, second) = time?;
    let year = match year? {
        y @ 70..=99 => y + 1900,
        y @ 0..=69 => y + 2000,
        y => y,
    };
    if year < 1601 {
        return None;
    }
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month?, u8::try_from(day?).ok()?)
            .ok()?;
    let time = Time::from_hms(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// RFC 6265's `delimiter`: %x09 / %x20-2F / %x3B-40 / %x5B-60 / %x7B-7E.
fn is_delimiter(b: u8) -> bool {
    matches!(b, 0x09 | 0x20..=0x2f | 0x3b..=0x40 | 0x5b..=0x60 | 0x7b..=0x7e)
}

/// The number a token opens with when it has `min` to `max` digits there, followed by
/// nothing or a non-digit (RFC 6265's `1*2DIGIT ( non-digit *OCTET )` and its kin).
fn leading_digits(token: &[u8], min: usize, max: usize) -> Option<u32> {
    digits(token, min, max).map(|(value, _)| value)
}

/// `min` to `max` leading digits of `token` as a number, and what follows them.
fn digits(token: &[u8], min: usize, max: usize) -> Option<(u32, &[u8])> {
    let n = token.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(min..=max).contains(&n) {
        return None;
    }
    let value = token[..n]
        .iter()
        .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'));
    Some((value, &token[n..]))
}

/// RFC 6265's `time`: `hms-time ( non-digit *OCTET )`, each field one or two digits.
fn hms_time(token: &[u8]) -> Option<(u32, u32, u32)> {
    let (hour, rest) = digits(token, 1, 2)?;
    let (minute, rest) = digits(rest.strip_prefix(b":")?, 1, 2)?;
    let (second, _) = digits(rest.strip_prefix(b":")?, 1, 2)?;
    Some((hour, minute, second))
}

/// RFC 6265's `month`: a token whose first three letters name one, in any case.
fn month_of(token: &[u8]) -> Option<Month> {
    const MONTHS: [(&[u8; 3], Month); 12] = [
        (b"jan", Month::January),
        (b"feb", Month::February),
        (b"mar", Month::March),
        (b"apr", Month::April),
        (b"may", Month::May),
        (b"jun", Month::June),
        (b"jul", Month::July),
        (b"aug", Month::August),
        (b"sep", Month::September),
        (b"oct", Month::October),
        (b"nov", Month::November),
        (b"dec", Month::December),
    ];
    let head = token.get(..3)?;
    MONTHS
        .iter()
        .find(|(name, _)| head.eq_ignore_ascii_case(&name[..]))
        .map(|&(_, month)| month)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(date: &str) -> Option<i64> {
        parse(date).map(OffsetDateTime::unix_timestamp)
    }

    const Y2000: i64 = 946_684_800;

    #[test]
    fn strict_forms_are_read() {
        assert_eq!(at("Sat, 01 Jan 2000 00:00:00 GMT"), Some(Y2000));
        assert_eq!(at("Saturday, 01-Jan-00 00:00:00 GMT"), Some(Y2000));
        assert_eq!(at("Sat Jan  1 00:00:00 2000"), Some(Y2000));
    }

    /// The forms of the QA report (finding 1) that the `cookie` crate dropped.
    #[test]
    fn lenient_forms_are_read() {
        for date in [
            "Sat, 01 Jan 2000 00:00:00 UTC",
            "Sat, 1 Jan 2000 00:00:00 GMT",
            "Sat, 01 Jan 2000 00:00:00 +0000",
            "Sat, 01 Jan 2000 00:00:00",
            "sat, 01 jan 2000 00:00:00 gmt",
            "Sat, 01 Jan 2000 0:0:0 GMT",
            "01 January 2000 00:00:00",
            "2000 jan 1 00:00:00",
            "Sat, 01-Jan-2000 00:00:00 GMT",
        ] {
            assert_eq!(at(date), Some(Y2000), "{date}");
        }
    }

    #[test]
    fn two_digit_years_are_1970_to_2069() {
        assert_eq!(at("1 Jan 70 00:00:00"), Some(0));
        assert_eq!(at("1 Jan 99 00:00:00"), Some(915_148_800));
        assert_eq!(at("1 Jan 00 00:00:00"), Some(Y2000));
        assert_eq!(
            parse("1 Jan 69 00:00:00").map(OffsetDateTime::year),
            Some(2069)
        );
    }

    #[test]
    fn the_first_token_of_each_kind_wins() {
        // Once each field is found, later tokens of its kind are ignored.
        assert_eq!(
            at("12 Jan 2000 00:00:00 13:00:00"),
            Some(Y2000 + 11 * 86_400)
        );
        // Tokens may carry anything after the digits or month letters.
        assert_eq!(at("01st Janvier 2000AD 00:00:00Z"), Some(Y2000));
    }

    /// RFC 6265 5.1.1 step 5: these abort, and the `Expires` stays ignored.
    #[test]
    fn dates_the_algorithm_refuses() {
        for date in [
            "",
            "Sat, 01 Jan 2000",
            "Sat, Jan 2000 00:00:00",
            "Sat, 01 2000 00:00:00",
            "Sat, 01 Jan 00:00:00",
            "Sat, 00 Jan 2000 00:00:00",
            "Sat, 32 Jan 2000 00:00:00",
            "Sat, 30 Feb 2000 00:00:00",
            "Sat, 01 Jan 1600 00:00:00",
            "Sat, 01 Jan 2000 24:00:00",
            "Sat, 01 Jan 2000 00:60:00",
            "Sat, 01 Jan 2000 00:00:60",
            "Sat, 001 Jan 2000 00:00:00",
            "Sat, 01 Jan 20000 00:00:00",
            "Sat, 01 Jan 2000 000:00:00",
        ] {
            assert_eq!(at(date), None, "{date}");
        }
    }

    #[test]
    fn the_last_day_of_9999_is_a_date() {
        assert_eq!(
            parse("31 Dec 9999 23:59:59").map(OffsetDateTime::year),
            Some(9999)
        );
    }

    #[test]
    fn set_cookie_reads_a_lenient_expires() {
        let cookie =
            set_cookie("tok=secret; Path=/; Expires=Sat, 1 Jan 2000 00:00:00 UTC").unwrap();
        let expires = cookie
            .expires_datetime()
            .map(OffsetDateTime::unix_timestamp);
        assert_eq!(expires, Some(Y2000));
    }

    #[test]
    fn set_cookie_keeps_max_age_and_refused_dates() {
        let cookie =
            set_cookie("tok=secret; Max-Age=60; Expires=Sat, 1 Jan 2000 00:00:00 UTC").unwrap();
        assert_eq!(cookie.max_age(), Some(time::Duration::seconds(60)));
        let cookie = set_cookie("tok=secret; Expires=soon").unwrap();
        assert_eq!(cookie.expires(), None);
        // The last Expires is the one taken.
        let cookie =
            set_cookie("tok=secret; expires=1 Jan 1999 0:0:0; Expires=1 Jan 2000 0:0:0").unwrap();
        let expires = cookie
            .expires_datetime()
            .map(OffsetDateTime::unix_timestamp);
        assert_eq!(expires, Some(Y2000));
    }
}
