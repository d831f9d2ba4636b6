//! The cs.packetstream connection state machine (`framewire::packet::Connection`)
//! for JavaScript: bytes, time and commands go in, bytes and events come
//! out. The protocol logic is all in the core; this is only the translation
//! of arguments and events.
//!
//! Time is whatever clock the caller uses, in milliseconds
//! (`performance.now()` is what the package's `Connection` passes); the
//! core never reads one.

use bytes::Bytes;
use framewire::packet::{reason, Config, Connection, Event, PeerCloseReason, State};
use framewire::time::{Duration, Instant};
use framewire::varint::{self, VarintRules};
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::error::{
    channel_error, config_error, input_error, n, packet_protocol_error, respond_error,
    submit_error, Failure,
};
use crate::live::{self, Live};
use crate::opts::{millis_to_micros, to_u64, Options};

/// Reads a [`Config`] from a JS options object: `maxPacketLen`,
/// `acceptRequests`, `maxPendingOutbound`, `maxInflightInbound`,
/// `maxReceiveBuffer`, `maxTransmitBuffer`, `maxChannels`,
/// `maxRememberedTags`, `copyThreshold`, `strictVarints`.
fn config(options: &JsValue) -> Result<Config, Failure> {
    let o = Options::new(options, "options")?;
    let mut c = Config::default();
    if let Some(v) = o.usize("maxPacketLen")? {
        c.max_packet_len = v;
        // Keep the default's 64 KiB of room beyond one packet unless told.
        c.max_receive_buffer = v.saturating_add(64 * 1024);
    }
    if let Some(v) = o.bool("acceptRequests")? {
        c.accept_requests = v;
    }
    if let Some(v) = o.usize("maxPendingOutbound")? {
        c.max_pending_outbound = v;
    }
    if let Some(v) = o.usize("maxInflightInbound")? {
        c.max_inflight_inbound = v;
    }
    if let Some(v) = o.usize("maxReceiveBuffer")? {
        c.max_receive_buffer = v;
    }
    if let Some(v) = o.usize("maxTransmitBuffer")? {
        c.max_transmit_buffer = v;
    }
    if let Some(v) = o.usize("maxChannels")? {
        c.max_channels = v;
    }
    if let Some(v) = o.usize("maxRememberedTags")? {
        c.max_remembered_tags = v;
    }
    if let Some(v) = o.usize("copyThreshold")? {
        c.copy_threshold = v;
    }
    if let Some(v) = o.bool("strictVarints")? {
        c.varint.require_canonical = v;
    }
    c.validate().map_err(|e| config_error(&e))?;
    Ok(c)
}

fn set(o: &Object, key: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(key), v);
}

fn num(v: u64) -> JsValue {
    JsValue::from_f64(n(v))
}

/// An event as a plain JS object with a `type` string.
fn event_object(event: Event) -> JsValue {
    let o = Object::new();
    let ty = |s: &str| JsValue::from_str(s);
    match event {
        Event::RequestReceived {
            channel,
            tag,
            rq_type,
            flags,
            payload,
        } => {
            set(&o, "type", &ty("request"));
            set(&o, "channel", &num(channel));
            set(&o, "tag", &num(tag));
            set(&o, "rqType", &num(rq_type));
            set(&o, "flags", &num(flags));
            set(&o, "payload", &Uint8Array::from(&payload[..]));
        }
        Event::ResponseReceived {
            channel,
            tag,
            ok,
            flags,
            payload,
        } => {
            set(&o, "type", &ty("response"));
            set(&o, "channel", &num(channel));
            set(&o, "tag", &num(tag));
            set(&o, "ok", &JsValue::from_bool(ok));
            set(&o, "flags", &num(flags));
            set(&o, "payload", &Uint8Array::from(&payload[..]));
        }
        Event::RequestCancelled { channel, tag } => {
            set(&o, "type", &ty("cancelled"));
            set(&o, "channel", &num(channel));
            set(&o, "tag", &num(tag));
        }
        Event::RequestTimedOut { channel, tag } => {
            set(&o, "type", &ty("timeout"));
            set(&o, "channel", &num(channel));
            set(&o, "tag", &num(tag));
        }
        Event::UnknownResponse { channel, tag } => {
            set(&o, "type", &ty("unknownResponse"));
            set(&o, "channel", &num(channel));
            set(&o, "tag", &num(tag));
        }
        Event::PeerEndedRequests => set(&o, "type", &ty("peerEndedRequests")),
        Event::PeerClosed { reason } => {
            set(&o, "type", &ty("peerClosed"));
            let reason = match reason {
                PeerCloseReason::EofPacket => "eof-packet",
                PeerCloseReason::TransportEof => "transport-eof",
            };
            set(&o, "reason", &ty(reason));
        }
        Event::ProtocolError(e) => {
            set(&o, "type", &ty("protocolError"));
            set(&o, "error", &JsValue::from(packet_protocol_error(&e)));
        }
        Event::Closed => set(&o, "type", &ty("closed")),
        _ => set(&o, "type", &ty("unknown")),
    }
    o.into()
}

