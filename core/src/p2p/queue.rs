//! A bounded per-peer send queue of already-framed messages.
//!
//! socktools gives every peer an `eventlet.queue.LightQueue(100)` of encoded messages and
//! a greenlet that writes them out; a `put` on a full queue blocks the sender (and a
//! broadcast with it) until the slow peer reads. A [`SendQueue`] keeps the bound of 100
//! messages, adds a bound on bytes, and never blocks: what happens when a message does not
//! fit is an explicit [`FullPolicy`].
//!
//! Entries are [`Bytes`]: a broadcast encodes a message once and every peer's queue holds
//! a reference-counted handle to the same bytes.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;

/// Default bound on a peer's queued messages: 100, socktools' `LightQueue(100)`.
pub const DEFAULT_MAX_QUEUED_MESSAGES: usize = 100;

/// Default bound on a peer's queued bytes: 8 MiB (messages shared with other peers'
/// queues are counted in full in each).
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// What happens to a message that does not fit a peer's queue (too many messages or too
/// many bytes queued: the peer reads more slowly than it is sent to).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FullPolicy {
    /// The new message is not queued for that peer; counted
    /// ([`QueueStats::dropped_newest`]) and reported. Nothing already queued is lost.
    /// The default: a slow peer never slows the others down.
    #[default]
    DropNewest,
    /// The oldest queued messages are dropped until the new one fits; counted
    /// ([`QueueStats::dropped_oldest`]) and reported. For "latest state wins" traffic.
    DropOldest,
    /// The slow peer is disconnected: its queue is discarded and its connection closed
    /// without flushing.
    Disconnect,
    /// The message is not queued and the sender gets an error
    /// (`SendError::QueueFull` for `send_to`, a per-peer outcome for a broadcast).
    Reject,
}

/// The bounds of a peer's send queue and what to do when they are reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QueueLimits {
    /// At most this many messages queued (default [`DEFAULT_MAX_QUEUED_MESSAGES`]).
    pub max_messages: usize,
    /// At most this many bytes queued (default [`DEFAULT_MAX_QUEUED_BYTES`]). A single
    /// message longer than this is never queued ([`TooLarge`]).
    pub max_bytes: usize,
    /// What happens when a message does not fit (default [`FullPolicy::DropNewest`]).
    pub policy: FullPolicy,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_bytes: DEFAULT_MAX_QUEUED_BYTES,
            policy: FullPolicy::DropNewest,
        }
    }
}

/// What [`SendQueue::push`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
pub enum PushOutcome {
    /// Queued; nothing else changed.
    Queued,
    /// Queued after dropping the `dropped` oldest messages ([`FullPolicy::DropOldest`]).
    QueuedDroppingOldest {
        /// How many queued messages were dropped to make room.
        dropped: usize,
    },
    /// Not queued ([`FullPolicy::DropNewest`], or `DropOldest` with a zero message bound).
    DroppedNewest,
    /// Not queued and nothing changed ([`FullPolicy::Reject`] or
    /// [`FullPolicy::Disconnect`]): the queue's owner applies the policy.
    Full,
}

impl PushOutcome {
    /// Whether the message was queued.
    pub fn is_queued(self) -> bool {
        matches!(
            self,
            PushOutcome::Queued | PushOutcome::QueuedDroppingOldest { .. }
        )
    }
}

/// A single message longer than the queue's byte bound: it could never be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TooLarge {
    /// The message's length in bytes.
    pub len: usize,
    /// The queue's byte bound.
    pub max: usize,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message of {} bytes is over the send queue's limit of {} bytes",
            self.len, self.max
        )
    }
}

impl core::error::Error for TooLarge {}

/// A send queue's counters. At every moment
/// `accepted == popped + dropped_oldest + cleared + len`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QueueStats {
    /// Messages queued.
    pub accepted: u64,
    /// Messages taken out to be written.
    pub popped: u64,
    /// Bytes taken out to be written.
    pub popped_bytes: u64,
    /// New messages not queued under [`FullPolicy::DropNewest`].
    pub dropped_newest: u64,
    /// Queued messages dropped to make room under [`FullPolicy::DropOldest`].
    pub dropped_oldest: u64,
    /// Messages refused with [`PushOutcome::Full`] or [`TooLarge`].
    pub refused: u64,
    /// Queued messages discarded by [`SendQueue::clear`] (a peer that went away).
    pub cleared: u64,
}

