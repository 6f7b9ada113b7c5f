//! Local stand-ins for the providers the platform talks to, for end-to-end tests and local runs:
//! an SMTP server and a webhook receiver that record what they receive and can be scripted to
//! fail, and an independent verifier of Standard Webhooks signatures.
//!
//! Every server binds 127.0.0.1 (port 0 unless an address is given), runs on the caller's tokio
//! runtime, and stops when its last handle is dropped or when `shutdown` is called.

pub mod signature;
pub mod smtp;
pub mod webhook;

mod server_task;
mod waiting;

pub use waiting::Timeout;
