//! The one shutdown signal of a process: SIGTERM or Ctrl-C, observed by everything that runs.

use std::time::Duration;

use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
    sender: std::sync::Arc<watch::Sender<bool>>,
}

impl Shutdown {
    /// A signal that fires on SIGTERM or Ctrl-C.
    pub fn on_signals() -> Shutdown {
        let shutdown = Shutdown::manual();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: finishing in-flight work");
            trigger.trigger();
        });
        shutdown
    }

    pub fn manual() -> Shutdown {
        let (sender, receiver) = watch::channel(false);
        Shutdown {
            receiver,
            sender: std::sync::Arc::new(sender),
        }
    }

    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once shutdown has been requested.
    pub async fn wait(&self) {
        let mut receiver = self.receiver.clone();
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Sleeps, unless shutdown comes first; returns true if it did.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => false,
            _ = self.wait() => true,
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
