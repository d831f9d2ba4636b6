// Shared helpers of the JS tests: where the built package is, hex, a seeded
// random chunker, and child processes (gateway, servers) with deadlines.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
/** The package folder under test (scripts/build-wasm.sh output, or FRAMEWIRE_PACKAGE). */
export const packageDir = process.env.FRAMEWIRE_PACKAGE ?? path.join(repo, 'target/npm/framewire');
const require = createRequire(import.meta.url);
/** The package, loaded as Node loads it (CommonJS entry). */
export const fw = require(packageDir);

export function hex(s) {
  const clean = s.replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-f]/i.test(clean)) throw new Error(`bad hex ${s}`);
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}

export function toHex(bytes) {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function concat(parts) {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A seeded PRNG (mulberry32): deterministic test inputs. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts `bytes` into random chunks (empty chunks and single bytes included). */
export function randomChunks(bytes, random, maxChunk = 17) {
  const out = [];
  let at = 0;
  while (at < bytes.length) {
    const n = Math.floor(random() * (maxChunk + 1));
    out.push(bytes.subarray(at, Math.min(bytes.length, at + n)));
    at += n;
  }
  return out;
}

/**
 * Starts a child process and resolves with it and the first match of `pattern` on its
 * stdout or stderr (e.g. the address it listens on). Rejects after `timeoutMs`.
 */
export function startProcess(cmd, args, pattern, { timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let seen = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')}: no ${pattern} within ${timeoutMs} ms; output: ${seen}`));
    }, timeoutMs);
    const onData = (d) => {
      seen += d.toString();
      const m = seen.match(pattern);
      if (m) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        child.stderr.off('data', onData);
        // Keep draining so the child never blocks on a full pipe.
        child.stdout.resume();
        child.stderr.resume();
        resolve({ child, match: m, output: () => seen });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited (${code}) before printing ${pattern}: ${seen}`));
    });
  });
}

/** Ends a child started by startProcess (stdin closed, then SIGTERM, then SIGKILL). */
export async function stopProcess(proc) {
  const { child } = proc;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin.end();
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

/** Rejects if `promise` has not settled within `ms`. */
export function within(ms, promise, what = 'operation') {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]);
}
