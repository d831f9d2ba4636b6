// The TypeScript types: a usage file that touches every export compiles
// under `tsc --strict` against the built package (resolved through its
// package.json `exports` and `types`).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, symlinkSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { here, packageDir } from './helpers.mjs';

test('index.d.ts covers everything exported (tsc --strict on a usage file)', { timeout: 120000 }, async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'framewire-types-'));
  try {
    mkdirSync(path.join(work, 'node_modules'));
    symlinkSync(packageDir, path.join(work, 'node_modules/framewire'), 'dir');
    copyFileSync(path.join(here, 'types/usage.ts'), path.join(work, 'usage.ts'));
    copyFileSync(path.join(here, 'types/tsconfig.json'), path.join(work, 'tsconfig.json'));
    const tsc = path.join(here, 'node_modules/.bin/tsc');
    const result = await new Promise((resolve) => {
      execFile(tsc, ['-p', work], { cwd: work, timeout: 110000 }, (err, stdout, stderr) => resolve({ err, out: stdout + stderr }));
    });
    assert.equal(result.err, null, result.out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
