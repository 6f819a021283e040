import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { INIT_CONTAINER, PROXY_CONTAINER, injectObjects, type InjectOptions } from './inject';
import { reviewAdmission, startWebhookServer } from './webhook';

/*
 * The admission webhook in-process: a real HTTPS server on 127.0.0.1 with a self-signed
 * certificate made by openssl, answering real AdmissionReview v1 JSON.
 */

const ROOT = resolve(__dirname, '..', '..', '..');
const REVIEW = join(ROOT, 'test', 'fixtures', 'inject', 'admission-review.json');
const OPTIONS: InjectOptions = { image: 'reg.example/nodemesh/agent:0.1.0' };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

function review(mutate: (r: Obj) => void = () => undefined): Obj {
  const r = JSON.parse(readFileSync(REVIEW, 'utf8')) as Obj;
  mutate(r);
  return r;
}

/** Applies the JSON Patch `add` operations the webhook sends (RFC 6902: add replaces an existing member). */
function applyPatch(doc: Obj, ops: Array<{ op: string; path: string; value: unknown }>): Obj {
  const out = structuredClone(doc);
  for (const op of ops) {
    assert.equal(op.op, 'add');
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    let target = out;
    for (const p of parts.slice(0, -1)) {
      assert.ok(target[p] !== undefined, `path ${op.path}: ${p} exists (add needs the parent)`);
      target = target[p];
    }
    target[parts.at(-1)!] = op.value;
  }
  return out;
}

interface Reply { status: number; body: string; json?: Obj }

describe('sidecar injector webhook over HTTPS', () => {
  let dir: string | undefined;
  let server: Server | undefined;
  let ca: Buffer;
  let port = 0;
  let skip: string | undefined;

  before(async () => {
    if (spawnSync('openssl', ['version']).status !== 0) {
      if (process.env.CI === 'true') throw new Error('openssl is needed for the webhook test (apt-get install openssl)');
      skip = 'openssl not installed';
      return;
    }
    dir = mkdtempSync(join(tmpdir(), 'nm-webhook-'));
    const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt'),
      '-days', '1', '-subj', '/CN=nodemesh-webhook.nodemesh-system.svc', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:nodemesh-webhook.nodemesh-system.svc'], { encoding: 'utf8' });
    assert.equal(gen.status, 0, gen.stderr);
    ca = readFileSync(join(dir, 'tls.crt'));
    server = await startWebhookServer({ ...OPTIONS, cert: ca, key: readFileSync(join(dir, 'tls.key')), port: 0, host: '127.0.0.1' });
    port = (server.address() as AddressInfo).port;
  });

  after(() => {
    server?.closeAllConnections();
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function call(method: string, path: string, body?: string): Promise<Reply> {
    return new Promise((done, fail) => {
      // Verified against the self-signed certificate, as the API server does with caBundle.
      const req = request({ host: '127.0.0.1', port, method, path, ca, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { text += c; });
        res.on('end', () => {
          let json: Obj | undefined;
          try { json = JSON.parse(text) as Obj; } catch { /* not JSON */ }
          done({ status: res.statusCode ?? 0, body: text, ...(json ? { json } : {}) });
        });
      });
      req.on('error', fail);
      req.end(body);
    });
  }

  function ready(t: TestContext): boolean {
    if (skip) t.skip(skip);
    return !skip;
  }

  test('a Pod selected for injection gets a JSON Patch that injects it like nodemesh inject', async (t) => {
    if (!ready(t)) return;
    const r = review();
    const reply = await call('POST', '/inject', JSON.stringify(r));
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.json!.apiVersion, 'admission.k8s.io/v1');
    assert.equal(reply.json!.kind, 'AdmissionReview');
    const response = reply.json!.response as Obj;
    assert.equal(response.uid, r.request.uid, 'the response names the request it answers');
    assert.equal(response.allowed, true);
    assert.equal(response.patchType, 'JSONPatch');
    const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Array<{ op: string; path: string; value: unknown }>;
    const patched = applyPatch(r.request.object, patch);
    assert.deepEqual(patched, injectObjects([r.request.object], OPTIONS).objects[0], 'the same pod nodemesh inject makes');
    assert.deepEqual(patched.spec.containers.map((c: Obj) => c.name), [PROXY_CONTAINER, 'reviews']);
    assert.deepEqual(patched.spec.initContainers.map((c: Obj) => c.name), [INIT_CONTAINER]);
    assert.equal(patched.metadata.annotations['nodemesh.dev/mode'], 'sidecar');
    assert.equal(patched.spec.containers[0].image, OPTIONS.image);
    // Fields the webhook does not own are left alone.
    assert.deepEqual(patched.spec.volumes, r.request.object.spec.volumes);
    assert.deepEqual(patched.metadata.labels, r.request.object.metadata.labels);
  });

  test('pods that opt out, injected pods and other objects are admitted unchanged', async (t) => {
    if (!ready(t)) return;
    const cases: Array<[string, (r: Obj) => void]> = [
      ['annotation off', (r) => { r.request.object.metadata.annotations = { 'nodemesh.dev/mode': 'off' }; }],
      ['annotation ambient (the pod annotation wins over the namespace label)', (r) => { r.request.object.metadata.annotations = { 'nodemesh.dev/mode': 'ambient' }; }],
      ['hostNetwork', (r) => { r.request.object.spec.hostNetwork = true; }],
      ['already injected', (r) => { r.request.object = injectObjects([r.request.object], OPTIONS).objects[0]; }],
      ['an UPDATE', (r) => { r.request.operation = 'UPDATE'; }],
      ['not a Pod', (r) => { r.request.kind = { group: 'apps', version: 'v1', kind: 'Deployment' }; }],
      ['no containers', (r) => { r.request.object.spec.containers = []; }],
    ];
    for (const [what, mutate] of cases) {
      const r = review(mutate);
      const reply = await call('POST', '/inject', JSON.stringify(r));
      assert.equal(reply.status, 200, `${what}: ${reply.body}`);
      assert.deepEqual(reply.json!.response, { uid: r.request.uid, allowed: true }, what);
    }
  });

  test('health, wrong paths and methods, and bodies that are not AdmissionReviews', async (t) => {
    if (!ready(t)) return;
    const health = await call('GET', '/healthz');
    assert.equal(health.status, 200);
    assert.equal((await call('GET', '/inject')).status, 405);
    assert.equal((await call('POST', '/mutate', '{}')).status, 404);
    const garbage = await call('POST', '/inject', 'not json');
    assert.equal(garbage.status, 400);
    assert.match(garbage.body, /not an AdmissionReview/);
    // JSON without a request is still answered (allowed): a webhook must never block.
    const empty = await call('POST', '/inject', '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}');
    assert.equal(empty.status, 200);
    assert.deepEqual(empty.json!.response, { uid: '', allowed: true });
  });
});

test('reviewAdmission explains its decisions', () => {
  const base = JSON.parse(readFileSync(REVIEW, 'utf8')) as Obj;
  assert.equal(reviewAdmission(base, OPTIONS).reason, 'injected');
  const off = structuredClone(base);
  off.request.object.metadata.annotations = { 'nodemesh.dev/mode': 'off' };
  assert.equal(reviewAdmission(off, OPTIONS).reason, 'annotation nodemesh.dev/mode is off');
  assert.equal(reviewAdmission(null, OPTIONS).reason, 'no request in the AdmissionReview');
});
