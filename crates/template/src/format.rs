//! Locale-aware formatting of numbers and instants, independent of Handlebars.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::locale::{DateNames, Locale};

/// Decimals shown for a fractional number when the template asks for no particular count.
const DEFAULT_FRACTION_DIGITS: usize = 2;

/// Upper bound on `decimals=`, so a typo cannot produce a page of zeros.
const MAX_FRACTION_DIGITS: usize = 20;

/// A number read from a template value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Numeric {
    Integer(i128),
    Float(f64),
}

impl Numeric {
    /// Reads a JSON number, or a string holding one; anything else is not a number.
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Number(number) => {
                if let Some(integer) = number.as_i64() {
                    Some(Self::Integer(integer.into()))
                } else if let Some(integer) = number.as_u64() {
                    Some(Self::Integer(integer.into()))
                } else {
                    number.as_f64().map(Self::Float)
                }
            }
            Value::String(text) => Self::parse(text),
            _ => None,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let looks_numeric = text.bytes().any(|b| b.is_ascii_digit())
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
        if !looks_numeric {
            return None;
        }

        if let Ok(integer) = text.parse::<i128>() {
            return Some(Self::Integer(integer));
        }
        text.parse::<f64>()
            .ok()
            .filter(|float| float.is_finite())
            .map(Self::Float)
    }
}

/// Writes a number with the locale's separators. Integers get `decimals` zeros (none by
/// default); fractions are rounded to `decimals`, or by default to two places without
/// trailing zeros.
pub(crate) fn format_number(number: Numeric, decimals: Option<usize>, locale: &Locale) -> String {
    let decimals = decimals.map(|count| count.min(MAX_FRACTION_DIGITS));
    let plain = match (number, decimals) {
        (Numeric::Integer(integer), None | Some(0)) => integer.to_string(),
        (Numeric::Integer(integer), Some(count)) => format!("{integer}.{}", "0".repeat(count)),
        (Numeric::Float(float), Some(count)) => format!("{float:.count$}"),
        (Numeric::Float(float), None) => {
            let rounded = format!("{float:.DEFAULT_FRACTION_DIGITS$}");
            rounded
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned()
        }
    };

    let (negative, digits) = match plain.strip_prefix('-') {
        // Rounding can leave "-0.00"; a sign on zero reads as an error.
        Some(rest) if rest.bytes().any(|b| matches!(b, b'1'..=b'9')) => (true, rest),
        Some(rest) => (false, rest),
        None => (false, plain.as_str()),
    };
    let (integer_digits, fraction_digits) = match digits.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (digits, None),
    };

    let mut formatted = String::with_capacity(plain.len() * 2);
    if negative {
        formatted.push('-');
    }
    for (index, digit) in integer_digits.chars().enumerate() {
        let remaining = integer_digits.len() - index;
        if index > 0 && remaining % 3 == 0 {
            formatted.push_str(locale.group);
        }
        formatted.push(digit);
    }
    if let Some(fraction) = fraction_digits {
        formatted.push_str(locale.decimal);
        formatted.push_str(fraction);
    }
    formatted
}

/// Reads an instant from an RFC 3339 string or a unix timestamp in seconds.
pub(crate) fn parse_instant(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|instant| instant.with_timezone(&Utc)),
        Value::Number(number) => {
            if let Some(seconds) = number.as_i64() {
                DateTime::from_timestamp(seconds, 0)
            } else {
                let seconds = number.as_f64().filter(|float| float.is_finite())?;
                let whole = seconds.floor();
                let nanos = ((seconds - whole) * 1e9).round().min(999_999_999.0) as u32;
                if whole < i64::MIN as f64 || whole > i64::MAX as f64 {
                    return None;
                }
                DateTime::from_timestamp(whole as i64, nanos)
            }
        }
        _ => None,
    }
}

/// Reads a timezone name such as `Europe/Berlin`; an unknown name means UTC.
pub(crate) fn parse_timezone(name: &str) -> Tz {
    name.trim().parse().unwrap_or(Tz::UTC)
}

/// Formats an instant in a timezone with a strftime pattern whose month and weekday names
/// (`%B`, `%b`, `%h`, `%A`, `%a`) are spelled in the given language. `None` when the
/// pattern is not valid strftime.
pub(crate) fn format_instant(
    instant: DateTime<Utc>,
    timezone: Tz,
    pattern: &str,
    names: &DateNames,
) -> Option<String> {
    let local = instant.with_timezone(&timezone);
    let month = local.month0() as usize;
    let weekday = local.weekday().num_days_from_monday() as usize;

    let mut localized = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            localized.push(c);
            continue;
        }
        match chars.next() {
            Some('B') => push_literal(&mut localized, names.months[month]),
            Some('b' | 'h') => push_literal(&mut localized, names.months_short[month]),
            Some('A') => push_literal(&mut localized, names.weekdays[weekday]),
            Some('a') => push_literal(&mut localized, names.weekdays_short[weekday]),
            Some(other) => {
                localized.push('%');
                localized.push(other);
            }
            None => localized.push('%'),
        }
    }

    let mut formatted = String::new();
    write!(formatted, "{}", local.format(&localized)).ok()?;
    Some(formatted)
}

