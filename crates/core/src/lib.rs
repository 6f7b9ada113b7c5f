//! Domain types shared by every stage: ids, channels, the validated notification, stage
//! messages and configuration.

pub mod channel;
pub mod config;
pub mod email;
pub mod ids;
pub mod message;
pub mod notification;
pub mod schedule;
pub mod secret;
pub mod status;
pub mod validation;

pub use channel::Channel;
pub use config::{Config, ConfigError, QueueType};
pub use email::EmailAddress;
pub use ids::{DeliveryId, NotificationId, TenantId};
pub use notification::{
    ActionLink, ChannelSpec, EmailOptions, NotificationRequest, Priority, PushOptions, Recipient,
    SlackOptions, SmsOptions, TeamsOptions, WebhookOptions,
};
pub use secret::Secret;
pub use status::DeliveryStatus;
pub use validation::ValidationError;
