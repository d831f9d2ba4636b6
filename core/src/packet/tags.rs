//! Bounded memory of the tags a peer has used on one channel.
//!
//! The original remembers every `(channel, tag)` for the connection's life.
//! Here a channel keeps a high-water mark `floor` (every tag below it counts
//! as used) and the set of used tags at or above it. Consecutive tags fold
//! into the floor. Tags above a gap count one entry each against the
//! connection's limit (the original's own gap: it starts at 2, so 0 and 1
//! stay unused). When the total passes the limit, the smallest remembered
//! tag of the channel is folded in, and the unused tags below it become
//! "used" too. In memory, the alloc connection holds a run of consecutive
//! tags as two numbers, so a peer that counts up costs none either way.
//!
//! The rules are written once, over [`TagSet`]: the alloc
//! `Connection` keeps a [`RunSet`] per channel (a run of consecutive tags
//! and a `BTreeSet`, in [`TagMemory`]), the [`BorrowedConnection`](super::BorrowedConnection) one
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

/// The alloc connection's set of remembered tags: a run of consecutive tags
/// held as two numbers, and a `BTreeSet` for the rest.
///
/// The rules above only ever see a set, and this is one, exactly (the
/// proptest below holds it to `BTreeSet`'s answers). The run is how it
/// stays small for the peer the original is: its tags count up from 2 on
/// channel 0, so 0 and 1 are never used, the floor stays at 0 and every
/// tag would otherwise be a tree entry until the limit forces the floor up
/// (1,024 entries by default, per connection).
#[cfg(feature = "alloc")]
#[derive(Debug, Default)]
pub(crate) struct RunSet {
    /// The run is `run_start..run_end` (empty when equal). `u128`: a run
    /// may end after `u64::MAX`.
    run_start: u128,
    run_end: u128,
    /// The remembered tags outside the run.
    rest: BTreeSet<u64>,
}

#[cfg(feature = "alloc")]
impl RunSet {
    /// Whether no tag is remembered.
    #[inline]
    fn is_empty(&self) -> bool {
        self.run_start == self.run_end && self.rest.is_empty()
    }

    fn in_run(&self, tag: u64) -> bool {
        (self.run_start..self.run_end).contains(&u128::from(tag))
    }

    /// Moves the tags of `rest` that continue the run into it.
    fn absorb(&mut self) {
        while let Ok(next) = u64::try_from(self.run_end) {
            if self.rest.is_empty() || !self.rest.remove(&next) {
                break;
            }
            self.run_end += 1;
        }
    }

    /// Tags remembered (the run's and the rest).
    #[cfg(test)]
    fn len(&self) -> usize {
        usize::try_from(self.run_end - self.run_start).unwrap_or(usize::MAX) + self.rest.len()
    }
}

#[cfg(feature = "alloc")]
impl TagSet for RunSet {
    fn contains(&self, tag: u64) -> bool {
        // The set is empty whenever the peer counts up from the floor,
        // so look-ups in an empty tree are answered without a search.
        self.in_run(tag) || (!self.rest.is_empty() && self.rest.contains(&tag))
    }

    fn first(&self) -> Option<u64> {
        let run = (self.run_start < self.run_end).then_some(self.run_start as u64);
        run.into_iter().chain(self.rest.first().copied()).min()
    }

    fn remove(&mut self, tag: u64) -> bool {
        if !self.in_run(tag) {
            return !self.rest.is_empty() && self.rest.remove(&tag);
        }
        let t = u128::from(tag);
        if t == self.run_start {
            // What the rules remove: always the smallest tag.
            self.run_start += 1;
        } else {
            // Inside the run: the part above `tag` goes to the tree.
            self.rest.extend((t + 1..self.run_end).map(|u| u as u64));
            self.run_end = t;
        }
        true
    }

    fn insert(&mut self, tag: u64) -> bool {
        if self.contains(tag) {
            return false;
        }
        let t = u128::from(tag);
        if self.run_start == self.run_end {
            self.run_start = t;
            self.run_end = t + 1;
        } else if t == self.run_end {
            self.run_end += 1;
        } else {
            self.rest.insert(tag);
            return true;
        }
        self.absorb();
        true
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
    above: RunSet,
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

    /// Tags held in the tree (not in the run).
    #[cfg(test)]
    pub(crate) fn tree_entries(&self) -> usize {
        self.above.rest.len()
    }

    /// Records `tag` as used; returns the change in remembered entries.
    #[inline]
    pub(crate) fn insert(&mut self, tag: u64) -> isize {
        // The peer counting up from the floor with nothing remembered
        // above it: the floor moves on and nothing folds (what `insert`
        // does then, without its look-ups).
        if u128::from(tag) == self.floor && self.above.is_empty() {
            self.floor += 1;
            return 0;
        }
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

    #[test]
    fn the_originals_tags_from_2_need_no_tree_entries() {
        // Tags 0 and 1 are never used, so the floor stays at 0 and every
        // tag is remembered: in the run, not in the tree.
        let mut m = TagMemory::default();
        for t in 2..3000 {
            assert!(!m.contains(t));
            assert_eq!(m.insert(t), 1);
        }
        assert_eq!((m.remembered(), m.tree_entries()), (2998, 0));
        // Out of order by a few: held in the tree only until the gap fills.
        for t in [3001, 3002, 3000] {
            m.insert(t);
        }
        assert_eq!((m.remembered(), m.tree_entries()), (3001, 0));
        assert!(!m.contains(0) && !m.contains(1) && m.contains(2) && m.contains(3002));
        // Forgetting the oldest folds the whole run into the floor.
        assert_eq!(m.forget_oldest(), 3001);
        assert_eq!(m.remembered(), 0);
        assert!(m.contains(0) && m.contains(3002) && !m.contains(3003));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Remove(u64),
        RemoveFirst,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Small tags (runs, gaps, collisions) and the top of the range.
        let tag = prop_oneof![0u64..40, (u64::MAX - 5)..=u64::MAX];
        prop_oneof![
            4 => tag.clone().prop_map(Op::Insert),
            1 => tag.prop_map(Op::Remove),
            1 => Just(Op::RemoveFirst),
        ]
    }

    proptest::proptest! {
        /// `RunSet` is a set: every answer is `BTreeSet`'s.
        #[test]
        fn run_set_answers_as_a_btree_set(ops in proptest::collection::vec(op(), 0..200)) {
            let (mut runs, mut tree) = (RunSet::default(), BTreeSet::new());
            for op in ops {
                match op {
                    Op::Insert(t) => proptest::prop_assert_eq!(runs.insert(t), tree.insert(t)),
                    Op::Remove(t) => proptest::prop_assert_eq!(runs.remove(t), tree.remove(&t)),
                    Op::RemoveFirst => {
                        let first = tree.first().copied();
                        proptest::prop_assert_eq!(runs.first(), first);
                        if let Some(t) = first {
                            proptest::prop_assert!(runs.remove(t));
                            tree.remove(&t);
                        }
                    }
                }
                proptest::prop_assert_eq!(runs.len(), tree.len());
                proptest::prop_assert_eq!(runs.first(), tree.first().copied());
                for t in (0..42).chain((u64::MAX - 6)..=u64::MAX) {
                    proptest::prop_assert_eq!(runs.contains(t), tree.contains(&t), "tag {}", t);
                }
            }
        }
    }
}
