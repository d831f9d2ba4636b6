//! Which batch request a `(channel, tag)` of ours is, without an entry per
//! request: the core numbers our requests on each channel upwards, so the
//! requests of a batch handed to it one after another get consecutive tags.
//! A batch in the core is then a few runs — "request `first_index + k` has
//! tag `first_tag + k` on `channel`" — and finding a response's request is
//! a check against the run the previous response hit (responses mostly come
//! in order), or a binary search.

/// Requests `first_index..first_index + len` of the batch in slot `slot`,
/// tagged `first_tag..first_tag + len` on `channel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    channel: u64,
    first_tag: u64,
    /// The last tag (inclusive, so that a run may end at `u64::MAX`).
    last_tag: u64,
    /// The batch's slot (in the driver's `Batches`).
    slot: usize,
    first_index: usize,
    /// The last index: `first_index + (last_tag - first_tag)`.
    last_index: usize,
}

impl Run {
    /// The batch index of `(channel, tag)` if it is in this run.
    #[inline]
    fn index_of(&self, channel: u64, tag: u64) -> Option<usize> {
        if self.channel == channel && tag >= self.first_tag && tag <= self.last_tag {
            // At most `last_tag - first_tag`, which counts requests of one
            // batch: it fits.
            Some(self.first_index + usize::try_from(tag - self.first_tag).ok()?)
        } else {
            None
        }
    }

    /// The tags it holds.
    fn tags(&self) -> core::ops::RangeInclusive<u64> {
        self.first_tag..=self.last_tag
    }
}

/// The runs of every batch with requests in the core, sorted by
/// `(channel, first_tag)` (they never overlap: a tag is used once).
#[derive(Debug, Default)]
pub(crate) struct BatchRuns {
    runs: Vec<Run>,
    /// The run the last look-up or insertion touched.
    last: usize,
}

impl BatchRuns {
    /// Records that request `index` of the batch in `slot` has tag `tag` on
    /// `channel`: it extends the last touched run when it continues it
    /// (the common case), else starts a run.
    #[inline]
    pub(crate) fn insert(&mut self, channel: u64, tag: u64, slot: usize, index: usize) {
        if let Some(r) = self.runs.get_mut(self.last) {
            if r.last_tag.checked_add(1) == Some(tag)
                && r.last_index + 1 == index
                && r.slot == slot
                && r.channel == channel
            {
                r.last_tag = tag;
                r.last_index = index;
                return;
            }
        }
        let at = self
            .runs
            .partition_point(|r| (r.channel, r.first_tag) < (channel, tag));
        self.runs.insert(
            at,
            Run {
                channel,
                first_tag: tag,
                last_tag: tag,
                slot,
                first_index: index,
                last_index: index,
            },
        );
        self.last = at;
    }

    /// `(batch slot, index)` of our request `(channel, tag)`, if a batch's.
    #[inline]
    pub(crate) fn find(&mut self, channel: u64, tag: u64) -> Option<(usize, usize)> {
        if let Some(r) = self.runs.get(self.last) {
            if let Some(index) = r.index_of(channel, tag) {
                return Some((r.slot, index));
            }
        }
        // The last run starting at or before (channel, tag).
        let at = self
            .runs
            .partition_point(|r| (r.channel, r.first_tag) <= (channel, tag))
            .checked_sub(1)?;
        let r = &self.runs[at];
        let index = r.index_of(channel, tag)?;
        self.last = at;
        Some((r.slot, index))
    }

    /// Forgets the runs of the batch in `slot` (it is finished or
    /// abandoned).
    pub(crate) fn remove_batch(&mut self, slot: usize) {
        self.runs.retain(|r| r.slot != slot);
        self.last = 0;
    }

