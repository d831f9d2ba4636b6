//! Bounded memory of the tags a peer has used on one channel.
//!
//! The original remembers every `(channel, tag)` for the connection's life.
//! Here a channel keeps a high-water mark `floor` (every tag below it counts
//! as used) and the set of used tags at or above it. Consecutive tags fold
//! into the floor, so a peer that counts up (as the original does) costs no
//! memory at all; gaps cost one entry per tag above the gap. When the
//! connection's total passes its limit, the smallest remembered tag of the
//! channel is folded in, and the unused tags below it become "used" too.
//!
//! The rules are written once, over [`TagSet`]: the alloc
//! `Connection` keeps a `BTreeSet` per channel
//! ([`TagMemory`]), the [`BorrowedConnection`](super::BorrowedConnection) one
//! fixed pool shared by its channels.

#[cfg(feature = "alloc")]
use alloc::collections::BTreeSet;

/// The used tags of one channel remembered at or above its floor.
pub(crate) trait TagSet {
    fn contains(&self, tag: u64) -> bool;
    /// The smallest remembered tag.
    fn first(&self) -> Option<u64>;
    /// Removes `tag`; returns whether it was there.
    fn remove(&mut self, tag: u64) -> bool;
    /// Adds `tag` (the caller made room); returns whether it was new.
    fn insert(&mut self, tag: u64) -> bool;
}

/// Whether `tag` was used before (or was forgotten below the floor).
pub(crate) fn contains(floor: u128, set: &impl TagSet, tag: u64) -> bool {
    u128::from(tag) < floor || set.contains(tag)
}

/// Whether recording `tag` needs a new entry in the set (it is above the
/// floor and not remembered yet).
pub(crate) fn needs_entry(floor: u128, set: &impl TagSet, tag: u64) -> bool {
    u128::from(tag) > floor && !set.contains(tag)
}

/// Records `tag` as used; returns the change in remembered entries (+1, 0,
/// or negative when consecutive tags fold into the floor). When
/// [`needs_entry`] is true the set must have room for one more.
pub(crate) fn insert(floor: &mut u128, set: &mut impl TagSet, tag: u64) -> isize {
    let t = u128::from(tag);
    if t < *floor {
        return 0;
    }
    if t == *floor {
        // Counting up: the floor moves, and remembered successors fold in.
        *floor += 1;
        return -(fold(floor, set) as isize);
    }
    // Above the floor, so the floor itself is still unused: nothing folds.
    isize::from(set.insert(tag))
}

/// Forgets the smallest remembered tag by raising the floor past it;
/// returns the entries released (at least 1 if any were remembered).
pub(crate) fn forget_oldest(floor: &mut u128, set: &mut impl TagSet) -> usize {
    match set.first() {
        Some(t) => {
            set.remove(t);
            *floor = u128::from(t) + 1;
            1 + fold(floor, set)
        }
        None => 0,
    }
}

/// Raises the floor past `tag` without remembering it (the set is full and
/// `tag` is older than everything in it); returns the entries released.
pub(crate) fn forget_new(floor: &mut u128, set: &mut impl TagSet, tag: u64) -> usize {
    *floor = u128::from(tag) + 1;
    fold(floor, set)
}

/// Folds remembered tags equal to the floor into it; returns how many.
fn fold(floor: &mut u128, set: &mut impl TagSet) -> usize {
    let mut n = 0;
    // A remembered tag is a u64, so a floor past u64::MAX matches none.
    while let Ok(f) = u64::try_from(*floor) {
        if !set.remove(f) {
            break;
        }
        *floor += 1;
        n += 1;
    }
    n
}

#[cfg(feature = "alloc")]
impl TagSet for BTreeSet<u64> {
    // The set is empty whenever the peer counts up (the floor does all the
    // work), so look-ups in an empty set are answered without a tree search.
    fn contains(&self, tag: u64) -> bool {
        !self.is_empty() && BTreeSet::contains(self, &tag)
    }
    fn first(&self) -> Option<u64> {
        BTreeSet::first(self).copied()
    }
    fn remove(&mut self, tag: u64) -> bool {
        !self.is_empty() && BTreeSet::remove(self, &tag)
    }
    fn insert(&mut self, tag: u64) -> bool {
        BTreeSet::insert(self, tag)
    }
}

/// The memory of one channel of the alloc connection.
#[cfg(feature = "alloc")]
#[derive(Debug, Default)]
pub(crate) struct TagMemory {
    /// Every tag below this counts as used. `u128` so that tag `u64::MAX`
    /// can fold in.
    floor: u128,
    /// Used tags above `floor`.
    above: BTreeSet<u64>,
}

#[cfg(feature = "alloc")]
impl TagMemory {
    /// Whether `tag` was used before (or was forgotten below the floor).
    pub(crate) fn contains(&self, tag: u64) -> bool {
        contains(self.floor, &self.above, tag)
    }

    /// Tags remembered individually.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.above.len()
    }

    /// Records `tag` as used; returns the change in remembered entries.
    pub(crate) fn insert(&mut self, tag: u64) -> isize {
        insert(&mut self.floor, &mut self.above, tag)
    }

    /// Forgets the smallest remembered tag; returns the entries released.
    pub(crate) fn forget_oldest(&mut self) -> usize {
        forget_oldest(&mut self.floor, &mut self.above)
    }
}

#[cfg(all(test, feature = "alloc"))]
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
