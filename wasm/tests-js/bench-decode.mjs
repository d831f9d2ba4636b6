// Decoding throughput of the wasm codec under Node versus the same Rust code
// native, on the same input (DESIGN.md target: wasm within 2x of native).
// Run through scripts/bench-wasm.sh, which builds both sides and passes the
// native binary: node bench-decode.mjs NATIVE_BIN
//
// Each workload is one stream file, fed in 64 KiB chunks. The sides take
// turns for ROUNDS rounds of RUNS runs each (so a burst of load on this
// shared machine hits both, not one), and each reports its best run.
// * native: `decode_stream` (codec.rs) compiled for the host;
// * wasm decode: the same `decode_stream` compiled to wasm, on the input
//   already in wasm memory (DecodeBench): decoding in wasm, the DESIGN target;
// * wasm packed: Codec.pushPacked from JS (the chunk copied into wasm, the
//   payloads copied out into one JS buffer + end offsets per chunk);
// * wasm views: Codec.push (the same, plus one Uint8Array view per frame).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fw, concat, rng, packageDir } from './helpers.mjs';

// The raw wasm-bindgen glue (the same instance the package uses), for DecodeBench.
const glue = createRequire(import.meta.url)(path.join(packageDir, 'node/framewire_wasm.js'));

const native = process.argv[2];
if (!native) {
  console.error('usage: node bench-decode.mjs NATIVE_BIN (see scripts/bench-wasm.sh)');
  process.exit(2);
}
const CHUNK = 64 * 1024;
const RUNS = Number(process.env.RUNS ?? 3);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const TARGET = 16 * 1024 * 1024;

function stream(spec, makePayload) {
  const codec = new fw.Codec(spec);
  const parts = [];
  let total = 0;
  for (let i = 0; total < TARGET; i++) {
    const f = codec.encode(makePayload(i));
    parts.push(f);
    total += f.length;
  }
  return concat(parts);
}

const random = rng(42);
const bytes = (n) => Uint8Array.from({ length: n }, () => random() * 256);
const p16 = bytes(16);
const p1k = bytes(1024);
const p64k = bytes(65536);
const workloads = [
  { name: '16-byte frames, length', spec: 'length', input: stream('length', () => p16) },
  { name: '1 KiB frames, length', spec: 'length', input: stream('length', () => p1k) },
  { name: '64 KiB frames, length', spec: 'length', input: stream('length', () => p64k) },
  { name: '50-byte BSON documents', spec: 'bson', input: stream('bson', (i) => fw.encodeBson({ seq: i & 0x7fffffff, pad: new Uint8Array(26).fill(0x78) })) },
  { name: '40-byte lines', spec: 'lines', input: stream('lines', () => 'x'.repeat(40)) },
];

function timeWasmDecode(spec, input) {
  const bench = new glue.DecodeBench(input);
  let best = Infinity;
  let frames = 0;
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    frames = bench.run(spec, CHUNK);
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  bench.free();
  return { frames, seconds: best };
}

function timeWasm(spec, input, method) {
  let best = Infinity;
  let frames = 0;
  for (let r = 0; r < RUNS; r++) {
    const codec = new fw.Codec(spec);
    let n = 0;
    const t0 = performance.now();
    for (let at = 0; at < input.length; at += CHUNK) {
      const chunk = input.subarray(at, at + CHUNK);
      if (method === 'packed') n += codec.pushPacked(chunk).ends.length;
      else n += codec.push(chunk).length;
    }
    n += codec.end().length;
    const secs = (performance.now() - t0) / 1000;
    codec.free();
    best = Math.min(best, secs);
    frames = n;
  }
  return { frames, seconds: best };
}

const dir = mkdtempSync(path.join(tmpdir(), 'framewire-bench-'));
const rows = [];
try {
  for (const w of workloads) {
    const file = path.join(dir, 'input.bin');
    writeFileSync(file, w.input);
    const best = (a, b) => (a && a.seconds <= b.seconds ? a : b);
    let nat, wasm, packed, views;
    for (let round = 0; round < ROUNDS; round++) {
      nat = best(nat, JSON.parse(execFileSync(native, [w.spec, String(CHUNK), file, String(RUNS)], { encoding: 'utf8' })));
      wasm = best(wasm, timeWasmDecode(w.spec, w.input));
      packed = best(packed, timeWasm(w.spec, w.input, 'packed'));
      views = best(views, timeWasm(w.spec, w.input, 'views'));
    }
    if (wasm.frames !== nat.frames || packed.frames !== nat.frames || views.frames !== nat.frames) {
      throw new Error(`${w.name}: frame counts differ (native ${nat.frames}, wasm ${wasm.frames}/${packed.frames}/${views.frames})`);
    }
    rows.push({ ...w, nat, wasm, packed, views });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const mbps = (bytesN, s) => (bytesN / s / 1e6).toFixed(0);
const mfps = (frames, s) => (frames / s / 1e6).toFixed(2);
console.log(`decode, ${(TARGET / 1048576).toFixed(0)} MiB per workload in ${CHUNK / 1024} KiB chunks, best of ${ROUNDS} rounds x ${RUNS} runs, sides alternating (node ${process.version})`);
const cell = (n, x) => `${mbps(n, x.seconds)} (${mfps(x.frames, x.seconds)})`;
const ratio = (x, nat) => `${(x.seconds / nat.seconds).toFixed(2)}x`;
console.log('MB/s (million frames/s); ratios are time against native (target: wasm decode within 2x)');
console.log('| workload | native | wasm decode | wasm packed (JS) | wasm views (JS) | decode / native | packed / native | views / native |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const n = r.input.length;
  console.log(`| ${r.name} | ${cell(n, r.nat)} | ${cell(n, r.wasm)} | ${cell(n, r.packed)} | ${cell(n, r.views)} | ${ratio(r.wasm, r.nat)} | ${ratio(r.packed, r.nat)} | ${ratio(r.views, r.nat)} |`);
}
