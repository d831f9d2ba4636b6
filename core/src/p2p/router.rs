//! socktools' messages on a P2P connection: framing them once for every peer, decoding
//! received frames and routing them to handlers by message type (feature `json`).
//!
//! A socktools message is `uint32be(len) + json.dumps([msg_type, msg_data])`
//! (WIRE.md §3; [`crate::message::socktools`] writes the JSON byte for byte as Python
//! does). [`encode_frame`] produces the whole frame as one [`Bytes`], so a broadcast is
//! encoded once and every peer's queue shares it.
//!
//! # What socktools does with a received message, and what the router does
//!
//! | received | socktools 0.2 | [`Router::dispatch`] |
//! |---|---|---|
//! | zero-length frame | dropped silently | [`Dispatch::Empty`] |
//! | not JSON, or not a list of two | `parse_msg` raises; logged, dropped, the peer stays | [`Dispatch::Malformed`] with the typed error |
//! | a type with handlers | every handler runs, each in its own greenlet | [`Route::Handlers`]: all of them, in the order added |
//! | a type without handlers | dropped silently | [`Route::Default`] if one is set, else [`Route::Unknown`] |
//!
//! Types are matched by their JSON text (`json.dumps(msg_type)`): `"ping"`, `1` and
//! `[1, 2]` are all valid types. Python's dict lookup would also treat `1`, `1.0` and
//! `true` as the same key; here they are three different types.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::table::Received;
use crate::message::socktools::{self, JsonError};

/// Default limit on a socktools frame, header included: 1 MiB. socktools itself has no
/// limit (WIRE.md: it truncates large messages instead).
pub const DEFAULT_MAX_FRAME_LEN: usize = 1024 * 1024;

/// Length of socktools' frame header (`struct.pack('>I', len)`).
pub const HEADER_LEN: usize = 4;

/// Why a message could not be framed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeFrameError {
    /// The type or data could not be written as JSON.
    Json(JsonError),
    /// The frame would be longer than the limit (or than a `u32` length can say).
    TooLong {
        /// Its length, header included.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for EncodeFrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeFrameError::Json(e) => fmt::Display::fmt(e, f),
            EncodeFrameError::TooLong { len, max } => {
                write!(f, "frame of {len} bytes is over the limit of {max}")
            }
        }
    }
}

impl core::error::Error for EncodeFrameError {}

impl From<JsonError> for EncodeFrameError {
    fn from(e: JsonError) -> Self {
        EncodeFrameError::Json(e)
    }
}

/// Frames one socktools message: `uint32be(len) + json.dumps([msg_type, data])`, byte
/// for byte what Python's socktools sends, in one buffer ready to be shared.
///
/// `max_frame_len` counts the header; it is also capped at `4 + u32::MAX`.
///
/// ```
/// use framewire::p2p::{encode_frame, DEFAULT_MAX_FRAME_LEN};
/// let frame = encode_frame("ping", &1, DEFAULT_MAX_FRAME_LEN)?;
/// assert_eq!(&frame[..], b"\x00\x00\x00\x0b[\"ping\", 1]");
/// # Ok::<(), framewire::p2p::EncodeFrameError>(())
/// ```
pub fn encode_frame<T, D>(
    msg_type: &T,
    data: &D,
    max_frame_len: usize,
) -> Result<Bytes, EncodeFrameError>
where
    T: Serialize + ?Sized,
    D: Serialize + ?Sized,
{
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[0; HEADER_LEN]);
    let body = socktools::encode_into(msg_type, data, &mut out)?;
    let max = max_frame_len.min(HEADER_LEN + u32::MAX as usize);
    if out.len() > max {
        return Err(EncodeFrameError::TooLong {
            len: out.len(),
            max,
        });
    }
    // `body <= u32::MAX` since the frame is within the capped limit.
    out[..HEADER_LEN].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(Bytes::from(out))
}

/// The key a message type is routed by: its JSON text, `json.dumps(msg_type)`.
pub fn type_key<T: Serialize + ?Sized>(msg_type: &T) -> Result<Vec<u8>, JsonError> {
    socktools::to_vec(msg_type)
}

/// Where a message type leads.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a, H> {
    /// Its handlers, in the order they were added (at least one).
    Handlers(&'a [H]),
    /// No handler for the type; the default handler.
    Default(&'a H),
    /// No handler for the type and no default: dropped, as socktools does.
    Unknown,
}

impl<H> Clone for Route<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H> Copy for Route<'_, H> {}

impl<H> Route<'_, H> {
    /// The handlers to call (none for [`Route::Unknown`]).
    pub fn handlers(&self) -> &[H] {
        match self {
            Route::Handlers(h) => h,
            Route::Default(h) => core::slice::from_ref(*h),
            Route::Unknown => &[],
        }
    }
}

/// What a received frame is and where it goes.
#[derive(Debug, PartialEq)]
pub enum Dispatch<'a, H> {
    /// A message.
    Message {
        /// Its type.
        msg_type: Value,
        /// Its data.
        data: Value,
        /// Its handlers.
        route: Route<'a, H>,
    },
    /// A zero-length frame (dropped by socktools).
    Empty,
    /// Not a `[type, data]` JSON pair.
    Malformed(JsonError),
}

