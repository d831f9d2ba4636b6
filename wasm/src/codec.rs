//! Framing codecs for JavaScript: a spec string names the framing, and a
//! [`CodecCore`] encodes payloads and decodes a byte stream in any chunking.
//!
//! | spec | framing |
//! |---|---|
//! | `length` | `u32` big-endian length prefix (socktools) |
//! | `length:W` | `W`-byte (1..=8) big-endian length prefix; `length:varint` for a BSUInt |
//! | `length:W:le` / `length:W:be` | `W`-byte prefix in that byte order |
//! | `bson` | BSON documents back to back (py-bson `sendobj`/`recvobj`) |
//! | `lines` | lines ended by `\n`; a `\r` before it is dropped on input |
//! | `fixed:N` | every frame exactly `N` bytes |
//! | `json-header` | the socket tutorial's `u16` header length, JSON header, content |
//! | `packet` | whole cs.packetstream packets (the payload is the packet, length included) |
//!
//! The spec names are those of the `framewire` command-line tool.
//!
//! Decoded payloads are packed into one byte buffer plus a list of end
//! offsets, so a whole batch crosses into JavaScript in two copies whatever
//! the number of frames; the JS side cuts it into `subarray` views.

use framewire::framing::{
    BsonDocument, Decode, Delimited, EncodeError, Fixed, FrameError, FrameHeader, Framing,
    JsonHeader, LengthField, LengthPrefixed, OversizePolicy, PacketFraming,
};
use framewire::stream::{Event, FramedStream, Stats};

use js_sys::{Array, Object, Reflect, Uint32Array, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::error::{encode_error, n, stream_error, Failure};
use crate::live::{self, Live};
use crate::opts::Options;

/// The spec names, for error messages.
pub const SPEC_NAMES: &str =
    "length[:W[:le|be]] (W = 1..8 or varint), bson, lines, fixed:N, json-header, packet";

/// Options of a codec beyond its spec. Every field is optional; `None` keeps
/// the framing's default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CodecOptions {
    /// The framing's main limit: the whole frame for `length` (header
    /// included), the document for `bson`, the line (without delimiter) for
    /// `lines`, the content for `json-header`. Not allowed for `fixed`.
    pub max_frame_len: Option<usize>,
    /// Fail on a frame over the limit (default) or skip it (`length`,
    /// `bson`, `lines` only).
    pub oversize: Option<OversizePolicy>,
    /// Receive buffer limit (default: the framing's frame limit, at least 64 KiB).
    pub max_buffered: Option<usize>,
    /// `length`: value added to the length field.
    pub adjustment: Option<i64>,
    /// `length`: the length field counts the header too.
    pub includes_header: Option<bool>,
    /// `lines`: the delimiter (1 to 8 bytes).
    pub delimiter: Option<Vec<u8>>,
    /// `lines`: deliver (and expect on encode) the delimiter as part of the payload.
    pub keep_delimiter: Option<bool>,
    /// `lines`: drop one `\r` before the delimiter.
    pub strip_cr: Option<bool>,
    /// `json-header`: the longest header.
    pub max_header_len: Option<usize>,
}

/// Every framing a spec can name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyFraming {
    /// Length-prefixed.
    Length(LengthPrefixed),
    /// BSON documents.
    Bson(BsonDocument),
    /// Delimited lines.
    Lines(Delimited),
    /// Fixed size.
    Fixed(Fixed),
    /// JSON header.
    JsonHeader(JsonHeader),
    /// Whole cs.packetstream packets.
    Packet(PacketFraming),
}

macro_rules! each {
    ($self:expr, $f:ident => $e:expr) => {
        match $self {
            AnyFraming::Length($f) => $e,
            AnyFraming::Bson($f) => $e,
            AnyFraming::Lines($f) => $e,
            AnyFraming::Fixed($f) => $e,
            AnyFraming::JsonHeader($f) => $e,
            AnyFraming::Packet($f) => $e,
        }
    };
}

