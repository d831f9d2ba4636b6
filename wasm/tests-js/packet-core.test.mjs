// PacketCore, the sans-IO packet connection: WIRE.md's packet bytes, two
// cores talking to each other in random chunkings, time passed in from JS.
import test from 'node:test';
import assert from 'node:assert/strict';
import { fw, hex, toHex, rng, randomChunks } from './helpers.mjs';

const { PacketCore } = fw;
const enc = (s) => new TextEncoder().encode(s);
const dec = (b) => new TextDecoder().decode(b);

function drain(core) {
  const events = [];
  let ev;
  while ((ev = core.pollEvent()) !== undefined) events.push(ev);
  return events;
}

test('requests, responses, failures and markers are WIRE.md\'s bytes', () => {
  const client = new PacketCore();
  assert.equal(client.submit(0, 0, 0, enc('hello'), 0), 2);
  assert.equal(client.submit(0, 1, 3, enc('abc'), 0), 3);
  assert.equal(toHex(client.takeTransmit()), '0802020168656c6c6f' + '06030e02616263');
  assert.equal(client.takeTransmit(), undefined);

  const server = new PacketCore();
  assert.equal(server.handleInput(hex('0802020168656c6c6f 06030e02616263')), 16);
  const [a, b] = drain(server);
  assert.deepEqual({ ...a, payload: dec(a.payload) }, { type: 'request', channel: 0, tag: 2, rqType: 0, flags: 0, payload: 'hello' });
  assert.deepEqual({ ...b, payload: dec(b.payload) }, { type: 'request', channel: 0, tag: 3, rqType: 1, flags: 3, payload: 'abc' });
  server.respond(0, 2, 0, enc('hello'));
  server.respond(0, 3, 7, enc('flags'));
  assert.equal(toHex(server.takeTransmit()), '07020468656c6c6f' + '07033c666c616773');
  // A failure, as the original's server sends it.
  server.handleInput(hex('1b 05 02 01') /* truncated on purpose: the rest follows */);
  server.handleInput(enc('x'.repeat(0x1b - 3)));
  const [c] = drain(server);
  assert.equal(c.tag, 5);
  server.reject(0, 5, 'exception during handler');
  assert.equal(toHex(server.takeTransmit()), '1a0500' + toHex(enc('exception during handler')));
  // ERQ then EOF on close.
  server.close();
  assert.equal(toHex(server.takeTransmit()), '03010200' + '03000200');
  assert.equal(server.state, 'closing');
  assert.throws(() => server.respond(0, 99, 0, enc('')), (e) => e.code === 'ERR_NOT_IN_FLIGHT' && e.tag === 99);
});

test('two cores in random chunkings: every request answered once, in any order', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const random = rng(seed);
    const a = new PacketCore();
    const b = new PacketCore();
    const sent = new Map();
    for (let i = 0; i < 100; i++) {
      const payload = Uint8Array.from({ length: Math.floor(random() * (random() < 0.05 ? 20000 : 50)) }, () => random() * 256);
      sent.set(a.submit(0, i % 4, i, payload, 0), payload);
    }
    a.close();
    const answered = new Map();
    const move = (from, to) => {
      const bytes = from.takeTransmit();
      if (!bytes) return false;
      for (const chunk of randomChunks(bytes, random, 300)) {
        let off = 0;
        let stalls = 0;
        while (off < chunk.length) {
          const n = to.handleInput(chunk.subarray(off));
          off += n;
          serve(to);
          stalls = n === 0 ? stalls + 1 : 0;
          assert.ok(stalls < 3, 'input is taken again once events are drained');
        }
      }
      return true;
    };
    const serve = (core) => {
      for (const ev of drain(core)) {
        if (ev.type === 'request') core.respond(ev.channel, ev.tag, ev.flags, ev.payload.slice().reverse());
        else if (ev.type === 'response') {
          assert.ok(!answered.has(ev.tag), 'answered once');
          answered.set(ev.tag, ev);
        } else if (ev.type === 'closed' || ev.type === 'peerClosed' || ev.type === 'peerEndedRequests') {
          // expected at the end
        } else {
          assert.fail(`unexpected ${JSON.stringify(ev)}`);
        }
      }
    };
    for (let round = 0; round < 1000 && (move(a, b) | move(b, a)); round++);
    assert.equal(answered.size, 100, `seed ${seed}`);
    for (const [tag, ev] of answered) {
      assert.equal(ev.ok, true);
      assert.equal(ev.flags, tag - 2);
      assert.deepEqual(ev.payload, sent.get(tag).slice().reverse());
    }
    assert.equal(a.state, 'closed');
    assert.equal(b.state, 'closed');
    a.free();
    b.free();
  }
});

