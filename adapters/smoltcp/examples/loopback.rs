//! framewire over smoltcp in one process, with no OS networking: smoltcp's
//! `Loopback` device, a simulated clock, and two connections between a
//! client and a server on 127.0.0.1 (after smoltcp's own
//! `examples/loopback.rs`):
//!
//! * port 1234, length-prefixed frames: the client sends a few frames (one
//!   larger than both socket buffers), the server answers each with a frame
//!   describing it; then both close.
//! * port 1235, cs.packetstream: the client submits requests (one with a
//!   deadline the server lets pass, one of a type the server refuses), the
//!   server answers; then the orderly close (ERQ, EOF) from the client.
//!
//! The main loop is a firmware's: poll the interface, let each driver move
//! bytes and handle its events, then "sleep" (advance the simulated clock)
//! until the earliest of the interface's and the drivers' deadlines.
//!
//! ```sh
//! cargo run -p framewire-smoltcp --example loopback
//! ```

use framewire::framing::LengthPrefixed;
use framewire::packet::{BorrowedConfig, BorrowedEvent};
use framewire::stream::Event;
use framewire_smoltcp::time::earliest;
use framewire_smoltcp::{Buffers, FramedSocket, PacketSocket};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

const LOCALHOST: IpAddress = IpAddress::v4(127, 0, 0, 1);
const FRAMED_PORT: u16 = 1234;
const PACKET_PORT: u16 = 1235;
/// Socket ring buffers: small on purpose, so frames cross them in pieces.
const SOCKET_BUFFER: usize = 1024;

/// A simulated clock, as in smoltcp's example.
struct Clock(Instant);

impl Clock {
    fn elapsed(&self) -> Instant {
        self.0
    }

    fn advance(&mut self, d: Duration) {
        self.0 += d;
    }
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
        tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
    )
}

fn main() {
    let mut clock = Clock(Instant::from_millis(0));
    let mut device = Loopback::new(Medium::Ethernet);
    let config = Config::new(EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]).into());
    let mut iface = Interface::new(config, &mut device, clock.elapsed());
    iface.update_ip_addrs(|addrs| {
        addrs.push(IpCidr::new(LOCALHOST, 8)).unwrap();
    });

    let mut sockets = SocketSet::new(Vec::new());
    let handles = Handles {
        framed_server: sockets.add(tcp_socket()),
        framed_client: sockets.add(tcp_socket()),
        packet_server: sockets.add(tcp_socket()),
        packet_client: sockets.add(tcp_socket()),
    };
    sockets
        .get_mut::<tcp::Socket>(handles.framed_server)
        .listen(FRAMED_PORT)
        .unwrap();
    sockets
        .get_mut::<tcp::Socket>(handles.packet_server)
        .listen(PACKET_PORT)
        .unwrap();
    let cx = iface.context();
    sockets
        .get_mut::<tcp::Socket>(handles.framed_client)
        .connect(cx, (LOCALHOST, FRAMED_PORT), 65000)
        .unwrap();
    let cx = iface.context();
    sockets
        .get_mut::<tcp::Socket>(handles.packet_client)
        .connect(cx, (LOCALHOST, PACKET_PORT), 65001)
        .unwrap();

    // The framewire side: fixed buffers per connection (a firmware would put
    // them in statics), nothing allocated.
    let mut fs_buf = Buffers::<4096, 1024>::new();
    let mut fc_buf = Buffers::<1024, 4096>::new();
    let mut ps_buf = Buffers::<1024, 1024>::new();
    let mut pc_buf = Buffers::<1024, 1024>::new();
    let (rx, tx) = fs_buf.split();
    let mut framed_server = FramedSocket::new(LengthPrefixed::new(), rx, tx);
    let (rx, tx) = fc_buf.split();
    let mut framed_client = FramedSocket::new(LengthPrefixed::new(), rx, tx);
    let (rx, tx) = ps_buf.split();
    let mut packet_server = PacketSocket::<4, 4>::new(BorrowedConfig::default(), rx, tx).unwrap();
    let (rx, tx) = pc_buf.split();
    let mut packet_client = PacketSocket::<4, 4>::new(BorrowedConfig::default(), rx, tx).unwrap();

    let mut app = App::default();
    while !app.done() {
        assert!(
            clock.elapsed() < Instant::from_millis(60_000),
            "this is taking too long, bailing out"
        );
        let now = clock.elapsed();
        // A loopback device delivers what was sent on the next poll, and
        // `poll_delay` does not count packets waiting in the device: poll
        // until the interface has nothing left to do.
        while iface.poll(now, &mut device, &mut sockets) != PollResult::None {}

        app.framed_client(
            &mut framed_client,
            sockets.get_mut(handles.framed_client),
            now,
        );
        app.framed_server(
            &mut framed_server,
            sockets.get_mut(handles.framed_server),
            now,
        );
        app.packet_client(
            &mut packet_client,
            sockets.get_mut(handles.packet_client),
            now,
        );
        app.packet_server(
            &mut packet_server,
            sockets.get_mut(handles.packet_server),
            now,
        );

        let drivers = [
            framed_client.poll_delay(now, sockets.get(handles.framed_client)),
            framed_server.poll_delay(now, sockets.get(handles.framed_server)),
            packet_client.poll_delay(now, sockets.get(handles.packet_client)),
            packet_server.poll_delay(now, sockets.get(handles.packet_server)),
        ];
        let delay = drivers
            .into_iter()
            .fold(iface.poll_delay(now, &sockets), earliest);
        match delay {
            Some(Duration::ZERO) => {}
            Some(d) => clock.advance(d),
            None => clock.advance(Duration::from_millis(1)),
        }
    }
    println!(
        "[{}] done: framed link {:?}; packet link {:?}",
        clock.elapsed(),
        framed_client.link_stats(),
        packet_client.link_stats()
    );
}

