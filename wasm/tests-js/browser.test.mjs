// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// a page served on loopback loads the package's web build (ES module + wasm),
// connects through `framewire gateway` to the Rust servers with the browser's
// own WebSocket, and runs the same scenarios as the Node end-to-end tests.
// The test reads the results from the page.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { packageDir, here, within } from './helpers.mjs';
import { startServices } from './services.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html', '.json': 'application/json' };

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>framewire in the browser</title>
<script type="module">
  const results = [];
  window.__results = results;
  try {
    const fw = await import('/pkg/web/index.js');
    const { scenarios } = await import('/tests/scenarios.mjs');
    const urls = JSON.parse(new URLSearchParams(location.search).get('urls'));
    // The codecs and BSON work in the page too.
    const codec = new fw.Codec('length');
    const [p] = codec.push(codec.encode('in the page'));
    results.push({ name: 'codec', mode: '-', ok: new TextDecoder().decode(p) === 'in the page'
      && fw.decodeBson(fw.encodeBson({ n: 5n })).n === 5n, value: fw.version });
    for (const mode of ['stream', 'frame']) {
      for (const [name, run] of Object.entries(scenarios)) {
        try {
          const value = await run({ fw, WebSocket, urls: urls[mode], mode });
          results.push({ name, mode, ok: true, value });
        } catch (e) {
          results.push({ name, mode, ok: false, error: String(e && e.stack || e) });
        }
      }
    }
  } catch (e) {
    results.push({ name: 'load', mode: '-', ok: false, error: String(e && e.stack || e) });
  }
  window.__done = true;
</script>`;

function serve() {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    let file;
    if (url.pathname === '/' || url.pathname === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(PAGE);
      return;
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    if (url.pathname.startsWith('/pkg/')) file = path.join(packageDir, url.pathname.slice(5));
    else if (url.pathname === '/tests/scenarios.mjs') file = path.join(here, 'scenarios.mjs');
    if (!file || !path.resolve(file).startsWith(path.resolve(file.startsWith(here) ? here : packageDir))) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

let services;
let server;
before(async () => {
  services = await startServices();
  server = await serve();
});
after(async () => {
  server?.close();
  await services?.stop();
});

test('headless Chromium: the package loads, connects through the gateway and runs every scenario', { timeout: 180000 }, async () => {
  const profile = await mkdtemp(path.join(tmpdir(), 'framewire-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 60000,
  });
  const console = [];
  try {
    const page = context.pages()[0] ?? await context.newPage();
    page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => console.push(`pageerror: ${e.message}`));
    const { port } = server.address();
    const urls = encodeURIComponent(JSON.stringify(services.urls));
    await page.goto(`http://127.0.0.1:${port}/?urls=${urls}`, { timeout: 30000 });
    await within(150000, page.waitForFunction(() => window.__done === true, null, { timeout: 150000 }), 'the page\'s scenarios');
    const results = await page.evaluate(() => window.__results);
    const failed = results.filter((r) => !r.ok);
    assert.deepEqual(failed, [], `failed in Chromium:\n${JSON.stringify(failed, null, 2)}\nconsole:\n${console.join('\n')}`);
    // codec + 6 scenarios x 2 modes.
    assert.equal(results.length, 13, JSON.stringify(results));
    const close = results.find((r) => r.name === 'serverClose' && r.mode === 'frame');
    assert.equal(close.value.code, 1000);
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
});
