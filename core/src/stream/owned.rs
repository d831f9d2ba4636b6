//! The owned stream (feature `alloc`): a `BytesMut` receive buffer whose
//! frames come out as `Bytes` sharing it, and a queue of `Bytes` chunks.

use alloc::collections::VecDeque;
use core::fmt;
use core::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::error::{SendError, StreamError};
use super::recv::{Core, RecvBuffer, Step};
use super::{Event, Stats, StreamState, DEFAULT_MIN_BUFFERED, DEFAULT_MIN_QUEUED};
use crate::framing::Framing;

/// The least spare space [`FramedStream::receive_buffer`] offers (16 KiB),
/// unless the limit leaves less.
const RECV_CHUNK: usize = 16 * 1024;

/// Payloads up to this many bytes are copied into the queue's coalescing
/// buffer by `send` rather than queued as a chunk of their own.
const INLINE_MAX: usize = 64;

/// The least the coalescing buffer grows by.
const TAIL_CHUNK: usize = 4 * 1024;

/// A receive buffer in one `BytesMut` allocation, always addressed from
/// the allocation's start: `start..start + filled` are received and not yet
/// consumed bytes, and the initialised bytes after them are spare space
/// (zeroed once, when the buffer grew, and reused from then on). It is in
/// one of two modes:
///
/// * mutable (`frozen` empty): the allocation is `buf`;
/// * frozen (after a frame was cut, until more input arrives): `buf` is
///   empty and the allocation is the `Bytes` `frozen`. Frames are `slice`s
///   of it: one reference count each, no `BytesMut` bookkeeping per frame.
///
/// New input makes it mutable again ([`BytesRecv::thaw`]): in place if no
/// frame is still alive, else by copying the unconsumed bytes into a new
/// allocation (the frames keep the old one). Consuming bytes only moves
/// `start`; an emptied buffer starts again at the front when the next
/// bytes arrive (moving nothing), and unconsumed bytes are moved to the
/// front only when the space after them runs short. The buffer grows only
/// after moving them to the front, and to no more than `max`.
struct BytesRecv {
    buf: BytesMut,
    frozen: Bytes,
    start: usize,
    filled: usize,
    max: usize,
}

impl BytesRecv {
    fn new(max: usize) -> Self {
        BytesRecv {
            buf: BytesMut::new(),
            frozen: Bytes::new(),
            start: 0,
            filled: 0,
            max,
        }
    }

    /// Consumes the frame `filled()[..len]` and returns its payload, sharing
    /// the buffer's allocation.
    #[inline]
    fn cut(&mut self, len: usize, payload: Range<usize>) -> Bytes {
        let base = self.consume_frozen(len);
        self.frozen.slice(base + payload.start..base + payload.end)
    }

    /// Freezes the buffer (if it is not yet), consumes its first `len`
    /// received bytes and returns their offset in `frozen`.
    #[inline]
    fn consume_frozen(&mut self, len: usize) -> usize {
        if self.frozen.is_empty() {
            // `filled >= len > 0`, so the frozen buffer is not empty.
            self.frozen = core::mem::take(&mut self.buf).freeze();
        }
        let base = self.start;
        self.start += len;
        self.filled -= len;
        base
    }

    /// The end of the received bytes: where the spare space starts.
    #[inline]
    fn end(&self) -> usize {
        self.start + self.filled
    }

    /// The initialised length of the allocation.
    #[inline]
    fn initialised(&self) -> usize {
        if self.frozen.is_empty() {
            self.buf.len()
        } else {
            self.frozen.len()
        }
    }

    /// Makes the buffer mutable again (a no-op unless frozen). The `keep`
    /// bytes of spare space after the received ones keep their contents;
    /// `room` is how much more to allocate if a copy is needed.
    #[inline]
    fn thaw(&mut self, keep: usize, room: usize) {
        if !self.frozen.is_empty() {
            self.thaw_frozen(keep, room);
        }
    }

