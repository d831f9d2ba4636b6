//! Tokio adapter for framewire.
//!
//! The protocol logic lives in the sans-IO core ([`framewire`]); this crate
//! only moves bytes, time and events between it and Tokio's sockets.

#![forbid(unsafe_code)]
