//! The byte pump between a smoltcp TCP socket and a sans-IO endpoint of the
//! core, shared by [`FramedSocket`](crate::FramedSocket) and the packet
//! driver.
//!
//! smoltcp's `recv` and `send` closures only see the largest *contiguous*
//! part of the socket's ring buffer. A decoder that parses inside that
//! closure stalls when a frame straddles the ring's end (smoltcp issue #797:
//! the closure sees the tail, cannot complete the frame, returns 0, and the
//! front part is never looked at). The pump never parses in place: it copies
//! every contiguous part into the core's own buffer, calling `recv` again
//! until the socket is empty or the core's buffer is full, so the second
//! call sees the bytes after the wraparound. The core reassembles frames in
//! its buffer, where they are always contiguous. Transmission is the mirror
//! image: `send` is called again after a partial copy (the free space past
//! the ring's end), and the core's queue only advances by what the socket
//! took, so nothing is lost when the socket's buffer is full; the rest goes
//! on the next poll.

use smoltcp::socket::tcp::{self, RecvError};

use crate::error::ConnectionLost;

/// The core state machine behind a driver, as the pump needs it.
pub(crate) trait Endpoint {
    /// The endpoint's error for input and EOF.
    type Error;
    /// Whether the endpoint can take input now (open and not full).
    fn wants_input(&self) -> bool;
    /// Hands in bytes; returns how many were taken.
    fn input(&mut self, bytes: &[u8]) -> Result<usize, Self::Error>;
    /// The peer closed its sending side.
    fn eof(&mut self) -> Result<(), Self::Error>;
    /// Bytes waiting to be written, if any.
    fn pending(&self) -> Option<&[u8]>;
    /// The first `n` bytes of [`pending`](Self::pending) were written.
    fn advance(&mut self, n: usize);
    /// Bytes queued in the endpoint and not yet handed to the socket.
    fn queued(&self) -> usize;
    /// Whether the endpoint's sending side is done and everything was handed
    /// to the socket: time to send our FIN.
    fn send_finished(&self) -> bool;
    /// The connection was lost (see [`ConnectionLost`]); called once.
    fn connection_lost(&mut self) {}
}

/// Counters of the bytes moved between a socket and the core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// Bytes taken from the socket's receive buffer into the core.
    pub bytes_received: u64,
    /// Bytes handed from the core's queue to the socket's transmit buffer.
    pub bytes_sent: u64,
    /// `recv` calls that moved bytes.
    pub recv_calls: u64,
    /// `send` calls that moved bytes.
    pub send_calls: u64,
    /// Reads that stopped at the end of the socket's receive ring with more
    /// bytes waiting after the wraparound (which the next `recv` call of the
    /// same poll then took): each one is a place where a parser working
    /// inside smoltcp's `recv` closure would have seen a split frame.
    pub rx_wraps: u64,
    /// Writes that filled the socket's transmit ring up to its end with room
    /// left at its front (which the next `send` call of the same poll used).
    pub tx_wraps: u64,
    /// Polls that left bytes queued in the core because the socket's
    /// transmit buffer was full (they go out on a later poll).
    pub tx_full: u64,
}

/// What one `poll_socket` call moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes taken from the socket into the core.
    pub received: usize,
    /// Bytes handed from the core to the socket.
    pub sent: usize,
}

impl Progress {
    /// Whether anything moved.
    pub fn any(&self) -> bool {
        self.received > 0 || self.sent > 0
    }
}

/// What the pump remembers about the socket between polls.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Link {
    /// The socket was seen open (listening, connecting or connected).
    seen_open: bool,
    /// The peer's FIN was handed to the core.
    pub(crate) eof: bool,
    /// We closed the socket's sending side (our FIN is queued).
    pub(crate) fin_sent: bool,
    /// The connection ended without a clean close (sticky).
    pub(crate) lost: Option<ConnectionLost>,
    pub(crate) stats: LinkStats,
}

/// A pump error: the endpoint's, or the connection's loss.
pub(crate) enum PumpError<E> {
    Endpoint(E),
    Lost(ConnectionLost),
}

impl Link {
    /// Moves bytes both ways: from the socket into the endpoint until the
    /// socket is empty or the endpoint full, then from the endpoint's queue
    /// into the socket until one is empty or the other full. Sends our FIN
    /// once the endpoint's sending side is finished.
    pub(crate) fn pump<E: Endpoint>(
        &mut self,
        ep: &mut E,
        socket: &mut tcp::Socket<'_>,
    ) -> Result<Progress, PumpError<E::Error>> {
        if socket.is_open() {
            self.seen_open = true;
        }
        let received = self.receive(ep, socket).map_err(PumpError::Endpoint)?;
        let sent = self.transmit(ep, socket);
        if let Some(lost) = self.check_lost(ep, socket) {
            return Err(PumpError::Lost(lost));
        }
        Ok(Progress { received, sent })
    }