    fn thaw_frozen(&mut self, keep: usize, room: usize) {
        let whole = core::mem::take(&mut self.frozen);
        self.buf = match whole.try_into_mut() {
            // No frame is alive: the same allocation, spare space included.
            Ok(buf) => buf,
            // Frames share the allocation: they keep it, and the unconsumed
            // bytes move to the front of a new one.
            Err(whole) => {
                let from = self.start;
                let to = from + self.filled + keep;
                let mut buf = BytesMut::with_capacity(to - from + room);
                buf.extend_from_slice(&whole[from..to]);
                self.start = 0;
                buf
            }
        };
    }

    /// Mutable mode: an empty buffer starts again at the front; else, when
    /// fewer than `need` bytes of space follow the received ones, those
    /// move to the front. Returns the space now after them.
    #[inline]
    fn make_room(&mut self, need: usize) -> usize {
        if self.filled == 0 {
            self.start = 0;
        } else if self.buf.len() - self.end() < need && self.start > 0 {
            let end = self.end();
            self.buf.copy_within(self.start..end, 0);
            self.start = 0;
        }
        self.buf.len() - self.end()
    }
}

impl RecvBuffer for BytesRecv {
    #[inline]
    fn filled(&self) -> &[u8] {
        let window = self.start..self.end();
        if self.frozen.is_empty() {
            &self.buf[window]
        } else {
            &self.frozen[window]
        }
    }

    #[inline]
    fn discard(&mut self, n: usize) {
        self.start += n;
        self.filled -= n;
    }

    /// Lends the payload in either mode: no freeze, no reference count.
    #[inline]
    fn take(&mut self, len: usize, payload: Range<usize>) -> &[u8] {
        let base = self.start;
        self.start += len;
        self.filled -= len;
        let payload = base + payload.start..base + payload.end;
        if self.frozen.is_empty() {
            &self.buf[payload]
        } else {
            &self.frozen[payload]
        }
    }

    #[inline]
    fn capacity(&self) -> usize {
        self.max
    }

    #[inline]
    fn append(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.max.saturating_sub(self.filled));
        self.thaw(0, n);
        let spare = self.make_room(n);
        let end = self.end();
        let k = n.min(spare);
        self.buf[end..end + k].copy_from_slice(&bytes[..k]);
        if k < n {
            // The spare space is used up (`buf.len() == end`); `make_room`
            // moved the received bytes to the front first, so the buffer
            // grows to no more than `max`.
            self.buf.extend_from_slice(&bytes[k..n]);
        }
        self.filled += n;
        n
    }

    fn spare(&mut self, _want: usize) -> &mut [u8] {
        // Grow geometrically with what has actually arrived, never by a
        // length the peer announced.
        let room = self.max.saturating_sub(self.filled);
        let least = RECV_CHUNK.min(room);
        let target = RECV_CHUNK.max(self.filled).min(room);
        self.thaw(0, target);
        if self.make_room(least) < least {
            // `make_room` moved the received bytes to the front.
            let len = self.filled + target;
            if len > self.buf.capacity() {
                // A reallocation copies the initialised length: drop the
                // stale spare space first.
                self.buf.truncate(self.filled);
            }
            self.buf.resize(len, 0);
        }
        let end = self.end();
        let stop = self.buf.len().min(end + room);
        &mut self.buf[end..stop]
    }

    fn commit(&mut self, n: usize) {
        // The `n` committed bytes were written into the spare space before
        // any freeze, so they are kept.
        self.thaw(n, 0);
        self.filled += n;
    }
}

/// `framing.max_frame_len()`, at least `min`.
fn default_limit<F: Framing>(framing: &F, min: usize) -> usize {
    framing.max_frame_len().max(min)
}

/// The output queue: frozen chunks, then `tail`, where copied bytes
/// (headers, trailers, small payloads, `send_slice`) coalesce.
struct ChunkQueue {
    /// Non-empty chunks, oldest first.
    chunks: VecDeque<Bytes>,
    /// Copied bytes queued after every chunk.
    tail: BytesMut,
    queued: usize,
    max: usize,
}

impl ChunkQueue {
    fn reserve(&mut self, n: usize) {
        if self.tail.capacity() - self.tail.len() < n {
            self.tail.reserve(n.max(TAIL_CHUNK));
        }
    }

    /// Appends copies of `parts`.
    fn push_copy(&mut self, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        self.reserve(total);
        for part in parts {
            self.tail.extend_from_slice(part);
        }
        self.queued += total;
    }

