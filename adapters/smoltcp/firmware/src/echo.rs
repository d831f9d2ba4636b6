//! A length-prefixed echo over two smoltcp TCP sockets on one interface: the
//! server echoes every frame, the client sends numbered frames and checks
//! that each comes back unchanged. With the `framewire` feature the frames go
//! through the core's `BorrowedFramedStream<LengthPrefixed>`; without it the
//! same bytes are echoed raw (the baseline image for measuring framewire's
//! share of the code).

#[cfg(not(feature = "framewire"))]
use smoltcp::socket::tcp;

/// The largest payload the echo sends.
pub const MAX_PAYLOAD: usize = 64;

/// What went wrong in an echo run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoError {
    /// A frame or response came back different from the one sent.
    Mismatch {
        /// Index of the frame or request.
        index: u32,
    },
    /// The socket refused an operation (it was not in a state to do it).
    Socket,
    /// The framed driver failed (core error or connection lost).
    #[cfg(feature = "framewire")]
    Framed(framewire_smoltcp::Error<framewire::stream::StreamError>),
    /// The framed stream reported a protocol error.
    #[cfg(feature = "framewire")]
    Stream(framewire::stream::StreamError),
    /// The framed stream refused a frame.
    #[cfg(feature = "framewire")]
    Send(framewire::stream::SendError),
    /// The packet connection's buffers or capacities are unusable.
    #[cfg(feature = "framewire")]
    Config(framewire::packet::ConfigError),
    /// The packet driver failed (core error or connection lost).
    #[cfg(feature = "framewire")]
    Packet(framewire_smoltcp::Error<framewire::packet::InputError>),
    /// The packet connection refused a request.
    #[cfg(feature = "framewire")]
    Submit(framewire::packet::SubmitError),
    /// The packet connection refused a response.
    #[cfg(feature = "framewire")]
    Respond(framewire::packet::RespondError),
    /// The packet connection reported an event this exchange never causes
    /// (a cancellation, a timeout, an unknown response, a protocol error).
    #[cfg(feature = "framewire")]
    PacketEvent,
}

/// The payload of frame `index`: its number in ASCII decimal, then filler up
/// to a length that cycles through 0..=`MAX_PAYLOAD`.
pub fn payload(index: u32, out: &mut [u8; MAX_PAYLOAD]) -> usize {
    let len = (index as usize * 7) % (MAX_PAYLOAD + 1);
    let mut n = index;
    for (i, b) in out.iter_mut().enumerate().take(len) {
        *b = if n > 0 || i == 0 {
            let digit = b'0' + (n % 10) as u8;
            n /= 10;
            digit
        } else {
            b'a' + (i % 26) as u8
        };
    }
    len
}

#[cfg(feature = "framewire")]
mod framed {
    use super::{payload, EchoError, MAX_PAYLOAD};
    use framewire::framing::LengthPrefixed;
    use framewire::stream::{Event, SendError};
    use framewire_smoltcp::FramedSocket;
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant;

    /// The framing of the echo: socktools' `u32` big-endian length, frames
    /// up to 4 + [`MAX_PAYLOAD`] bytes.
    pub const fn framing() -> LengthPrefixed {
        LengthPrefixed::new().with_max_frame_len(4 + MAX_PAYLOAD)
    }