impl Framing for AnyFraming {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        each!(self, f => f.decode(buf))
    }
    fn max_frame_len(&self) -> usize {
        each!(self, f => f.max_frame_len())
    }
    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        each!(self, f => f.header(payload))
    }
    fn trailer(&self) -> &[u8] {
        each!(self, f => f.trailer())
    }
    fn reset(&mut self) {
        each!(self, f => f.reset());
    }
    fn is_discarding(&self) -> bool {
        each!(self, f => f.is_discarding())
    }
}

fn spec_error(spec: &str, why: impl std::fmt::Display) -> Failure {
    Failure::new(
        "ERR_CODEC_SPEC",
        format!("codec {spec:?}: {why} (expected one of: {SPEC_NAMES})"),
    )
    .text("spec", spec)
}

fn length_field(spec: &str, parts: &[&str]) -> Result<LengthField, Failure> {
    match parts {
        [] => Ok(LengthField::U32_BE),
        ["varint"] => Ok(LengthField::VARINT),
        ["varint", _] => Err(spec_error(spec, "a varint length has no byte order")),
        [width, rest @ ..] if rest.len() <= 1 => {
            let Some(bytes) = width.parse::<u8>().ok().filter(|w| (1..=8).contains(w)) else {
                return Err(spec_error(
                    spec,
                    format!("length width {width:?} is not 1..8 or varint"),
                ));
            };
            let big_endian = match rest.first() {
                None | Some(&"be") => true,
                Some(&"le") => false,
                Some(order) => {
                    return Err(spec_error(
                        spec,
                        format!("byte order {order:?} is not le or be"),
                    ))
                }
            };
            Ok(LengthField::fixed(bytes, big_endian))
        }
        [_, _, extra, ..] => Err(spec_error(spec, format!("unexpected part {extra:?}"))),
        _ => Err(spec_error(spec, "malformed")),
    }
}

/// Builds the framing a spec and options describe.
#[allow(clippy::too_many_lines)]
pub fn build_framing(spec: &str, opts: &CodecOptions) -> Result<AnyFraming, Failure> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (name, params) = parts.split_first().expect("split yields at least one part");
    let no_params = || {
        if let Some(extra) = params.first() {
            Err(spec_error(
                spec,
                format!("{name} takes no parameter {extra:?}"),
            ))
        } else {
            Ok(())
        }
    };
    let not_for = |what: &str, set: bool| {
        if set {
            Err(Failure::argument(format!(
                "option {what} does not apply to codec {spec:?}"
            )))
        } else {
            Ok(())
        }
    };
    let length_only = opts.adjustment.is_some() || opts.includes_header.is_some();
    let lines_only =
        opts.delimiter.is_some() || opts.keep_delimiter.is_some() || opts.strip_cr.is_some();
    let oversize = opts.oversize.unwrap_or_default();
    if *name != "length" {
        not_for("adjustment/includesHeader", length_only)?;
    }
    if *name != "lines" {
        not_for("delimiter/keepDelimiter/stripCr", lines_only)?;
    }
    if *name != "json-header" {
        not_for("maxHeaderLen", opts.max_header_len.is_some())?;
    }
    let framing = match *name {
        "length" => {
            let field = length_field(spec, params)?;
            let mut f = LengthPrefixed::new()
                .with_length_field(field)
                .with_adjustment(opts.adjustment.unwrap_or(0))
                .with_includes_header(opts.includes_header.unwrap_or(false))
                .with_oversize(oversize);
            if let Some(max) = opts.max_frame_len {
                f = f.with_max_frame_len(max);
            }
            AnyFraming::Length(f)
        }
        "bson" => {
            no_params()?;
            let mut f = BsonDocument::new().with_oversize(oversize);
            if let Some(max) = opts.max_frame_len {
                f = f.with_max_len(max);
            }
            AnyFraming::Bson(f)
        }
        "lines" => {
            no_params()?;
            let mut f = Delimited::new()
                .with_strip_cr(opts.strip_cr.unwrap_or(true))
                .with_keep_delimiter(opts.keep_delimiter.unwrap_or(false))
                .with_oversize(oversize);
            if let Some(d) = &opts.delimiter {
                if d.is_empty() || d.len() > Delimited::MAX_DELIMITER_LEN {
                    return Err(Failure::argument(format!(
                        "a delimiter is 1 to {} bytes, not {}",
                        Delimited::MAX_DELIMITER_LEN,
                        d.len()
                    ))
                    .num("len", crate::error::n(d.len() as u64)));
                }
                f = f.with_delimiter(d);
            }
            if let Some(max) = opts.max_frame_len {
                f = f.with_max_line_len(max);
            }
            AnyFraming::Lines(f)
        }
        "fixed" => {
            let size = match params {
                [size] => size.parse::<usize>().ok().filter(|&s| s > 0),
                _ => None,
            };
            let Some(size) = size else {
                return Err(spec_error(
                    spec,
                    "fixed frame size is not a positive integer (use fixed:N)",
                ));
            };
            not_for("maxFrameLen", opts.max_frame_len.is_some())?;
            not_for("oversize", opts.oversize.is_some())?;
            AnyFraming::Fixed(Fixed::new(size))
        }
        "json-header" => {
            no_params()?;
            not_for("oversize", opts.oversize.is_some())?;
            let mut f = JsonHeader::new();
            if let Some(max) = opts.max_frame_len {
                f = f.with_max_content_len(max);
            }
            if let Some(max) = opts.max_header_len {
                f = f.with_max_header_len(max);
            }
            AnyFraming::JsonHeader(f)
        }
        "packet" => {
            no_params()?;
            let mut f = PacketFraming::new().with_oversize(oversize);
            if let Some(max) = opts.max_frame_len {
                f = f.with_max_packet_len(max);
            }
            AnyFraming::Packet(f)
        }
        _ => return Err(spec_error(spec, format!("unknown codec {name:?}"))),
    };
    Ok(framing)
}