    /// Appends `header`, `payload` (not copied) and `trailer`.
    fn push_shared(&mut self, header: &[u8], payload: Bytes, trailer: &[u8]) {
        self.reserve(header.len() + trailer.len());
        self.tail.extend_from_slice(header);
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
        self.queued += header.len() + payload.len() + trailer.len();
        if !payload.is_empty() {
            self.chunks.push_back(payload);
        }
        self.tail.extend_from_slice(trailer);
    }

    fn front(&self) -> Option<&[u8]> {
        match self.chunks.front() {
            Some(c) => Some(c),
            None => (!self.tail.is_empty()).then_some(&self.tail[..]),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.chunks
            .iter()
            .map(|c| &c[..])
            .chain((!self.tail.is_empty()).then_some(&self.tail[..]))
    }

    /// Drops `n <= queued` bytes from the front.
    fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            match self.chunks.front_mut() {
                Some(c) if n >= c.len() => {
                    n -= c.len();
                    self.chunks.pop_front();
                }
                Some(c) => {
                    c.advance(n);
                    n = 0;
                }
                None => {
                    self.tail.advance(n);
                    n = 0;
                }
            }
        }
    }

    fn pop(&mut self) -> Option<Bytes> {
        let chunk = match self.chunks.pop_front() {
            Some(c) => c,
            None if !self.tail.is_empty() => self.tail.split().freeze(),
            None => return None,
        };
        self.queued -= chunk.len();
        Some(chunk)
    }
}

/// A framed stream that owns its buffers (feature `alloc`).
///
/// Received frames are [`Bytes`] that share the receive buffer's allocation
/// (`slice`s of the frozen receive buffer, no payload copy). [`send`](Self::send)
/// queues a `Bytes` payload without copying it (the header goes into a small
/// separate chunk); [`send_slice`](Self::send_slice) copies. The whole queue is
/// visible at once ([`transmit_chunks`](Self::transmit_chunks),
/// [`fill_transmit`](Self::fill_transmit)) for vectored writes.
///
/// Limits: `max_buffered` receive bytes (by default the framing's
/// [`max_frame_len`](Framing::max_frame_len), at least
/// [`DEFAULT_MIN_BUFFERED`] = 64 KiB; the buffer grows with what arrives, up
/// to that) and `max_queued` output bytes (by default `max_frame_len`, at
/// least [`DEFAULT_MIN_QUEUED`] = 1 MiB).
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
/// errors; the methods are those of [`BorrowedFramedStream`](super::BorrowedFramedStream)
/// with owned frames.
///
/// ```
/// use bytes::Bytes;
/// use framewire::framing::Fixed;
/// use framewire::stream::{Event, FramedStream, StreamState};
///
/// let mut s = FramedStream::new(Fixed::new(2)).with_max_queued(64);
///
/// // Input in any chunking; frames come out of poll_event.
/// assert_eq!(s.handle_input(b"hel")?, 3);
/// assert_eq!(s.poll_event()?, Some(Event::Frame(Bytes::from_static(b"he"))));
/// assert_eq!(s.poll_event()?, None);
/// s.handle_input(b"lo")?;
/// s.handle_eof()?;
/// assert_eq!(s.poll_frame()?.as_deref(), Some(&b"ll"[..]));
/// assert_eq!(s.poll_event(), Err(framewire::stream::StreamError::Protocol(
///     framewire::stream::ProtocolError::Truncated { have: 1, need: Some(2) },
/// )));
/// assert!(matches!(s.state(), StreamState::Failed(_)));
///
/// // Output: everything queued is visible; report partial writes.
/// let mut s = FramedStream::new(Fixed::new(2));
/// s.send(Bytes::from_static(b"ab")).unwrap();
/// s.send_slice(b"cd").unwrap();
/// let mut slices = [&[][..]; 4];
/// let n = s.fill_transmit(&mut slices);
/// assert_eq!(slices[..n].concat(), b"abcd");
/// s.advance_transmit(3).unwrap();
/// assert_eq!(s.poll_transmit(), Some(&b"d"[..]));
/// # Ok::<(), framewire::stream::StreamError>(())
/// ```
pub struct FramedStream<F> {
    core: Core<F>,
    rx: BytesRecv,
    tx: ChunkQueue,
}