impl<H> Dispatch<'_, H> {
    /// The summary [`PeerTable::handle_frame`](super::PeerTable::handle_frame) wants.
    pub fn received(&self) -> Received {
        match self {
            Dispatch::Message {
                route: Route::Unknown,
                ..
            } => Received::Unknown,
            Dispatch::Message { .. } => Received::Handled,
            Dispatch::Empty => Received::Empty,
            Dispatch::Malformed(_) => Received::Malformed,
        }
    }
}

/// Message types to handlers (socktools' `handlers` dict of lists); `H` is whatever the
/// driver calls: an id, a boxed closure.
///
/// ```
/// use framewire::p2p::{Dispatch, Route, Router};
///
/// let mut router = Router::new();
/// router.add("ping", 1u32)?;
/// router.add("ping", 2)?;
/// router.add(&7, 3)?;
/// match router.dispatch(br#"["ping", {"n": 1}]"#) {
///     Dispatch::Message { msg_type, data, route } => {
///         assert_eq!(msg_type, "ping");
///         assert_eq!(data["n"], 1);
///         assert_eq!(route, Route::Handlers(&[1, 2]));
///     }
///     other => panic!("{other:?}"),
/// }
/// assert!(matches!(router.dispatch(b"[7, null]"), Dispatch::Message { route: Route::Handlers(&[3]), .. }));
/// assert!(matches!(router.dispatch(b"[8, null]"), Dispatch::Message { route: Route::Unknown, .. }));
/// assert!(matches!(router.dispatch(b"[8"), Dispatch::Malformed(_)));
/// # Ok::<(), framewire::message::socktools::JsonError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Router<H> {
    routes: BTreeMap<Vec<u8>, Vec<H>>,
    default: Option<H>,
}

impl<H> Default for Router<H> {
    fn default() -> Self {
        Router::new()
    }
}

impl<H> Router<H> {
    /// A router with no handlers.
    pub const fn new() -> Self {
        Router {
            routes: BTreeMap::new(),
            default: None,
        }
    }

    /// Adds a handler for `msg_type` after those it already has (socktools'
    /// `add_handler(msg_type, handler)`).
    ///
    /// Errors: a type JSON cannot express (a map with non-scalar keys).
    pub fn add<T: Serialize + ?Sized>(
        &mut self,
        msg_type: &T,
        handler: H,
    ) -> Result<(), JsonError> {
        self.routes
            .entry(type_key(msg_type)?)
            .or_default()
            .push(handler);
        Ok(())
    }

    /// Makes `handler` the only handler of `msg_type` (socktools'
    /// `add_handler(..., exclusive=True)`); returns those it replaces.
    pub fn set<T: Serialize + ?Sized>(
        &mut self,
        msg_type: &T,
        handler: H,
    ) -> Result<Vec<H>, JsonError> {
        let old = self
            .routes
            .insert(type_key(msg_type)?, alloc::vec![handler]);
        Ok(old.unwrap_or_default())
    }

    /// Removes every handler of `msg_type` and returns them.
    pub fn remove<T: Serialize + ?Sized>(&mut self, msg_type: &T) -> Result<Vec<H>, JsonError> {
        Ok(self.routes.remove(&type_key(msg_type)?).unwrap_or_default())
    }

    /// Sets (or with `None` clears) the handler of types that have none; returns the
    /// previous one.
    pub fn set_default(&mut self, handler: Option<H>) -> Option<H> {
        core::mem::replace(&mut self.default, handler)
    }

