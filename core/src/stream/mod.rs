//! A sans-IO framed byte stream: a receive buffer, a [`Framing`](crate::framing::Framing), and an
//! output queue, with no I/O of its own.
//!
//! Two buffer modes run the same state machine:
//!
//! * [`BorrowedFramedStream`] (always available, no allocation): the caller
//!   lends one `&mut [u8]` to receive into and one to queue output in. Frames
//!   are `&[u8]` slices of the receive buffer, valid until the next call that
//!   takes `&mut self`.
//! * `FramedStream` (feature `alloc`): owns a growing `bytes::BytesMut`
//!   receive buffer and hands out frames as `bytes::Bytes` that share it (no
//!   payload copy); sends `Bytes` payloads without copying them.
//!
//! # Calling order
//!
//! Methods are grouped by direction, as in quinn-proto:
//!
//! * **inputs**: [`handle_input`](BorrowedFramedStream::handle_input) (or the
//!   zero-copy pair [`receive_buffer`](BorrowedFramedStream::receive_buffer) +
//!   [`commit_received`](BorrowedFramedStream::commit_received)) when bytes
//!   arrive, [`handle_eof`](BorrowedFramedStream::handle_eof) when the peer
//!   closes its sending side;
//! * **commands**: [`send`](BorrowedFramedStream::send),
//!   [`close`](BorrowedFramedStream::close);
//! * **outputs**: [`poll_event`](BorrowedFramedStream::poll_event) (or
//!   [`poll_frame`](BorrowedFramedStream::poll_frame)),
//!   [`poll_transmit`](BorrowedFramedStream::poll_transmit) +
//!   [`advance_transmit`](BorrowedFramedStream::advance_transmit);
//! * getters on `&self`: [`state`](BorrowedFramedStream::state),
//!   [`stats`](BorrowedFramedStream::stats), ...
//!
//! A driver loops:
//!
//! 1. Hand in what arrived. `handle_input` returns how many bytes it took;
//!    fewer than offered means the receive buffer is full (backpressure, not
//!    loss): keep the rest and offer it again after step 2.
//! 2. Call `poll_event` until it returns `Ok(None)`. Decoding happens here,
//!    so frames only come out of `poll_event`; a full buffer always makes
//!    progress (a frame, a skip or an error), never a stall.
//! 3. After a `send`, write what `poll_transmit` shows and report the bytes
//!    written with `advance_transmit` (sockets write partially).
//! 4. On the peer's close call `handle_eof`, then drain `poll_event`: the last
//!    frames come out, then [`Event::Closed`] if the close fell between frames,
//!    or [`ProtocolError::Truncated`] if it fell inside one.
//!
//! Any chunking of the input gives the same events, as long as the driver
//! drains `poll_event` before offering bytes that were refused.
//!
//! # Limits
//!
//! * Receive: the buffer holds at most `capacity` bytes (the receive slice's
//!   length, or `FramedStream`'s `max_buffered`, by default the framing's
//!   [`max_frame_len`](crate::framing::Framing::max_frame_len) but at least
//!   [`DEFAULT_MIN_BUFFERED`]). A frame known to need more fails with
//!   [`ProtocolError::FrameExceedsBuffer`] as soon as its header is seen, so
//!   an untrusted length never makes the stream buffer beyond the limit.
//! * Send: at most `max` bytes queued (the transmit slice's length, or
//!   `FramedStream`'s `max_queued`, by default the framing's `max_frame_len`
//!   but at least [`DEFAULT_MIN_QUEUED`]). A frame that can never fit is
//!   `SendError::Encode(BufferTooSmall { required })`; one that does not fit
//!   next to what is queued is [`SendError::QueueFull`]. Either way nothing is
//!   queued.
//!
//! # Errors
//!
//! Peer protocol errors ([`ProtocolError`]: the framing's [`FrameError`](crate::framing::FrameError),
//! truncation, the buffer limit) make the stream terminal: `handle_input`,
//! `commit_received`, `handle_eof`, `poll_event` and `send` return the same
//! error on every later call. Queued output can still be written out.
//! Local misuse (input after EOF, send after close, a frame the framing
//! cannot encode, an oversized commit or advance) changes nothing.
//!
//! # Example (no allocation)
//!
//! ```
//! use framewire::framing::Fixed;
//! use framewire::stream::{BorrowedFramedStream, Event};
//!
//! let (mut rx, mut tx) = ([0u8; 16], [0u8; 16]);
//! let mut s = BorrowedFramedStream::new(Fixed::new(3), &mut rx, &mut tx);
//! assert_eq!(s.handle_input(b"abcde")?, 5);
//! assert_eq!(s.poll_event()?, Some(Event::Frame(&b"abc"[..])));
//! assert_eq!(s.poll_event()?, None); // "de" waits for a third byte
//! s.handle_input(b"f")?;
//! s.handle_eof()?;
//! assert_eq!(s.poll_frame()?, Some(&b"def"[..]));
//! assert_eq!(s.poll_event()?, Some(Event::Closed));
//!
//! s.send(b"xyz").unwrap();
//! assert_eq!(s.poll_transmit(), Some(&b"xyz"[..]));
//! s.advance_transmit(3).unwrap();
//! assert_eq!(s.poll_transmit(), None);
//! # Ok::<(), framewire::stream::StreamError>(())
//! ```

