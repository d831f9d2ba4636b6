//! The rules both packet connections share, as plain data and pure
//! functions (no allocation): the send-side life cycle, how a parsed packet
//! is classified, and which failure response refuses a peer request.
//!
//! `Connection` (feature `alloc`) and
//! [`BorrowedConnection`](super::BorrowedConnection) differ only in where
//! they keep their bookkeeping; every decision that the peer can observe is
//! made here (or in [`tags`](super::tags) and [`reason`](super::reason)).

use super::event::{PeerCloseReason, ProtocolError, SubmitError};
use super::reason;
use super::wire::Packet;

/// Our side of the stream, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendState {
    /// Requests may be sent.
    Open,
    /// ERQ queued (`end_requests`); not closing.
    RequestsEnded,
    /// ERQ queued and closing: EOF follows once no peer request is in flight.
    Closing,
    /// EOF queued; `end` is the transmit queue's running total of queued
    /// bytes right after it.
    EofQueued { end: u64 },
    /// EOF transmitted and the peer's stream ended; `Closed` reported.
    Closed,
}

impl SendState {
    pub(crate) fn erq_queued(self) -> bool {
        self != SendState::Open
    }

    pub(crate) fn closing(self) -> bool {
        matches!(
            self,
            SendState::Closing | SendState::EofQueued { .. } | SendState::Closed
        )
    }

    pub(crate) fn eof_queued(self) -> bool {
        matches!(self, SendState::EofQueued { .. } | SendState::Closed)
    }
}

/// The transport as the driver reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Bytes may still come.
    Open,
    /// `handle_eof`: no more bytes will come.
    Eof,
    /// `handle_transport_lost`: no more bytes either way; queued output is
    /// dropped, nothing more is queued and nothing waits for transmit room.
    Lost,
}

impl Transport {
    /// Whether output can still reach the peer. Once the transport is lost
    /// nothing is queued any more: what a connection would send (answers,
    /// refusals, ERQ, EOF) is dropped, and `submit` fails.
    pub(crate) fn can_send(self) -> bool {
        self != Transport::Lost
    }
}

/// The first checks of every `submit`, in order: the peer's stream has
/// ended or the transport is lost (no response could ever arrive, and after
/// a loss nothing would be sent: [`SubmitError::PeerGone`]), then we sent
/// ERQ ([`SubmitError::RequestsEnded`]).
pub(crate) fn submit_gate(
    transport: Transport,
    rx_ended: bool,
    send: SendState,
) -> Result<(), SubmitError> {
    if rx_ended || !transport.can_send() {
        Err(SubmitError::PeerGone)
    } else if send.erq_queued() {
        Err(SubmitError::RequestsEnded)
    } else {
        Ok(())
    }
}

/// The `end` of [`SendState::EofQueued`] for an EOF queued now, when the
/// transmit queue's running total (the EOF included) is `queued_total`.
/// After a loss the EOF is dropped, not queued: the end is then one the
/// transmitted total never reaches, so `Closed` (which needs our EOF
/// transmitted) does not follow.
pub(crate) fn eof_end(transport: Transport, queued_total: u64) -> u64 {
    if transport.can_send() {
        queued_total
    } else {
        u64::MAX
    }
}

/// How the peer's stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RxEnd {
    Closed(PeerCloseReason),
    Failed(ProtocolError),
}

/// The fields of a parsed packet, copied out so the receive buffer can be
/// changed while the packet is handled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    pub(crate) channel: u64,
    pub(crate) tag: u64,
    pub(crate) pflags: u64,
    pub(crate) rq_type_wire: Option<u64>,
    pub(crate) payload_len: usize,
    is_eof: bool,
    is_erq: bool,
    malformed_marker: bool,
}

/// What a parsed packet means to a connection, in the order the checks are
/// made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Exactly the EOF marker: the peer's stream ends.
    Eof,
    /// Exactly the ERQ marker: the peer sends no more requests.
    Erq,
    /// Wire type 0 but not a marker: a protocol error ending the stream.
    MalformedMarker,
    /// A tag above the configured maximum: a protocol error.
    TagTooLarge,
    /// A request of this user type.
    Request { rq_type: u64 },
    /// A response.
    Response,
}

impl Head {
    #[inline]
    pub(crate) fn of(p: &Packet<'_>) -> Self {
        Head {
            channel: p.channel(),
            tag: p.tag(),
            pflags: p.pflags(),
            rq_type_wire: p.rq_type_wire(),
            payload_len: p.payload().len(),
            is_eof: p.is_eof(),
            is_erq: p.is_erq(),
            malformed_marker: p.is_malformed_marker(),
        }
    }

