import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { ACCESS_LOG_FIELDS, AccessLog, type HttpAccessEntry, type TcpAccessEntry } from './access-log';
import type { WorkloadInfo } from '../mesh/workload-identity';

/** A stream that keeps what it receives; optionally slow: ms per chunk, or 'immediate' (one event-loop turn per chunk). */
class Collector extends Writable {
  readonly chunks: string[] = [];
  constructor(private readonly delay: number | 'immediate' = 0) {
    super({ decodeStrings: false });
  }
  override _write(chunk: string | Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk.toString());
    if (this.delay === 'immediate') setImmediate(() => cb());
    else if (this.delay > 0) setTimeout(() => cb(), this.delay);
    else cb();
  }
  lines(): string[] {
    return this.chunks.join('').split('\n').filter((l) => l.length > 0);
  }
}

function parseLines(text: string): Array<Record<string, unknown>> {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'every line ends with a newline');
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

function assertSchema(record: Record<string, unknown>): void {
  assert.deepEqual(Object.keys(record).sort(), Object.keys(ACCESS_LOG_FIELDS).sort(), 'exactly the schema\'s fields');
  for (const [field, type] of Object.entries(ACCESS_LOG_FIELDS)) {
    const value = record[field];
    const actual = value === null ? 'null' : typeof value;
    assert.ok(type.split('|').includes(actual), `${field}: ${type} expected, got ${actual} (${JSON.stringify(value)})`);
  }
}

const web: WorkloadInfo = { name: 'web', namespace: 'demo' };
const b: WorkloadInfo = { name: 'b-canary', namespace: 'demo' };
const START = Date.parse('2025-01-02T03:04:05.678Z');

function httpEntry(over: Partial<HttpAccessEntry> = {}): HttpAccessEntry {
  return {
    startTime: START,
    durationMs: 12.5,
    reporter: 'source',
    source: web,
    sourceAddress: '10.244.1.10:43512',
    destination: b,
    destinationService: 'b.demo.svc.cluster.local',
    upstreamHost: '10.244.2.21:8080',
    route: 'HTTPRoute demo/b-canary#0',
    method: 'GET',
    path: '/api/items?limit=10',
    protocol: 'HTTP/1.1',
    responseCode: 200,
    responseFlags: '-',
    bytesReceived: 0,
    bytesSent: 532,
    requestId: '4a1ab2c0-7a3e-4a5b-9c1d-2e3f4a5b6c7d',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    userAgent: 'curl/8.5.0',
    attempts: 2,
    ...over,
  };
}

function tcpEntry(over: Partial<TcpAccessEntry> = {}): TcpAccessEntry {
  return {
    startTime: new Date(START),
    durationMs: 1500,
    reporter: 'destination',
    source: web,
    sourceAddress: '10.244.1.10:43513',
    destination: b,
    destinationService: 'b.demo.svc.cluster.local',
    upstreamHost: '10.244.2.21:5432',
    bytesReceived: 1024,
    bytesSent: 4096,
    ...over,
  };
}

test('an HTTP line has every field with its type and value', async () => {
  const out = new Collector();
  const log = new AccessLog({ destination: out });
  log.http(httpEntry());
  await log.flush();
  const [rec, ...rest] = parseLines(out.chunks.join(''));
  assert.equal(rest.length, 0);
  assertSchema(rec!);
  assert.deepEqual(rec, {
    component: 'access',
    kind: 'http',
    start_time: '2025-01-02T03:04:05.678Z',
    duration_ms: 12.5,
    source_workload: 'web',
    source_namespace: 'demo',
    source_address: '10.244.1.10:43512',
    source_principal: null,
    connection_security_policy: 'unknown',
    destination_workload: 'b-canary',
    destination_namespace: 'demo',
    destination_service: 'b.demo.svc.cluster.local',
    upstream_host: '10.244.2.21:8080',
    route: 'HTTPRoute demo/b-canary#0',
    method: 'GET',
    path: '/api/items?limit=10',
    protocol: 'HTTP/1.1',
    response_code: 200,
    grpc_status: null,
    response_flags: '-',
    response_code_details: null,
    audit_policies: null,
    bytes_received: 0,
    bytes_sent: 532,
    request_id: '4a1ab2c0-7a3e-4a5b-9c1d-2e3f4a5b6c7d',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    user_agent: 'curl/8.5.0',
    reporter: 'source',
    attempts: 2,
  });
});

