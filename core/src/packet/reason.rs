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

impl fmt::Display for TagInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "channel {}: tag already in use: {}",
            self.channel, self.tag
        )
    }
}
