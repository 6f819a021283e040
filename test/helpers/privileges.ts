import type { TestContext } from 'node:test';

/**
 * Suites that need root, BPF or network namespaces call this first.
 * A developer without root sees them skipped; under CI=true they must run, so a missing
 * privilege fails the suite loudly instead of passing it silently.
 */
export function requireRoot(t: TestContext): boolean {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) return true;
  if (process.env.CI === 'true') {
    throw new Error('this suite needs root (network namespaces, BPF) and CI=true forbids skipping it; run the tests as root');
  }
  t.skip('needs root: run as root to exercise namespaces and BPF');
  return false;
}

export const isCI = process.env.CI === 'true';
