//! # framewire
//!
//! A sans-IO protocol core for message framing and request/response packet
//! streams over byte streams. It never touches a socket, a clock or a thread:
//! drivers ("adapters") move bytes, time and events between the world and the
//! state machines here.
//!
//! * [`framing`]: the wire formats of the originals (length-prefixed, BSON
//!   documents, delimited lines, fixed size, JSON header), each a [`framing::Framing`].
//! * [`varint`]: cs.binary's `BSUInt`.
//! * [`time`]: the core's own `Instant` and `Duration`; time is always an argument.
//!
//! The crate is `#![no_std]`. The `alloc` feature (default) adds owned buffers
//! and `bytes::Bytes` frames; without it every buffer is the caller's.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
// Tests and the std feature may use std; everything else must import from
// core/alloc explicitly, so a no_std break shows up in every build.
#[cfg(any(feature = "std", test))]
extern crate std;

mod decimal;
pub mod framing;
pub mod message;
#[cfg(feature = "alloc")]
pub mod p2p;
pub mod packet;
pub mod stream;
#[cfg(test)]
mod testutil;
pub mod time;
pub mod varint;
// further modules: (keep one line per module, alphabetical)
