//! The outbound byte queue of a packet connection.
//!
//! Packets are queued as chunks: headers and small payloads are copied into
//! a growing contiguous buffer (so many small packets are one slice, ready
//! for one `write`), and payloads over the copy threshold are kept as their
//! own `Bytes` chunk without copying (ready for a vectored write).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::iter::FusedIterator;

use bytes::Bytes;

use super::wire::{Packet, MAX_HEADER_LEN, SMALL_HEADER_LEN};

#[derive(Debug)]
enum Chunk {
    Copied(Vec<u8>),
    Shared(Bytes),
}

impl Chunk {
    fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Copied(v) => v,
            Chunk::Shared(b) => b,
        }
    }
}

/// Invariants: the front chunk is `chunks[0]`, or `tail` when `chunks` is
/// empty; `head < ` its length when the queue is not empty (an exhausted
/// front chunk is dropped, an exhausted `tail` emptied, at once); no chunk
/// in `chunks` is empty; `len` is the sum of the chunks' and `tail`'s
/// lengths minus `head`.
#[derive(Debug, Default)]
pub(crate) struct TransmitQueue {
    /// Chunks sent before `tail`: copy buffers closed by a shared chunk
    /// after them, and the shared chunks.
    chunks: VecDeque<Chunk>,
    /// The open copy buffer at the back of the queue, where headers and
    /// short payloads are appended: kept out of `chunks` so that a packet
    /// is two appends to a `Vec`, with no look-up of the back chunk.
    tail: Vec<u8>,
    /// Bytes of the front chunk already handed to the transport.
    head: usize,
    len: usize,
    queued_total: u64,
    sent_total: u64,
    /// An emptied copy buffer kept for reuse.
    spare: Vec<u8>,
    /// Where [`stage`](Self::stage) encodes a header: kept, not zeroed and
    /// moved about per packet.
    scratch: HeaderScratch,
}

/// The header buffer of [`TransmitQueue::stage`].
#[derive(Debug)]
struct HeaderScratch([u8; MAX_HEADER_LEN]);

impl Default for HeaderScratch {
    fn default() -> Self {
        HeaderScratch([0; MAX_HEADER_LEN])
    }
}

/// A packet whose header [`TransmitQueue::stage`] encoded and which is not
/// queued yet: its length can be checked first.
#[derive(Clone, Debug)]
pub(crate) struct Staged {
    /// Where the header is in the scratch buffer.
    header: core::ops::Range<usize>,
    /// The whole packet's length ([`Packet::encoded_len`]).
    pub(crate) len: usize,
}

impl TransmitQueue {
    /// Bytes queued and not yet sent.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes ever queued.
    pub(crate) fn queued_total(&self) -> u64 {
        self.queued_total
    }

    /// Bytes ever sent.
    pub(crate) fn sent_total(&self) -> u64 {
        self.sent_total
    }

    /// Encodes `packet`'s header into the scratch buffer, for
    /// [`push_staged`](Self::push_staged) or
    /// [`push_staged_shared`](Self::push_staged_shared) (with no other
    /// packet staged in between) once its length has been checked.
    #[inline]
    pub(crate) fn stage(&mut self, packet: &Packet<'_>) -> Staged {
        let header = packet.encode_header_at(&mut self.scratch.0);
        let len = header.len().saturating_add(packet.payload().len());
        debug_assert_eq!(len, packet.encoded_len());
        Staged { header, len }
    }

    /// Queues the staged header and `payload` (the staged packet's),
    /// copied into the open copy buffer.
    #[inline]
    pub(crate) fn push_staged(&mut self, staged: &Staged, payload: &[u8]) {
        self.reserve_tail(staged.len);
        self.tail
            .extend_from_slice(&self.scratch.0[staged.header.clone()]);
        self.tail.extend_from_slice(payload);
    }