mod borrowed;
mod error;
#[cfg(feature = "alloc")]
mod owned;
mod recv;
mod send;
#[cfg(test)]
mod tests;

pub use self::borrowed::BorrowedFramedStream;
pub use self::error::{ProtocolError, SendError, StreamError};
#[cfg(feature = "alloc")]
pub use self::owned::FramedStream;

use crate::framing::Oversize;

/// The least default receive limit of `FramedStream` (64 KiB); the default
/// is the framing's [`max_frame_len`](crate::framing::Framing::max_frame_len) if larger.
pub const DEFAULT_MIN_BUFFERED: usize = 64 * 1024;

/// The least default output queue limit of `FramedStream` (1 MiB); the
/// default is the framing's [`max_frame_len`](crate::framing::Framing::max_frame_len) if larger.
pub const DEFAULT_MIN_QUEUED: usize = 1024 * 1024;

/// Something the receive side has to report, from
/// [`poll_event`](BorrowedFramedStream::poll_event). `T` is the frame type:
/// `&[u8]` for [`BorrowedFramedStream`], `bytes::Bytes` for `FramedStream`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event<T> {
    /// One frame's payload, in order.
    Frame(T),
    /// An over-long frame is being discarded (only under
    /// [`OversizePolicy::Skip`](crate::framing::OversizePolicy::Skip));
    /// reported once per frame and counted in [`Stats::frames_skipped`].
    Skipped(Oversize),
    /// The peer closed cleanly between frames and every frame has been
    /// delivered. Edge-triggered: reported once, then `poll_event` returns
    /// `Ok(None)`.
    Closed,
}

/// Where the receive side is. Sending is independent of it, except that
/// nothing can be sent once it is [`Failed`](StreamState::Failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StreamState {
    /// Accepting input.
    Open,
    /// The peer closed (`handle_eof`); buffered frames are still to be polled.
    Draining,
    /// The peer closed cleanly and every frame was delivered (terminal).
    Closed,
    /// The peer broke the protocol (terminal).
    Failed(ProtocolError),
}

impl StreamState {
    /// Whether the receive side is done for good ([`Closed`](StreamState::Closed)
    /// or [`Failed`](StreamState::Failed)).
    pub fn is_terminal(&self) -> bool {
        matches!(self, StreamState::Closed | StreamState::Failed(_))
    }
}

/// Counters of a stream's life so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Frames delivered by `poll_event`/`poll_frame`.
    pub frames_received: u64,
    /// Bytes taken from the peer (skipped bytes included).
    pub bytes_received: u64,
    /// Over-long frames skipped ([`Event::Skipped`]).
    pub frames_skipped: u64,
    /// Bytes discarded while skipping over-long frames.
    pub bytes_skipped: u64,
    /// Frames queued by `send`.
    pub frames_sent: u64,
    /// Bytes reported written by `advance_transmit`.
    pub bytes_sent: u64,
}
