import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { isCI } from './privileges';

/**
 * A real helm v3 for the suites that render the chart, from scripts/install-helm.sh
 * (which builds it with Go the first time: minutes; later runs reuse .tools/bin/helm).
 * Without helm and without Go those suites skip locally and fail under CI=true.
 */

export const ROOT = resolve(__dirname, '..', '..', '..');
export const CHART = join(ROOT, 'deploy', 'helm', 'nodemesh');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

let helm: string | undefined;
let helmSkip: string | undefined;

/** Finds or builds helm (call from a before() with a long timeout). */
export function ensureHelm(): void {
  if (helm) return;
  const started = Date.now();
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'install-helm.sh')], { encoding: 'utf8', timeout: 14 * 60_000 });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (r.status === 0) {
    helm = r.stdout.trim().split('\n').pop();
    process.stderr.write(`# helm: ${helm} (scripts/install-helm.sh took ${seconds}s)\n`);
    return;
  }
  const why = `scripts/install-helm.sh exited ${r.status ?? r.signal} after ${seconds}s: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`;
  if (r.status === 3 && !isCI) {
    helmSkip = `no helm and no Go toolchain to build it (${why})`;
    return;
  }
  throw new Error(why);
}

export function needHelm(t: TestContext): boolean {
  if (helm) return true;
  t.skip(helmSkip ?? 'helm unavailable');
  return false;
}

export function runHelm(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(helm!, args, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `helm template` of the chart: its objects, or the status and stderr of a refusal. */
export function template(options: { sets?: string[]; namespace: string; kubeVersion: string; chart?: string }): { status: number; objects: Obj[]; stderr: string; stdout: string } {
  const args = ['template', 'nodemesh', options.chart ?? CHART, '--namespace', options.namespace, '--kube-version', options.kubeVersion];
  for (const s of options.sets ?? []) args.push('--set', s);
  const r = runHelm(args);
  if (r.status !== 0) return { status: r.status, objects: [], stderr: r.stderr, stdout: r.stdout };
  const objects: Obj[] = [];
  for (const doc of parseAllDocuments(r.stdout)) {
    assert.equal(doc.errors.length, 0, `helm template printed invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJSON() as Obj | null;
    if (value !== null) objects.push(value);
  }
  return { status: 0, objects, stderr: r.stderr, stdout: r.stdout };
}
