import { NodemeshError } from '../errors';

/**
 * Argument checks for the datapath wrappers. Every wrapper validates here before calling
 * the addon, so a bad argument fails with ERR_NM_INVALID_ARGUMENT and a message saying
 * what to fix, instead of an errno from deep inside a syscall.
 */

export const INVALID_ARGUMENT = 'ERR_NM_INVALID_ARGUMENT';

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Buffer.isBuffer(value)) return `a Buffer of ${value.length} bytes`;
  if (typeof value === 'string') return value.length > 60 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? `an object (${(value as object).constructor?.name ?? 'Object'})` : typeof value;
}

export function invalidArgument(message: string, details: Record<string, unknown> = {}): NodemeshError {
  return new NodemeshError(INVALID_ARGUMENT, message, { details });
}

function fail(name: string, expected: string, value: unknown): never {
  throw invalidArgument(`${name} must be ${expected}, got ${describeValue(value)}`, { argument: name });
}

export function assertInteger(name: string, value: unknown, min: number, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(name, `an integer from ${min} to ${max}`, value);
  }
}

/** A file descriptor: an integer from 0 to 2^31-1. */
export function assertFd(name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
    fail(name, 'a file descriptor (an integer >= 0)', value);
  }
}

export function assertU32(name: string, value: unknown): asserts value is number {
  assertInteger(name, value, 0, 0xffffffff);
}

export function assertPort(name: string, value: unknown): asserts value is number {
  assertInteger(name, value, 0, 65535);
}

export function assertBoolean(name: string, value: unknown): asserts value is boolean {
  if (typeof value !== 'boolean') fail(name, 'a boolean', value);
}

/** A non-empty string without NUL bytes. */
export function assertString(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) fail(name, 'a non-empty string', value);
  if (value.includes('\0')) fail(name, 'a string without NUL bytes', value);
}

/** An absolute filesystem path. */
export function assertAbsolutePath(name: string, value: unknown): asserts value is string {
  assertString(name, value);
  if (!value.startsWith('/')) fail(name, 'an absolute path', value);
}

export function assertBuffer(name: string, value: unknown, length?: number): asserts value is Buffer {
  if (!Buffer.isBuffer(value)) fail(name, length === undefined ? 'a Buffer' : `a Buffer of ${length} bytes`, value);
  if (length !== undefined && value.length !== length) fail(name, `a Buffer of ${length} bytes`, value);
}

export function assertOneOf<T extends string | number>(name: string, value: unknown, allowed: readonly T[]): asserts value is T {
  if (!(allowed as readonly unknown[]).includes(value)) fail(name, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, value);
}

export function assertObject(name: string, value: unknown): asserts value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(name, 'an options object', value);
}