/// A codec: encodes payloads into frames and decodes a byte stream in any
/// chunking into payloads, packed as `data` + `ends`.
pub struct CodecCore {
    spec: String,
    stream: FramedStream<AnyFraming>,
    /// Payloads decoded since the last [`take`](Self::take), back to back.
    data: Vec<u8>,
    /// End offset in `data` of each payload.
    ends: Vec<u32>,
    ended: bool,
}

impl CodecCore {
    /// A codec for `spec` with `options`.
    pub fn new(spec: &str, options: &CodecOptions) -> Result<Self, Failure> {
        let framing = build_framing(spec, options)?;
        let mut stream = FramedStream::new(framing);
        if let Some(max) = options.max_buffered {
            if max == 0 {
                return Err(Failure::argument("maxBuffered must be at least 1"));
            }
            stream = stream.with_max_buffered(max);
        }
        Ok(CodecCore {
            spec: spec.to_owned(),
            stream,
            data: Vec::new(),
            ends: Vec::new(),
            ended: false,
        })
    }

    /// The spec this codec was built from.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The framing.
    pub fn framing(&self) -> &AnyFraming {
        self.stream.framing()
    }

    /// Checks that `payload` can be sent and returns the whole frame.
    pub fn encode(&self, payload: &[u8]) -> Result<Vec<u8>, Failure> {
        let framing = self.stream.framing();
        let len = framing.encoded_len(payload).map_err(|e| encode_error(&e))?;
        let mut out = vec![0; len];
        framing
            .encode(payload, &mut out)
            .map_err(|e| encode_error(&e))?;
        Ok(out)
    }

    /// Checks that `payload` can be sent, without building the frame.
    pub fn check(&self, payload: &[u8]) -> Result<(), Failure> {
        self.stream
            .framing()
            .header(payload)
            .map(|_| ())
            .map_err(|e| encode_error(&e))
    }

