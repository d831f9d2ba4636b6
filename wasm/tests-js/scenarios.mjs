// End-to-end scenarios of the package's Connection class through
// `framewire gateway` to Rust servers. Shared by the Node tests (with the
// `ws` package) and the headless Chromium page (with the browser's
// WebSocket), so it uses nothing but the package and the platform.
//
// `env` = { fw, WebSocket, urls, mode }: `urls.packet` reaches the
// packet-stream test server (`framewire echo --codec packet`), `urls.peer`
// the js_peer example (calls the client back), `urls.bson` a BSON echo
// server, each for `mode` ('stream': raw gateway, 'frame': --frame C).

const enc = (s) => new TextEncoder().encode(s);
const dec = (b) => new TextDecoder().decode(b);

function check(cond, message) {
  if (!cond) throw new Error(message);
}

function eq(actual, expected, what) {
  const a = JSON.stringify(actual, (k, v) => (typeof v === 'bigint' ? `${v}n` : v));
  const e = JSON.stringify(expected, (k, v) => (typeof v === 'bigint' ? `${v}n` : v));
  check(a === e, `${what}: got ${a}, expected ${e}`);
}

function deadline(ms, promise, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]);
}

function connect(env, url, options = {}) {
  return deadline(10000, env.fw.Connection.connect(url, { WebSocket: env.WebSocket, mode: env.mode, ...options }), `connect ${url}`);
}

const view = (r) => ({ ok: r.ok, flags: r.flags, payload: dec(r.payload) });

