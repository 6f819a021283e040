import { execFileSync } from 'node:child_process';
import { ROOT } from '../sim/harness';

/**
 * The commit measured, and whether src/ had uncommitted changes when dist/ was built from
 * it: every benchmark report names it, so figures can be traced to the code they measured.
 */
export function sourceState(): string {
  try {
    const head = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean).length;
    return dirty ? `${head} + uncommitted changes in ${dirty} paths under src/` : head;
  } catch {
    return 'unknown (no git)';
  }
}
