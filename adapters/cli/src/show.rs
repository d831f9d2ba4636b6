//! How a received frame is described, per codec: readable text for people,
//! JSON members for `--json`.

use std::fmt::Write as _;

use framewire::message::json_header::Message;
use framewire::packet::wire::{Packet, ParseLimits};
use serde_json::{Map, Value};

use crate::codec::FrameSpec;
use crate::docjson;
use crate::render::{json_payload, readable};

/// Longest payload shown in readable output before it is cut.
pub(crate) const READABLE_MAX: usize = 200;

/// One received frame, described.
pub(crate) struct FrameView {
    /// What the frame is: `frame`, `document`, `message`, `packet`.
    pub(crate) kind: &'static str,
    /// The readable description (after `kind N: `).
    pub(crate) text: String,
    /// The JSON members describing it.
    pub(crate) json: Map<String, Value>,
}

/// Describes `bytes` received with `codec`.
pub(crate) fn view(codec: &FrameSpec, bytes: &[u8]) -> FrameView {
    let mut json = Map::new();
    json.insert("len".into(), Value::from(bytes.len()));
    match codec {
        FrameSpec::Bson(_) => match docjson::bson_to_json(bytes) {
            Ok(doc) => {
                let text = format!("{} bytes {}", bytes.len(), doc);
                json.insert("doc".into(), doc);
                FrameView {
                    kind: "document",
                    text,
                    json,
                }
            }
            Err(e) => invalid("document", bytes, &e.to_string(), json),
        },
        FrameSpec::JsonHeader(_) => match Message::parse(bytes) {
            Ok(msg) => {
                let h = msg.header;
                let mut header = Map::new();
                header.insert("byteorder".into(), h.byteorder.to_cow().into());
                header.insert("content-type".into(), h.content_type.to_cow().into());
                header.insert(
                    "content-encoding".into(),
                    h.content_encoding.to_cow().into(),
                );
                header.insert("content-length".into(), h.content_length.into());
                let content_json = if h.is_text_json() {
                    serde_json::from_slice::<Value>(msg.content).ok()
                } else {
                    None
                };
                let shown = match &content_json {
                    Some(v) => v.to_string(),
                    None => readable(msg.content, READABLE_MAX),
                };
                let text = format!(
                    "{} bytes, {} {}, content {}",
                    bytes.len(),
                    h.content_type.to_cow(),
                    h.content_encoding.to_cow(),
                    shown
                );
                json.insert("header".into(), Value::Object(header));
                if let Some(v) = content_json {
                    json.insert("content".into(), v);
                } else {
                    let (k, v) = json_payload(msg.content);
                    json.insert(k.into(), v);
                }
                FrameView {
                    kind: "message",
                    text,
                    json,
                }
            }
            Err(e) => invalid("message", bytes, &e.to_string(), json),
        },
        FrameSpec::Packet(_) => match Packet::parse(bytes, &ParseLimits::default()) {
            Ok(Some((p, _))) => {
                let (text, mut members) = packet_fields(&p);
                json.append(&mut members);
                FrameView {
                    kind: "packet",
                    text: format!("{} bytes {text}", bytes.len()),
                    json,
                }
            }
            Ok(None) => invalid("packet", bytes, "incomplete packet", json),
            Err(e) => invalid("packet", bytes, &e.to_string(), json),
        },
        _ => {
            let (k, v) = json_payload(bytes);
            json.insert(k.into(), v);
            FrameView {
                kind: "frame",
                text: format!("{} bytes {}", bytes.len(), readable(bytes, READABLE_MAX)),
                json,
            }
        }
    }
}

