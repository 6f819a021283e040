import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SourceResult } from './config-source';
import { DirectorySource } from './directory-source';

const NS = (name: string): string => `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${name} }\n`;
const POD = (name: string, ip: string): string =>
  `apiVersion: v1\nkind: Pod\nmetadata: { name: ${name}, namespace: demo }\nspec: { nodeName: node1 }\nstatus: { podIP: ${ip} }\n`;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'nm-dirsource-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Rewrites a file and moves its mtime on, so that the change is seen even within one tick. */
function rewrite(path: string, text: string, secondsAhead: number): void {
  writeFileSync(path, text);
  const when = new Date(Date.now() + secondsAhead * 1000);
  utimesSync(path, when, when);
}

test('reads yaml, yml and json files in name order, skipping others and hidden files', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, '10-ns.yaml'), NS('demo'));
  writeFileSync(join(dir, '20-pods.yml'), `${POD('a1', '10.244.1.11')}---\n${POD('bad', '10.244.1.999')}`);
  writeFileSync(join(dir, '30-svc.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'demo' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } }));
  writeFileSync(join(dir, 'notes.txt'), 'not yaml: [');
  writeFileSync(join(dir, '.swap.yaml'), 'not yaml: [');
  const source = new DirectorySource(dir);
  const result = await source.load();
  assert.deepEqual(result.files.map((f) => f.slice(dir.length + 1)), ['10-ns.yaml', '20-pods.yml', '30-svc.json']);
  assert.deepEqual(result.namespaces.map((n) => n.name), ['demo']);
  assert.deepEqual(result.pods.map((p) => p.name), ['a1']);
  assert.deepEqual(result.services.map((s) => s.name), ['a']);
  assert.equal(result.rejected.length, 1);
  assert.equal(result.rejected[0]!.file, join(dir, '20-pods.yml'));
  assert.match(result.rejected[0]!.reason, /20-pods\.yml: Pod demo\/bad: status\.podIP: "10\.244\.1\.999" is not a valid IP address/);
});

test('a single file works as a source', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'one.yaml'), NS('x'));
  const result = await new DirectorySource(join(dir, 'one.yaml')).load();
  assert.deepEqual(result.namespaces.map((n) => n.name), ['x']);
});

test('a missing path fails with a clear code', async () => {
  await assert.rejects(new DirectorySource('/nonexistent/nodemesh-config').load(), { code: 'ERR_NM_SOURCE_MISSING' });
});

test('a syntax error keeps the last good objects of that file, and reports it', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'pods.yaml');
  writeFileSync(file, POD('a1', '10.244.1.11'));
  writeFileSync(join(dir, 'broken-from-start.yaml'), 'kind: Pod\nmetadata: {');
  const source = new DirectorySource(dir);
  const first = await source.load();
  assert.deepEqual(first.pods.map((p) => p.name), ['a1']);
  assert.equal(first.rejected.length, 1);
  assert.equal(first.rejected[0]!.code, 'ERR_NM_CONFIG_SYNTAX');
  assert.match(first.rejected[0]!.reason, /broken-from-start\.yaml: YAML syntax error.*no earlier good version/);

  rewrite(file, `${POD('a1', '10.244.1.11')}---\nkind: Pod\n  metadata: : : [`, 5);
  const second = await source.load();
  assert.deepEqual(second.pods.map((p) => p.name), ['a1'], 'previous objects kept');
  const kept = second.rejected.find((r) => r.file === file);
  assert.ok(kept, JSON.stringify(second.rejected));
  assert.match(kept.reason, /pods\.yaml: YAML syntax error.*keeping the 1 object\(s\) of its last good version/);

  rewrite(file, POD('a2', '10.244.1.12'), 10);
  const third = await source.load();
  assert.deepEqual(third.pods.map((p) => p.name), ['a2']);
  assert.equal(third.rejected.filter((r) => r.file === file).length, 0);
});

test('watch reports changes (debounced) until closed', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'mesh.yaml');
  writeFileSync(file, NS('one'));
  const source = new DirectorySource(dir, { debounceMs: 20, pollIntervalMs: 100 });
  t.after(() => source.close());
  const seen: SourceResult[] = [];
  let wake: (() => void) | undefined;
  const next = (count: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no change #${count} within 5 s`)), 5000);
      const check = (): void => {
        if (seen.length >= count) {
          clearTimeout(timer);
          resolve();
        } else wake = check;
      };
      check();
    });
  source.watch((result) => {
    seen.push(result);
    wake?.();
  });
  await next(1);
  assert.deepEqual(seen[0]!.namespaces.map((n) => n.name), ['one']);
  rewrite(file, `${NS('one')}---\n${NS('two')}`, 5);
  writeFileSync(join(dir, 'second.yaml'), NS('three'));
  await next(2);
  // Debouncing may fold both writes into one report or give two; the last one has all.
  while (seen.at(-1)!.namespaces.length < 3) await next(seen.length + 1);
  assert.deepEqual(seen.at(-1)!.namespaces.map((n) => n.name).sort(), ['one', 'three', 'two']);
  source.close();
  const count = seen.length;
  writeFileSync(join(dir, 'after-close.yaml'), NS('four'));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(seen.length, count, 'nothing reported after close()');
});

test('watch after load reports only changes', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'mesh.yaml');
  writeFileSync(file, NS('one'));
  const source = new DirectorySource(dir, { debounceMs: 20, pollIntervalMs: 100 });
  t.after(() => source.close());
  await source.load();
  const seen: SourceResult[] = [];
  source.watch((r) => seen.push(r));
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(seen.length, 0, 'the unchanged initial state is not reported again');
  rewrite(file, NS('two'), 5);
  const deadline = Date.now() + 5000;
  while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(seen.at(-1)?.namespaces.map((n) => n.name), ['two']);
});
