//! A periodic tick on a fixed grid (socktools' `tick_thread`, without its drift).
//!
//! socktools runs `tick()` in a loop and sleeps for what is left of the interval after
//! measuring how long the tick took; the sleep's own lateness accumulates, so its ticks
//! drift. A [`Ticker`] instead fixes every deadline in advance on the grid
//! `start + k·period` (k = 1, 2, ...): how late one tick fires never moves the next one.
//!
//! When the driver comes back more than one period late, the deadlines it slept through
//! are **skipped, not replayed**: [`Ticker::poll`] fires once, for the latest deadline
//! that has passed, and reports how many before it were missed ([`Tick::missed`]). A
//! burst of catch-up ticks would only make an overloaded node later still.

use crate::time::{Duration, Instant};

/// socktools' default tick interval, 0.25 s.
pub const DEFAULT_TICK_INTERVAL: Duration = Duration::from_millis(250);

/// One tick that is due, as returned by [`Ticker::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Tick {
    /// Which deadline fired: `k` in `start + k·period` (the first is 1). Skipped
    /// deadlines leave gaps.
    pub index: u64,
    /// The deadline that fired, `start + index·period`.
    pub deadline: Instant,
    /// How many earlier deadlines passed without a tick (skipped because the driver
    /// polled more than one period late). 0 when on time.
    pub missed: u64,
    /// How long after `deadline` the tick was polled (always less than one period).
    pub late: Duration,
}

/// Deadlines at `start + k·period` for k = 1, 2, ..., with no drift.
///
/// Driver loop: sleep until [`next_deadline`](Self::next_deadline), then call
/// [`poll`](Self::poll) with the current time and run the tick if it returns one.
/// Polling early is harmless (`None`).
///
/// ```
/// use framewire::p2p::Ticker;
/// use framewire::time::{Duration, Instant};
///
/// let start = Instant::from_millis(1_000);
/// let mut t = Ticker::new(Duration::from_millis(250), start);
/// assert_eq!(t.next_deadline(), Instant::from_millis(1_250));
/// assert_eq!(t.poll(Instant::from_millis(1_100)), None);
///
/// // 30 ms late: the next deadline stays on the grid.
/// let tick = t.poll(Instant::from_millis(1_280)).unwrap();
/// assert_eq!((tick.index, tick.missed), (1, 0));
/// assert_eq!(t.next_deadline(), Instant::from_millis(1_500));
///
/// // Back after a stall: one tick, for the latest deadline (2.5 s); the four
/// // deadlines between 1.25 s and 2.5 s are skipped.
/// let tick = t.poll(Instant::from_millis(2_510)).unwrap();
/// assert_eq!((tick.index, tick.missed), (6, 4));
/// assert_eq!(tick.deadline, Instant::from_millis(2_500));
/// assert_eq!(t.next_deadline(), Instant::from_millis(2_750));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ticker {
    start: Instant,
    period: Duration,
    /// Index of the next deadline (at least 1).
    next: u64,
    fired: u64,
    missed: u64,
}

impl Ticker {
    /// A ticker whose deadlines are `start + k·period`, k ≥ 1.
    ///
    /// # Panics
    ///
    /// If `period` is zero (a configuration bug: the ticks would have no grid).
    pub fn new(period: Duration, start: Instant) -> Self {
        assert!(
            period.total_micros() > 0,
            "a ticker's period must not be zero"
        );
        Ticker {
            start,
            period,
            next: 1,
            fired: 0,
            missed: 0,
        }
    }

    /// `start + k·period`, saturating at the end of time.
    fn deadline(&self, k: u64) -> Instant {
        let offset = u128::from(self.period.total_micros()) * u128::from(k);
        let at = u128::from(self.start.total_micros()) + offset;
        Instant::from_micros(u64::try_from(at).unwrap_or(u64::MAX))
    }

    /// The tick that is due at `now`, if any.
    ///
    /// * `now` before [`next_deadline`](Self::next_deadline): `None`.
    /// * Otherwise one [`Tick`] for the latest deadline at or before `now`; the
    ///   deadlines between the previous tick and that one are skipped and counted in
    ///   [`Tick::missed`]. The next deadline is the one after `now`.
    ///
    /// Time going backwards is harmless: `now` is only compared with deadlines.
    pub fn poll(&mut self, now: Instant) -> Option<Tick> {
        if now < self.deadline(self.next) {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.start).total_micros();
        // `now >= deadline(next) >= start + period`, so `k >= next >= 1`.
        let k = (elapsed / self.period.total_micros()).max(self.next);
        let deadline = self.deadline(k);
        let missed = k - self.next;
        self.next = k.saturating_add(1);
        self.fired += 1;
        self.missed += missed;
        Some(Tick {
            index: k,
            deadline,
            missed,
            late: now.saturating_duration_since(deadline),
        })
    }

