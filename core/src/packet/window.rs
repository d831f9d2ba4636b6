//! A map keyed by tag, O(1) for tags that count up: the alloc
//! [`Connection`](super::Connection) keeps our requests waiting for
//! responses and the peer's requests in flight in one per channel, and a
//! driver can keep its own per-request state (who waits for a response) in
//! one the same way.
//!
//! Tags nearly always count up (ours always do; every original client's do),
//! so most entries live in a window of slots indexed by `tag - base`: insert,
//! look-up and removal are O(1), with no hashing and so nothing a peer can
//! flood. The window is at most `cap` slots long; tags that do not fit (far
//! ahead, behind the window, or evicted from its front because an old entry
//! held it back while newer tags moved on) go to a `BTreeMap` spill, O(log n)
//! as before. Each tag is in at most one of the two. The slots are a ring
//! whose length is a power of two, so finding a tag's slot is an addition
//! and a mask. Memory: `cap` slots rounded up to a power of two at most
//! (grown by doubling as the window widens) plus one spill entry per live
//! entry outside the window; the live entries are bounded by the
//! connection's limits.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Entries of type `V` keyed by a `u64` tag: a window of slots indexed by
/// `tag - base` (O(1), no hashing) for tags that count up, and an ordered
/// spill for the rest (O(log n)). The window never exceeds the length given
/// to [`new`](Self::new); a tag that would stretch it further moves the
/// window on and the oldest entries to the spill.
///
/// ```
/// use framewire::packet::TagWindow;
/// let mut w = TagWindow::new(64);
/// for tag in 2..10 {
///     w.insert(tag, tag * 10);
/// }
/// assert_eq!(w.remove(5), Some(50));
/// assert_eq!(w.get(6), Some(&60));
/// assert_eq!(w.insert(u64::MAX, 1), None); // far away: spilled, still found
/// assert_eq!(w.len(), 8);
/// ```
#[derive(Debug)]
pub struct TagWindow<V> {
    /// The tag of the window's first slot.
    base: u64,
    /// The slots, a ring: the entry of tag `base + i` (for `i < span`) is
    /// at `ring[(head + i) & (ring.len() - 1)]`. Its length is 0 or a power
    /// of two, at most `cap` rounded up to one; every slot outside the
    /// window is `None`.
    ring: Vec<Option<V>>,
    /// Where the window's first slot is in `ring`.
    head: usize,
    /// Slots in the window: 0, or the first one holds an entry.
    span: usize,
    /// Entries outside the window.
    spill: BTreeMap<u64, V>,
    /// Live entries (window and spill).
    len: usize,
    /// The longest the window may grow.
    cap: usize,
}

impl<V> TagWindow<V> {
    /// An empty map whose window holds at most `cap` slots (at least 1).
    /// Nothing is allocated until an entry is added; the slots then grow
    /// by doubling, to at most `cap` rounded up to a power of two.
    pub fn new(cap: usize) -> Self {
        TagWindow {
            base: 0,
            ring: Vec::new(),
            head: 0,
            span: 0,
            spill: BTreeMap::new(),
            len: 0,
            cap: cap.max(1),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where in `ring` the slot of window index `i` is.
    #[inline]
    fn slot(&self, i: usize) -> usize {
        (self.head + i) & (self.ring.len().wrapping_sub(1))
    }

    /// Where in `ring` the slot of `tag` is, if the window covers it.
    #[inline]
    fn index(&self, tag: u64) -> Option<usize> {
        let off = usize::try_from(tag.checked_sub(self.base)?).ok()?;
        (off < self.span).then(|| self.slot(off))
    }

    /// The entry of `tag`.
    pub fn get(&self, tag: u64) -> Option<&V> {
        if let Some(i) = self.index(tag) {
            if let Some(v) = &self.ring[i] {
                return Some(v);
            }
        }
        if self.spill.is_empty() {
            None
        } else {
            self.spill.get(&tag)
        }
    }

    /// Whether `tag` has an entry.
    pub fn contains(&self, tag: u64) -> bool {
        self.get(tag).is_some()
    }

    /// The entry of `tag`, mutably.
    pub fn get_mut(&mut self, tag: u64) -> Option<&mut V> {
        if let Some(i) = self.index(tag) {
            if self.ring[i].is_some() {
                return self.ring[i].as_mut();
            }
        }
        if self.spill.is_empty() {
            None
        } else {
            self.spill.get_mut(&tag)
        }
    }

    /// Sets the entry of `tag`; returns the one it replaces.
    pub fn insert(&mut self, tag: u64, value: V) -> Option<V> {
        // Counting up: the tag right after the window, which no entry can
        // hold when nothing is spilled.
        if self.spill.is_empty() {
            if let Some(at) = self.next_slot(tag) {
                self.push_at(at, value);
                return None;
            }
        }
        if let Some(old) = self.get_mut(tag) {
            return Some(core::mem::replace(old, value));
        }
        self.add(tag, value);
        None
    }

    /// Adds the entry of `tag`, which must have none (unchecked: for
    /// callers that know, such as a connection adding a fresh tag).
    // Always inlined: the callers (`submit`) are large enough that the
    // compiler would call it, for a check and three stores.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn add(&mut self, tag: u64, value: V) {
        debug_assert!(!self.contains(tag), "tag {tag} added twice");
        if let Some(at) = self.next_slot(tag) {
            self.push_at(at, value);
        } else {
            self.add_elsewhere(tag, value);
        }
    }

    /// [`add`](Self::add) for a tag that is not the one right after the
    /// window (or when the window cannot grow in place): kept out of line,
    /// so that counting up costs only the check.
    #[inline(never)]
    fn add_elsewhere(&mut self, tag: u64, value: V) {
        self.len += 1;
        if self.span == 0 {
            self.base = tag;
            self.extend_to(1);
            let at = self.slot(0);
            self.ring[at] = Some(value);
            return;
        }
        let Some(mut off) = tag
            .checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok())
        else {
            // Behind the window (or beyond usize on a 16/32-bit target).
            self.spill.insert(tag, value);
            return;
        };
        if off >= self.cap {
            // Move the window forward: the entries that fall out of its
            // front go to the spill.
            let shift = off - self.cap + 1;
            self.evict(shift.min(self.span));
            if self.span == 0 {
                self.base = tag;
                off = 0;
            } else {
                off = usize::try_from(tag - self.base).unwrap_or(usize::MAX);
            }
        }
        if off >= self.span {
            self.extend_to(off + 1);
        }
        let at = self.slot(off);
        self.ring[at] = Some(value);
    }

