import { NodemeshError } from '../errors';

/**
 * The validation kit every parser of configuration objects uses (core kinds, routes,
 * policies): field readers that name the field path and what to write instead, a
 * collector for the parsers that report every problem of an object at once, and the
 * shape of a rejection (file, object, field path, the whole story, a stable code).
 *
 * Readers throw a FieldError at the first problem; `Problems.check()` turns that into a
 * recorded problem, so one parser can stop at the first bad field (a Pod) while another
 * goes on and reports them all (a TrafficPolicy), with the same readers.
 */

export const CONFIG_INVALID = 'ERR_NM_CONFIG_INVALID';

/** One problem of an object: where, and what is wrong with it / what to write instead. */
export interface FieldProblem {
  /** Field path ("spec.ports[0].port"). */
  path: string;
  problem: string;
}

/** Thrown by the readers; turned into a FieldProblem by Problems.check() or a parser's catch. */
export class FieldError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

/** Collects every problem of one object instead of stopping at the first. */
export class Problems {
  readonly list: FieldProblem[] = [];

  get ok(): boolean {
    return this.list.length === 0;
  }

  /** Records a problem; returns undefined so a reader can `return p.fail(...)`. */
  fail(path: string, problem: string): undefined {
    this.list.push({ path, problem });
    return undefined;
  }

  /** Runs a throwing reader: its FieldError is recorded and undefined returned. */
  check<T>(read: () => T): T | undefined {
    try {
      return read();
    } catch (err) {
      if (err instanceof FieldError) return this.fail(err.path, err.problem);
      throw err;
    }
  }

  /** Reports the keys of `record` that are not in `known` (a typo must not fall back to a default). */
  unknownFields(record: Record<string, unknown>, path: string, known: readonly string[]): void {
    for (const key of Object.keys(record)) {
      if (!known.includes(key)) this.fail(`${path}.${key}`, `unknown field (known fields of ${path}: ${known.join(', ')}); check the spelling`);
    }
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A value as a message shows it. With `quoteHints` (fields YAML users write by hand as
 * strings: names, labels), a number, a boolean or a timestamp gets "quote it": YAML made
 * it something else than the string the user meant.
 */
export function describeValue(value: unknown, quoteHints = false): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Date) return `a timestamp (${value.toISOString()})${quoteHints ? '; quote it' : ''}`;
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `"${value}"`;
  const hint = quoteHints && (typeof value === 'number' || typeof value === 'boolean') ? '; quote it to make it a string' : '';
  return `${typeof value} ${String(value)}${hint}`;
}

/**
 * Readers of plain YAML/JSON values. Each returns the value or throws FieldError naming
 * the path; absent (undefined or null) optional values read as undefined.
 */
export class FieldReader {
  constructor(private readonly options: { quoteHints?: boolean } = {}) {}

  describe(value: unknown): string {
    return describeValue(value, this.options.quoteHints === true);
  }

  record(value: unknown, path: string): Record<string, unknown> | undefined {
    if (value === undefined || value === null) return undefined;
    if (!isRecord(value)) throw new FieldError(path, `must be a mapping, got ${this.describe(value)}`);
    return value;
  }

  list(value: unknown, path: string): unknown[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) throw new FieldError(path, `must be a list, got ${this.describe(value)}`);
    return value;
  }

  string(value: unknown, path: string): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') throw new FieldError(path, `must be a string, got ${this.describe(value)}`);
    return value;
  }

  requiredString(value: unknown, path: string, what = 'a non-empty string'): string {
    const text = this.string(value, path);
    if (text === undefined || text === '') throw new FieldError(path, `required (${what})`);
    return text;
  }

  boolean(value: unknown, path: string): boolean | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') throw new FieldError(path, `must be true or false, got ${this.describe(value)}`);
    return value;
  }

  /** An integer in [min, max]; `what` says what it counts ("a Service port"). */
  integer(value: unknown, path: string, min: number, max: number, what: string): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new FieldError(path, `must be ${what} (an integer from ${min} to ${max}), got ${this.describe(value)}`);
    }
    return value;
  }

  /** One of `allowed`; `fallback` when absent (undefined: required). */
  oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[], fallback: T | undefined, what: string): T {
    const text = this.string(value, path) ?? fallback;
    if (text === undefined) throw new FieldError(path, `required (${what}: ${allowed.join(', ')})`);
    if (!(allowed as readonly string[]).includes(text)) throw new FieldError(path, `"${text}" is not ${what} (use ${allowed.join(', ')})`);
    return text as T;
  }
}

// ---------------------------------------------------------------------------------------
// Rejections

export interface RejectedObject {
  file: string;
  /** "Pod demo/a1", "Service default/web", "document 3" when the object has no name. */
  object: string;
  /** Field path of the offending value ("spec.ports[0].port"), when one field is to blame. */
  path?: string;
  /** The whole story, naming file, object and field: what an operator reads. */
  reason: string;
  code: string;
}

/** The "Kind namespace/name" used in messages. */
export function objectLabel(kind: string, namespace: string | undefined, objectName: string | undefined): string {
  if (objectName === undefined) return kind;
  return namespace === undefined ? `${kind} ${objectName}` : `${kind} ${namespace}/${objectName}`;
}

/** Builds the error for one rejected object: code ERR_NM_CONFIG_INVALID. */
export function rejection(file: string, object: string, reason: string, path?: string): RejectedObject {
  const message = path === undefined ? `${file}: ${object}: ${reason}` : `${file}: ${object}: ${path}: ${reason}`;
  return path === undefined ? { file, object, reason: message, code: CONFIG_INVALID } : { file, object, path, reason: message, code: CONFIG_INVALID };
}

/** One rejection per problem of an object. */
export function rejectionsOf(file: string, object: string, problems: readonly FieldProblem[]): RejectedObject[] {
  return problems.map(({ path, problem }) => rejection(file, object, problem, path));
}

/** The rejection as a throwable error, for callers that want to fail on the first one. */
export function rejectionError(rejected: RejectedObject): NodemeshError {
  return new NodemeshError(rejected.code, rejected.reason, { details: { file: rejected.file, object: rejected.object, path: rejected.path } });
}
