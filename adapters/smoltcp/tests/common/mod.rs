//! Shared test harness: smoltcp interfaces on an in-process loopback device
//! with a simulated clock, and deterministic frame contents.

#![allow(dead_code, unreachable_pub, missing_docs)]

use framewire::framing::LengthPrefixed;
use framewire::framing::OversizePolicy;
use framewire::stream::{Event, SendError};
use framewire_smoltcp::time::earliest;
use framewire_smoltcp::{FramedSocket, LinkStats};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{ChecksumCapabilities, Device, DeviceCapabilities, Loopback, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

/// smoltcp's `Loopback`, but with every checksum computed and verified (the
/// plain `Loopback` ignores checksums, so a corrupted packet would be
/// accepted) and a configurable MTU.
pub struct CheckedLoopback {
    inner: Loopback,
    mtu: usize,
}

impl CheckedLoopback {
    pub fn new(mtu: usize) -> Self {
        CheckedLoopback {
            inner: Loopback::new(Medium::Ethernet),
            mtu,
        }
    }
}

impl Device for CheckedLoopback {
    type RxToken<'a>
        = <Loopback as Device>::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = <Loopback as Device>::TxToken<'a>
    where
        Self: 'a;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = self.inner.capabilities();
        caps.checksum = ChecksumCapabilities::default();
        caps.max_transmission_unit = self.mtu;
        caps
    }

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.inner.receive(timestamp)
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(timestamp)
    }
}

pub const SERVER_PORT: u16 = 1234;
pub const CLIENT_PORT: u16 = 65000;

/// One interface at 127.0.0.1 on `device`, a simulated clock, and two TCP
/// sockets: a server listening on [`SERVER_PORT`] and a client connecting
/// to it.
pub struct Sim<D: Device> {
    pub device: D,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub now: Instant,
    pub server: SocketHandle,
    pub client: SocketHandle,
    /// Steps taken (each one `iface.poll` plus whatever the test does).
    pub steps: u64,
}

impl<D: Device> Sim<D> {
    /// Socket buffers of `socket_buf` bytes each way on both sockets.
    pub fn new(mut device: D, socket_buf: usize) -> Self {
        let now = Instant::from_millis(0);
        let mut config = Config::new(EthernetAddress([0x02, 0, 0, 0, 0, 1]).into());
        config.random_seed = 0x5eed_f00d;
        let mut iface = Interface::new(config, &mut device, now);
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8))
                .unwrap();
        });
        let mut sockets = SocketSet::new(Vec::new());
        let new_socket = || {
            tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; socket_buf]),
                tcp::SocketBuffer::new(vec![0; socket_buf]),
            )
        };
        let mut server = new_socket();
        server.listen(SERVER_PORT).unwrap();
        let server = sockets.add(server);
        let mut client = new_socket();
        client
            .connect(
                iface.context(),
                (IpAddress::v4(127, 0, 0, 1), SERVER_PORT),
                CLIENT_PORT,
            )
            .unwrap();
        let client = sockets.add(client);
        Sim {
            device,
            iface,
            sockets,
            now,
            server,
            client,
            steps: 0,
        }
    }

    /// Enables TCP keep-alive on both sockets. smoltcp 0.12 sends no
    /// zero-window probes: when the window update that reopens a zero window
    /// is lost, only a keep-alive (answered with an ACK carrying the current
    /// window) gets the sender going again.
    pub fn keep_alive(&mut self, interval: Duration) {
        for handle in [self.server, self.client] {
            self.socket(handle).set_keep_alive(Some(interval));
        }
    }

    /// Runs the interface at the current simulated time until it has nothing
    /// more to do. A loopback device delivers what was sent on the next
    /// poll, and `Interface::poll_delay` does not know about packets waiting
    /// in the device, so one poll is not enough before the clock may move.
    pub fn poll_iface(&mut self) {
        for _ in 0..64 {
            let result = self
                .iface
                .poll(self.now, &mut self.device, &mut self.sockets);
            if result == PollResult::None {
                break;
            }
        }
        self.steps += 1;
    }

    /// Advances the simulated clock to the earliest of the interface's next
    /// deadline and `extra` (the drivers' deadlines); by 1 ms if nobody has
    /// one.
    pub fn advance(&mut self, extra: Option<Duration>) {
        let delay = framewire_smoltcp::time::earliest(
            self.iface.poll_delay(self.now, &self.sockets),
            extra,
        );
        match delay {
            Some(Duration::ZERO) => {}
            Some(d) => self.now += d,
            None => self.now += Duration::from_millis(1),
        }
    }

    pub fn socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }
}

