import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | undefined;

/**
 * nodemesh's version, from the package.json above this file (the source tree, the
 * compiled dist/ and the image all keep it at the package root); "unknown" when none is
 * found. Read once.
 */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  cached = 'unknown';
  for (let dir = __dirname; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'nodemesh' && typeof pkg.version === 'string') {
        cached = pkg.version;
        break;
      }
    } catch {
      /* no package.json here: look higher */
    }
    if (dirname(dir) === dir) break;
  }
  return cached;
}
