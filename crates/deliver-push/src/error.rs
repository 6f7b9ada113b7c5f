//! Why a push service did not take a notification, and whether trying again may help.

use std::time::Duration;

use notify_deliver::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No answer: refused, reset, timed out.
    #[error("HTTP request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// The token is no longer registered with the service; it was marked dead.
    #[error("the push token is no longer registered ({reason})")]
    Unregistered { reason: String },
    /// FCM or APNs answered with an error.
    #[error("{service} answered {status}: {reason}")]
    Refused {
        service: &'static str,
        status: u16,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Signing in to FCM failed.
    #[error("OAuth2 token request failed: {0}")]
    Token(String),
    #[error("the signing key is unusable: {0}")]
    Key(#[from] crate::jwt::JwtError),
    #[error("a non-push payload reached the push worker")]
    WrongPayload,
    #[error("database: {0}")]
    Store(#[from] notify_store::StoreError),
}

impl ProviderError for PushError {
    /// No answer, a 5xx, 429, or an authentication fault of the service account or provider
    /// token (fixed by signing in again); a refused payload or a dead token is final.
    fn is_retriable(&self) -> bool {
        match self {
            PushError::Request(e) => !e.is_builder(),
            PushError::Refused { status, .. } => {
                *status >= 500 || *status == 429 || *status == 401 || *status == 403
            }
            PushError::Token(_) => true,
            PushError::Store(e) => e.is_transient(),
            PushError::Unregistered { .. } | PushError::Key(_) | PushError::WrongPayload => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            PushError::Refused {
                status: 429,
                retry_after,
                ..
            } => Some(retry_after.unwrap_or(Duration::from_secs(1))),
            _ => None,
        }
    }
}