    /// Where `tag` goes in `ring` if it is the one right after a non-empty
    /// window and the window may grow by one slot without growing the ring
    /// or passing `cap`.
    #[inline]
    fn next_slot(&self, tag: u64) -> Option<usize> {
        let next = self.span != 0
            && tag.checked_sub(self.base) == Some(self.span as u64)
            && self.span < self.ring.len().min(self.cap);
        next.then(|| self.slot(self.span))
    }

    /// Adds `value` in the slot `at` (from `next_slot`) at the window's end.
    #[inline]
    fn push_at(&mut self, at: usize, value: V) {
        self.ring[at] = Some(value);
        self.span += 1;
        self.len += 1;
    }

    /// Makes the window `span` slots long (`span <= cap`; the new slots
    /// are empty), growing the ring if it is too short.
    #[inline]
    fn extend_to(&mut self, span: usize) {
        if span > self.ring.len() {
            self.grow(span);
        }
        self.span = span;
    }

    /// Doubles the ring until it holds `min` slots, the window moved to
    /// its start.
    #[cold]
    fn grow(&mut self, min: usize) {
        let mut size = if self.ring.is_empty() {
            16.min(self.cap.next_power_of_two())
        } else {
            self.ring.len() * 2
        };
        while size < min {
            size *= 2;
        }
        let mut ring: Vec<Option<V>> = Vec::with_capacity(size);
        for i in 0..self.span {
            let at = self.slot(i);
            ring.push(self.ring[at].take());
        }
        ring.resize_with(size, || None);
        self.ring = ring;
        self.head = 0;
    }

    /// Moves the first `n` (at most `span`) slots' entries to the spill,
    /// then drops leading empty slots.
    fn evict(&mut self, n: usize) {
        for _ in 0..n {
            let at = self.head;
            if let Some(v) = self.ring[at].take() {
                self.spill.insert(self.base, v);
            }
            self.pop_front_slot();
        }
        self.trim();
    }

    /// Drops the window's first slot (empty).
    #[inline]
    fn pop_front_slot(&mut self) {
        self.head = self.slot(1);
        self.base = self.base.wrapping_add(1);
        self.span -= 1;
    }

    /// Drops leading empty slots.
    #[inline]
    fn trim(&mut self) {
        while self.span > 0 && self.ring[self.head].is_none() {
            self.pop_front_slot();
        }
    }

