//! The driver's batches from [`PacketConnection::call_batch`]: each one's
//! results so far and unsent requests, which batch request each of our
//! tags is (by runs of consecutive tags, [`BatchRuns`]), and how many
//! results they miss in all.
//!
//! [`PacketConnection::call_batch`]: super::PacketConnection::call_batch

use bytes::Bytes;
use framewire::packet::SubmitError;
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

/// One batch: its outcomes so far and the requests not yet handed to the
/// core.
pub(crate) struct OpenBatch {
    reply: oneshot::Sender<Vec<Outcome>>,
    /// One per request, in the caller's order; a request without its result
    /// yet holds a placeholder (its bit in `done` is clear), so the vector
    /// goes to the caller as it is.
    results: Vec<Outcome>,
    /// One bit per request: its result is in `results`.
    done: Vec<u64>,
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
        self.results[index] = outcome;
        self.done[index / 64] |= 1 << (index % 64);
    }

    /// Whether request `index` has its result.
    #[inline]
    fn has(&self, index: usize) -> bool {
        self.done[index / 64] & (1 << (index % 64)) != 0
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
                if let Ok(response) = &mut self.results[index] {
                    response.payload = payloads.slice(start..end);
                }
            }
        }
        let _ = self.reply.send(self.results);
    }
}

/// Every batch not fully answered.
#[derive(Default)]
pub(crate) struct Batches {
    states: IdMap<u64, OpenBatch>,
    /// Which batch request each of our tags in the core is.
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
        self.states.insert(
            id,
            OpenBatch {
                reply,
                results: vec![Err(CallError::TimedOut); n],
                done: vec![0; n.div_ceil(64)],
                rest: requests.into_iter(),
                next: 0,
                deadline,
                outstanding: n,
                payloads: Vec::new(),
                // At most one span per request.
                spans: Vec::with_capacity(n),
            },
        );
        self.outstanding += n;
    }

    /// Batch `id`, if not finished.
    pub(crate) fn get(&self, id: u64) -> Option<&OpenBatch> {
        self.states.get(&id)
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
        let Some(b) = self.states.get_mut(&id) else {
            return true;
        };
        while let Some(rq) = b.rest.as_slice().first() {
            match submit(rq) {
                Ok(tag) => self.runs.insert(rq.channel, tag, id, b.next),
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
        self.finish_if_done(id);
        true
    }

    /// Ends every unsent request of batch `id` with `error`, and sends the
    /// batch if nothing else is missing.
    pub(crate) fn fail_unsent(&mut self, id: u64, error: CallError) {
        if let Some(b) = self.states.get_mut(&id) {
            while b.rest.next().is_some() {
                let index = b.next;
                b.set(index, Err(error));
                b.next += 1;
                b.outstanding -= 1;
                self.outstanding -= 1;
            }
        }
        self.finish_if_done(id);
    }

    /// Sends batch `id` its results if none is missing.
    pub(crate) fn finish_if_done(&mut self, id: u64) {
        if self.states.get(&id).is_some_and(|b| b.outstanding == 0) {
            self.finish(id);
        }
    }

    fn finish(&mut self, id: u64) {
        if let Some(b) = self.states.remove(&id) {
            self.runs.remove_batch(id);
            b.send();
        }
    }

    /// `(batch, index)` of our request `(channel, tag)`, if a batch's.
    #[inline]
    pub(crate) fn find(&mut self, channel: u64, tag: u64) -> Option<(u64, usize)> {
        if self.outstanding == 0 {
            return None;
        }
        self.runs.find(channel, tag)
    }

    /// Gives request `index` of batch `id` the outcome `outcome` makes of
    /// the batch, and sends the batch its results if it was the last one
    /// missing. One look-up of the batch.
    #[inline]
    pub(crate) fn complete(
        &mut self,
        (id, index): (u64, usize),
        outcome: impl FnOnce(&mut OpenBatch) -> Outcome,
    ) {
        let Some(b) = self.states.get_mut(&id) else {
            return;
        };
        let outcome = outcome(b);
        b.set(index, outcome);
        b.outstanding -= 1;
        self.outstanding -= 1;
        if b.outstanding == 0 {
            self.finish(id);
        }
    }

    /// [`complete`](Self::complete) with a response whose payload is
    /// copied into the batch's buffer.
    #[inline]
    pub(crate) fn complete_copied(
        &mut self,
        (id, index): (u64, usize),
        ok: bool,
        flags: u64,
        payload: &[u8],
    ) {
        self.complete((id, index), |b| {
            Ok(b.copied_response(index, ok, flags, payload))
        });
    }

    /// Forgets batch `id` (its future was dropped): calls `abandon` with
    /// each of its requests still in the core.
    pub(crate) fn abandon(&mut self, id: u64, mut abandon: impl FnMut(u64, u64)) {
        let Some(b) = self.states.remove(&id) else {
            return;
        };
        self.outstanding -= b.outstanding;
        for (channel, tag, index) in self.runs.requests_of(id) {
            if !b.has(index) {
                abandon(channel, tag);
            }
        }
        self.runs.remove_batch(id);
    }

    /// Ends every batch, `error` for each missing result.
    pub(crate) fn fail_all(&mut self, error: CallError) {
        for (_, mut b) in self.states.drain() {
            for index in 0..b.results.len() {
                if !b.has(index) {
                    b.set(index, Err(error));
                }
            }
            b.send();
        }
        self.runs.clear();
        self.outstanding = 0;
    }
}
