//! Handling packets in place: what
//! [`Connection::poll_lent_answering`](super::Connection::poll_lent_answering)
//! and [`Connection::poll_lent_handling`](super::Connection::poll_lent_handling)
//! lend their closures.

use super::event::RespondError;
use super::reason;
use super::transmit::TransmitQueue;
use super::wire::{small_header, Packet};

/// A peer request lent to the closure of
/// [`Connection::poll_lent_answering`](super::Connection::poll_lent_answering):
/// its fields, and its payload borrowed from the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LentRequest<'a> {
    /// The request's channel.
    pub channel: u64,
    /// The request's tag.
    pub tag: u64,
    /// The user request type (wire type minus one).
    pub rq_type: u64,
    /// The request flags, as the peer gave them.
    pub flags: u64,
    /// The request payload.
    pub payload: &'a [u8],
}

/// A response to one of our requests, lent to the `receive` closure of
/// [`Connection::poll_lent_handling`](super::Connection::poll_lent_handling):
/// the fields of [`BorrowedEvent::ResponseReceived`](super::BorrowedEvent::ResponseReceived),
/// its payload borrowed from the receive buffer. The request is no longer
/// waiting when it is lent (its tag is free, its timeout gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LentResponse<'a> {
    /// The response's channel.
    pub channel: u64,
    /// The tag of our request it answers.
    pub tag: u64,
    /// Whether it is a success (`pflags & 1`); a failure's payload is the
    /// reason text.
    pub ok: bool,
    /// The response flags (`pflags >> 1`).
    pub flags: u64,
    /// The response payload.
    pub payload: &'a [u8],
}

/// Answers the request lent with it, at once: the response is encoded
/// straight into the connection's transmit queue. At most one answer is
/// taken; answer nothing to have the request delivered as an event instead.
///
/// The rules are those of [`Connection::respond`](super::Connection::respond)
/// and [`Connection::reject`](super::Connection::reject): nothing is queued
/// on an error, and after
/// [`handle_transport_lost`](super::Connection::handle_transport_lost) an
/// answer is accepted and dropped.
#[derive(Debug)]
pub struct Answerer<'c> {
    tx: &'c mut TransmitQueue,
    channel: u64,
    tag: u64,
    max_packet_len: usize,
    can_send: bool,
    answered: bool,
}

impl<'c> Answerer<'c> {
    /// Lends `request` to `answer` with an answerer queueing into `tx`
    /// under `(max_packet_len, can_send)`; returns whether it answered.
    pub(super) fn offer(
        tx: &'c mut TransmitQueue,
        (max_packet_len, can_send): (usize, bool),
        request: LentRequest<'_>,
        answer: &mut impl FnMut(LentRequest<'_>, &mut Answerer<'_>),
    ) -> bool {
        let mut answerer = Answerer {
            tx,
            channel: request.channel,
            tag: request.tag,
            max_packet_len,
            can_send,
            answered: false,
        };
        answer(request, &mut answerer);
        answerer.answered
    }

    /// Whether an answer was taken.
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// Answers successfully: `pflags = (flags << 1) | 1` and `payload`
    /// (copied). Fails with [`RespondError::NotInFlight`] if already
    /// answered, [`RespondError::Field`] if `flags` cannot be encoded, and
    /// [`RespondError::PayloadTooLong`] over
    /// [`Config::max_packet_len`](super::Config::max_packet_len).
    pub fn respond(&mut self, flags: u64, payload: &[u8]) -> Result<(), RespondError> {
        self.check_open()?;
        // A small response on channel 0 is written straight; the rest (and
        // every error) the general way.
        if self.channel == 0 && flags < 1 << 5 {
            let f = ((flags << 1) | 1) << 2;
            if let Some((header, n)) = small_header(self.tag, f, None, payload.len()) {
                if n + payload.len() <= self.max_packet_len {
                    if self.can_send {
                        self.tx.push_small(header, n, payload);
                    }
                    self.answered = true;
                    return Ok(());
                }
            }
        }
        let packet = Packet::response(self.channel, self.tag, true, flags, payload)
            .map_err(RespondError::Field)?;
        self.queue(&packet)
    }

    /// Answers with a failure: `pflags = 0` and `reason`. Fails as
    /// [`respond`](Self::respond) does.
    pub fn reject(&mut self, reason: &str) -> Result<(), RespondError> {
        self.check_open()?;
        self.queue(&Packet::failure(self.channel, self.tag, reason))
    }

    /// [`respond`](Self::respond), or when the response cannot be sent (its
    /// flags, its length) the original's failure for a handler that raised,
    /// [`reason::EXCEPTION_DURING_HANDLER`], as
    /// [`Connection::respond_or_fail`](super::Connection::respond_or_fail)
    /// does; the results are the same.
    pub fn respond_or_fail(
        &mut self,
        flags: u64,
        payload: &[u8],
    ) -> Result<Option<RespondError>, RespondError> {
        let answered = self.respond(flags, payload);
        or_fail(answered, || self.reject(reason::EXCEPTION_DURING_HANDLER))
    }

    /// [`reject`](Self::reject), falling back to
    /// [`reason::EXCEPTION_DURING_HANDLER`] as
    /// [`respond_or_fail`](Self::respond_or_fail) does.
    pub fn reject_or_fail(&mut self, reason: &str) -> Result<Option<RespondError>, RespondError> {
        let answered = self.reject(reason);
        or_fail(answered, || self.reject(reason::EXCEPTION_DURING_HANDLER))
    }

    fn check_open(&self) -> Result<(), RespondError> {
        if self.answered {
            Err(RespondError::NotInFlight {
                channel: self.channel,
                tag: self.tag,
            })
        } else {
            Ok(())
        }
    }

    fn queue(&mut self, packet: &Packet<'_>) -> Result<(), RespondError> {
        let staged = self.tx.stage(packet);
        let len = staged.len;
        if len > self.max_packet_len {
            return Err(RespondError::PayloadTooLong {
                len,
                max: self.max_packet_len,
            });
        }
        if self.can_send {
            self.tx.push_staged(&staged, packet.payload());
        }
        self.answered = true;
        Ok(())
    }
}

/// The `*_or_fail` rule of both answer paths: an answer that could not be
/// sent for its content (flags, length) is replaced by what `fail` sends
/// (the handler-failure text), and the reason is returned; an answer to a
/// request not in flight is an error as it is.
pub(super) fn or_fail(
    answered: Result<(), RespondError>,
    fail: impl FnOnce() -> Result<(), RespondError>,
) -> Result<Option<RespondError>, RespondError> {
    match answered {
        Ok(()) => Ok(None),
        Err(e @ RespondError::NotInFlight { .. }) => Err(e),
        Err(e) => {
            fail()?;
            Ok(Some(e))
        }
    }
}
