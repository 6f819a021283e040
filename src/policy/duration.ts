import { parseGatewayDuration } from '../routing/duration';
/**
 * Gateway API durations (GEP-2257): one to four components, each 1-5 decimal digits and a
 * unit h, m, s or ms ("100ms", "10s", "1h2m3s4ms"), read like Go's time.ParseDuration
 * (components add up; "1m1m" is 2m). No sign, no fractions, no units below ms.
 */

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds, or undefined when the text is not a GEP-2257 duration (one parser for the
 * whole project: the routing engine's, which routes and policies must read alike). */
export function parseDuration(text: string): number | undefined {
  try {
    return parseGatewayDuration(text);
  } catch {
    return undefined;
  }
}

/** The shortest GEP-2257 spelling of a whole number of milliseconds ("1h2m3s4ms", "0s"). */
export function formatDuration(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) throw new RangeError(`not a duration in milliseconds: ${ms}`);
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const unit of ['h', 'm', 's', 'ms']) {
    const size = UNIT_MS[unit]!;
    const count = Math.floor(rest / size);
    if (count > 0) out += `${count}${unit}`;
    rest -= count * size;
  }
  return out;
}
