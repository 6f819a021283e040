import { parseDuration } from './duration';
import { describeValue, FieldReader, Problems } from './validation';

/**
 * The validation kit's Problems with the readers policy objects (TrafficPolicy, PeerAuthentication) need: every reader
 * records its problem and returns undefined, so one pass reports every bad field of an
 * object. The wording (ranges, "write it without quotes", duration examples) is the
 * policy's own: its fields are numbers and durations more than names.
 */

export const INT32_MAX = 2_147_483_647;

const read = new FieldReader();

export class PolicyFields extends Problems {
  /** A mapping or undefined; unknown keys are reported with the list of known ones. */
  mapping(value: unknown, path: string, known: readonly string[]): Record<string, unknown> | undefined {
    const record = this.check(() => read.record(value, path));
    if (record) this.unknownFields(record, path, known);
    return record;
  }

  string(value: unknown, path: string): string | undefined {
    return this.check(() => read.string(value, path));
  }

  boolean(value: unknown, path: string, fallback: boolean): boolean | undefined {
    if (value === undefined || value === null) return fallback;
    return this.check(() => read.boolean(value, path));
  }

  integer(value: unknown, path: string, min: number, max: number, fallback: number): number | undefined {
    if (value === undefined || value === null) return fallback;
    const range = max === INT32_MAX ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    if (typeof value === 'string' && /^-?[0-9]+$/.test(value.trim())) return this.fail(path, `must be ${range}, got the string ${describeValue(value)}; write it without quotes`);
    if (typeof value !== 'number' || !Number.isInteger(value)) return this.fail(path, `must be ${range}, got ${describeValue(value)}`);
    if (value < min || value > max) return this.fail(path, `must be ${range}, got ${value}`);
    return value;
  }

  percentage(value: unknown, path: string): number | undefined {
    if (value === undefined || value === null) return this.fail(path, 'required (a number from 0 to 100: the share of requests affected)');
    if (typeof value !== 'number' || !Number.isFinite(value)) return this.fail(path, `must be a number from 0 to 100, got ${describeValue(value)}`);
    if (value < 0 || value > 100) return this.fail(path, `must be a number from 0 to 100, got ${value}`);
    return value;
  }

  /** A duration in ms (config/duration.ts); `fallback` undefined makes it required. */
  duration(value: unknown, path: string, fallback: number | undefined, minMs = 0): number | undefined {
    if (value === undefined || value === null) {
      if (fallback === undefined) return this.fail(path, 'required (a duration such as "100ms", "10s" or "1m30s")');
      return fallback;
    }
    if (typeof value !== 'string') {
      const hint = typeof value === 'number' ? `; write a duration with its unit, e.g. "${value}s" or "${value}ms"` : '';
      return this.fail(path, `must be a duration string such as "100ms", "10s" or "1m30s", got ${describeValue(value)}${hint}`);
    }
    const ms = parseDuration(value);
    if (ms === undefined) {
      return this.fail(path, `"${value}" is not a duration: use 1-4 components of up to 5 digits with unit h, m, s or ms, e.g. "100ms", "10s", "1h2m3s4ms"`);
    }
    if (ms < minMs) return this.fail(path, minMs === 1 ? `must be longer than 0, got "${value}"` : `must be at least ${minMs}ms, got "${value}"`);
    return ms;
  }
}