impl<F: Framing> FramedStream<F> {
    /// A stream framing with `framing`, with the default limits.
    pub fn new(framing: F) -> Self {
        let max_buffered = default_limit(&framing, DEFAULT_MIN_BUFFERED);
        let max_queued = default_limit(&framing, DEFAULT_MIN_QUEUED);
        FramedStream {
            core: Core::new(framing),
            rx: BytesRecv::new(max_buffered),
            tx: ChunkQueue {
                chunks: VecDeque::new(),
                tail: BytesMut::new(),
                queued: 0,
                max: max_queued,
            },
        }
    }

    /// Sets the receive limit: at most `max` bytes buffered; a frame needing
    /// more is [`ProtocolError::FrameExceedsBuffer`](super::ProtocolError::FrameExceedsBuffer).
    /// Meant for construction; a limit below what is already buffered only
    /// stops further input.
    ///
    /// # Panics
    ///
    /// If `max` is 0 (the stream could never take a byte).
    #[must_use]
    pub fn with_max_buffered(mut self, max: usize) -> Self {
        assert!(max > 0, "max_buffered must be at least 1");
        self.rx.max = max;
        let spare = self.rx.initialised() - self.rx.end();
        self.rx.thaw(spare, 0);
        let keep = self.rx.end().max(self.rx.buf.len().min(max));
        self.rx.buf.truncate(keep);
        self
    }

    /// Sets the output queue limit: at most `max` bytes queued.
    #[must_use]
    pub fn with_max_queued(mut self, max: usize) -> Self {
        self.tx.max = max;
        self
    }

    // ----- inputs -----

    /// Copies as much of `bytes` as fits under `max_buffered` into the
    /// receive buffer and returns how many bytes were taken. Fewer than
    /// `bytes.len()`: drain [`poll_event`](Self::poll_event), then offer the
    /// rest again. That happens when the buffer is full, and when the bytes
    /// complete a frame whose length was known and at least 1 KiB more
    /// follows: the stream stops at the frame's end, so that after the
    /// frame is polled the rest starts at the front of the emptied buffer
    /// and is never moved (large frames then cost one copy, the one into
    /// the buffer).
    ///
    /// Errors: the terminal [`StreamError::Protocol`] error, or
    /// [`StreamError::InputAfterEof`] after [`handle_eof`](Self::handle_eof).
    #[inline]
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<usize, StreamError> {
        self.core.handle_input(&mut self.rx, bytes)
    }

    /// Spare space at the end of the receive buffer to read into directly
    /// (at least 16 KiB unless `max_buffered` leaves less; the buffer grows
    /// with what has arrived, compacting consumed bytes when it can); then
    /// call [`commit_received`](Self::commit_received). Empty when the buffer
    /// is full (drain `poll_event` first), after EOF, and after a protocol
    /// error.
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

    /// Frames `payload` into the output queue without copying it: the header
    /// is queued as a small chunk of its own, the payload as the `Bytes`
    /// given (payloads of at most 64 bytes are copied next to the header
    /// instead, which is cheaper than a chunk of their own). All or nothing.
    ///
    /// Errors: [`SendError::Encode`] if the framing rejects the payload or
    /// (`BufferTooSmall { required }`) the frame is larger than `max_queued`;
    /// [`SendError::QueueFull`] if it does not fit next to what is queued;
    /// [`SendError::Closed`] after [`close`](Self::close);
    /// [`SendError::Protocol`] after a peer protocol error.
    pub fn send(&mut self, payload: impl Into<Bytes>) -> Result<(), SendError> {
        let payload = payload.into();
        let (header, _) = self
            .core
            .prepare_send(&payload, self.tx.queued, self.tx.max)?;
        let trailer = self.core.framing.trailer();
        if payload.len() <= INLINE_MAX {
            self.tx.push_copy(&[header.as_slice(), &payload, trailer]);
        } else {
            self.tx.push_shared(header.as_slice(), payload, trailer);
        }
        self.core.stats.frames_sent += 1;
        Ok(())
    }

