//! The driver's batches from [`PacketConnection::call_batch`]: each one's
//! results so far and unsent requests, which batch request each of our
//! tags is (by runs of consecutive tags, [`BatchRuns`]), and how many
//! results they miss in all.
//!
//! [`PacketConnection::call_batch`]: super::PacketConnection::call_batch

use bytes::Bytes;
use framewire::packet::SubmitError;
use slab::Slab;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::batch::BatchRequest;
use super::connection::Response;
use super::driver::{IdMap, Outcome};
use super::error::CallError;
use super::runs::BatchRuns;

/// Batch response payloads up to this long are copied into the batch's
/// one buffer (each result then a slice of it); longer ones are taken
/// from the receive buffer without copying.
pub(crate) const BATCH_COPY_MAX: usize = 4096;

/// The most a batch reserves at once for its copied payloads, guessing from
/// the first one's length.
const BATCH_RESERVE_MAX: usize = 1 << 20;

/// A batch's outcomes so far, in the caller's order. Results arriving in
/// order (the common case: responses come back as the requests went out)
/// are pushed; the first one out of order spreads the vector to one entry
/// per request, placeholders where results are missing, and a bit per
/// request then tells which are in.
struct Outcomes {
    values: Vec<Outcome>,
    /// `Some` once spread: one bit per request, set when its result is in.
    done: Option<Vec<u64>>,
    /// How many requests the batch has.
    len: usize,
}

impl Outcomes {
    fn new(n: usize) -> Self {
        Outcomes {
            values: Vec::with_capacity(n),
            done: None,
            len: n,
        }
    }

    /// Sets request `index`'s outcome.
    #[inline]
    fn set(&mut self, index: usize, outcome: Outcome) {
        if self.done.is_none() && index == self.values.len() {
            self.values.push(outcome);
        } else {
            self.set_out_of_order(index, outcome);
        }
    }

    /// [`set`](Self::set) for a result that is not the next in order:
    /// spreads the vector first if it is not yet.
    #[cold]
    #[inline(never)]
    fn set_out_of_order(&mut self, index: usize, outcome: Outcome) {
        let len = self.len;
        let done = self.done.get_or_insert_with(|| {
            // Every result in so far is in order, at its own index.
            let mut done = vec![0u64; len.div_ceil(64)];
            for index in 0..self.values.len() {
                done[index / 64] |= 1 << (index % 64);
            }
            self.values.resize(len, Err(CallError::TimedOut));
            done
        });
        self.values[index] = outcome;
        done[index / 64] |= 1 << (index % 64);
    }

    /// Whether request `index` has its outcome.
    #[inline]
    fn has(&self, index: usize) -> bool {
        match &self.done {
            None => index < self.values.len(),
            Some(done) => done[index / 64] & (1 << (index % 64)) != 0,
        }
    }

    /// Request `index`'s outcome, if in.
    fn get_mut(&mut self, index: usize) -> Option<&mut Outcome> {
        if self.has(index) {
            self.values.get_mut(index)
        } else {
            None
        }
    }
}

/// One batch: its outcomes so far and the requests not yet handed to the
/// core.
pub(crate) struct OpenBatch {
    id: u64,
    reply: oneshot::Sender<Vec<Outcome>>,
    outcomes: Outcomes,
    /// Requests not yet in the core (waiting for room), the first of them
    /// at index `next`.
    rest: std::vec::IntoIter<BatchRequest>,
    pub(crate) next: usize,
    pub(crate) deadline: Option<Instant>,
    /// Results still missing.
    outstanding: usize,
    /// Short response payloads, copied one after another: each result in
    /// `spans` gets its slice when the batch is sent.
    payloads: Vec<u8>,
    /// `(result index, start, end)` in `payloads`.
    spans: Vec<(usize, usize, usize)>,
}

impl OpenBatch {
    /// Sets request `index`'s result.
    #[inline]
    fn set(&mut self, index: usize, outcome: Outcome) {
        self.outcomes.set(index, outcome);
    }

