// The npm package as a user gets it: `npm pack`, install the tarball into a
// fresh folder, then require() and import it there.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { packageDir } from './helpers.mjs';

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 });

test('npm pack output installs into a fresh folder and works there (require and import)', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'framewire-pack-'));
  try {
    const manifest = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8'));
    assert.equal(manifest.name, 'framewire');
    assert.match(manifest.version, /^\d+\.\d+\.\d+/);
    assert.equal(manifest.types, './index.d.ts');
    for (const cond of ['types', 'node', 'import', 'require', 'default']) assert.ok(cond in manifest.exports['.'], cond);

    const tarball = run('npm', ['pack', '--silent', '--pack-destination', work, packageDir], work).trim().split('\n').pop();
    assert.equal(tarball, `framewire-${manifest.version}.tgz`);
    const listing = run('tar', ['-tzf', path.join(work, tarball)], work).split('\n');
    for (const f of ['package/package.json', 'package/README.md', 'package/index.d.ts', 'package/node/index.cjs',
      'package/node/index.mjs', 'package/node/framewire_wasm_bg.wasm', 'package/web/index.js',
      'package/web/framewire_wasm_bg.wasm', 'package/lib/api.mjs', 'package/lib/api.cjs']) {
      assert.ok(listing.includes(f), `${f} in the tarball`);
    }

    const app = path.join(work, 'app');
    run('mkdir', ['-p', app], work);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--silent', path.join(work, tarball)], app);
    assert.ok(existsSync(path.join(app, 'node_modules/framewire/index.d.ts')));

    writeFileSync(path.join(app, 'use.cjs'), `
      const fw = require('framewire');
      const c = new fw.Codec('length');
      const frame = c.encode('hi');
      const [p] = c.push(frame);
      const doc = fw.decodeBson(fw.encodeBson({ hello: 'world', n: 5n }));
      console.log(JSON.stringify({ version: fw.version, frame: Array.from(frame), p: Buffer.from(p).toString(), hello: doc.hello, n: String(doc.n) }));
    `);
    const cjs = JSON.parse(run('node', ['use.cjs'], app));
    assert.deepEqual(cjs, { version: manifest.version, frame: [0, 0, 0, 2, 104, 105], p: 'hi', hello: 'world', n: '5' });

    writeFileSync(path.join(app, 'use.mjs'), `
      import fw, { Codec, encodeBson, Connection, PacketCore, version } from 'framewire';
      const core = new PacketCore();
      core.submit(0, 0, 0, new TextEncoder().encode('hello'), 0);
      const bytes = core.takeTransmit();
      console.log(JSON.stringify({ version, same: fw.Codec === Codec, conn: typeof Connection,
        packet: Buffer.from(bytes).toString('hex'), bson: encodeBson({}).length }));
    `);
    const esm = JSON.parse(run('node', ['use.mjs'], app));
    assert.deepEqual(esm, { version: manifest.version, same: true, conn: 'function', packet: '0802020168656c6c6f', bson: 5 });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
