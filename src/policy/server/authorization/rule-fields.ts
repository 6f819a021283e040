import type { PolicyFields } from '../../../config/policy-fields';
import { describeValue } from '../../../config/validation';
import { parseIpBlock, type IpBlock } from './ip-block';
import { parseStringMatch, type StringMatch } from './string-match';

/**
 * Readers of the list fields authorization rules are made of (both APIs), on the policy
 * validation kit: each records its problems with the field path (`spec.rules[0].from[1]
 * .source.ipBlocks[2]`) and returns what it could read; the caller rejects the policy when
 * any was recorded, so a value that cannot be read never drops out of a rule unnoticed.
 */

export function stringList(c: PolicyFields, raw: unknown, path: string, what = 'strings'): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    c.fail(path, `must be a list of ${what}, got ${describeValue(raw)}; write [${typeof raw === 'string' ? JSON.stringify(raw) : '...'}]`);
    return [];
  }
  const out: string[] = [];
  raw.forEach((item, i) => {
    if (typeof item === 'string') out.push(item);
    else c.fail(`${path}[${i}]`, `must be a string, got ${describeValue(item, true)}`);
  });
  return out;
}

/** Istio string patterns (exact, "prefix*", "*suffix", "*"); `lowerCase` for hosts. */
export function matchList(c: PolicyFields, raw: unknown, path: string, lowerCase = false): StringMatch[] {
  return stringList(c, raw, path).flatMap((text, i) => matchOf(c, text, `${path}[${i}]`, lowerCase) ?? []);
}

/** One pattern, or undefined with its problem recorded. */
export function matchOf(c: PolicyFields, text: string, path: string, lowerCase = false): StringMatch | undefined {
  if (text === '') return c.fail(path, 'must not be empty (use "*" for any non-empty value)');
  const m = parseStringMatch(text, lowerCase);
  return typeof m === 'string' ? c.fail(path, m) : m;
}

export function blockList(c: PolicyFields, raw: unknown, path: string): IpBlock[] {
  const out: IpBlock[] = [];
  stringList(c, raw, path, 'IP addresses or CIDR blocks').forEach((text, i) => {
    const block = parseIpBlock(text.trim());
    if (typeof block === 'string') c.fail(`${path}[${i}]`, block);
    else out.push(block);
  });
  return out;
}

/** Port numbers, written as strings (Istio's schema) or numbers. */
export function portList(c: PolicyFields, raw: unknown, path: string): number[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    c.fail(path, `must be a list of port numbers, got ${describeValue(raw)}; write ["8080"]`);
    return [];
  }
  const out: number[] = [];
  raw.forEach((item, i) => {
    const port = typeof item === 'number' ? item : typeof item === 'string' && /^[0-9]{1,5}$/.test(item) ? Number(item) : NaN;
    if (Number.isInteger(port) && port >= 1 && port <= 65535) out.push(port);
    else c.fail(`${path}[${i}]`, `${describeValue(item)} is not a port number from 1 to 65535 (ranges and wildcards are not supported; list each port)`);
  });
  return out;
}

/** A list field: the items, or [] with a problem when it is not a list. */
export function items(c: PolicyFields, raw: unknown, path: string, what: string): unknown[] {
  if (raw === undefined || raw === null) return [];
  if (Array.isArray(raw)) return raw;
  c.fail(path, `must be a list of ${what}, got ${describeValue(raw)}`);
  return [];
}
