//! FramedSocket on smoltcp's loopback device with a simulated clock.

mod common;

use common::{echo_run, establish, frame_sizes, payload, run_until, Sim, HEADER, MAX_FRAME};
use framewire::framing::{FrameError, LengthPrefixed};
use framewire::stream::{Event, ProtocolError, SendError, StreamError};
use framewire_smoltcp::{Error, FramedSocket};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

fn sizes_through(socket_buf: usize) {
    let sizes = frame_sizes();
    let mut sim = Sim::new(common::CheckedLoopback::new(1500), socket_buf);
    let out = echo_run(&mut sim, &sizes, MAX_FRAME, 3, 2_000_000);
    println!(
        "socket buffers {socket_buf} B: {} frames echoed in {} steps, {} simulated; server {:?}; client {:?}",
        sizes.len(),
        out.steps,
        sim.now,
        out.server,
        out.client
    );
    // Frames straddled the rings' wraparound, in both directions and both
    // buffers, and were delivered anyway.
    assert!(out.server.rx_wraps > 100, "{:?}", out.server);
    assert!(out.client.rx_wraps > 100, "{:?}", out.client);
    assert!(out.server.tx_wraps > 10, "{:?}", out.server);
    assert!(out.client.tx_wraps > 10, "{:?}", out.client);
    // Partial sends: the socket's buffer filled up with bytes still queued.
    assert!(out.client.tx_full > 0 && out.server.tx_full > 0);
    let total: u64 = sizes.iter().map(|&s| (s + HEADER) as u64).sum();
    assert_eq!(out.server.bytes_received, total);
    assert_eq!(out.server.bytes_sent, total);
    assert_eq!(out.client.bytes_sent, total);
    assert_eq!(out.client.bytes_received, total);
}

#[test]
fn frames_1b_to_64k_through_1k_socket_buffers() {
    sizes_through(1024);
}

#[test]
fn frames_1b_to_64k_through_4k_socket_buffers() {
    sizes_through(4096);
}

/// The trap of smoltcp issue #797, made to happen on purpose: a frame lies
/// across the end of the server's receive ring, so smoltcp's `recv` closure
/// shows only its first part. One `poll_socket` still delivers it whole.
#[test]
fn a_frame_across_the_ring_end_is_delivered_in_one_poll() {
    let mut sim = Sim::new(common::CheckedLoopback::new(1500), 64);
    establish(&mut sim);
    let (mut crx, mut ctx) = ([0u8; 128], [0u8; 128]);
    let (mut srx, mut stx) = ([0u8; 128], [0u8; 128]);
    let mut client = FramedSocket::new(LengthPrefixed::new(), &mut crx, &mut ctx);
    let mut server = FramedSocket::new(LengthPrefixed::new(), &mut srx, &mut stx);

    // Frame A: 50 bytes on the wire; the server reads it, so the ring's read
    // position is now 50 of 64.
    client.send(&payload(0, 46)).unwrap();
    run_until(&mut sim, |sim| {
        client.poll_socket(sim.socket(sim.client)).unwrap();
        sim.socket(sim.server).recv_queue() == 50
    });
    server.poll_socket(sim.socket(sim.server)).unwrap();
    assert_eq!(
        server.poll_frame().unwrap(),
        Some(payload(0, 46).as_slice())
    );
    assert_eq!(server.link_stats().rx_wraps, 0);

    // Frame B: 40 bytes, 14 before the ring's end and 26 after.
    client.send(&payload(1, 36)).unwrap();
    run_until(&mut sim, |sim| {
        client.poll_socket(sim.socket(sim.client)).unwrap();
        sim.socket(sim.server).recv_queue() == 40
    });
    // What a parser inside the recv closure would see: 14 of the 40 bytes.
    let visible = sim.socket(sim.server).recv(|ring| (0, ring.len())).unwrap();
    assert_eq!(visible, 14);

    let progress = server.poll_socket(sim.socket(sim.server)).unwrap();
    assert_eq!(progress.received, 40);
    assert_eq!(server.link_stats().rx_wraps, 1);
    assert_eq!(server.link_stats().recv_calls, 3);
    assert_eq!(
        server.poll_frame().unwrap(),
        Some(payload(1, 36).as_slice())
    );
    assert_eq!(server.poll_frame().unwrap(), None);
}

