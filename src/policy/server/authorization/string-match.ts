/**
 * Istio's string matching for authorization fields: `abc` exact, `abc*` prefix, `*abc`
 * suffix, `*` presence (any non-empty value). A `*` anywhere else has no meaning in Istio,
 * so it is refused rather than read as a literal character that would never match (an
 * ALLOW that silently allows nothing, or a DENY that silently denies nothing).
 */

export type StringMatch =
  | { kind: 'exact'; value: string }
  | { kind: 'prefix'; value: string }
  | { kind: 'suffix'; value: string }
  | { kind: 'presence' };

/** The match a pattern means, or the problem with it. `lowerCase`: for hosts, compared case-insensitively. */
export function parseStringMatch(pattern: string, lowerCase = false): StringMatch | string {
  const text = lowerCase ? pattern.toLowerCase() : pattern;
  if (text === '*') return { kind: 'presence' };
  const stars = text.split('*').length - 1;
  if (stars === 0) return { kind: 'exact', value: text };
  if (stars === 1 && text.endsWith('*')) return { kind: 'prefix', value: text.slice(0, -1) };
  if (stars === 1 && text.startsWith('*')) return { kind: 'suffix', value: text.slice(1) };
  return `"${pattern}" has a "*" that is neither the first nor the last character: Istio matches exact values, a prefix ("abc*"), a suffix ("*abc") or any value ("*"); split it into several values`;
}

export function stringMatches(match: StringMatch, value: string | undefined): boolean {
  if (value === undefined) return false;
  switch (match.kind) {
    case 'exact':
      return value === match.value;
    case 'prefix':
      return value.startsWith(match.value);
    case 'suffix':
      return value.endsWith(match.value);
    case 'presence':
      return value !== '';
  }
}

/** The pattern as the policy wrote it (lower-cased for hosts), for messages. */
export function formatStringMatch(match: StringMatch): string {
  switch (match.kind) {
    case 'exact':
      return match.value;
    case 'prefix':
      return `${match.value}*`;
    case 'suffix':
      return `*${match.value}`;
    case 'presence':
      return '*';
  }
}
