//! The fast path of [`Connection::poll_lent_handling`] (and so of
//! `poll_lent_answering` and `poll_lent`): small plain packets on channel 0,
//! read straight from the receive buffer and handled with no `Packet`,
//! `Head`, `Kind` or `Step`.
//!
//! It only ever takes packets the general step would handle the same way,
//! with the same counters, tables and bytes: a request that would be
//! delivered (no refusal, room in flight) and a response to one of our
//! waiting requests. Anything else (a marker, another channel, a longer
//! header or body, an unknown response, an incomplete packet, a connection
//! whose receive side ended or which is closing) is left untouched for the
//! general step, which then decides. The differential tests hold both
//! paths to the same outcome on random sessions.

use super::{Answerer, Connection, Delivery, LentRequest, LentResponse, Transport};

/// A packet read by [`small`]: its fields and where its payload is.
#[derive(Clone, Copy, Debug)]
struct Small {
    tag: u64,
    /// The `F` field.
    f: u8,
    /// The wire request type (a request's; never 0 here).
    rq_type_wire: u8,
    /// Bytes before the payload, the length prefix included.
    header: usize,
    /// The whole packet's length.
    len: usize,
}

/// The packet at the start of `buf`, if it is whole and small and plain: a
/// one-octet length prefix (a body under 128 bytes), a tag of one to three
/// octets without leading `0x80` octets, a one-octet `F` on channel 0, and
/// for a request a one-octet wire type other than 0 (the markers). `None`
/// for anything else: the general parse then decides, errors included.
#[allow(clippy::inline_always)]
#[inline(always)]
fn small(buf: &[u8]) -> Option<Small> {
    let (&prefix, rest) = buf.split_first()?;
    if prefix >= 0x80 {
        return None;
    }
    let body = rest.get(..usize::from(prefix))?;
    let (tag, n) = match *body {
        [a, ..] if a < 0x80 => (u64::from(a), 1),
        [a, b, ..] if a > 0x80 && b < 0x80 => ((u64::from(a & 0x7f) << 7) | u64::from(b), 2),
        [a, b, c, ..] if a > 0x80 && b >= 0x80 && c < 0x80 => (
            (u64::from(a & 0x7f) << 14) | (u64::from(b & 0x7f) << 7) | u64::from(c),
            3,
        ),
        _ => return None,
    };
    let f = *body.get(n)?;
    if f >= 0x80 || f & 1 != 0 {
        return None;
    }
    let (rq_type_wire, header) = if f & 2 == 0 {
        (0, 1 + n + 1)
    } else {
        let w = *body.get(n + 1)?;
        if w >= 0x80 || w == 0 {
            return None;
        }
        (w, 1 + n + 2)
    };
    Some(Small {
        tag,
        f,
        rq_type_wire,
        header,
        len: 1 + usize::from(prefix),
    })
}

