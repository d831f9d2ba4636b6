//! Errors as JavaScript sees them: an `Error` whose `message` says what was
//! wrong, with a stable `code` string and the numbers involved as properties.
//!
//! [`Failure`] is plain Rust (testable on the host); it becomes a JS `Error`
//! only when it crosses into JavaScript.

use std::fmt::Display;

use framewire::framing::{EncodeError, FrameError};
use framewire::message::bson::BsonError;
use framewire::packet::{
    ChannelError, ConfigError, InputError, ProtocolError as PacketProtocolError, RespondError,
    SubmitError,
};
use framewire::stream::{ProtocolError, SendError, StreamError};
use wasm_bindgen::JsValue;

/// An error on its way to JavaScript: `code` (e.g. `"ERR_FRAME_TOO_LONG"`),
/// a message, and numeric or string details set as properties of the `Error`.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The stable error code (the `code` property).
    pub code: &'static str,
    /// The human-readable message.
    pub message: String,
    /// Extra properties: name and value.
    pub details: Vec<(&'static str, Detail)>,
}

/// A property value of a [`Failure`].
#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    /// A number (integers beyond 2^53 lose precision, as in any JS number).
    Number(f64),
    /// A string.
    Text(String),
}

impl Failure {
    /// A failure with no details.
    pub fn new(code: &'static str, message: impl Display) -> Self {
        Failure {
            code,
            message: message.to_string(),
            details: Vec::new(),
        }
    }

    /// Adds a numeric property.
    #[must_use]
    pub fn num(mut self, name: &'static str, value: impl Into<f64>) -> Self {
        self.details.push((name, Detail::Number(value.into())));
        self
    }

    /// Adds a string property.
    #[must_use]
    pub fn text(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.details.push((name, Detail::Text(value.into())));
        self
    }

    /// A caller passed an argument that cannot be used.
    pub fn argument(message: impl Display) -> Self {
        Failure::new("ERR_INVALID_ARGUMENT", message)
    }

    /// The message followed by ` at PATH`, and a `path` property.
    #[must_use]
    pub fn at(mut self, path: &str) -> Self {
        self.message = format!("{} at {path}", self.message);
        self.text("path", path)
    }

    /// The message prefixed with `context: `.
    #[must_use]
    pub fn context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl From<Failure> for JsValue {
    fn from(f: Failure) -> JsValue {
        let error = js_sys::Error::new(&f.message);
        set(&error, "code", &JsValue::from_str(f.code));
        for (name, value) in &f.details {
            let value = match value {
                Detail::Number(n) => JsValue::from_f64(*n),
                Detail::Text(s) => JsValue::from_str(s),
            };
            set(&error, name, &value);
        }
        error.into()
    }
}

fn set(target: &js_sys::Error, name: &str, value: &JsValue) {
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(target, &JsValue::from_str(name), value);
}

/// u64 → f64 for error details: exact up to 2^53, the JS number range.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn n(v: u64) -> f64 {
    v as f64
}

/// The framing rejected the peer's bytes.
pub fn frame_error(e: &FrameError) -> Failure {
    let msg = e.to_string();
    match *e {
        FrameError::FrameTooLong { len, max } => Failure::new("ERR_FRAME_TOO_LONG", msg)
            .num("len", n(len))
            .num("max", n(max as u64)),
        FrameError::InvalidLength { raw, adjustment } => Failure::new("ERR_INVALID_LENGTH", msg)
            .num("raw", n(raw))
            .text("adjustment", adjustment.to_string()),
        FrameError::Varint(_) => Failure::new("ERR_VARINT", msg),
        FrameError::BsonLength { len } => {
            Failure::new("ERR_BSON_LENGTH", msg).num("len", f64::from(len))
        }
        FrameError::BsonTerminator { found } => {
            Failure::new("ERR_BSON_TERMINATOR", msg).num("found", f64::from(found))
        }
        FrameError::LineTooLong { len, max } => Failure::new("ERR_LINE_TOO_LONG", msg)
            .num("len", n(len as u64))
            .num("max", n(max as u64)),
        FrameError::JsonHeaderTooLong { len, max } => Failure::new("ERR_JSON_HEADER_TOO_LONG", msg)
            .num("len", n(len as u64))
            .num("max", n(max as u64)),
        FrameError::ContentTooLong { len, max } => Failure::new("ERR_CONTENT_TOO_LONG", msg)
            .num("len", n(len))
            .num("max", n(max as u64)),
        FrameError::JsonHeaderUtf8 { .. }
        | FrameError::JsonHeaderSyntax
        | FrameError::JsonHeaderMissingKey { .. }
        | FrameError::JsonMessageLength { .. } => Failure::new("ERR_JSON_HEADER", msg),
        FrameError::Packet(_) => Failure::new("ERR_PACKET", msg),
        _ => Failure::new("ERR_FRAME", msg),
    }
}

