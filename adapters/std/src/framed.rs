use std::io::{self, IoSlice, Read, Write};

use bytes::Bytes;
use framewire::framing::Framing;
use framewire::stream::{Event, FramedStream, Stats};

use crate::Error;

/// Most chunks handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// Encoded objects up to this many bytes are copied into the output queue
/// (where consecutive ones coalesce into one write) and the encode buffer is
/// kept for the next object; larger ones are queued as the buffer itself,
/// without a copy.
#[cfg(feature = "bson")]
const OBJ_COPY_MAX: usize = 16 * 1024;

/// A blocking framed connection: frames over any `Read + Write`.
///
/// `send` queues the frame in the core and writes until it is all out
/// (partial writes are resumed); `recv` returns the next frame, reading as
/// much as needed (partial reads are fine: any chunking gives the same
/// frames). Frames are `Bytes` that share the receive buffer.
///
/// To batch several frames into one write, [`queue`](Framed::queue) them (or,
/// with feature `bson`, `queue_obj` the objects) and then
/// [`flush`](Framed::flush).
pub struct Framed<S, F> {
    io: S,
    stream: FramedStream<F>,
    read_eof: bool,
    /// Reused encode buffer of `queue_obj` (at most `OBJ_COPY_MAX` bytes
    /// of capacity kept).
    #[cfg(feature = "bson")]
    scratch: Vec<u8>,
}

impl<S: Read + Write, F: Framing> Framed<S, F> {
    /// Frames `io` with `framing` and the core's default limits.
    pub fn new(io: S, framing: F) -> Self {
        Self::from_stream(io, FramedStream::new(framing))
    }

    /// Frames `io` with a configured core stream (custom buffer limits).
    pub fn from_stream(io: S, stream: FramedStream<F>) -> Self {
        Framed {
            io,
            stream,
            read_eof: false,
            #[cfg(feature = "bson")]
            scratch: Vec::new(),
        }
    }

    /// Frames `payload` and writes it out before returning.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.queue(payload)?;
        self.flush()
    }

    /// Frames a `Bytes` payload without copying it and writes it out.
    pub fn send_bytes(&mut self, payload: Bytes) -> Result<(), Error> {
        self.flush_if_full(payload.len())?;
        self.stream.send(payload)?;
        self.flush()
    }

    /// Frames `payload` into the output queue without writing it yet (the
    /// queue is flushed first if the frame would not fit next to it).
    pub fn queue(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.flush_if_full(payload.len())?;
        self.stream.send_slice(payload)?;
        Ok(())
    }

    fn flush_if_full(&mut self, payload_len: usize) -> Result<(), Error> {
        let queued = self.stream.queued_len();
        if queued > 0 && queued.saturating_add(payload_len) > self.stream.max_queued() / 2 {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes everything queued, with vectored writes, resuming after
    /// partial writes, then flushes the underlying stream.
    pub fn flush(&mut self) -> Result<(), Error> {
        while self.stream.queued_len() > 0 {
            let written = {
                let mut chunks = [&[][..]; MAX_IOVECS];
                let n = self.stream.fill_transmit(&mut chunks);
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                for (slice, chunk) in slices.iter_mut().zip(&chunks[..n]) {
                    *slice = IoSlice::new(chunk);
                }
                match self.io.write_vectored(&slices[..n]) {
                    Ok(0) => {
                        return Err(Error::Io(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "the stream accepted no bytes",
                        )))
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::Io(e)),
                }
            };
            self.stream.advance_transmit(written)?;
        }
        self.io.flush()?;
        Ok(())
    }

    /// The next frame, or `None` when the peer closed cleanly between
    /// frames. A close inside a frame is
    /// `Error::Protocol(ProtocolError::Truncated { have, need })`.
    /// Over-long frames skipped under `OversizePolicy::Skip` are passed over
    /// (see [`stats`](Framed::stats) and [`recv_event`](Framed::recv_event)).
    pub fn recv(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            match self.recv_event()? {
                Event::Frame(frame) => return Ok(Some(frame)),
                Event::Closed => return Ok(None),
                _ => {}
            }
        }
    }

    /// The next event of the receive side: a frame, a skipped over-long
    /// frame, or the clean close (returned again on every later call).
    pub fn recv_event(&mut self) -> Result<Event<Bytes>, Error> {
        loop {
            if let Some(event) = self.stream.poll_event()? {
                return Ok(event);
            }
            if self.read_eof {
                // The core reported its Closed event already (edge-triggered).
                return Ok(Event::Closed);
            }
            self.fill()?;
        }
    }

    /// Reads once from the stream into the core's receive buffer.
    fn fill(&mut self) -> Result<(), Error> {
        let spare = self.stream.receive_buffer();
        if spare.is_empty() {
            // The core guarantees a full buffer yields an event or an error,
            // so this is only reached after a terminal state; surface it.
            self.stream.poll_event()?;
            return Err(Error::Io(io::Error::other(
                "receive buffer full without a frame",
            )));
        }
        let n = loop {
            match self.io.read(spare) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        };
        if n == 0 {
            self.read_eof = true;
            self.stream.handle_eof()?;
        } else {
            self.stream.commit_received(n)?;
        }
        Ok(())
    }

    /// Counters of the core stream.
    pub fn stats(&self) -> Stats {
        self.stream.stats()
    }

    /// The core stream (limits, state).
    pub fn stream(&self) -> &FramedStream<F> {
        &self.stream
    }

    /// The underlying I/O object.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The underlying I/O object, mutably (reading or writing it directly
    /// desynchronises the framing).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The underlying I/O object. Unflushed output and buffered input are lost.
    pub fn into_inner(self) -> S {
        self.io
    }
}

