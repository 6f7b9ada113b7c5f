//! Group commit. Calls that arrive while the database is busy with earlier ones are gathered
//! and written together, in one statement or one transaction, so that many messages share one
//! commit — the flush to disk that bounds how many commits a server makes per second — instead
//! of each paying for its own. Nothing waits to fill a group: a call that arrives alone, while
//! a slot is free, goes at once and alone; groups grow only as fast as calls queue up behind
//! the ones being written.
//!
//! A group that fails is split: each call is written again on its own, so one bad call cannot
//! fail the others with it, and each caller gets its own outcome.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::sync::{Semaphore, mpsc, oneshot};

/// Work that can be done for many calls at once.
pub trait Batch: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;
    type Error: Send + 'static;

    /// Does the work for every item together and gives one output per item, in order. When
    /// it fails, nothing of it may have taken effect: the caller tries the items again.
    fn run(
        &self,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Output>, Self::Error>> + Send;

    /// The error a caller gets when the group it was in ended without an answer (a panic).
    fn lost() -> Self::Error;
}

type Reply<B> = oneshot::Sender<Result<<B as Batch>::Output, <B as Batch>::Error>>;

/// Gathers calls of one kind into groups: at most `max_group` items a group and at most
/// `in_flight` groups being written at once. The task that does the writing starts with the
/// first call, inside whatever runtime makes it.
pub struct Gather<B: Batch> {
    batch: Arc<B>,
    max_group: usize,
    in_flight: usize,
    queue: OnceLock<mpsc::UnboundedSender<(B::Item, Reply<B>)>>,
}

impl<B: Batch> Gather<B> {
    pub fn new(batch: B, max_group: usize, in_flight: usize) -> Gather<B> {
        Gather {
            batch: Arc::new(batch),
            max_group: max_group.max(1),
            in_flight: in_flight.max(1),
            queue: OnceLock::new(),
        }
    }

    /// Does the work for one item, together with whatever other calls are waiting.
    pub async fn call(&self, item: B::Item) -> Result<B::Output, B::Error> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(dispatch(
                self.batch.clone(),
                rx,
                self.max_group,
                self.in_flight,
            ));
            tx
        });
        let (reply, answer) = oneshot::channel();
        if queue.send((item, reply)).is_err() {
            return Err(B::lost());
        }
        answer.await.unwrap_or_else(|_| Err(B::lost()))
    }
}

async fn dispatch<B: Batch>(
    batch: Arc<B>,
    mut queue: mpsc::UnboundedReceiver<(B::Item, Reply<B>)>,
    max_group: usize,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut group = vec![first];
        while group.len() < max_group {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let batch = batch.clone();
        tokio::spawn(async move {
            write_group(&*batch, group).await;
            drop(slot);
        });
    }
}

async fn write_group<B: Batch>(batch: &B, group: Vec<(B::Item, Reply<B>)>) {
    let (items, replies): (Vec<B::Item>, Vec<Reply<B>>) = group.into_iter().unzip();
    match batch.run(&items).await {
        Ok(outputs) if outputs.len() == items.len() => {
            for (reply, output) in replies.into_iter().zip(outputs) {
                let _ = reply.send(Ok(output));
            }
        }
        Ok(outputs) => {
            tracing::error!(
                items = items.len(),
                outputs = outputs.len(),
                "a group gave the wrong number of outputs; its calls are lost"
            );
            for reply in replies {
                let _ = reply.send(Err(B::lost()));
            }
        }
        Err(e) if items.len() == 1 => {
            let _ = replies.into_iter().next().map(|r| r.send(Err(e)));
        }
        Err(_) => {
            // Written again one by one, side by side, so each caller gets its own outcome.
            let alone = items
                .iter()
                .map(|item| batch.run(std::slice::from_ref(item)));
            let results = futures_util::future::join_all(alone).await;
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result.and_then(|mut one| one.pop().ok_or_else(B::lost)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Doubles numbers, remembering each group's size; a group holding 13 fails, and 13 alone
    /// fails too.
    #[derive(Default)]
    struct Doubling {
        groups: Mutex<Vec<usize>>,
        running: AtomicUsize,
        most_running: AtomicUsize,
    }

    impl Batch for Arc<Doubling> {
        type Item = u32;
        type Output = u32;
        type Error = String;

        async fn run(&self, items: &[u32]) -> Result<Vec<u32>, String> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            self.groups.lock().unwrap().push(items.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            if items.contains(&13) {
                return Err("13 is refused".into());
            }
            Ok(items.iter().map(|n| n * 2).collect())
        }

        fn lost() -> String {
            "lost".into()
        }
    }

    #[tokio::test]
    async fn a_call_alone_goes_alone() {
        let doubling = Arc::new(Doubling::default());
        let gather = Gather::new(doubling.clone(), 16, 2);
        assert_eq!(gather.call(21).await, Ok(42));
        assert_eq!(*doubling.groups.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn calls_that_queue_up_are_written_together_and_each_gets_its_own_answer() {
        let doubling = Arc::new(Doubling::default());
        let gather = Gather::new(doubling.clone(), 16, 1);
        let numbers: Vec<u32> = (100..140).collect();
        let calls = numbers.iter().map(|n| gather.call(*n));
        let answers = futures_util::future::join_all(calls).await;
        assert_eq!(
            answers,
            numbers
                .iter()
                .map(|n| Ok(n * 2))
                .collect::<Vec<Result<u32, String>>>()
        );
        let groups = doubling.groups.lock().unwrap().clone();
        assert_eq!(groups.iter().sum::<usize>(), 40);
        assert!(groups.iter().all(|g| *g <= 16), "groups: {groups:?}");
        assert!(groups.len() < 40, "nothing was gathered: {groups:?}");
        assert_eq!(doubling.most_running.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failing_group_is_split_so_only_the_bad_call_fails() {
        let doubling = Arc::new(Doubling::default());
        let gather = Gather::new(doubling.clone(), 16, 1);
        // All four are queued before the writer first runs, so they make one group, which
        // fails and is written again call by call.
        let answers =
            futures_util::future::join_all([12, 13, 14, 15].map(|n| gather.call(n))).await;
        assert_eq!(
            answers,
            vec![Ok(24), Err("13 is refused".to_owned()), Ok(28), Ok(30)]
        );
        let groups = doubling.groups.lock().unwrap().clone();
        assert_eq!(groups, vec![4, 1, 1, 1, 1], "groups: {groups:?}");
    }

    #[tokio::test]
    async fn no_more_groups_than_slots_are_written_at_once() {
        let doubling = Arc::new(Doubling::default());
        let gather = Gather::new(doubling.clone(), 2, 3);
        let answers = futures_util::future::join_all((100..130).map(|n| gather.call(n))).await;
        assert!(answers.iter().all(|a| a.is_ok()));
        assert!(doubling.most_running.load(Ordering::SeqCst) <= 3);
        assert!(doubling.groups.lock().unwrap().iter().all(|g| *g <= 2));
    }
}
