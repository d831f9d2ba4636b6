//! Peer table tests with simulated time.

use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::time::{Duration, Instant};

type Table = PeerTable<String>;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn frame(n: u32, len: usize) -> Bytes {
    let mut v = n.to_be_bytes().to_vec();
    v.resize(len.max(4), b'.');
    Bytes::from(v)
}

fn num(b: &Bytes) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn events(table: &mut Table) -> Vec<Event<String>> {
    core::iter::from_fn(|| table.poll_event()).collect()
}

fn inbound(table: &mut Table, addr: &str) -> PeerId {
    table
        .admit(addr.into(), Direction::Inbound, t(0), |_| true)
        .unwrap()
}

fn drain(table: &mut Table, peer: PeerId) -> (Vec<Bytes>, Transmit) {
    let mut out = Vec::new();
    loop {
        match table.poll_transmit(peer, &mut out) {
            Transmit::Frames(_) => {}
            other => return (out, other),
        }
    }
}

fn config(max_messages: usize, policy: FullPolicy) -> Config {
    Config {
        queue: QueueLimits {
            max_messages,
            max_bytes: 1 << 20,
            policy,
        },
        ..Config::default()
    }
}

#[test]
fn admission_checks_shutdown_then_limit_then_good_peer() {
    let mut table = Table::new(Config {
        max_peers: 2,
        ..Config::default()
    });
    let mut asked = Vec::new();
    let mut good = |info: &PeerInfo<String>| {
        asked.push(info.addr.clone());
        info.addr != "bad"
    };
    let a = table
        .admit("a".into(), Direction::Inbound, t(1), &mut good)
        .unwrap();
    assert_eq!(
        table.admit("bad".into(), Direction::Inbound, t(2), &mut good),
        Err(RefuseReason::NotGood)
    );
    let b = table
        .admit("b".into(), Direction::Outbound, t(3), &mut good)
        .unwrap();
    // Full: the predicate is not even asked.
    assert_eq!(
        table.admit("c".into(), Direction::Inbound, t(4), &mut good),
        Err(RefuseReason::TooManyPeers { max: 2 })
    );
    assert_eq!(asked, ["a", "bad", "b"]);
    // Ids are never reused, refused connections included.
    assert_eq!((a.get(), b.get()), (1, 3));
    assert_eq!(table.peer(b).unwrap().state, PeerState::Connecting);
    let ev = events(&mut table);
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert!(matches!(&ev[0], Event::PeerJoined(i) if i.id == a && i.since == t(1)));
    assert_eq!(
        ev[1],
        Event::PeerRefused {
            addr: "bad".into(),
            direction: Direction::Inbound,
            reason: RefuseReason::NotGood
        }
    );
    assert!(matches!(
        &ev[2],
        Event::PeerRefused {
            reason: RefuseReason::TooManyPeers { max: 2 },
            ..
        }
    ));
    assert_eq!(table.stats().refused, 2);
    assert_eq!(table.stats().admitted, 2);
}

#[test]
fn a_refused_peer_gets_nothing() {
    let mut table = Table::new(Config::default());
    let a = inbound(&mut table, "a");
    assert!(table
        .admit("evil".into(), Direction::Inbound, t(0), |_| false)
        .is_err());
    let report = table.broadcast(frame(1, 8)).unwrap();
    assert_eq!(report.outcomes.len(), 1);
    assert_eq!(report.outcomes[0], (a, Ok(Sent::Queued)));
    // The refused connection's id (2) is unknown to every command.
    let refused = PeerId(2);
    assert_eq!(
        table.send_to(refused, frame(2, 8)),
        Err(SendError::UnknownPeer(refused))
    );
    assert_eq!(
        table.poll_transmit(refused, &mut Vec::new()),
        Transmit::Gone
    );
}