/// A payload the framing cannot send.
pub fn encode_error(e: &EncodeError) -> Failure {
    let msg = e.to_string();
    match *e {
        EncodeError::BufferTooSmall { required } => {
            Failure::new("ERR_BUFFER_TOO_SMALL", msg).num("required", n(required as u64))
        }
        EncodeError::PayloadTooLong { len, max } => Failure::new("ERR_PAYLOAD_TOO_LONG", msg)
            .num("len", n(len as u64))
            .num("max", n(max as u64)),
        EncodeError::PayloadTooShort { len, min } => Failure::new("ERR_PAYLOAD_TOO_SHORT", msg)
            .num("len", n(len as u64))
            .num("min", n(min as u64)),
        EncodeError::ContainsDelimiter { at } => {
            Failure::new("ERR_CONTAINS_DELIMITER", msg).num("at", n(at as u64))
        }
        EncodeError::WrongSize { len, expected } => Failure::new("ERR_WRONG_SIZE", msg)
            .num("len", n(len as u64))
            .num("expected", n(expected as u64)),
        EncodeError::Malformed => Failure::new("ERR_MALFORMED", msg),
        _ => Failure::new("ERR_UNSUPPORTED", msg),
    }
}

/// The peer broke the framing of the stream.
pub fn protocol_error(e: &ProtocolError) -> Failure {
    match *e {
        ProtocolError::Frame(ref f) => frame_error(f),
        ProtocolError::Truncated { have, need } => {
            let f = Failure::new("ERR_TRUNCATED", e).num("have", n(have as u64));
            match need {
                Some(need) => f.num("need", n(need as u64)),
                None => f,
            }
        }
        ProtocolError::FrameExceedsBuffer { need, capacity } => {
            let f = Failure::new("ERR_FRAME_EXCEEDS_BUFFER", e).num("capacity", n(capacity as u64));
            match need {
                Some(need) => f.num("need", n(need as u64)),
                None => f,
            }
        }
        _ => Failure::new("ERR_PROTOCOL", e),
    }
}

/// An error of a stream's receive side.
pub fn stream_error(e: &StreamError) -> Failure {
    match e {
        StreamError::Protocol(p) => protocol_error(p),
        StreamError::InputAfterEof => Failure::new("ERR_INPUT_AFTER_END", e),
        _ => Failure::new("ERR_STREAM", e),
    }
}

/// An error of a stream's send side.
pub fn send_error(e: &SendError) -> Failure {
    match e {
        SendError::Encode(enc) => encode_error(enc),
        SendError::QueueFull {
            queued,
            required,
            max,
        } => Failure::new("ERR_QUEUE_FULL", e)
            .num("queued", n(*queued as u64))
            .num("required", n(*required as u64))
            .num("max", n(*max as u64)),
        SendError::Closed => Failure::new("ERR_CLOSED", e),
        SendError::Protocol(p) => protocol_error(p).context("stream failed earlier"),
        _ => Failure::new("ERR_STREAM", e),
    }
}

/// A BSON document could not be encoded or decoded.
pub fn bson_error(e: &BsonError) -> Failure {
    let msg = e.to_string();
    match e {
        BsonError::Encode { .. } => Failure::new("ERR_BSON_ENCODE", msg),
        BsonError::Decode { .. } => Failure::new("ERR_BSON_DECODE", msg),
        BsonError::TooLong { len, max } => Failure::new("ERR_BSON_TOO_LONG", msg)
            .num("len", n(*len as u64))
            .num("max", n(*max as u64)),
        BsonError::TooShort { len } => {
            Failure::new("ERR_BSON_TOO_SHORT", msg).num("len", n(*len as u64))
        }
        BsonError::LengthMismatch { declared, actual } => {
            Failure::new("ERR_BSON_LENGTH_MISMATCH", msg)
                .num("declared", f64::from(*declared))
                .num("actual", n(*actual as u64))
        }
        BsonError::MissingTerminator { found } => {
            Failure::new("ERR_BSON_TERMINATOR", msg).num("found", f64::from(*found))
        }
        BsonError::IntOutOfRange { value } => {
            Failure::new("ERR_BSON_INT_RANGE", msg).text("value", value.to_string())
        }
        BsonError::Unsupported { element_type, path } => {
            Failure::new("ERR_BSON_UNSUPPORTED_TYPE", msg)
                .num("elementType", f64::from(*element_type))
                .text("path", path.clone())
        }
        BsonError::TooDeep { max } => {
            Failure::new("ERR_BSON_TOO_DEEP", msg).num("max", n(*max as u64))
        }
        BsonError::ExtendedJsonKey { key, path } => Failure::new("ERR_BSON_EXTENDED_JSON_KEY", msg)
            .text("key", key.clone())
            .text("path", path.clone()),
        _ => Failure::new("ERR_BSON", msg),
    }
}

