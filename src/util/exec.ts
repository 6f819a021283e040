import { execFile, type ExecFileOptions } from 'node:child_process';
import { NodemeshError } from '../errors';

export interface RunResult {
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Text written to the command's standard input. */
  input?: string;
  /** Milliseconds before the command is killed (default 30 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs a program (never through a shell) and resolves with its output. A non-zero exit
 * rejects with ERR_NM_COMMAND_FAILED naming the command line and its stderr, which is
 * what an operator needs to reproduce the failure by hand.
 */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const execOptions: ExecFileOptions = {
    timeout: options.timeoutMs ?? 30_000,
    maxBuffer: 64 * 1024 * 1024,
    env: options.env ?? process.env,
  };
  return new Promise((resolve, reject) => {
    const child = execFile(file, args as string[], execOptions, (error, stdout, stderr) => {
      const out = String(stdout);
      const err = String(stderr);
      if (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const missing = code === 'ENOENT';
        reject(
          new NodemeshError(
            missing ? 'ERR_NM_COMMAND_MISSING' : 'ERR_NM_COMMAND_FAILED',
            missing
              ? `${file} is not installed`
              : `\`${[file, ...args].join(' ')}\` failed (${error.killed ? 'timed out' : `exit ${String(code ?? error.message)}`}): ${err.trim() || out.trim()}`,
            {
              hint: missing ? `install it (scripts/setup.sh installs every tool nodemesh needs)` : undefined,
              cause: error,
              details: { file, args, stderr: err },
            },
          ),
        );
        return;
      }
      resolve({ stdout: out, stderr: err });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Like run(), but resolves with the exit status instead of rejecting on a non-zero one. */
export async function runStatus(file: string, args: readonly string[], options: RunOptions = {}): Promise<{ status: number } & RunResult> {
  try {
    const result = await run(file, args, options);
    return { status: 0, ...result };
  } catch (err) {
    if (err instanceof NodemeshError && err.code === 'ERR_NM_COMMAND_FAILED') {
      const cause = err.cause as { code?: unknown; stdout?: unknown; stderr?: unknown } | undefined;
      const status = typeof cause?.code === 'number' ? cause.code : 1;
      return { status, stdout: String(cause?.stdout ?? ''), stderr: String(err.details.stderr ?? '') };
    }
    throw err;
  }
}
