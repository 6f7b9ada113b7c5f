//! Why an email was not sent, and whether trying again may help.

use notify_deliver::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The relay answered with an error or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// An address lettre will not accept.
    #[error("invalid address `{address}`: {reason}")]
    Address { address: String, reason: String },
    #[error("the message could not be built: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("a non-email payload reached the email worker")]
    WrongPayload,
}

impl ProviderError for EmailError {
    /// A 4xx reply, a timeout or a lost connection may pass; a 5xx reply will not.
    fn is_retriable(&self) -> bool {
        match self {
            EmailError::Smtp(e) => !e.is_permanent() && !e.is_client(),
            EmailError::Address { .. } | EmailError::Build(_) | EmailError::WrongPayload => false,
        }
    }
}
