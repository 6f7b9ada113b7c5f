//! Why a Teams webhook did not take a card, and whether trying again may help.

use std::time::Duration;

use notify_deliver::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum TeamsError {
    /// No answer: refused, reset, timed out.
    #[error("HTTP request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// An answer that is not 2xx, with the start of its body.
    #[error("the Teams webhook answered {status}: {body}")]
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("a non-Teams payload reached the Teams worker")]
    WrongPayload,
}

impl ProviderError for TeamsError {
    /// No answer, a 5xx, 408 or 429; a 400 (a card Teams will not show) or 404 (a removed
    /// webhook) is final.
    fn is_retriable(&self) -> bool {
        match self {
            TeamsError::Request(e) => !e.is_builder(),
            TeamsError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            TeamsError::WrongPayload => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            TeamsError::Status {
                status: 429,
                retry_after,
                ..
            } => Some(retry_after.unwrap_or(Duration::from_secs(1))),
            _ => None,
        }
    }
}
