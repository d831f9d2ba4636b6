//! Real TCP interop: the smoltcp adapter on a TAP device talks to framewire
//! servers and clients on the Linux kernel's TCP stack (`framewire_std`),
//! in both directions, framed and packet streams.
//!
//! The test creates a network namespace of its own with a TAP device in it
//! (addresses that exist only inside), re-runs this test binary inside the
//! namespace (`ip netns exec`) in a child role marked by an environment
//! variable, and deletes the namespace afterwards, even on failure. Where
//! namespaces or TAP devices are not permitted (no root, no `ip`), it says
//! so and skips; set `FRAMEWIRE_REQUIRE_NETNS=1` to make that a failure.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use framewire::framing::LengthPrefixed;
use framewire::packet::{BorrowedConfig, BorrowedEvent, PeerCloseReason, SubmitError};
use framewire::stream::{Event, SendError};
use framewire_smoltcp::time::earliest;
use framewire_smoltcp::{FramedSocket, PacketSocket};
use framewire_std::packet::{Builder, PacketConnection, PacketServer, Request};
use framewire_std::server::Server;
use framewire_std::Framed;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

const TEST_NAME: &str = "tap_interop_with_linux_tcp";
/// Marks the child role; its value is the TAP device's name.
const CHILD_ENV: &str = "FRAMEWIRE_SMOLTCP_NETNS_CHILD";
const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const SMOLTCP_IP: [u8; 4] = [10, 77, 0, 2];
const PREFIX: u8 = 24;
/// The whole child run (four scenarios) must end within this.
const CHILD_DEADLINE: StdDuration = StdDuration::from_secs(120);
/// Each scenario must end within this.
const SCENARIO_DEADLINE: StdDuration = StdDuration::from_secs(40);

#[test]
fn tap_interop_with_linux_tcp() {
    if let Ok(tap) = std::env::var(CHILD_ENV) {
        child(&tap);
        return;
    }
    let pid = std::process::id();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let ns = format!("fwsmol-{pid}-{stamp}");
    let tap = format!("fwtap{}", pid % 100_000);
    let Some(_guard) = setup_namespace(&ns, &tap) else {
        return;
    };
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(&exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &tap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child in the namespace");
    // Watchdog: the child must finish in time.
    let started = StdInstant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if started.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            break None;
        }
        thread::sleep(StdDuration::from_millis(50));
    };
    let output = child.wait_with_output().expect("child output");
    println!(
        "---- child in namespace {ns} ----\n{}{}---- end of child ----",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let status = status.expect("the child did not finish within the deadline (killed)");
    assert!(status.success(), "the child failed: {status}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("all four scenarios passed"),
        "the child did not run the scenarios"
    );
}

/// Deletes the namespace (and the TAP device in it) when dropped.
struct NamespaceGuard(String);

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> io::Result<std::process::Output> {
    Command::new("ip").args(args).stdin(Stdio::null()).output()
}

fn skip(why: &str) {
    let msg = format!("SKIPPED {TEST_NAME}: {why}");
    assert!(
        std::env::var_os("FRAMEWIRE_REQUIRE_NETNS").is_none(),
        "{msg} (FRAMEWIRE_REQUIRE_NETNS is set)"
    );
    eprintln!("{msg}");
    println!("{msg}");
}

