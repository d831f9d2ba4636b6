//! The handler tasks of one connection: each runs in its own Tokio task and
//! leaves its reply in a queue the driver drains.
//!
//! This does what a `JoinSet<Reply>` would, for less: a `JoinSet` keeps
//! every task in a locked, linked set, wraps each join handle's waker, and
//! joins each task through its handle. A finished task here takes one
//! lock, one push and one wake, and the driver takes every reply of a
//! wakeup with one lock. Counted with callgrind over the loopback round
//! trip, that saved about 240 instructions a request; the spawn itself
//! (Tokio's aligned task allocation, its scheduling) costs far more and
//! stays.
//!
//! What a `JoinSet` gave and this keeps: a panicking handler is answered
//! (its reply is [`Reply::exception`]), and the tasks still running are
//! aborted when the set is aborted or dropped (the connection ended, or
//! its driver was dropped with the runtime).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use tokio::task::AbortHandle;

use super::driver::IdHasher;
use super::handler::Reply;
use super::mailbox::Mailbox;

/// A connection's running handler tasks, each with the `(channel, tag)` of
/// the request it answers.
pub(crate) struct HandlerTasks {
    /// `(task id, reply)` of each finished task.
    finished: Arc<Mailbox<(u64, Reply)>>,
    /// Running tasks by id: how to abort each, and its request.
    running: HashMap<u64, (AbortHandle, (u64, u64)), BuildHasherDefault<IdHasher>>,
    next_id: u64,
    /// The replies taken from `finished` (kept for its allocation).
    taken: VecDeque<(u64, Reply)>,
}

impl HandlerTasks {
    pub(crate) fn new() -> Self {
        HandlerTasks {
            finished: Arc::new(Mailbox::new()),
            running: HashMap::default(),
            next_id: 0,
            taken: VecDeque::new(),
        }
    }

    /// Runs `task`, the handler of request `key`, in its own task.
    pub(crate) fn spawn(
        &mut self,
        key: (u64, u64),
        task: impl Future<Output = Reply> + Send + 'static,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let finished = Arc::clone(&self.finished);
        // Boxed, the task's future is a pointer: the runtime moves it into
        // its task cell and stage by stage without copying a request.
        let task = Box::pin(task);
        let handle = tokio::spawn(async move {
            let reply = AssertUnwindSafe(task)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    tracing::warn!("request handler panicked");
                    Reply::exception()
                });
            // Closed only when the set is dropped: the reply is not wanted.
            let _ = finished.send((id, reply));
        });
        self.running.insert(id, (handle.abort_handle(), key));
    }

    /// Running tasks.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    /// Hands `reply` each finished task's request and reply; returns whether
    /// there was any. When there was none, the driver's waker is registered
    /// for the next.
    pub(crate) fn poll_finished(
        &mut self,
        cx: &mut Context<'_>,
        mut reply: impl FnMut((u64, u64), Reply),
    ) -> Poll<()> {
        if self.finished.poll_take(cx, &mut self.taken).is_pending() {
            return Poll::Pending;
        }
        for (id, answer) in self.taken.drain(..) {
            // A task aborted after it finished has no entry left.
            if let Some((_, key)) = self.running.remove(&id) {
                reply(key, answer);
            }
        }
        Poll::Ready(())
    }

    /// Aborts every running task; their replies, if any come, are dropped.
    pub(crate) fn abort_all(&mut self) {
        for (_, (handle, _)) in self.running.drain() {
            handle.abort();
        }
    }
}

impl Drop for HandlerTasks {
    fn drop(&mut self) {
        self.abort_all();
        self.finished.close();
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    /// Waits for finished tasks and returns their requests and replies.
    async fn next_finished(tasks: &mut HandlerTasks) -> Vec<((u64, u64), Reply)> {
        let mut out = Vec::new();
        poll_fn(|cx| tasks.poll_finished(cx, |key, reply| out.push((key, reply)))).await;
        out
    }

    #[tokio::test]
    async fn a_finished_task_hands_over_its_request_and_reply() {
        let mut tasks = HandlerTasks::new();
        tasks.spawn((0, 7), async { Reply::ok(Bytes::from_static(b"seven")) });
        assert_eq!(tasks.len(), 1);
        let done = next_finished(&mut tasks).await;
        assert_eq!(
            done,
            vec![((0, 7), Reply::ok(Bytes::from_static(b"seven")))]
        );
        assert_eq!(tasks.len(), 0);
    }

    #[tokio::test]
    async fn replies_come_in_completion_order() {
        let mut tasks = HandlerTasks::new();
        tasks.spawn((0, 2), async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Reply::from(2u64)
        });
        tasks.spawn((0, 3), async { Reply::from(3u64) });
        let mut keys = Vec::new();
        while keys.len() < 2 {
            keys.extend(next_finished(&mut tasks).await.into_iter().map(|(k, _)| k));
        }
        assert_eq!(keys, vec![(0, 3), (0, 2)]);
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_as_an_exception() {
        fn buggy() -> Reply {
            panic!("handler bug")
        }
        let mut tasks = HandlerTasks::new();
        tasks.spawn((1, 4), async {
            tokio::task::yield_now().await;
            buggy()
        });
        let done = next_finished(&mut tasks).await;
        assert_eq!(done, vec![((1, 4), Reply::exception())]);
    }

    #[tokio::test]
    async fn aborted_and_dropped_sets_stop_their_tasks() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut tasks = HandlerTasks::new();
        for tag in 0..3 {
            let tx = tx.clone();
            tasks.spawn((0, tag), async move {
                let _alive = tx;
                std::future::pending::<Reply>().await
            });
        }
        tokio::task::yield_now().await;
        tasks.abort_all();
        assert_eq!(tasks.len(), 0);
        let mut dropped = HandlerTasks::new();
        dropped.spawn((0, 9), async move {
            let _alive = tx;
            std::future::pending::<Reply>().await
        });
        tokio::task::yield_now().await;
        drop(dropped);
        // Every sender was held by a task: the channel closes only when all
        // of them were aborted.
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("every task aborted");
        drop(tasks);
    }

    #[tokio::test]
    async fn a_reply_of_an_aborted_task_is_dropped() {
        let mut tasks = HandlerTasks::new();
        tasks.spawn((0, 5), async { Reply::from(5u64) });
        // The task finishes before the abort reaches it.
        tokio::time::sleep(Duration::from_millis(10)).await;
        tasks.abort_all();
        tasks.spawn((0, 6), async { Reply::from(6u64) });
        let mut keys = Vec::new();
        while keys.is_empty() {
            keys.extend(next_finished(&mut tasks).await.into_iter().map(|(k, _)| k));
        }
        assert_eq!(keys, vec![(0, 6)]);
    }
}