    /// Where a message of this type goes.
    pub fn route(&self, msg_type: &Value) -> Route<'_, H> {
        // Writing a `Value` as JSON cannot fail: its keys are strings.
        let handlers = type_key(msg_type)
            .ok()
            .and_then(|key| self.routes.get(&key));
        match (handlers, &self.default) {
            (Some(h), _) if !h.is_empty() => Route::Handlers(h),
            (_, Some(d)) => Route::Default(d),
            _ => Route::Unknown,
        }
    }

    /// Decodes a received frame's payload (the JSON body, header already removed) and
    /// routes it. The frame's length was already limited by the framing.
    pub fn dispatch(&self, payload: &[u8]) -> Dispatch<'_, H> {
        if payload.is_empty() {
            return Dispatch::Empty;
        }
        match socktools::decode_with_max(payload, payload.len()) {
            Ok((msg_type, data)) => {
                let route = self.route(&msg_type);
                Dispatch::Message {
                    msg_type,
                    data,
                    route,
                }
            }
            Err(e) => Dispatch::Malformed(e),
        }
    }

    /// How many types have handlers.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no type has a handler.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The JSON text of every type that has handlers, in byte order.
    pub fn types(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.routes.keys().map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use std::vec;

    use super::*;
    use crate::framing::{Decode, Framing, LengthPrefixed};
    use crate::testutil::unhex;

    #[test]
    fn frames_are_byte_identical_to_python_socktools() {
        // WIRE.md §3 golden frames.
        let frame = encode_frame(
            &1,
            &json!({"text": "hi", "n": [1, 2.5, null]}),
            DEFAULT_MAX_FRAME_LEN,
        )
        .unwrap();
        assert_eq!(
            &frame[..],
            unhex(
                "00000028 5b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d"
            )
        );
        let frame = encode_frame("chat", "hé", DEFAULT_MAX_FRAME_LEN).unwrap();
        assert_eq!(
            &frame[..],
            unhex("00000013 5b2263686174222c2022685c7530306539225d")
        );
        // struct.pack('>I', 11) + b'["ping", 1]'
        let frame = encode_frame("ping", &1, DEFAULT_MAX_FRAME_LEN).unwrap();
        assert_eq!(&frame[..], b"\x00\x00\x00\x0b[\"ping\", 1]");
        // And the framing layer reads it back.
        let mut lp = LengthPrefixed::new();
        assert_eq!(
            lp.decode(&frame).unwrap(),
            Decode::Frame {
                len: 15,
                payload: 4..15
            }
        );
    }

    #[test]
    fn frame_limit_counts_the_header() {
        // ["ping", 1] is 11 bytes: 15 with the header.
        assert!(encode_frame("ping", &1, 15).is_ok());
        assert_eq!(
            encode_frame("ping", &1, 14),
            Err(EncodeFrameError::TooLong { len: 15, max: 14 })
        );
        let mut bad = std::collections::BTreeMap::new();
        bad.insert(vec![1], 2);
        assert!(matches!(
            encode_frame("x", &bad, 100),
            Err(EncodeFrameError::Json(JsonError::KeyMustBeString { .. }))
        ));
    }

    #[test]
    fn routes_follow_socktools_handler_lists() {
        let mut r: Router<&str> = Router::new();
        r.add("chat", "log").unwrap();
        r.add("chat", "show").unwrap();
        r.add(&1, "one").unwrap();
        r.add(&json!([1, "a"]), "pair").unwrap();
        assert_eq!(r.route(&json!("chat")), Route::Handlers(&["log", "show"]));
        assert_eq!(r.route(&json!(1)), Route::Handlers(&["one"]));
        assert_eq!(r.route(&json!([1, "a"])), Route::Handlers(&["pair"]));
        // Matched by JSON text: 1.0 and true are other types than 1.
        assert_eq!(r.route(&json!(1.0)), Route::Unknown);
        assert_eq!(r.route(&json!(true)), Route::Unknown);
        assert_eq!(r.route(&json!("Chat")), Route::Unknown);

        assert_eq!(r.set("chat", "only").unwrap(), ["log", "show"]);
        assert_eq!(r.route(&json!("chat")), Route::Handlers(&["only"]));
        assert_eq!(r.set_default(Some("fallback")), None);
        assert_eq!(r.route(&json!("nope")), Route::Default(&"fallback"));
        assert_eq!(r.route(&json!("nope")).handlers(), ["fallback"]);
        assert_eq!(r.remove("chat").unwrap(), ["only"]);
        assert_eq!(r.route(&json!("chat")), Route::Default(&"fallback"));
        assert_eq!(r.set_default(None), Some("fallback"));
        assert_eq!(r.route(&json!("chat")).handlers(), [] as [&str; 0]);
        assert_eq!(r.len(), 2);
        assert_eq!(r.types().collect::<Vec<_>>(), [&b"1"[..], b"[1, \"a\"]"]);
    }

    #[test]
    fn dispatch_mirrors_what_socktools_does_with_each_frame() {
        let mut r: Router<u8> = Router::new();
        r.add("ping", 1).unwrap();
        let d = r.dispatch(br#"["ping", {"n": [1, 2.5]}]"#);
        assert_eq!(d.received(), Received::Handled);
        assert_eq!(
            d,
            Dispatch::Message {
                msg_type: json!("ping"),
                data: json!({"n": [1, 2.5]}),
                route: Route::Handlers(&[1]),
            }
        );
        assert_eq!(r.dispatch(b"").received(), Received::Empty);
        assert_eq!(r.dispatch(b"[2, 3]").received(), Received::Unknown);
        for bad in [&b"[1]"[..], b"{}", b"[1, 2", b"\xff", b"[1, NaN]"] {
            let d = r.dispatch(bad);
            assert!(matches!(d, Dispatch::Malformed(_)), "{bad:?}: {d:?}");
            assert_eq!(d.received(), Received::Malformed);
        }
        assert_eq!(
            r.dispatch(b"[1, 2, 3]"),
            Dispatch::Malformed(JsonError::NotAPair {
                found: socktools::JsonKind::Array,
                len: 3
            })
        );
    }

    #[test]
    fn decoded_messages_reencode_to_the_same_frame() {
        let r: Router<()> = Router::new();
        for frame in [
            unhex("00000028 5b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d"),
            unhex("00000013 5b2263686174222c2022685c7530306539225d"),
        ] {
            let Dispatch::Message { msg_type, data, .. } = r.dispatch(&frame[4..]) else {
                panic!("not a message");
            };
            let again = encode_frame(&msg_type, &data, DEFAULT_MAX_FRAME_LEN).unwrap();
            assert_eq!(&again[..], &frame[..]);
        }
    }
}
