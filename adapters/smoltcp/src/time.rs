//! Conversions between smoltcp's clock and the core's, and the deadline
//! arithmetic a firmware main loop needs.
//!
//! smoltcp's `Instant` counts signed microseconds
//! (`i64`) since an epoch the application picks; the core's
//! [`Instant`](framewire::time::Instant) counts unsigned microseconds (`u64`)
//! since an epoch the driver picks. The adapter uses the same epoch for
//! both, so the conversion is the identity on every instant at or after it.
//! Instants before the epoch (negative in smoltcp) become the core's
//! [`Instant::ZERO`](framewire::time::Instant::ZERO): the core never sees
//! time run backwards because of the conversion.

use framewire::time::{Duration as CoreDuration, Instant as CoreInstant};
use smoltcp::time::{Duration, Instant};

/// smoltcp's `Instant` as the core's: the same number of microseconds since
/// the epoch, saturating at zero for instants before it.
///
/// ```
/// use framewire_smoltcp::time::to_core;
/// use smoltcp::time::Instant;
/// assert_eq!(to_core(Instant::from_millis(1_500)).total_micros(), 1_500_000);
/// assert_eq!(to_core(Instant::from_millis(-5)).total_micros(), 0);
/// ```
pub fn to_core(instant: Instant) -> CoreInstant {
    CoreInstant::from_micros(u64::try_from(instant.total_micros()).unwrap_or(0))
}

/// The core's `Instant` as smoltcp's, saturating at `i64::MAX` microseconds
/// (about 292,000 years).
///
/// ```
/// use framewire_smoltcp::time::from_core;
/// assert_eq!(from_core(framewire::time::Instant::from_millis(7)).total_millis(), 7);
/// ```
pub fn from_core(instant: CoreInstant) -> Instant {
    Instant::from_micros(i64::try_from(instant.total_micros()).unwrap_or(i64::MAX))
}

/// The core's `Duration` as smoltcp's (both count microseconds in a `u64`).
pub fn duration_from_core(duration: CoreDuration) -> Duration {
    Duration::from_micros(duration.total_micros())
}

/// smoltcp's `Duration` as the core's.
pub fn duration_to_core(duration: Duration) -> CoreDuration {
    CoreDuration::from_micros(duration.total_micros())
}

/// The earlier of two optional deadlines; `None` means "no deadline" (wait
/// for the network), so it loses to any `Some`.
///
/// ```
/// use framewire_smoltcp::time::earliest;
/// use smoltcp::time::Instant;
/// let a = Some(Instant::from_millis(5));
/// assert_eq!(earliest(a, None), a);
/// assert_eq!(earliest(a, Some(Instant::from_millis(3))), Some(Instant::from_millis(3)));
/// assert_eq!(earliest::<Instant>(None, None), None);
/// ```
pub fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// How long to sleep from `now` until `deadline`: `None` without a
/// deadline, zero if it has passed. The same convention as smoltcp's
/// `Interface::poll_delay`, so a main loop can sleep for
/// `earliest(iface.poll_delay(now, &sockets), driver.poll_delay(now, socket))`.
pub fn delay_until(now: Instant, deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|at| if at > now { at - now } else { Duration::ZERO })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_saturation() {
        for micros in [0i64, 1, 999, 1_000, 123_456_789, i64::MAX] {
            let i = Instant::from_micros(micros);
            assert_eq!(from_core(to_core(i)), i);
        }
        assert_eq!(to_core(Instant::from_micros(i64::MIN)), CoreInstant::ZERO);
        assert_eq!(
            from_core(CoreInstant::from_micros(u64::MAX)),
            Instant::from_micros(i64::MAX)
        );
        let d = Duration::from_micros(1_234_567);
        assert_eq!(duration_from_core(duration_to_core(d)), d);
    }

    #[test]
    fn delays() {
        let now = Instant::from_millis(100);
        assert_eq!(delay_until(now, None), None);
        assert_eq!(
            delay_until(now, Some(Instant::from_millis(40))),
            Some(Duration::ZERO)
        );
        assert_eq!(
            delay_until(now, Some(Instant::from_millis(140))),
            Some(Duration::from_millis(40))
        );
    }
}
