import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { DEFAULT_PORTS, echoProtoPath, parseAppArgs, type Protocol } from './l7-app';
import {
  bigheaderCommand, grpcCommand, httpCommand, noreadCommand, runClient, slowlorisCommand, smuggleCommand, smugglePayload, tlsCommand, wsCommand,
  type GrpcResult, type HttpSingleResult, type HttpSummaryResult,
} from './l7-client';

const APP = join(__dirname, 'l7-app.js');
const CLIENT = join(__dirname, 'l7-client.js');
const NAME = 't1';

let app: ChildProcess;
let ports: Record<Protocol, number>;
const http = (path: string) => `http://127.0.0.1:${ports.http}${path}`;
const h2c = (path: string) => `http://[::1]:${ports.h2c}${path}`;
const grpcTarget = () => `127.0.0.1:${ports.grpc}`;

before(async () => {
  app = spawn(process.execPath, [APP, '--name', NAME, '--http', '0', '--h2c', '0', '--grpc', '0', '--ws', '0', '--tls', '0', '--tcp', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  app.stdout!.setEncoding('utf8');
  const line = await new Promise<string>((resolveLine, reject) => {
    app.stdout!.on('data', (d: string) => {
      out += d;
      const m = /^listening (.*)$/m.exec(out);
      if (m) resolveLine(m[1]!);
    });
    app.once('exit', (code) => reject(new Error(`l7-app exited with ${code}: ${out}`)));
  });
  ports = JSON.parse(line) as Record<Protocol, number>;
});

after(async () => {
  if (app.exitCode === null) {
    app.kill('SIGTERM');
    await once(app, 'exit');
  }
});

function single(r: unknown): HttpSingleResult {
  assert.ok(r && typeof r === 'object' && 'status' in r, `expected a response, got ${JSON.stringify(r)}`);
  return r as HttpSingleResult;
}

function runProcess(argv: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'ignore'] });
  let stdout = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => { stdout += d; });
  return once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout }));
}

test('arguments: defaults, port 0, off, errors; echo.proto is found from dist/', () => {
  const defaults = parseAppArgs([]);
  assert.deepEqual(defaults.ports, DEFAULT_PORTS);
  assert.deepEqual(DEFAULT_PORTS, { http: 8080, h2c: 8081, grpc: 9090, ws: 8082, tls: 8443, tcp: 9000 });
  const custom = parseAppArgs(['--name', 'b2', '--http', '0', '--grpc', 'off', '--tls', '9443']);
  assert.equal(custom.name, 'b2');
  assert.equal(custom.ports.http, 0);
  assert.equal(custom.ports.grpc, undefined);
  assert.equal(custom.ports.tls, 9443);
  assert.throws(() => parseAppArgs(['--http', '70000']), /bad port/);
  assert.throws(() => parseAppArgs(['--nope', '1']), /unknown flag/);
  assert.throws(() => parseAppArgs(['--name']), /bad argument/);
  assert.match(echoProtoPath(), /src[/\\]sim[/\\]apps[/\\]echo\.proto$/);
  for (const p of ['http', 'h2c', 'grpc', 'ws', 'tls', 'tcp'] as const) assert.ok(ports[p] > 0, `${p} bound`);
});

test('HTTP/1.1 and h2c: GET / names the app, the protocol and the peer', async () => {
  const r1 = single(await httpCommand(http('/'), { headers: { 'x-test': 'yes' } }));
  assert.equal(r1.status, 200);
  assert.equal(r1.servedBy, NAME);
  assert.equal(r1.headers['x-served-by'], NAME);
  const info = r1.json as { name: string; method: string; path: string; protocol: string; headers: Record<string, string>; remoteAddress: string; remotePort: number };
  assert.equal(info.name, NAME);
  assert.equal(info.method, 'GET');
  assert.equal(info.path, '/');
  assert.equal(info.protocol, 'HTTP/1.1');
  assert.equal(info.headers['x-test'], 'yes');
  assert.match(info.remoteAddress, /127\.0\.0\.1$/);
  assert.ok(info.remotePort > 0);

  const r2 = single(await httpCommand(h2c('/some/where?q=1'), { h2c: true, method: 'POST', body: 'x', headers: { host: 'svc.example' } }));
  assert.equal(r2.status, 200);
  assert.equal(r2.servedBy, NAME);
  const info2 = r2.json as { protocol: string; path: string; method: string; headers: Record<string, string>; remoteAddress: string };
  assert.equal(info2.protocol, 'HTTP/2');
  assert.equal(info2.path, '/some/where?q=1');
  assert.equal(info2.method, 'POST');
  assert.equal(info2.headers[':authority'], 'svc.example');
  assert.equal(info2.remoteAddress, '::1');
});

