import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ADDON_FILE, NATIVE_FUNCTION_NAMES, addonCandidates, getNative, loadNative } from './native';
import { NodemeshError } from '../errors';

test('addonCandidates resolves the package root from dist/src/datapath and from src/datapath', () => {
  const fromDist = addonCandidates('/fake/root/dist/src/datapath');
  assert.deepEqual(fromDist, [path.join('/fake/root', ADDON_FILE), path.join('/fake/root/dist', ADDON_FILE)]);
  const fromSrc = addonCandidates('/fake/root/src/datapath');
  assert.equal(fromSrc[0], path.join('/fake/root', ADDON_FILE));
  assert.equal(fromSrc.length, 2);
});

test('a missing addon throws ERR_NM_ADDON_MISSING listing every path tried and saying to build', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'nmtest-addon-loader-'));
  try {
    const moduleDir = path.join(root, 'dist', 'src', 'datapath');
    mkdirSync(moduleDir, { recursive: true });
    const candidates = addonCandidates(moduleDir);
    let loads = 0;
    assert.throws(
      () => loadNative(candidates, () => { loads++; return {}; }),
      (err: unknown) => {
        assert.ok(err instanceof NodemeshError);
        assert.equal(err.code, 'ERR_NM_ADDON_MISSING');
        for (const candidate of candidates) assert.ok(err.message.includes(candidate), `message names ${candidate}: ${err.message}`);
        assert.match(err.message, /npm run build/);
        assert.deepEqual(err.details.tried, candidates);
        return true;
      },
    );
    assert.equal(loads, 0, 'nothing is loaded when no candidate exists');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the first existing candidate is loaded; a stale or broken file fails clearly', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'nmtest-addon-loader-'));
  try {
    const moduleDir = path.join(root, 'dist', 'src', 'datapath');
    const candidates = addonCandidates(moduleDir);
    mkdirSync(path.dirname(candidates[1]!), { recursive: true });
    writeFileSync(candidates[1]!, 'not really an addon');
    const complete = Object.fromEntries(NATIVE_FUNCTION_NAMES.map((name) => [name, () => undefined]));
    const loaded: string[] = [];
    const binding = loadNative(candidates, (file) => { loaded.push(file); return complete; });
    assert.equal(binding, complete);
    assert.deepEqual(loaded, [candidates[1]]);

    assert.throws(() => loadNative(candidates, () => ({ objectOpen: () => 0 })), (err: unknown) => {
      assert.ok(err instanceof NodemeshError);
      assert.equal(err.code, 'ERR_NM_ADDON_STALE');
      assert.match(err.message, /socketInNetns/);
      return true;
    });
    assert.throws(() => loadNative(candidates, () => { throw new Error('invalid ELF header'); }), (err: unknown) => {
      assert.ok(err instanceof NodemeshError);
      assert.equal(err.code, 'ERR_NM_ADDON_LOAD_FAILED');
      assert.ok(err.message.includes(candidates[1]!));
      assert.match(err.message, /invalid ELF header/);
      return true;
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the built addon exports every function of NativeBinding', () => {
  const binding = getNative();
  for (const name of NATIVE_FUNCTION_NAMES) assert.equal(typeof binding[name], 'function', name);
});

test('the addon checks arguments itself and throws errors shaped like system errors', () => {
  const binding = getNative();
  assert.throws(() => (binding.mapLookup as (...a: unknown[]) => unknown)(-1, Buffer.alloc(4)), {
    code: 'ERR_NM_INVALID_ARGUMENT',
    errno: 0,
    syscall: 'mapLookup',
  });
  assert.throws(() => (binding.netnsOpen as (...a: unknown[]) => unknown)(42), { code: 'ERR_NM_INVALID_ARGUMENT' });
  assert.throws(() => (binding.linkCreate as (...a: unknown[]) => unknown)(1, 2, 'xdp'), (err: Error) => {
    assert.equal((err as NodeJS.ErrnoException).code, 'ERR_NM_INVALID_ARGUMENT');
    assert.match(err.message, /cgroup_inet4_connect/);
    return true;
  });
  assert.throws(() => binding.probeMapType('no_such_map'), { code: 'ERR_NM_INVALID_ARGUMENT' });
  assert.throws(() => binding.objectClose(123456), { code: 'ERR_NM_BAD_HANDLE' });
  assert.throws(() => binding.statfsType('/nonexistent/nmtest'), {
    code: 'ENOENT',
    errno: 2,
    syscall: 'statfs',
    path: '/nonexistent/nmtest',
  });
  assert.throws(() => binding.close(0x7ffffff0), { code: 'EBADF', errno: 9, syscall: 'close' });
});
