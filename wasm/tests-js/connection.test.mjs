// The Connection class over a scripted WebSocket (no network): both modes'
// chunking, back-pressure (ready/drain), the input limit, peer requests with
// bounded concurrency, cancellation on the peer's close, timeouts.
import test from 'node:test';
import assert from 'node:assert/strict';
import { fw, hex, toHex, concat } from './helpers.mjs';

const { Connection, Codec, PacketCore } = fw;
const enc = (s) => new TextEncoder().encode(s);
const dec = (b) => new TextDecoder().decode(b);

/** A WebSocket stand-in: records what is sent, lets the test deliver messages and close. */
class FakeSocket {
  constructor() {
    this.readyState = 0;
    this.bufferedAmount = 0;
    this.sent = [];
    this.closedWith = null;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  send(data) {
    this.sent.push(Uint8Array.from(data));
  }
  deliver(bytes) {
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }
  close(code = 1005, reason = '') {
    this.closedWith = { code, reason };
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason, wasClean: true }));
  }
  peerClose(code, reason) {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: true });
  }
}

function setup(options = {}) {
  const ws = new FakeSocket();
  const conn = new Connection(() => ws, options);
  ws.open();
  return { ws, conn };
}

/** A PacketCore playing the peer: reads what the connection sent, answers with `answer`. */
function peer() {
  const core = new PacketCore();
  return {
    core,
    take(ws) {
      for (const m of ws.sent.splice(0)) core.handleInput(m);
      const events = [];
      let ev;
      while ((ev = core.pollEvent()) !== undefined) events.push(ev);
      return events;
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 1));

test('stream mode: any chunking of the peer\'s bytes, one byte per message included', async () => {
  const { ws, conn } = setup();
  const p = peer();
  const pending = [conn.request(0, 'a'), conn.request(1, 'bb', { flags: 3 })];
  const reqs = p.take(ws);
  assert.deepEqual(reqs.map((r) => [r.tag, r.rqType, r.flags, dec(r.payload)]), [[2, 0, 0, 'a'], [3, 1, 3, 'bb']]);
  p.core.respond(0, 3, 7, enc('second'));
  p.core.respond(0, 2, 0, enc('first'));
  const bytes = p.core.takeTransmit();
  for (let i = 0; i < bytes.length; i++) ws.deliver(bytes.subarray(i, i + 1));
  const [a, b] = await Promise.all(pending);
  assert.deepEqual([a.ok, a.flags, dec(a.payload)], [true, 0, 'first']);
  assert.deepEqual([b.ok, b.flags, dec(b.payload)], [true, 7, 'second']);
  ws.peerClose(1000, '');
});

test('frame mode: every message sent is exactly one whole packet', async () => {
  const { ws, conn } = setup({ mode: 'frame' });
  const pending = [conn.request(0, 'x'), conn.request(0, new Uint8Array(5000)), conn.request(0, '')];
  assert.equal(ws.sent.length, 3);
  for (const m of ws.sent) {
    const frames = new Codec('packet').push(m);
    assert.equal(frames.length, 1);
    assert.equal(toHex(frames[0]), toHex(m));
  }
  const p = peer();
  for (const r of p.take(ws)) p.core.respond(r.channel, r.tag, 0, r.payload);
  // Packets may also arrive several to a message.
  ws.deliver(p.core.takeTransmit());
  const rs = await Promise.all(pending);
  assert.deepEqual(rs.map((r) => r.payload.length), [1, 5000, 0]);
  ws.peerClose(1000, '');
});

test('ready() waits for bufferedAmount to fall; drain follows a send over highWaterMark', async () => {
  const { ws, conn } = setup({ codec: 'length', highWaterMark: 100, lowWaterMark: 10 });
  let drains = 0;
  conn.on('drain', () => { drains += 1; });
  await conn.ready(); // nothing buffered
  ws.bufferedAmount = 500;
  conn.send(new Uint8Array(10));
  let ready = false;
  const r = conn.ready().then(() => { ready = true; });
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(ready, false);
  assert.equal(drains, 0);
  ws.bufferedAmount = 50; // below high, above low: still waiting
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(ready, false);
  ws.bufferedAmount = 10;
  await r;
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(drains, 1);
  // The frame went out framed (stream mode).
  assert.equal(toHex(ws.sent[0]), '0000000a' + '00'.repeat(10));
});

test('the peer\'s close cancels requests still waiting, and close carries code and reason', async () => {
  const { ws, conn } = setup();
  const closed = new Promise((r) => conn.once('close', r));
  const pending = conn.request(0, 'never answered');
  const cores = fw.memoryStats().packetCores;
  ws.peerClose(1000, 'service closed the connection');
  await assert.rejects(pending, (e) => e.code === 'ERR_CANCELLED' && e.tag === 2);
  assert.deepEqual(await closed, { code: 1000, reason: 'service closed the connection', wasClean: true });
  await assert.rejects(conn.request(0, 'late'), { code: 'ERR_CLOSED' });
  assert.throws(() => conn.send('x'), { code: 'ERR_CLOSED' });
  assert.equal(fw.memoryStats().packetCores, cores - 1, 'the wasm state was freed');
});

test('timeouts: the core\'s deadline fires through one JS timer', async () => {
  const { ws, conn } = setup();
  const slow = conn.request(0, 'slow', { timeoutMs: 20 });
  const other = conn.request(0, 'no deadline');
  assert.equal(conn.core.pollTimeout() !== undefined, true, 'the core holds the deadline');
  await assert.rejects(slow, (e) => e.code === 'ERR_TIMEOUT' && /timed out/.test(e.message));
  assert.equal(conn.pending, 1);
  assert.equal(conn.core.pollTimeout(), undefined);
  ws.peerClose(1000, '');
  await assert.rejects(other, { code: 'ERR_CANCELLED' });
});

test('peer requests: handlers answer in any order; maxInflightInbound bounds them', async () => {
  const { ws, conn } = setup({ packet: { maxInflightInbound: 2 } });
  let running = 0;
  let most = 0;
  conn.serve(async ({ payload }) => {
    running += 1;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 2));
    running -= 1;
    return [1, payload];
  });
  const p = peer();
  for (let i = 0; i < 20; i++) p.core.submit(0, 0, 0, enc(`r${i}`), 0);
  ws.deliver(p.core.takeTransmit()); // all 20 in one message
  const answers = new Map();
  for (let round = 0; round < 500 && answers.size < 20; round++) {
    await tick();
    for (const ev of p.take(ws)) if (ev.type === 'response') answers.set(ev.tag, dec(ev.payload));
  }
  assert.equal(answers.size, 20);
  for (const [tag, text] of answers) assert.equal(text, `r${tag - 2}`);
  assert.ok(most <= 2, `at most 2 handlers at once, saw ${most}`);
  ws.peerClose(1000, '');
});

