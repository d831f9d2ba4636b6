//! PacketSocket on smoltcp's loopback device (plain and with the
//! `FaultInjector`) with a simulated clock.

mod common;

use std::collections::VecDeque;

use common::{establish, payload, run_until, CheckedLoopback, Rng, Sim};
use framewire::packet::{
    BorrowedConfig, BorrowedEvent, PeerCloseReason, RespondError, SubmitError,
};
use framewire_smoltcp::time::earliest;
use framewire_smoltcp::{Error, PacketSocket};
use smoltcp::phy::{Device, FaultInjector};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

type Conn<'a> = PacketSocket<'a, 16, 16>;

/// The server's answer to request `i`: the payload reversed.
fn answer(request: &[u8]) -> Vec<u8> {
    request.iter().rev().copied().collect()
}

fn request_len(rng: &mut Rng, i: u64) -> usize {
    if i.is_multiple_of(97) {
        rng.range(1000, 3000)
    } else {
        rng.range(0, 200)
    }
}

/// What a request run observed.
#[derive(Debug)]
#[allow(dead_code)] // `steps` is only printed
struct RunOutcome {
    steps: u64,
    client_rx_wraps: u64,
    server_rx_wraps: u64,
}

/// The server's side of a run: requests answered in arrival order, parked
/// (copied) while the transmit buffer is full.
#[derive(Default)]
struct Server {
    owed: VecDeque<(u64, u64, u64, Vec<u8>)>,
    served: u64,
    peer_ended: bool,
    peer_closed: bool,
    closed: bool,
}

impl Server {
    fn step(&mut self, conn: &mut Conn<'_>, socket: &mut tcp::Socket<'_>, now: Instant) {
        conn.poll_socket(socket, now).expect("server socket");
        loop {
            // Answer what is owed first, in order.
            while let Some((channel, tag, flags, data)) = self.owed.front() {
                match conn.respond(*channel, *tag, *flags, data) {
                    Ok(()) => {
                        self.owed.pop_front();
                        self.served += 1;
                    }
                    Err(RespondError::NoRoom { .. }) => {
                        conn.poll_socket(socket, now).expect("server socket");
                        return;
                    }
                    Err(e) => panic!("respond: {e}"),
                }
            }
            let Some(event) = conn.poll_event() else {
                break;
            };
            match event {
                BorrowedEvent::RequestReceived {
                    channel,
                    tag,
                    rq_type,
                    flags,
                    payload,
                } => {
                    assert_eq!(rq_type, (tag - 2) % 5, "request type of tag {tag}");
                    self.owed
                        .push_back((channel, tag, flags + 1, answer(payload)));
                }
                BorrowedEvent::PeerEndedRequests => self.peer_ended = true,
                BorrowedEvent::PeerClosed { reason } => {
                    assert_eq!(reason, PeerCloseReason::EofPacket);
                    self.peer_closed = true;
                    conn.close();
                }
                BorrowedEvent::Closed => self.closed = true,
                other => panic!("server: unexpected {other:?}"),
            }
        }
        conn.poll_socket(socket, now).expect("server socket");
    }
}

/// The client submits `n` requests (as many waiting as the 16 slots allow), request `i` with
/// tag `i + 2`, type `i % 5`, flags `i`, and `payload(i, len)`; checks every
/// response arrives once, in order, with the reversed payload and flags
/// `i + 1`; then closes in order. Both sides end `Closed` and both FINs go
/// out.
fn run_requests<D: Device>(sim: &mut Sim<D>, n: u64, step_limit: u64) -> RunOutcome {
    let (mut crx, mut ctx) = (vec![0u8; 4096], vec![0u8; 4096]);
    let (mut srx, mut stx) = (vec![0u8; 4096], vec![0u8; 4096]);
    let mut client = Conn::new(BorrowedConfig::default(), &mut crx, &mut ctx).unwrap();
    let mut server = Conn::new(BorrowedConfig::default(), &mut srx, &mut stx).unwrap();
    let mut rng = Rng(0xfeed_beef_1234_5678);
    let mut sizes = VecDeque::new();
    let mut srv = Server::default();
    let mut next = 0u64;
    let mut answered = 0u64;
    let mut client_closed = false;
    let mut client_peer_closed = false;

    while !(client_closed && srv.closed && client.send_finished() && server.send_finished()) {
        assert!(
            sim.steps < step_limit,
            "no progress by {}: submitted {next}, served {}, answered {answered}; client {client:?}; server {server:?}",
            sim.now,
            srv.served
        );
        sim.poll_iface();
        let now = sim.now;
        srv.step(&mut server, sim.sockets.get_mut(sim.server), now);

        let socket = sim.sockets.get_mut::<tcp::Socket>(sim.client);
        client.poll_socket(socket, now).expect("client socket");
        while next < n {
            let len = request_len(&mut rng, next);
            let data = payload(next, len);
            match client.submit(0, next % 5, next, &data, now, None) {
                Ok(tag) => {
                    assert_eq!(tag, next + 2);
                    sizes.push_back(len);
                    next += 1;
                }
                Err(SubmitError::NoRoom { .. } | SubmitError::TooManyPending { .. }) => break,
                Err(e) => panic!("submit: {e}"),
            }
        }
        if next == n && answered == n && !client.connection().requests_ended() {
            client.close();
        }
        client.poll_socket(socket, now).expect("client socket");
        while let Some(event) = client.poll_event() {
            match event {
                BorrowedEvent::ResponseReceived {
                    channel,
                    tag,
                    ok,
                    flags,
                    payload: got,
                } => {
                    assert_eq!(
                        (channel, tag, ok),
                        (0, answered + 2, true),
                        "response order"
                    );
                    assert_eq!(flags, answered + 1);
                    let len = sizes.pop_front().unwrap();
                    assert_eq!(got, answer(&payload(answered, len)).as_slice());
                    answered += 1;
                }
                BorrowedEvent::PeerEndedRequests => {}
                BorrowedEvent::PeerClosed { reason } => {
                    assert_eq!(reason, PeerCloseReason::EofPacket);
                    client_peer_closed = true;
                }
                BorrowedEvent::Closed => client_closed = true,
                other => panic!("client: unexpected {other:?}"),
            }
        }
        client.poll_socket(socket, now).expect("client socket");

        let sd = server.poll_delay(now, sim.sockets.get(sim.server));
        let cd = client.poll_delay(now, sim.sockets.get(sim.client));
        sim.advance(earliest(sd, cd));
    }
    assert_eq!(answered, n);
    assert_eq!(srv.served, n);
    assert!(srv.peer_ended && srv.peer_closed && client_peer_closed);
    let (cs, ss) = (client.connection().stats(), server.connection().stats());
    assert_eq!((cs.requests_sent, cs.responses_received), (n, n));
    assert_eq!((ss.requests_received, ss.responses_sent), (n, n));
    RunOutcome {
        steps: sim.steps,
        client_rx_wraps: client.link_stats().rx_wraps,
        server_rx_wraps: server.link_stats().rx_wraps,
    }
}