    /// Takes `chunk` from the byte stream and decodes every frame it
    /// completes into the packed output. Returns the number of frames now
    /// waiting in the output. On a protocol error the frames decoded before
    /// it stay in the output (take them), and the codec is terminal: every
    /// later call fails the same way.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<usize, Failure> {
        if self.ended {
            return Err(Failure::new(
                "ERR_INPUT_AFTER_END",
                "input after end() of the stream",
            ));
        }
        let mut rest = chunk;
        loop {
            let taken = self
                .stream
                .handle_input(rest)
                .map_err(|e| stream_error(&e))?;
            rest = &rest[taken..];
            let produced = self.drain()?;
            if rest.is_empty() {
                break;
            }
            if taken == 0 && produced == 0 {
                // The stream guarantees progress on a full buffer; this would
                // be a bug, and must not spin.
                return Err(Failure::new(
                    "ERR_INTERNAL",
                    "the receive buffer is full and nothing can be decoded",
                ));
            }
        }
        Ok(self.ends.len())
    }

    /// The stream has ended: decodes what is left. Fails with
    /// `ERR_TRUNCATED` if the end falls inside a frame.
    pub fn finish(&mut self) -> Result<usize, Failure> {
        if !self.ended {
            self.ended = true;
            self.stream.handle_eof().map_err(|e| stream_error(&e))?;
        }
        self.drain()?;
        Ok(self.ends.len())
    }

    /// Moves decoded frames to the packed output; returns how many events
    /// (frames or skips) were seen.
    fn drain(&mut self) -> Result<usize, Failure> {
        // Frames are lent (copied straight into the packed output from the
        // receive buffer), not cut as `Bytes`: no reference count per frame,
        // and all of them in one call. On an error the frames before it are
        // in the output.
        let (data, ends) = (&mut self.data, &mut self.ends);
        self.stream
            .drain_events_with(|event| {
                if let Event::Frame(payload) = event {
                    append_payload(data, payload);
                    ends.push(data.len() as u32);
                }
            })
            .map_err(|e| stream_error(&e))
    }

    /// The payloads waiting in the output, back to back.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The end offset in [`data`](Self::data) of each payload waiting.
    pub fn ends(&self) -> &[u32] {
        &self.ends
    }

    /// Empties the output (keeping its capacity).
    pub fn clear_output(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    /// Takes the output: the payloads, each as its own vector.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        let mut start = 0;
        let out = self
            .ends
            .iter()
            .map(|&end| {
                let p = self.data[start..end as usize].to_vec();
                start = end as usize;
                p
            })
            .collect();
        self.clear_output();
        out
    }

    /// Bytes buffered for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.stream.buffered_len()
    }

    /// The receive buffer limit.
    pub fn max_buffered(&self) -> usize {
        self.stream.max_buffered()
    }

    /// The stream's counters.
    pub fn stats(&self) -> Stats {
        self.stream.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode_all(spec: &str, input: &[u8], split: usize) -> Result<Vec<Vec<u8>>, Failure> {
        let mut c = CodecCore::new(spec, &CodecOptions::default())?;
        for chunk in input.chunks(split.max(1)) {
            c.feed(chunk)?;
        }
        c.finish()?;
        Ok(c.take())
    }

    #[test]
    fn specs_parse() {
        let o = CodecOptions::default();
        assert_eq!(
            build_framing("length", &o).unwrap(),
            AnyFraming::Length(LengthPrefixed::new())
        );
        assert_eq!(
            build_framing("length:2:le", &o).unwrap(),
            AnyFraming::Length(LengthPrefixed::new().with_length_field(LengthField::U16_LE))
        );
        assert_eq!(
            build_framing("length:varint", &o).unwrap(),
            AnyFraming::Length(LengthPrefixed::new().with_length_field(LengthField::VARINT))
        );
        assert_eq!(
            build_framing("fixed:16", &o).unwrap(),
            AnyFraming::Fixed(Fixed::new(16))
        );
        for bad in [
            "",
            "nope",
            "length:0",
            "length:9",
            "length:4:xx",
            "length:varint:le",
            "fixed",
            "fixed:0",
            "fixed:x",
            "bson:1",
            "lines:2",
            "json-header:1",
            "length:4:be:1",
        ] {
            let e = build_framing(bad, &o).unwrap_err();
            assert_eq!(e.code, "ERR_CODEC_SPEC", "{bad}");
            assert!(e.message.contains(&format!("{bad:?}")), "{}", e.message);
        }
    }

    #[test]
    fn options_that_do_not_apply_are_refused() {
        let o = CodecOptions {
            delimiter: Some(b"\r\n".to_vec()),
            ..CodecOptions::default()
        };
        assert_eq!(
            build_framing("bson", &o).unwrap_err().code,
            "ERR_INVALID_ARGUMENT"
        );
        assert!(build_framing("lines", &o).is_ok());
        let o = CodecOptions {
            delimiter: Some(Vec::new()),
            ..CodecOptions::default()
        };
        assert_eq!(
            build_framing("lines", &o).unwrap_err().code,
            "ERR_INVALID_ARGUMENT"
        );
        let o = CodecOptions {
            max_frame_len: Some(3),
            ..CodecOptions::default()
        };
        assert_eq!(
            build_framing("fixed:2", &o).unwrap_err().code,
            "ERR_INVALID_ARGUMENT"
        );
    }

    #[test]
    fn golden_vectors_in_any_chunking() {
        // WIRE.md §3: socktools frame.
        let frame = hex(
            "00000028 5b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d",
        );
        // WIRE.md §1: bson.dumps({"hello": "world"}).
        let doc = hex("16000000 02 68656c6c6f00 06000000 776f726c6400 00");
        for split in [1, 2, 3, 7, 100] {
            let got = decode_all("length", &frame, split).unwrap();
            assert_eq!(got, vec![frame[4..].to_vec()]);
            let got = decode_all("bson", &[doc.clone(), doc.clone()].concat(), split).unwrap();
            assert_eq!(got, vec![doc.clone(), doc.clone()]);
            let got = decode_all("lines", b"hello\r\nworld\n", split).unwrap();
            assert_eq!(got, vec![b"hello".to_vec(), b"world".to_vec()]);
        }
        let c = CodecCore::new("length", &CodecOptions::default()).unwrap();
        assert_eq!(c.encode(&frame[4..]).unwrap(), frame);
    }

    #[test]
    fn packets_are_whole_frames() {
        // WIRE.md: request tag 2 "hello", response tag 300 with 200 bytes, EOF.
        let big: Vec<u8> = [
            &[0x81, 0x4b, 0x82, 0x2c, 0x04][..],
            &(0..200u8).collect::<Vec<_>>(),
        ]
        .concat();
        let packets = vec![
            b"\x08\x02\x02\x01hello".to_vec(),
            big,
            b"\x03\x00\x02\x00".to_vec(),
        ];
        for split in [1, 3, 64, 1000] {
            assert_eq!(
                decode_all("packet", &packets.concat(), split).unwrap(),
                packets
            );
        }
        let c = CodecCore::new("packet", &CodecOptions::default()).unwrap();
        assert_eq!(c.encode(&packets[0]).unwrap(), packets[0]);
        assert_eq!(
            c.encode(&packets[0][..5]).unwrap_err().code,
            "ERR_MALFORMED"
        );
    }

    #[test]
    fn errors_keep_earlier_frames() {
        let mut c = CodecCore::new(
            "length:1",
            &CodecOptions {
                max_frame_len: Some(4),
                ..CodecOptions::default()
            },
        )
        .unwrap();
        let e = c.feed(b"\x01a\x02bc\x09").unwrap_err();
        assert_eq!(e.code, "ERR_FRAME_TOO_LONG");
        assert_eq!(c.take(), vec![b"a".to_vec(), b"bc".to_vec()]);
        assert_eq!(c.feed(b"x").unwrap_err().code, "ERR_FRAME_TOO_LONG");
    }

    #[test]
    fn truncation_at_the_end() {
        let mut c = CodecCore::new("length", &CodecOptions::default()).unwrap();
        c.feed(b"\0\0\0\x05abc").unwrap();
        let e = c.finish().unwrap_err();
        assert_eq!(e.code, "ERR_TRUNCATED");
        assert!(
            e.message.contains("3 of 9") || e.message.contains("7 of 9"),
            "{}",
            e.message
        );
        assert_eq!(c.feed(b"x").unwrap_err().code, "ERR_INPUT_AFTER_END");
    }

    #[test]
    fn decode_stream_counts_every_frame() {
        let mut c = CodecCore::new("length:1", &CodecOptions::default()).unwrap();
        let input: Vec<u8> = (0..100u8).flat_map(|i| [1, i]).collect();
        assert_eq!(decode_stream(&mut c, &input, 7).unwrap(), 100);
        assert!(c.data().is_empty());
    }

    #[test]
    fn input_larger_than_the_buffer_is_taken_in_steps() {
        let mut c = CodecCore::new(
            "fixed:3",
            &CodecOptions {
                max_buffered: Some(4),
                ..CodecOptions::default()
            },
        )
        .unwrap();
        assert_eq!(c.feed(b"abcdefghijkl").unwrap(), 4);
        assert_eq!(c.data(), b"abcdefghijkl");
        assert_eq!(c.ends(), &[3, 6, 9, 12]);
    }
}