    fn receive<E: Endpoint>(
        &mut self,
        ep: &mut E,
        socket: &mut tcp::Socket<'_>,
    ) -> Result<usize, E::Error> {
        let mut total = 0;
        while !self.eof && ep.wants_input() {
            let queued = socket.recv_queue();
            let read = socket.recv(|ring| match ep.input(ring) {
                Ok(n) => (n, Ok((n, ring.len()))),
                Err(e) => (0, Err(e)),
            });
            match read {
                // Nothing taken (the socket is empty), or not connected yet,
                // or the connection is gone (see check_lost).
                Ok(Ok((0, _))) | Err(RecvError::InvalidState) => break,
                Ok(Ok((n, contiguous))) => {
                    total += n;
                    self.stats.recv_calls += 1;
                    self.stats.bytes_received += n as u64;
                    if n == contiguous && contiguous < queued {
                        self.stats.rx_wraps += 1;
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(RecvError::Finished) => {
                    self.eof = true;
                    ep.eof()?;
                }
            }
        }
        Ok(total)
    }

    fn transmit<E: Endpoint>(&mut self, ep: &mut E, socket: &mut tcp::Socket<'_>) -> usize {
        let mut total = 0;
        while socket.may_send() {
            let Some(pending) = ep.pending() else { break };
            let free = socket.send_capacity() - socket.send_queue();
            let wrote = socket.send(|ring| {
                let n = ring.len().min(pending.len());
                ring[..n].copy_from_slice(&pending[..n]);
                (n, n)
            });
            let n = match wrote {
                Ok(n) if n > 0 => n,
                _ => {
                    self.stats.tx_full += 1;
                    break;
                }
            };
            if n < pending.len() && n < free {
                self.stats.tx_wraps += 1;
            }
            ep.advance(n);
            total += n;
            self.stats.send_calls += 1;
            self.stats.bytes_sent += n as u64;
        }
        if !self.fin_sent && ep.send_finished() && socket.may_send() {
            socket.close();
            self.fin_sent = true;
        }
        total
    }

    /// The connection is gone without a clean end: the socket closed (reset,
    /// refused, timed out, or aborted) before the peer's FIN, or with bytes
    /// of ours never delivered.
    fn check_lost<E: Endpoint>(
        &mut self,
        ep: &mut E,
        socket: &tcp::Socket<'_>,
    ) -> Option<ConnectionLost> {
        if self.lost.is_none() && self.seen_open && !socket.is_open() {
            let unsent = ep.queued() + socket.send_queue();
            if !(self.eof || fin_received(socket)) || unsent > 0 {
                self.lost = Some(ConnectionLost {
                    state: socket.state(),
                    unsent,
                    peer_closed: self.eof,
                });
                ep.connection_lost();
            }
        }
        self.lost
    }

    /// Whether a pump now would move something: bytes (or the peer's FIN)
    /// the endpoint can take, queued bytes the socket can take, our FIN, or
    /// a lost connection to report.
    pub(crate) fn wants_poll<E: Endpoint>(&self, ep: &E, socket: &tcp::Socket<'_>) -> bool {
        use tcp::State;
        if self.lost.is_some() {
            return false;
        }
        let fin_waiting = self.seen_open
            && matches!(
                socket.state(),
                State::CloseWait
                    | State::LastAck
                    | State::Closing
                    | State::TimeWait
                    | State::Closed
            );
        let rx = !self.eof && ep.wants_input() && (socket.recv_queue() > 0 || fin_waiting);
        let tx = ep.pending().is_some() && socket.can_send();
        let fin = !self.fin_sent && ep.send_finished() && socket.may_send();
        let gone = self.seen_open
            && !socket.is_open()
            && (!(self.eof || fin_received(socket)) || ep.queued() + socket.send_queue() > 0);
        rx || tx || fin || gone
    }
}

/// TIME-WAIT is only reached after the peer's FIN, and the bytes before it
/// may still wait in the socket (the core's buffer was full when the FIN
/// came): not a loss, the pump reads them and the FIN on later polls.
fn fin_received(socket: &tcp::Socket<'_>) -> bool {
    socket.state() == tcp::State::TimeWait
}
