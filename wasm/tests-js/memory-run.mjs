// Child of memory.test.mjs, run with --expose-gc: opens and closes
// connections through the gateway (`node --expose-gc memory-run.mjs URLS
// CYCLES`) and prints one JSON line with memory figures before and after.
import WebSocket from 'ws';
import { fw } from './helpers.mjs';

const [urlsJson, cyclesArg] = process.argv.slice(2);
const urls = JSON.parse(urlsJson);
const cycles = Number(cyclesArg);

// Weak references to every connection and WebSocket of the measured cycles:
// after a full GC none may be alive.
let refs = null;
function track(conn) {
  refs?.push(new WeakRef(conn));
  return conn;
}
const socket = (url) => () => {
  const ws = new WebSocket(url);
  refs?.push(new WeakRef(ws));
  return ws;
};

async function cycle(i) {
  if (i % 2 === 0) {
    const conn = track(await fw.Connection.connect(socket(urls.packet)));
    const r = await conn.request(0, `cycle ${i}`, { timeoutMs: 10000 });
    if (!r.ok || new TextDecoder().decode(r.payload) !== `cycle ${i}`) throw new Error(`bad echo in cycle ${i}`);
    await conn.close();
  } else {
    const conn = track(await fw.Connection.connect(socket(urls.bson), { codec: 'bson' }));
    const echoed = new Promise((resolve) => conn.once('object', resolve));
    conn.sendObject({ i });
    const o = await echoed;
    if (o.i !== i) throw new Error(`bad BSON echo in cycle ${i}`);
    await conn.close();
  }
}

async function settle() {
  for (let k = 0; k < 4; k++) {
    await new Promise((r) => setTimeout(r, 20));
    globalThis.gc();
  }
}

function snapshot() {
  return { heapUsed: process.memoryUsage().heapUsed, ...fw.memoryStats() };
}

const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ error: 'watchdog: no result within 240 s' }));
  process.exit(2);
}, 240000);
try {
  // Warm up: JIT, allocator high-water marks, ws internals.
  for (let i = 0; i < 100; i++) await cycle(i);
  await settle();
  refs = new Array();
  const before = snapshot();
  const t0 = performance.now();
  for (let i = 0; i < cycles; i++) await cycle(i);
  const ms = performance.now() - t0;
  await settle();
  const after = snapshot();
  const tracked = refs.length;
  const alive = refs.filter((r) => r.deref() !== undefined).length;
  console.log(JSON.stringify({ cycles, ms, before, after, tracked, alive }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.stack || e) }));
  process.exitCode = 1;
}
clearTimeout(watchdog);