#[test]
fn outbound_peers_join_when_connected() {
    let mut table = Table::new(Config::default());
    let p = table
        .admit("x".into(), Direction::Outbound, t(0), |_| true)
        .unwrap();
    assert_eq!(
        table.send_to(p, frame(0, 8)),
        Err(SendError::NotConnected(p))
    );
    assert_eq!(table.broadcast(frame(0, 8)).unwrap().outcomes, []);
    assert_eq!(table.poll_transmit(p, &mut Vec::new()), Transmit::Idle);
    assert!(events(&mut table).is_empty());
    assert!(table.connected(p, t(5)));
    assert!(!table.connected(p, t(5)), "only once");
    assert!(matches!(&events(&mut table)[..], [Event::PeerJoined(i)] if i.state == PeerState::Up));

    let q = table
        .admit("y".into(), Direction::Outbound, t(0), |_| true)
        .unwrap();
    assert!(table.connect_failed(q));
    assert!(!table.connect_failed(p), "p is up, not connecting");
    assert_eq!(
        events(&mut table),
        [Event::ConnectFailed {
            peer: q,
            addr: "y".into()
        }]
    );

    // Shut down while connecting: the late connect is abandoned.
    let r = table
        .admit("z".into(), Direction::Outbound, t(0), |_| true)
        .unwrap();
    let _ = table.begin_shutdown();
    assert!(!table.connected(r, t(9)));
    assert!(table.peer(r).is_none());
    assert!(events(&mut table).contains(&Event::ConnectFailed {
        peer: r,
        addr: "z".into()
    }));
    assert_eq!(table.stats().connect_failed, 2);
}

#[test]
fn broadcast_is_encoded_once_and_shared() {
    let mut table = Table::new(Config::default());
    let peers: Vec<PeerId> = (0..5)
        .map(|i| inbound(&mut table, &format!("p{i}")))
        .collect();
    let f = Bytes::from(vec![42u8; 10_000]);
    let report = table.broadcast(f.clone()).unwrap();
    assert_eq!(report.queued, 5);
    assert_eq!(
        report.outcomes.iter().map(|o| o.0).collect::<Vec<_>>(),
        peers
    );
    let except = table.broadcast_except(f.clone(), peers[2]).unwrap();
    assert_eq!(except.queued, 4);
    assert!(except.outcomes.iter().all(|(id, _)| *id != peers[2]));
    for &p in &peers {
        let (out, end) = drain(&mut table, p);
        assert_eq!(end, Transmit::Idle);
        let expected = if p == peers[2] { 1 } else { 2 };
        assert_eq!(out.len(), expected);
        for b in out {
            assert_eq!(b.as_ptr(), f.as_ptr(), "copied instead of shared");
        }
    }
    assert_eq!(table.stats().broadcasts, 2);
}

#[test]
fn a_slow_peer_under_drop_newest_loses_only_new_messages_and_slows_nobody() {
    let mut table = Table::new(config(3, FullPolicy::DropNewest));
    let fast = inbound(&mut table, "fast");
    let slow = inbound(&mut table, "slow");
    let _ = events(&mut table);
    for n in 0..10 {
        let report = table.broadcast(frame(n, 8)).unwrap();
        // The fast peer's writer keeps up.
        let (out, _) = drain(&mut table, fast);
        assert_eq!(out.iter().map(num).collect::<Vec<_>>(), [n]);
        if n < 3 {
            assert_eq!(report.queued, 2);
        } else {
            assert_eq!((report.queued, report.dropped), (1, 1));
            assert_eq!(report.outcomes[1], (slow, Ok(Sent::DroppedNewest)));
        }
    }
    // Drops are counted and reported in one merged event.
    assert_eq!(
        events(&mut table),
        [Event::MessagesDropped {
            peer: slow,
            count: 7,
            policy: FullPolicy::DropNewest
        }]
    );
    let (out, _) = drain(&mut table, slow);
    assert_eq!(out.iter().map(num).collect::<Vec<_>>(), [0, 1, 2]);
    let stats = table.peer_stats(slow).unwrap();
    assert_eq!(stats.queue.dropped_newest, 7);
    assert_eq!(table.stats().messages_dropped, 7);
}

#[test]
fn drop_oldest_keeps_the_latest() {
    let mut table = Table::new(config(3, FullPolicy::DropOldest));
    let p = inbound(&mut table, "p");
    for n in 0..10 {
        let sent = table.send_to(p, frame(n, 8)).unwrap();
        assert!(sent.is_queued());
    }
    let (out, _) = drain(&mut table, p);
    assert_eq!(out.iter().map(num).collect::<Vec<_>>(), [7, 8, 9]);
    assert_eq!(table.peer_stats(p).unwrap().queue.dropped_oldest, 7);
}