/// Creates namespace `ns` with loopback up and TAP device `tap` at
/// `KERNEL_IP/24`; `None` (after saying why) where that is not permitted.
fn setup_namespace(ns: &str, tap: &str) -> Option<NamespaceGuard> {
    match ip(&["netns", "add", ns]) {
        Err(e) => {
            skip(&format!("cannot run `ip` (iproute2): {e}"));
            return None;
        }
        Ok(out) if !out.status.success() => {
            skip(&format!(
                "network namespaces are not permitted here (`ip netns add`: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Ok(_) => {}
    }
    let guard = NamespaceGuard(ns.to_owned());
    let addr = format!("{KERNEL_IP}/{PREFIX}");
    let steps: [&[&str]; 4] = [
        &["-n", ns, "link", "set", "lo", "up"],
        &["-n", ns, "tuntap", "add", "dev", tap, "mode", "tap"],
        &["-n", ns, "addr", "add", &addr, "dev", tap],
        &["-n", ns, "link", "set", tap, "up"],
    ];
    for args in steps {
        let out = ip(args).expect("run ip");
        if !out.status.success() {
            skip(&format!(
                "`ip {}` failed: {} (TAP devices not permitted?)",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
    }
    Some(guard)
}

// ----- the child: runs inside the namespace -----

/// smoltcp on the TAP device, with the real clock.
struct Tap {
    device: TunTapInterface,
    iface: Interface,
    sockets: SocketSet<'static>,
}

impl Tap {
    fn new(name: &str) -> Tap {
        let mut device = TunTapInterface::new(name, Medium::Ethernet).expect("open the TAP device");
        let config = Config::new(EthernetAddress([0x02, 0, 0, 0x77, 0, 2]).into());
        let mut iface = Interface::new(config, &mut device, Instant::now());
        iface.update_ip_addrs(|addrs| {
            let [a, b, c, d] = SMOLTCP_IP;
            addrs
                .push(IpCidr::new(IpAddress::v4(a, b, c, d), PREFIX))
                .unwrap();
        });
        Tap {
            device,
            iface,
            sockets: SocketSet::new(Vec::new()),
        }
    }

    fn socket(&mut self, buffer: usize) -> SocketHandle {
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buffer]),
            tcp::SocketBuffer::new(vec![0; buffer]),
        );
        self.sockets.add(socket)
    }

    /// The main loop of a firmware, on a real clock: poll the interface, let
    /// `step` drive the adapter (it returns `Err(())` when done, else the
    /// adapter's own delay), then sleep on the TAP device until the earliest
    /// deadline or a packet.
    fn run(
        &mut self,
        what: &str,
        mut step: impl FnMut(&mut Tap, Instant) -> Result<Option<Duration>, ()>,
    ) {
        let started = StdInstant::now();
        loop {
            assert!(
                started.elapsed() < SCENARIO_DEADLINE,
                "{what}: not finished within {SCENARIO_DEADLINE:?}"
            );
            let now = Instant::now();
            self.iface.poll(now, &mut self.device, &mut self.sockets);
            let Ok(delay) = step(self, now) else { return };
            let delay = earliest(self.iface.poll_delay(now, &self.sockets), delay);
            // Cap the sleep: the kernel-side threads' progress shows up as
            // packets on the TAP, but a bounded wait keeps the deadline check
            // honest.
            let delay = earliest(delay, Some(Duration::from_millis(50)));
            smoltcp::phy::wait(self.device.as_raw_fd(), delay).expect("wait on the TAP");
        }
    }
}

fn sizes() -> Vec<usize> {
    let mut sizes: Vec<usize> = (1..=200).collect();
    sizes.extend([
        1000, 1459, 1460, 1461, 2047, 2048, 2049, 4095, 4096, 4097, 9000, 20_000, 65_535, 65_536,
    ]);
    sizes.extend((1..=50).map(|i| (i * 1_337) % 65_536 + 1));
    sizes
}

fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7) ^ (j >> 8)) as u8)
        .collect()
}

fn reversed(data: &[u8]) -> Vec<u8> {
    data.iter().rev().copied().collect()
}

fn child(tap_name: &str) {
    let mut tap = Tap::new(tap_name);
    framed_smoltcp_client(&mut tap);
    println!("scenario 1 passed: smoltcp framed client -> kernel framewire_std echo server");
    framed_smoltcp_server(&mut tap);
    println!("scenario 2 passed: kernel framewire_std framed client -> smoltcp echo server");
    packet_smoltcp_client(&mut tap);
    println!("scenario 3 passed: smoltcp packet client -> kernel framewire_std PacketServer");
    packet_smoltcp_server(&mut tap);
    println!("scenario 4 passed: kernel framewire_std PacketConnection -> smoltcp packet server");
    println!("all four scenarios passed");
}

const MAX_FRAME: usize = 65_536 + 4;

