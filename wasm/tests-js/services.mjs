// Starts the Rust side of the end-to-end tests: the packet-stream test
// server and a BSON echo server (`framewire echo`), the js_peer example, and
// one `framewire gateway` per service and mode. Everything on loopback,
// port 0; `stop()` ends every process.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { repo, startProcess, stopProcess } from './helpers.mjs';

const bin = process.env.FRAMEWIRE_BIN ?? path.join(repo, 'target/debug/framewire');
const peerBin = process.env.FRAMEWIRE_JS_PEER ?? path.join(repo, 'target/debug/examples/js_peer');
const LISTENING = /listening on (127\.0\.0\.1:\d+)/;

export async function startServices() {
  for (const b of [bin, peerBin]) {
    if (!existsSync(b)) throw new Error(`${b} is missing: run scripts/test-wasm.sh (it builds framewire-cli and the js_peer example)`);
  }
  const procs = [];
  const start = async (cmd, args, pattern) => {
    const p = await startProcess(cmd, args, pattern);
    procs.push(p);
    return p.match[1];
  };
  try {
    const tcp = {
      packet: await start(bin, ['echo', '127.0.0.1:0', '--codec', 'packet'], LISTENING),
      bson: await start(bin, ['echo', '127.0.0.1:0', '--codec', 'bson'], LISTENING),
      peer: await start(peerBin, ['127.0.0.1:0'], /listening (127\.0\.0\.1:\d+)/),
    };
    const urls = { stream: {}, frame: {} };
    for (const [name, addr] of Object.entries(tcp)) {
      const codec = name === 'bson' ? 'bson' : 'packet';
      urls.stream[name] = `ws://${await start(bin, ['gateway', '--ws', '127.0.0.1:0', '--tcp', addr], LISTENING)}/`;
      urls.frame[name] = `ws://${await start(bin, ['gateway', '--ws', '127.0.0.1:0', '--tcp', addr, '--frame', codec], LISTENING)}/`;
    }
    return { urls, tcp, stop: () => Promise.all(procs.map(stopProcess)) };
  } catch (e) {
    await Promise.all(procs.map(stopProcess));
    throw e;
  }
}
