//! Bounded memory of the tags a peer has used on one channel.
//!
//! The original remembers every `(channel, tag)` for the connection's life.
//! Here a channel keeps a high-water mark `floor` (every tag below it counts
//! as used) and the set of used tags at or above it. Consecutive tags fold
//! into the floor, so a peer that counts up (as the original does) costs no
//! memory at all; gaps cost one entry per tag above the gap. When the
//! connection's total passes its limit, the smallest remembered tag of the
//! channel is folded in, and the unused tags below it become "used" too.

use alloc::collections::BTreeSet;

#[derive(Debug, Default)]
pub(crate) struct TagMemory {
    /// Every tag below this counts as used. `u128` so that tag `u64::MAX`
    /// can fold in.
    floor: u128,
    /// Used tags at or above `floor`; never contains `floor` itself.
    above: BTreeSet<u64>,
}

impl TagMemory {
    /// Whether `tag` was used before (or was forgotten below the floor).
    pub(crate) fn contains(&self, tag: u64) -> bool {
        u128::from(tag) < self.floor || self.above.contains(&tag)
    }

    /// Tags remembered individually.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.above.len()
    }

    /// Records `tag` as used; returns the change in remembered entries
    /// (+1, 0, or negative when consecutive tags fold into the floor).
    pub(crate) fn insert(&mut self, tag: u64) -> isize {
        if u128::from(tag) == self.floor && self.above.is_empty() {
            // The common case, counting up: no set traffic at all.
            self.floor += 1;
            return 0;
        }
        let before = self.above.len() as isize;
        if u128::from(tag) >= self.floor {
            self.above.insert(tag);
            self.fold();
        }
        self.above.len() as isize - before
    }

    /// Forgets the smallest remembered tag by raising the floor past it;
    /// returns the entries released (at least 1 if any were remembered).
    pub(crate) fn forget_oldest(&mut self) -> usize {
        let before = self.above.len();
        if let Some(t) = self.above.pop_first() {
            self.floor = u128::from(t) + 1;
            self.fold();
        }
        before - self.above.len()
    }

    fn fold(&mut self) {
        while let Some(&first) = self.above.first() {
            if u128::from(first) != self.floor {
                break;
            }
            self.above.pop_first();
            self.floor += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_up_costs_nothing() {
        let mut m = TagMemory::default();
        for t in 0..1000 {
            assert!(!m.contains(t));
            m.insert(t);
            assert!(m.contains(t));
            assert_eq!(m.remembered(), 0);
        }
        assert!(!m.contains(1000));
    }

    #[test]
    fn gaps_are_remembered_until_forgotten() {
        let mut m = TagMemory::default();
        assert_eq!(m.insert(2), 1);
        assert_eq!(m.insert(3), 1);
        assert_eq!(m.insert(5), 1);
        assert!(!m.contains(0) && !m.contains(1) && !m.contains(4));
        assert!(m.contains(2) && m.contains(3) && m.contains(5));
        // Filling the gap at 0 and 1 folds 0..=3 into the floor.
        assert_eq!(m.insert(0), 0);
        assert_eq!(m.insert(1), -2);
        assert_eq!(m.remembered(), 1);
        // Forgetting 5 makes 4 count as used.
        assert_eq!(m.forget_oldest(), 1);
        assert!(m.contains(4) && m.contains(5) && !m.contains(6));
        assert_eq!(m.remembered(), 0);
        assert_eq!(m.forget_oldest(), 0);
    }

    #[test]
    fn forgetting_folds_following_tags() {
        let mut m = TagMemory::default();
        for t in [2, 3, 4, 9] {
            m.insert(t);
        }
        assert_eq!(m.forget_oldest(), 3);
        assert_eq!(m.remembered(), 1);
        assert!(m.contains(0) && m.contains(4) && !m.contains(5) && m.contains(9));
    }

    #[test]
    fn top_tag_folds_without_overflow() {
        let mut m = TagMemory::default();
        m.insert(u64::MAX);
        assert_eq!(m.forget_oldest(), 1);
        assert!(m.contains(u64::MAX) && m.contains(0));
        assert_eq!(m.insert(u64::MAX), 0);
    }
}