    /// Frames a copy of `payload` into the output queue; consecutive copied
    /// frames coalesce into one chunk. Errors as [`send`](Self::send).
    pub fn send_slice(&mut self, payload: &[u8]) -> Result<(), SendError> {
        let (header, _) = self
            .core
            .prepare_send(payload, self.tx.queued, self.tx.max)?;
        self.tx
            .push_copy(&[header.as_slice(), payload, self.core.framing.trailer()]);
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
    /// [`Event::Closed`] was reported. Frames share the receive buffer's
    /// allocation.
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
    pub fn poll_event(&mut self) -> Result<Option<Event<Bytes>>, StreamError> {
        let step = self.core.poll_step(&mut self.rx)?;
        Ok(step.into_event(|len, payload| self.rx.cut(len, payload)))
    }

    /// The next event, as [`poll_event`](Self::poll_event), with the frame
    /// lent to `f` as a slice of the receive buffer instead of returned as
    /// [`Bytes`]: no reference count is taken and the buffer is not frozen,
    /// which is cheaper per frame when the caller copies or parses the
    /// payload right away. Returns what `f` returned, or `Ok(None)` as
    /// `poll_event` does. Mixing both methods on one stream is fine.
    ///
    /// Errors and panics: as [`poll_event`](Self::poll_event).
    ///
    /// ```
    /// use framewire::framing::Fixed;
    /// use framewire::stream::{Event, FramedStream};
    ///
    /// let mut s = FramedStream::new(Fixed::new(2));
    /// s.handle_input(b"abcd")?;
    /// let mut out = Vec::new();
    /// while let Some(()) = s.poll_event_with(|e| {
    ///     if let Event::Frame(f) = e {
    ///         out.extend_from_slice(f);
    ///     }
    /// })? {}
    /// assert_eq!(out, b"abcd");
    /// # Ok::<(), framewire::stream::StreamError>(())
    /// ```
    #[inline]
    pub fn poll_event_with<R>(
        &mut self,
        f: impl FnOnce(Event<&[u8]>) -> R,
    ) -> Result<Option<R>, StreamError> {
        Ok(match self.core.poll_step(&mut self.rx)? {
            Step::Nothing => None,
            Step::Frame { len, payload } => Some(f(Event::Frame(self.rx.take(len, payload)))),
            Step::Skipped(o) => Some(f(Event::Skipped(o))),
            Step::Closed => Some(f(Event::Closed)),
        })
    }

    /// Every event available now, in order, each lent to `f` as
    /// [`poll_event_with`](Self::poll_event_with) would lend it; returns how
    /// many there were (0 when more input or the EOF is needed). The same as
    /// calling `poll_event_with` until `Ok(None)`, but runs of whole frames
    /// go through a tight loop that checks the stream's state and updates
    /// its counters once, not per frame: the fastest way to take many small
    /// frames.
    ///
    /// Errors: as [`poll_event`](Self::poll_event); the events before the
    /// error were delivered to `f`.
    ///
    /// ```
    /// use framewire::framing::Delimited;
    /// use framewire::stream::{Event, FramedStream};
    ///
    /// let mut s = FramedStream::new(Delimited::new());
    /// s.handle_input(b"one\ntwo\nthr")?;
    /// let mut lines = Vec::new();
    /// let n = s.drain_events_with(|e| {
    ///     if let Event::Frame(line) = e {
    ///         lines.push(line.to_vec());
    ///     }
    /// })?;
    /// assert_eq!((n, lines), (2, vec![b"one".to_vec(), b"two".to_vec()]));
    /// assert_eq!(s.buffered_len(), 3);
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
    pub fn poll_frame(&mut self) -> Result<Option<Bytes>, StreamError> {
        loop {
            match self.poll_event()? {
                Some(Event::Frame(f)) => return Ok(Some(f)),
                Some(Event::Skipped(_)) => {}
                Some(Event::Closed) | None => return Ok(None),
            }
        }
    }

    /// The first queued chunk, to be written next, or `None` if nothing is
    /// queued. [`transmit_chunks`](Self::transmit_chunks) shows all of them.
    /// Still available after a protocol error.
    #[must_use]
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        self.tx.front()
    }

