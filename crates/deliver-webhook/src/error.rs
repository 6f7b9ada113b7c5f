//! Why a webhook was not accepted, and whether trying again may help.

use notify_deliver::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No answer: refused, reset, timed out.
    #[error("HTTP request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// An answer that is not 2xx, with the start of its body.
    #[error("the endpoint answered {status}: {body}")]
    Status {
        status: u16,
        body: String,
        retry_after: Option<std::time::Duration>,
    },
    #[error("the tenant has no webhook signing secret")]
    NoSecret,
    #[error("the tenant's signing secret is unreadable: {0}")]
    BadSecret(String),
    #[error("a non-webhook payload reached the webhook worker")]
    WrongPayload,
    #[error("database: {0}")]
    Store(#[from] notify_store::StoreError),
}

impl ProviderError for WebhookError {
    /// Worth another try: no answer at all, a 5xx, 408 or 429, or the database away.
    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            WebhookError::Status {
                status: 429,
                retry_after,
                ..
            } => Some(retry_after.unwrap_or(std::time::Duration::from_secs(1))),
            _ => None,
        }
    }

    fn is_retriable(&self) -> bool {
        match self {
            WebhookError::Request(e) => !e.is_builder(),
            WebhookError::Status { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            WebhookError::Store(e) => e.is_transient(),
            WebhookError::NoSecret | WebhookError::BadSecret(_) | WebhookError::WrongPayload => {
                false
            }
        }
    }
}
