//! The calling side: responses, and handles on requests in flight.

use std::borrow::Cow;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::connection::Shared;
use super::error::CallError;

/// The peer's answer to a request: the original's `(ok, flags, payload)`.
///
/// A failure is a response too (`ok == false`, flags 0, a UTF-8 reason as
/// payload, e.g. `exception during handler`), not an error: see
/// [`failure_reason`](Response::failure_reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The response's user flags.
    pub flags: u64,
    /// The response payload.
    pub payload: Bytes,
}

impl Response {
    /// For a failure response, its reason (the payload as UTF-8, invalid
    /// sequences replaced); `None` when `ok`.
    ///
    /// ```
    /// use framewire_std::packet::Response;
    /// let r = Response { ok: false, flags: 0, payload: "no request handler".into() };
    /// assert_eq!(r.failure_reason().as_deref(), Some("no request handler"));
    /// ```
    pub fn failure_reason(&self) -> Option<Cow<'_, str>> {
        (!self.ok).then(|| String::from_utf8_lossy(&self.payload))
    }
}

pub(crate) type Outcome = Result<Response, CallError>;

/// Where the connection puts the outcome of one request.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct SlotState {
    outcome: Option<Outcome>,
    waiting: bool,
    /// The read role was offered to this slot's caller.
    offered: bool,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the outcome (once) and wakes the waiter.
    pub(crate) fn complete(&self, outcome: Outcome) {
        let mut state = self.lock();
        if state.outcome.is_none() {
            state.outcome = Some(outcome);
            if state.waiting {
                self.ready.notify_all();
            }
        }
    }

    fn peek(&self) -> Option<Outcome> {
        self.lock().outcome.clone()
    }

    /// The outcome is in.
    pub(crate) fn is_done(&self) -> bool {
        self.lock().outcome.is_some()
    }

    /// Offers the read role to the waiting caller; false (no offer) if the
    /// outcome is in already.
    pub(crate) fn offer(&self) -> bool {
        let mut state = self.lock();
        if state.outcome.is_some() {
            return false;
        }
        state.offered = true;
        if state.waiting {
            self.ready.notify_all();
        }
        true
    }

    /// Whether the role was offered (and forgets the offer).
    pub(crate) fn take_offer(&self) -> bool {
        std::mem::take(&mut self.lock().offered)
    }

    /// Blocks until the outcome is in, the read role is offered, or `wake`.
    pub(crate) fn wait_for_outcome_or_offer(&self, wake: Option<Instant>) {
        let mut state = self.lock();
        while state.outcome.is_none() && !state.offered {
            let now = Instant::now();
            if wake.is_some_and(|w| w <= now) {
                break;
            }
            state.waiting = true;
            state = match wake {
                None => self
                    .ready
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(wake) => {
                    self.ready
                        .wait_timeout(state, wake - now)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
            state.waiting = false;
        }
    }
}

/// A request in flight, from [`PacketConnection::submit`](super::PacketConnection::submit).
///
/// [`wait`](PendingCall::wait) blocks for its outcome. Dropping the handle
/// before the outcome abandons the request: its response, if it comes, is
/// ignored, and nothing is kept for it.
#[derive(Debug)]
pub struct PendingCall {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    channel: u64,
    tag: u64,
    /// When the request times out, as the core counts it.
    deadline: Option<Instant>,
}

impl PendingCall {
    pub(crate) fn new(
        shared: Arc<Shared>,
        slot: Arc<Slot>,
        channel: u64,
        tag: u64,
        deadline: Option<Instant>,
    ) -> Self {
        PendingCall {
            shared,
            slot,
            channel,
            tag,
            deadline,
        }
    }

    /// The request's channel.
    pub fn channel(&self) -> u64 {
        self.channel
    }

    /// The request's tag.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Blocks until the response arrives, the request times out, or the
    /// peer's stream ends (then [`CallError::Cancelled`]: never a hang).
    pub fn wait(self) -> Result<Response, CallError> {
        loop {
            if let Some(outcome) = self.wait_until(None) {
                return outcome;
            }
        }
    }

    /// Waits at most `limit` (the request itself goes on); `None` if there
    /// is no outcome yet. Once there is one, every later call returns it
    /// again.
    pub fn wait_timeout(&self, limit: Duration) -> Option<Result<Response, CallError>> {
        self.wait_until(Some(Instant::now() + limit))
    }

    /// The outcome if there is one, without blocking.
    pub fn try_wait(&self) -> Option<Result<Response, CallError>> {
        self.wait_until(Some(Instant::now()))
    }

    fn wait_until(&self, limit: Option<Instant>) -> Option<Outcome> {
        loop {
            if let Some(outcome) = self.slot.peek() {
                return Some(outcome);
            }
            let now = Instant::now();
            if self.deadline.is_some_and(|d| d <= now) {
                // The request's own deadline: tell the core, which ends it.
                self.shared.handle_timeout();
                continue;
            }
            let wake = match (self.deadline, limit) {
                (Some(d), Some(l)) => Some(d.min(l)),
                (d, l) => d.or(l),
            };
            if wake.is_some_and(|w| w <= now) {
                return None;
            }
            // Reads the stream itself if nobody else does, else waits.
            self.shared.caller_read(&self.slot, wake);
        }
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if self.slot.peek().is_none() {
            self.shared.abandon(self.channel, self.tag);
        }
    }
}