/// A frame larger than the socket's whole transmit buffer goes out in many
/// partial sends, each resumed where the last one stopped.
#[test]
fn partial_sends_resume_until_the_frame_is_out() {
    let mut sim = Sim::new(common::CheckedLoopback::new(1500), 64);
    establish(&mut sim);
    let mut ctx = vec![0u8; 4096];
    let mut crx = [0u8; 16];
    let mut srx = vec![0u8; 4096];
    let mut stx = [0u8; 16];
    let mut client = FramedSocket::new(LengthPrefixed::new(), &mut crx, &mut ctx);
    let mut server = FramedSocket::new(LengthPrefixed::new(), &mut srx, &mut stx);
    let data = payload(9, 3000);
    client.send(&data).unwrap();
    let first = client.poll_socket(sim.socket(sim.client)).unwrap();
    assert_eq!(first.sent, 64, "the socket took what fitted");
    assert_eq!(
        client.stream().queued_len(),
        3004 - 64,
        "the rest stays queued"
    );
    let mut got = None;
    run_until(&mut sim, |sim| {
        client.poll_socket(sim.socket(sim.client)).unwrap();
        server.poll_socket(sim.socket(sim.server)).unwrap();
        if let Some(frame) = server.poll_frame().unwrap() {
            got = Some(frame.to_vec());
        }
        got.is_some()
    });
    assert_eq!(got.as_deref(), Some(data.as_slice()));
    assert!(
        client.link_stats().tx_full > 10,
        "{:?}",
        client.link_stats()
    );
    assert_eq!(client.link_stats().bytes_sent, 3004);
}

/// A length prefix over the receiver's limit fails its stream after every
/// earlier frame was delivered; the driver stops reading; the error repeats.
#[test]
fn an_oversize_frame_fails_the_receiver_after_the_earlier_frames() {
    let mut sim = Sim::new(common::CheckedLoopback::new(1500), 1024);
    establish(&mut sim);
    let mut ctx = vec![0u8; 8192];
    let mut crx = [0u8; 16];
    let mut srx = vec![0u8; 1024];
    let mut stx = [0u8; 16];
    let mut client = FramedSocket::new(LengthPrefixed::new(), &mut crx, &mut ctx);
    let server_framing = LengthPrefixed::new().with_max_frame_len(1000);
    let mut server = FramedSocket::new(server_framing, &mut srx, &mut stx);
    for i in 0..5 {
        client.send(&payload(i, 100)).unwrap();
    }
    client.send(&payload(5, 5000)).unwrap();
    client.send(&payload(6, 10)).unwrap();
    let mut frames = Vec::new();
    let mut failure = None;
    run_until(&mut sim, |sim| {
        client.poll_socket(sim.socket(sim.client)).unwrap();
        server.poll_socket(sim.socket(sim.server)).unwrap();
        loop {
            match server.poll_event() {
                Ok(Some(Event::Frame(f))) => frames.push(f.to_vec()),
                Ok(Some(other)) => panic!("unexpected {other:?}"),
                Ok(None) => return false,
                Err(e) => {
                    failure = Some(e);
                    return true;
                }
            }
        }
    });
    assert_eq!(frames.len(), 5);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f, &payload(i as u64, 100));
    }
    let expected = StreamError::Protocol(ProtocolError::Frame(FrameError::FrameTooLong {
        len: 5004,
        max: 1000,
    }));
    assert_eq!(failure, Some(expected));
    assert_eq!(server.poll_event(), Err(expected));
    // The driver takes nothing more from the socket once the stream failed.
    let before = server.link_stats().bytes_received;
    for _ in 0..50 {
        sim.poll_iface();
        client.poll_socket(sim.socket(sim.client)).unwrap();
        server.poll_socket(sim.socket(sim.server)).unwrap();
        sim.advance(None);
    }
    assert_eq!(server.link_stats().bytes_received, before);
    assert!(server.stream().buffered_len() <= 1024);
    assert_eq!(server.poll_at(sim.sockets.get(sim.server)), None);
}

