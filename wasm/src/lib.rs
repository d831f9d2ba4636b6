//! framewire for JavaScript, through wasm-bindgen: the npm package
//! `framewire`.
//!
//! The wasm module exports the core's machinery; the package's JavaScript
//! layer (`wasm/js/`) builds the public API on it:
//!
//! * [`codec::RawCodec`]: every framing of the core by spec string
//!   (`"length:4:be"`, `"bson"`, `"lines"`, `"fixed:16"`, `"json-header"`),
//!   encoding and streaming decode in any chunking;
//! * [`bson`]: JS values ↔ BSON documents through `framewire::message::bson`;
//! * [`packet::PacketCore`]: the cs.packetstream connection state machine,
//!   sans-IO, with time passed in from JavaScript.
//!
//! Errors cross into JavaScript as `Error` objects with a `code` property
//! and the numbers involved ([`error::Failure`]).
//!
//! Everything here also compiles for the host, where the pure parts are
//! unit-tested; the JS-facing functions only run inside wasm.

#![forbid(unsafe_code)]

pub mod bson;
pub mod codec;
pub mod error;
pub mod live;
pub mod opts;
pub mod packet;