    /// A response whose payload (at most [`BATCH_COPY_MAX`]) is copied into
    /// the batch's buffer; its `payload` is set when the batch is sent.
    #[inline]
    fn copied_response(&mut self, index: usize, ok: bool, flags: u64, payload: &[u8]) -> Response {
        if self.payloads.capacity() == 0 {
            // Room for as many of this size as are missing (within a
            // bound), not a doubling per few responses.
            let hint = payload.len().saturating_mul(self.outstanding);
            self.payloads.reserve(hint.min(BATCH_RESERVE_MAX));
        }
        let start = self.payloads.len();
        self.payloads.extend_from_slice(payload);
        self.spans.push((index, start, self.payloads.len()));
        Response {
            ok,
            flags,
            payload: Bytes::new(),
        }
    }

    /// Sends the results to the caller, the copied payloads in place.
    fn send(mut self) {
        if !self.spans.is_empty() {
            let payloads = Bytes::from(self.payloads);
            for (index, start, end) in self.spans {
                if let Some(Ok(response)) = self.outcomes.get_mut(index) {
                    response.payload = payloads.slice(start..end);
                }
            }
        }
        let _ = self.reply.send(self.outcomes.values);
    }
}

/// Which request of which open batch a response answers, from
/// [`Batches::find`]: the batch's slot and the request's index in it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchSlot {
    slot: usize,
    index: usize,
}

/// Every batch not fully answered.
#[derive(Default)]
pub(crate) struct Batches {
    /// The batches, each in a slot that stays its own until it ends (a
    /// response finds its batch there through the runs, with no hashing).
    open: Slab<OpenBatch>,
    /// Each batch's slot, by id (for the commands, which name batches by
    /// id).
    slots: IdMap<u64, usize>,
    /// Which batch request each of our tags in the core is, by slot.
    runs: BatchRuns,
    /// Results the batches miss, all together.
    outstanding: usize,
}

impl Batches {
    /// Results the batches miss, all together.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Starts batch `id` of `requests`, none sent yet (at least one).
    pub(crate) fn start(
        &mut self,
        id: u64,
        requests: Vec<BatchRequest>,
        deadline: Option<Instant>,
        reply: oneshot::Sender<Vec<Outcome>>,
    ) {
        let n = requests.len();
        let slot = self.open.insert(OpenBatch {
            id,
            reply,
            outcomes: Outcomes::new(n),
            rest: requests.into_iter(),
            next: 0,
            deadline,
            outstanding: n,
            payloads: Vec::new(),
            // At most one span per request.
            spans: Vec::with_capacity(n),
        });
        self.slots.insert(id, slot);
        self.outstanding += n;
    }

    /// Batch `id`, if not finished.
    pub(crate) fn get(&self, id: u64) -> Option<&OpenBatch> {
        self.open.get(*self.slots.get(&id)?)
    }

    /// Hands batch `id`'s unsent requests to `submit` (the core's), in
    /// order, until it answers that the core has no room: returns whether
    /// none is left unsent (the batch is sent its results if none is
    /// missing then). A request the core refuses for good ends with the
    /// error.
    pub(crate) fn send_with(
        &mut self,
        id: u64,
        mut submit: impl FnMut(&BatchRequest) -> Result<u64, SubmitError>,
    ) -> bool {
        let Some(&slot) = self.slots.get(&id) else {
            return true;
        };
        let b = &mut self.open[slot];
        while let Some(rq) = b.rest.as_slice().first() {
            match submit(rq) {
                Ok(tag) => self.runs.insert(rq.channel, tag, slot, b.next),
                Err(SubmitError::TransmitFull { .. } | SubmitError::TooManyPending { .. }) => {
                    return false;
                }
                Err(e) => {
                    b.set(b.next, Err(CallError::Submit(e)));
                    b.outstanding -= 1;
                    self.outstanding -= 1;
                }
            }
            b.rest.next();
            b.next += 1;
        }
        self.finish_if_done(slot);
        true
    }

    /// Ends every unsent request of batch `id` with `error`, and sends the
    /// batch if nothing else is missing.
    pub(crate) fn fail_unsent(&mut self, id: u64, error: CallError) {
        let Some(&slot) = self.slots.get(&id) else {
            return;
        };
        let b = &mut self.open[slot];
        while b.rest.next().is_some() {
            let index = b.next;
            b.set(index, Err(error));
            b.next += 1;
            b.outstanding -= 1;
            self.outstanding -= 1;
        }
        self.finish_if_done(slot);
    }

    /// Sends the batch in `slot` its results if none is missing.
    fn finish_if_done(&mut self, slot: usize) {
        if self.open.get(slot).is_some_and(|b| b.outstanding == 0) {
            self.finish(slot);
        }
    }

