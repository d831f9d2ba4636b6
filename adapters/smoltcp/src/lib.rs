//! # framewire-smoltcp
//!
//! framewire over smoltcp's TCP sockets, for firmware: `#![no_std]`, no
//! heap, every buffer lent by the application, so the RAM a connection uses
//! is fixed and known at build time (see [RAM per connection](#ram-per-connection)).
//!
//! Two drivers, each the core's no-alloc state machine plus a few bytes of
//! socket bookkeeping; they only move bytes, time and events, every protocol
//! decision is the core's:
//!
//! * [`FramedSocket`]: framed messages over the core's
//!   [`BorrowedFramedStream`](framewire::stream::BorrowedFramedStream), any
//!   [`Framing`](framewire::framing::Framing) (length prefixes, BSON
//!   documents, lines, ...). Frames are borrowed from the receive buffer.
//! * [`PacketSocket`]: cs.packetstream request/response connections over the
//!   core's [`BorrowedConnection`](framewire::packet::BorrowedConnection),
//!   with fixed-capacity tables set by const generics.
//!
//! Neither owns the smoltcp socket (it lives in smoltcp's `SocketSet`): each
//! call that moves bytes borrows it, `poll_socket(sockets.get_mut(handle))`.
//!
//! ## Ring buffers and partial writes
//!
//! smoltcp's `recv`/`send` closures only expose the largest *contiguous*
//! part of the socket's ring buffer. A decoder that parses inside the
//! closure stalls on a frame that straddles the ring's end ([smoltcp issue
//! #797](https://github.com/smoltcp-rs/smoltcp/issues/797)). The drivers
//! never parse in place: `poll_socket` copies each contiguous part into the
//! core's own receive buffer and calls `recv` again, until the socket is
//! empty or the core's buffer is full, so bytes after the wraparound arrive
//! in the same poll and the core sees one contiguous stream. On the way out,
//! `send` is called again for the free space at the ring's front, and the
//! core's queue only advances by what the socket took: when the socket's
//! buffer is full the rest stays queued and goes on the next poll, never
//! lost. [`LinkStats`] counts both kinds of wraparound.
//!
//! ## Time and sleeping
//!
//! The application's smoltcp [`Instant`](smoltcp::time::Instant) is handed
//! to the core as its own clock ([`time::to_core`]; same epoch, microseconds).
//! Each driver reports when it next needs a poll: `poll_at(socket)` /
//! `poll_delay(now, socket)` give the core's next deadline (a packet
//! request's timeout) or "now" when a poll would move bytes, in smoltcp's
//! conventions, so a firmware main loop sleeps for
//! `earliest(iface.poll_delay(now, &sockets), driver.poll_delay(now, socket))`
//! ([`time::earliest`]). A main loop:
//!
//! ```
//! use framewire::framing::LengthPrefixed;
//! use framewire::stream::Event;
//! use framewire_smoltcp::{time::earliest, FramedSocket};
//! use smoltcp::iface::{Config, Interface, SocketSet};
//! use smoltcp::phy::{Loopback, Medium};
//! use smoltcp::socket::tcp;
//! use smoltcp::time::{Duration, Instant};
//! use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};
//!
//! let mut device = Loopback::new(Medium::Ethernet);
//! let mut now = Instant::from_millis(0); // a simulated clock
//! let mut iface = Interface::new(
//!     Config::new(EthernetAddress([2, 0, 0, 0, 0, 1]).into()),
//!     &mut device,
//!     now,
//! );
//! iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
//! let (mut srx, mut stx, mut crx, mut ctx) = ([0u8; 512], [0u8; 512], [0u8; 512], [0u8; 512]);
//! let mut sockets = SocketSet::new(vec![]);
//! let server = sockets.add(tcp::Socket::new(
//!     tcp::SocketBuffer::new(&mut srx[..]),
//!     tcp::SocketBuffer::new(&mut stx[..]),
//! ));
//! let client = sockets.add(tcp::Socket::new(
//!     tcp::SocketBuffer::new(&mut crx[..]),
//!     tcp::SocketBuffer::new(&mut ctx[..]),
//! ));
//! sockets.get_mut::<tcp::Socket>(server).listen(1234).unwrap();
//! let cx = iface.context();
//! let remote = (IpAddress::v4(127, 0, 0, 1), 1234);
//! sockets.get_mut::<tcp::Socket>(client).connect(cx, remote, 65000).unwrap();
//!
//! // The framewire side: 256 bytes each way per connection.
//! let (mut a, mut b, mut c, mut d) = ([0u8; 256], [0u8; 256], [0u8; 256], [0u8; 256]);
//! let mut rx_side = FramedSocket::new(LengthPrefixed::new(), &mut a, &mut b);
//! let mut tx_side = FramedSocket::new(LengthPrefixed::new(), &mut c, &mut d);
//! tx_side.send(b"hello over smoltcp").unwrap();
//! tx_side.close();
//!
//! let mut got = Vec::new();
//! while !rx_side.stream().is_terminal() {
//!     assert!(now < Instant::from_millis(10_000));
//!     iface.poll(now, &mut device, &mut sockets);
//!     tx_side.poll_socket(sockets.get_mut(client)).unwrap();
//!     rx_side.poll_socket(sockets.get_mut(server)).unwrap();
//!     while let Some(event) = rx_side.poll_event().unwrap() {
//!         if let Event::Frame(frame) = event {
//!             got.push(frame.to_vec());
//!         }
//!     }
//!     let delay = earliest(
//!         iface.poll_delay(now, &sockets),
//!         earliest(
//!             tx_side.poll_delay(now, sockets.get(client)),
//!             rx_side.poll_delay(now, sockets.get(server)),
//!         ),
//!     );
//!     // A firmware would sleep (WFI, a timer) for `delay`.
//!     now += delay.unwrap_or(Duration::from_millis(1)).max(Duration::from_millis(1));
//! }
//! assert_eq!(got, [b"hello over smoltcp".to_vec()]);
//! ```
//!
//! `examples/loopback.rs` runs a client and a server, framed and packet
//! streams, the same way.
//!
//! ## Connection ends
//!
//! * Our close: `close()` on the driver; the socket's sending half closes
//!   (FIN) once everything queued is in the socket (for packets: once the
//!   orderly close is complete, as the std driver does).
//! * The peer's FIN is handed to the core, which reports a clean close or a
//!   truncated frame/packet.
//! * A reset, a refused or timed-out connect, or a local `abort` is
//!   [`Error::ConnectionLost`] (with the bytes of ours never delivered),
//!   sticky; what the core already took in is still delivered, and a
//!   packet connection's waiting requests end with `RequestCancelled`.
//!
//! smoltcp 0.12 sends no zero-window probes: if the segment that reopens a
//! zero window is lost, the sender waits forever. On lossy links enable
//! keep-alive on the socket (`set_keep_alive(Some(..))`): the keep-alive's
//! ACK carries the current window. (The tests with smoltcp's
//! `FaultInjector` do this.)
//!
//! ## RAM per connection
//!
//! Everything a connection uses is the driver value, the two buffers lent
//! to it, and smoltcp's socket with its two ring buffers; nothing is
//! allocated, ever. `ram_bytes(rx_len, tx_len)` on each driver computes the
//! first two. Driver values, measured with `core::mem::size_of` (the `ram`
//! test prints them and checks the x86_64 column):
//!
//! | driver | thumbv7em (Cortex-M4F) | x86_64 |
//! |---|---|---|
//! | `FramedSocket<LengthPrefixed>` | 248 B (core stream 176, driver 72) | 328 B (248 + 80) |
//! | `PacketSocket<4, 4>` | 1 256 B (core connection 1 176, driver 80) | 1 400 B (1 312 + 88) |
//! | `PacketSocket<8, 8>` | 1 640 B | 1 848 B |
//! | `PacketSocket<16, 16>` | 2 408 B | 2 744 B |
//! | smoltcp `tcp::Socket` (this crate's features) | 312 B | 392 B |
//!
//! plus the buffers: the driver's `rx` (must hold the largest frame or
//! packet, header included) and `tx` (bounds queued output), and the
//! socket's receive and transmit rings (any size; frames cross them in
//! pieces). For example a length-prefixed echo connection on a Cortex-M4
//! with 1 KiB everywhere: 248 + 1 024 + 1 024 (driver) + 312 + 1 024 +
//! 1 024 (socket) = 4 656 B. The packet connection's tables scale with its
//! const generics as documented on `BorrowedConnection`.
//!
//! ## Limits
//!
//! The core's, unchanged: a frame or packet must fit the driver's receive
//! buffer (checked on its header, before it is buffered), the framing's and
//! [`BorrowedConfig`](framewire::packet::BorrowedConfig)'s length limits,
//! and the packet connection's fixed tables (waiting requests, requests in
//! flight, channels, remembered tags). Output is bounded by the transmit
//! buffer: a send that does not fit fails with `QueueFull`/`NoRoom`, and
//! nothing is queued.

#![no_std]
#![forbid(unsafe_code)]

mod buffers;
mod error;
mod framed;
mod link;
mod packet;
pub mod time;

pub use self::buffers::Buffers;
pub use self::error::{ConnectionLost, Error};
pub use self::framed::FramedSocket;
pub use self::link::{LinkStats, Progress};
pub use self::packet::PacketSocket;
