import { describeValue, isRecord } from '../../config/validation';
import type { PolicyFields } from '../../config/policy-fields';

/**
 * Istio's WorkloadSelector (`selector: { matchLabels: {...} }`), shared by the server-side
 * policies: the pods of the policy's namespace whose labels include every pair. Istio has
 * no matchExpressions here, and neither key nor value may be a wildcard.
 */

const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return `the prefix "${prefix}" is not a DNS subdomain`;
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) return `"${name}" is not a label name (1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)`;
  return undefined;
}

/**
 * Reads `spec.selector`: undefined when absent or when matchLabels is empty (the policy
 * then applies to the whole namespace, as in Istio); the labels otherwise.
 */
export function parseWorkloadSelector(c: PolicyFields, raw: unknown, path = 'spec.selector'): Record<string, string> | undefined {
  if (raw === undefined || raw === null) return undefined;
  const selector = c.mapping(raw, path, ['matchLabels']);
  if (!selector || selector.matchLabels === undefined || selector.matchLabels === null) return undefined;
  const out = parseMatchLabels(c, selector.matchLabels, `${path}.matchLabels`);
  return Object.keys(out).length === 0 && c.ok ? undefined : out;
}

/**
 * Reads a `matchLabels` mapping (shared with GEP-3779's label selectors): every key a
 * label key, every value a label value, no wildcards. Bad pairs are recorded on `c` and
 * left out.
 */
export function parseMatchLabels(c: PolicyFields, raw: unknown, path: string): Record<string, string> {
  const labels = c.mapping(raw, path, isRecord(raw) ? Object.keys(raw) : []);
  if (!labels) return {};
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels)) {
    const at = `${path}.${key}`;
    if (key.includes('*') || (typeof value === 'string' && value.includes('*'))) {
      c.fail(at, 'wildcards are not allowed in a workload selector; name the label and its exact value');
      continue;
    }
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) {
      c.fail(at, `invalid label key: ${keyProblem}`);
      continue;
    }
    if (typeof value !== 'string') {
      c.fail(at, `a label value must be a string, got ${describeValue(value)}${typeof value === 'number' || typeof value === 'boolean' ? `; quote it: "${String(value)}"` : ''}`);
      continue;
    }
    if (value.length > 63 || (value !== '' && !LABEL_NAME.test(value))) {
      c.fail(at, `"${value}" is not a label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)`);
      continue;
    }
    out[key] = value;
  }
  return out;
}
