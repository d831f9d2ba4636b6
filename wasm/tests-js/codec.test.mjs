// Codecs on golden vectors from shared/WIRE.md, in random chunkings, and
// their errors.
import test from 'node:test';
import assert from 'node:assert/strict';
import { fw, hex, toHex, concat, rng, randomChunks } from './helpers.mjs';

const { Codec } = fw;

// WIRE.md §3: socktools frames (u32 big-endian length + JSON body).
const SOCKTOOLS = [
  '00000028 5b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d',
  '00000013 5b2263686174222c2022685c7530306539225d',
];
// WIRE.md §4: the tutorial's search request (u16 header length, JSON header, content).
const TUTORIAL =
  '0067 7b22627974656f72646572223a20226c6974746c65222c2022636f6e74656e742d74797065223a2022746578742f6a736f6e222c2022636f6e74656e742d656e636f64696e67223a20227574662d38222c2022636f6e74656e742d6c656e677468223a2034317d'
  + '7b22616374696f6e223a2022736561726368222c202276616c7565223a20226d6f727068657573227d';
// WIRE.md §1 and §2.
const BSON_HELLO = '16000000 02 68656c6c6f00 06000000 776f726c6400 00';
const BSON_SMALL = '3200000010736571000000000005706164001a00000000787878787878787878787878787878787878787878787878787800';
const PACKETS = ['08 02 02 01 68656c6c6f', '06 03 0e 02 616263', '05 02 03 05 01 78', '07 02 3c 666c616773', '04 0c 83 7c 66', '03000200'];

/** Decodes `stream` in random chunkings (several seeds) and checks the payloads each time. */
function checkChunkings(spec, stream, expected, options) {
  for (let seed = 1; seed <= 20; seed++) {
    const codec = new Codec(spec, options);
    const got = [];
    for (const chunk of randomChunks(stream, rng(seed), seed % 5 === 0 ? 1 : 2 * seed)) got.push(...codec.push(chunk));
    got.push(...codec.end());
    assert.deepEqual(got.map(toHex), expected.map(toHex), `${spec}, seed ${seed}`);
    codec.free();
  }
  // And all at once.
  const codec = new Codec(spec, options);
  assert.deepEqual([...codec.push(stream), ...codec.end()].map(toHex), expected.map(toHex));
}

test('length (socktools): golden frames encode and decode in any chunking', () => {
  const frames = SOCKTOOLS.map(hex);
  const codec = new Codec('length');
  for (const f of frames) assert.equal(toHex(codec.encode(f.subarray(4))), toHex(f));
  assert.equal(new TextDecoder().decode(frames[1].subarray(4)), '["chat", "h\\u00e9"]');
  checkChunkings('length', concat([...frames, ...frames]), [...frames, ...frames].map((f) => f.subarray(4)));
});

test('length variants: widths, byte orders, varint (BSUInt vectors)', () => {
  assert.equal(toHex(new Codec('length:2:le').encode('hi')), '02006869');
  assert.equal(toHex(new Codec('length:2').encode('hi')), '00026869');
  assert.equal(toHex(new Codec('length:1').encode('hi')), '026869');
  assert.equal(toHex(new Codec('length:8:le').encode('')), '0000000000000000');
  // WIRE.md: BSUInt 0→00 127→7f 128→81 00 255→81 7f 300→82 2c 16383→ff 7f 16384→81 80 00.
  const varint = new Codec('length:varint');
  for (const [n, h] of [[0, '00'], [127, '7f'], [128, '8100'], [255, '817f'], [300, '822c'], [16383, 'ff7f'], [16384, '818000']]) {
    const frame = varint.encode(new Uint8Array(n));
    assert.equal(toHex(frame.subarray(0, h.length / 2)), h, `BSUInt ${n}`);
    assert.equal(frame.length, n + h.length / 2);
  }
  // A cs.packetstream packet is a BSUInt-length frame: payload = body.
  const packets = PACKETS.map(hex);
  checkChunkings('length:varint', concat(packets), packets.map((p) => p.subarray(p[0] === 0x81 ? 2 : 1)));
  const big = new Uint8Array(70000).map((_, i) => i % 251);
  const frames = [new Codec('length:4:le').encode(big), new Codec('length:4:le').encode('x')];
  checkChunkings('length:4:le', concat(frames), [big, new TextEncoder().encode('x')]);
});