    /// The server side: echoes every frame back, then closes after the
    /// peer.
    pub struct Server<'a> {
        framed: FramedSocket<'a, LengthPrefixed>,
        held: [u8; MAX_PAYLOAD],
        held_len: Option<usize>,
        /// Frames echoed so far.
        pub echoed: u32,
    }

    impl<'a> Server<'a> {
        /// A server framing into `rx` and queueing into `tx`.
        pub fn new(rx: &'a mut [u8], tx: &'a mut [u8]) -> Self {
            Server {
                framed: FramedSocket::new(framing(), rx, tx),
                held: [0; MAX_PAYLOAD],
                held_len: None,
                echoed: 0,
            }
        }

        /// One round: take input, echo what fits, write output. Returns
        /// whether the peer closed, everything was echoed and our FIN went
        /// out.
        pub fn poll(
            &mut self,
            socket: &mut tcp::Socket<'_>,
            _now: Instant,
        ) -> Result<bool, EchoError> {
            self.framed.poll_socket(socket).map_err(EchoError::Framed)?;
            loop {
                if let Some(n) = self.held_len {
                    match self.framed.send(&self.held[..n]) {
                        Ok(()) => {
                            self.held_len = None;
                            self.echoed += 1;
                        }
                        Err(SendError::QueueFull { .. }) => break,
                        Err(e) => return Err(EchoError::Send(e)),
                    }
                }
                match self.framed.poll_event().map_err(EchoError::Stream)? {
                    Some(Event::Frame(frame)) => {
                        // A frame borrows the receive buffer: copy it out to
                        // queue it on the same stream.
                        let n = frame.len().min(MAX_PAYLOAD);
                        self.held[..n].copy_from_slice(&frame[..n]);
                        self.held_len = Some(n);
                    }
                    Some(Event::Closed) => self.framed.close(),
                    // Over-long frames fail the stream (the default policy);
                    // nothing else is reported.
                    Some(_) | None => break,
                }
            }
            self.framed.poll_socket(socket).map_err(EchoError::Framed)?;
            Ok(self.framed.send_finished())
        }
    }

    /// The client side: sends `total` numbered frames and checks the echoes.
    pub struct Client<'a> {
        framed: FramedSocket<'a, LengthPrefixed>,
        total: u32,
        sent: u32,
        /// Echoes received and checked.
        pub received: u32,
    }

    impl<'a> Client<'a> {
        /// A client that will send `total` frames.
        pub fn new(rx: &'a mut [u8], tx: &'a mut [u8], total: u32) -> Self {
            Client {
                framed: FramedSocket::new(framing(), rx, tx),
                total,
                sent: 0,
                received: 0,
            }
        }

        /// One round. Returns whether every echo came back and both sides
        /// closed.
        pub fn poll(
            &mut self,
            socket: &mut tcp::Socket<'_>,
            _now: Instant,
        ) -> Result<bool, EchoError> {
            let mut buf = [0u8; MAX_PAYLOAD];
            while self.sent < self.total {
                let n = payload(self.sent, &mut buf);
                match self.framed.send(&buf[..n]) {
                    Ok(()) => self.sent += 1,
                    Err(SendError::QueueFull { .. }) => break,
                    Err(e) => return Err(EchoError::Send(e)),
                }
            }
            if self.sent == self.total {
                self.framed.close();
            }
            self.framed.poll_socket(socket).map_err(EchoError::Framed)?;
            while let Some(frame) = self.framed.poll_frame().map_err(EchoError::Stream)? {
                let n = payload(self.received, &mut buf);
                if frame != &buf[..n] {
                    return Err(EchoError::Mismatch {
                        index: self.received,
                    });
                }
                self.received += 1;
            }
            self.framed.poll_socket(socket).map_err(EchoError::Framed)?;
            Ok(self.received == self.total
                && self.framed.peer_closed()
                && self.framed.send_finished())
        }
    }
}

#[cfg(feature = "framewire")]
mod packet {
    use super::{payload, EchoError, MAX_PAYLOAD};
    use framewire::packet::{BorrowedConfig, BorrowedEvent, RespondError, SubmitError};
    use framewire_smoltcp::PacketSocket;
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant;

    /// Our requests waiting for responses, per connection.
    pub const MAX_PENDING: usize = 4;
    /// The peer's requests in flight, per connection.
    pub const MAX_INFLIGHT: usize = 4;

    /// The packet connection of the firmware (default 4 extra channels, 16
    /// remembered tags).
    pub type Conn<'a> = PacketSocket<'a, MAX_PENDING, MAX_INFLIGHT>;

