//! The helpers templates can call besides the Handlebars built-ins: `upper`, `lower`,
//! `default`, `truncate`, `number_format` and `format_datetime`.
//!
//! Every helper computes a value rather than writing to the output, so Handlebars escapes
//! its result like any other value and the helpers compose as subexpressions.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, JsonRender, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;

use crate::format::{Numeric, format_instant, format_number, parse_instant, parse_timezone};
use crate::locale::{DateStyle, Locale};

/// Appended by `truncate` when it cuts, unless the template sets `suffix=`.
const ELLIPSIS: &str = "…";

const FALLBACK_LOCALE: &str = "en";
const FALLBACK_TIMEZONE: &str = "UTC";

static NULL: Value = Value::Null;

type Compute = fn(&Helper<'_>, &Context) -> Result<Value, RenderError>;

/// A helper whose result is a value computed from its parameters and the root context.
struct Computation(Compute);

impl HelperDef for Computation {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _registry: &'reg Handlebars<'reg>,
        context: &'rc Context,
        _render_context: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        (self.0)(helper, context).map(ScopedJson::Derived)
    }
}

/// Adds this crate's helpers to a registry.
pub(crate) fn register(registry: &mut Handlebars<'static>) {
    let helpers: [(&str, Compute); 6] = [
        ("upper", upper),
        ("lower", lower),
        ("default", default),
        ("truncate", truncate),
        ("number_format", number_format),
        ("format_datetime", format_datetime),
    ];
    for (name, compute) in helpers {
        registry.register_helper(name, Box::new(Computation(compute)));
    }
}

fn upper(helper: &Helper<'_>, _context: &Context) -> Result<Value, RenderError> {
    Ok(Value::String(text_of(param(helper, 0)).to_uppercase()))
}

fn lower(helper: &Helper<'_>, _context: &Context) -> Result<Value, RenderError> {
    Ok(Value::String(text_of(param(helper, 0)).to_lowercase()))
}

/// `{{default value "fallback"}}`: the fallback when the value is missing, null or empty.
fn default(helper: &Helper<'_>, _context: &Context) -> Result<Value, RenderError> {
    let value = param(helper, 0);
    let is_blank = match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        _ => false,
    };

    Ok(if is_blank {
        param(helper, 1).clone()
    } else {
        value.clone()
    })
}

/// `{{truncate text 20}}`, optionally with `suffix="..."`.
fn truncate(helper: &Helper<'_>, _context: &Context) -> Result<Value, RenderError> {
    let limit = match Numeric::from_json(param(helper, 1)) {
        Some(Numeric::Integer(limit)) if limit >= 0 => usize::try_from(limit).unwrap_or(usize::MAX),
        _ => {
            return Err(RenderErrorReason::Other(
                "truncate needs a maximum length, as in {{truncate text 20}}".to_owned(),
            )
            .into());
        }
    };
    let suffix = match helper.hash_get("suffix") {
        Some(suffix) => text_of(suffix.value()),
        None => ELLIPSIS.to_owned(),
    };

    Ok(Value::String(truncate_text(
        &text_of(param(helper, 0)),
        limit,
        &suffix,
    )))
}

/// `{{number_format value}}` with optional `decimals=` and `locale=`.
fn number_format(helper: &Helper<'_>, context: &Context) -> Result<Value, RenderError> {
    let value = param(helper, 0);
    let Some(number) = Numeric::from_json(value) else {
        return Ok(value.clone());
    };

    let decimals = helper
        .hash_get("decimals")
        .and_then(|decimals| Numeric::from_json(decimals.value()))
        .and_then(|decimals| match decimals {
            Numeric::Integer(count) => usize::try_from(count).ok(),
            Numeric::Float(_) => None,
        });
    let locale = Locale::resolve(&locale_tag(helper, context));

    Ok(Value::String(format_number(number, decimals, locale)))
}

