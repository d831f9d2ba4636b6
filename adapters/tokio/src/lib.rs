//! Tokio adapter for framewire.
//!
//! The protocol logic lives in the sans-IO core ([`framewire`]); this crate
//! only moves bytes, time and events between it and Tokio's sockets.
//!
//! * [`codec`]: `tokio_util::codec` decoders/encoders for every core framing
//!   (`Framed<TcpStream, FrameCodec<_>>`), a zero-copy vectored
//!   [`FrameWriter`](codec::FrameWriter), BSON objects (feature `bson`).
//! * [`packet`]: async cs.packetstream connections (many calls in flight,
//!   async handlers, back-pressure, timeouts) and a server with bounded
//!   concurrency and graceful shutdown.
//! * [`gateway`]: a WebSocket-to-TCP gateway (raw or one frame per message).
//! * [`p2p`]: a socktools-style P2P node (listen + connect, handlers by message type,
//!   send/broadcast through bounded per-peer queues, tick).

#![forbid(unsafe_code)]

pub mod codec;
pub mod gateway;
pub mod p2p;
pub mod packet;