    /// The server side of the cs.packetstream exchange: answers every
    /// request with its payload and flags, ok; closes in order after the
    /// client.
    pub struct PacketServer<'a> {
        conn: Conn<'a>,
        held: [u8; MAX_PAYLOAD],
        held_reply: Option<(u64, u64, usize)>,
        closed: bool,
        /// Requests answered so far.
        pub answered: u32,
    }

    impl<'a> PacketServer<'a> {
        /// A server receiving into `rx` and queueing into `tx`.
        pub fn new(rx: &'a mut [u8], tx: &'a mut [u8]) -> Result<Self, EchoError> {
            Ok(PacketServer {
                conn: Conn::new(BorrowedConfig::default(), rx, tx).map_err(EchoError::Config)?,
                held: [0; MAX_PAYLOAD],
                held_reply: None,
                closed: false,
                answered: 0,
            })
        }

        /// One round. Returns whether the connection closed in order.
        pub fn poll(
            &mut self,
            socket: &mut tcp::Socket<'_>,
            now: Instant,
        ) -> Result<bool, EchoError> {
            self.conn
                .poll_socket(socket, now)
                .map_err(EchoError::Packet)?;
            loop {
                if let Some((tag, flags, n)) = self.held_reply {
                    match self.conn.respond(0, tag, flags, &self.held[..n]) {
                        Ok(()) => {
                            self.held_reply = None;
                            self.answered += 1;
                        }
                        Err(RespondError::NoRoom { .. }) => break,
                        Err(e) => return Err(EchoError::Respond(e)),
                    }
                }
                match self.conn.poll_event() {
                    Some(BorrowedEvent::RequestReceived {
                        tag,
                        flags,
                        payload,
                        ..
                    }) => {
                        // The payload borrows the receive buffer: copy it
                        // before answering.
                        let n = payload.len().min(MAX_PAYLOAD);
                        self.held[..n].copy_from_slice(&payload[..n]);
                        self.held_reply = Some((tag, flags, n));
                    }
                    Some(BorrowedEvent::PeerEndedRequests | BorrowedEvent::PeerClosed { .. }) => {
                        self.conn.close();
                    }
                    Some(BorrowedEvent::Closed) => self.closed = true,
                    Some(_) => return Err(EchoError::PacketEvent),
                    None => break,
                }
            }
            self.conn
                .poll_socket(socket, now)
                .map_err(EchoError::Packet)?;
            Ok(self.closed)
        }
    }

    /// The client side: submits `total` requests, at most
    /// [`MAX_PENDING`] at a time, and checks every response.
    pub struct PacketClient<'a> {
        conn: Conn<'a>,
        total: u32,
        sent: u32,
        closed: bool,
        /// Responses received and checked.
        pub received: u32,
    }

    impl<'a> PacketClient<'a> {
        /// A client that will submit `total` requests.
        pub fn new(rx: &'a mut [u8], tx: &'a mut [u8], total: u32) -> Result<Self, EchoError> {
            Ok(PacketClient {
                conn: Conn::new(BorrowedConfig::default(), rx, tx).map_err(EchoError::Config)?,
                total,
                sent: 0,
                closed: false,
                received: 0,
            })
        }

        /// One round. Returns whether every response came back and the
        /// connection closed in order.
        pub fn poll(
            &mut self,
            socket: &mut tcp::Socket<'_>,
            now: Instant,
        ) -> Result<bool, EchoError> {
            let mut buf = [0u8; MAX_PAYLOAD];
            while self.sent < self.total && socket.may_send() {
                let n = payload(self.sent, &mut buf);
                let index = u64::from(self.sent);
                match self
                    .conn
                    .submit(0, index % 4, index % 8, &buf[..n], now, None)
                {
                    // Channel 0 tags count up from 2.
                    Ok(tag) if tag == index + 2 => self.sent += 1,
                    Ok(_) => return Err(EchoError::Mismatch { index: self.sent }),
                    Err(
                        SubmitError::NoRoom { .. }
                        | SubmitError::TooManyPending { .. }
                        | SubmitError::TransmitFull { .. },
                    ) => break,
                    Err(e) => return Err(EchoError::Submit(e)),
                }
            }
            self.conn
                .poll_socket(socket, now)
                .map_err(EchoError::Packet)?;
            while let Some(event) = self.conn.poll_event() {
                match event {
                    BorrowedEvent::ResponseReceived {
                        tag,
                        ok,
                        flags,
                        payload: got,
                        ..
                    } => {
                        let index = tag.wrapping_sub(2);
                        let n = payload(index as u32, &mut buf);
                        if index >= u64::from(self.sent)
                            || !ok
                            || flags != index % 8
                            || got != &buf[..n]
                        {
                            return Err(EchoError::Mismatch {
                                index: index as u32,
                            });
                        }
                        self.received += 1;
                    }
                    BorrowedEvent::PeerEndedRequests | BorrowedEvent::PeerClosed { .. } => {}
                    BorrowedEvent::Closed => self.closed = true,
                    _ => return Err(EchoError::PacketEvent),
                }
            }
            if self.received == self.total {
                self.conn.close();
            }
            self.conn
                .poll_socket(socket, now)
                .map_err(EchoError::Packet)?;
            Ok(self.closed)
        }
    }
}

#[cfg(feature = "framewire")]
pub use framed::{framing, Client, Server};
#[cfg(feature = "framewire")]
pub use packet::{Conn, PacketClient, PacketServer, MAX_INFLIGHT, MAX_PENDING};

/// Writes as much of `bytes[*pos..]` as the socket takes.
#[cfg(not(feature = "framewire"))]
fn write_some(
    socket: &mut tcp::Socket<'_>,
    bytes: &[u8],
    pos: &mut usize,
) -> Result<(), EchoError> {
    if socket.may_send() {
        *pos += socket
            .send_slice(&bytes[*pos..])
            .map_err(|_| EchoError::Socket)?;
    }
    Ok(())
}

