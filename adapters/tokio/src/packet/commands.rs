//! The queue of commands from the handles (calls, batches, abandons, close)
//! to the connection's driver.
//!
//! A Tokio unbounded channel did this before, at about 180 instructions
//! a poll (its cooperative budget, its semaphore count, its block list),
//! and the driver polls it on every wakeup, most of them for other
//! reasons: in the loopback round trip, five polls and some 900
//! instructions a round trip for one command. Here an idle poll is one
//! atomic load and a waker check, and the driver takes every queued
//! command with one lock. The queue needs no bound of its own: calls and
//! batches wait for a slot of `max_pending_outbound` before they send, and
//! the other commands are one per handle operation.

use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use super::driver::Command;

/// Commands on their way to the driver.
pub(crate) struct Commands {
    queue: Mutex<Queue>,
    /// Set with each command, cleared when the driver takes them: a check
    /// without the lock.
    any: AtomicBool,
    /// The driver's waker.
    waker: AtomicWaker,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Command>,
    /// The driver is gone: nothing more is taken.
    closed: bool,
}

impl Commands {
    pub(crate) fn new() -> Self {
        Commands {
            queue: Mutex::new(Queue::default()),
            any: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// Queues `cmd` for the driver and wakes it; gives `cmd` back if the
    /// driver has finished (dropping it then drops its reply sender, which
    /// tells the waiting caller).
    pub(crate) fn send(&self, cmd: Command) -> Result<(), Command> {
        {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.closed {
                return Err(cmd);
            }
            queue.items.push_back(cmd);
            self.any.store(true, Ordering::Release);
        }
        self.waker.wake();
        Ok(())
    }

    /// Moves every queued command to the end of `into`. With none queued,
    /// registers the driver's waker for the next and returns `Pending`.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, into: &mut VecDeque<Command>) -> Poll<()> {
        if !self.any.load(Ordering::Acquire) {
            self.waker.register(cx.waker());
            // A command sent before the registration did not wake it.
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

    /// The driver is gone: later sends fail, and the commands still queued
    /// are dropped (their callers see the connection's end).
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

    fn abandon(id: u64) -> Command {
        Command::Abandon { id }
    }

    fn ids(cmds: &VecDeque<Command>) -> Vec<u64> {
        cmds.iter()
            .map(|c| match c {
                Command::Abandon { id } => *id,
                _ => unreachable!("only abandons in these tests"),
            })
            .collect()
    }

    #[tokio::test]
    async fn commands_arrive_in_order_and_all_at_once() {
        let commands = Commands::new();
        for id in 0..3 {
            assert!(commands.send(abandon(id)).is_ok());
        }
        let mut taken = VecDeque::new();
        poll_fn(|cx| commands.poll_take(cx, &mut taken)).await;
        assert_eq!(ids(&taken), vec![0, 1, 2]);
        // Appended after what the driver still holds.
        assert!(commands.send(abandon(3)).is_ok());
        poll_fn(|cx| commands.poll_take(cx, &mut taken)).await;
        assert_eq!(ids(&taken), vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn an_idle_driver_is_woken_by_a_send_from_another_task() {
        let commands = Arc::new(Commands::new());
        let sender = Arc::clone(&commands);
        let mut taken = VecDeque::new();
        let mut polls = 0;
        let waiting = poll_fn(|cx| {
            polls += 1;
            if polls == 1 {
                // Idle: nothing queued yet; the send below must wake us.
                let idle = commands.poll_take(cx, &mut taken);
                assert!(idle.is_pending());
                let sender = Arc::clone(&sender);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    assert!(sender.send(abandon(7)).is_ok());
                });
                return Poll::Pending;
            }
            commands.poll_take(cx, &mut taken)
        });
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the send");
        assert_eq!(ids(&taken), vec![7]);
    }

    #[tokio::test]
    async fn after_close_sends_fail_and_queued_replies_are_dropped() {
        let commands = Commands::new();
        let (tx, rx) = oneshot::channel();
        let queued = Command::OpenChannel {
            channel: 1,
            reply: tx,
        };
        assert!(commands.send(queued).is_ok());
        commands.close();
        // The queued command's reply sender was dropped: its caller hears.
        assert!(rx.await.is_err());
        assert!(matches!(
            commands.send(abandon(1)),
            Err(Command::Abandon { id: 1 })
        ));
        let mut taken = VecDeque::new();
        poll_fn(|cx| {
            assert!(commands.poll_take(cx, &mut taken).is_pending());
            Poll::Ready(())
        })
        .await;
        assert!(taken.is_empty());
    }
}
