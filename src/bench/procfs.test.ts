import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { machineBusyS, processCpu, processCpuS } from './procfs';

test('processCpu: this process has user and system time; a process that is gone reads NaN', () => {
  const own = processCpu(process.pid);
  assert.ok(Number.isFinite(own.user) && own.user >= 0);
  assert.ok(Number.isFinite(own.system) && own.system >= 0);
  assert.ok(processCpuS(process.pid) >= own.user);
  const gone = spawnSync(process.execPath, ['-e', '0']).pid;
  assert.ok(Number.isNaN(processCpuS(gone)));
  assert.ok(machineBusyS() > 0);
});
