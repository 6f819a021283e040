import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { pollUntil } from '../util/deadline';

/**
 * stopOnSignal in a child process (it owns the process's signals and exit): a stop that
 * never finishes is ended by the backstop; a second signal cuts the drain.
 */
const MODULE = join(__dirname, 'stop-on-signal.js');

function child(script: string) {
  const proc = spawn(process.execPath, ['-e', `
    const { stopOnSignal } = require(${JSON.stringify(MODULE)});
    const log = { info: (o, m) => console.log('info', m), warn: (o, m) => console.log('warn', m), error: (o, m) => console.log('error', m) };
    ${script}
    console.log('ready');
    setInterval(() => undefined, 1000); // a daemon's open handles
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (d: string) => { out += d; });
  const ready = new Promise<void>((resolve) => proc.stdout!.on('data', () => { if (out.includes('ready')) resolve(); }));
  return { proc, ready, out: () => out };
}

test('a stop that never finishes: the backstop exits with 1 and says why', { timeout: 30_000 }, async () => {
  const c = child(`stopOnSignal({ log, drainMs: 50, marginMs: 100, stopping: 'stopping', stop: () => new Promise(() => undefined), finally: () => console.log('finally') }).then((code) => process.exit(code));`);
  await c.ready;
  c.proc.kill('SIGTERM');
  const [code] = await once(c.proc, 'exit');
  assert.equal(code, 1);
  assert.match(c.out(), /error the stop did not finish in time: exiting now/);
  assert.match(c.out(), /finally/, 'the pid file is removed on that path too');
});

test('a second signal aborts the drain; the stop then finishes and the exit code is 0', { timeout: 30_000 }, async () => {
  const c = child(`stopOnSignal({ log, drainMs: 600000, stopping: 'stopping', stop: (cut) => new Promise((r) => { console.log('draining'); cut.addEventListener('abort', () => r()); }) }).then((code) => process.exit(code));`);
  await c.ready;
  c.proc.kill('SIGTERM');
  assert.ok(await pollUntil(() => c.out().includes('draining'), Date.now() + 10_000), `the stop never started: ${c.out()}`);
  assert.equal(c.proc.exitCode, null, 'still draining after the first signal');
  c.proc.kill('SIGINT');
  const [code] = await once(c.proc, 'exit');
  assert.equal(code, 0);
  assert.match(c.out(), /warn second signal: cutting the drain short/);
  assert.match(c.out(), /info stopped/);
});

test('a stop that fails exits with 1', { timeout: 30_000 }, async () => {
  const c = child(`stopOnSignal({ log, drainMs: 10, stopping: 'stopping', stop: () => Promise.reject(new Error('boom')) }).then((code) => process.exit(code));`);
  await c.ready;
  c.proc.kill('SIGTERM');
  const [code] = await once(c.proc, 'exit');
  assert.equal(code, 1);
  assert.match(c.out(), /error stop failed/);
});

test('the hand-over done (stopWhen) starts the stop without a signal; the exit code is 0', { timeout: 30_000 }, async () => {
  const c = child(`stopOnSignal({ log, drainMs: 10, stopping: 'stopping', stop: () => Promise.resolve(), stopWhen: new Promise((r) => setTimeout(() => r('handed over'), 50)) }).then((code) => process.exit(code));`);
  const [code] = await once(c.proc, 'exit');
  assert.equal(code, 0);
  assert.match(c.out(), /info stopped/);
});

test('lingerAfterStopWhen: after the stop the process waits for SIGTERM, then exits 0', { timeout: 30_000 }, async () => {
  const c = child(`stopOnSignal({ log, drainMs: 10, stopping: 'stopping', stop: () => Promise.resolve(), stopWhen: Promise.resolve('handed over'), lingerAfterStopWhen: true }).then((code) => process.exit(code));`);
  assert.ok(await pollUntil(() => c.out().includes('waiting for SIGTERM'), Date.now() + 10_000), `the stop never finished: ${c.out()}`);
  assert.equal(c.proc.exitCode, null, 'it exited by itself: a kubelet would restart it');
  c.proc.kill('SIGTERM');
  const [code] = await once(c.proc, 'exit');
  assert.equal(code, 0);
});
