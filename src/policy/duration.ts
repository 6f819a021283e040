/**
 * Gateway API durations (GEP-2257): one to four components, each 1-5 decimal digits and a
 * unit h, m, s or ms ("100ms", "10s", "1h2m3s4ms"), read like Go's time.ParseDuration
 * (components add up; "1m1m" is 2m). No sign, no fractions, no units below ms.
 */

const GEP_2257 = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const COMPONENT = /([0-9]{1,5})(ms|h|m|s)/g;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds, or undefined when the text is not a GEP-2257 duration. */
export function parseDuration(text: string): number | undefined {
  if (!GEP_2257.test(text)) return undefined;
  let total = 0;
  for (const match of text.matchAll(COMPONENT)) total += Number(match[1]) * UNIT_MS[match[2]!]!;
  return total;
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
