//! The alloc [`Connection`](super::Connection)'s receive buffer: bytes
//! received and not yet handled, with a read cursor, so that handling a
//! packet costs one addition rather than a `BytesMut::advance` each (its
//! bookkeeping was 70 instructions a request in `scripts/instructions.sh`'s
//! lent pair). The handled bytes are dropped from the front in one step
//! when more input is appended or a payload is split off as `Bytes`.

use bytes::{Buf, Bytes, BytesMut};

/// Received bytes: `buf[pos..]` are not handled yet; `buf[..pos]` are, and
/// go at the next [`append`](Self::append) or
/// [`split_packet`](Self::split_packet).
#[derive(Debug, Default)]
pub(super) struct ReceiveBuffer {
    buf: BytesMut,
    pos: usize,
}

impl ReceiveBuffer {
    /// The bytes not handled yet.
    #[inline]
    pub(super) fn unhandled(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// How many bytes are not handled yet.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte is handled.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` unhandled bytes are handled (`n <= len()`).
    #[inline]
    pub(super) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len(), "consumed {n} of {}", self.len());
        self.pos += n;
    }

    /// Appends received bytes (dropping the handled ones first).
    pub(super) fn append(&mut self, data: &[u8]) {
        self.drop_handled();
        self.buf.extend_from_slice(data);
    }

    /// Removes the first `len` unhandled bytes (a whole packet) and returns
    /// its last `payload_len` of them without copying.
    pub(super) fn split_packet(&mut self, len: usize, payload_len: usize) -> Bytes {
        self.drop_handled();
        // One split for the whole packet; the header is skipped in the
        // frozen `Bytes` (a pointer move there).
        let mut packet = self.buf.split_to(len).freeze();
        packet.advance(len - payload_len);
        packet
    }

    /// Drops every byte, returning how many were unhandled; the allocation
    /// is released.
    pub(super) fn clear(&mut self) -> usize {
        let unhandled = self.len();
        *self = ReceiveBuffer::default();
        unhandled
    }

    fn drop_handled(&mut self) {
        if self.pos > 0 {
            self.buf.advance(self.pos);
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumed_bytes_go_at_the_next_append_or_split() {
        let mut rx = ReceiveBuffer::default();
        rx.append(b"\x03abc\x02de");
        rx.consume(4);
        assert_eq!(rx.unhandled(), b"\x02de");
        assert_eq!(rx.len(), 3);
        rx.append(b"\x01f");
        assert_eq!(rx.unhandled(), b"\x02de\x01f");
        assert_eq!(rx.split_packet(3, 2), Bytes::from_static(b"de"));
        assert_eq!(rx.unhandled(), b"\x01f");
        rx.consume(2);
        assert!(rx.is_empty());
        rx.append(b"xyz");
        assert_eq!(rx.clear(), 3);
        assert!(rx.is_empty());
    }
}
