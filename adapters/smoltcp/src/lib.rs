//! framewire over smoltcp's TCP sockets, with no heap.
//!
//! RAM_TABLE_PLACEHOLDER

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
