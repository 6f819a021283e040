import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DEFAULT_LOAD_OPTIONS, OpenLoopSchedule, mergeHistograms, parseLoadArgs, runLoad, type LoadOptions, type LoadResult } from './load-generator';

const GENERATOR = join(__dirname, 'load-generator.js');

// A local echo server on loopback; `/stall/N` answers the Nth request it sees on that path
// only after 200 ms (the others at once), to show what an open loop does with a stall.
let server: Server;
let base: string;
let stallCount = 0;

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const answer = () => {
        res.setHeader('content-length', body.length);
        res.end(body);
      };
      const stall = /^\/stall\/(\d+)$/.exec(req.url ?? '');
      if (req.url === '/fail') {
        res.statusCode = 503;
        res.end();
      } else if (stall && ++stallCount === Number(stall[1])) {
        setTimeout(answer, 200);
      } else {
        answer();
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

const options = (o: Partial<LoadOptions>): LoadOptions => ({ ...DEFAULT_LOAD_OPTIONS, url: `${base}/echo`, ...o });

test('parseLoadArgs: defaults, every flag, and bad input', () => {
  assert.deepEqual(parseLoadArgs(['--url', 'http://10.0.0.1/echo']), { ...DEFAULT_LOAD_OPTIONS, url: 'http://10.0.0.1/echo' });
  const o = parseLoadArgs(['--url', 'http://h:8080/x', '--rate', '1000', '--duration', '2.5', '--warmup', '0', '--connections', '4', '--body-bytes', '1024', '--timeout', '500', '--markers']);
  assert.deepEqual(o, { url: 'http://h:8080/x', rate: 1000, durationS: 2.5, warmupS: 0, connections: 4, bodyBytes: 1024, timeoutMs: 500, markers: true });
  assert.throws(() => parseLoadArgs([]), /--url is required/);
  assert.throws(() => parseLoadArgs(['--url', 'https://h/']), /http:\/\//);
  assert.throws(() => parseLoadArgs(['--url', 'http://h/', '--connections', '0']), /bad value/);
  assert.throws(() => parseLoadArgs(['--url', 'http://h/', '--rate', '-1']), /bad value/);
  assert.throws(() => parseLoadArgs(['--url', 'http://h/', '--body-bytes', '1.5']), /bad value/);
  assert.throws(() => parseLoadArgs(['--url', 'http://h/', '--rate']), /bad value/);
  assert.throws(() => parseLoadArgs(['--url', 'http://h/', '--bogus', '1']), /unknown flag/);
});

test('OpenLoopSchedule hands out each scheduled time once, independent of the caller, and catches up after a stall', () => {
  const s = new OpenLoopSchedule(1000, 1000, 1010); // one request per ms, 10 in all
  assert.deepEqual(s.due(999.9), []);
  assert.deepEqual(s.due(1000), [1000]);
  assert.equal(s.nextAt(), 1001);
  assert.deepEqual(s.due(1000.5), []);
  // A 5 ms stall: every overdue request comes out at once, with its own scheduled time.
  assert.deepEqual(s.due(1005.2), [1001, 1002, 1003, 1004, 1005]);
  assert.equal(s.done, false);
  assert.deepEqual(s.due(5000), [1006, 1007, 1008, 1009]);
  assert.equal(s.done, true);
  assert.equal(s.nextAt(), Infinity);
  assert.deepEqual(s.due(6000), []);
  assert.throws(() => new OpenLoopSchedule(0, 0, 1), /rate above 0/);
});

test('open loop: sends at the rate, POSTs the body, and counts the window only', async () => {
  const phases: string[] = [];
  const r = await runLoad(options({ rate: 400, warmupS: 0.2, durationS: 0.5, connections: 4, bodyBytes: 1024 }), (p) => phases.push(p));
  assert.deepEqual(phases, ['measure', 'done']);
  assert.equal(r.mode, 'open');
  assert.deepEqual(r.errors, {});
  assert.deepEqual(r.statuses, {});
  // 400/s for 0.5 s is 200 requests, whatever the timer's granularity.
  assert.ok(Math.abs(r.requests - 200) <= 2, `requests ${r.requests}`);
  assert.equal(r.latencyMs.n, r.requests);
  assert.equal(r.meanResponseBytes, 1024);
  assert.ok(r.windowS > 0.45 && r.windowS < 1.5, `window ${r.windowS}`);
  assert.ok(r.latencyMs.p50 > 0 && r.latencyMs.p50 <= r.latencyMs.p99 && r.latencyMs.p99 <= r.latencyMs.max);
  assert.ok(r.sendLagMs && r.sendLagMs.n === r.requests);
  assert.ok(r.cpuS.user + r.cpuS.system > 0);
  // The histogram round-trips.
  assert.equal(mergeHistograms([r.histogram, r.histogram]).n, 2 * r.requests);
});

test('open loop: a stall delays every request queued behind it (no coordinated omission)', async () => {
  stallCount = 0;
  // One connection, 500/s for 0.6 s = 300 requests; request 50 is held 200 ms, so ~100
  // scheduled requests wait behind it, with latencies from ~200 ms down to ~0 counted from
  // their scheduled times. A closed loop would record one slow request (under 1%).
  const r = await runLoad(options({ url: `${base}/stall/50`, rate: 500, warmupS: 0, durationS: 0.6, connections: 1 }));
  assert.deepEqual(r.errors, {});
  assert.ok(Math.abs(r.requests - 300) <= 2, `requests ${r.requests}`);
  assert.ok(r.latencyMs.p90 > 50, `p90 ${r.latencyMs.p90} ms`);
  assert.ok(r.latencyMs.max >= 190, `max ${r.latencyMs.max} ms`);
});

test('closed loop: C workers as fast as answers come; failures are counted, not timed', async () => {
  const r = await runLoad(options({ rate: 0, warmupS: 0.1, durationS: 0.3, connections: 4 }));
  assert.equal(r.mode, 'closed');
  assert.equal(r.sendLagMs, undefined);
  assert.ok(r.requests > 50, `requests ${r.requests}`);
  assert.equal(r.meanResponseBytes, 0);
  assert.ok(Math.abs(r.achievedRps - r.requests / r.windowS) < 1e-6);

  const failing = await runLoad(options({ url: `${base}/fail`, rate: 0, warmupS: 0, durationS: 0.2, connections: 2 }));
  assert.equal(failing.requests, 0);
  assert.ok((failing.statuses['503'] ?? 0) > 0);
  assert.equal(failing.latencyMs.n, 0);

  const refused = await runLoad(options({ url: 'http://127.0.0.1:1/', rate: 100, warmupS: 0, durationS: 0.1, connections: 1, timeoutMs: 1000 }));
  assert.equal(refused.requests, 0);
  assert.ok((refused.errors['ECONNREFUSED'] ?? 0) > 0, JSON.stringify(refused.errors));
});

test('the command prints the markers, then one JSON result', async () => {
  const child = spawn(process.execPath, [GENERATOR, '--url', `${base}/echo`, '--rate', '200', '--warmup', '0.1', '--duration', '0.2', '--body-bytes', '16', '--markers'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => { out += d; });
  const [code] = (await once(child, 'exit')) as [number];
  assert.equal(code, 0);
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines.slice(0, 2), [{ phase: 'measure' }, { phase: 'done' }]);
  const result = lines[2] as unknown as LoadResult;
  assert.equal(lines.length, 3);
  assert.ok(Math.abs(result.requests - 40) <= 2, `requests ${result.requests}`);
  assert.equal(result.meanResponseBytes, 16);

  const usage = spawn(process.execPath, [GENERATOR, '--rate', '1'], { stdio: 'ignore' });
  const [usageCode] = (await once(usage, 'exit')) as [number];
  assert.equal(usageCode, 2);
});
