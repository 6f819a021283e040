import type { PolicyFields } from '../../../config/policy-fields';
import { describeValue } from '../../../config/validation';
import { labelKeyProblem, parseMatchLabels } from '../workload-selector';

/**
 * A Kubernetes label selector as authorization policies use it: Istio's WorkloadSelector
 * (matchLabels only, read by workload-selector.ts) and GEP-3779's Pod targetRef (a
 * metav1.LabelSelector: matchLabels and matchExpressions). An empty selector selects
 * every pod, as in NetworkPolicy's podSelector (GEP-3779 chose that meaning).
 */

export const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
export type SelectorOperator = (typeof SELECTOR_OPERATORS)[number];

export interface SelectorExpression {
  key: string;
  operator: SelectorOperator;
  values: readonly string[];
}

export interface LabelSelector {
  matchLabels: Readonly<Record<string, string>>;
  matchExpressions: readonly SelectorExpression[];
}

export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const key in selector.matchLabels) if (labels[key] !== selector.matchLabels[key]) return false;
  for (const e of selector.matchExpressions) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const value = labels[e.key];
    const ok =
      e.operator === 'In' ? has && e.values.includes(value!) : e.operator === 'NotIn' ? !has || !e.values.includes(value!) : e.operator === 'Exists' ? has : !has;
    if (!ok) return false;
  }
  return true;
}

/** Reads a metav1.LabelSelector; problems are recorded on `c`. */
export function parseLabelSelector(c: PolicyFields, raw: unknown, path: string): LabelSelector | undefined {
  const m = c.mapping(raw, path, ['matchLabels', 'matchExpressions']);
  if (!m) return undefined;
  const matchLabels = m.matchLabels === undefined || m.matchLabels === null ? {} : parseMatchLabels(c, m.matchLabels, `${path}.matchLabels`);
  const matchExpressions: SelectorExpression[] = [];
  const list = m.matchExpressions ?? [];
  if (!Array.isArray(list)) {
    c.fail(`${path}.matchExpressions`, `must be a list of { key, operator, values }, got ${describeValue(list)}`);
    return undefined;
  }
  list.forEach((item, i) => {
    const at = `${path}.matchExpressions[${i}]`;
    const e = c.mapping(item, at, ['key', 'operator', 'values']);
    if (!e) return;
    const key = c.string(e.key, `${at}.key`);
    if (key === undefined || key === '') return void c.fail(`${at}.key`, 'required (the label key)');
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) return void c.fail(`${at}.key`, `invalid label key: ${keyProblem}`);
    const operator = c.string(e.operator, `${at}.operator`);
    if (operator === undefined || !(SELECTOR_OPERATORS as readonly string[]).includes(operator)) {
      return void c.fail(`${at}.operator`, `${operator === undefined ? 'required' : `"${operator}" is not an operator`} (use ${SELECTOR_OPERATORS.join(', ')})`);
    }
    const values = e.values ?? [];
    if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) return void c.fail(`${at}.values`, 'must be a list of strings (label values)');
    const needsValues = operator === 'In' || operator === 'NotIn';
    if (needsValues && values.length === 0) return void c.fail(`${at}.values`, `required with operator ${operator} (at least one label value)`);
    if (!needsValues && values.length > 0) return void c.fail(`${at}.values`, `must be empty with operator ${operator}; remove it`);
    matchExpressions.push({ key, operator: operator as SelectorOperator, values: values as string[] });
  });
  return { matchLabels, matchExpressions };
}
