//! Typed messages carried in frames: the JSON-header application message of
//! the socket tutorial, BSON documents through serde, and socktools' JSON
//! `[msg_type, msg_data]` messages.
//!
//! A message codec works on a frame's payload (a borrowed slice) and encodes
//! into a buffer the caller owns; the framing in [`crate::framing`] decides
//! where a frame starts and ends.

#[cfg(feature = "bson")]
pub mod bson;
pub mod json_header;
#[cfg(feature = "json")]
pub mod socktools;