/// A packet's fields: readable (`request tag 2 type 0 flags 0 "hello"`,
/// `response tag 2 ok flags 7 "flags"`, `EOF`, `ERQ`) and as JSON members.
pub(crate) fn packet_fields(p: &Packet<'_>) -> (String, Map<String, Value>) {
    let mut m = Map::new();
    let payload = p.payload();
    let kind = if p.is_eof() {
        "eof"
    } else if p.is_erq() {
        "erq"
    } else if p.is_request() {
        "request"
    } else {
        "response"
    };
    m.insert("packet".into(), Value::from(kind));
    m.insert("channel".into(), Value::from(p.channel()));
    m.insert("tag".into(), Value::from(p.tag()));
    let mut text = match kind {
        "eof" => return ("EOF (end of stream)".into(), m),
        "erq" => return ("ERQ (end of requests)".into(), m),
        _ => String::new(),
    };
    if let Some(wire) = p.rq_type_wire() {
        let flags = p.pflags();
        m.insert("flags".into(), Value::from(flags));
        if let Some(t) = p.request_type() {
            m.insert("rq_type".into(), Value::from(t));
            text = format!("request tag {} type {t} flags {flags}", p.tag());
        } else {
            m.insert("rq_type_wire".into(), Value::from(wire));
            text = format!("malformed marker tag {} flags {flags}", p.tag());
        }
    } else if let Some((ok, flags)) = p.response_status() {
        m.insert("ok".into(), Value::from(ok));
        m.insert("flags".into(), Value::from(flags));
        let status = if ok { "ok" } else { "failed" };
        text = format!("response tag {} {status} flags {flags}", p.tag());
    }
    if p.channel() != 0 {
        let _ = write!(text, " channel {}", p.channel());
    }
    text.push(' ');
    text.push_str(&readable(payload, READABLE_MAX));
    let (k, v) = json_payload(payload);
    m.insert(k.into(), v);
    (text, m)
}

fn invalid(kind: &'static str, bytes: &[u8], why: &str, mut json: Map<String, Value>) -> FrameView {
    json.insert("invalid".into(), Value::from(why));
    json.insert("hex".into(), Value::from(crate::render::hex(bytes)));
    FrameView {
        kind,
        text: format!("{} bytes, invalid: {why}", bytes.len()),
        json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_documents_messages() {
        let v = view(&"length".parse().unwrap(), b"hello");
        assert_eq!(v.kind, "frame");
        assert_eq!(v.text, "5 bytes \"hello\"");
        assert_eq!(
            Value::Object(v.json),
            serde_json::json!({"len": 5, "text": "hello"})
        );

        let doc = b"\x16\0\0\0\x02hello\0\x06\0\0\0world\0\0";
        let v = view(&"bson".parse().unwrap(), doc);
        assert_eq!(v.kind, "document");
        assert_eq!(v.text, "22 bytes {\"hello\":\"world\"}");

        let v = view(&"bson".parse().unwrap(), b"\x06\0\0\0\x13\0");
        assert!(v.text.starts_with("6 bytes, invalid: "), "{}", v.text);
        assert!(v.json.contains_key("invalid"));

        let msg = framewire::message::json_header::encode_message_vec(
            "text/json",
            "utf-8",
            "little",
            br#"{"action": "search"}"#,
        )
        .unwrap();
        let v = view(&"json-header".parse().unwrap(), &msg);
        assert_eq!(v.kind, "message");
        assert_eq!(v.json["content"], serde_json::json!({"action": "search"}));
        assert_eq!(v.json["header"]["content-type"], "text/json");

        let v = view(&"packet".parse().unwrap(), b"\x07\x02\x3cflags");
        assert_eq!(v.kind, "packet");
        assert_eq!(v.text, "8 bytes response tag 2 ok flags 7 \"flags\"");
        let v = view(&"packet".parse().unwrap(), b"\x05\x02\x03\x05\x01x");
        assert_eq!(
            v.text,
            "6 bytes request tag 2 type 0 flags 0 channel 5 \"x\""
        );
        assert_eq!(v.json["channel"], 5);
        let v = view(&"packet".parse().unwrap(), b"\x03\x01\x02\x00");
        assert_eq!(v.text, "4 bytes ERQ (end of requests)");
    }
}