/// A bounded FIFO of framed messages for one peer.
///
/// ```
/// use bytes::Bytes;
/// use framewire::p2p::{FullPolicy, PushOutcome, QueueLimits, SendQueue};
///
/// let mut q = SendQueue::new(QueueLimits { max_messages: 2, max_bytes: 100, policy: FullPolicy::DropOldest });
/// let m = |s: &'static str| Bytes::from_static(s.as_bytes());
/// assert_eq!(q.push(m("a"))?, PushOutcome::Queued);
/// assert_eq!(q.push(m("b"))?, PushOutcome::Queued);
/// assert_eq!(q.push(m("c"))?, PushOutcome::QueuedDroppingOldest { dropped: 1 });
/// assert_eq!(q.pop(), Some(m("b")));
/// assert_eq!(q.stats().dropped_oldest, 1);
/// # Ok::<(), framewire::p2p::TooLarge>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct SendQueue {
    items: VecDeque<Bytes>,
    bytes: usize,
    limits: QueueLimits,
    stats: QueueStats,
}

impl SendQueue {
    /// An empty queue with these limits.
    pub fn new(limits: QueueLimits) -> Self {
        SendQueue {
            items: VecDeque::new(),
            bytes: 0,
            limits,
            stats: QueueStats::default(),
        }
    }

    fn fits(&self, len: usize) -> bool {
        self.items.len() < self.limits.max_messages
            && self.bytes.saturating_add(len) <= self.limits.max_bytes
    }

    /// Queues `message` if it fits, else applies the [`FullPolicy`].
    ///
    /// Errors: [`TooLarge`] (nothing changed) if the message alone is longer than
    /// `max_bytes`, whatever the policy.
    pub fn push(&mut self, message: Bytes) -> Result<PushOutcome, TooLarge> {
        let len = message.len();
        if len > self.limits.max_bytes {
            self.stats.refused += 1;
            return Err(TooLarge {
                len,
                max: self.limits.max_bytes,
            });
        }
        if self.fits(len) {
            self.accept(message);
            return Ok(PushOutcome::Queued);
        }
        match self.limits.policy {
            FullPolicy::DropNewest => {
                self.stats.dropped_newest += 1;
                Ok(PushOutcome::DroppedNewest)
            }
            FullPolicy::DropOldest => {
                let mut dropped = 0;
                while !self.fits(len) {
                    let Some(old) = self.items.pop_front() else {
                        break;
                    };
                    self.bytes -= old.len();
                    dropped += 1;
                }
                self.stats.dropped_oldest += dropped as u64;
                if self.fits(len) {
                    self.accept(message);
                    Ok(PushOutcome::QueuedDroppingOldest { dropped })
                } else {
                    // Only with `max_messages == 0`: nothing can ever be queued.
                    self.stats.dropped_newest += 1;
                    Ok(PushOutcome::DroppedNewest)
                }
            }
            FullPolicy::Disconnect | FullPolicy::Reject => {
                self.stats.refused += 1;
                Ok(PushOutcome::Full)
            }
        }
    }

    fn accept(&mut self, message: Bytes) {
        self.bytes += message.len();
        self.items.push_back(message);
        self.stats.accepted += 1;
    }

    /// Takes the oldest message out, to be written.
    pub fn pop(&mut self) -> Option<Bytes> {
        let message = self.items.pop_front()?;
        self.bytes -= message.len();
        self.stats.popped += 1;
        self.stats.popped_bytes += message.len() as u64;
        Some(message)
    }

    /// Moves the oldest messages into `out`, at most `max_messages` of them and, past the
    /// first, no more than `max_bytes` in total (the first is always taken). Returns how
    /// many were moved. For one vectored write of several messages.
    pub fn pop_into(
        &mut self,
        out: &mut Vec<Bytes>,
        max_messages: usize,
        max_bytes: usize,
    ) -> usize {
        let mut n = 0;
        let mut total = 0usize;
        while n < max_messages {
            let Some(front) = self.items.front() else {
                break;
            };
            if n > 0 && total.saturating_add(front.len()) > max_bytes {
                break;
            }
            total = total.saturating_add(front.len());
            if let Some(message) = self.pop() {
                out.push(message);
            }
            n += 1;
        }
        n
    }

