//! The no-allocation stream over buffers the caller lends.

use core::fmt;
use core::ops::Range;

use super::error::{SendError, StreamError};
use super::recv::{Core, RecvBuffer, Step};
use super::send::SliceQueue;
use super::{Event, Stats, StreamState};
use crate::framing::Framing;

/// A receive buffer in the caller's slice: `buf[start..end]` is received and
/// not yet consumed, `buf[end..]` is spare.
struct SliceRecv<'a> {
    buf: &'a mut [u8],
    start: usize,
    end: usize,
}

impl SliceRecv<'_> {
    /// Moves an empty window back to the front (moving no bytes).
    #[inline]
    fn restart_if_empty(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Consumes the frame `filled()[..len]` and returns its payload. The
    /// bytes stay in place until the next mutating call, which the returned
    /// borrow rules out.
    #[inline]
    fn cut(&mut self, len: usize, payload: Range<usize>) -> &[u8] {
        let base = self.start;
        self.discard(len);
        &self.buf[base + payload.start..base + payload.end]
    }
}

impl RecvBuffer for SliceRecv<'_> {
    #[inline]
    fn filled(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    #[inline]
    fn discard(&mut self, n: usize) {
        // An emptied buffer starts again at the front, but only in `append`
        // and `spare`: a spare space offered before this must stay put.
        self.start += n;
    }

    #[inline]
    fn take(&mut self, len: usize, payload: Range<usize>) -> &[u8] {
        self.cut(len, payload)
    }

    #[inline]
    fn capacity(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    fn append(&mut self, bytes: &[u8]) -> usize {
        self.restart_if_empty();
        let n = bytes.len().min(self.buf.len() - (self.end - self.start));
        if self.buf.len() - self.end < n {
            self.compact();
        }
        self.buf[self.end..self.end + n].copy_from_slice(&bytes[..n]);
        self.end += n;
        n
    }

    fn spare(&mut self, want: usize) -> &mut [u8] {
        self.restart_if_empty();
        let free = self.buf.len() - (self.end - self.start);
        let tail = self.buf.len() - self.end;
        // Compact only when the back holds less than half the free space (so
        // never none while there is some), or
        // too little for the rest of the current frame: a large frame is then
        // received in place without being moved again.
        if self.start > 0 && (tail * 2 < free || tail < want.min(free)) {
            self.compact();
        }
        &mut self.buf[self.end..]
    }

    #[inline]
    fn commit(&mut self, n: usize) {
        self.end += n;
    }
}

/// A framed stream over two buffers the caller lends: one to receive into,
/// one to queue output in. No allocation.
///
/// Frames are `&[u8]` slices of the receive buffer, valid until the next call
/// that takes `&mut self` (the borrow checker enforces it). The receive
/// buffer's length is the limit on buffered bytes: a frame must fit it whole
/// (else [`ProtocolError::FrameExceedsBuffer`](super::ProtocolError::FrameExceedsBuffer)).
/// The transmit buffer's length bounds the queued output.
///
/// # Calling order
///
/// 1. Bytes in: [`handle_input`](Self::handle_input) (returns how many were
///    taken; keep the rest), or [`receive_buffer`](Self::receive_buffer) +
///    [`commit_received`](Self::commit_received) to read in place.
/// 2. Events out: [`poll_event`](Self::poll_event) until `Ok(None)`; then
///    offer refused bytes again.
/// 3. Commands any time: [`send`](Self::send), [`close`](Self::close).
/// 4. Bytes out: [`poll_transmit`](Self::poll_transmit), write, then
///    [`advance_transmit`](Self::advance_transmit) with the count written.
/// 5. Peer closed: [`handle_eof`](Self::handle_eof), then step 2 one last
///    time ([`Event::Closed`] or a `Truncated` error).
///
/// See the [module documentation](super) for the calling order, limits and
/// errors.
///
/// ```
/// use framewire::framing::Fixed;
/// use framewire::stream::{BorrowedFramedStream, Event, ProtocolError, StreamError};
///
/// let mut rx = [0u8; 8];
/// let mut tx = [0u8; 8];
/// let mut s = BorrowedFramedStream::new(Fixed::new(4), &mut rx, &mut tx);
///
/// // Zero-copy receive: read straight into the spare space.
/// let spare = s.receive_buffer();
/// spare[..6].copy_from_slice(b"ping12");
/// s.commit_received(6)?;
/// assert_eq!(s.poll_frame()?, Some(&b"ping"[..]));
///
/// // The peer closes two bytes into the next frame.
/// s.handle_eof()?;
/// let truncated = StreamError::Protocol(ProtocolError::Truncated { have: 2, need: Some(4) });
/// assert_eq!(s.poll_event(), Err(truncated));
/// assert_eq!(s.poll_event(), Err(truncated)); // terminal: same error again
/// # Ok::<(), StreamError>(())
/// ```
pub struct BorrowedFramedStream<'a, F> {
    core: Core<F>,
    rx: SliceRecv<'a>,
    tx: SliceQueue<'a>,
}

