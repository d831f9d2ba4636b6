//! FramedSocket over smoltcp's `FaultInjector`: packets dropped and
//! corrupted (every checksum verified, so a corrupted packet is dropped too),
//! TCP retransmits, and the framed stream still delivers every frame exactly
//! once, in order, with the core's limits in force.

mod common;

use common::{echo_run, payload, run_until, CheckedLoopback, Rng, Sim, HEADER};
use framewire::framing::{FrameError, LengthPrefixed};
use framewire::stream::{Event, ProtocolError, StreamError};
use framewire_smoltcp::FramedSocket;
use smoltcp::phy::FaultInjector;
use smoltcp::time::Duration;

fn faulty(seed: u32, drop_pct: u8, corrupt_pct: u8) -> FaultInjector<CheckedLoopback> {
    let mut device = FaultInjector::new(CheckedLoopback::new(1500), seed);
    device.set_drop_chance(drop_pct);
    device.set_corrupt_chance(corrupt_pct);
    device
}

/// Small and large frames, some over the server's 16 KiB limit.
fn sizes(seed: u64) -> Vec<usize> {
    let mut rng = Rng(seed);
    let mut sizes: Vec<usize> = (1..=300).collect();
    for i in 0..40 {
        sizes.insert(i * 7 + 3, rng.range(1, 64 * 1024));
    }
    sizes
}

fn run(seed: u32, socket_buf: usize, drop_pct: u8, corrupt_pct: u8) {
    let sizes = sizes(u64::from(seed) * 0x1000_0001 + 17);
    let server_max = 16 * 1024 + HEADER;
    let oversize = sizes.iter().filter(|&&s| s + HEADER > server_max).count() as u64;
    assert!(oversize > 5, "the mix must include frames over the limit");
    let mut sim = Sim::new(faulty(seed, drop_pct, corrupt_pct), socket_buf);
    // Without it a lost window update stalls the connection for good
    // (smoltcp 0.12 sends no zero-window probes).
    sim.keep_alive(Duration::from_millis(500));
    let out = echo_run(&mut sim, &sizes, server_max, 3, 3_000_000);
    println!(
        "seed {seed}, {socket_buf} B buffers, drop {drop_pct}% corrupt {corrupt_pct}%: {} frames ({oversize} skipped) in {} steps, {} simulated; server {:?}",
        sizes.len(),
        out.steps,
        sim.now,
        out.server
    );
    // Every over-long frame skipped exactly once, never buffered.
    assert_eq!(out.skipped, oversize);
    // Each byte crossed each socket exactly once, retransmissions or not.
    let total: u64 = sizes.iter().map(|&s| (s + HEADER) as u64).sum();
    assert_eq!(out.client.bytes_sent, total);
    assert_eq!(out.server.bytes_received, total);
    let echoed: u64 = sizes
        .iter()
        .filter(|&&s| s + HEADER <= server_max)
        .map(|&s| (s + HEADER) as u64)
        .sum();
    assert_eq!(out.server.bytes_sent, echoed);
    assert_eq!(out.client.bytes_received, echoed);
}

#[test]
fn drops_and_corruption_1k_buffers() {
    run(1, 1024, 5, 5);
}

#[test]
fn drops_and_corruption_4k_buffers() {
    run(2, 4096, 10, 3);
}

#[test]
fn heavy_loss_4k_buffers() {
    run(3, 4096, 20, 10);
}

/// Under faults, a frame over the limit still fails the receiving stream
/// with the numbers, after every earlier frame arrived exactly once.
#[test]
fn the_frame_limit_holds_under_faults() {
    let mut sim = Sim::new(faulty(7, 10, 5), 1024);
    sim.keep_alive(Duration::from_millis(500));
    common::establish(&mut sim);
    let mut ctx = vec![0u8; 128 * 1024];
    let mut crx = [0u8; 16];
    let mut srx = vec![0u8; 2048];
    let mut stx = [0u8; 16];
    let mut client = FramedSocket::new(LengthPrefixed::new(), &mut crx, &mut ctx);
    let limit = LengthPrefixed::new().with_max_frame_len(2000);
    let mut server = FramedSocket::new(limit, &mut srx, &mut stx);
    for i in 0..40 {
        client
            .send(&payload(i, 1 + (i as usize * 97) % 1996))
            .unwrap();
    }
    client.send(&payload(40, 40_000)).unwrap();
    client.send(&payload(41, 5)).unwrap();
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
    assert_eq!(frames.len(), 40);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f, &payload(i as u64, 1 + (i * 97) % 1996), "frame {i}");
    }
    assert_eq!(
        failure,
        Some(StreamError::Protocol(ProtocolError::Frame(
            FrameError::FrameTooLong {
                len: 40_004,
                max: 2000
            }
        )))
    );
    assert!(server.stream().buffered_len() <= 2048);
}
