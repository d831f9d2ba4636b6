//! Frames over a Tokio byte stream: a reader and a writer half, each
//! driving a core `FramedStream` (the framing and its limits live there;
//! this only moves bytes).

use std::io::IoSlice;

use bytes::Bytes;
use framewire::stream::{Event, FramedStream, SendError, StreamError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::AnyFraming;

/// What can go wrong on a framed connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the framing (an oversized frame, a truncated one, …).
    #[error("{0}")]
    Protocol(#[from] StreamError),
    /// A payload cannot be framed (too long for the length field, the wrong
    /// size for a fixed framing, a delimiter inside a line, …).
    #[error("{0}")]
    Send(#[from] SendError),
}

/// Reads frames from `R`.
pub(crate) struct FrameReader<R> {
    io: R,
    stream: FramedStream<AnyFraming>,
    /// The peer's end of stream was handed to the stream.
    eof: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Frames from `io` with `framing` and its limits.
    pub(crate) fn new(io: R, framing: AnyFraming) -> Self {
        FrameReader {
            io,
            stream: FramedStream::new(framing),
            eof: false,
        }
    }

    /// The next frame's payload; `None` when the peer closed between frames.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, ConnError> {
        loop {
            if let Some(frame) = self.next_buffered()? {
                return Ok(Some(frame));
            }
            if self.eof {
                // EOF handed in and every event drained: closed.
                return Ok(None);
            }
            let buf = self.stream.receive_buffer();
            // Only empty after EOF or an error (a full buffer always decodes
            // or fails in poll_event); never read into it, 0 would look like
            // EOF.
            let n = if buf.is_empty() {
                0
            } else {
                self.io.read(buf).await?
            };
            if n == 0 {
                self.eof = true;
                self.stream.handle_eof()?;
            } else {
                self.stream.commit_received(n)?;
            }
        }
    }

    /// A frame already buffered, without reading from the socket (to batch
    /// replies to pipelined frames before one flush).
    pub(crate) fn next_buffered(&mut self) -> Result<Option<Bytes>, ConnError> {
        loop {
            match self.stream.poll_event()? {
                Some(Event::Frame(frame)) => return Ok(Some(frame)),
                Some(Event::Closed) => {
                    self.eof = true;
                    return Ok(None);
                }
                None => return Ok(None),
                Some(_) => {}
            }
        }
    }

    /// Bytes received so far, framing included.
    pub(crate) fn bytes_received(&self) -> u64 {
        self.stream.stats().bytes_received
    }
}

/// Writes frames to `W`.
pub(crate) struct FrameWriter<W> {
    io: W,
    stream: FramedStream<AnyFraming>,
    written: u64,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Frames to `io` with `framing` and its limits.
    pub(crate) fn new(io: W, framing: AnyFraming) -> Self {
        FrameWriter {
            io,
            stream: FramedStream::new(framing),
            written: 0,
        }
    }

    /// Frames `payload` into the queue, writing queued bytes out first if
    /// the queue is full. Nothing is written unless it must be: call
    /// [`flush`](Self::flush).
    pub(crate) async fn queue(&mut self, payload: Bytes) -> Result<(), ConnError> {
        match self.stream.send(payload.clone()) {
            Err(SendError::QueueFull { .. }) => {
                self.flush().await?;
                self.stream.send(payload)?;
            }
            other => other?,
        }
        Ok(())
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> Result<(), ConnError> {
        loop {
            let mut slices = [&[][..]; 64];
            let n = self.stream.fill_transmit(&mut slices);
            if n == 0 {
                break;
            }
            let io: Vec<IoSlice<'_>> = slices[..n].iter().map(|s| IoSlice::new(s)).collect();
            let written = self.io.write_vectored(&io).await?;
            if written == 0 {
                return Err(ConnError::Io(std::io::ErrorKind::WriteZero.into()));
            }
            self.stream.advance_transmit(written)?;
            self.written += written as u64;
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Flushes and shuts the sending side down.
    pub(crate) async fn shutdown(&mut self) -> Result<(), ConnError> {
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }

    /// Bytes written so far, framing included.
    pub(crate) fn bytes_written(&self) -> u64 {
        self.written
    }
}
