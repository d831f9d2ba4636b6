//! The receive half shared by both buffer modes: one decode loop over a small
//! buffer abstraction ([`RecvBuffer`]), so the owned and the borrowed stream
//! run the very same state machine.
//!
//! States (the `phase` field) and what moves between them:
//!
//! ```text
//!            handle_eof                 buffer drained, poll_event
//!   Open ───────────────► Draining ─────────────────────────────► Closed
//!     │                      │              (emits Event::Closed once)
//!     │ peer protocol error  │ peer protocol error (truncation included)
//!     └──────────┬───────────┘
//!                ▼
//!        Failed(ProtocolError)   (terminal; every fallible call repeats it)
//! ```
//!
//! Invariant: while `skip_remaining > 0` the buffer is empty (a `Skip` first
//! drops what is buffered, and only the rest is discarded from new input).

use core::ops::Range;

use super::error::{ProtocolError, StreamError};
use super::{Event, Stats, StreamState};
use crate::framing::{Decode, FrameError, Framing, Oversize};

/// The storage of a receive buffer: a window of received, not yet consumed
/// bytes (`filled`) followed by spare space new bytes go into.
pub(crate) trait RecvBuffer {
    /// The received bytes not yet consumed, oldest first.
    fn filled(&self) -> &[u8];
    /// Drops `n <= filled().len()` bytes from the front.
    fn discard(&mut self, n: usize);
    /// Consumes the frame `filled()[..len]` and lends its `payload` (a
    /// range within it), which stays in place until the next mutating call.
    fn take(&mut self, len: usize, payload: Range<usize>) -> &[u8];
    /// The most bytes `filled` may ever hold.
    fn capacity(&self) -> usize;
    /// Copies as much of `bytes` as fits under the capacity; returns how much.
    fn append(&mut self, bytes: &[u8]) -> usize;
    /// Spare space to receive into, making room (compacting or growing) when
    /// little is left. `want` is how many more bytes the current frame needs,
    /// 0 if unknown; an implementation may use it to avoid compacting.
    ///
    /// The spare space must stay where it is until the next `append` or
    /// `spare` call: `discard` may not move it (the caller may poll frames
    /// between reading into it and committing).
    fn spare(&mut self, want: usize) -> &mut [u8];
    /// Marks `n` bytes at the start of the spare space (no more than
    /// [`RecvBuffer::spare`] last offered) as received.
    fn commit(&mut self, n: usize);
}

/// `handle_input` stops at the end of a frame whose length is known when at
/// least this many bytes would follow it (see `Core::handle_input`).
pub(crate) const SPLIT_MIN_REST: usize = 1024;

/// `receive_buffer` offers no more than the rest of a frame at least this
/// long (16 KiB) whose length is known (see `Core::receive_buffer`).
pub(crate) const LARGE_FRAME: usize = 16 * 1024;

/// What the decode loop found; the buffer-specific wrapper turns it into an
/// [`Event`] (cutting the frame out of its buffer).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing to report until more input (or EOF) arrives.
    Nothing,
    /// `filled()[..len]` is a frame with the payload at `payload`. The
    /// wrapper must drop those `len` bytes.
    Frame { len: usize, payload: Range<usize> },
    /// An oversized frame is being skipped.
    Skipped(Oversize),
    /// The peer closed cleanly between frames (reported once).
    Closed,
}

impl Step {
    /// Turns the step into an event, cutting a frame with `frame`.
    #[inline]
    pub(crate) fn into_event<T>(
        self,
        frame: impl FnOnce(usize, Range<usize>) -> T,
    ) -> Option<Event<T>> {
        match self {
            Step::Nothing => None,
            Step::Frame { len, payload } => Some(Event::Frame(frame(len, payload))),
            Step::Skipped(o) => Some(Event::Skipped(o)),
            Step::Closed => Some(Event::Closed),
        }
    }
}

