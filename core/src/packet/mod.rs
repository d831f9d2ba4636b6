//! cs.packetstream: tagged requests and responses multiplexed over one byte
//! stream, as a sans-IO state machine.
//!
//! * [`wire`]: the packet format (no allocation): [`wire::Packet`], the
//!   [`wire::EOF`] and [`wire::ERQ`] markers, zero-copy parsing and encoding
//!   into caller buffers.
//! * `Connection` (feature `alloc`): one end of a connection — tags,
//!   request/response matching, failure responses, ERQ/EOF and the orderly
//!   close, timeouts, and limits on everything the peer controls. Configured
//!   by `Config`; reports `Event`s.
//! * [`BorrowedConnection`] (always available, no allocation): the same
//!   state machine with the same rules and the same bytes on the wire, over
//!   caller-owned receive/transmit buffers and fixed-capacity tables sized by
//!   const generics, for firmware without a heap. Configured by
//!   [`BorrowedConfig`]; reports [`BorrowedEvent`]s whose payloads borrow the
//!   receive buffer; its RAM is fixed and documented on the type. A
//!   differential test runs both connections on the same random operations
//!   and compares every byte and event.
//! * [`reason`]: the failure texts of the original, byte for byte.
//! * `pair` (tests, and feature `testing`): two connections joined by
//!   simulated links, for tests and fuzzing.
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use framewire::packet::{Config, Connection, Event};
//! use framewire::time::Instant;
//!
//! let mut client = Connection::new(Config::default()).unwrap();
//! let mut server = Connection::new(Config::default()).unwrap();
//! let now = Instant::ZERO;
//! let tag = client.submit(0, 0, 0, &b"hello"[..], now, None).unwrap();
//! assert_eq!(tag, 2); // channel 0 tags start at 2
//! assert_eq!(client.poll_transmit(), Some(&b"\x08\x02\x02\x01hello"[..]));
//!
//! // Move the bytes (a driver would write them to a socket).
//! let bytes = client.poll_transmit().unwrap().to_vec();
//! client.advance_transmit(bytes.len());
//! assert_eq!(server.handle_input(&bytes), Ok(bytes.len()));
//! let Some(Event::RequestReceived { channel, tag, payload, .. }) = server.poll_event() else {
//!     panic!("expected a request");
//! };
//! server.respond(channel, tag, 0, payload).unwrap();
//! let bytes = server.poll_transmit().unwrap().to_vec();
//! server.advance_transmit(bytes.len());
//! client.handle_input(&bytes).unwrap();
//! assert!(matches!(
//!     client.poll_event(),
//!     Some(Event::ResponseReceived { tag: 2, ok: true, .. })
//! ));
//! # }
//! ```

mod borrowed;
#[cfg(test)]
mod borrowed_tests;
mod config;
#[cfg(feature = "alloc")]
mod connection;
#[cfg(all(test, feature = "alloc"))]
mod diff_tests;
#[cfg(feature = "std")]
mod end;
mod event;
#[cfg(feature = "alloc")]
mod lent;
#[cfg(all(test, feature = "alloc"))]
mod lent_tests;
#[cfg(all(feature = "alloc", any(test, feature = "testing")))]
pub mod pair;
pub mod reason;
#[cfg(feature = "alloc")]
mod receive;
mod rules;
mod tags;
#[cfg(all(test, feature = "alloc"))]
mod tests;
#[cfg(feature = "alloc")]
mod transmit;
#[cfg(feature = "alloc")]
mod window;
pub mod wire;

pub use self::borrowed::{
    BorrowedConfig, BorrowedConnection, BorrowedEvent, CHANNEL_ENTRY_BYTES, INFLIGHT_ENTRY_BYTES,
    MIN_TRANSMIT_BUFFER, PENDING_ENTRY_BYTES, TAG_ENTRY_BYTES, UNKNOWN_RESPONSE_QUEUE,
};
#[cfg(feature = "alloc")]
pub use self::config::{Config, EVENT_OVERHEAD};
pub use self::config::{ConfigError, MIN_MAX_PACKET_LEN};
#[cfg(feature = "alloc")]
pub use self::connection::Connection;
#[cfg(feature = "std")]
pub use self::end::EndCause;
#[cfg(feature = "alloc")]
pub use self::event::Event;
pub use self::event::{
    ChannelError, InputError, PeerCloseReason, ProtocolError, RespondError, State, Stats,
    SubmitError,
};
#[cfg(feature = "alloc")]
pub use self::lent::{Answerer, LentRequest, LentResponse};
#[cfg(feature = "alloc")]
pub use self::transmit::TransmitChunks;
#[cfg(feature = "alloc")]
pub use self::window::TagWindow;