test('bson: documents back to back, the payload is the whole document', () => {
  const docs = [hex(BSON_HELLO), hex(BSON_SMALL), hex('0500000000')];
  checkChunkings('bson', concat(docs), docs);
  assert.equal(toHex(new Codec('bson').encode(docs[0])), toHex(docs[0]));
  assert.throws(() => new Codec('bson').encode(docs[0].subarray(0, 21)), { code: 'ERR_MALFORMED' });
});

test('lines: \\n-terminated, \\r dropped; keepDelimiter is socktools line mode', () => {
  const enc = new TextEncoder();
  checkChunkings('lines', enc.encode('hello\r\nworld\n\n'), ['hello', 'world', ''].map((s) => enc.encode(s)));
  // WIRE.md: socktools line mode keeps the \n: `hello\n` = 68656c6c6f0a.
  const keep = new Codec('lines', { keepDelimiter: true });
  assert.equal(toHex(keep.push(hex('68656c6c6f0a'))[0]), '68656c6c6f0a');
  assert.equal(toHex(keep.encode('hello\n')), '68656c6c6f0a');
  assert.equal(toHex(new Codec('lines').encode('hi')), '68690a');
  checkChunkings('lines', enc.encode('a||bb||'), ['a', 'bb'].map((s) => enc.encode(s)), { delimiter: '||' });
  assert.throws(() => new Codec('lines').encode('a\nb'), (e) => e.code === 'ERR_CONTAINS_DELIMITER' && e.at === 1);
});

test('fixed:N and json-header', () => {
  const enc = new TextEncoder();
  checkChunkings('fixed:3', enc.encode('abcdefghi'), ['abc', 'def', 'ghi'].map((s) => enc.encode(s)));
  assert.throws(() => new Codec('fixed:3').encode('ab'), (e) => e.code === 'ERR_WRONG_SIZE' && e.len === 2 && e.expected === 3);
  const msg = hex(TUTORIAL);
  assert.equal(msg.length, 2 + 0x67 + 41);
  checkChunkings('json-header', concat([msg, msg]), [msg, msg]);
  assert.equal(toHex(new Codec('json-header').encode(msg)), toHex(msg));
});

test('packet: whole cs.packetstream packets (WIRE.md) in any chunking, checked on encode', () => {
  const packets = [...PACKETS, '81 4b 82 2c 04' + Array.from({ length: 200 }, (_, i) => i.toString(16).padStart(2, '0')).join('')].map(hex);
  checkChunkings('packet', concat(packets), packets);
  const codec = new Codec('packet');
  for (const p of packets) assert.equal(toHex(codec.encode(p)), toHex(p));
  assert.throws(() => codec.encode(packets[0].subarray(0, 5)), { code: 'ERR_MALFORMED' });
  assert.throws(() => new Codec('packet', { maxFrameLen: 4 }).push(packets[0]), (e) => e.code === 'ERR_FRAME_TOO_LONG' && e.len === 9 && e.max === 4);
  // A body that ends inside its header fields.
  assert.throws(() => new Codec('packet').push(hex('01 02')), (e) => e.code === 'ERR_PACKET' && /ends inside the flags field/.test(e.message));
});

test('random frames of every framing survive random chunkings', () => {
  const random = rng(7);
  const specs = ['length', 'length:2:le', 'length:varint', 'length:8', 'bson', 'lines', 'fixed:5'];
  for (const spec of specs) {
    const codec = new Codec(spec);
    const payloads = [];
    for (let i = 0; i < 200; i++) {
      let p;
      if (spec === 'fixed:5') p = Uint8Array.from({ length: 5 }, () => random() * 256);
      else if (spec === 'lines') p = Uint8Array.from({ length: Math.floor(random() * 40) }, () => 32 + random() * 90);
      else if (spec === 'bson') p = fw.encodeBson({ i, s: 'x'.repeat(Math.floor(random() * 40)) });
      else p = Uint8Array.from({ length: Math.floor(random() * (random() < 0.1 ? 3000 : 40)) }, () => random() * 256);
      payloads.push(p);
    }
    const stream = concat(payloads.map((p) => codec.encode(p)));
    checkChunkings(spec, stream, payloads);
  }
});