/// The framing, the receive state machine and the counters; buffer-agnostic.
/// The send-side checks live in `send.rs`.
#[derive(Debug)]
pub(crate) struct Core<F> {
    pub(crate) framing: F,
    phase: StreamState,
    /// Bytes still to discard from future input (an oversized frame).
    skip_remaining: u64,
    /// The length of the `Skip` being carried out (for `Truncated`).
    skip_len: u64,
    /// Bytes discarded so far of the over-long frame being skipped, for a
    /// `Truncated` at EOF while the framing is still discarding.
    discarded_in_frame: u64,
    /// The framing's last `Incomplete { need }`, while still undecided.
    need: Option<usize>,
    /// The length of the spare space `receive_buffer` last offered, less
    /// what was committed of it since: the most `commit_received` accepts.
    offered: usize,
    /// `close()` was called: no more sends.
    pub(crate) send_closed: bool,
    pub(crate) stats: Stats,
}

impl<F> Core<F> {
    pub(crate) fn state(&self) -> StreamState {
        self.phase
    }

    /// The terminal protocol error, if any.
    pub(crate) fn error(&self) -> Option<ProtocolError> {
        match self.phase {
            StreamState::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl<F: Framing> Core<F> {
    pub(crate) fn new(framing: F) -> Self {
        Core {
            framing,
            phase: StreamState::Open,
            skip_remaining: 0,
            skip_len: 0,
            discarded_in_frame: 0,
            need: None,
            offered: 0,
            send_closed: false,
            stats: Stats::default(),
        }
    }

    /// Bytes the current frame still needs beyond what is buffered, if known.
    fn want(&self, buffered: usize) -> usize {
        self.need.map_or(0, |n| n.saturating_sub(buffered))
    }

    #[inline]
    fn check_input(&self) -> Result<(), StreamError> {
        match self.phase {
            StreamState::Open => Ok(()),
            StreamState::Failed(e) => Err(StreamError::Protocol(e)),
            StreamState::Draining | StreamState::Closed => Err(StreamError::InputAfterEof),
        }
    }

    fn fail(&mut self, e: ProtocolError) -> StreamError {
        self.phase = StreamState::Failed(e);
        StreamError::Protocol(e)
    }

    /// Drops what a `Skip` still owes from the front of new input; returns
    /// how many bytes that was.
    #[inline]
    fn skip_input(&mut self, available: usize) -> usize {
        let n = usize::try_from(self.skip_remaining)
            .unwrap_or(usize::MAX)
            .min(available);
        self.skip_remaining -= n as u64;
        self.stats.bytes_skipped += n as u64;
        n
    }

    #[inline]
    pub(crate) fn handle_input<B: RecvBuffer>(
        &mut self,
        buf: &mut B,
        bytes: &[u8],
    ) -> Result<usize, StreamError> {
        self.check_input()?;
        let skipped = self.skip_input(bytes.len());
        // A skip still owed means all of `bytes` went; else the buffer is
        // back in use.
        let mut rest = &bytes[skipped..];
        // When the bytes complete a frame whose length is known and go on
        // past it, take them only up to its end. Once the caller has polled
        // that frame the buffer is empty, and the rest goes to its front
        // rather than after the frame, from where it would have to be moved
        // to make room (for frames about as long as the input chunks, a
        // second copy of nearly every payload).
        // Short tails are left alone: moving them costs less than a second
        // round of `handle_input` and `poll_event`.
        let want = self.want(buf.filled().len());
        if want > 0 && rest.len().saturating_sub(want) >= SPLIT_MIN_REST {
            rest = &rest[..want];
        }
        // The bytes go where an offered spare space was: the offer is void.
        self.offered = 0;
        let taken = skipped + buf.append(rest);
        self.stats.bytes_received += taken as u64;
        Ok(taken)
    }

    /// Spare space to read into. For a frame of at least [`LARGE_FRAME`]
    /// bytes whose length is known, no more than the rest of the frame is
    /// offered, so that a read ends at the frame's end: once the frame is
    /// polled the buffer is empty and the next frame starts at its front,
    /// and is never moved to make room (the same reason `handle_input`
    /// stops at a large frame's end). That costs at most one more read per
    /// large frame, against moving up to a frame's length.
    pub(crate) fn receive_buffer<'b, B: RecvBuffer>(&mut self, buf: &'b mut B) -> &'b mut [u8] {
        if self.phase != StreamState::Open {
            self.offered = 0;
            return &mut [];
        }
        let want = self.want(buf.filled().len());
        let spare = buf.spare(want);
        let offer = if want > 0 && self.need.is_some_and(|n| n >= LARGE_FRAME) {
            want.min(spare.len())
        } else {
            spare.len()
        };
        self.offered = offer;
        &mut spare[..offer]
    }

    pub(crate) fn commit_received<B: RecvBuffer>(
        &mut self,
        buf: &mut B,
        n: usize,
    ) -> Result<(), StreamError> {
        self.check_input()?;
        let spare = self.offered;
        if n > spare {
            return Err(StreamError::CommitExceedsSpare {
                committed: n,
                spare,
            });
        }
        self.offered -= n;
        buf.commit(n);
        self.stats.bytes_received += n as u64;
        // While skipping the buffer was empty, so the front is the new bytes.
        let skipped = self.skip_input(n);
        buf.discard(skipped);
        Ok(())
    }

    pub(crate) fn handle_eof(&mut self) -> Result<(), StreamError> {
        match self.phase {
            StreamState::Open => {
                self.phase = StreamState::Draining;
                Ok(())
            }
            StreamState::Draining | StreamState::Closed => Ok(()),
            StreamState::Failed(e) => Err(StreamError::Protocol(e)),
        }
    }

    /// The decode loop: runs the framing over the buffered bytes until it has
    /// something to report.
    ///
    /// The common case (open, not skipping, bytes buffered, a whole frame)
    /// is decided here without the loop; everything else goes to
    /// [`Core::poll_step_slow`], which is the full state machine.
    #[inline]
    pub(crate) fn poll_step<B: RecvBuffer>(&mut self, buf: &mut B) -> Result<Step, StreamError> {
        if matches!(self.phase, StreamState::Open) && self.skip_remaining == 0 {
            let filled = buf.filled();
            let buffered = filled.len();
            if buffered > 0 {
                let decoded = self.framing.decode(filled);
                if let Some(step) = self.after_decode(buf, decoded, buffered, false)? {
                    return Ok(step);
                }
            }
        }
        self.poll_step_slow(buf)
    }

    /// Every event available now, each handed to `f` as it is decoded;
    /// returns how many. While the stream is open and not skipping, frames
    /// are decoded in a tight loop (state checked once, frame counters
    /// updated once per run); anything else the framing reports goes
    /// through the same state machine as [`Core::poll_step`] (never decoded
    /// twice: framings keep state between calls). On an error the events
    /// before it were delivered and counted.
    #[inline]
    pub(crate) fn drain_with<B: RecvBuffer>(
        &mut self,
        buf: &mut B,
        mut f: impl FnMut(Event<&[u8]>),
    ) -> Result<usize, StreamError> {
        let mut events = 0usize;
        if matches!(self.phase, StreamState::Open) && self.skip_remaining == 0 {
            let mut frames = 0usize;
            loop {
                let filled = buf.filled();
                if filled.is_empty() {
                    break;
                }
                let buffered = filled.len();
                let decoded = match self.framing.decode(filled) {
                    Ok(Decode::Frame { len, payload }) => {
                        check_frame(len, &payload, buffered);
                        frames += 1;
                        f(Event::Frame(buf.take(len, payload)));
                        continue;
                    }
                    other => other,
                };
                // Count the run of frames first, so that they are counted
                // whatever comes next.
                self.count_frames(frames);
                events += frames;
                frames = 0;
                match self.after_decode(buf, decoded, buffered, false)? {
                    // Decode again: a `Skip` of a frame's rest.
                    None => {}
                    Some(Step::Nothing) => return Ok(events),
                    Some(step) => {
                        Self::deliver(buf, step, &mut f);
                        events += 1;
                    }
                }
                if self.skip_remaining > 0 {
                    break;
                }
            }
            self.count_frames(frames);
            events += frames;
        }
        loop {
            match self.poll_step(buf)? {
                Step::Nothing => return Ok(events),
                step => Self::deliver(buf, step, &mut f),
            }
            events += 1;
        }
    }

    /// Counts `n` frames delivered by [`Core::drain_with`]'s fast loop.
    #[inline]
    fn count_frames(&mut self, n: usize) {
        if n > 0 {
            self.need = None;
            self.stats.frames_received += n as u64;
        }
    }

    /// Hands the event of `step` to `f`, lending a frame from `buf`.
    #[inline]
    fn deliver<B: RecvBuffer>(buf: &mut B, step: Step, f: &mut impl FnMut(Event<&[u8]>)) {
        match step {
            Step::Nothing => {}
            Step::Frame { len, payload } => f(Event::Frame(buf.take(len, payload))),
            Step::Skipped(o) => f(Event::Skipped(o)),
            Step::Closed => f(Event::Closed),
        }
    }

    /// The whole decode loop (see [`Core::poll_step`]).
    fn poll_step_slow<B: RecvBuffer>(&mut self, buf: &mut B) -> Result<Step, StreamError> {
        loop {
            let eof = match self.phase {
                StreamState::Open => false,
                StreamState::Draining => true,
                StreamState::Closed => return Ok(Step::Nothing),
                StreamState::Failed(e) => return Err(StreamError::Protocol(e)),
            };
            if self.skip_remaining > 0 {
                if !eof {
                    return Ok(Step::Nothing);
                }
                let have = self.skip_len - self.skip_remaining;
                return Err(self.fail(ProtocolError::Truncated {
                    have: usize::try_from(have).unwrap_or(usize::MAX),
                    need: usize::try_from(self.skip_len).ok(),
                }));
            }
            let buffered = buf.filled().len();
            if buffered == 0 {
                self.need = None;
                if eof && self.framing.is_discarding() {
                    return Err(self.fail(ProtocolError::Truncated {
                        have: usize::try_from(self.discarded_in_frame).unwrap_or(usize::MAX),
                        need: None,
                    }));
                }
                if eof {
                    self.phase = StreamState::Closed;
                    return Ok(Step::Closed);
                }
                return Ok(Step::Nothing);
            }
            let decoded = self.framing.decode(buf.filled());
            if let Some(step) = self.after_decode(buf, decoded, buffered, eof)? {
                return Ok(step);
            }
        }
    }

    /// Acts on what the framing decoded from the `buffered` bytes: the step
    /// to report, or `None` to decode again (a `Skip` of a frame's rest).
    #[inline]
    fn after_decode<B: RecvBuffer>(
        &mut self,
        buf: &mut B,
        decoded: Result<Decode, FrameError>,
        buffered: usize,
        eof: bool,
    ) -> Result<Option<Step>, StreamError> {
        match decoded {
            Ok(Decode::Frame { len, payload }) => {
                check_frame(len, &payload, buffered);
                self.need = None;
                self.stats.frames_received += 1;
                Ok(Some(Step::Frame { len, payload }))
            }
            Ok(Decode::Skip { len, oversize }) => {
                assert!(len > 0, "framing bug: Skip of 0 bytes");
                let here = usize::try_from(len).unwrap_or(usize::MAX).min(buffered);
                buf.discard(here);
                self.stats.bytes_skipped += here as u64;
                self.skip_remaining = len - here as u64;
                self.skip_len = len;
                self.need = None;
                if oversize.is_some() {
                    self.discarded_in_frame = 0;
                }
                self.discarded_in_frame += here as u64;
                if let Some(o) = oversize {
                    self.stats.frames_skipped += 1;
                    return Ok(Some(Step::Skipped(o)));
                }
                Ok(None)
            }
            Ok(Decode::Incomplete { need }) => {
                let capacity = buf.capacity();
                // Checked before EOF so the outcome does not depend on
                // when the EOF arrived relative to the bytes.
                if need.is_some_and(|n| n > capacity) || buffered >= capacity {
                    return Err(self.fail(ProtocolError::FrameExceedsBuffer { need, capacity }));
                }
                if eof {
                    return Err(self.fail(ProtocolError::Truncated {
                        have: buffered,
                        need,
                    }));
                }
                self.need = need;
                Ok(Some(Step::Nothing))
            }
            Err(e) => Err(self.fail(ProtocolError::Frame(e))),
        }
    }
}

/// Panics unless a `Frame { len, payload }` decoded from `buffered` bytes
/// keeps the decode contract (a bug in the framing, never the peer's doing).
#[inline]
fn check_frame(len: usize, payload: &Range<usize>, buffered: usize) {
    assert!(
        len > 0 && len <= buffered && payload.start <= payload.end && payload.end <= len,
        "framing bug: Frame {{ len: {len}, payload: {payload:?} }} with {buffered} bytes buffered"
    );
}