test('no handler: the original\'s "no request handler"; a throwing handler: "exception during handler"', async () => {
  const { ws, conn } = setup();
  const p = peer();
  p.core.submit(0, 0, 0, enc('a'), 0);
  ws.deliver(p.core.takeTransmit());
  await tick();
  let [ev] = p.take(ws);
  assert.deepEqual([ev.ok, dec(ev.payload)], [false, 'no request handler']);
  const errors = [];
  conn.on('handlerError', (e) => errors.push(e.message));
  conn.serve(() => { throw new Error('boom'); });
  p.core.submit(0, 0, 0, enc('b'), 0);
  ws.deliver(p.core.takeTransmit());
  await tick();
  [ev] = p.take(ws);
  assert.deepEqual([ev.ok, dec(ev.payload)], [false, 'exception during handler']);
  assert.deepEqual(errors, ['boom']);
  ws.peerClose(1000, '');
});

test('input the core cannot take waits in JS up to maxQueuedInput, then the connection fails', async () => {
  const { ws, conn } = setup({ packet: { maxPacketLen: 1024, maxReceiveBuffer: 1024, maxInflightInbound: 1 }, maxQueuedInput: 4096 });
  conn.serve(() => new Promise(() => {})); // never answers: input stops being taken
  const errors = [];
  conn.on('error', (e) => errors.push(e));
  const p = peer();
  const parts = [];
  for (let i = 0; i < 40; i++) {
    p.core.submit(0, 0, 0, new Uint8Array(200), 0);
    parts.push(p.core.takeTransmit());
  }
  ws.deliver(concat(parts));
  await tick();
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'ERR_INPUT_OVERFLOW');
  assert.equal(errors[0].max, 4096);
  assert.equal(ws.closedWith.code, 4002);
});

test('framed codecs: BSON objects in and out, decode errors reported', async () => {
  const { ws, conn } = setup({ codec: 'bson' });
  const objects = [];
  const errors = [];
  conn.on('object', (o) => objects.push(o));
  conn.on('error', (e) => errors.push(e.code));
  conn.sendObject({ a: 1 });
  assert.equal(toHex(ws.sent[0]), toHex(fw.encodeBson({ a: 1 })));
  const docs = concat([fw.encodeBson({ x: 1 }), fw.encodeBson({ y: 'z' })]);
  ws.deliver(docs.subarray(0, 7));
  ws.deliver(docs.subarray(7));
  assert.deepEqual(objects, [{ x: 1 }, { y: 'z' }]);
  ws.deliver(hex('05000000 07'));
  assert.deepEqual(errors, ['ERR_BSON_TERMINATOR']);
  assert.equal(ws.closedWith.code, 4002);
  await assert.rejects(conn.request(0, 'x'), (e) => e.code === 'ERR_INVALID_ARGUMENT' && /packet codec/.test(e.message));
});
