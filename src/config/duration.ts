import { NodemeshError } from '../errors';
import { CONFIG_INVALID } from './validation';

/**
 * Durations in configuration objects: Gateway API Duration (GEP-2257), which routes'
 * timeouts and retries and TrafficPolicy's intervals alike are written in. One to four
 * `<1-5 digits><unit>` groups, units h, m, s and ms, read like Go's time.ParseDuration
 * ("1h2m3s4ms", "1m30s", "500ms"; components add up, "1m1m" is 2m). "0s" is a valid
 * zero (which, for timeouts, disables them). No sign, no fraction, no days, no bare
 * numbers.
 */
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const PART = /([0-9]{1,5})(ms|h|m|s)/g;
const UNITS = [['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const;
const UNIT_MS: Record<string, number> = Object.fromEntries(UNITS);

/** Milliseconds; throws NodemeshError ERR_NM_CONFIG_INVALID naming the bad value (the routes' reader). */
export function parseGatewayDuration(text: string): number {
  if (typeof text !== 'string' || !DURATION.test(text)) {
    const shown = typeof text === 'string' ? `"${text}"` : String(text);
    throw new NodemeshError(CONFIG_INVALID, `${shown} is not a Gateway API duration`, {
      hint: 'write one to four groups of up to 5 digits with a unit h, m, s or ms, e.g. "10s", "1m30s", "500ms" ("0s" disables)',
      details: { value: text },
    });
  }
  let total = 0;
  for (const part of text.matchAll(PART)) total += Number(part[1]) * UNIT_MS[part[2]!]!;
  return total;
}

/** Milliseconds, or undefined when the text is not a duration (for readers that word their own message). */
export function parseDuration(text: string): number | undefined {
  return typeof text === 'string' && DURATION.test(text) ? parseGatewayDuration(text) : undefined;
}

/** The shortest spelling of a number of milliseconds ("1h2m3s4ms", "0s"), for messages and debug output. */
export function formatGatewayDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const [unit, size] of UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
