//! Why Slack did not take a message, and whether trying again, or another token, may help.

use std::time::Duration;

use notify_deliver::ProviderError;

/// `ok: false` errors that say something about Slack or the token rather than the message.
const PROVIDER_FAULTS: [&str; 11] = [
    "ratelimited",
    "service_unavailable",
    "internal_error",
    "fatal_error",
    "request_timeout",
    "team_added_to_org",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
];

#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// No answer: refused, reset, timed out.
    #[error("HTTP request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// An HTTP status other than 200, with the start of the body.
    #[error("Slack answered {status}: {body}")]
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// `{"ok": false, "error": "…"}`.
    #[error("Slack refused the message: {error}")]
    Api {
        error: String,
        retry_after: Option<Duration>,
    },
    #[error("a non-Slack payload reached the Slack worker")]
    WrongPayload,
}

impl SlackError {
    fn is_rate_limit(&self) -> bool {
        match self {
            SlackError::Status { status, .. } => *status == 429,
            SlackError::Api { error, .. } => error == "ratelimited" || error == "rate_limited",
            _ => false,
        }
    }
}

impl ProviderError for SlackError {
    /// No answer, a 5xx or 429, or a fault of Slack or the token; `channel_not_found`,
    /// `is_archived`, `invalid_blocks` and the like are final.
    fn is_retriable(&self) -> bool {
        match self {
            SlackError::Request(e) => !e.is_builder(),
            SlackError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            SlackError::Api { error, .. } => PROVIDER_FAULTS.contains(&error.as_str()),
            SlackError::WrongPayload => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            SlackError::Status { retry_after, .. } | SlackError::Api { retry_after, .. }
                if self.is_rate_limit() =>
            {
                Some(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(error: &str) -> SlackError {
        SlackError::Api {
            error: error.into(),
            retry_after: None,
        }
    }

    #[test]
    fn slack_error_strings_map_to_retriable_or_final() {
        assert!(!api("channel_not_found").is_retriable());
        assert!(!api("is_archived").is_retriable());
        assert!(!api("invalid_blocks").is_retriable());
        assert!(api("internal_error").is_retriable());
        assert!(api("invalid_auth").is_retriable(), "another token may work");
        assert_eq!(
            api("ratelimited").retry_after(),
            Some(Duration::from_secs(1))
        );
        let limited = SlackError::Status {
            status: 429,
            body: String::new(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
    }
}