test('timeouts run on the time JS passes in', () => {
  const core = new PacketCore();
  const t1 = core.submit(0, 0, 0, enc('a'), 1000, 50);
  const t2 = core.submit(0, 0, 0, enc('b'), 1010, 100);
  assert.equal(core.pollTimeout(), 1050);
  core.handleTimeout(1049.9);
  assert.deepEqual(drain(core), []);
  core.handleTimeout(1050);
  assert.deepEqual(drain(core), [{ type: 'timeout', channel: 0, tag: t1 }]);
  assert.equal(core.pollTimeout(), 1110);
  assert.equal(core.isPending(0, t2), true);
  // A late response to t1 is unknown; t2 is answered.
  core.handleInput(hex('03 02 04 00'.replace('02', t1.toString(16).padStart(2, '0'))));
  core.handleInput(hex('04 03 04 6262'.replace('04 03', '04 0' + t2.toString(16))));
  const evs = drain(core);
  assert.equal(evs[0].type, 'unknownResponse');
  assert.equal(evs[1].type, 'response');
  assert.equal(core.pollTimeout(), undefined);
  assert.equal(core.stats.timedOut, 1);
  assert.throws(() => core.handleTimeout(-1), { code: 'ERR_INVALID_ARGUMENT' });
  assert.throws(() => core.submit(0, 0, 0, enc(''), NaN), { code: 'ERR_INVALID_ARGUMENT' });
});

test('errors: limits, protocol errors and misuse carry codes', () => {
  const core = new PacketCore({ maxPacketLen: 64, maxPendingOutbound: 1 });
  assert.throws(() => core.submit(0, 0, 0, new Uint8Array(100), 0), (e) => e.code === 'ERR_PAYLOAD_TOO_LONG' && e.max === 64);
  core.submit(0, 0, 0, enc(''), 0);
  assert.throws(() => core.submit(0, 0, 0, enc(''), 0), (e) => e.code === 'ERR_TOO_MANY_PENDING' && e.max === 1);
  assert.throws(() => core.submit(5, 0, 0, enc(''), 0), (e) => e.code === 'ERR_UNKNOWN_CHANNEL' && e.channel === 5);
  assert.throws(() => core.submit(0, 0.5, 0, enc(''), 0), (e) => e.code === 'ERR_INVALID_ARGUMENT' && /rqType/.test(e.message));
  assert.throws(() => new PacketCore({ maxPacketLen: 0 }), { code: 'ERR_CONFIG' });
  assert.throws(() => new PacketCore({ maxPacketLen: 'big' }), { code: 'ERR_INVALID_ARGUMENT' });
  // A packet over the limit is a protocol error, reported as an event and then on input.
  core.handleInput(hex('7f'));
  const evs = drain(core);
  assert.equal(evs[0].type, 'protocolError');
  assert.ok(evs[0].error instanceof Error);
  assert.equal(evs[0].error.code, 'ERR_PACKET');
  assert.match(evs[0].error.message, /over the limit of 64|64/);
  assert.equal(evs[1].type, 'cancelled');
  assert.throws(() => core.handleInput(hex('00')), (e) => /connection failed/.test(e.message));
  core.handleEof();
  assert.throws(() => core.handleInput(hex('00')), { code: 'ERR_INPUT_AFTER_END' });
});