test('a TCP line has every field, null where HTTP fields do not apply', async () => {
  const out = new Collector();
  const log = new AccessLog({ destination: out });
  log.tcp(tcpEntry());
  await log.flush();
  const [rec] = parseLines(out.chunks.join(''));
  assertSchema(rec!);
  assert.equal(rec!['kind'], 'tcp');
  assert.equal(rec!['start_time'], '2025-01-02T03:04:05.678Z');
  assert.equal(rec!['reporter'], 'destination');
  assert.equal(rec!['bytes_received'], 1024);
  assert.equal(rec!['bytes_sent'], 4096);
  assert.equal(rec!['attempts'], 1);
  assert.equal(rec!['response_flags'], '-');
  for (const f of ['method', 'path', 'protocol', 'response_code', 'grpc_status', 'request_id', 'traceparent', 'user_agent', 'route']) {
    assert.equal(rec![f], null, f);
  }
});

test('unknown values are null, gRPC status is a number, long text is clipped', async () => {
  const out = new Collector();
  const log = new AccessLog({ destination: out });
  log.http({
    startTime: Number.NaN, // must not throw out of the request path
    durationMs: 0,
    reporter: 'destination',
    method: 'POST',
    path: '/' + 'p'.repeat(5000),
    protocol: 'HTTP/2',
    responseCode: 0,
    grpcStatus: 14,
    responseFlags: 'UF,URX',
    bytesReceived: 10,
    bytesSent: 0,
    userAgent: 'u'.repeat(3000),
  });
  await log.flush();
  const [rec] = parseLines(out.chunks.join(''));
  assertSchema(rec!);
  assert.equal(rec!['grpc_status'], 14);
  assert.equal(rec!['response_code'], 0);
  assert.equal(rec!['response_flags'], 'UF,URX');
  assert.equal(rec!['protocol'], 'HTTP/2');
  for (const f of ['source_workload', 'source_namespace', 'source_address', 'destination_workload', 'destination_namespace', 'destination_service', 'upstream_host', 'route', 'request_id', 'traceparent']) {
    assert.equal(rec![f], null, f);
  }
  assert.equal((rec!['path'] as string).length, 2048);
  assert.equal((rec!['user_agent'] as string).length, 2048);
  assert.ok(!Number.isNaN(Date.parse(rec!['start_time'] as string)));
});

test('one line per call, in order', async () => {
  const out = new Collector();
  const log = new AccessLog({ destination: out });
  for (let i = 0; i < 50; i++) {
    if (i % 2) log.tcp(tcpEntry({ bytesSent: i }));
    else log.http(httpEntry({ requestId: `req-${i}` }));
  }
  await log.flush();
  const records = parseLines(out.chunks.join(''));
  assert.equal(records.length, 50);
  records.forEach((r, i) => {
    assertSchema(r);
    assert.equal(r['kind'], i % 2 ? 'tcp' : 'http');
    if (i % 2) assert.equal(r['bytes_sent'], i);
    else assert.equal(r['request_id'], `req-${i}`);
  });
});