/// Decodes `input` fed in `chunk`-byte pieces, emptying the output after
/// each; returns the number of frames. The loop both halves of the
/// wasm-versus-native decode benchmark run (`examples/decode_bench.rs`
/// natively, [`DecodeBench`] in wasm).
pub fn decode_stream(codec: &mut CodecCore, input: &[u8], chunk: usize) -> Result<usize, Failure> {
    let mut frames = 0;
    for c in input.chunks(chunk.max(1)) {
        frames += codec.feed(c)?;
        codec.clear_output();
    }
    frames += codec.finish()?;
    codec.clear_output();
    Ok(frames)
}

/// The wasm half of the decode benchmark (`scripts/bench-wasm.sh`): holds an
/// input in wasm memory and runs [`decode_stream`] on it, so the time
/// measured is decoding in wasm, with nothing crossing into JS per frame.
/// Not part of the package's public API.
#[wasm_bindgen]
pub struct DecodeBench {
    input: Vec<u8>,
}

#[wasm_bindgen]
impl DecodeBench {
    /// Copies `input` into wasm memory once.
    #[wasm_bindgen(constructor)]
    pub fn new(input: Vec<u8>) -> DecodeBench {
        DecodeBench { input }
    }

    /// Decodes the input with a fresh codec for `spec`, in `chunk`-byte
    /// pieces; returns the number of frames.
    pub fn run(&self, spec: &str, chunk: u32) -> Result<f64, Failure> {
        let mut codec = CodecCore::new(spec, &CodecOptions::default())?;
        let frames = decode_stream(&mut codec, &self.input, chunk as usize)?;
        Ok(n(frames as u64))
    }
}