#[test]
fn ten_thousand_requests_through_1k_socket_buffers() {
    let mut sim = Sim::new(CheckedLoopback::new(1500), 1024);
    let out = run_requests(&mut sim, 10_000, 2_000_000);
    println!("1 KiB socket buffers: {out:?}, {} simulated", sim.now);
    assert!(
        out.client_rx_wraps > 100 && out.server_rx_wraps > 100,
        "{out:?}"
    );
}

#[test]
fn ten_thousand_requests_through_4k_socket_buffers() {
    let mut sim = Sim::new(CheckedLoopback::new(1500), 4096);
    let out = run_requests(&mut sim, 10_000, 2_000_000);
    println!("4 KiB socket buffers: {out:?}, {} simulated", sim.now);
    assert!(
        out.client_rx_wraps > 100 && out.server_rx_wraps > 100,
        "{out:?}"
    );
}

#[test]
fn ten_thousand_requests_with_drops_and_corruption() {
    let mut device = FaultInjector::new(CheckedLoopback::new(1500), 0xdead);
    device.set_drop_chance(5);
    device.set_corrupt_chance(5);
    let mut sim = Sim::new(device, 2048);
    sim.keep_alive(Duration::from_millis(500));
    let out = run_requests(&mut sim, 10_000, 3_000_000);
    println!(
        "faults, 2 KiB socket buffers: {out:?}, {} simulated",
        sim.now
    );
}

/// A request nobody answers ends with `RequestTimedOut` at its deadline:
/// `poll_at` reports the deadline, so a main loop sleeping until it wakes
/// exactly then.
#[test]
fn request_deadlines_drive_poll_at() {
    let mut sim = Sim::new(CheckedLoopback::new(1500), 1024);
    establish(&mut sim);
    let (mut crx, mut ctx) = ([0u8; 512], [0u8; 512]);
    let (mut srx, mut stx) = ([0u8; 512], [0u8; 512]);
    let mut client = Conn::new(BorrowedConfig::default(), &mut crx, &mut ctx).unwrap();
    let mut server = Conn::new(BorrowedConfig::default(), &mut srx, &mut stx).unwrap();
    let start = sim.now;
    let tag = client
        .submit(0, 0, 0, b"slow", start, Some(Duration::from_millis(250)))
        .unwrap();
    let deadline = start + Duration::from_millis(250);
    let mut timed_out_at = None;
    let mut server_saw = false;
    while timed_out_at.is_none() {
        assert!(sim.now < start + Duration::from_secs(5), "no timeout");
        sim.poll_iface();
        let now = sim.now;
        client.poll_socket(sim.socket(sim.client), now).unwrap();
        server.poll_socket(sim.socket(sim.server), now).unwrap();
        // The server takes the request and never answers.
        while let Some(e) = server.poll_event() {
            assert!(matches!(e, BorrowedEvent::RequestReceived { .. }));
            server_saw = true;
        }
        while let Some(e) = client.poll_event() {
            assert_eq!(e, BorrowedEvent::RequestTimedOut { channel: 0, tag });
            timed_out_at = Some(now);
        }
        if timed_out_at.is_none() && server_saw {
            // Only the deadline is left to wait for.
            assert_eq!(client.poll_at(sim.sockets.get(sim.client)), Some(deadline));
        }
        let cd = client.poll_delay(now, sim.sockets.get(sim.client));
        let sd = server.poll_delay(now, sim.sockets.get(sim.server));
        sim.advance(earliest(cd, sd));
    }
    assert!(server_saw);
    assert_eq!(
        timed_out_at,
        Some(deadline),
        "woken exactly at the deadline"
    );
    assert_eq!(client.connection().pending_outbound(), 0);
    assert_eq!(client.poll_at(sim.sockets.get(sim.client)), None);
}