    /// Every queued chunk in order, for a vectored write (`IoSlice::new` on
    /// each). Their lengths add up to [`queued_len`](Self::queued_len).
    pub fn transmit_chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.tx.iter()
    }

    /// Fills `out` with the first queued chunks and returns how many it
    /// filled (fewer than `out.len()` when fewer are queued).
    pub fn fill_transmit<'s>(&'s self, out: &mut [&'s [u8]]) -> usize {
        let mut n = 0;
        for (slot, chunk) in out.iter_mut().zip(self.tx.iter()) {
            *slot = chunk;
            n += 1;
        }
        n
    }

    /// Reports that the first `written` queued bytes were written (they may
    /// span chunks).
    ///
    /// Errors: [`SendError::AdvancePastQueued`] if more than was queued
    /// (nothing is dropped then).
    pub fn advance_transmit(&mut self, written: usize) -> Result<(), SendError> {
        self.core.check_written(written, self.tx.queued)?;
        self.tx.advance(written);
        Ok(())
    }

    /// Takes the first queued chunk out of the queue, for drivers that hand
    /// owned buffers on (it counts as written).
    pub fn pop_transmit(&mut self) -> Option<Bytes> {
        let chunk = self.tx.pop()?;
        self.core.stats.bytes_sent += chunk.len() as u64;
        Some(chunk)
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
        self.rx.filled
    }

    /// The limit on buffered bytes.
    pub fn max_buffered(&self) -> usize {
        self.rx.max
    }

    /// Bytes queued for transmission.
    pub fn queued_len(&self) -> usize {
        self.tx.queued
    }

    /// The limit on queued bytes.
    pub fn max_queued(&self) -> usize {
        self.tx.max
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_send_closed(&self) -> bool {
        self.core.send_closed
    }

    /// Whether the sending side is closed and everything queued was written:
    /// time to shut down the write half.
    pub fn send_finished(&self) -> bool {
        self.core.send_closed && self.tx.queued == 0
    }

    /// The framing.
    pub fn framing(&self) -> &F {
        &self.core.framing
    }
}

