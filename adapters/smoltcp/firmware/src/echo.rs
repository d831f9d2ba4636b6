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
    /// A frame came back different from the one sent.
    Mismatch {
        /// Index of the frame.
        index: u32,
    },
    /// The socket refused an operation (it was not in a state to do it).
    Socket,
    /// The framed stream reported a protocol error.
    #[cfg(feature = "framewire")]
    Stream(framewire::stream::StreamError),
    /// The framed stream refused a frame.
    #[cfg(feature = "framewire")]
    Send(framewire::stream::SendError),
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
    use framewire::stream::{BorrowedFramedStream, Event};
    use smoltcp::socket::tcp;

    /// The framing of the echo: socktools' `u32` big-endian length, frames
    /// up to 4 + [`MAX_PAYLOAD`] bytes.
    pub const fn framing() -> LengthPrefixed {
        LengthPrefixed::new().with_max_frame_len(4 + MAX_PAYLOAD)
    }

    /// Writes what `stream` has queued, as far as the socket takes it.
    fn flush(
        socket: &mut tcp::Socket<'_>,
        stream: &mut BorrowedFramedStream<'_, LengthPrefixed>,
    ) -> Result<(), EchoError> {
        if !socket.may_send() {
            return Ok(());
        }
        if let Some(out) = stream.poll_transmit() {
            let n = socket.send_slice(out).map_err(|_| EchoError::Socket)?;
            stream.advance_transmit(n).map_err(EchoError::Send)?;
        }
        if stream.send_finished() {
            socket.close();
        }
        Ok(())
    }

    /// Moves bytes between `socket` and `stream`: queued output out, received
    /// bytes in, and the peer's close.
    fn pump(
        socket: &mut tcp::Socket<'_>,
        stream: &mut BorrowedFramedStream<'_, LengthPrefixed>,
    ) -> Result<(), EchoError> {
        flush(socket, stream)?;
        while socket.can_recv() {
            let taken = socket
                .recv(|bytes| match stream.handle_input(bytes) {
                    Ok(n) => (n, Ok(n)),
                    Err(e) => (0, Err(e)),
                })
                .map_err(|_| EchoError::Socket)?
                .map_err(EchoError::Stream)?;
            if taken == 0 {
                break;
            }
        }
        // The peer's FIN counts once every byte before it was taken.
        if !socket.can_recv()
            && matches!(
                socket.state(),
                tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait
            )
        {
            stream.handle_eof().map_err(EchoError::Stream)?;
        }
        Ok(())
    }

    /// The server side: echoes every frame back.
    pub struct Server<'a> {
        stream: BorrowedFramedStream<'a, LengthPrefixed>,
        held: [u8; MAX_PAYLOAD],
        held_len: Option<usize>,
        /// Frames echoed so far.
        pub echoed: u32,
    }

    impl<'a> Server<'a> {
        /// A server framing into `rx` and queueing into `tx`.
        pub fn new(rx: &'a mut [u8], tx: &'a mut [u8]) -> Self {
            Server {
                stream: BorrowedFramedStream::new(framing(), rx, tx),
                held: [0; MAX_PAYLOAD],
                held_len: None,
                echoed: 0,
            }
        }

        /// One round: take input, echo what fits, write output. Returns
        /// whether the peer closed and everything was echoed.
        pub fn poll(&mut self, socket: &mut tcp::Socket<'_>) -> Result<bool, EchoError> {
            pump(socket, &mut self.stream)?;
            loop {
                if let Some(n) = self.held_len {
                    match self.stream.send(&self.held[..n]) {
                        Ok(()) => {
                            self.held_len = None;
                            self.echoed += 1;
                        }
                        Err(framewire::stream::SendError::QueueFull { .. }) => break,
                        Err(e) => return Err(EchoError::Send(e)),
                    }
                }
                match self.stream.poll_event().map_err(EchoError::Stream)? {
                    Some(Event::Frame(frame)) => {
                        // A frame borrows the receive buffer: copy it out to
                        // queue it on the same stream.
                        let n = frame.len().min(MAX_PAYLOAD);
                        self.held[..n].copy_from_slice(&frame[..n]);
                        self.held_len = Some(n);
                    }
                    Some(Event::Closed) => {
                        self.stream.close();
                    }
                    // Over-long frames fail the stream (the default policy);
                    // nothing else is reported.
                    Some(_) | None => break,
                }
            }
            flush(socket, &mut self.stream)?;
            Ok(self.stream.send_finished())
        }
    }

    /// The client side: sends `total` numbered frames and checks the echoes.
    pub struct Client<'a> {
        stream: BorrowedFramedStream<'a, LengthPrefixed>,
        total: u32,
        sent: u32,
        /// Echoes received and checked.
        pub received: u32,
    }

    impl<'a> Client<'a> {
        /// A client that will send `total` frames.
        pub fn new(rx: &'a mut [u8], tx: &'a mut [u8], total: u32) -> Self {
            Client {
                stream: BorrowedFramedStream::new(framing(), rx, tx),
                total,
                sent: 0,
                received: 0,
            }
        }

        /// One round. Returns whether every echo came back.
        pub fn poll(&mut self, socket: &mut tcp::Socket<'_>) -> Result<bool, EchoError> {
            let mut buf = [0u8; MAX_PAYLOAD];
            while self.sent < self.total {
                let n = payload(self.sent, &mut buf);
                match self.stream.send(&buf[..n]) {
                    Ok(()) => self.sent += 1,
                    Err(framewire::stream::SendError::QueueFull { .. }) => break,
                    Err(e) => return Err(EchoError::Send(e)),
                }
            }
            if self.sent == self.total {
                self.stream.close();
            }
            pump(socket, &mut self.stream)?;
            while let Some(frame) = self.stream.poll_frame().map_err(EchoError::Stream)? {
                let n = payload(self.received, &mut buf);
                if frame != &buf[..n] {
                    return Err(EchoError::Mismatch {
                        index: self.received,
                    });
                }
                self.received += 1;
            }
            flush(socket, &mut self.stream)?;
            Ok(self.received == self.total)
        }
    }
}

