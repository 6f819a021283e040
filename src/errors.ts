/**
 * One error tree for nodemesh. Every error carries a stable `code` (tests assert on it)
 * and a message that says what to check next, like ztunnel's errors do.
 */
export class NodemeshError extends Error {
  readonly code: string;
  /** What an operator should look at next; appended to the message too. */
  readonly hint: string | undefined;
  /** Structured details for logs (pod, path, errno, ...). */
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(options.hint ? `${message}; ${options.hint}` : message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NodemeshError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }
}

/** True when `err` is an Error carrying the given `code` (system errors included). */
export function hasCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** A readable one-line description of anything thrown. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