test('pushPacked returns one buffer and end offsets', () => {
  const codec = new Codec('length:1');
  const { data, ends } = codec.pushPacked(hex('01 61 00 02 6263 01'));
  assert.equal(toHex(data), '616263');
  assert.deepEqual([...ends], [1, 1, 3]);
  assert.equal(codec.buffered, 1);
  assert.deepEqual(codec.stats, { framesReceived: 3, bytesReceived: 7, framesSkipped: 0, bytesSkipped: 0 });
});

test('errors are Errors with a code, the numbers, and the frames before them', () => {
  const codec = new Codec('length:1', { maxFrameLen: 5 });
  let error;
  try {
    codec.push(hex('01 61 02 6263 09'));
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof Error);
  assert.equal(error.code, 'ERR_FRAME_TOO_LONG');
  assert.equal(error.len, 10);
  assert.equal(error.max, 5);
  assert.match(error.message, /frame of 10 bytes is over the limit of 5/);
  assert.deepEqual(error.frames.map(toHex), ['61', '6263']);
  // Terminal: every later call fails the same way.
  assert.throws(() => codec.push(hex('00')), { code: 'ERR_FRAME_TOO_LONG' });

  const t = new Codec('length');
  t.push(hex('00000005 6162'));
  assert.throws(() => t.end(), (e) => e.code === 'ERR_TRUNCATED' && e.have === 6 && e.need === 9 && /peer closed inside a frame/.test(e.message));

  assert.throws(() => new Codec('bson').push(hex('04000000')), (e) => e.code === 'ERR_BSON_LENGTH' && e.len === 4);
  assert.throws(() => new Codec('bson').push(hex('0500000001')), (e) => e.code === 'ERR_BSON_TERMINATOR' && e.found === 1);
  assert.throws(() => new Codec('lines', { maxFrameLen: 3 }).push(new TextEncoder().encode('abcdef')), (e) => e.code === 'ERR_LINE_TOO_LONG' && e.max === 3);
  assert.throws(() => new Codec('length', { maxFrameLen: 8 }).encode('123456789'), (e) => e.code === 'ERR_PAYLOAD_TOO_LONG' && e.len === 9 && e.max === 4);
  // A length prefix of ff ff ff ff fails on the header alone.
  assert.throws(() => new Codec('length').push(hex('ffffffff')), (e) => e.code === 'ERR_FRAME_TOO_LONG' && e.len === 4294967299);
});

test('oversize: skip drops the frame and carries on', () => {
  const codec = new Codec('length:1', { maxFrameLen: 3, oversize: 'skip' });
  const frames = codec.push(hex('01 61 05 0102030405 01 62'));
  assert.deepEqual(frames.map(toHex), ['61', '62']);
  assert.equal(codec.stats.framesSkipped, 1);
});

test('bad specs and options are refused with a useful message', () => {
  assert.throws(() => new Codec('nope'), (e) => e.code === 'ERR_CODEC_SPEC' && /unknown codec "nope"/.test(e.message) && /expected one of/.test(e.message));
  assert.throws(() => new Codec('length:9'), (e) => e.code === 'ERR_CODEC_SPEC' && /width "9"/.test(e.message));
  assert.throws(() => new Codec('fixed:0'), { code: 'ERR_CODEC_SPEC' });
  assert.throws(() => new Codec('bson', { delimiter: 'x' }), { code: 'ERR_INVALID_ARGUMENT' });
  assert.throws(() => new Codec('length', { maxFrameLen: -1 }), (e) => e.code === 'ERR_INVALID_ARGUMENT' && /maxFrameLen/.test(e.message));
  assert.throws(() => new Codec('length', { oversize: 'maybe' }), { code: 'ERR_INVALID_ARGUMENT' });
  assert.throws(() => new Codec('length').push(42), { code: 'ERR_INVALID_ARGUMENT' });
  const ended = new Codec('length');
  ended.end();
  assert.throws(() => ended.push(hex('00')), { code: 'ERR_INPUT_AFTER_END' });
});