    /// Classifies the packet. Markers are recognised before the tag bound
    /// (their tags 0 and 1 are exempt from it).
    pub(crate) fn kind(&self, max_tag: u64) -> Kind {
        if self.is_eof {
            Kind::Eof
        } else if self.is_erq {
            Kind::Erq
        } else if self.malformed_marker {
            Kind::MalformedMarker
        } else if self.tag > max_tag {
            Kind::TagTooLarge
        } else {
            match self.rq_type_wire {
                // Wire type 0 is a marker or malformed, handled above.
                Some(wire) => Kind::Request {
                    rq_type: wire.saturating_sub(1),
                },
                None => Kind::Response,
            }
        }
    }

    /// The response's `(ok, user_flags)`.
    pub(crate) fn status(&self) -> (bool, u64) {
        (self.pflags & 1 != 0, self.pflags >> 1)
    }
}

/// Why a connection refuses a peer request itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// One of the fixed texts of [`reason`].
    Text(&'static str),
    /// `channel C: tag already in use: N` ([`reason::TagInUse`]).
    TagInUse,
}

/// The refusal a peer request gets, checked in the original's order:
/// no handler, after the peer's ERQ, while we close, unknown channel, tag in
/// use. `tag_in_use` is `None` when the channel is not open, else whether the
/// tag is in flight or was used before.
pub(crate) fn refusal(
    accept_requests: bool,
    peer_erq: bool,
    send: SendState,
    tag_in_use: Option<bool>,
) -> Option<Refusal> {
    if !accept_requests {
        Some(Refusal::Text(reason::NO_REQUEST_HANDLER))
    } else if peer_erq {
        Some(Refusal::Text(reason::REQUESTS_NO_LONGER_ALLOWED))
    } else if send.closing() {
        Some(Refusal::Text(reason::SHUTTING_DOWN))
    } else {
        match tag_in_use {
            None => Some(Refusal::Text(reason::UNKNOWN_CHANNEL)),
            Some(true) => Some(Refusal::TagInUse),
            Some(false) => None,
        }
    }
}

