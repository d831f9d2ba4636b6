//! cs.packetstream: tagged requests and responses multiplexed over one byte
//! stream, as a sans-IO state machine.
//!
//! * [`wire`]: the packet format (no allocation): [`wire::Packet`], the
//!   [`wire::EOF`] and [`wire::ERQ`] markers, zero-copy parsing and encoding
//!   into caller buffers.

pub mod wire;