    /// Removes and returns the entry of `tag`.
    // The window's first tag (responses in order) is removed inline, the
    // rest out of line.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub fn remove(&mut self, tag: u64) -> Option<V> {
        if self.span != 0 && tag == self.base {
            if let Some(v) = self.ring[self.head].take() {
                self.len -= 1;
                self.trim();
                return Some(v);
            }
        }
        self.remove_elsewhere(tag)
    }

    /// [`remove`](Self::remove) for any tag but an occupied first slot's.
    #[inline(never)]
    fn remove_elsewhere(&mut self, tag: u64) -> Option<V> {
        if let Some(i) = self.index(tag) {
            if let Some(v) = self.ring[i].take() {
                self.len -= 1;
                if i == self.head {
                    self.trim();
                }
                return Some(v);
            }
        }
        if self.spill.is_empty() {
            return None;
        }
        let v = self.spill.remove(&tag)?;
        self.len -= 1;
        Some(v)
    }

    /// Removes every entry; returns them in tag order.
    pub fn drain_sorted(&mut self) -> Vec<(u64, V)> {
        let mut out: Vec<(u64, V)> = core::mem::take(&mut self.spill).into_iter().collect();
        let spilled = out.len();
        for i in 0..self.span {
            let at = self.slot(i);
            if let Some(v) = self.ring[at].take() {
                out.push((self.base.wrapping_add(i as u64), v));
            }
        }
        self.span = 0;
        // Spilled tags may sit anywhere relative to the window.
        if spilled > 0 {
            out.sort_unstable_by_key(|&(t, _)| t);
        }
        self.len = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    #[test]
    fn counting_up_stays_in_the_window() {
        let mut w = TagWindow::new(8);
        for t in 2..1000u64 {
            w.insert(t, t);
            if t >= 5 {
                assert_eq!(w.remove(t - 3), Some(t - 3));
            }
            assert!(w.span <= 4 && w.spill.is_empty());
        }
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn a_straggler_spills_and_the_window_moves_on() {
        let mut w = TagWindow::new(4);
        w.insert(0, 'a');
        for t in 1..20u64 {
            w.insert(t, 'b');
            assert_eq!(w.remove(t), Some('b'));
        }
        assert!(w.span <= 4);
        assert_eq!(w.get(0), Some(&'a'));
        assert_eq!(w.remove(0), Some('a'));
        assert_eq!(w.len(), 0);
        assert!(w.spill.is_empty());
    }

    #[test]
    fn far_and_backward_tags() {
        let mut w = TagWindow::new(4);
        w.insert(10, 1);
        w.insert(u64::MAX, 2);
        w.insert(3, 3);
        w.insert(0, 4);
        assert_eq!(
            w.drain_sorted(),
            [(0, 4), (3, 3), (10, 1), (u64::MAX, 2)].to_vec()
        );
        assert_eq!(w.len(), 0);
        assert_eq!(w.get(10), None);
    }

    #[test]
    fn the_window_does_not_wrap_past_the_largest_tag() {
        // Tag 0 is not "the one after u64::MAX": it goes behind the window.
        let mut w = TagWindow::new(2);
        w.insert(u64::MAX, 'a');
        w.insert(0, 'b');
        assert_eq!((w.get(u64::MAX), w.get(0)), (Some(&'a'), Some(&'b')));
        assert_eq!(w.spill.len(), 1);
        assert_eq!(w.drain_sorted(), [(0, 'b'), (u64::MAX, 'a')].to_vec());
    }

    #[test]
    fn insert_replaces_and_get_mut_changes() {
        let mut w = TagWindow::new(4);
        assert_eq!(w.insert(7, 'a'), None);
        assert_eq!(w.insert(100, 'b'), None);
        assert_eq!(w.insert(7, 'c'), Some('a'));
        assert_eq!(w.insert(100, 'd'), Some('b'));
        *w.get_mut(100).unwrap() = 'e';
        assert_eq!(w.len(), 2);
        assert!(!w.is_empty());
        assert_eq!(w.drain_sorted(), [(7, 'c'), (100, 'e')].to_vec());
        assert!(w.is_empty() && w.get_mut(7).is_none());
    }

    proptest! {
        /// The table behaves as a map, whatever the tags and the cap, and
        /// the window never outgrows its cap.
        #[test]
        fn behaves_as_a_map(
            cap in 1usize..12,
            ops in proptest::collection::vec((any::<bool>(), 0u64..40, any::<bool>()), 0..300),
        ) {
            let mut w = TagWindow::new(cap);
            let mut model = BTreeMap::new();
            for (i, &(insert, tag, far)) in ops.iter().enumerate() {
                let tag = if far { u64::MAX - tag } else { tag };
                if insert && !model.contains_key(&tag) {
                    w.insert(tag, i);
                    model.insert(tag, i);
                } else {
                    prop_assert_eq!(w.remove(tag), model.remove(&tag));
                }
                prop_assert!(w.span <= cap);
                prop_assert!(w.ring.len() <= cap.next_power_of_two());
                prop_assert!(w.span == 0 || w.ring[w.head].is_some());
                // Every slot outside the window is empty.
                let outside = (w.span..w.ring.len()).filter(|&i| w.ring[w.slot(i)].is_some()).count();
                prop_assert_eq!(outside, 0);
                prop_assert_eq!(w.len(), model.len());
                for t in [tag, tag.wrapping_add(1), tag.wrapping_sub(1)] {
                    prop_assert_eq!(w.get(t), model.get(&t));
                }
            }
            let all: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(w.drain_sorted(), all);
        }
    }
}