impl<F: fmt::Debug> fmt::Debug for FramedStream<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedStream")
            .field("framing", &self.core.framing)
            .field("state", &self.core.state())
            .field("buffered", &self.rx.filled)
            .field("queued", &self.tx.queued)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::FramedStream;
    use crate::framing::LengthPrefixed;

    fn lp(payload: &[u8]) -> Vec<u8> {
        let mut v = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    /// Writes `bytes` through the zero-copy pair; returns how many were taken.
    fn zero_copy(s: &mut FramedStream<LengthPrefixed>, bytes: &[u8]) -> usize {
        let spare = s.receive_buffer();
        let n = spare.len().min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        s.commit_received(n).unwrap();
        n
    }

    #[test]
    fn poll_between_receive_buffer_and_commit_keeps_the_written_bytes() {
        for keep_first in [false, true] {
            let mut s = FramedStream::new(LengthPrefixed::new());
            s.handle_input(&lp(b"one")).unwrap();
            let second = lp(b"two");
            let spare = s.receive_buffer();
            spare[..second.len()].copy_from_slice(&second);
            // Cutting "one" before the commit must not lose what was written.
            let one = s.poll_frame().unwrap().unwrap();
            let kept = keep_first.then_some(one);
            s.commit_received(second.len()).unwrap();
            assert_eq!(s.poll_frame().unwrap().as_deref(), Some(&b"two"[..]));
            assert_eq!(s.poll_frame(), Ok(None));
            assert_eq!(s.buffered_len(), 0);
            if let Some(one) = kept {
                assert_eq!(&one[..], b"one");
            }
        }
    }

    #[test]
    fn live_frames_keep_their_bytes_while_input_continues() {
        let mut s = FramedStream::new(LengthPrefixed::new()).with_max_buffered(64);
        let input: Vec<u8> = (0..50u8).flat_map(|i| lp(&[i; 5])).collect();
        let mut frames: Vec<Bytes> = Vec::new();
        for piece in input.chunks(7) {
            assert_eq!(s.handle_input(piece), Ok(piece.len()));
            while let Some(f) = s.poll_frame().unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 50);
        for (i, f) in (0..50u8).zip(&frames) {
            assert_eq!(&f[..], &[i; 5]);
        }
    }

    #[test]
    fn large_frames_start_at_the_front_of_one_buffer() {
        // 64 KiB frames (plus a 4-byte header) in 64 KiB chunks: a chunk
        // completes one frame and starts the next. `handle_input` stops at
        // the frame's end; once the frame is polled (and dropped) the rest
        // goes to the front of the same allocation, so every frame lies at
        // the same address and nothing has to be moved later to make room.
        let mut s = FramedStream::new(LengthPrefixed::new());
        let input: Vec<u8> = (0..6u8).flat_map(|i| lp(&alloc::vec![i; 65536])).collect();
        let mut starts = Vec::new();
        for chunk in input.chunks(65536) {
            let mut off = 0;
            while off < chunk.len() {
                let before = s.buffered_len();
                let taken = s.handle_input(&chunk[off..]).unwrap();
                if before > 0 {
                    assert_eq!(before + taken, 65540, "stopped at the frame's end");
                } else if let Some(&last) = starts.last() {
                    // The rest went straight to where the last frame began
                    // (its header first), not after it.
                    assert_eq!(s.rx.buf.as_ptr() as usize + 4, last, "at the front");
                }
                off += taken;
                while let Some(f) = s.poll_frame().unwrap() {
                    assert_eq!(f.len(), 65536);
                    assert!(f.iter().all(|&b| b == f[0]));
                    starts.push(f.as_ptr() as usize);
                }
            }
        }
        assert_eq!(starts.len(), 6);
        assert!(
            starts.windows(2).skip(1).all(|w| w[0] == w[1]),
            "{starts:?}"
        );
    }

    #[test]
    fn large_frames_read_in_place_are_never_moved() {
        // The same stream read in place, as a socket would fill it, from a
        // peer whose 64 KiB chunks cut every frame: reads stop at a large
        // frame's end, so each frame is read to where it is delivered from
        // (the front of one allocation) and never moved after.
        let mut s = FramedStream::new(LengthPrefixed::new());
        let input: Vec<u8> = (0..6u8).flat_map(|i| lp(&alloc::vec![i; 65536])).collect();
        // (stream offset, buffer address) of every read.
        let mut reads: Vec<(usize, usize)> = Vec::new();
        let mut starts = Vec::new();
        let mut at = 0;
        for chunk in input.chunks(65536) {
            let mut off = 0;
            while off < chunk.len() {
                let spare = s.receive_buffer();
                let n = spare.len().min(chunk.len() - off);
                assert!(n > 0);
                spare[..n].copy_from_slice(&chunk[off..off + n]);
                reads.push((at + off, spare.as_ptr() as usize));
                s.commit_received(n).unwrap();
                off += n;
                while let Some(f) = s.poll_frame().unwrap() {
                    assert_eq!(f.len(), 65536);
                    assert!(f.iter().all(|&b| b == f[0]));
                    // Where the frame's first payload byte was read to.
                    let first = starts.len() * 65540 + 4;
                    // The first frame arrives while the buffer grows, and
                    // a reallocation may move it (once per stream).
                    let &(o, addr) = reads.iter().rev().find(|&&(o, _)| o <= first).unwrap();
                    if !starts.is_empty() {
                        assert_eq!(
                            f.as_ptr() as usize,
                            addr + (first - o),
                            "frame {} moved",
                            f[0]
                        );
                    }
                    starts.push(f.as_ptr() as usize);
                }
            }
            at += chunk.len();
        }
        assert_eq!(starts.len(), 6);
        assert!(
            starts.windows(2).skip(1).all(|w| w[0] == w[1]),
            "{starts:?}"
        );
    }

    #[test]
    fn lent_frames_report_skips_and_close_like_poll_event() {
        use super::super::Event;
        let framing = LengthPrefixed::new()
            .with_max_frame_len(8)
            .with_oversize(crate::framing::OversizePolicy::Skip);
        let mut s = FramedStream::new(framing).with_max_buffered(64);
        let mut input = lp(b"ab");
        input.extend_from_slice(&lp(b"toolong"));
        input.extend_from_slice(&lp(b"cd"));
        s.handle_input(&input).unwrap();
        s.handle_eof().unwrap();
        let mut seen = Vec::new();
        while let Some(e) = s
            .poll_event_with(|e| match e {
                Event::Frame(f) => Event::Frame(f.to_vec()),
                Event::Skipped(o) => Event::Skipped(o),
                Event::Closed => Event::Closed,
            })
            .unwrap()
        {
            seen.push(e);
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[0], Event::Frame(b"ab".to_vec()));
        assert!(matches!(seen[1], Event::Skipped(_)));
        assert_eq!(seen[2], Event::Frame(b"cd".to_vec()));
        assert_eq!(seen[3], Event::Closed);
        assert_eq!(s.stats().frames_received, 2);
        assert_eq!(s.stats().frames_skipped, 1);
    }

    proptest! {
        #[test]
        fn lent_and_shared_frames_mixed_in_any_chunking(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..16),
            cuts in proptest::collection::vec(1usize..60, 1..20),
            lend_mask in any::<u64>(),
            keep_mask in any::<u64>(),
            max in 44usize..200,
        ) {
            use super::super::Event;
            let input: Vec<u8> = payloads.iter().flat_map(|p| lp(p)).collect();
            let mut s = FramedStream::new(LengthPrefixed::new()).with_max_buffered(max);
            let mut kept: Vec<(usize, Bytes)> = Vec::new();
            let mut seen = 0usize;
            let (mut pos, mut step) = (0usize, 0usize);
            while pos < input.len() {
                let end = (pos + cuts[step % cuts.len()]).min(input.len());
                pos += s.handle_input(&input[pos..end]).unwrap();
                step += 1;
                loop {
                    if lend_mask >> (seen % 64) & 1 == 1 {
                        let Some(f) = s.poll_event_with(|e| match e {
                            Event::Frame(f) => f.to_vec(),
                            other => panic!("{other:?}"),
                        }).unwrap() else { break };
                        prop_assert_eq!(&f[..], &payloads[seen][..]);
                    } else {
                        let Some(f) = s.poll_frame().unwrap() else { break };
                        prop_assert_eq!(&f[..], &payloads[seen][..]);
                        if keep_mask >> (seen % 64) & 1 == 1 {
                            kept.push((seen, f));
                        }
                    }
                    seen += 1;
                }
            }
            s.handle_eof().unwrap();
            prop_assert_eq!(s.poll_frame(), Ok(None));
            prop_assert_eq!(seen, payloads.len());
            for (i, f) in &kept {
                prop_assert_eq!(&f[..], &payloads[*i][..]);
            }
        }
    }

    proptest! {
        #[test]
        fn kept_or_dropped_frames_in_any_chunking_and_mode(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..16),
            cuts in proptest::collection::vec(1usize..60, 1..20),
            zero_copy_mask in any::<u64>(),
            keep_mask in any::<u64>(),
            max in 44usize..200,
        ) {
            let input: Vec<u8> = payloads.iter().flat_map(|p| lp(p)).collect();
            let mut s = FramedStream::new(LengthPrefixed::new()).with_max_buffered(max);
            let mut kept: Vec<(usize, Bytes)> = Vec::new();
            let mut seen = 0usize;
            let (mut pos, mut step) = (0usize, 0usize);
            while pos < input.len() {
                let end = (pos + cuts[step % cuts.len()]).min(input.len());
                let n = if zero_copy_mask >> (step % 64) & 1 == 1 {
                    zero_copy(&mut s, &input[pos..end])
                } else {
                    s.handle_input(&input[pos..end]).unwrap()
                };
                pos += n;
                step += 1;
                while let Some(f) = s.poll_frame().unwrap() {
                    prop_assert_eq!(&f[..], &payloads[seen][..]);
                    if keep_mask >> (seen % 64) & 1 == 1 {
                        kept.push((seen, f));
                    }
                    seen += 1;
                }
            }
            s.handle_eof().unwrap();
            prop_assert_eq!(s.poll_frame(), Ok(None));
            prop_assert_eq!(seen, payloads.len());
            prop_assert_eq!(s.stats().bytes_received, input.len() as u64);
            for (i, f) in &kept {
                prop_assert_eq!(&f[..], &payloads[*i][..]);
            }
        }
    }
}
