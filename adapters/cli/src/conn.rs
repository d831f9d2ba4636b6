//! Frames over a Tokio byte stream, through `framewire_tokio::codec`: a
//! reader (`FramedRead` + `FrameCodec`) and a writer (`FrameWriter`), each
//! counting the bytes it moved for the summaries.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use framewire::framing::Framing;
use framewire_tokio::codec::{CodecError, FrameCodec, FrameWriter as CodecWriter};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::{Decoder, FramedRead};

use crate::codec::FrameSpec;

/// What can go wrong on a framed connection: the codec's error (the peer
/// broke the framing, a payload cannot be framed, the transport failed).
pub(crate) type ConnError = CodecError;

/// An `AsyncRead` that counts the bytes read through it.
struct Counted<R> {
    inner: R,
    count: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.count += (buf.filled().len() - before) as u64;
        }
        r
    }
}

/// Reads frames from `R`.
pub(crate) struct FrameReader<R> {
    framed: FramedRead<Counted<R>, FrameCodec<FrameSpec>>,
    /// The stream has ended (cleanly or not); nothing more will come.
    done: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Frames from `io` with `framing` and its limits.
    pub(crate) fn new(io: R, framing: FrameSpec) -> Self {
        FrameReader {
            framed: FramedRead::new(
                Counted {
                    inner: io,
                    count: 0,
                },
                FrameCodec::new(framing),
            ),
            done: false,
        }
    }

    /// The next frame's payload; `None` when the peer closed between frames.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, ConnError> {
        if self.done {
            return Ok(None);
        }
        if let Some(r) = self.framed.next().await {
            r.map(Some)
        } else {
            self.done = true;
            Ok(None)
        }
    }

    /// A whole frame already buffered, without reading from the socket (to
    /// answer every pipelined frame before one flush).
    pub(crate) fn next_buffered(&mut self) -> Result<Option<Bytes>, ConnError> {
        if self.done || self.framed.read_buffer().is_empty() {
            return Ok(None);
        }
        // The decoder and the buffer are both behind `framed`: take the
        // buffer out (no copy), decode, put it back.
        let mut buf = std::mem::take(self.framed.read_buffer_mut());
        let frame = self.framed.decoder_mut().decode(&mut buf);
        *self.framed.read_buffer_mut() = buf;
        frame
    }

    /// Bytes received so far, framing included.
    pub(crate) fn bytes_received(&self) -> u64 {
        self.framed.get_ref().count
    }
}

/// Writes frames to `W` (large payloads are not copied).
pub(crate) struct FrameWriter<W> {
    inner: CodecWriter<W, FrameSpec>,
    framing: FrameSpec,
    queued: u64,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Frames to `io` with `framing` and its limits.
    pub(crate) fn new(io: W, framing: FrameSpec) -> Self {
        FrameWriter {
            inner: CodecWriter::new(io, framing.clone()),
            framing,
            queued: 0,
        }
    }

    /// Frames `payload` into the queue, writing the queue out first when it
    /// has grown large. Call [`flush`](Self::flush) to write the rest.
    pub(crate) async fn queue(&mut self, payload: Bytes) -> Result<(), ConnError> {
        let len = self.framing.encoded_len(&payload)?;
        if self.inner.queued_len() >= framewire_tokio::codec::DEFAULT_BACKPRESSURE_BOUNDARY {
            self.inner.flush().await?;
        }
        self.inner.queue(payload)?;
        self.queued += len as u64;
        Ok(())
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> Result<(), ConnError> {
        self.inner.flush().await
    }

    /// Flushes and shuts the sending side down.
    pub(crate) async fn shutdown(&mut self) -> Result<(), ConnError> {
        self.inner.shutdown().await
    }

    /// Bytes framed so far (written once flushed), framing included.
    pub(crate) fn bytes_written(&self) -> u64 {
        self.queued
    }
}