/// The payload of frame number `index`, `len` bytes: a pattern that differs
/// between frames and positions, so a lost, repeated, reordered or shifted
/// byte shows.
pub fn payload(index: u64, len: usize) -> Vec<u8> {
    let mut state = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (len as u64);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A small deterministic generator for sizes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

pub const HEADER: usize = 4;
pub const MAX_PAYLOAD: usize = 64 * 1024;
pub const MAX_FRAME: usize = MAX_PAYLOAD + HEADER;

/// What an echo run observed.
#[derive(Debug)]
pub struct EchoOutcome {
    pub server: LinkStats,
    pub client: LinkStats,
    pub steps: u64,
    pub skipped: u64,
}

/// The bookkeeping of an echo run (see [`echo_run`]).
struct Echo<'s> {
    sizes: &'s [usize],
    server_max: usize,
    max_in_flight: usize,
    /// Frames the server should deliver, in order (the others are skipped).
    expected: Vec<u64>,
    next_send: usize,
    server_seen: usize,
    client_seen: usize,
    skipped: u64,
}

type Framed<'b> = FramedSocket<'b, LengthPrefixed>;

impl Echo<'_> {
    /// Checks that `frame` is the next expected one (number `seen`).
    fn check(&self, what: &str, seen: usize, frame: &[u8]) {
        let index = self.expected[seen];
        assert_eq!(
            frame.len(),
            self.sizes[index as usize],
            "{what} {index} length"
        );
        assert!(
            frame == payload(index, frame.len()).as_slice(),
            "{what} {index} bytes"
        );
    }

    /// Server: take frames while the echo queue has room for one more.
    fn server_step(&mut self, server: &mut Framed<'_>, socket: &mut tcp::Socket<'_>) {
        server.poll_socket(socket).expect("server socket");
        while server.stream().max_queued() - server.stream().queued_len() >= MAX_FRAME {
            match server.poll_event().expect("server stream") {
                Some(Event::Frame(frame)) => {
                    self.check("frame", self.server_seen, frame);
                    self.server_seen += 1;
                    let echo = frame.to_vec();
                    server.send(&echo).expect("echo fits");
                }
                Some(Event::Skipped(over)) => {
                    let max = self.server_max as u64;
                    assert!(over.len.is_some_and(|l| l > max), "skipped {over:?}");
                    self.skipped += 1;
                }
                Some(other) => panic!("server: unexpected {other:?}"),
                None => break,
            }
        }
        server.poll_socket(socket).expect("server socket");
    }

    /// Client: queue frames while they fit and the in-flight limit allows,
    /// then read echoes.
    fn client_step(&mut self, client: &mut Framed<'_>, socket: &mut tcp::Socket<'_>) {
        // Frames before the next one awaiting its echo are settled (echoed,
        // or skipped by the server).
        let settled = |e: &Self| {
            e.expected
                .get(e.client_seen)
                .map_or(e.next_send, |&i| (i as usize).min(e.next_send))
        };
        while self.next_send < self.sizes.len()
            && self.next_send - settled(self) < self.max_in_flight
        {
            let data = payload(self.next_send as u64, self.sizes[self.next_send]);
            match client.send(&data) {
                Ok(()) => self.next_send += 1,
                Err(SendError::QueueFull { .. }) => break,
                Err(e) => panic!("client send: {e}"),
            }
        }
        client.poll_socket(socket).expect("client socket");
        while let Some(event) = client.poll_event().expect("client stream") {
            let Event::Frame(frame) = event else {
                panic!("client: unexpected {event:?}")
            };
            self.check("echo", self.client_seen, frame);
            self.client_seen += 1;
        }
        client.poll_socket(socket).expect("client socket");
    }

    fn stalled<D: Device>(&self, sim: &Sim<D>, server: &Framed<'_>, client: &Framed<'_>) -> ! {
        let sd = sim.sockets.get::<tcp::Socket>(sim.server);
        let cd = sim.sockets.get::<tcp::Socket>(sim.client);
        panic!(
            "no progress by {}: sent {}, server got {}, client got {} of {}; \
             server {} rq {} sq {} {server:?} {:?}; client {} rq {} sq {} {client:?} {:?}",
            sim.now,
            self.next_send,
            self.server_seen,
            self.client_seen,
            self.expected.len(),
            sd.state(),
            sd.recv_queue(),
            sd.send_queue(),
            server.poll_at(sd),
            cd.state(),
            cd.recv_queue(),
            cd.send_queue(),
            client.poll_at(cd),
        );
    }
}