#[test]
fn reject_returns_an_error_to_the_sender() {
    let mut table = Table::new(config(2, FullPolicy::Reject));
    let p = inbound(&mut table, "p");
    let q = inbound(&mut table, "q");
    assert_eq!(table.send_to(p, frame(0, 8)), Ok(Sent::Queued));
    assert_eq!(table.send_to(p, frame(1, 8)), Ok(Sent::Queued));
    assert_eq!(
        table.send_to(p, frame(2, 8)),
        Err(SendError::QueueFull {
            peer: p,
            messages: 2,
            bytes: 16
        })
    );
    let report = table.broadcast(frame(3, 8)).unwrap();
    assert_eq!((report.queued, report.rejected), (1, 1));
    assert_eq!(report.outcomes[1], (q, Ok(Sent::Queued)));
    let (out, _) = drain(&mut table, p);
    assert_eq!(out.iter().map(num).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn disconnect_policy_drops_the_slow_peer() {
    let mut table = Table::new(config(2, FullPolicy::Disconnect));
    let p = inbound(&mut table, "p");
    let other = inbound(&mut table, "other");
    let _ = events(&mut table);
    let _ = table.send_to(p, frame(0, 8)).unwrap();
    let _ = table.send_to(p, frame(1, 8)).unwrap();
    assert_eq!(table.send_to(p, frame(2, 8)), Ok(Sent::Disconnected));
    assert_eq!(table.peer(p).unwrap().state, PeerState::Closing);
    assert_eq!(
        table.poll_close(),
        Some(CloseRequest {
            peer: p,
            flush: false
        })
    );
    assert_eq!(table.poll_close(), None);
    assert_eq!(table.send_to(p, frame(3, 8)), Err(SendError::Closing(p)));
    let report = table.broadcast(frame(4, 8)).unwrap();
    assert_eq!(report.outcomes, [(other, Ok(Sent::Queued))]);
    // Aborted: nothing more is written, the writer closes at once.
    assert_eq!(drain(&mut table, p), (vec![], Transmit::Finish));
    let info = table.remove(p, LeaveReason::Transport).unwrap();
    assert_eq!(info.id, p);
    let ev = events(&mut table);
    assert!(
        matches!(&ev[..], [Event::PeerLeft { info, reason: LeaveReason::SlowPeer, unsent: 2 }] if info.id == p),
        "{ev:?}"
    );
    assert_eq!(table.stats().slow_disconnects, 1);
    assert_eq!(table.len(), 1);
}

#[test]
fn a_graceful_close_writes_what_is_queued_first() {
    let mut table = Table::new(Config::default());
    let p = inbound(&mut table, "p");
    let _ = events(&mut table);
    for n in 0..3 {
        let _ = table.send_to(p, frame(n, 8)).unwrap();
    }
    assert!(table.close(p, LeaveReason::Closed, true));
    // A later reason does not replace the first.
    assert!(table.close(p, LeaveReason::PeerClosed, true));
    assert_eq!(
        table.poll_close(),
        Some(CloseRequest {
            peer: p,
            flush: true
        })
    );
    assert_eq!(table.poll_close(), None, "reported once");
    let (out, end) = drain(&mut table, p);
    assert_eq!(out.iter().map(num).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(end, Transmit::Finish);
    let _ = table.remove(p, LeaveReason::Transport);
    assert!(matches!(
        &events(&mut table)[..],
        [Event::PeerLeft {
            reason: LeaveReason::Closed,
            unsent: 0,
            ..
        }]
    ));
    assert!(!table.close(p, LeaveReason::Closed, true));
    assert!(table.remove(p, LeaveReason::Closed).is_none());
}

#[test]
fn removal_without_close_counts_the_unsent() {
    let mut table = Table::new(Config::default());
    let p = inbound(&mut table, "p");
    let _ = events(&mut table);
    let _ = table.send_to(p, frame(0, 8)).unwrap();
    let _ = table.send_to(p, frame(1, 8)).unwrap();
    let _ = table.remove(p, LeaveReason::PeerClosed);
    assert!(matches!(
        &events(&mut table)[..],
        [Event::PeerLeft {
            reason: LeaveReason::PeerClosed,
            unsent: 2,
            ..
        }]
    ));
}

#[test]
fn frames_are_counted_and_malformed_ones_can_disconnect() {
    for disconnect in [false, true] {
        let mut table = Table::new(Config {
            disconnect_on_malformed: disconnect,
            ..Config::default()
        });
        let p = inbound(&mut table, "p");
        for r in [Received::Handled, Received::Unknown, Received::Empty] {
            assert_eq!(table.handle_frame(p, t(10), r), Verdict::Continue);
        }
        assert_eq!(table.peer(p).unwrap().last_seen, t(10));
        // Time going backwards does not move last_seen back.
        let v = table.handle_frame(p, t(5), Received::Malformed);
        assert_eq!(table.peer(p).unwrap().last_seen, t(10));
        let s = table.peer_stats(p).unwrap();
        assert_eq!(
            (s.frames_received, s.unknown, s.empty, s.malformed),
            (4, 1, 1, 1)
        );
        if disconnect {
            assert_eq!(v, Verdict::Stop);
            assert_eq!(table.peer(p).unwrap().state, PeerState::Closing);
            let _ = table.remove(p, LeaveReason::Transport);
            assert!(events(&mut table).iter().any(|e| matches!(
                e,
                Event::PeerLeft {
                    reason: LeaveReason::Malformed,
                    ..
                }
            )));
        } else {
            assert_eq!(v, Verdict::Continue);
        }
    }
    let mut table = Table::new(Config::default());
    assert_eq!(
        table.handle_frame(PeerId(9), t(0), Received::Handled),
        Verdict::Stop
    );
}

#[test]
fn idle_peers_time_out_in_simulated_time() {
    let mut table = Table::new(Config {
        idle_timeout: Some(Duration::from_secs(10)),
        ..Config::default()
    });
    assert_eq!(table.poll_timeout(), None);
    let a = inbound(&mut table, "a");
    let b = inbound(&mut table, "b");
    let _ = events(&mut table);
    assert_eq!(table.poll_timeout(), Some(t(10_000)));
    // b talks at 4 s and 12 s; a never does.
    let _ = table.handle_frame(b, t(4_000), Received::Handled);
    assert_eq!(table.handle_timeout(t(9_999)), 0);
    let _ = table.send_to(a, frame(0, 8)).unwrap();
    assert_eq!(table.handle_timeout(t(10_000)), 1);
    assert_eq!(table.peer(a).unwrap().state, PeerState::Closing);
    assert_eq!(table.poll_timeout(), Some(t(14_000)));
    let _ = table.handle_frame(b, t(12_000), Received::Handled);
    assert_eq!(table.poll_timeout(), Some(t(22_000)));
    assert_eq!(drain(&mut table, a).1, Transmit::Finish);
    let _ = table.remove(a, LeaveReason::Transport);
    assert!(matches!(
        &events(&mut table)[..],
        [Event::PeerLeft { reason: LeaveReason::IdleTimeout, unsent: 1, info }] if info.id == a
    ));
    assert_eq!(table.handle_timeout(t(21_000)), 0);
    assert_eq!(table.handle_timeout(t(22_000)), 1);

    // Without a timeout configured nothing ever expires.
    let mut table = Table::new(Config::default());
    let _ = inbound(&mut table, "x");
    assert_eq!(table.poll_timeout(), None);
    assert_eq!(table.handle_timeout(Instant::from_micros(u64::MAX)), 0);
}

#[test]
fn shutdown_flushes_everyone_and_refuses_newcomers() {
    let mut table = Table::new(Config::default());
    let a = inbound(&mut table, "a");
    let b = inbound(&mut table, "b");
    let _ = table.send_to(a, frame(7, 8)).unwrap();
    assert_eq!(table.begin_shutdown(), [a, b]);
    assert!(table.is_shutting_down());
    assert_eq!(
        table.admit("c".into(), Direction::Inbound, t(0), |_| true),
        Err(RefuseReason::ShuttingDown)
    );
    let (out, end) = drain(&mut table, a);
    assert_eq!((out.len(), end), (1, Transmit::Finish));
    assert_eq!(drain(&mut table, b).1, Transmit::Finish);
    let _ = table.remove(a, LeaveReason::Transport);
    let _ = table.remove(b, LeaveReason::Transport);
    let left: Vec<LeaveReason> = events(&mut table)
        .into_iter()
        .filter_map(|e| match e {
            Event::PeerLeft { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(left, [LeaveReason::Shutdown, LeaveReason::Shutdown]);
    assert!(table.is_empty());
}

#[test]
fn too_large_frames_are_refused_everywhere_without_side_effects() {
    let mut table = Table::new(Config {
        queue: QueueLimits {
            max_bytes: 100,
            ..QueueLimits::default()
        },
        ..Config::default()
    });
    let p = inbound(&mut table, "p");
    let big = frame(0, 101);
    assert_eq!(
        table.broadcast(big.clone()),
        Err(TooLarge { len: 101, max: 100 })
    );
    assert_eq!(
        table.send_to(p, big),
        Err(SendError::TooLarge(TooLarge { len: 101, max: 100 }))
    );
    assert_eq!(table.peer_stats(p).unwrap().queued, 0);
    assert_eq!(table.stats().broadcasts, 0);
}

#[test]
fn undelivered_events_are_bounded() {
    let mut table = Table::new(Config {
        max_events: 3,
        ..Config::default()
    });
    for i in 0..5 {
        let _ = table.admit(format!("{i}"), Direction::Inbound, t(0), |_| false);
    }
    let ev = events(&mut table);
    assert_eq!(ev.len(), 3);
    assert!(matches!(&ev[0], Event::PeerRefused { addr, .. } if addr == "2"));
    assert_eq!(table.stats().events_lost, 2);
}

#[test]
fn transmit_batches_are_bounded() {
    let mut table = Table::new(Config::default()).with_transmit_batch(2, 1000);
    let p = inbound(&mut table, "p");
    for n in 0..5 {
        let _ = table.send_to(p, frame(n, 8)).unwrap();
    }
    let mut out = Vec::new();
    assert_eq!(table.poll_transmit(p, &mut out), Transmit::Frames(2));
    assert_eq!(table.poll_transmit(p, &mut out), Transmit::Frames(2));
    assert_eq!(table.poll_transmit(p, &mut out), Transmit::Frames(1));
    assert_eq!(table.poll_transmit(p, &mut out), Transmit::Idle);
    assert_eq!(out.iter().map(num).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
}

#[cfg(feature = "json")]
#[test]
#[allow(clippy::needless_range_loop)] // i and j index several tables at once
fn a_simulated_mesh_delivers_each_broadcast_exactly_once() {
    use serde_json::Value;

    // Five nodes, each with a table holding the other four; the "network" moves the
    // frames a writer hands out into the receiving node's router, in order.
    const N: usize = 5;
    let mut tables: Vec<PeerTable<usize>> =
        (0..N).map(|_| PeerTable::new(Config::default())).collect();
    // ids[i][j]: node i's id for node j.
    let mut ids = vec![vec![None; N]; N];
    for i in 0..N {
        for j in 0..N {
            if i != j {
                let dir = if i < j {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                let id = tables[i].admit(j, dir, t(0), |_| true).unwrap();
                if dir == Direction::Outbound {
                    assert!(tables[i].connected(id, t(0)));
                }
                ids[i][j] = Some(id);
            }
        }
    }
    let mut router: Router<&str> = Router::new();
    router.add("hello", "hello").unwrap();
    for (i, table) in tables.iter_mut().enumerate() {
        let f = encode_frame("hello", &i, DEFAULT_MAX_FRAME_LEN).unwrap();
        assert_eq!(table.broadcast(f).unwrap().queued, N - 1);
    }
    let mut got = vec![vec![0u32; N]; N];
    let mut lp = crate::framing::LengthPrefixed::new();
    for i in 0..N {
        for j in 0..N {
            let Some(id) = ids[i][j] else { continue };
            let mut out = Vec::new();
            while let Transmit::Frames(_) = tables[i].poll_transmit(id, &mut out) {}
            for f in out {
                let crate::framing::Decode::Frame { payload, .. } =
                    crate::framing::Framing::decode(&mut lp, &f).unwrap()
                else {
                    panic!("not one frame");
                };
                let d = router.dispatch(&f[payload]);
                let received = d.received();
                let Dispatch::Message {
                    msg_type,
                    data,
                    route,
                } = d
                else {
                    panic!("not a message");
                };
                assert_eq!(msg_type, Value::from("hello"));
                assert_eq!(route.handlers(), ["hello"]);
                let from = usize::try_from(data.as_u64().unwrap()).unwrap();
                assert_eq!(from, i);
                let at = ids[j][i].unwrap();
                assert_eq!(
                    tables[j].handle_frame(at, t(1), received),
                    Verdict::Continue
                );
                got[j][from] += 1;
            }
        }
    }
    for (j, row) in got.iter().enumerate() {
        for (i, &n) in row.iter().enumerate() {
            assert_eq!(n, u32::from(i != j), "node {j} from {i}");
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Send(usize, usize),
    Broadcast(usize),
    Transmit(usize),
    Close(usize, bool),
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..4, 4usize..60).prop_map(|(p, l)| Op::Send(p, l)),
        3 => (4usize..60).prop_map(Op::Broadcast),
        4 => (0usize..4).prop_map(Op::Transmit),
        1 => (0usize..4, any::<bool>()).prop_map(|(p, f)| Op::Close(p, f)),
        1 => (0usize..4).prop_map(Op::Remove),
    ]
}

fn policy() -> impl Strategy<Value = FullPolicy> {
    prop_oneof![
        Just(FullPolicy::DropNewest),
        Just(FullPolicy::DropOldest),
        Just(FullPolicy::Disconnect),
        Just(FullPolicy::Reject),
    ]
}

proptest! {
    /// Whatever is sent, broadcast, written, closed and removed: no queue passes its
    /// bounds, each peer's writer sees its messages in send order, and every message
    /// queued for a peer is accounted for exactly once: written, dropped by policy,
    /// reported unsent in `PeerLeft`, or still queued.
    #[test]
    fn every_queued_message_is_accounted_for(
        max_messages in 1usize..6,
        max_bytes in 60usize..200,
        policy in policy(),
        ops in proptest::collection::vec(op(), 0..150),
    ) {
        let mut table = Table::new(Config {
            queue: QueueLimits { max_messages, max_bytes, policy },
            ..Config::default()
        });
        let ids: Vec<PeerId> = (0..4).map(|i| inbound(&mut table, &format!("{i}"))).collect();
        let mut written = [0u64; 4];
        let mut last = [None::<u32>; 4];
        let mut unsent = [0u64; 4];
        let mut final_stats: [Option<PeerStats>; 4] = [None; 4];
        let mut next = 0u32;
        for op in ops {
            match op {
                Op::Send(p, len) => {
                    let _ = table.send_to(ids[p], frame(next, len));
                    next += 1;
                }
                Op::Broadcast(len) => {
                    let _ = table.broadcast(frame(next, len));
                    next += 1;
                }
                Op::Transmit(p) => {
                    let mut out = Vec::new();
                    let _ = table.poll_transmit(ids[p], &mut out);
                    for f in &out {
                        prop_assert!(last[p].is_none_or(|l| num(f) > l));
                        last[p] = Some(num(f));
                    }
                    written[p] += out.len() as u64;
                }
                Op::Close(p, flush) => {
                    let _ = table.close(ids[p], LeaveReason::Closed, flush);
                }
                Op::Remove(p) => {
                    let stats = table.peer_stats(ids[p]);
                    if table.remove(ids[p], LeaveReason::PeerClosed).is_some() {
                        final_stats[p] = stats;
                    }
                }
            }
            for e in events(&mut table) {
                if let Event::PeerLeft { info, unsent: n, .. } = e {
                    let p = ids.iter().position(|&id| id == info.id).unwrap();
                    unsent[p] = n as u64;
                }
            }
            for (p, &id) in ids.iter().enumerate() {
                let Some(s) = table.peer_stats(id) else { continue };
                prop_assert!(s.queued <= max_messages);
                prop_assert!(s.queued_bytes <= max_bytes);
                prop_assert_eq!(s.queue.popped, written[p]);
                prop_assert_eq!(
                    s.queue.accepted,
                    written[p] + s.queue.dropped_oldest + s.queue.cleared + s.queued as u64
                );
            }
        }
        for p in 0..4 {
            if let Some(s) = final_stats[p] {
                // Removed: what was queued then, plus what an abort discarded before.
                prop_assert_eq!(unsent[p], s.queue.cleared + s.queued as u64);
                prop_assert_eq!(s.queue.accepted, written[p] + s.queue.dropped_oldest + unsent[p]);
            }
        }
    }
}

#[test]
fn a_flushing_close_can_become_an_abort() {
    let mut table = Table::new(Config::default());
    let p = inbound(&mut table, "p");
    let _ = table.send_to(p, frame(0, 8)).unwrap();
    assert!(table.close(p, LeaveReason::Closed, true));
    assert!(table.close(p, LeaveReason::Shutdown, false));
    assert!(table.close(p, LeaveReason::Shutdown, false));
    assert_eq!(
        core::iter::from_fn(|| table.poll_close()).collect::<Vec<_>>(),
        [
            CloseRequest {
                peer: p,
                flush: true
            },
            CloseRequest {
                peer: p,
                flush: false
            }
        ]
    );
    assert_eq!(drain(&mut table, p), (vec![], Transmit::Finish));
    let _ = table.remove(p, LeaveReason::Transport);
    assert!(matches!(
        &events(&mut table)[1..],
        [Event::PeerLeft {
            reason: LeaveReason::Closed,
            unsent: 1,
            ..
        }]
    ));
}
