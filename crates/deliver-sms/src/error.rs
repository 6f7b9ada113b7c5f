//! Why Twilio did not take a message, and whether trying again, or another account, may help.

use std::time::Duration;

use notify_deliver::ProviderError;

/// Twilio error codes that say something about the account rather than the message, so that
/// another account may well send it.
const ACCOUNT_FAULTS: [u32; 6] = [
    20003, // authentication failed
    20005, // account not active
    20500, // internal error
    20503, // service unavailable
    21606, // the sender cannot send SMS
    30001, // queue overflow
];

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// No answer: refused, reset, timed out.
    #[error("HTTP request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// Twilio answered with an error.
    #[error("Twilio answered {status} (code {code}): {message}", code = code.map_or("none".to_owned(), |c| c.to_string()))]
    Refused {
        status: u16,
        code: Option<u32>,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("`{0}` is not an E.164 phone number")]
    InvalidNumber(String),
    #[error("the text is empty")]
    EmptyText,
    #[error("a non-SMS payload reached the SMS worker")]
    WrongPayload,
}

impl SmsError {
    fn is_rate_limit(&self) -> bool {
        matches!(self, SmsError::Refused { status, code, .. } if *status == 429 || *code == Some(20429))
    }
}

impl ProviderError for SmsError {
    /// No answer, a 5xx, a rate limit, or an account fault; a refusal of this message (an
    /// invalid or unsubscribed number) is final.
    fn is_retriable(&self) -> bool {
        match self {
            SmsError::Request(e) => !e.is_builder(),
            SmsError::Refused { status, code, .. } => {
                *status >= 500
                    || *status == 401
                    || self.is_rate_limit()
                    || code.is_some_and(|c| ACCOUNT_FAULTS.contains(&c))
            }
            SmsError::InvalidNumber(_) | SmsError::EmptyText | SmsError::WrongPayload => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            SmsError::Refused { retry_after, .. } if self.is_rate_limit() => {
                Some(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: u32) -> SmsError {
        SmsError::Refused {
            status,
            code: Some(code),
            message: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn twilio_codes_map_to_retriable_or_final() {
        assert!(!refused(400, 21211).is_retriable(), "invalid To number");
        assert!(
            !refused(400, 21610).is_retriable(),
            "unsubscribed recipient"
        );
        assert!(!refused(400, 21614).is_retriable(), "not a mobile number");
        assert!(
            refused(401, 20003).is_retriable(),
            "another account may work"
        );
        assert!(refused(503, 20503).is_retriable());
        assert!(refused(429, 20429).is_retriable());
        assert_eq!(
            refused(429, 20429).retry_after(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(refused(400, 21211).retry_after(), None);
    }
}
