//! The send half shared by both buffer modes: the checks every `send` makes
//! before anything is queued, and the byte queue over the caller's slice
//! used by the borrowed stream.

use super::error::SendError;
use super::recv::Core;
use crate::framing::{EncodeError, FrameHeader, Framing};

impl<F: Framing> Core<F> {
    /// Checks that `payload` can be queued now, next to `queued` bytes under a
    /// limit of `max`, and returns its header and the whole frame's length.
    /// Nothing is changed.
    pub(crate) fn prepare_send(
        &self,
        payload: &[u8],
        queued: usize,
        max: usize,
    ) -> Result<(FrameHeader, usize), SendError> {
        if let Some(e) = self.error() {
            return Err(SendError::Protocol(e));
        }
        if self.send_closed {
            return Err(SendError::Closed);
        }
        let header = self.framing.header(payload)?;
        let required = header
            .as_slice()
            .len()
            .saturating_add(payload.len())
            .saturating_add(self.framing.trailer().len());
        if required > max {
            return Err(SendError::Encode(EncodeError::BufferTooSmall { required }));
        }
        if required > max - queued {
            return Err(SendError::QueueFull {
                queued,
                required,
                max,
            });
        }
        Ok((header, required))
    }

    /// Checks a report of `written` bytes against `queued` and counts them.
    pub(crate) fn check_written(&mut self, written: usize, queued: usize) -> Result<(), SendError> {
        if written > queued {
            return Err(SendError::AdvancePastQueued { written, queued });
        }
        self.stats.bytes_sent += written as u64;
        Ok(())
    }
}

/// A FIFO of bytes in the caller's slice: `buf[start..end]` is queued.
#[derive(Debug)]
pub(crate) struct SliceQueue<'a> {
    buf: &'a mut [u8],
    start: usize,
    end: usize,
}

impl<'a> SliceQueue<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        SliceQueue {
            buf,
            start: 0,
            end: 0,
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.end - self.start
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Appends `parts` back to back. The caller checked that they fit
    /// (`sum <= capacity - queued`); this moves the queued bytes to the front
    /// when the room at the back is too small.
    pub(crate) fn push(&mut self, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        debug_assert!(total <= self.capacity() - self.queued());
        if self.buf.len() - self.end < total {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        for part in parts {
            self.buf[self.end..self.end + part.len()].copy_from_slice(part);
            self.end += part.len();
        }
    }

    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops `n <= queued()` bytes from the front.
    pub(crate) fn advance(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}