/// When the connection is reset, requests still waiting are cancelled
/// (not left hanging) and the loss is reported.
#[test]
fn a_reset_cancels_waiting_requests() {
    let mut sim = Sim::new(CheckedLoopback::new(1500), 1024);
    establish(&mut sim);
    let (mut crx, mut ctx) = ([0u8; 512], [0u8; 512]);
    let mut client = Conn::new(BorrowedConfig::default(), &mut crx, &mut ctx).unwrap();
    let now = sim.now;
    let a = client.submit(0, 0, 0, b"a", now, None).unwrap();
    let b = client.submit(0, 0, 0, b"b", now, None).unwrap();
    client.poll_socket(sim.socket(sim.client), now).unwrap();
    // The server end vanishes without a word.
    sim.socket(sim.server).abort();
    let mut lost = None;
    run_until(&mut sim, |sim| {
        let now = sim.now;
        if let Err(e) = client.poll_socket(sim.socket(sim.client), now) {
            lost = Some(e);
        }
        lost.is_some()
    });
    let Some(Error::ConnectionLost(info)) = lost else {
        panic!("expected a lost connection, got {lost:?}")
    };
    assert!(!info.peer_closed);
    let mut cancelled = Vec::new();
    while let Some(e) = client.poll_event() {
        if let BorrowedEvent::RequestCancelled { tag, .. } = e {
            cancelled.push(tag);
        }
    }
    assert_eq!(cancelled, vec![a, b]);
    assert!(matches!(
        client.submit(0, 0, 0, b"c", sim.now, None),
        Err(SubmitError::PeerGone)
    ));
}

/// A connection that stopped reading because its transmit buffer is full of
/// refusals the peer never reads still cancels its waiting requests when the
/// link is lost: what is queued is dropped first, so the EOF takes effect.
/// (Found by the `borrowed_connection` fuzz target.)
#[test]
fn a_reset_cancels_requests_while_refusals_fill_the_transmit_buffer() {
    use framewire::packet::wire::Packet;
    use framewire::packet::MIN_TRANSMIT_BUFFER;

    let mut sim = Sim::new(CheckedLoopback::new(1500), 1024);
    establish(&mut sim);
    let mut crx = [0u8; 512];
    let mut ctx = vec![0u8; MIN_TRANSMIT_BUFFER];
    let mut client = Conn::new(BorrowedConfig::default(), &mut crx, &mut ctx).unwrap();
    let now = sim.now;
    let a = client.submit(0, 0, 0, b"a", now, None).unwrap();
    client.poll_socket(sim.socket(sim.client), now).unwrap();
    // The peer sends requests on a channel the client never opened (each
    // gets a refusal) and reads nothing, so the refusals back up: socket
    // buffers, then the client's transmit buffer, then its input.
    let mut flood = Vec::new();
    for tag in 2..300u64 {
        let p = Packet::request(5, tag, 1, 0, b"").unwrap();
        let mut buf = vec![0u8; p.encoded_len()];
        let n = p.encode(&mut buf).unwrap();
        flood.extend_from_slice(&buf[..n]);
    }
    let mut sent = 0;
    for _ in 0..2000 {
        sim.poll_iface();
        if sent < flood.len() {
            sent += sim.socket(sim.server).send_slice(&flood[sent..]).unwrap();
        }
        let now = sim.now;
        client.poll_socket(sim.socket(sim.client), now).unwrap();
        while client.poll_event().is_some() {}
        sim.advance(None);
    }
    assert!(
        client.connection().transmit_len() + 8 > MIN_TRANSMIT_BUFFER - 24,
        "the transmit buffer did not fill: {} queued",
        client.connection().transmit_len()
    );
    assert!(
        client.connection().receive_buffered() > 0,
        "the client did not stall on its input"
    );
    // Now the link dies.
    sim.socket(sim.server).abort();
    let mut lost = None;
    run_until(&mut sim, |sim| {
        let now = sim.now;
        if let Err(e) = client.poll_socket(sim.socket(sim.client), now) {
            lost = Some(e);
        }
        lost.is_some()
    });
    assert!(matches!(lost, Some(Error::ConnectionLost(_))), "{lost:?}");
    let mut cancelled = Vec::new();
    while let Some(e) = client.poll_event() {
        if let BorrowedEvent::RequestCancelled { tag, .. } = e {
            cancelled.push(tag);
        }
    }
    assert_eq!(cancelled, vec![a]);
    assert_eq!(client.connection().pending_outbound(), 0);
}
