//! A mailbox: items from any task to one receiving task (the connection's
//! driver), taken all at once.
//!
//! The driver receives through two of them: commands from the handles
//! (calls, batches, abandons, close) and the replies of finished handler
//! tasks. It polls both on every wakeup, most of them for other reasons.
//! A Tokio unbounded channel, which carried the commands before, cost
//! about 180 instructions a poll (its cooperative budget, its semaphore,
//! its block list): in the loopback round trip, five polls and some 900
//! instructions for one command. Here an idle poll is one atomic load and
//! a waker check, and the driver takes everything queued with one lock.
//!
//! A mailbox has no bound of its own; its senders are bounded elsewhere.
//! Calls and batches wait for a slot of `max_pending_outbound` before they
//! send, the other commands are one per handle operation, and replies one
//! per running handler.

use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// Items on their way to one receiver.
pub(crate) struct Mailbox<T> {
    queue: Mutex<Queue<T>>,
    /// Set with each item, cleared when the receiver takes them: a check
    /// without the lock.
    any: AtomicBool,
    /// The receiver's waker.
    waker: AtomicWaker,
}

struct Queue<T> {
    items: VecDeque<T>,
    /// The receiver is gone: nothing more is taken.
    closed: bool,
}

impl<T> Mailbox<T> {
    pub(crate) fn new() -> Self {
        Mailbox {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                closed: false,
            }),
            any: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// Queues `item` and wakes the receiver; gives `item` back if the
    /// mailbox is closed (dropping it then drops whatever reply sender it
    /// carries, which tells the waiting caller).
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.closed {
                return Err(item);
            }
            queue.items.push_back(item);
            self.any.store(true, Ordering::Release);
        }
        self.waker.wake();
        Ok(())
    }

    /// Moves every queued item to the end of `into`. With none queued,
    /// registers the receiver's waker for the next and returns `Pending`.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, into: &mut VecDeque<T>) -> Poll<()> {
        if !self.any.load(Ordering::Acquire) {
            self.waker.register(cx.waker());
            // An item sent before the registration did not wake it.
            if !self.any.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        self.any.store(false, Ordering::Relaxed);
        if into.is_empty() {
            mem::swap(&mut queue.items, into);
        } else {
            into.append(&mut queue.items);
        }
        Poll::Ready(())
    }

    /// The receiver is gone: later sends fail, and the items still queued
    /// are dropped.
    pub(crate) fn close(&self) {
        let left = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.closed = true;
            self.any.store(false, Ordering::Relaxed);
            mem::take(&mut queue.items)
        };
        // Dropped outside the lock: dropping a reply sender wakes its caller.
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    fn ids(items: &VecDeque<u64>) -> Vec<u64> {
        items.iter().copied().collect()
    }

    #[tokio::test]
    async fn items_arrive_in_order_and_all_at_once() {
        let mailbox = Mailbox::new();
        for id in 0..3 {
            assert!(mailbox.send(id).is_ok());
        }
        let mut taken = VecDeque::new();
        poll_fn(|cx| mailbox.poll_take(cx, &mut taken)).await;
        assert_eq!(ids(&taken), vec![0, 1, 2]);
        // Appended after what the receiver still holds.
        assert!(mailbox.send(3).is_ok());
        poll_fn(|cx| mailbox.poll_take(cx, &mut taken)).await;
        assert_eq!(ids(&taken), vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn an_idle_receiver_is_woken_by_a_send_from_another_task() {
        let mailbox = Arc::new(Mailbox::new());
        let sender = Arc::clone(&mailbox);
        let mut taken = VecDeque::new();
        let mut polls = 0;
        let waiting = poll_fn(|cx| {
            polls += 1;
            if polls == 1 {
                // Idle: nothing queued yet; the send below must wake us.
                let idle = mailbox.poll_take(cx, &mut taken);
                assert!(idle.is_pending());
                let sender = Arc::clone(&sender);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    assert!(sender.send(7).is_ok());
                });
                return Poll::Pending;
            }
            mailbox.poll_take(cx, &mut taken)
        });
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the send");
        assert_eq!(ids(&taken), vec![7]);
    }

    #[tokio::test]
    async fn after_close_sends_fail_and_queued_replies_are_dropped() {
        let mailbox = Mailbox::new();
        let (tx, rx) = oneshot::channel::<()>();
        assert!(mailbox.send(tx).is_ok());
        mailbox.close();
        // The queued reply sender was dropped: its caller hears.
        assert!(rx.await.is_err());
        let (tx, _rx) = oneshot::channel::<()>();
        assert!(mailbox.send(tx).is_err(), "a closed mailbox gives it back");
        let mut taken = VecDeque::new();
        poll_fn(|cx| {
            assert!(mailbox.poll_take(cx, &mut taken).is_pending());
            Poll::Ready(())
        })
        .await;
        assert!(taken.is_empty());
    }
}