test('HTTP routes: echo, status, headers, bytes, slow-body, reset', async () => {
  const echo = single(await httpCommand(http('/echo'), { method: 'PUT', body: 'ping body', headers: { 'content-type': 'text/plain' } }));
  assert.equal(echo.status, 200);
  assert.equal(echo.body, 'ping body');
  const appInfo = JSON.parse(echo.headers['x-app-info'] as string) as { name: string; method: string };
  assert.equal(appInfo.name, NAME);
  assert.equal(appInfo.method, 'PUT');
  const echo2 = single(await httpCommand(h2c('/echo'), { h2c: true, method: 'POST', body: 'over h2' }));
  assert.equal(echo2.body, 'over h2');

  assert.equal(single(await httpCommand(http('/status/418'))).status, 418);
  assert.equal(single(await httpCommand(h2c('/status/503'), { h2c: true })).status, 503);
  assert.equal(single(await httpCommand(http('/status/204'))).status, 204);
  assert.equal(single(await httpCommand(http('/status/99'))).status, 400);

  const headers = single(await httpCommand(http('/headers'), { headers: { 'x-a': '1', 'x-b': ['2', '3'] } }));
  const echoed = headers.json as Record<string, string>;
  assert.equal(echoed['x-a'], '1');
  assert.equal(echoed['x-b'], '2, 3');

  const bytes = single(await httpCommand(http('/bytes/100000')));
  assert.equal(bytes.body.length, 100000);
  assert.equal(single(await httpCommand(h2c('/bytes/70000'), { h2c: true })).body.length, 70000);
  assert.equal(single(await httpCommand(http('/bytes/0'))).body, '');

  const started = Date.now();
  const slow = single(await httpCommand(http('/slow-body/60?chunks=4')));
  assert.ok(Date.now() - started >= 200, 'the body took its time');
  assert.equal(slow.body, `${NAME} chunk 1\n${NAME} chunk 2\n${NAME} chunk 3\n${NAME} chunk 4\n`);

  const reset = await httpCommand(http('/reset'));
  assert.ok('error' in reset, JSON.stringify(reset));
  const reset2 = await httpCommand(h2c('/reset'), { h2c: true });
  assert.ok('error' in reset2, JSON.stringify(reset2));
});

test('slow-body with hold: the first line, then nothing until /release; /holds says what is in flight', async () => {
  const holds = async () => (single(await httpCommand(http('/holds'))).json as { held: string[] }).held;
  assert.deepEqual(await holds(), []);
  let done = false;
  const held = httpCommand(http('/slow-body/10?chunks=3&hold=h1')).then((r) => { done = true; return single(r); });
  // In flight once the app says so (it has sent the first line), however slow the machine.
  for (let i = 0; i < 200 && !(await holds()).includes('h1'); i++) await new Promise((r) => setTimeout(r, 25));
  assert.deepEqual(await holds(), ['h1']);
  assert.equal(done, false, 'a held response finished before its release');
  assert.equal(single(await httpCommand(http('/release/nope'))).status, 404);
  assert.equal(single(await httpCommand(http('/release/h1'))).status, 200);
  const r = await held;
  assert.equal(r.status, 200);
  assert.equal(r.body, `${NAME} chunk 1\n${NAME} chunk 2\n${NAME} chunk 3\n`);
  assert.deepEqual(await holds(), []);
});

test('flaky: the first N requests per key get 503, counted in the app', async () => {
  const key = `k${Date.now()}`;
  const summary = (await httpCommand(http(`/flaky/${key}/3`), { count: 5 })) as HttpSummaryResult;
  assert.deepEqual(summary.statuses, { 503: 3, 200: 2 });
  assert.deepEqual(summary.servedBy, { [NAME]: 5 });
  assert.deepEqual(summary.errors, {});
  assert.ok(summary.p50Ms !== null && summary.p99Ms !== null && summary.p99Ms >= summary.p50Ms);
  // Another key starts over; the same key over h2c shares the count.
  assert.equal(single(await httpCommand(http(`/flaky/${key}-other/1`))).status, 503);
  const again = single(await httpCommand(h2c(`/flaky/${key}/3`), { h2c: true }));
  assert.equal(again.status, 200);
  assert.equal((again.json as { attempt: number }).attempt, 6);
});

test('delay answers late; the client times out cleanly', async () => {
  const started = Date.now();
  const r = single(await httpCommand(http('/delay/300')));
  assert.equal(r.status, 200);
  assert.ok(Date.now() - started >= 290);
  const late = await httpCommand(http('/delay/2000'), { timeoutMs: 200 });
  assert.deepEqual({ error: (late as { error: string }).error }, { error: 'ETIMEDOUT' });
  const lateH2 = await httpCommand(h2c('/delay/2000'), { h2c: true, timeoutMs: 200 });
  assert.equal((lateH2 as { error: string }).error, 'ETIMEDOUT');
});