/// Reads [`CodecOptions`] from a JS options object (`undefined` = defaults).
fn codec_options(options: &JsValue) -> Result<CodecOptions, Failure> {
    let o = Options::new(options, "options")?;
    let oversize = match o.string("oversize")?.as_deref() {
        None => None,
        Some("fail") => Some(OversizePolicy::Fail),
        Some("skip") => Some(OversizePolicy::Skip),
        Some(other) => {
            return Err(Failure::argument(format!(
                "options.oversize must be \"fail\" or \"skip\", not {other:?}"
            )))
        }
    };
    Ok(CodecOptions {
        max_frame_len: o.usize("maxFrameLen")?,
        oversize,
        max_buffered: o.usize("maxBuffered")?,
        adjustment: o.i64("adjustment")?,
        includes_header: o.bool("includesHeader")?,
        delimiter: o.bytes("delimiter")?,
        keep_delimiter: o.bool("keepDelimiter")?,
        strip_cr: o.bool("stripCr")?,
        max_header_len: o.usize("maxHeaderLen")?,
    })
}

/// The codec as the package's JS layer sees it: decoded payloads come out
/// packed (`take()` → `[data, ends]`), and the JS `Codec` class cuts them
/// into views.
#[wasm_bindgen]
pub struct RawCodec {
    core: CodecCore,
    _live: Live,
}

