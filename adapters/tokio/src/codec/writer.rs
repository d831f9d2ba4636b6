//! A frame writer that sends large payloads without copying them.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use framewire::framing::Framing;
use framewire::stream::{FramedStream, SendError};
use futures_util::Sink;
use tokio::io::AsyncWrite;

use super::CodecError;

/// The default [`FrameWriter::with_backpressure_boundary`]: 128 KiB queued
/// make [`Sink::poll_ready`] write before taking more.
pub const DEFAULT_BACKPRESSURE_BOUNDARY: usize = 128 * 1024;

/// The most slices handed to one `write_vectored` (Linux's `IOV_MAX` is 1024;
/// 64 covers many small coalesced frames and large bodies alike).
const MAX_SLICES: usize = 64;

/// Writes frames of a [`Framing`] to an [`AsyncWrite`] without copying large
/// payloads.
///
/// Frames are queued in the core's output queue
/// ([`FramedStream`]): a payload of more than 64 bytes
/// stays in its own `Bytes` and only its header (and trailer) is copied;
/// smaller payloads are copied next to their header, so a burst of small
/// frames coalesces into one contiguous chunk. The queue is written with
/// `poll_write_vectored`, up to 64 chunks a call, so header and body leave in
/// one system call and the body is never copied in user space.
///
/// The trade-off against `FramedWrite` + [`FrameCodec`](super::FrameCodec):
/// `FramedWrite` copies every payload into its buffer (cheap for small frames,
/// a full memory pass for large ones) and then writes one contiguous slice;
/// `FrameWriter` saves the copy, but a transport without real vectored writes
/// (`is_write_vectored() == false`) gets one `write` per chunk. Sockets
/// (`TcpStream`, `UnixStream`) have vectored writes.
///
/// Use it through [`write_frame`](Self::write_frame) /
/// [`queue`](Self::queue) + [`flush`](Self::flush), or as a
/// `Sink<Bytes>` (`SinkExt::send`, `send_all`): `poll_ready` writes out the
/// queue once it holds [`DEFAULT_BACKPRESSURE_BOUNDARY`] bytes, so the queue
/// holds at most that plus one frame (whose payload is shared, not copied).
///
/// ```
/// use bytes::Bytes;
/// use framewire_tokio::codec::FrameWriter;
/// use framewire::framing::LengthPrefixed;
/// use tokio::io::AsyncReadExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let (a, mut b) = tokio::io::duplex(1 << 20);
/// let mut writer = FrameWriter::new(a, LengthPrefixed::new());
/// let body = Bytes::from(vec![7u8; 100_000]);
/// writer.write_frame(body.clone()).await?; // the 100 kB are not copied
/// let mut got = vec![0u8; 4 + body.len()];
/// b.read_exact(&mut got).await?;
/// assert_eq!(&got[..4], &100_000u32.to_be_bytes());
/// assert_eq!(&got[4..], &body[..]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FrameWriter<W, F> {
    io: W,
    queue: FramedStream<F>,
    boundary: usize,
}

impl<W, F> std::fmt::Debug for FrameWriter<W, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter")
            .field("boundary", &self.boundary)
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin, F: Framing + Unpin> FrameWriter<W, F> {
    /// A writer of `framing`'s frames to `io`.
    pub fn new(io: W, framing: F) -> Self {
        FrameWriter {
            io,
            // The queue is local data: it is bounded by the boundary below
            // (Sink) or by the caller's flushes, not by a limit of its own.
            queue: FramedStream::new(framing).with_max_queued(usize::MAX),
            boundary: DEFAULT_BACKPRESSURE_BOUNDARY,
        }
    }

    /// Sets how many queued bytes make [`Sink::poll_ready`] write before
    /// accepting another frame (default [`DEFAULT_BACKPRESSURE_BOUNDARY`]).
    #[must_use]
    pub fn with_backpressure_boundary(mut self, boundary: usize) -> Self {
        self.boundary = boundary;
        self
    }

    /// Frames `payload` into the queue without writing (and without copying
    /// a payload over 64 bytes). Nothing is queued on error.
    pub fn queue(&mut self, payload: impl Into<Bytes>) -> Result<(), CodecError> {
        self.queue.send(payload).map_err(|e| match e {
            SendError::Encode(e) => CodecError::Encode(e),
            other => CodecError::Io(io::Error::other(other)),
        })
    }

    /// Queues `payload` and writes out the whole queue.
    pub async fn write_frame(&mut self, payload: impl Into<Bytes>) -> Result<(), CodecError> {
        self.queue(payload)?;
        self.flush().await
    }

    /// Writes out everything queued and flushes the transport.
    pub async fn flush(&mut self) -> Result<(), CodecError> {
        poll_fn(|cx| self.poll_write_queue(cx)).await
    }

    /// Flushes, then shuts down the transport's write side.
    pub async fn shutdown(&mut self) -> Result<(), CodecError> {
        self.flush().await?;
        poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await?;
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn queued_len(&self) -> usize {
        self.queue.queued_len()
    }

    /// The transport.
    pub fn get_ref(&self) -> &W {
        &self.io
    }

    /// The transport (writing to it directly interleaves with queued frames).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.io
    }

    /// The transport; bytes still queued are dropped (flush first).
    pub fn into_inner(self) -> W {
        self.io
    }

    /// Writes the queue with vectored writes until it is empty, then flushes
    /// the transport.
    pub fn poll_write_queue(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        loop {
            let mut chunks: [&[u8]; MAX_SLICES] = [&[]; MAX_SLICES];
            let n = self.queue.fill_transmit(&mut chunks);
            if n == 0 {
                break;
            }
            let slices: [IoSlice<'_>; MAX_SLICES] =
                std::array::from_fn(|i| IoSlice::new(chunks[i]));
            let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))?;
            if written == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "transport accepted no bytes of a frame",
                )
                .into()));
            }
            self.queue
                .advance_transmit(written)
                .map_err(|e| CodecError::Io(io::Error::other(e)))?;
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin, F: Framing + Unpin> Sink<Bytes> for FrameWriter<W, F> {
    type Error = CodecError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        let this = self.get_mut();
        if this.queued_len() >= this.boundary {
            this.poll_write_queue(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn start_send(self: Pin<&mut Self>, item: Bytes) -> Result<(), CodecError> {
        self.get_mut().queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        self.get_mut().poll_write_queue(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        let this = self.get_mut();
        ready!(this.poll_write_queue(cx))?;
        ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}
