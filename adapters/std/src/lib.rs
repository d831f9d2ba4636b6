//! # framewire-std
//!
//! Blocking `std::io` driver for the [`framewire`] sans-IO core.
//!
//! * [`Framed`]: any framing over any `Read + Write` (a `TcpStream`, a
//!   `UnixStream`, an in-memory pipe): [`send`](Framed::send) and
//!   [`recv`](Framed::recv), and with feature `bson`,
//!   [`send_obj`](Framed::send_obj)/[`recv_obj`](Framed::recv_obj) for BSON
//!   documents, py-bson `sendobj`/`recvobj` compatible.
//! * [`server::Server`]: a small multi-client TCP server, one thread per
//!   connection, bounded.
//! * [`packet`]: cs.packetstream connections — blocking calls and submits
//!   from many threads on one connection, a request handler on a bounded
//!   pool, and a multi-client [`packet::PacketServer`].
//!
//! The adapter only moves bytes: every protocol decision is the core's.
//!
//! ```
//! use framewire::framing::LengthPrefixed;
//! use framewire_std::Framed;
//! use std::os::unix::net::UnixStream;
//!
//! let (a, b) = UnixStream::pair()?;
//! let mut client = Framed::new(a, LengthPrefixed::default());
//! let mut server = Framed::new(b, LengthPrefixed::default());
//! client.send(b"hello")?;
//! assert_eq!(server.recv()?.as_deref(), Some(&b"hello"[..]));
//! drop(client);
//! assert_eq!(server.recv()?, None); // clean close between frames
//! # Ok::<(), framewire_std::Error>(())
//! ```

mod error;
mod framed;
pub mod packet;
pub mod server;

pub use self::error::Error;
pub use self::framed::Framed;