#[cfg(feature = "framewire")]
pub use framed::{framing, Client, Server};

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
        pub fn poll(&mut self, socket: &mut tcp::Socket<'_>) -> Result<bool, EchoError> {
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
        pub fn poll(&mut self, socket: &mut tcp::Socket<'_>) -> Result<bool, EchoError> {
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

/// The buffers of one echo run (two connections: server and client), all
/// lent by the caller.
pub struct EchoBuffers<'a> {
    /// smoltcp's socket slots (two are used).
    pub sockets: &'a mut [smoltcp::iface::SocketStorage<'a>],
    /// smoltcp's receive and transmit buffers of the server socket.
    pub server_socket: [&'a mut [u8]; 2],
    /// smoltcp's receive and transmit buffers of the client socket.
    pub client_socket: [&'a mut [u8]; 2],
    /// The server's framed receive and transmit buffers.
    pub server_frames: [&'a mut [u8]; 2],
    /// The client's framed receive and transmit buffers.
    pub client_frames: [&'a mut [u8]; 2],
}

/// How an echo run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoOutcome {
    /// Frames sent, echoed and checked.
    pub frames: u32,
    /// Simulated milliseconds the run took (one per round).
    pub millis: u64,
}

/// Why an echo run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError {
    /// A side of the echo failed.
    Echo(EchoError),
    /// The run did not finish within the simulated time limit.
    Timeout {
        /// Frames checked when time ran out.
        frames: u32,
    },
}

/// Runs an echo of `frames` frames over TCP on 127.0.0.1 through `device`
/// (which must loop packets back), with a simulated clock advancing a
/// millisecond per round, for at most `max_millis`.
pub fn run<D: smoltcp::phy::Device>(
    device: &mut D,
    bufs: EchoBuffers<'_>,
    frames: u32,
    max_millis: u64,
) -> Result<EchoOutcome, RunError> {
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::socket::tcp;
    use smoltcp::time::{Duration, Instant};
    use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

    const PORT: u16 = 7000;
    let localhost = IpAddress::v4(127, 0, 0, 1);

    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), device, Instant::ZERO);
    iface.update_ip_addrs(|addrs| {
        // A fresh interface has room for an address.
        let _ = addrs.push(IpCidr::new(localhost, 8));
    });
    let mut sockets = SocketSet::new(bufs.sockets);
    let [srx, stx] = bufs.server_socket;
    let [crx, ctx] = bufs.client_socket;
    let server_handle = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(srx),
        tcp::SocketBuffer::new(stx),
    ));
    let client_handle = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(crx),
        tcp::SocketBuffer::new(ctx),
    ));
    let [frx, ftx] = bufs.server_frames;
    let mut server = Server::new(frx, ftx);
    let [frx, ftx] = bufs.client_frames;
    let mut client = Client::new(frx, ftx, frames);

    let socket_error = RunError::Echo(EchoError::Socket);
    sockets
        .get_mut::<tcp::Socket>(server_handle)
        .listen(PORT)
        .map_err(|_| socket_error)?;
    sockets
        .get_mut::<tcp::Socket>(client_handle)
        .connect(iface.context(), (localhost, PORT), 49152)
        .map_err(|_| socket_error)?;

    let mut now = Instant::ZERO;
    let (mut served, mut checked) = (false, false);
    while now.total_millis() < max_millis as i64 {
        iface.poll(now, device, &mut sockets);
        served = server
            .poll(sockets.get_mut::<tcp::Socket>(server_handle))
            .map_err(RunError::Echo)?;
        checked = client
            .poll(sockets.get_mut::<tcp::Socket>(client_handle))
            .map_err(RunError::Echo)?;
        if served && checked {
            return Ok(EchoOutcome {
                frames: client.received,
                millis: now.total_millis() as u64,
            });
        }
        now += Duration::from_millis(1);
    }
    let _ = (served, checked);
    Err(RunError::Timeout {
        frames: client.received,
    })
}