fn push_literal(pattern: &mut String, literal: &str) {
    pattern.push_str(&literal.replace('%', "%%"));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn number(value: Value, decimals: Option<usize>, tag: &str) -> String {
        let numeric = Numeric::from_json(&value).expect("a number");
        format_number(numeric, decimals, Locale::resolve(tag))
    }

    fn instant(rfc3339: &str) -> DateTime<Utc> {
        parse_instant(&json!(rfc3339)).expect("a valid instant")
    }

    #[test]
    fn english_groups_thousands_with_commas() {
        assert_eq!(number(json!(1234567), None, "en"), "1,234,567");
        assert_eq!(number(json!(1234.56), None, "en"), "1,234.56");
        assert_eq!(number(json!(999), None, "en"), "999");
    }

    #[test]
    fn german_swaps_the_separators() {
        assert_eq!(number(json!(1234.56), None, "de"), "1.234,56");
        assert_eq!(number(json!(1234), Some(2), "de-AT"), "1.234,00");
    }

    #[test]
    fn french_groups_with_a_narrow_no_break_space() {
        assert_eq!(number(json!(1234.56), None, "fr"), "1\u{202F}234,56");
    }

    #[test]
    fn swiss_german_groups_with_an_apostrophe_and_keeps_the_point() {
        assert_eq!(number(json!(1234.56), None, "de-CH"), "1\u{2019}234.56");
    }

    #[test]
    fn fractions_round_to_two_places_without_trailing_zeros_by_default() {
        assert_eq!(number(json!(2.5), None, "en"), "2.5");
        assert_eq!(number(json!(2.0), None, "en"), "2");
        assert_eq!(number(json!(1.23456), None, "en"), "1.23");
    }

    #[test]
    fn an_explicit_decimal_count_pads_or_rounds() {
        assert_eq!(number(json!(2.5), Some(2), "en"), "2.50");
        assert_eq!(number(json!(2.567), Some(0), "en"), "3");
        assert_eq!(number(json!(-1234.5), Some(1), "de"), "-1.234,5");
    }

    #[test]
    fn rounding_to_zero_drops_the_minus_sign() {
        assert_eq!(number(json!(-0.001), None, "en"), "0");
    }

    #[test]
    fn numeric_strings_are_numbers_and_words_are_not() {
        assert_eq!(number(json!("1234.5"), None, "en"), "1,234.5");
        assert_eq!(number(json!(" 1000000 "), None, "en"), "1,000,000");
        assert_eq!(Numeric::from_json(&json!("twelve")), None);
        assert_eq!(Numeric::from_json(&json!("inf")), None);
        assert_eq!(Numeric::from_json(&json!(true)), None);
    }

    #[test]
    fn berlin_time_skips_the_hour_lost_to_daylight_saving() {
        let names = &Locale::resolve("de").names;
        let berlin = parse_timezone("Europe/Berlin");

        let before = format_instant(instant("2026-03-29T00:30:00Z"), berlin, "%H:%M", names);
        let after = format_instant(instant("2026-03-29T01:30:00Z"), berlin, "%H:%M", names);

        assert_eq!(before.as_deref(), Some("01:30"));
        assert_eq!(after.as_deref(), Some("03:30"));
    }

    #[test]
    fn month_and_weekday_names_follow_the_language() {
        let at = instant("2026-12-03T13:05:00Z");
        let berlin = parse_timezone("Europe/Berlin");
        let pattern = "%A, %-d. %B (%a, %b)";

        let german = format_instant(at, berlin, pattern, Locale::resolve("de").names);
        let french = format_instant(at, berlin, pattern, Locale::resolve("fr").names);

        assert_eq!(
            german.as_deref(),
            Some("Donnerstag, 3. Dezember (Do., Dez.)")
        );
        assert_eq!(french.as_deref(), Some("jeudi, 3. décembre (jeu., déc.)"));
    }

    #[test]
    fn an_escaped_percent_sign_stays_literal() {
        let at = instant("2026-12-03T13:05:00Z");
        let formatted = format_instant(at, Tz::UTC, "100%% %B", Locale::resolve("en").names);
        assert_eq!(formatted.as_deref(), Some("100% December"));
    }

    #[test]
    fn an_invalid_pattern_is_reported_instead_of_panicking() {
        let at = instant("2026-12-03T13:05:00Z");
        assert_eq!(
            format_instant(at, Tz::UTC, "%Q", Locale::resolve("en").names),
            None
        );
    }

    #[test]
    fn unix_timestamps_are_read_as_seconds() {
        assert_eq!(
            parse_instant(&json!(1_780_000_000)),
            DateTime::from_timestamp(1_780_000_000, 0)
        );
        assert_eq!(
            parse_instant(&json!(1.5)),
            DateTime::from_timestamp(1, 500_000_000)
        );
    }

    #[test]
    fn offsets_in_the_input_are_honoured() {
        assert_eq!(
            instant("2026-12-03T14:05:00+01:00"),
            instant("2026-12-03T13:05:00Z")
        );
    }

    #[test]
    fn text_that_is_no_instant_is_rejected() {
        assert_eq!(parse_instant(&json!("next tuesday")), None);
        assert_eq!(parse_instant(&json!(null)), None);
    }

    #[test]
    fn an_unknown_timezone_means_utc() {
        assert_eq!(parse_timezone("Mars/Olympus_Mons"), Tz::UTC);
        assert_eq!(parse_timezone("Europe/Berlin"), Tz::Europe__Berlin);
    }
}