#[wasm_bindgen]
impl RawCodec {
    /// A codec for `spec` (see the module documentation) with `options`
    /// (`maxFrameLen`, `oversize`, `maxBuffered`, `adjustment`,
    /// `includesHeader`, `delimiter`, `keepDelimiter`, `stripCr`, `maxHeaderLen`).
    #[wasm_bindgen(constructor)]
    pub fn new(spec: &str, options: &JsValue) -> Result<RawCodec, Failure> {
        Ok(RawCodec {
            core: CodecCore::new(spec, &codec_options(options)?)?,
            _live: Live::new(&live::CODECS),
        })
    }

    /// The whole frame for `payload`.
    pub fn encode(&self, payload: &[u8]) -> Result<Vec<u8>, Failure> {
        self.core.encode(payload)
    }

    /// Throws if `payload` cannot be sent in this framing.
    pub fn check(&self, payload: &[u8]) -> Result<(), Failure> {
        self.core.check(payload)
    }

    /// Decodes `chunk`; returns the number of payloads waiting in the output.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<u32, Failure> {
        self.core.feed(chunk).map(|n| n as u32)
    }

    /// End of the stream; throws `ERR_TRUNCATED` inside a frame.
    pub fn finish(&mut self) -> Result<u32, Failure> {
        self.core.finish().map(|n| n as u32)
    }

    /// The waiting payloads as `[data: Uint8Array, ends: Uint32Array]`,
    /// then empties the output.
    pub fn take(&mut self) -> Array {
        let data = Uint8Array::from(self.core.data());
        let ends = Uint32Array::from(self.core.ends());
        self.core.clear_output();
        Array::of2(&data, &ends)
    }

    /// The spec.
    #[wasm_bindgen(getter)]
    pub fn spec(&self) -> String {
        self.core.spec().to_owned()
    }

    /// Bytes buffered for an incomplete frame.
    #[wasm_bindgen(getter)]
    pub fn buffered(&self) -> f64 {
        n(self.core.buffered() as u64)
    }

    /// The receive buffer limit.
    #[wasm_bindgen(getter, js_name = maxBuffered)]
    pub fn max_buffered(&self) -> f64 {
        n(self.core.max_buffered() as u64)
    }

    /// The largest frame accepted, header included.
    #[wasm_bindgen(getter, js_name = maxFrameLen)]
    pub fn max_frame_len(&self) -> f64 {
        n(self.core.framing().max_frame_len() as u64)
    }

    /// Counters: `framesReceived`, `bytesReceived`, `framesSkipped`, `bytesSkipped`.
    #[wasm_bindgen(getter)]
    pub fn stats(&self) -> Object {
        let s = self.core.stats();
        let o = Object::new();
        for (k, v) in [
            ("framesReceived", s.frames_received),
            ("bytesReceived", s.bytes_received),
            ("framesSkipped", s.frames_skipped),
            ("bytesSkipped", s.bytes_skipped),
        ] {
            let _ = Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_f64(n(v)));
        }
        o
    }
}

/// Payloads up to this long are appended by a byte loop (see
/// [`append_payload`]).
const SMALL_PAYLOAD: usize = 32;

/// Appends `payload` to the packed output. Short payloads are copied by a
/// loop the compiler unrolls: in wasm a `memory.copy` (what
/// `extend_from_slice` becomes) has a fixed cost that dominates copies of a
/// few bytes.
#[inline]
fn append_payload(data: &mut Vec<u8>, payload: &[u8]) {
    if payload.len() <= SMALL_PAYLOAD {
        data.extend(payload.iter().copied());
    } else {
        data.extend_from_slice(payload);
    }
}