    /// Discards everything queued and returns how many messages that was.
    pub fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        self.bytes = 0;
        self.stats.cleared += n as u64;
        n
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The limits.
    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// The counters.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn msg(id: u32, len: usize) -> Bytes {
        let mut v = id.to_be_bytes().to_vec();
        v.resize(len.max(4), 0xa5);
        Bytes::from(v)
    }

    fn id(b: &Bytes) -> u32 {
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn limits(max_messages: usize, max_bytes: usize, policy: FullPolicy) -> QueueLimits {
        QueueLimits {
            max_messages,
            max_bytes,
            policy,
        }
    }

    #[test]
    fn defaults_are_socktools_100_messages_and_drop_newest() {
        let q = SendQueue::new(QueueLimits::default());
        assert_eq!(q.limits().max_messages, 100);
        assert_eq!(q.limits().max_bytes, 8 * 1024 * 1024);
        assert_eq!(q.limits().policy, FullPolicy::DropNewest);
        let mut q = q;
        for i in 0..100 {
            assert_eq!(q.push(msg(i, 8)), Ok(PushOutcome::Queued));
        }
        assert_eq!(q.push(msg(100, 8)), Ok(PushOutcome::DroppedNewest));
        assert_eq!(q.len(), 100);
        assert_eq!(id(&q.pop().unwrap()), 0);
    }

    #[test]
    fn drop_newest_keeps_what_was_queued() {
        let mut q = SendQueue::new(limits(3, 1000, FullPolicy::DropNewest));
        for i in 0..10 {
            let _ = q.push(msg(i, 10)).unwrap();
        }
        let ids: Vec<u32> = core::iter::from_fn(|| q.pop()).map(|b| id(&b)).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(q.stats().dropped_newest, 7);
    }

    #[test]
    fn drop_oldest_makes_room_by_messages_and_by_bytes() {
        let mut q = SendQueue::new(limits(3, 40, FullPolicy::DropOldest));
        for i in 0..3 {
            assert_eq!(q.push(msg(i, 10)), Ok(PushOutcome::Queued));
        }
        assert_eq!(
            q.push(msg(3, 10)),
            Ok(PushOutcome::QueuedDroppingOldest { dropped: 1 })
        );
        // 25 bytes next to 30 need two 10-byte messages gone (10 + 25 <= 40).
        assert_eq!(
            q.push(msg(4, 25)),
            Ok(PushOutcome::QueuedDroppingOldest { dropped: 2 })
        );
        assert_eq!(q.bytes(), 35);
        let ids: Vec<u32> = core::iter::from_fn(|| q.pop()).map(|b| id(&b)).collect();
        assert_eq!(ids, [3, 4]);
        assert_eq!(q.stats().dropped_oldest, 3);
    }

    #[test]
    fn reject_and_disconnect_change_nothing() {
        for policy in [FullPolicy::Reject, FullPolicy::Disconnect] {
            let mut q = SendQueue::new(limits(2, 1000, policy));
            let _ = q.push(msg(0, 10)).unwrap();
            let _ = q.push(msg(1, 10)).unwrap();
            assert_eq!(q.push(msg(2, 10)), Ok(PushOutcome::Full));
            assert_eq!((q.len(), q.bytes()), (2, 20));
            assert_eq!(q.stats().refused, 1);
        }
    }

    #[test]
    fn a_message_over_the_byte_bound_is_too_large_whatever_the_policy() {
        for policy in [
            FullPolicy::DropNewest,
            FullPolicy::DropOldest,
            FullPolicy::Disconnect,
            FullPolicy::Reject,
        ] {
            let mut q = SendQueue::new(limits(5, 16, policy));
            let _ = q.push(msg(0, 8)).unwrap();
            assert_eq!(q.push(msg(1, 17)), Err(TooLarge { len: 17, max: 16 }));
            assert_eq!(q.len(), 1);
            assert_eq!(q.push(msg(2, 8)), Ok(PushOutcome::Queued));
        }
    }

    #[test]
    fn zero_message_bound_queues_nothing() {
        let mut q = SendQueue::new(limits(0, 100, FullPolicy::DropOldest));
        assert_eq!(q.push(msg(0, 4)), Ok(PushOutcome::DroppedNewest));
        assert!(q.is_empty());
    }

    #[test]
    fn pop_into_batches_by_count_and_bytes() {
        let mut q = SendQueue::new(limits(10, 1000, FullPolicy::DropNewest));
        for i in 0..6 {
            let _ = q.push(msg(i, 100)).unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(q.pop_into(&mut out, 4, 250), 2);
        assert_eq!(q.pop_into(&mut out, 1, 10), 1, "the first is always taken");
        assert_eq!(q.pop_into(&mut out, 10, 10_000), 3);
        assert_eq!(out.iter().map(id).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
        assert_eq!(q.pop_into(&mut out, 10, 10_000), 0);
        assert_eq!(q.stats().popped_bytes, 600);
    }

    #[test]
    fn shared_bytes_are_not_copied() {
        let mut a = SendQueue::new(QueueLimits::default());
        let mut b = SendQueue::new(QueueLimits::default());
        let m = Bytes::from(std::vec![7u8; 1000]);
        let _ = a.push(m.clone()).unwrap();
        let _ = b.push(m.clone()).unwrap();
        assert_eq!(a.pop().unwrap().as_ptr(), m.as_ptr());
        assert_eq!(b.pop().unwrap().as_ptr(), m.as_ptr());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(usize),
        Pop,
        PopInto(usize, usize),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0usize..40).prop_map(Op::Push),
            3 => Just(Op::Pop),
            1 => (1usize..5, 0usize..100).prop_map(|(n, b)| Op::PopInto(n, b)),
            1 => Just(Op::Clear),
        ]
    }

    fn policy() -> impl Strategy<Value = FullPolicy> {
        prop_oneof![
            Just(FullPolicy::DropNewest),
            Just(FullPolicy::DropOldest),
            Just(FullPolicy::Disconnect),
            Just(FullPolicy::Reject),
        ]
    }

    proptest! {
        /// Under any sequence of operations: the bounds hold, the byte count is exact,
        /// the counters add up, and messages come out in the order they went in
        /// (a subsequence of the accepted ones, with exactly the dropped ones missing).
        #[test]
        fn bounds_counts_and_order_hold(
            max_messages in 0usize..8,
            max_bytes in 0usize..120,
            policy in policy(),
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let mut q = SendQueue::new(limits(max_messages, max_bytes, policy));
            // Model: ids of the messages that should be queued, in order.
            let mut model = std::collections::VecDeque::<(u32, usize)>::new();
            let mut next = 0u32;
            let mut last_out: Option<u32> = None;
            for op in ops {
                match op {
                    Op::Push(len) => {
                        let len = len.max(4);
                        let before = q.len();
                        match q.push(msg(next, len)) {
                            Err(TooLarge { len: l, max }) => {
                                prop_assert_eq!((l, max), (len, max_bytes));
                                prop_assert!(len > max_bytes);
                                prop_assert_eq!(q.len(), before);
                            }
                            Ok(PushOutcome::Queued) => model.push_back((next, len)),
                            Ok(PushOutcome::QueuedDroppingOldest { dropped }) => {
                                prop_assert_eq!(policy, FullPolicy::DropOldest);
                                prop_assert!(dropped >= 1);
                                for _ in 0..dropped {
                                    model.pop_front();
                                }
                                model.push_back((next, len));
                            }
                            Ok(PushOutcome::DroppedNewest) => {
                                prop_assert!(matches!(policy, FullPolicy::DropNewest | FullPolicy::DropOldest));
                                prop_assert_eq!(q.len(), before);
                            }
                            Ok(PushOutcome::Full) => {
                                prop_assert!(matches!(policy, FullPolicy::Disconnect | FullPolicy::Reject));
                                prop_assert_eq!(q.len(), before);
                            }
                        }
                        next += 1;
                    }
                    Op::Pop => {
                        let got = q.pop().map(|b| (id(&b), b.len()));
                        prop_assert_eq!(got, model.pop_front());
                        if let Some((i, _)) = got {
                            prop_assert!(last_out.is_none_or(|l| i > l));
                            last_out = Some(i);
                        }
                    }
                    Op::PopInto(n, b) => {
                        let mut out = Vec::new();
                        let k = q.pop_into(&mut out, n, b);
                        prop_assert_eq!(k, out.len());
                        prop_assert!(k <= n);
                        if k > 1 {
                            prop_assert!(out.iter().map(Bytes::len).sum::<usize>() <= b);
                        }
                        for m in &out {
                            prop_assert_eq!(Some((id(m), m.len())), model.pop_front());
                            prop_assert!(last_out.is_none_or(|l| id(m) > l));
                            last_out = Some(id(m));
                        }
                    }
                    Op::Clear => {
                        prop_assert_eq!(q.clear(), model.len());
                        model.clear();
                    }
                }
                prop_assert!(q.len() <= max_messages);
                prop_assert!(q.bytes() <= max_bytes);
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.bytes(), model.iter().map(|m| m.1).sum::<usize>());
                let s = q.stats();
                prop_assert_eq!(s.accepted, s.popped + s.dropped_oldest + s.cleared + q.len() as u64);
            }
        }
    }
}
