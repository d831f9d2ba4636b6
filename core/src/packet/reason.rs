//! The failure reasons of cs.packetstream, byte for byte.
//!
//! A failure response is a response with `pflags = 0` (ok bit clear, user
//! flags 0) whose payload is one of these texts in UTF-8. The
//! `Connection` sends them itself for the rules it
//! enforces; [`EXCEPTION_DURING_HANDLER`] is what the original server sends
//! when its handler raises, for a driver to pass to
//! `Connection::reject`.

use core::fmt;

/// The handler failed (the original's reply when its request handler raises).
pub const EXCEPTION_DURING_HANDLER: &str = "exception during handler";

/// The connection does not accept requests
/// (`Config::accept_requests` is `false`; the
/// original: created without a `request_handler`).
pub const NO_REQUEST_HANDLER: &str = "no request handler";

/// A request arrived after the peer's ERQ.
pub const REQUESTS_NO_LONGER_ALLOWED: &str = "requests no longer allowed";

/// A request arrived after this side began closing
/// (`Connection::close`, or the peer's end of
/// stream). The original's text for a request arriving while it shuts down.
pub const SHUTTING_DOWN: &str = "rejecting request: runstate.cancelled";

/// A request on a channel that is not open. Literally `%d`: the original
/// never formats it.
pub const UNKNOWN_CHANNEL: &str = "unknown channel %d";

/// `channel C: tag already in use: N`: a request reused a tag that is in
/// flight or was used before on this connection.
///
/// ```
/// use framewire::packet::reason::TagInUse;
/// let mut s = String::new();
/// use core::fmt::Write;
/// write!(s, "{}", TagInUse { channel: 0, tag: 7 }).unwrap();
/// assert_eq!(s, "channel 0: tag already in use: 7");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TagInUse {
    /// The request's channel.
    pub channel: u64,
    /// The reused tag.
    pub tag: u64,
}

impl TagInUse {
    /// The longest text: both numbers `u64::MAX` (20 digits each).
    pub const MAX_LEN: usize = 8 + 20 + 22 + 20;

    /// Writes the text into `out` and returns its length, without
    /// `core::fmt` (for firmware where formatting machinery costs code size).
    ///
    /// ```
    /// use framewire::packet::reason::TagInUse;
    /// let mut buf = [0u8; TagInUse::MAX_LEN];
    /// let n = TagInUse { channel: 0, tag: 7 }.encode(&mut buf);
    /// assert_eq!(&buf[..n], b"channel 0: tag already in use: 7");
    /// ```
    pub fn encode(&self, out: &mut [u8; Self::MAX_LEN]) -> usize {
        let mut pos = put(out, 0, b"channel ");
        pos = put_decimal(out, pos, self.channel);
        pos = put(out, pos, b": tag already in use: ");
        put_decimal(out, pos, self.tag)
    }
}

/// Copies `s` to `out[pos..]`; returns the new position. Callers stay within
/// [`TagInUse::MAX_LEN`].
fn put(out: &mut [u8], pos: usize, s: &[u8]) -> usize {
    out[pos..pos + s.len()].copy_from_slice(s);
    pos + s.len()
}

/// Writes `v` in decimal at `out[pos..]`; returns the new position.
fn put_decimal(out: &mut [u8], pos: usize, v: u64) -> usize {
    put(
        out,
        pos,
        crate::decimal::digits(v, &mut [0; crate::decimal::MAX_DIGITS]),
    )
}

impl fmt::Display for TagInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; Self::MAX_LEN];
        let n = self.encode(&mut buf);
        // Digits and ASCII text only.
        f.write_str(core::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_in_use_text_at_the_extremes() {
        let mut buf = [0u8; TagInUse::MAX_LEN];
        for (channel, tag, text) in [
            (0, 0, "channel 0: tag already in use: 0"),
            (10, 99, "channel 10: tag already in use: 99"),
            (
                u64::MAX,
                u64::MAX,
                "channel 18446744073709551615: tag already in use: 18446744073709551615",
            ),
        ] {
            let n = TagInUse { channel, tag }.encode(&mut buf);
            assert_eq!(&buf[..n], text.as_bytes());
            let mut s = std::string::String::new();
            core::fmt::Write::write_fmt(&mut s, format_args!("{}", TagInUse { channel, tag }))
                .unwrap();
            assert_eq!(s, text);
        }
        assert_eq!(TagInUse::MAX_LEN, 70);
    }
}