test('count: requests per path (not counting /count), DELETE resets', async () => {
  await httpCommand(http('/count'), { method: 'DELETE' });
  await httpCommand(http('/mirror/a'), { count: 3, concurrency: 2 });
  await httpCommand(h2c('/mirror/b'), { h2c: true });
  const counts = single(await httpCommand(http('/count'))).json as { name: string; total: number; paths: Record<string, number> };
  assert.deepEqual(counts, { name: NAME, total: 4, paths: { '/mirror/a': 3, '/mirror/b': 1 } });
});

test('many requests: summary over keep-alive HTTP/1.1 and over h2c streams', async () => {
  const r1 = (await httpCommand(http('/'), { count: 40, concurrency: 8 })) as HttpSummaryResult;
  assert.equal(r1.count, 40);
  assert.deepEqual(r1.statuses, { 200: 40 });
  assert.deepEqual(r1.servedBy, { [NAME]: 40 });
  const r2 = (await httpCommand(h2c('/status/500'), { count: 30, concurrency: 10, h2c: true })) as HttpSummaryResult;
  assert.deepEqual(r2.statuses, { 500: 30 });
  assert.deepEqual(r2.errors, {});
  const refused = (await httpCommand('http://127.0.0.1:1/', { count: 3 })) as HttpSummaryResult;
  assert.deepEqual(refused.errors, { ECONNREFUSED: 3 });
  assert.equal(refused.p50Ms, null);
});

test('gRPC: all four call types, fail codes, several calls', async () => {
  const unary = (await grpcCommand(grpcTarget(), 'unary', { message: 'hi' })) as GrpcResult;
  assert.deepEqual(unary, { ok: true, replies: [{ message: 'hi', served_by: NAME, index: 0 }], servedBy: { [NAME]: 1 } });

  const stream = (await grpcCommand(grpcTarget(), 'server-stream', { message: 's', count: 4 })) as GrpcResult;
  assert.equal(stream.ok, true);
  assert.deepEqual(stream.replies.map((r) => r.index), [0, 1, 2, 3]);

  const client = (await grpcCommand(grpcTarget(), 'client-stream', { message: 'ab', count: 3 })) as GrpcResult;
  assert.deepEqual(client.replies, [{ message: 'ababab', served_by: NAME, index: 3 }]);

  const bidi = (await grpcCommand(grpcTarget(), 'bidi', { message: 'b', count: 3 })) as GrpcResult;
  assert.equal(bidi.ok, true);
  assert.deepEqual(bidi.replies.map((r) => `${r.served_by}/${r.index}`), [`${NAME}/0`, `${NAME}/1`, `${NAME}/2`]);

  const failUnary = (await grpcCommand(grpcTarget(), 'unary', { failCode: 7 })) as GrpcResult;
  assert.equal(failUnary.ok, false);
  assert.equal(failUnary.code, 7);
  assert.match(failUnary.details ?? '', /fail_code 7/);
  const failStream = (await grpcCommand(grpcTarget(), 'server-stream', { count: 2, failCode: 14 })) as GrpcResult;
  assert.equal(failStream.code, 14);
  assert.equal(failStream.replies.length, 2, 'the replies before the status arrive');
  assert.equal(((await grpcCommand(grpcTarget(), 'client-stream', { count: 2, failCode: 9 })) as GrpcResult).code, 9);
  const failBidi = (await grpcCommand(grpcTarget(), 'bidi', { count: 3, failCode: 3 })) as GrpcResult;
  assert.equal(failBidi.code, 3);
  assert.equal(failBidi.replies.length, 2, 'fail_code rides on the last message');

  const many = (await grpcCommand(`[::1]:${ports.grpc}`, 'unary', { calls: 5 })) as GrpcResult;
  assert.equal(many.ok, true);
  assert.equal(many.calls, 5);
  assert.deepEqual(many.codes, { 0: 5 });
  assert.deepEqual(many.servedBy, { [NAME]: 5 });

  const down = (await grpcCommand('127.0.0.1:1', 'unary', { timeoutMs: 3000 })) as GrpcResult;
  assert.equal(down.ok, false);
  assert.equal(down.code, 14);
  assert.ok('error' in (await grpcCommand(grpcTarget(), 'nope' as 'unary')));
});

test('WebSocket: echoes prefixed with the app name; HTTP on the same port', async () => {
  assert.deepEqual(await wsCommand(`ws://127.0.0.1:${ports.ws}/chat`, 'hello there'), { reply: `${NAME}: hello there` });
  assert.deepEqual(await wsCommand(`ws://[::1]:${ports.ws}/`, 'v6'), { reply: `${NAME}: v6` });
  assert.equal(single(await httpCommand(`http://127.0.0.1:${ports.ws}/`)).servedBy, NAME);
  const refused = await wsCommand('ws://127.0.0.1:1/', 'x');
  assert.equal((refused as { error: string }).error, 'ECONNREFUSED');
});

