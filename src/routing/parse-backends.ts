import { FieldError } from '../config/validation';
import { readBackendTarget } from './backend-ref';
import type { Context } from './parse-context';
import { BACKEND_FILTERS, readFilters } from './parse-filters';
import { MAX_WEIGHT, read } from './route-fields';
import type { WeightedBackend } from './types';

/** A rule's weighted backendRefs, each with its own header filters. */
export function readBackends(value: unknown, path: string, ctx: Context): WeightedBackend[] {
  return read.list(value, path).map((entry, i) => {
    const bpath = `${path}[${i}]`;
    const ref = read.record(entry, bpath);
    if (!ref) throw new FieldError(bpath, 'must be a mapping {name, port, weight?}');
    const target = readBackendTarget(ref, bpath, ctx);
    const weight = ref.weight ?? 1;
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) {
      throw new FieldError(`${bpath}.weight`, `must be an integer from 0 to ${MAX_WEIGHT} (a relative share; 0 sends nothing), got ${read.describe(weight)}`);
    }
    const backend: WeightedBackend = { ...target, weight };
    const filters = readFilters(ref.filters, `${bpath}.filters`, BACKEND_FILTERS, 'on backendRefs (use the rule\'s filters)', ctx, () => undefined);
    if (filters.requestHeaderModifier) backend.requestHeaderModifier = filters.requestHeaderModifier;
    if (filters.responseHeaderModifier) backend.responseHeaderModifier = filters.responseHeaderModifier;
    return Object.freeze(backend);
  });
}