test('10,000 lines to a file: the calls do not wait for the disk, flush() gets them all', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodemesh-access-'));
  try {
    const path = join(dir, 'sub', 'access.log');
    const log = new AccessLog({ destination: { path } });
    const start = process.hrtime.bigint();
    for (let i = 0; i < 10_000; i++) log.http(httpEntry({ requestId: `req-${i}` }));
    const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
    // Nothing can have reached the file yet: opening it and every write complete on the
    // event loop, which the loop above never yielded to.
    const early = existsSync(path) ? readFileSync(path, 'utf8') : '';
    assert.equal(early, '', 'lines were buffered, not written synchronously');
    await log.flush();
    const records = parseLines(readFileSync(path, 'utf8'));
    assert.equal(records.length, 10_000);
    records.forEach((r, i) => assert.equal(r['request_id'], `req-${i}`));
    assertSchema(records[9_999]!);
    assert.equal(log.dropped, 0);
    await log.close();
    log.http(httpEntry()); // after close: dropped, never thrown
    assert.equal(log.dropped, 1);
    assert.equal(parseLines(readFileSync(path, 'utf8')).length, 10_000);
    console.log(`# 10,000 access-log calls took ${elapsedMs.toFixed(1)} ms (${((elapsedMs * 1e3) / 10_000).toFixed(2)} µs per line)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a slow stream never blocks the event loop; flush() waits for every line', async () => {
  const out = new Collector('immediate'); // one event-loop turn per line
  const log = new AccessLog({ destination: out });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  const start = Date.now();
  for (let i = 0; i < 10_000; i++) log.tcp(tcpEntry({ bytesSent: i }));
  const loopMs = Date.now() - start;
  assert.ok(out.chunks.length < 10_000, 'the stream had not taken every line when the calls returned');
  await log.flush();
  clearInterval(timer);
  const records = out.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(records.length, 10_000);
  records.forEach((r, i) => assert.equal(r['bytes_sent'], i));
  assert.ok(ticks > 0, 'timers ran while the stream drained');
  assert.ok(loopMs < 5_000, `10,000 calls took ${loopMs} ms`);
});

test('a full buffer drops lines and counts them instead of growing', async () => {
  // Stream: the bound applies to the stream's writableLength.
  const slow = new Collector(5);
  const bounded = new AccessLog({ destination: slow, maxBufferBytes: 20_000 });
  for (let i = 0; i < 1_000; i++) bounded.http(httpEntry({ requestId: `req-${i}` }));
  assert.ok(bounded.dropped > 0, 'some lines were dropped');
  assert.ok(slow.writableLength <= 20_000 + 1_000);
  await bounded.flush();
  assert.equal(slow.lines().length + bounded.dropped, 1_000);

  // File: sonic-boom's maxLength.
  const dir = mkdtempSync(join(tmpdir(), 'nodemesh-access-'));
  try {
    const path = join(dir, 'access.log');
    const log = new AccessLog({ destination: { path }, maxBufferBytes: 50_000 });
    for (let i = 0; i < 2_000; i++) log.http(httpEntry({ requestId: `req-${i}` }));
    assert.ok(log.dropped > 0);
    await log.close();
    const written = parseLines(readFileSync(path, 'utf8'));
    assert.equal(written.length + log.dropped, 2_000);
    written.forEach(assertSchema);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('batched writes (minWriteBytes) are flushed by flush() and close()', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodemesh-access-'));
  try {
    const path = join(dir, 'access.log');
    const log = new AccessLog({ destination: { path }, minWriteBytes: 8 * 1024, flushIntervalMs: 60_000 });
    for (let i = 0; i < 10; i++) log.tcp(tcpEntry());
    await log.flush();
    assert.equal(parseLines(readFileSync(path, 'utf8')).length, 10);
    for (let i = 0; i < 5; i++) log.tcp(tcpEntry());
    await log.close();
    assert.equal(parseLines(readFileSync(path, 'utf8')).length, 15);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stdout destination', () => {
  const script = `
    const { AccessLog } = require(${JSON.stringify(join(__dirname, 'access-log.js'))});
    const log = new AccessLog({ destination: 'stdout' });
    for (let i = 0; i < 3; i++) log.tcp({ startTime: 0, durationMs: 1, reporter: 'source', bytesReceived: i, bytesSent: 0 });
    log.close().then(() => process.stdout.write('done\\n'));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, NODEMESH_LOG_LEVEL: 'warn' } });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.pop(), 'done');
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(records.length, 3);
  records.forEach((rec, i) => {
    assertSchema(rec);
    assert.equal(rec['bytes_received'], i);
    assert.equal(rec['start_time'], '1970-01-01T00:00:00.000Z');
  });
});
