import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { makeDirs } from '../src/fsutil.js';
import { tempDir } from './helpers.js';

describe('makeDirs', () => {
  it('creates missing parents and accepts a directory that exists', () => {
    const dir = path.join(tempDir(), 'a', 'b', 'c');
    makeDirs(dir);
    assert.ok(statSync(dir).isDirectory());
    makeDirs(dir);
    assert.ok(statSync(dir).isDirectory());
  });

  it('fails on a file in the way, at the target or above it', () => {
    const file = path.join(tempDir(), 'f');
    writeFileSync(file, 'x');
    assert.throws(() => makeDirs(file), { code: 'EEXIST' });
    assert.throws(() => makeDirs(path.join(file, 'sub')), { code: 'ENOTDIR' });
  });

  it('fails at once where the kernel refuses every mkdir (procfs), without looping', () => {
    assert.throws(() => makeDirs('/proc/dvrlab-no-such/out'), { code: 'ENOENT' });
    assert.equal(existsSync('/proc/dvrlab-no-such'), false);
  });
});