/// `{{format_datetime value}}`, `{{format_datetime value "%d.%m.%Y"}}`, or with
/// `format="short|medium|long|date|time"`, `tz=` and `locale=`.
fn format_datetime(helper: &Helper<'_>, context: &Context) -> Result<Value, RenderError> {
    let value = param(helper, 0);
    let Some(instant) = parse_instant(value) else {
        return Ok(value.clone());
    };

    let locale = Locale::resolve(&locale_tag(helper, context));
    let timezone = hash_text(helper, "tz")
        .or_else(|| recipient_setting(context, "timezone"))
        .unwrap_or_else(|| FALLBACK_TIMEZONE.to_owned());

    let requested = non_empty(text_of(param(helper, 1))).or_else(|| hash_text(helper, "format"));
    let pattern = match requested {
        Some(requested) => match DateStyle::from_keyword(&requested) {
            Some(style) => locale.patterns.pattern(style).to_owned(),
            None => requested,
        },
        None => locale.patterns.pattern(DateStyle::Medium).to_owned(),
    };

    Ok(
        match format_instant(instant, parse_timezone(&timezone), &pattern, locale.names) {
            Some(formatted) => Value::String(formatted),
            None => value.clone(),
        },
    )
}

fn param<'a>(helper: &'a Helper<'_>, index: usize) -> &'a Value {
    helper.param(index).map_or(&NULL, |param| param.value())
}

/// The value as the text Handlebars would print; nothing for null.
fn text_of(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.render(),
    }
}

fn non_empty(text: String) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

fn hash_text(helper: &Helper<'_>, key: &str) -> Option<String> {
    helper
        .hash_get(key)
        .and_then(|value| non_empty(text_of(value.value())))
}

/// A setting of the recipient the notification is rendered for, e.g. `recipient.locale`.
fn recipient_setting(context: &Context, key: &str) -> Option<String> {
    context
        .data()
        .get("recipient")
        .and_then(|recipient| recipient.get(key))
        .and_then(Value::as_str)
        .and_then(|setting| non_empty(setting.to_owned()))
}

fn locale_tag(helper: &Helper<'_>, context: &Context) -> String {
    hash_text(helper, "locale")
        .or_else(|| recipient_setting(context, "locale"))
        .unwrap_or_else(|| FALLBACK_LOCALE.to_owned())
}

/// Cuts `text` to at most `limit` characters including `suffix`, which is added only when
/// something was cut. Characters are counted as a reader sees them (see [`cluster_starts`]).
fn truncate_text(text: &str, limit: usize, suffix: &str) -> String {
    let starts = cluster_starts(text);
    if starts.len() <= limit {
        return text.to_owned();
    }

    let suffix_starts = cluster_starts(suffix);
    if suffix_starts.len() >= limit {
        let end = suffix_starts.get(limit).copied().unwrap_or(suffix.len());
        return suffix[..end].to_owned();
    }

    let kept = &text[..starts[limit - suffix_starts.len()]];
    format!("{}{suffix}", kept.trim_end())
}

/// Byte offsets where each user-perceived character of `text` starts.
///
/// A character keeps its combining diacritics, variation selectors, emoji skin-tone
/// modifiers and tags, whatever a zero-width joiner attaches to it, and a flag's pair of
/// regional indicators together.
// FIXME: marks outside these blocks (Indic vowel signs, Hangul jamo) count as characters of
// their own, so truncating such text can separate a mark from its base letter.
fn cluster_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::with_capacity(text.len());
    let mut previous: Option<char> = None;
    let mut unpaired_indicator = false;

    for (offset, c) in text.char_indices() {
        let joins_previous = match previous {
            None => false,
            Some(before) => {
                is_extending(c)
                    || before == ZERO_WIDTH_JOINER
                    || (before == '\r' && c == '\n')
                    || (unpaired_indicator && is_regional_indicator(c))
            }
        };

        if is_regional_indicator(c) {
            unpaired_indicator = !(joins_previous && unpaired_indicator);
        } else if !joins_previous {
            unpaired_indicator = false;
        }
        if !joins_previous {
            starts.push(offset);
        }
        previous = Some(c);
    }
    starts
}

const ZERO_WIDTH_JOINER: char = '\u{200D}';

fn is_extending(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{200C}'..='\u{200D}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FE20}'..='\u{FE2F}'
            | '\u{1F3FB}'..='\u{1F3FF}'
            | '\u{E0020}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