    /// Queues the first `n` bytes of `header` (a small header written by
    /// the caller) and `payload`, copied into the open copy buffer.
    // Always inlined into its two callers (`submit`, `Answerer::respond`),
    // which the compiler would otherwise have call it.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn push_small(&mut self, header: [u8; SMALL_HEADER_LEN], n: usize, payload: &[u8]) {
        debug_assert!(n <= SMALL_HEADER_LEN);
        // Room for the whole array too: it is one fixed-size store (no
        // `memcpy` call for a few bytes); the bytes past the header are
        // then cut off again.
        self.reserve_tail(n + payload.len());
        self.tail.reserve(SMALL_HEADER_LEN + payload.len());
        let at = self.tail.len();
        self.tail.extend_from_slice(&header);
        self.tail.truncate(at + n);
        self.tail.extend_from_slice(payload);
    }

    /// Queues the staged header copied and its long `payload` as its own
    /// chunk, without copying it.
    pub(crate) fn push_staged_shared(&mut self, staged: &Staged, payload: Bytes) {
        let header = staged.header.clone();
        self.reserve_tail(header.len());
        self.tail.extend_from_slice(&self.scratch.0[header]);
        self.push_shared(payload);
    }

    /// Reserves room for `n` more bytes in the open copy buffer (`tail`),
    /// counted as queued: the caller appends them.
    #[inline]
    fn reserve_tail(&mut self, n: usize) {
        self.len += n;
        self.queued_total += n as u64;
        // Reclaim the sent part of the tail, when it is the front chunk,
        // before growing it.
        if self.head != 0 && self.chunks.is_empty() && self.head >= self.tail.len() / 2 {
            self.tail.drain(..self.head);
            self.head = 0;
        }
        self.tail.reserve(n);
    }

    /// Queues `bytes` as its own chunk, without copying.
    pub(crate) fn push_shared(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        self.queued_total += bytes.len() as u64;
        if !self.tail.is_empty() {
            // The tail goes before it: close it, and open the spare one.
            let spare = core::mem::take(&mut self.spare);
            let closed = core::mem::replace(&mut self.tail, spare);
            self.chunks.push_back(Chunk::Copied(closed));
        }
        self.chunks.push_back(Chunk::Shared(bytes));
    }

    /// The first unsent contiguous slice.
    pub(crate) fn front(&self) -> Option<&[u8]> {
        match self.chunks.front() {
            Some(c) => Some(&c.as_slice()[self.head..]),
            None if self.tail.is_empty() => None,
            None => Some(&self.tail[self.head..]),
        }
    }

    /// Every unsent slice, in order.
    pub(crate) fn chunks(&self) -> TransmitChunks<'_> {
        TransmitChunks {
            inner: self.chunks.iter(),
            tail: (!self.tail.is_empty()).then_some(&self.tail[..]),
            head: self.head,
        }
    }

    /// Marks `n` bytes as sent (clamped to what is queued); returns how many.
    pub(crate) fn advance(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        let mut left = n;
        while left > 0 {
            let Some(front) = self.chunks.front() else {
                // The tail is the front, and holds at least `left` bytes.
                if left < self.tail.len() - self.head {
                    self.head += left;
                } else {
                    self.tail.clear();
                    self.head = 0;
                }
                break;
            };
            let remaining = front.as_slice().len() - self.head;
            if left < remaining {
                self.head += left;
                break;
            }
            left -= remaining;
            self.head = 0;
            if let Some(Chunk::Copied(mut v)) = self.chunks.pop_front() {
                if v.capacity() > self.spare.capacity() {
                    v.clear();
                    self.spare = v;
                }
            }
        }
        self.len -= n;
        self.sent_total += n as u64;
        n
    }

    /// Drops everything queued (the transport is gone).
    pub(crate) fn discard(&mut self) {
        self.chunks.clear();
        self.tail.clear();
        self.head = 0;
        self.len = 0;
    }

    /// Copies as much as fits into `out` and marks it sent.
    pub(crate) fn fill(&mut self, out: &mut [u8]) -> usize {
        let mut pos = 0;
        for chunk in self.chunks() {
            let n = chunk.len().min(out.len() - pos);
            out[pos..pos + n].copy_from_slice(&chunk[..n]);
            pos += n;
            if pos == out.len() {
                break;
            }
        }
        self.advance(pos)
    }
}

/// The queued outbound bytes as slices, in order, from
/// [`Connection::transmit_chunks`](super::Connection::transmit_chunks).
/// Suitable for a vectored write.
#[derive(Clone, Debug)]
pub struct TransmitChunks<'a> {
    inner: alloc::collections::vec_deque::Iter<'a, Chunk>,
    /// The open copy buffer, last (`None` if empty or already given).
    tail: Option<&'a [u8]>,
    /// Bytes of the first slice already sent.
    head: usize,
}

impl<'a> Iterator for TransmitChunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let chunk = match self.inner.next() {
            Some(c) => c.as_slice(),
            None => self.tail.take()?,
        };
        let head = core::mem::take(&mut self.head);
        Some(&chunk[head..])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.inner.len() + usize::from(self.tail.is_some());
        (n, Some(n))
    }
}

impl ExactSizeIterator for TransmitChunks<'_> {}
impl FusedIterator for TransmitChunks<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    impl TransmitQueue {
        /// Copies `bytes` to the end of the queue (as a packet's header and
        /// payload are).
        fn push_copied(&mut self, bytes: &[u8]) {
            self.push_copied_parts(&[bytes]);
        }

        fn push_copied_parts(&mut self, parts: &[&[u8]]) {
            let n: usize = parts.iter().map(|p| p.len()).sum();
            if n > 0 {
                self.reserve_tail(n);
                for part in parts {
                    self.tail.extend_from_slice(part);
                }
            }
        }

