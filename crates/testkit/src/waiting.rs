//! Waiting, with a deadline, until a server has recorded enough of something.

use std::fmt;
use std::pin::pin;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A wait that ended at its deadline before enough had arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeout {
    waited: Duration,
    wanted: usize,
    got: usize,
    what: &'static str,
}

impl Timeout {
    /// How long the wait lasted.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// How many were waited for.
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// How many had arrived at the deadline.
    pub fn got(&self) -> usize {
        self.got
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waited {:?} for {} {}, got {}",
            self.waited, self.wanted, self.what, self.got
        )
    }
}

impl std::error::Error for Timeout {}

/// Waits until `snapshot` holds at least `wanted` items, re-checking each time `changed` is
/// notified, and gives up after `timeout`. `what` names the items in the timeout message.
pub(crate) async fn wait_for<T>(
    changed: &Notify,
    timeout: Duration,
    what: &'static str,
    wanted: usize,
    mut snapshot: impl FnMut() -> Vec<T>,
) -> Result<Vec<T>, Timeout> {
    let deadline = Instant::now() + timeout;
    loop {
        // Registered before the check so that a change between the check and the wait is not lost.
        let mut notified = pin!(changed.notified());
        notified.as_mut().enable();

        let current = snapshot();
        if current.len() >= wanted {
            return Ok(current);
        }

        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Err(Timeout {
                waited: timeout,
                wanted,
                got: snapshot().len(),
                what,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn a_timeout_says_what_was_awaited_and_what_arrived() {
        let timeout = Timeout {
            waited: Duration::from_secs(10),
            wanted: 3,
            got: 1,
            what: "messages",
        };

        assert_eq!(timeout.to_string(), "waited 10s for 3 messages, got 1");
    }

    #[tokio::test]
    async fn waiting_returns_as_soon_as_enough_items_were_recorded() {
        let changed = Arc::new(Notify::new());
        let items = Arc::new(Mutex::new(Vec::new()));

        let producer = {
            let (changed, items) = (changed.clone(), items.clone());
            tokio::spawn(async move {
                for item in 0..3 {
                    items.lock().unwrap().push(item);
                    changed.notify_waiters();
                    tokio::task::yield_now().await;
                }
            })
        };
        let got = wait_for(&changed, Duration::from_secs(10), "items", 3, || {
            items.lock().unwrap().clone()
        })
        .await
        .unwrap();

        assert_eq!(got, vec![0, 1, 2]);
        producer.await.unwrap();
    }

    #[tokio::test]
    async fn waiting_gives_up_at_the_deadline_with_the_count_so_far() {
        let changed = Notify::new();

        let error = wait_for(&changed, Duration::from_millis(50), "items", 2, || vec![1])
            .await
            .unwrap_err();

        assert_eq!(error.to_string(), "waited 50ms for 2 items, got 1");
    }
}
