// Opening and closing 1,000 connections must not grow memory: every
// Connection and its WebSocket (with the handlers it owns) is garbage after
// it closes (weak references), the wasm objects of each connection are freed
// when it closes (counted by the wasm module), the wasm memory does not
// grow, and the JS heap after a full GC stays near where it was. Measured in
// a child process run with --expose-gc.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { here } from './helpers.mjs';
import { startServices } from './services.mjs';

let services;
before(async () => {
  services = await startServices();
});
after(async () => {
  await services?.stop();
});

test('1,000 connections opened and closed leave no memory behind', { timeout: 300000 }, async () => {
  const out = await new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', path.join(here, 'memory-run.mjs'), JSON.stringify(services.urls.stream), '1000'],
      { cwd: here, timeout: 280000 }, (err, stdout, stderr) => {
        const line = stdout.trim().split('\n').pop();
        try {
          resolve(JSON.parse(line));
        } catch {
          reject(err ?? new Error(`no result: ${stdout} ${stderr}`));
        }
      });
  });
  assert.equal(out.error, undefined, out.error);
  const { before: b, after: a } = out;
  console.log(`# memory over ${out.cycles} connections (${Math.round(out.ms)} ms): ${out.alive} of ${out.tracked} connections and sockets alive after GC, wasm memory ${b.memoryBytes} -> ${a.memoryBytes} bytes, JS heap ${b.heapUsed} -> ${a.heapUsed} bytes`);
  // Nothing of a closed connection is kept: connections and WebSockets are collected.
  assert.equal(out.tracked, 2 * out.cycles);
  assert.equal(out.alive, 0, `${out.alive} connections or sockets still alive after GC`);
  // Every connection's wasm state was freed.
  assert.deepEqual([a.packetCores, a.codecs], [0, 0]);
  assert.deepEqual([b.packetCores, b.codecs], [0, 0]);
  // The wasm memory did not grow (it grows by 64 KiB pages; a leak of even a few hundred
  // bytes per connection would add pages over 1,000 connections).
  assert.ok(a.memoryBytes <= b.memoryBytes, `wasm memory grew from ${b.memoryBytes} to ${a.memoryBytes}`);
  // The JS heap after full GCs stays within 2 MiB of where it was. (A leaked Connection
  // with its WebSocket is several KiB, so 1,000 would be megabytes; the same loop over bare
  // `ws` sockets without framewire also grows the heap by a few hundred KiB: Node's and
  // V8's own caches, which is why the bound is not tighter.)
  assert.ok(a.heapUsed - b.heapUsed < 2 * 1024 * 1024, `JS heap grew by ${a.heapUsed - b.heapUsed} bytes`);
});