export const scenarios = {
  /** Requests and responses, every answer kind of the test server, 200 pipelined. */
  async requests(env) {
    const conn = await connect(env, env.urls.packet);
    eq(view(await conn.request(0, 'hello')), { ok: true, flags: 0, payload: 'hello' }, 'rq 0 echo');
    eq(view(await conn.request(1, 'stressed')), { ok: true, flags: 0, payload: 'desserts' }, 'rq 1 reversed');
    eq(view(await conn.request(2, '')), { ok: true, flags: 7, payload: 'flags' }, 'rq 2 flags');
    eq(view(await conn.request(3, 'xyz', { flags: 63 })), { ok: true, flags: 63, payload: 'xyz' }, 'rq 3 flags echoed');
    eq(view(await conn.request(9, 'nope')), { ok: false, flags: 0, payload: 'exception during handler' }, 'rq 9 failure');
    const many = await deadline(20000, Promise.all(
      Array.from({ length: 200 }, (_, i) => conn.request(i % 2, `n${i}`, { flags: i })),
    ), '200 pipelined requests');
    many.forEach((r, i) => {
      const want = `n${i}`;
      eq(view(r), { ok: true, flags: 0, payload: i % 2 ? [...want].reverse().join('') : want }, `pipelined ${i}`);
    });
    check(conn.pending === 0, 'nothing pending');
    const closed = await deadline(10000, conn.close(), 'close');
    check(conn.closed, 'closed');
    return { requests: 205, close: closed };
  },

  /** A 1 MiB payload each way, and a BSON object as a request payload. */
  async large(env) {
    const conn = await connect(env, env.urls.packet);
    const big = new Uint8Array(1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 0xff;
    const r = await deadline(30000, conn.request(0, big), '1 MiB echo');
    check(r.ok && r.payload.length === big.length, `1 MiB echo: ok ${r.ok}, ${r.payload.length} bytes`);
    for (let i = 0; i < big.length; i++) if (r.payload[i] !== big[i]) throw new Error(`1 MiB echo differs at byte ${i}`);
    const rev = await deadline(30000, conn.request(1, big), '1 MiB reversed');
    check(rev.payload[0] === big[big.length - 1] && rev.payload[big.length - 1] === big[0], '1 MiB reversed');
    const obj = await conn.request(0, { hello: 'world', n: 5n });
    eq(env.fw.decodeBson(obj.payload), { hello: 'world', n: 5n }, 'BSON payload echo');
    await deadline(10000, conn.close(), 'close');
    return { bytes: 2 * big.length };
  },

  /** Timeouts come from JS time passed into the core; a late answer is an unknown response. */
  async timeout(env) {
    const conn = await connect(env, env.urls.packet);
    let unknown = 0;
    conn.on('unknownResponse', () => { unknown += 1; });
    // rq 4 answers after (payload length mod 50) ms: 49 ms here.
    let error;
    try {
      await conn.request(4, 'x'.repeat(49), { timeoutMs: 5 });
    } catch (e) {
      error = e;
    }
    check(error && error.code === 'ERR_TIMEOUT', `expected ERR_TIMEOUT, got ${error && error.code}`);
    // The late answer arrives while this call is served.
    eq(view(await conn.request(4, 'x'.repeat(100))), { ok: true, flags: 0, payload: 'x'.repeat(100) }, 'rq 4 in time');
    await deadline(10000, conn.close(), 'close');
    check(unknown === 1, `one unknown (late) response, saw ${unknown}`);
    return { timedOut: 1 };
  },

  /** The server calls the client back; JS handlers (sync, async, failing) answer. */
  async callbacks(env) {
    const seen = [];
    const conn = await connect(env, env.urls.peer, {
      handler: (rq) => {
        seen.push(rq.rqType);
        if (rq.rqType === 1) return { flags: 3, payload: `sync:${dec(rq.payload)}` };
        if (rq.rqType === 2) return new Promise((resolve) => setTimeout(() => resolve([5, enc(`async:${dec(rq.payload)}`)]), 10));
        if (rq.rqType === 3) return 9;
        throw new Error('handler refuses');
      },
    });
    // rq 10: the server calls us with rq_type = flags and the same payload, and answers with our response.
    eq(view(await conn.request(10, 'ping', { flags: 1 })), { ok: true, flags: 3, payload: 'sync:ping' }, 'sync handler');
    eq(view(await conn.request(10, 'pong', { flags: 2 })), { ok: true, flags: 5, payload: 'async:pong' }, 'async handler');
    eq(view(await conn.request(10, '', { flags: 3 })), { ok: true, flags: 9, payload: '' }, 'flags only');
    eq(view(await conn.request(10, 'x', { flags: 4 })), { ok: false, flags: 0, payload: 'client failed: exception during handler' }, 'failing handler');
    const many = await deadline(20000, Promise.all(Array.from({ length: 50 }, (_, i) => conn.request(10, `m${i}`, { flags: 1 }))), '50 callbacks');
    many.forEach((r, i) => eq(view(r), { ok: true, flags: 3, payload: `sync:m${i}` }, `callback ${i}`));
    await deadline(10000, conn.close(), 'close');
    return { callbacks: seen.length };
  },

  /** The server closes: pending work ends, the close event carries the gateway's code. */
  async serverClose(env) {
    const conn = await connect(env, env.urls.peer);
    const closed = new Promise((resolve) => conn.on('close', resolve));
    eq(view(await conn.request(11, '')), { ok: true, flags: 0, payload: 'bye' }, 'rq 11');
    const info = await deadline(10000, closed, 'server close');
    check(conn.closed, 'closed');
    let error;
    try {
      await conn.request(0, 'late');
    } catch (e) {
      error = e;
    }
    check(error && error.code === 'ERR_CLOSED', `request after close: ${error && error.code}`);
    return { code: info.code, reason: info.reason };
  },

  /** BSON objects both ways through the BSON echo server; raw frames too; then close. */
  async bson(env) {
    const { fw } = env;
    const conn = await connect(env, env.urls.bson, { codec: 'bson' });
    const objects = [];
    const messages = [];
    conn.on('object', (o) => objects.push(o));
    conn.on('message', (m) => messages.push(m));
    const when = new Date(Date.UTC(2024, 5, 30, 12));
    const sent = [
      { hello: 'world' },
      { n: 42, big: 2n ** 40n, x: 0.5, s: 'h\u00e9', raw: new Uint8Array([1, 2]), at: when, nothing: null, sub: { k: [1, [2, 'three']] } },
      { pad: 'p'.repeat(100000) },
    ];
    for (const o of sent) conn.sendObject(o);
    conn.send(fw.encodeBson({ raw: true }));
    await deadline(10000, (async () => {
      while (objects.length < 4) await new Promise((r) => setTimeout(r, 5));
    })(), 'BSON echoes');
    eq(objects.slice(0, 3), sent, 'objects echoed');
    eq(objects[3], { raw: true }, 'raw frame echoed');
    check(messages.length === 4 && messages[0].length === 22, 'message events carry the documents');
    let error;
    try {
      conn.send(new Uint8Array([1, 2, 3]));
    } catch (e) {
      error = e;
    }
    check(error && error.code === 'ERR_MALFORMED', `a non-document is refused locally: ${error && error.code}`);
    await conn.ready();
    const info = await deadline(10000, conn.close(), 'close');
    return { objects: objects.length, code: info.code };
  },
};