        fn push_packet(&mut self, header: &[u8], payload: &[u8]) {
            self.push_copied_parts(&[header, payload]);
        }
    }

    fn drain(q: &TransmitQueue) -> Vec<u8> {
        q.chunks().flatten().copied().collect()
    }

    #[test]
    fn small_pushes_coalesce_large_ones_do_not() {
        let mut q = TransmitQueue::default();
        q.push_copied(b"ab");
        q.push_copied(b"cd");
        q.push_shared(Bytes::from_static(b"LARGE"));
        q.push_copied(b"ef");
        assert_eq!(q.chunks().len(), 3);
        assert_eq!(q.front(), Some(&b"abcd"[..]));
        assert_eq!(drain(&q), b"abcdLARGEef");
        assert_eq!(q.len(), 11);
    }

    #[test]
    fn parts_are_copied_in_order_and_empty_parts_add_nothing() {
        let mut q = TransmitQueue::default();
        q.push_copied_parts(&[b"", b""]);
        assert_eq!((q.chunks().len(), q.len()), (0, 0));
        q.push_copied_parts(&[b"ab", b"", b"cd"]);
        q.push_shared(Bytes::from_static(b"LARGE"));
        q.push_copied_parts(&[b"e", b"f"]);
        assert_eq!(q.chunks().len(), 3);
        assert_eq!(drain(&q), b"abcdLARGEef");
        assert_eq!((q.len(), q.queued_total()), (11, 11));
    }

    #[test]
    fn advance_across_chunks_and_clamp() {
        let mut q = TransmitQueue::default();
        q.push_copied(b"abc");
        q.push_shared(Bytes::from_static(b"DEF"));
        q.push_copied(b"gh");
        assert_eq!(q.advance(2), 2);
        assert_eq!(q.front(), Some(&b"c"[..]));
        assert_eq!(q.advance(2), 2);
        assert_eq!(q.front(), Some(&b"EF"[..]));
        assert_eq!(drain(&q), b"EFgh");
        assert_eq!(q.advance(100), 4);
        assert_eq!(q.front(), None);
        assert_eq!(q.len(), 0);
        assert_eq!((q.queued_total(), q.sent_total()), (8, 8));
        // The emptied buffer is reused.
        q.push_copied(b"x");
        assert_eq!(drain(&q), b"x");
    }

    #[test]
    fn lone_front_buffer_is_compacted() {
        let mut q = TransmitQueue::default();
        q.push_copied(&[1; 100]);
        q.advance(60);
        q.push_copied(&[2; 10]);
        let mut expect = vec![1; 40];
        expect.extend_from_slice(&[2; 10]);
        assert_eq!(drain(&q), expect);
        assert_eq!(q.len(), 50);
    }

    #[test]
    fn tail_closed_by_a_shared_chunk_keeps_its_sent_part_skipped() {
        let mut q = TransmitQueue::default();
        q.push_copied(b"abcd");
        assert_eq!(q.advance(1), 1);
        q.push_shared(Bytes::from_static(b"EF"));
        q.push_copied(b"gh");
        assert_eq!(q.chunks().len(), 3);
        assert_eq!(q.front(), Some(&b"bcd"[..]));
        assert_eq!(drain(&q), b"bcdEFgh");
        assert_eq!(q.advance(5), 5);
        assert_eq!(q.front(), Some(&b"gh"[..]));
        assert_eq!(q.advance(2), 2);
        assert_eq!((q.front(), q.chunks().len(), q.len()), (None, 0, 0));
        // The emptied tail is reused, not reallocated.
        q.push_copied(b"i");
        assert_eq!(drain(&q), b"i");
        q.discard();
        assert_eq!((q.front(), q.len()), (None, 0));
    }

    /// Random pushes and advances against a plain byte vector.
    #[test]
    fn random_operations_match_a_byte_vector() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut q = TransmitQueue::default();
        let mut model: Vec<u8> = Vec::new();
        let mut counter = 0u8;
        for _ in 0..20_000 {
            let mut bytes = |n: u64| -> Vec<u8> {
                (0..n)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect()
            };
            match next(5) {
                0 => {
                    let b = bytes(next(6));
                    q.push_copied(&b);
                    model.extend_from_slice(&b);
                }
                1 => {
                    let (h, p) = (bytes(1 + next(4)), bytes(next(20)));
                    q.push_packet(&h, &p);
                    model.extend_from_slice(&h);
                    model.extend_from_slice(&p);
                }
                2 => {
                    let b = bytes(next(10));
                    q.push_shared(Bytes::from(b.clone()));
                    model.extend_from_slice(&b);
                }
                3 => {
                    let n = usize::try_from(next(40)).unwrap();
                    let done = q.advance(n);
                    assert_eq!(done, n.min(model.len()));
                    model.drain(..done);
                }
                _ => {
                    let mut out = vec![0u8; usize::try_from(next(30)).unwrap()];
                    let n = q.fill(&mut out);
                    assert_eq!(&out[..n], &model[..n]);
                    model.drain(..n);
                }
            }
            assert_eq!(q.len(), model.len());
            assert_eq!(drain(&q), model);
            assert!(q.chunks().all(|c| !c.is_empty()), "an empty slice");
            assert_eq!(q.front().is_none(), model.is_empty());
        }
    }

    #[test]
    fn fill_copies_and_advances() {
        let mut q = TransmitQueue::default();
        q.push_copied(b"abc");
        q.push_shared(Bytes::from_static(b"DEFG"));
        let mut out = [0u8; 5];
        assert_eq!(q.fill(&mut out), 5);
        assert_eq!(&out, b"abcDE");
        assert_eq!(q.fill(&mut out), 2);
        assert_eq!(&out[..2], b"FG");
        assert_eq!(q.fill(&mut out), 0);
    }
}
