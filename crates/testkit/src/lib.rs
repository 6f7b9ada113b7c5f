//! Local stand-ins for the providers the platform talks to, for end-to-end tests and local runs:
//! an SMTP server and a webhook receiver that record what they receive and can be scripted to
//! fail, an independent verifier of Standard Webhooks signatures, and mock Twilio, Slack,
//! Teams, FCM and APNs servers that check each request the way the real API does and answer
//! as it would, errors included.
//!
//! Every server binds 127.0.0.1 (port 0 unless an address is given), runs on the caller's tokio
//! runtime, and stops when its last handle is dropped or when `shutdown` is called.

pub mod apns;
pub mod fcm;
pub mod jwt;
pub mod mock;
pub mod signature;
pub mod slack;
pub mod smtp;
pub mod teams;
pub mod twilio;
pub mod webhook;

mod server_task;
mod waiting;

pub use waiting::Timeout;