struct Handles {
    framed_server: SocketHandle,
    framed_client: SocketHandle,
    packet_server: SocketHandle,
    packet_client: SocketHandle,
}

/// The four ends.
#[derive(Clone, Copy)]
enum End {
    FramedClient,
    FramedServer,
    PacketClient,
    PacketServer,
}

/// What the four ends have done so far.
#[derive(Default)]
struct App {
    frames_sent: usize,
    replies: usize,
    requests_submitted: bool,
    responses: usize,
    /// Which ends have seen their connection close, by [`End`].
    closed: [bool; 4],
    unanswered: Option<(u64, u64)>,
}

/// What the client sends on the framed connection.
fn messages() -> [Vec<u8>; 4] {
    [
        b"hello".to_vec(),
        b"frames of any size".to_vec(),
        vec![b'x'; 3000], // larger than both socket buffers
        b"bye".to_vec(),
    ]
}

impl App {
    fn done(&self) -> bool {
        self.closed.iter().all(|&c| c)
    }

    fn framed_client(
        &mut self,
        conn: &mut FramedSocket<'_, LengthPrefixed>,
        socket: &mut tcp::Socket<'_>,
        now: Instant,
    ) {
        conn.poll_socket(socket).expect("framed client");
        let messages = messages();
        if socket.may_send() && self.frames_sent == 0 {
            for m in &messages {
                conn.send(m).expect("the queue holds them all");
                println!("[{now}] framed client: sent a {}-byte frame", m.len());
            }
            self.frames_sent = messages.len();
        }
        while let Some(event) = conn.poll_event().expect("framed client") {
            match event {
                Event::Frame(reply) => {
                    println!(
                        "[{now}] framed client: reply {:?}",
                        String::from_utf8_lossy(reply)
                    );
                    self.replies += 1;
                }
                Event::Closed => {
                    println!("[{now}] framed client: server closed");
                    self.closed[End::FramedClient as usize] = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if self.replies == messages.len() && !conn.stream().is_send_closed() {
            conn.close();
        }
        conn.poll_socket(socket).expect("framed client");
    }

    fn framed_server(
        &mut self,
        conn: &mut FramedSocket<'_, LengthPrefixed>,
        socket: &mut tcp::Socket<'_>,
        now: Instant,
    ) {
        conn.poll_socket(socket).expect("framed server");
        let mut reply = [0u8; 64];
        while let Some(event) = conn.poll_event().expect("framed server") {
            match event {
                Event::Frame(frame) => {
                    let head = &frame[..frame.len().min(8)];
                    println!("[{now}] framed server: got a {}-byte frame", frame.len());
                    let n = describe(&mut reply, frame.len(), head);
                    conn.send(&reply[..n]).expect("room for a reply");
                }
                Event::Closed => {
                    println!("[{now}] framed server: client closed; closing too");
                    conn.close();
                    self.closed[End::FramedServer as usize] = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        conn.poll_socket(socket).expect("framed server");
    }

    fn packet_client(
        &mut self,
        conn: &mut PacketSocket<'_, 4, 4>,
        socket: &mut tcp::Socket<'_>,
        now: Instant,
    ) {
        conn.poll_socket(socket, now).expect("packet client");
        if socket.may_send() && !self.requests_submitted {
            let requests: [(u64, &[u8], Option<Duration>); 4] = [
                (0, b"shout this", None),
                (0, b"and this", None),
                (1, b"ignore me", Some(Duration::from_millis(500))),
                (7, b"unknown type", None),
            ];
            for (rq_type, payload, timeout) in requests {
                let tag = conn
                    .submit(0, rq_type, 0, payload, now, timeout)
                    .expect("submit");
                println!("[{now}] packet client: request tag {tag} type {rq_type}");
            }
            self.requests_submitted = true;
        }
        while let Some(event) = conn.poll_event() {
            match event {
                BorrowedEvent::ResponseReceived {
                    tag, ok, payload, ..
                } => {
                    let text = String::from_utf8_lossy(payload);
                    println!("[{now}] packet client: tag {tag} ok={ok} {text:?}");
                    self.responses += 1;
                }
                BorrowedEvent::RequestTimedOut { tag, .. } => {
                    println!("[{now}] packet client: tag {tag} timed out");
                    self.responses += 1;
                }
                BorrowedEvent::UnknownResponse { tag, .. } => {
                    println!("[{now}] packet client: late answer to tag {tag} ignored");
                }
                BorrowedEvent::PeerEndedRequests | BorrowedEvent::PeerClosed { .. } => {}
                BorrowedEvent::Closed => {
                    println!("[{now}] packet client: closed");
                    self.closed[End::PacketClient as usize] = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if self.responses == 4 {
            conn.close();
        }
        conn.poll_socket(socket, now).expect("packet client");
    }

    fn packet_server(
        &mut self,
        conn: &mut PacketSocket<'_, 4, 4>,
        socket: &mut tcp::Socket<'_>,
        now: Instant,
    ) {
        conn.poll_socket(socket, now).expect("packet server");
        let mut shout = [0u8; 64];
        while let Some(event) = conn.poll_event() {
            match event {
                BorrowedEvent::RequestReceived {
                    channel,
                    tag,
                    rq_type: 0,
                    payload,
                    ..
                } => {
                    let n = payload.len().min(shout.len());
                    shout[..n].copy_from_slice(&payload[..n]);
                    shout[..n].make_ascii_uppercase();
                    conn.respond(channel, tag, 0, &shout[..n]).expect("respond");
                }
                BorrowedEvent::RequestReceived {
                    channel,
                    tag,
                    rq_type: 1,
                    ..
                } => {
                    println!("[{now}] packet server: leaving tag {tag} unanswered for now");
                    self.unanswered = Some((channel, tag));
                }
                BorrowedEvent::RequestReceived {
                    channel,
                    tag,
                    rq_type,
                    ..
                } => {
                    println!("[{now}] packet server: refusing type {rq_type}");
                    conn.reject(channel, tag, "unknown request type")
                        .expect("reject");
                }
                BorrowedEvent::PeerEndedRequests => {}
                BorrowedEvent::PeerClosed { reason } => {
                    println!("[{now}] packet server: client closed ({reason:?}); closing");
                    // The orderly close answers every request first.
                    if let Some((channel, tag)) = self.unanswered.take() {
                        conn.reject(channel, tag, "too late").expect("reject");
                    }
                    conn.close();
                }
                BorrowedEvent::Closed => {
                    println!("[{now}] packet server: closed");
                    self.closed[End::PacketServer as usize] = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        conn.poll_socket(socket, now).expect("packet server");
    }
}

/// Writes "N bytes, starting <head>" into `out`; returns the length.
fn describe(out: &mut [u8], len: usize, head: &[u8]) -> usize {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(out);
    write!(
        cursor,
        "{len} bytes, starting {:?}",
        String::from_utf8_lossy(head)
    )
    .expect("fits");
    cursor.position() as usize
}
