//! An SMTP server that records the mail it accepts and can be scripted to refuse messages, in
//! place of a real mail provider.
//!
//! It speaks plain SMTP without TLS or authentication, advertises 8BITMIME, SMTPUTF8,
//! PIPELINING and SIZE, and serves any number of connections at once. Scripted replies are
//! given at the end of DATA, one per message across all connections, after which the server
//! goes back to accepting everything.

mod encoding;
mod mail;
mod session;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

pub use mail::Mail;

use crate::Timeout;
use crate::server_task::{ServerTask, StopSignal};

/// A handle to a running SMTP server. Clones share the server, which stops when the last
/// handle drops or on [`SmtpServer::shutdown`].
#[derive(Clone)]
pub struct SmtpServer {
    recorded: Arc<Recorded>,
    task: Arc<ServerTask>,
}

/// How the server answers the end of one message's DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Record the message and answer 250.
    Accept,
    /// Refuse the message with a transient failure: the code (a 4xx such as 451) and its text.
    Temporary(u16, String),
    /// Refuse the message with a permanent failure: the code (a 5xx such as 550) and its text.
    Permanent(u16, String),
}

impl SmtpServer {
    /// Starts a server on 127.0.0.1 with a free port that accepts every message.
    pub async fn start() -> std::io::Result<SmtpServer> {
        SmtpServer::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts a server on `addr` that accepts every message.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<SmtpServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let recorded = Arc::new(Recorded::default());

        let task = ServerTask::spawn(addr, {
            let recorded = recorded.clone();
            move |stop| accept_connections(listener, recorded, stop)
        });
        Ok(SmtpServer {
            recorded,
            task: Arc::new(task),
        })
    }

    /// The address to give an SMTP client: `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr())
    }

    pub fn addr(&self) -> SocketAddr {
        self.task.addr()
    }

    /// Queues replies to the end of DATA, used in order one per message, before falling back to
    /// accepting.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.recorded.lock().script.extend(replies);
    }

    /// The accepted mail, in order of acceptance.
    pub fn messages(&self) -> Vec<Mail> {
        self.recorded.lock().messages.clone()
    }

    /// How many messages were refused with a scripted failure.
    pub fn rejected(&self) -> usize {
        self.recorded.lock().rejected
    }

    /// Waits until at least `n` messages were accepted and returns all accepted so far.
    pub async fn wait_for_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Mail>, Timeout> {
        crate::waiting::wait_for(&self.recorded.changed, timeout, "messages", n, || {
            self.messages()
        })
        .await
    }

    /// Stops accepting connections, closes the open ones and waits until the server is gone.
    pub async fn shutdown(&self) {
        self.task.stop().await;
    }
}

/// What the server has received, shared by its sessions and handles.
#[derive(Default)]
struct Recorded {
    state: Mutex<RecordedState>,
    changed: Notify,
}

#[derive(Default)]
struct RecordedState {
    script: VecDeque<Reply>,
    messages: Vec<Mail>,
    rejected: usize,
}

impl Recorded {
    fn lock(&self) -> MutexGuard<'_, RecordedState> {
        self.state.lock().expect("smtp server state lock")
    }

    /// Decides on a complete message with the next scripted reply, records it when accepted,
    /// and returns the SMTP reply code and text to send.
    fn answer(&self, mail: Mail) -> (u16, String) {
        let mut state = self.lock();
        match state.script.pop_front().unwrap_or(Reply::Accept) {
            Reply::Accept => {
                state.messages.push(mail);
                let queued = state.messages.len();
                drop(state);
                self.changed.notify_waiters();
                (250, format!("2.0.0 Ok: queued as {queued}"))
            }
            Reply::Temporary(code, text) | Reply::Permanent(code, text) => {
                state.rejected += 1;
                (code, text)
            }
        }
    }
}

async fn accept_connections(listener: TcpListener, recorded: Arc<Recorded>, mut stop: StopSignal) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.requested() => break,
            accepted = listener.accept() => {
                // A failed accept concerns only that one connection.
                if let Ok((stream, _)) = accepted {
                    sessions.spawn(session::serve(stream, recorded.clone()));
                }
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }

    drop(listener);
    sessions.shutdown().await;
}

#[cfg(test)]
mod tests;