fn is_regional_indicator(c: char) -> bool {
    matches!(c, '\u{1F1E6}'..='\u{1F1FF}')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(template: &str, data: &Value) -> String {
        let mut registry = Handlebars::new();
        registry.register_escape_fn(handlebars::no_escape);
        register(&mut registry);
        registry
            .render_template(template, data)
            .expect("template renders")
    }

    #[test]
    fn upper_follows_unicode_case_rules() {
        let data = json!({"street": "Hauptstraße", "city": "Ødegaard"});
        assert_eq!(render("{{upper street}}", &data), "HAUPTSTRASSE");
        assert_eq!(render("{{lower city}}", &data), "ødegaard");
    }

    #[test]
    fn lower_handles_the_greek_final_sigma() {
        assert_eq!(render("{{lower word}}", &json!({"word": "ΟΔΟΣ"})), "οδος");
    }

    #[test]
    fn upper_of_a_missing_value_is_empty() {
        assert_eq!(render("[{{upper nothing}}]", &json!({})), "[]");
    }

    #[test]
    fn default_replaces_missing_null_and_empty_values_only() {
        let data = json!({"empty": "", "null": null, "zero": 0, "name": "Maria"});
        assert_eq!(render(r#"{{default missing "friend"}}"#, &data), "friend");
        assert_eq!(render(r#"{{default null "friend"}}"#, &data), "friend");
        assert_eq!(render(r#"{{default empty "friend"}}"#, &data), "friend");
        assert_eq!(render(r#"{{default zero "none"}}"#, &data), "0");
        assert_eq!(render(r#"{{default name "friend"}}"#, &data), "Maria");
    }

    #[test]
    fn helpers_compose_as_subexpressions() {
        let data = json!({"name": ""});
        assert_eq!(
            render(r#"{{upper (default name "friend")}}"#, &data),
            "FRIEND"
        );
    }

    #[test]
    fn truncate_leaves_short_text_alone() {
        let data = json!({"text": "Short"});
        assert_eq!(render("{{truncate text 20}}", &data), "Short");
        assert_eq!(render("{{truncate text 5}}", &data), "Short");
    }

    #[test]
    fn truncate_counts_the_ellipsis_within_the_limit() {
        let data = json!({"text": "Your order has shipped today"});
        let cut = render("{{truncate text 20}}", &data);
        assert_eq!(cut, "Your order has ship…");
        assert_eq!(cut.chars().count(), 20);
    }

    #[test]
    fn truncate_drops_trailing_spaces_before_the_suffix() {
        let data = json!({"text": "Hello world and more"});
        assert_eq!(render("{{truncate text 7}}", &data), "Hello…");
    }

    #[test]
    fn truncate_takes_a_custom_suffix() {
        let data = json!({"text": "abcdefghijkl"});
        assert_eq!(
            render(r#"{{truncate text 8 suffix="..."}}"#, &data),
            "abcde..."
        );
        assert_eq!(render(r#"{{truncate text 4 suffix=""}}"#, &data), "abcd");
    }

    #[test]
    fn truncate_never_splits_multibyte_characters() {
        let data = json!({"text": "Grüße aus München"});
        assert_eq!(render("{{truncate text 6}}", &data), "Grüße…");
    }

    #[test]
    fn truncate_keeps_combining_marks_and_emoji_sequences_whole() {
        assert_eq!(
            truncate_text("e\u{301}e\u{301}e\u{301}e\u{301}", 3, "…"),
            "e\u{301}e\u{301}…"
        );
        let family = "👨\u{200D}👩\u{200D}👧";
        assert_eq!(
            truncate_text(&format!("{family}{family}{family}"), 2, "…"),
            format!("{family}…")
        );
        assert_eq!(truncate_text("🇩🇪🇫🇷🇮🇹", 2, "…"), "🇩🇪…");
        assert_eq!(truncate_text("👍🏽👍🏽👍🏽", 2, ""), "👍🏽👍🏽");
    }

    #[test]
    fn truncate_shorter_than_its_suffix_gives_part_of_the_suffix() {
        assert_eq!(truncate_text("abcdef", 2, "..."), "..");
    }

    #[test]
    fn truncate_without_a_length_is_an_error() {
        let mut registry = Handlebars::new();
        register(&mut registry);
        let error = registry
            .render_template("{{truncate text}}", &json!({"text": "abc"}))
            .expect_err("a length is required");
        assert!(
            error
                .to_string()
                .contains("truncate needs a maximum length")
        );
    }

    #[test]
    fn number_format_uses_the_hash_locale() {
        let data = json!({"amount": 1234.5});
        assert_eq!(
            render(r#"{{number_format amount locale="de"}}"#, &data),
            "1.234,5"
        );
        assert_eq!(
            render(r#"{{number_format amount decimals=2 locale="fr"}}"#, &data),
            "1\u{202F}234,50"
        );
    }

    #[test]
    fn number_format_defaults_to_the_recipient_locale() {
        let data = json!({"recipient": {"locale": "de-AT"}, "amount": 1234567});
        assert_eq!(render("{{number_format amount}}", &data), "1.234.567");
    }

    #[test]
    fn number_format_reads_the_recipient_locale_inside_blocks() {
        let data = json!({"recipient": {"locale": "de"}, "items": [{"price": 1500.5}]});
        assert_eq!(
            render("{{#each items}}{{number_format price}}{{/each}}", &data),
            "1.500,5"
        );
    }

    #[test]
    fn number_format_defaults_to_english_without_a_recipient_locale() {
        let data = json!({"amount": "1234.5"});
        assert_eq!(
            render("{{number_format amount decimals=2}}", &data),
            "1,234.50"
        );
    }

    #[test]
    fn number_format_leaves_non_numbers_unchanged() {
        let data = json!({"amount": "a lot"});
        assert_eq!(render("{{number_format amount}}", &data), "a lot");
        assert_eq!(render("[{{number_format missing}}]", &data), "[]");
    }

    #[test]
    fn format_datetime_converts_to_the_recipient_timezone_across_daylight_saving() {
        let recipient = json!({"locale": "de", "timezone": "Europe/Berlin"});
        let before = json!({"recipient": recipient, "at": "2026-03-29T00:30:00Z"});
        let after = json!({"recipient": recipient, "at": "2026-03-29T01:30:00Z"});

        assert_eq!(
            render("{{format_datetime at format=\"time\"}}", &before),
            "01:30"
        );
        assert_eq!(
            render("{{format_datetime at format=\"time\"}}", &after),
            "03:30"
        );
    }

    #[test]
    fn format_datetime_spells_long_dates_in_the_locale() {
        let data = json!({"at": "2026-12-03T13:05:00Z"});
        let long = |locale: &str| {
            render(
                &format!(
                    r#"{{{{format_datetime at format="long" tz="Europe/Berlin" locale="{locale}"}}}}"#
                ),
                &data,
            )
        };

        assert_eq!(long("de"), "3. Dezember 2026, 14:05");
        assert_eq!(long("fr"), "3 décembre 2026 à 14:05");
        assert_eq!(long("es"), "3 de diciembre de 2026, 14:05");
        assert_eq!(long("en"), "December 3, 2026 at 2:05 PM");
    }

    #[test]
    fn format_datetime_takes_a_strftime_pattern() {
        let data =
            json!({"at": "2026-12-03T13:05:00Z", "recipient": {"timezone": "Europe/Berlin"}});
        assert_eq!(
            render(r#"{{format_datetime at "%d.%m.%Y %H:%M"}}"#, &data),
            "03.12.2026 14:05"
        );
    }

    #[test]
    fn format_datetime_reads_unix_timestamps_in_utc_by_default() {
        let data = json!({"at": 1_796_302_800});
        assert_eq!(
            render(r#"{{format_datetime at "%Y-%m-%d %H:%M"}}"#, &data),
            "2026-12-03 13:00"
        );
    }

    #[test]
    fn format_datetime_defaults_to_the_medium_style() {
        let data = json!({"at": "2026-12-03T13:05:00Z"});
        assert_eq!(
            render("{{format_datetime at}}", &data),
            "Dec 3, 2026, 1:05 PM"
        );
    }

    #[test]
    fn format_datetime_falls_back_to_utc_for_an_unknown_timezone() {
        let data = json!({"at": "2026-12-03T13:05:00Z"});
        assert_eq!(
            render(
                r#"{{format_datetime at "%H:%M" tz="Nowhere/Special"}}"#,
                &data
            ),
            "13:05"
        );
    }

    #[test]
    fn format_datetime_leaves_invalid_input_unchanged() {
        let data = json!({"at": "tomorrow-ish"});
        assert_eq!(render("{{format_datetime at}}", &data), "tomorrow-ish");
        assert_eq!(
            render(
                r#"{{format_datetime when "%Q"}}"#,
                &json!({"when": "2026-12-03T13:05:00Z"})
            ),
            "2026-12-03T13:05:00Z"
        );
    }
}