    fn finish(&mut self, slot: usize) {
        if let Some(b) = self.open.try_remove(slot) {
            self.slots.remove(&b.id);
            self.runs.remove_batch(slot);
            b.send();
        }
    }

    /// Which batch request our request `(channel, tag)` is, if a batch's.
    #[inline]
    pub(crate) fn find(&mut self, channel: u64, tag: u64) -> Option<BatchSlot> {
        if self.outstanding == 0 {
            return None;
        }
        let (slot, index) = self.runs.find(channel, tag)?;
        Some(BatchSlot { slot, index })
    }

    /// Gives batch request `request` the outcome `outcome` makes of the
    /// batch, and sends the batch its results if it was the last one
    /// missing.
    #[inline]
    pub(crate) fn complete(
        &mut self,
        BatchSlot { slot, index }: BatchSlot,
        outcome: impl FnOnce(&mut OpenBatch) -> Outcome,
    ) {
        let Some(b) = self.open.get_mut(slot) else {
            return;
        };
        let outcome = outcome(b);
        b.set(index, outcome);
        b.outstanding -= 1;
        self.outstanding -= 1;
        if b.outstanding == 0 {
            self.finish(slot);
        }
    }

    /// [`complete`](Self::complete) with a response whose payload is
    /// copied into the batch's buffer.
    #[inline]
    pub(crate) fn complete_copied(
        &mut self,
        request: BatchSlot,
        ok: bool,
        flags: u64,
        payload: &[u8],
    ) {
        self.complete(request, |b| {
            Ok(b.copied_response(request.index, ok, flags, payload))
        });
    }

    /// Forgets batch `id` (its future was dropped): calls `abandon` with
    /// each of its requests still in the core.
    pub(crate) fn abandon(&mut self, id: u64, mut abandon: impl FnMut(u64, u64)) {
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        let b = self.open.remove(slot);
        self.outstanding -= b.outstanding;
        for (channel, tag, index) in self.runs.requests_of(slot) {
            if !b.outcomes.has(index) {
                abandon(channel, tag);
            }
        }
        self.runs.remove_batch(slot);
    }

    /// Ends every batch, `error` for each missing result.
    pub(crate) fn fail_all(&mut self, error: CallError) {
        self.slots.clear();
        for mut b in self.open.drain() {
            for index in 0..b.outcomes.len {
                if !b.outcomes.has(index) {
                    b.set(index, Err(error));
                }
            }
            b.send();
        }
        self.runs.clear();
        self.outstanding = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::{Outcome, Outcomes};
    use crate::packet::{CallError, Response};
    use bytes::Bytes;

    fn response(n: u64) -> Response {
        Response {
            ok: true,
            flags: n,
            payload: Bytes::new(),
        }
    }

    fn flags(outcomes: &[Outcome]) -> Vec<Option<u64>> {
        outcomes
            .iter()
            .map(|o| o.as_ref().ok().map(|r| r.flags))
            .collect()
    }

    #[test]
    fn results_in_order_are_pushed() {
        let mut o = Outcomes::new(3);
        for i in 0..3 {
            assert!(!o.has(i));
            o.set(i, Ok(response(i as u64)));
            assert!(o.has(i));
        }
        assert!(o.done.is_none());
        assert_eq!(flags(&o.values), [Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn a_result_out_of_order_spreads_the_vector() {
        let mut o = Outcomes::new(130);
        o.set(0, Ok(response(0)));
        o.set(1, Ok(response(1)));
        // Index 2 is skipped: the vector spreads to one entry per request.
        o.set(129, Ok(response(129)));
        assert!(o.done.is_some());
        assert_eq!(o.values.len(), 130);
        assert!(o.has(0) && o.has(1) && o.has(129));
        assert!(!o.has(2) && !o.has(64) && !o.has(128));
        o.set(2, Err(CallError::TimedOut));
        assert!(o.has(2));
        for i in 3..129 {
            o.set(i, Ok(response(i as u64)));
        }
        let got = flags(&o.values);
        assert_eq!(got[..3], [Some(0), Some(1), None]);
        assert_eq!(got[3..], (3..130).map(Some).collect::<Vec<_>>()[..]);
        assert!(o.get_mut(2).is_some_and(|r| r.is_err()));
    }
}