/// The original's failure texts a handler's owner sends:
/// `{ exceptionDuringHandler, noRequestHandler }`.
#[wasm_bindgen(js_name = packetReasons)]
pub fn packet_reasons() -> Object {
    let o = Object::new();
    set(
        &o,
        "exceptionDuringHandler",
        &reason::EXCEPTION_DURING_HANDLER.into(),
    );
    set(&o, "noRequestHandler", &reason::NO_REQUEST_HANDLER.into());
    o
}

/// Splits queued output, which always holds whole packets, into one slice
/// per packet (for transports where one message is one packet).
pub fn split_packets(bytes: &[u8]) -> Result<Vec<&[u8]>, Failure> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (body, octets) = varint::decode(rest, VarintRules::default())
            .ok()
            .flatten()
            .ok_or_else(|| Failure::new("ERR_INTERNAL", "queued output is not whole packets"))?;
        let len = usize::try_from(body)
            .ok()
            .and_then(|b| b.checked_add(octets))
            .filter(|&l| l <= rest.len())
            .ok_or_else(|| Failure::new("ERR_INTERNAL", "queued output is not whole packets"))?;
        let (packet, tail) = rest.split_at(len);
        out.push(packet);
        rest = tail;
    }
    Ok(out)
}

/// One end of a cs.packetstream connection, sans-IO (see
/// `framewire::packet::Connection` for the rules). After every input or
/// command: write out `takeTransmit()`, re-arm a timer for `pollTimeout()`,
/// and drain `pollEvent()`.
#[wasm_bindgen]
pub struct PacketCore {
    conn: Connection,
    _live: Live,
}

fn instant(now_ms: f64) -> Result<Instant, Failure> {
    Ok(Instant::from_micros(millis_to_micros(now_ms, "now")?))
}

#[wasm_bindgen]
impl PacketCore {
    /// A connection with the limits in `options` (see [`config`]; defaults
    /// are the core's).
    #[wasm_bindgen(constructor)]
    pub fn new(options: &JsValue) -> Result<PacketCore, Failure> {
        let conn = Connection::new(config(options)?).map_err(|e| config_error(&e))?;
        Ok(PacketCore {
            conn,
            _live: Live::new(&live::PACKET_CORES),
        })
    }

    /// Bytes from the transport; returns how many were taken (fewer is
    /// back-pressure: offer the rest again after draining events and
    /// answering requests).
    #[wasm_bindgen(js_name = handleInput)]
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<u32, Failure> {
        self.conn
            .handle_input(bytes)
            .map(|n| n as u32)
            .map_err(|e| input_error(&e))
    }

    /// The transport ended.
    #[wasm_bindgen(js_name = handleEof)]
    pub fn handle_eof(&mut self) {
        self.conn.handle_eof();
    }