impl<'a, F: Framing> BorrowedFramedStream<'a, F> {
    /// A stream framing with `framing`, receiving into `rx` and queueing
    /// output in `tx`.
    ///
    /// # Panics
    ///
    /// If `rx` is empty (the stream could never take a byte).
    pub fn new(framing: F, rx: &'a mut [u8], tx: &'a mut [u8]) -> Self {
        assert!(!rx.is_empty(), "the receive buffer must not be empty");
        BorrowedFramedStream {
            core: Core::new(framing),
            rx: SliceRecv {
                buf: rx,
                start: 0,
                end: 0,
            },
            tx: SliceQueue::new(tx),
        }
    }

    // ----- inputs -----

    /// Copies as much of `bytes` as fits into the receive buffer and returns
    /// how many bytes were taken. Fewer than `bytes.len()`: drain
    /// [`poll_event`](Self::poll_event), then offer the rest again. That
    /// happens when the buffer is full, and when the bytes complete a frame
    /// whose length was known and at least 1 KiB more follows (the stream
    /// stops at the frame's end so the rest lands at the front of the
    /// emptied buffer instead of being moved there later). Bytes of an
    /// over-long frame being skipped are taken and dropped without being
    /// buffered.
    ///
    /// Errors: the terminal [`StreamError::Protocol`] error, or
    /// [`StreamError::InputAfterEof`] after [`handle_eof`](Self::handle_eof).
    #[inline]
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<usize, StreamError> {
        self.core.handle_input(&mut self.rx, bytes)
    }

    /// The spare space of the receive buffer, to read into directly; then
    /// call [`commit_received`](Self::commit_received) with the count.
    /// Already-consumed bytes are compacted away when the spare space runs
    /// low. Empty when the buffer is full (drain `poll_event` first), after
    /// EOF, and after a protocol error.
    ///
    /// Do not read into an empty buffer: a read of 0 bytes would look like
    /// the peer's EOF. Drain `poll_event` instead, which always makes room or
    /// fails.
    #[must_use]
    pub fn receive_buffer(&mut self) -> &mut [u8] {
        self.core.receive_buffer(&mut self.rx)
    }

    /// Marks the first `n` bytes of the last [`receive_buffer`](Self::receive_buffer)
    /// as received.
    ///
    /// Errors: as [`handle_input`](Self::handle_input), and
    /// [`StreamError::CommitExceedsSpare`] if `n` is more than that buffer's
    /// length.
    pub fn commit_received(&mut self, n: usize) -> Result<(), StreamError> {
        self.core.commit_received(&mut self.rx, n)
    }

    /// The peer closed its sending side. Buffered frames are still delivered;
    /// then `poll_event` reports [`Event::Closed`] or, if the close fell
    /// inside a frame, [`ProtocolError::Truncated`](super::ProtocolError::Truncated).
    /// Calling it again is harmless.
    ///
    /// Errors: only the terminal protocol error.
    pub fn handle_eof(&mut self) -> Result<(), StreamError> {
        self.core.handle_eof()
    }

    // ----- commands -----