/// A packet connection's configuration is inconsistent.
pub fn config_error(e: &ConfigError) -> Failure {
    Failure::new("ERR_CONFIG", e)
}

/// The peer broke the packet protocol.
pub fn packet_protocol_error(e: &PacketProtocolError) -> Failure {
    match *e {
        PacketProtocolError::Truncated { have, need } => {
            let f = Failure::new("ERR_TRUNCATED", e).num("have", n(have as u64));
            match need {
                Some(need) => f.num("need", n(need as u64)),
                None => f,
            }
        }
        PacketProtocolError::TagTooLarge { tag, max } => Failure::new("ERR_TAG_TOO_LARGE", e)
            .num("tag", n(tag))
            .num("max", n(max)),
        PacketProtocolError::MalformedMarker { channel, tag } => {
            Failure::new("ERR_MALFORMED_MARKER", e)
                .num("channel", n(channel))
                .num("tag", n(tag))
        }
        _ => Failure::new("ERR_PACKET", e),
    }
}

/// Input refused by a packet connection.
pub fn input_error(e: &InputError) -> Failure {
    match e {
        InputError::Failed(p) => packet_protocol_error(p).context("connection failed"),
        InputError::AfterTransportEof => Failure::new("ERR_INPUT_AFTER_END", e),
        _ => Failure::new("ERR_INPUT", e),
    }
}

/// A request that could not be sent.
pub fn submit_error(e: &SubmitError) -> Failure {
    match *e {
        SubmitError::PeerGone => Failure::new("ERR_PEER_GONE", e),
        SubmitError::RequestsEnded => Failure::new("ERR_REQUESTS_ENDED", e),
        SubmitError::UnknownChannel { channel } => {
            Failure::new("ERR_UNKNOWN_CHANNEL", e).num("channel", n(channel))
        }
        SubmitError::Field(_) => Failure::new("ERR_FIELD", e),
        SubmitError::TooManyPending { max } => {
            Failure::new("ERR_TOO_MANY_PENDING", e).num("max", n(max as u64))
        }
        SubmitError::TransmitFull { queued, max } => Failure::new("ERR_TRANSMIT_FULL", e)
            .num("queued", n(queued as u64))
            .num("max", n(max as u64)),
        SubmitError::PayloadTooLong { len, max } => Failure::new("ERR_PAYLOAD_TOO_LONG", e)
            .num("len", n(len as u64))
            .num("max", n(max as u64)),
        SubmitError::TagsExhausted { channel } => {
            Failure::new("ERR_TAGS_EXHAUSTED", e).num("channel", n(channel))
        }
        _ => Failure::new("ERR_SUBMIT", e),
    }
}

/// An answer that could not be sent.
pub fn respond_error(e: &RespondError) -> Failure {
    match *e {
        RespondError::NotInFlight { channel, tag } => Failure::new("ERR_NOT_IN_FLIGHT", e)
            .num("channel", n(channel))
            .num("tag", n(tag)),
        RespondError::Field(_) => Failure::new("ERR_FIELD", e),
        RespondError::PayloadTooLong { len, max } => Failure::new("ERR_PAYLOAD_TOO_LONG", e)
            .num("len", n(len as u64))
            .num("max", n(max as u64)),
        _ => Failure::new("ERR_RESPOND", e),
    }
}

/// A channel that could not be opened.
pub fn channel_error(e: &ChannelError) -> Failure {
    match *e {
        ChannelError::TooManyChannels { max } => {
            Failure::new("ERR_TOO_MANY_CHANNELS", e).num("max", n(max as u64))
        }
        _ => Failure::new("ERR_CHANNEL", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_errors_carry_code_and_numbers() {
        let f = frame_error(&FrameError::FrameTooLong { len: 20, max: 10 });
        assert_eq!(f.code, "ERR_FRAME_TOO_LONG");
        assert_eq!(f.message, "frame of 20 bytes is over the limit of 10");
        assert_eq!(
            f.details,
            vec![("len", Detail::Number(20.0)), ("max", Detail::Number(10.0))]
        );
    }

    #[test]
    fn truncation_without_need_has_no_need_property() {
        let f = protocol_error(&ProtocolError::Truncated {
            have: 3,
            need: None,
        });
        assert_eq!(f.code, "ERR_TRUNCATED");
        assert_eq!(f.details, vec![("have", Detail::Number(3.0))]);
    }

    #[test]
    fn context_prefixes_the_message() {
        let f = send_error(&SendError::Protocol(ProtocolError::Truncated {
            have: 1,
            need: Some(4),
        }));
        assert_eq!(f.code, "ERR_TRUNCATED");
        assert!(f
            .message
            .starts_with("stream failed earlier: peer closed inside a frame"));
    }
}