/// Both sides close in turn: every frame arrives, each side sees the other's
/// clean close, and both FINs go out after the queued data.
#[test]
fn orderly_close_both_ways() {
    let mut sim = Sim::new(common::CheckedLoopback::new(1500), 256);
    establish(&mut sim);
    let (mut crx, mut ctx) = (vec![0u8; 2048], vec![0u8; 2048]);
    let (mut srx, mut stx) = (vec![0u8; 2048], vec![0u8; 2048]);
    let mut client = FramedSocket::new(LengthPrefixed::new(), &mut crx, &mut ctx);
    let mut server = FramedSocket::new(LengthPrefixed::new(), &mut srx, &mut stx);
    client.send(&payload(1, 1500)).unwrap();
    client.close();
    assert_eq!(client.send(b"late"), Err(SendError::Closed));
    let mut server_events = Vec::new();
    let mut client_events = Vec::new();
    let mut server_closed = false;
    run_until(&mut sim, |sim| {
        client.poll_socket(sim.socket(sim.client)).unwrap();
        server.poll_socket(sim.socket(sim.server)).unwrap();
        while let Some(e) = server.poll_event().unwrap() {
            server_events.push(e.map_frame_to_vec());
        }
        if server.peer_closed() && !server_closed {
            // The server answers, then closes too.
            server.send(b"bye").unwrap();
            server.close();
            server_closed = true;
        }
        server.poll_socket(sim.socket(sim.server)).unwrap();
        client.poll_socket(sim.socket(sim.client)).unwrap();
        while let Some(e) = client.poll_event().unwrap() {
            client_events.push(e.map_frame_to_vec());
        }
        !sim.socket(sim.client).is_open() && !sim.socket(sim.server).is_open()
    });
    assert_eq!(
        server_events,
        vec![Event::Frame(payload(1, 1500)), Event::Closed]
    );
    assert_eq!(
        client_events,
        vec![Event::Frame(b"bye".to_vec()), Event::Closed]
    );
    assert!(client.send_finished() && server.send_finished());
    assert!(client.peer_closed() && server.peer_closed());
    assert_eq!(client.poll_at(sim.sockets.get(sim.client)), None);
    assert_eq!(server.poll_at(sim.sockets.get(sim.server)), None);
}

/// A reset ends the connection: the driver reports the loss (with the bytes
/// that will never go out), again on every poll, and the frames already
/// taken in are still delivered.
#[test]
fn a_reset_is_reported_and_taken_frames_survive() {
    let mut sim = Sim::new(common::CheckedLoopback::new(1500), 1024);
    establish(&mut sim);
    let (mut crx, mut ctx) = (vec![0u8; 2048], vec![0u8; 2048]);
    let (mut srx, mut stx) = (vec![0u8; 2048], vec![0u8; 2048]);
    let mut client = FramedSocket::new(LengthPrefixed::new(), &mut crx, &mut ctx);
    let mut server = FramedSocket::new(LengthPrefixed::new(), &mut srx, &mut stx);
    client.send(&payload(0, 300)).unwrap();
    client.send(&payload(1, 300)).unwrap();
    client.poll_socket(sim.socket(sim.client)).unwrap();
    run_until(&mut sim, |sim| sim.socket(sim.server).recv_queue() == 608);
    server.poll_socket(sim.socket(sim.server)).unwrap();
    // The server queues a reply, then the client vanishes with a reset.
    server.send(&[7u8; 100]).unwrap();
    sim.socket(sim.client).abort();
    let mut lost = None;
    run_until(&mut sim, |sim| {
        match server.poll_socket(sim.socket(sim.server)) {
            Ok(_) => {}
            Err(Error::ConnectionLost(l)) => lost = Some(l),
            Err(e) => panic!("{e}"),
        }
        lost.is_some()
    });
    let lost = lost.unwrap();
    assert!(!lost.peer_closed);
    // The 104-byte reply never left: it is counted as undelivered.
    assert!(lost.unsent >= 104, "{lost:?}");
    assert_eq!(lost.state, tcp::State::Closed);
    assert_eq!(
        server.poll_socket(sim.socket(sim.server)),
        Err(Error::ConnectionLost(lost))
    );
    assert_eq!(
        server.poll_frame().unwrap(),
        Some(payload(0, 300).as_slice())
    );
    assert_eq!(
        server.poll_frame().unwrap(),
        Some(payload(1, 300).as_slice())
    );
    assert_eq!(server.poll_frame().unwrap(), None);
    assert_eq!(server.poll_at(sim.sockets.get(sim.server)), None);
    // The client's own driver sees its aborted socket as lost too.
    assert!(matches!(
        client.poll_socket(sim.socket(sim.client)),
        Err(Error::ConnectionLost(_))
    ));
}

