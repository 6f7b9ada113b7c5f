//! What the channel workers read from their environment in the same way: an ordered list of
//! providers as JSON, credentials that never show in logs, and `Retry-After` values.

use std::time::Duration;

use serde::de::DeserializeOwned;

use notify_core::ConfigError;

pub use notify_core::Secret;

/// The providers named in `variable`, a JSON array, in the order they are tried. An unset
/// variable is an empty list.
pub fn provider_list<T: DeserializeOwned>(
    lookup: impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Vec<T>, ConfigError> {
    let Some(raw) = lookup(variable).filter(|v| !v.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    // The message names the position and field, never the value, which may hold a secret.
    let mut de = serde_json::Deserializer::from_str(&raw);
    serde_path_to_error::deserialize(&mut de).map_err(|e| ConfigError {
        variable,
        message: format!(
            "not a JSON array of providers: at `{}`: {}",
            e.path(),
            redacted(e.inner())
        ),
    })
}

fn redacted(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => redact(&e.to_string()),
        _ => e.to_string(),
    }
}

/// A serde error message without the value it complains about: serde names an unexpected
/// value after "invalid type:" or "invalid value:", which may be a credential.
pub(crate) fn redact(message: &str) -> String {
    match message.split_once(": ") {
        Some((kind, _)) if kind.starts_with("invalid") => kind.to_owned(),
        _ => message.to_owned(),
    }
}

/// A `Retry-After` value: whole seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Account {
        name: String,
        token: Secret,
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let list: Vec<Account> = provider_list(
            |_| Some(r#"[{"name": "a", "token": "hunter2"}]"#.into()),
            "NOTIFY_X_PROVIDERS",
        )
        .unwrap();
        assert!(!format!("{list:?}").contains("hunter2"));
        assert_eq!(list[0].token.expose(), "hunter2");
    }

    #[test]
    fn a_bad_provider_list_names_the_field_but_not_the_value() {
        let e = provider_list::<Account>(
            |_| Some(r#"[{"name": "a", "token": 42}]"#.into()),
            "NOTIFY_X_PROVIDERS",
        )
        .unwrap_err();
        assert_eq!(e.variable, "NOTIFY_X_PROVIDERS");
        assert!(e.message.contains("[0].token"), "{}", e.message);
        assert!(!e.message.contains("42"), "{}", e.message);
        assert!(
            provider_list::<Account>(|_| None, "NOTIFY_X_PROVIDERS")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