test('TLS: the app names itself and the SNI it saw, then echoes', async () => {
  const r = await tlsCommand('127.0.0.1', ports.tls, 'api.example.test', 'secret bytes');
  assert.ok(!('error' in r), JSON.stringify(r));
  assert.equal(r.reply, `tls ${NAME} sni=api.example.test\nsecret bytes`);
  assert.equal(r.servedBy, NAME);
  assert.equal(r.sni, 'api.example.test');
  assert.equal(r.echo, 'secret bytes');
  assert.equal(r.peerCN, NAME);
  const noSni = await tlsCommand('::1', ports.tls, '-', 'x');
  assert.ok(!('error' in noSni), JSON.stringify(noSni));
  assert.equal(noSni.reply, `tls ${NAME} sni=\nx`);
});

test('TCP: first line names the peer and the app, then echo', async () => {
  const s = connect({ host: '127.0.0.1', port: ports.tcp, allowHalfOpen: true });
  let reply = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => { reply += d; });
  await once(s, 'connect');
  s.end('raw bytes');
  await once(s, 'end');
  s.destroy();
  assert.match(reply, new RegExp(`^peer \\S*127\\.0\\.0\\.1 \\d+ local \\S+ ${ports.tcp} name ${NAME}\\nraw bytes$`));
});

test('abuse subcommands run against the app and report', async () => {
  const slow = await slowlorisCommand('127.0.0.1', ports.http, 2);
  assert.deepEqual(slow, { stillOpen: true, sentBytes: slow && 'sentBytes' in slow ? slow.sentBytes : -1 });

  assert.deepEqual(await bigheaderCommand(http('/'), 100_000), { status: 200, servedBy: NAME });
  const huge = await bigheaderCommand(http('/'), 2_000_000);
  assert.ok(('status' in huge && huge.status === 431) || 'error' in huge, JSON.stringify(huge));

  assert.match(smugglePayload('h', 1, 'cl-te'), /Content-Length: 6\r\nTransfer-Encoding: chunked\r\n/);
  assert.match(smugglePayload('h', 1, 'cl-cl'), /Content-Length: 5\r\nContent-Length: 6\r\n/);
  for (const kind of ['cl-te', 'cl-cl'] as const) {
    const r = await smuggleCommand('127.0.0.1', ports.http, kind);
    assert.ok(!('error' in r), JSON.stringify(r));
    assert.equal(r.statusLine, 'HTTP/1.1 400 Bad Request', `${kind}: Node refuses it`);
    assert.equal(r.statusLines.length, 1, `${kind}: nothing smuggled through`);
    assert.ok(r.bytes > 0);
    assert.equal(r.closed, true);
  }

  const noread = await noreadCommand(http('/'), 1);
  assert.ok(!('error' in noread), JSON.stringify(noread));
  assert.equal(noread.stillConnected, true);
  assert.ok(noread.receivedBytes > 0);

  assert.equal(((await smuggleCommand('127.0.0.1', 1, 'cl-te')) as { error: string }).error, 'ECONNREFUSED');
  assert.equal(((await slowlorisCommand('127.0.0.1', 1, 1)) as { error: string }).error, 'ECONNREFUSED');
});

test('CLI: the last stdout line is JSON, exit 0 on HTTP errors, 2 on usage errors', async () => {
  const r = await runProcess([CLIENT, 'http', http('/status/503')]);
  assert.equal(r.code, 0);
  const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as HttpSingleResult;
  assert.equal(last.status, 503);
  assert.equal(last.servedBy, NAME);

  const g = await runProcess([CLIENT, 'grpc', grpcTarget(), 'server-stream', '--count', '2', '--message', 'm', '--calls', '2']);
  assert.equal(g.code, 0);
  const gj = JSON.parse(g.stdout.trim().split('\n').at(-1)!) as GrpcResult;
  assert.equal(gj.replies.length, 4);
  assert.deepEqual(gj.servedBy, { [NAME]: 2 });

  const refused = await runProcess([CLIENT, 'http', 'http://127.0.0.1:1/', '--timeout', '2000']);
  assert.equal(refused.code, 0);
  assert.equal((JSON.parse(refused.stdout.trim()) as { error: string }).error, 'ECONNREFUSED');

  const bad = await runProcess([CLIENT, 'frobnicate']);
  assert.equal(bad.code, 2);
  assert.equal((JSON.parse(bad.stdout.trim()) as { error: string }).error, 'EUSAGE');

  // In-process, the same parser.
  const many = (await runClient(['http', h2c('/'), '--count', '4', '--concurrency', '2', '--header', 'x-k: v', '--h2c'])) as HttpSummaryResult;
  assert.equal(many.count, 4);
  assert.deepEqual(many.statuses, { 200: 4 });
});
