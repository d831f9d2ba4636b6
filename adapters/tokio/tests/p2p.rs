//! The socktools-style P2P node over loopback TCP: meshes, admission, peers leaving,
//! direct sends, slow peers under each queue policy, ticks, shutdown, and the exact
//! bytes a Python socktools peer sends and expects.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use framewire_tokio::p2p::{
    Config, ConnectError, Direction, Error, Event, FullPolicy, LeaveReason, Node, PeerId,
    PeerState, RefuseReason, SendError, Sent, Tick, Value,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::broadcast;

/// Every test runs under this deadline.
const DEADLINE: Duration = Duration::from_secs(60);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("test deadline passed")
}

/// Polls `cond` until it holds (the test deadline bounds it).
async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The next event matching `pred`, skipping others.
async fn next_event(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    loop {
        let event = rx.recv().await.expect("event channel");
        if pred(&event) {
            return event;
        }
    }
}

fn up_peers(node: &Node) -> Vec<PeerId> {
    node.peers()
        .into_iter()
        .filter(|p| p.state == PeerState::Up)
        .map(|p| p.id)
        .collect()
}

async fn listening(config: Config) -> (Node, SocketAddr) {
    let node = Node::new(config);
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    (node, addr)
}

/// Reads one socktools frame: (header + body bytes).
async fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header).await.unwrap();
    let len = u32::from_be_bytes(header) as usize;
    let mut frame = header.to_vec();
    frame.resize(4 + len, 0);
    s.read_exact(&mut frame[4..]).await.unwrap();
    frame
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// The connection was closed without a byte: EOF or a reset.
async fn assert_closed_without_data(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match s.read(&mut buf).await {
        Ok(0) => {}
        Ok(n) => panic!("a refused peer got {n} bytes: {:?}", &buf[..n]),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
            "{e}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_of_five_broadcast_reaches_every_other_node_exactly_once() {
    within(async {
        const N: usize = 5;
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        // counts[k][i]: "hello" messages node k got from node i.
        let counts: Arc<Mutex<Vec<Vec<u32>>>> = Arc::new(Mutex::new(vec![vec![0; N]; N]));
        let dones: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
        for k in 0..N {
            let node = Node::new(Config::default());
            let c = counts.clone();
            node.on_sync("hello", move |_, _, data: Value| {
                let from = usize::try_from(data["from"].as_u64().unwrap()).unwrap();
                c.lock().unwrap()[k][from] += 1;
            })
            .unwrap();
            let d = dones.clone();
            node.on("done", move |_, _, _| {
                let d = d.clone();
                async move {
                    d[k].fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap();
            addrs.push(node.listen("127.0.0.1:0").await.unwrap());
            nodes.push(node);
        }
        for (i, node) in nodes.iter().enumerate() {
            for &addr in &addrs[..i] {
                node.connect_to(addr).await.unwrap();
            }
        }
        for node in &nodes {
            until(|| up_peers(node).len() == N - 1).await;
        }
        for (i, node) in nodes.iter().enumerate() {
            let report = node.broadcast("hello", &json!({"from": i})).unwrap();
            assert_eq!(report.queued, N - 1);
            assert_eq!(report.outcomes.len(), N - 1);
        }
        // Each connection is FIFO: once every "done" is in, any duplicate "hello" would
        // have arrived before it.
        for node in &nodes {
            let _ = node.broadcast("done", &0).unwrap();
        }
        until(|| dones.iter().all(|d| d.load(Ordering::SeqCst) == N - 1)).await;
        let counts = counts.lock().unwrap().clone();
        for (k, row) in counts.iter().enumerate() {
            for (i, &n) in row.iter().enumerate() {
                assert_eq!(
                    n,
                    u32::from(i != k),
                    "node {k} got {n} hellos from node {i}"
                );
            }
        }
        for node in &nodes {
            for p in up_peers(node) {
                let s = node.peer_stats(p).unwrap();
                assert_eq!(s.frames_received, 2);
                assert_eq!(s.queue.dropped_newest, 0);
            }
        }
        for node in &nodes {
            node.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_refused_by_good_peer_gets_nothing_and_is_disconnected() {
    within(async {
        let banned = Arc::new(AtomicU16::new(0));
        let b = banned.clone();
        let config = Config::default()
            .with_good_peer(move |info| info.addr.port() != b.load(Ordering::SeqCst));
        let (node, addr) = listening(config).await;
        let mut events = node.events();

        let friend = Node::new(Config::default());
        let got = Arc::new(AtomicUsize::new(0));
        let g = got.clone();
        friend
            .on_sync("news", move |_, _, _| {
                g.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        friend.connect_to(addr).await.unwrap();
        until(|| up_peers(&node).len() == 1).await;

        // A raw client on a port the predicate refuses.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let local = socket.local_addr().unwrap();
        banned.store(local.port(), Ordering::SeqCst);
        let mut evil = socket.connect(addr).await.unwrap();
        let refused = next_event(&mut events, |e| matches!(e, Event::PeerRefused { .. })).await;
        assert_eq!(
            refused,
            Event::PeerRefused {
                addr: local,
                direction: Direction::Inbound,
                reason: RefuseReason::NotGood
            }
        );
        // It can send, nothing is dispatched; broadcasts skip it; it is closed.
        let _ = evil.write_all(&frame(br#"["news", 1]"#)).await;
        let report = node.broadcast("news", &"for friends").unwrap();
        assert_eq!(report.outcomes.len(), 1);
        assert_closed_without_data(&mut evil).await;
        until(|| got.load(Ordering::SeqCst) == 1).await;
        assert_eq!(up_peers(&node).len(), 1);
        assert_eq!(node.stats().refused, 1);

        // Outbound connections are vetted too: the node will not connect to it either.
        let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target_addr = target.local_addr().unwrap();
        banned.store(target_addr.port(), Ordering::SeqCst);
        match node.connect_to(target_addr).await {
            Err(ConnectError::Refused(RefuseReason::NotGood)) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(node.peers().len(), 1);

        friend.shutdown().await;
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_limit_refuses_the_next_peer() {
    within(async {
        let (node, addr) = listening(Config::default().with_max_peers(1)).await;
        let mut events = node.events();
        let first = TcpStream::connect(addr).await.unwrap();
        until(|| up_peers(&node).len() == 1).await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        let refused = next_event(&mut events, |e| matches!(e, Event::PeerRefused { .. })).await;
        assert!(matches!(
            refused,
            Event::PeerRefused {
                reason: RefuseReason::TooManyPeers { max: 1 },
                ..
            }
        ));
        assert_closed_without_data(&mut second).await;
        // Gone before the shutdown, so the node need not wait for it to close.
        drop(first);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_leaves_is_reported_and_removed_everywhere() {
    within(async {
        let (a, a_addr) = listening(Config::default()).await;
        let (b, b_addr) = listening(Config::default()).await;
        let b_on_a = a.connect_to(b_addr).await.unwrap();
        until(|| up_peers(&b).len() == 1).await;
        let a_on_b = up_peers(&b)[0];

        let c = Node::new(Config::default());
        let mut c_events = c.events();
        c.connect_to(a_addr).await.unwrap();
        c.connect_to(b_addr).await.unwrap();
        until(|| up_peers(&a).len() == 2 && up_peers(&b).len() == 2).await;
        let c_on_a = *up_peers(&a).iter().find(|&&p| p != b_on_a).unwrap();
        let c_on_b = *up_peers(&b).iter().find(|&&p| p != a_on_b).unwrap();

        let mut a_events = a.events();
        let mut b_events = b.events();
        c.shutdown().await;
        for (node, events, gone, stays) in [
            (&a, &mut a_events, c_on_a, b_on_a),
            (&b, &mut b_events, c_on_b, a_on_b),
        ] {
            let left = next_event(events, |e| matches!(e, Event::PeerLeft { .. })).await;
            let Event::PeerLeft {
                info,
                reason,
                unsent,
            } = left
            else {
                unreachable!()
            };
            assert_eq!(info.id, gone);
            assert_eq!(info.direction, Direction::Inbound);
            assert_eq!(reason, LeaveReason::PeerClosed);
            assert_eq!(unsent, 0);
            let ids: Vec<PeerId> = node.peers().iter().map(|p| p.id).collect();
            assert_eq!(ids, [stays]);
            assert!(matches!(
                node.send_to(gone, "hi", &0),
                Err(Error::Send(SendError::UnknownPeer(p))) if p == gone
            ));
        }
        // The node that left reports its own peers as left for shutting down.
        let mut reasons = Vec::new();
        while reasons.len() < 2 {
            if let Event::PeerLeft { reason, .. } =
                next_event(&mut c_events, |e| matches!(e, Event::PeerLeft { .. })).await
            {
                reasons.push(reason);
            }
        }
        assert_eq!(reasons, [LeaveReason::Shutdown, LeaveReason::Shutdown]);
        assert!(c.peers().is_empty());
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_reaches_one_peer_only_and_handlers_reply_through_their_handle() {
    within(async {
        let (hub, hub_addr) = listening(Config::default()).await;
        let acks: Arc<Mutex<Vec<(PeerId, Value)>>> = Arc::default();
        let a = acks.clone();
        hub.on_sync("ack", move |_, peer, data| {
            a.lock().unwrap().push((peer, data));
        })
        .unwrap();

        // Each client records what it got, in order, and acks "direct" (async handler).
        let mut clients = Vec::new();
        let mut logs = Vec::new();
        for _ in 0..2 {
            let client = Node::new(Config::default());
            let log: Arc<Mutex<Vec<String>>> = Arc::default();
            for kind in ["direct", "fence"] {
                let l = log.clone();
                client
                    .on(kind, move |node: Node, peer, data: Value| {
                        let l = l.clone();
                        async move {
                            l.lock().unwrap().push(kind.to_string());
                            if kind == "direct" {
                                node.send_to(peer, "ack", &data).unwrap();
                            }
                        }
                    })
                    .unwrap();
            }
            client.connect_to(hub_addr).await.unwrap();
            clients.push(client);
            logs.push(log);
        }
        until(|| up_peers(&hub).len() == 2).await;
        // One of the two clients, whichever.
        let peers = hub.peers();
        let x = peers[0].id;
        assert_eq!(
            hub.send_to(x, "direct", &json!({"to": "x"})).unwrap(),
            Sent::Queued
        );
        let _ = hub.broadcast("fence", &0).unwrap();
        until(|| {
            logs.iter()
                .all(|l| l.lock().unwrap().last().map(String::as_str) == Some("fence"))
        })
        .await;
        let got: Vec<Vec<String>> = logs.iter().map(|l| l.lock().unwrap().clone()).collect();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [
                vec!["direct".to_string(), "fence".to_string()],
                vec!["fence".to_string()]
            ],
            "{got:?}"
        );
        until(|| !acks.lock().unwrap().is_empty()).await;
        assert_eq!(*acks.lock().unwrap(), [(x, json!({"to": "x"}))]);
        for c in &clients {
            c.shutdown().await;
        }
        hub.shutdown().await;
    })
    .await;
}

/// A raw client that never reads, with a small receive buffer so the kernel holds little.
async fn never_reading_client(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

async fn joined(events: &mut broadcast::Receiver<Event>) -> PeerId {
    match next_event(events, |e| matches!(e, Event::PeerJoined(_))).await {
        Event::PeerJoined(info) => info.id,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_bounds_a_never_reading_peer_and_loses_nothing_it_accepted() {
    within(async {
        const MAX: usize = 100;
        const MAX_BYTES: usize = 4 << 20;
        let config = Config::default()
            .with_queue_policy(FullPolicy::DropNewest)
            .with_queue_bounds(MAX, MAX_BYTES);
        let (node, addr) = listening(config).await;
        let mut events = node.events();
        let mut client = never_reading_client(addr).await;
        let peer = joined(&mut events).await;

        let payload = "x".repeat(16 * 1024);
        let mut sent = 0u64;
        loop {
            let outcome = node.send_to(peer, "blob", &(sent, &payload)).unwrap();
            sent += 1;
            let s = node.peer_stats(peer).unwrap();
            assert!(s.queued <= MAX, "{s:?}");
            assert!(s.queued_bytes <= MAX_BYTES, "{s:?}");
            if outcome == Sent::DroppedNewest && s.queue.dropped_newest >= 50 {
                break;
            }
            assert!(sent < 100_000, "the queue never filled");
            tokio::task::yield_now().await;
        }
        let s = node.peer_stats(peer).unwrap();
        assert_eq!(s.queue.accepted + s.queue.dropped_newest, sent);
        let mut dropped_events = 0;
        while let Ok(e) = events.try_recv() {
            if let Event::MessagesDropped {
                peer: p,
                count,
                policy,
            } = e
            {
                assert_eq!((p, policy), (peer, FullPolicy::DropNewest));
                dropped_events += count;
            }
        }
        assert_eq!(dropped_events, s.queue.dropped_newest);

        // Now read: every accepted message arrives, in order, none twice.
        let mut seqs = Vec::new();
        while (seqs.len() as u64) < s.queue.accepted {
            let f = read_frame(&mut client).await;
            let v: Value = serde_json::from_slice(&f[4..]).unwrap();
            assert_eq!(v[0], "blob");
            seqs.push(v[1][0].as_u64().unwrap());
        }
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "out of order or duplicated"
        );
        assert_eq!(seqs[0], 0);
        let missing = sent - seqs.len() as u64;
        assert_eq!(missing, s.queue.dropped_newest);
        drop(client);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_policy_drops_the_slow_peer() {
    within(async {
        let config = Config::default()
            .with_queue_policy(FullPolicy::Disconnect)
            .with_queue_bounds(10, 1 << 20)
            .with_close_timeout(Duration::from_millis(200));
        let (node, addr) = listening(config).await;
        let mut events = node.events();
        let _client = never_reading_client(addr).await;
        let peer = joined(&mut events).await;
        let payload = "y".repeat(16 * 1024);
        let mut n = 0u32;
        loop {
            match node.send_to(peer, "blob", &payload).unwrap() {
                Sent::Queued => {}
                Sent::Disconnected => break,
                other => panic!("{other:?}"),
            }
            n += 1;
            assert!(n < 100_000, "the queue never filled");
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            node.send_to(peer, "blob", &0),
            Err(Error::Send(
                SendError::Closing(_) | SendError::UnknownPeer(_)
            ))
        ));
        let left = next_event(&mut events, |e| matches!(e, Event::PeerLeft { .. })).await;
        let Event::PeerLeft {
            info,
            reason,
            unsent,
        } = left
        else {
            unreachable!()
        };
        assert_eq!((info.id, reason), (peer, LeaveReason::SlowPeer));
        assert_eq!(unsent, 10, "the full queue was discarded");
        assert!(node.peers().is_empty());
        assert_eq!(node.stats().slow_disconnects, 1);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_policy_returns_queue_full_to_the_sender() {
    within(async {
        let config = Config::default()
            .with_queue_policy(FullPolicy::Reject)
            .with_queue_bounds(10, 1 << 20)
            .with_close_timeout(Duration::from_millis(200));
        let (node, addr) = listening(config).await;
        let mut events = node.events();
        let _client = never_reading_client(addr).await;
        let peer = joined(&mut events).await;
        let payload = "z".repeat(16 * 1024);
        let mut n = 0u32;
        loop {
            match node.send_to(peer, "blob", &payload) {
                Ok(Sent::Queued) => {}
                Err(Error::Send(SendError::QueueFull {
                    peer: p, messages, ..
                })) => {
                    assert_eq!((p, messages), (peer, 10));
                    break;
                }
                other => panic!("{other:?}"),
            }
            n += 1;
            assert!(n < 100_000, "the queue never filled");
            tokio::task::yield_now().await;
        }
        // A broadcast meets the same full queue (once the writer is stuck for good: it
        // may still have been finishing a write above).
        loop {
            let report = node.broadcast("blob", &payload).unwrap();
            assert_eq!(report.outcomes.len(), 1);
            if report.rejected == 1 {
                assert!(matches!(
                    report.outcomes[0],
                    (p, Err(SendError::QueueFull { .. })) if p == peer
                ));
                break;
            }
            assert_eq!(report.queued, 1);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(up_peers(&node), [peer], "still connected");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_fire_repeatedly_on_a_fixed_grid() {
    within(async {
        let node = Node::new(Config::default().with_tick_interval(Duration::from_millis(20)));
        let ticks: Arc<Mutex<Vec<Tick>>> = Arc::default();
        let t = ticks.clone();
        node.on_tick(move |_, tick| t.lock().unwrap().push(tick));
        until(|| ticks.lock().unwrap().len() >= 5).await;
        node.shutdown().await;
        let ticks = ticks.lock().unwrap().clone();
        let period = 20_000;
        for w in ticks.windows(2) {
            assert!(w[1].index > w[0].index);
            assert_eq!(w[1].missed, w[1].index - w[0].index - 1);
            // Deadlines stay on the grid however late each tick ran.
            assert_eq!(
                w[1].deadline.total_micros() - w[0].deadline.total_micros(),
                period * (w[1].index - w[0].index)
            );
        }
        assert!(ticks.iter().all(|t| t.late.total_micros() < period));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_everything_queued_first() {
    within(async {
        let (node, addr) = listening(Config::default()).await;
        let mut events = node.events();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let peer = joined(&mut events).await;
        for i in 0..50 {
            assert!(node.send_to(peer, "n", &i).unwrap().is_queued());
        }
        // The shutdown writes all 50 and its FIN, then waits for ours (or the close
        // timeout): run it while the client reads.
        let shutdown = tokio::spawn({
            let node = node.clone();
            async move { node.shutdown().await }
        });
        for i in 0..50 {
            let f = read_frame(&mut client).await;
            assert_eq!(f, frame(format!("[\"n\", {i}]").as_bytes()));
        }
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        drop(client);
        shutdown.await.unwrap();
        let left = next_event(&mut events, |e| matches!(e, Event::PeerLeft { .. })).await;
        assert!(
            matches!(
                left,
                Event::PeerLeft {
                    reason: LeaveReason::Shutdown,
                    unsent: 0,
                    ..
                }
            ),
            "{left:?}"
        );
        assert!(matches!(
            node.connect_to(addr).await,
            Err(ConnectError::Refused(RefuseReason::ShuttingDown) | ConnectError::Io(_))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_socktools_bytes_are_dispatched_and_answered_byte_for_byte() {
    within(async {
        let node = Node::new(Config::default());
        node.on_sync("ping", |node, peer, data| {
            node.send_to(peer, "pong", &data).unwrap();
        })
        .unwrap();
        node.on_sync(&1, |node, peer, data| {
            node.send_to(peer, &2, &data).unwrap();
        })
        .unwrap();
        node.on_sync("chat", |node, peer, data| {
            node.send_to(peer, "chat", &data).unwrap();
        })
        .unwrap();
        let addr = node.listen("127.0.0.1:0").await.unwrap();
        let mut events = node.events();
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.set_nodelay(true).unwrap();
        let peer = joined(&mut events).await;

        // struct.pack('>I', 11) + b'["ping", 1]', the header split across two writes.
        let ping = b"\x00\x00\x00\x0b[\"ping\", 1]";
        client.write_all(&ping[..2]).await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.write_all(&ping[2..]).await.unwrap();
        assert_eq!(read_frame(&mut client).await, b"\x00\x00\x00\x0b[\"pong\", 1]");

        // WIRE.md §3 vectors: json.dumps([1, {"text": "hi", "n": [1, 2.5, null]}]) and
        // json.dumps(["chat", "hé"]); the replies keep Python's key order, float repr and
        // \u escapes.
        client
            .write_all(&unhex(
                "00000028 5b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d",
            ))
            .await
            .unwrap();
        assert_eq!(
            read_frame(&mut client).await,
            frame(br#"[2, {"text": "hi", "n": [1, 2.5, null]}]"#)
        );
        let chat = unhex("00000013 5b2263686174222c2022685c7530306539225d");
        client.write_all(&chat).await.unwrap();
        assert_eq!(read_frame(&mut client).await, chat);

        // What socktools drops without a word: an unknown type, an empty frame, a
        // malformed message. The connection carries on.
        let mut junk = frame(br#"["nope", 0]"#);
        junk.extend_from_slice(&frame(b""));
        junk.extend_from_slice(&frame(b"[1"));
        junk.extend_from_slice(ping);
        client.write_all(&junk).await.unwrap();
        assert_eq!(read_frame(&mut client).await, b"\x00\x00\x00\x0b[\"pong\", 1]");
        let s = node.peer_stats(peer).unwrap();
        assert_eq!((s.unknown, s.empty, s.malformed), (1, 1, 1));
        assert_eq!(s.frames_received, 7);

        // A header announcing more than max_frame_len: disconnected before the body.
        client.write_all(b"\xff\xff\xff\xff").await.unwrap();
        let left = next_event(&mut events, |e| matches!(e, Event::PeerLeft { .. })).await;
        assert!(
            matches!(left, Event::PeerLeft { reason: LeaveReason::Protocol(_), .. }),
            "{left:?}"
        );
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_types_reach_the_default_handler_and_panics_are_contained() {
    within(async {
        let node = Node::new(Config::default());
        let seen: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let s = seen.clone();
        node.on_unknown(move |_, _, msg_type, data| {
            s.lock().unwrap().insert(msg_type.to_string(), data);
        });
        node.on_sync("boom", |_, _, _| panic!("handler bug"))
            .unwrap();
        let addr = node.listen("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut bytes = frame(br#"["boom", 0]"#);
        bytes.extend_from_slice(&frame(br#"[[1, 2], {"k": "v"}]"#));
        client.write_all(&bytes).await.unwrap();
        until(|| !seen.lock().unwrap().is_empty()).await;
        assert_eq!(seen.lock().unwrap()["[1,2]"], json!({"k": "v"}));
        assert_eq!(
            up_peers(&node).len(),
            1,
            "a panicking handler does not drop the peer"
        );
        drop(client);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peers_time_out_and_malformed_ones_can_be_dropped() {
    within(async {
        let config = Config::default().with_idle_timeout(Some(Duration::from_millis(100)));
        let (node, addr) = listening(config).await;
        let mut events = node.events();

        let mut silent = TcpStream::connect(addr).await.unwrap();
        let quiet = joined(&mut events).await;
        let left = next_event(&mut events, |e| matches!(e, Event::PeerLeft { .. })).await;
        assert!(
            matches!(&left, Event::PeerLeft { info, reason: LeaveReason::IdleTimeout, .. } if info.id == quiet),
            "{left:?}"
        );
        let mut rest = Vec::new();
        let _ = silent.read_to_end(&mut rest).await;
        assert!(rest.is_empty());

        assert!(node.peers().is_empty());
        node.shutdown().await;

        // No idle timeout here: only the malformed message can end the peer.
        let config = Config::default().with_disconnect_on_malformed(true);
        let (node, addr) = listening(config).await;
        let mut events = node.events();
        let mut rude = TcpStream::connect(addr).await.unwrap();
        let id = joined(&mut events).await;
        rude.write_all(&frame(b"not json")).await.unwrap();
        // The node closes its side; it leaves once we close ours.
        let mut rest = Vec::new();
        rude.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        drop(rude);
        let left = next_event(&mut events, |e| matches!(e, Event::PeerLeft { .. })).await;
        assert!(
            matches!(&left, Event::PeerLeft { info, reason: LeaveReason::Malformed, .. } if info.id == id),
            "{left:?}"
        );
        assert!(node.peers().is_empty());
        node.shutdown().await;
    })
    .await;
}