/// The failure packet for `refusal`, its text written into `text` when it
/// has to be formatted. Neither allocates nor uses `core::fmt`.
///
/// The text is cut short, to nothing if need be, so that the packet is at
/// most `max_packet_len`: the limit is taken to be the peer's too, and a
/// peer with the same small limit must learn that its request failed rather
/// than fail on a packet too long. The failure without text always fits: its
/// header is no longer than that of the request being refused, which fitted.
pub(crate) fn refusal_packet(
    refusal: Refusal,
    channel: u64,
    tag: u64,
    text: &mut [u8; reason::TagInUse::MAX_LEN],
    max_packet_len: usize,
) -> Packet<'_> {
    let text: &[u8] = match refusal {
        Refusal::Text(t) => t.as_bytes(),
        Refusal::TagInUse => {
            let n = reason::TagInUse { channel, tag }.encode(text);
            &text[..n]
        }
    };
    let whole = Packet::failure_bytes(channel, tag, text);
    let over = whole.encoded_len().saturating_sub(max_packet_len);
    if over == 0 {
        return whole;
    }
    // Shorter text can also shorten the length prefix, so cut by `over`
    // and then step down while still too long (at most a step or two).
    let mut keep = text.len().saturating_sub(over);
    while keep > 0
        && Packet::failure_bytes(channel, tag, &text[..keep]).encoded_len() > max_packet_len
    {
        keep -= 1;
    }
    Packet::failure_bytes(channel, tag, &text[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_order_is_the_originals() {
        use reason::*;
        use SendState::{Closing, Open};
        let text = |t| Some(Refusal::Text(t));
        assert_eq!(
            refusal(false, true, Closing, None),
            text(NO_REQUEST_HANDLER)
        );
        assert_eq!(
            refusal(true, true, Closing, None),
            text(REQUESTS_NO_LONGER_ALLOWED)
        );
        assert_eq!(refusal(true, false, Closing, None), text(SHUTTING_DOWN));
        let ended = SendState::RequestsEnded;
        assert_eq!(refusal(true, false, ended, None), text(UNKNOWN_CHANNEL));
        assert_eq!(refusal(true, false, Open, None), text(UNKNOWN_CHANNEL));
        assert_eq!(
            refusal(true, false, Open, Some(true)),
            Some(Refusal::TagInUse)
        );
        assert_eq!(refusal(true, false, Open, Some(false)), None);
    }

    #[test]
    fn refusal_packets() {
        let mut buf = [0u8; reason::TagInUse::MAX_LEN];
        let p = refusal_packet(Refusal::TagInUse, 3, 9, &mut buf, usize::MAX);
        assert_eq!(p.payload(), b"channel 3: tag already in use: 9");
        assert_eq!(p.response_status(), Some((false, 0)));
        assert_eq!(p.channel(), 3);
        let p = refusal_packet(
            Refusal::Text(reason::UNKNOWN_CHANNEL),
            5,
            2,
            &mut buf,
            usize::MAX,
        );
        assert_eq!(p.payload(), b"unknown channel %d");
    }

    #[test]
    fn refusals_are_cut_to_the_packet_limit() {
        let mut buf = [0u8; reason::TagInUse::MAX_LEN];
        let whole = refusal_packet(Refusal::TagInUse, 3, 9, &mut buf, usize::MAX).encoded_len();
        let p = refusal_packet(Refusal::TagInUse, 3, 9, &mut buf, whole - 5);
        assert_eq!(p.encoded_len(), whole - 5);
        assert_eq!(p.payload(), b"channel 3: tag already in u");
        assert_eq!(p.response_status(), Some((false, 0)));
        let empty = Packet::failure_bytes(3, 9, b"").encoded_len();
        for max in [0, 1, empty - 1, empty] {
            let p = refusal_packet(Refusal::TagInUse, 3, 9, &mut buf, max);
            assert_eq!(p.payload(), b"", "{max}");
        }
        // Across the length prefix's width: a 200-byte limit with a long
        // text would need a 2-byte prefix; every limit is met exactly or
        // with the text whole.
        for max in 0..200 {
            for (channel, tag) in [(0, 0), (u64::MAX, u64::MAX), (300, 1 << 40)] {
                for refusal in [
                    Refusal::TagInUse,
                    Refusal::Text(reason::REQUESTS_NO_LONGER_ALLOWED),
                ] {
                    let p = refusal_packet(refusal, channel, tag, &mut buf, max);
                    let len = p.encoded_len();
                    let floor = Packet::failure_bytes(channel, tag, b"").encoded_len();
                    assert!(len <= max.max(floor), "{max} {channel} {tag}: {len}");
                }
            }
        }
    }

    #[test]
    fn submit_gate_order() {
        use SendState::{Closing, Open, RequestsEnded};
        use Transport::{Eof, Lost};
        let gone = Err(SubmitError::PeerGone);
        assert_eq!(submit_gate(Transport::Open, false, Open), Ok(()));
        assert_eq!(submit_gate(Eof, false, Open), Ok(()));
        // A loss fails a submit even before the receive side has ended
        // (packets held back behind unpolled events).
        assert_eq!(submit_gate(Lost, false, Open), gone);
        assert_eq!(submit_gate(Lost, false, Closing), gone);
        assert_eq!(submit_gate(Transport::Open, true, RequestsEnded), gone);
        assert_eq!(
            submit_gate(Transport::Open, false, RequestsEnded),
            Err(SubmitError::RequestsEnded)
        );
        assert_eq!(eof_end(Transport::Open, 7), 7);
        assert_eq!(eof_end(Eof, 7), 7);
        assert_eq!(eof_end(Lost, 7), u64::MAX);
    }

    #[test]
    fn kinds() {
        let h = |p: Packet<'_>| Head::of(&p);
        assert_eq!(h(super::super::wire::EOF).kind(0), Kind::Eof);
        assert_eq!(h(super::super::wire::ERQ).kind(0), Kind::Erq);
        let m = Packet::from_parts(0, 5, 0, Some(0), b"").unwrap();
        assert_eq!(h(m).kind(0), Kind::MalformedMarker);
        let r = Packet::request(0, 5, 7, 0, b"").unwrap();
        assert_eq!(h(r).kind(4), Kind::TagTooLarge);
        assert_eq!(h(r).kind(5), Kind::Request { rq_type: 7 });
        let r = Packet::response(0, 5, true, 3, b"").unwrap();
        assert_eq!(h(r).kind(5), Kind::Response);
        assert_eq!(h(r).status(), (true, 3));
    }
}