/// `poll_at` asks for a poll exactly when one would move something.
#[test]
fn poll_at_reports_pending_work() {
    let mut sim = Sim::new(common::CheckedLoopback::new(1500), 256);
    let (mut crx, mut ctx) = ([0u8; 64], [0u8; 64]);
    let (mut srx, mut stx) = ([0u8; 16], [0u8; 64]);
    let mut client = FramedSocket::new(LengthPrefixed::new(), &mut crx, &mut ctx);
    let mut server = FramedSocket::new(LengthPrefixed::new(), &mut srx, &mut stx);
    // Not connected yet: queued output cannot go anywhere.
    client.send(b"0123456789").unwrap();
    assert_eq!(client.poll_at(sim.sockets.get(sim.client)), None);
    establish(&mut sim);
    let now = sim.now;
    assert_eq!(
        client.poll_at(sim.sockets.get(sim.client)),
        Some(Instant::ZERO)
    );
    assert_eq!(
        client.poll_delay(now, sim.sockets.get(sim.client)),
        Some(smoltcp::time::Duration::ZERO)
    );
    client.poll_socket(sim.socket(sim.client)).unwrap();
    assert_eq!(client.poll_at(sim.sockets.get(sim.client)), None);
    client.send(b"abcdefghij").unwrap();
    client.poll_socket(sim.socket(sim.client)).unwrap();
    run_until(&mut sim, |sim| sim.socket(sim.server).recv_queue() == 28);
    // 28 bytes waiting, the server's 16-byte buffer can take some.
    assert_eq!(
        server.poll_at(sim.sockets.get(sim.server)),
        Some(Instant::ZERO)
    );
    server.poll_socket(sim.socket(sim.server)).unwrap();
    // Its buffer is full now: nothing to do until frames are drained.
    assert_eq!(server.stream().buffered_len(), 16);
    assert_eq!(server.poll_at(sim.sockets.get(sim.server)), None);
    assert_eq!(server.poll_frame().unwrap(), Some(&b"0123456789"[..]));
    assert_eq!(
        server.poll_at(sim.sockets.get(sim.server)),
        Some(Instant::ZERO)
    );
    server.poll_socket(sim.socket(sim.server)).unwrap();
    assert_eq!(server.poll_frame().unwrap(), Some(&b"abcdefghij"[..]));
    assert_eq!(server.poll_at(sim.sockets.get(sim.server)), None);
}

/// Test helper: an event with its frame copied out.
trait ToOwnedEvent {
    fn map_frame_to_vec(self) -> Event<Vec<u8>>;
}

impl ToOwnedEvent for Event<&[u8]> {
    fn map_frame_to_vec(self) -> Event<Vec<u8>> {
        match self {
            Event::Frame(f) => Event::Frame(f.to_vec()),
            Event::Skipped(o) => Event::Skipped(o),
            Event::Closed => Event::Closed,
            other => panic!("unknown event {other:?}"),
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any frame sizes (empty frames included), through any socket buffer
    /// size and MTU, pipelined or not: every frame arrives once, in order,
    /// intact, both ways.
    #[test]
    fn any_sizes_any_socket_buffers(
        sizes in proptest::collection::vec(0usize..5000, 1..40),
        socket_buf in 64usize..3000,
        mtu in 200usize..1500,
        in_flight in 1usize..5,
    ) {
        let mut sim = Sim::new(common::CheckedLoopback::new(mtu), socket_buf);
        let out = echo_run(&mut sim, &sizes, MAX_FRAME, in_flight, 1_000_000);
        let total: u64 = sizes.iter().map(|&s| (s + HEADER) as u64).sum();
        proptest::prop_assert_eq!(out.server.bytes_received, total);
        proptest::prop_assert_eq!(out.client.bytes_received, total);
    }
}