/// The client sends a frame of each size in `sizes` (frame `i` carries
/// `payload(i, sizes[i])`); the server checks each one arrives once, in
/// order, with the right bytes, and echoes it; the client checks the echoes
/// the same way. Frames larger than `server_max` are expected to be skipped
/// by the server (its framing skips them) and are not echoed. At most
/// `max_in_flight` frames are sent and not yet echoed (or skipped), so the
/// client's queue runs dry now and then and segments do not always fill the
/// receive window: the rings' read and write positions wander.
pub fn echo_run<D: Device>(
    sim: &mut Sim<D>,
    sizes: &[usize],
    server_max: usize,
    max_in_flight: usize,
    step_limit: u64,
) -> EchoOutcome {
    let mut server_rx = vec![0u8; MAX_FRAME];
    let mut server_tx = vec![0u8; 2 * MAX_FRAME];
    let mut client_rx = vec![0u8; MAX_FRAME];
    let mut client_tx = vec![0u8; 2 * MAX_FRAME];
    let server_framing = LengthPrefixed::new()
        .with_max_frame_len(server_max)
        .with_oversize(OversizePolicy::Skip);
    let mut server = FramedSocket::new(server_framing, &mut server_rx, &mut server_tx);
    let client_framing = LengthPrefixed::new().with_max_frame_len(MAX_FRAME + 1024);
    let mut client = FramedSocket::new(client_framing, &mut client_rx, &mut client_tx);
    let mut echo = Echo {
        sizes,
        server_max,
        max_in_flight,
        expected: (0..sizes.len() as u64)
            .filter(|&i| sizes[i as usize] + HEADER <= server_max)
            .collect(),
        next_send: 0,
        server_seen: 0,
        client_seen: 0,
        skipped: 0,
    };

    while echo.client_seen < echo.expected.len() {
        if sim.steps >= step_limit {
            echo.stalled(sim, &server, &client);
        }
        sim.poll_iface();
        echo.server_step(&mut server, sim.sockets.get_mut::<tcp::Socket>(sim.server));
        echo.client_step(&mut client, sim.sockets.get_mut::<tcp::Socket>(sim.client));
        let now = sim.now;
        let server_delay = server.poll_delay(now, sim.sockets.get::<tcp::Socket>(sim.server));
        let client_delay = client.poll_delay(now, sim.sockets.get::<tcp::Socket>(sim.client));
        sim.advance(earliest(server_delay, client_delay));
    }
    assert_eq!(echo.server_seen, echo.expected.len());
    assert_eq!(echo.next_send, sizes.len());
    let delivered = echo.expected.len() as u64;
    assert_eq!(server.stream().stats().frames_received, delivered);
    assert_eq!(client.stream().stats().frames_received, delivered);
    assert_eq!(server.stream().stats().frames_skipped, echo.skipped);
    EchoOutcome {
        server: server.link_stats(),
        client: client.link_stats(),
        steps: sim.steps,
        skipped: echo.skipped,
    }
}

/// Every size from 1 to 1100 bytes, the powers of two from 1 KiB to 64 KiB
/// and their neighbours, and random sizes up to 64 KiB, interleaved.
pub fn frame_sizes() -> Vec<usize> {
    let mut sizes: Vec<usize> = (1..=1100).collect();
    for k in 10..=16 {
        let p = 1usize << k;
        for s in [p - 1, p, p + 1] {
            if s <= MAX_PAYLOAD {
                sizes.push(s);
            }
        }
    }
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..40 {
        sizes.push(rng.range(1, MAX_PAYLOAD));
    }
    sizes.push(MAX_PAYLOAD);
    // Interleave small and large so large frames start at many ring offsets.
    let mut mixed = Vec::with_capacity(sizes.len());
    let (small, large): (Vec<usize>, Vec<usize>) = sizes.iter().partition(|&&s| s <= 1100);
    let mut large = large.into_iter();
    for (i, s) in small.into_iter().enumerate() {
        mixed.push(s);
        if i % 16 == 7 {
            if let Some(l) = large.next() {
                mixed.push(l);
            }
        }
    }
    mixed.extend(large);
    mixed
}

/// Connects the sim's two sockets (a few polls).
pub fn establish<D: Device>(sim: &mut Sim<D>) {
    for _ in 0..100 {
        sim.poll_iface();
        if sim.socket(sim.client).may_send() && sim.socket(sim.server).may_recv() {
            return;
        }
        sim.advance(None);
    }
    panic!("sockets did not connect");
}

/// Polls the interface until `done` holds (bounded).
pub fn run_until<D: Device>(sim: &mut Sim<D>, mut done: impl FnMut(&mut Sim<D>) -> bool) {
    for _ in 0..10_000 {
        sim.poll_iface();
        if done(sim) {
            return;
        }
        sim.advance(None);
    }
    let (c, s) = (sim.client, sim.server);
    let cs = sim.socket(c);
    let (cst, csq) = (cs.state(), cs.send_queue());
    let ss = sim.socket(s);
    panic!(
        "condition not reached: client {cst} send_queue {csq}; server {} recv_queue {}",
        ss.state(),
        ss.recv_queue()
    );
}
