//! Unsigned integers as decimal ASCII digits, without `core::fmt` (no formatter, no
//! allocation): for the few places that write numbers into wire bytes or fixed buffers.

/// Room for the digits of any `u64` (`u64::MAX` has 20).
pub(crate) const MAX_DIGITS: usize = 20;

/// The decimal digits of `n`, most significant first, written at the end of `digits`.
pub(crate) fn digits(n: u64, digits: &mut [u8; MAX_DIGITS]) -> &[u8] {
    let mut rest = n;
    let mut at = digits.len();
    loop {
        at -= 1;
        // `rest % 10` is below 10.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    &digits[at..]
}

#[cfg(test)]
mod tests {
    use super::{digits, MAX_DIGITS};

    #[test]
    fn digits_of_boundaries() {
        let mut buf = [0; MAX_DIGITS];
        for (n, text) in [
            (0, "0"),
            (9, "9"),
            (10, "10"),
            (1234, "1234"),
            (u64::MAX, "18446744073709551615"),
        ] {
            assert_eq!(digits(n, &mut buf), text.as_bytes());
        }
    }
}