#[cfg(not(feature = "framewire"))]
mod raw {
    use super::{payload, write_some, EchoError, MAX_PAYLOAD};
    use smoltcp::socket::tcp;

    /// The server side: echoes raw bytes.
    pub struct Server<'a> {
        buf: &'a mut [u8],
        len: usize,
        pos: usize,
        /// Bytes echoed so far.
        pub echoed: u32,
    }

    impl<'a> Server<'a> {
        /// A server staging bytes in `rx` (`tx` is unused).
        pub fn new(rx: &'a mut [u8], _tx: &'a mut [u8]) -> Self {
            Server {
                buf: rx,
                len: 0,
                pos: 0,
                echoed: 0,
            }
        }

        /// One round. Returns whether the peer closed and everything was
        /// echoed.
        pub fn poll(
            &mut self,
            socket: &mut tcp::Socket<'_>,
            _now: smoltcp::time::Instant,
        ) -> Result<bool, EchoError> {
            if self.pos == self.len && socket.can_recv() {
                self.len = socket.recv_slice(self.buf).map_err(|_| EchoError::Socket)?;
                self.pos = 0;
                self.echoed += self.len as u32;
            }
            write_some(socket, &self.buf[..self.len], &mut self.pos)?;
            let done = self.pos == self.len && !socket.may_recv();
            if done && socket.may_send() {
                socket.close();
            }
            Ok(done)
        }
    }

    /// The client side: sends the same bytes as the framed client, raw, and
    /// checks what comes back.
    pub struct Client<'a> {
        frame: [u8; 4 + MAX_PAYLOAD],
        frame_len: usize,
        pos: usize,
        check: &'a mut [u8],
        total: u32,
        sent: u32,
        /// Frames received and checked.
        pub received: u32,
        expect: [u8; 4 + MAX_PAYLOAD],
        expect_len: usize,
        expect_pos: usize,
    }

    fn frame(index: u32, out: &mut [u8; 4 + MAX_PAYLOAD]) -> usize {
        let mut p = [0u8; MAX_PAYLOAD];
        let n = payload(index, &mut p);
        out[..4].copy_from_slice(&(n as u32).to_be_bytes());
        out[4..4 + n].copy_from_slice(&p[..n]);
        4 + n
    }

    impl<'a> Client<'a> {
        /// A client that will send `total` frames.
        pub fn new(rx: &'a mut [u8], _tx: &'a mut [u8], total: u32) -> Self {
            let mut c = Client {
                frame: [0; 4 + MAX_PAYLOAD],
                frame_len: 0,
                pos: 0,
                check: rx,
                total,
                sent: 0,
                received: 0,
                expect: [0; 4 + MAX_PAYLOAD],
                expect_len: 0,
                expect_pos: 0,
            };
            c.frame_len = frame(0, &mut c.frame);
            c.expect_len = frame(0, &mut c.expect);
            c
        }

        /// One round. Returns whether every echo came back.
        pub fn poll(
            &mut self,
            socket: &mut tcp::Socket<'_>,
            _now: smoltcp::time::Instant,
        ) -> Result<bool, EchoError> {
            while self.sent < self.total {
                write_some(socket, &self.frame[..self.frame_len], &mut self.pos)?;
                if self.pos < self.frame_len {
                    break;
                }
                self.sent += 1;
                self.pos = 0;
                self.frame_len = frame(self.sent, &mut self.frame);
            }
            if self.sent == self.total && socket.may_send() {
                socket.close();
            }
            while socket.can_recv() {
                let n = socket
                    .recv_slice(self.check)
                    .map_err(|_| EchoError::Socket)?;
                for &b in &self.check[..n] {
                    if self.received == self.total || b != self.expect[self.expect_pos] {
                        return Err(EchoError::Mismatch {
                            index: self.received,
                        });
                    }
                    self.expect_pos += 1;
                    if self.expect_pos == self.expect_len {
                        self.received += 1;
                        self.expect_pos = 0;
                        self.expect_len = frame(self.received, &mut self.expect);
                    }
                }
            }
            Ok(self.received == self.total)
        }
    }
}

#[cfg(not(feature = "framewire"))]
pub use raw::{Client, Server};

/// The request/response pair of the baseline image: the same raw echo.
#[cfg(not(feature = "framewire"))]
pub use raw::{Client as PacketClient, Server as PacketServer};