/// Scenario 1: smoltcp connects to a framewire_std echo server on the
/// kernel's TCP stack, sends frames up to 64 KiB, checks every echo, closes.
fn framed_smoltcp_client(tap: &mut Tap) {
    let server = Server::bind((KERNEL_IP, 0))
        .expect("bind in the namespace")
        .serve(|stream, _| {
            stream
                .set_read_timeout(Some(SCENARIO_DEADLINE))
                .expect("timeout");
            let mut framed = Framed::new(stream, LengthPrefixed::new());
            while let Ok(Some(frame)) = framed.recv() {
                framed.send(&frame).expect("echo");
            }
        })
        .expect("serve");
    let port = server.local_addr().port();
    let handle = tap.socket(4096);
    let cx = tap.iface.context();
    tap.sockets
        .get_mut::<tcp::Socket>(handle)
        .connect(cx, (IpAddress::Ipv4(KERNEL_IP), port), 49_152)
        .expect("connect");

    let sizes = sizes();
    let (mut rx, mut tx) = (vec![0u8; MAX_FRAME], vec![0u8; 2 * MAX_FRAME]);
    let mut framed = FramedSocket::new(LengthPrefixed::new(), &mut rx, &mut tx);
    let (mut sent, mut echoed, mut closed) = (0usize, 0usize, false);
    tap.run("framed smoltcp client", |tap, now| {
        let socket = tap.sockets.get_mut::<tcp::Socket>(handle);
        framed.poll_socket(socket).expect("socket");
        while socket.may_send() && sent < sizes.len() && sent - echoed < 8 {
            match framed.send(&frame(sent, sizes[sent])) {
                Ok(()) => sent += 1,
                Err(SendError::QueueFull { .. }) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        framed.poll_socket(socket).expect("socket");
        while let Some(event) = framed.poll_event().expect("stream") {
            match event {
                Event::Frame(f) => {
                    assert_eq!(f, frame(echoed, sizes[echoed]).as_slice(), "echo {echoed}");
                    echoed += 1;
                }
                Event::Closed => closed = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        if echoed == sizes.len() && !framed.stream().is_send_closed() {
            framed.close();
        }
        framed.poll_socket(socket).expect("socket");
        if closed && framed.send_finished() && !socket.is_open() {
            return Err(());
        }
        Ok(framed.poll_delay(now, socket))
    });
    assert_eq!(echoed, sizes.len());
    server.shutdown();
}

/// Scenario 2: a framewire_std client on the kernel's stack connects to
/// smoltcp, which echoes every frame until the client closes.
fn framed_smoltcp_server(tap: &mut Tap) {
    let handle = tap.socket(4096);
    tap.sockets
        .get_mut::<tcp::Socket>(handle)
        .listen(7001)
        .expect("listen");
    let sizes = sizes();
    let client_sizes = sizes.clone();
    let client = thread::spawn(move || {
        let addr = SocketAddr::from((SMOLTCP_IP, 7001));
        let stream = TcpStream::connect_timeout(&addr, SCENARIO_DEADLINE).expect("connect");
        stream
            .set_read_timeout(Some(SCENARIO_DEADLINE))
            .expect("timeout");
        let mut framed = Framed::new(stream, LengthPrefixed::new());
        for (i, &len) in client_sizes.iter().enumerate() {
            let data = frame(i, len);
            framed.send(&data).expect("send");
            let echo = framed.recv().expect("recv").expect("an echo, not a close");
            assert_eq!(&echo[..], &data[..], "echo {i}");
        }
        // Close our side; the server closes after us.
        framed
            .get_ref()
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        assert_eq!(framed.recv().expect("clean close"), None);
        client_sizes.len()
    });

    let (mut rx, mut tx) = (vec![0u8; MAX_FRAME], vec![0u8; 2 * MAX_FRAME]);
    let mut framed = FramedSocket::new(LengthPrefixed::new(), &mut rx, &mut tx);
    let (mut served, mut closed) = (0usize, false);
    tap.run("framed smoltcp server", |tap, now| {
        let socket = tap.sockets.get_mut::<tcp::Socket>(handle);
        framed.poll_socket(socket).expect("socket");
        // Echo while there is room for the largest frame.
        while framed.stream().max_queued() - framed.stream().queued_len() >= MAX_FRAME {
            match framed.poll_event().expect("stream") {
                Some(Event::Frame(f)) => {
                    let echo = f.to_vec();
                    framed.send(&echo).expect("echo");
                    served += 1;
                }
                Some(Event::Closed) => {
                    closed = true;
                    framed.close();
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => break,
            }
        }
        framed.poll_socket(socket).expect("socket");
        if closed && framed.send_finished() && client.is_finished() {
            return Err(());
        }
        Ok(framed.poll_delay(now, socket))
    });
    assert_eq!(client.join().expect("client thread"), sizes.len());
    assert_eq!(served, sizes.len());
}

const REQUESTS: u64 = 2_000;

fn request_payload(i: u64) -> Vec<u8> {
    let len = if i.is_multiple_of(101) {
        3000
    } else {
        (i % 300) as usize
    };
    frame(i as usize, len)
}

/// Scenario 3: smoltcp's packet connection calls a framewire_std
/// PacketServer on the kernel's stack, then closes in order.
fn packet_smoltcp_client(tap: &mut Tap) {
    let server = PacketServer::serve(
        Server::bind((KERNEL_IP, 0)).expect("bind"),
        Builder::new().handler(|rq: Request| (rq.flags + 1, reversed(&rq.payload))),
    )
    .expect("serve");
    let port = server.local_addr().port();
    let handle = tap.socket(2048);
    let cx = tap.iface.context();
    tap.sockets
        .get_mut::<tcp::Socket>(handle)
        .connect(cx, (IpAddress::Ipv4(KERNEL_IP), port), 49_153)
        .expect("connect");

    let (mut rx, mut tx) = (vec![0u8; 4096], vec![0u8; 4096]);
    let mut conn = PacketSocket::<'_, 32, 1>::new(
        BorrowedConfig {
            accept_requests: false,
            ..BorrowedConfig::default()
        },
        &mut rx,
        &mut tx,
    )
    .expect("config");
    let (mut next, mut answered, mut closed) = (0u64, 0u64, false);
    let mut seen = vec![false; REQUESTS as usize];
    tap.run("packet smoltcp client", |tap, now| {
        let socket = tap.sockets.get_mut::<tcp::Socket>(handle);
        conn.poll_socket(socket, now).expect("socket");
        while socket.may_send() && next < REQUESTS {
            match conn.submit(0, 3, next, &request_payload(next), now, None) {
                Ok(tag) => {
                    assert_eq!(tag, next + 2);
                    next += 1;
                }
                Err(SubmitError::NoRoom { .. } | SubmitError::TooManyPending { .. }) => break,
                Err(e) => panic!("submit: {e}"),
            }
        }
        conn.poll_socket(socket, now).expect("socket");
        while let Some(event) = conn.poll_event() {
            match event {
                BorrowedEvent::ResponseReceived {
                    tag,
                    ok,
                    flags,
                    payload,
                    ..
                } => {
                    // The std server answers on a pool of workers:
                    // responses come in completion order, once each.
                    let i = tag - 2;
                    assert!(i < next && !seen[i as usize], "response to tag {tag}");
                    seen[i as usize] = true;
                    assert_eq!((ok, flags), (true, i + 1), "response {i}");
                    assert_eq!(payload, reversed(&request_payload(i)).as_slice());
                    answered += 1;
                }
                BorrowedEvent::PeerEndedRequests | BorrowedEvent::PeerClosed { .. } => {}
                BorrowedEvent::Closed => closed = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        if answered == REQUESTS {
            conn.close();
        }
        conn.poll_socket(socket, now).expect("socket");
        if closed && conn.send_finished() {
            return Err(());
        }
        Ok(conn.poll_delay(now, socket))
    });
    assert_eq!(answered, REQUESTS);
    assert!(seen.iter().all(|&s| s));
    server.shutdown();
}

/// Scenario 4: a framewire_std PacketConnection on the kernel's stack calls
/// smoltcp's packet connection, pipelined, then closes in order.
fn packet_smoltcp_server(tap: &mut Tap) {
    let handle = tap.socket(2048);
    tap.sockets
        .get_mut::<tcp::Socket>(handle)
        .listen(7002)
        .expect("listen");
    let client = thread::spawn(|| {
        let conn =
            PacketConnection::connect(SocketAddr::from((SMOLTCP_IP, 7002))).expect("connect");
        let mut i = 0;
        while i < REQUESTS {
            let batch: Vec<_> = (i..(i + 64).min(REQUESTS))
                .map(|j| (j, conn.submit(1, j, request_payload(j)).expect("submit")))
                .collect();
            for (j, call) in batch {
                let response = call.wait().expect("response");
                assert!(response.ok, "request {j}");
                assert_eq!(response.flags, j * 2, "flags {j}");
                assert_eq!(&response.payload[..], &reversed(&request_payload(j))[..]);
            }
            i = (i + 64).min(REQUESTS);
        }
        conn.close().expect("orderly close");
        REQUESTS
    });

    let (mut rx, mut tx) = (vec![0u8; 4096], vec![0u8; 4096]);
    let mut conn = PacketSocket::<'_, 1, 64>::new(BorrowedConfig::default(), &mut rx, &mut tx)
        .expect("config");
    let mut owed = std::collections::VecDeque::<(u64, u64, Vec<u8>)>::new();
    let (mut served, mut closed) = (0u64, false);
    tap.run("packet smoltcp server", |tap, now| {
        let socket = tap.sockets.get_mut::<tcp::Socket>(handle);
        conn.poll_socket(socket, now).expect("socket");
        loop {
            while let Some((tag, flags, data)) = owed.front() {
                match conn.respond(0, *tag, *flags, data) {
                    Ok(()) => {
                        owed.pop_front();
                        served += 1;
                    }
                    Err(framewire::packet::RespondError::NoRoom { .. }) => break,
                    Err(e) => panic!("respond: {e}"),
                }
            }
            if !owed.is_empty() {
                break;
            }
            let Some(event) = conn.poll_event() else {
                break;
            };
            match event {
                BorrowedEvent::RequestReceived {
                    channel: 0,
                    tag,
                    rq_type: 1,
                    flags,
                    payload,
                } => owed.push_back((tag, flags * 2, reversed(payload))),
                BorrowedEvent::PeerEndedRequests => {}
                BorrowedEvent::PeerClosed { reason } => {
                    assert_eq!(reason, PeerCloseReason::EofPacket);
                    conn.close();
                }
                BorrowedEvent::Closed => closed = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        conn.poll_socket(socket, now).expect("socket");
        if closed && conn.send_finished() && client.is_finished() {
            return Err(());
        }
        Ok(conn.poll_delay(now, socket))
    });
    assert_eq!(client.join().expect("client thread"), REQUESTS);
    assert_eq!(served, REQUESTS);
}