    /// The clock reads `nowMs`: requests past their deadline time out.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<(), Failure> {
        self.conn.handle_timeout(instant(now_ms)?);
        Ok(())
    }

    /// Sends a request; returns its tag.
    pub fn submit(
        &mut self,
        channel: f64,
        rq_type: f64,
        flags: f64,
        payload: Vec<u8>,
        now_ms: f64,
        timeout_ms: Option<f64>,
    ) -> Result<f64, Failure> {
        let timeout = timeout_ms
            .map(|t| millis_to_micros(t, "timeoutMs").map(Duration::from_micros))
            .transpose()?;
        let tag = self
            .conn
            .submit(
                to_u64(channel, "channel")?,
                to_u64(rq_type, "rqType")?,
                to_u64(flags, "flags")?,
                Bytes::from(payload),
                instant(now_ms)?,
                timeout,
            )
            .map_err(|e| submit_error(&e))?;
        Ok(n(tag))
    }

    /// Answers the peer's request `(channel, tag)` with `flags` and `payload`.
    pub fn respond(
        &mut self,
        channel: f64,
        tag: f64,
        flags: f64,
        payload: Vec<u8>,
    ) -> Result<(), Failure> {
        self.conn
            .respond(
                to_u64(channel, "channel")?,
                to_u64(tag, "tag")?,
                to_u64(flags, "flags")?,
                Bytes::from(payload),
            )
            .map_err(|e| respond_error(&e))
    }

    /// Answers the peer's request `(channel, tag)` with a failure carrying `reason`.
    pub fn reject(&mut self, channel: f64, tag: f64, reason: &str) -> Result<(), Failure> {
        self.conn
            .reject(to_u64(channel, "channel")?, to_u64(tag, "tag")?, reason)
            .map_err(|e| respond_error(&e))
    }

    /// Stops waiting for our request `(channel, tag)`; returns whether it was waiting.
    pub fn abandon(&mut self, channel: f64, tag: f64) -> Result<bool, Failure> {
        Ok(self
            .conn
            .abandon(to_u64(channel, "channel")?, to_u64(tag, "tag")?))
    }

    /// Sends ERQ: no more requests from this side.
    #[wasm_bindgen(js_name = endRequests)]
    pub fn end_requests(&mut self) {
        self.conn.end_requests();
    }

    /// Begins the orderly close (ERQ, owed responses, EOF).
    pub fn close(&mut self) {
        self.conn.close();
    }

    /// Opens a channel other than 0 (both ends must).
    #[wasm_bindgen(js_name = openChannel)]
    pub fn open_channel(&mut self, channel: f64) -> Result<(), Failure> {
        self.conn
            .open_channel(to_u64(channel, "channel")?)
            .map_err(|e| channel_error(&e))
    }

    /// The next event as `{ type, ... }`, or `undefined`.
    #[wasm_bindgen(js_name = pollEvent)]
    pub fn poll_event(&mut self) -> JsValue {
        self.conn
            .poll_event()
            .map_or(JsValue::UNDEFINED, event_object)
    }

    /// Every queued outbound byte in one array (handed over: the queue is
    /// emptied), or `undefined` when nothing is queued.
    #[wasm_bindgen(js_name = takeTransmit)]
    pub fn take_transmit(&mut self) -> Option<Vec<u8>> {
        let len = self.conn.transmit_len();
        if len == 0 {
            return None;
        }
        let mut out = vec![0; len];
        let n = self.conn.fill_transmit(&mut out);
        out.truncate(n);
        Some(out)
    }

    /// Like [`take_transmit`](Self::take_transmit), one `Uint8Array` per
    /// packet (for transports where one message carries one packet).
    #[wasm_bindgen(js_name = takeTransmitPackets)]
    pub fn take_transmit_packets(&mut self) -> Result<Array, Failure> {
        let out = Array::new();
        if let Some(bytes) = self.take_transmit() {
            for p in split_packets(&bytes)? {
                out.push(&Uint8Array::from(p));
            }
        }
        Ok(out)
    }

    /// Bytes queued for transmission.
    #[wasm_bindgen(getter, js_name = transmitLen)]
    pub fn transmit_len(&self) -> f64 {
        n(self.conn.transmit_len() as u64)
    }

    /// The earliest request deadline in milliseconds, or `undefined`.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.conn
            .poll_timeout()
            .map(|t| n(t.total_micros()) / 1000.0)
    }

    /// `"open"`, `"closing"` or `"closed"`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        match self.conn.state() {
            State::Open => "open",
            State::Closing => "closing",
            State::Closed => "closed",
        }
        .to_owned()
    }

    /// Our requests waiting for a response.
    #[wasm_bindgen(getter, js_name = pendingOutbound)]
    pub fn pending_outbound(&self) -> f64 {
        n(self.conn.pending_outbound() as u64)
    }

    /// Peer requests delivered and not answered yet.
    #[wasm_bindgen(getter, js_name = inflightInbound)]
    pub fn inflight_inbound(&self) -> f64 {
        n(self.conn.inflight_inbound() as u64)
    }

    /// Bytes of partial packets buffered.
    #[wasm_bindgen(getter, js_name = receiveBuffered)]
    pub fn receive_buffered(&self) -> f64 {
        n(self.conn.receive_buffered() as u64)
    }

    /// Whether `(channel, tag)` of ours is waiting for a response.
    #[wasm_bindgen(js_name = isPending)]
    pub fn is_pending(&self, channel: f64, tag: f64) -> Result<bool, Failure> {
        Ok(self
            .conn
            .is_pending(to_u64(channel, "channel")?, to_u64(tag, "tag")?))
    }

    /// The counters of the connection, as numbers.
    #[wasm_bindgen(getter)]
    pub fn stats(&self) -> Object {
        let s = self.conn.stats();
        let o = Object::new();
        for (k, v) in [
            ("packetsReceived", s.packets_received),
            ("requestsReceived", s.requests_received),
            ("responsesReceived", s.responses_received),
            ("unknownResponses", s.unknown_responses),
            ("requestsSent", s.requests_sent),
            ("responsesSent", s.responses_sent),
            ("requestsRefused", s.requests_refused),
            ("tagsReused", s.tags_reused),
            ("requestsDropped", s.requests_dropped),
            ("timedOut", s.timed_out),
            ("cancelled", s.cancelled),
            ("tagsForgotten", s.tags_forgotten),
            ("bytesReceived", s.bytes_received),
            ("bytesIgnored", s.bytes_ignored),
            ("bytesSent", s.bytes_sent),
        ] {
            set(&o, k, &num(v));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_output_splits_into_packets() {
        // WIRE.md: request tag 2 "hello", ERQ, EOF.
        let bytes = b"\x08\x02\x02\x01hello\x03\x01\x02\x00\x03\x00\x02\x00";
        let parts = split_packets(bytes).unwrap();
        assert_eq!(
            parts,
            vec![
                &b"\x08\x02\x02\x01hello"[..],
                &b"\x03\x01\x02\x00"[..],
                &b"\x03\x00\x02\x00"[..]
            ]
        );
        assert_eq!(split_packets(b"\x08\x02").unwrap_err().code, "ERR_INTERNAL");
    }

    #[test]
    fn connection_output_is_whole_packets() {
        let mut c = Connection::new(Config::default()).unwrap();
        for i in 0..50u8 {
            c.submit(0, 0, 0, vec![i; usize::from(i) * 7], Instant::ZERO, None)
                .unwrap();
        }
        c.close();
        let mut out = vec![0; c.transmit_len()];
        let n = c.fill_transmit(&mut out);
        let parts = split_packets(&out[..n]).unwrap();
        // 50 requests, ERQ, and EOF (no peer request is in flight).
        assert_eq!(parts.len(), 52);
        assert_eq!(parts[7], [&[52, 9, 2, 1][..], &[7; 49][..]].concat());
        assert_eq!(parts[50], b"\x03\x01\x02\x00");
        assert_eq!(parts[51], b"\x03\x00\x02\x00");
    }
}