/// The buffers of one run: four TCP connections (a framed server and
/// client, a packet-stream server and client), all lent by the caller.
pub struct EchoBuffers<'a> {
    /// smoltcp's socket slots (four are used).
    pub sockets: &'a mut [smoltcp::iface::SocketStorage<'a>],
    /// smoltcp's receive and transmit buffers, one pair per socket: framed
    /// server, framed client, packet server, packet client.
    pub socket_buffers: [[&'a mut [u8]; 2]; 4],
    /// framewire's receive and transmit buffers, one pair per connection, in
    /// the same order.
    pub frame_buffers: [[&'a mut [u8]; 2]; 4],
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoOutcome {
    /// Frames sent, echoed and checked.
    pub frames: u32,
    /// Requests submitted, answered and checked.
    pub requests: u32,
    /// Simulated milliseconds the run took (one per round).
    pub millis: u64,
}

/// Why a run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError {
    /// A side of the exchange failed.
    Echo(EchoError),
    /// The run did not finish within the simulated time limit.
    Timeout {
        /// Frames checked when time ran out.
        frames: u32,
        /// Responses checked when time ran out.
        requests: u32,
    },
}

/// Runs, over TCP on 127.0.0.1 through `device` (which must loop packets
/// back), an echo of `frames` length-prefixed frames and `requests`
/// cs.packetstream requests, each on its own connection, closing both in
/// order; a simulated clock advances a millisecond per round, for at most
/// `max_millis`.
pub fn run<D: smoltcp::phy::Device>(
    device: &mut D,
    bufs: EchoBuffers<'_>,
    frames: u32,
    requests: u32,
    max_millis: u64,
) -> Result<EchoOutcome, RunError> {
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::socket::tcp;
    use smoltcp::time::{Duration, Instant};
    use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

    const FRAMED_PORT: u16 = 7000;
    const PACKET_PORT: u16 = 7001;
    let localhost = IpAddress::v4(127, 0, 0, 1);
    let socket_error = RunError::Echo(EchoError::Socket);

    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), device, Instant::ZERO);
    iface.update_ip_addrs(|addrs| {
        // A fresh interface has room for an address.
        let _ = addrs.push(IpCidr::new(localhost, 8));
    });
    let mut sockets = SocketSet::new(bufs.sockets);
    let mut handles = [None; 4];
    for (handle, [rx, tx]) in handles.iter_mut().zip(bufs.socket_buffers) {
        *handle = Some(sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(rx),
            tcp::SocketBuffer::new(tx),
        )));
    }
    let [Some(fs), Some(fc), Some(ps), Some(pc)] = handles else {
        return Err(socket_error);
    };
    let [[fsrx, fstx], [fcrx, fctx], [psrx, pstx], [pcrx, pctx]] = bufs.frame_buffers;
    let mut server = Server::new(fsrx, fstx);
    let mut client = Client::new(fcrx, fctx, frames);
    #[cfg(feature = "framewire")]
    let (mut packet_server, mut packet_client) = (
        PacketServer::new(psrx, pstx).map_err(RunError::Echo)?,
        PacketClient::new(pcrx, pctx, requests).map_err(RunError::Echo)?,
    );
    #[cfg(not(feature = "framewire"))]
    let (mut packet_server, mut packet_client) = (
        PacketServer::new(psrx, pstx),
        PacketClient::new(pcrx, pctx, requests),
    );

    for (listener, connector, port, local_port) in
        [(fs, fc, FRAMED_PORT, 49152), (ps, pc, PACKET_PORT, 49153)]
    {
        sockets
            .get_mut::<tcp::Socket>(listener)
            .listen(port)
            .map_err(|_| socket_error)?;
        sockets
            .get_mut::<tcp::Socket>(connector)
            .connect(iface.context(), (localhost, port), local_port)
            .map_err(|_| socket_error)?;
    }

    let mut now = Instant::ZERO;
    let mut done = [false; 4];
    while now.total_millis() < max_millis as i64 {
        iface.poll(now, device, &mut sockets);
        let echo = RunError::Echo;
        done[0] = server.poll(sockets.get_mut(fs), now).map_err(echo)?;
        done[1] = client.poll(sockets.get_mut(fc), now).map_err(echo)?;
        done[2] = packet_server.poll(sockets.get_mut(ps), now).map_err(echo)?;
        done[3] = packet_client.poll(sockets.get_mut(pc), now).map_err(echo)?;
        if done == [true; 4] {
            return Ok(EchoOutcome {
                frames: client.received,
                requests: packet_client.received,
                millis: now.total_millis() as u64,
            });
        }
        now += Duration::from_millis(1);
    }
    Err(RunError::Timeout {
        frames: client.received,
        requests: packet_client.received,
    })
}