#[cfg(feature = "bson")]
impl<S: Read + Write> Framed<S, framewire::framing::BsonDocument> {
    /// Sends `obj` as one BSON document (py-bson's `sendobj`): encodes it
    /// into the output queue and writes the queue out before returning.
    pub fn send_obj<T: serde::Serialize + ?Sized>(&mut self, obj: &T) -> Result<(), Error> {
        self.queue_obj(obj)?;
        self.flush()
    }

    /// Encodes `obj` as one BSON document into the output queue without
    /// writing it yet; [`flush`](Framed::flush) writes everything queued at
    /// once (the queue is flushed first if the document would not fit next
    /// to it). Nothing is queued if encoding fails.
    ///
    /// The document bytes are the same as [`send_obj`](Framed::send_obj)'s:
    /// `queue_obj` x N then one `flush` sends N documents with one write
    /// where the stream takes them all.
    pub fn queue_obj<T: serde::Serialize + ?Sized>(&mut self, obj: &T) -> Result<(), Error> {
        self.scratch.clear();
        let len = framewire::message::bson::encode_into(obj, &mut self.scratch)?;
        self.flush_if_full(len)?;
        if len <= OBJ_COPY_MAX {
            self.stream.send_slice(&self.scratch)?;
        } else {
            // Large: hand the buffer over instead of copying it.
            let doc = std::mem::take(&mut self.scratch);
            self.stream.send(Bytes::from(doc))?;
        }
        if self.scratch.capacity() > OBJ_COPY_MAX {
            self.scratch = Vec::new();
        }
        Ok(())
    }

    /// Receives one BSON document as `T` (py-bson's `recvobj`). `None` on a
    /// clean close between documents; a close inside one is an error, unlike
    /// py-bson, which cannot tell the two apart.
    ///
    /// The document is decoded straight from the receive buffer.
    pub fn recv_obj<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>, Error> {
        loop {
            let step = self.stream.poll_event_with(|event| match event {
                Event::Frame(doc) => Some(framewire::message::bson::from_slice(doc).map(Some)),
                Event::Closed => Some(Ok(None)),
                // A skipped over-long document (counted in the stats).
                _ => None,
            })?;
            match step {
                Some(Some(result)) => return Ok(result?),
                Some(None) => {}
                None if self.read_eof => return Ok(None),
                None => self.fill()?,
            }
        }
    }
}

impl<S: std::fmt::Debug, F> std::fmt::Debug for Framed<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framed")
            .field("io", &self.io)
            .field("read_eof", &self.read_eof)
            .finish_non_exhaustive()
    }
}