    /// When the next tick is due: sleep until then, then [`poll`](Self::poll).
    pub fn next_deadline(&self) -> Instant {
        self.deadline(self.next)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The grid's origin.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Ticks fired so far.
    pub fn fired(&self) -> u64 {
        self.fired
    }

    /// Deadlines skipped so far (the sum of every [`Tick::missed`]).
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn on_time_ticks_follow_the_grid() {
        let mut t = Ticker::new(DEFAULT_TICK_INTERVAL, ms(0));
        let mut fired = Vec::new();
        // A simulated driver that always wakes exactly at the deadline.
        for _ in 0..8 {
            let at = t.next_deadline();
            assert_eq!(t.poll(at - Duration::from_micros(1)), None);
            let tick = t.poll(at).unwrap();
            assert_eq!(tick.late, Duration::ZERO);
            fired.push(tick.deadline.total_millis());
        }
        assert_eq!(fired, [250, 500, 750, 1000, 1250, 1500, 1750, 2000]);
        assert_eq!((t.fired(), t.missed()), (8, 0));
    }

    #[test]
    fn lateness_does_not_accumulate() {
        // socktools sleeps `interval` after each tick, so a 40 ms wake-up delay pushes
        // every later tick by 40 ms more. Here each tick is 40 ms late and the grid
        // does not move: tick k is still due at k·100 ms.
        let mut t = Ticker::new(Duration::from_millis(100), ms(0));
        for k in 1..=50u64 {
            let wake = t.next_deadline() + Duration::from_millis(40);
            let tick = t.poll(wake).unwrap();
            assert_eq!(tick.index, k);
            assert_eq!(tick.deadline, ms(100 * k));
            assert_eq!(tick.late, Duration::from_millis(40));
            assert_eq!(tick.missed, 0);
        }
        assert_eq!(t.next_deadline(), ms(5_100));
    }

    #[test]
    fn a_stall_skips_instead_of_bursting() {
        let mut t = Ticker::new(Duration::from_millis(100), ms(1_000));
        assert_eq!(t.poll(ms(1_100)).unwrap().index, 1);
        // Nothing polled for 1.05 s: deadlines 2..=11 passed; one tick (for 11),
        // nine missed.
        let tick = t.poll(ms(2_150)).unwrap();
        assert_eq!(tick.index, 11);
        assert_eq!(tick.missed, 9);
        assert_eq!(tick.deadline, ms(2_100));
        assert_eq!(tick.late, Duration::from_millis(50));
        // No burst: the next poll at the same time gives nothing.
        assert_eq!(t.poll(ms(2_150)), None);
        assert_eq!(t.next_deadline(), ms(2_200));
        assert_eq!((t.fired(), t.missed()), (2, 9));
    }

    #[test]
    fn exactly_one_period_late_counts_one_missed() {
        let mut t = Ticker::new(Duration::from_millis(10), ms(0));
        let tick = t.poll(ms(20)).unwrap();
        assert_eq!((tick.index, tick.missed, tick.late), (2, 1, Duration::ZERO));
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let mut t = Ticker::new(Duration::from_millis(10), ms(100));
        assert!(t.poll(ms(115)).is_some());
        assert_eq!(t.poll(ms(50)), None);
        assert_eq!(t.poll(ms(0)), None);
        assert_eq!(t.next_deadline(), ms(120));
    }

    #[test]
    fn the_end_of_time_saturates() {
        let start = Instant::from_micros(u64::MAX - 5);
        let mut t = Ticker::new(Duration::from_micros(10), start);
        assert_eq!(t.next_deadline(), Instant::from_micros(u64::MAX));
        assert_eq!(t.poll(Instant::from_micros(u64::MAX - 1)), None);
    }

    #[test]
    #[should_panic(expected = "period must not be zero")]
    fn zero_period_is_a_configuration_bug() {
        let _ = Ticker::new(Duration::ZERO, ms(0));
    }

    proptest! {
        /// Whatever the wake-up times, every tick is on the grid, indices strictly
        /// increase, fired + missed accounts for every deadline passed, nothing fires
        /// early, and the next deadline is always the first one after the last poll.
        #[test]
        fn ticks_stay_on_the_grid(
            start in 0u64..1_000_000,
            period in 1u64..50_000,
            steps in proptest::collection::vec(0u64..200_000, 1..60),
        ) {
            let mut t = Ticker::new(Duration::from_micros(period), Instant::from_micros(start));
            let mut now = start;
            let mut last_index = 0u64;
            for step in steps {
                now += step;
                let before = t.next_deadline();
                match t.poll(Instant::from_micros(now)) {
                    None => prop_assert!(now < before.total_micros()),
                    Some(tick) => {
                        prop_assert!(now >= before.total_micros());
                        prop_assert!(tick.index > last_index);
                        prop_assert_eq!(tick.missed, tick.index - last_index - 1);
                        prop_assert_eq!(tick.deadline.total_micros(), start + tick.index * period);
                        prop_assert!(tick.deadline.total_micros() <= now);
                        prop_assert!(tick.late.total_micros() < period);
                        last_index = tick.index;
                    }
                }
                prop_assert_eq!(t.next_deadline().total_micros(), start + (last_index + 1) * period);
                prop_assert!(t.next_deadline().total_micros() > now);
            }
            // Every deadline up to the last tick was either fired or missed.
            prop_assert_eq!(t.fired() + t.missed(), last_index);
        }
    }
}