impl Connection {
    /// Handles the leading small packets of the receive buffer: requests are
    /// lent to `answer` and, answered, done; responses to ours are lent to
    /// `receive` and, taken, done. The first request or response left is
    /// returned for delivery (counted, its tables updated, still in the
    /// receive buffer), exactly as the general step would deliver it.
    /// `None` when the next packet is not one this path takes.
    #[inline]
    pub(super) fn fast_next(
        &mut self,
        answer: &mut impl FnMut(LentRequest<'_>, &mut Answerer<'_>),
        receive: &mut impl FnMut(LentResponse<'_>) -> bool,
    ) -> Option<Delivery> {
        // Markers, ends and limits below a small packet's go the general
        // way (a small packet never reaches them otherwise).
        if self.rx_end.is_some()
            || !self.events.is_empty()
            || self.limits.varint.max_octets < 3
            || self.limits.max_packet_len < 128
        {
            return None;
        }
        // A request is taken only where the general step would deliver it:
        // no refusal whatever its tag, and (checked per packet) room in
        // flight. Answering in place needs a transport that can send (an
        // answer after a loss is counted as dropped instead).
        let requests = self.config.accept_requests
            && !self.peer_erq
            && !self.send.closing()
            && self.transport == Transport::Open;
        loop {
            let p = small(self.rx.unhandled())?;
            if p.tag > self.config.max_tag {
                return None;
            }
            if p.f & 2 == 0 {
                let d = self.small_response(p)?;
                let response = d.lend_response(&self.rx.unhandled()[p.header..p.len]);
                if !receive(response) {
                    return Some(d);
                }
                self.rx.consume(p.len);
                continue;
            }
            if !requests || self.inflight >= self.config.max_inflight_inbound {
                return None;
            }
            let ch = &self.channels.zero;
            if ch.inflight.contains(p.tag) || ch.seen.contains(p.tag) {
                return None;
            }
            self.stalled = false;
            self.stats.packets_received += 1;
            self.stats.requests_received += 1;
            let request = LentRequest {
                channel: 0,
                tag: p.tag,
                rq_type: u64::from(p.rq_type_wire - 1),
                flags: u64::from(p.f >> 2),
                payload: &self.rx.unhandled()[p.header..p.len],
            };
            let limits = (self.config.max_packet_len, true);
            if !Answerer::offer(&mut self.tx, limits, request, answer) {
                return Some(Delivery {
                    channel: 0,
                    tag: p.tag,
                    rq_type: Some(request.rq_type),
                    pflags: request.flags,
                    len: p.len,
                    payload_len: p.len - p.header,
                });
            }
            self.rx.consume(p.len);
            self.remember(0, p.tag, false);
            // `after_answer` with a transport that can send, no close
            // waiting for this answer (not closing) and parsing not stalled
            // (just reset).
            self.stats.responses_sent += 1;
        }
    }

    /// The small response `p` at the front of the receive buffer, for
    /// delivery if it answers one of our waiting requests; else `None`
    /// (the general step reports it as unknown).
    // Inlined into the loop (the compiler called it otherwise: its
    // prologue and the `Delivery` it returns, for every response).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn small_response(&mut self, p: Small) -> Option<Delivery> {
        let deadline = self.channels.zero.pending.remove(p.tag)?;
        self.pending -= 1;
        if deadline.is_some() {
            self.timed -= 1;
            self.prune_deadlines();
        }
        self.stalled = false;
        self.stats.packets_received += 1;
        self.stats.responses_received += 1;
        Some(Delivery {
            channel: 0,
            tag: p.tag,
            rq_type: None,
            pflags: u64::from(p.f >> 2),
            len: p.len,
            payload_len: p.len - p.header,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::small;
    use crate::packet::wire::{Packet, ParseLimits, EOF_BYTES, ERQ_BYTES};
    use std::vec::Vec;

    fn encoded(p: &Packet<'_>) -> Vec<u8> {
        let mut out = std::vec![0u8; p.encoded_len()];
        p.encode(&mut out).unwrap();
        out
    }

    /// Every packet `small` reads, it reads as the general parse does.
    #[test]
    fn small_reads_what_the_general_parse_reads() {
        let limits = ParseLimits::default();
        let mut taken = 0;
        for tag in [
            0u64,
            1,
            2,
            127,
            128,
            300,
            16_383,
            16_384,
            (1 << 21) - 1,
            1 << 21,
        ] {
            for flags in [0u64, 1, 31, 32] {
                for payload in [&b""[..], b"0123456789abcdef", &[7u8; 120][..]] {
                    let packets = [
                        Packet::request(0, tag, 0, flags, payload).unwrap(),
                        Packet::request(0, tag, 126, flags, payload).unwrap(),
                        Packet::request(0, tag, 127, flags, payload).unwrap(),
                        Packet::request(3, tag, 0, flags, payload).unwrap(),
                        Packet::response(0, tag, true, flags, payload).unwrap(),
                        Packet::response(0, tag, false, flags, payload).unwrap(),
                        Packet::response(9, tag, true, flags, payload).unwrap(),
                    ];
                    for p in packets {
                        let bytes = encoded(&p);
                        let Some(s) = small(&bytes) else {
                            continue;
                        };
                        taken += 1;
                        let (q, len) = Packet::parse(&bytes, &limits).unwrap().unwrap();
                        assert_eq!(s.len, len);
                        assert_eq!(s.tag, q.tag());
                        assert_eq!(u64::from(s.f >> 2), q.pflags());
                        assert_eq!(q.channel(), 0);
                        assert_eq!(
                            q.rq_type_wire(),
                            (s.f & 2 != 0).then_some(u64::from(s.rq_type_wire))
                        );
                        assert_eq!(&bytes[s.header..s.len], q.payload());
                        // Every shorter prefix is incomplete here.
                        for cut in 0..bytes.len() {
                            assert!(small(&bytes[..cut]).is_none(), "cut {cut} of {bytes:02x?}");
                        }
                    }
                }
            }
        }
        assert!(taken > 100, "only {taken} packets taken");
    }

    /// What `small` leaves to the general parse.
    #[test]
    fn small_leaves_markers_channels_long_fields_and_leading_0x80() {
        for bytes in [
            &EOF_BYTES[..],
            &ERQ_BYTES[..],
            // Wire type 0 but no marker.
            &[0x03, 0x05, 0x02, 0x00][..],
            // Channel 5.
            &[0x05, 0x02, 0x03, 0x05, 0x01, 0x78][..],
            // A tag with a leading 0x80 octet (non-canonical).
            &[0x05, 0x80, 0x02, 0x02, 0x01, 0x78][..],
            // A two-octet F.
            &[0x04, 0x0c, 0x83, 0x7c, 0x66][..],
            // A two-octet wire type.
            &[0x05, 0x02, 0x02, 0x81, 0x00, 0x78][..],
            // A four-octet tag.
            &[0x07, 0x81, 0x80, 0x80, 0x00, 0x02, 0x01, 0x78][..],
            // A two-octet length prefix.
            &[0x81, 0x00][..],
        ] {
            assert!(small(bytes).is_none(), "{bytes:02x?}");
        }
    }
}