    /// Every `(channel, tag, index)` of the batch in `slot`.
    pub(crate) fn requests_of(&self, slot: usize) -> impl Iterator<Item = (u64, u64, usize)> + '_ {
        self.runs
            .iter()
            .filter(move |r| r.slot == slot)
            .flat_map(|r| {
                r.tags()
                    .zip(r.first_index..=r.last_index)
                    .map(move |(tag, index)| (r.channel, tag, index))
            })
    }

    /// Forgets every run.
    pub(crate) fn clear(&mut self) {
        self.runs.clear();
        self.last = 0;
    }

    /// How many runs are kept (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::BatchRuns;

    #[test]
    fn consecutive_requests_share_one_run() {
        let mut runs = BatchRuns::default();
        for k in 0..100 {
            runs.insert(0, 7 + k, 1, usize::try_from(k).unwrap());
        }
        assert_eq!(runs.len(), 1);
        assert_eq!(runs.find(0, 7), Some((1, 0)));
        assert_eq!(runs.find(0, 106), Some((1, 99)));
        assert_eq!(runs.find(0, 107), None);
        assert_eq!(runs.find(0, 6), None);
        assert_eq!(runs.find(1, 50), None);
    }

    #[test]
    fn a_gap_in_tags_or_indices_starts_a_run() {
        let mut runs = BatchRuns::default();
        runs.insert(0, 1, 1, 0);
        runs.insert(0, 2, 1, 1);
        // A call took tag 3.
        runs.insert(0, 4, 1, 2);
        // Another batch's request on the same channel.
        runs.insert(0, 5, 2, 0);
        // The same batch on another channel.
        runs.insert(3, 1, 1, 3);
        assert_eq!(runs.len(), 4);
        assert_eq!(runs.find(0, 3), None);
        assert_eq!(runs.find(0, 4), Some((1, 2)));
        assert_eq!(runs.find(0, 5), Some((2, 0)));
        assert_eq!(runs.find(3, 1), Some((1, 3)));
        let mut of_one: Vec<_> = runs.requests_of(1).collect();
        of_one.sort_unstable();
        assert_eq!(of_one, [(0, 1, 0), (0, 2, 1), (0, 4, 2), (3, 1, 3)]);
        runs.remove_batch(1);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs.find(0, 1), None);
        assert_eq!(runs.find(0, 5), Some((2, 0)));
    }

    #[test]
    fn tags_near_the_top_of_the_range() {
        let mut runs = BatchRuns::default();
        runs.insert(0, u64::MAX - 1, 1, 0);
        runs.insert(0, u64::MAX, 1, 1);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs.find(0, u64::MAX), Some((1, 1)));
        assert_eq!(runs.find(0, 0), None);
    }

    proptest! {
        /// Against a map with an entry per request: batches submitted in
        /// pieces, interleaved with calls and with each other, on a few
        /// channels whose tags count up as the core's do.
        #[test]
        fn matches_a_map_per_request(
            steps in proptest::collection::vec((0u64..3, 0usize..4, 1usize..6), 1..60),
            removed in proptest::collection::vec(0usize..4, 0..3),
        ) {
            let mut runs = BatchRuns::default();
            let mut model: HashMap<(u64, u64), (usize, usize)> = HashMap::new();
            let mut next_tag = [0u64; 3];
            let mut next_index = [0usize; 4];
            // Batch 0 stands for single calls: they only use up tags.
            for (channel, batch, count) in steps {
                let c = usize::try_from(channel).unwrap();
                let b = batch;
                for _ in 0..count {
                    let tag = next_tag[c];
                    next_tag[c] += 1;
                    if batch != 0 {
                        runs.insert(channel, tag, batch, next_index[b]);
                        model.insert((channel, tag), (batch, next_index[b]));
                        next_index[b] += 1;
                    }
                }
            }
            for batch in removed {
                runs.remove_batch(batch);
                model.retain(|_, (b, _)| *b != batch);
            }
            for channel in 0..3 {
                for tag in 0..=next_tag[usize::try_from(channel).unwrap()] {
                    prop_assert_eq!(runs.find(channel, tag), model.get(&(channel, tag)).copied());
                }
            }
            for batch in 1..4 {
                let mut listed: Vec<_> = runs.requests_of(batch).collect();
                listed.sort_unstable();
                let mut expected: Vec<_> = model
                    .iter()
                    .filter(|(_, (b, _))| *b == batch)
                    .map(|(&(c, t), &(_, i))| (c, t, i))
                    .collect();
                expected.sort_unstable();
                prop_assert_eq!(listed, expected);
            }
        }
    }
}