    /// Frames `payload` into the transmit buffer. All or nothing.
    ///
    /// Errors: [`SendError::Encode`] if the framing rejects the payload or
    /// (`BufferTooSmall { required }`) the frame is larger than the whole
    /// transmit buffer; [`SendError::QueueFull`] if it does not fit next to
    /// what is queued; [`SendError::Closed`] after [`close`](Self::close);
    /// [`SendError::Protocol`] after a peer protocol error.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        let (header, _) = self
            .core
            .prepare_send(payload, self.tx.queued(), self.tx.capacity())?;
        self.tx
            .push(&[header.as_slice(), payload, self.core.framing.trailer()]);
        self.core.stats.frames_sent += 1;
        Ok(())
    }

    /// Ends the sending side: later `send`s fail with [`SendError::Closed`].
    /// What is queued stays queued; once [`send_finished`](Self::send_finished)
    /// the driver can shut down its write half.
    pub fn close(&mut self) {
        self.core.send_closed = true;
    }

    // ----- outputs -----

    /// The next event of the receive side, decoding buffered bytes as needed:
    /// `Ok(None)` when more input (or the EOF) is needed, or after
    /// [`Event::Closed`] was reported. The frame borrows the receive buffer
    /// until the next `&mut self` call.
    ///
    /// Errors: a [`StreamError::Protocol`] error, which is terminal and
    /// returned again on every later call.
    ///
    /// # Panics
    ///
    /// If the framing breaks the decode contract (a `Frame` longer than the
    /// bytes it was shown, a `Skip` of 0 bytes): a bug in the framing, never
    /// the peer's doing.
    #[inline]
    pub fn poll_event(&mut self) -> Result<Option<Event<&[u8]>>, StreamError> {
        let step = self.core.poll_step(&mut self.rx)?;
        Ok(step.into_event(|len, payload| self.rx.cut(len, payload)))
    }

    /// Every event available now, in order, each lent to `f`; returns how
    /// many there were (0 when more input or the EOF is needed). The same
    /// as calling [`poll_event`](Self::poll_event) until `Ok(None)`, but
    /// runs of whole frames go through a tight loop that checks the
    /// stream's state and updates its counters once, not per frame.
    ///
    /// Errors: as `poll_event`; the events before the error were delivered
    /// to `f`.
    ///
    /// ```
    /// use framewire::framing::Fixed;
    /// use framewire::stream::{BorrowedFramedStream, Event};
    ///
    /// let (mut rx, mut tx) = ([0u8; 16], [0u8; 16]);
    /// let mut s = BorrowedFramedStream::new(Fixed::new(2), &mut rx, &mut tx);
    /// s.handle_input(b"abcde")?;
    /// let mut frames = Vec::new();
    /// let n = s.drain_events_with(|e| {
    ///     if let Event::Frame(f) = e {
    ///         frames.push(f.to_vec());
    ///     }
    /// })?;
    /// assert_eq!((n, frames), (2, vec![b"ab".to_vec(), b"cd".to_vec()]));
    /// assert_eq!(s.buffered_len(), 1);
    /// # Ok::<(), framewire::stream::StreamError>(())
    /// ```
    #[inline]
    pub fn drain_events_with(&mut self, f: impl FnMut(Event<&[u8]>)) -> Result<usize, StreamError> {
        self.core.drain_with(&mut self.rx, f)
    }

    /// The next frame, passing over [`Event::Skipped`] (counted in
    /// [`Stats::frames_skipped`]) and [`Event::Closed`] (see
    /// [`state`](Self::state)). `Ok(None)`: more input is needed, or the stream
    /// is closed.
    pub fn poll_frame(&mut self) -> Result<Option<&[u8]>, StreamError> {
        loop {
            // Decide without holding the borrow, then cut the frame.
            match self.core.poll_step(&mut self.rx)? {
                Step::Frame { len, payload } => return Ok(Some(self.rx.cut(len, payload))),
                Step::Skipped(_) => {}
                Step::Nothing | Step::Closed => return Ok(None),
            }
        }
    }

    /// All queued output, to be written next (one contiguous slice), or
    /// `None` if nothing is queued. Still available after a protocol error.
    #[must_use]
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        let pending = self.tx.pending();
        (!pending.is_empty()).then_some(pending)
    }

    /// Reports that the first `written` bytes of [`poll_transmit`](Self::poll_transmit)
    /// were written.
    ///
    /// Errors: [`SendError::AdvancePastQueued`] if more than was queued
    /// (nothing is dropped then).
    pub fn advance_transmit(&mut self, written: usize) -> Result<(), SendError> {
        self.core.check_written(written, self.tx.queued())?;
        self.tx.advance(written);
        Ok(())
    }

    // ----- getters -----

    /// Where the receive side is.
    pub fn state(&self) -> StreamState {
        self.core.state()
    }

    /// Whether the receive side is done for good (closed cleanly or failed).
    pub fn is_terminal(&self) -> bool {
        self.core.state().is_terminal()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.core.stats
    }

    /// Bytes received and not yet consumed as frames.
    pub fn buffered_len(&self) -> usize {
        self.rx.filled().len()
    }

    /// The receive buffer's capacity (the limit on buffered bytes).
    pub fn max_buffered(&self) -> usize {
        self.rx.capacity()
    }

    /// Bytes queued for transmission.
    pub fn queued_len(&self) -> usize {
        self.tx.queued()
    }

    /// The transmit buffer's capacity (the limit on queued bytes).
    pub fn max_queued(&self) -> usize {
        self.tx.capacity()
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_send_closed(&self) -> bool {
        self.core.send_closed
    }

    /// Whether the sending side is closed and everything queued was written:
    /// time to shut down the write half.
    pub fn send_finished(&self) -> bool {
        self.core.send_closed && self.tx.queued() == 0
    }

    /// The framing.
    pub fn framing(&self) -> &F {
        &self.core.framing
    }
}

impl<F: fmt::Debug> fmt::Debug for BorrowedFramedStream<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BorrowedFramedStream")
            .field("framing", &self.core.framing)
            .field("state", &self.core.state())
            .field("buffered", &(self.rx.end - self.rx.start))
            .field("queued", &self.tx.queued())
            .finish_non_exhaustive()
    }
}
