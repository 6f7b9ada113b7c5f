//! RabbitMQ for every stage: the topology, a connection that comes back after the broker goes
//! away, and publishing with confirms.

mod headers;
mod link;
mod topology;

pub use headers::{Headers, attempt_of, header_str, message_id_of};
pub use link::{Broker, Outgoing, Publisher, redact};
pub use topology::{Stage, Topology};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused the message for `{routing_key}`")]
    Nacked { routing_key: String },
    #[error("unknown stage `{0}`")]
    UnknownStage(String),
    #[error("the broker did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
